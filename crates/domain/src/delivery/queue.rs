//! The `DeliveryQueue` port: the one owner of delivery state.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use thiserror::Error;

use super::DeliveryJob;
use crate::address::EmailAddress;
use crate::email::EmailId;

/// What can go wrong with the queue.
#[derive(Debug, Error)]
pub enum QueueError {
    /// The job's lease expired and another worker claimed it; this worker's result is
    /// dropped (the other worker's attempt will record its own).
    #[error("the lease on the delivery of {email} to <{destination}> was lost")]
    LeaseLost {
        /// The email.
        email: EmailId,
        /// The destination.
        destination: EmailAddress,
    },
    /// Anything unexpected.
    #[error("delivery queue storage failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl QueueError {
    /// Wraps an unexpected storage error.
    pub fn storage(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        QueueError::Storage(Box::new(error))
    }
}

/// What enqueueing did for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A new job was created.
    Enqueued,
    /// A job existed and was reset to pending because `force` was set.
    Requeued,
    /// A job existed and was left alone: already delivered.
    AlreadyDelivered,
    /// A job existed and was left alone: still pending.
    AlreadyPending,
    /// A job existed and was left alone: it failed for good (force retries it).
    AlreadyFailed,
}

/// A job a worker holds a lease on. Only the holder of the current lease may record
/// the job's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The job as claimed (its `attempts` already counts this attempt).
    pub job: DeliveryJob,
    /// Identifies this lease; a later claim of the same job gets another.
    pub lease: u64,
}

/// Figures for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Jobs not yet in a final state.
    pub pending: u64,
    /// Of those, jobs due now.
    pub due: u64,
    /// How long the oldest due job has been due.
    pub oldest_due_age: Duration,
    /// How long ago the oldest pending job was enqueued (due or not): how far behind
    /// delivery is, retries included.
    pub oldest_pending_age: Duration,
}

/// The owner of delivery jobs: durable, at-least-once, one job per (email, destination).
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Creates a pending job, due now, for each destination of `email`. An existing
    /// (email, destination) job is left as it is, unless `force`, which resets it to
    /// pending and due now (so a delivered email is delivered again).
    ///
    /// # Errors
    /// [`QueueError::Storage`]; then none of the jobs were written.
    async fn enqueue(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        force: bool,
        now: SystemTime,
    ) -> Result<Vec<EnqueueOutcome>, QueueError>;

    /// Enqueues like [`DeliveryQueue::enqueue`] without `force`, and claims every job
    /// it creates for `lease` on the caller's behalf, as [`DeliveryQueue::claim`] would
    /// (the attempt is counted). The caller can deliver a fresh email's jobs at once,
    /// without a claim round trip; if it dies first, the lease runs out and any worker
    /// claims them. Jobs that already existed are left alone and not claimed.
    ///
    /// # Errors
    /// [`QueueError::Storage`]; then none of the jobs were written.
    async fn enqueue_claimed(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        now: SystemTime,
        lease: Duration,
    ) -> Result<Vec<(EnqueueOutcome, Option<ClaimedJob>)>, QueueError>;

    /// Claims up to `limit` due jobs: pending jobs whose next attempt is due, and jobs
    /// whose lease has expired (their worker died). Each claim counts an attempt and
    /// holds the job for `lease`.
    ///
    /// # Errors
    /// [`QueueError::Storage`].
    async fn claim(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, QueueError>;

    /// Gives a claim back without an attempt having been made (a graceful shutdown, a
    /// job that waited too long for a worker, a destination busy with other jobs): the
    /// job is due at `due_at` (now, or later to postpone it) for any worker, and the
    /// attempt its claim counted is taken back.
    ///
    /// # Errors
    /// [`QueueError::LeaseLost`] if another worker holds the job now (nothing changes).
    async fn release(&self, job: &ClaimedJob, due_at: SystemTime) -> Result<(), QueueError>;

    /// Releases every lease this instance's earlier incarnation held, so that their
    /// jobs are due at `now` instead of when the leases run out: called once at start,
    /// before this instance claims anything. On a single node that is every lease in
    /// the queue; a shared store releases only the leases claimed under this
    /// instance's identity, never another live instance's. The attempts the leases
    /// counted stay counted (a killed attempt may have reached the destination).
    /// Returns how many jobs were released.
    ///
    /// # Errors
    /// [`QueueError::Storage`]; then no lease was released.
    async fn release_all_leases(&self, now: SystemTime) -> Result<u64, QueueError>;

    /// Records that this instance is alive at `now`, and releases the leases of every
    /// instance that has not said so since `now - silent_for`: it died, and its jobs
    /// are due at once for any instance rather than when their leases run out. Called
    /// at start, before the first claim, and then several times per `silent_for`.
    /// Returns how many jobs were released. Only the leases of silent instances are
    /// touched, and only ever shortened. A store that serves one instance has no other
    /// to take over from: the default records nothing and releases nothing.
    ///
    /// # Errors
    /// [`QueueError::Storage`]; then nothing was released.
    async fn heartbeat(&self, now: SystemTime, silent_for: Duration) -> Result<u64, QueueError> {
        let _ = (now, silent_for);
        Ok(0)
    }

    /// Records a delivery: the job is final.
    ///
    /// # Errors
    /// [`QueueError::LeaseLost`] if another worker holds the job now.
    async fn delivered(
        &self,
        job: &ClaimedJob,
        reply: &str,
        now: SystemTime,
    ) -> Result<(), QueueError>;

    /// Records a temporary failure; the job is due again at `retry_at`.
    ///
    /// # Errors
    /// [`QueueError::LeaseLost`] if another worker holds the job now.
    async fn retry_later(
        &self,
        job: &ClaimedJob,
        reply: &str,
        retry_at: SystemTime,
    ) -> Result<(), QueueError>;

    /// Records a permanent failure: the job is final.
    ///
    /// # Errors
    /// [`QueueError::LeaseLost`] if another worker holds the job now.
    async fn failed(
        &self,
        job: &ClaimedJob,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), QueueError>;

    /// Every job of one email, in destination order.
    ///
    /// # Errors
    /// [`QueueError::Storage`].
    async fn jobs_of(&self, email: EmailId) -> Result<Vec<DeliveryJob>, QueueError>;

    /// Counts for metrics.
    ///
    /// # Errors
    /// [`QueueError::Storage`].
    async fn stats(&self, now: SystemTime) -> Result<QueueStats, QueueError>;

    /// Deletes every job of `email` (their outcomes go with them), for retention — but
    /// only if none is pending, checked in the same step: `false` (nothing deleted) if
    /// one is, `true` otherwise, also when it had no jobs.
    ///
    /// # Errors
    /// [`QueueError::Storage`]; then nothing was deleted.
    async fn forget(&self, email: EmailId) -> Result<bool, QueueError>;
}
