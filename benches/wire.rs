//! Wire-level costs every forwarded packet pays: building the checked Ethernet, IPv4 and TCP
//! views (`rvs::wire`), verifying checksums, and patching checksums after a NAT rewrite.
//!
//! Why: the fast path parses each frame once and rewrites it in place; these numbers say how much
//! of a packet's budget is the parse, and what RFC 1624 incremental updates
//! (`rvs::wire::checksum::update*`, used by `rvs::xmit::nat::rewrite`) save over a full
//! recompute, for a bare 54-byte ACK and a full 1514-byte one. The pipeline's own L3/L4
//! parse is private, so its cost is approximated by the cheapest public path that runs it: a
//! frame that is parsed, misses the flow table and is dropped as `no_service`.
//!
//! Limitations: the rewrite benchmarks restore the 54 header bytes from a template before each
//! rewrite (a TTL that reached 1 would stop the NAT rewrite), so both variants include one
//! 54-byte copy; payloads stay hot in cache, unlike frames fresh from a NIC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/frames.rs"]
mod frames;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use frames::{Tcp, ACK, PSH};
use rvs::config::Config;
use rvs::stats::{DropReason, Layout};
use rvs::time::Instant;
use rvs::wire::{checksum, EthernetFrame, Ipv4Packet, MacAddr, TcpPacket};
use rvs::worker::{Io, Pipeline};
use rvs::xmit::nat::{self, End};

const PORT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const CLIENT: [u8; 4] = [203, 0, 113, 10];
const VIP: [u8; 4] = [203, 0, 113, 100];
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
/// Ethernet + IPv4 + TCP headers without options.
const HEADERS: usize = 14 + 20 + 20;

/// A client → VIP TCP segment (ACK|PSH) carrying `payload` bytes.
fn segment(dst: [u8; 4], payload: usize) -> Vec<u8> {
    let t = Tcp {
        src: CLIENT,
        dst,
        sport: 40_000,
        dport: 80,
        seq: 1_000,
        ack: 2_000,
        flags: ACK | PSH,
        payload: (0..payload).map(|i| i as u8).collect(),
        ..Tcp::default()
    };
    t.frame([0x02, 0xcc, 0, 0, 0, 0x10], PORT_MAC.0)
}

/// The two frame sizes measured: a bare ACK and a full-MSS data segment.
fn frames() -> [(&'static str, Vec<u8>); 2] {
    [("54B", segment(VIP, 0)), ("1514B", segment(VIP, 1460))]
}

/// The 5-tuple and flags, read through the checked views as the pipeline does.
fn parse(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, u8)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((
        ip.src_addr(),
        ip.dst_addr(),
        tcp.src_port(),
        tcp.dst_port(),
        tcp.flags().0,
    ))
}

/// [`parse`] plus the IPv4 header checksum the pipeline verifies on every frame.
fn parse_verify_ip(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, u8)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if !ip.verify_checksum() {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((
        ip.src_addr(),
        ip.dst_addr(),
        tcp.src_port(),
        tcp.dst_port(),
        tcp.flags().0,
    ))
}

/// [`parse_verify_ip`] plus the TCP checksum over the pseudo-header and the whole segment.
fn parse_verify_all(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, u8)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if !ip.verify_checksum() {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    if !tcp.verify_checksum(ip.src_addr(), ip.dst_addr()) {
        return None;
    }
    Some((
        ip.src_addr(),
        ip.dst_addr(),
        tcp.src_port(),
        tcp.dst_port(),
        tcp.flags().0,
    ))
}

/// Hands every frame the pipeline gives up back to the benchmark, so no iteration allocates.
#[derive(Default)]
struct RecycleIo {
    spare: Option<Vec<u8>>,
}

impl Io<Vec<u8>> for RecycleIo {
    fn alloc(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn send(&mut self, _port: u16, buf: Vec<u8>) {
        self.spare = Some(buf);
    }
    fn discard(&mut self, buf: Vec<u8>) {
        self.spare = Some(buf);
    }
}

const CONFIG: &str = r#"
[[port]]
name = "client"
vdev = "net_null0"
address = "203.0.113.1/24"

[[port]]
name = "server"
vdev = "net_null1"
address = "198.51.100.1/24"

[[service]]
name = "web"
protocol = "tcp"
vip = "203.0.113.100"
port = 80
[[service.server]]
address = "198.51.100.11"
port = 8080
"#;

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire_parse");
    g.throughput(Throughput::Elements(1));
    for (size, frame) in frames() {
        assert!(parse_verify_all(&frame).is_some(), "a valid frame");
        g.bench_with_input(BenchmarkId::new("views", size), &frame, |b, f| {
            b.iter(|| parse(black_box(f)))
        });
        g.bench_with_input(BenchmarkId::new("views+ip_csum", size), &frame, |b, f| {
            b.iter(|| parse_verify_ip(black_box(f)))
        });
        g.bench_with_input(
            BenchmarkId::new("views+ip_csum+tcp_csum", size),
            &frame,
            |b, f| b.iter(|| parse_verify_all(black_box(f))),
        );
    }

    // The pipeline's front end: Ethernet, IPv4 (checked, checksum verified), TCP, a flow-table
    // miss and the service lookups, ending in a counted `no_service` drop.
    let cfg = Config::parse(CONFIG, Path::new("bench-wire.toml")).unwrap();
    let mut p: Pipeline<Vec<u8>> = Pipeline::new(&cfg, &[PORT_MAC, PORT_MAC], 0, Instant::ZERO);
    let stray = segment([203, 0, 113, 200], 0);
    let mut io = RecycleIo::default();
    let now = Instant::from_secs(1);
    p.process(0, stray.clone(), now, &mut io);
    assert_eq!(
        p.counters().get(Layout::drop(DropReason::NoService)),
        1,
        "the stray frame is parsed and dropped as no_service"
    );
    g.bench_function(BenchmarkId::new("pipeline_rx_to_drop", "54B"), |b| {
        b.iter(|| {
            let mut buf = io.spare.take().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(&stray);
            p.process(0, black_box(buf), now, &mut io);
        })
    });
    g.finish();
}

/// Copies the headers back (the rewrite changed them, and decremented the TTL).
fn restore(buf: &mut [u8], template: &[u8]) {
    buf[..HEADERS].copy_from_slice(&template[..HEADERS]);
}

/// What NAT does without RFC 1624: rewrite the destination, then recompute both checksums.
fn rewrite_full(ip: &mut [u8], addr: Ipv4Addr, port: u16) {
    let mut pkt = Ipv4Packet::new_checked(ip).unwrap();
    let ttl = pkt.ttl();
    pkt.set_ttl(ttl - 1);
    pkt.set_dst_addr(addr);
    pkt.fill_checksum();
    let (src, dst) = (pkt.src_addr(), pkt.dst_addr());
    let mut tcp = TcpPacket::new_checked(pkt.payload_mut()).unwrap();
    tcp.set_dst_port(port);
    tcp.fill_checksum(src, dst);
}

fn bench_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire_checksum");
    g.throughput(Throughput::Elements(1));

    // The primitives: one RFC 1624 patch against RFC 1071 sums of a header and of a segment.
    let ck = 0x1c46;
    let (old, new) = (Ipv4Addr::from(VIP), SERVER);
    g.bench_function("update_addr", |b| {
        b.iter(|| checksum::update_addr(black_box(ck), black_box(old), black_box(new)))
    });
    g.bench_function("update16", |b| {
        b.iter(|| checksum::update16(black_box(ck), black_box(80), black_box(8080)))
    });
    let data: Vec<u8> = (0..1480u32).map(|i| (i * 7) as u8).collect();
    for len in [20usize, 1480] {
        g.bench_with_input(
            BenchmarkId::new("checksum", format!("{len}B")),
            &data[..len],
            |b, d| b.iter(|| checksum::checksum(black_box(d))),
        );
    }

    // A whole DNAT rewrite (TTL, address, port) with incremental and with full checksums.
    for (size, template) in frames() {
        let mut check = template.clone();
        nat::rewrite(&mut check[14..], End::Dst, SERVER, 8080).unwrap();
        let mut full = template.clone();
        rewrite_full(&mut full[14..], SERVER, 8080);
        assert_eq!(check, full, "both rewrites give the same frame");
        assert!(parse_verify_all(&check).is_some(), "checksums stay valid");

        let mut buf = template.clone();
        g.bench_function(BenchmarkId::new("nat_rewrite_incremental", size), |b| {
            b.iter(|| {
                restore(&mut buf, &template);
                nat::rewrite(black_box(&mut buf[14..]), End::Dst, SERVER, 8080)
            })
        });
        g.bench_function(BenchmarkId::new("nat_rewrite_full_recompute", size), |b| {
            b.iter(|| {
                restore(&mut buf, &template);
                rewrite_full(black_box(&mut buf[14..]), SERVER, 8080)
            })
        });
    }
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
    targets = bench_parse, bench_checksum
}
criterion_main!(benches);
