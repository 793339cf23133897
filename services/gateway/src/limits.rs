//! Per-client rate limits: a burst, then a steady rate, per client address
//! and sign-in (GCRA through `governor`), so one client cannot flood NATS
//! with writes, brute-force tokens or register a crowd of fake volunteers,
//! while the people behind one address (a union hall's wifi) keep their own
//! allowance each once signed in.
//!
//! Three classes, each with its own limiter:
//! - `register`: `POST /api/register`, by address only; the tightest, since
//!   anyone may call it and each call makes a volunteer.
//! - `signed`: requests with a valid token, by address and principal.
//! - `anonymous`: everything else (pages, assets, health, refused tokens),
//!   by address, so guessing tokens is slow.
//!
//! A refused request gets 429 with `Retry-After` and the contract's error
//! body (code `unavailable`). Behind a reverse proxy every client shares the
//! proxy's address; raise the limits there or limit at the proxy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use proto::wire::ErrorCode;

use crate::access::{token_of, Principal, Tokens};

/// Requests a signed-in client may make at once, then per second.
pub const SIGNED_BURST: u32 = 120;
pub const SIGNED_PER_SECOND: u32 = 30;
/// Requests an anonymous client may make at once, then per second.
pub const ANONYMOUS_BURST: u32 = 60;
pub const ANONYMOUS_PER_SECOND: u32 = 10;
/// Registrations per address at once, then per hour.
pub const REGISTER_BURST: u32 = 10;
pub const REGISTER_PER_HOUR: u32 = 30;
/// How often the limiters forget clients that have gone quiet, so memory
/// stays bounded by the clients of the last few minutes.
const FORGET_EVERY_S: u64 = 60;

/// One class of requests: a burst, then one more request every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub burst: u32,
    pub interval: Duration,
}

impl Allowance {
    pub const fn per_second(burst: u32, per_second: u32) -> Allowance {
        Allowance {
            burst,
            interval: Duration::from_nanos(1_000_000_000 / per_second as u64),
        }
    }

    fn quota(self) -> Option<Quota> {
        Quota::with_period(self.interval)
            .map(|quota| quota.allow_burst(NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN)))
    }
}

/// The gateway's rate limits; `None` turns limiting off (benchmarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub signed: Allowance,
    pub anonymous: Allowance,
    pub register: Allowance,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            signed: Allowance::per_second(SIGNED_BURST, SIGNED_PER_SECOND),
            anonymous: Allowance::per_second(ANONYMOUS_BURST, ANONYMOUS_PER_SECOND),
            register: Allowance {
                burst: REGISTER_BURST,
                interval: Duration::from_secs(3600 / REGISTER_PER_HOUR as u64),
            },
        }
    }
}

/// Who is counted: the client's address, and their principal if signed in.
type Key = (IpAddr, Option<Principal>);

/// The limiters of one gateway, shared by its requests.
#[derive(Clone)]
pub struct Limiters {
    tokens: Tokens,
    signed: Arc<DefaultKeyedRateLimiter<Key>>,
    anonymous: Arc<DefaultKeyedRateLimiter<Key>>,
    register: Arc<DefaultKeyedRateLimiter<Key>>,
}

impl Limiters {
    pub fn new(limits: RateLimits, tokens: Tokens) -> anyhow::Result<Limiters> {
        let limiter = |allowance: Allowance, class: &str| {
            allowance
                .quota()
                .map(|quota| Arc::new(RateLimiter::keyed(quota)))
                .ok_or_else(|| {
                    anyhow::anyhow!("rate limit {class}: the interval must be above zero")
                })
        };
        Ok(Limiters {
            tokens,
            signed: limiter(limits.signed, "signed")?,
            anonymous: limiter(limits.anonymous, "anonymous")?,
            register: limiter(limits.register, "register")?,
        })
    }

    /// Forgets quiet clients every minute until `shutdown`.
    pub fn spawn_forgetting(&self, shutdown: tokio_util::sync::CancellationToken) {
        let limiters = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(FORGET_EVERY_S));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        for limiter in [&limiters.signed, &limiters.anonymous, &limiters.register] {
                            limiter.retain_recent();
                            limiter.shrink_to_fit();
                        }
                    }
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// `Err(wait)` when this request is over its class's allowance.
    fn check(&self, request: &Request) -> Result<(), Duration> {
        let address = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        let (limiter, key) =
            if request.method() == Method::POST && request.uri().path() == "/api/register" {
                (&self.register, (address, None))
            } else {
                match token_of(request.headers()).and_then(|token| self.tokens.verify(token)) {
                    Some(principal) => (&self.signed, (address, Some(principal))),
                    None => (&self.anonymous, (address, None)),
                }
            };
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The middleware: counts the request against its class, or answers 429.
pub async fn limit(State(limiters): State<Limiters>, request: Request, next: Next) -> Response {
    match limiters.check(&request) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::debug!(seconds, path = %request.uri().path(), "gateway.rate_limited");
            let mut response = crate::refusal(
                ErrorCode::Unavailable,
                None,
                format!("too many requests from this client; retry in {seconds} s"),
            );
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response.into_response()
        }
    }
}
