//! An [`EmailStore`] made of a body store and a received log.

use async_trait::async_trait;
use std::sync::Arc;

use super::{
    BodyReader, BodyStore, BodyWriter, EmailId, EmailLog, EmailPage, EmailQuery, EmailStore,
    EmailWriter, NewEmail, ReceivedEmail, StoreError, UnevaluatedStats, now_millis,
};

/// Bodies in one store, records in another. The body is made durable before the record
/// is written, so a record always has its body; a crash between the two leaves only
/// an unreferenced body, never a record without one.
#[derive(Clone)]
pub struct SplitEmailStore {
    bodies: Arc<dyn BodyStore>,
    log: Arc<dyn EmailLog>,
}

impl SplitEmailStore {
    /// Combines a body store and a received log.
    #[must_use]
    pub fn new(bodies: Arc<dyn BodyStore>, log: Arc<dyn EmailLog>) -> Self {
        SplitEmailStore { bodies, log }
    }
}

struct SplitWriter {
    id: EmailId,
    body: Box<dyn BodyWriter>,
    log: Arc<dyn EmailLog>,
}

#[async_trait]
impl EmailWriter for SplitWriter {
    fn id(&self) -> EmailId {
        self.id
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.body.write(chunk).await
    }

    async fn commit(self: Box<Self>, email: NewEmail) -> Result<ReceivedEmail, StoreError> {
        let size = self.body.commit().await?;
        let received = ReceivedEmail {
            id: self.id,
            email,
            size,
            received_at: now_millis(),
        };
        self.log.record(&received).await?;
        Ok(received)
    }

    async fn abort(self: Box<Self>) {
        self.body.abort().await;
    }
}

#[async_trait]
impl EmailStore for SplitEmailStore {
    async fn begin(&self) -> Result<Box<dyn EmailWriter>, StoreError> {
        let id = EmailId::new();
        let body = self.bodies.create(&id).await?;
        Ok(Box::new(SplitWriter {
            id,
            body,
            log: Arc::clone(&self.log),
        }))
    }

    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        self.log.get(id).await
    }

    async fn open_body(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        // No second read of the record: callers hold it already (delivery reads the
        // record, then the body), and an orphan body's id was never handed to anyone.
        self.bodies.open(id).await
    }

    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        self.log.list(query).await
    }

    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        self.log.mark_evaluated(id).await
    }

    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        self.log.unevaluated(after, limit).await
    }

    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        self.log.unevaluated_stats().await
    }

    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        if !self.log.forget(id).await? {
            return Ok(false);
        }
        self.bodies.delete(id).await?;
        Ok(true)
    }
}
