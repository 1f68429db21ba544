//! Sending the message itself, streamed from the store chunk by chunk: DATA with
//! dot-stuffing done on the fly, or BDAT chunks (RFC 3030), which are byte-exact.
//!
//! Neither path ever holds more than one stored chunk (plus one BDAT chunk) in memory.
//! If reading the body fails half-way, the error is returned before the end of the data
//! is sent, and the caller drops the connection: the server then discards the partial
//! message instead of delivering a truncated one.

use tokio::io::{AsyncRead, AsyncWrite};

use mailfwd_domain::email::BodyReader;

use crate::client::Client;
use crate::config::SmtpTimeouts;
use crate::error::SessionError;
use crate::reply::Reply;

/// Size of each BDAT chunk but the last.
pub(crate) const BDAT_CHUNK: usize = 64 * 1024;

/// Dot-stuffing (RFC 5321 §4.5.2) across chunk boundaries: a `.` that starts a line
/// (the first byte, or the byte after a CRLF) is doubled.
#[derive(Debug)]
pub(crate) struct DotStuffer {
    line_start: bool,
    after_cr: bool,
}

impl DotStuffer {
    pub(crate) fn new() -> Self {
        DotStuffer {
            line_start: true,
            after_cr: false,
        }
    }

    /// Appends `chunk`, stuffed, to `out`.
    pub(crate) fn stuff(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + 8);
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.line_start && rest.first() == Some(&b'.') {
                out.push(b'.');
            }
            match rest.iter().position(|&byte| byte == b'\n') {
                Some(lf) => {
                    let (line, tail) = rest.split_at(lf + 1);
                    let cr_before_lf = if lf == 0 {
                        self.after_cr
                    } else {
                        line.get(lf - 1) == Some(&b'\r')
                    };
                    out.extend_from_slice(line);
                    self.line_start = cr_before_lf;
                    self.after_cr = false;
                    rest = tail;
                }
                None => {
                    out.extend_from_slice(rest);
                    self.line_start = false;
                    self.after_cr = rest.last() == Some(&b'\r');
                    rest = &[];
                }
            }
        }
    }

    /// Appends the end of the data: a CRLF first if the message did not end with one,
    /// then `.` CRLF.
    pub(crate) fn finish(&self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// DATA, once the server has answered the DATA command with 354 (the command itself
/// goes with the envelope, see `envelope.rs`): streams the stuffed body, ends it,
/// returns the final reply.
///
/// # Errors
/// [`SessionError::Body`] if the body cannot be read, or an I/O error or timeout.
pub(crate) async fn send_data<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    body: &mut dyn BodyReader,
    timeouts: &SmtpTimeouts,
) -> Result<Reply, SessionError> {
    let mut stuffer = DotStuffer::new();
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await.map_err(SessionError::Body)? {
        out.clear();
        stuffer.stuff(&chunk, &mut out);
        client
            .write(&out, timeouts.data_block, "the message data")
            .await?;
    }
    out.clear();
    stuffer.finish(&mut out);
    client
        .write(&out, timeouts.data_block, "the end of the data")
        .await?;
    client
        .read_reply(timeouts.data_end, "the end of the data")
        .await
}

/// Ends data that must not be sent: the lone `.` line, for a server that answered a
/// pipelined DATA with 354 although it refused MAIL or RCPT. RFC 2920 §3.1 has the
/// client end the (empty) data then, which returns the session to a known state.
///
/// # Errors
/// An I/O error or timeout.
pub(crate) async fn end_empty_data<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    timeouts: &SmtpTimeouts,
) -> Result<Reply, SessionError> {
    client
        .write(b".\r\n", timeouts.data_block, "the end of the data")
        .await?;
    client
        .read_reply(timeouts.data_end, "the end of the data")
        .await
}

/// BDAT: the body in chunks of [`BDAT_CHUNK`] octets, the last one marked LAST (and
/// possibly empty); returns the reply to the last one.
///
/// # Errors
/// [`SessionError::Reply`] if a chunk is refused, [`SessionError::Body`] if the body
/// cannot be read, or an I/O error or timeout.
pub(crate) async fn send_bdat<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    body: &mut dyn BodyReader,
    timeouts: &SmtpTimeouts,
) -> Result<Reply, SessionError> {
    let mut pending = Vec::with_capacity(BDAT_CHUNK);
    while let Some(chunk) = body.next_chunk().await.map_err(SessionError::Body)? {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = (BDAT_CHUNK - pending.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            pending.extend_from_slice(head);
            rest = tail;
            if pending.len() == BDAT_CHUNK {
                let reply = bdat_chunk(client, &pending, false, timeouts).await?;
                if !reply.is_positive() {
                    return Err(SessionError::Reply(reply));
                }
                pending.clear();
            }
        }
    }
    bdat_chunk(client, &pending, true, timeouts).await
}

async fn bdat_chunk<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    data: &[u8],
    last: bool,
    timeouts: &SmtpTimeouts,
) -> Result<Reply, SessionError> {
    let header = if last {
        format!("BDAT {} LAST\r\n", data.len())
    } else {
        format!("BDAT {}\r\n", data.len())
    };
    let mut frame = Vec::with_capacity(header.len() + data.len());
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(data);
    client
        .write(&frame, timeouts.data_block, "the message data")
        .await?;
    if last {
        client
            .read_reply(timeouts.data_end, "the last BDAT chunk")
            .await
    } else {
        client.read_reply(timeouts.data_block, "BDAT").await
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
