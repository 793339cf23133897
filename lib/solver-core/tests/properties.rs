//! Properties of `solve` on random small worlds: whatever the instance, the
//! plan passes `check` (with the reported dropped pins released), every pin
//! not reported as dropped is kept, the objective is what `check` scores,
//! never below the greedy's and never above the reported bound.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};
use solver_core::{check, solve, LivePlan, Problem, SolveOptions};

/// A small deterministic generator, so a failing case is one `u64` away.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn at_day(days: u64, hours: u64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z").unwrap();
    (base + chrono::Duration::hours((days * 24 + hours) as i64)).to_rfc3339()
}

/// A random instance: few skills, regions and tags, so that people, tasks
/// and pledges actually meet; dependencies only on earlier tasks (acyclic).
fn random_instance(
    seed: u64,
    volunteers: usize,
    tasks: usize,
    pledges: usize,
    pins: usize,
) -> Value {
    let mut draw = Draw(seed);
    let skills = ["cooking", "legal", "driving"];
    let regions = ["detroit", "oakland"];
    let tags = ["housing", "food"];
    let volunteers: Vec<Value> = (0..volunteers)
        .map(|index| {
            let mut held = serde_json::Map::new();
            for _ in 0..=draw.below(2) {
                held.insert(draw.pick(&skills).to_owned(), json!(1 + draw.below(4)));
            }
            let from = draw.below(4);
            json!({"id": format!("v{index}"), "skills": held,
                   "hours_per_week": 1.0 + draw.below(200) as f64 / 10.0,
                   "available_from": at_day(from, 0), "available_until": at_day(from + 3 + draw.below(18), 0),
                   "region": draw.pick(&regions), "trust": draw.below(3)})
        })
        .collect();
    let tasks: Vec<Value> = (0..tasks)
        .map(|index| {
            let slots = draw.below(4);
            let mut needed = serde_json::Map::new();
            if slots > 0 && draw.below(4) > 0 {
                needed.insert(draw.pick(&skills).to_owned(), json!(1 + draw.below(3)));
            }
            let money = if slots == 0 || draw.below(4) == 0 { 100 + draw.below(5000) } else { 0 };
            let start = draw.below(7);
            let depends_on: Vec<String> = if index > 0 && draw.below(3) == 0 {
                vec![format!("t{}", draw.below(index as u64))]
            } else {
                vec![]
            };
            let region = if draw.below(2) == 0 { Value::Null } else { json!(draw.pick(&regions)) };
            json!({"id": format!("t{index}"), "need": "n1", "collective": format!("c{}", draw.below(2)),
                   "title": format!("task {index}"), "skills": needed,
                   "hours": if slots == 0 { 0.0 } else { 0.5 + draw.below(80) as f64 / 10.0 },
                   "slots": slots, "earliest_start": at_day(start, 0),
                   "deadline": at_day(start + 1 + draw.below(10), draw.below(24)),
                   "region": region, "sensitivity": draw.below(3), "depends_on": depends_on,
                   "money_cents": money, "impact": 1.0 + draw.below(100) as f64 / 4.0,
                   "tags": [draw.pick(&tags)]})
        })
        .collect();
    let pledges: Vec<Value> = (0..pledges)
        .map(|index| {
            let collectives = if draw.below(3) == 0 {
                json!(["c0"])
            } else {
                Value::Null
            };
            let pledge_tags = if draw.below(3) == 0 {
                json!([draw.pick(&tags)])
            } else {
                Value::Null
            };
            let expires = if draw.below(3) == 0 {
                json!(at_day(draw.below(8), 0))
            } else {
                Value::Null
            };
            json!({"id": format!("p{index}"), "amount_cents": 1 + draw.below(8000),
                   "collectives": collectives, "tags": pledge_tags, "expires_at": expires})
        })
        .collect();
    let mut pinned = Vec::new();
    if !volunteers.is_empty() && !tasks.is_empty() {
        for _ in 0..pins {
            pinned.push(
                json!({"volunteer": format!("v{}", draw.below(volunteers.len() as u64)),
                               "task": format!("t{}", draw.below(tasks.len() as u64))}),
            );
        }
    }
    json!({"format": "switchboard-instance/1", "now": "2026-11-22T00:00:00Z",
           "volunteers": volunteers, "tasks": tasks, "pledges": pledges, "done": [], "pinned": pinned})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_plan_from_solve_passes_check_and_keeps_its_pins(
        seed in any::<u64>(),
        volunteers in 0usize..9,
        tasks in 1usize..9,
        pledges in 0usize..4,
        pins in 0usize..3,
        greedy_only in any::<bool>(),
    ) {
        let raw = random_instance(seed, volunteers, tasks, pledges, pins);
        let instance: proto::instance::Instance = serde_json::from_value(raw).unwrap();
        let problem = Problem::from_world(&instance.validate().unwrap()).unwrap();
        let options = SolveOptions {
            time_limit: Duration::from_millis(200),
            greedy_only,
            ..SolveOptions::default()
        };
        let report = solve(&problem, &options);
        let plan = report.solution.to_plan(&problem);

        // The plan as the live service sees it: dropped pins released.
        let mut released = instance.clone();
        released.pinned.retain(|pin| {
            let task = problem.task_index(&pin.task).unwrap();
            !report.dropped_pins.contains(&task)
        });
        let released_problem = Problem::from_world(&released.validate().unwrap()).unwrap();
        let scored = check(&released_problem, &plan);
        prop_assert!(scored.is_ok(), "{:?}", scored);
        let scored = scored.unwrap();
        prop_assert!((scored - report.objective).abs() < 1e-9);
        prop_assert!(report.objective >= report.greedy_objective - 1e-9);
        if let Some(bound) = report.upper_bound {
            prop_assert!(report.objective <= bound + 1e-6, "{} > bound {}", report.objective, bound);
        }
        if report.dropped_pins.is_empty() {
            prop_assert!(check(&problem, &plan).is_ok());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_live_plan_keeps_every_rule_through_arrivals_and_departures(
        seed in any::<u64>(),
        events in proptest::collection::vec((0u8..5, any::<u16>()), 1..12),
    ) {
        // Start from half of a random world; the other half arrives as events.
        let full = random_instance(seed, 8, 8, 3, 0);
        let mut start = full.clone();
        start["volunteers"] = json!(full["volunteers"].as_array().unwrap()[..4].to_vec());
        start["pledges"] = json!([]);
        // Tasks arrive in order, so dependencies always exist first.
        start["tasks"] = json!(full["tasks"].as_array().unwrap()[..4].to_vec());
        let instance: proto::instance::Instance = serde_json::from_value(start).unwrap();
        let world = instance.validate().unwrap();
        let problem = Problem::from_world(&world).unwrap();
        let report = solve(&problem, &SolveOptions { greedy_only: true, ..SolveOptions::default() });
        let mut live = LivePlan::new(&world, &report.solution).unwrap();
        let all: proto::instance::Instance = serde_json::from_value(full).unwrap();
        let (mut next_volunteer, mut next_task, mut next_pledge) = (4, 4, 0);
        for (kind, pick) in events {
            match kind {
                0 if next_volunteer < all.volunteers.len() => {
                    live.add_volunteer(&all.volunteers[next_volunteer].validate("").unwrap()).unwrap();
                    next_volunteer += 1;
                }
                1 if next_task < all.tasks.len() => {
                    live.add_task(&all.tasks[next_task].validate_standalone("").unwrap()).unwrap();
                    next_task += 1;
                }
                2 if next_pledge < all.pledges.len() => {
                    live.add_pledge(&all.pledges[next_pledge].validate("").unwrap()).unwrap();
                    next_pledge += 1;
                }
                3 => {
                    live.withdraw_volunteer(usize::from(pick) % live.problem().volunteer_count().max(1));
                }
                _ => {
                    let tasks = live.problem().task_count().max(1);
                    live.withdraw_task(usize::from(pick) % tasks);
                }
            }
            let plan = live.solution().to_plan(live.problem());
            let scored = check(live.problem(), &plan);
            prop_assert!(scored.is_ok(), "{:?}", scored);
            prop_assert!((scored.unwrap() - live.objective()).abs() < 1e-9);
        }
    }
}

#[test]
fn an_instance_with_only_money_tasks_is_funded_without_anyone() {
    let raw = random_instance(7, 0, 6, 3, 0);
    let instance: proto::instance::Instance = serde_json::from_value(raw).unwrap();
    let problem = Problem::from_world(&instance.validate().unwrap()).unwrap();
    let report = solve(&problem, &SolveOptions::default());
    assert!(report.solution.assignments.is_empty());
    assert!(check(&problem, &report.solution.to_plan(&problem)).is_ok());
}

#[test]
fn the_random_instances_are_not_trivial() {
    // If the generator drifted into worlds where nothing can be done, the
    // property above would pass vacuously.
    let mut staffed = 0;
    let mut with_pins_dropped = 0;
    for seed in 0..40 {
        let raw = random_instance(seed, 8, 8, 3, 2);
        let instance: proto::instance::Instance = serde_json::from_value(raw).unwrap();
        let problem = Problem::from_world(&instance.validate().unwrap()).unwrap();
        let report = solve(
            &problem,
            &SolveOptions {
                greedy_only: true,
                ..SolveOptions::default()
            },
        );
        staffed += usize::from(!report.solution.assignments.is_empty());
        with_pins_dropped += usize::from(!report.dropped_pins.is_empty());
    }
    assert!(
        staffed >= 20,
        "only {staffed} of 40 random worlds staffed anything"
    );
    assert!(
        with_pins_dropped >= 1,
        "no random world exercised dropped pins"
    );
}
