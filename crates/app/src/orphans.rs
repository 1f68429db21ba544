//! The hourly sweep of bodies stored for emails that were never recorded (a crash
//! between the two; see `SplitEmailStore::sweep_orphans`). Stores whose bodies and
//! records commit together, or that write no pending markers (local files, the
//! database), have nothing to sweep and answer at once.

use std::time::{Duration, SystemTime};

use mailfwd_domain::email::SplitEmailStore;
use tokio::sync::watch;

/// How often the sweep runs, the first time at start.
const EVERY: Duration = Duration::from_secs(60 * 60);

/// Sweeps `emails` now and then every hour until `stop`.
pub async fn sweep_hourly(emails: SplitEmailStore, mut stop: watch::Receiver<bool>) {
    loop {
        let older_than = SystemTime::now()
            .checked_sub(SplitEmailStore::ORPHAN_AGE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match emails.sweep_orphans(older_than).await {
            Ok(report) if report.deleted > 0 || report.failed > 0 => tracing::warn!(
                pending = report.pending,
                recorded = report.recorded,
                deleted = report.deleted,
                failed = report.failed,
                "swept the bodies of emails that were never recorded (a crash or failure while they were accepted)"
            ),
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "cannot list the bodies pending a record; trying again in an hour")
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
