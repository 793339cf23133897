//! `switchboard simulate`: weeks of a synthetic movement driven through the
//! real services over NATS on a fast clock, then the same people and needs
//! replayed offline under self-selection (everyone picks their own tasks, as
//! on Mobilize), so the two policies can be compared on one population.
//!
//! The population is drawn once from a seed: volunteers arriving over the
//! period with tenures around three weeks, collectives posting needs with
//! teams, dependencies and money, donors pledging. Every choice a person
//! makes about one task (answer or not, accept, vanish after accepting, drop
//! half-way, how many hours later) comes from a hash of the seed, the person
//! and the task, so both policies face the same people behaving the same way.
//!
//! The live run talks to the services only over the public subjects
//! (`sb.in.*` in, `sb.to.volunteer.*` and `sb.match.>` out) like any client,
//! and every delay is measured on the switchboard's clock: a volunteer who
//! "answers after three hours" answers after three simulated hours.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use proto::subjects::{Input, MatchKind};
use proto::wire::{
    MatchChanged, NeedPost, PledgeOffer, Reply, ReplyAction, TaskCompletion, TaskSpec,
    VolunteerMessage, VolunteerOffer, VolunteerReply,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use switchboard::cli::Connection;
use switchboard::fleet::Fleet;
use switchboard::local_nats::LocalNats;

use crate::cli::SimulateArgs;
// Volunteers' skill profiles, with how often each appears: the demo's.
use crate::demo::PROFILES;

/// Share of proposals a volunteer answers at all (the rest expire).
const ANSWER_SHARE: f64 = 0.93;
/// Share of answered proposals that are accepted.
const ACCEPT_SHARE: f64 = 0.82;
/// Share of accepted work whose volunteer goes silent: no check-in, ever.
const GHOST_SHARE: f64 = 0.15;
/// Share of checked-in work dropped half-way with a `drop`.
const DROP_SHARE: f64 = 0.04;
/// How long a volunteer takes to answer a proposal, in simulated hours.
const ANSWER_DELAY_HOURS: (f64, f64) = (0.25, 8.0);
/// How long after accepting a reliable volunteer checks in, in simulated hours.
const CHECKIN_DELAY_HOURS: (f64, f64) = (1.0, 12.0);
/// Slack a volunteer takes beyond the task's own hours before reporting done, in simulated hours.
const WORK_SLACK_HOURS: (f64, f64) = (1.0, 24.0);
/// Median tenure of a volunteer in days, and the spread of its logarithm.
const TENURE_MEDIAN_DAYS: f64 = 21.0;
const TENURE_LOG_SPREAD: f64 = 0.45;
const TENURE_DAYS_RANGE: (f64, f64) = (3.0, 60.0);
/// Share of volunteers, needs and pledges already there when the period starts.
const PRESENT_AT_START_SHARE: f64 = 0.2;
/// How often collectives look at the plan to see their money-only tasks funded, in simulated hours.
const PLAN_POLL_HOURS: f64 = 6.0;
/// Self-selection: how many open tasks a person looks at when browsing, how
/// many they sign up for at once, and days between browsing visits.
const BROWSE_HANDFUL: usize = 5;
const BROWSE_SIGNUPS_MAX: usize = 2;
const BROWSE_INTERVAL_DAYS: f64 = 7.0;
/// Attempts at one request while the services are still starting.
const REQUEST_ATTEMPTS_MAX: u32 = 50;
const REQUEST_RETRY_MS: u64 = 200;
/// Collectives in the synthetic city.
const COLLECTIVES_COUNT: usize = 12;
/// Pledges per need posted.
const PLEDGES_PER_NEED: f64 = 0.35;

const TAGS: &[&str] = &[
    "housing",
    "food",
    "legal-defense",
    "labor",
    "education",
    "climate",
];

/// The synthetic city, drawn once from the seed.
#[derive(Clone, Debug)]
struct Population {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    volunteers: Vec<VolunteerOffer>,
    /// Needs and pledges with the time each is posted, in that order.
    needs: Vec<(DateTime<Utc>, NeedPost)>,
    pledges: Vec<(DateTime<Utc>, PledgeOffer)>,
}

/// What one person does about one task, the same under both policies.
#[derive(Clone, Copy, Debug)]
struct Behaviour {
    answers: bool,
    accepts: bool,
    ghosts: bool,
    drops: bool,
    answer_delay_hours: f64,
    checkin_delay_hours: f64,
    work_slack_hours: f64,
}

fn behaviour(seed: u64, volunteer: &str, task: &str) -> Behaviour {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in volunteer.bytes().chain([b'/']).chain(task.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = StdRng::seed_from_u64(hash);
    Behaviour {
        answers: rng.random_bool(ANSWER_SHARE),
        accepts: rng.random_bool(ACCEPT_SHARE),
        ghosts: rng.random_bool(GHOST_SHARE),
        drops: rng.random_bool(DROP_SHARE),
        answer_delay_hours: rng.random_range(ANSWER_DELAY_HOURS.0..ANSWER_DELAY_HOURS.1),
        checkin_delay_hours: rng.random_range(CHECKIN_DELAY_HOURS.0..CHECKIN_DELAY_HOURS.1),
        work_slack_hours: rng.random_range(WORK_SLACK_HOURS.0..WORK_SLACK_HOURS.1),
    }
}

fn after_hours(at: DateTime<Utc>, hours: f64) -> DateTime<Utc> {
    at + chrono::Duration::seconds((hours * 3600.0) as i64)
}

/// When something arrives: at the start for a share, else uniformly over the period.
fn arrival(rng: &mut StdRng, start: DateTime<Utc>, days: f64) -> DateTime<Utc> {
    if rng.random_bool(PRESENT_AT_START_SHARE) {
        start
    } else {
        after_hours(start, rng.random_range(0.0..days.max(0.01)) * 24.0)
    }
}

/// A log-normal tenure around three weeks (Box-Muller for the normal draw).
fn tenure_days(rng: &mut StdRng) -> f64 {
    let uniform_a: f64 = rng.random_range(f64::EPSILON..1.0);
    let uniform_b: f64 = rng.random_range(0.0..1.0);
    let normal = (-2.0 * uniform_a.ln()).sqrt() * (std::f64::consts::TAU * uniform_b).cos();
    (TENURE_MEDIAN_DAYS.ln() + TENURE_LOG_SPREAD * normal)
        .exp()
        .clamp(TENURE_DAYS_RANGE.0, TENURE_DAYS_RANGE.1)
}

fn profile(rng: &mut StdRng) -> &'static [(&'static str, u8)] {
    let total: u32 = PROFILES.iter().map(|(_, weight)| weight).sum();
    let mut pick = rng.random_range(0..total);
    for (skills, weight) in PROFILES {
        if pick < *weight {
            return skills;
        }
        pick -= weight;
    }
    PROFILES[0].0
}

impl Population {
    fn draw(
        seed: u64,
        start: DateTime<Utc>,
        days: f64,
        volunteers: usize,
        needs: usize,
    ) -> Population {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut volunteer_offers: Vec<VolunteerOffer> = (0..volunteers)
            .map(|index| {
                let available_from = arrival(&mut rng, start, days);
                VolunteerOffer {
                    id: format!("v-{index:04}"),
                    skills: profile(&mut rng)
                        .iter()
                        .map(|(skill, level)| ((*skill).to_owned(), *level))
                        .collect(),
                    hours_per_week: f64::from(rng.random_range(2u32..=10)),
                    available_from,
                    available_until: after_hours(available_from, tenure_days(&mut rng) * 24.0),
                    region: rng.random_bool(0.75).then(|| "detroit".to_owned()),
                    trust: u8::from(rng.random_bool(0.3)),
                    name: None,
                    contact: None,
                    sealed: None,
                    languages: Vec::new(),
                    weekly: Vec::new(),
                    tz: None,
                    home: None,
                    max_km: None,
                }
            })
            .collect();
        volunteer_offers.sort_by_key(|offer| offer.available_from);

        let mut need_posts: Vec<(DateTime<Utc>, NeedPost)> = (0..needs)
            .map(|index| {
                let posted_at = arrival(&mut rng, start, days);
                (posted_at, Self::need(&mut rng, index, posted_at))
            })
            .collect();
        need_posts.sort_by_key(|(posted_at, _)| *posted_at);

        let pledge_count = ((needs as f64) * PLEDGES_PER_NEED).ceil() as usize;
        let mut pledges: Vec<(DateTime<Utc>, PledgeOffer)> = (0..pledge_count)
            .map(|index| {
                let posted_at = arrival(&mut rng, start, days);
                let restricted = rng.random_bool(0.3);
                let collective = format!("c-{:02}", rng.random_range(0..COLLECTIVES_COUNT));
                let pledge = PledgeOffer {
                    id: format!("p-{index:04}"),
                    amount_cents: u64::from(rng.random_range(100u32..=800)) * 100,
                    collectives: restricted.then(|| vec![collective]),
                    tags: None,
                    expires_at: None,
                    donor: None,
                    sealed: None,
                    currency: None,
                };
                (posted_at, pledge)
            })
            .collect();
        pledges.sort_by_key(|(posted_at, _)| *posted_at);

        Population {
            start,
            end: after_hours(start, days * 24.0),
            volunteers: volunteer_offers,
            needs: need_posts,
            pledges,
        }
    }

    /// One need: one to three tasks, later ones sometimes depending on the first.
    fn need(rng: &mut StdRng, index: usize, posted_at: DateTime<Utc>) -> NeedPost {
        let need_id = format!("n-{index:04}");
        let collective = format!("c-{:02}", index % COLLECTIVES_COUNT);
        let tag = TAGS[rng.random_range(0..TAGS.len())].to_owned();
        let task_count = rng.random_range(1..=3);
        let mut tasks: Vec<TaskSpec> = Vec::with_capacity(task_count);
        for position in 0..task_count {
            let money_only = rng.random_bool(0.15);
            let earliest_start = if rng.random_bool(0.4) {
                posted_at
            } else {
                after_hours(posted_at, rng.random_range(0.0..48.0))
            };
            let deadline = after_hours(earliest_start, rng.random_range(2.0..10.0) * 24.0);
            let skills = if money_only || rng.random_bool(0.2) {
                BTreeMap::new()
            } else {
                let wanted = profile(rng);
                let take = rng.random_range(1..=wanted.len().min(2));
                wanted[..take]
                    .iter()
                    .map(|(skill, level)| {
                        let required = (*level).saturating_sub(rng.random_range(0..2)).max(1);
                        ((*skill).to_owned(), required)
                    })
                    .collect()
            };
            let slots: u8 = if money_only {
                0
            } else {
                rng.random_range(1..=4)
            };
            let money_cents = if money_only || rng.random_bool(0.15) {
                u64::from(rng.random_range(50u32..=400)) * 100
            } else {
                0
            };
            let depends_on = if position > 0 && rng.random_bool(0.35) {
                vec![tasks[0].id.clone()]
            } else {
                Vec::new()
            };
            tasks.push(TaskSpec {
                id: format!("t-{index:04}-{position}"),
                need: None,
                collective: None,
                title: format!("task {position} of need {index}"),
                skills,
                hours: if money_only {
                    0.0
                } else {
                    f64::from(rng.random_range(2u32..=8))
                },
                slots,
                earliest_start,
                deadline,
                region: rng.random_bool(0.6).then(|| "detroit".to_owned()),
                sensitivity: 0,
                depends_on,
                money_cents,
                impact: f64::from(rng.random_range(5u32..=30)) * (1.0 + f64::from(slots) * 0.25),
                tags: vec![tag.clone()],
                currency: None,
                shift: None,
                place: None,
                instructions: None,
                languages: Vec::new(),
            });
        }
        NeedPost {
            id: need_id.clone(),
            collective,
            title: format!("need {index}"),
            tasks,
        }
    }

    fn tasks(&self) -> impl Iterator<Item = (DateTime<Utc>, &NeedPost, &TaskSpec)> {
        self.needs.iter().flat_map(|(posted_at, need)| {
            need.tasks.iter().map(move |task| (*posted_at, need, task))
        })
    }
}

/// One policy's outcome on the population.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Outcome {
    pub policy: String,
    pub tasks_completed: usize,
    pub impact_delivered: f64,
    /// Hours people committed to (accepted, or signed up for).
    pub hours_accepted: f64,
    /// Committed hours on tasks that completed, by people who saw them through.
    pub hours_completed: f64,
    /// Committed hours that came to nothing: released, ghosted, or on tasks that never completed.
    pub hours_died: f64,
    /// People who were given (or took) at least one piece of work.
    pub people_with_work: usize,
    /// People who finished at least one piece of work on a completed task.
    pub people_with_completed_work: usize,
}

/// What the switchboard's services did during the live run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Traffic {
    pub proposals: usize,
    pub accepted: usize,
    pub declined: usize,
    pub expired: usize,
    pub checked_in: usize,
    pub released: usize,
    /// Releases by the reason the switchboard gave: where the churn comes from.
    pub released_because: std::collections::BTreeMap<String, usize>,
    pub done: usize,
    pub requests_refused: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub days: f64,
    pub speed: f64,
    pub real_seconds: f64,
    pub volunteers: usize,
    pub needs: usize,
    pub tasks_posted: usize,
    pub impact_posted: f64,
    pub switchboard: Outcome,
    pub self_selection: Outcome,
    pub traffic: Traffic,
}

/// What the simulation needs, separated from the command line for tests.
#[derive(Clone, Debug)]
pub struct SimulationConfig {
    pub nats: Option<String>,
    pub prefix: String,
    pub data: Option<PathBuf>,
    pub start: Option<DateTime<Utc>>,
    pub days: f64,
    pub speed: f64,
    pub volunteers: usize,
    pub needs: usize,
    pub seed: u64,
    pub response_window_hours: i64,
    pub checkin_window_hours: i64,
    pub match_budget_ms: u64,
}

impl From<&SimulateArgs> for SimulationConfig {
    fn from(args: &SimulateArgs) -> SimulationConfig {
        SimulationConfig {
            nats: args.nats.clone(),
            prefix: args.prefix.clone(),
            data: args.data.clone(),
            start: args.now,
            days: args.days,
            speed: args.speed,
            volunteers: args.volunteers,
            needs: args.needs,
            seed: args.seed,
            response_window_hours: args.lifecycle.response_window_hours,
            checkin_window_hours: args.lifecycle.checkin_window_hours,
            match_budget_ms: args.match_budget_ms,
        }
    }
}

pub async fn run(args: SimulateArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let json = args.json;
    let report = simulate(SimulationConfig::from(&args), shutdown).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// Runs the live switchboard on the population, then self-selection offline.
pub async fn simulate(
    config: SimulationConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Report> {
    if config.days.is_nan() || config.days <= 0.0 || config.speed.is_nan() || config.speed <= 0.0 {
        anyhow::bail!("--days and --speed must be more than 0");
    }
    // Without --data the state lives in a directory of its own, removed at the end.
    let temporary = match &config.data {
        Some(_) => None,
        None => Some(std::env::temp_dir().join(format!(
            "switchboard-simulate-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ))),
    };
    let data = config
        .data
        .clone()
        .or_else(|| temporary.clone())
        .context("no data directory")?;
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let local = match &config.nats {
        Some(_) => None,
        None => Some(LocalNats::start(&data.join("nats")).await?),
    };
    let url = match (&config.nats, &local) {
        (Some(url), _) => url.clone(),
        (None, Some(local)) => local.url.clone(),
        (None, None) => unreachable!("a local server is started when no URL is given"),
    };
    let outcome = run_live(&config, &url, &data, shutdown).await;
    if let Some(local) = local {
        local.stop().await;
    }
    if let Some(temporary) = temporary {
        // Best effort: a leftover temporary directory harms nothing.
        let _ = std::fs::remove_dir_all(&temporary);
    }
    outcome
}

async fn run_live(
    config: &SimulationConfig,
    url: &str,
    data: &std::path::Path,
    shutdown: CancellationToken,
) -> anyhow::Result<Report> {
    let connection = Connection {
        url: url.to_owned(),
        prefix: config.prefix.clone(),
        auth: Default::default(),
        replicas: 1,
    };
    let origin = config
        .start
        .unwrap_or_else(|| Utc::now() - chrono::Duration::seconds(Utc::now().timestamp() % 3600));
    let clock = plumbing::Clock::starting_at(origin, config.speed);
    let state = data.join("state");
    let mut running = Fleet::new(
        switchboard::services::connection(&connection)?,
        clock.clone(),
    )
    .ingest(ingest::IngestConfig {
        state_directory: Some(state.join("ingest")),
        declared_trust: true,
    })
    .solver(solver::SolverConfig {
        state_directory: Some(state.join("solver")),
        match_budget: Duration::from_millis(config.match_budget_ms),
        response_window: chrono::Duration::hours(config.response_window_hours),
        // As in production: newcomers get short, open starter tasks first.
        starter_policy: true,
        trust_source: solver::TrustSource::Declared,
        priorities: solver::Priorities::default(),
        ..solver::SolverConfig::default()
    })
    // Money is held, released and accounted as in production.
    .ledger(ledger::LedgerConfig {
        state_directory: Some(state.join("ledger")),
        ..ledger::LedgerConfig::default()
    })
    .dispatch(dispatch::DispatchConfig {
        state_directory: Some(state.join("dispatch")),
        checkin_window: chrono::Duration::hours(config.checkin_window_hours),
        // A synthetic population has no mailboxes.
        smtp: None,
    })
    .start(&shutdown)
    .await?;
    let client_context = running.client_context("sb-simulate").await?;
    wait_for_solver(&client_context).await?;

    // The services took real time to start, which is hours on a fast clock:
    // the population's period starts now, once everyone listens.
    let start = clock.now();
    let population = Population::draw(
        config.seed,
        start,
        config.days,
        config.volunteers,
        config.needs,
    );
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let began = Instant::now();
    let people = running.token().child_token();
    let mut clients: JoinSet<anyhow::Result<()>> = JoinSet::new();
    clients.spawn(play_people(
        client_context.clone(),
        population.clone(),
        config.seed,
        ledger.clone(),
        people.clone(),
    ));
    clients.spawn(post_population(
        client_context.clone(),
        population.clone(),
        ledger.clone(),
        people.clone(),
    ));
    clients.spawn(fund_money_only_tasks(
        client_context.clone(),
        population.clone(),
        ledger.clone(),
        people.clone(),
    ));

    // The period ends on the switchboard's clock, or early on Ctrl-C, or when a service fails.
    let mut failure = None;
    tokio::select! {
        () = tokio::time::sleep(clock.real_delay_until(population.end)) => {}
        () = shutdown.cancelled() => {}
        finished = running.next_finished() => {
            failure = Some(match finished {
                Some((name, Err(error))) => error.context(format!("the {name} service failed")),
                Some((name, Ok(()))) => anyhow::anyhow!("the {name} service stopped early"),
                None => anyhow::anyhow!("no service is running"),
            });
        }
        Some(joined) = clients.join_next() => {
            failure = match joined {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(error.context("the simulated people failed")),
                Err(error) => Some(anyhow::anyhow!("the simulated people panicked: {error}")),
            };
        }
    }
    let real_seconds = began.elapsed().as_secs_f64();
    people.cancel();
    while clients.join_next().await.is_some() {}
    let stopped = running.stop().await;
    if failure.is_none() {
        failure = stopped.err();
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let ledger = ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("the ledger was poisoned by a panic"))?
        .clone();
    let switchboard = ledger.outcome(&population);
    let self_selection = self_select(&population, config.seed);
    Ok(Report {
        seed: config.seed,
        days: config.days,
        speed: config.speed,
        real_seconds,
        volunteers: population.volunteers.len(),
        needs: population.needs.len(),
        tasks_posted: population.tasks().count(),
        impact_posted: population.tasks().map(|(_, _, task)| task.impact).sum(),
        switchboard,
        self_selection,
        traffic: ledger.traffic,
    })
}

/// The solver answers `sb.plan.get` once it has read both logs.
async fn wait_for_solver(context: &plumbing::Context) -> anyhow::Result<()> {
    for _ in 0..REQUEST_ATTEMPTS_MAX {
        let asked = context
            .client
            .request(context.subjects.plan_get(), Bytes::from_static(b"{}"))
            .await;
        if asked.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(REQUEST_RETRY_MS)).await;
    }
    anyhow::bail!("the solver did not answer {}", context.subjects.plan_get())
}

/// Sends one request, retrying while a service is still starting; `Ok(false)` when refused.
async fn send<T: Serialize>(
    context: &plumbing::Context,
    input: Input,
    body: &T,
) -> anyhow::Result<bool> {
    let payload = Bytes::from(serde_json::to_vec(body)?);
    let subject = context.subjects.input(input);
    for _ in 0..REQUEST_ATTEMPTS_MAX {
        match context
            .client
            .request(subject.clone(), payload.clone())
            .await
        {
            Ok(message) => {
                let reply: Reply =
                    serde_json::from_slice(&message.payload).context("reading a reply")?;
                if let Some(error) = &reply.error {
                    tracing::debug!(%subject, message = %error.message, "a simulated request was refused");
                }
                return Ok(reply.ok);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(REQUEST_RETRY_MS)).await,
        }
    }
    anyhow::bail!("the switchboard did not answer {subject}")
}

/// Waits on the switchboard's clock; false when the simulation stops first.
async fn wait_until(clock: &plumbing::Clock, at: DateTime<Utc>, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(clock.real_delay_until(at)) => true,
    }
}

/// Everything the live run saw, kept to compute its outcome.
#[derive(Clone, Debug, Default)]
struct Ledger {
    /// Accepted assignments (volunteer, task, round).
    accepted: BTreeSet<(String, String, u32)>,
    /// Volunteers who reported each task done.
    done: BTreeMap<String, BTreeSet<String>>,
    /// Tasks the collectives marked complete (accepted by ingest).
    completed: BTreeSet<String>,
    /// (volunteer, task) pairs checked in and still being worked on: these
    /// volunteers answer dispatch's "still on it?" nudges.
    working: BTreeSet<(String, String)>,
    traffic: Traffic,
}

impl Ledger {
    fn outcome(&self, population: &Population) -> Outcome {
        let tasks: HashMap<&str, &TaskSpec> = population
            .tasks()
            .map(|(_, _, task)| (task.id.as_str(), task))
            .collect();
        let mut outcome = Outcome {
            policy: "switchboard".to_owned(),
            ..Outcome::default()
        };
        let mut with_work = HashSet::new();
        let mut with_completed_work = HashSet::new();
        for (volunteer, task, _) in &self.accepted {
            let hours = tasks.get(task.as_str()).map_or(0.0, |task| task.hours);
            outcome.hours_accepted += hours;
            with_work.insert(volunteer.clone());
            let saw_it_through = self.completed.contains(task)
                && self
                    .done
                    .get(task)
                    .is_some_and(|done| done.contains(volunteer));
            if saw_it_through {
                outcome.hours_completed += hours;
                with_completed_work.insert(volunteer.clone());
            } else {
                outcome.hours_died += hours;
            }
        }
        for task in &self.completed {
            outcome.tasks_completed += 1;
            outcome.impact_delivered += tasks.get(task.as_str()).map_or(0.0, |task| task.impact);
        }
        outcome.people_with_work = with_work.len();
        outcome.people_with_completed_work = with_completed_work.len();
        outcome
    }
}

fn lock(ledger: &Mutex<Ledger>) -> anyhow::Result<std::sync::MutexGuard<'_, Ledger>> {
    ledger
        .lock()
        .map_err(|_| anyhow::anyhow!("the ledger was poisoned by a panic"))
}

/// Posts volunteers, needs and pledges at their times on the switchboard's clock.
async fn post_population(
    context: plumbing::Context,
    population: Population,
    ledger: Arc<Mutex<Ledger>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    enum Arrival<'a> {
        Volunteer(&'a VolunteerOffer),
        Need(&'a NeedPost),
        Pledge(&'a PledgeOffer),
    }
    let mut arrivals: Vec<(DateTime<Utc>, Arrival<'_>)> = Vec::new();
    for offer in &population.volunteers {
        arrivals.push((offer.available_from, Arrival::Volunteer(offer)));
    }
    for (posted_at, need) in &population.needs {
        arrivals.push((*posted_at, Arrival::Need(need)));
    }
    for (posted_at, pledge) in &population.pledges {
        arrivals.push((*posted_at, Arrival::Pledge(pledge)));
    }
    arrivals.sort_by_key(|(at, _)| *at);
    for (at, arrival) in arrivals {
        if !wait_until(&context.clock, at, &stop).await {
            return Ok(());
        }
        let accepted = match arrival {
            Arrival::Volunteer(offer) => send(&context, Input::Volunteer, offer).await?,
            Arrival::Need(need) => send(&context, Input::Need, need).await?,
            Arrival::Pledge(pledge) => send(&context, Input::Pledge, pledge).await?,
        };
        if !accepted {
            lock(&ledger)?.traffic.requests_refused += 1;
        }
    }
    stop.cancelled().await;
    Ok(())
}

/// Collectives look at the plan now and then and mark money-only tasks done once funded.
async fn fund_money_only_tasks(
    context: plumbing::Context,
    population: Population,
    ledger: Arc<Mutex<Ledger>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let money_only: Vec<&TaskSpec> = population
        .tasks()
        .map(|(_, _, task)| task)
        .filter(|task| task.slots == 0)
        .collect();
    let mut next = population.start;
    loop {
        next = after_hours(next, PLAN_POLL_HOURS);
        if !wait_until(&context.clock, next, &stop).await {
            return Ok(());
        }
        let Ok(message) = context
            .client
            .request(context.subjects.plan_get(), Bytes::from_static(b"{}"))
            .await
        else {
            continue;
        };
        let Ok(plan) = serde_json::from_slice::<proto::instance::Plan>(&message.payload) else {
            continue;
        };
        let mut funded: HashMap<&str, u64> = HashMap::new();
        for funding in &plan.funding {
            *funded.entry(funding.task.as_str()).or_default() += funding.amount_cents;
        }
        let now = context.clock.now();
        for task in &money_only {
            let due = task.earliest_start <= now
                && funded.get(task.id.as_str()).copied().unwrap_or(0) >= task.money_cents;
            if !due || lock(&ledger)?.completed.contains(&task.id) {
                continue;
            }
            let completion = TaskCompletion {
                task: task.id.clone(),
            };
            if send(&context, Input::Complete, &completion).await? {
                lock(&ledger)?.completed.insert(task.id.clone());
            }
        }
    }
}

/// The volunteers and collectives: answer proposals, check in, report done,
/// and mark a task complete once its whole team reported done.
async fn play_people(
    context: plumbing::Context,
    population: Population,
    seed: u64,
    ledger: Arc<Mutex<Ledger>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut inbox = context
        .client
        .subscribe(context.subjects.to_volunteer("*"))
        .await
        .context("subscribing to the volunteers' subjects")?;
    let mut matches = context
        .client
        .subscribe(context.subjects.matches_all())
        .await
        .context("subscribing to the match stream")?;
    let slots: HashMap<String, u8> = population
        .tasks()
        .map(|(_, _, task)| (task.id.clone(), task.slots))
        .collect();
    let tasks: HashMap<String, TaskSpec> = population
        .tasks()
        .map(|(_, _, task)| (task.id.clone(), task.clone()))
        .collect();
    let mut seen_messages: HashSet<String> = HashSet::new();
    let mut answers: JoinSet<anyhow::Result<()>> = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(finished) = answers.join_next(), if !answers.is_empty() => {
                finished.context("a simulated volunteer panicked")??;
            }
            message = inbox.next() => {
                let Some(message) = message else { break };
                let Ok(proposal) = serde_json::from_slice::<VolunteerMessage>(&message.payload) else {
                    continue;
                };
                if !seen_messages.insert(proposal.message_id.clone()) {
                    continue;
                }
                if proposal.kind == "reminder" {
                    // Someone still working answers "still on it?" with the
                    // check-in it offers, after their usual delay.
                    let pair = (proposal.volunteer.clone(), proposal.task.clone());
                    let Some(checkin) = proposal.checkin.clone() else { continue };
                    if !lock(&ledger)?.working.contains(&pair) {
                        continue;
                    }
                    let choice = behaviour(seed, &proposal.volunteer, &proposal.task);
                    answers.spawn(answer_nudge(context.clone(), checkin, choice, stop.clone()));
                    continue;
                }
                if proposal.kind != "proposal" {
                    continue;
                }
                let Some(task) = tasks.get(&proposal.task).cloned() else { continue };
                let choice = behaviour(seed, &proposal.volunteer, &proposal.task);
                answers.spawn(live_volunteer(context.clone(), proposal, task, choice, ledger.clone(), stop.clone()));
            }
            message = matches.next() => {
                let Some(message) = message else { break };
                let Some(kind) = context.subjects.parse_match(&message.subject) else { continue };
                {
                    let traffic = &mut lock(&ledger)?.traffic;
                    match kind {
                        MatchKind::Proposed => traffic.proposals += 1,
                        MatchKind::Accepted => traffic.accepted += 1,
                        MatchKind::Declined => traffic.declined += 1,
                        MatchKind::Expired => traffic.expired += 1,
                        MatchKind::CheckedIn => traffic.checked_in += 1,
                        MatchKind::Released => traffic.released += 1,
                        MatchKind::Completed => traffic.done += 1,
                    }
                }
                // Proposals carry more, but every match event has the pair and the round.
                let Ok(changed) = serde_json::from_slice::<MatchChanged>(&message.payload) else {
                    continue;
                };
                if kind == MatchKind::Released {
                    let reason = changed.reason.clone().unwrap_or_else(|| "none given".to_owned());
                    *lock(&ledger)?.traffic.released_because.entry(reason).or_insert(0) += 1;
                }
                let complete_now = {
                    let mut ledger = lock(&ledger)?;
                    match kind {
                        MatchKind::Accepted => {
                            ledger.accepted.insert((changed.volunteer.clone(), changed.task.clone(), changed.round));
                            false
                        }
                        MatchKind::Completed => {
                            let done = ledger.done.entry(changed.task.clone()).or_default();
                            done.insert(changed.volunteer.clone());
                            let team = usize::from(slots.get(&changed.task).copied().unwrap_or(u8::MAX));
                            done.len() >= team && !ledger.completed.contains(&changed.task)
                        }
                        _ => false,
                    }
                };
                if complete_now {
                    // The collective saw the whole team report done.
                    let completion = TaskCompletion { task: changed.task.clone() };
                    if send(&context, Input::Complete, &completion).await? {
                        lock(&ledger)?.completed.insert(changed.task);
                    }
                }
            }
        }
    }
    answers.abort_all();
    Ok(())
}

/// A working volunteer's answer to a nudge, after their usual delay.
async fn answer_nudge(
    context: plumbing::Context,
    checkin: VolunteerReply,
    choice: Behaviour,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let answer_at = after_hours(context.clock.now(), choice.answer_delay_hours);
    if wait_until(&context.clock, answer_at, &stop).await {
        send(&context, Input::Reply, &checkin).await?;
    }
    Ok(())
}

/// One volunteer's handling of one proposal, every pause on the switchboard's clock.
async fn live_volunteer(
    context: plumbing::Context,
    proposal: VolunteerMessage,
    task: TaskSpec,
    choice: Behaviour,
    ledger: Arc<Mutex<Ledger>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if !choice.answers {
        return Ok(());
    }
    let received_at = context.clock.now();
    let answer_at = after_hours(received_at, choice.answer_delay_hours);
    if !wait_until(&context.clock, answer_at, &stop).await {
        return Ok(());
    }
    if !choice.accepts {
        send(&context, Input::Reply, &proposal.decline).await?;
        return Ok(());
    }
    if !send(&context, Input::Reply, &proposal.accept).await? || choice.ghosts {
        // Too late (expired) or gone silent: dispatch releases the work.
        return Ok(());
    }
    let checkin_at = after_hours(answer_at, choice.checkin_delay_hours);
    if !wait_until(&context.clock, checkin_at, &stop).await {
        return Ok(());
    }
    let reply = |action: ReplyAction| VolunteerReply {
        action,
        ..proposal.accept.clone()
    };
    if !send(&context, Input::Reply, &reply(ReplyAction::Checkin)).await? {
        return Ok(());
    }
    let pair = (proposal.volunteer.clone(), proposal.task.clone());
    lock(&ledger)?.working.insert(pair.clone());
    let work_starts = checkin_at.max(task.earliest_start);
    let done_at = after_hours(work_starts, task.hours + choice.work_slack_hours);
    let (at, last) = if choice.drops {
        (
            after_hours(work_starts, task.hours / 2.0),
            ReplyAction::Drop,
        )
    } else {
        (done_at, ReplyAction::Done)
    };
    let due = wait_until(&context.clock, at, &stop).await;
    lock(&ledger)?.working.remove(&pair);
    if due {
        send(&context, Input::Reply, &reply(last)).await?;
    }
    Ok(())
}

/// Self-selection on the same population: people browse the open tasks
/// when they arrive and then weekly, and sign up for the most impactful of
/// the handful they happen to see that they fit; a task happens only if its
/// team fills before its deadline, everyone shows up, its money is there
/// and what it depends on happened. Nobody is asked, nobody backfills.
fn self_select(population: &Population, seed: u64) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(0x5e1f));
    let tasks: Vec<(DateTime<Utc>, &NeedPost, &TaskSpec)> = population.tasks().collect();
    let funded = fund_first_come(population);

    // Browsing visits in time order: arrival, then every week until tenure ends.
    let mut visits: Vec<(DateTime<Utc>, usize)> = Vec::new();
    for (index, offer) in population.volunteers.iter().enumerate() {
        let mut at = offer.available_from;
        while at < offer.available_until && at < population.end {
            visits.push((at, index));
            at = after_hours(at, BROWSE_INTERVAL_DAYS * 24.0);
        }
    }
    visits.sort();

    // Who signed up for each task, and when.
    let mut rosters: Vec<Vec<(usize, DateTime<Utc>)>> = vec![Vec::new(); tasks.len()];
    let mut hours_signed: Vec<f64> = vec![0.0; population.volunteers.len()];
    for (at, person) in visits {
        let offer = &population.volunteers[person];
        let weeks_left = (offer.available_until - at).num_hours() as f64 / 168.0;
        let capacity = offer.hours_per_week * weeks_left.max(0.0);
        let visible: Vec<usize> = tasks
            .iter()
            .enumerate()
            .filter(|(index, (posted_at, _, task))| {
                *posted_at <= at
                    && task.slots > 0
                    && rosters[*index].len() < usize::from(task.slots)
                    && !rosters[*index].iter().any(|(signed, _)| *signed == person)
                    && fits(offer, task, at)
            })
            .map(|(index, _)| index)
            .collect();
        let mut handful: Vec<usize> = Vec::with_capacity(BROWSE_HANDFUL);
        let mut remaining = visible;
        while handful.len() < BROWSE_HANDFUL && !remaining.is_empty() {
            handful.push(remaining.swap_remove(rng.random_range(0..remaining.len())));
        }
        handful.sort_by(|a, b| tasks[*b].2.impact.total_cmp(&tasks[*a].2.impact));
        let mut signups = 0;
        for index in handful {
            let task = tasks[index].2;
            if signups >= BROWSE_SIGNUPS_MAX || hours_signed[person] + task.hours > capacity {
                continue;
            }
            rosters[index].push((person, at));
            hours_signed[person] += task.hours;
            signups += 1;
        }
    }

    // Tasks happen in posting order, so a dependency is settled before its dependants.
    let mut happened: HashSet<&str> = HashSet::new();
    let mut outcome = Outcome {
        policy: "self-selection".to_owned(),
        ..Outcome::default()
    };
    let mut with_work = HashSet::new();
    let mut with_completed_work = HashSet::new();
    for (index, (_, _, task)) in tasks.iter().enumerate() {
        let roster = &rosters[index];
        // Everyone shows up and finishes before the deadline, their tenure
        // and the period end, with the same pauses as in the live run.
        let team_full_at = roster.iter().map(|(_, at)| *at).max();
        let everyone_finishes = team_full_at.is_some_and(|full_at| {
            roster.iter().all(|(person, _)| {
                let offer = &population.volunteers[*person];
                let choice = behaviour(seed, &offer.id, &task.id);
                let checkin_at = after_hours(full_at, choice.checkin_delay_hours);
                let done_at = after_hours(
                    checkin_at.max(task.earliest_start),
                    task.hours + choice.work_slack_hours,
                );
                !choice.ghosts
                    && !choice.drops
                    && done_at <= task.deadline.min(offer.available_until).min(population.end)
            })
        });
        let happens = roster.len() == usize::from(task.slots)
            && everyone_finishes
            && (task.money_cents == 0 || funded.contains(task.id.as_str()))
            && task
                .depends_on
                .iter()
                .all(|dependency| happened.contains(dependency.as_str()));
        for (person, _) in roster {
            outcome.hours_accepted += task.hours;
            with_work.insert(*person);
            if happens {
                outcome.hours_completed += task.hours;
                with_completed_work.insert(*person);
            } else {
                outcome.hours_died += task.hours;
            }
        }
        if happens {
            happened.insert(task.id.as_str());
            outcome.tasks_completed += 1;
            outcome.impact_delivered += task.impact;
        }
    }
    outcome.people_with_work = with_work.len();
    outcome.people_with_completed_work = with_completed_work.len();
    outcome
}

/// Can this person do this task, seen at `at`: skills, place, and time
/// between now and both the deadline and the end of their tenure.
fn fits(offer: &VolunteerOffer, task: &TaskSpec, at: DateTime<Utc>) -> bool {
    let skilled = task
        .skills
        .iter()
        .all(|(skill, level)| offer.skills.get(skill).is_some_and(|held| *held >= *level));
    let placed = task.region.is_none() || task.region == offer.region;
    let window_ends = task.deadline.min(offer.available_until);
    let window_starts = task.earliest_start.max(at);
    let hours_in_window = (window_ends - window_starts).num_minutes() as f64 / 60.0;
    skilled && placed && hours_in_window >= task.hours
}

/// Donors' money without a matchmaker: each task that needs money takes it,
/// in posting order, from pledges already made that allow it, first come.
fn fund_first_come(population: &Population) -> HashSet<&str> {
    let mut remaining: Vec<(DateTime<Utc>, &PledgeOffer, u64)> = population
        .pledges
        .iter()
        .map(|(posted_at, pledge)| (*posted_at, pledge, pledge.amount_cents))
        .collect();
    let mut funded = HashSet::new();
    for (_, need) in &population.needs {
        for task in need.tasks.iter().filter(|task| task.money_cents > 0) {
            let allowed = |pledge: &PledgeOffer, posted_at: DateTime<Utc>| {
                posted_at <= task.deadline
                    && pledge
                        .collectives
                        .as_ref()
                        .is_none_or(|collectives| collectives.contains(&need.collective))
            };
            let available: u64 = remaining
                .iter()
                .filter(|(posted_at, pledge, _)| allowed(pledge, *posted_at))
                .map(|(_, _, left)| *left)
                .sum();
            if available < task.money_cents {
                continue;
            }
            let mut owed = task.money_cents;
            for (posted_at, pledge, left) in &mut remaining {
                if owed == 0 {
                    break;
                }
                if allowed(pledge, *posted_at) {
                    let taken = owed.min(*left);
                    *left -= taken;
                    owed -= taken;
                }
            }
            funded.insert(task.id.as_str());
        }
    }
    funded
}

/// The report as a table people can read.
pub fn render(report: &Report) -> String {
    // One cell per row for each policy, in the order the rows are printed.
    let cells = |outcome: &Outcome| -> [String; 7] {
        [
            outcome.tasks_completed.to_string(),
            format!("{:.1}", outcome.impact_delivered),
            format!("{:.1}", outcome.hours_accepted),
            format!("{:.1}", outcome.hours_completed),
            format!("{:.1}", outcome.hours_died),
            outcome.people_with_work.to_string(),
            outcome.people_with_completed_work.to_string(),
        ]
    };
    let labels = [
        "tasks completed",
        "impact delivered",
        "hours accepted",
        "  on work that completed",
        "  on work that died",
        "people who got work",
        "people who completed work",
    ];
    let mut text = format!(
        "simulated {} days at {}x in {:.0} s (seed {}): {} volunteers, {} needs, {} tasks, impact posted {:.1}\n\n",
        report.days,
        report.speed,
        report.real_seconds,
        report.seed,
        report.volunteers,
        report.needs,
        report.tasks_posted,
        report.impact_posted
    );
    text.push_str(&format!(
        "{:<28} {:>12} {:>15}\n",
        "", "switchboard", "self-selection"
    ));
    let switchboard = cells(&report.switchboard);
    let self_selection = cells(&report.self_selection);
    for (index, label) in labels.iter().enumerate() {
        text.push_str(&format!(
            "{:<28} {:>12} {:>15}\n",
            label, switchboard[index], self_selection[index]
        ));
    }
    let traffic = &report.traffic;
    text.push_str(&format!(
        "\nswitchboard traffic: {} proposed, {} accepted, {} declined, {} expired, {} checked in, {} released, {} done, {} requests refused\n",
        traffic.proposals,
        traffic.accepted,
        traffic.declined,
        traffic.expired,
        traffic.checked_in,
        traffic.released,
        traffic.done,
        traffic.requests_refused
    ));
    for (reason, count) in &traffic.released_because {
        text.push_str(&format!("  released {count:>5}: {reason}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn small(days: f64) -> SimulationConfig {
        SimulationConfig {
            nats: None,
            prefix: proto::subjects::PREFIX_DEFAULT.to_owned(),
            data: None,
            start: None,
            days,
            speed: 20_000.0,
            volunteers: 16,
            needs: 8,
            seed: 3,
            response_window_hours: solver::RESPONSE_WINDOW_HOURS_MAX,
            checkin_window_hours: dispatch::CHECKIN_WINDOW_HOURS_DEFAULT,
            match_budget_ms: solver::MATCH_BUDGET_MS_DEFAULT,
        }
    }

    fn consistent(outcome: &Outcome) {
        let sum = outcome.hours_completed + outcome.hours_died;
        assert!(
            (sum - outcome.hours_accepted).abs() < 1e-6,
            "{outcome:?}: completed + died != accepted"
        );
        assert!(outcome.people_with_completed_work <= outcome.people_with_work);
    }

    #[test]
    fn self_selection_on_a_drawn_population_adds_up() {
        let start = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let population = Population::draw(7, start, 21.0, 200, 80);
        let outcome = self_select(&population, 7);
        consistent(&outcome);
        assert!(outcome.hours_accepted > 0.0);
        assert_eq!(
            outcome,
            self_select(&population, 7),
            "the policy is deterministic"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_fast_days_through_the_real_services_give_a_consistent_report() {
        let report = simulate(small(2.0), CancellationToken::new())
            .await
            .unwrap();
        consistent(&report.switchboard);
        consistent(&report.self_selection);
        assert!(report.traffic.proposals > 0, "{report:?}");
        assert!(report.switchboard.impact_delivered > 0.0, "{report:?}");
        assert!(render(&report).contains("impact delivered"));
    }
}
