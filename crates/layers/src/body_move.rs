//! Moving one body from a store to another, checked: what `mailfwd migrate-emails`
//! does for each email.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use mailfwd_domain::EmailId;
use mailfwd_domain::email::{BodyReader, BodyStore, StoreError};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What moving one body did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Copied to the target and checked (size and SHA-256).
    Copied {
        /// The body's size.
        bytes: u64,
    },
    /// The target already had an identical copy (an earlier run copied it): not
    /// copied again.
    AlreadyThere {
        /// The body's size.
        bytes: u64,
    },
    /// Only the target has it: received while the migration ran, or moved and deleted
    /// from the source by an earlier run.
    OnlyInTarget,
}

/// Why a body could not be moved; the source copy is untouched.
#[derive(Debug, Error)]
pub enum MoveError {
    /// Neither store has the body of an email the log records.
    #[error("the body of email {0} is in neither store")]
    Missing(EmailId),
    /// The copy read back differs from the source; it was deleted from the target.
    #[error("the copy of email {id} does not match its source ({detail}); the copy was deleted")]
    Mismatch {
        /// The email.
        id: EmailId,
        /// What differs.
        detail: String,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A body's size and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    size: u64,
    sha256: [u8; 32],
}

/// Copies bodies from `from` to `to`, checks each copy by reading it back, and deletes
/// the source copy only then, if asked; see [`BodyMover::move_body`].
pub struct BodyMover {
    from: Arc<dyn BodyStore>,
    to: Arc<dyn BodyStore>,
    delete_source: bool,
    throttle: Option<Throttle>,
}

impl BodyMover {
    /// A mover from `from` to `to`.
    #[must_use]
    pub fn new(from: Arc<dyn BodyStore>, to: Arc<dyn BodyStore>, delete_source: bool) -> Self {
        BodyMover {
            from,
            to,
            delete_source,
            throttle: None,
        }
    }

    /// Moves at most `megabytes_per_second` (MB = 10^6 bytes) over all the copies this
    /// mover makes at once: the bytes copied and the bytes read to check copies.
    #[must_use]
    pub fn with_rate_limit(mut self, megabytes_per_second: NonZeroU32) -> Self {
        self.throttle = Some(Throttle::new(megabytes_per_second));
        self
    }

    /// Moves the body of `id`. A target copy already there is compared with the source
    /// rather than copied again, so a run that was killed and started again never
    /// copies a body twice; a target copy that differs is replaced. With
    /// `delete_source`, the source copy is deleted once the target copy is known good.
    ///
    /// # Errors
    /// [`MoveError`]; the source copy is then untouched.
    pub async fn move_body(&self, id: &EmailId) -> Result<Moved, MoveError> {
        let source = match self.from.open(id).await {
            Ok(reader) => reader,
            Err(StoreError::NotFound(_)) => {
                return match self.to.open(id).await {
                    Ok(_) => Ok(Moved::OnlyInTarget),
                    Err(StoreError::NotFound(_)) => Err(MoveError::Missing(*id)),
                    Err(other) => Err(other.into()),
                };
            }
            Err(other) => return Err(other.into()),
        };
        let existing = match self.to.open(id).await {
            Ok(reader) => Some(fingerprint(reader, self.throttle.as_ref()).await?),
            Err(StoreError::NotFound(_)) => None,
            Err(other) => return Err(other.into()),
        };
        let moved = match existing {
            Some(target) => {
                let original = fingerprint(source, self.throttle.as_ref()).await?;
                if target == original {
                    Moved::AlreadyThere {
                        bytes: original.size,
                    }
                } else {
                    let source = self.from.open(id).await?;
                    self.copy(id, source).await?
                }
            }
            None => self.copy(id, source).await?,
        };
        if self.delete_source {
            self.from.delete(id).await?;
        }
        Ok(moved)
    }

    /// Streams `source` into a new target copy, then reads the copy back and compares.
    async fn copy(
        &self,
        id: &EmailId,
        mut source: Box<dyn BodyReader>,
    ) -> Result<Moved, MoveError> {
        let mut writer = self.to.create(id).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let chunk = match source.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(error) => {
                    writer.abort().await;
                    return Err(error.into());
                }
            };
            if let Some(throttle) = &self.throttle {
                throttle.take(chunk.len()).await;
            }
            hasher.update(&chunk);
            size += chunk.len() as u64;
            writer.write(&chunk).await?;
        }
        let written = writer.commit().await?;
        let original = Fingerprint {
            size,
            sha256: hasher.finalize().into(),
        };
        let copy = fingerprint(self.to.open(id).await?, self.throttle.as_ref()).await?;
        if copy != original || written != size {
            let _ = self.to.delete(id).await;
            return Err(MoveError::Mismatch {
                id: *id,
                detail: format!(
                    "{size} bytes read, {written} written, {} read back{}",
                    copy.size,
                    if copy.sha256 == original.sha256 {
                        ""
                    } else {
                        ", SHA-256 differs"
                    }
                ),
            });
        }
        // The email's record exists already: the copy is not pending one (a store that
        // marks new bodies until their record is written can drop the mark).
        self.to.accepted(id).await;
        Ok(Moved::Copied { bytes: size })
    }
}

/// Reads a body to its end: its size and SHA-256. The reads count against the rate
/// limit too: checking a copy loads the stores as much as making it.
async fn fingerprint(
    mut reader: Box<dyn BodyReader>,
    throttle: Option<&Throttle>,
) -> Result<Fingerprint, StoreError> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = reader.next_chunk().await? {
        if let Some(throttle) = throttle {
            throttle.take(chunk.len()).await;
        }
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok(Fingerprint {
        size,
        sha256: hasher.finalize().into(),
    })
}

/// A bytes-per-second limit shared by every copy, in kilobytes (10^3 bytes) a cell.
struct Throttle {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
}

impl Throttle {
    fn new(megabytes_per_second: NonZeroU32) -> Self {
        let per_second = megabytes_per_second.get().saturating_mul(1000);
        let cells = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        Throttle {
            limiter: RateLimiter::direct(Quota::per_second(cells)),
            burst: cells.get(),
        }
    }

    /// Waits until `bytes` more may be copied.
    async fn take(&self, bytes: usize) {
        let mut cells = u32::try_from(bytes.div_ceil(1000)).unwrap_or(u32::MAX);
        while cells > 0 {
            let now = cells.min(self.burst);
            if let Some(now) = NonZeroU32::new(now) {
                // Never more than the burst, so never refused for good.
                let _ = self.limiter.until_n_ready(now).await;
            }
            cells -= now;
        }
    }
}

#[cfg(test)]
#[path = "body_move_tests.rs"]
mod tests;
