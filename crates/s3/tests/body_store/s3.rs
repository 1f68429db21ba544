//! The S3 backend against s3s-fs, configured the way `mailfwd serve` does: an
//! `s3://bucket/prefix` URL plus `MAILFWD_S3_ENDPOINT` and `AWS_*` variables.

use mailfwd_domain::EmailId;
use mailfwd_domain::body_store_contract_tests;
use mailfwd_domain::email::{BodyStore, StoreError};
use mailfwd_s3::ObjectBodyStore;
use mailfwd_testkit::s3::S3Server;

use crate::{files_under, pattern, read_all};

/// A server with an empty bucket `mail`, and a store on `s3://mail/bodies/`.
pub async fn fresh_server_and_store() -> (S3Server, ObjectBodyStore) {
    let server = S3Server::start("mail").await;
    let store = ObjectBodyStore::from_url_with_env("s3://mail/bodies/", server.env())
        .expect("configure the S3 client");
    (server, store)
}

async fn fresh_store() -> ObjectBodyStore {
    fresh_server_and_store().await.1
}

body_store_contract_tests!(fresh_store());

#[tokio::test]
async fn large_bodies_upload_in_parts_under_the_day_key() {
    let (server, store) = fresh_server_and_store().await;
    // 12 MiB: two full 5 MiB parts and a short last one.
    let body = pattern(12 * 1024 * 1024 + 5, 9);
    let id = EmailId::new();
    let mut writer = store.create(&id).await.expect("create");
    for chunk in body.chunks(64 * 1024 + 7) {
        writer.write(chunk).await.expect("write");
    }
    assert_eq!(writer.commit().await.expect("commit"), body.len() as u64);
    assert_eq!(read_all(store.open(&id).await.expect("open")).await, body);

    let key = store.key_of(&id);
    assert!(
        key.starts_with("bodies/") && key.ends_with(&format!("/{id}.eml")),
        "{key}"
    );
    let on_server = server.root.join("mail").join(&key);
    assert_eq!(
        std::fs::metadata(&on_server).expect("the object").len(),
        body.len() as u64
    );
}

#[tokio::test]
async fn an_aborted_multipart_upload_leaves_nothing() {
    let (server, store) = fresh_server_and_store().await;
    let id = EmailId::new();
    let mut writer = store.create(&id).await.expect("create");
    writer
        .write(&pattern(6 * 1024 * 1024, 4))
        .await
        .expect("write");
    writer.abort().await;
    assert!(matches!(
        store.open(&id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        files_under(&server.root.join("mail")),
        Vec::<String>::new(),
        "neither body nor marker"
    );
    assert_eq!(
        server.unfinished_uploads(),
        Vec::<String>::new(),
        "no parts kept on the server"
    );
}
