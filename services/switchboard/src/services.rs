//! Each service run alone, as its own process: connect, then `run`.

use anyhow::Context as _;
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

pub async fn ingest(args: ServiceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let context = context(&args.connection, "sb-ingest", args.time.clock()).await?;
    ingest::run(
        context,
        ingest::IngestConfig {
            state_directory: args.state,
        },
        shutdown,
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
    solver::run(context, config, shutdown).await
}

pub async fn dispatch(args: DispatchArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = args.service;
    let context = context(&service.connection, "sb-dispatch", service.time.clock()).await?;
    dispatch::run(
        context,
        dispatch::DispatchConfig {
            state_directory: service.state,
            checkin_window: chrono::Duration::hours(args.lifecycle.checkin_window_hours),
            // Alone, dispatch does not know the gateway's secret: its links
            // go to the volunteer page, which asks for a sign-in link.
            smtp: smtp_config(&args.mail, None, None)?,
        },
        shutdown,
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
    gateway::run(context, config, listener, shutdown).await
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
