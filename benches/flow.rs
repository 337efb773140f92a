//! The per-worker flow table (`rvs::flow::FlowTable`): lookup hit and miss at 1K, 100K and 1M
//! live connections, and the steady-state churn of connections opening and closing.
//!
//! Why: every packet of an established flow is one lookup, and every new connection an insert
//! that a later close or expiry undoes; at 1M flows the hash index no longer fits in cache, and
//! these numbers say what that costs per packet.
//!
//! How: keys are spread like real clients (pseudo-random public addresses, ephemeral ports, one
//! VIP on port 80, NAT to one of ten servers). Hits probe the connections in a shuffled order,
//! half by their original key and half by their reply key; misses probe keys of clients that
//! were never inserted. Churn keeps the table at N: each iteration removes the oldest connection
//! and inserts a new one, and once per simulated second `expire` drains the wheel entries that
//! the removed connections left behind (lazily, as in the worker), so that cost is included.
//!
//! Limitations: single-threaded and in isolation; in the worker the same cache is shared with
//! packet buffers and the rest of the pipeline, so real misses cost more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etherparse::PacketBuilder;
use rvs::config::Config;
use rvs::flow::{Conn, ConnId, FlowKey, FlowTable, TcpState};
use rvs::time::Instant;
use rvs::wire::MacAddr;
use rvs::worker::{Io, Pipeline};

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);

/// The table sizes measured, with the label criterion prints.
const SIZES: [(usize, &str); 3] = [(1_000, "1K"), (100_000, "100K"), (1_000_000, "1M")];

/// SplitMix64: a tiny, good-enough generator so the benches need no extra dependency.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A bijection on u32 (odd multiply, xorshift), so distinct `i` give distinct client addresses.
fn mix32(mut x: u32) -> u32 {
    x = x.wrapping_mul(0x9e37_79b1);
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x
}

/// Connection number `i`, built from `template`: a client address unique to `i`, a random
/// ephemeral port, one of ten servers. `expires` is when it lapses.
fn conn(template: &Conn, i: u32, expires: Instant) -> Conn {
    let client = Ipv4Addr::from(mix32(i));
    let cport = 32_768 + (mix32(i ^ 0x5bd1_e995) % 28_232) as u16;
    let mut c = template.clone();
    c.client = client;
    c.vip = VIP;
    c.server = Ipv4Addr::new(198, 51, 100, 11 + (i % 10) as u8);
    c.cport = cport;
    c.vport = 80;
    c.sport = 8080;
    c.service = 0;
    c.dest = (i % 10) as u16;
    c.proto = 6;
    c.state = TcpState::Established;
    c.expires = expires;
    c.laddr = client;
    c.lport = cport;
    c.fnat = false;
    c.ftp = 0;
    c
}

/// A `Conn` to clone from. `Conn` has a crate-private field (its timer-wheel second) and no
/// public constructor, so outside rvs the only source of one is a flow the pipeline made: push
/// one SYN through a minimal NAT pipeline and copy its connection.
fn template() -> Conn {
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

[[service]]
name = "web"
protocol = "tcp"
vip = "203.0.113.100"
port = 80
[[service.server]]
address = "198.51.100.11"
port = 8080
"#;
    struct Sink;
    impl Io<Vec<u8>> for Sink {
        fn alloc(&mut self) -> Option<Vec<u8>> {
            None
        }
        fn send(&mut self, _port: u16, _buf: Vec<u8>) {}
    }
    let mac = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    let cfg = Config::parse(CONFIG, Path::new("bench-flow.toml")).unwrap();
    let mut p: Pipeline<Vec<u8>> = Pipeline::new(&cfg, &[mac, mac], 0, Instant::ZERO);
    let mut syn = Vec::new();
    PacketBuilder::ethernet2([0x02, 0xcc, 0, 0, 0, 0x10], mac.0)
        .ipv4([203, 0, 113, 10], VIP.octets(), 64)
        .tcp(40_000, 80, 1_000, 65_535)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    p.process(0, syn, Instant::ZERO, &mut Sink);
    let conn = p.flows().iter().next().map(|(_, c)| c.clone());
    conn.unwrap()
}

/// A table holding connections `0..n`, none expiring during the benchmark.
fn filled(template: &Conn, n: usize) -> FlowTable {
    let mut t = FlowTable::new(n, Instant::ZERO);
    for i in 0..n as u32 {
        t.insert(conn(template, i, Instant::from_secs(3_000)))
            .unwrap();
    }
    t
}

/// Fisher-Yates with [`splitmix`].
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed;
    for i in (1..v.len()).rev() {
        let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

fn bench_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_lookup");
    g.throughput(Throughput::Elements(1));
    let template = template();
    for (n, label) in SIZES {
        let t = filled(&template, n);
        // Half the probes by original key, half by reply key.
        let mut hits: Vec<FlowKey> = t
            .iter()
            .map(|(_, c)| {
                if c.cport % 2 == 0 {
                    c.original_key()
                } else {
                    c.reply_key()
                }
            })
            .collect();
        shuffle(&mut hits, 1);
        // Clients numbered past the table: never inserted.
        let misses: Vec<FlowKey> = (n as u32..2 * n as u32)
            .map(|i| conn(&template, i, Instant::ZERO).original_key())
            .collect();
        assert!(hits.iter().all(|k| t.lookup(k).is_some()));
        assert!(misses.iter().all(|k| t.lookup(k).is_none()));

        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("hit", label), |b| {
            b.iter(|| {
                i = if i + 1 == hits.len() { 0 } else { i + 1 };
                t.lookup(black_box(&hits[i]))
            })
        });
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("miss", label), |b| {
            b.iter(|| {
                i = if i + 1 == misses.len() { 0 } else { i + 1 };
                t.lookup(black_box(&misses[i]))
            })
        });
    }
    g.finish();
}

/// Seconds a connection lives in the churn benchmark, and the timeout it is inserted with
/// (longer, so only explicit removal ends a connection).
const LIFETIME_SECS: u64 = 16;
const TIMEOUT_SECS: u64 = 2 * LIFETIME_SECS;

fn bench_churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_churn");
    g.throughput(Throughput::Elements(1));
    let template = template();
    for (n, label) in SIZES {
        // n live connections, per_sec of them replaced each simulated second.
        let per_sec = (n as u64 / LIFETIME_SECS).max(1);
        let mut t = FlowTable::new(n, Instant::ZERO);
        let mut live: VecDeque<ConnId> = VecDeque::with_capacity(n);
        let mut now = Instant::ZERO;
        for i in 0..n as u32 {
            live.push_back(
                t.insert(conn(&template, i, now + secs(TIMEOUT_SECS)))
                    .unwrap(),
            );
        }
        let mut next = n as u32;
        let mut in_sec = 0u64;
        g.bench_function(BenchmarkId::new("insert+remove", label), |b| {
            b.iter(|| {
                let old = live.pop_front().unwrap();
                black_box(t.remove(old));
                let id = t
                    .insert(conn(&template, next, now + secs(TIMEOUT_SECS)))
                    .unwrap();
                live.push_back(id);
                next = next.wrapping_add(1);
                in_sec += 1;
                if in_sec == per_sec {
                    in_sec = 0;
                    now = now + secs(1);
                    // Nothing lapses (every connection is removed first): this only drains
                    // the stale wheel entries, as the worker's poll does.
                    black_box(t.expire(now, usize::MAX, |_| {}));
                }
            })
        });
        assert_eq!(t.len(), n, "churn keeps the table at its size");
    }
    g.finish();
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
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
    targets = bench_lookup, bench_churn
}
criterion_main!(benches);
