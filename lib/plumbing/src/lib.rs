//! What every switchboard service shares, so each service's own code is only
//! its logic: the NATS connection with explicit options ([`nats`]), the
//! streams and their durability settings ([`streams`]), following a stream
//! from a remembered position ([`follow`]), the ack guard for durable
//! consumers ([`ack`]), conditional, retried writes ([`publish`]), the sled-backed state store ([`store`]), the clock
//! every timer uses ([`clock`]), request replies ([`reply`]), telemetry, the trace that follows a request across
//! services ([`trace`]), and the `/metrics`, `/health` and `/ready` of a
//! process ([`prometheus`], [`observe`]).
//!
//! This is a library, not a service: services depend on it and on `proto`,
//! never on each other.

pub mod ack;
pub mod clock;
pub mod fault;
pub mod follow;
pub mod nats;
pub mod observe;
pub mod people;
pub mod prometheus;
pub mod publish;
pub mod reply;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod trace;

pub use clock::Clock;
pub use store::Store;

/// Everything a service needs from its host, passed explicitly to `run`.
#[derive(Clone)]
pub struct Context {
    pub client: async_nats::Client,
    pub jetstream: async_nats::jetstream::Context,
    pub subjects: proto::subjects::Subjects,
    pub clock: Clock,
    /// How many servers hold each stream this service creates or updates.
    pub replication: streams::Replication,
    /// What the service reports for `/ready`; shared with its [`observe::Probe`].
    pub health: observe::Health,
}

impl Context {
    pub fn new(
        client: async_nats::Client,
        subjects: proto::subjects::Subjects,
        clock: Clock,
    ) -> Context {
        let jetstream = nats::jetstream(client.clone());
        Context {
            client,
            jetstream,
            subjects,
            clock,
            replication: streams::Replication::default(),
            health: observe::Health::default(),
        }
    }

    /// The same context, creating streams with `replication`.
    pub fn with_replication(mut self, replication: streams::Replication) -> Context {
        self.replication = replication;
        self
    }
}
