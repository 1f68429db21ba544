//! One mail transaction: the envelope, then the body, then the commit.

use std::sync::Arc;
use std::time::SystemTime;

use super::{AcceptedListener, Ingest, IngestError};
use crate::address::EmailAddress;
use crate::email::{Client, EmailId, EmailWriter, Encoding, Envelope, NewEmail, ReceivedEmail};
use crate::message::MessageFilter;
use crate::own_addresses::OwnAddresses;
use crate::rule_store::has_rules_for;

/// Who handed the email over, as recorded with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address, `ip:port`, when known.
    pub peer: Option<String>,
    /// The name the client gave in HELO/EHLO, when it gave one.
    pub helo: Option<String>,
    /// Whether the email arrives over TLS.
    pub tls: bool,
    /// What the client declared at `MAIL FROM`: `BODY=8BITMIME` as `eight_bit`,
    /// `SMTPUTF8` as `smtputf8` (the data and the envelope decide the rest).
    pub declared: Encoding,
    /// Who the email store's per-client limits count this email against; the default,
    /// [`Client::Internal`], is mailfwd itself.
    pub client: Client,
}

/// What [`Transaction::add_recipient`] did with an acceptable recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientAdded {
    /// The recipient is now in the envelope.
    Accepted,
    /// The envelope already holds it (same match key); it is not added or counted twice.
    Duplicate,
}

/// A mail transaction collecting its recipients. Nothing is stored yet.
pub struct Transaction {
    ingest: Ingest,
    sender: Option<EmailAddress>,
    /// Boxed so that a transaction given back in a `Result` stays small.
    origin: Box<Origin>,
    recipients: Vec<EmailAddress>,
}

impl Transaction {
    pub(super) fn new(ingest: Ingest, sender: Option<EmailAddress>, origin: Origin) -> Self {
        Transaction {
            ingest,
            sender,
            origin: Box::new(origin),
            recipients: Vec::new(),
        }
    }

    /// The sender; `None` for the null reverse path.
    #[must_use]
    pub fn sender(&self) -> Option<&EmailAddress> {
        self.sender.as_ref()
    }

    /// The recipients accepted so far, in the order they were first given.
    #[must_use]
    pub fn recipients(&self) -> &[EmailAddress] {
        &self.recipients
    }

    /// The recipient policy: decides whether `recipient` is one of ours and adds it.
    ///
    /// # Errors
    /// [`IngestError::RelayDenied`] when the local part names another host,
    /// [`IngestError::TooManyRecipients`], [`IngestError::UnknownRecipient`] when no
    /// rule matches, or [`IngestError::Unavailable`] if the rules cannot be read. The
    /// transaction is unchanged by a refusal.
    pub async fn add_recipient(
        &mut self,
        recipient: &EmailAddress,
    ) -> Result<RecipientAdded, IngestError> {
        if asks_to_relay(recipient) {
            return Err(IngestError::RelayDenied(recipient.to_string()));
        }
        let key = recipient.match_key();
        if self.recipients.iter().any(|known| known.match_key() == key) {
            return Ok(RecipientAdded::Duplicate);
        }
        let max = self.ingest.0.limits.max_recipients;
        if self.recipients.len() >= max {
            return Err(IngestError::TooManyRecipients(max));
        }
        if self.is_ours(recipient).await? {
            self.recipients.push(recipient.clone());
            Ok(RecipientAdded::Accepted)
        } else {
            Err(IngestError::UnknownRecipient(recipient.clone()))
        }
    }

    /// Whether mail for `recipient` is ours to take: a bounce to an SRS address that
    /// verifies (checked first: a catch-all of the SRS domain must not take bounces
    /// whose hash is wrong), an address a rule matches, or a postmaster of a domain we
    /// receive for (RFC 5321 §4.5.1).
    async fn is_ours(&self, recipient: &EmailAddress) -> Result<bool, IngestError> {
        let inner = &self.ingest.0;
        let own = inner.own.as_deref();
        if let Some(own) = own.filter(|own| own.is_srs_address(recipient)) {
            own.bounce_to(recipient, SystemTime::now())
                .map_err(IngestError::BadSrsAddress)?;
            return Ok(true);
        }
        if inner.rules.resolve(recipient).await?.is_some() {
            return Ok(true);
        }
        match own {
            Some(own) if OwnAddresses::is_postmaster(recipient) => Ok(own
                .is_own_domain(recipient.domain())
                || has_rules_for(inner.rules.as_ref(), recipient.domain()).await?),
            _ => Ok(false),
        }
    }

    /// The transaction, ready for its body if at least one recipient was accepted;
    /// otherwise given back unchanged.
    ///
    /// # Errors
    /// The transaction itself when it has no recipient.
    pub fn addressed(self) -> Result<Addressed, Transaction> {
        if self.recipients.is_empty() {
            Err(self)
        } else {
            Ok(Addressed(self))
        }
    }
}

/// Whether a recipient's local part names another host: `user%host@ours` (the percent
/// hack), `host!user@ours` (a bang path) or `"user@host"@ours`. Each asks the receiving
/// system to relay, which mailfwd never does.
fn asks_to_relay(recipient: &EmailAddress) -> bool {
    recipient.local_part().contains(['%', '!', '@'])
}

/// A transaction with at least one accepted recipient: the only thing a body can be
/// started from.
pub struct Addressed(Transaction);

impl Addressed {
    /// The accepted recipients; never empty.
    #[must_use]
    pub fn recipients(&self) -> &[EmailAddress] {
        &self.0.recipients
    }

    /// Back to collecting recipients.
    #[must_use]
    pub fn into_transaction(self) -> Transaction {
        self.0
    }

    /// Starts receiving the body. The envelope is fixed from now on.
    ///
    /// # Errors
    /// [`BodyNotStarted`] with [`IngestError::Overloaded`],
    /// [`IngestError::InsufficientStorage`] or [`IngestError::Unavailable`], giving the
    /// transaction back.
    pub async fn start_body(self) -> Result<Incoming, BodyNotStarted> {
        let ingest = &self.0.ingest.0;
        let writer = match ingest.emails.begin_for(&self.0.origin.client).await {
            Ok(writer) => writer,
            Err(error) => {
                return Err(BodyNotStarted {
                    error: error.into(),
                    transaction: self,
                });
            }
        };
        let filter = MessageFilter::new(&ingest.limits.message);
        let listener = ingest.listener.clone();
        let Transaction {
            sender,
            origin,
            recipients,
            ..
        } = self.0;
        let not_ascii = |address: &EmailAddress| !address.local_part().is_ascii();
        let encoding = Encoding {
            eight_bit: origin.declared.eight_bit,
            smtputf8: origin.declared.smtputf8
                || sender.as_ref().is_some_and(not_ascii)
                || recipients.iter().any(not_ascii),
            utf8_headers: false,
        };
        Ok(Incoming {
            writer,
            filter,
            listener,
            email: NewEmail {
                envelope: Envelope { sender, recipients },
                peer: origin.peer,
                helo: origin.helo,
                tls: origin.tls,
                encoding,
            },
        })
    }
}

/// Why a body could not be started, and the transaction to try again with.
pub struct BodyNotStarted {
    /// What the email store said.
    pub error: IngestError,
    /// The transaction, unchanged.
    pub transaction: Addressed,
}

/// A body being received. Dropping it without [`Incoming::commit`] keeps nothing, but
/// [`Incoming::abort`] cleans up sooner.
pub struct Incoming {
    writer: Box<dyn EmailWriter>,
    filter: MessageFilter,
    listener: Option<Arc<dyn AcceptedListener>>,
    email: NewEmail,
}

impl Incoming {
    /// The id the email gets if it is committed.
    #[must_use]
    pub fn id(&self) -> EmailId {
        self.writer.id()
    }

    /// The record the email gets if it is committed.
    #[must_use]
    pub fn email(&self) -> &NewEmail {
        &self.email
    }

    /// Checks the next chunk of the body against the message policy and stores it.
    /// After an error the email is refused: the caller aborts it (and, for a protocol
    /// that must, reads the rest of the input and throws it away). The store may refuse
    /// a chunk when its byte rate is reached ([`IngestError::Overloaded`]).
    ///
    /// # Errors
    /// [`IngestError::Message`] for a policy refusal, [`IngestError::Overloaded`] or
    /// [`IngestError::Unavailable`].
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        let stored = self.filter.filter(chunk)?;
        self.writer.write(&stored).await?;
        Ok(())
    }

    /// The refusal for a bare CR that the adapter's framing consumed before it reached
    /// [`Incoming::write`] (SMTP's CRLF "." CR CR LF, which does not end DATA): the
    /// same as one in the data. The caller aborts the email.
    #[must_use]
    pub fn bare_cr_in_framing(&self) -> IngestError {
        self.filter.bare_cr_in_framing().into()
    }

    /// Checks the end of the body, makes the email durable and returns its record:
    /// only now is it accepted. On an error nothing is kept.
    ///
    /// # Errors
    /// [`IngestError::EmptyMessage`], [`IngestError::Message`] (the body ended on a
    /// bare CR), or [`IngestError::Unavailable`].
    pub async fn commit(mut self) -> Result<ReceivedEmail, IngestError> {
        let verdict = if self.filter.size() == 0 {
            Err(IngestError::EmptyMessage)
        } else {
            self.filter.finish().map_err(IngestError::from)
        };
        if let Err(error) = verdict {
            self.writer.abort().await;
            return Err(error);
        }
        let seen = self.filter.content();
        self.email.encoding.eight_bit |= seen.eight_bit;
        self.email.encoding.utf8_headers = seen.eight_bit_headers;
        let received = self.writer.commit(self.email).await?;
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
