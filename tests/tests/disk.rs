//! Disk faults, each on a small tmpfs (root, as in CI): a service's state
//! directory filling up, nats-server's store filling up, and a state file
//! with bytes flipped. Nothing acknowledged is lost, and after recovery the
//! state a service saved is exactly what a replay of the logs gives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use proto::subjects::{Input, Subjects};
use proto::wire::{ErrorCode, Reply};
use serde_json::json;
use switchboard::fleet::{Connection, Fleet, Running};
use tests::{volunteer, NatsServer, Options, Switchboard, Tmpfs, EXPECT_WITHIN};
use tokio_util::sync::CancellationToken;

/// Room for a service's state with nothing else on the disk.
const STATE_DISK_BYTES: u64 = 16 * 1024 * 1024;
/// Room for nats-server's store of one test.
const LOG_DISK_BYTES: u64 = 64 * 1024 * 1024;
/// How long one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Requests sent at most while waiting for a fault to show.
const REQUESTS_MAX: usize = 20_000;

async fn ingest_alone(nats: &NatsServer, state: &Path, shutdown: &CancellationToken) -> Running {
    let mut running = Fleet::new(Connection::local(&nats.url), plumbing::Clock::system())
        .ingest(ingest::IngestConfig {
            state_directory: Some(state.to_owned()),
            declared_trust: false,
        })
        .start(shutdown)
        .await
        .unwrap();
    running.wait_caught_up().await.unwrap();
    running
}

/// Every entry of a closed service's store.
fn entries(state: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    // sled's threads may hold the lock a moment after the service stopped.
    plumbing::Store::open(state).unwrap().entries().unwrap()
}

/// What a replay of the whole log gives: ingest from empty state, caught up.
async fn replayed_ingest_state(nats: &NatsServer) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let fresh = tempfile::tempdir().unwrap();
    let state = fresh.path().join("ingest");
    let shutdown = CancellationToken::new();
    let running = ingest_alone(nats, &state, &shutdown).await;
    running.stop().await.unwrap();
    entries(&state)
}

/// Sends one volunteer's offer; `None` when no answer came in time.
async fn offer(client: &async_nats::Client, subjects: &Subjects, id: &str) -> Option<Reply> {
    let body = Bytes::from(serde_json::to_vec(&volunteer(id, json!({"first-aid": 2}))).unwrap());
    let request = client.request(subjects.input(Input::Volunteer), body);
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(Ok(message)) => Some(serde_json::from_slice(&message.payload).unwrap()),
        _ => None,
    }
}

/// The ids of every volunteer offer in the event log.
async fn logged_volunteers(nats: &NatsServer) -> Vec<String> {
    let client = nats.client("test-reader").await;
    let jetstream = plumbing::nats::jetstream(client);
    let subjects = Subjects::default();
    let stream = subjects.events_stream();
    let last = plumbing::streams::last_sequence(&jetstream, &stream)
        .await
        .unwrap();
    let mut follower = plumbing::follow::Follower::start(&jetstream, &stream, 0)
        .await
        .unwrap();
    let mut ids = Vec::new();
    while follower.position() < last {
        let stored = tokio::time::timeout(EXPECT_WITHIN, follower.next())
            .await
            .unwrap()
            .unwrap();
        if let Ok(proto::events::Event::VolunteerOffered(offer)) =
            proto::events::Event::decode(&subjects, &stored.subject, &stored.payload)
        {
            ids.push(offer.id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_directory_stops_the_service_and_a_restart_converges_to_a_replay() {
    let nats = NatsServer::start().await;
    let disk = Tmpfs::mount(STATE_DISK_BYTES);
    let state = disk.path().join("ingest");
    let shutdown = CancellationToken::new();
    let mut running = ingest_alone(&nats, &state, &shutdown).await;
    let client = nats.client("test-client").await;
    let subjects = Subjects::default();
    let mut acknowledged = Vec::new();
    for index in 0..20 {
        let id = format!("v-before-{index}");
        assert!(offer(&client, &subjects, &id).await.unwrap().ok);
        acknowledged.push(id);
    }

    let filler = disk.fill();
    // The log still takes writes; ingest's own store cannot. It must stop
    // rather than let its saved position run past state it did not save.
    let mut stopped = None;
    for index in 0..REQUESTS_MAX {
        if let Some((name, outcome)) = running.try_finished() {
            stopped = Some((name, outcome));
            break;
        }
        let id = format!("v-during-{index}");
        if offer(&client, &subjects, &id)
            .await
            .is_some_and(|reply| reply.ok)
        {
            acknowledged.push(id);
        }
    }
    let (name, outcome) = stopped.expect("ingest went on with a full state directory");
    assert_eq!(name, "ingest");
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(error.contains("cannot be trusted"), "{error}");
    running.stop().await.unwrap();

    // With room again, a restart on the same state catches up from the
    // position it saved, and ends exactly where a replay from nothing does.
    std::fs::remove_file(filler).unwrap();
    let running = ingest_alone(&nats, &state, &shutdown).await;
    running.stop().await.unwrap();
    let restarted = entries(&state);
    assert_eq!(restarted, replayed_ingest_state(&nats).await);
    let logged = logged_volunteers(&nats).await;
    for id in &acknowledged {
        assert!(
            logged.contains(id),
            "{id} was acknowledged but is not in the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_store_answers_unavailable_and_loses_nothing_acknowledged() {
    let disk = Tmpfs::mount(LOG_DISK_BYTES);
    let mut nats =
        NatsServer::start_storing_in(tempfile::tempdir().unwrap(), &disk.path().join("js")).await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let mut acknowledged = Vec::new();
    for index in 0..20 {
        let id = format!("v-before-{index}");
        let reply = offer(&switchboard.client, &switchboard.subjects, &id)
            .await
            .unwrap();
        assert!(reply.ok, "{reply:?}");
        acknowledged.push(id);
    }

    let filler = disk.fill();
    let mut refused = 0;
    for index in 0..REQUESTS_MAX {
        let id = format!("v-during-{index}");
        match offer(&switchboard.client, &switchboard.subjects, &id).await {
            Some(reply) if reply.ok => acknowledged.push(id),
            Some(reply) => {
                let error = reply.error.unwrap();
                assert_eq!(error.code, ErrorCode::Unavailable, "{error:?}");
                refused += 1;
            }
            // Unanswered in time: neither acknowledged nor refused.
            None => refused += 1,
        }
        if refused >= 3 {
            break;
        }
    }
    assert!(refused >= 3, "a full log store refused nothing");

    // Room again, and the server restarted (it may have turned JetStream
    // off when its store filled): every acknowledged input is there, and
    // new ones are taken.
    std::fs::remove_file(filler).unwrap();
    nats.kill().await;
    nats.restart().await;
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN * 2;
    loop {
        let reply = offer(&switchboard.client, &switchboard.subjects, "v-after").await;
        if reply.as_ref().is_some_and(|reply| reply.ok) {
            acknowledged.push("v-after".to_owned());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the switchboard took no input after the disk had room again: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logged = logged_volunteers(&nats).await;
    for id in &acknowledged {
        assert!(
            logged.contains(id),
            "{id} was acknowledged but is not in the log"
        );
    }
    switchboard.stop().await;
    assert_eq!(
        entries(&state.path().join("ingest")),
        replayed_ingest_state(&nats).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_with_bytes_flipped_is_detected_and_rebuilt_by_replay() {
    let nats = NatsServer::start().await;
    let directory = tempfile::tempdir().unwrap();
    let state = directory.path().join("ingest");
    let shutdown = CancellationToken::new();
    let running = ingest_alone(&nats, &state, &shutdown).await;
    let client = nats.client("test-client").await;
    let subjects = Subjects::default();
    for index in 0..200 {
        let id = format!("v-{index}");
        assert!(offer(&client, &subjects, &id).await.unwrap().ok);
    }
    running.stop().await.unwrap();

    // Flip every 64th byte of every file sled keeps.
    let mut flipped = 0;
    for file in walk(&state) {
        let mut bytes = std::fs::read(&file).unwrap();
        for byte in bytes.iter_mut().step_by(64) {
            *byte ^= 0xA5;
            flipped += 1;
        }
        std::fs::write(&file, bytes).unwrap();
    }
    assert!(flipped > 0);

    let running = ingest_alone(&nats, &state, &shutdown).await;
    running.stop().await.unwrap();
    let aside = directory.path().join("ingest.discarded-1");
    assert!(aside.exists(), "the corrupt store was not detected");
    assert_eq!(entries(&state), replayed_ingest_state(&nats).await);
}

/// Every file under `directory`.
fn walk(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
