//! One set of the ports a mailfwd needs, on memory or on the real adapters (SQLite and
//! files in a temporary directory, opened through the adapters' own openers).

use std::sync::Arc;

use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_domain::email::{BodyStore, EmailId, EmailLog, EmailQuery, SplitEmailStore};
use mailfwd_domain::memory::{
    MemoryBodyStore, MemoryDeliveryQueue, MemoryEmailLog, MemoryRuleStore,
};
use mailfwd_domain::{EmailStore, ReceivedEmail, Rule, RuleStore};
use mailfwd_s3::ObjectBodyStore;
use mailfwd_sqlite::Database;
use tempfile::TempDir;

use crate::fixtures::rule;

/// Rules, emails and the delivery queue, and the directory the real ones live in.
pub struct Stores {
    /// Forwarding rules.
    pub rules: Arc<dyn RuleStore>,
    /// Bodies and the received log.
    pub emails: Arc<dyn EmailStore>,
    /// Delivery jobs.
    pub queue: Arc<dyn DeliveryQueue>,
    /// Keeps the real stores' directory until these are dropped.
    _dir: Option<TempDir>,
}

impl Stores {
    /// Everything in memory.
    #[must_use]
    pub fn memory() -> Stores {
        Stores::memory_with_rules(Arc::new(MemoryRuleStore::new()))
    }

    /// `rules`, with everything else in memory.
    #[must_use]
    pub fn memory_with_rules(rules: Arc<dyn RuleStore>) -> Stores {
        Stores::on(
            rules,
            Arc::new(MemoryBodyStore::new()),
            Arc::new(MemoryEmailLog::new()),
        )
    }

    /// These rules, bodies and log (failing ones, say), with a queue in memory.
    #[must_use]
    pub fn on(
        rules: Arc<dyn RuleStore>,
        bodies: Arc<dyn BodyStore>,
        log: Arc<dyn EmailLog>,
    ) -> Stores {
        Stores {
            rules,
            emails: Arc::new(SplitEmailStore::new(bodies, log)),
            queue: Arc::new(MemoryDeliveryQueue::new()),
            _dir: None,
        }
    }

    /// The real stores in a fresh temporary directory, removed when these are dropped:
    /// SQLite (`mailfwd.db`) for rules, the received log and the queue; files
    /// (`emails/`) for bodies.
    pub async fn real() -> Stores {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database = Database::open(&format!(
            "sqlite://{}",
            dir.path().join("mailfwd.db").display()
        ))
        .await
        .expect("open a fresh SQLite database");
        let bodies_url = format!("file://{}", dir.path().join("emails").display());
        let bodies = ObjectBodyStore::from_url(&bodies_url).expect("open a body directory");
        Stores {
            rules: Arc::new(database.rules()),
            emails: Arc::new(SplitEmailStore::new(
                Arc::new(bodies),
                Arc::new(database.email_log()),
            )),
            queue: Arc::new(database.queue()),
            _dir: Some(dir),
        }
    }

    /// Adds the rule `pattern` → `destinations`.
    pub async fn add_rule(&self, pattern: &str, destinations: &[&str]) -> Rule {
        self.rules
            .create(rule(pattern, destinations))
            .await
            .unwrap_or_else(|e| panic!("create the rule for '{pattern}': {e}"))
    }
}

/// Every email in `emails` (the first thousand), with its body, read back through the
/// port.
pub async fn stored(emails: &dyn EmailStore) -> Vec<(ReceivedEmail, Vec<u8>)> {
    let page = emails
        .list(&EmailQuery {
            limit: 1000,
            ..EmailQuery::default()
        })
        .await
        .expect("list the stored emails");
    let mut stored = Vec::new();
    for email in page.emails {
        let body = body(emails, &email.id).await;
        stored.push((email, body));
    }
    stored
}

/// The body of `id`, read back through the port in its chunks.
pub async fn body(emails: &dyn EmailStore, id: &EmailId) -> Vec<u8> {
    let mut reader = emails
        .open_body(id)
        .await
        .unwrap_or_else(|e| panic!("open the body of {id}: {e}"));
    let mut body = Vec::new();
    while let Some(chunk) = reader
        .next_chunk()
        .await
        .unwrap_or_else(|e| panic!("read the body of {id}: {e}"))
    {
        body.extend_from_slice(&chunk);
    }
    body
}
