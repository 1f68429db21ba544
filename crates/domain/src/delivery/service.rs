//! The forward evaluator and the delivery step of a worker.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;

use super::received::{PrefixedBody, received_header};
use super::{
    ClaimedJob, DeliveryOutcome, DeliveryQueue, EnqueueOutcome, Mailer, Outgoing, QueueError,
    RetryPolicy,
};
use crate::address::EmailAddress;
use crate::email::{EmailId, EmailStore, ReceivedEmail, StoreError};
use crate::expansion::{Cut, Expansion, ExpansionLimits, expand};
use crate::rule_store::{RuleError, RuleStore};

/// Why evaluating an email failed (it will be evaluated again).
#[derive(Debug, Error)]
pub enum ForwardError {
    /// The rules could not be read.
    #[error(transparent)]
    Rules(#[from] RuleError),
    /// The queue could not be written.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What evaluating one email did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Each destination the rules gave, and what enqueueing it did.
    pub destinations: Vec<(EmailAddress, EnqueueOutcome)>,
    /// Recipients no rule matches any more.
    pub unmatched: Vec<EmailAddress>,
    /// Addresses the expansion did not follow (loops, too deep, too many), which get
    /// no copy.
    pub cuts: Vec<Cut>,
}

/// Told when an evaluation leaves jobs in the queue that are due now and held by no
/// one (new jobs, or jobs forced again by a reprocess), so that whoever runs the workers
/// can wake them rather than let the jobs wait for the workers' next look at the queue.
pub trait EnqueueListener: Send + Sync {
    /// `jobs` (at least 1) jobs of `email` are due now and unclaimed.
    fn enqueued(&self, email: EmailId, jobs: usize);
}

/// Resolves an email's recipients against the rules as they are now and enqueues one
/// job per destination. Used after receipt, on restart recovery, and by reprocessing.
#[derive(Clone)]
pub struct ForwardEvaluator {
    rules: Arc<dyn RuleStore>,
    queue: Arc<dyn DeliveryQueue>,
    listener: Option<Arc<dyn EnqueueListener>>,
    limits: ExpansionLimits,
}

impl ForwardEvaluator {
    /// An evaluator over these ports.
    #[must_use]
    pub fn new(rules: Arc<dyn RuleStore>, queue: Arc<dyn DeliveryQueue>) -> Self {
        ForwardEvaluator {
            rules,
            queue,
            listener: None,
            limits: ExpansionLimits::default(),
        }
    }

    /// The same evaluator, expanding recipients within `limits`.
    #[must_use]
    pub fn with_limits(mut self, limits: ExpansionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same evaluator, telling `listener` whenever [`ForwardEvaluator::evaluate`]
    /// leaves due, unclaimed jobs.
    #[must_use]
    pub fn with_listener(mut self, listener: Arc<dyn EnqueueListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Evaluates `email`. Idempotent: an existing (email, destination) job is left
    /// alone unless `force`.
    ///
    /// # Errors
    /// [`ForwardError`] if the rules or the queue fail; nothing was enqueued then.
    pub async fn evaluate(
        &self,
        email: &ReceivedEmail,
        force: bool,
        now: SystemTime,
    ) -> Result<Evaluation, ForwardError> {
        let Expansion {
            destinations,
            unmatched,
            cuts,
        } = self.expand(email).await?;
        let outcomes = self
            .queue
            .enqueue(email.id, &destinations, force, now)
            .await?;
        let due = outcomes
            .iter()
            .filter(|outcome| {
                matches!(outcome, EnqueueOutcome::Enqueued | EnqueueOutcome::Requeued)
            })
            .count();
        if let Some(listener) = self.listener.as_ref().filter(|_| due > 0) {
            listener.enqueued(email.id, due);
        }
        Ok(Evaluation {
            destinations: destinations.into_iter().zip(outcomes).collect(),
            unmatched,
            cuts,
        })
    }

    /// Evaluates a freshly received `email` and claims its new jobs for `lease` (see
    /// [`DeliveryQueue::enqueue_claimed`]): the caller delivers them straight away.
    ///
    /// # Errors
    /// [`ForwardError`] if the rules or the queue fail; nothing was enqueued then.
    pub async fn evaluate_and_claim(
        &self,
        email: &ReceivedEmail,
        now: SystemTime,
        lease: Duration,
    ) -> Result<(Evaluation, Vec<ClaimedJob>), ForwardError> {
        let Expansion {
            destinations,
            unmatched,
            cuts,
        } = self.expand(email).await?;
        let enqueued = self
            .queue
            .enqueue_claimed(email.id, &destinations, now, lease)
            .await?;
        let mut claimed = Vec::new();
        let mut evaluation = Evaluation {
            destinations: Vec::with_capacity(destinations.len()),
            unmatched,
            cuts,
        };
        for (destination, (outcome, job)) in destinations.into_iter().zip(enqueued) {
            evaluation.destinations.push((destination, outcome));
            claimed.extend(job);
        }
        Ok((evaluation, claimed))
    }

    /// Where `email`'s recipients forward to: destinations that have rules of their
    /// own are expanded here, never sent out to come back (see [`expand`]).
    async fn expand(&self, email: &ReceivedEmail) -> Result<Expansion, RuleError> {
        expand(
            self.rules.as_ref(),
            &email.email.envelope.recipients,
            self.limits,
        )
        .await
    }
}

/// How one attempt ended, as recorded in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered, with the remote reply.
    Delivered(String),
    /// Will be tried again at this time.
    Deferred(SystemTime, String),
    /// Failed for good.
    Failed(String),
}

/// Delivers claimed jobs: stream the body with a new `Received:` header to the
/// `Mailer`, and record the outcome in the queue.
#[derive(Clone)]
pub struct Deliverer {
    emails: Arc<dyn EmailStore>,
    queue: Arc<dyn DeliveryQueue>,
    mailer: Arc<dyn Mailer>,
    policy: RetryPolicy,
    hostname: String,
}

impl Deliverer {
    /// A deliverer over these ports.
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
        }
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
        self.queue.claim(SystemTime::now(), lease, limit).await
    }

    /// Releases the leases this instance's earlier incarnation held (see
    /// [`DeliveryQueue::release_all_leases`]); returns how many jobs were released.
    ///
    /// # Errors
    /// [`QueueError`] if the queue fails.
    pub async fn release_all_leases(&self) -> Result<u64, QueueError> {
        self.queue.release_all_leases(SystemTime::now()).await
    }

    /// Gives `claimed` back to the queue unattempted (see [`DeliveryQueue::release`]).
    ///
    /// # Errors
    /// As [`DeliveryQueue::release`].
    pub async fn release(&self, claimed: &ClaimedJob) -> Result<(), QueueError> {
        self.queue.release(claimed, SystemTime::now()).await
    }

    /// Makes one attempt and records it.
    ///
    /// # Errors
    /// [`QueueError`] if the outcome could not be recorded (the job's lease then runs
    /// out and it is attempted again: at-least-once).
    pub async fn deliver(&self, claimed: &ClaimedJob) -> Result<Attempt, QueueError> {
        match self.emails.get(&claimed.job.email).await {
            Ok(email) => self.deliver_email(claimed, &email).await,
            Err(error) => self.record(claimed, unreadable(error)).await,
        }
    }

    /// [`Deliverer::deliver`] for a caller that already holds the job's email record
    /// (a fresh email handed over in memory): saves reading it back.
    ///
    /// # Errors
    /// As [`Deliverer::deliver`].
    pub async fn deliver_email(
        &self,
        claimed: &ClaimedJob,
        email: &ReceivedEmail,
    ) -> Result<Attempt, QueueError> {
        let outcome = match self.outgoing(claimed, email).await {
            Ok(message) => self.mailer.send(message).await,
            Err(error) => unreadable(error),
        };
        self.record(claimed, outcome).await
    }

    /// Turns the outcome of an attempt into the job's next state and records it.
    async fn record(
        &self,
        claimed: &ClaimedJob,
        outcome: DeliveryOutcome,
    ) -> Result<Attempt, QueueError> {
        let now = SystemTime::now();
        let job = &claimed.job;
        let attempt = match outcome {
            DeliveryOutcome::Delivered(reply) => Attempt::Delivered(reply),
            DeliveryOutcome::Permanent(reply) => Attempt::Failed(reply),
            DeliveryOutcome::Transient(reply) => {
                match self.policy.next_attempt(job.attempts, job.created_at, now) {
                    Some(at) => Attempt::Deferred(at, reply),
                    None => Attempt::Failed(format!(
                        "gave up after {} attempts; last: {reply}",
                        job.attempts
                    )),
                }
            }
        };
        match &attempt {
            Attempt::Delivered(reply) => self.queue.delivered(claimed, reply, now).await?,
            Attempt::Deferred(at, reply) => self.queue.retry_later(claimed, reply, *at).await?,
            Attempt::Failed(reason) => self.queue.failed(claimed, reason, now).await?,
        }
        Ok(attempt)
    }

    async fn outgoing(
        &self,
        claimed: &ClaimedJob,
        email: &ReceivedEmail,
    ) -> Result<Outgoing, StoreError> {
        let header = received_header(
            email,
            &claimed.job.destination,
            &self.hostname,
            SystemTime::now(),
        );
        let size = email.size + header.len() as u64;
        let body = self.emails.open_body(&email.id).await?;
        Ok(Outgoing {
            sender: email.email.envelope.sender.clone(),
            recipient: claimed.job.destination.clone(),
            body: Box::new(PrefixedBody::new(header, body)),
            size,
            encoding: email.email.encoding,
        })
    }
}

/// The outcome of an attempt whose stored email could not be read.
fn unreadable(error: StoreError) -> DeliveryOutcome {
    match error {
        StoreError::NotFound(id) => {
            DeliveryOutcome::Permanent(format!("the stored email {id} is missing"))
        }
        error => DeliveryOutcome::Transient(format!("cannot read the stored email: {error}")),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
