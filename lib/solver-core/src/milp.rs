//! A thin, deadline-keeping wrapper around HiGHS (through good_lp).
//!
//! Models are described as plain data ([`ModelSpec`]) so they can be moved
//! to a worker thread: HiGHS honours its own `time_limit` only between
//! phases and has been seen to overrun it, so the caller waits on a channel
//! with its own deadline and, if the worker is late, walks away with the
//! incumbent. One thread inside HiGHS: the machine has two cores and the
//! services need the other.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use good_lp::{variable, Expression, ProblemVariables, SolverModel, Variable};

/// Extra time granted after the deadline for HiGHS to return before its
/// answer is abandoned.
const HIGHS_OVERRUN_GRACE_MS: u64 = 100;
/// Share of the remaining time handed to HiGHS as its own limit: it checks
/// the clock between nodes and overshoots on a loaded machine.
const HIGHS_TIME_LIMIT_SHARE: f64 = 0.9;
/// Relative MIP gap at which HiGHS may stop: the reference optimum was
/// proven at 1e-4 too.
const MIP_RELATIVE_GAP: f64 = 1e-4;

#[derive(Clone, Debug)]
pub(crate) struct Column {
    pub cost: f64,
    pub lower: f64,
    pub upper: f64,
    pub integer: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub terms: Vec<(usize, f64)>,
    pub lower: f64,
    pub upper: f64,
}

/// A maximisation model as plain data.
#[derive(Clone, Debug, Default)]
pub(crate) struct ModelSpec {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// A feasible starting point (the incumbent), one value per column.
    pub initial: Option<Vec<f64>>,
    /// Solve the LP relaxation instead of the MIP.
    pub relax: bool,
}

impl ModelSpec {
    pub fn add_column(&mut self, cost: f64, lower: f64, upper: f64, integer: bool) -> usize {
        self.columns.push(Column {
            cost,
            lower,
            upper,
            integer,
        });
        self.columns.len() - 1
    }

    pub fn add_row(&mut self, terms: Vec<(usize, f64)>, lower: f64, upper: f64) {
        self.rows.push(Row {
            terms,
            lower,
            upper,
        });
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MilpStatus {
    /// Proven optimal (within the gap).
    Optimal,
    /// Stopped by the time limit with a feasible point.
    Feasible,
}

#[derive(Clone, Debug)]
pub(crate) struct ModelResult {
    pub status: MilpStatus,
    pub columns: Vec<f64>,
    /// HiGHS's proven bound on the objective (LP: the objective itself).
    pub dual_bound: Option<f64>,
}

/// Solves `spec` on a worker thread, waiting no later than `deadline`
/// (plus a small grace). `None` when HiGHS fails, finds nothing, or is late.
pub(crate) fn solve_model(spec: ModelSpec, deadline: Instant) -> Option<ModelResult> {
    let seconds = deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64();
    if seconds <= 0.001 {
        return None;
    }
    let (sender, receiver) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("solver-core-highs".to_owned())
        .spawn(move || {
            // The receiver may be gone if we were too slow; nothing to do then.
            let _ = sender.send(solve_here(&spec, deadline));
        });
    if spawned.is_err() {
        return None;
    }
    let wait = deadline.saturating_duration_since(Instant::now())
        + Duration::from_millis(HIGHS_OVERRUN_GRACE_MS);
    receiver.recv_timeout(wait).ok().flatten()
}

fn solve_here(spec: &ModelSpec, deadline: Instant) -> Option<ModelResult> {
    let mut variables = ProblemVariables::new();
    let columns: Vec<Variable> = spec
        .columns
        .iter()
        .map(|column| {
            let definition = variable().min(column.lower).max(column.upper);
            variables.add(if column.integer && !spec.relax {
                definition.integer()
            } else {
                definition
            })
        })
        .collect();
    let mut objective = Expression::with_capacity(columns.len());
    for (index, column) in spec.columns.iter().enumerate() {
        if column.cost != 0.0 {
            objective.add_mul(column.cost, columns[index]);
        }
    }
    let mut problem = variables
        .maximise(objective)
        .using(good_lp::solvers::highs::highs);
    for row in &spec.rows {
        let mut expression = Expression::with_capacity(row.terms.len());
        for &(column, coefficient) in &row.terms {
            expression.add_mul(coefficient, columns[column]);
        }
        if row.lower == row.upper {
            problem.add_constraint(expression.eq(row.upper));
        } else {
            if row.upper.is_finite() {
                problem.add_constraint(expression.clone().leq(row.upper));
            }
            if row.lower.is_finite() {
                problem.add_constraint(expression.geq(row.lower));
            }
        }
    }
    let mut model = problem.try_into_inner().ok()?;
    model.make_quiet();
    model.set_option("threads", 1);
    // HiGHS's clock starts only now, after the model was built: give it what
    // is left, less a share for returning the answer.
    let seconds = deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64()
        * HIGHS_TIME_LIMIT_SHARE;
    if seconds <= 0.001 {
        return None;
    }
    model.set_option("time_limit", seconds);
    model.set_option("mip_rel_gap", MIP_RELATIVE_GAP);
    if let Some(initial) = &spec.initial {
        if initial.len() == spec.columns.len() {
            model.set_solution(Some(initial), None, None, None);
        }
    }
    let solved = model.try_solve().ok()?;
    // HiGHS's info codes (HighsSolutionStatus): 2 is "feasible". Read as
    // numbers so this crate needs no direct dependency on the highs crate.
    const SOLUTION_STATUS_FEASIBLE: i64 = 2;
    if solved.int_info_value(c"primal_solution_status").ok()? != SOLUTION_STATUS_FEASIBLE {
        return None;
    }
    let values = solved.get_solution().columns().to_vec();
    let objective = solved.objective_value();
    let is_mip = !spec.relax && spec.columns.iter().any(|column| column.integer);
    let (status, dual_bound) = if is_mip {
        let bound = solved
            .double_info_value(c"mip_dual_bound")
            .ok()
            .filter(|bound| bound.is_finite());
        let gap = solved
            .double_info_value(c"mip_gap")
            .unwrap_or(f64::INFINITY);
        let optimal = gap.is_finite() && gap <= MIP_RELATIVE_GAP * 1.01;
        (
            if optimal {
                MilpStatus::Optimal
            } else {
                MilpStatus::Feasible
            },
            bound,
        )
    } else {
        let dual_feasible =
            solved.int_info_value(c"dual_solution_status").ok() == Some(SOLUTION_STATUS_FEASIBLE);
        if dual_feasible {
            (MilpStatus::Optimal, Some(objective))
        } else {
            (MilpStatus::Feasible, None)
        }
    };
    Some(ModelResult {
        status,
        columns: values,
        dual_bound,
    })
}
