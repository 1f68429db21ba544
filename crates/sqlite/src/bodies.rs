//! `BodyStore` on SQLite: email bodies as chunk rows in the database file.
//!
//! Every write (a draft's head, each chunk, the commit, deletes, the sweep) goes through
//! the database's one writer task, as the received log and the queue do: a second
//! writing connection would collide with it and sleep in SQLite's busy handler (see
//! `writer.rs`). Chunks are relaxed writes (no fsync) and the commit is a durable one:
//! the write-ahead log is only ever lost from its end, so the fsync of the commit makes
//! every chunk written before it durable too, and a body costs one fsync however many
//! chunks it has, shared with the other sessions committing at that moment. A chunk
//! waits in the writer's queue as any write does, and a body writer waits for each one
//! before it takes more bytes, so the queue holds at most one chunk per session. Reads
//! go straight to the pool and run alongside the writer (WAL).
//!
//! Tables (migration 0006): a head row per writer in `email_bodies`, a draft until its
//! commit flips it to the committed body of its email in one statement; its bytes in
//! `email_body_chunks`, deleted with their head by a cascade.

mod reader;
mod sweep;
mod writer;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{
    BodyReader, BodyStore, BodyWriter, ChunkedReader, ChunkedWriter, StoreError,
};
use sqlx::sqlite::SqlitePool;

use crate::writer::Writer;
use reader::SqliteChunks;
use sweep::SweepClock;
use writer::SqliteDraft;

/// Bytes per chunk row at most: big enough that a 25 MB body is a hundred rows, small
/// enough that a writer or a reader holds little of it.
pub(crate) const CHUNK: usize = 256 * 1024;

/// How old a draft must be before the sweep takes it for abandoned (its writer's
/// process died mid-write). No SMTP session lasts this long.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60 * 60);

/// Email bodies in the `email_bodies` and `email_body_chunks` tables.
///
/// Nothing of a body is visible to [`BodyStore::open`] before its writer commits, and
/// it is durable (fsynced) when `commit` returns. An aborted writer deletes its draft;
/// a writer dropped without commit or abort deletes it from a task; a draft left by a
/// crash is deleted by a sweep of drafts older than [`ABANDONED_AFTER`], which runs on
/// the first `create` of the store and then at most every ten minutes, on a `create`
/// (see [`SqliteBodyStore::remove_abandoned`]).
#[derive(Debug, Clone)]
pub struct SqliteBodyStore {
    pool: SqlitePool,
    writer: Writer,
    sweep: std::sync::Arc<SweepClock>,
}

impl SqliteBodyStore {
    /// A body store on an open pool whose migrations have run, writing through `writer`
    /// (the one the database's other stores share).
    #[must_use]
    pub(crate) fn new(pool: SqlitePool, writer: Writer) -> Self {
        SqliteBodyStore {
            pool,
            writer,
            sweep: std::sync::Arc::default(),
        }
    }

    /// Deletes the drafts (bodies never committed, with their chunks) that were started
    /// more than `older_than` ago, and returns how many. The store runs this itself with
    /// [`ABANDONED_AFTER`]; a shorter age would delete the drafts of writers still at
    /// work, whose next write or commit would then fail.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if the drafts could not be deleted.
    pub async fn remove_abandoned(&self, older_than: Duration) -> Result<u64, StoreError> {
        sweep::remove_abandoned(&self.writer, older_than).await
    }
}

/// Now, in unix milliseconds.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait]
impl BodyStore for SqliteBodyStore {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError> {
        if self.sweep.due(now_millis()) {
            sweep::spawn(self.writer.clone());
        }
        let draft = SqliteDraft::start(self.writer.clone(), id).await?;
        Ok(Box::new(ChunkedWriter::new(draft, CHUNK)))
    }

    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        let head: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT body, size, chunks FROM email_bodies WHERE email_id = ?1 AND committed = 1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::storage)?;
        let (body, size, chunks) = head.ok_or(StoreError::NotFound(*id))?;
        let chunks_of = SqliteChunks {
            pool: self.pool.clone(),
            body,
        };
        let (size, chunks) = (
            u64::try_from(size).unwrap_or(0),
            u64::try_from(chunks).unwrap_or(0),
        );
        Ok(Box::new(ChunkedReader::new(chunks_of, *id, size, chunks)))
    }

    async fn delete(&self, id: &EmailId) -> Result<(), StoreError> {
        let id = id.to_string();
        // One statement: the cascade deletes the chunks in the same statement, so a
        // delete is all or nothing, and one that finds nothing is simply done.
        self.writer
            .write(false, move |conn| {
                Box::pin(async move {
                    sqlx::query("DELETE FROM email_bodies WHERE email_id = ?1 AND committed = 1")
                        .bind(id)
                        .execute(conn)
                        .await
                        .map(drop)
                })
            })
            .await
            .map_err(StoreError::storage)
    }
}
