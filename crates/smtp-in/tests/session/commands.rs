//! Greeting, EHLO/HELO, the small commands, sequencing and syntax errors.

use mailfwd_smtp_in::SmtpConfig;

use crate::harness::{Mailfwd, config};

#[tokio::test]
async fn greeting_and_ehlo_advertise_the_extensions() {
    let mailfwd = Mailfwd::new().await;
    let (client, server) = tokio::io::duplex(4096);
    let ingest = mailfwd.ingest.clone();
    let session = tokio::spawn(async move {
        mailfwd_smtp_in::run_session(
            server,
            crate::harness::PEER.parse().unwrap(),
            &ingest,
            &config(),
        )
        .await;
    });
    let mut client = crate::harness::Client::new(Box::new(client), Some(session));
    let greeting = client.expect_reply(220).await;
    assert_eq!(greeting.line(), "220 mx.test ESMTP mailfwd");

    let ehlo = client.ehlo().await;
    assert_eq!(
        ehlo.lines,
        [
            "250-mx.test",
            &format!("250-SIZE {}", 50 * 1024 * 1024),
            "250-PIPELINING",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250 CHUNKING",
        ],
        "no STARTTLS without a certificate"
    );
    let helo = client.cmd("HELO client.test", 250).await;
    assert_eq!(helo.lines, ["250 mx.test"]);
    client.cmd("QUIT", 221).await;
    assert!(client.is_closed().await);
    client.finished().await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn noop_rset_vrfy_help_and_quit() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    assert_eq!(client.cmd("NOOP", 250).await.line(), "250 2.0.0 Ok");
    assert_eq!(
        client.cmd("NOOP anything", 250).await.line(),
        "250 2.0.0 Ok"
    );
    client.ehlo().await;
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    assert_eq!(client.cmd("RSET", 250).await.line(), "250 2.0.0 Ok");
    // RSET ended the transaction: RCPT needs a new MAIL.
    client.cmd("RCPT TO:<sales@acme.test>", 503).await;
    let vrfy = client.cmd("VRFY sales", 252).await;
    assert!(vrfy.line().starts_with("252 2.5.0 "), "{vrfy:?}");
    let help = client.cmd("HELP", 214).await;
    assert!(help.lines.len() >= 2 && help.lines[0].starts_with("214-2.0.0 Commands:"));
    assert!(help.line().starts_with("214 2.0.0 "));
    assert_eq!(client.cmd("QUIT", 221).await.line(), "221 2.0.0 Bye");
    assert!(client.is_closed().await);
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn commands_out_of_order_are_refused() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    let before_ehlo = client.cmd("MAIL FROM:<a@b.test>", 503).await;
    assert!(
        before_ehlo.line().starts_with("503 5.5.1 "),
        "{before_ehlo:?}"
    );
    client.ehlo().await;
    assert!(
        client
            .cmd("RCPT TO:<sales@acme.test>", 503)
            .await
            .line()
            .starts_with("503 5.5.1")
    );
    assert!(
        client
            .cmd("DATA", 503)
            .await
            .line()
            .starts_with("503 5.5.1")
    );
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    assert!(
        client
            .cmd("MAIL FROM:<a@b.test>", 503)
            .await
            .line()
            .contains("Nested MAIL")
    );
    assert!(
        client
            .cmd("DATA", 503)
            .await
            .line()
            .starts_with("503 5.5.1")
    );
    // A refused BDAT still has its chunk read and thrown away, never run as commands.
    client.send("BDAT 17\r\nMAIL FROM:<x@y>\r\n").await;
    assert!(
        client
            .expect_reply(503)
            .await
            .line()
            .starts_with("503 5.5.1")
    );
    client.cmd("NOOP", 250).await;
    client.cmd("RSET", 250).await;
    client.send("BDAT 17 LAST\r\nMAIL FROM:<x@y>\r\n").await;
    assert!(
        client
            .expect_reply(503)
            .await
            .line()
            .contains("Send MAIL first")
    );
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn syntax_errors_and_unknown_commands() {
    let mailfwd = Mailfwd::new().await;
    let generous = SmtpConfig {
        max_errors: 100,
        ..config()
    };
    let mut client = mailfwd.connect(generous).await;
    assert_eq!(
        client.cmd("XYZZY", 502).await.line(),
        "502 5.5.2 Command not recognized"
    );
    assert_eq!(
        client.cmd("EXPN staff", 502).await.line(),
        "502 5.5.1 Command not implemented"
    );
    assert_eq!(
        client.cmd("AUTH PLAIN AGFAAGI=", 502).await.line(),
        "502 5.5.1 Command not implemented"
    );
    assert!(
        client
            .cmd("EHLO", 501)
            .await
            .line()
            .starts_with("501 5.5.2 Syntax: EHLO")
    );
    client.ehlo().await;
    assert!(
        client
            .cmd("MAIL FROM:a@b.test", 501)
            .await
            .line()
            .starts_with("501 5.5.2 Syntax: MAIL")
    );
    assert!(
        client
            .cmd("MAIL FROM:<a@b.test> SIZE=lots", 501)
            .await
            .line()
            .starts_with("501 5.5.4 Invalid SIZE")
    );
    assert!(
        client
            .cmd("MAIL FROM:<a@b.test> BODY=BINARYMIME", 555)
            .await
            .line()
            .starts_with("555 5.5.4")
    );
    assert!(
        client
            .cmd("MAIL FROM:<a@b.test> XFOO=1", 555)
            .await
            .line()
            .starts_with("555 5.5.4 Unsupported parameter XFOO")
    );
    assert!(
        client
            .cmd("MAIL FROM:<a..b@b.test>", 501)
            .await
            .line()
            .starts_with("501 5.1.7")
    );
    assert!(
        client
            .cmd("MAIL FROM:<a@bad_host>", 501)
            .await
            .line()
            .starts_with("501 5.1.7")
    );
    client.cmd("MAIL FROM:<a@b.test> BODY=8BITMIME", 250).await;
    assert!(
        client
            .cmd("RCPT TO:sales@acme.test", 501)
            .await
            .line()
            .starts_with("501 5.5.2 Syntax: RCPT")
    );
    assert!(
        client
            .cmd("RCPT TO:<>", 501)
            .await
            .line()
            .starts_with("501 5.1.3")
    );
    assert!(
        client
            .cmd("RCPT TO:<sales@acme.test> NOTIFY=SUCCESS", 555)
            .await
            .line()
            .starts_with("555 5.5.4 Unsupported parameter NOTIFY")
    );
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn a_too_long_command_line_is_refused_whole() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd.connect(config()).await;
    client.ehlo().await;
    // 5000 octets, the tail a valid command: it must not run.
    let line = format!("NOOP {}MAIL FROM:<a@b.test>\r\n", "x".repeat(5000));
    client.send(&line).await;
    assert_eq!(client.reply().await.line(), "500 5.5.6 Line too long");
    // Exactly one reply for the long line: MAIL was not run, so this MAIL is the first.
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn garbage_input_is_answered_never_panicked_on() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd
        .connect(SmtpConfig {
            max_errors: usize::MAX,
            ..config()
        })
        .await;
    client.ehlo().await;
    // A fixed pseudo-random stream of command-like lines with arbitrary bytes in them.
    let words: [&[u8]; 8] = [
        b"MAIL FROM:<",
        b"RCPT TO:<",
        b"EHLO ",
        b"@",
        b">",
        b"\"",
        b"\xff\x00",
        b" SIZE=",
    ];
    let mut seed: u32 = 0x2545_f491;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for _ in 0..300 {
        let mut line = Vec::new();
        for _ in 0..(next() % 6) {
            line.extend_from_slice(words[(next() % 8) as usize]);
            line.push((next() % 94 + 33) as u8);
        }
        line.extend_from_slice(b"\r\n");
        client.send(&line).await;
        let reply = client.reply().await;
        assert!((200..600).contains(&reply.code), "{line:?} got {reply:?}");
        if reply.code == 250 && line.starts_with(b"MAIL") {
            client.cmd("RSET", 250).await;
        }
    }
    client.cmd("QUIT", 221).await;
    client.finished().await;
    assert!(mailfwd.stored().await.is_empty());
}
