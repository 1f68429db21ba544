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

/// Why an item was not written.
#[derive(Debug, thiserror::Error)]
#[error("the database write it shared with others failed")]
pub(crate) struct NotWritten;

/// An item waiting for its write, and where its result goes.
struct Waiting<T, R> {
    /// Tells this waiter apart from the others.
    token: u64,
    item: T,
    /// Sent once the write has committed; dropped if it failed.
    done: oneshot::Sender<R>,
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

fn lock<W>(pending: &Mutex<Vec<W>>) -> MutexGuard<'_, Vec<W>> {
    // Each critical section leaves the list whole: a panic cannot tear it.
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `items` (at most [`Coalescer::CHUNK`]) with one statement and returns each
/// one's result, in order.
pub(crate) type Statement<T, R> =
    for<'c> fn(&'c mut SqliteConnection, &'c [T]) -> BoxFuture<'c, Result<Vec<R>, sqlx::Error>>;

impl<T: Send + 'static, R: Send + 'static> Coalescer<T, R> {
    /// Items per statement at most: SQLite takes up to 32,766 parameters.
    pub(crate) const CHUNK: usize = 250;

    /// Writes `item` with `statement` in the writer's next batch, together with the
    /// items that come meanwhile; its result once that has committed.
    ///
    /// The write runs in a task of its own: a caller that stops waiting (its future
    /// dropped) leaves the others' items to be written and answered all the same.
    pub(crate) async fn write(
        &self,
        writer: &Writer,
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
                Arc::clone(&self.pending),
                token,
                statement,
            ));
        }
        written.await.map_err(|_| NotWritten)
    }
}

/// Results of the statements that ran, kept for their callers until the batch is known
/// to have committed.
type Answers<R> = Arc<Mutex<Vec<(oneshot::Sender<R>, R)>>>;

/// Takes every item pending when the writer runs it and writes them, a statement per
/// [`Coalescer::CHUNK`]; then answers their callers. `token` is the item that queued it.
async fn write_pending<T: Send + 'static, R: Send + 'static>(
    writer: Writer,
    pending: Arc<Mutex<Vec<Waiting<T, R>>>>,
    token: u64,
    statement: Statement<T, R>,
) {
    let answers: Answers<R> = Arc::default();
    let (taken, written) = (Arc::clone(&pending), Arc::clone(&answers));
    let result = writer
        .write(false, move |conn| {
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
                    // On a failure, the senders of this chunk and the later ones are
                    // dropped: their callers hear `NotWritten`.
                    let results = statement(conn, &items).await?;
                    lock(&written).extend(senders.into_iter().zip(results));
                }
                Ok(())
            })
        })
        .await;
    let answered = std::mem::take(&mut *lock(&answers));
    match result {
        // Committed; or only the failed statement was rolled back, and the chunks
        // before it committed with the batch: their callers hear their results.
        Ok(()) | Err(WriteError::Statement(_)) => {
            if let Err(error) = &result {
                tracing::debug!(%error, "a shared write failed part-way");
            }
            for (done, result) in answered {
                let _ = done.send(result);
            }
        }
        Err(error) => {
            tracing::debug!(%error, "a shared write failed");
            drop(answered);
            // If the item that queued the write is still pending, the write never ran,
            // and every item pending joined it: they fail with it. (Had it run, its
            // items were taken, and failed when their senders were dropped.)
            let mut pending = lock(&pending);
            if pending.iter().any(|waiting| waiting.token == token) {
                pending.clear();
            }
        }
    }
}
