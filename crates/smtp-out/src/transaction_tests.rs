//! Transactions against a scripted server over an in-memory pipe: what goes on the wire
//! and when, and how each sequence of replies ends the transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mailfwd_domain::delivery::DeliveryOutcome;
use mailfwd_domain::email::BodyReader;
use mailfwd_domain::{EmailAddress, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::*;
use crate::client::Client;
use crate::connect::Peer;
use crate::reply::Capabilities;

pub(super) const BODY: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";
const GROUP: &[u8] = b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n";
const SECOND: Duration = Duration::from_secs(1);

/// A body that notes whether it was read.
struct Body {
    chunk: Option<Bytes>,
    read: Arc<AtomicBool>,
}

#[async_trait]
impl BodyReader for Body {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        self.read.store(true, Ordering::SeqCst);
        Ok(self.chunk.take())
    }
}

/// The test message from `a@sender.test` to `recipients`, and whether its body was read.
pub(super) fn message_to(recipients: &[&str]) -> (Outgoing, Arc<AtomicBool>) {
    let read = Arc::new(AtomicBool::new(false));
    let body = Body {
        chunk: Some(Bytes::from_static(BODY)),
        read: Arc::clone(&read),
    };
    let address = |text| EmailAddress::parse(text).expect("an address");
    let message = Outgoing {
        sender: Some(address("a@sender.test")),
        recipients: recipients.iter().map(|text| address(text)).collect(),
        body: Box::new(body),
        size: BODY.len() as u64,
        encoding: mailfwd_domain::Encoding::default(),
    };
    (message, read)
}

fn session(caps: Capabilities) -> (Session<DuplexStream>, DuplexStream) {
    let (client, server) = duplex(1 << 16);
    let peer = Peer {
        host: "mx.dest.test".to_owned(),
        addr: ([192, 0, 2, 1], 25).into(),
    };
    let session = Session {
        client: Client::new(client),
        caps,
        peer,
        tls: false,
    };
    (session, server)
}

pub(super) const PIPELINING: Capabilities = Capabilities {
    starttls: false,
    pipelining: true,
    chunking: false,
    eight_bit_mime: false,
    smtputf8: false,
    size: None,
};

/// One read by the server, as the bytes it got; empty when nothing came within a
/// second (the client waits for a reply) or the client closed.
pub(super) async fn read_once(server: &mut DuplexStream) -> Vec<u8> {
    let mut buf = vec![0; 4096];
    let read = tokio::time::timeout(SECOND, server.read(&mut buf)).await;
    buf.truncate(read.ok().and_then(Result::ok).unwrap_or(0));
    buf
}

/// Reads until what arrived ends with `end`, or nothing more comes.
pub(super) async fn read_until(server: &mut DuplexStream, end: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while !data.ends_with(end) {
        let more = read_once(server).await;
        if more.is_empty() {
            break;
        }
        data.extend_from_slice(&more);
    }
    data
}

/// Runs the transaction against `script`, and returns how it ended, whether the body
/// was read, and everything the server received after the script ran.
pub(super) async fn run<F, Fut>(caps: Capabilities, script: F) -> (TransactionEnd, bool, Vec<u8>)
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = DuplexStream> + Send + 'static,
{
    run_to(&["b@dest.test"], caps, script).await
}

/// [`run`] for a message to `recipients`.
pub(super) async fn run_to<F, Fut>(
    recipients: &[&str],
    caps: Capabilities,
    script: F,
) -> (TransactionEnd, bool, Vec<u8>)
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = DuplexStream> + Send + 'static,
{
    let (mut session, server) = session(caps);
    let server = tokio::spawn(script(server));
    let (mut message, read) = message_to(recipients);
    let end = transaction(&mut session, &mut message, &SmtpTimeouts::default()).await;
    drop(session);
    let mut rest = Vec::new();
    if let Ok(mut server) = server.await {
        server.read_to_end(&mut rest).await.ok();
    }
    (end, read.load(Ordering::SeqCst), rest)
}

pub(super) fn permanent(text: &str) -> DeliveryOutcome {
    DeliveryOutcome::Permanent(text.to_owned())
}

#[tokio::test]
async fn pipelining_sends_mail_rcpt_and_data_in_one_write_before_any_reply() {
    let (end, read, rest) = run(PIPELINING, |mut server| async move {
        // Nothing is answered until the whole group has arrived, in one read.
        assert_eq!(read_once(&mut server).await, GROUP);
        server
            .write_all(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n")
            .await
            .ok();
        let data = read_until(&mut server, b"\r\n.\r\n").await;
        assert_eq!(data, [BODY, b".\r\n"].concat());
        server.write_all(b"250 2.0.0 queued\r\n").await.ok();
        server
    })
    .await;
    let delivered = DeliveryOutcome::Delivered("250 2.0.0 queued".into());
    assert_eq!(
        (end.outcome, end.after, end.retryable),
        (delivered, After::Ready, false)
    );
    assert!(read);
    assert!(
        rest.is_empty(),
        "no RSET after a completed transaction: {rest:?}"
    );
}

#[tokio::test]
async fn a_refused_rcpt_ends_it_when_the_pipelined_data_is_refused_too() {
    let (end, read, rest) = run(PIPELINING, |mut server| async move {
        assert_eq!(read_once(&mut server).await, GROUP);
        let replies =
            b"250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n";
        server.write_all(replies).await.ok();
        server
    })
    .await;
    let refused = permanent("550 5.1.1 no such user");
    assert_eq!(
        (end.outcome, end.after, end.retryable),
        (refused, After::Reset, false)
    );
    assert!(!read, "the body is never read");
    assert!(rest.is_empty(), "nothing more on the wire: {rest:?}");
}

#[tokio::test]
async fn a_354_after_a_refused_rcpt_gets_empty_data() {
    let (end, read, rest) = run(PIPELINING, |mut server| async move {
        assert_eq!(read_once(&mut server).await, GROUP);
        let replies = b"250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n";
        server.write_all(replies).await.ok();
        assert_eq!(read_once(&mut server).await, b".\r\n");
        server
            .write_all(b"554 5.5.1 no valid recipients\r\n")
            .await
            .ok();
        server
    })
    .await;
    let refused = permanent("550 5.1.1 no such user");
    assert_eq!(
        (end.outcome, end.after, end.retryable),
        (refused, After::Reset, false)
    );
    assert!(!read, "the body is never read");
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn a_refused_mail_decides_the_outcome_over_the_replies_that_follow() {
    let (end, read, _) = run(PIPELINING, |mut server| async move {
        read_once(&mut server).await;
        let replies =
            b"550 5.7.1 sender rejected\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n";
        server.write_all(replies).await.ok();
        server
    })
    .await;
    let refused = permanent("550 5.7.1 sender rejected");
    assert_eq!(
        (end.outcome, end.after, end.retryable),
        (refused, After::Reset, false)
    );
    assert!(!read);
}

#[tokio::test]
async fn with_chunking_mail_and_rcpt_are_pipelined_then_bdat_follows() {
    let caps = Capabilities {
        chunking: true,
        ..PIPELINING
    };
    let (end, _, _) = run(caps, |mut server| async move {
        assert_eq!(
            read_once(&mut server).await,
            b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@dest.test>\r\n"
        );
        server.write_all(b"250 Ok\r\n250 Ok\r\n").await.ok();
        let header = format!("BDAT {} LAST\r\n", BODY.len());
        assert_eq!(
            read_once(&mut server).await,
            [header.as_bytes(), BODY].concat()
        );
        server.write_all(b"250 2.0.0 done\r\n").await.ok();
        server
    })
    .await;
    let delivered = DeliveryOutcome::Delivered("250 2.0.0 done".into());
    assert_eq!((end.outcome, end.after), (delivered, After::Ready));
}

#[tokio::test]
async fn without_pipelining_each_command_waits_for_its_reply() {
    let (end, _, _) = run(Capabilities::default(), |mut server| async move {
        for (command, reply) in [
            (&b"MAIL FROM:<a@sender.test>\r\n"[..], &b"250 Ok\r\n"[..]),
            (b"RCPT TO:<b@dest.test>\r\n", b"250 Ok\r\n"),
            (b"DATA\r\n", b"354 go ahead\r\n"),
            (
                b"Subject: hi\r\n\r\nhello\r\n.\r\n",
                b"250 2.0.0 queued\r\n",
            ),
        ] {
            assert_eq!(read_until(&mut server, b"\r\n").await, command);
            server.write_all(reply).await.ok();
        }
        server
    })
    .await;
    assert!(matches!(end.outcome, DeliveryOutcome::Delivered(_)));
    assert_eq!(end.after, After::Ready);
}

#[tokio::test]
async fn a_refused_rcpt_without_pipelining_sends_no_data() {
    let (end, _, rest) = run(Capabilities::default(), |mut server| async move {
        read_once(&mut server).await;
        server.write_all(b"250 Ok\r\n").await.ok();
        read_once(&mut server).await;
        server.write_all(b"450 4.2.1 mailbox busy\r\n").await.ok();
        server
    })
    .await;
    let busy = DeliveryOutcome::Transient("450 4.2.1 mailbox busy".into());
    assert_eq!((end.outcome, end.after), (busy, After::Reset));
    assert!(rest.is_empty(), "no DATA: {rest:?}");
}

#[tokio::test]
async fn only_a_session_lost_before_mail_was_accepted_may_be_retried() {
    let closed = |replies: &'static [u8]| {
        move |mut server: DuplexStream| async move {
            read_once(&mut server).await;
            server.write_all(replies).await.ok();
            server.shutdown().await.ok();
            server
        }
    };
    let (end, _, _) = run(PIPELINING, closed(b"")).await;
    assert!(matches!(end.outcome, DeliveryOutcome::Transient(ref t) if t.contains("closed")));
    assert_eq!((end.after, end.retryable), (After::Close, true));

    let (end, _, _) = run(PIPELINING, closed(b"421 4.4.2 idle timeout\r\n")).await;
    let closing = DeliveryOutcome::Transient("421 4.4.2 idle timeout".into());
    assert_eq!(
        (end.outcome, end.after, end.retryable),
        (closing, After::Close, true)
    );

    let (end, read, _) = run(PIPELINING, closed(b"250 2.1.0 Ok\r\n")).await;
    assert!(matches!(end.outcome, DeliveryOutcome::Transient(_)));
    assert_eq!(
        (end.after, end.retryable, read),
        (After::Close, false, false)
    );

    let (end, _, _) = run(PIPELINING, closed(b"250 Ok\r\n421 4.3.2 shutting down\r\n")).await;
    let closing = DeliveryOutcome::Transient("421 4.3.2 shutting down".into());
    assert_eq!(
        (end.outcome, end.after, end.retryable),
        (closing, After::Close, false)
    );
}

#[tokio::test]
async fn a_final_reply_of_any_class_ends_the_transaction_cleanly_but_421() {
    let transient = |text: &str| DeliveryOutcome::Transient(text.to_owned());
    for (reply, outcome, after) in [
        ("452 4.3.1 full", transient("452 4.3.1 full"), After::Ready),
        ("554 5.7.1 spam", permanent("554 5.7.1 spam"), After::Ready),
        ("421 4.3.2 bye", transient("421 4.3.2 bye"), After::Close),
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

pub(super) fn transient(text: &str) -> DeliveryOutcome {
    DeliveryOutcome::Transient(text.to_owned())
}
