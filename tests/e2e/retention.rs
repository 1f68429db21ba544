//! `MAILFWD_RETENTION`: old emails whose every delivery is final go (record, deliveries,
//! body); an old email with a delivery still pending stays.

use std::path::Path;
use std::time::{Duration, Instant};

use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Mode, Options, Sink};
use serde_json::json;

use crate::harness::Server;

/// Whether a file named `<id>.eml` is anywhere under `dir`.
fn body_file_exists(dir: &Path, id: &str) -> bool {
    let name = format!("{id}.eml");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let path = entry.path();
            if path.is_dir() {
                body_file_exists(&path, id)
            } else {
                path.file_name().is_some_and(|file| file == name.as_str())
            }
        })
}

async fn record_status(server: &Server, id: &str) -> u16 {
    reqwest::get(format!("{}/v1/emails/{id}", server.http))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_finished_emails_are_deleted_and_one_with_a_pending_delivery_stays() {
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let relay = sink.addr.to_string();
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_RELAY", relay.as_str()),
            ("MAILFWD_RETENTION", "3s"),
            // Bodies in files, to see each one go (one kept in its record goes with
            // the record's row).
            ("MAILFWD_INLINE_BODY_LIMIT", "0"),
        ],
    );
    server
        .create_rule("sales@acme.test", json!("alice@dest.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    let delivered = client
        .send_mail(
            "someone@example.org",
            "sales@acme.test",
            b"Subject: done\r\n\r\nx\r\n",
        )
        .await;
    sink.wait_for_messages(1, Duration::from_secs(10)).await;
    sink.set_mode(Mode::TempFail);
    assert_eq!(client.command("RSET").await.code, 250);
    let pending = client
        .send_mail(
            "someone@example.org",
            "sales@acme.test",
            b"Subject: later\r\n\r\nx\r\n",
        )
        .await;
    while !server.deliveries(&pending).await.iter().any(|d| {
        d["last_reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("451"))
    }) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(body_file_exists(data.path(), &delivered));

    // Three seconds old, then a pass (every second with this retention).
    let started = Instant::now();
    while record_status(&server, &delivered).await != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the delivered email is still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !body_file_exists(data.path(), &delivered),
        "its body went too"
    );
    assert_eq!(record_status(&server, &pending).await, 200);
    assert!(body_file_exists(data.path(), &pending));
    let deliveries = server.deliveries(&pending).await;
    assert_eq!(deliveries[0]["state"], "pending", "{deliveries:?}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("mailfwd_retention_deleted_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailfwd_retention_kept_total{reason=\"pending\"}"),
        "{metrics}"
    );
    server.terminate();
}
