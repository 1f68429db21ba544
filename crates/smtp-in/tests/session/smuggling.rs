//! SMTP smuggling: no sequence but CRLF.CRLF ends DATA, so one message never becomes two.

use crate::harness::{Mailfwd, Reply, addr, config, queued_id};

const SMUGGLED: &str = concat!(
    "MAIL FROM:<ceo@victim.test>\r\n",
    "RCPT TO:<sales@acme.test>\r\n",
    "DATA\r\n",
    "Subject: smuggled\r\n\r\nsmuggled\r\n",
);

/// Sends one message with `vector` between its text and a smuggled transaction, then
/// NOOP: the replies must be one for the message and one for NOOP, nothing between.
/// Returns the reply to the message and the id of the clean message sent after it.
async fn send_vector(mailfwd: &Mailfwd, vector: &[u8]) -> (Reply, String) {
    let mut client = mailfwd.connect(config()).await;
    client
        .envelope("alice@sender.test", &["sales@acme.test"])
        .await;
    client.cmd("DATA", 354).await;
    let raw = [
        &b"Subject: one\r\n\r\nfirst"[..],
        vector,
        SMUGGLED.as_bytes(),
        b"\r\n.\r\n",
        b"NOOP\r\n",
    ]
    .concat();
    client.send(&raw).await;
    let reply = client.reply().await;
    client.expect_reply(250).await;
    // A clean message after it, in the same session, is stored on its own.
    client.cmd("MAIL FROM:<bob@sender.test>", 250).await;
    client.cmd("RCPT TO:<info@acme.test>", 250).await;
    let clean = queued_id(&client.data(b"Subject: clean\r\n\r\nclean\r\n.\r\n").await);
    client.cmd("QUIT", 221).await;
    (reply, clean)
}

#[tokio::test]
async fn bare_line_ending_vectors_refuse_the_message_and_smuggle_nothing() {
    for vector in [
        &b"\n.\n"[..],
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n.\r\r\n",
        b"\r\n.\n",
        b"\n.\0\r\n",
    ] {
        let mailfwd = Mailfwd::new().await;
        let (reply, clean) = send_vector(&mailfwd, vector).await;
        assert_eq!(
            reply.line(),
            "550 5.6.11 bare CR or LF in message; lines must end with CRLF",
            "{vector:?}"
        );
        let stored = mailfwd.stored().await;
        assert_eq!(stored.len(), 1, "{vector:?}: only the clean message");
        let (email, body) = &stored[0];
        assert_eq!(email.id.to_string(), clean);
        assert_eq!(body.as_slice(), b"Subject: clean\r\n\r\nclean\r\n");
        assert_eq!(email.email.envelope.sender, Some(addr("bob@sender.test")));
    }
}

#[tokio::test]
async fn nul_vectors_refuse_the_message_and_smuggle_nothing() {
    for vector in [&b"\r\n.\0\r\n"[..], b"\r\n\0.\r\n", b"\r\n.\0\r\n.\0\r\n"] {
        let mailfwd = Mailfwd::new().await;
        let (reply, clean) = send_vector(&mailfwd, vector).await;
        assert_eq!(
            reply.line(),
            "550 5.6.0 NUL character in message",
            "{vector:?}"
        );
        let stored = mailfwd.stored().await;
        assert_eq!(stored.len(), 1, "{vector:?}: only the clean message");
        assert_eq!(stored[0].0.id.to_string(), clean);
        assert_eq!(
            stored[0].0.email.envelope.sender,
            Some(addr("bob@sender.test"))
        );
    }
}
