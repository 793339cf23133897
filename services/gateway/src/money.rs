//! What each role sees of the money, folded from `SB_LEDGER` by the same
//! pure core the ledger service writes with (`ledger-core`).
//!
//! - A donor (signed in for one pledge) sees where that pledge went: what
//!   is available, held and paid out per task, what it unlocked, what was
//!   given back, with every movement.
//! - A collective sees its tasks that ask for money: funded (held or paid,
//!   with references) and waiting.
//! - Coordinators see the pool per currency, pledges whose restrictions
//!   strand money no open task can use, and a transparency report per
//!   collective.
//! - Everyone gets the movements they may see as CSV.
//!
//! Donors' names are never in the ledger; only a donor's own view shows
//! the name they gave.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger_core::{Ledger, TaskAccounts};
use proto::wire::{PledgeOffer, TaskSpec};
use schemars::JsonSchema;
use serde::Serialize;

use crate::access::Principal;
use crate::model::ReadModel;

/// One movement of money, as a row of a view or of the CSV export.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct MovementRow {
    /// Position in `SB_LEDGER`.
    pub sequence: u64,
    pub at: DateTime<Utc>,
    pub entry: String,
    pub kind: &'static str,
    pub task: Option<String>,
    pub collective: Option<String>,
    pub pledge: String,
    pub amount_cents: u64,
    pub currency: String,
    pub reason: Option<String>,
    pub reference: Option<String>,
}

/// Money of one pledge on one task.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TaskMoney {
    pub task: String,
    pub title: Option<String>,
    pub collective: Option<String>,
    pub amount_cents: u64,
}

/// Where one pledge's money went.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DonorView {
    pub pledge: String,
    /// The name the donor gave, shown only to them and never published.
    pub donor: Option<String>,
    pub currency: String,
    pub pledged_cents: u64,
    pub available_cents: u64,
    pub held: Vec<TaskMoney>,
    pub disbursed: Vec<TaskMoney>,
    pub returned_cents: u64,
    /// Tasks this money made possible (held for or paid to).
    pub unlocked: Vec<String>,
    pub withdrawn: bool,
    pub restrictions: Option<Restrictions>,
    pub movements: Vec<MovementRow>,
}

/// A pledge's restrictions, as the donor set them.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Restrictions {
    pub collectives: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&PledgeOffer> for Restrictions {
    fn from(offer: &PledgeOffer) -> Restrictions {
        Restrictions {
            collectives: offer.collectives.clone(),
            tags: offer.tags.clone(),
            expires_at: offer.expires_at,
        }
    }
}

/// A collective's task that asks for money.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FundingRow {
    pub task: String,
    pub title: Option<String>,
    pub money_cents: u64,
    pub currency: String,
    pub held_cents: u64,
    pub disbursed_cents: u64,
    /// Still to be secured: money asked less held and paid.
    pub waiting_cents: u64,
    /// `waiting`, `held` or `disbursed`.
    #[schemars(extend("enum" = ["waiting", "held", "disbursed"]))]
    pub state: &'static str,
    pub references: Vec<String>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FundingView {
    pub collective: String,
    pub funded: Vec<FundingRow>,
    pub waiting: Vec<FundingRow>,
}

/// The pool of one currency.
#[derive(Clone, Debug, Default, Serialize, JsonSchema, PartialEq)]
pub struct Pool {
    pub currency: String,
    pub pledged_cents: u64,
    pub available_cents: u64,
    pub held_cents: u64,
    pub disbursed_cents: u64,
    pub returned_cents: u64,
}

/// A pledge with money that no open task waiting for money may use.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Stranded {
    pub pledge: String,
    pub available_cents: u64,
    pub currency: String,
    pub restrictions: Restrictions,
}

/// Per collective: what the pool gave it.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct CollectiveMoney {
    pub collective: String,
    pub currency: String,
    pub held_cents: u64,
    pub disbursed_cents: u64,
    pub tasks_funded: usize,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PoolView {
    pub pools: Vec<Pool>,
    pub stranded: Vec<Stranded>,
    /// The transparency report: every collective's held and paid money.
    pub transparency: Vec<CollectiveMoney>,
    pub movements: usize,
}

/// Every movement of the ledger, oldest first.
pub fn movements(model: &ReadModel) -> Vec<MovementRow> {
    let journal = model.money.journal();
    journal
        .iter()
        .zip(&model.ledger_sequences)
        .flat_map(|(entry, &sequence)| {
            entry.movements.iter().map(move |movement| MovementRow {
                sequence,
                at: entry.at,
                entry: entry.id.clone(),
                kind: entry.kind.token(),
                task: entry.task.clone(),
                collective: entry.collective.clone(),
                pledge: movement.pledge.clone(),
                amount_cents: movement.amount_cents,
                currency: entry.currency.clone(),
                reason: entry.reason.clone(),
                reference: entry.reference.clone(),
            })
        })
        .collect()
}

/// The movements `principal` may see: all for coordinators, a
/// collective's own tasks', a donor's own pledge's.
pub fn movements_for(model: &ReadModel, principal: &Principal) -> Vec<MovementRow> {
    movements(model)
        .into_iter()
        .filter(|row| match principal {
            Principal::Coordinator => true,
            Principal::Collective(me) => row.collective.as_deref() == Some(me.as_str()),
            Principal::Donor(pledge) => row.pledge == *pledge,
            Principal::Volunteer(_) | Principal::Vetter(_) => false,
        })
        .collect()
}

fn title_of(model: &ReadModel, task: &str) -> Option<String> {
    model
        .task_titles
        .get(task)
        .cloned()
        .or_else(|| model.open_task(task).map(|(_, spec)| spec.title.clone()))
}

fn task_money(
    model: &ReadModel,
    ledger: &Ledger,
    by_task: &BTreeMap<String, proto::domain::Cents>,
) -> Vec<TaskMoney> {
    by_task
        .iter()
        .map(|(task, cents)| TaskMoney {
            task: task.clone(),
            title: title_of(model, task),
            collective: ledger
                .task(task)
                .and_then(|accounts| accounts.collective.clone())
                .or_else(|| model.collective_of_task(task).map(str::to_owned)),
            amount_cents: cents.get(),
        })
        .collect()
}

/// Where one pledge's money went; all zeros for a pledge not (yet) made,
/// so the answer does not tell which pledges exist.
pub fn donor(model: &ReadModel, pledge: &str) -> DonorView {
    let offer = model.pledges_ever.get(pledge);
    let accounts = model.money.pledge(pledge);
    let ledger = &model.money;
    let held = accounts.map_or_else(Vec::new, |accounts| {
        task_money(model, ledger, &accounts.held)
    });
    let disbursed = accounts.map_or_else(Vec::new, |accounts| {
        task_money(model, ledger, &accounts.disbursed)
    });
    let mut unlocked: Vec<String> = held
        .iter()
        .chain(&disbursed)
        .map(|money| money.task.clone())
        .collect();
    unlocked.sort();
    unlocked.dedup();
    DonorView {
        pledge: pledge.to_owned(),
        donor: offer.and_then(|offer| offer.donor.clone()),
        currency: accounts.map_or_else(
            || {
                offer
                    .and_then(|offer| offer.currency.clone())
                    .unwrap_or_else(|| proto::domain::CURRENCY_DEFAULT.to_owned())
            },
            |accounts| accounts.currency.to_string(),
        ),
        pledged_cents: accounts.map_or(0, |accounts| accounts.pledged.get()),
        available_cents: accounts.map_or(0, |accounts| accounts.available.get()),
        held,
        disbursed,
        returned_cents: accounts.map_or(0, |accounts| accounts.returned.get()),
        unlocked,
        withdrawn: !model.pledges.contains_key(pledge),
        restrictions: offer.map(Restrictions::from),
        movements: movements_for(model, &Principal::Donor(pledge.to_owned())),
    }
}

fn funding_row(
    spec: Option<&TaskSpec>,
    task: &str,
    accounts: Option<&TaskAccounts>,
    title: Option<String>,
) -> FundingRow {
    let money = spec.map_or_else(
        || accounts.map_or(0, |accounts| accounts.committed().get()),
        |spec| spec.money_cents,
    );
    let held = accounts.map_or(0, |accounts| accounts.held_total().get());
    let disbursed = accounts.map_or(0, |accounts| accounts.disbursed_total().get());
    let state = if disbursed > 0 {
        "disbursed"
    } else if held > 0 {
        "held"
    } else {
        "waiting"
    };
    FundingRow {
        task: task.to_owned(),
        title,
        money_cents: money,
        currency: accounts.map_or_else(
            || {
                spec.and_then(|spec| spec.currency.clone())
                    .unwrap_or_else(|| proto::domain::CURRENCY_DEFAULT.to_owned())
            },
            |accounts| accounts.currency.to_string(),
        ),
        held_cents: held,
        disbursed_cents: disbursed,
        waiting_cents: money.saturating_sub(held + disbursed),
        state,
        references: accounts.map_or_else(Vec::new, |accounts| accounts.references.clone()),
    }
}

/// A collective's money: tasks funded (held or paid) and tasks waiting.
pub fn funding(model: &ReadModel, collective: &str) -> FundingView {
    let mut funded = Vec::new();
    let mut waiting = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for need in model
        .needs
        .values()
        .filter(|need| need.collective == collective)
    {
        for spec in need.tasks.iter().filter(|spec| spec.money_cents > 0) {
            seen.insert(spec.id.clone());
            let row = funding_row(
                Some(spec),
                &spec.id,
                model.money.task(&spec.id),
                Some(spec.title.clone()),
            );
            if row.state == "waiting" {
                waiting.push(row);
            } else {
                funded.push(row);
            }
        }
    }
    // Done or cancelled tasks keep what they were paid.
    for (task, accounts) in model.money.tasks() {
        if seen.contains(task) || accounts.collective.as_deref() != Some(collective) {
            continue;
        }
        if accounts.committed().get() > 0 {
            funded.push(funding_row(
                None,
                task,
                Some(accounts),
                title_of(model, task),
            ));
        }
    }
    FundingView {
        collective: collective.to_owned(),
        funded,
        waiting,
    }
}

/// The coordinators' money page: the pool, stranded restrictions, the
/// transparency report.
pub fn pool(model: &ReadModel, now: DateTime<Utc>) -> PoolView {
    let ledger = &model.money;
    let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
    for (_, accounts) in ledger.pledges() {
        let pool = pools
            .entry(accounts.currency.to_string())
            .or_insert_with(|| Pool {
                currency: accounts.currency.to_string(),
                ..Pool::default()
            });
        pool.pledged_cents += accounts.pledged.get();
        pool.available_cents += accounts.available.get();
        pool.held_cents += accounts.held_total().get();
        pool.disbursed_cents += accounts.disbursed_total().get();
        pool.returned_cents += accounts.returned.get();
    }
    // Open tasks still waiting for money, as the solver sees them.
    let waiting: Vec<proto::domain::Task> = model
        .needs
        .values()
        .flat_map(|need| {
            need.tasks.iter().filter_map(move |spec| {
                let mut spec = spec.clone();
                spec.need = Some(need.id.clone());
                spec.collective = Some(need.collective.clone());
                spec.validate_standalone("").ok()
            })
        })
        .filter(|task| task.money.get() > 0 && task.deadline > now)
        .filter(|task| ledger.committed(task.id.as_str()).get() == 0)
        .collect();
    let mut stranded = Vec::new();
    for (pledge, accounts) in ledger.pledges() {
        if accounts.available.get() == 0 {
            continue;
        }
        let Some(offer) = model.pledges.get(pledge) else {
            continue;
        };
        let Ok(domain) = offer.validate("") else {
            continue;
        };
        let usable = waiting
            .iter()
            .any(|task| domain.can_fund(task, now.max(task.earliest_start)));
        if !usable {
            stranded.push(Stranded {
                pledge: pledge.clone(),
                available_cents: accounts.available.get(),
                currency: accounts.currency.to_string(),
                restrictions: Restrictions::from(offer),
            });
        }
    }
    let mut transparency: BTreeMap<(String, String), CollectiveMoney> = BTreeMap::new();
    for (_, accounts) in ledger.tasks() {
        let collective = accounts.collective.clone().unwrap_or_default();
        let row = transparency
            .entry((collective.clone(), accounts.currency.to_string()))
            .or_insert_with(|| CollectiveMoney {
                collective,
                currency: accounts.currency.to_string(),
                ..CollectiveMoney::default()
            });
        row.held_cents += accounts.held_total().get();
        row.disbursed_cents += accounts.disbursed_total().get();
        if accounts.committed().get() > 0 {
            row.tasks_funded += 1;
        }
    }
    PoolView {
        pools: pools.into_values().collect(),
        stranded,
        transparency: transparency.into_values().collect(),
        movements: model.money.journal().len(),
    }
}

/// The header of the CSV export.
pub const CSV_HEADER: &str =
    "sequence,at,entry,kind,task,collective,pledge,amount_cents,currency,reason,reference";

/// A CSV field, quoted when it holds a comma, quote or line break; a
/// leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet never
/// runs a reference someone typed as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The rows as CSV, header first.
pub fn csv(rows: &[MovementRow]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for row in rows {
        let fields = [
            row.sequence.to_string(),
            row.at.to_rfc3339(),
            row.entry.clone(),
            row.kind.to_owned(),
            row.task.clone().unwrap_or_default(),
            row.collective.clone().unwrap_or_default(),
            row.pledge.clone(),
            row.amount_cents.to_string(),
            row.currency.clone(),
            row.reason.clone().unwrap_or_default(),
            row.reference.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_quotes_or_formulas_are_made_safe() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }
}
