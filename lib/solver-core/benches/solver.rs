//! The solver benchmark: the five shared instances and fresh ones from
//! `gen_instance.py` (all four regimes, 200 to 15,000 tasks), each solved
//! within its budget, checked by the judge (`check_plan.py`), and printed as
//! one markdown table for BENCHMARKS.md.
//!
//!     cargo bench -p solver-core --bench solver            # everything (~3 min)
//!     cargo bench -p solver-core --bench solver -- quick   # without the 15,000-task runs
//!     cargo bench -p solver-core --bench solver -- quick budget=5   # every instance 5 s
//!     cargo bench -p solver-core --bench solver -- live-shifts      # live events only, 20,000 tasks, ~60% shifts
//!
//! Beside each of our runs the peer solver, OR-Tools CP-SAT with 2 workers
//! and the same time limit (`deploy/bench/cpsat_peer.py`, its plan scored by
//! the judge), on every instance up to [`PEER_TASKS_MAX`] tasks; it needs
//! `ortools` in the Python it runs (`$SWITCHBOARD_PEER_PYTHON`, by default
//! the venv `deploy/bin/install-prerequisites` makes: `pip install ortools`
//! there). Without it the peer's columns say so.
//!
//! Generated instances are cached under `<target>/bench-instances/`.
//! Peak RSS is per instance: the kernel's high-water mark is reset before
//! each solve (`/proc/self/clear_refs`), so it covers indexing and solving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use proto::instance::Instance;
use solver_core::{check, solve, LivePlan, Problem, SolveOptions};

/// `../shared/bench` beside the checkout.
const SHARED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/bench");

struct Case {
    name: String,
    path: PathBuf,
    budget: Duration,
    /// The reference optimum (or LP bound) from reference.json, if any.
    reference: Option<(f64, &'static str)>,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Largest instance the peer is run on: beyond it, building the CP-SAT
/// model in Python (the judge's eligibility for every pair) takes minutes.
const PEER_TASKS_MAX: usize = 1_500;

/// What the peer found on one instance.
struct Peer {
    objective: f64,
    status: String,
    bound: Option<f64>,
}

fn peer_python() -> PathBuf {
    std::env::var_os("SWITCHBOARD_PEER_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let venv =
                PathBuf::from(std::env::var_os("HOME")?).join(".cache/switchboard/venv/bin/python");
            venv.exists().then_some(venv)
        })
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Runs CP-SAT on `instance` for `budget`; `Err` says why it did not run.
fn peer(instance: &Path, budget: Duration) -> Result<Peer, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/bench/cpsat_peer.py");
    let output = Command::new(peer_python())
        .arg(script)
        .arg(instance)
        .args([
            "--time-limit",
            &budget.as_secs_f64().to_string(),
            "--workers",
            "2",
        ])
        .output()
        .map_err(|error| format!("not run: {error}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(if stderr.contains("No module named 'ortools'") {
            "not installed".to_owned()
        } else {
            format!("failed: {}", stderr.lines().last().unwrap_or(""))
        });
    }
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|error| format!("unreadable: {error}"))?;
    let status = result["status"].as_str().unwrap_or("?").to_owned();
    let feasible = result["feasible"].as_bool().unwrap_or(false);
    Ok(Peer {
        objective: if feasible {
            result["objective"].as_f64().unwrap_or(0.0)
        } else {
            0.0
        },
        status: if feasible {
            status
        } else {
            format!("{status}, no plan")
        },
        bound: result["bound"].as_f64(),
    })
}

/// Budgets the brief sets: 1 s up to 600 tasks, 5 s up to 1,500, 10 s beyond.
fn budget_for(tasks: usize) -> Duration {
    match tasks {
        0..=600 => Duration::from_secs(1),
        601..=1_500 => Duration::from_secs(5),
        _ => Duration::from_secs(10),
    }
}

fn generated(regime: &str, volunteers: usize, tasks: usize, seed: u64) -> Case {
    let dir = target_dir().join("bench-instances");
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("gen-{regime}-{volunteers}x{tasks}-s{seed}");
    let path = dir.join(format!("{name}.json"));
    if !path.exists() {
        let output = Command::new("python3")
            .arg(Path::new(SHARED_DIR).join("gen_instance.py"))
            .args([
                "--volunteers",
                &volunteers.to_string(),
                "--tasks",
                &tasks.to_string(),
            ])
            .args(["--seed", &seed.to_string(), "--regime", regime])
            .output()
            .expect("python3 runs gen_instance.py");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(&path, output.stdout).unwrap();
    }
    Case {
        name,
        path,
        budget: budget_for(tasks),
        reference: None,
    }
}

fn shared_cases() -> Vec<Case> {
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(SHARED_DIR).join("instances/reference.json")).unwrap(),
    )
    .unwrap();
    let mut cases = Vec::new();
    for (name, tasks) in [
        ("balanced-200x150", 150),
        ("time-scarce-300x600", 600),
        ("deep-deps-500x400", 400),
        ("money-scarce-400x400", 400),
        ("shifts-300x250", 250),
        ("balanced-2000x1500", 1_500),
    ] {
        let entry = &reference[name];
        let reference = entry["optimum"]
            .as_f64()
            .map(|optimum| (optimum, "optimum"))
            .or_else(|| {
                entry["lp_bound"]
                    .as_f64()
                    .map(|bound| (bound, "reference LP bound"))
            });
        cases.push(Case {
            name: name.to_owned(),
            path: Path::new(SHARED_DIR).join(format!("instances/{name}.json")),
            budget: budget_for(tasks),
            reference,
        });
    }
    cases
}

fn reset_peak_rss() {
    // "5" resets the peak resident set size (Linux 4.0+); harmless elsewhere.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The judge's verdict on a plan: `Some(objective)` when feasible.
fn judge(instance: &Path, plan: &proto::instance::Plan) -> Option<f64> {
    let plan_path = target_dir().join("bench-instances").join("last-plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(plan).unwrap()).unwrap();
    let output = Command::new("python3")
        .arg(Path::new(SHARED_DIR).join("check_plan.py"))
        .arg(instance)
        .arg(&plan_path)
        .arg("--json")
        .output()
        .ok()?;
    let verdict: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    verdict["feasible"].as_bool().filter(|&feasible| feasible)?;
    verdict["objective"].as_f64()
}

/// Milliseconds of each event kind on a live plan of `path`: median and
/// worst of `EVENTS_PER_KIND` events each.
fn live_timings(path: &Path) {
    const EVENTS_PER_KIND: usize = 50;
    let instance: Instance = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let world = instance.validate().unwrap();
    let problem = Problem::from_world(&world).unwrap();
    let report = solve(
        &problem,
        &SolveOptions {
            greedy_only: true,
            ..SolveOptions::default()
        },
    );
    let started = Instant::now();
    let mut live = LivePlan::new(&world, &report.solution).unwrap();
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let open_tasks = (0..problem.task_count())
        .filter(|&task| !report.solution.complete_tasks(&problem).contains(&task))
        .count();
    let mut rows = Vec::new();
    let mut time =
        |label: &str, live: &mut LivePlan, event: &mut dyn FnMut(&mut LivePlan, usize)| {
            let mut samples: Vec<f64> = (0..EVENTS_PER_KIND)
                .map(|index| {
                    let started = Instant::now();
                    event(live, index);
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            samples.sort_by(f64::total_cmp);
            rows.push(format!(
                "| {label} | {:.3} | {:.3} |",
                samples[samples.len() / 2],
                samples[samples.len() - 1]
            ));
        };
    let stride = world.volunteers.len() / EVENTS_PER_KIND;
    time(
        "volunteer signs up (copy of an existing one)",
        &mut live,
        &mut |live, index| {
            let mut volunteer = world.volunteers[index * stride].clone();
            volunteer.id = proto::Id::parse(&format!("{}-new", volunteer.id), "id").unwrap();
            live.add_volunteer(&volunteer).unwrap();
        },
    );
    let stride_tasks = world.tasks.len() / EVENTS_PER_KIND;
    time(
        "task posted (copy of an existing one)",
        &mut live,
        &mut |live, index| {
            let mut task = world.tasks[index * stride_tasks].clone();
            task.id = proto::Id::parse(&format!("{}-new", task.id), "id").unwrap();
            task.depends_on.clear();
            live.add_task(&task).unwrap();
        },
    );
    let busy: Vec<usize> = report
        .solution
        .assignments
        .iter()
        .step_by(7)
        .map(|&(volunteer, _)| volunteer)
        .collect();
    time(
        "busy volunteer leaves (release + restaff)",
        &mut live,
        &mut |live, index| {
            live.withdraw_volunteer(busy.get(index).copied().unwrap_or(index));
        },
    );
    let plan = live.solution().to_plan(live.problem());
    let verdict = if check(live.problem(), &plan).is_ok() {
        "feasible"
    } else {
        "INFEASIBLE"
    };
    println!();
    println!("Live plan on {} ({open_tasks} open tasks; built in {build_ms:.0} ms; plan after all events: {verdict}):", path.display());
    println!();
    println!("| event | median (ms) | worst (ms) |");
    println!("|---|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}

fn main() {
    let quick = std::env::args().any(|argument| argument == "quick");
    let budget_override: Option<Duration> = std::env::args()
        .find_map(|argument| argument.strip_prefix("budget=")?.parse().ok())
        .map(Duration::from_secs_f64);
    if std::env::args().any(|argument| argument == "live-shifts") {
        live_timings(&generated("shifts", 26_667, 20_000, 11).path);
        return;
    }
    let mut cases = shared_cases();
    let regimes = [
        "balanced",
        "time-scarce",
        "money-scarce",
        "deep-deps",
        "shifts",
    ];
    let mut sizes = vec![(267, 200), (2_000, 1_500)];
    if !quick {
        sizes.push((20_000, 15_000));
    }
    for (volunteers, tasks) in sizes {
        for regime in regimes {
            cases.push(generated(regime, volunteers, tasks, 11));
        }
    }

    // Shift instances of 300 to 600 tasks, the size the shift target names.
    for (volunteers, tasks) in [(400, 300), (800, 600)] {
        cases.push(generated("shifts", volunteers, tasks, 11));
    }

    let mut largest = Path::new(SHARED_DIR).join("instances/balanced-2000x1500.json");
    if !quick {
        largest = generated("balanced", 20_000, 15_000, 11).path;
    }

    println!("| instance | budget (s) | objective | share | greedy | own bound | gap to own bound | method | time (s) | index (s) | peak RSS (MiB) | judge | CP-SAT (2 workers) | ours / CP-SAT | CP-SAT status, bound |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---|");
    for mut case in cases {
        if let Some(budget) = budget_override {
            case.budget = budget;
        }
        let instance: Instance =
            serde_json::from_slice(&std::fs::read(&case.path).unwrap()).unwrap();
        reset_peak_rss();
        let indexing = Instant::now();
        let problem = Problem::from_world(&instance.validate().unwrap()).unwrap();
        let index_seconds = indexing.elapsed().as_secs_f64();
        drop(instance);
        let report = solve(
            &problem,
            &SolveOptions {
                time_limit: case.budget,
                ..SolveOptions::default()
            },
        );
        let peak = peak_rss_mib().map_or("?".to_owned(), |mib| format!("{mib:.0}"));
        let plan = report.solution.to_plan(&problem);
        let ours = check(&problem, &plan);
        let judged = judge(&case.path, &plan);
        let agree = match (&ours, judged) {
            (Ok(mine), Some(theirs)) if (mine - theirs).abs() < 1e-6 => {
                "feasible, agrees".to_owned()
            }
            (Ok(mine), theirs) => format!("DISAGREES: check {mine} vs judge {theirs:?}"),
            (Err(errors), _) => format!("INFEASIBLE: {}", errors.len()),
        };
        let share = match case.reference {
            Some((value, label)) => format!("{:.2}% of {label}", 100.0 * report.objective / value),
            None => report.upper_bound.map_or("-".to_owned(), |bound| {
                format!("{:.2}% of own bound", 100.0 * report.objective / bound)
            }),
        };
        let tasks = problem.task_count();
        let (peer_objective, ratio, peer_status) = if tasks > PEER_TASKS_MAX {
            (
                "-".to_owned(),
                "-".to_owned(),
                format!("not run above {PEER_TASKS_MAX} tasks"),
            )
        } else {
            match peer(&case.path, case.budget) {
                Ok(found) => (
                    format!("{:.2}", found.objective),
                    if found.objective > 0.0 {
                        format!("{:.4}", report.objective / found.objective)
                    } else {
                        "-".to_owned()
                    },
                    format!(
                        "{}, {}",
                        found.status,
                        found
                            .bound
                            .map_or("-".to_owned(), |bound| format!("{bound:.2}"))
                    ),
                ),
                Err(why) => ("-".to_owned(), "-".to_owned(), why),
            }
        };
        println!(
            "| {} | {} | {:.2} | {} | {:.2} ({:+.2}%) | {} | {} | {:?} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
            case.name,
            case.budget.as_secs_f64(),
            report.objective,
            share,
            report.greedy_objective,
            100.0 * (report.objective / report.greedy_objective.max(1e-9) - 1.0),
            report
                .upper_bound
                .map_or("-".to_owned(), |bound| format!("{bound:.2}")),
            report
                .gap()
                .map_or("-".to_owned(), |gap| format!("{:.2}%", 100.0 * gap)),
            report.method,
            report.elapsed.as_secs_f64(),
            index_seconds,
            peak,
            agree,
            peer_objective,
            ratio,
            peer_status,
        );
    }
    live_timings(&largest);
}
