//! Leases on shards, so that of several solver instances exactly one plans
//! and publishes each shard (ADR 0004).
//!
//! A lease is one key per shard in a JetStream key-value bucket whose
//! entries age out after the lease's TTL. An instance takes a free shard by
//! creating its key (which fails if the key exists), and keeps it by
//! updating the key with the revision it last wrote (which fails if anyone
//! else wrote since), `LEASE_RENEWALS_PER_TTL` times per TTL, from a task of
//! its own so a long solve never delays a renewal. When the holder dies its
//! key ages out and a standby's next attempt to create it succeeds.
//!
//! The holder counts itself active only until a little before the server
//! could let the key go, and stops the moment a renewal fails. That keeps
//! two instances from both believing they hold a shard in all but
//! pathological cases (a process paused between its check and its
//! publish); what makes those harmless too is the solver's conditional
//! publish, not the lease (see `lib.rs`, `publish_match`).

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::shard::Sharding;

/// A holder that cannot renew for this long loses its shard; a standby
/// takes over within about this much more than the TTL.
pub const LEASE_TTL_MS_DEFAULT: u64 = 6_000;
/// Shorter leases would be lost to an ordinary garbage-collection pause or
/// a cluster's leader election.
pub const LEASE_TTL_MS_MIN: u64 = 1_000;
/// Longer leases leave a shard unplanned for minutes after a crash.
pub const LEASE_TTL_MS_MAX: u64 = 120_000;
/// Renewals (and, for a standby, attempts to take over) per TTL.
pub const LEASE_RENEWALS_PER_TTL: u32 = 3;
/// The holder stops counting itself active this share of the TTL before
/// the server lets the key age out (clocks running at different rates, the
/// server's expiry timer), in tenths.
pub const LEASE_SAFETY_TENTHS: u32 = 2;
/// Attempts at creating or updating the bucket when instances start together.
pub const BUCKET_ATTEMPTS_MAX: u32 = 5;

const _: () =
    assert!(LEASE_TTL_MS_MIN < LEASE_TTL_MS_DEFAULT && LEASE_TTL_MS_DEFAULT < LEASE_TTL_MS_MAX);
// A renewal must come before the safety margin runs out.
const _: () = assert!(10 / LEASE_RENEWALS_PER_TTL + LEASE_SAFETY_TENTHS < 10);

/// How an instance takes part in leases.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// This instance's name in the lease (host or pod name), for people.
    pub instance: String,
    /// Every instance of a deployment must use the same TTL: it is the
    /// bucket's age limit.
    pub ttl: Duration,
}

impl LeaseConfig {
    /// `ttl_ms` if within bounds; otherwise an error naming the field.
    pub fn new(instance: &str, ttl_ms: u64) -> Result<LeaseConfig, proto::Invalid> {
        if !(LEASE_TTL_MS_MIN..=LEASE_TTL_MS_MAX).contains(&ttl_ms) {
            return Err(proto::Invalid::new(
                "lease_ttl_ms",
                format!("must be from {LEASE_TTL_MS_MIN} to {LEASE_TTL_MS_MAX} milliseconds"),
            ));
        }
        if instance.is_empty() || instance.len() > proto::ids::ID_BYTES_MAX * 4 {
            return Err(proto::Invalid::new(
                "instance",
                "must be a name of 1 to 256 bytes",
            ));
        }
        Ok(LeaseConfig {
            instance: instance.to_owned(),
            ttl: Duration::from_millis(ttl_ms),
        })
    }
}

/// What the key holds: who has the shard, for people and logs. Only the
/// key's revision decides anything.
#[derive(Serialize)]
struct Holder<'a> {
    instance: &'a str,
    shard: &'a str,
    shards: String,
}

/// A shard held: the key's revision and until when this instance may act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The revision of the key this instance last wrote: its epoch.
    pub revision: u64,
    pub active_until: Instant,
}

/// Keeps (or waits for) one shard's lease from a task of its own, stopped
/// when this is dropped: a solver that is dropped stops renewing at once.
pub struct LeaseKeeper {
    state: watch::Receiver<Option<Held>>,
    renewing: tokio::task::JoinHandle<()>,
    store: kv::Store,
    key: String,
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

impl LeaseKeeper {
    /// Opens (or creates) the lease bucket and starts competing for the
    /// shard at once.
    pub async fn start(
        context: &plumbing::Context,
        sharding: &Sharding,
        config: &LeaseConfig,
    ) -> anyhow::Result<LeaseKeeper> {
        let store = open_bucket(context, config.ttl).await?;
        let key = sharding.name().to_owned();
        let value = Bytes::from(serde_json::to_vec(&Holder {
            instance: &config.instance,
            shard: sharding.name(),
            shards: sharding.list(),
        })?);
        let (sender, state) = watch::channel(None);
        let renewing = tokio::spawn(keep(store.clone(), key.clone(), value, config.ttl, sender));
        Ok(LeaseKeeper {
            state,
            renewing,
            store,
            key,
        })
    }

    /// Whether this instance holds the shard now and may publish for it.
    pub fn is_active(&self) -> bool {
        self.state
            .borrow()
            .is_some_and(|held| Instant::now() < held.active_until)
    }

    /// The revision of the key while held: this instance's epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.state.borrow().map(|held| held.revision)
    }

    /// Waits until the lease's state changes (taken, renewed, lost).
    pub async fn changed(&mut self) {
        if self.state.changed().await.is_err() {
            // The renewing task ended (it never does on its own): wait forever.
            std::future::pending::<()>().await;
        }
    }

    /// Stops renewing and gives the shard up at once, so a standby does not
    /// wait out the TTL: for a clean shutdown.
    pub async fn release(self) {
        self.renewing.abort();
        let held = *self.state.borrow();
        if let Some(held) = held {
            match self
                .store
                .delete_expect_revision(&self.key, Some(held.revision))
                .await
            {
                Ok(()) => tracing::info!(shard = %self.key, "lease released"),
                Err(error) => {
                    tracing::warn!(shard = %self.key, %error, "lease not released; it ages out")
                }
            }
        }
    }
}

async fn open_bucket(context: &plumbing::Context, ttl: Duration) -> anyhow::Result<kv::Store> {
    let bucket = context.subjects.solver_lease_bucket();
    let config = kv::Config {
        bucket: bucket.clone(),
        description: "Which solver instance plans which shard (ADR 0004).".to_owned(),
        history: 1,
        max_age: ttl,
        storage: async_nats::jetstream::stream::StorageType::File,
        num_replicas: context.replication.replicas(),
        ..Default::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match context
            .jetstream
            .create_or_update_key_value(config.clone())
            .await
        {
            Ok(store) => return Ok(store),
            Err(error) if attempt < BUCKET_ATTEMPTS_MAX => {
                tracing::debug!(%error, attempt, "creating the lease bucket raced another instance");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(error) => {
                return Err(error).with_context(|| format!("creating lease bucket {bucket}"))
            }
        }
    }
}

/// Renews the lease while held, tries to take it while not, forever.
async fn keep(
    store: kv::Store,
    key: String,
    value: Bytes,
    ttl: Duration,
    sender: watch::Sender<Option<Held>>,
) {
    let mut ticks = tokio::time::interval(ttl / LEASE_RENEWALS_PER_TTL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let margin = ttl * LEASE_SAFETY_TENTHS / 10;
    let mut held: Option<Held> = None;
    loop {
        ticks.tick().await;
        // The server's clock for the key starts after this, so counting
        // from here errs on the safe side.
        let sent_at = Instant::now();
        let active_until = sent_at + ttl - margin;
        held = match held {
            Some(previous) => match store.update(&key, value.clone(), previous.revision).await {
                Ok(revision) => Some(Held {
                    revision,
                    active_until,
                }),
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    tracing::warn!(shard = %key, "lease lost: another instance holds the shard");
                    None
                }
                Err(error) => {
                    // Not known to be lost, not known to be held: stop
                    // acting now, and try again with the same revision.
                    tracing::warn!(shard = %key, %error, "lease not renewed; standing by");
                    Some(Held {
                        active_until: sent_at.min(previous.active_until),
                        ..previous
                    })
                }
            },
            None => match store.create(&key, value.clone()).await {
                Ok(revision) => {
                    tracing::info!(shard = %key, revision, "lease taken: this instance plans the shard");
                    Some(Held {
                        revision,
                        active_until,
                    })
                }
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => None,
                Err(error) => {
                    tracing::debug!(shard = %key, %error, "could not try for the lease");
                    None
                }
            },
        };
        sender.send_replace(held);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_lease_ttl_out_of_bounds_is_refused_naming_the_field() {
        for ttl_ms in [0, LEASE_TTL_MS_MIN - 1, LEASE_TTL_MS_MAX + 1] {
            let error = LeaseConfig::new("solver-1", ttl_ms).unwrap_err();
            assert_eq!(error.field, "lease_ttl_ms");
        }
        assert_eq!(LeaseConfig::new("", 5_000).unwrap_err().field, "instance");
        let config = LeaseConfig::new("solver-1", LEASE_TTL_MS_DEFAULT).unwrap();
        assert_eq!(config.ttl, Duration::from_millis(LEASE_TTL_MS_DEFAULT));
    }
}
