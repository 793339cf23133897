//! The one reading of needs and tasks in `SB_EVENTS`.
//!
//! Every service that knows about tasks (ingest validates against them, the
//! solver plans them, the ledger holds money for them, the gateway shows
//! them) builds on this fold, so no two of them can read the same event
//! differently. The rules:
//!
//! - Posting a need (`NeedPosted`) again with the same id updates it: each
//!   task it lists is (re)opened with the spec as posted, `need` and
//!   `collective` taken from the need; a task the earlier version listed and
//!   this one leaves out is cancelled.
//! - Withdrawing a task cancels it; withdrawing a need cancels all its tasks
//!   and closes the need. Posting it again reopens what it lists.
//! - Completing a task makes it done, and done is final: no later post,
//!   withdrawal or cancellation undoes delivered work (a later post still
//!   updates its spec, which done work no longer uses for planning).
//! - An event about a task or need nobody posted changes nothing.
//!
//! Applying an event twice changes nothing the second time, so a service
//! may apply a write ahead of its acknowledgement and again once it is
//! logged. No I/O: [`NeedBook::apply`] says what changed, and the service
//! keeps it (in its store, its indexes) as it likes.

use std::collections::{BTreeMap, HashSet};

use proto::events::Event;
use proto::wire::{NeedPost, TaskSpec, WithdrawKind};
use serde::{Deserialize, Serialize};

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    /// Posted and neither done nor cancelled: work to plan.
    Open,
    /// Done: final.
    Done,
    /// Left out of its need's update, withdrawn, or its need withdrawn.
    Cancelled,
}

/// A task as last posted, and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEntry {
    /// The spec as posted, with `need` and `collective` filled in.
    pub spec: TaskSpec,
    pub status: TaskStatus,
}

impl TaskEntry {
    /// The need that posted it.
    pub fn need(&self) -> &str {
        self.spec.need.as_deref().unwrap_or_default()
    }

    /// The collective that posted it.
    pub fn collective(&self) -> &str {
        self.spec.collective.as_deref().unwrap_or_default()
    }

    pub fn is_open(&self) -> bool {
        self.status == TaskStatus::Open
    }
}

/// A need as last posted: its tasks by id, in the order posted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeedEntry {
    pub collective: String,
    pub title: String,
    pub tasks: Vec<String>,
    /// False once withdrawn (until posted again).
    pub open: bool,
}

/// What happened to one task when an event was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskChange {
    /// Posted new, updated while open, or reopened: open now, with this spec.
    Opened(String),
    /// Was open, now cancelled.
    Cancelled(String),
    /// Was open or cancelled, now done.
    Completed(String),
    /// Posted again while done: its spec changed, its status did not.
    UpdatedWhileDone(String),
}

impl TaskChange {
    pub fn task(&self) -> &str {
        match self {
            TaskChange::Opened(task)
            | TaskChange::Cancelled(task)
            | TaskChange::Completed(task)
            | TaskChange::UpdatedWhileDone(task) => task,
        }
    }
}

/// What one event changed: the tasks, in the order changed, and the needs
/// whose entry changed. A service writes exactly these entries to its store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub tasks: Vec<TaskChange>,
    pub needs: Vec<String>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.needs.is_empty()
    }
}

/// Every need and task ever posted, as the log says they stand.
#[derive(Clone, Debug, Default)]
pub struct NeedBook {
    needs: BTreeMap<String, NeedEntry>,
    tasks: BTreeMap<String, TaskEntry>,
}

impl NeedBook {
    /// A book from entries kept earlier (a service's store).
    pub fn from_entries(
        needs: impl IntoIterator<Item = (String, NeedEntry)>,
        tasks: impl IntoIterator<Item = (String, TaskEntry)>,
    ) -> NeedBook {
        NeedBook {
            needs: needs.into_iter().collect(),
            tasks: tasks.into_iter().collect(),
        }
    }

    pub fn task(&self, id: &str) -> Option<&TaskEntry> {
        self.tasks.get(id)
    }

    pub fn need(&self, id: &str) -> Option<&NeedEntry> {
        self.needs.get(id)
    }

    /// The spec of a task while it is open.
    pub fn open_task(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks
            .get(id)
            .filter(|entry| entry.is_open())
            .map(|entry| &entry.spec)
    }

    /// Every task ever posted, by id.
    pub fn tasks(&self) -> impl Iterator<Item = (&String, &TaskEntry)> {
        self.tasks.iter()
    }

    /// Every open task's spec, in id order.
    pub fn open_tasks(&self) -> impl Iterator<Item = &TaskSpec> {
        self.tasks
            .values()
            .filter(|entry| entry.is_open())
            .map(|entry| &entry.spec)
    }

    /// Every need ever posted, by id.
    pub fn needs(&self) -> impl Iterator<Item = (&String, &NeedEntry)> {
        self.needs.iter()
    }

    pub fn is_done(&self, task: &str) -> bool {
        self.tasks
            .get(task)
            .is_some_and(|entry| entry.status == TaskStatus::Done)
    }

    /// Applies one logged (or about to be logged) input; the other kinds of
    /// event change nothing here.
    pub fn apply(&mut self, event: &Event) -> Applied {
        let mut applied = Applied::default();
        match event {
            Event::NeedPosted(need) => self.post(need, &mut applied),
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Task => {
                    self.set_status(&withdrawal.id, TaskStatus::Cancelled, &mut applied)
                }
                WithdrawKind::Need => self.withdraw_need(&withdrawal.id, &mut applied),
                WithdrawKind::Volunteer | WithdrawKind::Pledge => {}
            },
            Event::TaskCompleted(completion) => {
                self.set_status(&completion.task, TaskStatus::Done, &mut applied)
            }
            Event::VolunteerOffered(_)
            | Event::PledgeOffered(_)
            | Event::AssignmentAnswered(_)
            | Event::Steered(_)
            | Event::Vetted(_) => {}
        }
        applied
    }

    fn post(&mut self, need: &NeedPost, applied: &mut Applied) {
        let posted: HashSet<&str> = need.tasks.iter().map(|task| task.id.as_str()).collect();
        let left_out: Vec<String> = self
            .needs
            .get(&need.id)
            .map(|previous| {
                previous
                    .tasks
                    .iter()
                    .filter(|task| !posted.contains(task.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for task in &left_out {
            // Only a task this need still owns is its to cancel.
            if self
                .tasks
                .get(task)
                .is_some_and(|entry| entry.need() == need.id)
            {
                self.set_status(task, TaskStatus::Cancelled, applied);
            }
        }
        for task in &need.tasks {
            let mut spec = task.clone();
            spec.need = Some(need.id.clone());
            spec.collective = Some(need.collective.clone());
            match self.tasks.get_mut(&task.id) {
                Some(entry) if entry.status == TaskStatus::Done => {
                    if entry.spec != spec {
                        entry.spec = spec;
                        applied
                            .tasks
                            .push(TaskChange::UpdatedWhileDone(task.id.clone()));
                    }
                }
                Some(entry) if entry.status == TaskStatus::Open && entry.spec == spec => {}
                Some(entry) => {
                    entry.spec = spec;
                    entry.status = TaskStatus::Open;
                    applied.tasks.push(TaskChange::Opened(task.id.clone()));
                }
                None => {
                    self.tasks.insert(
                        task.id.clone(),
                        TaskEntry {
                            spec,
                            status: TaskStatus::Open,
                        },
                    );
                    applied.tasks.push(TaskChange::Opened(task.id.clone()));
                }
            }
        }
        let entry = NeedEntry {
            collective: need.collective.clone(),
            title: need.title.clone(),
            tasks: need.tasks.iter().map(|task| task.id.clone()).collect(),
            open: true,
        };
        if self.needs.get(&need.id) != Some(&entry) {
            self.needs.insert(need.id.clone(), entry);
            applied.needs.push(need.id.clone());
        }
    }

    fn withdraw_need(&mut self, need: &str, applied: &mut Applied) {
        let Some(entry) = self.needs.get(need) else {
            return;
        };
        let tasks = entry.tasks.clone();
        for task in &tasks {
            if self
                .tasks
                .get(task)
                .is_some_and(|entry| entry.need() == need)
            {
                self.set_status(task, TaskStatus::Cancelled, applied);
            }
        }
        if let Some(entry) = self.needs.get_mut(need) {
            if entry.open {
                entry.open = false;
                applied.needs.push(need.to_owned());
            }
        }
    }

    fn set_status(&mut self, task: &str, status: TaskStatus, applied: &mut Applied) {
        let Some(entry) = self.tasks.get_mut(task) else {
            return;
        };
        // Done is final: a late cancellation does not undo delivered work.
        if entry.status == TaskStatus::Done || entry.status == status {
            return;
        }
        entry.status = status;
        applied.tasks.push(match status {
            TaskStatus::Done => TaskChange::Completed(task.to_owned()),
            TaskStatus::Cancelled => TaskChange::Cancelled(task.to_owned()),
            TaskStatus::Open => TaskChange::Opened(task.to_owned()),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proto::wire::{TaskCompletion, Withdrawal};

    fn task(id: &str, impact: f64) -> TaskSpec {
        serde_json::from_value(serde_json::json!({
            "id": id, "title": id, "hours": 2.0, "slots": 1,
            "earliest_start": "2026-12-01T00:00:00Z", "deadline": "2026-12-10T00:00:00Z",
            "impact": impact,
        }))
        .unwrap()
    }

    fn need(id: &str, tasks: &[(&str, f64)]) -> Event {
        Event::NeedPosted(NeedPost {
            id: id.to_owned(),
            collective: "c-pantry".to_owned(),
            title: format!("need {id}"),
            tasks: tasks.iter().map(|(id, impact)| task(id, *impact)).collect(),
        })
    }

    fn withdraw(kind: WithdrawKind, id: &str) -> Event {
        Event::Withdrawn(Withdrawal {
            kind,
            id: id.to_owned(),
        })
    }

    fn complete(task: &str) -> Event {
        Event::TaskCompleted(TaskCompletion {
            task: task.to_owned(),
        })
    }

    fn open_ids(book: &NeedBook) -> Vec<&str> {
        book.open_tasks().map(|spec| spec.id.as_str()).collect()
    }

    #[test]
    fn a_posted_need_opens_its_tasks_with_need_and_collective_filled_in() {
        let mut book = NeedBook::default();
        let applied = book.apply(&need("n1", &[("t1", 3.0), ("t2", 5.0)]));
        assert_eq!(
            applied.tasks,
            vec![
                TaskChange::Opened("t1".into()),
                TaskChange::Opened("t2".into())
            ]
        );
        assert_eq!(applied.needs, vec!["n1".to_owned()]);
        let entry = book.task("t2").unwrap();
        assert_eq!(entry.need(), "n1");
        assert_eq!(entry.collective(), "c-pantry");
        assert_eq!(open_ids(&book), vec!["t1", "t2"]);
    }

    #[test]
    fn a_task_left_out_of_an_update_is_cancelled_and_posting_it_again_reopens_it() {
        let mut book = NeedBook::default();
        book.apply(&need("n1", &[("t1", 3.0), ("t2", 5.0)]));
        let applied = book.apply(&need("n1", &[("t1", 3.0)]));
        assert_eq!(applied.tasks, vec![TaskChange::Cancelled("t2".into())]);
        assert_eq!(book.task("t2").unwrap().status, TaskStatus::Cancelled);
        let applied = book.apply(&need("n1", &[("t1", 3.0), ("t2", 5.0)]));
        assert_eq!(applied.tasks, vec![TaskChange::Opened("t2".into())]);
        assert_eq!(open_ids(&book), vec!["t1", "t2"]);
    }

    #[test]
    fn an_update_that_changes_a_spec_reopens_it_with_the_new_spec_and_an_identical_one_changes_nothing(
    ) {
        let mut book = NeedBook::default();
        book.apply(&need("n1", &[("t1", 3.0)]));
        assert!(book.apply(&need("n1", &[("t1", 3.0)])).is_empty());
        let applied = book.apply(&need("n1", &[("t1", 9.0)]));
        assert_eq!(applied.tasks, vec![TaskChange::Opened("t1".into())]);
        assert_eq!(book.open_task("t1").unwrap().impact, 9.0);
    }

    #[test]
    fn done_is_final_whatever_comes_later() {
        let mut book = NeedBook::default();
        book.apply(&need("n1", &[("t1", 3.0), ("t2", 5.0)]));
        assert_eq!(
            book.apply(&complete("t1")).tasks,
            vec![TaskChange::Completed("t1".into())]
        );
        assert!(book.apply(&withdraw(WithdrawKind::Task, "t1")).is_empty());
        book.apply(&withdraw(WithdrawKind::Need, "n1"));
        assert!(book.is_done("t1"));
        assert_eq!(book.task("t2").unwrap().status, TaskStatus::Cancelled);
        let applied = book.apply(&need("n1", &[("t1", 4.0), ("t2", 5.0)]));
        assert_eq!(
            applied.tasks,
            vec![
                TaskChange::UpdatedWhileDone("t1".into()),
                TaskChange::Opened("t2".into())
            ]
        );
        assert!(book.is_done("t1"));
        assert_eq!(open_ids(&book), vec!["t2"]);
    }

    #[test]
    fn withdrawing_a_need_cancels_its_tasks_and_closes_it_until_it_is_posted_again() {
        let mut book = NeedBook::default();
        book.apply(&need("n1", &[("t1", 3.0)]));
        let applied = book.apply(&withdraw(WithdrawKind::Need, "n1"));
        assert_eq!(applied.tasks, vec![TaskChange::Cancelled("t1".into())]);
        assert_eq!(applied.needs, vec!["n1".to_owned()]);
        assert!(!book.need("n1").unwrap().open);
        assert!(open_ids(&book).is_empty());
        book.apply(&need("n1", &[("t1", 3.0)]));
        assert!(book.need("n1").unwrap().open);
        assert_eq!(open_ids(&book), vec!["t1"]);
    }

    #[test]
    fn events_about_what_nobody_posted_change_nothing_and_every_event_applies_idempotently() {
        let mut book = NeedBook::default();
        assert!(book.apply(&complete("ghost")).is_empty());
        assert!(book
            .apply(&withdraw(WithdrawKind::Need, "ghost"))
            .is_empty());
        assert!(book.task("ghost").is_none());
        let events = [
            need("n1", &[("t1", 3.0), ("t2", 5.0)]),
            withdraw(WithdrawKind::Task, "t2"),
            complete("t1"),
            need("n2", &[("t3", 1.0)]),
            withdraw(WithdrawKind::Need, "n2"),
        ];
        let mut twice = NeedBook::default();
        for event in &events {
            book.apply(event);
            twice.apply(event);
            assert!(twice.apply(event).is_empty(), "{event:?} changed twice");
        }
        assert_eq!(
            book.tasks().collect::<Vec<_>>(),
            twice.tasks().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_book_rebuilt_from_its_entries_reads_the_same() {
        let mut book = NeedBook::default();
        book.apply(&need("n1", &[("t1", 3.0), ("t2", 5.0)]));
        book.apply(&complete("t2"));
        let rebuilt = NeedBook::from_entries(
            book.needs().map(|(id, need)| (id.clone(), need.clone())),
            book.tasks().map(|(id, task)| (id.clone(), task.clone())),
        );
        assert_eq!(open_ids(&rebuilt), vec!["t1"]);
        assert!(rebuilt.is_done("t2"));
        assert_eq!(rebuilt.need("n1"), book.need("n1"));
    }
}
