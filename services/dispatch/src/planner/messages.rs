//! What dispatch says to volunteers: proposals, notices about work they
//! hold, the hand-off note for whoever takes released work over, and "my
//! three weeks". Task details come from the one reading of needs
//! ([`needs_core::NeedBook`]); a task not (yet) read is named by its id.

use chrono::{DateTime, Utc};
use needs_core::{TaskChange, TaskStatus};
use proto::events::MatchEvent;
use proto::wire::{
    CalendarEntry, MatchProposed, PlannedWork, ReplyAction, VolunteerMessage, VolunteerPlan,
    VolunteerReply,
};

use super::Planner;
use crate::assignments::{Assignment, State};

/// "My three weeks" calls work starting within this many days "next".
pub const THREE_WEEKS_NEXT_DAYS: i64 = 7;
/// The right-hand side of every invite's UID (RFC 5545 §3.8.4.7 suggests
/// a domain, so UIDs of different producers never meet).
pub const CALENDAR_UID_DOMAIN: &str = "switchboard";

impl Planner {
    /// The proposal as the volunteer sees it, with the answers to give.
    pub(super) fn volunteer_message(&self, proposal: &MatchProposed) -> VolunteerMessage {
        let spec = self.needs.task(&proposal.task).map(|entry| &entry.spec);
        let answer = |action| VolunteerReply {
            volunteer: proposal.volunteer.clone(),
            task: proposal.task.clone(),
            action,
            round: Some(proposal.round),
            hours_done: None,
        };
        VolunteerMessage {
            kind: "proposal".to_owned(),
            message_id: format!(
                "proposal:{}:{}:{}",
                proposal.volunteer, proposal.task, proposal.round
            ),
            volunteer: proposal.volunteer.clone(),
            task: proposal.task.clone(),
            title: spec.map_or_else(|| proposal.task.clone(), |spec| spec.title.clone()),
            need: proposal.need.clone(),
            collective: proposal.collective.clone(),
            hours: spec.map(|spec| spec.hours).unwrap_or_default(),
            earliest_start: spec.map_or(proposal.at, |spec| spec.earliest_start),
            deadline: spec.map_or(proposal.respond_by, |spec| spec.deadline),
            region: spec.and_then(|spec| spec.region.clone()),
            why: proposal.why.clone(),
            respond_by: proposal.respond_by,
            reply_subject: self.config.subjects.input(proto::subjects::Input::Reply),
            accept: answer(ReplyAction::Accept),
            decline: answer(ReplyAction::Decline),
            checkin: None,
            note: None,
            shift: spec.and_then(|spec| spec.shift),
            place: spec.and_then(|spec| spec.place.clone()),
            instructions: spec.and_then(|spec| spec.instructions.clone()),
            tz: self.zones.get(&proposal.volunteer).cloned(),
            calendar: None,
        }
    }

    /// The assignment's calendar entry as it now stands: one UID for the
    /// volunteer on the task, its revision as the sequence.
    pub(super) fn calendar_entry(&self, assignment: &Assignment) -> CalendarEntry {
        CalendarEntry {
            uid: format!(
                "{}/{}@{CALENDAR_UID_DOMAIN}",
                assignment.volunteer, assignment.task
            ),
            sequence: assignment.revision,
            cancelled: !matches!(assignment.state, State::Accepted | State::CheckedIn)
                || self.is_cancelled(&assignment.task),
        }
    }

    /// Whether the task was cancelled (left out of its need, withdrawn).
    fn is_cancelled(&self, task: &str) -> bool {
        self.needs
            .task(task)
            .is_some_and(|entry| entry.status == TaskStatus::Cancelled)
    }

    /// What a new transition of `pair` (from `before`) tells the
    /// volunteer's calendar: accepted work is confirmed with its invite,
    /// held work that is released is cancelled. Proposals carry no invite
    /// (nothing is in a calendar before the volunteer said yes), so a
    /// decline or an expiry has nothing to cancel.
    pub(super) fn calendar_followup(
        &self,
        event: &MatchEvent,
        before: Option<State>,
    ) -> Option<VolunteerMessage> {
        let (volunteer, task, _) = event.pair();
        let assignment = self
            .assignments
            .get(&crate::assignments::key(volunteer, task))?;
        let reason = match event {
            MatchEvent::Released(change) => change.reason.as_deref(),
            _ => None,
        };
        let (kind, note) = match (before, assignment.state) {
            (Some(State::Proposed), State::Accepted) => (
                "confirmed",
                "You are on it: the event is in the attached invite.".to_owned(),
            ),
            // A cancelled task's invite was withdrawn when it was cancelled.
            (Some(State::Accepted | State::CheckedIn), State::Released)
                if !self.is_cancelled(&assignment.task) =>
            {
                (
                    "released",
                    format!(
                        "This was released ({}); it is taken off your calendar.",
                        reason.unwrap_or("no reason given")
                    ),
                )
            }
            _ => return None,
        };
        let mut message = self.notice(assignment, kind, note);
        message.calendar = Some(self.calendar_entry(assignment));
        Some(message)
    }

    /// What a change of its task tells the calendar of a volunteer
    /// holding `pair`: the new details (`updated`), or that the task was
    /// cancelled (`cancelled`, the invite withdrawn: the solver may release
    /// the member later, or never, and the event must go now).
    pub(super) fn task_followup(
        &self,
        pair: &str,
        change: &TaskChange,
    ) -> Option<VolunteerMessage> {
        let assignment = self.assignments.get(pair)?;
        if !matches!(assignment.state, State::Accepted | State::CheckedIn) {
            return None;
        }
        let (kind, note) = match change {
            TaskChange::Opened(_) => (
                "updated",
                "The details of this work changed; the attached invite replaces the old one.",
            ),
            TaskChange::Cancelled(_) => (
                "cancelled",
                "The collective cancelled this work; it is taken off your calendar. Thank you for offering your time.",
            ),
            TaskChange::Completed(_) | TaskChange::UpdatedWhileDone(_) => return None,
        };
        let mut message = self.notice(assignment, kind, note.to_owned());
        message.message_id = format!("{}:{}", message.message_id, assignment.revision);
        message.calendar = Some(self.calendar_entry(assignment));
        Some(message)
    }

    /// A message of `kind` about work the volunteer holds.
    pub(super) fn notice(
        &self,
        assignment: &Assignment,
        kind: &str,
        note: String,
    ) -> VolunteerMessage {
        let mut message = self.volunteer_message(&assignment.proposal);
        message.kind = kind.to_owned();
        message.message_id = format!(
            "{kind}:{}:{}:{}",
            assignment.volunteer, assignment.task, assignment.round
        );
        message.note = Some(note);
        message
    }

    /// What whoever takes the work over needs to know.
    pub(super) fn handoff_note(&self, assignment: &Assignment, why_left: &str) -> String {
        let title = self
            .needs
            .task(&assignment.task)
            .map_or(assignment.task.as_str(), |entry| entry.spec.title.as_str());
        let accepted = assignment
            .accepted_at
            .map(|at| format!(" accepted it on {}", at.format("%b %d %H:%M UTC")))
            .unwrap_or_default();
        let checked_in = assignment
            .checked_in_at
            .map(|at| format!(", last checked in on {}", at.format("%b %d %H:%M UTC")))
            .unwrap_or_else(|| ", never checked in".to_owned());
        format!(
            "\"{title}\" for {}: {}{accepted}{checked_in}, and {why_left}. Ask {} where it stands before starting.",
            assignment.proposal.collective, assignment.volunteer, assignment.proposal.collective
        )
    }

    /// "My three weeks": everything the volunteer holds, now, next and later.
    pub(super) fn three_weeks(&self, volunteer: &str, now: DateTime<Utc>) -> VolunteerPlan {
        let next_horizon = now + chrono::Duration::days(THREE_WEEKS_NEXT_DAYS);
        let mut held: Vec<PlannedWork> = self
            .assignments_of
            .get(volunteer)
            .into_iter()
            .flatten()
            .filter_map(|pair| self.assignments.get(pair))
            .filter(|assignment| assignment.state.is_live())
            .map(|assignment| self.planned_work(assignment))
            .collect();
        held.sort_by(|one, other| {
            one.deadline
                .cmp(&other.deadline)
                .then_with(|| one.task.cmp(&other.task))
        });
        let hours_committed = held.iter().map(|work| work.hours).sum();
        let (started, upcoming): (Vec<PlannedWork>, Vec<PlannedWork>) = held
            .into_iter()
            .partition(|work| work.earliest_start <= now);
        let (next, later) = upcoming
            .into_iter()
            .partition(|work| work.earliest_start <= next_horizon);
        VolunteerPlan {
            kind: "three_weeks".to_owned(),
            message_id: format!("three_weeks:{volunteer}:{}", now.timestamp_micros()),
            volunteer: volunteer.to_owned(),
            available_until: self.tenure.get(volunteer).copied(),
            now: started,
            next,
            later,
            hours_committed,
            at: now,
        }
    }

    fn planned_work(&self, assignment: &Assignment) -> PlannedWork {
        let spec = self.needs.task(&assignment.task).map(|entry| &entry.spec);
        PlannedWork {
            task: assignment.task.clone(),
            title: spec.map_or_else(|| assignment.task.clone(), |spec| spec.title.clone()),
            need: assignment.proposal.need.clone(),
            collective: assignment.proposal.collective.clone(),
            state: assignment.state.token().to_owned(),
            hours: spec.map(|spec| spec.hours).unwrap_or_default(),
            earliest_start: spec.map_or(assignment.proposal.at, |spec| spec.earliest_start),
            deadline: spec.map_or(assignment.respond_by, |spec| spec.deadline),
            respond_by: (assignment.state == State::Proposed).then_some(assignment.respond_by),
        }
    }
}
