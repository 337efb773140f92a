//! Flow keys for the generator: flow index ⇄ client address and port, without a table.
//!
//! Clients are the 254 host addresses of 192.0.2.0/24 (RFC 5737 TEST-NET-1, behind the client
//! port's gateway) and source ports 1024–65535, so up to 254 × 64512 ≈ 16.4 million distinct
//! client ends exist. Flow `i` of a lane uses address `i mod A` of the lane's addresses and port
//! `1024 + i / A`: consecutive flows come from different addresses, and the mapping is
//! arithmetic, so 10 million flows cost the generator no memory.
//!
//! With several workers each lane (one worker's traffic) uses only the client addresses that
//! worker owns (`flow::rss::Sharding::owner`), so the shards are independent: no packet is ever
//! handed over. The lanes' key sets are therefore disjoint, and each lane's capacity is about
//! 16.4 million divided by the number of workers.

use std::net::Ipv4Addr;

use crate::flow::rss::Sharding;

/// First client source port.
pub const FIRST_PORT: u16 = 1024;
/// Source ports per client address.
pub const PORTS: u64 = 65536 - FIRST_PORT as u64;
/// The client network, 192.0.2.0/24 (its first three octets).
pub const CLIENT_NET: [u8; 3] = [192, 0, 2];

/// One lane's client ends.
#[derive(Clone, Debug)]
pub struct FlowKeys {
    addrs: Vec<Ipv4Addr>,
    /// Last octet → position in `addrs` + 1 (0: not this lane's).
    pos: Vec<u16>,
}

impl FlowKeys {
    /// The keys of lane `lane` when `sharding` splits clients over its workers.
    pub fn for_lane(lane: u16, sharding: &Sharding) -> FlowKeys {
        let [a, b, c] = CLIENT_NET;
        let addrs: Vec<Ipv4Addr> = (1..=254u8)
            .map(|h| Ipv4Addr::new(a, b, c, h))
            .filter(|ip| sharding.owner(*ip) == lane)
            .collect();
        let mut pos = vec![0u16; 256];
        for (i, ip) in addrs.iter().enumerate() {
            if let Some(p) = pos.get_mut(usize::from(ip.octets()[3])) {
                *p = i as u16 + 1;
            }
        }
        FlowKeys { addrs, pos }
    }

    /// Number of distinct client ends.
    pub fn capacity(&self) -> u64 {
        self.addrs.len() as u64 * PORTS
    }

    /// The lane's client addresses.
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }

    /// Client address and port of flow `i` (`i` is taken modulo the capacity).
    #[inline]
    pub fn key(&self, i: u64) -> (Ipv4Addr, u16) {
        let a = self.addrs.len().max(1) as u64;
        let i = i % (a * PORTS).max(1);
        let addr = self
            .addrs
            .get((i % a) as usize)
            .copied()
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        (addr, FIRST_PORT + (i / a) as u16)
    }

    /// The flow index of a client end, if it is one of this lane's.
    #[inline]
    pub fn index_of(&self, addr: Ipv4Addr, port: u16) -> Option<u64> {
        let o = addr.octets();
        if o[..3] != CLIENT_NET || port < FIRST_PORT {
            return None;
        }
        let p = *self.pos.get(usize::from(o[3]))?;
        if p == 0 {
            return None;
        }
        let a = self.addrs.len() as u64;
        Some(u64::from(port - FIRST_PORT) * a + u64::from(p - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn one_lane_has_every_client_end_once() {
        let k = FlowKeys::for_lane(0, &Sharding::new(1, 32));
        assert_eq!(k.addrs().len(), 254);
        assert_eq!(k.capacity(), 254 * 64512);
        let mut seen = HashSet::new();
        // Every key of the first 200k flows is distinct and maps back to its index.
        for i in 0..200_000u64 {
            let (a, p) = k.key(i);
            assert!(p >= FIRST_PORT);
            assert!(seen.insert((a, p)), "flow {i} repeats {a}:{p}");
            assert_eq!(k.index_of(a, p), Some(i));
        }
        // The last flow is the top port of the last address, and the space then wraps.
        let last = k.capacity() - 1;
        assert_eq!(k.key(last), (Ipv4Addr::new(192, 0, 2, 254), 65535));
        assert_eq!(k.key(last + 1), k.key(0));
        assert_eq!(k.index_of(Ipv4Addr::new(198, 51, 100, 1), 2000), None);
        assert_eq!(k.index_of(Ipv4Addr::new(192, 0, 2, 1), 80), None);
    }

    #[test]
    fn two_lanes_split_the_clients_by_owner() {
        let s = Sharding::new(2, 32);
        let l0 = FlowKeys::for_lane(0, &s);
        let l1 = FlowKeys::for_lane(1, &s);
        assert_eq!(l0.addrs().len() + l1.addrs().len(), 254);
        assert!(l0.addrs().len() > 100 && l1.addrs().len() > 100);
        for i in (0..l0.capacity()).step_by(9973) {
            let (a, p) = l0.key(i);
            assert_eq!(s.owner(a), 0);
            assert_eq!(l1.index_of(a, p), None, "lanes are disjoint");
            assert_eq!(l0.index_of(a, p), Some(i));
        }
        for i in (0..l1.capacity()).step_by(10007) {
            assert_eq!(s.owner(l1.key(i).0), 1);
        }
    }
}
