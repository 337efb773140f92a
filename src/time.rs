//! Monotonic time as a plain value.
//!
//! The pure core never reads a clock: every function that expires, retries or rate-limits takes
//! `now: Instant` as an argument. The runtime derives it from the TSC once per burst; tests
//! construct it from numbers.

use std::ops::{Add, Sub};
use std::time::Duration;

/// Nanoseconds since an arbitrary, fixed epoch (the process start in the runtime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }
    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(1_000_000))
    }
    /// From seconds since the epoch.
    pub const fn from_secs(s: u64) -> Self {
        Instant(s.saturating_mul(1_000_000_000))
    }
    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ns))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(5);
        assert_eq!((t + Duration::from_millis(1500)).as_nanos(), 6_500_000_000);
        assert_eq!(t - Duration::from_secs(10), Instant::ZERO);
        assert_eq!(
            Instant::from_secs(7).saturating_since(t),
            Duration::from_secs(2)
        );
        assert_eq!(t.saturating_since(Instant::from_secs(7)), Duration::ZERO);
    }
}
