//! Time, injected. The domain never reads the system clock itself, so TTLs,
//! expiry and webhook age are plain, deterministic unit tests.

use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// The source of "now" for every rule that depends on time.
pub trait Clock: Send + Sync + 'static {
    /// The current time, truncated to microseconds (what both databases keep).
    fn now(&self) -> OffsetDateTime;
}

/// Truncates a timestamp to microsecond precision, the resolution both stores keep,
/// so a value read back equals the value written.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.microsecond();
    t.replace_nanosecond(micros * 1_000).unwrap_or(t)
}

/// A clock that only moves when told to: for tests and deterministic demos.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(truncate_to_micros(start)),
        }
    }

    pub fn set(&self, t: OffsetDateTime) {
        *self.lock() = truncate_to_micros(t);
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now = truncate_to_micros(*now + by);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetDateTime> {
        // A poisoned lock only means another test thread panicked; the time value is still valid.
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(datetime!(2026-01-31 23:59:59.123456789 UTC));
        assert_eq!(clock.now(), datetime!(2026-01-31 23:59:59.123456 UTC));
        clock.advance(Duration::seconds(1));
        assert_eq!(clock.now(), datetime!(2026-02-01 00:00:00.123456 UTC));
    }
}
