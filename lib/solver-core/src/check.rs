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

// tidy: long: the rules of problem.md one after another, in the order check_plan.py checks them, so the two read side by side.
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

/// Rules 5, 5b and 5c for one volunteer, literally as the Python states
/// them (`load_violations`): rule 5 over the flexible tasks (all tasks when
/// the instance has no shift), then, only when it has shifts, overlapping
/// shifts and the hours of each ISO week.
pub(crate) fn time_violations(problem: &Problem, volunteer: usize, tasks: &[usize]) -> Vec<String> {
    if !problem.has_shifts {
        return flexible_violations(problem, volunteer, tasks);
    }
    let flexible: Vec<usize> = tasks
        .iter()
        .copied()
        .filter(|&task| problem.tasks[task].shift.is_none())
        .collect();
    let mut violations = flexible_violations(problem, volunteer, &flexible);
    let id = &problem.volunteer_ids[volunteer];
    let mut shifts: Vec<((f64, f64), usize)> = tasks
        .iter()
        .filter_map(|&task| problem.tasks[task].shift.map(|shift| (shift, task)))
        .collect();
    shifts.sort_by(|a, b| {
        (a.0 .0, a.0 .1)
            .partial_cmp(&(b.0 .0, b.0 .1))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| {
                problem.task_ids[a.1]
                    .as_str()
                    .cmp(problem.task_ids[b.1].as_str())
            })
    });
    for (position, &((_, end), first)) in shifts.iter().enumerate() {
        for &((start, _), second) in &shifts[position + 1..] {
            if start >= end - HOURS_TOLERANCE {
                break;
            }
            violations.push(format!(
                "{id}: shifts {} and {} overlap",
                problem.task_ids[first], problem.task_ids[second]
            ));
        }
    }
    let mut weeks: BTreeMap<i64, f64> = BTreeMap::new();
    for &task in tasks {
        for (week, hours) in problem.week_hours_of(volunteer, task) {
            *weeks.entry(week).or_default() += hours;
        }
    }
    let per_week = problem.volunteers[volunteer].hours_per_week;
    for (week, hours) in weeks {
        if hours > per_week + HOURS_TOLERANCE {
            violations.push(format!(
                "{id} has {hours:.2} h in week {week} but gives {per_week} h a week"
            ));
        }
    }
    violations
}

/// Rule 5 alone over `tasks`.
fn flexible_violations(problem: &Problem, volunteer: usize, tasks: &[usize]) -> Vec<String> {
    let facts = &problem.volunteers[volunteer];
    crate::time::interval_needs(problem, volunteer, tasks)
        .into_iter()
        .filter_map(|(start, end, need)| {
            let have = facts.capacity_between(start, end);
            (need > have + HOURS_TOLERANCE).then(|| {
                format!(
                    "{} needs {need:.2} h in [{start:.1}, {end:.1}] but has {have:.2} h",
                    problem.volunteer_ids[volunteer]
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proto::instance::{Assignment, Plan, PLAN_FORMAT};
    use serde_json::{json, Value};

    use super::*;
    use crate::test_support::{instance, problem, task, volunteer};

    /// A shift task of one person starting at `start` (UTC) for `hours`.
    fn shift(id: &str, start: &str, hours: f64) -> Value {
        let begin = chrono::DateTime::parse_from_rfc3339(start).unwrap();
        let end = (begin + chrono::Duration::minutes((hours * 60.0) as i64)).to_rfc3339();
        let mut raw = task(id, json!({}), hours, 1, 21, 1.0);
        raw["earliest_start"] = json!(start);
        raw["deadline"] = json!(end);
        raw["shift"] = json!({"start": start, "end": end});
        raw
    }

    fn plan(pairs: &[(&str, &str)]) -> Plan {
        Plan {
            format: PLAN_FORMAT.to_owned(),
            assignments: pairs
                .iter()
                .map(|&(volunteer, task)| Assignment {
                    volunteer: volunteer.to_owned(),
                    task: task.to_owned(),
                })
                .collect(),
            funding: Vec::new(),
        }
    }

    #[test]
    fn each_shift_rule_is_held_by_the_checker_and_by_fits_with() {
        // 2026-11-22 is a Sunday; 14:00 UTC is 09:00 in Detroit.
        let mut weekly = volunteer("weekly", json!({}), 10.0);
        weekly["tz"] = json!("America/Detroit");
        weekly["weekly"] = json!([{"days": ["sat"], "from": "09:00", "to": "13:00"}]);
        let mut near = volunteer("near", json!({}), 10.0);
        near["home"] = json!({"lat": 42.3601, "lon": -83.0697});
        near["max_km"] = json!(5);
        let mut speaker = volunteer("speaker", json!({}), 10.0);
        speaker["languages"] = json!(["es"]);
        let mut far_place = shift("far", "2026-11-24T14:00:00Z", 2.0);
        far_place["place"] = json!({"lat": 42.5, "lon": -83.0697});
        let mut close_place = shift("close", "2026-11-25T14:00:00Z", 2.0);
        close_place["place"] = json!({"lat": 42.37, "lon": -83.07});
        let mut spanish = shift("spanish", "2026-11-26T14:00:00Z", 2.0);
        spanish["languages"] = json!(["es", "ar"]);
        let mut arabic = shift("arabic", "2026-11-26T18:00:00Z", 2.0);
        arabic["languages"] = json!(["ar"]);
        // A flexible task of 7 h over the week of Nov 23: it fits rule 5
        // (10 h a week at an even rate) and counts 7 h in that week.
        let mut flexible = task("flexible", json!({}), 7.0, 1, 21, 1.0);
        flexible["earliest_start"] = json!("2026-11-23T00:00:00Z");
        flexible["deadline"] = json!("2026-11-30T00:00:00Z");
        let tasks = vec![
            shift("sat-morning", "2026-11-28T14:00:00Z", 4.0),
            shift("sat-late", "2026-11-28T15:00:00Z", 4.0),
            shift("sat-after", "2026-11-28T18:00:00Z", 4.0),
            shift("next-sat", "2026-12-05T14:00:00Z", 4.0),
            shift("long", "2026-11-24T00:00:00Z", 9.0),
            far_place,
            close_place,
            spanish,
            arabic,
            flexible,
        ];
        let volunteers = vec![volunteer("plain", json!({}), 10.0), weekly, near, speaker];
        let problem = problem(&instance(volunteers, tasks, vec![]));
        assert!(problem.has_shifts);
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, bool);
        // (sentence, assignments, feasible)
        let cases: Vec<Case> = vec![
            (
                "a 4 h shift fits although the even rate gives 0.1 h in 4 h",
                vec![("plain", "sat-morning")],
                true,
            ),
            (
                "overlapping shifts",
                vec![("plain", "sat-morning"), ("plain", "sat-late")],
                false,
            ),
            (
                "a shift may start when the last one ends",
                vec![("plain", "sat-morning"), ("plain", "sat-after")],
                true,
            ),
            (
                "two shifts in one week over the weekly hours",
                vec![("plain", "long"), ("plain", "sat-morning")],
                false,
            ),
            (
                "the same hours in two weeks",
                vec![("plain", "sat-morning"), ("plain", "next-sat")],
                true,
            ),
            (
                "inside the Saturday window, read in Detroit",
                vec![("weekly", "sat-morning")],
                true,
            ),
            (
                "an hour past the window's end",
                vec![("weekly", "sat-late")],
                false,
            ),
            (
                "on a day outside the pattern",
                vec![("weekly", "long")],
                false,
            ),
            ("a place too far from home", vec![("near", "far")], false),
            ("a place within reach", vec![("near", "close")], true),
            (
                "a volunteer with no limit goes anywhere",
                vec![("plain", "far")],
                true,
            ),
            (
                "speaks one of the task's languages",
                vec![("speaker", "spanish")],
                true,
            ),
            ("speaks none of them", vec![("speaker", "arabic")], false),
            (
                "no languages listed: speaks none",
                vec![("plain", "spanish")],
                false,
            ),
            (
                "a flexible task and a shift in one week over the budget",
                vec![("plain", "flexible"), ("plain", "sat-morning")],
                false,
            ),
            (
                "a flexible task and a shift in different weeks",
                vec![("plain", "flexible"), ("plain", "next-sat")],
                true,
            ),
        ];
        for (sentence, pairs, feasible) in cases {
            let verdict = check(&problem, &plan(&pairs));
            assert_eq!(verdict.is_ok(), feasible, "{sentence}: {verdict:?}");
            // The incremental predicate the solvers use agrees, pair by pair.
            let mut load: Vec<usize> = Vec::new();
            let mut fits = true;
            for &(volunteer, task) in &pairs {
                let (v, t) = (
                    problem.volunteer_index(volunteer).unwrap(),
                    problem.task_index(task).unwrap(),
                );
                fits &= problem.is_eligible(v, t)
                    && problem.passes_new_rule_one(v, t)
                    && crate::time::fits_with(&problem, v, &load, t);
                crate::time::insert_sorted(&problem, &mut load, t);
            }
            assert_eq!(fits, feasible, "{sentence} (fits_with)");
        }
    }

    #[test]
    fn without_a_shift_rule_five_counts_every_task_and_weeks_do_not_bind() {
        // 10 h a week, and a 7 h task due in one day: rule 5 refuses it.
        let problem = problem(&instance(
            vec![volunteer("v", json!({}), 10.0)],
            vec![task("day", json!({}), 7.0, 1, 1, 1.0)],
            vec![],
        ));
        assert!(!problem.has_shifts);
        assert!(check(&problem, &plan(&[("v", "day")])).is_err());
    }
}
