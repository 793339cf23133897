//! The integration tests against real nats-servers, one module per file,
//! in one binary (`cargo test -p tests --test integration <module>::`).
//! `observability` and `instance_over_the_wire` are binaries of their own
//! (see `tests/Cargo.toml`).

mod audit;
mod callout;
mod disk;
mod email;
mod faults;
mod gateway_http;
mod gateway_openapi;
mod ledger;
mod lifecycle;
mod other_language_client;
mod permissions;
mod privacy;
mod sessions;
mod solver_failover;
mod spine;
mod steering;
mod tidy;
mod updates;
mod vetting;
mod web_access;
mod web_browser;
mod web_steering;
mod writes;
