//! One body being written: its draft head, then its chunks, then the commit that makes
//! it the body of its email.

use async_trait::async_trait;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyWriter, StoreError};

use super::{CHUNK, now_millis};
use crate::writer::{WriteError, Writer};

/// Writes one body through the database's writer, holding at most one chunk: the bytes
/// not yet written as a full chunk row.
pub(super) struct SqliteBodyWriter {
    writer: Writer,
    id: EmailId,
    /// The draft's head row.
    body: i64,
    buffer: Vec<u8>,
    /// Chunk rows written so far; the next one's `seq`.
    chunks: i64,
    size: u64,
    /// A write failed: the writer refuses more (the body would have a hole).
    failed: bool,
    /// Committed or aborted: dropping it has nothing to clean up.
    finished: bool,
}

impl SqliteBodyWriter {
    /// Writes the draft's head (a relaxed write: the commit's fsync covers it).
    pub(super) async fn start(writer: Writer, id: &EmailId) -> Result<Self, StoreError> {
        let (email, created_at) = (id.to_string(), now_millis());
        let body = writer
            .write(false, move |conn| {
                Box::pin(async move {
                    sqlx::query_scalar(
                        "INSERT INTO email_bodies (email_id, created_at) VALUES (?1, ?2)
                         RETURNING body",
                    )
                    .bind(email)
                    .bind(created_at)
                    .fetch_one(conn)
                    .await
                })
            })
            .await
            .map_err(StoreError::storage)?;
        Ok(SqliteBodyWriter {
            writer,
            id: *id,
            body,
            buffer: Vec::with_capacity(CHUNK),
            chunks: 0,
            size: 0,
            failed: false,
            finished: false,
        })
    }

    /// Writes the buffer as the next chunk row, as a relaxed write. The foreign key
    /// makes it fail if the draft is gone (swept after a very long write), so no chunk
    /// is ever left without a head.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        let (body, seq) = (self.body, self.chunks);
        let written = self
            .writer
            .write(false, move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO email_body_chunks (body, seq, data) VALUES (?1, ?2, ?3)",
                    )
                    .bind(body)
                    .bind(seq)
                    .bind(data)
                    .execute(conn)
                    .await
                    .map(drop)
                })
            })
            .await;
        if let Err(error) = written {
            self.failed = true;
            return Err(StoreError::storage(error));
        }
        self.chunks += 1;
        Ok(())
    }

    /// Writes the last chunk and flips the draft to the body of its email; on failure
    /// the draft is deleted.
    async fn finish(&mut self) -> Result<u64, StoreError> {
        if self.failed {
            self.discard().await;
            return Err(StoreError::storage(DraftGone(self.body)));
        }
        if !self.buffer.is_empty()
            && let Err(error) = self.flush().await
        {
            self.discard().await;
            return Err(error);
        }
        match self.flip().await {
            Ok(1) => Ok(self.size),
            Ok(_) => Err(StoreError::storage(DraftGone(self.body))),
            Err(error) => {
                self.discard().await;
                Err(StoreError::storage(error))
            }
        }
    }

    /// Flips the draft to the committed body of its email, as a durable write: its
    /// fsync makes the chunks before it durable too. A committed body of the same email
    /// (a retried write) is deleted first, for the unique index, and only if this draft
    /// is still there to replace it; the writer runs both statements in one transaction
    /// with nothing in between. Returns 1 if the draft was there to flip, else 0.
    async fn flip(&self) -> Result<u64, WriteError> {
        let (email, body) = (self.id.to_string(), self.body);
        let (size, chunks) = (i64::try_from(self.size).unwrap_or(i64::MAX), self.chunks);
        self.writer
            .write(true, move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "DELETE FROM email_bodies WHERE email_id = ?1 AND committed = 1
                           AND EXISTS (SELECT 1 FROM email_bodies WHERE body = ?2 AND committed = 0)",
                    )
                    .bind(email.as_str())
                    .bind(body)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "UPDATE email_bodies SET committed = 1, size = ?1, chunks = ?2
                         WHERE body = ?3 AND committed = 0",
                    )
                    .bind(size)
                    .bind(chunks)
                    .bind(body)
                    .execute(&mut *conn)
                    .await
                    .map(|done| done.rows_affected())
                })
            })
            .await
    }

    /// Deletes the draft (abort, a failed commit) as best it can: the sweep gets the rest.
    async fn discard(&self) {
        if let Err(error) = delete_draft(&self.writer, self.body).await {
            tracing::warn!(%error, body = self.body, "could not delete an email body draft; the sweep will");
        }
    }
}

/// Deletes a draft and its chunks (cascade); never a committed body.
async fn delete_draft(writer: &Writer, body: i64) -> Result<(), StoreError> {
    writer
        .write(false, move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM email_bodies WHERE body = ?1 AND committed = 0")
                    .bind(body)
                    .execute(conn)
                    .await
                    .map(drop)
            })
        })
        .await
        .map_err(StoreError::storage)
}

/// The draft cannot be committed: a write of it failed, or it was swept as abandoned
/// during a very long write.
#[derive(Debug, thiserror::Error)]
#[error("the email body draft {0} is unusable or was removed before its commit")]
struct DraftGone(i64);

#[async_trait]
impl BodyWriter for SqliteBodyWriter {
    async fn write(&mut self, mut chunk: &[u8]) -> Result<(), StoreError> {
        if self.failed {
            return Err(StoreError::storage(DraftGone(self.body)));
        }
        while !chunk.is_empty() {
            let room = CHUNK - self.buffer.len();
            let (now, later) = chunk.split_at(room.min(chunk.len()));
            self.buffer.extend_from_slice(now);
            self.size += now.len() as u64;
            chunk = later;
            if self.buffer.len() == CHUNK {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StoreError> {
        let committed = self.finish().await;
        // Only now: a commit cancelled half-way (its session gone) leaves the draft to
        // `Drop`, which deletes it unless it was committed (a draft delete never touches
        // a committed body).
        self.finished = true;
        committed
    }

    async fn abort(mut self: Box<Self>) {
        self.discard().await;
        self.finished = true;
    }
}

impl Drop for SqliteBodyWriter {
    /// A writer dropped without commit or abort (a session that ended mid-`DATA`)
    /// deletes its draft from a task; outside Tokio, the sweep does it later.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (writer, body) = (self.writer.clone(), self.body);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = delete_draft(&writer, body).await;
            });
        }
    }
}
