//! What the ledger service needs to know of the world to decide when money
//! moves: open tasks (money asked, team size, deadline, collective), which
//! tasks are done, every pledge's terms (without its donor), and who has
//! accepted which task. Folded from `SB_EVENTS` and `SB_MATCHES` and kept
//! in the store with the money itself.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use proto::events::{Event, MatchEvent};
use proto::wire::{PledgeOffer, TaskSpec, WithdrawKind};
use serde::{Deserialize, Serialize};

use plumbing::store::{Changes, Store};

const KIND_TASK: &str = "task";
const KIND_NEED: &str = "need";
const KIND_DONE: &str = "done";
const KIND_COLLECTIVE: &str = "collective";
const KIND_PLEDGE: &str = "pledge";
const KIND_PAIR: &str = "pair";

/// A pledge as the ledger keeps it: the terms, never the donor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PledgeTerms {
    pub offer: PledgeOffer,
    /// The donor withdrew it: what is not held goes back.
    pub withdrawn: bool,
}

/// One volunteer's latest round on one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairState {
    pub round: u32,
    /// Accepted, checked in or completed: the slot is staffed.
    pub committed: bool,
}

#[derive(Default)]
pub struct World {
    /// Open tasks, with need and collective filled in.
    pub tasks: HashMap<String, TaskSpec>,
    pub needs: HashMap<String, Vec<String>>,
    pub done: HashSet<String>,
    /// Every task ever posted to its collective, for ever.
    pub collectives: HashMap<String, String>,
    pub pledges: HashMap<String, PledgeTerms>,
    /// `volunteer/task` to the latest round's state.
    pub pairs: HashMap<String, PairState>,
}

fn pair_key(volunteer: &str, task: &str) -> String {
    format!("{volunteer}/{task}")
}

impl World {
    pub fn load(store: &Store) -> anyhow::Result<World> {
        Ok(World {
            tasks: store.load(KIND_TASK)?.into_iter().collect(),
            needs: store.load(KIND_NEED)?.into_iter().collect(),
            done: store
                .load::<bool>(KIND_DONE)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            collectives: store.load(KIND_COLLECTIVE)?.into_iter().collect(),
            pledges: store.load(KIND_PLEDGE)?.into_iter().collect(),
            pairs: store.load(KIND_PAIR)?.into_iter().collect(),
        })
    }

    fn remove_task(&mut self, task: &str, changes: &mut Changes) {
        if self.tasks.remove(task).is_some() {
            changes.remove(KIND_TASK, task);
        }
    }

    pub fn apply_event(&mut self, event: &Event, changes: &mut Changes) -> anyhow::Result<()> {
        match event {
            Event::PledgeOffered(offer) => {
                let mut offer = offer.clone();
                // The donor stays private: not even the ledger's store keeps it.
                offer.donor = None;
                let terms = PledgeTerms {
                    offer,
                    withdrawn: false,
                };
                changes.put(KIND_PLEDGE, &terms.offer.id, &terms)?;
                self.pledges.insert(terms.offer.id.clone(), terms);
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
                    changes.put(KIND_COLLECTIVE, &task.id, &need.collective)?;
                    self.collectives
                        .insert(task.id.clone(), need.collective.clone());
                    if self.done.contains(&task.id) {
                        continue;
                    }
                    let mut task = task.clone();
                    task.need = Some(need.id.clone());
                    task.collective = Some(need.collective.clone());
                    changes.put(KIND_TASK, &task.id, &task)?;
                    self.tasks.insert(task.id.clone(), task);
                }
                let ids: Vec<String> = need.tasks.iter().map(|task| task.id.clone()).collect();
                changes.put(KIND_NEED, &need.id, &ids)?;
                self.needs.insert(need.id.clone(), ids);
            }
            Event::Withdrawn(withdrawal) => match withdrawal.kind {
                WithdrawKind::Pledge => {
                    if let Some(terms) = self.pledges.get_mut(&withdrawal.id) {
                        terms.withdrawn = true;
                        changes.put(KIND_PLEDGE, &withdrawal.id, terms)?;
                    }
                }
                WithdrawKind::Task => self.remove_task(&withdrawal.id, changes),
                WithdrawKind::Need => {
                    for task in self.needs.remove(&withdrawal.id).unwrap_or_default() {
                        self.remove_task(&task, changes);
                    }
                    changes.remove(KIND_NEED, &withdrawal.id);
                }
                WithdrawKind::Volunteer => {}
            },
            Event::TaskCompleted(completion) => {
                self.remove_task(&completion.task, changes);
                self.done.insert(completion.task.clone());
                changes.put(KIND_DONE, &completion.task, &true)?;
            }
            Event::VolunteerOffered(_)
            | Event::AssignmentAnswered(_)
            | Event::Steered(_)
            | Event::Vetted(_) => {}
        }
        Ok(())
    }

    pub fn apply_match(&mut self, event: &MatchEvent, changes: &mut Changes) -> anyhow::Result<()> {
        let (volunteer, task, round) = event.pair();
        let key = pair_key(volunteer, task);
        let current = self.pairs.get(&key).copied();
        let state = match event {
            MatchEvent::Proposed(_) if current.is_none_or(|current| round >= current.round) => {
                Some(PairState {
                    round,
                    committed: false,
                })
            }
            MatchEvent::Proposed(_) => return Ok(()),
            // Events of an older round are history.
            _ if current.is_none_or(|current| current.round != round) => return Ok(()),
            MatchEvent::Accepted(_) | MatchEvent::CheckedIn(_) | MatchEvent::Completed(_) => {
                Some(PairState {
                    round,
                    committed: true,
                })
            }
            MatchEvent::Declined(_) | MatchEvent::Expired(_) | MatchEvent::Released(_) => None,
        };
        match state {
            Some(state) => {
                changes.put(KIND_PAIR, &key, &state)?;
                self.pairs.insert(key, state);
            }
            None => {
                changes.remove(KIND_PAIR, &key);
                self.pairs.remove(&key);
            }
        }
        Ok(())
    }

    /// How many volunteers have said yes to `task`.
    pub fn committed_members(&self, task: &str) -> usize {
        self.pairs
            .iter()
            .filter(|(key, state)| {
                state.committed && key.rsplit_once('/').is_some_and(|(_, of)| of == task)
            })
            .count()
    }

    /// Whether `task` will complete as far as people go: a money-only task,
    /// or one whose whole team has accepted.
    pub fn team_complete(&self, task: &TaskSpec) -> bool {
        task.slots == 0 || self.committed_members(&task.id) >= usize::from(task.slots)
    }

    /// Open tasks asking for money, not past their deadline.
    pub fn money_tasks(&self, now: DateTime<Utc>) -> impl Iterator<Item = &TaskSpec> {
        self.tasks
            .values()
            .filter(move |task| task.money_cents > 0 && task.deadline > now)
    }
}
