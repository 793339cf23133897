//! The HTTP gateway: the switchboard for people and programs that do not
//! speak NATS.
//!
//! Every ingest operation is a JSON POST that is forwarded, body untouched,
//! as a NATS request to the same subject a NATS client would use, so the
//! validation and the error bodies are exactly the services' own; the HTTP
//! status follows the error code. `GET /api/plan` asks the solver;
//! `GET /api/stream` serves the match stream as server-sent events, replayed
//! from `SB_MATCHES` (so a page opened late sees the day) and resumable with
//! `Last-Event-ID`; `GET /health` says whether NATS and the streams answer.
//!
//! People use pages compiled into the binary ([`pages`], their HTML written
//! with maud in [`templates`]): the coordinators' dashboard, a collective's
//! page, a volunteer's page and a vetter's, fed by per-role views
//! ([`views`]) of an in-memory read model ([`model`]) that follows
//! `SB_EVENTS` and `SB_MATCHES` ([`follow`]).
//! Every `/api` route but registration and the API document requires a
//! signed token ([`access`]) and answers only what its principal may see.
//!
//! Every route is a row of one table ([`routes`]); the router and the
//! OpenAPI 3.1 document ([`openapi`], `GET /api/openapi.json`) are both
//! built from it, the document's schemas derived from the bodies' types.
//!
//! Money views ([`money`]) fold `SB_LEDGER`: a donor's page (signed in for
//! one pledge), a collective's funded and waiting tasks, the coordinators'
//! pool, stranded restrictions and transparency report, and a CSV export.
//!
//! Consumes: `SB_EVENTS`, `SB_MATCHES`, `SB_LEDGER`. Produces: requests on `sb.in.*`
//! and `sb.plan.get`.

pub mod access;
mod api;
pub mod audit;
pub mod callout;
pub mod charts;
mod follow;
pub mod limits;
pub mod model;
pub mod money;
mod openapi;
mod pages;
mod revocation;
mod routes;
mod templates;
pub mod views;

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use proto::validate::PAYLOAD_BYTES_MAX;
use proto::wire::{ErrorBody, ErrorCode, Reply};
use tokio_util::sync::CancellationToken;

use access::Tokens;
use model::ReadModel;
use plumbing::Context;

/// Seconds between keep-alive comments on an idle event stream.
pub const STREAM_KEEP_ALIVE_S: u64 = 15;
/// The gateway takes a little more than the services do, so an oversized
/// body gets the services' own `too_large` reply rather than a bare 413.
pub const HTTP_BODY_BYTES_MAX: usize = PAYLOAD_BYTES_MAX + 1024;
/// Bytes of a secret the gateway makes for itself when none is given.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// Every route the gateway serves, as (method, path), read from the one
/// route table the router and the OpenAPI document are built from. A unit
/// test checks the document describes each and nothing else; an
/// integration test calls each.
pub const ROUTES: &[(&str, &str)] = &routes::methods_and_paths::<{ routes::TABLE.len() }>();

/// What the gateway needs besides NATS: the secret its sign-in tokens are
/// signed with, and whether strangers may register as volunteers.
#[derive(Clone)]
pub struct GatewayConfig {
    /// At least [`access::SECRET_BYTES_MIN`] bytes. Every gateway of one
    /// switchboard shares it; changing it signs everyone out.
    pub secret: Vec<u8>,
    /// Anyone may offer time through the landing page and get their own
    /// volunteer link (a movement recruits in the open); when false, only
    /// links a coordinator mints let volunteers in.
    pub open_registration: bool,
    /// Per-client request allowances ([`limits`]).
    pub rate_limits: limits::RateLimits,
    /// The URL people reach the gateway at (`https://switchboard.example.org`):
    /// minted links are built from it, never from a request's `Host`
    /// header, and cookies are `Secure` when it is `https://`. `None` only
    /// for tests and a local `up`, where links name the request's host.
    pub public_url: Option<String>,
    /// How long a sign-in link may be used, in seconds (exchanged once for
    /// a session that lives [`access::SESSION_AGE_S`]).
    pub link_age_s: u64,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GatewayConfig")
            .field("secret", &"<hidden>")
            .field("open_registration", &self.open_registration)
            .field("rate_limits", &self.rate_limits)
            .field("public_url", &self.public_url)
            .field("link_age_s", &self.link_age_s)
            .finish()
    }
}

impl GatewayConfig {
    pub fn new(secret: impl Into<Vec<u8>>) -> GatewayConfig {
        GatewayConfig {
            secret: secret.into(),
            open_registration: true,
            rate_limits: limits::RateLimits::default(),
            public_url: None,
            link_age_s: access::LINK_AGE_S_DEFAULT,
        }
    }

    /// The token checker and minter for this secret.
    pub fn tokens(&self) -> anyhow::Result<Tokens> {
        Ok(Tokens::new(&self.secret)?
            .with_link_age(std::time::Duration::from_secs(self.link_age_s)))
    }

    /// The coordinators' token, which `switchboard up` prints at start.
    pub fn coordinator_token(&self) -> anyhow::Result<String> {
        Ok(self.tokens()?.mint_link(&access::Principal::Coordinator))
    }

    /// The configuration of `switchboard up` and `switchboard gateway`:
    /// the secret given, or else the one kept in `secret_file`.
    pub fn from_secret_or_file(
        secret: Option<&str>,
        secret_file: &Path,
        open_registration: bool,
    ) -> anyhow::Result<GatewayConfig> {
        let secret = match secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => GatewayConfig::secret_from_file(secret_file)?,
        };
        let config = GatewayConfig {
            secret,
            open_registration,
            rate_limits: limits::RateLimits::default(),
            public_url: None,
            link_age_s: access::LINK_AGE_S_DEFAULT,
        };
        // Refuse a short secret at start rather than at the first request.
        config.tokens()?;
        Ok(config)
    }

    /// A vetter's sign-in link for a gateway reached at `base_url`. Only the
    /// holder of the secret mints these (coordinators cannot).
    pub fn vetter_link(&self, base_url: &str, id: &str) -> anyhow::Result<String> {
        anyhow::ensure!(
            proto::ids::is_valid_id(id),
            "vetter id {id:?} must match [A-Za-z0-9_-]{{1,64}}"
        );
        let token = self
            .tokens()?
            .mint_link(&access::Principal::Vetter(id.to_owned()));
        Ok(format!(
            "{}/signin?token={token}",
            base_url.trim_end_matches('/')
        ))
    }

    /// The coordinators' sign-in link on a gateway listening at `address`.
    pub fn coordinator_link(&self, address: std::net::SocketAddr) -> anyhow::Result<String> {
        Ok(format!(
            "http://{address}/signin?token={}",
            self.coordinator_token()?
        ))
    }

    /// The secret kept in `path`, made from the operating system's random
    /// source on first use, so sign-in links survive restarts of `up`.
    pub fn secret_from_file(path: &Path) -> anyhow::Result<Vec<u8>> {
        if let Ok(existing) = std::fs::read(path) {
            return Ok(existing);
        }
        let mut secret = vec![0u8; GENERATED_SECRET_BYTES];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
            &mut secret,
        )
        .context("reading /dev/urandom")?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // Only the switchboard's user may read the key every token is sealed with.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SECRET_FILE_MODE)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut file, &secret)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(secret)
    }
}

/// The gateway secret's file mode: owner read and write only.
const SECRET_FILE_MODE: u32 = 0o600;

/// Shared by every handler.
#[derive(Clone)]
struct Gateway {
    context: Context,
    /// Ends open event streams at shutdown, which would otherwise hold the
    /// graceful shutdown open for as long as a dashboard stays open.
    shutdown: CancellationToken,
    tokens: Tokens,
    /// Revoked and exchanged tokens, shared by every instance.
    revocations: revocation::Revocations,
    /// People's data keys: a person's own page opens their sealed fields.
    people: plumbing::people::PeopleKeys,
    open_registration: bool,
    /// [`GatewayConfig::public_url`], without a trailing slash.
    public_url: Option<String>,
    /// Cookies carry `Secure`: the public URL is `https://`.
    secure_cookies: bool,
    model: Arc<RwLock<ReadModel>>,
    /// The model's version (stream positions applied), for read-your-writes.
    applied: tokio::sync::watch::Receiver<follow::Applied>,
    /// Counts registrations, one input of a fresh volunteer id.
    registrations: Arc<std::sync::atomic::AtomicU64>,
    /// The OpenAPI document, generated once when the router is built.
    openapi: Bytes,
}

/// The router, for tests and for embedding: it follows the streams into its
/// read model from the moment it is built, until `shutdown`.
pub fn router(
    context: Context,
    config: &GatewayConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Router> {
    let openapi = openapi::document_bytes()?;
    let model = Arc::new(RwLock::new(ReadModel::default()));
    let applied = follow::spawn(context.clone(), model.clone(), shutdown.clone());
    // One revocation set for the handlers and the rate limiter.
    let tokens = config.tokens()?;
    let limiters = limits::Limiters::new(config.rate_limits, tokens.clone())?;
    limiters.spawn_forgetting(shutdown.clone());
    let revocations = revocation::Revocations::new(context.clone());
    revocations.spawn_following(tokens.clone(), shutdown.clone());
    let gateway = Gateway {
        people: plumbing::people::PeopleKeys::new(context.clone()),
        tokens,
        revocations,
        open_registration: config.open_registration,
        public_url: config
            .public_url
            .as_deref()
            .map(|url| url.trim_end_matches('/').to_owned()),
        secure_cookies: config
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://")),
        context,
        shutdown,
        model,
        applied,
        registrations: Arc::default(),
        openapi,
    };
    let routes = routes::TABLE.iter().fold(Router::new(), |router, route| {
        router.route(route.path, route.method_router())
    });
    Ok(routes
        .layer(DefaultBodyLimit::max(HTTP_BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            limiters,
            limits::limit,
        ))
        .layer(axum::middleware::from_fn(measure))
        .with_state(gateway))
}

/// Counts and times each request by its route (the pattern, not the path,
/// so the labels stay few): `switchboard_gateway_http_requests_total` and
/// `switchboard_gateway_http_request_duration_seconds`.
async fn measure(
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = matched
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("switchboard_gateway_http_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("switchboard_gateway_http_requests_total", "route" => route, "status" => status)
        .increment(1);
    response
}

/// Serves HTTP on `listener` until `shutdown` is cancelled.
pub async fn run(
    context: Context,
    config: GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    plumbing::streams::ensure(&context.jetstream, &context.subjects, context.replication).await?;
    let router = router(context, &config, shutdown.clone())?;
    tracing::info!(address = %listener.local_addr()?, "gateway ready");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await?;
    tracing::info!("gateway stopped");
    Ok(())
}

pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unauthorized => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

pub(crate) fn refusal(code: ErrorCode, field: Option<&str>, message: String) -> Response {
    let reply = Reply::refused(ErrorBody::new(code, field.map(str::to_owned), message));
    (status_of(code), Json(reply)).into_response()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::GatewayConfig;

    #[test]
    fn a_generated_secret_file_is_readable_by_its_owner_only() {
        let path = std::env::temp_dir().join(format!(
            "switchboard-gateway-secret-test-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let secret = GatewayConfig::secret_from_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // Read back the same on the next start.
        assert_eq!(GatewayConfig::secret_from_file(&path).unwrap(), secret);
        std::fs::remove_file(&path).unwrap();
    }
}
