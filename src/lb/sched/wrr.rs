//! Weighted round robin (`wrr`), IPVS's algorithm: a current weight steps down from the maximum by
//! the weights' greatest common divisor; each round, every server whose weight is at least the
//! current weight gets one connection. Over a cycle a server gets exactly `weight / gcd` turns,
//! interleaved rather than in blocks.

use super::Scheduler;
use crate::flow::FlowKey;
use crate::lb::Dest;

/// IPVS-style weighted round robin.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Index of the last server chosen (`None` before the first pick).
    last: Option<usize>,
    /// Current weight.
    cw: u32,
    /// Largest weight.
    mw: u32,
    /// Greatest common divisor of the non-zero weights.
    di: u32,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn schedule(&mut self, dests: &[Dest], _key: &FlowKey) -> Option<usize> {
        let n = dests.len();
        if n == 0 || self.mw == 0 {
            return None;
        }
        // At most one full cycle of weights times servers; bounded, so a bad state can't spin.
        let steps = n.saturating_mul((self.mw / self.di.max(1)) as usize + 1);
        for _ in 0..=steps {
            let i = match self.last {
                Some(l) => (l + 1) % n,
                None => 0,
            };
            self.last = Some(i);
            if i == 0 {
                self.cw = self.cw.saturating_sub(self.di);
                if self.cw == 0 {
                    self.cw = self.mw;
                }
            }
            if dests
                .get(i)
                .is_some_and(|d| d.weight >= self.cw && d.weight > 0)
            {
                return Some(i);
            }
        }
        None
    }

    fn update(&mut self, dests: &[Dest]) {
        self.mw = dests.iter().map(|d| d.weight).max().unwrap_or(0);
        self.di = dests
            .iter()
            .map(|d| d.weight)
            .filter(|w| *w > 0)
            .fold(0, gcd)
            .max(1);
        self.cw = self.cw.min(self.mw);
        if self.last.is_some_and(|l| l >= dests.len()) {
            self.last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn exact_ratio_over_whole_cycles() {
        let d = dests(&[3, 1]);
        let mut s = super::super::new(crate::lb::SchedulerKind::Wrr, &d);
        assert_eq!(tally(s.as_mut(), &d, 400), vec![300, 100]);
        let d = dests(&[4, 2, 6]);
        let mut s = super::super::new(crate::lb::SchedulerKind::Wrr, &d);
        assert_eq!(tally(s.as_mut(), &d, 1200), vec![400, 200, 600]);
    }

    #[test]
    fn interleaves_rather_than_blocks() {
        let d = dests(&[2, 2]);
        let mut s = WeightedRoundRobin::default();
        s.update(&d);
        let picks: Vec<_> = (0..4).filter_map(|i| s.schedule(&d, &key(i))).collect();
        assert_eq!(picks, vec![0, 1, 0, 1]);
    }

    #[test]
    fn zero_weights_take_nothing() {
        let d = dests(&[0, 5, 0]);
        let mut s = WeightedRoundRobin::default();
        s.update(&d);
        assert_eq!(tally(&mut s, &d, 50), vec![0, 50, 0]);
        let z = dests(&[0, 0]);
        s.update(&z);
        assert_eq!(s.schedule(&z, &key(0)), None);
    }

    #[test]
    fn weight_change_takes_effect() {
        let mut d = dests(&[1, 1]);
        let mut s = WeightedRoundRobin::default();
        s.update(&d);
        assert_eq!(tally(&mut s, &d, 100), vec![50, 50]);
        d[0].weight = 0;
        s.update(&d);
        assert_eq!(tally(&mut s, &d, 10), vec![0, 10]);
    }
}
