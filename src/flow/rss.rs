//! Toeplitz hashing (the RSS hash NICs compute) and the flow-ownership function built on it.
//!
//! rvs configures the NIC's RSS with [`RSS_KEY`] (Microsoft's published 40-byte default key) so
//! that receive work spreads over queues, and computes the same Toeplitz hash in software where a
//! device gives none. Correctness never depends on which queue a packet arrives on: every TCP/UDP
//! packet has an *owner* worker, derived from the client's address alone (both directions of a
//! NAT flow carry it: as source on the way in, as destination in the reply), and a worker that
//! receives a packet it does not own hands it to the owner. Because the owner depends on the
//! client address only, every connection of one client (all its ports, its FTP data connections,
//! its persistence entries) lives on one worker, without locks.

use std::net::Ipv4Addr;

/// Microsoft's RSS verification key, the default of most NIC drivers.
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key` (input at most `key.len() - 4` bytes; longer input
/// is hashed only up to that length).
pub fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut result = 0u32;
    // The 32-bit window of the key that lines up with the current input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    let n = input.len().min(key.len() - 4);
    for (i, byte) in input.iter().take(n).enumerate() {
        let next = key[i + 4];
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    result
}

/// RSS hash of an IPv4 2-tuple (what a NIC computes for "IPv4" hash types).
pub fn hash_ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&src.octets());
    b[4..].copy_from_slice(&dst.octets());
    toeplitz(&RSS_KEY, &b)
}

/// RSS hash of an IPv4 4-tuple (the "IPv4 TCP/UDP" hash types).
pub fn hash_ipv4_l4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b[8..10].copy_from_slice(&sport.to_be_bytes());
    b[10..].copy_from_slice(&dport.to_be_bytes());
    toeplitz(&RSS_KEY, &b)
}

/// Which worker owns the flows of a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sharding {
    workers: u16,
    mask: u32,
}

impl Sharding {
    /// `workers` workers (at least 1); clients are grouped by the `prefix` leading bits of their
    /// address (32: each address on its own; shorter when a service's persistence netmask groups
    /// clients, so a whole group lands on one worker).
    pub fn new(workers: u16, prefix: u8) -> Sharding {
        let prefix = u32::from(prefix.min(32));
        Sharding {
            workers: workers.max(1),
            mask: u32::MAX.checked_shl(32 - prefix).unwrap_or(0),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// The worker that owns every flow of `client`.
    #[inline]
    pub fn owner(&self, client: Ipv4Addr) -> u16 {
        if self.workers == 1 {
            return 0;
        }
        let masked = Ipv4Addr::from(u32::from(client) & self.mask);
        let mut b = [0u8; 4];
        b.copy_from_slice(&masked.octets());
        // Multiply-shift onto [0, workers): no modulo bias worth speaking of, no division.
        let h = toeplitz(&RSS_KEY, &b);
        ((u64::from(h) * u64::from(self.workers)) >> 32) as u16
    }

    /// The worker that owns a full-NAT reply `src:sport → dst:dport` (server → local address):
    /// the queue a NIC's 4-tuple RSS puts it on with the default redirection table (entry `i` →
    /// queue `i mod workers`, exact when `workers` divides the table size, as powers of two do).
    /// Local ports are chosen so that this is the worker owning the client (see `lb::laddr`), so
    /// on such a NIC replies arrive where their flow lives, with no handover.
    #[inline]
    pub fn owner_of_reply(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u16 {
        if self.workers == 1 {
            return 0;
        }
        (hash_ipv4_l4(src, dst, sport, dport) % u32::from(self.workers)) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// Microsoft's "Verifying the RSS Hash Calculation" vectors (source first, then destination).
    #[test]
    fn matches_the_published_verification_suite() {
        let cases = [
            (
                "66.9.149.187",
                2794,
                "161.142.100.80",
                1766,
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                "199.92.111.2",
                14230,
                "65.69.140.83",
                4739,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                "24.19.198.95",
                12898,
                "12.22.207.184",
                38024,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                "38.27.205.30",
                48228,
                "209.142.163.6",
                2217,
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                "153.39.163.191",
                44251,
                "202.188.127.2",
                1303,
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        for (s, sp, d, dp, h2, h4) in cases {
            assert_eq!(hash_ipv4(ip(s), ip(d)), h2, "{s} -> {d}");
            assert_eq!(
                hash_ipv4_l4(ip(s), ip(d), sp, dp),
                h4,
                "{s}:{sp} -> {d}:{dp}"
            );
        }
    }

    #[test]
    fn owner_depends_on_the_masked_client_only_and_spreads() {
        let one = Sharding::new(1, 32);
        assert_eq!(one.owner(ip("203.0.113.10")), 0);
        let two = Sharding::new(2, 32);
        let mut count = [0u32; 2];
        for i in 0..10_000u32 {
            let o = two.owner(Ipv4Addr::from(0xCB00_7100u32.wrapping_add(i * 7919)));
            count[usize::from(o)] += 1;
        }
        assert!(
            count.iter().all(|c| (4_500..=5_500).contains(c)),
            "{count:?}"
        );
        let grouped = Sharding::new(4, 24);
        let o = grouped.owner(ip("198.51.100.1"));
        assert!((0..=255u8).all(|h| grouped.owner(Ipv4Addr::new(198, 51, 100, h)) == o));
        assert!((0..64u32).all(|i| Sharding::new(3, 32).owner(Ipv4Addr::from(i)) < 3));
    }
}
