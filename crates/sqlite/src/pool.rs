//! Opening the database: create it if missing, WAL mode, migrations applied.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use thiserror::Error;

/// Why the database could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
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
/// [`OpenError`] saying which step failed.
pub(crate) async fn connect(url: &str) -> Result<SqlitePool, OpenError> {
    let pool = open(url, SqliteSynchronous::Full, 8).await?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|source| OpenError::Migrate {
            url: url.to_owned(),
            source,
        })?;
    Ok(pool)
}

async fn open(
    url: &str,
    synchronous: SqliteSynchronous,
    connections: u32,
) -> Result<SqlitePool, OpenError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| OpenError::InvalidUrl {
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
        .map_err(|source| OpenError::Open {
            url: url.to_owned(),
            source,
        })
}
