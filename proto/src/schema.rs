//! JSON Schemas of every wire message, generated from the types, for clients
//! in other languages. The checked-in copies under `proto/schema/` are kept
//! in sync by a test (`SWITCHBOARD_UPDATE_SCHEMAS=1` rewrites them).

use schemars::{schema_for, Schema};

use crate::instance::{Instance, Plan};
use crate::money::{Disbursal, LedgerEntry};
use crate::wire::{
    DeadLetter, MatchChanged, MatchProposed, NeedPost, PlanRequest, PledgeOffer, Reply, Steering,
    TaskCompletion, Vetting, VolunteerMessage, VolunteerOffer, VolunteerPlan, VolunteerReply,
    Withdrawal,
};

/// `(file stem, schema)` for every message of the contract.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("volunteer", schema_for!(VolunteerOffer)),
        ("need", schema_for!(NeedPost)),
        ("pledge", schema_for!(PledgeOffer)),
        ("withdraw", schema_for!(Withdrawal)),
        ("reply", schema_for!(VolunteerReply)),
        ("complete", schema_for!(TaskCompletion)),
        ("steer", schema_for!(Steering)),
        ("vet", schema_for!(Vetting)),
        ("plan-request", schema_for!(PlanRequest)),
        ("response", schema_for!(Reply)),
        ("match-proposed", schema_for!(MatchProposed)),
        ("match-changed", schema_for!(MatchChanged)),
        ("volunteer-message", schema_for!(VolunteerMessage)),
        ("volunteer-plan", schema_for!(VolunteerPlan)),
        ("dead-letter", schema_for!(DeadLetter)),
        ("disburse", schema_for!(Disbursal)),
        ("ledger-entry", schema_for!(LedgerEntry)),
        ("instance", schema_for!(Instance)),
        ("plan", schema_for!(Plan)),
    ]
}
