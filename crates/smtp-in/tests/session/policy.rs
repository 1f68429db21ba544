//! The domain's recipient and message policy as SMTP clients see it. The gRPC tests in
//! `crates/grpc/tests/api/policy.rs` check the same cases over `IngestEmail`.

use mailfwd_domain::{BareLineEndings, IngestLimits, MessagePolicy};

use crate::harness::{Mailfwd, addr, config, queued_id};

/// Sends one message to `sales@acme.test` over DATA; returns the reply line.
async fn send(mailfwd: &Mailfwd, raw: &[u8]) -> String {
    let mut client = mailfwd.connect(config()).await;
    client
        .envelope("alice@sender.test", &["sales@acme.test"])
        .await;
    let reply = client.data(raw).await;
    client.cmd("QUIT", 221).await;
    reply.line().to_owned()
}

/// Sends a message that must be refused with `expected`; nothing is stored.
async fn refused(raw: &[u8], expected: &str) {
    let mailfwd = Mailfwd::new().await;
    assert_eq!(send(&mailfwd, raw).await, expected);
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn percent_hack_and_bang_path_are_relaying_denied() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &[]).await;
    for path in [
        "<sales%victim.test@acme.test>",
        "<victim.test!sales@acme.test>",
    ] {
        let reply = client.cmd(&format!("RCPT TO:{path}"), 550).await;
        assert_eq!(reply.line(), "550 5.7.1 relaying denied", "{path}");
    }
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn duplicate_recipients_are_merged() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client
        .envelope(
            "a@b.test",
            &["sales@acme.test", "SALES@acme.test", "sales@ACME.test"],
        )
        .await;
    queued_id(&client.data(b"Subject: x\r\n\r\nhi\r\n.\r\n").await);
    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].0.email.envelope.recipients,
        [addr("sales@acme.test")]
    );
}

#[tokio::test]
async fn an_empty_body_is_refused() {
    refused(b".\r\n", "550 5.6.0 Message is empty").await;
}

#[tokio::test]
async fn bare_lf_and_bare_cr_bodies_are_refused() {
    let bare = "550 5.6.11 bare CR or LF in message; lines must end with CRLF";
    refused(b"Subject: x\r\n\r\none\ntwo\r\n.\r\n", bare).await;
    refused(b"Subject: x\r\n\r\none\rtwo\r\n.\r\n", bare).await;
}

#[tokio::test]
async fn a_nul_byte_is_refused() {
    refused(
        b"Subject: x\r\n\r\none\0two\r\n.\r\n",
        "550 5.6.0 NUL character in message",
    )
    .await;
}

#[tokio::test]
async fn fifty_one_obsolete_received_headers_are_a_mail_loop() {
    let looped = [
        b"Received : from a by b\r\n".repeat(51),
        b"\r\nbody\r\n.\r\n".to_vec(),
    ]
    .concat();
    refused(&looped, "554 5.4.6 Too many hops (mail loop)").await;
}

#[tokio::test]
async fn a_200_kib_header_is_refused() {
    // Folded into lines of a legal length: one field, larger than the whole header may be.
    let raw = [
        b"X-Big: a\r\n".to_vec(),
        b" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(3000),
        b"\r\nbody\r\n.\r\n".to_vec(),
    ]
    .concat();
    refused(&raw, "552 5.3.4 Message header exceeds 102400 octets").await;
}

#[tokio::test]
async fn a_line_longer_than_998_octets_is_refused_at_data() {
    let raw = [
        b"Subject: long\r\n\r\nfine\r\n".to_vec(),
        b"x".repeat(999),
        b"\r\n.\r\n".to_vec(),
    ]
    .concat();
    refused(
        &raw,
        "550 5.6.0 Line 4 of the message is longer than 998 octets",
    )
    .await;
}

#[tokio::test]
async fn normalize_stores_a_bare_lf_body_with_crlf() {
    let mailfwd = Mailfwd::with(IngestLimits {
        message: MessagePolicy {
            bare_line_endings: BareLineEndings::Normalize,
            ..MessagePolicy::default()
        },
        ..IngestLimits::default()
    })
    .await;
    let reply = send(&mailfwd, b"Subject: x\n\none\ntwo\r\n.\r\n").await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, b"Subject: x\r\n\r\none\r\ntwo\r\n");
    // Bare CR is refused even so.
    let reply = send(&mailfwd, b"Subject: x\r\n\r\none\rtwo\r\n.\r\n").await;
    assert_eq!(
        reply,
        "550 5.6.11 bare CR or LF in message; lines must end with CRLF"
    );
    assert_eq!(mailfwd.stored().await.len(), 1);
}
