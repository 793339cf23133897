//! What a new plan changes on the match stream: the releases and proposals
//! that take what is live to what was planned, as a pure function of the
//! open world, the plan and the time. The service publishes them; nothing
//! here touches NATS, so the rules are tested without a server.
//!
//! - A live pair (proposed, accepted or checked in) the plan no longer
//!   holds is released, with the first reason that applies: its volunteer
//!   or task is gone, a coordinator vetoed it, its team could not be
//!   completed, or its time is worth more elsewhere. Finished work and
//!   accepted work of a volunteer whose time ended (dispatch hands that
//!   off, at the exact time) are never released here.
//! - A planned pair not yet live is proposed, task by task, unless its task
//!   was completed or withdrawn since the snapshot the plan was made on.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use proto::events::MatchEvent;
use proto::subjects::MatchKind;
use proto::wire::{MatchChanged, MatchProposed};
use solver_core::{Problem, SolveReport};

use crate::scope::Scope;
use crate::shard::Sharding;
use crate::world::{pair_key, LiveAssignment, OpenWorld, Standing};
use crate::RESPONSE_WINDOW_HOURS_MIN;

/// What the difference is taken against: the world as this instance has
/// read it, the part of it this instance plans, and how long people have
/// to answer.
pub struct Difference<'a> {
    pub world: &'a OpenWorld,
    pub sharding: &'a Sharding,
    /// Longest time a volunteer has to answer a proposal.
    pub response_window: chrono::Duration,
}

impl Difference<'_> {
    /// The events that take what is live to `report`'s plan of `problem`:
    /// releases first, then proposals by task. A scoped run (`scope`)
    /// answers only for its own tasks' live pairs.
    pub fn events(
        &self,
        problem: &Problem,
        report: &SolveReport,
        now: DateTime<Utc>,
        scope: Option<&Scope>,
    ) -> Vec<MatchEvent> {
        let mut events: Vec<MatchEvent> = self
            .releases(problem, report, scope)
            .into_iter()
            .filter_map(|(volunteer, task, round, reason)| {
                let change = MatchChanged {
                    volunteer,
                    task,
                    round,
                    reason: Some(reason.to_owned()),
                    handoff: None,
                    at: now,
                };
                MatchEvent::changed(MatchKind::Released, change)
            })
            .collect();
        events.extend(
            self.proposals(problem, report)
                .into_iter()
                .map(|(volunteer, task)| {
                    MatchEvent::Proposed(self.proposal(problem, report, volunteer, task, now))
                }),
        );
        events
    }

    /// `(volunteer, task, round, reason)` of every live pair to release.
    fn releases(
        &self,
        problem: &Problem,
        report: &SolveReport,
        scope: Option<&Scope>,
    ) -> Vec<(String, String, u32, &'static str)> {
        let world = self.world;
        let planned: HashSet<String> = report
            .solution
            .assignments
            .iter()
            .map(|&(volunteer, task)| {
                pair_key(
                    problem.volunteer_id(volunteer).as_str(),
                    problem.task_id(task).as_str(),
                )
            })
            .collect();
        let dropped: HashSet<&str> = report
            .dropped_pins
            .iter()
            .map(|&task| problem.task_id(task).as_str())
            .collect();
        let lives: Box<dyn Iterator<Item = &LiveAssignment>> = match scope {
            None => Box::new(world.live.values()),
            Some(scope) => Box::new(scope.tasks.iter().flat_map(|task| world.live.of_task(task))),
        };
        lives
            .filter(|live| live.standing != Standing::Finished)
            .filter(|live| self.owns(live))
            .filter_map(|live| {
                let key = pair_key(&live.volunteer, &live.task);
                // Accepted work of a volunteer whose time ended is released by
                // dispatch, at the exact time and with a hand-off note.
                let tenure_ended = problem.volunteer_index(&live.volunteer).is_none()
                    && world.volunteers.contains_key(&live.volunteer);
                if tenure_ended && live.standing == Standing::Accepted {
                    return None;
                }
                let gone = problem.volunteer_index(&live.volunteer).is_none()
                    || problem.task_index(&live.task).is_none();
                let reason = if gone {
                    "the volunteer or the task is no longer available"
                } else if world.vetoed.contains(&key) {
                    "a coordinator vetoed this match"
                } else if dropped.contains(live.task.as_str()) {
                    "the team could not be completed"
                } else if !planned.contains(&key) {
                    "the plan changed: this time is worth more elsewhere"
                } else {
                    return None;
                };
                Some((
                    live.volunteer.clone(),
                    live.task.clone(),
                    live.round,
                    reason,
                ))
            })
            .collect()
    }

    /// `(volunteer, task)` of every planned pair to propose, by task.
    fn proposals(&self, problem: &Problem, report: &SolveReport) -> Vec<(usize, usize)> {
        let world = self.world;
        let mut proposals: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(volunteer, task) in &report.solution.assignments {
            let task_id = problem.task_id(task).as_str();
            let key = pair_key(problem.volunteer_id(volunteer).as_str(), task_id);
            // Never for a task completed or withdrawn since the snapshot.
            let open = world.tasks.contains_key(task_id) && !world.done.contains(task_id);
            if open && !world.live.contains_key(&key) {
                proposals.entry(task).or_default().push(volunteer);
            }
        }
        let mut proposals: Vec<(usize, Vec<usize>)> = proposals.into_iter().collect();
        proposals.sort_unstable();
        proposals
            .into_iter()
            .flat_map(|(task, volunteers)| volunteers.into_iter().map(move |v| (v, task)))
            .collect()
    }

    fn proposal(
        &self,
        problem: &Problem,
        report: &SolveReport,
        volunteer: usize,
        task: usize,
        now: DateTime<Utc>,
    ) -> MatchProposed {
        let volunteer_id = problem.volunteer_id(volunteer).as_str().to_owned();
        let task_id = problem.task_id(task).as_str().to_owned();
        let spec = self.world.tasks.get(&task_id);
        let deadline = spec.map(|spec| spec.deadline).unwrap_or(now);
        // A quarter of the time left, within [1 hour, the configured window]:
        // near a deadline an unanswered proposal must not hold the work long.
        let longest = self.response_window;
        let shortest = chrono::Duration::hours(RESPONSE_WINDOW_HOURS_MIN).min(longest);
        let respond_within = ((deadline - now) / 4).max(shortest).min(longest);
        let round = self
            .world
            .rounds
            .get(&pair_key(&volunteer_id, &task_id))
            .map(|last| last + 1)
            .unwrap_or(0);
        MatchProposed {
            volunteer: volunteer_id,
            task: task_id,
            need: spec.and_then(|spec| spec.need.clone()).unwrap_or_default(),
            collective: spec
                .and_then(|spec| spec.collective.clone())
                .unwrap_or_default(),
            impact: problem.task_impact(task),
            why: solver_core::explain(problem, &report.solution, volunteer, task),
            respond_by: now + respond_within,
            round,
            at: now,
        }
    }

    /// Whether this instance's shard answers for a live pair: by its
    /// task's region, or its volunteer's when the task is gone.
    fn owns(&self, live: &LiveAssignment) -> bool {
        if self.sharding.is_whole() {
            return true;
        }
        let region = match (
            self.world.tasks.get(&live.task),
            self.world.volunteers.get(&live.volunteer),
        ) {
            (Some(task), _) => task.region.as_deref(),
            (None, Some(volunteer)) => volunteer.region.as_deref(),
            (None, None) => None,
        };
        self.sharding.owns(region)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use plumbing::store::Store;
    use proto::wire::{TaskSpec, VolunteerOffer};
    use solver_core::SolveOptions;

    use super::*;

    const NOW: &str = "2026-11-22T00:00:00Z";

    fn now() -> DateTime<Utc> {
        NOW.parse().unwrap()
    }

    fn offer(id: &str) -> VolunteerOffer {
        serde_json::from_value(serde_json::json!({
            "id": id, "skills": {}, "hours_per_week": 10.0,
            "available_from": "2026-11-01T00:00:00Z", "available_until": "2026-12-20T00:00:00Z",
            "region": null, "trust": 0,
        }))
        .unwrap()
    }

    fn task(id: &str, slots: u8) -> TaskSpec {
        serde_json::from_value(serde_json::json!({
            "id": id, "need": format!("n-{id}"), "collective": "c-any", "title": id,
            "hours": 2.0, "slots": slots, "earliest_start": "2026-11-01T00:00:00Z",
            "deadline": "2026-12-10T00:00:00Z", "impact": 10.0,
        }))
        .unwrap()
    }

    fn live(world: &mut OpenWorld, volunteer: &str, task: &str, standing: Standing) {
        let assignment = LiveAssignment {
            volunteer: volunteer.into(),
            task: task.into(),
            round: 0,
            standing,
            since: Some(now() - chrono::Duration::hours(1)),
        };
        world.live.insert(pair_key(volunteer, task), assignment);
    }

    /// A world of `volunteers` and `tasks` (id, slots), nothing live.
    fn world_of(volunteers: &[&str], tasks: &[(&str, u8)]) -> OpenWorld {
        let mut world = OpenWorld::load(&Store::in_memory()).unwrap();
        for id in volunteers {
            world.volunteers.insert((*id).to_owned(), offer(id));
        }
        for (id, slots) in tasks {
            world.tasks.insert((*id).to_owned(), task(id, *slots));
        }
        world
    }

    /// Plans `planned` (greedily) as the world stands and renders the difference
    /// against `live` (the world after `change`), one line per event.
    fn check(
        planned: &OpenWorld,
        change: impl FnOnce(&mut OpenWorld),
        scope: Option<&Scope>,
        expect: &[&str],
    ) {
        // As tier 2 plans: proposals may move, accepted work is pinned.
        let snapshot = planned.snapshot(now(), false, &HashSet::new(), &Sharding::whole());
        let problem = Problem::from_world(&snapshot).unwrap();
        let options = SolveOptions {
            greedy_only: true,
            ..SolveOptions::default()
        };
        let report = solver_core::solve(&problem, &options);
        let mut world = clone_of(planned);
        change(&mut world);
        let difference = Difference {
            world: &world,
            sharding: &Sharding::whole(),
            response_window: chrono::Duration::hours(24),
        };
        let lines: Vec<String> = difference
            .events(&problem, &report, now(), scope)
            .iter()
            .map(|event| match event {
                MatchEvent::Proposed(proposal) => format!(
                    "proposed {} {} round {} respond within {} h",
                    proposal.volunteer,
                    proposal.task,
                    proposal.round,
                    (proposal.respond_by - now()).num_hours()
                ),
                MatchEvent::Released(change) => format!(
                    "released {} {}: {}",
                    change.volunteer,
                    change.task,
                    change.reason.as_deref().unwrap_or("")
                ),
                other => format!("unexpected {other:?}"),
            })
            .collect();
        // Releases come in the live book's order, which carries no meaning.
        let (mut lines, proposals): (Vec<String>, Vec<String>) = lines
            .into_iter()
            .partition(|line| line.starts_with("released"));
        lines.sort();
        lines.extend(proposals);
        assert_eq!(lines, expect);
    }

    /// The parts of the world these tests set (the service never copies
    /// its world, so it has no `Clone`).
    fn clone_of(world: &OpenWorld) -> OpenWorld {
        let mut copy = OpenWorld::load(&Store::in_memory()).unwrap();
        copy.volunteers = world.volunteers.clone();
        copy.tasks = world.tasks.clone();
        copy.done = world.done.clone();
        copy.live = world
            .live
            .values()
            .map(|live| (pair_key(&live.volunteer, &live.task), live.clone()))
            .collect();
        copy.rounds = world.rounds.clone();
        copy.vetoed = world.vetoed.clone();
        copy
    }

    #[test]
    fn a_planned_pair_not_yet_live_is_proposed_task_by_task() {
        let world = world_of(&["v1", "v2", "v3"], &[("t-b", 1), ("t-a", 2)]);
        check(
            &world,
            |_| {},
            None,
            &[
                "proposed v1 t-a round 0 respond within 24 h",
                "proposed v2 t-a round 0 respond within 24 h",
                "proposed v1 t-b round 0 respond within 24 h",
            ],
        );
    }

    #[test]
    fn a_pair_proposed_before_gets_the_next_round() {
        let mut world = world_of(&["v1"], &[("t-a", 1)]);
        world.rounds.insert(pair_key("v1", "t-a"), 2);
        check(
            &world,
            |_| {},
            None,
            &["proposed v1 t-a round 3 respond within 24 h"],
        );
    }

    #[test]
    fn near_its_deadline_a_proposal_must_be_answered_sooner_but_within_an_hour_at_least() {
        let mut world = world_of(&["v1"], &[("t-soon", 1), ("t-now", 1)]);
        for (id, hours_left) in [("t-soon", 8), ("t-now", 2)] {
            let task = world.tasks.get_mut(id).unwrap();
            task.deadline = now() + chrono::Duration::hours(hours_left);
            task.hours = 1.0;
        }
        for volunteer in world.volunteers.values_mut() {
            volunteer.hours_per_week = 168.0;
        }
        check(
            &world,
            |_| {},
            None,
            &[
                "proposed v1 t-now round 0 respond within 1 h",
                "proposed v1 t-soon round 0 respond within 2 h",
            ],
        );
    }

    #[test]
    fn nothing_is_proposed_for_a_task_completed_or_withdrawn_since_the_snapshot() {
        let world = world_of(&["v1", "v2"], &[("t-a", 1), ("t-b", 1)]);
        check(
            &world,
            |world| {
                world.done.insert("t-a".into());
                world.tasks.remove("t-b");
            },
            None,
            &[],
        );
    }

    #[test]
    fn live_work_the_plan_gives_up_is_released_with_the_first_reason_that_applies() {
        let mut world = world_of(&["v1", "v2"], &[("t-a", 1)]);
        // v-gone withdrew; v2's proposal is planned away (v1 is kept).
        live(&mut world, "v-gone", "t-a", Standing::Proposed);
        live(&mut world, "v1", "t-a", Standing::Accepted);
        live(&mut world, "v2", "t-a", Standing::Proposed);
        check(
            &world,
            |world| {
                world.vetoed.insert(pair_key("v1", "t-a"));
            },
            None,
            &[
                "released v-gone t-a: the volunteer or the task is no longer available",
                "released v1 t-a: a coordinator vetoed this match",
                "released v2 t-a: the plan changed: this time is worth more elsewhere",
            ],
        );
    }

    #[test]
    fn finished_work_and_accepted_work_past_its_volunteers_time_are_left_alone() {
        let mut world = world_of(&["v1", "v-ended"], &[("t-a", 2)]);
        world.volunteers.get_mut("v-ended").unwrap().available_until = now();
        live(&mut world, "v1", "t-a", Standing::Finished);
        live(&mut world, "v-ended", "t-a", Standing::Accepted);
        check(&world, |_| {}, None, &[]);
    }

    #[test]
    fn a_scoped_run_answers_only_for_its_own_tasks() {
        let mut world = world_of(&[], &[("t-a", 1), ("t-b", 1)]);
        live(&mut world, "v-gone", "t-a", Standing::Proposed);
        live(&mut world, "v-also-gone", "t-b", Standing::Proposed);
        let scope = Scope {
            tasks: BTreeSet::from(["t-b".to_owned()]),
            ..Scope::default()
        };
        check(
            &world,
            |_| {},
            Some(&scope),
            &["released v-also-gone t-b: the volunteer or the task is no longer available"],
        );
    }
}
