//! The one way into the PostgreSQL adapter: connect, run the migrations, and hand out
//! the ports, all sharing one pool.

use sqlx::postgres::PgPool;

use crate::pool::{OpenError, PoolSettings, connect, connect_lazily, liveness_pool};
use crate::{PgBodyStore, PgDeliveryQueue, PgEmailLog, PgRuleStore};

/// An open PostgreSQL database and the ports it implements.
///
/// Unlike SQLite there is no single writer: PostgreSQL takes concurrent writers itself,
/// and other instances write to the same database anyway. Handles are cheap clones of
/// the pool.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pool: PgPool,
    /// One connection for the queue's heartbeats, apart from the busy pool.
    liveness: PgPool,
}

impl PgDatabase {
    /// Connects to `url`, e.g. `postgres://mailfwd@db.internal/mailfwd`, with the pool
    /// sized and timed by `settings`, and applies pending migrations. The database must
    /// exist; its tables are created by the migrations.
    ///
    /// # Errors
    /// [`OpenError`] saying which step failed (URL, connecting, migrating) for which URL.
    pub async fn open(url: &str, settings: &PoolSettings) -> Result<PgDatabase, OpenError> {
        let pool = connect(url, settings).await?;
        Ok(PgDatabase {
            pool,
            liveness: liveness_pool(url, settings)?,
        })
    }

    /// [`PgDatabase::open`] for a long-running instance: if the server does not answer
    /// (or cannot be migrated) now, the pool connects when next used and the
    /// migrations are applied in the background as soon as the server answers (retried
    /// until then), so a database that is down at start makes the ports fail, as a
    /// database that goes away later does, instead of stopping the instance. Must be
    /// called inside Tokio.
    ///
    /// # Errors
    /// [`OpenError::InvalidUrl`], and [`OpenError::Migrate`] when the server answered
    /// but refused the migrations for a reason waiting will not cure (the database was
    /// migrated by a newer mailfwd, a migration was changed, a statement failed).
    pub async fn open_lazily(url: &str, settings: &PoolSettings) -> Result<PgDatabase, OpenError> {
        let pool = match connect(url, settings).await {
            Ok(pool) => pool,
            Err(error @ OpenError::InvalidUrl { .. }) => return Err(error),
            Err(OpenError::Migrate { source, url }) if !unreachable(&source) => {
                return Err(OpenError::Migrate { source, url });
            }
            Err(error) => {
                tracing::error!(%error, "starting without the database; mail is answered 451 until it answers");
                connect_lazily(url, settings)?
            }
        };
        Ok(PgDatabase {
            pool,
            liveness: liveness_pool(url, settings)?,
        })
    }

    /// The forwarding rules (`RuleStore`), read and written by every instance on the
    /// database.
    #[must_use]
    pub fn rules(&self) -> PgRuleStore {
        PgRuleStore::new(self.pool.clone())
    }

    /// The received log (`EmailLog`): each record is committed on its own, and
    /// PostgreSQL shares the WAL flushes of concurrent commits itself.
    #[must_use]
    pub fn email_log(&self) -> PgEmailLog {
        PgEmailLog::new(self.pool.clone())
    }

    /// The delivery jobs (`DeliveryQueue`) as the instance named `default` claims
    /// them: for a single instance and for tests.
    #[must_use]
    pub fn queue(&self) -> PgDeliveryQueue {
        self.queue_for("default")
    }

    /// The delivery jobs (`DeliveryQueue`) as `instance` claims them: every instance on
    /// the database claims from one queue without two ever holding the same job. The
    /// name must be unique among the instances and the same across an instance's
    /// restarts, so that a restart releases its own leases and no one else's.
    #[must_use]
    pub fn queue_for(&self, instance: &str) -> PgDeliveryQueue {
        PgDeliveryQueue::new(
            self.pool.clone(),
            self.liveness.clone(),
            instance.to_owned(),
        )
    }

    /// The email bodies (`BodyStore`) in the database, shared by every instance on it:
    /// for deployments that want one system to back up rather than PostgreSQL and S3.
    /// Each call sweeps abandoned drafts on its first `create` (see [`PgBodyStore`]).
    #[must_use]
    pub fn body_store(&self) -> PgBodyStore {
        PgBodyStore::new(self.pool.clone())
    }

    /// The pool, for tests and tools that look at the tables directly.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Whether a failed migration failed for want of the server (it may answer later),
/// rather than because of the database's contents.
fn unreachable(error: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => matches!(
            error,
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
        ),
        _ => false,
    }
}
