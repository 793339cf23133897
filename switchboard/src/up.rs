//! `switchboard up`: every service in one process, over a local
//! nats-server unless `--nats` names one, optionally with the demo.

use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::cli::{Connection, UpArgs};
use crate::fleet::Fleet;
use crate::local_access::{LocalAccess, ACCOUNT, ADMIN_PASSWORD_FILE, ADMIN_USER};
use crate::local_nats::LocalNats;
use proto::permissions::Service;

/// What runs beside the services in `up`: the demo, from the tools
/// binary. It gets a client context and the token the services stop on.
pub type Companion = Box<
    dyn FnOnce(
            plumbing::Context,
            CancellationToken,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>
        + Send,
>;

/// Runs `up`. `demo` is what `--demo` starts; the production binary has
/// none (the demo lives in `switchboard-tools`), and says so.
pub async fn run(
    args: UpArgs,
    shutdown: CancellationToken,
    demo: Option<Companion>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.demo || demo.is_some(),
        "--demo: the demo is part of switchboard-tools (tools/), not of the production binary; \
         deploy/bin/switchboard up --demo runs it"
    );
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let nats_directory = args.data.join("nats");
    // Secure by default: fixed users for the services and the CLI, the
    // auth callout for people (crate::local_access). A server of one's own
    // (`--nats`) brings its own security.
    let access = match (&args.nats, args.insecure_local) {
        (None, false) => Some(LocalAccess::prepare(
            &nats_directory,
            &proto::subjects::Subjects::new(&args.prefix).context("--prefix")?,
        )?),
        _ => None,
    };
    let local = match (&args.nats, &access) {
        (Some(_), _) => None,
        (None, Some(access)) => Some(LocalNats::start_secured(&nats_directory, access).await?),
        (None, None) => {
            eprintln!(
                "switchboard: --insecure-local: NATS has no users; any process on this machine \
                 can read every contact and write into the logs"
            );
            Some(LocalNats::start(&nats_directory).await?)
        }
    };
    let url = match (&args.nats, &local) {
        (Some(url), _) => url.clone(),
        (None, Some(local)) => local.url.clone(),
        (None, None) => unreachable!("a local server is started when no URL is given"),
    };
    let outcome = run_services(&args, &url, access.as_ref(), shutdown, demo).await;
    if let Some(local) = local {
        local.stop().await;
    }
    outcome
}

async fn run_services(
    args: &UpArgs,
    url: &str,
    access: Option<&LocalAccess>,
    shutdown: CancellationToken,
    demo: Option<Companion>,
) -> anyhow::Result<()> {
    let connection = fleet_connection(args, url, access)?;
    let state = args.data.join("state");
    // One listener for every service's /metrics, /health and /ready; the
    // recorder goes in before any service makes its metric handles.
    let metrics_listener = match args.metrics_addr {
        Some(address) => {
            plumbing::prometheus::install()?;
            Some(plumbing::observe::bind(address).await?)
        }
        None => None,
    };
    let metrics_address = match &metrics_listener {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };

    // The links in email sign volunteers in with the gateway's own tokens.
    let mut gateway_config = gateway::GatewayConfig::from_secret_or_file(
        args.access.gateway_secret.as_deref(),
        &args.data.join("gateway-secret"),
        !args.access.invite_only,
    )?;
    // Minted links name the configured public URL, never a request's Host.
    gateway_config.public_url = args.mail.public_url.clone();
    // A link in a proposal's email must still work when the volunteer
    // answers near the end of their time to answer; it still signs in once.
    let email_link_age = std::time::Duration::from_secs(
        u64::try_from(args.lifecycle.response_window_hours.max(1)).unwrap_or(1) * 3600,
    )
    .max(std::time::Duration::from_secs(
        gateway::access::LINK_AGE_S_DEFAULT,
    ));
    let gateway_tokens = gateway_config.tokens()?.with_link_age(email_link_age);
    let volunteer_sign_in: dispatch::VolunteerSignIn =
        std::sync::Arc::new(move |volunteer: &str| {
            gateway_tokens.mint_link(&gateway::access::Principal::Volunteer(volunteer.to_owned()))
        });
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| {
            format!(
                "the gateway cannot listen on {} (use --http ADDR)",
                args.http
            )
        })?;
    let coordinator_link = gateway_config.coordinator_link(args.http)?;
    let callout = callout_config(access, &gateway_config)?;
    let mut fleet = Fleet::new(connection, args.time.clock())
        .ingest(ingest::IngestConfig {
            state_directory: Some(state.join("ingest")),
            declared_trust: args.trust.declared(),
        })
        .solver(solver::SolverConfig {
            state_directory: Some(state.join("solver")),
            match_budget: Duration::from_millis(args.match_budget_ms),
            response_window: chrono::Duration::hours(args.lifecycle.response_window_hours),
            trust_source: args.trust.into(),
            priorities: args.priorities.priorities()?,
            ..solver::SolverConfig::default()
        })
        .ledger(ledger::LedgerConfig {
            state_directory: Some(state.join("ledger")),
            ..ledger::LedgerConfig::default()
        })
        .dispatch(dispatch::DispatchConfig {
            state_directory: Some(state.join("dispatch")),
            checkin_window: chrono::Duration::hours(args.lifecycle.checkin_window_hours),
            smtp: crate::services::smtp_config(
                &args.mail,
                Some(volunteer_sign_in),
                Some(format!("http://{}", args.http)),
            )?,
        })
        .gateway(gateway_config, listener);
    if let Some(callout) = callout {
        fleet = fleet.callout(callout);
    }
    if let Some(listener) = metrics_listener {
        fleet = fleet.observe_on(listener);
    }
    let mut running = fleet.start(&shutdown).await?;

    println!(
        "switchboard is up: NATS {url}, HTTP http://{} (GET /api/plan, GET /api/stream), data {}. Ctrl-C stops.",
        args.http,
        args.data.display()
    );
    println!("coordinators sign in at {coordinator_link}");
    if access.is_some() {
        println!(
            "NATS asks who you are: the CLI logs in with --nats-user {ADMIN_USER} --nats-password-file {}; \
             people with their session token as the connection's token",
            args.data.join("nats").join(ADMIN_PASSWORD_FILE).display()
        );
    }
    if let Some(address) = metrics_address {
        println!("metrics at http://{address}/metrics, readiness at /ready");
    }
    if !args.quiet {
        let context = running.client_context("sb-watch").await?;
        let token = running.token().clone();
        running.spawn("watch", crate::watch::print_stream(context, true, token));
    }
    if let Some(demo) = demo.filter(|_| args.demo) {
        let context = running.client_context("sb-demo").await?;
        let token = running.token().clone();
        running.spawn("demo", demo(context, token));
    }
    running.until_stopped().await
}

/// The services' connection: on `up`'s secured server each service as its
/// own user, and the watch and the demo, run beside them, as the local
/// administrator.
fn fleet_connection(
    args: &UpArgs,
    url: &str,
    access: Option<&LocalAccess>,
) -> anyhow::Result<crate::fleet::Connection> {
    let mut connection = crate::services::connection(&Connection {
        url: url.to_owned(),
        prefix: args.prefix.clone(),
        auth: Default::default(),
        replicas: args.replicas,
    })?;
    if let Some(access) = access {
        for service in Service::ALL {
            let user = service.user();
            connection
                .users
                .insert(user.clone(), access.credentials(&user)?);
        }
        connection.credentials = access.credentials(ADMIN_USER)?;
    }
    Ok(connection)
}

/// The auth callout of `up`'s secured server, checking the gateway's tokens.
fn callout_config(
    access: Option<&LocalAccess>,
    gateway_config: &gateway::GatewayConfig,
) -> anyhow::Result<Option<gateway::callout::CalloutConfig>> {
    let Some(access) = access else {
        return Ok(None);
    };
    Ok(Some(gateway::callout::CalloutConfig {
        issuer_seed: access.issuer_seed.clone(),
        account: ACCOUNT.to_owned(),
        tokens: gateway_config.tokens()?,
        connection_age: std::time::Duration::from_secs(gateway::callout::CONNECTION_AGE_S_DEFAULT),
    }))
}
