//! An [`EmailStore`] made of a body store and a received log.

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

use super::{
    BodyReader, BodyStore, BodyWriter, EmailId, EmailLog, EmailPage, EmailQuery, EmailStore,
    EmailWriter, NewEmail, ReceivedEmail, StoreError, UnevaluatedStats, now_millis,
};

/// Bodies in one store, records in another. The body is made durable before the record
/// is written, so a record always has its body.
///
/// A log that keeps small bodies itself ([`EmailLog::inline_limit`]) gets every body up
/// to that size with its record, in the record's own write: the body is held in memory
/// until then, and goes to the body store only once it outgrows the limit. Most mail is
/// small, so most mail costs one commit and no file, object or fsync of its own.
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
    body: Body,
    bodies: Arc<dyn BodyStore>,
    log: Arc<dyn EmailLog>,
}

/// Where the body being written goes.
enum Body {
    /// Into the record, unless it grows past `limit` bytes.
    Inline { bytes: Vec<u8>, limit: usize },
    /// Into the body store.
    Stored(Box<dyn BodyWriter>),
}

/// A body read from the record that kept it.
struct InlineReader(Option<Bytes>);

#[async_trait]
impl BodyReader for InlineReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.take())
    }
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
        match &mut self.body {
            Body::Inline { bytes, limit } if bytes.len() + chunk.len() <= *limit => {
                bytes.extend_from_slice(chunk);
                Ok(())
            }
            Body::Inline { bytes, .. } => {
                // Outgrown: what came so far goes first, the rest streams on.
                let mut stored = self.bodies.create(&self.id).await?;
                stored.write(bytes).await?;
                stored.write(chunk).await?;
                self.body = Body::Stored(stored);
                Ok(())
            }
            Body::Stored(stored) => stored.write(chunk).await,
        }
    }

    async fn commit(self: Box<Self>, email: NewEmail) -> Result<ReceivedEmail, StoreError> {
        let SplitWriter {
            id,
            body,
            bodies,
            log,
        } = *self;
        let stored = match body {
            Body::Inline { bytes, .. } => {
                let received = ReceivedEmail {
                    id,
                    email,
                    size: bytes.len() as u64,
                    received_at: now_millis(),
                };
                // One write: nothing to take back if it fails. But a commit whose
                // answer was lost may have written it: then it is accepted, or the
                // client would send it again and it would be forwarded twice.
                return match log.record_with_body(&received, Bytes::from(bytes)).await {
                    Ok(()) => Ok(received),
                    Err(error) => match log.get(&id).await {
                        Ok(_) => Ok(received),
                        Err(_) => Err(error),
                    },
                };
            }
            Body::Stored(stored) => stored,
        };
        let size = stored.commit().await?;
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
        if let Body::Stored(stored) = self.body {
            stored.abort().await;
        }
    }
}

#[async_trait]
impl EmailStore for SplitEmailStore {
    async fn begin(&self) -> Result<Box<dyn EmailWriter>, StoreError> {
        let id = EmailId::new();
        let body = match self.log.inline_limit() {
            0 => Body::Stored(self.bodies.create(&id).await?),
            limit => Body::Inline {
                bytes: Vec::new(),
                limit,
            },
        };
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
        // A body kept in its record is asked for first: a log that keeps none answers
        // without a query, and one that does, with one look-up by primary key.
        if let Some(body) = self.log.inline_body(id).await? {
            return Ok(Box::new(InlineReader(Some(body))));
        }
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

    /// The record goes first, then the body: a record never points at nothing. The body
    /// is marked pending before, so that a delete that fails leaves it to the sweep.
    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        self.bodies.forgetting(id).await?;
        if !self.log.forget(id).await? {
            self.bodies.accepted(id).await;
            return Ok(false);
        }
        self.bodies.delete(id).await?;
        Ok(true)
    }
}

#[cfg(test)]
#[path = "inline_tests.rs"]
mod inline_tests;
