//! `rvs bench --dut external`: the generator and the sink on two real ethdevs (DPDK
//! `net_af_packet` vdevs on veths), around a device under test in another network namespace —
//! the Linux kernel with nft DNAT and conntrack, or `rvs run` itself — instead of around rvs's
//! workers on in-process ring ports.
//!
//! ```text
//!  ┌ this process, one lcore (--gen-cpu) ─────┐        ┌ DUT namespace (--dut-cpu) ┐
//!  │ generator ── client port (gen vdev) ─────┼─veth──▶│ VIP:80 ─DNAT─▶ server      │
//!  │ sink      ◀─ server port (sink vdev) ◀───┼─veth───│                            │
//!  │   └ answers each SYN with a SYN-ACK ─────┼─veth──▶│ un-NAT ─▶ client side ─────┼─▶ client port
//!  └──────────────────────────────────────────┘        └────────────────────────────┘
//! ```
//!
//! Flows are established with a real three-way handshake so that both DUTs accept them
//! without special settings (conntrack would mark a client ACK after a SYN it never saw
//! answered as invalid, and rvs, like IPVS, creates connections on SYNs only): the generator
//! sends each flow's SYN to the VIP; the sink, playing every real server, answers the DNATed SYN
//! with a SYN-ACK from the server's address; the DUT un-NATs it back to the client port, where it
//! confirms the flow; then the generator sends each flow's ACK, confirmed when it reaches the
//! sink. Both stages run closed loop with a window of outstanding packets and resend what was
//! not confirmed after a quiet spell, so that population is lossless whatever the DUT drops.
//!
//! Then the same templates, keys and access patterns as the in-process harness (`frame`,
//! `keys`, `sample`, `pace`): data ACKs of the established flows at `--rate`, the TSC stamp at
//! the end of each frame read back at the sink (latency quantiles from `report`).
//!
//! Per-core accounting: the report reads `/proc/stat` for `--dut-cpu` (and `--gen-cpu`) at the
//! start and end of the measured interval and gives the CPU's busy share (user, system, irq and
//! softirq time over all of its time), so `pps_per_core = out_pps / dut_busy`. What lands on that
//! CPU is the caller's arrangement (RPS, lcores; see scripts/kernel-compare.sh and
//! docs/PERFORMANCE.md): this module only measures it.
//!
//! Limitations: one generator lcore, one queue per port, TCP to one VIP:port; every flow
//! goes to one server address and port (`--server`); the sink only knows DNATed frames by their
//! destination. Figures depend on the kernel's af_packet path on both sides, which is shared
//! with the DUT's CPU only as far as the caller's steering allows.

use std::fmt::Write;
use std::net::Ipv4Addr;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::dpdk::{self, free_bulk, Eal, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue};
use crate::flow::rss::Sharding;
use crate::packet::PacketBuf;
use crate::wire::{ethertype, ipproto, EthernetFrame, Ipv4Packet, MacAddr, TcpFlags, TcpPacket};

use super::frame::{latency, read_stamp, tcp_frame, Ends, TcpSpec, Template, L4};
use super::harness::BenchError;
use super::keys::FlowKeys;
use super::pace::Pacer;
use super::report::{self, Latency};
use super::sample::{Pattern, SplitMix64};
use super::{Options, Rate};

/// The server's initial sequence number in the SYN-ACKs: the data template acknowledges
/// `0x2000_0000`, which is then exactly the next byte the server would send.
const SERVER_ISN: u32 = 0x1fff_ffff;
/// Packets of a population stage in flight at most (below the kernel's default backlog of 1000
/// frames per CPU, so a closed loop never overflows it).
const WINDOW: u64 = 512;
/// A population round ends when nothing was confirmed for this long; unconfirmed flows are sent
/// again in the next round.
const QUIET_MS: u64 = 200;
/// Population rounds before giving up.
const MAX_ROUNDS: u32 = 30;
/// Time after the measurement during which in-flight frames are still counted for the loss.
const DRAIN_MS: u64 = 200;

/// Where the external DUT is and how to address it.
#[derive(Clone, Debug)]
pub struct External {
    /// The generator's (client-side) vdev, e.g. `net_af_packet0,iface=gen-c`.
    pub gen_vdev: String,
    /// The sink's (server-side) vdev, e.g. `net_af_packet1,iface=gen-s`.
    pub sink_vdev: String,
    /// The DUT's MAC on the client side (destination of the generator's frames).
    pub dut_client_mac: MacAddr,
    /// The DUT's MAC on the server side (destination of the SYN-ACKs).
    pub dut_server_mac: MacAddr,
    /// The VIP and port the clients talk to.
    pub vip: (Ipv4Addr, u16),
    /// The address and port the DUT translates the VIP to.
    pub server: (Ipv4Addr, u16),
    /// The CPU of the generator and sink (the EAL's only lcore).
    pub gen_cpu: u16,
    /// The CPU whose busy share is the DUT's cost (None: not measured).
    pub dut_cpu: Option<u16>,
    /// A name for the DUT in the report (e.g. `kernel`, `rvs-veth`).
    pub label: String,
}

/// What one external run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExternalReport {
    /// The command line.
    pub command: String,
    /// `external`.
    pub mode: String,
    /// The DUT's label.
    pub dut: String,
    /// Established flows.
    pub flows: u64,
    /// Frame size with FCS.
    pub size: u16,
    /// Offered rate asked for.
    pub rate: String,
    /// Access pattern.
    pub pattern: String,
    /// Seconds measured.
    pub seconds: f64,
    /// CPU model, CPUs, memory.
    pub machine: String,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Packets the generator sent per second (the port took them).
    pub offered_pps: f64,
    /// DNATed packets the sink received per second: the DUT's forwarding rate.
    pub out_pps: f64,
    /// Data packets sent in the whole traffic phase (warm-up and measurement).
    pub sent_total: u64,
    /// Of those, received at the sink (counted until a short drain after the end).
    pub received_total: u64,
    /// `sent_total - received_total`.
    pub lost: u64,
    /// `lost / sent_total`.
    pub loss_share: f64,
    /// Paced packets that were due but that the port did not take.
    pub gen_lost: u64,
    /// Frames at the server port that were not the expected DNATed ones (wrong destination).
    pub sink_other: u64,
    /// Frames at the client port other than SYN-ACKs (the DUT sent traffic back).
    pub client_side_frames: u64,
    /// Latency from the generator's stamp to the sink.
    pub latency: Latency,
    /// Seconds the handshakes took.
    pub populate_secs: f64,
    /// Population rounds (1: nothing had to be sent again), SYN stage and ACK stage.
    pub populate_rounds: [u32; 2],
    /// The DUT's CPU (if measured).
    pub dut_cpu: Option<u16>,
    /// Its busy share over the measurement (0 to 1).
    pub dut_busy: f64,
    /// Its softirq share.
    pub dut_softirq: f64,
    /// Its system share.
    pub dut_system: f64,
    /// Its user share.
    pub dut_user: f64,
    /// NET_RX softirqs per second on it.
    pub dut_net_rx_per_sec: f64,
    /// The generator's CPU.
    pub gen_cpu: u16,
    /// Its busy share.
    pub gen_busy: f64,
    /// Hypervisor steal on the DUT's CPU (share).
    pub dut_steal: f64,
    /// `out_pps / dut_busy` (out_pps when the DUT's CPU is not measured).
    pub pps_per_core: f64,
}

impl ExternalReport {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A summary for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rvs bench --dut external: {} | {} flows, {} B tcp, {}, rate {}",
            self.dut, self.flows, self.size, self.pattern, self.rate
        );
        let _ = writeln!(s, "  machine     {}", self.machine);
        let _ = writeln!(
            s,
            "  throughput  {:.0} pps out ({:.0} offered, {} paced but refused) over {:.2} s",
            self.out_pps, self.offered_pps, self.gen_lost, self.seconds
        );
        let _ = writeln!(
            s,
            "  loss        {} of {} ({:.4}%); {} other frames at the sink, {} back at the client port",
            self.lost,
            self.sent_total,
            self.loss_share * 100.0,
            self.sink_other,
            self.client_side_frames
        );
        match self.dut_cpu {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "  DUT cpu {c}   busy {:.1}% (softirq {:.1}%, system {:.1}%, user {:.1}%, steal {:.1}%), {:.0} NET_RX softirqs/s → {:.0} pps per core",
                    self.dut_busy * 100.0,
                    self.dut_softirq * 100.0,
                    self.dut_system * 100.0,
                    self.dut_user * 100.0,
                    self.dut_steal * 100.0,
                    self.dut_net_rx_per_sec,
                    self.pps_per_core
                );
            }
            None => {
                let _ = writeln!(s, "  DUT cpu     not measured (give --dut-cpu)");
            }
        }
        let _ = writeln!(
            s,
            "  gen cpu {}   busy {:.1}%",
            self.gen_cpu,
            self.gen_busy * 100.0
        );
        let l = &self.latency;
        let _ = writeln!(
            s,
            "  latency     p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs max {:.1} µs ({} frames)",
            l.p50_ns / 1e3,
            l.p99_ns / 1e3,
            l.p999_ns / 1e3,
            l.max_ns / 1e3,
            l.samples
        );
        let _ = writeln!(
            s,
            "  populate    {:.2} s ({} SYN rounds, {} ACK rounds)",
            self.populate_secs, self.populate_rounds[0], self.populate_rounds[1]
        );
        s
    }
}

/// One CPU's times from /proc/stat, in USER_HZ ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// user + nice.
    pub user: u64,
    /// system.
    pub system: u64,
    /// irq.
    pub irq: u64,
    /// softirq.
    pub softirq: u64,
    /// idle + iowait.
    pub idle: u64,
    /// steal.
    pub steal: u64,
}

impl CpuTicks {
    /// The line `cpuN` of a /proc/stat text.
    pub fn parse(stat: &str, cpu: u16) -> Option<CpuTicks> {
        let name = format!("cpu{cpu}");
        let line = stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let f = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is inside user)
        Some(CpuTicks {
            user: f(0) + f(1),
            system: f(2),
            idle: f(3) + f(4),
            irq: f(5),
            softirq: f(6),
            steal: f(7),
        })
    }

    /// Read /proc/stat (zeros if unreadable).
    pub fn now(cpu: u16) -> CpuTicks {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| CpuTicks::parse(&s, cpu))
            .unwrap_or_default()
    }

    fn total(&self) -> u64 {
        self.user + self.system + self.irq + self.softirq + self.idle + self.steal
    }

    fn busy(&self) -> u64 {
        self.user + self.system + self.irq + self.softirq
    }

    /// Shares of `later - self`: (busy, softirq, system, user, steal).
    pub fn shares(&self, later: &CpuTicks) -> (f64, f64, f64, f64, f64) {
        let t = later.total().saturating_sub(self.total());
        if t == 0 {
            return (0.0, 0.0, 0.0, 0.0, 0.0);
        }
        let d = |a: u64, b: u64| b.saturating_sub(a) as f64 / t as f64;
        (
            d(self.busy(), later.busy()),
            d(self.softirq, later.softirq),
            d(self.system, later.system),
            d(self.user, later.user),
            d(self.steal, later.steal),
        )
    }
}

/// The count of softirq `kind` (e.g. `NET_RX`) on `cpu` in a /proc/softirqs text.
pub fn softirqs(text: &str, kind: &str, cpu: u16) -> Option<u64> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let col = header.iter().position(|c| *c == format!("CPU{cpu}"))?;
    let line = lines.find(|l| l.trim_start().starts_with(&format!("{kind}:")))?;
    line.split_whitespace().nth(col + 1)?.parse().ok()
}

fn net_rx_now(cpu: u16) -> u64 {
    std::fs::read_to_string("/proc/softirqs")
        .ok()
        .and_then(|s| softirqs(&s, "NET_RX", cpu))
        .unwrap_or(0)
}

/// Flows confirmed in a population stage.
#[derive(Clone, Debug)]
pub struct Bits {
    words: Vec<u64>,
    n: u64,
    set: u64,
}

impl Bits {
    /// `n` clear bits.
    pub fn new(n: u64) -> Bits {
        Bits {
            words: vec![0; n.div_ceil(64) as usize],
            n,
            set: 0,
        }
    }

    /// Set bit `i`; whether it was clear.
    pub fn set(&mut self, i: u64) -> bool {
        if i >= self.n {
            return false;
        }
        let Some(w) = self.words.get_mut((i / 64) as usize) else {
            return false;
        };
        let m = 1u64 << (i % 64);
        if *w & m != 0 {
            return false;
        }
        *w |= m;
        self.set += 1;
        true
    }

    /// Whether bit `i` is set (false out of range).
    pub fn get(&self, i: u64) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Bits set.
    pub fn count(&self) -> u64 {
        self.set
    }
}

/// What a received frame is, to the generator and the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// At the server port: a DNATed SYN of flow `i` (answer it), with its sequence number.
    Syn { flow: u64, seq: u32 },
    /// At the server port: a DNATed non-SYN segment of flow `i`.
    Data { flow: u64 },
    /// At the client port: the un-NATed SYN-ACK of flow `i`.
    SynAck { flow: u64 },
    /// Anything else.
    Other,
}

/// Classify a frame received on the server port (`server_side`) or the client port.
pub fn classify(
    frame: &[u8],
    server_side: bool,
    keys: &FlowKeys,
    vip: (Ipv4Addr, u16),
    server: (Ipv4Addr, u16),
) -> Seen {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Seen::Other;
    };
    if eth.ethertype() != ethertype::IPV4 {
        return Seen::Other;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return Seen::Other;
    };
    if ip.protocol() != ipproto::TCP || ip.is_fragment() {
        return Seen::Other;
    }
    let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
        return Seen::Other;
    };
    if server_side {
        if (ip.dst_addr(), tcp.dst_port()) != server {
            return Seen::Other;
        }
        let Some(flow) = keys.index_of(ip.src_addr(), tcp.src_port()) else {
            return Seen::Other;
        };
        if tcp.syn() && !tcp.ack() {
            Seen::Syn {
                flow,
                seq: tcp.seq_number().0,
            }
        } else {
            Seen::Data { flow }
        }
    } else {
        if (ip.src_addr(), tcp.src_port()) != vip || !(tcp.syn() && tcp.ack()) {
            return Seen::Other;
        }
        match keys.index_of(ip.dst_addr(), tcp.dst_port()) {
            Some(flow) => Seen::SynAck { flow },
            None => Seen::Other,
        }
    }
}

/// One port of the generator: its queues and its MAC.
struct Leg {
    _port: Port,
    rx: RxQueue,
    tx: TxQueue,
    mac: MacAddr,
}

fn open_leg(vdev: &str, option: &str, pool: &Mempool) -> Result<Leg, BenchError> {
    let (name, args) = vdev.split_once(',').unwrap_or((vdev, ""));
    let id = Port::attach_vdev(name, args).map_err(|e| {
        BenchError(format!(
            "{option} {vdev}: {e}; give a vdev such as net_af_packet0,iface=IFACE for an \
             interface that exists in this network namespace"
        ))
    })?;
    let pc = PortConfig {
        rss: false,
        promiscuous: true,
        ..PortConfig::default()
    };
    let (port, mut rx, mut tx) =
        Port::start(id, &pc, pool).map_err(|e| BenchError(format!("{option} {vdev}: {e}")))?;
    let (Some(rx), Some(tx)) = (rx.pop(), tx.pop()) else {
        return Err(BenchError(format!("{option} {vdev}: no queue")));
    };
    let mac = MacAddr(port.mac());
    Ok(Leg {
        _port: port,
        rx,
        tx,
        mac,
    })
}

/// Population stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Syn,
    Ack,
}

/// The generator, the sink and the SYN-ACK responder: one loop, one lcore.
struct Run<'a> {
    o: &'a Options,
    x: &'a External,
    // Ports before the pool they receive into (fields drop in order).
    client: Leg,
    server: Leg,
    pool: Mempool,
    keys: FlowKeys,
    flows: u64,
    hz: u64,
    syn: Template,
    data: Template,
    rx: Vec<Mbuf>,
    out: Vec<Mbuf>,
    replies: Vec<Mbuf>,
    scratch: Vec<u8>,
    // Population.
    confirmed: Bits,
    // Traffic.
    sent: u64,
    received: u64,
    sink_other: u64,
    client_side: u64,
    gen_lost: u64,
    record: bool,
    hist: Histogram<u64>,
}

impl Run<'_> {
    /// Receive on both ports: answer SYNs, confirm population, count data.
    fn receive(&mut self, stage: Option<Stage>) {
        let now = dpdk::tsc();
        for _ in 0..4 {
            let n = self.server.rx.rx_burst(&mut self.rx, 64);
            if n == 0 {
                break;
            }
            for m in &self.rx {
                match classify(m.data(), true, &self.keys, self.x.vip, self.x.server) {
                    Seen::Syn { flow, seq } => {
                        let (client, port) = self.keys.key(flow);
                        let spec = TcpSpec {
                            src_mac: self.server.mac,
                            dst_mac: self.x.dut_server_mac,
                            src: self.x.server.0,
                            dst: client,
                            sport: self.x.server.1,
                            dport: port,
                            seq: SERVER_ISN,
                            ack: seq.wrapping_add(1),
                            flags: TcpFlags::SYN | TcpFlags::ACK,
                        };
                        tcp_frame(&mut self.scratch, &spec, &[]);
                        if let Some(mut r) = self.pool.alloc() {
                            if r.extend_from_slice(&self.scratch) {
                                self.replies.push(r);
                            }
                        }
                    }
                    Seen::Data { flow } => {
                        if stage == Some(Stage::Ack) {
                            self.confirmed.set(flow);
                        } else if stage.is_none() {
                            self.received += 1;
                            if self.record {
                                self.hist
                                    .saturating_record(latency(now, read_stamp(m.data())));
                            }
                        }
                    }
                    Seen::SynAck { .. } | Seen::Other => self.sink_other += 1,
                }
            }
            free_bulk(&mut self.rx);
        }
        if !self.replies.is_empty() {
            self.server.tx.tx_burst(&mut self.replies);
            free_bulk(&mut self.replies);
        }
        for _ in 0..4 {
            let n = self.client.rx.rx_burst(&mut self.rx, 64);
            if n == 0 {
                break;
            }
            for m in &self.rx {
                match classify(m.data(), false, &self.keys, self.x.vip, self.x.server) {
                    Seen::SynAck { flow } => {
                        if stage == Some(Stage::Syn) {
                            self.confirmed.set(flow);
                        }
                    }
                    _ => self.client_side += 1,
                }
            }
            free_bulk(&mut self.rx);
        }
    }

    /// Send `tpl` for flows `idx` on the client port; how many the port took.
    fn send(&mut self, stage: Stage, idx: &[u64]) -> usize {
        if idx.is_empty() || !self.pool.alloc_bulk(&mut self.out, idx.len()) {
            return 0;
        }
        let stamp = dpdk::tsc();
        let tpl = match stage {
            Stage::Syn => &self.syn,
            Stage::Ack => &self.data,
        };
        for (m, i) in self.out.iter_mut().zip(idx) {
            fill(m, tpl, &self.keys, *i, self.x.vip, stamp);
        }
        let n = self.client.tx.tx_burst(&mut self.out);
        free_bulk(&mut self.out);
        n
    }

    /// One handshake stage, closed loop; the rounds it took.
    fn populate(&mut self, stage: Stage) -> Result<u32, BenchError> {
        self.confirmed = Bits::new(self.flows);
        let quiet = self.hz * QUIET_MS / 1000;
        let mut round = 1u32;
        let mut cursor = 0u64;
        let (mut sent_round, mut confirmed_round_start) = (0u64, 0u64);
        let mut last = (self.confirmed.count(), dpdk::tsc());
        let mut idx = Vec::with_capacity(self.o.burst);
        loop {
            self.receive(Some(stage));
            let now = dpdk::tsc();
            let got = self.confirmed.count();
            if got >= self.flows {
                return Ok(round);
            }
            if got != last.0 {
                last = (got, now);
            }
            let outstanding = sent_round.saturating_sub(got - confirmed_round_start);
            if cursor < self.flows && outstanding < WINDOW {
                idx.clear();
                let room = (WINDOW - outstanding).min(self.o.burst as u64);
                while cursor < self.flows && (idx.len() as u64) < room {
                    if !self.confirmed.get(cursor) {
                        idx.push(cursor);
                    }
                    cursor += 1;
                }
                let n = self.send(stage, &idx);
                sent_round += n as u64;
                // What the port refused is sent again from where it was.
                if n < idx.len() {
                    cursor = idx[n];
                }
                continue;
            }
            if now.saturating_sub(last.1) > quiet {
                if round >= MAX_ROUNDS {
                    return Err(BenchError(format!(
                        "{} handshakes: only {} of {} flows confirmed after {round} rounds; is \
                         the DUT forwarding (check --dut-client-mac, --dut-server-mac, --server \
                         and the DUT's rules)?",
                        match stage {
                            Stage::Syn => "SYN/SYN-ACK",
                            Stage::Ack => "ACK",
                        },
                        got,
                        self.flows
                    )));
                }
                round += 1;
                cursor = 0;
                sent_round = 0;
                confirmed_round_start = got;
                last.1 = now;
            }
        }
    }

    /// Data traffic until `until` (TSC); paced by `pacer` if any.
    fn traffic(&mut self, until: u64, pacer: &mut Option<Pacer>, pattern: &Pattern) {
        let mut rng = SplitMix64::new(self.o.seed);
        let mut idx = Vec::with_capacity(self.o.burst);
        loop {
            let now = dpdk::tsc();
            if now >= until {
                return;
            }
            let k = match pacer {
                None => self.o.burst,
                Some(p) => {
                    let due = p.due(now);
                    p.offered(due);
                    due
                }
            };
            if k > 0 {
                idx.clear();
                idx.extend((0..k).map(|_| pattern.pick(&mut rng)));
                let n = self.send(Stage::Ack, &idx);
                self.sent += n as u64;
                if pacer.is_some() {
                    self.gen_lost += (k - n) as u64;
                }
            }
            self.receive(None);
        }
    }
}

#[inline]
fn fill(m: &mut Mbuf, tpl: &Template, keys: &FlowKeys, i: u64, vip: (Ipv4Addr, u16), st: u64) {
    let (src, sport) = keys.key(i);
    if m.extend_from_slice(tpl.bytes()) {
        let ends = Ends {
            src,
            dst: vip.0,
            sport,
            dport: vip.1,
        };
        tpl.patch(m.data_mut(), &ends, st);
    }
}

/// Run against an external DUT.
pub fn run(o: &Options, x: &External) -> Result<ExternalReport, BenchError> {
    let keys = FlowKeys::for_lane(0, &Sharding::new(1, 32));
    if o.flows == 0 || o.flows > keys.capacity() {
        return Err(BenchError(format!(
            "--flows {}: 1 to {} with --dut external (254 client addresses × 64512 ports)",
            o.flows,
            keys.capacity()
        )));
    }
    let prefix = o
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("rvs-bench-x-{}", std::process::id()));
    let eal_args = super::harness::eal_args(&x.gen_cpu.to_string(), 256, prefix);
    let eal = Eal::init(&eal_args).map_err(|e| {
        BenchError(format!(
            "EAL initialisation failed ({e}); run as root, and give --gen-cpu a CPU this \
             process may use"
        ))
    })?;
    let hz = dpdk::tsc_hz().max(1);
    let pool = Mempool::new(
        "rvsx_pool",
        16383,
        256,
        dpdk::DEFAULT_DATA_ROOM,
        dpdk::socket_id(),
    )?;
    let client = open_leg(&x.gen_vdev, "--gen-vdev", &pool)?;
    let server = open_leg(&x.sink_vdev, "--sink-vdev", &pool)?;
    let result = {
        let mut r = Run {
            o,
            x,
            syn: Template::new(L4::Tcp(TcpFlags::SYN), client.mac, x.dut_client_mac, o.size),
            data: Template::new(L4::Tcp(TcpFlags::ACK), client.mac, x.dut_client_mac, o.size),
            pool,
            client,
            server,
            keys,
            flows: o.flows,
            hz,
            rx: Vec::with_capacity(64),
            out: Vec::with_capacity(o.burst),
            replies: Vec::with_capacity(64),
            scratch: Vec::with_capacity(64),
            confirmed: Bits::new(0),
            sent: 0,
            received: 0,
            sink_other: 0,
            client_side: 0,
            gen_lost: 0,
            record: false,
            hist: Histogram::new_with_bounds(1, hz.saturating_mul(60).max(2), 3)
                .map_err(|e| BenchError(format!("histogram: {e}")))?,
        };
        measure(&mut r)
    };
    drop(eal);
    result
}

fn measure(r: &mut Run<'_>) -> Result<ExternalReport, BenchError> {
    let (o, x, hz) = (r.o, r.x, r.hz);
    let t_pop = dpdk::tsc();
    let syn_rounds = r.populate(Stage::Syn)?;
    let ack_rounds = r.populate(Stage::Ack)?;
    let pop_secs = dpdk::tsc().saturating_sub(t_pop) as f64 / hz as f64;

    let pattern = Pattern::new(o.pattern, r.flows);
    let mut pacer = match o.rate {
        Rate::Max => None,
        Rate::Pps(p) => Some(Pacer::new(p, hz, dpdk::tsc(), o.burst)),
    };
    let start = dpdk::tsc();
    r.traffic(start + (o.warmup * hz as f64) as u64, &mut pacer, &pattern);
    // The measurement.
    r.hist.reset();
    r.record = true;
    let dut = x.dut_cpu.map(|c| (CpuTicks::now(c), net_rx_now(c)));
    let gen0 = CpuTicks::now(x.gen_cpu);
    let (sent0, recv0) = (r.sent, r.received);
    let t0 = dpdk::tsc();
    r.traffic(t0 + (o.duration * hz as f64) as u64, &mut pacer, &pattern);
    let t1 = dpdk::tsc();
    let (sent1, recv1) = (r.sent, r.received);
    let gen1 = CpuTicks::now(x.gen_cpu);
    let dut_end = x.dut_cpu.map(|c| (CpuTicks::now(c), net_rx_now(c)));
    r.record = false;
    // Drain: frames still in flight are not lost.
    let drain_end = dpdk::tsc() + hz * DRAIN_MS / 1000;
    while dpdk::tsc() < drain_end {
        r.receive(None);
    }

    let secs = t1.saturating_sub(t0) as f64 / hz as f64;
    let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let out_pps = per_s(recv1 - recv0);
    let (mut busy, mut softirq, mut system, mut user, mut steal, mut net_rx) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    if let (Some((a, na)), Some((b, nb))) = (dut, dut_end) {
        (busy, softirq, system, user, steal) = a.shares(&b);
        net_rx = per_s(nb.saturating_sub(na));
    }
    let h = &r.hist;
    let lost = r.sent.saturating_sub(r.received);
    Ok(ExternalReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        mode: "external".into(),
        dut: x.label.clone(),
        flows: o.flows,
        size: o.size,
        rate: o.rate.to_string(),
        pattern: o.pattern.to_string(),
        seconds: secs,
        machine: super::harness::machine(),
        tsc_hz: hz,
        offered_pps: per_s(sent1 - sent0),
        out_pps,
        sent_total: r.sent,
        received_total: r.received,
        lost,
        loss_share: if r.sent > 0 {
            lost as f64 / r.sent as f64
        } else {
            0.0
        },
        gen_lost: r.gen_lost,
        sink_other: r.sink_other,
        client_side_frames: r.client_side,
        latency: Latency {
            samples: h.len(),
            p50_ns: report::quantile_ns(h, 0.5, hz),
            p99_ns: report::quantile_ns(h, 0.99, hz),
            p999_ns: report::quantile_ns(h, 0.999, hz),
            max_ns: report::ticks_to_ns(h.max(), hz),
        },
        populate_secs: pop_secs,
        populate_rounds: [syn_rounds, ack_rounds],
        dut_cpu: x.dut_cpu,
        dut_busy: busy,
        dut_softirq: softirq,
        dut_system: system,
        dut_user: user,
        dut_net_rx_per_sec: net_rx,
        gen_cpu: x.gen_cpu,
        gen_busy: gen0.shares(&gen1).0,
        dut_steal: steal,
        pps_per_core: if x.dut_cpu.is_some() && busy > 0.0 {
            out_pps / busy
        } else {
            out_pps
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 1000 0 0 10 0 0 0\n\
                        cpu0 60 0 30 400 0 0 5 0 0 0\n\
                        cpu1 40 1 20 600 2 3 5 7 0 0\n\
                        intr 1 2 3\n";

    #[test]
    fn cpu_lines_parse_and_give_shares() {
        let a = CpuTicks::parse(STAT, 1).unwrap();
        assert_eq!(
            a,
            CpuTicks {
                user: 41,
                system: 20,
                irq: 3,
                softirq: 5,
                idle: 602,
                steal: 7
            }
        );
        assert!(CpuTicks::parse(STAT, 2).is_none());
        let b = CpuTicks {
            softirq: a.softirq + 60,
            idle: a.idle + 40,
            ..a
        };
        let (busy, soft, sys, user, steal) = a.shares(&b);
        assert!((busy - 0.6).abs() < 1e-9 && (soft - 0.6).abs() < 1e-9);
        assert_eq!((sys, user, steal), (0.0, 0.0, 0.0));
        assert_eq!(a.shares(&a).0, 0.0);
    }

    #[test]
    fn softirq_columns_are_found() {
        let t = "                    CPU0       CPU1\n          HI:          1          0\n      NET_RX:     123456        789\n";
        assert_eq!(softirqs(t, "NET_RX", 0), Some(123_456));
        assert_eq!(softirqs(t, "NET_RX", 1), Some(789));
        assert_eq!(softirqs(t, "NET_RX", 2), None);
        assert_eq!(softirqs(t, "NET_TX", 0), None);
    }

    #[test]
    fn bits_count_once() {
        let mut b = Bits::new(130);
        assert!(b.set(0) && b.set(129) && !b.set(129));
        assert!(!b.set(130));
        assert!(b.get(129) && !b.get(128) && !b.get(1000));
        assert_eq!(b.count(), 2);
    }

    #[test]
    fn frames_are_classified_by_side() {
        let keys = FlowKeys::for_lane(0, &Sharding::new(1, 32));
        let vip = (Ipv4Addr::new(203, 0, 113, 100), 80);
        let server = (Ipv4Addr::new(198, 51, 100, 11), 8080);
        let (client, port) = keys.key(777);
        let a = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut f = Vec::new();
        let spec = |src, dst, sport, dport, flags| TcpSpec {
            src_mac: a,
            dst_mac: a,
            src,
            dst,
            sport,
            dport,
            seq: 41,
            ack: 0,
            flags,
        };
        // A DNATed SYN, then a DNATed ACK, at the server port.
        tcp_frame(
            &mut f,
            &spec(client, server.0, port, server.1, TcpFlags::SYN),
            &[],
        );
        assert_eq!(
            classify(&f, true, &keys, vip, server),
            Seen::Syn { flow: 777, seq: 41 }
        );
        assert_eq!(classify(&f, false, &keys, vip, server), Seen::Other);
        tcp_frame(
            &mut f,
            &spec(client, server.0, port, server.1, TcpFlags::ACK),
            &[],
        );
        assert_eq!(
            classify(&f, true, &keys, vip, server),
            Seen::Data { flow: 777 }
        );
        // Not DNATed: still to the VIP.
        tcp_frame(
            &mut f,
            &spec(client, vip.0, port, vip.1, TcpFlags::ACK),
            &[],
        );
        assert_eq!(classify(&f, true, &keys, vip, server), Seen::Other);
        // The un-NATed SYN-ACK at the client port.
        tcp_frame(
            &mut f,
            &spec(vip.0, client, vip.1, port, TcpFlags::SYN | TcpFlags::ACK),
            &[],
        );
        assert_eq!(
            classify(&f, false, &keys, vip, server),
            Seen::SynAck { flow: 777 }
        );
        // Still from the server's address: the DUT did not un-NAT it.
        tcp_frame(
            &mut f,
            &spec(
                server.0,
                client,
                server.1,
                port,
                TcpFlags::SYN | TcpFlags::ACK,
            ),
            &[],
        );
        assert_eq!(classify(&f, false, &keys, vip, server), Seen::Other);
        assert_eq!(classify(&[0u8; 10], true, &keys, vip, server), Seen::Other);
    }

    #[test]
    fn text_report_names_the_per_core_figure() {
        let r = ExternalReport {
            dut: "kernel".into(),
            out_pps: 300_000.0,
            dut_cpu: Some(1),
            dut_busy: 0.5,
            pps_per_core: 600_000.0,
            ..ExternalReport::default()
        };
        let t = r.to_text();
        assert!(t.contains("external: kernel"), "{t}");
        assert!(
            t.contains("busy 50.0%") && t.contains("600000 pps per core"),
            "{t}"
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["pps_per_core"], 600_000.0);
    }
}
