//! The canonical matching problem's files (`shared/spec/problem.md`):
//! `switchboard-instance/1`, a whole world at once, and `switchboard-plan/1`,
//! who does what and which pledge pays for it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::wire::{PledgeOffer, TaskSpec, VolunteerOffer};

pub const INSTANCE_FORMAT: &str = "switchboard-instance/1";
pub const PLAN_FORMAT: &str = "switchboard-plan/1";

/// A whole matching problem: `switchboard-instance/1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Instance {
    /// Always `switchboard-instance/1`.
    pub format: String,
    /// Every time is measured from here; nothing happens before it.
    pub now: DateTime<Utc>,
    pub volunteers: Vec<VolunteerOffer>,
    pub tasks: Vec<TaskSpec>,
    #[serde(default)]
    pub pledges: Vec<PledgeOffer>,
    /// Tasks already done: they satisfy dependencies.
    #[serde(default)]
    pub done: Vec<String>,
    /// Accepted assignments every plan must keep.
    #[serde(default)]
    pub pinned: Vec<Assignment>,
}

/// One volunteer on one task.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Assignment {
    pub volunteer: String,
    pub task: String,
}

/// Money from one pledge to one task.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct Funding {
    pub pledge: String,
    pub task: String,
    pub amount_cents: u64,
}

/// A plan: `switchboard-plan/1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Always `switchboard-plan/1`.
    pub format: String,
    pub assignments: Vec<Assignment>,
    #[serde(default)]
    pub funding: Vec<Funding>,
}

impl Plan {
    /// A plan with nothing in it: feasible for any instance without pins.
    pub fn empty() -> Plan {
        Plan {
            format: PLAN_FORMAT.to_owned(),
            assignments: Vec::new(),
            funding: Vec::new(),
        }
    }
}
