//! `DeliveryQueue` on SQLite.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{
    ClaimedJob, DeliveryJob, DeliveryQueue, EnqueueOutcome, JobState, QueueError, QueueStats,
};
use mailfwd_domain::email::EmailId;
use sqlx::sqlite::SqlitePool;
use thiserror::Error;

/// Delivery jobs in the `delivery_jobs` table (see migration 0003 for the lease scheme).
#[derive(Debug, Clone)]
pub struct SqliteDeliveryQueue {
    pool: SqlitePool,
}

/// A stored job that no longer parses: the database was edited by hand.
#[derive(Debug, Error)]
#[error("the stored delivery job ({email_id}, {destination}) is corrupt: {why}")]
struct CorruptJob {
    email_id: String,
    destination: String,
    why: String,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    email_id: String,
    destination: String,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    lease: Option<i64>,
    last_reply: Option<String>,
    created_at: i64,
}

const JOB_COLUMNS: &str =
    "email_id, destination, state, attempts, next_attempt_at, lease, last_reply, created_at";

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl JobRow {
    fn into_job(self) -> Result<DeliveryJob, QueueError> {
        let corrupt = |why: String| {
            QueueError::storage(CorruptJob {
                email_id: self.email_id.clone(),
                destination: self.destination.clone(),
                why,
            })
        };
        let email = EmailId::parse(&self.email_id).map_err(|e| corrupt(e.to_string()))?;
        let destination =
            EmailAddress::parse(&self.destination).map_err(|e| corrupt(e.to_string()))?;
        let reply = self.last_reply.clone().unwrap_or_default();
        let state = match self.state.as_str() {
            "pending" => JobState::Pending,
            "delivered" => JobState::Delivered { reply },
            "failed" => JobState::Failed { reason: reply },
            other => return Err(corrupt(format!("unknown state '{other}'"))),
        };
        Ok(DeliveryJob {
            email,
            destination,
            state,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: time(self.next_attempt_at),
            last_reply: self.last_reply,
            created_at: time(self.created_at),
        })
    }
}

impl SqliteDeliveryQueue {
    /// A queue on an open pool whose migrations have run.
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        SqliteDeliveryQueue { pool }
    }

    /// Moves a job this worker holds to `state`; `LeaseLost` if it no longer holds it.
    async fn finish(
        &self,
        claimed: &ClaimedJob,
        state: &str,
        reply: &str,
        at: SystemTime,
    ) -> Result<(), QueueError> {
        let result = sqlx::query(
            "UPDATE delivery_jobs SET state = ?1, last_reply = ?2, next_attempt_at = ?3, lease = NULL
             WHERE email_id = ?4 AND destination_key = ?5 AND lease = ?6 AND state = 'pending'",
        )
        .bind(state)
        .bind(reply)
        .bind(millis(at))
        .bind(claimed.job.email.to_string())
        .bind(claimed.job.destination.match_key())
        .bind(i64::from_ne_bytes(claimed.lease.to_ne_bytes()))
        .execute(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        if result.rows_affected() == 0 {
            return Err(QueueError::LeaseLost {
                email: claimed.job.email,
                destination: claimed.job.destination.clone(),
            });
        }
        Ok(())
    }
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
        let mut tx = self.pool.begin().await.map_err(QueueError::storage)?;
        let mut outcomes = Vec::with_capacity(destinations.len());
        // The first statement writes, so the transaction takes SQLite's write lock at
        // once (waiting out other writers); reading first and writing later would fail
        // with SQLITE_BUSY when another writer commits in between.
        for destination in destinations {
            let (email_id, key) = (email.to_string(), destination.match_key());
            let inserted = sqlx::query(
                "INSERT INTO delivery_jobs (email_id, destination_key, destination, state, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4) ON CONFLICT DO NOTHING",
            )
            .bind(&email_id)
            .bind(&key)
            .bind(destination.to_string())
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(QueueError::storage)?;
            let outcome = if inserted.rows_affected() == 1 {
                EnqueueOutcome::Enqueued
            } else if force {
                sqlx::query(
                    "UPDATE delivery_jobs SET state = 'pending', attempts = 0, next_attempt_at = ?3, lease = NULL,
                       last_reply = NULL, created_at = ?3 WHERE email_id = ?1 AND destination_key = ?2",
                )
                .bind(&email_id)
                .bind(&key)
                .bind(millis(now))
                .execute(&mut *tx)
                .await
                .map_err(QueueError::storage)?;
                EnqueueOutcome::Requeued
            } else {
                let (state,): (String,) = sqlx::query_as(
                    "SELECT state FROM delivery_jobs WHERE email_id = ?1 AND destination_key = ?2",
                )
                .bind(&email_id)
                .bind(&key)
                .fetch_one(&mut *tx)
                .await
                .map_err(QueueError::storage)?;
                match state.as_str() {
                    "delivered" => EnqueueOutcome::AlreadyDelivered,
                    "failed" => EnqueueOutcome::AlreadyFailed,
                    _ => EnqueueOutcome::AlreadyPending,
                }
            };
            outcomes.push(outcome);
        }
        tx.commit().await.map_err(QueueError::storage)?;
        Ok(outcomes)
    }

    async fn claim(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        let token = fastrand::i64(..);
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE delivery_jobs SET lease = ?1, next_attempt_at = ?2, attempts = attempts + 1
             WHERE (email_id, destination_key) IN (
               SELECT email_id, destination_key FROM delivery_jobs
               WHERE state = 'pending' AND next_attempt_at <= ?3 ORDER BY next_attempt_at LIMIT ?4)
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(token)
        .bind(millis(now + lease))
        .bind(millis(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::storage)?;
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

    async fn delivered(
        &self,
        job: &ClaimedJob,
        reply: &str,
        now: SystemTime,
    ) -> Result<(), QueueError> {
        self.finish(job, "delivered", reply, now).await
    }

    async fn retry_later(
        &self,
        job: &ClaimedJob,
        reply: &str,
        retry_at: SystemTime,
    ) -> Result<(), QueueError> {
        self.finish(job, "pending", reply, retry_at).await
    }

    async fn failed(
        &self,
        job: &ClaimedJob,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), QueueError> {
        self.finish(job, "failed", reason, now).await
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

    async fn stats(&self, now: SystemTime) -> Result<QueueStats, QueueError> {
        let (pending, due, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE next_attempt_at <= ?1),
                    min(next_attempt_at) FILTER (WHERE next_attempt_at <= ?1)
             FROM delivery_jobs WHERE state = 'pending'",
        )
        .bind(millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        let oldest_due_age = oldest.map_or(Duration::ZERO, |ms| {
            now.duration_since(time(ms)).unwrap_or_default()
        });
        Ok(QueueStats {
            pending: u64::try_from(pending).unwrap_or(0),
            due: u64::try_from(due).unwrap_or(0),
            oldest_due_age,
        })
    }
}
