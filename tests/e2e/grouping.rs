//! Recipients grouped per destination (ADR 0017): a rule of ten destinations at one
//! domain, relayed to a sink, is one transaction with ten RCPTs.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::Server;
use mailfwd_testkit::Client;
use mailfwd_testkit::sink::{Options, Sink};

#[tokio::test]
async fn ten_destinations_at_one_domain_are_one_transaction_and_ten_deliveries() {
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::relaying_to(data.path(), sink.addr);
    let destinations: Vec<String> = (0..10).map(|n| format!("user{n}@dest.test")).collect();
    server
        .create_rule("team@acme.test", json!(destinations))
        .await;

    let original = b"Subject: to the team\r\n\r\nhello all\r\n";
    let mut client = Client::connect(&server.smtp).await;
    let id = client
        .send_mail("someone@example.org", "team@acme.test", original)
        .await;

    let received = sink.wait_for_messages(1, Duration::from_secs(30)).await;
    let mut recipients = received[0].recipients.clone();
    recipients.sort();
    let mut expected = destinations.clone();
    expected.sort();
    assert_eq!(recipients, expected, "one transaction, ten RCPTs");
    let commands = sink.commands();
    let count = |verb: &str| commands.iter().filter(|c| c.starts_with(verb)).count();
    assert_eq!((count("MAIL"), count("RCPT"), count("DATA")), (1, 10, 1));
    let data = &received[0].data;
    assert!(
        data.ends_with(original),
        "the original follows byte for byte"
    );
    let added = String::from_utf8_lossy(&data[..data.len() - original.len()]).into_owned();
    assert!(
        added.starts_with("Received: from client.test ([127.0.0.1])\r\n\tby mx.mailfwd.test (mailfwd) with ESMTP id "),
        "{added}"
    );
    assert!(
        added.contains(&id) && !added.contains("for <"),
        "a copy for ten names none of them: {added}"
    );

    let started = Instant::now();
    let deliveries = loop {
        let deliveries = server.deliveries(&id).await;
        if deliveries.len() == 10 && deliveries.iter().all(|d| d["state"] == "delivered") {
            break deliveries;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not all delivered: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut delivered: Vec<String> = deliveries
        .iter()
        .map(|d| d["destination"].as_str().unwrap_or_default().to_owned())
        .collect();
    delivered.sort();
    assert_eq!(delivered, expected);
    assert!(
        deliveries
            .iter()
            .all(|d| d["last_reply"] == "250 2.0.0 queued by sink"),
        "{deliveries:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "no second copy");
    server.terminate();
}
