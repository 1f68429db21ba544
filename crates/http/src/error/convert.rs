//! The domain's errors as [`ApiError`]s: the one place each outcome gets its status.

use mailfwd_domain::delivery::QueueError;
use mailfwd_domain::email::retry_after_secs;
use mailfwd_domain::import::ImportError;
use mailfwd_domain::{RuleError, StoreError};

use super::{ApiError, SHEDDING_RETRY_AFTER_SECS};

impl From<RuleError> for ApiError {
    fn from(error: RuleError) -> Self {
        match error {
            RuleError::AlreadyExists(_) => ApiError::Conflict(error.to_string()),
            RuleError::NotFound(_) => ApiError::NotFound(error.to_string()),
            RuleError::Invalid(invalid) => ApiError::InvalidRule(invalid),
            RuleError::InvalidCursor => {
                ApiError::BadRequest(format!("the query parameter 'cursor' is invalid: {error}"))
            }
            RuleError::Storage(_) => ApiError::StorageUnavailable(Box::new(error)),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => ApiError::NotFound(error.to_string()),
            StoreError::InvalidCursor => {
                ApiError::BadRequest(format!("the query parameter 'cursor' is invalid: {error}"))
            }
            StoreError::Overloaded { retry_after } => ApiError::StoreBusy {
                detail: error.to_string(),
                retry_after: retry_after_secs(retry_after),
            },
            StoreError::InsufficientStorage(_) => ApiError::StoreBusy {
                detail: error.to_string(),
                retry_after: SHEDDING_RETRY_AFTER_SECS,
            },
            StoreError::Storage(_) => ApiError::StorageUnavailable(Box::new(error)),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::Storage(_) => ApiError::StorageUnavailable(Box::new(error)),
            QueueError::LeaseLost { .. } => ApiError::Internal(Box::new(error)),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::BadHeader(_) => ApiError::BadRequest(error.to_string()),
            ImportError::AtomicTooLarge { .. } => ApiError::ImportTooLarge(error.to_string()),
            ImportError::Storage {
                rules_written,
                source,
            } => ApiError::ImportInterrupted {
                rules_written,
                source,
            },
        }
    }
}
