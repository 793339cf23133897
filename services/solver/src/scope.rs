//! Scoped tier 1: matching only the part of the world a change touched.
//!
//! Re-planning the whole open world after every event costs seconds at
//! twenty thousand tasks (building the problem alone is most of it), and a
//! volunteer who signs up should hear back in milliseconds. An event can
//! only make possible what it touches: a new volunteer, the tasks they can
//! do; a new task, the people who can do it; freed time or money, the work
//! it could go to. A scoped run plans exactly that neighbourhood:
//!
//! - **tasks**: what the changes touched, the open tasks a touched
//!   volunteer could do and a touched pledge could fund (the most valuable
//!   [`TASKS_PER_VOLUNTEER`] and [`TASKS_PER_PLEDGE`]), with their
//!   dependencies and dependents; planned afresh, live teams pinned;
//! - **volunteers**: everyone live on those tasks, the touched volunteers,
//!   and a few candidates per open slot, idle people first;
//! - **context**: every other task those volunteers are live on, standing
//!   in the world as a team of just them, pinned and worth nothing, so
//!   their time stays booked exactly (the trick of held teams);
//! - **pledges**: those that could fund a money task of the scope, less
//!   what the current plan spends of them elsewhere.
//!
//! So a scoped plan keeps every rule for the whole world: no one is booked
//! twice, no pledge overspent. What it gives up is reach (a candidate left
//! out of the scope is not considered); tier 2 and the periodic full run
//! plan the whole world again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use proto::domain::CURRENCY_DEFAULT;
use proto::wire::{PledgeOffer, TaskSpec, VolunteerOffer};

use crate::world::{pair_key, OpenWorld, Standing};

/// Open tasks a touched volunteer brings into the scope, the most impact
/// per hour of the team's time first (as the greedy ranks them).
pub const TASKS_PER_VOLUNTEER: usize = 24;
/// Open money tasks a touched pledge brings into the scope.
pub const TASKS_PER_PLEDGE: usize = 24;
/// Candidates sought per open slot of a scoped task...
pub const CANDIDATES_PER_SLOT: usize = 4;
/// ...and at least this many per task.
pub const CANDIDATES_MIN: usize = 8;
/// Pledges sought per money task of the scope.
pub const PLEDGES_PER_TASK: usize = 8;
/// Entries of one index bucket read in one search, at most: a scoped run's
/// cost must not grow with the world.
pub const SCAN_MAX: usize = 4096;
/// Above this many tasks a scope stops growing (dependencies, dependents):
/// changes that touch more than this are planned in parts
/// ([`Touched::halves`]), and a single change that does, by a full run.
pub const SCOPE_TASKS_MAX: usize = 512;

/// A burst touching more than this many things is halved before any scope
/// is sought for it: each touched volunteer or pledge brings up to 24
/// tasks, so a bigger part could only be found too big, at the cost of
/// every search.
pub const TOUCHED_PER_PART_MAX: usize = 16;

/// The skill under which work asking for no skill is indexed: everyone holds it.
const ANY_SKILL: &str = "";

/// What changed since the last tier-1 run.
#[derive(Clone, Debug, Default)]
pub struct Touched {
    /// Plan the whole world (start, a new lease, a weight, a conflict).
    pub everything: bool,
    pub volunteers: BTreeSet<String>,
    pub tasks: BTreeSet<String>,
    pub pledges: BTreeSet<String>,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        !self.everything
            && self.volunteers.is_empty()
            && self.tasks.is_empty()
            && self.pledges.is_empty()
    }

    pub fn volunteer(&mut self, id: &str) {
        self.volunteers.insert(id.to_owned());
    }

    pub fn task(&mut self, id: &str) {
        self.tasks.insert(id.to_owned());
    }

    pub fn pledge(&mut self, id: &str) {
        self.pledges.insert(id.to_owned());
    }

    pub fn pair(&mut self, volunteer: &str, task: &str) {
        self.volunteer(volunteer);
        self.task(task);
    }

    /// How many things were touched (`everything` aside).
    pub fn len(&self) -> usize {
        self.volunteers.len() + self.tasks.len() + self.pledges.len()
    }

    /// Adds what `other` touched.
    pub fn merge(&mut self, other: Touched) {
        self.everything |= other.everything;
        self.volunteers.extend(other.volunteers);
        self.tasks.extend(other.tasks);
        self.pledges.extend(other.pledges);
    }

    /// Two parts that together touch what this does, each about half of
    /// it: what a burst too big for one scope is planned in, one after the
    /// other (each part's plan keeps every rule for the whole world, so a
    /// sequence of them does too).
    pub fn halves(self) -> (Touched, Touched) {
        let mut first = Touched::default();
        let mut second = Touched::default();
        let half = self.len() / 2;
        let items = self
            .volunteers
            .into_iter()
            .map(|id| (0, id))
            .chain(self.tasks.into_iter().map(|id| (1, id)))
            .chain(self.pledges.into_iter().map(|id| (2, id)));
        for (index, (kind, id)) in items.enumerate() {
            let part = if index < half {
                &mut first
            } else {
                &mut second
            };
            match kind {
                0 => part.volunteers.insert(id),
                1 => part.tasks.insert(id),
                _ => part.pledges.insert(id),
            };
        }
        (first, second)
    }
}

/// The part of the world one scoped run plans.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    /// Planned afresh. May name tasks that are gone: their live pairs are
    /// released.
    pub tasks: BTreeSet<String>,
    pub volunteers: BTreeSet<String>,
    pub pledges: BTreeSet<String>,
    /// Tasks outside the scope that its volunteers are live on, with those
    /// volunteers: their time stays booked.
    pub context: BTreeMap<String, Vec<String>>,
}

/// Where volunteers and tasks are found by skill and region. A volunteer
/// is listed under each skill they hold (and [`ANY_SKILL`]), for their
/// region and for `None` (anywhere); a task under its first skill (or
/// [`ANY_SKILL`]) and its region (`None`: remote). A task in region `r`
/// asking for skill `s` finds its candidates under `(s, Some(r))`, a remote
/// one under `(s, None)`.
#[derive(Clone, Debug, Default)]
pub struct WorldIndex {
    volunteers: HashMap<(String, Option<String>), BTreeSet<String>>,
    tasks: HashMap<(String, Option<String>), BTreeSet<String>>,
    /// Task -> the tasks that depend on it.
    dependents: HashMap<String, BTreeSet<String>>,
    /// Tasks that ask for money.
    money_tasks: BTreeSet<String>,
}

impl WorldIndex {
    pub fn add_volunteer(&mut self, offer: &VolunteerOffer) {
        for key in volunteer_keys(offer) {
            self.volunteers
                .entry(key)
                .or_default()
                .insert(offer.id.clone());
        }
    }

    pub fn remove_volunteer(&mut self, offer: &VolunteerOffer) {
        for key in volunteer_keys(offer) {
            forget(&mut self.volunteers, &key, &offer.id);
        }
    }

    pub fn add_task(&mut self, task: &TaskSpec) {
        self.tasks
            .entry(task_key(task))
            .or_default()
            .insert(task.id.clone());
        for dependency in &task.depends_on {
            self.dependents
                .entry(dependency.clone())
                .or_default()
                .insert(task.id.clone());
        }
        if task.money_cents > 0 {
            self.money_tasks.insert(task.id.clone());
        }
    }

    pub fn remove_task(&mut self, task: &TaskSpec) {
        forget(&mut self.tasks, &task_key(task), &task.id);
        for dependency in &task.depends_on {
            if let Some(dependents) = self.dependents.get_mut(dependency) {
                dependents.remove(&task.id);
                if dependents.is_empty() {
                    self.dependents.remove(dependency);
                }
            }
        }
        self.money_tasks.remove(&task.id);
    }

    pub fn dependents_of(&self, task: &str) -> impl Iterator<Item = &String> {
        self.dependents.get(task).into_iter().flatten()
    }
}

fn volunteer_keys(offer: &VolunteerOffer) -> Vec<(String, Option<String>)> {
    let mut keys = Vec::with_capacity(2 * (offer.skills.len() + 1));
    for skill in offer.skills.keys().map(String::as_str).chain([ANY_SKILL]) {
        keys.push((skill.to_owned(), None));
        if let Some(region) = &offer.region {
            keys.push((skill.to_owned(), Some(region.clone())));
        }
    }
    keys
}

fn task_key(task: &TaskSpec) -> (String, Option<String>) {
    let skill = task.skills.keys().next().map_or(ANY_SKILL, String::as_str);
    (skill.to_owned(), task.region.clone())
}

fn forget<K: std::hash::Hash + Eq>(
    index: &mut HashMap<K, BTreeSet<String>>,
    key: &K,
    member: &str,
) {
    if let Some(members) = index.get_mut(key) {
        members.remove(member);
        if members.is_empty() {
            index.remove(key);
        }
    }
}

/// The members of `set`, starting from where `pivot` would sort and
/// wrapping around: a search that stops early does not always favour the
/// same ids.
fn from_pivot<'a>(set: &'a BTreeSet<String>, pivot: &'a str) -> impl Iterator<Item = &'a String> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    set.range::<str, _>((Included(pivot), Unbounded))
        .chain(set.range::<str, _>((Unbounded, Excluded(pivot))))
}

/// Hours of a window `[start, end]` a volunteer can give, at their even rate.
fn capacity(offer: &VolunteerOffer, start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    let from = start.max(offer.available_from);
    let until = end.min(offer.available_until);
    if until <= from {
        return 0.0;
    }
    offer.hours_per_week / 168.0 * (until - from).num_seconds() as f64 / 3600.0
}

impl OpenWorld {
    /// Whether `offer` may work on `task` at `now`: rule 1 of problem.md
    /// with this world's trust, still available, and with time for it
    /// inside the task's window.
    pub fn may_work_on(&self, offer: &VolunteerOffer, task: &TaskSpec, now: DateTime<Utc>) -> bool {
        task.slots > 0
            && task.deadline > now
            && offer.available_until > now
            && task
                .region
                .as_ref()
                .is_none_or(|region| offer.region.as_ref() == Some(region))
            && self.trust_of(offer) >= task.sensitivity
            && task
                .skills
                .iter()
                .all(|(skill, level)| offer.skills.get(skill).is_some_and(|held| held >= level))
            && capacity(offer, now.max(task.earliest_start), task.deadline) >= task.hours
            && !self.is_forbidden(&pair_key(&offer.id, &task.id))
    }

    /// Whether `pledge` may pay for `task` at `now` (problem.md's pledge
    /// rule and the currency).
    fn may_fund(pledge: &PledgeOffer, task: &TaskSpec, now: DateTime<Utc>) -> bool {
        let currency =
            |code: Option<&String>| code.map_or(CURRENCY_DEFAULT.to_owned(), Clone::clone);
        currency(pledge.currency.as_ref()) == currency(task.currency.as_ref())
            && pledge.collectives.as_ref().is_none_or(|allowed| {
                task.collective
                    .as_ref()
                    .is_some_and(|collective| allowed.contains(collective))
            })
            && pledge
                .tags
                .as_ref()
                .is_none_or(|tags| tags.iter().any(|tag| task.tags.contains(tag)))
            && pledge
                .expires_at
                .is_none_or(|expiry| expiry > now.max(task.earliest_start))
    }

    /// Whether `task` still wants people: open, with fewer live members than slots.
    fn wants_people(&self, task: &TaskSpec, now: DateTime<Utc>) -> bool {
        task.deadline > now && self.live.team_size(&task.id) < usize::from(task.slots)
    }

    /// Whether `task` still wants money: open, asking for more than is held.
    fn wants_money(&self, task: &TaskSpec, now: DateTime<Utc>) -> bool {
        task.deadline > now
            && task.money_cents > self.money.committed(&task.id).get()
            && (task.slots == 0 || self.live.team_size(&task.id) < usize::from(task.slots))
    }

    /// The open tasks `offer` could join, the most valuable per hour first.
    fn work_for(&self, offer: &VolunteerOffer, now: DateTime<Utc>) -> Vec<String> {
        let mut found: Vec<(f64, &str)> = Vec::new();
        let mut regions: Vec<Option<String>> = vec![None];
        if offer.region.is_some() {
            regions.push(offer.region.clone());
        }
        for skill in offer.skills.keys().map(String::as_str).chain([ANY_SKILL]) {
            for region in &regions {
                let Some(bucket) = self.index.tasks.get(&(skill.to_owned(), region.clone())) else {
                    continue;
                };
                for id in from_pivot(bucket, &offer.id).take(SCAN_MAX) {
                    let Some(task) = self.tasks.get(id) else {
                        continue;
                    };
                    if self.wants_people(task, now) && self.may_work_on(offer, task, now) {
                        found.push((value_per_hour(task), id));
                    }
                }
            }
        }
        best(found, TASKS_PER_VOLUNTEER)
    }

    /// The open money tasks `pledge` could fund, the most valuable first.
    fn work_for_pledge(&self, pledge: &PledgeOffer, now: DateTime<Utc>) -> Vec<String> {
        let found: Vec<(f64, &str)> = from_pivot(&self.index.money_tasks, &pledge.id)
            .take(SCAN_MAX)
            .filter_map(|id| self.tasks.get(id))
            .filter(|task| self.wants_money(task, now) && Self::may_fund(pledge, task, now))
            .map(|task| (task.impact, task.id.as_str()))
            .collect();
        best(found, TASKS_PER_PLEDGE)
    }

    /// Volunteers who could fill `task`'s open slots: idle ones first.
    fn candidates_for(&self, task: &TaskSpec, now: DateTime<Utc>) -> Vec<String> {
        let open = usize::from(task.slots).saturating_sub(self.live.team_size(&task.id));
        if open == 0 {
            return Vec::new();
        }
        let wanted = (open * CANDIDATES_PER_SLOT).max(CANDIDATES_MIN);
        let skill = task.skills.keys().next().map_or(ANY_SKILL, String::as_str);
        let Some(bucket) = self
            .index
            .volunteers
            .get(&(skill.to_owned(), task.region.clone()))
        else {
            return Vec::new();
        };
        let mut idle = Vec::new();
        let mut busy = Vec::new();
        for id in from_pivot(bucket, &task.id).take(SCAN_MAX) {
            let Some(offer) = self.volunteers.get(id) else {
                continue;
            };
            if self.live.contains_key(&pair_key(id, &task.id))
                || !self.may_work_on(offer, task, now)
            {
                continue;
            }
            if self.live.load_of(id) == 0 {
                idle.push(id.clone());
                if idle.len() == wanted {
                    break;
                }
            } else if busy.len() < wanted {
                busy.push(id.clone());
            }
        }
        idle.extend(busy.into_iter().take(wanted - idle.len()));
        idle
    }

    /// Pledges that could fund `task`, with money left.
    fn pledges_for(&self, task: &TaskSpec, now: DateTime<Utc>) -> Vec<String> {
        self.pledges
            .values()
            .filter(|pledge| pledge.expires_at.is_none_or(|expiry| expiry > now))
            .filter(|pledge| {
                self.money.pledge(&pledge.id).is_none()
                    || self.money.available(&pledge.id).get() > 0
            })
            .filter(|pledge| Self::may_fund(pledge, task, now))
            .take(PLEDGES_PER_TASK)
            .map(|pledge| pledge.id.clone())
            .collect()
    }

    /// The part of the world `touched` can change, or `None` when it is too
    /// big for a scoped run (a full run is due instead).
    pub fn scope(&self, touched: &Touched, now: DateTime<Utc>) -> Option<Scope> {
        if touched.everything {
            return None;
        }
        let mut scope = Scope::default();
        let mut seeds: BTreeSet<String> = BTreeSet::new();
        for task in &touched.tasks {
            seeds.insert(task.clone());
            // What depends on a task completed, cancelled or re-posted.
            seeds.extend(self.index.dependents_of(task).cloned());
        }
        for volunteer in &touched.volunteers {
            seeds.extend(self.live.tasks_of(volunteer).cloned());
            if let Some(offer) = self.volunteers.get(volunteer) {
                if offer.available_until > now {
                    scope.volunteers.insert(volunteer.clone());
                    seeds.extend(self.work_for(offer, now));
                }
            }
            // Known too big before the searches of the rest.
            if seeds.len() > SCOPE_TASKS_MAX {
                return None;
            }
        }
        for pledge in &touched.pledges {
            if let Some(offer) = self.pledges.get(pledge) {
                scope.pledges.insert(pledge.clone());
                seeds.extend(self.work_for_pledge(offer, now));
            }
            if seeds.len() > SCOPE_TASKS_MAX {
                return None;
            }
        }
        // Dependencies must be staffed in the same plan, and what depends
        // on a task may become possible or impossible with it: the scope
        // takes the whole of its tasks' dependency chains.
        let mut queue: Vec<String> = seeds.into_iter().collect();
        while let Some(task) = queue.pop() {
            if !scope.tasks.insert(task.clone()) {
                continue;
            }
            if scope.tasks.len() > SCOPE_TASKS_MAX {
                return None;
            }
            let Some(spec) = self.tasks.get(&task) else {
                continue;
            };
            for dependency in &spec.depends_on {
                if self.tasks.contains_key(dependency) && !scope.tasks.contains(dependency) {
                    queue.push(dependency.clone());
                }
            }
            // Every dependent, staffed or not: one whose dependency loses
            // its team must lose its own in the same plan.
            for dependent in self.index.dependents_of(&task) {
                if !scope.tasks.contains(dependent) && self.tasks.contains_key(dependent) {
                    queue.push(dependent.clone());
                }
            }
        }
        for task in &scope.tasks {
            let Some(spec) = self.tasks.get(task) else {
                continue;
            };
            scope
                .volunteers
                .extend(self.live.of_task(task).map(|live| live.volunteer.clone()));
            scope.volunteers.extend(
                self.coordinator_pins
                    .values()
                    .filter(|(_, pinned)| pinned == task)
                    .map(|(volunteer, _)| volunteer.clone()),
            );
            scope.volunteers.extend(self.candidates_for(spec, now));
            if spec.money_cents > 0 {
                scope.pledges.extend(self.pledges_for(spec, now));
            }
        }
        for volunteer in &scope.volunteers {
            for task in self.live.tasks_of(volunteer) {
                // Finished work books no more of their time.
                let finished = self
                    .live
                    .get(&pair_key(volunteer, task))
                    .is_some_and(|live| live.standing == Standing::Finished);
                if !finished && !scope.tasks.contains(task) {
                    scope
                        .context
                        .entry(task.clone())
                        .or_default()
                        .push(volunteer.clone());
                }
            }
        }
        Some(scope)
    }
}

/// Impact per hour of a whole team's time: how the greedy ranks work too.
fn value_per_hour(task: &TaskSpec) -> f64 {
    task.impact / (task.hours * f64::from(task.slots)).max(1e-9)
}

/// The ids of the `count` highest-valued entries, best first (ties by id).
fn best(mut found: Vec<(f64, &str)>, count: usize) -> Vec<String> {
    found.sort_by(|one, other| other.0.total_cmp(&one.0).then(one.1.cmp(other.1)));
    found.dedup_by(|one, other| one.1 == other.1);
    found
        .into_iter()
        .take(count)
        .map(|(_, id)| id.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use plumbing::store::{Changes, Store};
    use proptest::prelude::*;
    use proto::events::Event;
    use proto::instance::{Assignment, Funding, Plan};
    use proto::wire::{NeedPost, PledgeOffer, TaskSpec, VolunteerOffer, WithdrawKind, Withdrawal};
    use solver_core::{Problem, SolveOptions};

    use super::Touched;
    use crate::world::{pair_key, LiveAssignment, OpenWorld, Priorities, Standing};
    use crate::Sharding;

    const SKILLS: [&str; 3] = ["legal", "spanish", "driving"];
    const REGIONS: [Option<&str>; 3] = [None, Some("detroit"), Some("flint")];

    fn now() -> DateTime<Utc> {
        "2026-11-22T00:00:00Z".parse().unwrap()
    }

    /// (skill mask, level, hours/week, days available, region)
    type VolunteerSeed = (u8, u8, u8, u8, usize);
    /// (skill mask, slots, hours, days to deadline, region, money, impact, depends on previous)
    type TaskSeed = (u8, u8, u8, u8, usize, u8, u8, bool);

    fn skills(mask: u8, level: u8) -> BTreeMap<String, u8> {
        SKILLS
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, skill)| ((*skill).to_owned(), level))
            .collect()
    }

    fn volunteer(id: &str, seed: VolunteerSeed) -> VolunteerOffer {
        let (mask, level, hours, days, region) = seed;
        VolunteerOffer {
            id: id.to_owned(),
            skills: skills(mask, 1 + level % 3),
            hours_per_week: f64::from(2 + hours % 10),
            available_from: now(),
            available_until: now() + chrono::Duration::days(i64::from(3 + days % 21)),
            region: REGIONS[region % 3].map(str::to_owned),
            trust: 1,
            name: None,
            contact: None,
            sealed: None,
            languages: Vec::new(),
            weekly: Vec::new(),
            tz: None,
            home: None,
            max_km: None,
        }
    }

    fn task(id: &str, seed: TaskSeed, previous: Option<&str>) -> TaskSpec {
        let (mask, slots, hours, days, region, money, impact, depends) = seed;
        serde_json::from_value(serde_json::json!({
            "id": id, "title": id,
            "skills": skills(mask & 3, 1),
            "hours": f64::from(1 + hours % 6),
            "slots": if money % 5 == 0 { 0 } else { 1 + slots % 3 },
            "earliest_start": now(),
            "deadline": now() + chrono::Duration::days(i64::from(2 + days % 20)),
            "region": REGIONS[region % 3],
            "money_cents": if money % 2 == 0 { u64::from(money) * 1000 } else { 0 },
            "impact": f64::from(1 + impact % 50),
            "depends_on": previous.filter(|_| depends).into_iter().collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    fn pledge(id: &str, cents: u8) -> PledgeOffer {
        PledgeOffer {
            id: id.to_owned(),
            amount_cents: u64::from(cents) * 2000,
            collectives: None,
            tags: None,
            expires_at: None,
            donor: None,
            sealed: None,
            currency: None,
        }
    }

    fn apply(world: &mut OpenWorld, event: Event, touched: &mut Touched) {
        world.touches(&event, touched);
        world.apply_event(&event, &mut Changes::default()).unwrap();
    }

    fn greedy(problem: &Problem) -> solver_core::SolveReport {
        solver_core::solve(
            problem,
            &SolveOptions {
                greedy_only: true,
                time_limit: Duration::from_millis(500),
                ..SolveOptions::default()
            },
        )
    }

    /// A change after the first plan: what the scoped run must absorb.
    #[derive(Clone, Debug)]
    enum Change {
        Volunteer(VolunteerSeed),
        Task(TaskSeed),
        Pledge(u8),
        WithdrawVolunteer(usize),
        WithdrawTask(usize),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            any::<VolunteerSeed>().prop_map(Change::Volunteer),
            any::<TaskSeed>().prop_map(Change::Task),
            any::<u8>().prop_map(Change::Pledge),
            any::<usize>().prop_map(Change::WithdrawVolunteer),
            any::<usize>().prop_map(Change::WithdrawTask),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A scoped plan joined to the rest of the current plan keeps
        /// every rule of problem.md for the whole world: nobody booked
        /// past their time, no pledge spent twice, dependencies whole.
        #[test]
        fn a_scoped_plan_joined_to_the_rest_keeps_every_rule_for_the_whole_world(
            volunteers in prop::collection::vec(any::<VolunteerSeed>(), 5..40),
            tasks in prop::collection::vec(any::<TaskSeed>(), 5..40),
            pledges in prop::collection::vec(any::<u8>(), 0..4),
            changes in prop::collection::vec(change(), 1..4),
        ) {
            let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
            world.priorities = Priorities::CANONICAL;
            let mut ignored = Touched::default();
            for (index, seed) in volunteers.iter().enumerate() {
                let offer = volunteer(&format!("v{index}"), *seed);
                apply(&mut world, Event::VolunteerOffered(offer), &mut ignored);
            }
            let mut specs = Vec::new();
            for (index, seed) in tasks.iter().enumerate() {
                let previous = index.checked_sub(1).map(|previous| format!("t{previous}"));
                specs.push(task(&format!("t{index}"), *seed, previous.as_deref()));
            }
            let need = NeedPost {
                id: "n1".into(), collective: "c1".into(), title: "n1".into(), tasks: specs,
            };
            apply(&mut world, Event::NeedPosted(need), &mut ignored);
            for (index, cents) in pledges.iter().enumerate() {
                apply(&mut world, Event::PledgeOffered(pledge(&format!("p{index}"), *cents)), &mut ignored);
            }
            // The first plan, over everything; its pairs go live as proposals.
            let snapshot = world.snapshot(now(), true, &HashSet::new(), &Sharding::whole());
            let problem = Problem::from_world(&snapshot).unwrap();
            let first = greedy(&problem).solution.to_plan(&problem);
            for assignment in &first.assignments {
                let live = LiveAssignment {
                    volunteer: assignment.volunteer.clone(),
                    task: assignment.task.clone(),
                    round: 0,
                    standing: Standing::Proposed,
                    since: Some(now()),
                };
                world.live.insert(pair_key(&assignment.volunteer, &assignment.task), live);
            }
            // Changes, then one scoped run over what they touched.
            let mut touched = Touched::default();
            let mut next = 1000;
            for change in changes {
                next += 1;
                let event = match change {
                    Change::Volunteer(seed) => Event::VolunteerOffered(volunteer(&format!("v{next}"), seed)),
                    Change::Task(seed) => Event::NeedPosted(NeedPost {
                        id: format!("n{next}"), collective: "c1".into(), title: "new".into(),
                        tasks: vec![task(&format!("t{next}"), seed, Some("t0"))],
                    }),
                    Change::Pledge(cents) => Event::PledgeOffered(pledge(&format!("p{next}"), cents)),
                    Change::WithdrawVolunteer(pick) => Event::Withdrawn(Withdrawal {
                        kind: WithdrawKind::Volunteer, id: format!("v{}", pick % volunteers.len()),
                    }),
                    Change::WithdrawTask(pick) => Event::Withdrawn(Withdrawal {
                        kind: WithdrawKind::Task, id: format!("t{}", pick % tasks.len()),
                    }),
                };
                apply(&mut world, event, &mut touched);
            }
            let Some(scope) = world.scope(&touched, now()) else {
                return Ok(());
            };
            let mut spent_elsewhere: HashMap<String, u64> = HashMap::new();
            for funding in first.funding.iter().filter(|funding| !scope.tasks.contains(&funding.task)) {
                *spent_elsewhere.entry(funding.pledge.clone()).or_default() += funding.amount_cents;
            }
            let scoped = world.scoped_snapshot(now(), &HashSet::new(), &scope, &spent_elsewhere);
            let scoped_problem = Problem::from_world(&scoped).unwrap();
            let report = greedy(&scoped_problem);
            prop_assume!(report.dropped_pins.iter().all(|&task| {
                !scope.context.contains_key(scoped_problem.task_id(task).as_str())
            }));
            let inside = report.solution.to_plan(&scoped_problem);
            let gone = |assignment: &Assignment| {
                !world.volunteers.contains_key(&assignment.volunteer)
                    || !world.tasks.contains_key(&assignment.task)
            };
            let mut joined = Plan::empty();
            joined.assignments = first.assignments.iter()
                .filter(|assignment| !scope.tasks.contains(&assignment.task) && !gone(assignment))
                .chain(inside.assignments.iter().filter(|assignment| scope.tasks.contains(&assignment.task)))
                .cloned()
                .collect();
            joined.funding = first.funding.iter()
                .filter(|funding| !scope.tasks.contains(&funding.task))
                .chain(inside.funding.iter().filter(|funding| scope.tasks.contains(&funding.task)))
                .cloned()
                .collect::<Vec<Funding>>();
            // Judged against the whole world after the changes, pins aside.
            let whole = world.snapshot(now(), false, &HashSet::new(), &Sharding::whole());
            let whole_problem = Problem::from_world(&whole).unwrap();
            let verdict = solver_core::check(&whole_problem, &joined);
            prop_assert!(verdict.is_ok(), "{:?}\nscope {:?}", verdict, scope);
        }
    }

    #[test]
    fn halves_touch_together_what_the_whole_did_each_about_half() {
        let mut touched = Touched::default();
        for index in 0..5 {
            touched.volunteer(&format!("v{index}"));
        }
        touched.task("t0");
        touched.task("t1");
        touched.pledge("p0");
        let (first, second) = touched.clone().halves();
        assert_eq!((first.len(), second.len()), (4, 4));
        let mut joined = first.clone();
        joined.merge(second.clone());
        assert_eq!(joined.volunteers, touched.volunteers);
        assert_eq!(joined.tasks, touched.tasks);
        assert_eq!(joined.pledges, touched.pledges);
        assert!(first.volunteers.is_disjoint(&second.volunteers));
        let (one, none) = {
            let mut single = Touched::default();
            single.task("t0");
            single.halves()
        };
        assert_eq!(
            (one.len(), none.len()),
            (0, 1),
            "one thing cannot be split further"
        );
    }

    #[test]
    fn a_new_volunteer_brings_the_work_they_can_do_and_the_time_others_have_booked() {
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        let mut touched = Touched::default();
        let legal = (0b001, 2, 6, 20, 1);
        apply(
            &mut world,
            Event::VolunteerOffered(volunteer("v-busy", legal)),
            &mut touched,
        );
        let need = NeedPost {
            id: "n1".into(),
            collective: "c1".into(),
            title: "clinic".into(),
            tasks: vec![
                task("t-legal", (0b001, 1, 2, 10, 1, 1, 10, false), None),
                task("t-spanish", (0b010, 0, 2, 10, 1, 1, 10, false), None),
                task("t-booked", (0b001, 0, 2, 10, 1, 1, 10, false), None),
            ],
        };
        apply(&mut world, Event::NeedPosted(need), &mut touched);
        let live = LiveAssignment {
            volunteer: "v-busy".into(),
            task: "t-booked".into(),
            round: 0,
            standing: Standing::Accepted,
            since: Some(now()),
        };
        world.live.insert(pair_key("v-busy", "t-booked"), live);
        let mut touched = Touched::default();
        apply(
            &mut world,
            Event::VolunteerOffered(volunteer("v-new", legal)),
            &mut touched,
        );
        let scope = world.scope(&touched, now()).unwrap();
        assert!(scope.tasks.contains("t-legal"));
        assert!(!scope.tasks.contains("t-spanish"), "v-new reads no Spanish");
        assert!(!scope.tasks.contains("t-booked"), "t-booked is staffed");
        assert!(scope.volunteers.contains("v-new") && scope.volunteers.contains("v-busy"));
        assert_eq!(
            scope.context.get("t-booked"),
            Some(&vec!["v-busy".to_owned()])
        );
    }
}
