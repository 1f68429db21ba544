//! The wire: commands out, replies in, each step under its own timeout.
//!
//! Generic over any `AsyncRead + AsyncWrite` so the protocol code runs in unit tests
//! over an in-memory pipe, and in production over TCP or TLS alike.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::SessionError;
use crate::reply::{Line, MAX_LINE, MAX_LINES, Reply};

/// How many bytes are read from the socket at a time.
const READ_SIZE: usize = 4096;

/// How much of a malformed reply is kept in the error, to show what the server sent.
const KEEP_MALFORMED: usize = 200;

/// One SMTP connection, seen from the client side.
pub(crate) struct Client<S> {
    stream: S,
    /// Bytes read after the last complete reply: the next replies of a pipelined group
    /// often arrive in the same read. Dropped before a TLS handshake. Kept here rather
    /// than in a local of [`Client::read_reply`], so a read cut short by its timeout
    /// loses nothing.
    pending: Vec<u8>,
    /// The server can no longer read a command from us: a write was cut short, the
    /// connection failed or was closed, or message data was left unfinished. QUIT is
    /// not sent on such a connection (in the middle of message data it would become
    /// part of the message).
    broken: bool,
    /// Message data is being written: until its end is, the server reads everything as
    /// data.
    in_data: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub(crate) fn new(stream: S) -> Self {
        Client {
            stream,
            pending: Vec::new(),
            broken: false,
            in_data: false,
        }
    }

    /// Gives the stream back, dropping any bytes the server sent ahead of time (after
    /// a 220 to STARTTLS they would be an injection attempt, RFC 3207 §5).
    pub(crate) fn into_stream(self) -> S {
        self.stream
    }

    /// Marks the start (`true`) and the end (`false`) of message data sent by DATA: in
    /// between, a failure leaves the server reading data, so no QUIT may follow.
    pub(crate) fn set_in_data(&mut self, in_data: bool) {
        self.in_data = in_data;
    }

    /// Marks a connection whose replies no longer line up with the commands: what the
    /// server would make of a QUIT is unknown, so it is closed without one.
    pub(crate) fn out_of_step(&mut self) {
        self.pending.clear();
        self.broken = true;
    }

    /// Whether the server has sent bytes that no command asked for yet: the rest of a
    /// reply already read, or anything waiting on the socket. Only ever true for a
    /// server whose replies no longer line up with our commands (or one announcing it
    /// closes, with a 421): the connection cannot be trusted with a transaction.
    pub(crate) fn has_unread(&mut self) -> bool {
        !self.is_idle()
    }

    /// Reads one complete (possibly multi-line) reply; its code is its last line's.
    ///
    /// # Errors
    /// [`SessionError::Timeout`] after `timeout`, [`SessionError::Io`] when the
    /// connection fails, [`SessionError::Closed`] when it closes,
    /// [`SessionError::Protocol`] for a malformed reply (with the offending text).
    pub(crate) async fn read_reply(
        &mut self,
        timeout: Duration,
        during: &'static str,
    ) -> Result<Reply, SessionError> {
        tokio::time::timeout(timeout, self.read_reply_inner(during))
            .await
            .map_err(|_| SessionError::Timeout { during })?
    }

    async fn read_reply_inner(&mut self, during: &'static str) -> Result<Reply, SessionError> {
        // Lines are only taken out of `pending` once the whole reply is there, so a
        // timeout in the middle of a reply loses nothing.
        let mut scanned = 0;
        loop {
            let mut texts: Vec<String> = Vec::new();
            let mut start = 0;
            let mut last = None;
            while let Some(end) = self.pending[start..].iter().position(|&b| b == b'\n') {
                let raw = &self.pending[start..start + end];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line = String::from_utf8_lossy(raw).into_owned();
                start += end + 1;
                if line.len() > MAX_LINE {
                    return Err(self.malformed(during, &line));
                }
                match Line::parse(&line) {
                    Some(Line::More(text)) if texts.len() + 1 < MAX_LINES => {
                        texts.push(text.to_owned());
                    }
                    Some(Line::Last(code, text)) => {
                        texts.push(text.to_owned());
                        last = Some(code);
                        break;
                    }
                    _ => return Err(self.malformed(during, &line)),
                }
            }
            if let Some(code) = last {
                self.pending.drain(..start);
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                return Ok(Reply::from_lines(code, &texts));
            }
            scanned = scanned.max(start);
            if self.pending.len() - scanned > MAX_LINE + 2 {
                let line = String::from_utf8_lossy(&self.pending[scanned..]).into_owned();
                return Err(self.malformed(during, &line));
            }
            let have = self.pending.len();
            self.pending.resize(have + READ_SIZE, 0);
            let read = self.stream.read(&mut self.pending[have..]).await;
            let read = match read {
                Ok(read) => read,
                Err(source) => {
                    self.pending.truncate(have);
                    self.broken = true;
                    return Err(SessionError::Io { during, source });
                }
            };
            self.pending.truncate(have + read);
            if read == 0 {
                self.broken = true;
                return Err(SessionError::Closed { during });
            }
        }
    }

    /// The error for a reply that is not SMTP, keeping what the server sent (printable
    /// and short) for the delivery's recorded reply. The rest of the input is dropped:
    /// nothing after it can be trusted to line up with a command.
    fn malformed(&mut self, during: &'static str, line: &str) -> SessionError {
        self.pending.clear();
        let mut text: String = line
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .take(KEEP_MALFORMED)
            .collect();
        if line.chars().count() > KEEP_MALFORMED {
            text.push('…');
        }
        SessionError::Protocol { during, text }
    }

    /// Writes `bytes` and flushes them.
    ///
    /// # Errors
    /// [`SessionError::Timeout`] or [`SessionError::Io`].
    pub(crate) async fn write(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
        during: &'static str,
    ) -> Result<(), SessionError> {
        // Until the write completes, the server may hold part of it: a failure or a
        // timeout in between leaves it in the middle of a line.
        self.broken = true;
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| SessionError::Timeout { during })?
            .map_err(|source| SessionError::Io { during, source })?;
        self.broken = false;
        Ok(())
    }

    /// Sends one command line (without its CRLF) and reads the reply.
    ///
    /// # Errors
    /// As [`Client::write`] and [`Client::read_reply`].
    pub(crate) async fn command(
        &mut self,
        line: &str,
        timeout: Duration,
        during: &'static str,
    ) -> Result<Reply, SessionError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes, timeout, during).await?;
        self.read_reply(timeout, during).await
    }

    /// Whether an idle connection is still open and silent, found out without waiting:
    /// one read is polled once with a no-op waker (tokio's equivalent of
    /// `now_or_never`). Pending means nothing arrived, so the server still waits for a
    /// command. End of file, an error or any bytes (an unsolicited reply is a `421`
    /// the server sent before it closed an idle session, RFC 5321 §3.8) all mean the
    /// session cannot take a transaction.
    ///
    /// This catches a server that closed the connection; it cannot catch a peer that
    /// vanished silently (a NAT or firewall that forgot the connection), whose failure
    /// only shows when a reply never comes.
    pub(crate) fn is_idle(&mut self) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        let mut bytes = [0; 64];
        let mut buf = ReadBuf::new(&mut bytes);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// Sends QUIT and waits briefly for the reply, ignoring failures: the connection is
    /// being given up anyway. Also after a refusal, a malformed reply or a timeout
    /// (RFC 5321 §3.8: the client ends the session with QUIT); only a connection that
    /// cannot take a command any more (see `broken`) is closed without it.
    pub(crate) async fn quit(mut self, timeout: Duration) {
        if !self.broken && !self.in_data {
            let _ = self.command("QUIT", timeout, "QUIT").await;
        }
        let _ = tokio::time::timeout(timeout, self.stream.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn reads_multi_line_replies_split_across_reads() {
        let (client, mut server) = duplex(64);
        let mut client = Client::new(client);
        let writer = tokio::spawn(async move {
            for part in [
                &b"250-mx.exam"[..],
                b"ple\r\n250-SIZE 10\r",
                b"\n250 CHUNKING\r\n",
            ] {
                server.write_all(part).await?;
                tokio::task::yield_now().await;
            }
            server.write_all(b"221 2.0.0 bye\r\n").await?;
            Ok::<_, std::io::Error>(server)
        });
        let reply = client.read_reply(SECOND, "EHLO").await;
        let second = client.read_reply(SECOND, "QUIT").await;
        assert!(writer.await.is_ok());
        let reply = reply.map(|r| (r.code, r.to_string()));
        assert!(matches!(reply, Ok((250, ref text)) if text == "250 mx.example SIZE 10 CHUNKING"));
        assert!(matches!(second, Ok(ref r) if r.to_string() == "221 2.0.0 bye"));
    }

    #[tokio::test]
    async fn a_closed_connection_and_a_silent_server_are_errors() {
        let (client, server) = duplex(64);
        drop(server);
        let mut client = Client::new(client);
        assert!(matches!(
            client.read_reply(SECOND, "greeting").await,
            Err(SessionError::Closed { during: "greeting" })
        ));

        let (client, _server) = duplex(64);
        let mut client = Client::new(client);
        assert!(matches!(
            client
                .read_reply(Duration::from_millis(20), "MAIL FROM")
                .await,
            Err(SessionError::Timeout {
                during: "MAIL FROM"
            })
        ));
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let (client, mut server) = duplex(64);
        server.write_all(b"hello there\r\n").await.ok();
        let mut client = Client::new(client);
        assert!(matches!(
            client.read_reply(SECOND, "greeting").await,
            Err(SessionError::Protocol { .. })
        ));
    }
}
