//! 8BITMIME and SMTPUTF8 end to end: what a client declared at MAIL FROM is kept with
//! the email and passed on; a next hop without SMTPUTF8 does not get a message that
//! needs it.

use std::time::{Duration, Instant};

use mailfwd_testkit::Client;
use mailfwd_testkit::client::{dot_stuffed, queued_id};
use mailfwd_testkit::sink::{Options, Sink};

use crate::harness::Server;

/// Sends an SMTPUTF8 message with UTF-8 in its Subject to sales@acme.test, declaring
/// `BODY=8BITMIME SMTPUTF8`; the id it was accepted under.
async fn send_utf8(server: &Server) -> String {
    let mut client = Client::connect(&server.smtp).await;
    client.ehlo().await;
    client
        .cmd("MAIL FROM:<sender@example.org> BODY=8BITMIME SMTPUTF8", 250)
        .await;
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    let message = "Subject: caf\u{e9} na\u{ef}ve\r\n\r\nr\u{e9}sum\u{e9}\r\n";
    let done = client.data(&dot_stuffed(message.as_bytes())).await;
    assert_eq!(done.code, 250, "{done:?}");
    queued_id(&done)
}

async fn server_relaying_to(sink: &Sink, data: &std::path::Path) -> Server {
    let server = Server::relaying_to(data, sink.addr);
    server
        .create_rule("sales@acme.test", serde_json::json!("alice@dest.test"))
        .await;
    server
}

#[tokio::test]
async fn body_8bitmime_and_smtputf8_reach_the_next_hop() {
    let sink = Sink::start(Options {
        smtputf8: true,
        ..Options::destination()
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let server = server_relaying_to(&sink, data.path()).await;
    send_utf8(&server).await;
    let started = Instant::now();
    while sink.messages().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = &sink.messages()[0];
    // The sender rewritten by SRS; the extensions passed on.
    assert!(
        message.mail_from.starts_with("MAIL FROM:<SRS0=")
            && message
                .mail_from
                .ends_with("=example.org=sender@mx.mailfwd.test> BODY=8BITMIME SMTPUTF8"),
        "{}",
        message.mail_from
    );
    let body = String::from_utf8(message.body.clone()).unwrap();
    assert!(body.contains("Subject: caf\u{e9} na\u{ef}ve\r\n"), "{body}");
    server.terminate();
}

#[tokio::test]
async fn a_next_hop_without_smtputf8_gets_nothing_and_the_delivery_fails_5_6_7() {
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = server_relaying_to(&sink, data.path()).await;
    let id = send_utf8(&server).await;
    let started = Instant::now();
    let delivery = loop {
        let deliveries = server.deliveries(&id).await;
        if let Some(failed) = deliveries.iter().find(|d| d["state"] == "failed") {
            break failed.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never failed: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reply = delivery["last_reply"].as_str().unwrap_or_default();
    assert!(
        reply.starts_with("5.6.7 ") && reply.contains("SMTPUTF8"),
        "{delivery}"
    );
    // The next hop got nothing but the notification to the sender (from `<>`).
    let received = sink.wait_for_messages(1, Duration::from_secs(10)).await;
    assert!(
        received
            .iter()
            .all(|m| m.sender.is_empty() && m.recipients == ["sender@example.org"]),
        "{received:?}"
    );
    server.terminate();
}
