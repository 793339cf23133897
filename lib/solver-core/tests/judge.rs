//! `check` must agree with the judge, `shared/bench/check_plan.py`, on every
//! plan: the solver's own plans and plans broken on purpose, one rule at a
//! time. Both must reach the same verdict and, when feasible, the same
//! objective.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use proto::instance::{Assignment, Funding, Instance, Plan};
use solver_core::{check, solve, Problem, SolveOptions};

/// `../shared` beside the checkout, as the workspace README asks.
const SHARED_INSTANCES_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/bench/instances"
);
const JUDGE_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/bench/check_plan.py"
);
const OBJECTIVE_TOLERANCE: f64 = 1e-6;

/// The judge is required, not optional: a silently skipped comparison would
/// let `check` drift from the rules. The workspace README asks for `../shared`.
fn judge_available() -> bool {
    assert!(
        Path::new(JUDGE_PATH).exists(),
        "{JUDGE_PATH} is missing: put ../shared beside the checkout"
    );
    let python = Command::new("python3").arg("--version").output();
    assert!(
        python.is_ok_and(|out| out.status.success()),
        "python3 is needed to run the judge"
    );
    true
}

fn load(name: &str) -> (PathBuf, Instance, Problem) {
    let path = Path::new(SHARED_INSTANCES_DIR).join(format!("{name}.json"));
    let bytes = std::fs::read(&path).unwrap();
    let instance: Instance = serde_json::from_slice(&bytes).unwrap();
    let problem = Problem::from_world(&instance.validate().unwrap()).unwrap();
    (path, instance, problem)
}

/// A fresh file per call: the tests run in parallel in one process.
fn temp_file(label: &str, body: &[u8]) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!(
        "solver-core-judge-{}-{serial}-{label}.json",
        std::process::id()
    );
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// Runs the judge's own `check` on many plans in one Python process (the
/// interpreter's start-up would otherwise dominate the test's time).
const JUDGE_MANY_PY: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import check_plan
instance = check_plan.Instance(json.load(open(sys.argv[2])))
verdicts = []
for plan in json.load(open(sys.argv[3])):
    errors, objective, _, _ = check_plan.check(instance, plan)
    verdicts.append(None if errors else objective)
print(json.dumps(verdicts))
"#;

/// The judge's verdicts: `Some(objective)` for each feasible plan.
fn judge(instance_path: &Path, plans: &[&Plan], label: &str) -> Vec<Option<f64>> {
    let plans_path = temp_file(label, &serde_json::to_vec(plans).unwrap());
    let judge_dir = Path::new(JUDGE_PATH).parent().unwrap();
    let output = Command::new("python3")
        .arg("-c")
        .arg(JUDGE_MANY_PY)
        .arg(judge_dir)
        .arg(instance_path)
        .arg(&plans_path)
        .output()
        .unwrap();
    std::fs::remove_file(&plans_path).ok();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `check` and the judge agree on every `(label, plan)`.
fn assert_agree(instance_path: &Path, problem: &Problem, cases: &[(String, Plan)]) {
    let plans: Vec<&Plan> = cases.iter().map(|(_, plan)| plan).collect();
    let verdicts = judge(instance_path, &plans, "batch");
    assert_eq!(verdicts.len(), cases.len());
    for ((label, plan), theirs) in cases.iter().zip(verdicts) {
        let ours = check(problem, plan);
        match (&ours, theirs) {
            (Ok(mine), Some(judged)) => {
                assert!(
                    (mine - judged).abs() < OBJECTIVE_TOLERANCE,
                    "{label}: {mine} vs judge {judged}"
                )
            }
            (Err(_), None) => {}
            _ => panic!("{label}: check says {ours:?}, the judge says {theirs:?}"),
        }
    }
}

/// Plans broken on purpose, each from the solver's feasible plan.
fn broken_plans(instance: &Instance, problem: &Problem, plan: &Plan) -> Vec<(&'static str, Plan)> {
    let mut cases = Vec::new();
    let first = plan.assignments[0].clone();

    let mut missing_member = plan.clone();
    missing_member.assignments.remove(0);
    cases.push(("a team missing one member", missing_member));

    let mut twice = plan.clone();
    twice.assignments.push(first.clone());
    cases.push(("the same pair twice", twice));

    let task_index = problem.task_index(&first.task).unwrap();
    let outsider = (0..problem.volunteer_count())
        .find(|volunteer| !problem.candidates(task_index).contains(volunteer))
        .unwrap();
    let mut ineligible = plan.clone();
    ineligible.assignments[0].volunteer = problem.volunteer_id(outsider).to_string();
    cases.push(("an ineligible volunteer swapped in", ineligible));

    let mut extra = plan.clone();
    extra.assignments.push(Assignment {
        volunteer: problem.volunteer_id(outsider).to_string(),
        task: first.task.clone(),
    });
    cases.push(("one volunteer too many on a team", extra));

    let mut wrong_format = plan.clone();
    wrong_format.format = "switchboard-plan/0".to_owned();
    cases.push(("a plan of the wrong format", wrong_format));

    let mut unknown = plan.clone();
    unknown.assignments.push(Assignment {
        volunteer: "nobody".to_owned(),
        task: first.task.clone(),
    });
    cases.push(("an unknown volunteer", unknown));

    if let Some(funding) = plan.funding.first() {
        let mut short = plan.clone();
        if short.funding[0].amount_cents > 1 {
            short.funding[0].amount_cents -= 1;
        } else {
            short.funding.remove(0);
        }
        cases.push(("a task one cent short", short));

        let mut overspent = plan.clone();
        overspent.funding[0].amount_cents += 1_000_000_000;
        cases.push(("a pledge that gives more than it has", overspent));

        let mut zero = plan.clone();
        zero.funding.push(Funding {
            amount_cents: 0,
            ..funding.clone()
        });
        cases.push(("a gift of zero cents", zero));

        let unfunded_task = instance.tasks.iter().find(|task| {
            task.money_cents > 0 && !plan.funding.iter().any(|gift| gift.task == task.id)
        });
        if let Some(task) = unfunded_task {
            let mut stray = plan.clone();
            stray.funding.push(Funding {
                task: task.id.clone(),
                ..funding.clone()
            });
            cases.push(("money given to a task that is not complete", stray));
        }
    }

    // A prerequisite taken out from under a complete dependent.
    let staffed: std::collections::BTreeSet<&str> =
        plan.assignments.iter().map(|a| a.task.as_str()).collect();
    let prerequisite = instance
        .tasks
        .iter()
        .filter(|task| staffed.contains(task.id.as_str()))
        .flat_map(|task| task.depends_on.iter())
        .find(|dependency| staffed.contains(dependency.as_str()));
    if let Some(prerequisite) = prerequisite {
        let mut orphaned = plan.clone();
        orphaned.assignments.retain(|a| &a.task != prerequisite);
        orphaned.funding.retain(|f| &f.task != prerequisite);
        cases.push(("a dependency that is no longer complete", orphaned));
    }

    // Team members swapped for other candidates who may lack the time.
    for (position, assignment) in plan.assignments.iter().enumerate().step_by(7).take(12) {
        let task = problem.task_index(&assignment.task).unwrap();
        let team: Vec<&str> = plan
            .assignments
            .iter()
            .filter(|a| a.task == assignment.task)
            .map(|a| a.volunteer.as_str())
            .collect();
        let busiest = problem
            .candidates(task)
            .iter()
            .filter(|&&volunteer| !team.contains(&problem.volunteer_id(volunteer).as_str()))
            .max_by_key(|&&volunteer| {
                plan.assignments
                    .iter()
                    .filter(|a| a.volunteer == problem.volunteer_id(volunteer).as_str())
                    .count()
            });
        if let Some(&volunteer) = busiest {
            let mut swapped = plan.clone();
            swapped.assignments[position].volunteer = problem.volunteer_id(volunteer).to_string();
            cases.push(("a team member swapped for a busy candidate", swapped));
        }
    }
    cases
}

fn judge_agrees_on(name: &str) {
    if !judge_available() {
        return;
    }
    let (path, instance, problem) = load(name);
    let options = SolveOptions {
        time_limit: Duration::from_millis(300),
        ..SolveOptions::default()
    };
    let report = solve(&problem, &options);
    let plan = report.solution.to_plan(&problem);
    assert!(
        check(&problem, &plan).is_ok(),
        "{name}: the solver's plan must be feasible"
    );
    let mut cases = vec![(format!("{name}: the solver's plan"), plan.clone())];
    for (index, (label, broken)) in broken_plans(&instance, &problem, &plan)
        .into_iter()
        .enumerate()
    {
        cases.push((format!("{name} #{index}: {label}"), broken));
    }
    assert_agree(&path, &problem, &cases);
}

#[test]
fn check_agrees_with_the_judge_on_balanced_200x150() {
    judge_agrees_on("balanced-200x150");
}

#[test]
fn check_agrees_with_the_judge_on_time_scarce_300x600() {
    judge_agrees_on("time-scarce-300x600");
}

#[test]
fn check_agrees_with_the_judge_on_deep_deps_500x400() {
    judge_agrees_on("deep-deps-500x400");
}

#[test]
fn check_agrees_with_the_judge_on_money_scarce_400x400() {
    judge_agrees_on("money-scarce-400x400");
}

#[test]
fn check_agrees_with_the_judge_on_balanced_2000x1500() {
    judge_agrees_on("balanced-2000x1500");
}

#[test]
fn check_agrees_with_the_judge_when_a_pin_is_missing() {
    if !judge_available() {
        return;
    }
    let (_, mut instance, problem) = load("balanced-200x150");
    let report = solve(
        &problem,
        &SolveOptions {
            greedy_only: true,
            ..SolveOptions::default()
        },
    );
    let plan = report.solution.to_plan(&problem);
    let pinned = plan.assignments[0].clone();
    instance.pinned.push(pinned.clone());
    let instance_path = temp_file("pinned-instance", &serde_json::to_vec(&instance).unwrap());
    let pinned_problem = Problem::from_world(&instance.validate().unwrap()).unwrap();
    let mut without_pin = plan.clone();
    without_pin.assignments.retain(|a| a != &pinned);
    let cases = vec![
        ("pin kept".to_owned(), plan.clone()),
        ("pin missing".to_owned(), without_pin.clone()),
    ];
    assert_agree(&instance_path, &pinned_problem, &cases);
    assert!(check(&pinned_problem, &without_pin).is_err());
    std::fs::remove_file(&instance_path).ok();
}

#[test]
fn check_agrees_with_the_judge_on_shifts_300x250() {
    judge_agrees_on("shifts-300x250");
    shift_rules_agree_with_the_judge(&load("shifts-300x250"), "shifts-300x250");
}

/// A fresh `--regime shifts` instance from the shared generator.
fn generated(volunteers: usize, tasks: usize, seed: u64) -> (PathBuf, Instance, Problem) {
    let generator = Path::new(JUDGE_PATH).with_file_name("gen_instance.py");
    let output = Command::new("python3")
        .arg(generator)
        .args(["--regime", "shifts", "--volunteers"])
        .arg(volunteers.to_string())
        .arg("--tasks")
        .arg(tasks.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = temp_file(
        &format!("shifts-{volunteers}x{tasks}-{seed}"),
        &output.stdout,
    );
    let instance: Instance = serde_json::from_slice(&output.stdout).unwrap();
    let problem = Problem::from_world(&instance.validate().unwrap()).unwrap();
    (path, instance, problem)
}

#[test]
fn check_agrees_with_the_judge_on_fresh_shift_instances() {
    if !judge_available() {
        return;
    }
    for (volunteers, tasks, seed) in [(250, 300, 7), (400, 500, 23)] {
        let generated = generated(volunteers, tasks, seed);
        let label = format!("shifts {volunteers}x{tasks} seed {seed}");
        let (path, instance, problem) = &generated;
        let report = solve(
            problem,
            &SolveOptions {
                time_limit: Duration::from_millis(300),
                ..SolveOptions::default()
            },
        );
        let plan = report.solution.to_plan(problem);
        assert!(check(problem, &plan).is_ok(), "{label}: the solver's plan");
        let mut cases = vec![(format!("{label}: the solver's plan"), plan.clone())];
        for (index, (what, broken)) in broken_plans(instance, problem, &plan)
            .into_iter()
            .enumerate()
        {
            cases.push((format!("{label} #{index}: {what}"), broken));
        }
        assert_agree(path, problem, &cases);
        shift_rules_agree_with_the_judge(&generated, &label);
        std::fs::remove_file(path).ok();
    }
}

/// The judge's rule 1 for every pair, as a list of eligible `[volunteer, task]`.
const JUDGE_ELIGIBLE_PY: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import check_plan
instance = check_plan.Instance(json.load(open(sys.argv[2])))
print(json.dumps([[v, t] for v in instance.vol for t in instance.task if not instance.eligible(v, t)]))
"#;

/// Rule 1 pair by pair, and the load rules (5, 5b, 5c) on plans where one
/// team member is swapped for another eligible person: only the load rules
/// can then decide the verdict, so a slip in any of them shows.
fn shift_rules_agree_with_the_judge(
    (path, _, problem): &(PathBuf, Instance, Problem),
    label: &str,
) {
    let judge_dir = Path::new(JUDGE_PATH).parent().unwrap();
    let output = Command::new("python3")
        .arg("-c")
        .arg(JUDGE_ELIGIBLE_PY)
        .arg(judge_dir)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let judged: Vec<(String, String)> = serde_json::from_slice(&output.stdout).unwrap();
    let judged: std::collections::BTreeSet<(String, String)> = judged.into_iter().collect();
    let mut eligible_count = 0;
    for volunteer in 0..problem.volunteer_count() {
        for task in 0..problem.task_count() {
            let ours = problem.why_ineligible(volunteer, task).is_empty();
            let key = (
                problem.volunteer_id(volunteer).to_string(),
                problem.task_id(task).to_string(),
            );
            assert_eq!(
                ours,
                judged.contains(&key),
                "{label}: rule 1 for {key:?}: {:?}",
                problem.why_ineligible(volunteer, task)
            );
            eligible_count += usize::from(ours);
        }
    }
    assert!(
        eligible_count > 0,
        "{label}: nobody is eligible for anything"
    );

    let report = solve(
        problem,
        &SolveOptions {
            greedy_only: true,
            ..SolveOptions::default()
        },
    );
    let plan = report.solution.to_plan(problem);
    let mut cases = Vec::new();
    let mut swaps_refused = 0;
    for (position, assignment) in plan.assignments.iter().enumerate() {
        let task = problem.task_index(&assignment.task).unwrap();
        let team: Vec<&str> = plan
            .assignments
            .iter()
            .filter(|a| a.task == assignment.task)
            .map(|a| a.volunteer.as_str())
            .collect();
        // The busiest eligible people are likeliest to break 5, 5b or 5c.
        let mut others: Vec<(usize, usize)> = (0..problem.volunteer_count())
            .filter(|&v| problem.why_ineligible(v, task).is_empty())
            .filter(|&v| !team.contains(&problem.volunteer_id(v).as_str()))
            .map(|v| {
                let id = problem.volunteer_id(v).as_str();
                let held = plan
                    .assignments
                    .iter()
                    .filter(|a| a.volunteer == id)
                    .count();
                (held, v)
            })
            .collect();
        others.sort_unstable_by(|a, b| b.cmp(a));
        for &(_, volunteer) in others.iter().take(2) {
            let mut swapped = plan.clone();
            swapped.assignments[position].volunteer = problem.volunteer_id(volunteer).to_string();
            swaps_refused += usize::from(check(problem, &swapped).is_err());
            cases.push((format!("{label}: swap #{position}"), swapped));
        }
    }
    assert!(
        swaps_refused > 0 && swaps_refused < cases.len(),
        "{label}: the swaps should break some load rule and keep some plans feasible ({swaps_refused} of {})",
        cases.len()
    );
    assert_agree(path, problem, &cases);
}
