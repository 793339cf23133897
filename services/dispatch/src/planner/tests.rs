//! The planner's behaviour, data-driven and with no nats-server: a list of
//! inputs in, the effects they call for out, in the style of
//! rust-analyzer's `check(input, expect)`. A small driver plays the
//! shell's part: it carries out each effect the way a healthy server
//! would (or fails the ones a test says fail) and feeds the outcome back,
//! so a test sees the whole cascade one input sets off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use plumbing::follow::{Log, Stored};
use plumbing::store::Store;
use plumbing::trace::TraceParent;
use proto::events::{Event, MatchEvent};
use proto::subjects::{MatchKind, Subjects};
use proto::wire::{MatchChanged, MatchProposed, ReplyAction, VolunteerMessage};

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// 22 November 2026, midnight: every scene starts here.
fn start() -> DateTime<Utc> {
    at("2026-11-22T00:00:00Z")
}

fn config() -> PlannerConfig {
    PlannerConfig {
        subjects: Subjects::default(),
        checkin_window: chrono::Duration::hours(72),
        emails: false,
    }
}

fn proposal(volunteer: &str, task: &str, round: u32) -> MatchProposed {
    serde_json::from_value(serde_json::json!({
        "volunteer": volunteer, "task": task, "need": "n1", "collective": "c-pantry",
        "impact": 1.0, "why": {}, "respond_by": "2026-11-23T00:00:00Z",
        "at": "2026-11-22T00:00:00Z", "round": round,
    }))
    .unwrap()
}

fn need_posted(deadline: &str) -> Event {
    Event::NeedPosted(
        serde_json::from_value(serde_json::json!({
            "id": "n1", "collective": "c-pantry", "title": "pantry",
            "tasks": [{
                "id": "t1", "title": "sort the shelves", "hours": 2.0, "slots": 1,
                "earliest_start": "2026-11-22T00:00:00Z", "deadline": deadline, "impact": 1.0,
            }],
        }))
        .unwrap(),
    )
}

fn answer(action: &str, round: u32) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "volunteer": "v1", "task": "t1", "action": action, "round": round,
        }))
        .unwrap(),
    )
}

/// The shell's part, done as a healthy server would.
struct Driver {
    planner: Planner,
    now: DateTime<Utc>,
    /// Sequences of the logs, as the server would number messages.
    events_sequence: u64,
    matches_sequence: u64,
    /// Every store batch asked for, in order.
    writes: Vec<Write>,
    /// Effects of these kinds fail ("send", "publish", "log").
    failing: HashSet<&'static str>,
    /// Match events another writer (the solver) gets into the stream just
    /// before the next transition: that write meets a conflict, and the
    /// shell reads these before telling the planner.
    written_first: Vec<MatchEvent>,
    next_request: RequestId,
    /// Every message to a volunteer that reached the inbox, in order.
    inbox: Vec<VolunteerMessage>,
}

impl Driver {
    fn new() -> Driver {
        Driver::restored(Saved::default())
    }

    fn restored(saved: Saved) -> Driver {
        let mut driver = Driver::catching_up(saved);
        driver.run(Input::CaughtUp);
        driver
    }

    /// A planner restored from `saved` that has not been told the logs are read.
    fn catching_up(saved: Saved) -> Driver {
        Driver {
            planner: Planner::restore(config(), saved),
            now: start(),
            events_sequence: 0,
            matches_sequence: 0,
            writes: Vec::new(),
            failing: HashSet::new(),
            written_first: Vec::new(),
            next_request: 0,
            inbox: Vec::new(),
        }
    }

    fn stored(&mut self, log: Log, subject: String, payload: Vec<u8>) -> Input {
        let sequence = match log {
            Log::Events => &mut self.events_sequence,
            _ => &mut self.matches_sequence,
        };
        *sequence += 1;
        Input::Stored(
            log,
            Stored {
                subject,
                payload: Bytes::from(payload),
                sequence: *sequence,
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

    fn matched(&mut self, event: &MatchEvent) -> Input {
        self.stored(
            Log::Matches,
            event.subject(&config().subjects),
            event.encode(),
        )
    }

    fn delivery(&self, id: DeliveryId, proposal: &MatchProposed) -> Input {
        Input::Deliveries(vec![Delivery {
            id,
            payload: Bytes::from(serde_json::to_vec(proposal).unwrap()),
            trace: TraceParent::root(),
        }])
    }

    fn answer(&mut self, body: Bytes) -> Input {
        self.next_request += 1;
        Input::Answer {
            request: self.next_request,
            body,
            sender: None,
        }
    }

    /// Feeds `input` and carries out the cascade; returns it rendered.
    fn run(&mut self, input: Input) -> String {
        let mut lines = Vec::new();
        let mut queue: std::collections::VecDeque<Effect> =
            self.planner.step(input, self.now).into();
        while let Some(effect) = queue.pop_front() {
            lines.push(render(&effect));
            let mut more = Vec::new();
            for outcome in self.outcome(effect) {
                more.extend(self.planner.step(outcome, self.now));
            }
            for effect in more.into_iter().rev() {
                queue.push_front(effect);
            }
        }
        lines.join("\n")
    }

    fn outcome(&mut self, effect: Effect) -> Vec<Input> {
        match effect {
            Effect::Commit(writes) => {
                self.writes.extend(writes);
                Vec::new()
            }
            Effect::Send { messages, purpose } => {
                let failing = self.failing.contains("send");
                if !failing {
                    self.inbox
                        .extend(messages.iter().filter_map(|outbound| match outbound {
                            Outbound::Message(message, _) => Some((**message).clone()),
                            Outbound::Plan(_) => None,
                        }));
                }
                vec![Input::Sent {
                    purpose,
                    messages,
                    outcome: if failing {
                        Err("no responders".to_owned())
                    } else {
                        Ok(())
                    },
                }]
            }
            Effect::Publish(publication) if self.failing.contains("publish") => {
                vec![Input::NotPublished(publication, NotWritten::Unavailable)]
            }
            Effect::Publish(publication) if !self.written_first.is_empty() => {
                let mut inputs: Vec<Input> = std::mem::take(&mut self.written_first)
                    .iter()
                    .map(|event| self.matched(event))
                    .collect();
                inputs.push(Input::NotPublished(publication, NotWritten::Conflict));
                inputs
            }
            Effect::Publish(publication) => {
                self.matches_sequence += 1;
                vec![Input::Published(publication)]
            }
            Effect::LogAnswer {
                request, answer, ..
            } => {
                self.events_sequence += 1;
                vec![Input::AnswerLogged {
                    request,
                    answer,
                    sequence: self.events_sequence,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// What the store would hold after every batch so far.
    fn saved(&self) -> Saved {
        let store = Store::in_memory();
        let changes = crate::state::changes(&config().subjects, &self.writes).unwrap();
        store.commit(changes).unwrap();
        crate::state::load(&store, false).unwrap()
    }
}

/// One line per effect: what it is and what it is about.
fn render(effect: &Effect) -> String {
    match effect {
        Effect::Commit(writes) => {
            let writes: Vec<String> = writes.iter().map(render_write).collect();
            format!("commit {}", writes.join(", "))
        }
        Effect::Send { messages, purpose } => {
            let ids: Vec<&str> = messages.iter().map(Outbound::message_id).collect();
            let purpose = match purpose {
                SendPurpose::Delivery {
                    delivered,
                    superseded,
                } => format!("delivering {delivered:?} (superseded {superseded:?})"),
                SendPurpose::CheckinReminder { .. } => "check-in reminder".to_owned(),
                SendPurpose::DeadlineReminder { .. } => "deadline reminder".to_owned(),
                SendPurpose::ShiftReminder { leads, .. } => format!("shift reminder {leads:?}"),
                SendPurpose::Courtesy => "courtesy".to_owned(),
            };
            let ids: Vec<String> = ids
                .iter()
                .map(|id| match id.strip_prefix("three_weeks:") {
                    Some(rest) => format!("three_weeks:{}", rest.split(':').next().unwrap()),
                    None => (*id).to_owned(),
                })
                .collect();
            format!("send {} for {purpose}", ids.join(" "))
        }
        Effect::Email {
            message,
            sealed_contact,
        } => format!("email {} to {sealed_contact}", message.message_id),
        Effect::Publish(publication) => {
            let (volunteer, task, round) = publication.event.pair();
            let reason = match &publication.event {
                MatchEvent::Proposed(_) => None,
                MatchEvent::Accepted(change)
                | MatchEvent::Declined(change)
                | MatchEvent::Expired(change)
                | MatchEvent::CheckedIn(change)
                | MatchEvent::Released(change)
                | MatchEvent::Completed(change) => change.reason.clone(),
            };
            format!(
                "publish {} {volunteer}/{task}#{round} ({})",
                publication.event.kind().token(),
                reason.unwrap_or_default()
            )
        }
        Effect::LogAnswer {
            answer,
            expected_last_sequence,
            ..
        } => format!(
            "log answer {} {}/{}#{} expecting {expected_last_sequence}",
            action_name(answer.action),
            answer.volunteer,
            answer.task,
            answer.round.unwrap_or_default()
        ),
        Effect::Reply { request, reply } => match &reply.error {
            None => format!("reply #{request} ok at {}", reply.seq.unwrap_or_default()),
            Some(error) => format!(
                "reply #{request} refused {} on {}: {}",
                plumbing::reply::code_name(error.code),
                error.field.as_deref().unwrap_or("-"),
                error.message
            ),
        },
        Effect::Ack(ids) => format!("ack {ids:?}"),
        Effect::Terminate(ids) => format!("terminate {ids:?}"),
        Effect::Nak(ids) => format!("nak {ids:?}"),
        Effect::WakeAt(Some(at)) => format!("wake at {}", at.format("%d %H:%M")),
        Effect::WakeAt(None) => "wake never".to_owned(),
        Effect::Skipped(reason) => format!("skipped: {reason}"),
    }
}

fn render_write(write: &Write) -> String {
    match write {
        Write::Assignment(assignment) => format!(
            "{}/{}#{} {}",
            assignment.volunteer,
            assignment.task,
            assignment.round,
            assignment.state.token()
        ),
        Write::Tenure { volunteer, .. } => format!("tenure of {volunteer}"),
        Write::Need { id, .. } => format!("need {id}"),
        Write::Task { id, .. } => format!("task {id}"),
        Write::Contact { volunteer, .. } => format!("contact of {volunteer}"),
        Write::DeadlineReminded { reminded } => format!("reminded {reminded}"),
        Write::Zone { volunteer, tz } => format!("zone of {volunteer} {tz:?}"),
        Write::ShiftReminded { reminded } => format!("shift reminded {reminded}"),
        Write::Position { log, sequence } => format!("{log:?} at {sequence}"),
    }
}

/// Runs `inputs` one after another and compares the rendered cascades.
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

/// A driver that has delivered round 0 of v1 on t1.
fn proposed() -> Driver {
    let mut driver = Driver::new();
    let need = driver.event(&need_posted("2026-12-10T00:00:00Z"));
    driver.run(need);
    let delivery = driver.delivery(1, &proposal("v1", "t1", 0));
    driver.run(delivery);
    driver
}

#[test]
fn a_proposal_becomes_an_inbox_message_acked_once_sent_and_an_expiry_timer() {
    let mut driver = Driver::new();
    let need = driver.event(&need_posted("2026-12-10T00:00:00Z"));
    check(&mut driver, need, "commit need n1, task t1, Events at 1");
    let delivery = driver.delivery(1, &proposal("v1", "t1", 0));
    check(
        &mut driver,
        delivery,
        "
        commit v1/t1#0 proposed
        send proposal:v1:t1:0 for delivering [1] (superseded [])
        ack [1]
        wake at 23 00:00
        ",
    );
    let message = driver.planner.volunteer_message(&proposal("v1", "t1", 0));
    assert_eq!(
        message.title, "sort the shelves",
        "details come from the need"
    );
}

#[test]
fn an_unsent_proposal_is_handed_back_to_the_consumer_and_a_superseded_one_only_acked() {
    let mut driver = Driver::new();
    driver.failing.insert("send");
    let delivery = driver.delivery(1, &proposal("v1", "t1", 0));
    check(
        &mut driver,
        delivery,
        "
        commit v1/t1#0 proposed
        send proposal:v1:t1:0 for delivering [1] (superseded [])
        nak [1]
        wake at 23 00:00
        ",
    );
    driver.failing.clear();
    let declined = driver.answer(answer("decline", 0));
    driver.run(declined);
    let again = driver.delivery(2, &proposal("v1", "t1", 0));
    check(&mut driver, again, "ack [2]");
    let unreadable = Input::Deliveries(vec![Delivery {
        id: 3,
        payload: Bytes::from_static(b"{not json"),
        trace: TraceParent::root(),
    }]);
    let got = driver.run(unreadable);
    assert!(
        got.starts_with("skipped: undeliverable proposal dropped"),
        "{got}"
    );
    assert!(got.ends_with("terminate [3]"), "{got}");
}

#[test]
fn an_accept_before_respond_by_is_logged_then_accepted_with_a_checkin_timer() {
    let mut driver = proposed();
    driver.now = at("2026-11-22T06:00:00Z");
    let accept = driver.answer(answer("accept", 0));
    check(
        &mut driver,
        accept,
        "
        log answer accept v1/t1#0 expecting 0
        commit v1/t1#0 proposed
        publish accepted v1/t1#0 (accepted by the volunteer)
        commit v1/t1#0 accepted
        send three_weeks:v1 for courtesy
        reply #1 ok at 2
        send confirmed:v1:t1:0 for courtesy
        wake at 23 18:00
        ",
    );
    let assignment = driver.planner.assignment("v1", "t1").unwrap();
    assert_eq!(assignment.state, State::Accepted);
    assert_eq!(assignment.answered_sequence, 2);
}

#[test]
fn an_accept_that_meets_the_solvers_release_of_its_proposal_is_refused_not_written_after_it() {
    let mut driver = proposed();
    driver.now = at("2026-11-22T06:00:00Z");
    // The solver releases the proposal (its team could not be completed)
    // while the volunteer's accept is on its way: the accept's transition
    // meets the release, which the shell reads before the planner decides.
    let released = MatchEvent::changed(
        MatchKind::Released,
        MatchChanged {
            volunteer: "v1".to_owned(),
            task: "t1".to_owned(),
            round: 0,
            reason: Some("the team could not be completed".to_owned()),
            handoff: None,
            at: driver.now,
        },
    )
    .unwrap();
    driver.written_first.push(released);
    let accept = driver.answer(answer("accept", 0));
    let got = driver.run(accept);
    assert!(
        got.contains("publish accepted v1/t1#0"),
        "the accept is tried: {got}"
    );
    assert!(got.contains("commit v1/t1#0 released"), "{got}");
    assert!(
        got.contains(
            "reply #1 refused conflict on task: the proposal of task t1 to v1 is released"
        ),
        "the volunteer is told it did not take effect: {got}"
    );
    assert_eq!(
        got.matches("publish ").count(),
        1,
        "nothing is written after the release: {got}"
    );
    let assignment = driver.planner.assignment("v1", "t1").unwrap();
    assert_eq!(assignment.state, State::Released);
    // Settling later finds nothing due: the logged accept calls for nothing.
    driver.now += chrono::Duration::minutes(5);
    assert!(!driver.run(Input::Wake).contains("publish"));
}

#[test]
fn an_accept_that_meets_a_write_about_someone_else_is_written_once_it_is_read() {
    let mut driver = proposed();
    driver.now = at("2026-11-22T06:00:00Z");
    // Another volunteer's proposal got in first: nothing about v1 changed.
    driver
        .written_first
        .push(MatchEvent::Proposed(proposal("v2", "t1", 0)));
    let accept = driver.answer(answer("accept", 0));
    let got = driver.run(accept);
    assert_eq!(
        got.matches("publish accepted v1/t1#0").count(),
        2,
        "tried again after reading: {got}"
    );
    assert!(got.contains("commit v1/t1#0 accepted"), "{got}");
    // The answer is replied to, then the member's calendar entry follows.
    assert!(
        got.ends_with("reply #1 ok at 2\nsend confirmed:v1:t1:0 for courtesy"),
        "{got}"
    );
}

#[test]
fn an_expiry_that_meets_the_volunteers_own_accept_is_dropped() {
    let mut driver = proposed();
    let mut accepted = driver.planner.assignment("v1", "t1").unwrap().clone();
    accepted.state = State::Accepted;
    driver.now = at("2026-11-23T00:00:00Z");
    // An accept another dispatch instance wrote just before the expiry.
    driver.written_first.push(
        MatchEvent::changed(
            MatchKind::Accepted,
            MatchChanged {
                volunteer: "v1".to_owned(),
                task: "t1".to_owned(),
                round: 0,
                reason: Some("accepted by the volunteer".to_owned()),
                handoff: None,
                at: driver.now,
            },
        )
        .unwrap(),
    );
    let got = driver.run(Input::Wake);
    assert_eq!(got.matches("publish ").count(), 1, "{got}");
    assert!(got.contains("commit v1/t1#0 accepted"), "{got}");
    assert_eq!(
        driver.planner.assignment("v1", "t1").unwrap().state,
        State::Accepted,
        "not expired over the accept: {got}"
    );
}

#[test]
fn an_answer_for_an_unknown_or_final_assignment_says_so_and_changes_nothing() {
    let mut driver = proposed();
    let stranger = driver.answer(Bytes::from_static(
        br#"{"volunteer": "v2", "task": "t1", "action": "accept"}"#,
    ));
    check(
        &mut driver,
        stranger,
        "reply #1 refused unauthorized on volunteer: task t1 was not proposed to v2",
    );
    let nothing = driver.answer(Bytes::from_static(
        br#"{"volunteer": "v1", "task": "t9", "action": "accept"}"#,
    ));
    check(
        &mut driver,
        nothing,
        "reply #2 refused not_found on task: no assignment of task t9 to v1",
    );
    let decline = driver.answer(answer("decline", 0));
    driver.run(decline);
    let late = driver.answer(answer("accept", 0));
    check(
        &mut driver,
        late,
        "reply #4 refused conflict on action: the assignment is declined; accept is no longer possible",
    );
    let old_round = driver.answer(answer("accept", 3));
    check(
        &mut driver,
        old_round,
        "reply #5 refused conflict on round: this answers round 3; the current proposal is round 0",
    );
    let again = driver.answer(answer("decline", 0));
    check(&mut driver, again, "reply #6 ok at 2");
    assert_eq!(
        driver.planner.assignment("v1", "t1").unwrap().state,
        State::Declined
    );
}

#[test]
fn the_clock_expires_an_unanswered_proposal_and_a_failed_expiry_is_tried_again_later() {
    let mut driver = proposed();
    driver.now = at("2026-11-23T00:00:00Z");
    driver.failing.insert("publish");
    check(
        &mut driver,
        Input::Wake,
        "
        publish expired v1/t1#0 (nobody answered in time)
        wake at 23 00:00
        ",
    );
    driver.failing.clear();
    // Held back for a few seconds after the failure.
    check(&mut driver, Input::Wake, "");
    driver.now += chrono::Duration::seconds(RETRY_AFTER_FAILURE_S);
    check(
        &mut driver,
        Input::Wake,
        "
        publish expired v1/t1#0 (nobody answered in time)
        commit v1/t1#0 expired
        send three_weeks:v1 for courtesy
        wake never
        ",
    );
}

#[test]
fn a_timer_of_a_superseded_round_does_nothing() {
    let mut driver = proposed();
    // The solver proposes the pair again before round 0 expires.
    let round_one = driver.matched(&MatchEvent::Proposed(proposal("v1", "t1", 1)));
    let mut later = proposal("v1", "t1", 1);
    later.respond_by = at("2026-11-25T00:00:00Z");
    let round_one_later = driver.matched(&MatchEvent::Proposed(later));
    driver.run(round_one);
    driver.run(round_one_later);
    // Round 0's time comes and goes: nothing happens to round 1.
    driver.now = at("2026-11-23T00:00:00Z");
    check(&mut driver, Input::Wake, "");
    // A transition of round 0 read late changes nothing either.
    let stale = driver.matched(&MatchEvent::Expired(MatchChanged {
        volunteer: "v1".into(),
        task: "t1".into(),
        round: 0,
        reason: None,
        handoff: None,
        at: start(),
    }));
    check(&mut driver, stale, "commit Matches at 3");
    assert_eq!(
        driver.planner.assignment("v1", "t1").unwrap().state,
        State::Proposed
    );
}

#[test]
fn a_silent_acceptance_is_reminded_then_released_with_a_handoff_note() {
    let mut driver = proposed();
    let accept = driver.answer(answer("accept", 0));
    driver.run(accept);
    driver.now = at("2026-11-23T12:00:00Z");
    check(
        &mut driver,
        Input::Wake,
        "
        send reminder:v1:t1:0 for check-in reminder
        commit v1/t1#0 accepted
        wake at 25 00:00
        ",
    );
    driver.now = at("2026-11-25T00:00:00Z");
    check(
        &mut driver,
        Input::Wake,
        "
        publish released v1/t1#0 (no check-in: a silent drop-out)
        commit v1/t1#0 released
        send three_weeks:v1 for courtesy
        send released:v1:t1:0 for courtesy
        wake never
        ",
    );
}

#[test]
fn a_completed_task_ends_live_work_and_is_never_ended_twice() {
    let mut driver = proposed();
    let completed = driver.event(&Event::TaskCompleted(
        serde_json::from_value(serde_json::json!({"task": "t1"})).unwrap(),
    ));
    check(
        &mut driver,
        completed,
        "
        commit task t1, Events at 2
        publish released v1/t1#0 (the task was marked done)
        commit v1/t1#0 released
        send three_weeks:v1 for courtesy
        wake never
        ",
    );
}

#[test]
fn a_restart_from_recorded_state_repeats_no_transition() {
    let mut driver = proposed();
    let accept = driver.answer(answer("accept", 0));
    driver.run(accept);
    // The logs as the server holds them: the answer and its transition.
    let answered = driver.event(&Event::AssignmentAnswered(
        serde_json::from_slice(&answer("accept", 0)).unwrap(),
    ));
    driver.run(answered);
    let saved = driver.saved();
    let mut restarted = Driver::restored(saved);
    assert_eq!(
        restarted.planner.assignment("v1", "t1").unwrap().state,
        State::Accepted
    );
    // Reading the same answer again (a lost position) publishes nothing.
    restarted.events_sequence = 1;
    let replayed = restarted.event(&Event::AssignmentAnswered(
        serde_json::from_slice(&answer("accept", 0)).unwrap(),
    ));
    check(
        &mut restarted,
        replayed,
        "commit v1/t1#0 accepted, Events at 2",
    );
}

#[test]
fn an_answer_logged_before_a_crash_gets_its_transition_once_the_logs_are_read() {
    let mut driver = proposed();
    // The answer is in the log, its transition never made it out.
    driver.failing.insert("publish");
    let accept = driver.answer(answer("accept", 0));
    driver.run(accept);
    let mut restarted = Driver::catching_up(driver.saved());
    check(
        &mut restarted,
        Input::CaughtUp,
        "
        publish accepted v1/t1#0 (accepted by the volunteer)
        commit v1/t1#0 accepted
        send three_weeks:v1 for courtesy
        send confirmed:v1:t1:0 for courtesy
        wake at 23 12:00
        ",
    );
}

#[test]
fn nothing_is_published_while_the_logs_are_caught_up() {
    let mut driver = Driver::catching_up(Saved::default());
    let proposed = driver.matched(&MatchEvent::Proposed(proposal("v1", "t1", 0)));
    driver.run(proposed);
    let answered = driver.event(&Event::AssignmentAnswered(
        serde_json::from_slice(&answer("accept", 0)).unwrap(),
    ));
    check(
        &mut driver,
        answered,
        "commit v1/t1#0 proposed, Events at 1",
    );
    let caught_up = driver.run(Input::CaughtUp);
    assert!(
        caught_up.starts_with("publish accepted v1/t1#0"),
        "{caught_up}"
    );
}

#[test]
fn an_unreadable_logged_message_is_skipped_and_its_position_recorded() {
    let mut driver = Driver::new();
    let unreadable = driver.stored(Log::Events, "sb.ev.nonsense".to_owned(), b"{}".to_vec());
    let got = driver.run(unreadable);
    assert!(got.starts_with("skipped: unreadable event at 1"), "{got}");
    assert!(got.ends_with("commit Events at 1"), "{got}");
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
        log: Log::Events,
        sequence: 1,
    }];
    let subjects = config().subjects;
    let first = crate::commit_to(&store, &subjects, &writes);
    // Deferred writes fail when applied: the flush, and every commit after.
    assert!(store.flush().is_err());
    let after = crate::commit_to(&store, &subjects, &writes);
    let fault = first.and(after).unwrap_err();
    assert!(matches!(fault, Fault::Fatal(_)), "{fault:?}");
    let stopped = Policy::new("dispatch")
        .judge("applying the logs", Err(fault))
        .unwrap_err();
    let text = format!("{stopped:#}");
    assert!(
        text.contains("dispatch stopped at applying the logs"),
        "{text}"
    );
    assert!(text.contains("No space left on device"), "{text}");
}

/// Issue 16: a volunteer who checked in once was never checked again, so
/// the work of one who vanished was released long after its deadline.
#[test]
fn checked_in_work_is_nudged_a_check_in_restarts_the_silence_and_silence_releases_it() {
    let mut driver = proposed();
    let accept = driver.answer(answer("accept", 0));
    driver.run(accept);
    let checkin = driver.answer(answer("checkin", 0));
    driver.run(checkin);
    assert_eq!(
        driver.planner.assignment("v1", "t1").unwrap().state,
        State::CheckedIn
    );
    // The deadline is weeks away: nudged after 24 h of silence.
    driver.now = at("2026-11-23T00:00:00Z");
    check(
        &mut driver,
        Input::Wake,
        "
        send nudge:v1:t1:0:1795305600 for check-in reminder
        commit v1/t1#0 checked_in
        wake at 24 00:00
        ",
    );
    // Answering the nudge is a sign of life, logged anew though its body
    // repeats the check-in: the silence starts again from it.
    driver.now = at("2026-11-23T06:00:00Z");
    let again = driver.answer(answer("checkin", 0));
    check(
        &mut driver,
        again,
        "
        log answer checkin v1/t1#0 expecting 3
        commit v1/t1#0 checked_in
        reply #3 ok at 4
        wake at 24 06:00
        ",
    );
    driver.now = at("2026-11-24T06:00:00Z");
    check(
        &mut driver,
        Input::Wake,
        "
        send nudge:v1:t1:0:1795413600 for check-in reminder
        commit v1/t1#0 checked_in
        wake at 25 06:00
        ",
    );
    // 48 h of silence: released, with weeks left to backfill it.
    driver.now = at("2026-11-25T06:00:00Z");
    check(
        &mut driver,
        Input::Wake,
        "
        publish released v1/t1#0 (no check-in: a silent drop-out)
        commit v1/t1#0 released
        send three_weeks:v1 for courtesy
        send released:v1:t1:0 for courtesy
        wake never
        ",
    );
}

#[test]
fn checked_in_work_due_soon_is_released_after_half_the_time_left_so_it_can_be_backfilled() {
    let mut driver = Driver::new();
    // Due 48 h after the check-in.
    let need = driver.event(&need_posted("2026-11-24T00:00:00Z"));
    driver.run(need);
    let delivery = driver.delivery(1, &proposal("v1", "t1", 0));
    driver.run(delivery);
    let accept = driver.answer(answer("accept", 0));
    driver.run(accept);
    let checkin = driver.answer(answer("checkin", 0));
    let got = driver.run(checkin);
    assert!(got.contains("wake at 22 12:00"), "nudged after 12 h: {got}");
    driver.now = at("2026-11-22T12:00:00Z");
    driver.run(Input::Wake);
    driver.now = at("2026-11-23T00:00:00Z");
    let got = driver.run(Input::Wake);
    assert!(
        got.contains("publish released v1/t1#0 (no check-in: a silent drop-out)"),
        "released 24 h before its deadline: {got}"
    );
}

/// Issue 16: one proposal went out for a task already completed.
#[test]
fn a_proposal_for_a_completed_task_never_reaches_the_volunteer() {
    let mut driver = Driver::new();
    let need = driver.event(&need_posted("2026-12-10T00:00:00Z"));
    driver.run(need);
    let completed = driver.event(&Event::TaskCompleted(
        serde_json::from_value(serde_json::json!({"task": "t1"})).unwrap(),
    ));
    driver.run(completed);
    let delivery = driver.delivery(1, &proposal("v1", "t1", 0));
    check(
        &mut driver,
        delivery,
        "
        commit v1/t1#0 proposed
        publish released v1/t1#0 (the task was marked done)
        commit v1/t1#0 released
        send three_weeks:v1 for courtesy
        ack [1]
        ",
    );
}

/// A Saturday shift in Detroit, 06:00-10:00 UTC on Nov 23 (01:00-05:00
/// local), 30 hours after the scenes start, at the pantry.
fn shift_need(start: &str, end: &str) -> Event {
    Event::NeedPosted(
        serde_json::from_value(serde_json::json!({
            "id": "n1", "collective": "c-pantry", "title": "pantry",
            "tasks": [{
                "id": "t1", "title": "night sort", "hours": 4.0, "slots": 1,
                "earliest_start": start, "deadline": end, "impact": 1.0,
                "shift": {"start": start, "end": end},
                "place": {"lat": 42.3314, "lon": -83.0458, "name": "Eastside pantry",
                          "address": "4100 Gratiot Ave"},
                "instructions": "Ask for Rosa at the side door.",
            }],
        }))
        .unwrap(),
    )
}

const SHIFT_START: &str = "2026-11-23T06:00:00Z";
const SHIFT_END: &str = "2026-11-23T10:00:00Z";

fn offered_in_detroit() -> Event {
    Event::VolunteerOffered(
        serde_json::from_value(serde_json::json!({
            "id": "v1", "skills": {}, "hours_per_week": 10.0,
            "available_from": "2026-11-21T00:00:00Z", "available_until": "2026-12-20T00:00:00Z",
            "tz": "America/Detroit",
        }))
        .unwrap(),
    )
}

/// v1 in Detroit has accepted round 0 of the shift t1.
fn shift_accepted() -> Driver {
    let mut driver = Driver::new();
    let offer = driver.event(&offered_in_detroit());
    driver.run(offer);
    let need = driver.event(&shift_need(SHIFT_START, SHIFT_END));
    driver.run(need);
    let delivery = driver.delivery(1, &proposal("v1", "t1", 0));
    driver.run(delivery);
    let accept = driver.answer(answer("accept", 0));
    driver.run(accept);
    driver
}

fn last_of_kind<'a>(driver: &'a Driver, kind: &str) -> &'a VolunteerMessage {
    driver
        .inbox
        .iter()
        .rev()
        .find(|message| message.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} message in {:#?}", driver.inbox))
}

#[test]
fn an_accepted_shift_is_confirmed_with_its_invite_updated_when_it_moves_and_cancelled_on_release() {
    let mut driver = shift_accepted();
    let confirmed = last_of_kind(&driver, "confirmed").clone();
    assert_eq!(confirmed.tz.as_deref(), Some("America/Detroit"));
    assert_eq!(confirmed.shift.unwrap().start, at(SHIFT_START));
    assert_eq!(
        confirmed.place.as_ref().unwrap().address.as_deref(),
        Some("4100 Gratiot Ave")
    );
    assert_eq!(
        confirmed.instructions.as_deref(),
        Some("Ask for Rosa at the side door.")
    );
    let first = confirmed.calendar.clone().unwrap();
    assert_eq!(first.uid, "v1/t1@switchboard");
    assert!(!first.cancelled);
    // The proposal carried no invite: nothing is in a calendar before a yes.
    assert!(last_of_kind(&driver, "proposal").calendar.is_none());

    // The collective moves the shift an hour later: the holder's invite is
    // replaced (same UID, higher SEQUENCE).
    let moved = driver.event(&shift_need("2026-11-23T07:00:00Z", "2026-11-23T11:00:00Z"));
    driver.run(moved);
    let updated = last_of_kind(&driver, "updated").clone();
    let second = updated.calendar.clone().unwrap();
    assert_eq!(second.uid, first.uid);
    assert!(
        second.sequence > first.sequence,
        "{second:?} after {first:?}"
    );
    assert_eq!(updated.shift.unwrap().start, at("2026-11-23T07:00:00Z"));

    // The revision is in the store: a restarted dispatch goes on from it.
    let restarted = Driver::restored(driver.saved());
    assert_eq!(
        restarted.planner.assignment("v1", "t1").unwrap().revision,
        driver.planner.assignment("v1", "t1").unwrap().revision
    );

    // The solver releases the member (the plan changed): the invite is
    // cancelled, same UID, higher SEQUENCE still.
    let released = driver.matched(&MatchEvent::Released(MatchChanged {
        volunteer: "v1".into(),
        task: "t1".into(),
        round: 0,
        reason: Some("the plan changed".into()),
        handoff: None,
        at: start(),
    }));
    driver.run(released);
    let cancel = last_of_kind(&driver, "released").clone();
    let third = cancel.calendar.clone().unwrap();
    assert_eq!(third.uid, first.uid);
    assert!(third.cancelled);
    assert!(third.sequence > second.sequence);
    let invite = crate::calendar::invite(&cancel, None, start()).unwrap();
    assert_eq!(invite.method, "CANCEL");

    // Read back from the log once more (a lost position), it sends nothing.
    let before = driver.inbox.len();
    driver.matches_sequence -= 1;
    let again = driver.matched(&MatchEvent::Released(MatchChanged {
        volunteer: "v1".into(),
        task: "t1".into(),
        round: 0,
        reason: Some("the plan changed".into()),
        handoff: None,
        at: start(),
    }));
    driver.run(again);
    assert_eq!(driver.inbox.len(), before);
}

#[test]
fn a_held_shift_is_reminded_24_and_2_hours_ahead_once_each_and_not_again_after_a_restart() {
    let mut driver = shift_accepted();
    driver.now = at("2026-11-22T06:00:00Z");
    check(
        &mut driver,
        Input::Wake,
        "
        send shift_reminder:v1:t1:0:24h for shift reminder [24]
        commit shift reminded v1/t1#0@24h
        wake at 23 04:00
        ",
    );
    let reminder = last_of_kind(&driver, "shift_reminder").clone();
    let note = reminder.note.clone().unwrap();
    assert!(
        note.starts_with(
            "Your shift starts in 24 hours: Mon Nov 23 01:00-05:00 (America/Detroit) at 4100 Gratiot Ave."
        ),
        "{note}"
    );
    assert!(note.contains("Ask for Rosa"), "{note}");
    assert_eq!(reminder.checkin.unwrap().action, ReplyAction::Checkin);

    // A restart between the two: the 24 h reminder is not sent again.
    let mut restarted = Driver::restored(driver.saved());
    // Its store holds what the first one wrote, and what it writes itself.
    restarted.writes.splice(0..0, driver.writes.clone());
    restarted.now = at("2026-11-22T07:00:00Z");
    check(&mut restarted, Input::Wake, "");
    assert_eq!(
        restarted.planner.next_wake(),
        Some(at("2026-11-23T04:00:00Z"))
    );
    restarted.now = at("2026-11-23T04:00:00Z");
    check(
        &mut restarted,
        Input::Wake,
        "
        send shift_reminder:v1:t1:0:2h for shift reminder [2]
        commit shift reminded v1/t1#0@2h
        wake at 23 12:00
        ",
    );
    // Both sent: a second restart owes none (the next wake is the check-in's).
    let again = Driver::restored(restarted.saved());
    assert_eq!(again.planner.next_wake(), Some(at("2026-11-23T12:00:00Z")));
}

#[test]
fn a_dispatch_away_for_the_24_hour_reminder_sends_only_the_2_hour_one() {
    let mut driver = shift_accepted();
    driver.now = at("2026-11-23T04:30:00Z");
    check(
        &mut driver,
        Input::Wake,
        "
        send shift_reminder:v1:t1:0:2h for shift reminder [24, 2]
        commit shift reminded v1/t1#0@24h, shift reminded v1/t1#0@2h
        wake at 23 12:00
        ",
    );
}

#[test]
fn a_released_member_and_a_cancelled_shift_get_no_reminder() {
    let mut released = shift_accepted();
    let release = released.matched(&MatchEvent::Released(MatchChanged {
        volunteer: "v1".into(),
        task: "t1".into(),
        round: 0,
        reason: Some("the plan changed".into()),
        handoff: None,
        at: start(),
    }));
    released.run(release);
    released.now = at("2026-11-23T05:00:00Z");
    let woken = released.run(Input::Wake);
    assert!(!woken.contains("shift_reminder"), "{woken}");
    assert_eq!(released.planner.next_wake(), None);

    let mut cancelled = shift_accepted();
    // The need is posted again without the shift: it is cancelled.
    let without = cancelled.event(&Event::NeedPosted(
        serde_json::from_value(serde_json::json!({
            "id": "n1", "collective": "c-pantry", "title": "pantry", "tasks": [],
        }))
        .unwrap(),
    ));
    cancelled.run(without);
    // The member's invite is withdrawn at once, not when (or if) the
    // solver releases them; a later release sends no second cancel.
    let notice = last_of_kind(&cancelled, "cancelled").clone();
    let entry = notice.calendar.clone().unwrap();
    assert!(entry.cancelled);
    assert_eq!(entry.uid, "v1/t1@switchboard");
    assert_eq!(
        crate::calendar::invite(&notice, None, start())
            .unwrap()
            .method,
        "CANCEL"
    );
    let release = cancelled.matched(&MatchEvent::Released(MatchChanged {
        volunteer: "v1".into(),
        task: "t1".into(),
        round: 0,
        reason: Some("the volunteer or the task is no longer available".into()),
        handoff: None,
        at: start(),
    }));
    let sent = cancelled.run(release);
    assert!(!sent.contains("released:v1:t1:0"), "{sent}");
    cancelled.now = at("2026-11-23T05:00:00Z");
    let woken = cancelled.run(Input::Wake);
    assert!(!woken.contains("shift_reminder"), "{woken}");
}

#[test]
fn a_shift_accepted_within_a_reminders_lead_gets_only_the_later_one_and_no_deadline_reminder() {
    let mut driver = Driver::new();
    let need = driver.event(&shift_need(SHIFT_START, SHIFT_END));
    driver.run(need);
    let delivery = driver.delivery(1, &proposal("v1", "t1", 0));
    driver.run(delivery);
    // Accepted 20 hours ahead: the 24 h reminder is moot, the 2 h one is owed.
    driver.now = at("2026-11-22T10:00:00Z");
    let accept = driver.answer(answer("accept", 0));
    driver.run(accept);
    assert_eq!(driver.planner.next_wake(), Some(at("2026-11-23T04:00:00Z")));
    driver.now = at("2026-11-23T04:00:00Z");
    let woken = driver.run(Input::Wake);
    assert!(woken.contains("shift_reminder:v1:t1:0:2h"), "{woken}");
    assert!(!woken.contains("deadline_reminder"), "{woken}");
    // Without an offer naming a zone, times are in UTC.
    let note = last_of_kind(&driver, "shift_reminder")
        .note
        .clone()
        .unwrap();
    assert!(note.contains("Mon Nov 23 06:00-10:00 (UTC)"), "{note}");
}
