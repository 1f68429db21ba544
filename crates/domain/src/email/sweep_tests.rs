//! The split store's answer to orphans, on the memory stores (which mark bodies pending
//! as S3 does): a failed record takes its body back, a durable one drops the marker, and
//! the sweep sorts out what a crash left behind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::email::{
    BodyStore, EmailId, EmailLog, EmailPage, EmailQuery, EmailStore, Encoding, Envelope, NewEmail,
    ReceivedEmail, SplitEmailStore, StoreError, SweepReport, UnevaluatedStats,
};
use crate::memory::{MemoryBodyStore, MemoryEmailLog, lock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Works,
    /// `record` fails and writes nothing.
    RecordFails,
    /// `record` writes the record, then reports a failure (a commit whose answer was lost).
    RecordLost,
    /// Every call fails.
    Down,
}

/// A memory log that fails as told.
struct FlakyLog {
    inner: MemoryEmailLog,
    mode: Mutex<Mode>,
}

impl FlakyLog {
    fn set(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }
    fn check(&self) -> Result<Mode, StoreError> {
        match *lock(&self.mode) {
            Mode::Down => Err(StoreError::storage(std::io::Error::other("log down"))),
            mode => Ok(mode),
        }
    }
}

fn failed() -> StoreError {
    StoreError::storage(std::io::Error::other("record failed"))
}

#[async_trait]
impl EmailLog for FlakyLog {
    async fn record(&self, email: &ReceivedEmail) -> Result<(), StoreError> {
        match self.check()? {
            Mode::RecordFails => Err(failed()),
            Mode::RecordLost => {
                self.inner.record(email).await?;
                Err(failed())
            }
            _ => self.inner.record(email).await,
        }
    }
    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        self.inner.list(query).await
    }
    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        self.inner.mark_evaluated(id).await
    }
    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        self.inner.unevaluated(after, limit).await
    }
    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        self.inner.unevaluated_stats().await
    }
    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        self.inner.forget(id).await
    }
}

fn stores() -> (Arc<MemoryBodyStore>, Arc<FlakyLog>, SplitEmailStore) {
    let bodies = Arc::new(MemoryBodyStore::new());
    let log = Arc::new(FlakyLog {
        inner: MemoryEmailLog::new(),
        mode: Mutex::new(Mode::Works),
    });
    let store = SplitEmailStore::new(
        Arc::clone(&bodies) as Arc<dyn BodyStore>,
        Arc::clone(&log) as Arc<dyn EmailLog>,
    );
    (bodies, log, store)
}

fn new_email() -> NewEmail {
    NewEmail {
        envelope: Envelope {
            sender: None,
            recipients: Vec::new(),
        },
        peer: None,
        helo: None,
        tls: false,
        encoding: Encoding::default(),
    }
}

/// Receives one email through the split store; its id and what commit said.
async fn receive(store: &SplitEmailStore) -> (EmailId, Result<ReceivedEmail, StoreError>) {
    let mut writer = store.begin().await.expect("begin");
    let id = writer.id();
    writer
        .write(b"Subject: x\r\n\r\nbody\r\n")
        .await
        .expect("write");
    (id, writer.commit(new_email()).await)
}

/// Stores a body the way a crash right after the body's commit leaves it: no record.
async fn crashed_before_record(bodies: &MemoryBodyStore) -> EmailId {
    let id = EmailId::new();
    let mut writer = bodies.create(&id).await.expect("create");
    writer.write(b"orphan").await.expect("write");
    writer.commit().await.expect("commit");
    id
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(1)
}

#[tokio::test]
async fn an_accepted_email_keeps_its_body_and_drops_its_marker() {
    let (bodies, _log, store) = stores();
    let (id, result) = receive(&store).await;
    assert_eq!(result.expect("accepted").id, id);
    assert!(bodies.contains(&id));
    assert!(!bodies.is_pending(&id), "the record is durable: no marker");
    assert_eq!(
        store.sweep_orphans(later()).await.expect("sweep"),
        SweepReport::default()
    );
}

#[tokio::test]
async fn a_failed_record_takes_its_body_back() {
    let (bodies, log, store) = stores();
    log.set(Mode::RecordFails);
    let (id, result) = receive(&store).await;
    assert!(matches!(result, Err(StoreError::Storage(_))));
    assert!(!bodies.contains(&id), "no body without a record");
    assert!(!bodies.is_pending(&id));
}

#[tokio::test]
async fn a_record_written_despite_its_error_keeps_its_body() {
    let (bodies, log, store) = stores();
    log.set(Mode::RecordLost);
    let (id, result) = receive(&store).await;
    assert_eq!(result.expect("the record is there: accepted").id, id);
    assert!(bodies.contains(&id), "a record never points at nothing");
    assert!(!bodies.is_pending(&id));
}

#[tokio::test]
async fn when_the_log_cannot_tell_the_body_waits_for_the_sweep() {
    let (bodies, log, store) = stores();
    log.set(Mode::Down);
    let (id, result) = receive(&store).await;
    assert!(matches!(result, Err(StoreError::Storage(_))));
    assert!(bodies.contains(&id) && bodies.is_pending(&id));

    let report = store.sweep_orphans(later()).await.expect("sweep");
    assert_eq!((report.pending, report.failed), (1, 1), "still undecided");
    assert!(bodies.contains(&id));

    log.set(Mode::Works);
    let report = store.sweep_orphans(later()).await.expect("sweep");
    assert_eq!((report.pending, report.deleted), (1, 1));
    assert!(!bodies.contains(&id) && !bodies.is_pending(&id));
}

#[tokio::test]
async fn the_sweep_deletes_orphans_and_unmarks_recorded_bodies() {
    let (bodies, log, store) = stores();
    let orphan = crashed_before_record(&bodies).await;
    // A recorded email whose `accepted` was lost: body and record, marker still there.
    let recorded = crashed_before_record(&bodies).await;
    log.record(&ReceivedEmail {
        id: recorded,
        email: new_email(),
        size: 6,
        received_at: SystemTime::now(),
    })
    .await
    .expect("record");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let young = crashed_before_record(&bodies).await;

    let report = store.sweep_orphans(cutoff).await.expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            pending: 2,
            recorded: 1,
            deleted: 1,
            failed: 0
        }
    );
    assert!(!bodies.contains(&orphan) && !bodies.is_pending(&orphan));
    assert!(bodies.contains(&recorded) && !bodies.is_pending(&recorded));
    assert!(
        bodies.contains(&young) && bodies.is_pending(&young),
        "a body younger than the cutoff may still get its record"
    );
}

/// Memory bodies whose deletes fail while `deletes_fail` is set.
struct UndeletableBodies {
    inner: Arc<MemoryBodyStore>,
    deletes_fail: Mutex<bool>,
}

#[async_trait]
impl BodyStore for UndeletableBodies {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn crate::email::BodyWriter>, StoreError> {
        self.inner.create(id).await
    }
    async fn open(&self, id: &EmailId) -> Result<Box<dyn crate::email::BodyReader>, StoreError> {
        self.inner.open(id).await
    }
    async fn delete(&self, id: &EmailId) -> Result<(), StoreError> {
        if *lock(&self.deletes_fail) {
            return Err(StoreError::storage(std::io::Error::other("delete failed")));
        }
        self.inner.delete(id).await
    }
    async fn accepted(&self, id: &EmailId) {
        self.inner.accepted(id).await;
    }
    async fn forgetting(&self, id: &EmailId) -> Result<(), StoreError> {
        self.inner.forgetting(id).await
    }
    async fn pending(&self, older_than: SystemTime) -> Result<Vec<EmailId>, StoreError> {
        self.inner.pending(older_than).await
    }
}

#[tokio::test]
async fn a_body_whose_delete_fails_after_its_record_is_forgotten_is_left_to_the_sweep() {
    let bodies = Arc::new(MemoryBodyStore::new());
    let flaky = Arc::new(UndeletableBodies {
        inner: Arc::clone(&bodies),
        deletes_fail: Mutex::new(true),
    });
    let store = SplitEmailStore::new(
        Arc::clone(&flaky) as Arc<dyn BodyStore>,
        Arc::new(MemoryEmailLog::new()) as Arc<dyn EmailLog>,
    );
    let (id, result) = receive(&store).await;
    result.expect("accepted");
    store.mark_evaluated(&id).await.expect("evaluated");

    assert!(store.forget(&id).await.is_err(), "the body's delete failed");
    assert!(matches!(store.get(&id).await, Err(StoreError::NotFound(_))));
    assert!(
        bodies.contains(&id) && bodies.is_pending(&id),
        "the body without its record is marked, not lost to every sweep"
    );

    *lock(&flaky.deletes_fail) = false;
    let report = store.sweep_orphans(later()).await.expect("sweep");
    assert_eq!((report.pending, report.deleted), (1, 1));
    assert!(!bodies.contains(&id) && !bodies.is_pending(&id));
}

#[tokio::test]
async fn an_email_kept_by_forget_keeps_its_body_unmarked() {
    let (bodies, _log, store) = stores();
    let (id, result) = receive(&store).await;
    result.expect("accepted");
    assert!(
        !store.forget(&id).await.expect("forget"),
        "not evaluated: kept"
    );
    assert!(bodies.contains(&id) && !bodies.is_pending(&id));
    assert!(store.get(&id).await.is_ok());
}
