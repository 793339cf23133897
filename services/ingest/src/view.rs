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

/// The last event about one thing (a volunteer, a pledge, a need and its
/// tasks, a steering pair...), logged or pending: a request that says the
/// same again is a repeat, answered with the same reply and no new event;
/// anything else about it is a new update, however much it resembles an
/// older one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastEvent {
    /// The `Nats-Msg-Id` it was written with.
    pub message_id: String,
    /// What it says (`Event::content_hash`).
    pub content: String,
    /// Its sequence, or [`SEQUENCE_PENDING`] until it is logged.
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
const KIND_SUBJECT: &str = "subject";
/// The one key of the last sequence of every need post, together.
const NEED_POSTS: &str = "need-posts";

/// One state of the world as ingest sees it.
#[derive(Clone, Default)]
struct State {
    book: NeedBook,
    volunteers: HashMap<String, OfferEntry>,
    pledges: HashMap<String, OfferEntry>,
    /// By entity key ([`View::entity_of`]).
    last_by_entity: HashMap<String, LastEvent>,
    /// The last logged sequence of each subject, and (under
    /// [`NEED_POSTS`]) of every need post together: what a write is
    /// conditional on.
    subject_sequences: HashMap<String, u64>,
}

impl State {
    /// Applies `event` under `subject`; records in `changes` every entry it
    /// touched (the caller discards them for a pending write).
    fn apply(
        &mut self,
        event: &Event,
        written: &Written,
        sequence: u64,
        changes: &mut Changes,
    ) -> anyhow::Result<()> {
        let last = LastEvent {
            message_id: written.message_id.clone(),
            content: written.content.clone(),
            sequence,
        };
        changes.put(KIND_LAST, &written.entity, &last)?;
        self.last_by_entity.insert(written.entity.clone(), last);
        if sequence != SEQUENCE_PENDING {
            changes.put(KIND_SUBJECT, &written.subject, &sequence)?;
            self.subject_sequences
                .insert(written.subject.clone(), sequence);
            if matches!(event, Event::NeedPosted(_)) {
                changes.put(KIND_SUBJECT, NEED_POSTS, &sequence)?;
                self.subject_sequences
                    .insert(NEED_POSTS.to_owned(), sequence);
            }
        }
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

/// How one event is written: under which subject, about which entity, with
/// which message id, saying what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub subject: String,
    /// [`View::entity_of`].
    pub entity: String,
    pub message_id: String,
    /// `Event::content_hash`.
    pub content: String,
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
    /// Writes pending per entity, and pending need posts: a request about
    /// an entity with a write pending waits for it (its write is
    /// conditional on what that one leaves).
    pending_entities: HashMap<String, usize>,
    pending_need_posts: usize,
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
            last_by_entity: store.load(KIND_LAST)?.into_iter().collect(),
            subject_sequences: store.load(KIND_SUBJECT)?.into_iter().collect(),
        };
        Ok(View {
            logged: state.clone(),
            current: state,
            ..View::default()
        })
    }

    /// Forgets every pending write: the current state becomes the logged one.
    pub fn reset_to_logged(&mut self) {
        self.current = self.logged.clone();
        self.stale = false;
        self.pending_entities.clear();
        self.pending_need_posts = 0;
    }

    /// The thing an event is about, for telling a repeat from an update: a
    /// volunteer's offers and withdrawal are about the volunteer, a
    /// pledge's likewise, a need's posts and withdrawal and its tasks'
    /// withdrawals and completions are about the need; anything else is
    /// about its own subject.
    pub fn entity_of(&self, event: &Event, subjects: &proto::subjects::Subjects) -> String {
        let task_need = |task: &str| match self.task(task) {
            Some(entry) => format!("need/{}", entry.need()),
            None => format!("task/{task}"),
        };
        match event {
            Event::VolunteerOffered(offer) => format!("volunteer/{}", offer.id),
            Event::PledgeOffered(offer) => format!("pledge/{}", offer.id),
            Event::NeedPosted(need) => format!("need/{}", need.id),
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Volunteer => format!("volunteer/{}", withdrawal.id),
                WithdrawKind::Pledge => format!("pledge/{}", withdrawal.id),
                WithdrawKind::Need => format!("need/{}", withdrawal.id),
                WithdrawKind::Task => task_need(&withdrawal.id),
            },
            Event::TaskCompleted(completion) => task_need(&completion.task),
            Event::AssignmentAnswered(_) | Event::Steered(_) | Event::Vetted(_) => {
                event.subject(subjects)
            }
        }
    }

    /// The last event about `entity`, logged or pending.
    pub fn last_about(&self, entity: &str) -> Option<&LastEvent> {
        self.current.last_by_entity.get(entity)
    }

    /// The last logged sequence of `subject` (0: none), what a write to it
    /// is conditional on.
    pub fn subject_sequence(&self, subject: &str) -> u64 {
        self.logged
            .subject_sequences
            .get(subject)
            .copied()
            .unwrap_or(0)
    }

    /// The last logged sequence of any need post, what a need post that
    /// adds dependencies is conditional on (so no two instances can each
    /// close half of a cycle).
    pub fn need_posts_sequence(&self) -> u64 {
        self.subject_sequence(NEED_POSTS)
    }

    /// Whether a request about `entity` (a need post that adds
    /// dependencies, when `adds_dependencies`) must wait for a pending
    /// write before it can be written conditionally.
    pub fn must_wait(&self, entity: &str, adds_dependencies: bool) -> bool {
        self.pending_entities.contains_key(entity)
            || (adds_dependencies && self.pending_need_posts > 0)
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

    /// The collective that posted a need or a task, when the view knows it
    /// (withdrawn and done ones too: ownership does not end).
    pub fn collective_of(&self, kind: WithdrawKind, id: &str) -> Option<&str> {
        match kind {
            WithdrawKind::Need => self
                .current
                .book
                .need(id)
                .map(|entry| entry.collective.as_str()),
            WithdrawKind::Task => self.task(id).map(|entry| entry.collective()),
            WithdrawKind::Volunteer | WithdrawKind::Pledge => None,
        }
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

    /// Applies an event logged at `sequence` and records the entries it
    /// changed in `changes`, for the store. An event older than the last
    /// logged on its subject changes nothing. A logged event that is this
    /// instance's own pending write is already in the current state; one
    /// about an entity with another write pending overtook it, and makes
    /// the view [`View::stale`].
    pub fn apply(
        &mut self,
        event: &Event,
        written: &Written,
        sequence: u64,
        changes: &mut Changes,
    ) -> anyhow::Result<()> {
        debug_assert_ne!(sequence, SEQUENCE_PENDING, "a logged event has a sequence");
        if self.subject_sequence(&written.subject) >= sequence {
            return Ok(());
        }
        self.logged.apply(event, written, sequence, changes)?;
        match self.current.last_by_entity.get_mut(&written.entity) {
            // This instance's own write, pending or acknowledged: already applied.
            Some(last)
                if last.message_id == written.message_id
                    && (last.sequence == SEQUENCE_PENDING || last.sequence == sequence) =>
            {
                last.sequence = sequence;
            }
            Some(last) if last.sequence == SEQUENCE_PENDING => self.stale = true,
            _ => self
                .current
                .apply(event, written, sequence, &mut Changes::default())?,
        }
        // What a write is conditional on is the log's, wherever it came from.
        self.current.subject_sequences = self.logged.subject_sequences.clone();
        Ok(())
    }

    /// Applies a validated event whose write is not yet acknowledged, so the
    /// requests after it are checked against it. Nothing of it is stored:
    /// [`View::apply`] with its sequence follows once it is logged.
    pub fn apply_pending(&mut self, event: &Event, written: &Written) -> anyhow::Result<()> {
        *self
            .pending_entities
            .entry(written.entity.clone())
            .or_default() += 1;
        if matches!(event, Event::NeedPosted(_)) {
            self.pending_need_posts += 1;
        }
        self.current
            .apply(event, written, SEQUENCE_PENDING, &mut Changes::default())
    }

    /// Records that a pending write was acknowledged at `sequence`
    /// (`Some`), or failed (`None`: the view is then stale). A repeat of it
    /// is answered with that sequence; the logged state learns of it from
    /// the follower, in the log's order.
    pub fn settled(&mut self, event: &Event, written: &Written, sequence: Option<u64>) {
        if let Some(count) = self.pending_entities.get_mut(&written.entity) {
            *count -= 1;
            if *count == 0 {
                self.pending_entities.remove(&written.entity);
            }
        }
        if matches!(event, Event::NeedPosted(_)) {
            self.pending_need_posts = self.pending_need_posts.saturating_sub(1);
        }
        let Some(sequence) = sequence else {
            self.stale = true;
            return;
        };
        if let Some(last) = self.current.last_by_entity.get_mut(&written.entity) {
            if last.message_id == written.message_id && last.sequence == SEQUENCE_PENDING {
                last.sequence = sequence;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proto::subjects::Subjects;

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

    /// How `event` is written, with `message_id`.
    fn written(view: &View, event: &Event, message_id: &str) -> Written {
        let subjects = Subjects::default();
        Written {
            subject: event.subject(&subjects),
            entity: view.entity_of(event, &subjects),
            message_id: message_id.to_owned(),
            content: event.content_hash(&subjects),
        }
    }

    fn logged(view: &mut View, event: &Event, message_id: &str, sequence: u64) -> Changes {
        let written = written(view, event, message_id);
        let mut changes = Changes::default();
        view.apply(event, &written, sequence, &mut changes).unwrap();
        changes
    }

    fn pending(view: &mut View, event: &Event, message_id: &str) -> Written {
        let written = written(view, event, message_id);
        view.apply_pending(event, &written).unwrap();
        written
    }

    fn posted(view: &mut View, need: NeedPost, sequence: u64) {
        logged(
            view,
            &Event::NeedPosted(need),
            &format!("m{sequence}"),
            sequence,
        );
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
        logged(&mut view, &update, "m2", 5);
        assert_eq!(view.task("b").unwrap().status, TaskStatus::Cancelled);
        let stale = Event::NeedPosted(need("n1", &[("a", &[]), ("b", &[])]));
        logged(&mut view, &stale, "m1", 3);
        assert_eq!(view.task("b").unwrap().status, TaskStatus::Cancelled);
    }

    #[test]
    fn the_store_gets_only_what_is_logged_and_a_failed_write_leaves_the_logged_state() {
        let mut view = View::default();
        posted(&mut view, need("n1", &[("a", &[]), ("b", &[])]), 1);
        // Validated and pending: the next request is checked against it...
        let update = Event::NeedPosted(need("n1", &[("a", &[])]));
        let written_update = pending(&mut view, &update, "m2");
        assert_eq!(view.task("b").unwrap().status, TaskStatus::Cancelled);
        assert!(view.must_wait("need/n1", false), "n1 has a write pending");
        // ...and once logged, the store is told what it changed: the task it
        // left out, though the current state already had it cancelled.
        view.settled(&update, &written_update, Some(2));
        assert!(!view.must_wait("need/n1", false));
        assert!(!logged(&mut view, &update, "m2", 2).is_empty());
        assert!(!view.stale);
        assert_eq!(view.subject_sequence("sb.ev.need.n1"), 2);
        // A pending write that fails is forgotten when the view is reset.
        let withdrawal = Event::Withdrawn(proto::wire::Withdrawal {
            kind: WithdrawKind::Task,
            id: "a".into(),
        });
        let written_withdrawal = pending(&mut view, &withdrawal, "m3");
        assert_eq!(view.task("a").unwrap().status, TaskStatus::Cancelled);
        view.settled(&withdrawal, &written_withdrawal, None);
        assert!(view.stale);
        view.reset_to_logged();
        assert_eq!(view.task("a").unwrap().status, TaskStatus::Open);
    }

    #[test]
    fn a_logged_write_of_another_instance_over_a_pending_one_makes_the_view_stale() {
        let mut view = View::default();
        posted(&mut view, need("n1", &[("a", &[])]), 1);
        let mine = Event::NeedPosted(need("n1", &[("a", &[]), ("b", &[])]));
        pending(&mut view, &mine, "mine");
        let theirs = Event::NeedPosted(need("n1", &[("a", &[]), ("c", &[])]));
        logged(&mut view, &theirs, "theirs", 2);
        assert!(view.stale);
        view.reset_to_logged();
        assert!(view.task("c").is_some_and(TaskEntry::is_open));
        assert!(view.task("b").is_none());
    }

    #[test]
    fn a_volunteers_offer_and_withdrawal_are_about_one_volunteer_and_a_tasks_withdrawal_about_its_need(
    ) {
        let subjects = Subjects::default();
        let mut view = View::default();
        posted(&mut view, need("n1", &[("a", &[])]), 1);
        let offer: proto::wire::VolunteerOffer = serde_json::from_value(serde_json::json!({
            "id": "v1", "skills": {}, "hours_per_week": 4.0,
            "available_from": "2026-11-22T00:00:00Z", "available_until": "2026-12-13T00:00:00Z",
        }))
        .unwrap();
        let withdraw = |kind, id: &str| {
            Event::Withdrawn(proto::wire::Withdrawal {
                kind,
                id: id.into(),
            })
        };
        assert_eq!(
            view.entity_of(&Event::VolunteerOffered(offer), &subjects),
            view.entity_of(&withdraw(WithdrawKind::Volunteer, "v1"), &subjects)
        );
        assert_eq!(
            view.entity_of(&withdraw(WithdrawKind::Task, "a"), &subjects),
            "need/n1"
        );
        assert_eq!(
            view.entity_of(
                &Event::TaskCompleted(proto::wire::TaskCompletion { task: "a".into() }),
                &subjects
            ),
            "need/n1"
        );
    }
}
