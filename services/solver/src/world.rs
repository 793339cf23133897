//! The solver service's picture of the open world: every offer, task and
//! pledge still standing, what is done, and every live assignment with its
//! round. Built from `SB_EVENTS` and `SB_MATCHES` (and the money from
//! `SB_LEDGER`); `snapshot.rs` turns it into a [`proto::domain::World`] at
//! a given time for the matching core.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use proto::events::{Event, MatchEvent};
use proto::wire::{PledgeOffer, Steering, TaskSpec, VolunteerOffer, WithdrawKind};
use serde::{Deserialize, Serialize};

use plumbing::store::{Changes, Store};
use proto::money::LedgerEntry;

use crate::scope::WorldIndex;

/// Where a live assignment stands, as far as planning is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Offered, not answered: kept if the plan can, moved at a cost.
    Proposed,
    /// Accepted or checked in: pinned.
    Accepted,
    /// The volunteer reported their part done: the slot stays filled.
    Finished,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveAssignment {
    pub volunteer: String,
    pub task: String,
    pub round: u32,
    pub standing: Standing,
    /// When it was proposed, then when it was accepted: the work's clock
    /// starts no earlier.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

const KIND_VOLUNTEER: &str = "volunteer";
const KIND_TASK: &str = "task";
const KIND_NEED: &str = "need";
const KIND_PLEDGE: &str = "pledge";
const KIND_DONE: &str = "done";
const KIND_LIVE: &str = "live";
const KIND_ROUND: &str = "round";
const KIND_DECLINED: &str = "declined";
const KIND_VETO: &str = "veto";
const KIND_PIN: &str = "pin";
const KIND_WEIGHT: &str = "weight";
const KIND_RECORD: &str = "record";
const KIND_VETTED: &str = "vetted";
const KIND_PROGRESS: &str = "progress";

/// How far before its deadline a task starts to count for more.
pub const URGENCY_HORIZON_HOURS: f64 = 72.0;
/// A task at its deadline counts `1 + URGENCY_DEFAULT` times its impact.
pub const URGENCY_DEFAULT: f64 = 0.5;
/// The n-th live piece of work for one collective counts `(1 + n)^-EQUITY_DEFAULT`.
pub const EQUITY_DEFAULT: f64 = 0.25;

/// What the live switchboard values beyond the canonical objective of
/// `problem.md` (the sum of impact of complete tasks), as factors on a
/// task's impact. Both zero: exactly the canonical objective.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Priorities {
    /// Urgency: a task's impact grows linearly over the last
    /// [`URGENCY_HORIZON_HOURS`] before its deadline, up to `1 + urgency`
    /// times, so work about to be lost is staffed first.
    pub urgency: f64,
    /// Equity: diminishing returns per collective. A task of a collective
    /// with `n` volunteers already committed to its work counts
    /// `(1 + n)^-equity` times, so the switchboard spreads people across
    /// collectives instead of piling onto one (in the spirit of
    /// VolunteerMatch's SmartSort).
    pub equity: f64,
}

impl Priorities {
    /// The objective of `problem.md`, nothing else.
    pub const CANONICAL: Priorities = Priorities {
        urgency: 0.0,
        equity: 0.0,
    };
}

impl Default for Priorities {
    fn default() -> Self {
        Priorities {
            urgency: URGENCY_DEFAULT,
            equity: EQUITY_DEFAULT,
        }
    }
}

/// Where a volunteer's trust tier comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrustSource {
    /// The tier in the volunteer's offer, unless a vetter has set one. For
    /// a NATS server where everyone who can publish is already trusted (a
    /// local `up`, an instance posted by a coordinator's script).
    #[default]
    Declared,
    /// Only what a vetter set (`sb.in.vet`); everyone else is tier 0. For
    /// any server volunteers connect to themselves: an offer can claim any
    /// tier, and infiltration is part of the threat model.
    Vetted,
}
const KIND_LEDGER_ENTRY: &str = "ledger_entry";

/// Prior of the reliability estimate, as if every volunteer had already
/// completed this many assignments...
pub const RELIABILITY_PRIOR_COMPLETED: f64 = 3.0;
/// ...and failed this many: a newcomer is estimated at 0.75.
pub const RELIABILITY_PRIOR_FAILED: f64 = 1.0;

/// What a volunteer did with the work they were given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub completed: u32,
    /// Dropped, or went silent after accepting.
    pub dropped: u32,
    /// Let a proposal expire without answering.
    pub expired: u32,
    pub declined: u32,
}

impl Record {
    /// The estimated chance that work given to this volunteer gets done: a
    /// beta posterior, so a newcomer starts at the prior and two silent
    /// drop-outs weigh more than one good week.
    pub fn reliability(&self) -> f64 {
        let done = f64::from(self.completed) + RELIABILITY_PRIOR_COMPLETED;
        let failed = f64::from(self.dropped + self.expired) + RELIABILITY_PRIOR_FAILED;
        done / (done + failed)
    }

    pub fn is_newcomer(&self) -> bool {
        self.completed == 0
    }
}

pub fn pair_key(volunteer: &str, task: &str) -> String {
    format!("{volunteer}/{task}")
}

/// Live assignments by pair key, also found by volunteer and by task: a
/// scoped run asks what one volunteer is on, and a task's team is read for
/// every task of every snapshot.
#[derive(Clone, Debug, Default)]
pub struct LiveBook {
    by_key: HashMap<String, LiveAssignment>,
    /// Volunteer -> the tasks they are live on.
    by_volunteer: HashMap<String, BTreeSet<String>>,
    /// Task -> the volunteers live on it.
    by_task: HashMap<String, BTreeSet<String>>,
}

impl LiveBook {
    pub fn insert(&mut self, key: String, live: LiveAssignment) -> Option<LiveAssignment> {
        self.by_volunteer
            .entry(live.volunteer.clone())
            .or_default()
            .insert(live.task.clone());
        self.by_task
            .entry(live.task.clone())
            .or_default()
            .insert(live.volunteer.clone());
        self.by_key.insert(key, live)
    }

    pub fn remove(&mut self, key: &str) -> Option<LiveAssignment> {
        let live = self.by_key.remove(key)?;
        forget(&mut self.by_volunteer, &live.volunteer, &live.task);
        forget(&mut self.by_task, &live.task, &live.volunteer);
        Some(live)
    }

    pub fn get(&self, key: &str) -> Option<&LiveAssignment> {
        self.by_key.get(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &LiveAssignment> {
        self.by_key.values()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The assignments on `task`.
    pub fn of_task<'a>(&'a self, task: &str) -> impl Iterator<Item = &'a LiveAssignment> + 'a {
        let task = task.to_owned();
        self.by_task
            .get(&task)
            .into_iter()
            .flatten()
            .filter_map(move |volunteer| self.by_key.get(&pair_key(volunteer, &task)))
    }

    /// The tasks `volunteer` is live on.
    pub fn tasks_of(&self, volunteer: &str) -> impl Iterator<Item = &String> {
        self.by_volunteer.get(volunteer).into_iter().flatten()
    }

    /// Every live pair of `volunteer`.
    pub fn held_by<'a>(
        &'a self,
        volunteer: &'a str,
    ) -> impl Iterator<Item = &'a LiveAssignment> + 'a {
        self.tasks_of(volunteer)
            .filter_map(move |task| self.by_key.get(&pair_key(volunteer, task)))
    }

    /// How many volunteers are live on `task`.
    pub fn team_size(&self, task: &str) -> usize {
        self.by_task.get(task).map_or(0, BTreeSet::len)
    }

    /// How many tasks `volunteer` is live on.
    pub fn load_of(&self, volunteer: &str) -> usize {
        self.by_volunteer.get(volunteer).map_or(0, BTreeSet::len)
    }
}

fn forget(index: &mut HashMap<String, BTreeSet<String>>, key: &str, member: &str) {
    if let Some(members) = index.get_mut(key) {
        members.remove(member);
        if members.is_empty() {
            index.remove(key);
        }
    }
}

impl FromIterator<(String, LiveAssignment)> for LiveBook {
    fn from_iter<I: IntoIterator<Item = (String, LiveAssignment)>>(iter: I) -> Self {
        let mut book = LiveBook::default();
        for (key, live) in iter {
            book.insert(key, live);
        }
        book
    }
}

#[derive(Default)]
pub struct OpenWorld {
    pub volunteers: HashMap<String, VolunteerOffer>,
    /// Tasks with their need and collective filled in, as logged.
    pub tasks: HashMap<String, TaskSpec>,
    pub needs: HashMap<String, Vec<String>>,
    pub pledges: HashMap<String, PledgeOffer>,
    pub done: HashSet<String>,
    pub live: LiveBook,
    /// The last round proposed per pair, so a new proposal has a new round.
    pub rounds: HashMap<String, u32>,
    /// Pairs a volunteer declined or let expire, or whose proposal was
    /// withdrawn (released before an answer): never proposed again.
    pub declined: HashSet<String>,
    /// Pairs a coordinator vetoed: never proposed again.
    pub vetoed: HashSet<String>,
    /// Pairs a coordinator pinned: planned whenever they are feasible.
    pub coordinator_pins: HashMap<String, (String, String)>,
    /// Campaign weights by `collective/tag` key (`any` for either).
    pub weights: HashMap<String, Weight>,
    /// Each volunteer's record, from the match stream.
    pub records: HashMap<String, Record>,
    /// The trust tier each vetted volunteer was last given.
    pub vetted: HashMap<String, u8>,
    /// How `snapshot` decides a volunteer's trust (configuration, not state).
    pub trust_source: TrustSource,
    /// What `snapshot` values beyond the canonical objective (configuration).
    pub priorities: Priorities,
    /// The money ledger, folded from `SB_LEDGER`: held money is committed,
    /// so a pledge offers only what is available and a funded task asks
    /// for nothing more.
    pub money: ledger_core::Ledger,
    /// Volunteers and tasks by skill and region, for scoped runs.
    pub index: WorldIndex,
    /// How long recent answers took: new work is booked from when its
    /// answer is expected.
    pub answers: crate::progress::AnswerTimes,
    /// Per volunteer, what was left of each piece of accepted work at the
    /// last change of what they hold (`OpenWorld::left_at` works on from
    /// there).
    pub progress: HashMap<String, crate::progress::Progress>,
    /// The latest time a match event carried: when a task is withdrawn or
    /// completed (events without a time of their own), its members'
    /// progress is taken then. Not stored: it is back with the next event.
    pub latest_at: Option<DateTime<Utc>>,
}

/// A campaign weight: the impact of matching tasks is multiplied by `factor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weight {
    pub collective: Option<String>,
    pub tag: Option<String>,
    pub factor: f64,
}

impl Weight {
    pub(crate) fn applies_to(&self, task: &TaskSpec) -> bool {
        self.collective
            .as_ref()
            .is_none_or(|collective| task.collective.as_ref() == Some(collective))
            && self.tag.as_ref().is_none_or(|tag| task.tags.contains(tag))
    }
}

impl OpenWorld {
    pub fn load(store: &Store) -> anyhow::Result<OpenWorld> {
        let mut world = OpenWorld {
            volunteers: store.load(KIND_VOLUNTEER)?.into_iter().collect(),
            tasks: store.load(KIND_TASK)?.into_iter().collect(),
            needs: store.load(KIND_NEED)?.into_iter().collect(),
            pledges: store.load(KIND_PLEDGE)?.into_iter().collect(),
            done: store
                .load::<bool>(KIND_DONE)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            live: store.load(KIND_LIVE)?.into_iter().collect(),
            rounds: store.load(KIND_ROUND)?.into_iter().collect(),
            declined: store
                .load::<bool>(KIND_DECLINED)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            vetoed: store
                .load::<bool>(KIND_VETO)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            coordinator_pins: store.load(KIND_PIN)?.into_iter().collect(),
            weights: store.load(KIND_WEIGHT)?.into_iter().collect(),
            records: store.load(KIND_RECORD)?.into_iter().collect(),
            vetted: store.load(KIND_VETTED)?.into_iter().collect(),
            trust_source: TrustSource::default(),
            priorities: Priorities::CANONICAL,
            money: {
                let mut entries: Vec<(String, LedgerEntry)> = store.load(KIND_LEDGER_ENTRY)?;
                entries.sort_by(|one, other| one.0.cmp(&other.0));
                let (money, refused) =
                    ledger_core::Ledger::replay(entries.iter().map(|(_, entry)| entry));
                for (id, refusal) in refused {
                    tracing::error!(%id, %refusal, "a stored ledger entry does not apply");
                }
                money
            },
            index: WorldIndex::default(),
            answers: crate::progress::AnswerTimes::default(),
            progress: store.load(KIND_PROGRESS)?.into_iter().collect(),
            latest_at: None,
        };
        for offer in world.volunteers.values() {
            world.index.add_volunteer(offer);
        }
        for task in world.tasks.values() {
            world.index.add_task(task);
        }
        Ok(world)
    }

    /// Applies one money entry read from `SB_LEDGER` at `sequence`.
    pub fn apply_ledger(
        &mut self,
        entry: &LedgerEntry,
        sequence: u64,
        changes: &mut Changes,
    ) -> anyhow::Result<bool> {
        match self.money.apply(entry) {
            Ok(ledger_core::Applied::New) => {
                changes.put(KIND_LEDGER_ENTRY, &format!("{sequence:020}"), entry)?;
                Ok(true)
            }
            Ok(ledger_core::Applied::Repeat) => Ok(false),
            Err(refusal) => {
                tracing::error!(%refusal, id = %entry.id, "a ledger entry does not apply; left out");
                Ok(false)
            }
        }
    }

    /// Money held or paid for `task`, per pledge.
    pub fn committed_funding_of(&self, task: &str) -> Vec<proto::instance::Funding> {
        let Some(accounts) = self.money.task(task) else {
            return Vec::new();
        };
        accounts
            .held
            .iter()
            .chain(&accounts.disbursed)
            .map(|(pledge, cents)| proto::instance::Funding {
                pledge: pledge.clone(),
                task: task.to_owned(),
                amount_cents: cents.get(),
            })
            .collect()
    }

    /// What `event` touches, for the next tier-1 run: read before the
    /// event is applied (a re-posted need's dropped tasks are still known).
    pub fn touches(&self, event: &Event, touched: &mut crate::scope::Touched) {
        match event {
            Event::VolunteerOffered(offer) => touched.volunteer(&offer.id),
            Event::PledgeOffered(offer) => touched.pledge(&offer.id),
            Event::NeedPosted(need) => {
                for task in self.needs.get(&need.id).into_iter().flatten() {
                    touched.task(task);
                }
                for task in &need.tasks {
                    touched.task(&task.id);
                }
            }
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Volunteer => touched.volunteer(&withdrawal.id),
                // The solver adds what the pledge funds in its plan.
                WithdrawKind::Pledge => touched.pledge(&withdrawal.id),
                WithdrawKind::Task => touched.task(&withdrawal.id),
                WithdrawKind::Need => {
                    for task in self.needs.get(&withdrawal.id).into_iter().flatten() {
                        touched.task(task);
                    }
                }
            },
            Event::TaskCompleted(completion) => {
                touched.task(&completion.task);
                for live in self.live.of_task(&completion.task) {
                    touched.volunteer(&live.volunteer);
                }
            }
            // What a member reported doing changes what they can take on.
            Event::AssignmentAnswered(answer)
                if answer.action == proto::wire::ReplyAction::Progress =>
            {
                touched.volunteer(&answer.volunteer)
            }
            Event::AssignmentAnswered(_) => {}
            Event::Steered(
                Steering::Veto { volunteer, task } | Steering::Pin { volunteer, task },
            ) => {
                touched.pair(volunteer, task);
            }
            Event::Steered(_) => touched.everything = true,
            Event::Vetted(vetting) => touched.volunteer(&vetting.volunteer),
        }
    }

    /// Money held or paid for each task, per pledge: funding the plan keeps.
    pub fn committed_funding(&self) -> Vec<proto::instance::Funding> {
        let mut funding = Vec::new();
        for (task, accounts) in self.money.tasks() {
            for (pledge, cents) in accounts.held.iter().chain(&accounts.disbursed) {
                funding.push(proto::instance::Funding {
                    pledge: pledge.clone(),
                    task: task.clone(),
                    amount_cents: cents.get(),
                });
            }
        }
        funding
    }

    fn remove_task(&mut self, task: &str, changes: &mut Changes) {
        // Its members stop working on it: what they did of their other
        // work until now is kept before it goes.
        if let Some(at) = self.latest_at {
            let members: Vec<String> = self
                .live
                .of_task(task)
                .map(|live| live.volunteer.clone())
                .collect();
            for volunteer in members {
                self.checkpoint(&volunteer, at, changes);
            }
        }
        if let Some(spec) = self.tasks.remove(task) {
            self.index.remove_task(&spec);
            changes.remove(KIND_TASK, task);
        }
    }

    fn insert_task(&mut self, task: TaskSpec) {
        self.index.add_task(&task);
        if let Some(old) = self.tasks.insert(task.id.clone(), task) {
            self.index.remove_task(&old);
            if let Some(task) = self.tasks.get(&old.id) {
                self.index.add_task(task);
            }
        }
    }

    /// Applies one accepted input.
    pub fn apply_event(&mut self, event: &Event, changes: &mut Changes) -> anyhow::Result<()> {
        match event {
            Event::VolunteerOffered(offer) => {
                changes.put(KIND_VOLUNTEER, &offer.id, offer)?;
                if let Some(old) = self.volunteers.insert(offer.id.clone(), offer.clone()) {
                    self.index.remove_volunteer(&old);
                }
                self.index.add_volunteer(offer);
            }
            Event::PledgeOffered(offer) => {
                changes.put(KIND_PLEDGE, &offer.id, offer)?;
                self.pledges.insert(offer.id.clone(), offer.clone());
            }
            Event::NeedPosted(need) => {
                let posted: HashSet<&str> =
                    need.tasks.iter().map(|task| task.id.as_str()).collect();
                let dropped: Vec<String> = self
                    .needs
                    .get(&need.id)
                    .map(|tasks| {
                        tasks
                            .iter()
                            .filter(|id| !posted.contains(id.as_str()))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                for task in dropped {
                    self.remove_task(&task, changes);
                }
                for task in &need.tasks {
                    if self.done.contains(&task.id) {
                        continue;
                    }
                    let mut task = task.clone();
                    task.need = Some(need.id.clone());
                    task.collective = Some(need.collective.clone());
                    changes.put(KIND_TASK, &task.id, &task)?;
                    self.insert_task(task);
                }
                let task_ids: Vec<String> = need.tasks.iter().map(|task| task.id.clone()).collect();
                changes.put(KIND_NEED, &need.id, &task_ids)?;
                self.needs.insert(need.id.clone(), task_ids);
            }
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Volunteer => {
                    if let Some(old) = self.volunteers.remove(&withdrawal.id) {
                        self.index.remove_volunteer(&old);
                    }
                    changes.remove(KIND_VOLUNTEER, &withdrawal.id);
                }
                WithdrawKind::Pledge => {
                    self.pledges.remove(&withdrawal.id);
                    changes.remove(KIND_PLEDGE, &withdrawal.id);
                }
                WithdrawKind::Task => self.remove_task(&withdrawal.id, changes),
                WithdrawKind::Need => {
                    for task in self.needs.remove(&withdrawal.id).unwrap_or_default() {
                        self.remove_task(&task, changes);
                    }
                    changes.remove(KIND_NEED, &withdrawal.id);
                }
            },
            Event::TaskCompleted(completion) => {
                self.remove_task(&completion.task, changes);
                self.done.insert(completion.task.clone());
                changes.put(KIND_DONE, &completion.task, &true)?;
                let finished: Vec<String> = self
                    .live
                    .of_task(&completion.task)
                    .map(|live| pair_key(&live.volunteer, &live.task))
                    .collect();
                for key in finished {
                    self.live.remove(&key);
                    changes.remove(KIND_LIVE, &key);
                }
            }
            Event::AssignmentAnswered(answer) => self.apply_progress(answer, changes),
            Event::Steered(steering) => self.apply_steering(steering, changes)?,
            Event::Vetted(vetting) => {
                changes.put(KIND_VETTED, &vetting.volunteer, &vetting.trust)?;
                self.vetted.insert(vetting.volunteer.clone(), vetting.trust);
            }
        }
        Ok(())
    }

    /// Pairs never to propose: declined, expired or vetoed.
    pub fn is_forbidden(&self, key: &str) -> bool {
        self.declined.contains(key) || self.vetoed.contains(key)
    }

    /// Applies one change of an assignment.
    pub fn apply_match(&mut self, event: &MatchEvent, changes: &mut Changes) -> anyhow::Result<()> {
        let (volunteer, task, round) = event.pair();
        let key = pair_key(volunteer, task);
        let current_round = self.live.get(&key).map(|live| live.round);
        if current_round == Some(round) {
            self.record(event, changes)?;
        }
        let at = match event {
            MatchEvent::Proposed(proposal) => proposal.at,
            MatchEvent::Accepted(change)
            | MatchEvent::Declined(change)
            | MatchEvent::Expired(change)
            | MatchEvent::CheckedIn(change)
            | MatchEvent::Released(change)
            | MatchEvent::Completed(change) => change.at,
        };
        self.latest_at = Some(self.latest_at.map_or(at, |latest| latest.max(at)));
        // What the volunteer holds accepted may change: their progress on
        // it so far is kept first.
        let changes_holdings = matches!(
            event,
            MatchEvent::Accepted(_) | MatchEvent::Released(_) | MatchEvent::Completed(_)
        );
        if changes_holdings && current_round == Some(round) {
            self.checkpoint(volunteer, at, changes);
        }
        let proposed_at = self
            .live
            .get(&key)
            .filter(|live| live.standing == Standing::Proposed && current_round == Some(round))
            .and_then(|live| live.since);
        if let (Some(proposed_at), MatchEvent::Accepted(answer) | MatchEvent::Declined(answer)) =
            (proposed_at, event)
        {
            let hours = (answer.at - proposed_at).num_seconds() as f64 / 3600.0;
            self.answers.record(hours);
        }
        // Work starts when it is accepted, not when it was proposed.
        let since = match event {
            MatchEvent::Proposed(proposal) => Some(proposal.at),
            MatchEvent::Accepted(answer) if proposed_at.is_some() => Some(answer.at),
            _ => self.live.get(&key).and_then(|live| live.since),
        };
        let standing = match event {
            MatchEvent::Proposed(_) => {
                let last = self.rounds.get(&key).copied();
                if last.is_none_or(|last| round >= last) {
                    changes.put(KIND_ROUND, &key, &round)?;
                    self.rounds.insert(key.clone(), round);
                }
                if current_round.is_some_and(|current| current > round) {
                    return Ok(());
                }
                Some(Standing::Proposed)
            }
            // Events of an older round are history.
            _ if current_round != Some(round) => return Ok(()),
            MatchEvent::Accepted(_) | MatchEvent::CheckedIn(_) => Some(Standing::Accepted),
            MatchEvent::Completed(_) => Some(Standing::Finished),
            MatchEvent::Declined(_) | MatchEvent::Expired(_) => {
                changes.put(KIND_DECLINED, &key, &true)?;
                self.declined.insert(key.clone());
                None
            }
            MatchEvent::Released(_) => {
                // A withdrawn proposal is remembered like a declined one:
                // offered again, it was withdrawn again, round after round.
                if self
                    .live
                    .get(&key)
                    .is_some_and(|live| live.standing == Standing::Proposed)
                {
                    changes.put(KIND_DECLINED, &key, &true)?;
                    self.declined.insert(key.clone());
                }
                None
            }
        };
        match standing {
            Some(standing) => {
                let live = LiveAssignment {
                    volunteer: volunteer.to_owned(),
                    task: task.to_owned(),
                    round,
                    standing,
                    since,
                };
                changes.put(KIND_LIVE, &key, &live)?;
                self.live.insert(key, live);
            }
            None => {
                self.live.remove(&key);
                changes.remove(KIND_LIVE, &key);
            }
        }
        Ok(())
    }
}

/// The parts of the fold that keep more than the live book: coordinators'
/// steering, volunteers' records, and members' progress.
impl OpenWorld {
    fn apply_steering(&mut self, steering: &Steering, changes: &mut Changes) -> anyhow::Result<()> {
        match steering {
            Steering::Veto { volunteer, task } => {
                let key = pair_key(volunteer, task);
                changes.put(KIND_VETO, &key, &true)?;
                self.vetoed.insert(key.clone());
                self.coordinator_pins.remove(&key);
                changes.remove(KIND_PIN, &key);
            }
            Steering::Pin { volunteer, task } => {
                let key = pair_key(volunteer, task);
                let pair = (volunteer.clone(), task.clone());
                changes.put(KIND_PIN, &key, &pair)?;
                self.coordinator_pins.insert(key.clone(), pair);
                self.vetoed.remove(&key);
                changes.remove(KIND_VETO, &key);
            }
            Steering::Weight {
                collective,
                tag,
                factor,
            } => {
                let key = format!(
                    "{}/{}",
                    collective.as_deref().unwrap_or("any"),
                    tag.as_deref().unwrap_or("any")
                );
                if (*factor - 1.0).abs() < f64::EPSILON {
                    self.weights.remove(&key);
                    changes.remove(KIND_WEIGHT, &key);
                } else {
                    let weight = Weight {
                        collective: collective.clone(),
                        tag: tag.clone(),
                        factor: *factor,
                    };
                    changes.put(KIND_WEIGHT, &key, &weight)?;
                    self.weights.insert(key, weight);
                }
            }
        }
        Ok(())
    }

    /// Counts what the volunteer did with this round of work.
    fn record(&mut self, event: &MatchEvent, changes: &mut Changes) -> anyhow::Result<()> {
        let (volunteer, _, _) = event.pair();
        let mut record = self.records.get(volunteer).copied().unwrap_or_default();
        match event {
            MatchEvent::Completed(_) => record.completed += 1,
            MatchEvent::Expired(_) => record.expired += 1,
            MatchEvent::Declined(_) => record.declined += 1,
            MatchEvent::Released(change)
                if matches!(
                    change.reason.as_deref(),
                    Some(proto::wire::REASON_DROPPED | proto::wire::REASON_SILENT_DROP_OUT)
                ) =>
            {
                record.dropped += 1
            }
            _ => return Ok(()),
        }
        changes.put(KIND_RECORD, volunteer, &record)?;
        self.records.insert(volunteer.to_owned(), record);
        Ok(())
    }

    /// A member's own report of how far they got (`progress`, with
    /// `hours_done`) replaces the estimate for that piece: what is left of
    /// their part is the task's hours less what they did, and later
    /// estimates work on from the report. Only for accepted flexible work
    /// of the round it answers; anything else is not about the plan.
    fn apply_progress(&mut self, answer: &proto::wire::VolunteerReply, changes: &mut Changes) {
        let (proto::wire::ReplyAction::Progress, Some(done), Some(at)) =
            (answer.action, answer.hours_done, self.latest_at)
        else {
            return;
        };
        let key = pair_key(&answer.volunteer, &answer.task);
        let accepted = self.live.get(&key).is_some_and(|live| {
            live.standing == Standing::Accepted
                && answer.round.is_none_or(|round| round == live.round)
        });
        let Some(hours) = self
            .tasks
            .get(&answer.task)
            .filter(|task| accepted && task.shift.is_none())
            .map(|task| task.hours)
        else {
            return;
        };
        self.checkpoint(&answer.volunteer, at, changes);
        if let Some(progress) = self.progress.get_mut(&answer.volunteer) {
            progress
                .left
                .insert(answer.task.clone(), (hours - done).max(0.0));
            let progress = progress.clone();
            if changes
                .put(KIND_PROGRESS, &answer.volunteer, &progress)
                .is_err()
            {
                tracing::warn!(volunteer = %answer.volunteer, "progress not kept");
            }
        }
    }

    /// The service's clock as it reads an event with no time of its own:
    /// progress taken on a task's removal or a report is taken then.
    pub fn observe_time(&mut self, now: DateTime<Utc>) {
        self.latest_at = Some(self.latest_at.map_or(now, |latest| latest.max(now)));
    }

    /// Keeps what `volunteer` has left at `at` of each piece they hold
    /// accepted, as the point later estimates work on from (nothing, once
    /// they hold none).
    fn checkpoint(&mut self, volunteer: &str, at: DateTime<Utc>, changes: &mut Changes) {
        let left: HashMap<String, f64> = self.left_at(volunteer, at).into_iter().collect();
        if left.is_empty() {
            if self.progress.remove(volunteer).is_some() {
                changes.remove(KIND_PROGRESS, volunteer);
            }
            return;
        }
        let progress = crate::progress::Progress { as_of: at, left };
        // A store that refuses is fatal at the commit; here it only queues.
        if changes.put(KIND_PROGRESS, volunteer, &progress).is_ok() {
            self.progress.insert(volunteer.to_owned(), progress);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::shard::Sharding;

    fn offer(id: &str, trust: u8) -> VolunteerOffer {
        serde_json::from_value(serde_json::json!({
            "id": id, "skills": {}, "hours_per_week": 5.0,
            "available_from": "2026-11-01T00:00:00Z", "available_until": "2026-12-20T00:00:00Z",
            "region": null, "trust": trust,
        }))
        .unwrap()
    }

    #[test]
    fn with_vetted_trust_a_volunteer_claiming_core_trust_is_open_until_a_vetter_says_otherwise() {
        let store = Store::in_memory();
        let mut world = OpenWorld::load(&store).unwrap();
        world.trust_source = TrustSource::Vetted;
        let claimant = offer("v-claims", 2);
        assert_eq!(world.trust_of(&claimant), 0);
        let mut changes = Changes::default();
        let vetting = proto::wire::Vetting {
            volunteer: "v-claims".into(),
            trust: 1,
            vetter: "vt-ana".into(),
            note: None,
        };
        world
            .apply_event(&Event::Vetted(vetting), &mut changes)
            .unwrap();
        assert_eq!(world.trust_of(&claimant), 1);
    }

    fn spec(id: &str, collective: &str, deadline: DateTime<Utc>) -> TaskSpec {
        serde_json::from_value(serde_json::json!({
            "id": id, "need": format!("n-{id}"), "collective": collective, "title": id,
            "hours": 1.0, "slots": 1, "earliest_start": "2026-11-01T00:00:00Z",
            "deadline": deadline, "impact": 10.0,
        }))
        .unwrap()
    }

    /// v1's proposal of `task`, round 0, made at `at`.
    fn proposed_to_v1(task: &str, at: DateTime<Utc>) -> MatchEvent {
        MatchEvent::Proposed(
            serde_json::from_value(serde_json::json!({
                "volunteer": "v1", "task": task, "need": "n1", "collective": "c-any",
                "impact": 1.0, "why": {}, "respond_by": at + chrono::Duration::hours(24),
                "at": at, "round": 0,
            }))
            .unwrap(),
        )
    }

    /// A change of v1's round 0 of `task`, at `at`.
    fn changed_for_v1(
        kind: proto::subjects::MatchKind,
        task: &str,
        at: DateTime<Utc>,
    ) -> MatchEvent {
        let change = proto::wire::MatchChanged {
            volunteer: "v1".into(),
            task: task.into(),
            round: 0,
            reason: None,
            handoff: None,
            at,
        };
        MatchEvent::changed(kind, change).unwrap()
    }

    #[test]
    fn urgency_raises_impact_over_the_last_three_days_and_equity_spreads_work_across_collectives() {
        let now: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        let far = spec("t-far", "c-busy", now + chrono::Duration::days(10));
        let due = spec("t-due", "c-busy", now + chrono::Duration::hours(18));
        let fresh = spec("t-fresh", "c-new", now + chrono::Duration::days(10));
        let staffed = spec("t-staffed", "c-busy", now + chrono::Duration::days(10));
        for task in [&far, &due, &fresh, &staffed] {
            world.tasks.insert(task.id.clone(), task.clone());
        }
        for volunteer in ["v1", "v2", "v3"] {
            let live = LiveAssignment {
                volunteer: volunteer.into(),
                task: "t-staffed".into(),
                round: 1,
                standing: Standing::Accepted,
                since: None,
            };
            world.live.insert(pair_key(volunteer, "t-staffed"), live);
        }
        let impact = |world: &OpenWorld, task: &TaskSpec| {
            world.weighted_impact(task, now, &world.committed())
        };
        // Canonical: impact as posted.
        for task in [&far, &due, &fresh, &staffed] {
            assert_eq!(impact(&world, task), 10.0);
        }
        world.priorities = Priorities {
            urgency: 0.5,
            equity: 0.0,
        };
        assert_eq!(impact(&world, &far), 10.0);
        // 18 h before the deadline: three quarters of the way into the 72 h.
        assert!((impact(&world, &due) - 13.75).abs() < 1e-9);
        world.priorities = Priorities {
            urgency: 0.0,
            equity: 0.5,
        };
        // c-busy has three people on t-staffed: its other work counts 1/2.
        assert!((impact(&world, &far) - 5.0).abs() < 1e-9);
        assert_eq!(impact(&world, &fresh), 10.0);
        // A task's own team never counts against it.
        assert_eq!(impact(&world, &staffed), 10.0);
    }

    #[test]
    fn a_member_owes_what_is_left_at_their_own_rate_and_proposals_owe_nothing_yet() {
        let now: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        let mut offer = offer("v1", 0);
        offer.available_from = now - chrono::Duration::days(7);
        // 16.8 h a week is 0.1 h an hour.
        offer.hours_per_week = 16.8;
        world.volunteers.insert("v1".into(), offer);
        let mut task = spec("t-long", "c-any", now + chrono::Duration::days(10));
        task.hours = 10.0;
        task.earliest_start = now - chrono::Duration::days(4);
        world.tasks.insert("t-long".into(), task);
        let live = LiveAssignment {
            volunteer: "v1".into(),
            task: "t-long".into(),
            round: 0,
            standing: Standing::Proposed,
            since: Some(now - chrono::Duration::hours(40)),
        };
        world.live.insert(pair_key("v1", "t-long"), live.clone());
        assert!(world.owed(now).is_empty(), "a proposal is not under way");
        world.live.insert(
            pair_key("v1", "t-long"),
            LiveAssignment {
                standing: Standing::Accepted,
                ..live
            },
        );
        // 40 h at 0.1 h an hour: 4 of 10 h done, whatever the deadline.
        let owed = world.owed(now);
        assert_eq!(owed.len(), 1);
        assert!((owed[0].2 - 6.0).abs() < 1e-6, "{owed:?}");
    }

    #[test]
    fn with_declared_trust_a_vetter_can_still_lower_a_volunteer() {
        let store = Store::in_memory();
        let mut world = OpenWorld::load(&store).unwrap();
        let claimant = offer("v-claims", 2);
        assert_eq!(world.trust_of(&claimant), 2);
        let mut changes = Changes::default();
        let revocation = proto::wire::Vetting {
            volunteer: "v-claims".into(),
            trust: 0,
            vetter: "vt-ana".into(),
            note: Some("left the union".into()),
        };
        world
            .apply_event(&Event::Vetted(revocation), &mut changes)
            .unwrap();
        assert_eq!(world.trust_of(&claimant), 0);
    }

    #[test]
    fn a_newcomer_starts_at_the_prior_and_drop_outs_weigh_more_than_one_good_week() {
        let newcomer = Record::default();
        assert!(newcomer.is_newcomer());
        assert!((newcomer.reliability() - 0.75).abs() < 1e-9);
        let vanished_twice = Record {
            dropped: 1,
            expired: 1,
            ..Record::default()
        };
        assert!(
            (vanished_twice.reliability() - 0.5).abs() < 1e-9,
            "3 / (3 + 1 + 2)"
        );
        let steady = Record {
            completed: 4,
            dropped: 1,
            ..Record::default()
        };
        assert!(steady.reliability() > newcomer.reliability());
        assert!(!steady.is_newcomer());
    }

    /// Issue 16: a member who reported their part done still had the task's
    /// hours booked against them and their slot was staffed again.
    #[test]
    fn a_member_who_reported_done_owes_no_hours_and_their_slot_is_not_staffed_again() {
        let now: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        for id in ["v1", "v2", "v3"] {
            world.volunteers.insert(id.to_owned(), offer(id, 0));
        }
        let mut pair_task = spec("t-pair", "c-any", now + chrono::Duration::days(3));
        pair_task.slots = 2;
        let solo = spec("t-solo", "c-any", now + chrono::Duration::days(3));
        let mut after = spec("t-after", "c-any", now + chrono::Duration::days(5));
        after.depends_on = vec!["t-solo".to_owned()];
        for task in [&pair_task, &solo, &after] {
            world.tasks.insert(task.id.clone(), task.clone());
        }
        for (volunteer, task, standing) in [
            ("v1", "t-pair", Standing::Finished),
            ("v2", "t-pair", Standing::Accepted),
            ("v3", "t-solo", Standing::Finished),
        ] {
            let live = LiveAssignment {
                volunteer: volunteer.into(),
                task: task.into(),
                round: 0,
                standing,
                since: Some(now - chrono::Duration::hours(2)),
            };
            world.live.insert(pair_key(volunteer, task), live);
        }
        let snapshot = world.snapshot(now, true, &HashSet::new(), &Sharding::whole());
        let planned: HashMap<&str, u8> = snapshot
            .tasks
            .iter()
            .map(|task| (task.id.as_str(), task.slots))
            .collect();
        assert_eq!(
            planned.get("t-pair"),
            Some(&1),
            "one slot is done: only the other is planned"
        );
        assert!(
            !planned.contains_key("t-solo"),
            "its whole team is done: nothing to plan"
        );
        assert_eq!(
            planned.get("t-after"),
            Some(&1),
            "what depends on finished work is planned"
        );
        assert!(snapshot.done.iter().any(|id| id.as_str() == "t-solo"));
        let pinned: Vec<(&str, &str)> = snapshot
            .pinned
            .iter()
            .map(|(volunteer, task)| (volunteer.as_str(), task.as_str()))
            .collect();
        assert_eq!(
            pinned,
            vec![("v2", "t-pair")],
            "finished members book no more time"
        );
    }

    /// Issue 16: a withdrawn proposal was forgotten, so the same pair was
    /// proposed and withdrawn again, thousands of rounds.
    #[test]
    fn a_withdrawn_proposal_is_not_offered_again_but_released_accepted_work_may_be() {
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        let mut changes = Changes::default();
        let proposed = |volunteer: &str, round: u32| {
            MatchEvent::Proposed(
                serde_json::from_value(serde_json::json!({
                    "volunteer": volunteer, "task": "t1", "need": "n1", "collective": "c1",
                    "impact": 1.0, "why": {}, "respond_by": "2026-11-23T00:00:00Z",
                    "at": "2026-11-22T00:00:00Z", "round": round,
                }))
                .unwrap(),
            )
        };
        use proto::subjects::MatchKind;
        let changed = |kind: MatchKind, volunteer: &str| {
            MatchEvent::changed(
                kind,
                proto::wire::MatchChanged {
                    volunteer: volunteer.into(),
                    task: "t1".into(),
                    round: 0,
                    reason: Some("the team could not be completed".into()),
                    handoff: None,
                    at: "2026-11-22T01:00:00Z".parse().unwrap(),
                },
            )
            .unwrap()
        };
        for event in [
            proposed("v1", 0),
            changed(MatchKind::Released, "v1"),
            proposed("v2", 0),
            changed(MatchKind::Accepted, "v2"),
            changed(MatchKind::Released, "v2"),
        ] {
            world.apply_match(&event, &mut changes).unwrap();
        }
        assert!(
            world.is_forbidden(&pair_key("v1", "t1")),
            "withdrawn before an answer: not offered again"
        );
        assert!(
            !world.is_forbidden(&pair_key("v2", "t1")),
            "v2 said yes; their work was released, not their will"
        );
        assert!(world.live.is_empty());
    }

    #[test]
    fn work_is_counted_from_its_acceptance_and_the_answer_time_is_learnt() {
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        let mut changes = Changes::default();
        let proposed = proposed_to_v1("t1", "2026-11-22T00:00:00Z".parse().unwrap());
        let accepted_at: DateTime<Utc> = "2026-11-22T06:00:00Z".parse().unwrap();
        let accepted = changed_for_v1(proto::subjects::MatchKind::Accepted, "t1", accepted_at);
        world.apply_match(&proposed, &mut changes).unwrap();
        world.apply_match(&accepted, &mut changes).unwrap();
        let live = world.live.get(&pair_key("v1", "t1")).unwrap();
        assert_eq!(live.since, Some(accepted_at));
        // A repeated accept (a redelivery) is not a second answer: with it,
        // three more make four answers, still below the five that count.
        world.apply_match(&accepted, &mut changes).unwrap();
        assert_eq!(
            world.live.get(&pair_key("v1", "t1")).unwrap().since,
            Some(accepted_at)
        );
        for _ in 0..3 {
            world.answers.record(6.0);
        }
        assert_eq!(
            world.answers.expected_hours(),
            crate::progress::ANSWER_HOURS_PRIOR
        );
        world.answers.record(6.0);
        assert_eq!(
            world.answers.expected_hours(),
            6.0,
            "the 6 h answer counted"
        );
    }

    /// Issue 16: the estimate was worked out afresh over the pieces held
    /// now, so hours spent on a piece already finished were credited to
    /// the one still held, which then looked done while it was untouched.
    #[test]
    fn time_spent_on_finished_work_is_not_credited_to_the_work_still_held() {
        let t0: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
        let at = |hours: i64| t0 + chrono::Duration::hours(hours);
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        let mut offer = offer("v1", 0);
        // 16.8 h a week is 0.1 h an hour.
        offer.hours_per_week = 16.8;
        world.volunteers.insert("v1".into(), offer);
        for (id, days) in [("t-first", 3), ("t-second", 10)] {
            let mut task = spec(id, "c-any", t0 + chrono::Duration::days(days));
            task.hours = 4.0;
            task.earliest_start = t0;
            world.tasks.insert(id.into(), task);
        }
        let mut changes = Changes::default();
        let proposed = |task: &str| proposed_to_v1(task, t0);
        let changed = |kind, task: &str, hours: i64| changed_for_v1(kind, task, at(hours));
        use proto::subjects::MatchKind;
        for event in [
            proposed("t-first"),
            proposed("t-second"),
            changed(MatchKind::Accepted, "t-first", 0),
            changed(MatchKind::Accepted, "t-second", 0),
            // The nearer deadline first: 4 h at 0.1 h an hour is 40 h.
            changed(MatchKind::Completed, "t-first", 40),
        ] {
            world.apply_match(&event, &mut changes).unwrap();
        }
        let owed = world.owed(at(50));
        assert_eq!(owed.len(), 1, "{owed:?}");
        assert_eq!(owed[0].1, "t-second");
        // Ten hours on it since: 1 of its 4 h done.
        assert!((owed[0].2 - 3.0).abs() < 1e-6, "{owed:?}");
        // The task done and gone, the same still holds.
        world
            .apply_event(
                &Event::TaskCompleted(proto::wire::TaskCompletion {
                    task: "t-first".into(),
                }),
                &mut changes,
            )
            .unwrap();
        let owed = world.owed(at(50));
        assert!((owed[0].2 - 3.0).abs() < 1e-6, "{owed:?}");
        // And after a restart, from the store.
        let store = Store::in_memory();
        store.commit(std::mem::take(&mut changes)).unwrap();
        let mut reloaded = OpenWorld::load(&store).unwrap();
        reloaded.volunteers = world.volunteers.clone();
        reloaded.tasks = world.tasks.clone();
        let owed = reloaded.owed(at(50));
        assert!((owed[0].2 - 3.0).abs() < 1e-6, "{owed:?}");
    }

    #[test]
    fn a_members_report_of_hours_done_replaces_the_estimate() {
        let t0: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
        let at = |hours: i64| t0 + chrono::Duration::hours(hours);
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        let mut offer = offer("v1", 0);
        // 16.8 h a week is 0.1 h an hour.
        offer.hours_per_week = 16.8;
        world.volunteers.insert("v1".into(), offer);
        let mut task = spec("t-long", "c-any", t0 + chrono::Duration::days(10));
        task.hours = 10.0;
        task.earliest_start = t0;
        world.tasks.insert("t-long".into(), task);
        let mut changes = Changes::default();
        let proposed = proposed_to_v1("t-long", t0);
        let accepted = changed_for_v1(proto::subjects::MatchKind::Accepted, "t-long", t0);
        world.apply_match(&proposed, &mut changes).unwrap();
        world.apply_match(&accepted, &mut changes).unwrap();
        let report = |hours_done: f64| {
            Event::AssignmentAnswered(proto::wire::VolunteerReply {
                volunteer: "v1".into(),
                task: "t-long".into(),
                action: proto::wire::ReplyAction::Progress,
                round: Some(0),
                hours_done: Some(hours_done),
            })
        };
        // Twenty hours in, the estimate is 2 h done; they say 5.
        world.observe_time(at(20));
        world.apply_event(&report(5.0), &mut changes).unwrap();
        let owed = world.owed(at(30));
        // 5 left at the report, one more hour's work since.
        assert!((owed[0].2 - 4.0).abs() < 1e-6, "{owed:?}");
        // A report on another round, or of more than the task, changes
        // nothing wrong: the first is ignored, the second leaves nothing.
        let mut stale = report(9.0);
        if let Event::AssignmentAnswered(answer) = &mut stale {
            answer.round = Some(3);
        }
        world.apply_event(&stale, &mut changes).unwrap();
        assert!((world.owed(at(30))[0].2 - 4.0).abs() < 1e-6);
        world.observe_time(at(30));
        world.apply_event(&report(50.0), &mut changes).unwrap();
        assert!(world.owed(at(30))[0].2 < 0.1, "nothing left but the floor");
    }
}
