//! Choosing adapters by URL: what an operator sees for each kind of URL.

#![allow(clippy::unwrap_used)]

use mailfwd_domain::email::EmailQuery;
use mailfwd_domain::{RecipientPattern, Rule};

use super::*;

#[tokio::test]
async fn an_unknown_database_scheme_names_the_variable_the_url_and_the_schemes() {
    for url in ["mysql://db.example/mailfwd", "mailfwd.db", "mysql:x"] {
        let error = open_database(url, &PoolSettings::default(), "test", Opening::AtOnce)
            .await
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            format!(
                "MAILFWD_DATABASE_URL='{url}' is not supported: use sqlite://PATH or postgres://USER@HOST/DATABASE"
            )
        );
    }
}

#[test]
fn an_unknown_email_store_scheme_names_the_variable_the_url_and_the_schemes() {
    let database: Arc<dyn mailfwd_domain::email::BodyStore> =
        Arc::new(mailfwd_domain::memory::MemoryBodyStore::new());
    let error = open_body_store(
        EMAIL_STORE_VARIABLE,
        "ftp://files.example/emails",
        &database,
    )
    .err()
    .unwrap();
    assert_eq!(
        error.to_string(),
        "MAILFWD_EMAIL_STORE='ftp://files.example/emails' is not supported: \
         use file://PATH, s3://BUCKET/PREFIX or database"
    );
    let error = open_body_store(EMAIL_STORE_OLD_VARIABLE, "databse", &database)
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .starts_with("MAILFWD_EMAIL_STORE_OLD='databse' is not supported"),
        "{error}"
    );
}

#[tokio::test]
async fn an_adapter_error_says_which_variable_it_is_about() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/mailfwd.db");
    let url = format!("sqlite://{}", missing.display());
    let error = open_database(&url, &PoolSettings::default(), "test", Opening::AtOnce)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.starts_with("MAILFWD_DATABASE_URL: "), "{error}");
    assert!(error.contains(&url), "{error}");
}

#[tokio::test]
async fn a_sqlite_url_opens_every_database_port_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mailfwd.db").display());
    let database = open_database(&url, &PoolSettings::default(), "test", Opening::AtOnce)
        .await
        .unwrap();
    let pattern = RecipientPattern::parse("sales@acme.test").unwrap();
    let destination = mailfwd_domain::EmailAddress::parse("a@dest.test").unwrap();
    let rule = Rule::new(pattern.clone(), vec![destination], 10).unwrap();
    database.rules.create(rule.clone()).await.unwrap();
    let page = database.log.list(&EmailQuery::default()).await.unwrap();
    assert!(page.emails.is_empty());

    // Opened again, the same file holds the same rule.
    let again = open_database(&url, &PoolSettings::default(), "test", Opening::AtOnce)
        .await
        .unwrap();
    assert_eq!(again.rules.get(&pattern).await.unwrap(), rule);
}

#[tokio::test]
async fn a_file_url_opens_a_body_directory() {
    let dir = tempfile::tempdir().unwrap();
    let emails = dir.path().join("emails");
    let database: Arc<dyn mailfwd_domain::email::BodyStore> =
        Arc::new(mailfwd_domain::memory::MemoryBodyStore::new());
    open_body_store(
        EMAIL_STORE_VARIABLE,
        &format!("file://{}", emails.display()),
        &database,
    )
    .unwrap();
    assert!(emails.is_dir());
}
