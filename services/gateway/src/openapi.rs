//! The gateway's OpenAPI 3.1 document, generated when the router is built
//! from the route table ([`crate::routes`]) and the JSON Schemas of the
//! bodies, which schemars derives from the Rust types: the wire types'
//! (`proto`, the same derives `proto::schema` publishes) and the gateway's
//! own views and answers. Nothing in it is written by hand but the prose, so
//! it cannot drift from what the handlers send and take.
//!
//! Why schemars and not utoipa: the wire types already derive
//! `schemars::JsonSchema` (schemars 1, JSON Schema 2020-12, which is the
//! schema dialect of OpenAPI 3.1), so deriving utoipa's `ToSchema` as well
//! would put two schema derives on one type, two descriptions that could
//! disagree. The document's frame (paths, parameters, security) is small
//! enough to build as JSON from the table.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use proto::money::Disbursal;
use proto::subjects::Input;
use proto::wire::{
    NeedPost, PledgeOffer, Steering, TaskCompletion, Vetting, VolunteerOffer, VolunteerReply,
    Withdrawal,
};
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::access::TOKEN_COOKIE;
use crate::routes::{schema_of, Access, Body, Parameter, Route, OVER_ALLOWANCE, TABLE};
use crate::Gateway;

/// The OpenAPI version the document follows.
pub const OPENAPI_VERSION: &str = "3.1.0";
/// Where the bodies' schemas live in the document, as a JSON pointer.
const SCHEMAS_POINTER: &str = "/components/schemas";
/// The extension of `POST /api/{operation}`'s body that names each
/// operation's own schema (the body's `anyOf` alone would not say which).
pub const BODY_BY_OPERATION: &str = "x-body-by-operation";

const DESCRIPTION: &str = "HTTP for people and programs that do not speak NATS. \
Every /api route except /api/register and this document needs a token: `Authorization: Bearer <token>` \
or the `sb_token` cookie set by a sign-in link. Tokens are per role: the coordinators, one collective, \
one volunteer, one vetter, or one donor (for their pledge). Operation bodies are those of proto/README.md \
(JSON Schemas in proto/schema/, the same as under components here); replies are `{ok, id, seq}` or \
`{ok:false, error:{code, message, field}}`. Every route answers 429 with Retry-After to a client over \
its allowance. Generated from the gateway's route table and the Rust types of the bodies.";

/// Schemas as OpenAPI 3.1 takes them: JSON Schema 2020-12, each named type
/// once under `components/schemas`.
fn schema_settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|settings| {
        settings.definitions_path = SCHEMAS_POINTER.into();
        settings.meta_schema = None;
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut generator = schema_settings().into_generator();
    let mut paths = Map::new();
    for route in TABLE {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(
                route.method.token().to_owned(),
                operation(route, &mut generator),
            );
        }
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Switchboard gateway",
            "version": "1",
            "description": DESCRIPTION,
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": TOKEN_COOKIE},
            },
            "schemas": generator.take_definitions(true),
        },
        "paths": paths,
    })
}

/// The document as served: made once, when the router is built.
pub fn document_bytes() -> anyhow::Result<Bytes> {
    Ok(Bytes::from(serde_json::to_vec(&document())?))
}

/// `GET /api/openapi.json`: open to all, like any published contract.
pub async fn serve(State(gateway): State<Gateway>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        gateway.openapi.clone(),
    )
        .into_response()
}

fn operation(route: &Route, generator: &mut SchemaGenerator) -> Value {
    let mut operation = Map::new();
    operation.insert("summary".to_owned(), route.summary.into());
    if let Some(description) = route.description {
        operation.insert("description".to_owned(), description.into());
    }
    if route.access == Access::SignedIn {
        operation.insert(
            "security".to_owned(),
            json!([{"bearer": []}, {"cookie": []}]),
        );
    }
    if !route.parameters.is_empty() {
        let parameters = route
            .parameters
            .iter()
            .map(|parameter| parameter_object(parameter, generator))
            .collect();
        operation.insert("parameters".to_owned(), Value::Array(parameters));
    }
    if let Some(body) = route.request {
        operation.insert(
            "requestBody".to_owned(),
            json!({"required": true, "content": content(body, generator)}),
        );
    }
    let mut responses = Map::new();
    for answer in route.responses.iter().chain([&OVER_ALLOWANCE]) {
        let mut response = Map::new();
        response.insert("description".to_owned(), answer.description.into());
        let content = content(answer.body, generator);
        if !content.is_empty() {
            response.insert("content".to_owned(), Value::Object(content));
        }
        responses.insert(answer.status.to_string(), Value::Object(response));
    }
    operation.insert("responses".to_owned(), Value::Object(responses));
    Value::Object(operation)
}

fn parameter_object(parameter: &Parameter, generator: &mut SchemaGenerator) -> Value {
    let mut object = Map::new();
    object.insert("name".to_owned(), parameter.name.into());
    object.insert("in".to_owned(), parameter.location.token().into());
    object.insert("required".to_owned(), parameter.required.into());
    if let Some(description) = parameter.description {
        object.insert("description".to_owned(), description.into());
    }
    object.insert(
        "schema".to_owned(),
        (parameter.schema)(generator).to_value(),
    );
    Value::Object(object)
}

/// A request's or response's `content`: media type to schema.
fn content(body: Body, generator: &mut SchemaGenerator) -> Map<String, Value> {
    let mut content = Map::new();
    match body {
        Body::Json(schema_of) => {
            content.insert(
                "application/json".to_owned(),
                json!({"schema": schema_of(generator).to_value()}),
            );
        }
        Body::Operation => {
            let by_operation: Map<String, Value> = Input::ALL
                .into_iter()
                .map(|input| {
                    let schema = operation_body(input, generator).to_value();
                    (input.token().to_owned(), schema)
                })
                .collect();
            let any_of: Vec<Value> = by_operation.values().cloned().collect();
            content.insert(
                "application/json".to_owned(),
                json!({"schema": {"anyOf": any_of}, BODY_BY_OPERATION: by_operation}),
            );
        }
        Body::Text(media_type) => {
            content.insert(media_type.to_owned(), json!({"schema": {"type": "string"}}));
        }
        Body::Empty => {}
    }
    content
}

/// The body `POST /api/<operation>` forwards to `sb.in.<operation>`.
fn operation_body(input: Input, generator: &mut SchemaGenerator) -> Schema {
    match input {
        Input::Volunteer => schema_of::<VolunteerOffer>(generator),
        Input::Need => schema_of::<NeedPost>(generator),
        Input::Pledge => schema_of::<PledgeOffer>(generator),
        Input::Withdraw | Input::Forget => schema_of::<Withdrawal>(generator),
        Input::Reply => schema_of::<VolunteerReply>(generator),
        Input::Complete => schema_of::<TaskCompletion>(generator),
        Input::Steer => schema_of::<Steering>(generator),
        Input::Vet => schema_of::<Vetting>(generator),
        Input::Disburse => schema_of::<Disbursal>(generator),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// Every schema of the document compiled (so every `$ref` resolves),
    /// by its JSON pointer.
    struct Compiled {
        schemas: boon::Schemas,
        by_pointer: Vec<(String, boon::SchemaIndex)>,
    }

    const DOCUMENT_URL: &str = "https://gateway.switchboard.invalid/api/openapi.json";

    fn escape(token: &str) -> String {
        token.replace('~', "~0").replace('/', "~1")
    }

    /// The pointers of every schema in `document`: components, parameters,
    /// request and response bodies.
    fn schema_pointers(document: &Value) -> Vec<String> {
        let mut pointers: Vec<String> = document["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
            .map(|name| format!("/components/schemas/{}", escape(name)))
            .collect();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let base = format!("/paths/{}/{method}", escape(path));
                let parameters = operation["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for index in 0..parameters.len() {
                    pointers.push(format!("{base}/parameters/{index}/schema"));
                }
                let mut contents = vec![];
                if let Some(content) = operation["requestBody"]["content"].as_object() {
                    contents.push((format!("{base}/requestBody/content"), content.clone()));
                }
                for (status, response) in operation["responses"].as_object().unwrap() {
                    if let Some(content) = response["content"].as_object() {
                        contents.push((
                            format!("{base}/responses/{status}/content"),
                            content.clone(),
                        ));
                    }
                }
                for (at, content) in contents {
                    for (media_type, media) in content {
                        let media_at = format!("{at}/{}", escape(&media_type));
                        pointers.push(format!("{media_at}/schema"));
                        for operation in media[BODY_BY_OPERATION].as_object().into_iter().flatten()
                        {
                            pointers
                                .push(format!("{media_at}/{BODY_BY_OPERATION}/{}", operation.0));
                        }
                    }
                }
            }
        }
        pointers
    }

    fn compile(document: &Value) -> Compiled {
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler
            .add_resource(DOCUMENT_URL, document.clone())
            .unwrap();
        let mut schemas = boon::Schemas::new();
        let by_pointer = schema_pointers(document)
            .into_iter()
            .map(|pointer| {
                let index = compiler
                    .compile(&format!("{DOCUMENT_URL}#{pointer}"), &mut schemas)
                    .unwrap_or_else(|error| panic!("{pointer} does not compile: {error:#}"));
                (pointer, index)
            })
            .collect();
        Compiled {
            schemas,
            by_pointer,
        }
    }

    impl Compiled {
        fn validate(&self, pointer: &str, instance: &Value) -> Result<(), String> {
            let (_, index) = self
                .by_pointer
                .iter()
                .find(|(compiled, _)| compiled == pointer)
                .unwrap_or_else(|| panic!("no schema at {pointer}"));
            self.schemas
                .validate(instance, *index)
                .map_err(|error| format!("{error:#}"))
        }
    }

    #[test]
    fn the_document_describes_every_route_and_only_routes_that_are_served() {
        let document = document();
        assert_eq!(document["openapi"], OPENAPI_VERSION);
        for (method, path) in crate::ROUTES {
            let operation = &document["paths"][path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|responses| !responses.is_empty()),
                "{method} {path} documents no responses"
            );
        }
        let mut documented = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented += 1;
                assert!(
                    crate::ROUTES.contains(&(method.as_str(), path.as_str())),
                    "{method} {path} is documented but not served"
                );
            }
        }
        assert_eq!(documented, crate::ROUTES.len(), "a route is listed twice");
    }

    #[test]
    fn every_api_route_but_registration_and_the_document_asks_for_a_token() {
        let document = document();
        for (method, path) in crate::ROUTES {
            let operation = &document["paths"][path][method];
            let asks = operation["security"] == json!([{"bearer": []}, {"cookie": []}]);
            let open =
                ["/api/register", "/api/openapi.json"].contains(path) || !path.starts_with("/api/");
            assert_eq!(asks, !open, "{method} {path}");
            if asks {
                assert!(
                    operation["responses"]["401"].is_object(),
                    "{method} {path} has no 401"
                );
            }
            assert!(
                operation["responses"]["429"].is_object(),
                "{method} {path} has no 429"
            );
        }
        assert_eq!(
            document["components"]["securitySchemes"]["cookie"]["name"],
            TOKEN_COOKIE
        );
    }

    #[test]
    fn every_schema_in_the_document_compiles_and_every_reference_resolves() {
        let document = document();
        let compiled = compile(&document);
        // Components, the view answers, the operations, the parameters.
        assert!(
            compiled.by_pointer.len() > 60,
            "{}",
            compiled.by_pointer.len()
        );
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for wanted in [
            "Reply",
            "NeedPost",
            "VersionedCoordinatorView",
            "DonorView",
            "Registration",
            "Me",
            "Health",
        ] {
            assert!(
                schemas.contains_key(wanted),
                "no component {wanted}: {:?}",
                schemas.keys()
            );
        }
        // Two types of one name would be told apart only by a number.
        for name in schemas.keys() {
            assert!(!name.ends_with('2'), "schema name collision: {name}");
        }
    }

    #[test]
    fn each_operation_names_its_own_body_and_the_registration_needs_no_id() {
        let document = document();
        let compiled = compile(&document);
        let operations = "/paths/~1api~1{operation}/post/requestBody/content/application~1json";
        let body = |operation: &str| format!("{operations}/{BODY_BY_OPERATION}/{operation}");
        let need = json!({"id": "n-1", "collective": "c-1", "title": "Pantry", "tasks": [
            {"id": "t-1", "title": "Drive", "hours": 2.0, "slots": 1, "impact": 5.0,
             "earliest_start": "2026-11-22T09:00:00Z", "deadline": "2026-11-29T09:00:00Z"}]});
        compiled.validate(&body("need"), &need).unwrap();
        compiled
            .validate(&format!("{operations}/schema"), &need)
            .unwrap();
        assert!(compiled
            .validate(&body("need"), &json!({"task": "t-1"}))
            .is_err());
        compiled
            .validate(&body("complete"), &json!({"task": "t-1"}))
            .unwrap();
        let weight = json!({"action": "weight", "collective": "c-1", "factor": 2.0});
        compiled.validate(&body("steer"), &weight).unwrap();
        assert!(compiled
            .validate(&body("steer"), &json!({"action": "shout"}))
            .is_err());

        let registration =
            "/paths/~1api~1register/post/requestBody/content/application~1json/schema";
        let offer = json!({"skills": {"driving": 3}, "hours_per_week": 6.0,
            "available_from": "2026-11-22T09:00:00Z", "available_until": "2026-12-13T09:00:00Z"});
        compiled.validate(registration, &offer).unwrap();
        let volunteer = body("volunteer");
        assert!(
            compiled.validate(&volunteer, &offer).is_err(),
            "an operation's offer names its id"
        );
        let mut with_id = offer.clone();
        with_id["id"] = json!("v-1");
        compiled.validate(&volunteer, &with_id).unwrap();
    }

    #[test]
    fn the_views_drawn_from_a_model_match_their_schemas() {
        use crate::model::ReadModel;
        use proto::events::Event;
        let at = |day: u32| {
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, day, 9, 0, 0).unwrap()
        };
        let mut model = ReadModel::default();
        let need: NeedPost = serde_json::from_value(json!({"id": "n-1", "collective": "c-1", "title": "Pantry", "tasks": [
            {"id": "t-1", "title": "Drive", "skills": {"driving": 2}, "hours": 2.0, "slots": 2, "impact": 5.0,
             "earliest_start": at(22), "deadline": at(29), "region": "detroit"}]}))
        .unwrap();
        let offer: VolunteerOffer = serde_json::from_value(json!({"id": "v-1", "skills": {"driving": 3},
            "hours_per_week": 6.0, "available_from": at(21), "available_until": at(28), "name": "Ana"}))
        .unwrap();
        model.apply_event(Event::NeedPosted(need), 1, at(22));
        model.apply_event(Event::VolunteerOffered(offer), 2, at(22));
        let document = document();
        let compiled = compile(&document);
        let ok = |path: &str| {
            format!(
                "/paths/{}/get/responses/200/content/application~1json/schema",
                escape(path)
            )
        };
        let versioned = |view: Value| json!({"version": 2, "view": view});
        let cases = [
            (
                "/api/view/coordinator",
                serde_json::to_value(crate::views::coordinator(&model, at(22), None)).unwrap(),
            ),
            (
                "/api/view/collective",
                serde_json::to_value(crate::views::collective(&model, "c-1", None)).unwrap(),
            ),
            (
                "/api/view/volunteer",
                serde_json::to_value(crate::views::volunteer(&model, "v-1", at(22))).unwrap(),
            ),
            (
                "/api/view/donor",
                serde_json::to_value(crate::money::donor(&model, "p-1")).unwrap(),
            ),
            (
                "/api/view/funding",
                serde_json::to_value(crate::money::funding(&model, "c-1")).unwrap(),
            ),
            (
                "/api/view/pool",
                serde_json::to_value(crate::money::pool(&model, at(22))).unwrap(),
            ),
        ];
        for (path, view) in cases {
            compiled
                .validate(&ok(path), &versioned(view.clone()))
                .unwrap_or_else(|error| panic!("{path}: {error}\n{view}"));
        }
        // And a view of the wrong kind does not pass for another.
        let volunteer =
            serde_json::to_value(crate::views::volunteer(&model, "v-1", at(22))).unwrap();
        assert!(compiled
            .validate(&ok("/api/view/coordinator"), &versioned(volunteer))
            .is_err());
        let me =
            serde_json::to_value(crate::access::Principal::Donor("p-1".into()).describe()).unwrap();
        compiled.validate(&ok("/api/me"), &me).unwrap();
        assert_eq!(me, json!({"role": "donor", "id": "p-1"}));
    }

    #[test]
    fn the_id_pattern_is_the_wire_syntax_of_ids() {
        let bound = format!("{{1,{}}}", proto::ids::ID_BYTES_MAX);
        assert!(crate::routes::ID_PATTERN.contains(&bound), "{bound}");
    }
}
