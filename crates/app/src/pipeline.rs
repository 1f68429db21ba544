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

use mailfwd_domain::delivery::{Attempt, ClaimedJob, Deliverer, ForwardEvaluator, QueueError};
use mailfwd_domain::{AcceptedListener, EmailStore, ReceivedEmail};
use tokio::sync::{Mutex, Notify, Semaphore, mpsc, watch};
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
    /// finishing the attempt it is making.
    pub fn start(
        self,
        accepted: mpsc::Receiver<ReceivedEmail>,
        stop: watch::Receiver<bool>,
    ) -> JoinSet<()> {
        let workers = self.config.workers.max(1);
        // As many waiting as there are workers: claimed jobs wait in memory only briefly,
        // so few are held up by their lease after a crash.
        let (fresh_tx, fresh_rx) = mpsc::channel(workers);
        let fresh_rx = Arc::new(Mutex::new(fresh_rx));
        let mut tasks = JoinSet::new();
        let this = Arc::new(self);
        tasks.spawn(Arc::clone(&this).evaluate(accepted, fresh_tx, stop.clone()));
        for _ in 0..workers {
            tasks.spawn(Arc::clone(&this).deliver(Arc::clone(&fresh_rx), stop.clone()));
        }
        tasks
    }

    async fn evaluate(
        self: Arc<Self>,
        mut accepted: mpsc::Receiver<ReceivedEmail>,
        fresh: mpsc::Sender<Fresh>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut scan = tokio::time::interval(SCAN_EVERY);
        let slots = Arc::new(Semaphore::new(EVALUATING));
        loop {
            tokio::select! {
                Some(email) = accepted.recv() => {
                    let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                        return;
                    };
                    let (this, fresh) = (Arc::clone(&self), fresh.clone());
                    // Detached: an evaluation cut short at shutdown is redone by the
                    // next start's scan.
                    tokio::spawn(async move {
                        this.evaluate_fresh(email, &fresh).await;
                        drop(slot);
                    });
                }
                _ = scan.tick() => self.evaluate_backlog().await,
                _ = stop.changed() => return,
            }
        }
    }

    /// Evaluates a fresh email and hands its new jobs to the workers.
    async fn evaluate_fresh(&self, email: ReceivedEmail, fresh: &mpsc::Sender<Fresh>) {
        let now = SystemTime::now();
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
            // Only fails when the workers have stopped: the lease brings the job back.
            let _ = fresh.send(Fresh { job, email }).await;
        }
    }

    async fn evaluate_backlog(&self) {
        match self.emails.unevaluated(SCAN_BATCH).await {
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
                for _ in 0..evaluation.destinations.len() {
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
        fresh: Arc<Mutex<mpsc::Receiver<Fresh>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        // Claim from the queue now and then even while fresh jobs keep coming, so that
        // retries are not starved by new mail.
        let mut last_claim = Instant::now();
        while !*stop.borrow() {
            if last_claim.elapsed() < SCAN_EVERY {
                let next = fresh.lock().await.try_recv();
                if let Ok(fresh) = next {
                    self.deliver_fresh(fresh).await;
                    continue;
                }
            }
            // `notify_one` keeps a permit when nobody waits, so a wake-up between an
            // empty claim and the wait below is not lost.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            last_claim = Instant::now();
            match self.deliverer.claim(self.config.lease, 1).await {
                Ok(jobs) if !jobs.is_empty() => {
                    for job in &jobs {
                        record(self.deliverer.deliver(job).await, job);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "cannot claim delivery jobs"),
            }
            let next = async { fresh.lock().await.recv().await };
            tokio::select! {
                Some(fresh) = next => self.deliver_fresh(fresh).await,
                () = &mut notified => {}
                () = tokio::time::sleep(SCAN_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn deliver_fresh(&self, Fresh { job, email }: Fresh) {
        // Its lease ran out while it waited (workers stalled for longer than the lease):
        // the job is due in the queue again and may be claimed there already.
        if job.job.next_attempt_at <= SystemTime::now() {
            return;
        }
        record(self.deliverer.deliver_email(&job, &email).await, &job);
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
