//! Acknowledged means applied: a later request that says what an older one
//! said is a new update, not a duplicate (offer, withdraw, offer again); a
//! true retry is still one event; a client's idempotency key makes every
//! retry one event; two ingest instances can never commit a dependency
//! cycle between them; a declared trust tier is ignored, and the sender
//! told.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use proto::subjects::{Input, Subjects};
use proto::wire::{Reply, IDEMPOTENCY_KEY_HEADER};
use serde_json::json;
use switchboard::fleet::{Connection, Fleet};
use tests::{hours_from_now, volunteer, NatsServer, Options, Switchboard};
use tokio_util::sync::CancellationToken;

fn need(id: &str, tasks: &[(&str, &[&str])]) -> serde_json::Value {
    let tasks: Vec<serde_json::Value> = tasks
        .iter()
        .map(|(task, dependencies)| {
            json!({"id": task, "title": format!("task {task}"), "hours": 2.0, "slots": 1,
                   "earliest_start": hours_from_now(0), "deadline": hours_from_now(7 * 24),
                   "region": "detroit", "impact": 5.0, "depends_on": dependencies})
        })
        .collect();
    json!({"id": id, "collective": "c-pantry", "title": format!("need {id}"), "tasks": tasks})
}

/// The events logged so far, as (subject, body).
async fn events(switchboard: &Switchboard) -> Vec<(String, serde_json::Value)> {
    switchboard
        .stream_messages(&switchboard.subjects.events_stream())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_withdraw_offer_again_writes_three_events_and_the_volunteer_ends_offered() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let offer = volunteer("v-ana", json!({"first-aid": 2}));
    let withdrawal = json!({"kind": "volunteer", "id": "v-ana"});
    let first = switchboard.accept(Input::Volunteer, &offer).await;
    let withdrawn = switchboard.accept(Input::Withdraw, &withdrawal).await;
    let again = switchboard.accept(Input::Volunteer, &offer).await;
    assert_ne!(
        again.seq, first.seq,
        "the same body after a withdrawal is a new update"
    );
    assert!(again.seq > withdrawn.seq);
    // A true retry of that last offer is one event, answered the same.
    let retry = switchboard.accept(Input::Volunteer, &offer).await;
    assert_eq!(retry.seq, again.seq);
    assert_eq!(events(&switchboard).await.len(), 3);
    // The world ends at the offer: the volunteer can be withdrawn again.
    switchboard.accept(Input::Withdraw, &withdrawal).await;
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undoing_a_tasks_removal_reopens_it_and_a_pledge_made_again_after_withdrawal_counts() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let posted = need("n-pantry", &[("t-sort", &[]), ("t-drive", &[])]);
    switchboard.accept(Input::Need, &posted).await;
    switchboard
        .accept(Input::Withdraw, &json!({"kind": "task", "id": "t-drive"}))
        .await;
    let undone = switchboard.accept(Input::Need, &posted).await;
    assert_eq!(events(&switchboard).await.len(), 3, "{undone:?}");
    // Open again: it can be completed (a cancelled task cannot).
    switchboard
        .accept(Input::Complete, &json!({"task": "t-drive"}))
        .await;

    let pledge = json!({"id": "p-rent", "amount_cents": 40000, "donor": "A. Donor"});
    let withdrawal = json!({"kind": "pledge", "id": "p-rent"});
    switchboard.accept(Input::Pledge, &pledge).await;
    switchboard.accept(Input::Withdraw, &withdrawal).await;
    switchboard.accept(Input::Pledge, &pledge).await;
    switchboard.accept(Input::Withdraw, &withdrawal).await;
    assert_eq!(events(&switchboard).await.len(), 8);
    switchboard.stop().await;
}

/// Sends `body` to `input` with an idempotency key.
async fn send_keyed(
    switchboard: &Switchboard,
    input: Input,
    body: &serde_json::Value,
    key: &str,
) -> Reply {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(IDEMPOTENCY_KEY_HEADER, key);
    let message = switchboard
        .client
        .request_with_headers(
            switchboard.subjects.input(input),
            headers,
            Bytes::from(serde_json::to_vec(body).unwrap()),
        )
        .await
        .unwrap();
    serde_json::from_slice(&message.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retry_with_an_idempotency_key_is_one_event_whatever_came_between() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let offer = volunteer("v-kim", json!({"driving": 3}));
    let first = send_keyed(&switchboard, Input::Volunteer, &offer, "kim-offer-1").await;
    assert!(first.ok, "{first:?}");
    switchboard
        .accept(
            Input::Withdraw,
            &json!({"kind": "volunteer", "id": "v-kim"}),
        )
        .await;
    // The retry of the first request, its answer lost: still that request.
    let retry = send_keyed(&switchboard, Input::Volunteer, &offer, "kim-offer-1").await;
    assert_eq!(retry.seq, first.seq);
    // A new key is a new request.
    let second = send_keyed(&switchboard, Input::Volunteer, &offer, "kim-offer-2").await;
    assert!(second.seq > first.seq);
    assert_eq!(events(&switchboard).await.len(), 3);
    let bad = send_keyed(&switchboard, Input::Volunteer, &offer, "has spaces").await;
    assert_eq!(
        bad.error.unwrap().field.as_deref(),
        Some(IDEMPOTENCY_KEY_HEADER)
    );
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_trust_tier_is_ignored_and_the_volunteer_is_told() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let options = Options {
        trust_source: solver::TrustSource::Vetted,
        ..Options::default()
    };
    let switchboard = Switchboard::start(&nats, state.path(), options).await;
    let mut offer = volunteer("v-stranger", json!({"escort": 5}));
    offer["trust"] = json!(2);
    let reply = switchboard.accept(Input::Volunteer, &offer).await;
    assert!(
        reply.note.as_deref().unwrap_or_default().contains("trust"),
        "{reply:?}"
    );
    let logged = events(&switchboard).await;
    assert_eq!(logged[0].1["trust"], json!(0), "{logged:?}");
    switchboard.stop().await;
}

/// Two ingest instances share the requests of one queue group. Each pair
/// of crossing need posts (a needs b, b needs a) races: at most one of the
/// two is accepted, whichever instances they reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_ingest_instances_racing_never_commit_a_dependency_cycle() {
    const RACES: usize = 12;
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let mut running = Fleet::new(Connection::local(&nats.url), plumbing::Clock::system())
        .ingest(ingest::IngestConfig {
            state_directory: Some(state.path().join("ingest-1")),
            declared_trust: false,
        })
        .ingest(ingest::IngestConfig {
            state_directory: Some(state.path().join("ingest-2")),
            declared_trust: false,
        })
        .start(&shutdown)
        .await
        .unwrap();
    running.wait_caught_up().await.unwrap();
    let first = nats.client("client-1").await;
    let second = nats.client("client-2").await;
    let subject = Subjects::default().input(Input::Need);
    let send = |client: &async_nats::Client, body: serde_json::Value| {
        let (client, subject) = (client.clone(), subject.clone());
        async move {
            let message = client
                .request(subject, Bytes::from(serde_json::to_vec(&body).unwrap()))
                .await
                .unwrap();
            serde_json::from_slice::<Reply>(&message.payload).unwrap()
        }
    };
    let mut both_accepted = Vec::new();
    for race in 0..RACES {
        let (a, b) = (format!("a{race}"), format!("b{race}"));
        let (left, right) = (format!("n-left-{race}"), format!("n-right-{race}"));
        assert!(send(&first, need(&left, &[(&a, &[])])).await.ok);
        assert!(send(&first, need(&right, &[(&b, &[])])).await.ok);
        let (one, other) = tokio::join!(
            send(&first, need(&left, &[(&a, &[&b])])),
            send(&second, need(&right, &[(&b, &[&a])])),
        );
        if one.ok && other.ok {
            both_accepted.push(race);
        }
        assert!(
            one.ok || other.ok,
            "one of the two must win: {one:?} {other:?}"
        );
    }
    assert!(
        both_accepted.is_empty(),
        "cycles committed in races {both_accepted:?}"
    );
    running.stop().await.unwrap();
}
