//! The story of issue 14: bodies start in PostgreSQL, the database fills up, every body
//! moves to S3 while mail keeps arriving, with the migration killed half-way and
//! started again; at the end every email is readable byte for byte and deliverable,
//! and the old store is empty only because `--delete-source` said so.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyStore, EmailLog, StoreError};
use mailfwd_postgres::{PgDatabase, PoolSettings};
use mailfwd_s3::ObjectBodyStore;
use mailfwd_testkit::Client;
use mailfwd_testkit::s3::S3Server;
use mailfwd_testkit::sink::{Options, Sink};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::harness::{Server, binary, run};
use crate::postgres::TestDatabase;

const BUCKET: &str = "mail";
const TARGET: &str = "s3://mail/emails";

/// A message of about `size` bytes with the subject `subject`.
fn message(subject: &str, size: usize) -> Vec<u8> {
    let mut text = format!("Subject: {subject}\r\n\r\n");
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while text.len() < size {
        text.push_str(line);
    }
    text.into_bytes()
}

/// Sends `count` messages of 1 KB to 300 KB to sales@acme.test; their ids.
async fn send(server: &Server, tag: &str, count: usize) -> Vec<String> {
    let mut client = Client::connect(&server.smtp).await;
    let mut ids = Vec::new();
    for n in 0..count {
        let size = 1_000 + (n * 7_919) % 300_000;
        let body = message(&format!("{tag}-{n}"), size);
        ids.push(
            client
                .send_mail("someone@example.org", "sales@acme.test", &body)
                .await,
        );
        assert_eq!(client.command("RSET").await.code, 250);
    }
    ids
}

/// The SHA-256 of the body of `id` in `store`, `None` if it has none.
async fn digest(store: &dyn BodyStore, id: &str) -> Option<[u8; 32]> {
    let id = EmailId::parse(id).unwrap();
    let mut reader = match store.open(&id).await {
        Ok(reader) => reader,
        Err(StoreError::NotFound(_)) => return None,
        Err(other) => panic!("{other}"),
    };
    let mut hasher = Sha256::new();
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        hasher.update(&chunk);
    }
    Some(hasher.finalize().into())
}

fn s3_store(s3: &S3Server) -> ObjectBodyStore {
    ObjectBodyStore::from_url_with_env(TARGET, s3.env()).unwrap()
}

/// Whether the S3 server holds the body of `id`.
fn in_s3(s3: &S3Server, store: &ObjectBodyStore, id: &str) -> bool {
    let key = store.key_of(&EmailId::parse(id).unwrap());
    s3.path_of(BUCKET, &key).exists()
}

fn env_of(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_move_from_postgresql_to_s3_while_mail_flows_and_a_killed_migration_resumes() {
    let database = TestDatabase::create().await;
    let s3 = S3Server::start(BUCKET).await;
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let relay = sink.addr.to_string();
    let mut settings: Vec<(String, String)> = vec![
        ("MAILFWD_DATABASE_URL".into(), database.url.clone()),
        ("MAILFWD_RELAY".into(), relay),
    ];
    settings.extend(s3.env());

    // Bodies in the database.
    let mut before = settings.clone();
    before.push(("MAILFWD_EMAIL_STORE".into(), "database".into()));
    let server = Server::start(data.path(), &env_of(&before));
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    let old_ids = send(&server, "old", 120).await;
    sink.wait_for_messages(120, Duration::from_secs(60)).await;
    let pg = PgDatabase::open(&database.url, &PoolSettings::default())
        .await
        .unwrap();
    let bodies = pg.body_store();
    let mut digests = HashMap::new();
    for id in &old_ids {
        digests.insert(
            id.clone(),
            digest(&bodies, id).await.expect("stored in PostgreSQL"),
        );
    }
    let _ = server.terminate();

    // The operator switches serve to S3, the database as the old store, then migrates.
    let mut during = settings.clone();
    during.push(("MAILFWD_EMAIL_STORE".into(), TARGET.into()));
    during.push(("MAILFWD_EMAIL_STORE_OLD".into(), "database".into()));
    let server = Server::start(data.path(), &env_of(&during));
    let migrate_args = [
        "migrate-emails",
        "--from",
        "database",
        "--to",
        TARGET,
        "--delete-source",
    ];
    let mut slow = Command::new(binary())
        .args(migrate_args)
        .args(["--rate-limit", "1"])
        .env_clear()
        .env("MAILFWD_DATA_DIR", data.path())
        .envs(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Mail keeps arriving; then the migration is killed a fifth of the way in.
    let new_ids = send(&server, "new", 30).await;
    let target = s3_store(&s3);
    let started = Instant::now();
    while old_ids.iter().filter(|id| in_s3(&s3, &target, id)).count() < 24 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the migration does not progress"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slow.kill().unwrap();
    slow.wait().unwrap();
    let copied_before = old_ids.iter().filter(|id| in_s3(&s3, &target, id)).count();
    assert!(copied_before < old_ids.len(), "killed before the end");

    // Started again: it carries on, copying only what is not in S3 yet.
    let dir = data.path().to_owned();
    let env: Vec<(String, String)> = settings.clone();
    let output = tokio::task::spawn_blocking(move || run(&dir, &migrate_args, &env_of(&env)))
        .await
        .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("after a kill with {copied_before} of 120 in S3: {summary}");
    let copied_now: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        copied_now,
        old_ids.len() - copied_before,
        "nothing copied twice: {summary}"
    );
    assert!(summary.contains("; 0 failed"), "{summary}");

    // Every email ever accepted is in S3, byte for byte; the database holds no body.
    for id in &old_ids {
        assert_eq!(digest(&target, id).await, Some(digests[id]), "{id}");
        assert_eq!(
            digest(&bodies, id).await,
            None,
            "{id} deleted from the source"
        );
    }
    for id in &new_ids {
        assert!(digest(&target, id).await.is_some(), "{id}");
    }
    let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM email_bodies")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(committed, 0, "the old store is empty");

    // And deliverable: a sample sent again with reprocess --force.
    let delivered = sink.received().len();
    let sample: Vec<&str> = old_ids.iter().step_by(30).map(String::as_str).collect();
    let mut args = vec!["reprocess", "--force", "--grpc", server.grpc.as_str()];
    for id in &sample {
        args.extend(["--id", id]);
    }
    let dir = data.path().to_owned();
    let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&dir, &args, &[])
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    sink.wait_for_messages(delivered + sample.len(), Duration::from_secs(30))
        .await;
    server.terminate();
    pg.pool().close().await;
    database.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_delete_source_the_old_store_keeps_every_body() {
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let relay = sink.addr.to_string();
    // Every body in the body store first; then, with the default limit, small ones
    // are kept in their records, which a migration leaves where they are.
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_RELAY", relay.as_str()),
            ("MAILFWD_EMAIL_STORE", "database"),
            ("MAILFWD_INLINE_BODY_LIMIT", "0"),
        ],
    );
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    let ids = send(&server, "kept", 20).await;
    sink.wait_for_messages(20, Duration::from_secs(30)).await;
    server.terminate();
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_RELAY", relay.as_str()),
            ("MAILFWD_EMAIL_STORE", "database"),
        ],
    );
    let small = send(&server, "small", 5).await;
    sink.wait_for_messages(25, Duration::from_secs(30)).await;
    server.terminate();

    let target = format!("file://{}", data.path().join("moved").display());
    let output = run(
        data.path(),
        &["migrate-emails", "--from", "database", "--to", &target],
        &[],
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        summary.starts_with("20 bodies copied and verified"),
        "{summary}"
    );
    assert!(
        summary.contains(" 5 kept in their records; 0 failed"),
        "{summary}"
    );
    let moved = ObjectBodyStore::from_url(&target).unwrap();
    let database = mailfwd_sqlite::Database::open(&format!(
        "sqlite://{}",
        data.path().join("mailfwd.db").display()
    ))
    .await
    .unwrap();
    let old = database.body_store();
    for id in &ids {
        let copy = digest(&moved, id).await.expect("copied");
        assert_eq!(digest(&old, id).await, Some(copy), "kept in the old store");
    }
    let log = database.email_log();
    for id in &small {
        let id = EmailId::parse(id).unwrap();
        assert!(
            log.inline_body(&id).await.unwrap().is_some(),
            "{id} kept in its record"
        );
    }
    // A second run finds every copy in place and copies nothing.
    let again = run(
        data.path(),
        &["migrate-emails", "--from", "database", "--to", &target],
        &[],
    );
    let summary = String::from_utf8_lossy(&again.stdout);
    assert!(summary.starts_with("0 bodies copied"), "{summary}");

    // One store under two spellings: refused before anything is copied or deleted.
    let same = format!("{target}/");
    let refused = run(
        data.path(),
        &[
            "migrate-emails",
            "--from",
            &target,
            "--to",
            &same,
            "--delete-source",
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("are the same store"),
        "{refused:?}"
    );
    for id in &ids {
        assert!(digest(&moved, id).await.is_some(), "{id} still there");
    }
}
