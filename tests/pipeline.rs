//! Pure pipeline tier: the worker's fast path driven with `Vec<u8>` frames and a recording I/O,
//! checked with an independent decoder (etherparse). No DPDK, no root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/frames.rs"]
mod frames;

use std::net::Ipv4Addr;
use std::path::Path;

use etherparse::{EtherType, LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use frames::{
    arp_frame, fix_ip_checksum, icmp, ip_frame, proto, tcp_flags, Arp, Icmp, Ip, Ipv4, Mac, Tcp,
    Udp, ACK,
};
use proptest::prelude::*;
use rvs::config::Config;
use rvs::stats::{Counter, DropReason, Layout, LbCounter};
use rvs::time::Instant;
use rvs::wire::MacAddr;
use rvs::worker::{Io, Pipeline};

const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const PEER_C: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0x10];
const PEER_S1: [u8; 6] = [0x02, 0x55, 0, 0, 0, 0x11];
const PEER_S2: [u8; 6] = [0x02, 0x55, 0, 0, 0, 0x12];
const VIP: [u8; 4] = [203, 0, 113, 100];
const CLIENT: [u8; 4] = [203, 0, 113, 10];
const S1: [u8; 4] = [198, 51, 100, 11];
const S2: [u8; 4] = [198, 51, 100, 12];

const CONFIG: &str = r#"
[[port]]
name = "client"
vdev = "net_null0"
address = "203.0.113.1/24"

[[port]]
name = "server"
vdev = "net_null1"
address = "198.51.100.1/24"

[arp]
retries = 3
retry_interval_ms = 1000
queue_per_neighbor = 4
queue_total = 8

[timeouts]
udp = 30

[[service]]
name = "web"
protocol = "tcp"
vip = "203.0.113.100"
port = 80
scheduler = "wrr"

[[service.server]]
address = "198.51.100.11"
port = 8080
weight = 3

[[service.server]]
address = "198.51.100.12"
port = 8080
weight = 1

[[service]]
name = "udp"
protocol = "udp"
vip = "203.0.113.100"
port = 9000
scheduler = "rr"

[[service.server]]
address = "198.51.100.11"

[[service.server]]
address = "198.51.100.12"
"#;

#[derive(Default)]
struct TestIo {
    sent: Vec<(u16, Vec<u8>)>,
    discarded: usize,
    no_buffers: bool,
    /// Frames handed to another worker: (worker, port, frame).
    handed: Vec<(u16, u16, Vec<u8>)>,
}
impl Io<Vec<u8>> for TestIo {
    fn alloc(&mut self) -> Option<Vec<u8>> {
        (!self.no_buffers).then(Vec::new)
    }
    fn send(&mut self, port: u16, buf: Vec<u8>) {
        self.sent.push((port, buf));
    }
    fn discard(&mut self, _buf: Vec<u8>) {
        self.discarded += 1;
    }
    fn handover(
        &mut self,
        to: u16,
        port: u16,
        buf: Vec<u8>,
        _arrived: (Instant, Instant),
    ) -> Result<(), Vec<u8>> {
        self.handed.push((to, port, buf));
        Ok(())
    }
}

fn config(text: &str) -> Config {
    Config::parse(text, Path::new("pipeline-test.toml")).unwrap()
}

fn pipeline_with(text: &str) -> Pipeline<Vec<u8>> {
    Pipeline::new(&config(text), &[CLIENT_MAC, SERVER_MAC], 0, Instant::ZERO)
}

/// Static neighbour entries for both servers and the client (no ARP needed).
const NEIGHBOURS: &str =
    "\n[[neighbor]]\nport = \"server\"\nip = \"198.51.100.11\"\nmac = \"02:55:00:00:00:11\"\n\
     [[neighbor]]\nport = \"server\"\nip = \"198.51.100.12\"\nmac = \"02:55:00:00:00:12\"\n\
     [[neighbor]]\nport = \"client\"\nip = \"203.0.113.10\"\nmac = \"02:cc:00:00:00:10\"\n";

/// A pipeline whose servers and client are already known neighbours.
fn pipeline() -> Pipeline<Vec<u8>> {
    pipeline_with(&format!("{CONFIG}{NEIGHBOURS}"))
}

/// A TCP segment as this tier sends it: sequence number 1000, acknowledging 2000 when `flags`
/// (letters, see [`tcp_flags`]) have ACK, and 7 bytes of payload.
fn segment(src: Ip, dst: Ip, sport: u16, dport: u16, flags: &str) -> Tcp {
    let flags = tcp_flags(flags);
    Tcp {
        src,
        dst,
        sport,
        dport,
        seq: 1000,
        ack: if flags & ACK != 0 { 2000 } else { 0 },
        flags,
        payload: b"payload".to_vec(),
        ..Tcp::default()
    }
}

/// [`segment`] in a frame.
fn tcp(
    src_mac: Mac,
    dst_mac: MacAddr,
    src: Ip,
    dst: Ip,
    sport: u16,
    dport: u16,
    flags: &str,
) -> Vec<u8> {
    segment(src, dst, sport, dport, flags).frame(src_mac, dst_mac.0)
}

/// A one-byte UDP datagram in a frame.
fn udp(src_mac: Mac, dst_mac: MacAddr, src: Ip, dst: Ip, sport: u16, dport: u16) -> Vec<u8> {
    let u = Udp {
        src,
        dst,
        sport,
        dport,
        payload: b"q".to_vec(),
        ..Udp::default()
    };
    u.frame(src_mac, dst_mac.0)
}

/// An ARP packet from `sha`/`spa` about `tpa` (target MAC zero), padded to 60 bytes.
fn arp(op: u16, sha: Mac, spa: Ip, tpa: Ip, eth_dst: Mac) -> Vec<u8> {
    let a = Arp {
        op,
        sha,
        spa,
        tha: [0; 6],
        tpa,
    };
    let mut f = a.frame(sha, eth_dst);
    f.resize(60, 0);
    f
}

/// The ARP packet in `f`, which must be an ARP frame.
fn arp_fields(f: &[u8]) -> Arp {
    arp_frame(f).expect("an ARP frame").arp
}

/// (src, dst, sport, dport, ttl) of a forwarded TCP/UDP frame, with every checksum verified by
/// etherparse (this tier's UDP always carries one); also returns the Ethernet addresses.
/// ((src, dst, sport, dport, ttl), (eth src, eth dst)).
type Decoded = ((Ipv4Addr, Ipv4Addr, u16, u16, u8), ([u8; 6], [u8; 6]));

fn decode(frame: &[u8]) -> Decoded {
    let d = ip_frame(frame);
    assert!(matches!(d.proto, proto::TCP | proto::UDP), "no transport");
    assert!(d.proto != proto::UDP || d.l4_checksum != 0, "UDP checksum");
    (
        (d.src.into(), d.dst.into(), d.sport, d.dport, d.ttl),
        (d.eth_src, d.eth_dst),
    )
}

fn drops(p: &Pipeline<Vec<u8>>, r: DropReason) -> u64 {
    p.counters().get(Layout::drop(r))
}

fn counter(p: &Pipeline<Vec<u8>>, c: Counter) -> u64 {
    p.counters().get(Layout::counter(c))
}

#[test]
fn nat_both_directions_with_valid_checksums() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 40000, 80, "S"),
        t,
        &mut io,
    );
    assert_eq!(io.sent.len(), 1);
    let (port, f) = io.sent.pop().unwrap();
    assert_eq!(port, 1);
    let ((src, dst, sp, dp, ttl), (esrc, edst)) = decode(&f);
    assert_eq!(
        (src, sp, dp, ttl),
        (Ipv4Addr::from(CLIENT), 40000, 8080, 63)
    );
    assert!(dst == Ipv4Addr::from(S1) || dst == Ipv4Addr::from(S2));
    assert_eq!(esrc, SERVER_MAC.0);
    assert_eq!(
        edst,
        if dst == Ipv4Addr::from(S1) {
            PEER_S1
        } else {
            PEER_S2
        }
    );

    let server = dst.octets();
    let smac = if server == S1 { PEER_S1 } else { PEER_S2 };
    p.process(
        1,
        tcp(smac, SERVER_MAC, server, CLIENT, 8080, 40000, "SA"),
        t,
        &mut io,
    );
    let (port, f) = io.sent.pop().unwrap();
    assert_eq!(port, 0);
    let ((src, dst, sp, dp, _), (esrc, edst)) = decode(&f);
    assert_eq!(
        (src, dst, sp, dp),
        (Ipv4Addr::from(VIP), Ipv4Addr::from(CLIENT), 80, 40000)
    );
    assert_eq!((esrc, edst), (CLIENT_MAC.0, PEER_C));

    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 40000, 80, "A"),
        t,
        &mut io,
    );
    assert_eq!(io.sent.len(), 1, "established flow forwards the ACK");
    assert_eq!(counter(&p, Counter::FlowsCreated), 1);
    assert_eq!(counter(&p, Counter::PacketsIn), 2);
    assert_eq!(counter(&p, Counter::PacketsOut), 1);
    let l = p.layout();
    assert_eq!(p.counters().get(l.service(0, LbCounter::Connections)), 1);
    assert_eq!(rvs::stats::total_drops(p.counters()), 0);
}

#[test]
fn wrr_weights_hold_and_udp_round_robins() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    for i in 0..400u16 {
        p.process(
            0,
            tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 10000 + i, 80, "S"),
            t,
            &mut io,
        );
        p.process(
            0,
            udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 20000 + i, 9000),
            t,
            &mut io,
        );
    }
    let mut tcp_by = [0; 2];
    let mut udp_by = [0; 2];
    for (_, f) in &io.sent {
        let ((_, dst, _, dp, _), _) = decode(f);
        let i = usize::from(dst == Ipv4Addr::from(S2));
        if dp == 8080 {
            tcp_by[i] += 1;
        } else {
            assert_eq!(dp, 9000, "server port defaults to the service port");
            udp_by[i] += 1;
        }
    }
    assert_eq!(tcp_by, [300, 100]);
    assert_eq!(udp_by, [200, 200]);
    let l = p.layout();
    assert_eq!(p.counters().get(l.server(0, LbCounter::Connections)), 300);
    assert_eq!(p.counters().get(l.server(1, LbCounter::Connections)), 100);
}

#[test]
fn arp_for_vip_and_port_address_answered_others_ignored() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    let t = Instant::ZERO;
    for target in [VIP, [203, 0, 113, 1]] {
        p.process(0, arp(1, PEER_C, CLIENT, target, [0xff; 6]), t, &mut io);
        let (port, f) = io.sent.pop().unwrap();
        assert_eq!(port, 0);
        let s = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(LinkSlice::Ethernet2(eth)) = s.link else {
            panic!()
        };
        assert_eq!(
            (eth.source(), eth.destination(), eth.ether_type()),
            (CLIENT_MAC.0, PEER_C, EtherType::ARP)
        );
        assert_eq!(
            arp_fields(&f),
            Arp {
                op: 2,
                sha: CLIENT_MAC.0,
                spa: target,
                tha: PEER_C,
                tpa: CLIENT
            }
        );
    }
    // The VIP is not on the server port's subnet: no answer there; nor for an unknown address.
    p.process(1, arp(1, PEER_S1, S1, VIP, [0xff; 6]), t, &mut io);
    p.process(
        0,
        arp(1, PEER_C, CLIENT, [203, 0, 113, 77], [0xff; 6]),
        t,
        &mut io,
    );
    assert!(io.sent.is_empty());
    assert_eq!(drops(&p, DropReason::ArpIgnored), 2);
    assert_eq!(counter(&p, Counter::ArpRepliesSent), 2);
}

#[test]
fn unresolved_server_queues_then_flushes_on_reply() {
    let mut p = pipeline_with(CONFIG);
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    p.process(
        0,
        udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 9000),
        t,
        &mut io,
    );
    p.process(
        0,
        udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 9000),
        t,
        &mut io,
    );
    // One ARP request for the server on port 1, the two datagrams held.
    assert_eq!(io.sent.len(), 1);
    let (port, req) = io.sent.pop().unwrap();
    assert_eq!(port, 1);
    let a = arp_fields(&req);
    assert_eq!((a.op, a.sha, a.spa), (1, SERVER_MAC.0, [198, 51, 100, 1]));
    assert_eq!(&req[0..6], &[0xff; 6], "broadcast");
    let target = a.tpa;
    let smac = if target == S1 { PEER_S1 } else { PEER_S2 };
    p.process(
        1,
        arp(2, smac, target, [198, 51, 100, 1], SERVER_MAC.0),
        t,
        &mut io,
    );
    assert_eq!(
        io.sent.len(),
        2,
        "both held datagrams go out once the server answers"
    );
    for (port, f) in &io.sent {
        assert_eq!(*port, 1);
        let ((_, dst, _, _, _), (_, edst)) = decode(f);
        assert_eq!((dst.octets(), edst), (target, smac));
    }
    assert_eq!(counter(&p, Counter::NeighResolved), 1);
}

#[test]
fn arp_retries_then_drops_held_packets() {
    let mut p = pipeline_with(CONFIG);
    let mut io = TestIo::default();
    for i in 0..6u16 {
        p.process(
            0,
            udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000 + 2 * i, 9000),
            Instant::ZERO,
            &mut io,
        );
    }
    // rr alternates servers: 3 datagrams each, queue_per_neighbor = 4 holds them all.
    assert_eq!(counter(&p, Counter::ArpRequestsSent), 2);
    for s in 1..=4 {
        p.poll(Instant::from_millis(s * 1000 + 1), &mut io);
    }
    assert_eq!(
        counter(&p, Counter::ArpRequestsSent),
        6,
        "3 tries for each of 2 servers"
    );
    assert_eq!(drops(&p, DropReason::NeighUnresolved), 6);
}

#[test]
fn neighbour_queue_is_bounded() {
    let mut p = pipeline_with(CONFIG);
    let mut io = TestIo::default();
    for i in 0..20u16 {
        // Same client port: one flow, one server, one neighbour queue of 4.
        let _ = i;
        p.process(
            0,
            udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 9000),
            Instant::ZERO,
            &mut io,
        );
    }
    assert_eq!(drops(&p, DropReason::NeighQueueFull), 16);
}

#[test]
fn flows_expire_and_port_reuse_reschedules() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    p.process(
        0,
        udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 7000, 9000),
        t,
        &mut io,
    );
    assert_eq!(p.flows().len(), 1);
    p.poll(Instant::from_secs(20), &mut io);
    assert_eq!(p.flows().len(), 1, "UDP timeout is 30 s");
    p.poll(Instant::from_secs(33), &mut io);
    assert_eq!(p.flows().len(), 0);
    assert_eq!(counter(&p, Counter::FlowsExpired), 1);

    // TCP: handshake, then RST closes; a new SYN on the same 4-tuple is a new connection.
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 7001, 80, "S"),
        t,
        &mut io,
    );
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 7001, 80, "A"),
        t,
        &mut io,
    );
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 7001, 80, "R"),
        t,
        &mut io,
    );
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 7001, 80, "S"),
        t,
        &mut io,
    );
    let l = p.layout();
    assert_eq!(p.counters().get(l.service(0, LbCounter::Connections)), 2);
    assert_eq!(p.flows().len(), 1);
    // A non-SYN to the VIP with no flow is refused.
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 7002, 80, "A"),
        t,
        &mut io,
    );
    assert_eq!(drops(&p, DropReason::NotSyn), 1);
}

#[test]
fn echo_to_vip_is_answered() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    let ping = Icmp {
        src: CLIENT,
        dst: VIP,
        ..Icmp::echo_request(7, 1, b"ping!")
    };
    p.process(0, ping.frame(PEER_C, CLIENT_MAC.0), Instant::ZERO, &mut io);
    let (port, r) = io.sent.pop().unwrap();
    assert_eq!(port, 0);
    let s = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source(), ip.header().destination()),
        (VIP, CLIENT)
    );
    let Some(TransportSlice::Icmpv4(icmp)) = s.transport else {
        panic!("not icmp")
    };
    assert!(
        matches!(icmp.icmp_type(), etherparse::Icmpv4Type::EchoReply(e) if e.id == 7 && e.seq == 1)
    );
    let want = icmp.icmp_type().calc_checksum(icmp.payload());
    assert_eq!(icmp.checksum(), want);
    assert_eq!(counter(&p, Counter::IcmpEchoReplies), 1);
}

#[test]
fn gratuitous_arp_for_every_owned_address() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    p.start(&mut io);
    let mut seen: Vec<(u16, [u8; 4])> = io
        .sent
        .iter()
        .map(|(port, f)| {
            let a = arp_fields(f);
            assert_eq!(a.spa, a.tpa, "gratuitous");
            (*port, a.spa)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![(0, [203, 0, 113, 1]), (0, VIP), (1, [198, 51, 100, 1])]
    );
    let mut dry = TestIo {
        no_buffers: true,
        ..TestIo::default()
    };
    p.start(&mut dry);
    assert_eq!(drops(&p, DropReason::NoBuffer), 3);
}

#[test]
fn every_frame_is_accounted_for() {
    // rx = forwarded + answered + held + dropped, for a mixed bag of good and bad frames.
    let mut p = pipeline();
    let mut io = TestIo::default();
    let good = tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 1234, 80, "S");
    let mut frames = vec![
        good.clone(),
        arp(1, PEER_C, CLIENT, VIP, [0xff; 6]),
        vec![0u8; 10],
    ];
    let mut bad_ck = good.clone();
    bad_ck[24] ^= 0xff; // IP checksum
    frames.push(bad_ck);
    let mut frag = good.clone();
    frag[20] |= 0x20; // MF
    fix_ip_checksum(&mut frag[14..]);
    frames.push(frag);
    let mut other = good.clone();
    other[0..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    frames.push(other);
    let n = frames.len() as u64;
    for f in frames {
        p.process(0, f, Instant::ZERO, &mut io);
    }
    assert_eq!(counter(&p, Counter::RxPackets), n);
    assert_eq!(
        io.sent.len() as u64 + rvs::stats::total_drops(p.counters()),
        n
    );
    assert_eq!(io.discarded as u64, rvs::stats::total_drops(p.counters()));
    for r in [
        DropReason::Truncated,
        DropReason::BadIpChecksum,
        DropReason::Fragment,
        DropReason::OtherMac,
    ] {
        assert_eq!(drops(&p, r), 1, "{}", r.name());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Arbitrary and mutated frames never panic the pipeline, and every frame is accounted for.
    #[test]
    fn arbitrary_frames_never_panic(
        base in 0usize..4,
        flips in proptest::collection::vec((0usize..100, any::<u8>()), 0..6),
        cut in 0usize..120,
        random in proptest::collection::vec(any::<u8>(), 0..120),
        use_random in any::<bool>(),
    ) {
        let mut p = pipeline();
        let mut io = TestIo::default();
        let mut f = if use_random {
            let mut r = random.clone();
            if r.len() >= 14 { r[0..6].copy_from_slice(&CLIENT_MAC.0); r[12] = 8; r[13] = 0; }
            r
        } else {
            match base {
                0 => tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 999, 80, "S"),
                1 => udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 999, 9000),
                2 => arp(1, PEER_C, CLIENT, VIP, [0xff; 6]),
                _ => tcp(PEER_S1, SERVER_MAC, S1, CLIENT, 8080, 999, "SA"),
            }
        };
        for (i, v) in flips { if let Some(b) = f.get_mut(i) { *b = v; } }
        if cut < f.len() { f.truncate(cut); }
        let port = u16::from(base == 3);
        p.process(port, f, Instant::ZERO, &mut io);
        p.poll(Instant::from_secs(1), &mut io);
        let drops = rvs::stats::total_drops(p.counters());
        prop_assert_eq!(counter(&p, Counter::RxPackets), 1);
        prop_assert!(io.sent.len() as u64 + drops <= 2); // a frame may add one ARP request
    }
}

#[test]
fn ipv4_options_are_forwarded_untouched() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    // A SYN with a 4-byte IPv4 option (NOP NOP NOP EOL): IHL 6.
    let syn = segment(CLIENT, VIP, 41000, 80, "S");
    let ip = Ipv4 {
        options: vec![1, 1, 1, 0],
        ..syn.ip()
    };
    let f = ip.frame(PEER_C, CLIENT_MAC.0, &syn.segment());
    p.process(0, f, Instant::ZERO, &mut io);
    let (_, out) = io.sent.pop().expect("forwarded");
    assert_eq!(out[14], 0x46, "IHL kept");
    assert_eq!(&out[34..38], &[1, 1, 1, 0], "options kept");
    let ((_, _, _, dp, _), _) = decode(&out);
    assert_eq!(dp, 8080);
}

/// An FTP-cluster style service: control port plus a passive range, persistent per /24, rr.
const FTP_CONFIG: &str = r#"
[[port]]
name = "client"
vdev = "net_null0"
address = "203.0.113.1/24"

[[port]]
name = "server"
vdev = "net_null1"
address = "198.51.100.1/24"

[[neighbor]]
port = "server"
ip = "198.51.100.11"
mac = "02:55:00:00:00:11"

[[neighbor]]
port = "server"
ip = "198.51.100.12"
mac = "02:55:00:00:00:12"

[[service]]
name = "ftp"
protocol = "tcp"
vip = "203.0.113.100"
ports = ["21", "10000-10100"]
scheduler = "rr"
persistence_timeout = 300
persistence_netmask = 24

[[service.server]]
address = "198.51.100.11"

[[service.server]]
address = "198.51.100.12"
weight = WEIGHT2
"#;

fn ftp_pipeline(weight2: u32) -> Pipeline<Vec<u8>> {
    pipeline_with(&FTP_CONFIG.replace("WEIGHT2", &weight2.to_string()))
}

/// Destination (server address, port) of the single frame forwarded for `f`.
fn forward_one(p: &mut Pipeline<Vec<u8>>, f: Vec<u8>, t: Instant) -> (Ipv4Addr, u16) {
    let mut io = TestIo::default();
    p.process(0, f, t, &mut io);
    assert_eq!(io.sent.len(), 1, "forwarded: {:?}", p.counters());
    let ((_, dst, _, dp, _), _) = decode(&io.sent[0].1);
    (dst, dp)
}

#[test]
fn persistence_keeps_a_client_and_its_subnet_on_one_server_across_ports() {
    let mut p = ftp_pipeline(1);
    let t = Instant::from_secs(1);
    let other = [203, 0, 113, 77]; // same /24 as CLIENT
    let far = [192, 0, 2, 1]; // another /24
    let (s0, port) = forward_one(
        &mut p,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 21, "S"),
        t,
    );
    assert_eq!(
        port, 21,
        "a multi-port service keeps the client's destination port"
    );
    for (i, dport) in [10000u16, 10050, 10100, 21].iter().enumerate() {
        let (s, port) = forward_one(
            &mut p,
            tcp(
                PEER_C,
                CLIENT_MAC,
                CLIENT,
                VIP,
                5001 + i as u16,
                *dport,
                "S",
            ),
            t,
        );
        assert_eq!(
            (s, port),
            (s0, *dport),
            "same server on every port of the service"
        );
    }
    let (s, _) = forward_one(
        &mut p,
        tcp(PEER_C, CLIENT_MAC, other, VIP, 6000, 10001, "S"),
        t,
    );
    assert_eq!(s, s0, "the same /24 shares the template");
    // rr would alternate: a client outside the /24 gets the next server.
    let (s, _) = forward_one(&mut p, tcp(PEER_C, CLIENT_MAC, far, VIP, 6000, 21, "S"), t);
    assert_ne!(s, s0);
    // Ports outside the service are not part of it.
    let mut io = TestIo::default();
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 7000, 10101, "S"),
        t,
        &mut io,
    );
    assert_eq!(drops(&p, DropReason::NoService), 1);
}

#[test]
fn persistence_lapses_after_timeout_once_connections_end() {
    let mut p = ftp_pipeline(1);
    let t = Instant::from_secs(1);
    let (s0, _) = forward_one(
        &mut p,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 21, "S"),
        t,
    );
    // Close the connection (RST after the handshake) so the template controls nothing.
    let mut io = TestIo::default();
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 21, "A"),
        t,
        &mut io,
    );
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 21, "R"),
        t,
        &mut io,
    );
    // Within the timeout: still pinned, even though rr's turn moved on.
    let (s, _) = forward_one(
        &mut p,
        tcp(PEER_C, CLIENT_MAC, [192, 0, 2, 9], VIP, 1, 21, "S"),
        t,
    );
    assert_ne!(s, s0);
    let (s, _) = forward_one(
        &mut p,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5002, 21, "S"),
        Instant::from_secs(200),
    );
    assert_eq!(s, s0);
    // Let every flow and the template lapse (RST'd flows: 10 s; the SYN_RECV ones: 60 s;
    // template: 300 s after its last new connection at 200 s).
    for sec in (210..=520).step_by(10) {
        p.poll(Instant::from_secs(sec), &mut io);
    }
    assert_eq!(p.flows().len(), 0);
    assert_eq!(p.services().persistence_templates(), 0);
    // Now rr decides afresh: its next turn is the server other than the last one it chose.
    let (s, _) = forward_one(
        &mut p,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5003, 21, "S"),
        Instant::from_secs(600),
    );
    assert_eq!(
        s, s0,
        "rr's cursor was at s0's turn again after serving the far client"
    );
}

#[test]
fn weight_zero_server_is_never_scheduled_for_persistent_clients() {
    // Server 2 has weight 0: rr never picks it, so every client lands on server 1.
    let mut p = ftp_pipeline(0);
    let t = Instant::from_secs(1);
    for i in 0..10u8 {
        let (s, _) = forward_one(
            &mut p,
            tcp(PEER_C, CLIENT_MAC, [192, 0, 2, 10 + i], VIP, 1000, 21, "S"),
            t,
        );
        assert_eq!(s, Ipv4Addr::from(S1));
    }
}

#[test]
fn reload_drains_and_removal_expires_flows_when_asked() {
    use rvs::config::ServerChange;
    // Two services on the same servers: one lets flows of a removed server finish, one ends them.
    let text = FTP_CONFIG.replace("WEIGHT2", "1").replace("persistence_timeout = 300\n", "")
        + "\n[[service]]\nname = \"strict\"\nprotocol = \"udp\"\nvip = \"203.0.113.100\"\nport = 53\nscheduler = \"rr\"\nexpire_removed = true\n\n[[service.server]]\naddress = \"198.51.100.11\"\n\n[[service.server]]\naddress = \"198.51.100.12\"\n";
    let cfg = config(&text);
    let mut p: Pipeline<Vec<u8>> = Pipeline::new(&cfg, &[CLIENT_MAC, SERVER_MAC], 0, Instant::ZERO);
    let t = Instant::from_secs(1);
    // One TCP flow on the first service and one UDP flow on "strict", both to server .11.
    let (s, _) = forward_one(
        &mut p,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 21, "S"),
        t,
    );
    assert_eq!(s, Ipv4Addr::from(S1));
    let (s, _) = forward_one(&mut p, udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 53), t);
    assert_eq!(s, Ipv4Addr::from(S1));
    // Reload: .11 removed from both services (global server indices 0 and 2).
    p.apply_changes(&[
        ServerChange {
            service: 0,
            server: 0,
            weight: 0,
            removed: true,
        },
        ServerChange {
            service: 1,
            server: 2,
            weight: 0,
            removed: true,
        },
    ]);
    // The TCP flow carries on (its service lets flows finish) ...
    let (s, _) = forward_one(
        &mut p,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 21, "A"),
        t,
    );
    assert_eq!(s, Ipv4Addr::from(S1));
    // ... the UDP flow of "strict" ends at its next packet ...
    let mut io = TestIo::default();
    p.process(
        0,
        udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 5000, 53),
        t,
        &mut io,
    );
    assert!(io.sent.is_empty());
    assert_eq!(drops(&p, DropReason::ServerRemoved), 1);
    // ... and every new flow goes to the remaining server, on both services.
    for i in 0..6u16 {
        let (s, _) = forward_one(
            &mut p,
            tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 6000 + i, 21, "S"),
            t,
        );
        assert_eq!(s, Ipv4Addr::from(S2));
        let (s, _) = forward_one(
            &mut p,
            udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 6000 + i, 53),
            t,
        );
        assert_eq!(s, Ipv4Addr::from(S2));
    }
    // Re-adding it (weight back) makes it schedulable again.
    p.apply_changes(&[ServerChange {
        service: 1,
        server: 2,
        weight: 1,
        removed: false,
    }]);
    let picks: Vec<Ipv4Addr> = (0..4u16)
        .map(|i| {
            forward_one(
                &mut p,
                udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 7000 + i, 53),
                t,
            )
            .0
        })
        .collect();
    assert!(picks.contains(&Ipv4Addr::from(S1)) && picks.contains(&Ipv4Addr::from(S2)));
}

fn method_pipeline(method: &str, mtu: u16) -> Pipeline<Vec<u8>> {
    let text = format!(
        "{}\n[[neighbor]]\nport = \"server\"\nip = \"198.51.100.11\"\nmac = \"02:55:00:00:00:11\"\n\
         [[neighbor]]\nport = \"server\"\nip = \"198.51.100.12\"\nmac = \"02:55:00:00:00:12\"\n",
        CONFIG
            .replace("scheduler = \"wrr\"", &format!("scheduler = \"wrr\"\nforward = \"{method}\""))
            .replace("address = \"198.51.100.1/24\"", &format!("address = \"198.51.100.1/24\"\nmtu = {mtu}"))
    );
    pipeline_with(&text)
}

#[test]
fn dr_changes_only_the_mac_and_ttl() {
    let mut p = method_pipeline("dr", 1500);
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    let syn = tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 40000, 80, "S");
    p.process(0, syn.clone(), t, &mut io);
    let (port, f) = io.sent.pop().unwrap();
    assert_eq!(port, 1);
    let ((src, dst, sp, dp, ttl), (esrc, edst)) = decode(&f);
    assert_eq!(
        (src, dst, sp, dp, ttl),
        (Ipv4Addr::from(CLIENT), Ipv4Addr::from(VIP), 40000, 80, 63)
    );
    assert_eq!(esrc, SERVER_MAC.0);
    assert!(edst == PEER_S1 || edst == PEER_S2);
    assert_eq!(&f[34..], &syn[34..], "the TCP segment is untouched");
    // A server's reply through rvs is a misconfiguration: dropped and counted.
    p.process(
        1,
        tcp(PEER_S1, SERVER_MAC, S1, CLIENT, 8080, 40000, "SA"),
        t,
        &mut io,
    );
    assert!(io.sent.is_empty());
    assert_eq!(drops(&p, DropReason::UnexpectedReply), 1);
    // Input-only tracking still sees the handshake complete.
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 40000, 80, "A"),
        t,
        &mut io,
    );
    assert_eq!(io.sent.len(), 1);
}

#[test]
fn tun_encapsulates_and_answers_frag_needed_for_oversized_df_datagrams() {
    let mut p = method_pipeline("tun", 1500);
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    let syn = tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 40001, 80, "S");
    p.process(0, syn.clone(), t, &mut io);
    let (port, f) = io.sent.pop().unwrap();
    assert_eq!(port, 1);
    let outer = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &outer.net else {
        panic!("not ipv4")
    };
    let h = ip.header();
    assert_eq!(h.protocol(), etherparse::IpNumber::IPV4, "IP-in-IP");
    assert_eq!(h.source(), [198, 51, 100, 1]);
    assert!(h.destination() == S1 || h.destination() == S2);
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    let inner = &f[34..];
    let ((src, dst, _, dp, ttl), _) = decode(&[&f[..14], inner].concat());
    assert_eq!(
        (src, dst, dp, ttl),
        (Ipv4Addr::from(CLIENT), Ipv4Addr::from(VIP), 80, 63)
    );
    assert_eq!(&inner[20..], &syn[34..], "inner segment untouched");

    // 1481 bytes of datagram + 20 of tunnel > 1500: with DF, a frag-needed (MTU 1480) goes back.
    let big = Tcp {
        src: CLIENT,
        dst: VIP,
        df: true,
        sport: 40001,
        dport: 80,
        seq: 1001,
        ack: 1,
        flags: ACK,
        payload: vec![0u8; 1481 - 40],
        ..Tcp::default()
    };
    p.process(0, big.frame(PEER_C, CLIENT_MAC.0), t, &mut io);
    let (port, r) = io.sent.pop().expect("a frag-needed");
    assert_eq!(port, 0);
    let s = SlicedPacket::from_ethernet(&r).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source(), ip.header().destination()),
        (VIP, CLIENT)
    );
    let Some(TransportSlice::Icmpv4(icmp)) = s.transport else {
        panic!("not icmp")
    };
    assert!(matches!(
        icmp.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 }
        )
    ));
    assert_eq!(drops(&p, DropReason::TooBig), 1);
    assert_eq!(counter(&p, Counter::FragNeededSent), 1);
}

/// An ICMP destination-unreachable frame from `from` to `to` quoting `quoted` (an IPv4
/// datagram); `kind` is the code and the next-hop MTU (0 unless "fragmentation needed").
fn icmp_error(
    src_mac: Mac,
    dst_mac: MacAddr,
    from: Ip,
    to: Ip,
    kind: (u8, u16),
    quoted: &[u8],
) -> Vec<u8> {
    let e = Icmp {
        src: from,
        dst: to,
        ..Icmp::unreachable(kind.0, kind.1, quoted)
    };
    e.frame(src_mac, dst_mac.0)
}

#[test]
fn icmp_errors_about_nat_flows_are_translated_both_ways() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 40002, 80, "S"),
        t,
        &mut io,
    );
    let (_, to_server) = io.sent.pop().unwrap();
    let ((_, server, _, _, _), _) = decode(&to_server);
    let smac = if server == Ipv4Addr::from(S1) {
        PEER_S1
    } else {
        PEER_S2
    };
    p.process(
        1,
        tcp(smac, SERVER_MAC, server.octets(), CLIENT, 8080, 40002, "SA"),
        t,
        &mut io,
    );
    let (_, to_client) = io.sent.pop().unwrap();

    // (a) The client side says "fragmentation needed" about the reply rvs sent (VIP -> client).
    let kind = (icmp::FRAG_NEEDED, 1400);
    p.process(
        0,
        icmp_error(PEER_C, CLIENT_MAC, CLIENT, VIP, kind, &to_client[14..]),
        t,
        &mut io,
    );
    let (port, f) = io.sent.pop().expect("translated to the server");
    assert_eq!(port, 1);
    let s = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!()
    };
    assert_eq!(
        ip.header().destination(),
        server.octets(),
        "outer destination is the server"
    );
    assert_eq!(
        ip.header().to_header().calc_header_checksum(),
        ip.header().header_checksum()
    );
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!()
    };
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    let q = icmp.payload();
    assert_eq!(
        &q[12..16],
        &server.octets(),
        "quoted source is the server again"
    );
    assert_eq!(
        u16::from_be_bytes([q[20], q[21]]),
        8080,
        "quoted source port is the server's"
    );

    // (b) The server says "port unreachable" about the request rvs forwarded (client -> server).
    let kind = (icmp::PORT_UNREACHABLE, 0);
    p.process(
        1,
        icmp_error(
            smac,
            SERVER_MAC,
            server.octets(),
            CLIENT,
            kind,
            &to_server[14..],
        ),
        t,
        &mut io,
    );
    let (port, f) = io.sent.pop().expect("translated to the client");
    assert_eq!(port, 0);
    let s = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source(), ip.header().destination()),
        (VIP, CLIENT),
        "comes from the VIP"
    );
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!()
    };
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    let q = icmp.payload();
    assert_eq!(&q[16..20], &VIP, "quoted destination is the VIP");
    assert_eq!(u16::from_be_bytes([q[22], q[23]]), 80);
    assert_eq!(counter(&p, Counter::IcmpErrorsTranslated), 2);

    // An error quoting no tracked flow is dropped.
    let stranger = udp(PEER_C, CLIENT_MAC, CLIENT, [203, 0, 113, 99], 1, 2);
    let kind = (icmp::PORT_UNREACHABLE, 0);
    p.process(
        0,
        icmp_error(PEER_C, CLIENT_MAC, CLIENT, VIP, kind, &stranger[14..]),
        t,
        &mut io,
    );
    assert_eq!(drops(&p, DropReason::IcmpUnhandled), 1);
}

#[test]
fn full_nat_rewrites_both_ends_and_replies_find_their_owner() {
    let text = format!(
        "{}{NEIGHBOURS}[workers]\ncount = 2\n",
        CONFIG.replace(
            "scheduler = \"wrr\"",
            "scheduler = \"wrr\"\nforward = \"fnat\"\nlocal_addresses = [\"198.51.100.2\", \"198.51.100.3\"]"
        )
    );
    let cfg = config(&text);
    let sharding = rvs::flow::rss::Sharding::new(2, 32);
    let owner = sharding.owner(Ipv4Addr::from(CLIENT));
    let mut p: Pipeline<Vec<u8>> =
        Pipeline::new(&cfg, &[CLIENT_MAC, SERVER_MAC], owner, Instant::ZERO);
    let mut other: Pipeline<Vec<u8>> =
        Pipeline::new(&cfg, &[CLIENT_MAC, SERVER_MAC], 1 - owner, Instant::ZERO);
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    for cport in 40000..40050u16 {
        p.process(
            0,
            tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, cport, 80, "S"),
            t,
            &mut io,
        );
        let (port, f) = io.sent.pop().expect("forwarded");
        assert_eq!(port, 1);
        let ((src, dst, sp, dp, ttl), _) = decode(&f);
        assert!(
            src == Ipv4Addr::new(198, 51, 100, 2) || src == Ipv4Addr::new(198, 51, 100, 3),
            "{src}"
        );
        assert!(sp >= 1024);
        assert_eq!((dp, ttl), (8080, 63));
        // The reply goes to the local address; whichever worker receives it, the owner is the
        // one that made the flow.
        assert_eq!(sharding.owner_of_reply(dst, src, 8080, sp), owner);
        let smac = if dst == Ipv4Addr::from(S1) {
            PEER_S1
        } else {
            PEER_S2
        };
        let reply = tcp(smac, SERVER_MAC, dst.octets(), src.octets(), 8080, sp, "SA");
        other.process(1, reply.clone(), t, &mut io);
        let (to, port, handed) = io.handed.pop().expect("the other worker hands it over");
        assert_eq!((to, port), (owner, 1));
        p.process_handed_over(port, handed, (t, t), t, &mut io);
        let (port, f) = io.sent.pop().expect("un-NATed to the client");
        assert_eq!(port, 0);
        let ((src, dst, sp, dp, _), _) = decode(&f);
        assert_eq!(
            (src, dst, sp, dp),
            (Ipv4Addr::from(VIP), Ipv4Addr::from(CLIENT), 80, cport)
        );
    }
    // The local addresses answer ARP like our own.
    p.process(
        1,
        arp(1, PEER_S1, S1, [198, 51, 100, 2], [0xff; 6]),
        t,
        &mut io,
    );
    assert_eq!(arp_fields(&io.sent.pop().unwrap().1).spa, [198, 51, 100, 2]);
    assert_eq!(rvs::stats::total_drops(p.counters()), 0);
}

#[test]
fn dr_port_reuse_after_the_clients_fin_is_a_new_connection() {
    let mut p = method_pipeline("dr", 1500);
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    for f in ["S", "A", "FA", "A"] {
        p.process(
            0,
            tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 40100, 80, f),
            t,
            &mut io,
        );
    }
    // The server's FIN never passes rvs: the flow is in FIN_WAIT. The client reuses its port.
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 40100, 80, "S"),
        t,
        &mut io,
    );
    let l = p.layout();
    assert_eq!(p.counters().get(l.service(0, LbCounter::Connections)), 2);
    assert_eq!(p.flows().len(), 1);
}

#[test]
fn active_and_inactive_gauges_follow_the_connection() {
    let mut p = pipeline();
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    let l = p.layout();
    let gauges = |p: &mut Pipeline<Vec<u8>>| {
        p.refresh_gauges();
        let c = p.counters();
        (
            c.get(l.service(0, LbCounter::ActiveConns)),
            c.get(l.service(0, LbCounter::InactiveConns)),
        )
    };
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 43000, 80, "S"),
        t,
        &mut io,
    );
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 43000, 80, "A"),
        t,
        &mut io,
    );
    assert_eq!(gauges(&mut p), (1, 0), "established");
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 43000, 80, "R"),
        t,
        &mut io,
    );
    assert_eq!(gauges(&mut p), (0, 1), "closed but still tracked");
    p.poll(Instant::from_secs(30), &mut io);
    assert_eq!(gauges(&mut p), (0, 0), "expired");
    // Per server too: the one that had the connection shows the same history.
    let per_server: u64 = (0..2)
        .map(|k| p.counters().get(l.server(k, LbCounter::Connections)))
        .sum();
    assert_eq!(per_server, 1);
}

#[test]
fn dr_forwards_client_side_icmp_errors_to_the_server() {
    let mut p = method_pipeline("dr", 1500);
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 44000, 80, "S"),
        t,
        &mut io,
    );
    let (_, f) = io.sent.pop().unwrap();
    let (_, (_, server_mac)) = decode(&f);
    // The server's SYN-ACK went to the client directly (from the VIP); a router on the way says
    // "fragmentation needed" to the VIP. rvs must pass it to that server, untranslated.
    let synack = tcp(PEER_S1, SERVER_MAC, VIP, CLIENT, 80, 44000, "SA");
    let kind = (icmp::FRAG_NEEDED, 1400);
    let err = icmp_error(
        PEER_C,
        CLIENT_MAC,
        [203, 0, 113, 254],
        VIP,
        kind,
        &synack[14..],
    );
    p.process(0, err.clone(), t, &mut io);
    let (port, f) = io.sent.pop().expect("forwarded to the server");
    assert_eq!(port, 1);
    assert_eq!(&f[0..6], &server_mac, "to the flow's server, by MAC");
    assert_eq!(f[22], err[22] - 1, "TTL decremented");
    assert_eq!(&f[34..], &err[34..], "the ICMP message is untouched");
    assert_eq!(counter(&p, Counter::IcmpErrorsTranslated), 1);
}

#[test]
fn persistence_holds_across_workers() {
    // Two workers, persistence per /24: the owner of every client of 203.0.113.0/24 is the same
    // worker, so the other one hands their SYNs over and one template serves them all.
    let text = format!(
        "{}\n[workers]\ncount = 2\n",
        FTP_CONFIG.replace("WEIGHT2", "1")
    );
    let cfg = config(&text);
    let sharding = rvs::flow::rss::Sharding::new(2, 24);
    let owner = sharding.owner(Ipv4Addr::from(CLIENT));
    let mut workers: Vec<Pipeline<Vec<u8>>> = (0..2)
        .map(|w| Pipeline::new(&cfg, &[CLIENT_MAC, SERVER_MAC], w, Instant::ZERO))
        .collect();
    let t = Instant::from_secs(1);
    let mut io = TestIo::default();
    let mut servers = std::collections::HashSet::new();
    for (i, host) in [10u8, 20, 30, 40, 50, 60].iter().enumerate() {
        let client = [203, 0, 113, *host];
        assert_eq!(
            sharding.owner(Ipv4Addr::from(client)),
            owner,
            "one owner per /24"
        );
        // Alternate the worker that receives the SYN, as RSS would.
        let w = i % 2;
        workers[w].process(
            0,
            tcp(PEER_C, CLIENT_MAC, client, VIP, 5000, 21, "S"),
            t,
            &mut io,
        );
        if let Some((to, port, f)) = io.handed.pop() {
            assert_eq!(
                (usize::from(to), w),
                (usize::from(owner), 1 - usize::from(owner))
            );
            workers[usize::from(to)].process_handed_over(port, f, (t, t), t, &mut io);
        }
        let (_, f) = io.sent.pop().expect("forwarded by the owner");
        let ((_, dst, _, _, _), _) = decode(&f);
        servers.insert(dst);
    }
    assert_eq!(servers.len(), 1, "the whole /24 on one server: {servers:?}");
}

#[test]
fn icmp_errors_about_full_nat_flows_are_translated_both_ways() {
    let text = format!(
        "{}{NEIGHBOURS}",
        CONFIG.replace(
            "scheduler = \"wrr\"",
            "scheduler = \"wrr\"\nforward = \"fnat\"\nlocal_addresses = [\"198.51.100.2\"]"
        )
    );
    let mut p = pipeline_with(&text);
    let mut io = TestIo::default();
    let t = Instant::from_secs(1);
    p.process(
        0,
        tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 45000, 80, "S"),
        t,
        &mut io,
    );
    let (_, to_server) = io.sent.pop().unwrap();
    let ((laddr, server, lport, _, _), _) = decode(&to_server);
    let smac = if server == Ipv4Addr::from(S1) {
        PEER_S1
    } else {
        PEER_S2
    };
    p.process(
        1,
        tcp(
            smac,
            SERVER_MAC,
            server.octets(),
            laddr.octets(),
            8080,
            lport,
            "SA",
        ),
        t,
        &mut io,
    );
    let (_, to_client) = io.sent.pop().unwrap();

    // (a) From the client side about the reply: the server gets it from the local address,
    // quoting server:8080 -> laddr:lport, as it sent it.
    let kind = (icmp::FRAG_NEEDED, 1400);
    p.process(
        0,
        icmp_error(PEER_C, CLIENT_MAC, CLIENT, VIP, kind, &to_client[14..]),
        t,
        &mut io,
    );
    let (port, f) = io.sent.pop().expect("to the server");
    assert_eq!(port, 1);
    let s = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source(), ip.header().destination()),
        (laddr.octets(), server.octets())
    );
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!()
    };
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    let q = icmp.payload();
    let quoted = etherparse::Ipv4HeaderSlice::from_slice(q).unwrap();
    assert_eq!(
        (quoted.source(), quoted.destination()),
        (server.octets(), laddr.octets())
    );
    assert_eq!(
        quoted.to_header().calc_header_checksum(),
        quoted.header_checksum()
    );
    assert_eq!(
        (
            u16::from_be_bytes([q[20], q[21]]),
            u16::from_be_bytes([q[22], q[23]])
        ),
        (8080, lport)
    );

    // (b) From the server about the request: the client gets it from the VIP, quoting
    // client:45000 -> VIP:80, as it sent it.
    let kind = (icmp::PORT_UNREACHABLE, 0);
    p.process(
        1,
        icmp_error(
            smac,
            SERVER_MAC,
            server.octets(),
            laddr.octets(),
            kind,
            &to_server[14..],
        ),
        t,
        &mut io,
    );
    let (port, f) = io.sent.pop().expect("to the client");
    assert_eq!(port, 0);
    let s = SlicedPacket::from_ethernet(&f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source(), ip.header().destination()),
        (VIP, CLIENT)
    );
    let Some(TransportSlice::Icmpv4(icmp)) = &s.transport else {
        panic!()
    };
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    let q = icmp.payload();
    let quoted = etherparse::Ipv4HeaderSlice::from_slice(q).unwrap();
    assert_eq!((quoted.source(), quoted.destination()), (CLIENT, VIP));
    assert_eq!(
        (
            u16::from_be_bytes([q[20], q[21]]),
            u16::from_be_bytes([q[22], q[23]])
        ),
        (45000, 80)
    );
    assert_eq!(counter(&p, Counter::IcmpErrorsTranslated), 2);
}

/// `process_burst` (staged prefetches, then frame by frame) must do exactly what `process` does
/// frame by frame, whatever the burst holds: new and established flows, replies, ARP, garbage,
/// truncated and non-IPv4 frames, UDP. It must also leave the burst empty.
#[test]
fn a_burst_is_handled_exactly_as_its_frames_one_by_one() {
    let t = Instant::from_secs(1);
    let mut frames = vec![];
    for i in 0..40u16 {
        frames.push(tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 41000 + i, 80, "S"));
        frames.push(tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 41000 + i, 80, "A"));
        frames.push(udp(PEER_C, CLIENT_MAC, CLIENT, VIP, 42000 + i, 9000));
    }
    frames.push(arp(1, PEER_C, CLIENT, VIP, [0xff; 6]));
    frames.push(vec![0u8; 3]);
    frames.push(vec![0xffu8; 60]);
    let mut short = tcp(PEER_C, CLIENT_MAC, CLIENT, VIP, 43000, 80, "S");
    short.truncate(40);
    frames.push(short);

    let (mut one, mut io_one) = (pipeline(), TestIo::default());
    for f in frames.iter().cloned() {
        one.process(0, f, t, &mut io_one);
    }
    let (mut burst, mut io_burst) = (pipeline(), TestIo::default());
    // Bursts shorter than the prefetch stages' distances, as long as a whole burst, and longer.
    let (mut rest, mut sizes) = (&frames[..], [1usize, 3, 5, 7, 32, 64, 2].iter().cycle());
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(32).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        let mut bufs = chunk.to_vec();
        burst.process_burst(0, &mut bufs, t, &mut io_burst);
        assert!(bufs.is_empty());
        rest = tail;
    }
    assert!(io_one.sent.len() > 100, "{} sent", io_one.sent.len());
    assert_eq!(io_burst.sent, io_one.sent);
    assert_eq!(io_burst.discarded, io_one.discarded);
    assert_eq!(burst.counters(), one.counters());
    assert_eq!(burst.flows().len(), one.flows().len());
}
