//! Forwarding in the background: evaluate each accepted email, then deliver its jobs
//! with a pool of workers.
//!
//! The fast path is all in memory: an accepted email goes to the evaluator over a
//! channel; evaluating it claims its new jobs at once, and the claimed jobs go to the
//! workers over a second channel, with the email's record, so nothing is read back from
//! the database. Everything the channels hold is durable already (the email is recorded
//! as not yet evaluated; a claimed job is in the queue under a lease), so a crash loses
//! nothing: on restart the scan evaluates what was not, and claimed jobs are claimed
//! again when their lease runs out. Workers also claim from the queue: retries, and
//! jobs whose worker died.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mailfwd_domain::delivery::{
    Attempt, ClaimedJob, Deliverer, EnqueueOutcome, ForwardEvaluator, QueueError,
};
use mailfwd_domain::{AcceptedListener, EmailStore, ReceivedEmail};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

/// Emails waiting for the evaluator; beyond this, the periodic scan picks them up.
const HANDOFF: usize = 10_000;
/// Emails being evaluated at once: enough for their queue writes to share commits.
const EVALUATING: usize = 64;
/// How often the evaluator looks for unevaluated emails, and workers for due retries.
const SCAN_EVERY: Duration = Duration::from_secs(5);
/// Unevaluated emails read per scan.
const SCAN_BATCH: usize = 500;

/// How the workers run.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Concurrent deliveries.
    pub workers: usize,
    /// How long a claimed job is held before another worker may take it over.
    pub lease: Duration,
}

/// The hand-off from ingest to the evaluator.
pub struct Handoff {
    sender: mpsc::Sender<ReceivedEmail>,
}

impl AcceptedListener for Handoff {
    fn accepted(&self, email: &ReceivedEmail) {
        metrics::counter!("mailfwd_received_total").increment(1);
        // A full channel only delays evaluation until the next scan: the email's
        // unevaluated flag is already durable.
        let _ = self.sender.try_send(email.clone());
    }
}

/// A job claimed at evaluation, on its way to a worker with its email's record.
struct Fresh {
    job: ClaimedJob,
    email: Arc<ReceivedEmail>,
    /// When the claim runs out (at the latest: measured from before it was made).
    lease_ends: Instant,
}

/// The evaluator and the delivery workers.
pub struct Pipeline {
    emails: Arc<dyn EmailStore>,
    evaluator: ForwardEvaluator,
    deliverer: Deliverer,
    wake: Arc<Notify>,
    config: PipelineConfig,
}

impl Pipeline {
    /// A pipeline over these services, and the listener that feeds it.
    #[must_use]
    pub fn new(
        emails: Arc<dyn EmailStore>,
        evaluator: ForwardEvaluator,
        deliverer: Deliverer,
        config: PipelineConfig,
    ) -> (Pipeline, Handoff, mpsc::Receiver<ReceivedEmail>) {
        let (sender, receiver) = mpsc::channel(HANDOFF);
        let pipeline = Pipeline {
            emails,
            evaluator,
            deliverer,
            wake: Arc::new(Notify::new()),
            config,
        };
        (pipeline, Handoff { sender }, receiver)
    }

    /// Starts the evaluator and the workers; they stop when `stop` turns true, each
    /// worker finishing the attempt it is making, and the evaluator giving back the
    /// claims of jobs no worker took (so that the next start delivers them at once, not
    /// when their lease runs out).
    pub fn start(
        self,
        accepted: mpsc::Receiver<ReceivedEmail>,
        stop: watch::Receiver<bool>,
    ) -> JoinSet<()> {
        let workers = self.config.workers.max(1);
        // As many waiting as there are workers: claimed jobs wait in memory only briefly,
        // so few are held up by their lease after a crash.
        let (fresh_tx, fresh_rx) = flume::bounded(workers);
        let mut tasks = JoinSet::new();
        let this = Arc::new(self);
        tasks.spawn(Arc::clone(&this).evaluate(accepted, fresh_tx, fresh_rx.clone(), stop.clone()));
        for _ in 0..workers {
            tasks.spawn(Arc::clone(&this).deliver(fresh_rx.clone(), stop.clone()));
        }
        tasks
    }

    async fn evaluate(
        self: Arc<Self>,
        mut accepted: mpsc::Receiver<ReceivedEmail>,
        fresh_tx: flume::Sender<Fresh>,
        fresh_rx: flume::Receiver<Fresh>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut scan = tokio::time::interval(SCAN_EVERY);
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some(email) = accepted.recv(), if running.len() < EVALUATING => {
                    let (this, fresh) = (Arc::clone(&self), fresh_tx.clone());
                    running.spawn(async move { this.evaluate_fresh(email, &fresh).await });
                }
                // All slots taken: wait for one to free up.
                Some(_) = running.join_next() => {}
                _ = scan.tick() => self.evaluate_backlog().await,
            }
        }
        // Emails not yet taken from `accepted` are recorded as unevaluated: the next
        // start evaluates them. The evaluations under way finish, and the jobs they and
        // the channel hold are given back to the queue.
        drop(fresh_tx);
        let give_back = async {
            while let Ok(fresh) = fresh_rx.recv_async().await {
                self.give_back(&fresh.job).await;
            }
        };
        let finish = async { while running.join_next().await.is_some() {} };
        tokio::join!(give_back, finish);
    }

    /// Evaluates a fresh email and hands its new jobs to the workers.
    async fn evaluate_fresh(&self, email: ReceivedEmail, fresh: &flume::Sender<Fresh>) {
        // Taken before the claim: the lease in the queue ends no earlier than `lease_ends`.
        let (now, lease_ends) = (SystemTime::now(), Instant::now() + self.config.lease);
        let claimed = match self
            .evaluator
            .evaluate_and_claim(&email, now, self.config.lease)
            .await
        {
            Ok((evaluation, claimed)) => {
                self.evaluated(&email, &evaluation.unmatched).await;
                claimed
            }
            Err(error) => {
                tracing::error!(id = %email.id, %error, "evaluation failed; the next scan retries it");
                return;
            }
        };
        let email = Arc::new(email);
        for job in claimed {
            let email = Arc::clone(&email);
            // Fails only once the pipeline has stopped: the lease brings the job back.
            let _ = fresh
                .send_async(Fresh {
                    job,
                    email,
                    lease_ends,
                })
                .await;
        }
    }

    async fn evaluate_backlog(&self) {
        match self.emails.unevaluated(None, SCAN_BATCH).await {
            Ok(emails) => {
                if !emails.is_empty() {
                    tracing::info!(
                        count = emails.len(),
                        "evaluating emails accepted but not yet evaluated"
                    );
                }
                for email in emails {
                    self.evaluate_one(&email).await;
                }
            }
            Err(error) => tracing::error!(%error, "cannot read unevaluated emails"),
        }
    }

    /// Evaluates an email found by the scan; workers claim its jobs from the queue.
    async fn evaluate_one(&self, email: &ReceivedEmail) {
        match self
            .evaluator
            .evaluate(email, false, SystemTime::now())
            .await
        {
            Ok(evaluation) => {
                self.evaluated(email, &evaluation.unmatched).await;
                // One wake-up per new job: waking every idle worker for each email would
                // send them all to claim at once, and all but one would find nothing.
                let new = evaluation
                    .destinations
                    .iter()
                    .filter(|(_, outcome)| *outcome == EnqueueOutcome::Enqueued);
                for _ in new {
                    self.wake.notify_one();
                }
            }
            Err(error) => {
                tracing::error!(id = %email.id, %error, "evaluation failed; the next scan retries it")
            }
        }
    }

    /// Marks `email` evaluated and reports the recipients no rule matches any more.
    async fn evaluated(&self, email: &ReceivedEmail, unmatched: &[mailfwd_domain::EmailAddress]) {
        for recipient in unmatched {
            // Accepted, but now going nowhere: counted so it shows in metrics, and
            // `mailfwd reprocess` sends it once a rule matches again.
            metrics::counter!("mailfwd_unmatched_recipients_total").increment(1);
            tracing::warn!(id = %email.id, %recipient, "no rule matches this recipient any more");
        }
        if let Err(error) = self.emails.mark_evaluated(&email.id).await {
            tracing::error!(id = %email.id, %error, "cannot mark the email evaluated; it will be evaluated again");
        }
    }

    async fn deliver(
        self: Arc<Self>,
        fresh: flume::Receiver<Fresh>,
        mut stop: watch::Receiver<bool>,
    ) {
        // When to look in the queue next: at once while it has due jobs (alternating with
        // fresh ones, so neither starves the other), otherwise every few seconds.
        let mut claim_at = Instant::now();
        while !*stop.borrow() {
            let mut busy = false;
            if let Ok(job) = fresh.try_recv() {
                self.deliver_fresh(job).await;
                busy = true;
            }
            if Instant::now() >= claim_at {
                match self.deliverer.claim(self.config.lease, 1).await {
                    Ok(jobs) if !jobs.is_empty() => {
                        for job in &jobs {
                            record(self.deliverer.deliver(job).await, job);
                        }
                        busy = true;
                    }
                    Ok(_) => claim_at = Instant::now() + SCAN_EVERY,
                    Err(error) => {
                        tracing::error!(%error, "cannot claim delivery jobs");
                        claim_at = Instant::now() + SCAN_EVERY;
                    }
                }
            }
            if busy {
                continue;
            }
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                // A job the scan enqueued (or a reprocessed one): look in the queue.
                () = self.wake.notified() => claim_at = Instant::now(),
                Ok(job) = fresh.recv_async() => self.deliver_fresh(job).await,
                () = tokio::time::sleep_until(claim_at.into()) => {}
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

    async fn give_back(&self, job: &ClaimedJob) {
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
