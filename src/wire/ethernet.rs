//! Ethernet II frames, optionally carrying one 802.1Q VLAN tag.
//!
//! `EthernetFrame` hides the tag: `ethertype()` and `payload()` are those of the inner frame, so the
//! pipeline does not care whether a VLAN was present. The outer type and the tag stay readable.
//!
//! Invariants: a checked frame holds at least 14 bytes, and at least 18 when its outer ethertype
//! is 0x8100. Limitations: a single tag only; with QinQ the inner 0x8100 (or an 802.1ad 0x88a8
//! outer type) is reported as the ethertype and callers drop it as unsupported. The FCS is not
//! part of the buffer (NICs strip it).

use super::{ethertype, get_bytes, get_bytes_mut, get_mac, get_u16, set_bytes, set_u16};
use super::{Error, MacAddr, Result};

mod field {
    use crate::wire::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const VLAN_TCI: Field = 14..16;
    pub const VLAN_ETHERTYPE: Field = 16..18;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of a header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it (accessors still never panic, but may read zeros).
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after checking that it holds the whole header, including any VLAN tag.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` unless the buffer holds the header (and tag, when tagged).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || (self.is_vlan_tagged() && len < VLAN_HEADER_LEN) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    pub fn dst_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::DST)
    }

    /// Source MAC.
    pub fn src_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::SRC)
    }

    /// The ethertype right after the addresses (0x8100 on a tagged frame).
    pub fn outer_ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// True when the outer ethertype is 802.1Q.
    pub fn is_vlan_tagged(&self) -> bool {
        self.outer_ethertype() == ethertype::VLAN
    }

    /// The whole tag control information (PCP, DEI, VID), if tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.is_vlan_tagged()
            .then(|| get_u16(self.buffer.as_ref(), field::VLAN_TCI))
    }

    /// The 12-bit VLAN id, if tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & 0x0fff)
    }

    /// The ethertype of the payload: the inner one on a tagged frame.
    pub fn ethertype(&self) -> u16 {
        if self.is_vlan_tagged() {
            get_u16(self.buffer.as_ref(), field::VLAN_ETHERTYPE)
        } else {
            self.outer_ethertype()
        }
    }

    /// 14, or 18 when tagged.
    pub fn header_len(&self) -> usize {
        if self.is_vlan_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Everything after the header (and tag). May include Ethernet padding.
    pub fn payload(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        get_bytes(buf, self.header_len()..buf.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        set_bytes(self.buffer.as_mut(), field::DST, &addr.0);
    }

    /// Sets the source MAC.
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        set_bytes(self.buffer.as_mut(), field::SRC, &addr.0);
    }

    /// Sets the payload's ethertype: the inner one on a tagged frame, so the tag is kept.
    pub fn set_ethertype(&mut self, value: u16) {
        let at = if self.is_vlan_tagged() {
            field::VLAN_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        set_u16(self.buffer.as_mut(), at, value);
    }

    /// Sets the tag control information; does nothing on an untagged frame.
    pub fn set_vlan_tci(&mut self, tci: u16) {
        if self.is_vlan_tagged() {
            set_u16(self.buffer.as_mut(), field::VLAN_TCI, tci);
        }
    }

    /// Everything after the header (and tag), mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let buf = self.buffer.as_mut();
        let end = buf.len();
        get_bytes_mut(buf, start..end)
    }
}

impl EthernetFrame<&mut [u8]> {
    /// Same as the module's [`emit_header`], callable as `EthernetFrame::emit_header`.
    pub fn emit_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
        emit_header(buf, dst, src, ethertype);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Writes an untagged 14-byte header at the start of `buf`.
///
/// Writes nothing if `buf` is shorter than [`HEADER_LEN`]; callers size their buffers, so this is
/// a programming error and is caught by a debug assertion.
pub fn emit_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    debug_assert!(
        buf.len() >= HEADER_LEN,
        "ethernet::emit_header: short buffer"
    );
    if buf.len() < HEADER_LEN {
        return;
    }
    set_bytes(buf, field::DST, &dst.0);
    set_bytes(buf, field::SRC, &src.0);
    set_u16(buf, field::ETHERTYPE, ethertype);
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ARP request as captured on a LAN: who-has 10.0.0.2 tell 10.0.0.1, padded to 60 bytes.
    const ARP_FRAME: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
        0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    // The start of a tagged IPv4 frame: VLAN 100, priority 5.
    const VLAN_FRAME: [u8; 22] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, //
        0xa0, 0x64, 0x08, 0x00, 0x45, 0x00, 0x00, 0x14,
    ];

    #[test]
    fn untagged_fields() {
        let f = EthernetFrame::new_checked(&ARP_FRAME[..]).unwrap();
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(f.src_addr(), MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(f.outer_ethertype(), ethertype::ARP);
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert!(!f.is_vlan_tagged());
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload().len(), 46);
        assert_eq!(&f.payload()[..4], &[0x00, 0x01, 0x08, 0x00]);
    }

    #[test]
    fn tagged_fields() {
        let f = EthernetFrame::new_checked(&VLAN_FRAME[..]).unwrap();
        assert_eq!(f.outer_ethertype(), ethertype::VLAN);
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.vlan_tci(), Some(0xa064));
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x14]);
    }

    #[test]
    fn runts_and_truncated_tags() {
        assert_eq!(
            EthernetFrame::new_checked(&[][..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            EthernetFrame::new_checked(&ARP_FRAME[..13]).unwrap_err(),
            Error::Truncated
        );
        assert!(EthernetFrame::new_checked(&ARP_FRAME[..14]).is_ok());
        for len in 14..18 {
            assert_eq!(
                EthernetFrame::new_checked(&VLAN_FRAME[..len]).unwrap_err(),
                Error::Truncated,
                "len {len}"
            );
        }
        let bare_tag = EthernetFrame::new_checked(&VLAN_FRAME[..18]).unwrap();
        assert!(bare_tag.payload().is_empty());
    }

    #[test]
    fn unchecked_short_buffer_does_not_panic() {
        let f = EthernetFrame::new_unchecked(&VLAN_FRAME[..15]);
        assert_eq!(f.vlan_tci(), Some(0));
        assert_eq!(f.ethertype(), 0);
        assert!(f.payload().is_empty());
        let mut buf = [0x81u8, 0x00];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(MacAddr::BROADCAST);
        f.set_ethertype(1);
        assert!(f.payload_mut().is_empty());
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = VLAN_FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        let a = MacAddr([1, 2, 3, 4, 5, 6]);
        let b = MacAddr([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        f.set_dst_addr(a);
        f.set_src_addr(b);
        f.set_ethertype(ethertype::ARP);
        f.set_vlan_tci(0x0fff);
        f.payload_mut()[0] = 0x46;
        assert_eq!(f.dst_addr(), a);
        assert_eq!(f.src_addr(), b);
        assert_eq!(f.outer_ethertype(), ethertype::VLAN);
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.vlan_id(), Some(0x0fff));
        assert_eq!(f.payload()[0], 0x46);
        assert_eq!(f.into_inner()[12..18], [0x81, 0x00, 0x0f, 0xff, 0x08, 0x06]);

        let mut buf = ARP_FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_vlan_tci(7); // untagged: ignored
        f.set_ethertype(ethertype::IPV4);
        assert_eq!(f.outer_ethertype(), ethertype::IPV4);
        assert_eq!(buf[14], 0x00);
    }

    #[test]
    fn emit_untagged_header() {
        let mut buf = [0u8; 20];
        let dst = MacAddr([2, 0, 0, 0, 0, 2]);
        let src = MacAddr([2, 0, 0, 0, 0, 1]);
        emit_header(&mut buf, dst, src, ethertype::IPV4);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (f.dst_addr(), f.src_addr(), f.ethertype()),
            (dst, src, ethertype::IPV4)
        );
        assert_eq!(f.payload().len(), 6);
        let mut again = [0u8; 14];
        EthernetFrame::emit_header(&mut again, dst, src, ethertype::IPV4);
        assert_eq!(again, buf[..14]);
    }
}
