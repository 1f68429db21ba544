//! What a queue write tells the other instances: jobs are due that any of them may
//! claim. Without it, an idle instance finds them at its next poll of the queue.
//!
//! Only writes that leave unclaimed jobs due now notify: a job given back, the jobs
//! of a silent instance taken over, reprocessed or otherwise unclaimed enqueued jobs.
//! The hot path (fresh mail, enqueued already claimed by the instance that received it;
//! outcomes; retries due later) never does. At most one `NOTIFY` per committed write,
//! never one per row: a `NOTIFY` takes a global lock at commit, so per-row
//! notifications would serialize every writer on the server.

use sqlx::PgExecutor;

/// The channel queue writes notify and the listener listens on.
pub(crate) const CHANNEL: &str = "mailfwd_jobs";

/// Notifies that `jobs` jobs are due now, in the transaction `executor` is in (heard
/// once it commits) or in a transaction of its own after the write it reports has
/// committed. The payload is the count, for listeners to wake as many workers.
pub(crate) async fn notify_due(
    executor: impl PgExecutor<'_>,
    jobs: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(jobs.to_string())
        .execute(executor)
        .await
        .map(drop)
}

/// How many jobs a payload says are due; `None` if it does not say.
pub(crate) fn parse(payload: &str) -> Option<u64> {
    payload.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_count_is_read_and_anything_else_is_unknown() {
        assert_eq!(parse("12"), Some(12));
        assert_eq!(parse(""), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("all"), None);
    }
}
