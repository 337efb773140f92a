//! Zero-copy, checked views over the packet formats rvs forwards, and the checksums they carry.
//!
//! Each view (`EthernetFrame`, `ArpPacket`, `Ipv4Packet`, `TcpPacket`, `UdpPacket`,
//! `Icmpv4Packet`) wraps any `T: AsRef<[u8]>` (a slice, a `Vec`, an mbuf's data) without copying.
//! `new_checked` validates every length the view later relies on, so once a view is built its
//! accessors never panic. They go further: every read goes through a bounds-checked helper that
//! yields zero (or an empty slice) rather than panicking, so even a view built with
//! `new_unchecked`, or one whose length fields a setter has since changed, cannot bring a worker
//! down. Setters live in the `AsMut<[u8]>` impl and silently skip writes that would fall outside
//! the buffer (they cannot on a checked view). Byte ranges are named in a private `mod field`.
//!
//! Invariants: a view never reads past its buffer; an IPv4 payload ends at `total_len` (trailing
//! Ethernet padding is not payload); a UDP payload ends at its length field; a TCP segment is the
//! whole buffer it was given, so callers slice it to the IPv4 payload.
//!
//! Limitations: Ethernet II with at most one 802.1Q tag (QinQ's inner tag shows up as an
//! ethertype of 0x8100 and is treated as unsupported by callers); ARP for Ethernet/IPv4 only;
//! IPv4 only, IPv6 is not parsed; IP options are exposed as bytes, not interpreted; TCP options
//! are walked only far enough to find SACK blocks (what sequence adjustment must rewrite).

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod seq;
pub mod tcp;
pub mod udp;

use core::fmt;
use core::ops::Range;
use core::str::FromStr;

pub use arp::{arp_op, ArpPacket};
pub use ethernet::EthernetFrame;
pub use icmp::{icmp_type, Icmpv4Packet};
pub use ipv4::Ipv4Packet;
pub use seq::SeqNumber;
pub use tcp::{
    option_kind, sack_blocks, tcp_options, SackBlock, SackBlocks, TcpFlags, TcpOption, TcpOptions,
    TcpPacket,
};
pub use udp::UdpPacket;

/// Why a buffer could not be viewed as a given header. Small and `Copy`: the hot path maps it to a
/// drop reason and counts it.
///
/// The rule for lengths: a length field that points past the end of the buffer is `Truncated`;
/// a length field smaller than the fixed header it must cover is one of the `Bad*` variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field says it should be.
    Truncated,
    /// IPv4 version field is not 4.
    BadVersion,
    /// IPv4 IHL below 5 (a header shorter than 20 bytes).
    BadHeaderLen,
    /// IPv4 total length shorter than the header itself.
    BadTotalLen,
    /// TCP data offset below 5 (a header shorter than 20 bytes).
    BadDataOffset,
    /// UDP length field below 8.
    BadLength,
    /// Well-formed but not something rvs handles (for example ARP for another protocol).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Error::Truncated => "truncated packet",
            Error::BadVersion => "bad IP version",
            Error::BadHeaderLen => "bad IPv4 header length",
            Error::BadTotalLen => "bad IPv4 total length",
            Error::BadDataOffset => "bad TCP data offset",
            Error::BadLength => "bad UDP length",
            Error::Unsupported => "unsupported packet",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Error {}

/// Result of building a view.
pub type Result<T> = core::result::Result<T, Error>;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The raw octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// All ones.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The group bit (least significant bit of the first octet) is set; includes broadcast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Not a group address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// A string that is not six colon-separated pairs of hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address (expected six hex pairs like aa:bb:cc:dd:ee:ff)")
    }
}

impl std::error::Error for ParseMacError {}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Parses `aa:bb:cc:dd:ee:ff` (either case, exactly two hex digits per octet).
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or(ParseMacError)?;
            // from_str_radix alone would accept "+f"; insist on two hex digits.
            if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseMacError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddr(out))
    }
}

/// Ethernet II ethertypes rvs looks at.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
}

/// IP protocol numbers rvs looks at.
pub mod ipproto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4-in-IPv4 (the tunnel forwarding method).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

// Bounds-checked field access shared by the views. Out-of-range reads yield zero and
// out-of-range writes are skipped: on a checked view neither can happen, and on anything else a
// wrong value is better than a crashed worker.
type Field = Range<usize>;

fn get_u8(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

fn get_u16(buf: &[u8], field: Field) -> u16 {
    buf.get(field)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map_or(0, u16::from_be_bytes)
}

fn get_u32(buf: &[u8], field: Field) -> u32 {
    buf.get(field)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

fn get_bytes(buf: &[u8], field: Field) -> &[u8] {
    buf.get(field).unwrap_or(&[])
}

fn get_bytes_mut(buf: &mut [u8], field: Field) -> &mut [u8] {
    buf.get_mut(field).unwrap_or(&mut [])
}

fn get_mac(buf: &[u8], field: Field) -> MacAddr {
    buf.get(field)
        .and_then(|b| <[u8; 6]>::try_from(b).ok())
        .map_or(MacAddr::ZERO, MacAddr)
}

fn get_ipv4(buf: &[u8], field: Field) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(get_u32(buf, field))
}

fn set_u8(buf: &mut [u8], at: usize, value: u8) {
    if let Some(b) = buf.get_mut(at) {
        *b = value;
    }
}

fn set_bytes(buf: &mut [u8], field: Field, value: &[u8]) {
    if let Some(b) = buf.get_mut(field) {
        if b.len() == value.len() {
            b.copy_from_slice(value);
        }
    }
}

fn set_u16(buf: &mut [u8], field: Field, value: u16) {
    set_bytes(buf, field, &value.to_be_bytes());
}

fn set_u32(buf: &mut [u8], field: Field, value: u32) {
    set_bytes(buf, field, &value.to_be_bytes());
}

/// Captured-style packets shared by the unit tests (generated once, checksums valid).
#[cfg(test)]
pub(crate) mod testdata {
    /// TCP SYN 192.168.1.10:40000 -> 10.0.0.100:80, seq 0xfffffff0 (wraps soon), Linux options:
    /// MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
    pub const SYN: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x52, 0x60, 0xc0, 0xa8, //
        0x01, 0x0a, 0x0a, 0x00, 0x00, 0x64, 0x9c, 0x40, 0x00, 0x50, 0xff, 0xff, 0xff, 0xf0, //
        0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x43, 0xb5, 0x00, 0x00, 0x02, 0x04, //
        0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x11, 0xa0, 0xb1, 0x00, 0x00, 0x00, 0x00, //
        0x01, 0x03, 0x03, 0x07, //
    ];

    /// PSH|ACK reply 10.0.0.100:80 -> 192.168.1.10:40000 with two SACK blocks (NOP NOP SACK)
    /// and 17 bytes of HTTP.
    pub const SACK_DATA: [u8; 77] = [
        0x45, 0x00, 0x00, 0x4d, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x06, 0xaf, 0xa5, 0x0a, 0x00, //
        0x00, 0x64, 0xc0, 0xa8, 0x01, 0x0a, 0x00, 0x50, 0x9c, 0x40, 0x00, 0x00, 0x00, 0x10, //
        0xff, 0xff, 0xff, 0xf1, 0xa0, 0x18, 0x01, 0xf5, 0x2a, 0x30, 0x00, 0x00, 0x01, 0x01, //
        0x05, 0x12, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, //
        0x00, 0x00, 0x03, 0x00, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x20, 0x32, //
        0x30, 0x30, 0x20, 0x4f, 0x4b, 0x0d, 0x0a, //
    ];

    /// UDP DNS query 192.168.1.10:53000 -> 10.0.0.53:53, DF clear.
    pub const DNS_QUERY: [u8; 57] = [
        0x45, 0x00, 0x00, 0x39, 0x01, 0x02, 0x00, 0x00, 0x40, 0x11, 0xad, 0xcb, 0xc0, 0xa8, //
        0x01, 0x0a, 0x0a, 0x00, 0x00, 0x35, 0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0x82, 0xdd, //
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, //
        0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, //
        0x01, //
    ];

    /// ICMP echo request 192.168.1.10 -> 10.0.0.100, ident 0x1234, seq 1, 32 data bytes.
    pub const PING: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x42, 0x42, 0x40, 0x00, 0x40, 0x01, 0x2c, 0x69, 0xc0, 0xa8, //
        0x01, 0x0a, 0x0a, 0x00, 0x00, 0x64, 0x08, 0x00, 0xf3, 0xc8, 0x12, 0x34, 0x00, 0x01, //
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, //
        0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, //
        0x2c, 0x2d, 0x2e, 0x2f, //
    ];

    /// IGMPv2 report with the Router Alert IP option (IHL 6).
    pub const WITH_OPTIONS: [u8; 32] = [
        0x46, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x83, 0x0f, 0xc0, 0xa8, //
        0x01, 0x0a, 0xe0, 0x00, 0x00, 0x16, 0x94, 0x04, 0x00, 0x00, 0x22, 0x00, 0xfa, 0x01, //
        0x00, 0x00, 0x00, 0x01, //
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_display_and_parse_round_trip() {
        let mac = MacAddr([0x02, 0x00, 0x5e, 0x10, 0xab, 0xff]);
        assert_eq!(mac.to_string(), "02:00:5e:10:ab:ff");
        assert_eq!("02:00:5E:10:AB:FF".parse::<MacAddr>(), Ok(mac));
        assert_eq!(format!("{mac:?}"), "MacAddr(02:00:5e:10:ab:ff)");
    }

    #[test]
    fn mac_parse_rejects_malformed() {
        for bad in [
            "",
            "02:00:5e:10:ab",
            "02:00:5e:10:ab:ff:00",
            "2:00:5e:10:ab:ff",
            "+2:00:5e:10:ab:ff",
            "02-00-5e-10-ab-ff",
            "02:00:5e:10:ab:fg",
            "02:00:5e:10:ab:",
            "02:00:5e:10:ab:ff:",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(ParseMacError), "{bad:?}");
        }
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::BROADCAST.is_unicast());
        let mcast = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast());
        let ucast = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert!(ucast.is_unicast() && !ucast.is_multicast());
        assert!(MacAddr::ZERO.is_unicast());
    }

    #[test]
    fn error_display() {
        assert_eq!(Error::Truncated.to_string(), "truncated packet");
        assert_eq!(Error::Unsupported.to_string(), "unsupported packet");
    }

    #[test]
    fn field_helpers_never_panic_out_of_range() {
        let mut buf = [1u8, 2, 3];
        assert_eq!(get_u16(&buf, 2..4), 0);
        assert_eq!(get_u32(&buf, 0..4), 0);
        assert_eq!(get_u8(&buf, 9), 0);
        assert!(get_bytes(&buf, 2..9).is_empty());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 3..1;
        assert!(get_bytes(&buf, backwards).is_empty());
        set_u16(&mut buf, 2..4, 0xffff);
        set_u8(&mut buf, 3, 9);
        assert_eq!(buf, [1, 2, 3]);
        set_u16(&mut buf, 1..3, 0x0a0b);
        assert_eq!(buf, [1, 0x0a, 0x0b]);
    }
}
