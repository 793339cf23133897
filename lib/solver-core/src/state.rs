//! A partial plan under construction that never breaks a rule.
//!
//! Every solver (the greedy, the repair step of the neighbourhood search, the
//! pins) edits plans through [`State`]: a task is either complete (whole team,
//! whole funding, dependencies complete) or untouched, each volunteer's load
//! always fits rule 5, and each pledge's remaining amount never goes below
//! zero. Keeping the invariant in one place is what lets the clever parts be
//! aggressive.

use crate::problem::Problem;
use crate::solution::Solution;
use crate::time::{fits_with, insert_sorted, remove_from};

#[derive(Clone, Debug)]
pub(crate) struct State<'problem> {
    pub problem: &'problem Problem,
    /// Per volunteer: tasks taken (or reserved for a pin), sorted by deadline.
    pub load: Vec<Vec<usize>>,
    /// Per task: its team when complete, empty otherwise.
    pub team: Vec<Vec<usize>>,
    /// Per task: `(pledge, cents)` paid when complete.
    pub paid_by: Vec<Vec<(usize, u64)>>,
    /// Per pledge: cents not yet given.
    pub pledge_left: Vec<u64>,
    pub complete: Vec<bool>,
}

impl<'problem> State<'problem> {
    pub fn new(problem: &'problem Problem) -> State<'problem> {
        State {
            problem,
            load: vec![Vec::new(); problem.volunteer_count()],
            team: vec![Vec::new(); problem.task_count()],
            paid_by: vec![Vec::new(); problem.task_count()],
            pledge_left: problem
                .pledges
                .iter()
                .map(|pledge| pledge.amount_cents)
                .collect(),
            complete: vec![false; problem.task_count()],
        }
    }

    /// Rebuilds the state of a solution that is known to be feasible (checked).
    pub fn from_solution(problem: &'problem Problem, solution: &Solution) -> State<'problem> {
        let mut state = State::new(problem);
        for &task in &solution.complete_tasks(problem) {
            state.complete[task] = true;
        }
        for &(volunteer, task) in &solution.assignments {
            state.team[task].push(volunteer);
            insert_sorted(problem, &mut state.load[volunteer], task);
        }
        for &(pledge, task, cents) in &solution.funding {
            state.paid_by[task].push((pledge, cents));
            state.pledge_left[pledge] = state.pledge_left[pledge].saturating_sub(cents);
        }
        state
    }

    pub fn to_solution(&self) -> Solution {
        let mut solution = Solution::default();
        for task in 0..self.problem.task_count() {
            if !self.complete[task] {
                continue;
            }
            for &volunteer in &self.team[task] {
                solution.assignments.push((volunteer, task));
            }
            for &(pledge, cents) in &self.paid_by[task] {
                solution.funding.push((pledge, task, cents));
            }
        }
        solution
    }

    pub fn dependencies_met(&self, task: usize) -> bool {
        self.problem.tasks[task]
            .dependencies
            .iter()
            .all(|&dependency| self.complete[dependency])
    }

    /// Whether `volunteer` could join `task` now.
    pub fn volunteer_fits(&self, volunteer: usize, task: usize) -> bool {
        fits_with(self.problem, volunteer, &self.load[volunteer], task)
    }

    /// Cents the still-available eligible pledges could give `task`.
    pub fn money_available(&self, task: usize) -> u64 {
        self.problem.pledges_of_task[task]
            .iter()
            .map(|&pledge| self.pledge_left[pledge])
            .fold(0u64, u64::saturating_add)
    }

    /// Completes `task` if its dependencies are complete, a whole team fits
    /// and its money can be found, or changes nothing and returns false.
    ///
    /// `reserved` volunteers already hold `task` in their load (pins) and
    /// join the team unconditionally; then volunteers are tried in
    /// `volunteer_order` (a ranking of the task's candidates, best first);
    /// pledges are drawn in `pledge_order`.
    pub fn try_complete(
        &mut self,
        task: usize,
        reserved: &[usize],
        volunteer_order: &[usize],
        pledge_order: &[usize],
    ) -> bool {
        if self.complete[task] || !self.dependencies_met(task) {
            return false;
        }
        let facts = &self.problem.tasks[task];
        let slots = facts.slots;
        let money = facts.money_cents;
        if money > 0 && self.money_available(task) < money {
            return false;
        }
        if reserved.len() > slots {
            return false;
        }
        let mut team: Vec<usize> = reserved.to_vec();
        for &volunteer in volunteer_order {
            if team.len() == slots {
                break;
            }
            if team.contains(&volunteer) || !self.volunteer_fits(volunteer, task) {
                continue;
            }
            team.push(volunteer);
        }
        if team.len() < slots {
            return false;
        }
        for &volunteer in &team[reserved.len()..] {
            insert_sorted(self.problem, &mut self.load[volunteer], task);
        }
        let mut still_owed = money;
        let mut paid = Vec::new();
        for &pledge in pledge_order {
            if still_owed == 0 {
                break;
            }
            let give = self.pledge_left[pledge].min(still_owed);
            if give > 0 {
                self.pledge_left[pledge] -= give;
                still_owed -= give;
                paid.push((pledge, give));
            }
        }
        debug_assert_eq!(
            still_owed, 0,
            "money was counted as available before drawing it"
        );
        self.paid_by[task] = paid;
        self.team[task] = team;
        self.complete[task] = true;
        true
    }

    /// Completes `task` with exactly this team and funding, if every rule
    /// allows it; otherwise changes nothing and returns false. The optimisers
    /// propose teams; this is where their proposals are held to the rules.
    pub fn complete_with(&mut self, task: usize, team: &[usize], paid: &[(usize, u64)]) -> bool {
        let facts = &self.problem.tasks[task];
        if self.complete[task] || !self.dependencies_met(task) || team.len() != facts.slots {
            return false;
        }
        let total: u64 = paid
            .iter()
            .map(|&(_, cents)| cents)
            .fold(0, u64::saturating_add);
        if total != facts.money_cents {
            return false;
        }
        let mut owed: std::collections::BTreeMap<usize, u64> = std::collections::BTreeMap::new();
        for &(pledge, cents) in paid {
            if !self.problem.pledge_may_fund(pledge, task) {
                return false;
            }
            *owed.entry(pledge).or_default() += cents;
        }
        if owed
            .iter()
            .any(|(&pledge, &cents)| self.pledge_left[pledge] < cents)
        {
            return false;
        }
        let mut placed = Vec::with_capacity(team.len());
        for &volunteer in team {
            let fits = !placed.contains(&volunteer)
                && self.problem.is_eligible(volunteer, task)
                && self.volunteer_fits(volunteer, task);
            if !fits {
                for &undo in &placed {
                    remove_from(&mut self.load[undo], task);
                }
                return false;
            }
            insert_sorted(self.problem, &mut self.load[volunteer], task);
            placed.push(volunteer);
        }
        for (&pledge, &cents) in &owed {
            self.pledge_left[pledge] -= cents;
        }
        self.paid_by[task] = paid
            .iter()
            .copied()
            .filter(|&(_, cents)| cents > 0)
            .collect();
        self.team[task] = placed;
        self.complete[task] = true;
        true
    }

    /// Undoes `task` and, first, every complete task that depends on it.
    /// Returns how many tasks were released.
    pub fn release(&mut self, task: usize) -> usize {
        if !self.complete[task] {
            return 0;
        }
        let mut released = 0;
        for index in 0..self.problem.dependents_of_task[task].len() {
            let dependent = self.problem.dependents_of_task[task][index];
            released += self.release(dependent);
        }
        for volunteer in std::mem::take(&mut self.team[task]) {
            remove_from(&mut self.load[volunteer], task);
        }
        for (pledge, cents) in std::mem::take(&mut self.paid_by[task]) {
            self.pledge_left[pledge] += cents;
        }
        self.complete[task] = false;
        released + 1
    }

    /// Takes `task` out of one volunteer's load without touching teams:
    /// undoes a pin reservation.
    pub fn unreserve(&mut self, volunteer: usize, task: usize) {
        remove_from(&mut self.load[volunteer], task);
    }

    /// Puts `task` into one volunteer's load ahead of the team: a pin
    /// reservation, so the time is not given away before the task is staffed.
    pub fn reserve(&mut self, volunteer: usize, task: usize) -> bool {
        if !self.problem.is_eligible(volunteer, task) || !self.volunteer_fits(volunteer, task) {
            return false;
        }
        insert_sorted(self.problem, &mut self.load[volunteer], task);
        true
    }
}
