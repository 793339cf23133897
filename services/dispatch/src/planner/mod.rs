//! Dispatch's planner: the assignments, their clock and every decision
//! about them, with no I/O (STYLE.md 15, quinn-proto beside quinn).
//!
//! [`Planner::step`] takes one [`Input`] (a message read from a log, the
//! proposals the durable consumer handed over, a volunteer's answer, the
//! clock's wake-up, or the outcome of an effect it asked for) and the
//! switchboard's time, and returns the [`Effect`]s to carry out in order:
//! store batches, messages to volunteers, transitions to publish, answers
//! to log, replies, acks, emails and when to wake it next. It owns no
//! socket, no clock and no store; the shell in the crate root does those
//! and feeds every outcome back before anything else, so a step always
//! sees the state its earlier effects left. A recorded sequence of inputs
//! therefore replays exactly, and every behaviour is a unit test
//! (`planner::tests`).
//!
//! The state changes only on what is durable: a transition is applied
//! once the match stream acknowledged it ([`Input::Published`]), a reminder
//! is marked sent once the inbox has it ([`Input::Sent`]). A failed effect
//! leaves the state as it was, so the decision is taken again: a timer
//! stays due (tried again after [`RETRY_AFTER_FAILURE_S`]), a transition an
//! answer or a completion calls for is settled again, an unsent proposal is
//! handed back to the consumer.

mod answers;
mod clock;
mod messages;
mod outcomes;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use needs_core::{NeedBook, NeedEntry, TaskChange, TaskEntry};
use plumbing::follow::{Log, Stored};
use plumbing::trace::TraceParent;
use proto::events::{Event, MatchEvent};
use proto::subjects::Subjects;
use proto::wire::{MatchProposed, Reply, VolunteerMessage, VolunteerPlan, VolunteerReply};

use crate::assignments::{key, Assignment, State};
use clock::Agenda;

pub use answers::{action_name, REASON_TASK_DONE};
pub use clock::{DEADLINE_REMINDER_LEAD_HOURS, SHIFT_REMINDER_LEADS_HOURS};
pub use messages::THREE_WEEKS_NEXT_DAYS;

/// After an effect failed (the server away), the clock's work waits this
/// long, in the switchboard's time, before it is tried again.
pub const RETRY_AFTER_FAILURE_S: i64 = 5;

/// Names a delivery the shell holds (its ack guard) while the planner decides.
pub type DeliveryId = u64;
/// Names a request the shell holds while the planner decides its reply.
pub type RequestId = u64;

/// What the planner is told about the deployment.
#[derive(Clone, Debug)]
pub struct PlannerConfig {
    pub subjects: Subjects,
    /// How long after accepting a volunteer has to check in.
    pub checkin_window: chrono::Duration,
    /// Whether email is configured: only then are contacts kept.
    pub emails: bool,
}

/// What the store held at start ([`crate::state::load`]).
#[derive(Debug, Default)]
pub struct Saved {
    pub assignments: Vec<(String, Assignment)>,
    pub tenure: Vec<(String, DateTime<Utc>)>,
    pub needs: Vec<(String, NeedEntry)>,
    pub tasks: Vec<(String, TaskEntry)>,
    /// Volunteers' private fields as sealed in their offers (opened only
    /// to send an email).
    pub contacts: Vec<(String, String)>,
    pub deadline_reminded: Vec<String>,
    /// Volunteers' time zones, from their offers.
    pub zones: Vec<(String, String)>,
    /// Shift reminders sent ([`shift_reminded_key`]).
    pub shift_reminded: Vec<String>,
}

/// A proposal the durable consumer handed over.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: DeliveryId,
    pub payload: Bytes,
    /// The trace the proposal carries, which its message carries on.
    pub trace: TraceParent,
}

/// Everything that can happen to dispatch.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message of `SB_EVENTS` or `SB_MATCHES`, in log order.
    Stored(Log, Stored),
    /// Both logs are applied to their ends: what they left to do is done now.
    CaughtUp,
    /// Proposals to deliver, as the durable consumer handed them over.
    Deliveries(Vec<Delivery>),
    /// A volunteer's answer (`sb.in.reply`), after the match stream was
    /// read to its end. `sender` is the volunteer of a per-sender subject
    /// (`sb.in.reply.<volunteer>`): an answer for anyone else is refused.
    Answer {
        request: RequestId,
        body: Bytes,
        sender: Option<String>,
    },
    /// The time asked for by the last [`Effect::WakeAt`] has come.
    Wake,
    /// The outcome of [`Effect::Send`]: `Err` says why nothing may be assumed sent.
    Sent {
        purpose: SendPurpose,
        messages: Vec<Outbound>,
        outcome: Result<(), String>,
    },
    /// The outcome of [`Effect::Publish`]: in `SB_MATCHES`.
    Published(Box<Publication>),
    /// The outcome of [`Effect::Publish`]: not written, and why. On a
    /// conflict the shell has read the match stream to its end first, so
    /// the planner decides again on what now holds.
    NotPublished(Box<Publication>, NotWritten),
    /// The outcome of [`Effect::LogAnswer`]: in `SB_EVENTS` at `sequence`.
    AnswerLogged {
        request: RequestId,
        answer: VolunteerReply,
        sequence: u64,
    },
    /// The outcome of [`Effect::LogAnswer`]: not written.
    AnswerNotLogged { request: RequestId, why: NotLogged },
}

impl Input {
    /// Whether this is the outcome of an effect the planner asked for.
    fn is_outcome(&self) -> bool {
        matches!(
            self,
            Input::Sent { .. }
                | Input::Published(_)
                | Input::NotPublished(..)
                | Input::AnswerLogged { .. }
                | Input::AnswerNotLogged { .. }
        )
    }
}

/// Why an answer was not logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotLogged {
    /// Another answer to the assignment was logged first.
    Conflict,
    /// The stream did not acknowledge; the text says what failed.
    Unavailable(String),
}

/// Why a transition was not written to `SB_MATCHES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotWritten {
    /// The stream had moved past what this instance had read: someone (the
    /// solver) wrote first, and what they wrote may make the transition
    /// moot (a proposal released before its acceptance could land).
    Conflict,
    /// The stream did not acknowledge; the state stays and the decision is
    /// taken again later.
    Unavailable,
}

/// What the shell is to do, in the order given.
#[derive(Clone, Debug)]
pub enum Effect {
    /// One atomic store batch.
    Commit(Vec<Write>),
    /// Messages on the volunteers' subjects (`SB_INBOX`), written together;
    /// the outcome comes back as [`Input::Sent`].
    Send {
        messages: Vec<Outbound>,
        purpose: SendPurpose,
    },
    /// A courtesy copy by email, sent in the background, never retried, to
    /// the address the shell opens from the volunteer's sealed fields.
    Email {
        message: Box<VolunteerMessage>,
        sealed_contact: String,
    },
    /// A transition on `sb.match.*`, written only if the stream still ends
    /// where this instance last read or wrote it (so a transition is never
    /// written over one it has not seen); the outcome comes back as
    /// [`Input::Published`] or [`Input::NotPublished`].
    Publish(Box<Publication>),
    /// An answer written to `SB_EVENTS`, conditional on the assignment's
    /// last answer; the outcome comes back as [`Input::AnswerLogged`] or
    /// [`Input::AnswerNotLogged`].
    LogAnswer {
        request: RequestId,
        answer: VolunteerReply,
        message_id: String,
        expected_last_sequence: u64,
    },
    /// The reply to a request.
    Reply { request: RequestId, reply: Reply },
    /// Deliveries whose effect is durable: the consumer may forget them.
    Ack(Vec<DeliveryId>),
    /// Deliveries that can never be handled (they do not parse).
    Terminate(Vec<DeliveryId>),
    /// Deliveries whose effect did not happen: delivered again later.
    Nak(Vec<DeliveryId>),
    /// When to wake the planner next (`None`: nothing is scheduled).
    WakeAt(Option<DateTime<Utc>>),
    /// A malformed or moot message, passed (logged by the shell's policy).
    Skipped(String),
}

impl Effect {
    /// Whether the shell feeds this effect's outcome back as an input.
    pub fn has_outcome(&self) -> bool {
        matches!(
            self,
            Effect::Send { .. } | Effect::Publish(_) | Effect::LogAnswer { .. }
        )
    }
}

/// One write of a store batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Assignment(Box<Assignment>),
    Tenure {
        volunteer: String,
        until: DateTime<Utc>,
    },
    Need {
        id: String,
        entry: NeedEntry,
    },
    Task {
        id: String,
        entry: Box<TaskEntry>,
    },
    /// A volunteer's sealed private fields (the email address among them),
    /// or their removal.
    Contact {
        volunteer: String,
        sealed: Option<String>,
    },
    /// The deadline reminder of `volunteer/task#round` was sent.
    DeadlineReminded {
        reminded: String,
    },
    /// A volunteer's time zone (from their offer), or its removal.
    Zone {
        volunteer: String,
        tz: Option<String>,
    },
    /// The shift reminder [`shift_reminded_key`] was sent (or is moot).
    ShiftReminded {
        reminded: String,
    },
    /// Everything of the log up to `sequence` is applied.
    Position {
        log: Log,
        sequence: u64,
    },
}

/// A message for a volunteer's subject.
#[derive(Clone, Debug, PartialEq)]
pub enum Outbound {
    /// A proposal, reminder or release notice, with the trace it carries
    /// (`None`: the trace of what is being handled).
    Message(Box<VolunteerMessage>, Option<TraceParent>),
    /// "My three weeks".
    Plan(Box<VolunteerPlan>),
}

impl Outbound {
    pub fn volunteer(&self) -> &str {
        match self {
            Outbound::Message(message, _) => &message.volunteer,
            Outbound::Plan(plan) => &plan.volunteer,
        }
    }

    pub fn message_id(&self) -> &str {
        match self {
            Outbound::Message(message, _) => &message.message_id,
            Outbound::Plan(plan) => &plan.message_id,
        }
    }
}

/// Why messages are sent, which says what their outcome changes.
#[derive(Clone, Debug, PartialEq)]
pub enum SendPurpose {
    /// Proposals: `delivered[i]` is the delivery of message `i`; the
    /// superseded ones are acked with them.
    Delivery {
        delivered: Vec<DeliveryId>,
        superseded: Vec<DeliveryId>,
    },
    /// The check-in reminder of `pair`'s round.
    CheckinReminder { pair: String, round: u32 },
    /// The deadline reminder of `pair`'s round.
    DeadlineReminder { pair: String, round: u32 },
    /// The shift reminder of `pair`'s round; `leads` are the reminders
    /// (hours ahead) it stands for: a late one makes the earlier ones moot.
    ShiftReminder {
        pair: String,
        round: u32,
        leads: Vec<i64>,
    },
    /// Plans and release notices: a failure is logged, nothing more.
    Courtesy,
}

/// A transition to publish, and what it was decided for.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    pub event: MatchEvent,
    pub cause: Cause,
}

/// What decided a transition, which says what follows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cause {
    /// A volunteer's answer: `reply` goes out once the transition is tried.
    Answer { request: RequestId, reply: Reply },
    /// An answer or a completion in `SB_EVENTS` whose transition is due.
    Log,
    /// The clock; `notice` tells the volunteer once it is published.
    Clock {
        notice: Option<Box<VolunteerMessage>>,
    },
}

/// Dispatch's state and decisions.
pub struct Planner {
    config: PlannerConfig,
    assignments: HashMap<String, Assignment>,
    /// Each volunteer's assignment keys (assignments are never removed), so
    /// a new offer reschedules its volunteer's work without scanning them all.
    assignments_of: HashMap<String, Vec<String>>,
    /// Each task's assignment keys: a moved deadline reschedules their
    /// reminders, a completion settles them.
    assignments_for_task: HashMap<String, Vec<String>>,
    /// The one reading of needs and tasks, for the messages' task details.
    needs: NeedBook,
    /// When each volunteer's availability ends.
    tenure: HashMap<String, DateTime<Utc>>,
    /// Email addresses by volunteer; empty unless email is configured.
    contacts: HashMap<String, String>,
    /// Assignments (`key#round`) already reminded of their deadline.
    deadline_reminded: HashSet<String>,
    /// Shift reminders sent, by [`shift_reminded_key`].
    shift_reminded: HashSet<String>,
    /// Volunteers' IANA time zones, for the times their messages show.
    zones: HashMap<String, String>,
    /// Assignments by the time the clock next acts on them.
    timers: Agenda,
    /// Deadline reminders by when they are due.
    reminders: Agenda,
    /// Shift reminders by when the next one of each assignment is due.
    shift_reminders: Agenda,
    /// Assignments whose due transition could not be published yet.
    unsettled: BTreeSet<String>,
    /// After a failure, the clock's work waits until then.
    held_until: Option<DateTime<Utc>>,
    /// Both logs are applied to their ends.
    caught_up: bool,
    /// The wake-up last asked for.
    announced_wake: Option<DateTime<Utc>>,
    /// Effects asked for whose outcome has not come back: the wake-up is
    /// announced only when there are none, so a later outcome's own
    /// wake-up never comes before an earlier, stale one.
    outstanding: usize,
}

impl Planner {
    /// The planner over what the store held.
    pub fn restore(config: PlannerConfig, saved: Saved) -> Planner {
        let mut planner = Planner {
            needs: NeedBook::from_entries(saved.needs, saved.tasks),
            tenure: saved.tenure.into_iter().collect(),
            contacts: if config.emails {
                saved.contacts.into_iter().collect()
            } else {
                HashMap::new()
            },
            deadline_reminded: saved.deadline_reminded.into_iter().collect(),
            shift_reminded: saved.shift_reminded.into_iter().collect(),
            zones: saved.zones.into_iter().collect(),
            config,
            assignments: HashMap::new(),
            assignments_of: HashMap::new(),
            assignments_for_task: HashMap::new(),
            timers: Agenda::default(),
            reminders: Agenda::default(),
            shift_reminders: Agenda::default(),
            unsettled: BTreeSet::new(),
            held_until: None,
            caught_up: false,
            announced_wake: None,
            outstanding: 0,
        };
        for (_, assignment) in saved.assignments {
            planner.keep(assignment);
        }
        planner
    }

    /// Handles one input at `now`; the effects are to be carried out in order.
    pub fn step(&mut self, input: Input, now: DateTime<Utc>) -> Vec<Effect> {
        let mut effects = Vec::new();
        if input.is_outcome() {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        match input {
            Input::Stored(log, stored) => self.apply_stored(log, &stored, now, &mut effects),
            Input::CaughtUp => {
                self.caught_up = true;
                let keys: Vec<String> = self.assignments.keys().cloned().collect();
                self.settle(keys, now, &mut effects);
            }
            Input::Deliveries(deliveries) => self.deliver(deliveries, now, &mut effects),
            Input::Answer {
                request,
                body,
                sender,
            } => self.answer(request, &body, sender.as_deref(), &mut effects),
            Input::Wake => self.run_due(now, &mut effects),
            Input::Sent {
                purpose,
                messages,
                outcome,
            } => self.sent(purpose, messages, outcome, now, &mut effects),
            Input::Published(publication) => self.published(publication, now, &mut effects),
            Input::NotPublished(publication, why) => {
                self.not_published(publication, why, now, &mut effects)
            }
            Input::AnswerLogged {
                request,
                answer,
                sequence,
            } => self.answer_logged(request, answer, sequence, now, &mut effects),
            Input::AnswerNotLogged { request, why } => {
                effects.push(answers::not_logged(request, why))
            }
        }
        self.outstanding += effects.iter().filter(|effect| effect.has_outcome()).count();
        let wake = self.next_wake();
        if self.outstanding == 0 && wake != self.announced_wake {
            self.announced_wake = wake;
            effects.push(Effect::WakeAt(wake));
        }
        effects
    }

    /// The assignment of `volunteer` on `task`, if any.
    pub fn assignment(&self, volunteer: &str, task: &str) -> Option<&Assignment> {
        self.assignments.get(&key(volunteer, task))
    }

    /// Records the assignment in memory, keeping the indexes and the agenda
    /// true; the caller writes it.
    fn keep(&mut self, assignment: Assignment) {
        let pair = key(&assignment.volunteer, &assignment.task);
        if !self.assignments.contains_key(&pair) {
            self.assignments_of
                .entry(assignment.volunteer.clone())
                .or_default()
                .push(pair.clone());
            self.assignments_for_task
                .entry(assignment.task.clone())
                .or_default()
                .push(pair.clone());
        }
        self.assignments.insert(pair.clone(), assignment);
        self.schedule(&pair);
        self.schedule_reminder(&pair);
    }

    /// [`Planner::keep`], and the write that records it.
    fn put(&mut self, assignment: Assignment, writes: &mut Vec<Write>) {
        writes.push(Write::Assignment(Box::new(assignment.clone())));
        self.keep(assignment);
    }

    fn apply_stored(
        &mut self,
        log: Log,
        stored: &Stored,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let mut writes = Vec::new();
        let mut due = Vec::new();
        let mut notices = Vec::new();
        match log {
            Log::Matches => {
                let subjects = &self.config.subjects;
                match MatchEvent::decode(subjects, &stored.subject, &stored.payload) {
                    Ok(event) => {
                        // A transition published by another service (the
                        // solver's releases) is first seen here.
                        let (volunteer, task, _) = event.pair();
                        let pair = key(volunteer, task);
                        let before = self.assignments.get(&pair).map(|current| current.state);
                        if self.apply_match(&event, &mut writes) && self.caught_up {
                            notices.extend(self.calendar_followup(&event, before));
                        }
                    }
                    Err(error) => effects.push(Effect::Skipped(format!(
                        "unreadable match event at {}: {error}",
                        stored.sequence
                    ))),
                }
            }
            Log::Events => {
                let subjects = &self.config.subjects;
                match Event::decode(subjects, &stored.subject, &stored.payload) {
                    Ok(event) => {
                        due = self.apply_event(
                            &event,
                            stored.sequence,
                            now,
                            &mut writes,
                            &mut notices,
                        )
                    }
                    Err(error) => effects.push(Effect::Skipped(format!(
                        "unreadable event at {}: {error}",
                        stored.sequence
                    ))),
                }
            }
            Log::Ledger => {
                effects.push(Effect::Skipped(
                    "dispatch does not follow the ledger".to_owned(),
                ));
            }
        }
        writes.push(Write::Position {
            log,
            sequence: stored.sequence,
        });
        effects.push(Effect::Commit(writes));
        // Until both logs are read, what they call for waits for `CaughtUp`,
        // which sees the whole past: nothing is published before. Calendar
        // notices of what was read meanwhile are not sent at all: a store
        // rebuilt from the logs would otherwise mail every invite again.
        if self.caught_up {
            self.settle(due, now, effects);
        }
        if !notices.is_empty() {
            effects.push(Effect::Send {
                messages: notices
                    .into_iter()
                    .map(|notice| Outbound::Message(Box::new(notice), None))
                    .collect(),
                purpose: SendPurpose::Courtesy,
            });
        }
    }

    /// Applies a match event (from the log, or once published); returns
    /// whether it changed the assignment's round or state (an event seen
    /// twice, once published and once read back, changes it once).
    fn apply_match(&mut self, event: &MatchEvent, writes: &mut Vec<Write>) -> bool {
        let (volunteer, task, round) = event.pair();
        let current = self.assignments.get(&key(volunteer, task)).cloned();
        match event {
            MatchEvent::Proposed(proposal) => {
                if current.as_ref().is_some_and(|current| {
                    current.round >= round && current.state != State::Proposed
                }) {
                    return false;
                }
                let answered_sequence = current
                    .as_ref()
                    .map_or(0, |current| current.answered_sequence);
                let mut assignment = new_assignment(proposal, answered_sequence);
                // The invite's sequence goes on across rounds.
                let changed = current
                    .as_ref()
                    .is_none_or(|current| current.round != round);
                assignment.revision =
                    current.map_or(0, |current| current.revision + u32::from(changed));
                self.put(assignment, writes);
                changed
            }
            _ => {
                if let Some(mut assignment) = current.filter(|current| current.round == round) {
                    let after = State::after(event.kind());
                    let changed = assignment.state != after;
                    if changed {
                        assignment.revision += 1;
                    }
                    assignment.state = after;
                    if let MatchEvent::Accepted(change) = event {
                        assignment.accepted_at = Some(change.at);
                    }
                    if let MatchEvent::CheckedIn(change) = event {
                        assignment.checked_in_at = Some(change.at);
                        // The nudges count from the check-in.
                        assignment.reminded = false;
                    }
                    self.put(assignment, writes);
                    changed
                } else {
                    false
                }
            }
        }
    }

    /// Applies an event of `SB_EVENTS`; returns the assignments whose
    /// transition it may have made due. Once caught up, the calendar
    /// notices of changed or cancelled tasks go to `notices`.
    fn apply_event(
        &mut self,
        event: &Event,
        sequence: u64,
        now: DateTime<Utc>,
        writes: &mut Vec<Write>,
        notices: &mut Vec<VolunteerMessage>,
    ) -> Vec<String> {
        let applied = self.needs.apply(event);
        for need in &applied.needs {
            if let Some(entry) = self.needs.need(need) {
                writes.push(Write::Need {
                    id: need.clone(),
                    entry: entry.clone(),
                });
            }
        }
        for change in &applied.tasks {
            let task = change.task();
            if let Some(entry) = self.needs.task(task) {
                writes.push(Write::Task {
                    id: task.to_owned(),
                    entry: Box::new(entry.clone()),
                });
            }
            // A moved deadline moves the reminders of the task's work, and
            // a changed or cancelled task is a new revision of its invites.
            let revised = matches!(change, TaskChange::Opened(_) | TaskChange::Cancelled(_));
            for pair in self.keys_for_task(task) {
                match self.assignments.get(&pair).cloned() {
                    Some(mut assignment) if revised => {
                        assignment.revision += 1;
                        self.put(assignment, writes);
                        if self.caught_up {
                            notices.extend(self.task_followup(&pair, change));
                        }
                    }
                    _ => self.schedule_reminder(&pair),
                }
            }
        }
        match event {
            Event::VolunteerOffered(offer) => {
                writes.push(Write::Tenure {
                    volunteer: offer.id.clone(),
                    until: offer.available_until,
                });
                self.tenure.insert(offer.id.clone(), offer.available_until);
                self.learn_contact(&offer.id, offer.sealed.as_deref(), writes);
                self.learn_zone(&offer.id, offer.tz.as_deref(), writes);
                let held = self
                    .assignments_of
                    .get(&offer.id)
                    .cloned()
                    .unwrap_or_default();
                for pair in held {
                    self.schedule(&pair);
                }
                Vec::new()
            }
            Event::AssignmentAnswered(answer) => {
                let pair = key(&answer.volunteer, &answer.task);
                let Some(mut assignment) = self.assignments.get(&pair).cloned() else {
                    return Vec::new();
                };
                if sequence > assignment.answered_sequence
                    && answers::is_sign_of_life(Some(&assignment), answer)
                {
                    assignment.checked_in_at = Some(now);
                    assignment.reminded = false;
                }
                assignment.answered_sequence = assignment.answered_sequence.max(sequence);
                if answer.round == Some(assignment.round) {
                    assignment.last_answer = Some(answer.action);
                }
                self.put(assignment, writes);
                vec![pair]
            }
            Event::TaskCompleted(completion) => self.keys_for_task(&completion.task),
            _ => Vec::new(),
        }
    }
}

/// What the planner learns from offers, and the proposals it delivers.
impl Planner {
    fn keys_for_task(&self, task: &str) -> Vec<String> {
        self.assignments_for_task
            .get(task)
            .cloned()
            .unwrap_or_default()
    }

    /// Remembers (or forgets) the time zone a volunteer reads times in.
    fn learn_zone(&mut self, volunteer: &str, tz: Option<&str>, writes: &mut Vec<Write>) {
        let tz = tz.map(str::to_owned);
        if self.zones.get(volunteer) == tz.as_ref() {
            return;
        }
        match &tz {
            Some(tz) => self.zones.insert(volunteer.to_owned(), tz.clone()),
            None => self.zones.remove(volunteer),
        };
        writes.push(Write::Zone {
            volunteer: volunteer.to_owned(),
            tz,
        });
    }

    /// Remembers (or forgets) a volunteer's private fields, sealed as their
    /// offer holds them: the planner never sees an address, the shell opens
    /// it with the volunteer's key only to send an email (and cannot, once
    /// they asked to be forgotten).
    fn learn_contact(&mut self, volunteer: &str, sealed: Option<&str>, writes: &mut Vec<Write>) {
        if !self.config.emails {
            return;
        }
        match sealed {
            Some(sealed) => {
                writes.push(Write::Contact {
                    volunteer: volunteer.to_owned(),
                    sealed: Some(sealed.to_owned()),
                });
                self.contacts
                    .insert(volunteer.to_owned(), sealed.to_owned());
            }
            None => {
                if self.contacts.remove(volunteer).is_some() {
                    writes.push(Write::Contact {
                        volunteer: volunteer.to_owned(),
                        sealed: None,
                    });
                }
            }
        }
    }

    /// Proposals to send, unless answered or superseded meanwhile: the
    /// state learns them first (one store batch), their messages go out
    /// together, and each is acked only once its message is in the inbox
    /// ([`Planner::sent`]); an unreadable one is terminated.
    fn deliver(
        &mut self,
        deliveries: Vec<Delivery>,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let mut writes = Vec::new();
        let mut messages = Vec::new();
        let mut delivered = Vec::new();
        let mut superseded = Vec::new();
        let mut unreadable = Vec::new();
        let mut moot = Vec::new();
        for delivery in deliveries {
            let proposal: MatchProposed = match proto::validate::decode(&delivery.payload) {
                Ok(proposal) => proposal,
                Err(error) => {
                    effects.push(Effect::Skipped(format!(
                        "undeliverable proposal dropped: {}",
                        error.message
                    )));
                    unreadable.push(delivery.id);
                    continue;
                }
            };
            let current = self.assignment(&proposal.volunteer, &proposal.task);
            let is_superseded = current.is_some_and(|current| {
                current.round > proposal.round
                    || (current.round == proposal.round && current.state != State::Proposed)
            });
            if is_superseded {
                superseded.push(delivery.id);
                continue;
            }
            // A proposal planned before its task was completed never
            // reaches the volunteer: it is learnt, and released as moot.
            if self.needs.is_done(&proposal.task) {
                if current.is_none_or(|current| current.round < proposal.round) {
                    self.apply_match(&MatchEvent::Proposed(proposal.clone()), &mut writes);
                }
                moot.push(key(&proposal.volunteer, &proposal.task));
                superseded.push(delivery.id);
                continue;
            }
            // The state may not have read this proposal yet; it must know it
            // before the volunteer can answer (applying it twice is harmless).
            if current.is_none_or(|current| current.round < proposal.round) {
                self.apply_match(&MatchEvent::Proposed(proposal.clone()), &mut writes);
            }
            let message = self.volunteer_message(&proposal);
            messages.push(Outbound::Message(Box::new(message), Some(delivery.trace)));
            delivered.push(delivery.id);
        }
        if !unreadable.is_empty() {
            effects.push(Effect::Terminate(unreadable));
        }
        if !writes.is_empty() {
            effects.push(Effect::Commit(writes));
        }
        if self.caught_up && !moot.is_empty() {
            self.settle(moot, now, effects);
        }
        if messages.is_empty() {
            if !superseded.is_empty() {
                effects.push(Effect::Ack(superseded));
            }
            return;
        }
        effects.push(Effect::Send {
            messages,
            purpose: SendPurpose::Delivery {
                delivered,
                superseded,
            },
        });
    }
}

fn new_assignment(proposal: &MatchProposed, answered_sequence: u64) -> Assignment {
    Assignment {
        volunteer: proposal.volunteer.clone(),
        task: proposal.task.clone(),
        round: proposal.round,
        state: State::Proposed,
        respond_by: proposal.respond_by,
        proposal: proposal.clone(),
        answered_sequence,
        accepted_at: None,
        checked_in_at: None,
        reminded: false,
        last_answer: None,
        revision: 0,
    }
}

/// The key of an assignment's round among the deadline reminders sent.
pub fn reminded_key(pair: &str, round: u32) -> String {
    format!("{pair}#{round}")
}

/// The key of an assignment's round's shift reminder `lead_hours` ahead.
pub fn shift_reminded_key(pair: &str, round: u32, lead_hours: i64) -> String {
    format!("{pair}#{round}@{lead_hours}h")
}
