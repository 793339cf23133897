//! The exact model of a part of the problem, given the rest as fixed.
//!
//! "Free" tasks are decided by HiGHS; every other complete task stays as it
//! is and only uses up volunteer time and pledge money. The model:
//!
//! - `y[t]` binary: free task `t` is complete; `x[v,t]` binary only for
//!   candidates who still fit `t` next to their fixed load; `f[p,t]`
//!   continuous cents from eligible pledges with money left.
//! - whole teams `Σ x[v,t] = slots·y[t]`; whole funding `Σ f[p,t] = money·y[t]`;
//!   pledges `Σ f[p,t] <= left[p]`; dependencies `y[t] <= y[d]` (or `y[t] = 0`
//!   when `d` is fixed and not complete); pins `x = 1`.
//! - rule 5 as interval rows: for each volunteer and each interval `[a, b]`
//!   bounded by a start and a deadline of their possible tasks, the hours of
//!   free tasks inside it at most `cap(v, a, b)` less the fixed hours inside.
//!   Only intervals that could ever be overfull are written, only the
//!   tightest of those with the same contents, and at most
//!   [`INTERVAL_ROWS_PER_VOLUNTEER_MAX`] at first; any interval a solution
//!   still overfills is added and the model solved again (lazy rows).
//!
//! Continuous money is exact: with the teams chosen, the funding is a
//! transportation problem with integer supplies and demands, so an integral
//! flow exists whenever a fractional one does. We recompute it in integer
//! cents with a max-flow rather than round HiGHS's floats.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use crate::flow::MaxFlow;
use crate::milp::{solve_model, MilpStatus, ModelSpec};
use crate::problem::{Problem, HOURS_TOLERANCE};
use crate::state::State;
use crate::time::{fits_with, FIT_SLACK_HOURS};

/// Interval rows written up front per volunteer; the rest come lazily.
pub(crate) const INTERVAL_ROWS_PER_VOLUNTEER_MAX: usize = 64;

/// How big a model may grow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModelLimits {
    /// Pair columns per task (the incumbent's team always included).
    pub candidates_per_task_max: usize,
    /// Interval rows written up front per volunteer.
    pub interval_rows_per_volunteer_max: usize,
}

impl ModelLimits {
    /// No restriction: the exact model.
    pub const EXACT: ModelLimits = ModelLimits {
        candidates_per_task_max: usize::MAX,
        interval_rows_per_volunteer_max: INTERVAL_ROWS_PER_VOLUNTEER_MAX,
    };
}
/// Rounds of adding violated interval rows before giving up on a model.
const LAZY_ROUNDS_MAX: usize = 6;

/// One decided free task: its team and its funding in whole cents.
#[derive(Clone, Debug)]
pub(crate) struct Decision {
    pub task: usize,
    pub team: Vec<usize>,
    pub paid: Vec<(usize, u64)>,
}

/// What solving a subproblem gave.
#[derive(Clone, Debug)]
pub(crate) struct SubproblemResult {
    pub decisions: Vec<Decision>,
    /// Proven optimal for the free tasks given the fixed rest.
    pub optimal: bool,
    /// HiGHS's bound on the model objective (impact of free tasks plus keep bonus).
    pub dual_bound: Option<f64>,
}

struct PairColumn {
    volunteer: usize,
    task: usize,
    column: usize,
}

/// The model of the free tasks and the bookkeeping to read its answer.
pub(crate) struct Subproblem {
    free: Vec<usize>,
    /// Task -> its `y` column.
    completion_column: HashMap<usize, usize>,
    pairs: Vec<PairColumn>,
    /// `(pledge, task, column)`.
    gifts: Vec<(usize, usize, usize)>,
    /// Per volunteer with pair columns: indexes into `pairs`.
    pairs_of_volunteer: BTreeMap<usize, Vec<usize>>,
    written_intervals: HashSet<(usize, u64, u64)>,
    pub spec: ModelSpec,
}

impl Subproblem {
    /// Builds the model of `free` (all incomplete in `state`). `keep` pairs
    /// earn `move_cost` each; `pins` (volunteer, task) are forced.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        state: &State<'_>,
        free: &[usize],
        previous: &[Decision],
        keep: &HashSet<(usize, usize)>,
        move_cost: f64,
        pins: &[(usize, usize)],
        relax: bool,
        limits: ModelLimits,
    ) -> Subproblem {
        let problem = state.problem;
        let mut spec = ModelSpec {
            relax,
            ..ModelSpec::default()
        };
        let free_set: HashSet<usize> = free.iter().copied().collect();
        let pinned: HashSet<(usize, usize)> = pins.iter().copied().collect();
        let pinned_tasks: HashSet<usize> = pins.iter().map(|&(_, task)| task).collect();

        let mut completion_column = HashMap::new();
        let mut pairs = Vec::new();
        let mut gifts = Vec::new();
        let mut pairs_of_volunteer: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut pledge_terms: BTreeMap<usize, Vec<(usize, f64)>> = BTreeMap::new();
        let previous_team: HashMap<usize, Vec<usize>> = previous
            .iter()
            .map(|decision| (decision.task, decision.team.clone()))
            .collect();

        for &task in free {
            let facts = &problem.tasks[task];
            let blocked = facts
                .dependencies
                .iter()
                .any(|&dependency| !free_set.contains(&dependency) && !state.complete[dependency]);
            let mut fitting: Vec<usize> = problem.candidates_of_task[task]
                .iter()
                .copied()
                .filter(|&volunteer| fits_with(problem, volunteer, &state.load[volunteer], task))
                .collect();
            if fitting.len() > limits.candidates_per_task_max {
                // The incumbent's team, kept pairs and pins always stay; then
                // the least loaded people, who are the likeliest to help.
                let incumbent: &[usize] = previous_team.get(&task).map_or(&[], Vec::as_slice);
                fitting.sort_by(|&a, &b| {
                    let rank = |volunteer: usize| {
                        let favoured = incumbent.contains(&volunteer)
                            || keep.contains(&(volunteer, task))
                            || pinned.contains(&(volunteer, task));
                        let busy: f64 = state.load[volunteer]
                            .iter()
                            .map(|&other| problem.hours_of(volunteer, other))
                            .sum();
                        let capacity = problem.volunteers[volunteer]
                            .capacity_between(0.0, facts.deadline_hours)
                            .max(1e-9);
                        (!favoured, busy / capacity)
                    };
                    let (a_rank, b_rank) = (rank(a), rank(b));
                    a_rank
                        .0
                        .cmp(&b_rank.0)
                        .then(a_rank.1.total_cmp(&b_rank.1))
                        .then(a.cmp(&b))
                });
                let favoured_count = fitting
                    .iter()
                    .take_while(|&&volunteer| {
                        incumbent.contains(&volunteer)
                            || keep.contains(&(volunteer, task))
                            || pinned.contains(&(volunteer, task))
                    })
                    .count();
                fitting.truncate(limits.candidates_per_task_max.max(favoured_count));
            }
            let money_reachable =
                facts.money_cents == 0 || state.money_available(task) >= facts.money_cents;
            let possible = !blocked && fitting.len() >= facts.slots && money_reachable;
            let lower: f64 = if pinned_tasks.contains(&task) {
                1.0
            } else {
                0.0
            };
            let upper = if possible { 1.0 } else { 0.0 };
            let y = spec.add_column(facts.impact, lower.min(upper), upper, true);
            completion_column.insert(task, y);
            if !possible {
                continue;
            }
            let mut team_terms = vec![(y, -(facts.slots as f64))];
            for volunteer in fitting {
                let bonus = if keep.contains(&(volunteer, task)) {
                    move_cost
                } else {
                    0.0
                };
                let forced = if pinned.contains(&(volunteer, task)) {
                    1.0
                } else {
                    0.0
                };
                let column = spec.add_column(bonus, forced, 1.0, true);
                team_terms.push((column, 1.0));
                pairs_of_volunteer
                    .entry(volunteer)
                    .or_default()
                    .push(pairs.len());
                pairs.push(PairColumn {
                    volunteer,
                    task,
                    column,
                });
            }
            spec.add_row(team_terms, 0.0, 0.0);
            if facts.money_cents > 0 {
                let mut money_terms = vec![(y, -(facts.money_cents as f64))];
                for &pledge in &problem.pledges_of_task[task] {
                    let left = state.pledge_left[pledge];
                    if left == 0 {
                        continue;
                    }
                    let column =
                        spec.add_column(0.0, 0.0, left.min(facts.money_cents) as f64, false);
                    money_terms.push((column, 1.0));
                    pledge_terms
                        .entry(pledge)
                        .or_default()
                        .push((column, left.min(facts.money_cents) as f64));
                    gifts.push((pledge, task, column));
                }
                spec.add_row(money_terms, 0.0, 0.0);
            }
        }
        for (pledge, terms) in pledge_terms {
            let left = state.pledge_left[pledge] as f64;
            let most: f64 = terms.iter().map(|&(_, upper)| upper).sum();
            if most > left {
                spec.add_row(
                    terms.into_iter().map(|(column, _)| (column, 1.0)).collect(),
                    f64::NEG_INFINITY,
                    left,
                );
            }
        }
        for &task in free {
            for &dependency in &problem.tasks[task].dependencies {
                if let (Some(&y), Some(&y_dependency)) = (
                    completion_column.get(&task),
                    completion_column.get(&dependency),
                ) {
                    spec.add_row(vec![(y, 1.0), (y_dependency, -1.0)], f64::NEG_INFINITY, 0.0);
                }
            }
        }

        let mut subproblem = Subproblem {
            free: free.to_vec(),
            completion_column,
            pairs,
            gifts,
            pairs_of_volunteer,
            written_intervals: HashSet::new(),
            spec,
        };
        let volunteers: Vec<usize> = subproblem.pairs_of_volunteer.keys().copied().collect();
        for volunteer in volunteers {
            let mut rows = subproblem.candidate_intervals(state, volunteer);
            // The most overfull intervals first: they are the likeliest to bind.
            rows.sort_by(|a, b| b.2.total_cmp(&a.2));
            for (start, end, _) in rows
                .into_iter()
                .take(limits.interval_rows_per_volunteer_max)
            {
                subproblem.add_interval_row(state, volunteer, start, end);
            }
            if problem.has_shifts {
                subproblem.add_shift_rows(state, volunteer);
            }
        }
        subproblem
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
            items.push((task.start_hours, task.deadline_hours, hours, true));
        }
        for &task in &state.load[volunteer] {
            if !counts_in_rule_five(problem, task) {
                continue;
            }
            let hours = problem.hours_of(volunteer, task);
            let task = &problem.tasks[task];
            items.push((task.start_hours, task.deadline_hours, hours, false));
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
    fn add_interval_row(
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
            let facts = &problem.tasks[task];
            counts_in_rule_five(problem, task)
                && facts.start_hours >= start - HOURS_TOLERANCE
                && facts.deadline_hours <= end + HOURS_TOLERANCE
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

    /// The incumbent's values for the model's columns: the free tasks that
    /// `previous` had complete, with their teams and funding.
    pub fn starting_point(&self, previous: &[Decision]) -> Vec<f64> {
        let mut values = vec![0.0; self.spec.columns.len()];
        let mut pair_column: HashMap<(usize, usize), usize> = HashMap::new();
        for pair in &self.pairs {
            pair_column.insert((pair.volunteer, pair.task), pair.column);
        }
        let mut gift_column: HashMap<(usize, usize), usize> = HashMap::new();
        for &(pledge, task, column) in &self.gifts {
            gift_column.insert((pledge, task), column);
        }
        for decision in previous {
            let Some(&y) = self.completion_column.get(&decision.task) else {
                continue;
            };
            let team_columns: Option<Vec<usize>> = decision
                .team
                .iter()
                .map(|&v| pair_column.get(&(v, decision.task)).copied())
                .collect();
            let gift_columns: Option<Vec<(usize, u64)>> = decision
                .paid
                .iter()
                .map(|&(p, cents)| gift_column.get(&(p, decision.task)).map(|&c| (c, cents)))
                .collect();
            if let (Some(team_columns), Some(gift_columns)) = (team_columns, gift_columns) {
                values[y] = 1.0;
                for column in team_columns {
                    values[column] = 1.0;
                }
                for (column, cents) in gift_columns {
                    values[column] += cents as f64;
                }
            }
        }
        values
    }

    /// Solves the model, adding violated interval rows until the answer keeps
    /// rule 5, and turns it into decisions with integer funding.
    pub fn solve(
        mut self,
        state: &State<'_>,
        previous: &[Decision],
        deadline: Instant,
    ) -> Option<SubproblemResult> {
        let start_values = self.starting_point(previous);
        for round in 0..LAZY_ROUNDS_MAX {
            self.spec.initial = Some(start_values.clone());
            let result = solve_model(self.spec.clone(), deadline)?;
            let chosen = self.read_teams(&result.columns);
            let mut violated = false;
            for (&volunteer, pairs) in &self.pairs_of_volunteer.clone() {
                let mut load = state.load[volunteer].clone();
                for &pair in pairs {
                    let pair = &self.pairs[pair];
                    if chosen
                        .get(&pair.task)
                        .is_some_and(|team| team.contains(&volunteer))
                    {
                        load.push(pair.task);
                    }
                }
                for (start, end) in overfull_intervals(state.problem, volunteer, &load) {
                    violated |= self.add_interval_row(state, volunteer, start, end);
                }
            }
            let out_of_rounds = round + 1 == LAZY_ROUNDS_MAX || Instant::now() >= deadline;
            if violated && !out_of_rounds {
                continue;
            }
            // Out of time with rows still missing, the answer may overfill
            // someone's time: it is returned anyway, and applying it through
            // `State::complete_with` drops the tasks that do not fit. Its
            // bound stays valid: missing rows only relax the model.
            let decisions = self.decide(state, chosen)?;
            return Some(SubproblemResult {
                decisions,
                optimal: result.status == MilpStatus::Optimal && !violated,
                dual_bound: result.dual_bound,
            });
        }
        None
    }

    /// Teams of the tasks the answer completes (`y > 0.5`).
    fn read_teams(&self, values: &[f64]) -> BTreeMap<usize, Vec<usize>> {
        let mut teams: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &task in &self.free {
            if values[self.completion_column[&task]] > 0.5 {
                teams.insert(task, Vec::new());
            }
        }
        for pair in &self.pairs {
            if values[pair.column] > 0.5 {
                if let Some(team) = teams.get_mut(&pair.task) {
                    team.push(pair.volunteer);
                }
            }
        }
        teams
    }

    /// Whole-cent funding for the chosen tasks by max-flow, then decisions.
    fn decide(
        &self,
        state: &State<'_>,
        teams: BTreeMap<usize, Vec<usize>>,
    ) -> Option<Vec<Decision>> {
        let problem = state.problem;
        let money_tasks: Vec<usize> = teams
            .keys()
            .copied()
            .filter(|&task| problem.tasks[task].money_cents > 0)
            .collect();
        let paid = fund_exactly(state, &money_tasks)?;
        Some(
            teams
                .into_iter()
                .map(|(task, team)| Decision {
                    task,
                    team,
                    paid: paid.get(&task).cloned().unwrap_or_default(),
                })
                .collect(),
        )
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
    let load = load.as_slice();
    let facts = &problem.volunteers[volunteer];
    let mut starts: Vec<f64> = load
        .iter()
        .map(|&task| problem.tasks[task].start_hours)
        .collect();
    let mut ends: Vec<f64> = load
        .iter()
        .map(|&task| problem.tasks[task].deadline_hours)
        .collect();
    starts.sort_by(f64::total_cmp);
    starts.dedup();
    ends.sort_by(f64::total_cmp);
    ends.dedup();
    let mut overfull = Vec::new();
    for &start in &starts {
        for &end in &ends {
            if end <= start {
                continue;
            }
            let need: f64 = load
                .iter()
                .filter(|&&task| {
                    let task = &problem.tasks[task];
                    task.start_hours >= start - HOURS_TOLERANCE
                        && task.deadline_hours <= end + HOURS_TOLERANCE
                })
                .map(|&task| problem.hours_of(volunteer, task))
                .sum();
            if need > facts.capacity_between(start, end) + FIT_SLACK_HOURS {
                overfull.push((start, end));
            }
        }
    }
    overfull
}

/// Pays every task in `tasks` its exact money from the pledges' remaining
/// cents, or `None` when that is impossible. A max-flow (Dinic) from pledges
/// to tasks in integer cents ([`crate::flow::MaxFlow`]).
pub(crate) fn fund_exactly(
    state: &State<'_>,
    tasks: &[usize],
) -> Option<HashMap<usize, Vec<(usize, u64)>>> {
    let problem = state.problem;
    if tasks.is_empty() {
        return Some(HashMap::new());
    }
    let mut pledges: Vec<usize> = tasks
        .iter()
        .flat_map(|&task| problem.pledges_of_task[task].iter().copied())
        .filter(|&pledge| state.pledge_left[pledge] > 0)
        .collect();
    pledges.sort_unstable();
    pledges.dedup();
    let source = 0;
    let sink = 1;
    let pledge_node = |position: usize| 2 + position;
    let task_node = |position: usize| 2 + pledges.len() + position;
    let mut flow = MaxFlow::new(2 + pledges.len() + tasks.len());
    for (position, &pledge) in pledges.iter().enumerate() {
        flow.add_edge(source, pledge_node(position), state.pledge_left[pledge]);
    }
    let mut gift_edges = Vec::new();
    let mut demand: u64 = 0;
    for (position, &task) in tasks.iter().enumerate() {
        let money = problem.tasks[task].money_cents;
        demand += money;
        flow.add_edge(task_node(position), sink, money);
        for &pledge in &problem.pledges_of_task[task] {
            if let Ok(pledge_position) = pledges.binary_search(&pledge) {
                let edge = flow.add_edge(pledge_node(pledge_position), task_node(position), money);
                gift_edges.push((pledge, task, edge));
            }
        }
    }
    if flow.run(source, sink) != demand {
        return None;
    }
    let mut paid: HashMap<usize, Vec<(usize, u64)>> = HashMap::new();
    for (pledge, task, edge) in gift_edges {
        let cents = flow.flow_on(edge);
        if cents > 0 {
            paid.entry(task).or_default().push((pledge, cents));
        }
    }
    Some(paid)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{instance, problem, task, volunteer};

    #[test]
    fn exact_funding_pays_every_task_in_whole_cents_or_refuses() {
        let pledge = |id: &str, cents: u64, tags: serde_json::Value| json!({"id": id, "amount_cents": cents, "collectives": null, "tags": tags, "expires_at": null});
        let mut food = task("food", json!({}), 0.0, 0, 7, 1.0);
        food["money_cents"] = json!(700);
        food["tags"] = json!(["food"]);
        let mut rent = task("rent", json!({}), 0.0, 0, 7, 1.0);
        rent["money_cents"] = json!(500);
        // The general pledge must go to rent: only it can, since the tagged
        // pledge cannot pay for rent. A greedy draw from p1 first would fail.
        let cases: Vec<(&str, Vec<serde_json::Value>, bool)> = vec![
            (
                "enough money, routed around a restriction",
                vec![
                    pledge("p1", 600, json!(null)),
                    pledge("p2", 600, json!(["food"])),
                ],
                true,
            ),
            (
                "one cent short in total",
                vec![
                    pledge("p1", 599, json!(null)),
                    pledge("p2", 600, json!(["food"])),
                ],
                false,
            ),
        ];
        for (sentence, pledges, payable) in cases {
            let problem = problem(&instance(vec![], vec![food.clone(), rent.clone()], pledges));
            let state = State::new(&problem);
            let paid = fund_exactly(&state, &[0, 1]);
            assert_eq!(paid.is_some(), payable, "{sentence}");
            if let Some(paid) = paid {
                for task in [0, 1] {
                    let total: u64 = paid[&task].iter().map(|&(_, cents)| cents).sum();
                    assert_eq!(total, problem.tasks[task].money_cents, "{sentence}");
                }
            }
        }
    }

    #[test]
    fn the_exact_model_packs_time_better_than_impact_per_hour() {
        // Ten hours in a day: one 6-hour task (7) or two 5-hour tasks (5.5 each).
        let raw = instance(
            vec![volunteer("v", json!({}), 70.0)],
            vec![
                task("a", json!({}), 6.0, 1, 1, 7.0),
                task("b", json!({}), 5.0, 1, 1, 5.5),
                task("c", json!({}), 5.0, 1, 1, 5.5),
            ],
            vec![],
        );
        let problem = problem(&raw);
        let state = State::new(&problem);
        let free = [0, 1, 2];
        let model = Subproblem::build(
            &state,
            &free,
            &[],
            &HashSet::new(),
            0.0,
            &[],
            false,
            ModelLimits::EXACT,
        );
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let result = model.solve(&state, &[], deadline).unwrap();
        let chosen: Vec<usize> = result
            .decisions
            .iter()
            .map(|decision| decision.task)
            .collect();
        assert_eq!(chosen, vec![1, 2]);
        assert!(result.optimal);
    }
}
