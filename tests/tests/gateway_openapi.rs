//! The gateway's OpenAPI document against the gateway itself: on a real
//! switchboard, every route is called the way its users call it, and every
//! request body sent and every JSON body answered is validated against the
//! schemas of the document the gateway serves (with boon, a JSON Schema
//! 2020-12 validator). Each answer's status and media type must be one the
//! document lists for that route, and every documented route must be called.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use gateway::access::Principal;
use reqwest::Method;
use serde_json::{json, Value};
use tests::{
    gateway_link, gateway_token, hours_from_now, NatsServer, Options, Switchboard, EXPECT_WITHIN,
};

/// Where the document is known to the validator; `$ref`s resolve against it.
const DOCUMENT_URL: &str = "https://gateway.switchboard.invalid/api/openapi.json";
/// The extension naming each operation's own body (see the gateway's `openapi`).
const BODY_BY_OPERATION: &str = "x-body-by-operation";

/// A JSON pointer token: `/` and `~` escaped.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The document's schemas, compiled on first use.
struct Contract {
    document: Value,
    compiler: boon::Compiler,
    schemas: boon::Schemas,
    compiled: BTreeMap<String, boon::SchemaIndex>,
}

impl Contract {
    fn new(document: Value) -> Contract {
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        // Dates and times are checked as such, not only as strings.
        compiler.enable_format_assertions();
        compiler
            .add_resource(DOCUMENT_URL, document.clone())
            .unwrap();
        Contract {
            document,
            compiler,
            schemas: boon::Schemas::new(),
            compiled: BTreeMap::new(),
        }
    }

    /// Validates `instance` against the schema at `pointer` in the document.
    fn validate(&mut self, pointer: &str, instance: &Value) {
        if let Err(error) = self.check(pointer, instance) {
            panic!("{instance} does not match {pointer}: {error}");
        }
    }

    fn check(&mut self, pointer: &str, instance: &Value) -> Result<(), String> {
        let index = match self.compiled.get(pointer) {
            Some(index) => *index,
            None => {
                let index = self
                    .compiler
                    .compile(&format!("{DOCUMENT_URL}#{pointer}"), &mut self.schemas)
                    .unwrap_or_else(|error| panic!("{pointer} does not compile: {error:#}"));
                self.compiled.insert(pointer.to_owned(), index);
                index
            }
        };
        self.schemas
            .validate(instance, index)
            .map_err(|error| format!("{error:#}"))
    }

    /// The documented path whose template matches `path`, literal segments
    /// preferred over parameters (as the router prefers them).
    fn template_of(&self, method: &str, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        self.document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, item)| item[method].is_object())
            .filter_map(|(template, _)| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') && part.ends_with('}') {
                        continue;
                    }
                    if part != segment {
                        return None;
                    }
                    literal += 1;
                }
                Some((literal, template.clone()))
            })
            .max()
            .map(|(_, template)| template)
            .unwrap_or_else(|| panic!("{method} {path} matches no documented path"))
    }
}

/// Whether a request's body is meant to be valid.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sending {
    Valid,
    Invalid,
}

/// An HTTP client of the gateway that checks every exchange against the contract.
struct Web {
    base: String,
    http: reqwest::Client,
    contract: Contract,
    /// `(method, path template)` of every call the gateway answered without refusing.
    served: BTreeSet<(String, String)>,
}

impl Web {
    /// Calls `path` (with its query) as `who`, checks the exchange against
    /// the document, and returns the status and the JSON body (or null).
    async fn call(
        &mut self,
        who: Option<&Principal>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.exchange(who, method, path, body, Sending::Valid).await
    }

    /// Sends a body the services must refuse, to check their refusal is
    /// documented; the body is not checked, as it may break the schema.
    async fn call_with_a_bad_body(
        &mut self,
        who: Option<&Principal>,
        method: Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        self.exchange(who, method, path, Some(body), Sending::Invalid)
            .await
    }

    async fn exchange(
        &mut self,
        who: Option<&Principal>,
        method: Method,
        path: &str,
        body: Option<&Value>,
        sending: Sending,
    ) -> (u16, Value) {
        let method_token = method.as_str().to_lowercase();
        let bare = path.split('?').next().unwrap();
        let template = self.contract.template_of(&method_token, bare);
        let operation = format!("/paths/{}/{method_token}", escape(&template));
        let mut body_checked = true;
        if let Some(body) = body {
            let request = format!("{operation}/requestBody/content/application~1json");
            assert!(
                self.contract
                    .document
                    .pointer(&format!("{request}/schema"))
                    .is_some(),
                "{method} {template} documents no JSON body"
            );
            if sending == Sending::Invalid {
                body_checked = false;
            }
            if body_checked {
                self.contract.validate(&format!("{request}/schema"), body);
            }
            let by_operation = format!("{request}/{BODY_BY_OPERATION}");
            if body_checked && self.contract.document.pointer(&by_operation).is_some() {
                let named = bare.rsplit('/').next().unwrap();
                self.contract
                    .validate(&format!("{by_operation}/{}", escape(named)), body);
            }
        }
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(principal) = who {
            request = request.bearer_auth(gateway_token(principal));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let answer = format!("{operation}/responses/{status}");
        let documented = self
            .contract
            .document
            .pointer(&answer)
            .unwrap_or_else(|| panic!("{method} {path} answered {status}, which is not documented"))
            .clone();
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            });
        let mut json_body = Value::Null;
        if let Some(content) = documented["content"].as_object() {
            let media_type = media_type.unwrap_or_default();
            assert!(
                content.contains_key(&media_type),
                "{method} {path} answered {status} as {media_type:?}, documented as {:?}",
                content.keys()
            );
            if media_type == "application/json" {
                let text = response.text().await.unwrap();
                json_body = serde_json::from_str(&text)
                    .unwrap_or_else(|error| panic!("{method} {path}: {error}: {text}"));
                let schema = format!("{answer}/content/application~1json/schema");
                self.contract.validate(&schema, &json_body);
            }
        }
        if status < 400 {
            self.served.insert((method_token, template));
        }
        (status, json_body)
    }

    async fn ok(
        &mut self,
        who: Option<&Principal>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let (status, answer) = self.call(who, method.clone(), path, body).await;
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer
    }

    /// Long-polls a view by its version until `wanted` holds of it.
    async fn view_until(
        &mut self,
        who: &Principal,
        path: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + EXPECT_WITHIN;
        let mut answer = self.ok(Some(who), Method::GET, path, None).await;
        while !wanted(&answer["view"]) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never showed it: {answer}"
            );
            let separator = if path.contains('?') { '&' } else { '?' };
            let version = answer["version"].as_u64().unwrap();
            let next = format!("{path}{separator}newer_than={version}");
            answer = self.ok(Some(who), Method::GET, &next, None).await;
        }
        answer["view"].clone()
    }
}

fn need() -> Value {
    json!({"id": "n-pantry", "collective": "c-pantry", "title": "Pantry month", "tasks": [
        {"id": "t-drive", "title": "Drive the food round", "skills": {"driving": 2}, "hours": 3.0,
         "slots": 1, "earliest_start": hours_from_now(0), "deadline": hours_from_now(5 * 24),
         "region": "detroit", "impact": 20.0, "tags": ["food"]},
        {"id": "t-rent", "title": "Rent for the pantry", "hours": 0.0, "slots": 0,
         "earliest_start": hours_from_now(0), "deadline": hours_from_now(10 * 24),
         "impact": 30.0, "money_cents": 40000, "tags": ["housing"]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_its_openapi_document_says_with_bodies_that_match_the_schemas() {
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
    let document: Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut web = Web {
        base,
        http,
        contract: Contract::new(document),
        served: BTreeSet::new(),
    };
    let coordinator = Principal::Coordinator;
    let pantry = Principal::Collective("c-pantry".into());
    let ana = Principal::Volunteer("v-ana".into());
    let rosa = Principal::Vetter("vt-rosa".into());
    let donor = Principal::Donor("p-housing".into());
    use Method as M;

    // Open to all: health, the document itself, the pages and their assets.
    web.ok(None, M::GET, "/health", None).await;
    web.ok(None, M::GET, "/api/openapi.json", None).await;
    for page in [
        "/",
        "/coordinator",
        "/collective",
        "/volunteer",
        "/vetter",
        "/donor",
    ] {
        web.ok(None, M::GET, page, None).await;
    }
    web.ok(None, M::GET, "/assets/app.css", None).await;
    web.ok(None, M::GET, "/assets/app.js", None).await;
    let (status, _) = web.call(None, M::GET, "/assets/missing.js", None).await;
    assert_eq!(status, 404);

    // Every role's sign-in, and who each token stands for.
    for principal in [&coordinator, &pantry, &ana, &rosa, &donor] {
        let me = web.ok(Some(principal), M::GET, "/api/me", None).await;
        assert_eq!(me["id"].is_null(), *principal == coordinator, "{me}");
        let signin = format!("/signin?token={}", gateway_link(principal));
        let (status, _) = web.call(None, M::GET, &signin, None).await;
        assert_eq!(status, 303);
        // A session token never signs in from a URL.
        let signin = format!("/signin?token={}", gateway_token(principal));
        let (status, _) = web.call(None, M::GET, &signin, None).await;
        assert_eq!(status, 401);
    }
    let (status, refusal) = web.call(None, M::GET, "/api/me", None).await;
    assert_eq!(status, 401, "{refusal}");
    let (status, _) = web
        .call(None, M::GET, "/signin?token=v1.coordinator.all.00", None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = web.call(None, M::GET, "/signout", None).await;
    assert_eq!(status, 303);

    // The writes: a need with a task for people and one for money, a pledge
    // for it, a volunteer's offer, a stranger's registration.
    let posted = web
        .ok(Some(&pantry), M::POST, "/api/need", Some(&need()))
        .await;
    assert_eq!(posted["ok"], true, "{posted}");
    let mut invalid = need();
    invalid["tasks"][0]["hours"] = json!(-4);
    let (status, refusal) = web
        .call_with_a_bad_body(Some(&pantry), M::POST, "/api/need", &invalid)
        .await;
    assert_eq!(
        (status, refusal["error"]["field"].as_str()),
        (422, Some("tasks[0].hours"))
    );
    let pledge =
        json!({"id": "p-housing", "amount_cents": 40000, "tags": ["housing"], "donor": "Ana"});
    web.ok(Some(&donor), M::POST, "/api/pledge", Some(&pledge))
        .await;
    let offer = json!({"id": "v-ana", "skills": {"driving": 3}, "hours_per_week": 10.0,
        "available_from": hours_from_now(-1), "available_until": hours_from_now(21 * 24),
        "region": "detroit", "name": "Ana", "contact": "ana@example.org", "languages": ["es"]});
    web.ok(Some(&ana), M::POST, "/api/volunteer", Some(&offer))
        .await;
    let stranger = json!({"skills": {"legal": 2}, "hours_per_week": 4.0,
        "available_from": hours_from_now(-1), "available_until": hours_from_now(14 * 24),
        "name": "Cy"});
    let registered = web
        .ok(None, M::POST, "/api/register", Some(&stranger))
        .await;
    let cy = Principal::Volunteer(registered["id"].as_str().unwrap().to_owned());
    let link = json!({"role": "collective", "id": "c-tenants"});
    let minted = web
        .ok(Some(&coordinator), M::POST, "/api/links", Some(&link))
        .await;
    assert!(
        minted["link"].as_str().unwrap().contains("/signin?token="),
        "{minted}"
    );
    // A coordinator revokes a session (here a fresh one of the collective's).
    let session = gateway_token(&Principal::Collective("c-tenants".into()));
    let token_id = tests::gateway_config()
        .tokens()
        .unwrap()
        .verify_claims(&session)
        .unwrap()
        .token_id;
    let revoked = web
        .ok(
            Some(&coordinator),
            M::POST,
            "/api/revoke",
            Some(&json!({"token_id": token_id})),
        )
        .await;
    assert_eq!(revoked["id"], json!(token_id), "{revoked}");
    // A vetter's link is refused, as the document's enum of roles says.
    let vetter_link = json!({"role": "vetter", "id": "vt-x"});
    let links_body = "/paths/~1api~1links/post/requestBody/content/application~1json/schema";
    assert!(web.contract.check(links_body, &vetter_link).is_err());
    let (status, _) = web
        .call_with_a_bad_body(Some(&coordinator), M::POST, "/api/links", &vetter_link)
        .await;
    assert_eq!(status, 422);

    // The volunteer is proposed the drive and accepts; a vetter vouches for
    // her; the coordinators set a campaign weight.
    let proposed = |view: &Value| {
        view["assignments"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty())
    };
    let mine = web.view_until(&ana, "/api/view/volunteer", proposed).await;
    assert_eq!(mine["assignments"][0]["task"], "t-drive", "{mine}");
    let accept = json!({"volunteer": "v-ana", "task": "t-drive", "action": "accept"});
    web.ok(Some(&ana), M::POST, "/api/reply", Some(&accept))
        .await;
    let vet =
        json!({"volunteer": "v-ana", "trust": 1, "vetter": "vt-rosa", "note": "met at the clinic"});
    web.ok(Some(&rosa), M::POST, "/api/vet", Some(&vet)).await;
    let weight = json!({"action": "weight", "collective": "c-pantry", "tag": null, "factor": 2.0});
    web.ok(Some(&coordinator), M::POST, "/api/steer", Some(&weight))
        .await;

    // Every view, for its owner and for the coordinators.
    web.view_until(&coordinator, "/api/view/coordinator", |view| {
        view["assignments"][0]["state"] == "accepted"
    })
    .await;
    web.ok(Some(&pantry), M::GET, "/api/view/collective", None)
        .await;
    web.ok(
        Some(&coordinator),
        M::GET,
        "/api/view/collective?id=c-pantry",
        None,
    )
    .await;
    web.ok(
        Some(&coordinator),
        M::GET,
        "/api/view/volunteer?id=v-ana",
        None,
    )
    .await;
    let (status, _) = web
        .call(Some(&ana), M::GET, "/api/view/coordinator", None)
        .await;
    assert_eq!(status, 403);
    let funded = |view: &Value| {
        view["funded"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty())
    };
    web.view_until(&pantry, "/api/view/funding", funded).await;
    let held = |view: &Value| view["held"].as_array().is_some_and(|rows| !rows.is_empty());
    web.view_until(&donor, "/api/view/donor", held).await;
    web.ok(
        Some(&coordinator),
        M::GET,
        "/api/view/donor?id=p-housing",
        None,
    )
    .await;
    // Who did it: the coordinators' trail, whole and filtered.
    let trail = web
        .ok(Some(&coordinator), M::GET, "/api/view/audit", None)
        .await;
    assert!(
        !trail["view"]["entries"].as_array().unwrap().is_empty(),
        "{trail}"
    );
    web.ok(
        Some(&coordinator),
        M::GET,
        "/api/view/audit?actor=coordinator&entity=c-pantry",
        None,
    )
    .await;
    web.ok(Some(&coordinator), M::GET, "/api/view/pool", None)
        .await;
    let plan = web.ok(Some(&coordinator), M::GET, "/api/plan", None).await;
    assert_eq!(plan["format"], "switchboard-plan/1");

    // The money is paid out, the work done, the stranger withdraws.
    let pay = json!({"id": "pay-rent", "task": "t-rent", "reference": "transfer 9"});
    web.ok(Some(&pantry), M::POST, "/api/disburse", Some(&pay))
        .await;
    web.ok(
        Some(&pantry),
        M::POST,
        "/api/complete",
        Some(&json!({"task": "t-drive"})),
    )
    .await;
    let (status, refusal) = web
        .call(
            Some(&pantry),
            M::POST,
            "/api/complete",
            Some(&json!({"task": "t-unknown"})),
        )
        .await;
    assert_eq!(status, 403, "{refusal}");
    let withdraw = json!({"kind": "volunteer", "id": registered["id"]});
    web.ok(Some(&cy), M::POST, "/api/withdraw", Some(&withdraw))
        .await;
    let done = web
        .view_until(&ana, "/api/view/volunteer", |view| {
            view["delivered"]
                .as_array()
                .is_some_and(|rows| !rows.is_empty())
        })
        .await;
    assert_eq!(done["delivered"][0]["task"], "t-drive");
    web.ok(Some(&coordinator), M::GET, "/api/view/pool", None)
        .await;

    // What is not JSON still comes as documented: the CSV, the charts, the
    // donor's own page, the event stream (not read: it never ends).
    web.ok(Some(&donor), M::GET, "/api/ledger.csv", None).await;
    for chart in ["impact", "hours", "unmet"] {
        web.ok(
            Some(&coordinator),
            M::GET,
            &format!("/api/charts/{chart}.svg"),
            None,
        )
        .await;
    }
    let (status, _) = web
        .call(Some(&coordinator), M::GET, "/api/charts/pie.svg", None)
        .await;
    assert_eq!(status, 404);
    web.ok(Some(&donor), M::GET, "/donor", None).await;
    // Forgetting the donor's name answers a page; the pledge stays.
    web.ok(Some(&donor), M::POST, "/donor/forget", None).await;
    web.ok(Some(&donor), M::GET, "/donor", None).await;
    web.ok(Some(&coordinator), M::GET, "/api/stream", None)
        .await;
    let (status, _) = web.call(None, M::GET, "/api/stream", None).await;
    assert_eq!(status, 401);

    // Nothing documented went uncalled.
    let documented: BTreeSet<(String, String)> = web.contract.document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let uncalled: Vec<_> = documented.difference(&web.served).collect();
    assert!(
        uncalled.is_empty(),
        "never called with success: {uncalled:?}"
    );
    assert_eq!(documented.len(), gateway::ROUTES.len());
    switchboard.stop().await;
}
