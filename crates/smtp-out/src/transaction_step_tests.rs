//! Replies out of step with the commands (issue 11): a `2xx` to DATA, a stale reply on a
//! reused connection, a multi-line reply whose last line decides, replies no command
//! asked for. None may deliver, and the connection is never used again.

use tokio::io::AsyncWriteExt;

use super::tests::{PIPELINING, read_once, read_until, run, transient};
use super::*;
use crate::reply::Capabilities;

#[tokio::test]
async fn a_2xx_reply_to_data_is_a_protocol_error_and_no_body_follows() {
    for caps in [PIPELINING, Capabilities::default()] {
        let (end, read, rest) = run(caps, |mut server| async move {
            for reply in [
                &b"250 2.1.0 Ok\r\n"[..],
                b"250 2.1.5 Ok\r\n",
                b"250 2.0.0 Ok\r\n",
            ] {
                read_once(&mut server).await;
                server.write_all(reply).await.ok();
                if caps.pipelining {
                    // The whole group came in one read; answer it at once.
                    server
                        .write_all(b"250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n")
                        .await
                        .ok();
                    break;
                }
            }
            server
        })
        .await;
        assert_eq!(
            (end.outcome, end.after, end.retryable),
            (
                transient("protocol error: unexpected reply to DATA: 250 2.0.0 Ok"),
                After::Close,
                false
            ),
            "{caps:?}"
        );
        assert!(!read, "the body is never read");
        assert!(rest.is_empty(), "no RSET, no body, no QUIT: {rest:?}");
    }
}

#[tokio::test]
async fn a_stale_reply_shifts_the_replies_and_is_caught_at_data() {
    // The stale 250 answers MAIL, MAIL's answers RCPT, RCPT's answers DATA.
    let (end, read, _) = run(PIPELINING, |mut server| async move {
        read_once(&mut server).await;
        server
            .write_all(b"250 2.0.0 stale\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n")
            .await
            .ok();
        server
    })
    .await;
    assert_eq!(
        (end.outcome, end.after),
        (
            transient("protocol error: unexpected reply to DATA: 250 2.1.5 Ok"),
            After::Close
        )
    );
    assert!(!read);
}

#[tokio::test]
async fn data_end_replies_are_read_from_their_last_line_and_must_end_the_data() {
    for (reply, outcome, after) in [
        (
            "250-2.0.0 queued\r\n451 4.3.0 but not really",
            transient("451 4.3.0 queued but not really"),
            After::Ready,
        ),
        (
            "354 again?",
            transient("protocol error: unexpected reply to the end of the data: 354 again?"),
            After::Close,
        ),
        (
            "250 2.0.0 queued\r\n250 2.0.0 stale",
            DeliveryOutcome::Delivered("250 2.0.0 queued".into()),
            After::Close,
        ),
        (
            "hello? this is not SMTP",
            transient("malformed reply during the end of the data: 'hello? this is not SMTP'"),
            After::Close,
        ),
    ] {
        let (end, _, _) = run(PIPELINING, move |mut server| async move {
            read_once(&mut server).await;
            server
                .write_all(b"250 Ok\r\n250 Ok\r\n354 go\r\n")
                .await
                .ok();
            read_until(&mut server, b"\r\n.\r\n").await;
            server
                .write_all(format!("{reply}\r\n").as_bytes())
                .await
                .ok();
            server
        })
        .await;
        assert_eq!((end.outcome, end.after), (outcome, after), "{reply}");
    }
}

#[tokio::test]
async fn only_the_reply_to_the_last_bdat_can_deliver() {
    let caps = Capabilities {
        chunking: true,
        ..PIPELINING
    };
    let (end, _, _) = run(caps, |mut server| async move {
        read_once(&mut server).await;
        server.write_all(b"250 Ok\r\n250 Ok\r\n").await.ok();
        read_once(&mut server).await;
        server.write_all(b"354 what?\r\n").await.ok();
        server
    })
    .await;
    assert_eq!(
        (end.outcome, end.after),
        (
            transient("protocol error: unexpected reply to the last BDAT chunk: 354 what?"),
            After::Close
        )
    );
}

#[tokio::test]
async fn more_replies_than_commands_stop_the_transaction_before_the_body() {
    let caps = Capabilities {
        chunking: true,
        ..PIPELINING
    };
    let (end, read, rest) = run(caps, |mut server| async move {
        read_once(&mut server).await;
        server
            .write_all(b"250 Ok\r\n250 Ok\r\n250 2.0.0 stale\r\n")
            .await
            .ok();
        server
    })
    .await;
    assert_eq!(
        (end.outcome, end.after),
        (
            transient("protocol error: unexpected reply to RCPT TO: more replies than commands"),
            After::Close
        )
    );
    assert!(!read);
    assert!(rest.is_empty(), "no BDAT: {rest:?}");
}
