use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyReader, BodyStore, BodyWriter, StoreError};
use mailfwd_domain::memory::MemoryBodyStore;

use super::{BodyMover, MoveError, Moved};

async fn put(store: &dyn BodyStore, id: &EmailId, body: &[u8]) {
    let mut writer = store.create(id).await.unwrap();
    for chunk in body.chunks(1000) {
        writer.write(chunk).await.unwrap();
    }
    writer.commit().await.unwrap();
}

async fn read(store: &dyn BodyStore, id: &EmailId) -> Option<Vec<u8>> {
    let mut reader = match store.open(id).await {
        Ok(reader) => reader,
        Err(StoreError::NotFound(_)) => return None,
        Err(other) => panic!("{other}"),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    Some(bytes)
}

fn stores() -> (Arc<MemoryBodyStore>, Arc<MemoryBodyStore>) {
    (
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryBodyStore::new()),
    )
}

#[tokio::test]
async fn a_body_is_copied_checked_and_not_copied_again() {
    let (from, to) = stores();
    let mover = BodyMover::new(from.clone(), to.clone(), false);
    let id = EmailId::new();
    let body: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    put(from.as_ref(), &id, &body).await;

    assert_eq!(
        mover.move_body(&id).await.unwrap(),
        Moved::Copied { bytes: 70_000 }
    );
    assert_eq!(read(to.as_ref(), &id).await.unwrap(), body);
    assert_eq!(read(from.as_ref(), &id).await.unwrap(), body, "kept");
    assert_eq!(
        mover.move_body(&id).await.unwrap(),
        Moved::AlreadyThere { bytes: 70_000 }
    );
}

#[tokio::test]
async fn the_source_is_deleted_only_when_asked_and_a_body_only_in_the_target_is_left_alone() {
    let (from, to) = stores();
    let mover = BodyMover::new(from.clone(), to.clone(), true);
    let (id, new) = (EmailId::new(), EmailId::new());
    put(from.as_ref(), &id, b"old mail").await;
    put(to.as_ref(), &new, b"received during the migration").await;
    assert_eq!(
        mover.move_body(&id).await.unwrap(),
        Moved::Copied { bytes: 8 }
    );
    assert_eq!(read(from.as_ref(), &id).await, None);
    assert_eq!(read(to.as_ref(), &id).await.unwrap(), b"old mail");
    assert_eq!(mover.move_body(&id).await.unwrap(), Moved::OnlyInTarget);
    assert_eq!(mover.move_body(&new).await.unwrap(), Moved::OnlyInTarget);
    assert!(matches!(
        mover.move_body(&EmailId::new()).await,
        Err(MoveError::Missing(_))
    ));
}

#[tokio::test]
async fn a_different_copy_in_the_target_is_replaced() {
    let (from, to) = stores();
    let mover = BodyMover::new(from.clone(), to.clone(), false);
    let id = EmailId::new();
    put(from.as_ref(), &id, b"the real body").await;
    put(to.as_ref(), &id, b"something else").await;
    assert_eq!(
        mover.move_body(&id).await.unwrap(),
        Moved::Copied { bytes: 13 }
    );
    assert_eq!(read(to.as_ref(), &id).await.unwrap(), b"the real body");
}

/// A target that flips a bit of everything read back from it.
struct Corrupting(MemoryBodyStore);

struct Flipped(Box<dyn BodyReader>);

#[async_trait]
impl BodyReader for Flipped {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.next_chunk().await?.map(|chunk| {
            let mut bytes = chunk.to_vec();
            if let Some(first) = bytes.first_mut() {
                *first ^= 1;
            }
            Bytes::from(bytes)
        }))
    }
}

#[async_trait]
impl BodyStore for Corrupting {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError> {
        self.0.create(id).await
    }
    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        Ok(Box::new(Flipped(self.0.open(id).await?)))
    }
    async fn delete(&self, id: &EmailId) -> Result<(), StoreError> {
        self.0.delete(id).await
    }
}

#[tokio::test]
async fn a_copy_that_reads_back_wrong_is_deleted_and_the_source_kept() {
    let from = Arc::new(MemoryBodyStore::new());
    let to = Arc::new(Corrupting(MemoryBodyStore::new()));
    let mover = BodyMover::new(from.clone(), to.clone(), true);
    let id = EmailId::new();
    put(from.as_ref(), &id, b"precious").await;
    let error = mover.move_body(&id).await.unwrap_err();
    assert!(matches!(error, MoveError::Mismatch { .. }), "{error}");
    assert!(error.to_string().contains("SHA-256 differs"), "{error}");
    assert_eq!(read(from.as_ref(), &id).await.unwrap(), b"precious");
    assert!(matches!(to.0.open(&id).await, Err(StoreError::NotFound(_))));
}
