//! `mark_evaluated` for many emails in one statement.
//!
//! Every accepted email is marked evaluated once, so under load the writer's batch held
//! one `UPDATE` per email, each a round trip to SQLite's worker thread. Marks that
//! arrive while one is waiting for the writer join it: the first caller queues one
//! write, which takes every mark pending when it runs and sets them all with
//! `UPDATE … WHERE id IN (…)`; each caller still returns only once that write has
//! committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mailfwd_domain::email::StoreError;
use sqlx::QueryBuilder;
use tokio::sync::oneshot;

use crate::writer::Writer;

/// Ids per `UPDATE`: well under SQLite's limit of 32,766 parameters.
const IDS_PER_UPDATE: usize = 500;

/// A mark waiting for its write.
struct Waiting {
    /// Tells this waiter apart from the others.
    token: u64,
    id: String,
    /// Sent once the write has committed; dropped if it failed.
    done: oneshot::Sender<()>,
}

/// The marks waiting for the writer, shared by the log's clones.
#[derive(Debug, Default)]
pub(super) struct EvaluatedMarks {
    pending: Arc<Mutex<Vec<Waiting>>>,
    tokens: AtomicU64,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

fn lock(pending: &Mutex<Vec<Waiting>>) -> MutexGuard<'_, Vec<Waiting>> {
    // Each critical section leaves the list whole: a panic cannot tear it.
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EvaluatedMarks {
    /// Marks `id` evaluated, in the next write that sets marks; returns once it has
    /// committed.
    pub(super) async fn mark(&self, writer: &Writer, id: String) -> Result<(), StoreError> {
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let (done, written) = oneshot::channel();
        let first = {
            let mut pending = lock(&self.pending);
            pending.push(Waiting { token, id, done });
            pending.len() == 1
        };
        if first {
            let pending = Arc::clone(&self.pending);
            let result = writer
                .write(false, move |conn| {
                    Box::pin(async move {
                        let marks = std::mem::take(&mut *lock(&pending));
                        for chunk in marks.chunks(IDS_PER_UPDATE) {
                            let mut update =
                                QueryBuilder::new("UPDATE emails SET evaluated = 1 WHERE id IN (");
                            let mut ids = update.separated(", ");
                            for mark in chunk {
                                ids.push_bind(mark.id.clone());
                            }
                            ids.push_unseparated(")");
                            update.build().execute(&mut *conn).await?;
                        }
                        Ok(marks)
                    })
                })
                .await;
            match result {
                Ok(marks) => {
                    for mark in marks {
                        let _ = mark.done.send(());
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot mark emails evaluated");
                    // The write never ran if this mark is still pending: then every
                    // mark pending joined it, and fails with it. (Had it run, its marks
                    // were taken, and failed when they were dropped.)
                    let mut pending = lock(&self.pending);
                    if pending.iter().any(|mark| mark.token == token) {
                        pending.clear();
                    }
                }
            }
        }
        written.await.map_err(|_| {
            StoreError::storage(std::io::Error::other(
                "the evaluated mark was not written: the database write failed",
            ))
        })
    }
}
