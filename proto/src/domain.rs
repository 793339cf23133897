//! Domain types: what the switchboard believes after validation.
//!
//! A value of these types has passed every rule of [`crate::validate`], so the
//! services and the solver never check again. They do not derive `Serialize`:
//! what goes on the wire is a [`crate::wire`] type.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::ids::Id;

/// A non-negative, finite number of hours.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Hours(f64);

impl Hours {
    /// Only [`crate::validate`] builds hours from unchecked numbers.
    pub(crate) fn new_unchecked(hours: f64) -> Hours {
        debug_assert!(hours.is_finite() && hours >= 0.0);
        Hours(hours)
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// Integer cents of money: no floats anywhere in money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cents(pub u64);

impl Cents {
    pub const ZERO: Cents = Cents(0);

    /// `None` on overflow: a sum of money never wraps.
    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }

    /// `None` when `other` is more than `self`: a balance never goes negative.
    pub fn checked_sub(self, other: Cents) -> Option<Cents> {
        self.0.checked_sub(other.0).map(Cents)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Cents {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} cents", self.0)
    }
}

/// The currency of a task's money when it names none.
pub const CURRENCY_DEFAULT: &str = "USD";

/// An ISO 4217 currency code: three capital letters (`USD`, `EUR`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency(String);

impl Currency {
    /// `code` when it is three capital ASCII letters.
    pub fn parse(code: &str) -> Option<Currency> {
        (code.len() == 3 && code.bytes().all(|byte| byte.is_ascii_uppercase()))
            .then(|| Currency(code.to_owned()))
    }

    /// The currency of an optional wire field: absent is [`CURRENCY_DEFAULT`].
    pub fn or_default(code: Option<&str>) -> Option<Currency> {
        Currency::parse(code.unwrap_or(CURRENCY_DEFAULT))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency(CURRENCY_DEFAULT.to_owned())
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A skill level, 1 (novice) to 5 (expert).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SkillLevel(u8);

impl SkillLevel {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 5;

    pub(crate) fn new_unchecked(level: u8) -> SkillLevel {
        debug_assert!((Self::MIN..=Self::MAX).contains(&level));
        SkillLevel(level)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A trust tier: 0 open, 1 vetted, 2 core. A volunteer's trust must reach a
/// task's sensitivity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Trust(u8);

impl Trust {
    pub const MAX: u8 = 2;

    pub(crate) fn new_unchecked(tier: u8) -> Trust {
        debug_assert!(tier <= Self::MAX);
        Trust(tier)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// Skill names (`[a-z][a-z0-9-]*`) to levels.
pub type Skills = BTreeMap<String, SkillLevel>;

/// A person's offer of time and skills.
#[derive(Clone, Debug, PartialEq)]
pub struct Volunteer {
    pub id: Id,
    pub skills: Skills,
    pub hours_per_week: Hours,
    pub available_from: DateTime<Utc>,
    pub available_until: DateTime<Utc>,
    /// `None`: remote work only.
    pub region: Option<String>,
    pub trust: Trust,
}

/// One task: a whole team of `slots` people, each working `hours` in the
/// window, and/or `money` to be funded in full.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: Id,
    pub need: Id,
    pub collective: Id,
    pub title: String,
    pub skills: Skills,
    pub hours: Hours,
    pub slots: u8,
    pub earliest_start: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// `None`: can be done remotely.
    pub region: Option<String>,
    pub sensitivity: Trust,
    pub depends_on: Vec<Id>,
    pub money: Cents,
    /// The currency of `money`; only pledges in it may pay.
    pub currency: Currency,
    pub impact: f64,
    pub tags: BTreeSet<String>,
}

/// A collective's need: a title and its tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct Need {
    pub id: Id,
    pub collective: Id,
    pub title: String,
    pub tasks: Vec<Task>,
}

/// An offer of money with its restrictions.
#[derive(Clone, Debug, PartialEq)]
pub struct Pledge {
    pub id: Id,
    pub amount: Cents,
    /// `None`: any collective.
    pub collectives: Option<BTreeSet<Id>>,
    /// `None`: any tag.
    pub tags: Option<BTreeSet<String>>,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// One currency per pledge.
    pub currency: Currency,
}

/// A whole validated instance: the world at `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct World {
    pub now: DateTime<Utc>,
    pub volunteers: Vec<Volunteer>,
    pub tasks: Vec<Task>,
    pub pledges: Vec<Pledge>,
    pub done: BTreeSet<Id>,
    /// Accepted `(volunteer, task)` pairs every plan keeps.
    pub pinned: Vec<(Id, Id)>,
}

impl Volunteer {
    /// Whether this volunteer may take `task` at all (skills, trust, region),
    /// time aside: rule 1 of problem.md.
    pub fn is_eligible_for(&self, task: &Task) -> bool {
        self.trust >= task.sensitivity
            && task
                .region
                .as_ref()
                .is_none_or(|region| self.region.as_ref() == Some(region))
            && task
                .skills
                .iter()
                .all(|(skill, level)| self.skills.get(skill).is_some_and(|held| held >= level))
    }
}

impl Pledge {
    /// Whether this pledge may pay for `task` (collective, tags, expiry): the
    /// pledge rule of problem.md, and the same currency. `window_start` is `max(now, earliest_start)`.
    pub fn can_fund(&self, task: &Task, window_start: DateTime<Utc>) -> bool {
        self.currency == task.currency
            && self
                .collectives
                .as_ref()
                .is_none_or(|allowed| allowed.contains(&task.collective))
            && self
                .tags
                .as_ref()
                .is_none_or(|tags| !tags.is_disjoint(&task.tags))
            && self.expires_at.is_none_or(|expiry| expiry > window_start)
    }
}
