//! Jobs one instance leaves due for anyone wake the others' idle workers at once: each
//! such queue write notifies once (never once per row), and the writes of the hot path
//! (fresh jobs claimed by their enqueuer, outcomes, retries due later) never do.
//!
//! Instance B's change listener records every `JobsDue` it hears while instance A (its
//! own pool on the same database) writes to the queue.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_domain::email::{EmailId, now_millis};
use mailfwd_postgres::{Change, ChangeListener, ListenerSettings, PgDatabase};

const LEASE: Duration = Duration::from_secs(600);
/// How long a notification may take to arrive; also how long "nothing" is waited for.
const HEARD_WITHIN: Duration = Duration::from_millis(500);

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("a valid address")
}

/// What B's listener heard of due jobs, in order.
struct Heard {
    jobs_due: Arc<Mutex<Vec<Option<u64>>>>,
    listener: ChangeListener,
}

async fn listen(database: &PgDatabase) -> Heard {
    let jobs_due = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&jobs_due);
    let listener = ChangeListener::spawn(database, ListenerSettings::default(), move |change| {
        if let Change::JobsDue(jobs) = change {
            record.lock().expect("not poisoned").push(jobs);
        }
    });
    tokio::time::timeout(Duration::from_secs(5), listener.listening())
        .await
        .expect("the listener connects");
    Heard { jobs_due, listener }
}

impl Heard {
    /// Everything heard since the last call, once `HEARD_WITHIN` has passed.
    async fn since_last(&self) -> Vec<Option<u64>> {
        tokio::time::sleep(HEARD_WITHIN).await;
        std::mem::take(&mut *self.jobs_due.lock().expect("not poisoned"))
    }
}

#[tokio::test]
async fn jobs_left_due_for_anyone_are_told_once_per_write_and_the_hot_path_is_silent() {
    let (name, database) = common::fresh_named_database().await;
    let a = database.queue_for("a");
    let b_database = common::open_again(&name).await;
    let b = listen(&b_database).await;
    assert_eq!(
        b.since_last().await,
        [None],
        "on connecting: look, notifications may have been missed"
    );

    // Fresh mail: enqueued claimed by the instance that received it. Nothing to tell.
    let now = now_millis();
    let fresh = EmailId::new();
    let claimed = a
        .enqueue_claimed(fresh, &[addr("1@x.test"), addr("2@x.test")], now, LEASE)
        .await
        .unwrap();
    assert_eq!(b.since_last().await, []);

    // Outcomes and a retry due later: nothing either.
    let jobs: Vec<_> = claimed.into_iter().filter_map(|(_, job)| job).collect();
    a.delivered(&jobs[0], "250 ok", now).await.unwrap();
    a.retry_later(&jobs[1], "451 later", now + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(b.since_last().await, []);

    // Fifty unclaimed jobs in one write: one notification, with the count.
    let many: Vec<EmailAddress> = (0..50).map(|i| addr(&format!("m{i}@x.test"))).collect();
    a.enqueue(EmailId::new(), &many, false, now).await.unwrap();
    assert_eq!(b.since_last().await, [Some(50)]);

    // Reprocessing (forced) the delivered email: its two jobs are due again.
    a.enqueue(fresh, &[addr("1@x.test"), addr("2@x.test")], true, now)
        .await
        .unwrap();
    assert_eq!(b.since_last().await, [Some(2)]);

    // A job given back due now is told; one postponed (its destination busy) is not.
    let held = a.claim(now_millis(), LEASE, 2).await.unwrap();
    assert_eq!(held.len(), 2);
    a.release(&held[0], now_millis()).await.unwrap();
    a.release(&held[1], now_millis() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(b.since_last().await, [Some(1)]);

    // A restart gives back A's leases at once: all of them, in one notification.
    let held = a.claim(now_millis(), LEASE, 10).await.unwrap();
    assert_eq!(held.len(), 10);
    assert_eq!(a.release_all_leases(now_millis()).await.unwrap(), 10);
    assert_eq!(b.since_last().await, [Some(10)]);

    b.listener.stop().await;
    b_database.pool().close().await;
    common::drop_test_database(&name, database).await;
}

#[tokio::test]
async fn the_jobs_of_a_silent_instance_are_told_to_every_instance_when_taken_over() {
    let (name, database) = common::fresh_named_database().await;
    let a = database.queue_for("a");
    let b = common::open_again(&name).await.queue_for("b");
    let c_database = common::open_again(&name).await;
    let c = listen(&c_database).await;
    let start = now_millis();
    a.heartbeat(start, Duration::from_secs(30)).await.unwrap();
    let jobs: Vec<EmailAddress> = (0..3).map(|i| addr(&format!("t{i}@x.test"))).collect();
    a.enqueue(EmailId::new(), &jobs, false, start)
        .await
        .unwrap();
    assert_eq!(a.claim(start, LEASE, 3).await.unwrap().len(), 3);
    let _ = c.since_last().await;

    // A falls silent; B's heartbeat takes its jobs over and C hears of them too.
    let later = start + Duration::from_secs(31);
    assert_eq!(
        b.heartbeat(later, Duration::from_secs(30)).await.unwrap(),
        3
    );
    assert_eq!(c.since_last().await, [Some(3)]);

    c.listener.stop().await;
    c_database.pool().close().await;
    common::drop_test_database(&name, database).await;
}
