//! The slow path: the thread that owns FTP control connections.
//!
//! ```text
//! worker w ──SlowMsg ring w (bounded, SPSC)──▶ slow path ──▶ own TX queue of the port
//!                                               │            (or, on devices with no spare
//!                                               │             TX queue, back to worker w's
//!                                               │             return ring, sent as-is)
//!                                               └─▶ expectations (shared, lock-free) ─▶ workers
//! ```
//!
//! What crosses and why ordering holds: a worker gives the slow path every non-SYN frame of an
//! FTP control connection *after* forwarding it (state tracked, NAT applied, Ethernet header
//! built), plus notices that a control connection ended or that an active-mode local port is
//! free. A connection's frames in both directions are handled by the one worker that owns it
//! (`flow::rss`), that worker pushes them into its own FIFO ring in the order it forwarded them,
//! the slow path pops each ring in order and sends on one queue per port; so the frames of one
//! connection leave in the order they came, and a `Closed` notice arrives after the last frame.
//! A full ring drops the frame and counts it (TCP resends it); a worker never waits.
//!
//! [`handle`] is the pure part (generic over the buffer, used by the tests); [`run`] is the
//! thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::queue::ArrayQueue;

use crate::dpdk::{Mbuf, TxQueue};
use crate::helper::ftp::ctl::Helper;
use crate::packet::PacketBuf;
use crate::stats::{Counter, Layout, LocalBlock, SharedBlock};
use crate::time::Instant;
use crate::worker::SlowMsg;

/// Handle one message. Returns the frame to send and its port, if any; a dropped frame is
/// given to `discard` (and counted by the helper).
pub fn handle<B: PacketBuf>(
    helper: &mut Helper,
    msg: SlowMsg<B>,
    now: Instant,
    mut discard: impl FnMut(B),
) -> Option<(u16, B)> {
    match msg {
        SlowMsg::Packet {
            port,
            mut buf,
            meta,
        } => match helper.packet(&mut buf, &meta, now) {
            Ok(()) => Some((port, buf)),
            Err(_) => {
                discard(buf);
                None
            }
        },
        SlowMsg::Closed(key) => {
            helper.closed(key);
            None
        }
        SlowMsg::Released { laddr, lport } => {
            helper.released(laddr, lport);
            None
        }
    }
}

/// Where the slow path's frames leave.
pub enum SlowTx {
    /// Its own TX queue on every port (index = port).
    Own(Vec<TxQueue>),
    /// No spare TX queue: back to the worker that sent the frame, which sends it as it is.
    ViaWorkers(Arc<Vec<ArrayQueue<(u16, Mbuf)>>>),
}

/// Everything the slow-path thread owns.
pub struct SlowPath {
    /// The FTP state.
    pub helper: Helper,
    /// One inbox per worker.
    pub inboxes: Arc<Vec<ArrayQueue<SlowMsg<Mbuf>>>>,
    /// Its way out.
    pub tx: SlowTx,
    /// Where its counters are published.
    pub shared: Arc<SharedBlock>,
    /// Set when rvs stops.
    pub stop: Arc<AtomicBool>,
    /// Frames per inbox per round.
    pub burst: usize,
}

const POLL_EVERY: Duration = Duration::from_millis(10);
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Idle rounds before the thread naps: FTP control traffic is light, and on a small machine
/// the slow path must not take a core from the workers.
const SPIN_ROUNDS: u32 = 256;
const NAP: Duration = Duration::from_micros(50);

impl SlowPath {
    /// The thread's loop, until `stop`.
    pub fn run(mut self, clock: impl Fn() -> Instant) {
        let mut out: Vec<Vec<Mbuf>> = Vec::new();
        let mut next_poll = Instant::ZERO;
        let mut next_publish = Instant::ZERO;
        let mut idle = 0u32;
        let mut extra = LocalBlock::new(self.helper.counters().len());
        while !self.stop.load(Ordering::Relaxed) {
            let now = clock();
            let mut work = 0usize;
            for (w, inbox) in self.inboxes.iter().enumerate() {
                for _ in 0..self.burst {
                    let Some(msg) = inbox.pop() else { break };
                    work += 1;
                    let Some((port, buf)) = handle(&mut self.helper, msg, now, drop) else {
                        continue;
                    };
                    match &self.tx {
                        SlowTx::Own(_) => {
                            let p = usize::from(port);
                            if out.len() <= p {
                                out.resize_with(p + 1, Vec::new);
                            }
                            if let Some(v) = out.get_mut(p) {
                                v.push(buf);
                            }
                        }
                        SlowTx::ViaWorkers(rings) => {
                            let pushed = rings.get(w).map(|r| r.push((port, buf)));
                            if !matches!(pushed, Some(Ok(()))) {
                                extra.add(Layout::drop(crate::stats::DropReason::SlowPathFull), 1);
                            }
                        }
                    }
                }
            }
            if let SlowTx::Own(queues) = &mut self.tx {
                for (q, pkts) in queues.iter_mut().zip(out.iter_mut()) {
                    if pkts.is_empty() {
                        continue;
                    }
                    let n = pkts.len();
                    let sent = q.tx_burst(pkts);
                    extra.add(Layout::counter(Counter::SlowPathTx), sent as u64);
                    extra.add(Layout::counter(Counter::TxPackets), sent as u64);
                    extra.add(
                        Layout::drop(crate::stats::DropReason::TxFull),
                        (n - sent) as u64,
                    );
                    pkts.clear();
                }
            }
            if now >= next_poll {
                self.helper.poll(now);
                next_poll = now + POLL_EVERY;
            }
            if now >= next_publish {
                self.publish(&extra);
                next_publish = now + PUBLISH_EVERY;
            }
            if work == 0 {
                idle += 1;
                if idle >= SPIN_ROUNDS {
                    std::thread::sleep(NAP);
                }
            } else {
                idle = 0;
            }
        }
        self.helper.poll(clock());
        self.publish(&extra);
        // Frames still queued are freed with the inboxes.
    }

    fn publish(&self, extra: &LocalBlock) {
        let mut b = self.helper.counters().clone();
        for i in 0..b.len() {
            b.add(i, extra.get(i));
        }
        self.shared.publish(&b);
    }
}
