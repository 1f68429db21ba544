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

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
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
pub(crate) enum WriteError {
    /// The writer task has stopped (the runtime is shutting down).
    #[error("the database writer has stopped")]
    Stopped,
    /// The write's own statement failed, and only it: the rest of the batch committed
    /// (so did the statements of this write that ran before the failed one).
    #[error(transparent)]
    Statement(sqlx::Error),
    /// The write's own statement failed in a way that made SQLite roll back the whole
    /// transaction (a full disk, an I/O error): nothing of the batch was written.
    #[error("{0} (the write transaction was rolled back)")]
    RolledBackBy(sqlx::Error),
    /// Another write of the same batch failed in a way that made SQLite roll back the
    /// whole transaction (a full disk, an I/O error), and this write with it.
    #[error("the write transaction was rolled back by a failure of another write in it")]
    RolledBack,
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
pub(crate) struct Writer {
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
    pub(crate) fn start(pool: &SqlitePool) -> Writer {
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
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// A queued write, its type erased so that writes of any result type share a batch.
trait Pending: Send {
    fn durable(&self) -> bool;
    /// Runs the statements, keeping their result for [`Pending::answer`]; true if they
    /// failed.
    fn run<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> BoxFuture<'a, bool>;
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

    fn run<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            if let Some(op) = self.op.take() {
                self.result = Some(op(conn).await);
            }
            matches!(self.result, Some(Err(_)))
        })
    }

    fn answer(self: Box<Self>, batch: Result<(), WriteError>) {
        let outcome = match (batch, self.result) {
            // The write that brought the transaction down says why.
            (Err(WriteError::RolledBack), Some(Err(own))) => Err(WriteError::RolledBackBy(own)),
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
    // Writes not yet run: a batch cut short leaves some here for the next transaction.
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if batch.is_empty() && queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        if connection.is_none() {
            match SqliteConnection::connect_with(&options).await {
                Ok(conn) => connection = Some(WriterConnection::new(conn)),
                Err(error) => {
                    fail(batch.drain(..), "connect", error);
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        // A panic in a write must not stop every write after it: the batch is dropped
        // (its callers hear that the writer stopped) and the writer goes on.
        let written = AssertUnwindSafe(conn.write_some(&mut batch, &commits))
            .catch_unwind()
            .await;
        if !matches!(written, Ok(Ok(()))) {
            if written.is_err() {
                tracing::error!("a database write panicked; its batch is dropped");
                batch.clear();
            }
            // Go on with a fresh connection: this one may be broken, or in a state sqlx
            // does not know about.
            connection = None;
        }
    }
}

fn fail(writes: impl Iterator<Item = Box<dyn Pending>>, step: &'static str, error: sqlx::Error) {
    let source = Arc::new(error);
    for write in writes {
        write.answer(Err(WriteError::Batch {
            step,
            source: Arc::clone(&source),
        }));
    }
}

/// The writer's connection must be replaced.
struct Broken;

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

    /// Runs the writes of `batch` in one transaction, commits it, and answers each write
    /// it ran. Normally that is all of them; if one write made SQLite roll back the
    /// whole transaction, those before it are answered as rolled back and those after
    /// it stay in `batch`, to run in the next transaction.
    async fn write_some(
        &mut self,
        batch: &mut Vec<Box<dyn Pending>>,
        commits: &AtomicU64,
    ) -> Result<(), Broken> {
        let durable = batch.iter().any(|write| write.durable());
        // One round trip to SQLite's thread for all three (each statement is a hand-off,
        // and under load the writer commits hundreds of batches a second):
        // - the `synchronous` level, if this batch needs the other one;
        // - BEGIN IMMEDIATE, which takes the write lock up front: a write that reads
        //   before it writes would otherwise fail if a rule change commits in between;
        // - a savepoint, a marker that exists for as long as the transaction does (see
        //   `still_open`).
        let begin = match self.full {
            Some(full) if full == durable => "BEGIN IMMEDIATE; SAVEPOINT batch",
            _ if durable => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE; SAVEPOINT batch",
            _ => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE; SAVEPOINT batch",
        };
        let mut tx: Transaction<'_, sqlx::Sqlite> = match self.conn.begin_with(begin).await {
            Ok(tx) => tx,
            Err(error) => {
                // The connection is replaced (`Broken`), whatever part of it ran.
                fail(batch.drain(..), "begin", error);
                return Err(Broken);
            }
        };
        self.full = Some(durable);
        let mut ran = 0;
        let mut rolled_back = false;
        for write in batch.iter_mut() {
            ran += 1;
            // Most failures roll back only the failed statement, and the others commit;
            // some (a full disk, an I/O error, RAISE(ROLLBACK)) end the whole transaction,
            // and the writes after would run outside it.
            if write.run(&mut tx).await && !still_open(&mut tx).await {
                rolled_back = true;
                break;
            }
        }
        let done: Vec<Box<dyn Pending>> = batch.drain(..ran).collect();
        if rolled_back {
            for write in done {
                write.answer(Err(WriteError::RolledBack));
            }
            return Err(Broken);
        }
        match tx.commit().await {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for write in done {
                    write.answer(Ok(()));
                }
                Ok(())
            }
            Err(error) => {
                fail(done.into_iter(), "commit", error);
                Err(Broken)
            }
        }
    }
}

/// Whether the transaction survived a failed write: its savepoint is still there only
/// if SQLite did not roll the whole transaction back. (Checked only after a failure.)
async fn still_open(tx: &mut SqliteConnection) -> bool {
    sqlx::query("RELEASE batch").execute(&mut *tx).await.is_ok()
        && sqlx::query("SAVEPOINT batch")
            .execute(&mut *tx)
            .await
            .is_ok()
}

#[cfg(test)]
mod tests;
