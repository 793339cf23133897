//! The offline baselines, on the same realised world as the live run: a
//! naive re-planner and the hindsight optimum. No services, no NATS.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use proto::instance::{Instance, INSTANCE_FORMAT};
use proto::wire::{PledgeOffer, TaskSpec, VolunteerOffer};
use serde::Serialize;

use super::world::{after_hours, hours_between, Action, World};

/// How the naive re-planner works, in simulated hours.
#[derive(Clone, Copy, Debug)]
pub struct NaiveConfig {
    /// It re-plans this often.
    pub replan_hours: f64,
    /// It takes a person for gone this long after their last sign of life.
    pub notice_hours: f64,
    /// A proposal not answered in this long is dropped.
    pub response_window_hours: f64,
    /// It asks everyone holding work "still on?" this often.
    pub nudge_hours: f64,
}

impl Default for NaiveConfig {
    fn default() -> NaiveConfig {
        NaiveConfig {
            replan_hours: 6.0,
            notice_hours: 48.0,
            response_window_hours: 24.0,
            nudge_hours: 24.0,
        }
    }
}

/// What the naive re-planner sees of each person and task, besides the world.
#[derive(Clone, Debug)]
pub struct Board {
    /// People each job may go to (skills, region, trust).
    pub eligible: Vec<Vec<usize>>,
    /// When each job is posted.
    pub posted: Vec<DateTime<Utc>>,
    /// When each person's offer reaches the switchboard.
    pub offered: Vec<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct NaiveTraffic {
    pub proposals: usize,
    pub accepted: usize,
    pub released_as_gone: usize,
    /// People it took for gone (holding work, silent for the notice time after a nudge).
    pub noticed_gone: usize,
    /// Of those, people who were in fact still there.
    pub noticed_gone_while_present: usize,
    pub proposals_to_vanished: usize,
}

/// Greedy every `replan_hours` over the open tasks and the people it
/// believes present, whole teams only, most impact per hour first; people
/// behave exactly as in the live run (the world decides).
pub fn naive(
    mut world: World,
    board: &Board,
    config: NaiveConfig,
    end: DateTime<Utc>,
) -> (World, NaiveTraffic) {
    let people = world.people.len();
    let jobs = world.jobs.len();
    let mut traffic = NaiveTraffic::default();
    let mut last_sign: Vec<DateTime<Utc>> = board.offered.clone();
    let mut last_nudge: Vec<Option<DateTime<Utc>>> = vec![None; people];
    let mut gone: Vec<bool> = vec![false; people];
    // Outstanding proposals, with when they were made.
    let mut asked: BTreeMap<(usize, usize), DateTime<Utc>> = BTreeMap::new();
    // Pairs not to offer again: declined, expired, or released.
    let mut refused: HashSet<(usize, usize)> = HashSet::new();
    let mut team: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); jobs];
    let mut done: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); jobs];
    let start = world.now();
    let mut now = start;
    let mut next_replan = start;
    let mut next_nudge = after_hours(start, config.nudge_hours);
    while now < end {
        now = after_hours(now, 1.0).min(end);
        for said in world.advance(now) {
            let (person, job) = (said.person, said.job);
            last_sign[person] = last_sign[person].max(said.at);
            match said.action {
                Action::Accept => {
                    if asked.remove(&(person, job)).is_some() {
                        world.assign(person, job);
                        team[job].insert(person);
                        traffic.accepted += 1;
                    }
                }
                Action::Decline => {
                    asked.remove(&(person, job));
                    refused.insert((person, job));
                }
                Action::Checkin => {}
                Action::Done => {
                    done[job].insert(person);
                }
            }
        }
        asked.retain(|pair, at| {
            let open = hours_between(*at, now) < config.response_window_hours;
            if !open {
                refused.insert(*pair);
            }
            open
        });
        // Silence of someone holding work, after a nudge, for long enough:
        // gone, for all their work. An unanswered proposal only expires
        // (one missed answer is not a drop-out).
        for person in 0..people {
            let holds =
                (0..jobs).any(|job| team[job].contains(&person) && !done[job].contains(&person));
            let nudged_since = last_nudge[person].is_some_and(|nudge| nudge > last_sign[person]);
            if gone[person]
                || !holds
                || !nudged_since
                || hours_between(last_sign[person], now) < config.notice_hours
            {
                continue;
            }
            gone[person] = true;
            traffic.noticed_gone += 1;
            if world.people[person].present(now) {
                traffic.noticed_gone_while_present += 1;
            }
            for job in 0..jobs {
                if team[job].contains(&person) && !done[job].contains(&person) {
                    team[job].remove(&person);
                    world.release(now, person, job);
                    refused.insert((person, job));
                    traffic.released_as_gone += 1;
                }
            }
            asked.retain(|(asked_person, _), _| *asked_person != person);
        }
        if now >= next_nudge {
            next_nudge = after_hours(next_nudge, config.nudge_hours);
            for job in 0..jobs {
                for person in team[job].clone() {
                    if !done[job].contains(&person) && !gone[person] {
                        world.nudge(now, person, job);
                        last_nudge[person] = Some(now);
                    }
                }
            }
        }
        if now < next_replan {
            continue;
        }
        next_replan = after_hours(next_replan, config.replan_hours);
        // Hours each person is already asked for, beyond what they hold.
        let mut promised: Vec<f64> = (0..people).map(|person| world.hours_owed(person)).collect();
        for (person, job) in asked.keys() {
            promised[*person] += world.jobs[*job].hours;
        }
        let mut order: Vec<usize> = (0..jobs)
            .filter(|job| {
                let spec = &world.jobs[*job];
                spec.slots > 0
                    && board.posted[*job] <= now
                    && spec.deadline > now
                    && done[*job].len() < usize::from(spec.slots)
            })
            .collect();
        let value = |job: usize| {
            let spec = &world.jobs[job];
            spec.impact / (spec.hours.max(0.5) * f64::from(spec.slots))
        };
        order.sort_by(|a, b| value(*b).total_cmp(&value(*a)).then(a.cmp(b)));
        for job in order {
            let spec = world.jobs[job].clone();
            let outstanding = asked
                .keys()
                .filter(|(_, asked_job)| *asked_job == job)
                .count();
            let missing = usize::from(spec.slots).saturating_sub(team[job].len() + outstanding);
            if missing == 0 {
                continue;
            }
            let mut candidates: Vec<(f64, usize)> = board.eligible[job]
                .iter()
                .copied()
                .filter(|person| {
                    !gone[*person]
                        && board.offered[*person] <= now
                        && world.people[*person].tenure_ends > now
                        && !team[job].contains(person)
                        && !asked.contains_key(&(*person, job))
                        && !refused.contains(&(*person, job))
                })
                .filter_map(|person| {
                    // What they declared: the planner cannot know who will vanish.
                    let offer = &world.people[person];
                    let from = now.max(spec.starts);
                    let until = spec.deadline.min(offer.tenure_ends);
                    let free = offer.hours_per_week / 168.0 * hours_between(from, until).max(0.0)
                        - promised[person];
                    (free >= spec.hours).then_some((free, person))
                })
                .collect();
            if candidates.len() < missing {
                continue;
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for (_, person) in candidates.into_iter().take(missing) {
                world.propose(now, person, job);
                asked.insert((person, job), now);
                promised[person] += spec.hours;
                traffic.proposals += 1;
                if !world.people[person].present(now) {
                    traffic.proposals_to_vanished += 1;
                }
            }
        }
    }
    (world, traffic)
}

/// How the hindsight optimum was found.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct HindsightSolve {
    pub objective: f64,
    pub upper_bound: Option<f64>,
    pub method: String,
    pub elapsed_ms: u128,
    pub people: usize,
    pub tasks: usize,
}

/// The full optimiser on the realised instance: everyone who really came,
/// from when they came until they really left (vanished, tenure over, or
/// the period ended), every task with its window; then that plan is worked
/// in the world like any other (people start when the task opens).
pub fn hindsight(
    mut world: World,
    offers: &[VolunteerOffer],
    tasks: &[TaskSpec],
    pledges: &[PledgeOffer],
    budget: Duration,
    seed: u64,
) -> anyhow::Result<(World, HindsightSolve)> {
    let start = world.now();
    let mut volunteers = Vec::new();
    let mut person_index = BTreeMap::new();
    for (index, (offer, person)) in offers.iter().zip(&world.people).enumerate() {
        let until = person.gone_at().min(world_end(&world));
        if until <= person.arrives {
            continue;
        }
        person_index.insert(offer.id.clone(), index);
        volunteers.push(VolunteerOffer {
            available_from: person.arrives,
            available_until: until,
            ..offer.clone()
        });
    }
    let mut kept: HashSet<String> = HashSet::new();
    let mut job_index = BTreeMap::new();
    let mut specs = Vec::new();
    for (index, (task, job)) in tasks.iter().zip(&world.jobs).enumerate() {
        let fits = job.deadline > job.starts
            && task
                .depends_on
                .iter()
                .all(|dependency| kept.contains(dependency));
        if !fits {
            continue;
        }
        kept.insert(task.id.clone());
        job_index.insert(task.id.clone(), index);
        specs.push(TaskSpec {
            deadline: job.deadline,
            ..task.clone()
        });
    }
    let instance = Instance {
        format: INSTANCE_FORMAT.to_owned(),
        now: start,
        volunteers,
        tasks: specs,
        pledges: pledges.to_vec(),
        done: Vec::new(),
        pinned: Vec::new(),
    };
    let validated = instance
        .validate()
        .map_err(|error| anyhow::anyhow!("the realised instance is invalid: {error}"))?;
    let problem = solver_core::Problem::from_world(&validated)?;
    let options = solver_core::SolveOptions {
        time_limit: budget,
        seed,
        ..Default::default()
    };
    let report = solver_core::solve(&problem, &options);
    let plan = report.solution.to_plan(&problem);
    for assignment in &plan.assignments {
        if let (Some(person), Some(job)) = (
            person_index.get(&assignment.volunteer),
            job_index.get(&assignment.task),
        ) {
            world.assign(*person, *job);
        }
    }
    for funding in &plan.funding {
        if let Some(job) = job_index.get(&funding.task) {
            let opens = world.jobs[*job].starts;
            world.funded(*job, opens);
        }
    }
    let end = world_end(&world);
    let _ = world.advance(end);
    let solve = HindsightSolve {
        objective: report.objective,
        upper_bound: report.upper_bound,
        method: format!("{:?}", report.method),
        elapsed_ms: report.elapsed.as_millis(),
        people: instance.volunteers.len(),
        tasks: instance.tasks.len(),
    };
    Ok((world, solve))
}

fn world_end(world: &World) -> DateTime<Utc> {
    world.end()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::world::tests::{eager, job, person, t0};
    use super::super::world::Rates;
    use super::*;

    #[test]
    fn the_naive_replanner_notices_a_drop_out_48_hours_after_their_last_sign_of_life() {
        // v0 accepts at once and vanishes at hour 3, with 20 h of a 30 h job
        // undone; v1 is there all along. The job needs one person.
        let people = vec![person("v0", 16.8, Some(3.0)), person("v1", 16.8, None)];
        let end = after_hours(t0(), 21.0 * 24.0);
        let world = World::new(
            people,
            vec![job("j", 30.0, 1, 400.0)],
            1,
            eager(),
            t0(),
            end,
        );
        let board = Board {
            eligible: vec![vec![0, 1]],
            posted: vec![t0()],
            offered: vec![t0(), t0()],
        };
        let (world, traffic) = naive(world, &board, NaiveConfig::default(), end);
        assert_eq!(traffic.noticed_gone, 1, "{traffic:?}");
        let outcome = world.score("naive");
        let lag = &outcome.release_after_vanish;
        assert_eq!(lag.held_when_vanished, 1, "{outcome:?}");
        assert_eq!(lag.released, 1, "{outcome:?}");
        // The first plan is made at the first hourly step; the accept, a
        // quarter hour later at 1.25 h, is the last sign of life. Silence
        // counts once the first nudge (hour 24) goes unanswered, and the
        // release comes 48 h after that last sign, at the next hourly step:
        // 46.25 to 47.25 h after the vanishing at hour 3.
        let hours = lag.median_hours.unwrap();
        assert!(
            (46.25..=47.25).contains(&hours),
            "released {hours} h after vanishing"
        );
        // And v1 is proposed in their place and finishes in time.
        assert_eq!(outcome.tasks_completed, 1, "{outcome:?}");
        assert_eq!(traffic.proposals, 2, "{traffic:?}");
    }

    #[test]
    fn the_naive_replanner_lets_an_unanswered_proposal_expire_without_taking_the_person_for_gone() {
        let silent = Rates {
            answer_share: 0.0,
            ..eager()
        };
        let people = vec![person("v0", 16.8, None)];
        let end = after_hours(t0(), 21.0 * 24.0);
        let world = World::new(people, vec![job("j", 4.0, 1, 500.0)], 1, silent, t0(), end);
        let board = Board {
            eligible: vec![vec![0]],
            posted: vec![t0()],
            offered: vec![t0()],
        };
        let (world, traffic) = naive(world, &board, NaiveConfig::default(), end);
        assert_eq!(
            traffic.proposals, 1,
            "the pair is not offered again: {traffic:?}"
        );
        assert_eq!(traffic.noticed_gone, 0, "{traffic:?}");
        assert_eq!(world.score("naive").tasks_completed, 0);
    }

    #[test]
    fn the_naive_replanner_never_takes_someone_who_answers_for_gone() {
        let people = vec![person("v0", 16.8, None)];
        let end = after_hours(t0(), 21.0 * 24.0);
        let world = World::new(
            people,
            vec![job("j", 40.0, 1, 500.0)],
            1,
            eager(),
            t0(),
            end,
        );
        let board = Board {
            eligible: vec![vec![0]],
            posted: vec![t0()],
            offered: vec![t0()],
        };
        let (world, traffic) = naive(world, &board, NaiveConfig::default(), end);
        assert_eq!(traffic.noticed_gone, 0, "{traffic:?}");
        assert_eq!(world.score("naive").tasks_completed, 1);
    }
}
