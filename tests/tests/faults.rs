//! Faults in the default test run, bounded to seconds: nats-server killed
//! with SIGKILL under a steady load of requests and started again on the
//! same store. Every input the switchboard acknowledged is in `SB_EVENTS`
//! afterwards at the sequence its reply gave, nothing is logged twice, no
//! proposal is published twice, and the switchboard goes on matching.
//! Killing the services' own processes, and longer runs, are in
//! `tests/fault/` (see RELIABILITY.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use proto::subjects::{Input, MatchKind, Subjects};
use proto::wire::Reply;
use serde_json::json;
use tests::{hours_from_now, volunteer, Inbox, NatsServer, Options, Switchboard, EXPECT_WITHIN};
use tokio::sync::watch;

/// Concurrent clients sending requests.
const WORKERS: usize = 6;
/// Acknowledged requests before the kill, and again after the restart.
const ACKNOWLEDGED_EACH_SIDE: usize = 150;
/// How long one request waits before it is sent again (the same body).
const REQUEST_TIMEOUT_MS: u64 = 1_000;

/// An input the switchboard answered `ok`: what, about which id, and where it says it logged it.
#[derive(Clone, Debug)]
struct Acknowledged {
    input: Input,
    id: String,
    seq: u64,
}

/// What every worker records.
#[derive(Clone, Default)]
struct Ledger {
    acknowledged: Vec<Acknowledged>,
    resends: usize,
}

fn need(id: &str, skill: &str) -> serde_json::Value {
    json!({
        "id": id, "collective": "c-load", "title": "load",
        "tasks": [{"id": format!("{id}-t"), "title": "work", "skills": {skill: 1}, "hours": 2.0,
                   "slots": 1, "earliest_start": hours_from_now(0), "deadline": hours_from_now(7 * 24),
                   "impact": 5.0}]
    })
}

/// Sends `body` until it is answered, resending the same body after a
/// timeout or while nobody answers, as the contract says is safe.
async fn send_until_answered(
    client: &async_nats::Client,
    subject: String,
    body: &serde_json::Value,
    ledger: &Mutex<Ledger>,
) -> Reply {
    let payload = Bytes::from(serde_json::to_vec(body).unwrap());
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN * 2;
    loop {
        let answer = tokio::time::timeout(
            Duration::from_millis(REQUEST_TIMEOUT_MS),
            client.request(subject.clone(), payload.clone()),
        )
        .await;
        if let Ok(Ok(message)) = answer {
            let reply: Reply = serde_json::from_slice(&message.payload).unwrap();
            let unavailable = reply
                .error
                .as_ref()
                .is_some_and(|error| error.code == proto::wire::ErrorCode::Unavailable);
            if !unavailable {
                return reply;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{subject} was never answered"
        );
        ledger.lock().unwrap().resends += 1;
        // A failed request fails at once while the server is down; pace the resends.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn worker(
    client: async_nats::Client,
    number: usize,
    ledger: Arc<Mutex<Ledger>>,
    count: watch::Sender<usize>,
    stop: watch::Receiver<bool>,
) {
    let subjects = Subjects::default();
    let skills = ["cooking", "driving", "legal"];
    let mut sent = 0;
    while !*stop.borrow() {
        sent += 1;
        let skill = skills[(number + sent) % skills.len()];
        let (input, id, body) = if sent % 2 == 0 {
            let id = format!("n-{number}-{sent}");
            let body = need(&id, skill);
            (Input::Need, id, body)
        } else {
            let id = format!("v-{number}-{sent}");
            let body = volunteer(&id, json!({skill: 3}));
            (Input::Volunteer, id, body)
        };
        let reply = send_until_answered(&client, subjects.input(input), &body, &ledger).await;
        assert!(reply.ok, "{input:?} {id} refused: {reply:?}");
        ledger.lock().unwrap().acknowledged.push(Acknowledged {
            input,
            id,
            seq: reply.seq.unwrap(),
        });
        count.send_modify(|count| *count += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_killed_under_load_loses_no_acknowledged_input_and_repeats_no_proposal() {
    let mut nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (count, mut counted) = watch::channel(0usize);
    let (stop, stopped) = watch::channel(false);
    let mut workers = Vec::new();
    for number in 0..WORKERS {
        workers.push(tokio::spawn(worker(
            switchboard.client.clone(),
            number,
            ledger.clone(),
            count.clone(),
            stopped.clone(),
        )));
    }

    counted
        .wait_for(|&count| count >= ACKNOWLEDGED_EACH_SIDE)
        .await
        .unwrap();
    nats.kill().await;
    let acknowledged_before_kill = *counted.borrow();
    nats.restart().await;
    let restarted = tokio::time::Instant::now();
    counted
        .wait_for(|&count| count > acknowledged_before_kill)
        .await
        .unwrap();
    let recovery = restarted.elapsed();
    counted
        .wait_for(|&count| count >= acknowledged_before_kill + ACKNOWLEDGED_EACH_SIDE)
        .await
        .unwrap();
    stop.send(true).unwrap();
    for worker in workers {
        worker.await.unwrap();
    }

    // Still matching: a fresh pair meets after the restart.
    let mut proposals = Inbox::open(
        &switchboard.client,
        switchboard.subjects.match_event(MatchKind::Proposed),
    )
    .await;
    switchboard
        .accept(Input::Need, &need("n-after", "welding"))
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-after", json!({"welding": 2})),
        )
        .await;
    proposals
        .next_where(|_, body| body["task"] == "n-after-t")
        .await;

    // A copy: the guard may not be held across the reads below.
    let ledger = ledger.lock().unwrap().clone();
    let events = switchboard
        .stream_messages(&switchboard.subjects.events_stream())
        .await;
    let mut lost = Vec::new();
    for acknowledged in &ledger.acknowledged {
        let logged = usize::try_from(acknowledged.seq)
            .ok()
            .and_then(|seq| events.get(seq - 1));
        let expected_kind = match acknowledged.input {
            Input::Need => "need",
            _ => "volunteer",
        };
        let expected = format!("sb.ev.{expected_kind}.{}", acknowledged.id);
        if logged.map(|(subject, _)| subject) != Some(&expected) {
            lost.push((acknowledged.clone(), logged.cloned()));
        }
    }
    assert!(lost.is_empty(), "acknowledged but not logged: {lost:#?}");
    let mut bodies: HashMap<String, usize> = HashMap::new();
    for (subject, body) in &events {
        *bodies.entry(format!("{subject} {body}")).or_default() += 1;
    }
    let doubled: Vec<_> = bodies.iter().filter(|(_, &count)| count > 1).collect();
    assert!(doubled.is_empty(), "logged twice: {doubled:#?}");

    let matches = switchboard
        .stream_messages(&switchboard.subjects.matches_stream())
        .await;
    let mut published: HashMap<(String, String, String, u64), usize> = HashMap::new();
    for (subject, body) in &matches {
        let key = (
            subject.clone(),
            body["volunteer"].to_string(),
            body["task"].to_string(),
            body["round"].as_u64().unwrap_or(0),
        );
        *published.entry(key).or_default() += 1;
    }
    let repeated: Vec<_> = published.iter().filter(|(_, &count)| count > 1).collect();
    assert!(repeated.is_empty(), "published twice: {repeated:#?}");
    eprintln!(
        "faults: {} acknowledged ({} before the kill), {} resends, {} events logged, {} match events, first acknowledgement {:.2} s after the restart",
        ledger.acknowledged.len(),
        acknowledged_before_kill,
        ledger.resends,
        events.len(),
        matches.len(),
        recovery.as_secs_f64()
    );
    switchboard.stop().await;
}
