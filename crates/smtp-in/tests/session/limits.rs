//! Session limits: timeouts, the error budget, the command line length.

use std::time::Duration;

use mailfwd_smtp_in::SmtpConfig;

use crate::harness::{Mailfwd, config};

#[tokio::test]
async fn an_idle_client_is_timed_out() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd
        .connect(SmtpConfig {
            command_timeout: Duration::from_millis(200),
            ..config()
        })
        .await;
    client.ehlo().await;
    let reply = client.reply().await;
    assert_eq!(
        reply.line(),
        "421 4.4.2 Timeout exceeded, closing connection"
    );
    assert!(client.is_closed().await);
    client.finished().await;
}

#[tokio::test]
async fn a_stalled_body_is_timed_out_and_nothing_is_stored() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd
        .connect(SmtpConfig {
            data_timeout: Duration::from_millis(200),
            ..config()
        })
        .await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    client.cmd("DATA", 354).await;
    client.send("Subject: half\r\n\r\nhalf a mess").await;
    let reply = client.reply().await;
    assert_eq!(
        reply.line(),
        "421 4.4.2 Timeout exceeded, closing connection"
    );
    assert!(client.is_closed().await);
    client.finished().await;
    assert!(mailfwd.stored().await.is_empty());

    let mut client = mailfwd
        .connect(SmtpConfig {
            data_timeout: Duration::from_millis(200),
            ..config()
        })
        .await;
    client.envelope("a@b.test", &["sales@acme.test"]).await;
    client.send("BDAT 100 LAST\r\nonly part").await;
    assert_eq!(client.reply().await.code, 421);
    assert!(client.is_closed().await);
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn too_many_errors_end_the_session() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd
        .connect(SmtpConfig {
            max_errors: 3,
            ..config()
        })
        .await;
    client.cmd("NOPE", 502).await;
    client.ehlo().await;
    client.cmd("RCPT TO:<sales@acme.test>", 503).await;
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    client.cmd("RCPT TO:<nobody@acme.test>", 550).await;
    assert_eq!(
        client.reply().await.line(),
        "421 4.7.0 Too many errors, closing connection"
    );
    assert!(client.is_closed().await);
    client.finished().await;
    assert!(mailfwd.stored().await.is_empty());
}

#[tokio::test]
async fn command_lines_are_limited_even_when_they_trickle_in() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd
        .connect(SmtpConfig {
            max_line_length: 64,
            ..config()
        })
        .await;
    client.ehlo().await;
    // 64 octets with CRLF is the longest line allowed.
    client.cmd(&format!("NOOP {}", "x".repeat(57)), 250).await;
    client.cmd(&format!("NOOP {}", "x".repeat(58)), 500).await;
    // A long line in many pieces, its tail shaped like a command.
    for _ in 0..10 {
        client.send("x".repeat(50)).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    client.send("QUIT\r\n").await;
    assert_eq!(client.reply().await.line(), "500 5.5.6 Line too long");
    client.cmd("NOOP", 250).await;
    client.cmd("QUIT", 221).await;
    assert!(mailfwd.stored().await.is_empty());
}

/// A session that only sends NOOP, RSET, VRFY or HELP moves no mail but holds a
/// connection slot. The first `max_junk_commands` are free; each one after counts as an
/// error, so the error budget ends the session (Postfix's `smtpd_junk_command_limit`).
#[tokio::test]
async fn junk_commands_past_the_limit_use_up_the_error_budget() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd
        .connect(SmtpConfig {
            max_junk_commands: 100,
            max_errors: 10,
            ..config()
        })
        .await;
    client.ehlo().await;
    for n in 0..100 {
        let junk = ["NOOP", "RSET", "VRFY someone", "HELP"][n % 4];
        let reply = client.command(junk).await;
        assert!(reply.code < 400, "{junk}: {reply:?}");
    }
    // Mail still moves within the limit, and does not reset the count.
    client.cmd("MAIL FROM:<a@b.test>", 250).await;
    client.cmd("RCPT TO:<sales@acme.test>", 250).await;
    for _ in 0..9 {
        client.cmd("NOOP", 250).await;
    }
    let reply = client.command("NOOP").await;
    assert_eq!(
        reply.line(),
        "421 4.7.0 Too many errors, closing connection"
    );
    assert!(client.is_closed().await);
    client.finished().await;
}

/// A client that moves mail may RSET after every message: the junk count starts over
/// with each accepted message, so 150 messages with an RSET each go through.
#[tokio::test]
async fn an_accepted_message_starts_the_junk_count_over() {
    let mailfwd = Mailfwd::new().await;
    let mut client = mailfwd
        .connect(SmtpConfig {
            max_junk_commands: 100,
            max_errors: 10,
            ..config()
        })
        .await;
    client.ehlo().await;
    for n in 0..150 {
        client.cmd("RSET", 250).await;
        client.envelope("a@b.test", &["sales@acme.test"]).await;
        let reply = client
            .data(format!("Subject: {n}\r\n\r\nx\r\n.\r\n").as_bytes())
            .await;
        assert_eq!(reply.code, 250, "message {n}: {reply:?}");
    }
    client.cmd("QUIT", 221).await;
    assert_eq!(mailfwd.stored().await.len(), 150);
}
