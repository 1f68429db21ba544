//! One row of `delivery_jobs` or `delivery_history` (same columns), and its conversion to a [`DeliveryJob`].

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{ClaimedJob, DeliveryJob, JobState, QueueError};
use mailfwd_domain::email::EmailId;
use thiserror::Error;

use crate::millis::from_unix_millis;

/// A stored job that no longer parses: the database was edited by hand.
#[derive(Debug, Error)]
#[error("the stored delivery job ({email_id}, {destination}) is corrupt: {why}")]
struct CorruptJob {
    email_id: String,
    destination: String,
    why: String,
}

/// The columns of a job row that make a [`DeliveryJob`], and the lease.
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    email_id: String,
    destination_key: String,
    destination: String,
    state: String,
    attempts: i32,
    next_attempt_at: i64,
    lease: Option<i64>,
    last_reply: Option<String>,
    created_at: i64,
}

/// The select (and `RETURNING`) list of every query of [`JobRow`], for a table aliased `j`.
/// The id is read as text: the workspace's sqlx has no `uuid` feature.
pub(super) const JOB_COLUMNS: &str = "j.email_id::text AS email_id, j.destination_key, j.destination, j.state, \
     j.attempts, j.next_attempt_at, j.lease, j.last_reply, j.created_at";

/// A lease token as the port hands it out: the sequence's value, bit for bit.
pub(super) fn token_of(lease: i64) -> u64 {
    u64::from_ne_bytes(lease.to_ne_bytes())
}

/// The column value of a lease the port handed out.
pub(super) fn lease_of(token: u64) -> i64 {
    i64::from_ne_bytes(token.to_ne_bytes())
}

impl JobRow {
    /// The job's destination key.
    pub(super) fn key(&self) -> String {
        self.destination_key.clone()
    }

    pub(super) fn into_job(self) -> Result<DeliveryJob, QueueError> {
        let corrupt = |why: String| {
            QueueError::storage(CorruptJob {
                email_id: self.email_id.clone(),
                destination: self.destination.clone(),
                why,
            })
        };
        let email = EmailId::parse(&self.email_id).map_err(|e| corrupt(e.to_string()))?;
        let destination =
            EmailAddress::parse(&self.destination).map_err(|e| corrupt(e.to_string()))?;
        let reply = self.last_reply.clone().unwrap_or_default();
        let state = match self.state.as_str() {
            "pending" => JobState::Pending,
            "delivered" => JobState::Delivered { reply },
            "failed" => JobState::Failed { reason: reply },
            other => return Err(corrupt(format!("unknown state '{other}'"))),
        };
        Ok(DeliveryJob {
            email,
            destination,
            state,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            next_attempt_at: from_unix_millis(self.next_attempt_at),
            last_reply: self.last_reply,
            created_at: from_unix_millis(self.created_at),
        })
    }

    /// The job as claimed under the lease it holds.
    pub(super) fn into_claimed(self) -> Result<ClaimedJob, QueueError> {
        let lease = self.lease.map(token_of);
        let job = self.into_job()?;
        let lease = lease.ok_or_else(|| {
            QueueError::storage(CorruptJob {
                email_id: job.email.to_string(),
                destination: job.destination.to_string(),
                why: "was claimed but holds no lease".to_owned(),
            })
        })?;
        Ok(ClaimedJob { job, lease })
    }
}
