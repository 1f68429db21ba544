//! Outcomes of many attempts in one statement (see [`crate::coalesce`]): every attempt
//! ends with one, so under load the writer's batch held one `UPDATE` per delivery.

use futures_util::future::BoxFuture;
use sqlx::QueryBuilder;
use sqlx::sqlite::SqliteConnection;

/// A job this worker holds, moved to `state`.
pub(super) struct Settle {
    pub(super) email: String,
    pub(super) key: String,
    /// The lease the worker holds; nothing changes if the job is no longer under it.
    pub(super) lease: i64,
    pub(super) state: &'static str,
    /// Kept as it was if `None`.
    pub(super) reply: Option<String>,
    /// Due then (unix ms).
    pub(super) at: i64,
    /// 1 takes back the attempt the claim counted.
    pub(super) uncount: i64,
}

/// Settles every job of `settles` still under its lease; for each, whether it was.
pub(super) fn settle_all<'c>(
    conn: &'c mut SqliteConnection,
    settles: &'c [Settle],
) -> BoxFuture<'c, Result<Vec<bool>, sqlx::Error>> {
    Box::pin(async move {
        let mut update = QueryBuilder::new("WITH v(e, k, l, s, r, a, u) AS (");
        update.push_values(settles, |mut row, settle| {
            row.push_bind(settle.email.clone())
                .push_bind(settle.key.clone())
                .push_bind(settle.lease)
                .push_bind(settle.state)
                .push_bind(settle.reply.clone())
                .push_bind(settle.at)
                .push_bind(settle.uncount);
        });
        update.push(
            ") UPDATE delivery_jobs SET state = v.s, last_reply = coalesce(v.r, last_reply),
                 next_attempt_at = v.a, lease = NULL, attempts = max(attempts - v.u, 0)
               FROM v
               WHERE email_id = v.e AND destination_key = v.k AND lease = v.l AND state = 'pending'
               RETURNING email_id, destination_key",
        );
        let settled: Vec<(String, String)> = update.build_query_as().fetch_all(conn).await?;
        Ok(settles
            .iter()
            .map(|settle| {
                settled
                    .iter()
                    .any(|(email, key)| *email == settle.email && *key == settle.key)
            })
            .collect())
    })
}
