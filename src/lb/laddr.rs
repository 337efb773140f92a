//! Full-NAT local addresses and ports: which `laddr:lport` a new full-NAT flow uses towards its
//! server.
//!
//! Each worker has its own allocator over the same addresses. A port is taken only when the
//! reply it will draw (server:sport → laddr:lport) hashes to this very worker
//! ([`Sharding::owner_of_reply`]), so (a) a NIC with 4-tuple RSS delivers replies straight to
//! the owner, and (b) two workers can never hand out the same (laddr, lport) for the same
//! server:sport. Within a worker a bitmap per address makes each port single-use until its flow
//! ends. Ports below 1024 are never used, nor the top ones reserved for FTP active mode.
//!
//! Cost: on average `workers` candidates are hashed per allocation; the scan is bounded, and a
//! pool with no suitable free port fails the allocation (the caller drops and counts).

use std::net::Ipv4Addr;

use crate::flow::rss::Sharding;

const FIRST_PORT: u16 = 1024;
/// Ports from here up are reserved for the FTP helper's active-mode data connections (see
/// `helper::ftp::ctl::ActivePorts`); workers never hand them out.
pub const FTP_ACTIVE_FIRST: u16 = 61440;
const LAST_PORT: u16 = FTP_ACTIVE_FIRST - 1;
/// Candidates looked at per address before trying the next one.
const SCAN_LIMIT: usize = 4096;

/// One worker's full-NAT local ports.
#[derive(Debug)]
pub struct LocalPorts {
    addrs: Vec<Ipv4Addr>,
    /// One bit per port, per address.
    used: Vec<Vec<u64>>,
    cursor: Vec<u16>,
    next: usize,
    in_use: usize,
}

impl LocalPorts {
    /// An allocator over `addrs` (may be empty: then every allocation fails).
    pub fn new(addrs: &[Ipv4Addr]) -> LocalPorts {
        LocalPorts {
            addrs: addrs.to_vec(),
            used: addrs.iter().map(|_| vec![0u64; 1024]).collect(),
            cursor: addrs.iter().map(|_| FIRST_PORT).collect(),
            next: 0,
            in_use: 0,
        }
    }

    /// Ports handed out and not yet freed.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// A free `laddr:lport` for a flow to `server:sport` whose reply hashes to `worker`.
    pub fn alloc(
        &mut self,
        server: Ipv4Addr,
        sport: u16,
        sharding: &Sharding,
        worker: u16,
    ) -> Option<(Ipv4Addr, u16)> {
        let n = self.addrs.len();
        for k in 0..n {
            let a = (self.next + k) % n;
            let (Some(addr), Some(used), Some(cursor)) = (
                self.addrs.get(a),
                self.used.get_mut(a),
                self.cursor.get_mut(a),
            ) else {
                continue;
            };
            let mut port = *cursor;
            for _ in 0..SCAN_LIMIT {
                port = if port >= LAST_PORT {
                    FIRST_PORT
                } else {
                    port + 1
                };
                let (w, bit) = (usize::from(port / 64), 1u64 << (port % 64));
                let free = used.get(w).is_some_and(|x| x & bit == 0);
                if free && sharding.owner_of_reply(server, *addr, sport, port) == worker {
                    if let Some(x) = used.get_mut(w) {
                        *x |= bit;
                    }
                    *cursor = port;
                    self.next = (a + 1) % n;
                    self.in_use += 1;
                    return Some((*addr, port));
                }
            }
            *cursor = port;
        }
        None
    }

    /// Give `laddr:lport` back (ignored when it is not one of ours or not in use).
    pub fn free(&mut self, laddr: Ipv4Addr, lport: u16) {
        let Some(a) = self.addrs.iter().position(|x| *x == laddr) else {
            return;
        };
        let (w, bit) = (usize::from(lport / 64), 1u64 << (lport % 64));
        if let Some(x) = self.used.get_mut(a).and_then(|u| u.get_mut(w)) {
            if *x & bit != 0 {
                *x &= !bit;
                self.in_use -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    const L2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
    const S: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);

    #[test]
    fn ports_are_unique_owned_by_the_worker_and_reusable() {
        let sh = Sharding::new(2, 32);
        let mut a = LocalPorts::new(&[L1, L2]);
        let mut b = LocalPorts::new(&[L1, L2]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let (la, pa) = a.alloc(S, 8080, &sh, 0).unwrap();
            let (lb, pb) = b.alloc(S, 8080, &sh, 1).unwrap();
            assert!(pa >= 1024 && pb >= 1024);
            assert!(pa < FTP_ACTIVE_FIRST && pb < FTP_ACTIVE_FIRST);
            assert_eq!(sh.owner_of_reply(S, la, 8080, pa), 0);
            assert_eq!(sh.owner_of_reply(S, lb, 8080, pb), 1);
            assert!(
                seen.insert((la, pa)) && seen.insert((lb, pb)),
                "no (laddr, lport) twice"
            );
        }
        assert_eq!(a.in_use(), 2000);
        let (l, p) = a.alloc(S, 8080, &sh, 0).unwrap();
        a.free(l, p);
        a.free(l, p);
        a.free(Ipv4Addr::new(203, 0, 113, 9), 5000);
        assert_eq!(a.in_use(), 2000);
    }

    #[test]
    fn exhaustion_fails_instead_of_reusing() {
        let sh = Sharding::new(1, 32);
        let mut a = LocalPorts::new(&[L1]);
        let total = usize::from(LAST_PORT - FIRST_PORT) + 1;
        for _ in 0..total {
            assert!(a.alloc(S, 80, &sh, 0).is_some());
        }
        assert!(a.alloc(S, 80, &sh, 0).is_none());
        a.free(L1, 4000);
        // Each call scans a bounded window from its cursor: the freed port is found once the
        // cursor comes round to it, within one turn of the port space.
        let turns = (total / SCAN_LIMIT) + 2;
        let found = (0..turns).find_map(|_| a.alloc(S, 80, &sh, 0));
        assert_eq!(found, Some((L1, 4000)));
        assert!(LocalPorts::new(&[]).alloc(S, 80, &sh, 0).is_none());
    }
}
