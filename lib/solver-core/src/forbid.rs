//! Pairs the live switchboard must never propose, whatever the rules allow:
//! a volunteer declined the task or let it expire, or a coordinator vetoed
//! the match. They are removed from the candidate lists, so every solver
//! (greedy, exact model, neighbourhood search) simply never sees them.

use crate::problem::Problem;

impl Problem {
    /// Removes `(volunteer, task)` pairs from the candidates. Out-of-range
    /// pairs are ignored. Pins on a forbidden pair stay pins: the caller
    /// decides which of the two wins (the solver service drops such pins).
    pub fn forbid(&mut self, pairs: &[(usize, usize)]) {
        for &(volunteer, task) in pairs {
            if let Some(candidates) = self.candidates_of_task.get_mut(task) {
                if let Ok(position) = candidates.binary_search(&volunteer) {
                    candidates.remove(position);
                }
            }
            if let Some(tasks) = self.tasks_of_volunteer.get_mut(volunteer) {
                if let Ok(position) = tasks.binary_search(&task) {
                    tasks.remove(position);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::test_support::{instance, problem, task, volunteer};
    use crate::{solve, SolveOptions};

    #[test]
    fn a_forbidden_pair_is_never_in_a_solution() {
        let mut problem = problem(&instance(
            vec![
                volunteer("v1", json!({"legal": 3}), 6.0),
                volunteer("v2", json!({"legal": 2}), 6.0),
            ],
            vec![task("t1", json!({"legal": 2}), 3.0, 1, 7, 10.0)],
            vec![],
        ));
        let unrestricted = solve(&problem, &SolveOptions::default());
        let Some(&(volunteer, task)) = unrestricted.solution.assignments.first() else {
            panic!("the tiny world has a match");
        };
        problem.forbid(&[(volunteer, task)]);
        let restricted = solve(&problem, &SolveOptions::default());
        assert!(!restricted.solution.assignments.contains(&(volunteer, task)));
        assert!(problem.candidates(task).binary_search(&volunteer).is_err());
    }
}
