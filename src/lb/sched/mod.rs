//! Schedulers: one algorithm a file behind the [`Scheduler`] trait.
//!
//! A scheduler picks the index of a server in a service's server list for a new connection, or
//! `None` when no server is available (all weights zero, or no servers). It sees the flow key so
//! that hashing schedulers can use it. Each worker has its own instance.

mod rr;
mod wrr;

pub use rr::RoundRobin;
pub use wrr::WeightedRoundRobin;

use crate::config::SchedulerKind;
use crate::flow::FlowKey;
use crate::lb::Dest;

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
    };
    s.update(dests);
    s
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
