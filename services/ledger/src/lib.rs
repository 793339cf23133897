//! The ledger service: the only writer of `SB_LEDGER`, where every cent of
//! pledged money is accounted for.
//!
//! It follows `SB_EVENTS` (pledges, needs, withdrawals, completions),
//! `SB_MATCHES` (who accepted what) and its own `SB_LEDGER`, and after each
//! burst of changes (and every few seconds, because deadlines and expiries
//! pass) it reconciles the money with the world:
//!
//! - a pledge enters the pool (`pledged`); a raise adds to it; a lowered,
//!   withdrawn or expired pledge gives back what is not held (`withdrawn`);
//! - money is `held` for a task only when the task will complete: a
//!   money-only task, or one whose whole team has accepted, funded exactly
//!   as the solver's plan (`sb.plan.get`) says, from pledges that may fund
//!   it, in the task's currency;
//! - held money is `released` to the pool when its task is cancelled, or
//!   its deadline (plus a grace period for marking it done) passes with the
//!   task not done;
//! - `disbursed` when a coordinator or the task's collective confirms the
//!   payment with a reference on `sb.in.disburse`.
//!
//! Every entry is checked by the pure core (`ledger-core`) against the state
//! it changes, and written with `Nats-Expected-Last-Sequence` set to the last
//! entry this service applied: if anyone else wrote meanwhile, the write is
//! refused, the service reads what was written, and decides again. So no
//! pledge is over-committed even when two ledgers race. The entry id is the
//! `Nats-Msg-Id`, and the core applies an id once, for ever.
//!
//! The decisions are in [`planner`], which does no I/O; this module is the
//! shell around it: it follows the three logs ([`plumbing::follow::Logs`]),
//! serves the endpoint, sleeps until the planner's next wake-up, and
//! carries out each effect (a store batch, a conditional write, a request
//! for the plan, a reply), feeding its outcome back before taking the next
//! input. Faults follow [`plumbing::fault`]: a store failure stops the
//! service (a restart replays), a write the server did not acknowledge
//! ends the pass (the next one reconciles again), a malformed message is
//! skipped.
//!
//! Consumes: `SB_EVENTS`, `SB_MATCHES`, `SB_LEDGER`, `sb.in.disburse`.
//! Produces: `sb.ledger.<kind>.<key>` (`SB_LEDGER`); requests `sb.plan.get`.
//! A pass runs in the span `ledger.reconcile`, a disbursal in `ledger.disburse`.

pub mod planner;
pub mod state;
pub mod view;

pub use planner::{ENTRIES_PER_PASS_MAX, RECONCILE_DEBOUNCE_MS, RECONCILE_INTERVAL_MS};
pub use planner::{
    REASON_CANCELLED, REASON_DEADLINE, REASON_EXPIRED, REASON_HELD, REASON_LOWERED,
    REASON_WITHDRAWN,
};

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use async_nats::service::{Request, ServiceExt};
use bytes::Bytes;
use futures_util::StreamExt;
use proto::instance::Plan;
use proto::money::LedgerEntry;
use proto::subjects::{Input as InputSubject, Subjects, QUEUE_GROUP_LEDGER};
use proto::wire::Reply;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use planner::{Effect, Input, Now, Planner, PlannerConfig, Purpose, RequestId, Write};
use plumbing::fault::{Classify as _, Fault, Policy};
use plumbing::follow::{Log, Logs, Stored};
use plumbing::publish::{self, Expect, PublishError};
use plumbing::store::Store;
use plumbing::{reply, streams, Context};

/// How long the service waits for the solver's plan.
pub const PLAN_WAIT_MS: u64 = 2_000;
/// Held money waits this long after a task's deadline for the task to be
/// marked done before it goes back to the pool.
pub const RELEASE_GRACE_HOURS_DEFAULT: i64 = 72;

/// The service's name in logs, metrics and the fault policy.
const SERVICE: &str = "ledger";

#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// Where the state store lives; `None` keeps it in memory (rebuilt from the streams at start).
    pub state_directory: Option<PathBuf>,
    /// Held money of a task not done goes back this long after its deadline.
    pub release_grace: chrono::Duration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            state_directory: None,
            release_grace: chrono::Duration::hours(RELEASE_GRACE_HOURS_DEFAULT),
        }
    }
}

/// What the loop took in on one turn.
enum Next {
    Stored(Log, Stored),
    Disburse(Box<Request>),
    Wake,
    Shutdown,
}

/// Runs the ledger service until `shutdown` is cancelled; an error means
/// its state could not be trusted (a restart replays the logs).
pub async fn run(
    context: Context,
    config: LedgerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    // A store that cannot be read back, or whose ledger the core refuses,
    // is moved aside and rebuilt by replay.
    let (store, (planner, positions)) =
        Store::open_and_load(config.state_directory.as_deref(), |store| {
            let saved = state::load(store, &context.subjects)?;
            let planner = Planner::restore(
                PlannerConfig {
                    subjects: context.subjects.clone(),
                    release_grace: config.release_grace,
                },
                saved,
            )?;
            Ok((planner, state::positions(store, &context.subjects)?))
        })?;
    let mut shell = Shell::new(context.clone(), store, planner);
    // All three logs are applied in full before anything is written, so a
    // restarted ledger knows every entry it made and repeats none.
    let mut logs = Logs::catch_up(&context, SERVICE, &positions, |log, stored| {
        shell.apply_catching_up(log, stored)
    })
    .await?;

    let endpoint_service = context
        .client
        .service_builder()
        .description("The money ledger: confirms disbursals of held money.")
        .queue_group(QUEUE_GROUP_LEDGER)
        .start("sb-ledger", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|error| anyhow::anyhow!("starting the sb-ledger service: {error}"))?;
    let mut disbursals = endpoint_service
        .endpoint_builder()
        .name(InputSubject::Disburse.token())
        .add(context.subjects.input(InputSubject::Disburse))
        .await
        .map_err(|error| anyhow::anyhow!("adding the disburse endpoint: {error}"))?;
    context.health.set_caught_up();
    tracing::info!("ledger ready");

    loop {
        let wake_at = shell.wake_at.unwrap_or_else(Instant::now);
        let next = tokio::select! {
            () = shutdown.cancelled() => Next::Shutdown,
            Some((log, stored)) = logs.next() => Next::Stored(log, stored),
            Some(request) = disbursals.next() => Next::Disburse(Box::new(request)),
            () = tokio::time::sleep_until(wake_at) => Next::Wake,
        };
        match next {
            Next::Stored(log, stored) => {
                shell
                    .handle("applying the logs", Input::Stored(log, stored))
                    .await?
            }
            Next::Disburse(request) => shell.disburse(*request).await?,
            Next::Wake => {
                let span = tracing::info_span!("ledger.reconcile");
                shell
                    .handle("reconciling", Input::Wake)
                    .instrument(span)
                    .await?
            }
            Next::Shutdown => break,
        }
    }
    if let Err(error) = endpoint_service.stop().await {
        tracing::warn!(%error, "stopping the service endpoints");
    }
    shell.store.flush()?;
    tracing::info!("ledger stopped");
    Ok(())
}

/// The shell: NATS, the store and the clock around the planner.
struct Shell {
    context: Context,
    store: Store,
    planner: Planner,
    policy: Policy,
    requests: HashMap<RequestId, Request>,
    next_request: RequestId,
    /// When the planner asked to be woken.
    wake_at: Option<Instant>,
}

impl Shell {
    fn new(context: Context, store: Store, planner: Planner) -> Shell {
        Shell {
            context,
            store,
            planner,
            policy: Policy::new(SERVICE),
            requests: HashMap::new(),
            next_request: 0,
            wake_at: None,
        }
    }

    fn now(&self) -> Now {
        Now {
            at: self.context.clock.now(),
            steady: Instant::now(),
        }
    }

    /// Applies a message of the catch-up; applying a logged message asks
    /// for nothing but store batches.
    fn apply_catching_up(&mut self, log: Log, stored: &Stored) -> Result<(), Fault> {
        let now = self.now();
        let mut skipped = None;
        for effect in self.planner.step(Input::Stored(log, stored.clone()), now) {
            match effect {
                Effect::Commit(writes) => commit_to(&self.store, &self.context.subjects, &writes)?,
                Effect::Skipped(reason) => skipped = Some(reason),
                Effect::WakeAt(at) => self.wake_at = Some(at),
                other => {
                    return Err(Fault::Fatal(anyhow::anyhow!(
                        "applying a logged message asked for {other:?}"
                    )))
                }
            }
        }
        skipped.map_or(Ok(()), |reason| Err(Fault::Skip(reason)))
    }

    /// Feeds `input` to the planner and carries out what it asks, each
    /// outcome fed back before the effects after it; `Err` only when the
    /// service must stop.
    async fn handle(&mut self, step: &str, input: Input) -> anyhow::Result<()> {
        let mut queue: VecDeque<Effect> = self.planner.step(input, self.now()).into();
        while let Some(effect) = queue.pop_front() {
            let outcome = match self.execute(effect).await {
                Ok(outcome) => outcome,
                Err(fault) => {
                    self.policy.judge(step, Err(fault))?;
                    None
                }
            };
            if let Some(input) = outcome {
                let more = self.planner.step(input, self.now());
                for effect in more.into_iter().rev() {
                    queue.push_front(effect);
                }
            }
        }
        Ok(())
    }

    async fn execute(&mut self, effect: Effect) -> Result<Option<Input>, Fault> {
        match effect {
            Effect::Commit(writes) => {
                commit_to(&self.store, &self.context.subjects, &writes).map(|()| None)
            }
            Effect::Write {
                entry,
                expected_last_sequence,
                purpose,
            } => self
                .write(entry, expected_last_sequence, purpose)
                .await
                .map(Some),
            Effect::FetchPlan => Ok(Some(Input::PlanFetched(self.plan().await.map(Box::new)))),
            Effect::Reply { request, reply } => {
                self.reply(request, &reply).await;
                Ok(None)
            }
            Effect::WakeAt(at) => {
                self.wake_at = Some(at);
                Ok(None)
            }
            Effect::Skipped(reason) => Err(Fault::Skip(reason)),
        }
    }

    /// Writes `entry` if the stream still ends where this ledger last read
    /// or wrote it.
    async fn write(
        &self,
        entry: Box<LedgerEntry>,
        expected_last_sequence: u64,
        purpose: Purpose,
    ) -> Result<Input, Fault> {
        let subject = self.context.subjects.ledger(entry.kind, entry.key());
        // Our own type: a failure to encode it is a broken build, not input.
        let payload = serde_json::to_vec(&entry).or_fatal()?;
        let written = publish::durably_expecting(
            &self.context,
            &subject,
            &entry.id,
            Some(Expect::LastInStream(expected_last_sequence)),
            Bytes::from(payload),
        )
        .await;
        Ok(match written {
            Ok(sequence) => Input::Written {
                entry,
                sequence,
                purpose,
            },
            Err(PublishError::Conflict { .. }) => Input::Conflict { entry, purpose },
            Err(error @ PublishError::Unavailable { .. }) => {
                let reason = error.to_string();
                let fault = Fault::Retry(
                    anyhow::Error::new(error).context(format!("writing {}", entry.id)),
                );
                // A retry is never a reason to stop.
                let _ = self.policy.judge("writing to the ledger", Err(fault));
                Input::NotWritten {
                    entry,
                    purpose,
                    reason,
                }
            }
        })
    }

    /// The solver's plan, if it answers in time.
    async fn plan(&self) -> Option<Plan> {
        let request = self
            .context
            .client
            .request(self.context.subjects.plan_get(), Bytes::from_static(b"{}"));
        let message = tokio::time::timeout(Duration::from_millis(PLAN_WAIT_MS), request)
            .await
            .ok()?
            .ok()?;
        serde_json::from_slice(&message.payload).ok()
    }

    async fn reply(&mut self, request: RequestId, reply: &Reply) {
        if let Some(request) = self.requests.remove(&request) {
            reply::respond(&self.context, &request, reply).await;
        }
    }

    async fn disburse(&mut self, request: Request) -> anyhow::Result<()> {
        if !reply::has_safe_reply_subject(&self.context, &request) {
            return Ok(());
        }
        self.next_request += 1;
        let id = self.next_request;
        let body = request.message.payload.clone();
        self.requests.insert(id, request);
        let span = tracing::info_span!("ledger.disburse");
        let handled = self
            .handle("disbursing", Input::Disburse { request: id, body })
            .instrument(span)
            .await;
        self.requests.clear();
        handled
    }
}

/// Commits one store batch; any failure means the state cannot be trusted.
fn commit_to(store: &Store, subjects: &Subjects, writes: &[Write]) -> Result<(), Fault> {
    let changes = state::changes(subjects, writes).or_fatal()?;
    store.commit(changes).or_fatal()
}
