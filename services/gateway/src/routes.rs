//! Every route the gateway serves, in one table: the router is built from
//! it ([`crate::router`]) and so is the OpenAPI document ([`crate::openapi`]),
//! so a route cannot be served undocumented or documented unserved.
//!
//! Each row holds what the document says of a route (summary, who may call
//! it, parameters, the bodies it takes and answers) next to the handler
//! that serves it. Bodies are named by their Rust types; their JSON Schemas
//! come from the types' `schemars::JsonSchema` derives (the wire types'
//! in `proto`, the views' here), never written by hand.

use axum::routing::{on, MethodFilter, MethodRouter};
use proto::subjects::Input;
use proto::wire::Reply;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::access::Me;
use crate::api::{self, Health, LinkMinted, LinkRequest, Registered, Versioned};
use crate::audit::AuditView;
use crate::charts::Chart;
use crate::money::{DonorView, FundingView, PoolView};
use crate::views::{CollectiveView, CoordinatorView, VolunteerView};
use crate::{openapi, pages, Gateway};

/// The syntax of every id on the wire (`proto::ids::is_valid_id`), as a
/// JSON Schema pattern.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// The HTTP methods the gateway answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

impl HttpMethod {
    /// The method as OpenAPI spells it (a key of a path item).
    pub const fn token(self) -> &'static str {
        match self {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            HttpMethod::Get => MethodFilter::GET,
            HttpMethod::Post => MethodFilter::POST,
        }
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the route checks nothing, or (`/donor`, `/api/register`)
    /// decides for itself.
    Open,
    /// A valid token, as `Authorization: Bearer` or the sign-in cookie; the
    /// route then answers only what that principal may see.
    SignedIn,
}

/// Makes the JSON Schema of a body or parameter, registering the schemas it
/// refers to with the generator (which become the document's components).
pub type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`: a `$ref` to its component, for a named type.
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What a request or an answer carries.
#[derive(Clone, Copy)]
pub enum Body {
    /// JSON of this schema.
    Json(SchemaOf),
    /// The body of the operation named in the path: one schema per
    /// `proto::subjects::Input`.
    Operation,
    /// Text of this media type (HTML, CSV, SVG, an event stream).
    Text(&'static str),
    /// Nothing worth describing (a redirect, a plain-text refusal, a file).
    Empty,
}

/// One status a route may answer with.
#[derive(Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub description: &'static str,
    pub body: Body,
}

/// Where a parameter travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    Query,
    Path,
}

impl Location {
    pub fn token(self) -> &'static str {
        match self {
            Location::Query => "query",
            Location::Path => "path",
        }
    }
}

/// A query or path parameter of a route.
#[derive(Clone, Copy)]
pub struct Parameter {
    pub name: &'static str,
    pub location: Location,
    pub required: bool,
    pub description: Option<&'static str>,
    pub schema: SchemaOf,
}

/// One row of the table.
pub struct Route {
    pub method: HttpMethod,
    pub path: &'static str,
    pub summary: &'static str,
    pub description: Option<&'static str>,
    pub access: Access,
    pub parameters: &'static [Parameter],
    pub request: Option<Body>,
    pub responses: &'static [Answer],
    /// The handler, mounted for the route's method.
    serve: fn(MethodFilter) -> MethodRouter<Gateway>,
}

impl Route {
    /// The handler of this route, for its method.
    pub(crate) fn method_router(&self) -> MethodRouter<Gateway> {
        (self.serve)(self.method.filter())
    }
}

fn id_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": ID_PATTERN})
}

/// One of these strings.
fn choice(values: &[&str]) -> Schema {
    json_schema!({"type": "string", "enum": values})
}

/// A page anyone may load.
const fn page(
    path: &'static str,
    summary: &'static str,
    serve: fn(MethodFilter) -> MethodRouter<Gateway>,
) -> Route {
    Route {
        method: HttpMethod::Get,
        path,
        summary,
        description: None,
        access: Access::Open,
        parameters: &[],
        request: None,
        responses: &[Answer {
            status: 200,
            description: "An HTML page; its data comes from /api/view/*.",
            body: Body::Text("text/html"),
        }],
        serve,
    }
}

/// A view under `/api/view/`: JSON with the read model's version, for a
/// signed-in principal, long-polled with `newer_than`.
const fn view(
    path: &'static str,
    summary: &'static str,
    parameters: &'static [Parameter],
    responses: &'static [Answer],
    serve: fn(MethodFilter) -> MethodRouter<Gateway>,
) -> Route {
    Route {
        method: HttpMethod::Get,
        path,
        summary,
        description: None,
        access: Access::SignedIn,
        parameters,
        request: None,
        responses,
        serve,
    }
}

/// The contract's reply: `{ok, id, seq}`, or `{ok: false, error}` on a refusal.
const REPLY: Body = Body::Json(schema_of::<Reply>);
const UNAUTHENTICATED: Answer = Answer {
    status: 401,
    description: "No valid token: sign in.",
    body: REPLY,
};
const FORBIDDEN: Answer = Answer {
    status: 403,
    description: "This sign-in may not do this.",
    body: REPLY,
};
const NOT_DURABLE: Answer = Answer {
    status: 503,
    description: "Could not be made durable now; send again.",
    body: REPLY,
};
/// Every route answers this when a client is over its allowance
/// ([`crate::limits`]); the document adds it to each.
pub const OVER_ALLOWANCE: Answer = Answer {
    status: 429,
    description: "Over this client's allowance: wait the seconds Retry-After says.",
    body: REPLY,
};

const NEWER_THAN: Parameter = Parameter {
    name: "newer_than",
    location: Location::Query,
    required: false,
    description: Some(
        "Long poll: answer once the read model's version is above this (bounded wait).",
    ),
    schema: schema_of::<u64>,
};
const WHOSE_VIEW: Parameter = Parameter {
    name: "id",
    location: Location::Query,
    required: false,
    description: Some("Coordinators only: whose view."),
    schema: id_schema,
};
const WHICH_PLEDGE: Parameter = Parameter {
    description: Some("Coordinators only: which pledge."),
    ..WHOSE_VIEW
};

const BY_ACTOR: Parameter = Parameter {
    name: "actor",
    location: Location::Query,
    required: false,
    description: Some(
        "Only events by this actor (`collective:c-1`, `coordinator`, `trusted`, ...).",
    ),
    schema: schema_of::<String>,
};
const ABOUT_ENTITY: Parameter = Parameter {
    name: "entity",
    location: Location::Query,
    required: false,
    description: Some("Only events about this volunteer, need, pledge, task or collective id."),
    schema: schema_of::<String>,
};

/// The 200 of a view: the view of this type and the model's version.
macro_rules! view_of {
    ($view:ty) => {
        Answer {
            status: 200,
            description: "The view and the read model's version.",
            body: Body::Json(schema_of::<Versioned<$view>>),
        }
    };
}

/// Every route, in the order the document's readers meet them. Order does
/// not decide routing: axum prefers a literal segment (`/api/links`) over a
/// parameter (`/api/{operation}`).
pub const TABLE: &[Route] = &[
    Route {
        method: HttpMethod::Get,
        path: "/health",
        summary: "Whether NATS and the streams answer. Open to all.",
        description: None,
        access: Access::Open,
        parameters: &[],
        request: None,
        responses: &[
            Answer {
                status: 200,
                description: "Healthy.",
                body: Body::Json(schema_of::<Health>),
            },
            Answer {
                status: 503,
                description: "NATS or the streams do not answer.",
                body: Body::Json(schema_of::<Health>),
            },
        ],
        serve: |method| on(method, api::health),
    },
    page(
        "/",
        "Landing page: what the switchboard is, and the form to offer time.",
        |method| on(method, pages::landing),
    ),
    page("/coordinator", "The coordinators' dashboard.", |method| {
        on(method, pages::coordinator)
    }),
    page("/collective", "A collective's page.", |method| {
        on(method, pages::collective)
    }),
    page("/volunteer", "A volunteer's page.", |method| {
        on(method, pages::volunteer)
    }),
    page(
        "/vetter",
        "A vetter's page: sets volunteers' trust tiers.",
        |method| on(method, pages::vetter),
    ),
    Route {
        method: HttpMethod::Get,
        path: "/signin",
        summary: "A sign-in link: sets the token as an HTTP-only cookie and redirects to the role's page.",
        description: None,
        access: Access::Open,
        parameters: &[Parameter {
            name: "token",
            location: Location::Query,
            required: true,
            description: None,
            schema: schema_of::<String>,
        }],
        request: None,
        responses: &[
            Answer {
                status: 303,
                description: "Signed in; redirected to /coordinator, /collective, /volunteer, /vetter or /donor.",
                body: Body::Empty,
            },
            Answer {
                status: 401,
                description: "The token is not valid.",
                body: Body::Empty,
            },
        ],
        serve: |method| on(method, pages::sign_in),
    },
    Route {
        method: HttpMethod::Get,
        path: "/signout",
        summary: "Revokes the session and forgets the sign-in cookie.",
        description: None,
        access: Access::Open,
        parameters: &[],
        request: None,
        responses: &[Answer {
            status: 303,
            description: "Redirected to /.",
            body: Body::Empty,
        }],
        serve: |method| on(method, pages::sign_out),
    },
    Route {
        method: HttpMethod::Get,
        path: "/assets/{file}",
        summary: "The pages' stylesheet and script, compiled into the binary.",
        description: None,
        access: Access::Open,
        parameters: &[Parameter {
            name: "file",
            location: Location::Path,
            required: true,
            description: None,
            schema: |_| choice(&pages::ASSETS.map(|(name, _, _)| name)),
        }],
        request: None,
        responses: &[
            Answer {
                status: 200,
                description: "The file.",
                body: Body::Empty,
            },
            Answer {
                status: 404,
                description: "No such asset.",
                body: Body::Empty,
            },
        ],
        serve: |method| on(method, pages::asset),
    },
    Route {
        method: HttpMethod::Get,
        path: "/api/openapi.json",
        summary: "This document. Open to all.",
        description: None,
        access: Access::Open,
        parameters: &[],
        request: None,
        responses: &[Answer {
            status: 200,
            description: "OpenAPI 3.1 document.",
            body: Body::Json(|_| json_schema!({"type": "object"})),
        }],
        serve: |method| on(method, openapi::serve),
    },
    Route {
        method: HttpMethod::Get,
        path: "/api/me",
        summary: "Who the token stands for.",
        description: None,
        access: Access::SignedIn,
        parameters: &[],
        request: None,
        responses: &[
            Answer {
                status: 200,
                description: "The principal.",
                body: Body::Json(schema_of::<Me>),
            },
            UNAUTHENTICATED,
        ],
        serve: |method| on(method, api::me),
    },
    Route {
        method: HttpMethod::Get,
        path: "/api/plan",
        summary: "The current switchboard-plan/1 (coordinators).",
        description: None,
        access: Access::SignedIn,
        parameters: &[],
        request: None,
        responses: &[
            Answer {
                status: 200,
                description: "plan.schema.json",
                body: Body::Json(schema_of::<proto::instance::Plan>),
            },
            UNAUTHENTICATED,
            FORBIDDEN,
            Answer {
                status: 503,
                description: "The solver did not answer.",
                body: REPLY,
            },
        ],
        serve: |method| on(method, api::plan),
    },
    Route {
        method: HttpMethod::Get,
        path: "/api/stream",
        summary: "Match events as server-sent events, replayed from the start of SB_MATCHES; event name = kind, id = stream sequence. Coordinators see all, a volunteer their own, a collective those about its tasks.",
        description: None,
        access: Access::SignedIn,
        parameters: &[Parameter {
            name: "since",
            location: Location::Query,
            required: false,
            description: Some("Resume after this sequence (Last-Event-ID also works)."),
            schema: schema_of::<u64>,
        }],
        request: None,
        responses: &[
            Answer {
                status: 200,
                description: "text/event-stream",
                body: Body::Text("text/event-stream"),
            },
            UNAUTHENTICATED,
            Answer {
                status: 503,
                description: "The match stream is unavailable.",
                body: REPLY,
            },
        ],
        serve: |method| on(method, api::stream),
    },
    view(
        "/api/view/coordinator",
        "The dashboard's data: open needs with staffing and funding, idle volunteers, shortages, impact, live assignments with their why (coordinators).",
        &[NEWER_THAN],
        &[view_of!(CoordinatorView), UNAUTHENTICATED, FORBIDDEN],
        |method| on(method, api::coordinator_view),
    ),
    view(
        "/api/view/collective",
        "One collective's needs, teams (volunteer ids only), funding and completed tasks.",
        &[NEWER_THAN, WHOSE_VIEW],
        &[view_of!(CollectiveView), UNAUTHENTICATED, FORBIDDEN],
        |method| on(method, api::collective_view),
    ),
    view(
        "/api/view/volunteer",
        "One volunteer's offer, assignments with their why, and their three weeks (now, next, later).",
        &[NEWER_THAN, WHOSE_VIEW],
        &[view_of!(VolunteerView), UNAUTHENTICATED, FORBIDDEN],
        |method| on(method, api::volunteer_view),
    ),
    view(
        "/api/view/donor",
        "Where one pledge's money went: available, held and paid per task, what it unlocked, what was given back, every movement (a donor's own pledge; coordinators name one with ?id=).",
        &[NEWER_THAN, WHICH_PLEDGE],
        &[view_of!(DonorView), UNAUTHENTICATED, FORBIDDEN],
        |method| on(method, api::donor_view),
    ),
    view(
        "/api/view/funding",
        "A collective's tasks that ask for money: funded (held or paid, with references) and waiting.",
        &[NEWER_THAN, WHOSE_VIEW],
        &[view_of!(FundingView), UNAUTHENTICATED, FORBIDDEN],
        |method| on(method, api::funding_view),
    ),
    view(
        "/api/view/audit",
        "Coordinators only: who did what (the newest events of SB_EVENTS with their actor), filterable by actor and entity.",
        &[NEWER_THAN, BY_ACTOR, ABOUT_ENTITY],
        &[view_of!(AuditView), UNAUTHENTICATED, FORBIDDEN],
        |method| on(method, api::audit_view),
    ),
    view(
        "/api/view/pool",
        "Coordinators only: the pool per currency, pledges whose restrictions strand money, and the transparency report per collective.",
        &[NEWER_THAN],
        &[view_of!(PoolView), UNAUTHENTICATED, FORBIDDEN],
        |method| on(method, api::pool_view),
    ),
    Route {
        method: HttpMethod::Get,
        path: "/api/ledger.csv",
        summary: "The money movements this sign-in may see, as CSV (coordinators: all; a collective: its tasks'; a donor: their pledge's).",
        description: None,
        access: Access::SignedIn,
        parameters: &[],
        request: None,
        responses: &[
            Answer {
                status: 200,
                description: "One row per movement: sequence,at,entry,kind,task,collective,pledge,amount_cents,currency,reason,reference.",
                body: Body::Text("text/csv"),
            },
            UNAUTHENTICATED,
            FORBIDDEN,
        ],
        serve: |method| on(method, api::ledger_csv),
    },
    Route {
        method: HttpMethod::Get,
        path: "/donor",
        summary: "A donor's page: where their pledge went, drawn on the server for a donor's sign-in; anyone else is asked to open their donor link.",
        description: None,
        access: Access::Open,
        parameters: &[],
        request: None,
        responses: &[Answer {
            status: 200,
            description: "HTML.",
            body: Body::Text("text/html"),
        }],
        serve: |method| on(method, pages::donor),
    },
    Route {
        method: HttpMethod::Post,
        path: "/donor/forget",
        summary: "Forgets the signed-in donor's name: their pledge's data key is deleted, so the name can no longer be read from any copy of the log; the pledge and its money stay.",
        description: None,
        access: Access::Open,
        parameters: &[],
        request: None,
        responses: &[Answer {
            status: 200,
            description: "HTML: what was forgotten.",
            body: Body::Text("text/html"),
        }],
        serve: |method| on(method, pages::donor_forget),
    },
    Route {
        method: HttpMethod::Get,
        path: "/api/charts/{chart}",
        summary: "A dashboard chart as SVG (coordinators).",
        description: None,
        access: Access::SignedIn,
        parameters: &[Parameter {
            name: "chart",
            location: Location::Path,
            required: true,
            description: None,
            schema: |_| choice(&Chart::ALL.map(Chart::file)),
        }],
        request: None,
        responses: &[
            Answer {
                status: 200,
                description: "SVG.",
                body: Body::Text("image/svg+xml"),
            },
            UNAUTHENTICATED,
            FORBIDDEN,
            Answer {
                status: 404,
                description: "No such chart.",
                body: REPLY,
            },
        ],
        serve: |method| on(method, api::chart),
    },
    Route {
        method: HttpMethod::Post,
        path: "/api/links",
        summary: "Mint a sign-in link for a collective, a volunteer or a donor (coordinators).",
        description: None,
        access: Access::SignedIn,
        parameters: &[],
        request: Some(Body::Json(schema_of::<LinkRequest>)),
        responses: &[
            Answer {
                status: 200,
                description: "The token and the link.",
                body: Body::Json(schema_of::<LinkMinted>),
            },
            UNAUTHENTICATED,
            FORBIDDEN,
            Answer {
                status: 422,
                description: "Invalid role or id.",
                body: REPLY,
            },
        ],
        serve: |method| on(method, api::links),
    },
    Route {
        method: HttpMethod::Post,
        path: "/api/revoke",
        summary: "End one token (a session or a sign-in link) before its expiry, on every gateway instance (coordinators).",
        description: None,
        access: Access::SignedIn,
        parameters: &[],
        request: Some(Body::Json(schema_of::<api::RevokeRequest>)),
        responses: &[
            Answer {
                status: 200,
                description: "Revoked: `{\"ok\": true, \"id\": token_id}`.",
                body: REPLY,
            },
            UNAUTHENTICATED,
            FORBIDDEN,
            Answer {
                status: 422,
                description: "`token_id` is not a token's id.",
                body: REPLY,
            },
            Answer {
                status: 503,
                description: "The revocation could not be recorded now; send it again.",
                body: REPLY,
            },
        ],
        serve: |method| on(method, api::revoke),
    },
    Route {
        method: HttpMethod::Post,
        path: "/api/register",
        summary: "Offer time without a link: the gateway chooses the volunteer id, forwards the offer to sb.in.volunteer, and signs the person in (cookie). Open to all unless registration is by invitation.",
        description: None,
        access: Access::Open,
        parameters: &[],
        request: Some(Body::Json(api::registration_schema)),
        responses: &[
            Answer {
                status: 200,
                description: "Registered: id, seq, token and link.",
                body: Body::Json(schema_of::<Registered>),
            },
            Answer {
                status: 403,
                description: "Registration is by invitation.",
                body: REPLY,
            },
            Answer {
                status: 422,
                description: "Invalid offer; error.field names the field.",
                body: REPLY,
            },
            NOT_DURABLE,
        ],
        serve: |method| on(method, api::register),
    },
    Route {
        method: HttpMethod::Post,
        path: "/api/{operation}",
        summary: "An operation of the wire contract, forwarded to sb.in.<operation> when this sign-in may do it.",
        description: Some("Coordinators: all. A collective: need (its own), withdraw (its needs and tasks), complete (its tasks). A volunteer: volunteer (their own offer), withdraw (their offer), reply (their assignments). A collective also: disburse (confirms the payment of money held for its own task, {id, task, reference}). A donor: pledge and withdraw (their own pledge). vet (vetters only, in their own name: {volunteer, trust 0-2, vetter, note}). steer (coordinators) is {action: veto|pin, volunteer, task} or {action: weight, collective, tag, factor with 0 < factor <= 10}. The body of each operation is under x-body-by-operation; the reply is the service's own."),
        access: Access::SignedIn,
        parameters: &[Parameter {
            name: "operation",
            location: Location::Path,
            required: true,
            description: None,
            schema: |_| choice(&Input::ALL.map(Input::token)),
        }],
        request: Some(Body::Operation),
        responses: &[
            Answer {
                status: 200,
                description: "Accepted and durable.",
                body: REPLY,
            },
            UNAUTHENTICATED,
            FORBIDDEN,
            Answer {
                status: 404,
                description: "No such operation, or it names something unknown.",
                body: REPLY,
            },
            Answer {
                status: 409,
                description: "Conflicts with what was accepted.",
                body: REPLY,
            },
            Answer {
                status: 413,
                description: "Body over the limit.",
                body: REPLY,
            },
            Answer {
                status: 422,
                description: "Invalid; error.field names the field.",
                body: REPLY,
            },
            NOT_DURABLE,
        ],
        serve: |method| on(method, api::forward),
    },
];

/// `(method, path)` of every row of [`TABLE`], for [`crate::ROUTES`].
pub const fn methods_and_paths<const ROWS: usize>() -> [(&'static str, &'static str); ROWS] {
    let mut routes = [("", ""); ROWS];
    let mut row = 0;
    while row < ROWS {
        routes[row] = (TABLE[row].method.token(), TABLE[row].path);
        row += 1;
    }
    routes
}
