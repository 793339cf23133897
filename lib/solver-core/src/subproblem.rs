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
//! [`Subproblem::build`] writes each family of columns and rows in a
//! function of its own; the time rows (rules 5, 5b and 5c) live in
//! `time_rows`, where `solve` also writes its lazy interval rows.
//!
//! Continuous money is exact: with the teams chosen, the funding is a
//! transportation problem with integer supplies and demands, so an integral
//! flow exists whenever a fractional one does. We recompute it in integer
//! cents with a max-flow rather than round HiGHS's floats.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use crate::flow::MaxFlow;
use crate::milp::{solve_model, MilpStatus, ModelSpec};
use crate::problem::Problem;
use crate::state::State;
use crate::time::fits_with;

mod time_rows;

pub(crate) use time_rows::overfull_intervals;

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

/// What [`Subproblem::build`] was asked for, in the shapes its families of
/// columns and rows look it up by.
struct BuildRequest<'a> {
    state: &'a State<'a>,
    free_set: HashSet<usize>,
    /// Task -> the incumbent's team, which a cut candidate list keeps.
    previous_team: HashMap<usize, Vec<usize>>,
    keep: &'a HashSet<(usize, usize)>,
    move_cost: f64,
    pinned: HashSet<(usize, usize)>,
    pinned_tasks: HashSet<usize>,
    limits: ModelLimits,
}

impl<'a> BuildRequest<'a> {
    fn new(
        state: &'a State<'a>,
        free: &[usize],
        previous: &[Decision],
        keep: &'a HashSet<(usize, usize)>,
        move_cost: f64,
        pins: &[(usize, usize)],
        limits: ModelLimits,
    ) -> BuildRequest<'a> {
        BuildRequest {
            state,
            free_set: free.iter().copied().collect(),
            previous_team: previous
                .iter()
                .map(|decision| (decision.task, decision.team.clone()))
                .collect(),
            keep,
            move_cost,
            pinned: pins.iter().copied().collect(),
            pinned_tasks: pins.iter().map(|&(_, task)| task).collect(),
            limits,
        }
    }

    /// The candidates of `task` who still fit it next to their fixed load,
    /// cut to [`ModelLimits::candidates_per_task_max`] (or to the favoured
    /// ones, when they alone are more).
    fn fitting_candidates(&self, task: usize) -> Vec<usize> {
        let (state, problem) = (self.state, self.state.problem);
        let facts = &problem.tasks[task];
        let mut fitting: Vec<usize> = problem.candidates_of_task[task]
            .iter()
            .copied()
            .filter(|&volunteer| fits_with(problem, volunteer, &state.load[volunteer], task))
            .collect();
        if fitting.len() <= self.limits.candidates_per_task_max {
            return fitting;
        }
        // The incumbent's team, kept pairs and pins always stay; then
        // the least loaded people, who are the likeliest to help.
        let incumbent: &[usize] = self.previous_team.get(&task).map_or(&[], Vec::as_slice);
        let favoured = |volunteer: usize| {
            incumbent.contains(&volunteer)
                || self.keep.contains(&(volunteer, task))
                || self.pinned.contains(&(volunteer, task))
        };
        fitting.sort_by(|&a, &b| {
            let rank = |volunteer: usize| {
                let busy: f64 = state.load[volunteer]
                    .iter()
                    .map(|&other| problem.hours_of(volunteer, other))
                    .sum();
                let capacity = problem.volunteers[volunteer]
                    .capacity_between(0.0, facts.deadline_hours)
                    .max(1e-9);
                (!favoured(volunteer), busy / capacity)
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
            .take_while(|&&volunteer| favoured(volunteer))
            .count();
        fitting.truncate(self.limits.candidates_per_task_max.max(favoured_count));
        fitting
    }

    /// Whether `task` could be complete with these candidates: no
    /// prerequisite left open outside the model, a whole team, and enough
    /// pledge money left.
    fn is_possible(&self, task: usize, fitting: &[usize]) -> bool {
        let state = self.state;
        let facts = &state.problem.tasks[task];
        let blocked = facts
            .dependencies
            .iter()
            .any(|&dependency| !self.free_set.contains(&dependency) && !state.complete[dependency]);
        let money_reachable =
            facts.money_cents == 0 || state.money_available(task) >= facts.money_cents;
        !blocked && fitting.len() >= facts.slots && money_reachable
    }
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
        let request = BuildRequest::new(state, free, previous, keep, move_cost, pins, limits);
        let mut subproblem = Subproblem {
            free: free.to_vec(),
            completion_column: HashMap::new(),
            pairs: Vec::new(),
            gifts: Vec::new(),
            pairs_of_volunteer: BTreeMap::new(),
            written_intervals: HashSet::new(),
            spec: ModelSpec {
                relax,
                ..ModelSpec::default()
            },
        };
        // Each task's columns and rows are written together, task by task:
        // HiGHS's search follows the model's order, so the same order keeps
        // the same search.
        let mut pledge_terms = BTreeMap::new();
        for &task in free {
            let fitting = request.fitting_candidates(task);
            let possible = request.is_possible(task, &fitting);
            let y = subproblem.add_completion_column(&request, task, possible);
            if !possible {
                continue;
            }
            subproblem.add_team(&request, task, y, fitting);
            subproblem.add_funding(state, task, y, &mut pledge_terms);
        }
        subproblem.add_pledge_rows(state, pledge_terms);
        subproblem.add_dependency_rows(state.problem);
        subproblem.add_time_rows(state, limits);
        subproblem
    }

    /// `y[task]`, worth the task's impact: forced to 1 by a pin, to 0 when
    /// the task is not possible. An impossible task keeps its column so that
    /// its dependents' rows pass the 0 on to them.
    fn add_completion_column(
        &mut self,
        request: &BuildRequest<'_>,
        task: usize,
        possible: bool,
    ) -> usize {
        let facts = &request.state.problem.tasks[task];
        let lower: f64 = if request.pinned_tasks.contains(&task) {
            1.0
        } else {
            0.0
        };
        let upper = if possible { 1.0 } else { 0.0 };
        let y = self
            .spec
            .add_column(facts.impact, lower.min(upper), upper, true);
        self.completion_column.insert(task, y);
        y
    }

    /// `x[v, task]` for each fitting candidate (a kept pair earns the move
    /// cost, a pinned one is forced) and the whole-team row
    /// `Σ x[v, task] = slots·y[task]`.
    fn add_team(&mut self, request: &BuildRequest<'_>, task: usize, y: usize, fitting: Vec<usize>) {
        let facts = &request.state.problem.tasks[task];
        let mut team_terms = vec![(y, -(facts.slots as f64))];
        for volunteer in fitting {
            let bonus = if request.keep.contains(&(volunteer, task)) {
                request.move_cost
            } else {
                0.0
            };
            let forced = if request.pinned.contains(&(volunteer, task)) {
                1.0
            } else {
                0.0
            };
            let column = self.spec.add_column(bonus, forced, 1.0, true);
            team_terms.push((column, 1.0));
            self.pairs_of_volunteer
                .entry(volunteer)
                .or_default()
                .push(self.pairs.len());
            self.pairs.push(PairColumn {
                volunteer,
                task,
                column,
            });
        }
        self.spec.add_row(team_terms, 0.0, 0.0);
    }

    /// For a task that needs money: `f[p, task]` for each eligible pledge
    /// with cents left, and the whole-funding row `Σ f[p, task] = money·y[task]`.
    /// Each gift's column and upper bound go into `pledge_terms` for the
    /// pledge's own row.
    fn add_funding(
        &mut self,
        state: &State<'_>,
        task: usize,
        y: usize,
        pledge_terms: &mut BTreeMap<usize, Vec<(usize, f64)>>,
    ) {
        let problem = state.problem;
        let facts = &problem.tasks[task];
        if facts.money_cents == 0 {
            return;
        }
        let mut money_terms = vec![(y, -(facts.money_cents as f64))];
        for &pledge in &problem.pledges_of_task[task] {
            let left = state.pledge_left[pledge];
            if left == 0 {
                continue;
            }
            let column = self
                .spec
                .add_column(0.0, 0.0, left.min(facts.money_cents) as f64, false);
            money_terms.push((column, 1.0));
            pledge_terms
                .entry(pledge)
                .or_default()
                .push((column, left.min(facts.money_cents) as f64));
            self.gifts.push((pledge, task, column));
        }
        self.spec.add_row(money_terms, 0.0, 0.0);
    }

    /// `Σ f[p, t] <= left[p]` for each pledge, written only when its gifts'
    /// upper bounds could together take more than it has left.
    fn add_pledge_rows(
        &mut self,
        state: &State<'_>,
        pledge_terms: BTreeMap<usize, Vec<(usize, f64)>>,
    ) {
        for (pledge, terms) in pledge_terms {
            let left = state.pledge_left[pledge] as f64;
            let most: f64 = terms.iter().map(|&(_, upper)| upper).sum();
            if most > left {
                self.spec.add_row(
                    terms.into_iter().map(|(column, _)| (column, 1.0)).collect(),
                    f64::NEG_INFINITY,
                    left,
                );
            }
        }
    }

    /// `y[t] <= y[d]` for each free task and prerequisite in the model. A
    /// prerequisite outside it needs no row: it is complete, or it left the
    /// task impossible (`y[t]` fixed at 0).
    fn add_dependency_rows(&mut self, problem: &Problem) {
        for &task in &self.free {
            for &dependency in &problem.tasks[task].dependencies {
                if let (Some(&y), Some(&y_dependency)) = (
                    self.completion_column.get(&task),
                    self.completion_column.get(&dependency),
                ) {
                    self.spec
                        .add_row(vec![(y, 1.0), (y_dependency, -1.0)], f64::NEG_INFINITY, 0.0);
                }
            }
        }
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
