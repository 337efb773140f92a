//! Never queue (`nq`), IPVS's algorithm: the first idle server (no established connections,
//! weight above 0) if there is one, otherwise shortest expected delay (see [`super::sed`]).
//! Servers with weight 0 are skipped.
//!
//! "Idle" is as this worker sees it: another worker may have given that server a connection.

use super::sed::sed_overhead;
use super::wlc::least_weighted;
use super::Scheduler;
use crate::flow::FlowKey;
use crate::lb::Dest;

/// Never queue; stateless.
#[derive(Debug, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn schedule(&mut self, dests: &[Dest], _key: &FlowKey) -> Option<usize> {
        dests
            .iter()
            .position(|d| d.available() && d.active == 0)
            .or_else(|| least_weighted(dests, sed_overhead))
    }

    fn update(&mut self, _dests: &[Dest]) {}
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn idle_server_first() {
        let mut s = NeverQueue;
        // sed would pick server 1 ((1+1)/10 < (0+1)/1); nq takes the idle one.
        let d = with_active(&[10, 10, 1], &[1, 1, 0]);
        assert_eq!(s.schedule(&d, &key(0)), Some(2));
        // The first idle one, whatever the weights (sed would take the heavier).
        assert_eq!(s.schedule(&dests(&[1, 5]), &key(0)), Some(0));
        // Inactive connections don't make a server busy.
        let mut d = with_active(&[1, 1], &[1, 0]);
        d[1].inactive = 7;
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
    }

    #[test]
    fn falls_back_to_sed_when_all_busy() {
        let mut s = NeverQueue;
        let d = with_active(&[1, 3], &[1, 3]);
        // (1+1)/1 = 2 against (3+1)/3 = 1.33.
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        let d = with_active(&[1, 3], &[1, 5]);
        assert_eq!(s.schedule(&d, &key(0)), Some(0));
    }

    #[test]
    fn zero_weight_skipped_and_all_zero_is_none() {
        let mut s = NeverQueue;
        // The idle server has weight 0: not eligible.
        let d = with_active(&[0, 1], &[0, 9]);
        assert_eq!(s.schedule(&d, &key(0)), Some(1));
        assert_eq!(s.schedule(&dests(&[0, 0]), &key(0)), None);
        assert_eq!(s.schedule(&[], &key(0)), None);
    }
}
