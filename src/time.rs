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
    /// Later than any time rvs will see (a watermark with no other worker to wait for).
    pub const MAX: Instant = Instant(u64::MAX);

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

/// Turns time-stamp counter readings into [`Instant`]s since a start reading, with a
/// multiply and a shift (the poll loops ask once per iteration; a 128-bit division cost them
/// about as much as a packet's rewrite). Exact to about one part in 2^31.
#[derive(Clone, Copy, Debug)]
pub struct TscClock {
    t0: u64,
    /// Nanoseconds per tick, as a 32.32 fixed-point number.
    ns_per_tick_q32: u128,
}

impl TscClock {
    /// A clock that reads 0 at TSC value `t0`, for a counter of `hz` ticks per second.
    pub fn new(t0: u64, hz: u64) -> TscClock {
        TscClock {
            t0,
            ns_per_tick_q32: (1_000_000_000u128 << 32) / u128::from(hz.max(1)),
        }
    }

    /// The instant of TSC reading `tsc`.
    #[inline]
    pub fn at(&self, tsc: u64) -> Instant {
        Instant(((u128::from(tsc.wrapping_sub(self.t0)) * self.ns_per_tick_q32) >> 32) as u64)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn tsc_clock_matches_the_division() {
        for hz in [
            1_000_000_000u64,
            1_999_999_123,
            2_000_000_000,
            3_400_000_000,
        ] {
            let c = TscClock::new(1000, hz);
            for ticks in [0u64, 1, 999, hz, 3600 * hz, 86_400 * hz] {
                let exact = (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64;
                let got = c.at(1000 + ticks).as_nanos();
                assert!(got.abs_diff(exact) <= 1 + exact / (1 << 30), "{hz} {ticks}");
            }
        }
    }
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
