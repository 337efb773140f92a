//! Output order per host pair while FTP control frames are out at the slow path.
//!
//! A control frame leaves the worker for the slow path (parse, rewrite) and comes back to the
//! same worker, which sends it. Meanwhile the worker goes on forwarding, and frames of the same
//! client and server also reach it from other workers' queues (handed over), so without care a
//! data frame could leave before a control frame taken in earlier, or a control frame before a
//! data frame taken in earlier (curl in active mode fails a transfer when the server's 226
//! overtakes the ACK that completes the data connection). A worker knows when a frame reached
//! its queue only within a window: after the start of its last poll that emptied its queues,
//! before the start of the poll that took it (a handed-over frame carries its sender's
//! window). Windows of frames on different queues can overlap; then which came first is not
//! known, and rvs chooses the side FTP needs: a control frame counts as late as it may have
//! come (its window's end) and any other frame as early (its window's start). So a reply such
//! as a 226 never overtakes a data-connection frame that may have come before it, while that
//! frame's worker was not polling; the other error (a data frame before a 150 that came just
//! before it) harms no FTP client, which reads each connection on its own. Below, an entry's
//! *time* is that choice. [`HostOrder`] keeps one list of what waits, with these rules:
//! - every control frame given to the slow path leaves an `Out` mark for its host pair, with
//!   its time;
//! - marks and later frames of a pair with entries in the list are placed among that pair's
//!   entries by time: after those with an earlier or equal time, before the others (a
//!   handed-over control frame can be older than what this worker took since). A frame that
//!   belongs before every entry of its pair goes at once;
//! - the slow path answers every control frame it was given, in the order it was given (the
//!   frame to send, or word that it dropped it); an answer fills the mark of that frame
//!   (marks carry the order they were sent in);
//! - the head of the list leaves when it is a frame, or an answered mark whose time every
//!   worker, this one included, has passed (its *watermark*: the start of its last poll that
//!   emptied its queues, published after it handed over what that poll took). So a control
//!   frame leaves only after every frame that reached any queue before it (another worker's,
//!   or a backlog on this worker's own) has been taken, has reached this worker, and has been
//!   sent or placed before it.
//!
//! Invariant: a host pair's frames leave in the order of their times (control frames
//! included), with ties in the order this worker handled them; so a frame that may have
//! reached any queue before a control frame reached its own leaves before it. Frames of a pair with nothing in
//! the list never enter it (one branch when the list is empty, one hash lookup when not), so
//! other traffic pays nothing. Frames of unrelated pairs may wait behind a mark of another pair
//! placed earlier: at most the slow path's latency and one poll of the slowest worker, never a
//! reordering. The list is bounded: a frame that finds it full is dropped and counted (TCP
//! resends), never sent out of order.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use hashbrown::HashMap;

use crate::time::Instant;

/// How long an answered control frame waits for the workers' watermarks before it leaves
/// anyway, counted from its answer: 100 ms. A watermark that stops (a worker that never empties
/// its queues under overload, or a pinned core that never yields) would otherwise hold control
/// frames for good. Counted from the answer, not from the frame's arrival: a slow path that was
/// itself kept off the CPU for a while must not turn every waiting answer into a forced one.
/// Long enough for a worker the kernel preempted (a shared machine) to run again, short of
/// TCP's 200 ms minimum retransmission timeout.
pub const ANSWERED_WAIT_MAX_NS: u64 = 100_000_000;

/// The two ends of a connection as rvs sees them: its client and its real server.
pub type HostPair = (Ipv4Addr, Ipv4Addr);

#[derive(Debug)]
enum Entry<B> {
    /// A control frame of this pair, at time `time`, is at the slow path (`answer` None) or
    /// back since `answered_at`: `Some(Some((port, frame)))` to send, `Some(None)` dropped.
    Out {
        pair: HostPair,
        time: Instant,
        /// Its place in the order the slow path answers (the order it was given frames).
        seq: u64,
        answer: Option<Option<(u16, B)>>,
        answered_at: Instant,
    },
    /// A frame of this pair, routed towards `to` once it may go.
    Held {
        pair: HostPair,
        time: Instant,
        to: Ipv4Addr,
        buf: B,
    },
}

impl<B> Entry<B> {
    fn pair(&self) -> HostPair {
        match self {
            Entry::Out { pair, .. } | Entry::Held { pair, .. } => *pair,
        }
    }

    fn time(&self) -> Instant {
        match self {
            Entry::Out { time, .. } | Entry::Held { time, .. } => *time,
        }
    }
}

/// What leaves the list, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Release<B> {
    /// A control frame the slow path sent back: out of `port` as it is.
    Send(u16, B),
    /// A frame that waited: route it towards the address.
    Route(Ipv4Addr, B),
    /// A control frame the slow path dropped: nothing to send.
    Dropped,
}

/// What became of a frame offered to [`HostOrder::place`].
#[derive(Debug, PartialEq, Eq)]
pub enum Placed<B> {
    /// Nothing of its pair comes before it: send it now.
    Go(B),
    /// It waits in the list.
    Held,
    /// The list is full: drop it.
    Full(B),
}

/// One worker's hold list. Pure: time comes in as arguments, no I/O.
#[derive(Debug)]
pub struct HostOrder<B> {
    list: VecDeque<Entry<B>>,
    /// Entries of each pair in `list`.
    waiting: HashMap<HostPair, u32>,
    /// Sequence number of the next mark, and of the next answer.
    next_seq: u64,
    next_answer: u64,
    capacity: usize,
    /// Control frames that left without the watermarks, after [`ANSWERED_WAIT_MAX_NS`].
    forced: u64,
}

impl<B> HostOrder<B> {
    /// A list that holds at most `capacity` entries (marks and frames).
    pub fn new(capacity: usize) -> HostOrder<B> {
        HostOrder {
            list: VecDeque::new(),
            waiting: HashMap::new(),
            next_seq: 0,
            next_answer: 0,
            capacity: capacity.max(1),
            forced: 0,
        }
    }

    /// Control frames out or waiting to leave, plus frames waiting behind them.
    #[inline]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Nothing out, nothing waiting: every frame may go at once.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Control frames that have left without every worker's watermark so far (each after
    /// waiting [`ANSWERED_WAIT_MAX_NS`]): the ordering was best effort for them.
    #[inline]
    pub fn forced(&self) -> u64 {
        self.forced
    }

    /// No room for another entry.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.list.len() >= self.capacity
    }

    fn count(&mut self, pair: HostPair) {
        *self.waiting.entry(pair).or_insert(0) += 1;
    }

    fn uncount(&mut self, pair: HostPair) {
        if let Some(n) = self.waiting.get_mut(&pair) {
            *n -= 1;
            if *n == 0 {
                self.waiting.remove(&pair);
            }
        }
    }

    /// Where an entry of `pair` at time `time` belongs: after the last entry of its pair
    /// with a time at or before its (`Ok`), or, when there is none, before the first entry of its
    /// pair (`Err`, `None` when the pair has no entry). The pair's entries stay sorted by
    /// time, ties in arrival order; the list as a whole need not be (a handed-over frame
    /// can be older than what this worker took since).
    fn slot(&self, pair: HostPair, time: Instant) -> Result<usize, Option<usize>> {
        if !self.waiting.contains_key(&pair) {
            return Err(None);
        }
        match self
            .list
            .iter()
            .rposition(|e| e.pair() == pair && e.time() <= time)
        {
            Some(i) => Ok(i + 1),
            None => Err(self.list.iter().position(|e| e.pair() == pair)),
        }
    }

    /// A control frame of `pair`, at time `time`, went to the slow path. False when the list
    /// is full: the caller must not hand the frame over (it drops it instead).
    pub fn sent_out(&mut self, pair: HostPair, time: Instant) -> bool {
        if self.is_full() {
            return false;
        }
        let at = match self.slot(pair, time) {
            Ok(i) | Err(Some(i)) => i,
            Err(None) => self.list.len(),
        };
        self.count(pair);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.list.insert(
            at,
            Entry::Out {
                pair,
                time,
                seq,
                answer: None,
                answered_at: Instant::ZERO,
            },
        );
        true
    }

    /// Offer a frame of `pair` at time `time`, bound for `to`: it goes now when nothing of
    /// its pair has a time at or before its, else it waits after the last such entry.
    pub fn place(&mut self, pair: HostPair, time: Instant, to: Ipv4Addr, buf: B) -> Placed<B> {
        if self.list.is_empty() {
            return Placed::Go(buf);
        }
        let Ok(at) = self.slot(pair, time) else {
            return Placed::Go(buf);
        };
        if self.is_full() {
            return Placed::Full(buf);
        }
        self.count(pair);
        self.list.insert(
            at,
            Entry::Held {
                pair,
                time,
                to,
                buf,
            },
        );
        Placed::Held
    }

    /// The slow path's answer, at `now`, for the oldest unanswered control frame: the frame to
    /// send (`Some((port, frame))`) or `None` when it dropped it. False when no mark waited for
    /// an answer (a protocol error the caller counts; the answer is given back by dropping it).
    pub fn answered(&mut self, frame: Option<(u16, B)>, now: Instant) -> bool {
        let want = self.next_answer;
        let mark = self
            .list
            .iter_mut()
            .find(|e| matches!(e, Entry::Out { seq, .. } if *seq == want));
        match mark {
            Some(Entry::Out {
                answer,
                answered_at,
                ..
            }) => {
                *answer = Some(frame);
                *answered_at = now;
                self.next_answer += 1;
                true
            }
            _ => false,
        }
    }

    /// The next entry free to leave at `now`, in order: a waiting frame at the head, or an
    /// answered control frame at the head that `watermark` (every worker's) has passed, or
    /// that has waited [`ANSWERED_WAIT_MAX_NS`] since its answer (counted in [`Self::forced`]).
    pub fn next_free(&mut self, watermark: Instant, now: Instant) -> Option<Release<B>> {
        let ready = match self.list.front()? {
            Entry::Held { .. } => true,
            Entry::Out {
                answer,
                time,
                answered_at,
                ..
            } => {
                if answer.is_none() {
                    false
                } else if *time <= watermark {
                    true
                } else if now.as_nanos() >= answered_at.as_nanos() + ANSWERED_WAIT_MAX_NS {
                    self.forced += 1;
                    true
                } else {
                    false
                }
            }
        };
        if !ready {
            return None;
        }
        let e = self.list.pop_front()?;
        self.uncount(e.pair());
        Some(match e {
            Entry::Held { to, buf, .. } => Release::Route(to, buf),
            Entry::Out { answer, .. } => match answer.flatten() {
                Some((port, buf)) => Release::Send(port, buf),
                None => Release::Dropped,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(203, 0, 113, last)
    }

    fn t(us: u64) -> Instant {
        Instant::from_nanos(us * 1000)
    }

    const ALL: Instant = Instant::MAX;

    #[test]
    fn frames_wait_behind_their_pairs_control_frame_only() {
        let (a, b) = ((ip(2), ip(11)), (ip(3), ip(12)));
        let mut q: HostOrder<&str> = HostOrder::new(16);
        assert!(q.is_empty());
        assert_eq!(q.place(a, t(1), ip(2), "x"), Placed::Go("x"));
        assert!(q.sent_out(a, t(10)));
        assert_eq!(
            q.place(b, t(11), ip(3), "b"),
            Placed::Go("b"),
            "another pair"
        );
        assert_eq!(
            q.place(a, t(5), ip(2), "early"),
            Placed::Go("early"),
            "time before"
        );
        assert_eq!(q.place(a, t(11), ip(2), "data-1"), Placed::Held);
        assert!(q.sent_out(a, t(12)));
        assert_eq!(q.place(a, t(12), ip(2), "data-2"), Placed::Held);
        assert_eq!(q.next_free(ALL, t(0)), None, "the head is not answered");
        assert!(q.answered(Some((1, "ctl-1")), t(0)));
        assert_eq!(
            q.next_free(t(9), t(9)),
            None,
            "another worker has not passed it yet"
        );
        assert_eq!(q.next_free(ALL, t(0)), Some(Release::Send(1, "ctl-1")));
        assert_eq!(
            q.next_free(ALL, t(0)),
            Some(Release::Route(ip(2), "data-1"))
        );
        assert_eq!(q.next_free(ALL, t(0)), None, "data-2 waits for the second");
        // A frame time between the two control frames, handed over late, goes before the
        // second.
        assert_eq!(q.place(a, t(11), ip(2), "late"), Placed::Go("late"));
        assert!(q.answered(None, t(0)));
        assert_eq!(q.next_free(ALL, t(0)), Some(Release::Dropped));
        assert_eq!(
            q.next_free(ALL, t(0)),
            Some(Release::Route(ip(2), "data-2"))
        );
        assert!(q.is_empty());
        assert!(!q.answered(None, t(0)), "nothing was out");
    }

    #[test]
    fn a_late_frame_is_placed_between_control_frames_by_its_time() {
        let p = (ip(2), ip(11));
        let mut q: HostOrder<&str> = HostOrder::new(16);
        assert!(q.sent_out(p, t(10)));
        assert!(q.sent_out(p, t(20)));
        assert_eq!(q.place(p, t(15), ip(2), "mid"), Placed::Held);
        assert!(q.answered(Some((0, "c10")), t(0)));
        assert!(q.answered(Some((0, "c20")), t(0)));
        let order: Vec<_> = std::iter::from_fn(|| q.next_free(ALL, t(0))).collect();
        assert_eq!(
            order,
            vec![
                Release::Send(0, "c10"),
                Release::Route(ip(2), "mid"),
                Release::Send(0, "c20")
            ]
        );
    }

    /// A control frame handed over from another worker may be older than control frames this
    /// worker took since: it is placed (and leaves) before them, while answers still match
    /// the order the frames went to the slow path; a frame older than both goes after it.
    #[test]
    fn an_older_handed_over_control_frame_is_placed_before_younger_ones() {
        let p = (ip(2), ip(11));
        let mut q: HostOrder<&str> = HostOrder::new(16);
        assert!(q.sent_out(p, t(10)));
        assert!(
            q.sent_out(p, t(4)),
            "handed over: reached its queue after t=4"
        );
        assert_eq!(q.place(p, t(6), ip(2), "ack"), Placed::Held);
        assert!(
            q.answered(Some((0, "c10")), t(0)),
            "answers come in the order sent"
        );
        assert!(q.answered(Some((0, "c4")), t(0)));
        let order: Vec<_> = std::iter::from_fn(|| q.next_free(ALL, t(0))).collect();
        assert_eq!(
            order,
            vec![
                Release::Send(0, "c4"),
                Release::Route(ip(2), "ack"),
                Release::Send(0, "c10")
            ]
        );
        assert!(!q.answered(None, t(0)));
    }

    #[test]
    fn a_full_list_refuses_rather_than_reorders() {
        let p = (ip(2), ip(11));
        let mut q: HostOrder<u32> = HostOrder::new(3);
        assert!(q.sent_out(p, t(1)));
        assert_eq!(q.place(p, t(2), ip(2), 1), Placed::Held);
        assert_eq!(q.place(p, t(3), ip(2), 2), Placed::Held);
        assert_eq!(q.place(p, t(4), ip(2), 3), Placed::Full(3));
        assert!(!q.sent_out(p, t(5)));
        assert_eq!(q.len(), 3);
        assert!(q.answered(None, t(0)));
        assert_eq!(q.next_free(ALL, t(0)), Some(Release::Dropped));
        assert_eq!(q.next_free(ALL, t(0)), Some(Release::Route(ip(2), 1)));
        assert_eq!(q.next_free(ALL, t(0)), Some(Release::Route(ip(2), 2)));
        assert!(q.is_empty());
    }

    #[test]
    fn a_stalled_watermark_holds_an_answer_for_the_limit_counted_from_the_answer() {
        let a = (ip(2), ip(11));
        let max = ANSWERED_WAIT_MAX_NS / 1000;
        let mut q: HostOrder<&str> = HostOrder::new(8);
        assert!(q.sent_out(a, t(10)));
        assert_eq!(q.place(a, t(11), ip(2), "data"), Placed::Held);
        // The slow path answers late, long after the frame came (it was kept off the CPU):
        // the frame still waits for the watermarks, from its answer on.
        let answer = t(10 + 3 * max);
        assert!(q.answered(Some((0, "ctl")), answer));
        assert_eq!(q.next_free(t(9), answer), None);
        assert_eq!(q.next_free(t(9), t(10 + 3 * max + max - 1)), None);
        assert_eq!(q.forced(), 0);
        // The watermark never moves: it leaves at the limit, counted as forced.
        assert_eq!(
            q.next_free(t(9), t(10 + 4 * max)),
            Some(Release::Send(0, "ctl"))
        );
        assert_eq!(q.forced(), 1);
        assert_eq!(
            q.next_free(t(9), t(10 + 4 * max)),
            Some(Release::Route(ip(2), "data"))
        );
        // A watermark that passes in time forces nothing.
        assert!(q.sent_out(a, t(20 * max)));
        assert!(q.answered(None, t(20 * max)));
        assert_eq!(
            q.next_free(t(20 * max), t(20 * max)),
            Some(Release::Dropped)
        );
        assert_eq!(q.forced(), 1);
    }
}
