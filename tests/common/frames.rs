//! Frames for every test tier and bench, built by hand and read back with etherparse.
//!
//! Building: [`Tcp`], [`Udp`] and [`Icmp`] describe one IPv4 datagram each (addresses, the few
//! IPv4 header fields tests vary, the transport header and payload), written as a struct
//! literal over `Default` (TTL 64, identification 0, DF clear, TCP window 65535, no options);
//! `segment()`/`message()` give the transport bytes with their checksum filled, `datagram()`
//! the IPv4 datagram and `frame(src_mac, dst_mac)` the Ethernet II frame. [`Ipv4`] wraps any
//! payload (IP-in-IP, a transport segment with IPv4 options), [`Arp`] is an Ethernet/IPv4 ARP
//! packet, [`eth`] an Ethernet header. Every constructor fills correct checksums; malformed
//! frames are made by editing the bytes afterwards (then [`fix_ip_checksum`] if the header
//! checksum must stay right), so a test shows exactly what it breaks. MAC arguments are always
//! (source, destination). Nothing here uses `rvs::wire`: tests judge rvs's parsers and
//! checksums with code of their own.
//!
//! Reading: [`parse_ip`] decodes an IPv4 frame with etherparse (someone else's parser and
//! checksum code) into an [`IpFrame`] holding the fields tests assert on and whether each
//! checksum and length is right; [`ip_frame`] does the same and panics unless every checksum
//! is; [`arp_frame`] reads an ARP frame.
//!
//! Included with `#[path]` by test files and benches (`#[path = "../tests/common/frames.rs"]`);
//! each uses only part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};

pub type Mac = [u8; 6];
pub type Ip = [u8; 4];

pub const BROADCAST: Mac = [0xff; 6];

/// Ethernet types.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
}

/// IPv4 protocol numbers.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

/// ICMP types and codes.
pub mod icmp {
    pub const ECHO_REPLY: u8 = 0;
    pub const UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    /// Codes of `UNREACHABLE`.
    pub const PORT_UNREACHABLE: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
}

// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// TCP flags from letters: S(YN) A(CK) F(IN) R(ST) P(SH), e.g. `"SA"`.
pub fn tcp_flags(letters: &str) -> u8 {
    letters
        .chars()
        .map(|c| match c {
            'S' => SYN,
            'A' => ACK,
            'F' => FIN,
            'R' => RST,
            'P' => PSH,
            other => panic!("no TCP flag {other:?}"),
        })
        .fold(0, |a, f| a | f)
}

// ---------------------------------------------------------------------------------------------
// Checksums (RFC 1071).

/// The folded 16-bit one's-complement sum of `data`, odd byte padded with zero.
pub fn ones_sum(data: &[u8]) -> u32 {
    let mut s: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    !(ones_sum(data) as u16)
}

/// The TCP/UDP checksum of `seg` (its checksum field zero) over the IPv4 pseudo-header.
pub fn l4_checksum(src: Ip, dst: Ip, protocol: u8, seg: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12 + seg.len());
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, protocol]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(seg);
    checksum(&pseudo)
}

// ---------------------------------------------------------------------------------------------
// Ethernet.

/// An Ethernet II frame from `src` to `dst`.
pub fn eth(src: Mac, dst: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `frame` with an 802.1Q tag (`tci`) inserted after the MAC addresses.
pub fn vlan_tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&ethertype::VLAN.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

// ---------------------------------------------------------------------------------------------
// IPv4.

/// An IPv4 header: no fragmentation (DF as given), DSCP 0, `options` (a multiple of 4 bytes)
/// after the fixed 20 bytes.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: Ip,
    pub dst: Ip,
    pub proto: u8,
    pub ttl: u8,
    pub id: u16,
    pub df: bool,
    pub options: Vec<u8>,
}

impl Default for Ipv4 {
    fn default() -> Ipv4 {
        Ipv4 {
            src: [0; 4],
            dst: [0; 4],
            proto: 0,
            ttl: 64,
            id: 0,
            df: false,
            options: Vec::new(),
        }
    }
}

impl Ipv4 {
    /// A header without options.
    pub fn header(src: Ip, dst: Ip, proto: u8, ttl: u8, id: u16, df: bool) -> Ipv4 {
        Ipv4 {
            src,
            dst,
            proto,
            ttl,
            id,
            df,
            options: Vec::new(),
        }
    }

    /// The datagram carrying `payload`, header checksum filled.
    pub fn datagram(&self, payload: &[u8]) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0, "IPv4 options in 32-bit words");
        let hl = 20 + self.options.len();
        let total = (hl + payload.len()) as u16;
        let mut d = vec![0x40 | (hl / 4) as u8, 0];
        d.extend_from_slice(&total.to_be_bytes());
        d.extend_from_slice(&self.id.to_be_bytes());
        d.extend_from_slice(&[if self.df { 0x40 } else { 0 }, 0]);
        d.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
        d.extend_from_slice(&self.src);
        d.extend_from_slice(&self.dst);
        d.extend_from_slice(&self.options);
        fix_ip_checksum(&mut d);
        d.extend_from_slice(payload);
        d
    }

    /// [`Ipv4::datagram`] in an Ethernet frame.
    pub fn frame(&self, src: Mac, dst: Mac, payload: &[u8]) -> Vec<u8> {
        eth(src, dst, ethertype::IPV4, &self.datagram(payload))
    }
}

/// Refill the header checksum of the IPv4 datagram `d` (after editing its header). The sum
/// covers the header length the header claims, and at least 20 bytes.
pub fn fix_ip_checksum(d: &mut [u8]) {
    d[10] = 0;
    d[11] = 0;
    let ihl = usize::from(d[0] & 0x0f) * 4;
    let ck = checksum(&d[..ihl.max(20)]);
    d[10..12].copy_from_slice(&ck.to_be_bytes());
}

/// `d` (an IPv4 datagram) as a router forwards it: TTL - 1, header checksum refilled.
pub fn ttl_decremented(d: &[u8]) -> Vec<u8> {
    let mut d = d.to_vec();
    d[8] -= 1;
    fix_ip_checksum(&mut d);
    d
}

/// Whether `f` is an (untagged) Ethernet frame long enough to hold an IPv4 header.
pub fn is_ipv4(f: &[u8]) -> bool {
    f.len() >= 34 && f[12..14] == ethertype::IPV4.to_be_bytes()
}

/// The IP identification of an IPv4 frame (tests tag their frames with it).
pub fn ip_id(f: &[u8]) -> Option<u16> {
    is_ipv4(f).then(|| u16::from_be_bytes([f[18], f[19]]))
}

// ---------------------------------------------------------------------------------------------
// TCP, UDP, ICMP.

/// A TCP segment in an IPv4 datagram. The acknowledgment number is written as given, with or
/// without ACK. `options` must be a multiple of 4 bytes.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub src: Ip,
    pub dst: Ip,
    pub ttl: u8,
    pub id: u16,
    pub df: bool,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Default for Tcp {
    fn default() -> Tcp {
        Tcp {
            src: [0; 4],
            dst: [0; 4],
            ttl: 64,
            id: 0,
            df: false,
            sport: 0,
            dport: 0,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 65535,
            options: Vec::new(),
            payload: Vec::new(),
        }
    }
}

impl Tcp {
    /// The IPv4 header around this segment.
    pub fn ip(&self) -> Ipv4 {
        Ipv4::header(self.src, self.dst, proto::TCP, self.ttl, self.id, self.df)
    }

    /// The TCP header and payload, checksum filled.
    pub fn segment(&self) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0, "TCP options in 32-bit words");
        let hl = 20 + self.options.len();
        let mut s = Vec::with_capacity(hl + self.payload.len());
        s.extend_from_slice(&self.sport.to_be_bytes());
        s.extend_from_slice(&self.dport.to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.extend_from_slice(&[((hl / 4) as u8) << 4, self.flags]);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]);
        s.extend_from_slice(&self.options);
        s.extend_from_slice(&self.payload);
        let ck = l4_checksum(self.src, self.dst, proto::TCP, &s);
        s[16..18].copy_from_slice(&ck.to_be_bytes());
        s
    }

    pub fn datagram(&self) -> Vec<u8> {
        self.ip().datagram(&self.segment())
    }

    pub fn frame(&self, src: Mac, dst: Mac) -> Vec<u8> {
        self.ip().frame(src, dst, &self.segment())
    }
}

/// TCP options: two NOPs and a SACK option with `blocks` (1 to 4 of them).
pub fn sack_option(blocks: &[(u32, u32)]) -> Vec<u8> {
    assert!((1..=4).contains(&blocks.len()), "1 to 4 SACK blocks");
    let mut o = vec![1, 1, 5, 2 + 8 * blocks.len() as u8];
    for (left, right) in blocks {
        o.extend_from_slice(&left.to_be_bytes());
        o.extend_from_slice(&right.to_be_bytes());
    }
    o
}

/// A UDP datagram in an IPv4 datagram. `no_checksum` sends checksum 0 ("none"); a computed
/// checksum of 0 is sent as 0xffff (RFC 768).
#[derive(Clone, Debug)]
pub struct Udp {
    pub src: Ip,
    pub dst: Ip,
    pub ttl: u8,
    pub id: u16,
    pub df: bool,
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
    pub no_checksum: bool,
}

impl Default for Udp {
    fn default() -> Udp {
        Udp {
            src: [0; 4],
            dst: [0; 4],
            ttl: 64,
            id: 0,
            df: false,
            sport: 0,
            dport: 0,
            payload: Vec::new(),
            no_checksum: false,
        }
    }
}

impl Udp {
    pub fn ip(&self) -> Ipv4 {
        Ipv4::header(self.src, self.dst, proto::UDP, self.ttl, self.id, self.df)
    }

    /// The UDP header and payload, checksum filled unless `no_checksum`.
    pub fn segment(&self) -> Vec<u8> {
        let mut s = Vec::with_capacity(8 + self.payload.len());
        s.extend_from_slice(&self.sport.to_be_bytes());
        s.extend_from_slice(&self.dport.to_be_bytes());
        s.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&self.payload);
        if !self.no_checksum {
            let ck = match l4_checksum(self.src, self.dst, proto::UDP, &s) {
                0 => 0xffff,
                ck => ck,
            };
            s[6..8].copy_from_slice(&ck.to_be_bytes());
        }
        s
    }

    pub fn datagram(&self) -> Vec<u8> {
        self.ip().datagram(&self.segment())
    }

    pub fn frame(&self, src: Mac, dst: Mac) -> Vec<u8> {
        self.ip().frame(src, dst, &self.segment())
    }
}

/// An ICMP message in an IPv4 datagram: type, code, the 4 bytes after the checksum (`rest`:
/// identifier and sequence number of an echo, the next-hop MTU of "fragmentation needed"),
/// then `payload` (echo data, or the quoted datagram of an error).
#[derive(Clone, Debug)]
pub struct Icmp {
    pub src: Ip,
    pub dst: Ip,
    pub ttl: u8,
    pub id: u16,
    pub df: bool,
    pub icmp_type: u8,
    pub code: u8,
    pub rest: u32,
    pub payload: Vec<u8>,
}

impl Default for Icmp {
    fn default() -> Icmp {
        Icmp {
            src: [0; 4],
            dst: [0; 4],
            ttl: 64,
            id: 0,
            df: false,
            icmp_type: 0,
            code: 0,
            rest: 0,
            payload: Vec::new(),
        }
    }
}

impl Icmp {
    /// An echo request (addresses left to the caller).
    pub fn echo_request(ident: u16, seq: u16, data: &[u8]) -> Icmp {
        Icmp {
            icmp_type: icmp::ECHO_REQUEST,
            rest: u32::from(ident) << 16 | u32::from(seq),
            payload: data.to_vec(),
            ..Icmp::default()
        }
    }

    /// A destination-unreachable error with `code`, quoting `quote` (addresses left to the
    /// caller); `next_hop_mtu` is 0 unless the code is "fragmentation needed".
    pub fn unreachable(code: u8, next_hop_mtu: u16, quote: &[u8]) -> Icmp {
        Icmp {
            icmp_type: icmp::UNREACHABLE,
            code,
            rest: u32::from(next_hop_mtu),
            payload: quote.to_vec(),
            ..Icmp::default()
        }
    }

    pub fn ip(&self) -> Ipv4 {
        Ipv4::header(self.src, self.dst, proto::ICMP, self.ttl, self.id, self.df)
    }

    /// The ICMP message, checksum filled.
    pub fn message(&self) -> Vec<u8> {
        let mut m = vec![self.icmp_type, self.code, 0, 0];
        m.extend_from_slice(&self.rest.to_be_bytes());
        m.extend_from_slice(&self.payload);
        let ck = checksum(&m);
        m[2..4].copy_from_slice(&ck.to_be_bytes());
        m
    }

    pub fn datagram(&self) -> Vec<u8> {
        self.ip().datagram(&self.message())
    }

    pub fn frame(&self, src: Mac, dst: Mac) -> Vec<u8> {
        self.ip().frame(src, dst, &self.message())
    }
}

// ---------------------------------------------------------------------------------------------
// ARP.

/// An ARP packet for Ethernet and IPv4 (RFC 826): operation, sender and target addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: Mac,
    pub spa: Ip,
    pub tha: Mac,
    pub tpa: Ip,
}

impl Arp {
    /// A request from `sha`/`spa` for `tpa` (target MAC zero).
    pub fn request(sha: Mac, spa: Ip, tpa: Ip) -> Arp {
        Arp {
            op: 1,
            sha,
            spa,
            tha: [0; 6],
            tpa,
        }
    }

    /// A reply: `sha` has `spa`, told to `tha`/`tpa`.
    pub fn reply(sha: Mac, spa: Ip, tha: Mac, tpa: Ip) -> Arp {
        Arp {
            op: 2,
            sha,
            spa,
            tha,
            tpa,
        }
    }

    /// A gratuitous ARP: a request for the sender's own address.
    pub fn gratuitous(sha: Mac, ip: Ip) -> Arp {
        Arp::request(sha, ip, ip)
    }

    /// The 28 bytes of the packet.
    pub fn bytes(&self) -> Vec<u8> {
        let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
        a.extend_from_slice(&self.op.to_be_bytes());
        a.extend_from_slice(&self.sha);
        a.extend_from_slice(&self.spa);
        a.extend_from_slice(&self.tha);
        a.extend_from_slice(&self.tpa);
        a
    }

    /// The packet in an Ethernet frame (42 bytes, unpadded).
    pub fn frame(&self, src: Mac, dst: Mac) -> Vec<u8> {
        eth(src, dst, ethertype::ARP, &self.bytes())
    }
}

/// An ARP frame as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpFrame {
    pub eth_src: Mac,
    pub eth_dst: Mac,
    pub arp: Arp,
}

/// `f` read as an untagged ARP frame; `None` if it is not one. Panics on ARP for anything but
/// Ethernet and IPv4.
pub fn arp_frame(f: &[u8]) -> Option<ArpFrame> {
    if f.len() < 42 || f[12..14] != ethertype::ARP.to_be_bytes() {
        return None;
    }
    assert_eq!(&f[14..20], &[0, 1, 8, 0, 6, 4], "ARP for Ethernet/IPv4");
    let mac = |at: usize| -> Mac { f[at..at + 6].try_into().unwrap() };
    let ip = |at: usize| -> Ip { f[at..at + 4].try_into().unwrap() };
    Some(ArpFrame {
        eth_dst: mac(0),
        eth_src: mac(6),
        arp: Arp {
            op: u16::from_be_bytes([f[20], f[21]]),
            sha: mac(22),
            spa: ip(28),
            tha: mac(32),
            tpa: ip(38),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Reading IPv4 frames (etherparse).

/// An IPv4 frame carrying TCP, UDP or ICMP, as etherparse reads it, with what its checksums
/// and lengths are worth. Transport fields that do not apply are zero.
#[derive(Clone, Debug, Default)]
pub struct IpFrame {
    /// The whole frame's length.
    pub len: usize,
    pub eth_src: Mac,
    pub eth_dst: Mac,
    pub src: Ip,
    pub dst: Ip,
    pub ttl: u8,
    pub id: u16,
    pub df: bool,
    pub total_len: u16,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// The TCP/UDP checksum as sent (UDP: 0 is "none").
    pub l4_checksum: u16,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub has_ack: bool,
    pub fin: bool,
    pub rst: bool,
    /// The SACK blocks among the TCP options.
    pub sack: Vec<(u32, u32)>,
    pub icmp_type: u8,
    /// TCP or UDP: the payload. ICMP: the whole message, header included.
    pub payload: Vec<u8>,
    pub ip_checksum_ok: bool,
    /// TCP or UDP checksum right (a UDP checksum of 0 counts as right), or ICMP's: right by
    /// etherparse's arithmetic and summing to 0xffff by ours.
    pub l4_checksum_ok: bool,
    /// IPv4 total length = the frame minus its Ethernet header.
    pub length_ok: bool,
}

impl IpFrame {
    /// Every checksum and length right.
    pub fn assert_valid(&self, what: &str) {
        assert!(self.ip_checksum_ok, "{what}: IP header checksum ({self:?})");
        assert!(self.l4_checksum_ok, "{what}: transport checksum ({self:?})");
        assert!(self.length_ok, "{what}: IP total length ({self:?})");
    }

    /// The payload as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// Sequence space taken: payload plus one for SYN or FIN.
    pub fn span(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.syn) + u32::from(self.fin)
    }
}

/// Decode an IPv4 frame carrying TCP, UDP or ICMP; an error names what is missing, with the
/// frame's bytes. Checksums and lengths are judged, not required (see [`ip_frame`]).
pub fn parse_ip(f: &[u8]) -> Result<IpFrame, String> {
    let s = SlicedPacket::from_ethernet(f)
        .map_err(|e| format!("etherparse refuses {}: {e}", hex(f)))?;
    let Some(LinkSlice::Ethernet2(e)) = &s.link else {
        return Err(format!("not Ethernet II: {}", hex(f)));
    };
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        return Err(format!("not IPv4: {}", hex(f)));
    };
    let h = ip.header();
    let (src, dst) = (h.source(), h.destination());
    let mut out = IpFrame {
        len: f.len(),
        eth_src: e.source(),
        eth_dst: e.destination(),
        src,
        dst,
        ttl: h.ttl(),
        id: h.identification(),
        df: h.dont_fragment(),
        total_len: h.total_len(),
        proto: h.protocol().0,
        ip_checksum_ok: h.to_header().calc_header_checksum() == h.header_checksum(),
        length_ok: usize::from(h.total_len()) + 14 == f.len(),
        ..IpFrame::default()
    };
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let th = t.to_header();
            let want = th.calc_checksum_ipv4_raw(src, dst, t.payload());
            out.l4_checksum_ok = want.is_ok_and(|ck| ck == t.checksum());
            out.sport = t.source_port();
            out.dport = t.destination_port();
            out.l4_checksum = t.checksum();
            out.seq = t.sequence_number();
            out.ack = t.acknowledgment_number();
            out.syn = t.syn();
            out.has_ack = t.ack();
            out.fin = t.fin();
            out.rst = t.rst();
            for o in th.options_iterator() {
                if let Ok(TcpOptionElement::SelectiveAcknowledgement(first, rest)) = o {
                    out.sack.push(first);
                    out.sack.extend(rest.iter().flatten().copied());
                }
            }
            out.payload = t.payload().to_vec();
        }
        Some(TransportSlice::Udp(u)) => {
            let want = u.to_header().calc_checksum_ipv4_raw(src, dst, u.payload());
            out.l4_checksum_ok = u.checksum() == 0 || want.is_ok_and(|ck| ck == u.checksum());
            out.sport = u.source_port();
            out.dport = u.destination_port();
            out.l4_checksum = u.checksum();
            out.payload = u.payload().to_vec();
        }
        Some(TransportSlice::Icmpv4(i)) => {
            out.l4_checksum_ok = i.icmp_type().calc_checksum(i.payload()) == i.checksum()
                && ones_sum(i.slice()) == 0xffff;
            out.icmp_type = i.type_u8();
            out.payload = i.slice().to_vec();
        }
        _ => return Err(format!("no TCP, UDP or ICMP in {}", hex(f))),
    }
    Ok(out)
}

/// [`parse_ip`], for a TCP frame only.
pub fn parse_tcp(f: &[u8]) -> Result<IpFrame, String> {
    let p = parse_ip(f)?;
    if p.proto != proto::TCP {
        return Err(format!("not TCP: {}", hex(f)));
    }
    Ok(p)
}

/// [`parse_ip`], panicking with the frame's bytes unless it decodes and its IP and transport
/// checksums are right (the IP total length is not checked: see [`IpFrame::assert_valid`]).
pub fn ip_frame(f: &[u8]) -> IpFrame {
    let p = parse_ip(f).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.ip_checksum_ok, "IP header checksum of {}", hex(f));
    assert!(
        p.l4_checksum_ok,
        "protocol {} checksum of {}",
        p.proto,
        hex(f)
    );
    p
}

/// `f` as lowercase hex, for failure messages.
pub fn hex(f: &[u8]) -> String {
    f.iter().map(|b| format!("{b:02x}")).collect()
}
