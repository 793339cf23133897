//! The closed sets of events kept in the streams.
//!
//! `SB_EVENTS` holds every accepted input ([`Event`]); `SB_MATCHES` every
//! change of an assignment ([`MatchEvent`]). On the wire an event's body is
//! the plain wire message and its subject says which kind it is, so a client
//! in another language reads the streams with the types of `wire.md` alone.

use sha2::{Digest, Sha256};

use crate::subjects::{EventKind, MatchKind, Subjects};
use crate::validate::decode_unbounded;
use crate::wire::{
    ErrorBody, MatchChanged, MatchProposed, NeedPost, PledgeOffer, Steering, TaskCompletion,
    Vetting, VolunteerOffer, VolunteerReply, Withdrawal,
};

/// An accepted input, as logged in `SB_EVENTS` (names in the past tense).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    VolunteerOffered(VolunteerOffer),
    NeedPosted(NeedPost),
    PledgeOffered(PledgeOffer),
    Withdrawn(Withdrawal),
    TaskCompleted(TaskCompletion),
    AssignmentAnswered(VolunteerReply),
    Steered(Steering),
    Vetted(Vetting),
}

/// Why a stored message could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("subject {0:?} is not one of this switchboard's")]
    UnknownSubject(String),
    #[error("body does not parse: {}", .0.message)]
    Body(ErrorBody),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::VolunteerOffered(_) => EventKind::VolunteerOffered,
            Event::NeedPosted(_) => EventKind::NeedPosted,
            Event::PledgeOffered(_) => EventKind::PledgeOffered,
            Event::Withdrawn(_) => EventKind::Withdrawn,
            Event::TaskCompleted(_) => EventKind::TaskCompleted,
            Event::AssignmentAnswered(_) => EventKind::AssignmentAnswered,
            Event::Steered(_) => EventKind::Steered,
            Event::Vetted(_) => EventKind::Vetted,
        }
    }

    /// The id this event is about, which the request's reply echoes.
    pub fn id(&self) -> &str {
        match self {
            Event::VolunteerOffered(offer) => &offer.id,
            Event::NeedPosted(need) => &need.id,
            Event::PledgeOffered(pledge) => &pledge.id,
            Event::Withdrawn(withdrawal) => &withdrawal.id,
            Event::TaskCompleted(completion) => &completion.task,
            Event::AssignmentAnswered(reply) => &reply.task,
            Event::Steered(Steering::Veto { task, .. } | Steering::Pin { task, .. }) => task,
            Event::Steered(Steering::Weight {
                collective, tag, ..
            }) => collective.as_deref().or(tag.as_deref()).unwrap_or_default(),
            Event::Vetted(vetting) => &vetting.volunteer,
        }
    }

    /// The subject it is logged under: `sb.ev.<kind>.<key…>`.
    pub fn subject(&self, subjects: &Subjects) -> String {
        match self {
            Event::Withdrawn(withdrawal) => {
                subjects.event(self.kind(), &[withdrawal.kind.token(), &withdrawal.id])
            }
            Event::AssignmentAnswered(reply) => {
                subjects.event(self.kind(), &[&reply.volunteer, &reply.task])
            }
            Event::Steered(Steering::Veto { volunteer, task }) => {
                subjects.event(self.kind(), &["veto", volunteer, task])
            }
            Event::Steered(Steering::Pin { volunteer, task }) => {
                subjects.event(self.kind(), &["pin", volunteer, task])
            }
            // One subject per (collective, tag): its last event is the weight in force.
            Event::Steered(Steering::Weight {
                collective, tag, ..
            }) => subjects.event(
                self.kind(),
                &[
                    "weight",
                    collective.as_deref().unwrap_or("any"),
                    tag.as_deref().unwrap_or("any"),
                ],
            ),
            _ => subjects.event(self.kind(), &[self.id()]),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let encoded = match self {
            Event::VolunteerOffered(body) => serde_json::to_vec(body),
            Event::NeedPosted(body) => serde_json::to_vec(body),
            Event::PledgeOffered(body) => serde_json::to_vec(body),
            Event::Withdrawn(body) => serde_json::to_vec(body),
            Event::TaskCompleted(body) => serde_json::to_vec(body),
            Event::AssignmentAnswered(body) => serde_json::to_vec(body),
            Event::Steered(body) => serde_json::to_vec(body),
            Event::Vetted(body) => serde_json::to_vec(body),
        };
        // Serializing these plain structs cannot fail: no maps with non-string keys.
        encoded.unwrap_or_default()
    }

    pub fn decode(subjects: &Subjects, subject: &str, body: &[u8]) -> Result<Event, DecodeError> {
        let kind = subjects
            .parse_event(subject)
            .ok_or_else(|| DecodeError::UnknownSubject(subject.to_owned()))?;
        let event = match kind {
            EventKind::VolunteerOffered => {
                Event::VolunteerOffered(decode_unbounded(body).map_err(DecodeError::Body)?)
            }
            EventKind::NeedPosted => {
                Event::NeedPosted(decode_unbounded(body).map_err(DecodeError::Body)?)
            }
            EventKind::PledgeOffered => {
                Event::PledgeOffered(decode_unbounded(body).map_err(DecodeError::Body)?)
            }
            EventKind::Withdrawn => {
                Event::Withdrawn(decode_unbounded(body).map_err(DecodeError::Body)?)
            }
            EventKind::TaskCompleted => {
                Event::TaskCompleted(decode_unbounded(body).map_err(DecodeError::Body)?)
            }
            EventKind::AssignmentAnswered => {
                Event::AssignmentAnswered(decode_unbounded(body).map_err(DecodeError::Body)?)
            }
            EventKind::Steered => {
                Event::Steered(decode_unbounded(body).map_err(DecodeError::Body)?)
            }
            EventKind::Vetted => Event::Vetted(decode_unbounded(body).map_err(DecodeError::Body)?),
        };
        Ok(event)
    }

    /// What this event says, on its subject, as a hash: two requests with
    /// the same content hash ask for the same thing.
    pub fn content_hash(&self, subjects: &Subjects) -> String {
        message_id(&self.subject(subjects), &self.encode())
    }

    /// The `Nats-Msg-Id` of this event written as the next update after
    /// `previous`, the sequence of the last event about the same thing (0:
    /// none yet). A retry of the same request (same body, nothing written
    /// in between) is the same message and JetStream keeps one; the same
    /// body after another update (offer, withdraw, offer again) is a new
    /// one, and is written.
    pub fn message_id_after(&self, subjects: &Subjects, previous: u64) -> String {
        let mut body = self.encode();
        body.extend_from_slice(format!("\0after:{previous}").as_bytes());
        message_id(&self.subject(subjects), &body)
    }

    /// The `Nats-Msg-Id` of this event sent with the client's own
    /// idempotency key: every retry with that key and body is one message,
    /// whatever was written in between.
    pub fn message_id_keyed(&self, subjects: &Subjects, key: &str) -> String {
        let mut body = self.encode();
        body.extend_from_slice(format!("\0key:{key}").as_bytes());
        message_id(&self.subject(subjects), &body)
    }
}

/// A stable, content-derived message id for JetStream deduplication.
pub fn message_id(subject: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(subject.as_bytes());
    hasher.update([0u8]);
    hasher.update(body);
    let digest = hasher.finalize();
    digest
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A change of an assignment, as kept in `SB_MATCHES`.
#[derive(Clone, Debug, PartialEq)]
pub enum MatchEvent {
    Proposed(MatchProposed),
    Accepted(MatchChanged),
    Declined(MatchChanged),
    Expired(MatchChanged),
    CheckedIn(MatchChanged),
    Released(MatchChanged),
    Completed(MatchChanged),
}

impl MatchEvent {
    pub fn kind(&self) -> MatchKind {
        match self {
            MatchEvent::Proposed(_) => MatchKind::Proposed,
            MatchEvent::Accepted(_) => MatchKind::Accepted,
            MatchEvent::Declined(_) => MatchKind::Declined,
            MatchEvent::Expired(_) => MatchKind::Expired,
            MatchEvent::CheckedIn(_) => MatchKind::CheckedIn,
            MatchEvent::Released(_) => MatchKind::Released,
            MatchEvent::Completed(_) => MatchKind::Completed,
        }
    }

    /// Builds the non-proposal event of `kind`; `None` for `Proposed`.
    pub fn changed(kind: MatchKind, change: MatchChanged) -> Option<MatchEvent> {
        Some(match kind {
            MatchKind::Proposed => return None,
            MatchKind::Accepted => MatchEvent::Accepted(change),
            MatchKind::Declined => MatchEvent::Declined(change),
            MatchKind::Expired => MatchEvent::Expired(change),
            MatchKind::CheckedIn => MatchEvent::CheckedIn(change),
            MatchKind::Released => MatchEvent::Released(change),
            MatchKind::Completed => MatchEvent::Completed(change),
        })
    }

    /// `(volunteer, task, round)` the event is about.
    pub fn pair(&self) -> (&str, &str, u32) {
        match self {
            MatchEvent::Proposed(proposal) => (&proposal.volunteer, &proposal.task, proposal.round),
            MatchEvent::Accepted(change)
            | MatchEvent::Declined(change)
            | MatchEvent::Expired(change)
            | MatchEvent::CheckedIn(change)
            | MatchEvent::Released(change)
            | MatchEvent::Completed(change) => (&change.volunteer, &change.task, change.round),
        }
    }

    pub fn subject(&self, subjects: &Subjects) -> String {
        subjects.match_event(self.kind())
    }

    pub fn encode(&self) -> Vec<u8> {
        let encoded = match self {
            MatchEvent::Proposed(body) => serde_json::to_vec(body),
            MatchEvent::Accepted(body)
            | MatchEvent::Declined(body)
            | MatchEvent::Expired(body)
            | MatchEvent::CheckedIn(body)
            | MatchEvent::Released(body)
            | MatchEvent::Completed(body) => serde_json::to_vec(body),
        };
        encoded.unwrap_or_default()
    }

    pub fn decode(
        subjects: &Subjects,
        subject: &str,
        body: &[u8],
    ) -> Result<MatchEvent, DecodeError> {
        let kind = subjects
            .parse_match(subject)
            .ok_or_else(|| DecodeError::UnknownSubject(subject.to_owned()))?;
        if kind == MatchKind::Proposed {
            return Ok(MatchEvent::Proposed(
                decode_unbounded(body).map_err(DecodeError::Body)?,
            ));
        }
        let change: MatchChanged = decode_unbounded(body).map_err(DecodeError::Body)?;
        MatchEvent::changed(kind, change)
            .ok_or_else(|| DecodeError::UnknownSubject(subject.to_owned()))
    }

    /// The `Nats-Msg-Id`: one per (kind, pair, round), so a service that
    /// repeats itself after a crash publishes nothing new.
    pub fn message_id(&self) -> String {
        let (volunteer, task, round) = self.pair();
        format!("{}:{volunteer}:{task}:{round}", self.kind().token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WithdrawKind;

    #[test]
    fn an_event_decodes_from_its_own_subject_and_body() {
        let subjects = Subjects::default();
        let event = Event::Withdrawn(Withdrawal {
            kind: WithdrawKind::Task,
            id: "t9".into(),
        });
        let subject = event.subject(&subjects);
        assert_eq!(subject, "sb.ev.withdrawn.task.t9");
        assert_eq!(
            Event::decode(&subjects, &subject, &event.encode()).unwrap(),
            event
        );
    }

    #[test]
    fn the_same_event_after_the_same_update_is_one_message_and_after_another_is_a_new_one() {
        let subjects = Subjects::default();
        let one = Event::TaskCompleted(TaskCompletion { task: "t1".into() });
        let two = Event::TaskCompleted(TaskCompletion { task: "t2".into() });
        assert_eq!(
            one.content_hash(&subjects),
            one.clone().content_hash(&subjects)
        );
        assert_ne!(one.content_hash(&subjects), two.content_hash(&subjects));
        assert_eq!(
            one.message_id_after(&subjects, 7),
            one.clone().message_id_after(&subjects, 7)
        );
        assert_ne!(
            one.message_id_after(&subjects, 7),
            one.message_id_after(&subjects, 9)
        );
        assert_ne!(
            one.message_id_keyed(&subjects, "k1"),
            one.message_id_keyed(&subjects, "k2")
        );
        assert_ne!(
            one.message_id_keyed(&subjects, "7"),
            one.message_id_after(&subjects, 7)
        );
    }
}
