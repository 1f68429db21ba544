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

/// smtp-proto reads `BDAT 99999999999999999999022` as 22 (its number parsing saturates
/// and starts again): the rest of the chunk would run as a forged transaction. A chunk
/// size that cannot be read exactly is a 501, and the connection closes, since the
/// chunk that follows cannot be told from commands.
#[tokio::test]
async fn a_bdat_size_that_does_not_fit_closes_the_session_and_smuggles_nothing() {
    for size in [
        "99999999999999999999022",
        "18446744073709551616",
        "lots",
        "-5",
    ] {
        let mailfwd = Mailfwd::new().await;
        let mut client = mailfwd.connect(config()).await;
        client
            .envelope("alice@sender.test", &["sales@acme.test"])
            .await;
        let chunk = format!("Subject: x\r\n\r\nhello\r\n{SMUGGLED}.\r\n");
        client
            .send(format!("BDAT {size} LAST\r\n{chunk}").as_bytes())
            .await;
        let reply = client.reply().await;
        assert_eq!(
            reply.line(),
            "501 5.5.4 Syntax: BDAT chunk size must be a decimal number of octets below 2^64; closing connection",
            "BDAT {size}"
        );
        assert!(client.is_closed().await, "BDAT {size}: the session ends");
        assert!(
            mailfwd.stored().await.is_empty(),
            "BDAT {size}: nothing stored"
        );
    }
}

/// `SIZE=1000000000000000000005` read as 5 would pass the size check.
#[tokio::test]
async fn a_size_that_does_not_fit_is_a_syntax_error_not_another_number() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.ehlo().await;
    for line in [
        "MAIL FROM:<a@b.test> SIZE=1000000000000000000005",
        "MAIL FROM:<a@b.test> SIZE=18446744073709551616",
    ] {
        let reply = client.cmd(line, 501).await;
        assert_eq!(reply.line(), "501 5.5.4 Invalid SIZE parameter", "{line}");
    }
    let reply = client
        .cmd("MAIL FROM:<a@b.test> HOLDFOR=99999999999999999999", 501)
        .await;
    assert_eq!(reply.line(), "501 5.5.4 Invalid HOLDFOR parameter");
    // The session goes on: a number that fits is read as it is.
    client.cmd("MAIL FROM:<a@b.test> SIZE=1000", 250).await;
    client.cmd("QUIT", 221).await;
}
