//! The evaluator: up to `evaluating` emails at once, from the hand-off and from the
//! backlog alike, each evaluated with its new jobs claimed and handed to the workers,
//! grouped by next hop: one transaction per destination (ADR 0017).

use std::sync::Arc;

use mailfwd_domain::delivery::{ClaimedJob, Evaluation};
use mailfwd_domain::{CutReason, EmailId, ReceivedEmail};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use crate::Shared;

/// Jobs of one email claimed at evaluation, all for one destination (at most
/// [`crate::DestinationLimits::recipient_limit`] of them), on their way to a worker
/// with their email's record: one transaction carries them all.
pub(crate) struct Fresh {
    pub(crate) jobs: Vec<ClaimedJob>,
    pub(crate) email: Arc<ReceivedEmail>,
    /// When the claim runs out (at the latest: measured from before it was made).
    pub(crate) lease_ends: Instant,
}

impl Shared {
    /// Evaluates what the hand-off and the backlog reader bring, until `stop`; then
    /// lets the evaluations under way finish and gives back the jobs no worker took.
    pub(crate) async fn evaluate(
        self: Arc<Self>,
        mut accepted: mpsc::Receiver<ReceivedEmail>,
        backlog: flume::Receiver<ReceivedEmail>,
        fresh_tx: flume::Sender<Fresh>,
        fresh_rx: flume::Receiver<Fresh>,
        mut stop: watch::Receiver<bool>,
    ) {
        let limit = self.config.evaluating;
        let mut running = JoinSet::new();
        loop {
            while let Some(joined) = running.try_join_next() {
                self.joined(joined);
            }
            let room = running.len() < limit;
            // Unbiased between the hand-off and the backlog: neither starves the other.
            let email = tokio::select! {
                _ = stop.changed() => break,
                Some(email) = accepted.recv(), if room => email,
                Ok(email) = backlog.recv_async(), if room => email,
                // All slots taken: wait for one to free up.
                Some(joined) = running.join_next(), if !room => {
                    self.joined(joined);
                    continue;
                }
            };
            let (this, fresh) = (Arc::clone(&self), fresh_tx.clone());
            running.spawn(async move { this.evaluate_one(email, &fresh).await });
        }
        // Emails not yet taken from the hand-off or the backlog are recorded as
        // unevaluated: the next start evaluates them. The evaluations under way finish,
        // and the jobs they and the channel hold are given back to the queue.
        drop(fresh_tx);
        let give_back = async {
            while let Ok(fresh) = fresh_rx.recv_async().await {
                for job in &fresh.jobs {
                    self.give_back(job).await;
                }
            }
        };
        let finish = async {
            while let Some(joined) = running.join_next().await {
                self.joined(joined);
            }
        };
        tokio::join!(give_back, finish);
    }

    /// An evaluation task ended. One that panicked has left its email unevaluated (its
    /// in-flight place was freed on the way out): say so, and let the backlog reader
    /// try it again.
    fn joined(&self, joined: Result<(), JoinError>) {
        if let Err(error) = joined {
            tracing::error!(%error, "an evaluation failed unexpectedly; it is tried again shortly");
            self.backlog.request_later();
        }
    }

    /// Evaluates an email, marks it evaluated and hands its new jobs to the workers.
    async fn evaluate_one(&self, email: ReceivedEmail, fresh: &flume::Sender<Fresh>) {
        // Frees the email's in-flight place however this ends, a panic included, so
        // the backlog reader never skips it for good.
        let in_flight = InFlight {
            shared: self,
            id: email.id,
        };
        // Taken before the claim: the lease in the queue ends no earlier than `lease_ends`.
        let (now, lease_ends) = (self.deliverer.now(), Instant::now() + self.config.lease);
        let evaluated = self
            .evaluator
            .evaluate_and_claim(&email, now, self.config.lease)
            .await;
        let claimed = match evaluated {
            Ok((evaluation, claimed)) => {
                if let Some(failures) = self.failing_evaluations.succeeded() {
                    tracing::info!(failures, "evaluations succeed again");
                }
                self.mark_evaluated(&email, &evaluation).await;
                claimed
            }
            Err(error) => {
                if self.failing_evaluations.failed() {
                    tracing::error!(id = %email.id, %error,
                        "evaluation failed; it is tried again shortly (further failures in a row are logged at debug, with a reminder every 1,000)");
                } else {
                    tracing::debug!(id = %email.id, %error, "evaluation failed again");
                }
                drop(in_flight);
                self.backlog.request_later();
                return;
            }
        };
        // Marked evaluated before it leaves the in-flight set: a backlog pass that
        // starts now does not read it.
        drop(in_flight);
        let email = Arc::new(email);
        for jobs in self.by_destination(claimed) {
            let email = Arc::clone(&email);
            // Fails only once the engine has stopped: the leases bring the jobs back.
            let _ = fresh
                .send_async(Fresh {
                    jobs,
                    email,
                    lease_ends,
                })
                .await;
        }
    }

    /// One email's `jobs` in groups that can share a transaction: the same destination
    /// (as the mailer sees destinations), at most `recipient_limit` to a group, in the
    /// order of their first job.
    fn by_destination(&self, jobs: Vec<ClaimedJob>) -> Vec<Vec<ClaimedJob>> {
        let limit = self.config.destinations.recipient_limit.max(1);
        let mut groups: Vec<(String, Vec<ClaimedJob>)> = Vec::new();
        for job in jobs {
            let destination = self.deliverer.destination(&job.job);
            match groups
                .iter_mut()
                .find(|(name, group)| *name == destination && group.len() < limit)
            {
                Some((_, group)) => group.push(job),
                None => groups.push((destination, vec![job])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// Marks `email` evaluated and reports the recipients no rule matches any more and
    /// the addresses the expansion did not follow.
    async fn mark_evaluated(&self, email: &ReceivedEmail, evaluation: &Evaluation) {
        for (index, cut) in evaluation.cuts.iter().enumerate() {
            // A loop or runaway expansion the rule checks did not prevent (rules changed
            // since, or written around the API): no copy goes out for it.
            metrics::counter!("mailfwd_expansion_cuts_total", "reason" => cut_reason(&cut.reason))
                .increment(1);
            // A rule set full of loops must not write a line per loop per email.
            if index < LOGGED_CUTS {
                tracing::warn!(id = %email.id, %cut, "address not followed; no copy is sent for it");
            }
        }
        if let Some(more) = evaluation
            .cuts
            .len()
            .checked_sub(LOGGED_CUTS)
            .filter(|&n| n > 0)
        {
            tracing::warn!(id = %email.id, more, "more addresses not followed; counted in mailfwd_expansion_cuts_total");
        }
        for recipient in &evaluation.unmatched {
            // Accepted, but now going nowhere: counted so it shows in metrics, and
            // `mailfwd reprocess` sends it once a rule matches again.
            metrics::counter!("mailfwd_unmatched_recipients_total").increment(1);
            tracing::warn!(id = %email.id, %recipient, "no rule matches this recipient any more");
        }
        if let Err(error) = self.emails.mark_evaluated(&email.id).await {
            tracing::error!(id = %email.id, %error, "cannot mark the email evaluated; it will be evaluated again");
            self.backlog.request_later();
        }
    }
}

/// An email's place in the in-flight set, freed when dropped.
struct InFlight<'a> {
    shared: &'a Shared,
    id: EmailId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.in_flight().remove(&self.id);
    }
}

/// Cuts of one email logged one by one; the rest are counted in one line.
const LOGGED_CUTS: usize = 5;

/// The `reason` label of `mailfwd_expansion_cuts_total`.
fn cut_reason(reason: &CutReason) -> &'static str {
    match reason {
        CutReason::Loop => "loop",
        CutReason::TooDeep => "too_deep",
        CutReason::TooMany => "too_many",
    }
}
