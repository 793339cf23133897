//! The ledger service's planner: the money and the world it follows, and
//! every decision about them, with no I/O (STYLE.md 15).
//!
//! [`Planner::step`] takes one [`Input`] (a message read from a log, the
//! clock's wake-up, a disbursal request, or the outcome of an effect it
//! asked for) and the time, and returns the [`Effect`]s to carry out in
//! order. A reconciling pass ([`reconcile`]) is a little machine of its
//! own: it writes one entry at a time, each conditional on the last
//! `SB_LEDGER` sequence applied, and decides the next only when the last
//! one's outcome came back; a conflict ends the pass, and the next one
//! starts from what the other writer wrote. The shell in the crate root
//! feeds every outcome back before anything else, so a pass never sees a
//! state its writes did not leave.
//!
//! Every entry is checked by the pure core (`ledger-core`) before it is
//! asked for, and again when it is read back: an entry the core refuses
//! changes nothing.

mod disburse;
mod reconcile;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use ledger_core::{Applied, Ledger};
use needs_core::{NeedBook, NeedEntry, TaskEntry};
use plumbing::follow::{Log, Stored};
use proto::events::{Event, MatchEvent};
use proto::instance::Plan;
use proto::money::LedgerEntry;
use proto::subjects::Subjects;
use proto::wire::Reply;
use tokio::time::Instant;

use crate::view::{PairState, PledgeTerms, World};
use reconcile::Pass;

pub use reconcile::{
    REASON_CANCELLED, REASON_DEADLINE, REASON_EXPIRED, REASON_HELD, REASON_LOWERED,
    REASON_WITHDRAWN,
};

/// Quiet time after a change before reconciling, so a burst is handled once.
pub const RECONCILE_DEBOUNCE_MS: u64 = 50;
/// Reconciling runs at least this often: deadlines and expiries pass.
pub const RECONCILE_INTERVAL_MS: u64 = 2_000;
/// Most entries written in one reconciling pass; the rest wait for the next.
pub const ENTRIES_PER_PASS_MAX: usize = 256;

/// Names a request the shell holds while the planner decides its reply.
pub type RequestId = u64;

/// The time of a step: the switchboard's, for what the money depends on
/// (deadlines, expiries, the entries' `at`), and the machine's steady
/// clock, for pacing the passes (a fast simulated clock must not make
/// them run flat out).
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub at: DateTime<Utc>,
    pub steady: Instant,
}

/// What the planner is told about the deployment.
#[derive(Clone, Debug)]
pub struct PlannerConfig {
    pub subjects: Subjects,
    /// Held money of a task not done goes back this long after its deadline.
    pub release_grace: chrono::Duration,
}

/// What the store held at start ([`crate::state::load`]).
#[derive(Debug, Default)]
pub struct Saved {
    /// Entries by their zero-padded `SB_LEDGER` sequence.
    pub entries: Vec<(String, LedgerEntry)>,
    pub needs: Vec<(String, NeedEntry)>,
    pub tasks: Vec<(String, TaskEntry)>,
    pub pledges: Vec<(String, PledgeTerms)>,
    pub pairs: Vec<(String, PairState)>,
    /// The last `SB_LEDGER` sequence applied.
    pub ledger_position: u64,
}

/// Everything that can happen to the ledger service.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message of `SB_EVENTS`, `SB_MATCHES` or `SB_LEDGER`, in log order.
    Stored(Log, Stored),
    /// The time asked for by the last [`Effect::WakeAt`] has come.
    Wake,
    /// A disbursal confirmed on `sb.in.disburse`.
    Disburse { request: RequestId, body: Bytes },
    /// The outcome of [`Effect::Write`]: in `SB_LEDGER` at `sequence`.
    Written {
        entry: Box<LedgerEntry>,
        sequence: u64,
        purpose: Purpose,
    },
    /// The outcome of [`Effect::Write`]: another writer came first.
    Conflict {
        entry: Box<LedgerEntry>,
        purpose: Purpose,
    },
    /// The outcome of [`Effect::Write`]: not acknowledged; `reason` says why.
    NotWritten {
        entry: Box<LedgerEntry>,
        purpose: Purpose,
        reason: String,
    },
    /// The outcome of [`Effect::FetchPlan`]: the solver's plan, if it answered.
    PlanFetched(Option<Box<Plan>>),
}

/// What the shell is to do, in the order given.
#[derive(Clone, Debug)]
pub enum Effect {
    /// One atomic store batch.
    Commit(Vec<Write>),
    /// `entry` written to `SB_LEDGER` only if the stream still ends at
    /// `expected_last_sequence`; the outcome comes back as
    /// [`Input::Written`], [`Input::Conflict`] or [`Input::NotWritten`].
    Write {
        entry: Box<LedgerEntry>,
        expected_last_sequence: u64,
        purpose: Purpose,
    },
    /// Ask the solver for its plan (`sb.plan.get`); the outcome comes back
    /// as [`Input::PlanFetched`].
    FetchPlan,
    /// The reply to a request.
    Reply { request: RequestId, reply: Reply },
    /// When to wake the planner next.
    WakeAt(Instant),
    /// A malformed or moot message, passed (logged by the shell's policy).
    Skipped(String),
}

/// What an entry is written for, which says what its outcome leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The reconciling pass: the next entry follows.
    Reconcile,
    /// A disbursal request, replied to with the outcome.
    Disbursal { request: RequestId },
}

/// One write of a store batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// The entry at `sequence` of `SB_LEDGER`.
    Entry {
        sequence: u64,
        entry: Box<LedgerEntry>,
    },
    Need {
        id: String,
        entry: NeedEntry,
    },
    Task {
        id: String,
        entry: Box<TaskEntry>,
    },
    Pledge(Box<PledgeTerms>),
    /// A volunteer's round on a task (`volunteer/task`), or its end.
    Pair {
        key: String,
        state: Option<PairState>,
    },
    /// Everything of the log up to `sequence` is applied.
    Position {
        log: Log,
        sequence: u64,
    },
}

/// The stored ledger does not replay: the store cannot be trusted.
#[derive(Debug, thiserror::Error)]
#[error("the stored ledger does not replay at {key}: {refusal}")]
pub struct NotReplayed {
    pub key: String,
    pub refusal: ledger_core::Refusal,
}

/// The ledger service's state and decisions.
pub struct Planner {
    config: PlannerConfig,
    world: World,
    ledger: Ledger,
    /// The `SB_LEDGER` sequence of each applied entry, for replies to repeats.
    sequences: HashMap<String, u64>,
    /// The last `SB_LEDGER` sequence applied: the condition of the next write.
    ledger_position: u64,
    /// Something changed since the last pass began...
    dirty: bool,
    /// ...last at this time.
    changed_at: Option<Instant>,
    /// When the last pass began (`None`: none yet, one is due at once).
    reconciled_at: Option<Instant>,
    /// The pass under way, between a write and its outcome.
    pass: Option<Pass>,
    announced_wake: Option<Instant>,
    /// Effects asked for whose outcome has not come back: the wake-up is
    /// announced only when there are none, so a stale one never comes last.
    outstanding: usize,
}

impl Planner {
    /// The planner over what the store held; the entries replay through
    /// the core, and one it refuses means the store cannot be trusted.
    pub fn restore(config: PlannerConfig, saved: Saved) -> Result<Planner, NotReplayed> {
        let mut entries = saved.entries;
        // Keys are zero-padded sequences, so this is stream order.
        entries.sort_by(|one, other| one.0.cmp(&other.0));
        let mut ledger = Ledger::new();
        let mut sequences = HashMap::new();
        for (key, entry) in &entries {
            if let Err(refusal) = ledger.apply(entry) {
                return Err(NotReplayed {
                    key: key.clone(),
                    refusal,
                });
            }
            sequences.insert(entry.id.clone(), key.parse().unwrap_or_default());
        }
        Ok(Planner {
            config,
            world: World::new(
                NeedBook::from_entries(saved.needs, saved.tasks),
                saved.pledges,
                saved.pairs,
            ),
            ledger,
            sequences,
            ledger_position: saved.ledger_position,
            dirty: true,
            changed_at: None,
            reconciled_at: None,
            pass: None,
            announced_wake: None,
            outstanding: 0,
        })
    }

    /// The money as applied.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The last `SB_LEDGER` sequence applied.
    pub fn ledger_position(&self) -> u64 {
        self.ledger_position
    }

    /// Handles one input at `now`; the effects are to be carried out in order.
    pub fn step(&mut self, input: Input, now: Now) -> Vec<Effect> {
        let mut effects = Vec::new();
        if matches!(
            input,
            Input::Written { .. }
                | Input::Conflict { .. }
                | Input::NotWritten { .. }
                | Input::PlanFetched(_)
        ) {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        match input {
            Input::Stored(log, stored) => self.apply_stored(log, &stored, now, &mut effects),
            Input::Wake => {
                if self.pass.is_none() && now.steady >= self.due_at(now) {
                    self.start_pass(now, &mut effects);
                }
            }
            Input::Disburse { request, body } => self.disburse(request, &body, now, &mut effects),
            Input::Written {
                entry,
                sequence,
                purpose,
            } => self.written(*entry, sequence, purpose, now, &mut effects),
            Input::Conflict { entry, purpose } => self.conflict(&entry, purpose, now, &mut effects),
            Input::NotWritten {
                entry,
                purpose,
                reason,
            } => self.not_written(&entry, purpose, reason, &mut effects),
            Input::PlanFetched(plan) => self.plan_fetched(plan, now, &mut effects),
        }
        self.outstanding += effects
            .iter()
            .filter(|effect| matches!(effect, Effect::Write { .. } | Effect::FetchPlan))
            .count();
        let wake = self.due_at(now);
        if self.outstanding == 0 && self.announced_wake != Some(wake) {
            self.announced_wake = Some(wake);
            effects.push(Effect::WakeAt(wake));
        }
        effects
    }

    /// When the next pass is due: soon after a burst of changes ends, and
    /// at least every [`RECONCILE_INTERVAL_MS`].
    fn due_at(&self, now: Now) -> Instant {
        let Some(reconciled_at) = self.reconciled_at else {
            return now.steady;
        };
        let interval = reconciled_at + Duration::from_millis(RECONCILE_INTERVAL_MS);
        match self.changed_at.filter(|_| self.dirty) {
            Some(changed_at) => {
                interval.min(changed_at + Duration::from_millis(RECONCILE_DEBOUNCE_MS))
            }
            None if self.dirty => now.steady,
            None => interval,
        }
    }

    fn changed(&mut self, now: Now) {
        self.dirty = true;
        self.changed_at = Some(now.steady);
    }

    fn apply_stored(&mut self, log: Log, stored: &Stored, now: Now, effects: &mut Vec<Effect>) {
        let mut writes = Vec::new();
        let subjects = &self.config.subjects;
        match log {
            Log::Events => match Event::decode(subjects, &stored.subject, &stored.payload) {
                Ok(event) => {
                    self.world.apply_event(&event, &mut writes);
                    self.changed(now);
                }
                Err(error) => effects.push(Effect::Skipped(format!(
                    "unreadable event at {}: {error}",
                    stored.sequence
                ))),
            },
            Log::Matches => match MatchEvent::decode(subjects, &stored.subject, &stored.payload) {
                Ok(event) => {
                    if !matches!(event, MatchEvent::Proposed(_)) {
                        self.changed(now);
                    }
                    self.world.apply_match(&event, &mut writes);
                }
                Err(error) => effects.push(Effect::Skipped(format!(
                    "unreadable match event at {}: {error}",
                    stored.sequence
                ))),
            },
            Log::Ledger => {
                // Its own writes were applied when acknowledged.
                if stored.sequence <= self.ledger_position {
                    return;
                }
                match serde_json::from_slice::<LedgerEntry>(&stored.payload) {
                    Ok(entry) => self.record(entry, stored.sequence, now, effects),
                    Err(error) => {
                        effects.push(Effect::Skipped(format!(
                            "unreadable ledger entry at {}: {error}",
                            stored.sequence
                        )));
                        self.ledger_position = stored.sequence;
                        effects.push(Effect::Commit(vec![Write::Position {
                            log,
                            sequence: stored.sequence,
                        }]));
                    }
                }
                return;
            }
        }
        writes.push(Write::Position {
            log,
            sequence: stored.sequence,
        });
        effects.push(Effect::Commit(writes));
    }

    /// Applies `entry`, written at `sequence`, to the core, and commits it
    /// with the position.
    fn record(&mut self, entry: LedgerEntry, sequence: u64, now: Now, effects: &mut Vec<Effect>) {
        let mut writes = Vec::new();
        match self.ledger.apply(&entry) {
            Ok(Applied::New) => {
                self.sequences.insert(entry.id.clone(), sequence);
                writes.push(Write::Entry {
                    sequence,
                    entry: Box::new(entry),
                });
                self.changed(now);
            }
            Ok(Applied::Repeat) => {}
            // Only a checked writer writes here; a refusal means someone
            // wrote around it. The entry changes nothing, and says so.
            Err(refusal) => effects.push(Effect::Skipped(format!(
                "the ledger entry {} at {sequence} breaks the ledger and is not applied: {refusal}",
                entry.id
            ))),
        }
        self.ledger_position = sequence;
        writes.push(Write::Position {
            log: Log::Ledger,
            sequence,
        });
        effects.push(Effect::Commit(writes));
    }

    /// An entry is in `SB_LEDGER`: the core applies it, and what waited on
    /// it follows.
    fn written(
        &mut self,
        entry: LedgerEntry,
        sequence: u64,
        purpose: Purpose,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        tracing::debug!(id = %entry.id, sequence, "ledger entry written");
        let id = entry.id.clone();
        self.record(entry, sequence, now, effects);
        match purpose {
            Purpose::Reconcile => self.advance_pass(now, effects),
            Purpose::Disbursal { request } => effects.push(Effect::Reply {
                request,
                reply: Reply::accepted(&id, sequence),
            }),
        }
    }

    /// Another writer came first: read what it wrote, then decide again.
    fn conflict(
        &mut self,
        entry: &LedgerEntry,
        purpose: Purpose,
        now: Now,
        effects: &mut Vec<Effect>,
    ) {
        match purpose {
            Purpose::Reconcile => {
                tracing::info!(id = %entry.id, "another writer came first; deciding again after reading it");
                self.pass = None;
                self.changed(now);
            }
            Purpose::Disbursal { request } => effects.push(Effect::Reply {
                request,
                reply: Reply::refused(plumbing::reply::unavailable(
                    "another ledger wrote at the same moment",
                )),
            }),
        }
    }

    /// The write was not acknowledged: the pass ends (the next one decides
    /// again), a disbursal is told to try again.
    fn not_written(
        &mut self,
        entry: &LedgerEntry,
        purpose: Purpose,
        reason: String,
        effects: &mut Vec<Effect>,
    ) {
        match purpose {
            Purpose::Reconcile => {
                tracing::debug!(id = %entry.id, "the pass ends without its write");
                self.pass = None;
            }
            Purpose::Disbursal { request } => effects.push(Effect::Reply {
                request,
                reply: Reply::refused(plumbing::reply::unavailable(reason)),
            }),
        }
    }

    fn plan_fetched(&mut self, plan: Option<Box<Plan>>, now: Now, effects: &mut Vec<Effect>) {
        let Some(pass) = self.pass.as_mut() else {
            return;
        };
        match plan {
            Some(plan) => {
                pass.hold_from(*plan);
                self.advance_pass(now, effects);
            }
            None => {
                tracing::debug!("no plan from the solver; holding waits for the next pass");
                self.pass = None;
            }
        }
    }

    /// The collective a task's money goes to.
    fn collective_of(&self, task: &str) -> Option<String> {
        self.world.collective(task).or_else(|| {
            self.ledger
                .task(task)
                .and_then(|accounts| accounts.collective.clone())
        })
    }
}
