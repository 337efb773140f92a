//! ARP for IPv4 over Ethernet (RFC 826): the only kind rvs answers or sends.
//!
//! Invariants: a checked packet holds at least [`LEN`] bytes and says hardware type 1 (Ethernet),
//! protocol type 0x0800, hardware length 6 and protocol length 4; anything else is
//! `Err(Unsupported)`, so the address accessors always read the fixed Ethernet/IPv4 layout.
//! Limitations: RARP and InARP operations parse (the operation is just a number) but rvs only acts
//! on requests and replies.

use std::net::Ipv4Addr;

use super::{ethertype, get_ipv4, get_mac, get_u16, get_u8, set_bytes, set_u16, set_u32, set_u8};
use super::{Error, MacAddr, Result};

mod field {
    use crate::wire::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// ARP operation codes.
pub mod arp_op {
    /// Who has `target_ip`?
    pub const REQUEST: u16 = 1;
    /// `sender_ip` is at `sender_hw_addr`.
    pub const REPLY: u16 = 2;
}

/// Length of an Ethernet/IPv4 ARP body.
pub const LEN: usize = 28;

const HTYPE_ETHERNET: u16 = 1;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it (accessors still never panic, but may read zeros).
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after checking its length and that it is Ethernet/IPv4 ARP.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// `Err(Truncated)` when short, `Err(Unsupported)` for other hardware or protocol types.
    pub fn check(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < LEN {
            return Err(Error::Truncated);
        }
        if get_u16(buf, field::HTYPE) != HTYPE_ETHERNET
            || get_u16(buf, field::PTYPE) != ethertype::IPV4
            || get_u8(buf, field::HLEN) != 6
            || get_u8(buf, field::PLEN) != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The operation (see [`arp_op`]).
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    pub fn sender_hw_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::SHA)
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address (zero in a request).
    pub fn target_hw_addr(&self) -> MacAddr {
        get_mac(self.buffer.as_ref(), field::THA)
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the operation.
    pub fn set_operation(&mut self, op: u16) {
        set_u16(self.buffer.as_mut(), field::OPER, op);
    }

    /// Sets the sender hardware address.
    pub fn set_sender_hw_addr(&mut self, addr: MacAddr) {
        set_bytes(self.buffer.as_mut(), field::SHA, &addr.0);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_ip(&mut self, addr: Ipv4Addr) {
        set_u32(self.buffer.as_mut(), field::SPA, addr.into());
    }

    /// Sets the target hardware address.
    pub fn set_target_hw_addr(&mut self, addr: MacAddr) {
        set_bytes(self.buffer.as_mut(), field::THA, &addr.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_ip(&mut self, addr: Ipv4Addr) {
        set_u32(self.buffer.as_mut(), field::TPA, addr.into());
    }
}

/// Writes a complete 28-byte Ethernet/IPv4 ARP body at the start of `buf`.
///
/// `Err(Truncated)`, and nothing written, when `buf` is shorter than [`LEN`].
pub fn emit(
    buf: &mut [u8],
    op: u16,
    sender_hw: MacAddr,
    sender_ip: Ipv4Addr,
    target_hw: MacAddr,
    target_ip: Ipv4Addr,
) -> Result<()> {
    if buf.len() < LEN {
        return Err(Error::Truncated);
    }
    set_u16(buf, field::HTYPE, HTYPE_ETHERNET);
    set_u16(buf, field::PTYPE, ethertype::IPV4);
    set_u8(buf, field::HLEN, 6);
    set_u8(buf, field::PLEN, 4);
    let mut packet = ArpPacket::new_unchecked(buf);
    packet.set_operation(op);
    packet.set_sender_hw_addr(sender_hw);
    packet.set_sender_ip(sender_ip);
    packet.set_target_hw_addr(target_hw);
    packet.set_target_ip(target_ip);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 10.0.0.2 tell 10.0.0.1, from 52:54:00:12:34:56 (the body of a captured request).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
        0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02,
    ];

    #[test]
    fn parses_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), arp_op::REQUEST);
        assert_eq!(
            p.sender_hw_addr(),
            MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        assert_eq!(p.sender_ip(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.target_hw_addr(), MacAddr::ZERO);
        assert_eq!(p.target_ip(), Ipv4Addr::new(10, 0, 0, 2));
    }

    #[test]
    fn padded_buffer_is_fine() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST);
        assert!(ArpPacket::new_checked(&padded[..]).is_ok());
    }

    #[test]
    fn rejects_short_and_foreign() {
        assert_eq!(
            ArpPacket::new_checked(&[][..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
        for (at, value) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = REQUEST;
            b[at] = value;
            assert_eq!(
                ArpPacket::new_checked(&b[..]).unwrap_err(),
                Error::Unsupported
            );
        }
    }

    #[test]
    fn emit_reply_and_setters() {
        let mut buf = [0xeeu8; 28];
        let me = MacAddr([2, 0, 0, 0, 0, 0x10]);
        let peer = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        let vip = Ipv4Addr::new(10, 0, 0, 2);
        let client = Ipv4Addr::new(10, 0, 0, 1);
        emit(&mut buf, arp_op::REPLY, me, vip, peer, client).unwrap();
        let mut short = [0u8; 27];
        let r = emit(&mut short, arp_op::REPLY, me, vip, peer, client);
        assert_eq!((r, short), (Err(Error::Truncated), [0; 27]));
        let mut p = ArpPacket::new_checked(&mut buf[..]).unwrap();
        assert_eq!(p.operation(), arp_op::REPLY);
        assert_eq!((p.sender_hw_addr(), p.sender_ip()), (me, vip));
        assert_eq!((p.target_hw_addr(), p.target_ip()), (peer, client));
        p.set_operation(arp_op::REQUEST);
        p.set_target_hw_addr(MacAddr::ZERO);
        p.set_target_ip(vip);
        p.set_sender_ip(client);
        p.set_sender_hw_addr(peer);
        assert_eq!(&p.into_inner()[..], &REQUEST[..]);
    }
}
