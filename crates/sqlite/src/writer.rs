//! The one writer of the mail path: email records, delivery jobs and the evaluated flag
//! are all written by one task, which runs whatever is queued as one transaction on its
//! own connection (group commit).
//!
//! Why one writer: SQLite lets one connection write at a time. Writers on separate
//! connections collide, and the loser sleeps in SQLite's busy handler (up to 100 ms a
//! time) however short the winner's transaction. One writer never collides, and its
//! batches turn many commits into one: the busier the database, the bigger the batches.
//!
//! Durability: a batch holding a durable write (an email's record, which must be on
//! disk before the client hears `250`) commits with `synchronous = FULL`, an fsync; a
//! batch of delivery state alone commits with `NORMAL`, no fsync. That is safe because
//! the write-ahead log is only ever lost from its end: a power cut can lose the last
//! relaxed commits, never one made before a durable commit. Losing delivery state means
//! evaluating or delivering an email again, which the unique (email, destination) jobs
//! and at-least-once delivery allow for. A killed process loses nothing: the operating
//! system still holds the data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool};
use sqlx::{Connection, Transaction};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// Writes per transaction at most.
const MAX_BATCH: usize = 512;

/// Writes waiting for the writer at most; callers wait when the queue is full.
const QUEUE: usize = 4 * MAX_BATCH;

/// Why a write did not happen.
#[derive(Debug, Error)]
pub enum WriteError {
    /// The writer task has stopped (the runtime is shutting down).
    #[error("the database writer has stopped")]
    Stopped,
    /// The write's own statement failed.
    #[error(transparent)]
    Statement(sqlx::Error),
    /// The batch's shared transaction failed, and with it this write.
    #[error("could not {step} the write transaction: {source}")]
    Batch {
        /// `connect`, `begin` or `commit`.
        step: &'static str,
        /// What SQLite said.
        source: Arc<sqlx::Error>,
    },
}

/// The handle on the writer task; clones share it.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Pending>>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Spawns the writer on the current Tokio runtime. It opens its own connection to
    /// `pool`'s database on first use and ends when the last handle is dropped, after
    /// writing what is queued. The database must be a file: an in-memory database
    /// would be a different, empty one on the writer's connection.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    #[must_use]
    pub fn start(pool: &SqlitePool) -> Writer {
        let (queue, pending) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let options = (*pool.connect_options()).clone();
        tokio::spawn(run(options, pending, Arc::clone(&commits)));
        Writer { queue, commits }
    }

    /// Runs `op` in the next batch and returns its result once the batch has committed.
    /// `durable`: the commit must be on disk before this returns.
    ///
    /// The batch's writes are not isolated from each other: a failed statement rolls
    /// back only itself, so an `op` of several statements that fails half-way leaves
    /// the earlier ones written. Make such an op one statement, or idempotent.
    ///
    /// # Errors
    /// [`WriteError`]: the statement failed, or the batch did.
    pub(crate) async fn write<T, F>(&self, durable: bool, op: F) -> Result<T, WriteError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let write = Write {
            durable,
            op: Some(op),
            result: None,
            answer,
        };
        self.queue
            .send(Box::new(write))
            .await
            .map_err(|_| WriteError::Stopped)?;
        answered.await.map_err(|_| WriteError::Stopped)?
    }

    /// Transactions committed so far. Compared with the number of writes, it shows how
    /// many writes each commit carried.
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// A queued write, its type erased so that writes of any result type share a batch.
trait Pending: Send {
    fn durable(&self) -> bool;
    /// Runs the statements, keeping their result for [`Pending::answer`].
    fn run<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> BoxFuture<'a, ()>;
    /// Tells the caller how it went, given how the batch ended.
    fn answer(self: Box<Self>, batch: Result<(), WriteError>);
}

struct Write<T, F> {
    durable: bool,
    op: Option<F>,
    result: Option<Result<T, sqlx::Error>>,
    answer: oneshot::Sender<Result<T, WriteError>>,
}

impl<T, F> Pending for Write<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
        + Send
        + 'static,
{
    fn durable(&self) -> bool {
        self.durable
    }

    fn run<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(op) = self.op.take() {
                self.result = Some(op(conn).await);
            }
        })
    }

    fn answer(self: Box<Self>, batch: Result<(), WriteError>) {
        let outcome = match (batch, self.result) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(result)) => result.map_err(WriteError::Statement),
            (Ok(()), None) => Err(WriteError::Stopped),
        };
        // A caller that gave up waiting no longer needs its answer.
        let _ = self.answer.send(outcome);
    }
}

async fn run(
    options: SqliteConnectOptions,
    mut queue: mpsc::Receiver<Box<dyn Pending>>,
    commits: Arc<AtomicU64>,
) {
    let mut connection: Option<WriterConnection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if connection.is_none() {
            match SqliteConnection::connect_with(&options).await {
                Ok(conn) => connection = Some(WriterConnection::new(conn)),
                Err(error) => {
                    fail_all(&mut batch, "connect", error);
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        match conn.write_batch(&mut batch).await {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                answer_all(&mut batch, || Ok(()));
            }
            Err((step, error)) => {
                // Start the next batch on a fresh connection, in case this one is broken.
                connection = None;
                fail_all(&mut batch, step, error);
            }
        }
    }
}

fn fail_all(batch: &mut Vec<Box<dyn Pending>>, step: &'static str, error: sqlx::Error) {
    let source = Arc::new(error);
    answer_all(batch, || {
        Err(WriteError::Batch {
            step,
            source: Arc::clone(&source),
        })
    });
}

fn answer_all(batch: &mut Vec<Box<dyn Pending>>, outcome: impl Fn() -> Result<(), WriteError>) {
    for write in batch.drain(..) {
        write.answer(outcome());
    }
}

/// The writer's connection and the `synchronous` level it is set to.
struct WriterConnection {
    conn: SqliteConnection,
    /// `None` until set: the level the connection opened with is the pool's.
    full: Option<bool>,
}

impl WriterConnection {
    fn new(conn: SqliteConnection) -> Self {
        WriterConnection { conn, full: None }
    }

    /// Runs every write of `batch` in one transaction and commits it.
    async fn write_batch(
        &mut self,
        batch: &mut [Box<dyn Pending>],
    ) -> Result<(), (&'static str, sqlx::Error)> {
        let durable = batch.iter().any(|write| write.durable());
        if self.full != Some(durable) {
            let level = if durable { "FULL" } else { "NORMAL" };
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA synchronous = {level}")))
                .execute(&mut self.conn)
                .await
                .map_err(|e| ("begin", e))?;
            self.full = Some(durable);
        }
        // IMMEDIATE takes the write lock up front: a write that reads before it writes
        // would otherwise fail if a rule change commits in between.
        let mut tx: Transaction<'_, sqlx::Sqlite> = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| ("begin", e))?;
        for write in batch.iter_mut() {
            // A failed statement rolls back only itself: the others still commit.
            write.run(&mut tx).await;
        }
        tx.commit().await.map_err(|e| ("commit", e))
    }
}
