//! What is known of one destination, and when it may be forgotten.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// What is known of one destination.
#[derive(Debug)]
pub(super) struct Destination<J> {
    pub(super) active: usize,
    pub(super) window: usize,
    pub(super) failures: u32,
    /// Dead until then.
    pub(super) dead_until: Option<Instant>,
    /// Its backoff ran out: the one attempt in flight decides whether it is alive.
    pub(super) probing: bool,
    /// The backoff of its next death.
    pub(super) backoff: Duration,
    pub(super) last_error: String,
    /// Jobs waiting for a slot, oldest first; parked only while a slot is taken, so an
    /// attempt that ends is always there to take them.
    pub(super) parked: VecDeque<J>,
    /// When its last attempt ended, while nothing is in flight or waiting.
    pub(super) idle_since: Option<Instant>,
}

impl<J> Destination<J> {
    /// Whether it holds nothing but a grown window (or not even that).
    pub(super) fn is_quiet(&self) -> bool {
        self.active == 0
            && self.parked.is_empty()
            && self.dead_until.is_none()
            && !self.probing
            && self.failures == 0
    }

    /// Whether it may be forgotten at `now`: nothing in flight or waiting for
    /// [`REMEMBER_QUIET`], and dead no longer. A destination that died and got no mail
    /// since is forgotten too (it would otherwise stay, and count as dead, for ever);
    /// its next mail starts afresh.
    pub(super) fn is_forgettable(&self, now: Instant) -> bool {
        self.active == 0
            && self.parked.is_empty()
            && !self.probing
            && self.dead_until.is_none_or(|until| until <= now)
            && self
                .idle_since
                .is_some_and(|since| now.saturating_duration_since(since) > REMEMBER_QUIET)
    }
}

/// How long a quiet destination's grown window is remembered; checked every
/// [`SWEEP_EVERY`] admissions, so mail to a million domains does not keep a million
/// entries.
pub(super) const REMEMBER_QUIET: Duration = Duration::from_secs(10 * 60);
pub(super) const SWEEP_EVERY: u32 = 4096;
