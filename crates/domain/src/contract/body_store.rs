//! The `BodyStore` contract.

use crate::email::{BodyReader, BodyStore, EmailId, StoreError};

async fn read_all(mut reader: Box<dyn BodyReader>) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

pub async fn bodies_round_trip_byte_for_byte(store: &dyn BodyStore) {
    let id = EmailId::new();
    let body = pattern(3 * 1024 * 1024 + 17, 7);
    let mut writer = store.create(&id).await.unwrap();
    writer.write(b"").await.unwrap();
    for chunk in body.chunks(64 * 1024 + 3) {
        writer.write(chunk).await.unwrap();
    }
    assert_eq!(writer.commit().await.unwrap(), body.len() as u64);
    assert_eq!(read_all(store.open(&id).await.unwrap()).await, body);

    let empty = EmailId::new();
    assert_eq!(
        store.create(&empty).await.unwrap().commit().await.unwrap(),
        0
    );
    assert_eq!(
        read_all(store.open(&empty).await.unwrap()).await,
        Vec::<u8>::new()
    );
}

pub async fn uncommitted_and_aborted_bodies_do_not_exist(store: &dyn BodyStore) {
    let unknown = EmailId::new();
    assert!(matches!(store.open(&unknown).await, Err(StoreError::NotFound(id)) if id == unknown));
    let id = EmailId::new();
    let mut writer = store.create(&id).await.unwrap();
    writer.write(b"partial").await.unwrap();
    assert!(matches!(
        store.open(&id).await,
        Err(StoreError::NotFound(_))
    ));
    writer.abort().await;
    assert!(matches!(
        store.open(&id).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn interleaved_writers_keep_their_bodies_apart(store: &dyn BodyStore) {
    let ids: Vec<EmailId> = (0..3).map(|_| EmailId::new()).collect();
    let mut writers = Vec::new();
    for id in &ids {
        writers.push(store.create(id).await.unwrap());
    }
    for round in 0..4u8 {
        for (n, writer) in writers.iter_mut().enumerate() {
            writer.write(&pattern(1000, round ^ n as u8)).await.unwrap();
        }
    }
    for writer in writers.into_iter().rev() {
        writer.commit().await.unwrap();
    }
    for (n, id) in ids.iter().enumerate() {
        let expected: Vec<u8> = (0..4u8)
            .flat_map(|round| pattern(1000, round ^ n as u8))
            .collect();
        assert_eq!(read_all(store.open(id).await.unwrap()).await, expected);
    }
}

pub async fn deleted_bodies_are_gone_and_a_second_delete_is_fine(store: &dyn BodyStore) {
    let (kept, deleted) = (EmailId::new(), EmailId::new());
    for id in [&kept, &deleted] {
        let mut writer = store.create(id).await.unwrap();
        writer.write(&pattern(70_000, 3)).await.unwrap();
        writer.commit().await.unwrap();
    }
    store.delete(&deleted).await.unwrap();
    assert!(matches!(
        store.open(&deleted).await,
        Err(StoreError::NotFound(_))
    ));
    store.delete(&deleted).await.unwrap();
    store.delete(&EmailId::new()).await.unwrap();
    assert_eq!(
        read_all(store.open(&kept).await.unwrap()).await,
        pattern(70_000, 3)
    );
}
