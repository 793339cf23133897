//! Who may publish and subscribe to what: the NATS permissions of each
//! service and of each person, computed in this one place.
//!
//! `switchboard nats-users` (what `deploy/nats/make-users` runs) writes
//! them into a server configuration as static users, `switchboard up`
//! gives its services the service users, and the auth callout (the
//! gateway's `callout` module) puts a person's permissions into the user
//! JWT it issues for their session token. All three call
//! [`Subjects::person_permissions`] and [`Subjects::service_permissions`],
//! so a person connecting through the callout holds exactly what a static
//! user of the same role would (deploy/nats/README.md says why each
//! subject is there).
//!
//! Architecture invariant: no second copy of these lists exists; the
//! deploy scripts ask the binary.

use serde::{Deserialize, Serialize};

use crate::subjects::{Input, Subjects};

/// One direction's permissions, as nats-server and user JWTs spell them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Subjects allowed (wildcards as NATS has them).
    pub allow: Vec<String>,
    /// Subjects refused even when `allow` matches them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// A NATS user's permissions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub publish: Rule,
    pub subscribe: Rule,
    /// May answer on the reply subject of a request it received (once),
    /// whatever that subject is. Only the auth callout has it: its
    /// requests come from the server alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_responses: bool,
}

/// A service that logs in as its own user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Ingest,
    Solver,
    Ledger,
    Dispatch,
    Gateway,
    /// The auth callout: answers `$SYS.REQ.USER.AUTH` and reads the
    /// revoked tokens.
    Callout,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Ingest,
        Service::Solver,
        Service::Ledger,
        Service::Dispatch,
        Service::Gateway,
        Service::Callout,
    ];

    pub fn token(self) -> &'static str {
        match self {
            Service::Ingest => "ingest",
            Service::Solver => "solver",
            Service::Ledger => "ledger",
            Service::Dispatch => "dispatch",
            Service::Gateway => "gateway",
            Service::Callout => "callout",
        }
    }

    /// The NATS user: `sb-ingest`, … (the same whatever the prefix).
    pub fn user(self) -> String {
        format!("sb-{}", self.token())
    }
}

/// The kinds of person with a NATS user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Person {
    Volunteer,
    Collective,
    Donor,
    Coordinator,
    Vetter,
}

impl Person {
    pub const ALL: [Person; 5] = [
        Person::Volunteer,
        Person::Collective,
        Person::Donor,
        Person::Coordinator,
        Person::Vetter,
    ];

    pub fn token(self) -> &'static str {
        match self {
            Person::Volunteer => "volunteer",
            Person::Collective => "collective",
            Person::Donor => "donor",
            Person::Coordinator => "coordinator",
            Person::Vetter => "vetter",
        }
    }

    /// The static user's name: `volunteer-v-maria`.
    pub fn user(self, id: &str) -> String {
        format!("{}-{id}", self.token())
    }
}

/// The match events the solver publishes.
const SOLVER_MATCH_KINDS: [&str; 2] = ["proposed", "released"];
/// The match events dispatch publishes.
const DISPATCH_MATCH_KINDS: [&str; 6] = [
    "accepted",
    "declined",
    "expired",
    "checked_in",
    "released",
    "completed",
];
/// The events ingest logs (`<prefix>.ev.<kind>.<key>`); dispatch logs `answered`.
const INGEST_EVENT_SUBJECTS: [&str; 7] = [
    "volunteer.*",
    "need.*",
    "pledge.*",
    "withdrawn.*.*",
    "completed.*",
    "steered.>",
    "vetted.*",
];
/// The inputs ingest serves on their shared subjects.
const INGEST_INPUTS: [Input; 8] = [
    Input::Volunteer,
    Input::Need,
    Input::Pledge,
    Input::Withdraw,
    Input::Complete,
    Input::Steer,
    Input::Vet,
    Input::Forget,
];
/// The subject the server sends authorization requests on (nats-server's
/// `AuthCalloutSubject`).
pub const AUTH_CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

fn dedupe(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

impl Subjects {
    /// The five streams the services create and update.
    fn streams(&self) -> [String; 5] {
        [
            self.events_stream(),
            self.matches_stream(),
            self.inbox_stream(),
            self.dead_letter_stream(),
            self.ledger_stream(),
        ]
    }

    /// Dispatch's durable consumer on the matches stream.
    pub fn delivery_consumer(&self) -> String {
        format!("{}-dispatch-deliver", self.prefix())
    }

    /// A person's inbox prefix, `_INBOX.volunteer.v-maria`: a first token
    /// other than a 22-character NUID, so no person's inbox can be a
    /// service's. Their client must use it (async-nats
    /// `custom_inbox_prefix`, `nats --inbox-prefix`).
    pub fn person_inbox_prefix(&self, person: Person, id: &str) -> String {
        format!("_INBOX.{}.{id}", person.token())
    }

    /// The permissions of a person: their own per-sender subjects (where
    /// the services refuse a body about anyone else), their delivery
    /// subject and their own inbox. `pledges` are a donor's pledge ids
    /// (the wire has no donor id, so a pledge's subjects name the pledge).
    pub fn person_permissions(&self, person: Person, id: &str, pledges: &[&str]) -> Permissions {
        let inbox = self.person_inbox_prefix(person, id);
        let mut subscribe = vec![format!("{inbox}.>")];
        let mut publish_deny = Vec::new();
        let publish = match person {
            Person::Volunteer => {
                subscribe.push(self.to_volunteer(id));
                vec![
                    self.input_from(Input::Reply, id),
                    self.input_from(Input::Volunteer, id),
                    self.input_from(Input::Withdraw, id),
                    self.input_from(Input::Forget, id),
                ]
            }
            Person::Collective => vec![
                self.input_from(Input::Need, id),
                self.input_from(Input::Withdraw, id),
                self.input_from(Input::Complete, id),
                self.input(Input::Disburse),
            ],
            Person::Donor => pledges
                .iter()
                .flat_map(|pledge| {
                    [
                        self.input_from(Input::Pledge, pledge),
                        self.input_from(Input::Withdraw, pledge),
                        self.input_from(Input::Forget, pledge),
                    ]
                })
                .collect(),
            // Vetting is a role of its own: a coordinator cannot raise
            // anyone's trust, so one stolen coordinator password does not
            // open sensitive work to a stranger.
            Person::Vetter => vec![self.input(Input::Vet)],
            Person::Coordinator => {
                let mut publish = vec![
                    format!("{}.in.*", self.prefix()),
                    self.plan_get(),
                    "$SRV.>".to_owned(),
                    "$JS.API.INFO".to_owned(),
                ];
                // People read logs by direct get and create no consumer:
                // a push consumer's deliver subject is in the request
                // body, where permissions cannot see it. The money stream
                // holds no donor's name: coordinators audit it.
                for stream in [
                    self.matches_stream(),
                    self.dead_letter_stream(),
                    self.ledger_stream(),
                ] {
                    publish.extend(reading_directly(&stream));
                }
                subscribe.push(self.matches_all());
                subscribe.push(self.dead_letter_input());
                publish_deny = self.protect_delivery();
                publish_deny.push(self.input(Input::Vet));
                publish
            }
        };
        Permissions {
            publish: Rule {
                allow: publish,
                deny: publish_deny,
            },
            subscribe: Rule {
                allow: subscribe,
                deny: Vec::new(),
            },
            allow_responses: false,
        }
    }

    /// The permissions of a service's user.
    pub fn service_permissions(&self, service: Service) -> Permissions {
        let events = self.events_stream();
        let matches = self.matches_stream();
        let ledger = self.ledger_stream();
        let prefix = self.prefix();
        let mut publish = self.ensuring();
        let mut subscribe = vec!["_INBOX.>".to_owned(), "$SRV.>".to_owned()];
        let mut deny = Vec::new();
        match service {
            Service::Ingest => {
                publish.extend(following(&events));
                publish.extend(
                    INGEST_EVENT_SUBJECTS
                        .iter()
                        .map(|subject| format!("{prefix}.ev.{subject}")),
                );
                publish.push(self.dead_letter_input());
                // It makes and purges each person's data key (ADR 0007).
                publish.extend(key_value(&self.people_key_bucket(), false));
                subscribe.extend(INGEST_INPUTS.iter().map(|input| self.input(*input)));
                subscribe.extend(
                    Input::PER_SENDER
                        .iter()
                        .filter(|input| **input != Input::Reply)
                        .map(|input| self.input_from_any(*input)),
                );
            }
            Service::Solver => {
                publish.extend(following(&events));
                publish.extend(following(&matches));
                // Held money is committed: the solver reads the ledger (ADR 0003).
                publish.extend(following(&ledger));
                publish.extend(
                    SOLVER_MATCH_KINDS
                        .iter()
                        .map(|kind| format!("{prefix}.match.{kind}")),
                );
                publish.extend(key_value(&self.solver_lease_bucket(), false));
                subscribe.push(self.plan_get());
                deny = self.protect_delivery();
            }
            Service::Dispatch => {
                let consumer = self.delivery_consumer();
                publish.extend(following(&events));
                publish.extend(following(&matches));
                publish.extend([
                    format!("$JS.API.CONSUMER.DURABLE.CREATE.{matches}.{consumer}"),
                    format!("$JS.API.CONSUMER.CREATE.{matches}.{consumer}"),
                    format!("$JS.API.CONSUMER.CREATE.{matches}.{consumer}.>"),
                    format!("$JS.ACK.{matches}.{consumer}.>"),
                ]);
                publish.extend(
                    DISPATCH_MATCH_KINDS
                        .iter()
                        .map(|kind| format!("{prefix}.match.{kind}")),
                );
                publish.extend([
                    format!("{prefix}.ev.answered.*.*"),
                    self.to_volunteer_all(),
                    self.dead_letter_input(),
                ]);
                // It opens an address only to send to it (ADR 0007).
                publish.extend(reading_keys(&self.people_key_bucket()));
                subscribe.push(self.input(Input::Reply));
                subscribe.push(self.input_from_any(Input::Reply));
            }
            Service::Ledger => {
                // The only writer of the money stream; it reads all three
                // logs, asks the solver for its plan and serves disbursals.
                publish.extend(following(&events));
                publish.extend(following(&matches));
                publish.extend(following(&ledger));
                publish.extend([
                    format!("{prefix}.ledger.>"),
                    self.plan_get(),
                    self.dead_letter_input(),
                ]);
                subscribe.push(self.input(Input::Disburse));
                deny = self.protect_delivery();
            }
            Service::Gateway => {
                // Its pages replay the logs (services/gateway/src/follow.rs).
                publish.extend(following(&events));
                publish.extend(following(&matches));
                publish.extend(following(&ledger));
                publish.extend([format!("{prefix}.in.*"), self.plan_get()]);
                publish.extend(key_value(&self.token_revocation_bucket(), true));
                // A person's own page opens their own name (ADR 0007).
                publish.extend(reading_keys(&self.people_key_bucket()));
                deny = self.protect_delivery();
            }
            Service::Callout => return self.callout_permissions(),
        }
        // Replies go to the requester's inbox. Not `allow_responses`: that
        // lets a service answer on any reply subject the requester names,
        // which a client could point at another volunteer's subject or a
        // stream's.
        publish.push("_INBOX.>".to_owned());
        Permissions {
            publish: Rule {
                allow: dedupe(publish),
                deny,
            },
            subscribe: Rule {
                allow: dedupe(subscribe),
                deny: Vec::new(),
            },
            allow_responses: false,
        }
    }

    /// The callout reads the revoked tokens, and answers the server's
    /// requests on their reply subjects (`allow_responses`): nothing but
    /// the server may publish on its subject.
    fn callout_permissions(&self) -> Permissions {
        Permissions {
            publish: Rule {
                allow: dedupe(
                    ["$JS.API.INFO".to_owned()]
                        .into_iter()
                        .chain(key_value(&self.token_revocation_bucket(), true))
                        .collect(),
                ),
                deny: Vec::new(),
            },
            subscribe: Rule {
                allow: vec!["_INBOX.>".to_owned(), AUTH_CALLOUT_SUBJECT.to_owned()],
                deny: Vec::new(),
            },
            allow_responses: true,
        }
    }

    /// Every service creates or updates every stream at start
    /// (`plumbing::streams::ensure`).
    fn ensuring(&self) -> Vec<String> {
        let mut api = vec!["$JS.API.INFO".to_owned()];
        for stream in self.streams() {
            api.extend([
                format!("$JS.API.STREAM.CREATE.{stream}"),
                format!("$JS.API.STREAM.UPDATE.{stream}"),
                format!("$JS.API.STREAM.INFO.{stream}"),
            ]);
        }
        api
    }

    /// Nobody but dispatch may pull from, or delete, its durable delivery consumer.
    fn protect_delivery(&self) -> Vec<String> {
        let consumer = self.delivery_consumer();
        let matches = self.matches_stream();
        vec![
            format!("$JS.API.CONSUMER.MSG.NEXT.{matches}.{consumer}"),
            format!("$JS.API.CONSUMER.DELETE.{matches}.{consumer}"),
            format!("$JS.API.CONSUMER.CREATE.{matches}.{consumer}"),
            format!("$JS.API.CONSUMER.CREATE.{matches}.{consumer}.>"),
            format!("$JS.API.CONSUMER.DURABLE.CREATE.{matches}.{consumer}"),
            format!("$JS.ACK.{matches}.{consumer}.>"),
        ]
    }
}

/// What reading a stream with an ordered consumer asks of the JetStream API.
fn following(stream: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"),
        format!("$JS.API.CONSUMER.INFO.{stream}.*"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.*"),
    ]
}

/// What reading a stream message by message (direct get) asks of the
/// JetStream API.
fn reading_directly(stream: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
    ]
}

/// A key-value bucket created, updated, read and written by its users:
/// the solver's leases (ADR 0004), and the revoked tokens, which the
/// gateway and the callout also watch (`watched`: an ordered consumer on
/// its stream).
fn key_value(bucket: &str, watched: bool) -> Vec<String> {
    let stream = format!("KV_{bucket}");
    let mut api = reading_keys(bucket);
    if watched {
        api.extend([
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        ]);
    }
    api.push(format!("$KV.{bucket}.>"));
    api
}

/// A key-value bucket its user may open (create if absent) and read, key by
/// key, but not write: the people's keys, for dispatch and the gateway; and
/// what every other user of a bucket may do besides writing.
fn reading_keys(bucket: &str) -> Vec<String> {
    let stream = format!("KV_{bucket}");
    vec![
        format!("$JS.API.STREAM.CREATE.{stream}"),
        format!("$JS.API.STREAM.UPDATE.{stream}"),
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volunteer_may_publish_only_their_own_subjects_and_read_only_their_own() {
        let permissions = Subjects::default().person_permissions(Person::Volunteer, "v1", &[]);
        assert_eq!(
            permissions.publish.allow,
            [
                "sb.in.reply.v1",
                "sb.in.volunteer.v1",
                "sb.in.withdraw.v1",
                "sb.in.forget.v1"
            ]
        );
        assert_eq!(
            permissions.subscribe.allow,
            ["_INBOX.volunteer.v1.>", "sb.to.volunteer.v1"]
        );
        assert!(permissions.publish.deny.is_empty());
    }

    #[test]
    fn a_donor_publishes_under_each_of_their_pledges() {
        let permissions =
            Subjects::default().person_permissions(Person::Donor, "d1", &["p1", "p2"]);
        assert_eq!(
            permissions.publish.allow,
            [
                "sb.in.pledge.p1",
                "sb.in.withdraw.p1",
                "sb.in.forget.p1",
                "sb.in.pledge.p2",
                "sb.in.withdraw.p2",
                "sb.in.forget.p2"
            ]
        );
    }

    #[test]
    fn a_coordinator_may_not_vet_nor_touch_the_delivery_consumer() {
        let permissions = Subjects::default().person_permissions(Person::Coordinator, "ana", &[]);
        assert!(permissions.publish.deny.contains(&"sb.in.vet".to_owned()));
        assert!(permissions
            .publish
            .deny
            .contains(&"$JS.API.CONSUMER.MSG.NEXT.SB_MATCHES.sb-dispatch-deliver".to_owned()));
        assert!(!permissions
            .publish
            .allow
            .iter()
            .any(|subject| subject.contains("SB_EVENTS")));
    }

    #[test]
    fn only_the_callout_may_answer_the_servers_authorization_requests() {
        let subjects = Subjects::default();
        for service in Service::ALL {
            let permissions = subjects.service_permissions(service);
            let answers = permissions
                .subscribe
                .allow
                .contains(&AUTH_CALLOUT_SUBJECT.to_owned());
            assert_eq!(answers, service == Service::Callout, "{service:?}");
            assert_eq!(permissions.allow_responses, service == Service::Callout);
        }
    }

    #[test]
    fn permissions_serialize_as_nats_server_spells_them() {
        let permissions = Subjects::default().person_permissions(Person::Vetter, "x", &[]);
        let text = serde_json::to_string(&permissions).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"publish":{"allow":["sb.in.vet"]},"subscribe":{"allow":["_INBOX.vetter.x.>"]}}"#
        );
    }
}
