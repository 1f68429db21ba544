//! An [`EmailStore`] made of a body store and a received log.

use async_trait::async_trait;
use std::sync::Arc;

use super::{
    BodyReader, BodyStore, BodyWriter, EmailId, EmailLog, EmailPage, EmailQuery, EmailStore,
    EmailWriter, NewEmail, ReceivedEmail, StoreError, UnevaluatedStats, now_millis,
};

/// Bodies in one store, records in another. The body is made durable before the record
/// is written, so a record always has its body.
///
/// A crash between the two, or a record that fails, would leave a body without a
/// record: an orphan nobody will ever read or delete. So a failed record takes its body
/// back, and stores that can mark bodies pending (S3, see [`BodyStore::pending`]) hear
/// when the record is durable ([`BodyStore::accepted`]); what a crash leaves marked is
/// found and removed by [`SplitEmailStore::sweep_orphans`].
#[derive(Clone)]
pub struct SplitEmailStore {
    pub(super) bodies: Arc<dyn BodyStore>,
    pub(super) log: Arc<dyn EmailLog>,
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
    bodies: Arc<dyn BodyStore>,
    log: Arc<dyn EmailLog>,
}

/// The record of a committed body failed with `error`: finds out whether it was written
/// after all (a commit whose answer was lost), and if it surely was not, deletes the body.
///
/// The body is deleted only when the log says `NotFound`: deleting it on any error could
/// leave a record, committed despite the error, pointing at nothing. When the log cannot
/// say, body and marker stay for the sweep to decide once the log is back.
async fn after_failed_record(
    bodies: &dyn BodyStore,
    log: &dyn EmailLog,
    received: ReceivedEmail,
    error: StoreError,
) -> Result<ReceivedEmail, StoreError> {
    match log.get(&received.id).await {
        Ok(_) => {
            bodies.accepted(&received.id).await;
            Ok(received)
        }
        Err(StoreError::NotFound(_)) => {
            // Best effort: a body left here keeps its marker, so the sweep retries.
            let _ = bodies.delete(&received.id).await;
            Err(error)
        }
        Err(_) => Err(error),
    }
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
        let SplitWriter {
            id,
            body,
            bodies,
            log,
        } = *self;
        let size = body.commit().await?;
        let received = ReceivedEmail {
            id,
            email,
            size,
            received_at: now_millis(),
        };
        match log.record(&received).await {
            Ok(()) => {
                // Cheap by contract (stores drop their marker in the background), so
                // the client's 250 does not wait for it.
                bodies.accepted(&id).await;
                Ok(received)
            }
            Err(error) => after_failed_record(&*bodies, &*log, received, error).await,
        }
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
            bodies: Arc::clone(&self.bodies),
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
