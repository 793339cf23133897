//! Email to volunteers, against a local SMTP sink (aiosmtpd, from the test
//! venv): a proposal arrives by email with accept and decline links that
//! sign the volunteer in (and no calendar event: nothing is in a calendar
//! before a yes); accepted work gets a reminder before its deadline by
//! email and on NATS. A shift's accepted member gets an `.ics` invite with
//! the shift's own times, place and instructions, its cancel (same UID,
//! higher SEQUENCE) when released or when the shift is cancelled, and a
//! reminder before the shift starts. The address stays in dispatch: it is
//! on no match event and no inbox message. No sleeps: each test waits for
//! the message it expects, under a limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use proto::subjects::Input;
use serde_json::{json, Value};
use tests::{gateway_link, venv_python, Inbox, NatsServer, Options, Switchboard};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Longest wait for one email, in real seconds: a solve, a delivery, an SMTP
/// conversation on a loaded machine.
const EMAIL_WAIT_S_MAX: u64 = 60;
/// Switchboard seconds per real second in the reminder test (one hour a second).
const CLOCK_SPEED: f64 = 3600.0;
const ADDRESS: &str = "ada@example.org";
const PUBLIC_URL: &str = "http://switchboard.test";

/// The SMTP sink process and what it prints, one JSON line per message.
struct Sink {
    host: String,
    port: u16,
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl Sink {
    async fn start() -> Sink {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/smtp_sink.py");
        let mut child = tokio::process::Command::new(venv_python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the SMTP sink (deploy/bin/install-prerequisites installs aiosmtpd)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next_line()
            .await
            .unwrap()
            .expect("the sink printed nothing");
        let listening: Value = serde_json::from_str(&first).unwrap();
        let port = listening["listening"]
            .as_u64()
            .expect("the sink's first line names its port") as u16;
        Sink {
            host: listening["host"].as_str().unwrap().to_owned(),
            port,
            lines,
            _child: child,
        }
    }

    /// The next email whose subject starts with `subject`.
    async fn next_email(&mut self, subject: &str) -> Value {
        let wait = async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the sink stopped");
                let email: Value = serde_json::from_str(&line).unwrap();
                if email["subject"].as_str().unwrap_or("").starts_with(subject) {
                    return email;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(EMAIL_WAIT_S_MAX), wait)
            .await
            .unwrap_or_else(|_| panic!("no email \"{subject}...\" within {EMAIL_WAIT_S_MAX} s"))
    }
}

fn smtp(sink: &Sink) -> dispatch::SmtpConfig {
    dispatch::SmtpConfig {
        host: sink.host.clone(),
        port: sink.port,
        from: "Switchboard <switchboard@example.org>".to_owned(),
        public_url: format!("{PUBLIC_URL}/"),
        volunteer_sign_in: Some(Arc::new(|volunteer: &str| {
            gateway_link(&gateway::access::Principal::Volunteer(volunteer.to_owned()))
        })),
    }
}

fn part<'email>(email: &'email Value, content_type: &str) -> &'email Value {
    email["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|part| part["content_type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {email:#}"))
}

fn at(clock: &plumbing::Clock, hours: i64) -> String {
    (clock.now() + chrono::Duration::hours(hours))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn post(switchboard: &Switchboard, clock: &plumbing::Clock, deadline_hours: i64) {
    let need = json!({"id": "n-1", "collective": "c-pantry", "title": "Pantry", "tasks": [
        {"id": "t-drive", "title": "Deliveries, north side", "skills": {"driving": 1}, "hours": 2.0,
         "slots": 1, "earliest_start": at(clock, 0), "deadline": at(clock, deadline_hours),
         "impact": 10.0}]});
    switchboard.accept(Input::Need, &need).await;
    let offer = json!({"id": "v-ada", "skills": {"driving": 2}, "hours_per_week": 20.0,
        "available_from": at(clock, -1), "available_until": at(clock, 21 * 24),
        "region": null, "contact": ADDRESS});
    switchboard.accept(Input::Volunteer, &offer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_is_emailed_with_answer_links_and_no_calendar_event() {
    let nats = NatsServer::start().await;
    let mut sink = Sink::start().await;
    let state = tempfile::tempdir().unwrap();
    let clock = plumbing::Clock::system();
    let options = Options {
        clock: clock.clone(),
        smtp: Some(smtp(&sink)),
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let mut inbox = Inbox::open(
        &switchboard.client,
        switchboard.subjects.to_volunteer("v-ada"),
    )
    .await;
    post(&switchboard, &clock, 7 * 24).await;

    let email = sink.next_email("Can you take this on?").await;
    assert_eq!(email["to"], json!([ADDRESS]));
    assert!(email["subject"]
        .as_str()
        .unwrap()
        .contains("Deliveries, north side"));

    let text = part(&email, "text/plain")["text"].as_str().unwrap();
    let tokens = tests::gateway_config().tokens().unwrap();
    for answer in ["accept", "decline"] {
        let link = text
            .lines()
            .find(|line| line.contains(&format!("answer={answer}")))
            .unwrap_or_else(|| panic!("no {answer} link in {text}"));
        let token = link
            .split_once(&format!("{PUBLIC_URL}/signin?token="))
            .and_then(|(_, rest)| rest.split_once("&task=t-drive&round="))
            .map(|(token, _)| token)
            .unwrap_or_else(|| panic!("the {answer} link is no sign-in link: {link}"));
        let claims = tokens.verify_claims(token);
        assert!(
            claims.is_some_and(|claims| claims.purpose == gateway::access::Purpose::Link
                && claims.principal == gateway::access::Principal::Volunteer("v-ada".to_owned())),
            "the {answer} link signs v-ada in: {link}"
        );
    }

    // A proposal is not yet in anyone's calendar.
    let parts = email["parts"].as_array().unwrap();
    assert!(
        parts
            .iter()
            .all(|part| part["content_type"] != "text/calendar"),
        "{email:#}"
    );

    let (_, message) = inbox
        .next_where(|_, message| message["kind"] == "proposal")
        .await;
    assert!(message.get("calendar").is_none(), "{message:#}");
    assert!(
        !message.to_string().contains(ADDRESS),
        "the inbox message carries no address"
    );

    let matches = switchboard
        .stream_messages(&switchboard.subjects.matches_stream())
        .await;
    assert!(!matches.is_empty());
    for (subject, event) in matches {
        assert!(
            !event.to_string().contains(ADDRESS),
            "{subject} carries the address"
        );
    }
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_work_gets_a_reminder_a_day_before_its_deadline_by_email_and_on_nats() {
    let nats = NatsServer::start().await;
    let mut sink = Sink::start().await;
    let state = tempfile::tempdir().unwrap();
    let clock = plumbing::Clock::starting_at(chrono::Utc::now(), CLOCK_SPEED);
    let options = Options {
        clock: clock.clone(),
        smtp: Some(smtp(&sink)),
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let mut inbox = Inbox::open(
        &switchboard.client,
        switchboard.subjects.to_volunteer("v-ada"),
    )
    .await;
    // Due in 30 hours: the reminder comes 6 switchboard hours after posting,
    // before the check-in reminder (halfway through the 72-hour window).
    post(&switchboard, &clock, 30).await;

    // Dispatch knows the proposal once it has delivered it.
    let (_, proposal) = inbox
        .next_where(|_, message| message["kind"] == "proposal")
        .await;
    let answer = proposal["accept"].clone();
    switchboard.accept(Input::Reply, &answer).await;

    let (_, reminder) = inbox
        .next_where(|_, message| {
            message["message_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("deadline_reminder:"))
        })
        .await;
    assert_eq!(reminder["kind"], "reminder");
    assert_eq!(reminder["checkin"]["action"], "checkin");

    let email = sink.next_email("Reminder:").await;
    assert_eq!(email["to"], json!([ADDRESS]));
    let text = part(&email, "text/plain")["text"].as_str().unwrap();
    assert!(text.contains("This is due on"), "{text}");
    assert!(text.contains("answer=checkin"), "{text}");
    switchboard.stop().await;
}

const SHIFT_TASK: &str = "t-sat";
/// Switchboard seconds per real second in the shift reminder test.
const SHIFT_CLOCK_SPEED: f64 = 240.0;
/// Longest real wait for the shift reminder: its 45 s, and a margin.
const SHIFT_REMINDER_WAIT_S_MAX: u64 = 120;
const INSTRUCTIONS: &str = "Ask for Rosa at the side door; bring gloves.";

/// A 3-hour shift `starts_in_hours` from now at a Detroit pantry, and
/// v-ada (in Detroit's zone) who can take it. Returns its start and end.
async fn post_shift(
    switchboard: &Switchboard,
    clock: &plumbing::Clock,
    starts_in_hours: i64,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    // One reading of the fast clock for both ends: two readings straddle a
    // second of switchboard time often enough to make the shift 3 h 1 s.
    let start_at = clock.now() + chrono::Duration::hours(starts_in_hours);
    let format = |time: chrono::DateTime<chrono::Utc>| {
        time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let start = format(start_at);
    let end = format(start_at + chrono::Duration::hours(3));
    let need = json!({"id": "n-pantry", "collective": "c-pantry", "title": "Pantry", "tasks": [
        {"id": SHIFT_TASK, "title": "Distribution crew", "skills": {}, "hours": 3.0, "slots": 1,
         "earliest_start": start, "deadline": end, "impact": 10.0,
         "shift": {"start": start, "end": end},
         "place": {"lat": 42.3314, "lon": -83.0458, "name": "Eastside pantry",
                   "address": "4100 Gratiot Ave, Detroit"},
         "instructions": INSTRUCTIONS}]});
    switchboard.accept(Input::Need, &need).await;
    let offer = json!({"id": "v-ada", "skills": {}, "hours_per_week": 20.0,
        "available_from": at(clock, -1), "available_until": at(clock, 21 * 24),
        "region": null, "contact": ADDRESS, "tz": "America/Detroit"});
    switchboard.accept(Input::Volunteer, &offer).await;
    let parse = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    (parse(&start), parse(&end))
}

/// The one event of an `.ics` attachment, parsed with the icalendar crate.
fn invite_of(email: &Value) -> (icalendar::Calendar, icalendar::Event) {
    let calendar = part(email, "text/calendar");
    assert_eq!(calendar["filename"], "shift.ics");
    let calendar: icalendar::Calendar = calendar["text"].as_str().unwrap().parse().unwrap();
    let event = calendar.events().next().expect("one VEVENT").clone();
    (calendar, event)
}

fn utc_time(time: Option<icalendar::DatePerhapsTime>) -> chrono::DateTime<chrono::Utc> {
    match time {
        Some(icalendar::DatePerhapsTime::DateTime(icalendar::CalendarDateTime::Utc(at))) => at,
        other => panic!("not a UTC time: {other:?}"),
    }
}

/// The volunteer accepts the proposal they were sent; returns it.
async fn accept_proposal(switchboard: &Switchboard, inbox: &mut Inbox) -> Value {
    let (_, proposal) = inbox
        .next_where(|_, message| message["kind"] == "proposal" && message["task"] == SHIFT_TASK)
        .await;
    switchboard.accept(Input::Reply, &proposal["accept"]).await;
    proposal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shifts_accepted_member_gets_an_invite_with_its_times_and_place_and_its_cancel_when_released(
) {
    use icalendar::{Component, EventLike, EventStatus};
    let nats = NatsServer::start().await;
    let mut sink = Sink::start().await;
    let state = tempfile::tempdir().unwrap();
    let clock = plumbing::Clock::system();
    let options = Options {
        clock: clock.clone(),
        smtp: Some(smtp(&sink)),
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let mut inbox = Inbox::open(
        &switchboard.client,
        switchboard.subjects.to_volunteer("v-ada"),
    )
    .await;
    let (start, end) = post_shift(&switchboard, &clock, 48).await;
    let proposal = accept_proposal(&switchboard, &mut inbox).await;
    assert_eq!(proposal["place"]["address"], "4100 Gratiot Ave, Detroit");

    let confirmed = sink.next_email("Confirmed: Distribution crew").await;
    assert_eq!(confirmed["to"], json!([ADDRESS]));
    let text = part(&confirmed, "text/plain")["text"].as_str().unwrap();
    assert!(text.contains("(America/Detroit)"), "{text}");
    assert!(text.contains("mlat=42.3314&mlon=-83.0458"), "{text}");
    let (calendar, event) = invite_of(&confirmed);
    assert_eq!(calendar.property_value("METHOD"), Some("PUBLISH"));
    assert_eq!(
        calendar.property_value("X-WR-TIMEZONE"),
        Some("America/Detroit")
    );
    // The shift's times, not a window; the place; the instructions.
    assert_eq!(utc_time(event.get_start()), start);
    assert_eq!(utc_time(event.get_end()), end);
    assert_eq!(
        event.get_location(),
        Some("Eastside pantry, 4100 Gratiot Ave, Detroit")
    );
    assert_eq!(event.property_value("GEO"), Some("42.3314;-83.0458"));
    let local = start.with_timezone(&chrono_tz::America::Detroit);
    let description = event.get_description().unwrap();
    assert!(
        description.starts_with(&local.format("%a %b %d %H:%M").to_string()),
        "{description}"
    );
    assert!(description.contains(INSTRUCTIONS), "{description}");
    assert_eq!(event.get_status(), Some(EventStatus::Confirmed));
    let uid = event.get_uid().unwrap().to_owned();
    assert_eq!(uid, format!("v-ada/{SHIFT_TASK}@switchboard"));
    let accepted_sequence = event.get_sequence().unwrap();

    // The same entry on NATS, for clients that write their own event.
    let (_, message) = inbox
        .next_where(|_, message| message["kind"] == "confirmed")
        .await;
    assert_eq!(message["calendar"]["uid"], uid.as_str());
    assert_eq!(message["calendar"]["sequence"], accepted_sequence);
    assert_eq!(message["tz"], "America/Detroit");

    // The member drops it: the event is cancelled, same UID, higher SEQUENCE.
    let drop = json!({"volunteer": "v-ada", "task": SHIFT_TASK, "action": "drop",
        "round": proposal["accept"]["round"]});
    switchboard.accept(Input::Reply, &drop).await;
    let released = sink.next_email("Released: Distribution crew").await;
    let (calendar, cancelled) = invite_of(&released);
    assert_eq!(calendar.property_value("METHOD"), Some("CANCEL"));
    assert_eq!(cancelled.get_status(), Some(EventStatus::Cancelled));
    assert_eq!(cancelled.get_uid(), Some(uid.as_str()));
    assert!(cancelled.get_sequence().unwrap() > accepted_sequence);
    assert_eq!(utc_time(cancelled.get_start()), start);
    let (_, message) = inbox
        .next_where(|_, message| message["kind"] == "released")
        .await;
    assert_eq!(message["calendar"]["cancelled"], true);
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_shift_cancels_its_members_invite() {
    use icalendar::{Component, EventStatus};
    let nats = NatsServer::start().await;
    let mut sink = Sink::start().await;
    let state = tempfile::tempdir().unwrap();
    let clock = plumbing::Clock::system();
    let options = Options {
        clock: clock.clone(),
        smtp: Some(smtp(&sink)),
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let mut inbox = Inbox::open(
        &switchboard.client,
        switchboard.subjects.to_volunteer("v-ada"),
    )
    .await;
    post_shift(&switchboard, &clock, 48).await;
    accept_proposal(&switchboard, &mut inbox).await;
    let (_, event) = invite_of(&sink.next_email("Confirmed: Distribution crew").await);
    let accepted_sequence = event.get_sequence().unwrap();

    // The collective cancels the shift; the solver releases its member.
    let withdraw = json!({"kind": "task", "id": SHIFT_TASK});
    switchboard.accept(Input::Withdraw, &withdraw).await;
    let email = sink.next_email("Cancelled: Distribution crew").await;
    let (calendar, cancelled) = invite_of(&email);
    assert_eq!(calendar.property_value("METHOD"), Some("CANCEL"));
    assert_eq!(cancelled.get_status(), Some(EventStatus::Cancelled));
    assert_eq!(cancelled.get_uid(), event.get_uid());
    assert!(cancelled.get_sequence().unwrap() > accepted_sequence);
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_shift_is_reminded_two_hours_ahead_on_nats_and_by_email_and_not_again_after_a_restart(
) {
    let nats = NatsServer::start().await;
    let mut sink = Sink::start().await;
    let state = tempfile::tempdir().unwrap();
    // Four switchboard minutes a real second: the shift starts in 5 h, its
    // 2 h reminder is due 45 real seconds after posting, which leaves a
    // loaded machine as long to deliver the proposal and take the accept
    // (accepted later than that, the reminder is rightly never owed). The
    // 24 h one is moot: the shift was posted inside it.
    let clock = plumbing::Clock::starting_at(chrono::Utc::now(), SHIFT_CLOCK_SPEED);
    let options = Options {
        clock: clock.clone(),
        smtp: Some(smtp(&sink)),
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options.clone()).await;
    let mut inbox = Inbox::open(
        &switchboard.client,
        switchboard.subjects.to_volunteer("v-ada"),
    )
    .await;
    let mut reminders = switchboard
        .client
        .subscribe(switchboard.subjects.to_volunteer("v-ada"))
        .await
        .unwrap();
    post_shift(&switchboard, &clock, 5).await;
    accept_proposal(&switchboard, &mut inbox).await;
    let wait = async {
        loop {
            let message = reminders.next().await.expect("the subscription ended");
            let body: Value = serde_json::from_slice(&message.payload).unwrap();
            if body["kind"] == "shift_reminder" {
                return body;
            }
        }
    };
    let reminder = tokio::time::timeout(Duration::from_secs(SHIFT_REMINDER_WAIT_S_MAX), wait)
        .await
        .expect("no shift reminder in time");
    assert_eq!(
        reminder["message_id"],
        format!("shift_reminder:v-ada:{SHIFT_TASK}:0:2h")
    );
    let note = reminder["note"].as_str().unwrap();
    assert!(note.starts_with("Your shift starts in 2 hours: "), "{note}");
    assert!(
        note.contains("(America/Detroit) at 4100 Gratiot Ave, Detroit."),
        "{note}"
    );
    assert!(note.contains(INSTRUCTIONS), "{note}");
    assert_eq!(reminder["checkin"]["action"], "checkin");
    let email = sink.next_email("Shift reminder: Distribution crew").await;
    let text = part(&email, "text/plain")["text"].as_str().unwrap();
    assert!(text.contains("Your shift starts in 2 hours"), "{text}");

    // Restarted before the shift starts, dispatch knows the reminder went
    // out (its store says so) and sends it no second time: the next email
    // v-ada gets is the proposal of new work posted after the restart.
    switchboard.stop().await;
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let need = json!({"id": "n-after", "collective": "c-pantry", "title": "Pantry", "tasks": [
        {"id": "t-after", "title": "Call the donors", "skills": {}, "hours": 1.0, "slots": 1,
         "earliest_start": at(&clock, 0), "deadline": at(&clock, 24 * 5), "impact": 5.0}]});
    switchboard.accept(Input::Need, &need).await;
    let wait = async {
        loop {
            let line = sink
                .lines
                .next_line()
                .await
                .unwrap()
                .expect("the sink stopped");
            let email: Value = serde_json::from_str(&line).unwrap();
            let subject = email["subject"].as_str().unwrap_or("").to_owned();
            assert!(
                !subject.starts_with("Shift reminder"),
                "a second reminder after the restart: {subject}"
            );
            if subject.starts_with("Can you take this on? Call the donors") {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(EMAIL_WAIT_S_MAX), wait)
        .await
        .expect("no proposal of the new work in time");
    switchboard.stop().await;
}
