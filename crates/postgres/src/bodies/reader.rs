//! Reading a committed body back: one chunk row per `next_chunk` (the checks against
//! the head are the domain's `ChunkedReader`).

use async_trait::async_trait;
use mailfwd_domain::email::{ChunkSource, StoreError};
use sqlx::postgres::PgPool;

/// The chunk rows of one body, fetched one query at a time.
pub(super) struct PgChunks {
    pub(super) pool: PgPool,
    pub(super) body: i64,
}

#[async_trait]
impl ChunkSource for PgChunks {
    async fn chunk(&mut self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT data FROM email_body_chunks WHERE body = $1 AND seq = $2")
            .bind(self.body)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::storage)
    }
}
