//! One row of the `delivery_jobs` table, and its conversion to a [`DeliveryJob`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailfwd_domain::EmailAddress;
use mailfwd_domain::delivery::{DeliveryJob, JobState, QueueError};
use mailfwd_domain::email::EmailId;
use thiserror::Error;

/// A stored job that no longer parses: the database was edited by hand.
#[derive(Debug, Error)]
#[error("the stored delivery job ({email_id}, {destination}) is corrupt: {why}")]
struct CorruptJob {
    email_id: String,
    destination: String,
    why: String,
}

/// The columns of `delivery_jobs` that make a [`DeliveryJob`], and the lease.
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    email_id: String,
    destination: String,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    pub(super) lease: Option<i64>,
    last_reply: Option<String>,
    created_at: i64,
}

pub(super) const JOB_COLUMNS: &str =
    "email_id, destination, state, attempts, next_attempt_at, lease, last_reply, created_at";

pub(super) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl JobRow {
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
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: time(self.next_attempt_at),
            last_reply: self.last_reply,
            created_at: time(self.created_at),
        })
    }
}
