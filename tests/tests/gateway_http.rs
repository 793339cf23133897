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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_allowance_is_told_to_wait_while_others_are_still_served() {
    use gateway::limits::{Allowance, RateLimits};
    use std::time::Duration;
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    // Small allowances that refill slowly, so the test never races the refill.
    let slow = Duration::from_secs(600);
    let switchboard = Switchboard::start(
        &nats,
        state.path(),
        Options {
            gateway: true,
            rate_limits: RateLimits {
                signed: Allowance {
                    burst: 5,
                    interval: slow,
                },
                anonymous: Allowance {
                    burst: 3,
                    interval: slow,
                },
                register: Allowance {
                    burst: 2,
                    interval: slow,
                },
            },
            ..Options::default()
        },
    )
    .await;
    let base = format!("http://{}", switchboard.http.unwrap());
    let coordinator = tests::coordinator_http();
    let anonymous = reqwest::Client::new();

    // The coordinators' burst, then a refusal that says when to come back.
    for _ in 0..5 {
        let ok = coordinator
            .get(format!("{base}/api/me"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    let refused = coordinator
        .get(format!("{base}/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 600, "Retry-After {wait}");
    let body: Reply = refused.json().await.unwrap();
    assert_eq!(
        body.error.unwrap().code,
        proto::wire::ErrorCode::Unavailable
    );

    // A volunteer signed in from the same address has an allowance of their own.
    let token = tests::gateway_token(&gateway::access::Principal::Volunteer("v-1".into()));
    let own = anonymous
        .get(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);

    // Guessing tokens is slow: refused tokens count as anonymous.
    let mut statuses = Vec::new();
    for guess in 0..4 {
        let answer = anonymous
            .get(format!("{base}/api/me"))
            .bearer_auth(format!("v1.coordinator.all.{guess:064x}"))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);

    // Registration has the tightest allowance, and a refused one makes no volunteer.
    let mut offer = volunteer("ignored", json!({"driving": 1}));
    offer.as_object_mut().unwrap().remove("id");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = anonymous
            .post(format!("{base}/api/register"))
            .json(&offer)
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let offers = switchboard
        .stream_messages(&switchboard.subjects.events_stream())
        .await
        .into_iter()
        .filter(|(subject, _)| subject.starts_with("sb.ev.volunteer."))
        .count();
    assert_eq!(offers, 2);
    switchboard.stop().await;
}
