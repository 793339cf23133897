//! Writing to a stream: wait for the ack, retry a bounded number of times
//! with the same message id (so a retry is never a second message), and
//! optionally make the write conditional on the subject's last sequence.
//! A write made while handling a traced message carries its `traceparent`
//! ([`crate::trace`]).

use anyhow::Context as _;
use async_nats::jetstream::context::PublishErrorKind;
use bytes::Bytes;
use futures_util::StreamExt as _;

/// Attempts at one write before the caller is told it failed.
pub const PUBLISH_ATTEMPTS_MAX: u32 = 3;
/// Writes of [`durably_all`] awaiting their acks at once. async-nats holds
/// one of a context's 5,000 ack permits per unawaited ack and makes the
/// next publish wait for a permit: sending more than that before awaiting
/// any would wait forever (a whole-world run at 100,000 tasks did).
pub const WRITES_IN_FLIGHT_MAX: usize = 1_024;

/// The header that makes `Nats-Expected-Last-Subject-Sequence` apply to
/// every subject matching a filter (nats-server 2.11); async-nats 0.51 has
/// no constant for it.
pub const EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: &str =
    "Nats-Expected-Last-Subject-Sequence-Subject";

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another write to the subject came first (`expected_last` did not hold).
    #[error("another write to {subject} came first")]
    Conflict { subject: String },
    /// The stream did not acknowledge in time; writing again is safe.
    #[error("writing to {subject} failed: {reason}")]
    Unavailable { subject: String, reason: String },
}

/// Publishes `payload` to `subject` and returns its stream sequence (the
/// original's when JetStream recognises `message_id` as a duplicate).
/// `expected_last`: the write happens only if the subject's last sequence is
/// this (0: no message on the subject yet).
pub async fn durably(
    context: &crate::Context,
    subject: &str,
    message_id: &str,
    expected_last: Option<u64>,
    payload: Bytes,
) -> Result<u64, PublishError> {
    let expect = expected_last.map(Expect::LastOnSubject);
    durably_expecting(context, subject, message_id, expect, payload).await
}

/// What must hold in the stream for a conditional write to happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The last sequence of the message's own subject (0: none yet).
    LastOnSubject(u64),
    /// The last sequence of the whole stream: the writer has read every
    /// message before it, whoever wrote them (the solver's fencing, ADR 0004).
    LastInStream(u64),
}

/// [`durably`], conditional on `expect` when given. nats-server checks the
/// condition before the message id: a retry whose first attempt did land
/// (its ack was lost) is a `Conflict`, and the caller, reading the stream,
/// finds its own message there. Either way nothing is written twice.
pub async fn durably_expecting(
    context: &crate::Context,
    subject: &str,
    message_id: &str,
    expect: Option<Expect>,
    payload: Bytes,
) -> Result<u64, PublishError> {
    durably_with_headers(context, subject, message_id, expect, payload, None).await
}

/// [`durably_expecting`] with headers of the caller's beside the ones it sets.
pub async fn durably_with_headers(
    context: &crate::Context,
    subject: &str,
    message_id: &str,
    expect: Option<Expect>,
    payload: Bytes,
    extra: Option<&async_nats::HeaderMap>,
) -> Result<u64, PublishError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut headers = extra.cloned().unwrap_or_default();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, message_id);
        // Inside a handler's trace scope, the write carries the request's trace on.
        if let Some(trace) = crate::trace::current() {
            trace.insert_into(&mut headers);
        }
        match expect {
            Some(Expect::LastOnSubject(expected)) => headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                expected.to_string().as_str(),
            ),
            Some(Expect::LastInStream(expected)) => headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
                expected.to_string().as_str(),
            ),
            None => {}
        }
        let outcome = async {
            context
                .jetstream
                .publish_with_headers(subject.to_owned(), headers, payload.clone())
                .await?
                .await
        }
        .await;
        match outcome {
            Ok(ack) => return Ok(ack.sequence),
            Err(error)
                if matches!(
                    error.kind(),
                    PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId
                ) =>
            {
                return Err(PublishError::Conflict {
                    subject: subject.to_owned(),
                });
            }
            Err(error) if attempt < PUBLISH_ATTEMPTS_MAX => {
                tracing::warn!(%error, attempt, subject, "publish failed; retrying with the same message id");
            }
            Err(error) => {
                return Err(PublishError::Unavailable {
                    subject: subject.to_owned(),
                    reason: error.to_string(),
                });
            }
        }
    }
}

/// [`durably`], conditional on the last sequence of every subject matching
/// `filter` (a wildcard) being `expected`: the writer has read every
/// message on those subjects, whoever wrote them (nats-server 2.11's
/// `Nats-Expected-Last-Subject-Sequence-Subject`). A `Conflict` otherwise.
pub async fn durably_expecting_on(
    context: &crate::Context,
    subject: &str,
    message_id: &str,
    filter: &str,
    expected: u64,
    payload: Bytes,
    extra: Option<&async_nats::HeaderMap>,
) -> Result<u64, PublishError> {
    let mut headers = extra.cloned().unwrap_or_default();
    headers.insert(
        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        expected.to_string().as_str(),
    );
    headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT, filter);
    durably_with_headers(context, subject, message_id, None, payload, Some(&headers)).await
}

/// [`durably`] for callers in `anyhow` glue.
pub async fn durably_or_error(
    context: &crate::Context,
    subject: &str,
    message_id: &str,
    payload: Bytes,
) -> anyhow::Result<u64> {
    durably(context, subject, message_id, None, payload)
        .await
        .with_context(|| format!("publishing to {subject}"))
}

/// One write of [`durably_all`].
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub subject: String,
    pub message_id: String,
    pub payload: Bytes,
    /// The trace it carries; `None`: the current one ([`crate::trace::current`]).
    pub trace: Option<crate::trace::TraceParent>,
}

/// Several unconditional writes: all sent before any ack is awaited, so
/// the stream keeps their order and their fsyncs overlap instead of each
/// waiting a round trip for the one before. The acks are awaited together,
/// so while the server is away the caller waits one ack timeout, not one
/// per message. At most [`WRITES_IN_FLIGHT_MAX`] wait at once: beyond that
/// the oldest ack is awaited before the next write goes out. A write whose
/// ack did not come is retried alone, with the same message id, as
/// [`durably`] does; the first that still fails ends the call with its
/// error (later ones are not retried: the caller plans again from what the
/// stream holds). Returns their sequences.
pub async fn durably_all(
    context: &crate::Context,
    messages: &[Outgoing],
) -> Result<Vec<u64>, PublishError> {
    write_all(context, messages, None).await
}

/// [`durably_all`], each write conditional on the whole stream: the first
/// only if the stream's last sequence is `after` (the writer has read
/// everything before it, whoever wrote it), each next one only if the last
/// message in the stream is the one before it (by message id). Still sent
/// together: the server applies them in order, so all go in when nobody
/// else writes meanwhile, and from the first write of anyone else's (or
/// the first refused) on, every one is refused: what goes in is always a
/// first part of them. `Conflict` then (the caller reads the stream, where
/// it finds that part, before writing again).
pub async fn durably_chained(
    context: &crate::Context,
    messages: &[Outgoing],
    after: u64,
) -> Result<Vec<u64>, PublishError> {
    write_all(context, messages, Some(after)).await
}

/// What became of one write of [`write_all`] before any retry.
enum Acked {
    Written(u64),
    /// Its condition did not hold.
    Refused,
    /// No ack came: it may or may not be in the stream.
    Unknown,
}

async fn write_all(
    context: &crate::Context,
    messages: &[Outgoing],
    after: Option<u64>,
) -> Result<Vec<u64>, PublishError> {
    let current = crate::trace::current();
    // The condition of each write: the stream's end for the first, the
    // write before it for the others.
    let condition = |index: usize| -> Option<async_nats::HeaderMap> {
        let after = after?;
        let mut headers = async_nats::HeaderMap::new();
        match index.checked_sub(1) {
            None => headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
                after.to_string().as_str(),
            ),
            Some(before) => headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_MESSAGE_ID,
                messages[before].message_id.as_str(),
            ),
        }
        Some(headers)
    };
    let mut acks = Vec::with_capacity(messages.len());
    let mut waiting = futures_util::stream::FuturesOrdered::new();
    for (index, message) in messages.iter().enumerate() {
        if waiting.len() >= WRITES_IN_FLIGHT_MAX {
            acks.push(waiting.next().await.unwrap_or(Acked::Unknown));
        }
        let mut headers = condition(index).unwrap_or_default();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            message.message_id.as_str(),
        );
        if let Some(trace) = message.trace.or(current) {
            trace.insert_into(&mut headers);
        }
        let ack = context
            .jetstream
            .publish_with_headers(message.subject.clone(), headers, message.payload.clone())
            .await;
        waiting.push_back(async move {
            let Ok(ack) = ack else {
                return Acked::Unknown;
            };
            match ack.await {
                Ok(ack) => Acked::Written(ack.sequence),
                Err(error)
                    if matches!(
                        error.kind(),
                        PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId
                    ) =>
                {
                    Acked::Refused
                }
                Err(_) => Acked::Unknown,
            }
        });
    }
    while let Some(acked) = waiting.next().await {
        acks.push(acked);
    }
    let mut sequences = Vec::with_capacity(messages.len());
    for (index, (acked, message)) in acks.into_iter().zip(messages).enumerate() {
        let sequence = match acked {
            Acked::Written(sequence) => sequence,
            Acked::Refused => {
                return Err(PublishError::Conflict {
                    subject: message.subject.clone(),
                })
            }
            Acked::Unknown => {
                let condition = condition(index);
                let retry = durably_with_headers(
                    context,
                    &message.subject,
                    &message.message_id,
                    None,
                    message.payload.clone(),
                    condition.as_ref(),
                );
                match message.trace.or(current) {
                    Some(trace) => crate::trace::scope(trace, retry).await?,
                    None => retry.await?,
                }
            }
        };
        sequences.push(sequence);
    }
    Ok(sequences)
}
