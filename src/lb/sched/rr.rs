//! Round robin (`rr`): servers in turn, skipping those with weight 0.

use super::Scheduler;
use crate::flow::FlowKey;
use crate::lb::Dest;

/// Round robin over available servers.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn schedule(&mut self, dests: &[Dest], _key: &FlowKey) -> Option<usize> {
        let n = dests.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if dests.get(i).is_some_and(Dest::available) {
                self.next = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    fn update(&mut self, dests: &[Dest]) {
        if self.next >= dests.len() {
            self.next = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn takes_turns_and_skips_quiescent() {
        let d = dests(&[1, 0, 5]);
        let mut s = RoundRobin::default();
        let picks: Vec<_> = (0..4).map(|i| s.schedule(&d, &key(i))).collect();
        assert_eq!(picks, vec![Some(0), Some(2), Some(0), Some(2)]);
        assert_eq!(s.schedule(&dests(&[0, 0]), &key(0)), None);
        assert_eq!(s.schedule(&[], &key(0)), None);
    }
}
