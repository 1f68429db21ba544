//! The delivery workers: groups of jobs claimed at evaluation (one email's jobs for one
//! destination, ADR 0017), and jobs claimed from the queue one at a time, each attempted
//! within its deadline if its destination has room (ADR 0016).

use std::sync::Arc;

use mailfwd_domain::bounce::{Bounced, Failure};
use mailfwd_domain::delivery::{Attempt, ClaimedJob, Interruption, QueueError};
use mailfwd_domain::{EmailId, ReceivedEmail};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::destinations::{Admission, Slot, Taken};
use crate::evaluate::Fresh;
use crate::{LOOK_EVERY, Shared};

impl Shared {
    /// One worker, until `stop`. An attempt under way when `stop` comes is cut short
    /// and its job given back.
    pub(crate) async fn deliver(
        self: Arc<Self>,
        fresh: flume::Receiver<Fresh>,
        mut stop: watch::Receiver<bool>,
    ) {
        // When to look in the queue next: at once while it has due jobs (alternating with
        // fresh ones, so neither starves the other), otherwise every few seconds or when
        // woken.
        let mut claim_at = Instant::now();
        loop {
            let mut busy = false;
            if *stop.borrow() {
                return;
            }
            // Parked groups first: their slots are taken already.
            if let Ok((slot, waiting)) = self.ready_rx.try_recv() {
                self.attempt_in(waiting, Some(slot), &stop).await;
                busy = true;
            }
            if let Ok(job) = fresh.try_recv() {
                self.deliver_fresh(job, &stop).await;
                busy = true;
            }
            if *stop.borrow() {
                return;
            }
            if Instant::now() >= claim_at {
                // Taken before the claim: the lease in the queue ends no earlier.
                let lease_ends = Instant::now() + self.config.lease;
                let claimed = self.deliverer.claim(self.config.lease, 1).await;
                if claimed.is_ok()
                    && let Some(failures) = self.failing_claims.succeeded()
                {
                    tracing::info!(failures, "claiming delivery jobs works again");
                }
                match claimed {
                    Ok(jobs) if !jobs.is_empty() => {
                        for job in jobs {
                            self.attempt(vec![job], None, lease_ends, &stop).await;
                        }
                        busy = true;
                    }
                    Ok(_) => claim_at = Instant::now() + LOOK_EVERY,
                    Err(error) => {
                        if self.failing_claims.failed() {
                            tracing::error!(%error,
                                "cannot claim delivery jobs (further failures in a row are logged at debug, with a reminder every 1,000)");
                        } else {
                            tracing::debug!(%error, "cannot claim delivery jobs yet");
                        }
                        claim_at = Instant::now() + LOOK_EVERY;
                    }
                }
            }
            if busy {
                continue;
            }
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                // A job due in the queue: a reprocessed email, a job given back.
                () = self.wake.notified() => claim_at = Instant::now(),
                Ok((slot, waiting)) = self.ready_rx.recv_async() => {
                    self.attempt_in(waiting, Some(slot), &stop).await;
                }
                Ok(job) = fresh.recv_async() => self.deliver_fresh(job, &stop).await,
                () = tokio::time::sleep_until(claim_at) => {}
            }
        }
    }

    async fn deliver_fresh(&self, fresh: Fresh, stop: &watch::Receiver<bool>) {
        self.attempt(fresh.jobs, Some(fresh.email), fresh.lease_ends, stop)
            .await;
    }

    /// One group of jobs of one email for one destination: those past their give-up
    /// time fail; the others are deferred untried if the destination is dead, parked
    /// with it if it has no free slot (put off through the queue if too many are), else
    /// attempted in one transaction (one slot) until its deadline — well inside the
    /// leases, so no other worker repeats them meanwhile. Then, while its attempts there
    /// end or find it dead, the worker goes on with the groups parked with the same
    /// destination.
    async fn attempt(
        &self,
        group: Vec<ClaimedJob>,
        email: Option<Arc<ReceivedEmail>>,
        lease_ends: Instant,
        stop: &watch::Receiver<bool>,
    ) {
        let waiting = Waiting {
            group,
            email,
            lease_ends,
        };
        self.attempt_in(waiting, None, stop).await;
    }

    /// [`Shared::attempt`] of a group, in `slot` if one was taken for it already.
    pub(crate) async fn attempt_in(
        &self,
        waiting: Waiting,
        slot: Option<Slot<Waiting>>,
        stop: &watch::Receiver<bool>,
    ) {
        let (mut next, mut slot) = (Some(waiting), slot);
        while let Some(waiting) = next.take() {
            let Some(first) = waiting.group.first() else {
                continue;
            };
            let (id, name) = (first.job.email, self.deliverer.destination(&first.job));
            let turn = self.attempt_group(&name, waiting, slot.take(), stop).await;
            self.bounce(id, turn.email, turn.failures).await;
            if !turn.go_on || *stop.borrow() {
                continue;
            }
            match self.destinations.take_parked(&name) {
                Taken::Go(ready) => {
                    let mut ready = ready.into_iter();
                    if let Some((own, waiting)) = ready.next() {
                        (next, slot) = (Some(waiting), Some(own));
                    }
                    // The window grew: idle workers take the rest, slots and all.
                    for more in ready {
                        let _ = self.ready.send(more);
                    }
                }
                Taken::Admit(waiting) => next = Some(waiting),
                Taken::Nothing => {}
            }
        }
    }

    /// [`Shared::attempt`] for one group, without the bounce and the parked groups.
    async fn attempt_group(
        &self,
        name: &str,
        waiting: Waiting,
        slot: Option<Slot<Waiting>>,
        stop: &watch::Receiver<bool>,
    ) -> Turn {
        let Waiting {
            mut group,
            email,
            lease_ends,
        } = waiting;
        let mut turn = Turn {
            failures: Vec::new(),
            email,
            // A slot taken for this group is given back even if nothing is attempted:
            // the parked groups behind it are then this worker's to take.
            go_on: slot.is_some(),
        };
        let mut given_up = Vec::new();
        group.retain(|job| {
            let past = self.deliverer.is_past_give_up(&job.job);
            if past {
                given_up.push(job.clone());
            }
            !past
        });
        for job in &given_up {
            let recorded = self.deliverer.give_up(job).await;
            turn.failures.extend(failure_of(&recorded, job));
            report(recorded, job);
        }
        if group.is_empty() {
            return turn;
        }
        let waiting = Waiting {
            group,
            email: turn.email.take(),
            lease_ends,
        };
        let admission = match slot {
            Some(slot) => Admission::Go(slot, waiting),
            None => self.destinations.admit(name, waiting),
        };
        let (slot, waiting) = match admission {
            Admission::Go(slot, waiting) => (slot, waiting),
            Admission::Parked => return turn,
            Admission::Busy(delay, waiting) => {
                turn.email = waiting.email;
                self.postpone(&waiting.group, delay).await;
                return turn;
            }
            Admission::Dead { for_, reason, job } => {
                turn.email = job.email;
                let reason = format!("destination {name} is unreachable, not tried: {reason}");
                let revived = self.deliverer.now() + for_;
                for job in &job.group {
                    metrics::counter!("mailfwd_deferred_untried_total").increment(1);
                    let recorded = self.deliverer.defer_untried(job, &reason, revived).await;
                    turn.failures.extend(failure_of(&recorded, job));
                    match recorded {
                        Ok(Attempt::Failed(reason)) => failed(job, &reason),
                        Ok(_) => {
                            tracing::debug!(email = %job.job.email, destination = %job.job.destination, "deferred untried")
                        }
                        Err(error) => not_recorded(job, &error),
                    }
                }
                // Those parked behind it are deferred too, by this worker.
                turn.go_on = true;
                return turn;
            }
        };
        let Waiting {
            group,
            email,
            lease_ends,
        } = waiting;
        turn.email = email;
        // Its slot is given back below, whatever happens: take the next parked group.
        turn.go_on = true;
        // The attempt must end, and be recorded, before the lease does: the slack the
        // configuration leaves between lease and attempt timeout is kept whole.
        let deadline = lease_ends
            .checked_sub(self.config.lease - self.config.attempt_timeout)
            .unwrap_or(lease_ends);
        let started = Instant::now();
        if deadline.saturating_duration_since(started) < self.config.attempt_timeout / 2 {
            // It waited long for a worker: given back, and claimed afresh with a whole
            // deadline ahead of it.
            drop(slot);
            for job in &group {
                self.give_back(job).await;
            }
            return turn;
        }
        let mut stopping = stop.clone();
        let interruption = async move {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    metrics::counter!("mailfwd_attempt_deadline_exceeded_total").increment(1);
                    Interruption::Deadline(deadline - started)
                }
                _ = stopping.wait_for(|stop| *stop) => Interruption::Stop,
            }
        };
        let attempted = self
            .deliverer
            .attempt(&group, turn.email.as_deref(), interruption)
            .await;
        let error = attempted
            .recorded
            .iter()
            .find_map(|recorded| match recorded {
                Ok(Attempt::Deferred(_, reply) | Attempt::Failed(reply)) => Some(reply.as_str()),
                _ => None,
            })
            .unwrap_or_default();
        slot.finish(attempted.contact, error);
        for (recorded, job) in attempted.recorded.into_iter().zip(&group) {
            turn.failures.extend(failure_of(&recorded, job));
            report(recorded, job);
        }
        turn
    }

    /// Tells the sender of email `id` that its deliveries to `failures` failed for
    /// good, if a notification is due (see [`mailfwd_domain::bounce`]). A failure here
    /// is logged: the deliveries are recorded as failed whatever happens to it.
    async fn bounce(&self, id: EmailId, email: Option<Arc<ReceivedEmail>>, failures: Vec<Failure>) {
        let Some(bouncer) = self.bouncer.get().filter(|_| !failures.is_empty()) else {
            return;
        };
        let email = match email {
            Some(email) => email,
            None => match self.emails.get(&id).await {
                Ok(email) => Arc::new(email),
                Err(error) => return not_bounced(id, &error),
            },
        };
        match bouncer
            .bounce(&email, &failures, self.deliverer.now())
            .await
        {
            Ok(Bounced::Sent(notification)) => {
                metrics::counter!("mailfwd_dsn_total", "outcome" => "sent").increment(1);
                tracing::info!(email = %id, %notification, failed = failures.len(),
                    "delivery status notification sent to the sender");
            }
            Ok(Bounced::NotDue(why)) => {
                metrics::counter!("mailfwd_dsn_total", "outcome" => "not_due").increment(1);
                tracing::info!(email = %id, why, "no delivery status notification");
            }
            Err(error) => not_bounced(id, &error),
        }
    }

    /// Puts the jobs of a group whose destination has no free slot off by `delay`, and
    /// has a worker look in the queue when they are due rather than at its next look
    /// (which may be seconds later).
    async fn postpone(&self, group: &[ClaimedJob], delay: std::time::Duration) {
        let mut postponed = 0;
        for job in group {
            metrics::counter!("mailfwd_postponed_total").increment(1);
            match self.deliverer.postpone(job, delay).await {
                Ok(()) => postponed += 1,
                Err(error) => lease_kept(job, &error),
            }
        }
        if postponed > 0 {
            let wake = Arc::clone(&self.wake);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                // Claimed one at a time: one worker for each.
                for _ in 0..postponed {
                    wake.notify_one();
                }
            });
        }
    }

    /// Returns a claimed job to the queue unattempted, due at once.
    pub(crate) async fn give_back(&self, job: &ClaimedJob) {
        match self.deliverer.release(job).await {
            Ok(()) => self.wake.notify_one(),
            Err(error) => lease_kept(job, &error),
        }
    }
}

/// A parked group that may go now, in the slot taken for it, for an idle worker.
pub(crate) type Ready = (Slot<Waiting>, Waiting);

/// A group of one email's claimed jobs for one destination, waiting for a slot there.
pub(crate) struct Waiting {
    group: Vec<ClaimedJob>,
    /// The email's record, when the group was claimed with it (fresh mail).
    email: Option<Arc<ReceivedEmail>>,
    /// When the claims' leases end.
    lease_ends: Instant,
}

impl Waiting {
    /// The claimed jobs.
    pub(crate) fn jobs(&self) -> &[ClaimedJob] {
        &self.group
    }
}

/// How one group's turn went.
struct Turn {
    /// The deliveries that failed for good, for the bounce.
    failures: Vec<Failure>,
    /// The email's record, if at hand.
    email: Option<Arc<ReceivedEmail>>,
    /// The worker's attempt at the destination ended, or found it dead: it goes on with
    /// the next group parked there.
    go_on: bool,
}

/// A job could not be given back: its lease brings it back.
fn lease_kept(job: &ClaimedJob, error: &QueueError) {
    // Lost: its lease ran out and a worker took it from the queue; nothing to give back.
    if !matches!(error, QueueError::LeaseLost { .. }) {
        tracing::warn!(email = %job.job.email, destination = %job.job.destination, %error,
            "cannot give a delivery back to the queue; it is attempted when its lease runs out");
    }
}

fn report(attempt: Result<Attempt, QueueError>, job: &ClaimedJob) {
    let (email, destination) = (job.job.email, &job.job.destination);
    match attempt {
        Ok(Attempt::Delivered(reply)) => {
            metrics::counter!("mailfwd_delivered_total").increment(1);
            // From the moment the email began to arrive (its id's time), retries and
            // all: what a sender waits for.
            let latency = std::time::SystemTime::now()
                .duration_since(email.created_at())
                .unwrap_or_default();
            metrics::histogram!("mailfwd_delivery_latency_seconds").record(latency.as_secs_f64());
            tracing::info!(%email, %destination, %reply, "delivered");
        }
        Ok(Attempt::Deferred(at, reply)) => {
            metrics::counter!("mailfwd_deferred_total").increment(1);
            let at = humantime::format_rfc3339_seconds(at);
            tracing::warn!(%email, %destination, %reply, retry_at = %at, "deferred");
        }
        Ok(Attempt::Failed(reason)) => failed(job, &reason),
        Ok(Attempt::GivenBack) => {
            tracing::info!(%email, %destination, "stopped; the delivery is given back to the queue");
        }
        Err(error) => not_recorded(job, &error),
    }
}

/// The failure to report to the sender, if `recorded` is one.
fn failure_of(recorded: &Result<Attempt, QueueError>, job: &ClaimedJob) -> Option<Failure> {
    match recorded {
        Ok(Attempt::Failed(reason)) => Some(Failure {
            recipient: job.job.destination.clone(),
            reason: reason.clone(),
        }),
        _ => None,
    }
}

fn not_bounced(id: EmailId, error: &dyn std::fmt::Display) {
    metrics::counter!("mailfwd_dsn_total", "outcome" => "error").increment(1);
    tracing::error!(email = %id, %error, "cannot send the delivery status notification the sender is due");
}

fn failed(job: &ClaimedJob, reason: &str) {
    metrics::counter!("mailfwd_failed_total").increment(1);
    let (email, destination) = (job.job.email, &job.job.destination);
    tracing::warn!(%email, %destination, %reason, "failed for good");
}

fn not_recorded(job: &ClaimedJob, error: &QueueError) {
    let (email, destination) = (job.job.email, &job.job.destination);
    tracing::error!(%email, %destination, %error, "cannot record the delivery attempt");
}
