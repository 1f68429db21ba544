//! Ingest: the one way an email gets in, whether it arrives over SMTP or gRPC.
//!
//! [`Ingest::begin`] opens a [`Transaction`]; [`Transaction::add_recipient`] is the one
//! recipient policy (relay refusals, rules, the recipient limit, duplicates merged);
//! only a transaction with an accepted recipient becomes [`Addressed`], and only that
//! can start a body; the body streams through the [`MessagePolicy`] into the
//! [`EmailStore`]; [`Incoming::commit`] builds the record from what was accepted and
//! makes the email durable. Adapters translate their protocol into these calls and
//! [`IngestError`] into their replies, and decide nothing else.
//!
//! [`MessagePolicy`]: crate::message::MessagePolicy

mod transaction;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::address::EmailAddress;
use crate::email::{EmailStore, ReceivedEmail, Shedding, StoreError, retry_after_secs};
use crate::message::{MessageError, MessagePolicy};
use crate::own_addresses::OwnAddresses;
use crate::rule_store::{RuleError, RuleStore};

pub use transaction::{Addressed, BodyNotStarted, Incoming, Origin, RecipientAdded, Transaction};

/// Limits on what one email may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLimits {
    /// Most recipients of one email.
    pub max_recipients: usize,
    /// The rules for the message bytes, the size limit among them.
    pub message: MessagePolicy,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_recipients: 100,
            message: MessagePolicy::default(),
        }
    }
}

/// Why an email, or one of its recipients, was not accepted. Each inbound adapter maps
/// these to its own replies (SMTP codes, gRPC statuses) in one table.
#[derive(Debug, Error)]
pub enum IngestError {
    /// No rule matches the recipient: mailfwd is not its destination and never relays.
    #[error("no forwarding rule for <{0}>")]
    UnknownRecipient(EmailAddress),
    /// The recipient is an SRS address of ours that does not verify: forged, altered,
    /// malformed or expired. Bounces are accepted only for addresses mailfwd made.
    #[error("{0}")]
    BadSrsAddress(#[source] crate::srs::SrsError),
    /// The recipient asks mailfwd to pass the mail on to another host (percent hack,
    /// bang path, quoted `@`, or an SMTP source route), which it never does.
    #[error("relaying denied: <{0}> names another host")]
    RelayDenied(String),
    /// The email already has the most recipients allowed.
    #[error("too many recipients; at most {0} per message")]
    TooManyRecipients(usize),
    /// The message has no bytes at all.
    #[error("the message is empty")]
    EmptyMessage,
    /// The message bytes break the message policy.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The email store asks callers to slow down, and to retry after the delay.
    #[error("the email store is busy; try again in {} s", retry_after_secs(*retry_after))]
    Overloaded {
        /// How long until the store expects to take the email.
        retry_after: Duration,
    },
    /// The email store refuses new mail for now (load shedding).
    #[error("the email store refuses new mail for now: {0}")]
    InsufficientStorage(Shedding),
    /// Storage of rules or emails failed; the email was not accepted.
    #[error("storage is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for IngestError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Overloaded { retry_after } => IngestError::Overloaded { retry_after },
            StoreError::InsufficientStorage(why) => IngestError::InsufficientStorage(why),
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

/// The ingest service. Cheap to clone: every transaction holds one.
#[derive(Clone)]
pub struct Ingest(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    rules: Arc<dyn RuleStore>,
    emails: Arc<dyn EmailStore>,
    limits: IngestLimits,
    listener: Option<Arc<dyn AcceptedListener>>,
    /// SRS bounce addresses and postmaster; without them, only rules accept mail.
    own: Option<Arc<OwnAddresses>>,
}

impl Ingest {
    /// An ingest service on these stores with these limits.
    #[must_use]
    pub fn new(
        rules: Arc<dyn RuleStore>,
        emails: Arc<dyn EmailStore>,
        limits: IngestLimits,
    ) -> Self {
        Ingest(Arc::new(Inner {
            rules,
            emails,
            limits,
            listener: None,
            own: None,
        }))
    }

    /// The same service, also accepting mail for mailfwd's own addresses: bounces to
    /// SRS addresses whose hash verifies, and postmaster.
    #[must_use]
    pub fn with_own_addresses(self, own: Arc<OwnAddresses>) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.own = Some(own);
        Ingest(Arc::new(inner))
    }

    /// The address `RCPT TO:<postmaster>` (without a domain) stands for, when mailfwd
    /// answers for postmaster.
    #[must_use]
    pub fn bare_postmaster(&self) -> Option<EmailAddress> {
        self.0.own.as_ref().map(|own| own.bare_postmaster())
    }

    /// The same service, telling `listener` about every accepted email.
    #[must_use]
    pub fn with_listener(self, listener: Arc<dyn AcceptedListener>) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.listener = Some(listener);
        Ingest(Arc::new(inner))
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> &IngestLimits {
        &self.0.limits
    }

    /// Opens a mail transaction from `sender` (`None`: the null reverse path), sent by
    /// the client described in `origin`, once the email store admits a new email from
    /// that client (see [`EmailStore::admit`]): every way in passes the store's limits,
    /// since no transaction exists without them.
    ///
    /// # Errors
    /// [`IngestError::Overloaded`] or [`IngestError::InsufficientStorage`] when the
    /// store refuses new mail from this client for now.
    pub async fn begin(
        &self,
        sender: Option<EmailAddress>,
        origin: Origin,
    ) -> Result<Transaction, IngestError> {
        self.0.emails.admit(&origin.client).await?;
        Ok(Transaction::new(self.clone(), sender, origin))
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "own_address_tests.rs"]
mod own_address_tests;
