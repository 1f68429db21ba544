//! `EmailLog` on SQLite: the received log in the `emails` table.

mod group_commit;
mod row;

use async_trait::async_trait;
use mailfwd_domain::email::{EmailLog, EmailPage, EmailQuery, StoreError, parse_email_cursor};
use mailfwd_domain::{EmailId, ReceivedEmail};
use sqlx::QueryBuilder;
use sqlx::sqlite::SqlitePool;

use crate::pool::{ConnectError, connect};
use group_commit::GroupCommit;
use row::{COLUMNS, EmailRow, unix_millis};

/// The received log in the `emails` table, one row per accepted email.
///
/// `record` returns once its row is committed (the pool runs `synchronous = FULL`, so
/// committed means on disk). Concurrent records share one transaction: a writer task
/// batches whatever is queued, so many SMTP sessions finishing at once cost one fsync.
/// The writer ends when the log is dropped. Reads go straight to the pool and run
/// alongside the writer (WAL).
#[derive(Debug)]
pub struct SqliteEmailLog {
    pool: SqlitePool,
    /// Where the evaluated flag is written; the main pool unless [`Self::with_state_pool`].
    state_pool: SqlitePool,
    writer: GroupCommit,
}

impl SqliteEmailLog {
    /// A log on an open pool whose migrations have run, sharing it with the other stores.
    ///
    /// # Panics
    /// Outside a Tokio runtime: the log spawns its writer task on the current one.
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        SqliteEmailLog {
            writer: GroupCommit::start(pool.clone()),
            state_pool: pool.clone(),
            pool,
        }
    }

    /// Writes the evaluated flag through `pool` (see [`crate::connect_relaxed`]): losing
    /// it only means evaluating an email again, which is idempotent.
    #[must_use]
    pub fn with_state_pool(mut self, pool: SqlitePool) -> Self {
        self.state_pool = pool;
        self
    }

    /// Opens the database at `url` (see [`connect`]) and returns a log on it.
    ///
    /// # Errors
    /// [`ConnectError`] if the database cannot be opened or migrated.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Ok(SqliteEmailLog::new(connect(url).await?))
    }

    /// How many transactions the writer has committed so far. Compared with the number
    /// of records, it shows how many records each fsync carried (for metrics and tests).
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }
}

#[async_trait]
impl EmailLog for SqliteEmailLog {
    async fn record(&self, email: &ReceivedEmail) -> Result<(), StoreError> {
        self.writer.record(EmailRow::from_email(email)?).await
    }

    async fn get(&self, id: &EmailId) -> Result<ReceivedEmail, StoreError> {
        let mut select = QueryBuilder::new("SELECT ");
        select.push(COLUMNS).push(" FROM emails WHERE id = ");
        select.push_bind(id.to_string());
        let row: Option<EmailRow> = select
            .build_query_as()
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::storage)?;
        row.ok_or(StoreError::NotFound(*id))?.into_email()
    }

    async fn list(&self, query: &EmailQuery) -> Result<EmailPage, StoreError> {
        let limit = query.limit.max(1);
        let after = query
            .cursor
            .as_deref()
            .map(parse_email_cursor)
            .transpose()?;
        let mut select = QueryBuilder::new("SELECT ");
        select.push(COLUMNS).push(" FROM emails");
        if query.since.is_some() {
            // A window from `since` (usually recent) is found through the time index and
            // sorted; without it SQLite would walk every older id first. With no lower
            // bound, walking ids from the cursor finds a page fastest.
            select.push(" INDEXED BY emails_by_received_at");
        }
        select.push(" WHERE TRUE");
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
            select.push(" AND id > ").push_bind(after.to_string());
        }
        select
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
        let rows: Vec<EmailRow> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::storage)?;
        let emails = rows
            .into_iter()
            .map(EmailRow::into_email)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EmailPage::from_overfetch(emails, limit))
    }

    async fn mark_evaluated(&self, id: &EmailId) -> Result<(), StoreError> {
        sqlx::query("UPDATE emails SET evaluated = 1 WHERE id = ?1")
            .bind(id.to_string())
            .execute(&self.state_pool)
            .await
            .map_err(StoreError::storage)?;
        Ok(())
    }

    async fn unevaluated(&self, limit: usize) -> Result<Vec<ReceivedEmail>, StoreError> {
        let mut select = QueryBuilder::new("SELECT ");
        select
            .push(COLUMNS)
            .push(" FROM emails WHERE evaluated = 0 ORDER BY id LIMIT ");
        select.push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<EmailRow> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::storage)?;
        rows.into_iter().map(EmailRow::into_email).collect()
    }
}
