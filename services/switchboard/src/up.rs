//! `switchboard up`: every service in one process, over a local
//! nats-server unless `--nats` names one, optionally with the demo.

use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::{Connection, UpArgs};
use crate::local_nats::LocalNats;

pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let local = match &args.nats {
        Some(_) => None,
        None => Some(LocalNats::start(&args.data.join("nats")).await?),
    };
    let url = match (&args.nats, &local) {
        (Some(url), _) => url.clone(),
        (None, Some(local)) => local.url.clone(),
        (None, None) => unreachable!("a local server is started when no URL is given"),
    };
    let outcome = run_services(&args, &url, shutdown).await;
    if let Some(local) = local {
        local.stop().await;
    }
    outcome
}

async fn run_services(args: &UpArgs, url: &str, shutdown: CancellationToken) -> anyhow::Result<()> {
    let connection = Connection {
        url: url.to_owned(),
        prefix: args.prefix.clone(),
        auth: Default::default(),
        replicas: args.replicas,
    };
    let clock = args.time.clock();
    let state = args.data.join("state");
    let services = shutdown.child_token();
    let mut running: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    // One listener for every service's /metrics, /health and /ready; the
    // recorder goes in before any service makes its metric handles.
    let mut probes = Vec::new();
    let metrics_listener = match args.metrics_addr {
        Some(address) => {
            plumbing::prometheus::install()?;
            Some(plumbing::observe::bind(address).await?)
        }
        None => None,
    };

    let context = crate::services::context(&connection, "sb-ingest", clock.clone()).await?;
    probes.push(plumbing::observe::Probe::new("ingest", &context));
    let config = ingest::IngestConfig {
        state_directory: Some(state.join("ingest")),
    };
    let token = services.clone();
    running.spawn(async move { ("ingest", ingest::run(context, config, token).await) });

    let context = crate::services::context(&connection, "sb-solver", clock.clone()).await?;
    probes.push(plumbing::observe::Probe::new("solver", &context));
    let config = solver::SolverConfig {
        state_directory: Some(state.join("solver")),
        match_budget: Duration::from_millis(args.match_budget_ms),
        response_window: chrono::Duration::hours(args.lifecycle.response_window_hours),
        trust_source: args.trust.into(),
        priorities: args.priorities.priorities()?,
        ..solver::SolverConfig::default()
    };
    let token = services.clone();
    running.spawn(async move { ("solver", solver::run(context, config, token).await) });

    let context = crate::services::context(&connection, "sb-ledger", clock.clone()).await?;
    let config = ledger::LedgerConfig {
        state_directory: Some(state.join("ledger")),
        ..ledger::LedgerConfig::default()
    };
    let token = services.clone();
    running.spawn(async move { ("ledger", ledger::run(context, config, token).await) });

    let context = crate::services::context(&connection, "sb-dispatch", clock.clone()).await?;
    probes.push(plumbing::observe::Probe::new("dispatch", &context));
    // The links in email sign volunteers in with the gateway's own tokens.
    let gateway_tokens = gateway::GatewayConfig::from_secret_or_file(
        args.access.gateway_secret.as_deref(),
        &args.data.join("gateway-secret"),
        !args.access.invite_only,
    )?
    .tokens()?;
    let volunteer_sign_in: dispatch::VolunteerSignIn =
        std::sync::Arc::new(move |volunteer: &str| {
            gateway_tokens.mint(&gateway::access::Principal::Volunteer(volunteer.to_owned()))
        });
    let config = dispatch::DispatchConfig {
        state_directory: Some(state.join("dispatch")),
        checkin_window: chrono::Duration::hours(args.lifecycle.checkin_window_hours),
        smtp: crate::services::smtp_config(
            &args.mail,
            Some(volunteer_sign_in),
            Some(format!("http://{}", args.http)),
        )?,
    };
    let token = services.clone();
    running.spawn(async move { ("dispatch", dispatch::run(context, config, token).await) });

    let context = crate::services::context(&connection, "sb-gateway", clock.clone()).await?;
    probes.push(plumbing::observe::Probe::new("gateway", &context));
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| {
            format!(
                "the gateway cannot listen on {} (use --http ADDR)",
                args.http
            )
        })?;
    let gateway_config = gateway::GatewayConfig::from_secret_or_file(
        args.access.gateway_secret.as_deref(),
        &args.data.join("gateway-secret"),
        !args.access.invite_only,
    )?;
    let coordinator_link = gateway_config.coordinator_link(args.http)?;
    let token = services.clone();
    running.spawn(async move {
        let outcome = gateway::run(context, gateway_config, listener, token).await;
        ("gateway", outcome)
    });

    println!(
        "switchboard is up: NATS {url}, HTTP http://{} (GET /api/plan, GET /api/stream), data {}. Ctrl-C stops.",
        args.http,
        args.data.display()
    );
    println!("coordinators sign in at {coordinator_link}");
    if let Some(listener) = metrics_listener {
        println!(
            "metrics at http://{}/metrics, readiness at /ready",
            listener.local_addr()?
        );
        let token = services.clone();
        running.spawn(async move {
            let outcome = plumbing::observe::serve(listener, probes, token).await;
            ("metrics", outcome)
        });
    }
    if !args.quiet {
        let context = crate::services::context(&connection, "sb-watch", clock.clone()).await?;
        let token = services.clone();
        running.spawn(async move {
            (
                "watch",
                crate::watch::print_stream(context, true, token).await,
            )
        });
    }
    if args.demo {
        let context = crate::services::context(&connection, "sb-demo", clock.clone()).await?;
        let token = services.clone();
        let seed = args.demo_seed;
        running.spawn(async move { ("demo", crate::demo::run(context, seed, token).await) });
    }

    // The first service to fail stops the others: a half-running switchboard
    // would accept work it cannot match.
    let mut failure = None;
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(error))) => {
                if failure.is_none() {
                    failure = Some(error.context(format!("the {name} service failed")));
                }
                services.cancel();
            }
            Err(error) => {
                if failure.is_none() {
                    failure = Some(anyhow::anyhow!("a service panicked: {error}"));
                }
                services.cancel();
            }
        }
    }
    failure.map_or(Ok(()), Err)
}
