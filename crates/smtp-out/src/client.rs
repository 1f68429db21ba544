//! The wire: commands out, replies in, each step under its own timeout.
//!
//! Generic over any `AsyncRead + AsyncWrite` so the protocol code runs in unit tests
//! over an in-memory pipe, and in production over TCP or TLS alike.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use smtp_proto::response::parser::ResponseReceiver;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::SessionError;
use crate::reply::Reply;

/// How many bytes are read from the socket at a time.
const READ_SIZE: usize = 4096;

/// One SMTP connection, seen from the client side.
pub(crate) struct Client<S> {
    stream: S,
    /// Bytes read after the last complete reply: the next replies of a pipelined group
    /// often arrive in the same read. Dropped before a TLS handshake.
    pending: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub(crate) fn new(stream: S) -> Self {
        Client {
            stream,
            pending: Vec::new(),
        }
    }

    /// Gives the stream back, dropping any bytes the server sent ahead of time (after
    /// a 220 to STARTTLS they would be an injection attempt, RFC 3207 §5).
    pub(crate) fn into_stream(self) -> S {
        self.stream
    }

    /// Reads one complete (possibly multi-line) reply.
    ///
    /// # Errors
    /// [`SessionError::Timeout`] after `timeout`, [`SessionError::Io`] when the
    /// connection fails or closes, [`SessionError::Protocol`] for a malformed reply.
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
        let mut parser = ResponseReceiver::default();
        let mut input = std::mem::take(&mut self.pending);
        loop {
            if !input.is_empty() {
                let mut iter = input.iter();
                match parser.parse(&mut iter) {
                    Ok(response) => {
                        self.pending = iter.as_slice().to_vec();
                        return Ok(Reply::from_response(response));
                    }
                    Err(smtp_proto::Error::NeedsMoreData { .. }) => {}
                    Err(_) => return Err(SessionError::Protocol { during }),
                }
            }
            input.clear();
            input.resize(READ_SIZE, 0);
            let read = self
                .stream
                .read(&mut input)
                .await
                .map_err(|source| SessionError::Io { during, source })?;
            if read == 0 {
                return Err(SessionError::Closed { during });
            }
            input.truncate(read);
        }
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
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| SessionError::Timeout { during })?
            .map_err(|source| SessionError::Io { during, source })
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
    /// being given up anyway.
    pub(crate) async fn quit(mut self, timeout: Duration) {
        let _ = self.command("QUIT", timeout, "QUIT").await;
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
