//! Bodies stored as numbered chunks under a head that records their count and size
//! (the database adapters): written through a draft head that a final "flip" makes the
//! body of its email, and read back checked against the head. The adapters supply the
//! statements ([`ChunkSink`], [`ChunkSource`]); the rules live here once.

use async_trait::async_trait;
use bytes::Bytes;

use super::{BodyReader, BodyWriter, EmailId, StoreError};

/// The statements behind one draft body being written.
#[async_trait]
pub trait ChunkSink: Send + Sync {
    /// Writes chunk `seq` (from 0) of the draft. It may commit without waiting for
    /// durability: [`ChunkSink::flip`]'s durable commit covers every write before it.
    /// Must fail if the draft is gone, so that no chunk outlives its head.
    ///
    /// # Errors
    /// [`StoreError::Storage`].
    async fn put(&self, seq: u64, data: Vec<u8>) -> Result<(), StoreError>;

    /// Makes the draft the committed body of its email (replacing one committed
    /// before), `size` bytes in `chunks` chunks, durable when it returns; `false`, with
    /// nothing changed, if the draft is gone.
    ///
    /// # Errors
    /// [`StoreError::Storage`]; then nothing was committed.
    async fn flip(&self, size: u64, chunks: u64) -> Result<bool, StoreError>;

    /// Deletes the draft, as best it can: a sweep of old drafts gets the rest.
    async fn discard(&self);

    /// Deletes the draft in the background: the writer was dropped mid-body (its session
    /// ended) and cannot wait.
    fn discard_in_background(&self);
}

/// A body written as chunks of at most `chunk_size` bytes, holding at most one chunk.
/// A write that fails makes the writer refuse the rest (the body would have a hole);
/// a failed commit, an abort and a drop all delete the draft.
pub struct ChunkedWriter<S: ChunkSink> {
    sink: S,
    chunk_size: usize,
    buffer: Vec<u8>,
    chunks: u64,
    size: u64,
    failed: bool,
    /// Committed or aborted: dropping it has nothing to clean up.
    finished: bool,
}

/// The draft cannot be committed: a write of it failed, or it was swept as abandoned
/// during a very long write.
#[derive(Debug, thiserror::Error)]
#[error("the email body draft is unusable or was removed before its commit")]
struct DraftGone;

impl<S: ChunkSink> ChunkedWriter<S> {
    /// A writer of the draft behind `sink`.
    #[must_use]
    pub fn new(sink: S, chunk_size: usize) -> Self {
        let chunk_size = chunk_size.max(1);
        ChunkedWriter {
            sink,
            chunk_size,
            // Grown as bytes arrive: an idle session holds nothing, a small body little.
            buffer: Vec::new(),
            chunks: 0,
            size: 0,
            failed: false,
            finished: false,
        }
    }

    /// Writes the buffer as the next chunk.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let data = std::mem::take(&mut self.buffer);
        if let Err(error) = self.sink.put(self.chunks, data).await {
            self.failed = true;
            return Err(error);
        }
        self.chunks += 1;
        Ok(())
    }

    /// Writes the last chunk and flips the draft; on failure the draft is deleted.
    async fn finish(&mut self) -> Result<u64, StoreError> {
        if self.failed {
            self.sink.discard().await;
            return Err(StoreError::storage(DraftGone));
        }
        if !self.buffer.is_empty()
            && let Err(error) = self.flush().await
        {
            self.sink.discard().await;
            return Err(error);
        }
        match self.sink.flip(self.size, self.chunks).await {
            Ok(true) => Ok(self.size),
            Ok(false) => Err(StoreError::storage(DraftGone)),
            Err(error) => {
                self.sink.discard().await;
                Err(error)
            }
        }
    }
}

#[async_trait]
impl<S: ChunkSink> BodyWriter for ChunkedWriter<S> {
    async fn write(&mut self, mut chunk: &[u8]) -> Result<(), StoreError> {
        if self.failed {
            return Err(StoreError::storage(DraftGone));
        }
        while !chunk.is_empty() {
            let room = self.chunk_size - self.buffer.len();
            let (now, later) = chunk.split_at(room.min(chunk.len()));
            self.buffer.extend_from_slice(now);
            self.size += now.len() as u64;
            chunk = later;
            if self.buffer.len() == self.chunk_size {
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
        self.sink.discard().await;
        self.finished = true;
    }
}

impl<S: ChunkSink> Drop for ChunkedWriter<S> {
    /// A writer dropped without commit or abort (a session that ended mid-`DATA`)
    /// deletes its draft in the background.
    fn drop(&mut self) {
        if !self.finished {
            self.sink.discard_in_background();
        }
    }
}

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
