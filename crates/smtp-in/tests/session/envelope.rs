//! MAIL FROM and RCPT TO: senders, SIZE, recipients, relaying.

use mailfwd_domain::{IngestLimits, MessagePolicy};

use crate::harness::{Mailfwd, addr, config, queued_id};

const MESSAGE: &[u8] = b"Subject: hi\r\n\r\nhello\r\n.\r\n";

#[tokio::test]
async fn the_null_sender_and_utf8_addresses_are_kept_in_the_envelope() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("", &["sales@acme.test"]).await;
    let first = queued_id(&client.data(MESSAGE).await);
    client
        .cmd("MAIL FROM:<josé@exämple.test> SMTPUTF8", 250)
        .await;
    client.cmd("RCPT TO:<Sales+News@ACME.test>", 250).await;
    let second = queued_id(&client.data(MESSAGE).await);
    client.cmd("QUIT", 221).await;

    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 2);
    let by_id = |id: &str| {
        stored
            .iter()
            .find(|(email, _)| email.id.to_string() == id)
            .expect("stored")
    };
    assert_eq!(by_id(&first).0.email.envelope.sender, None);
    let utf8 = &by_id(&second).0.email.envelope;
    assert_eq!(utf8.sender, Some(addr("josé@exämple.test")));
    assert_eq!(utf8.recipients, [addr("Sales+News@acme.test")]);
}

#[tokio::test]
async fn size_over_the_limit_is_refused_at_mail_time() {
    let mailfwd = Mailfwd::with(IngestLimits {
        message: MessagePolicy {
            max_size: 1000,
            ..MessagePolicy::default()
        },
        ..IngestLimits::default()
    })
    .await;
    let mut client = mailfwd.connect(config()).await;
    let ehlo = client.ehlo().await;
    assert!(ehlo.lines.contains(&"250-SIZE 1000".to_owned()), "{ehlo:?}");
    let refused = client.cmd("MAIL FROM:<a@b.test> SIZE=1001", 552).await;
    assert_eq!(
        refused.line(),
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    client.cmd("MAIL FROM:<a@b.test> SIZE=1000", 250).await;
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn unknown_recipients_are_refused_and_known_ones_kept() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    let unknown = client.cmd("RCPT TO:<nobody@acme.test>", 550).await;
    assert_eq!(
        unknown.line(),
        "550 5.1.1 <nobody@acme.test>: recipient not found"
    );
    let elsewhere = client.cmd("RCPT TO:<someone@gmail.test>", 550).await;
    assert_eq!(
        elsewhere.line(),
        "550 5.1.1 <someone@gmail.test>: recipient not found"
    );
    client.cmd("RCPT TO:<info@acme.test>", 250).await;
    client.cmd("RCPT TO:<SALES@acme.test>", 250).await;
    queued_id(&client.data(MESSAGE).await);
    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].0.email.envelope.recipients,
        [addr("sales@acme.test"), addr("info@acme.test")],
        "the repeated recipient is kept once"
    );
}

#[tokio::test]
async fn too_many_recipients_is_a_temporary_refusal() {
    let mailfwd = Mailfwd::with(IngestLimits {
        max_recipients: 1,
        ..IngestLimits::default()
    })
    .await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    let refused = client.cmd("RCPT TO:<info@acme.test>", 452).await;
    assert_eq!(refused.line(), "452 4.5.3 Too many recipients");
    queued_id(&client.data(MESSAGE).await);
    let stored = mailfwd.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].0.email.envelope.recipients,
        [addr("sales@acme.test")]
    );
}

#[tokio::test]
async fn relaying_is_denied_in_every_disguise() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.envelope("a@b.test", &[]).await;
    for path in [
        "<@relay.test,@acme.test:sales@acme.test>",
        "<@acme.test:victim@elsewhere.test>",
        "<sales%elsewhere.test@acme.test>",
        "<elsewhere.test!sales@acme.test>",
        "<\"sales@elsewhere.test\"@acme.test>",
    ] {
        let reply = client.cmd(&format!("RCPT TO:{path}"), 550).await;
        assert_eq!(reply.line(), "550 5.7.1 relaying denied", "{path}");
    }
    // No recipient was accepted.
    assert!(client.cmd("DATA", 503).await.line().contains("RCPT"));
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}

/// RFC 6531: a UTF-8 address is allowed only in a transaction whose MAIL asked for
/// SMTPUTF8; anything else is `553 5.6.7`, before any rule is looked at.
#[tokio::test]
async fn utf8_addresses_need_smtputf8() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.ehlo().await;
    let refused = client.cmd("MAIL FROM:<josé@b.test>", 553).await;
    assert_eq!(
        refused.line(),
        "553 5.6.7 A UTF-8 address needs SMTPUTF8 on the MAIL command"
    );
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    let refused = client.cmd("RCPT TO:<josé@acme.test>", 553).await;
    assert!(refused.line().starts_with("553 5.6.7"), "{refused:?}");
    client.cmd("RSET", 250).await;
    client.cmd("MAIL FROM:<josé@b.test> SMTPUTF8", 250).await;
    // Now the rules decide: no rule for this one.
    client.cmd("RCPT TO:<josé@acme.test>", 550).await;
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    client.cmd("QUIT", 221).await;
}

/// After plain HELO the client has not learnt of any extension, so MAIL may carry no
/// parameter (RFC 5321 section 4.1.1.1).
#[tokio::test]
async fn after_helo_mail_takes_no_parameters() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.cmd("HELO client.test", 250).await;
    for line in [
        "MAIL FROM:<a@b.test> SIZE=100",
        "MAIL FROM:<a@b.test> BODY=8BITMIME",
        "MAIL FROM:<josé@b.test> SMTPUTF8",
    ] {
        let refused = client.cmd(line, 555).await;
        assert_eq!(
            refused.line(),
            "555 5.5.4 MAIL parameters need EHLO, not HELO",
            "{line}"
        );
    }
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    client.cmd("QUIT", 221).await;
}
