//! [`MigratingBodyStore`]: bodies moving from an old store to a new one while mail flows.

use std::sync::Arc;

use async_trait::async_trait;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyReader, BodyStore, BodyWriter, StoreError};

/// A body store over an old store and a new one, for the time `mailfwd migrate-emails`
/// moves every body from the first to the second.
///
/// New bodies go to the new store only. A body has moved once the new store has it: the
/// migration commits a copy there (bodies are visible only once committed, so never
/// half-copied) and deletes the original, if asked, only after checking the copy. So a
/// read asks the new store first and falls back to the old one; a body in neither is
/// not found. A delete removes the body from both.
#[derive(Clone)]
pub struct MigratingBodyStore {
    old: Arc<dyn BodyStore>,
    new: Arc<dyn BodyStore>,
}

impl MigratingBodyStore {
    /// Bodies read from `new`, else from `old`; written to `new`.
    #[must_use]
    pub fn new(old: Arc<dyn BodyStore>, new: Arc<dyn BodyStore>) -> Self {
        MigratingBodyStore { old, new }
    }

    /// Whether the body of `id` has moved: the new store has it.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if the new store cannot tell.
    pub async fn has_moved(&self, id: &EmailId) -> Result<bool, StoreError> {
        match self.new.open(id).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

#[async_trait]
impl BodyStore for MigratingBodyStore {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError> {
        self.new.create(id).await
    }

    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        match self.new.open(id).await {
            Err(StoreError::NotFound(_)) => self.old.open(id).await,
            found => found,
        }
    }

    async fn accepted(&self, id: &EmailId) {
        // New bodies are written to the new store only; its markers are the ones to drop.
        self.new.accepted(id).await;
    }

    async fn forgetting(&self, id: &EmailId) -> Result<(), StoreError> {
        // The sweep lists the new store's markers (and deletes from both).
        self.new.forgetting(id).await
    }

    async fn pending(&self, older_than: std::time::SystemTime) -> Result<Vec<EmailId>, StoreError> {
        self.new.pending(older_than).await
    }

    async fn delete(&self, id: &EmailId) -> Result<(), StoreError> {
        // Both copies go. A failure half-way leaves one, still readable, and deleting
        // again finishes the job (deleting a missing body is not an error).
        self.new.delete(id).await?;
        self.old.delete(id).await
    }
}
