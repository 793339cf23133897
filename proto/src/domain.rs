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
    /// Languages spoken.
    pub languages: BTreeSet<String>,
    /// The time zone `weekly` is read in (`UTC` unless the offer names one).
    pub tz: chrono_tz::Tz,
    /// Weekly windows for shifts; empty: any time.
    pub weekly: Vec<WeeklyWindow>,
    pub home: Option<GeoPoint>,
    /// With `home`: the furthest a task's place may be, in km.
    pub max_km: Option<f64>,
}

/// A validated point on the globe, degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

/// The mean Earth radius the judge uses, in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

impl GeoPoint {
    /// Great-circle distance by the haversine formula, computed as
    /// `check_plan.py` computes it.
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let h = ((p2 - p1) / 2.0).sin().powi(2)
            + p1.cos() * p2.cos() * ((other.lon - self.lon).to_radians() / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
    }
}

/// Where a task happens.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub at: GeoPoint,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// A task's fixed time: `start < end`, and the task's window is exactly this.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shift {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One weekly window: on `days`, from `from_minutes` to `to_minutes` after
/// local midnight (`to_minutes` up to 1440, the next midnight); `from < to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeeklyWindow {
    /// Bit `i` set: weekday `i` (Monday 0 .. Sunday 6) is in the window.
    pub days: u8,
    pub from_minutes: u16,
    pub to_minutes: u16,
}

impl WeeklyWindow {
    /// Whether the window is open on `weekday` (Monday 0 .. Sunday 6).
    pub fn on(&self, weekday: u32) -> bool {
        weekday < 7 && self.days & (1 << weekday) != 0
    }
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
    /// `None`: a flexible task.
    pub shift: Option<Shift>,
    pub place: Option<Place>,
    pub instructions: Option<String>,
    /// Languages the work is done in; empty: any.
    pub languages: BTreeSet<String>,
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
    /// Whether this volunteer may take `task` at all (skills, trust, region,
    /// languages, distance), time aside: rule 1 of problem.md without its
    /// shift clauses (those are the solver's, which caches local times).
    pub fn is_eligible_for(&self, task: &Task) -> bool {
        self.speaks_for(task)
            && self.within_reach_of(task)
            && self.trust >= task.sensitivity
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

impl Volunteer {
    /// Rule 1, languages: a task with languages needs someone who speaks one.
    pub fn speaks_for(&self, task: &Task) -> bool {
        task.languages.is_empty() || !task.languages.is_disjoint(&self.languages)
    }

    /// Rule 1, distance: the distance from home to the task's place, when
    /// the volunteer set a limit and the task has a place.
    pub fn distance_km_to(&self, task: &Task) -> Option<f64> {
        match (&self.home, self.max_km, &task.place) {
            (Some(home), Some(_), Some(place)) => Some(home.distance_km(place.at)),
            _ => None,
        }
    }

    /// Rule 1, distance, with the judge's tolerance (1e-6 km).
    pub fn within_reach_of(&self, task: &Task) -> bool {
        match (self.distance_km_to(task), self.max_km) {
            (Some(km), Some(max_km)) => km <= max_km + 1e-6,
            _ => true,
        }
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
