//! One row of the `emails` table, and its conversion to and from a [`ReceivedEmail`].

use std::time::{Duration, SystemTime};

use mailfwd_domain::email::StoreError;
use mailfwd_domain::{EmailAddress, EmailId, Encoding, Envelope, NewEmail, ReceivedEmail};
use thiserror::Error;

/// An email whose record cannot be stored or read back.
#[derive(Debug, Error)]
#[error("the record of email {id} {problem}")]
struct BadRecord {
    id: String,
    problem: String,
}

fn bad(id: impl ToString, problem: impl ToString) -> StoreError {
    StoreError::storage(BadRecord {
        id: id.to_string(),
        problem: problem.to_string(),
    })
}

/// The columns of `emails`, in table order.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct EmailRow {
    pub(super) id: String,
    pub(super) received_at: i64,
    pub(super) sender: Option<String>,
    pub(super) recipients: String,
    pub(super) size: i64,
    pub(super) peer: Option<String>,
    pub(super) helo: Option<String>,
    pub(super) tls: bool,
    pub(super) encoding: i64,
}

/// The column list that every `SELECT` of [`EmailRow`] uses.
pub(super) const COLUMNS: &str =
    "id, received_at, sender, recipients, size, peer, helo, tls, encoding";

/// The bits of the `encoding` column.
const EIGHT_BIT: i64 = 1;
const SMTPUTF8: i64 = 2;
const UTF8_HEADERS: i64 = 4;

fn encoding_bits(encoding: Encoding) -> i64 {
    [
        (encoding.eight_bit, EIGHT_BIT),
        (encoding.smtputf8, SMTPUTF8),
        (encoding.utf8_headers, UTF8_HEADERS),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .fold(0, |bits, (_, bit)| bits | bit)
}

fn encoding_from_bits(bits: i64) -> Encoding {
    Encoding {
        eight_bit: bits & EIGHT_BIT != 0,
        smtputf8: bits & SMTPUTF8 != 0,
        utf8_headers: bits & UTF8_HEADERS != 0,
    }
}

/// Milliseconds since the Unix epoch, negative before it.
pub(super) fn unix_millis(time: SystemTime) -> i64 {
    let clamp = |ms: u128| i64::try_from(ms).unwrap_or(i64::MAX);
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => clamp(after.as_millis()),
        Err(before) => -clamp(before.duration().as_millis()),
    }
}

pub(super) fn from_unix_millis(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + offset
    } else {
        SystemTime::UNIX_EPOCH - offset
    }
}

impl EmailRow {
    /// The row for `email`.
    ///
    /// # Errors
    /// [`StoreError::Storage`] for a size SQLite's signed integers cannot hold.
    pub(super) fn from_email(email: &ReceivedEmail) -> Result<Self, StoreError> {
        let size = i64::try_from(email.size).map_err(|_| {
            bad(
                email.id,
                format!("has a size ({}) too large to store", email.size),
            )
        })?;
        let envelope = &email.email.envelope;
        Ok(EmailRow {
            id: email.id.to_string(),
            received_at: unix_millis(email.received_at),
            sender: envelope.sender.as_ref().map(ToString::to_string),
            // Addresses cannot contain control characters, so a newline separates them.
            recipients: envelope
                .recipients
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            size,
            peer: email.email.peer.clone(),
            helo: email.email.helo.clone(),
            tls: email.email.tls,
            encoding: encoding_bits(email.email.encoding),
        })
    }

    /// The email this row records.
    ///
    /// # Errors
    /// [`StoreError::Storage`] for a row that no longer parses (edited by hand).
    pub(super) fn into_email(self) -> Result<ReceivedEmail, StoreError> {
        let id = EmailId::parse(&self.id).map_err(|e| bad(&self.id, e))?;
        let address = |text: &str| {
            EmailAddress::parse(text)
                .map_err(|e| bad(&self.id, format!("has address '{text}': {e}")))
        };
        let sender = self.sender.as_deref().map(address).transpose()?;
        let recipients = self
            .recipients
            .lines()
            .map(address)
            .collect::<Result<Vec<_>, _>>()?;
        let size = u64::try_from(self.size)
            .map_err(|_| bad(&self.id, format!("has a negative size ({})", self.size)))?;
        Ok(ReceivedEmail {
            id,
            email: NewEmail {
                envelope: Envelope { sender, recipients },
                peer: self.peer,
                helo: self.helo,
                tls: self.tls,
                encoding: encoding_from_bits(self.encoding),
            },
            size,
            received_at: from_unix_millis(self.received_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_round_trips() {
        for bits in 0..8 {
            assert_eq!(encoding_bits(encoding_from_bits(bits)), bits);
        }
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        for ms in [0, 1, 1_730_000_000_123, -86_400_001] {
            assert_eq!(unix_millis(from_unix_millis(ms)), ms);
        }
    }
}
