//! Sign-in links and sessions over HTTP against a real nats-server: a link
//! is short-lived and signs in once; a session ends at sign-out or when a
//! coordinator revokes it, through the revocation bucket in JetStream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gateway::access::{Principal, Purpose};
use tests::{gateway_config, gateway_link, gateway_token, NatsServer, Options, Switchboard};

struct Web {
    base: String,
    http: reqwest::Client,
}

impl Web {
    async fn start(nats: &NatsServer, state: &std::path::Path) -> (Switchboard, Web) {
        let switchboard = Switchboard::start(
            nats,
            state,
            Options {
                gateway: true,
                ..Options::default()
            },
        )
        .await;
        let web = Web {
            base: format!("http://{}", switchboard.http.unwrap()),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        (switchboard, web)
    }

    /// Follows a sign-in link: its status, and the session the cookie holds.
    async fn sign_in(&self, link_token: &str) -> (u16, Option<String>) {
        let response = self
            .http
            .get(format!("{}/signin?token={link_token}", self.base))
            .send()
            .await
            .unwrap();
        let session = response
            .headers()
            .get("set-cookie")
            .and_then(|cookie| cookie.to_str().ok())
            .and_then(|cookie| cookie.strip_prefix("sb_token="))
            .and_then(|rest| rest.split(';').next())
            .map(str::to_owned);
        (response.status().as_u16(), session)
    }

    /// The status of `GET /api/me` with `session` as the cookie.
    async fn me(&self, session: &str) -> u16 {
        self.http
            .get(format!("{}/api/me", self.base))
            .header("cookie", format!("sb_token={session}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_signs_in_once_and_an_expired_one_never() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let (_switchboard, web) = Web::start(&nats, state.path()).await;
    let maria = Principal::Volunteer("v-maria".into());

    let link = gateway_link(&maria);
    let (status, session) = web.sign_in(&link).await;
    assert_eq!(status, 303);
    let session = session.expect("signing in sets the session cookie");
    assert_ne!(session, link, "the cookie holds the link's token");
    assert_eq!(web.me(&session).await, 200);
    // The same link again: refused, and no cookie.
    let (status, again) = web.sign_in(&link).await;
    assert_eq!(status, 401, "a link signed in twice");
    assert_eq!(again, None);

    // A link whose hour has passed.
    let tokens = gateway_config().tokens().unwrap();
    let issued = chrono::Utc::now() - chrono::Duration::minutes(61);
    let expired = tokens.mint_at(&maria, Purpose::Link, issued, chrono::Duration::minutes(60));
    let (status, session) = web.sign_in(&expired).await;
    assert_eq!(status, 401, "an expired link signed in");
    assert_eq!(session, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_sign_out_and_when_a_coordinator_revokes_it() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let (_switchboard, web) = Web::start(&nats, state.path()).await;
    let tokens = gateway_config().tokens().unwrap();

    // Signed out: the same session, replayed, is refused.
    let (_, session) = web
        .sign_in(&gateway_link(&Principal::Volunteer("v-maria".into())))
        .await;
    let session = session.unwrap();
    assert_eq!(web.me(&session).await, 200);
    let signed_out = web
        .http
        .get(format!("{}/signout", web.base))
        .header("cookie", format!("sb_token={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status().as_u16(), 303);
    assert_eq!(
        web.me(&session).await,
        401,
        "a signed-out session still works"
    );

    // Revoked by a coordinator: refused; someone else's session is not.
    let (_, ahmed) = web
        .sign_in(&gateway_link(&Principal::Volunteer("v-ahmed".into())))
        .await;
    let ahmed = ahmed.unwrap();
    let (_, rosa) = web
        .sign_in(&gateway_link(&Principal::Collective("c-tenants".into())))
        .await;
    let rosa = rosa.unwrap();
    let token_id = tokens.verify_claims(&ahmed).unwrap().token_id;
    let revoke = |who: String, body: serde_json::Value| {
        web.http
            .post(format!("{}/api/revoke", web.base))
            .bearer_auth(who)
            .json(&body)
            .send()
    };
    // Only coordinators revoke, and only a token's id.
    let refused = revoke(rosa.clone(), serde_json::json!({"token_id": token_id}))
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let coordinator = gateway_token(&Principal::Coordinator);
    let invalid = revoke(coordinator.clone(), serde_json::json!({"token_id": "x"}))
        .await
        .unwrap();
    assert_eq!(invalid.status().as_u16(), 422);
    let body: serde_json::Value = invalid.json().await.unwrap();
    assert_eq!(body["error"]["field"], "token_id", "{body}");
    assert_eq!(web.me(&ahmed).await, 200);
    let revoked = revoke(coordinator, serde_json::json!({"token_id": token_id}))
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    assert_eq!(web.me(&ahmed).await, 401, "a revoked session still works");
    assert_eq!(web.me(&rosa).await, 200, "revoking one ended another");

    // The revocation is in the bucket every instance follows.
    let jetstream = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let bucket = jetstream
        .get_key_value(proto::subjects::Subjects::default().token_revocation_bucket())
        .await
        .unwrap();
    assert!(bucket.get(&token_id).await.unwrap().is_some());
}
