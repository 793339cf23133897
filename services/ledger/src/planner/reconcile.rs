//! Reconciling: bringing the money in line with the world.
//!
//! - a pledge enters the pool (`pledged`); a raise adds to it; a lowered,
//!   withdrawn or expired pledge gives back what is not held (`withdrawn`);
//! - money is `held` for a task only when the task will complete: a
//!   money-only task, or one whose whole team has accepted, funded exactly
//!   as the solver's plan says, from pledges that may fund it;
//! - held money is `released` when its task is cancelled, or its deadline
//!   and the grace period pass with the task not done.
//!
//! A pass decides the pledge and release entries when it starts (at most
//! [`ENTRIES_PER_PASS_MAX`]), writes them one after another, then, if any
//! task is ready to be held, asks for the plan and writes its holds. Each
//! entry is checked by the core against the state it is written on; one
//! the core refuses is left out (the world and the money disagree for now,
//! the next pass decides again).

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use proto::domain::Cents;
use proto::instance::Plan;
use proto::money::{EntryKind, LedgerEntry, Movement};

use super::{Effect, Now, Planner, Purpose, ENTRIES_PER_PASS_MAX};

/// Why held money went back, as the `reason` of a `released` entry.
pub const REASON_CANCELLED: &str = "the task was cancelled";
pub const REASON_DEADLINE: &str = "the deadline passed before the task was done";
pub const REASON_HELD: &str = "the task will complete: its team accepted, or it needs only money";
pub const REASON_WITHDRAWN: &str = "the donor withdrew the pledge";
pub const REASON_LOWERED: &str = "the donor lowered the pledge";
pub const REASON_EXPIRED: &str = "the pledge expired";

/// What an entry is, short of its movements and time.
struct Draft<'a> {
    kind: EntryKind,
    key: &'a str,
    task: Option<&'a str>,
    currency: &'a str,
    reason: &'a str,
}

/// A reconciling pass under way.
#[derive(Debug)]
pub struct Pass {
    /// The switchboard's time it decides on.
    started_at: DateTime<Utc>,
    /// Pledge and release entries still to write.
    planned: VecDeque<LedgerEntry>,
    /// Tasks that will complete and hold nothing yet.
    ready: Vec<String>,
    /// The plan, once fetched, and the ready tasks whose holds are still
    /// to decide.
    plan: Option<Plan>,
    holding: VecDeque<String>,
}

impl Pass {
    /// Holding goes on from `plan`, task by task.
    pub fn hold_from(&mut self, plan: Plan) {
        self.holding = self.ready.drain(..).collect();
        self.plan = Some(plan);
    }
}

impl Planner {
    pub(super) fn start_pass(&mut self, now: Now, effects: &mut Vec<Effect>) {
        self.dirty = false;
        self.reconciled_at = Some(now.steady);
        let mut planned = self.pledge_entries(now.at);
        planned.extend(self.release_entries(now.at));
        let ready = self.ready_tasks(now.at);
        if planned.is_empty() && ready.is_empty() {
            return;
        }
        self.pass = Some(Pass {
            started_at: now.at,
            planned: planned.into_iter().take(ENTRIES_PER_PASS_MAX).collect(),
            ready,
            plan: None,
            holding: VecDeque::new(),
        });
        self.advance_pass(now, effects);
    }

    /// Asks for the pass's next write, or the plan; ends the pass when
    /// nothing is left.
    pub(super) fn advance_pass(&mut self, now: Now, effects: &mut Vec<Effect>) {
        loop {
            let Some(pass) = self.pass.as_mut() else {
                return;
            };
            let entry = if let Some(entry) = pass.planned.pop_front() {
                entry
            } else if pass.plan.is_none() {
                if pass.ready.is_empty() {
                    self.pass = None;
                } else {
                    effects.push(Effect::FetchPlan);
                }
                return;
            } else if let Some(task) = pass.holding.pop_front() {
                let started_at = pass.started_at;
                let hold = self
                    .pass
                    .as_ref()
                    .and_then(|pass| pass.plan.as_ref())
                    .and_then(|plan| self.hold_entry(&task, plan, started_at, now.at));
                match hold {
                    Some(entry) => entry,
                    None => continue,
                }
            } else {
                self.pass = None;
                return;
            };
            if self
                .ask_to_write(entry, Purpose::Reconcile, effects)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Asks for `entry` to be written, conditional on the last entry
    /// applied, if the core accepts it.
    pub(super) fn ask_to_write(
        &self,
        entry: LedgerEntry,
        purpose: Purpose,
        effects: &mut Vec<Effect>,
    ) -> Result<(), ledger_core::Refusal> {
        if let Err(refusal) = self.ledger.would_apply(&entry) {
            tracing::debug!(id = %entry.id, %refusal, "entry not written");
            return Err(refusal);
        }
        effects.push(Effect::Write {
            entry: Box::new(entry),
            expected_last_sequence: self.ledger_position,
            purpose,
        });
        Ok(())
    }

    /// The entry `draft` describes, moving `movements`, made at `at`.
    fn entry(
        &self,
        draft: Draft<'_>,
        movements: Vec<(String, Cents)>,
        at: DateTime<Utc>,
    ) -> LedgerEntry {
        LedgerEntry {
            id: self.ledger.next_id(draft.kind, draft.key),
            kind: draft.kind,
            task: draft.task.map(str::to_owned),
            collective: draft.task.and_then(|task| self.collective_of(task)),
            currency: draft.currency.to_owned(),
            movements: movements
                .into_iter()
                .map(|(pledge, amount)| Movement {
                    pledge,
                    amount_cents: amount.get(),
                })
                .collect(),
            reason: Some(draft.reason.to_owned()),
            reference: None,
            at,
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
            let draft = |kind, reason| Draft {
                kind,
                key: id,
                task: None,
                currency: &currency,
                reason,
            };
            let give_back = |cents: u64, reason| {
                let movements = vec![(id.to_owned(), Cents(cents))];
                self.entry(draft(EntryKind::Withdrawn, reason), movements, now)
            };
            if terms.withdrawn || expired {
                if available.get() > 0 {
                    let reason = if terms.withdrawn {
                        REASON_WITHDRAWN
                    } else {
                        REASON_EXPIRED
                    };
                    entries.push(give_back(available.get(), reason));
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
                let movements = vec![(id.to_owned(), Cents(wanted - standing))];
                entries.push(self.entry(draft(EntryKind::Pledged, "pledged"), movements, now));
            } else if wanted < standing {
                // Only the unallocated part can be taken back.
                let back = (standing - wanted).min(available.get());
                if back > 0 {
                    entries.push(give_back(back, REASON_LOWERED));
                }
            }
        }
        entries
    }

    /// Held money of tasks cancelled, or past their deadline and grace.
    fn release_entries(&self, now: DateTime<Utc>) -> Vec<LedgerEntry> {
        let mut entries = Vec::new();
        for (task, accounts) in self.ledger.tasks() {
            if accounts.held.is_empty() || self.world.is_done(task) {
                continue;
            }
            let reason = match self.world.open_task(task) {
                None => REASON_CANCELLED,
                Some(spec) if spec.deadline + self.config.release_grace <= now => REASON_DEADLINE,
                Some(_) => continue,
            };
            let movements = accounts
                .held
                .iter()
                .map(|(pledge, cents)| (pledge.clone(), *cents))
                .collect();
            let draft = Draft {
                kind: EntryKind::Released,
                key: task,
                task: Some(task),
                currency: accounts.currency.as_str(),
                reason,
            };
            entries.push(self.entry(draft, movements, now));
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
    /// pledges that may pay for it (judged at `decided_at`, the pass's time).
    fn hold_entry(
        &self,
        task: &str,
        plan: &Plan,
        decided_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<LedgerEntry> {
        let spec = self.world.open_task(task)?;
        let domain_task = spec.validate_standalone("").ok()?;
        let window_start = decided_at.max(domain_task.earliest_start);
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
        let draft = Draft {
            kind: EntryKind::Held,
            key: task,
            task: Some(task),
            currency: domain_task.currency.as_str(),
            reason: REASON_HELD,
        };
        Some(self.entry(draft, movements, now))
    }
}
