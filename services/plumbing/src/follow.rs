//! Following a stream from a remembered position.
//!
//! A service that materialises a view (the solver's world, dispatch's
//! assignments) needs every message of a stream, in order, exactly once into
//! its state. It keeps the sequence it has applied in the same atomic store
//! batch as the state itself, and on start follows the stream from the next
//! sequence with an ordered consumer. There is no ack to lose and no
//! server-side consumer to clean up; a lost store starts again from 1, which
//! is the rebuild-by-replay JetStream as the log of record promises.

use anyhow::Context as _;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use bytes::Bytes;
use futures_util::StreamExt;

/// One message of a stream, with what a follower needs of it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub payload: Bytes,
    pub sequence: u64,
    /// The trace of the request that caused it, from its `traceparent` header.
    pub trace: Option<crate::trace::TraceParent>,
}

/// An ordered, gap-free reader of one stream from a position on.
pub struct Follower {
    stream: String,
    messages: Ordered,
    /// Messages of the stream after the last one read, when reported.
    lag: Option<metrics::Gauge>,
}

impl Follower {
    /// Follows `stream` from the message after `applied` (0: from the start).
    pub async fn start(
        jetstream: &async_nats::jetstream::Context,
        stream: &str,
        applied: u64,
    ) -> anyhow::Result<Follower> {
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
        let messages = consumer
            .messages()
            .await
            .with_context(|| format!("following {stream}"))?;
        Ok(Follower {
            stream: stream.to_owned(),
            messages,
            lag: None,
        })
    }

    /// Reports how far behind the stream's end this follower is, as the
    /// gauge `switchboard_<service>_lag_messages{stream}`. The count comes
    /// with each message (the consumer's pending count), so it costs no request.
    pub fn report_lag(mut self, service: &'static str) -> Follower {
        let name = format!("switchboard_{service}_lag_messages");
        self.lag = Some(metrics::gauge!(name, "stream" => self.stream.clone()));
        self
    }

    /// The next message; `None` only when the consumer ends for good.
    /// An ordered consumer recreates itself across server restarts, so errors
    /// here are rare and transient: they are logged and reading continues.
    pub async fn next(&mut self) -> Option<Stored> {
        loop {
            match self.messages.next().await? {
                Ok(message) => {
                    let sequence = match message.info() {
                        Ok(info) => {
                            if let Some(lag) = &self.lag {
                                lag.set(info.pending as f64);
                            }
                            info.stream_sequence
                        }
                        Err(error) => {
                            tracing::warn!(stream = %self.stream, %error, "message without stream metadata skipped");
                            continue;
                        }
                    };
                    return Some(Stored {
                        subject: message.message.subject.to_string(),
                        payload: message.message.payload.clone(),
                        sequence,
                        trace: crate::trace::TraceParent::from_headers(
                            message.message.headers.as_ref(),
                        ),
                    });
                }
                Err(error) => {
                    tracing::warn!(stream = %self.stream, %error, "following the stream hit an error; continuing");
                }
            }
        }
    }
}
