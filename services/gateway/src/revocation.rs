//! The revocation set: tokens ended before their expiry, shared by every
//! gateway instance through a JetStream key-value bucket
//! (`proto::subjects::Subjects::token_revocation_bucket`).
//!
//! A key `<token id>` says the token is revoked (`/signout`, a
//! coordinator's `POST /api/revoke`); a key `used-<token id>` says a
//! sign-in link was exchanged, written with `create`, which succeeds for one
//! writer only, so a link signs in once across every instance. Keys live
//! as long as the longest token ([`TOKEN_AGE_S_MAX`]): after that the
//! token has expired anyway. Each instance follows the bucket into the
//! in-memory set its [`Tokens`] check, and marks its own revocations at
//! once, so a signed-out session is refused by the instance that signed it
//! out from the next request on, and by the others as soon as the bucket's
//! update reaches them.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt;
use plumbing::Context;
use tokio_util::sync::CancellationToken;

use crate::access::{Tokens, TOKEN_AGE_S_MAX};

/// The prefix of a key that records a sign-in link's exchange.
const USED_PREFIX: &str = "used-";
/// Waited before following the bucket again after an error.
const FOLLOW_RETRY_MS: u64 = 1_000;

/// The bucket, opened on first use.
#[derive(Clone)]
pub struct Revocations {
    context: Context,
    store: Arc<tokio::sync::OnceCell<kv::Store>>,
}

impl Revocations {
    pub fn new(context: Context) -> Revocations {
        Revocations {
            context,
            store: Arc::default(),
        }
    }

    async fn store(&self) -> anyhow::Result<&kv::Store> {
        self.store
            .get_or_try_init(|| async {
                let bucket = self.context.subjects.token_revocation_bucket();
                let config = kv::Config {
                    bucket: bucket.clone(),
                    description: "Revoked and exchanged sign-in tokens".to_owned(),
                    history: 1,
                    max_age: Duration::from_secs(TOKEN_AGE_S_MAX),
                    num_replicas: self.context.replication.replicas(),
                    ..kv::Config::default()
                };
                self.context
                    .jetstream
                    .create_key_value(config)
                    .await
                    .map_err(|error| anyhow::anyhow!("opening the bucket {bucket}: {error}"))
            })
            .await
    }

    /// Ends the token `token_id` for every instance.
    pub async fn revoke(&self, tokens: &Tokens, token_id: &str) -> anyhow::Result<()> {
        tokens.mark_revoked(token_id);
        self.store()
            .await?
            .put(token_id, Bytes::new())
            .await
            .map_err(|error| anyhow::anyhow!("revoking a token: {error}"))?;
        Ok(())
    }

    /// Whether the token `token_id` is revoked, read from the bucket now
    /// (the auth callout's check at each connection), not from the set
    /// this instance follows.
    pub async fn is_revoked(&self, token_id: &str) -> anyhow::Result<bool> {
        let entry = self
            .store()
            .await?
            .get(token_id)
            .await
            .map_err(|error| anyhow::anyhow!("reading a revoked token: {error}"))?;
        Ok(entry.is_some())
    }

    /// Records that the link `token_id` was exchanged: `true` the first
    /// time across every instance, `false` ever after.
    pub async fn use_once(&self, token_id: &str) -> anyhow::Result<bool> {
        let key = format!("{USED_PREFIX}{token_id}");
        match self.store().await?.create(&key, Bytes::new()).await {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(anyhow::anyhow!("recording a link's use: {error}")),
        }
    }

    /// Follows the bucket into `tokens`' revocation set until `shutdown`.
    pub fn spawn_following(&self, tokens: Tokens, shutdown: CancellationToken) {
        let revocations = self.clone();
        tokio::spawn(async move {
            loop {
                let followed = tokio::select! {
                    () = shutdown.cancelled() => return,
                    followed = revocations.follow(&tokens) => followed,
                };
                if let Err(error) = followed {
                    tracing::warn!(error = %format!("{error:#}"), "following the revoked tokens");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(FOLLOW_RETRY_MS)) => {}
                }
            }
        });
    }

    async fn follow(&self, tokens: &Tokens) -> anyhow::Result<()> {
        let mut entries = self
            .store()
            .await?
            .watch_all_from_revision(1)
            .await
            .map_err(|error| anyhow::anyhow!("watching the revoked tokens: {error}"))?;
        while let Some(entry) = entries.next().await {
            let entry =
                entry.map_err(|error| anyhow::anyhow!("reading a revoked token: {error}"))?;
            if entry.operation == kv::Operation::Put && !entry.key.starts_with(USED_PREFIX) {
                tokens.mark_revoked(&entry.key);
            }
        }
        Ok(())
    }
}
