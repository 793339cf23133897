//! Connecting to NATS with every option set on purpose, not left to defaults.

use std::path::PathBuf;
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

/// Who a client is to a server that asks (deploy/nats/secure.conf): its
/// user and password, the CA it trusts, the certificate it shows under
/// mutual TLS, and the inbox prefix its user may subscribe to. All empty
/// for a local server that asks nothing.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The NATS user (`sb-ingest`, `volunteer-v1`, ...).
    pub user: Option<String>,
    /// The user's password; required with `user`.
    pub password: Option<String>,
    /// PEM file of the CA that signed the server's certificate; implies TLS.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key shown to a server that verifies clients.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// Replies come back under this prefix instead of `_INBOX`; a user
    /// allowed only its own inbox (make-users) needs it.
    pub inbox_prefix: Option<String>,
}

impl std::fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("ca_file", &self.ca_file)
            .field("client_certificate", &self.client_certificate)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

/// Connects `name` (shown in the server's connection list) to `url`, which
/// may list several servers of a cluster separated by commas
/// (`nats://a:4222,nats://b:4222`): the client starts with any of them and
/// moves to another when one dies. Reconnects forever: a service outlives
/// a restarting server.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    connect_as(url, name, &Credentials::default()).await
}

/// `connect`, presenting `credentials` to the server.
pub async fn connect_as(
    url: &str,
    name: &str,
    credentials: &Credentials,
) -> anyhow::Result<async_nats::Client> {
    let servers = server_addresses(url)?;
    let mut options = async_nats::ConnectOptions::new();
    match (&credentials.user, &credentials.password) {
        (Some(user), Some(password)) => {
            options = options.user_and_password(user.clone(), password.clone());
        }
        (None, None) => {}
        (Some(_), None) => anyhow::bail!("NATS user given without a password"),
        (None, Some(_)) => anyhow::bail!("NATS password given without a user"),
    }
    if let Some(ca_file) = &credentials.ca_file {
        options = options
            .add_root_certificates(ca_file.clone())
            .require_tls(true);
    }
    if let Some((certificate, key)) = &credentials.client_certificate {
        options = options
            .add_client_certificate(certificate.clone(), key.clone())
            .require_tls(true);
    }
    if let Some(prefix) = &credentials.inbox_prefix {
        options = options.custom_inbox_prefix(prefix.clone());
    }
    options
        .name(name)
        .connection_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .ping_interval(Duration::from_millis(PING_INTERVAL_MS))
        .request_timeout(Some(Duration::from_millis(REQUEST_TIMEOUT_MS)))
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .max_reconnects(None)
        .retry_on_initial_connect()
        .connect(servers.as_slice())
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

/// The servers of a comma-separated list of URLs, each checked.
pub fn server_addresses(url: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .map(|server| {
            server
                .parse::<async_nats::ServerAddr>()
                .with_context(|| format!("NATS server URL {server:?} is not a URL"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!servers.is_empty(), "no NATS server URL in {url:?}");
    Ok(servers)
}

/// A JetStream context whose publishes wait a bounded time for their ack.
pub fn jetstream(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
        .ack_timeout(Duration::from_millis(PUBLISH_ACK_TIMEOUT_MS))
        .max_ack_inflight(PUBLISH_PENDING_MAX)
        .build(client)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_list_of_cluster_urls_gives_every_server_and_a_bad_one_is_named() {
        let servers =
            server_addresses("nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://h:4224").unwrap();
        assert_eq!(servers.len(), 3);
        let error = server_addresses("nats://127.0.0.1:4222,nats://bad host:1").unwrap_err();
        assert!(format!("{error:#}").contains("bad host"), "{error:#}");
        assert!(server_addresses(" , ").is_err());
    }
}
