//! `switchboard loadgen`: an open-loop load generator with a realistic mix
//! of inputs, measuring what a volunteer and a collective feel.
//!
//! Open loop: request `i` is due at `start + i / rate` and is sent then,
//! whether or not earlier ones were answered, and its latency is measured
//! from when it was due, not from when it went out. A slow switchboard so
//! shows as long latencies instead of as a politely slower client
//! ("coordinated omission").
//!
//! The mix: new volunteers, needs of one to three tasks, pledges, answers
//! to the proposals volunteers received (accept or decline) and
//! withdrawals of earlier volunteers and needs. Two latencies go into HDR
//! histograms: request -> reply (`ok` means the event is in the log), and
//! request -> proposal on the volunteer's subject (`sb.to.volunteer.<id>`),
//! for the proposals a request of this run made possible: the later of the
//! volunteer's offer and the task's need. That includes the time a team
//! waits for its last member; so a third histogram, event -> proposal,
//! times each proposal from the request whose trace it carries (every
//! request sends its own `traceparent`, and the solver's proposals carry
//! the trace of the latest change their matching run took in): the
//! switchboard's own reaction time.
//!
//! Without `--nats` it starts a local nats-server (fsync before every ack,
//! as `up`; `--fast` drops that, for measurement only: ADR 0001) and runs
//! ingest, solver and dispatch in this process, so the memory figure is
//! theirs; with `--processes` each runs as its own child process
//! (`crate::children`), so each has its own memory figure. `--replay`
//! then restarts them, on their kept state and on empty state, and times
//! how long each takes to be ready. Figures and commands are in
//! BENCHMARKS.md.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use proto::subjects::Input;
use proto::wire::{
    NeedPost, PledgeOffer, ReplyAction, TaskSpec, VolunteerOffer, VolunteerReply, WithdrawKind,
    Withdrawal,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use switchboard::cli::Connection;
use switchboard::fleet::{Fleet, Running};
use switchboard::local_nats::{Durability, LocalNats};

use crate::children::{ChildConfig, Children};
use crate::cli::LoadgenArgs;

/// Requests awaiting their reply at once; beyond it a due request is
/// counted as not sent rather than let memory grow without bound.
pub const IN_FLIGHT_MAX: usize = 200_000;
/// Requests in flight while posting the starting world (closed loop).
pub const SETUP_IN_FLIGHT_MAX: usize = 256;
/// Tasks per need when posting the starting world.
pub const SETUP_TASKS_PER_NEED: usize = 10;
/// Largest latency the histograms hold, in microseconds (a minute).
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Skills in the synthetic population.
pub const SKILLS: [&str; 8] = [
    "outreach",
    "driving",
    "cooking",
    "legal",
    "design",
    "translation",
    "teaching",
    "data",
];
/// The solver is taken to have matched the starting world once no proposal
/// arrived for this long...
pub const SETTLE_QUIET_MS: u64 = 2_000;
/// ...or after this long at most (`--settle-max-s`).
pub const SETTLE_MAX_S_DEFAULT: u64 = 600;
/// How often the set-up looks whether the services applied the log and the solver settled.
pub const SETTLE_POLL_MS: u64 = 250;
/// How often the replay measurement looks whether the services caught up.
pub const REPLAY_POLL_MS: u64 = 5;

/// What one request of the mix is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Volunteer,
    Need,
    Pledge,
    Reply,
    Withdraw,
}

const KINDS: [Kind; 5] = [
    Kind::Volunteer,
    Kind::Need,
    Kind::Pledge,
    Kind::Reply,
    Kind::Withdraw,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Volunteer => "volunteer",
            Kind::Need => "need",
            Kind::Pledge => "pledge",
            Kind::Reply => "reply",
            Kind::Withdraw => "withdraw",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn input(self) -> Input {
        match self {
            Kind::Volunteer => Input::Volunteer,
            Kind::Need => Input::Need,
            Kind::Pledge => Input::Pledge,
            Kind::Reply => Input::Reply,
            Kind::Withdraw => Input::Withdraw,
        }
    }
}

/// Shares of the mix, in percent; what cannot be sent (no proposal to
/// answer, nothing to withdraw) becomes a new volunteer.
const MIX_PERCENT: [(Kind, u32); 5] = [
    (Kind::Volunteer, 35),
    (Kind::Need, 30),
    (Kind::Pledge, 10),
    (Kind::Reply, 15),
    (Kind::Withdraw, 10),
];
const _: () = assert!(
    MIX_PERCENT[0].1 + MIX_PERCENT[1].1 + MIX_PERCENT[2].1 + MIX_PERCENT[3].1 + MIX_PERCENT[4].1
        == 100
);

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).context("creating a latency histogram")
}

/// What the run measured.
struct Measured {
    acknowledged: Vec<Histogram<u64>>,
    acknowledged_all: Histogram<u64>,
    proposal: Histogram<u64>,
    /// From the request whose trace a proposal carries.
    caused: Histogram<u64>,
    /// The generator's own lateness: from when a request was due to when
    /// it went out (timer granularity, a busy runtime). Every latency here
    /// counts from when it was due, so this is part of each.
    late: Histogram<u64>,
    sent: [u64; 5],
    ok: [u64; 5],
    refused: [u64; 5],
    failed: [u64; 5],
    not_sent: u64,
    last_reply: Option<Instant>,
    proposals_received: u64,
    proposals_traced: u64,
}

impl Measured {
    fn new() -> anyhow::Result<Measured> {
        Ok(Measured {
            acknowledged: KINDS
                .iter()
                .map(|_| histogram())
                .collect::<anyhow::Result<_>>()?,
            acknowledged_all: histogram()?,
            proposal: histogram()?,
            caused: histogram()?,
            late: histogram()?,
            sent: [0; 5],
            ok: [0; 5],
            refused: [0; 5],
            failed: [0; 5],
            not_sent: 0,
            last_reply: None,
            proposals_received: 0,
            proposals_traced: 0,
        })
    }
}

/// What the proposal listener needs to attribute a proposal to requests.
#[derive(Default)]
struct Pending {
    /// Volunteers offered during the run: when the offer was due.
    volunteers: HashMap<String, Instant>,
    /// Tasks posted during the run: when their need was due.
    tasks: HashMap<String, Instant>,
    /// Proposals received and not yet answered: (volunteer, task, round).
    to_answer: VecDeque<(String, String, u32)>,
    /// Requests of the run by trace id: when each was due.
    traces: HashMap<String, Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn micros(elapsed: Duration) -> u64 {
    (elapsed.as_micros() as u64).clamp(1, LATENCY_US_MAX)
}

/// The synthetic world: deterministic from the seed.
struct World {
    rng: StdRng,
    regions: usize,
    now: DateTime<Utc>,
    next_volunteer: u64,
    next_need: u64,
    next_pledge: u64,
    /// Volunteers and needs of this run that may be withdrawn.
    withdrawable: Vec<(WithdrawKind, String)>,
}

impl World {
    fn new(seed: u64, regions: usize) -> World {
        World {
            rng: StdRng::seed_from_u64(seed),
            regions: regions.max(1),
            now: Utc::now(),
            next_volunteer: 0,
            next_need: 0,
            next_pledge: 0,
            withdrawable: Vec::new(),
        }
    }

    fn region(&mut self) -> String {
        format!("region-{}", self.rng.random_range(0..self.regions))
    }

    fn volunteer(&mut self) -> VolunteerOffer {
        self.next_volunteer += 1;
        let mut skills = proto::wire::SkillLevels::new();
        for _ in 0..self.rng.random_range(1..=2) {
            let skill = SKILLS[self.rng.random_range(0..SKILLS.len())];
            skills.insert(skill.to_owned(), self.rng.random_range(1..=3));
        }
        VolunteerOffer {
            id: format!("lg-v{}", self.next_volunteer),
            skills,
            hours_per_week: f64::from(self.rng.random_range(4..=12)),
            available_from: self.now - chrono::Duration::hours(1),
            available_until: self.now + chrono::Duration::days(21),
            region: Some(self.region()),
            trust: self.rng.random_range(0..=2),
            name: None,
            contact: None,
            sealed: None,
            languages: Vec::new(),
            weekly: Vec::new(),
            tz: None,
            home: None,
            max_km: None,
        }
    }

    fn need(&mut self, tasks: usize) -> NeedPost {
        self.next_need += 1;
        let need = format!("lg-n{}", self.next_need);
        let collective = format!("lg-c{}", self.rng.random_range(0..500));
        let region = self.region();
        let tasks = (0..tasks)
            .map(|index| {
                let skill = SKILLS[self.rng.random_range(0..SKILLS.len())];
                TaskSpec {
                    id: format!("{need}-t{index}"),
                    need: None,
                    collective: None,
                    title: format!("{skill} for {need}"),
                    skills: [(skill.to_owned(), self.rng.random_range(1..=2))]
                        .into_iter()
                        .collect(),
                    hours: f64::from(self.rng.random_range(2..=4)),
                    slots: 1,
                    earliest_start: self.now,
                    deadline: self.now + chrono::Duration::days(self.rng.random_range(7..=20)),
                    region: Some(region.clone()),
                    sensitivity: 0,
                    depends_on: Vec::new(),
                    money_cents: 0,
                    currency: None,
                    impact: f64::from(self.rng.random_range(1..=100)),
                    tags: Vec::new(),
                    shift: None,
                    place: None,
                    instructions: None,
                    languages: Vec::new(),
                }
            })
            .collect();
        NeedPost {
            id: need,
            title: "load generator need".to_owned(),
            collective,
            tasks,
        }
    }

    fn pledge(&mut self) -> PledgeOffer {
        self.next_pledge += 1;
        PledgeOffer {
            id: format!("lg-p{}", self.next_pledge),
            amount_cents: self.rng.random_range(500..=50_000),
            collectives: None,
            tags: None,
            expires_at: None,
            donor: None,
            sealed: None,
            currency: None,
        }
    }

    fn kind(&mut self) -> Kind {
        let mut draw = self.rng.random_range(0..100);
        for (kind, share) in MIX_PERCENT {
            if draw < share {
                return kind;
            }
            draw -= share;
        }
        Kind::Volunteer
    }
}

/// One request of the run, ready to send.
struct Request {
    kind: Kind,
    subject: String,
    body: Bytes,
}

pub async fn run(args: LoadgenArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if !(args.rate > 0.0 || args.duration == 0.0) || args.duration < 0.0 {
        anyhow::bail!("--rate must be more than 0 (or --duration 0 to only set up)");
    }
    if args.fast && args.nats.is_some() {
        anyhow::bail!("--fast configures the local nats-server; a server given with --nats keeps its own settings");
    }
    let temporary = match &args.data {
        Some(_) => None,
        None => Some(std::env::temp_dir().join(format!(
            "switchboard-loadgen-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ))),
    };
    let data = args
        .data
        .clone()
        .or_else(|| temporary.clone())
        .context("no data directory")?;
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let durability = if args.fast {
        Durability::Fast
    } else {
        Durability::SyncAlways
    };
    let local = match &args.nats {
        Some(_) => None,
        None => Some(LocalNats::start_with(&data.join("nats"), durability).await?),
    };
    let url = match (&args.nats, &local) {
        (Some(url), _) => url.clone(),
        (None, Some(local)) => local.url.clone(),
        (None, None) => unreachable!("a local server is started when no URL is given"),
    };
    let nats_pid = local.as_ref().and_then(LocalNats::pid);
    let outcome = drive(&args, &url, &data, nats_pid, shutdown).await;
    if let Some(local) = local {
        local.stop().await;
    }
    if let Some(temporary) = temporary {
        let _ = std::fs::remove_dir_all(&temporary);
    }
    outcome
}

/// The services of one switchboard, in this process: ingest, solver and
/// dispatch (the generator sends nothing the ledger or gateway answer).
async fn start_services(
    connection: &Connection,
    state: &Path,
    match_budget_ms: u64,
    parent: &CancellationToken,
) -> anyhow::Result<Running> {
    Fleet::new(
        switchboard::services::connection(connection)?,
        plumbing::Clock::system(),
    )
    .ingest(ingest::IngestConfig {
        state_directory: Some(state.join("ingest")),
        declared_trust: false,
    })
    .solver(solver::SolverConfig {
        state_directory: Some(state.join("solver")),
        match_budget: Duration::from_millis(match_budget_ms),
        ..solver::SolverConfig::default()
    })
    .dispatch(dispatch::DispatchConfig {
        state_directory: Some(state.join("dispatch")),
        ..dispatch::DispatchConfig::default()
    })
    .start(parent)
    .await
}

/// The services loadgen drives: in this process (one memory figure for
/// all of them and the generator) or each its own child process
/// (`--processes`: one figure per service).
enum Services {
    /// Boxed: the running services are large, the children's handles small.
    InProcess(Box<Running>),
    Processes(Children),
}

/// What starting the services again needs.
struct Start<'a> {
    connection: &'a Connection,
    state: &'a Path,
    logs: &'a Path,
    processes: bool,
    match_budget_ms: u64,
    /// Longest wait for the solver to settle (`--settle-max-s`).
    settle_max: Duration,
}

impl Services {
    async fn start(start: &Start<'_>, shutdown: &CancellationToken) -> anyhow::Result<Services> {
        if start.processes {
            Ok(Services::Processes(Children::start(&ChildConfig {
                url: start.connection.url.clone(),
                prefix: start.connection.prefix.clone(),
                state: start.state.to_owned(),
                logs: start.logs.to_owned(),
                match_budget_ms: start.match_budget_ms,
            })?))
        } else {
            Ok(Services::InProcess(Box::new(
                start_services(
                    start.connection,
                    start.state,
                    start.match_budget_ms,
                    shutdown,
                )
                .await?,
            )))
        }
    }

    /// Waits until every service has caught up with the logs; for each, the
    /// time since it was started.
    async fn wait_ready(&mut self) -> anyhow::Result<Vec<(&'static str, Duration)>> {
        match self {
            Services::InProcess(services) => services.wait_caught_up().await,
            Services::Processes(children) => children.wait_ready().await,
        }
    }

    /// One line per process: its resident memory now and at its peak.
    fn memory_report(&self, nats_pid: Option<u32>) -> String {
        let mut lines: Vec<(String, Option<(u64, u64)>)> = Vec::new();
        match self {
            Services::InProcess(_) => lines.push((
                "switchboard (ingest, solver, dispatch, generator)".to_owned(),
                memory_kib("self"),
            )),
            Services::Processes(children) => {
                for (name, memory) in children.memory_kib() {
                    lines.push((name.to_owned(), memory));
                }
                lines.push(("generator".to_owned(), memory_kib("self")));
            }
        }
        if let Some(pid) = nats_pid {
            lines.push(("nats-server".to_owned(), memory_kib(&pid.to_string())));
        }
        render_memory(&lines)
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Services::InProcess(services) => services.stop().await,
            Services::Processes(children) => children.stop().await,
        }
    }
}

fn render_memory(lines: &[(String, Option<(u64, u64)>)]) -> String {
    let mut out = format!("{:<52} {:>9} {:>9}\n", "resident (MiB)", "now", "peak");
    for (name, memory) in lines {
        match memory {
            Some((current, peak)) => out.push_str(&format!(
                "  {name:<50} {:>9} {:>9}\n",
                current / 1024,
                peak / 1024
            )),
            None => out.push_str(&format!("  {name:<50} {:>9} {:>9}\n", "-", "-")),
        }
    }
    out
}

async fn drive(
    args: &LoadgenArgs,
    url: &str,
    data: &Path,
    nats_pid: Option<u32>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let connection = Connection {
        url: url.to_owned(),
        prefix: args.prefix.clone(),
        auth: Default::default(),
        replicas: 1,
    };
    let state = data.join("state");
    let logs = data.join("logs");
    let start = Start {
        connection: &connection,
        state: &state,
        logs: &logs,
        processes: args.processes,
        match_budget_ms: args.match_budget_ms,
        settle_max: Duration::from_secs(args.settle_max_s),
    };
    let mut services = match &args.nats {
        Some(_) => None,
        None => {
            let mut services = Services::start(&start, &shutdown).await?;
            services.wait_ready().await?;
            Some(services)
        }
    };
    let client =
        switchboard::services::context(&connection, "sb-loadgen", plumbing::Clock::system())
            .await?;
    let mut world = World::new(args.seed, args.regions);
    let pending = Arc::new(Mutex::new(Pending::default()));
    let measured = Arc::new(Mutex::new(Measured::new()?));
    let last_proposal = Arc::new(Mutex::new(Instant::now()));
    let listening = shutdown.child_token();
    let listener = tokio::spawn(listen_for_proposals(
        client.clone(),
        pending.clone(),
        measured.clone(),
        last_proposal.clone(),
        listening.clone(),
    ));

    println!(
        "loadgen: NATS {url} ({}), services {}, setting up {} volunteers and {} open tasks in {} regions",
        match (&args.nats, args.fast) {
            (Some(_), _) => "its own durability settings",
            (None, false) => "local, fsync before every ack",
            (None, true) => "local, FAST: no fsync before ack, not durable",
        },
        match (&args.nats, args.processes) {
            (Some(_), _) => "already running",
            (None, false) => "in this process",
            (None, true) => "each in its own process",
        },
        args.volunteers,
        args.open_tasks,
        args.regions
    );
    let setup_began = Instant::now();
    set_up(
        &client,
        &mut world,
        args.volunteers,
        args.open_tasks,
        &shutdown,
    )
    .await?;
    let setup_posted = setup_began.elapsed();
    println!(
        "posted the starting world in {:.1} s",
        setup_posted.as_secs_f64()
    );
    let settle_max = start.settle_max;
    if let Some(Services::Processes(children)) = &services {
        // Memory is read once every service holds the whole world, not
        // while some are still reading it.
        let waited = Instant::now();
        let applied = wait_applied(children, &client, settle_max, &shutdown).await;
        println!(
            "{} {:.1} s after posting",
            if applied {
                "every service had applied the whole log"
            } else {
                "NOT every service had applied the whole log (--settle-max-s)"
            },
            waited.elapsed().as_secs_f64()
        );
    }
    if let Some(services) = &services {
        print!("{}", services.memory_report(nats_pid));
    }
    let settled = match &services {
        Some(Services::Processes(children)) => {
            settle_processes(children, &client, &last_proposal, settle_max, &shutdown).await
        }
        _ => settle(&client, &last_proposal, settle_max, &shutdown).await?,
    };
    println!(
        "set up in {:.1} s ({:.1} s posting, the rest the solver's first matching{})",
        setup_began.elapsed().as_secs_f64(),
        setup_posted.as_secs_f64(),
        if settled {
            ""
        } else {
            ", cut short by --settle-max-s"
        }
    );
    if let Some(services) = &services {
        print!("{}", services.memory_report(nats_pid));
    }
    *lock(&measured) = Measured::new()?;

    let (offered, run_time) = if args.duration > 0.0 {
        open_loop(args, &client, &mut world, &pending, &measured, &shutdown).await?
    } else {
        (0, Duration::ZERO)
    };
    listening.cancel();
    let _ = listener.await;
    if args.duration > 0.0 {
        print!("{}", render(args, offered, run_time, &lock(&measured)));
        if let Some(services) = &services {
            print!("{}", services.memory_report(nats_pid));
        }
    }

    if let Some(running) = services.take() {
        // A service that had to be killed is a finding, not a reason to skip the replay.
        if let Err(error) = running.stop().await {
            println!("note: {error:#}");
        }
        if args.replay {
            replay(&start, &client, &shutdown).await?;
        }
    }
    Ok(())
}

/// Posts the starting world, closed loop with a bounded number in flight.
async fn set_up(
    client: &plumbing::Context,
    world: &mut World,
    volunteers: usize,
    open_tasks: usize,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut requests: Vec<(Input, Bytes)> = Vec::new();
    let mut tasks_left = open_tasks;
    while tasks_left > 0 {
        let count = tasks_left.min(SETUP_TASKS_PER_NEED);
        tasks_left -= count;
        requests.push((
            Input::Need,
            Bytes::from(serde_json::to_vec(&world.need(count))?),
        ));
    }
    for _ in 0..volunteers {
        requests.push((
            Input::Volunteer,
            Bytes::from(serde_json::to_vec(&world.volunteer())?),
        ));
    }
    let mut in_flight: JoinSet<anyhow::Result<bool>> = JoinSet::new();
    let mut refused = 0_u64;
    for (input, body) in requests {
        if shutdown.is_cancelled() {
            anyhow::bail!("stopped while setting up");
        }
        while in_flight.len() >= SETUP_IN_FLIGHT_MAX {
            if let Some(joined) = in_flight.join_next().await {
                refused += u64::from(!joined??);
            }
        }
        let client = client.clone();
        in_flight.spawn(async move {
            let message = client
                .client
                .request(client.subjects.input(input), body)
                .await
                .context("a set-up request got no reply")?;
            let reply: proto::wire::Reply = serde_json::from_slice(&message.payload)?;
            anyhow::Ok(reply.ok)
        });
    }
    while let Some(joined) = in_flight.join_next().await {
        refused += u64::from(!joined??);
    }
    if refused > 0 {
        anyhow::bail!("{refused} set-up requests were refused");
    }
    Ok(())
}

/// Waits until the solver has matched the starting world: the plan
/// endpoint answers and no proposal arrived for [`SETTLE_QUIET_MS`].
/// Whether it did within `wait_max` (at 100,000 tasks the first matching
/// may take longer than anyone wants to wait for a memory figure).
async fn settle(
    client: &plumbing::Context,
    last_proposal: &Mutex<Instant>,
    wait_max: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + wait_max;
    let quiet = Duration::from_millis(SETTLE_QUIET_MS);
    loop {
        let answered = client
            .client
            .request(client.subjects.plan_get(), Bytes::from_static(b"{}"))
            .await
            .is_ok();
        if answered && lock(last_proposal).elapsed() >= quiet {
            return Ok(true);
        }
        if Instant::now() > deadline || shutdown.is_cancelled() {
            println!(
                "the solver had not settled after {} s; going on",
                wait_max.as_secs()
            );
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits, at most `wait_max`, until every service has applied `SB_EVENTS`
/// to its end; whether they did.
async fn wait_applied(
    children: &Children,
    client: &plumbing::Context,
    wait_max: Duration,
    shutdown: &CancellationToken,
) -> bool {
    let deadline = Instant::now() + wait_max;
    let events_stream = client.subjects.events_stream();
    loop {
        let last = plumbing::streams::last_sequence(&client.jetstream, &events_stream).await;
        if let Ok(last) = last {
            if children.applied_events(&events_stream, last).await {
                return true;
            }
        }
        if Instant::now() > deadline || shutdown.is_cancelled() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(SETTLE_POLL_MS)).await;
    }
}

/// [`settle`] for services in their own processes, where the solver's
/// metrics tell more than silence: it has matched the starting world once
/// it has applied the whole log, a tier-1 run has ended since, and neither
/// a run nor a proposal came for [`SETTLE_QUIET_MS`] or twice the last
/// run's length, whichever is longer (a run at 100,000 tasks takes
/// seconds). Whether that happened within `wait_max`.
async fn settle_processes(
    children: &Children,
    client: &plumbing::Context,
    last_proposal: &Mutex<Instant>,
    wait_max: Duration,
    shutdown: &CancellationToken,
) -> bool {
    const RUNS: &str = "switchboard_solver_match_duration_seconds_count{tier=\"1\"}";
    const RUNS_SECONDS: &str = "switchboard_solver_match_duration_seconds_sum{tier=\"1\"}";
    let events_stream = client.subjects.events_stream();
    let position = format!("switchboard_solver_position{{stream=\"{events_stream}\"}}");
    let deadline = Instant::now() + wait_max;
    // Tier-1 runs (count, seconds) when the solver was first seen caught up.
    let mut applied_at: Option<(f64, f64)> = None;
    let mut last_seen = (0.0, 0.0);
    let mut last_run_s = 0.0;
    let mut changed_at = Instant::now();
    loop {
        let runs = children.metric("solver", RUNS).await.unwrap_or(0.0);
        let runs_seconds = children.metric("solver", RUNS_SECONDS).await.unwrap_or(0.0);
        if runs != last_seen.0 {
            if runs > last_seen.0 {
                last_run_s = (runs_seconds - last_seen.1) / (runs - last_seen.0);
            }
            last_seen = (runs, runs_seconds);
            changed_at = Instant::now();
        }
        if applied_at.is_none() {
            let last = plumbing::streams::last_sequence(&client.jetstream, &events_stream).await;
            let read = children.metric("solver", &position).await;
            if let (Ok(last), Some(read)) = (last, read) {
                if read >= last as f64 {
                    applied_at = Some(last_seen);
                }
            }
        }
        let quiet =
            Duration::from_millis(SETTLE_QUIET_MS).max(Duration::from_secs_f64(2.0 * last_run_s));
        let ran_since_applied = applied_at.is_some_and(|(count, _)| last_seen.0 > count);
        if ran_since_applied
            && changed_at.elapsed() >= quiet
            && lock(last_proposal).elapsed() >= quiet
        {
            return true;
        }
        if Instant::now() > deadline || shutdown.is_cancelled() {
            println!(
                "the solver had not settled after {} s; going on",
                wait_max.as_secs()
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(SETTLE_POLL_MS)).await;
    }
}

/// Builds the next request of the mix; what it makes possible goes into `pending`.
fn next_request(
    client: &plumbing::Context,
    world: &mut World,
    pending: &Mutex<Pending>,
    due: Instant,
) -> anyhow::Result<Request> {
    let mut kind = world.kind();
    let mut answer = None;
    if kind == Kind::Reply {
        answer = lock(pending).to_answer.pop_front();
        if answer.is_none() {
            kind = Kind::Volunteer;
        }
    }
    if kind == Kind::Withdraw && world.withdrawable.is_empty() {
        kind = Kind::Volunteer;
    }
    let body = match kind {
        Kind::Volunteer => {
            let offer = world.volunteer();
            lock(pending).volunteers.insert(offer.id.clone(), due);
            world
                .withdrawable
                .push((WithdrawKind::Volunteer, offer.id.clone()));
            serde_json::to_vec(&offer)?
        }
        Kind::Need => {
            let tasks = world.rng.random_range(1..=3);
            let need = world.need(tasks);
            {
                let mut pending = lock(pending);
                for task in &need.tasks {
                    pending.tasks.insert(task.id.clone(), due);
                }
            }
            world
                .withdrawable
                .push((WithdrawKind::Need, need.id.clone()));
            serde_json::to_vec(&need)?
        }
        Kind::Pledge => serde_json::to_vec(&world.pledge())?,
        Kind::Reply => {
            let (volunteer, task, round) =
                answer.context("a reply is only drawn with a proposal to answer")?;
            let action = if world.rng.random_range(0..100) < 80 {
                ReplyAction::Accept
            } else {
                ReplyAction::Decline
            };
            serde_json::to_vec(&VolunteerReply {
                volunteer,
                task,
                action,
                round: Some(round),
                hours_done: None,
            })?
        }
        Kind::Withdraw => {
            let index = world.rng.random_range(0..world.withdrawable.len());
            let (kind, id) = world.withdrawable.swap_remove(index);
            serde_json::to_vec(&Withdrawal { kind, id })?
        }
    };
    Ok(Request {
        kind,
        subject: client.subjects.input(kind.input()),
        body: Bytes::from(body),
    })
}

/// Sends the mix on schedule for the run's duration; the requests offered
/// and the time from the first due request to the last reply.
async fn open_loop(
    args: &LoadgenArgs,
    client: &plumbing::Context,
    world: &mut World,
    pending: &Arc<Mutex<Pending>>,
    measured: &Arc<Mutex<Measured>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(u64, Duration)> {
    let total = (args.rate * args.duration).round() as u64;
    let interval_s = 1.0 / args.rate;
    let began = Instant::now();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut index = 0_u64;
    println!(
        "offering {total} requests at {} per second for {} s",
        args.rate, args.duration
    );
    // The schedule is kept by a thread of its own: the runtime's timer
    // wakes on whole milliseconds, which would add up to one to every
    // figure; a thread's sleep is precise to tens of microseconds.
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let schedule = std::thread::spawn({
        let began = began.into_std();
        move || {
            for index in 0..total {
                let due = began + Duration::from_secs_f64(index as f64 * interval_s);
                std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                if due_tx.send(Instant::from_std(due)).is_err() {
                    return;
                }
            }
        }
    });
    loop {
        let due = tokio::select! {
            () = shutdown.cancelled() => break,
            due = due_rx.recv() => match due {
                Some(due) => due,
                None => break,
            },
        };
        index += 1;
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= IN_FLIGHT_MAX {
            lock(measured).not_sent += 1;
            continue;
        }
        let request = next_request(client, world, pending, due)?;
        {
            let mut measured = lock(measured);
            measured.sent[request.kind.index()] += 1;
            let _ = measured.late.record(micros(Instant::now() - due));
        }
        let client = client.client.clone();
        let measured = measured.clone();
        let trace = plumbing::trace::TraceParent::root();
        lock(pending).traces.insert(trace.trace_id_hex(), due);
        let mut headers = async_nats::HeaderMap::new();
        trace.insert_into(&mut headers);
        in_flight.spawn(async move {
            let answer = client
                .request_with_headers(request.subject, headers, request.body)
                .await;
            let replied = Instant::now();
            let mut measured = lock(&measured);
            let kind = request.kind.index();
            match answer {
                Ok(message) => {
                    let ok = serde_json::from_slice::<proto::wire::Reply>(&message.payload)
                        .map(|reply| reply.ok)
                        .unwrap_or(false);
                    if ok {
                        measured.ok[kind] += 1;
                    } else {
                        measured.refused[kind] += 1;
                    }
                    let latency = micros(replied - due);
                    let _ = measured.acknowledged[kind].record(latency);
                    let _ = measured.acknowledged_all.record(latency);
                    measured.last_reply = Some(replied);
                }
                Err(_) => measured.failed[kind] += 1,
            }
        });
    }
    drop(due_rx);
    if schedule.join().is_err() {
        anyhow::bail!("the schedule's thread panicked");
    }
    // The stragglers: every request gets its reply or its timeout.
    while in_flight.join_next().await.is_some() {}
    // Proposals of the last requests may still be on their way.
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let last = lock(measured).last_reply.unwrap_or(began);
    Ok((index, last.saturating_duration_since(began)))
}

/// Receives what volunteers are sent and times the proposals.
async fn listen_for_proposals(
    client: plumbing::Context,
    pending: Arc<Mutex<Pending>>,
    measured: Arc<Mutex<Measured>>,
    last_proposal: Arc<Mutex<Instant>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Delivered {
        kind: String,
        #[serde(default)]
        volunteer: String,
        #[serde(default)]
        task: String,
        #[serde(default)]
        accept: Option<VolunteerReply>,
    }
    let mut messages = client
        .client
        .subscribe(client.subjects.to_volunteer_all())
        .await
        .context("subscribing to the volunteers' subjects")?;
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            message = messages.next() => match message {
                Some(message) => message,
                None => return Ok(()),
            },
        };
        let arrived = Instant::now();
        let Ok(delivered) = serde_json::from_slice::<Delivered>(&message.payload) else {
            continue;
        };
        if delivered.kind != "proposal" {
            continue;
        }
        *lock(&last_proposal) = arrived;
        let round = delivered
            .accept
            .and_then(|accept| accept.round)
            .unwrap_or(0);
        let caused_at = plumbing::trace::TraceParent::from_headers(message.headers.as_ref())
            .and_then(|trace| lock(&pending).traces.get(&trace.trace_id_hex()).copied());
        let enabled_at = {
            let mut pending = lock(&pending);
            let volunteer = pending.volunteers.remove(&delivered.volunteer);
            let task = pending.tasks.remove(&delivered.task);
            pending
                .to_answer
                .push_back((delivered.volunteer, delivered.task, round));
            volunteer.into_iter().chain(task).max()
        };
        let mut measured = lock(&measured);
        measured.proposals_received += 1;
        if let Some(caused_at) = caused_at {
            let _ = measured.caused.record(micros(arrived - caused_at));
        }
        if let Some(enabled_at) = enabled_at {
            measured.proposals_traced += 1;
            let _ = measured.proposal.record(micros(arrived - enabled_at));
        }
    }
}

/// Called with the services stopped: starts them again twice and times
/// how long each takes to be ready, first on the state they kept (a
/// normal restart), then on empty state (every view rebuilt from the logs).
async fn replay(
    start: &Start<'_>,
    client: &plumbing::Context,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let events =
        plumbing::streams::last_sequence(&client.jetstream, &client.subjects.events_stream())
            .await?;
    let matches =
        plumbing::streams::last_sequence(&client.jetstream, &client.subjects.matches_stream())
            .await?;
    println!(
        "\nreplay: {events} events in {}, {matches} in {}",
        client.subjects.events_stream(),
        client.subjects.matches_stream()
    );
    for kept in [true, false] {
        if !kept && start.state.exists() {
            std::fs::remove_dir_all(start.state)
                .with_context(|| format!("removing {}", start.state.display()))?;
        }
        let mut services = Services::start(start, shutdown).await?;
        let ready = services.wait_ready().await?;
        let mut memory = services.memory_report(None);
        // After a normal restart the solver holds the whole world at once:
        // its first matching of it is the memory figure that matters.
        if let (true, Services::Processes(children)) = (kept, &services) {
            let settled = settle_processes(
                children,
                client,
                &Mutex::new(Instant::now()),
                start.settle_max,
                shutdown,
            )
            .await;
            memory.push_str(&format!(
                "after the solver's first matching of the whole world{}:\n",
                if settled {
                    ""
                } else {
                    " (not finished: --settle-max-s)"
                }
            ));
            memory.push_str(&services.memory_report(None));
        }
        if let Err(error) = services.stop().await {
            println!("note: {error:#}");
        }
        println!(
            "restart {}:",
            if kept {
                "on the state each service kept"
            } else {
                "on empty state (rebuilt from the streams)"
            }
        );
        for (name, took) in ready {
            println!("  {name:<9} ready in {:>7.3} s", took.as_secs_f64());
        }
        print!("{memory}");
    }
    Ok(())
}

/// (VmRSS, VmHWM) of a process in KiB, from /proc.
pub fn memory_kib(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn percentiles_ms(histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        return format!(
            "{:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            0, "-", "-", "-", "-", "-"
        );
    }
    let at = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    format!(
        "{:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        histogram.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        histogram.max() as f64 / 1000.0
    )
}

fn render(args: &LoadgenArgs, offered: u64, run_time: Duration, measured: &Measured) -> String {
    let mut out = String::new();
    let replied: u64 = measured.ok.iter().sum::<u64>() + measured.refused.iter().sum::<u64>();
    let achieved = if run_time.is_zero() {
        0.0
    } else {
        replied as f64 / run_time.as_secs_f64()
    };
    out.push_str(&format!(
        "\noffered {:.0}/s for {} s: {offered} requests; {replied} answered in {:.2} s = {achieved:.0}/s achieved; {} refused, {} failed (no reply), {} not sent (over {IN_FLIGHT_MAX} in flight)\n\n",
        args.rate,
        args.duration,
        run_time.as_secs_f64(),
        measured.refused.iter().sum::<u64>(),
        measured.failed.iter().sum::<u64>(),
        measured.not_sent,
    ));
    out.push_str(&format!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    ));
    out.push_str(&format!(
        "{:<28} {}\n",
        "request -> reply, all",
        percentiles_ms(&measured.acknowledged_all)
    ));
    for kind in KINDS {
        let index = kind.index();
        out.push_str(&format!(
            "{:<28} {}   (sent {}, ok {}, refused {})\n",
            format!("  {}", kind.name()),
            percentiles_ms(&measured.acknowledged[index]),
            measured.sent[index],
            measured.ok[index],
            measured.refused[index]
        ));
    }
    out.push_str(&format!(
        "{:<28} {}\n",
        "request -> proposal",
        percentiles_ms(&measured.proposal)
    ));
    out.push_str(&format!(
        "{:<28} {}\n",
        "event -> proposal",
        percentiles_ms(&measured.caused)
    ));
    out.push_str(&format!(
        "{:<28} {}   (the generator's lateness, in each figure above)\n",
        "due -> sent",
        percentiles_ms(&measured.late)
    ));
    out.push_str(&format!(
        "\nproposals received: {} ({} made possible by a request of this run)\n",
        measured.proposals_received, measured.proposals_traced
    ));
    out
}
