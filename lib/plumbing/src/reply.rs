//! Replying to a request with the contract's body, and copying refusals to
//! the dead-letter subject, the same way in every service.

use async_nats::service::Request;
use bytes::Bytes;
use proto::subjects::Subjects;
use proto::wire::{DeadLetter, ErrorBody, ErrorCode, Reply};

/// How much of a refused body the dead letter keeps.
pub const DEAD_LETTER_BODY_BYTES_MAX: usize = 4 * 1024;

fn status(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Invalid => "400",
        ErrorCode::Unauthorized => "403",
        ErrorCode::NotFound => "404",
        ErrorCode::Conflict => "409",
        ErrorCode::TooLarge => "413",
        ErrorCode::Unavailable => "503",
    }
}

/// The refusal's code as a metric label (`invalid`, `conflict`, ...).
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Invalid => "invalid",
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::NotFound => "not_found",
        ErrorCode::Conflict => "conflict",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::Unavailable => "unavailable",
    }
}

/// Sends `reply`. A refusal also sets the micro protocol's error headers so
/// `$SRV.STATS` and generic clients see it, and is copied to the dead letters.
pub async fn respond(context: &crate::Context, request: &Request, reply: &Reply) {
    if !has_safe_reply_subject(context, request) {
        return;
    }
    let body = Bytes::from(serde_json::to_vec(reply).unwrap_or_default());
    let mut headers = async_nats::HeaderMap::new();
    if let Some(error) = &reply.error {
        headers.insert("Nats-Service-Error", error.message.as_str());
        headers.insert("Nats-Service-Error-Code", status(error.code));
        dead_letter(
            context,
            &request.message.subject,
            &request.message.payload,
            error,
        )
        .await;
    }
    if let Err(error) = request.respond_with_headers(Ok(body), headers).await {
        tracing::debug!(%error, "the requester left before the reply");
    }
}

/// Whether a request's reply subject is one a service may publish to. The
/// requester names it, so a hostile one could aim a service's reply into the
/// switchboard's own subjects (and so into its streams) or at the server's
/// API: such a request is not handled at all.
pub fn has_safe_reply_subject(context: &crate::Context, request: &Request) -> bool {
    let Some(reply) = request.message.reply.as_deref() else {
        return false;
    };
    let own = reply
        .strip_prefix(context.subjects.prefix())
        .is_some_and(|rest| rest.starts_with('.'));
    let safe = !own && !reply.starts_with('$');
    if !safe {
        tracing::warn!(subject = %request.message.subject, "a request asked for its reply on a reserved subject; ignored");
    }
    safe
}

/// Copies a refused input with its error to `sb.dlq.in`.
pub async fn dead_letter(context: &crate::Context, subject: &str, body: &[u8], error: &ErrorBody) {
    let kept = &body[..body.len().min(DEAD_LETTER_BODY_BYTES_MAX)];
    let letter = DeadLetter {
        subject: subject.to_owned(),
        error: error.clone(),
        body: String::from_utf8_lossy(kept).into_owned(),
        at: context.clock.now(),
    };
    let payload = Bytes::from(serde_json::to_vec(&letter).unwrap_or_default());
    let subjects: &Subjects = &context.subjects;
    if let Err(error) = context
        .client
        .publish(subjects.dead_letter_input(), payload)
        .await
    {
        tracing::warn!(%error, "could not copy a refused input to the dead letters");
    }
}

/// The refusal for an input the service could not make durable.
pub fn unavailable(what: impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Unavailable,
        None,
        format!("could not record this now ({what}); sending it again is safe"),
    )
}
