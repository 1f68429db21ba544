//! The session fed arbitrary byte streams: pieces of real commands, message data, BDAT
//! chunks and raw bytes, in any order and cut anywhere, then the client hangs up. For
//! every stream: the session never panics, every line it writes is a well-formed reply,
//! and exactly as many messages are stored as it answered `250 … queued as`.
//!
//! A short run is part of the test suite; `just fuzz` runs many more cases
//! (`SMTP_FUZZ_CASES`).

use std::net::SocketAddr;
use std::time::Duration;

use mailfwd_smtp_in::run_session;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Mailfwd, PEER, config};

/// Cases per run: a few dozen in the test suite, as many as asked for in `just fuzz`.
fn cases() -> u32 {
    std::env::var("SMTP_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(48)
}

/// One piece of a stream.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"EHLO client.test\r\n",
        b"HELO client.test\r\n",
        b"MAIL FROM:<a@b.test>\r\n",
        b"MAIL FROM:<> SIZE=100 BODY=8BITMIME\r\n",
        b"MAIL FROM:<j\xc3\xb8s\xc3\xa9@b.test> SMTPUTF8\r\n",
        b"RCPT TO:<sales@acme.test>\r\n",
        b"RCPT TO:<info@acme.test>\r\n",
        b"RCPT TO:<nobody@acme.test>\r\n",
        b"RCPT TO:<x%y.test@acme.test>\r\n",
        b"DATA\r\n",
        b"Subject: fuzz\r\n\r\nbody line\r\n",
        b"..dot-stuffed\r\n",
        b"\r\n.\r\n",
        b".\r\n",
        b"\n.\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"VRFY x\r\n",
        b"STARTTLS\r\n",
        b"BDAT 99999999999999999999022 LAST\r\n",
    ];
    prop_oneof![
        4 => prop::sample::select(fixed).prop_map(<[u8]>::to_vec),
        2 => (0usize..24, any::<bool>()).prop_map(|(size, last)| {
            format!("BDAT {size}{}\r\n", if last { " LAST" } else { "" }).into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..48),
        2 => prop::collection::vec(
            prop::sample::select(vec![b'\r', b'\n', b'.', b'A', b' ', b':', b'<', b'>', b'@', 0]),
            0..24,
        ),
    ]
}

/// What the session wrote for `stream`, and how many messages it stored.
async fn run(stream: Vec<u8>) -> (Vec<u8>, usize) {
    let mailfwd = Mailfwd::new().await;
    let (client, server) = tokio::io::duplex(1 << 20);
    let ingest = mailfwd.ingest.clone();
    let peer: SocketAddr = PEER.parse().unwrap();
    let session = tokio::spawn(async move { run_session(server, peer, &ingest, &config()).await });
    let (mut from_server, mut to_server) = tokio::io::split(client);
    let write = async move {
        // The session may hang up first (too many errors, an unreadable BDAT size).
        let _ = to_server.write_all(&stream).await;
        let _ = to_server.shutdown().await;
    };
    let read = async move {
        let mut written = Vec::new();
        from_server.read_to_end(&mut written).await.unwrap();
        written
    };
    let (_, written) =
        tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(write, read) })
            .await
            .expect("the session ends once the client hangs up");
    session.await.expect("the session never panics");
    (written, mailfwd.stored().await.len())
}

/// Every line is `CODE SP text` or `CODE - text` with a code from 200 to 599; returns
/// how many replies said a message was queued.
fn queued_replies(written: &[u8]) -> Result<usize, String> {
    let text = String::from_utf8(written.to_vec()).map_err(|_| "replies are not UTF-8")?;
    if !text.is_empty() && !text.ends_with("\r\n") {
        return Err(format!("output does not end with CRLF: {text:?}"));
    }
    let mut queued = 0;
    for line in text.split_terminator("\r\n") {
        let code: u16 = line
            .get(..3)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("no reply code: {line:?}"))?;
        let separator = line.as_bytes().get(3).copied();
        if !(200..600).contains(&code)
            || !matches!(separator, None | Some(b' ' | b'-'))
            || line.contains(['\r', '\n'])
            || line.chars().any(char::is_control)
        {
            return Err(format!("malformed reply line: {line:?}"));
        }
        if line.starts_with("250 2.0.0 Ok: queued as ") {
            queued += 1;
        }
    }
    Ok(queued)
}

proptest! {
    // No regression file: this test binary has no lib.rs or main.rs to put one beside.
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_streams_get_well_formed_replies_and_store_only_what_was_acknowledged(
        pieces in prop::collection::vec(piece(), 0..40)
    ) {
        let stream = pieces.concat();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (written, stored) = runtime.block_on(run(stream));
        let queued = queued_replies(&written).map_err(TestCaseError::fail)?;
        prop_assert_eq!(stored, queued, "stored vs acknowledged");
    }
}

/// The oracle itself: a well-formed stream with two messages (DATA and BDAT) is counted
/// as two acknowledged and two stored.
#[tokio::test]
async fn the_oracle_counts_what_a_clean_stream_stores() {
    let stream = b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<sales@acme.test>\r\n\
        DATA\r\nSubject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@b.test>\r\n\
        RCPT TO:<info@acme.test>\r\nBDAT 10 LAST\r\nSubject:\r\n";
    let (written, stored) = run(stream.to_vec()).await;
    assert_eq!(
        queued_replies(&written),
        Ok(2),
        "{}",
        String::from_utf8_lossy(&written)
    );
    assert_eq!(stored, 2);
}
