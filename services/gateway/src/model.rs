//! The gateway's read model: what the pages show, folded from `SB_EVENTS`
//! and `SB_MATCHES`.
//!
//! It lives in memory and is rebuilt by replaying both streams at start,
//! like the solver's world but without a store: the gateway writes nothing,
//! so losing this model loses nothing. It keeps the latest post of every
//! need (with cancelled tasks removed), every volunteer's offer, pledges,
//! completed tasks with when they were completed, and every assignment with
//! its latest round, state and `why`. The views for each role are computed
//! from it in [`crate::views`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use proto::events::{Event, MatchEvent};
use proto::wire::{NeedPost, PledgeOffer, Steering, VolunteerOffer, Why, WithdrawKind};
use schemars::JsonSchema;
use serde::Serialize;

/// Where an assignment stands, as the pages say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentState {
    Proposed,
    Accepted,
    CheckedIn,
    Completed,
    Declined,
    Expired,
    Released,
}

impl AssignmentState {
    /// Proposed or committed to: the volunteer's time is spoken for.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            AssignmentState::Proposed | AssignmentState::Accepted | AssignmentState::CheckedIn
        )
    }

    /// The volunteer said yes: the slot counts as staffed.
    pub fn is_committed(self) -> bool {
        matches!(
            self,
            AssignmentState::Accepted | AssignmentState::CheckedIn | AssignmentState::Completed
        )
    }
}

/// One volunteer on one task, at its latest round.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Assignment {
    pub volunteer: String,
    pub task: String,
    pub round: u32,
    pub state: AssignmentState,
    /// The `why` of the latest proposal of this pair.
    pub why: Why,
    pub respond_by: DateTime<Utc>,
    /// When the state last changed, by the switchboard's clock.
    pub at: DateTime<Utc>,
}

/// A point of the "impact delivered" chart.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Delivered {
    pub task: String,
    pub title: String,
    pub impact: f64,
    /// Hours each member of its team worked, as posted.
    pub hours: f64,
    /// The team's size, as posted (0 for money-only work).
    pub slots: u8,
    pub at: DateTime<Utc>,
}

/// Everything the pages are built from.
#[derive(Default)]
pub struct ReadModel {
    /// Who did what in `SB_EVENTS` ("who did it"), the newest events.
    pub audit: crate::audit::AuditTrail,
    pub volunteers: BTreeMap<String, VolunteerOffer>,
    /// Needs as last posted, less tasks withdrawn or left out since.
    pub needs: BTreeMap<String, NeedPost>,
    /// Task id to need id, for every task ever posted (a task id belongs to
    /// one need for ever), so completed and cancelled tasks stay attributable.
    pub task_need: BTreeMap<String, String>,
    /// Need id to collective, for ever (a need belongs to one collective).
    pub need_collective: BTreeMap<String, String>,
    pub pledges: BTreeMap<String, PledgeOffer>,
    /// Completed tasks, with their impact and when.
    pub delivered: BTreeMap<String, Delivered>,
    /// `(volunteer, task)` to the latest round's assignment.
    pub assignments: BTreeMap<(String, String), Assignment>,
    /// The newest time seen on the match stream: the switchboard's clock as
    /// of the last change, used to date completions that carry no time.
    pub latest_at: Option<DateTime<Utc>>,
    /// Campaign weights in force: (collective, tag) to impact factor.
    pub weights: BTreeMap<(Option<String>, Option<String>), f64>,
    /// Pairs the coordinators vetoed or pinned, as (volunteer, task).
    pub vetoed: BTreeSet<(String, String)>,
    pub pinned: BTreeSet<(String, String)>,
    /// Stream positions applied, for read-your-writes waits.
    pub events_applied: u64,
    pub matches_applied: u64,
    /// Every pledge as last offered, withdrawn ones too (for its donor's view).
    pub pledges_ever: BTreeMap<String, PledgeOffer>,
    /// Every task's title as last posted, for money views of closed tasks.
    pub task_titles: BTreeMap<String, String>,
    /// Every need and task, by the fold every service shares.
    pub book: needs_core::NeedBook,
    /// The money ledger, folded from `SB_LEDGER` by the ledger's own core.
    pub money: ledger_core::Ledger,
    /// The `SB_LEDGER` sequence of each entry of `money`'s journal.
    pub ledger_sequences: Vec<u64>,
    pub ledger_applied: u64,
}

impl ReadModel {
    /// The collective a task belongs to, done or open.
    pub fn collective_of_task(&self, task: &str) -> Option<&str> {
        let need = self.task_need.get(task)?;
        self.need_collective.get(need).map(String::as_str)
    }

    /// The task as posted, with its need, while it is open.
    pub fn open_task(&self, task: &str) -> Option<(&NeedPost, &proto::wire::TaskSpec)> {
        let need = self.needs.get(self.task_need.get(task)?)?;
        let spec = need.tasks.iter().find(|spec| spec.id == task)?;
        Some((need, spec))
    }

    /// Applies one accepted input at stream position `sequence`. Needs and
    /// tasks are read by the fold every service shares (`needs_core`); the
    /// maps the views use (`needs`, `task_need`, ...) are kept from what it
    /// says changed.
    pub fn apply_event(&mut self, event: Event, sequence: u64, now: DateTime<Utc>) {
        self.events_applied = self.events_applied.max(sequence);
        let applied = self.book.apply(&event);
        self.follow_book(&applied, now);
        match event {
            Event::VolunteerOffered(offer) => {
                self.volunteers.insert(offer.id.clone(), offer);
            }
            Event::PledgeOffered(pledge) => {
                self.pledges_ever.insert(pledge.id.clone(), pledge.clone());
                self.pledges.insert(pledge.id.clone(), pledge);
            }
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Volunteer => {
                    self.volunteers.remove(&withdrawal.id);
                }
                WithdrawKind::Pledge => {
                    self.pledges.remove(&withdrawal.id);
                }
                WithdrawKind::Need | WithdrawKind::Task => {}
            },
            Event::Steered(steering) => self.apply_steering(steering),
            // Needs and tasks: the book, above. Answers show up on the
            // match stream as their effect. Trust tiers are the solver's
            // business; the pages do not show them.
            Event::NeedPosted(_)
            | Event::TaskCompleted(_)
            | Event::AssignmentAnswered(_)
            | Event::Vetted(_) => {}
        }
    }

    /// Brings the views' maps of needs and tasks up to what the book says
    /// changed: each touched need as posted, less its tasks that are no
    /// longer open (withdrawn needs leave); completed tasks into `delivered`.
    fn follow_book(&mut self, applied: &needs_core::Applied, now: DateTime<Utc>) {
        let mut needs: BTreeSet<String> = applied.needs.iter().cloned().collect();
        for change in &applied.tasks {
            let Some(entry) = self.book.task(change.task()) else {
                continue;
            };
            let (task, need) = (change.task().to_owned(), entry.need().to_owned());
            self.task_need.insert(task.clone(), need.clone());
            self.need_collective
                .insert(need.clone(), entry.collective().to_owned());
            self.task_titles
                .insert(task.clone(), entry.spec.title.clone());
            if let needs_core::TaskChange::Completed(_) = change {
                let at = self.latest_at.unwrap_or(now);
                self.delivered.entry(task.clone()).or_insert(Delivered {
                    task,
                    title: entry.spec.title.clone(),
                    impact: entry.spec.impact,
                    hours: entry.spec.hours,
                    slots: entry.spec.slots,
                    at,
                });
            }
            needs.insert(need);
        }
        for need in needs {
            let Some(entry) = self.book.need(&need).filter(|entry| entry.open) else {
                self.needs.remove(&need);
                continue;
            };
            self.need_collective
                .insert(need.clone(), entry.collective.clone());
            let tasks = entry
                .tasks
                .iter()
                .filter_map(|task| self.book.open_task(task))
                .cloned()
                .collect();
            self.needs.insert(
                need.clone(),
                NeedPost {
                    id: need,
                    collective: entry.collective.clone(),
                    title: entry.title.clone(),
                    tasks,
                },
            );
        }
    }

    /// Keeps the coordinators' standing instructions for the dashboard; the
    /// solver is the one that obeys them.
    fn apply_steering(&mut self, steering: Steering) {
        match steering {
            Steering::Veto { volunteer, task } => {
                self.pinned.remove(&(volunteer.clone(), task.clone()));
                self.vetoed.insert((volunteer, task));
            }
            Steering::Pin { volunteer, task } => {
                self.vetoed.remove(&(volunteer.clone(), task.clone()));
                self.pinned.insert((volunteer, task));
            }
            Steering::Weight {
                collective,
                tag,
                factor,
            } => {
                // A factor of 1 is no weight at all: the campaign is over.
                if factor == 1.0 {
                    self.weights.remove(&(collective, tag));
                } else {
                    self.weights.insert((collective, tag), factor);
                }
            }
        }
    }

    /// Applies one money entry at `SB_LEDGER` position `sequence`.
    pub fn apply_ledger(&mut self, entry: &proto::money::LedgerEntry, sequence: u64) {
        self.ledger_applied = self.ledger_applied.max(sequence);
        match self.money.apply(entry) {
            Ok(ledger_core::Applied::New) => self.ledger_sequences.push(sequence),
            Ok(ledger_core::Applied::Repeat) => {}
            Err(refusal) => {
                tracing::warn!(%refusal, id = %entry.id, sequence, "a ledger entry does not apply; not shown")
            }
        }
    }

    /// Applies one change of an assignment at stream position `sequence`.
    pub fn apply_match(&mut self, event: MatchEvent, sequence: u64) {
        self.matches_applied = self.matches_applied.max(sequence);
        let (volunteer, task, round) = event.pair();
        let key = (volunteer.to_owned(), task.to_owned());
        let current_round = self.assignments.get(&key).map(|current| current.round);
        let (state, at) = match &event {
            MatchEvent::Proposed(proposal) => {
                if current_round.is_some_and(|current| current > round) {
                    return;
                }
                self.note_time(proposal.at);
                self.assignments.insert(
                    key,
                    Assignment {
                        volunteer: proposal.volunteer.clone(),
                        task: proposal.task.clone(),
                        round,
                        state: AssignmentState::Proposed,
                        why: proposal.why.clone(),
                        respond_by: proposal.respond_by,
                        at: proposal.at,
                    },
                );
                return;
            }
            // A change of an older round is history already superseded.
            _ if current_round != Some(round) => return,
            MatchEvent::Accepted(change) => (AssignmentState::Accepted, change.at),
            MatchEvent::Declined(change) => (AssignmentState::Declined, change.at),
            MatchEvent::Expired(change) => (AssignmentState::Expired, change.at),
            MatchEvent::CheckedIn(change) => (AssignmentState::CheckedIn, change.at),
            MatchEvent::Released(change) => (AssignmentState::Released, change.at),
            MatchEvent::Completed(change) => (AssignmentState::Completed, change.at),
        };
        self.note_time(at);
        if state == AssignmentState::Completed {
            // The completion's own time beats the guess made when the
            // completion event arrived without one.
            if let Some(delivered) = self.delivered.get_mut(task) {
                delivered.at = delivered.at.min(at);
            }
        }
        if let Some(assignment) = self.assignments.get_mut(&key) {
            assignment.state = state;
            assignment.at = at;
        }
    }

    fn note_time(&mut self, at: DateTime<Utc>) {
        if at > DateTime::<Utc>::UNIX_EPOCH {
            self.latest_at = Some(self.latest_at.map_or(at, |latest| latest.max(at)));
        }
    }

    /// Every assignment of one task, latest round each.
    pub fn team_of<'model>(
        &'model self,
        task: &'model str,
    ) -> impl Iterator<Item = &'model Assignment> {
        self.assignments
            .values()
            .filter(move |assignment| assignment.task == task)
    }

    /// Every assignment of one volunteer.
    pub fn assignments_of<'model>(
        &'model self,
        volunteer: &'model str,
    ) -> impl Iterator<Item = &'model Assignment> {
        self.assignments
            .range((volunteer.to_owned(), String::new())..)
            .take_while(move |((owner, _), _)| owner == volunteer)
            .map(|(_, assignment)| assignment)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proto::wire::{MatchChanged, MatchProposed, TaskCompletion, TaskSpec};

    fn at(hour: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 22, hour, 0, 0).unwrap()
    }

    fn need() -> NeedPost {
        NeedPost {
            id: "n1".into(),
            collective: "c1".into(),
            title: "Clinic".into(),
            tasks: vec![TaskSpec {
                id: "t1".into(),
                need: None,
                collective: None,
                title: "Intake".into(),
                skills: Default::default(),
                hours: 2.0,
                slots: 1,
                earliest_start: at(0),
                deadline: at(23),
                region: None,
                sensitivity: 0,
                depends_on: vec![],
                money_cents: 0,
                impact: 7.0,
                tags: vec![],
                currency: None,
                shift: None,
                place: None,
                instructions: None,
                languages: Vec::new(),
            }],
        }
    }

    fn proposal(round: u32) -> MatchEvent {
        MatchEvent::Proposed(MatchProposed {
            volunteer: "v1".into(),
            task: "t1".into(),
            need: "n1".into(),
            collective: "c1".into(),
            impact: 7.0,
            why: Why::default(),
            respond_by: at(12),
            round,
            at: at(1),
        })
    }

    fn changed(round: u32, hour: u32) -> MatchChanged {
        MatchChanged {
            volunteer: "v1".into(),
            task: "t1".into(),
            round,
            reason: None,
            handoff: None,
            at: at(hour),
        }
    }

    #[test]
    fn an_assignment_follows_its_latest_round_and_ignores_older_ones() {
        let mut model = ReadModel::default();
        model.apply_event(Event::NeedPosted(need()), 1, at(0));
        model.apply_match(proposal(1), 1);
        model.apply_match(MatchEvent::Declined(changed(1, 2)), 2);
        model.apply_match(proposal(2), 3);
        model.apply_match(MatchEvent::Accepted(changed(1, 3)), 4);
        let assignment = &model.assignments[&("v1".to_owned(), "t1".to_owned())];
        assert_eq!(
            (assignment.round, assignment.state),
            (2, AssignmentState::Proposed)
        );
        model.apply_match(MatchEvent::Accepted(changed(2, 4)), 5);
        let assignment = &model.assignments[&("v1".to_owned(), "t1".to_owned())];
        assert_eq!(assignment.state, AssignmentState::Accepted);
        assert_eq!(model.matches_applied, 5);
    }

    #[test]
    fn a_completed_task_leaves_the_open_needs_and_is_dated_by_its_completion() {
        let mut model = ReadModel::default();
        model.apply_event(Event::NeedPosted(need()), 1, at(0));
        model.apply_match(proposal(1), 1);
        model.apply_event(
            Event::TaskCompleted(TaskCompletion { task: "t1".into() }),
            2,
            at(20),
        );
        assert!(model.open_task("t1").is_none());
        assert_eq!(model.collective_of_task("t1"), Some("c1"));
        assert_eq!(model.delivered["t1"].impact, 7.0);
        model.apply_match(MatchEvent::Completed(changed(1, 0)), 2);
        assert_eq!(model.delivered["t1"].at, at(0));
    }

    #[test]
    fn impact_delivered_is_credited_to_the_task_its_collective_and_each_team_member() {
        let mut model = ReadModel::default();
        let mut two_people = need();
        two_people.tasks[0].slots = 2;
        model.apply_event(Event::NeedPosted(two_people), 1, at(0));
        model.apply_match(proposal(1), 1);
        model.apply_match(MatchEvent::Accepted(changed(1, 1)), 2);
        model.apply_event(
            Event::TaskCompleted(TaskCompletion { task: "t1".into() }),
            2,
            at(20),
        );
        model.apply_match(MatchEvent::Completed(changed(1, 5)), 3);
        let volunteer = crate::views::volunteer(&model, "v1", at(21));
        assert_eq!(volunteer.delivered.len(), 1);
        assert_eq!(volunteer.delivered[0].title, "Intake");
        assert_eq!(volunteer.impact_delivered, 3.5, "7.0 shared by a team of 2");
        assert_eq!(volunteer.hours_delivered, 2.0);
        let coordinator = crate::views::coordinator(&model, at(21), None);
        assert_eq!(coordinator.impact_by_collective["c1"], 7.0);
        let collective = crate::views::collective(&model, "c1", None);
        assert_eq!(collective.done[0].impact, 7.0);
    }
}
