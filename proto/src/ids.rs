//! Identifiers: the one syntax every id on the wire follows, so that an id can
//! stand as a token of a NATS subject (`sb.to.volunteer.<id>`) without escaping.

use std::fmt;

use crate::validate::Invalid;

/// Longest identifier accepted, in bytes (ASCII, so also in characters).
pub const ID_BYTES_MAX: usize = 64;

/// True when `text` matches `[A-Za-z0-9_-]{1,64}`.
pub fn is_valid_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= ID_BYTES_MAX
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// A validated identifier of a volunteer, need, task, collective or pledge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

impl Id {
    /// Checks `text` against the id syntax; `field` names it in the error.
    pub fn parse(text: &str, field: &str) -> Result<Id, Invalid> {
        if is_valid_id(text) {
            Ok(Id(text.to_owned()))
        } else {
            Err(Invalid::new(
                field,
                format!(
                    "must match [A-Za-z0-9_-]{{1,{ID_BYTES_MAX}}}, got {:?}",
                    truncate(text)
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Keeps hostile input out of error messages and logs beyond a short prefix.
pub(crate) fn truncate(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 80;
    if text.chars().count() <= SHOWN_CHARS_MAX {
        text.to_owned()
    } else {
        let mut shown: String = text.chars().take(SHOWN_CHARS_MAX).collect();
        shown.push('…');
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_can_stand_in_a_subject_are_accepted() {
        for good in ["v1", "tenant-clinic_2", "A", &"x".repeat(ID_BYTES_MAX)] {
            assert!(is_valid_id(good), "{good}");
        }
    }

    #[test]
    fn ids_that_would_break_a_subject_are_refused() {
        for bad in [
            "",
            "a.b",
            "a b",
            "a*",
            "a>",
            "é",
            &"x".repeat(ID_BYTES_MAX + 1),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
            assert_eq!(Id::parse(bad, "id").unwrap_err().field, "id");
        }
    }
}
