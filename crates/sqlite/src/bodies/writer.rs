//! One body being written through the database's writer: its draft head, then its
//! chunks, then the flip that makes it the body of its email (the buffering and the
//! rules are the domain's `ChunkedWriter`).

use async_trait::async_trait;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{ChunkSink, StoreError};

use super::now_millis;
use crate::writer::Writer;

/// The statements behind one draft.
pub(super) struct SqliteDraft {
    writer: Writer,
    id: EmailId,
    /// The draft's head row.
    body: i64,
}

impl SqliteDraft {
    /// Writes the draft's head (a relaxed write: the flip's fsync covers it).
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
        Ok(SqliteDraft {
            writer,
            id: *id,
            body,
        })
    }
}

#[async_trait]
impl ChunkSink for SqliteDraft {
    /// A relaxed write. The foreign key makes it fail if the draft is gone (swept after
    /// a very long write).
    async fn put(&self, seq: u64, data: Vec<u8>) -> Result<(), StoreError> {
        let (body, seq) = (self.body, i64::try_from(seq).unwrap_or(i64::MAX));
        self.writer
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
            .await
            .map_err(StoreError::storage)
    }

    /// A durable write: its fsync makes the chunks before it durable too. A committed
    /// body of the same email (a retried write) is deleted first, for the unique index,
    /// and only if this draft is still there to replace it. Both statements sit in a
    /// savepoint: the writer's batch rolls back only a failing statement, and a delete
    /// kept without its update would leave the email with no body at all.
    async fn flip(&self, size: u64, chunks: u64) -> Result<bool, StoreError> {
        let (email, body) = (self.id.to_string(), self.body);
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let chunks = i64::try_from(chunks).unwrap_or(i64::MAX);
        let flipped = self
            .writer
            .write(true, move |conn| {
                Box::pin(async move {
                    sqlx::query("SAVEPOINT flip").execute(&mut *conn).await?;
                    let flipped = async {
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
                    }
                    .await;
                    let end = if flipped.is_ok() {
                        "RELEASE flip"
                    } else {
                        "ROLLBACK TO flip"
                    };
                    sqlx::query(end).execute(&mut *conn).await?;
                    flipped
                })
            })
            .await
            .map_err(StoreError::storage)?;
        Ok(flipped == 1)
    }

    async fn discard(&self) {
        if let Err(error) = delete_draft(&self.writer, self.body).await {
            tracing::warn!(%error, body = self.body, "could not delete an email body draft; the sweep will");
        }
    }

    /// Outside Tokio, the sweep does it later.
    fn discard_in_background(&self) {
        let (writer, body) = (self.writer.clone(), self.body);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = delete_draft(&writer, body).await;
            });
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
