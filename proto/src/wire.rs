//! Message bodies of the wire contract, version 1 (`shared/spec/wire.md`).
//!
//! These types are tolerant: unknown fields are ignored and every field added
//! after v1 carries `#[serde(default)]`, so old and new clients keep talking.
//! They are not trusted: [`crate::validate`] turns them into domain types.
//! A breaking change would be a new `v2` module, never an edit here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Skill name to level (1 novice … 5 expert), e.g. `{"legal": 4}`.
pub type SkillLevels = BTreeMap<String, u8>;

/// A volunteer's offer of time and skills (`sb.in.volunteer`), and a volunteer
/// of `switchboard-instance/1`. Sending it again with the same `id` updates it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VolunteerOffer {
    /// `[A-Za-z0-9_-]{1,64}`; also the last token of `sb.to.volunteer.<id>`.
    pub id: String,
    /// Skill name to level 1-5.
    pub skills: SkillLevels,
    /// Hours given per week, spread evenly over the availability (0 < h <= 168).
    pub hours_per_week: f64,
    pub available_from: DateTime<Utc>,
    /// Most volunteers are gone after about three weeks; this says when.
    pub available_until: DateTime<Utc>,
    /// Where the volunteer can work in person; `null` means remote work only.
    #[serde(default)]
    pub region: Option<String>,
    /// Trust tier: 0 open, 1 vetted, 2 core.
    #[serde(default)]
    pub trust: u8,
    /// Display name, optional; never put on the match stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How to reach the volunteer outside NATS, optional; never put on the match stream or in logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Written by the switchboard, never by a client: in `SB_EVENTS` the
    /// `name` and `contact` are absent and this holds them sealed under the
    /// volunteer's own data key ([`Personal`]), which "forget me" deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// Languages spoken, optional.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub languages: Vec<String>,
    /// When in the week shifts suit them, read in `tz`; absent or empty: any
    /// time. Constrains shifts only (`shared/spec/problem.md`, "Shifts").
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub weekly: Vec<WeeklyWindow>,
    /// IANA time zone of `weekly` (`America/Detroit`); absent: `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// Where they start from; with `max_km` it limits how far away a task's place may be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<GeoPoint>,
    /// Furthest distance, in km (great circle), from `home` to a task's place; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_km: Option<f64>,
}

/// A person's private fields as sealed together (`sealed` of a volunteer
/// offer or a pledge, opened with their data key).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Personal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub donor: Option<String>,
}

impl Personal {
    /// Whether there is anything to seal.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.contact.is_none() && self.donor.is_none()
    }
}

/// A point on the globe, in degrees (WGS 84).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GeoPoint {
    /// -90 to 90.
    pub lat: f64,
    /// -180 to 180.
    pub lon: f64,
}

/// Where a task happens: a point, and text for people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Place {
    /// -90 to 90.
    pub lat: f64,
    /// -180 to 180.
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A fixed time when a task's whole team works. The task's window is the
/// shift: `earliest_start` = `start`, `deadline` = `end`, `hours` = its length.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Shift {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A weekly window of availability: on these days, from `from` to `to`
/// local time (`HH:MM`; `to` may be `24:00`, the next midnight).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WeeklyWindow {
    /// Some of `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
}

/// `null` reads as an empty list: an absent or null field sets no limit.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// One task of a need: `slots` people each working `hours` inside
/// `[earliest_start, deadline]`, and/or `money_cents` of money.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskSpec {
    pub id: String,
    /// The need this task belongs to. Taken from the need in `sb.in.need`; required in an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<String>,
    /// The collective that posted it. Taken from the need in `sb.in.need`; required in an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<String>,
    pub title: String,
    /// Skill name to the least level required (1-5).
    #[serde(default)]
    pub skills: SkillLevels,
    /// Hours each member of the team works.
    pub hours: f64,
    /// Team size, 0-50; 0 is a money-only need (rent, printing, bail).
    pub slots: u8,
    pub earliest_start: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// `null` means the task can be done remotely.
    #[serde(default)]
    pub region: Option<String>,
    /// Trust tier required: 0 open, 1 vetted, 2 core.
    #[serde(default)]
    pub sensitivity: u8,
    /// Tasks that must be done or staffed first (ids in this need or already posted).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Money needed, in integer cents, on top of the people.
    #[serde(default)]
    pub money_cents: u64,
    /// How much completing this task matters; the solver maximises the sum.
    pub impact: f64,
    #[serde(default)]
    pub tags: Vec<String>,
    /// ISO 4217 code of `money_cents` (`USD` when absent); only pledges in
    /// this currency fund the task, so one task's money never mixes currencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// A fixed time for the whole team; absent: a flexible task, worked any
    /// time inside its window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<Shift>,
    /// Where the work happens; with a volunteer's `home` and `max_km` it limits who can go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
    /// What the team should know (who to ask for, what to bring); free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Languages the work is done in; a volunteer must speak one. Absent or empty: any.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub languages: Vec<String>,
}

/// A collective's need (`sb.in.need`). Posting it again with the same `id`
/// updates it; a task left out of the update is cancelled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NeedPost {
    pub id: String,
    pub collective: String,
    pub title: String,
    pub tasks: Vec<TaskSpec>,
}

/// An offer of money (`sb.in.pledge`), and a pledge of `switchboard-instance/1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PledgeOffer {
    pub id: String,
    /// Integer cents, more than zero.
    pub amount_cents: u64,
    /// Only these collectives may receive it; `null` means any.
    #[serde(default)]
    pub collectives: Option<Vec<String>>,
    /// Only tasks sharing one of these tags; `null` means any.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// It can fund tasks whose window starts before this; `null` never expires.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The donor, optional; private: never published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub donor: Option<String>,
    /// Written by the switchboard, never by a client: in `SB_EVENTS` the
    /// `donor` is absent and this holds it sealed under the pledge's own
    /// data key ([`Personal`]), which "forget me" deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// ISO 4217 code of `amount_cents` (`USD` when absent). One currency per
    /// pledge; it funds only tasks priced in the same currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// What a withdrawal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawKind {
    Volunteer,
    Need,
    Task,
    Pledge,
}

impl WithdrawKind {
    pub fn token(self) -> &'static str {
        match self {
            WithdrawKind::Volunteer => "volunteer",
            WithdrawKind::Need => "need",
            WithdrawKind::Task => "task",
            WithdrawKind::Pledge => "pledge",
        }
    }
}

/// Withdraws an offer or cancels a need or task (`sb.in.withdraw`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Withdrawal {
    pub kind: WithdrawKind,
    pub id: String,
}

/// A volunteer's answer or report about one assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyAction {
    Accept,
    Decline,
    Checkin,
    Done,
    Drop,
    /// How far they have got (`hours_done`): a check-in that also says how
    /// much of their part is done, so the plan charges them only the rest.
    Progress,
}

impl ReplyAction {
    /// The action as the wire spells it.
    pub fn token(self) -> &'static str {
        match self {
            ReplyAction::Accept => "accept",
            ReplyAction::Decline => "decline",
            ReplyAction::Checkin => "checkin",
            ReplyAction::Done => "done",
            ReplyAction::Drop => "drop",
            ReplyAction::Progress => "progress",
        }
    }
}

/// A volunteer answers or reports on an assignment (`sb.in.reply`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VolunteerReply {
    pub volunteer: String,
    pub task: String,
    pub action: ReplyAction,
    /// The proposal round answered. Optional for clients: dispatch fills it in
    /// before logging, so a replayed answer never applies to a later round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    /// With `progress` (and only then): the hours of their part done so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours_done: Option<f64>,
}

/// A collective or coordinator marks a task done (`sb.in.complete`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCompletion {
    pub task: String,
}

/// A coordinator steers the matching (`sb.in.steer`). Only coordinators may
/// send it: NATS permissions and the gateway's roles enforce that.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Steering {
    /// Never propose this pair again; release it if it is live.
    Veto { volunteer: String, task: String },
    /// Propose this pair and keep it, if the volunteer is eligible and has the time.
    Pin { volunteer: String, task: String },
    /// Multiply the impact of the tasks of `collective` and/or with `tag` by
    /// `factor` (0 < factor <= 10; 1 removes the weight). A campaign.
    Weight {
        #[serde(default)]
        collective: Option<String>,
        #[serde(default)]
        tag: Option<String>,
        factor: f64,
    },
}

/// A vetter sets the trust tier a volunteer has earned (`sb.in.vet`):
/// 0 open, 1 vetted, 2 core. Vetting is its own role: NATS permissions and
/// the gateway let only vetters send it, not coordinators, so one stolen
/// coordinator sign-in cannot let a stranger into sensitive work. The last
/// vetting of a volunteer is in force; a lower tier revokes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Vetting {
    pub volunteer: String,
    pub trust: u8,
    /// The vetter's id, kept in the log for accountability.
    pub vetter: String,
    /// Why, for the other vetters (never shown to the volunteer).
    #[serde(default)]
    pub note: Option<String>,
}

/// Asks for the current plan (`sb.plan.get`); the body is `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanRequest {}

/// The error codes of a refused request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is malformed or breaks a rule; `field` says where.
    Invalid,
    /// It contradicts what was already accepted (a task id owned by another need, a second answer).
    Conflict,
    /// It names something the switchboard does not know.
    NotFound,
    /// The sender may not do this.
    Unauthorized,
    /// The body is larger than the limit.
    TooLarge,
    /// The switchboard could not make it durable now; sending it again is safe.
    Unavailable,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The offending part, e.g. `tasks[2].hours`; absent when the whole body is at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, field: Option<String>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            field,
        }
    }
}

/// Every reply to a request: `{"ok": true, "id", "seq"}` or `{"ok": false, "error"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reply {
    pub ok: bool,
    /// The id the request was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Sequence of the event in `SB_EVENTS`; the same for a repeated request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// Something the sender should know about an accepted request (a
    /// declared trust tier that was ignored, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The request header a client may send an idempotency key in: every
/// retry of a request with the same key and body is one event, whatever
/// was written in between. Without it, the same body as the last event
/// about the same thing is a repeat, and anything else a new update.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Nats-Msg-Id";

/// The header every event in `SB_EVENTS` carries naming who caused it
/// ("who did it"): `volunteer:<id>`, `collective:<id>`, `pledge:<id>` or
/// `sender:<id>` from a per-sender subject (NATS let only that person
/// publish there); on a shared subject, what the trusted client sent in
/// this header (the gateway names its signed-in principal:
/// `coordinator`, `vetter:<id>`, ...), else `trusted`. A client's own value
/// on a per-sender subject is ignored: the subject decides.
pub const ACTOR_HEADER: &str = "Sb-Actor";

/// The actor of a request on a shared subject that names none.
pub const ACTOR_TRUSTED: &str = "trusted";

impl Reply {
    pub fn accepted(id: impl Into<String>, seq: u64) -> Reply {
        Reply {
            ok: true,
            id: Some(id.into()),
            seq: Some(seq),
            error: None,
            note: None,
        }
    }

    /// The same reply, with `note` for the sender when there is one.
    pub fn with_note(mut self, note: Option<String>) -> Reply {
        self.note = note;
        self
    }

    pub fn refused(error: ErrorBody) -> Reply {
        Reply {
            ok: false,
            id: None,
            seq: None,
            error: Some(error),
            note: None,
        }
    }
}

/// How a volunteer fits a task, the constraint that binds, and the
/// next-best alternative: the `why` of every proposal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Why {
    /// The task's impact.
    #[serde(default)]
    pub impact: f64,
    /// Skill name to `[required, held]` levels.
    #[serde(default)]
    pub skills: BTreeMap<String, [u8; 2]>,
    /// Hours of the volunteer's capacity left inside the task's window after this assignment.
    #[serde(default)]
    pub slack_hours: f64,
    /// Hours from now until the volunteer's availability ends.
    #[serde(default)]
    pub tenure_left_hours: f64,
    /// The rule that limits this choice most, in words.
    #[serde(default)]
    pub binding: String,
    /// The team this volunteer joins (volunteer ids, including this one).
    #[serde(default)]
    pub team: Vec<String>,
    /// The next-best alternative and why it lost, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<String>,
}

/// A proposal of work to one volunteer (`sb.match.proposed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MatchProposed {
    pub volunteer: String,
    pub task: String,
    pub need: String,
    pub collective: String,
    pub impact: f64,
    pub why: Why,
    /// The proposal expires unanswered at this time.
    pub respond_by: DateTime<Utc>,
    /// Counts the proposals of this same pair, so a re-proposal is a new message.
    #[serde(default)]
    pub round: u32,
    #[serde(default = "epoch")]
    pub at: DateTime<Utc>,
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The `reason` of a release because the volunteer dropped the work.
pub const REASON_DROPPED: &str = "dropped by the volunteer";
/// The `reason` of a release because accepted work was never checked in.
pub const REASON_SILENT_DROP_OUT: &str = "no check-in: a silent drop-out";

/// Any other change of an assignment (`sb.match.accepted`, `declined`,
/// `expired`, `checked_in`, `released`, `completed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MatchChanged {
    pub volunteer: String,
    pub task: String,
    /// The proposal round this is about.
    #[serde(default)]
    pub round: u32,
    /// Why, in words, when the switchboard decided (released: "the team could not be completed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For whoever takes the work over when a volunteer leaves it: what was
    /// done and whom to ask. Only on `released`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
    #[serde(default = "epoch")]
    pub at: DateTime<Utc>,
}

/// What a volunteer receives on `sb.to.volunteer.<id>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VolunteerMessage {
    /// `proposal` for new work, `confirmed` once accepted (with its
    /// calendar entry), `updated` when held work's task changed,
    /// `reminder` for accepted work awaiting a check-in, `shift_reminder`
    /// 24 h and 2 h before a held shift starts, `released` when the work
    /// is taken back, `cancelled` when the collective cancelled held work;
    /// more kinds may come (clients ignore unknown ones).
    pub kind: String,
    /// Unique per message; a client that sees one twice drops the repeat.
    pub message_id: String,
    pub volunteer: String,
    pub task: String,
    pub title: String,
    pub need: String,
    pub collective: String,
    pub hours: f64,
    pub earliest_start: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    #[serde(default)]
    pub region: Option<String>,
    pub why: Why,
    pub respond_by: DateTime<Utc>,
    /// Where to send the answer (request/reply).
    pub reply_subject: String,
    /// The exact body to send to accept.
    pub accept: VolunteerReply,
    /// The exact body to send to decline.
    pub decline: VolunteerReply,
    /// On a `reminder`: the exact body to send to check in ("still on it").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin: Option<VolunteerReply>,
    /// A sentence for the volunteer, on kinds other than `proposal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The task's fixed time, when it is a shift (the window is then the shift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<Shift>,
    /// Where the work happens, when the task names a place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
    /// What the team should know (who to ask for, what to bring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The volunteer's IANA time zone (from their offer's `tz`), in which
    /// times are shown to them; absent: `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// The calendar entry of this assignment, on `confirmed`, `updated`,
    /// `shift_reminder`, and `released` and `cancelled` (where it is cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarEntry>,
}

/// The identity and revision of an assignment's calendar entry, so that a
/// client writing its own calendar event updates or cancels one event
/// rather than adding another (RFC 5545 `UID` and `SEQUENCE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CalendarEntry {
    /// Stable for the volunteer on the task, across rounds and updates.
    pub uid: String,
    /// Raised on every change of the assignment or its task; a calendar
    /// keeps the event of the highest sequence.
    pub sequence: u32,
    /// The entry is withdrawn: the volunteer was released or the task cancelled.
    #[serde(default)]
    pub cancelled: bool,
}

/// One assignment in a volunteer's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedWork {
    pub task: String,
    pub title: String,
    pub need: String,
    pub collective: String,
    /// `proposed`, `accepted` or `checked_in`.
    pub state: String,
    pub hours: f64,
    pub earliest_start: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// For a proposal: when it expires unanswered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_by: Option<DateTime<Utc>>,
}

/// "My three weeks": everything a volunteer holds, over their whole tenure,
/// pushed on `sb.to.volunteer.<id>` (`kind` `three_weeks`) whenever it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VolunteerPlan {
    /// Always `three_weeks`.
    pub kind: String,
    pub message_id: String,
    pub volunteer: String,
    /// When the volunteer's availability ends, if known.
    #[serde(default)]
    pub available_until: Option<DateTime<Utc>>,
    /// Work whose window has opened.
    pub now: Vec<PlannedWork>,
    /// Work starting within the next seven days.
    pub next: Vec<PlannedWork>,
    /// Work starting after that.
    pub later: Vec<PlannedWork>,
    /// Hours held in all.
    pub hours_committed: f64,
    pub at: DateTime<Utc>,
}

/// A refused input, copied to `sb.dlq.in`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// The subject the input arrived on.
    pub subject: String,
    pub error: ErrorBody,
    /// The body as received, with every `name`, `contact`, `donor`, `email`
    /// and `phone` value replaced by `"(redacted)"` and cut to a bounded
    /// length; a body that is not JSON is not kept, only its length.
    pub body: String,
    pub at: DateTime<Utc>,
}
