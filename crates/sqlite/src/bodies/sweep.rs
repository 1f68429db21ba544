//! The sweep of abandoned drafts: bodies whose writer never committed nor aborted
//! because its process died mid-write.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mailfwd_domain::email::StoreError;

use super::{ABANDONED_AFTER, now_millis};
use crate::writer::Writer;

/// How often the sweep runs at most (on a `create`): drafts are swept within an hour and
/// ten minutes of their crash, and a busy store sweeps six times an hour, not per email.
const EVERY_MS: i64 = 10 * 60 * 1000;

/// When the next sweep is due, in unix ms; 0, the default, makes the first `create` of
/// a store sweep.
#[derive(Debug, Default)]
pub(super) struct SweepClock(AtomicI64);

impl SweepClock {
    /// Whether a sweep is due at `now`; true for one caller only, which must sweep.
    pub(super) fn due(&self, now: i64) -> bool {
        let next = self.0.load(Ordering::Relaxed);
        now >= next
            && self
                .0
                .compare_exchange(next, now + EVERY_MS, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Sweeps in a task of its own: the session that happened to start it does not wait.
pub(super) fn spawn(writer: Writer) {
    tokio::spawn(async move {
        match remove_abandoned(&writer, ABANDONED_AFTER).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed abandoned email body drafts"),
            Err(error) => {
                tracing::warn!(%error, "could not remove abandoned email body drafts; trying again later");
            }
        }
    });
}

/// Deletes the drafts started more than `older_than` ago, with their chunks (cascade).
pub(super) async fn remove_abandoned(
    writer: &Writer,
    older_than: Duration,
) -> Result<u64, StoreError> {
    let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let before = now_millis().saturating_sub(age);
    writer
        .write(false, move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "DELETE FROM email_bodies INDEXED BY email_bodies_drafts
                     WHERE committed = 0 AND created_at <= ?1",
                )
                .bind(before)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
            })
        })
        .await
        .map_err(StoreError::storage)
}
