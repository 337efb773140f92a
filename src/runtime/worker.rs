//! One worker's loop, the same under `rvs run` and `rvs bench`: [`WorkerLoop::step`] takes a
//! burst from each of the worker's RX queues through the pipeline, then its inboxes (reload
//! changes, neighbours learned by others, frames handed over, the slow path's answers), lets go
//! the control frames every worker's watermark has passed, runs the pipeline's timers, sends
//! what the step produced in one `tx_burst` per port, and publishes the counters every 100 ms.
//! `rvs run` calls it until the stop flag ([`WorkerLoop::run`], napping when idle if asked to);
//! the benchmark harness calls it from its own measured loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::mail::{Mailboxes, NeighMsg, HANDOVER_QUEUE};
use crate::dpdk::{self, Mbuf, Mempool, RxQueue, TxQueue};
use crate::packet::PacketBuf;
use crate::stats::{DropReason, SharedBlock};
use crate::time::Instant;
use crate::wire::MacAddr;
use crate::worker::{Io, Pipeline, SlowMsg};

/// How often a worker publishes its counters.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Empty polling rounds in a row before a worker with `workers.idle_sleep_us` naps.
const IDLE_ROUNDS: u32 = 64;

/// Everything one worker owns.
pub(crate) struct WorkerLoop {
    id: u16,
    pipeline: Pipeline<Mbuf>,
    rxqs: Vec<RxQueue>,
    io: MbufIo,
    /// The same mailboxes as `io`'s: the step reads its inboxes while `io` is borrowed.
    mail: Arc<Mailboxes>,
    shared: Arc<SharedBlock>,
    rx: Vec<Mbuf>,
    /// The start of this worker's last poll that emptied its queues.
    last_drained: Instant,
    next_publish: Instant,
}

impl WorkerLoop {
    /// Worker `id`'s loop over its queues, sending through `txqs` (one per port), allocating
    /// from `pool`, publishing its counters to `shared`.
    pub(crate) fn new(
        pipeline: Pipeline<Mbuf>,
        (rxqs, txqs): (Vec<RxQueue>, Vec<TxQueue>),
        pool: Arc<Mempool>,
        mail: Arc<Mailboxes>,
        shared: Arc<SharedBlock>,
        burst: usize,
    ) -> WorkerLoop {
        let id = pipeline.worker();
        WorkerLoop {
            id,
            pipeline,
            rxqs,
            io: MbufIo {
                id,
                pool,
                mail: Arc::clone(&mail),
                tx: txqs
                    .into_iter()
                    .map(|q| (q, Vec::with_capacity(burst * 4)))
                    .collect(),
                tally: TxTally::default(),
                discard: Vec::with_capacity(burst * 2),
                burst,
            },
            mail,
            shared,
            rx: Vec::with_capacity(burst),
            last_drained: Instant::ZERO,
            next_publish: Instant::ZERO,
        }
    }

    /// The pipeline (the harness reads its counters and flows).
    pub(crate) fn pipeline(&self) -> &Pipeline<Mbuf> {
        &self.pipeline
    }

    /// The pipeline, to refresh its gauges.
    pub(crate) fn pipeline_mut(&mut self) -> &mut Pipeline<Mbuf> {
        &mut self.pipeline
    }

    /// Send what is batched and free what was dropped, now.
    pub(crate) fn flush(&mut self) {
        self.io.flush(&mut self.pipeline);
    }

    /// Announce our addresses (worker 0, once, before the first step).
    pub(crate) fn start(&mut self) {
        if self.id == 0 {
            self.pipeline.start(&mut self.io);
        }
        self.io.flush(&mut self.pipeline);
    }

    /// One round at `now` (see the module docs). Returns the frames and answers it took.
    #[inline]
    pub(crate) fn step(&mut self, now: Instant) -> usize {
        let (id, burst) = (usize::from(self.id), self.io.burst);
        let mail = &*self.mail;
        let pipeline = &mut self.pipeline;
        let io = &mut self.io;
        // What this poll takes reached the queues after the last poll that emptied them
        // began: the owner orders handed-over frames by that (`worker::order`).
        pipeline.set_poll_window(self.last_drained);
        let mut work = 0usize;
        let mut drained = true;
        for (port, q) in self.rxqs.iter_mut().enumerate() {
            let got = q.rx_burst(&mut self.rx, burst);
            work += got;
            drained &= got < burst;
            if got == 0 {
                continue;
            }
            pipeline.process_burst(port as u16, &mut self.rx, now, io);
        }
        if drained {
            // Everything that reached this worker's queues before `now` is handled or handed
            // over (the pushes above happen before this store).
            self.last_drained = now;
            if let Some(w) = mail.watermarks.get(id) {
                w.store(now.as_nanos(), Ordering::Release);
            }
        }
        if let Some(q) = mail.control.get(id) {
            while let Some(changes) = q.pop() {
                pipeline.apply_changes(&changes);
            }
        }
        if let Some(q) = mail.neigh.get(id) {
            while let Some(msg) = q.pop() {
                pipeline.learn_neighbour(msg.port, msg.ip, msg.mac, now, io);
            }
        }
        // The watermarks first (this worker's too: a backlog on its own queue may hold frames
        // older than a control frame another worker handed over), then every frame handed over
        // so far: a control frame every worker has passed cannot be overtaken by one taken
        // before it.
        let passed = if pipeline.held() == 0 {
            Instant::ZERO
        } else if mail.watermarks.len() == 1 {
            // One worker: each direction of a host pair arrives on one queue, in order.
            Instant::MAX
        } else {
            mail.passed_by_all()
        };
        if let Some(q) = mail.handover.get(id) {
            for _ in 0..HANDOVER_QUEUE {
                let Some((port, m, window)) = q.pop() else {
                    break;
                };
                work += 1;
                pipeline.process_handed_over(port, m, window, now, io);
            }
        }
        while let Some(ret) = mail.slow.answer(self.id) {
            work += 1;
            pipeline.slow_path_returned(ret, now);
        }
        if pipeline.held() > 0 {
            pipeline.release_ordered(passed, now, io);
        }
        pipeline.poll(now, io);
        io.flush(pipeline);
        if now >= self.next_publish {
            self.publish();
            self.next_publish = now + PUBLISH_EVERY;
        }
        work
    }

    /// Publish the counters now.
    pub(crate) fn publish(&mut self) {
        self.pipeline.refresh_gauges();
        self.shared.publish(self.pipeline.counters());
    }

    /// `rvs run`'s loop: steps until `stop`, napping `idle_sleep` after a run of empty rounds
    /// (never, when zero). Returns the lcore's exit code.
    pub(crate) fn run(
        mut self,
        stop: &AtomicBool,
        idle_sleep: Duration,
        clock: impl Fn() -> Instant,
    ) -> i32 {
        self.start();
        let mut idle = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let work = self.step(clock());
            if work == 0 && !idle_sleep.is_zero() {
                idle += 1;
                if idle >= IDLE_ROUNDS {
                    std::thread::sleep(idle_sleep);
                }
            } else {
                idle = 0;
            }
        }
        self.io.flush(&mut self.pipeline);
        self.publish();
        // Frees every mbuf still held (neighbour queues) before the pool can go.
        drop(self.pipeline);
        drop(self.io);
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
struct MbufIo {
    id: u16,
    pool: Arc<Mempool>,
    mail: Arc<Mailboxes>,
    tx: Vec<(TxQueue, Vec<Mbuf>)>,
    tally: TxTally,
    discard: Vec<Mbuf>,
    burst: usize,
}

impl MbufIo {
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

impl Io<Mbuf> for MbufIo {
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
        self.mail.slow.send(self.id, msg)
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
