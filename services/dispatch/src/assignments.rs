//! The assignment state machine and the table of every assignment.
//!
//! ```text
//! proposed ──accept──▶ accepted ──checkin──▶ checked_in ──done──▶ completed
//!    │                    │  └──────────done───────────────────▲
//!    ├─decline─▶ declined  └──drop──▶ released ◀──drop── checked_in
//!    └─(respond_by passes)─▶ expired
//! ```
//! Released, declined, expired and completed are final for a round; the
//! solver may propose the pair again in a new round.

use chrono::{DateTime, Utc};
use proto::subjects::MatchKind;
use proto::wire::{MatchProposed, ReplyAction};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Proposed,
    Accepted,
    CheckedIn,
    Declined,
    Expired,
    Released,
    Completed,
}

impl State {
    /// Whether the volunteer still holds this work.
    pub fn is_live(self) -> bool {
        matches!(self, State::Proposed | State::Accepted | State::CheckedIn)
    }

    pub fn after(kind: MatchKind) -> State {
        match kind {
            MatchKind::Proposed => State::Proposed,
            MatchKind::Accepted => State::Accepted,
            MatchKind::CheckedIn => State::CheckedIn,
            MatchKind::Declined => State::Declined,
            MatchKind::Expired => State::Expired,
            MatchKind::Released => State::Released,
            MatchKind::Completed => State::Completed,
        }
    }

    /// The state as the wire names it.
    pub fn token(self) -> &'static str {
        match self {
            State::Proposed => "proposed",
            State::Accepted => "accepted",
            State::CheckedIn => "checked_in",
            State::Declined => "declined",
            State::Expired => "expired",
            State::Released => "released",
            State::Completed => "completed",
        }
    }

    fn word(self) -> &'static str {
        match self {
            State::Proposed => "proposed",
            State::Accepted => "accepted",
            State::CheckedIn => "checked in",
            State::Declined => "declined",
            State::Expired => "expired",
            State::Released => "released",
            State::Completed => "completed",
        }
    }
}

/// What an answer does from a state: the match event to publish, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    To(MatchKind),
    /// The answer repeats one already applied: same reply, nothing new.
    Repeat,
    Illegal(String),
}

pub fn transition(state: State, action: ReplyAction) -> Transition {
    use ReplyAction::{Accept, Checkin, Decline, Done, Drop, Progress};
    use State::{Accepted, CheckedIn, Completed, Declined, Proposed, Released};
    match (state, action) {
        (Proposed, Accept) => Transition::To(MatchKind::Accepted),
        (Proposed, Decline) => Transition::To(MatchKind::Declined),
        // A report of progress is a check-in that says how far they got.
        (Accepted, Checkin | Progress) => Transition::To(MatchKind::CheckedIn),
        (Accepted | CheckedIn, Done) => Transition::To(MatchKind::Completed),
        (Accepted | CheckedIn, Drop) => Transition::To(MatchKind::Released),
        (Accepted, Accept)
        | (Declined, Decline)
        | (CheckedIn, Checkin | Progress)
        | (Completed, Done)
        | (Released, Drop) => Transition::Repeat,
        (Proposed, Checkin | Done | Drop | Progress) => Transition::Illegal(
            "the assignment is only proposed: accept or decline it first".to_owned(),
        ),
        (state, action) => Transition::Illegal(format!(
            "the assignment is {}; {} is no longer possible",
            state.word(),
            action.token()
        )),
    }
}

/// One volunteer on one task, in its latest round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub volunteer: String,
    pub task: String,
    pub round: u32,
    pub state: State,
    pub respond_by: DateTime<Utc>,
    /// The proposal as published, for the message to the volunteer.
    pub proposal: MatchProposed,
    /// Sequence in the events stream of the last answer to this pair (0: none),
    /// the expected last sequence that makes concurrent answers impossible.
    pub answered_sequence: u64,
    #[serde(default)]
    pub accepted_at: Option<DateTime<Utc>>,
    /// When the volunteer last checked in this round (the check-in, or a
    /// later answer to a nudge): their last sign of life on this work.
    #[serde(default)]
    pub checked_in_at: Option<DateTime<Utc>>,
    /// A check-in reminder was sent for this round since the last check-in
    /// (for accepted work: since accepting).
    #[serde(default)]
    pub reminded: bool,
    /// The last answer logged for this round: its transition is due until
    /// the state shows it (a crash between logging an answer and
    /// publishing its transition leaves it here for the restart to settle).
    #[serde(default)]
    pub last_answer: Option<ReplyAction>,
    /// How many changes of this pair (a new round, a new state) and of its
    /// task (updated, cancelled) the logs have brought since the pair was
    /// first proposed: the `SEQUENCE` of its calendar invite. It is counted
    /// as `SB_MATCHES` and `SB_EVENTS` are applied and kept in the store
    /// with their positions, so a restart goes on from it; a store rebuilt
    /// from the logs counts every task change again, which only raises it
    /// (a calendar keeps the highest sequence, so higher is always safe).
    #[serde(default)]
    pub revision: u32,
}

/// What the clock does to an assignment when its time comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Nobody answered the proposal by `respond_by`.
    Expire,
    /// Accepted, halfway through the check-in window, no check-in yet; or
    /// checked in, halfway through the silence allowed since the last
    /// check-in (a nudge: "still on it?").
    Remind,
    /// Accepted, the check-in window over, no check-in; or checked in and
    /// silent past the allowed silence: a silent drop-out.
    ReleaseSilent,
    /// The volunteer's availability ended with the work unfinished.
    ReleaseTenureEnd,
}

/// The longest silence allowed to checked-in work since its last check-in,
/// however far its deadline: a volunteer who vanished is noticed within it.
pub const CHECKED_IN_SILENCE_MAX_HOURS: i64 = 48;

impl Assignment {
    /// The next thing the clock will do to this assignment, and when.
    /// `checkin_window`: how long after accepting a check-in is expected;
    /// `tenure_ends`: when the volunteer's availability ends, if known;
    /// `deadline`: the task's deadline, if known.
    ///
    /// Checked-in work is checked again: it may stay silent for half the
    /// time from its last check-in to the deadline (so that, released, it
    /// leaves as long again for someone to backfill it), at least a quarter
    /// of the check-in window and at most the check-in window or
    /// [`CHECKED_IN_SILENCE_MAX_HOURS`], whichever is shorter; a nudge goes
    /// out halfway and answering it is a check-in.
    pub fn next_timer(
        &self,
        checkin_window: chrono::Duration,
        tenure_ends: Option<DateTime<Utc>>,
        deadline: Option<DateTime<Utc>>,
    ) -> Option<(DateTime<Utc>, Timer)> {
        let own = match self.state {
            State::Proposed => return Some((self.respond_by, Timer::Expire)),
            State::Accepted => {
                let accepted_at = self.accepted_at.unwrap_or(self.proposal.at);
                if self.reminded {
                    Some((accepted_at + checkin_window, Timer::ReleaseSilent))
                } else {
                    Some((accepted_at + checkin_window / 2, Timer::Remind))
                }
            }
            State::CheckedIn => {
                let seen = self
                    .checked_in_at
                    .or(self.accepted_at)
                    .unwrap_or(self.proposal.at);
                let silence = checked_in_silence(seen, checkin_window, deadline);
                if self.reminded {
                    Some((seen + silence, Timer::ReleaseSilent))
                } else {
                    Some((seen + silence / 2, Timer::Remind))
                }
            }
            State::Declined | State::Expired | State::Released | State::Completed => return None,
        };
        let tenure = tenure_ends.map(|ends| (ends, Timer::ReleaseTenureEnd));
        match (own, tenure) {
            (Some(own), Some(tenure)) => Some(if tenure.0 < own.0 { tenure } else { own }),
            (own, tenure) => own.or(tenure),
        }
    }
}

/// How long checked-in work last seen at `seen` may stay silent before it
/// is released (see [`Assignment::next_timer`]).
pub fn checked_in_silence(
    seen: DateTime<Utc>,
    checkin_window: chrono::Duration,
    deadline: Option<DateTime<Utc>>,
) -> chrono::Duration {
    let longest = checkin_window.min(chrono::Duration::hours(CHECKED_IN_SILENCE_MAX_HOURS));
    let shortest = (checkin_window / 4).min(longest);
    match deadline {
        Some(deadline) => ((deadline - seen) / 2).clamp(shortest, longest),
        None => longest,
    }
}

pub fn key(volunteer: &str, task: &str) -> String {
    format!("{volunteer}/{task}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn assignment(state: State) -> Assignment {
        let at = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let proposal: MatchProposed = serde_json::from_value(serde_json::json!({
            "volunteer": "v1", "task": "t1", "need": "n1", "collective": "c1", "impact": 1.0,
            "why": {}, "respond_by": "2026-11-23T00:00:00Z", "at": "2026-11-22T00:00:00Z"
        }))
        .unwrap();
        Assignment {
            volunteer: "v1".into(),
            task: "t1".into(),
            round: 0,
            state,
            respond_by: proposal.respond_by,
            proposal,
            answered_sequence: 0,
            accepted_at: Some(at),
            checked_in_at: None,
            reminded: false,
            last_answer: None,
            revision: 0,
        }
    }

    #[test]
    fn the_clock_expires_proposals_reminds_then_releases_silent_acceptances_and_ends_tenures() {
        let window = chrono::Duration::hours(72);
        let start = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let proposed = assignment(State::Proposed);
        assert_eq!(
            proposed.next_timer(window, None, None),
            Some((proposed.respond_by, Timer::Expire))
        );
        let mut accepted = assignment(State::Accepted);
        assert_eq!(
            accepted.next_timer(window, None, None),
            Some((start + window / 2, Timer::Remind))
        );
        accepted.reminded = true;
        assert_eq!(
            accepted.next_timer(window, None, None),
            Some((start + window, Timer::ReleaseSilent))
        );
        let leaving = start + chrono::Duration::hours(10);
        assert_eq!(
            accepted.next_timer(window, Some(leaving), None),
            Some((leaving, Timer::ReleaseTenureEnd))
        );
        let mut checked_in = assignment(State::CheckedIn);
        checked_in.checked_in_at = Some(start);
        // Checked-in work is checked again: nudged after 24 h of silence,
        // released after 48 h.
        assert_eq!(
            checked_in.next_timer(window, None, None),
            Some((start + chrono::Duration::hours(24), Timer::Remind))
        );
        checked_in.reminded = true;
        assert_eq!(
            checked_in.next_timer(window, None, None),
            Some((start + chrono::Duration::hours(48), Timer::ReleaseSilent))
        );
        // Near its deadline the silence shrinks to half the time left, so
        // as long again is left to backfill it: due in 40 h, released
        // after 20 h of silence.
        let near = start + chrono::Duration::hours(40);
        assert_eq!(
            checked_in.next_timer(window, None, Some(near)),
            Some((start + chrono::Duration::hours(20), Timer::ReleaseSilent))
        );
        // Never less than a quarter of the check-in window.
        let past = start - chrono::Duration::hours(1);
        assert_eq!(
            checked_in.next_timer(window, None, Some(past)),
            Some((start + chrono::Duration::hours(18), Timer::ReleaseSilent))
        );
        checked_in.reminded = false;
        assert_eq!(
            checked_in.next_timer(window, Some(leaving), None),
            Some((leaving, Timer::ReleaseTenureEnd))
        );
        assert_eq!(
            assignment(State::Completed).next_timer(window, Some(leaving), None),
            None
        );
    }

    #[test]
    fn every_answer_from_every_state_has_exactly_one_outcome() {
        let states = [
            State::Proposed,
            State::Accepted,
            State::CheckedIn,
            State::Declined,
            State::Expired,
            State::Released,
            State::Completed,
        ];
        let actions = [
            ReplyAction::Accept,
            ReplyAction::Decline,
            ReplyAction::Checkin,
            ReplyAction::Done,
            ReplyAction::Drop,
            ReplyAction::Progress,
        ];
        let mut legal = 0;
        for state in states {
            for action in actions {
                if let Transition::To(kind) = transition(state, action) {
                    legal += 1;
                    assert!(
                        state.is_live(),
                        "{state:?} is final but {action:?} moves it to {kind:?}"
                    );
                }
            }
        }
        assert_eq!(
            legal, 8,
            "accept, decline, checkin, done×2, drop×2, progress (a check-in)"
        );
        assert_eq!(
            transition(State::Accepted, ReplyAction::Progress),
            Transition::To(MatchKind::CheckedIn)
        );
        assert_eq!(
            transition(State::CheckedIn, ReplyAction::Progress),
            Transition::Repeat,
            "on checked-in work, a sign of life"
        );
        assert!(matches!(
            transition(State::Proposed, ReplyAction::Progress),
            Transition::Illegal(_)
        ));
        assert!(matches!(
            transition(State::Expired, ReplyAction::Accept),
            Transition::Illegal(_)
        ));
        assert!(matches!(
            transition(State::Accepted, ReplyAction::Accept),
            Transition::Repeat
        ));
        assert!(matches!(
            transition(State::Accepted, ReplyAction::Decline),
            Transition::Illegal(_)
        ));
    }
}
