//! What a migration shows while it runs: a progress bar on a terminal (emails, bytes,
//! rate, time left), a log line every few seconds otherwise; and its summary.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a log line reports progress when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// What a migration did so far.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) copied: u64,
    pub(super) copied_bytes: u64,
    pub(super) already_there: u64,
    pub(super) only_in_target: u64,
    /// Emails deleted (record and body) while the migration ran.
    pub(super) gone: u64,
    /// Small bodies kept in their records, which stay there.
    pub(super) in_record: u64,
    pub(super) failed: u64,
    pub(super) elapsed: Duration,
}

impl Tally {
    fn done(&self) -> u64 {
        self.copied
            + self.already_there
            + self.only_in_target
            + self.gone
            + self.in_record
            + self.failed
    }

    /// The closing line.
    pub(super) fn summary(&self) -> String {
        let seconds = self.elapsed.as_secs_f64().max(0.001);
        format!(
            "{} bodies copied and verified ({:.1} MB) in {:.1} s: {:.0} emails/s, {:.1} MB/s; \
             {} already in the target, {} only in the target, {} deleted meanwhile, \
             {} kept in their records; {} failed",
            self.copied,
            mb(self.copied_bytes),
            seconds,
            self.copied as f64 / seconds,
            mb(self.copied_bytes) / seconds,
            self.already_there,
            self.only_in_target,
            self.gone,
            self.in_record,
            self.failed
        )
    }
}

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The progress display.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    emails: u64,
    started: Instant,
    last_log: std::cell::Cell<Instant>,
}

impl Progress {
    /// Starts showing progress through `emails` emails of `bytes` bytes.
    pub(super) fn start(emails: u64, bytes: u64, resumed: bool) -> Progress {
        let resumed = if resumed {
            " (resuming after the checkpoint)"
        } else {
            ""
        };
        tracing::info!(emails, bytes, "migrating email bodies{resumed}");
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(bytes);
            let template = "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            bar,
            emails,
            started: Instant::now(),
            last_log: std::cell::Cell::new(Instant::now()),
        }
    }

    /// One more email done, of `bytes` bytes.
    pub(super) fn advance(&self, bytes: u64, tally: &Tally) {
        let message = format!("{}/{} emails", tally.done(), self.emails);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            bar.set_message(message);
        } else if self.last_log.get().elapsed() >= LOG_EVERY {
            self.last_log.set(Instant::now());
            tracing::info!(
                copied = tally.copied,
                failed = tally.failed,
                elapsed_s = self.started.elapsed().as_secs(),
                "migrating: {message}"
            );
        }
    }

    /// An email that failed.
    pub(super) fn error(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("error: {message}")),
            None => tracing::error!("{message}"),
        }
    }

    /// The end.
    pub(super) fn finish(&self, tally: &Tally) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        tracing::info!(
            copied = tally.copied,
            already_there = tally.already_there,
            only_in_target = tally.only_in_target,
            failed = tally.failed,
            "migration finished"
        );
    }
}
