//! Keeps the read model up to date: follows `SB_EVENTS`, `SB_MATCHES` and `SB_LEDGER`
//! from their first message, applying each to the model, and publishes the
//! positions applied so a handler can wait for its own write to show.
//!
//! The gateway keeps no store, so every start replays both streams; a day of
//! a movement's events is small enough to replay in seconds. If a stream
//! cannot be followed (NATS down at start), the follower retries, because
//! pages without a model are useless but the JSON operations still work.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use proto::events::{Event, MatchEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use plumbing::follow::Follower;
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
            () = follow_both(&context, &model, &sender) => {}
        }
    });
    receiver
}

async fn start_follower(context: &Context, stream: &str) -> Follower {
    loop {
        match Follower::start(&context.jetstream, stream, 0).await {
            Ok(follower) => return follower.report_lag("gateway"),
            Err(error) => {
                tracing::warn!(%stream, error = %format!("{error:#}"), "cannot follow yet; retrying");
                tokio::time::sleep(Duration::from_millis(FOLLOW_RETRY_MS)).await;
            }
        }
    }
}

async fn follow_both(
    context: &Context,
    model: &Arc<RwLock<ReadModel>>,
    sender: &watch::Sender<Applied>,
) {
    let subjects = &context.subjects;
    // Ready (for `/ready`) once the model holds what the streams held at start.
    let events_end =
        plumbing::streams::last_sequence(&context.jetstream, &subjects.events_stream())
            .await
            .unwrap_or(0);
    let matches_end =
        plumbing::streams::last_sequence(&context.jetstream, &subjects.matches_stream())
            .await
            .unwrap_or(0);
    let mut events = start_follower(context, &subjects.events_stream()).await;
    let mut matches = start_follower(context, &subjects.matches_stream()).await;
    let mut money = start_follower(context, &subjects.ledger_stream()).await;
    loop {
        if !context.health.is_caught_up() {
            let applied = *sender.borrow();
            if applied.events >= events_end && applied.matches >= matches_end {
                context.health.set_caught_up();
            }
        }
        // One message at a time, never holding the lock across an await.
        tokio::select! {
            Some(stored) = events.next() => {
                match Event::decode(subjects, &stored.subject, &stored.payload) {
                    Ok(event) => {
                        let now = context.clock.now();
                        let mut model = model.write().unwrap_or_else(PoisonError::into_inner);
                        model.apply_event(event, stored.sequence, now);
                    }
                    Err(error) => tracing::warn!(%error, sequence = stored.sequence, "unreadable event skipped"),
                }
                sender.send_modify(|applied| applied.events = stored.sequence);
            }
            Some(stored) = matches.next() => {
                match MatchEvent::decode(subjects, &stored.subject, &stored.payload) {
                    Ok(event) => {
                        let mut model = model.write().unwrap_or_else(PoisonError::into_inner);
                        model.apply_match(event, stored.sequence);
                    }
                    Err(error) => tracing::warn!(%error, sequence = stored.sequence, "unreadable match event skipped"),
                }
                sender.send_modify(|applied| applied.matches = stored.sequence);
            }
            Some(stored) = money.next() => {
                match serde_json::from_slice::<proto::money::LedgerEntry>(&stored.payload) {
                    Ok(entry) => {
                        let mut model = model.write().unwrap_or_else(PoisonError::into_inner);
                        model.apply_ledger(&entry, stored.sequence);
                    }
                    Err(error) => tracing::warn!(%error, sequence = stored.sequence, "unreadable ledger entry skipped"),
                }
                sender.send_modify(|applied| applied.ledger = stored.sequence);
            }
            else => return,
        }
    }
}
