//! Enqueueing on PostgreSQL, with final jobs in `delivery_history`: a job is in
//! `delivery_jobs` or in `delivery_history`, never in both, whoever else enqueues or
//! records outcomes at the same time.
//!
//! Why a check after the insert, in the same transaction, rather than only a
//! `NOT EXISTS (… delivery_history …)` in the insert: a statement reads history in the
//! snapshot it started with. If a worker is moving the job to history meanwhile, the
//! insert sees the job in neither place it can trust: still in `delivery_jobs` (the
//! move is not committed), not yet in history. Its unique check waits for the move,
//! finds the old row gone, and inserts a second job while history holds the first.
//! Once our insert has succeeded, though, our row holds the key in `delivery_jobs`
//! until we commit, so no move of that job can start or still be running: the next
//! statement's fresh snapshot sees every history row there is, and takes back the rows
//! that duplicate one. Recording an outcome stays one statement (the hot path, once per
//! job); only enqueueing pays a second statement. An advisory lock on the email would
//! do as well, but every outcome would then need a transaction of its own.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{EnqueueOutcome, QueueError};
use mailfwd_domain::email::EmailId;
use sqlx::{AssertSqlSafe, PgConnection};

use super::row::{JOB_COLUMNS, JobRow};
use super::{PgDeliveryQueue, distinct_jobs};
use crate::changes::jobs::notify_due;
use crate::millis::unix_millis;

impl PgDeliveryQueue {
    /// Creates the jobs of `destinations` that exist in neither table, claimed for
    /// `lease` when given, all or nothing; returns what it did for each destination and
    /// the rows it created.
    pub(super) async fn enqueue_new(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        now: SystemTime,
        lease: Option<Duration>,
    ) -> Result<(Vec<EnqueueOutcome>, Vec<JobRow>), QueueError> {
        let mut tx = self.pool.begin().await.map_err(QueueError::storage)?;
        let jobs = distinct_jobs(destinations);
        let mut inserted = insert_new(&mut tx, &self.instance, email, jobs, now, lease).await?;
        if !inserted.is_empty() {
            let keys: Vec<String> = inserted.iter().map(JobRow::key).collect();
            let undone = undo_duplicates(&mut tx, email, keys).await?;
            inserted.retain(|row| !undone.contains(&row.key()));
        }
        let keys: Vec<String> = inserted.iter().map(JobRow::key).collect();
        let outcomes = outcomes(&mut tx, email, destinations, &keys).await?;
        if lease.is_none() && !inserted.is_empty() {
            notify_due(&mut *tx, inserted.len() as u64)
                .await
                .map_err(QueueError::storage)?;
        }
        tx.commit().await.map_err(QueueError::storage)?;
        Ok((outcomes, inserted))
    }

    /// Resets every job of `email` for `destinations` to pending and due now, creating
    /// the missing ones and bringing final ones back from history, in one transaction.
    pub(super) async fn force(
        &self,
        email: EmailId,
        destinations: &[EmailAddress],
        now: SystemTime,
    ) -> Result<Vec<EnqueueOutcome>, QueueError> {
        let (keys, addresses) = distinct_jobs(destinations);
        let mut tx = self.pool.begin().await.map_err(QueueError::storage)?;
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
        .bind(&keys)
        .bind(addresses)
        .fetch_all(&mut *tx)
        .await
        .map_err(QueueError::storage)?
        .into_iter()
        .collect();
        // After the upsert, as in `enqueue_new`: our rows hold their keys, so no move to
        // history is running and this snapshot sees all of history. A job found there
        // existed: it is requeued, keeping the destination as it was written.
        let requeued: Vec<(String,)> = sqlx::query_as(
            "WITH gone AS (
               DELETE FROM delivery_history
               WHERE email_id = $1::uuid AND destination_key = ANY($2)
               RETURNING destination_key, destination),
             spelled AS (
               UPDATE delivery_jobs AS j SET destination = gone.destination FROM gone
               WHERE j.email_id = $1::uuid AND j.destination_key = gone.destination_key)
             SELECT destination_key FROM gone",
        )
        .bind(email.to_string())
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await
        .map_err(QueueError::storage)?;
        if !written.is_empty() {
            notify_due(&mut *tx, written.len() as u64)
                .await
                .map_err(QueueError::storage)?;
        }
        tx.commit().await.map_err(QueueError::storage)?;
        Ok(destinations
            .iter()
            .map(|d| {
                let key = d.match_key();
                let from_history = requeued.iter().any(|(k,)| *k == key);
                match written.get(&key) {
                    Some(true) if !from_history => EnqueueOutcome::Enqueued,
                    _ => EnqueueOutcome::Requeued,
                }
            })
            .collect())
    }
}

/// Inserts the jobs that are in neither table as far as this statement can see,
/// claimed for `lease` by `instance` when given, and returns the rows it inserted.
async fn insert_new(
    tx: &mut PgConnection,
    instance: &str,
    email: EmailId,
    (keys, addresses): (Vec<String>, Vec<String>),
    now: SystemTime,
    lease: Option<Duration>,
) -> Result<Vec<JobRow>, QueueError> {
    // A claimed job counts its attempt and is due again when its lease ends; each row
    // draws its own token from the sequence. The history check spares the usual
    // re-enqueue of a finished email an insert to take back (see the module comment).
    let now_ms = unix_millis(now);
    let due = lease.map_or(now_ms, |lease| unix_millis(now + lease));
    sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO delivery_jobs AS j (email_id, destination_key, destination, state,
           attempts, next_attempt_at, lease, claimed_by, created_at)
         SELECT $1::uuid, k, d, 'pending', $2, $3,
                CASE WHEN $4 THEN nextval('delivery_leases') END,
                CASE WHEN $4 THEN $8 END, $5
         FROM UNNEST($6::text[], $7::text[]) AS t(k, d)
         WHERE NOT EXISTS (SELECT 1 FROM delivery_history AS h
                           WHERE h.email_id = $1::uuid AND h.destination_key = t.k)
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
    .bind(instance)
    .fetch_all(&mut *tx)
    .await
    .map_err(QueueError::storage)
}

/// Deletes the jobs just inserted for `keys` that history holds (their move committed
/// while the insert ran), and returns their keys.
async fn undo_duplicates(
    tx: &mut PgConnection,
    email: EmailId,
    keys: Vec<String>,
) -> Result<Vec<String>, QueueError> {
    let undone: Vec<(String,)> = sqlx::query_as(
        "DELETE FROM delivery_jobs AS j USING delivery_history AS h
         WHERE j.email_id = $1::uuid AND j.destination_key = ANY($2)
           AND h.email_id = j.email_id AND h.destination_key = j.destination_key
         RETURNING j.destination_key",
    )
    .bind(email.to_string())
    .bind(keys)
    .fetch_all(&mut *tx)
    .await
    .map_err(QueueError::storage)?;
    Ok(undone.into_iter().map(|(key,)| key).collect())
}

/// What enqueueing did for each destination, given the keys that were inserted: the
/// others existed, pending or in history, and their state says which outcome they get.
async fn outcomes(
    tx: &mut PgConnection,
    email: EmailId,
    destinations: &[EmailAddress],
    inserted: &[String],
) -> Result<Vec<EnqueueOutcome>, QueueError> {
    let existing: Vec<String> = destinations
        .iter()
        .map(EmailAddress::match_key)
        .filter(|key| !inserted.contains(key))
        .collect();
    // The common case, a fresh email, needs no further round trip.
    let states: HashMap<String, String> = if existing.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as(
            "SELECT destination_key, state FROM delivery_jobs
             WHERE email_id = $1::uuid AND destination_key = ANY($2)
             UNION ALL
             SELECT destination_key, state FROM delivery_history
             WHERE email_id = $1::uuid AND destination_key = ANY($2)",
        )
        .bind(email.to_string())
        .bind(existing)
        .fetch_all(&mut *tx)
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
