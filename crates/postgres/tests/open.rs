//! Opening: migrations on a fresh database, twice, and clear errors.

mod common;

use mailfwd_postgres::{OpenError, PgDatabase, PoolSettings};

#[tokio::test]
async fn a_fresh_database_is_migrated_and_opening_again_changes_nothing() {
    let (name, database) = common::fresh_named_database().await;
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(database.pool())
    .await
    .expect("list tables");
    let tables: Vec<&str> = tables.iter().map(|(t,)| t.as_str()).collect();
    assert!(tables.contains(&"rules"), "tables: {tables:?}");
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let again = PgDatabase::open(&url, &PoolSettings::default())
        .await
        .expect("a migrated database opens again");
    again.pool().close().await;
    common::drop_test_database(&name, database).await;
}

#[tokio::test]
async fn a_missing_database_is_named_in_the_error() {
    let url = "postgres://postgres:hunter2@127.0.0.1:5432/mailfwd_no_such_database";
    let error = PgDatabase::open(url, &PoolSettings::default())
        .await
        .expect_err("the database does not exist");
    assert!(matches!(error, OpenError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("mailfwd_no_such_database"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
}

#[tokio::test]
async fn a_bad_url_is_refused() {
    let error = PgDatabase::open("mysql://nope", &PoolSettings::default())
        .await
        .expect_err("not a PostgreSQL URL");
    assert!(matches!(error, OpenError::InvalidUrl { .. }), "{error:?}");
}

#[tokio::test]
async fn a_database_a_newer_mailfwd_migrated_stops_the_start_instead_of_451_for_ever() {
    let (name, database) = common::fresh_named_database().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from a newer mailfwd', TRUE, '\\x00'::bytea, 0)",
    )
    .execute(database.pool())
    .await
    .expect("record a migration this binary does not know");
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let opened = PgDatabase::open_lazily(&url, &PoolSettings::default()).await;
    assert!(
        matches!(opened, Err(OpenError::Migrate { .. })),
        "refused for its migrations"
    );
    common::drop_test_database(&name, database).await;
}
