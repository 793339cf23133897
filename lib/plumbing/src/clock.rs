//! The one clock every service and timer reads.
//!
//! Real time by default; `--now` pins where the switchboard's time starts,
//! and a speed above 1 runs it faster so three weeks can be watched in
//! minutes. It advances with tokio's clock, so tests that pause tokio's time
//! move the switchboard's time too, without sleeping.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
struct ClockInner {
    started_at: Instant,
    origin: DateTime<Utc>,
    speed: f64,
}

/// Fastest simulated time: one real second is at most this many simulated ones.
pub const CLOCK_SPEED_MAX: f64 = 100_000.0;

impl Clock {
    /// Real time.
    pub fn system() -> Clock {
        Clock::starting_at(Utc::now(), 1.0)
    }

    /// Time that starts at `origin` now and runs `speed` times faster than real time.
    pub fn starting_at(origin: DateTime<Utc>, speed: f64) -> Clock {
        let speed = if speed.is_finite() {
            speed.clamp(f64::MIN_POSITIVE, CLOCK_SPEED_MAX)
        } else {
            1.0
        };
        Clock {
            inner: Arc::new(ClockInner {
                started_at: Instant::now(),
                origin,
                speed,
            }),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let real = self.inner.started_at.elapsed().as_secs_f64() * self.inner.speed;
        let micros = (real * 1e6) as i64;
        self.inner.origin + chrono::Duration::microseconds(micros)
    }

    pub fn speed(&self) -> f64 {
        self.inner.speed
    }

    /// How long to wait in real time until the clock reads `at`.
    pub fn real_delay_until(&self, at: DateTime<Utc>) -> Duration {
        let simulated = (at - self.now()).to_std().unwrap_or(Duration::ZERO);
        simulated.div_f64(self.inner.speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fast_clock_runs_ahead_of_real_time() {
        let origin = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::starting_at(origin, 3600.0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(clock.now(), origin + chrono::Duration::hours(2));
        assert_eq!(
            clock.real_delay_until(origin + chrono::Duration::hours(3)),
            Duration::from_secs(1)
        );
    }
}
