//! An in-memory [`DeliveryQueue`], for tests and for embedding the domain.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::address::EmailAddress;
use crate::delivery::{
    ClaimedJob, DeliveryJob, DeliveryQueue, EnqueueOutcome, JobState, QueueError, QueueStats,
};
use crate::email::EmailId;
use crate::memory::lock;

#[derive(Debug)]
struct Entry {
    job: DeliveryJob,
    /// The current lease and when it runs out.
    lease: Option<(u64, SystemTime)>,
}

/// Jobs in a map keyed by (email, destination match key), as unique as in any store.
#[derive(Debug, Default)]
pub struct MemoryDeliveryQueue {
    jobs: Mutex<BTreeMap<(EmailId, String), Entry>>,
    next_lease: Mutex<u64>,
}

impl MemoryDeliveryQueue {
    /// An empty queue.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn holding<'a>(
        jobs: &'a mut BTreeMap<(EmailId, String), Entry>,
        claimed: &ClaimedJob,
    ) -> Result<&'a mut Entry, QueueError> {
        let key = (claimed.job.email, claimed.job.destination.match_key());
        match jobs.get_mut(&key) {
            Some(entry) if entry.lease.is_some_and(|(lease, _)| lease == claimed.lease) => {
                Ok(entry)
            }
            _ => Err(QueueError::LeaseLost {
                email: claimed.job.email,
                destination: claimed.job.destination.clone(),
            }),
        }
    }

    fn finish(
        &self,
        claimed: &ClaimedJob,
        state: JobState,
        reply: &str,
        at: SystemTime,
    ) -> Result<(), QueueError> {
        let mut jobs = lock(&self.jobs);
        let entry = Self::holding(&mut jobs, claimed)?;
        entry.lease = None;
        entry.job.state = state;
        entry.job.last_reply = Some(reply.to_owned());
        entry.job.next_attempt_at = at;
        Ok(())
    }
}

fn is_due(entry: &Entry, now: SystemTime) -> bool {
    entry.job.state == JobState::Pending
        && match entry.lease {
            Some((_, until)) => until <= now,
            None => entry.job.next_attempt_at <= now,
        }
}

/// Claims `entry` until `until` under the next lease token, counting the attempt.
fn take_lease(entry: &mut Entry, next_lease: &mut u64, until: SystemTime) -> ClaimedJob {
    *next_lease += 1;
    entry.lease = Some((*next_lease, until));
    entry.job.attempts += 1;
    ClaimedJob {
        job: entry.job.clone(),
        lease: *next_lease,
    }
}

fn enqueue_locked(
    jobs: &mut BTreeMap<(EmailId, String), Entry>,
    email: EmailId,
    destinations: &[EmailAddress],
    force: bool,
    now: SystemTime,
) -> Vec<EnqueueOutcome> {
    let fresh = |destination: &EmailAddress| Entry {
        job: DeliveryJob {
            email,
            destination: destination.clone(),
            state: JobState::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_reply: None,
            created_at: now,
        },
        lease: None,
    };
    destinations
        .iter()
        .map(|destination| {
            let key = (email, destination.match_key());
            match jobs.get_mut(&key) {
                None => {
                    jobs.insert(key, fresh(destination));
                    EnqueueOutcome::Enqueued
                }
                Some(entry) if force => {
                    *entry = fresh(destination);
                    EnqueueOutcome::Requeued
                }
                Some(entry) => match entry.job.state {
                    JobState::Pending => EnqueueOutcome::AlreadyPending,
                    JobState::Delivered { .. } => EnqueueOutcome::AlreadyDelivered,
                    JobState::Failed { .. } => EnqueueOutcome::AlreadyFailed,
                },
            }
        })
        .collect()
}

#[async_trait]
impl DeliveryQueue for MemoryDeliveryQueue {
    async fn enqueue(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        force: bool,
        now: SystemTime,
    ) -> Result<Vec<EnqueueOutcome>, QueueError> {
        Ok(enqueue_locked(
            &mut lock(&self.jobs),
            email,
            destinations,
            force,
            now,
        ))
    }

    async fn enqueue_claimed(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        now: SystemTime,
        lease: Duration,
    ) -> Result<Vec<(EnqueueOutcome, Option<ClaimedJob>)>, QueueError> {
        // One lock for both steps: no worker may claim a new job in between.
        let mut jobs = lock(&self.jobs);
        let outcomes = enqueue_locked(&mut jobs, email, destinations, false, now);
        let mut next_lease = lock(&self.next_lease);
        Ok(outcomes
            .into_iter()
            .zip(destinations)
            .map(|(outcome, destination)| {
                let claimed = (outcome == EnqueueOutcome::Enqueued)
                    .then(|| jobs.get_mut(&(email, destination.match_key())))
                    .flatten()
                    .map(|entry| take_lease(entry, &mut next_lease, now + lease));
                (outcome, claimed)
            })
            .collect())
    }

    async fn claim(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        let mut jobs = lock(&self.jobs);
        let mut next_lease = lock(&self.next_lease);
        let mut claimed = Vec::new();
        for entry in jobs
            .values_mut()
            .filter(|entry| is_due(entry, now))
            .take(limit)
        {
            claimed.push(take_lease(entry, &mut next_lease, now + lease));
        }
        Ok(claimed)
    }

    async fn release(&self, claimed: &ClaimedJob, now: SystemTime) -> Result<(), QueueError> {
        let mut jobs = lock(&self.jobs);
        let entry = Self::holding(&mut jobs, claimed)?;
        entry.lease = None;
        entry.job.next_attempt_at = now;
        entry.job.attempts = entry.job.attempts.saturating_sub(1);
        Ok(())
    }

    async fn release_all_leases(&self, now: SystemTime) -> Result<u64, QueueError> {
        let mut jobs = lock(&self.jobs);
        let mut released = 0;
        for entry in jobs
            .values_mut()
            .filter(|entry| entry.job.state == JobState::Pending && entry.lease.is_some())
        {
            entry.lease = None;
            entry.job.next_attempt_at = now;
            released += 1;
        }
        Ok(released)
    }

    async fn delivered(
        &self,
        job: &ClaimedJob,
        reply: &str,
        now: SystemTime,
    ) -> Result<(), QueueError> {
        self.finish(
            job,
            JobState::Delivered {
                reply: reply.to_owned(),
            },
            reply,
            now,
        )
    }

    async fn retry_later(
        &self,
        job: &ClaimedJob,
        reply: &str,
        retry_at: SystemTime,
    ) -> Result<(), QueueError> {
        self.finish(job, JobState::Pending, reply, retry_at)
    }

    async fn failed(
        &self,
        job: &ClaimedJob,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), QueueError> {
        self.finish(
            job,
            JobState::Failed {
                reason: reason.to_owned(),
            },
            reason,
            now,
        )
    }

    async fn jobs_of(&self, email: EmailId) -> Result<Vec<DeliveryJob>, QueueError> {
        let jobs = lock(&self.jobs);
        Ok(jobs
            .iter()
            .filter(|((id, _), _)| *id == email)
            .map(|(_, entry)| entry.job.clone())
            .collect())
    }

    async fn forget(&self, email: EmailId) -> Result<bool, QueueError> {
        let mut jobs = lock(&self.jobs);
        let of_email = |key: &(EmailId, String)| key.0 == email;
        if jobs
            .iter()
            .any(|(key, entry)| of_email(key) && !entry.job.state.is_final())
        {
            return Ok(false);
        }
        jobs.retain(|key, _| !of_email(key));
        Ok(true)
    }

    async fn stats(&self, now: SystemTime) -> Result<QueueStats, QueueError> {
        let jobs = lock(&self.jobs);
        let mut stats = QueueStats::default();
        for entry in jobs
            .values()
            .filter(|entry| entry.job.state == JobState::Pending)
        {
            stats.pending += 1;
            let enqueued = now.duration_since(entry.job.created_at).unwrap_or_default();
            stats.oldest_pending_age = stats.oldest_pending_age.max(enqueued);
            if is_due(entry, now) {
                stats.due += 1;
                let due_since = entry
                    .lease
                    .map_or(entry.job.next_attempt_at, |(_, until)| until);
                let age = now.duration_since(due_since).unwrap_or_default();
                stats.oldest_due_age = stats.oldest_due_age.max(age);
            }
        }
        Ok(stats)
    }
}
