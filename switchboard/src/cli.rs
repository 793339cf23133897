//! The command line: every flag documented, every one also settable from
//! the environment (`SWITCHBOARD_*`), nothing read deeper in the code.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
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
    Ingest(IngestArgs),
    /// Run the solver service alone.
    Solver(SolverArgs),
    /// Run the dispatch service alone.
    Dispatch(DispatchArgs),
    /// Run the money ledger service alone.
    Ledger(LedgerArgs),
    /// Run the HTTP gateway alone.
    Gateway(GatewayArgs),
    /// Print a sign-in link that only the holder of the gateway's secret may mint (vetters, coordinators).
    Link(LinkArgs),
    /// Run the NATS auth callout alone: people log in to NATS with their session token (docs/adr/0008-auth-callout.md).
    Callout(CalloutArgs),
    /// Write the static NATS users of deploy/nats/secure.conf (users.conf, credentials.json; what deploy/nats/make-users runs).
    NatsUsers(NatsUsersArgs),
}

#[derive(Args, Debug)]
pub struct CalloutArgs {
    /// Where NATS is; log in as the callout's own user (`--nats-user sb-callout`, listed in the server's `auth_users`).
    #[command(flatten)]
    pub connection: Connection,
    /// File holding the seed (`SA…`) of the account key the server's `auth_callout` names as `issuer` (`nats-users --callout` writes callout.seed).
    #[arg(long, env = "SWITCHBOARD_CALLOUT_ISSUER_SEED_FILE")]
    pub issuer_seed_file: PathBuf,
    /// The account people are placed in (secure.conf's and `up`'s: SWITCHBOARD).
    #[arg(long, env = "SWITCHBOARD_CALLOUT_ACCOUNT", default_value = crate::local_access::ACCOUNT)]
    pub account: String,
    /// The gateway's secret (tokens are checked with it); without it, the one kept in --gateway-secret-file.
    #[arg(long, env = "SWITCHBOARD_GATEWAY_SECRET", hide_env_values = true)]
    pub gateway_secret: Option<String>,
    /// Longest log-in, in seconds: the connection is then closed and the client's reconnection checked again (so a revoked session lasts at most this long on an open connection).
    #[arg(long, env = "SWITCHBOARD_CALLOUT_CONNECTION_AGE_S", default_value_t = gateway::callout::CONNECTION_AGE_S_DEFAULT)]
    pub connection_age_s: u64,
    /// Where the gateway keeps its secret; it must exist (the callout never makes one).
    #[arg(
        long,
        env = "SWITCHBOARD_GATEWAY_SECRET_FILE",
        default_value = ".switchboard/gateway-secret"
    )]
    pub gateway_secret_file: PathBuf,
    /// Serve /metrics (Prometheus), /health and /ready here; off when not given.
    #[arg(long, env = "SWITCHBOARD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// The users to issue; ids match `[A-Za-z0-9_-]{1,64}`.
#[derive(Args, Debug)]
pub struct NatsUsersArgs {
    /// Folder for users.conf and credentials.json (both written 0600; passwords already issued there are kept).
    #[arg(long)]
    pub out: PathBuf,
    /// Subject prefix.
    #[arg(long, default_value = proto::subjects::PREFIX_DEFAULT)]
    pub prefix: String,
    /// A volunteer's id (repeatable).
    #[arg(long, value_name = "ID")]
    pub volunteer: Vec<String>,
    /// A collective's id (repeatable).
    #[arg(long, value_name = "ID")]
    pub collective: Vec<String>,
    /// A donor's id (repeatable); their pledges come with --pledge.
    #[arg(long, value_name = "ID")]
    pub donor: Vec<String>,
    /// A coordinator's id (repeatable).
    #[arg(long, value_name = "ID")]
    pub coordinator: Vec<String>,
    /// A vetter's id (repeatable).
    #[arg(long, value_name = "ID")]
    pub vetter: Vec<String>,
    /// A pledge id the donor may pledge and withdraw under over NATS (repeatable).
    #[arg(long, value_name = "DONOR:PLEDGE")]
    pub pledge: Vec<String>,
    /// Also issue the auth callout's user (sb-callout), its account key (callout.seed, 0600, kept if present) and callout.conf, the `authorization` block that sends everyone but the fixed users to the callout.
    #[arg(long)]
    pub callout: bool,
}

#[derive(Args, Debug)]
pub struct LinkArgs {
    /// Whose link.
    #[arg(value_enum)]
    pub role: LinkRole,
    /// The vetter's id (coordinators share one link and need none).
    #[arg(required_if_eq("role", "vetter"))]
    pub id: Option<String>,
    /// The gateway as people reach it.
    #[arg(
        long,
        env = "SWITCHBOARD_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    /// The gateway's secret; without it, the one kept in --gateway-secret-file.
    #[arg(long, env = "SWITCHBOARD_GATEWAY_SECRET", hide_env_values = true)]
    pub gateway_secret: Option<String>,
    /// Where the gateway keeps its secret (`up` keeps it in DATA/gateway-secret).
    #[arg(
        long,
        env = "SWITCHBOARD_GATEWAY_SECRET_FILE",
        default_value = ".switchboard/gateway-secret"
    )]
    pub gateway_secret_file: PathBuf,
}

/// The roles whose links are minted outside the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LinkRole {
    /// Sets volunteers' trust tiers; coordinators cannot mint this link.
    Vetter,
    Coordinator,
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
    #[command(flatten)]
    pub auth: NatsAuth,
    /// Servers holding each stream: 1 on one server, 3 (or 5) in a cluster; every process of a deployment must be given the same.
    #[arg(long, env = "SWITCHBOARD_REPLICAS", default_value_t = 1, value_parser = parse_replicas)]
    pub replicas: usize,
}

/// Who this process is to a NATS server that asks (deploy/nats/secure.conf).
#[derive(Args, Debug, Clone, Default)]
pub struct NatsAuth {
    /// NATS user to connect as (deploy/nats/make-users issues one per service and per person).
    #[arg(long, env = "SWITCHBOARD_NATS_USER", requires = "nats_password_file")]
    pub nats_user: Option<String>,
    /// File holding that user's password (kept out of the process list and the environment).
    #[arg(long, env = "SWITCHBOARD_NATS_PASSWORD_FILE", requires = "nats_user")]
    pub nats_password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the server's certificate; the connection then requires TLS.
    #[arg(long, env = "SWITCHBOARD_NATS_CA")]
    pub nats_ca: Option<PathBuf>,
    /// Client certificate (PEM), for a server that verifies clients (mutual TLS).
    #[arg(long, env = "SWITCHBOARD_NATS_CERT", requires = "nats_key")]
    pub nats_cert: Option<PathBuf>,
    /// Key (PEM) of the client certificate.
    #[arg(long, env = "SWITCHBOARD_NATS_KEY", requires = "nats_cert")]
    pub nats_key: Option<PathBuf>,
    /// Inbox prefix the user may subscribe to (make-users gives people `_INBOX.<role>.<id>`).
    #[arg(long, env = "SWITCHBOARD_NATS_INBOX_PREFIX")]
    pub nats_inbox_prefix: Option<String>,
}

impl NatsAuth {
    /// The credentials to present, with the password read from its file.
    pub fn credentials(&self) -> anyhow::Result<plumbing::nats::Credentials> {
        let password = match &self.nats_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--nats-password-file: reading {}", path.display()))?;
                let password = text.trim_end_matches(['\r', '\n']).to_owned();
                anyhow::ensure!(
                    !password.is_empty(),
                    "--nats-password-file: {} is empty",
                    path.display()
                );
                Some(password)
            }
            None => None,
        };
        Ok(plumbing::nats::Credentials {
            user: self.nats_user.clone(),
            password,
            ca_file: self.nats_ca.clone(),
            client_certificate: self.nats_cert.clone().zip(self.nats_key.clone()),
            inbox_prefix: self.nats_inbox_prefix.clone(),
        })
    }
}

/// `--replicas`: 1, 3 or 5.
pub fn parse_replicas(text: &str) -> Result<usize, String> {
    let replicas: usize = text
        .parse()
        .map_err(|_| format!("replicas: {text:?} is not a number"))?;
    plumbing::streams::Replication::new(replicas)
        .map(plumbing::streams::Replication::replicas)
        .map_err(|error| format!("{}: {}", error.field, error.reason))
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
    /// Servers holding each stream (1, 3 or 5): more than 1 only with --nats pointing at a cluster.
    #[arg(long, env = "SWITCHBOARD_REPLICAS", default_value_t = 1, value_parser = parse_replicas)]
    pub replicas: usize,
    /// Where the HTTP gateway listens.
    #[arg(long, env = "SWITCHBOARD_HTTP", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Serve /metrics (Prometheus), /health and /ready for every service here (e.g. 127.0.0.1:9464); off when not given.
    #[arg(long, env = "SWITCHBOARD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// State of the services and of the local nats-server.
    #[arg(long, env = "SWITCHBOARD_DATA", default_value = ".switchboard")]
    pub data: PathBuf,
    /// Post a realistic scenario and answer proposals as its volunteers would (switchboard-tools only: deploy/bin/switchboard runs it).
    #[arg(long)]
    pub demo: bool,
    /// Seed of the demo scenario.
    #[arg(long, default_value_t = 7)]
    pub demo_seed: u64,
    /// Do not print the match stream on the terminal.
    #[arg(long)]
    pub quiet: bool,
    /// Run the local nats-server with no users at all, as before accounts: then ANY process on this machine can read every volunteer's contact in SB_EVENTS, write straight into the logs and the money stream (a forged pledge included), answer, offer or withdraw as anyone, and delete or reconfigure the streams. Without it (the default), the services log in as their own users, the CLI as the local administrator (DATA/nats/admin.password), and people with their session token through the auth callout.
    #[arg(long, env = "SWITCHBOARD_INSECURE_LOCAL")]
    pub insecure_local: bool,
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
    /// Where trust tiers come from: only vetters (the default), or also what volunteers declare (only where everyone who can publish is trusted).
    #[arg(long, env = "SWITCHBOARD_TRUST", value_enum, default_value_t = TrustArg::Vetted)]
    pub trust: TrustArg,
    #[command(flatten)]
    pub priorities: PriorityArgs,
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
pub struct IngestArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Where trust tiers come from: only vetters (the default; a declared tier is answered with a note that it is ignored), or also what volunteers declare.
    #[arg(long, env = "SWITCHBOARD_TRUST", value_enum, default_value_t = TrustArg::Vetted)]
    pub trust: TrustArg,
}

impl TrustArg {
    /// Whether a volunteer's declared tier counts.
    pub fn declared(self) -> bool {
        matches!(self, TrustArg::Declared)
    }
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
    /// Where trust tiers come from: only vetters (the default), or also what volunteers declare (only where everyone who can publish is trusted).
    #[arg(long, env = "SWITCHBOARD_TRUST", value_enum, default_value_t = TrustArg::Vetted)]
    pub trust: TrustArg,
    #[command(flatten)]
    pub priorities: PriorityArgs,
    #[command(flatten)]
    pub scale_out: ScaleOut,
}

/// What the live plan values beyond the canonical objective (`solver::Priorities`).
#[derive(Args, Debug, Clone)]
pub struct PriorityArgs {
    /// Urgency: a task's impact grows to (1 + this) times over the last 72 h before its deadline (0: off).
    #[arg(long, env = "SWITCHBOARD_URGENCY", default_value_t = solver::world::URGENCY_DEFAULT)]
    pub urgency: f64,
    /// Equity: the n-th committed volunteer of one collective makes its next task count (1 + n)^-this (0: off).
    #[arg(long, env = "SWITCHBOARD_EQUITY", default_value_t = solver::world::EQUITY_DEFAULT)]
    pub equity: f64,
}

impl PriorityArgs {
    pub fn priorities(&self) -> anyhow::Result<solver::Priorities> {
        anyhow::ensure!(
            (0.0..=PRIORITY_MAX).contains(&self.urgency),
            "--urgency must be between 0 and {PRIORITY_MAX}"
        );
        anyhow::ensure!(
            (0.0..=PRIORITY_MAX).contains(&self.equity),
            "--equity must be between 0 and {PRIORITY_MAX}"
        );
        Ok(solver::Priorities {
            urgency: self.urgency,
            equity: self.equity,
        })
    }
}

/// Largest urgency or equity: enough to reorder work, not to erase impact.
const PRIORITY_MAX: f64 = 4.0;

/// Where a volunteer's trust tier comes from (`solver::TrustSource`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TrustArg {
    /// The tier the volunteer's offer declares, unless a vetter set one.
    Declared,
    /// Only tiers set by vetters (`sb.in.vet`); everyone else is open work only.
    Vetted,
}

impl From<TrustArg> for solver::TrustSource {
    fn from(trust: TrustArg) -> solver::TrustSource {
        match trust {
            TrustArg::Declared => solver::TrustSource::Declared,
            TrustArg::Vetted => solver::TrustSource::Vetted,
        }
    }
}

#[derive(Args, Debug)]
pub struct LedgerArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Hours after a task's deadline that its held money waits for the task to be marked done.
    #[arg(long, env = "SWITCHBOARD_RELEASE_GRACE_HOURS", default_value_t = ledger::RELEASE_GRACE_HOURS_DEFAULT)]
    pub release_grace_hours: i64,
}

/// Several solver instances: shards of the world, and leases so exactly
/// one instance plans each shard (docs/adr/0004-solver-leases.md).
#[derive(Args, Debug, Clone)]
pub struct ScaleOut {
    /// The shard this instance plans: `all`, or one of --shards.
    #[arg(long, env = "SWITCHBOARD_SHARD", default_value = solver::shard::SHARD_ALL)]
    pub shard: String,
    /// Every shard of the deployment, comma-separated, the same on every instance: `all`, or region names and `remote`.
    #[arg(long, env = "SWITCHBOARD_SHARDS", value_delimiter = ',', default_value = solver::shard::SHARD_ALL)]
    pub shards: Vec<String>,
    /// Compete for the shard's lease: publish only while holding it (needed when more than one instance may run per shard).
    #[arg(long, env = "SWITCHBOARD_LEASE")]
    pub lease: bool,
    /// Lease time to live, in milliseconds: a dead holder's shard is taken over after about this long; the same on every instance.
    #[arg(long, env = "SWITCHBOARD_LEASE_TTL_MS", default_value_t = solver::lease::LEASE_TTL_MS_DEFAULT)]
    pub lease_ttl_ms: u64,
    /// This instance's name in its lease (default: the host name and process id).
    #[arg(long, env = "SWITCHBOARD_INSTANCE")]
    pub instance: Option<String>,
}

impl ScaleOut {
    /// The checked shard and lease configuration.
    pub fn configs(
        &self,
    ) -> anyhow::Result<(solver::shard::Sharding, Option<solver::lease::LeaseConfig>)> {
        let sharding = solver::shard::Sharding::new(&self.shard, &self.shards)
            .map_err(|error| anyhow::anyhow!("--{}: {}", error.field, error.reason))?;
        if !self.lease {
            return Ok((sharding, None));
        }
        let instance = self.instance.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "solver".to_owned());
            format!("{host}-{}", std::process::id())
        });
        let lease =
            solver::lease::LeaseConfig::new(&instance, self.lease_ttl_ms).map_err(|error| {
                anyhow::anyhow!("--{}: {}", error.field.replace('_', "-"), error.reason)
            })?;
        Ok((sharding, Some(lease)))
    }
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
            Command::Watch(_) | Command::Solve(_) | Command::Link(_) | Command::NatsUsers(_) => {
                "warn"
            }
            _ => "info",
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self {
            Command::Up(args) => crate::up::run(args, shutdown, None).await,
            Command::Watch(args) => crate::watch::run(args, shutdown).await,
            Command::Solve(args) => crate::solve::run(args),
            Command::Ingest(args) => crate::services::ingest(args, shutdown).await,
            Command::Solver(args) => crate::services::solver(args, shutdown).await,
            Command::Dispatch(args) => crate::services::dispatch(args, shutdown).await,
            Command::Ledger(args) => crate::services::ledger(args, shutdown).await,
            Command::Gateway(args) => crate::services::gateway(args, shutdown).await,
            Command::Link(args) => crate::services::link(args),
            Command::NatsUsers(args) => crate::nats_users::run(args),
            Command::Callout(args) => crate::services::callout(args, shutdown).await,
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("switchboard").chain(arguments.iter().copied()))
    }

    #[test]
    fn a_service_reads_its_nats_password_from_the_file_it_is_given() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("password");
        std::fs::write(&file, "s3cret-password\n").unwrap();
        let cli = parse(&[
            "ingest",
            "--nats",
            "tls://127.0.0.1:4222",
            "--nats-user",
            "sb-ingest",
            "--nats-password-file",
            file.to_str().unwrap(),
            "--nats-ca",
            "/etc/switchboard/ca.pem",
        ])
        .unwrap();
        let Command::Ingest(args) = cli.command else {
            panic!("not the ingest command")
        };
        assert!(
            !args.trust.declared(),
            "trust comes from vetters by default"
        );
        let credentials = args.service.connection.auth.credentials().unwrap();
        assert_eq!(credentials.user.as_deref(), Some("sb-ingest"));
        assert_eq!(credentials.password.as_deref(), Some("s3cret-password"));
        assert_eq!(
            credentials.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/switchboard/ca.pem"))
        );
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }

    #[test]
    fn up_is_secure_unless_told_otherwise_and_the_flag_says_what_it_gives_away() {
        let Command::Up(args) = parse(&["up"]).unwrap().command else {
            panic!("not the up command")
        };
        assert!(!args.insecure_local);
        let Command::Up(args) = parse(&["up", "--insecure-local"]).unwrap().command else {
            panic!("not the up command")
        };
        assert!(args.insecure_local);
        let help = parse(&["up", "--help"]).unwrap_err().to_string();
        for given_away in ["ANY process", "SB_EVENTS", "as anyone", "streams"] {
            assert!(help.contains(given_away), "{given_away:?} not in:\n{help}");
        }
    }

    #[test]
    fn a_nats_user_without_a_password_file_is_refused_at_the_command_line() {
        let error = parse(&["solver", "--nats-user", "sb-solver"]).unwrap_err();
        assert!(
            error.to_string().contains("--nats-password-file"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_password_file_is_an_error_naming_the_flag() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("password");
        std::fs::write(&file, "\n").unwrap();
        let auth = NatsAuth {
            nats_user: Some("sb-ingest".into()),
            nats_password_file: Some(file),
            ..NatsAuth::default()
        };
        let error = auth.credentials().unwrap_err();
        assert!(
            error.to_string().contains("--nats-password-file"),
            "{error}"
        );
    }
}
