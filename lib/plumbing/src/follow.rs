//! Following a stream from a remembered position.
//!
//! A service that materialises a view (the solver's world, dispatch's
//! assignments) needs every message of a stream, in order, exactly once into
//! its state. It keeps the sequence it has applied in the same atomic store
//! batch as the state itself, and on start follows the stream from the next
//! sequence with an ordered consumer. There is no ack to lose and no
//! server-side consumer to clean up; a lost store starts again from 1, which
//! is the rebuild-by-replay JetStream as the log of record promises.
//!
//! In a cluster, an ordered consumer lives on one node; when that node dies
//! the client's consumer can wait forever without an error (seen in
//! `tests/cluster/run`). So a follower that has heard nothing for
//! [`FOLLOW_STALL_CHECK_MS`] asks the stream where it ends, and if it ends
//! beyond what was read, starts a new consumer right after that. The check
//! runs as a task of its own: callers poll [`Follower::next`] inside
//! `select!` and drop it whenever another branch is ready, and under steady
//! load on another stream a check that lived in `next` was dropped before
//! its round trip came back, every time, so a stalled follower stayed
//! stalled (a solver taking over its lease read nothing more of
//! `SB_MATCHES` and proposed nothing).

use anyhow::Context as _;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

/// Silence after which a follower checks whether the stream moved on
/// without it.
pub const FOLLOW_STALL_CHECK_MS: u64 = 2_000;

/// One message of a stream, with what a follower needs of it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub payload: Bytes,
    pub sequence: u64,
    /// The trace of the request that caused it, from its `traceparent` header.
    pub trace: Option<crate::trace::TraceParent>,
    /// The `Nats-Msg-Id` it was written with, if any: a writer tells its own
    /// writes from others' by it.
    pub message_id: Option<String>,
    /// Who caused it, from `proto::wire::ACTOR_HEADER` (events ingest wrote).
    pub actor: Option<String>,
    /// When the server stored it (its clock): how long a message waited
    /// before a service acted on it is measured from here.
    pub stored_at: std::time::SystemTime,
    /// Messages of the stream after this one when the server sent it: 0
    /// means it was the last, so a reader need not wait for more.
    pub pending: u64,
}

/// An ordered, gap-free reader of one stream from a position on.
pub struct Follower {
    jetstream: async_nats::jetstream::Context,
    stream: String,
    messages: Ordered,
    /// The sequence of the last message returned.
    position: u64,
    /// When a message last arrived (or the stream was last checked); kept
    /// here, not in `next`, because callers drop `next` inside `select!`.
    heard_at: Instant,
    /// The stall check under way, if any: a task, so it survives the
    /// caller dropping `next`.
    checking: Option<tokio::task::JoinHandle<Checked>>,
    /// Messages of the stream after the last one read, when reported...
    lag: Option<metrics::Gauge>,
    /// ...and the sequence of the last one read.
    read: Option<metrics::Gauge>,
}

impl Follower {
    /// Follows `stream` from the message after `applied` (0: from the start).
    pub async fn start(
        jetstream: &async_nats::jetstream::Context,
        stream: &str,
        applied: u64,
    ) -> anyhow::Result<Follower> {
        let messages = Self::consume(jetstream, stream, applied).await?;
        Ok(Follower {
            jetstream: jetstream.clone(),
            stream: stream.to_owned(),
            messages,
            position: applied,
            heard_at: Instant::now(),
            checking: None,
            lag: None,
            read: None,
        })
    }

    /// Reports how far behind the stream's end this follower is, as the
    /// gauge `switchboard_<service>_lag_messages{stream}`. The count comes
    /// with each message (the consumer's pending count), so it costs no
    /// request; it is as old as the last message read, so a follower that
    /// stopped reading shows the lag it had then. The sequence of that
    /// message is `switchboard_<service>_position{stream}`: compared with
    /// the stream's last sequence it tells how far behind it is now.
    pub fn report_lag(mut self, service: &'static str) -> Follower {
        let lag = format!("switchboard_{service}_lag_messages");
        self.lag = Some(metrics::gauge!(lag, "stream" => self.stream.clone()));
        let read = format!("switchboard_{service}_position");
        let gauge = metrics::gauge!(read, "stream" => self.stream.clone());
        gauge.set(self.position as f64);
        self.read = Some(gauge);
        self
    }

    async fn consume(
        jetstream: &async_nats::jetstream::Context,
        stream: &str,
        applied: u64,
    ) -> anyhow::Result<Ordered> {
        let handle = jetstream
            .get_stream(stream)
            .await
            .with_context(|| format!("looking up stream {stream}"))?;
        let deliver_policy = if applied == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: applied + 1,
            }
        };
        let consumer = handle
            .create_consumer(OrderedConfig {
                deliver_policy,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating an ordered consumer on {stream}"))?;
        consumer
            .messages()
            .await
            .with_context(|| format!("following {stream}"))
    }

    /// After a silence, whether the stream ends beyond `position`; if so, a
    /// new consumer right after it. Errors mean the cluster is still
    /// electing: the next silence checks again.
    async fn check(
        jetstream: async_nats::jetstream::Context,
        stream: String,
        position: u64,
    ) -> Checked {
        let last = match crate::streams::last_sequence(&jetstream, &stream).await {
            Ok(last) => last,
            Err(error) => return Checked::Unknown(format!("{error:#}")),
        };
        if last <= position {
            return Checked::Current;
        }
        match Self::consume(&jetstream, &stream, position).await {
            Ok(messages) => Checked::Restarted {
                messages: Box::new(messages),
                from: position,
                to: last,
            },
            Err(error) => Checked::CannotRestart(format!("{error:#}")),
        }
    }

    /// Takes the outcome of a finished stall check.
    fn checked(&mut self, outcome: Result<Checked, tokio::task::JoinError>) {
        self.heard_at = Instant::now();
        match outcome {
            Ok(Checked::Current) => {}
            Ok(Checked::Unknown(error)) => {
                tracing::debug!(stream = %self.stream, %error, "cannot tell whether the follower stalled");
            }
            Ok(Checked::Restarted { messages, from, to }) => {
                tracing::warn!(stream = %self.stream, from, to, "following stalled; started again after the last message read");
                // Anything it repeats of what was read since is skipped.
                self.messages = *messages;
            }
            Ok(Checked::CannotRestart(error)) => {
                tracing::warn!(stream = %self.stream, %error, "following stalled and cannot start again yet");
            }
            Err(error) => {
                tracing::warn!(stream = %self.stream, %error, "the stall check ended without an answer");
            }
        }
    }

    /// The sequence of the last message returned (or the one it started after).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next message; `None` only when the consumer ends for good.
    /// An ordered consumer recreates itself across server restarts, so errors
    /// here are rare and transient: they are logged and reading continues.
    pub async fn next(&mut self) -> Option<Stored> {
        loop {
            let check_at = self.heard_at + std::time::Duration::from_millis(FOLLOW_STALL_CHECK_MS);
            let next = tokio::select! {
                next = self.messages.next() => next?,
                outcome = finished(&mut self.checking) => {
                    self.checking = None;
                    self.checked(outcome);
                    continue;
                }
                () = tokio::time::sleep_until(check_at), if self.checking.is_none() => {
                    self.checking = Some(tokio::spawn(Self::check(
                        self.jetstream.clone(),
                        self.stream.clone(),
                        self.position,
                    )));
                    continue;
                }
            };
            self.heard_at = Instant::now();
            match next {
                Ok(message) => {
                    let (sequence, stored_at, pending) = match message.info() {
                        Ok(info) => {
                            if let Some(lag) = &self.lag {
                                lag.set(info.pending as f64);
                            }
                            let stored_at = std::time::SystemTime::from(info.published);
                            (info.stream_sequence, stored_at, info.pending)
                        }
                        Err(error) => {
                            tracing::warn!(stream = %self.stream, %error, "message without stream metadata skipped");
                            continue;
                        }
                    };
                    // A consumer started again may repeat what was read.
                    if sequence <= self.position {
                        continue;
                    }
                    self.position = sequence;
                    if let Some(read) = &self.read {
                        read.set(sequence as f64);
                    }
                    return Some(Stored {
                        subject: message.message.subject.to_string(),
                        payload: message.message.payload.clone(),
                        sequence,
                        trace: crate::trace::TraceParent::from_headers(
                            message.message.headers.as_ref(),
                        ),
                        message_id: message
                            .message
                            .headers
                            .as_ref()
                            .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
                            .map(|value| value.as_str().to_owned()),
                        actor: message
                            .message
                            .headers
                            .as_ref()
                            .and_then(|headers| headers.get(proto::wire::ACTOR_HEADER))
                            .map(|value| value.as_str().to_owned()),
                        stored_at,
                        pending,
                    });
                }
                Err(error) => {
                    tracing::warn!(stream = %self.stream, %error, "following the stream hit an error; continuing");
                }
            }
        }
    }
}

/// What a stall check found.
enum Checked {
    /// The stream ends where the follower is: nothing was missed.
    Current,
    /// The stream's end could not be read (a leader election).
    Unknown(String),
    /// It ends beyond: a consumer from the last message read.
    Restarted {
        messages: Box<Ordered>,
        from: u64,
        to: u64,
    },
    /// It ends beyond, and no consumer could be made yet.
    CannotRestart(String),
}

/// The outcome of the check under way; never, when there is none.
async fn finished(
    checking: &mut Option<tokio::task::JoinHandle<Checked>>,
) -> Result<Checked, tokio::task::JoinError> {
    match checking {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// The logs a service follows, by what they hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Log {
    /// `SB_EVENTS`: every accepted input.
    Events,
    /// `SB_MATCHES`: proposals and what became of them.
    Matches,
    /// `SB_LEDGER`: the money's double-entry journal.
    Ledger,
}

impl Log {
    /// The stream that holds this log.
    pub fn stream(self, subjects: &proto::subjects::Subjects) -> String {
        match self {
            Log::Events => subjects.events_stream(),
            Log::Matches => subjects.matches_stream(),
            Log::Ledger => subjects.ledger_stream(),
        }
    }
}

/// Every log one service follows, read as one: the catch-up every service
/// does at start, then the messages of all of them as they come.
///
/// A service materialises its state from the logs and must know its whole
/// past before it acts (publishes, answers, plans), or a restarted service
/// would repeat what it did before it stopped. [`Logs::catch_up`] applies,
/// log after log in the order given, everything each log held when it
/// started; [`Logs::next`] then yields the next message of whichever log
/// has one.
pub struct Logs {
    events: Option<Follower>,
    matches: Option<Follower>,
    ledger: Option<Follower>,
}

/// The next message of `follower`, or `None` at once when there is none to
/// follow (so `select!` disables that branch).
async fn next_of(follower: &mut Option<Follower>) -> Option<Stored> {
    match follower {
        Some(follower) => follower.next().await,
        None => None,
    }
}

impl Logs {
    /// Follows each of `logs` from the position given beside it (the
    /// sequence the service's store has applied; 0: from the start), after
    /// applying through `apply`, in the order given, every message each log
    /// held at the start. A skipped message is logged and passed; any other
    /// fault stops the catch-up (applying a logged message needs nothing
    /// outside the service, so a retry is impossible here).
    pub async fn catch_up(
        context: &crate::Context,
        service: &'static str,
        logs: &[(Log, u64)],
        mut apply: impl FnMut(Log, &Stored) -> Result<(), crate::fault::Fault>,
    ) -> anyhow::Result<Logs> {
        let policy = crate::fault::Policy::new(service);
        let mut followed = Logs {
            events: None,
            matches: None,
            ledger: None,
        };
        for &(log, applied) in logs {
            let stream = log.stream(&context.subjects);
            let last = crate::streams::last_sequence(&context.jetstream, &stream).await?;
            let mut follower = Follower::start(&context.jetstream, &stream, applied)
                .await?
                .report_lag(service);
            while follower.position() < last {
                let Some(stored) = follower.next().await else {
                    break;
                };
                // Applying a logged message needs nothing outside the
                // service: one that asks to be retried cannot be, here.
                let outcome = match apply(log, &stored) {
                    Err(crate::fault::Fault::Retry(error)) => {
                        Err(crate::fault::Fault::Fatal(error))
                    }
                    outcome => outcome,
                };
                policy.judge("catching up", outcome)?;
            }
            tracing::info!(
                service,
                stream,
                from = applied,
                to = follower.position(),
                "caught up"
            );
            *followed.slot(log) = Some(follower);
        }
        Ok(followed)
    }

    fn slot(&mut self, log: Log) -> &mut Option<Follower> {
        match log {
            Log::Events => &mut self.events,
            Log::Matches => &mut self.matches,
            Log::Ledger => &mut self.ledger,
        }
    }

    /// The next message of any followed log; `None` only when every
    /// follower has ended for good. Cancel-safe: a message is never lost
    /// when another branch of the caller's `select!` wins.
    pub async fn next(&mut self) -> Option<(Log, Stored)> {
        tokio::select! {
            Some(stored) = next_of(&mut self.events) => Some((Log::Events, stored)),
            Some(stored) = next_of(&mut self.matches) => Some((Log::Matches, stored)),
            Some(stored) = next_of(&mut self.ledger) => Some((Log::Ledger, stored)),
            else => None,
        }
    }

    /// The sequence of the last message read from `log` (0 when not followed).
    pub fn position(&self, log: Log) -> u64 {
        let follower = match log {
            Log::Events => &self.events,
            Log::Matches => &self.matches,
            Log::Ledger => &self.ledger,
        };
        follower.as_ref().map_or(0, Follower::position)
    }

    /// Reads `log` up to where its stream ends now, each message through
    /// `apply`, waiting at most `wait` for each; `false` when the stream
    /// could not be read to its end in time. A skipped message is logged
    /// and passed; any other fault is the caller's.
    pub async fn read_to_end(
        &mut self,
        context: &crate::Context,
        log: Log,
        wait: std::time::Duration,
        mut apply: impl FnMut(&Stored) -> Result<(), crate::fault::Fault>,
    ) -> Result<bool, crate::fault::Fault> {
        use crate::fault::Classify as _;
        let stream = log.stream(&context.subjects);
        let last = crate::streams::last_sequence(&context.jetstream, &stream)
            .await
            .or_retry()?;
        let Some(follower) = self.slot(log).as_mut() else {
            return Ok(false);
        };
        while follower.position() < last {
            let Ok(Some(stored)) = tokio::time::timeout(wait, follower.next()).await else {
                return Ok(false);
            };
            match apply(&stored) {
                Err(crate::fault::Fault::Skip(reason)) => {
                    tracing::warn!(stream, sequence = stored.sequence, %reason, "skipped")
                }
                outcome => outcome?,
            }
        }
        Ok(true)
    }
}
