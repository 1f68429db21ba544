//! The rates: messages and bytes per second, over all clients and per client, on
//! governor's in-process limiters (per-process limits: see DEPENDENCIES.md).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, InsufficientCapacity, Quota, RateLimiter,
};
use mailfwd_domain::email::Client;

use super::ThrottleConfig;

/// How often the per-client limiters forget clients that have been quiet long enough
/// to be back at a full allowance: governor's keyed limiters keep every key they have
/// seen until told to drop them, so a stream of new addresses would grow them forever.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A rate that was reached: which one, and when the client may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reached {
    /// The metrics label: `messages`, `bytes`, `client_messages` or `client_bytes`.
    pub reason: &'static str,
    /// How long until the rate allows what was refused.
    pub retry_after: Duration,
}

/// The longest one chunk of a body waits for the byte rates. A chunk that would need
/// longer at the configured rate (a rate under 140 bytes a second, for SMTP's reads of
/// 16 KiB) is refused at once instead: no client waits minutes for nothing, and a
/// sender's data timeout (3 minutes, RFC 5321 §4.5.3.2.5) is never reached.
pub(crate) const MAX_PACE: Duration = Duration::from_secs(120);

/// One kind of thing counted (messages or bytes), over all clients and per client.
struct Rate {
    global: Option<DefaultDirectRateLimiter>,
    per_client: Option<DefaultKeyedRateLimiter<Client>>,
    /// The configured rates, global and per client, for the time a count needs.
    per_second: (Option<u64>, Option<u64>),
    /// The metrics labels of the two limits.
    labels: (&'static str, &'static str),
}

/// A quota of `per_second`, with a burst of one second's worth; `None` when unset or 0.
fn quota(per_second: Option<u64>) -> Option<Quota> {
    let rate = u32::try_from(per_second?).unwrap_or(u32::MAX);
    NonZeroU32::new(rate).map(Quota::per_second)
}

impl Rate {
    fn new(
        global: Option<u64>,
        per_client: Option<u64>,
        labels: (&'static str, &'static str),
    ) -> Self {
        Rate {
            global: quota(global).map(RateLimiter::direct),
            per_client: quota(per_client).map(RateLimiter::keyed),
            per_second: (global, per_client),
            labels,
        }
    }

    /// Takes `n` from the client's rate, then the global one, waiting as long as they
    /// need (a body is slowed to the rate, never refused half-way for going faster),
    /// unless that is more than [`MAX_PACE`]: then it is refused at once.
    async fn pace(&self, client: &Client, n: u64) -> Result<(), Reached> {
        let Ok(n) = u32::try_from(n) else {
            return Err(too_slow(self.labels.1, MAX_PACE));
        };
        let give_up_at = Instant::now() + MAX_PACE;
        if let Some(limiter) = &self.per_client {
            let needs = needs(n, self.per_second.1);
            if needs > MAX_PACE {
                return Err(too_slow(self.labels.1, needs));
            }
            let check = |n| limiter.check_key_n(client, n);
            paced(check, limiter.clock(), n, self.labels.1, give_up_at).await?;
        }
        if let Some(limiter) = &self.global {
            let needs = needs(n, self.per_second.0);
            if needs > MAX_PACE {
                return Err(too_slow(self.labels.0, needs));
            }
            let check = |n| limiter.check_n(n);
            paced(check, limiter.clock(), n, self.labels.0, give_up_at).await?;
        }
        Ok(())
    }

    /// Counts `n` against the client's rate, then the global one. More than a burst at
    /// once (a chunk larger than a second's worth of bytes) counts as one full burst:
    /// governor could never allow it, and refusing it forever would be wrong. A refusal
    /// by the global rate leaves the client's cells spent: governor cannot give them
    /// back, and the difference is one message's worth.
    fn charge(&self, client: &Client, n: u64) -> Result<(), Reached> {
        let Some(n) = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        if let Some(limiter) = &self.per_client {
            let outcome = at_most_a_burst(n, |n| limiter.check_key_n(client, n));
            refused(outcome, self.labels.1, limiter.clock())?;
        }
        if let Some(limiter) = &self.global {
            let outcome = at_most_a_burst(n, |n| limiter.check_n(n));
            refused(outcome, self.labels.0, limiter.clock())?;
        }
        Ok(())
    }

    fn sweep(&self) {
        if let Some(limiter) = &self.per_client {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

type NotUntil = governor::NotUntil<<DefaultClock as Clock>::Instant>;

/// How long `n` takes at `per_second` from an empty allowance.
fn needs(n: u32, per_second: Option<u64>) -> Duration {
    per_second
        .filter(|rate| *rate > 0)
        .map_or(Duration::ZERO, |rate| {
            Duration::from_secs_f64(f64::from(n) / rate as f64)
        })
}

fn too_slow(reason: &'static str, retry_after: Duration) -> Reached {
    Reached {
        reason,
        retry_after,
    }
}

/// Takes `n` cells from a limiter through `check`, a quarter of a burst at a time when
/// `n` is more than it holds, sleeping until each is allowed; refused if a wait would end after
/// `give_up_at` (other clients took the global rate meanwhile).
async fn paced(
    check: impl Fn(NonZeroU32) -> Result<Result<(), NotUntil>, InsufficientCapacity>,
    clock: &DefaultClock,
    n: u32,
    reason: &'static str,
    give_up_at: Instant,
) -> Result<(), Reached> {
    let (mut left, mut piece) = (n, n);
    while let Some(want) = NonZeroU32::new(left.min(piece)) {
        match check(want) {
            Ok(Ok(())) => left -= want.get(),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(clock.now());
                if Instant::now() + wait > give_up_at {
                    return Err(too_slow(reason, wait));
                }
                tokio::time::sleep(wait).await;
            }
            // A quarter of the burst at a time: a piece the size of the whole burst
            // would wait for a full bucket, which senders sharing a global rate may
            // never leave.
            Err(InsufficientCapacity(burst)) => piece = (burst / 4).max(1),
        }
    }
    Ok(())
}

/// Asks `check` for `n` cells, or for the whole burst when `n` is more than it holds.
fn at_most_a_burst(
    n: NonZeroU32,
    check: impl Fn(NonZeroU32) -> Result<Result<(), NotUntil>, InsufficientCapacity>,
) -> Result<(), NotUntil> {
    match check(n) {
        Ok(outcome) => outcome,
        Err(InsufficientCapacity(burst)) => match NonZeroU32::new(burst) {
            Some(burst) => check(burst).unwrap_or(Ok(())),
            None => Ok(()),
        },
    }
}

/// A refusal of governor's as a [`Reached`] labelled `reason`, its delay measured on
/// the limiter's own clock.
fn refused(
    outcome: Result<(), NotUntil>,
    reason: &'static str,
    clock: &DefaultClock,
) -> Result<(), Reached> {
    outcome.map_err(|not_until| Reached {
        reason,
        retry_after: not_until.wait_time_from(clock.now()),
    })
}

/// Every rate of one store.
pub(crate) struct Limits {
    messages: Rate,
    bytes: Rate,
    last_sweep: Mutex<Instant>,
}

impl Limits {
    pub(crate) fn new(config: &ThrottleConfig) -> Self {
        Limits {
            messages: Rate::new(
                config.messages_per_second,
                config.client_messages_per_second,
                ("messages", "client_messages"),
            ),
            bytes: Rate::new(
                config.bytes_per_second,
                config.client_bytes_per_second,
                ("bytes", "client_bytes"),
            ),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Counts one new message from `client`.
    pub(crate) fn message(&self, client: &Client) -> Result<(), Reached> {
        self.sweep_now_and_then();
        self.messages.charge(client, 1)
    }

    /// Takes `n` body bytes from `client`'s byte rates, waiting for them (see
    /// [`Rate::pace`]).
    pub(crate) async fn bytes(&self, client: &Client, n: usize) -> Result<(), Reached> {
        self.bytes
            .pace(client, u64::try_from(n).unwrap_or(u64::MAX))
            .await
    }

    /// Drops quiet clients from the per-client limiters, at most once per
    /// [`SWEEP_EVERY`], on the calling path: no task to start or stop, and a caller
    /// that finds the sweep under way does not wait for it.
    fn sweep_now_and_then(&self) {
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return;
        };
        if last.elapsed() < SWEEP_EVERY {
            return;
        }
        *last = Instant::now();
        drop(last);
        self.messages.sweep();
        self.bytes.sweep();
    }
}
