//! The switchboard's public contract, version 1: what crosses NATS, and the
//! canonical instance and plan formats the solver is judged on.
//!
//! Everything a client in another language needs is here and in
//! `proto/README.md`: subject names ([`subjects`]), message bodies ([`wire`]),
//! the closed sets of events kept in the streams ([`events`]), and the
//! instance/plan formats ([`instance`]). Wire types are tolerant (unknown
//! fields are ignored, new fields arrive with `#[serde(default)]`); they are
//! turned into the strict [`domain`] types exactly once, at the edge, by
//! [`validate`], whose errors name the offending field (`tasks[2].hours`).
//!
//! This crate does no I/O and depends only on serde and small value crates.

pub mod domain;
pub mod events;
pub mod ids;
pub mod instance;
pub mod money;
pub mod permissions;
pub mod schema;
pub mod subjects;
pub mod validate;
pub mod wire;

pub use ids::Id;
pub use validate::Invalid;
