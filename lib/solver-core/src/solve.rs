//! `solve`: the one entry point the services call.
//!
//! It always answers within about `time_limit` with a plan that passes
//! [`crate::check`]: first the greedy (several weightings, best kept), then,
//! while time remains, the optimisers of [`crate::optimise`]. Whatever a
//! method returns is checked before it can replace the incumbent, so a bug or
//! a rounding slip in an optimiser costs quality, never feasibility.

use std::time::{Duration, Instant};

use crate::check::check_releasing;
use crate::greedy::{Greedy, GreedyWeights};
pub use crate::optimise::NeighbourhoodStats;
use crate::problem::Problem;
use crate::solution::Solution;
use crate::state::State;

/// Default time budget of one solve.
pub const SOLVE_TIME_LIMIT_MS_DEFAULT: u64 = 1_000;
/// Longest time budget `solve` honours; longer requests are cut to this.
pub const SOLVE_TIME_LIMIT_MS_MAX: u64 = 600_000;

const _: () = assert!(SOLVE_TIME_LIMIT_MS_DEFAULT <= SOLVE_TIME_LIMIT_MS_MAX);

/// Share of the budget the optimisers may use; the rest is for checking.
const SOLVE_BUDGET_SHARE_FOR_SEARCH: f64 = 0.97;
/// Time kept back for the final check and the plan's translation, in ms.
const SOLVE_FINISH_RESERVE_MS: u64 = 10;

/// What `solve` is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct SolveOptions {
    /// Wall-clock budget; `solve` returns within it plus a small margin.
    pub time_limit: Duration,
    /// Current proposals `(volunteer, task)`: soft, kept unless moving one
    /// gains more than `move_cost`.
    pub keep: Vec<(usize, usize)>,
    /// Impact given up, in the objective's units, for each `keep` pair the
    /// plan does not keep. 0 means keep pairs only break ties.
    pub move_cost: f64,
    /// Run only the greedy (for callers that need an answer in milliseconds).
    pub greedy_only: bool,
    /// Solve each independent part exactly with HiGHS when it has at most
    /// this many candidate pairs; larger parts get the neighbourhood search.
    pub exact_pairs_max: usize,
    /// Seed of the neighbourhood search's choices, so runs are reproducible.
    pub seed: u64,
}

impl Default for SolveOptions {
    fn default() -> SolveOptions {
        SolveOptions {
            time_limit: Duration::from_millis(SOLVE_TIME_LIMIT_MS_DEFAULT),
            keep: Vec::new(),
            move_cost: 0.0,
            greedy_only: false,
            exact_pairs_max: 30_000,
            seed: 1,
        }
    }
}

/// Which method produced the returned plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolveMethod {
    /// The constructive heuristic alone.
    Greedy,
    /// Every part was solved to proven optimality by HiGHS.
    Exact,
    /// HiGHS and the neighbourhood search improved on the greedy, without a
    /// proof of optimality for every part.
    Improved,
}

/// What `solve` returns.
#[derive(Clone, Debug)]
pub struct SolveReport {
    pub solution: Solution,
    /// Sum of impact over complete tasks: what `check` scores.
    pub objective: f64,
    /// A proven upper bound on the objective (LP relaxation or MILP bound),
    /// when one was computed in time.
    pub upper_bound: Option<f64>,
    pub elapsed: Duration,
    /// Tasks whose pins could not be kept; their pinned people are released.
    pub dropped_pins: Vec<usize>,
    pub method: SolveMethod,
    /// The best greedy objective, for comparison.
    pub greedy_objective: f64,
    /// `keep` pairs the plan does not keep.
    pub moved: usize,
    /// What the large-neighbourhood search did.
    pub neighbourhoods: NeighbourhoodStats,
    /// Time the greedy took (all its weightings).
    pub greedy_elapsed: Duration,
}

impl SolveReport {
    /// `(bound - objective) / bound`, when a bound is known.
    pub fn gap(&self) -> Option<f64> {
        self.upper_bound
            .filter(|bound| *bound > 0.0)
            .map(|bound| ((bound - self.objective) / bound).max(0.0))
    }
}

/// Per-task bonus and volunteer orders that make the greedy prefer `keep` pairs.
pub(crate) struct KeepPreference {
    pub bonus: Vec<f64>,
    pub kept_by_task: Vec<Vec<usize>>,
}

impl KeepPreference {
    pub fn new(problem: &Problem, options: &SolveOptions) -> KeepPreference {
        let mut bonus = vec![0.0; problem.task_count()];
        let mut kept_by_task = vec![Vec::new(); problem.task_count()];
        for &(volunteer, task) in &options.keep {
            if task < problem.task_count()
                && problem.candidates_of_task[task]
                    .binary_search(&volunteer)
                    .is_ok()
                && !kept_by_task[task].contains(&volunteer)
            {
                kept_by_task[task].push(volunteer);
                bonus[task] += options.move_cost.max(0.0);
            }
        }
        KeepPreference {
            bonus,
            kept_by_task,
        }
    }

    /// The greedy's volunteer orders with each task's kept volunteers first.
    pub fn apply(&self, greedy: &mut Greedy<'_>) {
        for (task, kept) in self.kept_by_task.iter().enumerate() {
            if kept.is_empty() {
                continue;
            }
            let order = &mut greedy.volunteer_order[task];
            order.retain(|volunteer| !kept.contains(volunteer));
            let mut reordered = kept.clone();
            reordered.append(order);
            *order = reordered;
        }
    }
}

/// Runs the greedy with one weighting, pins first. Returns the solution and
/// the tasks whose pins were dropped.
pub(crate) fn run_greedy(
    problem: &Problem,
    greedy: &Greedy<'_>,
    weights: GreedyWeights,
    bonus: &[f64],
) -> (Solution, Vec<usize>) {
    let mut state = State::new(problem);
    let dropped = greedy.place_pins(&mut state);
    let scores = greedy.scores(weights, bonus);
    greedy.fill(&mut state, &scores, &|_| true);
    (state.to_solution(), dropped)
}

/// The objective `solve` maximises: impact, less `move_cost` for each keep
/// pair given up.
pub(crate) fn penalised_objective(
    problem: &Problem,
    options: &SolveOptions,
    solution: &Solution,
) -> f64 {
    solution.objective(problem) - options.move_cost.max(0.0) * moved_count(options, solution) as f64
}

fn moved_count(options: &SolveOptions, solution: &Solution) -> usize {
    if options.keep.is_empty() {
        return 0;
    }
    let kept: std::collections::HashSet<(usize, usize)> =
        solution.assignments.iter().copied().collect();
    let mut wanted = options.keep.clone();
    wanted.sort_unstable();
    wanted.dedup();
    wanted.iter().filter(|pair| !kept.contains(pair)).count()
}

/// Solves `problem`: always a feasible plan, within about `time_limit`.
pub fn solve(problem: &Problem, options: &SolveOptions) -> SolveReport {
    let started = Instant::now();
    let time_limit = options
        .time_limit
        .min(Duration::from_millis(SOLVE_TIME_LIMIT_MS_MAX));
    // The optimisers stop a little early: checking and translating the plan
    // still has to fit inside the budget.
    let deadline = started + time_limit.mul_f64(SOLVE_BUDGET_SHARE_FOR_SEARCH)
        - Duration::from_millis(SOLVE_FINISH_RESERVE_MS).min(time_limit / 2);

    let keep = KeepPreference::new(problem, options);
    let mut greedy = Greedy::new(problem);
    keep.apply(&mut greedy);

    // The default weighting always runs; the others while a tenth of the
    // budget lasts, since the optimisers make better use of the rest.
    let mut best: Option<(Solution, Vec<usize>, f64)> = None;
    let greedy_budget = time_limit / 10;
    for (attempt, weights) in Greedy::variants().into_iter().enumerate() {
        if attempt > 0 && started.elapsed() > greedy_budget {
            break;
        }
        let (solution, dropped) = run_greedy(problem, &greedy, weights, &keep.bonus);
        let value = penalised_objective(problem, options, &solution);
        let better = match &best {
            None => true,
            // Fewer dropped pins first: a pin is a promise to a person.
            Some((_, best_dropped, best_value)) => {
                (dropped.len(), -value) < (best_dropped.len(), -*best_value)
            }
        };
        if better {
            best = Some((solution, dropped, value));
        }
    }
    let (mut solution, mut dropped_pins, _) = best.unwrap_or_default();
    let greedy_objective = solution.objective(problem);
    let greedy_elapsed = started.elapsed();
    let mut method = SolveMethod::Greedy;
    let mut upper_bound: Option<f64> = None;
    let mut neighbourhoods = NeighbourhoodStats::default();

    if !options.greedy_only && Instant::now() < deadline {
        let outcome =
            crate::optimise::improve(problem, options, &solution, &dropped_pins, deadline);
        upper_bound = outcome.upper_bound;
        neighbourhoods = outcome.neighbourhoods;
        if let Some(improved) = outcome.solution {
            let verdict = check_releasing(problem, &improved.to_plan(problem), &dropped_pins);
            let no_worse = penalised_objective(problem, options, &improved)
                >= penalised_objective(problem, options, &solution) - 1e-9;
            if verdict.is_ok() && no_worse {
                solution = improved;
                if outcome.proven_optimal {
                    method = SolveMethod::Exact;
                } else if solution.objective(problem) > greedy_objective + 1e-9 {
                    method = SolveMethod::Improved;
                }
            }
        }
    }

    // The last line of defence: never hand out a plan the judge would refuse.
    if check_releasing(problem, &solution.to_plan(problem), &dropped_pins).is_err() {
        let (fallback, _) = run_greedy(problem, &greedy, Greedy::variants()[0], &keep.bonus);
        solution = if check_releasing(problem, &fallback.to_plan(problem), &dropped_pins).is_ok() {
            fallback
        } else {
            // Nothing placed at all: release every pin rather than break one.
            dropped_pins = problem.pins.iter().map(|&(_, task)| task).collect();
            dropped_pins.sort_unstable();
            dropped_pins.dedup();
            Solution::default()
        };
        method = SolveMethod::Greedy;
    }
    let objective = solution.objective(problem);
    let moved = moved_count(options, &solution);
    SolveReport {
        solution,
        objective,
        upper_bound: upper_bound.map(|bound: f64| bound.max(objective)),
        elapsed: started.elapsed(),
        dropped_pins,
        method,
        greedy_objective,
        moved,
        neighbourhoods,
        greedy_elapsed,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::check::check;
    use crate::test_support::{instance, problem, task, volunteer};

    fn with(mut value: Value, field: &str, new: Value) -> Value {
        value[field] = new;
        value
    }

    fn pledge(id: &str, cents: u64) -> Value {
        json!({"id": id, "amount_cents": cents, "collectives": null, "tags": null, "expires_at": null})
    }

    #[test]
    fn small_instances_are_solved_to_their_known_best() {
        let legal = json!({"legal": 3});
        let cases: Vec<(&str, Value, f64)> = vec![
            (
                "a two-person task with one eligible volunteer stays empty",
                instance(
                    vec![
                        volunteer("v1", json!({"legal": 3}), 10.0),
                        volunteer("v2", json!({"legal": 2}), 10.0),
                    ],
                    vec![task("t1", legal.clone(), 2.0, 2, 7, 5.0)],
                    vec![],
                ),
                0.0,
            ),
            (
                "a whole team is formed when enough people qualify",
                instance(
                    vec![
                        volunteer("v1", json!({"legal": 3}), 10.0),
                        volunteer("v2", json!({"legal": 5}), 10.0),
                    ],
                    vec![task("t1", legal.clone(), 2.0, 2, 7, 5.0)],
                    vec![],
                ),
                5.0,
            ),
            (
                "a dependent task is completed together with its prerequisite",
                instance(
                    vec![volunteer("v1", json!({}), 10.0)],
                    vec![
                        task("t1", json!({}), 1.0, 1, 7, 1.0),
                        with(
                            task("t2", json!({}), 1.0, 1, 7, 9.0),
                            "depends_on",
                            json!(["t1"]),
                        ),
                    ],
                    vec![],
                ),
                10.0,
            ),
            (
                "a money-only task is paid from two pledges together",
                instance(
                    vec![],
                    vec![with(
                        task("rent", json!({}), 0.0, 0, 7, 4.0),
                        "money_cents",
                        json!(30000),
                    )],
                    vec![pledge("p1", 20000), pledge("p2", 15000)],
                ),
                4.0,
            ),
            (
                "a money-only task the pledges cannot cover is left alone",
                instance(
                    vec![],
                    vec![with(
                        task("rent", json!({}), 0.0, 0, 7, 4.0),
                        "money_cents",
                        json!(30000),
                    )],
                    vec![pledge("p1", 20000)],
                ),
                0.0,
            ),
            (
                "the scarce hour goes to the task with more impact",
                instance(
                    vec![volunteer("v1", json!({}), 7.0)],
                    vec![
                        task("small", json!({}), 1.0, 1, 1, 1.0),
                        task("big", json!({}), 1.0, 1, 1, 3.0),
                    ],
                    vec![],
                ),
                3.0,
            ),
        ];
        for (sentence, raw, expected) in cases {
            let problem = problem(&raw);
            let report = solve(&problem, &SolveOptions::default());
            let checked = check(&problem, &report.solution.to_plan(&problem));
            assert!(checked.is_ok(), "{sentence}: {checked:?}");
            assert!(
                (report.objective - expected).abs() < 1e-9,
                "{sentence}: got {}",
                report.objective
            );
        }
    }

    #[test]
    fn any_time_limit_gives_a_feasible_plan_within_it() {
        let raw = instance(
            vec![
                volunteer("v1", json!({}), 7.0),
                volunteer("v2", json!({}), 7.0),
            ],
            vec![
                task("t1", json!({}), 1.0, 2, 7, 1.0),
                task("t2", json!({}), 1.0, 1, 7, 2.0),
            ],
            vec![],
        );
        let problem = problem(&raw);
        for milliseconds in [0, 1, 50] {
            let limit = Duration::from_millis(milliseconds);
            let report = solve(
                &problem,
                &SolveOptions {
                    time_limit: limit,
                    ..SolveOptions::default()
                },
            );
            assert!(
                check(&problem, &report.solution.to_plan(&problem)).is_ok(),
                "{milliseconds} ms"
            );
            // Generous slack: a debug build on a loaded CI machine.
            assert!(
                report.elapsed < limit + Duration::from_millis(500),
                "{milliseconds} ms took {:?}",
                report.elapsed
            );
        }
    }

    #[test]
    fn a_pin_that_cannot_be_kept_is_dropped_and_reported() {
        let mut raw = instance(
            vec![
                volunteer("v1", json!({}), 7.0),
                volunteer("v2", json!({}), 7.0),
            ],
            vec![
                task("fits", json!({}), 1.0, 1, 7, 1.0),
                task("too-long", json!({}), 50.0, 1, 7, 1.0),
            ],
            vec![],
        );
        raw["pinned"] =
            json!([{"volunteer": "v1", "task": "fits"}, {"volunteer": "v2", "task": "too-long"}]);
        let problem = problem(&raw);
        let report = solve(&problem, &SolveOptions::default());
        assert_eq!(
            report.dropped_pins,
            vec![problem.task_index("too-long").unwrap()]
        );
        assert!(report
            .solution
            .assignments
            .contains(&(0, problem.task_index("fits").unwrap())));
        let plan = report.solution.to_plan(&problem);
        assert!(crate::check::check_releasing(&problem, &plan, &report.dropped_pins).is_ok());
    }

    #[test]
    fn a_kept_proposal_survives_when_moving_it_gains_nothing() {
        let raw = instance(
            vec![
                volunteer("v1", json!({}), 7.0),
                volunteer("v2", json!({}), 7.0),
            ],
            vec![task("t1", json!({}), 1.0, 1, 7, 1.0)],
            vec![],
        );
        let problem = problem(&raw);
        let options = SolveOptions {
            keep: vec![(1, 0)],
            move_cost: 0.5,
            ..SolveOptions::default()
        };
        let report = solve(&problem, &options);
        assert_eq!(report.solution.assignments, vec![(1, 0)]);
        assert_eq!(report.moved, 0);
    }
}
