//! The JSON API under `/api`: the forwarded operations with their
//! per-role permissions, the views each role's page is drawn from, the
//! charts, links, registration, the plan and the match stream.
//!
//! Who may do what is decided here, before anything reaches NATS:
//! coordinators may do everything; a collective may post and withdraw only
//! its own needs and tasks and complete only its own tasks; a volunteer may
//! offer and withdraw only their own time and answer only their own
//! assignments. A request whose body names someone else is refused with 403
//! and never forwarded, so a refused request leaves no event.

// A refusal is a whole HTTP response, built at most once per request; boxing
// it to keep `Result` small would buy nothing measurable.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::sync::PoisonError;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{Stream, StreamExt};
use plumbing::trace::TraceParent;
use proto::events::MatchEvent;
use proto::ids::is_valid_id;
use proto::instance::Plan;
use proto::money::Disbursal;
use proto::subjects::Input;
use proto::validate::decode;
use proto::wire::{
    ErrorCode, NeedPost, Personal, PledgeOffer, Reply, TaskCompletion, Vetting, VolunteerOffer,
    VolunteerReply, WithdrawKind, Withdrawal,
};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::access::{sign_in_cookie, token_of, Principal};
use crate::charts::{self, Chart};
use crate::model::ReadModel;
use crate::{money, refusal, status_of, views, Gateway, STREAM_KEEP_ALIVE_S};

/// How long a write waits for the read model to show it, so the page that
/// made it sees it on its next read; past this the reply is sent anyway.
pub const READ_YOUR_WRITES_WAIT_MS: u64 = 3_000;
/// How long a view asked with `newer_than` waits for a change.
pub const VIEW_CHANGE_WAIT_S: u64 = 25;
/// How long a view waits for the solver's plan (for funding) before it is
/// drawn without it.
pub const PLAN_WAIT_MS: u64 = 2_000;

fn unauthenticated() -> Response {
    refusal(
        ErrorCode::Unauthorized,
        None,
        "sign in first: open your sign-in link, or send Authorization: Bearer <token>".to_owned(),
    )
    .map_status(StatusCode::UNAUTHORIZED)
}

fn forbidden(message: &str) -> Response {
    refusal(ErrorCode::Unauthorized, None, message.to_owned())
}

trait MapStatus {
    fn map_status(self, status: StatusCode) -> Response;
}

impl MapStatus for Response {
    fn map_status(mut self, status: StatusCode) -> Response {
        *self.status_mut() = status;
        self
    }
}

impl Gateway {
    /// The principal of a request, or the 401 to answer.
    fn principal(&self, headers: &HeaderMap) -> Result<Principal, Response> {
        token_of(headers)
            .and_then(|token| self.tokens.verify(token))
            .ok_or_else(unauthenticated)
    }

    /// A person's private fields, opened from `sealed` with their data key
    /// (`plumbing::people`): only for their own page; `None` once they
    /// asked to be forgotten.
    pub(crate) async fn personal(&self, person: &str, sealed: Option<&str>) -> Option<Personal> {
        let opened = match self.people.open(person, sealed?).await {
            Ok(opened) => opened?,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "reading a data key failed");
                return None;
            }
        };
        serde_json::from_slice(&opened).ok()
    }

    fn read<T>(&self, reader: impl FnOnce(&ReadModel) -> T) -> T {
        let model = self.model.read().unwrap_or_else(PoisonError::into_inner);
        reader(&model)
    }

    /// Waits until the read model has applied `SB_EVENTS` up to `sequence`.
    async fn wait_for_event(&self, sequence: u64) {
        let mut applied = self.applied.clone();
        let waited = tokio::time::timeout(
            Duration::from_millis(READ_YOUR_WRITES_WAIT_MS),
            applied.wait_for(|applied| applied.events >= sequence),
        )
        .await;
        if waited.is_err() {
            tracing::debug!(sequence, "read model lags behind a write");
        }
    }

    /// Waits until the read model has applied `SB_LEDGER` up to `sequence`.
    async fn wait_for_ledger(&self, sequence: u64) {
        let mut applied = self.applied.clone();
        let waited = tokio::time::timeout(
            Duration::from_millis(READ_YOUR_WRITES_WAIT_MS),
            applied.wait_for(|applied| applied.ledger >= sequence),
        )
        .await;
        if waited.is_err() {
            tracing::debug!(sequence, "read model lags behind a ledger write");
        }
    }

    /// Waits until the read model changes past `version` (bounded).
    async fn wait_for_change(&self, version: u64) {
        let mut applied = self.applied.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(VIEW_CHANGE_WAIT_S),
            applied.wait_for(|applied| applied.version() > version),
        )
        .await;
    }

    /// Waits for a change when the view was asked with `newer_than`.
    async fn wait_if_asked(&self, query: &ViewQuery) {
        if let Some(version) = query.newer_than {
            self.wait_for_change(version).await;
        }
    }

    fn version(&self) -> u64 {
        self.applied.borrow().version()
    }

    /// The current plan, or `None` when the solver does not answer in time.
    async fn plan(&self) -> Option<Plan> {
        let subject = self.context.subjects.plan_get();
        let request = self
            .context
            .client
            .request(subject, Bytes::from_static(b"{}"));
        let message = tokio::time::timeout(Duration::from_millis(PLAN_WAIT_MS), request)
            .await
            .ok()?
            .ok()?;
        serde_json::from_slice(&message.payload).ok()
    }

    /// Sends `body` to `sb.in.<input>` and turns the reply into a response;
    /// an accepted write waits until the read model shows it.
    /// `actor` is who asked (the signed-in principal), recorded on the
    /// event as `proto::wire::ACTOR_HEADER`.
    pub(crate) async fn send(&self, input: Input, body: Bytes, actor: &str) -> (StatusCode, Reply) {
        let subject = self.context.subjects.input(input);
        // The trace of the HTTP request goes on to the service it asks.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(proto::wire::ACTOR_HEADER, actor);
        if let Some(trace) = plumbing::trace::current() {
            trace.insert_into(&mut headers);
        }
        let answer = self
            .context
            .client
            .request_with_headers(subject, headers, body)
            .await;
        let reply = match answer {
            Ok(message) => match serde_json::from_slice::<Reply>(&message.payload) {
                Ok(reply) => reply,
                Err(error) => {
                    return unavailable_reply(format!(
                        "the service gave an unreadable reply: {error}"
                    ))
                }
            },
            Err(error) => {
                return unavailable_reply(format!("the switchboard did not answer: {error}"))
            }
        };
        // A disbursal's sequence is in SB_LEDGER; every other one in SB_EVENTS.
        match reply.seq.filter(|_| reply.ok) {
            Some(sequence) if input == Input::Disburse => self.wait_for_ledger(sequence).await,
            Some(sequence) => self.wait_for_event(sequence).await,
            None => {}
        }
        let status = reply
            .error
            .as_ref()
            .map_or(StatusCode::OK, |error| status_of(error.code));
        (status, reply)
    }
}

fn unavailable_reply(message: String) -> (StatusCode, Reply) {
    let error = proto::wire::ErrorBody::new(ErrorCode::Unavailable, None, message);
    (StatusCode::SERVICE_UNAVAILABLE, Reply::refused(error))
}

fn invalid(error: proto::wire::ErrorBody) -> Response {
    (status_of(error.code), Json(Reply::refused(error))).into_response()
}

/// Whether `principal` may send this body to `operation`; the refusal if not.
/// Bodies are decoded with the services' own decoder, so a malformed body
/// gets the same error here as it would from the service.
fn authorize(
    model: &ReadModel,
    principal: &Principal,
    operation: &str,
    body: &[u8],
) -> Result<(), Response> {
    match (principal, operation) {
        (Principal::Vetter(me), "vet") => {
            let vetting: Vetting = decode(body).map_err(invalid)?;
            (vetting.vetter == *me)
                .then_some(())
                .ok_or_else(|| forbidden("a vetter vets in their own name"))
        }
        (Principal::Coordinator, "vet") => Err(forbidden(
            "vetting is the vetters' role, not the coordinators'",
        )),
        (Principal::Coordinator, _) => Ok(()),
        (Principal::Volunteer(me), "volunteer") => {
            let offer: VolunteerOffer = decode(body).map_err(invalid)?;
            (offer.id == *me)
                .then_some(())
                .ok_or_else(|| forbidden("a volunteer may offer only their own time"))
        }
        (Principal::Volunteer(me), "reply") => {
            let reply: VolunteerReply = decode(body).map_err(invalid)?;
            (reply.volunteer == *me)
                .then_some(())
                .ok_or_else(|| forbidden("a volunteer may answer only their own assignments"))
        }
        (Principal::Volunteer(me), "withdraw") => {
            let withdrawal: Withdrawal = decode(body).map_err(invalid)?;
            (withdrawal.kind == WithdrawKind::Volunteer && withdrawal.id == *me)
                .then_some(())
                .ok_or_else(|| forbidden("a volunteer may withdraw only their own offer"))
        }
        (Principal::Volunteer(me), "forget") => {
            let forget: Withdrawal = decode(body).map_err(invalid)?;
            (forget.kind == WithdrawKind::Volunteer && forget.id == *me)
                .then_some(())
                .ok_or_else(|| forbidden("a volunteer may ask only for themselves to be forgotten"))
        }
        (Principal::Collective(me), "need") => {
            let need: NeedPost = decode(body).map_err(invalid)?;
            let owner = model.need_collective.get(&need.id);
            (need.collective == *me && owner.is_none_or(|owner| owner == me))
                .then_some(())
                .ok_or_else(|| forbidden("a collective may post only its own needs"))
        }
        (Principal::Collective(me), "complete") => {
            let completion: TaskCompletion = decode(body).map_err(invalid)?;
            // An unknown task and another collective's task get the same
            // answer, so the answer does not tell which tasks exist.
            (model.collective_of_task(&completion.task) == Some(me.as_str()))
                .then_some(())
                .ok_or_else(|| forbidden("a collective may complete only its own tasks"))
        }
        (Principal::Collective(me), "withdraw") => {
            let withdrawal: Withdrawal = decode(body).map_err(invalid)?;
            let owner = match withdrawal.kind {
                WithdrawKind::Need => model
                    .need_collective
                    .get(&withdrawal.id)
                    .map(String::as_str),
                WithdrawKind::Task => model.collective_of_task(&withdrawal.id),
                WithdrawKind::Volunteer | WithdrawKind::Pledge => None,
            };
            (owner == Some(me.as_str()))
                .then_some(())
                .ok_or_else(|| forbidden("a collective may withdraw only its own needs and tasks"))
        }
        (Principal::Collective(me), "disburse") => {
            let disbursal: Disbursal = decode(body).map_err(invalid)?;
            let own_task = model.collective_of_task(&disbursal.task) == Some(me.as_str());
            let names_itself = disbursal
                .collective
                .as_ref()
                .is_none_or(|named| named == me);
            (own_task && names_itself).then_some(()).ok_or_else(|| {
                forbidden("a collective may confirm payments only for its own tasks")
            })
        }
        (Principal::Donor(me), "pledge") => {
            let offer: PledgeOffer = decode(body).map_err(invalid)?;
            (offer.id == *me)
                .then_some(())
                .ok_or_else(|| forbidden("a donor may offer only their own pledge"))
        }
        (Principal::Donor(me), "withdraw") => {
            let withdrawal: Withdrawal = decode(body).map_err(invalid)?;
            (withdrawal.kind == WithdrawKind::Pledge && withdrawal.id == *me)
                .then_some(())
                .ok_or_else(|| forbidden("a donor may withdraw only their own pledge"))
        }
        (Principal::Donor(me), "forget") => {
            let forget: Withdrawal = decode(body).map_err(invalid)?;
            (forget.kind == WithdrawKind::Pledge && forget.id == *me)
                .then_some(())
                .ok_or_else(|| forbidden("a donor may ask only for their own name to be forgotten"))
        }
        _ => Err(forbidden(&format!(
            "{operation:?} is not among the operations of this sign-in"
        ))),
    }
}

/// `POST /api/{volunteer|need|pledge|withdraw|reply|complete|...}`: any
/// operation of the contract, forwarded when the principal may do it.
#[tracing::instrument(name = "gateway.forward", skip_all, fields(operation = %operation))]
pub async fn forward(
    State(gateway): State<Gateway>,
    Path(operation): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match gateway.principal(&headers) {
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    // Permission first: a non-coordinator learns nothing about which
    // operations exist beyond their own.
    if let Err(refused) = gateway.read(|model| authorize(model, &principal, &operation, &body)) {
        return refused;
    }
    let Some(input) = Input::ALL
        .into_iter()
        .find(|input| input.token() == operation)
    else {
        return refusal(
            ErrorCode::NotFound,
            None,
            format!("no operation {operation:?}"),
        );
    };
    // A client's own `traceparent` is continued; otherwise a trace starts here.
    let trace = headers
        .get(plumbing::trace::TRACEPARENT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse)
        .map(|parent| parent.child())
        .unwrap_or_else(TraceParent::root);
    let span = tracing::info_span!("gateway.forward", %operation, trace_id = %trace.trace_id_hex());
    let actor = principal.actor();
    let (status, reply) = plumbing::trace::scope(trace, gateway.send(input, body, &actor))
        .instrument(span)
        .await;
    (status, Json(reply)).into_response()
}

/// `GET /api/me`: who this token stands for.
pub async fn me(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    match gateway.principal(&headers) {
        Ok(principal) => Json(principal.describe()).into_response(),
        Err(refused) => refused,
    }
}

/// `POST /api/revoke`: which token a coordinator ends.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// The token's id (`jti` in its claims), 32 hex digits.
    pub token_id: String,
}

/// `POST /api/revoke`: a coordinator ends one token (a session or a link)
/// for every gateway instance, before its expiry.
pub async fn revoke(State(gateway): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    match gateway.principal(&headers) {
        Ok(Principal::Coordinator) => {}
        Ok(_) => return forbidden("only coordinators revoke tokens"),
        Err(refused) => return refused,
    }
    let request: RevokeRequest = match decode(&body) {
        Ok(request) => request,
        Err(error) => return invalid(error),
    };
    if request.token_id.len() != 32
        || !request
            .token_id
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit())
    {
        return refusal(
            ErrorCode::Invalid,
            Some("token_id"),
            "token_id: must be the 32 hex digits of a token's id".to_owned(),
        );
    }
    match gateway
        .revocations
        .revoke(&gateway.tokens, &request.token_id)
        .await
    {
        Ok(()) => Json(Reply {
            ok: true,
            id: Some(request.token_id),
            seq: None,
            error: None,
            note: None,
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot record a revocation");
            refusal(
                ErrorCode::Unavailable,
                None,
                "the revocation could not be recorded now; send it again".to_owned(),
            )
        }
    }
}

/// `GET /api/plan`: the current `switchboard-plan/1` (coordinators only: it
/// names every volunteer's work).
pub async fn plan(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    match gateway.principal(&headers) {
        Ok(Principal::Coordinator) => {}
        Ok(_) => return forbidden("the whole plan is for coordinators"),
        Err(refused) => return refused,
    }
    let subject = gateway.context.subjects.plan_get();
    match gateway
        .context
        .client
        .request(subject, Bytes::from_static(b"{}"))
        .await
    {
        Ok(message) => match serde_json::from_slice::<Plan>(&message.payload) {
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
pub struct ViewQuery {
    /// Coordinators only: whose view (a collective or volunteer id).
    #[serde(default)]
    id: Option<String>,
    /// Answer only once the model is newer than this version (long poll).
    #[serde(default)]
    newer_than: Option<u64>,
}

/// Which id a view is for: one's own, or any for coordinators.
fn subject_of_view(
    principal: &Principal,
    wanted_role: &str,
    query: &ViewQuery,
) -> Result<String, Response> {
    let own = match (principal, wanted_role) {
        (Principal::Collective(id), "collective")
        | (Principal::Volunteer(id), "volunteer")
        | (Principal::Donor(id), "donor") => Some(id.clone()),
        _ => None,
    };
    match (principal, own, &query.id) {
        (_, Some(own), None) => Ok(own),
        (_, Some(own), Some(asked)) if *asked == own => Ok(own),
        (Principal::Coordinator, None, Some(asked)) if is_valid_id(asked) => Ok(asked.clone()),
        (Principal::Coordinator, None, _) => Err(refusal(
            ErrorCode::Invalid,
            Some("id"),
            "name whose view: ?id=".to_owned(),
        )),
        _ => Err(forbidden("this view belongs to someone else")),
    }
}

/// What every `/api/view/*` answers: a view and the read model's version.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Versioned{T}")]
pub struct Versioned<T> {
    /// The read model's version the view was drawn from: ask again with
    /// `newer_than` set to it to wait for the next change.
    pub version: u64,
    pub view: T,
}

/// A view as JSON with the model's version.
fn versioned<T: Serialize>(gateway: &Gateway, make: impl FnOnce(&ReadModel) -> T) -> Response {
    let version = gateway.version();
    let view = gateway.read(make);
    Json(Versioned { version, view }).into_response()
}

/// `GET /api/view/coordinator`: the dashboard's data.
pub async fn coordinator_view(
    State(gateway): State<Gateway>,
    Query(query): Query<ViewQuery>,
    headers: HeaderMap,
) -> Response {
    match gateway.principal(&headers) {
        Ok(Principal::Coordinator) => {}
        Ok(_) => return forbidden("the dashboard is for coordinators"),
        Err(refused) => return refused,
    }
    // Wait first, so the plan asked for below is as new as the change.
    gateway.wait_if_asked(&query).await;
    let plan = gateway.plan().await;
    let now = gateway.context.clock.now();
    versioned(&gateway, |model| {
        views::coordinator(model, now, plan.as_ref())
    })
}

/// `GET /api/view/collective[?id=]`: one collective's needs.
pub async fn collective_view(
    State(gateway): State<Gateway>,
    Query(query): Query<ViewQuery>,
    headers: HeaderMap,
) -> Response {
    let collective = match gateway
        .principal(&headers)
        .and_then(|principal| subject_of_view(&principal, "collective", &query))
    {
        Ok(collective) => collective,
        Err(refused) => return refused,
    };
    gateway.wait_if_asked(&query).await;
    let plan = gateway.plan().await;
    versioned(&gateway, |model| {
        views::collective(model, &collective, plan.as_ref())
    })
}

/// `GET /api/view/volunteer[?id=]`: one volunteer's offer and assignments.
pub async fn volunteer_view(
    State(gateway): State<Gateway>,
    Query(query): Query<ViewQuery>,
    headers: HeaderMap,
) -> Response {
    let volunteer = match gateway
        .principal(&headers)
        .and_then(|principal| subject_of_view(&principal, "volunteer", &query))
    {
        Ok(volunteer) => volunteer,
        Err(refused) => return refused,
    };
    gateway.wait_if_asked(&query).await;
    let now = gateway.context.clock.now();
    let version = gateway.version();
    let mut view = gateway.read(|model| views::volunteer(model, &volunteer, now));
    // Their own name and contact, opened for them alone.
    if let Some(offer) = view.offer.as_mut() {
        let person = plumbing::people::volunteer_key(&volunteer);
        if let Some(personal) = gateway.personal(&person, offer.sealed.as_deref()).await {
            offer.name = personal.name;
            offer.contact = personal.contact;
        }
        offer.sealed = None;
    }
    Json(Versioned { version, view }).into_response()
}

/// `GET /api/view/donor[?id=]`: where one pledge's money went (the
/// donor's own pledge, or any for coordinators).
pub async fn donor_view(
    State(gateway): State<Gateway>,
    Query(query): Query<ViewQuery>,
    headers: HeaderMap,
) -> Response {
    let pledge = match gateway
        .principal(&headers)
        .and_then(|principal| subject_of_view(&principal, "donor", &query))
    {
        Ok(pledge) => pledge,
        Err(refused) => return refused,
    };
    gateway.wait_if_asked(&query).await;
    versioned(&gateway, |model| money::donor(model, &pledge))
}

/// `GET /api/view/funding[?id=]`: a collective's tasks that ask for money,
/// funded and waiting.
pub async fn funding_view(
    State(gateway): State<Gateway>,
    Query(query): Query<ViewQuery>,
    headers: HeaderMap,
) -> Response {
    let collective = match gateway
        .principal(&headers)
        .and_then(|principal| subject_of_view(&principal, "collective", &query))
    {
        Ok(collective) => collective,
        Err(refused) => return refused,
    };
    gateway.wait_if_asked(&query).await;
    versioned(&gateway, |model| money::funding(model, &collective))
}

/// `GET /api/view/pool`: coordinators' money page: the pool, stranded
/// restrictions and the transparency report.
pub async fn pool_view(
    State(gateway): State<Gateway>,
    Query(query): Query<ViewQuery>,
    headers: HeaderMap,
) -> Response {
    match gateway.principal(&headers) {
        Ok(Principal::Coordinator) => {}
        Ok(_) => return forbidden("the pool is for coordinators"),
        Err(refused) => return refused,
    }
    gateway.wait_if_asked(&query).await;
    let now = gateway.context.clock.now();
    versioned(&gateway, |model| money::pool(model, now))
}

/// What the audit view is asked for.
#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    entity: Option<String>,
    #[serde(default)]
    newer_than: Option<u64>,
}

/// `GET /api/view/audit[?actor=][&entity=]`: who did what, for coordinators.
pub async fn audit_view(
    State(gateway): State<Gateway>,
    Query(query): Query<AuditQuery>,
    headers: HeaderMap,
) -> Response {
    match gateway.principal(&headers) {
        Ok(Principal::Coordinator) => {}
        Ok(_) => return forbidden("the audit trail is for coordinators"),
        Err(refused) => return refused,
    }
    let wait = ViewQuery {
        id: None,
        newer_than: query.newer_than,
    };
    gateway.wait_if_asked(&wait).await;
    versioned(&gateway, |model| {
        model
            .audit
            .view(query.actor.as_deref(), query.entity.as_deref())
    })
}

/// `GET /api/ledger.csv`: the movements this sign-in may see, as CSV.
pub async fn ledger_csv(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    let principal = match gateway.principal(&headers) {
        Ok(Principal::Volunteer(_)) => return forbidden("volunteers have no money to account for"),
        Ok(principal) => principal,
        Err(refused) => return refused,
    };
    let rows = gateway.read(|model| money::movements_for(model, &principal));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"ledger.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        money::csv(&rows),
    )
        .into_response()
}

/// `GET /api/charts/{impact|hours|unmet}.svg`: the dashboard's charts.
pub async fn chart(
    State(gateway): State<Gateway>,
    Path(chart): Path<String>,
    headers: HeaderMap,
) -> Response {
    match gateway.principal(&headers) {
        Ok(Principal::Coordinator) => {}
        Ok(_) => return forbidden("the charts are for coordinators"),
        Err(refused) => return refused,
    }
    let Some(chart) = Chart::from_file(&chart) else {
        return refusal(ErrorCode::NotFound, None, format!("no chart {chart:?}"));
    };
    let now = gateway.context.clock.now();
    let view = gateway.read(|model| views::coordinator(model, now, None));
    let svg = match chart {
        Chart::Impact => charts::impact_over_time(&view.delivered, now),
        Chart::Hours => charts::hours_use(&view.hours),
        Chart::Unmet => {
            let rows: Vec<(String, f64)> = view.unmet_hours_by_skill.into_iter().collect();
            charts::bars("Unmet demand by skill", &rows, "h")
        }
    };
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response()
}

/// `POST /api/links`: whom to mint a sign-in link for.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// `collective`, `volunteer` or `donor` (vetters' links are minted only
    /// with the secret).
    // Decoded as text, not an enum, so that any other role gets this
    // endpoint's own refusal naming the field, as before.
    #[schemars(extend("enum" = ["collective", "volunteer", "donor"]))]
    role: String,
    /// The collective's or volunteer's id, or the donor's pledge.
    #[schemars(pattern(crate::routes::ID_PATTERN))]
    id: String,
}

/// A minted sign-in link.
#[derive(Serialize, JsonSchema)]
pub struct LinkMinted {
    pub ok: bool,
    pub token: String,
    /// `http://<host>/signin?token=<token>`, for the host this was asked on.
    pub link: String,
}

/// A registration that went through: the new volunteer and their sign-in.
#[derive(Serialize, JsonSchema)]
pub struct Registered {
    pub ok: bool,
    /// The volunteer id the gateway chose.
    pub id: String,
    /// Sequence of the offer in `SB_EVENTS`.
    pub seq: Option<u64>,
    pub token: String,
    pub link: String,
}

/// The body of `POST /api/register`: a volunteer's offer without its `id`,
/// which the gateway chooses (one sent is replaced). Derived from the
/// schema of `VolunteerOffer`, so it follows the wire type.
pub fn registration_schema(generator: &mut SchemaGenerator) -> Schema {
    const NAME: &str = "Registration";
    let mut schema = VolunteerOffer::json_schema(generator);
    if let Some(required) = schema
        .get_mut("required")
        .and_then(|value| value.as_array_mut())
    {
        required.retain(|field| field != "id");
    }
    if let Some(properties) = schema
        .get_mut("properties")
        .and_then(|value| value.as_object_mut())
    {
        properties.remove("id");
    }
    schema.insert(
        "title".to_owned(),
        serde_json::Value::String(NAME.to_owned()),
    );
    schema.insert(
        "description".to_owned(),
        serde_json::Value::String(
            "A volunteer's offer (VolunteerOffer) without its id: the gateway chooses it."
                .to_owned(),
        ),
    );
    generator
        .definitions_mut()
        .insert(NAME.to_owned(), schema.to_value());
    let definitions = generator
        .settings()
        .definitions_path
        .trim_start_matches('/');
    Schema::new_ref(format!("#/{definitions}/{NAME}"))
}

/// A sign-in link: under the configured public URL; only without one (tests,
/// a local `up`) under the host the request was sent to.
fn link_of(gateway: &Gateway, headers: &HeaderMap, token: &str) -> String {
    if let Some(public_url) = &gateway.public_url {
        return format!("{public_url}/signin?token={token}");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/signin?token={token}")
}

/// `POST /api/links`: a coordinator mints a sign-in link for a collective
/// or a volunteer.
pub async fn links(State(gateway): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    match gateway.principal(&headers) {
        Ok(Principal::Coordinator) => {}
        Ok(_) => return forbidden("only coordinators mint links"),
        Err(refused) => return refused,
    }
    let request: LinkRequest = match decode(&body) {
        Ok(request) => request,
        Err(error) => return invalid(error),
    };
    if !is_valid_id(&request.id) {
        return refusal(
            ErrorCode::Invalid,
            Some("id"),
            "must match [A-Za-z0-9_-]{1,64}".to_owned(),
        );
    }
    let principal = match request.role.as_str() {
        "collective" => Principal::Collective(request.id),
        "volunteer" => Principal::Volunteer(request.id),
        "donor" => Principal::Donor(request.id),
        _ => {
            return refusal(
                ErrorCode::Invalid,
                Some("role"),
                "must be collective, volunteer or donor".to_owned(),
            )
        }
    };
    let token = gateway.tokens.mint_link(&principal);
    let link = link_of(&gateway, &headers, &token);
    Json(LinkMinted {
        ok: true,
        token,
        link,
    })
    .into_response()
}

/// `POST /api/register`: someone without a link offers time through the
/// landing page. The gateway chooses their id (so nobody can register as an
/// existing volunteer), forwards the offer, and on success signs them in.
pub async fn register(State(gateway): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    if !gateway.open_registration {
        return forbidden("registration is by invitation: ask a coordinator for a link");
    }
    let mut offer: serde_json::Value = match decode(&body) {
        Ok(offer) => offer,
        Err(error) => return invalid(error),
    };
    let counter = gateway
        .registrations
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = chrono::Utc::now()
        .timestamp_nanos_opt()
        .map_or(0, i128::from);
    let id = gateway.tokens.fresh_volunteer_id(nanos, counter);
    match offer.as_object_mut() {
        Some(fields) => {
            fields.insert("id".to_owned(), serde_json::Value::String(id.clone()));
        }
        None => {
            return refusal(
                ErrorCode::Invalid,
                None,
                "the offer must be a JSON object".to_owned(),
            )
        }
    }
    // Decoded into the wire type, with the decoder the service uses (so
    // errors read the same), and forwarded as the typed offer.
    let with_id = serde_json::to_vec(&offer).unwrap_or_default();
    let offer: VolunteerOffer = match decode(&with_id) {
        Ok(offer) => offer,
        Err(error) => return invalid(error),
    };
    let encoded = match serde_json::to_vec(&offer) {
        Ok(encoded) => Bytes::from(encoded),
        Err(error) => return refusal(ErrorCode::Invalid, None, error.to_string()),
    };
    let actor = format!("volunteer:{}", offer.id);
    let (status, reply) = gateway.send(Input::Volunteer, encoded, &actor).await;
    if !reply.ok {
        return (status, Json(reply)).into_response();
    }
    let principal = Principal::Volunteer(id.clone());
    let token = gateway.tokens.mint(&principal);
    let link = link_of(&gateway, &headers, &gateway.tokens.mint_link(&principal));
    let cookie = HeaderValue::from_str(&sign_in_cookie(&token, gateway.secure_cookies));
    let mut response = Json(Registered {
        ok: true,
        id,
        seq: reply.seq,
        token,
        link,
    })
    .into_response();
    if let Ok(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
pub struct StreamQuery {
    /// Resume after this sequence of `SB_MATCHES` (0 or absent: from the start).
    #[serde(default)]
    since: Option<u64>,
}

/// Whether `principal` may see this match event: coordinators all; a
/// volunteer their own; a collective those about its own tasks.
fn may_see(model: &ReadModel, principal: &Principal, event: &MatchEvent) -> bool {
    let (volunteer, task, _) = event.pair();
    match principal {
        Principal::Coordinator => true,
        Principal::Volunteer(me) => volunteer == me,
        // A donor follows their money, not people's assignments.
        Principal::Donor(_) => false,
        Principal::Collective(me) => match event {
            MatchEvent::Proposed(proposal) => proposal.collective == *me,
            _ => model.collective_of_task(task) == Some(me.as_str()),
        },
        Principal::Vetter(_) => false,
    }
}

/// `GET /api/stream`: the match events this principal may see, as SSE
/// events named after their kind, with the stream sequence as their id.
pub async fn stream(
    State(gateway): State<Gateway>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Response> {
    let principal = gateway.principal(&headers)?;
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
            let gateway = gateway.clone();
            let principal = principal.clone();
            async move {
                let message = message.ok()?;
                let sequence = message.info().ok()?.stream_sequence;
                let event =
                    MatchEvent::decode(&subjects, &message.subject, &message.payload).ok()?;
                if !gateway.read(|model| may_see(model, &principal, &event)) {
                    return None;
                }
                let data = String::from_utf8_lossy(&message.payload).into_owned();
                Some(Ok(SseEvent::default()
                    .event(event.kind().token())
                    .id(sequence.to_string())
                    .data(data)))
            }
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(STREAM_KEEP_ALIVE_S))))
}

/// Whether a part of the switchboard answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Unavailable,
}

/// Whether the gateway's NATS connection is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Connected,
    Disconnected,
}

/// `GET /health`'s body.
#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// `ok` when NATS is connected and the streams answer.
    pub status: Status,
    pub nats: Connection,
    pub streams: Status,
}

/// `GET /health`: 200 when NATS is connected and the streams answer. Open
/// to all: it says nothing about anyone.
pub async fn health(State(gateway): State<Gateway>) -> Response {
    let connected =
        gateway.context.client.connection_state() == async_nats::connection::State::Connected;
    let streams_ok = connected
        && plumbing::streams::last_sequence(
            &gateway.context.jetstream,
            &gateway.context.subjects.events_stream(),
        )
        .await
        .is_ok();
    let body = Health {
        status: if streams_ok {
            Status::Ok
        } else {
            Status::Unavailable
        },
        nats: if connected {
            Connection::Connected
        } else {
            Connection::Disconnected
        },
        streams: if streams_ok {
            Status::Ok
        } else {
            Status::Unavailable
        },
    };
    let status = if streams_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
