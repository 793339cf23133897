//! What every fuzz target checks of the edge, besides not panicking: a
//! refusal is `invalid` (or `too_large`) and names the offending field, and
//! an accepted body re-encodes to JSON that decodes again.

use proto::wire::{ErrorBody, ErrorCode};
use proto::Invalid;

/// A decode refusal must tell the caller which field to fix.
pub fn assert_refusal_names_a_field(error: &ErrorBody) {
    match error.code {
        ErrorCode::TooLarge => assert!(error.field.is_none(), "{error:?}"),
        ErrorCode::Invalid => {
            let field = error.field.as_deref().unwrap_or_default();
            assert!(!field.is_empty(), "refusal without a field: {error:?}");
        }
        other => panic!("decoding answered {other:?}: {error:?}"),
    }
}

pub fn assert_invalid_names_a_field(invalid: &Invalid) {
    assert!(!invalid.field.is_empty(), "{invalid:?}");
    assert!(!invalid.reason.is_empty(), "{invalid:?}");
}

/// Decodes `body` as `T`, validates it with `validate`, and checks both
/// outcomes; an accepted body must survive a second trip through JSON.
pub fn check<T, V>(body: &[u8], validate: impl Fn(&T) -> Result<V, Invalid>)
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    match proto::validate::decode::<T>(body) {
        Ok(wire) => {
            if let Err(invalid) = validate(&wire) {
                assert_invalid_names_a_field(&invalid);
                return;
            }
            let again = serde_json::to_vec(&wire).expect("a decoded body encodes");
            let decoded: T = proto::validate::decode_unbounded(&again)
                .unwrap_or_else(|error| panic!("re-encoded body refused: {error:?}"));
            validate(&decoded).unwrap_or_else(|invalid| {
                panic!("valid once, invalid after a round trip: {invalid:?}")
            });
        }
        Err(error) => assert_refusal_names_a_field(&error),
    }
}

/// Splits a fuzz input into a subject (its first line, lossily UTF-8) and
/// the body after it; without a newline, the subject is picked from the
/// first byte so the fuzzer reaches every decoder from the start.
pub fn split_subject(input: &[u8]) -> (String, &[u8]) {
    const KNOWN: [&str; 13] = [
        "sb.ev.volunteer.v1",
        "sb.ev.need.n1",
        "sb.ev.pledge.p1",
        "sb.ev.withdrawn.task.t1",
        "sb.ev.completed.t1",
        "sb.ev.answered.v1.t1",
        "sb.match.proposed",
        "sb.match.accepted",
        "sb.match.declined",
        "sb.match.expired",
        "sb.match.checked_in",
        "sb.match.released",
        "sb.match.completed",
    ];
    match input.iter().position(|&byte| byte == b'\n') {
        Some(end) => (
            String::from_utf8_lossy(&input[..end]).into_owned(),
            &input[end + 1..],
        ),
        None => match input.split_first() {
            Some((&first, rest)) => (KNOWN[usize::from(first) % KNOWN.len()].to_owned(), rest),
            None => (String::new(), input),
        },
    }
}
