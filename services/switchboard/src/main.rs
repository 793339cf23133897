//! The `switchboard` command. `main` only parses the command line, starts
//! telemetry and hands Ctrl-C to the command as a cancellation token; each
//! command lives in its own module.

mod children;
mod cli;
mod demo;
mod loadgen;
mod local_nats;
mod services;
mod simulate;
mod solve;
mod up;
mod watch;

use clap::Parser;
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

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    plumbing::telemetry::init(cli.log_format.into(), cli.command.default_log_filter());
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
        cli.command.run(shutdown).await
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchboard: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
