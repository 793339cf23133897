//! The realised world every policy is judged on: who is present when, how
//! each person answers, how they work, and which tasks really complete.
//!
//! It knows nothing of NATS: the live run feeds it what reached the people
//! over the wire and sends what it says they answer; the offline baselines
//! feed it their own proposals. Time only moves when a caller says so, so
//! tests run on virtual time.
//!
//! - A person is present from arrival until the earlier of the end of their
//!   tenure and, for the share who vanish, a random point of it. After that
//!   they never answer anything again and never work again.
//! - Accepted work is done at the person's own rate, `hours_per_week / 168`
//!   an hour while present (the canonical problem's even rate), earliest
//!   deadline first over the assignments whose window is open. A person
//!   reports `done` once they have worked the task's hours.
//! - A task completes when `slots` distinct people reported it done inside
//!   its window, its money is there and its dependencies completed by its
//!   deadline.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Work left below this many hours counts as done (floating point drift).
const WORK_TOLERANCE_HOURS: f64 = 1e-6;
/// The release delay that counts as "early enough to backfill", in hours.
pub const RELEASE_WITHIN_HOURS: f64 = 48.0;

/// How people behave; every rate is a flag of `simulate`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// Share of people who vanish silently at a random point of their tenure.
    pub vanish_share: f64,
    /// Share of proposals a present person answers at all.
    pub answer_share: f64,
    /// Share of answered proposals that are accepted.
    pub accept_share: f64,
    /// Longest time a person takes to answer anything, in hours (the shortest is a quarter hour).
    pub answer_delay_hours_max: f64,
}

pub const ANSWER_DELAY_HOURS_MIN: f64 = 0.25;

impl Default for Rates {
    fn default() -> Rates {
        Rates {
            vanish_share: 1.0 / 3.0,
            answer_share: 0.93,
            accept_share: 0.82,
            answer_delay_hours_max: 8.0,
        }
    }
}

impl Rates {
    /// Bad rates name their flag.
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, share) in [
            ("--vanish-share", self.vanish_share),
            ("--answer-share", self.answer_share),
            ("--accept-share", self.accept_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                anyhow::bail!("{flag} must be between 0 and 1, not {share}");
            }
        }
        if !(self.answer_delay_hours_max.is_finite()
            && self.answer_delay_hours_max >= ANSWER_DELAY_HOURS_MIN)
        {
            anyhow::bail!(
                "--answer-delay-hours-max must be at least {ANSWER_DELAY_HOURS_MIN}, not {}",
                self.answer_delay_hours_max
            );
        }
        Ok(())
    }
}

/// One person as they really are (the switchboard sees only their offer).
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    pub id: String,
    pub arrives: DateTime<Utc>,
    /// End of the tenure they declared.
    pub tenure_ends: DateTime<Utc>,
    /// When they vanish without a word, for those who do.
    pub vanishes: Option<DateTime<Utc>>,
    pub hours_per_week: f64,
}

impl Person {
    /// The first moment they are no longer there.
    pub fn gone_at(&self) -> DateTime<Utc> {
        self.vanishes
            .map_or(self.tenure_ends, |at| at.min(self.tenure_ends))
    }

    pub fn present(&self, at: DateTime<Utc>) -> bool {
        at >= self.arrives && at < self.gone_at()
    }

    fn rate_per_hour(&self) -> f64 {
        self.hours_per_week / 168.0
    }
}

/// A task as the world scores it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: String,
    pub hours: f64,
    pub slots: u8,
    pub starts: DateTime<Utc>,
    /// The deadline, or the end of the period if earlier.
    pub deadline: DateTime<Utc>,
    pub impact: f64,
    /// Indexes of the jobs it depends on.
    pub depends_on: Vec<usize>,
    pub needs_money: bool,
}

/// What one person does about one task, the same under every policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub answers: bool,
    pub accepts: bool,
    pub answer_delay_hours: f64,
}

/// FNV-1a of the seed and the parts: stable across runs and platforms.
pub fn stable_hash(seed: u64, parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for part in parts {
        for byte in part.bytes().chain([b'/']) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

pub fn choice(seed: u64, rates: &Rates, person: &str, task: &str) -> Choice {
    let mut rng = StdRng::seed_from_u64(stable_hash(seed, &[person, task]));
    Choice {
        answers: rng.random_bool(rates.answer_share),
        accepts: rng.random_bool(rates.accept_share),
        answer_delay_hours: rng.random_range(ANSWER_DELAY_HOURS_MIN..=rates.answer_delay_hours_max),
    }
}

/// When a person vanishes, if they do: a share of people, at a uniform point of their tenure.
pub fn vanishing(
    seed: u64,
    rates: &Rates,
    person: &str,
    arrives: DateTime<Utc>,
    tenure_ends: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut rng = StdRng::seed_from_u64(stable_hash(seed, &[person, "vanish"]));
    let vanishes = rng.random_bool(rates.vanish_share);
    let point: f64 = rng.random_range(0.0..1.0);
    let tenure_s = (tenure_ends - arrives).num_seconds().max(0) as f64;
    vanishes.then(|| arrives + chrono::Duration::seconds((tenure_s * point) as i64))
}

/// What a person says; the caller puts it on the wire (or into its planner).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Accept,
    Decline,
    Checkin,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Said {
    pub at: DateTime<Utc>,
    pub person: usize,
    pub job: usize,
    pub action: Action,
}

/// An answer due: when, a sequence number for ties, person, job, what.
type Due = (DateTime<Utc>, u64, usize, usize, Action);

/// One piece of work a person holds.
#[derive(Clone, Debug)]
struct Holding {
    job: usize,
    worked: f64,
    done_at: Option<DateTime<Utc>>,
    /// False when the wire refused their `done`.
    done_counts: bool,
    released_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct World {
    pub people: Vec<Person>,
    pub jobs: Vec<Job>,
    seed: u64,
    rates: Rates,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
    holdings: Vec<Vec<Holding>>,
    /// Answers people will give, by when (sequence number breaks ties).
    pending: BinaryHeap<Reverse<Due>>,
    sequence: u64,
    /// Money's arrival per job that needs it.
    funded_at: HashMap<usize, DateTime<Utc>>,
}

/// One policy's outcome, scored on what really happened.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Outcome {
    pub policy: String,
    pub tasks_completed: usize,
    pub impact_delivered: f64,
    /// Hours people really worked.
    pub hours_worked: f64,
    /// Hours worked on tasks that never completed.
    pub hours_wasted: f64,
    pub wasted_share: f64,
    /// People who held at least one piece of work.
    pub people_with_work: usize,
    /// Impact of the tasks completed on each day of the period.
    pub impact_by_day: Vec<f64>,
    /// How long after a person vanished the work they held was released.
    pub release_after_vanish: ReleaseLag,
    /// Wasted hours by why their task did not complete (the first that applies):
    /// `team never fully staffed` (fewer distinct people ever held it than it
    /// needs); staffed, but a member who did not do their hours had
    /// `vanished or left` before the deadline, or was `released while
    /// present` by the switchboard, or `ran out of window` (still there and
    /// holding it, too slow for the time left), or, of the same, `still
    /// open when the period ended` (its real deadline is later: the
    /// switchboard plans to it, the period is scored to its end); `money
    /// or a dependency missing` (the team did its hours).
    pub wasted_because: BTreeMap<String, f64>,
}

pub const WASTE_UNSTAFFED: &str = "team never fully staffed";
pub const WASTE_LEFT: &str = "a member vanished or left";
pub const WASTE_RELEASED: &str = "a member released while present";
pub const WASTE_OUT_OF_WINDOW: &str = "a member ran out of window";
pub const WASTE_PERIOD_END: &str = "still open when the period ended";
pub const WASTE_PREREQUISITE: &str = "money or a dependency missing";
/// Every cause, in the order they are tried.
pub const WASTE_CAUSES: [&str; 6] = [
    WASTE_UNSTAFFED,
    WASTE_LEFT,
    WASTE_RELEASED,
    WASTE_OUT_OF_WINDOW,
    WASTE_PERIOD_END,
    WASTE_PREREQUISITE,
];

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ReleaseLag {
    /// Unfinished assignments held by people when they vanished.
    pub held_when_vanished: usize,
    /// Of those, released before the period ended.
    pub released: usize,
    /// Hours from vanishing to release; `null` when fewer than half (or a tenth) were released.
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
    /// Share released within 48 hours (never-released ones count as late).
    pub within_48h_share: f64,
}

impl World {
    pub fn new(
        people: Vec<Person>,
        jobs: Vec<Job>,
        seed: u64,
        rates: Rates,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> World {
        let holdings = vec![Vec::new(); people.len()];
        World {
            people,
            jobs,
            seed,
            rates,
            start,
            end,
            now: start,
            holdings,
            pending: BinaryHeap::new(),
            sequence: 0,
            funded_at: HashMap::new(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    pub fn choice(&self, person: usize, job: usize) -> Choice {
        choice(
            self.seed,
            &self.rates,
            &self.people[person].id,
            &self.jobs[job].id,
        )
    }

    fn schedule(&mut self, at: DateTime<Utc>, person: usize, job: usize, action: Action) {
        self.sequence += 1;
        self.pending
            .push(Reverse((at, self.sequence, person, job, action)));
    }

    /// A proposal reached the person at `at`: they answer (or not) after their delay.
    pub fn propose(&mut self, at: DateTime<Utc>, person: usize, job: usize) {
        let choice = self.choice(person, job);
        if !choice.answers {
            return;
        }
        let action = if choice.accepts {
            Action::Accept
        } else {
            Action::Decline
        };
        self.schedule(
            after_hours(at, choice.answer_delay_hours),
            person,
            job,
            action,
        );
    }

    /// A nudge ("still on it?") reached the person: they check in after their delay
    /// if they still hold the work and have not finished it.
    pub fn nudge(&mut self, at: DateTime<Utc>, person: usize, job: usize) {
        if self.holding(person, job).is_none() {
            return;
        }
        let delay = self.choice(person, job).answer_delay_hours;
        self.schedule(after_hours(at, delay), person, job, Action::Checkin);
    }

    /// The person now holds the work (their accept went through, or they signed up).
    pub fn assign(&mut self, person: usize, job: usize) {
        if self.holding(person, job).is_some() {
            return;
        }
        self.holdings[person].push(Holding {
            job,
            worked: 0.0,
            done_at: None,
            done_counts: true,
            released_at: None,
        });
    }

    /// The work was taken back: the person stops working on it.
    pub fn release(&mut self, at: DateTime<Utc>, person: usize, job: usize) {
        if let Some(holding) = self.holdings[person]
            .iter_mut()
            .find(|holding| holding.job == job && holding.released_at.is_none())
        {
            if holding.done_at.is_none() {
                holding.released_at = Some(at);
            }
        }
    }

    /// The wire refused a `done`: it does not count.
    pub fn done_refused(&mut self, person: usize, job: usize) {
        if let Some(holding) = self.holdings[person]
            .iter_mut()
            .find(|holding| holding.job == job)
        {
            holding.done_counts = false;
        }
    }

    /// The job's money is there from `at` on.
    pub fn funded(&mut self, job: usize, at: DateTime<Utc>) {
        self.funded_at.entry(job).or_insert(at);
    }

    /// Unfinished, unreleased work the person holds.
    fn holding(&self, person: usize, job: usize) -> Option<&Holding> {
        self.holdings[person].iter().find(|holding| {
            holding.job == job && holding.released_at.is_none() && holding.done_at.is_none()
        })
    }

    /// Hours of work the person still owes on what they hold.
    pub fn hours_owed(&self, person: usize) -> f64 {
        self.holdings[person]
            .iter()
            .filter(|holding| holding.released_at.is_none() && holding.done_at.is_none())
            .map(|holding| (self.jobs[holding.job].hours - holding.worked).max(0.0))
            .sum()
    }

    pub fn hours_worked(&self, person: usize, job: usize) -> f64 {
        self.holdings[person]
            .iter()
            .filter(|holding| holding.job == job)
            .map(|holding| holding.worked)
            .sum()
    }

    /// Moves time to `to`: people work, and what they say by then is returned in time order.
    pub fn advance(&mut self, to: DateTime<Utc>) -> Vec<Said> {
        let mut said = Vec::new();
        while self.now < to {
            let next = match self.pending.peek() {
                Some(Reverse((at, ..))) if *at <= to => (*at).max(self.now),
                _ => to,
            };
            self.work_until(next, &mut said);
            self.now = next;
            while let Some(Reverse((at, _, person, job, action))) = self.pending.peek().copied() {
                if at > self.now {
                    break;
                }
                self.pending.pop();
                // Someone gone never answers; a check-in needs work still held.
                let answers = self.people[person].present(at)
                    && (action != Action::Checkin || self.holding(person, job).is_some());
                if answers {
                    said.push(Said {
                        at,
                        person,
                        job,
                        action,
                    });
                }
            }
        }
        said.sort_by_key(|said| said.at);
        said
    }

    /// Everyone works from `self.now` to `to` at their rate, earliest deadline first.
    fn work_until(&mut self, to: DateTime<Utc>, said: &mut Vec<Said>) {
        for person in 0..self.people.len() {
            if self.holdings[person].is_empty() {
                continue;
            }
            let rate = self.people[person].rate_per_hour();
            let mut at = self.now.max(self.people[person].arrives);
            let stop = to.min(self.people[person].gone_at());
            while at < stop && rate > 0.0 {
                let jobs = &self.jobs;
                let live = |holding: &&Holding| {
                    holding.released_at.is_none()
                        && holding.done_at.is_none()
                        && jobs[holding.job].deadline > at
                };
                let open = self.holdings[person]
                    .iter()
                    .enumerate()
                    .filter(|(_, holding)| live(holding) && jobs[holding.job].starts <= at)
                    .min_by_key(|(_, holding)| (jobs[holding.job].deadline, holding.job))
                    .map(|(index, _)| index);
                // The next time another piece of work opens: earliest deadline first looks again then.
                let next_opening = self.holdings[person]
                    .iter()
                    .filter(|holding| live(holding) && jobs[holding.job].starts > at)
                    .map(|holding| jobs[holding.job].starts)
                    .min();
                let Some(index) = open else {
                    match next_opening {
                        Some(opens) => {
                            at = opens;
                            continue;
                        }
                        None => break,
                    }
                };
                let job = &jobs[self.holdings[person][index].job];
                let mut until = stop.min(job.deadline);
                if let Some(opens) = next_opening {
                    until = until.min(opens);
                }
                let holding = &mut self.holdings[person][index];
                let left = job.hours - holding.worked;
                let finishes = after_hours(at, left / rate);
                if finishes <= until {
                    holding.worked = job.hours;
                    holding.done_at = Some(finishes);
                    said.push(Said {
                        at: finishes,
                        person,
                        job: holding.job,
                        action: Action::Done,
                    });
                    at = finishes;
                } else {
                    holding.worked += rate * hours_between(at, until);
                    if job.hours - holding.worked <= WORK_TOLERANCE_HOURS {
                        holding.worked = job.hours;
                        holding.done_at = Some(until);
                        said.push(Said {
                            at: until,
                            person,
                            job: holding.job,
                            action: Action::Done,
                        });
                    }
                    at = until;
                }
            }
        }
    }

    /// The outcome at the end of the period, from what people really did.
    pub fn score(&self, policy: &str) -> Outcome {
        // Each job's completion time, in index order: dependencies come first.
        let mut completed_at: Vec<Option<DateTime<Utc>>> = vec![None; self.jobs.len()];
        let mut dones: Vec<Vec<DateTime<Utc>>> = vec![Vec::new(); self.jobs.len()];
        for holdings in &self.holdings {
            // One person counts once per job.
            let mut mine: BTreeMap<usize, DateTime<Utc>> = BTreeMap::new();
            for holding in holdings {
                if let (Some(done_at), true) = (holding.done_at, holding.done_counts) {
                    let entry = mine.entry(holding.job).or_insert(done_at);
                    *entry = (*entry).min(done_at);
                }
            }
            for (job, done_at) in mine {
                dones[job].push(done_at);
            }
        }
        for (index, job) in self.jobs.iter().enumerate() {
            let team_done = if job.slots == 0 {
                Some(job.starts)
            } else {
                let mut times = dones[index].clone();
                times.sort();
                times.get(usize::from(job.slots) - 1).copied()
            };
            let money = if job.needs_money {
                self.funded_at.get(&index).copied()
            } else {
                Some(job.starts)
            };
            let mut at = match (team_done, money) {
                (Some(team), Some(money)) => Some(team.max(money).max(job.starts)),
                _ => None,
            };
            for dependency in &job.depends_on {
                at = match (at, completed_at.get(*dependency).copied().flatten()) {
                    (Some(at), Some(dependency_at)) => Some(at.max(dependency_at)),
                    _ => None,
                };
            }
            completed_at[index] = at.filter(|at| *at <= job.deadline && *at <= self.end);
        }
        let days = (hours_between(self.start, self.end) / 24.0).ceil().max(1.0) as usize;
        let mut outcome = Outcome {
            policy: policy.to_owned(),
            impact_by_day: vec![0.0; days],
            ..Outcome::default()
        };
        for (index, at) in completed_at.iter().enumerate() {
            if let Some(at) = at {
                outcome.tasks_completed += 1;
                outcome.impact_delivered += self.jobs[index].impact;
                let day = ((hours_between(self.start, *at) / 24.0) as usize).min(days - 1);
                outcome.impact_by_day[day] += self.jobs[index].impact;
            }
        }
        let mut holders: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); self.jobs.len()];
        for (person, holdings) in self.holdings.iter().enumerate() {
            for holding in holdings {
                holders[holding.job].insert(person);
            }
        }
        let cause = |job: usize| -> &'static str {
            let spec = &self.jobs[job];
            let slots = usize::from(spec.slots);
            if holders[job].len() < slots {
                return WASTE_UNSTAFFED;
            }
            if dones[job].len() >= slots {
                return WASTE_PREREQUISITE;
            }
            // The members who did not do their hours, and what stopped them.
            let unfinished = self
                .holdings
                .iter()
                .enumerate()
                .flat_map(|(person, holdings)| {
                    holdings
                        .iter()
                        .filter(move |holding| holding.job == job && holding.done_at.is_none())
                        .map(move |holding| (person, holding))
                });
            // A job's deadline is capped at the period's end: one that
            // reaches it has a later real deadline.
            let mut found = if spec.deadline >= self.end {
                WASTE_PERIOD_END
            } else {
                WASTE_OUT_OF_WINDOW
            };
            for (person, holding) in unfinished {
                let gone = self.people[person].gone_at();
                let released_first = holding
                    .released_at
                    .is_some_and(|released| released < gone && released < spec.deadline);
                if gone < spec.deadline && !released_first {
                    return WASTE_LEFT;
                }
                if released_first {
                    found = WASTE_RELEASED;
                }
            }
            found
        };
        let mut lags: Vec<f64> = Vec::new();
        let mut never = 0;
        for (person, holdings) in self.holdings.iter().enumerate() {
            if !holdings.is_empty() {
                outcome.people_with_work += 1;
            }
            for holding in holdings {
                outcome.hours_worked += holding.worked;
                if completed_at[holding.job].is_none() {
                    outcome.hours_wasted += holding.worked;
                    if holding.worked > 0.0 {
                        *outcome
                            .wasted_because
                            .entry(cause(holding.job).to_owned())
                            .or_insert(0.0) += holding.worked;
                    }
                }
            }
            let Some(vanished) = self.people[person].vanishes else {
                continue;
            };
            if vanished >= self.people[person].tenure_ends || vanished >= self.end {
                continue;
            }
            for holding in holdings {
                let unfinished_then = holding.done_at.is_none_or(|done| done > vanished)
                    && holding
                        .released_at
                        .is_none_or(|released| released > vanished)
                    && self.jobs[holding.job].deadline > vanished;
                if !unfinished_then {
                    continue;
                }
                match holding.released_at {
                    Some(released) => lags.push(hours_between(vanished, released)),
                    None => never += 1,
                }
            }
        }
        outcome.wasted_share = if outcome.hours_worked > 0.0 {
            outcome.hours_wasted / outcome.hours_worked
        } else {
            0.0
        };
        outcome.release_after_vanish = release_lag(lags, never);
        outcome
    }
}

fn release_lag(mut lags: Vec<f64>, never: usize) -> ReleaseLag {
    lags.sort_by(f64::total_cmp);
    let held = lags.len() + never;
    // Never-released ones sort last: a quantile that lands on them is unknown.
    let quantile = |q: f64| -> Option<f64> {
        if held == 0 {
            return None;
        }
        let rank = ((q * held as f64).ceil() as usize).clamp(1, held) - 1;
        lags.get(rank).copied()
    };
    let within = lags
        .iter()
        .filter(|lag| **lag <= RELEASE_WITHIN_HOURS)
        .count();
    ReleaseLag {
        held_when_vanished: held,
        released: lags.len(),
        median_hours: quantile(0.5),
        p90_hours: quantile(0.9),
        within_48h_share: if held == 0 {
            0.0
        } else {
            within as f64 / held as f64
        },
    }
}

pub fn hours_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 3_600_000.0
}

pub fn after_hours(at: DateTime<Utc>, hours: f64) -> DateTime<Utc> {
    at + chrono::Duration::seconds((hours * 3600.0) as i64)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    pub(crate) fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    pub(crate) fn person(
        id: &str,
        hours_per_week: f64,
        vanishes_after_hours: Option<f64>,
    ) -> Person {
        Person {
            id: id.to_owned(),
            arrives: t0(),
            tenure_ends: after_hours(t0(), 21.0 * 24.0),
            vanishes: vanishes_after_hours.map(|hours| after_hours(t0(), hours)),
            hours_per_week,
        }
    }

    pub(crate) fn job(id: &str, hours: f64, slots: u8, deadline_hours: f64) -> Job {
        Job {
            id: id.to_owned(),
            hours,
            slots,
            starts: t0(),
            deadline: after_hours(t0(), deadline_hours),
            impact: 10.0,
            depends_on: Vec::new(),
            needs_money: false,
        }
    }

    /// Everyone answers, and accepts, at once (a quarter hour).
    pub(crate) fn eager() -> Rates {
        Rates {
            vanish_share: 0.0,
            answer_share: 1.0,
            accept_share: 1.0,
            answer_delay_hours_max: ANSWER_DELAY_HOURS_MIN,
        }
    }

    fn world(people: Vec<Person>, jobs: Vec<Job>) -> World {
        World::new(
            people,
            jobs,
            1,
            eager(),
            t0(),
            after_hours(t0(), 21.0 * 24.0),
        )
    }

    #[test]
    fn a_vanished_person_never_answers_or_works_after_their_vanish_time() {
        // 16.8 h a week is 0.1 h an hour: 10 h of work would take 100 h.
        let mut world = world(
            vec![person("v", 16.8, Some(50.0))],
            vec![job("a", 10.0, 1, 400.0), job("b", 1.0, 1, 400.0)],
        );
        world.propose(t0(), 0, 0);
        let said = world.advance(after_hours(t0(), 1.0));
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(said[0].action, Action::Accept);
        world.assign(0, 0);
        // A nudge before the vanishing is answered.
        world.nudge(after_hours(t0(), 10.0), 0, 0);
        let said = world.advance(after_hours(t0(), 11.0));
        assert_eq!(
            said.iter().map(|s| s.action).collect::<Vec<_>>(),
            [Action::Checkin]
        );
        // An answer due a moment after they vanish is never given.
        world.nudge(after_hours(t0(), 49.9), 0, 0);
        world.propose(after_hours(t0(), 49.9), 0, 1);
        assert!(world.advance(after_hours(t0(), 60.0)).is_empty());
        // Nor anything after, however long we wait, and no work is done.
        world.nudge(after_hours(t0(), 100.0), 0, 0);
        world.propose(after_hours(t0(), 100.0), 0, 1);
        assert!(world.advance(after_hours(t0(), 500.0)).is_empty());
        let worked = world.hours_worked(0, 0);
        assert!(
            (worked - 4.9).abs() < 0.01,
            "worked {worked} h, not 49 h at 0.1 h/h"
        );
        let outcome = world.score("test");
        assert_eq!(outcome.tasks_completed, 0);
        assert!((outcome.hours_wasted - worked).abs() < 1e-9);
        assert_eq!(outcome.release_after_vanish.held_when_vanished, 1);
        assert_eq!(outcome.release_after_vanish.released, 0);
    }

    #[test]
    fn work_is_done_at_the_persons_rate_earliest_deadline_first() {
        // 7 h a week: one hour a day.
        let mut world = world(
            vec![person("v", 7.0, None)],
            vec![job("late", 2.0, 1, 300.0), job("soon", 1.0, 1, 100.0)],
        );
        world.assign(0, 0);
        world.assign(0, 1);
        let said = world.advance(after_hours(t0(), 200.0));
        let dones: Vec<(usize, f64)> = said
            .iter()
            .filter(|said| said.action == Action::Done)
            .map(|said| (said.job, hours_between(t0(), said.at)))
            .collect();
        assert_eq!(dones.len(), 2, "{said:?}");
        // The nearer deadline first: one hour of work takes a day.
        assert_eq!(dones[0].0, 1);
        assert!((dones[0].1 - 24.0).abs() < 0.01, "{dones:?}");
        // Then two more hours, two more days.
        assert_eq!(dones[1].0, 0);
        assert!((dones[1].1 - 72.0).abs() < 0.01, "{dones:?}");
        let outcome = world.score("test");
        assert!((outcome.hours_worked - 3.0).abs() < 1e-6);
        assert_eq!(outcome.tasks_completed, 2);
    }

    #[test]
    fn work_that_cannot_fit_before_the_deadline_is_never_reported_done() {
        // 1 h a day, 3 h of work, 48 h to do it in.
        let mut world = world(vec![person("v", 7.0, None)], vec![job("a", 3.0, 1, 48.0)]);
        world.assign(0, 0);
        let said = world.advance(after_hours(t0(), 200.0));
        assert!(said.is_empty(), "{said:?}");
        let outcome = world.score("test");
        assert!((outcome.hours_worked - 2.0).abs() < 0.01, "{outcome:?}");
        assert!((outcome.hours_wasted - 2.0).abs() < 0.01);
        assert!((outcome.wasted_because[WASTE_OUT_OF_WINDOW] - 2.0).abs() < 0.01);
    }

    #[test]
    fn work_whose_deadline_is_past_the_period_is_counted_apart() {
        // 1 h a day, 3 h of work, starting two days before the period ends;
        // its deadline is capped at that end.
        let mut world = world(
            vec![person("v", 7.0, None)],
            vec![job("a", 3.0, 1, 21.0 * 24.0)],
        );
        world.jobs[0].starts = after_hours(t0(), 19.0 * 24.0);
        world.assign(0, 0);
        world.advance(after_hours(t0(), 21.0 * 24.0));
        let outcome = world.score("test");
        assert!(
            (outcome.wasted_because[WASTE_PERIOD_END] - 2.0).abs() < 0.01,
            "{outcome:?}"
        );
        assert!(!outcome.wasted_because.contains_key(WASTE_OUT_OF_WINDOW));
    }

    #[test]
    fn a_task_completes_only_with_its_whole_team_its_money_and_its_dependencies() {
        let mut dependant = job("dependant", 1.0, 1, 300.0);
        dependant.depends_on = vec![0];
        let mut paid = job("paid", 1.0, 1, 300.0);
        paid.needs_money = true;
        let people = vec![
            person("a", 16.8, None),
            person("b", 16.8, Some(5.0)),
            person("c", 16.8, None),
            person("d", 16.8, None),
        ];
        // Job 0 needs two: b vanishes after half an hour of work.
        let jobs = vec![job("pair", 1.0, 2, 300.0), dependant, paid];
        let mut world = world(people, jobs);
        world.assign(0, 0);
        world.assign(1, 0);
        world.assign(2, 1);
        world.assign(3, 2);
        let _ = world.advance(after_hours(t0(), 400.0));
        let outcome = world.score("test");
        assert_eq!(outcome.tasks_completed, 0, "{outcome:?}");
        // Every hour worked was wasted: a, b's half hour, c and d.
        assert!((outcome.hours_wasted - 3.5).abs() < 0.01, "{outcome:?}");
        // The pair was staffed but b never finished; the others did their
        // hours on tasks whose dependency or money was missing.
        let because = &outcome.wasted_because;
        assert!((because[WASTE_LEFT] - 1.5).abs() < 0.01, "{because:?}");
        assert!(
            (because[WASTE_PREREQUISITE] - 2.0).abs() < 0.01,
            "{because:?}"
        );
        assert!(!because.contains_key(WASTE_UNSTAFFED), "{because:?}");

        // Backfilled in time, funded: all three complete, and b's half
        // hour on the pair went to a task that completed.
        let mut world = world_with_backfill();
        world.funded(2, t0());
        let outcome = world.score("test");
        assert_eq!(outcome.tasks_completed, 3, "{outcome:?}");
        assert!((outcome.hours_worked - 4.5).abs() < 0.01, "{outcome:?}");
        assert_eq!(outcome.hours_wasted, 0.0, "{outcome:?}");
        // Without the money the paid task does not complete.
        let outcome = world_with_backfill().score("test");
        assert_eq!(outcome.tasks_completed, 2, "{outcome:?}");
        assert!((outcome.hours_wasted - 1.0).abs() < 0.01, "{outcome:?}");
        assert!((outcome.hours_wasted - 1.0).abs() < 0.01, "{outcome:?}");
    }

    fn world_with_backfill() -> World {
        let mut dependant = job("dependant", 1.0, 1, 300.0);
        dependant.depends_on = vec![0];
        let mut paid = job("paid", 1.0, 1, 300.0);
        paid.needs_money = true;
        let people = vec![
            person("a", 16.8, None),
            person("b", 16.8, Some(5.0)),
            person("c", 16.8, None),
            person("d", 16.8, None),
            person("e", 16.8, None),
        ];
        let mut world = world(people, vec![job("pair", 1.0, 2, 300.0), dependant, paid]);
        world.assign(0, 0);
        world.assign(1, 0);
        world.assign(2, 1);
        world.assign(3, 2);
        let _ = world.advance(after_hours(t0(), 60.0));
        world.release(after_hours(t0(), 60.0), 1, 0);
        world.assign(4, 0);
        let _ = world.advance(after_hours(t0(), 400.0));
        world
    }

    #[test]
    fn wasted_hours_of_a_member_released_while_working_are_put_down_to_the_release() {
        let mut world = world(
            vec![person("a", 16.8, None), person("b", 16.8, None)],
            vec![job("pair", 2.0, 2, 300.0)],
        );
        world.assign(0, 0);
        world.assign(1, 0);
        let _ = world.advance(after_hours(t0(), 10.0));
        world.release(after_hours(t0(), 10.0), 1, 0);
        let _ = world.advance(after_hours(t0(), 400.0));
        let outcome = world.score("test");
        assert_eq!(outcome.tasks_completed, 0);
        assert!(
            (outcome.wasted_because[WASTE_RELEASED] - 3.0).abs() < 0.01,
            "{outcome:?}"
        );
        assert_eq!(outcome.wasted_because.len(), 1, "{outcome:?}");
    }

    #[test]
    fn a_done_the_wire_refused_does_not_count() {
        let mut world = world(vec![person("v", 16.8, None)], vec![job("a", 1.0, 1, 300.0)]);
        world.assign(0, 0);
        let said = world.advance(after_hours(t0(), 20.0));
        assert_eq!(said.len(), 1);
        world.done_refused(0, 0);
        assert_eq!(world.score("test").tasks_completed, 0);
    }

    #[test]
    fn release_lag_counts_the_never_released_as_late() {
        let lag = release_lag(vec![10.0, 30.0, 100.0], 1);
        assert_eq!(lag.held_when_vanished, 4);
        assert_eq!(lag.median_hours, Some(30.0));
        assert_eq!(lag.p90_hours, None, "the slowest is never released");
        assert!((lag.within_48h_share - 0.5).abs() < 1e-9);
    }
}
