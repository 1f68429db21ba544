//! The one error type of the gRPC adapter and its table of status codes. Internal
//! errors are logged here and never sent to clients.

use mailfwd_domain::delivery::{ForwardError, QueueError};
use std::time::Duration;

use mailfwd_domain::email::{SHEDDING_RETRY_AFTER_SECS, Shedding, StoreError, retry_after_secs};
use mailfwd_domain::{IngestError, MessageError};
use thiserror::Error;
use tonic::{Code, Status};

use crate::pb;
use crate::retry_info::retry_status;

/// Why a Forwarding call failed. Each variant documents the status it becomes.
#[derive(Debug, Error)]
pub enum GrpcError {
    /// `INVALID_ARGUMENT`: the named field is malformed or missing.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The field, as named in the proto (`envelope.recipients[2]`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// `INVALID_ARGUMENT`: the body is empty or breaks the message policy (bare line
    /// ending, NUL byte, header limits, mail loop); the text says what and where.
    #[error("{0}")]
    InvalidMessage(String),
    /// `NOT_FOUND`: no email has this id.
    #[error("no email with id {0}")]
    NotFound(String),
    /// `UNAUTHENTICATED`: the bearer token is missing or wrong.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// `FAILED_PRECONDITION`: every recipient was refused, so there is nothing to store.
    #[error("every recipient was refused: {0}")]
    AllRecipientsRefused(String),
    /// `OUT_OF_RANGE`: the body is larger than the server accepts.
    #[error("the message exceeds the size limit of {0} octets")]
    TooLarge(u64),
    /// `RESOURCE_EXHAUSTED`, with the delay in the `retry-after` metadata (whole
    /// seconds) and a `google.rpc.RetryInfo` detail: the email store asks clients to
    /// slow down.
    #[error("the email store is busy; try again in {} s", retry_after_secs(*retry_after))]
    Overloaded {
        /// How long until the store expects to take the email.
        retry_after: Duration,
    },
    /// `RESOURCE_EXHAUSTED`, with `retry-after` metadata: the email store refuses new
    /// mail for now (disk nearly full, delivery backlog too long).
    #[error("the email store refuses new mail for now: {0}")]
    InsufficientStorage(Shedding),
    /// `UNAVAILABLE`: storage failed. The source is logged, not sent.
    #[error("storage is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl GrpcError {
    /// An `INVALID_ARGUMENT` naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl ToString) -> Self {
        GrpcError::InvalidArgument {
            field: field.into(),
            message: message.to_string(),
        }
    }

    /// The status code of this error.
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            GrpcError::InvalidArgument { .. } | GrpcError::InvalidMessage(_) => {
                Code::InvalidArgument
            }
            GrpcError::NotFound(_) => Code::NotFound,
            GrpcError::Unauthenticated(_) => Code::Unauthenticated,
            GrpcError::AllRecipientsRefused(_) => Code::FailedPrecondition,
            GrpcError::TooLarge(_) => Code::OutOfRange,
            GrpcError::Overloaded { .. } | GrpcError::InsufficientStorage(_) => {
                Code::ResourceExhausted
            }
            GrpcError::Unavailable(_) => Code::Unavailable,
        }
    }
}

impl From<GrpcError> for Status {
    fn from(error: GrpcError) -> Self {
        let code = error.code();
        if let GrpcError::Unavailable(source) = &error {
            tracing::error!(error = %source, "gRPC call failed on storage");
            return Status::new(code, "storage is unavailable; try again later");
        }
        let retry_after = match &error {
            GrpcError::Overloaded { retry_after } => Some(retry_after_secs(*retry_after)),
            GrpcError::InsufficientStorage(_) => Some(SHEDDING_RETRY_AFTER_SECS),
            _ => None,
        };
        match retry_after {
            Some(secs) => retry_status(code, error.to_string(), secs),
            None => Status::new(code, error.to_string()),
        }
    }
}

impl From<IngestError> for GrpcError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Message(MessageError::TooLarge(limit)) => GrpcError::TooLarge(limit),
            IngestError::Message(_) | IngestError::EmptyMessage => {
                GrpcError::InvalidMessage(error.to_string())
            }
            IngestError::Overloaded { retry_after } => GrpcError::Overloaded { retry_after },
            IngestError::InsufficientStorage(why) => GrpcError::InsufficientStorage(why),
            IngestError::Unavailable(source) => GrpcError::Unavailable(source),
            // Per-recipient refusals are reported in the reply (see `refusal_reason`);
            // reaching here means a caller mapped one as a whole-call failure.
            IngestError::UnknownRecipient(_)
            | IngestError::BadSrsAddress(_)
            | IngestError::RelayDenied(_)
            | IngestError::TooManyRecipients(_) => {
                GrpcError::AllRecipientsRefused(error.to_string())
            }
        }
    }
}

/// The reason reported for a recipient refused by the domain's recipient policy, or
/// `None` when the error is not about the recipient and fails the whole call.
pub(crate) fn refusal_reason(error: &IngestError) -> Option<pb::RefusalReason> {
    match error {
        IngestError::UnknownRecipient(_) | IngestError::BadSrsAddress(_) => {
            Some(pb::RefusalReason::UnknownRecipient)
        }
        IngestError::TooManyRecipients(_) => Some(pb::RefusalReason::TooManyRecipients),
        IngestError::RelayDenied(_) => Some(pb::RefusalReason::RelayingDenied),
        _ => None,
    }
}

impl From<StoreError> for GrpcError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => GrpcError::NotFound(id.to_string()),
            StoreError::Overloaded { retry_after } => GrpcError::Overloaded { retry_after },
            StoreError::InsufficientStorage(why) => GrpcError::InsufficientStorage(why),
            other => GrpcError::Unavailable(Box::new(other)),
        }
    }
}

impl From<QueueError> for GrpcError {
    fn from(error: QueueError) -> Self {
        GrpcError::Unavailable(Box::new(error))
    }
}

impl From<ForwardError> for GrpcError {
    fn from(error: ForwardError) -> Self {
        GrpcError::Unavailable(Box::new(error))
    }
}
