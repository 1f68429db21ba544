//! The backlog reader: emails recorded as unevaluated that the hand-off does not hold
//! (an overflow, what a crash left, an evaluation that failed) are read from the
//! received log one page at a time and fed to the evaluator.
//!
//! A pass reads the unevaluated emails in id order, after a cursor, so it never reads
//! one twice; it skips those in flight (in the hand-off or being evaluated) and marks
//! the rest in flight before handing them over. The evaluator takes them as fast as it
//! takes fresh mail, and the reader reads the next page only once the evaluator has
//! room, so it holds at most one page. Ids are made when a message starts to arrive and
//! recorded when it ends, so an email can be recorded behind a pass's cursor: whatever
//! asks for a pass while one runs gets another one after it.
//!
//! Once the hand-off overflows, newly accepted emails are left to the reader too, until
//! a pass finds nothing more: the hand-off drains meanwhile, so the passes that follow
//! do not page through thousands of emails in flight to find the few that are not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mailfwd_domain::ReceivedEmail;
use tokio::sync::{Notify, watch};

use crate::{LOOK_EVERY, Shared};

/// Requests for backlog passes.
#[derive(Default)]
pub(crate) struct Backlog {
    /// The hand-off overflowed and the reader has not caught up yet: accepted emails
    /// are left to the reader meanwhile, so that the hand-off drains and the reader's
    /// passes do not page through ever more emails that are in flight.
    overflowing: AtomicBool,
    /// A pass is wanted (set by requests, cleared when a pass starts).
    wanted: AtomicBool,
    notify: Notify,
    /// A delayed request is pending: one at a time, however many evaluations fail.
    retry_pending: AtomicBool,
    /// A sweep is wanted: a pass over the emails accepted long enough ago that the
    /// instance that accepted them should have evaluated them (see [`Backlog::sweep`]).
    sweep_wanted: AtomicBool,
}

impl Backlog {
    /// Asks for a pass from the start of the log, after the one running if any.
    pub(crate) fn request(&self) {
        self.wanted.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Asks for a sweep: with several instances on one database, one that died leaves
    /// the emails it accepted and had not evaluated yet, which no other instance's
    /// hand-off holds. A sweep evaluates the unevaluated emails older than the instance
    /// timeout; younger ones are left to the instance evaluating them now (were it to
    /// take them too, no job would be made twice, but the work would be).
    pub(crate) fn sweep(&self) {
        self.sweep_wanted.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether the hand-off overflowed and the reader is still catching up.
    pub(crate) fn overflowing(&self) -> bool {
        self.overflowing.load(Ordering::Acquire)
    }

    /// The hand-off overflowed: asks for a pass, and leaves what is accepted next to
    /// the reader until it catches up.
    pub(crate) fn overflowed(&self) {
        self.overflowing.store(true, Ordering::Release);
        self.request();
    }

    /// Asks for a pass in a while: something failed and would fail again at once.
    pub(crate) fn request_later(self: &Arc<Self>) {
        if !self.retry_pending.swap(true, Ordering::AcqRel) {
            let backlog = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(LOOK_EVERY).await;
                backlog.retry_pending.store(false, Ordering::Release);
                backlog.request();
            });
        }
    }
}

/// Why a pass ended early.
enum Ended {
    /// The engine is stopping.
    Stopped,
    /// The log could not be read; the pass is asked for again later.
    Failed,
}

impl Shared {
    /// Runs backlog passes whenever one is wanted, until `stop`.
    pub(crate) async fn read_backlog(
        self: Arc<Self>,
        to_evaluator: flume::Sender<ReceivedEmail>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let full = self.backlog.wanted.swap(false, Ordering::AcqRel);
            let sweep = self.backlog.sweep_wanted.swap(false, Ordering::AcqRel);
            if !full && !sweep {
                // Caught up: what is accepted from now on goes to the hand-off again. An
                // email left to the reader just before this asked for a pass: the notify
                // permit brings the reader straight back for it.
                self.backlog.overflowing.store(false, Ordering::Release);
                tokio::select! {
                    biased;
                    _ = stop.changed() => return,
                    () = self.backlog.notify.notified() => continue,
                }
            }
            // A full pass covers what a sweep would.
            let older_than = (!full).then_some(self.config.instance_timeout);
            match self.pass(&to_evaluator, &mut stop, older_than).await {
                Ok(0) => {}
                // After a restart, or an overflow of the hand-off.
                Ok(count) => {
                    tracing::info!(count, "evaluating emails accepted but not yet evaluated")
                }
                Err(Ended::Stopped) => return,
                Err(Ended::Failed) => self.backlog.request_later(),
            }
        }
    }

    /// One pass over the unevaluated emails (only those received more than
    /// `older_than` ago, when given); how many it handed to the evaluator.
    async fn pass(
        &self,
        to_evaluator: &flume::Sender<ReceivedEmail>,
        stop: &mut watch::Receiver<bool>,
        older_than: Option<std::time::Duration>,
    ) -> Result<usize, Ended> {
        let now = self.deliverer.now();
        let old_enough = |email: &ReceivedEmail| {
            older_than.is_none_or(|age| {
                now.duration_since(email.received_at)
                    .is_ok_and(|since| since >= age)
            })
        };
        let (mut after, mut handed) = (None, 0);
        loop {
            let page = match self
                .emails
                .unevaluated(after, self.config.backlog_page)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, "cannot read the emails not yet evaluated; trying again shortly");
                    return Err(Ended::Failed);
                }
            };
            let Some(last) = page.last() else {
                return Ok(handed);
            };
            after = Some(last.id);
            let page: Vec<ReceivedEmail> = {
                // Taken in one step with the check, so the hand-off and the reader never
                // both hold an email.
                let mut in_flight = self.in_flight();
                page.into_iter()
                    .filter(|email| old_enough(email) && in_flight.insert(email.id))
                    .collect()
            };
            for email in page {
                tokio::select! {
                    biased;
                    _ = stop.changed() => return Err(Ended::Stopped),
                    sent = to_evaluator.send_async(email) => {
                        if sent.is_err() {
                            return Err(Ended::Stopped);
                        }
                        handed += 1;
                    }
                }
            }
        }
    }
}
