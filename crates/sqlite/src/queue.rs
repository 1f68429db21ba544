//! `DeliveryQueue` on SQLite.

mod enqueue;
mod forget;
mod row;
mod settle;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{
    ClaimedJob, DeliveryJob, DeliveryQueue, EnqueueOutcome, JobState, QueueError, QueueStats,
};
use mailfwd_domain::email::EmailId;
use sqlx::QueryBuilder;
use sqlx::sqlite::{SqliteConnection, SqlitePool};

use crate::coalesce::Coalescer;
use crate::writer::{WriteError, Writer};
use enqueue::{NewJobs, enqueue_all};
use row::{JOB_COLUMNS, JobRow, millis, time};
use settle::{Settle, settle_all};

/// Delivery jobs in the `delivery_jobs` table (see migration 0003 for the lease scheme).
///
/// Every write goes through the database's one writer task, as relaxed (not fsynced)
/// commits: see the writer for why that is safe.
#[derive(Debug, Clone)]
pub struct SqliteDeliveryQueue {
    pool: SqlitePool,
    writer: Writer,
    /// Outcomes waiting for the writer, written together.
    settles: Arc<Coalescer<Settle, bool>>,
    /// New jobs waiting for the writer, written together.
    new_jobs: Arc<Coalescer<NewJobs, Vec<EnqueueOutcome>>>,
}

/// A new job's lease, when it is claimed as it is enqueued.
#[derive(Clone, Copy)]
struct NewLease {
    token: i64,
    until: i64,
}

impl SqliteDeliveryQueue {
    /// A queue on an open pool whose migrations have run, writing through `writer` (the
    /// one the database's other stores share).
    #[must_use]
    pub(crate) fn new(pool: SqlitePool, writer: Writer) -> Self {
        SqliteDeliveryQueue {
            pool,
            writer,
            settles: Arc::default(),
            new_jobs: Arc::default(),
        }
    }

    /// Moves a job this worker holds to `state`, with `reply` (kept as it was if
    /// `None`), due at `at`; `uncount` takes back the attempt its claim counted.
    /// `LeaseLost` if the worker no longer holds it.
    async fn settle(
        &self,
        claimed: &ClaimedJob,
        state: &'static str,
        reply: Option<&str>,
        at: SystemTime,
        uncount: bool,
    ) -> Result<(), QueueError> {
        let settle = Settle {
            email: claimed.job.email.to_string(),
            key: claimed.job.destination.match_key(),
            lease: i64::from_ne_bytes(claimed.lease.to_ne_bytes()),
            state,
            reply: reply.map(str::to_owned),
            at: millis(at),
            uncount: i64::from(uncount),
        };
        let settled = self
            .settles
            .write(&self.writer, false, settle, settle_all)
            .await
            .map_err(QueueError::storage)?;
        if !settled {
            return Err(QueueError::LeaseLost {
                email: claimed.job.email,
                destination: claimed.job.destination.clone(),
            });
        }
        Ok(())
    }

    /// Writes the jobs of one enqueue call in the writer's next batch.
    async fn write_jobs(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        force: bool,
        now: SystemTime,
        lease: Option<NewLease>,
    ) -> Result<Vec<EnqueueOutcome>, QueueError> {
        if destinations.is_empty() {
            return Ok(Vec::new());
        }
        let jobs: Vec<(String, String)> = destinations
            .iter()
            .map(|d| (d.match_key(), d.to_string()))
            .collect();
        let email = email.to_string();
        if !force && jobs.len() <= ROWS_PER_INSERT {
            // Fresh mail: shares one `INSERT` with the other emails' jobs of the moment.
            let new = NewJobs {
                email,
                jobs,
                now: millis(now),
                lease,
            };
            return self
                .new_jobs
                .write(&self.writer, false, new, enqueue_all)
                .await
                .map_err(QueueError::storage);
        }
        self.writer
            .write(false, move |conn| {
                Box::pin(enqueue_jobs(conn, email, jobs, force, millis(now), lease))
            })
            .await
            .map_err(queue_error)
    }
}

fn queue_error(error: WriteError) -> QueueError {
    QueueError::storage(error)
}

/// Jobs per `INSERT`: 7 parameters each, well under SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 1000;

/// One `INSERT` of `jobs` (at most [`ROWS_PER_INSERT`]).
async fn insert_jobs(
    conn: &mut SqliteConnection,
    email: &str,
    jobs: &[(String, String)],
    force: bool,
    now: i64,
    lease: Option<NewLease>,
) -> Result<(), sqlx::Error> {
    insert_statement(email, jobs, force, now, lease)
        .build()
        .execute(conn)
        .await
        .map(drop)
}

/// The `INSERT` of `jobs` (at most [`ROWS_PER_INSERT`]), without its end.
fn insert_statement<'a>(
    email: &'a str,
    jobs: &'a [(String, String)],
    force: bool,
    now: i64,
    lease: Option<NewLease>,
) -> QueryBuilder<sqlx::Sqlite> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO delivery_jobs (email_id, destination_key, destination, state, attempts,
           next_attempt_at, lease, created_at) ",
    );
    insert.push_values(jobs, |mut row, (key, address)| {
        row.push_bind(email)
            .push_bind(key)
            .push_bind(address)
            .push("'pending'")
            .push_bind(i64::from(lease.is_some()))
            .push_bind(lease.map_or(now, |l| l.until))
            .push_bind(lease.map(|l| l.token))
            .push_bind(now);
    });
    insert.push(if force {
        " ON CONFLICT DO UPDATE SET state = 'pending', attempts = 0, next_attempt_at = excluded.created_at,
            lease = NULL, last_reply = NULL, created_at = excluded.created_at"
    } else {
        " ON CONFLICT DO NOTHING"
    });
    insert
}

/// Inserts one job per (key, address) in `jobs` and says what happened to each. A
/// failure leaves nothing half-written.
async fn enqueue_jobs(
    conn: &mut SqliteConnection,
    email: String,
    jobs: Vec<(String, String)>,
    force: bool,
    now: i64,
    lease: Option<NewLease>,
) -> Result<Vec<EnqueueOutcome>, sqlx::Error> {
    // Read before writing (the writer's transaction holds the write lock, so nothing
    // changes in between): which jobs exist, and in which state.
    let existing: Vec<(String, String)> =
        sqlx::query_as("SELECT destination_key, state FROM delivery_jobs WHERE email_id = ?1")
            .bind(&email)
            .fetch_all(&mut *conn)
            .await?;
    // SQLite takes at most 32,766 parameters per statement: a large fan-out is written
    // in several statements, under a savepoint so that they land all or none.
    let chunks: Vec<&[(String, String)]> = jobs.chunks(ROWS_PER_INSERT).collect();
    if chunks.len() > 1 {
        sqlx::query("SAVEPOINT enqueue").execute(&mut *conn).await?;
    }
    for chunk in &chunks {
        if let Err(error) = insert_jobs(conn, &email, chunk, force, now, lease).await {
            if chunks.len() > 1 {
                sqlx::query("ROLLBACK TO enqueue")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("RELEASE enqueue").execute(&mut *conn).await?;
            }
            return Err(error);
        }
    }
    if chunks.len() > 1 {
        sqlx::query("RELEASE enqueue").execute(&mut *conn).await?;
    }
    let state_of = |key: &str| {
        existing
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s.as_str())
    };
    Ok(jobs
        .iter()
        .map(|(key, _)| match state_of(key) {
            None => EnqueueOutcome::Enqueued,
            Some(_) if force => EnqueueOutcome::Requeued,
            Some("delivered") => EnqueueOutcome::AlreadyDelivered,
            Some("failed") => EnqueueOutcome::AlreadyFailed,
            Some(_) => EnqueueOutcome::AlreadyPending,
        })
        .collect())
}

#[async_trait]
impl DeliveryQueue for SqliteDeliveryQueue {
    async fn enqueue(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        force: bool,
        now: SystemTime,
    ) -> Result<Vec<EnqueueOutcome>, QueueError> {
        self.write_jobs(email, destinations, force, now, None).await
    }

    async fn enqueue_claimed(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        now: SystemTime,
        lease: Duration,
    ) -> Result<Vec<(EnqueueOutcome, Option<ClaimedJob>)>, QueueError> {
        let new_lease = NewLease {
            token: fastrand::i64(..),
            until: millis(now + lease),
        };
        let outcomes = self
            .write_jobs(email, destinations, false, now, Some(new_lease))
            .await?;
        let claimed_at = time(millis(now));
        Ok(outcomes
            .into_iter()
            .zip(destinations)
            .map(|(outcome, destination)| {
                let claimed = (outcome == EnqueueOutcome::Enqueued).then(|| ClaimedJob {
                    job: DeliveryJob {
                        email,
                        destination: destination.clone(),
                        state: JobState::Pending,
                        attempts: 1,
                        next_attempt_at: time(new_lease.until),
                        last_reply: None,
                        created_at: claimed_at,
                    },
                    lease: u64::from_ne_bytes(new_lease.token.to_ne_bytes()),
                });
                (outcome, claimed)
            })
            .collect())
    }

    async fn claim(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        let token = fastrand::i64(..);
        let (until, now, limit) = (
            millis(now + lease),
            millis(now),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        let rows: Vec<JobRow> = self
            .writer
            .write(false, move |conn| {
                Box::pin(
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "UPDATE delivery_jobs SET lease = ?1, next_attempt_at = ?2, attempts = attempts + 1
                         WHERE (email_id, destination_key) IN (
                           SELECT email_id, destination_key FROM delivery_jobs
                           WHERE state = 'pending' AND next_attempt_at <= ?3 ORDER BY next_attempt_at LIMIT ?4)
                         RETURNING {JOB_COLUMNS}"
                    )))
                    .bind(token)
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(conn),
                )
            })
            .await
            .map_err(queue_error)?;
        rows.into_iter()
            .map(|row| {
                let lease = u64::from_ne_bytes(row.lease.unwrap_or(token).to_ne_bytes());
                Ok(ClaimedJob {
                    job: row.into_job()?,
                    lease,
                })
            })
            .collect()
    }

    async fn release(&self, claimed: &ClaimedJob, now: SystemTime) -> Result<(), QueueError> {
        self.settle(claimed, "pending", None, now, true).await
    }

    async fn release_all_leases(&self, now: SystemTime) -> Result<u64, QueueError> {
        // Attempts stay counted: the killed attempt may have reached the destination.
        let now = millis(now);
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE delivery_jobs SET lease = NULL, next_attempt_at = ?1
                         WHERE state = 'pending' AND lease IS NOT NULL",
                    )
                    .bind(now)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected())
                })
            })
            .await
            .map_err(queue_error)
    }

    async fn delivered(
        &self,
        job: &ClaimedJob,
        reply: &str,
        now: SystemTime,
    ) -> Result<(), QueueError> {
        self.settle(job, "delivered", Some(reply), now, false).await
    }

    async fn retry_later(
        &self,
        job: &ClaimedJob,
        reply: &str,
        retry_at: SystemTime,
    ) -> Result<(), QueueError> {
        self.settle(job, "pending", Some(reply), retry_at, false)
            .await
    }

    async fn failed(
        &self,
        job: &ClaimedJob,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), QueueError> {
        self.settle(job, "failed", Some(reason), now, false).await
    }

    async fn jobs_of(&self, email: EmailId) -> Result<Vec<DeliveryJob>, QueueError> {
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM delivery_jobs WHERE email_id = ?1 ORDER BY destination_key"
        )))
        .bind(email.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn forget(&self, email: EmailId) -> Result<bool, QueueError> {
        self.forget_jobs(email).await
    }

    async fn stats(&self, now: SystemTime) -> Result<QueueStats, QueueError> {
        let (pending, due, oldest, first): (i64, i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE next_attempt_at <= ?1),
                    min(next_attempt_at) FILTER (WHERE next_attempt_at <= ?1), min(created_at)
             FROM delivery_jobs WHERE state = 'pending'",
        )
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        let oldest_due_age = oldest.map_or(Duration::ZERO, |ms| {
            now.duration_since(time(ms)).unwrap_or_default()
        });
        let oldest_pending_age = first.map_or(Duration::ZERO, |ms| {
            now.duration_since(time(ms)).unwrap_or_default()
        });
        Ok(QueueStats {
            pending: u64::try_from(pending).unwrap_or(0),
            due: u64::try_from(due).unwrap_or(0),
            oldest_due_age,
            oldest_pending_age,
        })
    }
}
