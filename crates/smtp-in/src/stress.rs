//! Whether the server is under stress: so many connections open that the next clients
//! may soon be refused. Sessions watch the signal and shrink their timeouts while it
//! lasts (Postfix's `${stress?…}` settings; ADR 0013), so idle and slow clients give
//! their places up to clients that move mail.

use tokio::sync::watch;
use tracing::{info, warn};

/// The number of open connections at which stress begins: `percent` of
/// `max_connections`, rounded up, and at least one connection.
pub(crate) fn stress_threshold(max_connections: usize, percent: u8) -> usize {
    let scaled = max_connections.saturating_mul(usize::from(percent.min(100)));
    scaled.div_ceil(100).max(1)
}

/// Turns the count of open connections into the stress signal. Stress begins when the
/// count reaches the threshold and ends only when it falls below three quarters of it:
/// with clients coming and going right at the threshold, the signal (which wakes every
/// waiting session) would otherwise flip with every connection.
#[derive(Debug)]
pub(crate) struct StressGauge {
    threshold: usize,
    /// Stress ends when fewer connections than this are open.
    relief: usize,
    signal: watch::Sender<bool>,
}

impl StressGauge {
    /// A gauge that signals stress from `threshold` open connections on.
    pub(crate) fn new(threshold: usize) -> Self {
        StressGauge {
            threshold,
            relief: threshold - threshold / 4,
            signal: watch::Sender::new(false),
        }
    }

    /// Records that `open` connections are open now. Watchers wake only when stress
    /// begins or ends, not on every connection.
    pub(crate) fn record(&self, open: usize) {
        let mut stressed = false;
        let changed = self.signal.send_if_modified(|current| {
            stressed = if *current {
                open >= self.relief
            } else {
                open >= self.threshold
            };
            let changed = *current != stressed;
            *current = stressed;
            changed
        });
        match (changed, stressed) {
            (true, true) => warn!(
                open,
                threshold = self.threshold,
                "SMTP server under stress: shorter timeouts until connections fall below the threshold"
            ),
            (true, false) => info!(
                open,
                threshold = self.threshold,
                "SMTP server no longer under stress"
            ),
            (false, _) => {}
        }
    }

    /// A receiver that sees stress begin and end.
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.signal.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_a_share_of_the_connection_limit_rounded_up() {
        assert_eq!(stress_threshold(1000, 80), 800);
        assert_eq!(stress_threshold(1000, 100), 1000);
        assert_eq!(stress_threshold(10, 75), 8, "7.5 rounds up");
        assert_eq!(stress_threshold(3, 1), 1, "never below one connection");
        assert_eq!(stress_threshold(10, 200), 10, "never above the limit");
    }

    #[test]
    fn stress_begins_at_the_threshold_and_ends_below_three_quarters_of_it() {
        let gauge = StressGauge::new(800);
        let mut watcher = gauge.subscribe();
        gauge.record(799);
        assert!(
            !watcher.has_changed().unwrap(),
            "no news below the threshold"
        );
        gauge.record(800);
        assert!(watcher.has_changed().unwrap());
        assert!(*watcher.borrow_and_update());
        gauge.record(900);
        gauge.record(700);
        gauge.record(600);
        assert!(!watcher.has_changed().unwrap(), "still stressed: no news");
        gauge.record(599);
        assert!(watcher.has_changed().unwrap());
        assert!(!*watcher.borrow_and_update());
        gauge.record(799);
        assert!(
            !watcher.has_changed().unwrap(),
            "begins again only at the threshold"
        );
    }

    #[test]
    fn a_threshold_of_one_connection_ends_when_none_is_open() {
        let gauge = StressGauge::new(1);
        let watcher = gauge.subscribe();
        gauge.record(1);
        assert!(*watcher.borrow());
        gauge.record(0);
        assert!(!*watcher.borrow());
    }
}
