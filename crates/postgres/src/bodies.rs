//! `BodyStore` on PostgreSQL: email bodies as chunk rows, shared by every instance.
//!
//! No transaction lasts as long as a body takes to arrive: the draft's head and each
//! chunk are short statements of their own, and the commit is one short transaction
//! that flips the head to the committed body of its email. The draft, chunk and abort
//! statements commit with `synchronous_commit = off` (no wait for the WAL flush) and
//! the commit with the server's default (`on`): the WAL is flushed in order, so the
//! flush the commit waits for makes every chunk written before it durable too, and a
//! body costs one WAL flush however many chunks it has, shared with concurrent commits.
//!
//! Tables (migration 0006): a head row per writer in `email_bodies`; its bytes in
//! `email_body_chunks`, deleted with their head by a cascade.

mod reader;
mod sweep;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{
    BodyReader, BodyStore, BodyWriter, ChunkedReader, ChunkedWriter, StoreError,
};
use sqlx::postgres::{PgPool, Postgres};
use sqlx::{PgConnection, Transaction};

use reader::PgChunks;
use sweep::SweepClock;
use writer::PgDraft;

/// Bytes per chunk row at most: big enough that a 25 MB body is a hundred rows, small
/// enough that a writer or a reader holds little of it.
pub(crate) const CHUNK: usize = 256 * 1024;

/// How old a draft must be before the sweep takes it for abandoned (its writer's
/// process died mid-write). No SMTP session lasts this long.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60 * 60);

/// Email bodies in the `email_bodies` and `email_body_chunks` tables.
///
/// Nothing of a body is visible to [`BodyStore::open`] before its writer commits, and
/// it is durable when `commit` returns. An aborted writer deletes its draft; a writer
/// dropped without commit or abort deletes it from a task; a draft left by a crash is
/// deleted by a sweep of drafts older than [`ABANDONED_AFTER`] (by the server's clock),
/// which runs on the first `create` of the store and then at most every ten minutes, on
/// a `create`, in whichever instance gets there (see [`PgBodyStore::remove_abandoned`]).
#[derive(Debug, Clone)]
pub struct PgBodyStore {
    pool: PgPool,
    sweep: Arc<SweepClock>,
}

impl PgBodyStore {
    /// A body store on an open pool whose migrations have run.
    #[must_use]
    pub(crate) fn new(pool: PgPool) -> Self {
        PgBodyStore {
            pool,
            sweep: Arc::default(),
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
        sweep::remove_abandoned(&self.pool, older_than).await
    }
}

/// A transaction whose commit does not wait for the WAL flush: for writes that a later
/// durable commit makes durable (or that may be lost, as an abort may).
pub(crate) async fn relaxed(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Deletes a draft and its chunks (cascade); never a committed body.
pub(crate) async fn delete_draft(conn: &mut PgConnection, body: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM email_bodies WHERE body = $1 AND NOT committed")
        .bind(body)
        .execute(conn)
        .await
        .map(drop)
}

#[async_trait]
impl BodyStore for PgBodyStore {
    async fn create(&self, id: &EmailId) -> Result<Box<dyn BodyWriter>, StoreError> {
        if self.sweep.due() {
            sweep::spawn(self.pool.clone());
        }
        let draft = PgDraft::start(self.pool.clone(), id).await?;
        Ok(Box::new(ChunkedWriter::new(draft, CHUNK)))
    }

    async fn open(&self, id: &EmailId) -> Result<Box<dyn BodyReader>, StoreError> {
        let head: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT body, size, chunks FROM email_bodies WHERE email_id = $1::uuid AND committed",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::storage)?;
        let (body, size, chunks) = head.ok_or(StoreError::NotFound(*id))?;
        let chunks_of = PgChunks {
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
        // One statement: the cascade deletes the chunks with the head, so a delete is all
        // or nothing, and one that finds nothing is simply done.
        sqlx::query("DELETE FROM email_bodies WHERE email_id = $1::uuid AND committed")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(StoreError::storage)
    }
}
