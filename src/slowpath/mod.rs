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
//! [`handle`] is the pure part (generic over the buffer, used by the tests); [`run`] is the
//! thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::queue::ArrayQueue;

use crate::helper::ftp::ctl::Helper;
use crate::packet::PacketBuf;
use crate::stats::SharedBlock;
use crate::time::Instant;
use crate::worker::{SlowMsg, SlowReturn};

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

/// Everything the slow-path thread owns; `B` is the frame buffer (`Mbuf` under `rvs run` and
/// `rvs bench`).
pub struct SlowPath<B: PacketBuf> {
    /// The FTP state.
    pub helper: Helper,
    /// One inbox per worker.
    pub inboxes: Arc<Vec<ArrayQueue<SlowMsg<B>>>>,
    /// One return ring per worker: its frames go back to it, in order.
    pub returns: Arc<Vec<ArrayQueue<SlowReturn<B>>>>,
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

impl<B: PacketBuf> SlowPath<B> {
    /// The thread's loop, until `stop`.
    pub fn run(mut self, clock: impl Fn() -> Instant) {
        let mut next_poll = Instant::ZERO;
        let mut next_publish = Instant::ZERO;
        let mut idle = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            let now = clock();
            let mut work = 0usize;
            for (inbox, returns) in self.inboxes.iter().zip(self.returns.iter()) {
                for _ in 0..self.burst {
                    // Every frame gets an answer, so a message is taken only when its answer
                    // has room: a worker that is slow to drain its returns slows its own
                    // inbox (which then drops and counts), and no answer is ever lost (the
                    // worker holds frames until it comes).
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
            if now >= next_poll {
                self.helper.poll(now);
                next_poll = now + POLL_EVERY;
            }
            if now >= next_publish {
                self.publish();
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
        self.publish();
        // Frames still queued are freed with the rings.
    }

    fn publish(&self) {
        self.shared.publish(self.helper.counters());
    }
}
