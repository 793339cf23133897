//! Logs and traces, set up once per process.
//!
//! Readable lines locally, JSON in deployments. The filter comes from
//! `RUST_LOG` when set. Nothing per message is logged above DEBUG.

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Readable,
    Json,
}

/// Installs the global subscriber; `default_filter` applies without `RUST_LOG`.
/// Calling it twice keeps the first subscriber (tests start several services).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Readable => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if result.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}
