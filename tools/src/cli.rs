//! The tools' command line: every command of the production binary, and
//! the load generator and the simulator; `up` here also runs the demo.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use switchboard::cli::{Command, Lifecycle, LogFormatArg};

/// The switchboard with its tools: a load generator, a simulator of a
/// movement's weeks, and the demo (`up --demo`). Every command of the
/// `switchboard` binary works here too.
#[derive(Parser, Debug)]
#[command(name = "switchboard-tools", version, propagate_version = true)]
pub struct ToolsCli {
    #[command(subcommand)]
    pub command: ToolsCommand,
    /// Log lines for people (readable) or for collectors (json).
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Readable)]
    pub log_format: LogFormatArg,
}

#[derive(Subcommand, Debug)]
// Parsed once at start; boxing the production commands would only obscure clap's derive.
#[allow(clippy::large_enum_variant)]
pub enum ToolsCommand {
    /// Drive the real services with a synthetic population on a fast clock and compare with self-selection.
    Simulate(SimulateArgs),
    /// Offer a realistic mix of inputs at a fixed rate (open loop) and measure latency and throughput.
    Loadgen(LoadgenArgs),
    #[command(flatten)]
    Switchboard(Command),
}

impl ToolsCommand {
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            ToolsCommand::Simulate(_) | ToolsCommand::Loadgen(_) => "warn",
            ToolsCommand::Switchboard(command) => command.default_log_filter(),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self {
            ToolsCommand::Simulate(args) => crate::simulate::run(args, shutdown).await,
            ToolsCommand::Loadgen(args) => crate::loadgen::run(args, shutdown).await,
            ToolsCommand::Switchboard(Command::Up(args)) => {
                let seed = args.demo_seed;
                let demo: switchboard::up::Companion = Box::new(move |context, token| {
                    Box::pin(crate::demo::run(context, seed, token))
                });
                switchboard::up::run(args, shutdown, Some(demo)).await
            }
            ToolsCommand::Switchboard(command) => command.run(shutdown).await,
        }
    }
}

#[derive(Args, Debug)]
pub struct LoadgenArgs {
    /// Requests offered per second, sent on schedule whether or not earlier ones were answered.
    #[arg(long, default_value_t = 1_000.0)]
    pub rate: f64,
    /// Length of the measured run, in seconds (0: only set up, and replay with --replay).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Open tasks posted before the run (in needs of 10 tasks).
    #[arg(long, default_value_t = 1_000)]
    pub open_tasks: usize,
    /// Volunteers offered before the run.
    #[arg(long, default_value_t = 0)]
    pub volunteers: usize,
    /// Regions of the synthetic population: a task is open to the volunteers of its region.
    #[arg(long, default_value_t = 100)]
    pub regions: usize,
    /// Drive the switchboard on this NATS server instead of starting a local one with the services in this process.
    #[arg(long = "nats", env = "SWITCHBOARD_NATS")]
    pub nats: Option<String>,
    /// Subject prefix.
    #[arg(long, env = "SWITCHBOARD_PREFIX", default_value = proto::subjects::PREFIX_DEFAULT)]
    pub prefix: String,
    /// MEASUREMENT ONLY: run the local nats-server without fsync before each ack (ADR 0001); acknowledged input can be lost.
    #[arg(long)]
    pub fast: bool,
    /// Keep the services' and nats-server's state here instead of a temporary directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// After the run, start the services again, first on the state they kept, then on empty state, and time how long each takes to be ready.
    #[arg(long)]
    pub replay: bool,
    /// Run ingest, solver and dispatch each as its own child process (`switchboard ingest` ...), so memory and restart times are per service.
    #[arg(long)]
    pub processes: bool,
    /// Longest wait for the solver's first matching of the starting world, in seconds; the run goes on after it either way.
    #[arg(long, default_value_t = crate::loadgen::SETTLE_MAX_S_DEFAULT)]
    pub settle_max_s: u64,
    /// Seed of the synthetic population and of the mix.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Time given to the last proposals after the last reply, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    pub settle_ms: u64,
    /// Budget of one tier-2 matching run, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_MATCH_BUDGET_MS", default_value_t = solver::MATCH_BUDGET_MS_DEFAULT)]
    pub match_budget_ms: u64,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Use this NATS server instead of starting a local one (the services still run in this process).
    #[arg(long = "nats", env = "SWITCHBOARD_NATS")]
    pub nats: Option<String>,
    /// Subject prefix.
    #[arg(long, env = "SWITCHBOARD_PREFIX", default_value = proto::subjects::PREFIX_DEFAULT)]
    pub prefix: String,
    /// Keep the services' and nats-server's state here instead of a temporary directory.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Start the simulated period at this RFC 3339 time instead of now.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
    /// Length of the simulated period, in days.
    #[arg(long, default_value_t = 21.0)]
    pub days: f64,
    /// Simulated seconds per real second (20000: three weeks in about 90 s).
    #[arg(long, default_value_t = 20_000.0)]
    pub speed: f64,
    /// People arriving over the period (the population's size).
    #[arg(long, visible_alias = "people", default_value_t = 150)]
    pub volunteers: usize,
    /// Needs posted over the period (one to three tasks each); by default two for every five people.
    #[arg(long)]
    pub needs: Option<usize>,
    /// Seeds of the population and of everyone's choices, one run each: `--seeds 7,11,13`.
    #[arg(
        long,
        visible_alias = "seed",
        value_delimiter = ',',
        default_value = "7"
    )]
    pub seeds: Vec<u64>,
    /// Share of people who vanish without a word at a random point of their tenure.
    #[arg(long, default_value_t = 1.0 / 3.0)]
    pub vanish_share: f64,
    /// Share of proposals a present person answers at all (the rest expire).
    #[arg(long, default_value_t = 0.93)]
    pub answer_share: f64,
    /// Share of answered proposals that are accepted.
    #[arg(long, default_value_t = 0.82)]
    pub accept_share: f64,
    /// Longest time a person takes to answer a proposal or a nudge, in simulated hours (at least 0.25).
    #[arg(long, default_value_t = 8.0)]
    pub answer_delay_hours_max: f64,
    /// Share of needs posted after the period starts (the rest are there at the start).
    #[arg(long, default_value_t = 0.5)]
    pub needs_later_share: f64,
    /// The naive re-planner re-plans this often, in simulated hours.
    #[arg(long, default_value_t = 6.0)]
    pub naive_replan_hours: f64,
    /// The naive re-planner takes a person for gone this long after their last sign of life, in simulated hours.
    #[arg(long, default_value_t = 48.0)]
    pub naive_notice_hours: f64,
    /// Time budget of the hindsight optimum (the full optimiser on the realised instance), in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub hindsight_budget_s: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (the table still goes to stdout).
    #[arg(long)]
    pub json_file: Option<PathBuf>,
    #[command(flatten)]
    pub lifecycle: Lifecycle,
    /// Budget of one matching run, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_MATCH_BUDGET_MS", default_value_t = solver::MATCH_BUDGET_MS_DEFAULT)]
    pub match_budget_ms: u64,
}
