//! ICMP for IPv4 (RFC 792): echo for the VIP to answer pings, errors to relate to a connection.
//!
//! Invariants of a checked message: at least the 8-byte header. The checksum covers the whole
//! buffer, so callers hand in exactly the IPv4 payload.
//!
//! Limitations: the 4 bytes after the checksum are read as echo ident/sequence or as a raw
//! `rest_of_header`; no other message layout is decoded. For an error message, `data()` starts
//! with the quoted IPv4 header: parse it with `Ipv4Packet::new_checked_quoted`, since only the
//! first 8 bytes of the original payload follow it.

use super::checksum;
use super::{get_bytes, get_bytes_mut, get_u16, get_u32, get_u8, set_u16, set_u32, set_u8};
use super::{Error, Result};

mod field {
    use crate::wire::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ: Field = 6..8;
    pub const REST: Field = 4..8;
}

/// Length of the ICMP header.
pub const HEADER_LEN: usize = 8;

/// ICMPv4 message types rvs handles.
pub mod icmp_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable (code 4: fragmentation needed, for path MTU discovery).
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source quench (deprecated, still an error).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 12;

    /// True for the error types, which quote the offending datagram's header.
    pub const fn is_error(msg_type: u8) -> bool {
        matches!(
            msg_type,
            DEST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it (accessors still never panic, but may read zeros).
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type (see [`icmp_type`]).
    pub fn msg_type(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::TYPE)
    }

    /// Code.
    pub fn code(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::CODE)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request and reply).
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (meaningful for echo request and reply).
    pub fn echo_seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// The 4 bytes after the checksum, whatever the type (next-hop MTU in its low half for
    /// "fragmentation needed").
    pub fn rest_of_header(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST)
    }

    /// True for error messages (see [`icmp_type::is_error`]).
    pub fn is_error(&self) -> bool {
        icmp_type::is_error(self.msg_type())
    }

    /// Everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        get_bytes(buf, HEADER_LEN..buf.len())
    }

    /// True when the checksum over the whole buffer is correct.
    pub fn verify_checksum(&self) -> bool {
        let buf = self.buffer.as_ref();
        buf.len() >= HEADER_LEN && checksum::checksum(buf) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::TYPE, value);
    }

    /// Sets the code.
    pub fn set_code(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::CODE, value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_SEQ, value);
    }

    /// Sets the 4 bytes after the checksum.
    pub fn set_rest_of_header(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::REST, value);
    }

    /// Everything after the header, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let buf = self.buffer.as_mut();
        let end = buf.len();
        get_bytes_mut(buf, HEADER_LEN..end)
    }

    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::{PING, SYN};
    use crate::wire::{ipproto, Ipv4Packet};
    use proptest::prelude::*;

    fn message() -> Vec<u8> {
        Ipv4Packet::new_checked(&PING[..])
            .unwrap()
            .payload()
            .to_vec()
    }

    #[test]
    fn parses_captured_echo_request() {
        let m = message();
        let p = Icmpv4Packet::new_checked(&m[..]).unwrap();
        assert_eq!(p.msg_type(), icmp_type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0xf3c8);
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        assert_eq!(p.rest_of_header(), 0x1234_0001);
        assert!(!p.is_error());
        assert_eq!(p.data().len(), 32);
        assert_eq!(p.data()[0], 0x10);
        assert!(p.verify_checksum());
    }

    #[test]
    fn truncated() {
        let m = message();
        assert_eq!(
            Icmpv4Packet::new_checked(&[][..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Icmpv4Packet::new_checked(&m[..7]).unwrap_err(),
            Error::Truncated
        );
        let p = Icmpv4Packet::new_checked(&m[..8]).unwrap();
        assert!(p.data().is_empty());
        let p = Icmpv4Packet::new_unchecked(&m[..3]);
        assert_eq!((p.checksum(), p.echo_seq(), p.rest_of_header()), (0, 0, 0));
        assert!(!p.verify_checksum());
    }

    #[test]
    fn echo_reply_by_rewriting_in_place() {
        let mut m = message();
        let mut p = Icmpv4Packet::new_checked(&mut m[..]).unwrap();
        let old = p.checksum();
        p.set_msg_type(icmp_type::ECHO_REPLY);
        // The type/code word went from 0x0800 to 0x0000.
        p.set_checksum(checksum::update16(old, 0x0800, 0x0000));
        assert!(p.verify_checksum());
        let patched = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), patched);
    }

    #[test]
    fn error_types_and_quoted_header() {
        for t in [3, 4, 5, 11, 12] {
            assert!(icmp_type::is_error(t));
        }
        for t in [0, 8, 13, 14, 255] {
            assert!(!icmp_type::is_error(t));
        }
        // Build "fragmentation needed" quoting the SYN's header and its first 8 payload bytes.
        let mut m = [0u8; 8 + 28];
        m[8..].copy_from_slice(&SYN[..28]);
        let mut p = Icmpv4Packet::new_checked(&mut m[..]).unwrap();
        p.set_msg_type(icmp_type::DEST_UNREACHABLE);
        p.set_code(4);
        p.set_rest_of_header(1400);
        p.fill_checksum();
        assert!(p.verify_checksum() && p.is_error());
        assert_eq!(p.rest_of_header() & 0xffff, 1400);
        assert_eq!(p.code(), 4);
        let quoted = Ipv4Packet::new_checked_quoted(p.data()).unwrap();
        assert_eq!(quoted.protocol(), ipproto::TCP);
        // The quoted 8 bytes hold the ports and the sequence number.
        assert_eq!(&quoted.payload()[..4], &[0x9c, 0x40, 0x00, 0x50]);
    }

    #[test]
    fn setters_round_trip() {
        let mut m = message();
        let mut p = Icmpv4Packet::new_checked(&mut m[..]).unwrap();
        p.set_echo_ident(7);
        p.set_echo_seq(8);
        p.set_code(9);
        p.data_mut()[0] = 0xaa;
        assert_eq!(
            (p.echo_ident(), p.echo_seq(), p.code(), p.data()[0]),
            (7, 8, 9, 0xaa)
        );
        p.set_checksum(1);
        assert_eq!(p.checksum(), 1);
        assert!(!p.verify_checksum());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn etherparse_agrees(
            id in any::<u16>(), seq in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut bytes = Vec::new();
            etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .icmpv4_echo_request(id, seq)
                .write(&mut bytes, &payload)
                .unwrap();
            let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            let p = Icmpv4Packet::new_checked(ip.payload()).unwrap();
            prop_assert_eq!(p.msg_type(), icmp_type::ECHO_REQUEST);
            prop_assert_eq!((p.echo_ident(), p.echo_seq()), (id, seq));
            prop_assert_eq!(p.data(), &payload[..]);
            prop_assert!(p.verify_checksum());

            let mut m = ip.payload().to_vec();
            let mut p = Icmpv4Packet::new_checked(&mut m[..]).unwrap();
            p.set_msg_type(icmp_type::ECHO_REPLY);
            p.fill_checksum();
            let (h, rest) = etherparse::Icmpv4Header::from_slice(&m).unwrap();
            prop_assert_eq!(h.icmp_type.calc_checksum(rest), h.checksum);
        }
    }
}
