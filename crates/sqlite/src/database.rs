//! The one way into the SQLite adapter: open the file, run the migrations, start the
//! writer, and hand out the ports, all sharing that pool and that writer.

use sqlx::sqlite::SqlitePool;

use crate::pool::{OpenError, connect};
use crate::writer::Writer;
use crate::{SqliteBodyStore, SqliteDeliveryQueue, SqliteEmailLog, SqliteRuleStore};

/// An open SQLite database and the ports it implements.
///
/// Every port handed out shares the database's pool and its one writer (group commit:
/// see `writer.rs`), so concurrent writes of the received log and the queue never
/// collide. Handles are cheap: call the accessors as often as needed. The writer task
/// ends once the database and every port taken from it are dropped.
#[derive(Debug, Clone)]
pub struct Database {
    pool: SqlitePool,
    writer: Writer,
}

impl Database {
    /// Opens (creating if missing) the database at `url`, e.g. `sqlite://./data/mailfwd.db`,
    /// applies pending migrations and starts the writer. The file's directory must
    /// exist. The database must be a file: an in-memory one would be a different, empty
    /// database on the writer's own connection.
    ///
    /// # Errors
    /// [`OpenError`] saying which step failed (URL, opening, migrating) for which URL.
    ///
    /// # Panics
    /// Outside a Tokio runtime: the writer is a task.
    pub async fn open(url: &str) -> Result<Database, OpenError> {
        let pool = connect(url).await?;
        let writer = Writer::start(&pool);
        Ok(Database { pool, writer })
    }

    /// The forwarding rules (`RuleStore`). Rule changes are rare and go straight to the
    /// pool; they wait their turn with the writer's transactions.
    #[must_use]
    pub fn rules(&self) -> SqliteRuleStore {
        SqliteRuleStore::new(self.pool.clone())
    }

    /// The received log (`EmailLog`), writing through the database's writer.
    #[must_use]
    pub fn email_log(&self) -> SqliteEmailLog {
        SqliteEmailLog::new(self.pool.clone(), self.writer.clone())
    }

    /// The delivery jobs (`DeliveryQueue`), writing through the database's writer.
    #[must_use]
    pub fn queue(&self) -> SqliteDeliveryQueue {
        SqliteDeliveryQueue::new(self.pool.clone(), self.writer.clone())
    }

    /// The email bodies (`BodyStore`) in the database file itself, writing through the
    /// database's writer: for a laptop or a single instance that wants one file to back
    /// up. Each call sweeps abandoned drafts on its first `create` (see
    /// [`SqliteBodyStore`]).
    #[must_use]
    pub fn body_store(&self) -> SqliteBodyStore {
        SqliteBodyStore::new(self.pool.clone(), self.writer.clone())
    }
}
