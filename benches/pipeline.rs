//! The worker's whole fast path, `Pipeline::process` on `Vec<u8>` frames: a NAT flow's packets
//! in both directions once it is established (one flow, and one of 100K), and new connections'
//! SYNs (parse, miss, schedule, insert, rewrite, route, send).
//!
//! Why: this is the per-packet cost a worker core pays before any driver cost; the rest of the
//! benches break it down (`wire`, `flow`, `sched`). The gap between one flow and 100K flows is
//! the cache misses of the flow table and the connection slots.
//!
//! How: a recording `Io` hands every sent or dropped frame back, and each iteration restores the
//! 54 header bytes the NAT rewrite changed (the payload is untouched), so no iteration
//! allocates and the copy costs a few nanoseconds. Neighbours are static (no ARP). Clients are
//! pseudo-random addresses behind the client port's gateway. The SYN benchmark sends batches of
//! 4096 new connections, then (untimed) moves the clock past the SYN timeout and polls until
//! the flow table is empty again, so each batch starts from the same state with the table's
//! memory already grown, as in a worker that has been running for a while.
//!
//! Limitations: no DPDK (mbuf access and the driver are not included), one worker (no handover),
//! no FTP or full-NAT services on this path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/frames.rs"]
mod frames;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant as WallClock};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use frames::{tcp_flags, Tcp, ACK};
use rvs::config::Config;
use rvs::stats::{Counter, Layout};
use rvs::time::Instant;
use rvs::wire::MacAddr;
use rvs::worker::{Io, Pipeline};

const CLIENT_SIDE_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const SERVER_SIDE_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const GATEWAY_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 0xfe];
const VIP: [u8; 4] = [203, 0, 113, 100];
/// Ethernet + IPv4 + TCP headers without options: all that NAT rewrites.
const HEADERS: usize = 14 + 20 + 20;
/// New connections per untimed reset in the SYN benchmark.
const SYN_BATCH: usize = 4096;

const CONFIG: &str = r#"
[[port]]
name = "client"
vdev = "net_null0"
address = "203.0.113.1/24"
gateway = "203.0.113.254"

[[port]]
name = "server"
vdev = "net_null1"
address = "198.51.100.1/24"

[[neighbor]]
port = "client"
ip = "203.0.113.254"
mac = "02:cc:00:00:00:fe"

[[neighbor]]
port = "server"
ip = "198.51.100.11"
mac = "02:55:00:00:00:11"

[[neighbor]]
port = "server"
ip = "198.51.100.12"
mac = "02:55:00:00:00:12"

[[service]]
name = "web"
protocol = "tcp"
vip = "203.0.113.100"
port = 80
scheduler = "wlc"
[[service.server]]
address = "198.51.100.11"
port = 8080
[[service.server]]
address = "198.51.100.12"
port = 8080
"#;

/// Hands every frame the pipeline gives up back to the benchmark, so no iteration allocates.
#[derive(Default)]
struct RecycleIo {
    spare: Option<Vec<u8>>,
    /// Where the last frame went: (port, destination MAC, destination address).
    last: Option<(u16, [u8; 6], Ipv4Addr)>,
    dropped: u64,
}

impl Io<Vec<u8>> for RecycleIo {
    fn alloc(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn send(&mut self, port: u16, buf: Vec<u8>) {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&buf[..6]);
        let dst = Ipv4Addr::new(buf[30], buf[31], buf[32], buf[33]);
        self.last = Some((port, mac, dst));
        self.spare = Some(buf);
    }
    fn discard(&mut self, buf: Vec<u8>) {
        self.dropped += 1;
        self.spare = Some(buf);
    }
}

impl RecycleIo {
    /// A buffer holding `template`: the recycled one when its length matches (only the headers
    /// need restoring), else a fresh copy.
    fn frame(&mut self, template: &[u8]) -> Vec<u8> {
        match self.spare.take() {
            Some(mut b) if b.len() == template.len() => {
                b[..HEADERS].copy_from_slice(&template[..HEADERS]);
                b
            }
            Some(mut b) => {
                b.clear();
                b.extend_from_slice(template);
                b
            }
            None => template.to_vec(),
        }
    }
}

fn pipeline() -> Pipeline<Vec<u8>> {
    let cfg = Config::parse(CONFIG, Path::new("bench-pipeline.toml")).unwrap();
    Pipeline::new(&cfg, &[CLIENT_SIDE_MAC, SERVER_SIDE_MAC], 0, Instant::ZERO)
}

/// SplitMix64: a tiny, good-enough generator so the benches need no extra dependency.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` distinct clients (address in 10.0.0.0/8, ephemeral port).
fn clients(n: usize, seed: u64) -> Vec<(Ipv4Addr, u16)> {
    let mut s = seed;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let r = splitmix(&mut s);
        let c = (
            Ipv4Addr::from(0x0a00_0000 | (r as u32 & 0x00ff_ffff)),
            32_768 + ((r >> 32) % 28_232) as u16,
        );
        if seen.insert(c) {
            out.push(c);
        }
    }
    out
}

/// A TCP segment carrying `payload` bytes. `flags`: S(YN), A(CK), P(SH); with ACK it
/// acknowledges 2000.
fn tcp(
    macs: ([u8; 6], MacAddr),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: &str,
    payload: usize,
) -> Vec<u8> {
    let flags = tcp_flags(flags);
    let t = Tcp {
        src: src.0.octets(),
        dst: dst.0.octets(),
        sport: src.1,
        dport: dst.1,
        seq: 1_000,
        ack: if flags & ACK != 0 { 2_000 } else { 0 },
        flags,
        payload: vec![0x5a; payload],
        ..Tcp::default()
    };
    t.frame(macs.0, macs.1 .0)
}

/// A client's request and the server's full-size reply on an established flow, as frames.
struct Flow {
    request: Vec<u8>,
    reply: Vec<u8>,
}

/// Open a NAT connection for `client` (SYN, SYN-ACK, ACK through the pipeline) and return the
/// frames of its established data packets.
fn establish(p: &mut Pipeline<Vec<u8>>, io: &mut RecycleIo, client: (Ipv4Addr, u16)) -> Flow {
    let now = Instant::from_secs(1);
    let vip = (Ipv4Addr::from(VIP), 80);
    p.process(
        0,
        tcp((GATEWAY_MAC, CLIENT_SIDE_MAC), client, vip, "S", 0),
        now,
        io,
    );
    let (port, mac, server) = io.last.take().expect("the SYN was forwarded");
    assert_eq!(port, 1);
    let server = (server, 8080);
    p.process(
        1,
        tcp((mac, SERVER_SIDE_MAC), server, client, "SA", 0),
        now,
        io,
    );
    p.process(
        0,
        tcp((GATEWAY_MAC, CLIENT_SIDE_MAC), client, vip, "A", 0),
        now,
        io,
    );
    assert_eq!(io.dropped, 0, "the handshake went through");
    Flow {
        request: tcp((GATEWAY_MAC, CLIENT_SIDE_MAC), client, vip, "AP", 100),
        reply: tcp((mac, SERVER_SIDE_MAC), server, client, "AP", 1460),
    }
}

fn bench_established(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_nat_established");
    g.throughput(Throughput::Elements(1));
    let now = Instant::from_secs(2);
    for n in [1usize, 100_000] {
        let mut p = pipeline();
        let mut io = RecycleIo::default();
        let flows: Vec<Flow> = clients(n, 3)
            .into_iter()
            .map(|cl| establish(&mut p, &mut io, cl))
            .collect();
        assert_eq!(p.flows().len(), n);
        let label = if n == 1 { "1_flow" } else { "100K_flows" };
        for (name, port, pick) in [
            ("client_to_server_154B", 0u16, 0usize),
            ("server_to_client_1514B", 1u16, 1usize),
        ] {
            let templates: Vec<&[u8]> = flows
                .iter()
                .map(|f| {
                    if pick == 0 {
                        &f.request[..]
                    } else {
                        &f.reply[..]
                    }
                })
                .collect();
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter(|| {
                    i = if i + 1 == templates.len() { 0 } else { i + 1 };
                    let buf = io.frame(templates[i]);
                    p.process(port, black_box(buf), now, &mut io);
                })
            });
            assert_eq!(io.dropped, 0, "{name}/{label}: every packet was forwarded");
        }
    }
    g.finish();
}

fn bench_syn(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_nat_new_connection");
    g.throughput(Throughput::Elements(1));
    let vip = (Ipv4Addr::from(VIP), 80);
    let syns: Vec<Vec<u8>> = clients(SYN_BATCH, 5)
        .into_iter()
        .map(|cl| tcp((GATEWAY_MAC, CLIENT_SIDE_MAC), cl, vip, "S", 0))
        .collect();
    let mut p = pipeline();
    let mut io = RecycleIo::default();
    let mut now = Instant::from_secs(1);
    let flows_made =
        |p: &Pipeline<Vec<u8>>| p.counters().get(Layout::counter(Counter::FlowsCreated));
    g.bench_function("syn", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = (iters - done).min(SYN_BATCH as u64) as usize;
                let before = flows_made(&p);
                let start = WallClock::now();
                for s in &syns[..n] {
                    let buf = io.frame(s);
                    p.process(0, black_box(buf), now, &mut io);
                }
                total += start.elapsed();
                assert_eq!(flows_made(&p) - before, n as u64, "every SYN made a flow");
                // Reset: past every SYN timeout, and expire them all.
                now = now + Duration::from_secs(200);
                while !p.flows().is_empty() {
                    p.poll(now, &mut io);
                }
                done += n as u64;
            }
            total
        })
    });
    assert_eq!(io.dropped, 0, "no SYN was dropped");
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_established, bench_syn
}
criterion_main!(benches);
