//! Finding and removing orphan bodies: bodies whose record was never written.

use std::time::{Duration, SystemTime};

use super::{SplitEmailStore, StoreError};

/// What one [`SplitEmailStore::sweep_orphans`] found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Bodies marked pending since before the cutoff.
    pub pending: usize,
    /// Of those, bodies that have their record after all (its `accepted` was lost in a
    /// crash or failed): their marker was dropped, the body kept.
    pub recorded: usize,
    /// Of those, orphans: no record, so the body (and its marker) was deleted.
    pub deleted: usize,
    /// Of those, bodies that could not be checked or deleted; they stay marked and the
    /// next sweep tries again.
    pub failed: usize,
}

impl SplitEmailStore {
    /// How old a pending marker should be before a sweep looks at it: far longer than
    /// any email takes from its first byte to its record (the SMTP data timeout plus a
    /// commit's bounded retries), so a sweep never judges an email still being received.
    pub const ORPHAN_AGE: Duration = Duration::from_secs(60 * 60);

    /// Deletes the bodies marked pending before `older_than` that have no record, and
    /// drops the marker of those that have one. Run it at start and periodically, with
    /// `older_than` at least [`SplitEmailStore::ORPHAN_AGE`] ago: a body whose email is
    /// still being committed must not be judged, or its record could end up pointing at
    /// a deleted body.
    ///
    /// Each body is decided by the log alone (`get`): found means recorded, `NotFound`
    /// means orphan; any other answer leaves it for the next sweep. With stores that do
    /// not mark bodies (local files), there is nothing to sweep.
    ///
    /// # Errors
    /// [`StoreError::Storage`] if the pending bodies cannot be listed; failures on single
    /// bodies are counted in [`SweepReport::failed`] instead.
    pub async fn sweep_orphans(&self, older_than: SystemTime) -> Result<SweepReport, StoreError> {
        let pending = self.bodies.pending(older_than).await?;
        let mut report = SweepReport {
            pending: pending.len(),
            ..SweepReport::default()
        };
        for id in pending {
            match self.log.get(&id).await {
                Ok(_) => {
                    self.bodies.accepted(&id).await;
                    report.recorded += 1;
                }
                Err(StoreError::NotFound(_)) => match self.bodies.delete(&id).await {
                    Ok(()) => report.deleted += 1,
                    Err(_) => report.failed += 1,
                },
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod tests;
