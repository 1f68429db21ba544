//! `DeliveryQueue` on PostgreSQL, shared by every instance on the database.

mod enqueue;
mod port;
mod row;

use std::time::SystemTime;

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{ClaimedJob, QueueError};
use sqlx::postgres::PgPool;

use crate::changes::jobs::notify_due;
use crate::millis::unix_millis;
use row::lease_of;

/// Delivery jobs in the `delivery_jobs` table (see migration 0003 for the lease scheme),
/// and, once final, in `delivery_history` (migration 0005): claims and heartbeats only
/// ever scan pending work, however long the history grows.
///
/// Claims lock the rows they take with `FOR UPDATE SKIP LOCKED`, so instances claiming
/// at once take different jobs without waiting for each other; every statement is its
/// own short transaction. Lease tokens come from a sequence, so they are unique across
/// instances. Each claim records the instance that made it (see
/// [`PgDeliveryQueue::heartbeat`](mailfwd_domain::delivery::DeliveryQueue::heartbeat)).
#[derive(Debug, Clone)]
pub struct PgDeliveryQueue {
    pool: PgPool,
    /// The connection heartbeats go through, so a busy pool never delays them.
    liveness: PgPool,
    /// The instance this handle claims for: stable across its restarts.
    instance: String,
}

/// The distinct (match key, address) pairs of `destinations`, first address kept (one
/// statement may not insert or update the same key twice), in key order: two calls for
/// the same email then lock its rows in the same order and cannot deadlock each other.
fn distinct_jobs(destinations: &[EmailAddress]) -> (Vec<String>, Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    let mut jobs: Vec<(String, String)> = destinations
        .iter()
        .filter(|d| seen.insert(d.match_key()))
        .map(|d| (d.match_key(), d.to_string()))
        .collect();
    jobs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    jobs.into_iter().unzip()
}

/// `Ok` if a statement keyed on `claimed`'s lease touched its row, `LeaseLost` if not.
fn lease_held(claimed: &ClaimedJob, rows: u64) -> Result<(), QueueError> {
    if rows == 0 {
        return Err(QueueError::LeaseLost {
            email: claimed.job.email,
            destination: claimed.job.destination.clone(),
        });
    }
    Ok(())
}

impl PgDeliveryQueue {
    /// Tells every instance's idle workers that `jobs` jobs, just committed, are due
    /// (nothing if none). Best effort: the write it reports has committed, and workers
    /// poll the queue anyway, so a failure is logged and otherwise ignored.
    async fn tell_due(&self, pool: &PgPool, jobs: u64) {
        if jobs == 0 {
            return;
        }
        if let Err(error) = notify_due(pool, jobs).await {
            tracing::debug!(%error, jobs, "cannot tell other instances of due jobs; they poll");
        }
    }

    /// A queue on an open pool whose migrations have run, claiming for `instance`.
    #[must_use]
    pub(crate) fn new(pool: PgPool, liveness: PgPool, instance: String) -> Self {
        PgDeliveryQueue {
            pool,
            liveness,
            instance,
        }
    }

    /// Gives back a job this worker holds, still pending, with `reply` (kept as it was
    /// if `None`), due at `at`; `uncount` takes back the attempt its claim counted.
    /// `LeaseLost` if the worker no longer holds it. A lease that was taken over has
    /// another token, so this never touches (nor extends) someone else's lease.
    async fn settle(
        &self,
        claimed: &ClaimedJob,
        reply: Option<&str>,
        at: SystemTime,
        uncount: bool,
    ) -> Result<(), QueueError> {
        let done = sqlx::query(
            "UPDATE delivery_jobs SET last_reply = coalesce($1, last_reply),
               next_attempt_at = $2, lease = NULL, claimed_by = NULL,
               attempts = greatest(attempts - $3, 0)
             WHERE email_id = $4::uuid AND destination_key = $5 AND lease = $6
               AND state = 'pending'",
        )
        .bind(reply)
        .bind(unix_millis(at))
        .bind(i32::from(uncount))
        .bind(claimed.job.email.to_string())
        .bind(claimed.job.destination.match_key())
        .bind(lease_of(claimed.lease))
        .execute(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        lease_held(claimed, done.rows_affected())
    }

    /// Records the final outcome (`delivered` or `failed`, with `reply`, at `at`) of a job
    /// this worker holds, by moving it to `delivery_history` in one statement: the
    /// delete still requires `lease = token`, so a worker whose lease was taken over
    /// moves nothing and records nothing (`LeaseLost`), and the job is never in both
    /// tables nor in neither, to any reader.
    async fn finish(
        &self,
        claimed: &ClaimedJob,
        state: &'static str,
        reply: &str,
        at: SystemTime,
    ) -> Result<(), QueueError> {
        let done = sqlx::query(
            "WITH moved AS (
               DELETE FROM delivery_jobs
               WHERE email_id = $4::uuid AND destination_key = $5 AND lease = $6
                 AND state = 'pending'
               RETURNING email_id, destination_key, destination, attempts, created_at)
             INSERT INTO delivery_history (email_id, destination_key, destination, state,
               attempts, next_attempt_at, last_reply, created_at)
             SELECT email_id, destination_key, destination, $1, attempts, $3, $2, created_at
             FROM moved",
        )
        .bind(state)
        .bind(reply)
        .bind(unix_millis(at))
        .bind(claimed.job.email.to_string())
        .bind(claimed.job.destination.match_key())
        .bind(lease_of(claimed.lease))
        .execute(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        lease_held(claimed, done.rows_affected())
    }
}
