//! Several solver instances on a real nats-server: leases decide which one
//! plans a shard, a standby takes over when the holder dies without a word,
//! and nothing is proposed twice (ADR 0004).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use proto::subjects::{Input, MatchKind, Subjects};
use proto::wire::Reply;
use serde_json::json;
use tests::{hours_from_now, volunteer, Inbox, NatsServer, EXPECT_WITHIN};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Short, so the test waits little for a dead holder's lease to age out.
const LEASE_TTL_MS: u64 = 1_500;

struct Instance {
    name: String,
    task: JoinHandle<anyhow::Result<()>>,
    shutdown: CancellationToken,
}

async fn context(nats: &NatsServer, name: &str) -> plumbing::Context {
    let client = plumbing::nats::connect(&nats.url, name).await.unwrap();
    plumbing::Context::new(client, Subjects::default(), plumbing::Clock::system())
}

async fn start_solver(nats: &NatsServer, name: &str, shard: &str, shards: &str) -> Instance {
    let shards: Vec<String> = shards.split(',').map(str::to_owned).collect();
    let config = solver::SolverConfig {
        match_budget: Duration::from_millis(200),
        sharding: solver::shard::Sharding::new(shard, &shards).unwrap(),
        lease: Some(solver::lease::LeaseConfig::new(name, LEASE_TTL_MS).unwrap()),
        ..solver::SolverConfig::default()
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(solver::run(
        context(nats, name).await,
        config,
        shutdown.clone(),
    ));
    Instance {
        name: name.to_owned(),
        task,
        shutdown,
    }
}

async fn start_ingest(nats: &NatsServer, shutdown: &CancellationToken) {
    let config = ingest::IngestConfig {
        state_directory: None,
        declared_trust: true,
    };
    tokio::spawn(ingest::run(
        context(nats, "sb-ingest").await,
        config,
        shutdown.clone(),
    ));
}

/// Sends `body` to `input` until ingest answers, and insists on `ok`.
async fn accept(client: &async_nats::Client, input: Input, body: &serde_json::Value) {
    let subject = Subjects::default().input(input);
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    loop {
        let payload = Bytes::from(serde_json::to_vec(body).unwrap());
        if let Ok(message) = client.request(subject.clone(), payload).await {
            let reply: Reply = serde_json::from_slice(&message.payload).unwrap();
            assert!(reply.ok, "{input:?} refused: {:?}", reply.error);
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingest never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn need(id: &str, region: Option<&str>) -> serde_json::Value {
    // 15 hours in two weeks: a volunteer giving 10 hours a week (20 in
    // the window) fits one such task, never two.
    json!({
        "id": id, "collective": "c1", "title": id,
        "tasks": [{"id": format!("{id}-t"), "title": "work", "skills": {"welding": 1},
                   "hours": 15.0, "slots": 1, "region": region,
                   "earliest_start": hours_from_now(0), "deadline": hours_from_now(14 * 24),
                   "impact": 5.0}]
    })
}

fn volunteer_in(id: &str, region: Option<&str>) -> serde_json::Value {
    let mut offer = volunteer(id, json!({"welding": 3}));
    offer["region"] = json!(region);
    offer
}

/// The instance named in `shard`'s lease, once somebody holds it.
async fn holder(client: &async_nats::Client, shard: &str) -> String {
    let jetstream = plumbing::nats::jetstream(client.clone());
    let bucket = Subjects::default().solver_lease_bucket();
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    loop {
        if let Ok(store) = jetstream.get_key_value(bucket.clone()).await {
            if let Ok(Some(value)) = store.get(shard).await {
                let holder: serde_json::Value = serde_json::from_slice(&value).unwrap();
                return holder["instance"].as_str().unwrap().to_owned();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody took {shard}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every proposal in `SB_MATCHES`, as (volunteer, task, round), in order.
async fn proposals(client: &async_nats::Client) -> Vec<(String, String, u64)> {
    let jetstream = plumbing::nats::jetstream(client.clone());
    let subjects = Subjects::default();
    let stream = subjects.matches_stream();
    let last = plumbing::streams::last_sequence(&jetstream, &stream)
        .await
        .unwrap();
    let mut follower = plumbing::follow::Follower::start(&jetstream, &stream, 0)
        .await
        .unwrap();
    let mut found = Vec::new();
    let mut position = 0;
    while position < last {
        let stored = tokio::time::timeout(EXPECT_WITHIN, follower.next())
            .await
            .unwrap()
            .unwrap();
        position = stored.sequence;
        if stored.subject == subjects.match_event(MatchKind::Proposed) {
            let body: serde_json::Value = serde_json::from_slice(&stored.payload).unwrap();
            found.push((
                body["volunteer"].as_str().unwrap().to_owned(),
                body["task"].as_str().unwrap().to_owned(),
                body["round"].as_u64().unwrap(),
            ));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_solver_takes_over_a_dead_holders_shard_and_proposes_nothing_twice() {
    let nats = NatsServer::start().await;
    let services = CancellationToken::new();
    start_ingest(&nats, &services).await;
    let client = nats.client("test-client").await;
    let first = start_solver(&nats, "solver-a", "all", "all").await;
    let second = start_solver(&nats, "solver-b", "all", "all").await;
    let mut proposed = Inbox::open(
        &client,
        Subjects::default().match_event(MatchKind::Proposed),
    )
    .await;

    accept(
        &client,
        Input::Volunteer,
        &volunteer_in("v1", Some("detroit")),
    )
    .await;
    accept(&client, Input::Need, &need("n1", Some("detroit"))).await;
    proposed.next_where(|_, body| body["task"] == "n1-t").await;

    // The holder dies without a word: its task is dropped mid-flight, so it
    // neither releases its lease nor finishes anything it was doing.
    let active = holder(&client, "all").await;
    let (dead, standby) = if active == first.name {
        (first, second)
    } else {
        (second, first)
    };
    dead.task.abort();
    let died_at = tokio::time::Instant::now();
    accept(
        &client,
        Input::Volunteer,
        &volunteer_in("v2", Some("detroit")),
    )
    .await;
    accept(&client, Input::Need, &need("n2", Some("detroit"))).await;
    proposed
        .next_where(|_, body| body["task"] == "n2-t" && body["volunteer"] == "v2")
        .await;
    let takeover = died_at.elapsed();
    eprintln!(
        "takeover: {} ms from the holder's death to the standby's first proposal (lease TTL {LEASE_TTL_MS} ms)",
        takeover.as_millis()
    );
    assert_eq!(holder(&client, "all").await, standby.name);

    // Each volunteer fits one task; each pair was proposed exactly once.
    let found = proposals(&client).await;
    let mut per_pair: HashMap<(String, String), usize> = HashMap::new();
    for (volunteer, task, _) in &found {
        *per_pair
            .entry((volunteer.clone(), task.clone()))
            .or_default() += 1;
    }
    assert_eq!(
        per_pair,
        HashMap::from([
            (("v1".to_owned(), "n1-t".to_owned()), 1),
            (("v2".to_owned(), "n2-t".to_owned()), 1),
        ]),
        "{found:?}"
    );

    // A clean stop gives the shard up at once.
    standby.shutdown.cancel();
    standby.task.await.unwrap().unwrap();
    let jetstream = plumbing::nats::jetstream(client.clone());
    let store = jetstream
        .get_key_value(Subjects::default().solver_lease_bucket())
        .await
        .unwrap();
    assert_eq!(store.get("all").await.unwrap(), None);
    services.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_plan_only_their_own_region_and_remote_work_goes_to_remote_only_volunteers() {
    let nats = NatsServer::start().await;
    let services = CancellationToken::new();
    start_ingest(&nats, &services).await;
    let client = nats.client("test-client").await;
    let shards = "remote,detroit";
    let remote = start_solver(&nats, "solver-remote", "remote", shards).await;
    let detroit = start_solver(&nats, "solver-detroit", "detroit", shards).await;
    assert_eq!(holder(&client, "remote").await, remote.name);
    assert_eq!(holder(&client, "detroit").await, detroit.name);
    let mut proposed = Inbox::open(
        &client,
        Subjects::default().match_event(MatchKind::Proposed),
    )
    .await;

    // The Detroit volunteer could do either task, but belongs to the
    // Detroit shard only; the remote task waits for a remote volunteer.
    accept(
        &client,
        Input::Volunteer,
        &volunteer_in("v-detroit", Some("detroit")),
    )
    .await;
    accept(&client, Input::Need, &need("n-remote", None)).await;
    accept(&client, Input::Need, &need("n-detroit", Some("detroit"))).await;
    proposed
        .next_where(|_, body| body["task"] == "n-detroit-t")
        .await;
    accept(&client, Input::Volunteer, &volunteer_in("v-remote", None)).await;
    proposed
        .next_where(|_, body| body["task"] == "n-remote-t")
        .await;

    // A live subscriber may see a proposal a moment before the stream
    // holds it: read the stream until it holds both, or the wait ends.
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    let found: Vec<(String, String)> = loop {
        let found: Vec<(String, String)> = proposals(&client)
            .await
            .into_iter()
            .map(|(volunteer, task, _)| (volunteer, task))
            .collect();
        if found.len() >= 2 || tokio::time::Instant::now() >= deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        found,
        vec![
            ("v-detroit".to_owned(), "n-detroit-t".to_owned()),
            ("v-remote".to_owned(), "n-remote-t".to_owned()),
        ]
    );
    for instance in [remote, detroit] {
        instance.shutdown.cancel();
        instance.task.await.unwrap().unwrap();
    }
    services.cancel();
}

#[tokio::test]
async fn a_write_expecting_an_older_end_of_the_stream_is_refused() {
    let nats = NatsServer::start().await;
    let context = context(&nats, "test-writer").await;
    plumbing::streams::ensure(&context.jetstream, &context.subjects, context.replication)
        .await
        .unwrap();
    let subject = context.subjects.match_event(MatchKind::Released);
    let expect = |sequence| Some(plumbing::publish::Expect::LastInStream(sequence));
    let first = plumbing::publish::durably_expecting(
        &context,
        &subject,
        "m1",
        expect(0),
        Bytes::from_static(b"{}"),
    )
    .await
    .unwrap();
    assert_eq!(first, 1);
    // A writer that read up to 0 (a paused former holder) is fenced off...
    let stale = plumbing::publish::durably_expecting(
        &context,
        &subject,
        "m2",
        expect(0),
        Bytes::from_static(b"{}"),
    )
    .await;
    assert!(
        matches!(stale, Err(plumbing::publish::PublishError::Conflict { .. })),
        "{stale:?}"
    );
    // ...and one that read the whole stream writes.
    let current = plumbing::publish::durably_expecting(
        &context,
        &subject,
        "m2",
        expect(1),
        Bytes::from_static(b"{}"),
    )
    .await
    .unwrap();
    assert_eq!(current, 2);
}

/// A solver without leases sends a plan's writes together, each
/// conditional on the one before: all go in when nobody else wrote, none
/// from the first write of anyone else's on.
#[tokio::test]
async fn chained_writes_go_in_together_or_stop_at_anyone_elses_write() {
    let nats = NatsServer::start().await;
    let context = context(&nats, "test-writer").await;
    plumbing::streams::ensure(&context.jetstream, &context.subjects, context.replication)
        .await
        .unwrap();
    let subject = context.subjects.match_event(MatchKind::Released);
    let outgoing = |id: &str| plumbing::publish::Outgoing {
        subject: subject.clone(),
        message_id: id.to_owned(),
        payload: Bytes::from_static(b"{}"),
        trace: None,
    };
    let plan = [outgoing("a1"), outgoing("a2"), outgoing("a3")];
    let written = plumbing::publish::durably_chained(&context, &plan, 0)
        .await
        .unwrap();
    assert_eq!(written, vec![1, 2, 3]);
    // Someone else (dispatch: a decline) writes; a plan made before it
    // read that is refused, and nothing of it goes in.
    plumbing::publish::durably(&context, &subject, "other", None, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let stale = [outgoing("b1"), outgoing("b2")];
    let refused = plumbing::publish::durably_chained(&context, &stale, 3).await;
    assert!(
        matches!(
            refused,
            Err(plumbing::publish::PublishError::Conflict { .. })
        ),
        "{refused:?}"
    );
    let stream = context.subjects.matches_stream();
    assert_eq!(
        plumbing::streams::last_sequence(&context.jetstream, &stream)
            .await
            .unwrap(),
        4
    );
    // Read to its end, the same plan goes in.
    let written = plumbing::publish::durably_chained(&context, &stale, 4)
        .await
        .unwrap();
    assert_eq!(written, vec![5, 6]);
}
