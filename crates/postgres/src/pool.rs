//! Connecting: the pool settings, the connection and the migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use thiserror::Error;

/// How big the pool is and how long to wait for it.
///
/// The defaults suit one instance on a small server. With many instances on one
/// database, `max_connections` times the number of instances must stay under the
/// server's `max_connections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections held open at most.
    pub max_connections: u32,
    /// Connections kept open even when idle, so a burst does not wait for handshakes.
    pub min_connections: u32,
    /// How long a query waits for a free connection (or a new one) before failing:
    /// bounded so that a database that went away fails requests instead of hanging them.
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// Why the database could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The URL is not a `postgres://` URL sqlx understands.
    #[error("'{url}' is not a valid PostgreSQL URL: {source}")]
    InvalidUrl {
        /// The URL as given, without its password.
        url: String,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to the PostgreSQL database '{url}': {source}")]
    Connect {
        /// The URL as given, without its password.
        url: String,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate the PostgreSQL database '{url}': {source}")]
    Migrate {
        /// The URL as given, without its password.
        url: String,
        /// What sqlx said.
        source: sqlx::migrate::MigrateError,
    },
}

/// Connects to `url` with `settings` and applies pending migrations.
///
/// The first connection is made eagerly, so a server that is down fails here, at start,
/// with the URL named. sqlx's migrator takes an advisory lock, so instances starting
/// together migrate one after the other.
pub(crate) async fn connect(url: &str, settings: &PoolSettings) -> Result<PgPool, OpenError> {
    let shown = redacted(url);
    let pool = pool_options(settings)
        .connect_with(connect_options(url)?)
        .await
        .map_err(|source| OpenError::Connect {
            url: shown.clone(),
            source,
        })?;
    migrate(&pool)
        .await
        .map_err(|source| OpenError::Migrate { url: shown, source })?;
    Ok(pool)
}

/// A pool on `url` that connects when first used, and a task that applies the pending
/// migrations as soon as the server answers, trying again every second until it
/// has: a server that is down at start does not stop the instance, whose requests fail
/// (and are answered as temporary failures) until it is back. Must run inside Tokio.
pub(crate) fn connect_lazily(url: &str, settings: &PoolSettings) -> Result<PgPool, OpenError> {
    let pool = pool_options(settings).connect_lazy_with(connect_options(url)?);
    let (migrating, shown) = (pool.clone(), redacted(url));
    tokio::spawn(async move {
        // A connection attempt a second costs a down server nothing, and the instance
        // is ready within a second of the server; the log says so once, then every
        // half-minute.
        let mut failures = 0_u32;
        loop {
            match migrate(&migrating).await {
                Ok(()) => {
                    tracing::info!(database = %shown, "the PostgreSQL database is up to date");
                    return;
                }
                Err(error) => {
                    if failures.is_multiple_of(30) {
                        tracing::error!(database = %shown, %error,
                            "cannot reach or migrate the PostgreSQL database; mail is answered 451 until it can; trying again every second");
                    }
                    failures = failures.wrapping_add(1);
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(pool)
}

/// A pool of one connection of its own for an instance's heartbeats: a busy main pool
/// (every connection taken by deliveries for longer than the instance timeout) must not
/// delay the signal that the instance is alive, or the others would take over the
/// deliveries it is making and send them twice.
pub(crate) fn liveness_pool(url: &str, settings: &PoolSettings) -> Result<PgPool, OpenError> {
    let settings = PoolSettings {
        max_connections: 1,
        min_connections: 0,
        ..settings.clone()
    };
    Ok(pool_options(&settings).connect_lazy_with(connect_options(url)?))
}

/// sqlx's migrator takes an advisory lock: instances starting together migrate one
/// after the other.
async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("./migrations").run(pool).await
}

fn pool_options(settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(settings.idle_timeout)
}

/// The connection options of `url`, which must be a PostgreSQL URL.
fn connect_options(url: &str) -> Result<PgConnectOptions, OpenError> {
    let shown = redacted(url);
    // sqlx reads any scheme as PostgreSQL; a `sqlite://` URL here is a wiring mistake
    // that should be named, not tried as a host.
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(OpenError::InvalidUrl {
            url: shown,
            source: sqlx::Error::Configuration(
                "the URL must start with postgres:// or postgresql://".into(),
            ),
        });
    }
    PgConnectOptions::from_str(url).map_err(|source| OpenError::InvalidUrl { url: shown, source })
}

/// The URL with its password (if any) replaced, fit for error messages and logs.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redacted("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted("postgres://h/db?x=1"), "postgres://h/db?x=1");
    }
}
