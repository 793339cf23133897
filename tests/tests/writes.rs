//! Writing many messages at once over a real nats-server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use plumbing::publish::{self, Outgoing, WRITES_IN_FLIGHT_MAX};
use proto::subjects::{MatchKind, Subjects};
use tests::NatsServer;

/// async-nats holds one of a context's ack permits per unawaited write.
const CLIENT_ACK_PERMITS: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_writes_than_the_client_has_ack_permits_all_land_in_order() {
    let nats = NatsServer::start().await;
    let client = plumbing::nats::connect(&nats.url, "sb-writes")
        .await
        .unwrap();
    let subjects = Subjects::default();
    let context =
        plumbing::Context::new(client, subjects.clone(), plumbing::clock::Clock::system());
    plumbing::streams::ensure(&context.jetstream, &subjects, context.replication)
        .await
        .unwrap();

    let count = CLIENT_ACK_PERMITS + WRITES_IN_FLIGHT_MAX + 1;
    let messages: Vec<Outgoing> = (0..count)
        .map(|index| Outgoing {
            subject: subjects.match_event(MatchKind::Released),
            message_id: format!("writes-{index}"),
            payload: Bytes::from(format!("{{\"index\":{index}}}")),
            trace: None,
        })
        .collect();
    // A whole-world run at 100,000 tasks once waited forever here.
    let sequences = tokio::time::timeout(
        Duration::from_secs(120),
        publish::durably_all(&context, &messages),
    )
    .await
    .expect("the writes finish")
    .unwrap();

    assert_eq!(sequences.len(), count);
    assert!(
        sequences.windows(2).all(|pair| pair[0] < pair[1]),
        "each write lands after the one before it"
    );
    let stream = plumbing::streams::last_sequence(&context.jetstream, &subjects.matches_stream())
        .await
        .unwrap();
    assert_eq!(stream, *sequences.last().unwrap());
}
