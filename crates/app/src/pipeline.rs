//! Forwarding in the background: evaluate each accepted email, then deliver its jobs
//! with a pool of workers. Evaluation starts the moment an email is accepted; a scan
//! of the received log catches anything accepted but not evaluated (after a crash, or
//! when the hand-off channel was full).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailfwd_domain::delivery::{Attempt, Deliverer, ForwardEvaluator};
use mailfwd_domain::{AcceptedListener, EmailStore, ReceivedEmail};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

/// Emails waiting for the evaluator; beyond this, the periodic scan picks them up.
const HANDOFF: usize = 10_000;
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
        let mut tasks = JoinSet::new();
        let this = Arc::new(self);
        tasks.spawn(Arc::clone(&this).evaluate(accepted, stop.clone()));
        for _ in 0..this.config.workers.max(1) {
            tasks.spawn(Arc::clone(&this).deliver(stop.clone()));
        }
        tasks
    }

    async fn evaluate(
        self: Arc<Self>,
        mut accepted: mpsc::Receiver<ReceivedEmail>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut scan = tokio::time::interval(SCAN_EVERY);
        loop {
            tokio::select! {
                Some(email) = accepted.recv() => self.evaluate_one(&email).await,
                _ = scan.tick() => self.evaluate_backlog().await,
                _ = stop.changed() => return,
            }
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

    async fn evaluate_one(&self, email: &ReceivedEmail) {
        match self
            .evaluator
            .evaluate(email, false, SystemTime::now())
            .await
        {
            Ok(evaluation) => {
                for unmatched in &evaluation.unmatched {
                    // Accepted, but now going nowhere: counted so it shows in metrics,
                    // and `mailfwd reprocess` sends it once a rule matches again.
                    metrics::counter!("mailfwd_unmatched_recipients_total").increment(1);
                    tracing::warn!(id = %email.id, recipient = %unmatched, "no rule matches this recipient any more");
                }
                if let Err(error) = self.emails.mark_evaluated(&email.id).await {
                    tracing::error!(id = %email.id, %error, "cannot mark the email evaluated; it will be evaluated again");
                }
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

    async fn deliver(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            // `notify_one` keeps a permit when nobody waits, so a wake-up between an
            // empty claim and the wait below is not lost.
            let notified = self.wake.notified();
            tokio::pin!(notified);
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
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(SCAN_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

fn record(
    attempt: Result<Attempt, mailfwd_domain::delivery::QueueError>,
    job: &mailfwd_domain::delivery::ClaimedJob,
) {
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
