//! The `BodyStore` contract suite on a fresh PostgreSQL database per test, plus what
//! keeping bodies in the database adds: chunk rows, a 25 MB body, and drafts that never
//! stay.

use std::time::Duration;

use mailfwd_domain::EmailId;
use mailfwd_domain::body_store_contract_tests;
use mailfwd_domain::email::{BodyReader, BodyStore, StoreError};
use mailfwd_postgres::{PgBodyStore, PgDatabase};
use sqlx::postgres::PgPool;

mod common;

async fn fresh_store() -> PgBodyStore {
    common::fresh_database().await.body_store()
}

body_store_contract_tests!(fresh_store());

/// A fresh database (dropped by [`done`]), its body store and its pool, to look at the
/// rows.
async fn store_and_rows() -> (String, PgDatabase, PgBodyStore, PgPool) {
    let (name, database) = common::fresh_named_database().await;
    let (store, pool) = (database.body_store(), database.pool().clone());
    (name, database, store, pool)
}

async fn done(name: String, database: PgDatabase) {
    common::drop_test_database(&name, database).await;
}

/// (heads, chunk rows) in the tables.
async fn rows(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM email_bodies), (SELECT count(*) FROM email_body_chunks)",
    )
    .fetch_one(pool)
    .await
    .expect("count the rows")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

async fn read_all(mut reader: Box<dyn BodyReader>) -> (Vec<u8>, usize) {
    let (mut bytes, mut largest) = (Vec::new(), 0);
    while let Some(chunk) = reader.next_chunk().await.expect("read a chunk") {
        largest = largest.max(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (bytes, largest)
}

#[tokio::test]
async fn a_25_mb_body_round_trips_in_256_kib_chunk_rows() {
    let (name, database, store, pool) = store_and_rows().await;
    let id = EmailId::new();
    let body = pattern(25 * 1000 * 1000, 5);
    let mut writer = store.create(&id).await.expect("create");
    for piece in body.chunks(64 * 1024 + 7) {
        writer.write(piece).await.expect("write");
    }
    assert_eq!(writer.commit().await.expect("commit"), body.len() as u64);
    assert_eq!(rows(&pool).await, (1, 96), "25 MB in 256 KiB rows");
    let (read, largest) = read_all(store.open(&id).await.expect("open")).await;
    assert_eq!(largest, 256 * 1024, "one chunk row per read");
    assert!(read == body, "the body reads back byte for byte");
    done(name, database).await;
}

#[tokio::test]
async fn aborted_and_dropped_writers_leave_no_rows() {
    let (name, database, store, pool) = store_and_rows().await;
    let mut aborted = store.create(&EmailId::new()).await.expect("create");
    aborted.write(&pattern(600 * 1024, 1)).await.expect("write");
    assert_eq!(rows(&pool).await, (1, 2), "a draft and its full chunks");
    aborted.abort().await;
    assert_eq!(rows(&pool).await, (0, 0));

    let mut dropped = store.create(&EmailId::new()).await.expect("create");
    dropped.write(&pattern(300 * 1024, 2)).await.expect("write");
    drop(dropped);
    // Deleted from a task: wait for it, a little.
    let mut left = rows(&pool).await;
    for _ in 0..100 {
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = rows(&pool).await;
    }
    assert_eq!(left, (0, 0), "a dropped writer's draft is deleted");
    done(name, database).await;
}

#[tokio::test]
async fn drafts_of_a_crash_are_swept_and_committed_bodies_stay() {
    let (name, database, store, pool) = store_and_rows().await;
    let kept = EmailId::new();
    let mut writer = store.create(&kept).await.expect("create");
    writer.write(&pattern(300 * 1024, 3)).await.expect("write");
    writer.commit().await.expect("commit");

    // A process that dies mid-write runs no destructor: forgetting the writer is that.
    let crashed = EmailId::new();
    let mut writer = store.create(&crashed).await.expect("create");
    writer.write(&pattern(300 * 1024, 4)).await.expect("write");
    std::mem::forget(writer);
    assert_eq!(rows(&pool).await, (2, 3));

    assert_eq!(
        store
            .remove_abandoned(Duration::from_secs(3600))
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(
        store.remove_abandoned(Duration::ZERO).await.expect("sweep"),
        1
    );
    assert_eq!(rows(&pool).await, (1, 2), "only the committed body is left");
    assert!(matches!(
        store.open(&crashed).await,
        Err(StoreError::NotFound(_))
    ));
    let (read, _) = read_all(store.open(&kept).await.expect("open")).await;
    assert_eq!(read, pattern(300 * 1024, 3));
    done(name, database).await;
}

#[tokio::test]
async fn a_writer_whose_draft_was_swept_cannot_commit() {
    let (name, database, store, pool) = store_and_rows().await;
    let id = EmailId::new();
    let mut writer = store.create(&id).await.expect("create");
    writer.write(b"Subject: slow\r\n").await.expect("write");
    store.remove_abandoned(Duration::ZERO).await.expect("sweep");
    assert!(writer.commit().await.is_err(), "its bytes are gone");
    assert!(matches!(
        store.open(&id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(rows(&pool).await, (0, 0));
    done(name, database).await;
}

#[tokio::test]
async fn writing_a_body_again_replaces_it() {
    let (name, database, store, pool) = store_and_rows().await;
    let id = EmailId::new();
    for seed in [1, 2] {
        let mut writer = store.create(&id).await.expect("create");
        writer
            .write(&pattern(300 * 1024, seed))
            .await
            .expect("write");
        writer.commit().await.expect("commit");
    }
    assert_eq!(rows(&pool).await, (1, 2), "the first body's rows are gone");
    let (read, _) = read_all(store.open(&id).await.expect("open")).await;
    assert_eq!(read, pattern(300 * 1024, 2));
    done(name, database).await;
}
