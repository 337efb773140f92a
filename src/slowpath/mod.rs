//! The slow path: the thread that owns FTP control connections.
//!
//! ```text
//! worker w ──SlowMsg ring w (bounded, SPSC)──▶ slow path ──SlowReturn ring w──▶ worker w
//!                                               │                              (sends it, then
//!                                               │                               the frames held
//!                                               │                               behind it)
//!                                               └─▶ expectations (shared, lock-free) ─▶ workers
//! ```
//!
//! What crosses and why ordering holds: a worker gives the slow path every non-SYN frame of an
//! FTP control connection *after* forwarding it (state tracked, NAT applied, Ethernet header
//! built), plus notices that a control connection ended or that an active-mode local port is
//! free. A connection's frames in both directions are handled by the one worker that owns it
//! (`flow::rss`), that worker pushes them into its own FIFO ring in the order it forwarded them,
//! the slow path answers each ring in order on that worker's return ring, and the worker sends
//! each frame when its answer comes, holding later frames of the same host pair until then
//! (`worker::order`); so the frames of one client and server leave in the order the worker
//! handled them, and a `Closed` notice arrives after the last frame. A full ring drops the
//! frame and counts it (TCP resends it); a worker never waits.
//!
//! This module is the whole worker ↔ slow-path protocol: the messages ([`SlowMsg`] in,
//! [`SlowReturn`] back), the rings that carry them ([`SlowRings`], one pair per worker), what
//! the slow path does with one message ([`handle`], pure, used by the tests) and one round of
//! its loop ([`SlowPath::step`], used by the thread under `rvs run` and cooperatively by
//! `rvs bench`).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::queue::ArrayQueue;

use crate::helper::ftp::ctl::{CtlKey, CtlMeta, Helper};
use crate::packet::PacketBuf;
use crate::stats::SharedBlock;
use crate::time::Instant;

/// The slow path's answer to each [`SlowMsg::Packet`], in the order the worker gave them, on
/// that worker's return ring: the frame to send, or word that it was dropped (counted by the
/// helper). The worker sends it and lets go the frames of its host pair that waited behind it
/// (see [`order`]).
#[derive(Debug)]
pub enum SlowReturn<B> {
    /// Send `buf` out of `port` as it is.
    Send {
        /// The port.
        port: u16,
        /// The frame.
        buf: B,
    },
    /// The slow path dropped the frame.
    Dropped,
}

/// What a worker tells the slow path, in order, over its own ring. Frames of one control
/// connection always come from the worker that owns it, so the slow path sees each
/// connection's packets in the order that worker forwarded them.
#[derive(Debug)]
pub enum SlowMsg<B> {
    /// A control connection's frame: rewritten by the worker, Ethernet header built, to be
    /// sent out of `port` once the FTP helper is done with it.
    Packet {
        /// The port to send it out of.
        port: u16,
        /// The frame.
        buf: B,
        /// The connection, as the worker holds it.
        meta: CtlMeta,
    },
    /// A control connection ended: withdraw its expectations.
    Closed(CtlKey),
    /// A full-NAT active-mode data connection ended: its local port is free again.
    Released {
        /// Local address.
        laddr: Ipv4Addr,
        /// Local port.
        lport: u16,
    },
}

/// The rings between the workers and the slow path: for each worker, one ring of
/// [`SlowMsg`]s to the slow path and one of [`SlowReturn`]s back (both single producer, single
/// consumer in practice). A full ring is the sender's to handle (drop and count), never a wait.
#[derive(Debug)]
pub struct SlowRings<B> {
    inboxes: Vec<ArrayQueue<SlowMsg<B>>>,
    returns: Vec<ArrayQueue<SlowReturn<B>>>,
}

impl<B> SlowRings<B> {
    /// Rings of `size` entries each for `workers` workers.
    pub fn new(workers: usize, size: usize) -> SlowRings<B> {
        let size = size.max(1);
        SlowRings {
            inboxes: (0..workers).map(|_| ArrayQueue::new(size)).collect(),
            returns: (0..workers).map(|_| ArrayQueue::new(size)).collect(),
        }
    }

    /// Worker `worker` gives the slow path `msg`; a full ring (or no such worker) gives it back.
    pub fn send(&self, worker: u16, msg: SlowMsg<B>) -> Result<(), SlowMsg<B>> {
        match self.inboxes.get(usize::from(worker)) {
            Some(q) => q.push(msg),
            None => Err(msg),
        }
    }

    /// The slow path's next answer for worker `worker`.
    #[inline]
    pub fn answer(&self, worker: u16) -> Option<SlowReturn<B>> {
        self.returns.get(usize::from(worker))?.pop()
    }

    /// Drop every message and answer still queued (once nobody uses the rings any more).
    pub fn drain(&self) {
        for q in &self.inboxes {
            while q.pop().is_some() {}
        }
        for q in &self.returns {
            while q.pop().is_some() {}
        }
    }
}

/// Handle one message. A frame gets an answer for its worker (the frame to send, or
/// [`SlowReturn::Dropped`]; a dropped frame is given to `discard` and counted by the helper);
/// notices get none.
pub fn handle<B: PacketBuf>(
    helper: &mut Helper,
    msg: SlowMsg<B>,
    now: Instant,
    mut discard: impl FnMut(B),
) -> Option<SlowReturn<B>> {
    match msg {
        SlowMsg::Packet {
            port,
            mut buf,
            meta,
        } => Some(match helper.packet(&mut buf, &meta, now) {
            Ok(()) => SlowReturn::Send { port, buf },
            Err(_) => {
                discard(buf);
                SlowReturn::Dropped
            }
        }),
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

/// Everything the slow path owns; `B` is the frame buffer (`Mbuf` under `rvs run` and
/// `rvs bench`).
pub struct SlowPath<B: PacketBuf> {
    /// The FTP state.
    pub helper: Helper,
    /// The rings to and from every worker.
    pub rings: Arc<SlowRings<B>>,
    /// Where its counters are published.
    pub shared: Arc<SharedBlock>,
    /// Frames per inbox per round.
    pub burst: usize,
    next_poll: Instant,
    next_publish: Instant,
}

const POLL_EVERY: Duration = Duration::from_millis(10);
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// Idle rounds before the thread naps: FTP control traffic is light, and on a small machine
/// the slow path must not take a core from the workers.
const SPIN_ROUNDS: u32 = 256;
const NAP: Duration = Duration::from_micros(50);

impl<B: PacketBuf> SlowPath<B> {
    /// A slow path for `helper`, serving the workers of `rings`, publishing to `shared`.
    pub fn new(
        helper: Helper,
        rings: Arc<SlowRings<B>>,
        shared: Arc<SharedBlock>,
        burst: usize,
    ) -> SlowPath<B> {
        SlowPath {
            helper,
            rings,
            shared,
            burst: burst.max(1),
            next_poll: Instant::ZERO,
            next_publish: Instant::ZERO,
        }
    }

    /// One round at `now`: up to `burst` messages from each worker, each frame answered on
    /// that worker's return ring; the helper's timers every 10 ms; counters published every
    /// 100 ms. Returns the messages handled.
    pub fn step(&mut self, now: Instant) -> usize {
        let mut work = 0usize;
        for (inbox, returns) in self.rings.inboxes.iter().zip(self.rings.returns.iter()) {
            for _ in 0..self.burst {
                // Every frame gets an answer, so a message is taken only when its answer has
                // room: a worker that is slow to drain its returns slows its own inbox (which
                // then drops and counts), and no answer is ever lost (the worker holds frames
                // until it comes).
                if returns.is_full() {
                    break;
                }
                let Some(msg) = inbox.pop() else { break };
                work += 1;
                if let Some(ret) = handle(&mut self.helper, msg, now, drop) {
                    // The only producer, and there was room: this cannot fail.
                    let _ = returns.push(ret);
                }
            }
        }
        if now >= self.next_poll {
            self.helper.poll(now);
            self.next_poll = now + POLL_EVERY;
        }
        if now >= self.next_publish {
            self.publish();
            self.next_publish = now + PUBLISH_EVERY;
        }
        work
    }

    /// The thread's loop, until `stop`: [`Self::step`], napping when idle.
    pub fn run(mut self, stop: &AtomicBool, clock: impl Fn() -> Instant) {
        let mut idle = 0u32;
        while !stop.load(Ordering::Relaxed) {
            if self.step(clock()) == 0 {
                idle += 1;
                if idle >= SPIN_ROUNDS {
                    std::thread::sleep(NAP);
                }
            } else {
                idle = 0;
            }
        }
        self.helper.poll(clock());
        self.publish();
        // Frames still queued are freed with the rings.
    }

    /// Publish the counters now.
    pub fn publish(&self) {
        self.shared.publish(self.helper.counters());
    }
}
