//! Shortest expected delay (`sed`), IPVS's algorithm: the server with the smallest
//! `(active + 1) / weight`, the delay a new connection would expect if every server served its
//! established connections at a rate proportional to its weight. Inactive connections don't
//! count. Servers with weight 0 are skipped; ties go to the first server in the list.
//!
//! Unlike `wlc`, the `+ 1` makes an idle heavy server preferred over an idle light one.

use super::wlc::least_weighted;
use super::Scheduler;
use crate::flow::FlowKey;
use crate::lb::Dest;

/// `sed`'s (and `nq`'s) overhead: the established connections plus the new one.
pub(super) fn sed_overhead(d: &Dest) -> u64 {
    u64::from(d.active) + 1
}

/// Shortest expected delay; stateless.
#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn schedule(&mut self, dests: &[Dest], _key: &FlowKey) -> Option<usize> {
        least_weighted(dests, sed_overhead)
    }

    fn update(&mut self, _dests: &[Dest]) {}
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn picks_shortest_expected_delay() {
        let mut s = ShortestExpectedDelay;
        // (0+1)/1 = 1 against (1+1)/3 = 0.67: the busy heavy server beats the idle light one.
        let d = with_active(&[1, 3], &[0, 1]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        // (0+1)/1 = 1 against (3+1)/3 = 1.33.
        let d = with_active(&[1, 3], &[0, 3]);
        assert_eq!(s.schedule(&d, &key(0)), Some(0));
        // Idle servers: the heavier one (wlc would take the first).
        assert_eq!(s.schedule(&dests(&[1, 2]), &key(0)), Some(1));
    }

    #[test]
    fn inactive_ignored_and_ties_go_first() {
        let mut s = ShortestExpectedDelay;
        let mut d = with_active(&[1, 2], &[1, 3]);
        d[0].inactive = 1000;
        // 2/1 against 4/2: a tie.
        assert_eq!(s.schedule(&d, &key(0)), Some(0));
    }

    #[test]
    fn zero_weight_skipped_and_all_zero_is_none() {
        let mut s = ShortestExpectedDelay;
        let d = with_active(&[0, 1], &[0, 50]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        assert_eq!(s.schedule(&dests(&[0, 0, 0]), &key(0)), None);
        assert_eq!(s.schedule(&[], &key(0)), None);
    }
}
