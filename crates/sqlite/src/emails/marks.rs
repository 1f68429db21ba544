//! `mark_evaluated` for many emails in one statement (see [`crate::coalesce`]): every
//! accepted email is marked once, so under load the writer's batch held one `UPDATE`
//! per email.

use futures_util::future::BoxFuture;
use sqlx::QueryBuilder;
use sqlx::sqlite::SqliteConnection;

use crate::coalesce::Coalescer;

/// The marks waiting for the writer: an email id each.
pub(super) type EvaluatedMarks = Coalescer<String, ()>;

/// Sets the evaluated flag of every email in `ids`.
pub(super) fn mark_all<'c>(
    conn: &'c mut SqliteConnection,
    ids: &'c [String],
) -> BoxFuture<'c, Result<Vec<()>, sqlx::Error>> {
    Box::pin(async move {
        let mut update = QueryBuilder::new("UPDATE emails SET evaluated = 1 WHERE id IN (");
        let mut list = update.separated(", ");
        for id in ids {
            list.push_bind(id.clone());
        }
        list.push_unseparated(")");
        update.build().execute(conn).await?;
        Ok(vec![(); ids.len()])
    })
}
