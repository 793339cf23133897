//! The switchboard's application library: the command line ([`cli`]), the
//! one place that wires services together ([`fleet`]), and the commands of
//! the production binary (`up`, `watch`, `solve`, each service alone,
//! `link`). The binary's `main` only parses and calls [`main_with`]; the
//! tools binary (`tools/`: load generator, simulator, demo) and the
//! integration tests build on the same [`fleet`].

pub mod cli;
pub mod fleet;
pub mod local_access;
pub mod local_nats;
pub mod nats_users;
pub mod services;
pub mod solve;
pub mod up;
pub mod watch;

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Ctrl-C or SIGTERM (systemd, `timeout`) stops gracefully; a second one forces.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    for attempt in 0..2 {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        if attempt == 0 {
            eprintln!("switchboard: stopping (once more to force)");
            shutdown.cancel();
        }
    }
    std::process::exit(130);
}

/// What a binary's `main` does once the command line is parsed: starts
/// telemetry, the runtime and the signal handler, runs `command` with the
/// cancellation token Ctrl-C cancels, and turns its outcome into the exit
/// code (the error's whole chain on stderr).
pub fn main_with<F, Run>(
    log_format: plumbing::telemetry::LogFormat,
    log_filter: &str,
    command: Run,
) -> std::process::ExitCode
where
    Run: FnOnce(CancellationToken) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    plumbing::telemetry::init(log_format, log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("switchboard: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        command(shutdown).await
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchboard: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
