//! The money ledger's pure core: no I/O, like the matching core.
//!
//! Each pledge has its accounts (`pledged` → `available` → `held:<task>` →
//! `disbursed:<task>`, and `returned`); an entry ([`LedgerEntry`]) moves
//! whole cents between two of them for one or more pledges, all or nothing
//! (the table is in `proto::money`). [`Ledger::apply`] checks an entry
//! against the state it would change and refuses it with a [`Refusal`]
//! naming what would break; a refused entry changes nothing. Balances are a
//! fold of the applied entries ([`Ledger::replay`] rebuilds them from the
//! journal alone), and after every change the touched accounts are checked
//! against the invariants:
//!
//! - no balance is negative: nothing is held, disbursed or returned that
//!   was not available (no pledge is over-committed);
//! - per pledge, `available + held + disbursed + returned = pledged`;
//! - per task, money comes in one currency, is held once until released or
//!   disbursed, and a release or disbursal moves all of it, so nothing stays
//!   held for a task once it is released;
//! - an entry id is applied once: the same entry again is a repeat that
//!   changes nothing, another entry under a used id is refused.
//!
//! Architecture invariant: money is integer cents ([`Cents`]) everywhere
//! here; no float touches it.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use proto::domain::{Cents, Currency};
use proto::money::{EntryKind, LedgerEntry};
use proto::validate::AMOUNT_CENTS_MAX;
use proto::Id;

/// Most pledges one entry may move: a task is funded from a handful.
pub const MOVEMENTS_PER_ENTRY_MAX: usize = 64;

/// Why an entry was refused. The ledger is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The entry itself is malformed; `field` says where.
    #[error("{0}")]
    Invalid(#[from] proto::Invalid),
    #[error("entry id {id} was already used for a different entry")]
    IdReused { id: String },
    #[error("pledge {pledge} is not in the ledger")]
    UnknownPledge { pledge: String },
    #[error("pledge {pledge} is in {pledge_currency}, the entry in {entry_currency}")]
    CurrencyMismatch {
        pledge: String,
        pledge_currency: String,
        entry_currency: String,
    },
    #[error(
        "pledge {pledge} has {available} available; {wanted} asked: it would be over-committed"
    )]
    OverCommitted {
        pledge: String,
        available: Cents,
        wanted: Cents,
    },
    #[error("task {task} already has money held or disbursed")]
    AlreadyFunded { task: String },
    #[error("nothing is held for task {task}")]
    NothingHeld { task: String },
    #[error(
        "a {kind} entry must move all {held} held for {task} from pledge {pledge}, not {moved}"
    )]
    NotWhole {
        kind: &'static str,
        task: String,
        pledge: String,
        held: Cents,
        moved: Cents,
    },
    #[error("a sum of money would overflow")]
    Overflow,
    /// A programmer error: the checks above should have refused the entry.
    #[error("invariant broken for pledge {pledge}: {what}")]
    Invariant { pledge: String, what: String },
}

/// What applying an entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The entry is now in the ledger.
    New,
    /// The same entry was applied before: nothing changed.
    Repeat,
}

/// One pledge's accounts, in cents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PledgeAccounts {
    pub currency: Currency,
    /// Everything the donor ever put in (the credit of `pledged`).
    pub pledged: Cents,
    /// In the pool, free to be held.
    pub available: Cents,
    /// Held per task.
    pub held: BTreeMap<String, Cents>,
    /// Paid out per task.
    pub disbursed: BTreeMap<String, Cents>,
    /// Given back: withdrawn, lowered or expired.
    pub returned: Cents,
}

impl PledgeAccounts {
    fn new(currency: Currency) -> PledgeAccounts {
        PledgeAccounts {
            currency,
            pledged: Cents::ZERO,
            available: Cents::ZERO,
            held: BTreeMap::new(),
            disbursed: BTreeMap::new(),
            returned: Cents::ZERO,
        }
    }

    pub fn held_total(&self) -> Cents {
        Cents(self.held.values().map(|cents| cents.0).sum())
    }

    pub fn disbursed_total(&self) -> Cents {
        Cents(self.disbursed.values().map(|cents| cents.0).sum())
    }

    /// `available + held + disbursed + returned = pledged`, and no zero
    /// balances kept for a task (they would read as "held").
    fn check(&self, pledge: &str) -> Result<(), Refusal> {
        let broken = |what: String| Refusal::Invariant {
            pledge: pledge.to_owned(),
            what,
        };
        let parts = [
            self.available,
            self.held_total(),
            self.disbursed_total(),
            self.returned,
        ];
        let sum = parts
            .iter()
            .try_fold(Cents::ZERO, |total, part| total.checked_add(*part))
            .ok_or(Refusal::Overflow)?;
        if sum != self.pledged {
            return Err(broken(format!(
                "its accounts sum to {sum}, but {} was pledged",
                self.pledged
            )));
        }
        if self
            .held
            .values()
            .chain(self.disbursed.values())
            .any(|cents| cents.0 == 0)
        {
            return Err(broken("a task account of zero is kept".to_owned()));
        }
        Ok(())
    }
}

/// One task's money, in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskAccounts {
    pub currency: Currency,
    /// The collective the task belongs to, as the entries said.
    pub collective: Option<String>,
    /// Held now, per pledge.
    pub held: BTreeMap<String, Cents>,
    /// Paid out, per pledge.
    pub disbursed: BTreeMap<String, Cents>,
    /// The references of its disbursals.
    pub references: Vec<String>,
}

impl TaskAccounts {
    pub fn held_total(&self) -> Cents {
        Cents(self.held.values().map(|cents| cents.0).sum())
    }

    pub fn disbursed_total(&self) -> Cents {
        Cents(self.disbursed.values().map(|cents| cents.0).sum())
    }

    /// Held and disbursed together: what the task's money is secured by.
    pub fn committed(&self) -> Cents {
        Cents(self.held_total().0 + self.disbursed_total().0)
    }
}

/// The whole ledger: every pledge's and task's accounts, and the journal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledger {
    pledges: BTreeMap<String, PledgeAccounts>,
    tasks: BTreeMap<String, TaskAccounts>,
    /// Every applied entry, in order.
    journal: Vec<LedgerEntry>,
    /// Entry id to its place in the journal.
    by_id: BTreeMap<String, usize>,
    /// Entries per (kind, key), for the ids the ledger makes itself.
    counts: BTreeMap<(EntryKind, String), u32>,
}

/// An entry checked on its own, before the state is looked at.
struct Checked {
    currency: Currency,
    task: Option<String>,
    movements: Vec<(String, Cents)>,
}

fn check_shape(entry: &LedgerEntry) -> Result<Checked, Refusal> {
    if entry.id.is_empty() || entry.id.len() > 200 || entry.id.chars().any(char::is_control) {
        return Err(proto::Invalid::new("id", "1-200 characters, no control characters").into());
    }
    let currency = Currency::parse(&entry.currency)
        .ok_or_else(|| proto::Invalid::new("currency", "three capital letters"))?;
    let task = match (&entry.task, entry.kind.has_task()) {
        (Some(task), true) => Some(Id::parse(task, "task")?.as_str().to_owned()),
        (None, true) => {
            return Err(proto::Invalid::new(
                "task",
                format!("a {} entry names its task", entry.kind.token()),
            )
            .into())
        }
        (Some(_), false) => {
            return Err(proto::Invalid::new(
                "task",
                format!("a {} entry names no task", entry.kind.token()),
            )
            .into())
        }
        (None, false) => None,
    };
    if entry.movements.is_empty() || entry.movements.len() > MOVEMENTS_PER_ENTRY_MAX {
        return Err(proto::Invalid::new(
            "movements",
            format!("1 to {MOVEMENTS_PER_ENTRY_MAX} movements"),
        )
        .into());
    }
    if entry.kind == EntryKind::Disbursed
        && entry
            .reference
            .as_deref()
            .is_none_or(|reference| reference.trim().is_empty())
    {
        return Err(proto::Invalid::new("reference", "a disbursal has a reference").into());
    }
    let mut movements: Vec<(String, Cents)> = Vec::with_capacity(entry.movements.len());
    for (index, movement) in entry.movements.iter().enumerate() {
        let pledge = Id::parse(&movement.pledge, &format!("movements[{index}].pledge"))?;
        if movement.amount_cents == 0 || movement.amount_cents > AMOUNT_CENTS_MAX {
            return Err(proto::Invalid::new(
                format!("movements[{index}].amount_cents"),
                format!("must be 1 to {AMOUNT_CENTS_MAX} cents"),
            )
            .into());
        }
        if movements.iter().any(|(seen, _)| seen == pledge.as_str()) {
            return Err(proto::Invalid::new(
                format!("movements[{index}].pledge"),
                "each pledge at most once per entry",
            )
            .into());
        }
        movements.push((pledge.as_str().to_owned(), Cents(movement.amount_cents)));
    }
    Ok(Checked {
        currency,
        task,
        movements,
    })
}

fn add(balance: &mut Cents, amount: Cents) -> Result<(), Refusal> {
    *balance = balance.checked_add(amount).ok_or(Refusal::Overflow)?;
    Ok(())
}

fn take(balance: &mut Cents, amount: Cents, pledge: &str) -> Result<(), Refusal> {
    *balance = balance
        .checked_sub(amount)
        .ok_or_else(|| Refusal::OverCommitted {
            pledge: pledge.to_owned(),
            available: *balance,
            wanted: amount,
        })?;
    Ok(())
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// The ledger the entries make, in order; entries that are refused are
    /// returned with why (a stream written by one checked writer has none).
    pub fn replay<'a>(
        entries: impl IntoIterator<Item = &'a LedgerEntry>,
    ) -> (Ledger, Vec<(String, Refusal)>) {
        let mut ledger = Ledger::new();
        let mut refused = Vec::new();
        for entry in entries {
            if let Err(refusal) = ledger.apply(entry) {
                refused.push((entry.id.clone(), refusal));
            }
        }
        (ledger, refused)
    }

    // tidy: long: one all-or-nothing transaction (copy what the entry touches, move the money by kind, commit once); each part would need the copies.
    /// Applies one entry, all or nothing.
    pub fn apply(&mut self, entry: &LedgerEntry) -> Result<Applied, Refusal> {
        if let Some(&index) = self.by_id.get(&entry.id) {
            return if self.journal[index] == *entry {
                Ok(Applied::Repeat)
            } else {
                Err(Refusal::IdReused {
                    id: entry.id.clone(),
                })
            };
        }
        let checked = check_shape(entry)?;
        // Work on copies of what the entry touches; commit only if all holds.
        let mut pledges: BTreeMap<String, PledgeAccounts> = BTreeMap::new();
        for (pledge, _) in &checked.movements {
            let accounts = match (self.pledges.get(pledge), entry.kind) {
                (Some(accounts), _) => accounts.clone(),
                (None, EntryKind::Pledged) => PledgeAccounts::new(checked.currency.clone()),
                (None, _) => {
                    return Err(Refusal::UnknownPledge {
                        pledge: pledge.clone(),
                    })
                }
            };
            if accounts.currency != checked.currency {
                return Err(Refusal::CurrencyMismatch {
                    pledge: pledge.clone(),
                    pledge_currency: accounts.currency.to_string(),
                    entry_currency: checked.currency.to_string(),
                });
            }
            pledges.insert(pledge.clone(), accounts);
        }
        let mut task = checked.task.as_ref().map(|task| {
            self.tasks.get(task).cloned().unwrap_or(TaskAccounts {
                currency: checked.currency.clone(),
                collective: None,
                held: BTreeMap::new(),
                disbursed: BTreeMap::new(),
                references: Vec::new(),
            })
        });
        let task_id = checked.task.clone().unwrap_or_default();
        match entry.kind {
            EntryKind::Pledged => {
                for (pledge, amount) in &checked.movements {
                    let accounts = pledges.get_mut(pledge).ok_or(Refusal::Overflow)?;
                    add(&mut accounts.pledged, *amount)?;
                    add(&mut accounts.available, *amount)?;
                }
            }
            EntryKind::Withdrawn => {
                for (pledge, amount) in &checked.movements {
                    let accounts = pledges.get_mut(pledge).ok_or(Refusal::Overflow)?;
                    take(&mut accounts.available, *amount, pledge)?;
                    add(&mut accounts.returned, *amount)?;
                }
            }
            EntryKind::Held => {
                let task = task.as_mut().ok_or(Refusal::Overflow)?;
                if !task.held.is_empty() || !task.disbursed.is_empty() {
                    return Err(Refusal::AlreadyFunded { task: task_id });
                }
                if task.currency != checked.currency {
                    return Err(Refusal::CurrencyMismatch {
                        pledge: checked.movements[0].0.clone(),
                        pledge_currency: task.currency.to_string(),
                        entry_currency: checked.currency.to_string(),
                    });
                }
                task.collective = entry.collective.clone().or(task.collective.take());
                for (pledge, amount) in &checked.movements {
                    let accounts = pledges.get_mut(pledge).ok_or(Refusal::Overflow)?;
                    take(&mut accounts.available, *amount, pledge)?;
                    accounts.held.insert(task_id.clone(), *amount);
                    task.held.insert(pledge.clone(), *amount);
                }
            }
            EntryKind::Released | EntryKind::Disbursed => {
                let task = task.as_mut().ok_or(Refusal::Overflow)?;
                if task.held.is_empty() {
                    return Err(Refusal::NothingHeld { task: task_id });
                }
                let kind = entry.kind.token();
                // All of it, from every pledge: nothing stays held.
                for (pledge, held) in &task.held {
                    let moved = checked
                        .movements
                        .iter()
                        .find(|(moved_pledge, _)| moved_pledge == pledge)
                        .map_or(Cents::ZERO, |(_, amount)| *amount);
                    if moved != *held {
                        return Err(Refusal::NotWhole {
                            kind,
                            task: task_id,
                            pledge: pledge.clone(),
                            held: *held,
                            moved,
                        });
                    }
                }
                for (pledge, amount) in &checked.movements {
                    if !task.held.contains_key(pledge) {
                        return Err(Refusal::NotWhole {
                            kind,
                            task: task_id,
                            pledge: pledge.clone(),
                            held: Cents::ZERO,
                            moved: *amount,
                        });
                    }
                    let accounts = pledges.get_mut(pledge).ok_or(Refusal::Overflow)?;
                    accounts.held.remove(&task_id);
                    if entry.kind == EntryKind::Released {
                        add(&mut accounts.available, *amount)?;
                    } else {
                        let paid = accounts.disbursed.entry(task_id.clone()).or_default();
                        add(paid, *amount)?;
                        let paid = task.disbursed.entry(pledge.clone()).or_default();
                        add(paid, *amount)?;
                    }
                }
                task.held.clear();
                if let Some(reference) = entry.reference.as_ref().filter(|_| kind == "disbursed") {
                    task.references.push(reference.clone());
                }
            }
        }
        for (pledge, accounts) in &pledges {
            accounts.check(pledge)?;
            if let Some(task) = &task {
                let in_pledge = accounts.held.get(&task_id).copied();
                let in_task = task.held.get(pledge).copied();
                if in_pledge != in_task {
                    return Err(Refusal::Invariant {
                        pledge: pledge.clone(),
                        what: format!("its hold for {task_id} disagrees with the task's"),
                    });
                }
            }
        }
        // Commit.
        self.pledges.extend(pledges);
        if let (Some(task_id), Some(task)) = (checked.task, task) {
            self.tasks.insert(task_id, task);
        }
        *self
            .counts
            .entry((entry.kind, entry.key().to_owned()))
            .or_default() += 1;
        self.by_id.insert(entry.id.clone(), self.journal.len());
        self.journal.push(entry.clone());
        Ok(Applied::New)
    }

    /// Whether `entry` would be applied, without applying it.
    pub fn would_apply(&self, entry: &LedgerEntry) -> Result<Applied, Refusal> {
        self.clone().apply(entry)
    }

    /// The id of the next entry of `kind` about `key` the ledger writes
    /// itself: `held:t1:0`, `held:t1:1`, ... Two writers at the same state
    /// make the same id, so the stream keeps one of their entries.
    pub fn next_id(&self, kind: EntryKind, key: &str) -> String {
        let count = self
            .counts
            .get(&(kind, key.to_owned()))
            .copied()
            .unwrap_or(0);
        format!("{}:{key}:{count}", kind.token())
    }

    pub fn pledge(&self, pledge: &str) -> Option<&PledgeAccounts> {
        self.pledges.get(pledge)
    }

    pub fn pledges(&self) -> impl Iterator<Item = (&String, &PledgeAccounts)> {
        self.pledges.iter()
    }

    pub fn task(&self, task: &str) -> Option<&TaskAccounts> {
        self.tasks.get(task)
    }

    pub fn tasks(&self) -> impl Iterator<Item = (&String, &TaskAccounts)> {
        self.tasks.iter()
    }

    /// What a pledge can still give: zero when unknown.
    pub fn available(&self, pledge: &str) -> Cents {
        self.pledges
            .get(pledge)
            .map_or(Cents::ZERO, |accounts| accounts.available)
    }

    /// Held and disbursed for a task: zero when unknown.
    pub fn committed(&self, task: &str) -> Cents {
        self.tasks
            .get(task)
            .map_or(Cents::ZERO, TaskAccounts::committed)
    }

    pub fn entry(&self, id: &str) -> Option<&LedgerEntry> {
        self.by_id.get(id).map(|&index| &self.journal[index])
    }

    /// Every applied entry, in order.
    pub fn journal(&self) -> &[LedgerEntry] {
        &self.journal
    }

    /// Checks every invariant of every account from scratch: the balances
    /// folded again from the journal equal the ones kept, and each pledge's
    /// accounts sum to what was pledged.
    pub fn audit(&self) -> Result<(), Refusal> {
        let (again, refused) = Ledger::replay(&self.journal);
        if let Some((id, refusal)) = refused.into_iter().next() {
            return Err(Refusal::Invariant {
                pledge: String::new(),
                what: format!("entry {id} does not replay: {refusal}"),
            });
        }
        if again != *self {
            return Err(Refusal::Invariant {
                pledge: String::new(),
                what: "the balances kept differ from the journal's fold".to_owned(),
            });
        }
        for (pledge, accounts) in &self.pledges {
            accounts.check(pledge)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proto::money::Movement;

    pub(crate) fn entry(
        id: &str,
        kind: EntryKind,
        task: Option<&str>,
        movements: &[(&str, u64)],
    ) -> LedgerEntry {
        LedgerEntry {
            id: id.to_owned(),
            kind,
            task: task.map(str::to_owned),
            collective: task.map(|_| "c1".to_owned()),
            currency: "USD".to_owned(),
            movements: movements
                .iter()
                .map(|(pledge, amount_cents)| Movement {
                    pledge: (*pledge).to_owned(),
                    amount_cents: *amount_cents,
                })
                .collect(),
            reason: None,
            reference: (kind == EntryKind::Disbursed).then(|| "receipt 1".to_owned()),
            at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn money_goes_from_pledged_to_held_to_disbursed_and_every_pledge_sums_to_its_amount() {
        let mut ledger = Ledger::new();
        ledger
            .apply(&entry(
                "a",
                EntryKind::Pledged,
                None,
                &[("p1", 500), ("p2", 300)],
            ))
            .unwrap();
        ledger
            .apply(&entry(
                "b",
                EntryKind::Held,
                Some("t1"),
                &[("p1", 400), ("p2", 100)],
            ))
            .unwrap();
        assert_eq!(ledger.available("p1"), Cents(100));
        assert_eq!(ledger.committed("t1"), Cents(500));
        ledger
            .apply(&entry(
                "c",
                EntryKind::Disbursed,
                Some("t1"),
                &[("p1", 400), ("p2", 100)],
            ))
            .unwrap();
        assert_eq!(ledger.task("t1").unwrap().held_total(), Cents(0));
        assert_eq!(ledger.pledge("p2").unwrap().disbursed_total(), Cents(100));
        ledger.audit().unwrap();
    }

    #[test]
    fn an_over_committing_hold_is_refused_and_changes_nothing() {
        let mut ledger = Ledger::new();
        ledger
            .apply(&entry(
                "a",
                EntryKind::Pledged,
                None,
                &[("p1", 500), ("p2", 50)],
            ))
            .unwrap();
        let before = ledger.clone();
        let refused = ledger
            .apply(&entry(
                "b",
                EntryKind::Held,
                Some("t1"),
                &[("p1", 100), ("p2", 60)],
            ))
            .unwrap_err();
        assert!(matches!(refused, Refusal::OverCommitted { ref pledge, .. } if pledge == "p2"));
        assert_eq!(ledger, before);
    }

    #[test]
    fn a_release_must_move_everything_held_for_the_task() {
        let mut ledger = Ledger::new();
        ledger
            .apply(&entry(
                "a",
                EntryKind::Pledged,
                None,
                &[("p1", 500), ("p2", 500)],
            ))
            .unwrap();
        ledger
            .apply(&entry(
                "b",
                EntryKind::Held,
                Some("t1"),
                &[("p1", 200), ("p2", 100)],
            ))
            .unwrap();
        let partial = entry("c", EntryKind::Released, Some("t1"), &[("p1", 200)]);
        assert!(matches!(
            ledger.apply(&partial),
            Err(Refusal::NotWhole { .. })
        ));
        ledger
            .apply(&entry(
                "d",
                EntryKind::Released,
                Some("t1"),
                &[("p1", 200), ("p2", 100)],
            ))
            .unwrap();
        assert_eq!(ledger.available("p1"), Cents(500));
        assert_eq!(ledger.committed("t1"), Cents(0));
    }

    #[test]
    fn the_same_entry_twice_is_one_movement_and_a_reused_id_is_refused() {
        let mut ledger = Ledger::new();
        let pledged = entry("a", EntryKind::Pledged, None, &[("p1", 500)]);
        assert_eq!(ledger.apply(&pledged).unwrap(), Applied::New);
        assert_eq!(ledger.apply(&pledged).unwrap(), Applied::Repeat);
        assert_eq!(ledger.pledge("p1").unwrap().pledged, Cents(500));
        let other = entry("a", EntryKind::Pledged, None, &[("p1", 7)]);
        assert!(matches!(
            ledger.apply(&other),
            Err(Refusal::IdReused { .. })
        ));
        assert_eq!(ledger.journal().len(), 1);
    }

    #[test]
    fn a_task_is_never_funded_in_two_currencies() {
        let mut ledger = Ledger::new();
        ledger
            .apply(&entry("a", EntryKind::Pledged, None, &[("p1", 500)]))
            .unwrap();
        let mut euros = entry("b", EntryKind::Pledged, None, &[("p2", 500)]);
        euros.currency = "EUR".to_owned();
        ledger.apply(&euros).unwrap();
        let mut mixed = entry(
            "c",
            EntryKind::Held,
            Some("t1"),
            &[("p1", 100), ("p2", 100)],
        );
        assert!(matches!(
            ledger.apply(&mixed),
            Err(Refusal::CurrencyMismatch { .. })
        ));
        mixed.currency = "EUR".to_owned();
        assert!(matches!(
            ledger.apply(&mixed),
            Err(Refusal::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn withdrawal_takes_back_only_what_is_available() {
        let mut ledger = Ledger::new();
        ledger
            .apply(&entry("a", EntryKind::Pledged, None, &[("p1", 500)]))
            .unwrap();
        ledger
            .apply(&entry("b", EntryKind::Held, Some("t1"), &[("p1", 300)]))
            .unwrap();
        assert!(matches!(
            ledger.apply(&entry("c", EntryKind::Withdrawn, None, &[("p1", 201)])),
            Err(Refusal::OverCommitted { .. })
        ));
        ledger
            .apply(&entry("d", EntryKind::Withdrawn, None, &[("p1", 200)]))
            .unwrap();
        assert_eq!(ledger.pledge("p1").unwrap().returned, Cents(200));
        assert_eq!(ledger.committed("t1"), Cents(300));
        ledger.audit().unwrap();
    }

    #[test]
    fn the_ids_the_ledger_makes_count_entries_of_a_kind_per_key() {
        let mut ledger = Ledger::new();
        assert_eq!(ledger.next_id(EntryKind::Held, "t1"), "held:t1:0");
        ledger
            .apply(&entry("a", EntryKind::Pledged, None, &[("p1", 500)]))
            .unwrap();
        ledger
            .apply(&entry(
                "held:t1:0",
                EntryKind::Held,
                Some("t1"),
                &[("p1", 300)],
            ))
            .unwrap();
        assert_eq!(ledger.next_id(EntryKind::Held, "t1"), "held:t1:1");
        assert_eq!(ledger.next_id(EntryKind::Pledged, "p1"), "pledged:p1:1");
    }
}
