//! Why a volunteer got a task: the `why` every proposal carries.
//!
//! Volunteers and coordinators trust a match they can read. The explanation
//! names the rule that limits the choice most (time, team size, money, a
//! skill held at exactly the level asked), how much room is left, and the
//! runner-up volunteer with the reason they lost.

use std::collections::BTreeMap;

use proto::wire::Why;

use crate::problem::Problem;
use crate::solution::Solution;
use crate::time::{fits_with, insert_sorted, slack_around};

/// Spare hours below which time is called the binding rule.
const TIGHT_SLACK_HOURS: f64 = 1.0;

/// Explains `volunteer` on `task` within `solution` (the pair need not be in
/// it: then the explanation is of the hypothetical assignment).
pub fn explain(problem: &Problem, solution: &Solution, volunteer: usize, task: usize) -> Why {
    let facts = &problem.tasks[task];
    let person = &problem.volunteers[volunteer];

    let skills: BTreeMap<String, [u8; 2]> = facts
        .skills
        .iter()
        .map(|(skill, &required)| {
            (
                skill.clone(),
                [required, person.skills.get(skill).copied().unwrap_or(0)],
            )
        })
        .collect();

    let load = load_of(problem, solution, volunteer);
    let (slack_hours, tight_from, tight_until) = slack_around(problem, volunteer, &load, task);

    let mut team: Vec<usize> = solution.team_of(task);
    if !team.contains(&volunteer) {
        team.push(volunteer);
        team.sort_unstable();
    }
    let candidate_count = problem.candidates_of_task[task].len();
    let failures = problem.eligibility_failures(volunteer, task);
    let exact_skill = facts
        .skills
        .iter()
        .find(|(skill, &required)| person.skills.get(*skill).copied() == Some(required));

    let binding = if !failures.is_empty() {
        format!("eligibility: {}", failures.join(", "))
    } else if slack_hours < 0.0 {
        format!(
            "time: {:.1} h more than the volunteer has between hour {tight_from:.0} and hour {tight_until:.0}",
            -slack_hours
        )
    } else if candidate_count <= facts.slots {
        format!(
            "team: the task needs {} people and only {candidate_count} eligible volunteers can fit it",
            facts.slots
        )
    } else if slack_hours < TIGHT_SLACK_HOURS {
        format!(
            "time: only {slack_hours:.1} h left between hour {tight_from:.0} and hour {tight_until:.0}"
        )
    } else if facts.money_cents > 0 {
        format!(
            "money: the task also needs {} cents from {} eligible pledges",
            facts.money_cents,
            problem.pledges_of_task[task].len()
        )
    } else if let Some((skill, level)) = exact_skill {
        format!("skill: {skill} is held at exactly the required level {level}")
    } else {
        format!(
            "team: {} of {candidate_count} eligible volunteers are needed",
            facts.slots
        )
    };

    Why {
        impact: facts.impact,
        skills,
        slack_hours: slack_hours.max(0.0),
        tenure_left_hours: person.available_until_hours.max(0.0),
        binding,
        team: team
            .iter()
            .map(|&member| problem.volunteer_ids[member].to_string())
            .collect(),
        alternative: runner_up(problem, solution, volunteer, task, &team),
    }
}

/// The volunteer's tasks in `solution`, sorted by deadline.
fn load_of(problem: &Problem, solution: &Solution, volunteer: usize) -> Vec<usize> {
    let mut load = Vec::new();
    for task in solution.tasks_of(volunteer) {
        insert_sorted(problem, &mut load, task);
    }
    load
}

/// The best eligible volunteer not on the team, and why they lost: no time
/// left in the window, or wanted by more other tasks (so the plan kept them
/// free).
fn runner_up(
    problem: &Problem,
    solution: &Solution,
    volunteer: usize,
    task: usize,
    team: &[usize],
) -> Option<String> {
    let mut best: Option<(bool, usize, usize)> = None;
    for &other in &problem.candidates_of_task[task] {
        if other == volunteer || team.contains(&other) {
            continue;
        }
        let load = load_of(problem, solution, other);
        let fits = fits_with(problem, other, &load, task);
        let demand = problem.tasks_of_volunteer[other].len();
        // Prefer one who fits; among those, the least demanded.
        let key = (fits, usize::MAX - demand, other);
        if best.is_none_or(|current| (current.0, usize::MAX - current.1, current.2) < key) {
            best = Some((fits, demand, other));
        }
    }
    let (fits, demand, other) = best?;
    let other_id = &problem.volunteer_ids[other];
    if fits {
        let own_demand = problem.tasks_of_volunteer[volunteer].len();
        Some(format!(
            "{other_id} could also do it, but {demand} tasks can use them against {own_demand} for this volunteer, so they are kept free"
        ))
    } else {
        let busy: Vec<String> = solution
            .tasks_of(other)
            .into_iter()
            .take(3)
            .map(|busy_task| problem.task_ids[busy_task].to_string())
            .collect();
        Some(format!(
            "{other_id} is eligible but has no time left in the window (busy with {})",
            if busy.is_empty() {
                "earlier commitments".to_owned()
            } else {
                busy.join(", ")
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{instance, problem, task, volunteer};

    #[test]
    fn an_explanation_names_skills_team_slack_and_the_runner_up() {
        let raw = instance(
            vec![
                volunteer("v1", json!({"legal": 3}), 16.8),
                volunteer("v2", json!({"legal": 5}), 16.8),
            ],
            vec![task("t1", json!({"legal": 3}), 2.0, 1, 1, 5.0)],
            vec![],
        );
        let problem = problem(&raw);
        let solution = Solution {
            assignments: vec![(0, 0)],
            funding: vec![],
        };
        let why = explain(&problem, &solution, 0, 0);
        assert_eq!(why.impact, 5.0);
        assert_eq!(why.skills.get("legal"), Some(&[3, 3]));
        assert_eq!(why.team, vec!["v1".to_owned()]);
        // 2.4 h in the day, 2 h taken.
        assert!((why.slack_hours - 0.4).abs() < 1e-9, "{}", why.slack_hours);
        assert!((why.tenure_left_hours - 21.0 * 24.0).abs() < 1e-9);
        assert!(why.binding.starts_with("time"), "{}", why.binding);
        assert!(why.alternative.is_some_and(|text| text.starts_with("v2")));
    }
}
