//! The switchboard's matching core: the canonical problem of
//! `shared/spec/problem.md`, its rules, and the solvers.
//!
//! Architecture invariant: this crate does no I/O. No tokio, no NATS, no
//! files, no clocks other than the deadline `solve` is given. It takes a
//! validated [`proto::domain::World`], indexes it into a [`Problem`], and
//! returns a [`Solution`] that [`check`] (a port of the judge,
//! `check_plan.py`) has accepted.
//!
//! - [`Problem`]: dense indexes, hours after `now`, eligible pairs.
//! - [`solve`]: greedy first, then exact HiGHS models for small independent
//!   parts and a large-neighbourhood search for big ones, within a deadline.
//! - [`check`]: the rules, exactly as the judge applies them.
//! - [`explain`]: the `why` of one assignment.
//! - [`LivePlan`]: tier 1, the plan repaired event by event in milliseconds.

// Tests may unwrap: a panic there is a failed test, which is the point.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod check;
mod explain;
pub mod flow;
mod forbid;
mod greedy;
mod live;
mod milp;
mod optimise;
mod owed;
mod problem;
mod reliability;
mod solution;
mod solve;
mod state;
mod subproblem;
#[cfg(test)]
mod test_support;
mod time;

pub use check::check;
pub use explain::explain;
pub use live::LivePlan;
pub use problem::{Problem, ProblemError, HOURS_TOLERANCE};
pub use solution::Solution;
pub use solve::{
    solve, NeighbourhoodStats, SolveMethod, SolveOptions, SolveReport, SOLVE_TIME_LIMIT_MS_DEFAULT,
    SOLVE_TIME_LIMIT_MS_MAX,
};
