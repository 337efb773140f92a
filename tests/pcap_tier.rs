#![cfg(feature = "dpdk-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The pcap tier: the real `rvs` binary on two DPDK `net_pcap` vdevs, fed from pcap files and
//! judged by the pcap files it writes and by its `--stats-file` counters. Run as root:
//! `cargo test --release --features dpdk-tests,lab-tests --test pcap_tier -- --test-threads=1`.
//!
//! One rvs run serves every single-worker test (each run costs a couple of seconds of EAL
//! start-up and stats interval): the first test to ask builds the input pcaps, runs rvs until
//! its `rx_packets` counter equals the number of input frames, stops it with SIGTERM and keeps
//! what came out.
//! Each `#[test]` then checks one behaviour of that run. A second run, with two workers and two
//! queues per port, serves the `mw_*` tests: the test puts each frame on the queue it chooses
//! and checks handover between workers (see "The two-worker run" below for its layout and
//! ordering argument). A third run, two workers with a DR, a TUN and a NAT service on one VIP,
//! serves the `fwd_*` tests (every input frame on worker 0's queues; the DR and TUN flows belong
//! to worker 1, so they are handed over and leave on worker 1's tx queues): DR and TUN output, "fragmentation needed" for datagrams too big
//! for the tunnel, replies refused for DR/TUN flows, ICMP errors translated for NAT flows. Its
//! output is also decoded by `tshark` (Wireshark's dissectors, an independent decoder), which
//! must be installed (`scripts/deps.sh` does it).
//!
//! What this tier relies on, found by running DPDK 22.11's pcap PMD:
//! - `net_pcap` ports get the MAC `02:70:63:61:70:<n>` ("\x02pcap" and a per-process counter
//!   of created pcap devices), so `net_pcap0` is `..:00` and `net_pcap1` is `..:01`. The run
//!   checks rvs's start-up line against these before trusting anything else.
//! - `rx_pcap` hands out frames as fast as `rx_burst` asks and then nothing; the `tx_pcap` file
//!   is complete once rvs has closed its ports, and is written with nanosecond timestamps.
//! - Ordering between the two input files: the worker polls the client port, then the server
//!   port, in every loop iteration, so a reply in the server file can only overtake the client
//!   frame that opens its flow if that frame sits further back in the client file than the
//!   reply does in the server file (in bursts). The flow-opening frames are among the first ten
//!   of the client file and every reply follows 40 frames for another MAC in the server file,
//!   so each reply is read at least one burst after its flow exists. If this ever broke, the
//!   reply would be dropped as `no_service` and the exact drop and output checks would say so.

#[path = "common/pcap.rs"]
mod pcap;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use serde_json::Value;

use pcap::{checksum, eth, hex, ones_sum, Run};

type Mac = [u8; 6];
type Ip = [u8; 4];

// ---------------------------------------------------------------------------------------------
// The lab: addresses, MACs, services.

/// `net_pcap0`'s MAC (the client port).
const CLIENT_PORT_MAC: Mac = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
/// `net_pcap1`'s MAC (the server port).
const SERVER_PORT_MAC: Mac = [0x02, 0x70, 0x63, 0x61, 0x70, 0x01];
const CLIENT_MAC: Mac = [0x02, 0, 0, 0, 0, 0x02];
const SRV11_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x11];
const SRV12_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x12];
const SRV13_MAC: Mac = [0x02, 0, 0, 0, 0x01, 0x13];
/// Nobody's MAC: frames to it must be dropped as `other_mac`.
const STRANGER_MAC: Mac = [0x02, 0, 0, 0, 0x99, 0x99];
const BROADCAST: Mac = [0xff; 6];

const CLIENT_PORT_ADDR: Ip = [203, 0, 113, 1];
const SERVER_PORT_ADDR: Ip = [198, 51, 100, 1];
const CLIENT: Ip = [203, 0, 113, 2];
const VIP: Ip = [203, 0, 113, 100];
const SRV11: Ip = [198, 51, 100, 11];
const SRV12: Ip = [198, 51, 100, 12];
const SRV13: Ip = [198, 51, 100, 13];

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

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_IPV6: u16 = 0x86dd;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

// ---------------------------------------------------------------------------------------------
// Frame builders (our own, so malformed frames are easy; etherparse judges what comes out).

fn fold_add(a: u32, b: u32) -> u32 {
    ones_sum(&[(a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8])
}

/// TCP/UDP checksum over the pseudo-header and `seg` (whose checksum field must be zero).
fn l4_checksum(src: Ip, dst: Ip, proto: u8, seg: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    !(fold_add(ones_sum(&pseudo), ones_sum(seg)) as u16)
}

/// An IPv4 datagram (no options, DF clear) with a correct header checksum.
fn ipv4(src: Ip, dst: Ip, proto: u8, ttl: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut d = vec![0x45, 0];
    d.extend_from_slice(&total.to_be_bytes());
    d.extend_from_slice(&id.to_be_bytes());
    d.extend_from_slice(&[0, 0, ttl, proto, 0, 0]);
    d.extend_from_slice(&src);
    d.extend_from_slice(&dst);
    fix_ip_checksum(&mut d);
    d.extend_from_slice(payload);
    d
}

fn fix_ip_checksum(d: &mut [u8]) {
    d[10] = 0;
    d[11] = 0;
    let ihl = usize::from(d[0] & 0x0f) * 4;
    let ck = checksum(&d[..ihl.max(20)]);
    d[10..12].copy_from_slice(&ck.to_be_bytes());
}

fn tcp(src: Ip, dst: Ip, sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut s = Vec::with_capacity(20);
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.extend_from_slice(&[0x50, flags]);
    s.extend_from_slice(&64240u16.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    let ck = l4_checksum(src, dst, PROTO_TCP, &s);
    s[16..18].copy_from_slice(&ck.to_be_bytes());
    s
}

/// A UDP datagram; `with_checksum` false sends checksum 0 ("none").
fn udp(src: Ip, dst: Ip, sport: u16, dport: u16, payload: &[u8], with_checksum: bool) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    if with_checksum {
        let ck = match l4_checksum(src, dst, PROTO_UDP, &s) {
            0 => 0xffff,
            ck => ck,
        };
        s[6..8].copy_from_slice(&ck.to_be_bytes());
    }
    s
}

/// A TCP segment from the client, in a frame to the client port.
fn client_tcp(dport: u16, sport: u16, id: u16, ttl: u8, flags: u8) -> Vec<u8> {
    let seg = tcp(CLIENT, VIP, sport, dport, 1000 + u32::from(sport), 0, flags);
    eth(
        CLIENT_PORT_MAC,
        CLIENT_MAC,
        ETH_IPV4,
        &ipv4(CLIENT, VIP, PROTO_TCP, ttl, id, &seg),
    )
}

fn arp_request(src_mac: Mac, sender: Ip, target: Ip) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    a.extend_from_slice(&src_mac);
    a.extend_from_slice(&sender);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target);
    eth(BROADCAST, src_mac, ETH_ARP, &a)
}

fn echo_request(dst: Ip, id: u16) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0x42, 0x42, 0, 7];
    m.extend_from_slice(b"rvs pcap tier ping");
    let ck = checksum(&m);
    m[2..4].copy_from_slice(&ck.to_be_bytes());
    eth(
        CLIENT_PORT_MAC,
        CLIENT_MAC,
        ETH_IPV4,
        &ipv4(CLIENT, dst, PROTO_ICMP, 64, id, &m),
    )
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
            let s = udp(CLIENT, SRV13, U3_CPORT, 5353, p, false);
            l4_checksum(CLIENT, SRV13, PROTO_UDP, &s) == 0
        })
        .expect("some 16-bit word zeroes the checksum")
}

// ---------------------------------------------------------------------------------------------
// The scenario: what goes in, with a name for each malformed frame and its expected drop.

struct Scenario {
    client_in: Vec<Vec<u8>>,
    server_in: Vec<Vec<u8>>,
    /// (what, the frame as sent, the drop reason expected).
    bad: Vec<(&'static str, Vec<u8>, &'static str)>,
}

fn scenario() -> Scenario {
    let mut c = vec![
        arp_request(CLIENT_MAC, CLIENT, VIP),
        arp_request(CLIENT_MAC, CLIENT, CLIENT_PORT_ADDR),
        // For an address that is not ours: learnt from, not answered.
        arp_request(CLIENT_MAC, CLIENT, [203, 0, 113, 50]),
        echo_request(VIP, ID_PING_VIP),
        echo_request(CLIENT_PORT_ADDR, ID_PING_PORT),
    ];
    // Every flow-opening frame comes early in the client file (see the module doc on ordering).
    let app_syn = tcp(CLIENT, VIP, APP_CPORT, 443, APP_ISN, 0, SYN);
    c.push(eth(
        CLIENT_PORT_MAC,
        CLIENT_MAC,
        ETH_IPV4,
        &ipv4(CLIENT, VIP, PROTO_TCP, 64, ID_APP_SYN, &app_syn),
    ));
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
        let u = udp(CLIENT, VIP, cport, 53, &payload, with_ck);
        c.push(eth(
            CLIENT_PORT_MAC,
            CLIENT_MAC,
            ETH_IPV4,
            &ipv4(CLIENT, VIP, PROTO_UDP, 64, id, &u),
        ));
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
    let f = client_tcp(80, 40006, ID_BAD + 6, 64, SYN);
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&ETH_VLAN.to_be_bytes());
    tagged.extend_from_slice(&7u16.to_be_bytes());
    tagged.extend_from_slice(&f[12..]);
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
        eth(CLIENT_PORT_MAC, CLIENT_MAC, ETH_IPV6, &v6),
        "ethertype",
    ));
    c.extend(bad.iter().map(|(_, f, _)| f.clone()));

    // Server side: 40 frames for somebody else first, so every reply is read at least two
    // bursts after the client frame that opened its flow.
    let mut s: Vec<Vec<u8>> = (0..JUNK_FRAMES)
        .map(|i| {
            let seg = tcp(SRV13, CLIENT, 9, 9, 0, 0, ACK);
            eth(
                STRANGER_MAC,
                SRV13_MAC,
                ETH_IPV4,
                &ipv4(SRV13, CLIENT, PROTO_TCP, 64, ID_JUNK + i, &seg),
            )
        })
        .collect();
    s.push(arp_request(SRV13_MAC, SRV13, SERVER_PORT_ADDR));
    let synack = tcp(
        SRV13,
        CLIENT,
        8443,
        APP_CPORT,
        APP_SERVER_ISN,
        APP_ISN + 1,
        SYN | ACK,
    );
    s.push(eth(
        SERVER_PORT_MAC,
        SRV13_MAC,
        ETH_IPV4,
        &ipv4(SRV13, CLIENT, PROTO_TCP, 64, ID_APP_SYNACK, &synack),
    ));
    for (id, cport, with_ck, payload) in [
        (ID_R1, U1_CPORT, true, &b"answer one"[..]),
        (ID_R2, U2_CPORT, false, &b"answer two, no checksum"[..]),
    ] {
        let u = udp(SRV13, CLIENT, 5353, cport, payload, with_ck);
        s.push(eth(
            SERVER_PORT_MAC,
            SRV13_MAC,
            ETH_IPV4,
            &ipv4(SRV13, CLIENT, PROTO_UDP, 64, id, &u),
        ));
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

impl Run {
    fn config(&self) -> String {
        let p = |n: &str| self.path(n).display().to_string();
        format!(
            r#"[eal]
args = ["-l", "0-1", "--no-huge", "-m", "256", "--file-prefix", "{prefix}", "--log-level", "*:warning"]

[stats]
interval_secs = 1

[[port]]
name = "client"
vdev = "net_pcap0,rx_pcap={ci},tx_pcap={co}"
address = "203.0.113.1/24"

[[port]]
name = "server"
vdev = "net_pcap1,rx_pcap={si},tx_pcap={so}"
address = "198.51.100.1/24"
{SERVICES}"#,
            prefix = self.prefix,
            ci = p("client-in.pcap"),
            co = p("client-out.pcap"),
            si = p("server-in.pcap"),
            so = p("server-out.pcap"),
        )
    }

    fn logs(&self) -> String {
        let out = std::fs::read_to_string(self.path("stdout.txt")).unwrap_or_default();
        let err = std::fs::read_to_string(self.path("stderr.txt")).unwrap_or_default();
        format!("--- rvs stdout ---\n{out}--- rvs stderr ---\n{err}")
    }

    fn stats(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.path("stats.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Run rvs over `sc`'s inputs until it has received every frame, stop it, collect.
    fn execute(mut self, sc: Scenario) -> Result<Outcome, String> {
        pcap::write(&self.path("client-in.pcap"), &sc.client_in).unwrap();
        pcap::write(&self.path("server-in.pcap"), &sc.server_in).unwrap();
        std::fs::write(self.path("rvs.toml"), self.config()).unwrap();
        let expected_rx = (sc.client_in.len() + sc.server_in.len()) as u64;
        let (stats, stdout) = self.run_to_completion(expected_rx)?;
        let read = |n: &str| pcap::read(&self.path(n)).map_err(|e| format!("{n}: {e}"));
        Ok(Outcome {
            client_out: read("client-out.pcap")?,
            server_out: read("server-out.pcap")?,
            scenario: sc,
            stats,
            stdout,
        })
    }

    /// Start rvs on the `rvs.toml` in the run's directory, wait until it has received
    /// `expected_rx` frames and every frame handed between workers was taken by its owner,
    /// stop it with SIGTERM, check the port MACs and return the final stats and stdout.
    fn run_to_completion(&mut self, expected_rx: u64) -> Result<(Value, String), String> {
        let child = Command::new(env!("CARGO_BIN_EXE_rvs"))
            .arg("run")
            .arg("--config")
            .arg(self.path("rvs.toml"))
            .arg("--stats-file")
            .arg(self.path("stats.json"))
            .stdin(Stdio::null())
            .stdout(File::create(self.path("stdout.txt")).unwrap())
            .stderr(File::create(self.path("stderr.txt")).unwrap())
            .spawn()
            .map_err(|e| format!("cannot start rvs: {e}"))?;
        let pid = child.id();
        self.child = Some(child);

        // Wait until every input frame has been received (the stats file is rewritten every
        // second; a worker publishes its counters after flushing the frames it sent) and, with
        // several workers, every handed-over frame was taken out of its owner's inbox (frames
        // still queued at SIGTERM would be freed uncounted).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = self.child.as_mut().unwrap().try_wait() {
                return Err(format!("rvs exited early ({st})\n{}", self.logs()));
            }
            let stats = self.stats();
            let counter = |k: &str| stats.as_ref().and_then(|v| v["counters"][k].as_u64());
            let rx = counter("rx_packets");
            let handed_all = counter("handover_out") == counter("handover_in");
            match rx {
                Some(n) if n == expected_rx && handed_all => break,
                Some(n) if n > expected_rx => {
                    return Err(format!(
                        "rvs received {n} frames but the pcaps hold {expected_rx}\n{}",
                        self.logs()
                    ))
                }
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "rvs did not receive all {expected_rx} frames within 15 s (last rx_packets {rx:?})\n{}",
                        self.logs()
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }

        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !killed.success() {
            return Err(format!("kill -TERM {pid} failed\n{}", self.logs()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "rvs did not stop within 10 s of SIGTERM (killed)\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            return Err(format!("rvs exited with {status}\n{}", self.logs()));
        }

        let stdout = std::fs::read_to_string(self.path("stdout.txt")).unwrap_or_default();
        for (name, mac) in [("client", CLIENT_PORT_MAC), ("server", SERVER_PORT_MAC)] {
            let want = format!("mac {}", mac_str(mac));
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("rvs: port {name} = ")));
            if !line.is_some_and(|l| l.contains(&want)) {
                return Err(format!(
                    "port {name}: expected the net_pcap MAC `{want}` (the input frames are built for it), got {line:?}\n{}",
                    self.logs()
                ));
            }
        }
        let stats = self
            .stats()
            .ok_or_else(|| format!("no readable final stats file\n{}", self.logs()))?;
        if stats["final"] != Value::Bool(true) {
            return Err(format!(
                "the stats file is not the final one: {stats}\n{}",
                self.logs()
            ));
        }
        Ok((stats, stdout))
    }
}

fn outcome() -> &'static Outcome {
    static RUN: OnceLock<Result<Outcome, String>> = OnceLock::new();
    match RUN.get_or_init(|| Run::new("pcap-tier", "main").execute(scenario())) {
        Ok(o) => o,
        Err(e) => panic!("the rvs run failed: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading what came out.

fn mac_str(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An IPv4 frame as etherparse reads it, after its checksums were verified.
#[derive(Debug)]
struct IpFrame {
    len: usize,
    eth_src: Mac,
    eth_dst: Mac,
    src: Ip,
    dst: Ip,
    ttl: u8,
    id: u16,
    total_len: u16,
    proto: u8,
    sport: u16,
    dport: u16,
    /// TCP/UDP checksum as sent.
    l4_checksum: u16,
    syn: bool,
    ack: bool,
    seq: u32,
    ack_no: u32,
    icmp_type: u8,
    payload: Vec<u8>,
}

/// Decode an IPv4 frame with etherparse and verify every checksum it carries (a UDP checksum
/// of 0 means "none" and is returned as is). Panics with the frame's bytes on any error.
fn ip_frame(f: &[u8]) -> IpFrame {
    let s = SlicedPacket::from_ethernet(f)
        .unwrap_or_else(|e| panic!("etherparse refuses {}: {e}", hex(f)));
    let Some(LinkSlice::Ethernet2(e)) = &s.link else {
        panic!("not Ethernet II: {}", hex(f))
    };
    let Some(NetSlice::Ipv4(ip)) = &s.net else {
        panic!("not IPv4: {}", hex(f))
    };
    let h = ip.header();
    assert_eq!(
        h.to_header().calc_header_checksum(),
        h.header_checksum(),
        "IP header checksum of {}",
        hex(f)
    );
    let mut out = IpFrame {
        len: f.len(),
        eth_src: e.source(),
        eth_dst: e.destination(),
        src: h.source(),
        dst: h.destination(),
        ttl: h.ttl(),
        id: h.identification(),
        total_len: h.total_len(),
        proto: h.protocol().0,
        sport: 0,
        dport: 0,
        l4_checksum: 0,
        syn: false,
        ack: false,
        seq: 0,
        ack_no: 0,
        icmp_type: 0,
        payload: Vec::new(),
    };
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t
                .to_header()
                .calc_checksum_ipv4_raw(h.source(), h.destination(), t.payload())
                .unwrap();
            assert_eq!(want, t.checksum(), "TCP checksum of {}", hex(f));
            out.sport = t.source_port();
            out.dport = t.destination_port();
            out.l4_checksum = t.checksum();
            out.syn = t.syn();
            out.ack = t.ack();
            out.seq = t.sequence_number();
            out.ack_no = t.acknowledgment_number();
            out.payload = t.payload().to_vec();
        }
        Some(TransportSlice::Udp(u)) => {
            if u.checksum() != 0 {
                let want = u
                    .to_header()
                    .calc_checksum_ipv4_raw(h.source(), h.destination(), u.payload())
                    .unwrap();
                assert_eq!(want, u.checksum(), "UDP checksum of {}", hex(f));
            }
            out.sport = u.source_port();
            out.dport = u.destination_port();
            out.l4_checksum = u.checksum();
            out.payload = u.payload().to_vec();
        }
        Some(TransportSlice::Icmpv4(i)) => {
            assert_eq!(
                i.icmp_type().calc_checksum(i.payload()),
                i.checksum(),
                "ICMP checksum of {}",
                hex(f)
            );
            // Our own sum over the whole message must also come out as 0xffff.
            assert_eq!(ones_sum(i.slice()), 0xffff, "ICMP sum of {}", hex(f));
            out.icmp_type = i.type_u8();
            out.payload = i.slice().to_vec();
        }
        _ => panic!("no TCP, UDP or ICMP in {}", hex(f)),
    }
    out
}

/// An ARP frame's fields.
#[derive(Debug, PartialEq, Eq)]
struct ArpFrame {
    eth_dst: Mac,
    eth_src: Mac,
    op: u16,
    sha: Mac,
    spa: Ip,
    tha: Mac,
    tpa: Ip,
}

fn arp_frame(f: &[u8]) -> Option<ArpFrame> {
    if f.len() < 42 || f[12..14] != ETH_ARP.to_be_bytes() {
        return None;
    }
    assert_eq!(&f[14..20], &[0, 1, 8, 0, 6, 4], "ARP for Ethernet/IPv4");
    let mac = |at: usize| -> Mac { f[at..at + 6].try_into().unwrap() };
    let ip = |at: usize| -> Ip { f[at..at + 4].try_into().unwrap() };
    Some(ArpFrame {
        eth_dst: mac(0),
        eth_src: mac(6),
        op: u16::from_be_bytes([f[20], f[21]]),
        sha: mac(22),
        spa: ip(28),
        tha: mac(32),
        tpa: ip(38),
    })
}

fn is_ipv4(f: &[u8]) -> bool {
    f.len() >= 34 && f[12..14] == ETH_IPV4.to_be_bytes()
}

/// The IPv4 frame tagged `id` among `frames`; exactly one must be there.
fn by_id(frames: &[Vec<u8>], id: u16) -> IpFrame {
    let found: Vec<IpFrame> = frames
        .iter()
        .filter(|f| is_ipv4(f) && u16::from_be_bytes([f[18], f[19]]) == id)
        .map(|f| ip_frame(f))
        .collect();
    assert_eq!(found.len(), 1, "frames with IP id {id:#06x}: {found:?}");
    found.into_iter().next().unwrap()
}

/// A short label per output frame: `arp <op> <spa>` or `ip <id>`.
fn label(f: &[u8]) -> String {
    if let Some(a) = arp_frame(f) {
        format!("arp {} {}", a.op, Ipv4Addr::from(a.spa))
    } else if is_ipv4(f) {
        format!("ip {:#06x}", u16::from_be_bytes([f[18], f[19]]))
    } else {
        format!("other {}", hex(f))
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn service<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {stats}"))
}

fn input_frame(frames: &[Vec<u8>], id: u16) -> &[u8] {
    frames
        .iter()
        .find(|f| is_ipv4(f) && u16::from_be_bytes([f[18], f[19]]) == id)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
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
        (f.proto, f.syn, f.ack, f.seq),
        (PROTO_TCP, true, false, APP_ISN)
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
    assert!(f.syn && f.ack);
    assert_eq!((f.seq, f.ack_no), (APP_SERVER_ISN, APP_ISN + 1));

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
        assert_eq!((f.proto, f.ttl), (PROTO_UDP, 63));
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
        assert!(f.syn && !f.ack);
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
    let got: BTreeMap<String, u64> = drops
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, v)| *v != 0)
        .collect();
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
        if is_ipv4(f) {
            let id = u16::from_be_bytes([f[18], f[19]]);
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
        op: 1,
        sha: mac,
        spa: ip,
        tha: [0; 6],
        tpa: ip,
    };
    let reply = |mac: Mac, ip: Ip, to_mac: Mac, to_ip: Ip| ArpFrame {
        eth_dst: to_mac,
        eth_src: mac,
        op: 2,
        sha: mac,
        spa: ip,
        tha: to_mac,
        tpa: to_ip,
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
        assert_eq!((f.proto, f.icmp_type, f.ttl), (PROTO_ICMP, 0, 64));
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

    let ports = o.stats["ports"].as_array().unwrap();
    let port = |name: &str| ports.iter().find(|p| p["name"] == name).unwrap();
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

// =============================================================================================
// The two-worker run: `[workers] count = 2`, where the test decides which queue every frame
// arrives on.
//
// DPDK 22.11's `net_pcap` gives a port one rx queue per `rx_pcap=` argument and one tx queue per
// `tx_pcap=` argument, in argument order; rvs asks each port for 2 rx and 2 tx queues and
// worker w polls rx queue w and sends on tx queue w of both ports (worker 0 on the main lcore,
// worker 1 on lcore 1). The device has no RSS, so rvs warns and relies on software ownership:
// the owner of a TCP/UDP frame is `Sharding::new(2, 32).owner(client)`, and a frame read by the
// other worker is handed over. So: "client-in-<w>.pcap" is what worker w reads from the client
// port, "server-out-<w>.pcap" what worker w sent out of the server port, and so on.
//
// Ordering, which here spans two threads:
// - A flow's frames that both pass through one worker (both on the owner's queues, or both on
//   the other worker's queues and handed over in the same FIFO inbox, which has that worker as
//   its only producer) keep the single-worker argument: the opening frame is in the first rx
//   burst of its client queue, the client port is polled before the server port, and every
//   server queue starts with `MW_FILLERS` (> one burst) frames for another MAC.
// - The UDP flows open on the owner's queue and their reply arrives on the other worker's
//   queue. The owner reads the opening frame in its very first rx burst and takes handed-over
//   frames only after the rx step of a loop iteration, so the reply can never be processed
//   first, however the two threads are scheduled. (The opposite arrangement, opening frame
//   handed over and reply on the owner's queue, would race the two threads, so it is not used.)
// - The ARP case: worker 1 reads the SYN for 198.51.100.14 in its first rx burst, queues it and
//   sends an ARP request in that same iteration; worker 0 reads the reply (after the fillers)
//   and puts the neighbour into worker 1's inbox, which worker 1 reads only after its rx step.
//   So worker 1 holds the SYN before it can hear of the neighbour, whatever the timing. Were it
//   otherwise, worker 1 would learn the neighbour first and send the SYN without an ARP request,
//   and `mw_neighbour_learned_by_one_worker_releases_the_held_syn` would fail.

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

    fn request(&self) -> Vec<u8> {
        let seg = if self.proto == PROTO_TCP {
            tcp(self.client, VIP, self.cport, self.vport, MW_ISN, 0, SYN)
        } else {
            udp(
                self.client,
                VIP,
                self.cport,
                self.vport,
                &self.payload(false),
                true,
            )
        };
        eth(
            CLIENT_PORT_MAC,
            mw_client_mac(self.client),
            ETH_IPV4,
            &ipv4(self.client, VIP, self.proto, 64, self.id, &seg),
        )
    }

    fn reply(&self) -> Vec<u8> {
        let seg = if self.proto == PROTO_TCP {
            let (seq, ack) = (MW_SERVER_ISN, MW_ISN + 1);
            tcp(
                self.server,
                self.client,
                self.sport,
                self.cport,
                seq,
                ack,
                SYN | ACK,
            )
        } else {
            udp(
                self.server,
                self.client,
                self.sport,
                self.cport,
                &self.payload(true),
                true,
            )
        };
        eth(
            SERVER_PORT_MAC,
            SRV13_MAC,
            ETH_IPV4,
            &ipv4(self.server, self.client, self.proto, 64, self.id + 1, &seg),
        )
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
        (PROTO_UDP, _) => (53, SRV13, 5353),
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
const MW_LATE: MwFlow = mw_flow([203, 0, 113, 11], 1, PROTO_TCP, 31000, 1, None, 0x6001);
/// SYN and SYN-ACK both on the other worker's queues: both handed over.
const MW_HANDED_TCP: [MwFlow; 2] = [
    mw_flow([203, 0, 113, 2], 0, PROTO_TCP, 31001, 1, Some(1), 0x6010),
    mw_flow([203, 0, 113, 4], 1, PROTO_TCP, 31002, 0, Some(0), 0x6020),
];
/// SYN and SYN-ACK both on the owner's queues: no handover.
const MW_LOCAL_TCP: [MwFlow; 2] = [
    mw_flow([203, 0, 113, 3], 0, PROTO_TCP, 31003, 0, Some(0), 0x6030),
    mw_flow([203, 0, 113, 5], 1, PROTO_TCP, 31004, 1, Some(1), 0x6040),
];
/// Request on the owner's queue, reply on the other worker's: the reply is handed over.
const MW_UDP: [MwFlow; 2] = [
    mw_flow([203, 0, 113, 6], 0, PROTO_UDP, 5100, 0, Some(1), 0x6050),
    mw_flow([203, 0, 113, 10], 1, PROTO_UDP, 5101, 1, Some(0), 0x6060),
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
    client_in[1].push(arp_request(mw_client_mac(MW_ARP_FROM), MW_ARP_FROM, VIP));
    let mut ping = echo_request(VIP, ID_MW_PING);
    ping[6..12].copy_from_slice(&mw_client_mac(MW_PING_FROM));
    ping[14 + 12..14 + 16].copy_from_slice(&MW_PING_FROM);
    fix_ip_checksum(&mut ping[14..]);
    client_in[0].push(ping);

    for (q, frames) in server_in.iter_mut().enumerate() {
        for i in 0..MW_FILLERS {
            let seg = tcp(SRV13, CLIENT, 9, 9, 0, 0, ACK);
            let id = ID_MW_FILLER + (q as u16) * MW_FILLERS + i;
            frames.push(eth(
                STRANGER_MAC,
                SRV13_MAC,
                ETH_IPV4,
                &ipv4(SRV13, CLIENT, PROTO_TCP, 64, id, &seg),
            ));
        }
    }
    // The server's answer to worker 1's ARP request, on worker 0's queue.
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4, 0, 2];
    a.extend_from_slice(&SRV14_MAC);
    a.extend_from_slice(&SRV14);
    a.extend_from_slice(&SERVER_PORT_MAC);
    a.extend_from_slice(&SERVER_PORT_ADDR);
    server_in[0].push(eth(SERVER_PORT_MAC, SRV14_MAC, ETH_ARP, &a));
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
    client_out: [Vec<Vec<u8>>; 2],
    server_out: [Vec<Vec<u8>>; 2],
    stats: Value,
    stdout: String,
}

impl Run {
    fn mw_config(&self) -> String {
        let p = |n: &str| self.path(n).display().to_string();
        let vdev = |n: usize, side: &str| {
            format!(
                "net_pcap{n},rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
                p(&format!("{side}-in-0.pcap")),
                p(&format!("{side}-in-1.pcap")),
                p(&format!("{side}-out-0.pcap")),
                p(&format!("{side}-out-1.pcap")),
            )
        };
        format!(
            r#"[eal]
args = ["-l", "0-1", "--no-huge", "-m", "256", "--file-prefix", "{prefix}", "--log-level", "*:warning"]

[stats]
interval_secs = 1

[[port]]
name = "client"
vdev = "{cv}"
address = "203.0.113.1/24"

[[port]]
name = "server"
vdev = "{sv}"
address = "198.51.100.1/24"
{MW_SERVICES}"#,
            prefix = self.prefix,
            cv = vdev(0, "client"),
            sv = vdev(1, "server"),
        )
    }

    fn execute_mw(mut self, sc: MwScenario) -> Result<MwOutcome, String> {
        for q in 0..2 {
            pcap::write(&self.path(&format!("client-in-{q}.pcap")), &sc.client_in[q]).unwrap();
            pcap::write(&self.path(&format!("server-in-{q}.pcap")), &sc.server_in[q]).unwrap();
        }
        std::fs::write(self.path("rvs.toml"), self.mw_config()).unwrap();
        let expected_rx = sc
            .client_in
            .iter()
            .chain(&sc.server_in)
            .map(Vec::len)
            .sum::<usize>();
        let (stats, stdout) = self.run_to_completion(expected_rx as u64)?;
        for name in ["client", "server"] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("rvs: port {name} = ")))
                .unwrap_or_default();
            if !line.contains(", 2 queue(s),") {
                return Err(format!(
                    "port {name}: not 2 queues: {line}\n{}",
                    self.logs()
                ));
            }
        }
        let read = |n: String| pcap::read(&self.path(&n)).map_err(|e| format!("{n}: {e}"));
        Ok(MwOutcome {
            client_out: [
                read("client-out-0.pcap".into())?,
                read("client-out-1.pcap".into())?,
            ],
            server_out: [
                read("server-out-0.pcap".into())?,
                read("server-out-1.pcap".into())?,
            ],
            scenario: sc,
            stats,
            stdout,
        })
    }
}

fn mw_outcome() -> &'static MwOutcome {
    static RUN: OnceLock<Result<MwOutcome, String>> = OnceLock::new();
    match RUN.get_or_init(|| Run::new("pcap-tier", "two-workers").execute_mw(mw_scenario())) {
        Ok(o) => o,
        Err(e) => panic!("the two-worker rvs run failed: {e}"),
    }
}

/// How many frames tagged `id` each of the two files holds.
fn mw_count(files: &[Vec<Vec<u8>>; 2], id: u16) -> [usize; 2] {
    let count = |frames: &[Vec<u8>]| {
        frames
            .iter()
            .filter(|f| is_ipv4(f) && u16::from_be_bytes([f[18], f[19]]) == id)
            .count()
    };
    [count(&files[0]), count(&files[1])]
}

/// The frame tagged `id`, which must be in `files[w]` exactly once and nowhere else.
fn mw_only_in(files: &[Vec<Vec<u8>>; 2], w: usize, id: u16) -> IpFrame {
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
            a.op,
            Ipv4Addr::from(a.spa),
            Ipv4Addr::from(a.tpa)
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
    if f.proto == PROTO_TCP {
        assert_eq!((out.syn, out.ack, out.seq), (true, false, MW_ISN), "{what}");
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
    if f.proto == PROTO_TCP {
        assert!(out.syn && out.ack, "{what}");
        assert_eq!((out.seq, out.ack_no), (MW_SERVER_ISN, MW_ISN + 1), "{what}");
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

    let drops: BTreeMap<String, u64> = o.stats["drops"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, v)| *v != 0)
        .collect();
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
    let ports = o.stats["ports"].as_array().unwrap();
    let port = |name: &str| ports.iter().find(|p| p["name"] == name).unwrap();
    let len2 = |v: &[Vec<Vec<u8>>; 2]| v[0].len() + v[1].len();
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
        op: 1,
        sha: SERVER_PORT_MAC,
        spa: SERVER_PORT_ADDR,
        tha: [0; 6],
        tpa: SRV14,
    };
    let requests = |frames: &[Vec<u8>]| -> Vec<usize> {
        frames
            .iter()
            .enumerate()
            .filter(|(_, f)| arp_frame(f).is_some_and(|a| a.tpa == SRV14))
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
        .position(|f| is_ipv4(f) && u16::from_be_bytes([f[18], f[19]]) == MW_LATE.id)
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
        (VIP, MW_PING_FROM, PROTO_ICMP, 0)
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
            op: 2,
            sha: CLIENT_PORT_MAC,
            spa: VIP,
            tha: mac,
            tpa: MW_ARP_FROM,
        }]
    );
}

// =============================================================================================
// The forwarding-methods run: two workers (`[workers] count = 2`, as the tier's issue requires
// of every forwarding method), three services on the VIP, one per forwarding method (`dr` on
// port 80, `tun` on 443, `nat` on 8000), and the server port's MTU set to 1400 so that the
// tunnel's 20 bytes make a "too big" datagram cheap. TUN output is also read by tshark, an
// independent decoder, as the tier's issue requires.
//
// Queues, as in the two-worker run: each port has two rx pcaps and two tx pcaps, worker w reads
// rx queue w and sends on tx queue w. Every input frame is in the queue-0 files
// ("client-in-0.pcap", "server-in-0.pcap"); the queue-1 rx files are empty. The NAT flow's
// client (`CLIENT`) is owned by worker 0, so that flow and its ICMP errors stay on worker 0
// exactly as in a one-worker run. The DR and TUN client (`FWD_W1_CLIENT`) is owned by worker 1:
// worker 0 hands each of its frames (and the servers' refused replies to it) over, and worker 1
// forwards them out of its own tx queues, so DR and TUN output is in "server-out-1.pcap" and
// the "fragmentation needed" in "client-out-1.pcap".
//
// Ordering on worker 0, as in the single-worker run: every flow-opening frame is among the
// first eight of the client file, and every server-side frame follows `FWD_FILLERS` (> one
// burst) frames for another MAC, so it is read at least one loop iteration after the flows
// exist. The client-side ICMP error (case a) quotes the SYN-ACK as rvs sent it, so it must come
// after that SYN-ACK: it sits behind `FWD_CLIENT_FILLERS` more frames for another MAC at index
// >= 64, i.e. in the client port's third burst or later, while the SYN-ACK is in the server
// port's second burst (indices 32..63) and the worker reads the client port before the server
// port in each iteration. If bursts ever came back shorter, case (a) would still find the flow
// (the SYN is earlier in the same file); only the realism of the order would suffer.
//
// Ordering on worker 1: everything it sees comes through its handover inbox, a FIFO whose only
// producer here is worker 0. Worker 0 hands the DR and TUN client frames over in the iteration
// that reads its first client burst, and the refused replies in a later one (they follow the
// fillers in the server file), so worker 1 has made both flows before it looks at any reply,
// however the threads are scheduled. Were it otherwise, a reply would find no flow and be
// dropped as `no_service`, not `unexpected_reply`, and the exact drop check would say so.

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
const ICMP_UNREACH: u8 = 3;
const CODE_PORT_UNREACH: u8 = 3;
const CODE_FRAG_NEEDED: u8 = 4;
const PROTO_IPIP: u8 = 4;

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

/// A TCP segment carrying `payload`, checksum filled.
#[allow(clippy::too_many_arguments)]
fn tcp_with(
    src: Ip,
    dst: Ip,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut s = tcp(src, dst, sport, dport, seq, ack, flags);
    s[16..18].copy_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    let ck = l4_checksum(src, dst, PROTO_TCP, &s);
    s[16..18].copy_from_slice(&ck.to_be_bytes());
    s
}

/// `d` (an IPv4 datagram) with DF set and its header checksum refilled.
fn with_df(mut d: Vec<u8>) -> Vec<u8> {
    d[6] |= 0x40;
    fix_ip_checksum(&mut d);
    d
}

/// An ICMP error message quoting `quote`, checksum filled.
fn icmp_msg(msg_type: u8, code: u8, rest: u32, quote: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quote);
    let ck = checksum(&m);
    m[2..4].copy_from_slice(&ck.to_be_bytes());
    m
}

/// The client's datagrams of the forwarding-methods run, as IPv4 (the frames wrap them).
fn dr_syn() -> Vec<u8> {
    let seg = tcp(FWD_W1_CLIENT, VIP, DR_CPORT, DR_VPORT, FWD_ISN, 0, SYN);
    with_df(ipv4(FWD_W1_CLIENT, VIP, PROTO_TCP, DR_TTL, ID_DR_SYN, &seg))
}

fn dr_data() -> Vec<u8> {
    let seg = tcp_with(
        FWD_W1_CLIENT,
        VIP,
        DR_CPORT,
        DR_VPORT,
        FWD_ISN + 1,
        FWD_SERVER_ISN + 1,
        ACK | 0x08,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    // Without DF: DR copies nothing, so the flag must simply survive as it is.
    ipv4(FWD_W1_CLIENT, VIP, PROTO_TCP, 9, ID_DR_DATA, &seg)
}

/// A TUN segment of the established flow, `total` bytes of IPv4 in all.
fn tun_segment(id: u16, total: usize, df: bool) -> Vec<u8> {
    let payload: Vec<u8> = (0..total - 40).map(|i| i as u8).collect();
    let seg = tcp_with(
        FWD_W1_CLIENT,
        VIP,
        TUN_CPORT,
        TUN_VPORT,
        FWD_ISN + 1 + u32::from(id),
        FWD_SERVER_ISN + 1,
        ACK,
        &payload,
    );
    let d = ipv4(FWD_W1_CLIENT, VIP, PROTO_TCP, TUN_TTL, id, &seg);
    assert_eq!(d.len(), total);
    if df {
        with_df(d)
    } else {
        d
    }
}

/// Every TUN datagram the client sends: (id, datagram). SYN (DF); a small segment without DF
/// (its outer header must not get DF); one of exactly MTU - 20 bytes (outer = MTU: fits); one
/// byte more with DF (frag-needed) and without (silently too big).
fn tun_datagrams() -> Vec<(u16, Vec<u8>)> {
    let seg = tcp(FWD_W1_CLIENT, VIP, TUN_CPORT, TUN_VPORT, FWD_ISN, 0, SYN);
    let mtu = usize::from(FWD_TUN_MTU);
    vec![
        (
            ID_TUN_SYN,
            with_df(ipv4(
                FWD_W1_CLIENT,
                VIP,
                PROTO_TCP,
                TUN_TTL,
                ID_TUN_SYN,
                &seg,
            )),
        ),
        (ID_TUN_NODF, tun_segment(ID_TUN_NODF, 100, false)),
        (ID_TUN_FIT, tun_segment(ID_TUN_FIT, mtu, true)),
        (ID_TUN_BIG_DF, tun_segment(ID_TUN_BIG_DF, mtu + 1, true)),
        (ID_TUN_BIG, tun_segment(ID_TUN_BIG, mtu + 1, false)),
    ]
}

fn nat_syn_seg(dst: Ip, dport: u16) -> Vec<u8> {
    tcp(CLIENT, dst, NAT_CPORT, dport, FWD_ISN, 0, SYN)
}

fn nat_synack_seg(src: Ip, sport: u16) -> Vec<u8> {
    tcp(
        src,
        CLIENT,
        sport,
        NAT_CPORT,
        FWD_SERVER_ISN,
        FWD_ISN + 1,
        SYN | ACK,
    )
}

/// The NAT SYN as the client sends it and as rvs must forward it (to the server, TTL - 1).
fn nat_syn(forwarded: bool) -> Vec<u8> {
    if forwarded {
        ipv4(
            CLIENT,
            SRV13,
            PROTO_TCP,
            63,
            ID_NAT_SYN,
            &nat_syn_seg(SRV13, NAT_SPORT),
        )
    } else {
        ipv4(
            CLIENT,
            VIP,
            PROTO_TCP,
            64,
            ID_NAT_SYN,
            &nat_syn_seg(VIP, NAT_VPORT),
        )
    }
}

/// The NAT SYN-ACK as the server sends it and as rvs must send it on (from the VIP, TTL - 1).
fn nat_synack(forwarded: bool) -> Vec<u8> {
    if forwarded {
        ipv4(
            VIP,
            CLIENT,
            PROTO_TCP,
            63,
            ID_NAT_SYNACK,
            &nat_synack_seg(VIP, NAT_VPORT),
        )
    } else {
        ipv4(
            SRV13,
            CLIENT,
            PROTO_TCP,
            64,
            ID_NAT_SYNACK,
            &nat_synack_seg(SRV13, NAT_SPORT),
        )
    }
}

/// Case (a): a router on the client side reports "fragmentation needed" about the SYN-ACK as
/// rvs sent it (VIP:8000 -> client), quoting all of it (header and 20 TCP bytes).
fn icmp_a() -> Vec<u8> {
    let m = icmp_msg(
        ICMP_UNREACH,
        CODE_FRAG_NEEDED,
        u32::from(ICMP_A_MTU),
        &nat_synack(true),
    );
    ipv4(CLIENT_ROUTER, VIP, PROTO_ICMP, 64, ID_ICMP_A, &m)
}

/// Case (b): the server reports "port unreachable" about the SYN as rvs forwarded it.
fn icmp_b() -> Vec<u8> {
    let m = icmp_msg(ICMP_UNREACH, CODE_PORT_UNREACH, 0, &nat_syn(true));
    ipv4(SRV13, CLIENT, PROTO_ICMP, 64, ID_ICMP_B, &m)
}

fn filler(id: u16, src_mac: Mac) -> Vec<u8> {
    let seg = tcp(SRV13, CLIENT, 9, 9, 0, 0, ACK);
    eth(
        STRANGER_MAC,
        src_mac,
        ETH_IPV4,
        &ipv4(SRV13, CLIENT, PROTO_TCP, 64, id, &seg),
    )
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
    let from_client = |d: Vec<u8>| eth(CLIENT_PORT_MAC, CLIENT_MAC, ETH_IPV4, &d);
    let from_w1_client = |d: Vec<u8>| eth(CLIENT_PORT_MAC, FWD_W1_CLIENT_MAC, ETH_IPV4, &d);
    let mut c = vec![from_w1_client(dr_syn()), from_w1_client(dr_data())];
    c.extend(tun_datagrams().into_iter().map(|(_, d)| from_w1_client(d)));
    c.push(from_client(nat_syn(false)));
    assert_eq!(c.len(), 8, "every flow-opening frame in the first burst");
    for i in 0..FWD_CLIENT_FILLERS {
        c.push(filler(ID_FWD_FILLER + i, CLIENT_MAC));
    }
    assert!(c.len() >= 64, "case (a) after two client bursts");
    c.push(eth(CLIENT_PORT_MAC, CLIENT_ROUTER_MAC, ETH_IPV4, &icmp_a()));

    let mut s: Vec<Vec<u8>> = (0..FWD_FILLERS)
        .map(|i| filler(ID_FWD_FILLER + 0x80 + i, SRV13_MAC))
        .collect();
    let from = |mac: Mac, d: Vec<u8>| eth(SERVER_PORT_MAC, mac, ETH_IPV4, &d);
    s.push(from(SRV13_MAC, nat_synack(false)));
    // DR and TUN servers must answer clients directly: replies through rvs are refused.
    let reply = |src: Ip, sport: u16, cport: u16, id: u16| {
        let seg = tcp(
            src,
            FWD_W1_CLIENT,
            sport,
            cport,
            FWD_SERVER_ISN,
            FWD_ISN + 1,
            SYN | ACK,
        );
        ipv4(src, FWD_W1_CLIENT, PROTO_TCP, 64, id, &seg)
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

/// One frame as tshark decodes it: each field's occurrences, outermost layer first.
#[derive(Debug)]
struct Decoded(BTreeMap<&'static str, Vec<String>>);

impl Decoded {
    fn get(&self, field: &str) -> Vec<&str> {
        self.0
            .get(field)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

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

/// Decode a pcap with tshark, every checksum check on (status 1 = good, 0 = bad,
/// 2 = unverified): one `Decoded` per frame, in file order.
fn tshark(path: &Path) -> Result<Vec<Decoded>, String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(path);
    cmd.args(["-T", "fields", "-E", "separator=,", "-E", "aggregator=;"]);
    cmd.args(["-E", "occurrence=a"]);
    for o in [
        "ip.check_checksum:TRUE",
        "tcp.check_checksum:TRUE",
        "udp.check_checksum:TRUE",
    ] {
        cmd.args(["-o", o]);
    }
    for f in TSHARK_FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run tshark (scripts/deps.sh installs it): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark -r {} failed: {}\n{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            if cols.len() != TSHARK_FIELDS.len() {
                return Err(format!("tshark line with {} columns: {line}", cols.len()));
            }
            Ok(Decoded(
                TSHARK_FIELDS
                    .iter()
                    .zip(cols)
                    .map(|(f, c)| {
                        let occ = c.split(';').filter(|s| !s.is_empty()).map(String::from);
                        (*f, occ.collect())
                    })
                    .collect(),
            ))
        })
        .collect()
}

struct FwdOutcome {
    scenario: FwdScenario,
    /// What worker w sent out of each port (its tx queue w): `client_out[w]`, `server_out[w]`.
    client_out: [Vec<Vec<u8>>; 2],
    server_out: [Vec<Vec<u8>>; 2],
    /// tshark's reading of each of those files, frame for frame.
    client_tshark: [Vec<Decoded>; 2],
    server_tshark: [Vec<Decoded>; 2],
    stats: Value,
    stdout: String,
}

impl Run {
    fn fwd_config(&self) -> String {
        let p = |n: &str| self.path(n).display().to_string();
        let vdev = |n: usize, side: &str| {
            format!(
                "net_pcap{n},rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
                p(&format!("{side}-in-0.pcap")),
                p(&format!("{side}-in-1.pcap")),
                p(&format!("{side}-out-0.pcap")),
                p(&format!("{side}-out-1.pcap")),
            )
        };
        format!(
            r#"[eal]
args = ["-l", "0-1", "--no-huge", "-m", "256", "--file-prefix", "{prefix}", "--log-level", "*:warning"]

[stats]
interval_secs = 1

[[port]]
name = "client"
vdev = "{cv}"
address = "203.0.113.1/24"

[[port]]
name = "server"
vdev = "{sv}"
address = "198.51.100.1/24"
mtu = {FWD_SERVER_MTU}
{FWD_SERVICES}"#,
            prefix = self.prefix,
            cv = vdev(0, "client"),
            sv = vdev(1, "server"),
        )
    }

    fn execute_fwd(mut self, sc: FwdScenario) -> Result<FwdOutcome, String> {
        // Every input frame on queue 0; the queue-1 rx files hold only the global header.
        pcap::write(&self.path("client-in-0.pcap"), &sc.client_in).unwrap();
        pcap::write(&self.path("server-in-0.pcap"), &sc.server_in).unwrap();
        pcap::write(&self.path("client-in-1.pcap"), &[]).unwrap();
        pcap::write(&self.path("server-in-1.pcap"), &[]).unwrap();
        std::fs::write(self.path("rvs.toml"), self.fwd_config()).unwrap();
        let expected_rx = (sc.client_in.len() + sc.server_in.len()) as u64;
        let (stats, stdout) = self.run_to_completion(expected_rx)?;
        for name in ["client", "server"] {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&format!("rvs: port {name} = ")))
                .unwrap_or_default();
            if !line.contains(", 2 queue(s),") {
                return Err(format!(
                    "port {name}: not 2 queues: {line}\n{}",
                    self.logs()
                ));
            }
        }
        let read = |n: &str| pcap::read(&self.path(n)).map_err(|e| format!("{n}: {e}"));
        let client_out = [read("client-out-0.pcap")?, read("client-out-1.pcap")?];
        let server_out = [read("server-out-0.pcap")?, read("server-out-1.pcap")?];
        let client_tshark = [
            tshark(&self.path("client-out-0.pcap"))?,
            tshark(&self.path("client-out-1.pcap"))?,
        ];
        let server_tshark = [
            tshark(&self.path("server-out-0.pcap"))?,
            tshark(&self.path("server-out-1.pcap"))?,
        ];
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
            stats,
            stdout,
        })
    }
}

fn fwd_outcome() -> &'static FwdOutcome {
    static RUN: OnceLock<Result<FwdOutcome, String>> = OnceLock::new();
    match RUN.get_or_init(|| Run::new("pcap-tier", "forwarding").execute_fwd(fwd_scenario())) {
        Ok(o) => o,
        Err(e) => panic!("the forwarding-methods rvs run failed: {e}"),
    }
}

fn is_ipip(f: &[u8]) -> bool {
    is_ipv4(f) && f[23] == PROTO_IPIP && f.len() >= 54
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
fn fwd_find(files: &[Vec<Vec<u8>>; 2], want: &str) -> (usize, usize) {
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

/// `d` as a router forwards it: TTL - 1, header checksum refilled, nothing else.
fn ttl_decremented(d: &[u8]) -> Vec<u8> {
    let mut d = d.to_vec();
    d[8] -= 1;
    fix_ip_checksum(&mut d);
    d
}

fn ip_str(a: Ip) -> String {
    Ipv4Addr::from(a).to_string()
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
    assert_eq!(h.protocol().0, PROTO_IPIP);
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
    let inner_frame = ip_frame(&eth(server_mac, SERVER_PORT_MAC, ETH_IPV4, inner));
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
        is_ipv4(f) && f[23] == PROTO_ICMP && f[34] == ICMP_UNREACH && f[35] == CODE_FRAG_NEEDED
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
    assert_eq!((p.proto, p.ttl, p.id), (PROTO_ICMP, 64, 0));
    assert_eq!(f[20] & 0x40, 0x40, "DF set on the error itself");
    assert_eq!(p.payload[..2], [ICMP_UNREACH, CODE_FRAG_NEEDED]);
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
    assert_eq!((p.proto, p.ttl), (PROTO_ICMP, 63));
    assert_eq!(p.payload[..2], [ICMP_UNREACH, CODE_FRAG_NEEDED]);
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
    let quote = ip_frame(&eth(SRV13_MAC, SERVER_PORT_MAC, ETH_IPV4, &p.payload[8..]));
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
    assert_eq!((p.proto, p.ttl), (PROTO_ICMP, 63));
    assert_eq!(p.payload[..2], [ICMP_UNREACH, CODE_PORT_UNREACH]);
    let mut want = nat_syn(false);
    want[8] = 63;
    fix_ip_checksum(&mut want);
    assert_eq!(
        p.payload[8..],
        want[..],
        "quote of (b), destination = VIP:port"
    );
    let quote = ip_frame(&eth(CLIENT_MAC, CLIENT_PORT_MAC, ETH_IPV4, &p.payload[8..]));
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

    let drops: BTreeMap<String, u64> = o.stats["drops"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, v)| *v != 0)
        .collect();
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
    let ports = o.stats["ports"].as_array().unwrap();
    let port = |name: &str| ports.iter().find(|p| p["name"] == name).unwrap();
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
