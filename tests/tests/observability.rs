//! What the people who run the switchboard see: Prometheus counters that
//! move with traffic, readiness that follows the NATS server, and one trace
//! id from a client's request to the proposal on the volunteer's subject,
//! in the message headers and in each service's log lines.
//!
//! The metrics recorder and the log subscriber are process-wide, so these
//! tests live in their own binary and compare counters before and after.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use proto::subjects::Input;
use serde_json::json;
use tests::{hours_from_now, volunteer, Inbox, NatsServer, Options, Switchboard, EXPECT_WITHIN};

fn observed() -> Options {
    Options {
        observe: true,
        ..Options::default()
    }
}

fn outreach_need(need: &str, task: &str) -> serde_json::Value {
    json!({
        "id": need, "collective": "c-tenants", "title": "Door knocking",
        "tasks": [
            {"id": task, "title": "Knock on doors", "skills": {"outreach": 1}, "hours": 2.0, "slots": 1,
             "earliest_start": hours_from_now(0), "deadline": hours_from_now(5 * 24), "region": "detroit",
             "impact": 10.0, "depends_on": []},
        ]
    })
}

async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The sum of every series of `name` (all label sets) in a scrape.
fn total(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_accepted_and_refused_input_proposals_and_deliveries() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), observed()).await;
    let address = switchboard.observe.unwrap();
    let (_, before) = get(address, "/metrics").await;
    let mut inbox = Inbox::open(
        &switchboard.client,
        switchboard.subjects.to_volunteer("v-metrics"),
    )
    .await;

    switchboard
        .accept(Input::Need, &outreach_need("n-metrics", "t-metrics"))
        .await;
    switchboard
        .accept(
            Input::Volunteer,
            &volunteer("v-metrics", json!({"outreach": 2})),
        )
        .await;
    let refused = switchboard
        .send(Input::Volunteer, &json!({"id": "v-broken"}))
        .await;
    assert!(!refused.ok);
    let (_, proposal) = inbox.next().await;
    assert_eq!(proposal["task"], "t-metrics");

    // Counters move when the handlers finish, a moment after the replies.
    let moved = |after: &str, name: &str| total(after, name) - total(&before, name);
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    let after = loop {
        let (status, after) = get(address, "/metrics").await;
        assert_eq!(status, 200);
        if moved(&after, "switchboard_dispatch_deliveries_total") >= 1.0 {
            break after;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery counted:\n{after}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        moved(&after, "switchboard_ingest_events_accepted_total") >= 2.0,
        "{after}"
    );
    assert!(
        moved(&after, "switchboard_ingest_requests_refused_total") >= 1.0,
        "{after}"
    );
    assert!(
        moved(&after, "switchboard_solver_proposals_total") >= 1.0,
        "{after}"
    );
    assert!(
        after.contains("switchboard_ingest_request_duration_seconds_bucket{input=\"volunteer\""),
        "latency histogram missing:\n{after}"
    );
    assert!(
        after.contains(
            "switchboard_ingest_requests_refused_total{input=\"volunteer\",code=\"invalid\"}"
        ),
        "refusals are labelled by input and code:\n{after}"
    );
    assert!(
        after.contains("switchboard_solver_match_duration_seconds_bucket"),
        "{after}"
    );
    assert!(
        after.contains("switchboard_solver_lag_messages{stream=\"SB_EVENTS\"}"),
        "{after}"
    );
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_unready_when_the_nats_server_stops_and_ready_again_when_it_returns() {
    let mut nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), observed()).await;
    let address = switchboard.observe.unwrap();

    let wait_for = |wanted: u16| async move {
        let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
        loop {
            let (status, body) = get(address, "/ready").await;
            if status == wanted {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/ready stayed {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let body = wait_for(200).await;
    for service in ["ingest", "solver", "dispatch"] {
        assert!(body.contains(&format!("{service}: ready")), "{body}");
    }

    nats.kill().await;
    let body = wait_for(503).await;
    assert!(body.contains("not ready"), "{body}");
    // Alive all the same: the process answers, it just cannot work.
    assert_eq!(get(address, "/health").await.0, 200);

    nats.restart().await;
    wait_for(200).await;
    switchboard.stop().await;
}

/// Log lines written by the services, captured as JSON (the deployment format).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .json()
                .with_env_filter("warn,ingest=debug,solver=debug,dispatch=debug")
                .with_writer(move || writer.clone())
                .init();
            captured
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_trace_id_reaches_the_volunteer_and_every_services_log() {
    let logs = capture_logs();
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(&nats, state.path(), Options::default()).await;
    let mut inbox = switchboard
        .client
        .subscribe(switchboard.subjects.to_volunteer("v-traced"))
        .await
        .unwrap();
    switchboard.client.flush().await.unwrap();
    switchboard
        .accept(Input::Need, &outreach_need("n-traced", "t-traced"))
        .await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").as_str(),
    );
    let body = serde_json::to_vec(&volunteer("v-traced", json!({"outreach": 2}))).unwrap();
    let reply = switchboard
        .client
        .request_with_headers(
            switchboard.subjects.input(Input::Volunteer),
            headers,
            Bytes::from(body),
        )
        .await
        .unwrap();
    let reply: proto::wire::Reply = serde_json::from_slice(&reply.payload).unwrap();
    assert!(reply.ok, "{reply:?}");

    let delivered = tokio::time::timeout(EXPECT_WITHIN, inbox.next())
        .await
        .expect("no proposal arrived")
        .unwrap();
    let proposal: serde_json::Value = serde_json::from_slice(&delivered.payload).unwrap();
    assert_eq!(proposal["kind"], "proposal");
    let traceparent = delivered
        .headers
        .as_ref()
        .and_then(|headers| headers.get("traceparent"))
        .map(|value| value.as_str().to_owned())
        .expect("the proposal carries a traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "{traceparent}"
    );
    // The hop's own span id, not the client's.
    assert!(!traceparent.contains("00f067aa0ba902b7"), "{traceparent}");

    // Each service logs when its handler finishes, a moment after it sent.
    let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
    for span in ["ingest.request", "solver.match", "dispatch.deliver"] {
        loop {
            let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
            let traced = text.lines().any(|line| {
                let Ok(line) = serde_json::from_str::<serde_json::Value>(line) else {
                    return false;
                };
                line["span"]["name"] == span && line["span"]["trace_id"] == trace_id
            });
            if traced {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {span} log line with trace {trace_id}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    switchboard.stop().await;
}
