//! What the `DeliveryQueue` contract does not cover but a shared PostgreSQL queue must
//! show: instances claiming at once, rows locked by others, large fan-outs.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{DeliveryQueue, EnqueueOutcome};
use mailfwd_domain::email::{EmailId, now_millis};
use mailfwd_postgres::PgDeliveryQueue;

const LEASE: Duration = Duration::from_secs(60);

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("a valid address")
}

/// Four instances (each its own pool), two claimers each, drain 400 jobs: every job is
/// claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_claiming_at_once_never_share_a_job() {
    let (name, database) = common::fresh_named_database().await;
    let queue = database.queue();
    let destinations: Vec<EmailAddress> = (0..4).map(|n| addr(&format!("d{n}@x.test"))).collect();
    for _ in 0..100 {
        queue
            .enqueue(EmailId::new(), &destinations, false, now_millis())
            .await
            .expect("enqueue");
    }
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(Arc::new(common::open_again(&name).await.queue()));
    }
    let mut claimers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let queue: Arc<PgDeliveryQueue> = Arc::clone(&instances[n % 4]);
        claimers.spawn(async move {
            let mut taken = Vec::new();
            loop {
                let batch = queue.claim(now_millis(), LEASE, 7).await.expect("claim");
                if batch.is_empty() {
                    return taken;
                }
                taken.extend(
                    batch
                        .into_iter()
                        .map(|c| (c.job.email, c.job.destination.to_string())),
                );
            }
        });
    }
    let mut all = Vec::new();
    while let Some(taken) = claimers.join_next().await {
        all.extend(taken.expect("the claimer ran"));
    }
    let distinct: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 400, "every job claimed");
    assert_eq!(distinct.len(), 400, "no job claimed twice");
    for instance in instances {
        drop(instance);
    }
    common::drop_test_database(&name, database).await;
}

/// A job another transaction has locked is passed over, not waited for: the claim
/// returns the other due jobs at once (`SKIP LOCKED`).
#[tokio::test]
async fn a_claim_skips_rows_locked_elsewhere_instead_of_waiting() {
    let (name, database) = common::fresh_named_database().await;
    let queue = database.queue();
    let (busy, free) = (EmailId::new(), EmailId::new());
    for email in [busy, free] {
        queue
            .enqueue(email, &[addr("a@x.test")], false, now_millis())
            .await
            .expect("enqueue");
    }
    let mut other = database.pool().begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM delivery_jobs WHERE email_id = $1::uuid FOR UPDATE")
        .bind(busy.to_string())
        .execute(&mut *other)
        .await
        .expect("lock one job");
    let claimed =
        tokio::time::timeout(Duration::from_secs(5), queue.claim(now_millis(), LEASE, 10))
            .await
            .expect("the claim does not wait for the lock")
            .expect("claim");
    let emails: Vec<EmailId> = claimed.iter().map(|c| c.job.email).collect();
    assert_eq!(emails, vec![free]);
    other.rollback().await.expect("rollback");
    let later = queue.claim(now_millis(), LEASE, 10).await.expect("claim");
    assert_eq!(later.len(), 1, "the unlocked job is claimed next time");
    assert_eq!(later[0].job.email, busy);
    common::drop_test_database(&name, database).await;
}

/// A fan-out of thousands travels as two array parameters, in one statement.
#[tokio::test]
async fn thousands_of_destinations_are_enqueued_at_once() {
    let (name, database) = common::fresh_named_database().await;
    let queue = database.queue();
    let destinations: Vec<EmailAddress> =
        (0..5000).map(|n| addr(&format!("d{n}@x.test"))).collect();
    let email = EmailId::new();
    let claimed = queue
        .enqueue_claimed(email, &destinations, SystemTime::now(), LEASE)
        .await
        .expect("5000 destinations fit");
    assert_eq!(claimed.len(), 5000);
    assert!(
        claimed
            .iter()
            .all(|(outcome, job)| *outcome == EnqueueOutcome::Enqueued && job.is_some())
    );
    let leases: HashSet<u64> = claimed
        .iter()
        .flat_map(|(_, c)| c.as_ref().map(|c| c.lease))
        .collect();
    assert_eq!(leases.len(), 5000, "every job its own lease token");
    assert_eq!(queue.jobs_of(email).await.expect("jobs").len(), 5000);
    let again = queue
        .enqueue(email, &destinations, false, SystemTime::now())
        .await
        .expect("enqueue again");
    assert!(again.iter().all(|o| *o == EnqueueOutcome::AlreadyPending));
    common::drop_test_database(&name, database).await;
}

/// The same destination twice in one call (differing only in case) is one job, forced
/// or not: PostgreSQL refuses to upsert one row twice in a statement.
#[tokio::test]
async fn a_destination_given_twice_is_one_job() {
    let (name, database) = common::fresh_named_database().await;
    let queue = database.queue();
    let email = EmailId::new();
    let twice = [addr("Same@x.test"), addr("same@x.test")];
    let first = queue
        .enqueue(email, &twice, false, now_millis())
        .await
        .expect("enqueue");
    assert_eq!(first, vec![EnqueueOutcome::Enqueued; 2]);
    let forced = queue
        .enqueue(email, &twice, true, now_millis())
        .await
        .expect("force");
    assert_eq!(forced, vec![EnqueueOutcome::Requeued; 2]);
    let jobs = queue.jobs_of(email).await.expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].destination.to_string(), "Same@x.test");
    common::drop_test_database(&name, database).await;
}
