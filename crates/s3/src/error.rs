//! What the adapter says when object storage fails: the email, the step, and the cause.

use std::fmt;

use mailfwd_domain::EmailId;
use mailfwd_domain::email::StoreError;
use thiserror::Error;

/// The step of reading or writing a body that failed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    Write,
    Commit,
    Sync,
    Read,
    Delete,
    Mark,
    Unmark,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Write => "write",
            Step::Commit => "store",
            Step::Sync => "make durable",
            Step::Read => "read",
            Step::Delete => "delete",
            Step::Mark => "mark as pending",
            Step::Unmark => "drop the pending marker of",
        })
    }
}

/// A failed step on one body; it travels inside [`StoreError::Storage`].
#[derive(Debug, Error)]
#[error("cannot {step} the body of email {id}: {source}")]
struct BodyError {
    id: EmailId,
    step: Step,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// A writer used again after it failed, committed or aborted.
#[derive(Debug, Error)]
#[error("the writer failed earlier and holds no body")]
struct Unusable;

/// `StoreError::Storage` for a failed `step` on the body of `id`.
pub(crate) fn body_error(
    id: EmailId,
    step: Step,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    StoreError::storage(BodyError {
        id,
        step,
        source: source.into(),
    })
}

/// `StoreError::Storage` for a writer used after it failed.
pub(crate) fn unusable(id: EmailId, step: Step) -> StoreError {
    body_error(id, step, Unusable)
}

/// Listing the pending markers failed.
#[derive(Debug, Error)]
#[error("cannot list the pending bodies: {0}")]
struct ListingError(#[source] object_store::Error);

/// `StoreError::Storage` for a failed listing of the pending markers.
pub(crate) fn listing_error(source: object_store::Error) -> StoreError {
    StoreError::storage(ListingError(source))
}
