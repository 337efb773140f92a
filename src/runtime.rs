//! Wiring: EAL, mempool, ports, the worker lcore, signals, the status line and orderly shutdown.
//!
//! Thread model: `workers.count` workers; worker 0 runs on the main lcore, worker `w` on the
//! `w`-th worker lcore. Worker `w` owns RX queue `w` and TX queue `w` of every port and its own
//! [`Pipeline`] (flow table, neighbours, schedulers, counters). A plain thread (`rvs-control`)
//! prints the status line and writes the stats file; it reads only the published counter blocks.
//! Between workers there are two kinds of bounded lock-free queue (crossbeam `ArrayQueue`), one
//! inbox each per worker: frames handed to the worker that owns their flow, and neighbours
//! learned by another worker. A full inbox drops (and counts); nobody ever waits.
//!
//! Shutdown order: stop flag → every worker publishes a last time, drops its pipeline (freeing
//! queued mbufs) and returns → frames left in inboxes are freed → ports stop and close →
//! mempool → EAL cleanup.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;

use crate::config::{Config, ServerChange};
use crate::dpdk::{self, DpdkError, Eal, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue};
use crate::helper::ftp::ctl::Helper;
use crate::helper::ftp::expect::Expectations;
use crate::packet::PacketBuf;
use crate::slowpath::SlowPath;
use crate::stats::{
    self, Counter, DropReason, FtpCounter, Layout, LbCounter, LocalBlock, SharedBlock,
};
use crate::time::Instant;
use crate::wire::MacAddr;
use crate::worker::{Io, Pipeline, SlowMsg, SlowReturn};

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
    /// The config file, re-read on SIGHUP (server weights and removals apply at run time).
    pub config_path: Option<PathBuf>,
}

/// Capacity of each worker's inbox of reload changes.
const CONTROL_QUEUE: usize = 16;
/// Data room of packet mbufs: a 1500-byte MTU frame plus room to encapsulate.
const MBUF_DATA_ROOM: u16 = dpdk::DEFAULT_DATA_ROOM;
/// How often a worker publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Capacity of each worker's handover queue (frames another worker received for it).
const HANDOVER_QUEUE: usize = 8192;
/// Capacity of each worker's neighbour-message queue.
const NEIGH_QUEUE: usize = 1024;

/// A neighbour learned by one worker, told to the others.
#[derive(Clone, Copy, Debug)]
struct NeighMsg {
    port: u16,
    ip: std::net::Ipv4Addr,
    mac: MacAddr,
}

/// A frame handed to its owner: its port, the frame, and when it reached the sender's queue
/// (after `.0`, before `.1`; see `Pipeline::process_handed_over`).
type Handed = (u16, Mbuf, (Instant, Instant));

/// The queues between workers: one inbox of each kind per worker, any worker may push.
struct Mailboxes {
    /// Frames handed to their owner: (port, frame, when it reached the sender's queue: after
    /// the start of the sender's last poll that emptied it, before the start of this poll).
    handover: Vec<ArrayQueue<Handed>>,
    /// Per worker: the start (ns) of its last poll that emptied its queues, stored after it
    /// handed over what that poll took. Owners wait for the others' before sending a control
    /// frame back from the slow path (`worker::order`).
    watermarks: Vec<CachePadded<AtomicU64>>,
    neigh: Vec<ArrayQueue<NeighMsg>>,
    control: Vec<ArrayQueue<Arc<Vec<ServerChange>>>>,
    /// Worker → slow path (FTP control frames and notices), one ring per worker.
    slow: Arc<Vec<ArrayQueue<SlowMsg<Mbuf>>>>,
    /// Slow path → worker: its answer for each control frame, in order (`SlowReturn`).
    slow_return: Arc<Vec<ArrayQueue<SlowReturn<Mbuf>>>>,
}
impl Mailboxes {
    /// The earliest watermark of all workers, this one included: every frame that reached
    /// any queue before it has been taken, and handed over if it had to be.
    fn passed_by_all(&self) -> Instant {
        let ns = self
            .watermarks
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        Instant::from_nanos(ns)
    }

    fn new(workers: usize, slow_ring: usize) -> Mailboxes {
        Mailboxes {
            slow: Arc::new((0..workers).map(|_| ArrayQueue::new(slow_ring)).collect()),
            slow_return: Arc::new((0..workers).map(|_| ArrayQueue::new(slow_ring)).collect()),
            handover: (0..workers)
                .map(|_| ArrayQueue::new(HANDOVER_QUEUE))
                .collect(),
            watermarks: (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            neigh: (0..workers).map(|_| ArrayQueue::new(NEIGH_QUEUE)).collect(),
            control: (0..workers)
                .map(|_| ArrayQueue::new(CONTROL_QUEUE))
                .collect(),
        }
    }

    /// Free every frame still queued (after all workers stopped, before the pool goes).
    fn drain(&self) {
        for q in &self.handover {
            while q.pop().is_some() {}
        }
        for q in self.slow.iter() {
            while q.pop().is_some() {}
        }
        for q in self.slow_return.iter() {
            while q.pop().is_some() {}
        }
    }
}

/// Run until SIGINT/SIGTERM. Prints a status line every `stats.interval_secs` and the final
/// counters at exit.
pub fn run(cfg: &Config, opts: &RunOptions) -> Result<(), RunError> {
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGHUP, &reload),
    ] {
        signal_hook::flag::register(sig, Arc::clone(flag))
            .map_err(|e| RunError(format!("cannot install the handler for signal {sig}: {e}")))?;
    }
    let eal = Eal::init(&cfg.eal_args()).map_err(ctx(
        "EAL initialisation failed (check eal.args, hugepages or --no-huge, and that no other rvs uses the same --file-prefix)",
    ))?;
    let n = cfg.workers.count;
    let remote = dpdk::worker_lcores();
    if remote.len() + 1 < n {
        return Err(RunError(format!(
            "workers.count is {n} but the EAL has {} lcore(s): worker 0 runs on the main lcore and each other worker needs one more, e.g. eal.args [\"-l\", \"0-{}\"]",
            remote.len() + 1,
            n - 1
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
    // queues[w] = (rx queues, tx queues) of worker w, one per port in config order.
    let mut queues: Vec<(Vec<RxQueue>, Vec<TxQueue>)> =
        (0..n).map(|_| (Vec::new(), Vec::new())).collect();
    let mut macs = Vec::new();
    for p in &cfg.ports {
        let dev = p.device_name();
        let id = Port::find(dev).map_err(ctx(format!(
            "port {}: no DPDK device `{dev}` (is the vdev spelled right, does its interface exist in this network namespace, is the NIC bound to vfio-pci?)",
            p.name
        )))?;
        // One TX queue per worker. The FTP slow path has none: its frames go back to the
        // worker that gave them, which keeps each host pair's frames in order.
        let pc = PortConfig {
            rx_queues: n as u16,
            tx_queues: n as u16,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            mtu: p.mtu,
            promiscuous: true,
            rss: n > 1,
            // The key the software owner hashes use (flow::rss), so NIC and software agree.
            rss_key: Some(crate::flow::rss::RSS_KEY),
        };
        let (port, rx, tx) = Port::start(id, &pc, &pool).map_err(ctx(format!(
            "port {} ({dev}) with {n} queue(s) (one per worker; an af_packet vdev needs qpairs={n})",
            p.name
        )))?;
        if rx.len() != n || tx.len() != n {
            return Err(RunError(format!(
                "port {}: asked for {n} queues, the device gave {} rx and {} tx",
                p.name,
                rx.len(),
                tx.len()
            )));
        }
        for (w, (r, t)) in rx.into_iter().zip(tx).enumerate() {
            if let Some(q) = queues.get_mut(w) {
                q.0.push(r);
                q.1.push(t);
            }
        }
        let link = port.link();
        let info = port.info();
        println!(
            "rvs: port {} = {} (dpdk port {}, {}), mac {}, link {} {} Mb/s, {} queue(s), rss {}",
            p.name,
            dev,
            port.id(),
            info.driver,
            MacAddr(port.mac()),
            if link.up { "up" } else { "down" },
            link.speed_mbps,
            n,
            if info.rss_enabled {
                "on"
            } else {
                "off (software ownership only)"
            },
        );
        for w in &info.warnings {
            println!("rvs: port {}: {w}", p.name);
        }
        macs.push(MacAddr(port.mac()));
        ports.push(port);
    }
    let ports = Arc::new(ports);

    let hz = dpdk::tsc_hz().max(1);
    let t0 = dpdk::tsc();
    let tsc_clock = crate::time::TscClock::new(t0, hz);
    let clock = move || tsc_clock.at(dpdk::tsc());

    let mail = Arc::new(Mailboxes::new(n, cfg.ftp.ring_size));
    let ftp = cfg.services.iter().any(|s| s.ftp.is_some());
    let expect = Arc::new(Expectations::new(if ftp {
        cfg.ftp.max_expectations
    } else {
        16
    }));
    let mut shared = Vec::new();
    let mut contexts = Vec::new();
    let mut layout = None;
    for (w, (rxqs, txqs)) in queues.into_iter().enumerate() {
        let mut pipeline: Pipeline<Mbuf> = Pipeline::new(cfg, &macs, w as u16, clock());
        if ftp {
            pipeline.set_expectations(Arc::clone(&expect));
        }
        let l = pipeline.layout();
        layout = Some(l);
        let block = Arc::new(SharedBlock::new(l.len()));
        shared.push(Arc::clone(&block));
        contexts.push(WorkerCtx {
            id: w as u16,
            pipeline,
            rxqs,
            txqs,
            pool: Arc::clone(&pool),
            shared: block,
            stop: Arc::clone(&stop),
            mail: Arc::clone(&mail),
            burst: cfg.workers.burst,
            idle_sleep: Duration::from_micros(cfg.workers.idle_sleep_us),
        });
    }
    let Some(layout) = layout else {
        return Err(RunError("workers.count must be at least 1".into()));
    };
    // The slow path: a thread of its own, answering each worker on its return ring.
    let slow_thread = if ftp {
        let block = Arc::new(SharedBlock::new(layout.len()));
        shared.push(Arc::clone(&block));
        println!(
            "rvs: FTP slow path on its own thread; its frames go back to their workers, which send them in order"
        );
        // Not on a worker's CPU when there is a free one: a thread started here would inherit
        // the main lcore's affinity and compete with worker 0 for it.
        let mut busy = vec![dpdk::main_lcore() as usize];
        busy.extend(remote.iter().take(n - 1).map(|l| *l as usize));
        let cpu = cfg.ftp.slow_path_cpu.or_else(|| spare_cpu(&busy));
        println!(
            "rvs: slow path {}",
            match cpu {
                Some(c) => format!("on CPU {c}"),
                None =>
                    "unpinned (every CPU runs a worker; give it one with ftp.slow_path_cpu)".into(),
            }
        );
        let sp = SlowPath {
            helper: Helper::new(cfg, Arc::clone(&expect)),
            inboxes: Arc::clone(&mail.slow),
            returns: Arc::clone(&mail.slow_return),
            shared: block,
            stop: Arc::clone(&stop),
            burst: cfg.workers.burst,
        };
        Some(
            std::thread::Builder::new()
                .name("rvs-slowpath".into())
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                            eprintln!(
                                "rvs: cannot pin the slow path to CPU {cpu}; it runs unpinned"
                            );
                        }
                    }
                    sp.run(clock)
                })
                .map_err(|e| RunError(format!("cannot start the slow-path thread: {e}")))?,
        )
    } else {
        None
    };

    // Workers 1.. on their own lcores, worker 0 on this (the main) lcore.
    let mut handles = Vec::new();
    let mut contexts = contexts.into_iter();
    let first = contexts.next();
    for (ctx_w, lcore) in contexts.zip(remote.iter().copied()) {
        let id = ctx_w.id;
        let h = dpdk::launch(lcore, move || ctx_w.run(clock))
            .map_err(ctx(format!("cannot start worker {id} on lcore {lcore}")))?;
        handles.push(h);
    }
    println!(
        "rvs: running {} service(s) on {} port(s) with {n} worker(s) (worker 0 on the main lcore{}); SIGINT or SIGTERM stops",
        cfg.services.len(),
        cfg.ports.len(),
        if n > 1 { format!(", others on lcores {:?}", &remote[..n - 1]) } else { String::new() }
    );
    let control = {
        let ctl = Control {
            cfg: cfg.clone(),
            shared: shared.clone(),
            layout,
            ports: Arc::clone(&ports),
            stop: Arc::clone(&stop),
            reload: Arc::clone(&reload),
            mail: Arc::clone(&mail),
            opts: opts.clone(),
        };
        std::thread::Builder::new()
            .name("rvs-control".into())
            .spawn(move || ctl.run())
            .map_err(|e| RunError(format!("cannot start the control thread: {e}")))?
    };
    let mut rcs = vec![first.map_or(0, |w| w.run(clock))];
    rcs.extend(handles.into_iter().map(|h| h.wait()));
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = slow_thread {
        let _ = t.join();
    }
    let (started, live) = control
        .join()
        .unwrap_or_else(|_| (std::time::Instant::now(), cfg.clone()));
    let cfg = &live;
    mail.drain();

    let fin = snapshot(&shared, layout);
    println!("rvs: stopping (workers returned {rcs:?})");
    print!("{}", final_report(cfg, &fin, &ports));
    if let Some(path) = &opts.stats_file {
        write_stats_file(path, cfg, &fin, &ports, started.elapsed(), true);
    }
    let _ = std::io::stdout().flush();
    drop(mail);
    drop(ports);
    drop(pool);
    drop(eal);
    if rcs.iter().any(|rc| *rc != 0) {
        return Err(RunError(format!("a worker stopped with an error: {rcs:?}")));
    }
    Ok(())
}

/// The highest online CPU that runs no worker (lcore ids are taken as CPU numbers, as `-l`
/// gives them), from /sys/devices/system/cpu/online.
fn spare_cpu(busy: &[usize]) -> Option<usize> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let mut cpus = Vec::new();
    for part in online.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    cpus.into_iter().rev().find(|c| !busy.contains(c))
}

/// What the control thread owns: it prints the status line, writes the stats file and applies
/// reloads, reading only the published counter blocks.
struct Control {
    cfg: Config,
    shared: Vec<Arc<SharedBlock>>,
    layout: Layout,
    ports: Arc<Vec<Port>>,
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    mail: Arc<Mailboxes>,
    opts: RunOptions,
}

impl Control {
    /// Runs until the stop flag is set; returns when it started and the config as it now is
    /// (weights and removals applied), for the final report.
    fn run(mut self) -> (std::time::Instant, Config) {
        let interval = Duration::from_secs(self.cfg.stats.interval_secs);
        let started = std::time::Instant::now();
        let mut last = std::time::Instant::now();
        let mut prev = LocalBlock::new(self.layout.len());
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            if self.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            if !interval.is_zero() && last.elapsed() >= interval {
                let now = snapshot(&self.shared, self.layout);
                println!(
                    "{}",
                    status_line(&now, &prev, last.elapsed(), started.elapsed())
                );
                for line in service_rate_lines(&self.cfg, &now, &prev, last.elapsed()) {
                    println!("{line}");
                }
                if let Some(path) = &self.opts.stats_file {
                    write_stats_file(path, &self.cfg, &now, &self.ports, started.elapsed(), false);
                }
                let _ = std::io::stdout().flush();
                prev = now;
                last = std::time::Instant::now();
            }
        }
        (started, self.cfg)
    }

    /// SIGHUP: re-read the config and hand the server changes to every worker, or say why not.
    fn reload(&mut self) {
        let Some(path) = self.opts.config_path.clone() else {
            return;
        };
        let result = Config::load(&path).and_then(|new| self.cfg.reload_changes(&new, &path));
        let changes = match result {
            Ok(c) => c,
            Err(e) => {
                println!("rvs: reload refused: {e}");
                let _ = std::io::stdout().flush();
                return;
            }
        };
        let changes = Arc::new(changes);
        for (w, q) in self.mail.control.iter().enumerate() {
            if q.push(Arc::clone(&changes)).is_err() {
                // Sixteen reloads queued and none applied: the worker is stuck; say so.
                println!("rvs: reload: worker {w}'s inbox is full; it keeps its old weights");
            }
        }
        self.cfg = self.cfg.with_changes(&changes);
        let summary: Vec<String> = self
            .cfg
            .services
            .iter()
            .flat_map(|s| {
                s.servers.iter().map(move |r| {
                    let state = if r.removed {
                        "removed".to_string()
                    } else {
                        format!("weight {}", r.weight)
                    };
                    format!(
                        "{}/{}:{} {state}",
                        s.name,
                        r.address,
                        s.server_port(r).unwrap_or(0)
                    )
                })
            })
            .collect();
        println!("rvs: reload applied: {}", summary.join(", "));
        let _ = std::io::stdout().flush();
    }
}

/// Everything one worker owns.
struct WorkerCtx {
    id: u16,
    pipeline: Pipeline<Mbuf>,
    rxqs: Vec<RxQueue>,
    txqs: Vec<TxQueue>,
    pool: Arc<Mempool>,
    shared: Arc<SharedBlock>,
    stop: Arc<AtomicBool>,
    mail: Arc<Mailboxes>,
    burst: usize,
    idle_sleep: Duration,
}

/// Empty polling rounds in a row before a worker with `workers.idle_sleep_us` naps.
const IDLE_ROUNDS: u32 = 64;

impl WorkerCtx {
    fn run(self, clock: impl Fn() -> Instant) -> i32 {
        let WorkerCtx {
            id,
            mut pipeline,
            mut rxqs,
            txqs,
            pool,
            shared,
            stop,
            mail,
            burst,
            idle_sleep,
        } = self;
        let mut idle = 0u32;
        let mut io = MbufIo {
            id,
            pool: &pool,
            mail: &mail,
            tx: txqs
                .into_iter()
                .map(|q| (q, Vec::with_capacity(burst * 4)))
                .collect(),
            tally: TxTally::default(),
            discard: Vec::with_capacity(burst * 2),
            burst,
        };
        let mut last_drained = Instant::ZERO;
        let mut rx: Vec<Mbuf> = Vec::with_capacity(burst);
        if id == 0 {
            pipeline.start(&mut io);
        }
        io.flush(&mut pipeline);
        let publish_ns = PUBLISH_EVERY.as_nanos() as u64;
        let mut next_publish = 0u64;
        let inbox = mail.handover.get(usize::from(id));
        let neigh_inbox = mail.neigh.get(usize::from(id));
        let control_inbox = mail.control.get(usize::from(id));
        let slow_return = mail.slow_return.get(usize::from(id));
        let watermark = mail.watermarks.get(usize::from(id));
        let n_workers = mail.watermarks.len();
        while !stop.load(Ordering::Relaxed) {
            let now = clock();
            // What this poll takes reached the queues after the last poll that emptied them
            // began: the owner orders handed-over frames by that (`worker::order`).
            pipeline.set_poll_window(last_drained);
            let mut work = 0usize;
            let mut drained = true;
            for (port, q) in rxqs.iter_mut().enumerate() {
                let got = q.rx_burst(&mut rx, burst);
                work += got;
                drained &= got < burst;
                if got == 0 {
                    continue;
                }
                pipeline.process_burst(port as u16, &mut rx, now, &mut io);
            }
            if drained {
                // Everything that reached this worker's queues before `now` is handled or
                // handed over (the pushes above happen before this store).
                last_drained = now;
                if let Some(w) = watermark {
                    w.store(now.as_nanos(), Ordering::Release);
                }
            }
            if let Some(q) = control_inbox {
                while let Some(changes) = q.pop() {
                    pipeline.apply_changes(&changes);
                }
            }
            if let Some(q) = neigh_inbox {
                while let Some(msg) = q.pop() {
                    pipeline.learn_neighbour(msg.port, msg.ip, msg.mac, now, &mut io);
                }
            }
            // The watermarks first (this worker's too: a backlog on its own queue may hold
            // frames older than a control frame another worker handed over), then every frame
            // handed over so far: a control frame every worker has passed cannot be overtaken
            // by one taken before it.
            let passed = if pipeline.held() == 0 {
                Instant::ZERO
            } else if n_workers == 1 {
                // One worker: each direction of a host pair arrives on one queue, in order.
                Instant::MAX
            } else {
                mail.passed_by_all()
            };
            if let Some(q) = inbox {
                for _ in 0..HANDOVER_QUEUE {
                    let Some((port, m, window)) = q.pop() else {
                        break;
                    };
                    work += 1;
                    pipeline.process_handed_over(port, m, window, now, &mut io);
                }
            }
            if let Some(q) = slow_return {
                while let Some(ret) = q.pop() {
                    work += 1;
                    pipeline.slow_path_returned(ret, now);
                }
            }
            if pipeline.held() > 0 {
                pipeline.release_ordered(passed, now, &mut io);
            }
            pipeline.poll(now, &mut io);
            io.flush(&mut pipeline);
            if now.as_nanos() >= next_publish {
                pipeline.refresh_gauges();
                shared.publish(pipeline.counters());
                next_publish = now.as_nanos() + publish_ns;
            }
            if work == 0 && !idle_sleep.is_zero() {
                idle += 1;
                if idle >= IDLE_ROUNDS {
                    std::thread::sleep(idle_sleep);
                }
            } else {
                idle = 0;
            }
        }
        io.flush(&mut pipeline);
        pipeline.refresh_gauges();
        shared.publish(pipeline.counters());
        // Frees every mbufstill held (neighbour queues) before the pool can go.
        drop(pipeline);
        drop(io);
        0
    }
}

/// What a worker's transmissions did since the last flush.
#[derive(Debug, Default)]
struct TxTally {
    packets: u64,
    bytes: u64,
    full: u64,
}

/// Send the front of `pkts` in one burst; the tail the NIC did not take goes to `discard`.
fn transmit(q: &mut TxQueue, pkts: &mut Vec<Mbuf>, tally: &mut TxTally, discard: &mut Vec<Mbuf>) {
    if pkts.is_empty() {
        return;
    }
    let total: u64 = pkts.iter().map(|m| m.len() as u64).sum();
    let sent = q.tx_burst(pkts);
    let unsent_bytes: u64 = pkts.iter().map(|m| m.len() as u64).sum();
    tally.packets += sent as u64;
    tally.bytes += total - unsent_bytes;
    if !pkts.is_empty() {
        // The NIC's ring is full: drop the tail rather than stall the loop.
        tally.full += pkts.len() as u64;
        discard.append(pkts);
    }
}

/// A worker's [`Io`]: per-port TX batches flushed once per loop, bulk free of drops, and the
/// other workers' inboxes.
struct MbufIo<'a> {
    id: u16,
    pool: &'a Mempool,
    mail: &'a Mailboxes,
    tx: Vec<(TxQueue, Vec<Mbuf>)>,
    tally: TxTally,
    discard: Vec<Mbuf>,
    burst: usize,
}

impl MbufIo<'_> {
    fn flush(&mut self, pipeline: &mut Pipeline<Mbuf>) {
        for (q, pkts) in self.tx.iter_mut() {
            transmit(q, pkts, &mut self.tally, &mut self.discard);
        }
        let t = std::mem::take(&mut self.tally);
        pipeline.count_tx(t.packets, t.bytes);
        pipeline.count_drop(DropReason::TxFull, t.full);
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
                    // Rare (a burst fanning out, or a neighbour queue flushing): send now.
                    transmit(q, pkts, &mut self.tally, &mut self.discard);
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

    fn handover(
        &mut self,
        to: u16,
        port: u16,
        buf: Mbuf,
        arrived: (Instant, Instant),
    ) -> Result<(), Mbuf> {
        match self.mail.handover.get(usize::from(to)) {
            // A full queue gives the frame back: the caller drops and counts it, never waits.
            Some(q) => q.push((port, buf, arrived)).map_err(|(_, b, _)| b),
            None => Err(buf),
        }
    }

    fn slow_path(&mut self, msg: SlowMsg<Mbuf>) -> Result<(), SlowMsg<Mbuf>> {
        match self.mail.slow.get(usize::from(self.id)) {
            Some(q) => q.push(msg),
            None => Err(msg),
        }
    }

    fn neighbour_learned(&mut self, port: u16, ip: std::net::Ipv4Addr, mac: MacAddr) {
        for (w, q) in self.mail.neigh.iter().enumerate() {
            if w != usize::from(self.id) {
                // Best effort: a full inbox only means that worker resolves by itself.
                let _ = q.push(NeighMsg { port, ip, mac });
            }
        }
    }
}

fn snapshot(shared: &[Arc<SharedBlock>], layout: Layout) -> LocalBlock {
    let mut b = LocalBlock::new(layout.len());
    for s in shared {
        s.accumulate(&mut b);
    }
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

/// One line per service with traffic since the last interval, like `ipvsadm -Ln --rate`:
/// active and inactive connections, new connections per second, packets and bytes per second.
pub fn service_rate_lines(
    cfg: &Config,
    now: &LocalBlock,
    prev: &LocalBlock,
    dt: Duration,
) -> Vec<String> {
    let layout = Layout::of(cfg);
    cfg.services
        .iter()
        .enumerate()
        .filter_map(|(i, svc)| {
            let g = |c: LbCounter| now.get(layout.service(i, c));
            let r = |c: LbCounter| rate(now.get(layout.service(i, c)), prev.get(layout.service(i, c)), dt);
            let busy = g(LbCounter::ActiveConns) + g(LbCounter::InactiveConns) + r(LbCounter::PacketsIn) > 0;
            busy.then(|| {
                format!(
                    "rvs:   service {}: active={} inactive={} cps={} in={} pps/{} Bps out={} pps/{} Bps",
                    svc.name,
                    g(LbCounter::ActiveConns),
                    g(LbCounter::InactiveConns),
                    r(LbCounter::Connections),
                    r(LbCounter::PacketsIn),
                    r(LbCounter::BytesIn),
                    r(LbCounter::PacketsOut),
                    r(LbCounter::BytesOut)
                )
            })
        })
        .collect()
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

/// `conns=.. active=.. inactive=.. pkts_in=.. pkts_out=.. bytes_in=.. bytes_out=..` of one
/// service or server row, as the final report prints it.
fn lb_fields(get: impl Fn(LbCounter) -> u64) -> String {
    [
        ("conns", LbCounter::Connections),
        ("active", LbCounter::ActiveConns),
        ("inactive", LbCounter::InactiveConns),
        ("pkts_in", LbCounter::PacketsIn),
        ("pkts_out", LbCounter::PacketsOut),
        ("bytes_in", LbCounter::BytesIn),
        ("bytes_out", LbCounter::BytesOut),
    ]
    .iter()
    .map(|(label, c)| format!("{label}={}", get(*c)))
    .collect::<Vec<_>>()
    .join(" ")
}

/// The FTP counters of service `i` that are not zero, as `name=value` pairs.
fn ftp_fields(b: &LocalBlock, layout: Layout, i: usize) -> String {
    let parts: Vec<String> = FtpCounter::ALL
        .iter()
        .filter_map(|c| {
            let v = b.get(layout.ftp(i, *c));
            (v > 0).then(|| format!("{}={v}", c.name().trim_start_matches("ftp_")))
        })
        .collect();
    if parts.is_empty() {
        "nothing yet".into()
    } else {
        parts.join(" ")
    }
}

/// The multi-line report printed at exit.
pub fn final_report(cfg: &Config, b: &LocalBlock, ports: &[Port]) -> String {
    let layout = Layout::of(cfg);
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
        s.push_str(&format!(
            "  service {} {} {}:{} {}: {}\n",
            svc.name,
            svc.protocol.name(),
            svc.vip,
            svc.port_set(),
            svc.scheduler.name(),
            lb_fields(|c| b.get(layout.service(i, c)))
        ));
        if svc.ftp.is_some() {
            s.push_str(&format!("    ftp: {}\n", ftp_fields(b, layout, i)));
        }
        for r in &svc.servers {
            s.push_str(&format!(
                "    -> {}:{} weight {}{}: {}\n",
                r.address,
                svc.server_port(r).unwrap_or(0),
                r.weight,
                if r.removed { " (removed)" } else { "" },
                lb_fields(|c| b.get(layout.server(server, c)))
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
    let layout = Layout::of(cfg);
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
                        "port": svc.server_port(r).unwrap_or(0),
                        "weight": r.weight,
                        "counters": lbmap(&|c| layout.server(k, c)),
                    })
                })
                .collect();
            let mut v = json!({
                "name": svc.name,
                "protocol": svc.protocol.name(),
                "vip": svc.vip.to_string(),
                "ports": svc.port_set().to_string(),
                "counters": lbmap(&|c| layout.service(i, c)),
                "servers": servers,
            });
            if svc.ftp.is_some() {
                let ftp: Map<String, Value> = FtpCounter::ALL
                    .iter()
                    .map(|c| (c.name().to_string(), json!(b.get(layout.ftp(i, *c)))))
                    .collect();
                v["ftp"] = Value::Object(ftp);
            }
            v
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
