//! How far a volunteer has got with the work they hold, at their own rate.
//!
//! problem.md's volunteer gives `hours_per_week / 168` an hour while
//! available. Working their held pieces earliest deadline first from when
//! each was given to them (the plan that booked it assumed exactly that, and
//! rule 5 holds exactly when that order finishes everything), a member has
//! done some of each by `now`; what is left is what the plan charges them.
//! Counting the task's hours as spread over its whole window instead made a
//! member who leaves before the deadline look as if they could never finish,
//! and released people who were doing the work.
//!
//! Nor does work start when it is proposed: it starts when the person says
//! yes. [`AnswerTimes`] keeps how long recent answers took, so a new
//! proposal's work is booked from when its answer is expected.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many recent answers the expected answer time is taken from.
pub const ANSWERS_KEPT: usize = 200;
/// Below this many answers seen, the prior stands.
pub const ANSWERS_MIN: usize = 5;
/// Hours an answer is expected to take before any has been seen: people
/// look at their messages a few times a day.
pub const ANSWER_HOURS_PRIOR: f64 = 4.0;

/// How long people took to answer their proposals (accepted or declined),
/// the most recent [`ANSWERS_KEPT`], in hours. Not stored: after a restart
/// it starts again from the prior and learns from the answers that follow.
#[derive(Clone, Debug, Default)]
pub struct AnswerTimes {
    recent: VecDeque<f64>,
}

impl AnswerTimes {
    /// Records one answer, `hours` after its proposal (ignored if negative
    /// or not finite: a clock that went back says nothing).
    pub fn record(&mut self, hours: f64) {
        if !hours.is_finite() || hours < 0.0 {
            return;
        }
        if self.recent.len() == ANSWERS_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(hours);
    }

    /// The median of the recent answers, or [`ANSWER_HOURS_PRIOR`] until
    /// [`ANSWERS_MIN`] have been seen.
    pub fn expected_hours(&self) -> f64 {
        if self.recent.len() < ANSWERS_MIN {
            return ANSWER_HOURS_PRIOR;
        }
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        if sorted.len().is_multiple_of(2) {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        } else {
            sorted[middle]
        }
    }
}

/// What a volunteer had left of each piece of accepted flexible work
/// (task id to hours) at `as_of`, the last time what they hold changed.
/// Estimates of their progress work on from here, so time they spent on
/// work since finished or released is never counted again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub as_of: DateTime<Utc>,
    pub left: std::collections::HashMap<String, f64>,
}

/// One held piece of flexible work.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    /// When it was given to them, or when its window opens, if later.
    pub opens: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub hours: f64,
}

fn hours_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_seconds() as f64 / 3600.0
}

/// The hours each piece still needs at `now`, worked at `rate` hours an
/// hour from `present_from` on, earliest deadline first among the pieces
/// open at each moment. Same order as `pieces`.
pub fn owed_at(
    rate: f64,
    present_from: DateTime<Utc>,
    pieces: &[Piece],
    now: DateTime<Utc>,
) -> Vec<f64> {
    let mut left: Vec<f64> = pieces.iter().map(|piece| piece.hours.max(0.0)).collect();
    if rate.is_nan() || rate <= 0.0 || !rate.is_finite() {
        return left;
    }
    let opens = |index: usize| pieces[index].opens.max(present_from);
    let Some(mut at) = (0..pieces.len()).map(opens).min() else {
        return left;
    };
    // Each step finishes a piece, reaches an opening, a deadline or `now`:
    // at most three per piece, and one more.
    for _ in 0..=3 * pieces.len() {
        if at >= now {
            break;
        }
        let unfinished = |index: &usize| left[*index] > 0.0 && pieces[*index].deadline > at;
        let open = (0..pieces.len())
            .filter(unfinished)
            .filter(|&index| opens(index) <= at)
            .min_by_key(|&index| pieces[index].deadline);
        let next_opening = (0..pieces.len())
            .filter(unfinished)
            .map(opens)
            .filter(|&time| time > at)
            .min();
        let Some(index) = open else {
            match next_opening {
                Some(time) => {
                    at = time;
                    continue;
                }
                None => break,
            }
        };
        let mut until = now.min(pieces[index].deadline);
        if let Some(time) = next_opening {
            until = until.min(time);
        }
        let can = rate * hours_between(at, until);
        if can >= left[index] {
            let took = left[index] / rate;
            left[index] = 0.0;
            at += chrono::Duration::milliseconds((took * 3_600_000.0) as i64);
        } else {
            left[index] -= can;
            at = until;
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        "2026-11-22T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::hours(hours)
    }

    #[test]
    fn one_piece_is_worked_at_the_volunteers_rate_whatever_its_deadline() {
        // 0.1 h an hour; 10 h due in a week; 40 h in: 4 h done, 6 h left.
        let piece = Piece {
            opens: at(0),
            deadline: at(168),
            hours: 10.0,
        };
        let left = owed_at(0.1, at(0), &[piece], at(40));
        assert!((left[0] - 6.0).abs() < 1e-6, "{left:?}");
    }

    #[test]
    fn the_earliest_deadline_is_worked_first_and_nothing_before_it_opens() {
        let later = Piece {
            opens: at(0),
            deadline: at(200),
            hours: 5.0,
        };
        let sooner = Piece {
            opens: at(10),
            deadline: at(100),
            hours: 2.0,
        };
        // 0..10 h: later gets 1 h; 10..30: sooner's 2 h; 30..50: later 2 h more.
        let left = owed_at(0.1, at(0), &[later, sooner], at(50));
        assert!((left[0] - 2.0).abs() < 1e-6, "{left:?}");
        assert!(left[1].abs() < 1e-6, "{left:?}");
    }

    #[test]
    fn no_work_is_done_before_the_volunteer_is_there_or_past_a_deadline() {
        let piece = Piece {
            opens: at(0),
            deadline: at(20),
            hours: 10.0,
        };
        let left = owed_at(0.1, at(10), std::slice::from_ref(&piece), at(100));
        assert!((left[0] - 9.0).abs() < 1e-6, "10..20 only: {left:?}");
        assert_eq!(owed_at(0.0, at(0), &[piece], at(100)), vec![10.0]);
    }

    #[test]
    fn the_expected_answer_is_the_median_of_recent_answers_after_a_prior() {
        let mut answers = AnswerTimes::default();
        assert_eq!(answers.expected_hours(), ANSWER_HOURS_PRIOR);
        for hours in [1.0, 9.0, 2.0, 0.5] {
            answers.record(hours);
        }
        answers.record(f64::NAN);
        answers.record(-3.0);
        assert_eq!(answers.expected_hours(), ANSWER_HOURS_PRIOR, "four seen");
        answers.record(3.0);
        assert_eq!(answers.expected_hours(), 2.0);
        for _ in 0..ANSWERS_KEPT {
            answers.record(10.0);
        }
        assert_eq!(answers.expected_hours(), 10.0, "only the recent count");
    }
}
