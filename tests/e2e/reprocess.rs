//! `mailfwd reprocess` over the gRPC API: a bad rule's failed deliveries are sent again
//! after the rule is fixed, and a second run sends nothing twice.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Server, run};
use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Options, Sink};

/// A bad rule (old@acme.test → a destination that refuses) has failed `count` emails
/// for good, then the rule was fixed: the server, its sink and data directory, and the
/// ids of the failed emails.
async fn failed_by_a_bad_rule(count: usize) -> (Sink, tempfile::TempDir, Server, Vec<String>) {
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("MAILFWD_RELAY", &sink.addr.to_string())]);
    server
        .create_rule("old@acme.test", json!("reject-me@dest.test"))
        .await;
    let mut client = Client::connect(&server.smtp).await;
    let mut ids = Vec::new();
    for n in 0..count {
        let body = format!("Subject: {n}\r\n\r\nx\r\n");
        // From the null sender: the failures then make no delivery status
        // notifications, which would be emails of their own for `--since` to find.
        ids.push(client.send_mail("", "old@acme.test", body.as_bytes()).await);
        assert_eq!(client.command("RSET").await.code, 250);
    }
    let started = Instant::now();
    for id in &ids {
        while !server
            .deliveries(id)
            .await
            .iter()
            .any(|d| d["state"] == "failed")
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the bad rule's delivery of {id} never failed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    server.delete_rule("old@acme.test").await;
    server
        .create_rule("old@acme.test", json!("fixed@dest.test"))
        .await;
    (sink, data, server, ids)
}

#[tokio::test]
async fn reprocess_delivers_what_a_bad_rule_failed_and_is_safe_to_run_twice() {
    let (sink, data, server, _ids) = failed_by_a_bad_rule(3).await;

    let first = run(
        data.path(),
        &["reprocess", "--since", "1h", "--grpc", &server.grpc],
        &[],
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("3 emails reprocessed, 0 failed; destinations: 3 enqueued"),
        "{stdout}"
    );
    let delivered = sink.wait_for_messages(3, Duration::from_secs(30)).await;
    assert!(
        delivered
            .iter()
            .all(|m| m.recipients == ["fixed@dest.test"])
    );

    let second = run(
        data.path(),
        &["reprocess", "--since", "1h", "--grpc", &server.grpc],
        &[],
    );
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{stdout}");
    assert!(
        stdout.contains("3 emails reprocessed, 0 failed; destinations: 3 already_delivered"),
        "{stdout}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sink.received().len(),
        3,
        "the second run delivered nothing new"
    );

    let unknown = run(
        data.path(),
        &["reprocess", "--id", "not-an-id", "--grpc", &server.grpc],
        &[],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("not-an-id"),
        "{unknown:?}"
    );
}

/// Issue 9: `ReprocessEmail` wakes the delivery workers; the email does not wait for
/// their next look at the queue (every 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_email_on_a_fixed_rule_delivers_within_a_second() {
    let (sink, data, server, ids) = failed_by_a_bad_rule(1).await;
    let id = ids[0].clone();
    // The workers have gone idle since the failure: without a wake-up they would find
    // the new job at their next look at the queue, up to 5 s later.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (data_dir, grpc) = (data.path().to_owned(), server.grpc.clone());
    let asked = Instant::now();
    let reprocessed = tokio::task::spawn_blocking(move || {
        let output = run(&data_dir, &["reprocess", "--id", &id, "--grpc", &grpc], &[]);
        (output, Instant::now())
    });
    let delivered = sink.wait_for_messages(1, Duration::from_secs(5)).await;
    let took = asked.elapsed();
    let (output, answered) = reprocessed.await.unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(delivered[0].recipients, ["fixed@dest.test"]);
    eprintln!(
        "ReprocessEmail: delivered {took:?} after `mailfwd reprocess` was run \
         (its RPC answered after {:?})",
        answered - asked
    );
    assert!(
        took < Duration::from_secs(1),
        "delivered {took:?} after ReprocessEmail"
    );
}
