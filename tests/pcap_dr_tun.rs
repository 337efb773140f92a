#![cfg(feature = "dpdk-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The pcap tier, forwarding methods: the real `rvs` binary on two DPDK `net_pcap` vdevs
//! (`tests/common/pcap_run.rs`) with two workers (`[workers] count = 2`, as the tier's issue
//! requires of every forwarding method) and three services on the VIP, one per forwarding
//! method (`dr` on port 80, `tun` on 443, `nat` on 8000), the server port's MTU set to 1400 so
//! that the tunnel's 20 bytes make a "too big" datagram cheap. One rvs run serves every
//! `fwd_*` test: DR and TUN output, "fragmentation needed" for datagrams too big for the
//! tunnel, replies refused for DR/TUN flows (`unexpected_reply`), ICMP errors translated for a
//! NAT flow, and the whole output and counters exactly. Its output is also decoded by `tshark`
//! (Wireshark's dissectors, an independent decoder: `tests/common/tshark.rs`). Run as root:
//! `cargo test --release --features dpdk-tests,lab-tests --test pcap_dr_tun -- --test-threads=1`.
//!
//! Queues, as in `pcap_workers`: each port has two rx pcaps and two tx pcaps, worker w reads
//! rx queue w and sends on tx queue w. Every input frame is in the queue-0 files
//! ("client-in-0.pcap", "server-in-0.pcap"); the queue-1 rx files are empty. The NAT flow's
//! client (`CLIENT`) is owned by worker 0, so that flow and its ICMP errors stay on worker 0
//! exactly as in a one-worker run. The DR and TUN client (`FWD_W1_CLIENT`) is owned by worker 1:
//! worker 0 hands each of its frames (and the servers' refused replies to it) over, and worker 1
//! forwards them out of its own tx queues, so DR and TUN output is in "server-out-1.pcap" and
//! the "fragmentation needed" in "client-out-1.pcap".
//!
//! Ordering on worker 0, as in the single-worker run (`pcap_nat`): every flow-opening frame is
//! among the first eight of the client file, and every server-side frame follows `FWD_FILLERS`
//! (> one burst) frames for another MAC, so it is read at least one loop iteration after the
//! flows exist. The client-side ICMP error (case a) quotes the SYN-ACK as rvs sent it, so it
//! must come after that SYN-ACK: it sits behind `FWD_CLIENT_FILLERS` more frames for another
//! MAC at index >= 64, i.e. in the client port's third burst or later, while the SYN-ACK is in
//! the server port's second burst (indices 32..63) and the worker reads the client port before
//! the server port in each iteration. If bursts ever came back shorter, case (a) would still
//! find the flow (the SYN is earlier in the same file); only the realism of the order would
//! suffer.
//!
//! Ordering on worker 1: everything it sees comes through its handover inbox, a FIFO whose only
//! producer here is worker 0. Worker 0 hands the DR and TUN client frames over in the iteration
//! that reads its first client burst, and the refused replies in a later one (they follow the
//! fillers in the server file), so worker 1 has made both flows before it looks at any reply,
//! however the threads are scheduled. Were it otherwise, a reply would find no flow and be
//! dropped as `no_service`, not `unexpected_reply`, and the exact drop check would say so.

#[path = "common/frames.rs"]
mod frames;
#[path = "common/pcap.rs"]
mod pcap;
#[path = "common/pcap_run.rs"]
mod pcap_run;
#[path = "common/tshark.rs"]
mod tshark;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use serde_json::Value;

use frames::{
    eth, ethertype, fix_ip_checksum, hex, icmp, ip_frame, is_ipv4, proto, ttl_decremented, Icmp,
    Ip, Mac, Tcp, ACK, PSH, SYN,
};
use pcap_run::{
    filler, label, nonzero_drops, service, sorted, Run, CLIENT, CLIENT_MAC, CLIENT_PORT_ADDR,
    CLIENT_PORT_MAC, SERVER_PORT_ADDR, SERVER_PORT_MAC, SRV11, SRV11_MAC, SRV12, SRV12_MAC, SRV13,
    SRV13_MAC, VIP,
};
use tshark::{ip_str, tshark, Decoded};

const FWD_SERVER_MTU: u16 = 1400;
/// The tunnel MTU a "fragmentation needed" advertises: the link MTU minus the outer header.
const FWD_TUN_MTU: u16 = FWD_SERVER_MTU - 20;
const FWD_FILLERS: u16 = 40;
const FWD_CLIENT_FILLERS: u16 = 60;
/// A router on the client side: the source of the client-side ICMP error (case a).
const CLIENT_ROUTER: Ip = [203, 0, 113, 254];
const CLIENT_ROUTER_MAC: Mac = [0x02, 0, 0, 0, 0, 0xfe];
/// The client of the DR and TUN flows, owned by worker 1 (checked in `fwd_scenario`).
const FWD_W1_CLIENT: Ip = [203, 0, 113, 4];
const FWD_W1_CLIENT_MAC: Mac = [0x02, 0, 0, 0, 0, 0x04];
/// Frames worker 0 hands over to worker 1: the DR SYN and data segment, the five TUN datagrams
/// and the three refused DR/TUN replies (all to `FWD_W1_CLIENT`).
const FWD_HANDOVERS: u64 = 2 + 5 + 3;

const DR_VPORT: u16 = 80;
const TUN_VPORT: u16 = 443;
const NAT_VPORT: u16 = 8000;
const NAT_SPORT: u16 = 8080;
const DR_CPORT: u16 = 41000;
const TUN_CPORT: u16 = 42000;
const NAT_CPORT: u16 = 43000;
const FWD_ISN: u32 = 0x5000_0000;
const FWD_SERVER_ISN: u32 = 0x6000_0000;
/// TTLs the client sends with (distinct, so a copied or decremented TTL is recognisable).
const DR_TTL: u8 = 64;
const TUN_TTL: u8 = 50;

const ID_DR_SYN: u16 = 0x7001;
const ID_DR_DATA: u16 = 0x7002;
const ID_TUN_SYN: u16 = 0x7011;
const ID_TUN_NODF: u16 = 0x7012;
const ID_TUN_FIT: u16 = 0x7013;
const ID_TUN_BIG_DF: u16 = 0x7014;
const ID_TUN_BIG: u16 = 0x7015;
const ID_NAT_SYN: u16 = 0x7021;
const ID_NAT_SYNACK: u16 = 0x7022;
const ID_ICMP_A: u16 = 0x7031;
const ID_ICMP_B: u16 = 0x7032;
const ID_DR_REPLY: u16 = 0x7041;
const ID_TUN_REPLY: u16 = 0x7042;
const ID_DR_REPLY_FROM_VIP: u16 = 0x7043;
const ID_FWD_FILLER: u16 = 0x7100;

/// The next-hop MTU the client-side router reports in case (a).
const ICMP_A_MTU: u16 = 1280;

const FWD_SERVICES: &str = r#"
[workers]
count = 2

[[neighbor]]
port = "client"
ip = "203.0.113.2"
mac = "02:00:00:00:00:02"

[[neighbor]]
port = "client"
ip = "203.0.113.4"
mac = "02:00:00:00:00:04"

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
name = "dr"
protocol = "tcp"
vip = "203.0.113.100"
port = 80
forward = "dr"

[[service.server]]
address = "198.51.100.11"

[[service]]
name = "tun"
protocol = "tcp"
vip = "203.0.113.100"
port = 443
forward = "tun"

[[service.server]]
address = "198.51.100.12"

[[service]]
name = "nat"
protocol = "tcp"
vip = "203.0.113.100"
port = 8000
forward = "nat"

[[service.server]]
address = "198.51.100.13"
port = 8080
"#;

/// The client's datagrams of the forwarding-methods run, as IPv4 (the frames wrap them).
fn dr_syn() -> Vec<u8> {
    Tcp {
        src: FWD_W1_CLIENT,
        dst: VIP,
        ttl: DR_TTL,
        id: ID_DR_SYN,
        df: true,
        sport: DR_CPORT,
        dport: DR_VPORT,
        seq: FWD_ISN,
        flags: SYN,
        ..Tcp::default()
    }
    .datagram()
}

fn dr_data() -> Vec<u8> {
    // Without DF: DR copies nothing, so the flag must simply survive as it is.
    Tcp {
        src: FWD_W1_CLIENT,
        dst: VIP,
        ttl: 9,
        id: ID_DR_DATA,
        sport: DR_CPORT,
        dport: DR_VPORT,
        seq: FWD_ISN + 1,
        ack: FWD_SERVER_ISN + 1,
        flags: ACK | PSH,
        payload: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        ..Tcp::default()
    }
    .datagram()
}

/// A TUN segment of the established flow, `total` bytes of IPv4 in all.
fn tun_segment(id: u16, total: usize, df: bool) -> Vec<u8> {
    let d = Tcp {
        src: FWD_W1_CLIENT,
        dst: VIP,
        ttl: TUN_TTL,
        id,
        df,
        sport: TUN_CPORT,
        dport: TUN_VPORT,
        seq: FWD_ISN + 1 + u32::from(id),
        ack: FWD_SERVER_ISN + 1,
        flags: ACK,
        payload: (0..total - 40).map(|i| i as u8).collect(),
        ..Tcp::default()
    }
    .datagram();
    assert_eq!(d.len(), total);
    d
}

/// Every TUN datagram the client sends: (id, datagram). SYN (DF); a small segment without DF
/// (its outer header must not get DF); one of exactly MTU - 20 bytes (outer = MTU: fits); one
/// byte more with DF (frag-needed) and without (silently too big).
fn tun_datagrams() -> Vec<(u16, Vec<u8>)> {
    let syn = Tcp {
        src: FWD_W1_CLIENT,
        dst: VIP,
        ttl: TUN_TTL,
        id: ID_TUN_SYN,
        df: true,
        sport: TUN_CPORT,
        dport: TUN_VPORT,
        seq: FWD_ISN,
        flags: SYN,
        ..Tcp::default()
    };
    let mtu = usize::from(FWD_TUN_MTU);
    vec![
        (ID_TUN_SYN, syn.datagram()),
        (ID_TUN_NODF, tun_segment(ID_TUN_NODF, 100, false)),
        (ID_TUN_FIT, tun_segment(ID_TUN_FIT, mtu, true)),
        (ID_TUN_BIG_DF, tun_segment(ID_TUN_BIG_DF, mtu + 1, true)),
        (ID_TUN_BIG, tun_segment(ID_TUN_BIG, mtu + 1, false)),
    ]
}

/// The NAT SYN as the client sends it and as rvs must forward it (to the server, TTL - 1).
fn nat_syn(forwarded: bool) -> Vec<u8> {
    let (dst, dport, ttl) = if forwarded {
        (SRV13, NAT_SPORT, 63)
    } else {
        (VIP, NAT_VPORT, 64)
    };
    Tcp {
        src: CLIENT,
        dst,
        ttl,
        id: ID_NAT_SYN,
        sport: NAT_CPORT,
        dport,
        seq: FWD_ISN,
        flags: SYN,
        ..Tcp::default()
    }
    .datagram()
}

/// The NAT SYN-ACK as the server sends it and as rvs must send it on (from the VIP, TTL - 1).
fn nat_synack(forwarded: bool) -> Vec<u8> {
    let (src, sport, ttl) = if forwarded {
        (VIP, NAT_VPORT, 63)
    } else {
        (SRV13, NAT_SPORT, 64)
    };
    Tcp {
        src,
        dst: CLIENT,
        ttl,
        id: ID_NAT_SYNACK,
        sport,
        dport: NAT_CPORT,
        seq: FWD_SERVER_ISN,
        ack: FWD_ISN + 1,
        flags: SYN | ACK,
        ..Tcp::default()
    }
    .datagram()
}

/// Case (a): a router on the client side reports "fragmentation needed" about the SYN-ACK as
/// rvs sent it (VIP:8000 -> client), quoting all of it (header and 20 TCP bytes).
fn icmp_a() -> Vec<u8> {
    Icmp {
        src: CLIENT_ROUTER,
        dst: VIP,
        id: ID_ICMP_A,
        ..Icmp::unreachable(icmp::FRAG_NEEDED, ICMP_A_MTU, &nat_synack(true))
    }
    .datagram()
}

/// Case (b): the server reports "port unreachable" about the SYN as rvs forwarded it.
fn icmp_b() -> Vec<u8> {
    Icmp {
        src: SRV13,
        dst: CLIENT,
        id: ID_ICMP_B,
        ..Icmp::unreachable(icmp::PORT_UNREACHABLE, 0, &nat_syn(true))
    }
    .datagram()
}

/// Input frames of the forwarding-methods run: all of them on queue 0 of their port (the
/// queue-1 rx files are empty).
struct FwdScenario {
    client_in: Vec<Vec<u8>>,
    server_in: Vec<Vec<u8>>,
}

fn fwd_scenario() -> FwdScenario {
    let sharding = rvs::flow::rss::Sharding::new(2, 32);
    assert_eq!(
        sharding.owner(Ipv4Addr::from(FWD_W1_CLIENT)),
        1,
        "the DR and TUN client must be worker 1's (Toeplitz sharding changed?)"
    );
    assert_eq!(
        sharding.owner(Ipv4Addr::from(CLIENT)),
        0,
        "the NAT client must be worker 0's"
    );
    let from_client = |d: Vec<u8>| eth(CLIENT_MAC, CLIENT_PORT_MAC, ethertype::IPV4, &d);
    let from_w1_client = |d: Vec<u8>| eth(FWD_W1_CLIENT_MAC, CLIENT_PORT_MAC, ethertype::IPV4, &d);
    let mut c = vec![from_w1_client(dr_syn()), from_w1_client(dr_data())];
    c.extend(tun_datagrams().into_iter().map(|(_, d)| from_w1_client(d)));
    c.push(from_client(nat_syn(false)));
    assert_eq!(c.len(), 8, "every flow-opening frame in the first burst");
    for i in 0..FWD_CLIENT_FILLERS {
        c.push(filler(ID_FWD_FILLER + i, CLIENT_MAC));
    }
    assert!(c.len() >= 64, "case (a) after two client bursts");
    c.push(eth(
        CLIENT_ROUTER_MAC,
        CLIENT_PORT_MAC,
        ethertype::IPV4,
        &icmp_a(),
    ));

    let mut s: Vec<Vec<u8>> = (0..FWD_FILLERS)
        .map(|i| filler(ID_FWD_FILLER + 0x80 + i, SRV13_MAC))
        .collect();
    let from = |mac: Mac, d: Vec<u8>| eth(mac, SERVER_PORT_MAC, ethertype::IPV4, &d);
    s.push(from(SRV13_MAC, nat_synack(false)));
    // DR and TUN servers must answer clients directly: replies through rvs are refused.
    let reply = |src: Ip, sport: u16, cport: u16, id: u16| {
        Tcp {
            src,
            dst: FWD_W1_CLIENT,
            id,
            sport,
            dport: cport,
            seq: FWD_SERVER_ISN,
            ack: FWD_ISN + 1,
            flags: SYN | ACK,
            ..Tcp::default()
        }
        .datagram()
    };
    s.push(from(
        SRV11_MAC,
        reply(SRV11, DR_VPORT, DR_CPORT, ID_DR_REPLY),
    ));
    s.push(from(
        SRV12_MAC,
        reply(SRV12, TUN_VPORT, TUN_CPORT, ID_TUN_REPLY),
    ));
    // What a DR server whose default route wrongly points at rvs really sends: from the VIP,
    // which it holds on lo.
    s.push(from(
        SRV11_MAC,
        reply(VIP, DR_VPORT, DR_CPORT, ID_DR_REPLY_FROM_VIP),
    ));
    s.push(from(SRV13_MAC, icmp_b()));
    assert!(s.len() <= 64, "every server reply in the second burst");
    FwdScenario {
        client_in: c,
        server_in: s,
    }
}

/// What tshark is asked for, per frame.
const TSHARK_FIELDS: &[&str] = &[
    "frame.number",
    "ip.proto",
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ip.flags.df",
    "ip.id",
    "tcp.srcport",
    "tcp.dstport",
    "ip.checksum.status",
    "tcp.checksum.status",
    "icmp.type",
    "icmp.code",
    "icmp.mtu",
    "icmp.checksum.status",
];

struct FwdOutcome {
    scenario: FwdScenario,
    /// What worker w sent out of each port (its tx queue w): `client_out[w]`, `server_out[w]`.
    client_out: Vec<Vec<Vec<u8>>>,
    server_out: Vec<Vec<Vec<u8>>>,
    /// tshark's reading of each of those files, frame for frame.
    client_tshark: [Vec<Decoded>; 2],
    server_tshark: [Vec<Decoded>; 2],
    stats: Value,
    stdout: String,
}

fn fwd_outcome() -> &'static FwdOutcome {
    static RUN: OnceLock<Result<FwdOutcome, String>> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let sc = fwd_scenario();
        let mut run = Run::new("pcap-dr-tun", "main");
        // Every input frame on queue 0; the queue-1 rx files hold only the global header.
        let out = run.execute(
            &[sc.client_in.clone(), Vec::new()],
            &[sc.server_in.clone(), Vec::new()],
            &format!("mtu = {FWD_SERVER_MTU}"),
            FWD_SERVICES,
        )?;
        let (client_out, server_out) = (out.client, out.server);
        let decode = |side: &str, q: usize| {
            tshark(&run.path(&format!("{side}-out-{q}.pcap")), TSHARK_FIELDS)
        };
        let client_tshark = [decode("client", 0)?, decode("client", 1)?];
        let server_tshark = [decode("server", 0)?, decode("server", 1)?];
        for q in 0..2 {
            if client_tshark[q].len() != client_out[q].len()
                || server_tshark[q].len() != server_out[q].len()
            {
                return Err(format!(
                    "queue {q}: tshark read {}+{} frames, the pcap reader {}+{}",
                    client_tshark[q].len(),
                    server_tshark[q].len(),
                    client_out[q].len(),
                    server_out[q].len()
                ));
            }
        }
        Ok(FwdOutcome {
            scenario: sc,
            client_out,
            server_out,
            client_tshark,
            server_tshark,
            stats: out.stats,
            stdout: out.stdout,
        })
    });
    match run {
        Ok(o) => o,
        Err(e) => panic!("the forwarding-methods rvs run failed: {e}"),
    }
}

fn is_ipip(f: &[u8]) -> bool {
    is_ipv4(f) && f[23] == proto::IPIP && f.len() >= 54
}

/// Labels: `ipip <inner id>` for a tunnelled frame, else as `label`.
fn fwd_label(f: &[u8]) -> String {
    if is_ipip(f) {
        format!("ipip {:#06x}", u16::from_be_bytes([f[38], f[39]]))
    } else {
        label(f)
    }
}

/// Where the frame labelled `want` is among one port's two tx files: (queue, position in that
/// queue's file). Exactly one must be there, in both files together.
fn fwd_find(files: &[Vec<Vec<u8>>], want: &str) -> (usize, usize) {
    let at: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(q, frames)| {
            frames
                .iter()
                .enumerate()
                .filter(|(_, f)| fwd_label(f) == want)
                .map(move |(i, _)| (q, i))
        })
        .collect();
    assert_eq!(at.len(), 1, "frames labelled `{want}`: {at:?}");
    at[0]
}

/// Check a tunnelled frame with etherparse: Ethernet to the server, a 20-byte outer header
/// (valid checksum, IPIP, from the server port's address to `server`, TTL and DF of the inner
/// datagram, no fragmentation) around exactly `inner`. Returns the outer identification.
fn check_ipip(f: &[u8], server: Ip, server_mac: Mac, inner: &[u8]) -> u16 {
    let s = SlicedPacket::from_ethernet(f)
        .unwrap_or_else(|e| panic!("etherparse refuses {}: {e}", hex(f)));
    let Some(LinkSlice::Ethernet2(e)) = &s.link else {
        panic!("not Ethernet II: {}", hex(f))
    };
    assert_eq!((e.source(), e.destination()), (SERVER_PORT_MAC, server_mac));
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4: {}", hex(f))
    };
    let h = ip.header();
    assert_eq!(
        h.to_header().calc_header_checksum(),
        h.header_checksum(),
        "outer checksum of {}",
        hex(f)
    );
    assert_eq!(h.protocol().0, proto::IPIP);
    assert_eq!(h.ihl(), 5, "no options outside");
    assert_eq!((h.source(), h.destination()), (SERVER_PORT_ADDR, server));
    assert_eq!(usize::from(h.total_len()), inner.len() + 20);
    assert_eq!(f.len(), 14 + 20 + inner.len(), "no padding, no tail");
    assert_eq!(h.ttl(), inner[8], "outer TTL = inner TTL");
    assert_eq!(h.dont_fragment(), inner[6] & 0x40 != 0, "DF copied");
    assert!(!h.more_fragments());
    assert_eq!(h.fragments_offset().value(), 0);
    assert_eq!(h.dcp().value(), inner[1] >> 2, "DSCP copied");
    assert_eq!(ip.payload().payload, inner, "inner datagram");
    // The inner datagram on its own: checksums verified by etherparse.
    let inner_frame = ip_frame(&eth(SERVER_PORT_MAC, server_mac, ethertype::IPV4, inner));
    assert_eq!((inner_frame.src, inner_frame.dst), (FWD_W1_CLIENT, VIP));
    h.identification()
}

/// Forwarding case 1: TUN. Every tunnelled datagram is read by tshark and by etherparse: two IP
/// layers (outer protocol 4) from the server port's address to the server around the client's
/// datagram to the VIP, TTL decremented inside and copied outside, DF copied, TCP untouched,
/// every checksum good. The datagram of exactly MTU - 20 bytes fits. The flow's client is
/// worker 1's: every datagram was read by worker 0, handed over, and tunnelled by worker 1 out
/// of the server port's tx queue 1, whose file tshark reads.
#[test]
fn fwd_tun_is_ip_in_ip_as_tshark_decodes_it() {
    let o = fwd_outcome();
    let mut idents = Vec::new();
    for (id, sent) in tun_datagrams().into_iter().take(3) {
        let (q, at) = fwd_find(&o.server_out, &format!("ipip {id:#06x}"));
        assert_eq!(q, 1, "{id:#06x} sent by worker 1");
        let f = &o.server_out[q][at];
        let inner = ttl_decremented(&sent);
        assert_eq!(inner[8], TUN_TTL - 1);
        idents.push(check_ipip(f, SRV12, SRV12_MAC, &inner));
        if id == ID_TUN_FIT {
            assert_eq!(f.len() - 14, usize::from(FWD_SERVER_MTU), "exactly the MTU");
        }

        let t = &o.server_tshark[q][at];
        let what = format!(
            "tshark on server-out-{q} frame {} ({id:#06x}): {t:?}",
            at + 1
        );
        assert_eq!(t.get("frame.number"), [(at + 1).to_string()], "{what}");
        assert_eq!(t.get("ip.proto"), ["4", "6"], "{what}");
        assert_eq!(
            t.get("ip.src"),
            [ip_str(SERVER_PORT_ADDR), ip_str(FWD_W1_CLIENT)],
            "{what}"
        );
        assert_eq!(t.get("ip.dst"), [ip_str(SRV12), ip_str(VIP)], "{what}");
        let ttl = (TUN_TTL - 1).to_string();
        assert_eq!(t.get("ip.ttl"), [ttl.as_str(), ttl.as_str()], "{what}");
        let df = if sent[6] & 0x40 != 0 { "1" } else { "0" };
        assert_eq!(t.get("ip.flags.df"), [df, df], "{what}");
        assert_eq!(t.get("tcp.srcport"), [TUN_CPORT.to_string()], "{what}");
        assert_eq!(t.get("tcp.dstport"), [TUN_VPORT.to_string()], "{what}");
        assert_eq!(t.get("ip.checksum.status"), ["1", "1"], "{what}");
        assert_eq!(t.get("tcp.checksum.status"), ["1"], "{what}");
    }
    idents.sort_unstable();
    idents.dedup();
    assert_eq!(
        idents.len(),
        3,
        "a fresh outer identification each: {idents:?}"
    );

    let tun = service(&o.stats, "tun");
    assert_eq!(tun["counters"]["conns"], 1);
    assert_eq!(tun["counters"]["pkts_in"], 3);
    assert_eq!(tun["counters"]["pkts_out"], 0);
}

/// Forwarding case 2: DR. Only the MAC changes and the TTL drops by one: the frame leaves the
/// server port for the server's MAC, still addressed to the VIP, TCP bytes identical. The
/// flow's client is worker 1's: worker 1 forwards both segments, on its tx queue.
#[test]
fn fwd_dr_changes_only_the_mac_and_the_ttl() {
    let o = fwd_outcome();
    for sent in [dr_syn(), dr_data()] {
        let id = u16::from_be_bytes([sent[4], sent[5]]);
        let (q, at) = fwd_find(&o.server_out, &format!("ip {id:#06x}"));
        assert_eq!(q, 1, "{id:#06x} sent by worker 1");
        let f = &o.server_out[q][at];
        let p = ip_frame(f);
        assert_eq!((p.eth_src, p.eth_dst), (SERVER_PORT_MAC, SRV11_MAC));
        assert_eq!((p.src, p.dst), (FWD_W1_CLIENT, VIP), "addresses untouched");
        assert_eq!((p.sport, p.dport), (DR_CPORT, DR_VPORT));
        assert_eq!(p.ttl, sent[8] - 1);
        assert_eq!(&f[14 + 20..], &sent[20..], "TCP bytes identical");
        assert_eq!(
            f[14..],
            ttl_decremented(&sent)[..],
            "IPv4 otherwise identical"
        );
    }
    let dr = service(&o.stats, "dr");
    assert_eq!(dr["counters"]["conns"], 1);
    assert_eq!(dr["counters"]["pkts_in"], 2);
    assert_eq!(dr["counters"]["pkts_out"], 0);
}

/// Forwarding case 3: TUN too big. A DF datagram one byte over MTU - 20 is not sent; a
/// "fragmentation needed" advertising MTU - 20 goes back out of the client port to the client,
/// quoting the offending header and 8 bytes. Without DF the datagram is dropped silently.
#[test]
fn fwd_tun_too_big_gets_frag_needed_or_is_dropped() {
    let o = fwd_outcome();
    for id in [ID_TUN_BIG_DF, ID_TUN_BIG] {
        assert!(
            !o.server_out
                .iter()
                .flatten()
                .any(|f| fwd_label(f) == format!("ipip {id:#06x}")),
            "{id:#06x} was tunnelled"
        );
    }
    let is_frag_needed = |f: &[u8]| {
        is_ipv4(f)
            && f[23] == proto::ICMP
            && f[34] == icmp::UNREACHABLE
            && f[35] == icmp::FRAG_NEEDED
    };
    let icmp: Vec<(usize, usize)> = (0..2)
        .flat_map(|q| (0..o.client_out[q].len()).map(move |i| (q, i)))
        .filter(|&(q, i)| is_frag_needed(&o.client_out[q][i]))
        .collect();
    // Sent by worker 1, the owner of the TUN flow, on its tx queue.
    assert_eq!(
        icmp,
        [(1, icmp[0].1)],
        "one frag-needed on the client port, from worker 1"
    );
    let (q, at) = icmp[0];
    let f = &o.client_out[q][at];
    let p = ip_frame(f);
    assert_eq!((p.eth_src, p.eth_dst), (CLIENT_PORT_MAC, FWD_W1_CLIENT_MAC));
    // From the address the client sent to (the VIP), as IPVS does.
    assert_eq!((p.src, p.dst), (VIP, FWD_W1_CLIENT));
    assert_eq!((p.proto, p.ttl, p.id), (proto::ICMP, 64, 0));
    assert_eq!(f[20] & 0x40, 0x40, "DF set on the error itself");
    assert_eq!(p.payload[..2], [icmp::UNREACHABLE, icmp::FRAG_NEEDED]);
    assert_eq!(p.payload[4..6], [0, 0], "unused half of the word");
    assert_eq!(
        u16::from_be_bytes([p.payload[6], p.payload[7]]),
        FWD_TUN_MTU,
        "next-hop MTU = link MTU - 20"
    );
    let s = SlicedPacket::from_ethernet(f).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = &s.transport else {
        panic!("no ICMP in {}", hex(f))
    };
    assert_eq!(
        i.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: FWD_TUN_MTU
            }
        )
    );
    // The quote: the offending header and 8 bytes. It carries the TTL already decremented,
    // as IPVS's (decrement_ttl runs before ensure_mtu_is_adequate in __ip_vs_get_out_rt).
    let (_, big) = tun_datagrams()
        .into_iter()
        .find(|(id, _)| *id == ID_TUN_BIG_DF)
        .unwrap();
    assert_eq!(p.payload[8..], ttl_decremented(&big)[..28], "quote");
    assert_eq!(p.len, 14 + 20 + 8 + 28);

    let t = &o.client_tshark[q][at];
    let what = format!("tshark on client-out-{q} frame {}: {t:?}", at + 1);
    assert_eq!(t.get("icmp.type"), ["3"], "{what}");
    assert_eq!(t.get("icmp.code"), ["4"], "{what}");
    assert_eq!(t.get("icmp.mtu"), [FWD_TUN_MTU.to_string()], "{what}");
    assert_eq!(t.get("icmp.checksum.status"), ["1"], "{what}");
    let client = ip_str(FWD_W1_CLIENT);
    assert_eq!(t.get("ip.src"), [ip_str(VIP), client.clone()], "{what}");
    assert_eq!(t.get("ip.dst"), [client, ip_str(VIP)], "{what}");
    assert_eq!(t.get("ip.checksum.status"), ["1", "1"], "{what}");

    assert_eq!(o.stats["counters"]["frag_needed_sent"], 1);
    assert_eq!(o.stats["drops"]["too_big"], 2, "with and without DF");
}

/// Forwarding case 4: a server's reply through rvs for a DR or TUN flow is dropped as
/// `unexpected_reply`, never forwarded.
#[test]
fn fwd_replies_of_dr_and_tun_flows_are_refused() {
    let o = fwd_outcome();
    for id in [ID_DR_REPLY, ID_TUN_REPLY, ID_DR_REPLY_FROM_VIP] {
        assert!(
            !o.client_out
                .iter()
                .flatten()
                .any(|f| label(f) == format!("ip {id:#06x}")),
            "reply {id:#06x} was forwarded"
        );
    }
    // A misrouted DR server answers from the VIP (it holds the VIP on lo): that is counted as
    // `unexpected_reply` too (found by the client -> VIP side of the flow).
    assert_eq!(o.stats["drops"]["unexpected_reply"], 3);
}

/// Forwarding case 5: ICMP errors about a NAT flow are translated. (a) A client-side router's
/// "fragmentation needed" about the SYN-ACK rvs sent goes to the server, quoting the SYN-ACK as
/// the server sent it; (b) the server's "port unreachable" about the SYN rvs forwarded goes to
/// the client from the VIP, quoting the SYN as the client sent it. All checksums valid.
#[test]
fn fwd_icmp_errors_about_a_nat_flow_are_translated() {
    let o = fwd_outcome();
    // What case (a) quotes is what rvs really sent, and what (b) quotes is what rvs forwarded.
    // The NAT flow's client is worker 0's: all of it stays on worker 0's tx queues.
    let (q, at) = fwd_find(&o.client_out, &format!("ip {ID_NAT_SYNACK:#06x}"));
    assert_eq!(q, 0, "SYN-ACK sent by worker 0");
    assert_eq!(
        o.client_out[q][at][14..],
        nat_synack(true)[..],
        "the SYN-ACK as sent"
    );
    let (q, at) = fwd_find(&o.server_out, &format!("ip {ID_NAT_SYN:#06x}"));
    assert_eq!(q, 0, "SYN sent by worker 0");
    assert_eq!(
        o.server_out[q][at][14..],
        nat_syn(true)[..],
        "the SYN as forwarded"
    );

    // (a)
    let (q, at) = fwd_find(&o.server_out, &format!("ip {ID_ICMP_A:#06x}"));
    assert_eq!(q, 0, "(a) sent by worker 0");
    let p = ip_frame(&o.server_out[q][at]);
    assert_eq!((p.eth_src, p.eth_dst), (SERVER_PORT_MAC, SRV13_MAC));
    assert_eq!(
        (p.src, p.dst),
        (CLIENT_ROUTER, SRV13),
        "the router stays the source"
    );
    assert_eq!((p.proto, p.ttl), (proto::ICMP, 63));
    assert_eq!(p.payload[..2], [icmp::UNREACHABLE, icmp::FRAG_NEEDED]);
    assert_eq!(
        u32::from_be_bytes(p.payload[4..8].try_into().unwrap()),
        u32::from(ICMP_A_MTU),
        "next-hop MTU untouched"
    );
    // The quote as the server knows it: from server:port. The TTL stays as quoted (rvs's 63):
    // only addresses, ports and checksums change.
    let mut want = nat_synack(false);
    want[8] = 63;
    fix_ip_checksum(&mut want);
    assert_eq!(
        p.payload[8..],
        want[..],
        "quote of (a), source = server:port"
    );
    let quote = ip_frame(&eth(
        SERVER_PORT_MAC,
        SRV13_MAC,
        ethertype::IPV4,
        &p.payload[8..],
    ));
    assert_eq!((quote.src, quote.sport), (SRV13, NAT_SPORT));
    let t = &o.server_tshark[q][at];
    let what = format!("tshark on server-out-{q} frame {}: {t:?}", at + 1);
    assert_eq!(
        (t.get("icmp.type"), t.get("icmp.code")),
        (vec!["3"], vec!["4"])
    );
    assert_eq!(t.get("icmp.mtu"), [ICMP_A_MTU.to_string()], "{what}");
    assert_eq!(t.get("icmp.checksum.status"), ["1"], "{what}");
    assert_eq!(t.get("ip.checksum.status"), ["1", "1"], "{what}");
    assert_eq!(
        t.get("ip.src"),
        [ip_str(CLIENT_ROUTER), ip_str(SRV13)],
        "{what}"
    );
    assert_eq!(t.get("ip.dst"), [ip_str(SRV13), ip_str(CLIENT)], "{what}");
    assert_eq!(t.get("ip.ttl"), ["63", "63"], "{what}");
    assert_eq!(t.get("tcp.srcport"), [NAT_SPORT.to_string()], "{what}");
    assert_eq!(t.get("tcp.dstport"), [NAT_CPORT.to_string()], "{what}");
    // The whole segment is quoted, so tshark checks the quoted TCP checksum too.
    assert_eq!(t.get("tcp.checksum.status"), ["1"], "{what}");

    // (b)
    let (q, at) = fwd_find(&o.client_out, &format!("ip {ID_ICMP_B:#06x}"));
    assert_eq!(q, 0, "(b) sent by worker 0");
    let p = ip_frame(&o.client_out[q][at]);
    assert_eq!((p.eth_src, p.eth_dst), (CLIENT_PORT_MAC, CLIENT_MAC));
    assert_eq!((p.src, p.dst), (VIP, CLIENT), "the server's address hidden");
    assert_eq!((p.proto, p.ttl), (proto::ICMP, 63));
    assert_eq!(p.payload[..2], [icmp::UNREACHABLE, icmp::PORT_UNREACHABLE]);
    let mut want = nat_syn(false);
    want[8] = 63;
    fix_ip_checksum(&mut want);
    assert_eq!(
        p.payload[8..],
        want[..],
        "quote of (b), destination = VIP:port"
    );
    let quote = ip_frame(&eth(
        CLIENT_PORT_MAC,
        CLIENT_MAC,
        ethertype::IPV4,
        &p.payload[8..],
    ));
    assert_eq!((quote.dst, quote.dport), (VIP, NAT_VPORT));
    let t = &o.client_tshark[q][at];
    let what = format!("tshark on client-out-{q} frame {}: {t:?}", at + 1);
    assert_eq!(
        (t.get("icmp.type"), t.get("icmp.code")),
        (vec!["3"], vec!["3"])
    );
    assert_eq!(t.get("icmp.checksum.status"), ["1"], "{what}");
    assert_eq!(t.get("ip.checksum.status"), ["1", "1"], "{what}");
    assert_eq!(t.get("ip.src"), [ip_str(VIP), ip_str(CLIENT)], "{what}");
    assert_eq!(t.get("ip.dst"), [ip_str(CLIENT), ip_str(VIP)], "{what}");
    assert_eq!(t.get("ip.ttl"), ["63", "63"], "{what}");
    assert_eq!(t.get("tcp.srcport"), [NAT_CPORT.to_string()], "{what}");
    assert_eq!(t.get("tcp.dstport"), [NAT_VPORT.to_string()], "{what}");
    assert_eq!(t.get("tcp.checksum.status"), ["1"], "{what}");

    assert_eq!(o.stats["counters"]["icmp_errors_translated"], 2);
    let nat = service(&o.stats, "nat");
    assert_eq!(nat["counters"]["conns"], 1);
    assert_eq!(nat["counters"]["pkts_in"], 1);
    assert_eq!(nat["counters"]["pkts_out"], 1);
}

/// Everything: each tx queue of each port sent exactly the frames expected, the drop map is
/// exact, and the counters agree with the files. Worker 0 (queue 0) sends the gratuitous ARPs
/// and the NAT flow's frames; worker 1 (queue 1) everything of the DR and TUN flows, which it
/// got by handover, in the order worker 0 handed them over.
#[test]
fn fwd_output_and_counters_are_exact() {
    let o = fwd_outcome();
    let ip = |id: u16| format!("ip {id:#06x}");
    let ipip = |id: u16| format!("ipip {id:#06x}");
    let arp = |a: Ip| format!("arp 1 {}", Ipv4Addr::from(a));
    let client = [
        vec![
            arp(CLIENT_PORT_ADDR),
            arp(VIP),
            ip(ID_NAT_SYNACK),
            ip(ID_ICMP_B),
        ],
        // The frag-needed rvs originates (identification 0, RFC 6864 atomic datagram).
        vec![ip(0)],
    ];
    let server = [
        vec![arp(SERVER_PORT_ADDR), ip(ID_NAT_SYN), ip(ID_ICMP_A)],
        vec![
            ip(ID_DR_SYN),
            ip(ID_DR_DATA),
            ipip(ID_TUN_SYN),
            ipip(ID_TUN_NODF),
            ipip(ID_TUN_FIT),
        ],
    ];
    let labels = |v: &[Vec<u8>]| v.iter().map(|f| fwd_label(f)).collect::<Vec<_>>();
    for q in 0..2 {
        assert_eq!(
            sorted(labels(&o.client_out[q])),
            sorted(client[q].clone()),
            "client port output, queue {q}"
        );
        assert_eq!(
            sorted(labels(&o.server_out[q])),
            sorted(server[q].clone()),
            "server port output, queue {q}"
        );
    }
    // One producer, one FIFO inbox, one consumer: worker 1 forwards in the client's order.
    assert_eq!(labels(&o.server_out[1]), server[1], "worker 1's order");

    let drops = nonzero_drops(&o.stats);
    let want = BTreeMap::from([
        (
            "other_mac".to_string(),
            u64::from(FWD_FILLERS + FWD_CLIENT_FILLERS),
        ),
        ("too_big".to_string(), 2),
        ("unexpected_reply".to_string(), 3),
    ]);
    assert_eq!(drops, want, "drops");

    let n = |k: &str| o.stats["counters"][k].as_u64().unwrap();
    assert_eq!(n("flows_created"), 3);
    assert_eq!(n("nat_in_packets"), 2 + 3 + 1, "DR 2, TUN 3, NAT 1");
    assert_eq!(n("nat_out_packets"), 1);
    assert_eq!(n("frag_needed_sent"), 1);
    assert_eq!(n("icmp_errors_translated"), 2);
    assert_eq!(n("garp_sent"), 3);
    for k in [
        "arp_replies_sent",
        "arp_requests_sent",
        "arp_consumed",
        "icmp_echo_replies",
    ] {
        assert_eq!(n(k), 0, "{k}");
    }
    // Every DR and TUN frame (and refused reply) was read by worker 0 and handed to worker 1;
    // none was lost to a full inbox (the drop map above says so too).
    assert_eq!(n("handover_out"), FWD_HANDOVERS, "handover_out");
    assert_eq!(n("handover_in"), FWD_HANDOVERS, "handover_in");
    assert_eq!(o.stats["drops"]["handover_full"], 0, "handover_full");
    let sc = &o.scenario;
    let rx: Vec<&Vec<u8>> = sc.client_in.iter().chain(&sc.server_in).collect();
    let tx: Vec<&Vec<u8>> = o.client_out.iter().chain(&o.server_out).flatten().collect();
    assert_eq!(n("rx_packets") as usize, rx.len());
    assert_eq!(
        n("rx_bytes") as usize,
        rx.iter().map(|f| f.len()).sum::<usize>()
    );
    assert_eq!(n("tx_packets") as usize, tx.len());
    assert_eq!(
        n("tx_bytes") as usize,
        tx.iter().map(|f| f.len()).sum::<usize>()
    );
    let port = |name: &str| pcap_run::port(&o.stats, name);
    assert_eq!(port("client")["ipackets"], sc.client_in.len());
    assert_eq!(port("server")["ipackets"], sc.server_in.len());
    let total = |v: &[Vec<String>; 2]| v[0].len() + v[1].len();
    assert_eq!(port("client")["opackets"], total(&client));
    assert_eq!(port("server")["opackets"], total(&server));
    assert!(o.stdout.contains("rvs: final counters"), "{}", o.stdout);
    assert!(
        o.stdout.contains("with 2 worker(s)"),
        "rvs did not run two workers:\n{}",
        o.stdout
    );
}
