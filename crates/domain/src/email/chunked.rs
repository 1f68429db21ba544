//! Bodies stored as numbered chunks under a head that records their count and size
//! (the database adapters): reading them back, checked against the head.

use async_trait::async_trait;
use bytes::Bytes;

use super::{BodyReader, EmailId, StoreError};

/// Where the chunks of one committed body are fetched from.
#[async_trait]
pub trait ChunkSource: Send {
    /// Chunk `seq` (from 0), `None` if there is no such row.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if it cannot be read.
    async fn chunk(&mut self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Reads a body one chunk at a time, so it holds one chunk at most. The head's chunk
/// count and size are checked as it goes: a body deleted while it is being read ends
/// in an error, never in a silently shorter body.
pub struct ChunkedReader<S> {
    source: S,
    id: EmailId,
    size: u64,
    chunks: u64,
    next: u64,
    read: u64,
}

impl<S: ChunkSource> ChunkedReader<S> {
    /// The body of `id`, `chunks` chunks of `size` bytes in all, as its head says.
    #[must_use]
    pub fn new(source: S, id: EmailId, size: u64, chunks: u64) -> Self {
        ChunkedReader {
            source,
            id,
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
impl<S: ChunkSource> BodyReader for ChunkedReader<S> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        let id = self.id;
        let incomplete = |what| StoreError::storage(Incomplete { id, what });
        if self.next == self.chunks {
            return if self.read == self.size {
                Ok(None)
            } else {
                Err(incomplete("its size differs"))
            };
        }
        let data = self
            .source
            .chunk(self.next)
            .await?
            .ok_or_else(|| incomplete("a chunk is missing"))?;
        self.next += 1;
        self.read += data.len() as u64;
        Ok(Some(Bytes::from(data)))
    }
}
