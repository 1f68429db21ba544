//! S3 failing under the writer, injected by the test kit's server: a failure that
//! persists surfaces as `StoreError::Storage` and leaves nothing behind (no object, no
//! unfinished upload, no marker); a passing one is retried and the body is stored.

use std::time::Duration;

use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyStore, StoreError};
use mailfwd_s3::ObjectBodyStore;
use mailfwd_testkit::s3::{Fault, FaultRule, Operation, S3Server};

use crate::s3::fresh_server_and_store;
use crate::{files_under, pattern, read_all};

/// 12 MiB: three parts of a multipart upload.
const LARGE: usize = 12 * 1024 * 1024;

/// Writes `body` and commits it; the first error, from a write or the commit.
async fn store_body(store: &ObjectBodyStore, id: &EmailId, body: &[u8]) -> Result<u64, StoreError> {
    let mut writer = store.create(id).await?;
    for chunk in body.chunks(256 * 1024) {
        writer.write(chunk).await?;
    }
    writer.commit().await
}

/// Waits (a few seconds at most) until the server holds no object, marker or
/// unfinished upload: the writer's clean-up runs in the background once it is dropped.
async fn assert_nothing_left(server: &S3Server) {
    for _ in 0..100 {
        if files_under(&server.root.join("mail")).is_empty()
            && server.unfinished_uploads().is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(files_under(&server.root.join("mail")), Vec::<String>::new());
    assert_eq!(server.unfinished_uploads(), Vec::<String>::new());
}

async fn a_failing_upload_leaves_nothing(rule: FaultRule, body_len: usize) {
    let (server, store) = fresh_server_and_store().await;
    server.faults.inject(rule);
    let id = EmailId::new();
    let result = store_body(&store, &id, &pattern(body_len, 1)).await;
    assert!(
        matches!(result, Err(StoreError::Storage(_))),
        "a storage error, not {result:?}"
    );
    assert!(
        server.faults.injected() > 1,
        "retried before giving up: {} faults",
        server.faults.injected()
    );
    server.faults.clear();
    assert!(matches!(
        store.open(&id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_nothing_left(&server).await;
}

#[tokio::test]
async fn a_part_that_keeps_failing_aborts_the_upload() {
    let rule = FaultRule::new(Operation::UploadPart, Fault::InternalError).after(1);
    a_failing_upload_leaves_nothing(rule, LARGE).await;
}

#[tokio::test]
async fn a_connection_that_keeps_dropping_mid_part_aborts_the_upload() {
    let rule = FaultRule::new(Operation::UploadPart, Fault::Disconnect).after(1);
    a_failing_upload_leaves_nothing(rule, LARGE).await;
}

#[tokio::test]
async fn a_completion_that_keeps_failing_aborts_the_upload() {
    let rule = FaultRule::new(Operation::CompleteUpload, Fault::InternalError);
    a_failing_upload_leaves_nothing(rule, LARGE).await;
}

#[tokio::test]
async fn a_small_body_that_cannot_be_put_is_not_stored() {
    let rule = FaultRule::new(Operation::PutObject, Fault::InternalError).key_containing(".eml");
    a_failing_upload_leaves_nothing(rule, 10_000).await;
}

#[tokio::test]
async fn no_marker_no_body() {
    // The marker must be durable before the body is visible: if it cannot be written,
    // the body is not stored either.
    let rule =
        FaultRule::new(Operation::PutObject, Fault::InternalError).key_containing("/pending/");
    a_failing_upload_leaves_nothing(rule, LARGE).await;
}

#[tokio::test]
async fn passing_failures_are_retried_and_the_body_is_stored() {
    let (server, store) = fresh_server_and_store().await;
    let faults = [
        FaultRule::new(Operation::UploadPart, Fault::InternalError)
            .after(1)
            .times(1),
        FaultRule::new(Operation::UploadPart, Fault::Disconnect)
            .after(1)
            .times(1),
        FaultRule::new(Operation::CreateUpload, Fault::InternalError).times(1),
        FaultRule::new(Operation::PutObject, Fault::InternalError).times(2),
    ];
    for rule in faults {
        server.faults.inject(rule);
    }
    let (large, small) = (EmailId::new(), EmailId::new());
    let body = pattern(LARGE, 2);
    assert_eq!(
        store_body(&store, &large, &body).await.expect("stored"),
        LARGE as u64
    );
    assert_eq!(
        read_all(store.open(&large).await.expect("open")).await,
        body
    );
    assert_eq!(
        store_body(&store, &small, b"short").await.expect("stored"),
        5
    );
    assert_eq!(
        read_all(store.open(&small).await.expect("open")).await,
        b"short"
    );
    assert_eq!(
        server.faults.injected(),
        5,
        "every fault was met, and ridden out"
    );
    assert_eq!(server.unfinished_uploads(), Vec::<String>::new());
}

#[tokio::test]
async fn a_stalled_part_times_out_and_is_retried() {
    let server = S3Server::start("mail").await;
    let mut env = server.env();
    env.push(("AWS_TIMEOUT".to_owned(), "1s".to_owned()));
    let store = ObjectBodyStore::from_url_with_env("s3://mail/bodies", env).expect("configure");
    server.faults.inject(
        FaultRule::new(Operation::UploadPart, Fault::Stall(Duration::from_secs(3)))
            .after(1)
            .times(1),
    );
    let id = EmailId::new();
    let body = pattern(LARGE, 3);
    assert_eq!(
        store_body(&store, &id, &body).await.expect("stored"),
        LARGE as u64
    );
    assert_eq!(server.faults.injected(), 1);
    assert_eq!(read_all(store.open(&id).await.expect("open")).await, body);
}
