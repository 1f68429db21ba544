//! The ports that own received emails.
//!
//! [`EmailStore`] is what the rest of mailfwd uses. It is usually a [`super::SplitEmailStore`]
//! over two smaller ports: a [`BodyStore`] for the MIME bytes (files, S3) and an
//! [`EmailLog`] for the records (SQLite, PostgreSQL).

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Client, EmailId, EmailPage, EmailQuery, NewEmail, ReceivedEmail, Shedding, StoreError,
    UnevaluatedStats,
};

/// Reads a stored body back, chunk by chunk.
#[async_trait]
pub trait BodyReader: Send {
    /// The next chunk, or `None` at the end.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if reading fails.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError>;
}

/// Writes one body, chunk by chunk; nothing is visible until [`BodyWriter::commit`].
#[async_trait]
pub trait BodyWriter: Send {
    /// Appends a chunk.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if writing fails; the writer is then unusable.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError>;

    /// Makes the body durable and returns its size. When this returns `Ok`, the body
    /// survives a crash of the process or the machine.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if the body could not be made durable; nothing is kept.
    async fn commit(self: Box<Self>) -> Result<u64, StoreError>;

    /// Throws the partial body away.
    async fn abort(self: Box<Self>);
}

/// The owner of email bodies.
#[async_trait]
pub trait BodyStore: Send + Sync {
    /// Starts writing the body of `id`.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] when callers should slow down, or [`StoreError::Storage`].
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError>;

    /// Opens the body of `id` for reading.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError>;

    /// Deletes the body of `id` for good; deleting one that is not there (any more) is
    /// not an error, so a delete that was interrupted can simply be made again.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if it may still be there.
    async fn delete(&self, id: &EmailId) -> Result<(), StoreError>;

    /// Hears that the record of `id` is durable, so its body is no longer at risk of
    /// being an orphan: a store that marks bodies as pending (see
    /// [`BodyStore::pending`]) drops the mark.
    ///
    /// Called between the record's commit and the client's `250`, so it must be cheap:
    /// slow work belongs in the background. Best effort: a failure is logged, never
    /// returned, since a mark left behind costs only a look-up by the next sweep
    /// ([`super::SplitEmailStore::sweep_orphans`]). The default does nothing, for stores
    /// that do not mark bodies.
    async fn accepted(&self, id: &EmailId) {
        let _ = id;
    }

    /// Hears that the record of `id` is about to be deleted, its body next: a store that
    /// marks bodies pending marks this one again, so that a body whose delete then fails
    /// is found by the sweep ([`super::SplitEmailStore::sweep_orphans`]) instead of
    /// staying for ever with nothing pointing at it. The default does nothing, for
    /// stores that do not mark bodies.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if the mark could not be written; the caller then keeps
    /// the record.
    async fn forgetting(&self, id: &EmailId) -> Result<(), StoreError> {
        let _ = id;
        Ok(())
    }

    /// Bodies marked pending before `older_than` and not yet [`BodyStore::accepted`]:
    /// maybe orphans, whose record was never written (a crash between body and record,
    /// or a record that failed). The caller checks each against the log.
    ///
    /// The default is none, for stores that do not mark bodies.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if the marks cannot be listed.
    async fn pending(&self, older_than: std::time::SystemTime) -> Result<Vec<EmailId>, StoreError> {
        let _ = older_than;
        Ok(Vec::new())
    }
}

/// The owner of the received log: one durable record per accepted email.
#[async_trait]
pub trait EmailLog: Send + Sync {
    /// Records an accepted email. When this returns `Ok` the record is durable.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if it could not be recorded.
    async fn record(&self, email: &ReceivedEmail) -> Result<(), StoreError>;

    /// The largest body this log keeps in an email's own record, written with it in one
    /// durable write: one commit (one fsync, shared with the commits of that moment)
    /// instead of a body store's write and sync followed by the record's commit. 0, the
    /// default: it keeps none.
    fn inline_limit(&self) -> usize {
        0
    }

    /// Records an accepted email with its whole body (at most
    /// [`EmailLog::inline_limit`] bytes) in one durable write.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if it could not be recorded, or the log keeps no bodies.
    async fn record_with_body(&self, email: &ReceivedEmail, body: Bytes) -> Result<(), StoreError> {
        let _ = (email, body);
        Err(StoreError::storage(std::io::Error::other(
            "this received log keeps no bodies",
        )))
    }

    /// The body kept in the record of `id`: `None` if the record keeps none (its body is
    /// in the body store) or there is no record.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if the log cannot be read.
    async fn inline_body(&self, id: &EmailId) -> Result<Option<Bytes>, StoreError> {
        let _ = id;
        Ok(None)
    }

    /// The record of `id`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError>;

    /// Records in a time window, in id order.
    ///
    /// # Errors
    /// [`StoreError::InvalidCursor`] or [`StoreError::Storage`].
    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError>;

    /// Notes that `id` has been run through the forward evaluator. Every record starts
    /// out unevaluated: that flag, made durable with the record, is the evaluation intent
    /// that survives a crash.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError>;

    /// Up to `limit` records not yet evaluated, in id order, after the id `after` (from
    /// the first when `None`): a reader pages through a backlog of any size holding one
    /// page at a time.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError>;

    /// How many records are not yet evaluated, and when the oldest was received: an
    /// evaluation that falls behind shows here before it shows in the queue.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError>;

    /// Deletes the record of `id`, for retention, if it has been evaluated (an email
    /// never evaluated still has work to do) and, where the log shares a database with
    /// the delivery queue, if no delivery of it is pending, checked in the same step (a
    /// job enqueued after retention looked at the queue keeps the email); `true` if it
    /// was deleted or was not there.
    ///
    /// # Errors
    /// [`StoreError::Storage`]; then the record may still be there.
    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError>;
}

/// Writes one email; it is accepted only when [`EmailWriter::commit`] returns.
#[async_trait]
pub trait EmailWriter: Send {
    /// The id the email will have.
    fn id(&self) -> EmailId;

    /// Appends a chunk of the body.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if writing fails, [`StoreError::Overloaded`] if the
    /// store's byte rate is reached; either way the email is then aborted.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError>;

    /// Makes body and record durable, in that order, and returns the record.
    ///
    /// # Errors
    /// [`StoreError::Storage`]; then the email was not accepted.
    async fn commit(self: Box<Self>, email: NewEmail) -> Result<ReceivedEmail, StoreError>;

    /// Throws the partial email away.
    async fn abort(self: Box<Self>);
}

/// The owner of received emails: bodies and the received log together.
#[async_trait]
pub trait EmailStore: Send + Sync {
    /// Starts receiving an email under a new id.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] when callers should slow down, or [`StoreError::Storage`].
    async fn begin(&self) -> Result<Box<dyn EmailWriter>, StoreError>;

    /// Asks, before anything of an email is sent, whether the store takes a new email
    /// from `client` now: SMTP asks at `MAIL FROM`, so a refusal costs the client no
    /// body. A store that limits rates counts the email here. Cheap: no I/O on the
    /// calling path. The default takes everything, for stores that protect nothing.
    ///
    /// # Errors
    /// [`StoreError::Overloaded`] (slow down, retry after the delay it carries) or
    /// [`StoreError::InsufficientStorage`] (no new mail for now).
    async fn admit(&self, client: &Client) -> Result<(), StoreError> {
        let _ = client;
        Ok(())
    }

    /// [`EmailStore::begin`] for an email from `client` (admitted first, see
    /// [`EmailStore::admit`]), so that a store limiting bytes per client can count the
    /// body's. The default ignores the client.
    ///
    /// # Errors
    /// As [`EmailStore::begin`]; its writer may also refuse a chunk with
    /// [`StoreError::Overloaded`], and then nothing is stored.
    async fn begin_for(&self, client: &Client) -> Result<Box<dyn EmailWriter>, StoreError> {
        let _ = client;
        self.begin().await
    }

    /// Why the store refuses new mail right now, if it does: for health checks and
    /// metrics. Measured again if the last measurement is stale, so that a health
    /// check that keeps mail away still sees the store recover. The default never
    /// sheds.
    async fn shedding(&self) -> Option<Shedding> {
        None
    }

    /// The record of an accepted email.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError>;

    /// The body of an accepted email, by the id of its record (see [`EmailStore::get`]).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is none.
    async fn open_body(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError>;

    /// The received log in a time window.
    ///
    /// # Errors
    /// [`StoreError::InvalidCursor`] or [`StoreError::Storage`].
    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError>;

    /// Notes that `id` has been run through the forward evaluator.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError>;

    /// Up to `limit` accepted emails not yet evaluated, in id order, after `after`
    /// (see [`EmailLog::unevaluated`]).
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError>;

    /// How many accepted emails are not yet evaluated, and the oldest's receipt time.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError>;

    /// Deletes an evaluated email for good: its record first, then its body (so no
    /// record is ever left without its body); `false` if it was not evaluated, and
    /// nothing was deleted (see [`EmailLog::forget`]).
    ///
    /// # Errors
    /// [`StoreError::Storage`]; a body left behind by a failure after the record went
    /// is unreachable, never a record without a body.
    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError>;
}
