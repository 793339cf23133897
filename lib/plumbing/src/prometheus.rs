//! The process's metrics recorder, exported in the Prometheus text format.
//!
//! Services record through the `metrics` facade (counters, gauges and
//! histograms as atomics behind handles they create once at start, so the
//! hot path is an atomic add, no lookup). Until [`install`] is called the
//! facade is a no-op, so a process that serves no `/metrics` pays nothing.
//! Names follow `switchboard_<service>_<thing>_<unit>`; docs/instrumentation.md
//! lists each one. `metrics-exporter-prometheus` is used with no features:
//! no HTTP listener or push gateway of its own, [`crate::observe`] serves it.

use std::sync::Mutex;

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of every latency histogram, in seconds: from the half
/// millisecond of a request on an idle machine to the ten seconds of the
/// largest tier-2 solve.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];
/// Histogram samples wait in buffers until drained; this bounds how long
/// (and so how much memory) when nobody scrapes.
pub const UPKEEP_INTERVAL_MS: u64 = 5_000;

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the process-wide recorder once and returns its handle; later
/// calls return the same handle (tests and `up` start several services).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut installed = HANDLE
        .lock()
        .map_err(|_| anyhow::anyhow!("the metrics recorder lock was poisoned"))?;
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS_SECONDS)
        .context("configuring histogram buckets")?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("another metrics recorder is already installed"))?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Drains histogram buffers every [`UPKEEP_INTERVAL_MS`] until `shutdown`.
pub async fn upkeep(handle: PrometheusHandle, shutdown: tokio_util::sync::CancellationToken) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(UPKEEP_INTERVAL_MS));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => handle.run_upkeep(),
        }
    }
}
