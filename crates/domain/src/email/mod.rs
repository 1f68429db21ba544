//! Received emails: their ids, envelopes and metadata, and the ports that own them.

mod admission;
mod chunked;
mod ports;
mod split;
mod sweep;

use std::fmt;
use std::time::{Duration, SystemTime};

use thiserror::Error;

use crate::address::EmailAddress;

pub use admission::{
    Client, DEFAULT_IPV6_CLIENT_PREFIX, SHEDDING_RETRY_AFTER_SECS, Shedding, client_network,
    retry_after_secs,
};
pub use chunked::{ChunkSink, ChunkSource, ChunkedReader, ChunkedWriter};
pub use ports::{BodyReader, BodyStore, BodyWriter, EmailLog, EmailStore, EmailWriter};
pub use split::SplitEmailStore;
pub use sweep::SweepReport;

/// The id of a received email: a UUIDv7, so ids sort by the time they were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailId(uuid::Uuid);

impl EmailId {
    /// A new id for an email received now.
    #[must_use]
    pub fn new() -> Self {
        EmailId(uuid::Uuid::now_v7())
    }

    /// Parses the hyphenated form that [`fmt::Display`] writes.
    ///
    /// # Errors
    /// [`InvalidEmailId`] if `input` is not a UUID.
    pub fn parse(input: &str) -> Result<Self, InvalidEmailId> {
        uuid::Uuid::try_parse(input)
            .map(EmailId)
            .map_err(|_| InvalidEmailId(input.chars().take(64).collect()))
    }
}

impl EmailId {
    /// When the id was made, from its UUIDv7 timestamp (millisecond precision); the
    /// Unix epoch for an id that carries no timestamp.
    #[must_use]
    pub fn created_at(&self) -> SystemTime {
        self.0
            .get_timestamp()
            .map_or(SystemTime::UNIX_EPOCH, |timestamp| {
                let (secs, nanos) = timestamp.to_unix();
                SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, nanos)
            })
    }
}

impl Default for EmailId {
    fn default() -> Self {
        EmailId::new()
    }
}

impl fmt::Display for EmailId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A string that is not an email id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("'{0}' is not an email id (a UUID such as 0192e4c2-7b1a-7cde-8f00-112233445566)")]
pub struct InvalidEmailId(String);

/// The SMTP envelope: who sent it (the reverse path, null for bounces) and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM`; `None` for the null reverse path `<>`.
    pub sender: Option<EmailAddress>,
    /// `RCPT TO` addresses that were accepted, in order.
    pub recipients: Vec<EmailAddress>,
}

/// How a message is encoded, from what the client declared at `MAIL FROM` and what its
/// data holds; the next hop is told the same (RFC 6152, RFC 6531).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encoding {
    /// `BODY=8BITMIME` was declared, or the data holds octets over 127.
    pub eight_bit: bool,
    /// `SMTPUTF8` was declared, or an envelope address is not ASCII.
    pub smtputf8: bool,
    /// The header section holds octets over 127 (UTF-8 header fields, RFC 6532). With
    /// `smtputf8`, such a message cannot go to a next hop that lacks SMTPUTF8.
    pub utf8_headers: bool,
}

/// What the receiving side knows about an email besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmail {
    /// The envelope.
    pub envelope: Envelope,
    /// The client's address, `ip:port`, when known.
    pub peer: Option<String>,
    /// The name the client gave in HELO/EHLO, when it gave one.
    pub helo: Option<String>,
    /// Whether the body arrived over TLS.
    pub tls: bool,
    /// 8-bit data and SMTPUTF8, to pass on.
    pub encoding: Encoding,
}

/// The record of one accepted email: the received log is a list of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEmail {
    /// The id, also the key of the body.
    pub id: EmailId,
    /// The envelope, peer, HELO name and TLS flag.
    pub email: NewEmail,
    /// Size of the body in octets, as stored.
    pub size: u64,
    /// When it was accepted (made durable).
    pub received_at: SystemTime,
}

/// Figures about the emails accepted but not yet run through the forward evaluator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnevaluatedStats {
    /// How many there are.
    pub count: u64,
    /// When the oldest of them was received; `None` when there are none.
    pub oldest_received_at: Option<SystemTime>,
}

/// Which received emails to list: a time window, in id order, a page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailQuery {
    /// Received at or after this time.
    pub since: Option<SystemTime>,
    /// Received before this time.
    pub until: Option<SystemTime>,
    /// At most this many (stores use at least 1).
    pub limit: usize,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

/// One page of the received log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailPage {
    /// The emails, oldest id first.
    pub emails: Vec<ReceivedEmail>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

impl EmailPage {
    /// One page from up to `limit + 1` records in id order, as a store fetches them: the
    /// extra record, if any, only tells that another page follows.
    #[must_use]
    pub fn from_overfetch(mut emails: Vec<ReceivedEmail>, limit: usize) -> Self {
        let next_cursor = (emails.len() > limit)
            .then(|| {
                emails.truncate(limit);
                emails.last().map(|email| email_cursor(&email.id))
            })
            .flatten();
        EmailPage {
            emails,
            next_cursor,
        }
    }
}

/// What can go wrong storing or reading emails.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No email with this id.
    #[error("no email with id {0}")]
    NotFound(EmailId),
    /// The store asks callers to slow down: a rate limit is reached.
    #[error("the email store is busy; try again in {} s", retry_after_secs(*retry_after))]
    Overloaded {
        /// How long until the store expects to take the email.
        retry_after: Duration,
    },
    /// The store refuses new mail for now (load shedding); it recovers by itself.
    #[error("the email store refuses new mail for now: {0}")]
    InsufficientStorage(Shedding),
    /// A list cursor this store did not hand out.
    #[error("the cursor is not one this server handed out")]
    InvalidCursor,
    /// Anything unexpected.
    #[error("email storage failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps an unexpected storage error.
    pub fn storage(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Storage(Box::new(error))
    }
}

/// The current time at millisecond precision, the precision every email log keeps.
#[must_use]
pub fn now_millis() -> SystemTime {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let millis = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(millis)
}

/// The cursor of a page that ended with `last`.
#[must_use]
pub fn email_cursor(last: &EmailId) -> String {
    last.to_string()
}

/// The id a cursor points after.
///
/// # Errors
/// [`StoreError::InvalidCursor`] for a string that is not a cursor.
pub fn parse_email_cursor(cursor: &str) -> Result<EmailId, StoreError> {
    EmailId::parse(cursor).map_err(|_| StoreError::InvalidCursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_and_round_trip() {
        let first = EmailId::new();
        let second = EmailId::new();
        assert!(first < second);
        assert!(first.to_string() < second.to_string());
        assert_eq!(EmailId::parse(&first.to_string()), Ok(first));
        assert!(
            EmailId::parse("nope")
                .unwrap_err()
                .to_string()
                .contains("'nope' is not an email id")
        );
    }
}
