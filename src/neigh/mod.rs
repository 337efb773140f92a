//! Neighbours and routes: which port and next hop reach an address, and that next hop's MAC.
//!
//! Sans-IO: [`Neighbours`] never sends anything. It answers "send with this MAC", "queued, send
//! an ARP request", or "dropped, here is why", and [`Neighbours::poll`] lists the retries that
//! are due; the worker pipeline builds and sends the frames. Each worker has its own table, fed by
//! the ARP it receives.
//!
//! Bounded everywhere: packets waiting for a resolution are capped per neighbour and in total, and
//! learned entries are capped; what does not fit is dropped and counted by the caller.

pub mod route;

pub use route::Routes;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use hashbrown::HashMap;

use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::MacAddr;

#[derive(Debug)]
enum State {
    /// From the config; never replaced by ARP.
    Static,
    /// Learned; used until `until`, then refreshed while still in use.
    Reachable { until: Instant },
    /// A request is outstanding (`tries` sent so far). A stale entry keeps its old MAC here.
    Resolving { tries: u32, next: Instant },
}

#[derive(Debug)]
struct Entry<B> {
    mac: Option<MacAddr>,
    state: State,
    queue: VecDeque<B>,
}

/// What to do with a packet for a next hop.
#[derive(Debug)]
pub enum Resolve<B> {
    /// Send it to this MAC now. `refresh`: also send an ARP request (the entry is stale).
    Ready {
        /// The next hop's MAC.
        mac: MacAddr,
        /// The packet, handed back.
        buf: B,
        /// Send an ARP request to refresh the entry.
        refresh: bool,
    },
    /// Held until the neighbour answers. `request`: send the first ARP request now.
    Queued {
        /// Send an ARP request now.
        request: bool,
    },
    /// Not held: the caller drops it and counts `reason`.
    Dropped(B, DropReason),
}

/// Slots of the usable-entry cache in front of the table (a power of two).
const MEMO_SLOTS: usize = 16;
const _: () = assert!(MEMO_SLOTS.is_power_of_two() && MEMO_SLOTS < 1 << 16);

/// A usable entry as [`Neighbours::resolve`] last found it: its key, MAC and, for a learned one,
/// the end of its reachable time (`None`: static).
type Memo = (u16, Ipv4Addr, MacAddr, Option<Instant>);

/// A worker's neighbour table.
///
/// In front of the hash table sits a small direct-mapped cache of entries that were usable
/// (static, or reachable) when last resolved, so forwarding to a handful of servers costs a
/// compare instead of a hash lookup per packet. A neighbour's cached copy is dropped when
/// [`Neighbours::learn`] changes it, and [`Neighbours::add_static`] empties the cache; an entry
/// whose reachable time ran out misses it and takes the table's path, which starts the refresh.
#[derive(Debug)]
pub struct Neighbours<B> {
    memo: [Option<Memo>; MEMO_SLOTS],
    entries: HashMap<(u16, Ipv4Addr), Entry<B>>,
    queued: usize,
    next_due: Option<Instant>,
    retries: u32,
    retry_interval: Duration,
    reachable: Duration,
    per_neighbor: usize,
    total: usize,
    max_entries: usize,
}

/// How the table resolves and what it holds (from `[arp]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpParams {
    /// Requests sent before the frames waiting for an answer are dropped.
    pub retries: u32,
    /// Time between requests.
    pub retry_interval: Duration,
    /// How long an answer is trusted before it is refreshed.
    pub reachable: Duration,
    /// Frames held per unresolved neighbour.
    pub queue_per_neighbor: usize,
    /// Frames held for all unresolved neighbours together.
    pub queue_total: usize,
    /// Most entries the table keeps.
    pub max_entries: usize,
}

impl<B> Neighbours<B> {
    /// An empty table with these limits.
    pub fn new(p: &ArpParams) -> Self {
        Neighbours {
            memo: [None; MEMO_SLOTS],
            entries: HashMap::new(),
            queued: 0,
            next_due: None,
            retries: p.retries,
            retry_interval: p.retry_interval,
            reachable: p.reachable,
            per_neighbor: p.queue_per_neighbor,
            total: p.queue_total,
            max_entries: p.max_entries,
        }
    }

    /// Add a static entry.
    pub fn add_static(&mut self, port: u16, ip: Ipv4Addr, mac: MacAddr) {
        self.memo = [None; MEMO_SLOTS];
        self.entries.insert(
            (port, ip),
            Entry {
                mac: Some(mac),
                state: State::Static,
                queue: VecDeque::new(),
            },
        );
    }

    /// The MAC for `ip` on `port`, if known (static or learned, even if stale).
    pub fn mac(&self, port: u16, ip: Ipv4Addr) -> Option<MacAddr> {
        self.entries.get(&(port, ip)).and_then(|e| e.mac)
    }

    /// Packets held for all neighbours.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The cache slot of a neighbour: always below [`MEMO_SLOTS`] (the top bits of a 32-bit
    /// product), so indexing the cache with it cannot fail.
    #[inline(always)]
    fn memo_slot(port: u16, ip: Ipv4Addr) -> usize {
        // Fibonacci hashing: the top bits of the product depend on every bit of the key.
        let key = u32::from(ip) ^ u32::from(port).rotate_left(16);
        (key.wrapping_mul(0x9E37_79B1) >> (32 - MEMO_SLOTS.trailing_zeros())) as usize
    }

    fn due(&mut self, t: Instant) {
        self.next_due = Some(self.next_due.map_or(t, |d| d.min(t)));
    }

    /// Resolve `ip` on `port` for `buf`.
    pub fn resolve(&mut self, port: u16, ip: Ipv4Addr, buf: B, now: Instant) -> Resolve<B> {
        let slot = Self::memo_slot(port, ip);
        if let Some((p, a, mac, until)) = self.memo[slot] {
            if p == port && a == ip && until.map_or(true, |u| u > now) {
                return Resolve::Ready {
                    mac,
                    buf,
                    refresh: false,
                };
            }
        }
        let retry_at = now + self.retry_interval;
        if let Some(e) = self.entries.get_mut(&(port, ip)) {
            match (&e.state, e.mac) {
                (State::Static, Some(mac)) => {
                    self.memo[slot] = Some((port, ip, mac, None));
                    return Resolve::Ready {
                        mac,
                        buf,
                        refresh: false,
                    };
                }
                (State::Reachable { until }, Some(mac)) => {
                    if *until > now {
                        self.memo[slot] = Some((port, ip, mac, Some(*until)));
                        return Resolve::Ready {
                            mac,
                            buf,
                            refresh: false,
                        };
                    }
                    e.state = State::Resolving {
                        tries: 1,
                        next: retry_at,
                    };
                    self.due(retry_at);
                    return Resolve::Ready {
                        mac,
                        buf,
                        refresh: true,
                    };
                }
                (State::Resolving { .. }, Some(mac)) => {
                    return Resolve::Ready {
                        mac,
                        buf,
                        refresh: false,
                    }
                }
                _ => {}
            }
            // Resolving without a MAC: hold the packet.
            if e.queue.len() >= self.per_neighbor || self.queued >= self.total {
                return Resolve::Dropped(buf, DropReason::NeighQueueFull);
            }
            e.queue.push_back(buf);
            self.queued += 1;
            return Resolve::Queued { request: false };
        }
        if self.entries.len() >= self.max_entries || self.queued >= self.total {
            return Resolve::Dropped(buf, DropReason::NeighQueueFull);
        }
        let mut queue = VecDeque::new();
        queue.push_back(buf);
        self.queued += 1;
        self.entries.insert(
            (port, ip),
            Entry {
                mac: None,
                state: State::Resolving {
                    tries: 1,
                    next: retry_at,
                },
                queue,
            },
        );
        self.due(retry_at);
        Resolve::Queued { request: true }
    }

    /// Record that `ip` on `port` has `mac` (from an ARP request or reply). Entries are created
    /// only when `create` (the packet was addressed to us), otherwise only updated. Returns the
    /// packets that were waiting, to be sent to `mac` now.
    pub fn learn(
        &mut self,
        port: u16,
        ip: Ipv4Addr,
        mac: MacAddr,
        now: Instant,
        create: bool,
    ) -> VecDeque<B> {
        let until = now + self.reachable;
        if !mac.is_unicast() {
            return VecDeque::new();
        }
        // Only this neighbour's own cached copy can be out of date.
        let m = &mut self.memo[Self::memo_slot(port, ip)];
        if m.is_some_and(|(p, a, ..)| (p, a) == (port, ip)) {
            *m = None;
        }
        match self.entries.get_mut(&(port, ip)) {
            Some(e) => {
                if matches!(e.state, State::Static) {
                    return VecDeque::new();
                }
                e.mac = Some(mac);
                e.state = State::Reachable { until };
                self.queued -= e.queue.len();
                std::mem::take(&mut e.queue)
            }
            None => {
                if create && self.entries.len() < self.max_entries {
                    self.entries.insert(
                        (port, ip),
                        Entry {
                            mac: Some(mac),
                            state: State::Reachable { until },
                            queue: VecDeque::new(),
                        },
                    );
                }
                VecDeque::new()
            }
        }
    }

    /// Retries that are due: push `(port, ip)` for each ARP request to send, and hand every
    /// packet of a resolution that ran out of retries to `drop` (reason
    /// [`DropReason::NeighUnresolved`]). Cheap when nothing is due.
    pub fn poll(
        &mut self,
        now: Instant,
        requests: &mut Vec<(u16, Ipv4Addr)>,
        mut drop: impl FnMut(B),
    ) {
        match self.next_due {
            Some(t) if t <= now => {}
            _ => return,
        }
        self.next_due = None;
        let mut failed = Vec::new();
        let mut next_due: Option<Instant> = None;
        for (k, e) in self.entries.iter_mut() {
            if let State::Resolving { tries, next } = &mut e.state {
                if *next > now {
                    next_due = Some(next_due.map_or(*next, |d| d.min(*next)));
                    continue;
                }
                if *tries >= self.retries {
                    failed.push(*k);
                    continue;
                }
                *tries += 1;
                *next = now + self.retry_interval;
                next_due = Some(next_due.map_or(*next, |d| d.min(*next)));
                requests.push(*k);
            }
        }
        for k in failed {
            if let Some(e) = self.entries.remove(&k) {
                self.queued -= e.queue.len();
                e.queue.into_iter().for_each(&mut drop);
            }
        }
        if let Some(t) = next_due {
            self.due(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Neighbours<u32> {
        Neighbours::new(&ArpParams {
            retries: 3,
            retry_interval: Duration::from_millis(1000),
            reachable: Duration::from_secs(300),
            queue_per_neighbor: 2,
            queue_total: 3,
            max_entries: 16,
        })
    }
    const IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x11]);

    #[test]
    fn queue_then_learn_flushes_in_order() {
        let mut n = table();
        let t = Instant::from_secs(1);
        assert!(matches!(
            n.resolve(1, IP, 7, t),
            Resolve::Queued { request: true }
        ));
        assert!(matches!(
            n.resolve(1, IP, 8, t),
            Resolve::Queued { request: false }
        ));
        assert!(matches!(
            n.resolve(1, IP, 9, t),
            Resolve::Dropped(9, DropReason::NeighQueueFull)
        ));
        assert_eq!(n.queued(), 2);
        let out: Vec<u32> = n.learn(1, IP, MAC, t, false).into_iter().collect();
        assert_eq!(out, vec![7, 8]);
        assert_eq!(n.queued(), 0);
        assert!(matches!(
            n.resolve(1, IP, 10, t),
            Resolve::Ready {
                mac: MAC,
                buf: 10,
                refresh: false
            }
        ));
    }

    #[test]
    fn retries_then_gives_up_and_drops() {
        let mut n = table();
        let _ = n.resolve(0, IP, 1, Instant::from_secs(0));
        let mut reqs = vec![];
        let mut dropped = vec![];
        for s in 1..=3 {
            n.poll(Instant::from_millis(s * 1000 + 1), &mut reqs, |b| {
                dropped.push(b)
            });
        }
        assert_eq!(reqs, vec![(0, IP), (0, IP)]); // tries 2 and 3 (the first went with resolve)
        assert_eq!(dropped, vec![1]);
        assert_eq!(n.queued(), 0);
        assert!(n.mac(0, IP).is_none());
    }

    #[test]
    fn stale_entry_is_used_and_refreshed() {
        let mut n = table();
        n.learn(0, IP, MAC, Instant::ZERO, true);
        let late = Instant::from_secs(301);
        assert!(matches!(
            n.resolve(0, IP, 1, late),
            Resolve::Ready { refresh: true, .. }
        ));
        assert!(matches!(
            n.resolve(0, IP, 2, late),
            Resolve::Ready { refresh: false, .. }
        ));
    }

    /// The cache in front of the table must not outlive what it copied: a reachable time that
    /// ran out, or a MAC that changed.
    #[test]
    fn cached_entries_expire_and_follow_new_macs() {
        let mut n = table();
        let t = Instant::from_secs(1);
        n.learn(0, IP, MAC, t, true);
        assert!(
            matches!(n.resolve(0, IP, 1, t), Resolve::Ready { mac, refresh: false, .. } if mac == MAC)
        );
        // Cached now; a second server in another slot does not disturb it.
        n.learn(0, Ipv4Addr::new(198, 51, 100, 12), MAC, t, true);
        assert!(
            matches!(n.resolve(0, IP, 2, t), Resolve::Ready { mac, refresh: false, .. } if mac == MAC)
        );
        let moved = MacAddr([2, 0, 0, 0, 0, 0x99]);
        n.learn(0, IP, moved, t, true);
        assert!(matches!(n.resolve(0, IP, 3, t), Resolve::Ready { mac, .. } if mac == moved));
        // Reachable for 300 s from its last learning: past that, the cached copy must miss and
        // the table must ask for a refresh.
        assert!(matches!(
            n.resolve(0, IP, 4, Instant::from_secs(302)),
            Resolve::Ready { refresh: true, .. }
        ));
        // The same address on another port is another neighbour.
        assert!(matches!(
            n.resolve(1, IP, 5, t),
            Resolve::Queued { request: true }
        ));
    }

    #[test]
    fn static_entries_are_not_overwritten_and_unsolicited_not_created() {
        let mut n = table();
        n.add_static(0, IP, MAC);
        n.learn(0, IP, MacAddr([2, 9, 9, 9, 9, 9]), Instant::ZERO, true);
        assert_eq!(n.mac(0, IP), Some(MAC));
        let other = Ipv4Addr::new(198, 51, 100, 99);
        n.learn(0, other, MAC, Instant::ZERO, false);
        assert!(n.mac(0, other).is_none());
    }

    #[test]
    fn global_queue_bound() {
        let mut n = table();
        let t = Instant::ZERO;
        for i in 0..3u8 {
            let _ = n.resolve(0, Ipv4Addr::new(198, 51, 100, 20 + i), u32::from(i), t);
        }
        assert!(matches!(
            n.resolve(0, Ipv4Addr::new(198, 51, 100, 30), 9, t),
            Resolve::Dropped(_, DropReason::NeighQueueFull)
        ));
    }
}
