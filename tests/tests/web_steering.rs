//! Coordinators steer the matching through the gateway (`POST /api/steer`,
//! forwarded to `sb.in.steer`): a campaign weight is validated like any
//! input, and weights and vetoes in force show on the dashboard's view.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use tests::{coordinator_http, hours_from_now, volunteer, NatsServer, Options, Switchboard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_sets_a_campaign_weight_and_vetoes_a_pair_from_the_dashboard_api() {
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
    let http = coordinator_http();
    let post = |path: &str, body: Value| {
        let request = http.post(format!("{base}{path}")).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let need = json!({"id": "n-1", "collective": "c-1", "title": "Pantry", "tasks": [
        {"id": "t-1", "title": "Drive", "skills": {"driving": 2}, "hours": 2.0, "slots": 1,
         "earliest_start": hours_from_now(0), "deadline": hours_from_now(96), "impact": 5.0}]});
    assert_eq!(post("/api/need", need).await.0, 200);
    let person = volunteer("v-1", json!({"driving": 3}));
    assert_eq!(post("/api/volunteer", person).await.0, 200);

    let weight = |factor: f64| json!({"action": "weight", "collective": "c-1", "tag": null, "factor": factor});
    let (status, text) = post("/api/steer", weight(0.0)).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("\"field\":\"factor\""), "{text}");
    let (status, text) = post("/api/steer", weight(2.0)).await;
    assert_eq!(status, 200, "{text}");
    let veto = json!({"action": "veto", "volunteer": "v-1", "task": "t-1"});
    let (status, text) = post("/api/steer", veto).await;
    assert_eq!(status, 200, "{text}");

    // The writes waited for the read model, so the view already shows them.
    let view: Value = http
        .get(format!("{base}/api/view/coordinator"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let steering = &view["view"]["steering"];
    assert_eq!(steering["weights"][0]["factor"], 2.0, "{steering}");
    assert_eq!(steering["weights"][0]["collective"], "c-1", "{steering}");
    assert_eq!(steering["vetoed"][0]["task"], "t-1", "{steering}");
    switchboard.stop().await;
}
