//! The `EmailLog` contract suite on a fresh PostgreSQL database per test, plus what
//! PostgreSQL makes different: concurrent records, and a retried record.

use std::sync::Arc;

use mailfwd_domain::email::{EmailLog, EmailQuery, now_millis};
use mailfwd_domain::email_log_contract_tests;
use mailfwd_domain::{EmailAddress, EmailId, Envelope, NewEmail, ReceivedEmail};
use mailfwd_postgres::PgEmailLog;

mod common;

async fn fresh_log() -> PgEmailLog {
    common::fresh_database().await.email_log()
}

email_log_contract_tests!(fresh_log());

fn received(n: usize) -> ReceivedEmail {
    let address = |s: &str| EmailAddress::parse(s).expect("a valid address");
    ReceivedEmail {
        id: EmailId::new(),
        email: NewEmail {
            envelope: Envelope {
                sender: Some(address(&format!("sender{n}@example.test"))),
                recipients: vec![address("sales@acme.test")],
            },
            peer: Some(format!("192.0.2.{}:25", n % 250)),
            helo: Some("client.example".to_owned()),
            tls: n.is_multiple_of(2),
            encoding: mailfwd_domain::Encoding::default(),
        },
        size: n as u64,
        received_at: now_millis(),
    }
}

/// Many sessions recording at once (more than the pool's connections) all succeed and
/// are all readable, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_are_all_readable() {
    let (name, database) = common::fresh_named_database().await;
    let log = Arc::new(database.email_log());
    let emails: Vec<ReceivedEmail> = (0..200).map(received).collect();
    let mut sessions = tokio::task::JoinSet::new();
    for email in emails.clone() {
        let log = Arc::clone(&log);
        sessions.spawn(async move { log.record(&email).await });
    }
    while let Some(done) = sessions.join_next().await {
        done.expect("the session ran")
            .expect("the record is durable");
    }
    let everything = EmailQuery {
        limit: 1_000,
        ..EmailQuery::default()
    };
    let page = log.list(&everything).await.expect("list");
    let mut expected = emails;
    expected.sort_by_key(|e| e.id);
    assert_eq!(page.emails, expected);
    common::drop_test_database(&name, database).await;
}

#[tokio::test]
async fn recording_the_same_id_again_replaces_the_record() {
    let (name, database) = common::fresh_named_database().await;
    let log = database.email_log();
    let first = received(1);
    log.record(&first).await.expect("record");
    let retried = ReceivedEmail {
        size: 42,
        ..first.clone()
    };
    log.record(&retried).await.expect("record again");
    assert_eq!(log.get(&first.id).await.expect("recorded"), retried);
    common::drop_test_database(&name, database).await;
}

#[tokio::test]
async fn a_record_with_a_pending_delivery_is_not_forgotten() {
    use mailfwd_domain::delivery::DeliveryQueue;
    let (name, database) = common::fresh_named_database().await;
    let (log, queue) = (database.email_log(), database.queue_for("test"));
    let email = received(1);
    log.record(&email).await.expect("recorded");
    let destination = EmailAddress::parse("alice@dest.test").expect("valid");
    queue
        .enqueue(email.id, &[destination], false, now_millis())
        .await
        .expect("enqueued");
    log.mark_evaluated(&email.id).await.expect("marked");
    assert!(
        !log.forget(&email.id).await.expect("asked"),
        "a delivery is pending"
    );
    assert!(log.get(&email.id).await.is_ok());
    let claimed = queue
        .claim(now_millis(), std::time::Duration::from_secs(60), 1)
        .await
        .expect("claimed");
    queue
        .delivered(&claimed[0], "250 ok", now_millis())
        .await
        .expect("delivered");
    assert!(log.forget(&email.id).await.expect("asked"));
    common::drop_test_database(&name, database).await;
}
