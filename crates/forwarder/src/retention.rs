//! Retention: emails older than the retention period whose every delivery is final are
//! deleted — record, delivery outcomes and body — in small batches in the background.
//!
//! An email is kept while any of its deliveries is pending (a retry, or a reprocess) and
//! while it has not been evaluated (it still has work to do). The order of the deletes
//! is the one that never leaves a dangling reference: the delivery outcomes (only if
//! none is pending, checked in the same statement), then the record (only if
//! evaluated), then the body. A failure half-way never leaves a record without its
//! body; a body whose delete fails stays marked pending (on stores that mark bodies,
//! S3), so the hourly orphan sweep deletes it later. What goes is gone: the log lines of its receipt
//! and deliveries stay in the process log, nothing else.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_domain::email::{EmailQuery, EmailStore, ReceivedEmail, StoreError};
use tokio::sync::watch;

/// Emails looked at per page; each page is a handful of short statements per email.
const PAGE: usize = 100;
/// The pause between pages, so that a large first pass does not crowd the mail path.
const BETWEEN_PAGES: Duration = Duration::from_millis(20);

/// The retention task; see the module documentation.
pub struct Retention {
    emails: Arc<dyn EmailStore>,
    queue: Arc<dyn DeliveryQueue>,
    keep: Duration,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Emails deleted.
    pub deleted: u64,
    /// Emails old enough but kept: a delivery of theirs is pending.
    pub kept_pending: u64,
    /// Emails old enough but kept: not evaluated yet.
    pub kept_unevaluated: u64,
    /// Emails that could not be deleted this time (logged; the next pass tries again).
    pub failed: u64,
}

impl Retention {
    /// Deletes what is older than `keep` from `emails` and `queue`.
    #[must_use]
    pub fn new(emails: Arc<dyn EmailStore>, queue: Arc<dyn DeliveryQueue>, keep: Duration) -> Self {
        Retention {
            emails,
            queue,
            keep,
        }
    }

    /// How often passes run: a tenth of the retention period, between 1 s and 1 h.
    #[must_use]
    pub fn interval(&self) -> Duration {
        (self.keep / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }

    /// Runs a pass now and then every [`Retention::interval`] until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            match self.pass(SystemTime::now()).await {
                Ok(pass) if pass.deleted > 0 || pass.failed > 0 => tracing::info!(
                    deleted = pass.deleted,
                    kept_pending = pass.kept_pending,
                    kept_unevaluated = pass.kept_unevaluated,
                    failed = pass.failed,
                    keep = %humantime::format_duration(self.keep),
                    "retention deleted emails older than the retention period"
                ),
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "retention cannot list old emails; trying again later")
                }
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(self.interval()) => {}
            }
        }
    }

    /// One pass over every email received before `now - keep`.
    ///
    /// # Errors
    /// [`StoreError`] when the received log cannot be listed; emails that fail one by
    /// one are counted in [`RetentionPass::failed`] instead.
    pub async fn pass(&self, now: SystemTime) -> Result<RetentionPass, StoreError> {
        let mut pass = RetentionPass::default();
        let Some(cutoff) = now.checked_sub(self.keep) else {
            return Ok(pass);
        };
        let mut cursor = None;
        loop {
            let page = self
                .emails
                .list(&EmailQuery {
                    since: None,
                    until: Some(cutoff),
                    limit: PAGE,
                    cursor,
                })
                .await?;
            for email in &page.emails {
                self.expire(email, &mut pass).await;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(pass),
            }
            tokio::time::sleep(BETWEEN_PAGES).await;
        }
    }

    async fn expire(&self, email: &ReceivedEmail, pass: &mut RetentionPass) {
        let id = email.id;
        match self.queue.forget(id).await {
            Ok(true) => {}
            Ok(false) => {
                pass.kept_pending += 1;
                metrics::counter!("mailfwd_retention_kept_total", "reason" => "pending")
                    .increment(1);
                return;
            }
            Err(error) => {
                pass.failed += 1;
                tracing::warn!(%id, %error, "retention cannot delete the deliveries of an email");
                return;
            }
        }
        match self.emails.forget(&id).await {
            Ok(true) => {
                pass.deleted += 1;
                metrics::counter!("mailfwd_retention_deleted_total").increment(1);
                metrics::counter!("mailfwd_retention_deleted_bytes_total").increment(email.size);
            }
            Ok(false) => {
                pass.kept_unevaluated += 1;
                metrics::counter!("mailfwd_retention_kept_total", "reason" => "unevaluated")
                    .increment(1);
            }
            Err(error) => {
                pass.failed += 1;
                tracing::warn!(%id, %error, "retention cannot delete an email");
            }
        }
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
