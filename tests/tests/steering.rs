//! Coordinators steer the matching over `sb.in.steer`: a veto releases a
//! live match and the pair is never proposed again; a pin plans a pair; a
//! campaign weight makes a collective's work count for more.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proto::subjects::{Input, MatchKind};
use proto::wire::ErrorCode;
use serde_json::json;
use tests::{hours_from_now, volunteer, Inbox, NatsServer, Options, Switchboard};

fn one_person_task(id: &str, collective: &str, impact: f64) -> serde_json::Value {
    json!({"id": format!("n-{id}"), "collective": collective, "title": id, "tasks": [
        {"id": id, "title": id, "skills": {"driving": 1}, "hours": 30.0, "slots": 1,
         "earliest_start": hours_from_now(0), "deadline": hours_from_now(7 * 24), "impact": impact}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_veto_releases_a_match_and_a_campaign_weight_moves_the_work() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(
        &nats,
        state.path(),
        Options {
            starter_policy: false,
            ..Options::default()
        },
    )
    .await;
    let mut matches = Inbox::open(&switchboard.client, switchboard.subjects.matches_all()).await;
    // One volunteer with time for one of two tasks (30 h each, 40 h a week for a week).
    switchboard
        .accept(
            Input::Need,
            &one_person_task("t-rent-clinic", "c-tenants", 10.0),
        )
        .await;
    switchboard
        .accept(
            Input::Need,
            &one_person_task("t-strike-kitchen", "c-strikers", 8.0),
        )
        .await;
    let mut person = volunteer("v-1", json!({"driving": 2}));
    person["hours_per_week"] = json!(40.0);
    switchboard.accept(Input::Volunteer, &person).await;
    let proposed = switchboard.subjects.match_event(MatchKind::Proposed);
    let (_, first) = matches.next_where(|subject, _| subject == proposed).await;
    assert_eq!(
        first["task"], "t-rent-clinic",
        "the higher impact first: {first}"
    );

    let refused = switchboard
        .send(
            Input::Steer,
            &json!({"action": "weight", "tag": null, "collective": "c-strikers", "factor": 0}),
        )
        .await;
    assert_eq!(refused.error.unwrap().field.as_deref(), Some("factor"));
    let unknown = switchboard
        .send(
            Input::Steer,
            &json!({"action": "veto", "volunteer": "v-nobody", "task": "t-rent-clinic"}),
        )
        .await;
    assert_eq!(unknown.error.unwrap().code, ErrorCode::NotFound);

    // The strike is this week's campaign: its kitchen now outweighs the clinic,
    // and the coordinator vetoes the clinic match so the volunteer is free.
    switchboard
        .accept(
            Input::Steer,
            &json!({"action": "weight", "collective": "c-strikers", "factor": 3.0}),
        )
        .await;
    switchboard
        .accept(
            Input::Steer,
            &json!({"action": "veto", "volunteer": "v-1", "task": "t-rent-clinic"}),
        )
        .await;
    let released = switchboard.subjects.match_event(MatchKind::Released);
    let (_, gone) = matches
        .next_where(|subject, body| subject == released && body["task"] == "t-rent-clinic")
        .await;
    assert!(
        gone["reason"].as_str().unwrap().contains("vetoed"),
        "{gone}"
    );
    let (_, second) = matches.next_where(|subject, _| subject == proposed).await;
    assert_eq!(second["task"], "t-strike-kitchen", "{second}");
    assert_eq!(
        second["impact"], 24.0,
        "the campaign weight counts: {second}"
    );
    switchboard.stop().await;
}
