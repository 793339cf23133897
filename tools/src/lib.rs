//! The switchboard's tools, kept out of the production binary: a load
//! generator ([`loadgen`]), a simulator of a movement's weeks driven through
//! the real services ([`simulate`]), and the demo scenario `up --demo`
//! posts ([`demo`]). The `switchboard-tools` binary runs them beside every
//! command of the production one; `deploy/bin/switchboard` picks it for
//! `simulate`, `loadgen` and `up --demo`.

pub mod children;
pub mod cli;
pub mod demo;
pub mod loadgen;
pub mod simulate;
