//! The queues between the threads of a run: per worker, an inbox of frames handed over by other
//! workers (with when they arrived), of neighbours they learned, and of reload changes; each
//! worker's watermark; and the rings to and from the slow path ([`SlowRings`]). All bounded and
//! lock-free (crossbeam `ArrayQueue`): a full queue drops and counts, nobody ever waits.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;

use crate::config::ServerChange;
use crate::dpdk::Mbuf;
use crate::slowpath::SlowRings;
use crate::time::Instant;
use crate::wire::MacAddr;

/// Capacity of each worker's handover queue (frames another worker received for it).
pub(crate) const HANDOVER_QUEUE: usize = 8192;
/// Capacity of each worker's neighbour-message queue.
const NEIGH_QUEUE: usize = 1024;
/// Capacity of each worker's inbox of reload changes.
const CONTROL_QUEUE: usize = 16;

/// A neighbour learned by one worker, told to the others.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NeighMsg {
    pub(crate) port: u16,
    pub(crate) ip: Ipv4Addr,
    pub(crate) mac: MacAddr,
}

/// A frame handed to its owner: its port, the frame, and when it reached the sender's queue
/// (after `.0`, before `.1`; see `Pipeline::process_handed_over`).
pub(crate) type Handed = (u16, Mbuf, (Instant, Instant));

/// The queues between workers: one inbox of each kind per worker, any worker may push.
pub(crate) struct Mailboxes {
    /// Frames handed to their owner: (port, frame, when it reached the sender's queue: after
    /// the start of the sender's last poll that emptied it, before the start of this poll).
    pub(crate) handover: Vec<ArrayQueue<Handed>>,
    /// Per worker: the start (ns) of its last poll that emptied its queues, stored after it
    /// handed over what that poll took. Owners wait for the others' before sending a control
    /// frame back from the slow path (`worker::order`).
    pub(crate) watermarks: Vec<CachePadded<AtomicU64>>,
    pub(crate) neigh: Vec<ArrayQueue<NeighMsg>>,
    pub(crate) control: Vec<ArrayQueue<Arc<Vec<ServerChange>>>>,
    /// Worker ↔ slow path: FTP control frames and notices in, answers back, per worker.
    pub(crate) slow: Arc<SlowRings<Mbuf>>,
}

impl Mailboxes {
    /// Queues for `workers` workers, with slow-path rings of `slow_ring` entries.
    pub(crate) fn new(workers: usize, slow_ring: usize) -> Mailboxes {
        Mailboxes {
            slow: Arc::new(SlowRings::new(workers, slow_ring)),
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

    /// The earliest watermark of all workers, this one included: every frame that reached
    /// any queue before it has been taken, and handed over if it had to be.
    pub(crate) fn passed_by_all(&self) -> Instant {
        let ns = self
            .watermarks
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        Instant::from_nanos(ns)
    }

    /// Free every frame still queued (after all workers stopped, before the pool goes).
    pub(crate) fn drain(&self) {
        for q in &self.handover {
            while q.pop().is_some() {}
        }
        self.slow.drain();
    }
}
