//! Storage that fails or is overloaded: the client hears 451 and nothing is kept.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::email::{
    BodyReader, BodyStore, BodyWriter, EmailId, EmailLog, EmailPage, EmailQuery, StoreError,
    UnevaluatedStats,
};
use mailfwd_domain::memory::{MemoryBodyStore, MemoryEmailLog};
use mailfwd_domain::{
    EmailAddress, IngestLimits, ReceivedEmail, RecipientPattern, Rule, RuleError, RulePage,
    RuleQuery, RuleStore,
};

use crate::harness::{Mailfwd, config};

const MESSAGE: &[u8] = b"Subject: x\r\n\r\nbody\r\n.\r\n";

fn broken() -> StoreError {
    StoreError::storage(io::Error::other("disk on fire"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fail {
    Overloaded,
    Write,
    Commit,
}

/// Memory bodies that fail in one chosen way.
struct FailingBodies {
    inner: MemoryBodyStore,
    fail: Fail,
}

struct FailingWriter {
    inner: Box<dyn BodyWriter>,
    fail: Fail,
}

#[async_trait]
impl BodyWriter for FailingWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        if self.fail == Fail::Write {
            return Err(broken());
        }
        self.inner.write(chunk).await
    }
    async fn commit(self: Box<Self>) -> Result<u64, StoreError> {
        if self.fail == Fail::Commit {
            return Err(broken());
        }
        self.inner.commit().await
    }
    async fn abort(self: Box<Self>) {
        self.inner.abort().await;
    }
}

#[async_trait]
impl BodyStore for FailingBodies {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError> {
        if self.fail == Fail::Overloaded {
            return Err(StoreError::Overloaded {
                retry_after: Duration::from_millis(2500),
            });
        }
        Ok(Box::new(FailingWriter {
            inner: self.inner.create(id).await?,
            fail: self.fail,
        }))
    }
    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        self.inner.open(id).await
    }
    async fn delete(&self, id: &EmailId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }
}

async fn failing(fail: Fail) -> Mailfwd {
    let bodies = FailingBodies {
        inner: MemoryBodyStore::new(),
        fail,
    };
    Mailfwd::on(
        IngestLimits::default(),
        Arc::new(bodies),
        Arc::new(MemoryEmailLog::new()),
    )
    .await
}

#[tokio::test]
async fn a_failing_body_store_answers_451_and_keeps_nothing() {
    for fail in [Fail::Write, Fail::Commit] {
        let mailfwd = failing(fail).await;
        let mut client = mailfwd.connect(config()).await;
        client.envelope("a@b.test", &["sales@acme.test"]).await;
        assert_eq!(
            client.data(MESSAGE).await.line(),
            "451 4.3.0 Temporary storage failure"
        );
        // The whole body was read: the session goes on in step.
        client.cmd("NOOP", 250).await;
        client.envelope("a@b.test", &["sales@acme.test"]).await;
        client.send("BDAT 4\r\nab\r\nBDAT 4 LAST\r\ncd\r\n").await;
        let first = client.reply().await;
        if fail == Fail::Write {
            assert_eq!(first.line(), "451 4.3.0 Temporary storage failure");
            // The pipelined last chunk is discarded in the refusal's class: the message
            // failed temporarily, so its sender must retry, not bounce it.
            let discarded = client.expect_reply(451).await;
            assert!(
                discarded.line().contains("octets discarded"),
                "{discarded:?}"
            );
        } else {
            assert_eq!(first.code, 250);
            assert_eq!(
                client.reply().await.line(),
                "451 4.3.0 Temporary storage failure"
            );
        }
        client.cmd("QUIT", 221).await;
        assert!(mailfwd.stored().await.is_empty());
    }
}

#[tokio::test]
async fn an_overloaded_store_answers_451_before_the_body() {
    let mailfwd = failing(Fail::Overloaded).await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    // No 354: the client never sends the body.
    assert_eq!(
        client.cmd("DATA", 451).await.line(),
        "451 4.7.1 Too much mail; try again in 3 seconds"
    );
    client.send("BDAT 8 LAST\r\nRSET\r\n\r\n").await;
    assert_eq!(
        client.reply().await.line(),
        "451 4.7.1 Too much mail; try again in 3 seconds"
    );
    // The chunk was thrown away, not run: the next reply is NOOP's.
    client.cmd("NOOP", 250).await;
    assert!(mailfwd.stored().await.is_empty());
}

/// A received log that cannot record.
struct FailingLog(MemoryEmailLog);

#[async_trait]
impl EmailLog for FailingLog {
    async fn record(&self, _: &ReceivedEmail) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        self.0.get(id).await
    }
    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        self.0.list(query).await
    }
    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        self.0.mark_evaluated(id).await
    }
    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        self.0.unevaluated(after, limit).await
    }
    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        self.0.unevaluated_stats().await
    }
    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        self.0.forget(id).await
    }
}

#[tokio::test]
async fn a_failing_log_answers_451_and_the_body_is_not_visible() {
    let mailfwd = Mailfwd::on(
        IngestLimits::default(),
        Arc::new(MemoryBodyStore::new()),
        Arc::new(FailingLog(MemoryEmailLog::new())),
    )
    .await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    assert_eq!(
        client.data(MESSAGE).await.line(),
        "451 4.3.0 Temporary storage failure"
    );
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}

/// Rules that cannot be read.
struct BrokenRules;

#[async_trait]
impl RuleStore for BrokenRules {
    async fn create(&self, _: Rule) -> Result<Rule, RuleError> {
        Err(RuleError::storage(io::Error::other("down")))
    }
    async fn get(&self, _: &RecipientPattern) -> Result<Rule, RuleError> {
        Err(RuleError::storage(io::Error::other("down")))
    }
    async fn delete(&self, _: &RecipientPattern) -> Result<(), RuleError> {
        Err(RuleError::storage(io::Error::other("down")))
    }
    async fn list(&self, _: &RuleQuery) -> Result<RulePage, RuleError> {
        Err(RuleError::storage(io::Error::other("down")))
    }
    async fn upsert_many(&self, _: Vec<Rule>) -> Result<u64, RuleError> {
        Err(RuleError::storage(io::Error::other("down")))
    }
    async fn resolve(&self, _: &EmailAddress) -> Result<Option<Rule>, RuleError> {
        Err(RuleError::storage(io::Error::other("down")))
    }
}

#[tokio::test]
async fn unreadable_rules_answer_451_at_rcpt() {
    let mailfwd = Mailfwd::on_rules(
        IngestLimits::default(),
        Arc::new(BrokenRules),
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryEmailLog::new()),
    );
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &[]).await;
    let reply = client.cmd("RCPT TO:<sales@acme.test>", 451).await;
    assert_eq!(reply.line(), "451 4.3.0 Temporary storage failure");
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}
