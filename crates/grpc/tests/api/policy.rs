//! The domain's recipient and message policy as gRPC clients see it: the same cases,
//! and the same verdicts, as `crates/smtp-in/tests/session/policy.rs` over SMTP.

use mailfwd_domain::{BareLineEndings, IngestLimits, MessagePolicy};
use mailfwd_grpc::pb::{self, GetEmailRequest};
use tonic::Code;

use super::harness::{TestApp, message, status};

/// A server with the rule `sales@acme.test` → `alice@gmail.test`.
async fn app_with(limits: IngestLimits) -> TestApp {
    let app = TestApp::with(limits, None).await;
    app.rule("sales@acme.test", &["alice@gmail.test"]).await;
    app
}

/// Sends `body` to `sales@acme.test`; it must be refused with `INVALID_ARGUMENT`
/// and nothing may be stored. Returns the message.
async fn invalid(body: &[u8]) -> String {
    let app = app_with(IngestLimits::default()).await;
    let result = app.ingest("a@b.test", &["sales@acme.test"], body, 7).await;
    let message = status(result, Code::InvalidArgument);
    assert!(
        app.emails
            .list(&Default::default())
            .await
            .unwrap()
            .emails
            .is_empty()
    );
    app.stop().await;
    message
}

#[tokio::test]
async fn percent_hack_and_bang_path_are_relaying_denied() {
    let app = app_with(IngestLimits::default()).await;
    let relays = ["sales%victim.test@acme.test", "victim.test!sales@acme.test"];
    let reply = app
        .ingest(
            "a@b.test",
            &["sales@acme.test", relays[0], relays[1]],
            &message("hi"),
            64,
        )
        .await
        .unwrap();
    assert_eq!(reply.accepted_recipients, ["sales@acme.test"]);
    let refused: Vec<_> = reply
        .refused_recipients
        .iter()
        .map(|r| (r.recipient.as_str(), r.reason()))
        .collect();
    assert_eq!(
        refused,
        relays.map(|r| (r, pb::RefusalReason::RelayingDenied))
    );
    assert!(
        reply.refused_recipients[0]
            .message
            .contains("relaying denied"),
        "{:?}",
        reply.refused_recipients[0]
    );

    // Only relays: nothing to store.
    let result = app.ingest("a@b.test", &relays, &message("hi"), 64).await;
    let message = status(result, Code::FailedPrecondition);
    assert!(message.contains("relaying denied"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn duplicate_recipients_are_merged() {
    let app = app_with(IngestLimits::default()).await;
    let reply = app
        .ingest(
            "a@b.test",
            &["sales@acme.test", "SALES@acme.test", "sales@ACME.test"],
            &message("hi"),
            64,
        )
        .await
        .unwrap();
    assert_eq!(reply.accepted_recipients, ["sales@acme.test"]);
    assert!(reply.refused_recipients.is_empty());
    let email = app
        .client()
        .await
        .get_email(GetEmailRequest {
            email_id: reply.email_id,
        })
        .await
        .unwrap()
        .into_inner()
        .email
        .unwrap();
    assert_eq!(email.recipients, ["sales@acme.test"]);
    app.stop().await;
}

#[tokio::test]
async fn an_envelope_only_stream_is_an_empty_message() {
    assert_eq!(invalid(b"").await, "the message is empty");
}

#[tokio::test]
async fn bare_lf_and_bare_cr_bodies_are_refused_naming_the_byte() {
    assert_eq!(
        invalid(b"Subject: x\r\n\r\none\ntwo\r\n").await,
        "the message contains a bare LF at byte 17; lines must end with CRLF"
    );
    assert_eq!(
        invalid(b"Subject: x\r\n\r\none\rtwo\r\n").await,
        "the message contains a bare CR at byte 17; lines must end with CRLF"
    );
    // The smuggling payload of the issue: refused, not stored.
    let smuggled = invalid(b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<ceo@bank.test>\n").await;
    assert!(smuggled.contains("bare LF at byte 19"), "{smuggled}");
}

#[tokio::test]
async fn a_nul_byte_is_refused() {
    assert_eq!(
        invalid(b"Subject: x\r\n\r\none\0two\r\n").await,
        "the message contains a NUL byte at byte 17"
    );
}

#[tokio::test]
async fn fifty_one_obsolete_received_headers_are_a_mail_loop() {
    let body = [
        b"Received : from a by b\r\n".repeat(51),
        b"\r\nbody\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(
        invalid(&body).await,
        "mail loop: the message has more than 50 Received headers"
    );
}

#[tokio::test]
async fn a_200_kib_header_is_refused() {
    // Folded into lines of a legal length: one field, larger than the whole header may be.
    let body = [
        b"X-Big: a\r\n".to_vec(),
        b" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(3000),
        b"\r\nbody\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(
        invalid(&body).await,
        "the header section exceeds the limit of 102400 octets"
    );
}

#[tokio::test]
async fn normalize_stores_a_bare_lf_body_with_crlf() {
    let app = app_with(IngestLimits {
        message: MessagePolicy {
            bare_line_endings: BareLineEndings::Normalize,
            ..MessagePolicy::default()
        },
        ..IngestLimits::default()
    })
    .await;
    let reply = app
        .ingest(
            "a@b.test",
            &["sales@acme.test"],
            b"Subject: x\n\none\ntwo\r\n",
            3,
        )
        .await
        .unwrap();
    assert_eq!(
        app.body(&reply.email_id).await,
        b"Subject: x\r\n\r\none\r\ntwo\r\n"
    );
    // Bare CR is refused even so.
    let result = app
        .ingest(
            "a@b.test",
            &["sales@acme.test"],
            b"Subject: x\r\n\r\na\rb\r\n",
            3,
        )
        .await;
    let message = status(result, Code::InvalidArgument);
    assert!(message.contains("bare CR at byte 15"), "{message}");
    app.stop().await;
}
