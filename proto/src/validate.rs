//! Validation at the edge: wire types in, domain types out, or an error that
//! names the offending field (`tasks[2].hours`) and says what is wrong.
//!
//! Rules that need only the message itself live here. Rules that need the
//! world (does a dependency exist? does it close a cycle? is the task id
//! owned by another need?) are the ingest service's, which holds the world.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;

use crate::domain::{
    Cents, Currency, GeoPoint, Hours, Need, Place, Pledge, Shift, SkillLevel, Skills, Task, Trust,
    Volunteer, WeeklyWindow, World,
};
use crate::ids::{truncate, Id};
use crate::instance::{Instance, INSTANCE_FORMAT};
use crate::wire::{
    ErrorBody, ErrorCode, NeedPost, PledgeOffer, ReplyAction, Steering, TaskCompletion, TaskSpec,
    Vetting, VolunteerOffer, VolunteerReply, Withdrawal,
};

/// Largest request body accepted, in bytes. A need with the most tasks fits
/// comfortably; anything larger is refused with `too_large` before parsing.
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;
/// Largest instance file `switchboard solve` reads, in bytes.
pub const INSTANCE_BYTES_MAX: usize = 512 * 1024 * 1024;
pub const SKILLS_PER_OFFER_MAX: usize = 32;
pub const NAME_TOKEN_BYTES_MAX: usize = 40;
pub const HOURS_PER_WEEK_MAX: f64 = 168.0;
pub const TASK_HOURS_MAX: f64 = 1000.0;
pub const SLOTS_MAX: u8 = 50;
pub const TASKS_PER_NEED_MAX: usize = 200;
pub const DEPENDENCIES_PER_TASK_MAX: usize = 32;
pub const TAGS_MAX: usize = 16;
pub const TITLE_CHARS_MAX: usize = 200;
pub const FREE_TEXT_CHARS_MAX: usize = 200;
pub const LANGUAGES_MAX: usize = 16;
pub const IMPACT_MAX: f64 = 1.0e6;
/// Longest task instructions, in characters.
pub const INSTRUCTIONS_CHARS_MAX: usize = 2_000;
/// Most weekly windows one offer may list (four a day is plenty).
pub const WEEKLY_WINDOWS_MAX: usize = 28;
/// How far a shift's `hours` may differ from its length (the judge's 1e-6).
pub const SHIFT_HOURS_TOLERANCE: f64 = 1e-6;
/// Weekday names of a weekly window, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// No single amount above ten million dollars: sums of many stay far from overflow.
pub const AMOUNT_CENTS_MAX: u64 = 1_000_000_000;
pub const RESTRICTIONS_MAX: usize = 64;

// A need at the task limit must fit in a payload: about 1 KiB a task.
const _: () = assert!(TASKS_PER_NEED_MAX * 1024 <= PAYLOAD_BYTES_MAX);
const _: () = assert!(SLOTS_MAX as usize <= u8::MAX as usize);

/// A rule broken by one field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// Where, as a path into the body: `tasks[2].hours`.
    pub field: String,
    /// What is wrong, in words a collective can act on.
    pub reason: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<Invalid> for ErrorBody {
    fn from(invalid: Invalid) -> ErrorBody {
        let message = format!("{}: {}", invalid.field, invalid.reason);
        ErrorBody::new(ErrorCode::Invalid, Some(invalid.field), message)
    }
}

/// Joins a path prefix and a field name: `at("tasks[2]", "hours")`.
pub fn at(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Parses a JSON body into a wire type, refusing oversized bodies first.
/// A parse error names the field where it happened.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ErrorBody> {
    if body.len() > PAYLOAD_BYTES_MAX {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            None,
            format!(
                "body is {} bytes; the limit is {PAYLOAD_BYTES_MAX}",
                body.len()
            ),
        ));
    }
    decode_unbounded(body)
}

/// [`decode`] without the request size limit, for files the operator gives.
pub fn decode_unbounded<T: DeserializeOwned>(body: &[u8]) -> Result<T, ErrorBody> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.inner().to_string();
        // serde reports a missing field at its parent; point at the field itself.
        let field = match inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(missing) if path == "." || path == "?" => missing.to_owned(),
            Some(missing) => at(&path, missing),
            None if path.is_empty() || path == "." || path == "?" => "body".to_owned(),
            None => path,
        };
        let reason = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
        ErrorBody::from(Invalid::new(field, reason))
    })
}

fn id(text: &str, field: String) -> Result<Id, Invalid> {
    Id::parse(text, &field)
}

/// Skill, region and tag names: `[a-z][a-z0-9-]{0,39}`.
fn name_token(text: &str, field: &str) -> Result<String, Invalid> {
    let mut bytes = text.bytes();
    let first_ok = bytes.next().is_some_and(|byte| byte.is_ascii_lowercase());
    let rest_ok =
        bytes.all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    if first_ok && rest_ok && text.len() <= NAME_TOKEN_BYTES_MAX {
        Ok(text.to_owned())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "must be lowercase letters, digits and '-', starting with a letter, at most {NAME_TOKEN_BYTES_MAX} long; got {:?}",
                truncate(text)
            ),
        ))
    }
}

fn free_text(text: &str, field: &str, chars_max: usize) -> Result<String, Invalid> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > chars_max {
        return Err(Invalid::new(
            field,
            format!("must be at most {chars_max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

fn skills(levels: &BTreeMap<String, u8>, field: &str) -> Result<Skills, Invalid> {
    if levels.len() > SKILLS_PER_OFFER_MAX {
        return Err(Invalid::new(
            field,
            format!("at most {SKILLS_PER_OFFER_MAX} skills"),
        ));
    }
    let mut skills = Skills::new();
    for (name, &level) in levels {
        let skill_field = at(field, name);
        let name = name_token(name, &skill_field)?;
        if !(SkillLevel::MIN..=SkillLevel::MAX).contains(&level) {
            return Err(Invalid::new(
                skill_field,
                format!(
                    "level must be {} to {}, got {level}",
                    SkillLevel::MIN,
                    SkillLevel::MAX
                ),
            ));
        }
        skills.insert(name, SkillLevel::new_unchecked(level));
    }
    Ok(skills)
}

/// An optional ISO 4217 code; absent is the default currency.
pub fn currency(code: Option<&str>, field: &str) -> Result<Currency, Invalid> {
    Currency::or_default(code).ok_or_else(|| {
        Invalid::new(
            field,
            format!(
                "must be an ISO 4217 code of three capital letters (USD, EUR), got {:?}",
                truncate(code.unwrap_or_default())
            ),
        )
    })
}

fn trust(tier: u8, field: &str) -> Result<Trust, Invalid> {
    if tier > Trust::MAX {
        return Err(Invalid::new(
            field,
            format!("must be 0 (open), 1 (vetted) or 2 (core), got {tier}"),
        ));
    }
    Ok(Trust::new_unchecked(tier))
}

fn region(region: &Option<String>, field: &str) -> Result<Option<String>, Invalid> {
    region
        .as_deref()
        .map(|name| name_token(name, field))
        .transpose()
}

/// Times outside these bounds are typos (year 20026) that would break hour arithmetic.
fn time(value: DateTime<Utc>, field: &str) -> Result<DateTime<Utc>, Invalid> {
    let earliest = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
    let latest = Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0).single();
    match (earliest, latest) {
        (Some(earliest), Some(latest)) if value >= earliest && value < latest => Ok(value),
        _ => Err(Invalid::new(
            field,
            "must be between the years 2000 and 2200",
        )),
    }
}

fn tags(tags: &[String], field: &str) -> Result<BTreeSet<String>, Invalid> {
    if tags.len() > TAGS_MAX {
        return Err(Invalid::new(field, format!("at most {TAGS_MAX} tags")));
    }
    tags.iter()
        .enumerate()
        .map(|(index, tag)| name_token(tag, &format!("{field}[{index}]")))
        .collect()
}

fn languages(list: &[String], field: &str) -> Result<BTreeSet<String>, Invalid> {
    if list.len() > LANGUAGES_MAX {
        return Err(Invalid::new(field, format!("at most {LANGUAGES_MAX}")));
    }
    list.iter()
        .enumerate()
        .map(|(index, language)| name_token(language, &format!("{field}[{index}]")))
        .collect()
}

/// A latitude in [-90, 90] and a longitude in [-180, 180].
fn geo_point(lat: f64, lon: f64, prefix: &str) -> Result<GeoPoint, Invalid> {
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(Invalid::new(
            at(prefix, "lat"),
            format!("must be a latitude from -90 to 90, got {lat}"),
        ));
    }
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(Invalid::new(
            at(prefix, "lon"),
            format!("must be a longitude from -180 to 180, got {lon}"),
        ));
    }
    Ok(GeoPoint { lat, lon })
}

/// `HH:MM` as minutes after midnight; `24:00` only where `midnight_after` allows.
fn clock_minutes(text: &str, midnight_after: bool, field: &str) -> Result<u16, Invalid> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes[range].iter().try_fold(0u16, |sum, &byte| {
            byte.is_ascii_digit()
                .then(|| sum * 10 + u16::from(byte - b'0'))
        })
    };
    let parsed = if bytes.len() == 5 && bytes[2] == b':' {
        digits(0..2).zip(digits(3..5))
    } else {
        None
    };
    match parsed {
        Some((hour, minute))
            if minute < 60 && (hour < 24 || (midnight_after && hour == 24 && minute == 0)) =>
        {
            Ok(hour * 60 + minute)
        }
        _ => Err(Invalid::new(
            field,
            format!(
                "must be a time HH:MM from 00:00 to {}, got {:?}",
                if midnight_after { "24:00" } else { "23:59" },
                truncate(text)
            ),
        )),
    }
}

fn weekly(
    windows: &[crate::wire::WeeklyWindow],
    prefix: &str,
) -> Result<Vec<WeeklyWindow>, Invalid> {
    let field = at(prefix, "weekly");
    if windows.len() > WEEKLY_WINDOWS_MAX {
        return Err(Invalid::new(
            field,
            format!("at most {WEEKLY_WINDOWS_MAX} windows"),
        ));
    }
    let mut out = Vec::with_capacity(windows.len());
    for (index, window) in windows.iter().enumerate() {
        let here = format!("{field}[{index}]");
        if window.days.is_empty() {
            return Err(Invalid::new(
                at(&here, "days"),
                format!("must list some of {}", WEEKDAYS.join(", ")),
            ));
        }
        let mut days = 0u8;
        for (position, day) in window.days.iter().enumerate() {
            match WEEKDAYS.iter().position(|name| name == day) {
                Some(weekday) => days |= 1 << weekday,
                None => {
                    return Err(Invalid::new(
                        format!("{here}.days[{position}]"),
                        format!(
                            "must be one of {}, got {:?}",
                            WEEKDAYS.join(", "),
                            truncate(day)
                        ),
                    ))
                }
            }
        }
        let from_minutes = clock_minutes(&window.from, false, &at(&here, "from"))?;
        let to_minutes = clock_minutes(&window.to, true, &at(&here, "to"))?;
        if from_minutes >= to_minutes {
            return Err(Invalid::new(
                at(&here, "to"),
                format!("must be after from ({})", window.from),
            ));
        }
        out.push(WeeklyWindow {
            days,
            from_minutes,
            to_minutes,
        });
    }
    Ok(out)
}

/// An IANA time zone name (chrono-tz's compiled-in database); absent is UTC.
pub fn time_zone(name: Option<&str>, field: &str) -> Result<chrono_tz::Tz, Invalid> {
    match name {
        None => Ok(chrono_tz::Tz::UTC),
        Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
            Invalid::new(
                field,
                format!(
                    "must be an IANA time zone such as America/Detroit, got {:?}",
                    truncate(name)
                ),
            )
        }),
    }
}

impl VolunteerOffer {
    /// Validates the offer; `prefix` is its path in a larger body ("" alone).
    pub fn validate(&self, prefix: &str) -> Result<Volunteer, Invalid> {
        let id = id(&self.id, at(prefix, "id"))?;
        let skills = skills(&self.skills, &at(prefix, "skills"))?;
        let hours = self.hours_per_week;
        if !(hours.is_finite() && hours > 0.0 && hours <= HOURS_PER_WEEK_MAX) {
            return Err(Invalid::new(
                at(prefix, "hours_per_week"),
                format!("must be more than 0 and at most {HOURS_PER_WEEK_MAX}, got {hours}"),
            ));
        }
        let available_from = time(self.available_from, &at(prefix, "available_from"))?;
        let available_until = time(self.available_until, &at(prefix, "available_until"))?;
        if available_until <= available_from {
            return Err(Invalid::new(
                at(prefix, "available_until"),
                "must be after available_from",
            ));
        }
        if let Some(name) = &self.name {
            free_text(name, &at(prefix, "name"), FREE_TEXT_CHARS_MAX)?;
        }
        if let Some(contact) = &self.contact {
            free_text(contact, &at(prefix, "contact"), FREE_TEXT_CHARS_MAX)?;
        }
        let languages = languages(&self.languages, &at(prefix, "languages"))?;
        let tz = time_zone(self.tz.as_deref(), &at(prefix, "tz"))?;
        let weekly = weekly(&self.weekly, prefix)?;
        let home = self
            .home
            .map(|home| geo_point(home.lat, home.lon, &at(prefix, "home")))
            .transpose()?;
        if let Some(max_km) = self.max_km {
            if !(max_km.is_finite() && max_km >= 0.0) {
                return Err(Invalid::new(
                    at(prefix, "max_km"),
                    format!("must be a distance of 0 km or more, got {max_km}"),
                ));
            }
        }
        Ok(Volunteer {
            languages,
            tz,
            weekly,
            home,
            max_km: self.max_km,
            id,
            skills,
            hours_per_week: Hours::new_unchecked(hours),
            available_from,
            available_until,
            region: region(&self.region, &at(prefix, "region"))?,
            trust: trust(self.trust, &at(prefix, "trust"))?,
        })
    }
}

impl TaskSpec {
    // tidy: long: one check per field of a task, in the order of problem.md; split up, the list of fields would be scattered.
    /// Validates one task. `need` and `collective` come from the enclosing
    /// need, or from the task's own fields in an instance.
    pub fn validate(&self, prefix: &str, need: &Id, collective: &Id) -> Result<Task, Invalid> {
        let id = id(&self.id, at(prefix, "id"))?;
        let title = free_text(&self.title, &at(prefix, "title"), TITLE_CHARS_MAX)?;
        let skills = skills(&self.skills, &at(prefix, "skills"))?;
        let hours = self.hours;
        if !(hours.is_finite() && (0.0..=TASK_HOURS_MAX).contains(&hours)) {
            return Err(Invalid::new(
                at(prefix, "hours"),
                format!("must be between 0 and {TASK_HOURS_MAX}, got {hours}"),
            ));
        }
        if self.slots > SLOTS_MAX {
            return Err(Invalid::new(
                at(prefix, "slots"),
                format!("must be 0 to {SLOTS_MAX}, got {}", self.slots),
            ));
        }
        if self.slots > 0 && hours <= 0.0 {
            return Err(Invalid::new(
                at(prefix, "hours"),
                "must be more than 0 when the task has slots",
            ));
        }
        if self.slots == 0 && self.money_cents == 0 {
            return Err(Invalid::new(
                at(prefix, "money_cents"),
                "a task with no slots is a money-only need and must ask for money",
            ));
        }
        let earliest_start = time(self.earliest_start, &at(prefix, "earliest_start"))?;
        let deadline = time(self.deadline, &at(prefix, "deadline"))?;
        if deadline <= earliest_start {
            return Err(Invalid::new(
                at(prefix, "deadline"),
                "must be after earliest_start",
            ));
        }
        if self.depends_on.len() > DEPENDENCIES_PER_TASK_MAX {
            return Err(Invalid::new(
                at(prefix, "depends_on"),
                format!("at most {DEPENDENCIES_PER_TASK_MAX} dependencies"),
            ));
        }
        let mut depends_on = Vec::with_capacity(self.depends_on.len());
        for (index, dependency) in self.depends_on.iter().enumerate() {
            let field = at(prefix, &format!("depends_on[{index}]"));
            let dependency = Id::parse(dependency, &field)?;
            if dependency == id {
                return Err(Invalid::new(field, "a task cannot depend on itself"));
            }
            if !depends_on.contains(&dependency) {
                depends_on.push(dependency);
            }
        }
        if self.money_cents > AMOUNT_CENTS_MAX {
            return Err(Invalid::new(
                at(prefix, "money_cents"),
                format!("must be at most {AMOUNT_CENTS_MAX}"),
            ));
        }
        let impact = self.impact;
        if !(impact.is_finite() && (0.0..=IMPACT_MAX).contains(&impact)) {
            return Err(Invalid::new(
                at(prefix, "impact"),
                format!("must be between 0 and {IMPACT_MAX}, got {impact}"),
            ));
        }
        let shift = self
            .shift
            .map(|shift| {
                validate_shift(
                    shift,
                    hours,
                    earliest_start,
                    deadline,
                    &at(prefix, "shift"),
                    prefix,
                )
            })
            .transpose()?;
        let place = self
            .place
            .as_ref()
            .map(|place| {
                let field = at(prefix, "place");
                Ok::<Place, Invalid>(Place {
                    at: geo_point(place.lat, place.lon, &field)?,
                    name: place
                        .name
                        .as_deref()
                        .map(|name| free_text(name, &at(&field, "name"), FREE_TEXT_CHARS_MAX))
                        .transpose()?,
                    address: place
                        .address
                        .as_deref()
                        .map(|text| free_text(text, &at(&field, "address"), FREE_TEXT_CHARS_MAX))
                        .transpose()?,
                })
            })
            .transpose()?;
        let instructions = self
            .instructions
            .as_deref()
            .map(|text| instructions(text, &at(prefix, "instructions")))
            .transpose()?;
        Ok(Task {
            shift,
            place,
            instructions,
            languages: languages(&self.languages, &at(prefix, "languages"))?,
            id,
            need: need.clone(),
            collective: collective.clone(),
            title,
            skills,
            hours: Hours::new_unchecked(hours),
            slots: self.slots,
            earliest_start,
            deadline,
            region: region(&self.region, &at(prefix, "region"))?,
            sensitivity: trust(self.sensitivity, &at(prefix, "sensitivity"))?,
            depends_on,
            money: Cents(self.money_cents),
            currency: currency(self.currency.as_deref(), &at(prefix, "currency"))?,
            impact,
            tags: tags(&self.tags, &at(prefix, "tags"))?,
        })
    }

    /// Validates a task of an instance, whose need and collective are its own fields.
    pub fn validate_standalone(&self, prefix: &str) -> Result<Task, Invalid> {
        let need_field = at(prefix, "need");
        let need = Id::parse(
            self.need
                .as_deref()
                .ok_or_else(|| Invalid::new(&need_field, "required"))?,
            &need_field,
        )?;
        let collective_field = at(prefix, "collective");
        let collective = Id::parse(
            self.collective
                .as_deref()
                .ok_or_else(|| Invalid::new(&collective_field, "required"))?,
            &collective_field,
        )?;
        self.validate(prefix, &need, &collective)
    }
}

/// A shift is the task's whole window: `earliest_start` and `deadline` are
/// its ends and `hours` its length.
fn validate_shift(
    shift: crate::wire::Shift,
    hours: f64,
    earliest_start: DateTime<Utc>,
    deadline: DateTime<Utc>,
    field: &str,
    prefix: &str,
) -> Result<Shift, Invalid> {
    let start = time(shift.start, &at(field, "start"))?;
    let end = time(shift.end, &at(field, "end"))?;
    if end <= start {
        return Err(Invalid::new(at(field, "end"), "must be after shift.start"));
    }
    if earliest_start != start {
        return Err(Invalid::new(
            at(prefix, "earliest_start"),
            format!("must equal shift.start ({})", start.to_rfc3339()),
        ));
    }
    if deadline != end {
        return Err(Invalid::new(
            at(prefix, "deadline"),
            format!("must equal shift.end ({})", end.to_rfc3339()),
        ));
    }
    let length = (end - start)
        .num_microseconds()
        .map_or(f64::INFINITY, |micros| micros as f64 / 1e6 / 3600.0);
    if (hours - length).abs() > SHIFT_HOURS_TOLERANCE {
        return Err(Invalid::new(
            at(prefix, "hours"),
            format!("must be the shift's length, {length} h, got {hours}"),
        ));
    }
    Ok(Shift { start, end })
}

/// Instructions may run over several lines; other control characters are refused.
fn instructions(text: &str, field: &str) -> Result<String, Invalid> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > INSTRUCTIONS_CHARS_MAX {
        return Err(Invalid::new(
            field,
            format!("must be at most {INSTRUCTIONS_CHARS_MAX} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|character| character.is_control() && character != '\n')
    {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

impl NeedPost {
    /// Validates the need and its tasks. Dependencies on tasks outside the
    /// need are left for the caller, who knows the world.
    pub fn validate(&self) -> Result<Need, Invalid> {
        let id = id(&self.id, "id".to_owned())?;
        let collective = id_of(&self.collective, "collective")?;
        let title = free_text(&self.title, "title", TITLE_CHARS_MAX)?;
        if self.tasks.is_empty() {
            return Err(Invalid::new("tasks", "a need has at least one task"));
        }
        if self.tasks.len() > TASKS_PER_NEED_MAX {
            return Err(Invalid::new(
                "tasks",
                format!("at most {TASKS_PER_NEED_MAX} tasks"),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for (index, spec) in self.tasks.iter().enumerate() {
            let prefix = format!("tasks[{index}]");
            let task = spec.validate(&prefix, &id, &collective)?;
            if let Some(other) = spec.need.as_deref().filter(|other| *other != self.id) {
                return Err(Invalid::new(
                    at(&prefix, "need"),
                    format!("is {other:?}, not this need"),
                ));
            }
            if let Some(other) = spec
                .collective
                .as_deref()
                .filter(|other| *other != self.collective)
            {
                return Err(Invalid::new(
                    at(&prefix, "collective"),
                    format!("is {other:?}, not this need's collective"),
                ));
            }
            if !seen.insert(task.id.clone()) {
                return Err(Invalid::new(
                    at(&prefix, "id"),
                    format!("{} appears twice in this need", task.id),
                ));
            }
            tasks.push(task);
        }
        Ok(Need {
            id,
            collective,
            title,
            tasks,
        })
    }
}

fn id_of(text: &str, field: &str) -> Result<Id, Invalid> {
    Id::parse(text, field)
}

fn id_set(ids: &[String], field: &str) -> Result<BTreeSet<Id>, Invalid> {
    if ids.is_empty() {
        return Err(Invalid::new(
            field,
            "must list at least one, or be null for any",
        ));
    }
    if ids.len() > RESTRICTIONS_MAX {
        return Err(Invalid::new(field, format!("at most {RESTRICTIONS_MAX}")));
    }
    ids.iter()
        .enumerate()
        .map(|(index, text)| Id::parse(text, &format!("{field}[{index}]")))
        .collect()
}

impl PledgeOffer {
    pub fn validate(&self, prefix: &str) -> Result<Pledge, Invalid> {
        let id = id(&self.id, at(prefix, "id"))?;
        if self.amount_cents == 0 || self.amount_cents > AMOUNT_CENTS_MAX {
            return Err(Invalid::new(
                at(prefix, "amount_cents"),
                format!(
                    "must be 1 to {AMOUNT_CENTS_MAX} cents, got {}",
                    self.amount_cents
                ),
            ));
        }
        let collectives = self
            .collectives
            .as_deref()
            .map(|ids| id_set(ids, &at(prefix, "collectives")))
            .transpose()?;
        let tags = self
            .tags
            .as_deref()
            .map(|list| {
                if list.is_empty() {
                    Err(Invalid::new(
                        at(prefix, "tags"),
                        "must list at least one, or be null for any",
                    ))
                } else {
                    tags(list, &at(prefix, "tags"))
                }
            })
            .transpose()?;
        let expires_at = self
            .expires_at
            .map(|expiry| time(expiry, &at(prefix, "expires_at")))
            .transpose()?;
        if let Some(donor) = &self.donor {
            free_text(donor, &at(prefix, "donor"), FREE_TEXT_CHARS_MAX)?;
        }
        Ok(Pledge {
            id,
            amount: Cents(self.amount_cents),
            collectives,
            tags,
            expires_at,
            currency: currency(self.currency.as_deref(), &at(prefix, "currency"))?,
        })
    }
}

impl Withdrawal {
    pub fn validate(&self) -> Result<Id, Invalid> {
        id_of(&self.id, "id")
    }
}

impl VolunteerReply {
    pub fn validate(&self) -> Result<(Id, Id), Invalid> {
        let ids = (
            id_of(&self.volunteer, "volunteer")?,
            id_of(&self.task, "task")?,
        );
        match (self.action, self.hours_done) {
            (ReplyAction::Progress, None) => Err(Invalid::new(
                "hours_done",
                "is required with progress: the hours of your part done so far",
            )),
            (ReplyAction::Progress, Some(hours))
                if !(hours.is_finite() && (0.0..=TASK_HOURS_MAX).contains(&hours)) =>
            {
                Err(Invalid::new(
                    "hours_done",
                    format!("must be between 0 and {TASK_HOURS_MAX}, got {hours}"),
                ))
            }
            (ReplyAction::Progress, Some(_)) | (_, None) => Ok(ids),
            (_, Some(_)) => Err(Invalid::new("hours_done", "goes only with progress")),
        }
    }
}

impl Vetting {
    pub fn validate(&self) -> Result<(), Invalid> {
        id_of(&self.volunteer, "volunteer")?;
        id_of(&self.vetter, "vetter")?;
        trust(self.trust, "trust")?;
        if let Some(note) = &self.note {
            free_text(note, "note", VETTING_NOTE_CHARS_MAX)?;
        }
        Ok(())
    }
}

/// Longest note a vetter may leave, in characters.
pub const VETTING_NOTE_CHARS_MAX: usize = 1_000;

/// Largest campaign weight: enough to reorder priorities, not to erase them.
pub const STEERING_FACTOR_MAX: f64 = 10.0;

impl Steering {
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            Steering::Veto { volunteer, task } | Steering::Pin { volunteer, task } => {
                id_of(volunteer, "volunteer")?;
                id_of(task, "task")?;
            }
            Steering::Weight {
                collective,
                tag,
                factor,
            } => {
                if collective.is_none() && tag.is_none() {
                    return Err(Invalid::new(
                        "collective",
                        "a weight names a collective, a tag, or both",
                    ));
                }
                if let Some(collective) = collective {
                    id_of(collective, "collective")?;
                }
                if let Some(tag) = tag {
                    name_token(tag, "tag")?;
                }
                if !(factor.is_finite() && *factor > 0.0 && *factor <= STEERING_FACTOR_MAX) {
                    return Err(Invalid::new(
                        "factor",
                        format!(
                            "must be more than 0 and at most {STEERING_FACTOR_MAX}, got {factor}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl TaskCompletion {
    pub fn validate(&self) -> Result<Id, Invalid> {
        id_of(&self.task, "task")
    }
}

impl Instance {
    /// Validates a whole instance: every object, unique ids, references that
    /// resolve. (Dependency cycles are the solver's to refuse: it builds the graph.)
    pub fn validate(&self) -> Result<World, Invalid> {
        if self.format != INSTANCE_FORMAT {
            return Err(Invalid::new(
                "format",
                format!("must be {INSTANCE_FORMAT:?}"),
            ));
        }
        let now = time(self.now, "now")?;
        let mut volunteer_ids = BTreeSet::new();
        let mut volunteers = Vec::with_capacity(self.volunteers.len());
        for (index, offer) in self.volunteers.iter().enumerate() {
            let prefix = format!("volunteers[{index}]");
            let volunteer = offer.validate(&prefix)?;
            if !volunteer_ids.insert(volunteer.id.clone()) {
                return Err(Invalid::new(
                    at(&prefix, "id"),
                    format!("{} appears twice", volunteer.id),
                ));
            }
            volunteers.push(volunteer);
        }
        let done = self
            .done
            .iter()
            .enumerate()
            .map(|(index, text)| Id::parse(text, &format!("done[{index}]")))
            .collect::<Result<BTreeSet<Id>, Invalid>>()?;
        let mut task_ids = BTreeSet::new();
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for (index, spec) in self.tasks.iter().enumerate() {
            let prefix = format!("tasks[{index}]");
            let task = spec.validate_standalone(&prefix)?;
            if !task_ids.insert(task.id.clone()) {
                return Err(Invalid::new(
                    at(&prefix, "id"),
                    format!("{} appears twice", task.id),
                ));
            }
            tasks.push(task);
        }
        for (index, task) in tasks.iter().enumerate() {
            for (position, dependency) in task.depends_on.iter().enumerate() {
                if !task_ids.contains(dependency) && !done.contains(dependency) {
                    return Err(Invalid::new(
                        format!("tasks[{index}].depends_on[{position}]"),
                        format!("{dependency} is neither a task nor done"),
                    ));
                }
            }
        }
        let mut pledge_ids = BTreeSet::new();
        let mut pledges = Vec::with_capacity(self.pledges.len());
        for (index, offer) in self.pledges.iter().enumerate() {
            let prefix = format!("pledges[{index}]");
            let pledge = offer.validate(&prefix)?;
            if !pledge_ids.insert(pledge.id.clone()) {
                return Err(Invalid::new(
                    at(&prefix, "id"),
                    format!("{} appears twice", pledge.id),
                ));
            }
            pledges.push(pledge);
        }
        let mut pinned = Vec::with_capacity(self.pinned.len());
        for (index, pair) in self.pinned.iter().enumerate() {
            let volunteer = Id::parse(&pair.volunteer, &format!("pinned[{index}].volunteer"))?;
            let task = Id::parse(&pair.task, &format!("pinned[{index}].task"))?;
            if !volunteer_ids.contains(&volunteer) {
                return Err(Invalid::new(
                    format!("pinned[{index}].volunteer"),
                    "unknown volunteer",
                ));
            }
            if !task_ids.contains(&task) {
                return Err(Invalid::new(
                    format!("pinned[{index}].task"),
                    "unknown task",
                ));
            }
            pinned.push((volunteer, task));
        }
        Ok(World {
            now,
            volunteers,
            tasks,
            pledges,
            done,
            pinned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::NeedPost;

    fn need_json() -> serde_json::Value {
        serde_json::json!({
            "id": "n1", "collective": "c1", "title": "Tenant clinic",
            "tasks": [
                {"id": "t1", "title": "Intake", "skills": {"legal": 3}, "hours": 4.0, "slots": 2,
                 "earliest_start": "2026-11-22T00:00:00Z", "deadline": "2026-12-01T00:00:00Z",
                 "impact": 10.0, "sensitivity": 0, "region": "detroit"},
                {"id": "t2", "title": "Rent", "hours": 0.0, "slots": 0, "money_cents": 40000,
                 "earliest_start": "2026-11-22T00:00:00Z", "deadline": "2026-12-01T00:00:00Z",
                 "impact": 5.0, "depends_on": ["t1"]}
            ]
        })
    }

    fn refusal(body: serde_json::Value) -> (String, String) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let error = match decode::<NeedPost>(&bytes) {
            Err(error) => error,
            Ok(need) => need.validate().unwrap_err().into(),
        };
        (error.field.unwrap_or_default(), error.message)
    }

    #[test]
    fn a_well_formed_need_validates_into_domain_tasks() {
        let need: NeedPost = serde_json::from_value(need_json()).unwrap();
        let need = need.validate().unwrap();
        assert_eq!(need.tasks.len(), 2);
        assert_eq!(need.tasks[1].money, Cents(40000));
        assert_eq!(need.tasks[0].collective.as_str(), "c1");
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("/tasks/1/hours", serde_json::json!(-1.0), "tasks[1].hours"),
            ("/tasks/0/slots", serde_json::json!(51), "tasks[0].slots"),
            ("/tasks/0/slots", serde_json::json!(-1), "tasks[0].slots"),
            (
                "/tasks/0/skills",
                serde_json::json!({"legal": 6}),
                "tasks[0].skills.legal",
            ),
            (
                "/tasks/0/skills",
                serde_json::json!({"Legal!": 2}),
                "tasks[0].skills.Legal!",
            ),
            (
                "/tasks/0/deadline",
                serde_json::json!("2026-11-01T00:00:00Z"),
                "tasks[0].deadline",
            ),
            (
                "/tasks/0/deadline",
                serde_json::json!("next friday"),
                "tasks[0].deadline",
            ),
            (
                "/tasks/1/money_cents",
                serde_json::json!(-5),
                "tasks[1].money_cents",
            ),
            (
                "/tasks/1/money_cents",
                serde_json::json!(0),
                "tasks[1].money_cents",
            ),
            (
                "/tasks/1/money_cents",
                serde_json::json!(1.5),
                "tasks[1].money_cents",
            ),
            (
                "/tasks/1/depends_on",
                serde_json::json!(["t2"]),
                "tasks[1].depends_on[0]",
            ),
            ("/tasks/0/id", serde_json::json!("t2"), "tasks[1].id"),
            ("/tasks/0/id", serde_json::json!("a.b"), "tasks[0].id"),
            ("/tasks/0/impact", serde_json::json!(-3), "tasks[0].impact"),
            (
                "/tasks/0/sensitivity",
                serde_json::json!(3),
                "tasks[0].sensitivity",
            ),
            (
                "/tasks/0/region",
                serde_json::json!("New York"),
                "tasks[0].region",
            ),
            ("/collective", serde_json::json!(""), "collective"),
            ("/tasks", serde_json::json!([]), "tasks"),
        ];
        for (pointer, value, field) in cases {
            let mut body = need_json();
            *body.pointer_mut(pointer).unwrap() = value.clone();
            let (got, message) = refusal(body);
            assert_eq!(got, field, "{pointer} = {value}: {message}");
        }
    }

    #[test]
    fn a_missing_field_is_named_with_its_full_path() {
        let mut body = need_json();
        body.pointer_mut("/tasks/1")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove("hours");
        assert_eq!(refusal(body).0, "tasks[1].hours");
        let mut body = need_json();
        body.as_object_mut().unwrap().remove("title");
        assert_eq!(refusal(body).0, "title");
    }

    #[test]
    fn an_oversized_body_is_refused_before_parsing() {
        let body = vec![b' '; PAYLOAD_BYTES_MAX + 1];
        assert_eq!(
            decode::<NeedPost>(&body).unwrap_err().code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn garbage_is_an_invalid_body() {
        let error = decode::<NeedPost>(b"{not json").unwrap_err();
        assert_eq!(error.code, ErrorCode::Invalid);
        assert_eq!(error.field.as_deref(), Some("body"));
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let mut body = need_json();
        body["from_the_future"] = serde_json::json!(true);
        assert!(serde_json::from_value::<NeedPost>(body)
            .unwrap()
            .validate()
            .is_ok());
    }

    #[test]
    fn a_currency_is_three_capital_letters_and_only_its_own_pledges_fund_a_task() {
        let pledge: PledgeOffer = serde_json::from_value(
            serde_json::json!({"id": "p1", "amount_cents": 100, "currency": "usd"}),
        )
        .unwrap();
        assert_eq!(pledge.validate("").unwrap_err().field, "currency");
        let mut body = need_json();
        body["tasks"][1]["currency"] = serde_json::json!("EURO");
        let (field, _) = refusal(body.clone());
        assert_eq!(field, "tasks[1].currency");
        body["tasks"][1]["currency"] = serde_json::json!("EUR");
        let need: NeedPost = serde_json::from_value(body).unwrap();
        let rent = need.validate().unwrap().tasks.remove(1);
        let dollars: PledgeOffer =
            serde_json::from_value(serde_json::json!({"id": "p1", "amount_cents": 100})).unwrap();
        let euros: PledgeOffer = serde_json::from_value(
            serde_json::json!({"id": "p2", "amount_cents": 100, "currency": "EUR"}),
        )
        .unwrap();
        let start = rent.earliest_start;
        assert!(!dollars.validate("").unwrap().can_fund(&rent, start));
        assert!(euros.validate("").unwrap().can_fund(&rent, start));
    }

    fn shift_need_json() -> serde_json::Value {
        serde_json::json!({
            "id": "n1", "collective": "c1", "title": "Saturday crew",
            "tasks": [
                {"id": "t1", "title": "Crew", "hours": 4.0, "slots": 3,
                 "earliest_start": "2026-11-28T14:00:00Z", "deadline": "2026-11-28T18:00:00Z",
                 "impact": 10.0,
                 "shift": {"start": "2026-11-28T14:00:00Z", "end": "2026-11-28T18:00:00Z"},
                 "place": {"lat": 42.3467, "lon": -83.0412, "name": "Shed 5"},
                 "instructions": "Ask for Dana.\nBring gloves.", "languages": ["es"]}
            ]
        })
    }

    fn weekly_offer_json() -> serde_json::Value {
        serde_json::json!({
            "id": "v1", "skills": {}, "hours_per_week": 6.0,
            "available_from": "2026-11-22T00:00:00Z", "available_until": "2026-12-13T00:00:00Z",
            "tz": "America/Detroit", "home": {"lat": 42.36, "lon": -83.07}, "max_km": 10,
            "weekly": [{"days": ["mon", "wed"], "from": "17:00", "to": "22:00"},
                       {"days": ["sat"], "from": "09:00", "to": "24:00"}]
        })
    }

    #[test]
    fn a_shift_need_and_a_weekly_offer_validate_into_domain_values() {
        let need: NeedPost = serde_json::from_value(shift_need_json()).unwrap();
        let task = need.validate().unwrap().tasks.remove(0);
        let shift = task.shift.unwrap();
        assert_eq!((shift.end - shift.start).num_hours(), 4);
        assert_eq!(task.place.unwrap().name.as_deref(), Some("Shed 5"));
        assert!(task.instructions.unwrap().contains('\n'));
        let offer: VolunteerOffer = serde_json::from_value(weekly_offer_json()).unwrap();
        let volunteer = offer.validate("").unwrap();
        assert_eq!(volunteer.tz, chrono_tz::America::Detroit);
        assert_eq!(volunteer.weekly[1].to_minutes, 24 * 60);
        assert!(
            volunteer.weekly[0].on(0) && volunteer.weekly[0].on(2) && !volunteer.weekly[0].on(1)
        );
        // Absent or null fields set no limit, as before.
        let mut plain = weekly_offer_json();
        for key in ["tz", "home", "max_km"] {
            plain.as_object_mut().unwrap().remove(key);
        }
        plain["weekly"] = serde_json::Value::Null;
        plain["languages"] = serde_json::Value::Null;
        let plain: VolunteerOffer = serde_json::from_value(plain).unwrap();
        let plain = plain.validate("").unwrap();
        assert_eq!(
            (plain.tz, plain.weekly.len(), plain.max_km),
            (chrono_tz::Tz::UTC, 0, None)
        );
    }

    #[test]
    fn each_broken_shift_or_place_rule_names_its_field() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            (
                "/tasks/0/shift/end",
                serde_json::json!("2026-11-28T13:00:00Z"),
                "tasks[0].shift.end",
            ),
            ("/tasks/0/hours", serde_json::json!(3.5), "tasks[0].hours"),
            (
                "/tasks/0/earliest_start",
                serde_json::json!("2026-11-28T13:00:00Z"),
                "tasks[0].earliest_start",
            ),
            (
                "/tasks/0/deadline",
                serde_json::json!("2026-11-28T19:00:00Z"),
                "tasks[0].deadline",
            ),
            (
                "/tasks/0/place/lat",
                serde_json::json!(91.0),
                "tasks[0].place.lat",
            ),
            (
                "/tasks/0/place/lon",
                serde_json::json!(-180.5),
                "tasks[0].place.lon",
            ),
            (
                "/tasks/0/place/name",
                serde_json::json!(" "),
                "tasks[0].place.name",
            ),
            (
                "/tasks/0/instructions",
                serde_json::json!("a\u{7}b"),
                "tasks[0].instructions",
            ),
            (
                "/tasks/0/languages",
                serde_json::json!(["ES"]),
                "tasks[0].languages[0]",
            ),
        ];
        for (pointer, value, field) in cases {
            let mut body = shift_need_json();
            *body.pointer_mut(pointer).unwrap() = value.clone();
            let (got, message) = refusal(body);
            assert_eq!(got, field, "{pointer} = {value}: {message}");
        }
        let offer_cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("/tz", serde_json::json!("Mars/Olympus"), "tz"),
            ("/home/lat", serde_json::json!(-90.5), "home.lat"),
            ("/home/lon", serde_json::json!(181), "home.lon"),
            ("/max_km", serde_json::json!(-1), "max_km"),
            ("/weekly/0/days", serde_json::json!([]), "weekly[0].days"),
            (
                "/weekly/0/days",
                serde_json::json!(["mon", "monday"]),
                "weekly[0].days[1]",
            ),
            (
                "/weekly/1/from",
                serde_json::json!("25:00"),
                "weekly[1].from",
            ),
            ("/weekly/1/to", serde_json::json!("25:00"), "weekly[1].to"),
            (
                "/weekly/1/from",
                serde_json::json!("24:00"),
                "weekly[1].from",
            ),
            ("/weekly/1/to", serde_json::json!("9:00"), "weekly[1].to"),
            ("/weekly/0/to", serde_json::json!("17:00"), "weekly[0].to"),
            ("/weekly/0/to", serde_json::json!("16:59"), "weekly[0].to"),
        ];
        for (pointer, value, field) in offer_cases {
            let mut body = weekly_offer_json();
            *body.pointer_mut(pointer).unwrap() = value.clone();
            let offer: VolunteerOffer = serde_json::from_value(body).unwrap();
            let error = offer.validate("").unwrap_err();
            assert_eq!(error.field, field, "{pointer} = {value}: {}", error.reason);
        }
    }

    #[test]
    fn hours_done_goes_with_progress_and_only_then() {
        let reply = |action: ReplyAction, hours_done: Option<f64>| VolunteerReply {
            volunteer: "v1".into(),
            task: "t1".into(),
            action,
            round: None,
            hours_done,
        };
        assert!(reply(ReplyAction::Progress, Some(1.5)).validate().is_ok());
        assert!(reply(ReplyAction::Checkin, None).validate().is_ok());
        for bad in [
            reply(ReplyAction::Progress, None),
            reply(ReplyAction::Progress, Some(-1.0)),
            reply(ReplyAction::Progress, Some(f64::NAN)),
            reply(ReplyAction::Progress, Some(TASK_HOURS_MAX + 1.0)),
            reply(ReplyAction::Done, Some(2.0)),
        ] {
            let error = bad.validate().unwrap_err();
            assert_eq!(error.field, "hours_done", "{bad:?}: {}", error.reason);
        }
    }
}
