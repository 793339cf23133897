//! Each service run alone, as its own process: connect, then `run`.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use plumbing::observe::Probe;
use tokio_util::sync::CancellationToken;

use crate::cli::{
    Connection, DispatchArgs, GatewayArgs, LedgerArgs, LinkArgs, LinkRole, MailArgs, ServiceArgs,
    SolverArgs,
};

pub async fn context(
    connection: &Connection,
    client_name: &str,
    clock: plumbing::Clock,
) -> anyhow::Result<plumbing::Context> {
    let subjects = proto::subjects::Subjects::new(&connection.prefix).context("--prefix")?;
    let replication =
        plumbing::streams::Replication::new(connection.replicas).context("--replicas")?;
    let credentials = connection.auth.credentials()?;
    let client = plumbing::nats::connect_as(&connection.url, client_name, &credentials).await?;
    Ok(plumbing::Context::new(client, subjects, clock).with_replication(replication))
}

/// Runs `service` while serving `/metrics`, `/health` and `/ready` for
/// `probes` on `address`, when one is given. The recorder is installed
/// before the service starts: metric handles made before it would record
/// nothing.
pub async fn observed(
    address: Option<SocketAddr>,
    probes: Vec<Probe>,
    shutdown: CancellationToken,
    service: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let Some(address) = address else {
        return service.await;
    };
    plumbing::prometheus::install()?;
    let listener = plumbing::observe::bind(address).await?;
    let serving = shutdown.child_token();
    let server = tokio::spawn(plumbing::observe::serve(listener, probes, serving.clone()));
    let outcome = service.await;
    serving.cancel();
    match server.await {
        Ok(Err(error)) => {
            tracing::warn!(error = %format!("{error:#}"), "the metrics listener failed")
        }
        Err(error) => tracing::warn!(%error, "the metrics listener panicked"),
        Ok(Ok(())) => {}
    }
    outcome
}

pub async fn ingest(args: ServiceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let context = context(&args.connection, "sb-ingest", args.time.clock()).await?;
    let probes = vec![Probe::new("ingest", &context)];
    let config = ingest::IngestConfig {
        state_directory: args.state,
    };
    observed(
        args.metrics_addr,
        probes,
        shutdown.clone(),
        ingest::run(context, config, shutdown),
    )
    .await
}

pub async fn solver(args: SolverArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = args.service;
    let (sharding, lease) = args.scale_out.configs()?;
    let context = context(&service.connection, "sb-solver", service.time.clock()).await?;
    let config = solver::SolverConfig {
        state_directory: service.state,
        match_budget: std::time::Duration::from_millis(args.match_budget_ms),
        response_window: chrono::Duration::hours(args.lifecycle.response_window_hours),
        trust_source: args.trust.into(),
        priorities: args.priorities.priorities()?,
        sharding,
        lease,
        ..solver::SolverConfig::default()
    };
    let probes = vec![Probe::new("solver", &context)];
    observed(
        service.metrics_addr,
        probes,
        shutdown.clone(),
        solver::run(context, config, shutdown),
    )
    .await
}

pub async fn dispatch(args: DispatchArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = args.service;
    let context = context(&service.connection, "sb-dispatch", service.time.clock()).await?;
    let config = dispatch::DispatchConfig {
        state_directory: service.state,
        checkin_window: chrono::Duration::hours(args.lifecycle.checkin_window_hours),
        // Alone, dispatch does not know the gateway's secret: its links
        // go to the volunteer page, which asks for a sign-in link.
        smtp: smtp_config(&args.mail, None, None)?,
    };
    let probes = vec![Probe::new("dispatch", &context)];
    observed(
        service.metrics_addr,
        probes,
        shutdown.clone(),
        dispatch::run(context, config, shutdown),
    )
    .await
}

pub async fn ledger(args: LedgerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = args.service;
    let context = context(&service.connection, "sb-ledger", service.time.clock()).await?;
    let config = ledger::LedgerConfig {
        state_directory: service.state,
        release_grace: chrono::Duration::hours(args.release_grace_hours),
    };
    ledger::run(context, config, shutdown).await
}

/// Dispatch's email configuration, when `--smtp-host` is given. Links go
/// to `--public-url`, else to `default_public_url`; one of them is needed.
pub fn smtp_config(
    mail: &MailArgs,
    volunteer_sign_in: Option<dispatch::VolunteerSignIn>,
    default_public_url: Option<String>,
) -> anyhow::Result<Option<dispatch::SmtpConfig>> {
    let Some(host) = &mail.smtp_host else {
        return Ok(None);
    };
    let public_url = mail
        .public_url
        .clone()
        .or(default_public_url)
        .context("--smtp-host needs --public-url: the gateway's address for links in email")?;
    Ok(Some(dispatch::SmtpConfig {
        host: host.clone(),
        port: mail.smtp_port,
        from: mail.smtp_from.clone(),
        public_url,
        volunteer_sign_in,
    }))
}

pub async fn gateway(args: GatewayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let context = context(&args.connection, "sb-gateway", plumbing::Clock::system()).await?;
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("listening on {}", args.http))?;
    let config = gateway::GatewayConfig::from_secret_or_file(
        args.access.gateway_secret.as_deref(),
        &args.gateway_secret_file,
        !args.access.invite_only,
    )?;
    println!(
        "coordinators sign in at {}",
        config.coordinator_link(args.http)?
    );
    let probes = vec![Probe::new("gateway", &context)];
    observed(
        args.metrics_addr,
        probes,
        shutdown.clone(),
        gateway::run(context, config, listener, shutdown),
    )
    .await
}

/// Prints a vetter's or the coordinators' sign-in link, signed with the
/// gateway's existing secret (never a new one: that would sign everyone out).
pub fn link(args: LinkArgs) -> anyhow::Result<()> {
    let secret = match &args.gateway_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => std::fs::read(&args.gateway_secret_file).with_context(|| {
            format!(
                "reading the gateway's secret from {} (start the gateway first, or pass --gateway-secret)",
                args.gateway_secret_file.display()
            )
        })?,
    };
    let config = gateway::GatewayConfig::new(secret);
    let link = match (args.role, &args.id) {
        (LinkRole::Vetter, Some(id)) => config.vetter_link(&args.public_url, id)?,
        (LinkRole::Vetter, None) => anyhow::bail!("a vetter's link needs the vetter's id"),
        (LinkRole::Coordinator, _) => format!(
            "{}/signin?token={}",
            args.public_url.trim_end_matches('/'),
            config.coordinator_token()?
        ),
    };
    println!("{link}");
    Ok(())
}
