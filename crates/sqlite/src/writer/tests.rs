//! The writer on its own: what the ports cannot show.

use std::time::Duration;

use mailfwd_domain::email::EmailLog;

use super::*;
use crate::SqliteEmailLog;

async fn fresh_pool(dir: &tempfile::TempDir) -> SqlitePool {
    let url = format!("sqlite://{}/writer.db", dir.path().display());
    crate::pool::connect(&url)
        .await
        .expect("open a fresh database")
}

#[tokio::test]
async fn a_write_that_panics_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pool = fresh_pool(&dir).await;
    let writer = Writer::start(&pool);
    let buggy = writer
        .write(false, |_conn| {
            Box::pin(async {
                let bug = true;
                if bug {
                    panic!("a bug in a write");
                }
                Ok(())
            })
        })
        .await;
    assert!(matches!(buggy, Err(WriteError::Stopped)), "{buggy:?}");
    let next: i64 = writer
        .write(false, |conn| {
            Box::pin(sqlx::query_scalar("SELECT 41 + 1").fetch_one(conn))
        })
        .await
        .expect("the writer goes on");
    assert_eq!(next, 42);
}

#[tokio::test]
async fn the_writer_task_ends_when_the_log_is_dropped() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pool = fresh_pool(&dir).await;
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    // Opening the pool leaves short-lived tasks behind: let them finish first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = tasks();
    let log = SqliteEmailLog::new(pool.clone(), Writer::start(&pool));
    assert_eq!(tasks(), before + 1, "one writer task");
    let email = mailfwd_domain::ReceivedEmail {
        id: mailfwd_domain::EmailId::new(),
        email: mailfwd_domain::NewEmail {
            envelope: mailfwd_domain::Envelope {
                sender: None,
                recipients: Vec::new(),
            },
            peer: None,
            helo: None,
            tls: false,
            encoding: mailfwd_domain::Encoding::default(),
        },
        size: 1,
        received_at: mailfwd_domain::email::now_millis(),
    };
    log.record(&email).await.expect("record");
    drop(log);
    for _ in 0..100 {
        if tasks() <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(tasks() <= before, "the writer task has ended");
    // What it wrote stays, for the next log on the same database.
    let again = SqliteEmailLog::new(pool.clone(), Writer::start(&pool));
    assert_eq!(again.get(&email.id).await.expect("still there"), email);
}

fn received() -> mailfwd_domain::ReceivedEmail {
    mailfwd_domain::ReceivedEmail {
        id: mailfwd_domain::EmailId::new(),
        email: mailfwd_domain::NewEmail {
            envelope: mailfwd_domain::Envelope {
                sender: None,
                recipients: Vec::new(),
            },
            peer: Some("192.0.2.1:25".to_owned()),
            helo: None,
            tls: false,
            encoding: mailfwd_domain::Encoding::default(),
        },
        size: 1,
        received_at: mailfwd_domain::email::now_millis(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluated_marks_that_come_together_share_one_statement_and_each_waits_for_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pool = fresh_pool(&dir).await;
    let log = Arc::new(SqliteEmailLog::new(pool.clone(), Writer::start(&pool)));
    let emails: Vec<_> = (0..200).map(|_| received()).collect();
    for email in &emails {
        log.record(email).await.expect("record");
    }
    let before = log.commits();
    let marks = emails.iter().map(|email| {
        let (log, id) = (Arc::clone(&log), email.id);
        tokio::spawn(async move { log.mark_evaluated(&id).await })
    });
    for marked in futures_util::future::join_all(marks).await {
        marked.expect("no panic").expect("marked");
    }
    let commits = log.commits() - before;
    eprintln!("200 marks at once: {commits} commits");
    assert!(commits < 50, "{commits} commits for 200 marks");
    let left = log.unevaluated(None, 1000).await.expect("read");
    assert!(left.is_empty(), "{} still unevaluated", left.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_that_come_together_share_one_statement_and_a_lost_lease_is_still_told() {
    use mailfwd_domain::delivery::{ClaimedJob, DeliveryQueue, JobState, QueueError};

    let dir = tempfile::tempdir().expect("a temporary directory");
    let pool = fresh_pool(&dir).await;
    let writer = Writer::start(&pool);
    let queue = Arc::new(crate::SqliteDeliveryQueue::new(
        pool.clone(),
        writer.clone(),
    ));
    let now = mailfwd_domain::email::now_millis();
    for n in 0..60 {
        let to = mailfwd_domain::EmailAddress::parse(&format!("d{n}@dest.test")).unwrap();
        let email = mailfwd_domain::EmailId::new();
        queue
            .enqueue(email, &[to], false, now)
            .await
            .expect("enqueue");
    }
    let claimed = queue
        .claim(now, Duration::from_secs(600), 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 60);
    let before = writer.commits();
    let outcomes = claimed.iter().enumerate().map(|(n, job)| {
        let queue = Arc::clone(&queue);
        // Every tenth worker has lost its lease (another took the job over).
        let job = ClaimedJob {
            lease: if n % 10 == 0 {
                job.lease ^ 1
            } else {
                job.lease
            },
            ..job.clone()
        };
        tokio::spawn(async move { queue.delivered(&job, "250 ok", now).await })
    });
    let outcomes = futures_util::future::join_all(outcomes).await;
    eprintln!("60 outcomes at once: {} commits", writer.commits() - before);
    for (n, (outcome, job)) in outcomes.into_iter().zip(&claimed).enumerate() {
        let outcome = outcome.expect("no panic");
        let state = queue.jobs_of(job.job.email).await.expect("read")[0]
            .state
            .clone();
        if n % 10 == 0 {
            assert!(
                matches!(outcome, Err(QueueError::LeaseLost { .. })),
                "{outcome:?}"
            );
            assert_eq!(state, JobState::Pending, "left alone");
        } else {
            outcome.expect("settled");
            assert!(matches!(state, JobState::Delivered { .. }), "{state:?}");
        }
    }
}
