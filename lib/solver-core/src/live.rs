//! Tier 1: the live plan, changed one arrival or departure at a time.
//!
//! Between full solves the switchboard must answer in milliseconds when a
//! volunteer signs up, a need is posted, a pledge arrives or someone leaves.
//! [`LivePlan`] keeps the problem and a feasible plan together and repairs
//! only what an event touches: new objects are matched through indexes by
//! skill (volunteers and tasks) and by the pledge's reach (money tasks);
//! withdrawn objects keep their index but lose every candidate pair, so no
//! other index moves.
//!
//! Repairs are regret-style: among the tasks an event touches, the one with
//! the fewest spare candidates (the one that would lose most by waiting) is
//! staffed first, with the least demanded volunteers. Every change goes
//! through [`State`], so the plan keeps every rule after every event.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use proto::domain::{Pledge, Task, Volunteer, World};

use crate::problem::{
    resolve_dependencies, task_facts, volunteer_facts, PledgeFacts, Problem, ProblemError,
};
use crate::solution::Solution;
use crate::state::State;
use crate::time::fits_with;

/// The problem, a feasible plan, and the indexes that find what an event touches.
pub struct LivePlan {
    problem: Problem,
    now: DateTime<Utc>,
    done: BTreeSet<proto::Id>,
    volunteers: Vec<Volunteer>,
    tasks: Vec<Task>,
    pledges: Vec<Pledge>,
    /// Skill name -> volunteers holding it (withdrawn ones included; they
    /// are skipped by `withdrawn_volunteer`).
    volunteers_by_skill: HashMap<String, Vec<usize>>,
    /// Skill name -> tasks asking for it; tasks asking for none are under "".
    tasks_by_skill: HashMap<String, Vec<usize>>,
    withdrawn_volunteer: Vec<bool>,
    withdrawn_task: Vec<bool>,
    // The plan, in the same shape as `State` (moved in and out of one).
    load: Vec<Vec<usize>>,
    team: Vec<Vec<usize>>,
    paid_by: Vec<Vec<(usize, u64)>>,
    pledge_left: Vec<u64>,
    complete: Vec<bool>,
}

impl LivePlan {
    /// Starts from a world and a feasible plan of it (usually `solve`'s).
    pub fn new(world: &World, solution: &Solution) -> Result<LivePlan, ProblemError> {
        let problem = Problem::from_world(world)?;
        let state = State::from_solution(&problem, solution);
        let (load, team, paid_by, pledge_left, complete) = (
            state.load,
            state.team,
            state.paid_by,
            state.pledge_left,
            state.complete,
        );
        let mut live = LivePlan {
            now: world.now,
            done: world.done.clone(),
            volunteers: world.volunteers.clone(),
            tasks: world.tasks.clone(),
            pledges: world.pledges.clone(),
            volunteers_by_skill: HashMap::new(),
            tasks_by_skill: HashMap::new(),
            withdrawn_volunteer: vec![false; world.volunteers.len()],
            withdrawn_task: vec![false; world.tasks.len()],
            load,
            team,
            paid_by,
            pledge_left,
            complete,
            problem,
        };
        for index in 0..live.volunteers.len() {
            live.index_volunteer(index);
        }
        for index in 0..live.tasks.len() {
            live.index_task(index);
        }
        Ok(live)
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The current plan.
    pub fn solution(&self) -> Solution {
        let mut solution = Solution::default();
        for task in 0..self.complete.len() {
            if self.complete[task] {
                solution
                    .assignments
                    .extend(self.team[task].iter().map(|&volunteer| (volunteer, task)));
                solution.funding.extend(
                    self.paid_by[task]
                        .iter()
                        .map(|&(pledge, cents)| (pledge, task, cents)),
                );
            }
        }
        solution
    }

    /// The current objective: impact of complete tasks.
    pub fn objective(&self) -> f64 {
        (0..self.complete.len())
            .filter(|&task| self.complete[task])
            .map(|task| self.problem.tasks[task].impact)
            .sum()
    }

    /// A volunteer signs up: index them, then staff what they make possible.
    /// Returns their index and the tasks completed by the repair.
    pub fn add_volunteer(
        &mut self,
        volunteer: &Volunteer,
    ) -> Result<(usize, Vec<usize>), ProblemError> {
        if self
            .problem
            .volunteer_index_by_id
            .contains_key(volunteer.id.as_str())
        {
            return Err(ProblemError::DuplicateId {
                kind: "volunteer",
                id: volunteer.id.to_string(),
            });
        }
        let index = self.volunteers.len();
        self.volunteers.push(volunteer.clone());
        self.withdrawn_volunteer.push(false);
        self.problem.volunteer_ids.push(volunteer.id.clone());
        self.problem
            .volunteer_index_by_id
            .insert(volunteer.id.to_string(), index);
        let zone = self.problem.zone_index(volunteer.tz);
        self.problem
            .volunteers
            .push(volunteer_facts(self.now, volunteer, zone));
        self.problem.tasks_of_volunteer.push(Vec::new());
        self.load.push(Vec::new());
        self.index_volunteer(index);

        // Tasks asking for a skill they hold, or for none.
        let mut reachable: BTreeSet<usize> = BTreeSet::new();
        for skill in volunteer
            .skills
            .keys()
            .map(String::as_str)
            .chain(std::iter::once(""))
        {
            reachable.extend(
                self.tasks_by_skill
                    .get(skill)
                    .into_iter()
                    .flatten()
                    .copied(),
            );
        }
        for task in reachable {
            if self.pair_is_candidate(index, task) {
                // The new index is the largest: pushing keeps both lists sorted.
                self.problem.candidates_of_task[task].push(index);
                self.problem.tasks_of_volunteer[index].push(task);
            }
        }
        let touched: Vec<usize> = self.problem.tasks_of_volunteer[index].clone();
        Ok((index, self.repair(&touched)))
    }

    /// A task is posted: index it, then try to complete it.
    pub fn add_task(&mut self, task: &Task) -> Result<(usize, Vec<usize>), ProblemError> {
        if self.problem.task_index_by_id.contains_key(task.id.as_str()) {
            return Err(ProblemError::DuplicateId {
                kind: "task",
                id: task.id.to_string(),
            });
        }
        let dependencies =
            resolve_dependencies(task, &self.done, |id| self.problem.task_index(id))?;
        let index = self.tasks.len();
        self.tasks.push(task.clone());
        self.withdrawn_task.push(false);
        let problem = &mut self.problem;
        problem.task_ids.push(task.id.clone());
        problem.task_index_by_id.insert(task.id.to_string(), index);
        for &dependency in &dependencies {
            problem.dependents_of_task[dependency].push(index);
        }
        problem.tasks.push(task_facts(self.now, task, dependencies));
        problem.push_task_local_shifts();
        let first_shift = task.shift.is_some() && !problem.has_shifts;
        problem.dependents_of_task.push(Vec::new());
        // Its dependencies exist already and nothing depends on it yet.
        problem.topological_order.push(index);
        problem.candidates_of_task.push(Vec::new());
        problem.pledges_of_task.push(Vec::new());
        self.team.push(Vec::new());
        self.paid_by.push(Vec::new());
        self.complete.push(false);
        self.index_task(index);
        if first_shift {
            self.enter_shift_rules();
        }

        let mut holders: BTreeSet<usize> = BTreeSet::new();
        if task.skills.is_empty() {
            holders.extend(0..self.volunteers.len());
        } else if let Some(rarest) = task
            .skills
            .keys()
            .map(|skill| {
                self.volunteers_by_skill
                    .get(skill.as_str())
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|holders| holders.len())
        {
            holders.extend(rarest.iter().copied());
        }
        for volunteer in holders {
            if self.pair_is_candidate(volunteer, index) {
                self.problem.candidates_of_task[index].push(volunteer);
                insert_sorted_unique(&mut self.problem.tasks_of_volunteer[volunteer], index);
            }
        }
        if task.money.0 > 0 {
            let window_start = task.earliest_start.max(self.now);
            for (pledge_index, pledge) in self.pledges.iter().enumerate() {
                if pledge.can_fund(task, window_start) {
                    self.problem.pledges_of_task[index].push(pledge_index);
                    self.problem.tasks_of_pledge[pledge_index].push(index);
                }
            }
        }
        Ok((index, self.repair(&[index])))
    }

    /// A pledge arrives: find the money tasks it may pay, then complete what
    /// the money now allows.
    pub fn add_pledge(&mut self, pledge: &Pledge) -> Result<(usize, Vec<usize>), ProblemError> {
        if self
            .problem
            .pledge_index_by_id
            .contains_key(pledge.id.as_str())
        {
            return Err(ProblemError::DuplicateId {
                kind: "pledge",
                id: pledge.id.to_string(),
            });
        }
        let index = self.pledges.len();
        self.pledges.push(pledge.clone());
        self.problem.pledge_ids.push(pledge.id.clone());
        self.problem
            .pledge_index_by_id
            .insert(pledge.id.to_string(), index);
        self.problem.pledges.push(PledgeFacts {
            amount_cents: pledge.amount.0,
        });
        self.problem.tasks_of_pledge.push(Vec::new());
        self.pledge_left.push(pledge.amount.0);
        for (task_index, task) in self.tasks.iter().enumerate() {
            if task.money.0 == 0 || self.withdrawn_task[task_index] {
                continue;
            }
            if pledge.can_fund(task, task.earliest_start.max(self.now)) {
                self.problem.pledges_of_task[task_index].push(index);
                self.problem.tasks_of_pledge[index].push(task_index);
            }
        }
        let touched: Vec<usize> = self.problem.tasks_of_pledge[index].clone();
        Ok((index, self.repair(&touched)))
    }

    /// A volunteer leaves: their tasks (and what depends on them) are
    /// released and re-staffed without them where possible. Returns the
    /// tasks that could not be completed again.
    pub fn withdraw_volunteer(&mut self, volunteer: usize) -> Vec<usize> {
        if volunteer >= self.volunteers.len() || self.withdrawn_volunteer[volunteer] {
            return Vec::new();
        }
        self.withdrawn_volunteer[volunteer] = true;
        for task in std::mem::take(&mut self.problem.tasks_of_volunteer[volunteer]) {
            let candidates = &mut self.problem.candidates_of_task[task];
            if let Ok(position) = candidates.binary_search(&volunteer) {
                candidates.remove(position);
            }
        }
        let affected = self.load[volunteer].clone();
        self.release_and_repair(&affected)
    }

    /// A task is withdrawn (or done elsewhere): it and its dependents are
    /// released, its people and money freed for other tasks. Returns the
    /// tasks that could not be completed again.
    pub fn withdraw_task(&mut self, task: usize) -> Vec<usize> {
        if task >= self.tasks.len() || self.withdrawn_task[task] {
            return Vec::new();
        }
        self.withdrawn_task[task] = true;
        for volunteer in std::mem::take(&mut self.problem.candidates_of_task[task]) {
            let tasks = &mut self.problem.tasks_of_volunteer[volunteer];
            if let Ok(position) = tasks.binary_search(&task) {
                tasks.remove(position);
            }
        }
        for pledge in std::mem::take(&mut self.problem.pledges_of_task[task]) {
            self.problem.tasks_of_pledge[pledge].retain(|&other| other != task);
        }
        let freed_people: Vec<usize> = self.team[task].clone();
        let freed_money: Vec<usize> = self.paid_by[task]
            .iter()
            .map(|&(pledge, _)| pledge)
            .collect();
        let mut unfinished = self.release_and_repair(&[task]);
        unfinished.retain(|&other| other != task);
        // What the freed people and money can now do.
        let mut touched: BTreeSet<usize> = BTreeSet::new();
        for volunteer in freed_people {
            touched.extend(self.problem.tasks_of_volunteer[volunteer].iter().copied());
        }
        for pledge in freed_money {
            touched.extend(self.problem.tasks_of_pledge[pledge].iter().copied());
        }
        let touched: Vec<usize> = touched.into_iter().collect();
        self.repair(&touched);
        unfinished.retain(|&other| !self.complete[other]);
        unfinished
    }

    /// A task is done: it satisfies its dependents from now on, and leaves
    /// the plan, freeing its people and money. Returns the tasks that could
    /// not be completed again.
    pub fn mark_done(&mut self, task: usize) -> Vec<usize> {
        if task >= self.tasks.len() || self.withdrawn_task[task] {
            return Vec::new();
        }
        // Dependents stop waiting first, so releasing the task spares them.
        let dependents = std::mem::take(&mut self.problem.dependents_of_task[task]);
        for &dependent in &dependents {
            self.problem.tasks[dependent]
                .dependencies
                .retain(|&other| other != task);
        }
        self.done.insert(self.problem.task_ids[task].clone());
        let unfinished = self.withdraw_task(task);
        self.repair(&dependents);
        unfinished
    }

    /// Releases `tasks` (and their dependents), then tries to complete them
    /// again. Returns those left incomplete.
    fn release_and_repair(&mut self, tasks: &[usize]) -> Vec<usize> {
        let mut released: Vec<usize> = Vec::new();
        self.with_state(|state| {
            let before = state.complete.clone();
            for &task in tasks {
                state.release(task);
            }
            released = (0..before.len())
                .filter(|&task| before[task] && !state.complete[task])
                .collect();
        });
        self.repair(&released);
        released.retain(|&task| !self.complete[task]);
        released
    }

    /// Tries to complete the incomplete `tasks`, fewest spare candidates
    /// first, then anything their completion unlocks. Returns the tasks completed.
    pub fn repair(&mut self, tasks: &[usize]) -> Vec<usize> {
        let withdrawn_task = &self.withdrawn_task;
        let mut completed = Vec::new();
        let mut pending: Vec<usize> = tasks.to_vec();
        let problem = &self.problem;
        let mut state = State {
            problem,
            load: std::mem::take(&mut self.load),
            team: std::mem::take(&mut self.team),
            paid_by: std::mem::take(&mut self.paid_by),
            pledge_left: std::mem::take(&mut self.pledge_left),
            complete: std::mem::take(&mut self.complete),
        };
        while !pending.is_empty() {
            pending.sort_unstable();
            pending.dedup();
            pending.retain(|&task| {
                !withdrawn_task[task] && !state.complete[task] && state.dependencies_met(task)
            });
            // Regret: the task with the least room to wait goes first.
            pending.sort_by(|&a, &b| {
                let spare = |task: usize| {
                    problem.candidates_of_task[task].len() as f64 - problem.tasks[task].slots as f64
                };
                spare(a)
                    .total_cmp(&spare(b))
                    .then(problem.tasks[b].impact.total_cmp(&problem.tasks[a].impact))
                    .then(a.cmp(&b))
            });
            let mut unlocked = Vec::new();
            for task in pending.drain(..) {
                let mut volunteers = problem.candidates_of_task[task].clone();
                volunteers.sort_by_key(|&volunteer| {
                    (problem.tasks_of_volunteer[volunteer].len(), volunteer)
                });
                let mut pledges = problem.pledges_of_task[task].clone();
                pledges.sort_by_key(|&pledge| (problem.tasks_of_pledge[pledge].len(), pledge));
                if state.try_complete(task, &[], &volunteers, &pledges) {
                    completed.push(task);
                    unlocked.extend(problem.dependents_of_task[task].iter().copied());
                }
            }
            pending = unlocked;
        }
        self.load = state.load;
        self.team = state.team;
        self.paid_by = state.paid_by;
        self.pledge_left = state.pledge_left;
        self.complete = state.complete;
        completed
    }

    fn with_state(&mut self, change: impl FnOnce(&mut State<'_>)) {
        let mut state = State {
            problem: &self.problem,
            load: std::mem::take(&mut self.load),
            team: std::mem::take(&mut self.team),
            paid_by: std::mem::take(&mut self.paid_by),
            pledge_left: std::mem::take(&mut self.pledge_left),
            complete: std::mem::take(&mut self.complete),
        };
        change(&mut state);
        self.load = state.load;
        self.team = state.team;
        self.paid_by = state.paid_by;
        self.pledge_left = state.pledge_left;
        self.complete = state.complete;
    }

    fn index_volunteer(&mut self, index: usize) {
        for skill in self.volunteers[index].skills.keys() {
            self.volunteers_by_skill
                .entry(skill.clone())
                .or_default()
                .push(index);
        }
    }

    fn index_task(&mut self, index: usize) {
        let skills: Vec<String> = self.tasks[index].skills.keys().cloned().collect();
        if skills.is_empty() {
            self.tasks_by_skill
                .entry(String::new())
                .or_default()
                .push(index);
        }
        for skill in skills {
            self.tasks_by_skill.entry(skill).or_default().push(index);
        }
    }

    /// Eligible (rule 1), not withdrawn, and the task alone fits their time.
    fn pair_is_candidate(&self, volunteer: usize, task: usize) -> bool {
        if self.withdrawn_volunteer[volunteer] || self.withdrawn_task[task] {
            return false;
        }
        self.problem.tasks[task].slots > 0
            && self.volunteers[volunteer].is_eligible_for(&self.tasks[task])
            && self.problem.passes_new_rule_one(volunteer, task)
            && fits_with(&self.problem, volunteer, &[], task)
    }

    /// The first shift arrives: from now on rule 5 counts flexible tasks only
    /// and rules 5b and 5c hold (problem.md applies them only to instances
    /// with a shift). Loads that kept rule 5 may break the weekly budget, so
    /// each person keeps, in deadline order, what still fits and the rest is
    /// released and re-staffed; candidate pairs the weekly budget rules out
    /// are dropped.
    fn enter_shift_rules(&mut self) {
        self.problem.has_shifts = true;
        let mut released: BTreeSet<usize> = BTreeSet::new();
        for volunteer in 0..self.load.len() {
            let mut kept: Vec<usize> = Vec::new();
            for &task in &self.load[volunteer] {
                if fits_with(&self.problem, volunteer, &kept, task) {
                    kept.push(task);
                } else {
                    released.insert(task);
                }
            }
        }
        for volunteer in 0..self.problem.tasks_of_volunteer.len() {
            let problem = &self.problem;
            let dropped: Vec<usize> = problem.tasks_of_volunteer[volunteer]
                .iter()
                .copied()
                .filter(|&task| !fits_with(problem, volunteer, &[], task))
                .collect();
            for task in dropped {
                self.problem.tasks_of_volunteer[volunteer].retain(|&other| other != task);
                self.problem.candidates_of_task[task].retain(|&other| other != volunteer);
            }
        }
        let released: Vec<usize> = released.into_iter().collect();
        self.release_and_repair(&released);
    }
}

fn insert_sorted_unique(list: &mut Vec<usize>, value: usize) {
    if let Err(position) = list.binary_search(&value) {
        list.insert(position, value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::check::check;
    use crate::test_support::{instance, task, volunteer};
    use crate::{solve, SolveOptions};

    fn world(raw: serde_json::Value) -> World {
        let instance: proto::instance::Instance = serde_json::from_value(raw).unwrap();
        instance.validate().unwrap()
    }

    fn live(raw: serde_json::Value) -> LivePlan {
        let world = world(raw);
        let problem = Problem::from_world(&world).unwrap();
        let report = solve(
            &problem,
            &SolveOptions {
                greedy_only: true,
                ..SolveOptions::default()
            },
        );
        LivePlan::new(&world, &report.solution).unwrap()
    }

    fn assert_feasible(live: &LivePlan) {
        let plan = live.solution().to_plan(live.problem());
        assert!(
            check(live.problem(), &plan).is_ok(),
            "{:?}",
            check(live.problem(), &plan)
        );
    }

    fn domain_volunteer(raw: serde_json::Value) -> Volunteer {
        let offer: proto::wire::VolunteerOffer = serde_json::from_value(raw).unwrap();
        offer.validate("").unwrap()
    }

    #[test]
    fn a_new_volunteer_completes_the_team_that_waited_for_them() {
        let mut live = live(instance(
            vec![volunteer("v1", json!({"legal": 3}), 10.0)],
            vec![task("t1", json!({"legal": 3}), 2.0, 2, 7, 5.0)],
            vec![],
        ));
        assert_eq!(live.objective(), 0.0);
        let (index, completed) = live
            .add_volunteer(&domain_volunteer(volunteer(
                "v2",
                json!({"legal": 4}),
                10.0,
            )))
            .unwrap();
        assert_eq!(index, 1);
        assert_eq!(completed, vec![0]);
        assert_eq!(live.objective(), 5.0);
        assert_feasible(&live);
    }

    #[test]
    fn a_departing_volunteer_is_replaced_when_someone_else_can_do_it() {
        let mut live = live(instance(
            vec![
                volunteer("v1", json!({}), 10.0),
                volunteer("v2", json!({}), 10.0),
            ],
            vec![task("t1", json!({}), 2.0, 1, 7, 5.0)],
            vec![],
        ));
        let before = live.solution().assignments[0].0;
        let unfinished = live.withdraw_volunteer(before);
        assert!(unfinished.is_empty());
        assert_eq!(live.solution().assignments, vec![(1 - before, 0)]);
        assert_feasible(&live);
    }

    #[test]
    fn a_new_task_and_a_new_pledge_are_matched_as_they_arrive() {
        let mut live = live(instance(
            vec![volunteer("v1", json!({"cooking": 2}), 10.0)],
            vec![],
            vec![],
        ));
        let mut rent = task("rent", json!({}), 0.0, 0, 7, 3.0);
        rent["money_cents"] = json!(900);
        let spec: proto::wire::TaskSpec = serde_json::from_value(rent).unwrap();
        let (rent, completed) = live
            .add_task(&spec.validate_standalone("").unwrap())
            .unwrap();
        assert!(completed.is_empty(), "no money yet");
        let mut cook = task("cook", json!({"cooking": 1}), 2.0, 1, 7, 4.0);
        cook["depends_on"] = json!(["rent"]);
        let spec: proto::wire::TaskSpec = serde_json::from_value(cook).unwrap();
        let (cook, completed) = live
            .add_task(&spec.validate_standalone("").unwrap())
            .unwrap();
        assert!(completed.is_empty(), "waits for rent");
        let offer: proto::wire::PledgeOffer = serde_json::from_value(
            json!({"id": "p1", "amount_cents": 1000, "collectives": null, "tags": null, "expires_at": null}),
        )
        .unwrap();
        let (_, completed) = live.add_pledge(&offer.validate("").unwrap()).unwrap();
        assert_eq!(
            completed,
            vec![rent, cook],
            "the rent, then the task it unlocked"
        );
        assert_feasible(&live);
        // Rent done elsewhere: cooking no longer needs it and stays staffed.
        let unfinished = live.mark_done(rent);
        assert!(unfinished.is_empty());
        assert_eq!(live.solution().assignments, vec![(0, cook)]);
        assert_feasible(&live);
    }
}
