//! ICMP errors about NAT'ed flows: find the connection an error quotes, and translate the error
//! so the host that sent the quoted datagram recognises it (IPVS's `ip_vs_out_icmp`,
//! `ip_vs_in_icmp` and `ip_vs_nat_icmp`).
//!
//! An ICMP error (destination unreachable, fragmentation needed included; source quench; time
//! exceeded; parameter problem) quotes the IP header and at least the first 8 bytes of the
//! datagram that caused it: enough for the TCP or UDP ports. Through a NAT, the quoted datagram is
//! the one as rewritten by rvs, so the host that gets the error must see its own datagram again:
//! the quoted addresses and ports are translated back, and so is the outer address that names rvs.
//!
//! # The two cases
//!
//! ```text
//! (a) an error from the client side about a reply rvs sent
//!
//!   client/router ── ICMP  src=R        dst=VIP      ─▶ rvs ── ICMP  src=R      dst=server ─▶ server
//!                    quote VIP:vport → client:cport         quote server:sport → client:cport
//!
//!   translate(ip, Some((End::Dst, server)), End::Src, server, sport)
//!
//! (b) an error from the server side about a request rvs forwarded
//!
//!   server/router ── ICMP  src=S|R      dst=client   ─▶ rvs ── ICMP  src=VIP|R  dst=client ─▶ client
//!                    quote client:cport → server:sport      quote client:cport → VIP:vport
//!
//!   translate(ip, (src == server).then_some((End::Src, vip)), End::Dst, vip, vport)
//! ```
//!
//! In (b) the outer source is rewritten to the VIP only when the server itself sent the error:
//! the client never heard of the server's address. An intermediate router between rvs and the
//! server keeps its own address (as a router behind any NAT would). In (a) the outer source, the
//! client or a router on its path, is left alone.
//!
//! # Finding the flow
//!
//! An error travels in the opposite direction to the datagram it quotes, so the key to look up is
//! always [`Quoted::reversed_key`] (the quoted tuple with both ends swapped), and the direction
//! the table answers tells the case apart:
//!
//! - (a) the quoted reply is `{src: VIP, dst: client, sport: vport, dport: cport}`, which is
//!   neither key as-is; reversed it is `{src: client, dst: VIP, sport: cport, dport: vport}` =
//!   `Conn::original_key`, so the lookup answers `Dir::Original`.
//! - (b) the quoted request is `{src: client, dst: server, sport: cport, dport: sport}`; reversed
//!   it is `{src: server, dst: client, sport: sport, dport: cport}` = `Conn::reply_key`, so the
//!   lookup answers `Dir::Reply`.
//!
//! Invariants: [`translate`] validates exactly what [`quoted_flow`] does first and leaves the
//! buffer untouched on any error. Every checksum (outer IP header, quoted IP header, quoted TCP or
//! UDP when its bytes are quoted, ICMP) is patched incrementally: a wrong checksum stays wrong,
//! and the cost does not depend on how much was quoted. The ICMP checksum is verified before
//! anything else is trusted, because the quote is what picks the connection.
//!
//! Limitations: TCP and UDP only (a quoted ICMP echo has no ports; IPVS's SCTP is not supported).
//! A quote of a non-first fragment carries no ports and is refused. Redirects are not forwarded:
//! they advise about rvs's own routing, not about the peer's flow. Outer fragments are refused
//! (the pipeline drops them before this point). The quoted TTL and IP options are not touched.

use std::net::Ipv4Addr;

use crate::flow::key::FlowKey;
use crate::wire::icmp::HEADER_LEN as ICMP_HEADER_LEN;
use crate::wire::{checksum, icmp_type, ipproto, Icmpv4Packet, Ipv4Packet};
use crate::xmit::nat::End;

/// Bytes of the quoted L4 header an error must carry at least: the ports and 4 more (RFC 792).
const MIN_QUOTED_L4: usize = 8;
/// Offset of the checksum in a TCP header.
const TCP_CHECKSUM_AT: usize = 16;
/// Offset of the checksum in a UDP header.
const UDP_CHECKSUM_AT: usize = 6;
/// ICMP destination unreachable code for "fragmentation needed and DF set".
const CODE_FRAG_NEEDED: u8 = 4;

/// Why an ICMP message was not related to a flow or not translated. Small and `Copy`: the
/// pipeline maps it to a drop reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuoteError {
    /// Not ICMP, or an ICMP type that is not an error rvs forwards (echo, redirect, ...).
    NotIcmpError,
    /// The ICMP header is cut, or the quote is shorter than its IP header plus 8 bytes.
    Truncated,
    /// The outer or the quoted IPv4 header is not a valid header, or the outer datagram is a
    /// fragment (whose ICMP message is incomplete; the pipeline drops those earlier).
    Malformed,
    /// The quoted datagram is neither TCP nor UDP (for example an ICMP echo).
    NotTcpUdp,
    /// The quoted datagram is a fragment with a nonzero offset: it carries no ports.
    QuotedFragment,
    /// The ICMP checksum over the whole message is wrong.
    BadChecksum,
    /// The outer TTL is 1 or 0: the error must not be forwarded.
    TtlExceeded,
}

/// What an ICMP error quotes, with the offsets [`translate`] works at (all from the start of the
/// outer IPv4 header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// ICMP type (see `wire::icmp_type`).
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
    /// The 4 ICMP header bytes after the checksum (next-hop MTU for fragmentation needed,
    /// pointer for parameter problem).
    pub rest_of_header: u32,
    /// Outer source: the host that reported the error.
    pub outer_src: Ipv4Addr,
    /// Outer destination: the source of the quoted datagram, as the reporter saw it.
    pub outer_dst: Ipv4Addr,
    /// Quoted datagram's protocol: `ipproto::TCP` or `ipproto::UDP`.
    pub proto: u8,
    /// Quoted source address.
    pub src: Ipv4Addr,
    /// Quoted destination address.
    pub dst: Ipv4Addr,
    /// Quoted source port.
    pub sport: u16,
    /// Quoted destination port.
    pub dport: u16,
    /// Offset of the ICMP header (the outer header length).
    pub icmp_offset: usize,
    /// Offset of the quoted IPv4 header.
    pub inner_offset: usize,
    /// Offset of the quoted TCP or UDP header.
    pub l4_offset: usize,
    /// End of the ICMP message (the outer total length).
    pub end: usize,
}

impl Quoted {
    /// The key of the quoted datagram, in the direction it travelled.
    pub fn key(&self) -> FlowKey {
        FlowKey {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
        }
    }

    /// The key of the opposite direction: the one to look up (see the module docs). Case (a)
    /// finds `Conn::original_key`, case (b) `Conn::reply_key`.
    pub fn reversed_key(&self) -> FlowKey {
        self.key().reversed()
    }

    /// The next-hop MTU of a "fragmentation needed" error (RFC 1191), `None` for anything else.
    pub fn next_hop_mtu(&self) -> Option<u16> {
        (self.icmp_type == icmp_type::DEST_UNREACHABLE && self.icmp_code == CODE_FRAG_NEEDED)
            .then_some(self.rest_of_header as u16)
    }
}

/// ICMP types rvs relates to a flow and forwards. Redirects are left out on purpose (see the
/// module docs); `icmp_type::is_error` includes them.
fn is_forwarded_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        icmp_type::DEST_UNREACHABLE
            | icmp_type::SOURCE_QUENCH
            | icmp_type::TIME_EXCEEDED
            | icmp_type::PARAMETER_PROBLEM
    )
}

/// The big-endian word at `at`, if `buf` holds it.
fn read16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    <[u8; 2]>::try_from(bytes).ok().map(u16::from_be_bytes)
}

/// Writes the big-endian word at `at`; does nothing if `buf` does not hold it.
fn write16(buf: &mut [u8], at: usize, value: u16) {
    if let Some(bytes) = at.checked_add(2).and_then(|e| buf.get_mut(at..e)) {
        bytes.copy_from_slice(&value.to_be_bytes());
    }
}

/// Parses the ICMP error in `ip` (an IPv4 datagram starting at its header) and returns what it
/// quotes. Verifies the ICMP checksum; the outer IP header checksum is the pipeline's business.
pub fn quoted_flow(ip: &[u8]) -> Result<Quoted, QuoteError> {
    let outer = Ipv4Packet::new_checked(ip).map_err(|_| QuoteError::Malformed)?;
    if outer.protocol() != ipproto::ICMP {
        return Err(QuoteError::NotIcmpError);
    }
    if outer.is_fragment() {
        return Err(QuoteError::Malformed);
    }
    let icmp_offset = outer.header_len();
    let end = usize::from(outer.total_len());
    let icmp = Icmpv4Packet::new_checked(outer.payload()).map_err(|_| QuoteError::Truncated)?;
    if !is_forwarded_error(icmp.msg_type()) {
        return Err(QuoteError::NotIcmpError);
    }
    if !icmp.verify_checksum() {
        return Err(QuoteError::BadChecksum);
    }
    let inner = Ipv4Packet::new_checked_quoted(icmp.data()).map_err(|e| match e {
        crate::wire::Error::Truncated => QuoteError::Truncated,
        _ => QuoteError::Malformed,
    })?;
    if inner.frag_offset() != 0 {
        return Err(QuoteError::QuotedFragment);
    }
    let proto = inner.protocol();
    if proto != ipproto::TCP && proto != ipproto::UDP {
        return Err(QuoteError::NotTcpUdp);
    }
    // Ends at the quoted total length or at the end of the quote, whichever comes first.
    let l4 = inner.payload();
    if l4.len() < MIN_QUOTED_L4 {
        return Err(QuoteError::Truncated);
    }
    let port = |at: usize| read16(l4, at).unwrap_or(0);
    let inner_offset = icmp_offset + ICMP_HEADER_LEN;
    Ok(Quoted {
        icmp_type: icmp.msg_type(),
        icmp_code: icmp.code(),
        rest_of_header: icmp.rest_of_header(),
        outer_src: outer.src_addr(),
        outer_dst: outer.dst_addr(),
        proto,
        src: inner.src_addr(),
        dst: inner.dst_addr(),
        sport: port(0),
        dport: port(2),
        icmp_offset,
        inner_offset,
        l4_offset: inner_offset + inner.header_len(),
        end,
    })
}

/// Translates the ICMP error in `ip` in place: the quoted datagram's `inner_end` address and port
/// become `inner_addr` and `inner_port`; if `outer` is given, that end of the outer header becomes
/// its address; the outer TTL is decremented. Every checksum is patched (see the module docs for
/// the arguments of each case). On error nothing is written.
pub fn translate(
    ip: &mut [u8],
    outer: Option<(End, Ipv4Addr)>,
    inner_end: End,
    inner_addr: Ipv4Addr,
    inner_port: u16,
) -> Result<(), QuoteError> {
    let outer: &[(End, Ipv4Addr)] = match &outer {
        Some(o) => std::slice::from_ref(o),
        None => &[],
    };
    translate_ends(ip, outer, &[(inner_end, inner_addr, inner_port)])
}

/// [`translate`] for several ends at once (full NAT rewrites both ends of the quoted datagram
/// and of the outer header), with one TTL decrement.
pub fn translate_ends(
    ip: &mut [u8],
    outer: &[(End, Ipv4Addr)],
    inner: &[(End, Ipv4Addr, u16)],
) -> Result<(), QuoteError> {
    let q = quoted_flow(ip)?;
    let ttl = Ipv4Packet::new_unchecked(&*ip).ttl();
    if ttl <= 1 {
        return Err(QuoteError::TtlExceeded);
    }
    let msg = ip
        .get_mut(q.icmp_offset..q.end)
        .ok_or(QuoteError::Malformed)?;
    let mut icmp_ck = Icmpv4Packet::new_unchecked(&*msg).checksum();

    for &(inner_end, inner_addr, inner_port) in inner {
        // The quoted IP header: one address, and its header checksum.
        let quote = msg
            .get_mut(ICMP_HEADER_LEN..)
            .ok_or(QuoteError::Truncated)?;
        let mut inner = Ipv4Packet::new_checked_quoted(quote).map_err(|_| QuoteError::Malformed)?;
        let old_addr = match inner_end {
            End::Src => inner.src_addr(),
            End::Dst => inner.dst_addr(),
        };
        let old_ip_ck = inner.checksum();
        let new_ip_ck = checksum::update_addr(old_ip_ck, old_addr, inner_addr);
        match inner_end {
            End::Src => inner.set_src_addr(inner_addr),
            End::Dst => inner.set_dst_addr(inner_addr),
        }
        inner.set_checksum(new_ip_ck);
        icmp_ck = checksum::update_addr(icmp_ck, old_addr, inner_addr);
        icmp_ck = checksum::update16(icmp_ck, old_ip_ck, new_ip_ck);

        // The quoted L4 header: one port, and the checksum when the quote reaches it. The checksum
        // covers the pseudo-header, so the address change goes into it too.
        let proto = inner.protocol();
        let l4 = inner.payload_mut();
        let port_at = match inner_end {
            End::Src => 0,
            End::Dst => 2,
        };
        let old_port = read16(l4, port_at).ok_or(QuoteError::Truncated)?;
        write16(l4, port_at, inner_port);
        icmp_ck = checksum::update16(icmp_ck, old_port, inner_port);

        let ck_at = if proto == ipproto::TCP {
            TCP_CHECKSUM_AT
        } else {
            UDP_CHECKSUM_AT
        };
        if let Some(old_l4_ck) = read16(l4, ck_at) {
            // A zero UDP checksum means "none" and stays zero; a computed zero is sent as 0xffff.
            if proto == ipproto::TCP || old_l4_ck != 0 {
                let mut ck = checksum::update_addr(old_l4_ck, old_addr, inner_addr);
                ck = checksum::update16(ck, old_port, inner_port);
                if proto == ipproto::UDP && ck == 0 {
                    ck = 0xffff;
                }
                write16(l4, ck_at, ck);
                icmp_ck = checksum::update16(icmp_ck, old_l4_ck, ck);
            }
        }
    }
    Icmpv4Packet::new_unchecked(&mut *msg).set_checksum(icmp_ck);

    // The outer header: maybe one address, and the TTL (which shares a word with the protocol).
    // ICMP has no pseudo-header, so the ICMP checksum does not see these.
    let mut pkt = Ipv4Packet::new_unchecked(ip);
    let mut ck = pkt.checksum();
    for &(end, addr) in outer {
        let old = match end {
            End::Src => pkt.src_addr(),
            End::Dst => pkt.dst_addr(),
        };
        ck = checksum::update_addr(ck, old, addr);
        match end {
            End::Src => pkt.set_src_addr(addr),
            End::Dst => pkt.set_dst_addr(addr),
        }
    }
    ck = checksum::update16(
        ck,
        u16::from_be_bytes([ttl, ipproto::ICMP]),
        u16::from_be_bytes([ttl - 1, ipproto::ICMP]),
    );
    pkt.set_ttl(ttl - 1);
    pkt.set_checksum(ck);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
    use etherparse::{Icmpv4Header, Icmpv4Type, Ipv4HeaderSlice, PacketBuilder, UdpHeader};
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const CPORT: u16 = 40000;
    const VPORT: u16 = 80;
    const SPORT: u16 = 8080;

    fn tcp_datagram(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(src.octets(), dst.octets(), 63)
            .tcp(sport, dport, 0x0102_0304, 64240)
            .syn()
            .write(&mut out, b"some tcp payload")
            .unwrap();
        out
    }

    fn udp_datagram(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(src.octets(), dst.octets(), 63)
            .udp(sport, dport)
            .write(&mut out, b"a short udp payload")
            .unwrap();
        out
    }

    /// An ICMP error from `from` to `to` quoting `quote` (already cut as the reporter cut it).
    fn icmp_error(from: Ipv4Addr, to: Ipv4Addr, t: Icmpv4Type, quote: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(from.octets(), to.octets(), 64)
            .icmpv4(t)
            .write(&mut out, quote)
            .unwrap();
        out
    }

    fn frag_needed() -> Icmpv4Type {
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400,
        })
    }

    fn ttl_exceeded() -> Icmpv4Type {
        Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit)
    }

    /// What an independent decoder sees after a translation; asserts every checksum it can.
    #[derive(Debug, PartialEq)]
    struct Seen {
        outer: (Ipv4Addr, Ipv4Addr, u8),
        inner: (Ipv4Addr, Ipv4Addr, u16, u16),
    }

    fn check(d: &[u8]) -> Seen {
        let outer = Ipv4HeaderSlice::from_slice(d).unwrap();
        assert_eq!(
            outer.to_header().calc_header_checksum(),
            outer.header_checksum(),
            "outer ip checksum"
        );
        let msg = &d[outer.slice().len()..usize::from(outer.total_len())];
        let (h, rest) = Icmpv4Header::from_slice(msg).unwrap();
        assert_eq!(h.icmp_type.calc_checksum(rest), h.checksum, "icmp checksum");
        // Also against our own full recompute.
        let mut copy = msg.to_vec();
        let mut p = Icmpv4Packet::new_unchecked(&mut copy[..]);
        p.fill_checksum();
        assert_eq!(p.checksum(), h.checksum, "icmp checksum, full recompute");

        let inner = Ipv4HeaderSlice::from_slice(rest).unwrap();
        assert_eq!(
            inner.to_header().calc_header_checksum(),
            inner.header_checksum(),
            "quoted ip checksum"
        );
        let l4 = &rest[inner.slice().len()..];
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        // A UDP datagram quoted whole: its checksum must equal a full recompute.
        if u8::from(inner.protocol()) == ipproto::UDP
            && rest.len() >= usize::from(inner.total_len())
        {
            let (u, payload) = UdpHeader::from_slice(l4).unwrap();
            // Zero means "no checksum" and is left alone.
            if u.checksum != 0 {
                let want = u
                    .calc_checksum_ipv4_raw(inner.source(), inner.destination(), payload)
                    .unwrap();
                assert_eq!(want, u.checksum, "quoted udp checksum");
            }
        }
        Seen {
            outer: (outer.source_addr(), outer.destination_addr(), outer.ttl()),
            inner: (inner.source_addr(), inner.destination_addr(), sport, dport),
        }
    }

    /// The quoted TCP checksum equals the one the server computed for the datagram before rvs
    /// rewrote it (full quote of a TCP segment).
    fn quoted_tcp_checksum(d: &[u8]) -> u16 {
        let q = quoted_flow(d).unwrap();
        u16::from_be_bytes([d[q.l4_offset + 16], d[q.l4_offset + 17]])
    }

    /// Case (a): `reply` is what the server sent; rvs rewrote it to VIP:vport and a router on
    /// the client side reports an error about it.
    fn case_a(reply: Vec<u8>, cut: Option<usize>) {
        let mut sent = reply.clone();
        crate::xmit::nat::rewrite(&mut sent, End::Src, VIP, VPORT).unwrap();
        let quote = &sent[..cut.unwrap_or(sent.len())];
        let mut d = icmp_error(ROUTER, VIP, ttl_exceeded(), quote);

        let q = quoted_flow(&d).unwrap();
        assert_eq!(
            (q.icmp_type, q.icmp_code, q.outer_src, q.outer_dst),
            (icmp_type::TIME_EXCEEDED, 0, ROUTER, VIP)
        );
        assert_eq!(
            (q.src, q.dst, q.sport, q.dport),
            (VIP, CLIENT, VPORT, CPORT)
        );
        assert_eq!(
            q.reversed_key(),
            FlowKey {
                src: CLIENT,
                dst: VIP,
                sport: CPORT,
                dport: VPORT,
                proto: q.proto
            },
            "case (a) looks up the original key"
        );
        assert_eq!(q.next_hop_mtu(), None);

        translate(&mut d, Some((End::Dst, SERVER)), End::Src, SERVER, SPORT).unwrap();
        let seen = check(&d);
        assert_eq!(
            seen,
            Seen {
                outer: (ROUTER, SERVER, 63),
                inner: (SERVER, CLIENT, SPORT, CPORT),
            }
        );
        // The server sees its own datagram again, checksums included (TTL aside: rvs and the
        // routers after it decremented the quoted TTL, and the quoted header checksum with it).
        let q = quoted_flow(&d).unwrap();
        let back = &d[q.inner_offset..q.end];
        assert_eq!(back[20..], reply[20..back.len()]);
        assert_eq!(back[12..20], reply[12..20]);
    }

    /// Case (b): `request` is what the client sent to the VIP; rvs rewrote it to the server and
    /// `from` (the server, or a router next to it) reports an error about it.
    fn case_b(request: Vec<u8>, cut: Option<usize>, from: Ipv4Addr, t: Icmpv4Type) {
        let mut fwd = request.clone();
        crate::xmit::nat::rewrite(&mut fwd, End::Dst, SERVER, SPORT).unwrap();
        let quote = &fwd[..cut.unwrap_or(fwd.len())];
        let mut d = icmp_error(from, CLIENT, t, quote);

        let q = quoted_flow(&d).unwrap();
        assert_eq!(
            (q.src, q.dst, q.sport, q.dport),
            (CLIENT, SERVER, CPORT, SPORT)
        );
        assert_eq!(
            q.reversed_key(),
            FlowKey {
                src: SERVER,
                dst: CLIENT,
                sport: SPORT,
                dport: CPORT,
                proto: q.proto
            },
            "case (b) looks up the reply key"
        );

        let outer = (q.outer_src == SERVER).then_some((End::Src, VIP));
        translate(&mut d, outer, End::Dst, VIP, VPORT).unwrap();
        let seen = check(&d);
        let want_src = if from == SERVER { VIP } else { from };
        assert_eq!(
            seen,
            Seen {
                outer: (want_src, CLIENT, 63),
                inner: (CLIENT, VIP, CPORT, VPORT),
            }
        );
        let q = quoted_flow(&d).unwrap();
        let back = &d[q.inner_offset..q.end];
        assert_eq!(back[12..], request[12..back.len()]);
    }

    #[test]
    fn case_a_tcp_full_and_8_byte_quotes() {
        let reply = tcp_datagram(SERVER, CLIENT, SPORT, CPORT);
        case_a(reply.clone(), None);
        case_a(reply, Some(28));
    }

    #[test]
    fn case_a_udp_full_and_8_byte_quotes() {
        let reply = udp_datagram(SERVER, CLIENT, SPORT, CPORT);
        case_a(reply.clone(), None);
        case_a(reply, Some(28));
    }

    #[test]
    fn case_b_tcp_from_server_and_from_router() {
        let req = tcp_datagram(CLIENT, VIP, CPORT, VPORT);
        case_b(req.clone(), None, SERVER, frag_needed());
        case_b(req.clone(), Some(28), SERVER, frag_needed());
        case_b(req.clone(), None, ROUTER, ttl_exceeded());
        case_b(req, Some(28), ROUTER, frag_needed());
    }

    #[test]
    fn case_b_udp_port_unreachable_from_server() {
        let req = udp_datagram(CLIENT, VIP, CPORT, VPORT);
        let port_unreach = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
        case_b(req.clone(), None, SERVER, port_unreach.clone());
        case_b(req, Some(28), SERVER, port_unreach);
    }

    #[test]
    fn quoted_tcp_checksum_is_the_servers_again() {
        // Quote the TCP header whole (20 bytes): the checksum is patched back to the server's.
        let reply = tcp_datagram(SERVER, CLIENT, SPORT, CPORT);
        let mut sent = reply.clone();
        crate::xmit::nat::rewrite(&mut sent, End::Src, VIP, VPORT).unwrap();
        let mut d = icmp_error(CLIENT, VIP, frag_needed(), &sent[..40]);
        assert_ne!(quoted_tcp_checksum(&d), quoted_tcp_checksum_of(&reply));
        translate(&mut d, Some((End::Dst, SERVER)), End::Src, SERVER, SPORT).unwrap();
        check(&d);
        assert_eq!(quoted_tcp_checksum(&d), quoted_tcp_checksum_of(&reply));
        assert_eq!(quoted_flow(&d).unwrap().next_hop_mtu(), Some(1400));
    }

    fn quoted_tcp_checksum_of(datagram: &[u8]) -> u16 {
        u16::from_be_bytes([datagram[36], datagram[37]])
    }

    #[test]
    fn quote_of_tcp_without_checksum_bytes_is_fine() {
        // 12 bytes of TCP: ports, seq, ack, but not the checksum at 16..18.
        let req = tcp_datagram(CLIENT, SERVER, CPORT, SPORT);
        let mut d = icmp_error(SERVER, CLIENT, frag_needed(), &req[..32]);
        translate(&mut d, Some((End::Src, VIP)), End::Dst, VIP, VPORT).unwrap();
        assert_eq!(check(&d).inner, (CLIENT, VIP, CPORT, VPORT));
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let mut req = udp_datagram(CLIENT, SERVER, CPORT, SPORT);
        req[26] = 0;
        req[27] = 0;
        let mut d = icmp_error(SERVER, CLIENT, frag_needed(), &req);
        translate(&mut d, None, End::Dst, VIP, VPORT).unwrap();
        let q = quoted_flow(&d).unwrap();
        assert_eq!(&d[q.l4_offset + 6..q.l4_offset + 8], &[0, 0]);
        assert_eq!(check(&d).inner, (CLIENT, VIP, CPORT, VPORT));
    }

    #[test]
    fn quoted_header_with_options() {
        // Quoted IHL 6 (a router alert option): the ports sit after the options.
        let mut req = udp_datagram(CLIENT, SERVER, CPORT, SPORT);
        req.splice(20..20, [0x94, 0x04, 0x00, 0x00]);
        req[0] = 0x46;
        let total = u16::from_be_bytes([req[2], req[3]]) + 4;
        req[2..4].copy_from_slice(&total.to_be_bytes());
        let mut h = Ipv4Packet::new_checked(&mut req[..]).unwrap();
        h.fill_checksum();
        let mut d = icmp_error(SERVER, CLIENT, frag_needed(), &req[..32]);
        let q = quoted_flow(&d).unwrap();
        assert_eq!((q.sport, q.dport, q.l4_offset), (CPORT, SPORT, 20 + 8 + 24));
        translate(&mut d, Some((End::Src, VIP)), End::Dst, VIP, VPORT).unwrap();
        assert_eq!(check(&d).inner, (CLIENT, VIP, CPORT, VPORT));
    }

    #[test]
    fn quoted_first_fragment_has_ports() {
        let mut req = udp_datagram(CLIENT, SERVER, CPORT, SPORT);
        let mut h = Ipv4Packet::new_checked(&mut req[..]).unwrap();
        h.set_more_frags(true);
        h.fill_checksum();
        let d = icmp_error(SERVER, CLIENT, frag_needed(), &req[..28]);
        assert_eq!(quoted_flow(&d).unwrap().dport, SPORT);
    }

    fn assert_refused(d: &[u8], want: QuoteError) {
        assert_eq!(quoted_flow(d), Err(want));
        let mut copy = d.to_vec();
        assert_eq!(translate(&mut copy, None, End::Dst, VIP, VPORT), Err(want));
        assert_eq!(copy, d, "nothing written on error");
    }

    #[test]
    fn error_cases() {
        let req = tcp_datagram(CLIENT, SERVER, CPORT, SPORT);
        // Not ICMP at all.
        assert_refused(&req, QuoteError::NotIcmpError);
        // ICMP, but an echo request.
        let mut echo = Vec::new();
        PacketBuilder::ipv4(CLIENT.octets(), VIP.octets(), 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut echo, &req)
            .unwrap();
        assert_refused(&echo, QuoteError::NotIcmpError);
        // A redirect quotes a datagram too, but is not forwarded.
        let mut redirect = icmp_error(ROUTER, SERVER, frag_needed(), &req);
        redirect[20] = icmp_type::REDIRECT;
        redirect[21] = 1;
        let mut p = Icmpv4Packet::new_unchecked(&mut redirect[20..]);
        p.fill_checksum();
        assert_refused(&redirect, QuoteError::NotIcmpError);
        // Quote shorter than the IP header plus 8 bytes.
        assert_refused(
            &icmp_error(SERVER, CLIENT, frag_needed(), &req[..27]),
            QuoteError::Truncated,
        );
        assert_refused(
            &icmp_error(SERVER, CLIENT, frag_needed(), &req[..19]),
            QuoteError::Truncated,
        );
        assert_refused(
            &icmp_error(SERVER, CLIENT, frag_needed(), &[]),
            QuoteError::Truncated,
        );
        // ICMP header itself cut: a 4-byte "message".
        let mut short = icmp_error(SERVER, CLIENT, frag_needed(), &[]);
        short.truncate(24);
        short[2..4].copy_from_slice(&24u16.to_be_bytes());
        Ipv4Packet::new_checked(&mut short[..])
            .unwrap()
            .fill_checksum();
        assert_refused(&short, QuoteError::Truncated);
        // Quoted fragment with a nonzero offset.
        let mut frag = req.clone();
        let mut h = Ipv4Packet::new_checked(&mut frag[..]).unwrap();
        h.set_frag_offset(1480);
        h.fill_checksum();
        assert_refused(
            &icmp_error(SERVER, CLIENT, frag_needed(), &frag[..28]),
            QuoteError::QuotedFragment,
        );
        // Bad ICMP checksum (one quoted byte flipped after the checksum was computed).
        let mut bad = icmp_error(SERVER, CLIENT, frag_needed(), &req);
        let n = bad.len();
        bad[n - 1] ^= 0x01;
        assert_refused(&bad, QuoteError::BadChecksum);
        // An error quoting an ICMP echo: no ports.
        assert_refused(
            &icmp_error(ROUTER, CLIENT, ttl_exceeded(), &echo),
            QuoteError::NotTcpUdp,
        );
        // Quoted header that is not IPv4.
        let mut v6 = req.clone();
        v6[0] = 0x65;
        assert_refused(
            &icmp_error(SERVER, CLIENT, frag_needed(), &v6),
            QuoteError::Malformed,
        );
        // Outer datagram a fragment.
        let mut outer_frag = icmp_error(SERVER, CLIENT, frag_needed(), &req);
        let mut h = Ipv4Packet::new_checked(&mut outer_frag[..]).unwrap();
        h.set_more_frags(true);
        h.fill_checksum();
        assert_refused(&outer_frag, QuoteError::Malformed);
        // Not even an IPv4 header.
        assert_refused(&[0x45, 0, 0], QuoteError::Malformed);
    }

    #[test]
    fn ttl_one_is_not_forwarded() {
        let req = tcp_datagram(CLIENT, SERVER, CPORT, SPORT);
        let mut d = icmp_error(SERVER, CLIENT, frag_needed(), &req);
        let mut h = Ipv4Packet::new_checked(&mut d[..]).unwrap();
        h.set_ttl(1);
        h.fill_checksum();
        assert!(quoted_flow(&d).is_ok());
        let before = d.clone();
        assert_eq!(
            translate(&mut d, None, End::Dst, VIP, VPORT),
            Err(QuoteError::TtlExceeded)
        );
        assert_eq!(d, before);
    }

    fn valid_errors() -> Vec<Vec<u8>> {
        let tcp = tcp_datagram(CLIENT, SERVER, CPORT, SPORT);
        let udp = udp_datagram(CLIENT, SERVER, CPORT, SPORT);
        vec![
            icmp_error(SERVER, CLIENT, frag_needed(), &tcp),
            icmp_error(SERVER, CLIENT, frag_needed(), &tcp[..28]),
            icmp_error(ROUTER, CLIENT, ttl_exceeded(), &udp),
            icmp_error(ROUTER, CLIENT, ttl_exceeded(), &udp[..28]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120),
                                    outer_src in any::<bool>(), port in any::<u16>()) {
            let _ = quoted_flow(&bytes);
            let mut b = bytes.clone();
            let end = if outer_src { End::Src } else { End::Dst };
            let _ = translate(&mut b, Some((end, VIP)), end, VIP, port);
        }

        #[test]
        fn mutated_errors_never_panic(which in 0usize..4,
                                      edits in proptest::collection::vec(
                                          (any::<prop::sample::Index>(), any::<u8>()), 0..6),
                                      cut in any::<prop::sample::Index>(), do_cut in any::<bool>(),
                                      fix_ip in any::<bool>(), fix_icmp in any::<bool>(),
                                      port in any::<u16>()) {
            let mut d = valid_errors().swap_remove(which);
            for (at, v) in edits {
                let i = at.index(d.len());
                d[i] = v;
            }
            if do_cut {
                let n = cut.index(d.len() + 1);
                d.truncate(n);
            }
            // Re-seal checksums so mutations reach the deeper checks.
            if fix_ip {
                if let Ok(mut h) = Ipv4Packet::new_checked(&mut d[..]) {
                    h.fill_checksum();
                    if fix_icmp {
                        Icmpv4Packet::new_unchecked(h.payload_mut()).fill_checksum();
                    }
                }
            }
            let parsed = quoted_flow(&d);
            let before = d.clone();
            let res = translate(&mut d, Some((End::Src, VIP)), End::Dst, VIP, port);
            match res {
                Ok(()) => {
                    // A translated error still parses, with a valid ICMP checksum.
                    prop_assert!(parsed.is_ok());
                    let q = quoted_flow(&d);
                    prop_assert!(q.is_ok(), "{:?}", q);
                    let q = q.unwrap();
                    prop_assert_eq!((q.dst, q.dport), (VIP, port));
                }
                Err(e) => {
                    prop_assert_eq!(&d, &before);
                    if e != QuoteError::TtlExceeded {
                        prop_assert_eq!(parsed, Err(e));
                    }
                }
            }
        }
    }
}
