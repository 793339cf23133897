//! The open world as the matching core is given it at a given time: a
//! [`proto::domain::World`] of the volunteers still available (with the
//! trust this world gives them), the tasks still open whose dependencies
//! can be met (their impact weighted by campaigns, urgency and equity,
//! their slots less what is done), the pledges' available money, and what
//! is pinned; and what each member under way still owes of their work.
//! Pure: it reads the world and the time, nothing else.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use proto::domain::World;
use proto::wire::{PledgeOffer, TaskSpec, VolunteerOffer};
use proto::Id;

use crate::scope::Scope;
use crate::shard::Sharding;
use crate::world::{
    pair_key, LiveAssignment, OpenWorld, Standing, TrustSource, URGENCY_HORIZON_HOURS,
};

/// The least a member still on work is charged for it, in hours, however
/// far they have got: they have not said it is done.
const HOURS_LEFT_MIN: f64 = 0.01;

/// Volunteers committed (accepted, checked in, finished) per collective and per task.
#[derive(Default)]
pub(crate) struct Committed<'a> {
    collectives: HashMap<&'a str, usize>,
    tasks: HashMap<&'a str, usize>,
}

/// Which part of the world a snapshot takes.
#[derive(Clone, Copy)]
enum Selection<'a> {
    Everything,
    Scope {
        scope: &'a Scope,
        spent_elsewhere: &'a HashMap<String, u64>,
    },
}

/// What the world makes of its people and tasks at a given time.
impl OpenWorld {
    /// The trust tier the matching core sees for `offer`.
    pub fn trust_of(&self, offer: &VolunteerOffer) -> u8 {
        let vetted = self.vetted.get(&offer.id).copied();
        match self.trust_source {
            TrustSource::Declared => vetted.unwrap_or(offer.trust),
            TrustSource::Vetted => vetted.unwrap_or(0),
        }
    }
    /// A task's impact as the live plan values it: coordinators' campaign
    /// weights, then urgency and equity (`priorities`). `committed` counts
    /// the volunteers committed to each collective's and each task's work;
    /// a task's own team does not count against it (finishing a team is
    /// never discounted).
    pub(crate) fn weighted_impact(
        &self,
        task: &TaskSpec,
        now: DateTime<Utc>,
        committed: &Committed,
    ) -> f64 {
        let campaign: f64 = self
            .weights
            .values()
            .filter(|weight| weight.applies_to(task))
            .map(|weight| weight.factor)
            .product();
        let hours_left = (task.deadline - now).num_seconds() as f64 / 3600.0;
        let nearness = (1.0 - hours_left / URGENCY_HORIZON_HOURS).clamp(0.0, 1.0);
        let urgency = 1.0 + self.priorities.urgency * nearness;
        let of_collective = task
            .collective
            .as_deref()
            .and_then(|collective| committed.collectives.get(collective))
            .copied()
            .unwrap_or(0);
        let of_task = committed.tasks.get(task.id.as_str()).copied().unwrap_or(0);
        let served = of_collective.saturating_sub(of_task);
        let equity = (1.0 + served as f64).powf(-self.priorities.equity);
        (task.impact * campaign * urgency * equity).min(proto::validate::IMPACT_MAX)
    }
    /// What each member on flexible work still owes of it at `now`, as
    /// `(volunteer, task, hours)`: their held pieces worked at their own
    /// rate, earliest deadline first, from when each was accepted
    /// ([`OpenWorld::left_at`]). A member is charged that, not the task's whole hours,
    /// so a team that fitted when it was formed keeps fitting while its
    /// people work; anyone new to a task owes all of it. Shifts keep their
    /// hours (the team works the whole shift).
    pub fn owed(&self, now: DateTime<Utc>) -> Vec<(String, String, f64)> {
        let mut volunteers: Vec<&str> = self
            .live
            .values()
            .filter(|live| live.standing == Standing::Accepted)
            .map(|live| live.volunteer.as_str())
            .collect();
        volunteers.sort_unstable();
        volunteers.dedup();
        let mut owed = Vec::new();
        for volunteer in volunteers {
            for (task, hours) in self.left_at(volunteer, now) {
                owed.push((volunteer.to_owned(), task, hours.max(HOURS_LEFT_MIN)));
            }
        }
        owed
    }

    /// What `volunteer` has left at `at` of each piece of flexible work
    /// they hold accepted: from their last checkpoint (what was left of
    /// each piece then, [`crate::progress::Progress`]), worked at their own
    /// rate, earliest deadline first. The pieces held have not changed
    /// since the checkpoint (every change of them makes one), so this is
    /// the work a person doing exactly that has done: hours spent on work
    /// finished or released before are never credited to what is left.
    pub(crate) fn left_at(&self, volunteer: &str, at: DateTime<Utc>) -> Vec<(String, f64)> {
        let Some(offer) = self.volunteers.get(volunteer) else {
            return Vec::new();
        };
        let checkpoint = self.progress.get(volunteer);
        let as_of = checkpoint.map(|checkpoint| checkpoint.as_of);
        let mut held: Vec<(String, crate::progress::Piece)> = Vec::new();
        for live in self.live.held_by(volunteer) {
            if live.standing != Standing::Accepted {
                continue;
            }
            let Some(task) = self
                .tasks
                .get(&live.task)
                .filter(|task| task.shift.is_none())
            else {
                continue;
            };
            let mut opens = live
                .since
                .map_or(task.earliest_start, |since| since.max(task.earliest_start));
            let mut hours = task.hours;
            if let (Some(checkpoint), Some(as_of)) = (checkpoint, as_of) {
                opens = opens.max(as_of);
                if let Some(&left) = checkpoint.left.get(&live.task) {
                    hours = left.min(task.hours);
                }
            }
            let piece = crate::progress::Piece {
                opens,
                deadline: task.deadline,
                hours,
            };
            held.push((live.task.clone(), piece));
        }
        let pieces: Vec<crate::progress::Piece> =
            held.iter().map(|(_, piece)| piece.clone()).collect();
        let rate = offer.hours_per_week / 168.0;
        let present_from = as_of.map_or(offer.available_from, |as_of| {
            as_of.max(offer.available_from)
        });
        let left = crate::progress::owed_at(rate, present_from, &pieces, at);
        held.into_iter().map(|(task, _)| task).zip(left).collect()
    }
    /// Volunteers who said yes to each collective's and task's work and are
    /// still on it.
    pub(crate) fn committed(&self) -> Committed<'_> {
        let mut committed = Committed::default();
        for live in self.live.values() {
            if live.standing == Standing::Proposed {
                continue;
            }
            let Some(task) = self.tasks.get(&live.task) else {
                continue;
            };
            *committed.tasks.entry(task.id.as_str()).or_insert(0) += 1;
            if let Some(collective) = task.collective.as_deref() {
                *committed.collectives.entry(collective).or_insert(0) += 1;
            }
        }
        committed
    }
}

/// The snapshot, in the order it is built.
impl OpenWorld {
    /// The world as the matching core sees it at `now`: volunteers still
    /// available, tasks still open before their deadline whose dependencies
    /// can still be met, pledges not expired, and the accepted assignments as
    /// pins. Anything that no longer validates is left out and logged.
    /// `pin_proposals`: also pin the proposals people are looking at, so the
    /// plan is built around them (tier 1); otherwise they are only kept at a
    /// cost and may move (tier 2).
    ///
    /// `held`: tasks whose team cannot be completed now but is kept together
    /// while a replacement is sought (backfill). Each stands in the world as
    /// a team of just its live members, pinned, worth nothing: their time
    /// stays booked, nobody else is asked to it, and nothing that depends on
    /// it is planned.
    ///
    /// `sharding`: only the shard's volunteers, tasks and share of each
    /// pledge (everything, by default). A volunteer with live work in
    /// another shard's task is left out until it ends, so no shard plans
    /// hours another has promised.
    pub fn snapshot(
        &self,
        now: DateTime<Utc>,
        pin_proposals: bool,
        held: &HashSet<String>,
        sharding: &Sharding,
    ) -> World {
        self.snapshot_of(now, pin_proposals, held, sharding, Selection::Everything)
    }
    /// The world of a scoped run (`scope`): its tasks planned afresh, its
    /// context tasks as pinned teams worth nothing, its pledges less what
    /// the current plan spends of them elsewhere (`spent_elsewhere`, cents
    /// by pledge). Proposals are pinned, as in every tier-1 run.
    pub fn scoped_snapshot(
        &self,
        now: DateTime<Utc>,
        held: &HashSet<String>,
        scope: &Scope,
        spent_elsewhere: &HashMap<String, u64>,
    ) -> World {
        self.snapshot_of(
            now,
            true,
            held,
            &Sharding::whole(),
            Selection::Scope {
                scope,
                spent_elsewhere,
            },
        )
    }
    fn snapshot_of(
        &self,
        now: DateTime<Utc>,
        pin_proposals: bool,
        held: &HashSet<String>,
        sharding: &Sharding,
        selection: Selection<'_>,
    ) -> World {
        let mut volunteers = self.volunteers_of(now, sharding, selection);
        let available: HashSet<&str> = volunteers
            .iter()
            .map(|volunteer| volunteer.id.as_str())
            .collect();
        let (mut tasks, secured) = self.tasks_of(now, held, sharding, selection, &available);
        self.drop_unreachable(&mut tasks, held, &secured);
        if let Selection::Scope { scope, .. } = selection {
            self.book_context(&mut tasks, scope, now, &available);
        }
        let mut pledges = self.pledges_of(now, sharding, selection);
        let pinned = self.pins_of(pin_proposals, held, selection, &available, &tasks);
        // Only what the tasks depend on: a scope's world does not carry
        // everything ever done.
        let mut done: BTreeSet<Id> = tasks
            .values()
            .flat_map(|task| &task.depends_on)
            .filter(|dependency| self.done.contains(dependency.as_str()))
            .cloned()
            .collect();
        done.extend(secured);
        let mut tasks: Vec<proto::domain::Task> = tasks.into_values().collect();
        tasks.sort_by(|one, other| one.id.cmp(&other.id));
        volunteers.sort_by(|one, other| one.id.cmp(&other.id));
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

    /// The selection's volunteers still available at `now` in the shard,
    /// with this world's trust, validated. A volunteer with live work in
    /// another shard's task is left out until it ends.
    fn volunteers_of(
        &self,
        now: DateTime<Utc>,
        sharding: &Sharding,
        selection: Selection<'_>,
    ) -> Vec<proto::domain::Volunteer> {
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
        let selected: Box<dyn Iterator<Item = &VolunteerOffer>> = match selection {
            Selection::Everything => Box::new(self.volunteers.values()),
            Selection::Scope { scope, .. } => Box::new(
                scope
                    .volunteers
                    .iter()
                    .filter_map(|id| self.volunteers.get(id)),
            ),
        };
        selected
            .filter(|offer| offer.available_until > now)
            .filter(|offer| sharding.owns(offer.region.as_deref()))
            .filter(|offer| !busy_elsewhere.contains(offer.id.as_str()))
            .filter_map(|offer| {
                let mut offer = offer.clone();
                offer.trust = self.trust_of(&offer);
                offer
                    .validate("")
                    .map_err(|error| tracing::warn!(%error, "volunteer left out"))
                    .ok()
            })
            .collect()
    }

    /// The selection's tasks still open at `now` in the shard, by id, with
    /// their weighted impact, the slots not yet done and the money not yet
    /// held; and the tasks with nothing left to plan (`secured`), which
    /// satisfy what depends on them. A held task (`held`) stands as a team
    /// of just its members still `available`, worth nothing.
    fn tasks_of(
        &self,
        now: DateTime<Utc>,
        held: &HashSet<String>,
        sharding: &Sharding,
        selection: Selection<'_>,
        available: &HashSet<&str>,
    ) -> (HashMap<String, proto::domain::Task>, BTreeSet<Id>) {
        let committed = self.committed();
        let selected: Box<dyn Iterator<Item = &TaskSpec>> = match selection {
            Selection::Everything => Box::new(self.tasks.values()),
            Selection::Scope { scope, .. } => {
                Box::new(scope.tasks.iter().filter_map(|id| self.tasks.get(id)))
            }
        };
        // A money-only task whose money is held is secured: it satisfies
        // dependencies like a done task and needs no more planning.
        let mut secured: BTreeSet<Id> = BTreeSet::new();
        let tasks = selected
            .filter(|task| task.deadline > now)
            .filter(|task| sharding.owns(task.region.as_deref()))
            .filter_map(|task| {
                let mut weighted = task.clone();
                weighted.impact = self.weighted_impact(task, now, &committed);
                // Members who reported their part done owe no more hours:
                // only the slots still open are planned, so a done slot is
                // never staffed again.
                let finished = self
                    .live
                    .of_task(&task.id)
                    .filter(|live| live.standing == Standing::Finished)
                    .count();
                let finished = u8::try_from(finished).unwrap_or(u8::MAX);
                weighted.slots = task.slots.saturating_sub(finished);
                if held.contains(&task.id) {
                    let members = self
                        .live
                        .of_task(&task.id)
                        .filter(|live| live.standing != Standing::Finished)
                        .filter(|live| available.contains(live.volunteer.as_str()))
                        .count();
                    weighted.slots = u8::try_from(members).ok().filter(|&slots| slots > 0)?;
                    weighted.impact = 0.0;
                }
                let held_cents = self.money.committed(&task.id).get();
                if task.money_cents > 0 && held_cents > 0 {
                    weighted.money_cents = task.money_cents.saturating_sub(held_cents);
                }
                let money_left = task.money_cents > 0 && weighted.money_cents > 0;
                if weighted.slots == 0 && !money_left {
                    // Nothing left to plan (its team all reported done, or
                    // its money is held): it satisfies what depends on it.
                    secured.extend(Id::parse(&task.id, "task").ok());
                    return None;
                }
                weighted
                    .validate_standalone("")
                    .map_err(|error| tracing::warn!(%error, "task left out"))
                    .ok()
            })
            .map(|task| (task.id.as_str().to_owned(), task))
            .collect();
        (tasks, secured)
    }

    /// A task whose dependency is gone (cancelled, expired) or held can
    /// never be complete; drops it, and what depends on it, until nothing
    /// changes.
    fn drop_unreachable(
        &self,
        tasks: &mut HashMap<String, proto::domain::Task>,
        held: &HashSet<String>,
        secured: &BTreeSet<Id>,
    ) {
        loop {
            let unreachable: Vec<String> = tasks
                .values()
                .filter(|task| {
                    task.depends_on.iter().any(|dependency| {
                        held.contains(dependency.as_str())
                            || (!tasks.contains_key(dependency.as_str())
                                && !self.done.contains(dependency.as_str())
                                && !secured.contains(dependency))
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
    }

    /// Work outside a scope that its volunteers are on: a team of just
    /// them, pinned, worth nothing, so their time stays booked.
    fn book_context(
        &self,
        tasks: &mut HashMap<String, proto::domain::Task>,
        scope: &Scope,
        now: DateTime<Utc>,
        available: &HashSet<&str>,
    ) {
        for (id, members) in &scope.context {
            let Some(task) = self.tasks.get(id).filter(|task| task.deadline > now) else {
                continue;
            };
            let present = members
                .iter()
                .filter(|member| available.contains(member.as_str()))
                .count();
            let Some(slots) = u8::try_from(present).ok().filter(|&slots| slots > 0) else {
                continue;
            };
            let mut booked = task.clone();
            booked.slots = slots;
            booked.impact = 0.0;
            booked.money_cents = 0;
            booked.depends_on.clear();
            if let Ok(booked) = booked
                .validate_standalone("")
                .map_err(|error| tracing::warn!(%error, "booked task left out"))
            {
                tasks.insert(id.clone(), booked);
            }
        }
    }

    /// The selection's pledges not expired at `now`, each offering what
    /// may be planned of it: once the ledger holds a pledge, only its
    /// available part (held money is never allocated twice); a shard only
    /// its share of that, a scope what the plan does not spend elsewhere.
    fn pledges_of(
        &self,
        now: DateTime<Utc>,
        sharding: &Sharding,
        selection: Selection<'_>,
    ) -> Vec<proto::domain::Pledge> {
        let selected: Box<dyn Iterator<Item = &PledgeOffer>> = match selection {
            Selection::Everything => Box::new(self.pledges.values()),
            Selection::Scope { scope, .. } => {
                Box::new(scope.pledges.iter().filter_map(|id| self.pledges.get(id)))
            }
        };
        selected
            .filter(|offer| offer.expires_at.is_none_or(|expiry| expiry > now))
            .filter_map(|offer| {
                let mut offer = offer.clone();
                if self.money.pledge(&offer.id).is_some() {
                    offer.amount_cents = self.money.available(&offer.id).get();
                }
                offer.amount_cents = sharding.pledge_share(offer.amount_cents);
                if let Selection::Scope {
                    spent_elsewhere, ..
                } = selection
                {
                    let spent = spent_elsewhere.get(&offer.id).copied().unwrap_or(0);
                    offer.amount_cents = offer.amount_cents.saturating_sub(spent);
                }
                (offer.amount_cents > 0).then_some(offer)
            })
            .filter_map(|offer| {
                offer
                    .validate("")
                    .map_err(|error| tracing::warn!(%error, "pledge left out"))
                    .ok()
            })
            .collect()
    }

    /// The pins: accepted work (and proposals, with `pin_proposals`, and
    /// the live members of a held task), and what a coordinator pinned,
    /// unless vetoed since; only pairs whose volunteer is `available` and
    /// whose task is planned, sorted.
    fn pins_of(
        &self,
        pin_proposals: bool,
        held: &HashSet<String>,
        selection: Selection<'_>,
        available: &HashSet<&str>,
        tasks: &HashMap<String, proto::domain::Task>,
    ) -> Vec<(Id, Id)> {
        let lives: Box<dyn Iterator<Item = &LiveAssignment>> = match selection {
            Selection::Everything => Box::new(self.live.values()),
            Selection::Scope { scope, .. } => {
                Box::new(scope.volunteers.iter().flat_map(|volunteer| {
                    self.live
                        .tasks_of(volunteer)
                        .filter_map(move |task| self.live.get(&pair_key(volunteer, task)))
                }))
            }
        };
        let accepted = lives
            .filter(|live| {
                pin_proposals || live.standing != Standing::Proposed || held.contains(&live.task)
            })
            // Finished work books no more time.
            .filter(|live| live.standing != Standing::Finished)
            .filter(|live| !self.vetoed.contains(&pair_key(&live.volunteer, &live.task)))
            .map(|live| (live.volunteer.as_str(), live.task.as_str()));
        let coordinator = self
            .coordinator_pins
            .values()
            .map(|(volunteer, task)| (volunteer.as_str(), task.as_str()));
        let mut pinned: Vec<(Id, Id)> = accepted
            .chain(coordinator)
            .filter(|(volunteer, task)| available.contains(volunteer) && tasks.contains_key(*task))
            .filter_map(|(volunteer, task)| {
                Some((
                    Id::parse(volunteer, "volunteer").ok()?,
                    Id::parse(task, "task").ok()?,
                ))
            })
            .collect();
        pinned.sort();
        pinned.dedup();
        pinned
    }
}
