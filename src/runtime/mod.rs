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

pub(crate) mod mail;
mod report;
pub(crate) mod worker;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::dpdk::{self, DpdkError, Eal, Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue};
use crate::helper::ftp::ctl::Helper;
use crate::helper::ftp::expect::Expectations;
use crate::slowpath::SlowPath;
use crate::stats::{Layout, LocalBlock, SharedBlock};
use crate::wire::MacAddr;
use crate::worker::Pipeline;
use mail::Mailboxes;
pub use report::{final_report, service_rate_lines, stats_json, status_line};
use report::{snapshot, write_stats_file};
use worker::WorkerLoop;

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

/// Data room of packet mbufs: a 1500-byte MTU frame plus room to encapsulate.
const MBUF_DATA_ROOM: u16 = dpdk::DEFAULT_DATA_ROOM;

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
        contexts.push(WorkerLoop::new(
            pipeline,
            (rxqs, txqs),
            Arc::clone(&pool),
            Arc::clone(&mail),
            block,
            cfg.workers.burst,
        ));
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
        let sp = SlowPath::new(
            Helper::new(cfg, Arc::clone(&expect)),
            Arc::clone(&mail.slow),
            block,
            cfg.workers.burst,
        );
        let sp_stop = Arc::clone(&stop);
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
                    sp.run(&sp_stop, clock)
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
    let idle_sleep = Duration::from_micros(cfg.workers.idle_sleep_us);
    for (w, (ctx_w, lcore)) in contexts.zip(remote.iter().copied()).enumerate() {
        let id = w + 1;
        let stop_w = Arc::clone(&stop);
        let h = dpdk::launch(lcore, move || ctx_w.run(&stop_w, idle_sleep, clock))
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
    let mut rcs = vec![first.map_or(0, |w| w.run(&stop, idle_sleep, clock))];
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
