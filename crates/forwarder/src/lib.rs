//! The evaluate-and-deliver engine: every accepted email is run through the forward
//! evaluator, and its delivery jobs are attempted by a pool of workers.
//!
//! The fast path is all in memory: an accepted email reaches the evaluator through the
//! hand-off; evaluating it claims its new jobs at once, and the claimed jobs go to the
//! workers over a channel, with the email's record, so nothing is read back. What the
//! hand-off cannot take — an overflow under load, or what a crash left unevaluated — is
//! read from the received log a page at a time by the backlog reader and goes through
//! exactly the same evaluation, as fast as fresh mail. Everything held in memory is
//! durable already (an email is recorded as unevaluated; a claimed job is in the queue
//! under a lease), so a crash loses nothing, and on start the leases of the killed
//! process are released so that nothing waits for them to run out. Workers also claim
//! from the queue: retries, lapsed leases, and reprocessed emails, whose evaluation
//! wakes them (see [`Forwarder::evaluator`]).

mod backlog;
mod deliver;
mod destinations;
mod evaluate;
mod failing;
mod retention;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use mailfwd_domain::bounce::Bouncer;
use mailfwd_domain::delivery::{Deliverer, EnqueueListener, ForwardEvaluator};
use mailfwd_domain::{AcceptedListener, EmailId, EmailStore, ReceivedEmail};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use backlog::Backlog;
pub use destinations::DestinationLimits;
use destinations::Destinations;
pub use retention::{Retention, RetentionPass};

/// How often idle workers look in the queue for due retries, and how long a backlog
/// read that failed waits before it is tried again.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// Concurrent deliveries, all destinations together; each destination gets at most
    /// [`DestinationLimits::concurrency_limit`] of them.
    pub workers: usize,
    /// How long a claimed job is held before another worker may take it over.
    pub lease: Duration,
    /// The longest one attempt may take, connection to final reply; it is cut short
    /// then and recorded as a temporary failure. Kept below the lease (at most four
    /// fifths of it), so that an attempt is recorded before its lease runs out and is
    /// never made twice at once.
    pub attempt_timeout: Duration,
    /// Per-destination concurrency and the memory of unreachable destinations.
    pub destinations: DestinationLimits,
    /// Accepted emails waiting in memory for the evaluator; beyond this they wait in
    /// the received log for the backlog reader.
    pub handoff: usize,
    /// Emails evaluated at once: enough for their queue writes to share commits.
    pub evaluating: usize,
    /// Unevaluated records the backlog reader holds at most: one page of the log.
    pub backlog_page: usize,
    /// How long another instance sharing the queue may stay silent before its leases
    /// are released for this one; this instance says it is alive three times as often.
    pub instance_timeout: Duration,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            workers: 100,
            lease: Duration::from_secs(15 * 60),
            attempt_timeout: Duration::from_secs(10 * 60),
            destinations: DestinationLimits::default(),
            handoff: 10_000,
            evaluating: 64,
            backlog_page: 256,
            instance_timeout: Duration::from_secs(30),
        }
    }
}

/// The engine, built before it starts so that its hand-off and its evaluator can be
/// given to the ingest and gRPC services first.
pub struct Forwarder {
    shared: Arc<Shared>,
    accepted: mpsc::Receiver<ReceivedEmail>,
    handoff: Arc<Handoff>,
}

/// What the engine's tasks share.
struct Shared {
    emails: Arc<dyn EmailStore>,
    evaluator: ForwardEvaluator,
    deliverer: Deliverer,
    config: ForwarderConfig,
    /// Tells idle workers to look in the queue.
    wake: Arc<Notify>,
    /// Wakes as many of them as there are jobs.
    waker: QueueWaker,
    /// Emails in the hand-off or being evaluated: the backlog reader leaves them alone.
    in_flight: Mutex<HashSet<EmailId>>,
    backlog: Arc<Backlog>,
    destinations: Arc<Destinations<deliver::Waiting>>,
    /// Parked groups handed to idle workers when a destination's window grows.
    ready: flume::Sender<deliver::Ready>,
    ready_rx: flume::Receiver<deliver::Ready>,
    /// Tells senders of failures; set once the ingest service it stores through exists.
    bouncer: OnceLock<Bouncer>,
    /// Evaluations failing in a row, for one log line per outage.
    failing_evaluations: failing::FailureRun,
    /// Claims failing in a row (every idle worker claims every few seconds).
    failing_claims: failing::FailureRun,
}

impl Shared {
    /// Says this instance is alive, every third of the instance timeout, until `stop`;
    /// each time, the jobs of instances silent for longer are released and the workers
    /// woken for them.
    async fn heartbeats(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = (self.config.instance_timeout / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(every) => {
                    self.heartbeat().await;
                    // What an instance that died had accepted but not evaluated.
                    self.backlog.sweep();
                }
            }
        }
    }

    /// Releases the leases this instance's previous run held, trying again every few
    /// seconds while the database does not answer; false if `stop` came first.
    async fn release_own(&self, mut stop: watch::Receiver<bool>) -> bool {
        let mut delay = Duration::from_secs(1);
        loop {
            match self.deliverer.release_all_leases().await {
                Ok(released) => {
                    if released > 0 {
                        tracing::info!(
                            released,
                            "released the deliveries the previous run held; they are due now"
                        );
                    }
                    return true;
                }
                Err(error) => tracing::error!(
                    %error,
                    "cannot release the previous run's leases yet; nothing is delivered until then; trying again"
                ),
            }
            tokio::select! {
                _ = stop.changed() => return false,
                () = tokio::time::sleep(delay) => delay = (delay * 2).min(Duration::from_secs(5)),
            }
        }
    }

    async fn heartbeat(&self) {
        match self.deliverer.heartbeat(self.config.instance_timeout).await {
            Ok(0) => {}
            Ok(released) => {
                tracing::warn!(
                    released,
                    "took over the deliveries of an instance that stopped answering"
                );
                self.waker.jobs_due(Some(released));
            }
            Err(error) => tracing::error!(%error, "cannot record that this instance is alive"),
        }
    }

    fn in_flight(&self) -> MutexGuard<'_, HashSet<EmailId>> {
        // Each critical section is one set operation: a panic cannot leave it torn.
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Forwarder {
    /// An engine over these services; `evaluator` is wrapped so that its evaluations
    /// wake the workers (see [`Forwarder::evaluator`]).
    #[must_use]
    pub fn new(
        emails: Arc<dyn EmailStore>,
        evaluator: ForwardEvaluator,
        deliverer: Deliverer,
        config: ForwarderConfig,
    ) -> Forwarder {
        let config = ForwarderConfig {
            workers: config.workers.max(1),
            attempt_timeout: config.attempt_timeout.min(config.lease * 4 / 5),
            handoff: config.handoff.max(1),
            evaluating: config.evaluating.max(1),
            backlog_page: config.backlog_page.max(1),
            ..config
        };
        let wake = Arc::new(Notify::new());
        let waker = QueueWaker {
            wake: Arc::clone(&wake),
            workers: config.workers,
        };
        let evaluator = evaluator.with_listener(Arc::new(waker.clone()));
        let (sender, accepted) = mpsc::channel(config.handoff);
        let destinations = Arc::new(Destinations::new(config.destinations.clone()));
        // Unbounded, yet small: each holds a slot, so a destination has at most its
        // window's worth in it.
        let (ready, ready_rx) = flume::unbounded();
        let shared = Arc::new(Shared {
            emails,
            evaluator,
            deliverer,
            config,
            wake,
            waker,
            in_flight: Mutex::new(HashSet::new()),
            backlog: Arc::new(Backlog::default()),
            destinations,
            ready,
            ready_rx,
            bouncer: OnceLock::new(),
            failing_evaluations: failing::FailureRun::default(),
            failing_claims: failing::FailureRun::default(),
        });
        let handoff = Arc::new(Handoff {
            sender,
            shared: Arc::clone(&shared),
        });
        Forwarder {
            shared,
            accepted,
            handoff,
        }
    }

    /// The listener that feeds accepted emails to the engine: give it to the ingest
    /// service. Emails it is told of before [`Forwarder::start`] wait for the start.
    #[must_use]
    pub fn handoff(&self) -> Arc<dyn AcceptedListener> {
        Arc::clone(&self.handoff) as Arc<dyn AcceptedListener>
    }

    /// Sends delivery status notifications for deliveries that fail for good through
    /// `bouncer`. Set after [`Forwarder::new`] because the bouncer stores them through
    /// the ingest service, which is given [`Forwarder::handoff`] first; a second call
    /// changes nothing. Without it, failures are recorded and logged only.
    pub fn set_bouncer(&self, bouncer: Bouncer) {
        let _ = self.shared.bouncer.set(bouncer);
    }

    /// What wakes the idle workers for jobs due in the queue: give it to whatever hears
    /// that another instance left jobs due (on PostgreSQL, the change listener), so they
    /// are claimed at once rather than at the workers' next look at the queue.
    #[must_use]
    pub fn queue_waker(&self) -> QueueWaker {
        self.shared.waker.clone()
    }

    /// The evaluator whose evaluations wake the workers when they leave due jobs (a
    /// reprocessed email): give it to the services that reprocess, so that a reprocessed
    /// email is attempted at once rather than at the workers' next look at the queue.
    #[must_use]
    pub fn evaluator(&self) -> ForwardEvaluator {
        self.shared.evaluator.clone()
    }

    /// Starts the engine. First the leases the previous run of this instance held are
    /// released (a crash left them), so their jobs are due at once; then the evaluator,
    /// the backlog reader (which starts with whatever is left unevaluated) and the
    /// workers start. If the database does not answer, the release is tried again every
    /// few seconds and nothing else starts before it has worked: released later, the
    /// leases of this instance would include the ones this run has just claimed. They
    /// stop when `stop` turns true: each worker cuts short the attempt it is making and
    /// gives its job back, the evaluations under way finish, and the claims of jobs no
    /// worker took are given back too, all due at once for the next start.
    pub async fn start(self, stop: watch::Receiver<bool>) -> JoinSet<()> {
        let (shared, accepted) = (self.shared, self.accepted);
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            if !shared.release_own(stop.clone()).await {
                return;
            }
            // Registered before the first claim, so no other instance takes this one
            // for silent.
            shared.heartbeat().await;
            let (fresh_tx, fresh_rx) = flume::bounded(shared.config.workers);
            // Enough for the evaluator never to wait for the reader while a backlog
            // exists.
            let (backlog_tx, backlog_rx) = flume::bounded(shared.config.evaluating);
            shared.backlog.request();
            let mut engine = JoinSet::new();
            engine.spawn(Arc::clone(&shared).heartbeats(stop.clone()));
            engine.spawn(Arc::clone(&shared).read_backlog(backlog_tx, stop.clone()));
            engine.spawn(Arc::clone(&shared).evaluate(
                accepted,
                backlog_rx,
                fresh_tx,
                fresh_rx.clone(),
                stop.clone(),
            ));
            for _ in 0..shared.config.workers {
                engine.spawn(Arc::clone(&shared).deliver(fresh_rx.clone(), stop.clone()));
            }
            while let Some(ended) = engine.join_next().await {
                if let Err(error) = ended {
                    tracing::error!(%error, "a forwarding task failed");
                }
            }
            // Groups parked with busy destinations: due at once for the next start.
            let ready = shared.ready_rx.drain().map(|(_slot, waiting)| waiting);
            for waiting in ready.chain(shared.destinations.take_all_parked()) {
                for job in waiting.jobs() {
                    shared.give_back(job).await;
                }
            }
        });
        tasks
    }
}

/// The hand-off from ingest to the evaluator.
struct Handoff {
    sender: mpsc::Sender<ReceivedEmail>,
    shared: Arc<Shared>,
}

impl AcceptedListener for Handoff {
    fn accepted(&self, email: &ReceivedEmail) {
        metrics::counter!("mailfwd_received_total").increment(1);
        let backlog = &self.shared.backlog;
        if backlog.overflowing() {
            // Behind emails the reader has yet to read: left to it, in id order.
            backlog.request();
            return;
        }
        // In flight before it is in the channel: the backlog reader never takes it too.
        // Already in flight: a backlog pass read it between its commit and this call,
        // and evaluates it.
        if !self.shared.in_flight().insert(email.id) {
            return;
        }
        if self.sender.try_send(email.clone()).is_err() {
            // Full (or stopped): the email is durably unevaluated; the backlog reader
            // evaluates it, as soon as the evaluator can take more.
            self.shared.in_flight().remove(&email.id);
            backlog.overflowed();
        }
    }
}

/// Wakes idle workers to look in the queue: when an evaluation leaves due jobs there
/// (a reprocessed email), when this instance takes over a silent one's jobs, and when
/// another instance says it left jobs due (see [`Forwarder::queue_waker`]).
#[derive(Clone)]
pub struct QueueWaker {
    wake: Arc<Notify>,
    workers: usize,
}

impl QueueWaker {
    /// About `jobs` jobs are due now; `None` if how many is unknown. One worker is woken
    /// per job, all of them at most: waking them all for one job would send them all to
    /// claim at once, and all but one would find nothing. A worker that claims one
    /// claims again until the queue has nothing due.
    pub fn jobs_due(&self, jobs: Option<u64>) {
        let wanted = jobs.map_or(self.workers, |jobs| {
            usize::try_from(jobs)
                .unwrap_or(usize::MAX)
                .min(self.workers)
        });
        for _ in 0..wanted {
            self.wake.notify_one();
        }
    }
}

impl EnqueueListener for QueueWaker {
    fn enqueued(&self, _email: EmailId, jobs: usize) {
        self.jobs_due(Some(u64::try_from(jobs).unwrap_or(u64::MAX)));
    }
}
