//! The email store decides at MAIL FROM whether it takes new mail from this client:
//! smtp-in only translates its answer, before any body is sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::email::{
    BodyReader, Client as StoreClient, EmailId, EmailPage, EmailQuery, EmailWriter, Shedding,
    StoreError, UnevaluatedStats,
};
use mailfwd_domain::{EmailStore, Ingest, IngestLimits, ReceivedEmail};
use mailfwd_smtp_in::SmtpConfig;
use mailfwd_testkit::Stores;

use crate::harness::{Mailfwd, config};

/// A memory store whose `admit` gives a chosen answer and remembers who asked.
struct Gate {
    inner: Arc<dyn EmailStore>,
    answer: fn() -> Result<(), StoreError>,
    asked: Mutex<Vec<StoreClient>>,
}

#[async_trait]
impl EmailStore for Gate {
    async fn admit(&self, client: &StoreClient) -> Result<(), StoreError> {
        self.asked.lock().unwrap().push(client.clone());
        (self.answer)()
    }
    async fn begin(&self) -> Result<Box<dyn EmailWriter>, StoreError> {
        self.inner.begin().await
    }
    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        self.inner.get(id).await
    }
    async fn open_body(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        self.inner.open_body(id).await
    }
    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        self.inner.list(query).await
    }
    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        self.inner.mark_evaluated(id).await
    }
    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        self.inner.unevaluated(after, limit).await
    }
    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        self.inner.unevaluated_stats().await
    }
    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        self.inner.forget(id).await
    }
}

async fn gated(answer: fn() -> Result<(), StoreError>) -> (Mailfwd, Arc<Gate>) {
    let stores = Stores::memory();
    stores
        .add_rule("sales@acme.test", &["dest@elsewhere.test"])
        .await;
    let gate = Arc::new(Gate {
        inner: Arc::clone(&stores.emails),
        answer,
        asked: Mutex::new(Vec::new()),
    });
    let emails: Arc<dyn EmailStore> = gate.clone();
    let mailfwd = Mailfwd {
        ingest: Ingest::new(stores.rules, Arc::clone(&emails), IngestLimits::default()),
        emails,
    };
    (mailfwd, gate)
}

#[tokio::test]
async fn a_store_shedding_load_refuses_at_mail_from_with_452() {
    let (mailfwd, gate) = gated(|| {
        Err(StoreError::InsufficientStorage(Shedding::DiskFull {
            free: 1,
            floor: 2,
        }))
    })
    .await;
    let mut client = mailfwd.connect(config()).await;
    client.ehlo().await;
    let refused = client.cmd("MAIL FROM:<a@b.test>", 452).await;
    assert_eq!(refused.line(), "452 4.3.1 Insufficient system storage");
    // No transaction was opened.
    client.cmd("RCPT TO:<sales@acme.test>", 503).await;
    client.cmd("QUIT", 221).await;
    let peer = StoreClient::from_peer(crate::harness::PEER);
    assert_eq!(*gate.asked.lock().unwrap(), [peer]);
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn a_store_asking_to_slow_down_refuses_at_mail_from_with_the_delay() {
    let (mailfwd, _gate) = gated(|| {
        Err(StoreError::Overloaded {
            retry_after: Duration::from_millis(1200),
        })
    })
    .await;
    let mut client = mailfwd
        .connect(SmtpConfig {
            max_errors: 3,
            ..config()
        })
        .await;
    client.ehlo().await;
    let refused = client.cmd("MAIL FROM:<a@b.test>", 451).await;
    assert_eq!(
        refused.line(),
        "451 4.7.1 Too much mail; try again in 2 seconds"
    );
    // The client may try again at once, but a client that keeps asking is sent away
    // like one that keeps failing: each refusal counts against its error budget.
    client.cmd("MAIL FROM:<a@b.test>", 451).await;
    client.cmd("MAIL FROM:<a@b.test>", 451).await;
    assert_eq!(
        client.reply().await.line(),
        "421 4.7.0 Too many errors, closing connection"
    );
    assert!(client.is_closed().await);
    client.finished().await;
    assert!(mailfwd.stored().await.is_empty());
}
