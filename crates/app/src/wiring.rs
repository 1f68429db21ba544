//! Building the ports from the configuration: which adapter, wrapped in which layers.

use std::sync::Arc;

use mailfwd_domain::delivery::{Deliverer, DeliveryQueue, ForwardEvaluator, Mailer};
use mailfwd_domain::email::SplitEmailStore;
use mailfwd_domain::{EmailStore, Ingest, IngestLimits, MessagePolicy, RuleStore};
use mailfwd_layers::CachedRuleStore;
use mailfwd_s3::ObjectBodyStore;
use mailfwd_smtp_out::{MailerConfig, SmtpMailer};
use mailfwd_sqlite::{SqliteDeliveryQueue, SqliteEmailLog, SqliteRuleStore, Writer};

use crate::config::Config;

/// The ports every listener and worker shares.
pub struct Ports {
    /// Forwarding rules, behind the rule cache.
    pub rules: Arc<dyn RuleStore>,
    /// Received emails: bodies and the received log.
    pub emails: Arc<dyn EmailStore>,
    /// Delivery jobs.
    pub queue: Arc<dyn DeliveryQueue>,
}

impl Ports {
    /// Opens the database and the email store named by the configuration, creating the
    /// data directory first.
    ///
    /// # Errors
    /// A message naming the store that could not be opened and why.
    pub async fn open(config: &Config) -> Result<Ports, String> {
        let rules = open_rule_store(config).await?;
        let pool = rules.pool().clone();
        // One writer for the received log and the queue: see `mailfwd_sqlite::Writer`.
        let writer = Writer::start(&pool);
        let bodies =
            ObjectBodyStore::from_url(&config.email_store_url()).map_err(|e| e.to_string())?;
        let emails = SplitEmailStore::new(
            Arc::new(bodies),
            Arc::new(SqliteEmailLog::new(pool.clone(), writer.clone())),
        );
        let cache = config.rule_cache();
        Ok(Ports {
            rules: Arc::new(CachedRuleStore::new(Arc::new(rules), cache)),
            emails: Arc::new(emails),
            queue: Arc::new(SqliteDeliveryQueue::new(pool, writer)),
        })
    }

    /// The ingest service over these ports.
    #[must_use]
    pub fn ingest(&self, config: &Config) -> Ingest {
        let limits = IngestLimits {
            max_recipients: config.max_recipients,
            message: MessagePolicy {
                max_size: config.max_message_size,
                bare_line_endings: config.bare_line_endings.into(),
                ..MessagePolicy::default()
            },
        };
        Ingest::new(Arc::clone(&self.rules), Arc::clone(&self.emails), limits)
    }

    /// The forward evaluator over these ports.
    #[must_use]
    pub fn evaluator(&self) -> ForwardEvaluator {
        ForwardEvaluator::new(Arc::clone(&self.rules), Arc::clone(&self.queue))
    }

    /// The deliverer: these ports and an SMTP mailer (relay host or MX lookup).
    ///
    /// # Errors
    /// A message if the mailer or the retry schedule cannot be set up.
    pub fn deliverer(&self, config: &Config) -> Result<Deliverer, String> {
        let mailer_config = MailerConfig {
            hostname: config.hostname(),
            relay: config.relay.clone(),
            ..MailerConfig::default()
        };
        let mailer: Arc<dyn Mailer> =
            Arc::new(SmtpMailer::new(mailer_config).map_err(|e| e.to_string())?);
        let policy = config.retry_policy();
        Ok(Deliverer::new(
            Arc::clone(&self.emails),
            Arc::clone(&self.queue),
            mailer,
            policy,
            config.hostname(),
        ))
    }
}

/// Opens the rule store alone (for `mailfwd import`), creating the data directory first.
///
/// # Errors
/// A message naming the database and why it could not be opened.
pub async fn open_rule_store(config: &Config) -> Result<SqliteRuleStore, String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory '{}': {e}",
            config.data_dir.display()
        )
    })?;
    SqliteRuleStore::connect(&config.database_url())
        .await
        .map_err(|e| e.to_string())
}
