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

/// Fields of a body that may hold a person's name or how to reach them:
/// a dead letter keeps none of them (coordinators read dead letters, and
/// `SB_DLQ` keeps them for days).
pub const PERSONAL_FIELDS: [&str; 5] = ["name", "contact", "donor", "email", "phone"];

/// What a dead letter keeps of a refused body: JSON with every
/// [`PERSONAL_FIELDS`] value, at any depth, replaced by `"(redacted)"`,
/// cut to [`DEAD_LETTER_BODY_BYTES_MAX`]; of anything else only its length,
/// since nothing in it can be told apart from a name.
pub fn redacted_body(body: &[u8]) -> String {
    fn redact(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(fields) => {
                for (key, field) in fields.iter_mut() {
                    if PERSONAL_FIELDS.contains(&key.as_str()) && !field.is_null() {
                        *field = serde_json::Value::String("(redacted)".to_owned());
                    } else {
                        redact(field);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return format!("(not JSON, {} bytes, not kept)", body.len());
    };
    redact(&mut value);
    let mut text = value.to_string();
    if text.len() > DEAD_LETTER_BODY_BYTES_MAX {
        let mut cut = DEAD_LETTER_BODY_BYTES_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// Copies a refused input with its error to `sb.dlq.in`, without the
/// personal fields of its body ([`redacted_body`]).
pub async fn dead_letter(context: &crate::Context, subject: &str, body: &[u8], error: &ErrorBody) {
    let letter = DeadLetter {
        subject: subject.to_owned(),
        error: error.clone(),
        body: redacted_body(body),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_no_name_or_contact() {
        let cases: [(&str, &str); 4] = [
            (
                r#"{"id":"v1","name":"Ana Ruiz","contact":"ana@example.org","skills":{"legal":3}}"#,
                r#"{"contact":"(redacted)","id":"v1","name":"(redacted)","skills":{"legal":3}}"#,
            ),
            (
                r#"{"id":"p1","donor":"Bo Chen","amount_cents":500,"nested":[{"email":"x@y.z"}]}"#,
                r#"{"amount_cents":500,"donor":"(redacted)","id":"p1","nested":[{"email":"(redacted)"}]}"#,
            ),
            (
                r#"{"id":"v2","contact":null}"#,
                r#"{"contact":null,"id":"v2"}"#,
            ),
            ("Ana Ruiz ana@example.org", "(not JSON, 24 bytes, not kept)"),
        ];
        for (body, expected) in cases {
            let kept = redacted_body(body.as_bytes());
            match serde_json::from_str::<serde_json::Value>(expected) {
                Ok(expected) => {
                    assert_eq!(
                        serde_json::from_str::<serde_json::Value>(&kept).unwrap(),
                        expected
                    )
                }
                Err(_) => assert_eq!(kept, expected, "{body}"),
            }
        }
    }

    #[test]
    fn a_long_body_is_cut_on_a_character_boundary() {
        let body = serde_json::json!({"notes": "é".repeat(DEAD_LETTER_BODY_BYTES_MAX)}).to_string();
        let kept = redacted_body(body.as_bytes());
        assert!(
            kept.len() <= DEAD_LETTER_BODY_BYTES_MAX && kept.len() > DEAD_LETTER_BODY_BYTES_MAX - 4
        );
    }
}
