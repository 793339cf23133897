//! The gateway's sign-in and permissions over real HTTP on a real
//! switchboard: every role against every resource, and nothing of one
//! collective or volunteer reaching another, in views, streams or actions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gateway::access::Principal;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::{
    gateway_link, gateway_token, hours_from_now, NatsServer, Options, Switchboard, EXPECT_WITHIN,
};

struct Web {
    base: String,
    http: reqwest::Client,
}

impl Web {
    async fn call(
        &self,
        who: Option<&Principal>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, String) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(principal) = who {
            request = request.bearer_auth(gateway_token(principal));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn get(&self, who: &Principal, path: &str) -> Value {
        let (status, text) = self.call(Some(who), Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn post_ok(&self, who: &Principal, path: &str, body: &Value) -> Value {
        let (status, text) = self.call(Some(who), Method::POST, path, Some(body)).await;
        assert_eq!(status, 200, "POST {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Waits, by long polls on the view's version, until `wanted` holds.
    async fn view_until(
        &self,
        who: &Principal,
        path: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
        let mut answer = self.get(who, path).await;
        while !wanted(&answer["view"]) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never showed it: {answer}"
            );
            let separator = if path.contains('?') { '&' } else { '?' };
            let version = answer["version"].as_u64().unwrap();
            answer = self
                .get(who, &format!("{path}{separator}newer_than={version}"))
                .await;
        }
        answer["view"].clone()
    }

    /// The event stream as `who` sees it, read until `until` holds of it.
    async fn stream_until(&self, who: &Principal, until: impl Fn(&str) -> bool) -> String {
        let mut response = self
            .http
            .get(format!("{}/api/stream", self.base))
            .bearer_auth(gateway_token(who))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
        while !until(&seen) {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let chunk = tokio::time::timeout(remaining, response.chunk())
                .await
                .unwrap_or_else(|_| panic!("the stream never showed it: {seen}"))
                .unwrap()
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        seen
    }
}

fn need(id: &str, collective: &str, task: &str, skill: &str) -> Value {
    json!({"id": id, "collective": collective, "title": format!("Need {id}"), "tasks": [
        {"id": task, "title": format!("Task {task}"), "skills": {skill: 2}, "hours": 2.0, "slots": 1,
         "earliest_start": hours_from_now(0), "deadline": hours_from_now(96), "impact": 5.0,
         "region": "detroit"}]})
}

fn offer(id: &str, skill: &str, name: &str) -> Value {
    json!({"id": id, "skills": {skill: 3}, "hours_per_week": 10.0,
        "available_from": hours_from_now(-1), "available_until": hours_from_now(21 * 24),
        "region": "detroit", "trust": 1, "name": name, "contact": format!("{name}@example.org")})
}

/// The id (`jti`) of a token of the test gateway.
fn token_id_of(token: &str) -> String {
    tests::gateway_config()
        .tokens()
        .unwrap()
        .verify_claims(token)
        .unwrap()
        .token_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_sees_and_changes_only_what_is_its_own() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(
        &nats,
        state.path(),
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
    let coordinator = Principal::Coordinator;
    let (tenants, pantry) = (
        Principal::Collective("c-tenants".into()),
        Principal::Collective("c-pantry".into()),
    );
    let (ana, bo) = (
        Principal::Volunteer("v-ana".into()),
        Principal::Volunteer("v-bo".into()),
    );

    // Each posts and offers only as itself.
    web.post_ok(
        &tenants,
        "/api/need",
        &need("n-clinic", "c-tenants", "t-intake", "legal"),
    )
    .await;
    web.post_ok(
        &pantry,
        "/api/need",
        &need("n-food", "c-pantry", "t-drive", "driving"),
    )
    .await;
    web.post_ok(
        &ana,
        "/api/volunteer",
        &offer("v-ana", "legal", "AnaPrivate"),
    )
    .await;
    web.post_ok(
        &bo,
        "/api/volunteer",
        &offer("v-bo", "driving", "BoPrivate"),
    )
    .await;
    let proposed = |view: &Value| {
        view["assignments"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty())
    };
    web.view_until(&ana, "/api/view/volunteer", proposed).await;
    web.view_until(&bo, "/api/view/volunteer", proposed).await;

    // Every role against every resource: (who, method, path, body, status).
    let reply_ana = json!({"volunteer": "v-ana", "task": "t-intake", "action": "checkin"});
    let reply_bo = json!({"volunteer": "v-bo", "task": "t-drive", "action": "accept"});
    let pledge = json!({"id": "p-1", "amount_cents": 100});
    let steer = json!({"action": "veto", "volunteer": "v-ana", "task": "t-intake"});
    let link = json!({"role": "volunteer", "id": "v-new"});
    let rosa = Principal::Vetter("vt-rosa".into());
    let vet_ana = json!({"volunteer": "v-ana", "trust": 1, "vetter": "vt-rosa"});
    // (who, method, path, body, expected status)
    type Case<'a> = (Option<&'a Principal>, Method, String, Option<Value>, u16);
    let cases: Vec<Case> = vec![
        // Nobody signed in: only health, the contract and registration.
        (None, Method::GET, "/api/me".into(), None, 401),
        (None, Method::GET, "/api/plan".into(), None, 401),
        (None, Method::GET, "/api/stream".into(), None, 401),
        (None, Method::GET, "/api/view/coordinator".into(), None, 401),
        (
            None,
            Method::GET,
            "/api/view/collective?id=c-tenants".into(),
            None,
            401,
        ),
        (
            None,
            Method::GET,
            "/api/view/volunteer?id=v-ana".into(),
            None,
            401,
        ),
        (
            None,
            Method::GET,
            "/api/charts/impact.svg".into(),
            None,
            401,
        ),
        (
            None,
            Method::POST,
            "/api/need".into(),
            Some(need("n-x", "c-tenants", "t-x", "legal")),
            401,
        ),
        (
            None,
            Method::POST,
            "/api/reply".into(),
            Some(reply_ana.clone()),
            401,
        ),
        (
            None,
            Method::POST,
            "/api/links".into(),
            Some(link.clone()),
            401,
        ),
        // A volunteer: only their own view, offer and answers.
        (
            Some(&ana),
            Method::GET,
            "/api/view/volunteer?id=v-bo".into(),
            None,
            403,
        ),
        (
            Some(&ana),
            Method::GET,
            "/api/view/collective?id=c-tenants".into(),
            None,
            403,
        ),
        (
            Some(&ana),
            Method::GET,
            "/api/view/coordinator".into(),
            None,
            403,
        ),
        (Some(&ana), Method::GET, "/api/plan".into(), None, 403),
        (
            Some(&ana),
            Method::GET,
            "/api/charts/hours.svg".into(),
            None,
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/volunteer".into(),
            Some(offer("v-bo", "legal", "Mallory")),
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/reply".into(),
            Some(reply_bo.clone()),
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/withdraw".into(),
            Some(json!({"kind": "volunteer", "id": "v-bo"})),
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/withdraw".into(),
            Some(json!({"kind": "need", "id": "n-food"})),
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/need".into(),
            Some(need("n-x", "c-tenants", "t-x", "legal")),
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/complete".into(),
            Some(json!({"task": "t-intake"})),
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/pledge".into(),
            Some(pledge.clone()),
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/steer".into(),
            Some(steer.clone()),
            403,
        ),
        (
            Some(&ana),
            Method::POST,
            "/api/links".into(),
            Some(link.clone()),
            403,
        ),
        // A collective: only its own needs and tasks.
        (
            Some(&tenants),
            Method::GET,
            "/api/view/collective?id=c-pantry".into(),
            None,
            403,
        ),
        (
            Some(&tenants),
            Method::GET,
            "/api/view/volunteer?id=v-ana".into(),
            None,
            403,
        ),
        (
            Some(&tenants),
            Method::GET,
            "/api/view/coordinator".into(),
            None,
            403,
        ),
        (Some(&tenants), Method::GET, "/api/plan".into(), None, 403),
        (
            Some(&tenants),
            Method::GET,
            "/api/charts/unmet.svg".into(),
            None,
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/need".into(),
            Some(need("n-x", "c-pantry", "t-x", "legal")),
            403,
        ),
        (
            Some(&pantry),
            Method::POST,
            "/api/need".into(),
            Some(need("n-clinic", "c-pantry", "t-intake", "legal")),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/complete".into(),
            Some(json!({"task": "t-drive"})),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/complete".into(),
            Some(json!({"task": "t-unknown"})),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/withdraw".into(),
            Some(json!({"kind": "task", "id": "t-drive"})),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/withdraw".into(),
            Some(json!({"kind": "need", "id": "n-food"})),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/withdraw".into(),
            Some(json!({"kind": "volunteer", "id": "v-ana"})),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/reply".into(),
            Some(reply_ana.clone()),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/volunteer".into(),
            Some(offer("v-ana", "legal", "Mallory")),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/pledge".into(),
            Some(pledge.clone()),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/steer".into(),
            Some(steer.clone()),
            403,
        ),
        (
            Some(&tenants),
            Method::POST,
            "/api/links".into(),
            Some(link.clone()),
            403,
        ),
        // A malformed body gets the services' own validation error, field and all.
        (
            Some(&tenants),
            Method::POST,
            "/api/need".into(),
            Some(
                json!({"id": "n-clinic", "collective": "c-tenants", "title": "x", "tasks": [{"id": 3}]}),
            ),
            422,
        ),
        // Coordinators see every view.
        (
            Some(&coordinator),
            Method::GET,
            "/api/view/collective?id=c-pantry".into(),
            None,
            200,
        ),
        (
            Some(&coordinator),
            Method::GET,
            "/api/view/volunteer?id=v-bo".into(),
            None,
            200,
        ),
        (
            Some(&coordinator),
            Method::GET,
            "/api/plan".into(),
            None,
            200,
        ),
        (
            Some(&coordinator),
            Method::POST,
            "/api/links".into(),
            Some(link.clone()),
            200,
        ),
        // Vetting is its own role: coordinators neither vet nor mint vetters.
        (
            Some(&coordinator),
            Method::POST,
            "/api/vet".into(),
            Some(vet_ana.clone()),
            403,
        ),
        (
            Some(&coordinator),
            Method::POST,
            "/api/links".into(),
            Some(json!({"role": "vetter", "id": "vt-mole"})),
            422,
        ),
        // A vetter vets in their own name and does nothing else.
        (
            Some(&rosa),
            Method::POST,
            "/api/vet".into(),
            Some(json!({"volunteer": "v-ana", "trust": 1, "vetter": "vt-other"})),
            403,
        ),
        (
            Some(&rosa),
            Method::POST,
            "/api/vet".into(),
            Some(vet_ana.clone()),
            200,
        ),
        (
            Some(&rosa),
            Method::POST,
            "/api/steer".into(),
            Some(steer.clone()),
            403,
        ),
        (
            Some(&rosa),
            Method::GET,
            "/api/view/coordinator".into(),
            None,
            403,
        ),
        (
            Some(&rosa),
            Method::GET,
            "/api/view/volunteer?id=v-ana".into(),
            None,
            403,
        ),
        (Some(&rosa), Method::GET, "/api/plan".into(), None, 403),
        (
            Some(&rosa),
            Method::POST,
            "/api/links".into(),
            Some(link.clone()),
            403,
        ),
    ];
    for (who, method, path, body, expected) in &cases {
        let (status, text) = web.call(*who, method.clone(), path, body.as_ref()).await;
        assert_eq!(
            status.as_u16(),
            *expected,
            "{who:?} {method} {path}: {text}"
        );
    }
    // Nothing refused was logged: the world is as the owners left it.
    let tenants_view = web.get(&tenants, "/api/view/collective").await;
    let pantry_view = web.get(&pantry, "/api/view/collective").await;
    assert_eq!(tenants_view["view"]["needs"].as_array().unwrap().len(), 1);
    assert_eq!(pantry_view["view"]["needs"][0]["id"], "n-food");

    // Views: each sees its own, and no names or contacts but one's own.
    let ana_view = web.get(&ana, "/api/view/volunteer").await.to_string();
    assert!(
        ana_view.contains("AnaPrivate") && ana_view.contains("t-intake"),
        "{ana_view}"
    );
    for foreign in ["v-bo", "BoPrivate", "t-drive", "c-pantry"] {
        assert!(
            !ana_view.contains(foreign),
            "{foreign} leaked to v-ana: {ana_view}"
        );
    }
    let tenants_text = tenants_view.to_string();
    assert!(tenants_text.contains("t-intake"), "{tenants_text}");
    for foreign in [
        "t-drive",
        "n-food",
        "c-pantry",
        "AnaPrivate",
        "BoPrivate",
        "example.org",
    ] {
        assert!(
            !tenants_text.contains(foreign),
            "{foreign} leaked to c-tenants: {tenants_text}"
        );
    }
    let dashboard = web
        .get(&coordinator, "/api/view/coordinator")
        .await
        .to_string();
    for everything in ["t-intake", "t-drive"] {
        assert!(dashboard.contains(everything), "{dashboard}");
    }

    // Answers: a volunteer answers their own proposal; then streams.
    let accept_ana = json!({"volunteer": "v-ana", "task": "t-intake", "action": "accept"});
    web.post_ok(&ana, "/api/reply", &accept_ana).await;
    web.post_ok(&bo, "/api/reply", &reply_bo).await;
    let both_accepted = |seen: &str| seen.matches("event: accepted").count() >= 2;
    let everything = web.stream_until(&coordinator, both_accepted).await;
    assert!(everything.contains("v-bo") && everything.contains("v-ana"));
    // By the time a stream shows its owner's acceptance it has passed over
    // every earlier event, including the other's proposal.
    let accepted = |seen: &str| seen.contains("event: accepted");
    let ana_stream = web.stream_until(&ana, accepted).await;
    assert!(
        !ana_stream.contains("v-bo") && !ana_stream.contains("t-drive"),
        "{ana_stream}"
    );
    let pantry_stream = web.stream_until(&pantry, accepted).await;
    assert!(
        !pantry_stream.contains("v-ana") && !pantry_stream.contains("t-intake"),
        "{pantry_stream}"
    );

    // A collective completes its own task.
    web.post_ok(&tenants, "/api/complete", &json!({"task": "t-intake"}))
        .await;
    let done = web.get(&tenants, "/api/view/collective").await;
    assert_eq!(done["view"]["done"][0]["task"], "t-intake", "{done}");

    // Tokens: forged ones fail; minted links and registration sign people in.
    // A token of another secret, and one with a byte of its sealed claims changed.
    let other = gateway::GatewayConfig::new(b"another gateway's secret".to_vec());
    let forged = other.tokens().unwrap().mint(&ana);
    let me = web
        .http
        .get(format!("{}/api/me", web.base))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let mut forged = gateway_token(&ana).into_bytes();
    let at = "v4.local.".len() + 5;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let me = web
        .http
        .get(format!("{}/api/me", web.base))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let minted = web.post_ok(&coordinator, "/api/links", &link).await;
    let signin = web
        .http
        .get(minted["link"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(signin.status(), 303);
    assert_eq!(signin.headers()["location"], "/volunteer");
    let cookie = signin.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let by_cookie: Value = web
        .http
        .get(format!("{}/api/me", web.base))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_cookie, json!({"role": "volunteer", "id": "v-new"}));

    let mut stranger = offer("ignored", "legal", "Cy");
    stranger["hours_per_week"] = json!(-1);
    let (status, text) = web
        .call(None, Method::POST, "/api/register", Some(&stranger))
        .await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("\"field\":\"hours_per_week\""), "{text}");
    stranger["hours_per_week"] = json!(4);
    let (status, text) = web
        .call(None, Method::POST, "/api/register", Some(&stranger))
        .await;
    assert_eq!(status, 200, "{text}");
    let registered: Value = serde_json::from_str(&text).unwrap();
    let id = registered["id"].as_str().unwrap();
    assert_ne!(id, "ignored", "the gateway chooses the id");
    let me: Value = web
        .http
        .get(format!("{}/api/me", web.base))
        .bearer_auth(registered["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], id);
    switchboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_list_is_served_and_documented() {
    let nats = NatsServer::start().await;
    let state = tempfile::tempdir().unwrap();
    let switchboard = Switchboard::start(
        &nats,
        state.path(),
        Options {
            gateway: true,
            ..Options::default()
        },
    )
    .await;
    let base = format!("http://{}", switchboard.http.unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let coordinator = gateway_token(&Principal::Coordinator);
    let document: Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A pledge for the donor's view to show.
    let pledged = http
        .post(format!("{base}/api/pledge"))
        .bearer_auth(&coordinator)
        .json(&json!({"id": "x-1", "amount_cents": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(pledged.status(), 200);
    for (method, path) in gateway::ROUTES {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
        let concrete = path
            .replace("{file}", "app.js")
            .replace("{chart}", "impact.svg")
            .replace("{operation}", "volunteer");
        // Coordinators name whose view they want.
        let query = match concrete.as_str() {
            "/signin" => format!("?token={}", gateway_link(&Principal::Coordinator)),
            "/api/view/collective"
            | "/api/view/volunteer"
            | "/api/view/donor"
            | "/api/view/funding" => "?id=x-1".to_owned(),
            _ => String::new(),
        };
        let url = format!("{base}{concrete}{query}");
        let request = match *method {
            "get" => http.get(&url),
            _ => http.post(&url).json(&match concrete.as_str() {
                "/api/links" => json!({"role": "collective", "id": "c-1"}),
                "/api/revoke" => {
                    json!({"token_id": token_id_of(&gateway_token(&Principal::Coordinator))})
                }
                _ => offer("v-routes", "legal", "Route"),
            }),
        };
        // Signing out ends the session it is sent with: a session of its own.
        let session = match concrete.as_str() {
            "/signout" => gateway_token(&Principal::Coordinator),
            _ => coordinator.clone(),
        };
        let response = request.bearer_auth(&session).send().await.unwrap();
        let status = response.status().as_u16();
        assert!(
            [200, 303].contains(&status),
            "{method} {path} answered {status}"
        );
    }
    switchboard.stop().await;
}
