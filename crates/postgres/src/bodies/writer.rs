//! One body being written: its draft head, then its chunks, then the commit that makes
//! it the body of its email.

use async_trait::async_trait;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyWriter, StoreError};
use sqlx::postgres::PgPool;

use super::{CHUNK, delete_draft, relaxed};

/// Writes one body, holding at most one chunk: the bytes not yet written as a full
/// chunk row.
pub(super) struct PgBodyWriter {
    pool: PgPool,
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

impl PgBodyWriter {
    /// Writes the draft's head (relaxed: the commit's WAL flush covers it).
    pub(super) async fn start(pool: PgPool, id: &EmailId) -> Result<Self, StoreError> {
        let started = async {
            let mut tx = relaxed(&pool).await?;
            let body: i64 = sqlx::query_scalar(
                "INSERT INTO email_bodies (email_id) VALUES ($1::uuid) RETURNING body",
            )
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(body)
        };
        let body = started.await.map_err(StoreError::storage)?;
        Ok(PgBodyWriter {
            pool,
            id: *id,
            body,
            buffer: Vec::with_capacity(CHUNK),
            chunks: 0,
            size: 0,
            failed: false,
            finished: false,
        })
    }

    /// Writes the buffer as the next chunk row, in a short relaxed transaction of its
    /// own. The foreign key makes it fail if the draft is gone (swept after a very long
    /// write), so no chunk is ever left without a head.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        let written = async {
            let mut tx = relaxed(&self.pool).await?;
            sqlx::query("INSERT INTO email_body_chunks (body, seq, data) VALUES ($1, $2, $3)")
                .bind(self.body)
                .bind(self.chunks)
                .bind(data)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        if let Err(error) = written.await {
            self.failed = true;
            return Err(StoreError::storage(error));
        }
        self.chunks += 1;
        Ok(())
    }

    /// Flips the draft to the committed body of its email in one transaction, durable
    /// when it returns. A committed body of the same email (a retried write) is
    /// replaced: deleted first, for the unique index, and only kept if the flip fails.
    /// Returns whether the draft was still there to flip.
    async fn flip(&self) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM email_bodies WHERE email_id = $1::uuid AND committed")
            .bind(self.id.to_string())
            .execute(&mut *tx)
            .await?;
        let flipped = sqlx::query(
            "UPDATE email_bodies SET committed = TRUE, size = $1, chunks = $2
             WHERE body = $3 AND NOT committed",
        )
        .bind(i64::try_from(self.size).unwrap_or(i64::MAX))
        .bind(self.chunks)
        .bind(self.body)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if flipped == 1 {
            tx.commit().await?;
        }
        Ok(flipped == 1)
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
            Ok(true) => Ok(self.size),
            Ok(false) => Err(StoreError::storage(DraftGone(self.body))),
            Err(error) => {
                self.discard().await;
                Err(StoreError::storage(error))
            }
        }
    }

    /// Deletes the draft (abort, a failed commit), as best it can: the sweep gets the rest.
    async fn discard(&self) {
        let deleted = async {
            let mut tx = relaxed(&self.pool).await?;
            delete_draft(&mut tx, self.body).await?;
            tx.commit().await
        };
        if let Err(error) = deleted.await {
            tracing::warn!(%error, body = self.body, "could not delete an email body draft; the sweep will");
        }
    }
}

/// The draft cannot be committed: a write of it failed, or it was swept as abandoned
/// during a very long write.
#[derive(Debug, thiserror::Error)]
#[error("the email body draft {0} is unusable or was removed before its commit")]
struct DraftGone(i64);

#[async_trait]
impl BodyWriter for PgBodyWriter {
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

impl Drop for PgBodyWriter {
    /// A writer dropped without commit or abort (a session that ended mid-`DATA`)
    /// deletes its draft from a task; outside Tokio, the sweep does it later.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (pool, body) = (self.pool.clone(), self.body);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Ok(mut conn) = pool.acquire().await {
                    let _ = delete_draft(&mut conn, body).await;
                }
            });
        }
    }
}
