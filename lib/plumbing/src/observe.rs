//! What the people who run the switchboard ask of a process over HTTP:
//! `/metrics` (Prometheus text), `/health` (the process answers: liveness)
//! and `/ready` (each service in it is connected to NATS, finds its streams
//! and durable consumers, and has caught up with the logs since it
//! started: readiness). A service run alone serves its own; `up` serves one
//! listener for all of them, ready only when every one is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// How long one readiness check may wait for the server's answers.
pub const READY_PROBE_TIMEOUT_MS: u64 = 2_000;

/// What a service says about itself, for readiness. Shared by the service
/// (through its [`crate::Context`]) and the probe.
#[derive(Clone, Debug, Default)]
pub struct Health {
    state: Arc<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    caught_up: AtomicBool,
    /// Durable consumers the service reads, as (stream, consumer).
    consumers: Mutex<Vec<(String, String)>>,
}

impl Health {
    /// The service applied both logs up to their ends and serves.
    pub fn set_caught_up(&self) {
        self.state.caught_up.store(true, Ordering::Release);
    }

    pub fn is_caught_up(&self) -> bool {
        self.state.caught_up.load(Ordering::Acquire)
    }

    /// Readiness also requires this durable consumer to exist.
    pub fn expect_consumer(&self, stream: &str, consumer: &str) {
        if let Ok(mut consumers) = self.state.consumers.lock() {
            consumers.push((stream.to_owned(), consumer.to_owned()));
        }
    }

    fn consumers(&self) -> Vec<(String, String)> {
        self.state
            .consumers
            .lock()
            .map(|consumers| consumers.clone())
            .unwrap_or_default()
    }
}

/// Checks one service's readiness against the NATS server.
#[derive(Clone)]
pub struct Probe {
    pub service: &'static str,
    context: crate::Context,
}

impl Probe {
    pub fn new(service: &'static str, context: &crate::Context) -> Probe {
        Probe {
            service,
            context: context.clone(),
        }
    }

    /// `Ok` when ready, else why not (shown on `/ready`).
    pub async fn check(&self) -> Result<(), String> {
        let state = self.context.client.connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(format!("NATS is not connected ({state})"));
        }
        if !self.context.health.is_caught_up() {
            return Err("catching up with the streams".to_owned());
        }
        let timeout = Duration::from_millis(READY_PROBE_TIMEOUT_MS);
        let subjects = &self.context.subjects;
        for stream in [subjects.events_stream(), subjects.matches_stream()] {
            let found = tokio::time::timeout(timeout, self.context.jetstream.get_stream(&stream))
                .await
                .map_err(|_| format!("stream {stream} did not answer in time"))?;
            let handle = found.map_err(|error| format!("stream {stream}: {error}"))?;
            for (consumer_stream, consumer) in self.context.health.consumers() {
                if consumer_stream != stream {
                    continue;
                }
                tokio::time::timeout(timeout, handle.consumer_info(&consumer))
                    .await
                    .map_err(|_| format!("consumer {consumer} did not answer in time"))?
                    .map_err(|error| format!("consumer {consumer}: {error}"))?;
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Served {
    metrics: Option<PrometheusHandle>,
    probes: Arc<Vec<Probe>>,
}

/// The router: `/metrics`, `/health`, `/ready`.
pub fn router(metrics: Option<PrometheusHandle>, probes: Vec<Probe>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .with_state(Served {
            metrics,
            probes: Arc::new(probes),
        })
}

async fn metrics_text(State(served): State<Served>) -> axum::response::Response {
    match &served.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not recorded here\n").into_response(),
    }
}

async fn ready(State(served): State<Served>) -> (StatusCode, String) {
    let mut all_ready = true;
    let mut body = String::new();
    for probe in served.probes.iter() {
        match probe.check().await {
            Ok(()) => body.push_str(&format!("{}: ready\n", probe.service)),
            Err(why) => {
                all_ready = false;
                body.push_str(&format!("{}: not ready: {why}\n", probe.service));
            }
        }
    }
    let status = if all_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

/// Installs the metrics recorder and serves the three routes on `listener`
/// until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    probes: Vec<Probe>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handle = crate::prometheus::install()?;
    tokio::spawn(crate::prometheus::upkeep(handle.clone(), shutdown.clone()));
    let address = listener.local_addr().ok();
    tracing::info!(?address, "serving /metrics, /health and /ready");
    axum::serve(listener, router(Some(handle), probes))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serving /metrics, /health and /ready")
}

/// Binds `address` for [`serve`], with an error that names the flag.
pub async fn bind(address: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (--metrics-addr)"))
}
