//! The connection under a session: buffered input, queued replies, timeouts, and the
//! switch to TLS. It knows bytes and lines, not SMTP.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::reply::Reply;
use crate::timeouts::Deadline;

/// How much to ask the socket for at a time.
const READ_SIZE: usize = 16 * 1024;

/// Why the connection cannot go on.
#[derive(Debug, Error)]
pub(crate) enum ConnError {
    /// The client did not send (or take) anything in time.
    #[error("timed out")]
    Timeout,
    /// The client closed the connection.
    #[error("closed by the client")]
    Closed,
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] io::Error),
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// A complete command line, or the news that one was too long and has been skipped.
#[derive(Debug)]
pub(crate) enum Line {
    /// The line, LF included.
    Command(Bytes),
    /// A line longer than the limit, thrown away up to and including its LF.
    TooLong,
}

enum Stream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Between taking the plain stream for the handshake and getting a TLS one back.
    Gone,
}

/// A client connection with an input buffer and a queue of replies.
pub(crate) struct Conn<S> {
    stream: Stream<S>,
    input: BytesMut,
    output: Vec<u8>,
    /// Inside a too-long line: throw input away until its LF.
    skipping: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Conn<S> {
    pub(crate) fn new(stream: S) -> Self {
        Conn {
            stream: Stream::Plain(stream),
            input: BytesMut::with_capacity(READ_SIZE),
            output: Vec::with_capacity(512),
            skipping: false,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Queues a reply; it is sent by the next [`Conn::flush`].
    pub(crate) fn queue(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    /// Sends the queued replies, unless `deadline` expires first.
    pub(crate) async fn flush(&mut self, deadline: &mut Deadline) -> Result<(), ConnError> {
        self.flush_within(deadline.expired()).await
    }

    /// Sends the queued replies, unless `expired` resolves first.
    async fn flush_within(&mut self, expired: impl Future<Output = ()>) -> Result<(), ConnError> {
        if self.output.is_empty() {
            return Ok(());
        }
        let output = std::mem::take(&mut self.output);
        let write = async {
            match &mut self.stream {
                Stream::Plain(stream) => write_all(stream, &output).await,
                Stream::Tls(stream) => write_all(stream, &output).await,
                Stream::Gone => Err(ConnError::Closed),
            }
        };
        let result = tokio::select! {
            result = write => result,
            () = expired => return Err(ConnError::Timeout),
        };
        self.output = output;
        self.output.clear();
        result
    }

    /// Input received and not yet consumed.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.input
    }

    /// Marks `count` buffered bytes as consumed.
    pub(crate) fn consume(&mut self, count: usize) {
        self.input.advance(count.min(self.input.len()));
    }

    /// Throws away all buffered input and returns how much there was.
    pub(crate) fn discard_input(&mut self) -> usize {
        let count = self.input.len();
        self.input.clear();
        self.skipping = false;
        count
    }

    /// Waits for more input, unless `deadline` expires first. Cancel-safe: dropping the
    /// future loses no data.
    pub(crate) async fn read_more(&mut self, deadline: &mut Deadline) -> Result<(), ConnError> {
        self.input.reserve(READ_SIZE);
        let read = async {
            match &mut self.stream {
                Stream::Plain(stream) => stream.read_buf(&mut self.input).await,
                Stream::Tls(stream) => stream.read_buf(&mut self.input).await,
                Stream::Gone => Ok(0),
            }
        };
        let read = tokio::select! {
            read = read => read,
            () = deadline.expired() => return Err(ConnError::Timeout),
        };
        match read {
            Ok(0) => Err(ConnError::Closed),
            Ok(_) => Ok(()),
            Err(error) => Err(ConnError::Io(error)),
        }
    }

    /// Sends queued replies, then waits for more input, both within `deadline`.
    pub(crate) async fn fill(&mut self, mut deadline: Deadline) -> Result<(), ConnError> {
        self.flush(&mut deadline).await?;
        self.read_more(&mut deadline).await
    }

    /// Takes the next complete line from the buffer, if there is one. A line longer than
    /// `max` octets is never kept whole: the buffer holds at most `max` octets of it
    /// before they are thrown away, and the rest is skipped as it arrives, so the tail
    /// of a long line is never taken for a command.
    pub(crate) fn take_line(&mut self, max: usize) -> Option<Line> {
        let newline = self.input.iter().position(|&byte| byte == b'\n');
        if self.skipping {
            return match newline {
                Some(at) => {
                    self.input.advance(at + 1);
                    self.skipping = false;
                    Some(Line::TooLong)
                }
                None => {
                    self.input.clear();
                    None
                }
            };
        }
        match newline {
            Some(at) if at < max => Some(Line::Command(self.input.split_to(at + 1).freeze())),
            Some(at) => {
                self.input.advance(at + 1);
                Some(Line::TooLong)
            }
            None if self.input.len() >= max => {
                self.input.clear();
                self.skipping = true;
                None
            }
            None => None,
        }
    }

    /// Runs the server side of a TLS handshake on the plain stream.
    pub(crate) async fn start_tls(
        &mut self,
        config: Arc<rustls::ServerConfig>,
        mut deadline: Deadline,
    ) -> Result<(), ConnError> {
        let Stream::Plain(plain) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(ConnError::Closed);
        };
        let handshake = TlsAcceptor::from(config).accept(plain);
        let tls = tokio::select! {
            tls = handshake => tls.map_err(ConnError::Handshake)?,
            () = deadline.expired() => return Err(ConnError::Timeout),
        };
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Sends what is queued and closes the connection, politely but without waiting long.
    pub(crate) async fn close(&mut self, limit: Duration) {
        let _ = self.flush_within(tokio::time::sleep(limit)).await;
        let shutdown = async {
            match &mut self.stream {
                Stream::Plain(stream) => stream.shutdown().await,
                Stream::Tls(stream) => stream.shutdown().await,
                Stream::Gone => Ok(()),
            }
        };
        let _ = timeout(limit, shutdown).await;
    }
}

async fn write_all<W: AsyncWrite + Unpin>(stream: &mut W, bytes: &[u8]) -> Result<(), ConnError> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    Ok(())
}
