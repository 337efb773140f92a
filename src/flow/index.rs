//! The flow index: one 8-byte entry per direction of every connection, seven to a 64-byte bucket.
//!
//! A lookup hashes the key once, reads one cache line (the home bucket), and compares 32-bit
//! signatures; the caller confirms a candidate against the connection itself, which it reads
//! next anyway. So a hit costs two cache lines, both of which can be prefetched a burst ahead
//! ([`FlowIndex::prefetch`]).
//!
//! Layout and invariants:
//! - `words` is allocated zeroed (lazily faulted pages) and advised onto transparent huge pages;
//!   bucket `b` is the eight words at `off + 8 * b`, 64-byte aligned. Word 0 is the bucket's
//!   overflow count, words 1..8 are entries: `sig << 32 | (value + 1)`, 0 when free.
//! - An entry lives in its home bucket ([`FlowIndex::home`]) or, when that is full, in the first
//!   bucket after it with room (linear probing over buckets). Every bucket it passed on the way
//!   counts it in its overflow count, so a lookup stops at the first bucket whose count is zero,
//!   and a removal decrements the same buckets: no tombstones.
//! - The table is sized for an average of four entries per bucket (57 % of its ways) at most,
//!   with any number of buckets (no power-of-two rounding, so no 2x cliffs in memory);
//!   the owner grows it ([`FlowIndex::with_capacity`] at twice the size, then re-inserting)
//!   before that is exceeded, so probing past the home bucket stays rare and always ends.
//! - The hash is seeded per table from the standard library's random keys, so a client who
//!   chooses its ports cannot aim them all at one bucket.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::key::FlowKey;
use crate::cpu::{advise_huge_pages, prefetch};

/// Entries per bucket.
const WAYS: usize = 7;
/// Words per bucket: the overflow count and the entries.
const WORDS: usize = WAYS + 1;
/// Most entries per bucket on average before the owner must grow the index.
const LOAD: usize = 4;

/// The index of a flow table: hash of a key → a 31-bit value (the table's slot and direction).
#[derive(Debug)]
pub(crate) struct FlowIndex {
    words: Vec<u64>,
    off: usize,
    /// Buckets: any number (not a power of two), so the index is as big as the load needs.
    buckets: usize,
    seed: [u64; 3],
    len: usize,
}

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

impl FlowIndex {
    /// An empty index for up to `entries` entries without growing.
    pub(crate) fn with_capacity(entries: usize) -> FlowIndex {
        let buckets = entries.div_ceil(LOAD).clamp(2, u32::MAX as usize);
        // One spare bucket's worth of words to align bucket 0 to a cache line.
        let words = vec![0u64; buckets * WORDS + WORDS];
        let misalign = (words.as_ptr() as usize) % 64;
        let off = if misalign == 0 {
            0
        } else {
            (64 - misalign) / 8
        };
        advise_huge_pages(&words);
        let rs = RandomState::new();
        FlowIndex {
            words,
            off,
            buckets,
            seed: [rs.hash_one(1u64), rs.hash_one(2u64), rs.hash_one(3u64) | 1],
            len: 0,
        }
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when `extra` more entries fit without exceeding the load the index was sized for.
    pub(crate) fn has_room(&self, extra: usize) -> bool {
        self.len + extra <= self.buckets * LOAD
    }

    /// Bytes the index takes once every page is touched.
    pub(crate) fn bytes(&self) -> usize {
        self.words.capacity() * std::mem::size_of::<u64>()
    }

    /// The key's hash (seeded per index).
    #[inline(always)]
    pub(crate) fn hash(&self, k: &FlowKey) -> u64 {
        let a = (u64::from(u32::from(k.src)) << 32) | u64::from(u32::from(k.dst));
        let b = (u64::from(k.sport) << 48) | (u64::from(k.dport) << 32) | u64::from(k.proto);
        let [s0, s1, s2] = self.seed;
        fold(fold(a ^ s0, b ^ s1), s2)
    }

    /// The home bucket: the low 32 bits of the hash scaled onto `0..buckets` (a multiply and a
    /// shift instead of a division; the signature is the high 32 bits, so the two are apart).
    #[inline(always)]
    fn home(&self, h: u64) -> usize {
        (((h & 0xffff_ffff) * self.buckets as u64) >> 32) as usize
    }

    #[inline(always)]
    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets {
            0
        } else {
            b + 1
        }
    }

    #[inline(always)]
    fn bucket(&self, b: usize) -> &[u64] {
        let at = self.off + b * WORDS;
        self.words.get(at..at + WORDS).unwrap_or(&[])
    }

    #[inline(always)]
    fn bucket_mut(&mut self, b: usize) -> &mut [u64] {
        let at = self.off + b * WORDS;
        self.words.get_mut(at..at + WORDS).unwrap_or(&mut [])
    }

    /// Start loading the home bucket of hash `h` into the cache.
    #[inline(always)]
    pub(crate) fn prefetch(&self, h: u64) {
        if let Some(w) = self.words.get(self.off + self.home(h) * WORDS) {
            prefetch(w);
        }
    }

    /// The first value in `h`'s home bucket whose signature matches (a likely hit, for
    /// prefetching what it names; not confirmed).
    #[inline(always)]
    pub(crate) fn first_candidate(&self, h: u64) -> Option<u32> {
        let words = self.bucket(self.home(h));
        let hits = Self::matches(words.get(1..).unwrap_or(&[]), h >> 32);
        let &e = words.get(1 + hits.trailing_zeros() as usize)?;
        Some((e as u32).wrapping_sub(1))
    }

    /// A bit for each of `entries` that holds signature `sig`, computed without a branch per
    /// entry (where an entry sits in its bucket is random, so a branch per way would be
    /// mispredicted on most lookups).
    #[inline(always)]
    fn matches(entries: &[u64], sig: u64) -> u32 {
        entries.iter().enumerate().fold(0u32, |m, (i, &e)| {
            m | (u32::from(e != 0 && e >> 32 == sig) << i)
        })
    }

    /// The value stored under hash `h` for which `is_it` confirms the key.
    #[inline]
    pub(crate) fn find(&self, h: u64, mut is_it: impl FnMut(u32) -> bool) -> Option<u32> {
        let sig = h >> 32;
        let mut b = self.home(h);
        for _ in 0..self.buckets {
            let words = self.bucket(b);
            let (overflow, entries) = words.split_first()?;
            let mut hits = Self::matches(entries, sig);
            while hits != 0 {
                let way = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                if let Some(&e) = entries.get(way) {
                    let v = (e as u32).wrapping_sub(1);
                    if is_it(v) {
                        return Some(v);
                    }
                }
            }
            if *overflow == 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    /// Add `value` (below 2^32 - 1) under hash `h`. The caller has checked that the key is not
    /// present and that [`FlowIndex::has_room`]. Returns false only when every way is taken.
    pub(crate) fn insert(&mut self, h: u64, value: u32) -> bool {
        if self.len >= self.buckets * WAYS {
            return false;
        }
        let entry = (h >> 32 << 32) | u64::from(value.wrapping_add(1));
        let mut b = self.home(h);
        loop {
            let words = self.bucket_mut(b);
            if let Some(free) = words.iter_mut().skip(1).find(|e| **e == 0) {
                *free = entry;
                self.len += 1;
                return true;
            }
            if let Some(overflow) = words.first_mut() {
                *overflow += 1;
            }
            b = self.next(b);
        }
    }

    /// Remove the entry `value` stored under hash `h`. Returns false when it is not there.
    pub(crate) fn remove(&mut self, h: u64, value: u32) -> bool {
        let entry = (h >> 32 << 32) | u64::from(value.wrapping_add(1));
        let home = self.home(h);
        let mut b = home;
        for _ in 0..self.buckets {
            let words = self.bucket_mut(b);
            if let Some(e) = words.iter_mut().skip(1).find(|e| **e == entry) {
                *e = 0;
                self.len -= 1;
                // Every bucket the entry passed on its way in counted it.
                let mut c = home;
                while c != b {
                    if let Some(overflow) = self.bucket_mut(c).first_mut() {
                        *overflow = overflow.saturating_sub(1);
                    }
                    c = self.next(c);
                }
                return true;
            }
            if words.first().map_or(true, |o| *o == 0) {
                return false;
            }
            b = self.next(b);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::from(0xC633_6400 | (i & 0xff)),
            dst: Ipv4Addr::new(203, 0, 113, 100),
            sport: (i >> 8) as u16,
            dport: 80,
            proto: 6,
        }
    }

    #[test]
    fn buckets_are_cache_lines() {
        let ix = FlowIndex::with_capacity(1000);
        let p = ix.words.as_ptr() as usize + ix.off * 8;
        assert_eq!(p % 64, 0);
        assert!(ix.bucket(ix.buckets - 1).len() == WORDS);
        assert_eq!(ix.buckets, 250);
    }

    /// Forced collisions: every entry has the same home bucket, so entries spill over several
    /// buckets; lookups, removals from the middle and re-inserts must all stay right.
    #[test]
    fn overflow_chains_survive_removal_in_any_order() {
        let mut ix = FlowIndex::with_capacity(64);
        // The same home (the last bucket, so chains wrap round), distinct signatures.
        let h = |i: u32| (u64::from(i) << 32) | 0xffff_ffff;
        for i in 0..30 {
            assert!(ix.insert(h(i), i));
        }
        for i in 0..30 {
            assert_eq!(ix.find(h(i), |v| v == i), Some(i));
        }
        for i in (0..30).step_by(3) {
            assert!(ix.remove(h(i), i));
            assert!(!ix.remove(h(i), i));
        }
        for i in 0..30 {
            let want = (i % 3 != 0).then_some(i);
            assert_eq!(ix.find(h(i), |v| v == i), want, "{i}");
        }
        for i in (0..30).step_by(3) {
            assert!(ix.insert(h(i), i));
        }
        for i in 0..30 {
            assert!(ix.remove(h(i), i));
        }
        assert_eq!(ix.len(), 0);
        assert!(ix.words.iter().all(|w| *w == 0), "counts back to zero");
    }

    #[test]
    fn hash_spreads_ports_and_addresses() {
        let ix = FlowIndex::with_capacity(1 << 16);
        let mut per_bucket = vec![0u32; ix.buckets];
        for i in 0..(1u32 << 16) {
            per_bucket[ix.home(ix.hash(&key(i)))] += 1;
        }
        // 16384 buckets, 65536 keys: 4 on average; a fair hash keeps the fullest far below 20.
        let max = per_bucket.iter().max().copied().unwrap_or(0);
        assert!(max < 20, "fullest bucket holds {max}");
    }

    #[test]
    fn signatures_must_be_confirmed() {
        let mut ix = FlowIndex::with_capacity(16);
        assert!(ix.insert(7, 1));
        assert_eq!(ix.first_candidate(7), Some(1));
        assert_eq!(ix.find(7, |_| false), None);
        assert_eq!(ix.find(7, |v| v == 1), Some(1));
    }
}
