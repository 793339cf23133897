//! The solver service: holds the open world and decides who does what.
//!
//! It follows `SB_EVENTS` (offers, needs, pledges, withdrawals, completions)
//! and `SB_MATCHES` (what was proposed, accepted, declined...) and plans in
//! two tiers, both with the pure matching core (`solver-core`):
//!
//! - Tier 1, on the event path: after a burst of changes, the core's greedy
//!   alone (milliseconds) repairs the plan around what is pinned and kept, so
//!   a new volunteer or need is matched at once.
//! - Tier 2, off the event path: every few seconds, if the world changed,
//!   the full optimiser (exact HiGHS models for small parts, neighbourhood
//!   search for big ones) runs on a blocking thread with its own deadline.
//!   Its plan is adopted only if nothing changed meanwhile and it is better
//!   by a margin, so the published plan does not flap between near-equals;
//!   moving a proposal someone is looking at costs [`PROPOSAL_MOVE_COST`].
//!
//! The difference between the adopted plan and what is live becomes new
//! proposals on `sb.match.proposed` and releases on `sb.match.released`. It
//! answers `sb.plan.get` with the current plan.
//!
//! Money held for a task in `SB_LEDGER` is committed: the pledge offers the
//! solver only its available part, the task asks only for what is not yet
//! held, and the plan shows the held funding of every task it keeps.
//!
//! Several instances can share the work (ADR 0004): each plans one shard
//! of the world ([`shard`]), and with leases on ([`lease`]) exactly one
//! instance per shard is active while the others stand by. An active
//! instance's every write to `SB_MATCHES` is then conditional on the stream
//! not having moved past what it has read, so an instance that lost its
//! lease without knowing it cannot promise anyone twice.
//!
//! A tier-1 run happens in the span `solver.match` with the trace of the
//! latest change it matches (its `traceparent`), which its proposals carry
//! on; metrics are `switchboard_solver_*` (docs/instrumentation.md).
//!
//! Consumes: `SB_EVENTS`, `SB_MATCHES`, `SB_LEDGER`, `sb.plan.get`, the
//! lease bucket `SB_SOLVER_LEASES` (with leases on).
//! Produces: `sb.match.proposed`, `sb.match.released` in `SB_MATCHES`.

mod difference;
pub mod lease;
pub mod progress;
pub mod scope;
pub mod shard;
mod snapshot;
pub mod world;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::service::{Request, ServiceExt};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use proto::domain::World;
use proto::events::{Event, MatchEvent};
use proto::instance::Plan;
use proto::subjects::QUEUE_GROUP_SOLVER;
use solver_core::{Problem, SolveOptions, SolveReport};
use tokio_util::sync::CancellationToken;

use difference::Difference;
use lease::{LeaseConfig, LeaseKeeper};
use plumbing::follow::{Follower, Stored};
use plumbing::publish::{Expect, PublishError};
use plumbing::store::{Changes, Store};
use plumbing::trace::{self, TraceParent};
use plumbing::{publish, reply, streams, Context};
use scope::{Scope, Touched};
use shard::Sharding;
use world::{pair_key, OpenWorld, Record, Standing};
pub use world::{Priorities, TrustSource};

/// Longest wait after the first unmatched change before matching, so a
/// burst is matched once. Matching starts at once when the change was the
/// last in its stream as it was read (nothing more is coming yet); the wait
/// is for a burst still arriving, and runs from the first change, not the
/// last: under a steady stream of events there is never a quiet moment,
/// and matching must not wait for one. Short, because a scoped run costs
/// about a millisecond and every millisecond here is one a volunteer waits.
pub const MATCH_DEBOUNCE_MS: u64 = 2;
/// Above this many open tasks one instance no longer plans the whole world
/// in one run: tier 1's periodic and starting runs plan it in parts
/// (`Solver::plan_in_parts`, over several steps, events read in between),
/// and tier 2 does not run. At 100,000 tasks a run over everything held
/// 1.5 GiB (tier 2) and took seconds; a world this big is meant to be
/// sharded (`--shard`, ADR 0004), each shard planned whole.
pub const WHOLE_WORLD_TASKS_MAX: usize = 20_000;
/// A step planning a burst in parts (`Solver::plan_in_parts`) plans
/// parts for about this long, then reads what arrived meanwhile.
pub const TIER1_PARTS_BUDGET_MS: u64 = 25;
/// Matching runs at least this often, because time passing changes the world.
pub const MATCH_INTERVAL_MS: u64 = 30_000;
/// Tier 1 plans the whole world at least this often; in between it plans
/// only what changes touched (`scope`).
pub const FULL_RUN_INTERVAL_MS: u64 = 300_000;
/// Work whose deadline or volunteer's time has passed is looked for once
/// the clock has moved this far (clock time, so simulated runs keep up).
pub const TIME_SCAN_MINUTES: i64 = 10;
/// Budget of one tier-2 optimisation, off the event path.
pub const MATCH_BUDGET_MS_DEFAULT: u64 = 2_000;
/// How often tier 2 looks for a better plan when the world changed.
pub const IMPROVE_INTERVAL_MS: u64 = 5_000;
/// Budget of one tier-1 step: the greedy alone, on the event path.
pub const TIER1_BUDGET_MS: u64 = 100;
/// A team that cannot be completed is kept together (its members' time
/// booked, a replacement sought) until this long before its deadline; then
/// it is released so its members can do something that will happen.
pub const HOLD_HOURS_BEFORE_DEADLINE_MIN: i64 = 24;
/// A starter task, for newcomers and volunteers whose record is shaky: short
/// and open to everyone (sensitivity 0).
pub const STARTER_TASK_HOURS_MAX: f64 = 4.0;
/// Below this estimated reliability a volunteer is offered starter tasks first.
pub const RELIABILITY_MIN: f64 = 0.5;
/// Tier 2's plan replaces the current one only if better by this share, so
/// near-equal plans do not take turns.
pub const IMPROVEMENT_SHARE_MIN: f64 = 0.002;
/// Hours a volunteer has to answer a proposal, at most (by default)...
pub const RESPONSE_WINDOW_HOURS_MAX: i64 = 24;
/// ...and at least, however near the deadline.
pub const RESPONSE_WINDOW_HOURS_MIN: i64 = 1;
/// Impact given up to move a proposal someone is already looking at.
pub const PROPOSAL_MOVE_COST: f64 = 50.0;

const _: () = assert!(RESPONSE_WINDOW_HOURS_MIN <= RESPONSE_WINDOW_HOURS_MAX);

#[derive(Clone, Debug)]
pub struct SolverConfig {
    pub state_directory: Option<PathBuf>,
    /// Wall-clock budget of one tier-2 optimisation.
    pub match_budget: Duration,
    /// Longest time a volunteer has to answer a proposal (less near the deadline).
    pub response_window: chrono::Duration,
    /// Offer newcomers and unreliable volunteers short, open starter tasks
    /// before long or sensitive ones. Off when planning must score exactly
    /// the canonical objective (it knows nothing of records).
    pub starter_policy: bool,
    /// Where volunteers' trust tiers come from: their own offers, or only
    /// vetters (`sb.in.vet`). Vetted wherever volunteers reach NATS themselves.
    pub trust_source: TrustSource,
    /// Urgency and equity beyond the canonical objective; `CANONICAL` to
    /// score exactly `problem.md`'s objective.
    pub priorities: Priorities,
    /// Book work not yet under way from when its answer is expected (the
    /// median of recent answer times). Off where a frozen instance is
    /// scored: problem.md's people give time from `now`.
    pub answer_delay: bool,
    /// The part of the world this instance plans: all of it by default.
    pub sharding: Sharding,
    /// Compete for the shard's lease and publish only while holding it
    /// (with every write conditional); `None`: always active, as when one
    /// solver runs alone.
    pub lease: Option<LeaseConfig>,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            state_directory: None,
            match_budget: Duration::from_millis(MATCH_BUDGET_MS_DEFAULT),
            response_window: chrono::Duration::hours(RESPONSE_WINDOW_HOURS_MAX),
            starter_policy: true,
            trust_source: TrustSource::default(),
            priorities: Priorities::default(),
            answer_delay: true,
            sharding: Sharding::whole(),
            lease: None,
        }
    }
}

enum Next {
    Event(Stored),
    Match(Stored),
    Money(Stored),
    PlanRequest(Box<Request>),
    MatchDue,
    ImproveDue,
    /// Boxed: an improvement is far larger than the other variants.
    Improved(Option<Box<Improvement>>),
    LeaseChanged,
    Shutdown,
}

/// A problem ready to solve: its options, and the pairs that wait for
/// starter work to be given out first.
type Prepared = (Problem, SolveOptions, Vec<(usize, usize)>);

/// A tier-2 plan, with the world generation it was computed for.
struct Improvement {
    generation: u64,
    now: DateTime<Utc>,
    problem: Problem,
    report: SolveReport,
}

/// Solves in two steps when some pairs wait for starter work: first without
/// them (the greedy: starter tasks go to newcomers), then with everyone,
/// keeping the first plan at the cost of moving a proposal. Long or
/// sensitive work still goes to a newcomer when nobody else can do it.
fn solve_with_starters(
    problem: &Problem,
    options: &SolveOptions,
    restricted: &[(usize, usize)],
) -> SolveReport {
    if restricted.is_empty() {
        return solver_core::solve(problem, options);
    }
    let mut starters_first = problem.clone();
    starters_first.forbid(restricted);
    let first = solver_core::solve(
        &starters_first,
        &SolveOptions {
            greedy_only: true,
            time_limit: Duration::from_millis(TIER1_BUDGET_MS),
            ..options.clone()
        },
    );
    let mut keep = options.keep.clone();
    keep.extend(first.solution.assignments.iter().copied());
    solver_core::solve(
        problem,
        &SolveOptions {
            keep,
            ..options.clone()
        },
    )
}

async fn lease_changed(lease: &mut Option<LeaseKeeper>) {
    match lease {
        Some(lease) => lease.changed().await,
        None => std::future::pending().await,
    }
}

async fn wait_for_improvement(
    pending: &mut Option<tokio::sync::oneshot::Receiver<Improvement>>,
) -> Option<Box<Improvement>> {
    match pending {
        Some(receiver) => receiver.await.ok().map(Box::new),
        None => std::future::pending().await,
    }
}

struct Solver {
    context: Context,
    config: SolverConfig,
    store: Store,
    world: OpenWorld,
    plan: Plan,
    /// Objective of the adopted plan, for tier 2 to beat.
    plan_objective: f64,
    dirty: bool,
    /// Counts changes to the world; a tier-2 plan for an older generation is stale.
    generation: u64,
    /// The generation tier 2 last started on.
    improved_generation: u64,
    /// Tasks whose team is kept together while a replacement is sought
    /// (`OpenWorld::snapshot`), as the last tier-1 run decided.
    held: HashSet<String>,
    /// The shard's lease, when instances compete for it.
    lease: Option<LeaseKeeper>,
    /// Whether the lease was held at the last look, to notice taking over.
    was_active: bool,
    /// The newest `SB_MATCHES` sequence this instance has read or written:
    /// with leases on, every write expects the stream to end there.
    matches_position: u64,
    /// A conditional write found the stream moved on: read to its end
    /// before planning again.
    behind: bool,
    /// The trace of the latest change not yet matched: tier 1's proposals carry it.
    pending_trace: Option<TraceParent>,
    /// When the oldest change not yet matched was stored in its stream.
    pending_since: Option<std::time::SystemTime>,
    /// The latest change was the last of its stream when read: match now.
    burst_over: bool,
    /// What changed since the last tier-1 run.
    touched: Touched,
    /// When tier 1 last ran.
    last_match: Instant,
    /// Parts of a burst or sweep not planned yet, the next on top
    /// (`plan_in_parts`).
    parts: Vec<Touched>,
    /// When tier 1 last planned the whole world.
    last_full_run: Option<Instant>,
    /// The clock when tier 1 last looked for work whose time has passed.
    last_time_scan: Option<DateTime<Utc>>,
    /// The world generation at the last tier-2 tick: tier 2 starts only
    /// once the world has stood still for a tick (under a steady stream
    /// its plan would be stale before it is done).
    generation_at_tick: u64,
    /// Impact of each task the plan completes; `plan_objective` is their sum.
    planned_impact: HashMap<String, f64>,
    /// What the plan (not the ledger) spends, task -> pledge -> cents...
    spend_of_task: HashMap<String, BTreeMap<String, u64>>,
    /// ...and pledge -> task -> cents.
    spend_of_pledge: HashMap<String, BTreeMap<String, u64>>,
    metrics: SolverMetrics,
}

/// Handles made once at start.
struct SolverMetrics {
    proposals: metrics::Counter,
    releases: metrics::Counter,
    tier1_duration: metrics::Histogram,
    tier2_duration: metrics::Histogram,
    /// From a change's store in its stream to the tier-1 run answering it written.
    reaction: metrics::Histogram,
    gap: metrics::Gauge,
    objective: metrics::Gauge,
    open_tasks: metrics::Gauge,
    volunteers: metrics::Gauge,
}

impl SolverMetrics {
    fn new() -> SolverMetrics {
        SolverMetrics {
            proposals: metrics::counter!("switchboard_solver_proposals_total"),
            releases: metrics::counter!("switchboard_solver_releases_total"),
            tier1_duration: metrics::histogram!("switchboard_solver_match_duration_seconds", "tier" => "1"),
            tier2_duration: metrics::histogram!("switchboard_solver_match_duration_seconds", "tier" => "2"),
            reaction: metrics::histogram!("switchboard_solver_reaction_seconds"),
            gap: metrics::gauge!("switchboard_solver_gap_ratio"),
            objective: metrics::gauge!("switchboard_solver_objective_impact"),
            open_tasks: metrics::gauge!("switchboard_solver_open_tasks"),
            volunteers: metrics::gauge!("switchboard_solver_volunteers"),
        }
    }
}

pub async fn run(
    context: Context,
    config: SolverConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    let store = Store::open_or_memory(config.state_directory.as_deref())?;
    let mut world = OpenWorld::load(&store)?;
    world.trust_source = config.trust_source;
    world.priorities = config.priorities;
    let lease = match &config.lease {
        Some(lease_config) => {
            Some(LeaseKeeper::start(&context, &config.sharding, lease_config).await?)
        }
        None => None,
    };
    let mut solver = Solver {
        context,
        config,
        store,
        world,
        plan: Plan::empty(),
        plan_objective: 0.0,
        dirty: true,
        generation: 0,
        improved_generation: 0,
        held: HashSet::new(),
        lease,
        was_active: false,
        matches_position: 0,
        behind: true,
        pending_trace: None,
        pending_since: None,
        burst_over: false,
        touched: Touched {
            everything: true,
            ..Touched::default()
        },
        parts: Vec::new(),
        last_match: Instant::now(),
        last_full_run: None,
        last_time_scan: None,
        generation_at_tick: 0,
        planned_impact: HashMap::new(),
        spend_of_task: HashMap::new(),
        spend_of_pledge: HashMap::new(),
        metrics: SolverMetrics::new(),
    };
    // Both logs are applied in full before the first matching run, so a
    // restarted solver knows every proposal it made and repeats none.
    let events_stream = solver.context.subjects.events_stream();
    let matches_stream = solver.context.subjects.matches_stream();
    let mut events = solver.catch_up(&events_stream).await?;
    let mut matches = solver.catch_up(&matches_stream).await?;
    let mut money = solver
        .catch_up(&solver.context.subjects.ledger_stream())
        .await?;

    let service = solver
        .context
        .client
        .service_builder()
        .description("The current plan: who does what, funded by which pledge.")
        .queue_group(QUEUE_GROUP_SOLVER)
        .start("sb-solver", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|error| anyhow::anyhow!("starting the sb-solver service: {error}"))?;
    let mut plan_requests = service
        .endpoint_builder()
        .name("plan")
        .add(solver.context.subjects.plan_get())
        .await
        .map_err(|error| anyhow::anyhow!("adding the plan endpoint: {error}"))?;
    solver.context.health.set_caught_up();
    tracing::info!(
        shard = solver.config.sharding.name(),
        leases = solver.lease.is_some(),
        "solver ready"
    );

    let mut improvement: Option<tokio::sync::oneshot::Receiver<Improvement>> = None;
    let mut improve_ticks = tokio::time::interval(Duration::from_millis(IMPROVE_INTERVAL_MS));
    improve_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty_since: Option<Instant> = None;
    loop {
        if !solver.dirty {
            dirty_since = None;
        } else if dirty_since.is_none() {
            dirty_since = Some(Instant::now());
        }
        let match_at = match dirty_since {
            Some(since) => since + Duration::from_millis(MATCH_DEBOUNCE_MS),
            // From the last run, not from now: the loop wakes for other
            // things (tier 2's tick every 5 s) and must not push it back.
            None => solver.last_match + Duration::from_millis(MATCH_INTERVAL_MS),
        };
        // Not through the timer, which wakes on whole milliseconds.
        let match_now = solver.dirty && solver.burst_over;
        let next = if match_now {
            Next::MatchDue
        } else {
            tokio::select! {
                () = shutdown.cancelled() => Next::Shutdown,
                Some(stored) = events.next() => Next::Event(stored),
                Some(stored) = matches.next() => Next::Match(stored),
                Some(stored) = money.next() => Next::Money(stored),
                Some(request) = plan_requests.next() => Next::PlanRequest(Box::new(request)),
                () = tokio::time::sleep_until(match_at.into()) => Next::MatchDue,
                _ = improve_ticks.tick() => Next::ImproveDue,
                found = wait_for_improvement(&mut improvement) => Next::Improved(found),
                () = lease_changed(&mut solver.lease) => Next::LeaseChanged,
            }
        };
        let outcome = match next {
            Next::Event(stored) => solver.apply_event_stored(&stored),
            Next::Match(stored) => solver.apply_match_stored(&stored),
            Next::Money(stored) => solver.apply_money_stored(&stored),
            Next::PlanRequest(request) => {
                solver.answer_plan(*request).await;
                Ok(())
            }
            Next::MatchDue => {
                let trace = solver
                    .pending_trace
                    .take()
                    .map(|cause| cause.child())
                    .unwrap_or_else(TraceParent::root);
                trace::scope(trace, solver.match_now()).await
            }
            Next::LeaseChanged => {
                solver.lease_changed();
                Ok(())
            }
            Next::ImproveDue => {
                let still = solver.generation == solver.generation_at_tick;
                solver.generation_at_tick = solver.generation;
                if improvement.is_none() && still {
                    improvement = solver.start_improvement();
                }
                Ok(())
            }
            Next::Improved(found) => {
                improvement = None;
                match found {
                    Some(found) => trace::scope(TraceParent::root(), solver.adopt(*found)).await,
                    None => Err(anyhow::anyhow!(
                        "a tier-2 optimisation ended without a plan"
                    )),
                }
            }
            Next::Shutdown => break,
        };
        if let Err(error) = outcome {
            tracing::error!(error = %format!("{error:#}"), "solver step failed; continuing");
        }
    }
    if let Err(error) = service.stop().await {
        tracing::warn!(%error, "stopping the service endpoints");
    }
    solver.store.flush()?;
    if let Some(lease) = solver.lease.take() {
        lease.release().await;
    }
    tracing::info!("solver stopped");
    Ok(())
}

impl Solver {
    async fn catch_up(&mut self, stream: &str) -> anyhow::Result<Follower> {
        let applied = self.store.position(stream)?;
        let last = streams::last_sequence(&self.context.jetstream, stream).await?;
        let mut follower = Follower::start(&self.context.jetstream, stream, applied)
            .await?
            .report_lag("solver");
        let mut position = applied;
        let is_events = stream == self.context.subjects.events_stream();
        let is_money = stream == self.context.subjects.ledger_stream();
        while position < last {
            let Some(stored) = follower.next().await else {
                break;
            };
            position = stored.sequence;
            if is_events {
                self.apply_event_stored(&stored)?;
            } else if is_money {
                self.apply_money_stored(&stored)?;
            } else {
                self.apply_match_stored(&stored)?;
            }
        }
        // The fencing's position is the match stream's alone: the ledger's
        // sequence says nothing about how far SB_MATCHES was read.
        if !is_events && !is_money {
            self.matches_position = self.matches_position.max(position);
        }
        tracing::info!(stream, from = applied, to = position, "solver caught up");
        Ok(follower)
    }

    /// Notes a change the next tier-1 run must answer: its trace, and when
    /// the oldest unanswered one was stored.
    fn changed_by(&mut self, stored: &Stored) {
        self.dirty = true;
        self.generation += 1;
        if stored.trace.is_some() {
            self.pending_trace = stored.trace;
        }
        self.pending_since.get_or_insert(stored.stored_at);
        self.burst_over = stored.pending == 0;
    }

    fn apply_event_stored(&mut self, stored: &Stored) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        match Event::decode(&self.context.subjects, &stored.subject, &stored.payload) {
            Ok(event) => {
                self.world.touches(&event, &mut self.touched);
                self.world.observe_time(self.context.clock.now());
                self.world.apply_event(&event, &mut changes)?;
                self.changed_by(stored);
            }
            Err(error) => {
                tracing::warn!(%error, sequence = stored.sequence, "unreadable event skipped")
            }
        }
        changes.position(&self.context.subjects.events_stream(), stored.sequence);
        self.store.commit(changes)
    }

    fn apply_match_stored(&mut self, stored: &Stored) -> anyhow::Result<()> {
        self.matches_position = self.matches_position.max(stored.sequence);
        let mut changes = Changes::default();
        match MatchEvent::decode(&self.context.subjects, &stored.subject, &stored.payload) {
            Ok(event) => {
                // Its own proposals come back here too; those change nothing.
                let before = self.world.live.len();
                self.world.apply_match(&event, &mut changes)?;
                if !matches!(event, MatchEvent::Proposed(_)) || before != self.world.live.len() {
                    let (volunteer, task, _) = event.pair();
                    self.touched.pair(volunteer, task);
                    self.changed_by(stored);
                }
            }
            Err(error) => {
                tracing::warn!(%error, sequence = stored.sequence, "unreadable match event skipped")
            }
        }
        changes.position(&self.context.subjects.matches_stream(), stored.sequence);
        self.store.commit(changes)
    }

    fn apply_money_stored(&mut self, stored: &Stored) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        match serde_json::from_slice::<proto::money::LedgerEntry>(&stored.payload) {
            Ok(entry) => {
                if self
                    .world
                    .apply_ledger(&entry, stored.sequence, &mut changes)?
                {
                    if let Some(task) = &entry.task {
                        self.touched.task(task);
                    }
                    for movement in &entry.movements {
                        self.touched.pledge(&movement.pledge);
                    }
                    self.dirty = true;
                    self.generation += 1;
                }
            }
            Err(error) => {
                tracing::warn!(%error, sequence = stored.sequence, "unreadable ledger entry skipped")
            }
        }
        changes.position(&self.context.subjects.ledger_stream(), stored.sequence);
        self.store.commit(changes)
    }

    async fn answer_plan(&self, request: Request) {
        if !reply::has_safe_reply_subject(&self.context, &request) {
            return;
        }
        let mut plan = self.plan.clone();
        plan.assignments.sort();
        plan.funding.sort();
        let body = Bytes::from(serde_json::to_vec(&plan).unwrap_or_default());
        if let Err(error) = request.respond(Ok(body)).await {
            tracing::debug!(%error, "the plan requester left");
        }
    }

    /// The problem and options for a solve at `now`: the open world, with
    /// never-again pairs forbidden and live proposals kept at a cost.
    fn problem_at(
        &self,
        now: DateTime<Utc>,
        pin_proposals: bool,
        held: &HashSet<String>,
    ) -> Option<Prepared> {
        let snapshot = self
            .world
            .snapshot(now, pin_proposals, held, &self.config.sharding);
        self.problem_of(&snapshot, pin_proposals)
    }

    /// Work not under way starts when its answer comes: a new proposal's
    /// after the time answers take (never longer than people are given to
    /// answer), one already out after what is left of it.
    fn delay_until_answered(&self, problem: &mut Problem, now: DateTime<Utc>) {
        let window_hours = self.config.response_window.num_seconds() as f64 / 3600.0;
        let expected = self.world.answers.expected_hours().min(window_hours);
        for live in self.world.live.values() {
            if live.standing != Standing::Proposed {
                continue;
            }
            let (Some(volunteer), Some(task), Some(proposed_at)) = (
                problem.volunteer_index(&live.volunteer),
                problem.task_index(&live.task),
                live.since,
            ) else {
                continue;
            };
            let waited = (now - proposed_at).num_seconds() as f64 / 3600.0;
            problem.set_start_after(volunteer, task, (expected - waited).max(0.0));
        }
        problem.set_start_delay(expected);
    }

    /// The problem and options of a snapshot (see `problem_at`).
    fn problem_of(&self, snapshot: &World, pin_proposals: bool) -> Option<Prepared> {
        let mut problem = match Problem::from_world(snapshot) {
            Ok(problem) => problem,
            Err(error) => {
                tracing::error!(%error, "the open world is not a valid problem; not matching");
                return None;
            }
        };
        // Declined, expired and vetoed pairs are never proposed again. A
        // coordinator's pin overrides an earlier decline (they spoke to the
        // person); a live, accepted pair stays plannable unless vetoed.
        let never_again = |key: &str| {
            (self.world.declined.contains(key)
                && !self.world.coordinator_pins.contains_key(key)
                && !self.world.live.contains_key(key))
                || self.world.vetoed.contains(key)
        };
        let pairs: usize = (0..problem.task_count())
            .map(|task| problem.candidates(task).len())
            .sum();
        // Whichever is fewer: the problem's pairs, or every pair ever declined.
        let forbidden: Vec<(usize, usize)> =
            if pairs < self.world.declined.len() + self.world.vetoed.len() {
                (0..problem.task_count())
                    .flat_map(|task| {
                        problem
                            .candidates(task)
                            .iter()
                            .map(move |&volunteer| (volunteer, task))
                    })
                    .filter(|&(volunteer, task)| {
                        never_again(&pair_key(
                            problem.volunteer_id(volunteer).as_str(),
                            problem.task_id(task).as_str(),
                        ))
                    })
                    .collect()
            } else {
                self.world
                    .declined
                    .iter()
                    .chain(&self.world.vetoed)
                    .filter(|key| never_again(key))
                    .filter_map(|key| {
                        let (volunteer, task) = key.split_once('/')?;
                        Some((
                            problem.volunteer_index(volunteer)?,
                            problem.task_index(task)?,
                        ))
                    })
                    .collect()
            };
        problem.forbid(&forbidden);
        // Members under way owe what is left of their part, at their own rate.
        for (volunteer, task, hours) in self.world.owed(snapshot.now) {
            if let (Some(volunteer), Some(task)) = (
                problem.volunteer_index(&volunteer),
                problem.task_index(&task),
            ) {
                problem.set_owed(volunteer, task, hours);
            }
        }
        if self.config.answer_delay {
            self.delay_until_answered(&mut problem, snapshot.now);
        }
        // Plan for expected impact: each volunteer's estimated chance of
        // finishing, relative to a newcomer's (solver-core `reliability`).
        if self.config.starter_policy {
            let newcomer = Record::default().reliability();
            for volunteer in 0..problem.volunteer_count() {
                if let Some(record) = self
                    .world
                    .records
                    .get(problem.volunteer_id(volunteer).as_str())
                {
                    problem.set_reliability(volunteer, record.reliability() / newcomer);
                }
            }
        }
        // Pinned proposals need no keeping.
        let keep: Vec<(usize, usize)> = if pin_proposals {
            Vec::new()
        } else {
            self.world
                .live
                .values()
                .filter(|live| live.standing == Standing::Proposed)
                .filter_map(|live| {
                    Some((
                        problem.volunteer_index(&live.volunteer)?,
                        problem.task_index(&live.task)?,
                    ))
                })
                .collect()
        };
        let options = SolveOptions {
            time_limit: self.config.match_budget,
            keep,
            move_cost: PROPOSAL_MOVE_COST,
            ..SolveOptions::default()
        };
        let restricted = if self.config.starter_policy {
            self.beyond_starter(&problem)
        } else {
            Vec::new()
        };
        Some((problem, options, restricted))
    }

    /// Pairs of a newcomer or an unreliable volunteer with a task that is
    /// long or sensitive: planned only after starter work is given out.
    /// Live and coordinator-pinned pairs are never held back.
    fn beyond_starter(&self, problem: &Problem) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for task in 0..problem.task_count() {
            let Some(spec) = self.world.tasks.get(problem.task_id(task).as_str()) else {
                continue;
            };
            if spec.hours <= STARTER_TASK_HOURS_MAX && spec.sensitivity == 0 {
                continue;
            }
            for &volunteer in problem.candidates(task) {
                let volunteer_id = problem.volunteer_id(volunteer).as_str();
                let record = self
                    .world
                    .records
                    .get(volunteer_id)
                    .copied()
                    .unwrap_or_default();
                if !(record.is_newcomer() || record.reliability() < RELIABILITY_MIN) {
                    continue;
                }
                let key = pair_key(volunteer_id, spec.id.as_str());
                if self.world.live.contains_key(&key)
                    || self.world.coordinator_pins.contains_key(&key)
                {
                    continue;
                }
                pairs.push((volunteer, task));
            }
        }
        pairs
    }

    /// One greedy run around every live pair, with `held` teams kept as
    /// they are: over the whole world, or over a scope (with what the plan
    /// spends of each pledge elsewhere).
    async fn tier1(
        &self,
        now: DateTime<Utc>,
        held: &HashSet<String>,
        scope: Option<(&Scope, &HashMap<String, u64>)>,
    ) -> anyhow::Result<Option<(Problem, SolveReport)>> {
        let snapshot = match scope {
            None => self.world.snapshot(now, true, held, &self.config.sharding),
            Some((scope, spent_elsewhere)) => {
                self.world
                    .scoped_snapshot(now, held, scope, spent_elsewhere)
            }
        };
        let Some((problem, mut options, restricted)) = self.problem_of(&snapshot, true) else {
            return Ok(None);
        };
        options.greedy_only = true;
        options.time_limit = Duration::from_millis(TIER1_BUDGET_MS);
        let solved = tokio::task::spawn_blocking(move || {
            let report = solve_with_starters(&problem, &options, &restricted);
            (problem, report)
        })
        .await?;
        Ok(Some(solved))
    }

    /// Whether a team that cannot be completed now is worth keeping together
    /// while a replacement is sought: the task is still open, and far enough
    /// from its deadline for someone new to arrive, answer and do the work.
    fn holdable(&self, task: &str, now: DateTime<Utc>) -> bool {
        self.world.tasks.get(task).is_some_and(|spec| {
            spec.deadline - now >= chrono::Duration::hours(HOLD_HOURS_BEFORE_DEADLINE_MIN)
        }) && self.world.live.team_size(task) > 0
    }

    /// Tier 1: the greedy repairs the plan after a burst of changes, over
    /// what the changes touched when it can (`scope`), else over the whole
    /// world.
    #[tracing::instrument(name = "solver.match", skip_all, fields(trace_id = tracing::field::Empty))]
    async fn match_now(&mut self) -> anyhow::Result<()> {
        trace::record_on_span();
        self.dirty = false;
        self.burst_over = false;
        self.last_match = Instant::now();
        self.metrics.open_tasks.set(self.world.tasks.len() as f64);
        self.metrics
            .volunteers
            .set(self.world.volunteers.len() as f64);
        if !self.caught_up().await? {
            // Planning now would only conflict again; the follower is
            // delivering what this instance has not read yet.
            self.dirty = true;
            return Ok(());
        }
        let started = Instant::now();
        let now = self.context.clock.now();
        self.touch_by_time(now);
        let touched = std::mem::take(&mut self.touched);
        let full_due = !self.config.sharding.is_whole()
            || self
                .last_full_run
                .is_none_or(|last| last.elapsed() >= Duration::from_millis(FULL_RUN_INTERVAL_MS));
        // Parts left of earlier bursts, with this one, reaching much of a
        // world small enough for one run cost less as that run than as a
        // part per handful of changes: under thousands of events a second
        // the parts would never catch up. Only then: a run over everything
        // re-plans what scoped runs leave be (a burst that fits in one step
        // is planned in scopes however much of a small world it touches).
        let falling_behind = !self.parts.is_empty()
            && (touched.len() + self.parts.iter().map(Touched::len).sum::<usize>())
                * scope::TASKS_PER_VOLUNTEER
                >= self.world.tasks.len();
        let whole_due = full_due || touched.everything;
        let outcome = if self.too_big_for_one_run() {
            if whole_due {
                self.last_full_run = Some(Instant::now());
                self.parts.clear();
                let sweep = self.every_task_touched(touched);
                self.plan_in_parts(now, sweep, started).await
            } else {
                self.plan_in_parts(now, touched, started).await
            }
        } else if whole_due || falling_behind {
            self.parts.clear();
            self.plan_touched(now, None, started).await
        } else {
            self.plan_in_parts(now, touched, started).await
        };
        let Ok(planned) = outcome else {
            // Part of the run may have been written: the next run plans
            // the whole world, so nothing this one touched is forgotten.
            self.touched.everything = true;
            return outcome.map(|_| ());
        };
        let elapsed = started.elapsed();
        self.metrics.tier1_duration.record(elapsed.as_secs_f64());
        // The server's clock against this machine's: a negative age is
        // skew. Counted once every part of a burst is planned.
        let reaction = if self.parts.is_empty() {
            self.pending_since
                .take()
                .map(|since| since.elapsed().unwrap_or_default())
        } else {
            None
        };
        if let Some(reaction) = reaction {
            self.metrics.reaction.record(reaction.as_secs_f64());
        }
        tracing::debug!(
            scoped = planned,
            step_us = elapsed.as_micros() as u64,
            reaction_us = reaction.map(|reaction| reaction.as_micros() as u64),
            "tier 1 step"
        );
        Ok(())
    }

    /// Plans `scope`, or the whole world when there is none or it cannot be
    /// planned alone; whether the run was scoped.
    async fn plan_touched(
        &mut self,
        now: DateTime<Utc>,
        scope: Option<&Scope>,
        started: Instant,
    ) -> anyhow::Result<bool> {
        let planned = match scope {
            Some(scope) if scope.tasks.is_empty() => true,
            Some(scope) => self.match_scope(now, scope, started).await?,
            None => false,
        };
        if !planned {
            self.match_everything(now).await?;
            self.last_full_run = Some(Instant::now());
        }
        Ok(planned)
    }

    /// Whether the world is planned in parts rather than in one run
    /// ([`WHOLE_WORLD_TASKS_MAX`]); a shard is always planned whole.
    fn too_big_for_one_run(&self) -> bool {
        self.config.sharding.is_whole() && self.world.tasks.len() > WHOLE_WORLD_TASKS_MAX
    }

    /// `touched` with every task the plan could change: the open ones,
    /// those with someone live on them, those the plan completes.
    fn every_task_touched(&self, mut touched: Touched) -> Touched {
        touched.everything = false;
        touched.tasks.extend(self.world.tasks.keys().cloned());
        touched
            .tasks
            .extend(self.world.live.values().map(|live| live.task.clone()));
        touched.tasks.extend(self.planned_impact.keys().cloned());
        touched
    }

    /// Plans what `touched` can change: in one scope when it fits, else in
    /// halves, each planned (or halved again) in turn, so a burst of
    /// thousands of events costs a run per part, not a run over the whole
    /// world per burst (which at 100,000 tasks took seconds, during which
    /// the next burst grew too big for a scope in turn). A single change
    /// too big for a scope, or a part that cannot be planned alone, is
    /// planned by a full run. Parts left after [`TIER1_PARTS_BUDGET_MS`] wait for
    /// the next step, after the events that arrived meanwhile. Whether
    /// it was planned in scopes.
    async fn plan_in_parts(
        &mut self,
        now: DateTime<Utc>,
        touched: Touched,
        started: Instant,
    ) -> anyhow::Result<bool> {
        let deadline = started + Duration::from_millis(TIER1_PARTS_BUDGET_MS);
        // Fresh changes on top: planned before what a sweep has left.
        if !touched.is_empty() {
            self.parts.push(touched);
        }
        while let Some(part) = self.parts.pop() {
            // Out of time, or fenced off: the rest waits for the next step
            // (after the stream is read, when fenced off).
            if Instant::now() >= deadline || self.behind {
                self.parts.push(part);
                self.dirty = true;
                break;
            }
            if part.len() > scope::TOUCHED_PER_PART_MAX {
                let (first, second) = part.halves();
                self.parts.push(second);
                self.parts.push(first);
                continue;
            }
            let planned = match self.scope_of(&part, now) {
                Some(scope) => self.plan_touched(now, Some(&scope), Instant::now()).await?,
                None if part.len() > 1 => {
                    let (first, second) = part.halves();
                    self.parts.push(second);
                    self.parts.push(first);
                    continue;
                }
                None => self.plan_touched(now, None, started).await?,
            };
            if !planned {
                // A full run planned everything.
                self.parts.clear();
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Touches work whose deadline or volunteer's time has passed, and held
    /// teams (their time to wait may be over), once the clock has moved on
    /// far enough since the last look.
    fn touch_by_time(&mut self, now: DateTime<Utc>) {
        if self
            .last_time_scan
            .is_some_and(|last| now - last < chrono::Duration::minutes(TIME_SCAN_MINUTES))
        {
            return;
        }
        self.last_time_scan = Some(now);
        for live in self.world.live.values() {
            let task_over = self
                .world
                .tasks
                .get(&live.task)
                .is_none_or(|task| task.deadline <= now);
            let volunteer_gone = self
                .world
                .volunteers
                .get(&live.volunteer)
                .is_none_or(|offer| offer.available_until <= now);
            if task_over || volunteer_gone {
                self.touched.pair(&live.volunteer, &live.task);
            }
        }
        for task in &self.held {
            self.touched.tasks.insert(task.clone());
        }
    }

    /// The scope of `touched`, with the tasks each touched pledge funds in
    /// the plan (they may lose their money).
    fn scope_of(&self, touched: &Touched, now: DateTime<Utc>) -> Option<Scope> {
        let mut touched = touched.clone();
        for pledge in &touched.pledges.clone() {
            for task in self.spend_of_pledge.get(pledge).into_iter().flatten() {
                touched.task(task.0);
            }
        }
        self.world.scope(&touched, now)
    }

    /// What the plan spends of each of the scope's pledges on tasks outside it.
    fn spent_elsewhere(&self, scope: &Scope) -> HashMap<String, u64> {
        scope
            .pledges
            .iter()
            .map(|pledge| {
                let spent = self
                    .spend_of_pledge
                    .get(pledge)
                    .into_iter()
                    .flatten()
                    .filter(|(task, _)| !scope.tasks.contains(*task))
                    .map(|(_, cents)| cents)
                    .sum();
                (pledge.clone(), spent)
            })
            .collect()
    }

    /// Tier 1 over the whole world.
    async fn match_everything(&mut self, now: DateTime<Utc>) -> anyhow::Result<()> {
        // Tier 1 builds around every live proposal: re-planning one away the
        // moment after it was made is churn a volunteer sees. Only tier 2
        // moves a proposal, and only when that is worth its cost. Teams it
        // cannot complete now (someone declined and nobody can replace them
        // yet) are held together while there is time, not released: the
        // next run tries again, and everyone else is planned around them.
        let Some((problem, report)) = self.tier1(now, &HashSet::new(), None).await? else {
            return Ok(());
        };
        let held = self.holdable_dropped(&problem, &report, now);
        let (problem, report) = if held.is_empty() {
            (problem, report)
        } else {
            match self.tier1(now, &held, None).await? {
                Some(solved) => solved,
                None => return Ok(()),
            }
        };
        self.held = held;
        tracing::debug!(
            objective = report.objective,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "tier 1 matched the whole world"
        );
        if !self
            .publish_difference(&problem, &report, now, None)
            .await?
        {
            self.touched.everything = true;
        }
        self.set_plan(&problem, &report, None);
        Ok(())
    }

    /// The tasks whose pins a run dropped and whose teams are worth holding.
    fn holdable_dropped(
        &self,
        problem: &Problem,
        report: &SolveReport,
        now: DateTime<Utc>,
    ) -> HashSet<String> {
        report
            .dropped_pins
            .iter()
            .map(|&task| problem.task_id(task).as_str().to_owned())
            .filter(|task| self.holdable(task, now))
            .collect()
    }

    /// Tier 1 over a scope; `false` when the scope cannot be planned alone
    /// (work outside it would be dropped) and the whole world must be.
    /// `started`: when the step began, to log how long deciding took.
    async fn match_scope(
        &mut self,
        now: DateTime<Utc>,
        scope: &Scope,
        started: Instant,
    ) -> anyhow::Result<bool> {
        let spent_elsewhere = self.spent_elsewhere(scope);
        let outside = |problem: &Problem, report: &SolveReport| {
            report
                .dropped_pins
                .iter()
                .any(|&task| scope.context.contains_key(problem.task_id(task).as_str()))
        };
        let Some((problem, report)) = self
            .tier1(now, &HashSet::new(), Some((scope, &spent_elsewhere)))
            .await?
        else {
            return Ok(false);
        };
        if outside(&problem, &report) {
            return Ok(false);
        }
        let held = self.holdable_dropped(&problem, &report, now);
        let (problem, report) = if held.is_empty() {
            (problem, report)
        } else {
            match self
                .tier1(now, &held, Some((scope, &spent_elsewhere)))
                .await?
            {
                Some(solved) if !outside(&solved.0, &solved.1) => solved,
                _ => return Ok(false),
            }
        };
        self.held.retain(|task| !scope.tasks.contains(task));
        self.held.extend(held);
        tracing::debug!(
            tasks = scope.tasks.len(),
            volunteers = scope.volunteers.len(),
            booked = scope.context.len(),
            solve_us = report.elapsed.as_micros() as u64,
            decided_us = started.elapsed().as_micros() as u64,
            "tier 1 matched a scope"
        );
        if !self
            .publish_difference(&problem, &report, now, Some(scope))
            .await?
        {
            // Fenced off: the scope is planned again once the stream is
            // read, with whatever the writes read meanwhile touch (not the
            // whole world: under load every few runs meet a write of
            // dispatch's, and a run over 20,000 tasks each time cost
            // hundreds of milliseconds at the tail).
            for task in &scope.tasks {
                self.touched.task(task);
            }
            for volunteer in &scope.volunteers {
                self.touched.volunteer(volunteer);
            }
            for pledge in &scope.pledges {
                self.touched.pledge(pledge);
            }
        }
        self.set_plan(&problem, &report, Some(scope));
        Ok(true)
    }

    /// Tier 2: starts the full optimiser on its own thread when the world
    /// changed since it last ran. Its answer arrives through the receiver.
    fn start_improvement(&mut self) -> Option<tokio::sync::oneshot::Receiver<Improvement>> {
        if self.generation == self.improved_generation || !self.may_publish() {
            return None;
        }
        self.improved_generation = self.generation;
        if self.too_big_for_one_run() {
            tracing::debug!(
                open_tasks = self.world.tasks.len(),
                "tier 2 skipped: the world is planned in parts"
            );
            return None;
        }
        let generation = self.generation;
        let now = self.context.clock.now();
        let (problem, options, restricted) = self.problem_at(now, false, &self.held)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let report = solve_with_starters(&problem, &options, &restricted);
            let _ = sender.send(Improvement {
                generation,
                now,
                problem,
                report,
            });
        });
        Some(receiver)
    }

    /// Adopts a tier-2 plan if the world is still the one it was made for
    /// and it is better by a margin.
    #[tracing::instrument(name = "solver.improve", skip_all, fields(trace_id = tracing::field::Empty))]
    async fn adopt(&mut self, found: Improvement) -> anyhow::Result<()> {
        trace::record_on_span();
        let Improvement {
            generation,
            now,
            problem,
            report,
        } = found;
        self.metrics
            .tier2_duration
            .record(report.elapsed.as_secs_f64());
        if let Some(gap) = report.gap() {
            self.metrics.gap.set(gap);
        }
        if generation != self.generation {
            tracing::debug!("tier-2 plan is stale; the next round starts from the new world");
            return Ok(());
        }
        let margin = self.plan_objective.abs() * IMPROVEMENT_SHARE_MIN;
        if report.objective <= self.plan_objective + margin {
            return Ok(());
        }
        tracing::info!(
            from = self.plan_objective,
            to = report.objective,
            bound = report.upper_bound,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "tier 2 found a better plan"
        );
        if !self
            .publish_difference(&problem, &report, now, None)
            .await?
        {
            self.touched.everything = true;
        }
        self.set_plan(&problem, &report, None);
        // Its own proposals changed the world; that is no reason to re-run.
        self.improved_generation = self.generation;
        Ok(())
    }

    /// Proposes what the plan adds and releases what it gives up; `false`
    /// when fenced off (the match stream moved on under it).
    async fn publish_difference(
        &mut self,
        problem: &Problem,
        report: &SolveReport,
        now: DateTime<Utc>,
        scope: Option<&Scope>,
    ) -> anyhow::Result<bool> {
        // A standby plans (to answer `sb.plan.get`) but publishes nothing.
        if !self.may_publish() {
            return Ok(true);
        }
        let events = Difference {
            world: &self.world,
            sharding: &self.config.sharding,
            response_window: self.config.response_window,
        }
        .events(problem, report, now, scope);
        self.publish_matches(events).await
    }

    /// Publishes a run's releases and proposals in order, each write
    /// conditional on `SB_MATCHES` not having moved past what this
    /// instance has read: a plan made on a world that moved on (someone
    /// declined, finished, was released meanwhile) is not written over
    /// it. Without leases they are sent together and their acks awaited
    /// together ([`publish::durably_chained`]); with leases one at a time,
    /// each only while the lease is held. `false` when fenced off: the
    /// stream is read to its end and the world planned again.
    async fn publish_matches(&mut self, events: Vec<MatchEvent>) -> anyhow::Result<bool> {
        if self.lease.is_some() {
            for event in events {
                if !self.publish_match(event).await? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let messages: Vec<publish::Outgoing> = events
            .iter()
            .map(|event| publish::Outgoing {
                subject: event.subject(&self.context.subjects),
                message_id: event.message_id(),
                payload: Bytes::from(event.encode()),
                trace: None,
            })
            .collect();
        match publish::durably_chained(&self.context, &messages, self.matches_position).await {
            Ok(sequences) => {
                if let Some(&last) = sequences.iter().max() {
                    self.matches_position = self.matches_position.max(last);
                }
            }
            Err(PublishError::Conflict { .. }) => {
                self.fenced_off();
                return Ok(false);
            }
            Err(error) => {
                return Err(error).context("publishing a plan's changes to the match stream")
            }
        }
        for event in &events {
            self.published(event)?;
        }
        Ok(true)
    }

    /// The match stream moved on under a write: read it before planning
    /// again (what the run planned is planned again: its caller says
    /// how much).
    fn fenced_off(&mut self) {
        tracing::debug!(
            expected = self.matches_position,
            "the match stream moved on; reading it before planning again"
        );
        self.behind = true;
        self.dirty = true;
    }

    /// Publishes one match event and applies it. With leases on, only
    /// while the lease is held, and only if `SB_MATCHES` still ends where
    /// this instance last read or wrote it; `false` when fenced off (the
    /// caller stops: its plan was made on a world that has moved on).
    async fn publish_match(&mut self, event: MatchEvent) -> anyhow::Result<bool> {
        let subject = event.subject(&self.context.subjects);
        let payload = Bytes::from(event.encode());
        match &self.lease {
            None => {
                publish::durably_or_error(&self.context, &subject, &event.message_id(), payload)
                    .await?;
            }
            Some(lease) if !lease.is_active() => {
                tracing::info!("lease lost while publishing; stopping");
                return Ok(false);
            }
            Some(_) => {
                let expect = Expect::LastInStream(self.matches_position);
                match publish::durably_expecting(
                    &self.context,
                    &subject,
                    &event.message_id(),
                    Some(expect),
                    payload,
                )
                .await
                {
                    Ok(sequence) => {
                        self.matches_position = self.matches_position.max(sequence);
                    }
                    Err(PublishError::Conflict { .. }) => {
                        self.fenced_off();
                        return Ok(false);
                    }
                    Err(error) => {
                        return Err(error).with_context(|| format!("publishing to {subject}"))
                    }
                }
            }
        }
        self.published(&event)?;
        Ok(true)
    }

    /// Counts and applies a match event this instance wrote.
    fn published(&mut self, event: &MatchEvent) -> anyhow::Result<()> {
        match event {
            MatchEvent::Proposed(proposal) => {
                self.metrics.proposals.increment(1);
                tracing::debug!(volunteer = %proposal.volunteer, task = %proposal.task, "proposed");
            }
            _ => self.metrics.releases.increment(1),
        }
        let mut changes = Changes::default();
        self.world.apply_match(event, &mut changes)?;
        self.generation += 1;
        self.store.commit(changes)
    }

    /// Whether this instance may publish now: always without leases.
    fn may_publish(&self) -> bool {
        self.lease.as_ref().is_none_or(LeaseKeeper::is_active)
    }

    /// Notices taking over (or losing) the shard.
    fn lease_changed(&mut self) {
        let active = self.may_publish();
        if active && !self.was_active {
            tracing::info!(
                shard = self.config.sharding.name(),
                epoch = self.lease.as_ref().and_then(LeaseKeeper::epoch),
                "this instance now plans the shard"
            );
            // Plan at once, from the end of the match stream.
            self.dirty = true;
            self.touched.everything = true;
            self.behind = true;
            self.generation += 1;
        } else if !active && self.was_active {
            tracing::warn!(
                shard = self.config.sharding.name(),
                "this instance no longer plans the shard"
            );
        }
        self.was_active = active;
    }

    /// After a conflict: whether this instance has read `SB_MATCHES` to
    /// its end.
    async fn caught_up(&mut self) -> anyhow::Result<bool> {
        if !self.behind || !self.may_publish() {
            return Ok(true);
        }
        let stream = self.context.subjects.matches_stream();
        let last = streams::last_sequence(&self.context.jetstream, &stream).await?;
        if self.matches_position < last {
            return Ok(false);
        }
        self.behind = false;
        Ok(true)
    }

    /// Takes a run's plan as the current one (what `sb.plan.get` answers):
    /// the solver's solution less the tasks held back, with the money the
    /// ledger holds for each task it keeps. For a scoped run, only the
    /// scope's part of the plan is replaced.
    fn set_plan(&mut self, problem: &Problem, report: &SolveReport, scope: Option<&Scope>) {
        let in_scope = |task: &str| scope.is_none_or(|scope| scope.tasks.contains(task));
        let mut part = report.solution.to_plan(problem);
        part.assignments
            .retain(|assignment| in_scope(&assignment.task));
        part.funding.retain(|funding| in_scope(&funding.task));
        let live_or_finished =
            |volunteer: &str, task: &str| self.world.live.contains_key(&pair_key(volunteer, task));
        let held_back: HashSet<String> = part
            .assignments
            .iter()
            .filter(|assignment| !live_or_finished(&assignment.volunteer, &assignment.task))
            .map(|assignment| assignment.task.clone())
            .collect();
        // Held teams are incomplete: they stand in the solution only to keep
        // their members' time booked.
        part.assignments.retain(|assignment| {
            !held_back.contains(&assignment.task) && !self.held.contains(&assignment.task)
        });
        part.funding.retain(|funding| {
            !held_back.contains(&funding.task) && !self.held.contains(&funding.task)
        });
        let mut impact: HashMap<String, f64> = HashMap::new();
        for task in part
            .assignments
            .iter()
            .map(|assignment| &assignment.task)
            .chain(part.funding.iter().map(|funding| &funding.task))
        {
            if let Some(index) = problem.task_index(task) {
                impact.insert(task.clone(), problem.task_impact(index));
            }
        }
        let spend: Vec<proto::instance::Funding> = part.funding.clone();
        // Money the ledger holds for a task is part of the plan whenever the
        // task is: staffed in it, or money-only and still open.
        let staffed: HashSet<&str> = part
            .assignments
            .iter()
            .map(|assignment| assignment.task.as_str())
            .collect();
        let committed = match scope {
            None => self.world.committed_funding(),
            Some(scope) => scope
                .tasks
                .iter()
                .flat_map(|task| self.world.committed_funding_of(task))
                .collect(),
        };
        let kept: Vec<proto::instance::Funding> = committed
            .into_iter()
            .filter(|funding| {
                staffed.contains(funding.task.as_str())
                    || self
                        .world
                        .tasks
                        .get(&funding.task)
                        .is_some_and(|task| task.slots == 0)
            })
            .collect();
        part.funding.extend(kept);
        match scope {
            None => {
                self.plan = part;
                self.planned_impact = impact;
                self.spend_of_task.clear();
                self.spend_of_pledge.clear();
            }
            Some(scope) => {
                self.plan
                    .assignments
                    .retain(|assignment| !scope.tasks.contains(&assignment.task));
                self.plan
                    .funding
                    .retain(|funding| !scope.tasks.contains(&funding.task));
                self.plan.assignments.extend(part.assignments);
                self.plan.funding.extend(part.funding);
                for task in &scope.tasks {
                    self.planned_impact.remove(task);
                    for (pledge, _) in self.spend_of_task.remove(task).unwrap_or_default() {
                        if let Some(tasks) = self.spend_of_pledge.get_mut(&pledge) {
                            tasks.remove(task);
                            if tasks.is_empty() {
                                self.spend_of_pledge.remove(&pledge);
                            }
                        }
                    }
                }
                self.planned_impact.extend(impact);
            }
        }
        for funding in spend {
            self.spend_of_task
                .entry(funding.task.clone())
                .or_default()
                .insert(funding.pledge.clone(), funding.amount_cents);
            self.spend_of_pledge
                .entry(funding.pledge)
                .or_default()
                .insert(funding.task, funding.amount_cents);
        }
        self.plan_objective = self.planned_impact.values().sum();
        self.metrics.objective.set(self.plan_objective);
    }
}
