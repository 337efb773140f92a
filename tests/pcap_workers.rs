#![cfg(feature = "dpdk-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The pcap tier, two workers (`[workers] count = 2`): the real `rvs` binary on two DPDK
//! `net_pcap` vdevs (`tests/common/pcap_run.rs`), where the test decides which queue every frame
//! arrives on, so that it can check handover between workers: a SYN or a reply read by the
//! worker that does not own its client is handed over and NAT'd by the owner, once, on the
//! owner's tx queue; UDP both ways across the two workers; a neighbour one worker learns
//! releases a SYN the other one holds; ARP and ICMP are answered where they arrive; and every
//! counter, handovers included, is exact. One rvs run serves every `mw_*` test. Run as root:
//! `cargo test --release --features dpdk-tests,lab-tests --test pcap_workers -- --test-threads=1`.
//!
//! rvs asks each port for 2 rx and 2 tx queues (two `rx_pcap=` and two `tx_pcap=` arguments)
//! and worker w polls rx queue w and sends on tx queue w of both ports (worker 0 on the main
//! lcore, worker 1 on lcore 1). The device has no RSS, so rvs warns and relies on software
//! ownership: the owner of a TCP/UDP frame is `Sharding::new(2, 32).owner(client)`, and a frame
//! read by the other worker is handed over. So: "client-in-<w>.pcap" is what worker w reads
//! from the client port, "server-out-<w>.pcap" what worker w sent out of the server port, and
//! so on.
//!
//! Ordering, which here spans two threads:
//! - A flow's frames that both pass through one worker (both on the owner's queues, or both on
//!   the other worker's queues and handed over in the same FIFO inbox, which has that worker as
//!   its only producer) keep the single-worker argument (see `pcap_nat`): the opening frame is
//!   in the first rx burst of its client queue, the client port is polled before the server
//!   port, and every server queue starts with `MW_FILLERS` (> one burst) frames for another MAC.
//! - The UDP flows open on the owner's queue and their reply arrives on the other worker's
//!   queue. The owner reads the opening frame in its very first rx burst and takes handed-over
//!   frames only after the rx step of a loop iteration, so the reply can never be processed
//!   first, however the two threads are scheduled. (The opposite arrangement, opening frame
//!   handed over and reply on the owner's queue, would race the two threads, so it is not used.)
//! - The ARP case: worker 1 reads the SYN for 198.51.100.14 in its first rx burst, queues it and
//!   sends an ARP request in that same iteration; worker 0 reads the reply (after the fillers)
//!   and puts the neighbour into worker 1's inbox, which worker 1 reads only after its rx step.
//!   So worker 1 holds the SYN before it can hear of the neighbour, whatever the timing. Were it
//!   otherwise, worker 1 would learn the neighbour first and send the SYN without an ARP request,
//!   and `mw_neighbour_learned_by_one_worker_releases_the_held_syn` would fail.

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
    arp_frame, ip_frame, ip_id, proto, Arp, ArpFrame, Icmp, Ip, IpFrame, Mac, Tcp, Udp, ACK,
    BROADCAST, SYN,
};
use pcap_run::{
    by_id, filler, label, nonzero_drops, service, sorted, Run, CLIENT_PORT_ADDR, CLIENT_PORT_MAC,
    SERVER_PORT_ADDR, SERVER_PORT_MAC, SRV13, SRV13_MAC, VIP,
};

const SRV14: Ip = [198, 51, 100, 14];
const SRV14_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x14];
/// Frames for another MAC at the front of each server-port queue (more than one 32-frame burst).
const MW_FILLERS: u16 = 40;
const ID_MW_FILLER: u16 = 0x6100;
const ID_MW_PING: u16 = 0x6201;
const MW_ISN: u32 = 0x0102_0304;
const MW_SERVER_ISN: u32 = 0x0a0b_0c0d;
const MW_CLIENT_MACS: [(Ip, Mac); 7] = [
    ([203, 0, 113, 2], [0x02, 0, 0, 0, 0, 0x02]),
    ([203, 0, 113, 3], [0x02, 0, 0, 0, 0, 0x03]),
    ([203, 0, 113, 4], [0x02, 0, 0, 0, 0, 0x04]),
    ([203, 0, 113, 5], [0x02, 0, 0, 0, 0, 0x05]),
    ([203, 0, 113, 6], [0x02, 0, 0, 0, 0, 0x06]),
    ([203, 0, 113, 10], [0x02, 0, 0, 0, 0, 0x10]),
    ([203, 0, 113, 11], [0x02, 0, 0, 0, 0, 0x11]),
];

fn mw_client_mac(ip: Ip) -> Mac {
    MW_CLIENT_MACS
        .iter()
        .find(|(a, _)| *a == ip)
        .map(|(_, m)| *m)
        .unwrap()
}

/// `app` and `dns` as in the single-worker run; `late` goes to a server with no static
/// neighbour, so its MAC must be resolved by ARP.
const MW_SERVICES: &str = r#"
[workers]
count = 2

[[neighbor]]
port = "client"
ip = "203.0.113.2"
mac = "02:00:00:00:00:02"

[[neighbor]]
port = "client"
ip = "203.0.113.3"
mac = "02:00:00:00:00:03"

[[neighbor]]
port = "client"
ip = "203.0.113.4"
mac = "02:00:00:00:00:04"

[[neighbor]]
port = "client"
ip = "203.0.113.5"
mac = "02:00:00:00:00:05"

[[neighbor]]
port = "client"
ip = "203.0.113.6"
mac = "02:00:00:00:00:06"

[[neighbor]]
port = "client"
ip = "203.0.113.10"
mac = "02:00:00:00:00:10"

[[neighbor]]
port = "client"
ip = "203.0.113.11"
mac = "02:00:00:00:00:11"

[[neighbor]]
port = "server"
ip = "198.51.100.13"
mac = "02:00:00:00:01:13"

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

[[service.server]]
address = "198.51.100.13"
port = 5353

[[service]]
name = "late"
protocol = "tcp"
vip = "203.0.113.100"
port = 8000

[[service.server]]
address = "198.51.100.14"
port = 8000
"#;

/// One flow of the two-worker run and the queues its frames arrive on.
#[derive(Clone, Copy, Debug)]
struct MwFlow {
    client: Ip,
    /// The owner the scenario was designed for (checked against `Sharding`).
    owner: usize,
    proto: u8,
    cport: u16,
    vport: u16,
    server: Ip,
    sport: u16,
    /// Client-port rx queue of the client's frame (a SYN or a UDP request).
    request_queue: usize,
    /// Server-port rx queue of the server's reply (a SYN-ACK or a UDP answer), if any.
    reply_queue: Option<usize>,
    /// IP id of the client's frame; the reply carries `id + 1`.
    id: u16,
}

impl MwFlow {
    /// How many of this flow's frames arrive on the other worker's queue.
    fn handovers(&self) -> u64 {
        u64::from(self.request_queue != self.owner)
            + u64::from(self.reply_queue.is_some_and(|q| q != self.owner))
    }

    fn payload(&self, reply: bool) -> Vec<u8> {
        format!(
            "{} {:?} {}",
            if reply { "answer" } else { "query" },
            self.client,
            self.cport
        )
        .into_bytes()
    }

    /// The client's SYN or UDP request.
    fn request(&self) -> Vec<u8> {
        let macs = (mw_client_mac(self.client), CLIENT_PORT_MAC);
        let (src, dst, id) = (self.client, VIP, self.id);
        let (sport, dport) = (self.cport, self.vport);
        if self.proto == proto::TCP {
            let (seq, flags) = (MW_ISN, SYN);
            let t = Tcp {
                src,
                dst,
                id,
                sport,
                dport,
                seq,
                flags,
                ..Tcp::default()
            };
            t.frame(macs.0, macs.1)
        } else {
            let payload = self.payload(false);
            let u = Udp {
                src,
                dst,
                id,
                sport,
                dport,
                payload,
                ..Udp::default()
            };
            u.frame(macs.0, macs.1)
        }
    }

    /// The server's SYN-ACK or UDP answer, tagged `id + 1`.
    fn reply(&self) -> Vec<u8> {
        let macs = (SRV13_MAC, SERVER_PORT_MAC);
        let (src, dst, id) = (self.server, self.client, self.id + 1);
        let (sport, dport) = (self.sport, self.cport);
        if self.proto == proto::TCP {
            let (seq, ack, flags) = (MW_SERVER_ISN, MW_ISN + 1, SYN | ACK);
            let t = Tcp {
                src,
                dst,
                id,
                sport,
                dport,
                seq,
                ack,
                flags,
                ..Tcp::default()
            };
            t.frame(macs.0, macs.1)
        } else {
            let payload = self.payload(true);
            let u = Udp {
                src,
                dst,
                id,
                sport,
                dport,
                payload,
                ..Udp::default()
            };
            u.frame(macs.0, macs.1)
        }
    }
}

const fn mw_flow(
    client: Ip,
    owner: usize,
    proto: u8,
    cport: u16,
    request_queue: usize,
    reply_queue: Option<usize>,
    id: u16,
) -> MwFlow {
    let (vport, server, sport) = match (proto, cport) {
        (proto::UDP, _) => (53, SRV13, 5353),
        (_, 31000) => (8000, SRV14, 8000),
        _ => (443, SRV13, 8443),
    };
    MwFlow {
        client,
        owner,
        proto,
        cport,
        vport,
        server,
        sport,
        request_queue,
        reply_queue,
        id,
    }
}

/// The ARP case: a SYN to `late` (server .14, no static neighbour), owned by worker 1 and read
/// by it first of all; the server's ARP reply arrives on worker 0's queue.
const MW_LATE: MwFlow = mw_flow([203, 0, 113, 11], 1, proto::TCP, 31000, 1, None, 0x6001);
/// SYN and SYN-ACK both on the other worker's queues: both handed over.
const MW_HANDED_TCP: [MwFlow; 2] = [
    mw_flow([203, 0, 113, 2], 0, proto::TCP, 31001, 1, Some(1), 0x6010),
    mw_flow([203, 0, 113, 4], 1, proto::TCP, 31002, 0, Some(0), 0x6020),
];
/// SYN and SYN-ACK both on the owner's queues: no handover.
const MW_LOCAL_TCP: [MwFlow; 2] = [
    mw_flow([203, 0, 113, 3], 0, proto::TCP, 31003, 0, Some(0), 0x6030),
    mw_flow([203, 0, 113, 5], 1, proto::TCP, 31004, 1, Some(1), 0x6040),
];
/// Request on the owner's queue, reply on the other worker's: the reply is handed over.
const MW_UDP: [MwFlow; 2] = [
    mw_flow([203, 0, 113, 6], 0, proto::UDP, 5100, 0, Some(1), 0x6050),
    mw_flow([203, 0, 113, 10], 1, proto::UDP, 5101, 1, Some(0), 0x6060),
];
/// Answered where they arrive, never handed over: an ARP request for the VIP from a client
/// owned by worker 0 arrives on queue 1, a ping to the VIP from a client owned by worker 1 on
/// queue 0.
const MW_ARP_FROM: Ip = [203, 0, 113, 2];
const MW_PING_FROM: Ip = [203, 0, 113, 4];

fn mw_flows() -> Vec<MwFlow> {
    let mut v = vec![MW_LATE];
    v.extend(MW_HANDED_TCP);
    v.extend(MW_LOCAL_TCP);
    v.extend(MW_UDP);
    v
}

fn other(w: usize) -> usize {
    1 - w
}

/// Input frames per port and queue.
struct MwScenario {
    client_in: [Vec<Vec<u8>>; 2],
    server_in: [Vec<Vec<u8>>; 2],
}

fn mw_scenario() -> MwScenario {
    let sharding = rvs::flow::rss::Sharding::new(2, 32);
    for f in mw_flows() {
        assert_eq!(
            usize::from(sharding.owner(Ipv4Addr::from(f.client))),
            f.owner,
            "owner of {} (the scenario was built for this Toeplitz sharding)",
            Ipv4Addr::from(f.client)
        );
    }
    assert_eq!(sharding.owner(Ipv4Addr::from(MW_ARP_FROM)), 0);
    assert_eq!(sharding.owner(Ipv4Addr::from(MW_PING_FROM)), 1);

    let mut client_in: [Vec<Vec<u8>>; 2] = Default::default();
    let mut server_in: [Vec<Vec<u8>>; 2] = Default::default();
    // The late SYN is the first frame of client queue 1 (see the ordering notes above).
    for f in mw_flows() {
        client_in[f.request_queue].push(f.request());
    }
    assert_eq!(client_in[1][0], MW_LATE.request());
    let arp_mac = mw_client_mac(MW_ARP_FROM);
    client_in[1].push(Arp::request(arp_mac, MW_ARP_FROM, VIP).frame(arp_mac, BROADCAST));
    // A ping to the VIP as the single-worker run's (`pcap_nat`), from a client of worker 1.
    let ping = Icmp {
        src: MW_PING_FROM,
        dst: VIP,
        id: ID_MW_PING,
        ..Icmp::echo_request(0x4242, 7, b"rvs pcap tier ping")
    };
    client_in[0].push(ping.frame(mw_client_mac(MW_PING_FROM), CLIENT_PORT_MAC));

    for (q, frames) in server_in.iter_mut().enumerate() {
        for i in 0..MW_FILLERS {
            frames.push(filler(
                ID_MW_FILLER + (q as u16) * MW_FILLERS + i,
                SRV13_MAC,
            ));
        }
    }
    // The server's answer to worker 1's ARP request, on worker 0's queue.
    let answer = Arp::reply(SRV14_MAC, SRV14, SERVER_PORT_MAC, SERVER_PORT_ADDR);
    server_in[0].push(answer.frame(SRV14_MAC, SERVER_PORT_MAC));
    for f in mw_flows() {
        if let Some(q) = f.reply_queue {
            server_in[q].push(f.reply());
        }
    }
    assert!(
        client_in.iter().all(|frames| frames.len() <= 32),
        "every client frame in the first burst"
    );
    MwScenario {
        client_in,
        server_in,
    }
}

struct MwOutcome {
    scenario: MwScenario,
    /// What worker w sent out of each port: `client_out[w]`, `server_out[w]`.
    client_out: Vec<Vec<Vec<u8>>>,
    server_out: Vec<Vec<Vec<u8>>>,
    stats: Value,
    stdout: String,
}

fn mw_outcome() -> &'static MwOutcome {
    static RUN: OnceLock<Result<MwOutcome, String>> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let sc = mw_scenario();
        let mut run = Run::new("pcap-workers", "main");
        let out = run.execute(&sc.client_in, &sc.server_in, "", MW_SERVICES)?;
        Ok(MwOutcome {
            client_out: out.client,
            server_out: out.server,
            stats: out.stats,
            stdout: out.stdout,
            scenario: sc,
        })
    });
    match run {
        Ok(o) => o,
        Err(e) => panic!("the two-worker rvs run failed: {e}"),
    }
}

/// How many frames tagged `id` each of the two files holds.
fn mw_count(files: &[Vec<Vec<u8>>], id: u16) -> [usize; 2] {
    let count = |frames: &[Vec<u8>]| frames.iter().filter(|f| ip_id(f) == Some(id)).count();
    [count(&files[0]), count(&files[1])]
}

/// The frame tagged `id`, which must be in `files[w]` exactly once and nowhere else.
fn mw_only_in(files: &[Vec<Vec<u8>>], w: usize, id: u16) -> IpFrame {
    let mut want = [0, 0];
    want[w] = 1;
    assert_eq!(
        mw_count(files, id),
        want,
        "frames with IP id {id:#06x} per tx queue"
    );
    by_id(&files[w], id)
}

/// Labels: `arp <op> <spa>><tpa>` or `ip <id>`.
fn mw_label(f: &[u8]) -> String {
    match arp_frame(f) {
        Some(a) => format!(
            "arp {} {}>{}",
            a.arp.op,
            Ipv4Addr::from(a.arp.spa),
            Ipv4Addr::from(a.arp.tpa)
        ),
        None => label(f),
    }
}

/// The client's frame left the server port DNAT'd to the server, once, on its owner's queue.
fn mw_check_forwarded(o: &MwOutcome, f: &MwFlow) {
    let sent = ip_frame(&f.request());
    let out = mw_only_in(&o.server_out, f.owner, f.id);
    let what = format!("{f:?}");
    assert_eq!(out.eth_src, SERVER_PORT_MAC, "{what}");
    assert_eq!(
        out.eth_dst,
        if f.server == SRV14 {
            SRV14_MAC
        } else {
            SRV13_MAC
        },
        "{what}"
    );
    assert_eq!((out.src, out.sport), (f.client, f.cport), "{what}");
    assert_eq!((out.dst, out.dport), (f.server, f.sport), "{what}");
    assert_eq!(
        (out.proto, out.ttl, out.len),
        (f.proto, 63, sent.len),
        "{what}"
    );
    assert_ne!(
        out.l4_checksum, sent.l4_checksum,
        "{what}: checksum patched"
    );
    if f.proto == proto::TCP {
        assert_eq!(
            (out.syn, out.has_ack, out.seq),
            (true, false, MW_ISN),
            "{what}"
        );
    } else {
        assert_eq!(out.payload, f.payload(false), "{what}");
    }
}

/// The server's reply left the client port SNAT'd to the VIP, once, on the owner's queue.
fn mw_check_replied(o: &MwOutcome, f: &MwFlow) {
    let out = mw_only_in(&o.client_out, f.owner, f.id + 1);
    let what = format!("{f:?}");
    assert_eq!(
        (out.eth_src, out.eth_dst),
        (CLIENT_PORT_MAC, mw_client_mac(f.client)),
        "{what}"
    );
    assert_eq!((out.src, out.sport), (VIP, f.vport), "{what}");
    assert_eq!((out.dst, out.dport), (f.client, f.cport), "{what}");
    assert_eq!((out.proto, out.ttl), (f.proto, 63), "{what}");
    if f.proto == proto::TCP {
        assert!(out.syn && out.has_ack, "{what}");
        assert_eq!((out.seq, out.ack), (MW_SERVER_ISN, MW_ISN + 1), "{what}");
    } else {
        assert_ne!(out.l4_checksum, 0, "{what}");
        assert_eq!(out.payload, f.payload(true), "{what}");
    }
}

/// Two-worker case 1: a SYN read by the worker that does not own its client is handed over and
/// DNAT'd by the owner, once, on the owner's tx queue of the server port.
#[test]
fn mw_syn_on_the_other_queue_is_handed_over_and_dnatted() {
    let o = mw_outcome();
    for f in &MW_HANDED_TCP {
        assert_eq!(f.request_queue, other(f.owner));
        mw_check_forwarded(o, f);
    }
}

/// Two-worker case 2: the SYN-ACK read by the other worker is handed over and SNAT'd to the
/// VIP by the owner, once, on the owner's tx queue of the client port.
#[test]
fn mw_reply_on_the_other_queue_is_handed_over_and_snatted() {
    let o = mw_outcome();
    for f in &MW_HANDED_TCP {
        assert_eq!(f.reply_queue, Some(other(f.owner)));
        mw_check_replied(o, f);
    }
}

/// Two-worker case 3: a flow whose frames all arrive on the owner's queues is served there
/// (no handover: the exact handover count is checked in `mw_counters_are_exact`).
#[test]
fn mw_flow_on_its_owners_queues_stays_there() {
    let o = mw_outcome();
    for f in &MW_LOCAL_TCP {
        assert_eq!((f.request_queue, f.reply_queue), (f.owner, Some(f.owner)));
        mw_check_forwarded(o, f);
        mw_check_replied(o, f);
    }
}

/// Two-worker case 4: UDP both ways, the request on the owner's queue and the answer on the
/// other worker's, for a client of each worker.
#[test]
fn mw_udp_each_direction_on_a_different_queue() {
    let o = mw_outcome();
    for f in &MW_UDP {
        assert_ne!(Some(f.request_queue), f.reply_queue);
        mw_check_forwarded(o, f);
        mw_check_replied(o, f);
    }
    let dns = service(&o.stats, "dns");
    assert_eq!(dns["counters"]["conns"], 2);
    assert_eq!(dns["counters"]["pkts_in"], 2);
    assert_eq!(dns["counters"]["pkts_out"], 2);
}

/// Two-worker case 5: handovers are exactly the TCP/UDP frames sent to the other worker's
/// queue (not ARP, not ICMP), none is lost, and every other counter is exact.
#[test]
fn mw_counters_are_exact() {
    let o = mw_outcome();
    let n = |k: &str| o.stats["counters"][k].as_u64().unwrap();
    let handed: u64 = mw_flows().iter().map(MwFlow::handovers).sum();
    assert_eq!(handed, 6);
    assert_eq!(n("handover_out"), handed, "handover_out");
    assert_eq!(n("handover_in"), handed, "handover_in");

    let drops = nonzero_drops(&o.stats);
    let want = BTreeMap::from([("other_mac".to_string(), 2 * u64::from(MW_FILLERS))]);
    assert_eq!(drops, want, "drops (handover_full among them must be 0)");
    assert_eq!(o.stats["drops"]["handover_full"], 0);

    let flows = mw_flows();
    let tcp_443 = flows.iter().filter(|f| f.vport == 443).count();
    for (name, conns, pkts_in, pkts_out) in [
        ("app", tcp_443, tcp_443, tcp_443),
        ("dns", MW_UDP.len(), MW_UDP.len(), MW_UDP.len()),
        ("late", 1, 1, 0),
    ] {
        let s = service(&o.stats, name);
        assert_eq!(s["counters"]["conns"], conns, "{name} conns");
        assert_eq!(s["counters"]["pkts_in"], pkts_in, "{name} pkts_in");
        assert_eq!(s["counters"]["pkts_out"], pkts_out, "{name} pkts_out");
        assert_eq!(
            s["servers"][0]["counters"]["conns"], conns,
            "{name} server conns"
        );
    }
    assert_eq!(n("flows_created"), flows.len() as u64);
    assert_eq!(n("nat_in_packets"), flows.len() as u64);
    assert_eq!(
        n("nat_out_packets"),
        flows.iter().filter(|f| f.reply_queue.is_some()).count() as u64
    );
    assert_eq!(n("garp_sent"), 3);
    assert_eq!(n("arp_replies_sent"), 1);
    assert_eq!(n("arp_requests_sent"), 1);
    assert_eq!(n("arp_consumed"), 1, "the server's ARP reply");
    assert_eq!(n("icmp_echo_replies"), 1);

    let sc = &o.scenario;
    let rx: Vec<&Vec<u8>> = sc.client_in.iter().chain(&sc.server_in).flatten().collect();
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
    let len2 = |v: &[Vec<Vec<u8>>]| v[0].len() + v[1].len();
    assert_eq!(port("client")["ipackets"], len2(&sc.client_in));
    assert_eq!(port("server")["ipackets"], len2(&sc.server_in));
    assert_eq!(port("client")["opackets"], len2(&o.client_out));
    assert_eq!(port("server")["opackets"], len2(&o.server_out));
    assert!(o.stdout.contains("rvs: final counters"), "{}", o.stdout);
    assert!(
        o.stdout.contains("with 2 worker(s)"),
        "rvs did not run two workers:\n{}",
        o.stdout
    );
}

/// Two-worker case 6: worker 1 holds a SYN for a server without a static neighbour and asks by
/// ARP on its own tx queue; the answer arrives on worker 0's queue, worker 0 tells worker 1,
/// and worker 1 sends the held SYN to the MAC worker 0 learned.
#[test]
fn mw_neighbour_learned_by_one_worker_releases_the_held_syn() {
    let o = mw_outcome();
    let request = ArpFrame {
        eth_dst: BROADCAST,
        eth_src: SERVER_PORT_MAC,
        arp: Arp::request(SERVER_PORT_MAC, SERVER_PORT_ADDR, SRV14),
    };
    let requests = |frames: &[Vec<u8>]| -> Vec<usize> {
        frames
            .iter()
            .enumerate()
            .filter(|(_, f)| arp_frame(f).is_some_and(|a| a.arp.tpa == SRV14))
            .map(|(i, _)| i)
            .collect()
    };
    assert_eq!(
        requests(&o.server_out[0]),
        Vec::<usize>::new(),
        "worker 0 never asked"
    );
    let at = requests(&o.server_out[1]);
    assert_eq!(at.len(), 1, "one ARP request for .14, from worker 1");
    assert_eq!(arp_frame(&o.server_out[1][at[0]]).unwrap(), request);

    mw_check_forwarded(o, &MW_LATE);
    let syn_at = o.server_out[1]
        .iter()
        .position(|f| ip_id(f) == Some(MW_LATE.id))
        .unwrap();
    assert!(
        at[0] < syn_at,
        "the SYN was held until the ARP reply, not sent before the request"
    );
    let late = service(&o.stats, "late");
    assert_eq!(late["counters"]["conns"], 1);
    assert_eq!(late["servers"][0]["counters"]["pkts_in"], 1);
    // Worker 1's resolution completed through worker 0's message.
    assert_eq!(o.stats["counters"]["neigh_resolved"], 1);
}

/// Everything: each tx queue of each port sent exactly the frames expected. ARP and ICMP are
/// answered by the worker that read them, on its own tx queue.
#[test]
fn mw_output_is_exactly_what_is_expected() {
    let o = mw_outcome();
    let ip = |id: u16| format!("ip {id:#06x}");
    let arp = |op: u16, spa: Ip, tpa: Ip| {
        format!("arp {op} {}>{}", Ipv4Addr::from(spa), Ipv4Addr::from(tpa))
    };
    let mut client: [Vec<String>; 2] = [
        vec![
            arp(1, CLIENT_PORT_ADDR, CLIENT_PORT_ADDR),
            arp(1, VIP, VIP),
            ip(ID_MW_PING),
        ],
        vec![arp(2, VIP, MW_ARP_FROM)],
    ];
    let mut server: [Vec<String>; 2] = [
        vec![arp(1, SERVER_PORT_ADDR, SERVER_PORT_ADDR)],
        vec![arp(1, SERVER_PORT_ADDR, SRV14)],
    ];
    for f in mw_flows() {
        server[f.owner].push(ip(f.id));
        if f.reply_queue.is_some() {
            client[f.owner].push(ip(f.id + 1));
        }
    }
    for w in 0..2 {
        let got = |v: &[Vec<u8>]| sorted(v.iter().map(|f| mw_label(f)).collect());
        assert_eq!(
            got(&o.client_out[w]),
            sorted(client[w].clone()),
            "client port, tx queue {w}"
        );
        assert_eq!(
            got(&o.server_out[w]),
            sorted(server[w].clone()),
            "server port, tx queue {w}"
        );
    }

    // The ping from a client of worker 1, read by worker 0, answered by worker 0.
    let req = ip_frame(o.scenario.client_in[0].last().unwrap());
    let f = mw_only_in(&o.client_out, 0, ID_MW_PING);
    assert_eq!(
        (f.eth_src, f.eth_dst),
        (CLIENT_PORT_MAC, mw_client_mac(MW_PING_FROM))
    );
    assert_eq!(
        (f.src, f.dst, f.proto, f.icmp_type),
        (VIP, MW_PING_FROM, proto::ICMP, 0)
    );
    assert_eq!(f.payload[4..], req.payload[4..]);
    // The ARP request from a client of worker 0, read by worker 1, answered by worker 1.
    let replies: Vec<ArpFrame> = o.client_out[1]
        .iter()
        .filter_map(|f| arp_frame(f))
        .collect();
    let mac = mw_client_mac(MW_ARP_FROM);
    assert_eq!(
        replies,
        vec![ArpFrame {
            eth_dst: mac,
            eth_src: CLIENT_PORT_MAC,
            arp: Arp::reply(CLIENT_PORT_MAC, VIP, mac, MW_ARP_FROM),
        }]
    );
}
