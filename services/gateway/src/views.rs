//! What each role's page shows, computed from the read model.
//!
//! Each view is the whole of what one principal may see, so access control
//! is a matter of which view a request gets, not of filtering fields later:
//! the coordinator view holds everything (names and contacts included); a
//! collective's view holds only its own needs, with teams as volunteer ids;
//! a volunteer's view holds only their own offer and assignments.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use proto::instance::Plan;
use proto::wire::{NeedPost, Place, Shift, TaskSpec, VolunteerOffer, Why};
use schemars::JsonSchema;
use serde::Serialize;

use crate::model::{Assignment, AssignmentState, Delivered, ReadModel};

/// "Next" on the three-weeks view: work that starts within this many days.
pub const NEXT_WITHIN_DAYS: i64 = 7;
/// Rows of a shortage or idle list shown at most, so a page stays readable.
pub const LIST_ROWS_MAX: usize = 200;
/// Hours in a week, for turning `hours_per_week` into hours of a tenure.
const HOURS_PER_WEEK: f64 = 168.0;

/// One member of a task's team as a collective or coordinator sees them.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TeamMember {
    pub volunteer: String,
    pub state: AssignmentState,
}

/// A task with how far it is staffed and funded.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TaskStatus {
    #[serde(flatten)]
    pub spec: TaskSpec,
    /// Volunteers who said yes (accepted, checked in, or done).
    pub staffed: usize,
    /// Volunteers asked and not yet answered.
    pub proposed: usize,
    /// Money the current plan gives this task from pledges, in cents.
    pub funded_cents: u64,
    /// Whether the plan was available to say how the task is funded.
    pub funding_known: bool,
    pub team: Vec<TeamMember>,
}

/// A need with its open tasks.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NeedStatus {
    pub id: String,
    pub collective: String,
    pub title: String,
    pub tasks: Vec<TaskStatus>,
}

/// A completed task as its collective sees it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DoneTask {
    pub task: String,
    pub need: String,
    pub impact: f64,
    pub at: DateTime<Utc>,
}

/// Demand for a skill in a region beyond the idle volunteers who could meet
/// it: whom to recruit next.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct Shortage {
    pub skill: String,
    /// `null`: remote work.
    pub region: Option<String>,
    /// Open slots that need this skill here.
    pub people_needed: usize,
    /// Idle volunteers who hold the skill at the level asked and can work here.
    pub people_idle: usize,
    /// `people_needed - people_idle`: recruit this many.
    pub recruit: usize,
}

/// A proposal or assignment as the coordinator's list shows it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AssignmentRow {
    #[serde(flatten)]
    pub assignment: Assignment,
    pub title: String,
    pub collective: String,
}

/// The coordinator's dashboard.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CoordinatorView {
    pub now: DateTime<Utc>,
    pub needs: Vec<NeedStatus>,
    /// Active volunteers with no live assignment (names and contacts included:
    /// coordinators reach out to them).
    pub idle_volunteers: Vec<VolunteerOffer>,
    pub volunteers_active: usize,
    pub shortages: Vec<Shortage>,
    pub impact_delivered: f64,
    pub tasks_delivered: usize,
    pub delivered: Vec<Delivered>,
    /// Impact delivered per collective, for seeing whom the movement served.
    pub impact_by_collective: BTreeMap<String, f64>,
    /// Live assignments (proposed, accepted, checked in), newest first.
    pub assignments: Vec<AssignmentRow>,
    pub hours: HoursUse,
    /// Person-hours of open slots per skill (`any` for tasks needing none).
    pub unmet_hours_by_skill: BTreeMap<String, f64>,
    pub steering: SteeringView,
}

/// The coordinators' standing instructions.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct SteeringView {
    pub weights: Vec<Weight>,
    pub vetoed: Vec<Pair>,
    pub pinned: Vec<Pair>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Weight {
    pub collective: Option<String>,
    pub tag: Option<String>,
    pub factor: f64,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Pair {
    pub volunteer: String,
    pub task: String,
}

fn steering(model: &ReadModel) -> SteeringView {
    let pairs = |set: &BTreeSet<(String, String)>| {
        set.iter()
            .map(|(volunteer, task)| Pair {
                volunteer: volunteer.clone(),
                task: task.clone(),
            })
            .collect()
    };
    SteeringView {
        weights: model
            .weights
            .iter()
            .map(|((collective, tag), factor)| Weight {
                collective: collective.clone(),
                tag: tag.clone(),
                factor: *factor,
            })
            .collect(),
        vetoed: pairs(&model.vetoed),
        pinned: pairs(&model.pinned),
    }
}

/// How the active volunteers' remaining hours are used.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct HoursUse {
    pub committed: f64,
    pub proposed: f64,
    pub idle: f64,
    pub completed: f64,
}

/// A collective's page.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CollectiveView {
    pub collective: String,
    pub needs: Vec<NeedStatus>,
    pub done: Vec<DoneTask>,
}

/// One of a volunteer's own assignments, with what they need to do it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MyAssignment {
    pub task: String,
    pub title: String,
    pub need: String,
    pub collective: String,
    pub hours: f64,
    pub earliest_start: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub region: Option<String>,
    /// When a shift's whole team works (absent: hours anywhere in the window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<Shift>,
    /// Where it happens: the point (for a map link) and the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
    /// What the collective tells the team (where to go in, what to bring).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    pub state: AssignmentState,
    pub round: u32,
    pub why: Why,
    pub respond_by: DateTime<Utc>,
}

/// "My three weeks": the volunteer's live work by when it happens.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct ThreeWeeks {
    /// Its window is open now.
    pub now: Vec<String>,
    /// It starts within [`NEXT_WITHIN_DAYS`].
    pub next: Vec<String>,
    /// Later in the tenure.
    pub later: Vec<String>,
}

/// A volunteer's page.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct VolunteerView {
    pub volunteer: String,
    /// Their own offer, name and contact included; `null` before they offer.
    pub offer: Option<VolunteerOffer>,
    pub assignments: Vec<MyAssignment>,
    pub three_weeks: ThreeWeeks,
    pub hours_committed: f64,
    pub hours_offered: f64,
    /// Work they helped finish, with their share of its impact.
    pub delivered: Vec<MyDelivered>,
    /// The sum of their shares: each team member is credited impact / team size.
    pub impact_delivered: f64,
    pub hours_delivered: f64,
}

/// A finished task as one of its team sees it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MyDelivered {
    pub task: String,
    pub title: String,
    pub collective: String,
    /// The task's impact divided by its team's size.
    pub impact_share: f64,
    pub hours: f64,
    pub at: DateTime<Utc>,
}

fn funding_by_task(plan: Option<&Plan>) -> BTreeMap<&str, u64> {
    let mut funded = BTreeMap::new();
    for funding in plan.map(|plan| plan.funding.as_slice()).unwrap_or_default() {
        *funded.entry(funding.task.as_str()).or_insert(0) += funding.amount_cents;
    }
    funded
}

fn need_status(model: &ReadModel, need: &NeedPost, plan: Option<&Plan>) -> NeedStatus {
    let funded = funding_by_task(plan);
    let tasks = need
        .tasks
        .iter()
        .map(|spec| {
            let team: Vec<TeamMember> = model
                .team_of(&spec.id)
                .filter(|member| member.state.is_live() || member.state.is_committed())
                .map(|member| TeamMember {
                    volunteer: member.volunteer.clone(),
                    state: member.state,
                })
                .collect();
            TaskStatus {
                staffed: team
                    .iter()
                    .filter(|member| member.state.is_committed())
                    .count(),
                proposed: team
                    .iter()
                    .filter(|member| member.state == AssignmentState::Proposed)
                    .count(),
                funded_cents: funded.get(spec.id.as_str()).copied().unwrap_or(0),
                funding_known: plan.is_some(),
                team,
                spec: spec.clone(),
            }
        })
        .collect();
    NeedStatus {
        id: need.id.clone(),
        collective: need.collective.clone(),
        title: need.title.clone(),
        tasks,
    }
}

fn is_active(offer: &VolunteerOffer, now: DateTime<Utc>) -> bool {
    offer.available_until > now
}

/// Hours a volunteer can still give from `now` to the end of their tenure.
fn hours_left(offer: &VolunteerOffer, now: DateTime<Utc>) -> f64 {
    let start = offer.available_from.max(now);
    let seconds = (offer.available_until - start).num_seconds().max(0) as f64;
    offer.hours_per_week * seconds / 3600.0 / HOURS_PER_WEEK
}

fn task_hours(model: &ReadModel, task: &str) -> f64 {
    model
        .open_task(task)
        .map(|(_, spec)| spec.hours)
        .unwrap_or(0.0)
}

/// Whether `offer` could fill a slot of `spec` by skill and place.
fn could_do(offer: &VolunteerOffer, spec: &TaskSpec, skill: &str, level: u8) -> bool {
    let place_ok = match (&spec.region, &offer.region) {
        (None, _) => true,
        (Some(needed), Some(held)) => needed == held,
        (Some(_), None) => false,
    };
    place_ok
        && offer.trust >= spec.sensitivity
        && offer.skills.get(skill).is_some_and(|held| *held >= level)
}

/// Demand beyond idle supply, per skill and region, largest gap first.
pub fn shortages(model: &ReadModel, now: DateTime<Utc>, idle: &[&VolunteerOffer]) -> Vec<Shortage> {
    let mut needed: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
    let mut candidates: BTreeMap<(String, Option<String>), BTreeSet<&str>> = BTreeMap::new();
    for need in model.needs.values() {
        for spec in need.tasks.iter().filter(|spec| spec.deadline > now) {
            let filled = model
                .team_of(&spec.id)
                .filter(|member| member.state.is_live() || member.state.is_committed())
                .count();
            let open_slots = usize::from(spec.slots).saturating_sub(filled);
            if open_slots == 0 {
                continue;
            }
            for (skill, level) in &spec.skills {
                let key = (skill.clone(), spec.region.clone());
                *needed.entry(key.clone()).or_insert(0) += open_slots;
                let able = candidates.entry(key).or_default();
                for offer in idle
                    .iter()
                    .filter(|offer| could_do(offer, spec, skill, *level))
                {
                    able.insert(&offer.id);
                }
            }
        }
    }
    let mut rows: Vec<Shortage> = needed
        .into_iter()
        .filter_map(|((skill, region), people_needed)| {
            let people_idle = candidates
                .get(&(skill.clone(), region.clone()))
                .map_or(0, BTreeSet::len);
            (people_needed > people_idle).then(|| Shortage {
                skill,
                region,
                people_needed,
                people_idle,
                recruit: people_needed - people_idle,
            })
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.recruit));
    rows.truncate(LIST_ROWS_MAX);
    rows
}

/// Everything, for coordinators.
pub fn coordinator(model: &ReadModel, now: DateTime<Utc>, plan: Option<&Plan>) -> CoordinatorView {
    let active: Vec<&VolunteerOffer> = model
        .volunteers
        .values()
        .filter(|offer| is_active(offer, now))
        .collect();
    let busy: BTreeSet<&str> = model
        .assignments
        .values()
        .filter(|assignment| assignment.state.is_live())
        .map(|assignment| assignment.volunteer.as_str())
        .collect();
    let idle: Vec<&VolunteerOffer> = active
        .iter()
        .copied()
        .filter(|offer| !busy.contains(offer.id.as_str()))
        .collect();
    let mut hours = HoursUse::default();
    for assignment in model.assignments.values() {
        let task_hours = task_hours(model, &assignment.task);
        match assignment.state {
            AssignmentState::Accepted | AssignmentState::CheckedIn => hours.committed += task_hours,
            AssignmentState::Proposed => hours.proposed += task_hours,
            AssignmentState::Completed => {
                hours.completed += model
                    .delivered
                    .get(&assignment.task)
                    .map_or(0.0, |done| done.hours)
            }
            _ => {}
        }
    }
    let capacity: f64 = active.iter().map(|offer| hours_left(offer, now)).sum();
    hours.idle = (capacity - hours.committed - hours.proposed).max(0.0);
    let mut unmet_hours_by_skill: BTreeMap<String, f64> = BTreeMap::new();
    let mut needs = Vec::new();
    for need in model.needs.values() {
        let status = need_status(model, need, plan);
        for task in status.tasks.iter().filter(|task| task.spec.deadline > now) {
            let open_slots =
                usize::from(task.spec.slots).saturating_sub(task.staffed + task.proposed);
            let open_hours = open_slots as f64 * task.spec.hours;
            if open_hours <= 0.0 {
                continue;
            }
            if task.spec.skills.is_empty() {
                *unmet_hours_by_skill.entry("any".to_owned()).or_insert(0.0) += open_hours;
            }
            for skill in task.spec.skills.keys() {
                *unmet_hours_by_skill.entry(skill.clone()).or_insert(0.0) += open_hours;
            }
        }
        if !status.tasks.is_empty() {
            needs.push(status);
        }
    }
    let mut assignments: Vec<AssignmentRow> = model
        .assignments
        .values()
        .filter(|assignment| assignment.state.is_live())
        .map(|assignment| {
            let (title, collective) = match model.open_task(&assignment.task) {
                Some((need, spec)) => (spec.title.clone(), need.collective.clone()),
                None => (
                    assignment.task.clone(),
                    model
                        .collective_of_task(&assignment.task)
                        .unwrap_or_default()
                        .to_owned(),
                ),
            };
            AssignmentRow {
                assignment: assignment.clone(),
                title,
                collective,
            }
        })
        .collect();
    assignments.sort_by_key(|row| std::cmp::Reverse(row.assignment.at));
    let mut delivered: Vec<Delivered> = model.delivered.values().cloned().collect();
    delivered.sort_by_key(|done| done.at);
    CoordinatorView {
        now,
        volunteers_active: active.len(),
        shortages: shortages(model, now, &idle),
        idle_volunteers: idle.into_iter().take(LIST_ROWS_MAX).cloned().collect(),
        impact_delivered: delivered.iter().map(|done| done.impact).sum(),
        tasks_delivered: delivered.len(),
        impact_by_collective: delivered.iter().fold(BTreeMap::new(), |mut by, done| {
            let collective = model.collective_of_task(&done.task).unwrap_or("unknown");
            *by.entry(collective.to_owned()).or_insert(0.0) += done.impact;
            by
        }),
        delivered,
        needs,
        assignments,
        hours,
        unmet_hours_by_skill,
        steering: steering(model),
    }
}

/// One collective's needs and what they have achieved; nothing of others.
pub fn collective(model: &ReadModel, collective: &str, plan: Option<&Plan>) -> CollectiveView {
    let needs = model
        .needs
        .values()
        .filter(|need| need.collective == collective)
        .map(|need| need_status(model, need, plan))
        .collect();
    let done = model
        .delivered
        .values()
        .filter(|done| model.collective_of_task(&done.task) == Some(collective))
        .map(|done| DoneTask {
            task: done.task.clone(),
            need: model.task_need.get(&done.task).cloned().unwrap_or_default(),
            impact: done.impact,
            at: done.at,
        })
        .collect();
    CollectiveView {
        collective: collective.to_owned(),
        needs,
        done,
    }
}

/// One volunteer's own offer and assignments; nothing of others.
pub fn volunteer(model: &ReadModel, volunteer: &str, now: DateTime<Utc>) -> VolunteerView {
    let mut three_weeks = ThreeWeeks::default();
    let mut hours_committed = 0.0;
    let mut assignments = Vec::new();
    for assignment in model.assignments_of(volunteer) {
        let open = model.open_task(&assignment.task);
        let spec = open.map(|(_, spec)| spec);
        let hours = spec.map_or(0.0, |spec| spec.hours);
        if assignment.state.is_committed() && assignment.state != AssignmentState::Completed {
            hours_committed += hours;
        }
        if assignment.state.is_live() {
            if let Some(spec) = spec {
                let bucket = if spec.earliest_start <= now {
                    &mut three_weeks.now
                } else if spec.earliest_start <= now + Duration::days(NEXT_WITHIN_DAYS) {
                    &mut three_weeks.next
                } else {
                    &mut three_weeks.later
                };
                bucket.push(assignment.task.clone());
            }
        }
        assignments.push(MyAssignment {
            task: assignment.task.clone(),
            title: spec.map_or_else(|| assignment.task.clone(), |spec| spec.title.clone()),
            need: model
                .task_need
                .get(&assignment.task)
                .cloned()
                .unwrap_or_default(),
            collective: model
                .collective_of_task(&assignment.task)
                .unwrap_or_default()
                .to_owned(),
            hours,
            earliest_start: spec.map(|spec| spec.earliest_start),
            deadline: spec.map(|spec| spec.deadline),
            region: spec.and_then(|spec| spec.region.clone()),
            shift: spec.and_then(|spec| spec.shift),
            place: spec.and_then(|spec| spec.place.clone()),
            instructions: spec.and_then(|spec| spec.instructions.clone()),
            state: assignment.state,
            round: assignment.round,
            why: assignment.why.clone(),
            respond_by: assignment.respond_by,
        });
    }
    let delivered: Vec<MyDelivered> = model
        .assignments_of(volunteer)
        .filter(|assignment| assignment.state == AssignmentState::Completed)
        .filter_map(|assignment| model.delivered.get(&assignment.task))
        .map(|done| MyDelivered {
            task: done.task.clone(),
            title: done.title.clone(),
            collective: model
                .collective_of_task(&done.task)
                .unwrap_or_default()
                .to_owned(),
            impact_share: done.impact / f64::from(done.slots.max(1)),
            hours: done.hours,
            at: done.at,
        })
        .collect();
    let offer = model.volunteers.get(volunteer).cloned();
    VolunteerView {
        impact_delivered: delivered.iter().map(|done| done.impact_share).sum(),
        hours_delivered: delivered.iter().map(|done| done.hours).sum(),
        delivered,
        volunteer: volunteer.to_owned(),
        hours_offered: offer.as_ref().map_or(0.0, |offer| hours_left(offer, now)),
        offer,
        assignments,
        three_weeks,
        hours_committed,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proto::events::Event;

    fn at(day: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, day, 0, 0, 0).unwrap()
    }

    fn task(id: &str, skill: &str, slots: u8) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            need: None,
            collective: None,
            title: id.into(),
            skills: [(skill.to_owned(), 2)].into_iter().collect(),
            hours: 3.0,
            slots,
            earliest_start: at(22),
            deadline: at(30),
            region: Some("detroit".into()),
            sensitivity: 0,
            depends_on: vec![],
            money_cents: 0,
            impact: 1.0,
            tags: vec![],
            currency: None,
            shift: None,
            place: None,
            instructions: None,
            languages: Vec::new(),
        }
    }

    fn person(id: &str, skill: &str) -> VolunteerOffer {
        VolunteerOffer {
            id: id.into(),
            skills: [(skill.to_owned(), 3)].into_iter().collect(),
            hours_per_week: 10.0,
            available_from: at(21),
            available_until: at(28),
            region: Some("detroit".into()),
            trust: 0,
            name: Some("Secret Name".into()),
            contact: Some("secret@example.org".into()),
            sealed: None,
            languages: vec![],
            weekly: Vec::new(),
            tz: None,
            home: None,
            max_km: None,
        }
    }

    fn model() -> ReadModel {
        let mut model = ReadModel::default();
        let needs = [
            ("n1", "c1", vec![task("t1", "legal", 3)]),
            ("n2", "c2", vec![task("t2", "driving", 1)]),
        ];
        for (sequence, (need, collective, tasks)) in needs.into_iter().enumerate() {
            let post = NeedPost {
                id: need.into(),
                collective: collective.into(),
                title: need.into(),
                tasks,
            };
            model.apply_event(Event::NeedPosted(post), sequence as u64 + 1, at(22));
        }
        model.apply_event(Event::VolunteerOffered(person("v1", "legal")), 3, at(22));
        model.apply_event(Event::VolunteerOffered(person("v2", "driving")), 4, at(22));
        model
    }

    #[test]
    fn a_shortage_counts_open_slots_beyond_the_idle_volunteers_who_could_fill_them() {
        let view = coordinator(&model(), at(22), None);
        assert_eq!(
            view.shortages,
            vec![Shortage {
                skill: "legal".into(),
                region: Some("detroit".into()),
                people_needed: 3,
                people_idle: 1,
                recruit: 2,
            }]
        );
        assert_eq!(view.idle_volunteers.len(), 2);
        assert_eq!(view.unmet_hours_by_skill["legal"], 9.0);
    }

    #[test]
    fn a_collective_sees_only_its_own_needs_and_no_names() {
        let view = collective(&model(), "c1", None);
        let text = serde_json::to_string(&view).unwrap();
        assert!(text.contains("\"t1\""));
        assert!(!text.contains("\"t2\""), "{text}");
        assert!(!text.contains("Secret Name"), "{text}");
    }

    #[test]
    fn a_volunteers_shift_shows_its_time_place_and_instructions() {
        let mut model = ReadModel::default();
        let mut shift = task("t-crew", "legal", 1);
        let start = at(28) + Duration::hours(9);
        shift.shift = Some(Shift {
            start,
            end: start + Duration::hours(3),
        });
        shift.earliest_start = start;
        shift.deadline = start + Duration::hours(3);
        shift.place = Some(Place {
            lat: 42.3314,
            lon: -83.0458,
            name: Some("Eastside pantry".into()),
            address: Some("1 Example St, Detroit".into()),
        });
        shift.instructions = Some("Side door; bring gloves.".into());
        let post = NeedPost {
            id: "n-crew".into(),
            collective: "c1".into(),
            title: "Saturday crew".into(),
            tasks: vec![shift],
        };
        model.apply_event(Event::NeedPosted(post), 1, at(22));
        model.apply_event(Event::VolunteerOffered(person("v1", "legal")), 2, at(22));
        let proposal: proto::wire::MatchProposed = serde_json::from_value(serde_json::json!({
            "volunteer": "v1", "task": "t-crew", "need": "n-crew", "collective": "c1",
            "impact": 1.0, "respond_by": at(23),
            "why": {"impact": 1.0, "skills": {}, "slack_hours": 0.0, "tenure_left_hours": 1.0,
                    "binding": "", "team": ["v1"]}
        }))
        .unwrap();
        model.apply_match(proto::events::MatchEvent::Proposed(proposal), 1);
        let view = volunteer(&model, "v1", at(22));
        let mine = &view.assignments[0];
        assert_eq!(mine.shift.map(|shift| shift.start), Some(start));
        let place = mine.place.as_ref().unwrap();
        assert_eq!(place.address.as_deref(), Some("1 Example St, Detroit"));
        assert_eq!(
            mine.instructions.as_deref(),
            Some("Side door; bring gloves.")
        );
    }

    #[test]
    fn a_volunteer_sees_their_own_offer_and_nothing_of_others() {
        let view = volunteer(&model(), "v1", at(22));
        let text = serde_json::to_string(&view).unwrap();
        assert!(text.contains("Secret Name"));
        assert!(!text.contains("v2"), "{text}");
    }
}
