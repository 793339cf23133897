//! What the ingest service must know of the world to validate input: which
//! needs, tasks, volunteers and pledges exist, who owns them, the dependency
//! graph, and the last event about each thing (for idempotent repeats).
//!
//! Needs and tasks are read by the one fold every service shares
//! (`needs_core::NeedBook`); volunteers, pledges and the last event per
//! subject are ingest's own.
//!
//! Ingest applies an event as soon as it is validated, before JetStream has
//! acknowledged it ([`View::apply_pending`]), so the next request is checked
//! against it while the write is still being fsynced. So the view keeps two
//! states: what is *logged* (everything the log holds, and nothing else:
//! this is what the store keeps) and what is *current* (the logged state
//! and the writes still pending, in the order validated: what requests are
//! checked against). A logged event is applied to the logged state and, if
//! it is not one of this instance's own pending writes (already there), to
//! the current one. A pending write that fails, or a logged event that
//! overtakes one on its subject, makes the view [`View::stale`]: once no
//! write is pending, the current state is made the logged one again.

use std::collections::{HashMap, HashSet};

use needs_core::{NeedBook, NeedEntry, TaskEntry, TaskStatus};
use petgraph::algo::{kosaraju_scc, toposort};
use petgraph::graphmap::DiGraphMap;
use proto::events::Event;
use proto::wire::{ErrorBody, ErrorCode, NeedPost, WithdrawKind};
use serde::{Deserialize, Serialize};

use plumbing::store::{Changes, Store};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfferEntry {
    pub open: bool,
    pub sequence: u64,
}

/// The last event logged under one subject, so a repeated request is answered
/// with the same reply and no new event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastEvent {
    pub message_id: String,
    pub sequence: u64,
}

/// The sequence of an event applied ahead of its acknowledgement: stream
/// sequences start at 1, so no logged event has it.
pub const SEQUENCE_PENDING: u64 = 0;

const KIND_TASK: &str = "task";
const KIND_NEED: &str = "need";
const KIND_VOLUNTEER: &str = "volunteer";
const KIND_PLEDGE: &str = "pledge";
const KIND_LAST: &str = "last";

/// One state of the world as ingest sees it.
#[derive(Clone, Default)]
struct State {
    book: NeedBook,
    volunteers: HashMap<String, OfferEntry>,
    pledges: HashMap<String, OfferEntry>,
    last_by_subject: HashMap<String, LastEvent>,
}

impl State {
    /// Applies `event` under `subject`; records in `changes` every entry it
    /// touched (the caller discards them for a pending write).
    fn apply(
        &mut self,
        event: &Event,
        subject: &str,
        message_id: &str,
        sequence: u64,
        changes: &mut Changes,
    ) -> anyhow::Result<()> {
        let last = LastEvent {
            message_id: message_id.to_owned(),
            sequence,
        };
        changes.put(KIND_LAST, subject, &last)?;
        self.last_by_subject.insert(subject.to_owned(), last);
        let applied = self.book.apply(event);
        for need in &applied.needs {
            if let Some(entry) = self.book.need(need) {
                changes.put(KIND_NEED, need, entry)?;
            }
        }
        for change in &applied.tasks {
            if let Some(entry) = self.book.task(change.task()) {
                changes.put(KIND_TASK, change.task(), entry)?;
            }
        }
        let offer = |open: bool| OfferEntry { open, sequence };
        let (kind, id, entry) = match event {
            Event::VolunteerOffered(offer_made) => (KIND_VOLUNTEER, &offer_made.id, offer(true)),
            Event::PledgeOffered(offer_made) => (KIND_PLEDGE, &offer_made.id, offer(true)),
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Volunteer => (KIND_VOLUNTEER, &withdrawal.id, offer(false)),
                WithdrawKind::Pledge => (KIND_PLEDGE, &withdrawal.id, offer(false)),
                WithdrawKind::Need | WithdrawKind::Task => return Ok(()),
            },
            Event::NeedPosted(_)
            | Event::TaskCompleted(_)
            | Event::AssignmentAnswered(_)
            | Event::Steered(_)
            | Event::Vetted(_) => return Ok(()),
        };
        changes.put(kind, id, &entry)?;
        let offers = if kind == KIND_VOLUNTEER {
            &mut self.volunteers
        } else {
            &mut self.pledges
        };
        offers.insert(id.clone(), entry);
        Ok(())
    }
}

#[derive(Default)]
pub struct View {
    /// What the log holds: the store's contents.
    logged: State,
    /// The logged state and the pending writes: what requests are checked against.
    current: State,
    /// The current state may hold what is not in the log (a write failed or
    /// was overtaken): it must be made the logged one again once no write
    /// is pending.
    pub stale: bool,
}

fn refusal(code: ErrorCode, field: &str, message: String) -> ErrorBody {
    ErrorBody::new(code, Some(field.to_owned()), message)
}

impl View {
    pub fn load(store: &Store) -> anyhow::Result<View> {
        let state = State {
            book: NeedBook::from_entries(
                store.load::<NeedEntry>(KIND_NEED)?,
                store.load::<TaskEntry>(KIND_TASK)?,
            ),
            volunteers: store.load(KIND_VOLUNTEER)?.into_iter().collect(),
            pledges: store.load(KIND_PLEDGE)?.into_iter().collect(),
            last_by_subject: store.load(KIND_LAST)?.into_iter().collect(),
        };
        Ok(View {
            logged: state.clone(),
            current: state,
            stale: false,
        })
    }

    /// Forgets every pending write: the current state becomes the logged one.
    pub fn reset_to_logged(&mut self) {
        self.current = self.logged.clone();
        self.stale = false;
    }

    /// The reply seq of an identical earlier request, if this is a repeat
    /// of one already logged.
    pub fn repeat_of(&self, subject: &str, message_id: &str) -> Option<u64> {
        self.current
            .last_by_subject
            .get(subject)
            .filter(|last| last.message_id == message_id && last.sequence != SEQUENCE_PENDING)
            .map(|last| last.sequence)
    }

    /// Whether the last event applied under `subject`, logged or pending,
    /// is this message: a repeat, whose effect is already in the view.
    pub fn is_last(&self, subject: &str, message_id: &str) -> bool {
        self.current
            .last_by_subject
            .get(subject)
            .is_some_and(|last| last.message_id == message_id)
    }

    /// A task as the current state has it.
    pub fn task(&self, task: &str) -> Option<&TaskEntry> {
        self.current.book.task(task)
    }

    fn task_status(&self, task: &str) -> Option<TaskStatus> {
        self.task(task).map(|entry| entry.status)
    }

    /// Checks a need against the world: task ids not owned by another need,
    /// the need not owned by another collective, dependencies that exist and
    /// close no cycle.
    pub fn check_need(&self, need: &NeedPost) -> Result<(), ErrorBody> {
        if let Some(existing) = self.current.book.need(&need.id) {
            if existing.collective != need.collective {
                return Err(refusal(
                    ErrorCode::Conflict,
                    "collective",
                    format!("need {} belongs to another collective", need.id),
                ));
            }
            if !existing.open {
                return Err(refusal(
                    ErrorCode::Conflict,
                    "id",
                    format!("need {} was withdrawn; post it under a new id", need.id),
                ));
            }
        }
        let own: HashSet<&str> = need.tasks.iter().map(|task| task.id.as_str()).collect();
        for (index, task) in need.tasks.iter().enumerate() {
            if let Some(existing) = self.task(&task.id) {
                if existing.need() != need.id {
                    return Err(refusal(
                        ErrorCode::Conflict,
                        &format!("tasks[{index}].id"),
                        format!("task {} belongs to another need", task.id),
                    ));
                }
                if existing.status == TaskStatus::Done {
                    return Err(refusal(
                        ErrorCode::Conflict,
                        &format!("tasks[{index}].id"),
                        format!("task {} is already done", task.id),
                    ));
                }
            }
            for (position, dependency) in task.depends_on.iter().enumerate() {
                if own.contains(dependency.as_str()) {
                    continue;
                }
                let field = format!("tasks[{index}].depends_on[{position}]");
                match self.task_status(dependency) {
                    None => {
                        return Err(refusal(
                            ErrorCode::NotFound,
                            &field,
                            format!("no task {dependency}"),
                        ))
                    }
                    Some(TaskStatus::Cancelled) => {
                        return Err(refusal(
                            ErrorCode::NotFound,
                            &field,
                            format!("task {dependency} was cancelled"),
                        ))
                    }
                    Some(TaskStatus::Open | TaskStatus::Done) => {}
                }
            }
        }
        self.check_acyclic(need)
    }

    /// A new cycle must run through the posted tasks, so only the part of the
    /// graph reachable from them is built.
    fn check_acyclic(&self, need: &NeedPost) -> Result<(), ErrorBody> {
        let posted: HashMap<&str, &Vec<String>> = need
            .tasks
            .iter()
            .map(|task| (task.id.as_str(), &task.depends_on))
            .collect();
        let dependencies_of = |id: &str| -> Vec<String> {
            match posted.get(id) {
                Some(dependencies) => (*dependencies).clone(),
                None => self
                    .task(id)
                    .map(|entry| entry.spec.depends_on.clone())
                    .unwrap_or_default(),
            }
        };
        let mut names: Vec<String> = Vec::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        let mut graph: DiGraphMap<usize, ()> = DiGraphMap::new();
        let mut pending: Vec<String> = need.tasks.iter().map(|task| task.id.clone()).collect();
        let mut intern = |name: &str, names: &mut Vec<String>| -> usize {
            *index_of.entry(name.to_owned()).or_insert_with(|| {
                names.push(name.to_owned());
                names.len() - 1
            })
        };
        let mut visited: HashSet<String> = HashSet::new();
        while let Some(id) = pending.pop() {
            if !visited.insert(id.clone()) {
                continue;
            }
            let from = intern(&id, &mut names);
            graph.add_node(from);
            for dependency in dependencies_of(&id) {
                let to = intern(&dependency, &mut names);
                graph.add_edge(from, to, ());
                pending.push(dependency);
            }
        }
        if toposort(&graph, None).is_ok() {
            return Ok(());
        }
        let cycle = kosaraju_scc(&graph)
            .into_iter()
            .find(|component| component.len() > 1)
            .unwrap_or_default();
        let in_cycle: HashSet<&str> = cycle.iter().map(|&node| names[node].as_str()).collect();
        let index = need
            .tasks
            .iter()
            .position(|task| in_cycle.contains(task.id.as_str()))
            .unwrap_or(0);
        let mut members: Vec<&str> = in_cycle.into_iter().collect();
        members.sort_unstable();
        Err(refusal(
            ErrorCode::Invalid,
            &format!("tasks[{index}].depends_on"),
            format!("dependencies form a cycle through {}", members.join(", ")),
        ))
    }

    /// Checks that a withdrawal names something open.
    pub fn check_withdrawal(&self, kind: WithdrawKind, id: &str) -> Result<(), ErrorBody> {
        let open = match kind {
            WithdrawKind::Volunteer => self.current.volunteers.get(id).map(|entry| entry.open),
            WithdrawKind::Pledge => self.current.pledges.get(id).map(|entry| entry.open),
            WithdrawKind::Need => self.current.book.need(id).map(|entry| entry.open),
            WithdrawKind::Task => self
                .task_status(id)
                .map(|status| status == TaskStatus::Open),
        };
        match open {
            Some(true) => Ok(()),
            Some(false) => Err(refusal(
                ErrorCode::Conflict,
                "id",
                format!("{} {id} is no longer open", kind.token()),
            )),
            None => Err(refusal(
                ErrorCode::NotFound,
                "id",
                format!("no {} {id}", kind.token()),
            )),
        }
    }

    /// Checks that a vetter vets someone who has offered time (even if they
    /// have since withdrawn: a revocation must always be possible).
    pub fn check_volunteer(&self, volunteer: &str) -> Result<(), ErrorBody> {
        if self.current.volunteers.contains_key(volunteer) {
            Ok(())
        } else {
            Err(refusal(
                ErrorCode::NotFound,
                "volunteer",
                format!("no volunteer {volunteer}"),
            ))
        }
    }

    /// Checks that a coordinator steers a pair of a known volunteer and an open task.
    pub fn check_pair(&self, volunteer: &str, task: &str) -> Result<(), ErrorBody> {
        if !self
            .current
            .volunteers
            .get(volunteer)
            .is_some_and(|entry| entry.open)
        {
            return Err(refusal(
                ErrorCode::NotFound,
                "volunteer",
                format!("no volunteer {volunteer}"),
            ));
        }
        match self.task_status(task) {
            Some(TaskStatus::Open) => Ok(()),
            Some(_) => Err(refusal(
                ErrorCode::Conflict,
                "task",
                format!("task {task} is no longer open"),
            )),
            None => Err(refusal(
                ErrorCode::NotFound,
                "task",
                format!("no task {task}"),
            )),
        }
    }

    pub fn check_completion(&self, task: &str) -> Result<(), ErrorBody> {
        match self.task_status(task) {
            Some(TaskStatus::Open) => Ok(()),
            Some(TaskStatus::Done) => Err(refusal(
                ErrorCode::Conflict,
                "task",
                format!("task {task} is already done"),
            )),
            Some(TaskStatus::Cancelled) => Err(refusal(
                ErrorCode::Conflict,
                "task",
                format!("task {task} was cancelled"),
            )),
            None => Err(refusal(
                ErrorCode::NotFound,
                "task",
                format!("no task {task}"),
            )),
        }
    }

    /// Applies an event logged at `sequence` under `subject` and records the
    /// entries it changed in `changes`, for the store. An event older than
    /// the last logged on its subject changes nothing. A logged event that
    /// is this instance's own pending write is already in the current
    /// state; one that is another message on a subject with a pending write
    /// overtook it, and makes the view [`View::stale`].
    pub fn apply(
        &mut self,
        event: &Event,
        subject: &str,
        message_id: &str,
        sequence: u64,
        changes: &mut Changes,
    ) -> anyhow::Result<()> {
        debug_assert_ne!(sequence, SEQUENCE_PENDING, "a logged event has a sequence");
        if self
            .logged
            .last_by_subject
            .get(subject)
            .is_some_and(|last| last.sequence >= sequence)
        {
            return Ok(());
        }
        self.logged
            .apply(event, subject, message_id, sequence, changes)?;
        match self.current.last_by_subject.get_mut(subject) {
            // This instance's own write, pending or acknowledged: already applied.
            Some(last)
                if last.message_id == message_id
                    && (last.sequence == SEQUENCE_PENDING || last.sequence == sequence) =>
            {
                last.sequence = sequence;
            }
            Some(last) if last.sequence == SEQUENCE_PENDING => self.stale = true,
            _ => self.current.apply(
                event,
                subject,
                message_id,
                sequence,
                &mut Changes::default(),
            )?,
        }
        Ok(())
    }

    /// Records that this instance's pending write under `subject` was
    /// logged at `sequence`, so a repeat of it is answered with that
    /// sequence. The logged state learns of it from the follower, in the
    /// log's order.
    pub fn acknowledged(&mut self, subject: &str, message_id: &str, sequence: u64) {
        if let Some(last) = self.current.last_by_subject.get_mut(subject) {
            if last.message_id == message_id && last.sequence == SEQUENCE_PENDING {
                last.sequence = sequence;
            }
        }
    }

    /// Applies a validated event whose write is not yet acknowledged, so the
    /// requests after it are checked against it. Nothing of it is stored:
    /// [`View::apply`] with its sequence follows once it is logged.
    pub fn apply_pending(
        &mut self,
        event: &Event,
        subject: &str,
        message_id: &str,
    ) -> anyhow::Result<()> {
        self.current.apply(
            event,
            subject,
            message_id,
            SEQUENCE_PENDING,
            &mut Changes::default(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn need(id: &str, tasks: &[(&str, &[&str])]) -> NeedPost {
        let tasks = tasks
            .iter()
            .map(|(task, dependencies)| {
                serde_json::from_value(serde_json::json!({
                    "id": task, "title": "t", "hours": 1.0, "slots": 1,
                    "earliest_start": "2026-11-22T00:00:00Z", "deadline": "2026-11-29T00:00:00Z",
                    "impact": 1.0, "depends_on": dependencies,
                }))
                .unwrap()
            })
            .collect();
        NeedPost {
            id: id.into(),
            collective: "c1".into(),
            title: "need".into(),
            tasks,
        }
    }

    fn posted(view: &mut View, need: NeedPost, sequence: u64) {
        let event = Event::NeedPosted(need);
        view.apply(
            &event,
            &format!("n{sequence}"),
            "m",
            sequence,
            &mut Changes::default(),
        )
        .unwrap();
    }

    #[test]
    fn a_dependency_on_an_unknown_task_is_not_found_at_its_field() {
        let view = View::default();
        let error = view
            .check_need(&need("n1", &[("a", &[]), ("b", &["zzz"])]))
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::NotFound);
        assert_eq!(error.field.as_deref(), Some("tasks[1].depends_on[0]"));
    }

    #[test]
    fn a_cycle_through_an_existing_need_is_refused() {
        let mut view = View::default();
        posted(&mut view, need("n1", &[("a", &[]), ("b", &["a"])]), 1);
        // Updating n1 so that a depends on c, which depends on b, closes a→c→b→a.
        posted(&mut view, need("n2", &[("c", &["b"])]), 2);
        let error = view
            .check_need(&need("n1", &[("a", &["c"]), ("b", &["a"])]))
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::Invalid);
        assert!(error.message.contains("cycle"), "{}", error.message);
        assert!(view.check_need(&need("n3", &[("d", &["b", "c"])])).is_ok());
    }

    #[test]
    fn a_task_id_owned_by_another_need_is_a_conflict() {
        let mut view = View::default();
        posted(&mut view, need("n1", &[("a", &[])]), 1);
        let error = view
            .check_need(&need("n2", &[("x", &[]), ("a", &[])]))
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::Conflict);
        assert_eq!(error.field.as_deref(), Some("tasks[1].id"));
    }

    #[test]
    fn a_task_left_out_of_an_update_is_cancelled_and_an_old_event_changes_nothing() {
        let mut view = View::default();
        posted(&mut view, need("n1", &[("a", &[]), ("b", &[])]), 1);
        let update = Event::NeedPosted(need("n1", &[("a", &[])]));
        view.apply(&update, "sb.ev.need.n1", "m2", 5, &mut Changes::default())
            .unwrap();
        assert_eq!(view.task("b").unwrap().status, TaskStatus::Cancelled);
        let stale = Event::NeedPosted(need("n1", &[("a", &[]), ("b", &[])]));
        view.apply(&stale, "sb.ev.need.n1", "m1", 3, &mut Changes::default())
            .unwrap();
        assert_eq!(view.task("b").unwrap().status, TaskStatus::Cancelled);
    }

    #[test]
    fn the_store_gets_only_what_is_logged_and_a_failed_write_leaves_the_logged_state() {
        let mut view = View::default();
        posted(&mut view, need("n1", &[("a", &[]), ("b", &[])]), 1);
        // Validated and pending: the next request is checked against it...
        let update = Event::NeedPosted(need("n1", &[("a", &[])]));
        view.apply_pending(&update, "sb.ev.need.n1", "m2").unwrap();
        assert_eq!(view.task("b").unwrap().status, TaskStatus::Cancelled);
        // ...and once logged, the store is told what it changed: the task it
        // left out, though the current state already had it cancelled.
        let mut changes = Changes::default();
        view.apply(&update, "sb.ev.need.n1", "m2", 2, &mut changes)
            .unwrap();
        assert!(!changes.is_empty());
        assert!(!view.stale);
        // A pending write that fails is forgotten when the view is reset.
        let withdrawal = Event::Withdrawn(proto::wire::Withdrawal {
            kind: WithdrawKind::Task,
            id: "a".into(),
        });
        view.apply_pending(&withdrawal, "sb.ev.withdraw.task.a", "m3")
            .unwrap();
        assert_eq!(view.task("a").unwrap().status, TaskStatus::Cancelled);
        view.reset_to_logged();
        assert_eq!(view.task("a").unwrap().status, TaskStatus::Open);
    }

    #[test]
    fn a_logged_write_of_another_instance_over_a_pending_one_makes_the_view_stale() {
        let mut view = View::default();
        posted(&mut view, need("n1", &[("a", &[])]), 1);
        let mine = Event::NeedPosted(need("n1", &[("a", &[]), ("b", &[])]));
        view.apply_pending(&mine, "sb.ev.need.n1", "mine").unwrap();
        let theirs = Event::NeedPosted(need("n1", &[("a", &[]), ("c", &[])]));
        view.apply(
            &theirs,
            "sb.ev.need.n1",
            "theirs",
            2,
            &mut Changes::default(),
        )
        .unwrap();
        assert!(view.stale);
        view.reset_to_logged();
        assert!(view.task("c").is_some_and(TaskEntry::is_open));
        assert!(view.task("b").is_none());
    }
}
