//! What the ingest service must know of the world to validate input: which
//! needs, tasks, volunteers and pledges exist, who owns them, the dependency
//! graph, and the last event about each thing (for idempotent repeats).
//!
//! Built from `SB_EVENTS`; each entry remembers the sequence that last
//! changed it, so applying an event twice, or an older one after a newer
//! one, changes nothing.
//!
//! Ingest applies an event as soon as it is validated, before JetStream
//! has acknowledged it ([`View::apply_pending`], sequence
//! [`SEQUENCE_PENDING`]), so the next request is checked against it while
//! the write is still being fsynced. The acknowledged sequence replaces the
//! pending one when the ack (or the follower) brings it. A pending entry is
//! never stored, and one that is lost or overtaken makes the view
//! [`View::stale`]: ingest then reloads it from the store, which holds only
//! what was logged.

use std::collections::{HashMap, HashSet};

use petgraph::algo::{kosaraju_scc, toposort};
use petgraph::graphmap::DiGraphMap;
use proto::events::Event;
use proto::wire::{ErrorBody, ErrorCode, NeedPost, WithdrawKind};
use serde::{Deserialize, Serialize};

use plumbing::store::{Changes, Store};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Open,
    Done,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEntry {
    pub need: String,
    pub collective: String,
    pub depends_on: Vec<String>,
    pub status: Status,
    pub sequence: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeedEntry {
    pub collective: String,
    pub tasks: Vec<String>,
    pub open: bool,
    pub sequence: u64,
}

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

#[derive(Default)]
pub struct View {
    pub tasks: HashMap<String, TaskEntry>,
    pub needs: HashMap<String, NeedEntry>,
    pub volunteers: HashMap<String, OfferEntry>,
    pub pledges: HashMap<String, OfferEntry>,
    pub last_by_subject: HashMap<String, LastEvent>,
    /// A pending event was overtaken by a logged one of another message on
    /// its subject, or its write failed: the view may hold what is not in
    /// the log, and must be reloaded from the store once no write is pending.
    pub stale: bool,
}

fn refusal(code: ErrorCode, field: &str, message: String) -> ErrorBody {
    ErrorBody::new(code, Some(field.to_owned()), message)
}

impl View {
    pub fn load(store: &Store) -> anyhow::Result<View> {
        Ok(View {
            tasks: store.load(KIND_TASK)?.into_iter().collect(),
            needs: store.load(KIND_NEED)?.into_iter().collect(),
            volunteers: store.load(KIND_VOLUNTEER)?.into_iter().collect(),
            pledges: store.load(KIND_PLEDGE)?.into_iter().collect(),
            last_by_subject: store.load(KIND_LAST)?.into_iter().collect(),
            stale: false,
        })
    }

    /// The reply seq of an identical earlier request, if this is a repeat
    /// of one already logged.
    pub fn repeat_of(&self, subject: &str, message_id: &str) -> Option<u64> {
        self.last_by_subject
            .get(subject)
            .filter(|last| last.message_id == message_id && last.sequence != SEQUENCE_PENDING)
            .map(|last| last.sequence)
    }

    /// Whether the last event applied under `subject`, logged or pending,
    /// is this message: a repeat, whose effect is already in the view.
    pub fn is_last(&self, subject: &str, message_id: &str) -> bool {
        self.last_by_subject
            .get(subject)
            .is_some_and(|last| last.message_id == message_id)
    }

    /// Checks a need against the world: task ids not owned by another need,
    /// the need not owned by another collective, dependencies that exist and
    /// close no cycle.
    pub fn check_need(&self, need: &NeedPost) -> Result<(), ErrorBody> {
        if let Some(existing) = self.needs.get(&need.id) {
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
            if let Some(existing) = self.tasks.get(&task.id) {
                if existing.need != need.id {
                    return Err(refusal(
                        ErrorCode::Conflict,
                        &format!("tasks[{index}].id"),
                        format!("task {} belongs to another need", task.id),
                    ));
                }
                if existing.status == Status::Done {
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
                match self.tasks.get(dependency).map(|entry| entry.status) {
                    None => {
                        return Err(refusal(
                            ErrorCode::NotFound,
                            &field,
                            format!("no task {dependency}"),
                        ))
                    }
                    Some(Status::Cancelled) => {
                        return Err(refusal(
                            ErrorCode::NotFound,
                            &field,
                            format!("task {dependency} was cancelled"),
                        ))
                    }
                    Some(Status::Open | Status::Done) => {}
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
                    .tasks
                    .get(id)
                    .map(|entry| entry.depends_on.clone())
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
            WithdrawKind::Volunteer => self.volunteers.get(id).map(|entry| entry.open),
            WithdrawKind::Pledge => self.pledges.get(id).map(|entry| entry.open),
            WithdrawKind::Need => self.needs.get(id).map(|entry| entry.open),
            WithdrawKind::Task => self.tasks.get(id).map(|entry| entry.status == Status::Open),
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
        if self.volunteers.contains_key(volunteer) {
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
        match self.tasks.get(task).map(|entry| entry.status) {
            Some(Status::Open) => Ok(()),
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
        match self.tasks.get(task).map(|entry| entry.status) {
            Some(Status::Open) => Ok(()),
            Some(Status::Done) => Err(refusal(
                ErrorCode::Conflict,
                "task",
                format!("task {task} is already done"),
            )),
            Some(Status::Cancelled) => Err(refusal(
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
    /// changed entries in `changes`. A logged event replaces a pending one on
    /// its subject; if it is another message, the view is [`View::stale`].
    pub fn apply(
        &mut self,
        event: &Event,
        subject: &str,
        message_id: &str,
        sequence: u64,
        changes: &mut Changes,
    ) -> anyhow::Result<()> {
        debug_assert_ne!(sequence, SEQUENCE_PENDING, "a logged event has a sequence");
        let newer = match self.last_by_subject.get(subject) {
            None => true,
            Some(last) if last.sequence == SEQUENCE_PENDING => {
                if last.message_id != message_id {
                    self.stale = true;
                }
                true
            }
            Some(last) => last.sequence < sequence,
        };
        if !newer {
            return Ok(());
        }
        self.apply_at(event, subject, message_id, sequence, changes)
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
        self.apply_at(
            event,
            subject,
            message_id,
            SEQUENCE_PENDING,
            &mut Changes::default(),
        )
    }

    fn apply_at(
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
        match event {
            Event::VolunteerOffered(offer) => {
                let entry = OfferEntry {
                    open: true,
                    sequence,
                };
                changes.put(KIND_VOLUNTEER, &offer.id, &entry)?;
                self.volunteers.insert(offer.id.clone(), entry);
            }
            Event::PledgeOffered(offer) => {
                let entry = OfferEntry {
                    open: true,
                    sequence,
                };
                changes.put(KIND_PLEDGE, &offer.id, &entry)?;
                self.pledges.insert(offer.id.clone(), entry);
            }
            Event::NeedPosted(need) => {
                let posted: HashSet<&str> =
                    need.tasks.iter().map(|task| task.id.as_str()).collect();
                let dropped: Vec<String> = self
                    .needs
                    .get(&need.id)
                    .map(|previous| {
                        previous
                            .tasks
                            .iter()
                            .filter(|id| !posted.contains(id.as_str()))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                for task in &dropped {
                    self.set_status(task, Status::Cancelled, sequence, changes)?;
                }
                for task in &need.tasks {
                    let status = match self.tasks.get(&task.id).map(|entry| entry.status) {
                        Some(Status::Done) => Status::Done,
                        _ => Status::Open,
                    };
                    let entry = TaskEntry {
                        need: need.id.clone(),
                        collective: need.collective.clone(),
                        depends_on: task.depends_on.clone(),
                        status,
                        sequence,
                    };
                    changes.put(KIND_TASK, &task.id, &entry)?;
                    self.tasks.insert(task.id.clone(), entry);
                }
                let entry = NeedEntry {
                    collective: need.collective.clone(),
                    tasks: need.tasks.iter().map(|task| task.id.clone()).collect(),
                    open: true,
                    sequence,
                };
                changes.put(KIND_NEED, &need.id, &entry)?;
                self.needs.insert(need.id.clone(), entry);
            }
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Volunteer => {
                    self.close_offer(KIND_VOLUNTEER, &withdrawal.id, sequence, changes)?
                }
                WithdrawKind::Pledge => {
                    self.close_offer(KIND_PLEDGE, &withdrawal.id, sequence, changes)?
                }
                WithdrawKind::Task => {
                    self.set_status(&withdrawal.id, Status::Cancelled, sequence, changes)?
                }
                WithdrawKind::Need => {
                    if let Some(mut entry) = self.needs.get(&withdrawal.id).cloned() {
                        for task in &entry.tasks {
                            self.set_status(task, Status::Cancelled, sequence, changes)?;
                        }
                        entry.open = false;
                        entry.sequence = sequence;
                        changes.put(KIND_NEED, &withdrawal.id, &entry)?;
                        self.needs.insert(withdrawal.id.clone(), entry);
                    }
                }
            },
            Event::TaskCompleted(completion) => {
                self.set_status(&completion.task, Status::Done, sequence, changes)?
            }
            Event::AssignmentAnswered(_) | Event::Steered(_) | Event::Vetted(_) => {}
        }
        Ok(())
    }

    fn close_offer(
        &mut self,
        kind: &str,
        id: &str,
        sequence: u64,
        changes: &mut Changes,
    ) -> anyhow::Result<()> {
        let offers = if kind == KIND_VOLUNTEER {
            &mut self.volunteers
        } else {
            &mut self.pledges
        };
        let entry = OfferEntry {
            open: false,
            sequence,
        };
        changes.put(kind, id, &entry)?;
        offers.insert(id.to_owned(), entry);
        Ok(())
    }

    fn set_status(
        &mut self,
        task: &str,
        status: Status,
        sequence: u64,
        changes: &mut Changes,
    ) -> anyhow::Result<()> {
        if let Some(entry) = self.tasks.get_mut(task) {
            // Done is final: a late cancellation does not undo delivered work.
            if entry.status != Status::Done {
                entry.status = status;
            }
            entry.sequence = sequence;
            changes.put(KIND_TASK, task, entry)?;
        }
        Ok(())
    }
}

#[cfg(test)]
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
        assert_eq!(view.tasks["b"].status, Status::Cancelled);
        let stale = Event::NeedPosted(need("n1", &[("a", &[]), ("b", &[])]));
        view.apply(&stale, "sb.ev.need.n1", "m1", 3, &mut Changes::default())
            .unwrap();
        assert_eq!(view.tasks["b"].status, Status::Cancelled);
    }
}
