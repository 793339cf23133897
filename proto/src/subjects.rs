//! Every subject and stream name of the switchboard, built in this one place.
//!
//! Architecture invariant: no other module anywhere spells a subject or a
//! stream name; they all ask [`Subjects`]. The prefix (`sb` by default) lets
//! several switchboards share one NATS deployment.

use crate::ids::is_valid_id;
use crate::validate::Invalid;

/// The default first token of every subject.
pub const PREFIX_DEFAULT: &str = "sb";

/// Queue group shared by every instance of a service endpoint, so several
/// instances split the requests between them.
pub const QUEUE_GROUP_INGEST: &str = "sb-ingest";
pub const QUEUE_GROUP_DISPATCH: &str = "sb-dispatch";
pub const QUEUE_GROUP_SOLVER: &str = "sb-solver";
pub const QUEUE_GROUP_LEDGER: &str = "sb-ledger";

/// The requests a client sends (request/reply, `<prefix>.in.<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    Volunteer,
    Need,
    Pledge,
    Withdraw,
    Reply,
    Complete,
    /// A coordinator steers the matching (veto, pin, campaign weight).
    Steer,
    /// A vetter sets a volunteer's trust tier.
    Vet,
    /// A coordinator or collective confirms that held money was paid out.
    Disburse,
    /// A volunteer or a donor asks to be forgotten: their data key is
    /// deleted, so their private fields can no longer be read anywhere.
    Forget,
}

impl Input {
    pub const ALL: [Input; 10] = [
        Input::Volunteer,
        Input::Need,
        Input::Pledge,
        Input::Withdraw,
        Input::Reply,
        Input::Complete,
        Input::Steer,
        Input::Vet,
        Input::Disburse,
        Input::Forget,
    ];

    /// The inputs that also have a per-sender subject
    /// (`<prefix>.in.<name>.<sender>`): those a person sends about
    /// themselves. Steer, vet and disburse are sent by coordinators,
    /// vetters and the gateway on the shared subjects only.
    pub const PER_SENDER: [Input; 7] = [
        Input::Volunteer,
        Input::Need,
        Input::Pledge,
        Input::Withdraw,
        Input::Reply,
        Input::Complete,
        Input::Forget,
    ];

    /// Whether this input has a per-sender subject.
    pub fn has_sender_subject(self) -> bool {
        Input::PER_SENDER.contains(&self)
    }

    /// What the last token of a per-sender subject names: the volunteer
    /// for offers and answers, the collective for needs and completions,
    /// the pledge for pledges, and for withdrawals the volunteer, the
    /// pledge or the collective owning the need or task withdrawn.
    pub fn sender_role(self) -> &'static str {
        match self {
            Input::Volunteer | Input::Reply => "volunteer",
            Input::Need | Input::Complete => "collective",
            Input::Pledge => "pledge",
            Input::Withdraw | Input::Forget => "sender",
            Input::Steer => "coordinator",
            Input::Vet => "vetter",
            Input::Disburse => "coordinator",
        }
    }

    /// The last token of the request subject, also the endpoint's name.
    pub fn token(self) -> &'static str {
        match self {
            Input::Volunteer => "volunteer",
            Input::Need => "need",
            Input::Pledge => "pledge",
            Input::Withdraw => "withdraw",
            Input::Reply => "reply",
            Input::Complete => "complete",
            Input::Steer => "steer",
            Input::Vet => "vet",
            Input::Disburse => "disburse",
            Input::Forget => "forget",
        }
    }
}

/// The kinds of accepted input kept in the events stream (`<prefix>.ev.<kind>.…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    VolunteerOffered,
    NeedPosted,
    PledgeOffered,
    Withdrawn,
    TaskCompleted,
    AssignmentAnswered,
    Steered,
    Vetted,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::VolunteerOffered,
        EventKind::NeedPosted,
        EventKind::PledgeOffered,
        EventKind::Withdrawn,
        EventKind::TaskCompleted,
        EventKind::AssignmentAnswered,
        EventKind::Steered,
        EventKind::Vetted,
    ];

    pub fn token(self) -> &'static str {
        match self {
            EventKind::VolunteerOffered => "volunteer",
            EventKind::NeedPosted => "need",
            EventKind::PledgeOffered => "pledge",
            EventKind::Withdrawn => "withdrawn",
            EventKind::TaskCompleted => "completed",
            EventKind::AssignmentAnswered => "answered",
            EventKind::Steered => "steered",
            EventKind::Vetted => "vetted",
        }
    }

    fn from_token(token: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.token() == token)
    }
}

/// The kinds of match event kept in the matches stream (`<prefix>.match.<kind>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    Proposed,
    Accepted,
    Declined,
    Expired,
    CheckedIn,
    Released,
    Completed,
}

impl MatchKind {
    pub const ALL: [MatchKind; 7] = [
        MatchKind::Proposed,
        MatchKind::Accepted,
        MatchKind::Declined,
        MatchKind::Expired,
        MatchKind::CheckedIn,
        MatchKind::Released,
        MatchKind::Completed,
    ];

    pub fn token(self) -> &'static str {
        match self {
            MatchKind::Proposed => "proposed",
            MatchKind::Accepted => "accepted",
            MatchKind::Declined => "declined",
            MatchKind::Expired => "expired",
            MatchKind::CheckedIn => "checked_in",
            MatchKind::Released => "released",
            MatchKind::Completed => "completed",
        }
    }

    fn from_token(token: &str) -> Option<MatchKind> {
        MatchKind::ALL
            .into_iter()
            .find(|kind| kind.token() == token)
    }
}

/// Subject and stream names under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Subjects {
            prefix: PREFIX_DEFAULT.to_owned(),
        }
    }
}

impl Subjects {
    /// A prefix follows the id syntax so it is one subject token.
    pub fn new(prefix: &str) -> Result<Subjects, Invalid> {
        if is_valid_id(prefix) {
            Ok(Subjects {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(Invalid::new("prefix", "must match [A-Za-z0-9_-]{1,64}"))
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `sb.in.volunteer`, `sb.in.need`, …
    pub fn input(&self, input: Input) -> String {
        format!("{}.in.{}", self.prefix, input.token())
    }

    /// `sb.in.reply.v1`, `sb.in.need.c1`, …: the subject one sender's
    /// requests go to, so NATS permissions can bind a person's credentials
    /// to their own id. The service refuses a body whose id is not `sender`.
    pub fn input_from(&self, input: Input, sender: &str) -> String {
        format!("{}.in.{}.{sender}", self.prefix, input.token())
    }

    /// Every sender's subject of one input, `sb.in.reply.*`, for a service's endpoint.
    pub fn input_from_any(&self, input: Input) -> String {
        format!("{}.in.{}.*", self.prefix, input.token())
    }

    /// The input of a request subject, and its sender when it is a
    /// per-sender one: `sb.in.reply` is `(Reply, None)`, `sb.in.reply.v1`
    /// is `(Reply, Some("v1"))`. `None` for any other subject, including a
    /// per-sender subject of an input that has none.
    pub fn parse_input<'a>(&self, subject: &'a str) -> Option<(Input, Option<&'a str>)> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix(".in.")?;
        let (token, sender) = match rest.split_once('.') {
            Some((token, sender)) => (token, Some(sender)),
            None => (rest, None),
        };
        let input = Input::ALL
            .into_iter()
            .find(|input| input.token() == token)?;
        match sender {
            None => Some((input, None)),
            Some(sender) if input.has_sender_subject() && is_valid_id(sender) => {
                Some((input, Some(sender)))
            }
            Some(_) => None,
        }
    }

    /// `sb.plan.get`: the current plan, answered by the solver.
    pub fn plan_get(&self) -> String {
        format!("{}.plan.get", self.prefix)
    }

    /// Dead letters: every refused input, with its error.
    pub fn dead_letter_input(&self) -> String {
        format!("{}.dlq.in", self.prefix)
    }

    /// The subject an accepted input is logged under. `key` is the id the
    /// event is about (`volunteer.v1`, `withdrawn.task.t3`, `answered.v1.t3`),
    /// so "the last event about X" is a per-subject lookup.
    pub fn event(&self, kind: EventKind, key: &[&str]) -> String {
        let mut subject = format!("{}.ev.{}", self.prefix, kind.token());
        for token in key {
            subject.push('.');
            subject.push_str(token);
        }
        subject
    }

    /// Every subject of the events stream.
    pub fn events_all(&self) -> String {
        format!("{}.ev.>", self.prefix)
    }

    /// The kind of an events-stream subject, or `None` when it is not one.
    pub fn parse_event(&self, subject: &str) -> Option<EventKind> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix(".ev.")?;
        let token = rest.split('.').next()?;
        EventKind::from_token(token)
    }

    /// `sb.match.proposed`, `sb.match.accepted`, …
    pub fn match_event(&self, kind: MatchKind) -> String {
        format!("{}.match.{}", self.prefix, kind.token())
    }

    pub fn matches_all(&self) -> String {
        format!("{}.match.>", self.prefix)
    }

    pub fn parse_match(&self, subject: &str) -> Option<MatchKind> {
        let token = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".match.")?;
        MatchKind::from_token(token)
    }

    /// What one volunteer is asked to do: `sb.to.volunteer.<id>`.
    pub fn to_volunteer(&self, volunteer: &str) -> String {
        format!("{}.to.volunteer.{}", self.prefix, volunteer)
    }

    /// Every volunteer's delivery subject (for the inbox stream).
    pub fn to_volunteer_all(&self) -> String {
        format!("{}.to.volunteer.*", self.prefix)
    }

    /// Stream of every accepted input, the log of record: `SB_EVENTS`.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_ascii_uppercase())
    }

    /// Stream of every match event, replayable by late dashboards: `SB_MATCHES`.
    pub fn matches_stream(&self) -> String {
        format!("{}_MATCHES", self.prefix.to_ascii_uppercase())
    }

    /// Stream of what was sent to volunteers, so an offline phone catches up: `SB_INBOX`.
    pub fn inbox_stream(&self) -> String {
        format!("{}_INBOX", self.prefix.to_ascii_uppercase())
    }

    /// A money ledger entry: `sb.ledger.<kind>.<task or pledge>`.
    pub fn ledger(&self, kind: crate::money::EntryKind, key: &str) -> String {
        format!("{}.ledger.{}.{key}", self.prefix, kind.token())
    }

    /// Every subject of the money stream.
    pub fn ledger_all(&self) -> String {
        format!("{}.ledger.>", self.prefix)
    }

    /// The kind of a money-stream subject, or `None` when it is not one.
    pub fn parse_ledger(&self, subject: &str) -> Option<crate::money::EntryKind> {
        let rest = subject
            .strip_prefix(&self.prefix)?
            .strip_prefix(".ledger.")?;
        crate::money::EntryKind::from_token(rest.split('.').next()?)
    }

    /// Stream of every money movement, the ledger of record: `SB_LEDGER`.
    pub fn ledger_stream(&self) -> String {
        format!("{}_LEDGER", self.prefix.to_ascii_uppercase())
    }

    /// Stream of refused inputs kept for coordinators: `SB_DLQ`.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DLQ", self.prefix.to_ascii_uppercase())
    }

    /// Key-value bucket of revoked and exchanged sign-in tokens, shared by
    /// every gateway instance: `SB_REVOKED_TOKENS`.
    pub fn token_revocation_bucket(&self) -> String {
        format!("{}_REVOKED_TOKENS", self.prefix.to_ascii_uppercase())
    }

    /// Key-value bucket of each person's data key (`SB_PEOPLE_KEYS`): their
    /// private fields are sealed under it wherever they are kept, so
    /// deleting the key erases them everywhere ("forget me").
    pub fn people_key_bucket(&self) -> String {
        format!("{}_PEOPLE_KEYS", self.prefix.to_ascii_uppercase())
    }

    /// Key-value bucket of the solver instances' shard leases, one key per
    /// shard: `SB_SOLVER_LEASES` (its stream is `KV_SB_SOLVER_LEASES`).
    pub fn solver_lease_bucket(&self) -> String {
        format!("{}_SOLVER_LEASES", self.prefix.to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_those_of_the_wire_contract() {
        let subjects = Subjects::default();
        assert_eq!(subjects.input(Input::Volunteer), "sb.in.volunteer");
        assert_eq!(subjects.plan_get(), "sb.plan.get");
        assert_eq!(
            subjects.match_event(MatchKind::Proposed),
            "sb.match.proposed"
        );
        assert_eq!(subjects.to_volunteer("v1"), "sb.to.volunteer.v1");
        assert_eq!(subjects.dead_letter_input(), "sb.dlq.in");
        assert_eq!(subjects.events_stream(), "SB_EVENTS");
        assert_eq!(subjects.matches_stream(), "SB_MATCHES");
        assert_eq!(subjects.events_all(), "sb.ev.>");
        assert_eq!(subjects.solver_lease_bucket(), "SB_SOLVER_LEASES");
        assert_eq!(subjects.input(Input::Disburse), "sb.in.disburse");
        assert_eq!(subjects.ledger_stream(), "SB_LEDGER");
        assert_eq!(
            subjects.ledger(crate::money::EntryKind::Held, "t1"),
            "sb.ledger.held.t1"
        );
    }

    #[test]
    fn every_ledger_subject_parses_back_to_its_kind() {
        let subjects = Subjects::default();
        for kind in crate::money::EntryKind::ALL {
            let subject = subjects.ledger(kind, "x1");
            assert_eq!(subjects.parse_ledger(&subject), Some(kind));
        }
        assert_eq!(subjects.parse_ledger("sb.ledger.spent.x1"), None);
    }

    #[test]
    fn every_event_and_match_subject_parses_back_to_its_kind() {
        let subjects = Subjects::new("demo").unwrap();
        for kind in EventKind::ALL {
            let subject = subjects.event(kind, &["x1"]);
            assert_eq!(subjects.parse_event(&subject), Some(kind), "{subject}");
        }
        for kind in MatchKind::ALL {
            let subject = subjects.match_event(kind);
            assert_eq!(subjects.parse_match(&subject), Some(kind));
        }
        assert_eq!(
            subjects.parse_event("sb.ev.volunteer.v1"),
            None,
            "other prefix"
        );
        assert_eq!(subjects.parse_match("demo.match.unheard_of"), None);
    }

    #[test]
    fn per_sender_subjects_parse_back_to_their_input_and_sender() {
        let subjects = Subjects::default();
        assert_eq!(subjects.input_from(Input::Reply, "v1"), "sb.in.reply.v1");
        assert_eq!(subjects.input_from_any(Input::Need), "sb.in.need.*");
        for input in Input::ALL {
            assert_eq!(
                subjects.parse_input(&subjects.input(input)),
                Some((input, None))
            );
            let per_sender = subjects.input_from(input, "x1");
            let expected = input.has_sender_subject().then_some((input, Some("x1")));
            assert_eq!(subjects.parse_input(&per_sender), expected, "{per_sender}");
        }
        assert_eq!(subjects.parse_input("sb.in.reply.v1.extra"), None);
        assert_eq!(subjects.parse_input("sb.in.unheard_of"), None);
        assert_eq!(subjects.parse_input("demo.in.reply"), None);
    }

    #[test]
    fn a_prefix_must_be_one_subject_token() {
        assert!(Subjects::new("a.b").is_err());
        assert!(Subjects::new("").is_err());
    }
}
