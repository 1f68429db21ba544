//! Opening the database: create it if missing, WAL mode, migrations applied.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use thiserror::Error;

/// Why the database could not be opened.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The URL is not a `sqlite://` URL sqlx understands.
    #[error("'{url}' is not a valid SQLite URL: {source}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// The file could not be opened or created.
    #[error("cannot open the SQLite database '{url}': {source}")]
    Open {
        /// The URL as given.
        url: String,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate the SQLite database '{url}': {source}")]
    Migrate {
        /// The URL as given.
        url: String,
        /// What sqlx said.
        source: sqlx::migrate::MigrateError,
    },
}

/// Opens (creating if missing) the database at `url` and applies pending migrations.
///
/// WAL mode lets readers (rule lookups) run while one writer commits; `synchronous =
/// FULL` makes every commit durable before it returns: an email's record is on disk
/// before the client is told `250`.
///
/// # Errors
/// [`ConnectError`] saying which step failed.
pub async fn connect(url: &str) -> Result<SqlitePool, ConnectError> {
    let pool = open(url, SqliteSynchronous::Full, 8).await?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|source| ConnectError::Migrate {
            url: url.to_owned(),
            source,
        })?;
    Ok(pool)
}

/// A second pool on a database [`connect`] has opened, whose commits do not wait for
/// an fsync (`synchronous = NORMAL`): for delivery state, which changes several times
/// per message and must not cost an fsync each time.
///
/// This is safe because every store shares one write-ahead log, which is only ever
/// lost from its end: a power cut can lose the last relaxed commits, never one made
/// before a durable (`FULL`) commit such as an email's record. Losing a queue update
/// means evaluating an email again or sending a delivery again, which the unique
/// (email, destination) jobs and at-least-once delivery already allow for. A killed
/// process loses nothing: the operating system still has the data.
///
/// # Errors
/// [`ConnectError`] saying which step failed.
pub async fn connect_relaxed(url: &str) -> Result<SqlitePool, ConnectError> {
    // One connection: SQLite has one writer at a time, and writers queueing in the pool
    // is far cheaper than writers colliding in SQLite, whose busy handler sleeps (up to
    // 100 ms a time) until the lock is free.
    open(url, SqliteSynchronous::Normal, 1).await
}

async fn open(
    url: &str,
    synchronous: SqliteSynchronous,
    connections: u32,
) -> Result<SqlitePool, ConnectError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| ConnectError::InvalidUrl {
            url: url.to_owned(),
            source,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(connections)
        .connect_with(options)
        .await
        .map_err(|source| ConnectError::Open {
            url: url.to_owned(),
            source,
        })
}
