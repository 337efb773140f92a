#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Robustness of `rvs::wire`: whatever bytes arrive, parsing every layer and calling every
//! accessor and setter must not panic, and a view that `new_checked` accepted must keep its
//! promises (payloads inside the buffer and consistent with the length fields).
//!
//! Two kinds of input: uniformly random byte vectors (mostly rejected early, so they also run
//! every view unchecked at several offsets), and valid frames of every kind rvs parses, mutated
//! by byte flips, truncation, extension and targeted corruption of the length fields.

#[path = "common/frames.rs"]
mod frames;

use std::net::Ipv4Addr;

use frames::{vlan_tagged, Arp, Icmp, Ipv4, Mac, Tcp, Udp, BROADCAST};
use proptest::prelude::*;
use rvs::wire::{
    arp, checksum, ethertype, icmp_type, ipproto, ipv4, sack_blocks, tcp_options, ArpPacket,
    EthernetFrame, Icmpv4Packet, Ipv4Packet, MacAddr, TcpFlags, TcpPacket, UdpPacket,
};

const CASES: u32 = 20_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

// ---------------------------------------------------------------------------------------------
// Exercising every accessor. `black_box` keeps the reads from being optimised away.

fn touch<T>(v: T) {
    std::hint::black_box(v);
}

fn eth_all<T: AsRef<[u8]>>(f: &EthernetFrame<T>) {
    touch((
        f.dst_addr(),
        f.src_addr(),
        f.outer_ethertype(),
        f.ethertype(),
    ));
    touch((
        f.vlan_tci(),
        f.vlan_id(),
        f.header_len(),
        f.is_vlan_tagged(),
    ));
    touch(f.payload());
    touch(f.dst_addr().is_multicast() || f.src_addr().is_unicast());
}

fn arp_all<T: AsRef<[u8]>>(p: &ArpPacket<T>) {
    touch((p.operation(), p.sender_hw_addr(), p.sender_ip()));
    touch((p.target_hw_addr(), p.target_ip()));
}

fn ipv4_all<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
    touch((
        p.version(),
        p.header_len(),
        p.dscp_ecn(),
        p.total_len(),
        p.ident(),
    ));
    touch((
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.is_fragment(),
    ));
    touch((
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
    ));
    touch((p.header(), p.options(), p.payload(), p.verify_checksum()));
}

fn tcp_all<T: AsRef<[u8]>>(t: &TcpPacket<T>) {
    touch((t.src_port(), t.dst_port(), t.seq_number(), t.ack_number()));
    touch((
        t.header_len(),
        t.flags(),
        t.syn(),
        t.fin(),
        t.rst(),
        t.ack(),
    ));
    touch((t.window(), t.checksum(), t.urgent(), t.segment_len()));
    touch((t.options(), t.payload(), t.verify_checksum(SRC, DST)));
    for o in tcp_options(t.options()) {
        touch((o.offset, o.kind, o.data));
    }
    for b in &sack_blocks(t.options()) {
        touch((b.offset, b.left < b.right, b.right - b.left));
    }
}

fn udp_all<T: AsRef<[u8]>>(u: &UdpPacket<T>) {
    touch((
        u.src_port(),
        u.dst_port(),
        u.len(),
        u.is_empty(),
        u.checksum(),
    ));
    touch((u.payload(), u.verify_checksum(SRC, DST)));
}

fn icmp_all<T: AsRef<[u8]>>(p: &Icmpv4Packet<T>) {
    touch((
        p.msg_type(),
        p.code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq(),
    ));
    touch((
        p.rest_of_header(),
        p.is_error(),
        p.data(),
        p.verify_checksum(),
    ));
}

// Setters, on views of a private copy. They must not panic either, checked or not.

fn eth_set(buf: &mut [u8]) {
    let mut f = EthernetFrame::new_unchecked(buf);
    f.set_dst_addr(MacAddr::BROADCAST);
    f.set_src_addr(MacAddr([2, 0, 0, 0, 0, 1]));
    f.set_ethertype(ethertype::IPV4);
    f.set_vlan_tci(7);
    touch(f.payload_mut().len());
}

fn arp_set(buf: &mut [u8]) {
    let mut p = ArpPacket::new_unchecked(buf);
    p.set_operation(arp::arp_op::REPLY);
    p.set_sender_hw_addr(MacAddr([2, 0, 0, 0, 0, 1]));
    p.set_sender_ip(SRC);
    p.set_target_hw_addr(MacAddr::ZERO);
    p.set_target_ip(DST);
}

fn ipv4_set(buf: &mut [u8]) {
    let mut p = Ipv4Packet::new_unchecked(buf);
    p.set_dst_addr(DST);
    p.set_src_addr(SRC);
    p.set_ttl(p.ttl().wrapping_sub(1));
    p.set_ident(p.ident() ^ 1);
    p.set_protocol(p.protocol());
    p.set_dscp_ecn(0);
    p.set_dont_frag(true);
    p.set_more_frags(false);
    p.set_frag_offset(8);
    p.fill_checksum();
    touch(p.verify_checksum());
    touch((p.options_mut().len(), p.payload_mut().len()));
    p.set_total_len(p.total_len().wrapping_add(3));
    touch(p.payload_mut().len());
    p.set_checksum(0);
}

fn tcp_set(buf: &mut [u8]) {
    let mut t = TcpPacket::new_unchecked(buf);
    t.set_src_port(1);
    t.set_dst_port(2);
    t.set_seq_number(t.seq_number() + 1000);
    t.set_ack_number(t.ack_number() - 1000);
    t.set_flags(TcpFlags::ACK | TcpFlags::PSH);
    t.set_window(100);
    t.set_urgent(0);
    let blocks = sack_blocks(t.options());
    for b in &blocks {
        let at = b.offset;
        if let Some(edge) = t.options_mut().get_mut(at..at + 4) {
            edge.copy_from_slice(&(b.left + 1).0.to_be_bytes());
        }
    }
    touch((t.options_mut().len(), t.payload_mut().len()));
    t.fill_checksum(SRC, DST);
    touch(t.verify_checksum(SRC, DST));
    t.set_checksum(0);
}

fn udp_set(buf: &mut [u8]) {
    let mut u = UdpPacket::new_unchecked(buf);
    u.set_src_port(1);
    u.set_dst_port(2);
    u.fill_checksum(SRC, DST);
    touch(u.verify_checksum(SRC, DST));
    touch(u.payload_mut().len());
    u.set_len(u.len().wrapping_add(1));
    u.fill_checksum(SRC, DST);
    u.set_checksum(0);
}

fn icmp_set(buf: &mut [u8]) {
    let mut p = Icmpv4Packet::new_unchecked(buf);
    p.set_msg_type(icmp_type::ECHO_REPLY);
    p.set_code(0);
    p.set_echo_ident(1);
    p.set_echo_seq(2);
    p.set_rest_of_header(3);
    touch(p.data_mut().len());
    p.fill_checksum();
    touch(p.verify_checksum());
}

// ---------------------------------------------------------------------------------------------
// The walk: what the pipeline does, plus invariants of checked views.

fn walk_l4(proto: u8, seg: &[u8]) {
    match proto {
        ipproto::TCP => {
            if let Ok(t) = TcpPacket::new_checked(seg) {
                assert!(t.header_len() >= 20 && t.header_len() <= seg.len());
                assert_eq!(t.options().len(), t.header_len() - 20);
                assert_eq!(t.payload().len(), seg.len() - t.header_len());
                tcp_all(&t);
                tcp_set(&mut seg.to_vec());
            }
        }
        ipproto::UDP => {
            if let Ok(u) = UdpPacket::new_checked(seg) {
                assert!(usize::from(u.len()) >= 8 && usize::from(u.len()) <= seg.len());
                assert_eq!(u.payload().len(), usize::from(u.len()) - 8);
                udp_all(&u);
                udp_set(&mut seg.to_vec());
            }
        }
        ipproto::ICMP => {
            if let Ok(p) = Icmpv4Packet::new_checked(seg) {
                assert_eq!(p.data().len(), seg.len() - 8);
                icmp_all(&p);
                icmp_set(&mut seg.to_vec());
                if p.is_error() {
                    if let Ok(q) = Ipv4Packet::new_checked_quoted(p.data()) {
                        ipv4_all(&q);
                        // The quoted transport header: ports (and sequence number) only.
                        touch(q.payload().get(..8));
                    }
                }
            }
        }
        _ => {}
    }
}

fn walk_ipv4(data: &[u8]) {
    if let Ok(q) = Ipv4Packet::new_checked_quoted(data) {
        ipv4_all(&q);
        assert!(q.payload().len() <= data.len());
    }
    let Ok(ip) = Ipv4Packet::new_checked(data) else {
        return;
    };
    assert_eq!(ip.version(), 4);
    let (hl, tl) = (ip.header_len(), usize::from(ip.total_len()));
    assert!(hl >= ipv4::MIN_HEADER_LEN && hl <= tl && tl <= data.len());
    assert_eq!(ip.options().len(), hl - ipv4::MIN_HEADER_LEN);
    assert_eq!(ip.payload().len(), tl - hl);
    ipv4_all(&ip);
    ipv4_set(&mut data.to_vec());
    walk_l4(ip.protocol(), ip.payload());
}

fn walk_frame(frame: &[u8]) {
    if let Ok(f) = EthernetFrame::new_checked(frame) {
        assert!(f.header_len() <= frame.len());
        assert_eq!(f.payload().len(), frame.len() - f.header_len());
        eth_all(&f);
        eth_set(&mut frame.to_vec());
        match f.ethertype() {
            ethertype::ARP => {
                if let Ok(a) = ArpPacket::new_checked(f.payload()) {
                    arp_all(&a);
                    arp_set(&mut f.payload().to_vec());
                }
            }
            ethertype::IPV4 => walk_ipv4(f.payload()),
            _ => {}
        }
    }
}

/// Every view, checked and unchecked, at a few offsets: random bytes rarely carry the right
/// ethertype, so this is what makes them reach the inner parsers.
fn everything_everywhere(bytes: &[u8]) {
    walk_frame(bytes);
    walk_ipv4(bytes);
    if let Some(d) = bytes.get(14..) {
        walk_ipv4(d);
        if let Ok(a) = ArpPacket::new_checked(d) {
            arp_all(&a);
        }
    }
    for d in [Some(bytes), bytes.get(34..)].into_iter().flatten() {
        for proto in [ipproto::TCP, ipproto::UDP, ipproto::ICMP] {
            walk_l4(proto, d);
        }
    }
    eth_all(&EthernetFrame::new_unchecked(bytes));
    arp_all(&ArpPacket::new_unchecked(bytes));
    ipv4_all(&Ipv4Packet::new_unchecked(bytes));
    tcp_all(&TcpPacket::new_unchecked(bytes));
    udp_all(&UdpPacket::new_unchecked(bytes));
    icmp_all(&Icmpv4Packet::new_unchecked(bytes));
    let mut copy = bytes.to_vec();
    eth_set(&mut copy);
    arp_set(&mut copy);
    ipv4_set(&mut copy);
    tcp_set(&mut copy);
    udp_set(&mut copy);
    icmp_set(&mut copy);
    touch(checksum::checksum(bytes));
    let half = bytes.len() / 2;
    touch(checksum::update_bytes(
        0x1234,
        &bytes[..half],
        &bytes[half..],
    ));
}

// ---------------------------------------------------------------------------------------------
// A corpus of valid frames, built with the tiers' own builders (`tests/common/frames.rs`, not
// `rvs::wire`), checksums and all.

const MAC_A: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const MAC_B: Mac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// The 802.1Q tag of the tagged frames: VLAN 100.
const VLAN_TCI: u16 = 0x0064;

/// The IPv4 header of every IP frame in the corpus, with `options`.
fn ip_header(protocol: u8, options: &[u8]) -> Ipv4 {
    Ipv4 {
        src: SRC.octets(),
        dst: DST.octets(),
        proto: protocol,
        id: 0x1c46,
        options: options.to_vec(),
        ..Ipv4::default()
    }
}

/// `l4` (checksum filled) in an IPv4 datagram with `ip_options`, from `MAC_A` to `MAC_B`,
/// 802.1Q-tagged if `vlan`.
fn ip_frame(protocol: u8, l4: &[u8], ip_options: &[u8], vlan: bool) -> Vec<u8> {
    let f = ip_header(protocol, ip_options).frame(MAC_A, MAC_B, l4);
    if vlan {
        vlan_tagged(&f, VLAN_TCI)
    } else {
        f
    }
}

fn tcp_segment(options: &[u8], payload: &[u8], flags: TcpFlags) -> Vec<u8> {
    Tcp {
        src: SRC.octets(),
        dst: DST.octets(),
        sport: 40000,
        dport: 21,
        seq: 0xffff_fff0,
        ack: 0x10,
        flags: flags.0,
        window: 64240,
        options: options.to_vec(),
        payload: payload.to_vec(),
        ..Tcp::default()
    }
    .segment()
}

fn corpus() -> Vec<Vec<u8>> {
    let syn_opts = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0x11, 0xa0, 0xb1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    let mut sack_opts = vec![1, 1, 5, 26];
    for v in [0xffff_ff00u32, 0x100, 0x200, 0x300, 0x400, 0x500] {
        sack_opts.extend_from_slice(&v.to_be_bytes());
    }
    let udp = Udp {
        src: SRC.octets(),
        dst: DST.octets(),
        sport: 0xcf08,
        dport: 53,
        payload: b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00".to_vec(),
        ..Udp::default()
    }
    .segment();
    let ping = Icmp::echo_request(0x1234, 1, &(0u8..32).collect::<Vec<_>>()).message();
    let quoted = ip_frame(
        ipproto::TCP,
        &tcp_segment(&[], b"", TcpFlags::SYN),
        &[],
        false,
    );
    let unreachable = Icmp::unreachable(4, 0x0578, &quoted[14..14 + 28]).message();

    let mut arp_frame = Arp::request(MAC_A, SRC.octets(), DST.octets()).frame(MAC_A, BROADCAST);
    arp_frame.resize(60, 0);
    let vlan_arp = vlan_tagged(&arp_frame, 0x200a);

    let mut frames = vec![
        ip_frame(
            ipproto::TCP,
            &tcp_segment(&syn_opts, b"", TcpFlags::SYN),
            &[],
            false,
        ),
        ip_frame(
            ipproto::TCP,
            &tcp_segment(
                &sack_opts,
                b"227 Entering Passive Mode (10,0,0,100,4,1)\r\n",
                TcpFlags::ACK | TcpFlags::PSH,
            ),
            &[],
            false,
        ),
        ip_frame(
            ipproto::TCP,
            &tcp_segment(&[], b"x", TcpFlags::FIN),
            &[0x94, 4, 0, 0],
            true,
        ),
        ip_frame(ipproto::UDP, &udp, &[], false),
        ip_frame(ipproto::UDP, &udp, &[1, 1, 1, 0], true),
        ip_frame(ipproto::ICMP, &ping, &[], false),
        ip_frame(ipproto::ICMP, &unreachable, &[], false),
        ip_frame(ipproto::IPIP, &quoted[14..], &[], false),
        arp_frame,
        vlan_arp,
    ];
    // A short TCP frame padded to the Ethernet minimum.
    let mut padded = ip_frame(
        ipproto::TCP,
        &tcp_segment(&[], b"", TcpFlags::RST),
        &[],
        false,
    );
    padded.resize(60, 0);
    frames.push(padded);
    frames
}

#[test]
fn corpus_is_valid() {
    for f in corpus() {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        match eth.ethertype() {
            ethertype::ARP => {
                ArpPacket::new_checked(eth.payload()).unwrap();
            }
            ethertype::IPV4 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                assert!(ip.verify_checksum());
                let ok = match ip.protocol() {
                    ipproto::TCP => TcpPacket::new_checked(ip.payload())
                        .unwrap()
                        .verify_checksum(SRC, DST),
                    ipproto::UDP => UdpPacket::new_checked(ip.payload())
                        .unwrap()
                        .verify_checksum(SRC, DST),
                    ipproto::ICMP => Icmpv4Packet::new_checked(ip.payload())
                        .unwrap()
                        .verify_checksum(),
                    _ => true,
                };
                assert!(ok);
            }
            other => panic!("unexpected ethertype {other:#x}"),
        }
        everything_everywhere(&f);
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte (index taken modulo the length).
    Flip(prop::sample::Index, u8),
    /// Keep a prefix.
    Truncate(prop::sample::Index),
    /// Append bytes (padding, or a frame longer than its IP total length).
    Extend(Vec<u8>),
    /// Overwrite one of the length-bearing fields with an arbitrary value.
    LengthField(LengthField, u16),
}

#[derive(Debug, Clone, Copy)]
enum LengthField {
    Ethertype,
    Ihl,
    TotalLen,
    FragOffset,
    Protocol,
    TcpDataOffset,
    UdpLen,
    TcpOptionLen,
    ArpLens,
}

fn length_field() -> impl Strategy<Value = LengthField> {
    prop_oneof![
        Just(LengthField::Ethertype),
        Just(LengthField::Ihl),
        Just(LengthField::TotalLen),
        Just(LengthField::FragOffset),
        Just(LengthField::Protocol),
        Just(LengthField::TcpDataOffset),
        Just(LengthField::UdpLen),
        Just(LengthField::TcpOptionLen),
        Just(LengthField::ArpLens),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), 1u8..).prop_map(|(i, x)| Mutation::Flip(i, x)),
        2 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..24).prop_map(Mutation::Extend),
        3 => (length_field(), any::<u16>()).prop_map(|(f, v)| Mutation::LengthField(f, v)),
    ]
}

fn put(frame: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = frame.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    // Where the IP header starts, as the frame says right now.
    let ip = if frame.get(12..14) == Some(&[0x81, 0x00]) {
        18
    } else {
        14
    };
    let ihl = frame.get(ip).map_or(20, |b| usize::from(b & 0x0f) * 4);
    let l4 = ip + ihl;
    match m {
        Mutation::Flip(i, x) => {
            if !frame.is_empty() {
                let at = i.index(frame.len());
                frame[at] ^= x;
            }
        }
        Mutation::Truncate(i) => {
            let len = i.index(frame.len() + 1);
            frame.truncate(len);
        }
        Mutation::Extend(tail) => frame.extend_from_slice(tail),
        Mutation::LengthField(field, v) => {
            let [hi, lo] = v.to_be_bytes();
            match field {
                LengthField::Ethertype => put(frame, ip - 2, &[hi, lo]),
                LengthField::Ihl => put(frame, ip, &[(hi & 0xf0) | (lo & 0x0f)]),
                LengthField::TotalLen => put(frame, ip + 2, &[hi, lo]),
                LengthField::FragOffset => put(frame, ip + 6, &[hi, lo]),
                LengthField::Protocol => put(frame, ip + 9, &[lo]),
                LengthField::TcpDataOffset => put(frame, l4 + 12, &[lo]),
                LengthField::UdpLen => put(frame, l4 + 4, &[hi, lo]),
                // Somewhere in the TCP options: a kind byte followed by an odd length.
                LengthField::TcpOptionLen => {
                    let at = l4 + 20 + usize::from(hi % 40);
                    put(frame, at, &[5, lo]);
                }
                LengthField::ArpLens => put(frame, ip + 4, &[hi, lo]),
            }
        }
    }
}

fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    let corpus = corpus();
    (
        prop::sample::select(corpus),
        proptest::collection::vec(mutation(), 1..5),
    )
        .prop_map(|(mut frame, muts)| {
            for m in &muts {
                apply(&mut frame, m);
            }
            frame
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        everything_everywhere(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(frame in mutated_frame()) {
        everything_everywhere(&frame);
    }

    /// Random bytes behind a plausible Ethernet + IPv4 prefix, so the IP and transport parsers see
    /// mostly-garbage headers that still get past the first checks.
    #[test]
    fn garbage_behind_valid_prefix_never_panics(
        ihl in 0u8..16, total in any::<u16>(), proto in prop::sample::select(vec![1u8, 6, 17, 4]),
        vlan in any::<bool>(), rest in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let mut f = Ipv4 { id: 1, ..ip_header(proto, &[]) }.frame(MAC_A, MAC_B, &[]);
        if vlan {
            f = vlan_tagged(&f, VLAN_TCI);
        }
        let ip = f.len() - 20;
        f[ip] = 0x40 | ihl;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&rest);
        everything_everywhere(&f);
    }
}
