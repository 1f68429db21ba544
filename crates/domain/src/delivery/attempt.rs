//! One attempt of a group of claimed jobs — one email's deliveries to recipients at one
//! destination (ADR 0017) — as one message to the mailer, cut short by its deadline or
//! a stop, and each job's own record in the queue.

use std::future::Future;
use std::pin::pin;
use std::slice;
use std::task::Poll;

use futures_util::future::join_all;

use super::deliverer::{Attempt, Attempted, Contact, Deliverer, Interruption};
use super::received::{PrefixedBody, received_header};
use super::{ClaimedJob, DeliveryOutcome, Outgoing, QueueError};
use crate::email::{ReceivedEmail, StoreError};

impl Deliverer {
    /// Makes one attempt of one job and records it.
    ///
    /// # Errors
    /// [`QueueError`] if the outcome could not be recorded (the job's lease then runs
    /// out and it is attempted again: at-least-once).
    pub async fn deliver(&self, claimed: &ClaimedJob) -> Result<Attempt, QueueError> {
        let attempted = self
            .attempt(slice::from_ref(claimed), None, std::future::pending())
            .await;
        only(attempted)
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
        let attempted = self
            .attempt(
                slice::from_ref(claimed),
                Some(email),
                std::future::pending(),
            )
            .await;
        only(attempted)
    }

    /// Makes one attempt of `group` — jobs of one email whose destinations share a next
    /// hop (see [`Deliverer::destination`]) — as one message to all of them (with the
    /// email's record if the caller holds it), until `interruption` comes, and records
    /// each job's outcome on its own. Jobs past their give-up time fail without being
    /// sent. An attempt cut short by its deadline is a temporary failure of an
    /// unreachable destination for every job; one cut short by a stop gives every job
    /// back.
    pub async fn attempt(
        &self,
        group: &[ClaimedJob],
        email: Option<&ReceivedEmail>,
        interruption: impl Future<Output = Interruption>,
    ) -> Attempted {
        let mut recorded: Vec<Option<Result<Attempt, QueueError>>> =
            group.iter().map(|_| None).collect();
        let mut going = Vec::with_capacity(group.len());
        for (index, claimed) in group.iter().enumerate() {
            if self.is_past_give_up(&claimed.job) {
                recorded[index] = Some(self.give_up(claimed).await);
            } else {
                going.push(index);
            }
        }
        let jobs: Vec<&ClaimedJob> = going.iter().map(|&index| &group[index]).collect();
        let (contact, records) = if jobs.is_empty() {
            (Contact::None, Vec::new())
        } else {
            self.send_and_record(&jobs, email, interruption).await
        };
        for (index, record) in going.into_iter().zip(records) {
            recorded[index] = Some(record);
        }
        Attempted {
            contact,
            recorded: recorded
                .into_iter()
                .map(|record| record.expect("every job of the group is recorded"))
                .collect(),
        }
    }

    /// Sends to `jobs` until `interruption`, and records each job's outcome.
    async fn send_and_record(
        &self,
        jobs: &[&ClaimedJob],
        email: Option<&ReceivedEmail>,
        interruption: impl Future<Output = Interruption>,
    ) -> (Contact, Vec<Result<Attempt, QueueError>>) {
        let every = |outcome: DeliveryOutcome| vec![outcome; jobs.len()];
        let (contact, outcomes) = match first(self.send(jobs, email), interruption).await {
            Ok(Ok(outcomes)) => (contact_of(&outcomes), outcomes),
            Ok(Err(unreadable)) => (Contact::None, every(unreadable)),
            Err(Interruption::Deadline(after)) => (
                Contact::Unreachable,
                // Rounded: a deadline measured from the lease's start is a hair short.
                every(DeliveryOutcome::Unreachable(format!(
                    "attempt deadline of {:.0} s exceeded",
                    after.as_secs_f64()
                ))),
            ),
            Err(Interruption::Stop) => {
                let released = jobs.iter().map(|claimed| async move {
                    self.release(claimed).await.map(|()| Attempt::GivenBack)
                });
                return (Contact::None, join_all(released).await);
            }
        };
        // Written together, so that a store with group commit makes them one commit.
        let records = jobs
            .iter()
            .zip(outcomes)
            .map(|(claimed, outcome)| self.record(claimed, outcome));
        (contact, join_all(records).await)
    }

    /// Reads the email (unless given) and sends it to every job's destination; `Err`
    /// holds the outcome of an email that could not be read, which never reached the
    /// mailer. Always one outcome per job.
    async fn send(
        &self,
        jobs: &[&ClaimedJob],
        email: Option<&ReceivedEmail>,
    ) -> Result<Vec<DeliveryOutcome>, DeliveryOutcome> {
        let Some(first_job) = jobs.first() else {
            return Ok(Vec::new());
        };
        let read;
        let email = match email {
            Some(email) => email,
            None => {
                read = self
                    .emails
                    .get(&first_job.job.email)
                    .await
                    .map_err(unreadable)?;
                &read
            }
        };
        let message = self.outgoing(jobs, email).await.map_err(unreadable)?;
        let mut outcomes = self.mailer.send(message).await;
        // A mailer that breaks the port's promise of one outcome per recipient: the
        // jobs it said nothing of are tried again.
        outcomes.resize(
            jobs.len(),
            DeliveryOutcome::Transient("the mailer gave no outcome for this recipient".into()),
        );
        Ok(outcomes)
    }

    /// Turns the outcome of an attempt into the job's next state and records it.
    async fn record(
        &self,
        claimed: &ClaimedJob,
        outcome: DeliveryOutcome,
    ) -> Result<Attempt, QueueError> {
        let now = self.now();
        let job = &claimed.job;
        let attempt = match outcome {
            DeliveryOutcome::Delivered(reply) => Attempt::Delivered(reply),
            DeliveryOutcome::Permanent(reply) => Attempt::Failed(reply),
            DeliveryOutcome::Transient(reply) | DeliveryOutcome::Unreachable(reply) => {
                match self.policy.next_attempt(job.attempts, job.created_at, now) {
                    Some(at) => Attempt::Deferred(at, reply),
                    None => Attempt::Failed(self.gave_up(job.attempts, &reply)),
                }
            }
        };
        self.write(claimed, &attempt, now).await?;
        Ok(attempt)
    }

    /// The message for `jobs`: the stored body behind a `Received:` header.
    async fn outgoing(
        &self,
        jobs: &[&ClaimedJob],
        email: &ReceivedEmail,
    ) -> Result<Outgoing, StoreError> {
        let recipients: Vec<_> = jobs
            .iter()
            .map(|claimed| claimed.job.destination.clone())
            .collect();
        let header = received_header(email, &recipients, &self.hostname, self.now());
        let size = email.size + header.len() as u64;
        let body = self.emails.open_body(&email.id).await?;
        let envelope = &email.email.envelope;
        let sender = match &self.own {
            Some(own) => {
                own.forward_sender(envelope.sender.as_ref(), &envelope.recipients, self.now())
            }
            None => envelope.sender.clone(),
        };
        Ok(Outgoing {
            sender,
            recipients,
            body: Box::new(PrefixedBody::new(header, body)),
            size,
            encoding: email.email.encoding,
        })
    }
}

/// The record of the one job of an attempt.
fn only(attempted: Attempted) -> Result<Attempt, QueueError> {
    attempted
        .recorded
        .into_iter()
        .next()
        .expect("an attempt of one job records one")
}

/// What a transaction's outcomes say of the destination: a server took the message for
/// someone, or answered, or none could be reached.
fn contact_of(outcomes: &[DeliveryOutcome]) -> Contact {
    let any = |matches: fn(&DeliveryOutcome) -> bool| outcomes.iter().any(matches);
    if any(|outcome| matches!(outcome, DeliveryOutcome::Delivered(_))) {
        Contact::Delivered
    } else if any(|outcome| {
        matches!(
            outcome,
            DeliveryOutcome::Transient(_) | DeliveryOutcome::Permanent(_)
        )
    }) {
        Contact::Answered
    } else if any(|outcome| matches!(outcome, DeliveryOutcome::Unreachable(_))) {
        Contact::Unreachable
    } else {
        Contact::None
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

/// Runs `work` until `interruption` comes first (the domain has no runtime to select
/// with); `work` is dropped, cancelled, if it does.
async fn first<T>(
    work: impl Future<Output = T>,
    interruption: impl Future<Output = Interruption>,
) -> Result<T, Interruption> {
    let (mut work, mut interruption) = (pin!(work), pin!(interruption));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(done));
        }
        interruption.as_mut().poll(cx).map(Err)
    })
    .await
}
