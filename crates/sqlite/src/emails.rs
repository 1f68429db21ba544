//! `EmailLog` on SQLite: the received log in the `emails` table.

mod marks;
mod records;
mod row;

use async_trait::async_trait;
use bytes::Bytes;
use mailfwd_domain::email::{
    EmailLog, EmailPage, EmailQuery, StoreError, UnevaluatedStats, parse_email_cursor,
};
use mailfwd_domain::{EmailId, ReceivedEmail};
use sqlx::QueryBuilder;
use sqlx::sqlite::SqlitePool;

use crate::writer::{WriteError, Writer};
use marks::{EvaluatedMarks, mark_all};
use records::{NewRecord, Records, insert_all};
use row::{COLUMNS, EmailRow, from_unix_millis, unix_millis};

/// The received log in the `emails` table, one row per accepted email.
///
/// `record` returns once its row is committed durably (on disk). Writes go through the
/// database's one writer task, so many SMTP sessions finishing at once share one
/// transaction and one fsync. Reads go straight to the pool and run alongside the
/// writer (WAL).
///
/// Bodies of up to [`SqliteEmailLog::with_inline_limit`] bytes are kept in their rows
/// (the `body` column), written in the record's own insert.
#[derive(Debug)]
pub struct SqliteEmailLog {
    pool: SqlitePool,
    writer: Writer,
    inline_limit: usize,
    records: Records,
    marks: EvaluatedMarks,
}

impl SqliteEmailLog {
    /// A log on an open pool whose migrations have run, writing through `writer` (the
    /// one the database's other stores share). It keeps no bodies.
    #[must_use]
    pub(crate) fn new(pool: SqlitePool, writer: Writer) -> Self {
        SqliteEmailLog {
            pool,
            writer,
            inline_limit: 0,
            records: Records::default(),
            marks: EvaluatedMarks::default(),
        }
    }

    /// The log keeping bodies of up to `limit` bytes in their records (0: none).
    /// Bodies kept earlier stay readable whatever the limit is now.
    #[must_use]
    pub fn with_inline_limit(self, limit: usize) -> Self {
        SqliteEmailLog {
            inline_limit: limit,
            ..self
        }
    }

    /// How many transactions the writer has committed so far (see [`Writer::commits`]).
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }
}

fn store_error(error: WriteError) -> StoreError {
    StoreError::storage(error)
}

#[async_trait]
impl EmailLog for SqliteEmailLog {
    async fn record(&self, email: &ReceivedEmail) -> Result<(), StoreError> {
        let row = EmailRow::from_email(email)?;
        self.records
            .write(
                &self.writer,
                true,
                NewRecord { row, body: None },
                insert_all,
            )
            .await
            .map_err(StoreError::storage)
    }

    fn inline_limit(&self) -> usize {
        self.inline_limit
    }

    async fn record_with_body(&self, email: &ReceivedEmail, body: Bytes) -> Result<(), StoreError> {
        let row = EmailRow::from_email(email)?;
        let record = NewRecord {
            row,
            body: Some(body),
        };
        self.records
            .write(&self.writer, true, record, insert_all)
            .await
            .map_err(StoreError::storage)
    }

    async fn inline_body(&self, id: &EmailId) -> Result<Option<Bytes>, StoreError> {
        let body: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT body FROM emails WHERE id = ?1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::storage)?;
        Ok(body.flatten().map(Bytes::from))
    }

    async fn forget(&self, id: &EmailId) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    // One statement decides: deleted if evaluated, kept (false) if not,
                    // and "gone" (true) if there was no record.
                    // Kept while unevaluated or while a delivery of it is pending (one
                    // enqueued since retention checked the queue).
                    let unevaluated: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM emails WHERE id = ?1 AND (evaluated = 0
                           OR EXISTS (SELECT 1 FROM delivery_jobs
                                      WHERE email_id = ?1 AND state = 'pending'))",
                    )
                    .bind(&id)
                    .fetch_one(&mut *conn)
                    .await?;
                    if unevaluated > 0 {
                        return Ok(false);
                    }
                    sqlx::query("DELETE FROM emails WHERE id = ?1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(true)
                })
            })
            .await
            .map_err(store_error)
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
        self.marks
            .write(&self.writer, false, id.to_string(), mark_all)
            .await
            .map_err(StoreError::storage)
    }

    async fn unevaluated(
        &self,
        after: Option<EmailId>,
        limit: usize,
    ) -> Result<Vec<ReceivedEmail>, StoreError> {
        let mut select = QueryBuilder::new("SELECT ");
        // Through the partial index of unevaluated ids: a page costs the same however
        // many evaluated emails the log holds.
        select
            .push(COLUMNS)
            .push(" FROM emails INDEXED BY emails_unevaluated WHERE evaluated = 0");
        if let Some(after) = after {
            select.push(" AND id > ").push_bind(after.to_string());
        }
        select
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows: Vec<EmailRow> = select
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::storage)?;
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
        // Both figures come from the partial index alone (it holds received_at too):
        // one scan of the backlog, never of the received log.
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(received_at) FROM emails INDEXED BY emails_unevaluated
             WHERE evaluated = 0",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::storage)?;
        Ok(UnevaluatedStats {
            count: u64::try_from(count).unwrap_or(0),
            oldest_received_at: oldest.map(from_unix_millis),
        })
    }
}
