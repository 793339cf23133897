//! `switchboard solve INSTANCE.json`: the canonical problem, offline.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use proto::instance::Instance;

use crate::cli::SolveArgs;

/// The longest budget `solve` accepts from the command line, in seconds.
const TIME_LIMIT_S_MAX: f64 = 3600.0;

pub fn run(args: SolveArgs) -> anyhow::Result<()> {
    if !(args.time_limit.is_finite()
        && args.time_limit > 0.0
        && args.time_limit <= TIME_LIMIT_S_MAX)
    {
        anyhow::bail!("--time-limit must be more than 0 and at most {TIME_LIMIT_S_MAX} seconds");
    }
    let bytes = std::fs::read(&args.instance)
        .with_context(|| format!("reading {}", args.instance.display()))?;
    let instance: Instance = proto::validate::decode_unbounded(&bytes)
        .map_err(|error| anyhow::anyhow!("{}: {}", args.instance.display(), error.message))?;
    let world = instance
        .validate()
        .map_err(|error| anyhow::anyhow!("{}: {error}", args.instance.display()))?;
    let problem = solver_core::Problem::from_world(&world)
        .with_context(|| format!("{}", args.instance.display()))?;
    let options = solver_core::SolveOptions {
        time_limit: Duration::from_secs_f64(args.time_limit),
        ..Default::default()
    };
    let report = solver_core::solve(&problem, &options);
    let plan = report.solution.to_plan(&problem);
    if args.report {
        let bound = report
            .upper_bound
            .map(|bound| format!("{bound:.2}"))
            .unwrap_or_else(|| "unknown".to_owned());
        eprintln!(
            "objective {:.2}, bound {bound}, greedy {:.2}, {:?}, {} ms",
            report.objective,
            report.greedy_objective,
            report.method,
            report.elapsed.as_millis()
        );
    }
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &plan).context("writing the plan")?;
    writeln!(stdout).context("writing the plan")?;
    Ok(())
}
