//! The constructive heuristic: pins first, then tasks by value for cost.
//!
//! Tasks become ready when their dependencies are complete and are taken
//! from a priority queue by score: impact (plus a share of what they unlock
//! downstream, so a modest prerequisite of a valuable task is not starved)
//! divided by what they consume (team hours and money, each priced by how
//! scarce it is overall). Teams are filled with the least-demanded eligible
//! volunteers first, and money is drawn from the most restricted pledges
//! first, which keeps flexible people and money for later tasks.
//!
//! The greedy is the fallback of every other method and the warm start of
//! the optimisers, so it must be fast (near-linear in the eligible pairs) and
//! must never break a rule: it builds plans only through [`State`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use crate::problem::Problem;
use crate::state::State;

/// How the greedy weighs its choices; [`Greedy::variants`] lists the ones
/// `solve` tries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GreedyWeights {
    /// Multiplies the scarcity price of an hour of volunteer time.
    pub hour_price_scale: f64,
    /// Multiplies the scarcity price of a cent.
    pub money_price_scale: f64,
    /// Share of a dependent's value credited to its prerequisites.
    pub unlock_share: f64,
}

/// Precomputed rankings shared by every greedy run on one problem.
pub(crate) struct Greedy<'problem> {
    problem: &'problem Problem,
    /// Per task: candidates, least-demanded volunteer first.
    pub volunteer_order: Vec<Vec<usize>>,
    /// Per task: eligible pledges, most restricted first.
    pub pledge_order: Vec<Vec<usize>>,
    /// Impact per hour the volunteer pool would yield if every hour were used.
    hour_price: f64,
    /// Impact per cent the money would yield if every cent were used.
    money_price: f64,
}

#[derive(Clone, Copy, Debug)]
struct Ready {
    score: f64,
    task: usize,
}

impl PartialEq for Ready {
    fn eq(&self, other: &Ready) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Ready) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Ready) -> Ordering {
        // Higher score first; ties by lower index so runs are reproducible.
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.task.cmp(&self.task))
    }
}

/// Pins that could not be honoured: the tasks whose pins were dropped.
pub(crate) type DroppedPins = Vec<usize>;

impl<'problem> Greedy<'problem> {
    pub fn new(problem: &'problem Problem) -> Greedy<'problem> {
        let tasks = &problem.tasks;
        // A volunteer is "demanded" when tasks with few candidates want them.
        let mut demand = vec![0.0f64; problem.volunteer_count()];
        for (task, candidates) in problem.candidates_of_task.iter().enumerate() {
            if candidates.is_empty() {
                continue;
            }
            let share = tasks[task].impact * tasks[task].slots as f64 / candidates.len() as f64;
            for &volunteer in candidates {
                demand[volunteer] += share;
            }
        }
        let horizon_hours = tasks
            .iter()
            .map(|task| task.deadline_hours)
            .fold(0.0f64, f64::max)
            .max(1.0);
        let mut supply_hours = 0.0;
        for (volunteer, facts) in problem.volunteers.iter().enumerate() {
            let capacity = facts.capacity_between(0.0, horizon_hours).max(1e-3);
            demand[volunteer] /= capacity;
            if !problem.tasks_of_volunteer[volunteer].is_empty() {
                supply_hours += capacity;
            }
        }
        let volunteer_order = problem
            .candidates_of_task
            .iter()
            .map(|candidates| {
                // Least demanded first; a less reliable volunteer counts as
                // more demanded (everyone is 1.0 unless the service says).
                let mut order = candidates.clone();
                let cost = |volunteer: usize| demand[volunteer] / problem.reliability(volunteer);
                order.sort_by(|&a, &b| cost(a).total_cmp(&cost(b)).then(a.cmp(&b)));
                order
            })
            .collect();
        let pledge_order = problem
            .pledges_of_task
            .iter()
            .map(|pledges| {
                let mut order = pledges.clone();
                order.sort_by_key(|&pledge| (problem.tasks_of_pledge[pledge].len(), pledge));
                order
            })
            .collect();

        let (mut staffed_impact, mut demand_hours, mut paid_impact, mut demand_cents) =
            (0.0, 0.0, 0.0, 0.0);
        for task in tasks {
            if task.slots > 0 {
                staffed_impact += task.impact;
                demand_hours += task.hours * task.slots as f64;
            }
            if task.money_cents > 0 {
                paid_impact += task.impact;
                demand_cents += task.money_cents as f64;
            }
        }
        let supply_cents: f64 = problem
            .pledges
            .iter()
            .map(|pledge| pledge.amount_cents as f64)
            .sum();
        // An abundant resource is nearly free; a scarce one costs about the
        // impact it buys on average.
        let hour_price = if demand_hours > 0.0 {
            staffed_impact / demand_hours * (demand_hours / supply_hours.max(1e-9)).clamp(0.05, 1.0)
        } else {
            0.0
        };
        let money_price = if demand_cents > 0.0 {
            paid_impact / demand_cents * (demand_cents / supply_cents.max(1.0)).clamp(0.05, 1.0)
        } else {
            0.0
        };
        Greedy {
            problem,
            volunteer_order,
            pledge_order,
            hour_price,
            money_price,
        }
    }

    /// The weightings `solve` tries; the first is the default.
    pub fn variants() -> Vec<GreedyWeights> {
        let mut variants = Vec::new();
        for (hour_price_scale, money_price_scale) in [
            (1.0, 1.0),
            (0.3, 1.0),
            (1.0, 3.0),
            (3.0, 1.0),
            (1.0, 0.3),
            (0.0, 0.0),
        ] {
            variants.push(GreedyWeights {
                hour_price_scale,
                money_price_scale,
                unlock_share: 0.5,
            });
        }
        variants.push(GreedyWeights {
            hour_price_scale: 1.0,
            money_price_scale: 1.0,
            unlock_share: 0.0,
        });
        variants.push(GreedyWeights {
            hour_price_scale: 1.0,
            money_price_scale: 1.0,
            unlock_share: 1.0,
        });
        variants
    }

    /// Per task: the score the queue orders by.
    pub fn scores(&self, weights: GreedyWeights, bonus: &[f64]) -> Vec<f64> {
        let problem = self.problem;
        // Value including a share of what each task unlocks: dependents first.
        // Expected value: times the reliability of the team the queue
        // would try first (1.0 unless the service set reliabilities).
        let mut value: Vec<f64> = problem
            .tasks
            .iter()
            .enumerate()
            .map(|(task, facts)| {
                let expected: f64 = self.volunteer_order[task]
                    .iter()
                    .take(facts.slots)
                    .map(|&volunteer| problem.reliability(volunteer))
                    .product();
                (facts.impact + bonus[task]) * expected
            })
            .collect();
        for &task in problem.topological_order.iter().rev() {
            let dependents = &problem.dependents_of_task[task];
            let unlocked: f64 = dependents
                .iter()
                .map(|&dependent| {
                    value[dependent] / problem.tasks[dependent].dependencies.len().max(1) as f64
                })
                .sum();
            value[task] += weights.unlock_share * unlocked;
        }
        problem
            .tasks
            .iter()
            .enumerate()
            .map(|(task, facts)| {
                let cost =
                    self.hour_price * weights.hour_price_scale * facts.hours * facts.slots as f64
                        + self.money_price * weights.money_price_scale * facts.money_cents as f64;
                // A tiny floor keeps free tasks first without dividing by zero.
                value[task] / (cost + 1e-6 * (1.0 + facts.hours * facts.slots as f64))
            })
            .collect()
    }

    /// Fills `state` with the tasks it can complete, best score first,
    /// considering only tasks for which `allowed` is true.
    pub fn fill(&self, state: &mut State<'_>, scores: &[f64], allowed: &dyn Fn(usize) -> bool) {
        let problem = self.problem;
        let mut queue = BinaryHeap::new();
        for (task, &score) in scores.iter().enumerate() {
            if allowed(task) && !state.complete[task] && state.dependencies_met(task) {
                queue.push(Ready { score, task });
            }
        }
        while let Some(Ready { task, .. }) = queue.pop() {
            if state.complete[task] {
                continue;
            }
            if state.try_complete(
                task,
                &[],
                &self.volunteer_order[task],
                &self.pledge_order[task],
            ) {
                for &dependent in &problem.dependents_of_task[task] {
                    if allowed(dependent)
                        && !state.complete[dependent]
                        && state.dependencies_met(dependent)
                    {
                        queue.push(Ready {
                            score: scores[dependent],
                            task: dependent,
                        });
                    }
                }
            }
        }
    }

    /// Completes every pinned task it can, with its pinned volunteers, and
    /// its dependencies first. Returns the tasks whose pins had to be dropped.
    pub fn place_pins(&self, state: &mut State<'_>) -> DroppedPins {
        let problem = self.problem;
        let mut pinned_team: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &(volunteer, task) in &problem.pins {
            pinned_team.entry(task).or_default().push(volunteer);
        }
        let mut dropped = Vec::new();
        // Reserve every pinned volunteer's time before anything else is placed.
        let mut reserved: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &task in &problem.topological_order {
            let Some(volunteers) = pinned_team.get(&task) else {
                continue;
            };
            let mut held = Vec::new();
            let mut ok = volunteers.len() <= problem.tasks[task].slots;
            for &volunteer in volunteers {
                if !ok {
                    break;
                }
                if state.reserve(volunteer, task) {
                    held.push(volunteer);
                } else {
                    ok = false;
                }
            }
            if ok {
                reserved.insert(task, held);
            } else {
                for volunteer in held {
                    state.unreserve(volunteer, task);
                }
                dropped.push(task);
            }
        }
        for &task in &problem.topological_order {
            let Some(held) = reserved.get(&task) else {
                continue;
            };
            let mut ok = self.complete_ancestors(state, task);
            ok = ok
                && state.try_complete(
                    task,
                    held,
                    &self.volunteer_order[task],
                    &self.pledge_order[task],
                );
            if !ok {
                for &volunteer in held {
                    state.unreserve(volunteer, task);
                }
                dropped.push(task);
            }
        }
        dropped.sort_unstable();
        dropped
    }

    /// Completes the open dependencies of `task`, deepest first.
    fn complete_ancestors(&self, state: &mut State<'_>, task: usize) -> bool {
        let problem = self.problem;
        for &dependency in &problem.tasks[task].dependencies {
            if state.complete[dependency] {
                continue;
            }
            if !self.complete_ancestors(state, dependency) {
                return false;
            }
            if !state.try_complete(
                dependency,
                &[],
                &self.volunteer_order[dependency],
                &self.pledge_order[dependency],
            ) {
                return false;
            }
        }
        true
    }
}
