//! One row of the `emails` table, and its conversion to and from a [`ReceivedEmail`].

use mailfwd_domain::email::StoreError;
use mailfwd_domain::{EmailAddress, EmailId, Encoding, Envelope, NewEmail, ReceivedEmail};
use thiserror::Error;

use crate::millis::{from_unix_millis, unix_millis};

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

/// The columns of `emails` that make a record.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct EmailRow {
    pub(super) id: String,
    received_at: i64,
    sender: Option<String>,
    recipients: Vec<String>,
    size: i64,
    peer: Option<String>,
    helo: Option<String>,
    tls: bool,
    eight_bit: bool,
    smtputf8: bool,
    utf8_headers: bool,
}

/// The select list that every query of [`EmailRow`] uses. The id is read as text:
/// the workspace's sqlx has no `uuid` feature, and [`EmailId::parse`] reads the text.
/// Order by `emails.id`, never a bare `id`: that names this text alias, and sorting by
/// it cannot follow the uuid index, so every page would sort all matching rows.
pub(super) const COLUMNS: &str = "id::text AS id, received_at, sender, recipients, size, peer, \
     helo, tls, eight_bit, smtputf8, utf8_headers";

/// Records an email, replacing an earlier record of the same id (a retried commit).
/// The evaluation flag is left as it was: a replaced record was already accounted for.
pub(super) const INSERT: &str = "INSERT INTO emails (id, received_at, sender, recipients, size, \
     peer, helo, tls, eight_bit, smtputf8, utf8_headers)
     VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (id) DO UPDATE SET received_at = excluded.received_at,
         sender = excluded.sender, recipients = excluded.recipients, size = excluded.size,
         peer = excluded.peer, helo = excluded.helo, tls = excluded.tls,
         eight_bit = excluded.eight_bit, smtputf8 = excluded.smtputf8,
         utf8_headers = excluded.utf8_headers";

impl EmailRow {
    /// [`INSERT`] with this row's values bound.
    pub(super) fn insert(
        self,
    ) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(INSERT)
            .bind(self.id)
            .bind(self.received_at)
            .bind(self.sender)
            .bind(self.recipients)
            .bind(self.size)
            .bind(self.peer)
            .bind(self.helo)
            .bind(self.tls)
            .bind(self.eight_bit)
            .bind(self.smtputf8)
            .bind(self.utf8_headers)
    }

    /// The row for `email`.
    ///
    /// # Errors
    /// [`StoreError::Storage`] for a size a signed 64-bit column cannot hold.
    pub(super) fn from_email(email: &ReceivedEmail) -> Result<Self, StoreError> {
        let size = i64::try_from(email.size).map_err(|_| {
            bad(
                email.id,
                format!("has a size ({}) too large to store", email.size),
            )
        })?;
        let envelope = &email.email.envelope;
        let encoding = email.email.encoding;
        Ok(EmailRow {
            id: email.id.to_string(),
            received_at: unix_millis(email.received_at),
            sender: envelope.sender.as_ref().map(ToString::to_string),
            recipients: envelope
                .recipients
                .iter()
                .map(ToString::to_string)
                .collect(),
            size,
            peer: email.email.peer.clone(),
            helo: email.email.helo.clone(),
            tls: email.email.tls,
            eight_bit: encoding.eight_bit,
            smtputf8: encoding.smtputf8,
            utf8_headers: encoding.utf8_headers,
        })
    }

    /// The email this row records.
    ///
    /// # Errors
    /// [`StoreError::Storage`] for a row that no longer parses (edited by hand).
    pub(super) fn into_email(self) -> Result<ReceivedEmail, StoreError> {
        let id = EmailId::parse(&self.id).map_err(|e| bad(&self.id, e))?;
        let address = |text: &String| {
            EmailAddress::parse(text)
                .map_err(|e| bad(&self.id, format!("has address '{text}': {e}")))
        };
        let sender = self.sender.as_ref().map(address).transpose()?;
        let recipients = self
            .recipients
            .iter()
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
                encoding: Encoding {
                    eight_bit: self.eight_bit,
                    smtputf8: self.smtputf8,
                    utf8_headers: self.utf8_headers,
                },
            },
            size,
            received_at: from_unix_millis(self.received_at),
        })
    }
}
