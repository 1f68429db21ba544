//! An in-memory [`BodyStore`], for tests and for embedding the domain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::email::{BodyReader, BodyStore, BodyWriter, EmailId, StoreError};
use crate::memory::lock;

/// A [`BodyStore`] in a map of byte vectors. Commit is instant: memory is "durable"
/// for as long as the process lives, which is all a test needs.
///
/// Like the S3 store, it marks each committed body pending until it hears
/// [`BodyStore::accepted`], so the orphan sweep of
/// [`crate::email::SplitEmailStore`] can be tested without a server.
#[derive(Debug, Default)]
pub struct MemoryBodyStore {
    bodies: Arc<Mutex<HashMap<EmailId, Bytes>>>,
    /// Bodies committed but not yet accepted, and when they were marked.
    markers: Arc<Mutex<HashMap<EmailId, SystemTime>>>,
}

impl MemoryBodyStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the body of `id` is stored (committed and not deleted).
    #[must_use]
    pub fn contains(&self, id: &EmailId) -> bool {
        lock(&self.bodies).contains_key(id)
    }

    /// Whether the body of `id` is marked pending, its record not yet heard of.
    #[must_use]
    pub fn is_pending(&self, id: &EmailId) -> bool {
        lock(&self.markers).contains_key(id)
    }
}

struct MemoryBodyWriter {
    id: EmailId,
    buffer: Vec<u8>,
    bodies: Arc<Mutex<HashMap<EmailId, Bytes>>>,
    markers: Arc<Mutex<HashMap<EmailId, SystemTime>>>,
}

#[async_trait]
impl BodyWriter for MemoryBodyWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.buffer.extend_from_slice(chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<u64, StoreError> {
        let size = self.buffer.len() as u64;
        // The marker before the body, as on S3: no body is ever stored unmarked.
        lock(&self.markers).insert(self.id, SystemTime::now());
        lock(&self.bodies).insert(self.id, Bytes::from(self.buffer));
        Ok(size)
    }

    async fn abort(self: Box<Self>) {}
}

struct MemoryBodyReader(Option<Bytes>);

#[async_trait]
impl BodyReader for MemoryBodyReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.take())
    }
}

#[async_trait]
impl BodyStore for MemoryBodyStore {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError> {
        Ok(Box::new(MemoryBodyWriter {
            id: *id,
            buffer: Vec::new(),
            bodies: Arc::clone(&self.bodies),
            markers: Arc::clone(&self.markers),
        }))
    }

    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        let body = lock(&self.bodies)
            .get(id)
            .cloned()
            .ok_or(StoreError::NotFound(*id))?;
        Ok(Box::new(MemoryBodyReader(Some(body))))
    }

    async fn delete(&self, id: &EmailId) -> Result<(), StoreError> {
        lock(&self.bodies).remove(id);
        lock(&self.markers).remove(id);
        Ok(())
    }

    async fn accepted(&self, id: &EmailId) {
        lock(&self.markers).remove(id);
    }

    async fn forgetting(&self, id: &EmailId) -> Result<(), StoreError> {
        lock(&self.markers).insert(*id, SystemTime::now());
        Ok(())
    }

    async fn pending(&self, older_than: SystemTime) -> Result<Vec<EmailId>, StoreError> {
        let mut ids: Vec<EmailId> = lock(&self.markers)
            .iter()
            .filter(|(_, marked)| **marked < older_than)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        Ok(ids)
    }
}
