//! Per-destination scheduling (ADR 0016): how many attempts one destination gets at
//! once, and the memory of destinations no server of which could be reached.
//!
//! As Postfix's queue manager: a destination starts with a few concurrent attempts and
//! gets one more with each delivery, up to a limit, so a destination that hangs or
//! crawls holds only its own share of the workers. After a cohort of connection-level
//! failures in a row it is dead for a backoff period: its jobs are deferred without a
//! connection being tried; then one probe attempt decides whether it is alive again.
//!
//! A job for a destination whose slots are all taken is parked with it, in memory, and
//! the next attempt there to end takes it over (as jobs wait in Postfix's active queue):
//! it holds no worker meanwhile, and the window stays full without a trip through the
//! queue. Only when [`MAX_PARKED`] wait already is a job put off through the queue.

mod destination;
mod limits;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mailfwd_domain::delivery::Contact;
use tokio::time::Instant;

use destination::{Destination, SWEEP_EVERY};
pub use limits::DestinationLimits;

/// Jobs parked with one destination at most; beyond, they are put off through the
/// queue. Each holds little (its claim and a shared record), so this bounds memory, not
/// speed: a destination this far behind takes minutes to catch up anyway.
pub(crate) const MAX_PARKED: usize = 4096;

/// Whether a job (`J`) for a destination may be attempted now; the job comes back
/// with every answer but [`Admission::Parked`].
pub(crate) enum Admission<J> {
    /// Yes, in this slot.
    Go(Slot<J>, J),
    /// Every slot is taken: the job is parked with the destination, and the attempt
    /// that ends next there takes it over ([`Destinations::next_parked`]).
    Parked,
    /// Not now: every slot is taken and [`MAX_PARKED`] jobs wait already, or the
    /// destination is being probed; claim it again after this long.
    Busy(Duration, J),
    /// Not until the destination's backoff ends, this long from now: it is dead.
    Dead {
        /// Until the destination is probed again.
        for_: Duration,
        /// What the last failed attempt said.
        reason: String,
        /// The job.
        job: J,
    },
}

/// What [`Destinations::take_parked`] found.
pub(crate) enum Taken<J> {
    /// Parked jobs that may go now, each in a slot taken for it: as many as the window
    /// has room for (more than one when it has just grown).
    Go(Vec<(Slot<J>, J)>),
    /// The destination is dead or being probed: the oldest parked job, to go through
    /// [`Destinations::admit`].
    Admit(J),
    /// Nothing parked, or no room.
    Nothing,
}

/// Every destination mail is going to or was lately, by name, with the jobs (`J`)
/// parked with each.
pub(crate) struct Destinations<J> {
    limits: DestinationLimits,
    known: Mutex<HashMap<String, Destination<J>>>,
    /// Admissions so far, to sweep quiet destinations out now and then.
    admissions: AtomicU32,
}

impl<J> Destinations<J> {
    pub(crate) fn new(limits: DestinationLimits) -> Destinations<J> {
        let limits = DestinationLimits {
            initial_concurrency: limits.initial_concurrency.max(1),
            concurrency_limit: limits
                .concurrency_limit
                .max(limits.initial_concurrency.max(1)),
            failed_cohort: limits.failed_cohort.max(1),
            max_backoff: limits.max_backoff.max(limits.min_backoff),
            recipient_limit: limits.recipient_limit.max(1),
            ..limits
        };
        Destinations {
            limits,
            known: Mutex::new(HashMap::new()),
            admissions: AtomicU32::new(0),
        }
    }

    fn known(&self) -> MutexGuard<'_, HashMap<String, Destination<J>>> {
        // Each critical section leaves the map whole: a panic cannot tear it.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `job`, for `name`, may be attempted now; parks it if every slot is taken.
    pub(crate) fn admit(self: &Arc<Self>, name: &str, job: J) -> Admission<J> {
        let limits = &self.limits;
        let mut known = self.known();
        if self
            .admissions
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            let now = Instant::now();
            known.retain(|_, destination| !destination.is_forgettable(now));
            dead_destinations(&known);
        }
        let destination = known.entry(name.to_owned()).or_insert_with(|| Destination {
            active: 0,
            window: limits.initial_concurrency,
            failures: 0,
            dead_until: None,
            probing: false,
            backoff: limits.min_backoff,
            last_error: String::new(),
            parked: VecDeque::new(),
            idle_since: None,
        });
        let now = Instant::now();
        if let Some(until) = destination.dead_until {
            if now < until {
                // Deferred untried: it stays idle, and may be forgotten once its
                // backoff is long over.
                return Admission::Dead {
                    for_: until - now,
                    reason: destination.last_error.clone(),
                    job,
                };
            }
            // Its backoff is over: one attempt probes it.
            destination.idle_since = None;
            destination.dead_until = None;
            destination.probing = true;
            destination.active += 1;
            dead_destinations(&known);
            tracing::info!(
                destination = name,
                "probing a destination that was unreachable"
            );
            return Admission::Go(self.new_slot(name, true), job);
        }
        destination.idle_since = None;
        if destination.probing || destination.active >= destination.window {
            // Behind the probe too: it decides, when it ends, whether they go or are
            // deferred untried (a job put off would come back a backoff later).
            if destination.parked.len() < MAX_PARKED {
                destination.parked.push_back(job);
                return Admission::Parked;
            }
            let delay = if destination.probing {
                limits.min_backoff
            } else {
                jitter(limits.busy_delay)
            };
            return Admission::Busy(delay, job);
        }
        destination.active += 1;
        self.slot(name, job)
    }

    /// What is parked with `name` that may go now, for a worker whose attempt there has
    /// just ended (its slot given back) or found it dead. Every such worker asks, so no
    /// parked job is left behind while the destination has attempts in flight.
    pub(crate) fn take_parked(self: &Arc<Self>, name: &str) -> Taken<J> {
        let mut known = self.known();
        let Some(destination) = known.get_mut(name) else {
            return Taken::Nothing;
        };
        if destination.dead_until.is_some() || destination.probing {
            // Through `admit`, which defers it untried (or puts it off during a probe).
            return destination
                .parked
                .pop_front()
                .map_or(Taken::Nothing, Taken::Admit);
        }
        let mut ready = Vec::new();
        while destination.active < destination.window
            && let Some(job) = destination.parked.pop_front()
        {
            destination.active += 1;
            ready.push((self.new_slot(name, false), job));
        }
        if ready.is_empty() {
            Taken::Nothing
        } else {
            Taken::Go(ready)
        }
    }

    /// Takes every parked job, to give back to the queue when the engine stops.
    pub(crate) fn take_all_parked(&self) -> Vec<J> {
        self.known()
            .values_mut()
            .flat_map(|destination| destination.parked.drain(..))
            .collect()
    }

    fn slot(self: &Arc<Self>, name: &str, job: J) -> Admission<J> {
        Admission::Go(self.new_slot(name, false), job)
    }

    /// A slot of `name`, counted in its `active` by the caller; `probe` if its attempt
    /// decides whether the destination is alive again.
    fn new_slot(self: &Arc<Self>, name: &str, probe: bool) -> Slot<J> {
        Slot {
            destinations: Arc::clone(self),
            name: name.to_owned(),
            probe,
            contact: Contact::None,
            error: String::new(),
        }
    }

    /// An attempt in a slot of `name` (the probe, if `probe`) ended having learned
    /// `contact`.
    fn finished(&self, name: &str, probe: bool, contact: Contact, error: &str) {
        let limits = &self.limits;
        let mut known = self.known();
        let Some(destination) = known.get_mut(name) else {
            return;
        };
        destination.active = destination.active.saturating_sub(1);
        let was_probing = destination.probing;
        match contact {
            Contact::Delivered | Contact::Answered => {
                if contact == Contact::Delivered {
                    destination.window = (destination.window + 1).min(limits.concurrency_limit);
                }
                destination.failures = 0;
                destination.probing = false;
                destination.backoff = limits.min_backoff;
                if was_probing {
                    tracing::info!(destination = name, "destination reachable again");
                }
            }
            Contact::Unreachable => {
                destination.failures += 1;
                destination.window = (destination.window / 2).max(1);
                destination.last_error = error.to_owned();
                let cohort_failed = destination.failures >= limits.failed_cohort;
                if destination.dead_until.is_none() && (was_probing || cohort_failed) {
                    let backoff = destination.backoff;
                    destination.dead_until = Some(Instant::now() + backoff);
                    destination.backoff = backoff.saturating_mul(2).min(limits.max_backoff);
                    destination.probing = false;
                    destination.failures = 0;
                    destination.window = limits.initial_concurrency;
                    tracing::warn!(
                        destination = name,
                        backoff_seconds = backoff.as_secs(),
                        last_error = error,
                        "destination unreachable; its deliveries are deferred without trying until the backoff ends"
                    );
                    dead_destinations(&known);
                }
            }
            Contact::None => {
                if probe && destination.probing {
                    // The probe learned nothing: its mail could not be read, or it was
                    // given back before it ran. The next attempt probes instead; left
                    // probing, the destination would park its mail behind an attempt
                    // that never comes.
                    destination.probing = false;
                    destination.dead_until = Some(Instant::now());
                }
            }
        }
        // Forget what has nothing to remember: mail went to a million domains. A window
        // grown by deliveries is worth remembering for a while: a busy destination is
        // idle for a moment between bursts, and would start again from the initial
        // window; `admit` sweeps out those quiet for long.
        if let Some(destination) = known.get_mut(name)
            && destination.active == 0
            && destination.parked.is_empty()
        {
            if destination.is_quiet() && destination.window <= limits.initial_concurrency {
                known.remove(name);
            } else {
                destination.idle_since = Some(Instant::now());
            }
        }
    }
}

/// Sets the `mailfwd_dead_destinations` gauge.
fn dead_destinations<J>(known: &HashMap<String, Destination<J>>) {
    let dead = known.values().filter(|d| d.dead_until.is_some()).count();
    metrics::gauge!("mailfwd_dead_destinations").set(dead as f64);
}

/// `delay` ± 20 %, so that jobs put off together do not all come back together.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.8 + fastrand::f64() * 0.4)
}

/// One attempt's place in its destination's concurrency; given back when dropped.
pub(crate) struct Slot<J> {
    destinations: Arc<Destinations<J>>,
    name: String,
    /// The attempt that decides whether a dead destination is alive again.
    probe: bool,
    contact: Contact,
    error: String,
}

impl<J> Slot<J> {
    /// The attempt ended having learned `contact`; `error` is its reply if it failed.
    pub(crate) fn finish(mut self, contact: Contact, error: &str) {
        self.contact = contact;
        error.clone_into(&mut self.error);
    }
}

impl<J> Drop for Slot<J> {
    fn drop(&mut self) {
        self.destinations
            .finished(&self.name, self.probe, self.contact, &self.error);
    }
}

#[cfg(test)]
mod tests;
