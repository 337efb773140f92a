//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Rewrites (NAT, full-NAT, sequence adjustment) change a few words of a packet; recomputing the
//! whole checksum would touch every payload byte, so they patch the old checksum instead with
//! [`update16`], [`update32`], [`update_addr`] or [`update_bytes`], which use RFC 1624 eqn 3,
//! `HC' = ~(~HC + ~m + m')`.
//!
//! Invariants: sums are big-endian 16-bit words; an odd trailing byte is padded with a zero low
//! byte. Every word passed to an update function must sit at an even offset of the checksummed
//! data (true of every header field rvs rewrites).
//!
//! Limitations: UDP's "a checksum of 0 means none was computed" is not handled here. A caller
//! rewriting a UDP datagram must leave a zero checksum alone, and must send a computed 0 as
//! 0xffff (`UdpPacket::fill_checksum` does both for full recomputes). The incremental result can
//! be 0x0000 where a full recompute gives 0xffff (the two zeros of ones' complement) only when the
//! new data is all zeros, which no IPv4, TCP or UDP header can be.

use std::net::Ipv4Addr;

/// Ones' complement sum of `data` as big-endian 16-bit words, not yet folded to 16 bits.
///
/// Carries above 32 bits are folded back in, so the result is correct (modulo 0xffff) for data
/// of any length; pass it (or a sum of several such values) to [`fold`].
///
/// It adds eight bytes at a time: a big-endian 64-bit word is its four 16-bit words weighted by
/// powers of 2^16, and 2^16 = 1 (mod 0xffff), as is the 2^64 of a carry out, which goes back in.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut quads = data.chunks_exact(8);
    for q in &mut quads {
        let mut w = [0u8; 8];
        w.copy_from_slice(q);
        let (s, carry) = acc.overflowing_add(u64::from_be_bytes(w));
        acc = s + u64::from(carry);
    }
    // At most 33 bits now, so the few words left cannot overflow.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    let mut words = quads.remainder().chunks_exact(2);
    for w in &mut words {
        if let [hi, lo] = *w {
            acc += u64::from(u16::from_be_bytes([hi, lo]));
        }
    }
    if let [last] = *words.remainder() {
        acc += u64::from(last) << 8;
    }
    // 2^32 = 1 (mod 0xffff): adding the high half to the low half keeps the ones' complement sum.
    while acc > u64::from(u32::MAX) {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit sum into 16 bits with end-around carry.
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data`: `!fold(sum(data))`.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Sum of the IPv4 pseudo-header that TCP and UDP checksums cover.
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(protocol) + u32::from(len)
}

/// Adds two unfolded sums without losing a carry.
pub(crate) fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    // A carry out of bit 31 is worth 2^32 = 1 (mod 0xffff).
    s + u32::from(carry)
}

/// Patches checksum `cksum` after one 16-bit word changed from `old` to `new`.
pub fn update16(cksum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!cksum) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// Patches checksum `cksum` after an aligned 32-bit value changed from `old` to `new`.
pub fn update32(cksum: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!cksum)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    !fold(s)
}

/// Patches checksum `cksum` after an IPv4 address (in the header or the pseudo-header) changed.
pub fn update_addr(cksum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update32(cksum, u32::from(old), u32::from(new))
}

/// Patches checksum `cksum` after the bytes `old` were replaced by `new` at the same even offset.
///
/// Meant for equal, even lengths (a rewritten SACK block, an address inside a payload). Unequal
/// lengths are summed as given, which is right only if nothing after them moved; it never panics.
pub fn update_bytes(cksum: u16, old: &[u8], new: &[u8]) -> u16 {
    let s = u32::from(!cksum) + u32::from(!fold(sum(old))) + u32::from(fold(sum(new)));
    !fold(s)
}

#[cfg(test)]
mod tests {

    /// The 16-bit-at-a-time definition, as a reference for the 64-bit sum.
    fn sum16(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for (i, b) in data.iter().enumerate() {
            acc += if i % 2 == 0 {
                u64::from(*b) << 8
            } else {
                u64::from(*b)
            };
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn eight_bytes_at_a_time_equals_the_definition() {
        let mut x: u32 = 12345;
        let mut data = vec![];
        for len in 0..300usize {
            data.clear();
            for _ in 0..len {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                data.push((x >> 16) as u8);
            }
            assert_eq!(fold(sum(&data)), sum16(&data), "len {len}");
            let ones = vec![0xffu8; len];
            assert_eq!(fold(sum(&ones)), sum16(&ones), "all ones, len {len}");
        }
    }
    use super::*;
    use proptest::prelude::*;

    // An IPv4/UDP header, 192.168.0.1 -> 192.168.0.199, with its checksum (0xb861) zeroed.
    const IP_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn rfc1071_known_header() {
        assert_eq!(checksum(&IP_HEADER), 0xb861);
        let mut h = IP_HEADER;
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn rfc1071_example_sum() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 after folding.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_low_byte() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn sum_of_huge_buffer_does_not_overflow() {
        let data = vec![0xffu8; 300_000];
        assert_eq!(fold(sum(&data)), 0xffff);
    }

    #[test]
    fn pseudo_header() {
        let s = pseudo_header_sum(
            Ipv4Addr::new(192, 168, 0, 1),
            Ipv4Addr::new(192, 168, 0, 199),
            17,
            0x20,
        );
        assert_eq!(s, 0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7 + 17 + 0x20);
    }

    #[test]
    fn update16_rfc1624_example() {
        // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn update_identity() {
        assert_eq!(update16(0x1234, 0xabcd, 0xabcd), 0x1234);
        assert_eq!(update32(0x1234, 0xdead_beef, 0xdead_beef), 0x1234);
        assert_eq!(update_bytes(0x1234, &[1, 2, 3, 4], &[1, 2, 3, 4]), 0x1234);
    }

    /// Full recompute over `data` with a fixed nonzero word in front (as every real header has).
    fn full(data: &[u8]) -> u16 {
        !fold(add(0x4500, sum(data)))
    }

    fn even_vec(max: usize) -> impl Strategy<Value = Vec<u8>> {
        (0..max / 2).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n * 2))
    }

    proptest! {
        #[test]
        fn update16_matches_recompute(mut data in even_vec(64), w in any::<prop::sample::Index>(),
                                      new in any::<u16>()) {
            prop_assume!(!data.is_empty());
            let at = w.index(data.len() / 2) * 2;
            let before = full(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update16(before, old, new), full(&data));
        }

        #[test]
        fn update32_and_addr_match_recompute(mut data in even_vec(64),
                                             w in any::<prop::sample::Index>(), new in any::<u32>()) {
            prop_assume!(data.len() >= 4);
            let at = w.index(data.len() / 2 - 1) * 2;
            let before = full(&data);
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update32(before, old, new), full(&data));
            prop_assert_eq!(
                update_addr(before, Ipv4Addr::from(old), Ipv4Addr::from(new)),
                full(&data)
            );
        }

        #[test]
        fn update_bytes_matches_recompute(mut data in even_vec(200),
                                          w in any::<prop::sample::Index>(),
                                          new in even_vec(40)) {
            prop_assume!(data.len() >= new.len());
            let at = w.index((data.len() - new.len()) / 2 + 1) * 2;
            let before = full(&data);
            let old = data[at..at + new.len()].to_vec();
            data[at..at + new.len()].copy_from_slice(&new);
            prop_assert_eq!(update_bytes(before, &old, &new), full(&data));
        }

        #[test]
        fn sum_is_order_independent_over_words(data in even_vec(128)) {
            let mut rev: Vec<u8> = Vec::with_capacity(data.len());
            for w in data.chunks_exact(2).rev() {
                rev.extend_from_slice(w);
            }
            prop_assert_eq!(fold(sum(&data)), fold(sum(&rev)));
        }

        #[test]
        fn checksum_verifies(mut data in even_vec(128)) {
            data.extend_from_slice(&[0x45, 0x00, 0, 0]);
            let c = checksum(&data);
            let n = data.len();
            data[n - 2..].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(checksum(&data), 0);
        }
    }
}
