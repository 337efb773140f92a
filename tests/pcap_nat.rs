#![cfg(feature = "dpdk-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The pcap tier, one worker: the real `rvs` binary on two DPDK `net_pcap` vdevs
//! (`tests/common/pcap_run.rs`), fed from pcap files and judged by the pcap files it writes and
//! by its `--stats-file` counters. Run as root:
//! `cargo test --release --features dpdk-tests,lab-tests --test pcap_nat -- --test-threads=1`.
//!
//! One rvs run serves every test here (each run costs a couple of seconds of EAL start-up and
//! stats interval): the first test to ask builds the input pcaps, runs rvs until its
//! `rx_packets` counter equals the number of input frames, stops it with SIGTERM and keeps
//! what came out. Each `#[test]` then checks one behaviour of that run: TCP and UDP NAT both
//! ways (UDP with and without checksums), wrr's weights, malformed and unwanted frames dropped
//! by reason, ARP and ICMP echo answered, Ethernet padding trimmed, and the whole output and
//! counters exactly. `pcap_workers` runs two workers, `pcap_dr_tun` the other forwarding
//! methods and ICMP errors.
//!
//! Ordering between the two input files: the worker polls the client port, then the server
//! port, in every loop iteration, so a reply in the server file can only overtake the client
//! frame that opens its flow if that frame sits further back in the client file than the reply
//! does in the server file (in bursts). The flow-opening frames are among the first ten of the
//! client file and every reply follows 40 frames for another MAC in the server file, so each
//! reply is read at least one burst after its flow exists. If this ever broke, the reply would
//! be dropped as `no_service` and the exact drop and output checks would say so.

#[path = "common/frames.rs"]
mod frames;
#[path = "common/pcap.rs"]
mod pcap;
#[path = "common/pcap_run.rs"]
mod pcap_run;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use serde_json::Value;

use frames::{
    arp_frame, eth, ethertype, fix_ip_checksum, hex, ip_frame, ip_id, is_ipv4, l4_checksum, proto,
    vlan_tagged, Arp, ArpFrame, Icmp, Ip, IpFrame, Mac, Tcp, Udp, ACK, BROADCAST, SYN,
};
use pcap_run::{
    by_id, filler, label, nonzero_drops, service, sorted, Run, CLIENT, CLIENT_MAC,
    CLIENT_PORT_ADDR, CLIENT_PORT_MAC, SERVER_PORT_ADDR, SERVER_PORT_MAC, SRV11, SRV11_MAC, SRV12,
    SRV12_MAC, SRV13, SRV13_MAC, VIP,
};

// ---------------------------------------------------------------------------------------------
// The services and the frames' tags.

/// Services: `web` (wrr 3:1, the distribution case), `app` (one server: the TCP NAT both ways),
/// `dns` (UDP, one server), `trap` (only the TTL=1 SYN goes there: it must be refused before
/// any server is scheduled, so this service must end with no connection).
const SERVICES: &str = r#"
[[neighbor]]
port = "client"
ip = "203.0.113.2"
mac = "02:00:00:00:00:02"

[[neighbor]]
port = "server"
ip = "198.51.100.11"
mac = "02:00:00:00:01:11"

[[neighbor]]
port = "server"
ip = "198.51.100.12"
mac = "02:00:00:00:01:12"

[[neighbor]]
port = "server"
ip = "198.51.100.13"
mac = "02:00:00:00:01:13"

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
name = "app"
protocol = "tcp"
vip = "203.0.113.100"
port = 443

[[service.server]]
address = "198.51.100.13"
port = 8443

[[service]]
name = "dns"
protocol = "udp"
vip = "203.0.113.100"
port = 53
scheduler = "rr"

[[service.server]]
address = "198.51.100.13"
port = 5353

[[service]]
name = "trap"
protocol = "tcp"
vip = "203.0.113.100"
port = 7000

[[service.server]]
address = "198.51.100.13"
port = 7000
"#;

// IP identifications: every IPv4 frame we send is tagged, and NAT keeps the tag.
const ID_PING_VIP: u16 = 0x0101;
const ID_PING_PORT: u16 = 0x0102;
const ID_APP_SYN: u16 = 0x0201;
const ID_APP_SYNACK: u16 = 0x0202;
const ID_U1: u16 = 0x0301;
const ID_U2: u16 = 0x0302;
const ID_U3: u16 = 0x0303;
const ID_R1: u16 = 0x0311;
const ID_R2: u16 = 0x0312;
const ID_WEB: u16 = 0x1000;
const ID_BAD: u16 = 0x0400;
const ID_JUNK: u16 = 0x0500;

const WEB_SYNS: u16 = 40;
/// Which of the web SYNs arrives in a padded 60-byte frame.
const PADDED_WEB_SYN: u16 = 1;
const JUNK_FRAMES: u16 = 40;

const APP_CPORT: u16 = 30000;
const APP_ISN: u32 = 0x1234_5678;
const APP_SERVER_ISN: u32 = 0x9abc_def0;
const WEB_CPORT: u16 = 20000;
const U1_CPORT: u16 = 5001;
const U2_CPORT: u16 = 5002;
const U3_CPORT: u16 = 5003;

// ---------------------------------------------------------------------------------------------
// The scenario: what goes in, with a name for each malformed frame and its expected drop.

/// A TCP segment from the client, in a frame to the client port.
fn client_tcp(dport: u16, sport: u16, id: u16, ttl: u8, flags: u8) -> Vec<u8> {
    Tcp {
        src: CLIENT,
        dst: VIP,
        ttl,
        id,
        sport,
        dport,
        seq: 1000 + u32::from(sport),
        flags,
        ..Tcp::default()
    }
    .frame(CLIENT_MAC, CLIENT_PORT_MAC)
}

/// The client's ARP request for `target`.
fn client_arp_request(target: Ip) -> Vec<u8> {
    Arp::request(CLIENT_MAC, CLIENT, target).frame(CLIENT_MAC, BROADCAST)
}

fn echo_request(dst: Ip, id: u16) -> Vec<u8> {
    Icmp {
        src: CLIENT,
        dst,
        id,
        ..Icmp::echo_request(0x4242, 7, b"rvs pcap tier ping")
    }
    .frame(CLIENT_MAC, CLIENT_PORT_MAC)
}

/// A UDP payload whose checksum becomes zero once rvs has rewritten the destination to
/// `SRV13:5353`: RFC 768 then requires 0xffff on the wire, never 0.
fn payload_with_zero_checksum_after_dnat() -> Vec<u8> {
    (0..=u16::MAX)
        .map(|w| {
            let mut p = b"zero".to_vec();
            p.extend_from_slice(&w.to_be_bytes());
            p
        })
        .find(|p| {
            let s = Udp {
                src: CLIENT,
                dst: SRV13,
                sport: U3_CPORT,
                dport: 5353,
                payload: p.clone(),
                no_checksum: true,
                ..Udp::default()
            }
            .segment();
            l4_checksum(CLIENT, SRV13, proto::UDP, &s) == 0
        })
        .expect("some 16-bit word zeroes the checksum")
}

struct Scenario {
    client_in: Vec<Vec<u8>>,
    server_in: Vec<Vec<u8>>,
    /// (what, the frame as sent, the drop reason expected).
    bad: Vec<(&'static str, Vec<u8>, &'static str)>,
}

fn scenario() -> Scenario {
    let mut c = vec![
        client_arp_request(VIP),
        client_arp_request(CLIENT_PORT_ADDR),
        // For an address that is not ours: learnt from, not answered.
        client_arp_request([203, 0, 113, 50]),
        echo_request(VIP, ID_PING_VIP),
        echo_request(CLIENT_PORT_ADDR, ID_PING_PORT),
    ];
    // Every flow-opening frame comes early in the client file (see the module doc on ordering).
    let app_syn = Tcp {
        src: CLIENT,
        dst: VIP,
        id: ID_APP_SYN,
        sport: APP_CPORT,
        dport: 443,
        seq: APP_ISN,
        flags: SYN,
        ..Tcp::default()
    };
    c.push(app_syn.frame(CLIENT_MAC, CLIENT_PORT_MAC));
    for (id, cport, with_ck, payload) in [
        (ID_U1, U1_CPORT, true, b"query one".to_vec()),
        (ID_U2, U2_CPORT, false, b"query two, no checksum".to_vec()),
        (
            ID_U3,
            U3_CPORT,
            true,
            payload_with_zero_checksum_after_dnat(),
        ),
    ] {
        let u = Udp {
            src: CLIENT,
            dst: VIP,
            id,
            sport: cport,
            dport: 53,
            payload,
            no_checksum: !with_ck,
            ..Udp::default()
        };
        c.push(u.frame(CLIENT_MAC, CLIENT_PORT_MAC));
    }
    for i in 0..WEB_SYNS {
        let mut f = client_tcp(80, WEB_CPORT + i, ID_WEB + i, 64, SYN);
        if i == PADDED_WEB_SYN {
            // A minimum-size Ethernet frame: 54 bytes of headers and 6 bytes of padding, which
            // must not reach the server.
            assert_eq!(f.len(), 54);
            f.extend_from_slice(&[0xee; 6]);
        }
        c.push(f);
    }

    let mut bad = Vec::new();
    bad.push((
        "truncated Ethernet header",
        CLIENT_PORT_MAC
            .iter()
            .chain(&CLIENT_MAC[..4])
            .copied()
            .collect(),
        "truncated",
    ));
    let mut f = client_tcp(80, 40001, ID_BAD + 1, 64, SYN);
    f[14] = 0x44; // IHL 4: 16-byte header
    fix_ip_checksum(&mut f[14..]);
    bad.push(("IHL below 5", f, "bad_ip_header"));
    let mut f = client_tcp(80, 40002, ID_BAD + 2, 64, SYN);
    f[16..18].copy_from_slice(&60u16.to_be_bytes()); // 40 bytes present
    fix_ip_checksum(&mut f[14..]);
    // Counted as `truncated` (Ipv4Packet::new_checked's verdict), although DropReason's doc
    // lists "total length inconsistent with the frame" under `bad_ip_header`.
    bad.push(("IP total length beyond the frame", f, "truncated"));
    let mut f = client_tcp(80, 40003, ID_BAD + 3, 64, SYN);
    f[24] ^= 0x5a;
    bad.push(("bad IP header checksum", f, "bad_ip_checksum"));
    let mut f = client_tcp(80, 40004, ID_BAD + 4, 64, SYN);
    f[14 + 20 + 12] = 0x40; // data offset 4
    bad.push(("TCP data offset 4", f, "bad_l4_header"));
    let mut f = client_tcp(80, 40005, ID_BAD + 5, 64, SYN);
    f[14 + 6] = 0x20; // MF, offset 0: the first fragment, ports and all
    fix_ip_checksum(&mut f[14..]);
    bad.push(("first fragment (MF)", f, "fragment"));
    let tagged = vlan_tagged(&client_tcp(80, 40006, ID_BAD + 6, 64, SYN), 7);
    bad.push(("802.1Q-tagged SYN", tagged, "vlan"));
    bad.push((
        "ACK to the VIP without a flow",
        client_tcp(80, 40007, ID_BAD + 7, 64, ACK),
        "not_syn",
    ));
    bad.push((
        "SYN to a VIP port without a service",
        client_tcp(81, 40008, ID_BAD + 8, 64, SYN),
        "no_service",
    ));
    bad.push((
        "SYN with TTL 1",
        client_tcp(7000, 40009, ID_BAD + 9, 1, SYN),
        "ttl_exceeded",
    ));
    let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
    v6.extend_from_slice(&[0x20; 32]);
    bad.push((
        "IPv6",
        eth(CLIENT_MAC, CLIENT_PORT_MAC, ethertype::IPV6, &v6),
        "ethertype",
    ));
    c.extend(bad.iter().map(|(_, f, _)| f.clone()));

    // Server side: 40 frames for somebody else first, so every reply is read at least two
    // bursts after the client frame that opened its flow.
    let mut s: Vec<Vec<u8>> = (0..JUNK_FRAMES)
        .map(|i| filler(ID_JUNK + i, SRV13_MAC))
        .collect();
    s.push(Arp::request(SRV13_MAC, SRV13, SERVER_PORT_ADDR).frame(SRV13_MAC, BROADCAST));
    let synack = Tcp {
        src: SRV13,
        dst: CLIENT,
        id: ID_APP_SYNACK,
        sport: 8443,
        dport: APP_CPORT,
        seq: APP_SERVER_ISN,
        ack: APP_ISN + 1,
        flags: SYN | ACK,
        ..Tcp::default()
    };
    s.push(synack.frame(SRV13_MAC, SERVER_PORT_MAC));
    for (id, cport, with_ck, payload) in [
        (ID_R1, U1_CPORT, true, &b"answer one"[..]),
        (ID_R2, U2_CPORT, false, &b"answer two, no checksum"[..]),
    ] {
        let u = Udp {
            src: SRV13,
            dst: CLIENT,
            id,
            sport: 5353,
            dport: cport,
            payload: payload.to_vec(),
            no_checksum: !with_ck,
            ..Udp::default()
        };
        s.push(u.frame(SRV13_MAC, SERVER_PORT_MAC));
    }
    Scenario {
        client_in: c,
        server_in: s,
        bad,
    }
}

// ---------------------------------------------------------------------------------------------
// Running rvs.

/// One finished run: what rvs sent on each port, its final stats file and its stdout.
struct Outcome {
    scenario: Scenario,
    client_out: Vec<Vec<u8>>,
    server_out: Vec<Vec<u8>>,
    stats: Value,
    stdout: String,
}

fn outcome() -> &'static Outcome {
    static RUN: OnceLock<Result<Outcome, String>> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let sc = scenario();
        let mut out = Run::new("pcap-nat", "main").execute(
            std::slice::from_ref(&sc.client_in),
            std::slice::from_ref(&sc.server_in),
            "",
            SERVICES,
        )?;
        Ok(Outcome {
            client_out: out.client.remove(0),
            server_out: out.server.remove(0),
            stats: out.stats,
            stdout: out.stdout,
            scenario: sc,
        })
    });
    match run {
        Ok(o) => o,
        Err(e) => panic!("the rvs run failed: {e}"),
    }
}

/// The input frame tagged `id`.
fn input_frame(frames: &[Vec<u8>], id: u16) -> &[u8] {
    frames.iter().find(|f| ip_id(f) == Some(id)).unwrap()
}

// The cases.

/// Case 1: a client SYN to VIP:443 leaves the server port to the server, rewritten and
/// re-checksummed.
#[test]
fn tcp_syn_is_dnatted_to_the_server() {
    let o = outcome();
    let f = by_id(&o.server_out, ID_APP_SYN);
    let sent = ip_frame(input_frame(&o.scenario.client_in, ID_APP_SYN));
    assert_eq!(f.eth_src, SERVER_PORT_MAC, "from the server port");
    assert_eq!(f.eth_dst, SRV13_MAC, "to the static neighbour's MAC");
    assert_eq!((f.src, f.sport), (CLIENT, APP_CPORT), "source unchanged");
    assert_eq!((f.dst, f.dport), (SRV13, 8443), "destination = the server");
    assert_eq!(f.ttl, sent.ttl - 1, "TTL decremented");
    assert_eq!(
        (f.proto, f.syn, f.has_ack, f.seq),
        (proto::TCP, true, false, APP_ISN)
    );
    assert_eq!(f.len, sent.len);
    assert_ne!(f.l4_checksum, sent.l4_checksum, "the checksum was patched");

    let app = service(&o.stats, "app");
    assert_eq!(app["counters"]["conns"], 1);
    assert_eq!(app["counters"]["pkts_in"], 1);
    assert_eq!(app["counters"]["bytes_in"], f.len);
}

/// Case 2: the server's SYN-ACK leaves the client port from VIP:443.
#[test]
fn tcp_reply_is_snatted_to_the_vip() {
    let o = outcome();
    let f = by_id(&o.client_out, ID_APP_SYNACK);
    assert_eq!(f.eth_src, CLIENT_PORT_MAC);
    assert_eq!(f.eth_dst, CLIENT_MAC);
    assert_eq!((f.src, f.sport), (VIP, 443), "source = the VIP");
    assert_eq!(
        (f.dst, f.dport),
        (CLIENT, APP_CPORT),
        "destination unchanged"
    );
    assert_eq!(f.ttl, 63);
    assert!(f.syn && f.has_ack);
    assert_eq!((f.seq, f.ack), (APP_SERVER_ISN, APP_ISN + 1));

    let app = service(&o.stats, "app");
    assert_eq!(app["counters"]["pkts_out"], 1);
    assert_eq!(app["counters"]["bytes_out"], f.len);
    assert_eq!(
        o.stats["counters"]["nat_out_packets"], 3,
        "SYN-ACK and two UDP replies"
    );
}

/// Case 3: UDP both ways. A checksum is patched, a zero checksum stays zero, and a patched
/// checksum that comes out zero is sent as 0xffff.
#[test]
fn udp_nat_both_ways_with_and_without_checksum() {
    let o = outcome();
    for (id, cport, payload) in [
        (ID_U1, U1_CPORT, &b"query one"[..]),
        (ID_U2, U2_CPORT, &b"query two, no checksum"[..]),
    ] {
        let f = by_id(&o.server_out, id);
        assert_eq!((f.eth_src, f.eth_dst), (SERVER_PORT_MAC, SRV13_MAC));
        assert_eq!(
            (f.src, f.sport, f.dst, f.dport),
            (CLIENT, cport, SRV13, 5353)
        );
        assert_eq!((f.proto, f.ttl), (proto::UDP, 63));
        assert_eq!(f.payload, payload);
    }
    assert_ne!(by_id(&o.server_out, ID_U1).l4_checksum, 0);
    assert_eq!(
        by_id(&o.server_out, ID_U2).l4_checksum,
        0,
        "no checksum stays none"
    );

    let f = by_id(&o.server_out, ID_U3);
    assert_eq!((f.dst, f.dport), (SRV13, 5353));
    assert_eq!(
        f.l4_checksum, 0xffff,
        "a computed zero UDP checksum goes out as 0xffff (RFC 768)"
    );

    for (id, cport, payload, with_ck) in [
        (ID_R1, U1_CPORT, &b"answer one"[..], true),
        (ID_R2, U2_CPORT, &b"answer two, no checksum"[..], false),
    ] {
        let f = by_id(&o.client_out, id);
        assert_eq!((f.eth_src, f.eth_dst), (CLIENT_PORT_MAC, CLIENT_MAC));
        assert_eq!((f.src, f.sport, f.dst, f.dport), (VIP, 53, CLIENT, cport));
        assert_eq!(f.ttl, 63);
        assert_eq!(f.payload, payload);
        assert_eq!(f.l4_checksum != 0, with_ck, "reply {id:#06x} checksum");
    }

    let dns = service(&o.stats, "dns");
    assert_eq!(dns["counters"]["conns"], 3);
    assert_eq!(dns["counters"]["pkts_in"], 3);
    assert_eq!(dns["counters"]["pkts_out"], 2);
}

/// Case 4: wrr 3:1 over 40 new connections: exactly 30 and 10, interleaved as IPVS does
/// (A A A B per cycle), each to its own neighbour MAC, each SYN otherwise untouched.
#[test]
fn wrr_distributes_by_weight() {
    let o = outcome();
    let web: Vec<IpFrame> = o
        .server_out
        .iter()
        .filter(|f| is_ipv4(f))
        .map(|f| ip_frame(f))
        .filter(|f| (ID_WEB..ID_WEB + WEB_SYNS).contains(&f.id))
        .collect();
    assert_eq!(web.len(), usize::from(WEB_SYNS));
    let mut order = Vec::new();
    for (i, f) in web.iter().enumerate() {
        assert_eq!(f.id, ID_WEB + i as u16, "forwarded in arrival order");
        let mac = match f.dst {
            SRV11 => SRV11_MAC,
            SRV12 => SRV12_MAC,
            other => panic!("web SYN {i} went to {}", Ipv4Addr::from(other)),
        };
        assert_eq!((f.eth_src, f.eth_dst), (SERVER_PORT_MAC, mac));
        assert_eq!((f.src, f.sport), (CLIENT, WEB_CPORT + i as u16));
        assert_eq!(f.dport, 8080);
        assert_eq!(f.ttl, 63);
        assert!(f.syn && !f.has_ack);
        order.push(f.dst[3]);
    }
    let to11 = order.iter().filter(|d| **d == 11).count();
    assert_eq!((to11, order.len() - to11), (30, 10), "order: {order:?}");
    let ipvs: Vec<u8> = [11, 11, 11, 12].repeat(10);
    assert_eq!(order, ipvs, "IPVS wrr order");

    let svc = service(&o.stats, "web");
    assert_eq!(svc["counters"]["conns"], 40);
    assert_eq!(svc["counters"]["pkts_in"], 40);
    let servers = svc["servers"].as_array().unwrap();
    assert_eq!(servers[0]["address"], "198.51.100.11");
    assert_eq!(servers[0]["counters"]["conns"], 30);
    assert_eq!(servers[1]["counters"]["conns"], 10);
    assert_eq!(servers[0]["counters"]["pkts_in"], 30);
    assert_eq!(servers[1]["counters"]["pkts_in"], 10);
}

/// Case 5: malformed and unwanted frames are dropped, each counted under its reason; the drop
/// map matches exactly (every other reason is zero) and none of them is forwarded.
#[test]
fn malformed_frames_are_dropped_by_reason() {
    let o = outcome();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, reason) in &o.scenario.bad {
        *want.entry((*reason).to_string()).or_default() += 1;
    }
    *want.entry("other_mac".into()).or_default() += u64::from(JUNK_FRAMES);
    // The request for 203.0.113.50 is not ours to answer.
    *want.entry("arp_ignored".into()).or_default() += 1;

    let drops = o.stats["drops"].as_object().unwrap();
    for k in want.keys() {
        assert!(drops.contains_key(k), "rvs has no drop reason `{k}`");
    }
    let got = nonzero_drops(&o.stats);
    let cases: Vec<String> = o
        .scenario
        .bad
        .iter()
        .map(|(what, _, r)| format!("{what} -> {r}"))
        .collect();
    assert_eq!(got, want, "drops; frames sent:\n{}", cases.join("\n"));
    // The TTL=1 SYN is refused before scheduling: its service got no connection at all.
    assert_eq!(
        service(&o.stats, "trap")["counters"]["conns"],
        0,
        "a TTL=1 SYN left a flow"
    );

    for f in o.client_out.iter().chain(&o.server_out) {
        if let Some(id) = ip_id(f) {
            assert!(
                !(ID_BAD..ID_BAD + 0x100).contains(&id)
                    && !(ID_JUNK..ID_JUNK + 0x100).contains(&id),
                "a dropped frame came out: {}",
                hex(f)
            );
        }
    }
}

/// Case 6: a gratuitous ARP per owned address at start; ARP requests for the VIP and for a
/// port address are answered out of the port they came in on; ICMP echo to the VIP and to the
/// port address is answered.
#[test]
fn arp_and_icmp_echo_are_answered() {
    let o = outcome();
    let garp = |mac: Mac, ip: Ip| ArpFrame {
        eth_dst: BROADCAST,
        eth_src: mac,
        arp: Arp::gratuitous(mac, ip),
    };
    let reply = |mac: Mac, ip: Ip, to_mac: Mac, to_ip: Ip| ArpFrame {
        eth_dst: to_mac,
        eth_src: mac,
        arp: Arp::reply(mac, ip, to_mac, to_ip),
    };
    // The gratuitous ARPs are sent before anything is received: they lead each file.
    let c: Vec<ArpFrame> = o.client_out.iter().filter_map(|f| arp_frame(f)).collect();
    let s: Vec<ArpFrame> = o.server_out.iter().filter_map(|f| arp_frame(f)).collect();
    assert_eq!(
        c,
        vec![
            garp(CLIENT_PORT_MAC, CLIENT_PORT_ADDR),
            garp(CLIENT_PORT_MAC, VIP),
            reply(CLIENT_PORT_MAC, VIP, CLIENT_MAC, CLIENT),
            reply(CLIENT_PORT_MAC, CLIENT_PORT_ADDR, CLIENT_MAC, CLIENT),
        ]
    );
    assert_eq!(
        s,
        vec![
            garp(SERVER_PORT_MAC, SERVER_PORT_ADDR),
            reply(SERVER_PORT_MAC, SERVER_PORT_ADDR, SRV13_MAC, SRV13),
        ]
    );
    assert!(arp_frame(&o.client_out[0]).is_some() && arp_frame(&o.client_out[1]).is_some());
    assert!(arp_frame(&o.server_out[0]).is_some());
    assert_eq!(o.stats["counters"]["garp_sent"], 3);
    assert_eq!(o.stats["counters"]["arp_replies_sent"], 3);

    for (id, addr) in [(ID_PING_VIP, VIP), (ID_PING_PORT, CLIENT_PORT_ADDR)] {
        let req = ip_frame(input_frame(&o.scenario.client_in, id));
        let f = by_id(&o.client_out, id);
        assert_eq!((f.eth_src, f.eth_dst), (CLIENT_PORT_MAC, CLIENT_MAC));
        assert_eq!((f.src, f.dst), (addr, CLIENT));
        assert_eq!((f.proto, f.icmp_type, f.ttl), (proto::ICMP, 0, 64));
        assert_eq!(
            f.payload[4..],
            req.payload[4..],
            "identifier, sequence and data echoed"
        );
        assert_eq!(f.len, req.len);
    }
    assert_eq!(o.stats["counters"]["icmp_echo_replies"], 2);
}

/// Case 7: a 60-byte frame carrying a 40-byte SYN: the 6 padding bytes are not forwarded.
#[test]
fn ethernet_padding_is_trimmed() {
    let o = outcome();
    let id = ID_WEB + PADDED_WEB_SYN;
    assert_eq!(input_frame(&o.scenario.client_in, id).len(), 60);
    let f = by_id(&o.server_out, id);
    assert_eq!(f.total_len, 40);
    assert_eq!(f.len, 54, "forwarded frame is headers only");
    assert!(f.payload.is_empty());
}

/// Everything: each port sent exactly the frames expected, nothing more, and the counters agree.
#[test]
fn output_is_exactly_what_is_expected() {
    let o = outcome();
    let ip = |id: u16| format!("ip {id:#06x}");
    let arp = |op: u16, a: Ip| format!("arp {op} {}", Ipv4Addr::from(a));
    let client = vec![
        arp(1, CLIENT_PORT_ADDR),
        arp(1, VIP),
        arp(2, VIP),
        arp(2, CLIENT_PORT_ADDR),
        ip(ID_PING_VIP),
        ip(ID_PING_PORT),
        ip(ID_APP_SYNACK),
        ip(ID_R1),
        ip(ID_R2),
    ];
    let mut server = vec![
        arp(1, SERVER_PORT_ADDR),
        arp(2, SERVER_PORT_ADDR),
        ip(ID_APP_SYN),
        ip(ID_U1),
        ip(ID_U2),
        ip(ID_U3),
    ];
    server.extend((0..WEB_SYNS).map(|i| ip(ID_WEB + i)));
    let got_c: Vec<String> = o.client_out.iter().map(|f| label(f)).collect();
    let got_s: Vec<String> = o.server_out.iter().map(|f| label(f)).collect();
    assert_eq!(sorted(got_c), sorted(client.clone()), "client port output");
    assert_eq!(sorted(got_s), sorted(server.clone()), "server port output");

    let n = |k: &str| o.stats["counters"][k].as_u64().unwrap();
    let rx = o.scenario.client_in.len() + o.scenario.server_in.len();
    let tx = client.len() + server.len();
    assert_eq!(n("rx_packets") as usize, rx);
    let rx_bytes: usize = o
        .scenario
        .client_in
        .iter()
        .chain(&o.scenario.server_in)
        .map(Vec::len)
        .sum();
    assert_eq!(n("rx_bytes") as usize, rx_bytes);
    assert_eq!(n("tx_packets") as usize, tx);
    let tx_bytes: usize = o.client_out.iter().chain(&o.server_out).map(Vec::len).sum();
    assert_eq!(n("tx_bytes") as usize, tx_bytes);
    assert_eq!(n("nat_in_packets"), u64::from(WEB_SYNS) + 4);

    let port = |name: &str| pcap_run::port(&o.stats, name);
    assert_eq!(port("client")["ipackets"], o.scenario.client_in.len());
    assert_eq!(port("server")["ipackets"], o.scenario.server_in.len());
    assert_eq!(port("client")["opackets"], client.len());
    assert_eq!(port("server")["opackets"], server.len());
    assert!(o.stdout.contains("rvs: final counters"), "{}", o.stdout);
}

/// The tier's own pcap code: what it writes, it reads back.
#[test]
fn pcap_round_trip() {
    let frames = vec![vec![1u8, 2, 3], Vec::new(), vec![0xff; 1514]];
    assert_eq!(pcap::decode(&pcap::encode(&frames)).unwrap(), frames);
    let mut cut = pcap::encode(&frames);
    cut.truncate(cut.len() - 1);
    assert!(pcap::decode(&cut).is_err());
    assert!(pcap::decode(&[0; 24]).is_err());
}
