//! The HTTP gateway gives people without NATS the same operations, the same
//! validation and error bodies, the plan, the live match stream and health.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proto::wire::Reply;
use serde_json::json;
use tests::{hours_from_now, volunteer, NatsServer, Options, Switchboard, EXPECT_WITHIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_posts_are_validated_like_nats_requests_and_the_stream_replays_the_day() {
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
    let http = tests::coordinator_http();

    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let need = json!({"id": "n-1", "collective": "c-1", "title": "Pantry", "tasks": [
        {"id": "t-1", "title": "Drive", "skills": {"driving": 2}, "hours": 2.0, "slots": 1,
         "earliest_start": hours_from_now(0), "deadline": hours_from_now(96), "impact": 5.0}]});
    let mut invalid = need.clone();
    invalid["tasks"][0]["hours"] = json!(-4);
    let refused = http
        .post(format!("{base}/api/need"))
        .json(&invalid)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body: Reply = refused.json().await.unwrap();
    assert_eq!(body.error.unwrap().field.as_deref(), Some("tasks[0].hours"));

    let accepted = http
        .post(format!("{base}/api/need"))
        .json(&need)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    assert!(accepted.json::<Reply>().await.unwrap().ok);
    let unknown = http
        .post(format!("{base}/api/complete"))
        .json(&json!({"task": "t-404"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let no_such = http
        .post(format!("{base}/api/teleport"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_such.status(), 404);
    let person = volunteer("v-1", json!({"driving": 3}));
    assert_eq!(
        http.post(format!("{base}/api/volunteer"))
            .json(&person)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A page opened after the match still sees it: the stream replays the day.
    let mut stream = http.get(format!("{base}/api/stream")).send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    while !seen.contains("event: proposed") {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let chunk = tokio::time::timeout(remaining, stream.chunk())
            .await
            .expect("no proposal streamed")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"volunteer\":\"v-1\""), "{seen}");
    assert!(seen.contains("id: "), "{seen}");

    let plan: serde_json::Value = http
        .get(format!("{base}/api/plan"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan["format"], "switchboard-plan/1");
    assert_eq!(plan["assignments"][0]["task"], "t-1", "{plan}");
    switchboard.stop().await;
}
