//! DATA and BDAT: reading the body off the connection into a [`Body`], and the reply
//! that tells the client whether its email was accepted.

use mailfwd_domain::IngestError;
use smtp_proto::request::receiver::BdatReceiver;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use super::{Session, Step, Transaction};
use crate::conn::{Conn, ConnError};
use crate::data::{Body, DotReader};
use crate::reply::Reply;
use crate::timeouts::Timeouts;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn data(&mut self) -> Step {
        let addressed = match self.tx.take() {
            Some(Transaction::Envelope(tx)) => match tx.addressed() {
                Ok(addressed) => addressed,
                Err(tx) => {
                    self.tx = Some(Transaction::Envelope(tx));
                    return Ok(Some(Reply::bad_sequence("Send RCPT first")));
                }
            },
            Some(body @ Transaction::Body(_)) => {
                self.tx = Some(body);
                return Ok(Some(Reply::bad_sequence("DATA not allowed during BDAT")));
            }
            None => return Ok(Some(Reply::bad_sequence("Send MAIL first"))),
        };
        let incoming = match addressed.start_body().await {
            Ok(incoming) => incoming,
            Err(not_started) => {
                warn!(peer = %self.peer, error = %not_started.error, "cannot start receiving a message");
                self.tx = Some(Transaction::Envelope(
                    not_started.transaction.into_transaction(),
                ));
                return Ok(Some(Reply::for_ingest(&not_started.error)));
            }
        };
        self.conn.queue(&Reply::start_data());
        let mut body = Body::new(incoming);
        if let Err(error) = read_data(&mut self.conn, &mut body, &self.timeouts).await {
            body.abort().await;
            return Err(self.lost(error));
        }
        Ok(Some(self.deliver(body).await))
    }

    /// BDAT (RFC 3030). The chunk is always read off the connection, even when the
    /// command is refused, so that its bytes are never taken for commands.
    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> Step {
        if let Some(refused) = self.bdat_refused {
            return self.discard_chunk(size, last, refused).await;
        }
        let started = match self.tx.take() {
            Some(Transaction::Body(body)) => Ok(body),
            Some(Transaction::Envelope(tx)) => match tx.addressed() {
                Ok(addressed) => match addressed.start_body().await {
                    Ok(incoming) => Ok(Body::new(incoming)),
                    Err(not_started) => {
                        // The transaction ends: its first chunk is gone.
                        warn!(peer = %self.peer, error = %not_started.error, "cannot start receiving a message");
                        Err(Reply::for_ingest(&not_started.error))
                    }
                },
                Err(tx) => {
                    self.tx = Some(Transaction::Envelope(tx));
                    Err(Reply::bad_sequence("Send RCPT first"))
                }
            },
            None => Err(Reply::bad_sequence("Send MAIL first")),
        };
        let mut body = match started {
            Ok(body) => body,
            Err(reply) => {
                if let Err(error) = read_chunk(&mut self.conn, None, size, &self.timeouts).await {
                    return Err(self.lost(error));
                }
                // Whatever refused it (no MAIL, no recipient, storage), chunks the client
                // pipelined after this one are discarded quietly.
                self.bdat_refused = (!last).then(|| reply.code());
                return Ok(Some(reply));
            }
        };
        if let Err(error) = read_chunk(&mut self.conn, Some(&mut body), size, &self.timeouts).await
        {
            body.abort().await;
            return Err(self.lost(error));
        }
        if last || body.has_failed() {
            let reply = self.deliver(body).await;
            // Refused before its last chunk: the client may have pipelined more.
            self.bdat_refused = (!last).then(|| reply.code());
            return Ok(Some(reply));
        }
        self.tx = Some(Transaction::Body(body));
        Ok(Some(Reply::chunk_received(size)))
    }

    /// A chunk of a message refused at an earlier chunk (with `refused`, that reply's
    /// code), which a pipelining client sent before it saw the refusal: read and thrown
    /// away until the last one (RFC 3030 section 4.2). It is answered in the refusal's
    /// class, so a temporary refusal stays temporary, and counted as a junk command, not
    /// as an error: free up to the junk limit, like any command that moves no mail.
    async fn discard_chunk(&mut self, size: usize, last: bool, refused: u16) -> Step {
        if let Err(error) = read_chunk(&mut self.conn, None, size, &self.timeouts).await {
            return Err(self.lost(error));
        }
        self.bdat_refused = (!last).then_some(refused);
        self.conn
            .queue(&Reply::chunk_discarded(size, refused < 500));
        self.junk_command()?;
        Ok(None)
    }

    /// Commits the email, or says why not. Either way the transaction is over.
    async fn deliver(&mut self, body: Body) -> Reply {
        let peer = self.peer;
        match body.finish().await {
            Ok(received) => {
                info!(%peer, id = %received.id, size = received.size,
                    recipients = received.email.envelope.recipients.len(),
                    tls = received.email.tls, "message accepted");
                // A client that moves mail may RSET between messages as often as it
                // likes: the junk count starts over (as Postfix's does).
                self.junk = 0;
                Reply::queued(&received.id)
            }
            Err(error) => {
                match error {
                    IngestError::Overloaded { .. }
                    | IngestError::InsufficientStorage(_)
                    | IngestError::Unavailable(_) => {
                        warn!(%peer, %error, "message not accepted");
                    }
                    _ => info!(%peer, %error, "message refused"),
                }
                Reply::for_ingest(&error)
            }
        }
    }
}

/// Reads DATA up to CRLF.CRLF, writing it into `body` as it arrives.
async fn read_data<S>(
    conn: &mut Conn<S>,
    body: &mut Body,
    timeouts: &Timeouts,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut reader = DotReader::new();
    loop {
        if conn.buffered().is_empty() {
            conn.fill(timeouts.data()).await?;
        }
        let (consumed, ended) = reader.feed(conn.buffered());
        conn.consume(consumed);
        if reader.take_false_end() {
            body.reject_false_end().await;
        }
        body.write(reader.ready(ended)).await;
        reader.release(ended);
        if ended {
            return Ok(());
        }
    }
}

/// Reads one BDAT chunk of `size` octets into `body`, or throws it away if there is none.
async fn read_chunk<S>(
    conn: &mut Conn<S>,
    mut body: Option<&mut Body>,
    size: usize,
    timeouts: &Timeouts,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut receiver = BdatReceiver::new(size, false);
    let mut chunk = Vec::new();
    let mut done = size == 0;
    while !done {
        if conn.buffered().is_empty() {
            conn.fill(timeouts.data()).await?;
        }
        let input = conn.buffered();
        let mut bytes = input.iter();
        done = receiver.ingest(&mut bytes, &mut chunk);
        let consumed = input.len() - bytes.as_slice().len();
        conn.consume(consumed);
        if let Some(body) = body.as_deref_mut() {
            body.write(&chunk).await;
        }
        chunk.clear();
    }
    Ok(())
}
