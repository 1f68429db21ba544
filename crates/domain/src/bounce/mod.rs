//! Bounces: when a delivery fails for good, the original sender is told once, with a
//! delivery status notification (RFC 3464) from the null sender.
//!
//! The notification is an email like any other: it goes through [`Ingest`], so it is
//! durable before anything else happens and is delivered with retries. Its recipient
//! is the sender's SRS address, so it takes the same path back as a bounce from the
//! destination would: the recipient policy verifies it, and the evaluator sends it on
//! to the address it reverses to. No notification goes anywhere else, none answers the
//! null sender, and none answers a bounce (ADR 0020).

mod dsn;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use thiserror::Error;

use crate::email::{Client, EmailId, EmailStore, Encoding, ReceivedEmail, StoreError};
use crate::ingest::{Ingest, IngestError, Origin};
use crate::own_addresses::OwnAddresses;

pub use dsn::{Failure, Report};

/// Why no notification was sent although one was due.
#[derive(Debug, Error)]
pub enum BounceError {
    /// The failed email's header section could not be read.
    #[error("cannot read the failed email: {0}")]
    Read(#[from] StoreError),
    /// The notification was not accepted for delivery.
    #[error("the notification was not accepted: {0}")]
    Ingest(#[from] IngestError),
}

/// What [`Bouncer::bounce`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounced {
    /// A notification was accepted for delivery, as this email.
    Sent(EmailId),
    /// None is due, for this reason.
    NotDue(&'static str),
}

/// Makes and sends delivery status notifications.
#[derive(Clone)]
pub struct Bouncer {
    ingest: Ingest,
    emails: Arc<dyn EmailStore>,
    own: Arc<OwnAddresses>,
    /// The most header octets of the failed email attached.
    max_headers: usize,
}

impl Bouncer {
    /// A bouncer that stores notifications through `ingest`, reads failed emails from
    /// `emails`, and attaches at most `max_headers` octets of their header section.
    #[must_use]
    pub fn new(
        ingest: Ingest,
        emails: Arc<dyn EmailStore>,
        own: Arc<OwnAddresses>,
        max_headers: usize,
    ) -> Self {
        Bouncer {
            ingest,
            emails,
            own,
            max_headers,
        }
    }

    /// Tells `email`'s original sender that its deliveries to `failures` failed for
    /// good: one notification for all of them.
    ///
    /// # Errors
    /// [`BounceError`] if a notification was due and could not be stored.
    pub async fn bounce(
        &self,
        email: &ReceivedEmail,
        failures: &[Failure],
        now: SystemTime,
    ) -> Result<Bounced, BounceError> {
        let envelope = &email.email.envelope;
        let Some(sender) = &envelope.sender else {
            return Ok(Bounced::NotDue("the email had the null sender"));
        };
        if failures.is_empty() {
            return Ok(Bounced::NotDue("nothing failed"));
        }
        if self.own.is_bounce(&envelope.recipients) {
            return Ok(Bounced::NotDue("the email was itself a bounce"));
        }
        let Some(bounce_path) = self
            .own
            .srs()
            .forward(Some(sender), now)
            .filter(|address| self.own.is_srs_address(address))
        else {
            return Ok(Bounced::NotDue(
                "the sender's address cannot be put in an SRS address",
            ));
        };
        let headers = self.header_section(&email.id).await?;
        let report = Report {
            hostname: self.own.hostname().as_str(),
            to: sender,
            email,
            failures,
            headers: &headers,
            now,
        };
        let global = report.is_global();
        let message = report.to_message();
        let origin = Origin {
            peer: None,
            helo: Some(self.own.hostname().to_string()),
            tls: false,
            declared: Encoding {
                eight_bit: global,
                smtputf8: global,
                utf8_headers: false,
            },
            client: Client::Internal,
        };
        let mut transaction = self.ingest.begin(None, origin).await?;
        transaction.add_recipient(&bounce_path).await?;
        let addressed = transaction
            .addressed()
            .map_err(|_| IngestError::UnknownRecipient(bounce_path.clone()))?;
        let mut incoming = addressed
            .start_body()
            .await
            .map_err(|not_started| not_started.error)?;
        if let Err(error) = incoming.write(&message).await {
            incoming.abort().await;
            return Err(error.into());
        }
        let received = incoming.commit().await?;
        Ok(Bounced::Sent(received.id))
    }

    /// The header section of email `id` (without the empty line that ends it), at
    /// most `max_headers` octets, cut at a line end.
    async fn header_section(&self, id: &EmailId) -> Result<Vec<u8>, StoreError> {
        let mut body = self.emails.open_body(id).await?;
        let mut read = BytesMut::new();
        while let Some(chunk) = body.next_chunk().await? {
            // Only the new bytes (and the three before them) can complete the end.
            let from = read.len().saturating_sub(3);
            read.extend_from_slice(&chunk);
            if let Some(end) = find(&read[from..], b"\r\n\r\n") {
                read.truncate(from + end + 2);
                break;
            }
            if read.len() > self.max_headers {
                break;
            }
        }
        read.truncate(self.max_headers);
        if read.starts_with(b"\r\n") {
            // No header section at all.
            return Ok(Vec::new());
        }
        let end = find_last(&read, b"\r\n").map_or(0, |at| at + 2);
        read.truncate(end);
        Ok(read.to_vec())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}

#[cfg(test)]
mod tests;
