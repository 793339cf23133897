//! Email to volunteers, against a local SMTP sink (aiosmtpd, from the test
//! venv): a proposal arrives by email with accept and decline links that
//! sign the volunteer in, and an `.ics` event for the task's window; accepted
//! work gets a reminder before its deadline by email and on NATS. The
//! address stays in dispatch: it is on no match event and no inbox message.
//! No sleeps: each test waits for the message it expects, under a limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

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
async fn a_proposal_is_emailed_with_answer_links_and_a_calendar_event() {
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

    let calendar = part(&email, "text/calendar");
    assert_eq!(calendar["filename"], "task.ics");
    let ics = calendar["text"].as_str().unwrap();
    assert!(
        ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
        "{ics}"
    );
    assert!(ics.contains("BEGIN:VEVENT\r\n"), "{ics}");
    assert!(
        ics.contains("SUMMARY:Deliveries\\, north side\r\n"),
        "{ics}"
    );
    assert!(ics.ends_with("END:VEVENT\r\nEND:VCALENDAR\r\n"), "{ics}");

    // The calendar event is the NATS message: same id, so both name one thing.
    let (_, message) = inbox
        .next_where(|_, message| message["kind"] == "proposal")
        .await;
    let message_id = message["message_id"].as_str().unwrap();
    assert!(ics.contains(&format!("UID:{message_id}\r\n")), "{ics}");
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
