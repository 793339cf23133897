//! Volunteers' answers (`sb.in.reply`) and the transitions they, and the
//! completions of tasks, call for.
//!
//! An answer is judged against the assignment's current round and state
//! ([`crate::assignments::transition`]); a legal one is logged in
//! `SB_EVENTS` conditional on the assignment's last answer, so two answers
//! racing cannot both apply, and only then is its transition published and
//! the volunteer told `ok`. A transition that meets a write it had not seen
//! (the solver released the proposal meanwhile) is decided again on that
//! write, so an accept is never written after a release.
//!
//! Settling ([`Planner::settle`]) is the same rule read from the state: an
//! assignment whose last logged answer, or whose task's completion, calls
//! for a transition its state does not show yet gets it published. That covers a crash between logging and publishing,
//! and a server away when it was first tried.

use chrono::{DateTime, Utc};
use proto::events::MatchEvent;
use proto::subjects::MatchKind;
use proto::validate::decode;
use proto::wire::{ErrorBody, ErrorCode, MatchChanged, Reply, ReplyAction, VolunteerReply};

use super::{Cause, Effect, NotLogged, Planner, Publication, RequestId};
use crate::assignments::{key, transition, Assignment, State, Transition};

/// Why a task's live assignments end when the task is marked done.
pub const REASON_TASK_DONE: &str = "the task was marked done";

impl Planner {
    pub(super) fn answer(
        &mut self,
        request: RequestId,
        body: &[u8],
        sender: Option<&str>,
        effects: &mut Vec<Effect>,
    ) {
        match self.judge_answer(body, sender) {
            Ok(Judged::Repeat(reply)) => effects.push(Effect::Reply { request, reply }),
            Ok(Judged::Log {
                answer,
                expected_last_sequence,
            }) => {
                let mut message_id = format!(
                    "answered:{}:{}:{}:{:?}",
                    answer.volunteer,
                    answer.task,
                    answer.round.unwrap_or_default(),
                    answer.action
                );
                if is_sign_of_life(self.assignment(&answer.volunteer, &answer.task), &answer) {
                    // Check-ins are repeated on purpose: each is new, named
                    // by the answer it follows.
                    message_id.push_str(&format!(":{expected_last_sequence}"));
                }
                effects.push(Effect::LogAnswer {
                    request,
                    answer,
                    message_id,
                    expected_last_sequence,
                });
            }
            Err(refusal) => effects.push(Effect::Reply {
                request,
                reply: Reply::refused(refusal),
            }),
        }
    }

    fn judge_answer(&self, body: &[u8], sender: Option<&str>) -> Result<Judged, ErrorBody> {
        let mut answer: VolunteerReply = decode(body)?;
        answer.validate()?;
        // On a volunteer's own subject, only their own answers: identity is
        // bound to the subject, which NATS lets only them publish on.
        if let Some(sender) = sender.filter(|sender| *sender != answer.volunteer) {
            return Err(ErrorBody::new(
                ErrorCode::Unauthorized,
                Some("volunteer".to_owned()),
                format!(
                    "volunteer: {} is not the sender {sender} this subject belongs to",
                    answer.volunteer
                ),
            ));
        }
        let Some(assignment) = self.assignment(&answer.volunteer, &answer.task) else {
            let someone_else = self
                .assignments_for_task
                .get(&answer.task)
                .into_iter()
                .flatten()
                .filter_map(|pair| self.assignments.get(pair))
                .any(|other| other.state.is_live());
            return Err(if someone_else {
                ErrorBody::new(
                    ErrorCode::Unauthorized,
                    Some("volunteer".to_owned()),
                    format!(
                        "task {} was not proposed to {}",
                        answer.task, answer.volunteer
                    ),
                )
            } else {
                ErrorBody::new(
                    ErrorCode::NotFound,
                    Some("task".to_owned()),
                    format!(
                        "no assignment of task {} to {}",
                        answer.task, answer.volunteer
                    ),
                )
            });
        };
        if let Some(round) = answer.round {
            if round != assignment.round {
                return Err(ErrorBody::new(
                    ErrorCode::Conflict,
                    Some("round".to_owned()),
                    format!(
                        "this answers round {round}; the current proposal is round {}",
                        assignment.round
                    ),
                ));
            }
        }
        answer.round = Some(assignment.round);
        // A decision, not I/O: the facade is a no-op without a recorder.
        metrics::counter!("switchboard_dispatch_answers_total", "action" => action_name(answer.action))
            .increment(1);
        match transition(assignment.state, answer.action) {
            // A check-in on checked-in work is a sign of life: logged, it
            // restarts the silence the clock allows (the nudges' answer).
            Transition::Repeat if is_sign_of_life(Some(assignment), &answer) => Ok(Judged::Log {
                answer,
                expected_last_sequence: assignment.answered_sequence,
            }),
            Transition::To(_) => Ok(Judged::Log {
                answer,
                expected_last_sequence: assignment.answered_sequence,
            }),
            Transition::Repeat => Ok(Judged::Repeat(Reply::accepted(
                answer.task,
                assignment.answered_sequence,
            ))),
            Transition::Illegal(why) => Err(ErrorBody::new(
                ErrorCode::Conflict,
                Some("action".to_owned()),
                why,
            )),
        }
    }

    /// The answer is in the log: the assignment records it, its transition
    /// goes out, and the volunteer is told `ok` after it.
    pub(super) fn answer_logged(
        &mut self,
        request: RequestId,
        answer: VolunteerReply,
        sequence: u64,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let reply = Reply::accepted(answer.task.clone(), sequence);
        let pair = key(&answer.volunteer, &answer.task);
        let Some(mut assignment) = self.assignments.get(&pair).cloned() else {
            effects.push(Effect::Reply { request, reply });
            return;
        };
        if sequence > assignment.answered_sequence && is_sign_of_life(Some(&assignment), &answer) {
            assignment.checked_in_at = Some(now);
            assignment.reminded = false;
        }
        assignment.answered_sequence = sequence;
        if answer.round == Some(assignment.round) {
            assignment.last_answer = Some(answer.action);
        }
        let mut writes = Vec::new();
        self.put(assignment.clone(), &mut writes);
        effects.push(Effect::Commit(writes));
        match self.due_change(&assignment, now) {
            Some(event) => effects.push(Effect::Publish(Box::new(Publication {
                event,
                cause: Cause::Answer { request, reply },
            }))),
            None => effects.push(Effect::Reply { request, reply }),
        }
    }

    /// An answer's transition met a write it had not seen (the shell has
    /// read it since): published if the answer still calls for it, else
    /// refused, naming what the assignment became (a proposal the solver
    /// released while the answer was on its way is not accepted after all).
    pub(super) fn answer_again(
        &mut self,
        wanted: &MatchEvent,
        request: RequestId,
        reply: Reply,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let (volunteer, task, round) = wanted.pair();
        let Some(assignment) = self.assignment(volunteer, task).cloned() else {
            return effects.push(refused_after_all(request, volunteer, task, "withdrawn"));
        };
        if assignment.round != round {
            return effects.push(refused_after_all(
                request,
                volunteer,
                task,
                "proposed again",
            ));
        }
        match self.due_change(&assignment, now) {
            Some(event) if event.kind() == wanted.kind() => {
                effects.push(Effect::Publish(Box::new(Publication {
                    event,
                    cause: Cause::Answer { request, reply },
                })))
            }
            _ => {
                // The logged answer calls for nothing now: nothing to settle.
                self.unsettled.remove(&key(volunteer, task));
                effects.push(refused_after_all(
                    request,
                    volunteer,
                    task,
                    assignment.state.token(),
                ))
            }
        }
    }

    /// Publishes the transition each of `pairs` is due, if any.
    pub(super) fn settle(
        &mut self,
        pairs: Vec<String>,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) {
        let mut pairs = pairs;
        // The same order on every replay.
        pairs.sort();
        pairs.dedup();
        for pair in pairs {
            let Some(assignment) = self.assignments.get(&pair) else {
                self.unsettled.remove(&pair);
                continue;
            };
            match self.due_change(assignment, now) {
                Some(event) => effects.push(Effect::Publish(Box::new(Publication {
                    event,
                    cause: Cause::Log,
                }))),
                None => {
                    self.unsettled.remove(&pair);
                }
            }
        }
    }

    /// The transition the log calls for and the state does not show yet:
    /// the last answer's, else the end of live work on a task marked done.
    fn due_change(&self, assignment: &Assignment, now: DateTime<Utc>) -> Option<MatchEvent> {
        if let Some(action) = assignment.last_answer {
            if let Transition::To(kind) = transition(assignment.state, action) {
                return change(assignment, kind, answer_reason(action), None, now);
            }
        }
        if assignment.state.is_live() && self.needs.is_done(&assignment.task) {
            let kind = if assignment.state == State::Proposed {
                MatchKind::Released
            } else {
                MatchKind::Completed
            };
            return change(assignment, kind, REASON_TASK_DONE, None, now);
        }
        None
    }
}

/// Whether `answer` is a check-in on work already checked in, this round:
/// no transition, but a sign of life the clock counts from.
pub(super) fn is_sign_of_life(assignment: Option<&Assignment>, answer: &VolunteerReply) -> bool {
    assignment.is_some_and(|assignment| {
        assignment.state == State::CheckedIn
            && matches!(answer.action, ReplyAction::Checkin | ReplyAction::Progress)
            && answer.round.is_none_or(|round| round == assignment.round)
    })
}

/// What judging an answer came to, short of a refusal.
enum Judged {
    /// It repeats one applied: the same reply, nothing new.
    Repeat(Reply),
    /// It changes the assignment: log it, conditional on the last answer.
    Log {
        answer: VolunteerReply,
        expected_last_sequence: u64,
    },
}

/// The reply to an answer that could not be logged.
pub(super) fn not_logged(request: RequestId, why: NotLogged) -> Effect {
    let refusal = match why {
        NotLogged::Conflict => ErrorBody::new(
            ErrorCode::Conflict,
            None,
            "another answer to this assignment arrived first",
        ),
        NotLogged::Unavailable(reason) => plumbing::reply::unavailable(reason),
    };
    Effect::Reply {
        request,
        reply: Reply::refused(refusal),
    }
}

/// The refusal of an answer whose assignment changed before it could take
/// effect; `became` says how, in the wire's words.
fn refused_after_all(request: RequestId, volunteer: &str, task: &str, became: &str) -> Effect {
    Effect::Reply {
        request,
        reply: Reply::refused(ErrorBody::new(
            ErrorCode::Conflict,
            Some("task".to_owned()),
            format!(
                "the proposal of task {task} to {volunteer} is {became} now: it changed before this answer could take effect, so the answer was not applied"
            ),
        )),
    }
}

/// The transition of `assignment` to `kind`, at `now`.
pub(super) fn change(
    assignment: &Assignment,
    kind: MatchKind,
    reason: &str,
    handoff: Option<String>,
    now: DateTime<Utc>,
) -> Option<MatchEvent> {
    MatchEvent::changed(
        kind,
        MatchChanged {
            volunteer: assignment.volunteer.clone(),
            task: assignment.task.clone(),
            round: assignment.round,
            reason: Some(reason.to_owned()),
            handoff,
            at: now,
        },
    )
}

pub fn action_name(action: ReplyAction) -> &'static str {
    action.token()
}

fn answer_reason(action: ReplyAction) -> &'static str {
    match action {
        ReplyAction::Accept => "accepted by the volunteer",
        ReplyAction::Decline => "declined by the volunteer",
        ReplyAction::Checkin => "the volunteer checked in",
        ReplyAction::Progress => "the volunteer reported progress",
        ReplyAction::Done => "the volunteer reported it done",
        ReplyAction::Drop => proto::wire::REASON_DROPPED,
    }
}
