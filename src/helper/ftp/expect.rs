//! Data-connection expectations: written by the slow path, read by every worker, lock-free.
//!
//! When the slow path sees a PORT/EPRT it will let through, or a 227/229 (or, in DR/TUN, a
//! PASV/EPSV), it publishes an [`Expectation`]: "the next TCP SYN from `src` to `dst:dport` is
//! a data connection of this control connection; send it to this server". Workers look here only
//! on a flow-table miss, and only when [`Expectations::live`] says any exist.
//!
//! The table is a fixed array of slots, each a small seqlock: a 64-bit `state` word (generation
//! and status) guards six 64-bit field words. There is exactly one writer (the slow path), which
//! fills a slot only while it is `FREE` and then publishes it as `LIVE` with a release store. A
//! reader copies the fields between two loads of `state` and keeps the copy only if `state` did
//! not move. Claiming is a compare-and-swap of `LIVE(gen)` to `CLAIMED(gen)`, so an expectation
//! is used exactly once even if two workers match it at the same instant, and a claim can never
//! succeed on fields from an older generation of the slot. The slow path reaps claimed slots
//! (counting them as used), revokes live ones (a compare-and-swap to `FREE`, which loses to a
//! claim), and expires them by time.
//!
//! Where a claim happens: rvs hands every packet to the worker that owns its flow before the
//! lookup (see `flow::rss`), and a data connection is owned by the same worker as its control
//! connection (the same client address; full-NAT active-mode local ports encode their owner). So
//! in practice the owner claims; correctness does not depend on it, only the master link does
//! (see `worker::pipeline`).
//!
//! Where an expectation lives: its home slot hashes (src, dst, key port), and it takes the first
//! free slot of the [`PROBE`] slots from there. The key port is the one port of the first packet
//! that the expectation knows: the destination port, or for DR/TUN active mode (whose client
//! SYN-ACK may go to any VIP port) the client's source port, the port its PORT/EPRT announced.
//! A port is part of the key so that the data connections of many sessions between the same two
//! hosts spread over the table instead of crowding one window (they did: fast active-mode
//! sessions of one client on one server filled the 16 slots and had a PORT refused, and in DR
//! every active-mode expectation of one client to one VIP shared the any-port window). An
//! expectation for any port that names no port at all (`dport` 0, DR/TUN passive pins) hashes
//! with port 0, so a SYN's claim looks in its port's window, then in port 0's; a SYN-ACK's claim
//! ([`Expectations::claim_return`]) looks in its source port's window only.
//!
//! Limitations: a table that is locally crowded still refuses an insert (counted) before it is
//! globally full.

use std::net::Ipv4Addr;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

use crate::time::Instant;

const FREE: u64 = 0;
const LIVE: u64 = 1;
const CLAIMED: u64 = 2;
const STATUS_BITS: u32 = 2;
const STATUS_MASK: u64 = (1 << STATUS_BITS) - 1;
/// Slots probed from a key's home slot.
pub const PROBE: usize = 16;
const WORDS: usize = 6;

/// What the data connection's first packet looks like, and therefore how its flow is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExpectKind {
    /// Passive mode: the client connects to `dst:dport` (the VIP); `dport` 0 means any port of
    /// the service (DR/TUN, where rvs never sees the 227/229).
    Passive = 0,
    /// Active mode: the server connects from `src` to `dst:dport` (the client in NAT, a local
    /// address in full NAT).
    Active = 1,
    /// Active mode in DR/TUN: the server connects to the client directly, from the VIP, so the
    /// client's answer (its SYN-ACK, from `client_port`) comes to rvs, to any port of the VIP.
    ActiveReturn = 2,
}

/// One expected data connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// Source address of the data connection's SYN.
    pub src: Ipv4Addr,
    /// Its destination address.
    pub dst: Ipv4Addr,
    /// Its destination port (0: any port of `service`).
    pub dport: u16,
    /// Passive or active.
    pub kind: ExpectKind,
    /// The control connection's service.
    pub service: u16,
    /// The control connection's server (global index).
    pub dest: u16,
    /// That server's address.
    pub server: Ipv4Addr,
    /// Passive: the server's data port (0: the same as the client's destination port).
    pub server_port: u16,
    /// The control connection's client.
    pub client: Ipv4Addr,
    /// Active: the port the client listens on.
    pub client_port: u16,
    /// Active full NAT: the local address and port the server was told to connect to.
    pub laddr: Ipv4Addr,
    /// See `laddr`.
    pub lport: u16,
    /// The worker holding the control connection.
    pub master_worker: u16,
    /// The control connection's slot in that worker's flow table.
    pub master: u32,
    /// When it lapses unused.
    pub expires: Instant,
}

impl Expectation {
    fn encode(&self) -> [u64; WORDS] {
        let ip = |a: Ipv4Addr| u64::from(u32::from(a));
        [
            ip(self.src) << 32 | ip(self.dst),
            u64::from(self.dport) << 48
                | u64::from(self.kind as u8) << 40
                | u64::from(self.service) << 16
                | u64::from(self.dest),
            ip(self.server) << 32 | u64::from(self.server_port) << 16 | u64::from(self.client_port),
            ip(self.client) << 32 | ip(self.laddr),
            u64::from(self.lport) << 48
                | u64::from(self.master_worker) << 32
                | u64::from(self.master),
            self.expires.as_nanos(),
        ]
    }

    fn decode(w: &[u64; WORDS]) -> Expectation {
        let hi = |x: u64| Ipv4Addr::from((x >> 32) as u32);
        let lo = |x: u64| Ipv4Addr::from(x as u32);
        Expectation {
            src: hi(w[0]),
            dst: lo(w[0]),
            dport: (w[1] >> 48) as u16,
            kind: match (w[1] >> 40) as u8 {
                1 => ExpectKind::Active,
                2 => ExpectKind::ActiveReturn,
                _ => ExpectKind::Passive,
            },
            service: (w[1] >> 16) as u16,
            dest: w[1] as u16,
            server: hi(w[2]),
            server_port: (w[2] >> 16) as u16,
            client_port: w[2] as u16,
            client: hi(w[3]),
            laddr: lo(w[3]),
            lport: (w[4] >> 48) as u16,
            master_worker: (w[4] >> 32) as u16,
            master: w[4] as u32,
            expires: Instant::from_nanos(w[5]),
        }
    }

    /// The port its home slot hashes with (see the module doc).
    #[inline]
    fn key_port(&self) -> u16 {
        match self.kind {
            ExpectKind::ActiveReturn => self.client_port,
            _ => self.dport,
        }
    }

    /// True when the first packet `src:sport → dst:dport` is this expectation's data
    /// connection.
    #[inline]
    pub fn matches(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> bool {
        self.src == src
            && self.dst == dst
            && (self.dport == 0 || self.dport == dport)
            && (self.kind != ExpectKind::ActiveReturn || self.client_port == sport)
    }
}

#[derive(Debug)]
struct Slot {
    state: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// A handle to a published expectation (slot and generation), for revoking it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExpectId {
    slot: u32,
    gen: u64,
}

/// What happened to an expectation the slow path asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still waiting.
    Live,
    /// A worker made its data connection (the slot is free again).
    Used,
    /// Revoked or expired before use (the slot is free again).
    Gone,
}

/// The shared table. `Sync`: the slow path writes, workers read and claim.
#[derive(Debug)]
pub struct Expectations {
    slots: Box<[Slot]>,
    mask: usize,
    live: AtomicUsize,
}

impl Expectations {
    /// A table of at least `capacity` slots (rounded up to a power of two).
    pub fn new(capacity: usize) -> Expectations {
        let n = capacity.max(PROBE).next_power_of_two();
        Expectations {
            slots: (0..n)
                .map(|_| Slot {
                    state: AtomicU64::new(FREE),
                    words: Default::default(),
                })
                .collect(),
            mask: n - 1,
            live: AtomicUsize::new(0),
        }
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Expectations published and not yet claimed, revoked or reaped. Workers skip the table
    /// when this is 0 (one relaxed load per flow-table miss).
    #[inline]
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    #[inline]
    fn home(&self, src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> usize {
        let k = u64::from(u32::from(src)) << 32 | u64::from(u32::from(dst));
        // The port goes in low, where the multiply carries it into every bit of the slot.
        let k = (k ^ u64::from(dport)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (k >> 32) as usize & self.mask
    }

    /// The windows an expectation for a packet to `dport` may be in: its own port's, and the
    /// any-port window (the same one when `dport` is 0).
    fn windows(&self, src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> impl Iterator<Item = usize> {
        let (exact, mask) = (self.home(src, dst, dport), self.mask);
        let any = (dport != 0).then(|| self.home(src, dst, 0));
        std::iter::once(exact)
            .chain(any)
            .flat_map(move |home| (0..PROBE).map(move |k| (home + k) & mask))
    }

    /// Publish `e` (slow path only: the table has a single writer). `None` when every slot in
    /// the probe window of its key is taken.
    pub fn insert(&self, e: &Expectation) -> Option<ExpectId> {
        let home = self.home(e.src, e.dst, e.key_port());
        for k in 0..PROBE {
            let i = (home + k) & self.mask;
            let Some(slot) = self.slots.get(i) else {
                continue;
            };
            let st = slot.state.load(Ordering::Acquire);
            if st & STATUS_MASK != FREE {
                continue;
            }
            for (w, v) in slot.words.iter().zip(e.encode()) {
                w.store(v, Ordering::Relaxed);
            }
            let gen = (st >> STATUS_BITS).wrapping_add(1);
            // Release: a reader that sees LIVE(gen) sees the fields written above.
            slot.state
                .store(gen << STATUS_BITS | LIVE, Ordering::Release);
            self.live.fetch_add(1, Ordering::Relaxed);
            return Some(ExpectId {
                slot: i as u32,
                gen,
            });
        }
        None
    }

    /// Find and claim the expectation for a SYN `src → dst:dport` that `accept` agrees to (it
    /// sees a consistent copy before the claim). Exactly one caller wins a given expectation.
    pub fn claim(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        now: Instant,
        accept: impl FnMut(&Expectation) -> bool,
    ) -> Option<Expectation> {
        if self.live() == 0 {
            return None;
        }
        let slots = self.windows(src, dst, dport);
        self.claim_in(slots, (src, dst, sport, dport), now, accept)
    }

    /// Find and claim the DR/TUN active-mode expectation for a client's SYN-ACK
    /// `src:sport → dst:dport` (keyed on `sport`, the port the client announced), as
    /// [`Expectations::claim`] does for SYNs.
    pub fn claim_return(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        now: Instant,
        accept: impl FnMut(&Expectation) -> bool,
    ) -> Option<Expectation> {
        if self.live() == 0 {
            return None;
        }
        let (home, mask) = (self.home(src, dst, sport), self.mask);
        let slots = (0..PROBE).map(move |k| (home + k) & mask);
        self.claim_in(slots, (src, dst, sport, dport), now, accept)
    }

    fn claim_in(
        &self,
        slots: impl Iterator<Item = usize>,
        (src, dst, sport, dport): (Ipv4Addr, Ipv4Addr, u16, u16),
        now: Instant,
        mut accept: impl FnMut(&Expectation) -> bool,
    ) -> Option<Expectation> {
        for i in slots {
            let Some(slot) = self.slots.get(i) else {
                continue;
            };
            let s1 = slot.state.load(Ordering::Acquire);
            if s1 & STATUS_MASK != LIVE {
                continue;
            }
            let mut w = [0u64; WORDS];
            for (d, a) in w.iter_mut().zip(slot.words.iter()) {
                *d = a.load(Ordering::Relaxed);
            }
            // Seqlock read: the copy is good only if the state did not move meanwhile.
            fence(Ordering::Acquire);
            if slot.state.load(Ordering::Relaxed) != s1 {
                continue;
            }
            let e = Expectation::decode(&w);
            if !e.matches(src, dst, sport, dport) || e.expires <= now || !accept(&e) {
                continue;
            }
            let claimed = s1 & !STATUS_MASK | CLAIMED;
            if slot
                .state
                .compare_exchange(s1, claimed, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.live.fetch_sub(1, Ordering::Relaxed);
                return Some(e);
            }
        }
        None
    }

    /// True when a live expectation is for exactly `src → dst:dport` (slow path: choosing a
    /// VIP port that names one data connection only).
    pub fn is_expected(&self, src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> bool {
        let home = self.home(src, dst, dport);
        (0..PROBE).any(|k| {
            self.slots.get((home + k) & self.mask).is_some_and(|slot| {
                let st = slot.state.load(Ordering::Acquire);
                if st & STATUS_MASK != LIVE {
                    return false;
                }
                let mut w = [0u64; WORDS];
                for (d, a) in w.iter_mut().zip(slot.words.iter()) {
                    *d = a.load(Ordering::Relaxed);
                }
                let e = Expectation::decode(&w);
                e.src == src && e.dst == dst && e.dport == dport
            })
        })
    }

    /// The state of a published expectation; a used one is reaped (its slot freed) by this
    /// call. Slow path only.
    pub fn poll(&self, id: ExpectId) -> Outcome {
        let Some(slot) = self.slots.get(id.slot as usize) else {
            return Outcome::Gone;
        };
        let st = slot.state.load(Ordering::Acquire);
        if st >> STATUS_BITS != id.gen {
            return Outcome::Gone;
        }
        match st & STATUS_MASK {
            LIVE => Outcome::Live,
            CLAIMED => {
                slot.state.store(
                    id.gen.wrapping_add(1) << STATUS_BITS | FREE,
                    Ordering::Release,
                );
                Outcome::Used
            }
            _ => Outcome::Gone,
        }
    }

    /// Withdraw an expectation (its control connection ended, or it expired). Returns
    /// [`Outcome::Used`] when a worker claimed it first (then the slot is reaped instead).
    /// Slow path only.
    pub fn revoke(&self, id: ExpectId) -> Outcome {
        let Some(slot) = self.slots.get(id.slot as usize) else {
            return Outcome::Gone;
        };
        let live = id.gen << STATUS_BITS | LIVE;
        let free = id.gen.wrapping_add(1) << STATUS_BITS | FREE;
        match slot
            .state
            .compare_exchange(live, free, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                self.live.fetch_sub(1, Ordering::Relaxed);
                Outcome::Gone
            }
            Err(_) => self.poll(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn passive(client: &str, port: u16, now: Instant) -> Expectation {
        Expectation {
            src: ip(client),
            dst: ip("203.0.113.1"),
            dport: port,
            kind: ExpectKind::Passive,
            service: 3,
            dest: 7,
            server: ip("198.51.100.11"),
            server_port: port,
            client: ip(client),
            client_port: 0,
            laddr: Ipv4Addr::UNSPECIFIED,
            lport: 0,
            master_worker: 1,
            master: 0xdead_beef,
            expires: now + Duration::from_secs(300),
        }
    }

    #[test]
    fn encode_decode_round_trips_every_field() {
        let now = Instant::from_nanos(5_000_000_000);
        let mut e = passive("203.0.113.50", 40000, now);
        e.kind = ExpectKind::Active;
        e.laddr = ip("198.51.100.2");
        e.lport = 65000;
        e.client_port = 50123;
        assert_eq!(Expectation::decode(&e.encode()), e);
        assert_eq!(
            Expectation::decode(&passive("203.0.113.9", 1, now).encode()),
            passive("203.0.113.9", 1, now)
        );
    }

    #[test]
    fn claimed_once_then_gone_and_reaped() {
        let now = Instant::from_nanos(1);
        let t = Expectations::new(64);
        assert_eq!(t.live(), 0);
        let e = passive("203.0.113.50", 40000, now);
        let id = t.insert(&e).unwrap();
        assert_eq!(t.live(), 1);
        assert_eq!(t.poll(id), Outcome::Live);
        // Wrong port, wrong client: no match.
        assert!(t.claim(e.src, e.dst, 0, 40001, now, |_| true).is_none());
        assert!(t
            .claim(ip("203.0.113.51"), e.dst, 0, 40000, now, |_| true)
            .is_none());
        // Refused by the caller: still live.
        assert!(t.claim(e.src, e.dst, 0, 40000, now, |_| false).is_none());
        assert_eq!(t.claim(e.src, e.dst, 0, 40000, now, |_| true), Some(e));
        assert!(t.claim(e.src, e.dst, 0, 40000, now, |_| true).is_none());
        assert_eq!(t.live(), 0);
        assert_eq!(t.revoke(id), Outcome::Used, "a claim beats a revoke");
        assert_eq!(t.poll(id), Outcome::Gone);
        // The slot is reusable, and the old id does not touch the new expectation.
        let id2 = t.insert(&e).unwrap();
        assert_ne!(id, id2);
        assert_eq!(t.revoke(id), Outcome::Gone);
        assert_eq!(t.poll(id2), Outcome::Live);
        assert_eq!(t.revoke(id2), Outcome::Gone);
        assert_eq!(t.live(), 0);
        assert!(t.claim(e.src, e.dst, 0, 40000, now, |_| true).is_none());
    }

    #[test]
    fn any_port_and_expiry() {
        let now = Instant::from_nanos(1);
        let t = Expectations::new(16);
        let mut e = passive("203.0.113.50", 0, now);
        e.expires = now + Duration::from_secs(1);
        t.insert(&e).unwrap();
        let later = now + Duration::from_secs(2);
        assert!(t.claim(e.src, e.dst, 0, 10005, later, |_| true).is_none());
        assert!(t.claim(e.src, e.dst, 0, 10005, now, |_| true).is_some());
    }

    #[test]
    fn a_crowded_window_refuses() {
        let now = Instant::from_nanos(1);
        let t = Expectations::new(16);
        let e = passive("203.0.113.50", 40000, now);
        for _ in 0..PROBE {
            assert!(t.insert(&e).is_some());
        }
        assert!(t.insert(&e).is_none());
        assert_eq!(t.live(), PROBE);
    }

    /// Several sessions between the same two hosts: three times a window's worth of data
    /// ports all find a slot (the port is part of the home), each is claimed by its own SYN
    /// only, and an any-port pin of the same hosts is still found beside them.
    #[test]
    fn one_host_pair_spreads_over_the_table() {
        let now = Instant::from_nanos(1);
        let t = Expectations::new(4096);
        let ports: Vec<u16> = (0..3 * PROBE as u16).map(|i| 40000 + i).collect();
        for &p in &ports {
            assert!(
                t.insert(&passive("203.0.113.50", p, now)).is_some(),
                "port {p}"
            );
        }
        let pin = passive("203.0.113.50", 0, now);
        assert!(t.insert(&pin).is_some());
        assert!(t.is_expected(pin.src, pin.dst, ports[7]));
        for &p in ports.iter().rev() {
            let e = t.claim(pin.src, pin.dst, 0, p, now, |e| e.dport != 0);
            assert_eq!(e.map(|e| e.dport), Some(p));
        }
        // Only the pin is left, and it takes a SYN to any port.
        assert_eq!(t.live(), 1);
        let e = t.claim(pin.src, pin.dst, 0, 41234, now, |_| true);
        assert_eq!(e.map(|e| e.dport), Some(0));
    }

    /// DR/TUN active mode: many sessions of one client on one VIP (each PORT announces its own
    /// client port) all find a slot, far beyond one window, and each SYN-ACK claims its own
    /// session's expectation only (a SYN never does).
    #[test]
    fn one_client_many_active_returns() {
        let now = Instant::from_nanos(1);
        let t = Expectations::new(4096);
        let n = 8 * PROBE as u16;
        let ret = |p: u16| Expectation {
            kind: ExpectKind::ActiveReturn,
            dport: 0,
            client_port: 30000 + p,
            dest: p,
            ..passive("203.0.113.50", 0, now)
        };
        for p in 0..n {
            assert!(t.insert(&ret(p)).is_some(), "session {p}");
        }
        assert_eq!(t.live(), usize::from(n));
        let (src, vip) = (ip("203.0.113.50"), ip("203.0.113.1"));
        let syn_only = |e: &Expectation| e.kind != ExpectKind::ActiveReturn;
        assert!(t.claim(src, vip, 30005, 20, now, syn_only).is_none());
        for p in (0..n).rev() {
            let e = t.claim_return(src, vip, 30000 + p, 20, now, |_| true);
            assert_eq!(e.map(|e| e.dest), Some(p), "session {p}");
        }
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn racing_workers_make_exactly_one_claim_each() {
        let now = Instant::from_nanos(1);
        let t = Arc::new(Expectations::new(1024));
        let n = 200u16;
        let client = |p: u16| Ipv4Addr::new(203, 0, 113, p as u8);
        for p in 0..n {
            let mut e = passive("203.0.113.1", 20000 + p, now);
            e.src = client(p);
            t.insert(&e).unwrap();
        }
        let wins: Vec<usize> = (0..4)
            .map(|_| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    (0..n)
                        .filter(|p| {
                            t.claim(client(*p), ip("203.0.113.1"), 0, 20000 + p, now, |_| true)
                                .is_some()
                        })
                        .count()
                })
            })
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(wins.iter().sum::<usize>(), usize::from(n));
        assert_eq!(t.live(), 0);
    }
}
