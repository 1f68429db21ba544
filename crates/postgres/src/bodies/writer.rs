//! One body being written: its draft head, then its chunks, then the flip that makes it
//! the body of its email (the buffering and the rules are the domain's `ChunkedWriter`).

use async_trait::async_trait;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{ChunkSink, StoreError};
use sqlx::postgres::PgPool;

use super::{delete_draft, relaxed};

/// The statements behind one draft.
pub(super) struct PgDraft {
    pool: PgPool,
    id: EmailId,
    /// The draft's head row.
    body: i64,
}

impl PgDraft {
    /// Writes the draft's head (relaxed: the flip's WAL flush covers it).
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
        Ok(PgDraft {
            pool,
            id: *id,
            body,
        })
    }
}

#[async_trait]
impl ChunkSink for PgDraft {
    /// A short relaxed transaction of its own. The foreign key makes it fail if the
    /// draft is gone (swept after a very long write).
    async fn put(&self, seq: u64, data: Vec<u8>) -> Result<(), StoreError> {
        let written = async {
            let mut tx = relaxed(&self.pool).await?;
            sqlx::query("INSERT INTO email_body_chunks (body, seq, data) VALUES ($1, $2, $3)")
                .bind(self.body)
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(data)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        written.await.map_err(StoreError::storage)
    }

    /// One transaction, flushed to the WAL before it returns whatever the server's
    /// default (`synchronous_commit = on` is set for it): the flush covers the relaxed
    /// chunk writes before it. A committed body of the same email (a retried write) is
    /// replaced: deleted first, for the unique index, and only kept if the flip fails.
    async fn flip(&self, size: u64, chunks: u64) -> Result<bool, StoreError> {
        let flipped = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = on")
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM email_bodies WHERE email_id = $1::uuid AND committed")
                .bind(self.id.to_string())
                .execute(&mut *tx)
                .await?;
            let flipped = sqlx::query(
                "UPDATE email_bodies SET committed = TRUE, size = $1, chunks = $2
                 WHERE body = $3 AND NOT committed",
            )
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .bind(i64::try_from(chunks).unwrap_or(i64::MAX))
            .bind(self.body)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if flipped == 1 {
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(flipped == 1)
        };
        flipped.await.map_err(StoreError::storage)
    }

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

    /// Outside Tokio, the sweep does it later.
    fn discard_in_background(&self) {
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
