//! `switchboard simulate`: weeks of a synthetic movement driven through the
//! real services over NATS on a fast clock, scored on what really happened,
//! beside three baselines on the same realised world: people picking for
//! themselves (self-selection), a naive re-planner and the hindsight optimum.
//!
//! The population is drawn once from a seed: people arriving over the
//! period with tenures around three weeks, a share of whom vanish without a
//! word at a random point of it; collectives posting needs (some at the
//! start, the rest later) with teams, dependencies and money; donors
//! pledging. How each person answers each task, when they vanish and how
//! fast they work is fixed by the seed ([`world`]), so every policy faces
//! the same people behaving the same way.
//!
//! The live run talks to the services only over the public subjects
//! (`sb.in.*` in, `sb.to.volunteer.*` and `sb.match.>` out) like any client,
//! and every delay is measured on the switchboard's clock: a volunteer who
//! "answers after three hours" answers after three simulated hours.

pub mod baselines;
pub mod world;

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

use self::baselines::{Board, HindsightSolve, NaiveConfig, NaiveTraffic};
use self::world::{after_hours, hours_between, Action, Job, Outcome, Person, Rates, Said, World};
use crate::cli::SimulateArgs;
// Volunteers' skill profiles, with how often each appears: the demo's.
use crate::demo::PROFILES;

/// Median tenure of a volunteer in days, and the spread of its logarithm.
const TENURE_MEDIAN_DAYS: f64 = 21.0;
const TENURE_LOG_SPREAD: f64 = 0.45;
const TENURE_DAYS_RANGE: (f64, f64) = (3.0, 60.0);
/// Share of volunteers and pledges already there when the period starts.
const PRESENT_AT_START_SHARE: f64 = 0.2;
/// Needs drawn per volunteer when `--needs` is not given (60 for 150 people).
const NEEDS_PER_VOLUNTEER: f64 = 0.4;
/// How often collectives look at the plan to see their tasks funded, in simulated hours.
const PLAN_POLL_HOURS: f64 = 6.0;
/// How often the simulated people move on (work, answer), in simulated hours.
const TICK_HOURS: f64 = 0.5;
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
/// The hindsight optimiser's budget is bounded like `switchboard solve`'s.
const HINDSIGHT_BUDGET_S_MAX: f64 = 3600.0;
/// The solver's words for a team it gave up on.
const TEAM_INCOMPLETE_REASON: &str = "the team could not be completed";

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

/// When something arrives: at the start for a share, else uniformly over the period.
fn arrival(
    rng: &mut StdRng,
    start: DateTime<Utc>,
    days: f64,
    at_start_share: f64,
) -> DateTime<Utc> {
    if rng.random_bool(at_start_share) {
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
        needs_later_share: f64,
    ) -> Population {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut volunteer_offers: Vec<VolunteerOffer> = (0..volunteers)
            .map(|index| {
                let available_from = arrival(&mut rng, start, days, PRESENT_AT_START_SHARE);
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
                let posted_at = arrival(&mut rng, start, days, 1.0 - needs_later_share);
                (posted_at, Self::need(&mut rng, index, posted_at))
            })
            .collect();
        need_posts.sort_by_key(|(posted_at, _)| *posted_at);

        let pledge_count = ((needs as f64) * PLEDGES_PER_NEED).ceil() as usize;
        let mut pledges: Vec<(DateTime<Utc>, PledgeOffer)> = (0..pledge_count)
            .map(|index| {
                let posted_at = arrival(&mut rng, start, days, PRESENT_AT_START_SHARE);
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

/// What the switchboard's services did during the live run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Traffic {
    pub proposals: usize,
    /// Proposals that reached someone who had already vanished (or whose tenure was over).
    pub proposals_to_gone: usize,
    pub accepted: usize,
    pub declined: usize,
    pub expired: usize,
    pub checked_in: usize,
    pub released: usize,
    /// Releases by the reason the switchboard gave: where the churn comes from.
    pub released_because: BTreeMap<String, usize>,
    pub done: usize,
    /// Nudges ("still on it?") that reached a person, and how many they answered.
    pub nudges: usize,
    pub nudges_answered: usize,
    /// Answers the wire refused (an accept after the proposal expired, a done after a release).
    pub replies_refused: usize,
    pub requests_refused: usize,
    /// How late the simulated people's answers went out, in simulated hours
    /// (their due time against the clock when sent): the fast clock's cost.
    pub reply_late_hours_mean: f64,
    pub reply_late_hours_max: f64,
    /// How long the switchboard took to answer those replies (request to
    /// reply), in simulated hours: the services' own lag on the fast clock.
    pub reply_round_trip_hours_mean: f64,
    pub reply_round_trip_hours_max: f64,
}

/// Each policy's impact as a share of the hindsight optimum's.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Shares {
    pub switchboard: Option<f64>,
    pub self_selection: Option<f64>,
    pub naive_replanner: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub days: f64,
    pub speed: f64,
    /// Real seconds of the live run (the baselines' time is not included).
    pub real_seconds: f64,
    pub volunteers: usize,
    /// People who vanish without a word before their tenure ends.
    pub vanishing: usize,
    pub needs: usize,
    pub tasks_posted: usize,
    pub impact_posted: f64,
    pub switchboard: Outcome,
    pub self_selection: Outcome,
    pub naive_replanner: Outcome,
    pub hindsight: Outcome,
    pub share_of_hindsight: Shares,
    /// The switchboard's impact over self-selection's.
    pub switchboard_over_self_selection: Option<f64>,
    /// Proposals per person per week of the period (all people, all weeks).
    pub proposals_per_person_week: f64,
    /// Releases "the team could not be completed" over proposals.
    pub team_incomplete_release_share: f64,
    pub traffic: Traffic,
    pub naive_traffic: NaiveTraffic,
    pub naive_proposals_per_person_week: f64,
    pub hindsight_solve: HindsightSolve,
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
    pub rates: Rates,
    /// Share of needs posted after the period starts.
    pub needs_later_share: f64,
    pub naive: NaiveConfig,
    pub hindsight_budget: Duration,
    pub response_window_hours: i64,
    pub checkin_window_hours: i64,
    pub match_budget_ms: u64,
}

impl SimulationConfig {
    /// One configuration per seed of the command line; bad flags are named.
    pub fn from_args(args: &SimulateArgs) -> anyhow::Result<Vec<SimulationConfig>> {
        let rates = Rates {
            vanish_share: args.vanish_share,
            answer_share: args.answer_share,
            accept_share: args.accept_share,
            answer_delay_hours_max: args.answer_delay_hours_max,
        };
        rates.check()?;
        if !(0.0..=1.0).contains(&args.needs_later_share) {
            anyhow::bail!(
                "--needs-later-share must be between 0 and 1, not {}",
                args.needs_later_share
            );
        }
        if !(args.hindsight_budget_s.is_finite()
            && args.hindsight_budget_s > 0.0
            && args.hindsight_budget_s <= HINDSIGHT_BUDGET_S_MAX)
        {
            anyhow::bail!(
                "--hindsight-budget-s must be more than 0 and at most {HINDSIGHT_BUDGET_S_MAX}"
            );
        }
        for (flag, hours) in [
            ("--naive-replan-hours", args.naive_replan_hours),
            ("--naive-notice-hours", args.naive_notice_hours),
        ] {
            if !(hours.is_finite() && hours >= 1.0) {
                anyhow::bail!("{flag} must be at least 1 hour, not {hours}");
            }
        }
        if args.seeds.is_empty() {
            anyhow::bail!("--seeds needs at least one seed");
        }
        if args.volunteers == 0 {
            anyhow::bail!("--volunteers must be at least 1");
        }
        let needs = args
            .needs
            .unwrap_or_else(|| ((args.volunteers as f64) * NEEDS_PER_VOLUNTEER).ceil() as usize);
        let naive = NaiveConfig {
            replan_hours: args.naive_replan_hours,
            notice_hours: args.naive_notice_hours,
            response_window_hours: args.lifecycle.response_window_hours as f64,
            ..NaiveConfig::default()
        };
        Ok(args
            .seeds
            .iter()
            .map(|seed| SimulationConfig {
                nats: args.nats.clone(),
                prefix: args.prefix.clone(),
                data: args.data.clone(),
                start: args.now,
                days: args.days,
                speed: args.speed,
                volunteers: args.volunteers,
                needs,
                seed: *seed,
                rates,
                needs_later_share: args.needs_later_share,
                naive,
                hindsight_budget: Duration::from_secs_f64(args.hindsight_budget_s),
                response_window_hours: args.lifecycle.response_window_hours,
                checkin_window_hours: args.lifecycle.checkin_window_hours,
                match_budget_ms: args.match_budget_ms,
            })
            .collect())
    }
}

/// Several seeds' reports.
#[derive(Clone, Debug, Serialize)]
pub struct Reports {
    pub runs: Vec<Report>,
}

pub async fn run(args: SimulateArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let json = args.json;
    let configs = SimulationConfig::from_args(&args)?;
    let mut runs = Vec::new();
    for config in configs {
        if shutdown.is_cancelled() {
            break;
        }
        let report = simulate(config, shutdown.clone()).await?;
        if !json {
            print!("{}", render(&report));
            println!();
        }
        runs.push(report);
    }
    if !json && runs.len() > 1 {
        print!("{}", render_summary(&runs));
    }
    let reports = Reports { runs };
    if let Some(path) = &args.json_file {
        let text = serde_json::to_string_pretty(&reports)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(())
}

/// Runs the live switchboard on the population, then the baselines offline.
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
    let live = run_live(&config, &url, &data, shutdown).await;
    if let Some(local) = local {
        local.stop().await;
    }
    if let Some(temporary) = temporary {
        // Best effort: a leftover temporary directory harms nothing.
        let _ = std::fs::remove_dir_all(&temporary);
    }
    let (population, ledger, real_seconds) = live?;
    let config_for_baselines = config.clone();
    tokio::task::spawn_blocking(move || {
        report(&config_for_baselines, &population, ledger, real_seconds)
    })
    .await
    .context("the baselines panicked")?
}

/// The realised world of a population, before anyone has done anything.
struct Realised {
    world: World,
    board: Board,
    /// The tasks as an instance holds them (need and collective filled in).
    tasks: Vec<TaskSpec>,
    person_index: HashMap<String, usize>,
    job_index: HashMap<String, usize>,
}

fn realise(population: &Population, seed: u64, rates: &Rates) -> Realised {
    let people: Vec<Person> = population
        .volunteers
        .iter()
        .map(|offer| Person {
            id: offer.id.clone(),
            arrives: offer.available_from,
            tenure_ends: offer.available_until,
            vanishes: world::vanishing(
                seed,
                rates,
                &offer.id,
                offer.available_from,
                offer.available_until,
            ),
            hours_per_week: offer.hours_per_week,
        })
        .collect();
    let tasks: Vec<TaskSpec> = population
        .tasks()
        .map(|(_, need, task)| TaskSpec {
            need: Some(need.id.clone()),
            collective: Some(need.collective.clone()),
            ..task.clone()
        })
        .collect();
    let job_index: HashMap<String, usize> = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| (task.id.clone(), index))
        .collect();
    let person_index: HashMap<String, usize> = people
        .iter()
        .enumerate()
        .map(|(index, person)| (person.id.clone(), index))
        .collect();
    let jobs: Vec<Job> = tasks
        .iter()
        .map(|task| Job {
            id: task.id.clone(),
            hours: task.hours,
            slots: task.slots,
            starts: task.earliest_start,
            deadline: task.deadline.min(population.end),
            impact: task.impact,
            depends_on: task
                .depends_on
                .iter()
                .filter_map(|dependency| job_index.get(dependency).copied())
                .collect(),
            needs_money: task.money_cents > 0,
        })
        .collect();
    let eligible: Vec<Vec<usize>> = tasks
        .iter()
        .map(|task| {
            population
                .volunteers
                .iter()
                .enumerate()
                .filter(|(_, offer)| eligible(offer, task))
                .map(|(index, _)| index)
                .collect()
        })
        .collect();
    let board = Board {
        eligible,
        posted: population
            .tasks()
            .map(|(posted_at, _, _)| posted_at)
            .collect(),
        offered: population
            .volunteers
            .iter()
            .map(|offer| offer.available_from)
            .collect(),
    };
    Realised {
        world: World::new(people, jobs, seed, *rates, population.start, population.end),
        board,
        tasks,
        person_index,
        job_index,
    }
}

/// Scores the live run and runs the baselines on the same world.
fn report(
    config: &SimulationConfig,
    population: &Population,
    ledger: Ledger,
    real_seconds: f64,
) -> anyhow::Result<Report> {
    let realised = realise(population, config.seed, &config.rates);
    let switchboard = ledger.world.score("switchboard");
    let self_selection = self_select(population, &realised, config.seed).score("self-selection");
    let (naive_world, naive_traffic) = baselines::naive(
        realised.world.clone(),
        &realised.board,
        config.naive,
        population.end,
    );
    let naive_replanner = naive_world.score("naive re-planner");
    let pledges: Vec<PledgeOffer> = population
        .pledges
        .iter()
        .map(|(_, pledge)| pledge.clone())
        .collect();
    let (hindsight_world, hindsight_solve) = baselines::hindsight(
        realised.world.clone(),
        &population.volunteers,
        &realised.tasks,
        &pledges,
        config.hindsight_budget,
        config.seed,
    )?;
    let hindsight = hindsight_world.score("hindsight optimum");
    let share = |outcome: &Outcome| {
        (hindsight.impact_delivered > 0.0)
            .then(|| outcome.impact_delivered / hindsight.impact_delivered)
    };
    let person_weeks = population.volunteers.len() as f64 * config.days / 7.0;
    let per_person_week = |proposals: usize| {
        if person_weeks > 0.0 {
            proposals as f64 / person_weeks
        } else {
            0.0
        }
    };
    let traffic = ledger.traffic;
    let team_incomplete = traffic
        .released_because
        .get(TEAM_INCOMPLETE_REASON)
        .copied()
        .unwrap_or(0);
    Ok(Report {
        seed: config.seed,
        days: config.days,
        speed: config.speed,
        real_seconds,
        volunteers: population.volunteers.len(),
        vanishing: realised
            .world
            .people
            .iter()
            .filter(|person| person.vanishes.is_some_and(|at| at < person.tenure_ends))
            .count(),
        needs: population.needs.len(),
        tasks_posted: population.tasks().count(),
        impact_posted: population.tasks().map(|(_, _, task)| task.impact).sum(),
        share_of_hindsight: Shares {
            switchboard: share(&switchboard),
            self_selection: share(&self_selection),
            naive_replanner: share(&naive_replanner),
        },
        switchboard_over_self_selection: (self_selection.impact_delivered > 0.0)
            .then(|| switchboard.impact_delivered / self_selection.impact_delivered),
        proposals_per_person_week: per_person_week(traffic.proposals),
        team_incomplete_release_share: if traffic.proposals > 0 {
            team_incomplete as f64 / traffic.proposals as f64
        } else {
            0.0
        },
        naive_proposals_per_person_week: per_person_week(naive_traffic.proposals),
        switchboard,
        self_selection,
        naive_replanner,
        hindsight,
        traffic,
        naive_traffic,
        hindsight_solve,
    })
}

async fn run_live(
    config: &SimulationConfig,
    url: &str,
    data: &std::path::Path,
    shutdown: CancellationToken,
) -> anyhow::Result<(Population, Ledger, f64)> {
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
        config.needs_later_share,
    );
    let realised = realise(&population, config.seed, &config.rates);
    let index = Arc::new(Index {
        person: realised.person_index,
        job: realised.job_index,
        slots: population
            .tasks()
            .map(|(_, _, task)| (task.id.clone(), task.slots))
            .collect(),
    });
    let ledger = Arc::new(Mutex::new(Ledger {
        world: realised.world,
        traffic: Traffic::default(),
        bodies: HashMap::new(),
        checkins: HashMap::new(),
        done: BTreeMap::new(),
        completed: BTreeSet::new(),
        late_hours_sum: 0.0,
        late_count: 0,
        round_trip_hours_sum: 0.0,
        round_trip_count: 0,
    }));
    let began = Instant::now();
    let people = running.token().child_token();
    let (funded_sender, funded_receiver) = tokio::sync::mpsc::unbounded_channel();
    let mut clients: JoinSet<anyhow::Result<()>> = JoinSet::new();
    clients.spawn(play_people(
        client_context.clone(),
        index.clone(),
        ledger.clone(),
        funded_receiver,
        people.clone(),
    ));
    clients.spawn(post_population(
        client_context.clone(),
        population.clone(),
        ledger.clone(),
        people.clone(),
    ));
    clients.spawn(watch_funding(
        client_context.clone(),
        population.clone(),
        index.clone(),
        funded_sender,
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
    let mut ledger = lock(&ledger)?.clone();
    if ledger.late_count > 0 {
        ledger.traffic.reply_late_hours_mean = ledger.late_hours_sum / ledger.late_count as f64;
    }
    if ledger.round_trip_count > 0 {
        ledger.traffic.reply_round_trip_hours_mean =
            ledger.round_trip_hours_sum / ledger.round_trip_count as f64;
    }
    Ok((population, ledger, real_seconds))
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

/// Ids to the world's indexes.
struct Index {
    person: HashMap<String, usize>,
    job: HashMap<String, usize>,
    slots: HashMap<String, u8>,
}

/// Everything the live run saw, and the world its people live in.
#[derive(Clone, Debug)]
struct Ledger {
    world: World,
    traffic: Traffic,
    /// The latest proposal to each (person, job): the exact bodies to answer with.
    bodies: HashMap<(usize, usize), VolunteerMessage>,
    /// The check-in body of the latest reminder to each (person, job).
    checkins: HashMap<(usize, usize), VolunteerReply>,
    /// Volunteers the match stream says reported each task done (for the collectives).
    done: BTreeMap<String, BTreeSet<String>>,
    /// Tasks the collectives marked complete (accepted by ingest).
    completed: BTreeSet<String>,
    late_hours_sum: f64,
    late_count: usize,
    round_trip_hours_sum: f64,
    round_trip_count: usize,
}

impl Ledger {
    /// The body a person sends for what they said, from the messages they received.
    fn body(&self, said: &Said) -> Option<VolunteerReply> {
        let message = self.bodies.get(&(said.person, said.job))?;
        let with = |action: ReplyAction| VolunteerReply {
            action,
            ..message.accept.clone()
        };
        Some(match said.action {
            Action::Accept => message.accept.clone(),
            Action::Decline => message.decline.clone(),
            Action::Checkin => self
                .checkins
                .get(&(said.person, said.job))
                .cloned()
                .unwrap_or_else(|| with(ReplyAction::Checkin)),
            Action::Done => with(ReplyAction::Done),
        })
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

/// Collectives look at the plan now and then: the money of a task is there
/// once the plan funds it in full (told to the people's loop), and a
/// money-only task so funded is marked done.
async fn watch_funding(
    context: plumbing::Context,
    population: Population,
    index: Arc<Index>,
    funded_sender: tokio::sync::mpsc::UnboundedSender<(usize, DateTime<Utc>)>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let needing_money: Vec<&TaskSpec> = population
        .tasks()
        .map(|(_, _, task)| task)
        .filter(|task| task.money_cents > 0)
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
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
        for task in &needing_money {
            let due = task.earliest_start <= now
                && funded.get(task.id.as_str()).copied().unwrap_or(0) >= task.money_cents;
            if !due || seen.contains(&task.id) {
                continue;
            }
            if task.slots == 0 {
                let completion = TaskCompletion {
                    task: task.id.clone(),
                };
                if !send(&context, Input::Complete, &completion).await? {
                    continue;
                }
            }
            seen.insert(task.id.clone());
            if let Some(job) = index.job.get(&task.id) {
                // The loop has stopped when the period is over: nothing left to tell.
                let _ = funded_sender.send((*job, now));
            }
        }
    }
}

/// The people: what reaches them (proposals, nudges, releases) goes into
/// the world; what the world says they answer goes onto the wire when it
/// is due; collectives mark a task complete once its whole team reported done.
async fn play_people(
    context: plumbing::Context,
    index: Arc<Index>,
    ledger: Arc<Mutex<Ledger>>,
    mut funded: tokio::sync::mpsc::UnboundedReceiver<(usize, DateTime<Utc>)>,
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
    let tick_real = Duration::from_secs_f64(
        context
            .clock
            .real_delay_until(after_hours(context.clock.now(), TICK_HOURS))
            .as_secs_f64()
            .max(0.001),
    );
    let mut ticker = tokio::time::interval(tick_real);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seen_messages: HashSet<String> = HashSet::new();
    let mut replies: JoinSet<anyhow::Result<(Said, bool, f64)>> = JoinSet::new();
    loop {
        // Time moves first, so whatever arrives lands after the work done until now.
        let mut spoken: Vec<(Said, VolunteerReply)> = Vec::new();
        tokio::select! {
            () = stop.cancelled() => break,
            Some(finished) = replies.join_next(), if !replies.is_empty() => {
                let (said, ok, round_trip) = finished.context("a simulated reply panicked")??;
                let mut ledger = lock(&ledger)?;
                ledger.round_trip_hours_sum += round_trip;
                ledger.round_trip_count += 1;
                ledger.traffic.reply_round_trip_hours_max = ledger.traffic.reply_round_trip_hours_max.max(round_trip);
                if !ok {
                    ledger.traffic.replies_refused += 1;
                }
                match (said.action, ok) {
                    (Action::Accept, true) => ledger.world.assign(said.person, said.job),
                    (Action::Done, false) => ledger.world.done_refused(said.person, said.job),
                    (Action::Checkin, true) => ledger.traffic.nudges_answered += 1,
                    _ => {}
                }
            }
            _ = ticker.tick() => {
                speak(&context, &ledger, &mut spoken)?;
            }
            Some((job, at)) = funded.recv() => {
                lock(&ledger)?.world.funded(job, at);
            }
            message = inbox.next() => {
                let Some(message) = message else { break };
                let Ok(received) = serde_json::from_slice::<VolunteerMessage>(&message.payload) else {
                    continue;
                };
                if !seen_messages.insert(received.message_id.clone()) {
                    continue;
                }
                let (Some(person), Some(job)) = (index.person.get(&received.volunteer).copied(), index.job.get(&received.task).copied()) else {
                    continue;
                };
                speak(&context, &ledger, &mut spoken)?;
                let now = context.clock.now();
                let mut ledger = lock(&ledger)?;
                match received.kind.as_str() {
                    "proposal" => {
                        if !ledger.world.people[person].present(now) {
                            ledger.traffic.proposals_to_gone += 1;
                        }
                        ledger.bodies.insert((person, job), received);
                        ledger.world.propose(now, person, job);
                    }
                    "reminder" => {
                        ledger.traffic.nudges += 1;
                        if let Some(checkin) = received.checkin {
                            ledger.checkins.insert((person, job), checkin);
                        }
                        ledger.world.nudge(now, person, job);
                    }
                    // Releases are read from the match stream, which names the round.
                    _ => {}
                }
            }
            message = matches.next() => {
                let Some(message) = message else { break };
                let Some(kind) = context.subjects.parse_match(&message.subject) else { continue };
                // Proposals carry more, but every match event has the pair and the round.
                let Ok(changed) = serde_json::from_slice::<MatchChanged>(&message.payload) else {
                    continue;
                };
                speak(&context, &ledger, &mut spoken)?;
                let now = context.clock.now();
                let complete_now = {
                    let mut ledger = lock(&ledger)?;
                    let traffic = &mut ledger.traffic;
                    match kind {
                        MatchKind::Proposed => traffic.proposals += 1,
                        MatchKind::Accepted => traffic.accepted += 1,
                        MatchKind::Declined => traffic.declined += 1,
                        MatchKind::Expired => traffic.expired += 1,
                        MatchKind::CheckedIn => traffic.checked_in += 1,
                        MatchKind::Released => traffic.released += 1,
                        MatchKind::Completed => traffic.done += 1,
                    }
                    if kind == MatchKind::Released {
                        let reason = changed.reason.clone().unwrap_or_else(|| "none given".to_owned());
                        *traffic.released_because.entry(reason).or_insert(0) += 1;
                        if let (Some(person), Some(job)) = (index.person.get(&changed.volunteer), index.job.get(&changed.task)) {
                            ledger.world.release(now, *person, *job);
                        }
                    }
                    if kind == MatchKind::Completed {
                        let done = ledger.done.entry(changed.task.clone()).or_default();
                        done.insert(changed.volunteer.clone());
                        let team = usize::from(index.slots.get(&changed.task).copied().unwrap_or(u8::MAX));
                        done.len() >= team && !ledger.completed.contains(&changed.task)
                    } else {
                        false
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
        for (said, body) in spoken {
            let context = context.clone();
            replies.spawn(async move {
                let sent = context.clock.now();
                let ok = send(&context, Input::Reply, &body).await?;
                Ok((said, ok, hours_between(sent, context.clock.now())))
            });
        }
    }
    replies.abort_all();
    Ok(())
}

/// Moves the world to the switchboard's clock and collects what people say by then.
fn speak(
    context: &plumbing::Context,
    ledger: &Mutex<Ledger>,
    spoken: &mut Vec<(Said, VolunteerReply)>,
) -> anyhow::Result<()> {
    let now = context.clock.now();
    let mut ledger = lock(ledger)?;
    for said in ledger.world.advance(now) {
        let Some(body) = ledger.body(&said) else {
            continue;
        };
        let late = hours_between(said.at, now).max(0.0);
        ledger.late_hours_sum += late;
        ledger.late_count += 1;
        ledger.traffic.reply_late_hours_max = ledger.traffic.reply_late_hours_max.max(late);
        spoken.push((said, body));
    }
    Ok(())
}

/// Self-selection on the same world: people browse the open tasks when
/// they arrive and then weekly while present, and sign up for the most
/// impactful of the handful they happen to see that they fit; then they
/// work as everyone works. Nobody is asked, nobody backfills; money goes
/// first come, first served.
fn self_select(population: &Population, realised: &Realised, seed: u64) -> World {
    let mut world = realised.world.clone();
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(0x5e1f));
    let tasks: Vec<(DateTime<Utc>, &NeedPost, &TaskSpec)> = population.tasks().collect();
    for task in fund_first_come(population) {
        if let Some(job) = realised.job_index.get(task) {
            let opens = world.jobs[*job].starts;
            world.funded(*job, opens);
        }
    }

    // Browsing visits in time order: arrival, then every week while they are there.
    let mut visits: Vec<(DateTime<Utc>, usize)> = Vec::new();
    for (index, offer) in population.volunteers.iter().enumerate() {
        let mut at = offer.available_from;
        while world.people[index].present(at) && at < population.end {
            visits.push((at, index));
            at = after_hours(at, BROWSE_INTERVAL_DAYS * 24.0);
        }
    }
    visits.sort();

    let mut rosters: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    let mut hours_signed: Vec<f64> = vec![0.0; population.volunteers.len()];
    for (at, person) in visits {
        let offer = &population.volunteers[person];
        let weeks_left = hours_between(at, offer.available_until) / 168.0;
        let capacity = offer.hours_per_week * weeks_left.max(0.0);
        let visible: Vec<usize> = tasks
            .iter()
            .enumerate()
            .filter(|(index, (posted_at, _, task))| {
                *posted_at <= at
                    && task.slots > 0
                    && rosters[*index].len() < usize::from(task.slots)
                    && !rosters[*index].contains(&person)
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
            rosters[index].push(person);
            hours_signed[person] += task.hours;
            signups += 1;
            // They start from the moment they sign up.
            let _ = world.advance(at);
            world.assign(person, index);
        }
    }
    let _ = world.advance(population.end);
    world
}

/// Skills, place and trust: whether a person may do a task at all.
fn eligible(offer: &VolunteerOffer, task: &TaskSpec) -> bool {
    let skilled = task
        .skills
        .iter()
        .all(|(skill, level)| offer.skills.get(skill).is_some_and(|held| *held >= *level));
    let placed = task.region.is_none() || task.region == offer.region;
    skilled && placed && offer.trust >= task.sensitivity
}

/// Can this person do this task, seen at `at`: eligible, with time
/// between now and both the deadline and the end of their tenure.
fn fits(offer: &VolunteerOffer, task: &TaskSpec, at: DateTime<Utc>) -> bool {
    let window_ends = task.deadline.min(offer.available_until);
    let window_starts = task.earliest_start.max(at);
    let hours_in_window = hours_between(window_starts, window_ends);
    eligible(offer, task) && hours_in_window >= task.hours
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

fn share_text(share: Option<f64>) -> String {
    share.map_or_else(|| "-".to_owned(), |share| format!("{:.0}%", share * 100.0))
}

fn hours_text(hours: Option<f64>) -> String {
    hours.map_or_else(|| "never".to_owned(), |hours| format!("{hours:.0} h"))
}

/// The report as a table people can read.
pub fn render(report: &Report) -> String {
    let outcomes = [
        &report.switchboard,
        &report.self_selection,
        &report.naive_replanner,
        &report.hindsight,
    ];
    let shares = [
        report.share_of_hindsight.switchboard,
        report.share_of_hindsight.self_selection,
        report.share_of_hindsight.naive_replanner,
        Some(1.0),
    ];
    let mut text = format!(
        "simulated {} days at {}x in {:.0} s (seed {}): {} volunteers ({} vanish), {} needs, {} tasks, impact posted {:.1}\n\n",
        report.days,
        report.speed,
        report.real_seconds,
        report.seed,
        report.volunteers,
        report.vanishing,
        report.needs,
        report.tasks_posted,
        report.impact_posted
    );
    text.push_str(&format!(
        "{:<33} {:>12} {:>15} {:>12} {:>10}\n",
        "", "switchboard", "self-selection", "naive", "hindsight"
    ));
    let mut row = |label: &str, cells: Vec<String>| {
        text.push_str(&format!(
            "{:<33} {:>12} {:>15} {:>12} {:>10}\n",
            label, cells[0], cells[1], cells[2], cells[3]
        ));
    };
    let each = |cell: &dyn Fn(&Outcome) -> String| outcomes.iter().map(|o| cell(o)).collect();
    row("tasks completed", each(&|o| o.tasks_completed.to_string()));
    row(
        "impact delivered",
        each(&|o| format!("{:.1}", o.impact_delivered)),
    );
    row(
        "  share of hindsight",
        shares.iter().map(|share| share_text(*share)).collect(),
    );
    row("hours worked", each(&|o| format!("{:.1}", o.hours_worked)));
    row(
        "  wasted (task never completed)",
        each(&|o| format!("{:.1} {}", o.hours_wasted, share_text(Some(o.wasted_share)))),
    );
    for cause in world::WASTE_CAUSES {
        row(
            &format!("   {cause}"),
            each(&|o| format!("{:.1}", o.wasted_because.get(cause).copied().unwrap_or(0.0))),
        );
    }
    row(
        "people who got work",
        each(&|o| o.people_with_work.to_string()),
    );
    row(
        "work held when people vanished",
        each(&|o| o.release_after_vanish.held_when_vanished.to_string()),
    );
    // Nothing held, nothing to release: no figure rather than "never".
    let lag = |cell: &dyn Fn(&world::ReleaseLag) -> String| -> Vec<String> {
        outcomes
            .iter()
            .map(|o| {
                if o.release_after_vanish.held_when_vanished == 0 {
                    "-".to_owned()
                } else {
                    cell(&o.release_after_vanish)
                }
            })
            .collect()
    };
    row(
        "  released, median after",
        lag(&|lag| hours_text(lag.median_hours)),
    );
    row(
        "  released, p90 after",
        lag(&|lag| hours_text(lag.p90_hours)),
    );
    row(
        "  released within 48 h",
        lag(&|lag| share_text(Some(lag.within_48h_share))),
    );
    let traffic = &report.traffic;
    text.push_str(&format!(
        "\nswitchboard: {:.2} proposals per person per week, {} of proposals released \"{}\", {} over self-selection\n",
        report.proposals_per_person_week,
        share_text(Some(report.team_incomplete_release_share)),
        TEAM_INCOMPLETE_REASON,
        report
            .switchboard_over_self_selection
            .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}x")),
    ));
    text.push_str(&format!(
        "switchboard traffic: {} proposed ({} to people already gone), {} accepted, {} declined, {} expired, {} checked in, {} released, {} done, {} nudges ({} answered), {} replies refused, {} requests refused\n",
        traffic.proposals,
        traffic.proposals_to_gone,
        traffic.accepted,
        traffic.declined,
        traffic.expired,
        traffic.checked_in,
        traffic.released,
        traffic.done,
        traffic.nudges,
        traffic.nudges_answered,
        traffic.replies_refused,
        traffic.requests_refused
    ));
    for (reason, count) in &traffic.released_because {
        text.push_str(&format!("  released {count:>5}: {reason}\n"));
    }
    text.push_str(&format!(
        "people's answers went out {:.2} simulated hours late on average, {:.2} at most; the switchboard answered them in {:.2} simulated hours on average, {:.2} at most\n",
        traffic.reply_late_hours_mean,
        traffic.reply_late_hours_max,
        traffic.reply_round_trip_hours_mean,
        traffic.reply_round_trip_hours_max
    ));
    let naive = &report.naive_traffic;
    text.push_str(&format!(
        "naive re-planner: {} proposed ({:.2} per person per week, {} to people already gone), {} accepted, {} people taken for gone ({} of them still there), {} assignments released as gone\n",
        naive.proposals,
        report.naive_proposals_per_person_week,
        naive.proposals_to_vanished,
        naive.accepted,
        naive.noticed_gone,
        naive.noticed_gone_while_present,
        naive.released_as_gone
    ));
    let solve = &report.hindsight_solve;
    text.push_str(&format!(
        "hindsight: {} people, {} tasks, objective {:.1}, bound {}, {}, {} ms\n",
        solve.people,
        solve.tasks,
        solve.objective,
        solve
            .upper_bound
            .map_or_else(|| "unknown".to_owned(), |bound| format!("{bound:.1}")),
        solve.method,
        solve.elapsed_ms
    ));
    text
}

/// One line per seed, for several seeds.
pub fn render_summary(runs: &[Report]) -> String {
    let mut text = format!(
        "{:>6} {:>12} {:>10} {:>8} {:>10} {:>10} {:>14} {:>10}\n",
        "seed",
        "switchboard",
        "self-sel.",
        "naive",
        "hindsight",
        "wasted",
        "prop/pers/wk",
        "in 48 h"
    );
    for run in runs {
        text.push_str(&format!(
            "{:>6} {:>12} {:>10} {:>8} {:>10.1} {:>10} {:>14.2} {:>10}\n",
            run.seed,
            share_text(run.share_of_hindsight.switchboard),
            share_text(run.share_of_hindsight.self_selection),
            share_text(run.share_of_hindsight.naive_replanner),
            run.hindsight.impact_delivered,
            share_text(Some(run.switchboard.wasted_share)),
            run.proposals_per_person_week,
            share_text(Some(run.switchboard.release_after_vanish.within_48h_share)),
        ));
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
            rates: Rates::default(),
            needs_later_share: 0.5,
            naive: NaiveConfig::default(),
            hindsight_budget: Duration::from_secs(2),
            response_window_hours: solver::RESPONSE_WINDOW_HOURS_MAX,
            checkin_window_hours: dispatch::CHECKIN_WINDOW_HOURS_DEFAULT,
            match_budget_ms: solver::MATCH_BUDGET_MS_DEFAULT,
        }
    }

    fn consistent(outcome: &Outcome) {
        assert!(
            outcome.hours_wasted <= outcome.hours_worked + 1e-6,
            "{outcome:?}: more wasted than worked"
        );
        let by_day: f64 = outcome.impact_by_day.iter().sum();
        assert!(
            (by_day - outcome.impact_delivered).abs() < 1e-6,
            "{outcome:?}: the timeline does not add up"
        );
    }

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn self_selection_on_a_drawn_population_adds_up() {
        let population = Population::draw(7, start(), 21.0, 200, 80, 0.5);
        let realised = realise(&population, 7, &Rates::default());
        let outcome = self_select(&population, &realised, 7).score("self-selection");
        consistent(&outcome);
        assert!(outcome.hours_worked > 0.0);
        assert!(outcome.tasks_completed > 0);
        assert_eq!(
            outcome,
            self_select(&population, &realised, 7).score("self-selection"),
            "the policy is deterministic"
        );
    }

    #[test]
    fn the_baselines_on_a_drawn_population_add_up_and_hindsight_leads() {
        let population = Population::draw(7, start(), 21.0, 150, 60, 0.5);
        let realised = realise(&population, 7, &Rates::default());
        let (naive_world, traffic) = baselines::naive(
            realised.world.clone(),
            &realised.board,
            NaiveConfig::default(),
            population.end,
        );
        let naive = naive_world.score("naive");
        consistent(&naive);
        assert!(
            traffic.proposals > 0 && naive.tasks_completed > 0,
            "{traffic:?} {naive:?}"
        );
        let pledges: Vec<PledgeOffer> = population.pledges.iter().map(|(_, p)| p.clone()).collect();
        let (hindsight_world, solve) = baselines::hindsight(
            realised.world.clone(),
            &population.volunteers,
            &realised.tasks,
            &pledges,
            Duration::from_secs(5),
            7,
        )
        .unwrap();
        let hindsight = hindsight_world.score("hindsight");
        consistent(&hindsight);
        assert!(solve.objective > 0.0);
        assert!(
            hindsight.impact_delivered >= naive.impact_delivered,
            "hindsight {hindsight:?} below naive {naive:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_fast_days_through_the_real_services_give_a_consistent_report() {
        let report = simulate(small(2.0), CancellationToken::new())
            .await
            .unwrap();
        consistent(&report.switchboard);
        consistent(&report.self_selection);
        consistent(&report.naive_replanner);
        consistent(&report.hindsight);
        assert!(report.traffic.proposals > 0, "{report:?}");
        assert!(report.switchboard.hours_worked > 0.0, "{report:?}");
        assert!(render(&report).contains("impact delivered"));
    }
}
