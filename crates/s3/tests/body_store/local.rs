//! The local-directory backend: `file://` URLs.

use mailfwd_domain::EmailId;
use mailfwd_domain::body_store_contract_tests;
use mailfwd_domain::email::{BodyStore, StoreError};
use mailfwd_s3::ObjectBodyStore;

use crate::{fresh_dir, names_in, pattern, read_all};

async fn fresh_store() -> ObjectBodyStore {
    let dir = fresh_dir("local").join("emails");
    ObjectBodyStore::from_url(&format!("file://{}", dir.display())).expect("open a fresh directory")
}

body_store_contract_tests!(fresh_store());

/// 2024-10-31T22:46:43.738Z as a UUIDv7.
const OLD_ID: &str = "0192e4c2-7b1a-7cde-8f00-112233445566";

#[tokio::test]
async fn committed_bodies_are_files_under_their_day() {
    let root = fresh_dir("layout").join("a").join("b");
    let store = ObjectBodyStore::from_url(&format!("file://{}", root.display())).expect("open");
    assert!(
        root.is_dir(),
        "from_url creates the directory and its parents"
    );

    let id = EmailId::parse(OLD_ID).expect("an id");
    assert_eq!(store.key_of(&id), format!("2024/10/31/{OLD_ID}.eml"));
    // Larger than a local part (256 KiB), so it goes through a multipart upload.
    let body = pattern(600 * 1024 + 1, 3);
    let mut writer = store.create(&id).await.expect("create");
    for chunk in body.chunks(10_000) {
        writer.write(chunk).await.expect("write");
    }
    assert_eq!(writer.commit().await.expect("commit"), body.len() as u64);

    let small = EmailId::parse("0192e4c2-7b1a-7cde-8f00-000000000001").expect("an id");
    let mut writer = store.create(&small).await.expect("create");
    writer
        .write(b"Subject: hi\r\n\r\nshort\r\n")
        .await
        .expect("write");
    writer.commit().await.expect("commit");

    let day = root.join("2024").join("10").join("31");
    assert_eq!(
        std::fs::read(day.join(format!("{OLD_ID}.eml"))).expect("the file"),
        body
    );
    assert_eq!(
        names_in(&day),
        vec![format!("{small}.eml"), format!("{OLD_ID}.eml")],
        "only the committed bodies, no staging files"
    );
    assert_eq!(read_all(store.open(&id).await.expect("open")).await, body);
}

#[tokio::test]
async fn aborted_and_dropped_bodies_leave_no_file() {
    let root = fresh_dir("abort");
    let store = ObjectBodyStore::from_url(&format!("file://{}", root.display())).expect("open");
    let id = EmailId::parse(OLD_ID).expect("an id");
    let day = root.join("2024").join("10").join("31");

    let mut writer = store.create(&id).await.expect("create");
    writer.write(&pattern(700 * 1024, 1)).await.expect("write");
    assert_eq!(
        names_in(&day).len(),
        1,
        "a staging file while the upload runs"
    );
    writer.abort().await;
    assert_eq!(names_in(&day), Vec::<String>::new());
    assert!(matches!(
        store.open(&id).await,
        Err(StoreError::NotFound(_))
    ));

    // A writer dropped mid-upload (a cancelled session) cleans up after itself too.
    let mut writer = store.create(&id).await.expect("create");
    writer.write(&pattern(700 * 1024, 2)).await.expect("write");
    drop(writer);
    for _ in 0..100 {
        if names_in(&day).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(names_in(&day), Vec::<String>::new());
    assert!(matches!(
        store.open(&id).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_store_that_does_not_sync_is_made_durable_under_its_prefix() {
    let root = fresh_dir("new");
    std::fs::create_dir_all(&root).expect("create the root");
    // No `with_fsync`: the adapter syncs the file and its directories itself.
    let files = object_store::local::LocalFileSystem::new_with_prefix(&root).expect("a store");
    let store = ObjectBodyStore::new(std::sync::Arc::new(files), "/mail/in/", Some(root.clone()));
    let id = EmailId::parse(OLD_ID).expect("an id");
    assert_eq!(
        store.key_of(&id),
        format!("mail/in/2024/10/31/{OLD_ID}.eml")
    );
    let body = pattern(300 * 1024, 5);
    let mut writer = store.create(&id).await.expect("create");
    writer.write(&body).await.expect("write");
    writer
        .commit()
        .await
        .expect("commit syncs the file at root/prefix/key");
    let file = root
        .join("mail/in/2024/10/31")
        .join(format!("{OLD_ID}.eml"));
    assert_eq!(std::fs::read(file).expect("the file"), body);
}
