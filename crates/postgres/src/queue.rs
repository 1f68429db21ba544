//! `DeliveryQueue` on PostgreSQL, shared by every instance on the database.

mod port;
mod row;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{ClaimedJob, EnqueueOutcome, QueueError};
use mailfwd_domain::email::EmailId;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPool;

use crate::millis::unix_millis;
use row::{JOB_COLUMNS, JobRow, lease_of};

/// Delivery jobs in the `delivery_jobs` table (see migration 0003 for the lease scheme).
///
/// Claims lock the rows they take with `FOR UPDATE SKIP LOCKED`, so instances claiming
/// at once take different jobs without waiting for each other; every statement is its
/// own short transaction. Lease tokens come from a sequence, so they are unique across
/// instances. Each claim records the instance that made it (see
/// [`PgDeliveryQueue::heartbeat`](mailfwd_domain::delivery::DeliveryQueue::heartbeat)).
#[derive(Debug, Clone)]
pub struct PgDeliveryQueue {
    pool: PgPool,
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

impl PgDeliveryQueue {
    /// A queue on an open pool whose migrations have run, claiming for `instance`.
    #[must_use]
    pub(crate) fn new(pool: PgPool, instance: String) -> Self {
        PgDeliveryQueue { pool, instance }
    }

    /// Moves a job this worker holds to `state`, with `reply` (kept as it was if
    /// `None`), due at `at`; `uncount` takes back the attempt its claim counted.
    /// `LeaseLost` if the worker no longer holds it. A lease that was taken over has
    /// another token, so this never touches (nor extends) someone else's lease.
    async fn settle(
        &self,
        claimed: &ClaimedJob,
        state: &'static str,
        reply: Option<&str>,
        at: SystemTime,
        uncount: bool,
    ) -> Result<(), QueueError> {
        let done = sqlx::query(
            "UPDATE delivery_jobs SET state = $1, last_reply = coalesce($2, last_reply),
               next_attempt_at = $3, lease = NULL, claimed_by = NULL,
               attempts = greatest(attempts - $4, 0)
             WHERE email_id = $5::uuid AND destination_key = $6 AND lease = $7
               AND state = 'pending'",
        )
        .bind(state)
        .bind(reply)
        .bind(unix_millis(at))
        .bind(i32::from(uncount))
        .bind(claimed.job.email.to_string())
        .bind(claimed.job.destination.match_key())
        .bind(lease_of(claimed.lease))
        .execute(&self.pool)
        .await
        .map_err(QueueError::storage)?;
        if done.rows_affected() == 0 {
            return Err(QueueError::LeaseLost {
                email: claimed.job.email,
                destination: claimed.job.destination.clone(),
            });
        }
        Ok(())
    }

    /// Inserts the jobs that do not exist yet, claimed for `lease` when given, in one
    /// statement (all or nothing), and returns the rows it inserted.
    async fn insert_new(
        &self,
        email: EmailId,
        (keys, addresses): (Vec<String>, Vec<String>),
        now: SystemTime,
        lease: Option<Duration>,
    ) -> Result<Vec<JobRow>, QueueError> {
        // A claimed job counts its attempt and is due again when its lease ends; each
        // row draws its own token from the sequence.
        let now_ms = unix_millis(now);
        let due = lease.map_or(now_ms, |lease| unix_millis(now + lease));
        sqlx::query_as(AssertSqlSafe(format!(
            "INSERT INTO delivery_jobs AS j (email_id, destination_key, destination, state,
               attempts, next_attempt_at, lease, claimed_by, created_at)
             SELECT $1::uuid, k, d, 'pending', $2, $3,
                    CASE WHEN $4 THEN nextval('delivery_leases') END,
                    CASE WHEN $4 THEN $8 END, $5
             FROM UNNEST($6::text[], $7::text[]) AS t(k, d)
             ON CONFLICT DO NOTHING
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(email.to_string())
        .bind(i32::from(lease.is_some()))
        .bind(due)
        .bind(lease.is_some())
        .bind(now_ms)
        .bind(keys)
        .bind(addresses)
        .bind(&self.instance)
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::storage)
    }

    /// What enqueueing did for each destination, given the keys that were inserted:
    /// the others existed, and their state says which outcome they get.
    async fn outcomes(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        inserted: &[String],
    ) -> Result<Vec<EnqueueOutcome>, QueueError> {
        let existing: Vec<String> = destinations
            .iter()
            .map(EmailAddress::match_key)
            .filter(|key| !inserted.contains(key))
            .collect();
        // The common case, a fresh email, needs no second round trip.
        let states: HashMap<String, String> = if existing.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as(
                "SELECT destination_key, state FROM delivery_jobs
                 WHERE email_id = $1::uuid AND destination_key = ANY($2)",
            )
            .bind(email.to_string())
            .bind(existing)
            .fetch_all(&self.pool)
            .await
            .map_err(QueueError::storage)?
            .into_iter()
            .collect()
        };
        Ok(destinations
            .iter()
            .map(|d| match states.get(&d.match_key()).map(String::as_str) {
                _ if inserted.contains(&d.match_key()) => EnqueueOutcome::Enqueued,
                Some("delivered") => EnqueueOutcome::AlreadyDelivered,
                Some("failed") => EnqueueOutcome::AlreadyFailed,
                _ => EnqueueOutcome::AlreadyPending,
            })
            .collect())
    }

    /// Resets every job of `email` for `destinations` to pending and due now, creating
    /// the missing ones, in one statement.
    async fn force(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        now: SystemTime,
    ) -> Result<Vec<EnqueueOutcome>, QueueError> {
        let (keys, addresses) = distinct_jobs(destinations);
        // `xmax = 0` tells a row this statement inserted from one it updated on
        // conflict: the usual idiom, as `ON CONFLICT` has no way to say which it did.
        let written: HashMap<String, bool> = sqlx::query_as(
            "INSERT INTO delivery_jobs AS j (email_id, destination_key, destination, state,
               attempts, next_attempt_at, lease, created_at)
             SELECT $1::uuid, k, d, 'pending', 0, $2, NULL, $2
             FROM UNNEST($3::text[], $4::text[]) AS t(k, d)
             ON CONFLICT (email_id, destination_key) DO UPDATE SET state = 'pending',
               attempts = 0, next_attempt_at = excluded.created_at, lease = NULL,
               claimed_by = NULL, last_reply = NULL, created_at = excluded.created_at
             RETURNING j.destination_key, (j.xmax = 0) AS inserted",
        )
        .bind(email.to_string())
        .bind(unix_millis(now))
        .bind(keys)
        .bind(addresses)
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::storage)?
        .into_iter()
        .collect();
        Ok(destinations
            .iter()
            .map(|d| match written.get(&d.match_key()) {
                Some(true) => EnqueueOutcome::Enqueued,
                _ => EnqueueOutcome::Requeued,
            })
            .collect())
    }
}
