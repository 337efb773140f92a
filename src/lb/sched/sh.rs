//! Source hashing (`sh`), IPVS's algorithm: a fixed table of 256 buckets, filled in list order
//! with each server repeated `weight` times in turn, indexed by a multiplicative hash of the
//! client's address. A client keeps its server as long as the table does not change.
//!
//! As in IPVS: a server with weight 0 still takes one bucket each time the fill cycles through
//! the list (with weights 2, 0, 2 that is 51 of 256), and clients hashing there get `None` (IPVS
//! without its fallback flag) rather than being moved to another server. Any change of the server list or of a weight refills the table, which
//! moves most clients (this is not consistent hashing; `mh` is). Weights are used as given, not
//! reduced by their gcd, so when they add up to more than 256 the servers late in the list get
//! fewer buckets than their share, or none.

use super::Scheduler;
use crate::flow::FlowKey;
use crate::lb::Dest;

/// Buckets in the table (IPVS's default `CONFIG_IP_VS_SH_TAB_BITS` of 8).
pub const SH_TABLE_BITS: u32 = 8;
const SH_TABLE_SIZE: usize = 1 << SH_TABLE_BITS;
/// An empty bucket (no servers).
const EMPTY: u16 = u16::MAX;

/// Source hashing over a 256-bucket table.
#[derive(Debug)]
pub struct SourceHashing {
    /// Index into the server list, or [`EMPTY`].
    table: [u16; SH_TABLE_SIZE],
}

impl Default for SourceHashing {
    fn default() -> Self {
        SourceHashing {
            table: [EMPTY; SH_TABLE_SIZE],
        }
    }
}

/// The bucket of a client address: Knuth's multiplicative hash (2654435761, the constant in
/// IPVS's `ip_vs_sh_hashkey`), keeping the top bits as the kernel's `hash_32` does. The low bits
/// of the product would depend only on the address's last octet.
fn bucket(src: std::net::Ipv4Addr) -> usize {
    (u32::from(src).wrapping_mul(2_654_435_761) >> (32 - SH_TABLE_BITS)) as usize
}

impl Scheduler for SourceHashing {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn schedule(&mut self, dests: &[Dest], key: &FlowKey) -> Option<usize> {
        let i = *self.table.get(bucket(key.src))?;
        if i == EMPTY {
            return None;
        }
        let i = usize::from(i);
        dests.get(i).filter(|d| d.available()).map(|_| i)
    }

    fn update(&mut self, dests: &[Dest]) {
        // Indices must fit below the EMPTY sentinel; servers past that are never chosen.
        let n = dests.len().min(usize::from(EMPTY));
        let mut p = 0;
        let mut count = 0u32;
        for b in self.table.iter_mut() {
            if n == 0 {
                *b = EMPTY;
                continue;
            }
            // p < n <= u16::MAX, so the conversion cannot fail.
            *b = u16::try_from(p).unwrap_or(EMPTY);
            count += 1;
            // `>=` rather than `==` so a weight-0 server takes one bucket and we move on.
            if count >= dests.get(p).map_or(0, |d| d.weight) {
                p = (p + 1) % n;
                count = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn built(weights: &[u32]) -> (SourceHashing, Vec<Dest>) {
        let d = dests(weights);
        let mut s = SourceHashing::default();
        s.update(&d);
        (s, d)
    }

    #[test]
    fn same_source_same_server() {
        let (mut s, d) = built(&[1, 2, 3]);
        for i in 0..1000 {
            let mut k = key(i);
            let first = s.schedule(&d, &k);
            assert!(first.is_some());
            // Other fields of the key don't matter: source address only.
            k.sport = k.sport.wrapping_add(7);
            k.dport = 443;
            assert_eq!(s.schedule(&d, &k), first);
        }
    }

    #[test]
    fn table_filled_in_weighted_turns() {
        let (s, _) = built(&[1, 2, 3]);
        assert_eq!(&s.table[..8], &[0, 1, 1, 2, 2, 2, 0, 1]);
        let count = |x: u16| s.table.iter().filter(|t| **t == x).count();
        // 42 whole cycles of 6, then 0, 1, 1, 2.
        assert_eq!([count(0), count(1), count(2)], [43, 86, 127]);
    }

    #[test]
    fn distribution_follows_weights() {
        let weights = [1, 2, 3, 4];
        let (mut s, d) = built(&weights);
        let n = 100_000;
        let c = tally(&mut s, &d, n);
        assert_eq!(c.iter().sum::<u32>(), n);
        let total: u32 = weights.iter().sum();
        for (got, w) in c.iter().zip(weights) {
            let want = f64::from(n) * f64::from(w) / f64::from(total);
            assert!(
                (f64::from(*got) - want).abs() <= 0.10 * want,
                "{c:?} vs weights {weights:?}"
            );
        }
    }

    #[test]
    fn zero_weight_server_sources_get_none() {
        let (mut s, d) = built(&[2, 0, 2]);
        let n = 100_000;
        let c = tally(&mut s, &d, n);
        assert_eq!(c[1], 0);
        let none = n - c.iter().sum::<u32>();
        // Server 1 holds one bucket per cycle of 2 + 1 + 2: 51 of 256.
        assert_eq!(s.table.iter().filter(|t| **t == 1).count(), 51);
        let want = f64::from(n) * 51.0 / 256.0;
        assert!((f64::from(none) - want).abs() < 0.1 * want, "{none}");
        for i in 0..n {
            let k = key(i);
            let want_none = s.table[bucket(k.src)] == 1;
            assert_eq!(s.schedule(&d, &k).is_none(), want_none);
        }
    }

    #[test]
    fn quiescing_in_place_gives_none_to_its_sources() {
        // Weight dropped to 0 without a table rebuild (update not yet called): its clients get
        // None, nobody else moves.
        let (mut s, mut d) = built(&[1, 1]);
        let before: Vec<_> = (0..1000).map(|i| s.schedule(&d, &key(i))).collect();
        d[0].weight = 0;
        for (i, b) in before.iter().enumerate() {
            let got = s.schedule(&d, &key(i as u32));
            assert_eq!(got, if *b == Some(0) { None } else { *b });
        }
    }

    #[test]
    fn update_rebuilds_on_weight_change() {
        let (mut s, mut d) = built(&[1, 1]);
        let c = tally(&mut s, &d, 10_000);
        assert!(c[0].abs_diff(c[1]) < 1000, "{c:?}");
        d[0].weight = 3;
        s.update(&d);
        let c = tally(&mut s, &d, 10_000);
        assert!(
            (2.5..3.5).contains(&(f64::from(c[0]) / f64::from(c[1]))),
            "{c:?}"
        );
    }

    #[test]
    fn no_servers_is_none() {
        let (mut s, d) = built(&[]);
        assert_eq!(s.schedule(&d, &key(1)), None);
        let (mut s, d) = built(&[0, 0]);
        assert_eq!(tally(&mut s, &d, 100), vec![0, 0]);
    }
}
