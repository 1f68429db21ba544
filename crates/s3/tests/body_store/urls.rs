//! What `from_url` says about URLs it cannot open.

use mailfwd_s3::{ObjectBodyStore, OpenError};

fn error(url: &str, env: &[(&str, &str)]) -> OpenError {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    ObjectBodyStore::from_url_with_env(url, env).expect_err("the URL is refused")
}

#[test]
fn unsupported_and_incomplete_urls_are_named() {
    let message = error("ftp://host/emails", &[]).to_string();
    assert!(message.contains("'ftp://host/emails'"), "{message}");
    assert!(
        message.contains("file://PATH or s3://BUCKET/PREFIX"),
        "{message}"
    );

    let message = error("s3:///prefix", &[]).to_string();
    assert_eq!(
        message,
        "the email store URL 's3:///prefix' names no bucket"
    );
    let message = error("file://", &[]).to_string();
    assert_eq!(message, "the email store URL 'file://' names no directory");
}

#[test]
fn an_endpoint_must_be_http_or_https() {
    let message = error("s3://mail", &[("MAILFWD_S3_ENDPOINT", "minio:9000")]).to_string();
    assert_eq!(
        message,
        "MAILFWD_S3_ENDPOINT='minio:9000' (for 's3://mail') is not an http:// or https:// URL"
    );
}

#[test]
fn a_directory_that_cannot_be_created_is_reported() {
    let file = crate::fresh_dir("not-a-dir");
    std::fs::create_dir_all(file.parent().expect("a parent")).expect("create the parent");
    std::fs::write(&file, b"a file, not a directory").expect("write a file");
    let url = format!("file://{}/emails", file.display());
    let message = error(&url, &[]).to_string();
    assert!(
        message.starts_with(&format!(
            "cannot create the email directory '{}/emails' for '{url}'",
            file.display()
        )),
        "{message}"
    );
}
