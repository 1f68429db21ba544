//! The limits that shape each destination's concurrency and backoff.

use std::time::Duration;

/// The per-destination limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationLimits {
    /// Concurrent attempts a destination gets at first, and after it was dead
    /// (Postfix's `initial_destination_concurrency`).
    pub initial_concurrency: usize,
    /// The most concurrent attempts one destination ever gets; it grows by one with
    /// each delivery (Postfix's `default_destination_concurrency_limit`).
    pub concurrency_limit: usize,
    /// Connection-level failures in a row (no server answered, or an attempt ran out of
    /// its deadline) that mark a destination dead: one cohort at the initial
    /// concurrency.
    pub failed_cohort: u32,
    /// How long a destination is dead at first; doubled by each failed probe
    /// (Postfix's `minimal_backoff_time`).
    pub min_backoff: Duration,
    /// The longest a destination is dead before it is probed (Postfix's
    /// `maximal_backoff_time`).
    pub max_backoff: Duration,
    /// How far a job is put off through the queue (with ±20 % jitter) when its
    /// destination has no free slot and [`MAX_PARKED`](super::MAX_PARKED) jobs wait for one already.
    pub busy_delay: Duration,
    /// The most recipients of one message sent to a destination in one transaction
    /// (Postfix's `smtp_destination_recipient_limit`); more go in further
    /// transactions (ADR 0017).
    pub recipient_limit: usize,
}

impl Default for DestinationLimits {
    fn default() -> Self {
        DestinationLimits {
            initial_concurrency: 5,
            concurrency_limit: 20,
            failed_cohort: 5,
            min_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(10 * 60),
            busy_delay: Duration::from_secs(5),
            recipient_limit: 50,
        }
    }
}
