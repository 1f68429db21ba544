//! The `DeliveryQueue` contract suite on a fresh SQLite file per test.

mod common;

use mailfwd_domain::delivery_queue_contract_tests;
use mailfwd_sqlite::{Database, SqliteDeliveryQueue};

async fn fresh_queue() -> SqliteDeliveryQueue {
    Database::open(&common::fresh_url("queue-contract"))
        .await
        .expect("open a fresh database")
        .queue()
}

delivery_queue_contract_tests!(fresh_queue());

/// SQLite has one writer at a time: concurrent enqueues and claims share the writer's
/// transactions, and never fail with "database is locked".
#[tokio::test]
async fn concurrent_enqueues_and_claims_all_succeed() {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use mailfwd_domain::EmailAddress;
    use mailfwd_domain::delivery::DeliveryQueue;
    use mailfwd_domain::email::EmailId;

    let queue = Arc::new(fresh_queue().await);
    let destinations = [
        EmailAddress::parse("a@x.test").unwrap(),
        EmailAddress::parse("b@x.test").unwrap(),
    ];
    let mut tasks = Vec::new();
    for n in 0..100 {
        let (queue, destinations) = (Arc::clone(&queue), destinations.clone());
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                queue
                    .enqueue(EmailId::new(), &destinations, false, SystemTime::now())
                    .await
                    .map(|o| o.len())
            } else {
                queue
                    .claim(SystemTime::now(), Duration::from_secs(60), 3)
                    .await
                    .map(|c| c.len())
            }
        }));
    }
    for task in tasks {
        task.await
            .unwrap()
            .expect("no SQLITE_BUSY under concurrency");
    }
    let stats = queue
        .stats(SystemTime::now() + Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(stats.pending, 100);
}

/// A fan-out larger than one statement's parameters allow is written whole.
#[tokio::test]
async fn thousands_of_destinations_are_enqueued_at_once() {
    use std::time::{Duration, SystemTime};

    use mailfwd_domain::EmailAddress;
    use mailfwd_domain::delivery::{DeliveryQueue, EnqueueOutcome};
    use mailfwd_domain::email::EmailId;

    let queue = fresh_queue().await;
    let destinations: Vec<EmailAddress> = (0..5000)
        .map(|n| EmailAddress::parse(&format!("d{n}@x.test")).unwrap())
        .collect();
    let email = EmailId::new();
    let claimed = queue
        .enqueue_claimed(
            email,
            &destinations,
            SystemTime::now(),
            Duration::from_secs(60),
        )
        .await
        .expect("5000 destinations fit");
    assert_eq!(claimed.len(), 5000);
    assert!(
        claimed
            .iter()
            .all(|(outcome, job)| *outcome == EnqueueOutcome::Enqueued && job.is_some())
    );
    assert_eq!(queue.jobs_of(email).await.unwrap().len(), 5000);
    let again = queue
        .enqueue(email, &destinations, false, SystemTime::now())
        .await
        .unwrap();
    assert!(again.iter().all(|o| *o == EnqueueOutcome::AlreadyPending));
}
