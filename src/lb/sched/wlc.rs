//! Weighted least connection (`wlc`), IPVS's algorithm: the server with the smallest
//! `overhead / weight`, where overhead is `active * 256 + inactive` (see [`super::lc`]). Servers
//! with weight 0 are skipped; ties go to the first server in the list.
//!
//! Ratios are compared by cross-multiplication, `a_oh * b_w > b_oh * a_w`, in `u128`: no division
//! on the packet path, and no overflow even with every counter and weight at `u32::MAX` (IPVS
//! uses `s64` here and could in principle overflow).

use super::lc::conn_overhead;
use super::Scheduler;
use crate::flow::FlowKey;
use crate::lb::Dest;

/// Index of the available server minimising `overhead(d) / d.weight`; the first on ties. Shared
/// with `sed` and `nq`, which differ only in the overhead.
pub(super) fn least_weighted(dests: &[Dest], overhead: impl Fn(&Dest) -> u64) -> Option<usize> {
    // (index, overhead, weight) of the best so far.
    let mut best: Option<(usize, u64, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if !d.available() {
            continue;
        }
        let oh = overhead(d);
        let better = match best {
            None => true,
            Some((_, loh, lw)) => {
                u128::from(loh) * u128::from(d.weight) > u128::from(oh) * u128::from(lw)
            }
        };
        if better {
            best = Some((i, oh, d.weight));
        }
    }
    best.map(|(i, _, _)| i)
}

/// Weighted least connection; stateless.
#[derive(Debug, Default)]
pub struct WeightedLeastConnection;

impl Scheduler for WeightedLeastConnection {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn schedule(&mut self, dests: &[Dest], _key: &FlowKey) -> Option<usize> {
        least_weighted(dests, conn_overhead)
    }

    fn update(&mut self, _dests: &[Dest]) {}
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn weights_scale_the_load() {
        let mut s = WeightedLeastConnection;
        // 30/3 = 10 per weight against 12/1: the heavier-loaded but heavier server wins.
        let d = with_conns(&[1, 3], &[(12, 0), (30, 0)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        let d = with_conns(&[1, 3], &[(9, 0), (30, 0)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(0));
        // Inactive connections count 1/256 of an active one.
        let d = with_conns(&[2, 2], &[(1, 10), (1, 9)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
    }

    #[test]
    fn ties_go_first() {
        let mut s = WeightedLeastConnection;
        let d = with_conns(&[1, 2], &[(5, 0), (10, 0)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(0));
        assert_eq!(s.schedule(&dests(&[4, 4, 4]), &key(0)), Some(0));
    }

    #[test]
    fn zero_weight_skipped_and_all_zero_is_none() {
        let mut s = WeightedLeastConnection;
        let d = with_conns(&[0, 1, 0], &[(0, 0), (100, 100), (0, 0)]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        assert_eq!(s.schedule(&dests(&[0, 0]), &key(0)), None);
        assert_eq!(s.schedule(&[], &key(0)), None);
    }

    #[test]
    fn converges_to_weight_ratio() {
        // Feed each pick back as an active connection: the counts settle in the weight ratio.
        let mut s = WeightedLeastConnection;
        let mut d = dests(&[1, 2, 5]);
        for i in 0..800 {
            if let Some(x) = s.schedule(&d, &key(i)) {
                d[x].active += 1;
            }
        }
        let got: Vec<u32> = d.iter().map(|d| d.active).collect();
        assert_eq!(got, vec![100, 200, 500]);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut s = WeightedLeastConnection;
        let d = with_conns(
            &[u32::MAX, 1],
            &[(u32::MAX, u32::MAX), (u32::MAX, u32::MAX)],
        );
        assert_eq!(s.schedule(&d, &key(0)), Some(0));
    }
}
