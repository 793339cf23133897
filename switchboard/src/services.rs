//! Each service run alone, as its own process: a fleet of one.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::fleet::{Connection as FleetConnection, Fleet};

use crate::cli::{
    CalloutArgs, Connection, DispatchArgs, GatewayArgs, IngestArgs, LedgerArgs, LinkArgs, LinkRole,
    MailArgs, SolverArgs,
};

/// The services' connection as the command line gives it.
pub fn connection(connection: &Connection) -> anyhow::Result<FleetConnection> {
    Ok(FleetConnection {
        url: connection.url.clone(),
        subjects: proto::subjects::Subjects::new(&connection.prefix).context("--prefix")?,
        credentials: connection.auth.credentials()?,
        users: std::collections::BTreeMap::new(),
        replication: plumbing::streams::Replication::new(connection.replicas)
            .context("--replicas")?,
    })
}

/// A client's context (`watch`, the tools): its own connection.
pub async fn context(
    connection: &Connection,
    client_name: &str,
    clock: plumbing::Clock,
) -> anyhow::Result<plumbing::Context> {
    self::connection(connection)?
        .context(client_name, clock)
        .await
}

/// Runs a fleet of one service, serving `/metrics`, `/health` and
/// `/ready` on `metrics_addr` when one is given. The recorder is
/// installed before the service starts: metric handles made before it
/// would record nothing.
async fn alone(
    fleet: Fleet,
    metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let fleet = match metrics_addr {
        Some(address) => {
            plumbing::prometheus::install()?;
            fleet.observe_on(plumbing::observe::bind(address).await?)
        }
        None => fleet,
    };
    fleet.start(&shutdown).await?.until_stopped().await
}

pub async fn ingest(args: IngestArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = args.service;
    let fleet = Fleet::new(connection(&service.connection)?, service.time.clock()).ingest(
        ingest::IngestConfig {
            state_directory: service.state,
            declared_trust: args.trust.declared(),
        },
    );
    alone(fleet, service.metrics_addr, shutdown).await
}

pub async fn solver(args: SolverArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = args.service;
    let (sharding, lease) = args.scale_out.configs()?;
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
    let fleet = Fleet::new(connection(&service.connection)?, service.time.clock()).solver(config);
    alone(fleet, service.metrics_addr, shutdown).await
}

pub async fn dispatch(args: DispatchArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = args.service;
    let config = dispatch::DispatchConfig {
        state_directory: service.state,
        checkin_window: chrono::Duration::hours(args.lifecycle.checkin_window_hours),
        // Alone, dispatch does not know the gateway's secret: its links
        // go to the volunteer page, which asks for a sign-in link.
        smtp: smtp_config(&args.mail, None, None)?,
    };
    let fleet = Fleet::new(connection(&service.connection)?, service.time.clock()).dispatch(config);
    alone(fleet, service.metrics_addr, shutdown).await
}

pub async fn ledger(args: LedgerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = args.service;
    let config = ledger::LedgerConfig {
        state_directory: service.state,
        release_grace: chrono::Duration::hours(args.release_grace_hours),
    };
    let fleet = Fleet::new(connection(&service.connection)?, service.time.clock()).ledger(config);
    alone(fleet, service.metrics_addr, shutdown).await
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
    let fleet = Fleet::new(connection(&args.connection)?, plumbing::Clock::system())
        .gateway(config, listener);
    alone(fleet, args.metrics_addr, shutdown).await
}

/// The auth callout alone, beside a server whose `auth_callout` names
/// its key (`nats-users --callout` writes both).
pub async fn callout(args: CalloutArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let seed = std::fs::read_to_string(&args.issuer_seed_file).with_context(|| {
        format!(
            "--issuer-seed-file: reading {}",
            args.issuer_seed_file.display()
        )
    })?;
    gateway::callout::issuer_public_key(&seed).context("--issuer-seed-file")?;
    let secret = match &args.gateway_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => std::fs::read(&args.gateway_secret_file).with_context(|| {
            format!(
                "--gateway-secret-file: reading {} (the gateway's; the callout never makes one)",
                args.gateway_secret_file.display()
            )
        })?,
    };
    let config = gateway::callout::CalloutConfig {
        issuer_seed: seed.trim().to_owned(),
        account: args.account,
        tokens: gateway::GatewayConfig::new(secret).tokens()?,
        connection_age: std::time::Duration::from_secs(args.connection_age_s),
    };
    let fleet =
        Fleet::new(connection(&args.connection)?, plumbing::Clock::system()).callout(config);
    alone(fleet, args.metrics_addr, shutdown).await
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
