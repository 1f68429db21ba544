//! Small bodies kept in their records: one write, no body store, and everything that
//! reads or deletes emails finds them.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::email::{
    BodyReader, BodyStore, EmailId, EmailLog, EmailPage, EmailQuery, EmailStore, Encoding,
    Envelope, NewEmail, ReceivedEmail, SplitEmailStore, StoreError, UnevaluatedStats,
};
use crate::memory::{MemoryBodyStore, MemoryEmailLog};

fn new_email() -> NewEmail {
    let envelope = Envelope {
        sender: None,
        recipients: Vec::new(),
    };
    NewEmail {
        envelope,
        peer: Some("192.0.2.1:25".to_owned()),
        helo: None,
        tls: false,
        encoding: Encoding::default(),
    }
}

async fn read_all(mut reader: Box<dyn BodyReader>) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.expect("read") {
        body.extend_from_slice(&chunk);
    }
    body
}

fn stores(limit: usize) -> (Arc<MemoryBodyStore>, Arc<MemoryEmailLog>, SplitEmailStore) {
    let bodies = Arc::new(MemoryBodyStore::new());
    let log = Arc::new(MemoryEmailLog::with_inline_limit(limit));
    let store = SplitEmailStore::new(bodies.clone(), log.clone());
    (bodies, log, store)
}

/// Writes `body` in chunks of 10 bytes and commits it.
async fn receive(store: &SplitEmailStore, body: &[u8]) -> crate::EmailId {
    let mut writer = store.begin().await.expect("begin");
    for chunk in body.chunks(10) {
        writer.write(chunk).await.expect("write");
    }
    writer.commit(new_email()).await.expect("commit").id
}

#[tokio::test]
async fn a_body_up_to_the_limit_is_kept_in_its_record_and_a_longer_one_in_the_body_store() {
    let (bodies, log, store) = stores(64);
    let small = vec![b's'; 64];
    let large: Vec<u8> = (0..200u8).collect();

    let kept = receive(&store, &small).await;
    assert_eq!(
        log.inline_body(&kept).await.unwrap().as_deref(),
        Some(&small[..])
    );
    assert!(
        matches!(bodies.open(&kept).await, Err(StoreError::NotFound(_))),
        "nothing in the body store"
    );
    assert_eq!(store.get(&kept).await.unwrap().size, 64);

    // Outgrows the limit on its seventh chunk: what came before is not lost.
    let stored = receive(&store, &large).await;
    assert_eq!(log.inline_body(&stored).await.unwrap(), None);
    assert_eq!(read_all(bodies.open(&stored).await.unwrap()).await, large);
    assert_eq!(store.get(&stored).await.unwrap().size, 200);

    for (id, body) in [(kept, &small), (stored, &large)] {
        assert_eq!(&read_all(store.open_body(&id).await.unwrap()).await, body);
    }
}

#[tokio::test]
async fn forgetting_an_email_deletes_a_body_kept_in_its_record() {
    let (_, log, store) = stores(1024);
    let id = receive(&store, b"Subject: x\r\n\r\nsmall\r\n").await;
    store.mark_evaluated(&id).await.unwrap();
    assert!(store.forget(&id).await.unwrap());
    assert_eq!(log.inline_body(&id).await.unwrap(), None);
    assert!(matches!(
        store.open_body(&id).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_aborted_email_keeps_nothing_anywhere() {
    let (bodies, log, store) = stores(16);
    let mut writer = store.begin().await.unwrap();
    let id = writer.id();
    writer.write(&[b'x'; 40]).await.unwrap();
    writer.abort().await;
    assert_eq!(log.inline_body(&id).await.unwrap(), None);
    assert!(matches!(
        bodies.open(&id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A log keeping bodies whose `record_with_body` writes, then reports a failure (a
/// commit whose answer was lost).
struct LostAnswer(MemoryEmailLog);

#[async_trait]
impl EmailLog for LostAnswer {
    async fn record(&self, email: &ReceivedEmail) -> Result<(), StoreError> {
        self.0.record(email).await
    }
    fn inline_limit(&self) -> usize {
        self.0.inline_limit()
    }
    async fn record_with_body(&self, email: &ReceivedEmail, body: Bytes) -> Result<(), StoreError> {
        self.0.record_with_body(email, body).await?;
        Err(StoreError::storage(std::io::Error::other("answer lost")))
    }
    async fn inline_body(&self, id: &EmailId) -> Result<Option<Bytes>, StoreError> {
        self.0.inline_body(id).await
    }
    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        self.0.get(id).await
    }
    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        self.0.list(query).await
    }
    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        self.0.mark_evaluated(id).await
    }
    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        self.0.unevaluated(after, limit).await
    }
    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        self.0.unevaluated_stats().await
    }
    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        self.0.forget(id).await
    }
}

#[tokio::test]
async fn a_small_body_written_despite_its_error_is_accepted() {
    let log = Arc::new(LostAnswer(MemoryEmailLog::with_inline_limit(1024)));
    let store = SplitEmailStore::new(Arc::new(MemoryBodyStore::new()), log.clone());
    let mut writer = store.begin().await.unwrap();
    let id = writer.id();
    writer.write(b"Subject: x\r\n\r\nsmall\r\n").await.unwrap();
    let accepted = writer.commit(new_email()).await;
    assert_eq!(accepted.expect("the record is there: accepted").id, id);
    assert!(log.get(&id).await.is_ok());
}
