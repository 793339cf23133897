//! The canonical problem, indexed for solving: every volunteer, task and
//! pledge gets a dense index, every time becomes `f64` hours after `now`, and
//! the pairs that can ever work (eligible volunteers per task, fundable tasks
//! per pledge) are computed once here so the solvers never touch strings.
//!
//! Rules that need the whole world (dependency cycles, ids that do not
//! resolve) are refused here with a [`ProblemError`]; everything else was
//! already checked by `proto::validate`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Utc};
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use proto::domain::{GeoPoint, WeeklyWindow, World};
use proto::Id;

/// Slack used when comparing hours the way `check_plan.py` does (its `EPS`).
pub const HOURS_TOLERANCE: f64 = 1e-6;

/// Why a validated world cannot be turned into a problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProblemError {
    /// The dependencies close a cycle through this task, so no plan can
    /// complete any task on it.
    #[error("task {task} depends on itself through a cycle of dependencies")]
    DependencyCycle { task: String },
    /// A dependency names a task that is neither open nor done.
    #[error("task {task} depends on {dependency}, which is neither a task nor done")]
    UnknownDependency { task: String, dependency: String },
    /// A pin names a volunteer or a task that is not in the world.
    #[error("pinned {volunteer}->{task} names an unknown volunteer or task")]
    UnknownPin { volunteer: String, task: String },
    /// Two objects of one kind share an id.
    #[error("{kind} id {id} appears twice")]
    DuplicateId { kind: &'static str, id: String },
}

/// What the solvers need of a volunteer, in hours after `now`.
#[derive(Clone, Debug)]
pub(crate) struct VolunteerFacts {
    /// `max(now, available_from)` in hours.
    pub available_from_hours: f64,
    pub available_until_hours: f64,
    /// `hours_per_week / 168`: the even rate at which time is given.
    pub hours_per_hour: f64,
    pub skills: BTreeMap<String, u8>,
    pub region: Option<String>,
    pub trust: u8,
    /// `available_from` in hours, not clipped to now: a shift must lie inside it.
    pub available_from_given_hours: f64,
    /// Rule 5c's weekly budget.
    pub hours_per_week: f64,
    /// Sorted.
    pub languages: Vec<String>,
    /// Index into [`Problem::zones`]: the time zone `weekly` is read in.
    pub zone: usize,
    /// Per weekday (Monday 0): `(from, to)` minutes after local midnight.
    /// All empty: no weekly pattern, any time.
    pub weekly: [Vec<(f64, f64)>; 7],
    pub has_weekly: bool,
    pub home: Option<GeoPoint>,
    pub max_km: Option<f64>,
}

impl VolunteerFacts {
    /// `cap(v, a, b)` of problem.md.
    pub fn capacity_between(&self, start_hours: f64, end_hours: f64) -> f64 {
        let overlap =
            end_hours.min(self.available_until_hours) - start_hours.max(self.available_from_hours);
        self.hours_per_hour * overlap.max(0.0)
    }
}

/// What the solvers need of a task, in hours after `now`.
#[derive(Clone, Debug)]
pub(crate) struct TaskFacts {
    /// `s = max(now, earliest_start)` in hours.
    pub start_hours: f64,
    /// `d = deadline` in hours.
    pub deadline_hours: f64,
    /// Hours each member of the team works.
    pub hours: f64,
    pub slots: usize,
    pub money_cents: u64,
    pub impact: f64,
    /// Open tasks this one needs complete; dependencies already done are dropped.
    pub dependencies: Vec<usize>,
    pub skills: BTreeMap<String, u8>,
    pub region: Option<String>,
    pub sensitivity: u8,
    /// `(start, end)` in hours after now, not clipped: `None` for a flexible task.
    pub shift: Option<(f64, f64)>,
    /// The shift's ends as times, to read them in a volunteer's time zone.
    pub shift_times: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub place: Option<GeoPoint>,
    /// Sorted; empty: any language.
    pub languages: Vec<String>,
    /// Rule 5c: how the task's hours fall into ISO weeks (week 0 holds now).
    pub week_hours: Vec<(i64, f64)>,
}

/// A shift in one time zone's wall-clock time, as the judge reads it: the
/// weekday of its local start date D, and start and end as minutes after D 00:00.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalShift {
    pub weekday: usize,
    pub start_minutes: f64,
    pub end_minutes: f64,
}

impl LocalShift {
    pub fn of(zone: chrono_tz::Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> LocalShift {
        let local_start = start.with_timezone(&zone).naive_local();
        let local_end = end.with_timezone(&zone).naive_local();
        let midnight = local_start.date().and_time(chrono::NaiveTime::MIN);
        let minutes = |delta: chrono::TimeDelta| {
            delta
                .num_microseconds()
                .map_or(f64::INFINITY, |micros| micros as f64 / 1e6 / 60.0)
        };
        LocalShift {
            weekday: local_start.weekday().num_days_from_monday() as usize,
            start_minutes: minutes(local_start - midnight),
            end_minutes: minutes(local_end - midnight),
        }
    }
}

/// Microseconds in a week of rule 5c.
const WEEK_MICROS: i64 = 7 * 24 * 3600 * 1_000_000;

/// The Monday 00:00 UTC that starts `now`'s week: week 0 of rule 5c.
pub(crate) fn week_origin(now: DateTime<Utc>) -> DateTime<Utc> {
    let monday =
        now.date_naive() - chrono::Days::new(u64::from(now.weekday().num_days_from_monday()));
    monday.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn week_of(origin: DateTime<Utc>, time: DateTime<Utc>) -> i64 {
    (time - origin)
        .num_microseconds()
        .unwrap_or(0)
        .div_euclid(WEEK_MICROS)
}

fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta
        .num_microseconds()
        .map_or(f64::INFINITY, |micros| micros as f64 / 1e6)
}

/// Rule 5c: a shift counts whole in the week it starts; a flexible task
/// spreads its hours evenly over `[s, d]` (whole in the week of `s` when the
/// window has no length), computed as check_plan.py's `week_hours`.
fn week_hours(now: DateTime<Utc>, task: &proto::domain::Task) -> Vec<(i64, f64)> {
    let origin = week_origin(now);
    let hours = task.hours.get();
    if let Some(shift) = &task.shift {
        return vec![(week_of(origin, shift.start), hours)];
    }
    let start = task.earliest_start.max(now);
    let deadline = task.deadline;
    let first = week_of(origin, start);
    if deadline <= start {
        return vec![(first, hours)];
    }
    let span = seconds(deadline - start);
    let week = chrono::TimeDelta::microseconds(WEEK_MICROS);
    let mut out = Vec::new();
    for k in first..=week_of(origin, deadline) {
        let Ok(k32) = i32::try_from(k) else { break };
        let lo = start.max(origin + week * k32);
        let hi = deadline.min(origin + week * (k32 + 1));
        if hi > lo {
            out.push((k, hours * seconds(hi - lo) / span));
        }
    }
    out
}

/// Per weekday, the windows open that day, as minutes.
fn weekly_by_day(windows: &[WeeklyWindow]) -> [Vec<(f64, f64)>; 7] {
    let mut by_day: [Vec<(f64, f64)>; 7] = Default::default();
    for window in windows {
        for (weekday, day) in by_day.iter_mut().enumerate() {
            if window.on(weekday as u32) {
                day.push((f64::from(window.from_minutes), f64::from(window.to_minutes)));
            }
        }
    }
    by_day
}

/// What the solvers need of a pledge.
#[derive(Clone, Debug)]
pub(crate) struct PledgeFacts {
    pub amount_cents: u64,
}

/// The indexed problem. Built once per solve from a validated world.
#[derive(Clone, Debug)]
pub struct Problem {
    pub(crate) volunteer_ids: Vec<Id>,
    pub(crate) task_ids: Vec<Id>,
    pub(crate) pledge_ids: Vec<Id>,
    pub(crate) volunteer_index_by_id: HashMap<String, usize>,
    pub(crate) task_index_by_id: HashMap<String, usize>,
    pub(crate) pledge_index_by_id: HashMap<String, usize>,
    pub(crate) volunteers: Vec<VolunteerFacts>,
    pub(crate) tasks: Vec<TaskFacts>,
    pub(crate) pledges: Vec<PledgeFacts>,
    /// For each task: the volunteers who are eligible (rule 1) and could fit
    /// the task alone in their time (rule 5 with one task). Sorted.
    pub(crate) candidates_of_task: Vec<Vec<usize>>,
    /// The same pairs, by volunteer. Sorted.
    pub(crate) tasks_of_volunteer: Vec<Vec<usize>>,
    /// For each task that asks for money: the pledges that may pay for it. Sorted.
    pub(crate) pledges_of_task: Vec<Vec<usize>>,
    /// The same pairs, by pledge. Sorted.
    pub(crate) tasks_of_pledge: Vec<Vec<usize>>,
    /// Tasks that list this one among their dependencies.
    pub(crate) dependents_of_task: Vec<Vec<usize>>,
    /// Every task after all of its dependencies.
    pub(crate) topological_order: Vec<usize>,
    /// Pinned `(volunteer, task)` pairs, without repeats.
    pub(crate) pins: Vec<(usize, usize)>,
    /// Per volunteer: how likely work given to them gets done, relative to
    /// a newcomer (1.0 for everyone unless the live service says otherwise;
    /// `reliability.rs`).
    pub(crate) reliability: Vec<f64>,
    /// Per volunteer: `(task, hours)` of work they are on and owe less of
    /// than the task's `hours` (`owed.rs`; empty unless the live service
    /// says so).
    pub(crate) owed: Vec<Vec<(usize, f64)>>,
    /// Hours after `now` before work not yet under way can start (the
    /// time people take to answer a proposal; 0 unless the live service
    /// says otherwise; `owed.rs`)...
    pub(crate) start_delay: f64,
    /// ...and per volunteer, `(task, hours)` where a pair's own differs.
    pub(crate) start_after: Vec<Vec<(usize, f64)>>,
    /// Whether any task is a shift: rules 5 (flexible tasks only), 5b and 5c
    /// apply in this form only then.
    pub(crate) has_shifts: bool,
    /// The time zones volunteers read their weekly windows in.
    pub(crate) zones: Vec<chrono_tz::Tz>,
    /// Per zone, per task: the shift in that zone's wall-clock time.
    pub(crate) local_shifts: Vec<Vec<Option<LocalShift>>>,
}

/// The solver's view of a volunteer.
pub(crate) fn volunteer_facts(
    now: DateTime<Utc>,
    volunteer: &proto::domain::Volunteer,
    zone: usize,
) -> VolunteerFacts {
    let mut languages: Vec<String> = volunteer.languages.iter().cloned().collect();
    languages.sort_unstable();
    VolunteerFacts {
        available_from_given_hours: hours_after(now, volunteer.available_from),
        hours_per_week: volunteer.hours_per_week.get(),
        languages,
        zone,
        weekly: weekly_by_day(&volunteer.weekly),
        has_weekly: !volunteer.weekly.is_empty(),
        home: volunteer.home,
        max_km: volunteer.max_km,
        available_from_hours: hours_after(now, volunteer.available_from).max(0.0),
        available_until_hours: hours_after(now, volunteer.available_until),
        hours_per_hour: volunteer.hours_per_week.get() / 168.0,
        skills: volunteer
            .skills
            .iter()
            .map(|(name, level)| (name.clone(), level.get()))
            .collect(),
        region: volunteer.region.clone(),
        trust: volunteer.trust.get(),
    }
}

/// The solver's view of a task whose open dependencies are already resolved.
pub(crate) fn task_facts(
    now: DateTime<Utc>,
    task: &proto::domain::Task,
    dependencies: Vec<usize>,
) -> TaskFacts {
    let mut languages: Vec<String> = task.languages.iter().cloned().collect();
    languages.sort_unstable();
    TaskFacts {
        shift: task
            .shift
            .map(|shift| (hours_after(now, shift.start), hours_after(now, shift.end))),
        shift_times: task.shift.map(|shift| (shift.start, shift.end)),
        place: task.place.as_ref().map(|place| place.at),
        languages,
        week_hours: week_hours(now, task),
        start_hours: hours_after(now, task.earliest_start).max(0.0),
        deadline_hours: hours_after(now, task.deadline),
        hours: task.hours.get(),
        slots: usize::from(task.slots),
        money_cents: task.money.0,
        impact: task.impact,
        dependencies,
        skills: task
            .skills
            .iter()
            .map(|(name, level)| (name.clone(), level.get()))
            .collect(),
        region: task.region.clone(),
        sensitivity: task.sensitivity.get(),
    }
}

/// The open tasks `task` depends on, as indexes; dependencies in `done` are
/// met already (`done` wins over an open task of the same id, as in
/// check_plan.py).
pub(crate) fn resolve_dependencies(
    task: &proto::domain::Task,
    done: &std::collections::BTreeSet<Id>,
    index_of: impl Fn(&str) -> Option<usize>,
) -> Result<Vec<usize>, ProblemError> {
    let mut dependencies = Vec::new();
    for dependency in &task.depends_on {
        if done.contains(dependency) {
            continue;
        }
        match index_of(dependency.as_str()) {
            Some(index) => dependencies.push(index),
            None => {
                return Err(ProblemError::UnknownDependency {
                    task: task.id.to_string(),
                    dependency: dependency.to_string(),
                })
            }
        }
    }
    dependencies.sort_unstable();
    dependencies.dedup();
    Ok(dependencies)
}

/// Hours from `now` to `time`, computed exactly as `check_plan.py` does
/// (microseconds, then seconds, then hours), so both agree to the last bit.
pub(crate) fn hours_after(now: DateTime<Utc>, time: DateTime<Utc>) -> f64 {
    let delta = time - now;
    match delta.num_microseconds() {
        Some(micros) => micros as f64 / 1e6 / 3600.0,
        // Beyond ±292,000 years: validation keeps times within 2000..2200.
        None => delta.num_seconds() as f64 / 3600.0,
    }
}

impl Problem {
    /// Indexes a validated world. Refuses dependency cycles, dependencies and
    /// pins that do not resolve, and duplicate ids.
    pub fn from_world(world: &World) -> Result<Problem, ProblemError> {
        let now = world.now;
        let volunteer_index_by_id = index_ids(world.volunteers.iter().map(|v| &v.id), "volunteer")?;
        let task_index_by_id = index_ids(world.tasks.iter().map(|t| &t.id), "task")?;
        let pledge_index_by_id = index_ids(world.pledges.iter().map(|p| &p.id), "pledge")?;

        let mut tasks = Vec::with_capacity(world.tasks.len());
        for task in &world.tasks {
            let dependencies =
                resolve_dependencies(task, &world.done, |id| task_index_by_id.get(id).copied())?;
            tasks.push(task_facts(now, task, dependencies));
        }

        let topological_order = topological_order(&tasks, &world.tasks)?;
        let mut dependents_of_task = vec![Vec::new(); tasks.len()];
        for (task_index, task) in tasks.iter().enumerate() {
            for &dependency in &task.dependencies {
                dependents_of_task[dependency].push(task_index);
            }
        }

        let has_shifts = tasks.iter().any(|task| task.shift.is_some());
        let mut zones: Vec<chrono_tz::Tz> = Vec::new();
        let mut local_shifts: Vec<Vec<Option<LocalShift>>> = Vec::new();
        let mut volunteers = Vec::with_capacity(world.volunteers.len());
        for volunteer in &world.volunteers {
            let zone = zone_index(&mut zones, &mut local_shifts, &tasks, volunteer.tz);
            volunteers.push(volunteer_facts(now, volunteer, zone));
        }

        let (pledges_of_task, tasks_of_pledge) = fundable_pairs(world, &tasks);

        let mut pins = Vec::with_capacity(world.pinned.len());
        for (volunteer, task) in &world.pinned {
            match (
                volunteer_index_by_id.get(volunteer.as_str()),
                task_index_by_id.get(task.as_str()),
            ) {
                (Some(&v), Some(&t)) => pins.push((v, t)),
                _ => {
                    return Err(ProblemError::UnknownPin {
                        volunteer: volunteer.to_string(),
                        task: task.to_string(),
                    })
                }
            }
        }
        pins.sort_unstable();
        pins.dedup();

        let mut problem = Problem {
            volunteer_ids: world.volunteers.iter().map(|v| v.id.clone()).collect(),
            task_ids: world.tasks.iter().map(|t| t.id.clone()).collect(),
            pledge_ids: world.pledges.iter().map(|p| p.id.clone()).collect(),
            volunteer_index_by_id,
            task_index_by_id,
            pledge_index_by_id,
            volunteers,
            tasks,
            pledges: world
                .pledges
                .iter()
                .map(|p| PledgeFacts {
                    amount_cents: p.amount.0,
                })
                .collect(),
            candidates_of_task: Vec::new(),
            tasks_of_volunteer: Vec::new(),
            pledges_of_task,
            tasks_of_pledge,
            dependents_of_task,
            topological_order,
            pins,
            reliability: vec![1.0; world.volunteers.len()],
            owed: vec![Vec::new(); world.volunteers.len()],
            start_delay: 0.0,
            start_after: vec![Vec::new(); world.volunteers.len()],
            has_shifts,
            zones,
            local_shifts,
        };
        let (candidates_of_task, tasks_of_volunteer) = eligible_pairs(world, &problem);
        problem.candidates_of_task = candidates_of_task;
        problem.tasks_of_volunteer = tasks_of_volunteer;
        Ok(problem)
    }

    /// The index of `zone` among the problem's time zones, adding it (and
    /// every task's shift read in it) when it is new.
    pub(crate) fn zone_index(&mut self, zone: chrono_tz::Tz) -> usize {
        zone_index(&mut self.zones, &mut self.local_shifts, &self.tasks, zone)
    }

    /// Reads a newly pushed task's shift in every known zone.
    pub(crate) fn push_task_local_shifts(&mut self) {
        let Some(task) = self.tasks.last() else {
            return;
        };
        for (zone, locals) in self.zones.iter().zip(self.local_shifts.iter_mut()) {
            locals.push(
                task.shift_times
                    .map(|(start, end)| LocalShift::of(*zone, start, end)),
            );
        }
    }

    /// Rule 1's shift clause: inside the availability as given and, when the
    /// volunteer has weekly windows, inside one of them on the shift's local date.
    pub(crate) fn shift_failures(&self, volunteer: usize, task: usize) -> Vec<String> {
        let mut failures = Vec::new();
        let Some((start, end)) = self.tasks[task].shift else {
            return failures;
        };
        let person = &self.volunteers[volunteer];
        if person.available_from_given_hours > start {
            failures.push(format!(
                "available from {:.2} h, after the shift starts ({start:.2} h)",
                person.available_from_given_hours
            ));
        }
        if person.available_until_hours < end {
            failures.push(format!(
                "available until {:.2} h, before the shift ends ({end:.2} h)",
                person.available_until_hours
            ));
        }
        if person.has_weekly && !self.fits_weekly(volunteer, task) {
            let zone = self.zones[person.zone];
            failures.push(format!("shift is outside the weekly hours ({zone})"));
        }
        failures
    }

    fn fits_weekly(&self, volunteer: usize, task: usize) -> bool {
        let person = &self.volunteers[volunteer];
        match self.local_shifts[person.zone][task] {
            None => true,
            Some(local) => person.weekly[local.weekday]
                .iter()
                .any(|&(from, to)| from <= local.start_minutes && local.end_minutes <= to),
        }
    }

    /// Rule 1's additions that hold for every task: languages and distance.
    fn language_and_distance_failures(&self, volunteer: usize, task: usize) -> Vec<String> {
        let person = &self.volunteers[volunteer];
        let facts = &self.tasks[task];
        let mut failures = Vec::new();
        if !facts.languages.is_empty()
            && !facts
                .languages
                .iter()
                .any(|language| person.languages.binary_search(language).is_ok())
        {
            failures.push(format!("speaks none of {}", facts.languages.join(", ")));
        }
        if let (Some(place), Some(home), Some(max_km)) = (facts.place, person.home, person.max_km) {
            let km = home.distance_km(place);
            if km > max_km + HOURS_TOLERANCE {
                failures.push(format!("{km:.1} km from home, max {max_km}"));
            }
        }
        failures
    }

    /// Rule 1 beyond skills, trust and region, as a cheap yes or no.
    pub(crate) fn passes_new_rule_one(&self, volunteer: usize, task: usize) -> bool {
        let person = &self.volunteers[volunteer];
        let facts = &self.tasks[task];
        if !facts.languages.is_empty()
            && !facts
                .languages
                .iter()
                .any(|language| person.languages.binary_search(language).is_ok())
        {
            return false;
        }
        if let (Some(place), Some(home), Some(max_km)) = (facts.place, person.home, person.max_km) {
            if home.distance_km(place) > max_km + HOURS_TOLERANCE {
                return false;
            }
        }
        if let Some((start, end)) = facts.shift {
            if person.available_from_given_hours > start
                || person.available_until_hours < end
                || (person.has_weekly && !self.fits_weekly(volunteer, task))
            {
                return false;
            }
        }
        true
    }

    pub fn volunteer_count(&self) -> usize {
        self.volunteers.len()
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    pub fn pledge_count(&self) -> usize {
        self.pledges.len()
    }

    pub fn volunteer_id(&self, index: usize) -> &Id {
        &self.volunteer_ids[index]
    }

    pub fn task_id(&self, index: usize) -> &Id {
        &self.task_ids[index]
    }

    pub fn pledge_id(&self, index: usize) -> &Id {
        &self.pledge_ids[index]
    }

    pub fn volunteer_index(&self, id: &str) -> Option<usize> {
        self.volunteer_index_by_id.get(id).copied()
    }

    pub fn task_index(&self, id: &str) -> Option<usize> {
        self.task_index_by_id.get(id).copied()
    }

    pub fn pledge_index(&self, id: &str) -> Option<usize> {
        self.pledge_index_by_id.get(id).copied()
    }

    /// The pinned `(volunteer, task)` pairs, as indexes.
    pub fn pins(&self) -> &[(usize, usize)] {
        &self.pins
    }

    /// The task's impact: what completing it adds to the objective.
    pub fn task_impact(&self, task: usize) -> f64 {
        self.tasks[task].impact
    }

    /// Volunteers who are eligible for `task` and could fit it alone in their time.
    pub fn candidates(&self, task: usize) -> &[usize] {
        &self.candidates_of_task[task]
    }

    /// Why `volunteer` may not take `task` by rule 1 of problem.md (skills,
    /// trust, region, shift times, weekly hours, languages, distance), in the
    /// judge's words; empty when eligible. Time (rules 5-5c) aside.
    pub fn why_ineligible(&self, volunteer: usize, task: usize) -> Vec<String> {
        self.eligibility_failures(volunteer, task)
    }

    /// Rule 1 of problem.md for indexed objects.
    pub(crate) fn eligibility_failures(&self, volunteer: usize, task: usize) -> Vec<String> {
        let (volunteer_index, task_index) = (volunteer, task);
        let volunteer = &self.volunteers[volunteer];
        let task = &self.tasks[task];
        let mut failures = Vec::new();
        for (skill, &level) in &task.skills {
            if volunteer.skills.get(skill).copied().unwrap_or(0) < level {
                failures.push(format!("lacks {skill}>={level}"));
            }
        }
        if volunteer.trust < task.sensitivity {
            failures.push(format!(
                "trust {} < sensitivity {}",
                volunteer.trust, task.sensitivity
            ));
        }
        if let Some(region) = &task.region {
            if volunteer.region.as_ref() != Some(region) {
                failures.push(format!(
                    "region {} != {region}",
                    volunteer.region.as_deref().unwrap_or("None")
                ));
            }
        }
        failures.extend(self.shift_failures(volunteer_index, task_index));
        failures.extend(self.language_and_distance_failures(volunteer_index, task_index));
        failures
    }

    pub(crate) fn is_eligible(&self, volunteer: usize, task: usize) -> bool {
        self.eligibility_failures(volunteer, task).is_empty()
    }

    /// Whether `pledge` may pay for `task`, computed from the indexed lists
    /// for money tasks (the only ones a pledge can usefully pay).
    pub(crate) fn pledge_may_fund(&self, pledge: usize, task: usize) -> bool {
        self.pledges_of_task[task].binary_search(&pledge).is_ok()
    }
}

fn zone_index(
    zones: &mut Vec<chrono_tz::Tz>,
    local_shifts: &mut Vec<Vec<Option<LocalShift>>>,
    tasks: &[TaskFacts],
    zone: chrono_tz::Tz,
) -> usize {
    if let Some(index) = zones.iter().position(|&known| known == zone) {
        return index;
    }
    zones.push(zone);
    local_shifts.push(
        tasks
            .iter()
            .map(|task| {
                task.shift_times
                    .map(|(start, end)| LocalShift::of(zone, start, end))
            })
            .collect(),
    );
    zones.len() - 1
}

fn index_ids<'a>(
    ids: impl Iterator<Item = &'a Id>,
    kind: &'static str,
) -> Result<HashMap<String, usize>, ProblemError> {
    let mut map = HashMap::new();
    for (index, id) in ids.enumerate() {
        if map.insert(id.to_string(), index).is_some() {
            return Err(ProblemError::DuplicateId {
                kind,
                id: id.to_string(),
            });
        }
    }
    Ok(map)
}

/// Orders tasks after their dependencies, refusing cycles (petgraph's toposort).
fn topological_order(
    tasks: &[TaskFacts],
    domain_tasks: &[proto::domain::Task],
) -> Result<Vec<usize>, ProblemError> {
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(tasks.len(), tasks.len());
    let nodes: Vec<NodeIndex> = (0..tasks.len())
        .map(|index| graph.add_node(index))
        .collect();
    for (task_index, task) in tasks.iter().enumerate() {
        for &dependency in &task.dependencies {
            graph.add_edge(nodes[dependency], nodes[task_index], ());
        }
    }
    match toposort(&graph, None) {
        Ok(order) => Ok(order.into_iter().map(|node| graph[node]).collect()),
        Err(cycle) => Err(ProblemError::DependencyCycle {
            task: domain_tasks[graph[cycle.node_id()]].id.to_string(),
        }),
    }
}

/// Every (pledge, money task) pair the pledge rule of problem.md allows,
/// with the expiry compared in hours exactly as `check_plan.py` compares it.
///
/// Collectives and tags are interned to small integers first: with thousands
/// of pledges and money tasks, set operations on strings dominated indexing.
fn fundable_pairs(world: &World, tasks: &[TaskFacts]) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let name_id = |name: &str, names: &mut HashMap<String, usize>| {
        let next = names.len();
        *names.entry(name.to_owned()).or_insert(next)
    };
    let mut collective_ids: HashMap<String, usize> = HashMap::new();
    let mut tag_ids: HashMap<String, usize> = HashMap::new();
    let money_tasks: Vec<(usize, usize, Vec<usize>)> = world
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, task)| task.money.0 > 0)
        .map(|(index, task)| {
            let collective = name_id(task.collective.as_str(), &mut collective_ids);
            let mut tags: Vec<usize> = task
                .tags
                .iter()
                .map(|tag| name_id(tag, &mut tag_ids))
                .collect();
            tags.sort_unstable();
            (index, collective, tags)
        })
        .collect();
    let mut pledges_of_task = vec![Vec::new(); tasks.len()];
    let mut tasks_of_pledge = vec![Vec::new(); world.pledges.len()];
    for (pledge_index, pledge) in world.pledges.iter().enumerate() {
        // A restriction naming something no money task has matches nothing.
        let collectives: Option<Vec<usize>> = pledge.collectives.as_ref().map(|allowed| {
            allowed
                .iter()
                .filter_map(|name| collective_ids.get(name.as_str()).copied())
                .collect()
        });
        let pledge_tags: Option<Vec<usize>> = pledge.tags.as_ref().map(|tags| {
            tags.iter()
                .filter_map(|tag| tag_ids.get(tag.as_str()).copied())
                .collect()
        });
        let expires_hours = pledge
            .expires_at
            .map(|expiry| hours_after(world.now, expiry));
        for (task_index, collective, task_tags) in &money_tasks {
            let fits = collectives
                .as_ref()
                .is_none_or(|allowed| allowed.contains(collective))
                && pledge_tags
                    .as_ref()
                    .is_none_or(|tags| tags.iter().any(|tag| task_tags.contains(tag)))
                && expires_hours.is_none_or(|expiry| expiry > tasks[*task_index].start_hours);
            if fits {
                pledges_of_task[*task_index].push(pledge_index);
                tasks_of_pledge[pledge_index].push(*task_index);
            }
        }
    }
    (pledges_of_task, tasks_of_pledge)
}

/// Every (volunteer, task) pair that could ever be in a plan: eligible, and
/// the task alone fits the volunteer's time in its window.
///
/// With 20,000 volunteers and 15,000 tasks the full cross product is 3e8
/// checks; instead each task scans only the holders of its rarest required
/// skill in its own region (all regions for remote tasks), with skills and
/// regions interned to integers.
fn eligible_pairs(world: &World, problem: &Problem) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let volunteers = &problem.volunteers;
    let tasks = &problem.tasks;
    let mut skill_ids: HashMap<&str, usize> = HashMap::new();
    let mut region_ids: HashMap<&str, usize> = HashMap::new();
    // Per volunteer: (skill, level) sorted by skill id.
    let mut held: Vec<Vec<(usize, u8)>> = Vec::with_capacity(volunteers.len());
    // (skill, region) -> holders; region `None` lists holders everywhere.
    let mut holders: HashMap<(usize, Option<usize>), Vec<usize>> = HashMap::new();
    let mut everyone_in: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for (volunteer_index, volunteer) in world.volunteers.iter().enumerate() {
        let region = volunteer.region.as_deref().map(|name| {
            let next = region_ids.len();
            *region_ids.entry(name).or_insert(next)
        });
        let mut levels = Vec::with_capacity(volunteer.skills.len());
        for (skill, level) in &volunteer.skills {
            let next = skill_ids.len();
            let skill = *skill_ids.entry(skill.as_str()).or_insert(next);
            levels.push((skill, level.get()));
            holders
                .entry((skill, None))
                .or_default()
                .push(volunteer_index);
            if region.is_some() {
                holders
                    .entry((skill, region))
                    .or_default()
                    .push(volunteer_index);
            }
        }
        levels.sort_unstable();
        held.push(levels);
        everyone_in.entry(None).or_default().push(volunteer_index);
        if region.is_some() {
            everyone_in.entry(region).or_default().push(volunteer_index);
        }
    }
    let no_one: Vec<usize> = Vec::new();
    let mut candidates_of_task = vec![Vec::new(); tasks.len()];
    let mut tasks_of_volunteer = vec![Vec::new(); volunteers.len()];
    for (task_index, task) in world.tasks.iter().enumerate() {
        let facts = &tasks[task_index];
        if facts.slots == 0 {
            continue;
        }
        let region = match task.region.as_deref() {
            None => None,
            Some(name) => match region_ids.get(name) {
                Some(&id) => Some(id),
                None => continue, // Nobody lives there.
            },
        };
        let mut required = Vec::with_capacity(task.skills.len());
        let mut unheld = false;
        for (skill, level) in &task.skills {
            match skill_ids.get(skill.as_str()) {
                Some(&id) => required.push((id, level.get())),
                None => unheld = true,
            }
        }
        if unheld {
            continue;
        }
        let pool = required
            .iter()
            .map(|&(skill, _)| holders.get(&(skill, region)).unwrap_or(&no_one))
            .min_by_key(|pool| pool.len())
            .unwrap_or_else(|| everyone_in.get(&region).unwrap_or(&no_one));
        let sensitivity = task.sensitivity.get();
        for &volunteer_index in pool {
            let facts_of_volunteer = &volunteers[volunteer_index];
            if facts_of_volunteer.trust < sensitivity {
                continue;
            }
            let levels = &held[volunteer_index];
            let skilled = required.iter().all(|&(skill, level)| {
                levels
                    .binary_search_by_key(&skill, |&(id, _)| id)
                    .is_ok_and(|position| levels[position].1 >= level)
            });
            if !skilled {
                continue;
            }
            if !problem.passes_new_rule_one(volunteer_index, task_index) {
                continue;
            }
            debug_assert!(world.volunteers[volunteer_index].is_eligible_for(task));
            if crate::time::fits_with(problem, volunteer_index, &[], task_index) {
                candidates_of_task[task_index].push(volunteer_index);
                tasks_of_volunteer[volunteer_index].push(task_index);
            }
        }
    }
    // Pools are in volunteer order already; tasks were visited in order.
    (candidates_of_task, tasks_of_volunteer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{instance, task, volunteer};

    fn world(raw: serde_json::Value) -> World {
        let instance: proto::instance::Instance = serde_json::from_value(raw).unwrap();
        instance.validate().unwrap()
    }

    #[test]
    fn a_cycle_of_dependencies_is_refused() {
        let mut first = task("t1", json!({}), 1.0, 1, 7, 1.0);
        first["depends_on"] = json!(["t2"]);
        let mut second = task("t2", json!({}), 1.0, 1, 7, 1.0);
        second["depends_on"] = json!(["t1"]);
        let error =
            Problem::from_world(&world(instance(vec![], vec![first, second], vec![]))).unwrap_err();
        assert!(
            matches!(error, ProblemError::DependencyCycle { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_dependency_on_a_done_task_is_already_met() {
        let mut raw = instance(vec![], vec![task("t1", json!({}), 1.0, 1, 7, 1.0)], vec![]);
        raw["tasks"][0]["depends_on"] = json!(["t0"]);
        raw["done"] = json!(["t0"]);
        let problem = Problem::from_world(&world(raw)).unwrap();
        assert!(problem.tasks[0].dependencies.is_empty());
    }

    #[test]
    fn candidates_are_the_eligible_volunteers_with_time_for_the_task() {
        let volunteers = vec![
            volunteer("skilled", json!({"legal": 4}), 10.0),
            volunteer("unskilled", json!({"legal": 2}), 10.0),
            volunteer("too-busy", json!({"legal": 4}), 1.0),
        ];
        let raw = instance(
            volunteers,
            vec![task("t1", json!({"legal": 3}), 2.0, 1, 7, 1.0)],
            vec![],
        );
        let problem = Problem::from_world(&world(raw)).unwrap();
        assert_eq!(problem.candidates(0), &[0]);
        assert_eq!(problem.volunteer_index("too-busy"), Some(2));
        assert!(
            problem.is_eligible(2, 0),
            "eligible by rule 1, only short of time"
        );
    }
}
