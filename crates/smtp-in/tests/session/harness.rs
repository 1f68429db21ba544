//! A mailfwd's ingest side on in-memory stores, driven by the testkit's SMTP client
//! over an in-memory stream.

use std::net::SocketAddr;
use std::sync::Arc;

use mailfwd_domain::email::{BodyStore, EmailLog};
use mailfwd_domain::memory::MemoryRuleStore;
use mailfwd_domain::{EmailStore, Ingest, IngestLimits, ReceivedEmail, RuleStore};
use mailfwd_smtp_in::{SmtpConfig, run_session};
use mailfwd_testkit::Stores;

pub use mailfwd_testkit::client::{Client, Reply, queued_id};
pub use mailfwd_testkit::fixtures::addr;

/// The address the in-memory client seems to connect from.
pub const PEER: &str = "192.0.2.7:4242";

pub fn config() -> SmtpConfig {
    SmtpConfig {
        hostname: "mx.test".into(),
        ..SmtpConfig::default()
    }
}

/// mailfwd's ingest side: rules for `sales@acme.test` and `info@acme.test`.
pub struct Mailfwd {
    pub ingest: Ingest,
    pub emails: Arc<dyn EmailStore>,
}

impl Mailfwd {
    pub async fn new() -> Self {
        Mailfwd::with(IngestLimits::default()).await
    }

    pub async fn with(limits: IngestLimits) -> Self {
        Mailfwd::on_stores(limits, Stores::memory()).await
    }

    pub async fn on(
        limits: IngestLimits,
        bodies: Arc<dyn BodyStore>,
        log: Arc<dyn EmailLog>,
    ) -> Self {
        let stores = Stores::on(Arc::new(MemoryRuleStore::new()), bodies, log);
        Mailfwd::on_stores(limits, stores).await
    }

    async fn on_stores(limits: IngestLimits, stores: Stores) -> Self {
        for pattern in ["sales@acme.test", "info@acme.test"] {
            stores.add_rule(pattern, &["dest@elsewhere.test"]).await;
        }
        Mailfwd::around(limits, stores)
    }

    pub fn on_rules(
        limits: IngestLimits,
        rules: Arc<dyn RuleStore>,
        bodies: Arc<dyn BodyStore>,
        log: Arc<dyn EmailLog>,
    ) -> Self {
        Mailfwd::around(limits, Stores::on(rules, bodies, log))
    }

    fn around(limits: IngestLimits, stores: Stores) -> Self {
        Mailfwd {
            ingest: Ingest::new(stores.rules, Arc::clone(&stores.emails), limits),
            emails: stores.emails,
        }
    }

    /// Every email stored, with its body, read back through the [`EmailStore`].
    pub async fn stored(&self) -> Vec<(ReceivedEmail, Vec<u8>)> {
        mailfwd_testkit::stores::stored(self.emails.as_ref()).await
    }

    /// A session over an in-memory stream, its greeting already read.
    pub async fn connect(&self, config: SmtpConfig) -> Client {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let ingest = self.ingest.clone();
        let peer: SocketAddr = PEER.parse().unwrap();
        let session =
            tokio::spawn(async move { run_session(server, peer, &ingest, &config).await });
        let mut client = Client::new(Box::new(client), Some(session));
        client.expect_reply(220).await;
        client
    }
}
