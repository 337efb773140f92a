//! Wiring: EAL, mempool, ports, the worker lcore, signals, the status line and orderly shutdown.
//!
//! Thread model (this build): the main lcore runs the control loop (signals, periodic status,
//! the stats file); one worker lcore owns every port's RX queue 0 and TX queue 0 and runs the
//! [`Pipeline`]. The worker shares nothing mutable with the control loop except its published
//! counter block (see `stats`) and the stop flag.
//!
//! Shutdown order: stop flag → worker publishes a last time, drops its pipeline (freeing queued
//! mbufs) and returns → ports stop and close → mempool → EAL cleanup.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::dpdk::{self, DpdkError, Eal, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue};
use crate::packet::PacketBuf;
use crate::stats::{self, Counter, DropReason, Layout, LbCounter, LocalBlock, SharedBlock};
use crate::time::Instant;
use crate::wire::MacAddr;
use crate::worker::{Io, Pipeline};

/// A setup or runtime failure with a message an operator can act on.
#[derive(Debug)]
pub struct RunError(String);

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

impl From<DpdkError> for RunError {
    fn from(e: DpdkError) -> Self {
        RunError(e.to_string())
    }
}

fn ctx(what: impl fmt::Display) -> impl FnOnce(DpdkError) -> RunError {
    move |e| RunError(format!("{what}: {e}"))
}

/// Options of `rvs run` beyond the config file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Write the counters as JSON here at every status interval and at exit.
    pub stats_file: Option<PathBuf>,
}

/// Data room of packet mbufs: a 1500-byte MTU frame plus room to encapsulate.
const MBUF_DATA_ROOM: u16 = dpdk::DEFAULT_DATA_ROOM;
/// How often a worker publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Run until SIGINT/SIGTERM. Prints a status line every `stats.interval_secs` and the final
/// counters at exit.
pub fn run(cfg: &Config, opts: &RunOptions) -> Result<(), RunError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| RunError(format!("cannot install the handler for signal {sig}: {e}")))?;
    }

    let eal = Eal::init(&cfg.eal_args()).map_err(ctx(
        "EAL initialisation failed (check eal.args, hugepages or --no-huge, and that no other rvs uses the same --file-prefix)",
    ))?;
    let workers = dpdk::worker_lcores();
    if workers.len() < cfg.workers.count {
        return Err(RunError(format!(
            "the EAL gave {} worker lcore(s) but workers.count is {}: give eal.args an lcore list with one main lcore plus the workers, e.g. [\"-l\", \"0-{}\"]",
            workers.len(),
            cfg.workers.count,
            cfg.workers.count
        )));
    }
    let pool = Arc::new(
        Mempool::new(
            "rvs_pkt",
            cfg.workers.mbufs,
            256,
            MBUF_DATA_ROOM,
            dpdk::socket_id(),
        )
        .map_err(ctx(format!(
            "cannot create a pool of {} mbufs (workers.mbufs; reserve more hugepages or raise -m)",
            cfg.workers.mbufs
        )))?,
    );

    let mut ports = Vec::new();
    let mut rxqs = Vec::new();
    let mut txqs = Vec::new();
    let mut macs = Vec::new();
    for p in &cfg.ports {
        let dev = p.device_name();
        let id = Port::find(dev).map_err(ctx(format!(
            "port {}: no DPDK device `{dev}` (is the vdev spelled right, does its interface exist in this network namespace, is the NIC bound to vfio-pci?)",
            p.name
        )))?;
        let pc = PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            mtu: p.mtu,
            promiscuous: true,
            rss: false,
        };
        let (port, mut rx, mut tx) =
            Port::start(id, &pc, &pool).map_err(ctx(format!("port {} ({dev})", p.name)))?;
        let (Some(rx), Some(tx)) = (rx.pop(), tx.pop()) else {
            return Err(RunError(format!(
                "port {}: the device gave no queues",
                p.name
            )));
        };
        let link = port.link();
        println!(
            "rvs: port {} = {} (dpdk port {}, {}), mac {}, link {} {} Mb/s",
            p.name,
            dev,
            port.id(),
            port.info().driver,
            MacAddr(port.mac()),
            if link.up { "up" } else { "down" },
            link.speed_mbps
        );
        macs.push(MacAddr(port.mac()));
        rxqs.push(rx);
        txqs.push(tx);
        ports.push(port);
    }

    let hz = dpdk::tsc_hz().max(1);
    let t0 = dpdk::tsc();
    let clock = move || {
        Instant::from_nanos(
            ((u128::from(dpdk::tsc().wrapping_sub(t0)) * 1_000_000_000) / u128::from(hz)) as u64,
        )
    };

    let pipeline: Pipeline<Mbuf> = Pipeline::new(cfg, &macs, clock());
    let layout = pipeline.layout();
    let shared = Arc::new(SharedBlock::new(layout.len()));
    let worker = WorkerCtx {
        pipeline,
        rxqs,
        txqs,
        pool: Arc::clone(&pool),
        shared: Arc::clone(&shared),
        stop: Arc::clone(&stop),
        burst: cfg.workers.burst,
    };
    let lcore = workers.first().copied().unwrap_or(0);
    let handle = dpdk::launch(lcore, move || worker.run(clock))
        .map_err(ctx(format!("cannot start the worker on lcore {lcore}")))?;
    println!(
        "rvs: running {} service(s) on {} port(s), worker on lcore {lcore}; SIGINT or SIGTERM stops",
        cfg.services.len(),
        cfg.ports.len()
    );

    let interval = Duration::from_secs(cfg.stats.interval_secs);
    let started = std::time::Instant::now();
    let mut last = std::time::Instant::now();
    let mut prev = LocalBlock::new(layout.len());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if !interval.is_zero() && last.elapsed() >= interval {
            let now = snapshot(&shared, layout);
            println!(
                "{}",
                status_line(&now, &prev, last.elapsed(), started.elapsed())
            );
            if let Some(path) = &opts.stats_file {
                write_stats_file(path, cfg, &now, &ports, started.elapsed(), false);
            }
            let _ = std::io::stdout().flush();
            prev = now;
            last = std::time::Instant::now();
        }
    }
    let rc = handle.wait();
    let fin = snapshot(&shared, layout);
    println!("rvs: stopping (worker returned {rc})");
    print!("{}", final_report(cfg, &fin, &ports));
    if let Some(path) = &opts.stats_file {
        write_stats_file(path, cfg, &fin, &ports, started.elapsed(), true);
    }
    let _ = std::io::stdout().flush();
    drop(ports);
    drop(pool);
    drop(eal);
    if rc != 0 {
        return Err(RunError(format!("the worker stopped with code {rc}")));
    }
    Ok(())
}

/// Everything the worker lcore owns.
struct WorkerCtx {
    pipeline: Pipeline<Mbuf>,
    rxqs: Vec<RxQueue>,
    txqs: Vec<TxQueue>,
    pool: Arc<Mempool>,
    shared: Arc<SharedBlock>,
    stop: Arc<AtomicBool>,
    burst: usize,
}

impl WorkerCtx {
    fn run(self, clock: impl Fn() -> Instant) -> i32 {
        let WorkerCtx {
            mut pipeline,
            mut rxqs,
            txqs,
            pool,
            shared,
            stop,
            burst,
        } = self;
        let mut io = MbufIo {
            pool: &pool,
            tx: txqs
                .into_iter()
                .map(|q| (q, Vec::with_capacity(burst * 4)))
                .collect(),
            discard: Vec::with_capacity(burst * 2),
            burst,
        };
        let mut rx: Vec<Mbuf> = Vec::with_capacity(burst);
        pipeline.start(&mut io);
        io.flush(&mut pipeline);
        let publish_ns = PUBLISH_EVERY.as_nanos() as u64;
        let mut next_publish = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let now = clock();
            for (port, q) in rxqs.iter_mut().enumerate() {
                if q.rx_burst(&mut rx, burst) == 0 {
                    continue;
                }
                for m in rx.drain(..) {
                    if m.nb_segs() > 1 {
                        pipeline.count_drop(DropReason::MultiSegment, 1);
                        io.discard(m);
                        continue;
                    }
                    pipeline.process(port as u16, m, now, &mut io);
                }
            }
            pipeline.poll(now, &mut io);
            io.flush(&mut pipeline);
            if now.as_nanos() >= next_publish {
                shared.publish(pipeline.counters());
                next_publish = now.as_nanos() + publish_ns;
            }
        }
        io.flush(&mut pipeline);
        shared.publish(pipeline.counters());
        // Frees every mbuf still held (neighbour queues) before the pool can go.
        drop(pipeline);
        drop(io);
        0
    }
}

/// The worker's [`Io`]: per-port TX batches flushed once per loop, bulk free of drops.
struct MbufIo<'a> {
    pool: &'a Mempool,
    tx: Vec<(TxQueue, Vec<Mbuf>)>,
    discard: Vec<Mbuf>,
    burst: usize,
}

impl MbufIo<'_> {
    fn flush_port(
        tx: &mut (TxQueue, Vec<Mbuf>),
        discard: &mut Vec<Mbuf>,
        pipeline: &mut Pipeline<Mbuf>,
    ) {
        let (q, pkts) = tx;
        if pkts.is_empty() {
            return;
        }
        let total: u64 = pkts.iter().map(|m| m.len() as u64).sum();
        let sent = q.tx_burst(pkts);
        let unsent_bytes: u64 = pkts.iter().map(|m| m.len() as u64).sum();
        pipeline.count_tx(sent as u64, total - unsent_bytes);
        if !pkts.is_empty() {
            // The NIC's ring is full: drop the tail rather than stall the loop.
            pipeline.count_drop(DropReason::TxFull, pkts.len() as u64);
            discard.append(pkts);
        }
    }

    fn flush(&mut self, pipeline: &mut Pipeline<Mbuf>) {
        for t in self.tx.iter_mut() {
            Self::flush_port(t, &mut self.discard, pipeline);
        }
        if !self.discard.is_empty() {
            dpdk::free_bulk(&mut self.discard);
        }
    }
}

impl Io<Mbuf> for MbufIo<'_> {
    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }

    fn send(&mut self, port: u16, buf: Mbuf) {
        match self.tx.get_mut(usize::from(port)) {
            Some((q, pkts)) => {
                pkts.push(buf);
                if pkts.len() >= self.burst * 4 {
                    // Rare (a burst fanning out, or ARP queue flushes): send now, drop what the
                    // NIC does not take.
                    let sent = q.tx_burst(pkts);
                    let _ = sent;
                    self.discard.append(pkts);
                }
            }
            None => self.discard.push(buf),
        }
    }

    fn discard(&mut self, buf: Mbuf) {
        self.discard.push(buf);
        if self.discard.len() >= self.burst * 4 {
            dpdk::free_bulk(&mut self.discard);
        }
    }
}

fn snapshot(shared: &SharedBlock, layout: Layout) -> LocalBlock {
    let mut b = LocalBlock::new(layout.len());
    shared.accumulate(&mut b);
    b
}

fn rate(now: u64, prev: u64, dt: Duration) -> u64 {
    let s = dt.as_secs_f64();
    if s <= 0.0 {
        0
    } else {
        (now.saturating_sub(prev) as f64 / s) as u64
    }
}

/// The periodic one-line status.
pub fn status_line(now: &LocalBlock, prev: &LocalBlock, dt: Duration, up: Duration) -> String {
    let g = |c: Counter| now.get(Layout::counter(c));
    let p = |c: Counter| prev.get(Layout::counter(c));
    format!(
        "rvs: up {}s rx={} ({} pps) tx={} ({} pps) flows={} created={} expired={} drops={} [{}]",
        up.as_secs(),
        g(Counter::RxPackets),
        rate(g(Counter::RxPackets), p(Counter::RxPackets), dt),
        g(Counter::TxPackets),
        rate(g(Counter::TxPackets), p(Counter::TxPackets), dt),
        g(Counter::FlowsActive),
        g(Counter::FlowsCreated),
        g(Counter::FlowsExpired),
        stats::total_drops(now),
        stats::drops_summary(now)
    )
}

/// The multi-line report printed at exit.
pub fn final_report(cfg: &Config, b: &LocalBlock, ports: &[Port]) -> String {
    let layout = Layout {
        services: cfg.services.len(),
        servers: cfg.services.iter().map(|s| s.servers.len()).sum(),
    };
    let mut s = String::from("rvs: final counters\n");
    for c in Counter::ALL {
        s.push_str(&format!(
            "  {:<20} {}\n",
            c.name(),
            b.get(Layout::counter(*c))
        ));
    }
    s.push_str(&format!(
        "  drops                {} [{}]\n",
        stats::total_drops(b),
        stats::drops_summary(b)
    ));
    let mut server = 0;
    for (i, svc) in cfg.services.iter().enumerate() {
        let lb = |c: LbCounter| b.get(layout.service(i, c));
        s.push_str(&format!(
            "  service {} {} {}:{} {}: conns={} pkts_in={} pkts_out={} bytes_in={} bytes_out={}\n",
            svc.name,
            svc.protocol.name(),
            svc.vip,
            svc.port,
            svc.scheduler.name(),
            lb(LbCounter::Connections),
            lb(LbCounter::PacketsIn),
            lb(LbCounter::PacketsOut),
            lb(LbCounter::BytesIn),
            lb(LbCounter::BytesOut)
        ));
        for r in &svc.servers {
            let lb = |c: LbCounter| b.get(layout.server(server, c));
            s.push_str(&format!(
                "    -> {}:{} weight {}: conns={} pkts_in={} pkts_out={} bytes_in={} bytes_out={}\n",
                r.address,
                r.port.unwrap_or(svc.port),
                r.weight,
                lb(LbCounter::Connections),
                lb(LbCounter::PacketsIn),
                lb(LbCounter::PacketsOut),
                lb(LbCounter::BytesIn),
                lb(LbCounter::BytesOut)
            ));
            server += 1;
        }
    }
    for (p, port) in cfg.ports.iter().zip(ports) {
        let st = port.stats();
        s.push_str(&format!(
            "  port {}: ipackets={} opackets={} imissed={} ierrors={} oerrors={} rx_nombuf={}\n",
            p.name, st.ipackets, st.opackets, st.imissed, st.ierrors, st.oerrors, st.rx_nombuf
        ));
    }
    s
}

/// The counters as JSON: `{"counters": {...}, "drops": {...}, "services": [...], "ports": [...]}`.
pub fn stats_json(
    cfg: &Config,
    b: &LocalBlock,
    ports: &[Port],
    uptime: Duration,
    last: bool,
) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let layout = Layout {
        services: cfg.services.len(),
        servers: cfg.services.iter().map(|s| s.servers.len()).sum(),
    };
    let counters: Map<String, Value> = Counter::ALL
        .iter()
        .map(|c| (c.name().to_string(), json!(b.get(Layout::counter(*c)))))
        .collect();
    let drops: Map<String, Value> = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), json!(b.get(Layout::drop(*r)))))
        .collect();
    let lbmap = |idx: &dyn Fn(LbCounter) -> usize| -> Map<String, Value> {
        LbCounter::ALL
            .iter()
            .map(|c| (c.name().to_string(), json!(b.get(idx(*c)))))
            .collect()
    };
    let mut server = 0;
    let services: Vec<Value> = cfg
        .services
        .iter()
        .enumerate()
        .map(|(i, svc)| {
            let servers: Vec<Value> = svc
                .servers
                .iter()
                .map(|r| {
                    let k = server;
                    server += 1;
                    json!({
                        "address": r.address.to_string(),
                        "port": r.port.unwrap_or(svc.port),
                        "weight": r.weight,
                        "counters": lbmap(&|c| layout.server(k, c)),
                    })
                })
                .collect();
            json!({
                "name": svc.name,
                "protocol": svc.protocol.name(),
                "vip": svc.vip.to_string(),
                "port": svc.port,
                "counters": lbmap(&|c| layout.service(i, c)),
                "servers": servers,
            })
        })
        .collect();
    let ports: Vec<Value> = cfg
        .ports
        .iter()
        .zip(ports)
        .map(|(p, port)| {
            let st = port.stats();
            json!({"name": p.name, "ipackets": st.ipackets, "opackets": st.opackets, "imissed": st.imissed,
                   "ierrors": st.ierrors, "oerrors": st.oerrors, "rx_nombuf": st.rx_nombuf})
        })
        .collect();
    json!({"uptime_secs": uptime.as_secs_f64(), "final": last, "counters": counters, "drops": drops,
           "services": services, "ports": ports})
}

fn write_stats_file(
    path: &Path,
    cfg: &Config,
    b: &LocalBlock,
    ports: &[Port],
    uptime: Duration,
    last: bool,
) {
    let v = stats_json(cfg, b, ports, uptime, last);
    let tmp = path.with_extension("tmp");
    let res = std::fs::write(&tmp, v.to_string()).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        eprintln!("rvs: cannot write the stats file {}: {e}", path.display());
    }
}
