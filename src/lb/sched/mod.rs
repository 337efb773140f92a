//! Schedulers: one algorithm a file behind the [`Scheduler`] trait.
//!
//! A scheduler picks the index of a server in a service's server list for a new connection, or
//! `None` when no server is available (all weights zero, or no servers). It sees the flow key so
//! that hashing schedulers can use it. Each worker has its own instance.

mod lc;
mod mh;
mod nq;
mod rr;
mod sed;
mod sh;
mod wlc;
mod wrr;

pub use lc::LeastConnection;
pub use mh::{MaglevHashing, MH_TABLE_SIZE};
pub use nq::NeverQueue;
pub use rr::RoundRobin;
pub use sed::ShortestExpectedDelay;
pub use sh::{SourceHashing, SH_TABLE_BITS};
pub use wlc::WeightedLeastConnection;
pub use wrr::WeightedRoundRobin;

use crate::flow::FlowKey;
use crate::lb::Dest;

/// Scheduler of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin (IPVS's algorithm).
    #[default]
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections.
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Source hashing (256 buckets).
    Sh,
    /// Maglev hashing (prime table of 65537 entries).
    Mh,
}

impl SchedulerKind {
    /// Every scheduler.
    pub const ALL: [SchedulerKind; 8] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Sh,
        SchedulerKind::Mh,
    ];

    /// ipvsadm's name.
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
        }
    }
}

/// Picks a real server for a new connection.
pub trait Scheduler: Send + std::fmt::Debug {
    /// ipvsadm's name for it.
    fn name(&self) -> &'static str;
    /// Index into `dests` of the chosen server.
    fn schedule(&mut self, dests: &[Dest], key: &FlowKey) -> Option<usize>;
    /// The server list or weights changed.
    fn update(&mut self, dests: &[Dest]);
}

/// A scheduler of the given kind, initialised for `dests`.
pub fn new(kind: SchedulerKind, dests: &[Dest]) -> Box<dyn Scheduler> {
    let mut s: Box<dyn Scheduler> = match kind {
        SchedulerKind::Rr => Box::new(RoundRobin::default()),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin::default()),
        SchedulerKind::Lc => Box::new(LeastConnection),
        SchedulerKind::Wlc => Box::new(WeightedLeastConnection),
        SchedulerKind::Sed => Box::new(ShortestExpectedDelay),
        SchedulerKind::Nq => Box::new(NeverQueue),
        SchedulerKind::Sh => Box::new(SourceHashing::default()),
        SchedulerKind::Mh => Box::new(MaglevHashing::default()),
    };
    s.update(dests);
    s
}

/// A scheduler by its ipvsadm name (`rr`, `wrr`, `lc`, `wlc`, `sed`, `nq`, `sh`, `mh`),
/// initialised for `dests`; `None` for a name we don't implement.
pub fn by_name(name: &str, dests: &[Dest]) -> Option<Box<dyn Scheduler>> {
    let mut s: Box<dyn Scheduler> = match name {
        "rr" => Box::new(RoundRobin::default()),
        "wrr" => Box::new(WeightedRoundRobin::default()),
        "lc" => Box::new(LeastConnection),
        "wlc" => Box::new(WeightedLeastConnection),
        "sed" => Box::new(ShortestExpectedDelay),
        "nq" => Box::new(NeverQueue),
        "sh" => Box::new(SourceHashing::default()),
        "mh" => Box::new(MaglevHashing::default()),
        _ => return None,
    };
    s.update(dests);
    Some(s)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use std::net::Ipv4Addr;

    pub fn dests(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Dest {
                addr: Ipv4Addr::new(198, 51, 100, 10 + i as u8),
                port: 8080,
                weight: *w,
                index: i as u16,
                active: 0,
                inactive: 0,
                passive: None,
            })
            .collect()
    }

    pub fn key(i: u32) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::from(0xC000_0200 + i),
            dst: Ipv4Addr::new(192, 0, 2, 100),
            sport: 1024 + (i % 60000) as u16,
            dport: 80,
            proto: 6,
        }
    }

    /// Servers with these weights and (active, inactive) connection counts.
    pub fn with_conns(weights: &[u32], conns: &[(u32, u32)]) -> Vec<Dest> {
        let mut d = dests(weights);
        for (d, (a, i)) in d.iter_mut().zip(conns) {
            d.active = *a;
            d.inactive = *i;
        }
        d
    }

    /// Servers with these weights and active connection counts (no inactive ones).
    pub fn with_active(weights: &[u32], active: &[u32]) -> Vec<Dest> {
        let conns: Vec<(u32, u32)> = active.iter().map(|a| (*a, 0)).collect();
        with_conns(weights, &conns)
    }

    /// How many of `n` picks each server got.
    pub fn tally(s: &mut dyn Scheduler, d: &[Dest], n: u32) -> Vec<u32> {
        let mut c = vec![0; d.len()];
        for i in 0..n {
            if let Some(x) = s.schedule(d, &key(i)) {
                c[x] += 1;
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn by_name_knows_every_scheduler() {
        let d = dests(&[1, 2]);
        for name in ["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "mh"] {
            let mut s = by_name(name, &d).unwrap();
            assert_eq!(s.name(), name);
            assert!(s.schedule(&d, &key(3)).is_some(), "{name}");
            assert_eq!(s.schedule(&dests(&[0, 0]), &key(3)), None, "{name}");
        }
        assert!(by_name("dh", &d).is_none());
    }
}
