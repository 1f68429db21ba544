//! Times as unix milliseconds, the way every table stores them.
//!
//! BIGINT milliseconds rather than `timestamptz`: the domain passes its own clock and
//! keeps millisecond precision, integers round-trip exactly, and the workspace's sqlx has
//! no date-time feature. `to_timestamp(x / 1000.0)` shows one as a date in `psql`.

use std::time::{Duration, SystemTime};

/// Milliseconds since the Unix epoch, negative before it.
pub(crate) fn unix_millis(time: SystemTime) -> i64 {
    let clamp = |ms: u128| i64::try_from(ms).unwrap_or(i64::MAX);
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => clamp(after.as_millis()),
        Err(before) => -clamp(before.duration().as_millis()),
    }
}

/// The time `ms` milliseconds after (or before, if negative) the Unix epoch.
pub(crate) fn from_unix_millis(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + offset
    } else {
        SystemTime::UNIX_EPOCH - offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        for ms in [0, 1, 1_730_000_000_123, -86_400_001] {
            assert_eq!(unix_millis(from_unix_millis(ms)), ms);
        }
    }
}
