//! A fresh PostgreSQL database per test, on the real server at 127.0.0.1:5432.
//!
//! Each test gets its own database, `mailfwd_test_<pid>_<random>`, so tests run in
//! parallel without seeing each other's rows and the migrations run as in production.
//! The contract macros own the store a test builds, so a test cannot drop its database
//! when it ends; instead the first test of each run drops the databases of test
//! processes that are no longer alive. No server is a failure, never a skip: a suite
//! that silently tests nothing would look green.

#![allow(dead_code, clippy::missing_panics_doc)]

use mailfwd_postgres::{PgDatabase, PoolSettings};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

/// The server the tests run on: the one the project's machines and CI run.
const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
/// The prefix of every test database, so the sweep drops nothing else.
const PREFIX: &str = "mailfwd_test_";

/// An open connection to the `postgres` maintenance database, or a failed test that
/// says how to start the server.
pub async fn admin() -> PgConnection {
    let url = format!("{SERVER}/postgres");
    match PgConnection::connect(&url).await {
        Ok(connection) => connection,
        Err(error) => panic!(
            "PostgreSQL at 127.0.0.1:5432 is not reachable ({error}). These tests need \
             it; start it with:\n    \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        ),
    }
}

/// Drops the test databases left by test processes that have ended, once per process.
async fn sweep_leftovers(connection: &mut PgConnection) {
    static SWEPT: OnceCell<()> = OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let names: Vec<(String,)> =
                sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
                    .bind(format!("{PREFIX}%"))
                    .fetch_all(&mut *connection)
                    .await
                    .expect("list the test databases");
            for (name,) in names {
                let pid = name
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.split('_').next())
                    .and_then(|pid| pid.parse::<u32>().ok());
                let alive =
                    pid.is_none_or(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                if !alive {
                    // Without FORCE: a database someone is still connected to (a test
                    // of another session in another PID namespace) is left alone.
                    drop_database(connection, &name, false).await;
                }
            }
        })
        .await;
}

/// Drops a test database. `force` ends the connections still open on it (a finished
/// test's own pool). Each drop makes the server checkpoint, which takes seconds on a
/// busy machine after many fresh databases: the price of a database per test.
async fn drop_database(connection: &mut PgConnection, name: &str, force: bool) {
    let force = if force { " WITH (FORCE)" } else { "" };
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\"{force}");
    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *connection)
        .await
    {
        eprintln!("could not drop the test database {name}: {error}");
    }
}

/// A new, empty, migrated database for one test.
pub async fn fresh_database() -> PgDatabase {
    let (_, database) = fresh_named_database().await;
    database
}

/// A new, empty, migrated database for one test, and its name (for [`drop_test_database`]).
pub async fn fresh_named_database() -> (String, PgDatabase) {
    let mut connection = admin().await;
    sweep_leftovers(&mut connection).await;
    // Only digits and hex letters: the name is safe to put in the statement.
    let name = format!("{PREFIX}{}_{:016x}", std::process::id(), fastrand::u64(..));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    let _ = connection.close().await;
    let settings = PoolSettings {
        max_connections: 4,
        ..PoolSettings::default()
    };
    let database = PgDatabase::open(&format!("{SERVER}/{name}"), &settings)
        .await
        .expect("open and migrate the fresh test database");
    (name, database)
}

/// Another handle on the test database `name`, with its own pool: another instance.
pub async fn open_again(name: &str) -> PgDatabase {
    let settings = PoolSettings {
        max_connections: 4,
        ..PoolSettings::default()
    };
    PgDatabase::open(&format!("{SERVER}/{name}"), &settings)
        .await
        .expect("open the test database again")
}

/// Closes `database` and drops it: for tests that own their database to the end.
pub async fn drop_test_database(name: &str, database: PgDatabase) {
    database.pool().close().await;
    let mut connection = admin().await;
    drop_database(&mut connection, name, true).await;
}
