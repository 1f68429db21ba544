//! Load shedding: whether the store refuses new mail because its disk is nearly full
//! or the delivery backlog is too long. Measured at most once per interval and cached,
//! so the check on every `MAIL FROM` costs a lock and a comparison.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mailfwd_domain::delivery::DeliveryQueue;
use mailfwd_domain::email::Shedding;

/// Measures the free space of the disk holding the data, for the disk floor.
pub trait FreeSpace: Send + Sync {
    /// Bytes available to mailfwd (not to root) on that disk.
    ///
    /// # Errors
    /// The I/O error of the measurement; the store then does not shed for the disk.
    fn free_bytes(&self) -> std::io::Result<u64>;
}

/// The free space of the filesystem holding a directory, by `statvfs`: the blocks
/// available to unprivileged users, as `df` shows them.
#[derive(Debug, Clone)]
pub struct DiskFreeSpace {
    path: PathBuf,
}

impl DiskFreeSpace {
    /// Measures the filesystem holding `path`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DiskFreeSpace { path: path.into() }
    }
}

impl FreeSpace for DiskFreeSpace {
    fn free_bytes(&self) -> std::io::Result<u64> {
        let stat = rustix::fs::statvfs(&self.path)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
}

/// What the store sheds load for; each is off when `None`.
#[derive(Clone, Default)]
pub(crate) struct Sources {
    pub disk: Option<(Arc<dyn FreeSpace>, u64)>,
    pub backlog: Option<(Arc<dyn DeliveryQueue>, u64)>,
}

#[derive(Default)]
struct Cached {
    checked_at: Option<Instant>,
    verdict: Option<Shedding>,
}

/// The cached verdict and what it is measured from.
pub(crate) struct Shedder {
    sources: Sources,
    interval: Duration,
    cached: Mutex<Cached>,
    /// Set while one caller measures, so that the others use the last verdict instead
    /// of measuring too.
    measuring: AtomicBool,
    /// The free space the disk was last measured with (`u64::MAX` before the first
    /// measurement), and the body bytes written since: between two measurements the
    /// free space is estimated from them, so a flood of large messages cannot cross the
    /// floor in the second a verdict is cached (at 80 MB/s it would cross the default
    /// floor of 75 MiB).
    last_free: AtomicU64,
    written: AtomicU64,
}

/// Clears [`Shedder::measuring`] however the measurement ends, a dropped future too.
struct Measuring<'a>(&'a AtomicBool);

impl Drop for Measuring<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Shedder {
    pub(crate) fn new(sources: Sources, interval: Duration) -> Self {
        Shedder {
            sources,
            interval,
            cached: Mutex::new(Cached::default()),
            measuring: AtomicBool::new(false),
            last_free: AtomicU64::new(u64::MAX),
            written: AtomicU64::new(0),
        }
    }

    /// Counts `bytes` of body written to the disk since it was last measured.
    pub(crate) fn wrote(&self, bytes: usize) {
        if self.sources.disk.is_some() {
            let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
            self.written.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// The disk's verdict from its last measurement less what was written since.
    fn estimate(&self) -> Option<Shedding> {
        let (_, floor) = self.sources.disk.as_ref()?;
        let last = self.last_free.load(Ordering::Relaxed);
        if last == u64::MAX {
            return None;
        }
        let free = last.saturating_sub(self.written.load(Ordering::Relaxed));
        (free < *floor).then_some(Shedding::DiskFull {
            free,
            floor: *floor,
        })
    }

    /// The verdict, measured again if the last one is older than the interval.
    pub(crate) async fn verdict(&self) -> Option<Shedding> {
        if self.sources.disk.is_none() && self.sources.backlog.is_none() {
            return None;
        }
        {
            let Ok(cached) = self.cached.lock() else {
                return None;
            };
            let fresh = cached
                .checked_at
                .is_some_and(|at| at.elapsed() < self.interval);
            if fresh || self.measuring.swap(true, Ordering::AcqRel) {
                return cached.verdict.or_else(|| self.estimate());
            }
        }
        let _measuring = Measuring(&self.measuring);
        let verdict = self.measure().await;
        let before = match self.cached.lock() {
            Ok(mut cached) => {
                cached.checked_at = Some(Instant::now());
                std::mem::replace(&mut cached.verdict, verdict)
            }
            Err(_) => return verdict,
        };
        report_change(before, verdict);
        verdict
    }

    async fn measure(&self) -> Option<Shedding> {
        if let Some((probe, floor)) = &self.sources.disk {
            // What was written until now is in the measurement; what is written while
            // statvfs runs may be too, and counts toward the next estimate anyway (the
            // estimate errs on the side of the floor).
            let before = self.written.load(Ordering::Relaxed);
            // statvfs blocks on a filesystem that hangs (NFS): never on a Tokio worker.
            let probe = Arc::clone(probe);
            let measured = tokio::task::spawn_blocking(move || probe.free_bytes())
                .await
                .unwrap_or_else(|joined| Err(std::io::Error::other(joined.to_string())));
            if let Ok(free) = measured {
                self.last_free.store(free, Ordering::Relaxed);
                self.written.fetch_sub(before, Ordering::Relaxed);
            }
            match measured {
                Ok(free) if free < *floor => {
                    return Some(Shedding::DiskFull {
                        free,
                        floor: *floor,
                    });
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot measure the free space of the data disk")
                }
            }
        }
        if let Some((queue, max)) = &self.sources.backlog {
            match queue.stats(SystemTime::now()).await {
                Ok(stats) if stats.pending > *max => {
                    return Some(Shedding::Backlog {
                        pending: stats.pending,
                        max: *max,
                    });
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot count the delivery backlog"),
            }
        }
        None
    }
}

/// Logs a change of verdict and sets the `mailfwd_shedding{reason}` gauge, so that an
/// operator sees when and why new mail is refused, and when it is taken again.
fn report_change(before: Option<Shedding>, now: Option<Shedding>) {
    for reason in ["disk", "backlog"] {
        let on = now.is_some_and(|why| why.reason() == reason);
        metrics::gauge!("mailfwd_shedding", "reason" => reason).set(if on { 1.0 } else { 0.0 });
    }
    match (before, now) {
        (None, Some(why)) => tracing::warn!(reason = why.reason(), "refusing new mail: {why}"),
        (Some(_), None) => tracing::info!("taking new mail again"),
        _ => {}
    }
}
