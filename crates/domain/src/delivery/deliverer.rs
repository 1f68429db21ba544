//! The delivery step of a worker: the deliverer, and what it does with claimed jobs
//! other than attempting them (see `attempt.rs`): claims, give-backs, give-ups.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{
    ClaimedJob, Clock, DeliveryJob, DeliveryQueue, Mailer, QueueError, RetryPolicy, SystemClock,
};
use crate::email::EmailStore;
use crate::own_addresses::OwnAddresses;

/// How one attempt ended, as recorded in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered, with the remote reply.
    Delivered(String),
    /// Will be tried again at this time.
    Deferred(SystemTime, String),
    /// Failed for good.
    Failed(String),
    /// Stopped half-way and given back to the queue, due at once and uncounted.
    GivenBack,
}

/// Why an attempt is cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// It has run for its whole deadline, this long: it is recorded as a temporary
    /// failure, well before its lease runs out and another worker could repeat it.
    Deadline(Duration),
    /// The service is stopping: the job is given back to the queue.
    Stop,
}

/// What an attempt learned of its destination, for the scheduler (ADR 0016).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    /// A server took the message.
    Delivered,
    /// A server answered, deferring or refusing: the destination is alive.
    Answered,
    /// No server could be reached, or the attempt ran out of time.
    Unreachable,
    /// Nothing: the message never left (stored email unreadable, a stop).
    None,
}

/// One attempt of a group of jobs: what it learned of their destination, and how each
/// job was recorded.
#[derive(Debug)]
pub struct Attempted {
    /// What the attempt learned of its destination.
    pub contact: Contact,
    /// Each job's new state, in the group's order, or why it could not be recorded (the
    /// lease then runs out and the job is attempted again: at-least-once).
    pub recorded: Vec<Result<Attempt, QueueError>>,
}

/// Delivers claimed jobs: stream the body with a new `Received:` header to the
/// `Mailer`, and record the outcome in the queue.
#[derive(Clone)]
pub struct Deliverer {
    pub(super) emails: Arc<dyn EmailStore>,
    pub(super) queue: Arc<dyn DeliveryQueue>,
    pub(super) mailer: Arc<dyn Mailer>,
    pub(super) policy: RetryPolicy,
    pub(super) hostname: String,
    pub(super) clock: Arc<dyn Clock>,
    /// Rewrites envelope senders (SRS); without it they go out as received.
    pub(super) own: Option<Arc<OwnAddresses>>,
}

impl Deliverer {
    /// A deliverer over these ports, on the system clock.
    #[must_use]
    pub fn new(
        emails: Arc<dyn EmailStore>,
        queue: Arc<dyn DeliveryQueue>,
        mailer: Arc<dyn Mailer>,
        policy: RetryPolicy,
        hostname: String,
    ) -> Self {
        Deliverer {
            emails,
            queue,
            mailer,
            policy,
            hostname,
            clock: Arc::new(SystemClock),
            own: None,
        }
    }

    /// The same deliverer, sending with the envelope sender rewritten by SRS, and
    /// bounces coming back through an SRS address with the null sender.
    #[must_use]
    pub fn with_own_addresses(mut self, own: Arc<OwnAddresses>) -> Self {
        self.own = Some(own);
        self
    }

    /// The same deliverer, reading the time from `clock` for every claim, lease, retry
    /// and give-up.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The time by this deliverer's clock.
    #[must_use]
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The destination `job` goes to, as the mailer sees destinations (see
    /// [`Mailer::destination`]).
    #[must_use]
    pub fn destination(&self, job: &DeliveryJob) -> String {
        self.mailer.destination(&job.destination)
    }

    /// Claims up to `limit` due jobs for `lease`.
    ///
    /// # Errors
    /// [`QueueError`] if the queue fails.
    pub async fn claim(
        &self,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        self.queue.claim(self.now(), lease, limit).await
    }

    /// Releases the leases this instance's earlier incarnation held (see
    /// [`DeliveryQueue::release_all_leases`]); returns how many jobs were released.
    ///
    /// # Errors
    /// [`QueueError`] if the queue fails.
    pub async fn release_all_leases(&self) -> Result<u64, QueueError> {
        self.queue.release_all_leases(self.now()).await
    }

    /// Says this instance is alive, and releases the leases of instances silent for
    /// `silent_for` (see [`DeliveryQueue::heartbeat`]); returns how many were released.
    ///
    /// # Errors
    /// [`QueueError`] if the queue fails.
    pub async fn heartbeat(&self, silent_for: Duration) -> Result<u64, QueueError> {
        self.queue.heartbeat(self.now(), silent_for).await
    }

    /// Gives `claimed` back to the queue unattempted, due at once (see
    /// [`DeliveryQueue::release`]).
    ///
    /// # Errors
    /// As [`DeliveryQueue::release`].
    pub async fn release(&self, claimed: &ClaimedJob) -> Result<(), QueueError> {
        self.queue.release(claimed, self.now()).await
    }

    /// Gives `claimed` back to the queue unattempted and uncounted, due `after` from
    /// now: its destination is busy.
    ///
    /// # Errors
    /// As [`DeliveryQueue::release`].
    pub async fn postpone(&self, claimed: &ClaimedJob, after: Duration) -> Result<(), QueueError> {
        self.queue.release(claimed, self.now() + after).await
    }

    /// Whether `job` is past its give-up time (enqueued longer ago than the retry
    /// policy allows): it must fail, not be attempted.
    #[must_use]
    pub fn is_past_give_up(&self, job: &DeliveryJob) -> bool {
        self.now() >= job.created_at + self.policy.give_up_after
    }

    /// Records that `claimed`, past its give-up time, failed without this attempt.
    ///
    /// # Errors
    /// [`QueueError`] if the failure could not be recorded.
    pub async fn give_up(&self, claimed: &ClaimedJob) -> Result<Attempt, QueueError> {
        let job = &claimed.job;
        // The claim counted an attempt that is not made.
        let made = job.attempts.saturating_sub(1);
        let last = job.last_reply.as_deref().unwrap_or("no attempt was made");
        let reason = self.gave_up(made, last);
        self.queue.failed(claimed, &reason, self.now()).await?;
        Ok(Attempt::Failed(reason))
    }

    /// Defers `claimed` without attempting it, for `reason` (its destination is known
    /// to be unreachable), to its next retry by the schedule and no earlier than
    /// `not_before`; past the schedule's end it fails.
    ///
    /// # Errors
    /// [`QueueError`] if the outcome could not be recorded.
    pub async fn defer_untried(
        &self,
        claimed: &ClaimedJob,
        reason: &str,
        not_before: SystemTime,
    ) -> Result<Attempt, QueueError> {
        let (now, job) = (self.now(), &claimed.job);
        let attempt = match self.policy.next_attempt(job.attempts, job.created_at, now) {
            Some(at) => Attempt::Deferred(at.max(not_before), reason.to_owned()),
            None => Attempt::Failed(self.gave_up(job.attempts, reason)),
        };
        self.write(claimed, &attempt, now).await?;
        Ok(attempt)
    }

    pub(super) async fn write(
        &self,
        claimed: &ClaimedJob,
        attempt: &Attempt,
        now: SystemTime,
    ) -> Result<(), QueueError> {
        match attempt {
            Attempt::Delivered(reply) => self.queue.delivered(claimed, reply, now).await,
            Attempt::Deferred(at, reply) => self.queue.retry_later(claimed, reply, *at).await,
            Attempt::Failed(reason) => self.queue.failed(claimed, reason, now).await,
            Attempt::GivenBack => self.queue.release(claimed, now).await,
        }
    }

    /// The reason of a job that ran out of retries.
    pub(super) fn gave_up(&self, attempts: u32, last: &str) -> String {
        format!(
            "gave up after {attempts} attempts over {}; last: {last}",
            span(self.policy.give_up_after)
        )
    }
}

/// A give-up period as people write it: `5d`, `36h`, `90m`, `45s`.
fn span(period: Duration) -> String {
    let seconds = period.as_secs();
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
#[path = "deliverer_tests.rs"]
mod tests;
