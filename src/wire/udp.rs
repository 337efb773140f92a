//! UDP datagrams (RFC 768).
//!
//! Invariants of a checked datagram: at least 8 bytes, and `8 <= length field <= buffer length`.
//! The datagram (payload and checksum) ends at the length field, not at the buffer.
//!
//! Limitations: a checksum of 0 means "not computed" (allowed over IPv4): `verify_checksum`
//! accepts it, and a rewrite must leave it 0 rather than patch it incrementally. A computed
//! checksum of 0 is sent as 0xffff.

use std::net::Ipv4Addr;

use super::checksum;
use super::{get_bytes, get_bytes_mut, get_u16, ipproto, set_u16};
use super::{Error, Result};

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it (accessors still never panic, but may read zeros).
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after checking the length field against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` when the header or the length field runs past the buffer,
    /// `Err(BadLength)` when the length field is below 8.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field: header plus payload.
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True when the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field (0: none computed).
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    fn datagram(&self) -> &[u8] {
        get_bytes(self.buffer.as_ref(), 0..usize::from(self.len()))
    }

    /// The payload: bytes 8 up to the length field.
    pub fn payload(&self) -> &[u8] {
        get_bytes(self.buffer.as_ref(), HEADER_LEN..usize::from(self.len()))
    }

    /// True when the checksum is absent (0) or correct over the pseudo-header and the datagram.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let dgram = self.datagram();
        if dgram.len() < HEADER_LEN {
            return false;
        }
        let ph = checksum::pseudo_header_sum(src, dst, ipproto::UDP, self.len());
        checksum::fold(checksum::add(ph, checksum::sum(dgram))) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// The payload (up to the length field), mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        get_bytes_mut(self.buffer.as_mut(), HEADER_LEN..end)
    }

    /// Computes the checksum over the pseudo-header and the datagram (a result of 0 is written as
    /// 0xffff, since 0 means "none"). Writes 0 when the length field does not fit the buffer.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let dgram = self.datagram();
        if dgram.len() < HEADER_LEN {
            return;
        }
        let ph = checksum::pseudo_header_sum(src, dst, ipproto::UDP, self.len());
        let c = !checksum::fold(checksum::add(ph, checksum::sum(dgram)));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::DNS_QUERY;
    use crate::wire::Ipv4Packet;
    use proptest::prelude::*;

    fn datagram() -> (Ipv4Addr, Ipv4Addr, Vec<u8>) {
        let p = Ipv4Packet::new_checked(&DNS_QUERY[..]).unwrap();
        (p.src_addr(), p.dst_addr(), p.payload().to_vec())
    }

    #[test]
    fn parses_captured_dns_query() {
        let (src, dst, d) = datagram();
        let u = UdpPacket::new_checked(&d[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (53000, 53));
        assert_eq!(u.len(), 37);
        assert!(!u.is_empty());
        assert_eq!(u.checksum(), 0x82dd);
        assert_eq!(u.payload().len(), 29);
        assert_eq!(&u.payload()[..2], &[0x12, 0x34]);
        assert!(u.verify_checksum(src, dst));
        assert!(!u.verify_checksum(src, Ipv4Addr::new(10, 0, 0, 54)));
    }

    #[test]
    fn length_field_bounds_payload_and_checksum() {
        let (src, dst, mut d) = datagram();
        d.extend_from_slice(&[0xde, 0xad]); // trailing bytes past the length field
        let u = UdpPacket::new_checked(&d[..]).unwrap();
        assert_eq!(u.payload().len(), 29);
        assert!(u.verify_checksum(src, dst));
    }

    #[test]
    fn error_cases() {
        let (_, _, d) = datagram();
        let check = |b: &[u8]| UdpPacket::new_checked(b).map(|_| ());
        assert_eq!(check(&[]), Err(Error::Truncated));
        assert_eq!(check(&d[..7]), Err(Error::Truncated));
        assert_eq!(check(&d[..36]), Err(Error::Truncated));
        for bad in [0u16, 1, 7] {
            let mut b = d.clone();
            b[4..6].copy_from_slice(&bad.to_be_bytes());
            assert_eq!(check(&b), Err(Error::BadLength), "length {bad}");
        }
        let mut b = d.clone();
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(u.is_empty() && u.payload().is_empty());
        b[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(check(&b), Err(Error::Truncated));
    }

    #[test]
    fn zero_checksum_means_none() {
        let (src, dst, mut d) = datagram();
        d[6..8].copy_from_slice(&[0, 0]);
        let u = UdpPacket::new_checked(&d[..]).unwrap();
        assert!(u.verify_checksum(src, dst));
        assert!(u.verify_checksum(dst, dst));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Find a payload word that makes the checksum come out as 0 and check it is sent as ffff.
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut d = vec![0x12, 0x34, 0x56, 0x78, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00];
        let mut u = UdpPacket::new_checked(&mut d[..]).unwrap();
        u.fill_checksum(src, dst);
        // Adding the checksum value into the payload word drives the sum to all ones.
        let c = u.checksum();
        u.payload_mut().copy_from_slice(&c.to_be_bytes());
        u.fill_checksum(src, dst);
        assert_eq!(u.checksum(), 0xffff);
        assert!(u.verify_checksum(src, dst));
    }

    #[test]
    fn setters_round_trip() {
        let (src, dst, mut d) = datagram();
        let mut u = UdpPacket::new_checked(&mut d[..]).unwrap();
        u.set_src_port(1);
        u.set_dst_port(2);
        u.payload_mut()[0] = 0xff;
        assert!(!u.verify_checksum(src, dst));
        u.fill_checksum(src, dst);
        assert!(u.verify_checksum(src, dst));
        assert_eq!((u.src_port(), u.dst_port(), u.payload()[0]), (1, 2, 0xff));
        u.set_len(10);
        assert_eq!(u.payload().len(), 2);
        u.set_checksum(7);
        assert_eq!(u.checksum(), 7);
        u.set_len(1000);
        assert!(u.payload().is_empty() && u.payload_mut().is_empty());
        assert!(!u.verify_checksum(src, dst));
        u.fill_checksum(src, dst);
        assert_eq!(u.checksum(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn etherparse_agrees(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in any::<u8>(),
            sport in any::<u16>(), dport in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut bytes = Vec::new();
            etherparse::PacketBuilder::ipv4(src, dst, ttl)
                .udp(sport, dport)
                .write(&mut bytes, &payload)
                .unwrap();
            let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(ip.verify_checksum());
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            let theirs = etherparse::UdpHeaderSlice::from_slice(ip.payload()).unwrap();
            prop_assert_eq!(u.src_port(), theirs.source_port());
            prop_assert_eq!(u.dst_port(), theirs.destination_port());
            prop_assert_eq!(u.len(), theirs.length());
            prop_assert_eq!(u.checksum(), theirs.checksum());
            prop_assert_eq!(u.payload(), &payload[..]);
            prop_assert!(u.verify_checksum(s, d));

            let mut bytes = bytes.clone();
            let new_src = Ipv4Addr::new(192, 0, 2, 1);
            let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
            ip.set_src_addr(new_src);
            ip.fill_checksum();
            let mut u = UdpPacket::new_checked(ip.payload_mut()).unwrap();
            u.set_src_port(sport.wrapping_add(1));
            u.fill_checksum(new_src, d);
            let ih = etherparse::Ipv4HeaderSlice::from_slice(&bytes).unwrap().to_header();
            prop_assert_eq!(ih.calc_header_checksum(), ih.header_checksum);
            let uh = etherparse::UdpHeaderSlice::from_slice(&bytes[20..]).unwrap().to_header();
            prop_assert_eq!(uh.calc_checksum_ipv4(&ih, &bytes[28..]).unwrap(), uh.checksum);
        }
    }
}
