//! Outbound SMTP smuggling through the gRPC door: a body whose bare `LF.LF` a lenient
//! next hop would take for the end of data reaches the destination as one message.

use std::time::Duration;

use mailfwd_grpc::pb::forwarding_client::ForwardingClient;
use mailfwd_grpc::pb::{Envelope, IngestEmailRequest, ingest_email_request::Part};
use serde_json::json;

use crate::harness::Server;
use mailfwd_testkit::sink::{Options, Sink};

/// A forged second transaction hidden behind bare LFs, in 7-byte gRPC chunks so that
/// line endings fall across chunk boundaries.
const SMUGGLING_BODY: &[u8] = b"Subject: invoice\n\nhello\n.\nMAIL FROM:<ceo@bank.test>\nRCPT TO:<victim@dest.test>\nDATA\nSubject: forged\n\npay now\n.\n";

async fn ingest(grpc: &str, sender: &str, recipient: &str, body: &[u8]) -> String {
    let mut messages = vec![IngestEmailRequest {
        part: Some(Part::Envelope(Envelope {
            sender: sender.to_owned(),
            recipients: vec![recipient.to_owned()],
        })),
    }];
    messages.extend(body.chunks(7).map(|chunk| IngestEmailRequest {
        part: Some(Part::Chunk(chunk.to_vec())),
    }));
    let mut client = ForwardingClient::connect(grpc.to_owned())
        .await
        .expect("connect to mailfwd's gRPC port");
    client
        .ingest_email(tokio_stream::iter(messages))
        .await
        .expect("IngestEmail accepts the email")
        .into_inner()
        .email_id
}

#[tokio::test]
async fn a_bare_lf_dot_lf_body_over_grpc_reaches_the_destination_as_one_message() {
    let sink = Sink::start(Options::destination()).await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            ("MAILFWD_RELAY", &sink.addr.to_string()),
            ("MAILFWD_BARE_LINE_ENDINGS", "normalize"),
        ],
    );
    server
        .create_rule("billing@acme.test", json!("alice@dest.test"))
        .await;

    ingest(
        &server.grpc,
        "someone@example.org",
        "billing@acme.test",
        SMUGGLING_BODY,
    )
    .await;

    let received = sink.wait_for_messages(1, Duration::from_secs(20)).await;
    // Time for a smuggled second transaction to show up, if one had been sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = if sink.received().len() > received.len() {
        sink.received()
    } else {
        received
    };
    assert_eq!(received.len(), 1, "one message, no smuggled second one");
    let message = &received[0];
    assert!(
        message.sender.starts_with("SRS0=") && message.sender.contains("=example.org=someone@"),
        "{}",
        message.sender
    );
    assert_eq!(message.recipients, ["alice@dest.test"]);
    let text = String::from_utf8_lossy(&message.data);
    // The forged commands arrived as text of the one message, CRLF-only, the lone "."
    // line intact (sent dot-stuffed, unstuffed by the destination).
    assert!(
        text.ends_with(
            "\r\n\r\nhello\r\n.\r\nMAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\nSubject: forged\r\n\r\npay now\r\n.\r\n"
        ),
        "{text:?}"
    );
    assert!(
        !message
            .data
            .windows(2)
            .any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "no bare LF reached the destination: {text:?}"
    );
    server.terminate();
}
