//! The per-worker flow table: a slab of connections, a hash index with one entry per direction,
//! and a lazy timer wheel for idle expiry.
//!
//! Invariants:
//! - every live connection has exactly two index entries (original and reply key) pointing at its
//!   slot, and exactly one *current* wheel entry: the one filed under `conn.wheel_sec`;
//! - refreshing a connection only moves `conn.expires` later, which costs nothing; the wheel entry
//!   is re-filed lazily when its second comes round and the connection turns out to be alive;
//! - shortening a timeout (RST, FIN) files a new, earlier wheel entry; the old one is recognised as
//!   stale when its second comes round (its second is not `conn.wheel_sec`) and discarded;
//! - [`FlowTable::expire`] examines at most `budget` wheel entries or empty seconds per call, so a
//!   mass expiry is spread over many poll-loop iterations instead of stalling the worker.
//!
//! Limitation: expiry has one-second granularity and may run a second or two late.

use hashbrown::HashMap;

use super::conn::{Conn, ConnId};
use super::key::{Dir, FlowKey};
use crate::time::Instant;

/// Seconds covered by one turn of the wheel; longer timeouts are re-filed when their slot comes.
const WHEEL_SLOTS: usize = 4096;

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

#[derive(Debug)]
struct Slot {
    conn: Option<Conn>,
    gen: u32,
}

/// A worker's connections.
#[derive(Debug)]
pub struct FlowTable {
    index: HashMap<FlowKey, u32>,
    slots: Vec<Slot>,
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
        FlowTable {
            index: HashMap::new(),
            slots: Vec::new(),
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

    /// Find the connection a packet with `key` belongs to, and its direction.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(ConnId, Dir)> {
        self.index.get(key).map(|v| {
            let (slot, dir) = decode(*v);
            (ConnId(slot), dir)
        })
    }

    /// The connection behind `id`.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slots.get(id.0 as usize).and_then(|s| s.conn.as_ref())
    }

    /// The connection behind `id`, mutable. Use [`FlowTable::set_expiry`] to change its expiry.
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slots
            .get_mut(id.0 as usize)
            .and_then(|s| s.conn.as_mut())
    }

    /// Add a connection whose `expires` is already set.
    pub fn insert(&mut self, mut conn: Conn) -> Result<ConnId, InsertError> {
        if self.live >= self.capacity {
            return Err(InsertError::Full);
        }
        let (ko, kr) = (conn.original_key(), conn.reply_key());
        if ko == kr || self.index.contains_key(&ko) || self.index.contains_key(&kr) {
            return Err(InsertError::Conflict);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { conn: None, gen: 0 });
                (self.slots.len() - 1) as u32
            }
        };
        let sec = self.filing_sec(conn.expires);
        conn.wheel_sec = sec as u32;
        let gen = match self.slots.get_mut(slot as usize) {
            Some(s) => {
                s.gen = s.gen.wrapping_add(1);
                s.conn = Some(conn);
                s.gen
            }
            None => return Err(InsertError::Full),
        };
        self.index.insert(ko, encode(slot, Dir::Original));
        self.index.insert(kr, encode(slot, Dir::Reply));
        self.file(slot, gen, sec);
        self.live += 1;
        Ok(ConnId(slot))
    }

    /// The second to file an entry expiring at `t` under: never in the past, and never more
    /// than one wheel turn ahead (a longer timeout is re-filed when that second comes), so each
    /// second's bucket only ever holds entries for that very second.
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
        let Some(s) = self.slots.get_mut(id.0 as usize) else {
            return;
        };
        let gen = s.gen;
        let Some(c) = s.conn.as_mut() else { return };
        c.expires = expires;
        if sec < u64::from(c.wheel_sec) {
            c.wheel_sec = sec as u32;
            self.file(id.0, gen, sec);
        }
    }

    /// Remove a connection now. Returns it.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let s = self.slots.get_mut(id.0 as usize)?;
        let conn = s.conn.take()?;
        self.index.remove(&conn.original_key());
        self.index.remove(&conn.reply_key());
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
                let Some(e) = bucket.pop() else { break };
                budget -= 1;
                let Some(s) = self.slots.get_mut(e.slot as usize) else {
                    continue;
                };
                if s.gen != e.gen {
                    continue; // the slot was reused since this entry was filed
                }
                let Some(c) = s.conn.as_mut() else { continue };
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
                    let gen = s.gen;
                    self.file(e.slot, gen, sec);
                }
            }
            let done = bucket.is_empty();
            if let Some(b) = self.wheel.get_mut(idx) {
                // Put back what the budget did not reach.
                if b.is_empty() {
                    std::mem::swap(b, &mut bucket); // keep the allocation
                } else {
                    b.append(&mut bucket);
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

    /// Iterate over live connections (for shutdown reports and tests).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.conn.as_ref().map(|c| (ConnId(i as u32), c)))
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
}
