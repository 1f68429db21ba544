//! Orphans on S3: a body committed whose record never came (a crash in between) is
//! found by its pending marker and deleted by the sweep; a recorded body only loses
//! its marker.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailfwd_domain::email::{
    BodyStore, EmailId, EmailLog, EmailStore, Encoding, Envelope, NewEmail, SplitEmailStore,
    StoreError, SweepReport,
};
use mailfwd_domain::memory::MemoryEmailLog;
use mailfwd_s3::ObjectBodyStore;
use mailfwd_testkit::s3::{Fault, FaultRule, Operation, S3Server};

use crate::read_all;
use crate::s3::fresh_server_and_store;

struct World {
    server: S3Server,
    bodies: Arc<ObjectBodyStore>,
    log: Arc<MemoryEmailLog>,
    emails: SplitEmailStore,
}

async fn world() -> World {
    let (server, bodies) = fresh_server_and_store().await;
    let bodies = Arc::new(bodies);
    let log = Arc::new(MemoryEmailLog::new());
    let emails = SplitEmailStore::new(
        Arc::clone(&bodies) as Arc<dyn BodyStore>,
        Arc::clone(&log) as Arc<dyn EmailLog>,
    );
    World {
        server,
        bodies,
        log,
        emails,
    }
}

impl World {
    fn marker(&self, id: &EmailId) -> std::path::PathBuf {
        self.server.path_of("mail", &format!("bodies/pending/{id}"))
    }

    /// Makes the marker of `id` look two hours old to the server.
    fn age_marker(&self, id: &EmailId) {
        let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
        std::fs::File::options()
            .write(true)
            .open(self.marker(id))
            .expect("the marker is there")
            .set_modified(two_hours_ago)
            .expect("age the marker");
    }

    /// Waits (a few seconds at most) for the marker of `id` to go, as it does in the
    /// background; whether it went.
    async fn marker_gone(&self, id: &EmailId) -> bool {
        for _ in 0..100 {
            if !self.marker(id).exists() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// A body committed through the store, whose process then crashed before the
    /// record: the marker is aged as if the crash were two hours ago.
    async fn crashed_before_record(&self, body: &[u8]) -> EmailId {
        let id = EmailId::new();
        let mut writer = self.bodies.create(&id).await.expect("create");
        writer.write(body).await.expect("write");
        writer.commit().await.expect("commit");
        assert!(self.marker(&id).exists(), "marked before it is recorded");
        self.age_marker(&id);
        id
    }
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

fn cutoff() -> SystemTime {
    SystemTime::now() - SplitEmailStore::ORPHAN_AGE
}

#[tokio::test]
async fn an_accepted_email_loses_its_marker_and_keeps_its_body() {
    let world = world().await;
    let mut writer = world.emails.begin().await.expect("begin");
    let id = writer.id();
    writer
        .write(b"Subject: hi\r\n\r\nbody\r\n")
        .await
        .expect("write");
    writer.commit(new_email()).await.expect("accepted");
    assert!(
        world.marker_gone(&id).await,
        "the record is durable: no marker"
    );
    let body = read_all(world.emails.open_body(&id).await.expect("open")).await;
    assert_eq!(body, b"Subject: hi\r\n\r\nbody\r\n");
    assert_eq!(
        world
            .emails
            .sweep_orphans(SystemTime::now())
            .await
            .expect("sweep"),
        SweepReport::default()
    );
}

#[tokio::test]
async fn a_crash_between_body_and_record_is_swept() {
    let world = world().await;
    let orphan = world.crashed_before_record(b"never answered 250").await;
    let young = EmailId::new();
    let mut writer = world.bodies.create(&young).await.expect("create");
    writer.write(b"still being received").await.expect("write");
    writer.commit().await.expect("commit");

    let report = world.emails.sweep_orphans(cutoff()).await.expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            pending: 1,
            deleted: 1,
            ..SweepReport::default()
        }
    );
    assert!(matches!(
        world.bodies.open(&orphan).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        !world.marker(&orphan).exists(),
        "delete removes the marker too"
    );
    assert!(
        world.marker(&young).exists() && world.bodies.open(&young).await.is_ok(),
        "a body younger than the cutoff may still get its record: left alone"
    );
}

#[tokio::test]
async fn a_recorded_body_whose_marker_stayed_is_kept() {
    let world = world().await;
    // Recorded, but the process died before the marker was removed.
    let id = world.crashed_before_record(b"answered 250").await;
    world
        .log
        .record(&mailfwd_domain::ReceivedEmail {
            id,
            email: new_email(),
            size: 12,
            received_at: SystemTime::now(),
        })
        .await
        .expect("record");

    let report = world.emails.sweep_orphans(cutoff()).await.expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            pending: 1,
            recorded: 1,
            ..SweepReport::default()
        }
    );
    assert!(world.marker_gone(&id).await, "the marker is dropped");
    let body = read_all(world.bodies.open(&id).await.expect("the body is kept")).await;
    assert_eq!(body, b"answered 250");
    let report = world.emails.sweep_orphans(cutoff()).await.expect("sweep");
    assert_eq!(report, SweepReport::default(), "nothing left to look at");
}

#[tokio::test]
async fn a_body_that_cannot_be_deleted_after_its_record_is_swept_later() {
    let world = world().await;
    let mut writer = world.emails.begin().await.expect("begin");
    let id = writer.id();
    writer.write(b"old mail").await.expect("write");
    writer.commit(new_email()).await.expect("accepted");
    assert!(world.marker_gone(&id).await);
    world.emails.mark_evaluated(&id).await.expect("evaluated");

    // Retention forgets it while S3 refuses to delete anything.
    for operation in [Operation::DeleteObject, Operation::DeleteObjects] {
        world
            .server
            .faults
            .inject(FaultRule::new(operation, Fault::InternalError));
    }
    let forgot = world.emails.forget(&id).await;
    assert!(forgot.is_err(), "{forgot:?}");
    assert!(matches!(
        world.log.get(&id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        world.marker(&id).exists(),
        "the body without its record is marked before the record goes"
    );

    world.server.faults.clear();
    world.age_marker(&id);
    let report = world.emails.sweep_orphans(cutoff()).await.expect("sweep");
    assert_eq!((report.pending, report.deleted), (1, 1));
    assert!(matches!(
        world.bodies.open(&id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!world.marker(&id).exists());
}
