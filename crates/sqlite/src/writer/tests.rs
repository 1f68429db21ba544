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
