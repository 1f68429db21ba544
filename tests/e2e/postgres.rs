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

    // `mailfwd import` writes to the same database, and the running server (whose
    // cache answered for acme.test already) forwards to the imported rule at once.
    let csv = data.path().join("rules.csv");
    std::fs::write(&csv, "email,forward\ninfo@acme.test,carol@dest.test\n").unwrap();
    let import = crate::harness::run(
        data.path(),
        &["import", csv.to_str().unwrap()],
        &[("MAILFWD_DATABASE_URL", database.url.as_str())],
    );
    assert!(import.status.success(), "{import:?}");
    client.cmd("RSET", 250).await;
    client.cmd("MAIL FROM:<someone@example.org>", 250).await;
    client.cmd("RCPT TO:<info@acme.test>", 250).await;
    assert_eq!(
        client
            .data(b"Subject: imported\r\n\r\nx\r\n.\r\n")
            .await
            .code,
        250
    );
    let received = sink.wait_for_messages(2, Duration::from_secs(20)).await;
    assert_eq!(received[1].recipients, ["carol@dest.test"]);
    server.terminate();
    database.drop_now().await;
}

/// One of several instances on `database`, sharing the email store `bodies`, relaying
/// to `sink`: its own data directory, the shared SRS secret, a rule cache that would
/// keep a stale answer for an hour unless told, and a 3 s instance timeout.
fn instance(
    id: &str,
    data: &std::path::Path,
    database: &TestDatabase,
    bodies: &std::path::Path,
    sink: &Sink,
) -> Server {
    let store = format!("file://{}", bodies.display());
    let relay = sink.addr.to_string();
    Server::start(
        data,
        &[
            ("MAILFWD_DATABASE_URL", database.url.as_str()),
            ("MAILFWD_DATABASE_POOL_SIZE", "5"),
            ("MAILFWD_EMAIL_STORE", store.as_str()),
            ("MAILFWD_RELAY", relay.as_str()),
            ("MAILFWD_INSTANCE_ID", id),
            ("MAILFWD_INSTANCE_TIMEOUT", "3s"),
            ("MAILFWD_SRS_SECRET", "shared-by-all-instances"),
            ("MAILFWD_RULE_CACHE_TTL", "1h"),
            ("MAILFWD_HOSTNAME", "mx.mailfwd.test"),
        ],
    )
}

/// Two instances, A and B, on a fresh database and one email store.
struct Pair {
    database: TestDatabase,
    a: Server,
    b: Server,
    _dirs: [tempfile::TempDir; 3],
}

async fn pair(sink: &Sink) -> Pair {
    let database = TestDatabase::create().await;
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let a = instance("a", dirs[0].path(), &database, dirs[2].path(), sink);
    let b = instance("b", dirs[1].path(), &database, dirs[2].path(), sink);
    Pair {
        database,
        a,
        b,
        _dirs: dirs,
    }
}

/// Sends `count` messages to sales@acme.test through `server` over `connections`
/// sessions, each with the subject `tag-N`; the subjects of those answered `250`.
async fn send(server: &Server, tag: &str, count: usize, connections: usize) -> Vec<String> {
    let mut sends = tokio::task::JoinSet::new();
    for connection in 0..connections {
        let (address, tag) = (server.smtp.clone(), tag.to_owned());
        sends.spawn(async move {
            let mut client = Client::connect(&address).await;
            let mut accepted = Vec::new();
            for n in (connection..count).step_by(connections) {
                let subject = format!("{tag}-{n}");
                let body = format!("Subject: {subject}\r\n\r\nx\r\n");
                client
                    .send_mail("someone@example.org", "sales@acme.test", body.as_bytes())
                    .await;
                accepted.push(subject);
                assert_eq!(client.command("RSET").await.code, 250);
            }
            accepted
        });
    }
    let mut accepted = Vec::new();
    while let Some(sent) = sends.join_next().await {
        accepted.extend(sent.unwrap());
    }
    accepted
}

/// How many copies of each subject the sink got.
pub(crate) fn copies(sink: &Sink) -> std::collections::HashMap<String, usize> {
    let mut copies = std::collections::HashMap::new();
    for message in sink.received() {
        let text = String::from_utf8_lossy(&message.data).into_owned();
        let subject = text
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned();
        *copies.entry(subject).or_insert(0) += 1;
    }
    copies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_created_through_one_instance_forwards_mail_received_by_the_other_at_once() {
    let sink = Sink::start(Options::destination()).await;
    let pair = pair(&sink).await;
    // B looks the recipient up first, and caches that there is no rule.
    let mut client = Client::connect(&pair.b.smtp).await;
    client.ehlo().await;
    client.cmd("MAIL FROM:<someone@example.org>", 250).await;
    assert_eq!(client.command("RCPT TO:<sales@acme.test>").await.code, 550);

    pair.a
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    let created = std::time::Instant::now();
    // B's cache would answer 550 for an hour; A's notification drops the entry.
    loop {
        match client.command("RCPT TO:<sales@acme.test>").await.code {
            250 => break,
            550 if created.elapsed() < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => panic!(
                "B still refuses the recipient after {:?}: {other}",
                created.elapsed()
            ),
        }
    }
    eprintln!(
        "B accepted the new rule's recipient {:?} after A created it",
        created.elapsed()
    );
    let done = client.data(b"Subject: through B\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(done.code, 250);
    let received = sink.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!(received[0].recipients, ["alice@dest.test"]);
    pair.a.terminate();
    pair.b.terminate();
    pair.database.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_messages_half_to_each_instance_are_each_delivered_exactly_once() {
    let sink = Sink::start(Options::destination()).await;
    let pair = pair(&sink).await;
    pair.a
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    let started = std::time::Instant::now();
    let (to_a, to_b) = tokio::join!(send(&pair.a, "a", 1000, 10), send(&pair.b, "b", 1000, 10));
    assert_eq!(to_a.len() + to_b.len(), 2000);
    sink.wait_for_messages(2000, Duration::from_secs(120)).await;
    eprintln!(
        "2,000 messages through two instances delivered in {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let copies = copies(&sink);
    for subject in to_a.iter().chain(&to_b) {
        assert_eq!(copies.get(subject), Some(&1), "{subject}");
    }
    assert_eq!(sink.received().len(), 2000, "nothing delivered twice");
    pair.a.terminate();
    pair.b.terminate();
    pair.database.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_instances_mail_is_delivered_by_the_other_within_the_instance_timeout() {
    let sink = Sink::start(Options::destination()).await;
    // Slow replies: A is killed with deliveries in flight and jobs still queued.
    sink.set_mode(mailfwd_testkit::sink::Mode::Slow);
    let pair = pair(&sink).await;
    pair.a
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    let accepted = send(&pair.a, "a", 300, 10).await;
    pair.a.kill();
    let killed = std::time::Instant::now();
    let delivered_before = copies(&sink).len();
    sink.set_mode(mailfwd_testkit::sink::Mode::Accept);
    loop {
        let copies = copies(&sink);
        if accepted.iter().all(|subject| copies.contains_key(subject)) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "{} of {} messages A answered 250 were delivered {:?} after it was killed",
            accepted.iter().filter(|s| copies.contains_key(*s)).count(),
            accepted.len(),
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // B takes A's leases over once A has been silent for the 3 s timeout, and sweeps
    // up what A had accepted and not evaluated at the same pace; the rest is B
    // delivering a few hundred messages.
    eprintln!(
        "A killed with {delivered_before} of 300 delivered; B delivered the rest within {:?}",
        killed.elapsed()
    );
    pair.b.terminate();
    pair.database.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_a_stopping_instance_gives_back_are_taken_by_the_other_at_once() {
    let sink = Sink::start(Options::destination()).await;
    // Slow replies: A is stopped with deliveries in flight and jobs still claimed.
    sink.set_mode(mailfwd_testkit::sink::Mode::Slow);
    let pair = pair(&sink).await;
    pair.a
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    let accepted = send(&pair.a, "a", 300, 10).await;
    // B's workers found nothing in the queue moments ago: without being told, they
    // would next look up to 5 s from now.
    let status = pair.a.terminate();
    assert!(status.success(), "A stopped cleanly: {status}");
    let stopped = std::time::Instant::now();
    let delivered_before = sink.received().len();
    sink.set_mode(mailfwd_testkit::sink::Mode::Accept);
    assert!(
        delivered_before < accepted.len(),
        "A had delivered everything before it stopped; nothing to hand over"
    );
    while sink.received().len() == delivered_before {
        assert!(
            stopped.elapsed() < Duration::from_secs(2),
            "B took none of the jobs A gave back within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = stopped.elapsed();
    loop {
        let copies = copies(&sink);
        if accepted.iter().all(|subject| copies.contains_key(subject)) {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "not all delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "A stopped with {delivered_before} of 300 delivered; B's first delivery {first:?} \
         later, all delivered within {:?}",
        stopped.elapsed()
    );
    pair.b.terminate();
    pair.database.drop_now().await;
}
