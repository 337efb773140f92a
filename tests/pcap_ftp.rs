#![cfg(feature = "dpdk-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The FTP pcap tier: the real `rvs` binary, its worker and its slow-path thread, on two DPDK
//! `net_pcap` vdevs, playing FTP sessions against a NAT and a full-NAT FTP service. The test is
//! both the client and the servers: it writes what they send into rvs's input and reads what
//! rvs wrote out, and answers only once the frame it answers has come out, as a real peer does.
//! It is judged by etherparse and by `tshark` (two independent decoders) and by rvs's
//! `--stats-file` counters. Run as root:
//! `cargo test --release --features dpdk-tests,lab-tests --test pcap_ftp -- --test-threads=1`.
//!
//! What one run covers (one rvs process, one worker, `--no-huge`; every `#[test]` checks one
//! behaviour of that run):
//! 1. NAT passive: handshake, banner (across 2^32 in the server's numbering), PASV, the server's
//!    227 naming itself; the client gets the VIP instead (two bytes shorter), every later server
//!    segment is shifted by those two bytes, the client's ACKs are mapped back, and the client's
//!    data connection to VIP:port reaches the control connection's server at that port.
//! 2. NAT active: PORT naming the client goes through unchanged; the server's SYN from :20 to
//!    the client leaves from VIP:20.
//! 3. Full-NAT active: PORT is rewritten to the local address and a port >= 61440; the server's
//!    ACKs of it are mapped back; its SYN to that local port reaches the client from VIP:20.
//! 4. Refusals: a PORT naming another host and a 227 naming another host go through unchanged
//!    and are counted; neither opens a data connection.
//! 5. A 227 split across two segments: the first is held back, the second is dropped as out of
//!    order, and the retransmission of the whole line is rewritten (and its expectation works).
//!
//! Ordering, and why it is deterministic. The slow path is a thread of its own: a control frame
//! goes worker -> slow path -> back to the worker (net_pcap has no spare TX queue) -> out, and
//! expectations are published by the slow path while the worker reads on. Filler frames in a
//! pcap file cannot order a worker's reads after another thread's work, so the inputs are not
//! files: `rx_pcap` names a FIFO (a named pipe) the test writes pcap records into as the session
//! goes. DPDK 22.11's pcap PMD opens each `rx_pcap` once, at probe time, with
//! `pcap_open_offline` (plain stdio reads; the test writes the global header before starting
//! rvs; rvs starts each port once, and a stop and start would reopen the pipe mid-stream), and
//! its `rx_burst` calls `pcap_next_ex` once per frame asked for, which blocks until that whole
//! record is in the pipe. With `workers.burst = 1` the worker thus reads exactly one
//! frame from the client pipe, then one from the server pipe, then sends what the slow path gave
//! back, flushes, and blocks again. The test always writes in such rounds (a client frame and a
//! server frame; one of them a filler for another MAC, dropped as `other_mac`), and:
//! - it sends a frame only after the frame it answers has appeared in rvs's output pcap. For a
//!   control frame that means the slow path has processed it (and published any expectation,
//!   which it does before handing the frame back); the worker popped it from the slow path's
//!   ring before sending it, so everything the slow path did is visible to the worker when it
//!   reads the answer. So a reply is never read before the command it answers was processed,
//!   and a data SYN is never read before its expectation exists. These are causal chains, not
//!   timing margins.
//! - while it waits for a frame to come out, it writes filler rounds (every 2 ms, then every
//!   50 ms): each lets the worker go round its loop once more and send what the slow path has
//!   handed back meanwhile. The number of fillers varies from run to run; the test counts them,
//!   and the drop check is exact against that count.
//! - segments that must not come out (held back, out of order, SYNs for refused addresses) are
//!   sent without waiting; the slow path handles one worker's frames in the order the worker
//!   read them, so the next awaited frame orders them.
//!
//! At the end the test closes the pipes (EOF: `rx_burst` returns 0 from then on), waits until
//! `rx_packets` counts every frame it wrote and a second more (the slow path reaps used
//! expectations every 10 ms), stops rvs with SIGTERM and checks the final stats file.
//! The output pcaps are read while rvs runs; a record caught half-written is read again.
//! Output frames are matched by the IP identification each input frame carries (NAT keeps it)
//! and then checked by flow and content, never by position: the slow path's frames leave
//! interleaved with the worker's own in whatever order the threads ran.
//!
//! The pcap PMD and MAC facts (`02:70:63:61:70:<n>`) are those of `tests/common/pcap_run.rs`,
//! which runs rvs here too.

#[path = "common/frames.rs"]
mod frames;
#[path = "common/pcap.rs"]
mod pcap;
#[path = "common/pcap_run.rs"]
mod pcap_run;
#[path = "common/tshark.rs"]
mod tshark;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use frames::{arp_frame, ip_id, parse_tcp, Ip, IpFrame, Mac, Tcp, ACK, PSH, SYN};
use pcap_run::{
    nonzero_drops, Run, CLIENT, CLIENT_MAC, CLIENT_PORT_ADDR, CLIENT_PORT_MAC, SERVER_PORT_ADDR,
    SERVER_PORT_MAC, SRV11, SRV11_MAC, SRV12, SRV12_MAC, STRANGER_MAC,
};
use tshark::{ip_str, tshark, Decoded};

// ---------------------------------------------------------------------------------------------
// The lab: the port addresses, the client and the servers are `pcap_run`'s.

/// "203,0,113,5" is two characters shorter than "198,51,100,11": every 227 rewrite shrinks.
const VIP_NAT: Ip = [203, 0, 113, 5];
const VIP_FNAT: Ip = [203, 0, 113, 6];
/// The full-NAT service's local address, on the server subnet.
const LADDR: Ip = [198, 51, 100, 2];
/// Named by the refused PORT.
const OTHER_CLIENT: Ip = [203, 0, 113, 99];
/// Named by the refused 227.
const OTHER_SERVER: Ip = [192, 0, 2, 99];

/// `ftp-nat`: NAT, round robin over two servers (so the two control connections land on
/// different servers and each data connection must follow its own). `ftp-fnat`: full NAT.
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

[[service]]
name = "ftp-nat"
protocol = "tcp"
vip = "203.0.113.5"
port = 21
scheduler = "rr"
[service.ftp]
control_ports = [21]
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
address = "198.51.100.12"
"#;

const DATA: u8 = ACK | PSH;

/// IP identifications: the session's frames count up from here, the fillers from `ID_FILLER`.
const ID_FIRST: u16 = 0x1000;
const ID_FILLER: u16 = 0x8000;

/// The first port of the full-NAT active-mode range (`rvs::lb::laddr::FTP_ACTIVE_FIRST`).
const FTP_ACTIVE_FIRST: u16 = 61440;

/// How long one awaited frame may take (the first one includes the EAL's start-up).
const WAIT: Duration = Duration::from_secs(20);

fn server_mac(ip: Ip) -> Mac {
    match ip {
        SRV11 => SRV11_MAC,
        SRV12 => SRV12_MAC,
        other => panic!("no server {}", Ipv4Addr::from(other)),
    }
}

/// `a,b,c,d,hi,lo`: an address and port as PORT and 227 write them.
fn csv(ip: Ip, port: u16) -> String {
    format!(
        "{},{},{},{},{},{}",
        ip[0],
        ip[1],
        ip[2],
        ip[3],
        port >> 8,
        port & 0xff
    )
}

/// The address and port in a PORT command or a 227 reply (the six numbers after the first
/// space or parenthesis).
fn host_port(line: &[u8]) -> Option<(Ip, u16)> {
    let text = std::str::from_utf8(line).ok()?;
    let start = text
        .find('(')
        .map_or_else(|| text.find(' ').map(|i| i + 1), |i| Some(i + 1))?;
    let nums: Vec<u16> = text[start..]
        .trim_end_matches(['\r', '\n', '.', ')'])
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, hi, lo] = nums[..] else {
        return None;
    };
    let ip = [a, b, c, d].map(|x| x as u8);
    Some((ip, hi * 256 + lo))
}

// ---------------------------------------------------------------------------------------------
// The session model: each TCP connection as its two ends see it.

/// Which end of the lab, and so which rvs port: the client's side (port 0) or the servers'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Client = 0,
    Server = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// One TCP connection through rvs. The client talks to `vip`; the server talks to `peer` (the
/// client itself in NAT, a local address in full NAT). Each end numbers its own bytes and
/// acknowledges what it received as it received it, so rvs's sequence adjustment has to hold
/// for both ends to agree. What the test cannot know in advance (the server rvs chose, the
/// local address and port, the VIP side of a server-initiated connection) is learnt from the
/// first frame that comes out.
#[derive(Clone, Debug)]
struct Flow {
    service: &'static str,
    /// Control connection (port 21): its non-SYN frames go through the slow path.
    ctl: bool,
    client: (Ip, u16),
    vip: Option<(Ip, u16)>,
    server: Option<(Ip, u16)>,
    peer: Option<(Ip, u16)>,
    /// Next sequence number each end sends, and what it acknowledges, in its own view.
    c_next: u32,
    c_ack: u32,
    s_next: u32,
    s_ack: u32,
}

impl Flow {
    /// A connection the client opens to `vip`.
    fn to_vip(service: &'static str, cport: u16, vip: (Ip, u16), c_isn: u32, s_isn: u32) -> Flow {
        Flow {
            service,
            ctl: vip.1 == 21,
            client: (CLIENT, cport),
            vip: Some(vip),
            server: None,
            peer: None,
            c_next: c_isn,
            c_ack: 0,
            s_next: s_isn,
            s_ack: 0,
        }
    }

    /// A connection a server opens to `peer` (an active-mode data connection); `client` is
    /// where the client expects it.
    fn from_server(
        service: &'static str,
        server: (Ip, u16),
        peer: (Ip, u16),
        client: (Ip, u16),
        s_isn: u32,
        c_isn: u32,
    ) -> Flow {
        Flow {
            service,
            ctl: false,
            client,
            vip: None,
            server: Some(server),
            peer: Some(peer),
            c_next: c_isn,
            c_ack: 0,
            s_next: s_isn,
            s_ack: 0,
        }
    }

    fn server_ip(&self) -> Ip {
        self.server.expect("server not learnt yet").0
    }

    /// The frame `from` sends, at `seq` in its own numbering.
    fn frame(&self, from: Side, seq: u32, flags: u8, payload: &[u8], id: u16) -> Vec<u8> {
        let ((src, sport), (dst, dport), ack, macs) = match from {
            Side::Client => (
                self.client,
                self.vip
                    .expect("the client does not know where to send yet"),
                self.c_ack,
                (CLIENT_MAC, CLIENT_PORT_MAC),
            ),
            Side::Server => {
                let server = self.server.expect("server not learnt yet");
                (
                    server,
                    self.peer.expect("peer not learnt yet"),
                    self.s_ack,
                    (server_mac(server.0), SERVER_PORT_MAC),
                )
            }
        };
        let ack = if flags & ACK != 0 { ack } else { 0 };
        let payload = payload.to_vec();
        let t = Tcp {
            src,
            dst,
            id,
            sport,
            dport,
            seq,
            ack,
            flags,
            payload,
            ..Tcp::default()
        };
        t.frame(macs.0, macs.1)
    }

    /// `from`'s segment came out of rvs as `out`: learn the far end, move both ends on.
    fn delivered(&mut self, from: Side, sent: &IpFrame, out: &IpFrame) {
        match from {
            Side::Client => {
                if self.server.is_none() {
                    self.server = Some((out.dst, out.dport));
                    self.peer = Some((out.src, out.sport));
                }
                self.c_next = sent.seq.wrapping_add(sent.span());
                self.s_ack = out.seq.wrapping_add(out.span());
            }
            Side::Server => {
                if self.vip.is_none() {
                    self.vip = Some((out.src, out.sport));
                }
                self.s_next = sent.seq.wrapping_add(sent.span());
                self.c_ack = out.seq.wrapping_add(out.span());
            }
        }
    }
}

/// One frame the test sent and what came of it.
#[derive(Clone, Debug)]
struct Ex {
    from: Side,
    service: &'static str,
    ctl: bool,
    sent: Vec<u8>,
    /// What left rvs on the other port; `None` for a frame that must not come out.
    out: Option<Vec<u8>>,
}

// ---------------------------------------------------------------------------------------------
// Running rvs.

/// The run's config: each port reads an input pipe and writes a pcap file, and the worker reads
/// one frame per `rx_burst`, so it reads the two pipes in strict alternation.
fn config(run: &Run) -> String {
    let client = run.vdev(0, &["client-in.fifo"], &["client-out.pcap"]);
    let server = run.vdev(1, &["server-in.fifo"], &["server-out.pcap"]);
    let rest = format!("\n[workers]\nburst = 1\n{SERVICES}");
    run.config([&client, &server], "", &rest)
}

impl Run {
    fn out_name(side: Side) -> &'static str {
        match side {
            Side::Client => "client-out.pcap",
            Side::Server => "server-out.pcap",
        }
    }

    /// The frames rvs has written out of `side`'s port so far (a record caught half-written
    /// is left for the next read).
    fn out_so_far(&self, side: Side) -> Vec<Vec<u8>> {
        pcap::read(&self.path(Self::out_name(side))).unwrap_or_default()
    }
}

/// `O_NONBLOCK` on Linux (x86, Arm, RISC-V): a write to a full pipe fails instead of waiting
/// for a reader that may be gone (the test holds the pipe open for reading too).
const O_NONBLOCK: i32 = 0o4000;

/// rvs running on the two input pipes, and the session so far.
struct Live {
    run: Run,
    /// The write ends of the client-port and server-port input pipes (opened read-write, so
    /// neither open waits for rvs; closing them is rvs's end of input).
    pipes: Option<[File; 2]>,
    /// Every frame written, per side, in order.
    inputs: [Vec<Vec<u8>>; 2],
    fillers: u64,
    next_id: u16,
    ex: BTreeMap<String, Ex>,
    started: Instant,
}

impl Live {
    fn start(run: Run) -> Result<Live, String> {
        let mut pipes = Vec::new();
        for name in ["client-in.fifo", "server-in.fifo"] {
            let path = run.path(name);
            let ok = Command::new("mkfifo")
                .arg(&path)
                .status()
                .map_err(|e| format!("cannot run mkfifo: {e}"))?;
            if !ok.success() {
                return Err(format!("mkfifo {} failed", path.display()));
            }
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(O_NONBLOCK)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            // The global header: the PMD reads it while the EAL probes the device.
            f.write_all(&pcap::encode(&[]))
                .map_err(|e| format!("{name}: {e}"))?;
            pipes.push(f);
        }
        let [c, s]: [File; 2] = pipes.try_into().map_err(|_| "two pipes".to_string())?;
        std::fs::write(run.path("rvs.toml"), config(&run)).unwrap();
        let mut live = Live {
            run,
            pipes: Some([c, s]),
            inputs: [Vec::new(), Vec::new()],
            fillers: 0,
            next_id: ID_FIRST,
            ex: BTreeMap::new(),
            started: Instant::now(),
        };
        live.run.start()?;
        live.started = Instant::now();
        Ok(live)
    }

    fn write(&mut self, side: Side, frame: Vec<u8>) -> Result<(), String> {
        self.run.alive()?;
        let rec = pcap::record(self.inputs[side as usize].len(), &frame);
        let pipes = self.pipes.as_mut().ok_or("the input pipes are closed")?;
        // One write of less than PIPE_BUF bytes: the record enters the pipe whole or not at all.
        pipes[side as usize].write_all(&rec).map_err(|e| {
            format!(
                "cannot write to the {side:?} input pipe ({e}): rvs stopped reading\n{}",
                self.run.logs()
            )
        })?;
        self.inputs[side as usize].push(frame);
        Ok(())
    }

    /// A frame for nobody (dropped as `other_mac`), to fill `side`'s half of a round.
    fn filler(&mut self, side: Side) -> Vec<u8> {
        let id = ID_FILLER + u16::try_from(self.fillers).expect("fewer than 32768 fillers");
        self.fillers += 1;
        let (mac, src, dst) = match side {
            Side::Client => (CLIENT_MAC, CLIENT, VIP_NAT),
            Side::Server => (SRV11_MAC, SRV11, CLIENT),
        };
        let t = Tcp {
            src,
            dst,
            id,
            sport: 9,
            dport: 9,
            flags: ACK,
            ..Tcp::default()
        };
        t.frame(mac, STRANGER_MAC)
    }

    /// One round: `frame` from `side`, a filler from the other side, client frame first (the
    /// order the worker reads them in).
    fn round(&mut self, side: Side, frame: Option<Vec<u8>>) -> Result<(), String> {
        let frame = frame.unwrap_or_else(|| self.filler(side));
        let other = self.filler(side.other());
        let (c, s) = match side {
            Side::Client => (frame, other),
            Side::Server => (other, frame),
        };
        self.write(Side::Client, c)?;
        self.write(Side::Server, s)
    }

    /// Wait until the frame tagged `id` has left rvs on `side`'s port, pumping filler rounds
    /// meanwhile so the worker sends what the slow path handed back.
    fn wait_out(&mut self, side: Side, id: u16, what: &str) -> Result<Vec<u8>, String> {
        let t0 = Instant::now();
        loop {
            let found = self
                .run
                .out_so_far(side)
                .into_iter()
                .find(|f| ip_id(f) == Some(id));
            if let Some(f) = found {
                return Ok(f);
            }
            if t0.elapsed() > WAIT {
                return Err(format!(
                    "{what} (IP id {id:#06x}) did not leave the {side:?} port within {WAIT:?}\n{}",
                    self.run.logs()
                ));
            }
            std::thread::sleep(if t0.elapsed() < Duration::from_millis(200) {
                Duration::from_millis(2)
            } else {
                Duration::from_millis(50)
            });
            self.round(Side::Client, None)?;
        }
    }

    fn take_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id += 1;
        assert!(id < ID_FILLER);
        id
    }

    /// `from` sends a segment on `flow` at its next sequence number; wait for it to come out
    /// on the other port and move the flow on.
    fn send(
        &mut self,
        flow: &mut Flow,
        from: Side,
        step: &str,
        flags: u8,
        payload: &[u8],
    ) -> Result<IpFrame, String> {
        let id = self.take_id();
        let seq = match from {
            Side::Client => flow.c_next,
            Side::Server => flow.s_next,
        };
        let frame = flow.frame(from, seq, flags, payload, id);
        self.round(from, Some(frame.clone()))?;
        let out = self.wait_out(from.other(), id, step)?;
        let got = parse_tcp(&out).map_err(|e| format!("{step}: {e}"))?;
        flow.delivered(from, &parse_tcp(&frame)?, &got);
        self.record(step, from, flow, frame, Some(out));
        Ok(got)
    }

    /// `from` sends a segment that must not come out, `offset` bytes past its next sequence
    /// number; the flow does not move (TCP will resend).
    fn send_lost(
        &mut self,
        flow: &Flow,
        from: Side,
        step: &str,
        offset: u32,
        flags: u8,
        payload: &[u8],
    ) -> Result<(), String> {
        let id = self.take_id();
        let seq = match from {
            Side::Client => flow.c_next,
            Side::Server => flow.s_next,
        };
        let frame = flow.frame(from, seq.wrapping_add(offset), flags, payload, id);
        self.round(from, Some(frame.clone()))?;
        self.record(step, from, flow, frame, None);
        Ok(())
    }

    fn record(&mut self, step: &str, from: Side, flow: &Flow, sent: Vec<u8>, out: Option<Vec<u8>>) {
        let ex = Ex {
            from,
            service: flow.service,
            ctl: flow.ctl,
            sent,
            out,
        };
        assert!(
            self.ex.insert(step.to_string(), ex).is_none(),
            "step {step} twice"
        );
    }

    /// Three-way handshake and the server's banner on a control connection.
    fn connect(&mut self, f: &mut Flow, name: &str) -> Result<(), String> {
        self.send(f, Side::Client, &format!("{name}.syn"), SYN, b"")?;
        self.send(f, Side::Server, &format!("{name}.synack"), SYN | ACK, b"")?;
        self.send(f, Side::Client, &format!("{name}.ack"), ACK, b"")?;
        self.send(
            f,
            Side::Server,
            &format!("{name}.banner"),
            DATA,
            b"220 rvs pcap-ftp ready\r\n",
        )?;
        Ok(())
    }

    /// Close the pipes, wait until rvs has read every frame and a second more, stop it.
    fn finish(mut self, flows: BTreeMap<&'static str, Flow>) -> Result<Outcome, String> {
        self.pipes = None;
        let expected = (self.inputs[0].len() + self.inputs[1].len()) as u64;
        // The slow path reaps used expectations every 10 ms: a second more is plenty.
        self.run.wait_for_rx(expected, Duration::from_secs(1))?;
        let (stats, stdout) = self.run.stop()?;
        let secs = self.started.elapsed().as_secs_f64();

        let mut out = [Vec::new(), Vec::new()];
        let mut decoded = [Vec::new(), Vec::new()];
        for side in [Side::Client, Side::Server] {
            let path = self.run.path(Run::out_name(side));
            out[side as usize] = pcap::read(&path).map_err(|e| e.to_string())?;
            decoded[side as usize] = tshark(&path, TSHARK_FIELDS)?;
            if decoded[side as usize].len() != out[side as usize].len() {
                return Err(format!(
                    "{side:?} port: tshark read {} frames, the pcap reader {}",
                    decoded[side as usize].len(),
                    out[side as usize].len()
                ));
            }
        }
        Ok(Outcome {
            ex: std::mem::take(&mut self.ex),
            flows,
            inputs: std::mem::take(&mut self.inputs),
            fillers: self.fillers,
            out,
            tshark: decoded,
            stats,
            stdout,
            secs,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The session.

/// The 227 of the split case, as the server sends it.
fn split_227(server: Ip) -> String {
    format!("227 Entering Passive Mode ({}).\r\n", csv(server, 10002))
}
/// Where the split 227 is cut: inside "Passive", long before the line's end.
const SPLIT_AT: usize = 15;

fn session(h: &mut Live) -> Result<BTreeMap<&'static str, Flow>, String> {
    let mut flows = BTreeMap::new();

    // 1. NAT passive. The server's numbering crosses 2^32 inside the banner.
    let mut a = Flow::to_vip("ftp-nat", 40000, (VIP_NAT, 21), 0x1000_0000, u32::MAX - 10);
    h.connect(&mut a, "a")?;
    h.send(&mut a, Side::Client, "a.pasv", DATA, b"PASV\r\n")?;
    let line = format!(
        "227 Entering Passive Mode ({}).\r\n",
        csv(a.server_ip(), 10000)
    );
    h.send(&mut a, Side::Server, "a.227", DATA, line.as_bytes())?;
    let mut ad = Flow::to_vip("ftp-nat", 40100, (VIP_NAT, 10000), 0x1100_0000, 0x2100_0000);
    h.send(&mut ad, Side::Client, "ad.syn", SYN, b"")?;
    h.send(&mut ad, Side::Server, "ad.synack", SYN | ACK, b"")?;
    h.send(
        &mut a,
        Side::Server,
        "a.150",
        DATA,
        b"150 Here comes the directory listing.\r\n",
    )?;
    h.send(&mut a, Side::Client, "a.ack150", ACK, b"")?;
    flows.insert("a", a);
    flows.insert("ad", ad);

    // 2. NAT active, then 4. the refusals and 5. the split 227, on a second control
    // connection (round robin puts it on the other server).
    let mut b = Flow::to_vip("ftp-nat", 40001, (VIP_NAT, 21), 0x1200_0000, 0x2200_0000);
    h.connect(&mut b, "b")?;
    h.send(
        &mut b,
        Side::Client,
        "b.port",
        DATA,
        format!("PORT {}\r\n", csv(CLIENT, 51210)).as_bytes(),
    )?;
    h.send(
        &mut b,
        Side::Server,
        "b.200",
        DATA,
        b"200 PORT command successful.\r\n",
    )?;
    let mut bd = Flow::from_server(
        "ftp-nat",
        (b.server_ip(), 20),
        (CLIENT, 51210),
        (CLIENT, 51210),
        0x2300_0000,
        0x1300_0000,
    );
    h.send(&mut bd, Side::Server, "bd.syn", SYN, b"")?;
    h.send(&mut bd, Side::Client, "bd.synack", SYN | ACK, b"")?;

    h.send(
        &mut b,
        Side::Client,
        "b.port_other",
        DATA,
        format!("PORT {}\r\n", csv(OTHER_CLIENT, 51211)).as_bytes(),
    )?;
    h.send(
        &mut b,
        Side::Server,
        "b.200_other",
        DATA,
        b"200 PORT command successful.\r\n",
    )?;
    // The server obeys the PORT rvs refused: nothing expects that connection.
    let x1 = Flow::from_server(
        "none",
        (b.server_ip(), 20),
        (OTHER_CLIENT, 51211),
        (OTHER_CLIENT, 51211),
        0x2400_0000,
        0,
    );
    h.send_lost(&x1, Side::Server, "x1.syn", 0, SYN, b"")?;
    h.send(&mut b, Side::Client, "b.pasv_other", DATA, b"PASV\r\n")?;
    h.send(
        &mut b,
        Side::Server,
        "b.227_other",
        DATA,
        format!(
            "227 Entering Passive Mode ({}).\r\n",
            csv(OTHER_SERVER, 10001)
        )
        .as_bytes(),
    )?;
    // The client obeys the 227 rvs refused: nothing expects that connection either.
    let x2 = Flow::to_vip("none", 40102, (VIP_NAT, 10001), 0x1400_0000, 0);
    h.send_lost(&x2, Side::Client, "x2.syn", 0, SYN, b"")?;

    h.send(&mut b, Side::Client, "b.pasv_split", DATA, b"PASV\r\n")?;
    let line = split_227(b.server_ip());
    let (first, second) = line.as_bytes().split_at(SPLIT_AT);
    h.send_lost(&b, Side::Server, "b.227_part1", 0, DATA, first)?;
    h.send_lost(
        &b,
        Side::Server,
        "b.227_part2",
        SPLIT_AT as u32,
        DATA,
        second,
    )?;
    h.send(&mut b, Side::Server, "b.227_whole", DATA, line.as_bytes())?;
    let mut bd2 = Flow::to_vip("ftp-nat", 40101, (VIP_NAT, 10002), 0x1500_0000, 0x2500_0000);
    h.send(&mut bd2, Side::Client, "bd2.syn", SYN, b"")?;
    flows.insert("b", b);
    flows.insert("bd", bd);
    flows.insert("bd2", bd2);

    // 3. Full-NAT active. "20,1" (port 5121) is shorter than any "hi,lo" of a port >= 61440,
    // and the local address is one character longer than the client's: the rewrite always
    // changes the length.
    let mut c = Flow::to_vip("ftp-fnat", 40002, (VIP_FNAT, 21), 0x1600_0000, 0x2600_0000);
    h.connect(&mut c, "c")?;
    let port = h.send(
        &mut c,
        Side::Client,
        "c.port",
        DATA,
        format!("PORT {}\r\n", csv(CLIENT, 5121)).as_bytes(),
    )?;
    let (laddr, lport) =
        host_port(&port.payload).ok_or_else(|| format!("c.port came out as {:?}", port.text()))?;
    h.send(
        &mut c,
        Side::Server,
        "c.200",
        DATA,
        b"200 PORT command successful.\r\n",
    )?;
    let mut cd = Flow::from_server(
        "ftp-fnat",
        (c.server_ip(), 20),
        (laddr, lport),
        (CLIENT, 5121),
        0x2700_0000,
        0x1700_0000,
    );
    h.send(&mut cd, Side::Server, "cd.syn", SYN, b"")?;
    h.send(&mut cd, Side::Client, "cd.synack", SYN | ACK, b"")?;
    flows.insert("c", c);
    flows.insert("cd", cd);
    Ok(flows)
}

// ---------------------------------------------------------------------------------------------
// The outcome.

/// One finished run.
struct Outcome {
    ex: BTreeMap<String, Ex>,
    flows: BTreeMap<&'static str, Flow>,
    inputs: [Vec<Vec<u8>>; 2],
    fillers: u64,
    /// What rvs sent out of each port, and tshark's reading of it, frame for frame.
    out: [Vec<Vec<u8>>; 2],
    tshark: [Vec<Decoded>; 2],
    stats: Value,
    stdout: String,
    secs: f64,
}

fn outcome() -> &'static Outcome {
    static RUN: OnceLock<Result<Outcome, String>> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let mut live = Live::start(Run::new("pcap-ftp", "main"))?;
        let flows = session(&mut live)?;
        live.finish(flows)
    });
    match run {
        Ok(o) => o,
        Err(e) => panic!("the rvs run failed: {e}"),
    }
}

impl Outcome {
    fn ex(&self, step: &str) -> &Ex {
        self.ex
            .get(step)
            .unwrap_or_else(|| panic!("no step {step}"))
    }

    fn sent(&self, step: &str) -> IpFrame {
        parse_tcp(&self.ex(step).sent).unwrap()
    }

    /// What `step` became on the wire, every checksum and length verified by etherparse.
    fn out(&self, step: &str) -> IpFrame {
        let ex = self.ex(step);
        let f = ex
            .out
            .as_ref()
            .unwrap_or_else(|| panic!("{step} had no output"));
        let s = parse_tcp(f).unwrap_or_else(|e| panic!("{step}: {e}"));
        s.assert_valid(step);
        s
    }

    /// tshark's reading of `step`'s output frame (found by IP id in the final file).
    fn tshark(&self, step: &str) -> &Decoded {
        let ex = self.ex(step);
        let side = ex.from.other() as usize;
        let id = parse_tcp(&ex.sent).unwrap().id;
        let at: Vec<usize> = (0..self.out[side].len())
            .filter(|i| ip_id(&self.out[side][*i]) == Some(id))
            .collect();
        assert_eq!(at.len(), 1, "{step}: frames with IP id {id:#06x}: {at:?}");
        &self.tshark[side][at[0]]
    }

    fn flow(&self, name: &str) -> &Flow {
        &self.flows[name]
    }

    fn counter(&self, k: &str) -> u64 {
        self.stats["counters"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {k}"))
    }

    fn service(&self, name: &str) -> &Value {
        pcap_run::service(&self.stats, name)
    }

    fn ftp(&self, service: &str, k: &str) -> u64 {
        self.service(service)["ftp"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("no FTP counter {k} for {service}"))
    }
}

// ---------------------------------------------------------------------------------------------
// tshark.

/// What tshark is asked for, per frame.
const TSHARK_FIELDS: &[&str] = &[
    "frame.number",
    "ip.id",
    "ip.src",
    "ip.dst",
    "ip.checksum.status",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.checksum.status",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.len",
    "ftp.request.command",
    "ftp.response.code",
    "ftp.passive.ip",
    "ftp.passive.port",
    "ftp.passive.nat",
    "ftp.active.cip",
    "ftp.active.port",
    "ftp.active.nat",
];

/// tshark agrees the frame is well-formed: IP and TCP checksums good, from `src` to `dst`.
fn assert_tshark_valid(t: &Decoded, what: &str, src: (Ip, u16), dst: (Ip, u16)) {
    assert_eq!(t.get("ip.checksum.status"), ["1"], "{what}: {t:?}");
    assert_eq!(t.get("tcp.checksum.status"), ["1"], "{what}: {t:?}");
    assert_eq!(t.get("ip.src"), [ip_str(src.0)], "{what}: {t:?}");
    assert_eq!(t.get("ip.dst"), [ip_str(dst.0)], "{what}: {t:?}");
    assert_eq!(t.get("tcp.srcport"), [src.1.to_string()], "{what}: {t:?}");
    assert_eq!(t.get("tcp.dstport"), [dst.1.to_string()], "{what}: {t:?}");
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// Case 1a: the NAT control connection. rvs chose a server (its replies come from the VIP), and
/// the handshake, the ACK and the banner pass unchanged apart from NAT; the banner's bytes
/// cross 2^32 in the server's numbering.
#[test]
fn nat_control_connection_is_set_up_through_the_slow_path() {
    let o = outcome();
    let a = o.flow("a");
    let server = a.server.unwrap();
    assert!(
        server.0 == SRV11 || server.0 == SRV12,
        "{:?}",
        Ipv4Addr::from(server.0)
    );
    assert_eq!(server.1, 21);
    assert_eq!(
        a.peer,
        Some((CLIENT, 40000)),
        "NAT: the server sees the client"
    );
    let syn = o.out("a.syn");
    assert_eq!(
        (syn.eth_src, syn.eth_dst),
        (SERVER_PORT_MAC, server_mac(server.0))
    );
    assert_eq!(syn.ttl, 63);
    let sa = o.out("a.synack");
    assert_eq!(
        (sa.src, sa.sport, sa.dst, sa.dport),
        (VIP_NAT, 21, CLIENT, 40000)
    );
    assert_eq!((sa.eth_src, sa.eth_dst), (CLIENT_PORT_MAC, CLIENT_MAC));
    for step in ["a.ack", "a.banner"] {
        let (sent, out) = (o.sent(step), o.out(step));
        assert_eq!(out.payload, sent.payload, "{step}");
        assert_eq!(
            (out.seq, out.ack),
            (sent.seq, sent.ack),
            "{step}: nothing to adjust yet"
        );
    }
    let banner = o.sent("a.banner");
    assert!(
        banner
            .seq
            .checked_add(banner.payload.len() as u32)
            .is_none(),
        "the banner crosses 2^32"
    );
}

/// Case 1b: the server's 227 names itself; the client gets one naming the VIP, at the same
/// sequence number, two bytes shorter, checksums right (etherparse and tshark).
#[test]
fn nat_passive_227_names_the_vip() {
    let o = outcome();
    let a = o.flow("a");
    let sent = o.sent("a.227");
    let out = o.out("a.227");
    assert_eq!(
        sent.text(),
        format!(
            "227 Entering Passive Mode ({}).\r\n",
            csv(a.server_ip(), 10000)
        )
    );
    assert_eq!(
        out.text(),
        "227 Entering Passive Mode (203,0,113,5,39,16).\r\n"
    );
    assert_eq!(out.payload.len() + 2, sent.payload.len());
    assert_eq!(
        out.seq, sent.seq,
        "bytes before the change keep their numbers"
    );
    assert_eq!(out.ack, sent.ack, "the client sent nothing rewritten");
    assert_eq!(
        (out.src, out.sport, out.dst, out.dport),
        (VIP_NAT, 21, CLIENT, 40000)
    );
    assert_eq!((out.eth_src, out.eth_dst), (CLIENT_PORT_MAC, CLIENT_MAC));
    assert_eq!((out.id, out.ttl), (sent.id, 63));

    let t = o.tshark("a.227");
    assert_tshark_valid(t, "a.227", (VIP_NAT, 21), (CLIENT, 40000));
    assert_eq!(t.get("ftp.response.code"), ["227"], "{t:?}");
    assert_eq!(t.get("ftp.passive.ip"), [ip_str(VIP_NAT)], "{t:?}");
    assert_eq!(t.get("ftp.passive.port"), ["10000"], "{t:?}");
    // Wireshark adds `ftp.passive.nat` to a 227 whose address is not the packet's source
    // (as the refused one below): not to this one.
    assert!(t.get("ftp.passive.nat").is_empty(), "{t:?}");
    assert_eq!(t.get("tcp.seq_raw"), [out.seq.to_string()], "{t:?}");
}

/// Case 1c: after the 227 every server segment reaches the client two bytes earlier in
/// sequence space, and the client's ACK (in the numbering it saw) reaches the server in the
/// server's own numbering.
#[test]
fn nat_passive_later_segments_are_shifted_and_acks_mapped_back() {
    let o = outcome();
    let (sent, out) = (o.sent("a.150"), o.out("a.150"));
    assert_eq!(out.payload, sent.payload, "a.150 is not rewritten");
    assert_eq!(out.seq, sent.seq.wrapping_sub(2), "shifted by the 227's -2");
    let t = o.tshark("a.150");
    assert_tshark_valid(t, "a.150", (VIP_NAT, 21), (CLIENT, 40000));
    assert_eq!(t.get("ftp.response.code"), ["150"], "{t:?}");

    // The client acknowledges the end of "150" as it saw it; the server sees its own end.
    let (ack_sent, ack_out) = (o.sent("a.ack150"), o.out("a.ack150"));
    assert_eq!(
        ack_sent.ack,
        out.seq.wrapping_add(out.payload.len() as u32),
        "the client acks what it received"
    );
    let server_end = sent.seq.wrapping_add(sent.payload.len() as u32);
    assert_eq!(
        ack_out.ack, server_end,
        "mapped back to the server's numbering"
    );
    assert_eq!(
        ack_out.seq, ack_sent.seq,
        "the client's numbering is untouched"
    );
    let t = o.tshark("a.ack150");
    let server = o.flow("a").server.unwrap();
    assert_tshark_valid(t, "a.ack150", (CLIENT, 40000), server);
    assert_eq!(t.get("tcp.ack_raw"), [server_end.to_string()], "{t:?}");
    // The PASV itself went through untouched (NAT does not rewrite the client's side).
    assert_eq!(o.out("a.pasv").payload, b"PASV\r\n");
}

/// Case 1d: the client's data connection to VIP:10000 goes to the control connection's server
/// at port 10000 (not where round robin would send a new connection), and the server's
/// SYN-ACK comes back from VIP:10000.
#[test]
fn nat_passive_data_connection_reaches_the_control_server() {
    let o = outcome();
    let server = o.flow("a").server_ip();
    let (sent, syn) = (o.sent("ad.syn"), o.out("ad.syn"));
    assert_eq!(
        (syn.src, syn.sport, syn.dst, syn.dport),
        (CLIENT, 40100, server, 10000)
    );
    assert_eq!(
        (syn.eth_src, syn.eth_dst),
        (SERVER_PORT_MAC, server_mac(server))
    );
    assert!(syn.syn && !syn.has_ack);
    assert_eq!(syn.seq, sent.seq);
    let sa = o.out("ad.synack");
    assert_eq!(
        (sa.src, sa.sport, sa.dst, sa.dport),
        (VIP_NAT, 10000, CLIENT, 40100)
    );
    assert!(sa.syn && sa.has_ack);
    assert_eq!(sa.ack, sent.seq.wrapping_add(1));
    assert_tshark_valid(
        o.tshark("ad.syn"),
        "ad.syn",
        (CLIENT, 40100),
        (server, 10000),
    );
    assert_tshark_valid(
        o.tshark("ad.synack"),
        "ad.synack",
        (VIP_NAT, 10000),
        (CLIENT, 40100),
    );
}

/// Case 2: NAT active. The PORT naming the client goes through unchanged; the server's SYN
/// from :20 to the client's port leaves towards the client from VIP:20; the client's SYN-ACK
/// goes back to that server.
#[test]
fn nat_active_server_connects_back_as_the_vip() {
    let o = outcome();
    let (a, b) = (o.flow("a"), o.flow("b"));
    assert_ne!(
        a.server_ip(),
        b.server_ip(),
        "round robin put the two control connections on different servers"
    );
    let (sent, out) = (o.sent("b.port"), o.out("b.port"));
    assert_eq!(out.text(), "PORT 203,0,113,2,200,10\r\n");
    assert_eq!((out.seq, out.payload.len()), (sent.seq, sent.payload.len()));
    let t = o.tshark("b.port");
    assert_tshark_valid(t, "b.port", (CLIENT, 40001), b.server.unwrap());
    assert_eq!(t.get("ftp.request.command"), ["PORT"], "{t:?}");
    assert_eq!(t.get("ftp.active.cip"), [ip_str(CLIENT)], "{t:?}");
    assert_eq!(t.get("ftp.active.port"), ["51210"], "{t:?}");

    let syn = o.out("bd.syn");
    assert_eq!(
        (syn.src, syn.sport, syn.dst, syn.dport),
        (VIP_NAT, 20, CLIENT, 51210),
        "the client sees the VIP"
    );
    assert_eq!((syn.eth_src, syn.eth_dst), (CLIENT_PORT_MAC, CLIENT_MAC));
    assert!(syn.syn && !syn.has_ack);
    assert_eq!(syn.seq, o.sent("bd.syn").seq);
    assert_tshark_valid(o.tshark("bd.syn"), "bd.syn", (VIP_NAT, 20), (CLIENT, 51210));
    let sa = o.out("bd.synack");
    assert_eq!(
        (sa.src, sa.sport, sa.dst, sa.dport),
        (CLIENT, 51210, b.server_ip(), 20)
    );
    assert_eq!(sa.eth_dst, server_mac(b.server_ip()));
}

/// Case 3: full-NAT active. The client's PORT reaches the server naming the local address and
/// a port >= 61440; the server's ACK of the longer command is mapped back for the client; the
/// server's SYN to that local port reaches the client from VIP:20, and the client's SYN-ACK
/// reaches the server from the local address and port.
#[test]
fn fnat_active_port_is_rewritten_to_a_local_address() {
    let o = outcome();
    let c = o.flow("c");
    let (ctl_laddr, ctl_lport) = c.peer.unwrap();
    assert_eq!(
        ctl_laddr, LADDR,
        "full NAT: the server sees the local address"
    );
    assert!(
        ctl_lport < FTP_ACTIVE_FIRST,
        "control connection's local port {ctl_lport}"
    );
    let (sent, out) = (o.sent("c.port"), o.out("c.port"));
    assert_eq!(sent.text(), "PORT 203,0,113,2,20,1\r\n");
    let (addr, lport) = host_port(&out.payload).unwrap();
    assert_eq!(addr, LADDR, "{}", out.text());
    assert!(lport >= FTP_ACTIVE_FIRST, "{}", out.text());
    assert_eq!(out.text(), format!("PORT {}\r\n", csv(LADDR, lport)));
    assert_eq!(
        out.seq, sent.seq,
        "the first rewrite: bytes before it keep their numbers"
    );
    assert_eq!((out.src, out.dst), (LADDR, c.server_ip()));
    let delta = out.payload.len() as i64 - sent.payload.len() as i64;
    assert_ne!(delta, 0, "the rewrite changes the length");
    let t = o.tshark("c.port");
    assert_tshark_valid(t, "c.port", (LADDR, ctl_lport), c.server.unwrap());
    assert_eq!(t.get("ftp.active.cip"), [ip_str(LADDR)], "{t:?}");
    assert_eq!(t.get("ftp.active.port"), [lport.to_string()], "{t:?}");
    assert!(t.get("ftp.active.nat").is_empty(), "{t:?}");

    // The server acknowledges the rewritten command; the client sees its own numbering.
    let (ack_sent, ack_out) = (o.sent("c.200"), o.out("c.200"));
    let client_end = sent.seq.wrapping_add(sent.payload.len() as u32);
    assert_eq!(ack_sent.ack, (client_end as i64 + delta) as u32);
    assert_eq!(
        ack_out.ack, client_end,
        "mapped back to the client's numbering"
    );
    assert_eq!(
        (ack_out.src, ack_out.sport, ack_out.dst, ack_out.dport),
        (VIP_FNAT, 21, CLIENT, 40002)
    );
    assert_tshark_valid(o.tshark("c.200"), "c.200", (VIP_FNAT, 21), (CLIENT, 40002));

    let syn = o.out("cd.syn");
    assert_eq!(
        (syn.src, syn.sport, syn.dst, syn.dport),
        (VIP_FNAT, 20, CLIENT, 5121),
        "the client sees VIP:20 connect to the port it asked for"
    );
    assert_eq!((syn.eth_src, syn.eth_dst), (CLIENT_PORT_MAC, CLIENT_MAC));
    assert_eq!(
        o.sent("cd.syn").dport,
        lport,
        "the server connected to the local port"
    );
    assert_tshark_valid(o.tshark("cd.syn"), "cd.syn", (VIP_FNAT, 20), (CLIENT, 5121));
    let sa = o.out("cd.synack");
    assert_eq!(
        (sa.src, sa.sport, sa.dst, sa.dport),
        (LADDR, lport, c.server_ip(), 20)
    );
    assert_tshark_valid(
        o.tshark("cd.synack"),
        "cd.synack",
        (LADDR, lport),
        (c.server_ip(), 20),
    );
}

/// Case 4: a PORT naming another host and a 227 naming another host go through unchanged and
/// are counted; no expectation comes of them, so the connections they announce are dropped as
/// `no_service` (the exact drop map is checked in `counters_and_drops_are_exact`).
#[test]
fn refused_port_and_227_go_through_unchanged() {
    let o = outcome();
    for step in ["b.port_other", "b.227_other"] {
        let (sent, out) = (o.sent(step), o.out(step));
        assert_eq!(out.payload, sent.payload, "{step} unchanged");
        // Nothing on B was rewritten before (its only rewrite comes later): no shift.
        assert_eq!((out.seq, out.ack), (sent.seq, sent.ack), "{step}");
    }
    assert_eq!(
        o.out("b.227_other").text(),
        "227 Entering Passive Mode (192,0,2,99,39,17).\r\n"
    );
    let t = o.tshark("b.227_other");
    assert_eq!(t.get("ftp.passive.ip"), [ip_str(OTHER_SERVER)], "{t:?}");
    assert_eq!(
        t.get("ftp.passive.nat"),
        ["1"],
        "Wireshark sees the mismatch: {t:?}"
    );
    assert_eq!(t.get("tcp.checksum.status"), ["1"], "{t:?}");
    for step in ["x1.syn", "x2.syn"] {
        let id = o.sent(step).id;
        assert!(
            o.out.iter().flatten().all(|f| ip_id(f) != Some(id)),
            "{step} was forwarded"
        );
    }
    assert_eq!(o.ftp("ftp-nat", "ftp_refused_address"), 1);
    assert_eq!(o.ftp("ftp-nat", "ftp_refused_server"), 1);
}

/// Case 5: a 227 split across two segments. The first is held back (it ends inside a line
/// that may need rewriting), the second is dropped because the first is missing, neither
/// reaches the client; the retransmission of the whole line is rewritten and its expectation
/// takes the client's data connection to the server.
#[test]
fn split_227_is_held_back_and_the_retransmission_rewritten() {
    let o = outcome();
    let b = o.flow("b");
    for step in ["b.227_part1", "b.227_part2"] {
        let id = o.sent(step).id;
        assert!(
            o.out.iter().flatten().all(|f| ip_id(f) != Some(id)),
            "{step} came out"
        );
    }
    // Nothing that looks like a piece of the line reached the client either.
    let pieces = o.out[Side::Client as usize]
        .iter()
        .filter_map(|f| parse_tcp(f).ok())
        .filter(|s| s.payload.starts_with(b"227 Entering Pa") && !s.payload.ends_with(b"\r\n"))
        .count();
    assert_eq!(pieces, 0);
    let (p1, whole) = (o.sent("b.227_part1"), o.sent("b.227_whole"));
    assert_eq!(p1.seq, whole.seq, "a retransmission from the same byte");
    assert_eq!(whole.text(), split_227(b.server_ip()));
    let out = o.out("b.227_whole");
    assert_eq!(
        out.text(),
        "227 Entering Passive Mode (203,0,113,5,39,18).\r\n"
    );
    assert_eq!(out.seq, whole.seq, "B's first rewrite: no shift before it");
    let t = o.tshark("b.227_whole");
    assert_tshark_valid(t, "b.227_whole", (VIP_NAT, 21), (CLIENT, 40001));
    assert_eq!(t.get("ftp.passive.ip"), [ip_str(VIP_NAT)], "{t:?}");
    assert_eq!(t.get("ftp.passive.port"), ["10002"], "{t:?}");

    let syn = o.out("bd2.syn");
    assert_eq!(
        (syn.src, syn.sport, syn.dst, syn.dport),
        (CLIENT, 40101, b.server_ip(), 10002)
    );
    assert_eq!(o.stats["drops"]["ftp_held_back"], 1);
    assert_eq!(o.stats["drops"]["ftp_out_of_order"], 1);
}

/// Everything: the FTP counters of each service, the global counters, the exact drop map,
/// and every frame out of each port accounted for (the gratuitous ARPs at start and one frame
/// per forwarded input, nothing twice, nothing else).
#[test]
fn counters_and_drops_are_exact() {
    let o = outcome();
    let want_ftp: [(&str, &[(&str, u64)]); 2] = [
        (
            "ftp-nat",
            &[
                // PASV, PORT, PORT (refused), PASV, PASV
                ("ftp_commands", 5),
                // 227, 227 (refused), 227 (split, whole)
                ("ftp_replies", 3),
                ("ftp_rewrites", 2),
                ("ftp_expect_created", 3),
                ("ftp_expect_used", 3),
                ("ftp_refused_address", 1),
                ("ftp_refused_server", 1),
                ("ftp_control_conns", 2),
            ],
        ),
        (
            "ftp-fnat",
            &[
                ("ftp_commands", 1),
                ("ftp_rewrites", 1),
                ("ftp_expect_created", 1),
                ("ftp_expect_used", 1),
                ("ftp_control_conns", 1),
            ],
        ),
    ];
    for (svc, want) in want_ftp {
        let got: BTreeMap<String, u64> = o.service(svc)["ftp"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .filter(|(_, v)| *v != 0)
            .collect();
        let want: BTreeMap<String, u64> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(got, want, "{svc} FTP counters");
    }

    // Every non-SYN control frame goes to the slow path; all but the two split pieces return.
    let to_slow =
        o.ex.values()
            .filter(|e| e.ctl && !parse_tcp(&e.sent).unwrap().syn)
            .count() as u64;
    assert_eq!(o.counter("slowpath_out"), to_slow);
    assert_eq!(o.counter("slowpath_tx"), to_slow - 2);
    assert_eq!(o.counter("ftp_data_flows"), 4);
    assert_eq!(o.counter("flows_created"), 3 + 4);
    assert_eq!(o.counter("handover_out"), 0);
    assert!(
        o.stdout
            .contains("its frames go back to their workers, which send them in order"),
        "{}",
        o.stdout
    );

    let drops = nonzero_drops(&o.stats);
    let want = BTreeMap::from([
        ("other_mac".to_string(), o.fillers),
        ("ftp_held_back".to_string(), 1),
        ("ftp_out_of_order".to_string(), 1),
        ("no_service".to_string(), 2),
    ]);
    assert_eq!(drops, want, "drops");

    // Per service: connections, and packets each way as the worker forwarded them. As rvs
    // counts today, the two split pieces count as `pkts_out` (the worker forwarded them to the
    // slow path, which then dropped them), although they never left and are counted as drops.
    for svc in ["ftp-nat", "ftp-fnat"] {
        let counters = &o.service(svc)["counters"];
        let from = |side: Side| {
            o.ex.values()
                .filter(|e| e.service == svc && e.from == side)
                .count()
        };
        assert_eq!(counters["pkts_in"], from(Side::Client), "{svc} pkts_in");
        assert_eq!(counters["pkts_out"], from(Side::Server), "{svc} pkts_out");
    }
    assert_eq!(o.service("ftp-nat")["counters"]["conns"], 5);
    assert_eq!(o.service("ftp-fnat")["counters"]["conns"], 2);
    let servers = o.service("ftp-nat")["servers"].as_array().unwrap();
    let conns = |ip: Ip| {
        servers.iter().find(|s| s["address"] == ip_str(ip)).unwrap()["counters"]["conns"]
            .as_u64()
            .unwrap()
    };
    // A and its data connection on one server; B and its two on the other.
    assert_eq!(conns(o.flow("a").server_ip()), 2);
    assert_eq!(conns(o.flow("b").server_ip()), 3);

    // Output: per port, the gratuitous ARPs and exactly one frame per forwarded input.
    let garps = |side: Side| -> Vec<Ip> {
        let mut v: Vec<Ip> = o.out[side as usize]
            .iter()
            .filter_map(|f| arp_frame(f))
            .map(|a| {
                assert_eq!(a.arp.op, 1, "ARP request");
                assert_eq!(a.arp.spa, a.arp.tpa, "gratuitous");
                a.arp.spa
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        garps(Side::Client),
        [CLIENT_PORT_ADDR, VIP_NAT, VIP_FNAT],
        "client port ARPs"
    );
    assert_eq!(
        garps(Side::Server),
        [SERVER_PORT_ADDR, LADDR],
        "server port ARPs"
    );
    for side in [Side::Client, Side::Server] {
        let mut got: Vec<u16> = o.out[side as usize]
            .iter()
            .filter_map(|f| ip_id(f))
            .collect();
        got.sort();
        let mut want: Vec<u16> =
            o.ex.values()
                .filter(|e| e.out.is_some() && e.from.other() == side)
                .map(|e| parse_tcp(&e.sent).unwrap().id)
                .collect();
        want.sort();
        assert_eq!(got, want, "{side:?} port output (IP ids)");
    }
    let rx: Vec<&Vec<u8>> = o.inputs.iter().flatten().collect();
    let tx: Vec<&Vec<u8>> = o.out.iter().flatten().collect();
    assert_eq!(o.counter("rx_packets") as usize, rx.len());
    assert_eq!(
        o.counter("rx_bytes") as usize,
        rx.iter().map(|f| f.len()).sum::<usize>()
    );
    assert_eq!(o.counter("tx_packets") as usize, tx.len());
    assert_eq!(
        o.counter("tx_bytes") as usize,
        tx.iter().map(|f| f.len()).sum::<usize>()
    );
    assert_eq!(o.counter("garp_sent"), 5);
    for (name, side) in [("client", Side::Client), ("server", Side::Server)] {
        let p = pcap_run::port(&o.stats, name);
        assert_eq!(
            p["ipackets"],
            o.inputs[side as usize].len(),
            "{name} ipackets"
        );
        assert_eq!(p["opackets"], o.out[side as usize].len(), "{name} opackets");
    }
    eprintln!(
        "pcap_ftp: {} frames in ({} fillers), {} out, {:.1} s",
        rx.len(),
        o.fillers,
        tx.len(),
        o.secs
    );
}
