//! Which adapter serves each storage URL: the one place that knows the schemes. A new
//! backend (`postgres://`, another object store) is one arm of a `match` here; each
//! adapter has its own opener and keeps its internals (pools, writer tasks) to itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailfwd_domain::RuleStore;
use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_domain::email::{BodyStore, EmailLog};
use mailfwd_layers::MigratingBodyStore;
use mailfwd_postgres::{PgDatabase, PoolSettings};
use mailfwd_s3::ObjectBodyStore;
use thiserror::Error;

use crate::config::Config;

/// The variable (and setting) naming the database.
pub const DATABASE_VARIABLE: &str = "MAILFWD_DATABASE_URL";
/// The variable (and setting) naming the email body store.
pub const EMAIL_STORE_VARIABLE: &str = "MAILFWD_EMAIL_STORE";
/// The variable naming the store bodies are moving from, during a migration.
pub const EMAIL_STORE_OLD_VARIABLE: &str = "MAILFWD_EMAIL_STORE_OLD";
/// The email store URL meaning "in the database, next to the records".
pub const DATABASE_EMAIL_STORE: &str = "database";

const DATABASE_SCHEMES: &str = "sqlite://PATH or postgres://USER@HOST/DATABASE";
const EMAIL_STORE_SCHEMES: &str = "file://PATH, s3://BUCKET/PREFIX or database";

/// Why the storage could not be opened.
#[derive(Debug, Error)]
pub enum StorageError {
    /// No adapter serves the URL's scheme.
    #[error("{variable}='{url}' is not supported: use {supported}")]
    Unsupported {
        /// The variable the URL came from.
        variable: &'static str,
        /// The URL as given.
        url: String,
        /// The URL forms that are supported.
        supported: &'static str,
    },
    /// The data directory could not be created.
    #[error("cannot create the data directory '{}': {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The SQLite database could not be opened or migrated.
    #[error("{DATABASE_VARIABLE}: {0}")]
    Sqlite(#[from] mailfwd_sqlite::OpenError),
    /// The PostgreSQL database could not be reached or migrated.
    #[error("{DATABASE_VARIABLE}: {0}")]
    Postgres(#[from] mailfwd_postgres::OpenError),
    /// The body store URL is malformed or its backend refused the settings.
    #[error("{variable}: {source}")]
    EmailStore {
        /// The variable the URL came from.
        variable: &'static str,
        /// Why the store could not be opened.
        source: mailfwd_s3::OpenError,
    },
}

/// The ports a database implements.
pub struct DatabasePorts {
    /// Forwarding rules.
    pub rules: Arc<dyn RuleStore>,
    /// The received log.
    pub log: Arc<dyn EmailLog>,
    /// Delivery jobs.
    pub queue: Arc<dyn DeliveryQueue>,
    /// Email bodies in the database itself (`MAILFWD_EMAIL_STORE=database`).
    pub bodies: Arc<dyn BodyStore>,
    /// The PostgreSQL database, when that is what it is: other instances write to it,
    /// and their rule changes must reach this instance's cache.
    pub postgres: Option<PgDatabase>,
}

/// All the storage the configuration names.
pub struct Storage {
    /// What the database holds.
    pub database: DatabasePorts,
    /// Where email bodies are kept.
    pub bodies: Arc<dyn BodyStore>,
}

impl Storage {
    /// Creates the data directory, then opens the database and the body store.
    ///
    /// # Errors
    /// [`StorageError`] naming the store that could not be opened and why.
    pub async fn open(config: &Config) -> Result<Storage, StorageError> {
        create_data_dir(&config.data_dir)?;
        let database = open_database_keeping(
            &config.database_url(),
            &config.pool_settings(),
            &config.instance_id(),
            Opening::Lazily,
            config.inline_body_limit,
        )
        .await?;
        let bodies = open_body_store(
            EMAIL_STORE_VARIABLE,
            &config.email_store_url(),
            &database.bodies,
        )?;
        let bodies = match &config.email_store_old {
            Some(old) => {
                let old = open_body_store(EMAIL_STORE_OLD_VARIABLE, old, &database.bodies)?;
                Arc::new(MigratingBodyStore::new(old, bodies)) as Arc<dyn BodyStore>
            }
            None => bodies,
        };
        Ok(Storage { database, bodies })
    }
}

/// Creates the data directory, then opens the database alone and returns its rules
/// (for `mailfwd import`).
///
/// # Errors
/// [`StorageError`] naming the database and why it could not be opened.
pub async fn open_rules(config: &Config) -> Result<Arc<dyn RuleStore>, StorageError> {
    create_data_dir(&config.data_dir)?;
    Ok(open_database(
        &config.database_url(),
        &config.pool_settings(),
        &config.instance_id(),
        Opening::AtOnce,
    )
    .await?
    .rules)
}

/// Opens the database at `url` with the adapter its scheme names; a server database
/// gets a pool of `pool` (SQLite keeps its own: one writer), and its queue claims for
/// `instance` (SQLite serves one instance).
///
/// # Errors
/// [`StorageError::Unsupported`] for an unknown scheme; the adapter's error otherwise.
pub async fn open_database(
    url: &str,
    pool: &PoolSettings,
    instance: &str,
    opening: Opening,
) -> Result<DatabasePorts, StorageError> {
    open_database_keeping(url, pool, instance, opening, 0).await
}

/// [`open_database`] whose received log keeps bodies of up to `inline_bodies` bytes in
/// their records, where the adapter can (SQLite; PostgreSQL keeps none).
///
/// # Errors
/// As [`open_database`].
pub async fn open_database_keeping(
    url: &str,
    pool: &PoolSettings,
    instance: &str,
    opening: Opening,
    inline_bodies: usize,
) -> Result<DatabasePorts, StorageError> {
    match database_adapter(url)? {
        DatabaseAdapter::Sqlite => {
            let database = mailfwd_sqlite::Database::open(url).await?;
            Ok(DatabasePorts {
                rules: Arc::new(database.rules()),
                log: Arc::new(database.email_log().with_inline_limit(inline_bodies)),
                queue: Arc::new(database.queue()),
                bodies: Arc::new(database.body_store()),
                postgres: None,
            })
        }
        DatabaseAdapter::Postgres => {
            let database = match opening {
                Opening::AtOnce => PgDatabase::open(url, pool).await?,
                Opening::Lazily => PgDatabase::open_lazily(url, pool).await?,
            };
            Ok(DatabasePorts {
                rules: Arc::new(database.rules()),
                log: Arc::new(database.email_log()),
                queue: Arc::new(database.queue_for(instance)),
                bodies: Arc::new(database.body_store()),
                postgres: Some(database),
            })
        }
    }
}

/// When a server database is connected to and migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Now: a server that is down is an error at once (a command that runs and ends).
    AtOnce,
    /// When the server answers, in the background: `serve` starts and answers
    /// temporary failures until it does (SQLite, a file, opens at once either way).
    Lazily,
}

/// The adapters a database URL can name.
enum DatabaseAdapter {
    Sqlite,
    Postgres,
}

/// Which adapter serves the database at `url`.
fn database_adapter(url: &str) -> Result<DatabaseAdapter, StorageError> {
    match scheme(url) {
        Some("sqlite") => Ok(DatabaseAdapter::Sqlite),
        Some("postgres" | "postgresql") => Ok(DatabaseAdapter::Postgres),
        _ => Err(unsupported(DATABASE_VARIABLE, url, DATABASE_SCHEMES)),
    }
}

/// Checks that an adapter serves each storage URL of `config`, without opening
/// anything: the configuration is checked with it when it loads.
///
/// # Errors
/// [`StorageError::Unsupported`] naming the variable and the URL.
pub fn check_schemes(config: &Config) -> Result<(), StorageError> {
    database_adapter(&config.database_url())?;
    body_store_scheme(EMAIL_STORE_VARIABLE, &config.email_store_url())?;
    if let Some(old) = &config.email_store_old {
        body_store_scheme(EMAIL_STORE_OLD_VARIABLE, old)?;
    }
    Ok(())
}

/// Opens the body store at `url` (named by `variable`) with the adapter its scheme
/// names; `database` is the database's own, for [`DATABASE_EMAIL_STORE`].
///
/// # Errors
/// [`StorageError::Unsupported`] for an unknown scheme; the adapter's error otherwise.
pub fn open_body_store(
    variable: &'static str,
    url: &str,
    database: &Arc<dyn BodyStore>,
) -> Result<Arc<dyn BodyStore>, StorageError> {
    body_store_scheme(variable, url)?;
    if url == DATABASE_EMAIL_STORE {
        return Ok(Arc::clone(database));
    }
    let store = ObjectBodyStore::from_url(url)
        .map_err(|source| StorageError::EmailStore { variable, source })?;
    Ok(Arc::new(store))
}

/// Whether a body store adapter serves `url` (local files and S3 are one adapter).
fn body_store_scheme(variable: &'static str, url: &str) -> Result<(), StorageError> {
    if url == DATABASE_EMAIL_STORE {
        return Ok(());
    }
    match scheme(url) {
        Some("file" | "s3") => Ok(()),
        _ => Err(unsupported(variable, url, EMAIL_STORE_SCHEMES)),
    }
}

/// The URL's scheme, as written: the adapters accept their schemes in lower case only.
fn scheme(url: &str) -> Option<&str> {
    url.split_once(':').map(|(scheme, _)| scheme)
}

fn unsupported(variable: &'static str, url: &str, supported: &'static str) -> StorageError {
    StorageError::Unsupported {
        variable,
        url: url.to_owned(),
        supported,
    }
}

fn create_data_dir(path: &Path) -> Result<(), StorageError> {
    std::fs::create_dir_all(path).map_err(|source| StorageError::DataDir {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
