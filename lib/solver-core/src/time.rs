//! Rule 5 of problem.md: does a volunteer's set of tasks fit their time?
//!
//! A volunteer gives time at an even rate while available, and each task's
//! hours must be worked inside its window. The set fits exactly when, for
//! every interval `[a, b]` bounded by a window start and a deadline, the hours
//! of the tasks whose windows lie inside it are at most `cap(v, a, b)`.
//!
//! The solvers keep each volunteer's load sorted by deadline and ask whether
//! one more task fits. Only intervals that contain the new task's window can
//! become violated (any other interval's contents are unchanged), so the test
//! sweeps those: O(k²) for a load of k tasks instead of the O(k³) full check.

use crate::problem::{Problem, HOURS_TOLERANCE};

/// Hours a load may exceed capacity by and still fit: far below the judge's
/// own tolerance (1e-6), far above the rounding of sums in another order, so
/// an exact fit is accepted and the judge always agrees.
pub(crate) const FIT_SLACK_HOURS: f64 = 1e-9;

/// Whether `volunteer` can take `task` on top of `load` (task indexes sorted
/// by deadline, assumed to fit already): rules 5, 5b and 5c. This is the one
/// time predicate every solver uses; eligibility (rule 1) is checked apart.
pub(crate) fn fits_with(problem: &Problem, volunteer: usize, load: &[usize], task: usize) -> bool {
    if !problem.has_shifts {
        return fits_flexible(problem, volunteer, load, task);
    }
    if !fits_week_and_shifts(problem, volunteer, load, task) {
        return false;
    }
    if problem.tasks[task].shift.is_some() {
        // Rule 5 counts flexible tasks only.
        return true;
    }
    let flexible: Vec<usize> = load
        .iter()
        .copied()
        .filter(|&other| problem.tasks[other].shift.is_none())
        .collect();
    fits_flexible(problem, volunteer, &flexible, task)
}

/// Whether two shifts `(start, end)` overlap as the judge sees it (sorted,
/// the later one starts before the earlier one ends, less its tolerance).
pub(crate) fn shifts_overlap(a: (f64, f64), b: (f64, f64)) -> bool {
    let (first, second) = if (a.0, a.1) <= (b.0, b.1) {
        (a, b)
    } else {
        (b, a)
    };
    second.0 < first.1 - HOURS_TOLERANCE
}

/// Rules 5b (no overlapping shifts) and 5c (weekly hours) for one more task.
fn fits_week_and_shifts(problem: &Problem, volunteer: usize, load: &[usize], task: usize) -> bool {
    let new_task = &problem.tasks[task];
    if let Some(shift) = new_task.shift {
        let clash = load.iter().any(|&other| {
            problem.tasks[other]
                .shift
                .is_some_and(|held| shifts_overlap(shift, held))
        });
        if clash {
            return false;
        }
    }
    let budget = problem.volunteers[volunteer].hours_per_week + FIT_SLACK_HOURS;
    problem.week_hours_of(volunteer, task).all(|(week, hours)| {
        let held: f64 = load
            .iter()
            .flat_map(|&other| problem.week_hours_of(volunteer, other))
            .filter(|&(other_week, _)| other_week == week)
            .map(|(_, other_hours)| other_hours)
            .sum();
        hours + held <= budget
    })
}

/// Rule 5 for one more task over a load of flexible tasks.
fn fits_flexible(problem: &Problem, volunteer: usize, load: &[usize], task: usize) -> bool {
    let facts = &problem.volunteers[volunteer];
    let new_task = &problem.tasks[task];
    let new_start = problem.start_of(volunteer, task);
    let new_deadline = new_task.deadline_hours;
    let new_hours = problem.hours_of(volunteer, task);
    if new_hours > facts.capacity_between(new_start, new_deadline) + FIT_SLACK_HOURS {
        return false;
    }
    // Candidate interval starts: the new window's own start and every start at
    // or before it (an interval must begin no later than the new window).
    let starts = std::iter::once(new_start).chain(
        load.iter()
            .map(|&other| problem.start_of(volunteer, other))
            .filter(|&start| start <= new_start + HOURS_TOLERANCE),
    );
    for interval_start in starts {
        let mut need = new_hours;
        let mut new_task_counted = false;
        let mut position = 0;
        // Walk the load by deadline; the new task joins the sum at its own deadline.
        loop {
            let next_index = load.get(position).copied();
            let next = next_index.map(|other| &problem.tasks[other]);
            let next_deadline = next.map_or(f64::INFINITY, |other| other.deadline_hours);
            if !new_task_counted && next_deadline > new_deadline + HOURS_TOLERANCE {
                new_task_counted = true;
                // The interval [a, d_new] with every task inside it so far.
                if need > facts.capacity_between(interval_start, new_deadline) + FIT_SLACK_HOURS {
                    return false;
                }
            }
            let (Some(other), Some(other_index)) = (next, next_index) else {
                break;
            };
            if problem.start_of(volunteer, other_index) >= interval_start - HOURS_TOLERANCE {
                need += problem.hours_of(volunteer, other_index);
                if new_task_counted
                    && need
                        > facts.capacity_between(interval_start, other.deadline_hours)
                            + FIT_SLACK_HOURS
                {
                    return false;
                }
            }
            position += 1;
        }
    }
    true
}

/// Rule 5's intervals over `tasks` for `volunteer`, as `(start, end,
/// need)`: every `[a, b]` from a start of one of them to a later deadline,
/// with the hours of those whose windows (as the volunteer can work them)
/// lie inside it. The check and the LP compare `need` with the capacity,
/// each with its own tolerance.
pub(crate) fn interval_needs(
    problem: &Problem,
    volunteer: usize,
    tasks: &[usize],
) -> Vec<(f64, f64, f64)> {
    let mut starts: Vec<f64> = tasks
        .iter()
        .map(|&task| problem.start_of(volunteer, task))
        .collect();
    let mut ends: Vec<f64> = tasks
        .iter()
        .map(|&task| problem.tasks[task].deadline_hours)
        .collect();
    starts.sort_by(f64::total_cmp);
    starts.dedup();
    ends.sort_by(f64::total_cmp);
    ends.dedup();
    let mut intervals = Vec::new();
    for &start in &starts {
        for &end in &ends {
            if end <= start {
                continue;
            }
            let need: f64 = tasks
                .iter()
                .filter(|&&task| {
                    problem.start_of(volunteer, task) >= start - HOURS_TOLERANCE
                        && problem.tasks[task].deadline_hours <= end + HOURS_TOLERANCE
                })
                .map(|&task| problem.hours_of(volunteer, task))
                .sum();
            intervals.push((start, end, need));
        }
    }
    intervals
}

/// Puts `task` into `load`, keeping it sorted by deadline.
pub(crate) fn insert_sorted(problem: &Problem, load: &mut Vec<usize>, task: usize) {
    let deadline = problem.tasks[task].deadline_hours;
    let position = load.partition_point(|&other| problem.tasks[other].deadline_hours <= deadline);
    load.insert(position, task);
}

/// Takes `task` out of `load`, if it is there.
pub(crate) fn remove_from(load: &mut Vec<usize>, task: usize) {
    if let Some(position) = load.iter().position(|&other| other == task) {
        load.remove(position);
    }
}

/// The smallest spare capacity, in hours, over the intervals that contain
/// `task`'s window, given `load` (which may or may not hold `task`; it is
/// counted once either way), with the interval where it is smallest.
/// Used to explain a choice: this is how much more the volunteer could take
/// on in the task's window.
pub(crate) fn slack_around(
    problem: &Problem,
    volunteer: usize,
    load: &[usize],
    task: usize,
) -> (f64, f64, f64) {
    let facts = &problem.volunteers[volunteer];
    let window = &problem.tasks[task];
    let mut members: Vec<usize> = load
        .iter()
        .copied()
        .filter(|&other| other != task)
        .collect();
    members.push(task);
    let window_start = problem.start_of(volunteer, task);
    let starts: Vec<f64> = members
        .iter()
        .map(|&other| problem.start_of(volunteer, other))
        .filter(|&start| start <= window_start + HOURS_TOLERANCE)
        .collect();
    let ends: Vec<f64> = members
        .iter()
        .map(|&other| problem.tasks[other].deadline_hours)
        .filter(|&end| end >= window.deadline_hours - HOURS_TOLERANCE)
        .collect();
    let mut best = (f64::INFINITY, window_start, window.deadline_hours);
    for &start in &starts {
        for &end in &ends {
            let need: f64 = members
                .iter()
                .filter(|&&other| {
                    problem.start_of(volunteer, other) >= start - HOURS_TOLERANCE
                        && problem.tasks[other].deadline_hours <= end + HOURS_TOLERANCE
                })
                .map(|&other| problem.hours_of(volunteer, other))
                .sum();
            let spare = facts.capacity_between(start, end) - need;
            if spare < best.0 {
                best = (spare, start, end);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{instance, problem, task, volunteer};

    #[test]
    fn a_task_fits_only_when_every_interval_around_it_has_room() {
        // 16.8 h a week is 0.1 h an hour: 2.4 h a day.
        // (sentence, load as (hours, days), new task as (hours, days), fits)
        type Case = (&'static str, Vec<(f64, u32)>, (f64, u32), bool);
        let cases: Vec<Case> = vec![
            (
                "an empty week takes a task that needs a day's hours",
                vec![],
                (2.4, 1),
                true,
            ),
            (
                "a day cannot hold more than a day's hours",
                vec![],
                (2.5, 1),
                false,
            ),
            (
                "two tasks share a day exactly",
                vec![(1.2, 1)],
                (1.2, 1),
                true,
            ),
            (
                "a second task on a full day does not fit",
                vec![(2.4, 1)],
                (0.1, 1),
                false,
            ),
            (
                "a long window makes room around a full first day",
                vec![(2.4, 1)],
                (2.4, 2),
                true,
            ),
            (
                "the two-day interval is full with three tasks",
                vec![(2.4, 1), (2.4, 2)],
                (0.1, 2),
                false,
            ),
            (
                "a short task inside a long one's window fills the two days",
                vec![(4.0, 2)],
                (0.8, 1),
                true,
            ),
            (
                "but not past the two-day total",
                vec![(4.0, 2)],
                (0.9, 1),
                false,
            ),
        ];
        for (sentence, load, (hours, days), expected) in cases {
            let mut tasks: Vec<_> = load
                .iter()
                .enumerate()
                .map(|(i, &(h, d))| task(&format!("t{i}"), json!({}), h, 1, d, 1.0))
                .collect();
            tasks.push(task("new", json!({}), hours, 1, days, 1.0));
            let problem = problem(&instance(
                vec![volunteer("v", json!({}), 16.8)],
                tasks,
                vec![],
            ));
            let mut sorted = Vec::new();
            for index in 0..load.len() {
                insert_sorted(&problem, &mut sorted, index);
            }
            let new_task = problem.task_index("new").unwrap();
            assert_eq!(
                fits_with(&problem, 0, &sorted, new_task),
                expected,
                "{sentence}"
            );
            // The incremental test must agree with the judge's full rule.
            sorted.push(new_task);
            let full = crate::check::time_violations(&problem, 0, &sorted).is_empty();
            assert_eq!(full, expected, "{sentence} (full rule)");
        }
    }
}
