//! Sending the message itself, streamed from the store chunk by chunk: DATA with
//! dot-stuffing done on the fly, or BDAT chunks (RFC 3030).
//!
//! Whatever is stored, both paths send the same normalized bytes ([`WireBody`]):
//! CRLF-only, ending with CRLF. Stored bytes cannot be trusted to be CRLF-only (a body
//! ingested before the inbound message policy, or by an older version), and a next hop
//! that ends DATA at `<LF>.<LF>` or `<CR>.<CR>` would otherwise read the rest of such
//! a body as a second transaction of ours: outbound SMTP smuggling. A CRLF-only body
//! ending with CRLF, which is every body the inbound policy accepts, passes byte for
//! byte, so DKIM signatures survive (see ADR 0006).
//!
//! Neither path ever holds more than one stored chunk (normalized, plus one BDAT chunk)
//! in memory. If reading the body fails half-way, the error is returned before the end
//! of the data is sent, and the caller drops the connection: the server then discards
//! the partial message instead of delivering a truncated one.

use tokio::io::{AsyncRead, AsyncWrite};

use mailfwd_domain::email::BodyReader;

use crate::client::Client;
use crate::config::SmtpTimeouts;
use crate::error::SessionError;
use crate::reply::Reply;

/// Size of each BDAT chunk but the last, counted after normalizing.
pub(crate) const BDAT_CHUNK: usize = 64 * 1024;

/// The stored body rewritten, chunk by chunk, into what goes on the wire.
///
/// - Line endings become CRLF: a bare CR and a bare LF each become CRLF, CRLF stays
///   CRLF (a CR that ends a chunk is written as CRLF at once, and an LF that starts
///   the next chunk is then dropped, so nothing waits for the next chunk).
/// - For DATA, a `.` that starts a line (RFC 5321 §4.5.2) is doubled, and since every
///   line ending is now CRLF, a `.` after any line ending is. No byte sequence a
///   receiver could take for the end of the data (`<CR>.<CR>`, `<LF>.<LF>`, …) is left
///   in the body.
/// - [`finish`](Self::finish) adds a CRLF if the body did not end with one, and for
///   DATA the final `.` CRLF.
///
/// A CRLF-only body that ends with CRLF comes out unchanged (bar the stuffing, which
/// the receiver undoes): no DKIM signature it carries is broken. A final CRLF added to
/// a body without one does not break one either: DKIM's canonicalizations add it too
/// (RFC 6376 §3.4.3, §3.4.4).
#[derive(Debug)]
pub(crate) struct WireBody {
    stuff_dots: bool,
    /// The last byte written ended a line (or nothing was written yet).
    line_start: bool,
    /// The last stored byte was a CR, already written as CRLF: an LF next is its own.
    after_cr: bool,
}

impl WireBody {
    /// For DATA: normalized and dot-stuffed.
    pub(crate) fn for_data() -> Self {
        WireBody {
            stuff_dots: true,
            line_start: true,
            after_cr: false,
        }
    }

    /// For BDAT: normalized, not stuffed (BDAT counts octets, no `.` ends it).
    pub(crate) fn for_bdat() -> Self {
        WireBody {
            stuff_dots: false,
            ..WireBody::for_data()
        }
    }

    /// Appends `chunk`, rewritten, to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 16 + 8);
        let mut rest = chunk;
        while let Some((&first, tail)) = rest.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                rest = tail;
                continue;
            }
            if self.stuff_dots && self.line_start && first == b'.' {
                out.push(b'.');
            }
            match rest.iter().position(|&byte| byte == b'\r' || byte == b'\n') {
                Some(end) => {
                    let (line, tail) = rest.split_at(end);
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                    let ending = if tail.starts_with(b"\r\n") { 2 } else { 1 };
                    // Only a CR that ends the chunk can be the first half of a CRLF
                    // split across chunks.
                    self.after_cr = tail == b"\r";
                    rest = tail.get(ending..).unwrap_or_default();
                }
                None => {
                    out.extend_from_slice(rest);
                    self.line_start = false;
                    rest = &[];
                }
            }
        }
    }

    /// Appends the end of the body: a CRLF first if it did not end with one, then for
    /// DATA the `.` CRLF that ends the data.
    pub(crate) fn finish(&self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        if self.stuff_dots {
            out.extend_from_slice(b".\r\n");
        }
    }
}

/// DATA, once the server has answered the DATA command with 354 (the command itself
/// goes with the envelope, see `envelope.rs`): streams the body as [`WireBody`] writes
/// it for DATA, ends it, returns the final reply.
///
/// # Errors
/// [`SessionError::Body`] if the body cannot be read, or an I/O error or timeout.
pub(crate) async fn send_data<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    body: &mut dyn BodyReader,
    timeouts: &SmtpTimeouts,
) -> Result<Reply, SessionError> {
    let mut wire = WireBody::for_data();
    let mut out = Vec::new();
    // Until the final `.` is written, the server reads everything as message data.
    client.set_in_data(true);
    while let Some(chunk) = body.next_chunk().await.map_err(SessionError::Body)? {
        out.clear();
        wire.push(&chunk, &mut out);
        client
            .write(&out, timeouts.data_block, "the message data")
            .await?;
    }
    out.clear();
    wire.finish(&mut out);
    client
        .write(&out, timeouts.data_block, "the end of the data")
        .await?;
    client.set_in_data(false);
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

/// BDAT: the body as [`WireBody`] writes it for BDAT, in chunks of [`BDAT_CHUNK`]
/// octets, the last one marked LAST (and possibly empty); returns the reply to the last
/// one. The receiver gets the same message as over DATA.
///
/// # Errors
/// [`SessionError::Reply`] if a chunk is refused, [`SessionError::Body`] if the body
/// cannot be read, or an I/O error or timeout.
pub(crate) async fn send_bdat<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    body: &mut dyn BodyReader,
    timeouts: &SmtpTimeouts,
) -> Result<Reply, SessionError> {
    let mut wire = WireBody::for_bdat();
    let mut normalized = Vec::new();
    let mut pending = Vec::with_capacity(BDAT_CHUNK);
    while let Some(chunk) = body.next_chunk().await.map_err(SessionError::Body)? {
        normalized.clear();
        wire.push(&chunk, &mut normalized);
        send_full_chunks(client, &mut pending, &normalized, timeouts).await?;
    }
    normalized.clear();
    wire.finish(&mut normalized);
    send_full_chunks(client, &mut pending, &normalized, timeouts).await?;
    bdat_chunk(client, &pending, true, timeouts).await
}

/// Adds `bytes` to `pending`, sending every chunk that fills up.
async fn send_full_chunks<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    pending: &mut Vec<u8>,
    mut bytes: &[u8],
    timeouts: &SmtpTimeouts,
) -> Result<(), SessionError> {
    while !bytes.is_empty() {
        let take = (BDAT_CHUNK - pending.len()).min(bytes.len());
        let (head, tail) = bytes.split_at(take);
        pending.extend_from_slice(head);
        bytes = tail;
        if pending.len() == BDAT_CHUNK {
            let reply = bdat_chunk(client, pending, false, timeouts).await?;
            if !reply.is_positive() {
                return Err(SessionError::Reply(reply));
            }
            pending.clear();
        }
    }
    Ok(())
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

#[cfg(test)]
#[path = "data_props.rs"]
mod props;
