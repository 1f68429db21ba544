//! `EmailLog` on PostgreSQL: the received log in the `emails` table.

mod row;

use async_trait::async_trait;
use mailfwd_domain::email::{
    EmailLog, EmailPage, EmailQuery, StoreError, UnevaluatedStats, parse_email_cursor,
};
use mailfwd_domain::{EmailId, ReceivedEmail};
use sqlx::QueryBuilder;
use sqlx::postgres::{PgPool, Postgres};

use crate::millis::{from_unix_millis, unix_millis};
use row::{COLUMNS, EmailRow};

/// The received log in the `emails` table, one row per accepted email.
///
/// `record` returns once its row is committed, and a commit is durable with
/// PostgreSQL's default `synchronous_commit = on`. There is no group-commit writer as
/// on SQLite: concurrent commits already share WAL flushes on the server.
#[derive(Debug, Clone)]
pub struct PgEmailLog {
    pool: PgPool,
}

impl PgEmailLog {
    /// A log on an open pool whose migrations have run.
    #[must_use]
    pub(crate) fn new(pool: PgPool) -> Self {
        PgEmailLog { pool }
    }

    async fn fetch(&self, mut select: QueryBuilder<Postgres>) -> Result<Vec<EmailRow>, StoreError> {
        select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::storage)
    }
}

fn select_columns() -> QueryBuilder<Postgres> {
    let mut select = QueryBuilder::new("SELECT ");
    select.push(COLUMNS).push(" FROM emails");
    select
}

/// The conditions of a listing: the time window and the cursor.
fn push_window(select: &mut QueryBuilder<Postgres>, query: &EmailQuery, after: Option<EmailId>) {
    if let Some(since) = query.since {
        select
            .push(" AND received_at >= ")
            .push_bind(unix_millis(since));
    }
    if let Some(until) = query.until {
        select
            .push(" AND received_at < ")
            .push_bind(unix_millis(until));
    }
    if let Some(after) = after {
        select
            .push(" AND id > ")
            .push_bind(after.to_string())
            .push("::uuid");
    }
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl EmailLog for PgEmailLog {
    async fn record(&self, email: &ReceivedEmail) -> Result<(), StoreError> {
        EmailRow::from_email(email)?
            .insert()
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(StoreError::storage)
    }

    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        let mut select = select_columns();
        select
            .push(" WHERE id = ")
            .push_bind(id.to_string())
            .push("::uuid");
        let row = self.fetch(select).await?.into_iter().next();
        row.ok_or(StoreError::NotFound(*id))?.into_email()
    }

    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        let limit = query.limit.max(1);
        let after = query
            .cursor
            .as_deref()
            .map(parse_email_cursor)
            .transpose()?;
        // A window from `since` (usually recent) is found through the time index first,
        // then sorted: left to itself, the planner walks the id index from the oldest
        // email, expecting matches to be spread evenly, and filters out all the older
        // ones (100 ms at 500,000 emails, growing with the log). MATERIALIZED keeps it
        // from folding the window back into that walk. With no lower bound, walking ids
        // from the cursor finds a page fastest.
        let mut select = QueryBuilder::new("");
        if query.since.is_some() {
            select.push("WITH in_window AS MATERIALIZED (SELECT * FROM emails WHERE TRUE");
            push_window(&mut select, query, after);
            select
                .push(") SELECT ")
                .push(COLUMNS)
                .push(" FROM in_window AS emails");
        } else {
            select
                .push("SELECT ")
                .push(COLUMNS)
                .push(" FROM emails WHERE TRUE");
            push_window(&mut select, query, after);
        }
        select
            .push(" ORDER BY emails.id LIMIT ")
            .push_bind(limit_of(limit + 1));
        let emails = self
            .fetch(select)
            .await?
            .into_iter()
            .map(EmailRow::into_email)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EmailPage::from_overfetch(emails, limit))
    }

    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        // Deleted if evaluated; if nothing was deleted, kept only if it is still there
        // (unevaluated). Two statements, but a record never goes back to unevaluated.
        // Not while a delivery of it is pending (an evaluation or a reprocess that
        // enqueued one since retention checked the queue): checked in the same statement.
        let deleted = sqlx::query(
            "DELETE FROM emails WHERE id = $1::uuid AND evaluated
               AND NOT EXISTS (SELECT 1 FROM delivery_jobs WHERE email_id = $1::uuid)",
        )
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(StoreError::storage)?
        .rows_affected();
        if deleted > 0 {
            return Ok(true);
        }
        let kept: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM emails WHERE id = $1::uuid)")
                .bind(id.to_string())
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::storage)?;
        Ok(!kept)
    }

    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        sqlx::query("UPDATE emails SET evaluated = TRUE WHERE id = $1::uuid AND NOT evaluated")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(StoreError::storage)
    }

    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        // `NOT evaluated` matches the partial index's predicate, so a page walks the
        // backlog only, however many evaluated emails the log holds.
        let mut select = select_columns();
        select.push(" WHERE NOT evaluated");
        if let Some(after) = after {
            select
                .push(" AND id > ")
                .push_bind(after.to_string())
                .push("::uuid");
        }
        select
            .push(" ORDER BY emails.id LIMIT ")
            .push_bind(limit_of(limit));
        let rows = self.fetch(select).await?;
        // One record that cannot be read must not stop the backlog behind it: it is
        // reported and left out, and the rest of the page is evaluated.
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let id = row.id.clone();
                row.into_email()
                    .inspect_err(|error| {
                        tracing::error!(%id, %error, "an unevaluated email's record cannot be read; it is left unevaluated");
                    })
                    .ok()
            })
            .collect())
    }

    async fn unevaluated_stats(&self) -> Result<UnevaluatedStats, StoreError> {
        let (count, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), min(received_at) FROM emails WHERE NOT evaluated")
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::storage)?;
        Ok(UnevaluatedStats {
            count: u64::try_from(count).unwrap_or(0),
            oldest_received_at: oldest.map(from_unix_millis),
        })
    }
}
