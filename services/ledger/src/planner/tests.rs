//! The ledger planner's behaviour, data-driven and with no nats-server:
//! inputs in, the effects they call for out. A small driver plays the
//! shell and the server: a write succeeds only if the stream still ends
//! where the planner said (as `Nats-Expected-Last-Sequence` does), the
//! solver's plan is whatever the test gives, and every outcome is fed
//! back, so a test sees a whole reconciling pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use plumbing::follow::{Log, Stored};
use plumbing::store::Store;
use proto::events::{Event, MatchEvent};
use proto::instance::Plan;
use proto::money::LedgerEntry;
use proto::subjects::Subjects;
use tokio::time::Instant;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn config() -> PlannerConfig {
    PlannerConfig {
        subjects: Subjects::default(),
        release_grace: chrono::Duration::hours(72),
    }
}

fn event(value: serde_json::Value, kind: &str) -> Event {
    let subjects = Subjects::default();
    let body = serde_json::to_vec(&value).unwrap();
    let subject = match kind {
        "need" => "sb.ev.need.n1",
        "pledge" => "sb.ev.pledge.p1",
        "withdraw_task" => "sb.ev.withdrawn.task.t1",
        other => panic!("no such event kind {other}"),
    };
    Event::decode(&subjects, subject, &body).unwrap()
}

/// A need whose one task asks for `slots` people and $50.
fn need(slots: u8) -> Event {
    event(
        serde_json::json!({
            "id": "n1", "collective": "c-pantry", "title": "pantry",
            "tasks": [{
                "id": "t1", "title": "rent", "hours": 1.0, "slots": slots,
                "earliest_start": "2026-11-22T00:00:00Z", "deadline": "2026-12-10T00:00:00Z",
                "impact": 1.0, "money_cents": 5_000,
            }],
        }),
        "need",
    )
}

fn pledge(amount_cents: u64) -> Event {
    event(
        serde_json::json!({"id": "p1", "amount_cents": amount_cents, "donor": "Ada"}),
        "pledge",
    )
}

fn funding_plan() -> Plan {
    serde_json::from_value(serde_json::json!({
        "format": "switchboard-plan/1", "assignments": [],
        "funding": [{"pledge": "p1", "task": "t1", "amount_cents": 5_000}],
    }))
    .unwrap()
}

/// The shell and the server, as a healthy deployment behaves.
struct Driver {
    planner: Planner,
    now: Now,
    sequences: [u64; 3],
    /// `SB_LEDGER` as the server holds it.
    ledger_stream: Vec<LedgerEntry>,
    /// What `sb.plan.get` answers.
    plan: Option<Plan>,
    writes: Vec<Write>,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            planner: Planner::restore(config(), Saved::default()).unwrap(),
            now: Now {
                at: at("2026-11-22T00:00:00Z"),
                steady: Instant::now(),
            },
            sequences: [0; 3],
            ledger_stream: Vec::new(),
            plan: None,
            writes: Vec::new(),
        }
    }

    fn stored(&mut self, log: Log, subject: String, payload: Vec<u8>) -> Input {
        let slot = match log {
            Log::Events => 0,
            Log::Matches => 1,
            Log::Ledger => 2,
        };
        self.sequences[slot] += 1;
        Input::Stored(
            log,
            Stored {
                subject,
                payload: Bytes::from(payload),
                sequence: self.sequences[slot],
                trace: None,
                message_id: None,
                actor: None,
                stored_at: std::time::SystemTime::UNIX_EPOCH,
                pending: 0,
            },
        )
    }

    fn event(&mut self, event: &Event) -> Input {
        self.stored(
            Log::Events,
            event.subject(&config().subjects),
            event.encode(),
        )
    }

    fn matched(&mut self, value: serde_json::Value, kind: &str) -> Input {
        let subject = format!("sb.match.{kind}");
        let event = MatchEvent::decode(
            &config().subjects,
            &subject,
            &serde_json::to_vec(&value).unwrap(),
        )
        .unwrap();
        self.stored(Log::Matches, subject, event.encode())
    }

    /// Another writer's entry, in the stream and read back.
    fn written_elsewhere(&mut self, entry: LedgerEntry) -> Input {
        self.ledger_stream.push(entry.clone());
        let subject = config().subjects.ledger(entry.kind, entry.key());
        self.stored(Log::Ledger, subject, serde_json::to_vec(&entry).unwrap())
    }

    /// Lets the pacing time pass, so a pass is due.
    fn later(&mut self) {
        self.now.steady += Duration::from_millis(RECONCILE_INTERVAL_MS);
    }

    fn run(&mut self, input: Input) -> String {
        let mut lines = Vec::new();
        let mut queue: std::collections::VecDeque<Effect> =
            self.planner.step(input, self.now).into();
        while let Some(effect) = queue.pop_front() {
            if let Some(line) = render(&effect) {
                lines.push(line);
            }
            if let Some(outcome) = self.outcome(effect) {
                let more = self.planner.step(outcome, self.now);
                for effect in more.into_iter().rev() {
                    queue.push_front(effect);
                }
            }
        }
        lines.join("\n")
    }

    fn outcome(&mut self, effect: Effect) -> Option<Input> {
        match effect {
            Effect::Commit(writes) => {
                self.writes.extend(writes);
                None
            }
            Effect::Write {
                entry,
                expected_last_sequence,
                purpose,
            } => {
                let last = self.ledger_stream.len() as u64;
                if expected_last_sequence != last {
                    return Some(Input::Conflict { entry, purpose });
                }
                self.ledger_stream.push((*entry).clone());
                self.sequences[2] = last + 1;
                Some(Input::Written {
                    entry,
                    sequence: last + 1,
                    purpose,
                })
            }
            Effect::FetchPlan => Some(Input::PlanFetched(self.plan.clone().map(Box::new))),
            _ => None,
        }
    }
}

/// One line per effect that matters to the money (wake-ups left out).
fn render(effect: &Effect) -> Option<String> {
    Some(match effect {
        Effect::Commit(writes) => {
            let writes: Vec<String> = writes
                .iter()
                .map(|write| match write {
                    Write::Entry { sequence, entry } => format!("entry {} at {sequence}", entry.id),
                    Write::Need { id, .. } => format!("need {id}"),
                    Write::Task { id, .. } => format!("task {id}"),
                    Write::Pledge(terms) => format!("pledge {}", terms.offer.id),
                    Write::Pair { key, state } => format!("pair {key} {state:?}"),
                    Write::Position { log, sequence } => format!("{log:?} at {sequence}"),
                })
                .collect();
            format!("commit {}", writes.join(", "))
        }
        Effect::Write {
            entry,
            expected_last_sequence,
            ..
        } => {
            let moved: Vec<String> = entry
                .movements
                .iter()
                .map(|movement| format!("{} {}", movement.pledge, movement.amount_cents))
                .collect();
            format!(
                "write {} ({}) expecting {expected_last_sequence}",
                entry.id,
                moved.join(", ")
            )
        }
        Effect::FetchPlan => "fetch the plan".to_owned(),
        Effect::Reply { request, reply } => match &reply.error {
            None => format!("reply #{request} ok at {}", reply.seq.unwrap_or_default()),
            Some(error) => format!("reply #{request} refused: {}", error.message),
        },
        Effect::WakeAt(_) => return None,
        Effect::Skipped(reason) => format!("skipped: {reason}"),
    })
}

fn check(driver: &mut Driver, input: Input, expect: &str) {
    let got = driver.run(input);
    let expect = expect
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        got, expect,
        "\n--- got ---\n{got}\n--- expected ---\n{expect}\n"
    );
}

/// A driver whose ledger holds p1's $50, pledged, and knows task t1.
fn pledged(slots: u8) -> Driver {
    let mut driver = Driver::new();
    let need = driver.event(&need(slots));
    driver.run(need);
    let pledge = driver.event(&pledge(5_000));
    driver.run(pledge);
    driver.run(Input::Wake);
    driver
}

#[test]
fn a_pledge_enters_the_pool_as_pledged() {
    let mut driver = Driver::new();
    let pledge = driver.event(&pledge(5_000));
    check(&mut driver, pledge, "commit pledge p1, Events at 1");
    check(
        &mut driver,
        Input::Wake,
        "
        write pledged:p1:0 (p1 5000) expecting 0
        commit entry pledged:p1:0 at 1, Ledger at 1
        ",
    );
    assert_eq!(driver.planner.ledger().available("p1").get(), 5_000);
    // The donor stays out of the store.
    let kept = driver
        .writes
        .iter()
        .any(|write| matches!(write, Write::Pledge(terms) if terms.offer.donor.is_some()));
    assert!(!kept, "the donor's name reached the store");
}

#[test]
fn money_is_held_once_the_whole_team_accepted_as_the_plan_funds_it() {
    let mut driver = pledged(1);
    driver.plan = Some(funding_plan());
    driver.later();
    // Proposed only: nothing to hold yet.
    let proposed = driver.matched(
        serde_json::json!({
            "volunteer": "v1", "task": "t1", "need": "n1", "collective": "c-pantry",
            "impact": 1.0, "why": {}, "respond_by": "2026-11-23T00:00:00Z",
            "at": "2026-11-22T00:00:00Z",
        }),
        "proposed",
    );
    driver.run(proposed);
    check(&mut driver, Input::Wake, "");
    let accepted = driver.matched(
        serde_json::json!({"volunteer": "v1", "task": "t1", "round": 0, "at": "2026-11-22T01:00:00Z"}),
        "accepted",
    );
    check(
        &mut driver,
        accepted,
        "commit pair v1/t1 Some(PairState { round: 0, committed: true }), Matches at 2",
    );
    driver.later();
    check(
        &mut driver,
        Input::Wake,
        "
        fetch the plan
        write held:t1:0 (p1 5000) expecting 1
        commit entry held:t1:0 at 2, Ledger at 2
        ",
    );
    assert_eq!(driver.planner.ledger().committed("t1").get(), 5_000);
}

#[test]
fn held_money_of_a_cancelled_task_is_released_to_the_pool() {
    let mut driver = pledged(0);
    driver.plan = Some(funding_plan());
    driver.later();
    driver.run(Input::Wake);
    assert_eq!(driver.planner.ledger().committed("t1").get(), 5_000);
    let withdrawn = driver.event(&event(
        serde_json::json!({"kind": "task", "id": "t1"}),
        "withdraw_task",
    ));
    check(&mut driver, withdrawn, "commit task t1, Events at 3");
    driver.later();
    check(
        &mut driver,
        Input::Wake,
        "
        write released:t1:0 (p1 5000) expecting 2
        commit entry released:t1:0 at 3, Ledger at 3
        ",
    );
    assert_eq!(driver.planner.ledger().available("p1").get(), 5_000);
}

#[test]
fn a_conflicting_write_ends_the_pass_and_the_next_decides_from_the_stream() {
    let mut driver = Driver::new();
    let pledge = driver.event(&pledge(5_000));
    driver.run(pledge);
    // Another ledger writes the pledge first; this one has not read it.
    let mut theirs = LedgerEntry {
        id: "pledged:p1:0".into(),
        kind: proto::money::EntryKind::Pledged,
        task: None,
        collective: None,
        currency: "USD".into(),
        movements: vec![proto::money::Movement {
            pledge: "p1".into(),
            amount_cents: 5_000,
        }],
        reason: Some("pledged".into()),
        reference: None,
        at: at("2026-11-22T00:00:00Z"),
    };
    driver.ledger_stream.push(theirs.clone());
    check(
        &mut driver,
        Input::Wake,
        "write pledged:p1:0 (p1 5000) expecting 0",
    );
    // Reading it back, the pledge is in the pool: nothing more to write.
    driver.ledger_stream.clear();
    theirs.at = at("2026-11-22T00:00:01Z");
    let read_back = driver.written_elsewhere(theirs);
    check(
        &mut driver,
        read_back,
        "commit entry pledged:p1:0 at 1, Ledger at 1",
    );
    driver.later();
    check(&mut driver, Input::Wake, "");
    assert_eq!(driver.planner.ledger().available("p1").get(), 5_000);
}

#[test]
fn a_refused_entry_changes_nothing() {
    let mut driver = pledged(0);
    let before = driver.planner.ledger().available("p1");
    // Someone wrote around the checks: a hold of more than the pledge has.
    let over = LedgerEntry {
        id: "held:t1:1".into(),
        kind: proto::money::EntryKind::Held,
        task: Some("t1".into()),
        collective: Some("c-pantry".into()),
        currency: "USD".into(),
        movements: vec![proto::money::Movement {
            pledge: "p1".into(),
            amount_cents: 9_000,
        }],
        reason: None,
        reference: None,
        at: at("2026-11-22T00:00:00Z"),
    };
    let read_back = driver.written_elsewhere(over);
    let got = driver.run(read_back);
    assert!(
        got.starts_with("skipped: the ledger entry held:t1:1 at 2 breaks the ledger"),
        "{got}"
    );
    assert!(got.ends_with("commit Ledger at 2"), "{got}");
    assert_eq!(driver.planner.ledger().available("p1"), before);
    assert_eq!(driver.planner.ledger().committed("t1").get(), 0);
    // A disbursal of a task with nothing held is refused, and writes nothing.
    let disburse = Input::Disburse {
        request: 1,
        body: Bytes::from_static(br#"{"id": "pay-1", "task": "t1", "reference": "bank 42"}"#),
    };
    check(
        &mut driver,
        disburse,
        "reply #1 refused: nothing is held for task t1",
    );
}

#[test]
fn a_disbursal_writes_everything_held_and_the_same_one_again_gets_the_same_reply() {
    let mut driver = pledged(0);
    driver.plan = Some(funding_plan());
    driver.later();
    driver.run(Input::Wake);
    let body = Bytes::from_static(br#"{"id": "pay-1", "task": "t1", "reference": "bank 42"}"#);
    check(
        &mut driver,
        Input::Disburse {
            request: 1,
            body: body.clone(),
        },
        "
        write pay-1 (p1 5000) expecting 2
        commit entry pay-1 at 3, Ledger at 3
        reply #1 ok at 3
        ",
    );
    check(
        &mut driver,
        Input::Disburse { request: 2, body },
        "reply #2 ok at 3",
    );
}

#[test]
fn a_restart_from_recorded_state_writes_nothing_again() {
    let mut driver = pledged(0);
    driver.plan = Some(funding_plan());
    driver.later();
    driver.run(Input::Wake);
    let store = Store::in_memory();
    store
        .commit(crate::state::changes(&config().subjects, &driver.writes).unwrap())
        .unwrap();
    let saved = crate::state::load(&store, &config().subjects).unwrap();
    let mut restarted = Driver {
        planner: Planner::restore(config(), saved).unwrap(),
        ..Driver::new()
    };
    restarted.ledger_stream = driver.ledger_stream.clone();
    restarted.plan = Some(funding_plan());
    check(&mut restarted, Input::Wake, "");
    assert_eq!(restarted.planner.ledger_position(), 2);
}

#[test]
fn a_store_that_fails_a_batch_is_fatal_to_the_service() {
    use plumbing::fault::{Fault, Policy};
    use plumbing::store::{Backend, MemoryBackend};

    /// A disk that is full from the first write on.
    struct FullDisk(MemoryBackend);
    impl Backend for FullDisk {
        fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
            self.0.get(key)
        }
        fn scan_prefix(&self, prefix: &[u8]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.0.scan_prefix(prefix)
        }
        fn apply(&self, _: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> anyhow::Result<()> {
            anyhow::bail!("No space left on device (os error 28)")
        }
        fn flush(&self) -> anyhow::Result<()> {
            Ok(())
        }
    }

    let store = Store::with_backend(std::sync::Arc::new(FullDisk(MemoryBackend::default())));
    let writes = vec![Write::Position {
        log: Log::Ledger,
        sequence: 1,
    }];
    let subjects = config().subjects;
    let first = crate::commit_to(&store, &subjects, &writes);
    assert!(store.flush().is_err());
    let after = crate::commit_to(&store, &subjects, &writes);
    let fault = first.and(after).unwrap_err();
    assert!(matches!(fault, Fault::Fatal(_)), "{fault:?}");
    let stopped = Policy::new("ledger")
        .judge("reconciling", Err(fault))
        .unwrap_err();
    let text = format!("{stopped:#}");
    assert!(text.contains("ledger stopped at reconciling"), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
}

#[test]
fn a_stored_ledger_that_does_not_replay_is_refused_at_start() {
    let over = LedgerEntry {
        id: "held:t1:1".into(),
        kind: proto::money::EntryKind::Held,
        task: Some("t1".into()),
        collective: None,
        currency: "USD".into(),
        movements: vec![proto::money::Movement {
            pledge: "p1".into(),
            amount_cents: 1,
        }],
        reason: None,
        reference: None,
        at: at("2026-11-22T00:00:00Z"),
    };
    let saved = Saved {
        entries: vec![("00000000000000000001".into(), over)],
        ..Saved::default()
    };
    let refused = Planner::restore(config(), saved).err().unwrap();
    assert!(refused
        .to_string()
        .contains("does not replay at 00000000000000000001"));
}
