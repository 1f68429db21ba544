//! mailfwd on PostgreSQL: `MAILFWD_DATABASE_URL=postgres://…` switches the whole app,
//! and several instances share one database.
//!
//! Each test gets its own database on the real server at 127.0.0.1:5432; no server is a
//! failure that says how to start it, never a skip.

use std::time::Duration;

use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Options, Sink};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::harness::Server;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const PREFIX: &str = "mailfwd_e2e_";

/// A database of one test, dropped by [`TestDatabase::drop_now`] (or by the first test
/// of a later run, once this process has ended).
pub(crate) struct TestDatabase {
    name: String,
    /// Its URL, for `MAILFWD_DATABASE_URL`.
    pub(crate) url: String,
}

async fn admin() -> PgConnection {
    match PgConnection::connect(&format!("{SERVER}/postgres")).await {
        Ok(connection) => connection,
        Err(error) => panic!(
            "PostgreSQL at 127.0.0.1:5432 is not reachable ({error}). These tests need it; \
             start it with:\n    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        ),
    }
}

async fn execute(connection: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(connection)
        .await
        .map(drop)
}

impl TestDatabase {
    /// A new, empty database (mailfwd migrates it when it starts).
    pub(crate) async fn create() -> TestDatabase {
        let mut connection = admin().await;
        let leftovers: Vec<(String,)> =
            sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
                .bind(format!("{PREFIX}%"))
                .fetch_all(&mut connection)
                .await
                .unwrap();
        for (name,) in leftovers {
            let pid = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next());
            let dead =
                pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
            if dead {
                let _ = execute(
                    &mut connection,
                    format!("DROP DATABASE IF EXISTS \"{name}\""),
                )
                .await;
            }
        }
        // Only digits and hex letters: safe to put in the statement.
        let name = format!("{PREFIX}{}_{:016x}", std::process::id(), fastrand::u64(..));
        execute(&mut connection, format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create a test database");
        TestDatabase {
            url: format!("{SERVER}/{name}"),
            name,
        }
    }

    /// Drops it, ending the connections still open on it.
    pub(crate) async fn drop_now(self) {
        let mut connection = admin().await;
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(error) = execute(&mut connection, sql).await {
            eprintln!("could not drop the test database {}: {error}", self.name);
        }
    }
}

#[tokio::test]
async fn serve_on_postgres_takes_rules_receives_and_forwards() {
    let database = TestDatabase::create().await;
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let relay = sink.addr.to_string();
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_DATABASE_URL", database.url.as_str()),
            ("MAILFWD_RELAY", relay.as_str()),
            ("MAILFWD_DATABASE_POOL_SIZE", "4"),
        ],
    );
    server
        .create_rule(
            "sales@acme.test",
            json!(["alice@dest.test", "bob@dest.test"]),
        )
        .await;
    let mut client = Client::connect(&server.smtp).await;
    let id = client
        .send_mail(
            "someone@example.org",
            "sales@acme.test",
            b"Subject: on postgres\r\n\r\nx\r\n",
        )
        .await;
    let received = sink.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!(received[0].recipients, ["alice@dest.test", "bob@dest.test"]);
    let deliveries =
        crate::forward::deliveries_until(&server, &id, |d| d["state"] == "delivered").await;
    assert_eq!(deliveries.len(), 2);
    server.terminate();
    database.drop_now().await;
}
