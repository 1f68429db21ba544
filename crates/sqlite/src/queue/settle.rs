//! Outcomes of many attempts in one statement (see [`crate::coalesce`]): every attempt
//! ends with one, so under load the writer's batch held one `UPDATE` per delivery.

use std::collections::HashSet;

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
///
/// `RETURNING` names the rows it changed, not the lease that matched, so one statement
/// holds each job once: two settles of one job (a stale lease's and the current one's)
/// go in statements of their own, in order, and only the one whose lease matched is
/// told it settled the job.
pub(super) fn settle_all<'c>(
    conn: &'c mut SqliteConnection,
    settles: &'c [Settle],
) -> BoxFuture<'c, Result<Vec<bool>, sqlx::Error>> {
    Box::pin(async move {
        let mut settled = vec![false; settles.len()];
        let mut left: Vec<usize> = (0..settles.len()).collect();
        while !left.is_empty() {
            let mut jobs = HashSet::new();
            let (round, later): (Vec<usize>, Vec<usize>) = left
                .into_iter()
                .partition(|&i| jobs.insert((&settles[i].email, &settles[i].key)));
            let changed = settle_round(conn, settles, &round).await?;
            for i in round {
                settled[i] = changed.contains(&(settles[i].email.clone(), settles[i].key.clone()));
            }
            left = later;
        }
        Ok(settled)
    })
}

/// One `UPDATE` of the settles at `round` (each job at most once); the jobs it changed.
async fn settle_round(
    conn: &mut SqliteConnection,
    settles: &[Settle],
    round: &[usize],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let mut update = QueryBuilder::new("WITH v(e, k, l, s, r, a, u) AS (");
    update.push_values(round.iter().map(|&i| &settles[i]), |mut row, settle| {
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
    let changed: Vec<(String, String)> = update.build_query_as().fetch_all(conn).await?;
    Ok(changed.into_iter().collect())
}
