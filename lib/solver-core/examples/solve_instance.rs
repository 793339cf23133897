//! Solves one `switchboard-instance/1` file and writes the plan as JSON.
//!
//!     cargo run --release -p solver-core --example solve_instance -- INSTANCE.json PLAN.json [SECONDS]
//!
//! Prints one line of JSON with the objective, bound, greedy objective and
//! time, for scripts; the plan goes to PLAN.json for `check_plan.py`.

use std::time::Duration;

use solver_core::{solve, Problem, SolveOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().collect();
    let (Some(instance_path), Some(plan_path)) = (arguments.get(1), arguments.get(2)) else {
        return Err("usage: solve_instance INSTANCE.json PLAN.json [SECONDS]".into());
    };
    let seconds: f64 = arguments
        .get(3)
        .map(|text| text.parse())
        .transpose()?
        .unwrap_or(1.0);
    let instance: proto::instance::Instance =
        serde_json::from_slice(&std::fs::read(instance_path)?)?;
    let world = instance.validate()?;
    let indexing = std::time::Instant::now();
    let problem = Problem::from_world(&world)?;
    let index_seconds = indexing.elapsed().as_secs_f64();
    let options = SolveOptions {
        time_limit: Duration::from_secs_f64(seconds),
        ..SolveOptions::default()
    };
    let report = solve(&problem, &options);
    let plan = report.solution.to_plan(&problem);
    std::fs::write(plan_path, serde_json::to_vec(&plan)?)?;
    println!(
        "{{\"objective\":{:.2},\"upper_bound\":{},\"greedy\":{:.2},\"seconds\":{:.3},\"method\":\"{:?}\",\"dropped_pins\":{},\"neighbourhoods\":\"{:?}\",\"index_seconds\":{:.3},\"greedy_seconds\":{:.3}}}",
        report.objective,
        report.upper_bound.map_or("null".to_owned(), |bound| format!("{bound:.2}")),
        report.greedy_objective,
        report.elapsed.as_secs_f64(),
        report.method,
        report.dropped_pins.len(),
        report.neighbourhoods,
        index_seconds,
        report.greedy_elapsed.as_secs_f64()
    );
    Ok(())
}
