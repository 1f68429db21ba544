//! Instances sharing one queue: a restart releases only its own leases, a silent
//! instance's leases are released for the others, and nothing ever extends a lease
//! someone else holds.

mod common;

use std::time::Duration;

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{DeliveryQueue, JobState, QueueError};
use mailfwd_domain::email::{EmailId, now_millis};

const LEASE: Duration = Duration::from_secs(600);
const SILENT_FOR: Duration = Duration::from_secs(30);

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("a valid address")
}

#[tokio::test]
async fn a_restart_releases_only_its_own_leases() {
    let (name, database) = common::fresh_named_database().await;
    let a = database.queue_for("a");
    let b = common::open_again(&name).await.queue_for("b");
    let now = now_millis();
    let email = EmailId::new();
    a.enqueue(email, &[addr("1@x.test"), addr("2@x.test")], false, now)
        .await
        .unwrap();
    let held_by_a = a.claim(now, LEASE, 1).await.unwrap();
    let held_by_b = b.claim(now, LEASE, 1).await.unwrap();
    assert_eq!((held_by_a.len(), held_by_b.len()), (1, 1));

    // B restarts: its own lease is released, A's is untouched.
    assert_eq!(b.release_all_leases(now).await.unwrap(), 1);
    assert!(
        b.claim(now, LEASE, 5).await.unwrap().len() == 1,
        "B's job is due again"
    );
    a.delivered(&held_by_a[0], "250 ok", now).await.unwrap();
}

#[tokio::test]
async fn a_silent_instances_leases_go_to_the_others_and_its_late_record_is_refused() {
    let (name, database) = common::fresh_named_database().await;
    let a = database.queue_for("a");
    let b = common::open_again(&name).await.queue_for("b");
    let start = now_millis();
    a.heartbeat(start, SILENT_FOR).await.unwrap();
    b.heartbeat(start, SILENT_FOR).await.unwrap();
    let email = EmailId::new();
    a.enqueue(email, &[addr("1@x.test")], false, start)
        .await
        .unwrap();
    let held = a.claim(start, LEASE, 1).await.unwrap();
    assert_eq!(held.len(), 1);

    // A is alive: B's heartbeats take nothing, however long A's lease.
    let soon = start + Duration::from_secs(20);
    a.heartbeat(soon, SILENT_FOR).await.unwrap();
    assert_eq!(
        b.heartbeat(soon + Duration::from_secs(20), SILENT_FOR)
            .await
            .unwrap(),
        0
    );
    assert!(
        b.claim(soon + Duration::from_secs(20), LEASE, 5)
            .await
            .unwrap()
            .is_empty()
    );

    // A falls silent: once it has been for longer than SILENT_FOR, B releases its lease
    // (long before the lease itself would run out) and claims the job.
    let later = soon + SILENT_FOR + Duration::from_secs(1);
    assert_eq!(b.heartbeat(later, SILENT_FOR).await.unwrap(), 1);
    let taken = b.claim(later, LEASE, 5).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].job.attempts, 2, "A's attempt stays counted");

    // A wakes up and tries to record its attempt: refused, B's lease stands.
    assert!(matches!(
        a.delivered(&held[0], "250 late", later).await,
        Err(QueueError::LeaseLost { .. })
    ));
    b.delivered(&taken[0], "250 ok", later).await.unwrap();
    let jobs = b.jobs_of(email).await.unwrap();
    assert_eq!(
        jobs[0].state,
        JobState::Delivered {
            reply: "250 ok".into()
        }
    );
}

#[tokio::test]
async fn claims_and_heartbeats_never_extend_a_lease_someone_else_holds() {
    let (name, database) = common::fresh_named_database().await;
    let a = database.queue_for("a");
    let b = common::open_again(&name).await.queue_for("b");
    let start = now_millis();
    a.heartbeat(start, SILENT_FOR).await.unwrap();
    let email = EmailId::new();
    a.enqueue(email, &[addr("1@x.test")], false, start)
        .await
        .unwrap();
    let short = Duration::from_secs(60);
    assert_eq!(a.claim(start, short, 1).await.unwrap().len(), 1);
    let due_at = |jobs: Vec<mailfwd_domain::delivery::DeliveryJob>| jobs[0].next_attempt_at;
    let before = due_at(a.jobs_of(email).await.unwrap());

    // B claims, heartbeats and restarts while A's lease runs: nothing moves it later.
    let during = start + Duration::from_secs(30);
    assert!(b.claim(during, LEASE, 5).await.unwrap().is_empty());
    b.heartbeat(during, SILENT_FOR).await.unwrap();
    b.release_all_leases(during).await.unwrap();
    assert_eq!(due_at(a.jobs_of(email).await.unwrap()), before);

    // A's lease runs out without a word from A: any instance claims the job.
    let after = start + short + Duration::from_secs(1);
    assert_eq!(b.claim(after, LEASE, 5).await.unwrap().len(), 1);
}
