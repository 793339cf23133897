//! The command line: every flag documented, every one also settable from
//! the environment (`SWITCHBOARD_*`), nothing read deeper in the code.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use plumbing::telemetry::LogFormat;

/// Matches short-tenure volunteers and pledged money to the highest-impact
/// open tasks of a movement's collectives, in real time, over NATS.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines for people (readable) or for collectors (json).
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Readable)]
    pub log_format: LogFormatArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    Readable,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> LogFormat {
        match format {
            LogFormatArg::Readable => LogFormat::Readable,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every service in one process (and a local nats-server unless --nats is given).
    Up(UpArgs),
    /// Print the live match stream.
    Watch(WatchArgs),
    /// Solve a switchboard-instance/1 file and print a switchboard-plan/1.
    Solve(SolveArgs),
    /// Run the ingest service alone.
    Ingest(ServiceArgs),
    /// Run the solver service alone.
    Solver(SolverArgs),
    /// Run the dispatch service alone.
    Dispatch(DispatchArgs),
    /// Run the HTTP gateway alone.
    Gateway(GatewayArgs),
    /// Drive the real services with a synthetic population on a fast clock and compare with self-selection.
    Simulate(SimulateArgs),
    /// Offer a realistic mix of inputs at a fixed rate (open loop) and measure latency and throughput.
    Loadgen(LoadgenArgs),
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
    /// After the run, start the services again on empty state and time their replay of the logs.
    #[arg(long)]
    pub replay: bool,
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
    /// Volunteers arriving over the period.
    #[arg(long, default_value_t = 150)]
    pub volunteers: usize,
    /// Needs posted over the period (one to three tasks each).
    #[arg(long, default_value_t = 60)]
    pub needs: usize,
    /// Seed of the population and of everyone's choices.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub lifecycle: Lifecycle,
    /// Budget of one matching run, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_MATCH_BUDGET_MS", default_value_t = solver::MATCH_BUDGET_MS_DEFAULT)]
    pub match_budget_ms: u64,
}

/// Where NATS is and which switchboard on it.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// NATS server URL.
    #[arg(
        long = "nats",
        env = "SWITCHBOARD_NATS",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// First token of every subject; several switchboards can share a NATS.
    #[arg(long, env = "SWITCHBOARD_PREFIX", default_value = proto::subjects::PREFIX_DEFAULT)]
    pub prefix: String,
}

/// The switchboard's time: real by default.
#[derive(Args, Debug, Clone)]
pub struct Time {
    /// Start the switchboard's clock at this RFC 3339 time instead of now.
    #[arg(long, env = "SWITCHBOARD_NOW")]
    pub now: Option<DateTime<Utc>>,
    /// Run the clock this many times faster than real time (3 weeks in 6 minutes: 5040).
    #[arg(long, env = "SWITCHBOARD_SPEED", default_value_t = 1.0)]
    pub speed: f64,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Use this NATS server instead of starting a local one.
    #[arg(long = "nats", env = "SWITCHBOARD_NATS")]
    pub nats: Option<String>,
    /// Subject prefix.
    #[arg(long, env = "SWITCHBOARD_PREFIX", default_value = proto::subjects::PREFIX_DEFAULT)]
    pub prefix: String,
    /// Where the HTTP gateway listens.
    #[arg(long, env = "SWITCHBOARD_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Serve /metrics (Prometheus), /health and /ready for every service here (e.g. 127.0.0.1:9464); off when not given.
    #[arg(long, env = "SWITCHBOARD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// State of the services and of the local nats-server.
    #[arg(long, env = "SWITCHBOARD_DATA", default_value = ".switchboard")]
    pub data: PathBuf,
    /// Post a realistic scenario and answer proposals as its volunteers would.
    #[arg(long)]
    pub demo: bool,
    /// Seed of the demo scenario.
    #[arg(long, default_value_t = 7)]
    pub demo_seed: u64,
    /// Do not print the match stream on the terminal.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub time: Time,
    #[command(flatten)]
    pub lifecycle: Lifecycle,
    /// Budget of one matching run, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_MATCH_BUDGET_MS", default_value_t = solver::MATCH_BUDGET_MS_DEFAULT)]
    pub match_budget_ms: u64,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub mail: MailArgs,
}

/// Email to volunteers whose contact is an email address.
#[derive(Args, Debug, Clone)]
pub struct MailArgs {
    /// SMTP relay for email to volunteers; without it they are reached on NATS only.
    #[arg(long, env = "SWITCHBOARD_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// Port of the SMTP relay (STARTTLS is used when the relay offers it).
    #[arg(long, env = "SWITCHBOARD_SMTP_PORT", default_value_t = dispatch::notify::SMTP_PORT_DEFAULT)]
    pub smtp_port: u16,
    /// Sender of the email, `name@example.org` or `Name <name@example.org>`.
    #[arg(
        long,
        env = "SWITCHBOARD_SMTP_FROM",
        default_value = "switchboard@localhost"
    )]
    pub smtp_from: String,
    /// The gateway as volunteers reach it, for the links in email (`up` defaults to http://HTTP).
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// How the gateway signs people in.
#[derive(Args, Debug, Clone)]
pub struct AccessArgs {
    /// Secret that signs sign-in links (16 bytes or more); without it `up` keeps a random one in DATA/gateway-secret.
    #[arg(long, env = "SWITCHBOARD_GATEWAY_SECRET", hide_env_values = true)]
    pub gateway_secret: Option<String>,
    /// Only people with a coordinator's link get in: no open volunteer registration.
    #[arg(long, env = "SWITCHBOARD_INVITE_ONLY")]
    pub invite_only: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Replay the whole stream first instead of starting with what comes next.
    #[arg(long)]
    pub from_start: bool,
    /// Only events about this collective's tasks.
    #[arg(long)]
    pub collective: Option<String>,
    /// Only events about tasks in this region (`remote` for remote tasks).
    #[arg(long)]
    pub region: Option<String>,
    /// Only events about tasks that ask for this skill.
    #[arg(long)]
    pub skill: Option<String>,
}

#[derive(Args, Debug)]
pub struct SolveArgs {
    /// The instance file (switchboard-instance/1).
    pub instance: PathBuf,
    /// Wall-clock budget in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub time_limit: f64,
    /// Print the objective, bound and time on stderr.
    #[arg(long)]
    pub report: bool,
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Directory of this service's state store; without it the state lives in memory and is rebuilt from the streams.
    #[arg(long, env = "SWITCHBOARD_STATE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub time: Time,
    /// Serve /metrics (Prometheus), /health and /ready here (e.g. 127.0.0.1:9464); off when not given.
    #[arg(long, env = "SWITCHBOARD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// A volunteer's three weeks: how long to answer, how long to check in.
#[derive(Args, Debug, Clone)]
pub struct Lifecycle {
    /// Longest time to answer a proposal, in hours (less when the deadline is near).
    #[arg(long, env = "SWITCHBOARD_RESPONSE_WINDOW_HOURS", default_value_t = solver::RESPONSE_WINDOW_HOURS_MAX)]
    pub response_window_hours: i64,
    /// Time to check in after accepting, in hours; a reminder goes out halfway, then the work is released.
    #[arg(long, env = "SWITCHBOARD_CHECKIN_WINDOW_HOURS", default_value_t = dispatch::CHECKIN_WINDOW_HOURS_DEFAULT)]
    pub checkin_window_hours: i64,
}

#[derive(Args, Debug)]
pub struct DispatchArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub lifecycle: Lifecycle,
    #[command(flatten)]
    pub mail: MailArgs,
}

#[derive(Args, Debug)]
pub struct SolverArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub lifecycle: Lifecycle,
    /// Budget of one matching run, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_MATCH_BUDGET_MS", default_value_t = solver::MATCH_BUDGET_MS_DEFAULT)]
    pub match_budget_ms: u64,
}

#[derive(Args, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Where to listen.
    #[arg(long, env = "SWITCHBOARD_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Serve /metrics (Prometheus), /health and /ready here (e.g. 127.0.0.1:9464); off when not given.
    #[arg(long, env = "SWITCHBOARD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Where the gateway keeps its secret when --gateway-secret is not given.
    #[arg(
        long,
        env = "SWITCHBOARD_GATEWAY_SECRET_FILE",
        default_value = ".switchboard/gateway-secret"
    )]
    pub gateway_secret_file: PathBuf,
}

impl Command {
    /// Quiet by default where the terminal shows the match stream.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Up(args) if !args.quiet => "warn",
            Command::Watch(_) | Command::Solve(_) | Command::Simulate(_) | Command::Loadgen(_) => {
                "warn"
            }
            _ => "info",
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self {
            Command::Up(args) => crate::up::run(args, shutdown).await,
            Command::Watch(args) => crate::watch::run(args, shutdown).await,
            Command::Solve(args) => crate::solve::run(args),
            Command::Ingest(args) => crate::services::ingest(args, shutdown).await,
            Command::Solver(args) => crate::services::solver(args, shutdown).await,
            Command::Dispatch(args) => crate::services::dispatch(args, shutdown).await,
            Command::Gateway(args) => crate::services::gateway(args, shutdown).await,
            Command::Simulate(args) => crate::simulate::run(args, shutdown).await,
            Command::Loadgen(args) => crate::loadgen::run(args, shutdown).await,
        }
    }
}

impl Time {
    pub fn clock(&self) -> plumbing::Clock {
        match self.now {
            Some(start) => plumbing::Clock::starting_at(start, self.speed),
            None if self.speed == 1.0 => plumbing::Clock::system(),
            None => plumbing::Clock::starting_at(Utc::now(), self.speed),
        }
    }
}
