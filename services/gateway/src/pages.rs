//! The pages people use, compiled into the binary: no build step, no CDN,
//! nothing fetched at run time.
//!
//! The HTML pages are shells: they hold no data, so they are served to
//! anyone, and their script fetches the signed-in principal's view from
//! `/api/view/*` (which checks the token) and follows `/api/stream` to
//! redraw when something changes. Sign-in links land on `/signin`, which
//! turns the token into an HTTP-only cookie and sends the browser to its
//! role's page. The HTML itself is written with maud ([`crate::templates`]),
//! which escapes every value it is given.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;
use serde::Deserialize;

use crate::access::{sign_in_cookie, Principal, TOKEN_COOKIE};
use crate::{templates, Gateway};

/// The one stylesheet and the one script, by the name they are served under.
pub const ASSETS: [(&str, &str, &str); 2] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
];

/// Scripts and styles only from this origin, nothing inline, no framing: a
/// title someone typed can never run as script on a coordinator's page.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn html(page: Markup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        page.into_string(),
    )
        .into_response()
}

pub async fn landing() -> Response {
    html(templates::landing())
}

pub async fn coordinator() -> Response {
    html(templates::coordinator())
}

pub async fn collective() -> Response {
    html(templates::collective())
}

pub async fn volunteer() -> Response {
    html(templates::volunteer())
}

pub async fn vetter() -> Response {
    html(templates::vetter())
}

/// `GET /assets/{file}`: the one stylesheet and the one script.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *body,
    )
        .into_response()
}

/// `GET /donor`: where the signed-in donor's pledge went, drawn on the
/// server (no script at all), from the same view as `/api/view/donor`.
pub async fn donor(State(gateway): State<Gateway>, headers: axum::http::HeaderMap) -> Response {
    let principal =
        crate::access::token_of(&headers).and_then(|token| gateway.tokens.verify(token));
    // Like the other pages, served to anyone; only a donor's sign-in shows a pledge.
    let Some(crate::access::Principal::Donor(pledge)) = principal else {
        return html(templates::donor_sign_in());
    };
    let (mut view, sealed) = {
        let model = gateway
            .model
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sealed = model
            .pledges_ever
            .get(&pledge)
            .and_then(|offer| offer.sealed.clone());
        (crate::money::donor(&model, &pledge), sealed)
    };
    // Their own name, opened for them alone.
    let person = plumbing::people::pledge_key(&pledge);
    if let Some(personal) = gateway.personal(&person, sealed.as_deref()).await {
        view.donor = personal.donor;
    }
    let mut response = html(templates::donor(&view));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /donor/forget`: the signed-in donor's name is forgotten (their
/// pledge's data key deleted through `sb.in.forget`); a form, no script.
pub async fn donor_forget(
    State(gateway): State<Gateway>,
    headers: axum::http::HeaderMap,
) -> Response {
    let principal =
        crate::access::token_of(&headers).and_then(|token| gateway.tokens.verify(token));
    let Some(crate::access::Principal::Donor(pledge)) = principal else {
        return html(templates::donor_sign_in());
    };
    let body = serde_json::json!({"kind": "pledge", "id": pledge}).to_string();
    let (_, reply) = gateway
        .send(
            proto::subjects::Input::Forget,
            bytes::Bytes::from(body),
            &crate::access::Principal::Donor(pledge.clone()).actor(),
        )
        .await;
    let mut response = html(templates::donor_forgotten(&pledge, &reply));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    token: String,
    /// From a proposal's email: the task and the answer the volunteer chose,
    /// carried to their page, where one press confirms it.
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    answer: Option<String>,
}

/// The answers an email link may carry to the volunteer's page.
const EMAILED_ANSWERS: [&str; 5] = ["accept", "decline", "checkin", "done", "drop"];

/// `GET /signin?token=...`: a sign-in link. A valid token becomes the
/// cookie and the browser goes to its page; anything else is refused
/// without saying why, so the endpoint is no oracle for forged tokens.
pub async fn sign_in(State(gateway): State<Gateway>, Query(query): Query<SignInQuery>) -> Response {
    // Only a link's token signs in here; a session token never belongs in a URL.
    let link = gateway
        .tokens
        .verify_claims(&query.token)
        .filter(|claims| claims.purpose == crate::access::Purpose::Link);
    let refused = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This sign-in link is not valid. Ask a coordinator for a new one.",
        )
            .into_response()
    };
    let Some(link) = link else {
        return refused();
    };
    // A link signs in once, across every instance.
    match gateway.revocations.use_once(&link.token_id).await {
        Ok(true) => {}
        Ok(false) => return refused(),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot record a sign-in link's use");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Signing in is not possible right now; try the link again in a minute.",
            )
                .into_response();
        }
    }
    let principal = link.principal;
    let destination = match (&principal, &query.task, &query.answer) {
        (Principal::Volunteer(_), Some(task), Some(answer))
            if proto::ids::is_valid_id(task) && EMAILED_ANSWERS.contains(&answer.as_str()) =>
        {
            // Both are checked above to be URL-safe tokens.
            format!("{}?task={task}&answer={answer}", principal.home_page())
        }
        _ => principal.home_page().to_owned(),
    };
    let mut response = Redirect::to(&destination).into_response();
    // The link is exchanged for a session of its own: the cookie never
    // holds what travelled in a URL.
    let session = gateway.tokens.mint(&principal);
    if let Ok(cookie) = HeaderValue::from_str(&sign_in_cookie(&session, gateway.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /signout`: revokes the session and forgets the cookie.
pub async fn sign_out(State(gateway): State<Gateway>, headers: axum::http::HeaderMap) -> Response {
    let session = crate::access::token_of(&headers)
        .and_then(|token| gateway.tokens.verify_claims(token))
        .filter(|claims| claims.purpose == crate::access::Purpose::Session);
    if let Some(session) = session {
        if let Err(error) = gateway
            .revocations
            .revoke(&gateway.tokens, &session.token_id)
            .await
        {
            // Still revoked on this instance; the others learn it when the bucket is back.
            tracing::warn!(error = %format!("{error:#}"), "cannot record a sign-out in the bucket");
        }
    }
    let mut response = Redirect::to("/").into_response();
    let expired = format!("{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(cookie) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}
