//! DATA and BDAT: reading the body off the connection into a [`Body`], and the reply
//! that tells the client whether its email was accepted.

use std::time::Duration;

use mailfwd_domain::{Envelope, IngestError, NewEmail};
use smtp_proto::request::receiver::BdatReceiver;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

use super::{Session, Step, Transaction};
use crate::conn::{Conn, ConnError};
use crate::data::{Body, BodyError, DotReader};
use crate::reply::Reply;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn data(&mut self) -> Step {
        let tx = match self.tx.take() {
            Some(tx) if tx.body.is_none() && !tx.recipients.is_empty() => tx,
            other => {
                let why = match &other {
                    None => "Send MAIL first",
                    Some(tx) if tx.body.is_some() => "DATA not allowed during BDAT",
                    Some(_) => "Send RCPT first",
                };
                self.tx = other;
                return Ok(Some(Reply::bad_sequence(why)));
            }
        };
        let incoming = match self.ingest.begin().await {
            Ok(incoming) => incoming,
            Err(error) => {
                warn!(peer = %self.peer, %error, "cannot start receiving a message");
                self.tx = Some(tx);
                return Ok(Some(Reply::for_ingest(&error)));
            }
        };
        self.conn.queue(&Reply::start_data());
        let mut body = Body::new(incoming);
        if let Err(error) = read_data(&mut self.conn, &mut body, self.config.data_timeout).await {
            body.abort().await;
            return Err(self.lost(error));
        }
        Ok(Some(self.deliver(body, tx).await))
    }

    /// BDAT (RFC 3030). The chunk is always read off the connection, even when the
    /// command is refused, so that its bytes are never taken for commands.
    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> Step {
        let limit = self.config.data_timeout;
        let mut tx = match self.tx.take() {
            Some(tx) if !tx.recipients.is_empty() => tx,
            other => {
                let why = if other.is_none() {
                    "Send MAIL first"
                } else {
                    "Send RCPT first"
                };
                self.tx = other;
                if let Err(error) = read_chunk(&mut self.conn, None, size, limit).await {
                    return Err(self.lost(error));
                }
                return Ok(Some(Reply::bad_sequence(why)));
            }
        };
        let mut body = match tx.body.take() {
            Some(body) => body,
            None => match self.ingest.begin().await {
                Ok(incoming) => Body::new(incoming),
                Err(error) => {
                    warn!(peer = %self.peer, %error, "cannot start receiving a message");
                    if let Err(error) = read_chunk(&mut self.conn, None, size, limit).await {
                        return Err(self.lost(error));
                    }
                    return Ok(Some(Reply::for_ingest(&error)));
                }
            },
        };
        if let Err(error) = read_chunk(&mut self.conn, Some(&mut body), size, limit).await {
            body.abort().await;
            return Err(self.lost(error));
        }
        if last || body.has_failed() {
            return Ok(Some(self.deliver(body, tx).await));
        }
        tx.body = Some(body);
        self.tx = Some(tx);
        Ok(Some(Reply::chunk_received(size)))
    }

    /// Commits the email, or says why not. Either way the transaction is over.
    async fn deliver(&mut self, body: Body, tx: Transaction) -> Reply {
        let peer = self.peer;
        let recipients = tx.recipients.len();
        let email = NewEmail {
            envelope: Envelope {
                sender: tx.sender,
                recipients: tx.recipients,
            },
            peer: Some(peer.to_string()),
            helo: self.helo.clone(),
            tls: self.conn.is_tls(),
        };
        match body.finish(email).await {
            Ok(received) => {
                info!(%peer, id = %received.id, size = received.size, recipients,
                    tls = received.email.tls, "message accepted");
                Reply::queued(&received.id)
            }
            Err(BodyError::BareLineEnding) => {
                info!(%peer, "message refused: bare CR or LF");
                Reply::bare_line_ending()
            }
            Err(BodyError::Ingest(error)) => {
                match error {
                    IngestError::Overloaded | IngestError::Unavailable(_) => {
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
async fn read_data<S>(conn: &mut Conn<S>, body: &mut Body, limit: Duration) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut reader = DotReader::new();
    loop {
        if conn.buffered().is_empty() {
            conn.fill(limit).await?;
        }
        let (consumed, ended) = reader.feed(conn.buffered());
        conn.consume(consumed);
        if reader.take_false_end() {
            body.reject_bare_line_ending().await;
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
    limit: Duration,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut receiver = BdatReceiver::new(size, false);
    let mut chunk = Vec::new();
    let mut done = size == 0;
    while !done {
        if conn.buffered().is_empty() {
            conn.fill(limit).await?;
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
