//! Group commit: one writer task makes many concurrent records durable with one
//! transaction, so one fsync, instead of one each.
//!
//! Callers queue their row with a oneshot for the answer. The writer takes everything
//! queued (up to [`MAX_BATCH`]), inserts it in one transaction, commits, and answers
//! each caller with its own result. While it commits, new records queue up and form the
//! next batch, so the busier the log, the bigger the batches. When the last sender is
//! dropped (the log is dropped), the writer finishes the queue and ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mailfwd_domain::email::StoreError;
use sqlx::sqlite::SqlitePool;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use super::row::EmailRow;

/// Records per transaction at most.
const MAX_BATCH: usize = 256;

/// Records waiting for the writer at most; `record` waits when the queue is full.
const QUEUE: usize = 4 * MAX_BATCH;

/// The writer task has stopped (the runtime is shutting down).
#[derive(Debug, Error)]
#[error("the received-log writer has stopped")]
struct WriterStopped;

/// The shared transaction of a batch failed, and with it this record.
#[derive(Debug, Error)]
#[error("could not {step} the received-log transaction: {source}")]
struct BatchFailed {
    step: &'static str,
    source: Arc<sqlx::Error>,
}

struct Pending {
    row: EmailRow,
    answer: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle on the writer task.
#[derive(Debug)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    commits: Arc<AtomicU64>,
}

impl GroupCommit {
    /// Spawns the writer on the current Tokio runtime.
    pub(super) fn start(pool: SqlitePool) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(pool, pending, Arc::clone(&commits)));
        GroupCommit { queue, commits }
    }

    /// Queues `row` and waits until its transaction has committed.
    pub(super) async fn record(&self, row: EmailRow) -> Result<(), StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { row, answer })
            .await
            .map_err(|_| StoreError::storage(WriterStopped))?;
        answered
            .await
            .map_err(|_| StoreError::storage(WriterStopped))?
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

async fn write_batches(
    pool: SqlitePool,
    mut pending: mpsc::Receiver<Pending>,
    commits: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = write_batch(&pool, &batch, &commits).await;
        for (Pending { answer, .. }, result) in batch.drain(..).zip(results) {
            // A caller that gave up waiting no longer needs its answer.
            let _ = answer.send(result);
        }
    }
}

/// Inserts `batch` in one transaction; one result per record, in order.
async fn write_batch(
    pool: &SqlitePool,
    batch: &[Pending],
    commits: &AtomicU64,
) -> Vec<Result<(), StoreError>> {
    let all_failed = |step, error: sqlx::Error| {
        let source = Arc::new(error);
        batch
            .iter()
            .map(|_| {
                Err(StoreError::storage(BatchFailed {
                    step,
                    source: Arc::clone(&source),
                }))
            })
            .collect()
    };
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => return all_failed("begin", e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for Pending { row, .. } in batch {
        // A failed statement rolls back only itself: the others still commit.
        let inserted = insert(row).execute(&mut *tx).await;
        results.push(inserted.map(drop).map_err(StoreError::storage));
    }
    if let Err(e) = tx.commit().await {
        return all_failed("commit", e);
    }
    commits.fetch_add(1, Ordering::Relaxed);
    results
}

/// Records an email, replacing an earlier record of the same id (a retried commit).
fn insert(row: &EmailRow) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(
        "INSERT INTO emails (id, received_at, sender, recipients, size, peer, helo, tls)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET received_at = excluded.received_at,
             sender = excluded.sender, recipients = excluded.recipients, size = excluded.size,
             peer = excluded.peer, helo = excluded.helo, tls = excluded.tls",
    )
    .bind(&row.id)
    .bind(row.received_at)
    .bind(&row.sender)
    .bind(&row.recipients)
    .bind(row.size)
    .bind(&row.peer)
    .bind(&row.helo)
    .bind(row.tls)
}
