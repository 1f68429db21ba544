//! Reading a committed body back, one chunk row per `next_chunk`.

use async_trait::async_trait;
use bytes::Bytes;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyReader, StoreError};
use sqlx::postgres::PgPool;

/// Reads the chunk rows of one committed body in order, one query each, so it holds one
/// chunk at a time. The head's chunk count and size are checked as it goes: a body
/// deleted while it is being read ends in an error, never in a silently shorter body.
pub(super) struct PgBodyReader {
    pool: PgPool,
    id: EmailId,
    body: i64,
    size: i64,
    chunks: i64,
    /// The next chunk's `seq`.
    next: i64,
    read: i64,
}

impl PgBodyReader {
    pub(super) fn new(pool: PgPool, id: EmailId, body: i64, size: i64, chunks: i64) -> Self {
        PgBodyReader {
            pool,
            id,
            body,
            size,
            chunks,
            next: 0,
            read: 0,
        }
    }
}

/// The body's rows are not what its head says.
#[derive(Debug, thiserror::Error)]
#[error("the body of email {id} is incomplete (deleted while being read?): {what}")]
struct Incomplete {
    id: EmailId,
    what: &'static str,
}

#[async_trait]
impl BodyReader for PgBodyReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        let incomplete = |what| StoreError::storage(Incomplete { id: self.id, what });
        if self.next == self.chunks {
            return if self.read == self.size {
                Ok(None)
            } else {
                Err(incomplete("its size differs"))
            };
        }
        let data: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT data FROM email_body_chunks WHERE body = $1 AND seq = $2")
                .bind(self.body)
                .bind(self.next)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::storage)?;
        let data = data.ok_or_else(|| incomplete("a chunk is missing"))?;
        self.next += 1;
        self.read += i64::try_from(data.len()).unwrap_or(i64::MAX);
        Ok(Some(Bytes::from(data)))
    }
}
