//! Least connection (`lc`), IPVS's algorithm: the server with the smallest connection overhead,
//! `active * 256 + inactive` (IPVS's `ip_vs_dest_conn_overhead`), skipping servers with weight 0.
//! Weights are otherwise ignored; ties go to the first server in the list.
//!
//! The counts are this worker's own, so with several workers each balances its share rather than
//! the whole; that is the price of keeping the hot path free of shared counters.

use super::Scheduler;
use crate::flow::FlowKey;
use crate::lb::Dest;

/// IPVS's connection overhead of a server: an established connection costs 256 times an opening
/// or closing one, which holds little more than a table entry.
pub(super) fn conn_overhead(d: &Dest) -> u64 {
    (u64::from(d.active) << 8) + u64::from(d.inactive)
}

/// Least connection; stateless.
#[derive(Debug, Default)]
pub struct LeastConnection;

impl Scheduler for LeastConnection {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn schedule(&mut self, dests: &[Dest], _key: &FlowKey) -> Option<usize> {
        dests
            .iter()
            .enumerate()
            .filter(|(_, d)| d.available())
            // `min_by_key` keeps the first of equal minima, so ties go to the earlier server.
            .min_by_key(|(_, d)| conn_overhead(d))
            .map(|(i, _)| i)
    }

    fn update(&mut self, _dests: &[Dest]) {}
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn picks_least_overhead() {
        let mut s = LeastConnection;
        let d = with_conns(&[1, 1, 1], &[(3, 0), (1, 0), (2, 0)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        // One active outweighs 255 inactive, not 256.
        let d = with_conns(&[1, 1], &[(1, 0), (0, 255)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        let d = with_conns(&[1, 1], &[(1, 0), (0, 256)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(0));
    }

    #[test]
    fn ties_go_first_and_weights_are_ignored() {
        let mut s = LeastConnection;
        let d = with_conns(&[1, 9, 1], &[(2, 1), (2, 1), (2, 1)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(0));
    }

    #[test]
    fn zero_weight_skipped_and_all_zero_is_none() {
        let mut s = LeastConnection;
        let d = with_conns(&[0, 1], &[(0, 0), (5, 5)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        assert_eq!(s.schedule(&dests(&[0, 0]), &key(0)), None);
        assert_eq!(s.schedule(&[], &key(0)), None);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let mut s = LeastConnection;
        let d = with_conns(&[1, 1], &[(u32::MAX, u32::MAX), (u32::MAX, 0)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
    }
}
