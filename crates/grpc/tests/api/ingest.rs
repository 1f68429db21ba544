//! IngestEmail: accepted and refused recipients, big bodies, and malformed streams.

use mailfwd_domain::{IngestLimits, MessagePolicy};
use mailfwd_grpc::pb::{self, GetEmailRequest, IngestEmailRequest, ingest_email_request::Part};
use tonic::{Code, Request};

use super::harness::{TestApp, message, status};

#[tokio::test]
async fn accepts_known_recipients_and_refuses_unknown_ones() {
    let app = TestApp::spawn().await;
    app.rule("sales@acme.test", &["alice@gmail.test"]).await;
    let body = message("hello");

    let reply = app
        .ingest(
            "someone@example.org",
            &["sales@acme.test", "nobody@acme.test"],
            &body,
            16,
        )
        .await
        .unwrap();

    assert_eq!(reply.accepted_recipients, ["sales@acme.test"]);
    assert_eq!(reply.refused_recipients.len(), 1);
    let refused = &reply.refused_recipients[0];
    assert_eq!(refused.recipient, "nobody@acme.test");
    assert_eq!(refused.reason(), pb::RefusalReason::UnknownRecipient);
    assert!(
        refused.message.contains("no forwarding rule"),
        "{}",
        refused.message
    );

    // Durable before the reply: the record is there, with only the accepted recipient.
    let email = app
        .client()
        .await
        .get_email(GetEmailRequest {
            email_id: reply.email_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .email
        .unwrap();
    assert_eq!(email.email_id, reply.email_id);
    assert_eq!(email.sender, "someone@example.org");
    assert_eq!(email.recipients, ["sales@acme.test"]);
    assert_eq!(email.size, body.len() as u64);
    assert!(email.peer.unwrap().starts_with("127.0.0.1:"));
    app.stop().await;
}

#[tokio::test]
async fn a_25_mb_email_streams_in_64_kib_chunks() {
    let app = TestApp::spawn().await;
    app.rule("sales@acme.test", &["alice@gmail.test"]).await;
    let mut body = message("big");
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    while body.len() < 25 * 1024 * 1024 {
        body.extend_from_slice(line);
    }

    let reply = app
        .ingest("", &["sales@acme.test"], &body, 64 * 1024)
        .await
        .unwrap();

    let email = app
        .client()
        .await
        .get_email(GetEmailRequest {
            email_id: reply.email_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .email
        .unwrap();
    assert_eq!(email.size, body.len() as u64);
    assert_eq!(email.sender, "", "the null reverse path");
    assert!(
        app.body(&reply.email_id).await == body,
        "the body is stored byte for byte"
    );
    app.stop().await;
}

#[tokio::test]
async fn all_recipients_refused_is_failed_precondition() {
    let app = TestApp::spawn().await;
    let result = app
        .ingest("a@example.org", &["nobody@acme.test"], b"x", 1)
        .await;
    let message = status(result, Code::FailedPrecondition);
    assert!(message.contains("every recipient was refused"), "{message}");
    assert!(message.contains("nobody@acme.test"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn too_large_is_out_of_range() {
    let limits = IngestLimits {
        message: MessagePolicy {
            max_size: 1000,
            ..MessagePolicy::default()
        },
        ..IngestLimits::default()
    };
    let app = TestApp::with(limits, None).await;
    app.rule("sales@acme.test", &["alice@gmail.test"]).await;
    let body = b"xxxxxxxxx\r\n".repeat(500);
    let result = app.ingest("", &["sales@acme.test"], &body, 512).await;
    let message = status(result, Code::OutOfRange);
    assert!(message.contains("1000 octets"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn a_mail_loop_is_invalid_argument() {
    let app = TestApp::spawn().await;
    app.rule("sales@acme.test", &["alice@gmail.test"]).await;
    let mut body = "Received: from a by b; Thu, 01 Jan 1970 00:00:00 +0000\r\n".repeat(60);
    body.push_str("Subject: loop\r\n\r\nround and round\r\n");
    let result = app
        .ingest("", &["sales@acme.test"], body.as_bytes(), 100)
        .await;
    let message = status(result, Code::InvalidArgument);
    assert!(message.contains("mail loop"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn bad_addresses_name_the_field() {
    let app = TestApp::spawn().await;
    app.rule("sales@acme.test", &["alice@gmail.test"]).await;
    let result = app
        .ingest("", &["sales@acme.test", "not an address"], b"x", 1)
        .await;
    let message = status(result, Code::InvalidArgument);
    assert!(message.starts_with("envelope.recipients[1]:"), "{message}");

    let result = app.ingest("nope", &["sales@acme.test"], b"x", 1).await;
    let message = status(result, Code::InvalidArgument);
    assert!(message.starts_with("envelope.sender:"), "{message}");

    let result = app.ingest("", &[], b"x", 1).await;
    let message = status(result, Code::InvalidArgument);
    assert!(message.starts_with("envelope.recipients:"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_without_an_envelope_is_refused() {
    let app = TestApp::spawn().await;
    let chunk = IngestEmailRequest {
        part: Some(Part::Chunk(b"Subject: x\r\n\r\n".to_vec())),
    };
    let mut client = app.client().await;
    let result = client
        .ingest_email(Request::new(tokio_stream::iter(vec![chunk])))
        .await;
    let message = status(result, Code::InvalidArgument);
    assert!(message.starts_with("envelope:"), "{message}");

    let empty = tokio_stream::iter(Vec::<IngestEmailRequest>::new());
    let message = status(
        client.ingest_email(Request::new(empty)).await,
        Code::InvalidArgument,
    );
    assert!(message.contains("ended before the envelope"), "{message}");
    app.stop().await;
}
