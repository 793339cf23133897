//! Tier-2 optimisation: improve the greedy's plan until the deadline.
//!
//! The problem splits into independent parts: connected components of the
//! graph whose nodes are tasks, volunteers and pledges, and whose edges are
//! candidate pairs, dependencies and pledge-task eligibility (petgraph's
//! union-find). Small parts are solved exactly by HiGHS, warm-started from
//! the greedy. Large ones get a large-neighbourhood search: release a
//! neighbourhood of related tasks (people who could swap, a skill in a
//! region, tasks sharing pledges), re-solve it exactly with the rest fixed,
//! and keep the result when it is no worse. Meanwhile the LP relaxation runs
//! on the second core for an upper bound.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use petgraph::unionfind::UnionFind;

use crate::milp::solve_model;
use crate::problem::Problem;
use crate::solution::Solution;
use crate::solve::SolveOptions;
use crate::state::State;
use crate::subproblem::{Decision, ModelLimits, Subproblem};

/// Tasks a neighbourhood starts with; it grows when HiGHS proves
/// neighbourhoods quickly and shrinks when it runs out of time.
const NEIGHBOURHOOD_TASKS_START: usize = 40;
const NEIGHBOURHOOD_TASKS_MIN: usize = 8;
const NEIGHBOURHOOD_TASKS_MAX: usize = 600;
/// Inside a neighbourhood each task offers HiGHS only its incumbent team
/// and this many other candidates, the least loaded: small models, so many
/// more neighbourhoods per second.
const NEIGHBOURHOOD_CANDIDATES_PER_TASK_MAX: usize = 8;
const NEIGHBOURHOOD_LIMITS: ModelLimits = ModelLimits {
    candidates_per_task_max: NEIGHBOURHOOD_CANDIDATES_PER_TASK_MAX,
    interval_rows_per_volunteer_max: 32,
};
const _: () = assert!(
    NEIGHBOURHOOD_TASKS_MIN <= NEIGHBOURHOOD_TASKS_START
        && NEIGHBOURHOOD_TASKS_START <= NEIGHBOURHOOD_TASKS_MAX
);
const _: () = assert!(EXACT_SHARE_OF_PART_TIME > 0.0 && EXACT_SHARE_OF_PART_TIME < 1.0);

/// The LP bound needs few interval rows: dropping rows only loosens it.
const BOUND_LIMITS: ModelLimits = ModelLimits {
    candidates_per_task_max: usize::MAX,
    interval_rows_per_volunteer_max: 8,
};
/// Share of a small part's time given to its exact model before the
/// neighbourhood search takes over.
const EXACT_SHARE_OF_PART_TIME: f64 = 0.7;
/// Longest single HiGHS call inside the neighbourhood search.
const NEIGHBOURHOOD_SOLVE_MS_MAX: u64 = 400;
/// Parts with more candidate pairs than this get no LP bound (it would not
/// finish in the budgets the services use).
const LP_BOUND_PAIRS_MAX: usize = 400_000;

pub(crate) struct Outcome {
    pub solution: Option<Solution>,
    pub neighbourhoods: NeighbourhoodStats,
    pub upper_bound: Option<f64>,
    pub proven_optimal: bool,
}

/// How the neighbourhood search went, for the report and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighbourhoodStats {
    /// Neighbourhoods released and re-solved.
    pub tried: usize,
    /// Of those, how many strictly improved the plan.
    pub improved: usize,
    /// Of those, how many HiGHS could not solve in time (or at all).
    pub failed: usize,
}

/// A small, seedable generator (SplitMix64): the search must be reproducible
/// and the crate needs no `rand` for this.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next() % bound as u64) as usize
        }
    }
}

/// Tasks of each independent part, largest first.
fn components(problem: &Problem) -> Vec<Vec<usize>> {
    let tasks = problem.task_count();
    let volunteers = problem.volunteer_count();
    let mut union = UnionFind::<usize>::new(tasks + volunteers + problem.pledge_count());
    for (task, candidates) in problem.candidates_of_task.iter().enumerate() {
        for &volunteer in candidates {
            union.union(task, tasks + volunteer);
        }
        for &dependency in &problem.tasks[task].dependencies {
            union.union(task, dependency);
        }
        for &pledge in &problem.pledges_of_task[task] {
            union.union(task, tasks + volunteers + pledge);
        }
    }
    let mut by_root: std::collections::HashMap<usize, Vec<usize>> =
        std::collections::HashMap::new();
    for task in 0..tasks {
        by_root.entry(union.find(task)).or_default().push(task);
    }
    let mut parts: Vec<Vec<usize>> = by_root.into_values().collect();
    parts.sort_by_key(|part| (std::cmp::Reverse(pair_count(problem, part)), part[0]));
    parts
}

fn pair_count(problem: &Problem, tasks: &[usize]) -> usize {
    tasks
        .iter()
        .map(|&task| problem.candidates_of_task[task].len() + problem.pledges_of_task[task].len())
        .sum()
}

/// The decisions `state` has made for `tasks` (complete ones only).
fn decisions_of(state: &State<'_>, tasks: &[usize]) -> Vec<Decision> {
    tasks
        .iter()
        .filter(|&&task| state.complete[task])
        .map(|&task| Decision {
            task,
            team: state.team[task].clone(),
            paid: state.paid_by[task].clone(),
        })
        .collect()
}

/// Puts `tasks` back as `previous` had them: everything else in the state
/// is untouched by a move, so the old decisions fit again.
fn restore(state: &mut State<'_>, tasks: &[usize], previous: &[Decision]) {
    for &task in tasks {
        state.release(task);
    }
    let restored = apply(state, previous);
    debug_assert!(restored, "a plan that was feasible is feasible again");
}

/// The model's value of `decisions`: impact plus keep bonuses.
fn decisions_value(
    problem: &Problem,
    decisions: &[Decision],
    keep: &HashSet<(usize, usize)>,
    move_cost: f64,
) -> f64 {
    decisions
        .iter()
        .map(|decision| {
            let kept = decision
                .team
                .iter()
                .filter(|&&volunteer| keep.contains(&(volunteer, decision.task)))
                .count();
            problem.tasks[decision.task].impact + move_cost * kept as f64
        })
        .sum()
}

/// Applies decisions in dependency order; false (state partly changed) if
/// any is refused.
fn apply(state: &mut State<'_>, decisions: &[Decision]) -> bool {
    let problem = state.problem;
    let mut position_in_order = vec![0usize; 0];
    position_in_order.resize(problem.task_count(), 0);
    for (position, &task) in problem.topological_order.iter().enumerate() {
        position_in_order[task] = position;
    }
    let mut ordered: Vec<&Decision> = decisions.iter().collect();
    ordered.sort_by_key(|decision| position_in_order[decision.task]);
    ordered
        .into_iter()
        .all(|decision| state.complete_with(decision.task, &decision.team, &decision.paid))
}

/// Applies decisions in dependency order, skipping any the rules refuse
/// (and so, in turn, their dependents): a time-limited answer may overfill
/// someone, and the rest of it is still worth having.
fn apply_leniently(state: &mut State<'_>, decisions: &[Decision]) {
    let problem = state.problem;
    let mut position_in_order = vec![0usize; problem.task_count()];
    for (position, &task) in problem.topological_order.iter().enumerate() {
        position_in_order[task] = position;
    }
    let mut ordered: Vec<&Decision> = decisions.iter().collect();
    ordered.sort_by_key(|decision| position_in_order[decision.task]);
    for decision in ordered {
        state.complete_with(decision.task, &decision.team, &decision.paid);
    }
}

/// The model's value of `tasks` in `state`: impact plus keep bonuses.
fn model_value(
    state: &State<'_>,
    tasks: &[usize],
    keep: &HashSet<(usize, usize)>,
    move_cost: f64,
) -> f64 {
    tasks
        .iter()
        .filter(|&&task| state.complete[task])
        .map(|&task| {
            let kept = state.team[task]
                .iter()
                .filter(|&&volunteer| keep.contains(&(volunteer, task)))
                .count();
            state.problem.tasks[task].impact + move_cost * kept as f64
        })
        .sum()
}

pub(crate) fn improve(
    problem: &Problem,
    options: &SolveOptions,
    incumbent: &Solution,
    dropped_pins: &[usize],
    deadline: Instant,
) -> Outcome {
    let mut state = State::from_solution(problem, incumbent);
    let pins: Vec<(usize, usize)> = problem
        .pins
        .iter()
        .copied()
        .filter(|(_, task)| !dropped_pins.contains(task))
        .collect();
    let keep: HashSet<(usize, usize)> = options.keep.iter().copied().collect();
    let move_cost = options.move_cost.max(0.0);
    let parts = components(problem);
    let possible = possible_tasks(problem);
    // Every part starts with a cheap bound (what it could possibly complete,
    // with money as a fractional knapsack); exact solves and the LP tighten it.
    let mut part_bounds: Vec<f64> = parts
        .iter()
        .map(|part| money_knapsack_bound(problem, part, &possible))
        .collect();
    let large = |part: &Vec<usize>| pair_count(problem, part) > options.exact_pairs_max;

    // The LP bound of the large parts runs beside the search, on the other core.
    let empty = State::new(problem);
    let mut bound_receivers = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        if !large(part) || pair_count(problem, part) > LP_BOUND_PAIRS_MAX {
            continue;
        }
        let relaxed = Subproblem::build(
            &empty,
            part,
            &[],
            &HashSet::new(),
            0.0,
            &pins,
            true,
            BOUND_LIMITS,
        );
        let (sender, receiver) = mpsc::channel();
        let spec = relaxed.spec;
        let spawned = std::thread::Builder::new()
            .name("solver-core-lp-bound".to_owned())
            .spawn(move || {
                let _ =
                    sender.send(solve_model(spec, deadline).and_then(|result| result.dual_bound));
            });
        if spawned.is_ok() {
            bound_receivers.push((index, receiver));
        }
    }

    // Small parts first, exactly, each with time in proportion to its size;
    // then the large parts share what is left for the neighbourhood search.
    let mut all_proven = true;
    let mut random = SplitMix(options.seed);
    let mut stats = NeighbourhoodStats::default();
    let mut remaining_pairs: usize = parts
        .iter()
        .map(|part| pair_count(problem, part).max(1))
        .sum();
    let order: Vec<usize> = (0..parts.len())
        .filter(|&i| !large(&parts[i]))
        .chain((0..parts.len()).filter(|&i| large(&parts[i])))
        .collect();
    for index in order {
        let part = &parts[index];
        let pairs = pair_count(problem, part).max(1);
        let now = Instant::now();
        if now >= deadline {
            all_proven = false;
            break;
        }
        let share = (deadline - now)
            .mul_f64((pairs as f64 / remaining_pairs.max(1) as f64).clamp(0.0, 1.0));
        remaining_pairs = remaining_pairs.saturating_sub(pairs);
        let part_deadline = now + share.max(Duration::from_millis(20)).min(deadline - now);
        let complete_impact: f64 = part
            .iter()
            .filter(|&&task| state.complete[task])
            .map(|&task| problem.tasks[task].impact)
            .sum();
        if complete_impact >= part_bounds[index] - 1e-9 && keep.is_empty() {
            // Everything possible is already done: nothing to improve.
            continue;
        }
        let mut searched = large(part);
        if !searched {
            // The exact model gets most of the part's time; if HiGHS cannot
            // prove it in that (a loaded machine, a hard part), the search
            // uses the rest, since small models still finish.
            let exact_deadline = now + (part_deadline - now).mul_f64(EXACT_SHARE_OF_PART_TIME);
            let (proven, bound) =
                solve_part_exactly(&mut state, part, &keep, move_cost, &pins, exact_deadline);
            all_proven &= proven;
            if let Some(bound) = bound {
                part_bounds[index] = part_bounds[index].min(bound);
            }
            searched = !proven;
        }
        if searched {
            all_proven = false;
            search_neighbourhoods(
                &mut state,
                part,
                &keep,
                move_cost,
                &pins,
                part_deadline,
                &mut random,
                &mut stats,
            );
        }
    }

    for (index, receiver) in bound_receivers {
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(60);
        if let Ok(Some(bound)) = receiver.recv_timeout(wait) {
            part_bounds[index] = part_bounds[index].min(bound);
        }
    }
    let upper_bound: f64 = part_bounds.iter().sum();
    let solution = state.to_solution();
    let proven_optimal = all_proven || solution.objective(problem) >= upper_bound - 1e-6;
    Outcome {
        solution: Some(solution),
        neighbourhoods: stats,
        upper_bound: Some(upper_bound),
        proven_optimal,
    }
}

/// A bound on a part's impact that needs no solver: every possible task
/// without money, plus the money tasks as a fractional knapsack over all the
/// money its pledges hold (best impact per cent first). Valid because any
/// plan's money tasks are paid from those pledges, and the fractional
/// knapsack bounds the integer one.
fn money_knapsack_bound(problem: &Problem, part: &[usize], possible: &[bool]) -> f64 {
    let mut bound = 0.0;
    let mut money_tasks: Vec<usize> = Vec::new();
    let mut pledges: Vec<usize> = Vec::new();
    for &task in part.iter().filter(|&&task| possible[task]) {
        if problem.tasks[task].money_cents == 0 {
            bound += problem.tasks[task].impact;
        } else {
            money_tasks.push(task);
            pledges.extend(problem.pledges_of_task[task].iter().copied());
        }
    }
    pledges.sort_unstable();
    pledges.dedup();
    let mut money_left: f64 = pledges
        .iter()
        .map(|&pledge| problem.pledges[pledge].amount_cents as f64)
        .sum();
    let per_cent =
        |task: usize| problem.tasks[task].impact / problem.tasks[task].money_cents as f64;
    money_tasks.sort_by(|&a, &b| per_cent(b).total_cmp(&per_cent(a)));
    for task in money_tasks {
        let money = problem.tasks[task].money_cents as f64;
        if money_left <= 0.0 {
            break;
        }
        let share = (money_left / money).min(1.0);
        bound += share * problem.tasks[task].impact;
        money_left -= money;
    }
    bound
}

/// Tasks that could be complete in some plan, looking at each alone: enough
/// candidates, enough eligible money in total, and prerequisites that are
/// possible too.
fn possible_tasks(problem: &Problem) -> Vec<bool> {
    let mut possible = vec![false; problem.task_count()];
    for &task in &problem.topological_order {
        let facts = &problem.tasks[task];
        let money: u64 = problem.pledges_of_task[task]
            .iter()
            .map(|&pledge| problem.pledges[pledge].amount_cents)
            .fold(0, u64::saturating_add);
        possible[task] = problem.candidates_of_task[task].len() >= facts.slots
            && money >= facts.money_cents
            && facts
                .dependencies
                .iter()
                .all(|&dependency| possible[dependency]);
    }
    possible
}

/// Solves one part exactly (within its deadline). Returns whether the
/// result is proven optimal and a bound on the part's impact.
fn solve_part_exactly(
    state: &mut State<'_>,
    part: &[usize],
    keep: &HashSet<(usize, usize)>,
    move_cost: f64,
    pins: &[(usize, usize)],
    deadline: Instant,
) -> (bool, Option<f64>) {
    let previous = decisions_of(state, part);
    let old_value = model_value(state, part, keep, move_cost);
    for &task in part {
        state.release(task);
    }
    let subproblem = Subproblem::build(
        state,
        part,
        &previous,
        keep,
        move_cost,
        pins,
        false,
        ModelLimits::EXACT,
    );
    let result = subproblem.solve(state, &previous, deadline);
    let Some(result) = result else {
        restore(state, part, &previous);
        return (false, None);
    };
    apply_leniently(state, &result.decisions);
    if model_value(state, part, keep, move_cost) < old_value - 1e-9 {
        restore(state, part, &previous);
        return (false, None);
    }
    // The bound is on impact plus keep bonuses; with no keep pairs it is impact.
    let bound = if keep.is_empty() {
        result.dual_bound
    } else {
        None
    };
    (result.optimal, bound)
}

/// Large-neighbourhood search on one part until `deadline`.
#[allow(clippy::too_many_arguments)]
fn search_neighbourhoods(
    state: &mut State<'_>,
    part: &[usize],
    keep: &HashSet<(usize, usize)>,
    move_cost: f64,
    pins: &[(usize, usize)],
    deadline: Instant,
    random: &mut SplitMix,
    stats: &mut NeighbourhoodStats,
) {
    let problem = state.problem;
    let staffable: Vec<usize> = part
        .iter()
        .copied()
        .filter(|&task| {
            problem.tasks[task].slots == 0 || !problem.candidates_of_task[task].is_empty()
        })
        .collect();
    if staffable.is_empty() {
        return;
    }
    let mut target_tasks = NEIGHBOURHOOD_TASKS_START;
    let mut round = 0usize;
    while Instant::now() + Duration::from_millis(5) < deadline {
        round += 1;
        // Mostly seed at a task the plan leaves out (the best of three tries
        // by impact): that is where a reshuffle can gain.
        let mut seed = staffable[random.below(staffable.len())];
        if random.below(10) < 7 {
            for _ in 0..3 {
                let other = staffable[random.below(staffable.len())];
                if !state.complete[other]
                    && (state.complete[seed]
                        || problem.tasks[other].impact > problem.tasks[seed].impact)
                {
                    seed = other;
                }
            }
        }
        let neighbourhood = match round % 3 {
            0 => skill_neighbourhood(state, part, seed, target_tasks, random),
            1 => people_neighbourhood(state, seed, target_tasks, random),
            _ => money_neighbourhood(state, seed, target_tasks, random),
        };
        let mut free: Vec<usize> = neighbourhood;
        // Releasing cascades to dependents; those are free too. Their
        // current decisions are recorded first, to restore a failed move.
        let mut released: Vec<usize> = Vec::new();
        let mut stack: Vec<usize> = free.clone();
        let mut seen: HashSet<usize> = HashSet::new();
        while let Some(task) = stack.pop() {
            if !state.complete[task] || !seen.insert(task) {
                continue;
            }
            released.push(task);
            stack.extend(problem.dependents_of_task[task].iter().copied());
        }
        let previous: Vec<Decision> = decisions_of(state, &released);
        for &task in &released {
            state.release(task);
        }
        let mut in_free: HashSet<usize> = free.iter().copied().collect();
        for &task in &released {
            if in_free.insert(task) {
                free.push(task);
            }
        }
        // Open prerequisites can be completed together with their dependents.
        let mut extra = Vec::new();
        for &task in &free {
            for &dependency in &problem.tasks[task].dependencies {
                if !state.complete[dependency] && in_free.insert(dependency) {
                    extra.push(dependency);
                }
            }
        }
        free.extend(extra);
        let old_value = decisions_value(problem, &previous, keep, move_cost);
        let solve_deadline =
            deadline.min(Instant::now() + Duration::from_millis(NEIGHBOURHOOD_SOLVE_MS_MAX));
        let asked = Instant::now();
        let subproblem = Subproblem::build(
            state,
            &free,
            &previous,
            keep,
            move_cost,
            pins,
            false,
            NEIGHBOURHOOD_LIMITS,
        );
        let result = subproblem.solve(state, &previous, solve_deadline);
        let took = asked.elapsed();
        let accepted = match &result {
            Some(result) => {
                apply_leniently(state, &result.decisions);
                model_value(state, &free, keep, move_cost) >= old_value - 1e-9
            }
            None => false,
        };
        stats.tried += 1;
        if result.is_none() {
            stats.failed += 1;
        }
        if !accepted {
            restore(state, &free, &previous);
        } else if model_value(state, &free, keep, move_cost) > old_value + 1e-9 {
            stats.improved += 1;
        }
        let proven_fast = result.as_ref().is_some_and(|result| result.optimal)
            && took < Duration::from_millis(NEIGHBOURHOOD_SOLVE_MS_MAX / 4);
        target_tasks = if proven_fast {
            (target_tasks * 5 / 4 + 1).min(NEIGHBOURHOOD_TASKS_MAX)
        } else if result.as_ref().is_none_or(|result| !result.optimal) {
            (target_tasks * 3 / 4).max(NEIGHBOURHOOD_TASKS_MIN)
        } else {
            target_tasks
        };
    }
}

/// Tasks reachable from `seed` through shared candidates: the people who
/// could swap work with each other.
fn people_neighbourhood(
    state: &State<'_>,
    seed: usize,
    target_tasks: usize,
    random: &mut SplitMix,
) -> Vec<usize> {
    let problem = state.problem;
    let mut chosen = vec![seed];
    let mut seen: HashSet<usize> = HashSet::from([seed]);
    let mut count = 1;
    let mut frontier = 0;
    while frontier < chosen.len() && count < target_tasks {
        let task = chosen[frontier];
        frontier += 1;
        let candidates = &problem.candidates_of_task[task];
        for _ in 0..candidates.len().min(6) {
            let volunteer = candidates[random.below(candidates.len())];
            let tasks = &problem.tasks_of_volunteer[volunteer];
            // Their current work first, then a few tasks they could take.
            let mut options: Vec<usize> = state.load[volunteer].clone();
            for _ in 0..tasks.len().min(4) {
                options.push(tasks[random.below(tasks.len())]);
            }
            for next in options {
                if count >= target_tasks {
                    break;
                }
                if seen.insert(next) {
                    chosen.push(next);
                    count += 1;
                }
            }
        }
    }
    chosen
}

/// Tasks of the part that ask for the seed's first skill, in the seed's
/// region or remote: the natural pool of one kind of organiser.
fn skill_neighbourhood(
    state: &State<'_>,
    part: &[usize],
    seed: usize,
    target_tasks: usize,
    random: &mut SplitMix,
) -> Vec<usize> {
    let problem = state.problem;
    let seed_facts = &problem.tasks[seed];
    let Some(skill) = seed_facts.skills.keys().next() else {
        return people_neighbourhood(state, seed, target_tasks, random);
    };
    let mut pool: Vec<usize> = part
        .iter()
        .copied()
        .filter(|&task| {
            let facts = &problem.tasks[task];
            facts.skills.contains_key(skill)
                && (facts.region.is_none() || facts.region == seed_facts.region)
        })
        .collect();
    // A random subset within the budget.
    for index in (1..pool.len()).rev() {
        pool.swap(index, random.below(index + 1));
    }
    let mut chosen: Vec<usize> = pool.into_iter().take(target_tasks).collect();
    if chosen.is_empty() {
        chosen.push(seed);
    }
    chosen
}

/// Tasks that draw on the same pledges as the seed, plus the people around them.
fn money_neighbourhood(
    state: &State<'_>,
    seed: usize,
    target_tasks: usize,
    random: &mut SplitMix,
) -> Vec<usize> {
    let problem = state.problem;
    let pledges = &problem.pledges_of_task[seed];
    if pledges.is_empty() {
        return people_neighbourhood(state, seed, target_tasks, random);
    }
    let mut chosen = vec![seed];
    let mut seen: HashSet<usize> = HashSet::from([seed]);
    let mut count = 1;
    for _ in 0..pledges.len().min(4) {
        let pledge = pledges[random.below(pledges.len())];
        let tasks = &problem.tasks_of_pledge[pledge];
        for _ in 0..tasks.len().min(12) {
            let task = tasks[random.below(tasks.len())];
            if count >= target_tasks / 2 {
                break;
            }
            if seen.insert(task) {
                chosen.push(task);
                count += 1;
            }
        }
    }
    let mut people = people_neighbourhood(
        state,
        seed,
        target_tasks.saturating_sub(count).max(1),
        random,
    );
    people.retain(|task| seen.insert(*task));
    chosen.extend(people);
    chosen
}
