//! IP-in-IP tunnelling (`ipvsadm -i`, LVS-TUN, RFC 2003): the client's datagram is wrapped,
//! untouched, in an outer IPv4 header addressed to the real server, which decapsulates it (an
//! `ipip` tunnel device holding the VIP, with `rp_filter` relaxed on it) and answers the client
//! directly. As with DR, replies never pass through rvs (the TCP state tracker uses INPUT_ONLY),
//! and the servers need the VIP without announcing it (`arp_ignore=1`, `arp_announce=2`); unlike
//! DR they may sit behind routers.
//!
//! The outer header follows Linux `ip_vs_tunnel_xmit` and `ip_vs_prepare_tunneled_skb`:
//! - protocol 4 (IPIP), no options, MF and fragment offset clear;
//! - DF copied from the inner header;
//! - TTL copied from the inner header (not a fixed 64). The kernel decrements the inner TTL
//!   first (`decrement_ttl` in `__ip_vs_get_out_rt`, Linux >= 4.4) and then copies it; here
//!   [`encapsulate`] never changes the inner datagram, so a pipeline that wants the kernel's
//!   exact output calls [`super::dr::decrement_ttl`] before it;
//! - DSCP copied and ECN copied per RFC 6040 normal mode (`INET_ECN_encapsulate`: CE inside
//!   becomes ECT(0) outside, anything else is copied), so congestion marks survive the tunnel;
//! - identification as given by the caller (the kernel's `ip_select_ident`; rvs keeps a counter
//!   per worker), total length = inner + 20, header checksum computed in full (20 bytes).
//!
//! MTU: the tunnel costs 20 bytes, so a datagram that fitted the client's path may not fit the
//! link to the server. rvs does not fragment (neither the inner datagram nor the outer one): a
//! too big datagram gets [`TunError::TooBig`] carrying the tunnel MTU (link MTU - 20). With DF
//! set the pipeline answers with [`frag_needed`] advertising it, which is what lets the client's
//! path MTU discovery (RFC 1191) shrink its segments, exactly as IPVS's `ensure_mtu_is_adequate`
//! does; without DF it drops and counts (the kernel would fragment the outer datagram; a
//! fragment-reassembling server is a cost we do not push onto the real servers). TCP clients
//! nearly always set DF; MSS clamping at the edge is the other cure.
//!
//! [`frag_needed`] lives here because TUN is where the message is normally needed, but it serves
//! DR too (pass the link MTU from [`super::dr::DrError::TooBig`]).

use std::net::Ipv4Addr;

use crate::packet::PacketBuf;
use crate::wire::icmp::{self, icmp_type};
use crate::wire::{ethernet, ipproto, ipv4, Icmpv4Packet, Ipv4Packet, MacAddr};

/// Bytes the tunnel adds: one IPv4 header without options.
pub const OUTER_HEADER_LEN: usize = ipv4::MIN_HEADER_LEN;

/// ICMP code "fragmentation needed and DF set" under type 3 (RFC 792, RFC 1191).
pub const CODE_FRAG_NEEDED: u8 = 4;

/// Payload bytes quoted after the offending header in an ICMP error (RFC 792).
pub const QUOTED_PAYLOAD_LEN: usize = 8;

/// TTL of the ICMP errors rvs originates.
pub const ICMP_TTL: u8 = 64;

/// Why a datagram was not encapsulated, or an ICMP error not built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunError {
    /// The buffer has no room for the 20-byte outer header in front (the frame is unchanged).
    NoHeadroom,
    /// The output buffer cannot grow to hold the ICMP message ([`frag_needed`] only).
    NoTailroom,
    /// Inner datagram + 20 exceeds the link MTU. `mtu` is the tunnel MTU (link MTU - 20): the
    /// largest inner datagram that fits, and what "fragmentation needed" must advertise.
    TooBig {
        /// Largest inner datagram that fits.
        mtu: u16,
    },
    /// No IPv4 datagram at `l3_offset`, or (for [`frag_needed`]) `l3_offset` shorter than an
    /// Ethernet header.
    Malformed,
    /// RFC 1122 3.2.2 forbids an ICMP error about this datagram: it is itself an ICMP error, a
    /// non-initial fragment, sent from or to a non-unicast address, or link-layer multicast.
    Suppressed,
}

/// Wraps the IPv4 datagram at `l3_offset` of the frame in `buf` in an outer IPv4 header from
/// `outer_src` to `outer_dst` (see the module docs for every field), for a link of `mtu` bytes.
///
/// The outer header is inserted between the link-layer header (the `l3_offset` bytes in front,
/// kept byte for byte, VLAN tag included; the pipeline rewrites the MACs afterwards) and the inner
/// datagram, using headroom. Ethernet padding after the inner datagram is dropped. On any error
/// the frame is unchanged.
pub fn encapsulate<B: PacketBuf>(
    buf: &mut B,
    l3_offset: usize,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    ident: u16,
    mtu: u16,
) -> Result<(), TunError> {
    let inner = buf.data().get(l3_offset..).ok_or(TunError::Malformed)?;
    let inner = Ipv4Packet::new_checked(inner).map_err(|_| TunError::Malformed)?;
    let inner_len = inner.total_len();
    // Also keeps the outer total length within 16 bits, since mtu is a u16.
    if usize::from(inner_len) + OUTER_HEADER_LEN > usize::from(mtu) {
        return Err(TunError::TooBig {
            mtu: mtu.saturating_sub(OUTER_HEADER_LEN as u16),
        });
    }
    let (ttl, df, tos) = (inner.ttl(), inner.dont_frag(), inner.dscp_ecn());

    if !buf.prepend(OUTER_HEADER_LEN) {
        return Err(TunError::NoHeadroom);
    }
    let l3_end = l3_offset + OUTER_HEADER_LEN;
    buf.truncate(l3_end + usize::from(inner_len));
    let frame = buf.data_mut();
    frame.copy_within(OUTER_HEADER_LEN..l3_end, 0);
    // In range: the frame is now l3_end + inner_len bytes long.
    let outer = frame.get_mut(l3_offset..l3_end).unwrap_or(&mut []);
    ipv4::emit_header(
        outer,
        outer_src,
        outer_dst,
        ipproto::IPIP,
        inner_len,
        ttl,
        ident,
    );
    let mut outer = Ipv4Packet::new_unchecked(outer);
    outer.set_dscp_ecn(ecn_encapsulate(tos));
    outer.set_dont_frag(df);
    outer.fill_checksum();
    Ok(())
}

/// The outer DSCP/ECN byte for an inner one (RFC 6040 section 4.1, normal mode; Linux
/// `INET_ECN_encapsulate`): DSCP copied, ECN copied except CE, which becomes ECT(0) so that a
/// router's CE mark is not mistaken for one made inside the tunnel.
fn ecn_encapsulate(tos: u8) -> u8 {
    const ECN_MASK: u8 = 0b11;
    const CE: u8 = 0b11;
    const ECT_0: u8 = 0b10;
    let ecn = tos & ECN_MASK;
    (tos & !ECN_MASK) | if ecn == CE { ECT_0 } else { ecn }
}

/// Builds into `out` (cleared first) a complete Ethernet + IPv4 + ICMP "destination unreachable,
/// fragmentation needed" frame answering the IPv4 datagram at `l3_offset` of `offending_frame`,
/// advertising `mtu` as the next-hop MTU (pass the `mtu` of [`TunError::TooBig`] or
/// [`super::dr::DrError::TooBig`] unchanged: for TUN it is already the link MTU - 20).
///
/// - Link layer: the offending frame's `l3_offset` bytes (VLAN tag included) with the source and
///   destination MACs swapped; the pipeline may rewrite them.
/// - IPv4: from `from` (the VIP or the rvs address the client sent to) to the offending source,
///   TTL 64, DSCP 0, DF set with identification 0 (an atomic datagram, RFC 6864: this small
///   message is never fragmented), checksum filled.
/// - ICMP: type 3 code 4, next-hop MTU in the low 16 bits of the second word (RFC 1191), then the
///   offending header (options included) and the first 8 bytes of its payload, checksum filled.
///   RFC 792's 8 bytes hold the ports (and TCP sequence number) the client needs to find the
///   socket; RFC 1812 allows quoting up to 576 bytes in all, as Linux does, but nothing in PMTU
///   discovery uses more, and a fixed small message costs less on the fast path.
///
/// Refuses ([`TunError::Suppressed`]) what RFC 1122 3.2.2 says never to answer with an ICMP
/// error: an ICMP error, a non-initial fragment, a source that is not a unicast host (0.0.0.0,
/// loopback, broadcast, multicast), an IP broadcast or multicast destination, a link-layer
/// multicast frame. `out` is left empty on error.
pub fn frag_needed<B: PacketBuf>(
    out: &mut B,
    offending_frame: &[u8],
    l3_offset: usize,
    from: Ipv4Addr,
    mtu: u16,
) -> Result<(), TunError> {
    out.truncate(0);
    if l3_offset < ethernet::HEADER_LEN {
        return Err(TunError::Malformed);
    }
    let (l2, l3) = (
        offending_frame
            .get(..l3_offset)
            .ok_or(TunError::Malformed)?,
        offending_frame
            .get(l3_offset..)
            .ok_or(TunError::Malformed)?,
    );
    let orig = Ipv4Packet::new_checked(l3).map_err(|_| TunError::Malformed)?;
    if must_not_answer(&orig, ethernet::EthernetFrame::new_unchecked(l2).dst_addr()) {
        return Err(TunError::Suppressed);
    }
    let payload = orig.payload();
    let quote_len = orig.header_len() + payload.len().min(QUOTED_PAYLOAD_LEN);
    let icmp_len = icmp::HEADER_LEN + quote_len;
    let ip_start = l3_offset;
    let icmp_start = ip_start + ipv4::MIN_HEADER_LEN;
    let frame_len = icmp_start + icmp_len;

    if !out.append(frame_len) {
        out.truncate(0);
        return Err(TunError::NoTailroom);
    }
    let Some(frame) = out.data_mut().get_mut(..frame_len) else {
        out.truncate(0);
        return Err(TunError::NoTailroom);
    };
    let (l2_out, rest) = frame.split_at_mut(ip_start);
    l2_out.copy_from_slice(l2);
    let mut eth = ethernet::EthernetFrame::new_unchecked(l2_out);
    let (src_mac, dst_mac): (MacAddr, MacAddr) = (eth.src_addr(), eth.dst_addr());
    eth.set_dst_addr(src_mac);
    eth.set_src_addr(dst_mac);

    let (ip_hdr, icmp_buf) = rest.split_at_mut(ipv4::MIN_HEADER_LEN);
    // icmp_len <= 8 + 60 + 8, far below u16::MAX.
    let icmp_len16 = u16::try_from(icmp_len).unwrap_or(u16::MAX);
    ipv4::emit_header(
        ip_hdr,
        from,
        orig.src_addr(),
        ipproto::ICMP,
        icmp_len16,
        ICMP_TTL,
        0,
    );
    let mut ip = Ipv4Packet::new_unchecked(ip_hdr);
    ip.set_dont_frag(true);
    ip.fill_checksum();

    let mut msg = Icmpv4Packet::new_unchecked(icmp_buf);
    msg.set_msg_type(icmp_type::DEST_UNREACHABLE);
    msg.set_code(CODE_FRAG_NEEDED);
    msg.set_rest_of_header(u32::from(mtu));
    let quote = orig.as_ref().get(..quote_len).ok_or(TunError::Malformed)?;
    msg.data_mut().copy_from_slice(quote);
    msg.fill_checksum();
    Ok(())
}

/// RFC 1122 3.2.2 (and RFC 1812 4.3.2.7): the datagrams an ICMP error must never answer.
fn must_not_answer<T: AsRef<[u8]>>(orig: &Ipv4Packet<T>, link_dst: MacAddr) -> bool {
    let (src, dst) = (orig.src_addr(), orig.dst_addr());
    let bad_src =
        src.is_unspecified() || src.is_loopback() || src.is_broadcast() || src.is_multicast();
    let bad_dst = dst.is_broadcast() || dst.is_multicast();
    // Only the first fragment carries the L4 header the quote is for.
    let later_fragment = orig.frag_offset() != 0;
    // An ICMP error about an ICMP error could loop; an unreadable ICMP type counts as an error.
    let icmp_error = orig.protocol() == ipproto::ICMP
        && orig
            .payload()
            .first()
            .map_or(true, |&t| icmp_type::is_error(t));
    bad_src || bad_dst || later_fragment || icmp_error || link_dst.is_multicast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethertype;
    use crate::xmit::dr::{self, DrError};
    use etherparse::{
        icmpv4::DestUnreachableHeader, Icmpv4Type, IpNumber, NetSlice, PacketBuilder, SlicedPacket,
        TransportSlice,
    };

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const RVS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const CLIENT: [u8; 4] = [192, 0, 2, 10];
    const VIP: [u8; 4] = [198, 51, 100, 80];
    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);

    fn tcp_frame(payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, RVS_MAC)
            .ipv4(CLIENT, VIP, 57)
            .tcp(40000, 80, 0x0102_0304, 64240)
            .ack(7)
            .psh()
            .write(&mut out, &vec![0x5a; payload_len])
            .unwrap();
        out
    }

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, RVS_MAC)
            .ipv4(CLIENT, VIP, 9)
            .udp(53000, 53)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// Edits the inner IPv4 header of a frame and refills its checksum.
    fn edit_ip(frame: &mut [u8], f: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) {
        let mut p = Ipv4Packet::new_checked(&mut frame[ethernet::HEADER_LEN..]).unwrap();
        f(&mut p);
        p.fill_checksum();
    }

    /// Decodes an encapsulated frame with etherparse, checks the outer header, returns the inner
    /// datagram bytes.
    fn check_outer(frame: &[u8], inner_orig: &[u8], ident: u16) -> Vec<u8> {
        let s = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &s.net else {
            panic!("no outer ipv4")
        };
        let h = ip.header();
        let inner_hdr = etherparse::Ipv4HeaderSlice::from_slice(inner_orig).unwrap();
        assert_eq!(h.protocol(), IpNumber::IPV4, "outer protocol is IPIP");
        assert_eq!(ip.payload().ip_number, IpNumber::IPV4);
        assert_eq!(
            h.to_header().calc_header_checksum(),
            h.header_checksum(),
            "outer checksum"
        );
        assert_eq!(usize::from(h.total_len()), inner_orig.len() + 20);
        assert_eq!(h.ihl(), 5);
        assert_eq!(h.dont_fragment(), inner_hdr.dont_fragment(), "DF copied");
        assert!(!h.more_fragments());
        assert_eq!(h.fragments_offset().value(), 0);
        assert_eq!(h.ttl(), inner_hdr.ttl(), "TTL copied from inner");
        assert_eq!(h.identification(), ident);
        assert_eq!(Ipv4Addr::from(h.source()), LOCAL);
        assert_eq!(Ipv4Addr::from(h.destination()), SERVER);
        assert_eq!(
            h.dcp().value(),
            inner_hdr.dcp().value(),
            "DSCP copied from inner"
        );
        let inner = ip.payload().payload;
        assert_eq!(inner, inner_orig, "inner datagram byte-identical");
        inner.to_vec()
    }

    #[test]
    fn encapsulates_tcp() {
        let orig = tcp_frame(100);
        let inner_orig = orig[14..].to_vec();
        let mut buf = orig.clone();
        encapsulate(&mut buf, 14, LOCAL, SERVER, 0xbeef, 1500).unwrap();
        assert_eq!(buf.len(), orig.len() + 20);
        assert_eq!(&buf[..14], &orig[..14], "Ethernet header kept");
        let inner = check_outer(&buf, &inner_orig, 0xbeef);
        let s = SlicedPacket::from_ip(&inner).unwrap();
        let Some(TransportSlice::Tcp(t)) = s.transport else {
            panic!("inner not tcp")
        };
        assert_eq!((t.source_port(), t.destination_port()), (40000, 80));
        assert_eq!(t.payload(), &[0x5a; 100][..]);
    }

    #[test]
    fn encapsulates_udp_dropping_ethernet_padding() {
        let orig = udp_frame(b"q");
        let inner_orig = orig[14..].to_vec();
        let mut buf = orig.clone();
        // Short frames arrive padded to 60 bytes.
        buf.resize(60, 0);
        let mut ip = Ipv4Packet::new_checked(&buf[14..]).unwrap();
        assert!(ip.dont_frag(), "etherparse sets DF by default");
        edit_ip(&mut buf, |p| p.set_dont_frag(false));
        ip = Ipv4Packet::new_checked(&buf[14..]).unwrap();
        assert!(!ip.dont_frag());
        let inner_orig_nodf = buf[14..14 + inner_orig.len()].to_vec();
        encapsulate(&mut buf, 14, LOCAL, SERVER, 1, 1500).unwrap();
        assert_eq!(buf.len(), orig.len() + 20, "padding dropped");
        let inner = check_outer(&buf, &inner_orig_nodf, 1);
        let s = SlicedPacket::from_ip(&inner).unwrap();
        let Some(TransportSlice::Udp(u)) = s.transport else {
            panic!("inner not udp")
        };
        assert_eq!(u.destination_port(), 53);
        assert_eq!(u.payload(), b"q");
    }

    #[test]
    fn outer_ttl_matches_kernel_after_decrement() {
        let mut buf = tcp_frame(10);
        dr::decrement_ttl(&mut buf[14..]).unwrap();
        let inner_orig = buf[14..].to_vec();
        encapsulate(&mut buf, 14, LOCAL, SERVER, 9, 1500).unwrap();
        check_outer(&buf, &inner_orig, 9);
        assert_eq!(buf[14 + 8], 56, "outer TTL = decremented inner TTL");
    }

    #[test]
    fn dscp_and_ecn_follow_rfc6040() {
        assert_eq!(ecn_encapsulate(0xb8), 0xb8);
        assert_eq!(ecn_encapsulate(0xb8 | 0b01), 0xb8 | 0b01);
        assert_eq!(ecn_encapsulate(0xb8 | 0b10), 0xb8 | 0b10);
        assert_eq!(ecn_encapsulate(0xb8 | 0b11), 0xb8 | 0b10);
        let mut buf = tcp_frame(0);
        edit_ip(&mut buf, |p| p.set_dscp_ecn(0x28 | 0b11));
        encapsulate(&mut buf, 14, LOCAL, SERVER, 0, 1500).unwrap();
        assert_eq!(buf[15], 0x28 | 0b10);
        assert_eq!(buf[34 + 1], 0x28 | 0b11, "inner CE mark untouched");
    }

    #[test]
    fn keeps_a_vlan_tag() {
        let plain = tcp_frame(4);
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        tagged.extend_from_slice(&plain[12..]);
        let l2 = tagged[..18].to_vec();
        encapsulate(&mut tagged, 18, LOCAL, SERVER, 5, 1500).unwrap();
        assert_eq!(&tagged[..18], &l2[..]);
        let f = ethernet::EthernetFrame::new_checked(&tagged[..]).unwrap();
        assert_eq!((f.vlan_id(), f.ethertype()), (Some(42), ethertype::IPV4));
        let outer = Ipv4Packet::new_checked(f.payload()).unwrap();
        assert!(outer.verify_checksum());
        assert_eq!(outer.protocol(), ipproto::IPIP);
        assert_eq!(outer.payload(), &plain[14..]);
    }

    #[test]
    fn mtu_boundary() {
        let orig = tcp_frame(200);
        let inner_len = (orig.len() - 14) as u16;
        let mut buf = orig.clone();
        encapsulate(&mut buf, 14, LOCAL, SERVER, 0, inner_len + 20).unwrap();
        let mut buf = orig.clone();
        assert_eq!(
            encapsulate(&mut buf, 14, LOCAL, SERVER, 0, inner_len + 19),
            Err(TunError::TooBig { mtu: inner_len - 1 })
        );
        assert_eq!(buf, orig, "unchanged on error");
        assert_eq!(
            encapsulate(&mut buf, 14, LOCAL, SERVER, 0, 10),
            Err(TunError::TooBig { mtu: 0 })
        );
    }

    /// A buffer that refuses to grow at the front or back.
    struct Rigid(Vec<u8>);

    impl PacketBuf for Rigid {
        fn data(&self) -> &[u8] {
            &self.0
        }
        fn data_mut(&mut self) -> &mut [u8] {
            &mut self.0
        }
        fn truncate(&mut self, len: usize) {
            self.0.truncate(len);
        }
        fn prepend(&mut self, _n: usize) -> bool {
            false
        }
        fn adj(&mut self, n: usize) -> bool {
            PacketBuf::adj(&mut self.0, n)
        }
        fn append(&mut self, _n: usize) -> bool {
            false
        }
    }

    #[test]
    fn no_headroom_leaves_frame_alone() {
        let orig = tcp_frame(20);
        let mut buf = Rigid(orig.clone());
        assert_eq!(
            encapsulate(&mut buf, 14, LOCAL, SERVER, 0, 1500),
            Err(TunError::NoHeadroom)
        );
        assert_eq!(buf.0, orig);
    }

    #[test]
    fn malformed_inputs() {
        let orig = tcp_frame(20);
        let mut buf = orig.clone();
        assert_eq!(
            encapsulate(&mut buf, 200, LOCAL, SERVER, 0, 1500),
            Err(TunError::Malformed)
        );
        assert_eq!(
            encapsulate(&mut buf, 12, LOCAL, SERVER, 0, 1500),
            Err(TunError::Malformed)
        );
        let mut cut = orig[..40].to_vec();
        assert_eq!(
            encapsulate(&mut cut, 14, LOCAL, SERVER, 0, 1500),
            Err(TunError::Malformed)
        );
        assert_eq!(buf, orig);
    }

    /// Decodes a frag-needed frame with etherparse and checks it against the offending frame.
    fn check_frag_needed(out: &[u8], offending: &[u8], mtu: u16) {
        let s = SlicedPacket::from_ethernet(out).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = &s.link else {
            panic!("no ethernet")
        };
        assert_eq!(eth.destination(), offending[6..12]);
        assert_eq!(eth.source(), offending[0..6]);
        let Some(NetSlice::Ipv4(ip)) = &s.net else {
            panic!("no ipv4")
        };
        let h = ip.header();
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        assert_eq!(h.protocol(), IpNumber::ICMP);
        assert_eq!(h.ttl(), ICMP_TTL);
        assert_eq!(Ipv4Addr::from(h.source()), Ipv4Addr::from(VIP));
        let orig = Ipv4Packet::new_checked(&offending[14..]).unwrap();
        assert_eq!(Ipv4Addr::from(h.destination()), orig.src_addr());
        assert_eq!(usize::from(h.total_len()), out.len() - 14);
        let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
            panic!("no icmp")
        };
        assert_eq!(
            icmp.icmp_type(),
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: mtu
            })
        );
        assert_eq!(
            icmp.icmp_type().calc_checksum(icmp.payload()),
            icmp.checksum(),
            "icmp checksum"
        );
        // Full recompute over the whole message gives zero.
        assert_eq!(crate::wire::checksum::checksum(icmp.slice()), 0);
        let hl = orig.header_len();
        let want = &offending[14..14 + hl + 8.min(orig.payload().len())];
        assert_eq!(icmp.payload(), want, "quote = header + 8 bytes");
    }

    #[test]
    fn frag_needed_for_tunnel() {
        let frame = tcp_frame(1460);
        let mut buf = frame.clone();
        let Err(TunError::TooBig { mtu }) = encapsulate(&mut buf, 14, LOCAL, SERVER, 0, 1500)
        else {
            panic!("expected TooBig")
        };
        assert_eq!(mtu, 1480);
        let mut out = vec![0xee; 3]; // not empty: cleared first
        frag_needed(&mut out, &buf, 14, Ipv4Addr::from(VIP), mtu).unwrap();
        assert_eq!(out.len(), 14 + 20 + 8 + 20 + 8);
        check_frag_needed(&out, &frame, 1480);
    }

    #[test]
    fn frag_needed_for_dr_quotes_options_and_short_payloads() {
        let frame = udp_frame(&[7; 1472]);
        let Err(DrError::TooBig { mtu }) = dr::check(&frame[14..], 1400) else {
            panic!("expected TooBig")
        };
        let mut out = Vec::new();
        frag_needed(&mut out, &frame, 14, Ipv4Addr::from(VIP), mtu).unwrap();
        check_frag_needed(&out, &frame, 1400);

        // A header with options is quoted whole; a payload under 8 bytes whole.
        let mut with_opts = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, RVS_MAC)
            .ip(etherparse::IpHeaders::Ipv4(
                etherparse::Ipv4Header {
                    source: CLIENT,
                    destination: VIP,
                    time_to_live: 30,
                    options: [0x94, 0x04, 0, 0][..].try_into().unwrap(),
                    ..Default::default()
                },
                Default::default(),
            ))
            .udp(1, 2)
            .write(&mut with_opts, &[])
            .unwrap();
        // UDP header only: 8 bytes of payload after a 24-byte header.
        frag_needed(&mut out, &with_opts, 14, Ipv4Addr::from(VIP), 576).unwrap();
        check_frag_needed(&out, &with_opts, 576);
        assert_eq!(out.len(), 14 + 20 + 8 + 24 + 8);

        let mut tiny = udp_frame(&[]);
        edit_ip(&mut tiny, |p| {
            p.set_protocol(200);
            p.set_total_len(23);
        });
        tiny.truncate(14 + 23);
        frag_needed(&mut out, &tiny, 14, Ipv4Addr::from(VIP), 1000).unwrap();
        assert_eq!(out.len(), 14 + 20 + 8 + 23);
        let s = SlicedPacket::from_ethernet(&out).unwrap();
        let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
            panic!("no icmp")
        };
        assert_eq!(icmp.payload(), &tiny[14..]);
    }

    #[test]
    fn frag_needed_suppressed_per_rfc1122() {
        let base = tcp_frame(100);
        let from = Ipv4Addr::from(VIP);
        let suppressed = |frame: &[u8]| {
            let mut out = vec![1, 2, 3];
            let r = frag_needed(&mut out, frame, 14, from, 1000);
            assert_eq!(out.is_empty(), r.is_err());
            r
        };
        assert_eq!(suppressed(&base), Ok(()));
        for src in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
        ] {
            let mut f = base.clone();
            edit_ip(&mut f, |p| p.set_src_addr(src));
            assert_eq!(suppressed(&f), Err(TunError::Suppressed), "{src}");
        }
        for dst in [Ipv4Addr::BROADCAST, Ipv4Addr::new(239, 1, 2, 3)] {
            let mut f = base.clone();
            edit_ip(&mut f, |p| p.set_dst_addr(dst));
            assert_eq!(suppressed(&f), Err(TunError::Suppressed), "{dst}");
        }
        let mut f = base.clone();
        edit_ip(&mut f, |p| p.set_frag_offset(1480));
        assert_eq!(suppressed(&f), Err(TunError::Suppressed));
        // A first fragment is answered.
        let mut f = base.clone();
        edit_ip(&mut f, |p| p.set_more_frags(true));
        assert_eq!(suppressed(&f), Ok(()));
        let mut f = base.clone();
        f[0] = 0x01; // multicast link-layer destination
        assert_eq!(suppressed(&f), Err(TunError::Suppressed));

        // ICMP: an error is never answered, an echo request is.
        let icmp = |t: u8| {
            let mut out = Vec::new();
            PacketBuilder::ethernet2(CLIENT_MAC, RVS_MAC)
                .ipv4(CLIENT, VIP, 64)
                .icmpv4_raw(t, 0, [0; 4])
                .write(&mut out, &[0; 40])
                .unwrap();
            out
        };
        assert_eq!(suppressed(&icmp(icmp_type::ECHO_REQUEST)), Ok(()));
        for t in [3, 4, 5, 11, 12] {
            assert_eq!(suppressed(&icmp(t)), Err(TunError::Suppressed), "{t}");
        }
        let mut empty_icmp = icmp(8);
        edit_ip(&mut empty_icmp, |p| p.set_total_len(20));
        assert_eq!(suppressed(&empty_icmp), Err(TunError::Suppressed));
    }

    #[test]
    fn frag_needed_errors() {
        let frame = tcp_frame(10);
        let mut out = Rigid(vec![9; 4]);
        assert_eq!(
            frag_needed(&mut out, &frame, 14, LOCAL, 1000),
            Err(TunError::NoTailroom)
        );
        assert!(out.0.is_empty());
        let mut out = Vec::new();
        for l3 in [0, 13, 100] {
            assert_eq!(
                frag_needed(&mut out, &frame, l3, LOCAL, 1000),
                Err(TunError::Malformed)
            );
        }
        assert_eq!(
            frag_needed(&mut out, &frame[..30], 14, LOCAL, 1000),
            Err(TunError::Malformed)
        );
    }

    /// Writes `frames` as an Ethernet pcap (classic format, microsecond timestamps).
    fn write_pcap(path: &std::path::Path, frames: &[&[u8]]) {
        let mut f = Vec::new();
        f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&4u16.to_le_bytes());
        f.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        f.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        f.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
        f.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        for (i, frame) in frames.iter().enumerate() {
            let len = u32::try_from(frame.len()).unwrap();
            f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(frame);
        }
        std::fs::write(path, f).unwrap();
    }

    /// The independent-decoder check: Wireshark's dissectors read our tunnel frame and our ICMP.
    #[test]
    fn tshark_decodes_tunnel_and_frag_needed() {
        if std::process::Command::new("tshark")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipping: tshark not installed (scripts/deps.sh installs it)");
            return;
        }
        let frame = tcp_frame(1460);
        let mut tunnelled = tcp_frame(64);
        encapsulate(&mut tunnelled, 14, LOCAL, SERVER, 0x4242, 1500).unwrap();
        let mut icmp = Vec::new();
        frag_needed(&mut icmp, &frame, 14, Ipv4Addr::from(VIP), 1480).unwrap();

        let dir = std::env::temp_dir().join(format!("rvs-xmit-tun-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tun.pcap");
        write_pcap(&path, &[&tunnelled, &icmp]);
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args(["-o", "ip.check_checksum:TRUE"])
            .args(["-T", "fields", "-E", "separator=|"])
            .args(["-e", "ip.proto", "-e", "ip.src", "-e", "ip.dst"])
            .args(["-e", "tcp.dstport", "-e", "ip.checksum.status"])
            .args(["-e", "icmp.type", "-e", "icmp.code", "-e", "icmp.mtu"])
            .args(["-e", "icmp.checksum.status", "-e", "_ws.expert"])
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('|').collect()).collect();
        assert_eq!(lines.len(), 2, "{stdout}");

        // Frame 1: two IP layers, the outer carrying IPIP, the inner TCP to port 80.
        let t = &lines[0];
        assert_eq!(t[0], "4,6", "{stdout}");
        assert_eq!(t[1], "198.51.100.1,192.0.2.10", "{stdout}");
        assert_eq!(t[2], "198.51.100.11,198.51.100.80", "{stdout}");
        assert_eq!(t[3], "80", "{stdout}");
        assert_eq!(t[4], "1,1", "both IP checksums good (1): {stdout}");
        assert_eq!(t[9], "", "no expert warnings: {stdout}");

        // Frame 2: fragmentation needed, quoting the TCP header.
        let i = &lines[1];
        assert_eq!(i[0], "1,6", "{stdout}");
        assert_eq!(i[2], "192.0.2.10,198.51.100.80", "{stdout}");
        assert_eq!(i[3], "80", "{stdout}");
        assert_eq!((i[5], i[6], i[7]), ("3", "4", "1480"), "{stdout}");
        assert_eq!(i[8], "1", "ICMP checksum good: {stdout}");
    }
}
