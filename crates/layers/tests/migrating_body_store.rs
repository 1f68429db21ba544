//! The migrating body store passes the body-store contract (with bodies written through
//! it landing in the new store), and reads bodies still in the old store.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyReader, BodyStore, StoreError};
use mailfwd_domain::memory::MemoryBodyStore;
use mailfwd_layers::MigratingBodyStore;

async fn store() -> MigratingBodyStore {
    MigratingBodyStore::new(
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryBodyStore::new()),
    )
}

mailfwd_domain::body_store_contract_tests!(store());

async fn put(store: &dyn BodyStore, id: &EmailId, body: &[u8]) {
    let mut writer = store.create(id).await.unwrap();
    writer.write(body).await.unwrap();
    writer.commit().await.unwrap();
}

async fn read(mut reader: Box<dyn BodyReader>) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

#[tokio::test]
async fn old_bodies_are_read_until_moved_new_ones_go_to_the_new_store_and_delete_takes_both() {
    let (old, new) = (
        Arc::new(MemoryBodyStore::new()),
        Arc::new(MemoryBodyStore::new()),
    );
    let store = MigratingBodyStore::new(old.clone(), new.clone());
    let (before, after) = (EmailId::new(), EmailId::new());
    put(old.as_ref(), &before, b"from before the migration").await;
    assert!(!store.has_moved(&before).await.unwrap());
    assert_eq!(
        read(store.open(&before).await.unwrap()).await,
        b"from before the migration"
    );

    put(&store, &after, b"arrived during the migration").await;
    assert!(store.has_moved(&after).await.unwrap());
    assert!(matches!(
        old.open(&after).await,
        Err(StoreError::NotFound(_))
    ));

    // The migration copies it: the new copy is what is read from then on.
    put(new.as_ref(), &before, b"from before the migration").await;
    assert!(store.has_moved(&before).await.unwrap());
    store.delete(&before).await.unwrap();
    assert!(matches!(
        old.open(&before).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.open(&before).await,
        Err(StoreError::NotFound(_))
    ));
}
