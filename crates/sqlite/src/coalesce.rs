//! Writes of one kind that share one statement.
//!
//! Some writes come once per email or per delivery (an email marked evaluated, an
//! attempt's outcome), so under load the writer's batch held one statement for each,
//! and each statement is a round trip to SQLite's worker thread. A [`Coalescer`]
//! gathers the items that arrive while one of them waits for the writer: the first
//! caller queues one write, which takes every item pending when it runs and writes
//! them all with one statement per [`Coalescer::CHUNK`]; each caller gets its own
//! item's result, and only once that write has committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::BoxFuture;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::oneshot;

use crate::writer::{WriteError, Writer};

/// Why an item was not written: what the shared write failed with.
#[derive(Debug, thiserror::Error)]
#[error("the database write it shared with others failed: {0}")]
pub(crate) struct NotWritten(Arc<str>);

/// Where one item's result goes: sent once the write has committed.
type Done<R> = oneshot::Sender<Result<R, NotWritten>>;

/// An item waiting for its write, and where its result goes.
struct Waiting<T, R> {
    /// Tells this waiter apart from the others.
    token: u64,
    item: T,
    done: Done<R>,
}

/// The items of one kind waiting for the writer.
pub(crate) struct Coalescer<T, R> {
    pending: Arc<Mutex<Vec<Waiting<T, R>>>>,
    tokens: AtomicU64,
}

impl<T, R> Default for Coalescer<T, R> {
    fn default() -> Self {
        Coalescer {
            pending: Arc::default(),
            tokens: AtomicU64::new(0),
        }
    }
}

impl<T, R> std::fmt::Debug for Coalescer<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coalescer")
    }
}

fn lock<X>(mutex: &Mutex<X>) -> MutexGuard<'_, X> {
    // Each critical section leaves its lists whole: a panic cannot tear them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `items` (at most [`Coalescer::CHUNK`]) with one statement and returns each
/// one's result, in order.
pub(crate) type Statement<T, R> =
    for<'c> fn(&'c mut SqliteConnection, &'c [T]) -> BoxFuture<'c, Result<Vec<R>, sqlx::Error>>;

impl<T: Send + 'static, R: Send + 'static> Coalescer<T, R> {
    /// Items per statement at most: SQLite takes up to 32,766 parameters.
    pub(crate) const CHUNK: usize = 250;

    /// Writes `item` with `statement` in the writer's next batch, together with the
    /// items that come meanwhile; its result once that has committed (`durable`: on
    /// disk, see [`Writer::write`]).
    ///
    /// The write runs in a task of its own: a caller that stops waiting (its future
    /// dropped) leaves the others' items to be written and answered all the same.
    pub(crate) async fn write(
        &self,
        writer: &Writer,
        durable: bool,
        item: T,
        statement: Statement<T, R>,
    ) -> Result<R, NotWritten> {
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let (done, written) = oneshot::channel();
        let first = {
            let mut pending = lock(&self.pending);
            pending.push(Waiting { token, item, done });
            pending.len() == 1
        };
        if first {
            tokio::spawn(write_pending(
                writer.clone(),
                durable,
                Arc::clone(&self.pending),
                token,
                statement,
            ));
        }
        written
            .await
            .unwrap_or_else(|_| Err(NotWritten("the database writer has stopped".into())))
    }
}

/// What the statements that ran left for their callers, until the batch is known to
/// have committed: results, and the callers of the chunks that failed or never ran.
struct Answers<R> {
    written: Vec<(Done<R>, R)>,
    failed: Vec<Done<R>>,
}

/// Takes every item pending when the writer runs it and writes them, a statement per
/// [`Coalescer::CHUNK`]; then answers their callers. `token` is the item that queued it.
async fn write_pending<T: Send + 'static, R: Send + 'static>(
    writer: Writer,
    durable: bool,
    pending: Arc<Mutex<Vec<Waiting<T, R>>>>,
    token: u64,
    statement: Statement<T, R>,
) {
    let answers = Arc::new(Mutex::new(Answers {
        written: Vec::new(),
        failed: Vec::new(),
    }));
    let (taken, left) = (Arc::clone(&pending), Arc::clone(&answers));
    let result = writer
        .write(durable, move |conn| {
            Box::pin(async move {
                let waiting = std::mem::take(&mut *lock(&taken));
                let mut waiting = waiting.into_iter().peekable();
                while waiting.peek().is_some() {
                    let chunk: Vec<Waiting<T, R>> =
                        waiting.by_ref().take(Coalescer::<T, R>::CHUNK).collect();
                    let (items, senders): (Vec<T>, Vec<_>) = chunk
                        .into_iter()
                        .map(|waiting| (waiting.item, waiting.done))
                        .unzip();
                    match statement(conn, &items).await {
                        Ok(results) => lock(&left).written.extend(senders.into_iter().zip(results)),
                        Err(error) => {
                            // This chunk and the ones after it are not written.
                            let mut left = lock(&left);
                            left.failed.extend(senders);
                            left.failed.extend(waiting.map(|waiting| waiting.done));
                            return Err(error);
                        }
                    }
                }
                Ok(())
            })
        })
        .await;
    let Answers { written, failed } = {
        let mut answers = lock(&answers);
        Answers {
            written: std::mem::take(&mut answers.written),
            failed: std::mem::take(&mut answers.failed),
        }
    };
    let Err(error) = &result else {
        for (done, result) in written {
            let _ = done.send(Ok(result));
        }
        return;
    };
    tracing::debug!(%error, "a shared write failed");
    let not_written = || NotWritten(error.to_string().into());
    if matches!(error, WriteError::Statement(_)) {
        // Only the failed statement was rolled back: the chunks before it committed
        // with the batch, and their callers hear their results.
        for (done, result) in written {
            let _ = done.send(Ok(result));
        }
    } else {
        for (done, _) in written {
            let _ = done.send(Err(not_written()));
        }
    }
    for done in failed {
        let _ = done.send(Err(not_written()));
    }
    // If the item that queued the write is still pending, the write never ran, and
    // every item pending joined it: they fail with it.
    let never_ran: Vec<Waiting<T, R>> = {
        let mut pending = lock(&pending);
        if pending.iter().any(|waiting| waiting.token == token) {
            std::mem::take(&mut *pending)
        } else {
            Vec::new()
        }
    };
    for waiting in never_ran {
        let _ = waiting.done.send(Err(not_written()));
    }
}
