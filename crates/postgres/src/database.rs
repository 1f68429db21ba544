//! The one way into the PostgreSQL adapter: connect, run the migrations, and hand out
//! the ports, all sharing one pool.

use sqlx::postgres::PgPool;

use crate::pool::{OpenError, PoolSettings, connect};
use crate::{PgDeliveryQueue, PgEmailLog, PgRuleStore};

/// An open PostgreSQL database and the ports it implements.
///
/// Unlike SQLite there is no single writer: PostgreSQL takes concurrent writers itself,
/// and other instances write to the same database anyway. Handles are cheap clones of
/// the pool.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pool: PgPool,
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
        Ok(PgDatabase { pool })
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
        PgDeliveryQueue::new(self.pool.clone(), instance.to_owned())
    }

    /// The pool, for tests and tools that look at the tables directly.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
