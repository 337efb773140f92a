//! The FTP helper's pieces (`rvs::helper::ftp`): parsing a control stream, formatting a PORT/227
//! argument, sequence adjustment with 1 and 16 recorded rewrites, and the slow path's whole
//! `Helper::packet` on an ordinary line, on a 227 reply it rewrites, and on a line after that
//! rewrite (whose sequence number and payload must be adjusted).
//!
//! Why: every packet of a control connection goes through the slow path, one thread for all
//! workers, so its per-packet cost caps how many FTP sessions rvs can carry; and the change log
//! is walked linearly, so its cost with a full log (16 changes) matters.
//!
//! How: the control stream is a realistic anonymous download (USER, PASS, SYST, TYPE, PWD, PASV,
//! 227, RETR, 150, 226, QUIT), one line per segment unless said otherwise; the helper is built
//! from a config as `tests/ftp_pipeline.rs` does and fed frames as the worker hands them over
//! (NAT applied). A 227 rewrite uses up the connection's state (an expectation, a change), so
//! it is measured on fresh connections made in untimed batches: each connection gets its banner
//! first, then the timed 227, then is closed (untimed) to withdraw its expectation.
//!
//! Limitations: the frames stay hot in cache; the slow path's rings and transmit are not
//! included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/frames.rs"]
mod frames;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant as WallClock};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use frames::{Tcp, ACK, PSH};
use rvs::config::{Config, ForwardMethod};
use rvs::flow::Dir;
use rvs::helper::ftp::ctl::{CtlKey, CtlMeta, Helper};
use rvs::helper::ftp::expect::Expectations;
use rvs::helper::ftp::mangle;
use rvs::helper::ftp::parse::{Side, StreamParser};
use rvs::helper::ftp::seqadj::ChangeLog;
use rvs::time::Instant;
use rvs::wire::SeqNumber;

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const CPORT: u16 = 40_000;
const S_ISN: u32 = 50_000;
const C_ISN: u32 = 1_000;

/// What an anonymous download's client sends.
const CLIENT_LINES: [&str; 8] = [
    "USER anonymous\r\n",
    "PASS guest@example.com\r\n",
    "SYST\r\n",
    "TYPE I\r\n",
    "PWD\r\n",
    "PASV\r\n",
    "RETR pub/releases/image-1.2.3.iso\r\n",
    "QUIT\r\n",
];

/// And what its server answers.
const SERVER_LINES: [&str; 10] = [
    "220 ProFTPD Server (Debian) [198.51.100.11]\r\n",
    "331 Anonymous login ok, send your complete email address as your password\r\n",
    "230 Anonymous access granted, restrictions apply\r\n",
    "215 UNIX Type: L8\r\n",
    "200 Type set to I\r\n",
    "257 \"/\" is the current directory\r\n",
    "227 Entering Passive Mode (198,51,100,11,39,16).\r\n",
    "150 Opening BINARY mode data connection for pub/releases/image-1.2.3.iso (1048576 bytes)\r\n",
    "226 Transfer complete\r\n",
    "221 Goodbye.\r\n",
];

const BANNER: &[u8] = b"220 ProFTPD Server (Debian) [198.51.100.11]\r\n";
const REPLY_227: &[u8] = b"227 Entering Passive Mode (198,51,100,11,39,16).\r\n";
const REPLY_150: &[u8] = b"150 Opening BINARY mode data connection (1048576 bytes)\r\n";
const COMMAND: &[u8] = b"RETR pub/releases/image-1.2.3.iso\r\n";

const CONFIG: &str = r#"
[[port]]
name = "client"
vdev = "net_null0"
address = "203.0.113.1/24"

[[port]]
name = "server"
vdev = "net_null1"
address = "198.51.100.1/24"

[ftp]
max_expectations = 65536

[[service]]
name = "ftp"
protocol = "tcp"
vip = "203.0.113.5"
port = 21
[service.ftp]
control_ports = [21]
[[service.server]]
address = "198.51.100.11"
"#;

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("ftp_parse");
    let client: Vec<&[u8]> = CLIENT_LINES.iter().map(|l| l.as_bytes()).collect();
    let server: Vec<&[u8]> = SERVER_LINES.iter().map(|l| l.as_bytes()).collect();
    let whole: Vec<u8> = server.concat();

    // One line per segment: each call sees whole lines, the parser's no-copy path.
    for (name, side, lines) in [
        ("client_line_per_segment", Side::Client, &client),
        ("server_line_per_segment", Side::Server, &server),
    ] {
        let mut p = StreamParser::new(side);
        let mut items = 0usize;
        p.feed(&lines.concat(), |_| items += 1);
        assert_eq!(items, 1, "{name}: PASV or 227 is the one event");
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for l in lines.iter() {
                    p.feed(black_box(l), |it| {
                        black_box(it);
                    });
                }
            })
        });
    }

    // Every line cut in two: the first half is buffered and the line is parsed from the copy.
    let halves: Vec<(&[u8], &[u8])> = server.iter().map(|l| l.split_at(l.len() / 2)).collect();
    let mut p = StreamParser::new(Side::Server);
    g.throughput(Throughput::Elements(halves.len() as u64));
    g.bench_function("server_line_split_in_two", |b| {
        b.iter(|| {
            for (a, z) in &halves {
                p.feed(black_box(a), |it| {
                    black_box(it);
                });
                p.feed(black_box(z), |it| {
                    black_box(it);
                });
            }
        })
    });

    // The whole server side in one segment.
    let mut p = StreamParser::new(Side::Server);
    g.bench_function("server_session_one_segment", |b| {
        b.iter(|| {
            p.feed(black_box(&whole), |it| {
                black_box(it);
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("ftp_mangle");
    g.throughput(Throughput::Elements(1));
    g.bench_function("port_arg", |b| {
        b.iter(|| mangle::port_arg(black_box(VIP), black_box(10_000)))
    });
    g.bench_function("eprt_arg", |b| {
        b.iter(|| mangle::eprt_arg(black_box(b'|'), black_box(VIP), black_box(10_000)))
    });
    g.finish();
}

/// Where the 227 lines of a server stream with `n` of them, 100 bytes apart, start; each has
/// its 19-byte `198,51,100,11,39,16` replaced by the 17-byte `203,0,113,5,39,16`.
fn change_log(n: usize) -> (ChangeLog, Vec<SeqNumber>) {
    let base = SeqNumber(S_ISN + 1);
    let arg_at = REPLY_227.iter().position(|b| *b == b'(').unwrap() + 1;
    let mut log = ChangeLog::new();
    let mut lines = Vec::new();
    for j in 0..n {
        let line = base + (j as i32 * 100);
        log.record(line + arg_at as i32, 19, b"203,0,113,5,39,16")
            .unwrap();
        lines.push(line);
    }
    (log, lines)
}

fn bench_seqadj(c: &mut Criterion) {
    let mut g = c.benchmark_group("ftp_seqadj");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 16] {
        let (log, lines) = change_log(n);
        let last = *lines.last().unwrap();
        // A segment after every change, and the peer's ack of it (in new space).
        let after = last + 100;
        let ack = after + log.total_delta() + 40;
        let mut out = Vec::with_capacity(2048);
        assert_eq!(
            log.rewrite_payload(last, REPLY_227, &mut out),
            Ok(REPLY_227.len() - 2)
        );

        g.bench_function(BenchmarkId::new("map_seq", n), |b| {
            b.iter(|| log.map_seq(black_box(after), black_box(40)))
        });
        g.bench_function(BenchmarkId::new("rewrite_payload_227", n), |b| {
            b.iter(|| log.rewrite_payload(black_box(last), black_box(REPLY_227), &mut out))
        });
        g.bench_function(BenchmarkId::new("unmap_ack", n), |b| {
            b.iter(|| log.unmap_ack(black_box(ack)))
        });
        // What the slow path does for a resent 227 segment: all three.
        g.bench_function(BenchmarkId::new("map+rewrite+unmap", n), |b| {
            b.iter(|| {
                let s = log.map_seq(black_box(last), REPLY_227.len());
                let r = log.rewrite_payload(black_box(last), black_box(REPLY_227), &mut out);
                let a = log.unmap_ack(black_box(ack));
                (s, r, a)
            })
        });
    }
    g.finish();
}

/// The control connection of client number `i` (each its own address, so that expectations
/// spread over the shared table as real clients' do).
fn meta(i: u32, dir: Dir) -> CtlMeta {
    let client = Ipv4Addr::from(0x0a00_0000 + i);
    CtlMeta {
        key: CtlKey {
            worker: 0,
            client,
            cport: CPORT,
            vip: VIP,
            vport: 21,
        },
        conn: i,
        dir,
        service: 0,
        dest: 0,
        method: ForwardMethod::Nat,
        server: SERVER,
        sport: 21,
        laddr: client,
    }
}

/// A control segment as the worker hands it over: NAT done, so a reply comes from the VIP and
/// a command goes to the server.
fn frame(m: &CtlMeta, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sport, dport) = match m.dir {
        Dir::Reply => (VIP, m.key.client, 21, CPORT),
        Dir::Original => (m.key.client, SERVER, CPORT, 21),
    };
    let t = Tcp {
        src: src.octets(),
        dst: dst.octets(),
        ttl: 63,
        sport,
        dport,
        seq,
        ack,
        flags: ACK | PSH,
        payload: payload.to_vec(),
        ..Tcp::default()
    };
    t.frame([0x02, 0, 0, 0, 0, 0x01], [0x02, 0xcc, 0, 0, 0, 0x10])
}

/// Offset of the TCP sequence number in an option-less frame.
const SEQ_AT: usize = 14 + 20 + 4;

fn set_seq(frame: &mut [u8], seq: u32) {
    frame[SEQ_AT..SEQ_AT + 4].copy_from_slice(&seq.to_be_bytes());
}

fn helper(cfg: &Config) -> Helper {
    Helper::new(cfg, Arc::new(Expectations::new(cfg.ftp.max_expectations)))
}

/// Connections set up per untimed batch in the 227 benchmark.
const BATCH: u32 = 256;

fn bench_helper(c: &mut Criterion) {
    let cfg = Config::parse(CONFIG, Path::new("bench-ftp.toml")).unwrap();
    let now = Instant::from_secs(1);
    let mut g = c.benchmark_group("ftp_helper_packet");
    g.throughput(Throughput::Elements(1));

    // An established connection's ordinary lines: parsed, nothing to rewrite or adjust.
    for (name, dir, line) in [
        ("client_command", Dir::Original, COMMAND),
        ("server_reply", Dir::Reply, REPLY_150),
    ] {
        let mut h = helper(&cfg);
        let m = meta(0, dir);
        let (isn, peer) = match dir {
            Dir::Original => (C_ISN + 1, S_ISN + 1),
            Dir::Reply => (S_ISN + 1, C_ISN + 1),
        };
        h.packet(&mut frame(&m, isn, peer, line), &m, now).unwrap();
        let mut seq = isn.wrapping_add(line.len() as u32);
        let mut buf = frame(&m, seq, peer, line);
        g.bench_function(name, |b| {
            b.iter(|| {
                set_seq(&mut buf, seq);
                seq = seq.wrapping_add(line.len() as u32);
                h.packet(black_box(&mut buf), &m, now)
            })
        });
    }

    // A 227 the helper rewrites: a change recorded, an expectation published, the frame
    // rebuilt 2 bytes shorter with fresh checksums.
    let mut h = helper(&cfg);
    let seq_227 = S_ISN + 1 + BANNER.len() as u32;
    let template_227 = frame(&meta(0, Dir::Reply), seq_227, C_ISN + 1, REPLY_227);
    let mut next_client = 0u32;
    g.bench_function("server_227_rewrite", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = (iters - done).min(u64::from(BATCH)) as u32;
                let metas: Vec<CtlMeta> =
                    (0..n).map(|k| meta(next_client + k, Dir::Reply)).collect();
                next_client = next_client.wrapping_add(n);
                let mut frames = Vec::with_capacity(metas.len());
                for m in &metas {
                    h.packet(&mut frame(m, S_ISN + 1, C_ISN + 1, BANNER), m, now)
                        .unwrap();
                    frames.push(frame(m, seq_227, C_ISN + 1, REPLY_227));
                }
                let start = WallClock::now();
                for (m, f) in metas.iter().zip(frames.iter_mut()) {
                    black_box(h.packet(black_box(f), m, now)).unwrap();
                }
                total += start.elapsed();
                for (m, f) in metas.iter().zip(&frames) {
                    assert_eq!(f.len(), template_227.len() - 2, "the 227 was rewritten");
                    h.closed(m.key);
                }
                done += u64::from(n);
            }
            total
        })
    });

    // The server's next lines on that connection: sequence number mapped, payload copied
    // through the change log, checksums recomputed.
    let mut h = helper(&cfg);
    let m = meta(0, Dir::Reply);
    h.packet(&mut frame(&m, S_ISN + 1, C_ISN + 1, BANNER), &m, now)
        .unwrap();
    let mut first = frame(&m, seq_227, C_ISN + 1, REPLY_227);
    h.packet(&mut first, &m, now).unwrap();
    assert_eq!(first.len(), template_227.len() - 2, "the 227 was rewritten");
    let mut seq = seq_227.wrapping_add(REPLY_227.len() as u32);
    let mut buf = frame(&m, seq, C_ISN + 1, REPLY_150);
    g.bench_function("server_reply_after_rewrite", |b| {
        b.iter(|| {
            set_seq(&mut buf, seq);
            seq = seq.wrapping_add(REPLY_150.len() as u32);
            h.packet(black_box(&mut buf), &m, now)
        })
    });
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
    targets = bench_parse, bench_seqadj, bench_helper
}
criterion_main!(benches);
