//! The solver service's picture of the open world: every offer, task and
//! pledge still standing, what is done, and every live assignment with its
//! round. Built from `SB_EVENTS` and `SB_MATCHES`; turned into a
//! [`proto::domain::World`] at a given time for the matching core.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use proto::domain::World;
use proto::events::{Event, MatchEvent};
use proto::wire::{PledgeOffer, Steering, TaskSpec, VolunteerOffer, WithdrawKind};
use proto::Id;
use serde::{Deserialize, Serialize};

use plumbing::store::{Changes, Store};

use crate::shard::Sharding;

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

#[derive(Default)]
pub struct OpenWorld {
    pub volunteers: HashMap<String, VolunteerOffer>,
    /// Tasks with their need and collective filled in, as logged.
    pub tasks: HashMap<String, TaskSpec>,
    pub needs: HashMap<String, Vec<String>>,
    pub pledges: HashMap<String, PledgeOffer>,
    pub done: HashSet<String>,
    pub live: HashMap<String, LiveAssignment>,
    /// The last round proposed per pair, so a new proposal has a new round.
    pub rounds: HashMap<String, u32>,
    /// Pairs a volunteer declined or let expire: never proposed again.
    pub declined: HashSet<String>,
    /// Pairs a coordinator vetoed: never proposed again.
    pub vetoed: HashSet<String>,
    /// Pairs a coordinator pinned: planned whenever they are feasible.
    pub coordinator_pins: HashMap<String, (String, String)>,
    /// Campaign weights by `collective/tag` key (`any` for either).
    pub weights: HashMap<String, Weight>,
    /// Each volunteer's record, from the match stream.
    pub records: HashMap<String, Record>,
}

/// A campaign weight: the impact of matching tasks is multiplied by `factor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weight {
    pub collective: Option<String>,
    pub tag: Option<String>,
    pub factor: f64,
}

impl Weight {
    fn applies_to(&self, task: &TaskSpec) -> bool {
        self.collective
            .as_ref()
            .is_none_or(|collective| task.collective.as_ref() == Some(collective))
            && self.tag.as_ref().is_none_or(|tag| task.tags.contains(tag))
    }
}

impl OpenWorld {
    pub fn load(store: &Store) -> anyhow::Result<OpenWorld> {
        Ok(OpenWorld {
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
        })
    }

    fn remove_task(&mut self, task: &str, changes: &mut Changes) {
        if self.tasks.remove(task).is_some() {
            changes.remove(KIND_TASK, task);
        }
    }

    /// Applies one accepted input.
    pub fn apply_event(&mut self, event: &Event, changes: &mut Changes) -> anyhow::Result<()> {
        match event {
            Event::VolunteerOffered(offer) => {
                changes.put(KIND_VOLUNTEER, &offer.id, offer)?;
                self.volunteers.insert(offer.id.clone(), offer.clone());
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
                    self.tasks.insert(task.id.clone(), task);
                }
                let task_ids: Vec<String> = need.tasks.iter().map(|task| task.id.clone()).collect();
                changes.put(KIND_NEED, &need.id, &task_ids)?;
                self.needs.insert(need.id.clone(), task_ids);
            }
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Volunteer => {
                    self.volunteers.remove(&withdrawal.id);
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
                    .iter()
                    .filter(|(_, live)| live.task == completion.task)
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in finished {
                    self.live.remove(&key);
                    changes.remove(KIND_LIVE, &key);
                }
            }
            Event::AssignmentAnswered(_) => {}
            Event::Steered(steering) => self.apply_steering(steering, changes)?,
        }
        Ok(())
    }

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

    /// The impact the solver maximises: the collective's own, times every
    /// campaign weight that applies.
    fn weighted_impact(&self, task: &TaskSpec) -> f64 {
        let factor: f64 = self
            .weights
            .values()
            .filter(|weight| weight.applies_to(task))
            .map(|weight| weight.factor)
            .product();
        (task.impact * factor).min(proto::validate::IMPACT_MAX)
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
            MatchEvent::Released(_) => None,
        };
        match standing {
            Some(standing) => {
                let live = LiveAssignment {
                    volunteer: volunteer.to_owned(),
                    task: task.to_owned(),
                    round,
                    standing,
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

    /// The world as the matching core sees it at `now`: volunteers still
    /// available, tasks still open before their deadline whose dependencies
    /// can still be met, pledges not expired, and the accepted assignments as
    /// pins. Anything that no longer validates is left out and logged.
    /// `pin_proposals`: also pin the proposals people are looking at, so the
    /// plan is built around them (tier 1); otherwise they are only kept at a
    /// cost and may move (tier 2).
    /// `sharding`: only the shard's volunteers, tasks and share of each
    /// pledge (everything, by default). A volunteer with live work in
    /// another shard's task is left out until it ends, so no shard plans
    /// hours another has promised.
    pub fn snapshot(&self, now: DateTime<Utc>, pin_proposals: bool, sharding: &Sharding) -> World {
        let owned_task = |task: &TaskSpec| sharding.owns(task.region.as_deref());
        let busy_elsewhere: HashSet<&str> = if sharding.is_whole() {
            HashSet::new()
        } else {
            self.live
                .values()
                .filter(|live| {
                    self.tasks
                        .get(&live.task)
                        .is_some_and(|task| !owned_task(task))
                })
                .map(|live| live.volunteer.as_str())
                .collect()
        };
        let volunteers = self
            .volunteers
            .values()
            .filter(|offer| offer.available_until > now)
            .filter(|offer| sharding.owns(offer.region.as_deref()))
            .filter(|offer| !busy_elsewhere.contains(offer.id.as_str()))
            .filter_map(|offer| {
                offer
                    .validate("")
                    .map_err(|error| tracing::warn!(%error, "volunteer left out"))
                    .ok()
            })
            .collect::<Vec<_>>();
        let mut tasks: HashMap<String, proto::domain::Task> = self
            .tasks
            .values()
            .filter(|task| task.deadline > now)
            .filter(|task| owned_task(task))
            .filter_map(|task| {
                let mut weighted = task.clone();
                weighted.impact = self.weighted_impact(task);
                weighted
                    .validate_standalone("")
                    .map_err(|error| tracing::warn!(%error, "task left out"))
                    .ok()
            })
            .map(|task| (task.id.as_str().to_owned(), task))
            .collect();
        // A task whose dependency is gone (cancelled, expired) can never be
        // complete; drop it, and what depends on it, until nothing changes.
        loop {
            let unreachable: Vec<String> = tasks
                .values()
                .filter(|task| {
                    task.depends_on.iter().any(|dependency| {
                        !tasks.contains_key(dependency.as_str())
                            && !self.done.contains(dependency.as_str())
                    })
                })
                .map(|task| task.id.as_str().to_owned())
                .collect();
            if unreachable.is_empty() {
                break;
            }
            for id in unreachable {
                tasks.remove(&id);
            }
        }
        let pledges = self
            .pledges
            .values()
            .filter(|offer| offer.expires_at.is_none_or(|expiry| expiry > now))
            .filter_map(|offer| {
                let share = PledgeOffer {
                    amount_cents: sharding.pledge_share(offer.amount_cents),
                    ..offer.clone()
                };
                (share.amount_cents > 0).then_some(share)
            })
            .filter_map(|offer| {
                offer
                    .validate("")
                    .map_err(|error| tracing::warn!(%error, "pledge left out"))
                    .ok()
            })
            .collect();
        let volunteer_ids: HashSet<&str> = volunteers
            .iter()
            .map(|volunteer| volunteer.id.as_str())
            .collect();
        // Accepted work is pinned, and so is what a coordinator pinned,
        // unless it was vetoed since.
        let accepted = self
            .live
            .values()
            .filter(|live| pin_proposals || live.standing != Standing::Proposed)
            .filter(|live| !self.vetoed.contains(&pair_key(&live.volunteer, &live.task)))
            .map(|live| (live.volunteer.as_str(), live.task.as_str()));
        let coordinator = self
            .coordinator_pins
            .values()
            .map(|(volunteer, task)| (volunteer.as_str(), task.as_str()));
        let mut pinned: Vec<(Id, Id)> = accepted
            .chain(coordinator)
            .filter(|(volunteer, task)| {
                volunteer_ids.contains(volunteer) && tasks.contains_key(*task)
            })
            .filter_map(|(volunteer, task)| {
                Some((
                    Id::parse(volunteer, "volunteer").ok()?,
                    Id::parse(task, "task").ok()?,
                ))
            })
            .collect();
        pinned.sort();
        pinned.dedup();
        let done: BTreeSet<Id> = self
            .done
            .iter()
            .filter_map(|id| Id::parse(id, "done").ok())
            .collect();
        let mut tasks: Vec<proto::domain::Task> = tasks.into_values().collect();
        tasks.sort_by(|one, other| one.id.cmp(&other.id));
        let mut volunteers = volunteers;
        volunteers.sort_by(|one, other| one.id.cmp(&other.id));
        let mut pledges: Vec<proto::domain::Pledge> = pledges;
        pledges.sort_by(|one, other| one.id.cmp(&other.id));
        World {
            now,
            volunteers,
            tasks,
            pledges,
            done,
            pinned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
