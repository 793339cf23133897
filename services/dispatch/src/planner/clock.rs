//! The assignments' clock: what is due when, and what happens when it is.
//!
//! Two agendas keyed by due time: the assignments' [`Timer`]s (expire an
//! unanswered proposal, remind then release a silent acceptance, release
//! work at the end of a volunteer's time) and the deadline reminders of
//! accepted work ([`DEADLINE_REMINDER_LEAD_HOURS`] ahead). Both are kept
//! true on every change, so finding what is due never scans the
//! assignments. The shell sleeps until [`Planner::next_wake`].

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use proto::subjects::MatchKind;
use proto::wire::{ReplyAction, VolunteerReply};

use super::answers::change;
use super::{
    reminded_key, shift_reminded_key, Cause, Effect, Outbound, Planner, Publication, SendPurpose,
    Write,
};
use crate::assignments::{Assignment, State, Timer};

/// Accepted work gets one reminder this long before its deadline.
pub const DEADLINE_REMINDER_LEAD_HOURS: i64 = 24;
/// A held shift gets a reminder this many hours before it starts, longest
/// lead first (a shift has these instead of the deadline reminder).
pub const SHIFT_REMINDER_LEADS_HOURS: [i64; 2] = [24, 2];
const _: () = assert!(SHIFT_REMINDER_LEADS_HOURS[0] > SHIFT_REMINDER_LEADS_HOURS[1]);

/// Keys by the time something is due for them, one time per key.
#[derive(Debug, Default)]
pub struct Agenda {
    by_time: BTreeSet<(DateTime<Utc>, String)>,
    at: HashMap<String, DateTime<Utc>>,
}

impl Agenda {
    /// Puts `key` at `at`, or takes it off with `None`.
    pub fn set(&mut self, key: &str, at: Option<DateTime<Utc>>) {
        if let Some(previous) = self.at.remove(key) {
            self.by_time.remove(&(previous, key.to_owned()));
        }
        if let Some(at) = at {
            self.by_time.insert((at, key.to_owned()));
            self.at.insert(key.to_owned(), at);
        }
    }

    pub fn first(&self) -> Option<DateTime<Utc>> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// The keys due at `now`, earliest first.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<String> {
        self.by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect()
    }
}

impl Planner {
    /// Puts the assignment's next timer on the agenda (or takes it off).
    pub(super) fn schedule(&mut self, pair: &str) {
        let at = self
            .assignments
            .get(pair)
            .and_then(|assignment| self.next_timer(assignment).map(|(at, _)| at));
        self.timers.set(pair, at);
    }

    /// The assignment's next timer, from what the planner knows of its
    /// volunteer's tenure and its task's deadline.
    fn next_timer(&self, assignment: &Assignment) -> Option<(DateTime<Utc>, Timer)> {
        let tenure_ends = self.tenure.get(&assignment.volunteer).copied();
        let deadline = self
            .needs
            .task(&assignment.task)
            .map(|entry| entry.spec.deadline);
        assignment.next_timer(self.config.checkin_window, tenure_ends, deadline)
    }

    /// Puts the deadline reminder of the assignment at its time, or takes
    /// it off when it has none (any more).
    pub(super) fn schedule_reminder(&mut self, pair: &str) {
        let at = self
            .assignments
            .get(pair)
            .and_then(|assignment| self.deadline_reminder_at(pair, assignment));
        self.reminders.set(pair, at);
        let at = self
            .assignments
            .get(pair)
            .and_then(|assignment| self.shift_reminder_at(pair, assignment))
            .map(|(at, _)| at);
        self.shift_reminders.set(pair, at);
    }

    /// The next shift reminder `assignment` is owed, and its lead in hours:
    /// to held work only (accepted or checked in; a released member is
    /// owed none), of an open task (a cancelled shift none), not yet sent
    /// this round, and only a reminder whose time came after accepting
    /// (whoever accepts a shift an hour ahead knows it is near).
    fn shift_reminder_at(
        &self,
        pair: &str,
        assignment: &Assignment,
    ) -> Option<(DateTime<Utc>, i64)> {
        if !matches!(assignment.state, State::Accepted | State::CheckedIn) {
            return None;
        }
        let entry = self
            .needs
            .task(&assignment.task)
            .filter(|entry| entry.is_open())?;
        let start = entry.spec.shift?.start;
        let accepted_at = assignment.accepted_at?;
        SHIFT_REMINDER_LEADS_HOURS.iter().find_map(|&lead| {
            let remind_at = start - chrono::Duration::hours(lead);
            let owed = accepted_at < remind_at
                && !self
                    .shift_reminded
                    .contains(&shift_reminded_key(pair, assignment.round, lead));
            owed.then_some((remind_at, lead))
        })
    }

    /// When `assignment` is to be reminded of its deadline: accepted work
    /// not yet reminded this round, accepted before the reminder time (whoever
    /// accepts a day before the deadline knows it is near).
    fn deadline_reminder_at(&self, pair: &str, assignment: &Assignment) -> Option<DateTime<Utc>> {
        if !matches!(assignment.state, State::Accepted | State::CheckedIn) {
            return None;
        }
        let spec = &self.needs.task(&assignment.task)?.spec;
        // A shift is reminded of before it starts instead.
        if spec.shift.is_some() {
            return None;
        }
        let deadline = spec.deadline;
        let remind_at = deadline - chrono::Duration::hours(DEADLINE_REMINDER_LEAD_HOURS);
        let accepted_at = assignment.accepted_at?;
        if accepted_at >= remind_at
            || self
                .deadline_reminded
                .contains(&reminded_key(pair, assignment.round))
        {
            return None;
        }
        Some(remind_at)
    }

    /// When the planner next has something to do: the earliest timer or
    /// reminder, or a transition to try again; never before a hold ends.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let retry = (!self.unsettled.is_empty())
            .then(|| self.held_until.unwrap_or(DateTime::<Utc>::MIN_UTC));
        let earliest = [
            self.timers.first(),
            self.reminders.first(),
            self.shift_reminders.first(),
            retry,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(match self.held_until {
            Some(held_until) if held_until > earliest => held_until,
            _ => earliest,
        })
    }

    /// Does what is due: transitions to try again, deadline reminders,
    /// then the assignments' timers.
    pub(super) fn run_due(&mut self, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        if self.held_until.is_some_and(|held_until| held_until > now) {
            return;
        }
        self.held_until = None;
        let unsettled: Vec<String> = self.unsettled.iter().cloned().collect();
        self.settle(unsettled, now, effects);
        self.remind_before_deadlines(now, effects);
        self.remind_before_shifts(now, effects);
        for pair in self.timers.due(now) {
            let Some(assignment) = self.assignments.get(&pair).cloned() else {
                self.schedule(&pair);
                continue;
            };
            match self.next_timer(&assignment) {
                Some((at, timer)) if at <= now => self.timer_due(&assignment, timer, now, effects),
                // The agenda is kept true on every change; should it not
                // be, the entry is put right rather than left due forever.
                _ => self.schedule(&pair),
            }
        }
    }

    /// The timer of `pair`, if still due, decided again (its transition
    /// met a write it had not seen).
    pub(super) fn timer_again(
        &mut self,
        pair: &str,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let Some(assignment) = self.assignments.get(pair).cloned() else {
            return;
        };
        if let Some((at, timer)) = self.next_timer(&assignment) {
            if at <= now {
                self.timer_due(&assignment, timer, now, effects);
            }
        }
    }

    fn timer_due(
        &mut self,
        assignment: &Assignment,
        timer: Timer,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        match timer {
            Timer::Expire => {
                let expired = change(
                    assignment,
                    MatchKind::Expired,
                    "nobody answered in time",
                    None,
                    now,
                );
                if let Some(event) = expired {
                    effects.push(Effect::Publish(Box::new(Publication {
                        event,
                        cause: Cause::Clock { notice: None },
                    })));
                }
            }
            Timer::Remind => {
                let releases_at = match self.next_timer(&Assignment {
                    reminded: true,
                    ..assignment.clone()
                }) {
                    Some((at, Timer::ReleaseSilent)) => at,
                    _ => assignment.accepted_at.unwrap_or(now) + self.config.checkin_window,
                };
                let mut message = if assignment.state == State::CheckedIn {
                    let note = format!(
                        "Still on it? Check in again to say so, or drop it so someone else can take it. Without a word it is released on {}.",
                        releases_at.format("%b %d %H:%M UTC")
                    );
                    let mut message = self.notice(assignment, "reminder", note);
                    // One nudge per silence: the id names the check-in it follows.
                    let last = assignment.checked_in_at.unwrap_or(now);
                    message.message_id = format!(
                        "nudge:{}:{}:{}:{}",
                        assignment.volunteer,
                        assignment.task,
                        assignment.round,
                        last.timestamp()
                    );
                    message
                } else {
                    let note = format!(
                        "You accepted this; please check in to say you are still on it, or drop it so someone else can take it. It is released on {}.",
                        releases_at.format("%b %d %H:%M UTC")
                    );
                    self.notice(assignment, "reminder", note)
                };
                message.checkin = Some(checkin(assignment));
                effects.push(Effect::Send {
                    messages: vec![Outbound::Message(Box::new(message), None)],
                    purpose: SendPurpose::CheckinReminder {
                        pair: crate::assignments::key(&assignment.volunteer, &assignment.task),
                        round: assignment.round,
                    },
                });
            }
            Timer::ReleaseSilent | Timer::ReleaseTenureEnd => {
                let (reason, why_left) = if timer == Timer::ReleaseSilent {
                    let why_left = if assignment.state == State::CheckedIn {
                        "did not answer when asked whether they were still on it"
                    } else {
                        "did not check in"
                    };
                    (proto::wire::REASON_SILENT_DROP_OUT, why_left)
                } else {
                    (
                        "the volunteer's time with the switchboard ended",
                        "their availability ended",
                    )
                };
                let handoff = self.handoff_note(assignment, why_left);
                let note = format!("This was released ({reason}) so that someone else can take it. Thank you for your time.");
                let notice = self.notice(assignment, "released", note);
                let released = change(assignment, MatchKind::Released, reason, Some(handoff), now);
                if let Some(event) = released {
                    effects.push(Effect::Publish(Box::new(Publication {
                        event,
                        cause: Cause::Clock {
                            notice: Some(Box::new(notice)),
                        },
                    })));
                }
            }
        }
    }

    /// Reminds every holder of accepted work whose deadline is near.
    fn remind_before_deadlines(&mut self, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        for pair in self.reminders.due(now) {
            let current = self.assignments.get(&pair).filter(|assignment| {
                self.deadline_reminder_at(&pair, assignment)
                    .is_some_and(|at| at <= now)
            });
            let Some(assignment) = current.cloned() else {
                self.schedule_reminder(&pair);
                continue;
            };
            let deadline = self
                .needs
                .task(&assignment.task)
                .map_or(now, |entry| entry.spec.deadline);
            let note = format!(
                "This is due on {}. If you cannot finish it, drop it now so someone else can.",
                deadline.format("%b %d %H:%M UTC")
            );
            // A reminder on the wire, so clients need no new kind; the id
            // keeps it apart from the check-in reminder of the same round.
            let mut message = self.notice(&assignment, "reminder", note);
            message.message_id = format!(
                "deadline_reminder:{}:{}:{}",
                assignment.volunteer, assignment.task, assignment.round
            );
            if assignment.state == State::Accepted {
                message.checkin = Some(checkin(&assignment));
            }
            effects.push(Effect::Send {
                messages: vec![Outbound::Message(Box::new(message), None)],
                purpose: SendPurpose::DeadlineReminder {
                    pair,
                    round: assignment.round,
                },
            });
        }
    }
}

impl Planner {
    /// Reminds every member holding a shift that starts soon. Of the
    /// reminders owed, the one with the shortest lead whose time has come
    /// goes out and stands for the longer ones (a dispatch that was away
    /// for the 24 h reminder sends the 2 h one, not both); once the shift
    /// has started none is sent, and the moot ones are marked done.
    fn remind_before_shifts(&mut self, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        for pair in self.shift_reminders.due(now) {
            let Some(assignment) = self.assignments.get(&pair).cloned() else {
                self.schedule_reminder(&pair);
                continue;
            };
            let start = self
                .needs
                .task(&assignment.task)
                .and_then(|entry| entry.spec.shift)
                .map(|shift| shift.start);
            let (Some(start), Some(accepted_at)) = (start, assignment.accepted_at) else {
                self.schedule_reminder(&pair);
                continue;
            };
            let owed: Vec<i64> = SHIFT_REMINDER_LEADS_HOURS
                .iter()
                .copied()
                .filter(|&lead| {
                    let remind_at = start - chrono::Duration::hours(lead);
                    remind_at <= now
                        && accepted_at < remind_at
                        && !self.shift_reminded.contains(&shift_reminded_key(
                            &pair,
                            assignment.round,
                            lead,
                        ))
                })
                .collect();
            let due_now = self
                .shift_reminder_at(&pair, &assignment)
                .is_some_and(|(at, _)| at <= now);
            if owed.is_empty() || !due_now {
                // The agenda is kept true on every change; should it not
                // be, the entry is put right rather than left due forever.
                self.schedule_reminder(&pair);
                continue;
            }
            if now >= start {
                let mut writes = Vec::new();
                for lead in owed {
                    let reminded = shift_reminded_key(&pair, assignment.round, lead);
                    writes.push(Write::ShiftReminded {
                        reminded: reminded.clone(),
                    });
                    self.shift_reminded.insert(reminded);
                }
                effects.push(Effect::Commit(writes));
                self.schedule_reminder(&pair);
                continue;
            }
            let Some(&lead) = owed.last() else {
                continue;
            };
            let mut message = self.notice(&assignment, "shift_reminder", String::new());
            let place = message
                .place
                .as_ref()
                .and_then(|place| place.address.clone().or_else(|| place.name.clone()))
                .map(|place| format!(" at {place}"))
                .unwrap_or_default();
            let mut note = format!(
                "Your shift starts in {lead} hours: {}{place}.",
                crate::calendar::local_when(&message)
            );
            if let Some(instructions) = &message.instructions {
                note.push(' ');
                note.push_str(instructions);
            }
            if assignment.state == State::Accepted {
                message.checkin = Some(checkin(&assignment));
            }
            message.note = Some(note);
            message.message_id = format!(
                "shift_reminder:{}:{}:{}:{lead}h",
                assignment.volunteer, assignment.task, assignment.round
            );
            message.calendar = Some(self.calendar_entry(&assignment));
            effects.push(Effect::Send {
                messages: vec![Outbound::Message(Box::new(message), None)],
                purpose: SendPurpose::ShiftReminder {
                    pair,
                    round: assignment.round,
                    leads: owed,
                },
            });
        }
    }
}

/// The check-in answer a reminder offers.
fn checkin(assignment: &Assignment) -> VolunteerReply {
    VolunteerReply {
        volunteer: assignment.volunteer.clone(),
        task: assignment.task.clone(),
        action: ReplyAction::Checkin,
        round: Some(assignment.round),
        hours_done: None,
    }
}
