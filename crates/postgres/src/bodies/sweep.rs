//! The sweep of abandoned drafts: bodies whose writer never committed nor aborted
//! because its process died mid-write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mailfwd_domain::email::StoreError;
use sqlx::postgres::PgPool;

use super::ABANDONED_AFTER;

/// How often the sweep runs at most (on a `create`): drafts are swept within an hour and
/// ten minutes of their crash, and a busy store sweeps six times an hour, not per email.
/// Instances sweeping at once do no harm: the second finds nothing left.
const EVERY: Duration = Duration::from_secs(10 * 60);

/// When the next sweep is due, in milliseconds since the clock's start; 0, the
/// default, makes the first `create` of a store sweep.
#[derive(Debug)]
pub(super) struct SweepClock {
    start: Instant,
    next: AtomicU64,
}

impl Default for SweepClock {
    fn default() -> Self {
        SweepClock {
            start: Instant::now(),
            next: AtomicU64::new(0),
        }
    }
}

impl SweepClock {
    /// Whether a sweep is due now; true for one caller only, which must sweep.
    pub(super) fn due(&self) -> bool {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let now = millis(self.start.elapsed());
        let next = self.next.load(Ordering::Relaxed);
        now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(millis(EVERY)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Sweeps in a task of its own: the session that happened to start it does not wait.
pub(super) fn spawn(pool: PgPool) {
    tokio::spawn(async move {
        match remove_abandoned(&pool, ABANDONED_AFTER).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed abandoned email body drafts"),
            Err(error) => {
                tracing::warn!(%error, "could not remove abandoned email body drafts; trying again later");
            }
        }
    });
}

/// Deletes the drafts started more than `older_than` ago, by the server's clock, with
/// their chunks (cascade), in one statement.
pub(super) async fn remove_abandoned(
    pool: &PgPool,
    older_than: Duration,
) -> Result<u64, StoreError> {
    sqlx::query(
        "DELETE FROM email_bodies
         WHERE NOT committed AND created_at <= now() - make_interval(secs => $1)",
    )
    .bind(older_than.as_secs_f64())
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
    .map_err(StoreError::storage)
}
