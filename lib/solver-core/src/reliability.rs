//! Reliability: most people give about three weeks and some vanish without
//! a word, so work given to someone who has dropped out before is less
//! likely to happen. The live service estimates each volunteer's chance of
//! finishing from their record and sets it here, relative to a newcomer's
//! (a newcomer is 1.0, someone who finished everything more, someone who
//! went silent twice less). The greedy then plans for expected impact: a
//! task's value is its impact times the product of its likely team's
//! reliabilities, and within a team the more reliable of two otherwise
//! equal candidates comes first.
//!
//! Everyone is 1.0 unless set, so `solve` on a canonical instance plans
//! exactly as before: problem.md's objective knows nothing of records.

use crate::problem::Problem;

/// The lowest reliability a volunteer is planned with: never zero, so
/// nobody's work is worth nothing.
pub const RELIABILITY_FLOOR: f64 = 0.05;
/// The highest: a long record of finished work is not certainty.
pub const RELIABILITY_CEILING: f64 = 2.0;

impl Problem {
    /// Sets `volunteer`'s reliability relative to a newcomer's (clamped to
    /// [`RELIABILITY_FLOOR`], [`RELIABILITY_CEILING`]; out of range: ignored).
    pub fn set_reliability(&mut self, volunteer: usize, relative: f64) {
        if let Some(slot) = self.reliability.get_mut(volunteer) {
            *slot = if relative.is_finite() {
                relative.clamp(RELIABILITY_FLOOR, RELIABILITY_CEILING)
            } else {
                1.0
            };
        }
    }

    /// `volunteer`'s reliability relative to a newcomer's (1.0 if unset).
    pub fn reliability(&self, volunteer: usize) -> f64 {
        self.reliability.get(volunteer).copied().unwrap_or(1.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use crate::test_support::{instance, problem, task, volunteer};
    use crate::{solve, SolveOptions};

    fn greedy() -> SolveOptions {
        SolveOptions {
            greedy_only: true,
            ..SolveOptions::default()
        }
    }

    #[test]
    fn of_two_otherwise_equal_people_the_one_who_finishes_their_work_is_asked() {
        let mut problem = problem(&instance(
            vec![
                volunteer("v-flaky", json!({"legal": 3}), 6.0),
                volunteer("v-steady", json!({"legal": 3}), 6.0),
            ],
            vec![task("t1", json!({"legal": 1}), 2.0, 1, 5, 10.0)],
            vec![],
        ));
        let plan = solve(&problem, &greedy()).solution.to_plan(&problem);
        assert_eq!(plan.assignments[0].volunteer, "v-flaky", "ties go by index");
        let flaky = problem.volunteer_index("v-flaky").unwrap();
        problem.set_reliability(flaky, 0.5);
        let plan = solve(&problem, &greedy()).solution.to_plan(&problem);
        assert_eq!(plan.assignments[0].volunteer, "v-steady");
    }

    #[test]
    fn a_big_team_of_people_who_drop_out_is_worth_less_than_a_sure_small_one() {
        // Each volunteer's time fits one of the two tasks.
        let mut problem = problem(&instance(
            vec![
                volunteer("v1", json!({"legal": 3}), 1.0),
                volunteer("v2", json!({"legal": 3}), 1.0),
            ],
            vec![
                task("t-team", json!({"legal": 1}), 3.0, 2, 21, 20.0),
                task("t-solo", json!({"legal": 1}), 3.0, 1, 21, 9.0),
            ],
            vec![],
        ));
        let staffed = |problem: &crate::Problem| {
            let plan = solve(problem, &greedy()).solution.to_plan(problem);
            let mut tasks: Vec<String> = plan.assignments.into_iter().map(|a| a.task).collect();
            tasks.dedup();
            tasks
        };
        assert_eq!(
            staffed(&problem),
            vec!["t-team"],
            "canonical: the bigger impact"
        );
        for volunteer in 0..2 {
            problem.set_reliability(volunteer, 0.6);
        }
        // Expected: 20 * 0.6^2 = 7.2 for the team's 6 hours, 9 * 0.6 = 5.4 for 3.
        assert_eq!(staffed(&problem), vec!["t-solo"]);
    }

    #[test]
    fn a_reliability_out_of_bounds_is_clamped_and_nonsense_is_ignored() {
        let mut problem = problem(&instance(
            vec![volunteer("v1", json!({}), 6.0)],
            vec![],
            vec![],
        ));
        problem.set_reliability(0, 0.0);
        assert_eq!(problem.reliability(0), super::RELIABILITY_FLOOR);
        problem.set_reliability(0, 50.0);
        assert_eq!(problem.reliability(0), super::RELIABILITY_CEILING);
        problem.set_reliability(0, f64::NAN);
        assert_eq!(problem.reliability(0), 1.0);
        problem.set_reliability(7, 0.5);
        assert_eq!(problem.reliability(7), 1.0);
    }
}
