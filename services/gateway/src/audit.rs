//! "Who did it": every event of `SB_EVENTS` with its actor, for
//! coordinators (`GET /api/view/audit`, filterable by actor and entity).
//!
//! The actor travels on the event itself (`proto::wire::ACTOR_HEADER`, set
//! by ingest from the per-sender subject or the trusted client's header,
//! which the gateway fills with its signed-in principal). Answers dispatch
//! logged are the volunteer's own. The trail keeps the last
//! [`AUDIT_KEPT_MAX`] events in memory; the log itself keeps them all.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use proto::events::Event;
use schemars::JsonSchema;
use serde::Serialize;

/// Events the trail keeps (the newest).
pub const AUDIT_KEPT_MAX: usize = 20_000;
/// Entries one answer holds at most (the newest first).
pub const AUDIT_ANSWER_MAX: usize = 500;
/// The actor of an event written before actors were recorded.
pub const ACTOR_UNRECORDED: &str = "unrecorded";

/// One event and who caused it.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct AuditEntry {
    /// Its sequence in `SB_EVENTS`.
    pub sequence: u64,
    /// When the log stored it.
    pub at: DateTime<Utc>,
    /// `volunteer:<id>`, `collective:<id>`, `pledge:<id>`, `sender:<id>`,
    /// `coordinator`, `vetter:<id>`, `trusted` or `unrecorded`.
    pub actor: String,
    /// What happened: the event's kind (`volunteer`, `need`, `pledge`,
    /// `withdrawn`, `completed`, `answered`, `steered`, `vetted`).
    pub kind: String,
    /// What it was about: the volunteer, need, pledge, task or collective id.
    pub entity: String,
}

/// What a coordinator asked to see.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AuditView {
    /// Newest first, at most [`AUDIT_ANSWER_MAX`].
    pub entries: Vec<AuditEntry>,
    /// More matched than were returned.
    pub truncated: bool,
}

/// The last events, in log order.
#[derive(Clone, Debug, Default)]
pub struct AuditTrail {
    entries: VecDeque<AuditEntry>,
}

impl AuditTrail {
    /// Records `event`, stored at `sequence` and `at`, caused by `actor`
    /// (as its header named it, if it did).
    pub fn record(&mut self, event: &Event, sequence: u64, at: DateTime<Utc>, actor: Option<&str>) {
        let actor = match (actor, event) {
            (Some(actor), _) => actor.to_owned(),
            // Dispatch logs a volunteer's answer on their behalf.
            (None, Event::AssignmentAnswered(answer)) => format!("volunteer:{}", answer.volunteer),
            (None, _) => ACTOR_UNRECORDED.to_owned(),
        };
        let kind = event.kind().token().to_owned();
        self.entries.push_back(AuditEntry {
            sequence,
            at,
            actor,
            kind,
            entity: event.id().to_owned(),
        });
        while self.entries.len() > AUDIT_KEPT_MAX {
            self.entries.pop_front();
        }
    }

    /// The entries by `actor` and about `entity` (each when given), newest first.
    pub fn view(&self, actor: Option<&str>, entity: Option<&str>) -> AuditView {
        let mut matching = self
            .entries
            .iter()
            .rev()
            .filter(|entry| actor.is_none_or(|actor| entry.actor == actor))
            .filter(|entry| entity.is_none_or(|entity| entry.entity == entity));
        let entries: Vec<AuditEntry> = matching.by_ref().take(AUDIT_ANSWER_MAX).cloned().collect();
        let truncated = matching.next().is_some();
        AuditView { entries, truncated }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proto::wire::{VolunteerReply, Withdrawal};

    #[test]
    fn the_trail_names_who_did_what_and_filters_by_actor_and_entity() {
        let at = chrono::DateTime::<Utc>::UNIX_EPOCH;
        let mut trail = AuditTrail::default();
        let withdraw: Withdrawal =
            serde_json::from_value(serde_json::json!({"kind": "need", "id": "n-1"})).unwrap();
        trail.record(&Event::Withdrawn(withdraw), 7, at, Some("collective:c-1"));
        let answer: VolunteerReply = serde_json::from_value(
            serde_json::json!({"volunteer": "v-1", "task": "t-1", "action": "accept"}),
        )
        .unwrap();
        trail.record(&Event::AssignmentAnswered(answer), 8, at, None);
        let all = trail.view(None, None);
        assert_eq!(all.entries.len(), 2);
        assert_eq!(all.entries[0].sequence, 8, "newest first");
        assert_eq!(all.entries[0].actor, "volunteer:v-1");
        assert_eq!(all.entries[0].kind, "answered");
        let by_collective = trail.view(Some("collective:c-1"), None);
        assert_eq!(by_collective.entries.len(), 1);
        assert_eq!(by_collective.entries[0].kind, "withdrawn");
        assert_eq!(by_collective.entries[0].entity, "n-1");
        assert!(trail.view(None, Some("t-1")).entries[0].actor == "volunteer:v-1");
        assert!(trail.view(Some("coordinator"), None).entries.is_empty());
        for sequence in 0..(AUDIT_KEPT_MAX as u64 + 5) {
            let withdraw: Withdrawal =
                serde_json::from_value(serde_json::json!({"kind": "need", "id": "n-2"})).unwrap();
            trail.record(&Event::Withdrawn(withdraw), 100 + sequence, at, None);
        }
        let kept = trail.view(None, None);
        assert!(kept.truncated);
        assert_eq!(kept.entries.len(), AUDIT_ANSWER_MAX);
        assert!(
            trail.view(Some("collective:c-1"), None).entries.is_empty(),
            "the oldest went"
        );
    }
}
