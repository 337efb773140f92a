//! IPv4 headers (RFC 791).
//!
//! Invariants of a checked packet: version 4, IHL >= 5, the header fits in the buffer, and
//! `header_len <= total_len <= buffer length`. A buffer longer than `total_len` is accepted
//! (Ethernet pads short frames to 60 bytes) and the bytes past `total_len` are not payload.
//! `new_checked_quoted` relaxes the last bound for the header quoted in an ICMP error, whose
//! payload is cut short by design; there `payload()` ends at the buffer.
//!
//! Limitations: options are exposed as raw bytes and never interpreted; fragments are detected
//! (`is_fragment`) but not reassembled, and the checksum is only verified on request.

use std::net::Ipv4Addr;

use super::checksum;
use super::{get_bytes, get_bytes_mut, get_ipv4, get_u16, get_u8, set_u16, set_u32, set_u8};
use super::{Error, Result};

mod field {
    use crate::wire::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it (accessors still never panic, but may read zeros).
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after checking the version and every length (see the module docs).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_header()?;
        if usize::from(packet.total_len()) > packet.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Like `new_checked` but accepts a total length beyond the buffer: for the original header
    /// quoted inside an ICMP error, which carries only the first bytes of the payload.
    pub fn new_checked_quoted(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_header()?;
        Ok(packet)
    }

    fn check_header(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        if usize::from(self.total_len()) < header_len {
            return Err(Error::BadTotalLen);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (4 on a checked packet).
    pub fn version(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(get_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// The DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::DSCP_ECN)
    }

    /// Total length field: header plus payload.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    fn flags_frag(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag() & FRAG_OFFSET_MASK) << 3
    }

    /// True for any fragment, first, middle or last: MF set or a nonzero offset.
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::TTL)
    }

    /// Payload protocol (see `wire::ipproto`).
    pub fn protocol(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::DST)
    }

    /// The whole header, options included.
    pub fn header(&self) -> &[u8] {
        get_bytes(self.buffer.as_ref(), 0..self.header_len())
    }

    /// The options (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        get_bytes(self.buffer.as_ref(), MIN_HEADER_LEN..self.header_len())
    }

    fn payload_range(&self) -> core::ops::Range<usize> {
        let end = usize::from(self.total_len()).min(self.buffer.as_ref().len());
        self.header_len()..end
    }

    /// The payload: from the end of the header to `total_len` (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        get_bytes(self.buffer.as_ref(), self.payload_range())
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let header = self.header();
        !header.is_empty() && checksum::checksum(header) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::DSCP_ECN, value);
    }

    /// Sets the total length field.
    pub fn set_total_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::TOTAL_LEN, value);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    fn set_flags_frag(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::FLAGS_FRAG, value);
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, on: bool) {
        let v = self.flags_frag() & !FLAG_DF;
        self.set_flags_frag(if on { v | FLAG_DF } else { v });
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, on: bool) {
        let v = self.flags_frag() & !FLAG_MF;
        self.set_flags_frag(if on { v | FLAG_MF } else { v });
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let v = self.flags_frag() & !FRAG_OFFSET_MASK;
        self.set_flags_frag(v | (bytes >> 3));
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::TTL, value);
    }

    /// Sets the payload protocol.
    pub fn set_protocol(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::PROTOCOL, value);
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address (the checksum is not touched).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        set_u32(self.buffer.as_mut(), field::SRC, addr.into());
    }

    /// Sets the destination address (the checksum is not touched).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        set_u32(self.buffer.as_mut(), field::DST, addr.into());
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// The options, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        get_bytes_mut(self.buffer.as_mut(), MIN_HEADER_LEN..end)
    }

    /// The payload (up to `total_len`), mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.payload_range();
        get_bytes_mut(self.buffer.as_mut(), range)
    }
}

impl Ipv4Packet<&mut [u8]> {
    /// Same as the module's [`emit_header`], callable as `Ipv4Packet::emit_header`.
    pub fn emit_header(
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        payload_len: u16,
        ttl: u8,
        ident: u16,
    ) {
        emit_header(buf, src, dst, protocol, payload_len, ttl, ident);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Writes a 20-byte header (no options, DSCP 0, DF clear) at the start of `buf`, checksum filled.
///
/// `total_len` becomes `20 + payload_len`, saturating at 65535. Writes nothing if `buf` is shorter
/// than [`MIN_HEADER_LEN`] (a programming error, debug-asserted).
pub fn emit_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: u16,
    ttl: u8,
    ident: u16,
) {
    debug_assert!(
        buf.len() >= MIN_HEADER_LEN,
        "ipv4::emit_header: short buffer"
    );
    let Some(header) = buf.get_mut(..MIN_HEADER_LEN) else {
        return;
    };
    set_u8(header, field::VER_IHL, 0x45);
    let mut p = Ipv4Packet::new_unchecked(header);
    p.set_dscp_ecn(0);
    p.set_total_len(payload_len.saturating_add(MIN_HEADER_LEN as u16));
    p.set_ident(ident);
    p.set_flags_frag(0);
    p.set_ttl(ttl);
    p.set_protocol(protocol);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipproto;
    use crate::wire::testdata::{DNS_QUERY, SYN, WITH_OPTIONS};

    #[test]
    fn parses_captured_syn() {
        let p = Ipv4Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ipproto::TCP);
        assert_eq!(p.checksum(), 0x5260);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 100));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 40);
        assert!(p.verify_checksum());
    }

    #[test]
    fn options_slice() {
        let p = Ipv4Packet::new_checked(&WITH_OPTIONS[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(
            p.payload(),
            &[0x22, 0x00, 0xfa, 0x01, 0x00, 0x00, 0x00, 0x01]
        );
        assert!(p.verify_checksum());
        assert!(!p.dont_frag());
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut padded = [0u8; 46];
        padded[..32].copy_from_slice(&WITH_OPTIONS);
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
        assert!(p.verify_checksum());
    }

    #[test]
    fn error_cases() {
        let check = |b: &[u8]| Ipv4Packet::new_checked(b).map(|_| ());
        assert_eq!(check(&[]), Err(Error::Truncated));
        assert_eq!(check(&SYN[..19]), Err(Error::Truncated));

        let mut b = SYN;
        b[0] = 0x65;
        assert_eq!(check(&b), Err(Error::BadVersion));
        b[0] = 0x44;
        assert_eq!(check(&b), Err(Error::BadHeaderLen));
        b[0] = 0x40;
        assert_eq!(check(&b), Err(Error::BadHeaderLen));
        // IHL 15 (60 bytes) fits this 60-byte buffer; total length 60 still covers it.
        b[0] = 0x4f;
        assert_eq!(check(&b), Ok(()));
        // ...but not a 40-byte prefix.
        assert_eq!(check(&b[..40]), Err(Error::Truncated));

        // Total length shorter than the header.
        let mut b = SYN;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(check(&b), Err(Error::BadTotalLen));
        let mut b = WITH_OPTIONS;
        b[2..4].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(check(&b), Err(Error::BadTotalLen));
        // Total length longer than the frame (the frame was cut).
        assert_eq!(check(&SYN[..59]), Err(Error::Truncated));
        let mut b = SYN;
        b[2..4].copy_from_slice(&61u16.to_be_bytes());
        assert_eq!(check(&b), Err(Error::Truncated));
        // Header only, no payload: fine.
        let mut b = SYN;
        b[2..4].copy_from_slice(&20u16.to_be_bytes());
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.payload().is_empty());
    }

    #[test]
    fn quoted_header_may_be_cut() {
        // An ICMP error quotes the header plus 8 bytes of the original datagram.
        let quoted = &SYN[..28];
        assert_eq!(
            Ipv4Packet::new_checked(quoted).unwrap_err(),
            Error::Truncated
        );
        let p = Ipv4Packet::new_checked_quoted(quoted).unwrap();
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.payload(), &SYN[20..28]);
        assert!(p.verify_checksum());
        assert_eq!(
            Ipv4Packet::new_checked_quoted(&SYN[..19]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn fragments_detected() {
        let mut b = DNS_QUERY;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        assert!(!p.is_fragment());
        // First fragment: MF, offset 0.
        p.set_more_frags(true);
        assert!(p.is_fragment() && p.more_frags() && p.frag_offset() == 0);
        // Middle fragment.
        p.set_frag_offset(1480);
        assert!(p.is_fragment() && p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        // Last fragment: offset only.
        p.set_more_frags(false);
        assert!(p.is_fragment() && !p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        // DF does not make a fragment, and the flags do not disturb each other.
        p.set_frag_offset(0);
        p.set_dont_frag(true);
        assert!(!p.is_fragment() && p.dont_frag());
        assert_eq!(&p.into_inner()[6..8], &[0x40, 0x00]);
        // The biggest offset the field can hold.
        let mut b = DNS_QUERY;
        b[6..8].copy_from_slice(&[0x1f, 0xff]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.frag_offset(), 0x1fff * 8);
        assert!(p.is_fragment());
    }

    #[test]
    fn setters_round_trip_and_checksum() {
        let mut b = SYN;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        let a = Ipv4Addr::new(172, 16, 0, 1);
        let d = Ipv4Addr::new(172, 16, 0, 2);
        p.set_src_addr(a);
        p.set_dst_addr(d);
        p.set_ttl(7);
        p.set_ident(0xabcd);
        p.set_protocol(ipproto::UDP);
        p.set_dscp_ecn(0xb8);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!((p.src_addr(), p.dst_addr(), p.ttl()), (a, d, 7));
        assert_eq!(
            (p.ident(), p.protocol(), p.dscp_ecn()),
            (0xabcd, ipproto::UDP, 0xb8)
        );
        p.payload_mut()[0] = 0xee;
        assert_eq!(p.payload()[0], 0xee);
        p.set_total_len(40);
        assert_eq!(p.payload().len(), 20);
        p.set_checksum(0x1234);
        assert_eq!(p.checksum(), 0x1234);

        let mut b = WITH_OPTIONS;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.options_mut()[2] = 1;
        assert_eq!(p.options(), &[0x94, 0x04, 0x01, 0x00]);
    }

    #[test]
    fn incremental_update_matches_fill() {
        let mut b = SYN;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        let old = p.dst_addr();
        let new = Ipv4Addr::new(10, 1, 2, 3);
        p.set_dst_addr(new);
        let c = checksum::update_addr(p.checksum(), old, new);
        let c = checksum::update16(
            c,
            u16::from(p.ttl()) << 8 | 6,
            u16::from(p.ttl() - 1) << 8 | 6,
        );
        p.set_ttl(p.ttl() - 1);
        p.set_checksum(c);
        assert!(p.verify_checksum());
        let before = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), before);
    }

    #[test]
    fn emit_and_parse() {
        let mut buf = [0xffu8; 28];
        let (s, d) = (Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8));
        emit_header(&mut buf, s, d, ipproto::IPIP, 8, 64, 99);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.src_addr(), p.dst_addr(), p.protocol()),
            (s, d, ipproto::IPIP)
        );
        assert_eq!((p.total_len(), p.ttl(), p.ident()), (28, 64, 99));
        assert!(!p.dont_frag() && !p.is_fragment());
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.payload().len(), 8);
        let mut again = [0u8; 20];
        Ipv4Packet::emit_header(&mut again, s, d, ipproto::IPIP, 8, 64, 99);
        assert_eq!(again, buf[..20]);
    }

    #[test]
    fn unchecked_garbage_does_not_panic() {
        let b = [0x4fu8, 0, 0xff, 0xff, 0, 0];
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(p.options().is_empty());
        assert!(p.payload().is_empty());
        assert!(!p.verify_checksum());
        assert_eq!(p.dst_addr(), Ipv4Addr::UNSPECIFIED);
    }
}
