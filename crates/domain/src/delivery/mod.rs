//! Delivery: one job per (email, destination), the durable queue that owns them, the
//! retry schedule, and the `Mailer` port that sends a message onward.

mod attempt;
mod clock;
mod deliverer;
mod mailer;
mod queue;
mod received;
mod retry;
mod service;

use std::time::SystemTime;

use crate::address::EmailAddress;
use crate::email::EmailId;

pub use clock::{Clock, SystemClock};
pub use deliverer::{Attempt, Attempted, Contact, Deliverer, Interruption};
pub use mailer::{DeliveryOutcome, Mailer, Outgoing};
pub use queue::{ClaimedJob, DeliveryQueue, EnqueueOutcome, QueueError, QueueStats};
pub use received::{PrefixedBody, received_header, rfc5322_date};
pub use retry::RetryPolicy;
pub use service::{EnqueueListener, Evaluation, ForwardError, ForwardEvaluator};

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its next attempt (possibly claimed by a worker right now).
    Pending,
    /// Delivered: the destination's server accepted it with this reply.
    Delivered {
        /// The remote server's reply.
        reply: String,
    },
    /// Given up: a permanent refusal, or retries ran out. The reason says which.
    Failed {
        /// Why delivery stopped.
        reason: String,
    },
}

impl JobState {
    /// Whether the job has reached a final state.
    #[must_use]
    pub fn is_final(&self) -> bool {
        !matches!(self, JobState::Pending)
    }

    /// A short name for APIs and logs: `pending`, `delivered` or `failed`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Delivered { .. } => "delivered",
            JobState::Failed { .. } => "failed",
        }
    }
}

/// One delivery of one email to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryJob {
    /// The email.
    pub email: EmailId,
    /// The destination address (the envelope recipient of the onward message).
    pub destination: EmailAddress,
    /// Where the job stands.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// When the next attempt is due (meaningful while pending).
    pub next_attempt_at: SystemTime,
    /// The last reply or error of an attempt, if any.
    pub last_reply: Option<String>,
    /// When the job was (last) enqueued.
    pub created_at: SystemTime,
}
