//! One log line per run of failures, not one per email: while the database is away,
//! every unevaluated email fails every few seconds, and a log line for each would bury
//! the one that says what is wrong.

use std::sync::atomic::{AtomicU64, Ordering};

/// Failures of one kind of operation in a row, across all emails.
#[derive(Debug, Default)]
pub(crate) struct FailureRun {
    in_a_row: AtomicU64,
}

/// Every this many failures in a row, one more line says the run goes on.
const REMIND_EVERY: u64 = 1_000;

impl FailureRun {
    /// Records a failure; `true` when it deserves a log line of its own (the first of
    /// a run, and then one every [`REMIND_EVERY`]), `false` for the others (log them
    /// at `debug`).
    pub(crate) fn failed(&self) -> bool {
        let before = self.in_a_row.fetch_add(1, Ordering::Relaxed);
        before.is_multiple_of(REMIND_EVERY)
    }

    /// Records a success; the length of the run of failures it ended, if any.
    pub(crate) fn succeeded(&self) -> Option<u64> {
        match self.in_a_row.swap(0, Ordering::Relaxed) {
            0 => None,
            failures => Some(failures),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FailureRun;

    #[test]
    fn the_first_failure_of_a_run_and_every_thousandth_are_told() {
        let run = FailureRun::default();
        assert_eq!(run.succeeded(), None);
        let told: Vec<bool> = (0..2_001).map(|_| run.failed()).collect();
        assert!(told[0] && told[1_000] && told[2_000]);
        assert_eq!(told.iter().filter(|told| **told).count(), 3);
        assert_eq!(run.succeeded(), Some(2_001));
        assert!(run.failed(), "a new run starts over");
    }
}
