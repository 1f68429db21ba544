//! The `DeliveryQueue` port on [`PgDeliveryQueue`].

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{
    ClaimedJob, DeliveryJob, DeliveryQueue, EnqueueOutcome, QueueError, QueueStats,
};
use mailfwd_domain::email::EmailId;
use sqlx::AssertSqlSafe;

use super::PgDeliveryQueue;
use super::row::{JOB_COLUMNS, JobRow};
use crate::millis::{from_unix_millis, unix_millis};

#[async_trait]
impl DeliveryQueue for PgDeliveryQueue {
    async fn enqueue(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        force: bool,
        now: SystemTime,
    ) -> Result<Vec<EnqueueOutcome>, QueueError> {
        if destinations.is_empty() {
            return Ok(Vec::new());
        }
        if force {
            return self.force(email, destinations, now).await;
        }
        let (outcomes, _) = self.enqueue_new(email, destinations, now, None).await?;
        Ok(outcomes)
    }

    async fn enqueue_claimed(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        now: SystemTime,
        lease: Duration,
    ) -> Result<Vec<(EnqueueOutcome, Option<ClaimedJob>)>, QueueError> {
        if destinations.is_empty() {
            return Ok(Vec::new());
        }
        let (outcomes, inserted) = self
            .enqueue_new(email, destinations, now, Some(lease))
            .await?;
        let claimed = inserted
            .into_iter()
            .map(JobRow::into_claimed)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(outcomes
            .into_iter()
            .zip(destinations)
            .map(|(outcome, destination)| {
                let key = destination.match_key();
                let job = claimed
                    .iter()
                    .find(|c| c.job.destination.match_key() == key)
                    .cloned();
                (outcome, job)
            })
            .collect())
    }

    async fn claim(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedJob>, QueueError> {
        // SKIP LOCKED: rows another instance is claiming or settling right now are
        // passed over rather than waited for, and the earliest due of the rest are taken.
        // A claimed job is due again when its lease ends, so only due jobs are touched:
        // a live lease is never taken over, shortened or extended.
        let rows: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
            "WITH due AS (
               SELECT email_id, destination_key FROM delivery_jobs
               WHERE state = 'pending' AND next_attempt_at <= $1
               ORDER BY next_attempt_at LIMIT $2
               FOR UPDATE SKIP LOCKED)
             UPDATE delivery_jobs AS j SET lease = nextval('delivery_leases'),
               claimed_by = $4, next_attempt_at = $3, attempts = j.attempts + 1
             FROM due
             WHERE j.email_id = due.email_id AND j.destination_key = due.destination_key
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(unix_millis(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(unix_millis(now + lease))
        .bind(&self.instance)
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        rows.into_iter().map(JobRow::into_claimed).collect()
    }

    async fn release(&self, claimed: &ClaimedJob, due_at: SystemTime) -> Result<(), QueueError> {
        self.settle(claimed, None, due_at, true).await?;
        // Due now (a shutdown, a job that waited too long): any idle instance may take
        // it. Postponed (its destination busy), it is found when due by polling.
        if due_at <= SystemTime::now() {
            self.tell_due(&self.pool, 1).await;
        }
        Ok(())
    }

    async fn release_all_leases(&self, now: SystemTime) -> Result<u64, QueueError> {
        // Only this instance's: the others on the database are alive, or their silence
        // is for `heartbeat` to judge. Attempts stay counted: the killed attempt may
        // have reached the destination.
        let released = sqlx::query(
            "UPDATE delivery_jobs SET lease = NULL, claimed_by = NULL, next_attempt_at = $1
             WHERE claimed_by = $2 AND state = 'pending' AND lease IS NOT NULL",
        )
        .bind(unix_millis(now))
        .bind(&self.instance)
        .execute(&self.pool)
        .await
        .map_err(QueueError::storage)?
        .rows_affected();
        self.tell_due(&self.pool, released).await;
        Ok(released)
    }

    async fn heartbeat(&self, now: SystemTime, silent_for: Duration) -> Result<u64, QueueError> {
        let now_ms = unix_millis(now);
        sqlx::query(
            "INSERT INTO instances (id, heartbeat_at) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = greatest(instances.heartbeat_at, $2)",
        )
        .bind(&self.instance)
        .bind(now_ms)
        .execute(&self.liveness)
        .await
        .map_err(QueueError::storage)?;
        // Only jobs still under a lease (due later than now) of an instance silent too
        // long; their next attempt is brought forward to now, never put off. A row
        // another statement holds is skipped, not waited for: the next heartbeat sees it.
        let released = sqlx::query(
            "WITH silent AS (
               SELECT j.email_id, j.destination_key FROM delivery_jobs AS j
               JOIN instances AS i ON i.id = j.claimed_by
               WHERE i.heartbeat_at < $1 AND i.id <> $3
                 AND j.state = 'pending' AND j.lease IS NOT NULL AND j.next_attempt_at > $2
               FOR UPDATE OF j SKIP LOCKED)
             UPDATE delivery_jobs AS j SET lease = NULL, claimed_by = NULL, next_attempt_at = $2
             FROM silent
             WHERE j.email_id = silent.email_id AND j.destination_key = silent.destination_key",
        )
        .bind(now_ms.saturating_sub(i64::try_from(silent_for.as_millis()).unwrap_or(i64::MAX)))
        .bind(now_ms)
        .bind(&self.instance)
        .execute(&self.liveness)
        .await
        .map_err(QueueError::storage)?
        .rows_affected();
        // Every instance may share the work of the one that died.
        self.tell_due(&self.liveness, released).await;
        Ok(released)
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
        self.settle(job, Some(reply), retry_at, false).await
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
        // Pending and final jobs, in one statement: one snapshot, in which a job being
        // moved to history is in exactly one of the two tables.
        let rows: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM delivery_jobs AS j WHERE j.email_id = $1::uuid
             UNION ALL
             SELECT {JOB_COLUMNS} FROM delivery_history AS j WHERE j.email_id = $1::uuid
             ORDER BY destination_key"
        )))
        .bind(email.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn forget(&self, email: EmailId) -> Result<bool, QueueError> {
        // Pending jobs are in `delivery_jobs`, final ones in `delivery_history`; a job
        // made pending again moves back to `delivery_jobs` (see `enqueue`'s force), so
        // history is deleted only while no job of the email is pending, in one
        // statement whose lock on any pending row makes a concurrent requeue wait.
        let kept: Option<bool> = sqlx::query_scalar(
            "WITH pending AS (
               SELECT 1 FROM delivery_jobs WHERE email_id = $1::uuid FOR UPDATE),
             gone AS (
               DELETE FROM delivery_history WHERE email_id = $1::uuid
                 AND NOT EXISTS (SELECT 1 FROM pending)
               RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM pending) FROM (SELECT count(*) FROM gone) AS g",
        )
        .bind(email.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        Ok(!kept.unwrap_or(false))
    }

    async fn stats(&self, now: SystemTime) -> Result<QueueStats, QueueError> {
        let (pending, due, oldest, first): (i64, i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE next_attempt_at <= $1),
                    min(next_attempt_at) FILTER (WHERE next_attempt_at <= $1), min(created_at)
             FROM delivery_jobs WHERE state = 'pending'",
        )
        .bind(unix_millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        let oldest_due_age = oldest.map_or(Duration::ZERO, |ms| {
            now.duration_since(from_unix_millis(ms)).unwrap_or_default()
        });
        let oldest_pending_age = first.map_or(Duration::ZERO, |ms| {
            now.duration_since(from_unix_millis(ms)).unwrap_or_default()
        });
        Ok(QueueStats {
            pending: u64::try_from(pending).unwrap_or(0),
            due: u64::try_from(due).unwrap_or(0),
            oldest_due_age,
            oldest_pending_age,
        })
    }
}
