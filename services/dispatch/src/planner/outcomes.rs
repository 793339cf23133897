//! What the outcomes of the planner's effects change. The state follows
//! only what is durable: messages in the inbox mark their reminders sent
//! and let their deliveries be acked, a published transition is applied,
//! and a failure leaves the state as it was, so the decision is taken
//! again (a delivery handed back, a timer held for a few seconds, a
//! transition left to settle). A transition someone else's write came
//! before is decided again at once, on what that write changed: an
//! acceptance of a proposal the solver released meanwhile is refused, not
//! written after the release.

use chrono::{DateTime, Utc};

use proto::wire::Reply;

use super::{
    reminded_key, shift_reminded_key, Cause, Effect, NotWritten, Outbound, Planner, Publication,
    SendPurpose, Write, RETRY_AFTER_FAILURE_S,
};
use crate::assignments::{key, State};

impl Planner {
    /// What a write to the volunteers' subjects changes.
    pub(super) fn sent(
        &mut self,
        purpose: SendPurpose,
        messages: Vec<Outbound>,
        outcome: Result<(), String>,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        if outcome.is_err() {
            match purpose {
                SendPurpose::Delivery {
                    mut delivered,
                    superseded,
                } => {
                    delivered.extend(superseded);
                    effects.push(Effect::Nak(delivered));
                }
                SendPurpose::CheckinReminder { .. }
                | SendPurpose::DeadlineReminder { .. }
                | SendPurpose::ShiftReminder { .. } => self.hold(now),
                SendPurpose::Courtesy => {}
            }
            return;
        }
        // Email is a courtesy copy of what the inbox now holds.
        for outbound in &messages {
            if let Outbound::Message(message, _) = outbound {
                if let Some(sealed) = self.contacts.get(&message.volunteer) {
                    effects.push(Effect::Email {
                        message: message.clone(),
                        sealed_contact: sealed.clone(),
                    });
                }
            }
        }
        match purpose {
            SendPurpose::Delivery {
                mut delivered,
                superseded,
            } => {
                delivered.extend(superseded);
                effects.push(Effect::Ack(delivered));
            }
            SendPurpose::CheckinReminder { pair, round } => {
                let Some(mut reminded) = self.assignments.get(&pair).cloned() else {
                    return;
                };
                if reminded.round == round {
                    reminded.reminded = true;
                    let mut writes = Vec::new();
                    self.put(reminded, &mut writes);
                    effects.push(Effect::Commit(writes));
                }
            }
            SendPurpose::DeadlineReminder { pair, round } => {
                let reminded = reminded_key(&pair, round);
                effects.push(Effect::Commit(vec![Write::DeadlineReminded {
                    reminded: reminded.clone(),
                }]));
                self.deadline_reminded.insert(reminded);
                self.schedule_reminder(&pair);
            }
            SendPurpose::ShiftReminder { pair, round, leads } => {
                let mut writes = Vec::new();
                for lead in leads {
                    let reminded = shift_reminded_key(&pair, round, lead);
                    writes.push(Write::ShiftReminded {
                        reminded: reminded.clone(),
                    });
                    self.shift_reminded.insert(reminded);
                }
                effects.push(Effect::Commit(writes));
                self.schedule_reminder(&pair);
            }
            SendPurpose::Courtesy => {}
        }
    }

    /// A transition is in the match stream: the state follows it, the
    /// volunteer gets their plan, and what waited on it goes out.
    pub(super) fn published(
        &mut self,
        publication: Box<Publication>,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let mut writes = Vec::new();
        let (volunteer, task, _) = publication.event.pair();
        let pair = key(volunteer, task);
        let before = self.assignments.get(&pair).map(|current| current.state);
        let followup = if self.apply_match(&publication.event, &mut writes) {
            self.calendar_followup(&publication.event, before)
        } else {
            None
        };
        effects.push(Effect::Commit(writes));
        let plan = self.three_weeks(volunteer, now);
        effects.push(Effect::Send {
            messages: vec![Outbound::Plan(Box::new(plan))],
            purpose: SendPurpose::Courtesy,
        });
        self.unsettled.remove(&pair);
        let notice = match publication.cause {
            Cause::Answer { request, reply } => {
                effects.push(Effect::Reply { request, reply });
                followup
            }
            // An answer settled, the completion of its task may be due next.
            Cause::Log => {
                self.settle(vec![pair.clone()], now, effects);
                followup
            }
            // The clock's own notice says why; it carries the cancel.
            Cause::Clock { notice } => match notice {
                Some(mut notice) => {
                    if followup.is_some() {
                        notice.calendar = self
                            .assignments
                            .get(&pair)
                            .map(|assignment| self.calendar_entry(assignment));
                    }
                    Some(*notice)
                }
                None => followup,
            },
        };
        if let Some(notice) = notice {
            effects.push(Effect::Send {
                messages: vec![Outbound::Message(Box::new(notice), None)],
                purpose: SendPurpose::Courtesy,
            });
        }
    }

    /// A transition was not written. When the stream was away the state
    /// stays as it was and the decision is taken again later; when someone
    /// wrote first (the shell has read what they wrote), it is taken again
    /// now, on what holds.
    pub(super) fn not_published(
        &mut self,
        publication: Box<Publication>,
        why: NotWritten,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        if why == NotWritten::Conflict {
            return self.decide_again(publication, now, effects);
        }
        let (volunteer, task, _) = publication.event.pair();
        self.hold(now);
        match publication.cause {
            Cause::Answer { request, .. } => {
                // The answer is logged and its transition follows from the
                // log once the stream is back; the volunteer is not told
                // `ok` before it is in effect, and sending it again is safe.
                self.unsettled.insert(key(volunteer, task));
                effects.push(Effect::Reply {
                    request,
                    reply: Reply::refused(plumbing::reply::unavailable(
                        "the answer is recorded but not yet in effect; send it again",
                    )),
                });
            }
            Cause::Log => {
                self.unsettled.insert(key(volunteer, task));
            }
            // The timer stays due.
            Cause::Clock { .. } => {}
        }
    }

    /// After a conflict: a transition the state already shows (an earlier
    /// attempt landed, its ack lost; or someone wrote the same) counts as
    /// published; otherwise it is decided again for what caused it.
    fn decide_again(
        &mut self,
        publication: Box<Publication>,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let (volunteer, task, round) = publication.event.pair();
        let pair = key(volunteer, task);
        let shown = self.assignments.get(&pair).is_some_and(|assignment| {
            assignment.round == round && assignment.state == State::after(publication.event.kind())
        });
        if shown {
            return self.published(publication, now, effects);
        }
        match publication.cause {
            Cause::Answer { request, reply } => {
                self.answer_again(&publication.event, request, reply, now, effects)
            }
            Cause::Log => self.settle(vec![pair], now, effects),
            Cause::Clock { .. } => self.timer_again(&pair, now, effects),
        }
    }

    /// The clock's work waits a little after a failure.
    pub(super) fn hold(&mut self, now: DateTime<Utc>) {
        self.held_until = Some(now + chrono::Duration::seconds(RETRY_AFTER_FAILURE_S));
    }
}
