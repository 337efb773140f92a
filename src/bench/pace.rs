//! Open-loop pacing: how many packets are due at a given TSC reading.
//!
//! A paced generator offers `rate` packets per second whatever the device under test does: what
//! is due and cannot be put on the ring is lost, like frames a NIC misses, and is counted, never
//! sent later (which would turn the open loop into a closed one and hide queueing). The pacer is
//! pure: it takes the TSC reading as an argument.
//!
//! A generator that falls behind (its own core is too slow for the rate) is limited to `max_burst`
//! packets per call; the shortfall accumulates and shows as an offered rate below the target, so
//! a report can say the target was not offered rather than pretend it was.

/// Packets due per TSC interval at a fixed rate.
#[derive(Clone, Debug)]
pub struct Pacer {
    rate: u64,
    hz: u64,
    start: u64,
    offered: u64,
    max_burst: usize,
}

impl Pacer {
    /// `rate` packets per second, on a TSC of `hz` ticks per second, starting at TSC `start`,
    /// at most `max_burst` packets per [`Pacer::due`].
    pub fn new(rate: u64, hz: u64, start: u64, max_burst: usize) -> Pacer {
        Pacer {
            rate,
            hz: hz.max(1),
            start,
            offered: 0,
            max_burst: max_burst.max(1),
        }
    }

    /// Packets that should have been offered between the start and `now`.
    pub fn target(&self, now: u64) -> u64 {
        let elapsed = now.saturating_sub(self.start);
        (u128::from(elapsed) * u128::from(self.rate) / u128::from(self.hz)) as u64
    }

    /// How many packets to offer now (at most `max_burst`). Call [`Pacer::offered`] with what was
    /// actually offered (sent or lost).
    pub fn due(&self, now: u64) -> usize {
        let owed = self.target(now).saturating_sub(self.offered);
        owed.min(self.max_burst as u64) as usize
    }

    /// Record `n` packets offered (sent, or lost because the ring was full).
    pub fn offered(&mut self, n: usize) {
        self.offered += n as u64;
    }

    /// Packets offered so far.
    pub fn total(&self) -> u64 {
        self.offered
    }

    /// Start over at `now` (e.g. at the start of the measured interval).
    pub fn restart(&mut self, now: u64) {
        self.start = now;
        self.offered = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_follows_the_rate() {
        // 1 Mpps on a 1 GHz TSC: one packet per 1000 ticks.
        let mut p = Pacer::new(1_000_000, 1_000_000_000, 5_000, 32);
        assert_eq!(p.due(5_000), 0);
        assert_eq!(p.due(5_999), 0);
        assert_eq!(p.due(6_000), 1);
        assert_eq!(p.due(15_000), 10);
        p.offered(10);
        assert_eq!(p.due(15_000), 0);
        assert_eq!(p.due(16_000), 1);
        // A long stall is capped per call and owed afterwards, not forgotten.
        assert_eq!(p.due(1_005_000), 32);
        p.offered(32);
        assert_eq!(p.total(), 42);
        assert_eq!(p.target(1_005_000), 1000);
        assert_eq!(p.due(1_005_000), 32);
    }

    #[test]
    fn over_a_second_it_offers_the_rate() {
        let hz = 2_000_000_000u64;
        let mut p = Pacer::new(3_000_000, hz, 0, 64);
        let mut now = 0;
        while now < hz {
            let n = p.due(now);
            p.offered(n);
            now += 7_919; // an irregular loop period
        }
        let total = p.total();
        assert!((2_999_000..=3_000_000).contains(&total), "{total}");
    }

    #[test]
    fn restart_forgets_the_past() {
        let mut p = Pacer::new(1_000, 1_000, 0, 1000);
        assert_eq!(p.due(500), 500);
        p.restart(500);
        assert_eq!(p.due(500), 0);
        assert_eq!(p.due(600), 100);
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let p = Pacer::new(1_000, 1_000, 100, 8);
        assert_eq!(p.due(50), 0);
    }
}
