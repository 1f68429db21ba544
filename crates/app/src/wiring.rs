//! Building the ports from the configuration: which adapter, wrapped in which layers.

use std::sync::Arc;

use mailfwd_domain::bounce::Bouncer;
use mailfwd_domain::delivery::{Deliverer, DeliveryQueue, ForwardEvaluator, Mailer};
use mailfwd_domain::email::SplitEmailStore;
use mailfwd_domain::{EmailStore, Ingest, IngestLimits, MessagePolicy, OwnAddresses, RuleStore};
use mailfwd_forwarder::QueueWaker;
use mailfwd_layers::{CachedRuleStore, DiskFreeSpace, ThrottledEmailStore};
use mailfwd_postgres::{Change, ChangeListener, ListenerSettings, PgDatabase};
use mailfwd_smtp_out::{MailerConfig, MailerError, SmtpMailer};
use thiserror::Error;

use crate::config::Config;
use crate::storage::{Storage, StorageError};

/// Why the ports could not be built.
#[derive(Debug, Error)]
pub enum WiringError {
    /// A store could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The SRS secret could not be had.
    #[error(transparent)]
    Secret(#[from] crate::config::SecretError),
    /// The SMTP mailer could not be set up.
    #[error("cannot set up outbound SMTP: {0}")]
    Mailer(#[from] MailerError),
}

/// The ports every listener and worker shares.
pub struct Ports {
    /// Forwarding rules, behind the rule cache.
    pub rules: Arc<dyn RuleStore>,
    /// Received emails: bodies and the received log, behind the store's own rates and
    /// load shedding (see [`ThrottledEmailStore`]).
    pub emails: Arc<dyn EmailStore>,
    /// The same, for the sweep of bodies never recorded (see [`crate::orphans`]).
    pub split_emails: SplitEmailStore,
    /// Delivery jobs.
    pub queue: Arc<dyn DeliveryQueue>,
    /// mailfwd's own addresses: SRS and postmaster.
    pub own: Arc<OwnAddresses>,
    /// On PostgreSQL, hears what other instances do (see [`Ports::listen_for_changes`]);
    /// kept for as long as the ports are.
    pub changes: Option<ChangeListener>,
    /// The rule cache in front of [`Ports::rules`].
    rule_cache: Arc<CachedRuleStore>,
    /// The database, when it is PostgreSQL.
    postgres: Option<PgDatabase>,
}

impl Ports {
    /// Opens the database and the email store named by the configuration (see
    /// [`Storage::open`]), puts the rule cache in front of the rules and the throttle
    /// in front of the email store.
    ///
    /// # Errors
    /// [`WiringError`] naming the store or the setting at fault.
    pub async fn open(config: &Config) -> Result<Ports, WiringError> {
        let Storage { database, bodies } = Storage::open(config).await?;
        let rule_cache = Arc::new(CachedRuleStore::new(database.rules, config.rule_cache()));
        let split_emails = SplitEmailStore::new(bodies, database.log);
        let emails = protected(
            Arc::new(split_emails.clone()),
            config,
            Arc::clone(&database.queue),
        );
        Ok(Ports {
            rules: Arc::clone(&rule_cache) as Arc<dyn RuleStore>,
            rule_cache,
            postgres: database.postgres,
            changes: None,
            emails,
            split_emails,
            queue: database.queue,
            own: Arc::new(config.own_addresses()?),
        })
    }

    /// On PostgreSQL, starts hearing what other instances do: rule changes, dropped
    /// from the rule cache, and jobs they left due, for `waker` to wake this instance's
    /// idle workers. Nothing on SQLite, which one instance owns.
    pub fn listen_for_changes(&mut self, waker: QueueWaker) {
        let Some(postgres) = &self.postgres else {
            return;
        };
        let invalidate = self.rule_cache.invalidator();
        self.changes = Some(ChangeListener::spawn(
            postgres,
            ListenerSettings::default(),
            move |change| match change {
                Change::Rules(invalidation) => invalidate(invalidation),
                Change::JobsDue(jobs) => waker.jobs_due(jobs),
            },
        ));
    }

    /// The ingest service over these ports.
    #[must_use]
    pub fn ingest(&self, config: &Config) -> Ingest {
        let limits = IngestLimits {
            max_recipients: config.max_recipients,
            message: MessagePolicy {
                max_size: config.max_message_size,
                bare_line_endings: config.bare_line_endings.into(),
                max_header_section_size: config.max_header_size,
                max_line_length: config.max_message_line_length,
                ..MessagePolicy::default()
            },
        };
        Ingest::new(Arc::clone(&self.rules), Arc::clone(&self.emails), limits)
            .with_own_addresses(Arc::clone(&self.own))
    }

    /// The bouncer: delivery status notifications stored through `ingest` (which must
    /// be the one that hands accepted mail to the forwarder).
    #[must_use]
    pub fn bouncer(&self, config: &Config, ingest: Ingest) -> Bouncer {
        Bouncer::new(
            ingest,
            Arc::clone(&self.emails),
            Arc::clone(&self.own),
            config.max_header_size,
        )
    }

    /// The forward evaluator over these ports.
    #[must_use]
    pub fn evaluator(&self, config: &Config) -> ForwardEvaluator {
        ForwardEvaluator::new(Arc::clone(&self.rules), Arc::clone(&self.queue))
            .with_limits(config.expansion_limits())
            .with_own_addresses(Arc::clone(&self.own))
    }

    /// The deliverer: these ports and an SMTP mailer (routes, then the relay host or
    /// MX lookup).
    ///
    /// # Errors
    /// [`WiringError`] if the mailer or the retry schedule cannot be set up.
    pub fn deliverer(&self, config: &Config) -> Result<Deliverer, WiringError> {
        let mailer_config = MailerConfig {
            hostname: config.hostname(),
            relay: config.relay.clone(),
            routes: config.routes(),
            deliver_to_private_addresses: config.deliver_to_private_addresses,
            mx_address_limit: config.mx_address_limit,
            mx_session_limit: config.mx_session_limit,
            own_addresses: vec![config.smtp_listen],
            connect_timeout: config.smtp_out_connect_timeout,
            timeouts: config.smtp_out_timeouts(),
            ..MailerConfig::default()
        };
        let mailer: Arc<dyn Mailer> = Arc::new(SmtpMailer::new(mailer_config)?);
        let policy = config.retry_policy();
        Ok(Deliverer::new(
            Arc::clone(&self.emails),
            Arc::clone(&self.queue),
            mailer,
            policy,
            config.hostname(),
        )
        .with_own_addresses(Arc::clone(&self.own)))
    }
}

/// `emails` behind its rates and load shedding: the free space of the disk holding the
/// data directory and the backlog of `queue`, as configured.
fn protected(
    emails: Arc<dyn EmailStore>,
    config: &Config,
    queue: Arc<dyn DeliveryQueue>,
) -> Arc<dyn EmailStore> {
    let mut store = ThrottledEmailStore::new(emails, &config.throttle());
    let floor = config.disk_free_floor();
    if floor > 0 {
        let disk = Arc::new(DiskFreeSpace::new(&config.data_dir));
        store = store.with_disk_floor(disk, floor);
    }
    if let Some(max) = config.max_backlog {
        store = store.with_max_backlog(queue, max);
    }
    Arc::new(store)
}
