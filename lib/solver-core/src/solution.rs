//! A solution in indexes, and its translation into a `switchboard-plan/1`.

use std::collections::BTreeMap;

use proto::instance::{Assignment, Funding, Plan, PLAN_FORMAT};

use crate::problem::Problem;

/// Who does what and which pledge pays, by index into a [`Problem`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Solution {
    /// `(volunteer, task)` pairs.
    pub assignments: Vec<(usize, usize)>,
    /// `(pledge, task, cents)` transfers.
    pub funding: Vec<(usize, usize, u64)>,
}

impl Solution {
    /// The plan file of this solution, in a stable order (by task, then
    /// volunteer or pledge) so that equal solutions give equal files.
    pub fn to_plan(&self, problem: &Problem) -> Plan {
        let mut assignments: Vec<(usize, usize)> = self.assignments.clone();
        assignments.sort_unstable_by_key(|&(volunteer, task)| (task, volunteer));
        assignments.dedup();
        let mut funding: Vec<(usize, usize, u64)> = self.funding.clone();
        funding.sort_unstable_by_key(|&(pledge, task, _)| (task, pledge));
        Plan {
            format: PLAN_FORMAT.to_owned(),
            assignments: assignments
                .into_iter()
                .map(|(volunteer, task)| Assignment {
                    volunteer: problem.volunteer_ids[volunteer].to_string(),
                    task: problem.task_ids[task].to_string(),
                })
                .collect(),
            funding: funding
                .into_iter()
                .filter(|&(_, _, cents)| cents > 0)
                .map(|(pledge, task, cents)| Funding {
                    pledge: problem.pledge_ids[pledge].to_string(),
                    task: problem.task_ids[task].to_string(),
                    amount_cents: cents,
                })
                .collect(),
        }
    }

    /// The sum of impact over the tasks this solution completes (whole team,
    /// whole funding). It does not check the other rules: [`crate::check`] does.
    pub fn objective(&self, problem: &Problem) -> f64 {
        self.complete_tasks(problem)
            .iter()
            .map(|&task| problem.tasks[task].impact)
            .sum()
    }

    /// Tasks with exactly their slots filled and exactly their money paid
    /// (money-only tasks count when paid), in index order.
    pub fn complete_tasks(&self, problem: &Problem) -> Vec<usize> {
        let mut staffed: BTreeMap<usize, usize> = BTreeMap::new();
        for &(_, task) in &self.assignments {
            *staffed.entry(task).or_default() += 1;
        }
        let mut paid: BTreeMap<usize, u64> = BTreeMap::new();
        for &(_, task, cents) in &self.funding {
            *paid.entry(task).or_default() += cents;
        }
        let touched: std::collections::BTreeSet<usize> =
            staffed.keys().chain(paid.keys()).copied().collect();
        touched
            .into_iter()
            .filter(|task| {
                let facts = &problem.tasks[*task];
                staffed.get(task).copied().unwrap_or(0) == facts.slots
                    && paid.get(task).copied().unwrap_or(0) == facts.money_cents
            })
            .collect()
    }

    /// The volunteers on `task`, in index order.
    pub fn team_of(&self, task: usize) -> Vec<usize> {
        let mut team: Vec<usize> = self
            .assignments
            .iter()
            .filter(|&&(_, t)| t == task)
            .map(|&(v, _)| v)
            .collect();
        team.sort_unstable();
        team
    }

    /// The tasks of `volunteer`, in index order.
    pub fn tasks_of(&self, volunteer: usize) -> Vec<usize> {
        let mut tasks: Vec<usize> = self
            .assignments
            .iter()
            .filter(|&&(v, _)| v == volunteer)
            .map(|&(_, t)| t)
            .collect();
        tasks.sort_unstable();
        tasks
    }
}
