//! The judge, in Rust: an exact port of `shared/bench/check_plan.py`.
//!
//! Every plan the solver returns goes through here first, so a rounding slip
//! or a bug in a clever move can never reach a volunteer. The rules, their
//! order and the messages follow the Python line by line; the tests hold the
//! two to the same verdicts and objectives on the shared instances.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use proto::instance::{Plan, PLAN_FORMAT};

use crate::problem::{Problem, HOURS_TOLERANCE};

/// Checks `plan` against every rule of problem.md. Returns the objective
/// (the sum of impact over complete tasks) or every broken rule.
pub fn check(problem: &Problem, plan: &Plan) -> Result<f64, Vec<String>> {
    check_releasing(problem, plan, &[])
}

/// [`check`] with the pins of `released_pin_tasks` no longer required: what a
/// plan must satisfy once `solve` has reported those pins as dropped.
pub(crate) fn check_releasing(
    problem: &Problem,
    plan: &Plan,
    released_pin_tasks: &[usize],
) -> Result<f64, Vec<String>> {
    let mut errors = Vec::new();
    if plan.format != PLAN_FORMAT {
        errors.push("plan format is not switchboard-plan/1".to_owned());
    }
    // Teams in first-seen order of tasks, as Python's dict keeps them.
    let mut team: HashMap<usize, HashSet<usize>> = HashMap::new();
    let mut load: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for assignment in &plan.assignments {
        let (Some(volunteer), Some(task)) = (
            problem.volunteer_index(&assignment.volunteer),
            problem.task_index(&assignment.task),
        ) else {
            errors.push(format!(
                "unknown volunteer or task in {}->{}",
                assignment.volunteer, assignment.task
            ));
            continue;
        };
        let members = team.entry(task).or_default();
        if members.contains(&volunteer) {
            errors.push(format!(
                "{}->{} appears twice",
                assignment.volunteer, assignment.task
            ));
            continue;
        }
        for why in problem.eligibility_failures(volunteer, task) {
            errors.push(format!(
                "{}->{}: {why}",
                assignment.volunteer, assignment.task
            ));
        }
        members.insert(volunteer);
        load.entry(volunteer).or_default().push(task);
    }

    let mut funded: HashMap<usize, u64> = HashMap::new();
    let mut spent: BTreeMap<usize, u64> = BTreeMap::new();
    for funding in &plan.funding {
        let (Some(pledge), Some(task)) = (
            problem.pledge_index(&funding.pledge),
            problem.task_index(&funding.task),
        ) else {
            errors.push(format!(
                "unknown pledge or task in {}->{}",
                funding.pledge, funding.task
            ));
            continue;
        };
        if funding.amount_cents == 0 {
            errors.push(format!(
                "{}->{}: amount must be a positive integer of cents",
                funding.pledge, funding.task
            ));
            continue;
        }
        if !problem.pledge_may_fund(pledge, task) {
            errors.push(format!("{} may not fund {}", funding.pledge, funding.task));
        }
        // Saturating: amounts are capped at 1e9 cents by validation, so a sum
        // that saturates is already far beyond any pledge.
        let task_total = funded.entry(task).or_default();
        *task_total = task_total.saturating_add(funding.amount_cents);
        let pledge_total = spent.entry(pledge).or_default();
        *pledge_total = pledge_total.saturating_add(funding.amount_cents);
    }
    for (&pledge, &amount) in &spent {
        let available = problem.pledges[pledge].amount_cents;
        if amount > available {
            errors.push(format!(
                "{} gives {amount} > {available}",
                problem.pledge_ids[pledge]
            ));
        }
    }

    let touched: BTreeSet<usize> = team.keys().chain(funded.keys()).copied().collect();
    let mut complete = BTreeSet::new();
    for &task in &touched {
        let facts = &problem.tasks[task];
        let staffed_count = team.get(&task).map_or(0, HashSet::len);
        let paid = funded.get(&task).copied().unwrap_or(0);
        let staffed = staffed_count == facts.slots;
        let fully_paid = paid == facts.money_cents;
        let id = &problem.task_ids[task];
        if !staffed {
            errors.push(format!(
                "{id} has {staffed_count} of {} slots filled",
                facts.slots
            ));
        }
        if !fully_paid {
            errors.push(format!(
                "{id} is funded {paid} of {} cents",
                facts.money_cents
            ));
        }
        if staffed && fully_paid {
            complete.insert(task);
        }
    }
    for &task in &touched {
        // Dependencies already done were dropped when the problem was built.
        for &dependency in &problem.tasks[task].dependencies {
            if !complete.contains(&dependency) {
                errors.push(format!(
                    "{} depends on {}, which is neither done nor complete",
                    problem.task_ids[task], problem.task_ids[dependency]
                ));
            }
        }
    }

    for (&volunteer, tasks) in &load {
        errors.extend(time_violations(problem, volunteer, tasks));
    }

    for &(volunteer, task) in &problem.pins {
        if released_pin_tasks.contains(&task) {
            continue;
        }
        if !team
            .get(&task)
            .is_some_and(|members| members.contains(&volunteer))
        {
            errors.push(format!(
                "pinned {}->{} is missing",
                problem.volunteer_ids[volunteer], problem.task_ids[task]
            ));
        }
    }

    if errors.is_empty() {
        Ok(complete
            .iter()
            .map(|&task| problem.tasks[task].impact)
            .sum())
    } else {
        Err(errors)
    }
}

/// Rule 5 for one volunteer, literally as the Python states it: every start
/// `a`, every deadline `b > a`, the hours of tasks inside `[a, b]`.
pub(crate) fn time_violations(problem: &Problem, volunteer: usize, tasks: &[usize]) -> Vec<String> {
    let mut starts: Vec<f64> = tasks
        .iter()
        .map(|&task| problem.tasks[task].start_hours)
        .collect();
    let mut ends: Vec<f64> = tasks
        .iter()
        .map(|&task| problem.tasks[task].deadline_hours)
        .collect();
    starts.sort_by(f64::total_cmp);
    starts.dedup();
    ends.sort_by(f64::total_cmp);
    ends.dedup();
    let facts = &problem.volunteers[volunteer];
    let mut violations = Vec::new();
    for &start in &starts {
        for &end in &ends {
            if end <= start {
                continue;
            }
            let need: f64 = tasks
                .iter()
                .map(|&task| &problem.tasks[task])
                .filter(|task| {
                    task.start_hours >= start - HOURS_TOLERANCE
                        && task.deadline_hours <= end + HOURS_TOLERANCE
                })
                .map(|task| task.hours)
                .sum();
            let have = facts.capacity_between(start, end);
            if need > have + HOURS_TOLERANCE {
                violations.push(format!(
                    "{} needs {need:.2} h in [{start:.1}, {end:.1}] but has {have:.2} h",
                    problem.volunteer_ids[volunteer]
                ));
            }
        }
    }
    violations
}
