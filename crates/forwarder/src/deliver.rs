//! The delivery workers: jobs claimed at evaluation, and jobs claimed from the queue.

use std::sync::Arc;

use mailfwd_domain::delivery::{Attempt, ClaimedJob, QueueError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::evaluate::Fresh;
use crate::{LOOK_EVERY, Shared};

impl Shared {
    /// One worker, until `stop`: each attempt it starts, it finishes and records.
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
            if let Ok(job) = fresh.try_recv() {
                self.deliver_fresh(job).await;
                busy = true;
            }
            if *stop.borrow() {
                return;
            }
            if Instant::now() >= claim_at {
                match self.deliverer.claim(self.config.lease, 1).await {
                    Ok(jobs) if !jobs.is_empty() => {
                        for job in &jobs {
                            record(self.deliverer.deliver(job).await, job);
                        }
                        busy = true;
                    }
                    Ok(_) => claim_at = Instant::now() + LOOK_EVERY,
                    Err(error) => {
                        tracing::error!(%error, "cannot claim delivery jobs");
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
                Ok(job) = fresh.recv_async() => self.deliver_fresh(job).await,
                () = tokio::time::sleep_until(claim_at) => {}
            }
        }
    }

    async fn deliver_fresh(&self, fresh: Fresh) {
        // Less than half the lease left: it waited long for a worker (deliveries are
        // slow), and an attempt might outlast the lease and be made twice. Give it back
        // to the queue, where it is due at once.
        let left = fresh.lease_ends.saturating_duration_since(Instant::now());
        if left < self.config.lease / 2 {
            self.give_back(&fresh.job).await;
            return;
        }
        record(
            self.deliverer.deliver_email(&fresh.job, &fresh.email).await,
            &fresh.job,
        );
    }

    /// Returns a claimed job to the queue unattempted, due at once.
    pub(crate) async fn give_back(&self, job: &ClaimedJob) {
        match self.deliverer.release(job).await {
            // Its lease ran out and a worker took it from the queue: nothing to give back.
            Ok(()) | Err(QueueError::LeaseLost { .. }) => self.wake.notify_one(),
            Err(error) => {
                tracing::warn!(email = %job.job.email, destination = %job.job.destination, %error,
                    "cannot give a delivery back to the queue; it is attempted when its lease runs out")
            }
        }
    }
}

fn record(attempt: Result<Attempt, QueueError>, job: &ClaimedJob) {
    let (email, destination) = (job.job.email, &job.job.destination);
    match attempt {
        Ok(Attempt::Delivered(reply)) => {
            metrics::counter!("mailfwd_delivered_total").increment(1);
            tracing::info!(%email, %destination, %reply, "delivered");
        }
        Ok(Attempt::Deferred(at, reply)) => {
            metrics::counter!("mailfwd_deferred_total").increment(1);
            let at = humantime::format_rfc3339_seconds(at);
            tracing::warn!(%email, %destination, %reply, retry_at = %at, "deferred");
        }
        Ok(Attempt::Failed(reason)) => {
            metrics::counter!("mailfwd_failed_total").increment(1);
            tracing::warn!(%email, %destination, %reason, "failed for good");
        }
        Err(error) => {
            tracing::error!(%email, %destination, %error, "cannot record the delivery attempt")
        }
    }
}
