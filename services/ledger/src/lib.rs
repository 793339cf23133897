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
//! Consumes: `SB_EVENTS`, `SB_MATCHES`, `SB_LEDGER`, `sb.in.disburse`.
//! Produces: `sb.ledger.<kind>.<key>` (`SB_LEDGER`); requests `sb.plan.get`.

pub mod view;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::service::{Request, ServiceExt};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use ledger_core::{Applied, Ledger, Refusal};
use proto::domain::Cents;
use proto::events::{Event, MatchEvent};
use proto::instance::Plan;
use proto::money::{Disbursal, EntryKind, LedgerEntry, Movement};
use proto::subjects::{Input, QUEUE_GROUP_LEDGER};
use proto::validate::decode;
use proto::wire::{ErrorBody, ErrorCode, Reply};
use tokio_util::sync::CancellationToken;

use plumbing::follow::{Follower, Stored};
use plumbing::publish::{self, Expect, PublishError};
use plumbing::store::{Changes, Store};
use plumbing::{reply, streams, Context};
use view::World;

/// Quiet time after a change before reconciling, so a burst is handled once.
pub const RECONCILE_DEBOUNCE_MS: u64 = 50;
/// Reconciling runs at least this often: deadlines and expiries pass.
pub const RECONCILE_INTERVAL_MS: u64 = 2_000;
/// How long the service waits for the solver's plan.
pub const PLAN_WAIT_MS: u64 = 2_000;
/// Held money waits this long after a task's deadline for the task to be
/// marked done before it goes back to the pool.
pub const RELEASE_GRACE_HOURS_DEFAULT: i64 = 72;
/// Most entries written in one reconciling pass; the rest wait for the next.
pub const ENTRIES_PER_PASS_MAX: usize = 256;

/// Why held money went back, as the `reason` of a `released` entry.
pub const REASON_CANCELLED: &str = "the task was cancelled";
pub const REASON_DEADLINE: &str = "the deadline passed before the task was done";
pub const REASON_HELD: &str = "the task will complete: its team accepted, or it needs only money";
pub const REASON_WITHDRAWN: &str = "the donor withdrew the pledge";
pub const REASON_LOWERED: &str = "the donor lowered the pledge";
pub const REASON_EXPIRED: &str = "the pledge expired";

const KIND_ENTRY: &str = "entry";

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

enum Next {
    Event(Stored),
    Match(Stored),
    Entry(Stored),
    Disburse(Box<Request>),
    ReconcileDue,
    Shutdown,
}

struct Service {
    context: Context,
    config: LedgerConfig,
    store: Store,
    world: World,
    ledger: Ledger,
    /// The `SB_LEDGER` sequence of each applied entry, for replies to repeats.
    sequences: HashMap<String, u64>,
    /// The last `SB_LEDGER` sequence applied: the condition of the next write.
    ledger_position: u64,
    dirty: bool,
}

/// Runs the ledger service until `shutdown` is cancelled.
pub async fn run(
    context: Context,
    config: LedgerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    let store = Store::open_or_memory(config.state_directory.as_deref())?;
    let world = World::load(&store)?;
    let ledger_stream = context.subjects.ledger_stream();
    let ledger_position = store.position(&ledger_stream)?;
    let mut stored_entries: Vec<(String, LedgerEntry)> = store.load(KIND_ENTRY)?;
    // Keys are zero-padded sequences, so this is stream order.
    stored_entries.sort_by(|one, other| one.0.cmp(&other.0));
    let mut ledger = Ledger::new();
    let mut sequences = HashMap::new();
    for (key, entry) in &stored_entries {
        if let Err(refusal) = ledger.apply(entry) {
            anyhow::bail!("the stored ledger does not replay at {key}: {refusal}");
        }
        sequences.insert(entry.id.clone(), key.parse().unwrap_or_default());
    }
    let mut service = Service {
        context,
        config,
        store,
        world,
        ledger,
        sequences,
        ledger_position,
        dirty: true,
    };
    // All three logs are applied in full before anything is written, so a
    // restarted ledger knows every entry it made and repeats none.
    let subjects = service.context.subjects.clone();
    let mut entries = service.catch_up(&subjects.ledger_stream()).await?;
    let mut events = service.catch_up(&subjects.events_stream()).await?;
    let mut matches = service.catch_up(&subjects.matches_stream()).await?;

    let endpoint_service = service
        .context
        .client
        .service_builder()
        .description("The money ledger: confirms disbursals of held money.")
        .queue_group(QUEUE_GROUP_LEDGER)
        .start("sb-ledger", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|error| anyhow::anyhow!("starting the sb-ledger service: {error}"))?;
    let mut disbursals = endpoint_service
        .endpoint_builder()
        .name(Input::Disburse.token())
        .add(subjects.input(Input::Disburse))
        .await
        .map_err(|error| anyhow::anyhow!("adding the disburse endpoint: {error}"))?;
    service.context.health.set_caught_up();
    tracing::info!("ledger ready");

    let mut ticks = tokio::time::interval(Duration::from_millis(RECONCILE_INTERVAL_MS));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let debounce = if service.dirty {
            Duration::from_millis(RECONCILE_DEBOUNCE_MS)
        } else {
            Duration::from_millis(RECONCILE_INTERVAL_MS)
        };
        let next = tokio::select! {
            () = shutdown.cancelled() => Next::Shutdown,
            Some(stored) = entries.next() => Next::Entry(stored),
            Some(stored) = events.next() => Next::Event(stored),
            Some(stored) = matches.next() => Next::Match(stored),
            Some(request) = disbursals.next() => Next::Disburse(Box::new(request)),
            () = tokio::time::sleep(debounce) => Next::ReconcileDue,
            _ = ticks.tick() => Next::ReconcileDue,
        };
        let outcome = match next {
            Next::Entry(stored) => service.apply_entry_stored(&stored),
            Next::Event(stored) => service.apply_event_stored(&stored),
            Next::Match(stored) => service.apply_match_stored(&stored),
            Next::Disburse(request) => {
                service.handle_disbursal(*request).await;
                Ok(())
            }
            Next::ReconcileDue => service.reconcile().await,
            Next::Shutdown => break,
        };
        if let Err(error) = outcome {
            tracing::error!(error = %format!("{error:#}"), "ledger step failed; continuing");
        }
    }
    if let Err(error) = endpoint_service.stop().await {
        tracing::warn!(%error, "stopping the service endpoints");
    }
    service.store.flush()?;
    tracing::info!("ledger stopped");
    Ok(())
}

/// The store key of the entry at `sequence`: zero-padded, so keys sort in stream order.
fn entry_key(sequence: u64) -> String {
    format!("{sequence:020}")
}

impl Service {
    async fn catch_up(&mut self, stream: &str) -> anyhow::Result<Follower> {
        let applied = self.store.position(stream)?;
        let last = streams::last_sequence(&self.context.jetstream, stream).await?;
        let mut follower = Follower::start(&self.context.jetstream, stream, applied).await?;
        let mut position = applied;
        let subjects = &self.context.subjects;
        let (is_events, is_matches) = (
            stream == subjects.events_stream(),
            stream == subjects.matches_stream(),
        );
        while position < last {
            let Some(stored) = follower.next().await else {
                break;
            };
            position = stored.sequence;
            if is_events {
                self.apply_event_stored(&stored)?;
            } else if is_matches {
                self.apply_match_stored(&stored)?;
            } else {
                self.apply_entry_stored(&stored)?;
            }
        }
        tracing::info!(stream, from = applied, to = position, "ledger caught up");
        Ok(follower)
    }

    fn apply_event_stored(&mut self, stored: &Stored) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        match Event::decode(&self.context.subjects, &stored.subject, &stored.payload) {
            Ok(event) => {
                self.world.apply_event(&event, &mut changes)?;
                self.dirty = true;
            }
            Err(error) => {
                tracing::warn!(%error, sequence = stored.sequence, "unreadable event skipped")
            }
        }
        changes.position(&self.context.subjects.events_stream(), stored.sequence);
        self.store.commit(changes)
    }

    fn apply_match_stored(&mut self, stored: &Stored) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        match MatchEvent::decode(&self.context.subjects, &stored.subject, &stored.payload) {
            Ok(event) => {
                if !matches!(event, MatchEvent::Proposed(_)) {
                    self.dirty = true;
                }
                self.world.apply_match(&event, &mut changes)?;
            }
            Err(error) => {
                tracing::warn!(%error, sequence = stored.sequence, "unreadable match event skipped")
            }
        }
        changes.position(&self.context.subjects.matches_stream(), stored.sequence);
        self.store.commit(changes)
    }

    /// Applies an entry read back from `SB_LEDGER`; its own writes were
    /// applied when acknowledged, so those are skipped by position.
    fn apply_entry_stored(&mut self, stored: &Stored) -> anyhow::Result<()> {
        if stored.sequence <= self.ledger_position {
            return Ok(());
        }
        let entry = match serde_json::from_slice::<LedgerEntry>(&stored.payload) {
            Ok(entry) => Some(entry),
            Err(error) => {
                tracing::warn!(%error, sequence = stored.sequence, "unreadable ledger entry skipped");
                None
            }
        };
        self.record(entry, stored.sequence)
    }

    /// Applies `entry` (written at `sequence`) to the core and the store, with the position.
    fn record(&mut self, entry: Option<LedgerEntry>, sequence: u64) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        if let Some(entry) = entry {
            match self.ledger.apply(&entry) {
                Ok(Applied::New) => {
                    changes.put(KIND_ENTRY, &entry_key(sequence), &entry)?;
                    self.sequences.insert(entry.id.clone(), sequence);
                    self.dirty = true;
                }
                Ok(Applied::Repeat) => {}
                // Only a checked writer writes here; a refusal means someone
                // wrote around it. The entry changes nothing, and says so.
                Err(refusal) => {
                    tracing::error!(%refusal, id = %entry.id, sequence, "a ledger entry breaks the ledger; not applied")
                }
            }
        }
        self.ledger_position = sequence;
        changes.position(&self.context.subjects.ledger_stream(), sequence);
        self.store.commit(changes)
    }

    /// Writes `entry` if the core accepts it and nobody wrote since the
    /// last entry applied; `Ok(false)` when someone did (read, then decide again).
    async fn write(&mut self, entry: LedgerEntry) -> Result<bool, WriteError> {
        self.ledger
            .would_apply(&entry)
            .map_err(WriteError::Refused)?;
        let subject = self.context.subjects.ledger(entry.kind, entry.key());
        let payload = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
        let written = publish::durably_expecting(
            &self.context,
            &subject,
            &entry.id,
            Some(Expect::LastInStream(self.ledger_position)),
            payload,
        )
        .await;
        match written {
            Ok(sequence) => {
                tracing::debug!(id = %entry.id, sequence, "ledger entry written");
                self.record(Some(entry), sequence)
                    .map_err(|error| WriteError::Store(format!("{error:#}")))?;
                Ok(true)
            }
            Err(PublishError::Conflict { .. }) => Ok(false),
            Err(error @ PublishError::Unavailable { .. }) => {
                Err(WriteError::Unavailable(error.to_string()))
            }
        }
    }

    fn entry(
        &self,
        kind: EntryKind,
        key: &str,
        task: Option<&str>,
        currency: &str,
        movements: Vec<(String, Cents)>,
        reason: &str,
    ) -> LedgerEntry {
        LedgerEntry {
            id: self.ledger.next_id(kind, key),
            kind,
            task: task.map(str::to_owned),
            collective: task.and_then(|task| self.collective_of(task)),
            currency: currency.to_owned(),
            movements: movements
                .into_iter()
                .map(|(pledge, amount)| Movement {
                    pledge,
                    amount_cents: amount.get(),
                })
                .collect(),
            reason: Some(reason.to_owned()),
            reference: None,
            at: self.context.clock.now(),
        }
    }

    fn collective_of(&self, task: &str) -> Option<String> {
        self.world.collectives.get(task).cloned().or_else(|| {
            self.ledger
                .task(task)
                .and_then(|accounts| accounts.collective.clone())
        })
    }

    /// Brings the money in line with the world. Each write is decided on
    /// the state it is conditioned on; after a conflict the pass stops and
    /// the next one starts from what was written.
    #[tracing::instrument(name = "ledger.reconcile", skip_all)]
    async fn reconcile(&mut self) -> anyhow::Result<()> {
        self.dirty = false;
        let now = self.context.clock.now();
        let mut planned = self.pledge_entries(now);
        planned.extend(self.release_entries(now));
        let ready = self.ready_tasks(now);
        if planned.is_empty() && ready.is_empty() {
            return Ok(());
        }
        for entry in planned.into_iter().take(ENTRIES_PER_PASS_MAX) {
            if !self.write_logged(entry).await? {
                return Ok(());
            }
        }
        if ready.is_empty() {
            return Ok(());
        }
        let Some(plan) = self.plan().await else {
            tracing::debug!("no plan from the solver; holding waits for the next pass");
            return Ok(());
        };
        for task in ready {
            if let Some(entry) = self.hold_entry(&task, &plan, now) {
                if !self.write_logged(entry).await? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Writes one entry the service decided; `Ok(false)` stops the pass.
    async fn write_logged(&mut self, entry: LedgerEntry) -> anyhow::Result<bool> {
        let id = entry.id.clone();
        match self.write(entry).await {
            Ok(true) => Ok(true),
            Ok(false) => {
                tracing::info!(%id, "another writer came first; deciding again after reading it");
                self.dirty = true;
                Ok(false)
            }
            Err(WriteError::Refused(refusal)) => {
                // The world and the money disagree for now (a plan older than
                // the last hold): nothing is written, the next pass decides again.
                tracing::debug!(%id, %refusal, "entry not written");
                Ok(true)
            }
            Err(error) => Err(anyhow::anyhow!("writing {id}: {error}")),
        }
    }

    /// Pledges entering, growing, shrinking, withdrawn or expired.
    fn pledge_entries(&self, now: DateTime<Utc>) -> Vec<LedgerEntry> {
        let mut entries = Vec::new();
        let mut pledges: Vec<_> = self.world.pledges.values().collect();
        pledges.sort_by(|one, other| one.offer.id.cmp(&other.offer.id));
        for terms in pledges {
            let offer = &terms.offer;
            let Ok(pledge) = offer.validate("") else {
                continue;
            };
            let currency = pledge.currency.to_string();
            let id = offer.id.as_str();
            let expired = offer.expires_at.is_some_and(|expiry| expiry <= now);
            let accounts = self.ledger.pledge(id);
            if accounts.is_some_and(|accounts| accounts.currency != pledge.currency) {
                tracing::warn!(
                    pledge = id,
                    "a pledge's currency cannot change; the update is left out"
                );
                continue;
            }
            let available = accounts.map_or(Cents::ZERO, |accounts| accounts.available);
            if terms.withdrawn || expired {
                if available.get() > 0 {
                    let reason = if terms.withdrawn {
                        REASON_WITHDRAWN
                    } else {
                        REASON_EXPIRED
                    };
                    entries.push(self.entry(
                        EntryKind::Withdrawn,
                        id,
                        None,
                        &currency,
                        vec![(id.to_owned(), available)],
                        reason,
                    ));
                }
                continue;
            }
            // What the donor's current offer stands at in the ledger:
            // everything put in, less what was given back.
            let standing = accounts.map_or(0, |accounts| {
                accounts
                    .pledged
                    .get()
                    .saturating_sub(accounts.returned.get())
            });
            let wanted = offer.amount_cents;
            if wanted > standing {
                entries.push(self.entry(
                    EntryKind::Pledged,
                    id,
                    None,
                    &currency,
                    vec![(id.to_owned(), Cents(wanted - standing))],
                    "pledged",
                ));
            } else if wanted < standing {
                // Only the unallocated part can be taken back.
                let back = (standing - wanted).min(available.get());
                if back > 0 {
                    entries.push(self.entry(
                        EntryKind::Withdrawn,
                        id,
                        None,
                        &currency,
                        vec![(id.to_owned(), Cents(back))],
                        REASON_LOWERED,
                    ));
                }
            }
        }
        entries
    }

    /// Held money of tasks cancelled, or past their deadline and grace.
    fn release_entries(&self, now: DateTime<Utc>) -> Vec<LedgerEntry> {
        let mut entries = Vec::new();
        for (task, accounts) in self.ledger.tasks() {
            if accounts.held.is_empty() || self.world.done.contains(task) {
                continue;
            }
            let reason = match self.world.tasks.get(task) {
                None => REASON_CANCELLED,
                Some(spec) if spec.deadline + self.config.release_grace <= now => REASON_DEADLINE,
                Some(_) => continue,
            };
            entries.push(
                self.entry(
                    EntryKind::Released,
                    task,
                    Some(task),
                    accounts.currency.as_str(),
                    accounts
                        .held
                        .iter()
                        .map(|(pledge, cents)| (pledge.clone(), *cents))
                        .collect(),
                    reason,
                ),
            );
        }
        entries
    }

    /// Open money tasks that will complete and hold nothing yet.
    fn ready_tasks(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut ready: Vec<String> = self
            .world
            .money_tasks(now)
            .filter(|task| self.ledger.committed(&task.id) == Cents::ZERO)
            .filter(|task| self.world.team_complete(task))
            .map(|task| task.id.clone())
            .collect();
        ready.sort();
        ready
    }

    /// The hold the plan funds for `task`, if it funds all of it from
    /// pledges that may pay for it.
    fn hold_entry(&self, task: &str, plan: &Plan, now: DateTime<Utc>) -> Option<LedgerEntry> {
        let spec = self.world.tasks.get(task)?;
        let domain_task = spec.validate_standalone("").ok()?;
        let window_start = now.max(domain_task.earliest_start);
        let mut movements: Vec<(String, Cents)> = Vec::new();
        for funding in plan.funding.iter().filter(|funding| funding.task == task) {
            let terms = self.world.pledges.get(&funding.pledge)?;
            let pledge = terms.offer.validate("").ok()?;
            if terms.withdrawn || !pledge.can_fund(&domain_task, window_start) {
                return None;
            }
            movements.push((funding.pledge.clone(), Cents(funding.amount_cents)));
        }
        let total: u64 = movements.iter().map(|(_, cents)| cents.get()).sum();
        if movements.is_empty() || total != domain_task.money.get() {
            return None;
        }
        Some(self.entry(
            EntryKind::Held,
            task,
            Some(task),
            domain_task.currency.as_str(),
            movements,
            REASON_HELD,
        ))
    }

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

    #[tracing::instrument(name = "ledger.disburse", skip_all)]
    async fn handle_disbursal(&mut self, request: Request) {
        if !reply::has_safe_reply_subject(&self.context, &request) {
            return;
        }
        let reply = match self.disburse(&request.message.payload).await {
            Ok(reply) => reply,
            Err(refusal) => Reply::refused(refusal),
        };
        reply::respond(&self.context, &request, &reply).await;
    }

    /// Checks a disbursal against the ledger and writes it.
    async fn disburse(&mut self, body: &[u8]) -> Result<Reply, ErrorBody> {
        let disbursal: Disbursal = decode(body)?;
        disbursal.validate()?;
        let refuse = |code, field: &str, message: String| {
            ErrorBody::new(code, Some(field.to_owned()), message)
        };
        if let Some(earlier) = self.ledger.entry(&disbursal.id) {
            let same = earlier.kind == EntryKind::Disbursed
                && earlier.task.as_deref() == Some(disbursal.task.as_str())
                && earlier.reference.as_deref() == Some(disbursal.reference.trim());
            return match (same, self.sequences.get(&disbursal.id)) {
                (true, Some(&sequence)) => Ok(Reply::accepted(&disbursal.id, sequence)),
                _ => Err(refuse(
                    ErrorCode::Conflict,
                    "id",
                    format!("id {} was already used for another entry", disbursal.id),
                )),
            };
        }
        let collective = self.collective_of(&disbursal.task);
        let Some(collective) = collective else {
            return Err(refuse(
                ErrorCode::NotFound,
                "task",
                format!("no task {} is known", disbursal.task),
            ));
        };
        if let Some(claimed) = &disbursal.collective {
            if *claimed != collective {
                return Err(refuse(
                    ErrorCode::Unauthorized,
                    "collective",
                    format!("task {} is not of collective {claimed}", disbursal.task),
                ));
            }
        }
        let Some(accounts) = self
            .ledger
            .task(&disbursal.task)
            .filter(|accounts| !accounts.held.is_empty())
        else {
            return Err(refuse(
                ErrorCode::NotFound,
                "task",
                format!("nothing is held for task {}", disbursal.task),
            ));
        };
        let entry = LedgerEntry {
            id: disbursal.id.clone(),
            kind: EntryKind::Disbursed,
            task: Some(disbursal.task.clone()),
            collective: Some(collective),
            currency: accounts.currency.to_string(),
            movements: accounts
                .held
                .iter()
                .map(|(pledge, cents)| Movement {
                    pledge: pledge.clone(),
                    amount_cents: cents.get(),
                })
                .collect(),
            reason: Some("the payment was confirmed".to_owned()),
            reference: Some(disbursal.reference.trim().to_owned()),
            at: self.context.clock.now(),
        };
        match self.write(entry).await {
            Ok(true) => {
                let sequence = self.ledger_position;
                Ok(Reply::accepted(&disbursal.id, sequence))
            }
            Ok(false) => Err(reply::unavailable(
                "another ledger wrote at the same moment",
            )),
            Err(WriteError::Refused(refusal)) => {
                Err(refuse(ErrorCode::Conflict, "task", refusal.to_string()))
            }
            Err(error) => Err(reply::unavailable(error)),
        }
    }
}

/// Why an entry was not written.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("the ledger refuses it: {0}")]
    Refused(Refusal),
    #[error("{0}")]
    Unavailable(String),
    #[error("storing it failed: {0}")]
    Store(String),
}
