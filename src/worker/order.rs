//! Output order per host pair while FTP control frames are out at the slow path.
//!
//! A control frame leaves the worker for the slow path (parse, rewrite) and comes back to the
//! same worker, which sends it. Meanwhile the worker goes on forwarding, so without care a data
//! frame, or a later control frame, between the same client and server would leave before it
//! (curl in active mode fails a transfer when the server's 226 overtakes the ACK that completes
//! the data connection). [`HostOrder`] keeps one FIFO of what is waiting:
//!
//! - every control frame given to the slow path leaves an `Out` mark for its host pair;
//! - while a host pair has anything in the FIFO, each later frame of that pair (control frames
//!   aside, which go out and leave their own mark) waits in the FIFO behind it;
//! - the slow path answers every control frame it was given, in the order it was given (a frame
//!   to send, or word that it dropped the frame), so the mark at the head is always the one
//!   that resolves next; after it, the frames up to the next mark are free to go, in order.
//!
//! Invariant: a host pair's frames leave in the order the worker handled them. Frames of a pair
//! with nothing out never enter the FIFO (one branch when it is empty, one hash lookup when
//! not), so other traffic pays nothing. Frames of unrelated pairs may wait behind a mark of
//! another pair that was handed over earlier: at most the slow path's latency, never a
//! reordering. The FIFO is bounded: a frame that finds it full is dropped and counted (TCP
//! resends), never sent out of order.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use hashbrown::HashMap;

/// The two ends of a connection as rvs sees them: its client and its real server.
pub type HostPair = (Ipv4Addr, Ipv4Addr);

#[derive(Debug)]
enum Entry<B> {
    /// A control frame of this pair is at the slow path.
    Out(HostPair),
    /// A frame of this pair, routed towards `to` once it may go.
    Held {
        pair: HostPair,
        to: Ipv4Addr,
        buf: B,
    },
}

impl<B> Entry<B> {
    fn pair(&self) -> HostPair {
        match self {
            Entry::Out(p) | Entry::Held { pair: p, .. } => *p,
        }
    }
}

/// One worker's hold queue. Pure: no time, no I/O.
#[derive(Debug)]
pub struct HostOrder<B> {
    fifo: VecDeque<Entry<B>>,
    /// Entries of each pair in `fifo`.
    waiting: HashMap<HostPair, u32>,
    capacity: usize,
}

impl<B> HostOrder<B> {
    /// A queue that holds at most `capacity` entries (marks and frames).
    pub fn new(capacity: usize) -> HostOrder<B> {
        HostOrder {
            fifo: VecDeque::new(),
            waiting: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Control frames at the slow path plus frames waiting behind them.
    #[inline]
    pub fn len(&self) -> usize {
        self.fifo.len()
    }

    /// Nothing out, nothing waiting: every frame may go at once.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty()
    }

    /// No room for another entry.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.fifo.len() >= self.capacity
    }

    /// True when a frame of `pair` must wait (something of the pair is ahead of it).
    #[inline]
    pub fn must_wait(&self, pair: HostPair) -> bool {
        !self.fifo.is_empty() && self.waiting.contains_key(&pair)
    }

    /// Room for one more entry; counts it for its pair.
    fn admit(&mut self, pair: HostPair) -> bool {
        if self.fifo.len() >= self.capacity {
            return false;
        }
        *self.waiting.entry(pair).or_insert(0) += 1;
        true
    }

    fn pop(&mut self) -> Option<Entry<B>> {
        let e = self.fifo.pop_front()?;
        let pair = e.pair();
        if let Some(n) = self.waiting.get_mut(&pair) {
            *n -= 1;
            if *n == 0 {
                self.waiting.remove(&pair);
            }
        }
        Some(e)
    }

    /// A control frame of `pair` went to the slow path. False when the queue is full: the
    /// caller must not hand the frame over (it drops it instead).
    pub fn sent_out(&mut self, pair: HostPair) -> bool {
        if !self.admit(pair) {
            return false;
        }
        self.fifo.push_back(Entry::Out(pair));
        true
    }

    /// Keep `buf` (of `pair`, bound for `to`) until what is ahead of it is done. `Err` gives
    /// it back when the queue is full.
    pub fn hold(&mut self, pair: HostPair, to: Ipv4Addr, buf: B) -> Result<(), B> {
        if !self.admit(pair) {
            return Err(buf);
        }
        self.fifo.push_back(Entry::Held { pair, to, buf });
        Ok(())
    }

    /// The slow path answered for the oldest control frame: its mark goes. False when the head
    /// is not a mark (the slow path answered for a frame it was not given: a bug, counted by
    /// the caller, and nothing is released early).
    pub fn returned(&mut self) -> bool {
        match self.fifo.front() {
            Some(Entry::Out(_)) => {
                self.pop();
                true
            }
            _ => false,
        }
    }

    /// The next frame now free to go (bound for the address given), in order; `None` when the
    /// head is a mark or the queue is empty.
    pub fn next_free(&mut self) -> Option<(Ipv4Addr, B)> {
        match self.fifo.front() {
            Some(Entry::Held { .. }) => match self.pop() {
                Some(Entry::Held { to, buf, .. }) => Some((to, buf)),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(203, 0, 113, last)
    }

    #[test]
    fn frames_wait_behind_their_pairs_control_frame_only() {
        let (a, b) = ((ip(2), ip(11)), (ip(3), ip(12)));
        let mut q: HostOrder<&str> = HostOrder::new(16);
        assert!(q.is_empty() && !q.must_wait(a));
        assert!(q.sent_out(a));
        assert!(
            q.must_wait(a) && !q.must_wait(b),
            "another pair goes at once"
        );
        q.hold(a, ip(2), "data-1").unwrap();
        assert!(q.sent_out(a));
        q.hold(a, ip(2), "data-2").unwrap();
        assert_eq!(q.next_free(), None, "the head is a mark");
        assert!(q.returned());
        assert_eq!(q.next_free(), Some((ip(2), "data-1")));
        assert_eq!(
            q.next_free(),
            None,
            "data-2 waits for the second control frame"
        );
        assert!(q.must_wait(a));
        assert!(q.returned());
        assert_eq!(q.next_free(), Some((ip(2), "data-2")));
        assert!(q.is_empty() && !q.must_wait(a));
        assert!(!q.returned(), "nothing was out");
    }

    #[test]
    fn a_full_queue_refuses_rather_than_reorders() {
        let p = (ip(2), ip(11));
        let mut q: HostOrder<u32> = HostOrder::new(3);
        assert!(q.sent_out(p));
        q.hold(p, ip(2), 1).unwrap();
        q.hold(p, ip(2), 2).unwrap();
        assert_eq!(q.hold(p, ip(2), 3), Err(3));
        assert!(!q.sent_out(p));
        assert_eq!(q.len(), 3);
        assert!(q.returned());
        assert_eq!(q.next_free().map(|f| f.1), Some(1));
        assert_eq!(q.next_free().map(|f| f.1), Some(2));
        assert!(q.is_empty());
    }
}
