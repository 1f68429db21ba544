//! Where delivery reads the time: the system clock, or a test's clock.

use std::time::SystemTime;

/// The time delivery decisions are made at: claims, leases, retries, give-up.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
