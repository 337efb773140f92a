//! The harness's DPDK side: EAL, pool, ring ports, the roles (generator, worker, sink, slow
//! path, controller), their placement on lcores, and the figures they leave behind.
//!
//! Roles are plain structs with a `step`, run in a cooperative loop by a [`Job`], one job per
//! lcore. Roles never wait for each other: the generator only fills free ring slots (or drops
//! what a paced rate makes due, counting it), the sink drains what is there, the worker polls.
//! The only shared state on the packet path is the rings; the rest is a phase word written by the
//! controller and a few per-lane atomics each written by one role (and, at phase changes only,
//! a mutex-protected snapshot slot per role).
//!
//! Teardown order: every job returns (roles dropped: their pending mbufs freed, pipelines
//! dropped) → ports stopped and closed → rings drained and freed → pool → EAL.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use crate::config::{Config, ConfigError};
use crate::dpdk::{
    self, free_bulk, mbuf_ring, ring_port, DpdkError, Eal, Mbuf, Mempool, PortConfig, RingConsumer,
    RingPort, RingProducer, RxQueue, TxQueue,
};
use crate::flow::rss::Sharding;
use crate::helper::ftp::expect::Expectations;
use crate::packet::PacketBuf;
use crate::runtime::mail::Mailboxes;
use crate::runtime::worker::WorkerLoop;
use crate::stats::{Counter, DropReason, FtpCounter, Layout, LocalBlock, SharedBlock};
use crate::time::Instant;
use crate::wire::{MacAddr, TcpFlags};
use crate::worker::Pipeline;

use super::frame::{latency, read_stamp, Ends, Template, L4};
use super::ftp::{FtpDriver, FtpSinkHook, SlowRole};
use super::keys::FlowKeys;
use super::pace::Pacer;
use super::report::{self, Report, WorkerFigures};
use super::sample::{Pattern, SplitMix64};
use super::scenario::{self, VIP, VPORT};
use super::{Options, Placement, Proto, Rate, Scenario};

/// A failed run, with a message a person can act on.
#[derive(Debug)]
pub struct BenchError(pub String);

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<DpdkError> for BenchError {
    fn from(e: DpdkError) -> Self {
        BenchError(e.to_string())
    }
}

impl From<ConfigError> for BenchError {
    fn from(e: ConfigError) -> Self {
        BenchError(format!("the scenario's configuration is invalid: {e}"))
    }
}

/// Phases of a run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    Setup = 0,
    Populate = 1,
    Warmup = 2,
    Measure = 3,
    Done = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Setup,
            1 => Phase::Populate,
            2 => Phase::Warmup,
            3 => Phase::Measure,
            _ => Phase::Done,
        }
    }

    /// Snapshot slot taken when entering this phase.
    fn slot(self) -> Option<usize> {
        match self {
            Phase::Measure => Some(0),
            Phase::Done => Some(1),
            _ => None,
        }
    }
}

/// A generator's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GenSnap {
    pub sent: u64,
    pub lost: u64,
    /// `ftp-data`: expectations published, and refused by the table (probe window full).
    pub published: u64,
    pub refused: u64,
}

/// A worker's counters.
#[derive(Clone, Debug)]
pub(crate) struct WorkerSnap {
    pub rx: u64,
    pub busy_cycles: u64,
    pub busy_iters: u64,
    pub tsc: u64,
    pub counters: LocalBlock,
    pub flows: u64,
    /// CPU ticks (USER_HZ) of the worker's thread.
    pub cpu_ticks: u64,
}

/// A sink's counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SinkSnap {
    pub received: u64,
    pub by_port: [u64; 2],
}

/// The slow path's counters.
#[derive(Clone, Debug)]
pub(crate) struct SlowSnap {
    pub handled: u64,
    pub busy_cycles: u64,
    pub counters: LocalBlock,
}

#[derive(Debug, Default)]
pub(crate) struct Snaps {
    pub gen: [Option<GenSnap>; 2],
    pub worker: [Option<WorkerSnap>; 2],
    pub sink: [Option<SinkSnap>; 2],
    pub hist: Option<Histogram<u64>>,
}

/// What one lane's roles tell the controller and the report.
#[derive(Debug, Default)]
pub(crate) struct LaneShared {
    /// Population packets the generator has put on the rings.
    pub pop_sent: AtomicU64,
    /// The generator has sent every population stage.
    pub populated: AtomicBool,
    /// Packets the worker has received (all phases).
    pub worker_rx: AtomicU64,
    /// Flows in the worker's table.
    pub flows: AtomicU64,
    /// Snapshots at phase changes.
    pub snaps: Mutex<Snaps>,
    /// FTP data: the control connections' flow-table slots, once the worker looked them up.
    pub masters: Mutex<Option<Vec<u32>>>,
}

/// State shared by every role of a run.
#[derive(Debug)]
pub(crate) struct Shared {
    phase: AtomicU8,
    pub lanes: Vec<LaneShared>,
    pub slow: Mutex<[Option<SlowSnap>; 2]>,
    failed: Mutex<Option<String>>,
}

impl Shared {
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
    }

    /// Stop the run with an error.
    pub fn fail(&self, why: String) {
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert(why);
        }
        self.set_phase(Phase::Done);
    }

    fn with_snaps(&self, lane: usize, f: impl FnOnce(&mut Snaps)) {
        if let Some(l) = self.lanes.get(lane) {
            if let Ok(mut s) = l.snaps.lock() {
                f(&mut s);
            }
        }
    }
}

/// The population stages of a plain scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Syn,
    Ack,
    Udp,
}

/// Steady-state traffic of one lane.
pub(crate) enum Traffic {
    /// Templates over flow keys (established flows, new connections).
    Plain,
    /// An FTP exchange (see `bench::ftp`).
    Ftp(Box<FtpDriver>),
}

/// The generator of one lane.
pub(crate) struct Generator {
    lane: usize,
    shared: Arc<Shared>,
    pool: Arc<Mempool>,
    /// RX rings of the lane's worker: [client port, server port].
    rings: Vec<RingProducer>,
    keys: FlowKeys,
    established: u64,
    new_base: u64,
    new_span: u64,
    new_next: u64,
    /// P(new connection) as a fraction of 2^64 (u64::MAX: always).
    new_threshold: u64,
    pattern: Pattern,
    rng: SplitMix64,
    data: Template,
    syn: Template,
    pacer: Option<Pacer>,
    burst: usize,
    bufs: Vec<Mbuf>,
    stages: Vec<Stage>,
    stage: usize,
    pop_i: u64,
    pop_sent: u64,
    traffic: Traffic,
    snap: GenSnap,
}

impl Generator {
    fn free_room(&self, ring: usize) -> usize {
        self.rings.get(ring).map_or(0, RingProducer::free_count)
    }

    fn step(&mut self, now: u64, phase: Phase) {
        match phase {
            Phase::Populate => self.populate(),
            Phase::Warmup | Phase::Measure => self.traffic(now),
            Phase::Setup | Phase::Done => {}
        }
    }

    fn on_phase(&mut self, phase: Phase, now: u64) {
        if phase == Phase::Warmup {
            if let Some(p) = &mut self.pacer {
                p.restart(now);
            }
        }
        if let Some(slot) = phase.slot() {
            let snap = self.snap;
            self.shared
                .with_snaps(self.lane, |s| s.gen[slot] = Some(snap));
        }
    }

    /// Create the established flows through the pipeline, one stage at a time: a stage starts
    /// when the worker has received every packet of the previous one (SYN before ACK).
    fn populate(&mut self) {
        let lane = &self.shared.lanes[self.lane];
        if lane.populated.load(Ordering::Relaxed) {
            return;
        }
        if let Traffic::Ftp(d) = &mut self.traffic {
            let worker_rx = lane.worker_rx.load(Ordering::Acquire);
            if d.populate(
                &self.pool,
                &mut self.rings,
                &mut self.bufs,
                self.burst,
                worker_rx,
                &mut self.pop_sent,
            ) {
                lane.populated.store(true, Ordering::Release);
            }
            lane.pop_sent.store(self.pop_sent, Ordering::Release);
            return;
        }
        let Some(stage) = self.stages.get(self.stage).copied() else {
            lane.populated.store(true, Ordering::Release);
            return;
        };
        if self.pop_i >= self.established {
            if lane.worker_rx.load(Ordering::Acquire) >= self.pop_sent {
                self.stage += 1;
                self.pop_i = 0;
            }
            return;
        }
        let k = (self.established - self.pop_i)
            .min(self.burst as u64)
            .min(self.free_room(0) as u64) as usize;
        if k == 0 || !self.pool.alloc_bulk(&mut self.bufs, k) {
            return;
        }
        let tpl = match stage {
            Stage::Syn => &self.syn,
            Stage::Ack | Stage::Udp => &self.data,
        };
        let stamp = dpdk::tsc();
        for (j, m) in self.bufs.iter_mut().enumerate() {
            let (src, sport) = self.keys.key(self.pop_i + j as u64);
            fill(m, tpl, src, sport, stamp);
        }
        let sent = self
            .rings
            .get_mut(0)
            .map_or(0, |r| r.enqueue_burst(&mut self.bufs));
        free_bulk(&mut self.bufs);
        self.pop_i += sent as u64;
        self.pop_sent += sent as u64;
        lane.pop_sent.store(self.pop_sent, Ordering::Release);
    }

    fn traffic(&mut self, now: u64) {
        let room = self.free_room(0);
        let k = match &mut self.pacer {
            None => self.burst.min(room),
            Some(p) => {
                let due = p.due(now);
                p.offered(due);
                let k = due.min(room);
                self.snap.lost += (due - k) as u64;
                k
            }
        };
        if let Traffic::Ftp(d) = &mut self.traffic {
            let sent = d.traffic(&self.pool, &mut self.rings, &mut self.bufs, self.burst);
            self.snap.sent += sent as u64;
            (self.snap.published, self.snap.refused) = d.expectations();
            return;
        }
        if k == 0 || !self.pool.alloc_bulk(&mut self.bufs, k) {
            return;
        }
        let stamp = dpdk::tsc();
        for m in self.bufs.iter_mut() {
            let new = match self.new_threshold {
                0 => false,
                u64::MAX => true,
                t => self.rng.next_u64() < t,
            };
            let (index, tpl) = if new {
                let i = self.new_base + self.new_next;
                self.new_next += 1;
                if self.new_next >= self.new_span {
                    self.new_next = 0;
                }
                (i, &self.syn)
            } else {
                (self.pattern.pick(&mut self.rng), &self.data)
            };
            let (src, sport) = self.keys.key(index);
            fill(m, tpl, src, sport, stamp);
        }
        let sent = self
            .rings
            .get_mut(0)
            .map_or(0, |r| r.enqueue_burst(&mut self.bufs));
        self.snap.sent += sent as u64;
        self.snap.lost += self.bufs.len() as u64;
        free_bulk(&mut self.bufs);
    }
}

/// Copy `tpl` into the empty mbuf `m` and patch in a client → VIP packet.
#[inline]
fn fill(m: &mut Mbuf, tpl: &Template, src: std::net::Ipv4Addr, sport: u16, stamp: u64) {
    if m.extend_from_slice(tpl.bytes()) {
        let ends = Ends {
            src,
            dst: VIP,
            sport,
            dport: VPORT,
        };
        tpl.patch(m.data_mut(), &ends, stamp);
    }
}

/// What a worker runs.
enum Engine {
    /// rvs's worker loop, as `rvs run` runs it.
    Rvs(Box<WorkerLoop>),
    /// MAC swap and straight back out of the port it came in on.
    Null(Vec<TxQueue>),
}

/// One worker: the measured loop.
pub(crate) struct Worker {
    lane: usize,
    shared: Arc<Shared>,
    engine: Engine,
    rxqs: Vec<RxQueue>,
    rx: Vec<Mbuf>,
    burst: usize,
    clock: crate::time::TscClock,
    rx_total: u64,
    busy_cycles: u64,
    busy_iters: u64,
    null_full: u64,
    /// FTP data: the control connections to look up at the end of population.
    master_keys: Vec<crate::flow::FlowKey>,
}

impl Worker {
    #[inline]
    fn step(&mut self) {
        let t0 = dpdk::tsc();
        let mut got = 0usize;
        match &mut self.engine {
            Engine::Rvs(w) => {
                got = w.step(self.clock.at(t0));
            }
            Engine::Null(txqs) => {
                for (q, tq) in self.rxqs.iter_mut().zip(txqs.iter_mut()) {
                    let n = q.rx_burst(&mut self.rx, self.burst);
                    if n == 0 {
                        continue;
                    }
                    got += n;
                    for m in self.rx.iter_mut() {
                        let d = m.data_mut();
                        if d.len() >= 12 {
                            let (dst, src) = d.split_at_mut(6);
                            dst.swap_with_slice(&mut src[..6]);
                        }
                    }
                    tq.tx_burst(&mut self.rx);
                    self.null_full += self.rx.len() as u64;
                    free_bulk(&mut self.rx);
                }
            }
        }
        if got > 0 {
            let t1 = dpdk::tsc();
            self.busy_cycles += t1.wrapping_sub(t0);
            self.busy_iters += 1;
            self.rx_total += got as u64;
            if let Some(l) = self.shared.lanes.get(self.lane) {
                l.worker_rx.store(self.rx_total, Ordering::Release);
            }
        }
    }

    fn snapshot(&mut self) -> WorkerSnap {
        let (counters, flows) = match &mut self.engine {
            Engine::Rvs(w) => {
                let p = w.pipeline_mut();
                p.refresh_gauges();
                (p.counters().clone(), p.flows().len() as u64)
            }
            Engine::Null(_) => {
                let mut b = LocalBlock::new(Layout::drop(DropReason::TxFull) + 1);
                b.set(Layout::drop(DropReason::TxFull), self.null_full);
                (b, 0)
            }
        };
        WorkerSnap {
            rx: self.rx_total,
            busy_cycles: self.busy_cycles,
            busy_iters: self.busy_iters,
            tsc: dpdk::tsc(),
            counters,
            flows,
            cpu_ticks: thread_cpu_ticks(),
        }
    }

    fn on_phase(&mut self, phase: Phase) {
        if phase == Phase::Warmup {
            self.publish_masters();
        }
        if let Engine::Rvs(w) = &self.engine {
            if let Some(l) = self.shared.lanes.get(self.lane) {
                l.flows
                    .store(w.pipeline().flows().len() as u64, Ordering::Release);
            }
        }
        if let Some(slot) = phase.slot() {
            let snap = self.snapshot();
            self.shared
                .with_snaps(self.lane, |s| s.worker[slot] = Some(snap));
        }
    }

    /// Publish the flow count (for the controller, at the end of population).
    fn publish_flows(&self) {
        if let (Engine::Rvs(w), Some(l)) = (&self.engine, self.shared.lanes.get(self.lane)) {
            l.flows
                .store(w.pipeline().flows().len() as u64, Ordering::Release);
        }
    }

    /// FTP data: look up the control connections' flow-table slots (the expectations name
    /// them as their master) and publish them for the generator.
    fn publish_masters(&self) {
        let (Engine::Rvs(w), Some(l)) = (&self.engine, self.shared.lanes.get(self.lane)) else {
            return;
        };
        let p = w.pipeline();
        if self.master_keys.is_empty() {
            return;
        }
        let ids: Vec<u32> = self
            .master_keys
            .iter()
            .map(|k| p.flows().lookup(k).map_or(u32::MAX, |(id, _)| id.0))
            .collect();
        if let Ok(mut m) = l.masters.lock() {
            *m = Some(ids);
        }
    }

    fn finish(&mut self) {
        if let Engine::Rvs(w) = &mut self.engine {
            w.flush();
        }
    }
}

/// The sink of one lane: drains the TX rings, reads the stamps, frees in bulk.
pub(crate) struct Sink {
    lane: usize,
    shared: Arc<Shared>,
    rings: Vec<RingConsumer>,
    buf: Vec<Mbuf>,
    received: u64,
    by_port: [u64; 2],
    hist: Histogram<u64>,
    hook: Option<FtpSinkHook>,
    /// Record latency (not for FTP control frames, whose payload is the command).
    stamps: bool,
}

impl Sink {
    fn step(&mut self) {
        for (i, r) in self.rings.iter_mut().enumerate() {
            let mut rounds = 0;
            loop {
                let n = r.dequeue_burst(&mut self.buf, 64);
                if n == 0 {
                    break;
                }
                let now = dpdk::tsc();
                if let Some(h) = &mut self.hook {
                    h.saw(i, &self.buf);
                }
                if self.stamps {
                    for m in &self.buf {
                        self.hist
                            .saturating_record(latency(now, read_stamp(m.data())));
                    }
                }
                self.received += n as u64;
                // Rings alternate client port, server port (worker's, then the slow path's).
                self.by_port[i % 2] += n as u64;
                free_bulk(&mut self.buf);
                rounds += 1;
                if rounds >= 64 {
                    break;
                }
            }
        }
    }

    fn on_phase(&mut self, phase: Phase) {
        if phase == Phase::Measure {
            self.hist.reset();
        }
        if let Some(slot) = phase.slot() {
            let snap = SinkSnap {
                received: self.received,
                by_port: self.by_port,
            };
            let hist = (phase == Phase::Done).then(|| self.hist.clone());
            self.shared.with_snaps(self.lane, |s| {
                s.sink[slot] = Some(snap);
                if hist.is_some() {
                    s.hist = hist;
                }
            });
        }
    }
}

/// Drives the phases (on the main lcore) and measures memory around population.
pub(crate) struct Controller {
    shared: Arc<Shared>,
    hz: u64,
    warmup: u64,
    duration: u64,
    populate_limit: u64,
    deadline: u64,
    rss_before: u64,
    rss_after: u64,
    pop_start: u64,
    pop_end: u64,
    measure_start: u64,
    measure_end: u64,
    flows_after: u64,
    cpu_start: CpuTimes,
    cpu_end: CpuTimes,
}

impl Controller {
    fn tick(&mut self, now: u64) {
        match self.shared.phase() {
            Phase::Setup => {
                self.rss_before = rss_bytes();
                self.pop_start = now;
                self.deadline = now + self.populate_limit;
                self.shared.set_phase(Phase::Populate);
            }
            Phase::Populate => {
                let done = self.shared.lanes.iter().all(|l| {
                    l.populated.load(Ordering::Acquire)
                        && l.worker_rx.load(Ordering::Acquire) >= l.pop_sent.load(Ordering::Acquire)
                });
                if done {
                    self.pop_end = now;
                    self.rss_after = rss_bytes();
                    self.deadline = now + self.warmup;
                    self.shared.set_phase(Phase::Warmup);
                } else if now > self.deadline {
                    self.shared.fail(format!(
                        "population did not finish in {:.0} s (workers received {:?} of {:?} packets)",
                        self.populate_limit as f64 / self.hz as f64,
                        self.shared
                            .lanes
                            .iter()
                            .map(|l| l.worker_rx.load(Ordering::Relaxed))
                            .collect::<Vec<_>>(),
                        self.shared
                            .lanes
                            .iter()
                            .map(|l| l.pop_sent.load(Ordering::Relaxed))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            Phase::Warmup => {
                if now >= self.deadline {
                    self.flows_after = self
                        .shared
                        .lanes
                        .iter()
                        .map(|l| l.flows.load(Ordering::Acquire))
                        .sum();
                    self.measure_start = now;
                    self.cpu_start = CpuTimes::now();
                    self.deadline = now + self.duration;
                    self.shared.set_phase(Phase::Measure);
                }
            }
            Phase::Measure => {
                if now >= self.deadline {
                    self.measure_end = now;
                    self.cpu_end = CpuTimes::now();
                    self.shared.set_phase(Phase::Done);
                }
            }
            Phase::Done => {}
        }
    }
}

/// CPU time of the whole machine and of this process, in clock ticks (USER_HZ), to tell how
/// much else ran during the measurement.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CpuTimes {
    /// Busy ticks of all CPUs (user, nice, system, irq, softirq).
    pub busy: u64,
    /// Ticks the hypervisor ran something else (steal).
    pub steal: u64,
    /// Ticks of this process (user + system).
    pub own: u64,
}

impl CpuTimes {
    /// Read /proc/stat and /proc/self/stat (zeros where unreadable).
    pub fn now() -> CpuTimes {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let f = |i: usize| cpu.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        let busy = f(0) + f(1) + f(2) + f(5) + f(6);
        let own_stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let own = own_stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                let v: Vec<u64> = rest
                    .split_whitespace()
                    .map(|x| x.parse().unwrap_or(0))
                    .collect();
                v.get(11).copied().unwrap_or(0) + v.get(12).copied().unwrap_or(0)
            })
            .unwrap_or(0);
        CpuTimes {
            busy,
            steal: f(7),
            own,
        }
    }
}

/// CPU ticks (USER_HZ) the calling thread has run, user and system (0 if unreadable).
fn thread_cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            Some(v.get(11).copied().unwrap_or(0) + v.get(12).copied().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// Resident set size of this process in bytes (`VmRSS` of /proc/self/status; 0 if unreadable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The roles one lcore runs, in this order, every loop iteration.
pub(crate) struct Job {
    shared: Arc<Shared>,
    gens: Vec<Generator>,
    workers: Vec<Worker>,
    sinks: Vec<Sink>,
    slow: Option<SlowRole>,
    control: Option<Controller>,
}

impl Job {
    fn new(shared: &Arc<Shared>) -> Job {
        Job {
            shared: Arc::clone(shared),
            gens: Vec::new(),
            workers: Vec::new(),
            sinks: Vec::new(),
            slow: None,
            control: None,
        }
    }

    fn run(mut self) -> Option<Controller> {
        let mut seen = Phase::Setup;
        loop {
            let now = dpdk::tsc();
            let phase = self.shared.phase();
            if phase != seen {
                for g in &mut self.gens {
                    g.on_phase(phase, now);
                }
                for w in &mut self.workers {
                    if phase == Phase::Done {
                        w.finish();
                    }
                    w.on_phase(phase);
                }
                for s in &mut self.sinks {
                    s.on_phase(phase);
                }
                if let Some(s) = &mut self.slow {
                    s.on_phase(phase, &self.shared);
                }
                seen = phase;
                if phase == Phase::Done {
                    break;
                }
            }
            for g in &mut self.gens {
                g.step(now, phase);
            }
            for w in &mut self.workers {
                w.step();
            }
            for s in &mut self.sinks {
                s.step();
            }
            if let Some(s) = &mut self.slow {
                s.step();
            }
            if phase == Phase::Populate {
                for w in &self.workers {
                    w.publish_flows();
                }
            }
            if let Some(c) = &mut self.control {
                c.tick(now);
            }
        }
        self.control.take()
    }
}

/// `machine`: CPU model, CPUs and memory, from /proc.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let hyp = if cpuinfo.contains(" hypervisor") {
        ", VM"
    } else {
        ""
    };
    format!(
        "{model}, {cpus} vCPU{hyp}, {:.0} GiB RAM",
        mem as f64 / (1 << 20) as f64
    )
}

/// Sink rings are this many times larger than generator rings: a sink that shares its lcore
/// with the generator and is preempted for a while must never make the worker drop (`tx_full`)
/// — the generator stalls with it, so the worker can move at most what the RX ring holds.
const SINK_RING_FACTOR: u32 = 4;

/// Mbufs of the pool: every ring full (`slots` in all), bursts in hand, lcore caches, margin;
/// 2^k - 1.
fn pool_size(o: &Options, slots: u64) -> u32 {
    let need = slots + u64::from(o.lcores) * 1024 + (o.burst as u64) * 64 + 8192;
    let n = need.next_power_of_two().max(16384);
    (n - 1).min(u64::from(u32::MAX)) as u32
}

/// Touch every mbuf's memory once, so that population grows RSS by flow memory only.
fn prefault(pool: &Mempool) {
    let mut all: Vec<Vec<Mbuf>> = Vec::new();
    loop {
        let mut v = Vec::with_capacity(512);
        if !pool.alloc_bulk(&mut v, 512) {
            break;
        }
        for m in v.iter_mut() {
            let room = m.tailroom() as usize;
            if m.append(room) {
                m.data_mut().fill(0);
            }
        }
        all.push(v);
    }
    for mut v in all {
        free_bulk(&mut v);
    }
}

/// The EAL arguments of a harness process: `lcores`, `mem_mb` MB of 4 KiB pages, no PCI probing,
/// its own file prefix, quiet logs.
pub(crate) fn eal_args(lcores: &str, mem_mb: u64, prefix: String) -> Vec<String> {
    [
        "-l".to_string(),
        lcores.to_string(),
        "--no-pci".into(),
        "--no-huge".into(),
        "-m".into(),
        mem_mb.to_string(),
        "--file-prefix".into(),
        prefix,
        "--log-level".into(),
        "*:error".into(),
        "--no-telemetry".into(),
    ]
    .into()
}

/// Run one benchmark.
pub fn run(o: &Options) -> Result<Report, BenchError> {
    let cfg = scenario::config(o)?;
    let lanes = usize::from(o.workers);
    let placement = o.placement();
    let ftp = o.scenario.ftp();
    let tx_per_port = lanes;
    let slots = u64::from(o.ring_size)
        * (2 * lanes as u64 + 2 * tx_per_port as u64 * u64::from(SINK_RING_FACTOR));
    let pool_n = pool_size(o, slots);
    // Mbuf objects are about 2.4 KB with headers; give the EAL room for the pool, the rings
    // and its own heap. (Flow tables live on the Rust heap, not in EAL memory.)
    let mem_mb = ((u64::from(pool_n) * 2560) >> 20) + 256;
    let prefix = o
        .file_prefix
        .clone()
        .unwrap_or_else(|| format!("rvs-bench-{}", std::process::id()));
    let eal_args = eal_args(&format!("0-{}", o.lcores.saturating_sub(1)), mem_mb, prefix);
    let eal = Eal::init(&eal_args).map_err(|e| {
        BenchError(format!(
            "EAL initialisation failed ({e}); run as root, with {} MB of free memory",
            mem_mb
        ))
    })?;
    let remote = dpdk::worker_lcores();
    let hz = dpdk::tsc_hz().max(1);
    let pool = Arc::new(Mempool::new(
        "rvsb_pool",
        pool_n,
        256,
        dpdk::DEFAULT_DATA_ROOM,
        dpdk::socket_id(),
    )?);
    prefault(&pool);

    // Rings: rx[p][w] generator → worker, tx[p][q] worker (or slow path, q = lanes) → sink.
    let socket = dpdk::socket_id();
    let mut gen_ends: Vec<Vec<RingProducer>> = (0..lanes).map(|_| Vec::new()).collect();
    let mut sink_ends: Vec<Vec<RingConsumer>> = (0..lanes).map(|_| Vec::new()).collect();
    let mut slow_sink_ends: Vec<RingConsumer> = Vec::new();
    let mut ports: Vec<RingPort> = Vec::new();
    let mut queues: Vec<(Vec<RxQueue>, Vec<TxQueue>)> = Vec::new();
    for (p, name) in scenario::PORT_NAMES.iter().enumerate() {
        let mut rx_cons = Vec::new();
        let mut tx_prod = Vec::new();
        for (w, ends) in gen_ends.iter_mut().enumerate() {
            let (prod, cons) = mbuf_ring(&format!("rvsb_rx{p}_{w}"), o.ring_size, socket)?;
            ends.push(prod);
            rx_cons.push(cons);
        }
        for q in 0..tx_per_port {
            let (prod, cons) = mbuf_ring(
                &format!("rvsb_tx{p}_{q}"),
                o.ring_size * SINK_RING_FACTOR,
                socket,
            )?;
            tx_prod.push(prod);
            match sink_ends.get_mut(q) {
                Some(v) => v.push(cons),
                None => slow_sink_ends.push(cons),
            }
        }
        let pc = PortConfig {
            rx_desc: 0,
            tx_desc: 0,
            promiscuous: true,
            ..PortConfig::default()
        };
        let (port, rxq, txq) = ring_port(name, rx_cons, tx_prod, &pc, &pool)?;
        ports.push(port);
        queues.push((rxq, txq));
    }
    let macs: Vec<MacAddr> = ports.iter().map(|p| MacAddr(p.port().mac())).collect();

    let shared = Arc::new(Shared {
        phase: AtomicU8::new(Phase::Setup as u8),
        lanes: (0..lanes).map(|_| LaneShared::default()).collect(),
        slow: Mutex::new([None, None]),
        failed: Mutex::new(None),
    });

    let expect = Arc::new(Expectations::new(cfg.ftp.max_expectations));
    // The queues of `rvs run`, one inbox of each kind per lane (lanes never hand over: each
    // generates only flows its own worker owns), and the rings to the slow path.
    let mail = Arc::new(Mailboxes::new(lanes, cfg.ftp.ring_size));

    // Per-lane queue handles: worker w owns RX queue w and TX queue w of both ports.
    let mut rxqs: Vec<Vec<RxQueue>> = (0..lanes).map(|_| Vec::new()).collect();
    let mut txqs: Vec<Vec<TxQueue>> = (0..lanes).map(|_| Vec::new()).collect();
    for (rxq, txq) in queues {
        for (w, q) in rxq.into_iter().enumerate() {
            if let Some(v) = rxqs.get_mut(w) {
                v.push(q);
            }
        }
        for (w, q) in txq.into_iter().enumerate() {
            if let Some(v) = txqs.get_mut(w) {
                v.push(q);
            }
        }
    }

    let sharding = Sharding::new(o.workers, 32);
    let t0 = dpdk::tsc();
    let mut lanes_roles = Vec::new();
    for (w, ((gen_rings, sink_rings), (rxq, txq))) in gen_ends
        .into_iter()
        .zip(sink_ends)
        .zip(rxqs.into_iter().zip(txqs))
        .enumerate()
    {
        let keys = FlowKeys::for_lane(w as u16, &sharding);
        let per_lane = o.flows.div_ceil(o.workers.max(1) as u64);
        if per_lane > keys.capacity() && o.scenario != Scenario::SynStorm {
            return Err(BenchError(format!(
                "--flows {}: at most {} flows per worker with {} worker(s) (254 client addresses × 64512 ports, split by owner)",
                o.flows,
                keys.capacity(),
                o.workers
            )));
        }
        let established = if o.scenario.established() {
            per_lane
        } else {
            0
        };
        // The null engine reads the lane's RX queues itself; rvs's worker loop owns them.
        let (engine, rxq) = if o.scenario == Scenario::Null {
            (Engine::Null(txq), rxq)
        } else {
            let mut p: Pipeline<Mbuf> = Pipeline::new(&cfg, &macs, w as u16, Instant::ZERO);
            if ftp {
                p.set_expectations(Arc::clone(&expect));
            }
            let block = Arc::new(SharedBlock::new(p.layout().len()));
            let engine = Engine::Rvs(Box::new(WorkerLoop::new(
                p,
                (rxq, txq),
                Arc::clone(&pool),
                Arc::clone(&mail),
                block,
                o.burst,
            )));
            (engine, Vec::new())
        };
        let worker = Worker {
            lane: w,
            shared: Arc::clone(&shared),
            engine,
            rxqs: rxq,
            rx: Vec::with_capacity(o.burst),
            burst: o.burst,
            clock: crate::time::TscClock::new(t0, hz),
            rx_total: 0,
            busy_cycles: 0,
            busy_iters: 0,
            null_full: 0,
            master_keys: if o.scenario == Scenario::FtpData {
                super::ftp::control_keys(o, &FlowKeys::for_lane(w as u16, &sharding))
            } else {
                Vec::new()
            },
        };
        let client_mac = MacAddr(scenario::CLIENT_GW_MAC);
        let l4_data = match o.proto {
            Proto::Tcp => L4::Tcp(TcpFlags::ACK),
            Proto::Udp => L4::Udp,
        };
        let l4_new = match o.proto {
            Proto::Tcp => L4::Tcp(TcpFlags::SYN),
            Proto::Udp => L4::Udp,
        };
        let stages = match (o.scenario.established(), o.proto) {
            (false, _) => vec![],
            (true, Proto::Tcp) => vec![Stage::Syn, Stage::Ack],
            (true, Proto::Udp) => vec![Stage::Udp],
        };
        let share = o.effective_new_share();
        let new_threshold = if share >= 1.0 {
            u64::MAX
        } else {
            (share * u64::MAX as f64) as u64
        };
        let (traffic, hook) = if ftp {
            let (d, h) = FtpDriver::new(
                o,
                &keys,
                &macs,
                Arc::clone(&expect),
                Arc::clone(&shared),
                hz,
                t0,
            );
            (Traffic::Ftp(Box::new(d)), Some(h))
        } else {
            (Traffic::Plain, None)
        };
        let pacer = match o.rate {
            Rate::Max => None,
            Rate::Pps(r) => Some(Pacer::new(r / u64::from(o.workers.max(1)), hz, t0, o.burst)),
        };
        let gen = Generator {
            lane: w,
            shared: Arc::clone(&shared),
            pool: Arc::clone(&pool),
            rings: gen_rings,
            established,
            new_base: established,
            new_span: keys.capacity().saturating_sub(established).max(1),
            new_next: 0,
            new_threshold,
            pattern: Pattern::new(o.pattern, established.max(1)),
            rng: SplitMix64::new(o.seed ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            data: Template::new(l4_data, client_mac, macs[0], o.size),
            syn: Template::new(l4_new, client_mac, macs[0], o.size),
            keys,
            pacer,
            burst: o.burst,
            bufs: Vec::with_capacity(o.burst * 2),
            stages,
            stage: 0,
            pop_i: 0,
            pop_sent: 0,
            traffic,
            snap: GenSnap::default(),
        };
        let mut sink_rings = sink_rings;
        if w == 0 {
            sink_rings.append(&mut slow_sink_ends);
        }
        let sink = Sink {
            lane: w,
            shared: Arc::clone(&shared),
            rings: sink_rings,
            buf: Vec::with_capacity(64),
            received: 0,
            by_port: [0; 2],
            hist: Histogram::new_with_bounds(1, hz.saturating_mul(60).max(2), 3)
                .map_err(|e| BenchError(format!("histogram: {e}")))?,
            hook,
            stamps: o.scenario != Scenario::FtpCtl,
        };
        lanes_roles.push((gen, worker, sink));
    }

    let controller = Controller {
        shared: Arc::clone(&shared),
        hz,
        warmup: (o.warmup * hz as f64) as u64,
        duration: (o.duration * hz as f64) as u64,
        populate_limit: (120.0 + o.flows as f64 / 50_000.0) as u64 * hz,
        deadline: 0,
        rss_before: 0,
        rss_after: 0,
        pop_start: 0,
        pop_end: 0,
        measure_start: 0,
        measure_end: 0,
        flows_after: 0,
        cpu_start: CpuTimes::default(),
        cpu_end: CpuTimes::default(),
    };

    // Placement: jobs[0] runs on the main lcore, jobs[i] on the i-th worker lcore.
    let mut jobs: Vec<Job> = Vec::new();
    match placement {
        Placement::Split => {
            let mut main = Job::new(&shared);
            for (gen, worker, sink) in lanes_roles {
                main.gens.push(gen);
                main.sinks.push(sink);
                let mut j = Job::new(&shared);
                j.workers.push(worker);
                jobs.push(j);
            }
            if o.scenario == Scenario::FtpCtl {
                main.slow = Some(SlowRole::new(
                    &cfg,
                    Arc::clone(&expect),
                    Arc::clone(&mail.slow),
                    o.burst,
                    hz,
                    t0,
                ));
            }
            main.control = Some(controller);
            jobs.insert(0, main);
        }
        Placement::Inline => {
            for (gen, worker, sink) in lanes_roles {
                let mut j = Job::new(&shared);
                j.gens.push(gen);
                j.workers.push(worker);
                j.sinks.push(sink);
                jobs.push(j);
            }
            if let Some(j) = jobs.first_mut() {
                j.control = Some(controller);
            }
        }
    }
    let mut jobs = jobs.into_iter();
    let main_job = jobs
        .next()
        .ok_or_else(|| BenchError("no job to run".into()))?;
    let mut handles = Vec::new();
    for (j, lcore) in jobs.zip(remote.iter().copied()) {
        handles.push(dpdk::launch(lcore, move || {
            j.run();
            0
        })?);
    }
    let control = main_job.run();
    let rcs: Vec<i32> = handles.into_iter().map(|h| h.wait()).collect();
    let failed = shared.failed.lock().ok().and_then(|f| f.clone());

    let report = control.map(|c| build_report(o, &cfg, &shared, &c, hz));
    // Frames still waiting for the slow path go back to the pool before it goes.
    mail.drain();
    drop(ports);
    drop(pool);
    drop(eal);
    if let Some(why) = failed {
        return Err(BenchError(why));
    }
    if rcs.iter().any(|rc| *rc != 0) {
        return Err(BenchError(format!("a worker lcore failed: {rcs:?}")));
    }
    report.ok_or_else(|| BenchError("the controller did not report".into()))
}

fn build_report(o: &Options, cfg: &Config, shared: &Shared, c: &Controller, hz: u64) -> Report {
    let secs = (c.measure_end.saturating_sub(c.measure_start)) as f64 / hz as f64;
    let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    // Clock ticks (USER_HZ, 100 on Linux) per second of measurement → CPUs.
    let cpus = |ticks: u64| per_s(ticks) / 100.0;
    let layout = Layout::of(cfg);
    let mut drops: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_worker = Vec::new();
    let (mut rx, mut busy, mut iters, mut created, mut sent, mut lost, mut out) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut hist: Option<Histogram<u64>> = None;
    let mut out_by_port = [0u64; 2];
    let (mut published, mut refused) = (0u64, 0u64);
    let mut ftp_counters = LocalBlock::new(layout.len());
    for lane in &shared.lanes {
        let Ok(s) = lane.snaps.lock() else { continue };
        if let (Some(a), Some(b)) = (&s.worker[0], &s.worker[1]) {
            let d_rx = b.rx - a.rx;
            let d_busy = b.busy_cycles - a.busy_cycles;
            let d = |i: usize| b.counters.get(i).wrapping_sub(a.counters.get(i));
            let d_created = d(Layout::counter(Counter::FlowsCreated));
            for r in DropReason::ALL {
                let n = d(Layout::drop(*r));
                if n > 0 {
                    *drops.entry(r.name().to_string()).or_insert(0) += n;
                }
            }
            for f in FtpCounter::ALL {
                ftp_counters.add(layout.ftp(0, *f), d(layout.ftp(0, *f)));
            }
            ftp_counters.add(
                Layout::counter(Counter::FtpDataFlows),
                d(Layout::counter(Counter::FtpDataFlows)),
            );
            let span = b.tsc.saturating_sub(a.tsc).max(1);
            per_worker.push(WorkerFigures {
                mpps: per_s(d_rx) / 1e6,
                cycles_per_packet: if d_rx > 0 {
                    d_busy as f64 / d_rx as f64
                } else {
                    0.0
                },
                busy: d_busy as f64 / span as f64,
                on_cpu: (b.cpu_ticks.saturating_sub(a.cpu_ticks)) as f64
                    / 100.0
                    / (span as f64 / hz as f64),
                new_conns_per_sec: per_s(d_created),
                flows: b.flows,
            });
            rx += d_rx;
            busy += d_busy;
            iters += b.busy_iters - a.busy_iters;
            created += d_created;
        }
        if let (Some(a), Some(b)) = (&s.gen[0], &s.gen[1]) {
            sent += b.sent - a.sent;
            lost += b.lost - a.lost;
            published += b.published - a.published;
            refused += b.refused - a.refused;
        }
        if let (Some(a), Some(b)) = (&s.sink[0], &s.sink[1]) {
            out += b.received - a.received;
            for (o, (x, y)) in out_by_port.iter_mut().zip(b.by_port.iter().zip(a.by_port)) {
                *o += x - y;
            }
        }
        if let Some(h) = &s.hist {
            match &mut hist {
                None => hist = Some(h.clone()),
                Some(acc) => {
                    let _ = acc.add(h);
                }
            }
        }
    }
    let latency = hist
        .map(|h| report::Latency {
            samples: h.len(),
            p50_ns: report::quantile_ns(&h, 0.5, hz),
            p99_ns: report::quantile_ns(&h, 0.99, hz),
            p999_ns: report::quantile_ns(&h, 0.999, hz),
            max_ns: report::ticks_to_ns(h.max(), hz),
        })
        .unwrap_or_default();
    let memory = (o.scenario.established() && c.flows_after > 0).then(|| report::Memory {
        flows: c.flows_after,
        rss_before: c.rss_before,
        rss_after: c.rss_after,
        bytes_per_flow: c.rss_after.saturating_sub(c.rss_before) as f64 / c.flows_after as f64,
        populate_secs: c.pop_end.saturating_sub(c.pop_start) as f64 / hz as f64,
    });
    let ftp = o.scenario.ftp().then(|| {
        let slow = shared.slow.lock().ok();
        let (mut handled, mut slow_busy) = (0u64, 0u64);
        if let Some(s) = slow.as_ref() {
            if let (Some(a), Some(b)) = (&s[0], &s[1]) {
                handled = b.handled - a.handled;
                slow_busy = b.busy_cycles - a.busy_cycles;
                for f in FtpCounter::ALL {
                    let i = layout.ftp(0, *f);
                    ftp_counters.add(i, b.counters.get(i).wrapping_sub(a.counters.get(i)));
                }
                for r in DropReason::ALL {
                    let i = Layout::drop(*r);
                    let n = b.counters.get(i).wrapping_sub(a.counters.get(i));
                    if n > 0 {
                        *drops.entry(r.name().to_string()).or_insert(0) += n;
                    }
                }
            }
        }
        let mut counters: BTreeMap<String, u64> = FtpCounter::ALL
            .iter()
            .filter(|f| **f != FtpCounter::ControlConns)
            .map(|f| (f.name().to_string(), ftp_counters.get(layout.ftp(0, *f))))
            .filter(|(_, v)| *v > 0)
            .collect();
        // ftp-data: the generator published the expectations (the helper's counters are 0).
        for (name, v) in [
            ("bench_expect_published", published),
            ("bench_expect_refused", refused),
        ] {
            if v > 0 {
                counters.insert(name.into(), v);
            }
        }
        report::Ftp {
            rewrites_per_sec: per_s(ftp_counters.get(layout.ftp(0, FtpCounter::Rewrites))),
            data_conns_per_sec: per_s(ftp_counters.get(Layout::counter(Counter::FtpDataFlows))),
            slowpath_cycles_per_msg: if handled > 0 {
                slow_busy as f64 / handled as f64
            } else {
                0.0
            },
            counters,
        }
    });
    let unexpected = drops.values().sum();
    Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        scenario: o.scenario.name().into(),
        workers: o.workers,
        placement: o.placement().name().into(),
        // A storm has no established flows: its keys cycle over the whole client space.
        flows: if o.scenario == Scenario::SynStorm {
            0
        } else {
            o.flows
        },
        size: o.size,
        proto: match o.proto {
            Proto::Tcp => "tcp".into(),
            Proto::Udp => "udp".into(),
        },
        pattern: o.pattern.to_string(),
        new_share: o.effective_new_share(),
        rate: o.rate.to_string(),
        seconds: secs,
        machine: machine(),
        dpdk: dpdk::version(),
        tsc_hz: hz,
        mpps: per_s(rx) / 1e6,
        out_mpps: per_s(out) / 1e6,
        offered_mpps: per_s(sent) / 1e6,
        out_by_port,
        foreign_cpus: cpus(c.cpu_end.busy.saturating_sub(c.cpu_start.busy))
            - cpus(c.cpu_end.own.saturating_sub(c.cpu_start.own)),
        steal_cpus: cpus(c.cpu_end.steal.saturating_sub(c.cpu_start.steal)),
        gen_lost: lost,
        cycles_per_packet: if rx > 0 { busy as f64 / rx as f64 } else { 0.0 },
        avg_burst: if iters > 0 {
            rx as f64 / iters as f64
        } else {
            0.0
        },
        new_conns_per_sec: per_s(created),
        per_worker,
        drops,
        unexpected_drops: unexpected,
        latency,
        memory,
        ftp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_covers_every_ring() {
        let o = Options::default();
        let n = pool_size(&o, 8 * 1024);
        assert!(u64::from(n) >= 8 * 1024 + 2 * 1024);
        assert!((u64::from(n) + 1).is_power_of_two());
    }

    #[test]
    fn rss_is_read() {
        assert!(rss_bytes() > 0);
        assert!(machine().contains("vCPU"));
    }

    #[test]
    fn phases_round_trip() {
        for p in [
            Phase::Setup,
            Phase::Populate,
            Phase::Warmup,
            Phase::Measure,
            Phase::Done,
        ] {
            assert_eq!(Phase::from_u8(p as u8), p);
        }
        assert_eq!(Phase::Measure.slot(), Some(0));
        assert_eq!(Phase::Done.slot(), Some(1));
        assert_eq!(Phase::Warmup.slot(), None);
    }
}
