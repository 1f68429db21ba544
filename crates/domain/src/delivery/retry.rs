//! When to try a delivery again.

use std::time::{Duration, SystemTime};

/// The retry schedule: fixed steps, then a steady interval, until a deadline measured
/// from when the job was enqueued. Each delay gets random jitter so that jobs that
/// failed together (a destination was down) do not all come back in the same second.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first, second, … failed attempt.
    pub steps: Vec<Duration>,
    /// Delay after every later attempt.
    pub then_every: Duration,
    /// Stop retrying once the next attempt would be this long after enqueueing.
    pub give_up_after: Duration,
    /// Jitter as a fraction of the delay: 0.1 means ±10 %.
    pub jitter: f64,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

impl Default for RetryPolicy {
    /// 1m, 5m, 15m, 30m, 1h, 2h, 4h, then every 4h, giving up after 5 days.
    fn default() -> Self {
        RetryPolicy {
            steps: [
                MINUTE,
                5 * MINUTE,
                15 * MINUTE,
                30 * MINUTE,
                HOUR,
                2 * HOUR,
                4 * HOUR,
            ]
            .map(Duration::from_secs)
            .to_vec(),
            then_every: Duration::from_secs(4 * HOUR),
            give_up_after: Duration::from_secs(5 * 24 * HOUR),
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based), before jitter.
    #[must_use]
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.steps.get(index).copied().unwrap_or(self.then_every)
    }

    /// When to try again after failed attempt `attempt` of a job enqueued at
    /// `enqueued_at`, or `None` when it is time to give up.
    #[must_use]
    pub fn next_attempt(
        &self,
        attempt: u32,
        enqueued_at: SystemTime,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let base = self.base_delay(attempt).as_secs_f64();
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + jitter * (fastrand::f64() * 2.0 - 1.0);
        let retry_at = now + Duration::from_secs_f64((base * factor).max(0.0));
        let deadline = enqueued_at + self.give_up_after;
        (retry_at <= deadline).then_some(retry_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule() {
        let policy = RetryPolicy::default();
        let minutes: Vec<u64> = (1..=9)
            .map(|a| policy.base_delay(a).as_secs() / 60)
            .collect();
        assert_eq!(minutes, vec![1, 5, 15, 30, 60, 120, 240, 240, 240]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_the_deadline_ends_retries() {
        let policy = RetryPolicy::default();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for _ in 0..200 {
            let at = policy.next_attempt(1, start, start).expect("retry");
            let delay = at.duration_since(start).expect("later").as_secs_f64();
            assert!((54.0..=66.0).contains(&delay), "{delay}");
        }
        let almost_five_days = start + Duration::from_secs(5 * 24 * HOUR - 60);
        assert_eq!(policy.next_attempt(30, start, almost_five_days), None);
    }
}
