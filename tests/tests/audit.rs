//! "Who did it": every event in `SB_EVENTS` names its actor
//! (`proto::wire::ACTOR_HEADER`), from the per-sender subject a person
//! published on, or the gateway's signed-in principal, or `trusted`; a
//! coordinator reads the trail at `GET /api/view/audit`, filtered by actor
//! and entity, and nobody else may. Real nats-server, services in-process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use gateway::access::Principal;
use proto::subjects::Input;
use proto::wire::Reply;
use serde_json::{json, Value};
use tests::{hours_from_now, volunteer, NatsServer, Options, Switchboard};

fn entries(view: &Value) -> Vec<(String, String, String)> {
    view["view"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap().to_owned(),
                entry["kind"].as_str().unwrap().to_owned(),
                entry["entity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_names_who_did_it_and_coordinators_filter_the_trail() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(
        &nats,
        state.path(),
        Options {
            gateway: true,
            ..Options::default()
        },
    )
    .await;
    let base = format!("http://{}", switchboard.http.unwrap());
    let subjects = switchboard.subjects.clone();

    // A collective posts through the gateway, signed in.
    let collective = tests::http_as(&Principal::Collective("c-1".into()));
    let need = json!({"id": "n-1", "collective": "c-1", "title": "Pantry", "tasks": [
        {"id": "t-1", "title": "Drive", "skills": {"driving": 2}, "hours": 2.0, "slots": 1,
         "earliest_start": hours_from_now(0), "deadline": hours_from_now(96), "impact": 5.0}]});
    let posted = collective
        .post(format!("{base}/api/need"))
        .json(&need)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    // A volunteer on their own subject, claiming in a header to be a
    // coordinator: the subject decides.
    let mut forged = async_nats::HeaderMap::new();
    forged.insert(proto::wire::ACTOR_HEADER, "coordinator");
    let offered = switchboard
        .client
        .request_with_headers(
            subjects.input_from(Input::Volunteer, "v-1"),
            forged,
            Bytes::from(serde_json::to_vec(&volunteer("v-1", json!({"driving": 3}))).unwrap()),
        )
        .await
        .unwrap();
    let offered: Reply = serde_json::from_slice(&offered.payload).unwrap();
    assert!(offered.ok, "{offered:?}");
    // A trusted client on the shared subject, naming nobody.
    switchboard
        .accept(Input::Pledge, &json!({"id": "p-1", "amount_cents": 1000}))
        .await;
    // A coordinator steers through the gateway.
    let coordinator = tests::coordinator_http();
    let steered = coordinator
        .post(format!("{base}/api/steer"))
        .json(&json!({"action": "weight", "collective": "c-1", "factor": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(steered.status(), 200);

    // The header is on the events themselves.
    let jetstream = switchboard.jetstream();
    let stream = jetstream
        .get_stream(subjects.events_stream())
        .await
        .unwrap();
    let need_event = stream
        .get_last_raw_message_by_subject(&format!("{}.ev.need.n-1", subjects.prefix()))
        .await
        .unwrap();
    assert_eq!(
        need_event
            .headers
            .get(proto::wire::ACTOR_HEADER)
            .map(|value| value.as_str()),
        Some("collective:c-1")
    );

    // The trail, for coordinators, newest first.
    let trail: Value = coordinator
        .get(format!("{base}/api/view/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = entries(&trail);
    for expected in [
        ("collective:c-1", "need", "n-1"),
        ("volunteer:v-1", "volunteer", "v-1"),
        ("trusted", "pledge", "p-1"),
        ("coordinator", "steered", "c-1"),
    ] {
        assert!(
            all.iter().any(|(actor, kind, entity)| (
                actor.as_str(),
                kind.as_str(),
                entity.as_str()
            ) == expected),
            "{expected:?} not in {all:?}"
        );
    }
    assert!(
        !all.iter()
            .any(|(actor, kind, _)| actor == "coordinator" && kind == "volunteer"),
        "a forged header on a person's subject is not taken: {all:?}"
    );
    let by_collective: Value = coordinator
        .get(format!("{base}/api/view/audit?actor=collective:c-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        entries(&by_collective),
        [(
            "collective:c-1".to_owned(),
            "need".to_owned(),
            "n-1".to_owned()
        )]
    );
    let about_volunteer: Value = coordinator
        .get(format!("{base}/api/view/audit?entity=v-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entries(&about_volunteer).len(), 1);

    // Nobody else reads it.
    let refused = collective
        .get(format!("{base}/api/view/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    switchboard.stop().await;
}
