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
//! Consumes: `SB_MATCHES`. Produces: requests on `sb.in.*` and `sb.plan.get`.

use std::convert::Infallible;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use proto::subjects::Input;
use proto::validate::PAYLOAD_BYTES_MAX;
use proto::wire::{ErrorBody, ErrorCode, Reply};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use plumbing::Context;

/// Seconds between keep-alive comments on an idle event stream.
pub const STREAM_KEEP_ALIVE_S: u64 = 15;
/// The gateway takes a little more than the services do, so an oversized
/// body gets the services' own `too_large` reply rather than a bare 413.
pub const HTTP_BODY_BYTES_MAX: usize = PAYLOAD_BYTES_MAX + 1024;

#[derive(Clone)]
struct Gateway {
    context: Context,
    /// Ends open event streams at shutdown, which would otherwise hold the
    /// graceful shutdown open for as long as a dashboard stays open.
    shutdown: CancellationToken,
}

/// The router, for tests and for embedding.
pub fn router(context: Context, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/plan", get(plan))
        .route("/api/stream", get(stream))
        .route("/api/{operation}", post(forward))
        .layer(DefaultBodyLimit::max(HTTP_BODY_BYTES_MAX))
        .with_state(Gateway { context, shutdown })
}

/// Serves HTTP on `listener` until `shutdown` is cancelled.
pub async fn run(
    context: Context,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    plumbing::streams::ensure(
        &context.jetstream,
        &context.subjects,
        plumbing::streams::Replication::default(),
    )
    .await?;
    tracing::info!(address = %listener.local_addr()?, "gateway ready");
    axum::serve(listener, router(context, shutdown.clone()))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("gateway stopped");
    Ok(())
}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unauthorized => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn refusal(code: ErrorCode, field: Option<&str>, message: String) -> Response {
    let reply = Reply::refused(ErrorBody::new(code, field.map(str::to_owned), message));
    (status_of(code), Json(reply)).into_response()
}

fn operation_input(operation: &str) -> Option<Input> {
    Input::ALL
        .into_iter()
        .find(|input| input.token() == operation)
}

/// `POST /api/{volunteer|need|pledge|withdraw|reply|complete}`.
#[tracing::instrument(name = "gateway.forward", skip_all, fields(operation = %operation))]
async fn forward(
    State(gateway): State<Gateway>,
    Path(operation): Path<String>,
    body: Bytes,
) -> Response {
    let Some(input) = operation_input(&operation) else {
        return refusal(
            ErrorCode::NotFound,
            None,
            format!("no operation {operation:?}"),
        );
    };
    let subject = gateway.context.subjects.input(input);
    match gateway.context.client.request(subject, body).await {
        Ok(message) => match serde_json::from_slice::<Reply>(&message.payload) {
            Ok(reply) => {
                let status = reply
                    .error
                    .as_ref()
                    .map(|error| status_of(error.code))
                    .unwrap_or(StatusCode::OK);
                (status, Json(reply)).into_response()
            }
            Err(error) => refusal(
                ErrorCode::Unavailable,
                None,
                format!("the service gave an unreadable reply: {error}"),
            ),
        },
        Err(error) => refusal(
            ErrorCode::Unavailable,
            None,
            format!("the switchboard did not answer: {error}"),
        ),
    }
}

/// `GET /api/plan`: the current `switchboard-plan/1`.
async fn plan(State(gateway): State<Gateway>) -> Response {
    let subject = gateway.context.subjects.plan_get();
    match gateway
        .context
        .client
        .request(subject, Bytes::from_static(b"{}"))
        .await
    {
        Ok(message) => match serde_json::from_slice::<serde_json::Value>(&message.payload) {
            Ok(plan) => Json(plan).into_response(),
            Err(error) => refusal(
                ErrorCode::Unavailable,
                None,
                format!("the solver gave an unreadable plan: {error}"),
            ),
        },
        Err(error) => refusal(
            ErrorCode::Unavailable,
            None,
            format!("the solver did not answer: {error}"),
        ),
    }
}

#[derive(Deserialize)]
struct StreamQuery {
    /// Resume after this sequence of `SB_MATCHES` (0 or absent: from the start).
    #[serde(default)]
    since: Option<u64>,
}

/// `GET /api/stream`: every match event as an SSE event named after its
/// kind, with the stream sequence as its id.
async fn stream(
    State(gateway): State<Gateway>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Response> {
    let resume_after = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .or(query.since)
        .unwrap_or(0);
    let deliver_policy = if resume_after == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: resume_after + 1,
        }
    };
    let subjects = gateway.context.subjects.clone();
    let unavailable = |error: String| refusal(ErrorCode::Unavailable, None, error);
    let handle = gateway
        .context
        .jetstream
        .get_stream(subjects.matches_stream())
        .await
        .map_err(|error| unavailable(format!("the match stream is unavailable: {error}")))?;
    let consumer = handle
        .create_consumer(OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|error| unavailable(format!("cannot follow the match stream: {error}")))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|error| unavailable(format!("cannot follow the match stream: {error}")))?;
    let events = messages
        .take_until(gateway.shutdown.clone().cancelled_owned())
        .filter_map(move |message| {
            let subjects = subjects.clone();
            async move {
                let message = message.ok()?;
                let sequence = message.info().ok()?.stream_sequence;
                let kind = subjects.parse_match(&message.subject)?;
                let data = String::from_utf8_lossy(&message.payload).into_owned();
                Some(Ok(SseEvent::default()
                    .event(kind.token())
                    .id(sequence.to_string())
                    .data(data)))
            }
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(STREAM_KEEP_ALIVE_S))))
}

/// `GET /health`: 200 when NATS is connected and the streams answer.
async fn health(State(gateway): State<Gateway>) -> Response {
    let connected =
        gateway.context.client.connection_state() == async_nats::connection::State::Connected;
    let streams_ok = connected
        && plumbing::streams::last_sequence(
            &gateway.context.jetstream,
            &gateway.context.subjects.events_stream(),
        )
        .await
        .is_ok();
    let body = serde_json::json!({
        "status": if streams_ok { "ok" } else { "unavailable" },
        "nats": if connected { "connected" } else { "disconnected" },
        "streams": if streams_ok { "ok" } else { "unavailable" },
    });
    let status = if streams_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
