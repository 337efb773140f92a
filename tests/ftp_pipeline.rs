//! FTP helper, pure tier: a worker's pipeline and the slow path's helper wired together with
//! `Vec<u8>` frames, checked with an independent decoder (etherparse). Crafted control-stream
//! segments go through rvs exactly as a client's and a server's would, and the tests look at
//! what comes out: rewritten replies and commands, shifted sequence numbers, data connections
//! made from expectations, refusals counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/frames.rs"]
mod frames;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use frames::{parse_tcp, sack_option, tcp_flags, Ip, IpFrame, Mac, Tcp, ACK};
use rvs::config::Config;
use rvs::helper::ftp::ctl::Helper;
use rvs::helper::ftp::expect::Expectations;
use rvs::slowpath;
use rvs::stats::{Counter, DropReason, FtpCounter, Layout, LocalBlock};
use rvs::time::Instant;
use rvs::wire::MacAddr;
use rvs::worker::{Io, Pipeline, SlowMsg};

const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const PEER_C: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0x10];
const PEER_S1: [u8; 6] = [0x02, 0x55, 0, 0, 0, 0x11];
const CLIENT: [u8; 4] = [203, 0, 113, 10];
const S1: [u8; 4] = [198, 51, 100, 11];
/// VIPs whose dotted form is shorter than the servers': every 227 rewrite shrinks by 2 bytes.
const VIP_NAT: [u8; 4] = [203, 0, 113, 5];
const VIP_FNAT: [u8; 4] = [203, 0, 113, 6];
const VIP_DR: [u8; 4] = [203, 0, 113, 7];
const VIP_TUN: [u8; 4] = [203, 0, 113, 8];
const LADDR: [u8; 4] = [198, 51, 100, 2];

const CONFIG: &str = r#"
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

[[neighbor]]
port = "client"
ip = "203.0.113.10"
mac = "02:cc:00:00:00:10"

[[service]]
name = "ftp-nat"
protocol = "tcp"
vip = "203.0.113.5"
port = 21
scheduler = "rr"
[service.ftp]
control_ports = [21]
max_expectations_per_connection = 2
[[service.server]]
address = "198.51.100.11"
[[service.server]]
address = "198.51.100.12"

[[service]]
name = "ftp-fnat"
protocol = "tcp"
vip = "203.0.113.6"
port = 21
forward = "fnat"
local_addresses = ["198.51.100.2"]
[service.ftp]
control_ports = [21]
[[service.server]]
address = "198.51.100.11"

[[service]]
name = "ftp-dr"
protocol = "tcp"
vip = "203.0.113.7"
ports = ["21", "10000-10100"]
forward = "dr"
scheduler = "rr"
[service.ftp]
control_ports = [21]
[[service.server]]
address = "198.51.100.11"
[[service.server]]
address = "198.51.100.12"

[[service]]
name = "ftp-tun"
protocol = "tcp"
vip = "203.0.113.8"
ports = ["21", "10000-10100"]
forward = "tun"
scheduler = "rr"
[service.ftp]
control_ports = [21]
[[service.server]]
address = "198.51.100.11"
[[service.server]]
address = "198.51.100.12"
"#;

/// The worker and the slow path, in one test harness.
struct Rig {
    p: Pipeline<Vec<u8>>,
    helper: Helper,
    io: RigIo,
    now: Instant,
    /// Run the helper's timers after every frame (off: as if many frames came within one of
    /// the slow path's 10 ms poll intervals).
    poll_helper: bool,
}

#[derive(Default)]
struct RigIo {
    sent: Vec<(u16, Vec<u8>)>,
    slow: Vec<SlowMsg<Vec<u8>>>,
}

impl Io<Vec<u8>> for RigIo {
    fn alloc(&mut self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }
    fn send(&mut self, port: u16, buf: Vec<u8>) {
        self.sent.push((port, buf));
    }
    fn slow_path(&mut self, msg: SlowMsg<Vec<u8>>) -> Result<(), SlowMsg<Vec<u8>>> {
        self.slow.push(msg);
        Ok(())
    }
}

impl Rig {
    fn new() -> Rig {
        let cfg = Config::parse(CONFIG, Path::new("ftp-test.toml")).unwrap();
        let expect = Arc::new(Expectations::new(cfg.ftp.max_expectations));
        let mut p = Pipeline::new(&cfg, &[CLIENT_MAC, SERVER_MAC], 0, Instant::ZERO);
        p.set_expectations(Arc::clone(&expect));
        Rig {
            p,
            helper: Helper::new(&cfg, expect),
            io: RigIo::default(),
            now: Instant::from_secs(1),
            poll_helper: true,
        }
    }

    /// Put one frame through the worker and then the slow path; return what left rvs.
    fn put(&mut self, port: u16, frame: Vec<u8>) -> Vec<(u16, Vec<u8>)> {
        self.p.process(port, frame, self.now, &mut self.io);
        self.p.poll(self.now, &mut self.io);
        for msg in std::mem::take(&mut self.io.slow) {
            if let Some(ret) = slowpath::handle(&mut self.helper, msg, self.now, drop) {
                self.p.slow_path_returned(ret, self.now);
            }
            // One worker: nobody else to wait for.
            self.p.release_ordered(Instant::MAX, self.now, &mut self.io);
        }
        if self.poll_helper {
            self.helper.poll(self.now);
        }
        std::mem::take(&mut self.io.sent)
    }

    fn one(&mut self, port: u16, frame: Vec<u8>) -> IpFrame {
        let out = self.put(port, frame);
        assert_eq!(out.len(), 1, "one frame out, got {}", out.len());
        seg(&out[0].1)
    }

    fn ftp(&self, svc: usize, c: FtpCounter) -> u64 {
        let layout = self.p.layout();
        self.p.counters().get(layout.ftp(svc, c)) + self.helper.counters().get(layout.ftp(svc, c))
    }

    fn dropped(&self, r: DropReason) -> u64 {
        self.p.counters().get(Layout::drop(r)) + self.helper.counters().get(Layout::drop(r))
    }

    fn counter(&self, c: Counter) -> u64 {
        self.p.counters().get(Layout::counter(c))
    }
}

/// A decoded TCP segment, every checksum and length verified.
fn seg(frame: &[u8]) -> IpFrame {
    let s = parse_tcp(frame).unwrap_or_else(|e| panic!("{e}"));
    s.assert_valid("segment");
    s
}

/// A TCP segment on the wire. `flags`: S(YN) A(CK) F(IN) R(ST) P(SH); `ack` is sent only with
/// ACK; `sack` blocks, if any, in a SACK option.
#[allow(clippy::too_many_arguments)]
fn tcp(
    mac: (Mac, MacAddr),
    src: Ip,
    dst: Ip,
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: &str,
    payload: &[u8],
    sack: &[(u32, u32)],
) -> Vec<u8> {
    let flags = tcp_flags(flags);
    let t = Tcp {
        src,
        dst,
        sport: ports.0,
        dport: ports.1,
        seq,
        ack: if flags & ACK != 0 { ack } else { 0 },
        flags,
        options: if sack.is_empty() {
            Vec::new()
        } else {
            sack_option(sack)
        },
        payload: payload.to_vec(),
        ..Tcp::default()
    };
    t.frame(mac.0, mac.1 .0)
}

const C_ISN: u32 = 1_000;
const S_ISN: u32 = 50_000;
const CPORT: u16 = 40_000;

/// A control connection set up through rvs; returns the server it went to and the client's
/// and the server's next sequence numbers.
struct Ctl {
    vip: [u8; 4],
    server: Ip,
    /// Where the server sees the client (the client itself, or the local address in full NAT).
    peer: (Ip, u16),
    c_next: u32,
    s_next: u32,
}

fn client_seg(vip: [u8; 4], seq: u32, ack: u32, flags: &str, data: &[u8]) -> Vec<u8> {
    tcp(
        (PEER_C, CLIENT_MAC),
        CLIENT,
        vip,
        (CPORT, 21),
        seq,
        ack,
        flags,
        data,
        &[],
    )
}

fn server_seg(
    c: &Ctl,
    seq: u32,
    ack: u32,
    flags: &str,
    data: &[u8],
    sack: &[(u32, u32)],
) -> Vec<u8> {
    tcp(
        (PEER_S1, SERVER_MAC),
        c.server,
        c.peer.0,
        (21, c.peer.1),
        seq,
        ack,
        flags,
        data,
        sack,
    )
}

fn connect(r: &mut Rig, vip: [u8; 4]) -> Ctl {
    connect_isn(r, vip, S_ISN)
}

/// [`connect`] with the server's initial sequence number chosen (to cross 2^32).
fn connect_isn(r: &mut Rig, vip: [u8; 4], s_isn: u32) -> Ctl {
    let out = r.put(0, client_seg(vip, C_ISN, 0, "S", b""));
    assert_eq!(out.len(), 1);
    let mut syn = seg(&out[0].1);
    assert!(syn.syn);
    if vip == VIP_DR {
        // DR leaves the IP header alone: the server is told by the destination MAC.
        assert_eq!(syn.dst, VIP_DR);
        syn.dst = if out[0].1[5] == 0x11 {
            S1
        } else {
            [198, 51, 100, 12]
        };
    }
    let mut c = Ctl {
        vip,
        server: syn.dst,
        peer: (syn.src, syn.sport),
        c_next: C_ISN + 1,
        s_next: s_isn.wrapping_add(1),
    };
    if vip == VIP_DR {
        return c; // DR: the server answers the client directly.
    }
    let sa = r.one(1, server_seg(&c, s_isn, C_ISN + 1, "SA", b"", &[]));
    assert!(sa.syn);
    assert_eq!(sa.src, vip, "the client sees the VIP");
    let banner = b"220 rvs-srv\r\n";
    let b = r.one(1, server_seg(&c, c.s_next, c.c_next, "AP", banner, &[]));
    assert_eq!(b.payload, banner);
    c.s_next = c.s_next.wrapping_add(banner.len() as u32);
    c
}

/// The client sends a command line; returns what the server got.
fn command(r: &mut Rig, c: &mut Ctl, line: &[u8]) -> IpFrame {
    let s = r.one(0, client_seg(c.vip, c.c_next, c.s_next, "AP", line));
    c.c_next += line.len() as u32;
    s
}

/// The server sends a reply line; returns what the client got.
fn reply(r: &mut Rig, c: &mut Ctl, line: &[u8]) -> IpFrame {
    let s = r.one(1, server_seg(c, c.s_next, c.c_next, "AP", line, &[]));
    c.s_next += line.len() as u32;
    s
}

#[test]
fn nat_passive_227_is_rewritten_sequence_adjusted_and_opens_one_data_connection() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_NAT);
    assert_eq!(c.peer, (CLIENT, CPORT));
    let srv = c.server;
    let pasv = command(&mut r, &mut c, b"PASV\r\n");
    assert_eq!(pasv.payload, b"PASV\r\n");
    let before = c.s_next;
    let line = format!(
        "227 Entering Passive Mode ({},{},{},{},39,16).\r\n",
        srv[0], srv[1], srv[2], srv[3]
    );
    let got = reply(&mut r, &mut c, line.as_bytes());
    assert_eq!(
        got.payload,
        b"227 Entering Passive Mode (203,0,113,5,39,16).\r\n".to_vec()
    );
    assert_eq!(
        got.seq, before,
        "bytes before the change keep their numbers"
    );
    let delta = got.payload.len() as i64 - line.len() as i64;
    assert_eq!(delta, -2);
    assert_eq!(r.ftp(0, FtpCounter::Rewrites), 1);
    assert_eq!(r.ftp(0, FtpCounter::ExpectCreated), 1);

    // The next server segment is shifted; the client's ACK of it is shifted back.
    let next = reply(&mut r, &mut c, b"150 ok\r\n");
    assert_eq!(next.seq as i64, (c.s_next - 8) as i64 + delta);
    let acked = r.one(
        0,
        client_seg(c.vip, c.c_next, (c.s_next as i64 + delta) as u32, "A", b""),
    );
    assert_eq!(acked.ack, c.s_next, "the server sees its own numbering");
    // A retransmission of the rewritten reply is rewritten again, at its old number.
    let again = r.one(
        1,
        server_seg(&c, before, c.c_next, "AP", line.as_bytes(), &[]),
    );
    assert_eq!(again.payload, got.payload);
    assert_eq!(again.seq, before);
    // SACK edges from the client are mapped back too.
    let sacked = r.one(
        0,
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            VIP_NAT,
            (CPORT, 21),
            c.c_next,
            before,
            "A",
            b"",
            &[(
                (c.s_next as i64 - 8 + delta) as u32,
                (c.s_next as i64 + delta) as u32,
            )],
        ),
    );
    assert_eq!(sacked.ack, before);
    assert_eq!(sacked.sack, vec![(c.s_next - 8, c.s_next)]);

    // The data connection: client → VIP:10000 reaches the control connection's server.
    let syn = r.one(
        0,
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            VIP_NAT,
            (40_001, 10_000),
            7,
            0,
            "S",
            b"",
            &[],
        ),
    );
    assert_eq!((syn.dst, syn.dport), (c.server, 10_000));
    assert_eq!(r.counter(Counter::FtpDataFlows), 1);
    assert_eq!(r.ftp(0, FtpCounter::ExpectUsed), 1);
    // Single use: a second connection to that port is not expected.
    assert!(r
        .put(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_NAT,
                (40_002, 10_000),
                7,
                0,
                "S",
                b"",
                &[]
            )
        )
        .is_empty());
    assert_eq!(r.dropped(DropReason::NoService), 1);
}

#[test]
fn two_sessions_of_one_client_never_share_a_passive_vip_port() {
    let mut r = Rig::new();
    // Two control connections from the same client: rr puts them on different servers, and
    // both servers happen to pick passive port 10000.
    let mut servers = Vec::new();
    for (i, cport) in [40_000u16, 40_010].into_iter().enumerate() {
        let syn = r.one(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_NAT,
                (cport, 21),
                C_ISN,
                0,
                "S",
                b"",
                &[],
            ),
        );
        let srv = syn.dst;
        let from_server = |seq: u32, flags: &str, data: &[u8]| {
            tcp(
                (PEER_S1, SERVER_MAC),
                srv,
                CLIENT,
                (21, cport),
                seq,
                C_ISN + 1,
                flags,
                data,
                &[],
            )
        };
        r.one(1, from_server(S_ISN, "SA", b""));
        let line = format!(
            "227 Entering Passive Mode ({},{},{},{},39,16).\r\n",
            srv[0], srv[1], srv[2], srv[3]
        );
        let got = r.one(1, from_server(S_ISN + 1, "AP", line.as_bytes()));
        let text = String::from_utf8(got.payload).unwrap();
        let n: Vec<u16> = text[27..text.len() - 4]
            .split(',')
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(&n[..4], &[203, 0, 113, 5], "{text}");
        let vport = n[4] * 256 + n[5];
        if i == 0 {
            assert_eq!(vport, 10_000, "the first keeps the server's port");
        } else {
            assert_ne!(vport, 10_000, "the second gets another VIP port");
        }
        servers.push((syn.dst, vport));
    }
    assert_ne!(servers[0].0, servers[1].0);
    assert_eq!(r.ftp(0, FtpCounter::PortsTranslated), 1);
    // Each data connection reaches its own session's server, at the server's port.
    for (k, (server, vport)) in servers.iter().enumerate() {
        let syn = r.one(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_NAT,
                (41_000 + k as u16, *vport),
                7,
                0,
                "S",
                b"",
                &[],
            ),
        );
        assert_eq!((syn.dst, syn.dport), (*server, 10_000));
    }
}

#[test]
fn nat_policy_refusals_are_counted_and_the_line_goes_through() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_NAT);
    // PORT naming another host, a port below 1024, another family.
    for (line, counter) in [
        (
            &b"PORT 203,0,113,99,200,10\r\n"[..],
            FtpCounter::RefusedAddress,
        ),
        (b"PORT 203,0,113,10,0,21\r\n", FtpCounter::RefusedLowPort),
        (b"EPRT |2|2001:db8::1|5000|\r\n", FtpCounter::RefusedFamily),
        (b"PORT 1,2,3\r\n", FtpCounter::RefusedMalformed),
    ] {
        let got = command(&mut r, &mut c, line);
        assert_eq!(got.payload, line, "unchanged");
        assert_eq!(r.ftp(0, counter), 1, "{counter:?}");
    }
    // A 227 that names another host than the real server.
    let got = reply(&mut r, &mut c, b"227 =192,0,2,99,39,16\r\n");
    assert_eq!(got.payload, b"227 =192,0,2,99,39,16\r\n");
    assert_eq!(r.ftp(0, FtpCounter::RefusedServer), 1);
    assert_eq!(r.ftp(0, FtpCounter::ExpectCreated), 0);
    // The per-connection cap (2 in this config).
    for _ in 0..3 {
        command(&mut r, &mut c, b"PORT 203,0,113,10,200,10\r\n");
    }
    assert_eq!(r.ftp(0, FtpCounter::ExpectCreated), 2);
    assert_eq!(r.ftp(0, FtpCounter::RefusedConnCap), 1);
    // The control connection carried on throughout.
    let ok = command(&mut r, &mut c, b"NOOP\r\n");
    assert_eq!(ok.payload, b"NOOP\r\n");
}

#[test]
fn used_expectations_free_the_cap_before_the_slow_path_polls() {
    let mut r = Rig::new();
    r.poll_helper = false;
    let mut c = connect(&mut r, VIP_NAT);
    let srv = c.server;
    // Five passive transfers in a row within one poll interval, with a cap of 2.
    for k in 0..5u16 {
        let port = 10_000 + k;
        let line = format!(
            "227 ({},{},{},{},{},{})\r\n",
            srv[0],
            srv[1],
            srv[2],
            srv[3],
            port >> 8,
            port & 255
        );
        reply(&mut r, &mut c, line.as_bytes());
        let syn = r.one(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_NAT,
                (46_000 + k, port),
                7,
                0,
                "S",
                b"",
                &[],
            ),
        );
        assert_eq!((syn.dst, syn.dport), (c.server, port), "transfer {k}");
    }
    assert_eq!(r.ftp(0, FtpCounter::RefusedConnCap), 0);
    assert_eq!(r.counter(Counter::FtpDataFlows), 5);
}

#[test]
fn nat_active_port_lets_the_server_connect_back_as_the_vip() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_NAT);
    let got = command(&mut r, &mut c, b"PORT 203,0,113,10,200,10\r\n");
    assert_eq!(
        got.payload, b"PORT 203,0,113,10,200,10\r\n",
        "NAT leaves PORT alone"
    );
    let syn = r.one(
        1,
        tcp(
            (PEER_S1, SERVER_MAC),
            c.server,
            CLIENT,
            (20, 51_210),
            9,
            0,
            "S",
            b"",
            &[],
        ),
    );
    assert_eq!(
        (syn.src, syn.sport, syn.dst, syn.dport),
        (VIP_NAT, 20, CLIENT, 51_210)
    );
    // The client's answer goes back to the server.
    let sa = r.one(
        0,
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            VIP_NAT,
            (51_210, 20),
            100,
            10,
            "SA",
            b"",
            &[],
        ),
    );
    assert_eq!((sa.dst, sa.dport), (c.server, 20));
    // Ending the control connection revokes what is left (nothing here) and forgets it.
    r.now = r.now + Duration::from_secs(100_000);
    r.put(0, client_seg(VIP_NAT, 1, 0, "R", b""));
    assert_eq!(r.ftp(0, FtpCounter::ExpectUsed), 1);
}

/// Open an active-mode data connection for `c` through rvs: PORT, the server's SYN from :20 to
/// the client's `cport` (to `to` in full NAT), the client's SYN-ACK; then close it both ways.
/// Returns how the client saw the server's SYN.
fn active_round(r: &mut Rig, c: &mut Ctl, cport: u16, fnat: bool) -> IpFrame {
    let line = format!("PORT 203,0,113,10,{},{}\r\n", cport >> 8, cport & 255);
    let got = command(r, c, line.as_bytes());
    let to = if fnat {
        let t = String::from_utf8(got.payload).unwrap();
        let n: Vec<u16> = t[5..]
            .trim_end()
            .split(',')
            .map(|x| x.parse().unwrap())
            .collect();
        (LADDR, n[4] * 256 + n[5])
    } else {
        (CLIENT, cport)
    };
    let srv = c.server;
    let server = |flags: &str, seq: u32| {
        tcp(
            (PEER_S1, SERVER_MAC),
            srv,
            to.0,
            (20, to.1),
            seq,
            101,
            flags,
            b"",
            &[],
        )
    };
    let client = |flags: &str, seq: u32| {
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            c.vip,
            (cport, 20),
            seq,
            10,
            flags,
            b"",
            &[],
        )
    };
    let syn = r.one(1, server("S", 9));
    r.one(0, client("SA", 100));
    r.one(1, server("AF", 10));
    r.one(0, client("AF", 101));
    r.one(1, server("A", 11));
    syn
}

#[test]
fn active_data_connections_reusing_the_clients_port_replace_the_closed_flow() {
    for (vip, fnat) in [(VIP_NAT, false), (VIP_FNAT, true)] {
        let mut r = Rig::new();
        let mut c = connect(&mut r, vip);
        for round in 0..3 {
            let syn = active_round(&mut r, &mut c, 51_210, fnat);
            assert_eq!(
                (syn.src, syn.sport, syn.dst, syn.dport),
                (vip, 20, CLIENT, 51_210),
                "round {round}, fnat {fnat}"
            );
        }
        let svc = usize::from(fnat);
        assert_eq!(r.counter(Counter::FtpDataFlows), 3, "fnat {fnat}");
        assert_eq!(r.ftp(svc, FtpCounter::ExpectUsed), 3, "fnat {fnat}");
        assert_eq!(r.dropped(DropReason::FlowConflict), 0);
    }
}

#[test]
fn dr_active_mode_sends_the_clients_answer_to_the_control_server() {
    let mut r = Rig::new();
    for round in 0..2u16 {
        let mut c = connect(&mut r, VIP_DR);
        let cmd = b"PORT 203,0,113,10,200,10\r\n";
        let s = r.one(0, client_seg(VIP_DR, c.c_next, 1, "AP", cmd));
        c.c_next += cmd.len() as u32;
        assert_eq!(s.payload, cmd, "DR never rewrites");
        // The server connected from VIP:20 directly; the client's SYN-ACK comes to rvs.
        let out = r.put(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_DR,
                (51_210, 20),
                100 + u32::from(round),
                10,
                "SA",
                b"",
                &[],
            ),
        );
        assert_eq!(out.len(), 1, "round {round}");
        let want = if c.server == S1 { 0x11 } else { 0x12 };
        assert_eq!(
            out[0].1[5], want,
            "round {round}: to the control connection's server"
        );
        // A SYN-ACK from another port of the client opens nothing.
        assert!(r
            .put(
                0,
                tcp(
                    (PEER_C, CLIENT_MAC),
                    CLIENT,
                    VIP_DR,
                    (51_299, 20),
                    7,
                    10,
                    "SA",
                    b"",
                    &[]
                )
            )
            .is_empty());
        r.put(0, client_seg(VIP_DR, c.c_next, 1, "R", b""));
        // The client finishes the data connection (DR sees only its half).
        for flags in ["A", "AF"] {
            r.put(
                0,
                tcp(
                    (PEER_C, CLIENT_MAC),
                    CLIENT,
                    VIP_DR,
                    (51_210, 20),
                    101 + u32::from(round),
                    10,
                    flags,
                    b"",
                    &[],
                ),
            );
        }
    }
    assert_eq!(r.ftp(2, FtpCounter::ExpectUsed), 2);
}

/// The server a TUN frame is tunnelled to (the outer destination), after checking the inner
/// datagram is the client's, unchanged.
fn tunnelled_to(frame: &[u8]) -> Ipv4Addr {
    assert_eq!(frame[23], 4, "IP-in-IP");
    let inner = seg(&[&frame[..14], &frame[34..]].concat());
    assert_eq!(inner.dst, VIP_TUN);
    Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33])
}

#[test]
fn tun_control_streams_are_read_inside_the_tunnel_and_pin_passive_data() {
    let mut r = Rig::new();
    for round in 0..2u16 {
        let out = r.put(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_TUN,
                (CPORT + round, 21),
                C_ISN,
                0,
                "S",
                b"",
                &[],
            ),
        );
        assert_eq!(out.len(), 1);
        let server = tunnelled_to(&out[0].1);
        // The PASV goes through the slow path, which must find it inside the tunnel.
        let out = r.put(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_TUN,
                (CPORT + round, 21),
                C_ISN + 1,
                1,
                "AP",
                b"PASV\r\n",
                &[],
            ),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(tunnelled_to(&out[0].1), server);
        let data = r.put(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_TUN,
                (42_000 + round, 10_050),
                7,
                0,
                "S",
                b"",
                &[],
            ),
        );
        assert_eq!(data.len(), 1);
        assert_eq!(tunnelled_to(&data[0].1), server, "round {round}: pinned");
    }
    assert_eq!(r.ftp(3, FtpCounter::ExpectUsed), 2);
    assert_eq!(r.ftp(3, FtpCounter::Commands), 2);
}

#[test]
fn a_control_connection_outlives_its_busy_data_connection() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_NAT);
    let srv = c.server;
    let line = format!(
        "227 ({},{},{},{},39,16)\r\n",
        srv[0], srv[1], srv[2], srv[3]
    );
    reply(&mut r, &mut c, line.as_bytes());
    let data = |flags: &str, seq: u32| {
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            VIP_NAT,
            (45_000, 10_000),
            seq,
            1,
            flags,
            b"x",
            &[],
        )
    };
    r.one(0, data("S", 7));
    r.one(0, data("A", 8));
    // The data connection stays busy for an hour; the control connection says nothing. Its
    // own timeout (900 s established) would have ended it long ago.
    for k in 1..=8u32 {
        r.now = r.now + Duration::from_secs(450);
        r.one(0, data("A", 8 + k));
    }
    let after = command(&mut r, &mut c, b"NOOP\r\n");
    assert_eq!(
        after.payload, b"NOOP\r\n",
        "the control connection is still there"
    );
    // Once the data connection is gone too, the control connection lapses as usual.
    r.now = r.now + Duration::from_secs(3600);
    // Expiry is lazy and bounded per poll: let the timer wheel catch up with the hour.
    for _ in 0..64 {
        r.p.poll(r.now, &mut r.io);
    }
    assert_eq!(r.p.flows().len(), 0, "both connections lapsed");
    assert!(r
        .put(
            0,
            client_seg(VIP_NAT, c.c_next, c.s_next, "AP", b"NOOP\r\n")
        )
        .is_empty());
}

#[test]
fn a_dr_pin_is_not_taken_by_a_new_control_connection() {
    let mut r = Rig::new();
    let c = connect(&mut r, VIP_DR);
    let s = r.one(0, client_seg(VIP_DR, c.c_next, 1, "AP", b"PASV\r\n"));
    assert_eq!(s.payload, b"PASV\r\n");
    // A second control connection from the same client: scheduled, not pinned.
    r.put(
        0,
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            VIP_DR,
            (40_500, 21),
            5,
            0,
            "S",
            b"",
            &[],
        ),
    );
    assert_eq!(r.counter(Counter::FtpDataFlows), 0);
    assert_eq!(r.ftp(2, FtpCounter::ExpectUsed), 0);
}

#[test]
fn fnat_active_port_is_rewritten_to_a_local_address_and_mapped_back() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_FNAT);
    assert_eq!(c.peer.0, LADDR);
    let line = b"PORT 203,0,113,10,200,10\r\n";
    let got = command(&mut r, &mut c, line);
    let text = String::from_utf8(got.payload.clone()).unwrap();
    let nums: Vec<u16> = text
        .trim_start_matches("PORT ")
        .trim_end()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(&nums[..4], &[198, 51, 100, 2], "{text}");
    let lport = nums[4] * 256 + nums[5];
    assert!(lport >= rvs::lb::laddr::FTP_ACTIVE_FIRST, "{lport}");
    assert_eq!(r.ftp(1, FtpCounter::Rewrites), 1);
    let delta = got.payload.len() as i64 - line.len() as i64;
    // The server's ACK of the rewritten command is mapped back for the client.
    let ack_new = (c.c_next as i64 + delta) as u32;
    let a = r.one(1, server_seg(&c, c.s_next, ack_new, "A", b"", &[]));
    assert_eq!(a.ack, c.c_next);
    // The server connects to the local address; the client sees the VIP.
    let syn = r.one(
        1,
        tcp(
            (PEER_S1, SERVER_MAC),
            c.server,
            LADDR,
            (20, lport),
            9,
            0,
            "S",
            b"",
            &[],
        ),
    );
    assert_eq!(
        (syn.src, syn.sport, syn.dst, syn.dport),
        (VIP_FNAT, 20, CLIENT, 51_210)
    );
    let back = r.one(
        0,
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            VIP_FNAT,
            (51_210, 20),
            100,
            10,
            "SA",
            b"",
            &[],
        ),
    );
    assert_eq!(
        (back.src, back.sport, back.dst, back.dport),
        (LADDR, lport, c.server, 20)
    );
}

#[test]
fn fnat_passive_uses_a_fresh_local_port() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_FNAT);
    let got = reply(
        &mut r,
        &mut c,
        b"229 Entering Extended Passive Mode (|||10042|)\r\n",
    );
    assert_eq!(
        got.payload,
        b"229 Entering Extended Passive Mode (|||10042|)\r\n"
    );
    let syn = r.one(
        0,
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            VIP_FNAT,
            (40_100, 10_042),
            7,
            0,
            "S",
            b"",
            &[],
        ),
    );
    assert_eq!((syn.src, syn.dst, syn.dport), (LADDR, c.server, 10_042));
}

#[test]
fn dr_pasv_pins_the_next_data_connection_to_the_control_server() {
    let mut r = Rig::new();
    // rr alternates: without the pin, the data connection would go to the other server.
    for round in 0..2 {
        let mut c = connect(&mut r, VIP_DR);
        let server = c.server;
        let cmd = b"EPSV\r\n";
        let s = r.one(0, client_seg(VIP_DR, c.c_next, 1, "AP", cmd));
        c.c_next += cmd.len() as u32;
        assert_eq!(s.payload, cmd);
        let syn = r.put(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_DR,
                (41_000 + round, 10_007),
                7,
                0,
                "S",
                b"",
                &[],
            ),
        );
        assert_eq!(syn.len(), 1);
        // DR keeps the IP header: the frame goes to the server's MAC.
        let mac: [u8; 6] = syn[0].1[0..6].try_into().unwrap();
        let want = if server == S1 {
            [0x02, 0x55, 0, 0, 0, 0x11]
        } else {
            [0x02, 0x55, 0, 0, 0, 0x12]
        };
        assert_eq!(
            mac, want,
            "round {round}: data to the control connection's server"
        );
        // Close the control connection so the next round starts a new one.
        r.put(0, client_seg(VIP_DR, c.c_next, 1, "R", b""));
    }
    assert_eq!(r.ftp(2, FtpCounter::ExpectUsed), 2);
}

#[test]
fn a_227_split_across_segments_is_held_back_until_whole() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_NAT);
    let srv = c.server;
    let line = format!(
        "227 Entering Passive Mode ({},{},{},{},39,17)\r\n",
        srv[0], srv[1], srv[2], srv[3]
    );
    // A segment that ends inside such a line is cut at the line start, and loses its FIN
    // (TCP resends both).
    let mut partial = b"150 ok\r\n".to_vec();
    partial.extend_from_slice(&line.as_bytes()[..5]);
    let cut = r.one(1, server_seg(&c, c.s_next, c.c_next, "APF", &partial, &[]));
    assert_eq!(cut.payload, b"150 ok\r\n");
    assert!(!cut.fin);
    c.s_next += 8;
    let (a, b) = line.as_bytes().split_at(12);
    // The first half alone: held back (TCP will resend it with the rest).
    assert!(r
        .put(1, server_seg(&c, c.s_next, c.c_next, "AP", a, &[]))
        .is_empty());
    assert_eq!(r.dropped(DropReason::FtpHeldBack), 1);
    // The second half arrives ahead of the gap: dropped, resent in order.
    assert!(r
        .put(
            1,
            server_seg(&c, c.s_next + a.len() as u32, c.c_next, "AP", b, &[])
        )
        .is_empty());
    assert_eq!(r.dropped(DropReason::FtpOutOfOrder), 1);
    // The retransmission carries the whole line: rewritten.
    let got = reply(&mut r, &mut c, line.as_bytes());
    assert_eq!(
        got.payload,
        b"227 Entering Passive Mode (203,0,113,5,39,17)\r\n"
    );
}

#[test]
fn auth_tls_stops_parsing_for_good() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_NAT);
    command(&mut r, &mut c, b"AUTH TLS\r\n");
    reply(&mut r, &mut c, b"234 Proceed with negotiation.\r\n");
    assert_eq!(r.ftp(0, FtpCounter::TlsFallbacks), 1);
    let srv = c.server;
    let line = format!(
        "227 ({},{},{},{},39,16)\r\n",
        srv[0], srv[1], srv[2], srv[3]
    );
    let got = reply(&mut r, &mut c, line.as_bytes());
    assert_eq!(got.payload, line.as_bytes(), "not parsed after TLS");
    assert_eq!(r.ftp(0, FtpCounter::ExpectCreated), 0);
}

#[test]
fn expectations_lapse_and_are_counted() {
    let mut r = Rig::new();
    let mut c = connect(&mut r, VIP_NAT);
    let srv = c.server;
    let line = format!(
        "227 ({},{},{},{},39,18)\r\n",
        srv[0], srv[1], srv[2], srv[3]
    );
    reply(&mut r, &mut c, line.as_bytes());
    r.now = r.now + Duration::from_secs(301);
    r.helper.poll(r.now);
    assert_eq!(r.ftp(0, FtpCounter::ExpectExpired), 1);
    assert!(r
        .put(
            0,
            tcp(
                (PEER_C, CLIENT_MAC),
                CLIENT,
                VIP_NAT,
                (40_003, 10_002),
                7,
                0,
                "S",
                b"",
                &[]
            )
        )
        .is_empty());
    let _ = LocalBlock::new(0);
}

/// A server's reply stream sent through rvs by a simulated TCP sender (go-back-N from the
/// cumulative ACK, with spurious retransmissions of old ranges), cut into arbitrary segments:
/// the client must reassemble exactly the stream with every 227 rewritten, and every 227 must
/// publish one expectation.
mod any_segmentation {
    use super::*;
    use proptest::prelude::*;

    /// The stream the server sends, what the client must get (only the first two 227s are
    /// rewritten: the service's per-connection cap is 2), and how many 227s there are.
    fn lines(kinds: &[u8], srv: [u8; 4]) -> (Vec<u8>, Vec<u8>, usize) {
        let (mut orig, mut want, mut n227) = (Vec::new(), Vec::new(), 0);
        for (i, k) in kinds.iter().enumerate() {
            let port = 10_000 + i as u16;
            let (a, b) = match k % 4 {
                0 if n227 >= 2 => {
                    n227 += 1;
                    let l = format!(
                        "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
                        srv[0],
                        srv[1],
                        srv[2],
                        srv[3],
                        port >> 8,
                        port & 255
                    );
                    (l.clone(), l)
                }
                0 => {
                    n227 += 1;
                    (
                        format!(
                            "227 Entering Passive Mode ({},{},{},{},{},{}).\r\n",
                            srv[0],
                            srv[1],
                            srv[2],
                            srv[3],
                            port >> 8,
                            port & 255
                        ),
                        format!(
                            "227 Entering Passive Mode (203,0,113,5,{},{}).\r\n",
                            port >> 8,
                            port & 255
                        ),
                    )
                }
                1 => {
                    let l = "150 Here comes the directory listing.\r\n".to_string();
                    (l.clone(), l)
                }
                2 => {
                    // A multi-line reply whose inner line looks like a 227: never rewritten.
                    let l = format!(
                        "211-Status\r\n227 ({},{},{},{},1,1)\r\n211 End\r\n",
                        srv[0], srv[1], srv[2], srv[3]
                    );
                    (l.clone(), l)
                }
                _ => {
                    let l = "226 Transfer complete.\r\n".to_string();
                    (l.clone(), l)
                }
            };
            orig.extend_from_slice(a.as_bytes());
            want.extend_from_slice(b.as_bytes());
        }
        (orig, want, n227)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn the_client_gets_the_rewritten_stream(
            kinds in proptest::collection::vec(0u8..4, 1..12),
            cuts in proptest::collection::vec(1usize..90, 1..40),
            replays in proptest::collection::vec((0usize..2000, 1usize..60), 0..6),
            s_isn in prop_oneof![Just(50_000u32), Just(u32::MAX - 300), any::<u32>()],
        ) {
            let mut r = Rig::new();
            let c = connect_isn(&mut r, VIP_NAT, s_isn);
            let (orig, want, n227) = lines(&kinds, c.server);
            let base = c.s_next; // server sequence number of orig[0]
            let shift_base = base; // the banner was not rewritten: same base on both sides
            let mut recv: Vec<Option<u8>> = vec![None; want.len()];
            let (mut una, mut nxt, mut k) = (0usize, 0usize, 0usize);
            // After a loss TCP retransmits from the first unacknowledged byte, coalescing up to
            // a full segment.
            let mut coalesce = false;
            let mut replays = replays.into_iter();
            for round in 0..2000 {
                if una >= orig.len() {
                    break;
                }
                // Now and then, a spurious retransmission of something already acknowledged.
                let (start, len) = match (round % 5 == 4, una > 0) {
                    (true, true) => match replays.next() {
                        Some((s, l)) => (s % una, l.min(una - s % una)),
                        None => (nxt, cuts[k % cuts.len()]),
                    },
                    _ if coalesce => (nxt, 1400),
                    _ => (nxt, cuts[k % cuts.len()]),
                };
                coalesce = false;
                let len = len.min(orig.len() - start).max(1);
                if start == nxt {
                    k += 1;
                }
                let frame = server_seg(&c, base.wrapping_add(start as u32), c.c_next, "AP", &orig[start..start + len], &[]);
                let out = r.put(1, frame);
                if start == nxt {
                    nxt = start + len;
                }
                for (_, f) in &out {
                    let s = seg(f);
                    let at = s.seq.wrapping_sub(shift_base) as usize;
                    for (j, b) in s.payload.iter().enumerate() {
                        let slot = &mut recv[at + j];
                        prop_assert!(slot.is_none() || *slot == Some(*b), "a resent byte differs at {}", at + j);
                        *slot = Some(*b);
                    }
                }
                // The client acknowledges what it holds in order; rvs maps it back.
                let have = recv.iter().take_while(|b| b.is_some()).count();
                let ack = r.one(0, client_seg(VIP_NAT, c.c_next, shift_base.wrapping_add(have as u32), "A", b""));
                una = ack.ack.wrapping_sub(base) as usize;
                if (out.is_empty() && start >= una) || nxt < una {
                    nxt = una; // go back: resend from the first unacknowledged byte
                    coalesce = true;
                }
            }
            prop_assert_eq!(una, orig.len(), "the transfer completed");
            let got: Vec<u8> = recv.iter().map(|b| b.unwrap_or(b'?')).collect();
            prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
            // This service allows 2 live expectations per connection; the rest are refused and
            // go through unchanged (and `want` has them rewritten only while under the cap).
            let created = n227.min(2);
            prop_assert_eq!(r.ftp(0, FtpCounter::ExpectCreated) as usize, created);
            prop_assert_eq!(r.ftp(0, FtpCounter::Rewrites) as usize, created);
            prop_assert_eq!(r.ftp(0, FtpCounter::RefusedConnCap) as usize, n227 - created);
        }
    }
}

/// An I/O that records what the second worker hands over.
#[derive(Default)]
struct HandIo {
    handed: Vec<(u16, u16, Vec<u8>)>,
    sent: Vec<(u16, Vec<u8>)>,
}

impl Io<Vec<u8>> for HandIo {
    fn alloc(&mut self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }
    fn send(&mut self, port: u16, buf: Vec<u8>) {
        self.sent.push((port, buf));
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

/// Two workers, NAT active mode, the case curl fails on when frames overtake each other: the
/// server's control replies (150, 226) go through the slow path on the owner while its
/// data-connection frames reach the other worker's queue and are handed to the owner. Each
/// frame carries the window in which it reached its queue. A data frame that surely came
/// after the 150 waits behind it; one that may have come before the 226 (its window overlaps
/// the 226's), handed over after the 226 went to the slow path, goes before it; and the
/// answered 226 waits until the other worker has passed the end of its window (its
/// watermark), so nothing that came earlier on the other queue can still be on its way. A
/// frame of another host pair is not held.
#[test]
fn two_workers_keep_a_host_pairs_frames_in_order_around_the_slow_path() {
    let text = format!("{CONFIG}\n[workers]\ncount = 2\n");
    let cfg = Config::parse(&text, Path::new("ftp-test.toml")).unwrap();
    let expect = Arc::new(Expectations::new(cfg.ftp.max_expectations));
    let owner = rvs::flow::rss::Sharding::new(2, 32).owner(Ipv4Addr::from(CLIENT));
    let mut p = Pipeline::new(&cfg, &[CLIENT_MAC, SERVER_MAC], owner, Instant::ZERO);
    p.set_expectations(Arc::clone(&expect));
    let mut other = Pipeline::new(&cfg, &[CLIENT_MAC, SERVER_MAC], 1 - owner, Instant::ZERO);
    other.set_expectations(Arc::clone(&expect));
    let mut r = Rig {
        p,
        helper: Helper::new(&cfg, expect),
        io: RigIo::default(),
        now: Instant::from_secs(1),
        poll_helper: true,
    };
    let mut c = connect(&mut r, VIP_NAT);
    let cport = 51_000;
    // PORT, then the server's data connection: its SYN and the client's SYN-ACK.
    let line = format!("PORT 203,0,113,10,{},{}\r\n", cport >> 8, cport & 255);
    command(&mut r, &mut c, line.as_bytes());
    let srv = c.server;
    let data = |flags: &str, seq: u32, payload: &[u8]| {
        tcp(
            (PEER_S1, SERVER_MAC),
            srv,
            CLIENT,
            (20, cport),
            seq,
            101,
            flags,
            payload,
            &[],
        )
    };
    r.one(1, data("S", 9, b""));
    r.one(
        0,
        tcp(
            (PEER_C, CLIENT_MAC),
            CLIENT,
            VIP_NAT,
            (cport, 20),
            100,
            10,
            "SA",
            b"",
            &[],
        ),
    );
    assert!(r.io.slow.is_empty() && r.p.held() == 0);
    let ms = |k: u64| Instant::from_millis(2000 + k);

    // The owner's poll at t=1 (its previous one, which emptied its queues, began at t=0)
    // takes the server's "150" and gives it to the slow path.
    let l150 = b"150 Here comes the data\r\n";
    r.p.set_poll_window(ms(0));
    r.p.process(
        1,
        server_seg(&c, c.s_next, c.c_next, "AP", l150, &[]),
        ms(1),
        &mut r.io,
    );
    c.s_next += l150.len() as u32;
    assert_eq!(r.io.slow.len(), 1, "the 150 is at the slow path");
    // The other worker's poll at t=3 (after one at t=2 that emptied its queues) takes the data
    // connection's ACK and data: handed over, and they wait behind the 150 (which surely came
    // before them).
    let mut hio = HandIo::default();
    other.process(1, data("A", 10, b""), ms(2), &mut hio);
    other.process(1, data("AP", 10, b"file bytes"), ms(2), &mut hio);
    assert_eq!(
        hio.handed.len(),
        2,
        "the other worker hands them to the owner"
    );
    assert!(hio.handed.iter().all(|h| h.0 == owner) && hio.sent.is_empty());
    for (_, port, frame) in hio.handed.drain(..) {
        r.p.process_handed_over(port, frame, (ms(2), ms(3)), ms(3), &mut r.io);
    }
    assert!(r.io.sent.is_empty(), "they wait behind the 150");
    assert_eq!(r.counter(Counter::OrderHeld), 2);
    // The owner's poll at t=4 (after one at t=3) takes the server's "226": to the slow path.
    let l226 = b"226 Transfer complete\r\n";
    r.p.set_poll_window(ms(3));
    r.p.process(
        1,
        server_seg(&c, c.s_next, c.c_next, "AP", l226, &[]),
        ms(4),
        &mut r.io,
    );
    assert_eq!(r.io.slow.len(), 2);
    // The other worker, late (preempted, say), takes the data connection's FIN in a poll at
    // t=5 after one at t=3: it may have come before the 226, so it goes before it.
    other.process(1, data("AF", 20, b""), ms(5), &mut hio);
    let (_, port, fin) = hio.handed.pop().unwrap();
    r.p.process_handed_over(port, fin, (ms(3), ms(5)), ms(5), &mut r.io);
    assert_eq!(
        r.p.held(),
        5,
        "two control frames out, three frames waiting"
    );

    // The slow path answers both.
    for msg in std::mem::take(&mut r.io.slow) {
        let ret = slowpath::handle(&mut r.helper, msg, ms(4), drop).unwrap();
        r.p.slow_path_returned(ret, ms(5));
    }
    assert!(r.io.sent.is_empty(), "answers alone send nothing");
    // The other worker has passed t=3 only: the 150 and what followed it leave, the 226 not.
    r.p.release_ordered(ms(3), ms(5), &mut r.io);
    let out: Vec<IpFrame> = r.io.sent.drain(..).map(|(_, f)| seg(&f)).collect();
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(out[0].payload, l150);
    assert_eq!((out[1].sport, out[1].payload.len()), (20, 0), "the ACK");
    assert_eq!(out[2].payload, b"file bytes");
    assert!(
        out[3].fin && out[3].sport == 20,
        "the FIN, which may have come before the 226"
    );
    assert!(out.iter().all(|s| s.dst == CLIENT));
    assert_eq!(r.p.held(), 1, "the 226 waits for the other worker");
    r.p.release_ordered(ms(4), ms(5), &mut r.io);
    let out: Vec<IpFrame> = r.io.sent.drain(..).map(|(_, f)| seg(&f)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, l226);
    assert_eq!(r.p.held(), 0);
    assert_eq!(
        r.counter(Counter::SlowPathTx),
        r.counter(Counter::SlowPathOut)
    );

    // With a control frame out, another client's frames go at once.
    r.p.process(
        1,
        server_seg(
            &c,
            c.s_next + l226.len() as u32,
            c.c_next,
            "AP",
            b"221 Bye\r\n",
            &[],
        ),
        ms(6),
        &mut r.io,
    );
    assert_eq!(r.p.held(), 1);
    let stranger = tcp(
        (PEER_C, CLIENT_MAC),
        [203, 0, 113, 77],
        VIP_NAT,
        (40_001, 21),
        7,
        0,
        "S",
        b"",
        &[],
    );
    r.p.process_handed_over(0, stranger, (ms(6), ms(6)), ms(6), &mut r.io);
    assert_eq!(r.io.sent.len(), 1, "another host pair is not held");
    assert_eq!(r.p.held(), 1);
}
