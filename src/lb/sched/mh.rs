//! Maglev hashing (`mh`), after IPVS's `ip_vs_mh.c` and the Maglev paper (NSDI '16, §3.4): a
//! lookup table of a prime number of entries, filled by letting servers take turns claiming
//! their next preferred free entry, each server's preference list being the permutation
//! `offset + j * skip (mod M)` derived from two independent hashes of its address and port.
//! A client is hashed by source address only (IPVS's default) into the table.
//!
//! Invariants and properties:
//! - The table depends only on the servers' addresses, ports and weights (not on their order in
//!   the list beyond tie-breaking, nor on the worker), so every worker and every restart builds
//!   the same table and a client lands on the same server everywhere.
//! - Removing one of N servers moves about 1/N of clients (those on the removed server) plus a
//!   small extra share; the tests measure it.
//! - Weights as IPVS: divided by their gcd and, if the largest quotient needs more than 8 bits,
//!   shifted right so it fits (turns are at least 1); each round a server claims `turns`
//!   entries. Servers with weight 0 take no entries, so quiescing a server rebuilds the table
//!   without it (unlike IPVS, which keeps the last non-zero weight and then returns no server).
//!
//! Limitations: the table is 65537 entries (the paper's size; IPVS's default is 4093, chosen
//! for kernel memory) as `u16` indices, 128 KiB a worker per `mh` service, rebuilt in `update()`.
//! Servers past index 65534 are never chosen. The hashes are fixed, not secret keyed: someone who
//! can choose source addresses can aim at one server, as with any source hash.

use super::Scheduler;
use crate::flow::FlowKey;
use crate::lb::Dest;

/// Entries in the lookup table: a prime, so any `skip` in `1..M` walks every entry.
pub const MH_TABLE_SIZE: usize = 65537;
/// A slot no server has claimed (only while building, or when there is no server).
const EMPTY: u16 = u16::MAX;
/// Largest turns a round after gcd reduction, as bits (IPVS: half the table's bits).
const TURN_BITS: u32 = 8;

/// Seeds for the three hashes: preference offset, preference skip, client lookup.
const SEED_OFFSET: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
const SEED_SKIP: u64 = 0x6d61_676c_6576_736b; // "maglevsk"
const SEED_LOOKUP: u64 = 0x6d61_676c_6576_6c6b; // "maglevlk"

/// Maglev consistent hashing.
#[derive(Default)]
pub struct MaglevHashing {
    /// Server index for each entry; empty when no server has a non-zero weight.
    table: Vec<u16>,
}

impl std::fmt::Debug for MaglevHashing {
    // The table is 65537 entries: a summary, not a dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaglevHashing")
            .field("entries", &self.table.len())
            .finish()
    }
}

/// The 64-bit finaliser of MurmurHash3: a bijection with full avalanche.
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// A seeded hash of a 64-bit value; two rounds so that different seeds give unrelated outputs.
fn hash(seed: u64, x: u64) -> u64 {
    fmix64(fmix64(x ^ seed) ^ seed.rotate_left(29))
}

/// `h`'s high 32 bits mapped onto `0..m` by multiply-shift (Lemire): one multiplication
/// instead of a division on the packet path, bias below 2^-15 for m = 65537.
fn reduce(h: u64, m: usize) -> usize {
    (((h >> 32) * m as u64) >> 32) as usize
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One server's state while filling the table.
struct Setup {
    index: u16,
    /// Next entry in its preference list.
    next: usize,
    skip: usize,
    turns: u32,
}

impl MaglevHashing {
    /// The table entry of a client address.
    fn slot(src: std::net::Ipv4Addr) -> usize {
        reduce(hash(SEED_LOOKUP, u64::from(u32::from(src))), MH_TABLE_SIZE)
    }

    /// Fill the table for `dests` (see the module doc).
    fn build(dests: &[Dest]) -> Vec<u16> {
        let live = || {
            dests
                .iter()
                .take(usize::from(EMPTY))
                .enumerate()
                .filter(|(_, d)| d.available())
        };
        let g = live().map(|(_, d)| d.weight).fold(0, gcd);
        if g == 0 {
            return Vec::new();
        }
        let max_turns = live().map(|(_, d)| d.weight / g).max().unwrap_or(1);
        let shift = (u32::BITS - max_turns.leading_zeros()).saturating_sub(TURN_BITS);
        let m = MH_TABLE_SIZE;
        let mut setup: Vec<Setup> = live()
            .map(|(i, d)| {
                let id = (u64::from(u32::from(d.addr)) << 16) | u64::from(d.port);
                Setup {
                    index: u16::try_from(i).unwrap_or(EMPTY),
                    next: reduce(hash(SEED_OFFSET, id), m),
                    skip: reduce(hash(SEED_SKIP, id), m - 1) + 1,
                    turns: ((d.weight / g) >> shift).max(1),
                }
            })
            .collect();

        let mut table = vec![EMPTY; m];
        let mut filled = 0;
        // Each round every server claims `turns` entries; stop the moment the table is full.
        // A claim always succeeds: M is prime and 1 <= skip < M, so a preference list visits
        // every entry, and there is a free one while filled < M.
        'fill: loop {
            for s in setup.iter_mut() {
                for _ in 0..s.turns {
                    while table.get(s.next).is_some_and(|e| *e != EMPTY) {
                        s.next += s.skip;
                        if s.next >= m {
                            s.next -= m;
                        }
                    }
                    if let Some(e) = table.get_mut(s.next) {
                        *e = s.index;
                    }
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        table
    }
}

impl Scheduler for MaglevHashing {
    fn name(&self) -> &'static str {
        "mh"
    }

    fn schedule(&mut self, dests: &[Dest], key: &FlowKey) -> Option<usize> {
        let i = *self.table.get(Self::slot(key.src))?;
        if i == EMPTY {
            return None;
        }
        let i = usize::from(i);
        // The list may have changed since the last update: never hand out a quiesced server.
        dests.get(i).filter(|d| d.available()).map(|_| i)
    }

    fn update(&mut self, dests: &[Dest]) {
        self.table = Self::build(dests);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::net::Ipv4Addr;

    fn built(d: &[Dest]) -> MaglevHashing {
        let mut s = MaglevHashing::default();
        s.update(d);
        s
    }

    /// Pseudo-random client keys (xorshift), unlike `key()`'s consecutive addresses.
    fn random_keys(n: usize, mut state: u64) -> Vec<FlowKey> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mut k = key(0);
                k.src = Ipv4Addr::from(state as u32);
                k
            })
            .collect()
    }

    #[test]
    fn table_is_full_and_proportional() {
        let d = dests(&[1, 2, 3, 4]);
        let s = built(&d);
        assert_eq!(s.table.len(), MH_TABLE_SIZE);
        assert!(!s.table.contains(&EMPTY));
        for (i, w) in [1u32, 2, 3, 4].iter().enumerate() {
            let got = s.table.iter().filter(|e| usize::from(**e) == i).count() as f64;
            let want = MH_TABLE_SIZE as f64 * f64::from(*w) / 10.0;
            assert!(
                (got - want).abs() < 0.01 * want,
                "server {i}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn distribution_follows_weights() {
        let weights = [1u32, 2, 3, 4, 5];
        let d = dests(&weights);
        let mut s = built(&d);
        let keys = random_keys(100_000, 0x9e37_79b9_7f4a_7c15);
        let mut c = [0u32; 5];
        for k in &keys {
            if let Some(i) = s.schedule(&d, k) {
                c[i] += 1;
            }
        }
        assert_eq!(c.iter().sum::<u32>(), 100_000);
        for (got, w) in c.iter().zip(weights) {
            let want = 100_000.0 * f64::from(w) / 15.0;
            assert!(
                (f64::from(*got) - want).abs() <= 0.05 * want,
                "{c:?} vs weights {weights:?}"
            );
        }
    }

    #[test]
    fn large_weights_are_scaled_not_truncated() {
        // 1000:3000 has gcd 1000; 999:3001 needs the shift (3001 is 12 bits).
        for w in [[1000, 3000], [999, 3001]] {
            let d = dests(&w);
            let s = built(&d);
            let ones = s.table.iter().filter(|e| **e == 1).count() as f64;
            let share = ones / MH_TABLE_SIZE as f64;
            assert!((0.70..0.80).contains(&share), "{w:?}: {share}");
        }
    }

    /// Share of `keys` whose server (by address) changed from `a` to `b`, overall and among
    /// keys whose server in `a` is still present in `b`.
    fn disruption(a: &[Dest], b: &[Dest], keys: &[FlowKey]) -> (f64, f64) {
        let (mut sa, mut sb) = (built(a), built(b));
        let (mut moved, mut moved_surv, mut surv) = (0u32, 0u32, 0u32);
        for k in keys {
            let x = sa.schedule(a, k).map(|i| a[i].addr);
            let y = sb.schedule(b, k).map(|i| b[i].addr);
            let survived = x.is_some_and(|x| b.iter().any(|d| d.addr == x));
            if survived {
                surv += 1;
            }
            if x != y {
                moved += 1;
                if survived {
                    moved_surv += 1;
                }
            }
        }
        let n = keys.len() as f64;
        (
            f64::from(moved) / n,
            f64::from(moved_surv) / f64::from(surv),
        )
    }

    #[test]
    fn removing_a_server_moves_few_keys() {
        let keys = random_keys(100_000, 0x2545_f491_4f6c_dd1d);
        for n in [5u32, 10] {
            let d = dests(&vec![1; n as usize]);
            for removed in 0..n as usize {
                let mut fewer = d.clone();
                fewer.remove(removed);
                let (total, among_survivors) = disruption(&d, &fewer, &keys);
                eprintln!(
                    "mh N={n} remove #{removed}: moved {:.4} (1/N = {:.4}), \
                     among survivors {:.4}",
                    total,
                    1.0 / f64::from(n),
                    among_survivors
                );
                assert!(among_survivors <= 0.02, "N={n}: {among_survivors}");
                assert!(total <= 1.0 / f64::from(n) + 0.02, "N={n}: {total}");
            }
        }
    }

    #[test]
    fn quiescing_a_server_is_like_removing_it() {
        let keys = random_keys(20_000, 7);
        let d = dests(&[1, 1, 1, 1, 1]);
        let mut q = d.clone();
        q[2].weight = 0;
        let mut fewer = d.clone();
        fewer.remove(2);
        let (mut sq, mut sf) = (built(&q), built(&fewer));
        for k in &keys {
            let a = sq.schedule(&q, k).map(|i| q[i].addr);
            let b = sf.schedule(&fewer, k).map(|i| fewer[i].addr);
            assert_eq!(a, b);
            assert_ne!(a, Some(d[2].addr));
        }
    }

    #[test]
    fn deterministic_across_calls_and_tables() {
        let d = dests(&[3, 1, 2]);
        let (mut a, mut b) = (built(&d), built(&d));
        assert!(a.table == b.table);
        for k in random_keys(10_000, 42) {
            let x = a.schedule(&d, &k);
            assert!(x.is_some());
            assert_eq!(a.schedule(&d, &k), x);
            assert_eq!(b.schedule(&d, &k), x);
            // Source address only.
            let mut other = k;
            other.sport ^= 0x5555;
            other.dst = Ipv4Addr::new(203, 0, 113, 9);
            assert_eq!(a.schedule(&d, &other), x);
        }
        // The list order doesn't decide who owns what: reversed, each key keeps its server.
        let mut r = d.clone();
        r.reverse();
        let mut c = built(&r);
        let same = random_keys(10_000, 43)
            .iter()
            .filter(|k| {
                a.schedule(&d, k).map(|i| d[i].addr) == c.schedule(&r, k).map(|i| r[i].addr)
            })
            .count();
        // Only the order of claims within a round differs, which decides a few contested entries.
        assert!(same > 9_500, "{same}");
    }

    #[test]
    fn update_follows_weight_changes() {
        let mut d = dests(&[1, 1]);
        let mut s = built(&d);
        let c = tally(&mut s, &d, 20_000);
        assert!(c[0].abs_diff(c[1]) < 1_000, "{c:?}");
        d[1].weight = 3;
        s.update(&d);
        let c = tally(&mut s, &d, 20_000);
        assert!(
            (2.6..3.4).contains(&(f64::from(c[1]) / f64::from(c[0]))),
            "{c:?}"
        );
        d[0].weight = 0;
        s.update(&d);
        assert_eq!(tally(&mut s, &d, 1_000), vec![0, 1_000]);
    }

    #[test]
    fn no_servers_is_none() {
        for w in [&[][..], &[0, 0][..]] {
            let d = dests(w);
            let mut s = built(&d);
            assert!(s.table.is_empty());
            assert_eq!(s.schedule(&d, &key(1)), None);
        }
        // A stale table and a shrunken list: no out-of-range index.
        let mut s = built(&dests(&[1, 1, 1]));
        assert!(tally(&mut s, &dests(&[1]), 1_000)[0] > 0);
    }

    #[test]
    fn million_lookups() {
        // Not a benchmark (that is criterion's job); shows in `cargo test --release` timing.
        let d = dests(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut s = built(&d);
        let start = std::time::Instant::now();
        let mut hits = 0u64;
        for i in 0..1_000_000u32 {
            let mut k = key(0);
            k.src = Ipv4Addr::from(i.wrapping_mul(0x9e37_79b9));
            hits += u64::from(s.schedule(&d, &k).is_some());
        }
        eprintln!("mh: 1M lookups in {:?}", start.elapsed());
        assert_eq!(hits, 1_000_000);
    }
}
