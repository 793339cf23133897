//! Connecting to NATS with every option set on purpose, not left to defaults.

use std::time::Duration;

use anyhow::Context as _;

/// How long a first connection may take before `connect` gives up.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Client pings; a dead server is noticed within two intervals.
pub const PING_INTERVAL_MS: u64 = 10_000;
/// A request (ingest, plan) that gets no reply in this time fails.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Messages buffered per subscription before the slow consumer is cut off.
pub const SUBSCRIPTION_CAPACITY: usize = 65_536;
/// How long a JetStream publish waits for the server's ack.
pub const PUBLISH_ACK_TIMEOUT_MS: u64 = 5_000;
/// Publishes awaiting an ack at once, per client.
pub const PUBLISH_PENDING_MAX: usize = 1_024;

/// Connects `name` (shown in the server's connection list) to `url`.
/// Reconnects forever: a service outlives a restarting server.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .ping_interval(Duration::from_millis(PING_INTERVAL_MS))
        .request_timeout(Some(Duration::from_millis(REQUEST_TIMEOUT_MS)))
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .max_reconnects(None)
        .retry_on_initial_connect()
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

/// A JetStream context whose publishes wait a bounded time for their ack.
pub fn jetstream(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
        .ack_timeout(Duration::from_millis(PUBLISH_ACK_TIMEOUT_MS))
        .max_ack_inflight(PUBLISH_PENDING_MAX)
        .build(client)
}
