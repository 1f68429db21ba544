//! The engine on the memory ports, with a scripted mailer standing in for the
//! destinations and a rule store that counts evaluations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use mailfwd_domain::delivery::{
    Clock, Deliverer, DeliveryJob, DeliveryOutcome, DeliveryQueue, ForwardEvaluator, Mailer,
    Outgoing, RetryPolicy,
};
use mailfwd_domain::email::{EmailId, Envelope, NewEmail, SplitEmailStore};
use mailfwd_domain::memory::{
    MemoryBodyStore, MemoryDeliveryQueue, MemoryEmailLog, MemoryRuleStore,
};
use mailfwd_domain::{
    AcceptedListener, EmailAddress, EmailStore, ReceivedEmail, RecipientPattern, Rule, RuleError,
    RulePage, RuleQuery, RuleStore,
};
use mailfwd_forwarder::{Forwarder, ForwarderConfig};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

/// How the scripted destination answers.
#[derive(Clone)]
pub enum Answer {
    /// `250`.
    Deliver,
    /// `451`: try again later.
    Defer,
    /// `550`: do not try again.
    Refuse,
    /// Nothing until the gate opens, then `250`.
    Hang(watch::Receiver<bool>),
    /// `250` after this long: a destination that crawls.
    Slow(Duration),
    /// No connection could be made.
    Unreachable,
}

/// One recipient of a message the mailer was given.
#[derive(Debug, Clone)]
pub struct Sent {
    pub destination: String,
    pub email: EmailId,
    pub at: Instant,
}

/// Answers per destination (`Deliver` when unscripted) and records every send, once
/// per recipient and once as a transaction.
#[derive(Default)]
pub struct ScriptedMailer {
    script: Mutex<HashMap<String, Answer>>,
    sent: Mutex<Vec<Sent>>,
    /// The recipients of each send, in the order the sends started.
    transactions: Mutex<Vec<Vec<String>>>,
    /// Sends under way and the most there ever were at once, per recipient domain.
    in_flight: Mutex<HashMap<String, (usize, usize)>>,
    /// Notified at the start of every send.
    pub started: Notify,
}

impl ScriptedMailer {
    pub fn script(&self, destination: &str, answer: Answer) {
        self.script
            .lock()
            .unwrap()
            .insert(destination.to_owned(), answer);
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// The recipients of each send so far.
    pub fn transactions(&self) -> Vec<Vec<String>> {
        self.transactions.lock().unwrap().clone()
    }

    /// Sends that went to `destination` (an address).
    pub fn sent_to(&self, destination: &str) -> usize {
        self.sent()
            .iter()
            .filter(|sent| sent.destination == destination)
            .count()
    }

    /// The most sends to `domain` that were ever under way at once.
    pub fn most_at_once(&self, domain: &str) -> usize {
        self.in_flight
            .lock()
            .unwrap()
            .get(domain)
            .map_or(0, |(_, most)| *most)
    }

    fn count_in(&self, domain: &str, change: isize) {
        let mut in_flight = self.in_flight.lock().unwrap();
        let (now, most) = in_flight.entry(domain.to_owned()).or_default();
        *now = now.saturating_add_signed(change);
        *most = (*most).max(*now);
    }

    /// Waits (at most a minute on the test's clock) until `count` sends have started.
    pub async fn wait_for(&self, count: usize) -> Vec<Sent> {
        let waiting = async {
            loop {
                let notified = self.started.notified();
                let sent = self.sent();
                if sent.len() >= count {
                    return sent;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} sends in a minute", self.sent().len()))
    }
}

#[async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, mut message: Outgoing) -> Vec<DeliveryOutcome> {
        let mut bytes = Vec::new();
        while let Some(chunk) = message.body.next_chunk().await.unwrap() {
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&bytes);
        let id = text.split(" id ").nth(1).unwrap().split_whitespace().next();
        let email = EmailId::parse(id.unwrap().trim_end_matches(';')).unwrap();
        let destinations: Vec<String> =
            message.recipients.iter().map(ToString::to_string).collect();
        let at = Instant::now();
        self.sent
            .lock()
            .unwrap()
            .extend(destinations.iter().map(|destination| Sent {
                destination: destination.clone(),
                email,
                at,
            }));
        self.transactions.lock().unwrap().push(destinations.clone());
        self.started.notify_waiters();
        let answers: Vec<Answer> = {
            let script = self.script.lock().unwrap();
            destinations
                .iter()
                .map(|destination| script.get(destination).cloned().unwrap_or(Answer::Deliver))
                .collect()
        };
        let domain = message.recipients[0].domain().as_str().to_owned();
        self.count_in(&domain, 1);
        // Counted out however the send ends, cut short included.
        let _out = CountOut(self, domain);
        // The transaction takes as long as its slowest recipient says.
        for answer in &answers {
            match answer {
                Answer::Hang(gate) => {
                    let _ = gate.clone().wait_for(|open| *open).await;
                }
                Answer::Slow(takes) => tokio::time::sleep(*takes).await,
                _ => {}
            }
        }
        answers
            .into_iter()
            .map(|answer| match answer {
                Answer::Deliver => DeliveryOutcome::Delivered("250 2.0.0 ok".into()),
                Answer::Defer => DeliveryOutcome::Transient("451 4.3.0 try later".into()),
                Answer::Refuse => DeliveryOutcome::Permanent("550 5.1.1 no such user".into()),
                Answer::Hang(_) => DeliveryOutcome::Delivered("250 2.0.0 ok at last".into()),
                Answer::Slow(_) => DeliveryOutcome::Delivered("250 2.0.0 ok, slowly".into()),
                Answer::Unreachable => {
                    DeliveryOutcome::Unreachable("connection to 192.0.2.9:25 refused".into())
                }
            })
            .collect()
    }
}

/// Counts a send out of the mailer's in-flight figures when dropped.
struct CountOut<'a>(&'a ScriptedMailer, String);

impl Drop for CountOut<'_> {
    fn drop(&mut self) {
        self.0.count_in(&self.1, -1);
    }
}

/// The wall clock as the engine's tests see it: it moves with tokio's clock, paused
/// or not, so leases, retries and give-up times pass in virtual time.
pub struct TestClock {
    base: SystemTime,
    start: Instant,
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}

/// A memory rule store that counts resolutions (one per recipient per evaluation) and
/// can be told to fail the next few.
#[derive(Default)]
pub struct CountingRules {
    inner: MemoryRuleStore,
    pub resolved: AtomicUsize,
    pub fail_next: AtomicUsize,
}

#[async_trait]
impl RuleStore for CountingRules {
    async fn create(&self, rule: Rule) -> Result<Rule, RuleError> {
        self.inner.create(rule).await
    }
    async fn get(&self, pattern: &RecipientPattern) -> Result<Rule, RuleError> {
        self.inner.get(pattern).await
    }
    async fn delete(&self, pattern: &RecipientPattern) -> Result<(), RuleError> {
        self.inner.delete(pattern).await
    }
    async fn list(&self, query: &RuleQuery) -> Result<RulePage, RuleError> {
        self.inner.list(query).await
    }
    async fn upsert_many(&self, batch: Vec<Rule>) -> Result<u64, RuleError> {
        self.inner.upsert_many(batch).await
    }
    async fn resolve(&self, recipient: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        self.resolved.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if fail.is_ok() {
            return Err(RuleError::Storage(Box::new(std::io::Error::other(
                "rules unreadable",
            ))));
        }
        self.inner.resolve(recipient).await
    }
}

/// The ports of one test, shared by every engine started on them.
pub struct World {
    pub rules: Arc<CountingRules>,
    pub log: Arc<MemoryEmailLog>,
    pub emails: Arc<dyn EmailStore>,
    pub queue: Arc<MemoryDeliveryQueue>,
    pub mailer: Arc<ScriptedMailer>,
    pub clock: Arc<TestClock>,
}

/// A started engine.
pub struct Running {
    pub handoff: Arc<dyn AcceptedListener>,
    pub evaluator: ForwardEvaluator,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Asks for a graceful stop.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until every task has stopped.
    pub async fn stopped(self) {
        self.tasks.join_all().await;
    }
}

pub const LEASE: Duration = Duration::from_secs(15 * 60);

impl World {
    pub fn new() -> World {
        let log = Arc::new(MemoryEmailLog::new());
        World {
            rules: Arc::new(CountingRules::default()),
            emails: Arc::new(SplitEmailStore::new(
                Arc::new(MemoryBodyStore::new()),
                log.clone(),
            )),
            log,
            queue: Arc::new(MemoryDeliveryQueue::new()),
            mailer: Arc::new(ScriptedMailer::default()),
            clock: Arc::new(TestClock {
                base: SystemTime::now(),
                start: Instant::now(),
            }),
        }
    }

    /// Now, by the engine's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Mail for `recipient` goes to `destination`.
    pub async fn rule(&self, recipient: &str, destination: &str) {
        self.rule_to_all(recipient, &[destination]).await;
    }

    /// Mail for `recipient` goes to every one of `destinations`.
    pub async fn rule_to_all(&self, recipient: &str, destinations: &[&str]) {
        let pattern = RecipientPattern::parse(recipient).unwrap();
        let destinations = destinations.iter().map(|d| addr(d)).collect();
        let rule = Rule::new(pattern, destinations, 10).unwrap();
        let _ = self.rules.delete(rule.pattern()).await;
        self.rules.create(rule).await.unwrap();
    }

    /// Stores an email for `recipient`, recorded as not yet evaluated.
    pub async fn receive(&self, recipient: &str) -> ReceivedEmail {
        let mut writer = self.emails.begin().await.unwrap();
        writer
            .write(b"Subject: test\r\n\r\nbody\r\n")
            .await
            .unwrap();
        let email = NewEmail {
            envelope: Envelope {
                sender: Some(addr("someone@example.org")),
                recipients: vec![addr(recipient)],
            },
            peer: Some("192.0.2.1:5000".into()),
            helo: Some("client.test".into()),
            tls: false,
            encoding: mailfwd_domain::Encoding::default(),
        };
        writer.commit(email).await.unwrap()
    }

    /// An engine on these ports, not started.
    pub fn forwarder(&self, config: ForwarderConfig) -> Forwarder {
        let evaluator = ForwardEvaluator::new(self.rules.clone(), self.queue.clone());
        let deliverer = Deliverer::new(
            Arc::clone(&self.emails),
            self.queue.clone(),
            self.mailer.clone(),
            RetryPolicy::default(),
            "mx.mailfwd.test".into(),
        )
        .with_clock(self.clock.clone());
        Forwarder::new(Arc::clone(&self.emails), evaluator, deliverer, config)
    }

    /// Starts an engine on these ports.
    pub async fn start(&self, config: ForwarderConfig) -> Running {
        let forwarder = self.forwarder(config);
        let (handoff, evaluator) = (forwarder.handoff(), forwarder.evaluator());
        let (stop, stopped) = watch::channel(false);
        let tasks = forwarder.start(stopped).await;
        Running {
            handoff,
            evaluator,
            stop,
            tasks,
        }
    }

    /// The job of `email`, once there is one.
    pub async fn find_job(&self, email: &ReceivedEmail) -> Option<DeliveryJob> {
        self.queue.jobs_of(email.id).await.unwrap().pop()
    }

    /// The one job of `email`.
    pub async fn job(&self, email: &ReceivedEmail) -> DeliveryJob {
        let mut jobs = self.queue.jobs_of(email.id).await.unwrap();
        assert_eq!(jobs.len(), 1, "one job per email in these tests");
        jobs.remove(0)
    }

    /// Waits (on the test's clock, yielding to the engine) until `done` holds.
    pub async fn until(&self, what: &str, mut done: impl AsyncFnMut() -> bool) {
        let started = Instant::now();
        while !done().await {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "never happened: {what}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// An engine configuration with `workers` workers and the other settings as shipped.
pub fn config(workers: usize) -> ForwarderConfig {
    ForwarderConfig {
        workers,
        lease: LEASE,
        ..ForwarderConfig::default()
    }
}
