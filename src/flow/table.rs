//! The per-worker flow table: a slab of connections, a hash index with one entry per direction
//! ([`FlowIndex`](super::index)), and a lazy timer wheel for idle expiry.
//!
//! Invariants:
//! - every live connection has exactly two index entries (original and reply key) pointing at its
//!   slot, and exactly one *current* wheel entry: the one filed under `conn.wheel_sec`;
//! - the index is sized up front for the configured capacity (up to [`PRESIZE_LIMIT`] flows, and
//!   grown by rebuilding beyond that), so a busy worker never stalls on a rehash;
//! - memory per flow: 48 bytes of connection, 4 of slot generation, 16 of index (at 57 % load or
//!   less) and 8 of wheel entry; see [`FlowTable::bytes_per_flow`];
//! - refreshing a connection only moves `conn.expires` later, which costs nothing; the wheel entry
//!   is re-filed lazily when its second comes round and the connection turns out to be alive;
//! - shortening a timeout (RST, FIN) files a new, earlier wheel entry; the old one is recognised as
//!   stale when its second comes round (its second is not `conn.wheel_sec`) and discarded;
//! - [`FlowTable::expire`] examines at most `budget` wheel entries or empty seconds per call, so a
//!   mass expiry is spread over many poll-loop iterations instead of stalling the worker.
//!
//! Limitation: expiry has one-second granularity and may run a second or two late.

use super::conn::{Conn, ConnId};
use super::index::FlowIndex;
use super::key::{Dir, FlowKey};
use crate::time::Instant;

/// Seconds covered by one turn of the wheel; longer timeouts are re-filed when their slot comes.
const WHEEL_SLOTS: usize = 4096;
/// Wheel entries a processed second keeps room for (64 × 8 bytes); see [`FlowTable::expire`].
const KEEP_BUCKET: usize = 64;

/// Why a connection could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The table holds `capacity` connections.
    Full,
    /// One of the two keys already belongs to another connection (e.g. the same client port
    /// reaching the same server through two VIPs in NAT mode: the replies would be ambiguous).
    Conflict,
}

#[derive(Clone, Copy, Debug)]
struct WheelEntry {
    slot: u32,
    gen: u32,
}

/// Flows the index is sized for up front; a larger capacity grows it by rebuilding on the way.
pub const PRESIZE_LIMIT: usize = 1 << 24;

// A slot is the connection alone (its generation lives in `gens`, read only by expiry).
const _: () = assert!(std::mem::size_of::<Option<Conn>>() == 48);

/// A worker's connections.
#[derive(Debug)]
pub struct FlowTable {
    index: FlowIndex,
    slots: Vec<Option<Conn>>,
    /// Bumped each time a slot is reused, so stale wheel entries can tell.
    gens: Vec<u32>,
    free: Vec<u32>,
    wheel: Vec<Vec<WheelEntry>>,
    /// The next second whose wheel slot has not been processed.
    cursor: u64,
    capacity: usize,
    live: usize,
}

const DIR_BIT: u32 = 1 << 31;

fn encode(slot: u32, dir: Dir) -> u32 {
    match dir {
        Dir::Original => slot,
        Dir::Reply => slot | DIR_BIT,
    }
}

fn decode(v: u32) -> (u32, Dir) {
    if v & DIR_BIT != 0 {
        (v & !DIR_BIT, Dir::Reply)
    } else {
        (v, Dir::Original)
    }
}

fn sec_of(t: Instant) -> u64 {
    t.as_secs()
}

impl FlowTable {
    /// An empty table for at most `capacity` connections (at most 2^31 - 1), starting its
    /// expiry clock at `now`.
    pub fn new(capacity: usize, now: Instant) -> FlowTable {
        let capacity = capacity.min((DIR_BIT - 1) as usize);
        let presize = capacity.min(PRESIZE_LIMIT);
        let slots = Vec::with_capacity(presize);
        crate::cpu::advise_huge_pages(&slots);
        FlowTable {
            index: FlowIndex::with_capacity(2 * presize),
            slots,
            gens: Vec::with_capacity(presize),
            free: Vec::new(),
            wheel: (0..WHEEL_SLOTS).map(|_| Vec::new()).collect(),
            cursor: sec_of(now),
            capacity,
            live: 0,
        }
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no connection is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Most connections the table takes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Memory the table's allocations (index, slots, generations, free list and wheel) take per
    /// live flow, counted in full whether or not their pages have been touched (the harness
    /// measures RSS growth instead, which counts only touched pages).
    pub fn bytes_per_flow(&self) -> f64 {
        let wheel: usize = self
            .wheel
            .iter()
            .map(|b| b.capacity() * std::mem::size_of::<WheelEntry>())
            .sum();
        let bytes = self.index.bytes()
            + self.slots.capacity() * std::mem::size_of::<Option<Conn>>()
            + self.gens.capacity() * 4
            + self.free.capacity() * 4
            + wheel;
        bytes as f64 / self.live.max(1) as f64
    }

    /// Find the connection a packet with `key` belongs to, and its direction.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(ConnId, Dir)> {
        self.lookup_hashed(key, self.index.hash(key))
    }

    /// [`FlowTable::lookup`] with the key's hash already computed.
    #[inline]
    fn lookup_hashed(&self, key: &FlowKey, h: u64) -> Option<(ConnId, Dir)> {
        self.index
            .find(h, |v| {
                let (slot, dir) = decode(v);
                self.slots
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|c| match dir {
                        Dir::Original => c.original_key() == *key,
                        Dir::Reply => c.reply_key() == *key,
                    })
            })
            .map(|v| {
                let (slot, dir) = decode(v);
                (ConnId(slot), dir)
            })
    }

    /// Start loading the index bucket of `key` into the cache (the first stage of a burst's
    /// lookups); returns the key's hash for [`FlowTable::prefetch_conn`].
    #[inline(always)]
    pub fn prefetch_index(&self, key: &FlowKey) -> u64 {
        let h = self.index.hash(key);
        self.index.prefetch(h);
        h
    }

    /// Start loading the connection the index bucket of hash `h` most likely names (the second
    /// stage, once that bucket has arrived).
    #[inline(always)]
    pub fn prefetch_conn(&self, h: u64) {
        if let Some(v) = self.index.first_candidate(h) {
            if let Some(c) = self.slots.get(decode(v).0 as usize) {
                crate::cpu::prefetch_all(c);
            }
        }
    }

    /// The connection behind `id`.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slots.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// The connection behind `id`, mutable. Use [`FlowTable::set_expiry`] to change its expiry.
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slots.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    /// Add a connection whose `expires` is already set.
    pub fn insert(&mut self, mut conn: Conn) -> Result<ConnId, InsertError> {
        if self.live >= self.capacity {
            return Err(InsertError::Full);
        }
        if !self.index.has_room(2) {
            // Before hashing: a rebuilt index has a seed of its own.
            self.grow_index();
        }
        let (ko, kr) = (conn.original_key(), conn.reply_key());
        let (ho, hr) = (self.index.hash(&ko), self.index.hash(&kr));
        if ko == kr
            || self.lookup_hashed(&ko, ho).is_some()
            || self.lookup_hashed(&kr, hr).is_some()
        {
            return Err(InsertError::Conflict);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let sec = self.filing_sec(conn.expires);
        conn.wheel_sec = sec as u32;
        let gen = match (
            self.slots.get_mut(slot as usize),
            self.gens.get_mut(slot as usize),
        ) {
            (Some(s), Some(g)) => {
                *g = g.wrapping_add(1);
                *s = Some(conn);
                *g
            }
            _ => return Err(InsertError::Full),
        };
        self.index.insert(ho, encode(slot, Dir::Original));
        self.index.insert(hr, encode(slot, Dir::Reply));
        self.file(slot, gen, sec);
        self.live += 1;
        Ok(ConnId(slot))
    }

    /// The second to file an entry expiring at `t` under: never in the past, and never more
    /// than one wheel turn ahead (a longer timeout is re-filed when that second comes), so each
    /// second's bucket only ever holds entries for that very second.
    /// Rebuild the index at twice its size (only when the capacity is beyond [`PRESIZE_LIMIT`]
    /// and the live flows have outgrown the pre-sized index).
    #[cold]
    fn grow_index(&mut self) {
        if self.index.has_room(2) {
            return;
        }
        let mut index = FlowIndex::with_capacity(2 * self.index.len() + 2);
        for (i, c) in self.slots.iter().enumerate() {
            if let Some(c) = c {
                let slot = i as u32;
                index.insert(index.hash(&c.original_key()), encode(slot, Dir::Original));
                index.insert(index.hash(&c.reply_key()), encode(slot, Dir::Reply));
            }
        }
        self.index = index;
    }

    fn filing_sec(&self, t: Instant) -> u64 {
        sec_of(t).clamp(self.cursor, self.cursor + WHEEL_SLOTS as u64 - 1)
    }

    fn file(&mut self, slot: u32, gen: u32, sec: u64) {
        if let Some(bucket) = self.wheel.get_mut((sec as usize) % WHEEL_SLOTS) {
            bucket.push(WheelEntry { slot, gen });
        }
    }

    /// Set when `id` expires. Moving it later is free; moving it earlier files a new wheel entry.
    pub fn set_expiry(&mut self, id: ConnId, expires: Instant) {
        let sec = self.filing_sec(expires);
        let Some(Some(c)) = self.slots.get_mut(id.0 as usize) else {
            return;
        };
        c.expires = expires;
        if sec < u64::from(c.wheel_sec) {
            c.wheel_sec = sec as u32;
            let gen = self.gens.get(id.0 as usize).copied().unwrap_or(0);
            self.file(id.0, gen, sec);
        }
    }

    /// Remove a connection now. Returns it.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.slots.get_mut(id.0 as usize)?.take()?;
        let (ho, hr) = (
            self.index.hash(&conn.original_key()),
            self.index.hash(&conn.reply_key()),
        );
        self.index.remove(ho, encode(id.0, Dir::Original));
        self.index.remove(hr, encode(id.0, Dir::Reply));
        self.free.push(id.0);
        self.live -= 1;
        Some(conn)
    }

    /// Expire connections whose time has passed, examining at most `budget` wheel entries or
    /// empty seconds. Calls `on_expired` for each removed connection. Returns how many expired.
    pub fn expire(
        &mut self,
        now: Instant,
        budget: usize,
        mut on_expired: impl FnMut(&Conn),
    ) -> usize {
        let now_sec = sec_of(now);
        let mut budget = budget;
        let mut expired = 0;
        // Only seconds that are entirely in the past are processed, and entries are never filed
        // more than one turn ahead, so a re-filed entry never lands back in the bucket being
        // processed.
        while self.cursor < now_sec && budget > 0 {
            let idx = (self.cursor as usize) % WHEEL_SLOTS;
            let mut bucket = match self.wheel.get_mut(idx) {
                Some(b) => std::mem::take(b),
                None => break,
            };
            if bucket.is_empty() {
                budget -= 1;
            }
            while budget > 0 {
                self.prefetch_expiry(&bucket);
                let Some(e) = bucket.pop() else { break };
                budget -= 1;
                if self.gens.get(e.slot as usize) != Some(&e.gen) {
                    continue; // the slot was reused since this entry was filed
                }
                let Some(Some(c)) = self.slots.get_mut(e.slot as usize) else {
                    continue;
                };
                if u64::from(c.wheel_sec) != self.cursor {
                    continue; // stale: superseded by an earlier entry, or re-filed already
                }
                if c.expires <= now {
                    if let Some(conn) = self.remove(ConnId(e.slot)) {
                        on_expired(&conn);
                        expired += 1;
                    }
                } else {
                    let sec = sec_of(c.expires)
                        .clamp(self.cursor + 1, self.cursor + WHEEL_SLOTS as u64 - 1);
                    c.wheel_sec = sec as u32;
                    self.file(e.slot, e.gen, sec);
                }
            }
            let done = bucket.is_empty();
            if let Some(b) = self.wheel.get_mut(idx) {
                // Put back what the budget did not reach. A small allocation is kept for the
                // second's next turn; a large one is freed: kept, every one of the wheel's 4096
                // seconds would hold its busiest second's worth of memory, and a busy worker's
                // memory would grow for the whole first turn (68 minutes) before it levelled.
                if !b.is_empty() {
                    b.append(&mut bucket);
                } else if !done || bucket.capacity() <= KEEP_BUCKET {
                    std::mem::swap(b, &mut bucket);
                }
            }
            if done {
                self.cursor += 1;
            } else {
                break;
            }
        }
        expired
    }

    /// Entries are taken from the end of a wheel bucket: start loading the connection 16
    /// entries ahead, and the index buckets of the one 8 ahead (whose connection the previous
    /// rounds loaded), so a mass expiry overlaps its cache misses.
    #[inline(always)]
    fn prefetch_expiry(&self, bucket: &[WheelEntry]) {
        let ahead = |d: usize| bucket.len().checked_sub(d).and_then(|i| bucket.get(i));
        if let Some(c) = ahead(17).and_then(|e| self.slots.get(e.slot as usize)) {
            crate::cpu::prefetch_all(c);
        }
        if let Some(Some(c)) = ahead(9).and_then(|e| self.slots.get(e.slot as usize)) {
            self.index.prefetch(self.index.hash(&c.original_key()));
            self.index.prefetch(self.index.hash(&c.reply_key()));
        }
    }

    /// Iterate over live connections (for shutdown reports and tests).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|c| (ConnId(i as u32), c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::TcpState;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn conn(i: u16, expires: Instant) -> Conn {
        Conn {
            client: Ipv4Addr::new(192, 0, 2, 10),
            vip: Ipv4Addr::new(192, 0, 2, 100),
            server: Ipv4Addr::new(198, 51, 100, 11),
            cport: 10000 + i,
            vport: 80,
            sport: 8080,
            service: 0,
            dest: 0,
            proto: 6,
            state: TcpState::Established,
            expires,
            wheel_sec: 0,
            laddr: Ipv4Addr::new(192, 0, 2, 10),
            lport: 10000 + i,
            fnat: false,
            ftp: 0,
        }
    }

    #[test]
    fn both_directions_find_the_connection() {
        let mut t = FlowTable::new(10, Instant::ZERO);
        let c = conn(1, Instant::from_secs(10));
        let id = t.insert(c.clone()).unwrap();
        assert_eq!(t.lookup(&c.original_key()), Some((id, Dir::Original)));
        assert_eq!(t.lookup(&c.reply_key()), Some((id, Dir::Reply)));
        assert_eq!(t.lookup(&c.original_key().reversed()), None);
        assert_eq!(t.insert(c.clone()), Err(InsertError::Conflict));
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(id).unwrap().original_key(), c.original_key());
        assert!(t.lookup(&c.original_key()).is_none() && t.is_empty());
    }

    #[test]
    fn capacity_is_enforced() {
        let mut t = FlowTable::new(2, Instant::ZERO);
        t.insert(conn(1, Instant::from_secs(5))).unwrap();
        t.insert(conn(2, Instant::from_secs(5))).unwrap();
        assert_eq!(
            t.insert(conn(3, Instant::from_secs(5))),
            Err(InsertError::Full)
        );
    }

    #[test]
    fn idle_flows_expire_and_refreshed_ones_live() {
        let mut t = FlowTable::new(100, Instant::ZERO);
        let a = t.insert(conn(1, Instant::from_secs(10))).unwrap();
        let b = t.insert(conn(2, Instant::from_secs(10))).unwrap();
        t.set_expiry(b, Instant::from_secs(5000)); // beyond one wheel turn
        let mut gone = vec![];
        let n = t.expire(Instant::from_secs(12), 10_000, |c| gone.push(c.cport));
        assert_eq!((n, gone.as_slice()), (1, &[10001][..]));
        assert!(t.get(a).is_none() && t.get(b).is_some());
        assert_eq!(t.expire(Instant::from_secs(4999), usize::MAX, |_| {}), 0);
        assert_eq!(t.expire(Instant::from_secs(5002), usize::MAX, |_| {}), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn shortened_timeout_expires_early_and_stale_entry_is_ignored() {
        let mut t = FlowTable::new(100, Instant::ZERO);
        let a = t.insert(conn(1, Instant::from_secs(900))).unwrap();
        t.set_expiry(a, Instant::from_secs(10));
        assert_eq!(t.expire(Instant::from_secs(12), usize::MAX, |_| {}), 1);
        // The slot is reused; the stale entry at second 900 must not touch the new connection.
        let b = t.insert(conn(2, Instant::from_secs(2000))).unwrap();
        assert_eq!(a, b);
        assert_eq!(t.expire(Instant::from_secs(1000), usize::MAX, |_| {}), 0);
        assert!(t.get(b).is_some());
    }

    #[test]
    fn mass_expiry_is_spread_over_calls() {
        let mut t = FlowTable::new(100_000, Instant::ZERO);
        for i in 0..50_000u32 {
            let mut c = conn(0, Instant::from_secs(3));
            c.client = Ipv4Addr::from(0xC000_0000 | i);
            c.laddr = c.client;
            t.insert(c).unwrap();
        }
        let now = Instant::from_secs(10);
        let mut calls = 0;
        let mut total = 0;
        while !t.is_empty() {
            let n = t.expire(now, 256, |_| {});
            assert!(n <= 256);
            total += n;
            calls += 1;
            assert!(calls < 1000, "expiry made no progress");
        }
        assert_eq!(total, 50_000);
        assert!(calls >= 50_000 / 256);
    }

    #[test]
    fn churn_keeps_index_and_count_consistent() {
        let mut t = FlowTable::new(1000, Instant::ZERO);
        let mut now = Instant::ZERO;
        for round in 0..50u16 {
            for i in 0..20u16 {
                let _ = t.insert(conn(
                    round * 20 + i,
                    now + Duration::from_secs(2 + u64::from(i % 3)),
                ));
            }
            now = now + Duration::from_secs(1);
            t.expire(now, 64, |_| {});
            let live = t.iter().count();
            assert_eq!(live, t.len());
            for (id, c) in t.iter() {
                assert_eq!(t.lookup(&c.original_key()), Some((id, Dir::Original)));
                assert_eq!(t.lookup(&c.reply_key()), Some((id, Dir::Reply)));
            }
        }
        assert_eq!(t.index.len(), 2 * t.len());
    }

    #[test]
    fn index_grows_past_its_presized_size() {
        // A capacity above what was pre-sized: force growth by starting from a tiny index.
        let mut t = FlowTable::new(100_000, Instant::ZERO);
        t.index = FlowIndex::with_capacity(8);
        let mut ids = vec![];
        for i in 0..5000u32 {
            let mut c = conn(0, Instant::from_secs(30));
            c.client = Ipv4Addr::from(0xC000_0000 | i);
            c.laddr = c.client;
            ids.push((t.insert(c.clone()).unwrap(), c));
        }
        assert_eq!(t.index.len(), 10_000);
        for (id, c) in &ids {
            assert_eq!(t.lookup(&c.original_key()), Some((*id, Dir::Original)));
            assert_eq!(t.lookup(&c.reply_key()), Some((*id, Dir::Reply)));
        }
        for (id, _) in ids.iter().step_by(2) {
            t.remove(*id).unwrap();
        }
        assert_eq!((t.len(), t.index.len()), (2500, 5000));
        assert!(t.bytes_per_flow() > 48.0);
    }
}
