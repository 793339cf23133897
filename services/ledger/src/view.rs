//! What the ledger service needs to know of the world to decide when money
//! moves: the needs and tasks as the one reading of them says they stand
//! ([`needs_core::NeedBook`]: open tasks, done ones, each task's
//! collective), every pledge's terms (without its donor), and who has
//! accepted which task. Folded from `SB_EVENTS` and `SB_MATCHES`; each
//! change comes with the [`Write`]s that keep it in the store.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use needs_core::NeedBook;
use proto::events::{Event, MatchEvent};
use proto::wire::{PledgeOffer, TaskSpec, WithdrawKind};
use serde::{Deserialize, Serialize};

use crate::planner::Write;

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

/// The store key of a volunteer's round on a task.
pub fn pair_key(volunteer: &str, task: &str) -> String {
    format!("{volunteer}/{task}")
}

#[derive(Debug, Default)]
pub struct World {
    pub needs: NeedBook,
    pub pledges: HashMap<String, PledgeTerms>,
    /// Each task's volunteers to their latest round's state.
    pairs: HashMap<String, HashMap<String, PairState>>,
}

impl World {
    /// The world from what the store kept; pairs keyed `volunteer/task`.
    pub fn new(
        needs: NeedBook,
        pledges: impl IntoIterator<Item = (String, PledgeTerms)>,
        pairs: impl IntoIterator<Item = (String, PairState)>,
    ) -> World {
        let mut world = World {
            needs,
            pledges: pledges.into_iter().collect(),
            pairs: HashMap::new(),
        };
        for (key, state) in pairs {
            if let Some((volunteer, task)) = key.rsplit_once('/') {
                world
                    .pairs
                    .entry(task.to_owned())
                    .or_default()
                    .insert(volunteer.to_owned(), state);
            }
        }
        world
    }

    pub fn apply_event(&mut self, event: &Event, writes: &mut Vec<Write>) {
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
            if let Some(entry) = self.needs.task(change.task()) {
                writes.push(Write::Task {
                    id: change.task().to_owned(),
                    entry: Box::new(entry.clone()),
                });
            }
        }
        match event {
            Event::PledgeOffered(offer) => {
                let mut offer = offer.clone();
                // The donor stays private: not even the ledger's store keeps it.
                offer.donor = None;
                offer.sealed = None;
                let terms = PledgeTerms {
                    offer,
                    withdrawn: false,
                };
                writes.push(Write::Pledge(Box::new(terms.clone())));
                self.pledges.insert(terms.offer.id.clone(), terms);
            }
            Event::Withdrawn(withdrawal) if withdrawal.kind == WithdrawKind::Pledge => {
                if let Some(terms) = self.pledges.get_mut(&withdrawal.id) {
                    terms.withdrawn = true;
                    writes.push(Write::Pledge(Box::new(terms.clone())));
                }
            }
            _ => {}
        }
    }

    pub fn apply_match(&mut self, event: &MatchEvent, writes: &mut Vec<Write>) {
        let (volunteer, task, round) = event.pair();
        let current = self
            .pairs
            .get(task)
            .and_then(|volunteers| volunteers.get(volunteer))
            .copied();
        let state = match event {
            MatchEvent::Proposed(_) if current.is_none_or(|current| round >= current.round) => {
                Some(PairState {
                    round,
                    committed: false,
                })
            }
            MatchEvent::Proposed(_) => return,
            // Events of an older round are history.
            _ if current.is_none_or(|current| current.round != round) => return,
            MatchEvent::Accepted(_) | MatchEvent::CheckedIn(_) | MatchEvent::Completed(_) => {
                Some(PairState {
                    round,
                    committed: true,
                })
            }
            MatchEvent::Declined(_) | MatchEvent::Expired(_) | MatchEvent::Released(_) => None,
        };
        writes.push(Write::Pair {
            key: pair_key(volunteer, task),
            state,
        });
        match state {
            Some(state) => {
                self.pairs
                    .entry(task.to_owned())
                    .or_default()
                    .insert(volunteer.to_owned(), state);
            }
            None => {
                if let Some(volunteers) = self.pairs.get_mut(task) {
                    volunteers.remove(volunteer);
                    if volunteers.is_empty() {
                        self.pairs.remove(task);
                    }
                }
            }
        }
    }

    /// The spec of an open task.
    pub fn open_task(&self, task: &str) -> Option<&TaskSpec> {
        self.needs.open_task(task)
    }

    pub fn is_done(&self, task: &str) -> bool {
        self.needs.is_done(task)
    }

    /// The collective of any task ever posted.
    pub fn collective(&self, task: &str) -> Option<String> {
        self.needs
            .task(task)
            .map(|entry| entry.collective().to_owned())
    }

    /// How many volunteers have said yes to `task`.
    pub fn committed_members(&self, task: &str) -> usize {
        self.pairs.get(task).map_or(0, |volunteers| {
            volunteers.values().filter(|state| state.committed).count()
        })
    }

    /// Whether `task` will complete as far as people go: a money-only task,
    /// or one whose whole team has accepted.
    pub fn team_complete(&self, task: &TaskSpec) -> bool {
        task.slots == 0 || self.committed_members(&task.id) >= usize::from(task.slots)
    }

    /// Open tasks asking for money, not past their deadline.
    pub fn money_tasks(&self, now: DateTime<Utc>) -> impl Iterator<Item = &TaskSpec> {
        self.needs
            .open_tasks()
            .filter(move |task| task.money_cents > 0 && task.deadline > now)
    }
}
