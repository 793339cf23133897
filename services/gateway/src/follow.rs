//! Keeps the read model up to date: follows `SB_EVENTS`, `SB_MATCHES` and `SB_LEDGER`
//! from their first message, applying each to the model, and publishes the
//! positions applied so a handler can wait for its own write to show.
//!
//! The gateway keeps no store, so every start replays the three logs; a day
//! of a movement's events is small enough to replay in seconds. If they
//! cannot be followed (NATS down at start), the catch-up starts again, because
//! pages without a model are useless but the JSON operations still work.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use proto::events::{Event, MatchEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use plumbing::fault::{Fault, Policy};
use plumbing::follow::{Log, Logs, Stored};
use plumbing::Context;

use crate::model::ReadModel;

/// Wait before trying again to follow a stream that could not be opened.
const FOLLOW_RETRY_MS: u64 = 500;

/// Stream positions the read model has applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub events: u64,
    pub matches: u64,
    pub ledger: u64,
}

impl Applied {
    /// One number that grows with every change, for "newer than" waits.
    pub fn version(self) -> u64 {
        self.events + self.matches + self.ledger
    }
}

/// Starts following; the receiver sees every position applied.
pub fn spawn(
    context: Context,
    model: Arc<RwLock<ReadModel>>,
    shutdown: CancellationToken,
) -> watch::Receiver<Applied> {
    let (sender, receiver) = watch::channel(Applied::default());
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = follow_all(&context, &model, &sender) => {}
        }
    });
    receiver
}

/// Applies one stored message of `log` to the model and publishes the
/// position applied. One message at a time, never holding the lock across
/// an await. A message this version cannot read is skipped.
fn apply(
    context: &Context,
    model: &Arc<RwLock<ReadModel>>,
    sender: &watch::Sender<Applied>,
    log: Log,
    stored: &Stored,
) -> Result<(), Fault> {
    let subjects = &context.subjects;
    let outcome = match log {
        Log::Events => Event::decode(subjects, &stored.subject, &stored.payload)
            .map(|event| {
                let now = context.clock.now();
                let mut model = model.write().unwrap_or_else(PoisonError::into_inner);
                let at = chrono::DateTime::<chrono::Utc>::from(stored.stored_at);
                model
                    .audit
                    .record(&event, stored.sequence, at, stored.actor.as_deref());
                model.apply_event(event, stored.sequence, now);
            })
            .map_err(|error| Fault::skip(format_args!("unreadable event: {error}"))),
        Log::Matches => MatchEvent::decode(subjects, &stored.subject, &stored.payload)
            .map(|event| {
                let mut model = model.write().unwrap_or_else(PoisonError::into_inner);
                model.apply_match(event, stored.sequence);
            })
            .map_err(|error| Fault::skip(format_args!("unreadable match event: {error}"))),
        Log::Ledger => serde_json::from_slice::<proto::money::LedgerEntry>(&stored.payload)
            .map(|entry| {
                let mut model = model.write().unwrap_or_else(PoisonError::into_inner);
                model.apply_ledger(&entry, stored.sequence);
            })
            .map_err(|error| Fault::skip(format_args!("unreadable ledger entry: {error}"))),
    };
    sender.send_modify(|applied| match log {
        Log::Events => applied.events = stored.sequence,
        Log::Matches => applied.matches = stored.sequence,
        Log::Ledger => applied.ledger = stored.sequence,
    });
    outcome
}

/// The model keeps no store: every start replays the logs from their first
/// message. Ready (for `/ready`) once it holds what they held at start.
async fn follow_all(
    context: &Context,
    model: &Arc<RwLock<ReadModel>>,
    sender: &watch::Sender<Applied>,
) {
    let logs = [(Log::Events, 0), (Log::Matches, 0), (Log::Ledger, 0)];
    let mut logs = loop {
        let caught_up = Logs::catch_up(context, "gateway", &logs, |log, stored| {
            apply(context, model, sender, log, stored)
        })
        .await;
        match caught_up {
            Ok(logs) => break logs,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot follow the logs yet; retrying");
                *model.write().unwrap_or_else(PoisonError::into_inner) = ReadModel::default();
                sender.send_replace(Applied::default());
                tokio::time::sleep(Duration::from_millis(FOLLOW_RETRY_MS)).await;
            }
        }
    };
    context.health.set_caught_up();
    let policy = Policy::new("gateway");
    while let Some((log, stored)) = logs.next().await {
        // Nothing the gateway reads can be fatal: it writes nothing.
        let _ = policy.judge("following", apply(context, model, sender, log, &stored));
    }
}
