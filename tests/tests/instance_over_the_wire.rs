//! A whole shared instance posted over the wire, as collectives, volunteers
//! and donors would, yields a plan that the shared judge accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use proto::subjects::Input;
use serde_json::json;
use tests::{shared_dir, NatsServer, Options, Switchboard, EXPECT_WITHIN};

/// Posts a whole instance as its collectives, donors and volunteers would:
/// pledges, needs (each after the needs it depends on), then volunteers.
async fn post_instance(switchboard: &Switchboard, instance: &serde_json::Value) {
    // Tasks already done are posted as a past need and marked complete, so
    // dependencies on them resolve exactly as in the instance.
    let done: Vec<&str> = instance["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    if !done.is_empty() {
        let history: Vec<serde_json::Value> = done
            .iter()
            .map(|id| json!({"id": id, "title": "done before", "hours": 1.0, "slots": 1,
                "earliest_start": instance["now"], "deadline": "2026-12-31T00:00:00Z", "impact": 0.0}))
            .collect();
        switchboard.accept(Input::Need, &json!({"id": "n-history", "collective": "c-history", "title": "history", "tasks": history})).await;
        for id in &done {
            switchboard
                .accept(Input::Complete, &json!({"task": id}))
                .await;
        }
    }
    for pledge in instance["pledges"].as_array().unwrap() {
        switchboard.accept(Input::Pledge, pledge).await;
    }
    // Needs in an order where every dependency is posted first.
    let mut needs: BTreeMap<String, (String, Vec<serde_json::Value>)> = BTreeMap::new();
    for task in instance["tasks"].as_array().unwrap() {
        let entry = needs
            .entry(task["need"].as_str().unwrap().to_owned())
            .or_insert_with(|| (task["collective"].as_str().unwrap().to_owned(), Vec::new()));
        entry.1.push(task.clone());
    }
    let mut posted: std::collections::HashSet<String> =
        done.iter().map(|id| (*id).to_owned()).collect();
    while !needs.is_empty() {
        let ready: Vec<String> = needs
            .iter()
            .filter(|(_, (_, tasks))| {
                let own: Vec<&str> = tasks
                    .iter()
                    .map(|task| task["id"].as_str().unwrap())
                    .collect();
                tasks.iter().all(|task| {
                    task["depends_on"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|dependency| {
                            let dependency = dependency.as_str().unwrap();
                            posted.contains(dependency) || own.contains(&dependency)
                        })
                })
            })
            .map(|(id, _)| id.clone())
            .collect();
        assert!(!ready.is_empty(), "needs depend on each other in a cycle");
        for id in ready {
            let (collective, tasks) = needs.remove(&id).unwrap();
            for task in &tasks {
                posted.insert(task["id"].as_str().unwrap().to_owned());
            }
            let body = json!({"id": id, "collective": collective, "title": format!("need {id}"), "tasks": tasks});
            switchboard.accept(Input::Need, &body).await;
        }
    }
    for volunteer in instance["volunteers"].as_array().unwrap() {
        switchboard.accept(Input::Volunteer, volunteer).await;
    }
}

/// Runs the judge on a plan; returns its verdict.
fn judge(
    instance: &std::path::Path,
    plan: &proto::instance::Plan,
    scratch: &std::path::Path,
) -> serde_json::Value {
    let plan_file = scratch.join("plan.json");
    std::fs::write(&plan_file, serde_json::to_vec(plan).unwrap()).unwrap();
    let output = std::process::Command::new("python3")
        .arg(shared_dir().join("bench/check_plan.py"))
        .arg(instance)
        .arg(&plan_file)
        .arg("--json")
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

fn reference(name: &str, anchor: &str) -> f64 {
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared_dir().join("bench/instances/reference.json")).unwrap(),
    )
    .unwrap();
    reference[name][anchor].as_f64().unwrap()
}

async fn start_at_instance_time(
    instance: &serde_json::Value,
    nats: &NatsServer,
    state: &std::path::Path,
) -> Switchboard {
    let now = chrono::DateTime::parse_from_rfc3339(instance["now"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    // The switchboard's clock starts at the instance's `now`.
    let options = Options {
        clock: plumbing::Clock::starting_at(now, 1.0),
        match_budget: Duration::from_millis(1_500),
        // The canonical objective knows nothing of records: plan for it alone.
        starter_policy: false,
        // problem.md's people give time from `now`, not from an answer.
        answer_delay: false,
        ..Options::default()
    };
    Switchboard::start(nats, state, options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_for_an_instance_posted_over_the_wire_passes_the_shared_checker() {
    let path = shared_dir().join("bench/instances/balanced-200x150.json");
    let instance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = start_at_instance_time(&instance, &nats, state.path()).await;
    post_instance(&switchboard, &instance).await;
    let plan = switchboard.settled_plan(Duration::from_millis(1_500)).await;
    let verdict = judge(&path, &plan, state.path());
    assert_eq!(verdict["feasible"], true, "{verdict}");
    let objective = verdict["objective"].as_f64().unwrap();
    let self_select = reference("balanced-200x150", "self_select");
    assert!(objective > self_select, "the live plan ({objective}) is worse than volunteers picking for themselves ({self_select})");
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_plan_for_a_time_scarce_instance_beats_a_coordinators_greedy_spreadsheet() {
    let path = shared_dir().join("bench/instances/time-scarce-300x600.json");
    let instance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = start_at_instance_time(&instance, &nats, state.path()).await;
    post_instance(&switchboard, &instance).await;
    let greedy = reference("time-scarce-300x600", "greedy");
    // Every plan on the way must be feasible, and one must beat the anchor.
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN * 2;
    let mut best = 0.0;
    while best <= greedy {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live plan reached {best}, not above the greedy anchor {greedy}"
        );
        let plan = switchboard.plan().await;
        let verdict = judge(&path, &plan, state.path());
        assert_eq!(verdict["feasible"], true, "{verdict}");
        best = verdict["objective"].as_f64().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    switchboard.stop().await;
}
