//! The schedulers (`rvs::lb::sched`): the cost of picking a real server for a new connection
//! with each algorithm, for services of 2, 10 and 100 servers, and Maglev (`mh`) on its own:
//! its table lookup for spread and for repeated clients, and the table build `update` does.
//!
//! Why: a scheduler runs once per new connection, so it bounds the connection rate; the
//! least-connection family scans every server, the hashing ones do not, and Maglev trades a
//! 128 KiB table (and a costly rebuild on every weight change) for its consistency.
//!
//! How: every scheduler is built by its ipvsadm name and called through `Box<dyn Scheduler>`, as
//! the service table does. Servers have weights 1 to 4 and uneven connection counts; clients are
//! pseudo-random addresses and ports. Counts are not updated after a pick (the pipeline does
//! that, not the scheduler), so the least-connection schedulers keep scanning the same list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rvs::flow::FlowKey;
use rvs::lb::sched::{self, MaglevHashing, Scheduler};
use rvs::lb::Dest;

const SERVER_COUNTS: [usize; 3] = [2, 10, 100];
const SCHEDULERS: [&str; 8] = ["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "mh"];
/// Distinct clients cycled through (a power of two).
const CLIENTS: usize = 1 << 16;

/// SplitMix64: a tiny, good-enough generator so the benches need no extra dependency.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` servers with weights 1 to 4 and uneven active/inactive counts.
fn dests(n: usize) -> Vec<Dest> {
    let mut s = 7;
    (0..n)
        .map(|i| Dest {
            addr: Ipv4Addr::from(0xc633_6400 + 10 + i as u32),
            port: 8080,
            weight: 1 + (splitmix(&mut s) % 4) as u32,
            index: i as u16,
            active: (splitmix(&mut s) % 1000) as u32,
            inactive: (splitmix(&mut s) % 100) as u32,
            passive: None,
        })
        .collect()
}

/// New connections from pseudo-random clients to one VIP.
fn keys() -> Vec<FlowKey> {
    let mut s = 11;
    (0..CLIENTS)
        .map(|_| {
            let r = splitmix(&mut s);
            FlowKey {
                src: Ipv4Addr::from(r as u32),
                dst: Ipv4Addr::new(203, 0, 113, 100),
                sport: 32_768 + ((r >> 32) % 28_232) as u16,
                dport: 80,
                proto: 6,
            }
        })
        .collect()
}

fn bench_schedule(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched_schedule");
    g.throughput(Throughput::Elements(1));
    let keys = keys();
    for name in SCHEDULERS {
        for n in SERVER_COUNTS {
            let d = dests(n);
            let mut s: Box<dyn Scheduler> = sched::by_name(name, &d).unwrap();
            assert!(s.schedule(&d, &keys[0]).is_some(), "{name} picks a server");
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    i = (i + 1) & (CLIENTS - 1);
                    s.schedule(black_box(&d), black_box(&keys[i]))
                })
            });
        }
    }
    g.finish();
}

fn bench_maglev(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched_mh");
    g.throughput(Throughput::Elements(1));
    let keys = keys();
    for n in SERVER_COUNTS {
        let d = dests(n);
        let mut mh = MaglevHashing::default();
        mh.update(&d);
        // The concrete type: no dynamic dispatch, so this is the table lookup itself.
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("lookup_spread_clients", n), |b| {
            b.iter(|| {
                i = (i + 1) & (CLIENTS - 1);
                mh.schedule(black_box(&d), black_box(&keys[i]))
            })
        });
        g.bench_function(BenchmarkId::new("lookup_same_client", n), |b| {
            b.iter(|| mh.schedule(black_box(&d), black_box(&keys[0])))
        });
    }
    // A rebuild fills all 65537 entries: milliseconds, not nanoseconds; fewer samples.
    g.sample_size(10);
    for n in SERVER_COUNTS {
        let d = dests(n);
        let mut mh = MaglevHashing::default();
        g.bench_function(BenchmarkId::new("build_table", n), |b| {
            b.iter(|| mh.update(black_box(&d)))
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
    targets = bench_schedule, bench_maglev
}
criterion_main!(benches);
