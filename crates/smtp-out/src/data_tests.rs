use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mailfwd_domain::StoreError;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

use super::*;

/// A stored body with its line endings made CRLF, written the obvious way: a CR
/// followed by an LF is one line ending, any other CR or LF is one too.
pub(super) fn crlf_only(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut index = 0;
    while index < body.len() {
        match body[index] {
            b'\r' if body.get(index + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                index += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            byte => out.push(byte),
        }
        index += 1;
    }
    out
}

/// What goes out for a whole stored body, written the obvious way, line by line: the
/// body made CRLF-only, ended with a CRLF unless empty, and, for DATA, each line that
/// starts with a dot stuffed and the data ended with a lone dot.
fn reference(body: &[u8], data: bool) -> Vec<u8> {
    let mut message = crlf_only(body);
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        message.extend_from_slice(b"\r\n");
    }
    if !data {
        return message;
    }
    let mut out = Vec::new();
    for line in message.split_inclusive(|&byte| byte == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn write_in_chunks(mut wire: WireBody, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        wire.push(chunk, &mut out);
    }
    wire.finish(&mut out);
    out
}

fn stuff_in_chunks(chunks: &[&[u8]]) -> Vec<u8> {
    write_in_chunks(WireBody::for_data(), chunks)
}

const SAMPLES: &[&[u8]] = &[
    b"",
    b".",
    b"..\r\n",
    b".\r\n",
    b"Subject: x\r\n\r\n.hidden\r\n..two\r\nend\r\n",
    b"no final newline",
    b"line\r\n.",
    b"a\r\n.\r\nMAIL FROM:<x@y>\r\n",
    b"\r\n\r\n.\r\n\r\n",
    b"bare\n.lf and bare\r.cr\r\n",
    b"ends with cr\r",
    b"hello\n.\nMAIL FROM:<ceo@bank.test>\n",
    b"a\r.\rb\r\r\n.\n\r.\r\n",
    b"\n\r\r\n\n.",
    b"\0.\0\r\0\n.\0",
];

#[test]
fn writing_matches_the_reference_for_every_split_point() {
    for sample in SAMPLES {
        for data in [true, false] {
            let expected = reference(sample, data);
            let wire = || {
                if data {
                    WireBody::for_data()
                } else {
                    WireBody::for_bdat()
                }
            };
            assert_eq!(write_in_chunks(wire(), &[sample]), expected, "{sample:?}");
            for first in 0..=sample.len() {
                for second in first..=sample.len() {
                    let chunks = [&sample[..first], &sample[first..second], &sample[second..]];
                    assert_eq!(
                        write_in_chunks(wire(), &chunks),
                        expected,
                        "{sample:?} at {first}/{second}, data: {data}"
                    );
                }
            }
        }
    }
}

#[test]
fn only_dots_at_line_starts_are_doubled() {
    assert_eq!(stuff_in_chunks(&[b"a.b\r\n.c\r\n"]), b"a.b\r\n..c\r\n.\r\n");
    assert_eq!(
        stuff_in_chunks(&[b"a\r", b"\n", b".c\r\n"]),
        b"a\r\n..c\r\n.\r\n"
    );
    assert_eq!(stuff_in_chunks(&[b"tail"]), b"tail\r\n.\r\n");
    assert_eq!(stuff_in_chunks(&[]), b".\r\n");
}

#[test]
fn bare_line_endings_become_crlf_and_their_dots_are_stuffed() {
    assert_eq!(stuff_in_chunks(&[b"a\n.c\r\n"]), b"a\r\n..c\r\n.\r\n");
    assert_eq!(
        stuff_in_chunks(&[b"hello\n.\nMAIL FROM:<ceo@bank.test>\n"]),
        b"hello\r\n..\r\nMAIL FROM:<ceo@bank.test>\r\n.\r\n"
    );
    assert_eq!(
        stuff_in_chunks(&[b"x\r", b".", b"\r", b"\r\n"]),
        b"x\r\n..\r\n\r\n.\r\n"
    );
    // A CR LF split across chunks is one line ending, not two.
    assert_eq!(stuff_in_chunks(&[b"x\r", b"\n", b"\n"]), b"x\r\n\r\n.\r\n");
}

#[test]
fn a_crlf_body_passes_unchanged_but_for_the_stuffing() {
    let body: &[u8] = b"DKIM-Signature: v=1\r\nSubject: s\r\n\r\n.dot\r\n\0nul\r\n";
    assert_eq!(write_in_chunks(WireBody::for_bdat(), &[body]), body);
    assert_eq!(
        stuff_in_chunks(&[body]),
        b"DKIM-Signature: v=1\r\nSubject: s\r\n\r\n..dot\r\n\0nul\r\n.\r\n"
    );
}

struct Chunks(VecDeque<Result<Bytes, ()>>);

#[async_trait]
impl BodyReader for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        match self.0.pop_front() {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(())) => Err(StoreError::storage(std::io::Error::other("disk on fire"))),
        }
    }
}

fn body(parts: &[&'static [u8]]) -> Chunks {
    Chunks(
        parts
            .iter()
            .map(|part| Ok(Bytes::from_static(part)))
            .collect(),
    )
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn data_streams_the_stuffed_body_and_returns_the_final_reply() {
    let (client, mut server) = duplex(1 << 16);
    let mut client = Client::new(client);
    server.write_all(b"250 2.0.0 queued\r\n").await.ok();
    let mut message = body(&[b"Subject: a\r\n\r\n", b".dot\r\n", b"x"]);
    let reply = send_data(&mut client, &mut message, &SmtpTimeouts::default()).await;
    assert!(matches!(reply, Ok(ref r) if r.to_string() == "250 2.0.0 queued"));
    drop(client);
    let mut wire = Vec::new();
    server.read_to_end(&mut wire).await.ok();
    assert_eq!(wire, b"Subject: a\r\n\r\n..dot\r\nx\r\n.\r\n");
}

#[tokio::test]
async fn a_body_that_fails_half_way_is_never_ended() {
    let (client, mut server) = duplex(1 << 16);
    let mut client = Client::new(client);
    let mut message = Chunks(VecDeque::from([
        Ok(Bytes::from_static(b"part\r\n")),
        Err(()),
    ]));
    let result = send_data(&mut client, &mut message, &SmtpTimeouts::default()).await;
    assert!(matches!(result, Err(SessionError::Body(_))));
    drop(client);
    let mut wire = Vec::new();
    server.read_to_end(&mut wire).await.ok();
    assert_eq!(wire, b"part\r\n");
}

#[tokio::test]
async fn empty_data_is_ended_with_a_lone_dot() {
    let (client, mut server) = duplex(64);
    let mut client = Client::new(client);
    server
        .write_all(b"554 5.5.1 no valid recipients\r\n")
        .await
        .ok();
    let reply = end_empty_data(&mut client, &SmtpTimeouts::default()).await;
    assert!(matches!(reply, Ok(ref r) if r.code == 554));
    drop(client);
    let mut wire = Vec::new();
    server.read_to_end(&mut wire).await.ok();
    assert_eq!(wire, b".\r\n");
}

#[tokio::test]
async fn bdat_sends_exact_chunks_and_marks_the_last() {
    let (client, mut server) = duplex(1 << 20);
    let mut client = Client::new(client);
    server
        .write_all(b"250 chunk\r\n250 chunk\r\n250 chunk\r\n250 2.0.0 done\r\n")
        .await
        .ok();
    // Bare LFs, which become CRLFs: the chunk sizes count the normalized bytes.
    let big: &'static [u8] = Box::leak(b".\n".repeat(BDAT_CHUNK + 5).into_boxed_slice());
    let mut message = body(&[&big[..101], &big[101..]]);
    let timeouts = SmtpTimeouts {
        data_block: SECOND,
        ..SmtpTimeouts::default()
    };
    let reply = send_bdat(&mut client, &mut message, &timeouts).await;
    assert!(matches!(reply, Ok(ref r) if r.to_string() == "250 2.0.0 done"));
    drop(client);
    let mut wire = Vec::new();
    server.read_to_end(&mut wire).await.ok();
    let normalized = b".\r\n".repeat(BDAT_CHUNK + 5);
    let mut expected = Vec::new();
    for (range, header) in [
        (0..BDAT_CHUNK, format!("BDAT {BDAT_CHUNK}\r\n")),
        (BDAT_CHUNK..2 * BDAT_CHUNK, format!("BDAT {BDAT_CHUNK}\r\n")),
        (
            2 * BDAT_CHUNK..3 * BDAT_CHUNK,
            format!("BDAT {BDAT_CHUNK}\r\n"),
        ),
        (
            3 * BDAT_CHUNK..normalized.len(),
            "BDAT 15 LAST\r\n".to_owned(),
        ),
    ] {
        expected.extend_from_slice(header.as_bytes());
        expected.extend_from_slice(&normalized[range]);
    }
    assert_eq!(wire, expected);
}

#[tokio::test]
async fn a_refused_bdat_chunk_stops_the_transfer() {
    let (client, mut server) = duplex(1 << 20);
    let mut client = Client::new(client);
    server.write_all(b"552 5.3.4 too big\r\n").await.ok();
    let big: &'static [u8] = Box::leak(vec![b'x'; BDAT_CHUNK + 1].into_boxed_slice());
    let mut message = body(&[big]);
    let result = send_bdat(&mut client, &mut message, &SmtpTimeouts::default()).await;
    assert!(matches!(result, Err(SessionError::Reply(ref r)) if r.code == 552));
}
