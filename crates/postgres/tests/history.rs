//! Final jobs leave `delivery_jobs` for `delivery_history` (migration 0005), and the
//! port cannot tell: `jobs_of` shows them, enqueueing answers their state and creates
//! nothing, a forced enqueue brings them back, a lost lease moves nothing. Counted with
//! the pool, since the port's answers are meant not to change.

mod common;

use std::time::Duration;

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{DeliveryQueue, EnqueueOutcome, JobState, QueueError};
use mailfwd_domain::email::{EmailId, now_millis};
use mailfwd_postgres::PgDatabase;
use sqlx::PgPool;

const LEASE: Duration = Duration::from_secs(60);

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).expect("a valid address")
}

/// The rows of `email` in each table: (`delivery_jobs`, `delivery_history`).
async fn rows(pool: &PgPool, email: EmailId) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM delivery_jobs WHERE email_id = $1::uuid),
                (SELECT count(*) FROM delivery_history WHERE email_id = $1::uuid)",
    )
    .bind(email.to_string())
    .fetch_one(pool)
    .await
    .expect("count the rows")
}

/// An email with one job delivered (`a`), one failed (`b`) and one pending (`c`).
async fn settled_email(database: &PgDatabase) -> EmailId {
    let queue = database.queue();
    let now = now_millis();
    let email = EmailId::new();
    let dests = [addr("c@x.test"), addr("a@x.test"), addr("b@x.test")];
    queue
        .enqueue(email, &dests, false, now)
        .await
        .expect("the queue answers");
    for claimed in queue
        .claim(now, LEASE, 10)
        .await
        .expect("the queue answers")
    {
        match claimed.job.destination.to_string().as_str() {
            "a@x.test" => queue
                .delivered(&claimed, "250 ok", now)
                .await
                .expect("the queue answers"),
            "b@x.test" => queue
                .failed(&claimed, "550 no", now)
                .await
                .expect("the queue answers"),
            _ => queue
                .retry_later(&claimed, "451 later", now + LEASE)
                .await
                .expect("the queue answers"),
        }
    }
    email
}

#[tokio::test]
async fn final_jobs_leave_the_queue_table_and_jobs_of_still_shows_them() {
    let (name, database) = common::fresh_named_database().await;
    let email = settled_email(&database).await;
    assert_eq!(rows(database.pool(), email).await, (1, 2));
    let jobs = database.queue().jobs_of(email).await.unwrap();
    let seen: Vec<(String, JobState, u32)> = jobs
        .into_iter()
        .map(|j| (j.destination.to_string(), j.state, j.attempts))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "a@x.test".to_owned(),
                JobState::Delivered {
                    reply: "250 ok".to_owned()
                },
                1
            ),
            (
                "b@x.test".to_owned(),
                JobState::Failed {
                    reason: "550 no".to_owned()
                },
                1
            ),
            ("c@x.test".to_owned(), JobState::Pending, 1),
        ],
        "pending and final jobs, in destination order"
    );
    let stats = database.queue().stats(now_millis()).await.unwrap();
    assert_eq!(stats.pending, 1, "history is not pending");
    common::drop_test_database(&name, database).await;
}

#[tokio::test]
async fn enqueueing_a_final_job_again_answers_its_state_and_creates_nothing() {
    let (name, database) = common::fresh_named_database().await;
    let email = settled_email(&database).await;
    let queue = database.queue();
    let dests = [addr("A@x.test"), addr("b@x.test"), addr("c@x.test")];
    use EnqueueOutcome::*;
    let again = queue
        .enqueue(email, &dests, false, now_millis())
        .await
        .unwrap();
    assert_eq!(again, vec![AlreadyDelivered, AlreadyFailed, AlreadyPending]);
    let claimed = queue
        .enqueue_claimed(email, &dests, now_millis(), LEASE)
        .await
        .unwrap();
    assert_eq!(
        claimed,
        vec![
            (AlreadyDelivered, None),
            (AlreadyFailed, None),
            (AlreadyPending, None)
        ]
    );
    assert_eq!(
        rows(database.pool(), email).await,
        (1, 2),
        "nothing created"
    );
    common::drop_test_database(&name, database).await;
}

#[tokio::test]
async fn a_forced_enqueue_brings_final_jobs_back_as_they_were_written() {
    let (name, database) = common::fresh_named_database().await;
    let email = settled_email(&database).await;
    let queue = database.queue();
    let now = now_millis();
    let forced = queue
        .enqueue(email, &[addr("A@x.test"), addr("b@x.test")], true, now)
        .await
        .unwrap();
    assert_eq!(forced, vec![EnqueueOutcome::Requeued; 2]);
    assert_eq!(rows(database.pool(), email).await, (3, 0));
    let jobs = queue.jobs_of(email).await.unwrap();
    for job in &jobs[..2] {
        assert_eq!(
            (&job.state, job.attempts, job.last_reply.as_deref()),
            (&JobState::Pending, 0, None),
            "reset as new"
        );
    }
    assert_eq!(jobs[0].destination.to_string(), "a@x.test", "spelling kept");
    let due = queue.claim(now, LEASE, 10).await.unwrap();
    assert_eq!(due.len(), 2, "the requeued jobs are due at once");
    assert!(due.iter().all(|c| c.job.attempts == 1));
    common::drop_test_database(&name, database).await;
}

#[tokio::test]
async fn a_late_record_after_a_lost_lease_moves_nothing() {
    let (name, database) = common::fresh_named_database().await;
    let queue = database.queue();
    let now = now_millis();
    let email = EmailId::new();
    queue
        .enqueue(email, &[addr("a@x.test")], false, now)
        .await
        .unwrap();
    let slow = queue.claim(now, LEASE, 1).await.unwrap().remove(0);
    let expired = now + LEASE + Duration::from_secs(1);
    let current = queue.claim(expired, LEASE, 1).await.unwrap().remove(0);
    for late in [
        queue.delivered(&slow, "250 slow", expired).await,
        queue.failed(&slow, "550 slow", expired).await,
    ] {
        assert!(matches!(late, Err(QueueError::LeaseLost { .. })));
    }
    assert_eq!(rows(database.pool(), email).await, (1, 0));
    queue.delivered(&current, "250 ok", expired).await.unwrap();
    assert_eq!(rows(database.pool(), email).await, (0, 1));
    assert!(matches!(
        queue.delivered(&current, "250 twice", expired).await,
        Err(QueueError::LeaseLost { .. })
    ));
    common::drop_test_database(&name, database).await;
}

/// Waits until some statement on the test database waits for a lock.
async fn until_someone_waits(pool: &PgPool) {
    for _ in 0..500 {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .expect("the database answers");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no statement came to wait for the move");
}

/// Moves `email`'s job to history in a transaction left open, as a worker's `delivered`
/// does, runs `enqueue` (forced or not) meanwhile, and commits once it waits: what the
/// enqueue answers, and the rows left.
async fn enqueue_during_a_move(force: bool) -> (Vec<EnqueueOutcome>, (i64, i64)) {
    let (name, database) = common::fresh_named_database().await;
    let queue = database.queue();
    let now = now_millis();
    let email = EmailId::new();
    queue
        .enqueue(email, &[addr("a@x.test")], false, now)
        .await
        .expect("the database answers");
    let mut mover = database.pool().begin().await.expect("the database answers");
    sqlx::query(
        "WITH moved AS (DELETE FROM delivery_jobs WHERE email_id = $1::uuid
                        RETURNING email_id, destination_key, destination, attempts, created_at)
         INSERT INTO delivery_history (email_id, destination_key, destination, state,
           attempts, next_attempt_at, last_reply, created_at)
         SELECT email_id, destination_key, destination, 'delivered', attempts, 0, '250 ok',
                created_at FROM moved",
    )
    .bind(email.to_string())
    .execute(&mut *mover)
    .await
    .expect("the database answers");
    let racing = tokio::spawn({
        let queue = queue.clone();
        async move { queue.enqueue(email, &[addr("a@x.test")], force, now).await }
    });
    until_someone_waits(database.pool()).await;
    mover.commit().await.expect("the database answers");
    let outcome = racing
        .await
        .expect("the enqueue ran")
        .expect("the enqueue answers");
    let left = rows(database.pool(), email).await;
    common::drop_test_database(&name, database).await;
    (outcome, left)
}

/// The enqueue's snapshot had the job in neither place it could trust (still in the
/// queue, being moved): it must not create a second job once the move commits.
#[tokio::test]
async fn an_enqueue_racing_a_move_to_history_creates_no_second_job() {
    let (outcome, left) = enqueue_during_a_move(false).await;
    assert_eq!(outcome, vec![EnqueueOutcome::AlreadyDelivered]);
    assert_eq!(left, (0, 1));
}

#[tokio::test]
async fn a_forced_enqueue_racing_a_move_to_history_leaves_one_pending_job() {
    let (outcome, left) = enqueue_during_a_move(true).await;
    assert_eq!(outcome, vec![EnqueueOutcome::Requeued]);
    assert_eq!(left, (1, 0));
}

/// Final rows recorded before migration 0005 move to history when it runs.
#[tokio::test]
async fn the_migration_moves_final_jobs_recorded_before_it() {
    let (name, database) = common::fresh_named_database().await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}_old");
    let old_name = format!("{name}_old");
    let mut admin = common::admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{old_name}\""
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    sqlx::migrate!("./migrations")
        .run_to(4, &pool)
        .await
        .unwrap();
    let email = EmailId::new();
    sqlx::query(
        "INSERT INTO delivery_jobs (email_id, destination_key, destination, state, attempts,
           next_attempt_at, last_reply, created_at)
         SELECT $1::uuid, k, k, s, 1, 5, r, 2
         FROM (VALUES ('a@x.test', 'delivered', '250 ok'), ('b@x.test', 'failed', '550 no'),
                      ('c@x.test', 'pending', NULL)) AS t(k, s, r)",
    )
    .bind(email.to_string())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let settings = mailfwd_postgres::PoolSettings::default();
    let migrated = PgDatabase::open(&url, &settings).await.unwrap();
    assert_eq!(rows(migrated.pool(), email).await, (1, 2));
    let states: Vec<JobState> = migrated
        .queue()
        .jobs_of(email)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.state)
        .collect();
    assert_eq!(
        states,
        vec![
            JobState::Delivered {
                reply: "250 ok".to_owned()
            },
            JobState::Failed {
                reason: "550 no".to_owned()
            },
            JobState::Pending
        ]
    );
    common::drop_test_database(&old_name, migrated).await;
    common::drop_test_database(&name, database).await;
}
