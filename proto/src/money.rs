//! The money ledger's messages: the entries kept in `SB_LEDGER` and the
//! disbursal request (`sb.in.disburse`).
//!
//! Every pledge has its own accounts: `pledged` (the donor's side, where
//! money comes from), `available` (the pool), `held:<task>` (committed to a
//! task that will complete), `disbursed:<task>` (paid out, with a
//! reference) and `returned` (withdrawn by the donor, or expired unused).
//! An entry moves whole cents between two of them for one or more pledges,
//! all or nothing; which two is fixed by its [`EntryKind`]:
//!
//! | kind | from | to |
//! |---|---|---|
//! | `pledged` | `pledged` | `available` |
//! | `held` | `available` | `held:<task>` |
//! | `released` | `held:<task>` | `available` |
//! | `disbursed` | `held:<task>` | `disbursed:<task>` |
//! | `withdrawn` | `available` | `returned` |
//!
//! Balances are never stored on the wire: a reader folds the entries. The
//! donor of a pledge never appears here.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What an entry does, which fixes the two accounts it moves money between.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A donor's pledge (or a raise of it) enters the pool.
    Pledged,
    /// Money is committed to a task whose whole team has accepted (or a
    /// money-only task), so it will complete.
    Held,
    /// A task was cancelled or failed: what was held goes back to the pool.
    Released,
    /// What was held for a task was paid out, with a reference.
    Disbursed,
    /// The unallocated part of a pledge goes back to the donor (withdrawn,
    /// lowered, or expired).
    Withdrawn,
}

impl EntryKind {
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Pledged,
        EntryKind::Held,
        EntryKind::Released,
        EntryKind::Disbursed,
        EntryKind::Withdrawn,
    ];

    /// The subject token of the kind: `sb.ledger.<token>.<key>`.
    pub fn token(self) -> &'static str {
        match self {
            EntryKind::Pledged => "pledged",
            EntryKind::Held => "held",
            EntryKind::Released => "released",
            EntryKind::Disbursed => "disbursed",
            EntryKind::Withdrawn => "withdrawn",
        }
    }

    pub fn from_token(token: &str) -> Option<EntryKind> {
        EntryKind::ALL
            .into_iter()
            .find(|kind| kind.token() == token)
    }

    /// Whether entries of this kind are about one task.
    pub fn has_task(self) -> bool {
        matches!(
            self,
            EntryKind::Held | EntryKind::Released | EntryKind::Disbursed
        )
    }
}

/// Cents of one pledge moved by an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Movement {
    pub pledge: String,
    /// Whole cents, more than zero.
    pub amount_cents: u64,
}

/// One entry of the money ledger (`SB_LEDGER`, subject
/// `sb.ledger.<kind>.<task or pledge>`), applied all or nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LedgerEntry {
    /// Unique for ever; also the `Nats-Msg-Id`. An entry whose id was
    /// already applied is a repeat and changes nothing. Ids the ledger makes
    /// itself contain `:` (`held:t1:0`); a disbursal's is the client's.
    pub id: String,
    pub kind: EntryKind,
    /// The task, for `held`, `released` and `disbursed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The task's collective, for `held`, `released` and `disbursed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<String>,
    /// ISO 4217 code; every pledge moved is in it.
    pub currency: String,
    /// One per pledge, each pledge at most once.
    pub movements: Vec<Movement>,
    /// Why, in words (released: "the task was cancelled").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `disbursed`: the receipt or transfer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub at: DateTime<Utc>,
}

impl LedgerEntry {
    /// The key token of its subject: the task, or else the first pledge.
    pub fn key(&self) -> &str {
        self.task
            .as_deref()
            .or_else(|| {
                self.movements
                    .first()
                    .map(|movement| movement.pledge.as_str())
            })
            .unwrap_or("none")
    }

    /// The sum of its movements (saturating: amounts are bounded far below).
    pub fn total_cents(&self) -> u64 {
        self.movements.iter().fold(0u64, |total, movement| {
            total.saturating_add(movement.amount_cents)
        })
    }
}

/// Pays out what is held for a task (`sb.in.disburse`), confirmed by a
/// coordinator or the task's collective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Disbursal {
    /// The client's id for this disbursal, `[A-Za-z0-9_-]{1,64}`: sending it
    /// again is harmless; the same id for another body is a `conflict`.
    pub id: String,
    pub task: String,
    /// The receipt, transfer id or cheque number (1-200 characters).
    pub reference: String,
    /// The collective confirming, when it is not a coordinator: it must be
    /// the task's (`unauthorized` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<String>,
}

/// Longest disbursal reference, in characters.
pub const REFERENCE_CHARS_MAX: usize = 200;

impl Disbursal {
    /// Checks the fields the message alone decides.
    pub fn validate(&self) -> Result<(), crate::Invalid> {
        crate::Id::parse(&self.id, "id")?;
        crate::Id::parse(&self.task, "task")?;
        if let Some(collective) = &self.collective {
            crate::Id::parse(collective, "collective")?;
        }
        let reference = self.reference.trim();
        if reference.is_empty() {
            return Err(crate::Invalid::new(
                "reference",
                "say what proves the payment: a receipt or transfer id",
            ));
        }
        if reference.chars().count() > REFERENCE_CHARS_MAX
            || reference.chars().any(char::is_control)
        {
            return Err(crate::Invalid::new(
                "reference",
                format!("at most {REFERENCE_CHARS_MAX} characters, no control characters"),
            ));
        }
        Ok(())
    }
}
