//! The ledger's invariants under random sequences of entries: valid and
//! invalid ones, repeats of earlier entries, reused ids, restarts (the
//! ledger rebuilt from its journal alone) and concurrent allocations (two
//! writers deciding holds from the same stale state, applied one after the
//! other as the stream orders them).

#![allow(clippy::unwrap_used, clippy::panic)]

use ledger_core::{Applied, Ledger, Refusal};
use proptest::prelude::*;
use proto::domain::Cents;
use proto::money::{EntryKind, LedgerEntry, Movement};

const PLEDGES: usize = 4;
const TASKS: usize = 5;

#[derive(Clone, Debug)]
enum Op {
    Pledge {
        pledge: usize,
        amount: u64,
    },
    Hold {
        task: usize,
        parts: Vec<(usize, u64)>,
    },
    /// Release or disburse what is held, whole (or, when `skew`, one cent off).
    Settle {
        task: usize,
        disburse: bool,
        skew: bool,
    },
    Withdraw {
        pledge: usize,
        amount: u64,
    },
    /// Apply an earlier entry again, unchanged.
    Repeat {
        back: usize,
    },
    /// An earlier id with a different body.
    Reuse {
        back: usize,
        amount: u64,
    },
    /// Rebuild the ledger from its journal, as a restarted service does.
    Restart,
    /// Two writers each hold for their own task from the same state, each
    /// taking `share` percent of one pledge's available money.
    Race {
        pledge: usize,
        tasks: (usize, usize),
        shares: (u64, u64),
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..PLEDGES, 1u64..2_000).prop_map(|(pledge, amount)| Op::Pledge { pledge, amount }),
        4 => (0..TASKS, prop::collection::vec((0..PLEDGES, 1u64..1_500), 1..4))
            .prop_map(|(task, parts)| Op::Hold { task, parts }),
        3 => (0..TASKS, any::<bool>(), prop::bool::weighted(0.15))
            .prop_map(|(task, disburse, skew)| Op::Settle { task, disburse, skew }),
        2 => (0..PLEDGES, 1u64..1_000).prop_map(|(pledge, amount)| Op::Withdraw { pledge, amount }),
        2 => (0usize..20).prop_map(|back| Op::Repeat { back }),
        1 => (0usize..20, 1u64..500).prop_map(|(back, amount)| Op::Reuse { back, amount }),
        1 => Just(Op::Restart),
        2 => (0..PLEDGES, (0..TASKS, 0..TASKS), (1u64..=100, 1u64..=100))
            .prop_map(|(pledge, tasks, shares)| Op::Race { pledge, tasks, shares }),
    ]
}

fn pledge_id(index: usize) -> String {
    format!("p{index}")
}

fn task_id(index: usize) -> String {
    format!("t{index}")
}

fn entry(
    id: String,
    kind: EntryKind,
    task: Option<String>,
    moves: Vec<(String, u64)>,
) -> LedgerEntry {
    LedgerEntry {
        id,
        kind,
        collective: task.as_ref().map(|_| "c1".to_owned()),
        task,
        currency: "USD".to_owned(),
        movements: moves
            .into_iter()
            .map(|(pledge, amount_cents)| Movement {
                pledge,
                amount_cents,
            })
            .collect(),
        reason: None,
        reference: (kind == EntryKind::Disbursed).then(|| "transfer 42".to_owned()),
        at: chrono::DateTime::UNIX_EPOCH,
    }
}

/// What the entries put in and took out, counted independently of the ledger.
#[derive(Default)]
struct Oracle {
    pledged: u64,
    returned: u64,
}

/// Every invariant the issue names, checked from outside.
fn check(ledger: &Ledger, oracle: &Oracle) {
    ledger.audit().unwrap();
    let mut available = 0u64;
    let mut held = 0u64;
    let mut disbursed = 0u64;
    let mut returned = 0u64;
    let mut pledged = 0u64;
    for (_, accounts) in ledger.pledges() {
        // Per pledge, the accounts sum to what was pledged: nothing over-committed.
        let sum = accounts.available.0
            + accounts.held_total().0
            + accounts.disbursed_total().0
            + accounts.returned.0;
        assert_eq!(sum, accounts.pledged.0);
        available += accounts.available.0;
        held += accounts.held_total().0;
        disbursed += accounts.disbursed_total().0;
        returned += accounts.returned.0;
        pledged += accounts.pledged.0;
    }
    assert_eq!(
        pledged, oracle.pledged,
        "pledged money appeared or vanished"
    );
    assert_eq!(
        returned, oracle.returned,
        "returned money appeared or vanished"
    );
    let task_held: u64 = ledger.tasks().map(|(_, task)| task.held_total().0).sum();
    let task_paid: u64 = ledger
        .tasks()
        .map(|(_, task)| task.disbursed_total().0)
        .sum();
    assert_eq!(task_held, held);
    assert_eq!(task_paid, disbursed);
    assert_eq!(available + held + disbursed + returned, pledged);
}

/// Applies `entry`; a refusal must leave the ledger exactly as it was.
fn apply(
    ledger: &mut Ledger,
    oracle: &mut Oracle,
    entry: &LedgerEntry,
) -> Result<Applied, Refusal> {
    let before = ledger.clone();
    let outcome = ledger.apply(entry);
    match &outcome {
        Ok(Applied::New) => match entry.kind {
            EntryKind::Pledged => oracle.pledged += entry.total_cents(),
            EntryKind::Withdrawn => oracle.returned += entry.total_cents(),
            _ => {}
        },
        Ok(Applied::Repeat) => assert_eq!(*ledger, before, "a repeat changed the ledger"),
        Err(_) => assert_eq!(*ledger, before, "a refused entry changed the ledger"),
    }
    outcome
}

fn settle_moves(ledger: &Ledger, task: &str, skew: bool) -> Vec<(String, u64)> {
    let mut moves: Vec<(String, u64)> = ledger
        .task(task)
        .map(|accounts| {
            accounts
                .held
                .iter()
                .map(|(pledge, cents)| (pledge.clone(), cents.0))
                .collect()
        })
        .unwrap_or_default();
    if moves.is_empty() {
        moves.push((pledge_id(0), 1));
    }
    if skew {
        moves[0].1 = moves[0].1.saturating_sub(1).max(1) + u64::from(moves[0].1 == 1);
    }
    moves
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_sequence_of_entries_breaks_an_invariant(ops in prop::collection::vec(op(), 1..80)) {
        let mut ledger = Ledger::new();
        let mut oracle = Oracle::default();
        let mut written: Vec<LedgerEntry> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            let id = format!("e{step}");
            match op {
                Op::Pledge { pledge, amount } => {
                    let entry = entry(id, EntryKind::Pledged, None, vec![(pledge_id(pledge), amount)]);
                    apply(&mut ledger, &mut oracle, &entry).unwrap();
                    written.push(entry);
                }
                Op::Hold { task, parts } => {
                    let mut moves: Vec<(String, u64)> = Vec::new();
                    for (pledge, amount) in parts {
                        if !moves.iter().any(|(seen, _)| *seen == pledge_id(pledge)) {
                            moves.push((pledge_id(pledge), amount));
                        }
                    }
                    let entry = entry(id, EntryKind::Held, Some(task_id(task)), moves.clone());
                    let fits = moves.iter().all(|(pledge, amount)| ledger.available(pledge).0 >= *amount)
                        && ledger.committed(&task_id(task)) == Cents(0);
                    let outcome = apply(&mut ledger, &mut oracle, &entry);
                    prop_assert_eq!(outcome.is_ok(), fits, "{:?}", outcome);
                    written.push(entry);
                }
                Op::Settle { task, disburse, skew } => {
                    let kind = if disburse { EntryKind::Disbursed } else { EntryKind::Released };
                    let held = ledger.task(&task_id(task)).map_or(Cents(0), |task| task.held_total());
                    let entry = entry(id, kind, Some(task_id(task)), settle_moves(&ledger, &task_id(task), skew));
                    let outcome = apply(&mut ledger, &mut oracle, &entry);
                    prop_assert_eq!(outcome.is_ok(), held.0 > 0 && !skew, "{:?}", outcome);
                    if outcome.is_ok() {
                        // Nothing stays held for a task once it is released or paid.
                        prop_assert_eq!(ledger.task(&task_id(task)).unwrap().held_total(), Cents(0));
                    }
                    written.push(entry);
                }
                Op::Withdraw { pledge, amount } => {
                    let fits = ledger.pledge(&pledge_id(pledge)).is_some_and(|accounts| accounts.available.0 >= amount);
                    let entry = entry(id, EntryKind::Withdrawn, None, vec![(pledge_id(pledge), amount)]);
                    prop_assert_eq!(apply(&mut ledger, &mut oracle, &entry).is_ok(), fits);
                    written.push(entry);
                }
                Op::Repeat { back } => {
                    if let Some(earlier) = written.iter().rev().nth(back % written.len().max(1)).cloned() {
                        let applied_before = ledger.entry(&earlier.id).is_some();
                        let outcome = apply(&mut ledger, &mut oracle, &earlier);
                        if applied_before {
                            prop_assert_eq!(outcome, Ok(Applied::Repeat));
                        }
                    }
                }
                Op::Reuse { back, amount } => {
                    let applied: Vec<&LedgerEntry> = ledger.journal().iter().collect();
                    if let Some(earlier) = applied.iter().rev().nth(back % applied.len().max(1)) {
                        let mut changed = (*earlier).clone();
                        changed.movements[0].amount_cents = changed.movements[0].amount_cents % 1_000 + amount + 1_000;
                        let outcome = apply(&mut ledger, &mut oracle, &changed);
                        let reused = matches!(outcome, Err(Refusal::IdReused { .. }));
                        prop_assert!(reused, "{:?}", outcome);
                    }
                }
                Op::Restart => {
                    let (rebuilt, refused) = Ledger::replay(ledger.journal());
                    prop_assert!(refused.is_empty());
                    prop_assert_eq!(&rebuilt, &ledger);
                    ledger = rebuilt;
                }
                Op::Race { pledge, tasks, shares } => {
                    // Both writers look at the same state...
                    let seen = ledger.clone();
                    let available = seen.available(&pledge_id(pledge)).0;
                    let first = available * shares.0 / 100;
                    let second = available * shares.1 / 100;
                    if first == 0 || second == 0 || tasks.0 == tasks.1 {
                        continue;
                    }
                    let one = entry(format!("{id}a"), EntryKind::Held, Some(task_id(tasks.0)), vec![(pledge_id(pledge), first)]);
                    let two = entry(format!("{id}b"), EntryKind::Held, Some(task_id(tasks.1)), vec![(pledge_id(pledge), second)]);
                    // ...each is fine alone...
                    let one_alone = seen.would_apply(&one).is_ok();
                    let two_alone = seen.would_apply(&two).is_ok();
                    // ...and the stream orders them: the second sees the first.
                    let one_applied = apply(&mut ledger, &mut oracle, &one).is_ok();
                    let two_applied = apply(&mut ledger, &mut oracle, &two).is_ok();
                    prop_assert_eq!(one_applied, one_alone);
                    if one_applied && first + second > available {
                        prop_assert!(!two_applied, "both holds of a race went through and over-committed {}", pledge);
                    }
                    if !one_applied {
                        prop_assert_eq!(two_applied, two_alone);
                    }
                    written.push(one);
                    written.push(two);
                }
            }
            check(&ledger, &oracle);
        }
        // At the end, a restart from the journal is the same ledger.
        let (rebuilt, refused) = Ledger::replay(ledger.journal());
        prop_assert!(refused.is_empty());
        prop_assert_eq!(rebuilt, ledger);
    }
}
