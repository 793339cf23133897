//! Work under way: a member who has been doing a flexible task owes only
//! what is left of their own part, not the task's whole `hours`.
//!
//! problem.md counts every assigned task at its full `hours` from `now`,
//! which is right for a plan made from nothing. The live service plans
//! again and again while people work: a member who has done half their part
//! and leaves before the deadline still fits what is left, and charging them
//! the whole would drop a team that is getting its work done. The live
//! service estimates what each member still owes (at their own rate,
//! `services/solver`'s `progress`) and sets it here; rule 5, rule 5c (scaled
//! like the task's hours), the LP's rows and the check then count that
//! pair's hours instead of the task's.
//!
//! Work not yet under way cannot start at once either: a proposal is
//! answered some hours later, and only then does the work begin. A plan
//! that books a person's time from `now` packs work they then run out of
//! window for. The live service sets how long answers take
//! (`set_start_delay`, with a pair's own where it knows better,
//! `set_start_after`); a flexible pair not under way is then counted from
//! that time by rule 5, the LP's rows and the check.
//!
//! Nothing is owed or delayed unless set, so `solve` on a canonical
//! instance plans exactly as before.

use crate::problem::Problem;

impl Problem {
    /// Sets what `volunteer` still owes of `task`, in hours (clamped to
    /// `[0, hours]`). A shift keeps its hours: its team works the whole
    /// shift. Out of range or not finite: ignored. The pair becomes a
    /// candidate if it is eligible and now fits.
    pub fn set_owed(&mut self, volunteer: usize, task: usize, hours: f64) {
        let Some(facts) = self.tasks.get(task) else {
            return;
        };
        if volunteer >= self.volunteers.len() || facts.shift.is_some() || !hours.is_finite() {
            return;
        }
        let hours = hours.clamp(0.0, facts.hours);
        let owed = &mut self.owed[volunteer];
        match owed.iter_mut().find(|(owed_task, _)| *owed_task == task) {
            Some(entry) => entry.1 = hours,
            None => owed.push((task, hours)),
        }
        let listed = self.candidates_of_task[task].binary_search(&volunteer);
        if let Err(position) = listed {
            if self.is_eligible(volunteer, task)
                && crate::time::fits_with(self, volunteer, &[], task)
            {
                self.candidates_of_task[task].insert(position, volunteer);
                let tasks = &mut self.tasks_of_volunteer[volunteer];
                if let Err(at) = tasks.binary_search(&task) {
                    tasks.insert(at, task);
                }
            }
        }
    }

    /// Sets how long after `now`, in hours, work not yet under way can
    /// start: every flexible pair with nothing owed set is counted from
    /// then (never later than a quarter of the time to its deadline: near
    /// a deadline people are asked to answer sooner). Negative or not
    /// finite: ignored. Pairs that no longer fit alone stop being
    /// candidates, unless pinned.
    pub fn set_start_delay(&mut self, hours: f64) {
        if !hours.is_finite() || hours < 0.0 {
            return;
        }
        self.start_delay = hours;
        self.keep_fitting_candidates();
    }

    /// Sets when `volunteer`'s work on `task` can start, in hours after
    /// `now` (a proposal already out is answered sooner than a new one),
    /// in place of the problem's delay. Same limits as `set_start_delay`.
    pub fn set_start_after(&mut self, volunteer: usize, task: usize, hours: f64) {
        if volunteer >= self.volunteers.len() || task >= self.tasks.len() {
            return;
        }
        if !hours.is_finite() || hours < 0.0 {
            return;
        }
        let start_after = &mut self.start_after[volunteer];
        match start_after
            .iter_mut()
            .find(|(own_task, _)| *own_task == task)
        {
            Some(entry) => entry.1 = hours,
            None => start_after.push((task, hours)),
        }
    }

    /// When `volunteer` can start on `task`, in hours after `now`: the
    /// task's window start, or later for flexible work not yet under way.
    pub(crate) fn start_of(&self, volunteer: usize, task: usize) -> f64 {
        let facts = &self.tasks[task];
        if facts.shift.is_some() {
            return facts.start_hours;
        }
        let own = |pairs: &Vec<Vec<(usize, f64)>>| {
            pairs
                .get(volunteer)
                .and_then(|pairs| pairs.iter().find(|(own_task, _)| *own_task == task))
                .map(|&(_, value)| value)
        };
        let delay = match (own(&self.start_after), own(&self.owed)) {
            (Some(hours), _) => hours,
            // Under way: it has started.
            (None, Some(_)) => 0.0,
            (None, None) => self.start_delay,
        };
        facts.start_hours.max(delay.min(facts.deadline_hours / 4.0))
    }

    /// Drops candidates that no longer fit alone (pins stay: they are
    /// dropped, if they must be, by the solvers, with their team).
    fn keep_fitting_candidates(&mut self) {
        let pins: std::collections::HashSet<(usize, usize)> = self.pins.iter().copied().collect();
        for task in 0..self.tasks.len() {
            let candidates = std::mem::take(&mut self.candidates_of_task[task]);
            let (kept, dropped): (Vec<usize>, Vec<usize>) =
                candidates.into_iter().partition(|&volunteer| {
                    pins.contains(&(volunteer, task))
                        || crate::time::fits_with(self, volunteer, &[], task)
                });
            self.candidates_of_task[task] = kept;
            for volunteer in dropped {
                self.tasks_of_volunteer[volunteer].retain(|&other| other != task);
            }
        }
    }

    /// The hours `volunteer` works on `task` (what they owe, if set; the
    /// task's `hours` otherwise).
    pub(crate) fn hours_of(&self, volunteer: usize, task: usize) -> f64 {
        self.owed
            .get(volunteer)
            .and_then(|owed| owed.iter().find(|(owed_task, _)| *owed_task == task))
            .map_or(self.tasks[task].hours, |&(_, hours)| hours)
    }

    /// Rule 5c's hours of `task` by ISO week for `volunteer`: the task's,
    /// scaled to what they owe.
    pub(crate) fn week_hours_of(
        &self,
        volunteer: usize,
        task: usize,
    ) -> impl Iterator<Item = (i64, f64)> + '_ {
        let facts = &self.tasks[task];
        let scale = if facts.hours > 0.0 {
            self.hours_of(volunteer, task) / facts.hours
        } else {
            1.0
        };
        facts
            .week_hours
            .iter()
            .map(move |&(week, hours)| (week, hours * scale))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use crate::test_support::{instance, problem, task, volunteer};
    use crate::{solve, SolveOptions};

    /// A member who leaves before the deadline, pinned to a task of 10 h of
    /// which they have done 8: at 1 h a day over 3 days they fit the 2 h
    /// left, never the 10.
    fn leaving_member() -> serde_json::Value {
        let mut member = volunteer("v-leaving", json!({}), 7.0);
        member["available_until"] = json!("2026-11-25T00:00:00Z");
        let mut raw = instance(
            vec![member],
            vec![task("t1", json!({}), 10.0, 1, 7, 1.0)],
            vec![],
        );
        raw["pinned"] = json!([{"volunteer": "v-leaving", "task": "t1"}]);
        raw
    }

    #[test]
    fn a_member_charged_the_whole_task_is_dropped_but_one_owing_what_is_left_is_kept() {
        let whole = problem(&leaving_member());
        let report = solve(&whole, &SolveOptions::default());
        assert_eq!(
            report.dropped_pins,
            vec![0],
            "10 h do not fit 3 days at 1 h a day"
        );

        let mut left = problem(&leaving_member());
        left.set_owed(0, 0, 2.0);
        let report = solve(&left, &SolveOptions::default());
        assert!(report.dropped_pins.is_empty(), "{report:?}");
        assert_eq!(report.solution.assignments, vec![(0, 0)]);
        assert!(crate::check::check(&left, &report.solution.to_plan(&left)).is_ok());
    }

    #[test]
    fn what_is_owed_is_clamped_to_the_task_and_shifts_keep_their_hours() {
        let mut owing = problem(&leaving_member());
        owing.set_owed(0, 0, 50.0);
        assert_eq!(owing.hours_of(0, 0), 10.0);
        owing.set_owed(0, 0, -1.0);
        assert_eq!(owing.hours_of(0, 0), 0.0);
        owing.set_owed(0, 0, f64::NAN);
        assert_eq!(owing.hours_of(0, 0), 0.0, "ignored");
        owing.set_owed(7, 0, 1.0);
        owing.set_owed(0, 7, 1.0);
    }

    /// 2.5 h in 3 days at 1 h a day fits from now (3 h), not from 18 h on
    /// (2.25 h): a day's delay is capped at a quarter of the 72 h left.
    fn short_task() -> serde_json::Value {
        instance(
            vec![volunteer("v1", json!({}), 7.0)],
            vec![task("t1", json!({}), 2.5, 1, 3, 1.0)],
            vec![],
        )
    }

    #[test]
    fn work_not_under_way_is_booked_from_when_people_answer() {
        let prompt = problem(&short_task());
        assert_eq!(
            solve(&prompt, &SolveOptions::default())
                .solution
                .assignments,
            vec![(0, 0)]
        );

        let mut slow = problem(&short_task());
        slow.set_start_delay(24.0);
        assert_eq!(slow.start_of(0, 0), 18.0);
        assert!(slow.candidates(0).is_empty(), "no longer fits alone");
        assert!(solve(&slow, &SolveOptions::default())
            .solution
            .assignments
            .is_empty());

        // Under way, or answered already: it starts now.
        let mut started = problem(&short_task());
        started.set_owed(0, 0, 2.5);
        started.set_start_delay(24.0);
        assert_eq!(started.start_of(0, 0), 0.0);
        let report = solve(&started, &SolveOptions::default());
        assert_eq!(report.solution.assignments, vec![(0, 0)]);
        assert!(crate::check::check(&started, &report.solution.to_plan(&started)).is_ok());
        let mut answered = problem(&short_task());
        answered.set_start_after(0, 0, 0.0);
        answered.set_start_delay(24.0);
        assert_eq!(answered.start_of(0, 0), 0.0);
        assert_eq!(answered.candidates(0), &[0]);

        let mut ignored = problem(&short_task());
        ignored.set_start_delay(f64::NAN);
        ignored.set_start_delay(-1.0);
        ignored.set_start_after(3, 0, 1.0);
        assert_eq!(ignored.start_of(0, 0), 0.0);
    }
}
