//! The forward evaluator: an email's recipients, resolved against the rules, become its
//! delivery jobs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;

use super::{ClaimedJob, DeliveryQueue, EnqueueOutcome, QueueError};
use crate::address::EmailAddress;
use crate::email::{EmailId, ReceivedEmail};
use crate::expansion::{Cut, Expansion, ExpansionLimits, Start, expand_starts};
use crate::own_addresses::OwnAddresses;
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
    own: Option<Arc<OwnAddresses>>,
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
            own: None,
        }
    }

    /// The same evaluator, routing mail for mailfwd's own addresses: bounces to SRS
    /// addresses go to the address they reverse to, postmaster's to its mailbox.
    #[must_use]
    pub fn with_own_addresses(mut self, own: Arc<OwnAddresses>) -> Self {
        self.own = Some(own);
        self
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
        } = self.expand(email, now).await?;
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
        } = self.expand(email, now).await?;
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
    async fn expand(&self, email: &ReceivedEmail, now: SystemTime) -> Result<Expansion, RuleError> {
        let recipients = &email.email.envelope.recipients;
        let mut starts = Vec::with_capacity(recipients.len());
        let mut refused = Vec::new();
        for recipient in recipients {
            match self.own_route(recipient, now).await? {
                Some(start) => starts.push(start),
                None => refused.push(recipient.clone()),
            }
        }
        let mut expansion = expand_starts(self.rules.as_ref(), &starts, self.limits).await?;
        expansion.unmatched.extend(refused);
        Ok(expansion)
    }

    /// Where `recipient`'s expansion starts: a bounce to an SRS address at the address
    /// it reverses to (none if it no longer verifies: expired since it was accepted,
    /// or a secret was retired); a postmaster no rule matches at the configured
    /// mailbox; anything else at its rule.
    async fn own_route(
        &self,
        recipient: &EmailAddress,
        now: SystemTime,
    ) -> Result<Option<Start>, RuleError> {
        let rule = Start::Rule(recipient.clone());
        let Some(own) = self.own.as_deref() else {
            return Ok(Some(rule));
        };
        if own.is_srs_address(recipient) {
            return Ok(own.bounce_to(recipient, now).ok().map(|to| Start::Routed {
                recipient: recipient.clone(),
                to,
            }));
        }
        if let Some(mailbox) = own
            .postmaster()
            .filter(|_| OwnAddresses::is_postmaster(recipient))
            && self.rules.resolve(recipient).await?.is_none()
        {
            return Ok(Some(Start::Routed {
                recipient: recipient.clone(),
                to: mailbox.clone(),
            }));
        }
        Ok(Some(rule))
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
