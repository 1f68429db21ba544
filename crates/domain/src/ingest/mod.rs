//! Ingest: the one way an email gets in, whether it arrives over SMTP or gRPC.
//!
//! It decides which recipients are ours, enforces the message limits while the body
//! streams in, and hands the body to the [`EmailStore`]; an email is accepted only
//! when the store has made it durable.

mod headers;

use std::sync::Arc;

use thiserror::Error;

use crate::address::EmailAddress;
use crate::email::{EmailId, EmailStore, EmailWriter, NewEmail, ReceivedEmail, StoreError};
use crate::rule_store::{RuleError, RuleStore};
use headers::ReceivedCounter;

/// Limits on what one email may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest body in octets.
    pub max_message_size: u64,
    /// Most recipients of one email.
    pub max_recipients: usize,
    /// Most `Received:` headers before the email is taken for a mail loop.
    pub max_received_headers: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_received_headers: 50,
        }
    }
}

/// Why an email, or one of its recipients, was not accepted. Each inbound adapter maps
/// these to its own replies (SMTP codes, gRPC statuses).
#[derive(Debug, Error)]
pub enum IngestError {
    /// No rule matches the recipient: mailfwd is not its destination and never relays.
    #[error("no forwarding rule for <{0}>")]
    UnknownRecipient(EmailAddress),
    /// The email already has the most recipients allowed.
    #[error("too many recipients; at most {0} per message")]
    TooManyRecipients(usize),
    /// The body is larger than allowed.
    #[error("the message exceeds the size limit of {0} octets")]
    TooLarge(u64),
    /// More `Received:` headers than allowed: the email is going round in circles.
    #[error("mail loop: the message has more than {0} Received headers")]
    MailLoop(usize),
    /// The email store asks callers to slow down.
    #[error("the email store is busy; try again later")]
    Overloaded,
    /// Storage of rules or emails failed; the email was not accepted.
    #[error("storage is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for IngestError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Overloaded => IngestError::Overloaded,
            other => IngestError::Unavailable(Box::new(other)),
        }
    }
}

impl From<RuleError> for IngestError {
    fn from(error: RuleError) -> Self {
        IngestError::Unavailable(Box::new(error))
    }
}

/// Told about every email the moment it is accepted (after it is durable), so that
/// forwarding can start at once. Must not block: hand the email to a task and return.
pub trait AcceptedListener: Send + Sync {
    /// `email` was just accepted.
    fn accepted(&self, email: &ReceivedEmail);
}

/// The ingest service.
#[derive(Clone)]
pub struct Ingest {
    rules: Arc<dyn RuleStore>,
    emails: Arc<dyn EmailStore>,
    limits: IngestLimits,
    listener: Option<Arc<dyn AcceptedListener>>,
}

impl Ingest {
    /// An ingest service on these stores with these limits.
    #[must_use]
    pub fn new(
        rules: Arc<dyn RuleStore>,
        emails: Arc<dyn EmailStore>,
        limits: IngestLimits,
    ) -> Self {
        Ingest {
            rules,
            emails,
            limits,
            listener: None,
        }
    }

    /// The same service, telling `listener` about every accepted email.
    #[must_use]
    pub fn with_listener(mut self, listener: Arc<dyn AcceptedListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// Decides whether `recipient` may be added to an email that has `accepted` already.
    ///
    /// # Errors
    /// [`IngestError::TooManyRecipients`], [`IngestError::UnknownRecipient`], or
    /// [`IngestError::Unavailable`] if the rules cannot be read.
    pub async fn check_recipient(
        &self,
        recipient: &EmailAddress,
        accepted: usize,
    ) -> Result<(), IngestError> {
        if accepted >= self.limits.max_recipients {
            return Err(IngestError::TooManyRecipients(self.limits.max_recipients));
        }
        match self.rules.resolve(recipient).await? {
            Some(_) => Ok(()),
            None => Err(IngestError::UnknownRecipient(recipient.clone())),
        }
    }

    /// Starts receiving a body.
    ///
    /// # Errors
    /// [`IngestError::Overloaded`] or [`IngestError::Unavailable`].
    pub async fn begin(&self) -> Result<Incoming, IngestError> {
        let writer = self.emails.begin().await?;
        Ok(Incoming {
            writer,
            listener: self.listener.clone(),
            size: 0,
            limit: self.limits.max_message_size,
            received: ReceivedCounter::new(self.limits.max_received_headers),
        })
    }
}

/// A body being received. Dropping it without [`Incoming::commit`] keeps nothing, but
/// [`Incoming::abort`] cleans up sooner.
pub struct Incoming {
    writer: Box<dyn EmailWriter>,
    listener: Option<Arc<dyn AcceptedListener>>,
    size: u64,
    limit: u64,
    received: ReceivedCounter,
}

impl Incoming {
    /// The id the email gets if it is committed.
    #[must_use]
    pub fn id(&self) -> EmailId {
        self.writer.id()
    }

    /// Appends a chunk of the body. After an error, the caller aborts: for
    /// [`IngestError::TooLarge`] it reads the rest of the input and throws it away.
    ///
    /// # Errors
    /// [`IngestError::TooLarge`], [`IngestError::MailLoop`] or [`IngestError::Unavailable`].
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(IngestError::TooLarge(self.limit));
        }
        self.received.scan(chunk)?;
        self.writer.write(chunk).await?;
        Ok(())
    }

    /// Makes the email durable and returns its record: only now is it accepted.
    ///
    /// # Errors
    /// [`IngestError::Unavailable`]; the email was then not accepted.
    pub async fn commit(self, email: NewEmail) -> Result<ReceivedEmail, IngestError> {
        let received = self.writer.commit(email).await?;
        if let Some(listener) = &self.listener {
            listener.accepted(&received);
        }
        Ok(received)
    }

    /// Throws the partial email away.
    pub async fn abort(self) {
        self.writer.abort().await;
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
