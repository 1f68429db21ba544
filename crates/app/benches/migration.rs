//! Migration throughput: 10,000 emails of mixed sizes (1 KB to 5 MB; mostly small, as
//! mail is) with their bodies in PostgreSQL, moved to S3 (the in-process S3 protocol
//! server) by `mailfwd migrate-emails --delete-source`: emails/s, MB/s, and the peak
//! resident memory of the tool. Needs PostgreSQL at 127.0.0.1:5432.
//! Run with `cargo bench -p mailfwd --bench migration` (EMAILS=N for another count).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{StreamExt, stream};
use mailfwd_domain::email::{BodyStore, EmailLog, Envelope, NewEmail, ReceivedEmail};
use mailfwd_domain::{EmailAddress, EmailId};
use mailfwd_postgres::{PgDatabase, PoolSettings};
use mailfwd_testkit::s3::S3Server;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const DATABASE: &str = "mailfwd_bench_migration";

/// The size of email `n`: 70% 1–20 KB, 25% 20–500 KB, 5% 0.5–5 MB.
fn size_of(n: u64) -> usize {
    let r = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    let (low, high): (u64, u64) = match r % 100 {
        0..70 => (1_000, 20_000),
        70..95 => (20_000, 500_000),
        _ => (500_000, 5_000_000),
    };
    usize::try_from(low + r % (high - low)).unwrap()
}

async fn store(bodies: &dyn BodyStore, log: &dyn EmailLog, n: u64) -> u64 {
    let id = EmailId::new();
    let size = size_of(n);
    let mut writer = bodies.create(&id).await.unwrap();
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let mut left = size;
    while left > 0 {
        let now = left.min(chunk.len());
        writer.write(&chunk[..now]).await.unwrap();
        left -= now;
    }
    let size = writer.commit().await.unwrap();
    let email = ReceivedEmail {
        id,
        email: NewEmail {
            envelope: Envelope {
                sender: Some(EmailAddress::parse("someone@example.org").unwrap()),
                recipients: vec![EmailAddress::parse("sales@acme.test").unwrap()],
            },
            peer: None,
            helo: None,
            tls: false,
            encoding: mailfwd_domain::Encoding::default(),
        },
        size,
        received_at: SystemTime::now(),
    };
    log.record(&email).await.unwrap();
    size
}

fn main() {
    let emails: u64 = std::env::var("EMAILS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = format!("{SERVER}/postgres");
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432");
        for sql in [
            format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
            format!("CREATE DATABASE {DATABASE}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut connection)
                .await
                .unwrap();
        }
        let url = format!("{SERVER}/{DATABASE}");
        let database = PgDatabase::open(&url, &PoolSettings::default())
            .await
            .unwrap();
        let (bodies, log) = (
            Arc::new(database.body_store()),
            Arc::new(database.email_log()),
        );
        let loading = Instant::now();
        let total: u64 = stream::iter(0..emails)
            .map(|n| {
                let (bodies, log) = (Arc::clone(&bodies), Arc::clone(&log));
                async move { store(bodies.as_ref(), log.as_ref(), n).await }
            })
            .buffer_unordered(8)
            .fold(0, |sum, size| async move { sum + size })
            .await;
        println!(
            "loaded {emails} emails, {:.1} MB, into PostgreSQL in {:.1} s",
            total as f64 / 1e6,
            loading.elapsed().as_secs_f64()
        );

        let s3 = S3Server::start("mail").await;
        let data = tempfile::tempdir().unwrap();
        let binary = env!("CARGO_BIN_EXE_mailfwd");
        let started = Instant::now();
        let mut child = Command::new("/usr/bin/time");
        child
            .args(["-f", "peak RSS %M KB", binary, "migrate-emails"])
            .args([
                "--from",
                "database",
                "--to",
                "s3://mail/emails",
                "--delete-source",
            ])
            .env_clear()
            .env("MAILFWD_DATA_DIR", data.path())
            .env("MAILFWD_DATABASE_URL", &url)
            .env("MAILFWD_LOG", "warn")
            .envs(s3.env());
        let output = tokio::task::spawn_blocking(move || child.output().unwrap())
            .await
            .unwrap();
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        let peak = stderr
            .lines()
            .find(|l| l.starts_with("peak RSS"))
            .unwrap_or("peak RSS ?");
        println!("{}", String::from_utf8_lossy(&output.stdout).trim());
        println!(
            "migration of {emails} emails ({:.1} MB): {:.1} s, {:.0} emails/s, {:.1} MB/s; {peak}",
            total as f64 / 1e6,
            elapsed.as_secs_f64(),
            emails as f64 / elapsed.as_secs_f64(),
            total as f64 / 1e6 / elapsed.as_secs_f64()
        );
        database.pool().close().await;
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
            )))
            .execute(&mut connection),
        )
        .await;
    });
}
