//! Rules 5, 5b and 5c in the model, one volunteer at a time: the interval
//! rows that keep a person's hours within their time, the rows of shifts
//! that overlap and the weekly budgets. Apart from the teams and the money
//! because these are the rows that keep coming: interval rows are written up
//! front only for the likeliest to bind, and [`Subproblem::solve`] adds the
//! rest when an answer overfills someone.

use std::collections::BTreeMap;

use crate::problem::{Problem, HOURS_TOLERANCE};
use crate::state::State;
use crate::time::FIT_SLACK_HOURS;

use super::{ModelLimits, Subproblem};

impl Subproblem {
    /// The time rows of each volunteer with pair columns: the most overfull
    /// intervals up front, within the limit, and rules 5b and 5c when the
    /// problem has shifts.
    pub(super) fn add_time_rows(&mut self, state: &State<'_>, limits: ModelLimits) {
        let volunteers: Vec<usize> = self.pairs_of_volunteer.keys().copied().collect();
        for volunteer in volunteers {
            let mut rows = self.candidate_intervals(state, volunteer);
            // The most overfull intervals first: they are the likeliest to bind.
            rows.sort_by(|a, b| b.2.total_cmp(&a.2));
            for (start, end, _) in rows
                .into_iter()
                .take(limits.interval_rows_per_volunteer_max)
            {
                self.add_interval_row(state, volunteer, start, end);
            }
            if state.problem.has_shifts {
                self.add_shift_rows(state, volunteer);
            }
        }
    }

    /// Rules 5b and 5c for one volunteer, complete (no lazy rounds needed):
    /// one row per maximal set of this person's free shifts that share a
    /// moment (an interval graph's cliques: every overlapping pair is in one),
    /// and one row per ISO week whose hours could exceed the budget left
    /// after the fixed load. Pairs that clash with the fixed load were never
    /// written (`fits_with` filtered them).
    fn add_shift_rows(&mut self, state: &State<'_>, volunteer: usize) {
        let problem = state.problem;
        let pairs = &self.pairs_of_volunteer[&volunteer];
        let mut shifts: Vec<((f64, f64), usize)> = pairs
            .iter()
            .filter_map(|&pair| {
                let pair = &self.pairs[pair];
                problem.tasks[pair.task]
                    .shift
                    .map(|shift| (shift, pair.column))
            })
            .collect();
        shifts.sort_by(|a, b| a.0 .0.total_cmp(&b.0 .0).then(a.0 .1.total_cmp(&b.0 .1)));
        let mut rows: Vec<Vec<(usize, f64)>> = Vec::new();
        let mut previous: Vec<usize> = Vec::new();
        for &((point, _), _) in &shifts {
            // Shifts that hold `point`: started by then and ending after it.
            let members: Vec<usize> = shifts
                .iter()
                .filter(|&&((start, end), _)| start <= point && point < end - HOURS_TOLERANCE)
                .map(|&(_, column)| column)
                .collect();
            if members.len() >= 2 && !members.iter().all(|column| previous.contains(column)) {
                rows.push(members.iter().map(|&column| (column, 1.0)).collect());
            }
            previous = members;
        }
        for terms in rows {
            self.spec.add_row(terms, f64::NEG_INFINITY, 1.0);
        }
        let budget = problem.volunteers[volunteer].hours_per_week;
        let mut fixed: BTreeMap<i64, f64> = BTreeMap::new();
        for &task in &state.load[volunteer] {
            for (week, hours) in problem.week_hours_of(volunteer, task) {
                *fixed.entry(week).or_default() += hours;
            }
        }
        let mut free: BTreeMap<i64, Vec<(usize, f64)>> = BTreeMap::new();
        for &pair in pairs {
            let pair = &self.pairs[pair];
            for (week, hours) in problem.week_hours_of(volunteer, pair.task) {
                free.entry(week).or_default().push((pair.column, hours));
            }
        }
        for (week, terms) in free {
            let room = budget - fixed.get(&week).copied().unwrap_or(0.0);
            let most: f64 = terms.iter().map(|&(_, hours)| hours).sum();
            if most > room + FIT_SLACK_HOURS {
                self.spec
                    .add_row(terms, f64::NEG_INFINITY, room + FIT_SLACK_HOURS);
            }
        }
    }

    /// Intervals `[a, b]` of one volunteer that could be overfull, the
    /// tightest of each content, with how much they could overfill.
    fn candidate_intervals(&self, state: &State<'_>, volunteer: usize) -> Vec<(f64, f64, f64)> {
        let problem = state.problem;
        let facts = &problem.volunteers[volunteer];
        // (start, deadline, hours, is a free pair)
        let mut items: Vec<(f64, f64, f64, bool)> = Vec::new();
        for &pair in &self.pairs_of_volunteer[&volunteer] {
            if !counts_in_rule_five(problem, self.pairs[pair].task) {
                continue;
            }
            let index = self.pairs[pair].task;
            let task = &problem.tasks[index];
            let hours = problem.hours_of(volunteer, index);
            let start = problem.start_of(volunteer, index);
            items.push((start, task.deadline_hours, hours, true));
        }
        for &task in &state.load[volunteer] {
            if !counts_in_rule_five(problem, task) {
                continue;
            }
            let hours = problem.hours_of(volunteer, task);
            let start = problem.start_of(volunteer, task);
            let task = &problem.tasks[task];
            items.push((start, task.deadline_hours, hours, false));
        }
        items.sort_by(|a, b| a.1.total_cmp(&b.1));
        let latest_free_start = items
            .iter()
            .filter(|item| item.3)
            .map(|item| item.0)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut starts: Vec<f64> = items.iter().map(|item| item.0).collect();
        starts.sort_by(f64::total_cmp);
        starts.dedup();
        let mut intervals = Vec::new();
        for &start in starts
            .iter()
            .filter(|&&start| start <= latest_free_start + HOURS_TOLERANCE)
        {
            let mut hours = 0.0;
            let mut has_free = false;
            let mut starts_at_start = false;
            for (position, item) in items.iter().enumerate() {
                if item.0 < start - HOURS_TOLERANCE {
                    continue;
                }
                hours += item.2;
                has_free |= item.3;
                starts_at_start |= item.0 <= start + HOURS_TOLERANCE;
                let last_of_deadline = items[position + 1..]
                    .iter()
                    .find(|next| next.0 >= start - HOURS_TOLERANCE)
                    .is_none_or(|next| next.1 > item.1 + HOURS_TOLERANCE);
                if !last_of_deadline || !has_free || !starts_at_start {
                    continue;
                }
                let excess = hours - facts.capacity_between(start, item.1);
                if excess > FIT_SLACK_HOURS {
                    intervals.push((start, item.1, excess));
                }
            }
        }
        intervals
    }

    /// Writes the rule-5 row of `[start, end]` for one volunteer, once.
    pub(super) fn add_interval_row(
        &mut self,
        state: &State<'_>,
        volunteer: usize,
        start: f64,
        end: f64,
    ) -> bool {
        let key = (volunteer, start.to_bits(), end.to_bits());
        if !self.written_intervals.insert(key) {
            return false;
        }
        let problem = state.problem;
        let inside = |task: usize| {
            counts_in_rule_five(problem, task)
                && problem.start_of(volunteer, task) >= start - HOURS_TOLERANCE
                && problem.tasks[task].deadline_hours <= end + HOURS_TOLERANCE
        };
        let fixed_hours: f64 = state.load[volunteer]
            .iter()
            .filter(|&&task| inside(task))
            .map(|&task| problem.hours_of(volunteer, task))
            .sum();
        let terms: Vec<(usize, f64)> = self.pairs_of_volunteer[&volunteer]
            .iter()
            .map(|&pair| &self.pairs[pair])
            .filter(|pair| inside(pair.task))
            .map(|pair| (pair.column, problem.hours_of(volunteer, pair.task)))
            .collect();
        if terms.is_empty() {
            return false;
        }
        let capacity = problem.volunteers[volunteer].capacity_between(start, end);
        self.spec.add_row(
            terms,
            f64::NEG_INFINITY,
            capacity - fixed_hours + FIT_SLACK_HOURS,
        );
        true
    }
}

/// Rule 5 counts flexible tasks only when the problem has shifts.
fn counts_in_rule_five(problem: &Problem, task: usize) -> bool {
    !problem.has_shifts || problem.tasks[task].shift.is_none()
}

/// The `[a, b]` intervals in which `load` overfills a volunteer's time.
pub(crate) fn overfull_intervals(
    problem: &Problem,
    volunteer: usize,
    load: &[usize],
) -> Vec<(f64, f64)> {
    let load: Vec<usize> = load
        .iter()
        .copied()
        .filter(|&task| counts_in_rule_five(problem, task))
        .collect();
    let facts = &problem.volunteers[volunteer];
    crate::time::interval_needs(problem, volunteer, &load)
        .into_iter()
        .filter(|&(start, end, need)| need > facts.capacity_between(start, end) + FIT_SLACK_HOURS)
        .map(|(start, end, _)| (start, end))
        .collect()
}
