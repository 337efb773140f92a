//! Sequence adjustment: after the FTP helper rewrites an address inside a TCP payload and the
//! length changes, every later sequence number of that direction, and every acknowledgement and
//! SACK edge the peer sends back for it, must be shifted for the rest of the connection.
//!
//! A [`ChangeLog`] owns that bookkeeping for one direction. "Original space" is the sender's
//! numbering, "new space" what the receiver sees. Netfilter keeps a single
//! (correction_pos, offset_before, offset_after) per direction, so a retransmission from before
//! the second-to-last rewrite gets the wrong offset; we keep the last [`MAX_CHANGES`] rewrites,
//! each with its replacement text, so a retransmitted segment is mapped with the offset that was
//! in force at its position and gets the rewrite applied again if it carries the replaced bytes.
//!
//! Invariants: changes are recorded in stream order and never overlap, so their positions and
//! their images in new space are both increasing, and each change's cumulative offset is the
//! previous one's plus its delta. A segment is mapped only if each replaced range is wholly in it
//! or wholly outside it: a segment cut inside one cannot be rewritten consistently. That happens
//! only when the sender re-segments (a partial ack, a smaller MSS); the caller forwards the part
//! before the range ([`ChangeLog::clean_prefix_len`]) or drops the segment, and because an ack
//! inside a range clamps to its start, the next retransmission starts at the change and carries
//! it whole.
//! An acknowledgement or SACK edge that falls inside a rewritten range is rounded towards
//! claiming less, never more, than the receiver holds: acking less is always safe, the sender just
//! retransmits and we rewrite again. The log has a fixed size and never allocates.
//!
//! Limitations: when more than [`MAX_CHANGES`] rewrites are recorded the oldest is forgotten and
//! numbers before its end become [`SeqError::Stale`]. Comparisons are modulo 2^32, so every
//! number must lie within 2^31 of the recorded changes; an FTP control connection carries
//! kilobytes, far from that. A retransmission is assumed to carry the same bytes as the original
//! transmission (TCP guarantees it); the replaced bytes are not stored or checked. A pure
//! insertion (`old_len == 0`) travels with the byte it precedes, so it cannot be placed after the
//! last byte the sender has sent. A replaced range longer than the sender's MSS can never be
//! carried whole again, so its retransmission stalls; FTP arguments are a few dozen bytes.

use crate::wire::SeqNumber;

/// How many changes a log remembers; older ones are forgotten and move the floor.
pub const MAX_CHANGES: usize = 16;

/// The longest replacement text a change stores (a 227 reply's "h1,h2,h3,h4,p1,p2" is at most 23
/// bytes, an EPRT argument `|1|255.255.255.255|65535|` 25).
pub const MAX_NEW: usize = 48;

/// Why a number or a segment could not be adjusted. Small and `Copy`: the hot path counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqError {
    /// The segment starts or ends strictly inside a replaced range.
    Straddles,
    /// The number is before the oldest change still remembered (the floor).
    Stale,
    /// The replacement is longer than [`MAX_NEW`] (or the replaced range longer than 65535
    /// bytes), or the rewritten payload would not fit the caller's buffer capacity.
    TooLong,
    /// A new change overlaps or precedes one already recorded.
    Overlap,
}

/// One rewrite: original bytes `[pos, pos + old_len)` became `new_bytes()`.
///
/// A pure insertion (`old_len == 0`) is kept as a replacement of the byte at `pos` by the new
/// text followed by that same byte, so it belongs to whichever segment carries that byte and its
/// image in new space cannot be acknowledged without that byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Original sequence number of the first replaced byte.
    pub pos: SeqNumber,
    /// How many original bytes were replaced.
    pub old_len: u16,
    new: [u8; MAX_NEW],
    new_len: u8,
    /// Cumulative offset (new minus original) in force just before `pos`.
    before: i32,
}

impl Change {
    const EMPTY: Change = Change {
        pos: SeqNumber(0),
        old_len: 0,
        new: [0; MAX_NEW],
        new_len: 0,
        before: 0,
    };

    /// The replacement text.
    pub fn new_bytes(&self) -> &[u8] {
        self.new.get(..usize::from(self.new_len)).unwrap_or(&[])
    }

    /// New length minus old length.
    pub fn delta(&self) -> i32 {
        i32::from(self.new_len) - i32::from(self.old_len)
    }

    /// Cumulative offset in force before this change.
    pub fn offset_before(&self) -> i32 {
        self.before
    }

    /// Cumulative offset in force after this change.
    pub fn offset_after(&self) -> i32 {
        self.before.wrapping_add(self.delta())
    }

    fn is_insertion(&self) -> bool {
        self.old_len == 0
    }

    /// Length of the original range this change owns (an insertion owns the byte it precedes).
    fn span_old(&self) -> i32 {
        i32::from(self.old_len.max(1))
    }

    /// Length of the change's image in new space.
    fn span_new(&self) -> i32 {
        i32::from(self.new_len) + i32::from(self.is_insertion())
    }

    /// Original sequence number just past the range this change owns.
    fn end(&self) -> SeqNumber {
        self.pos + self.span_old()
    }

    fn new_pos(&self) -> SeqNumber {
        self.pos + self.before
    }

    fn new_end(&self) -> SeqNumber {
        self.new_pos() + self.span_new()
    }
}

/// Where the log starts after changes were forgotten: numbers before `orig` cannot be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Floor {
    orig: SeqNumber,
    /// Cumulative offset in force at `orig`.
    offset: i32,
}

impl Floor {
    fn new_space(&self) -> SeqNumber {
        self.orig + self.offset
    }
}

/// Which way a number inside a rewritten range is rounded when mapped back to original space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inside {
    /// To the change's first byte: for acknowledgements and SACK right edges.
    Start,
    /// Just past the change: for SACK left edges.
    End,
}

/// The rewrites made in one direction of a connection, oldest first.
#[derive(Debug, Clone)]
pub struct ChangeLog {
    changes: [Change; MAX_CHANGES],
    len: usize,
    floor: Option<Floor>,
    total: i32,
}

impl Default for ChangeLog {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeLog {
    /// An empty log: every number maps to itself.
    pub fn new() -> Self {
        ChangeLog {
            changes: [Change::EMPTY; MAX_CHANGES],
            len: 0,
            floor: None,
            total: 0,
        }
    }

    /// True when no change was ever recorded, so callers can skip all adjustment.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The changes remembered, oldest first.
    pub fn changes(&self) -> &[Change] {
        self.changes.get(..self.len).unwrap_or(&[])
    }

    /// The original sequence number before which nothing can be mapped, once a change has been
    /// forgotten.
    pub fn floor(&self) -> Option<SeqNumber> {
        self.floor.map(|f| f.orig)
    }

    /// Sum of the deltas of every change ever recorded, forgotten ones included.
    pub fn total_delta(&self) -> i32 {
        self.total
    }

    /// Record that original bytes `[pos, pos + old_len)` are replaced by `new`.
    ///
    /// Changes must come in stream order: `pos` at or after the end of the previous change (for
    /// an insertion, after the byte it precedes), else [`SeqError::Overlap`]. Recording nothing
    /// (`old_len == 0` and `new` empty) is a no-op. When [`MAX_CHANGES`] are held, the oldest is
    /// forgotten and the floor moves to its end. On error the log is unchanged.
    ///
    /// Record before the first byte at or after `pos` is forwarded; the first transmission can
    /// then be produced with [`ChangeLog::map_seq`] and [`ChangeLog::rewrite_payload`] like any
    /// retransmission.
    pub fn record(&mut self, pos: SeqNumber, old_len: usize, new: &[u8]) -> Result<(), SeqError> {
        let old_len = u16::try_from(old_len).map_err(|_| SeqError::TooLong)?;
        let new_len = u8::try_from(new.len()).map_err(|_| SeqError::TooLong)?;
        if usize::from(new_len) > MAX_NEW {
            return Err(SeqError::TooLong);
        }
        if old_len == 0 && new_len == 0 {
            return Ok(());
        }
        if let Some(last) = self.changes().last() {
            if pos < last.end() {
                return Err(SeqError::Overlap);
            }
        }
        let mut change = Change {
            pos,
            old_len,
            new: [0; MAX_NEW],
            new_len,
            before: self.total,
        };
        if let Some(dst) = change.new.get_mut(..new.len()) {
            dst.copy_from_slice(new);
        }
        if self.len == MAX_CHANGES {
            // Forget the oldest: a segment before its end could need it, so such numbers are
            // refused as Stale rather than mapped with a guessed offset.
            if let Some(oldest) = self.changes.first() {
                self.floor = Some(Floor {
                    orig: oldest.end(),
                    offset: oldest.offset_after(),
                });
            }
            self.changes.copy_within(1.., 0);
            self.len -= 1;
        }
        if let Some(slot) = self.changes.get_mut(self.len) {
            *slot = change;
            self.len += 1;
        }
        self.total = self.total.wrapping_add(change.delta());
        Ok(())
    }

    /// The new-space start of a segment that starts at original `seq` and carries `len` payload
    /// bytes. SYN and FIN occupy sequence space too; pass only the payload length and let the
    /// caller account for the flags.
    ///
    /// Errors: [`SeqError::Stale`] when `seq` is before the floor; [`SeqError::Straddles`] when
    /// `[seq, seq + len)` starts or ends strictly inside a replaced range; [`SeqError::TooLong`]
    /// when `len` is 2^31 or more.
    pub fn map_seq(&self, seq: SeqNumber, len: usize) -> Result<SeqNumber, SeqError> {
        let len = i32::try_from(len).map_err(|_| SeqError::TooLong)?;
        let mut offset = self.check_floor(seq)?;
        let end = seq + len;
        for c in self.changes() {
            let strictly_inside = |x: SeqNumber| x > c.pos && x < c.end();
            if strictly_inside(seq) || strictly_inside(end) {
                return Err(SeqError::Straddles);
            }
            if seq >= c.end() {
                offset = c.offset_after();
            }
        }
        Ok(seq + offset)
    }

    /// The longest prefix of the segment `[seq, seq + len)` that does not end strictly inside a
    /// replaced range: `len` when the segment is clean, 0 when it starts inside a range.
    ///
    /// For a segment that [`ChangeLog::map_seq`] refuses as `Straddles` because it *ends* inside
    /// a range. A sender that re-segments after a smaller MSS cuts at the same place on every
    /// retransmission, so dropping such a segment would stall the connection; forwarding this
    /// prefix instead (without FIN) lets the peer ack up to the change, and the next
    /// retransmission starts at the change and carries it whole. [`SeqError::Stale`] when `seq`
    /// is before the floor, [`SeqError::TooLong`] when `len` is 2^31 or more.
    pub fn clean_prefix_len(&self, seq: SeqNumber, len: usize) -> Result<usize, SeqError> {
        let len_i = i32::try_from(len).map_err(|_| SeqError::TooLong)?;
        self.check_floor(seq)?;
        let end = seq + len_i;
        for c in self.changes() {
            if seq > c.pos && seq < c.end() {
                return Ok(0);
            }
            if end > c.pos && end < c.end() {
                // Ranges do not overlap, so this is the only one the end can fall into.
                return Ok(usize::try_from(c.pos - seq).unwrap_or(0));
            }
        }
        Ok(len)
    }

    /// Rewrite a segment's payload: `payload` holds the original bytes `[seq, seq + len)`. Every
    /// recorded change lying wholly inside is applied; the result goes into `out` (cleared first)
    /// and its length is returned.
    ///
    /// `out` is never grown, so the hot path does not allocate: a result longer than
    /// `out.capacity()` is [`SeqError::TooLong`]. Other errors: [`SeqError::Stale`] when `seq` is
    /// before the floor (a forgotten change might lie inside), [`SeqError::Straddles`] when a
    /// change is only partly inside. On error `out` is left empty.
    pub fn rewrite_payload(
        &self,
        seq: SeqNumber,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, SeqError> {
        out.clear();
        let len = i32::try_from(payload.len()).map_err(|_| SeqError::TooLong)?;
        self.check_floor(seq)?;
        let end = seq + len;

        // First pass: validate and size, so a failure leaves `out` empty and nothing reallocates.
        let mut out_len = payload.len();
        for c in self.changes() {
            if c.end() <= seq || c.pos >= end {
                continue;
            }
            if c.pos < seq || c.end() > end {
                return Err(SeqError::Straddles);
            }
            out_len = out_len.saturating_add(usize::from(c.new_len));
            out_len = out_len.saturating_sub(usize::from(c.old_len));
        }
        if out_len > out.capacity() {
            return Err(SeqError::TooLong);
        }

        let mut cursor = 0usize;
        for c in self.changes() {
            if c.end() <= seq || c.pos >= end {
                continue;
            }
            // In range and non-negative by the first pass.
            let at = usize::try_from(c.pos - seq).map_err(|_| SeqError::Straddles)?;
            let Some(kept) = payload.get(cursor..at) else {
                out.clear();
                return Err(SeqError::Straddles);
            };
            out.extend_from_slice(kept);
            out.extend_from_slice(c.new_bytes());
            if c.is_insertion() {
                if let Some(b) = payload.get(at) {
                    out.push(*b);
                }
            }
            cursor = at.saturating_add(usize::from(c.old_len.max(1)));
        }
        out.extend_from_slice(payload.get(cursor..).unwrap_or(&[]));
        Ok(out.len())
    }

    /// Map an acknowledgement number the peer sent (new space) back to original space of this
    /// direction. A number strictly inside a rewritten range clamps to the start of that change:
    /// the peer has not received all of it, and acking less only makes the sender retransmit.
    /// [`SeqError::Stale`] when before the floor.
    ///
    /// At the end of a deletion (replacement with nothing) the number maps past the deleted
    /// bytes: the receiver will never see them, and acking only up to their start would make the
    /// sender retransmit them forever.
    pub fn unmap_ack(&self, ack: SeqNumber) -> Result<SeqNumber, SeqError> {
        self.unmap(ack, Inside::Start)
    }

    /// Map a SACK block `[left, right)` from new space back to original space. A right edge
    /// inside a rewritten range clamps to the change's start and a left edge to its end, so the
    /// block never claims bytes the receiver does not hold. `Ok(None)` when nothing is left (or
    /// the block was empty or inverted).
    ///
    /// A right edge before the floor is [`SeqError::Stale`]; a left edge before the floor is
    /// raised to it, which only makes the block claim less.
    pub fn unmap_sack(
        &self,
        left: SeqNumber,
        right: SeqNumber,
    ) -> Result<Option<(SeqNumber, SeqNumber)>, SeqError> {
        if right <= left {
            return Ok(None);
        }
        let r = self.unmap(right, Inside::Start)?;
        let l = match self.unmap(left, Inside::End) {
            Ok(l) => l,
            Err(SeqError::Stale) => self.floor.map_or(left, |f| f.orig),
            Err(e) => return Err(e),
        };
        Ok((l < r).then_some((l, r)))
    }

    /// The offset in force at the floor, or `Stale` when `seq` is before it.
    fn check_floor(&self, seq: SeqNumber) -> Result<i32, SeqError> {
        match self.floor {
            Some(f) if seq < f.orig => Err(SeqError::Stale),
            Some(f) => Ok(f.offset),
            None => Ok(0),
        }
    }

    fn unmap(&self, x: SeqNumber, inside: Inside) -> Result<SeqNumber, SeqError> {
        let mut offset = match self.floor {
            Some(f) if x < f.new_space() => return Err(SeqError::Stale),
            Some(f) => f.offset,
            None => 0,
        };
        for c in self.changes() {
            // `>=` first: for a deletion the image is empty and its boundary maps past it.
            if x >= c.new_end() {
                offset = c.offset_after();
                continue;
            }
            if x > c.new_pos() {
                return Ok(match inside {
                    Inside::Start => c.pos,
                    Inside::End => c.end(),
                });
            }
            break;
        }
        Ok(x - offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn s(x: u32) -> SeqNumber {
        SeqNumber(x)
    }

    fn buf() -> Vec<u8> {
        Vec::with_capacity(2048)
    }

    const PASV_OLD: &[u8] = b"227 Entering Passive Mode (198,51,100,11,39,16).\r\n";
    const PASV_NEW: &[u8] = b"227 Entering Passive Mode (203,0,113,1,39,16).\r\n";

    /// The 227 reply at seq 1000: "198,51,100,11" (13 bytes at offset 27) becomes
    /// "203,0,113,1" (11 bytes): a shrink by 2.
    fn pasv_log() -> ChangeLog {
        let mut log = ChangeLog::new();
        log.record(s(1027), 13, b"203,0,113,1").unwrap();
        log
    }

    #[test]
    fn empty_log_is_identity() {
        let log = ChangeLog::default();
        assert!(log.is_empty());
        assert_eq!(log.total_delta(), 0);
        assert_eq!(log.map_seq(s(5), 100).unwrap(), s(5));
        assert_eq!(log.unmap_ack(s(u32::MAX)).unwrap(), s(u32::MAX));
        let mut out = buf();
        assert_eq!(log.rewrite_payload(s(9), b"abc", &mut out).unwrap(), 3);
        assert_eq!(out, b"abc");
        assert_eq!(log.floor(), None);
    }

    #[test]
    fn real_pasv_reply_is_rewritten_and_shifts_later_numbers() {
        let log = pasv_log();
        assert!(!log.is_empty());
        assert_eq!(log.total_delta(), -2);
        let mut out = buf();
        let n = log.rewrite_payload(s(1000), PASV_OLD, &mut out).unwrap();
        assert_eq!(&out[..n], PASV_NEW);
        assert_eq!(log.map_seq(s(1000), PASV_OLD.len()).unwrap(), s(1000));
        let next = 1000 + PASV_OLD.len() as u32;
        assert_eq!(log.map_seq(s(next), 10).unwrap(), s(next - 2));
        // The peer acks the whole reply in new space; the sender sees its own end.
        assert_eq!(log.unmap_ack(s(next - 2)).unwrap(), s(next));
    }

    #[test]
    fn growth_by_two() {
        let mut log = ChangeLog::new();
        // "1,2,3,4" (7 bytes at 100) becomes "10,20,3,4" (9 bytes).
        log.record(s(100), 7, b"10,20,3,4").unwrap();
        assert_eq!(log.total_delta(), 2);
        assert_eq!(log.changes()[0].delta(), 2);
        assert_eq!(log.changes()[0].new_bytes(), b"10,20,3,4");
        // Segment before the change, ending right at it.
        assert_eq!(log.map_seq(s(50), 50).unwrap(), s(50));
        // Segment starting right at the change.
        assert_eq!(log.map_seq(s(100), 7).unwrap(), s(100));
        // Segment after it.
        assert_eq!(log.map_seq(s(107), 20).unwrap(), s(109));
        assert_eq!(log.map_seq(s(500), 0).unwrap(), s(502));

        let mut out = buf();
        let payload = b"xx(1,2,3,4)yy";
        // payload[3..10] is the change at 100, so the segment starts at 97.
        let n = log.rewrite_payload(s(97), payload, &mut out).unwrap();
        assert_eq!(n, payload.len() + 2);
        assert_eq!(out, b"xx(10,20,3,4)yy");
        // A segment before or after the change is copied as is.
        log.rewrite_payload(s(80), b"before", &mut out).unwrap();
        assert_eq!(out, b"before");
        log.rewrite_payload(s(107), b"after", &mut out).unwrap();
        assert_eq!(out, b"after");
    }

    #[test]
    fn shrink_by_three() {
        let mut log = ChangeLog::new();
        log.record(s(200), 5, b"ab").unwrap();
        assert_eq!(log.total_delta(), -3);
        assert_eq!(log.map_seq(s(190), 10).unwrap(), s(190));
        assert_eq!(log.map_seq(s(205), 10).unwrap(), s(202));
        let mut out = buf();
        let n = log.rewrite_payload(s(198), b"..VWXYZ..", &mut out).unwrap();
        assert_eq!(&out[..n], b"..ab..");
        // Segment that is exactly the change.
        log.rewrite_payload(s(200), b"VWXYZ", &mut out).unwrap();
        assert_eq!(out, b"ab");
    }

    #[test]
    fn straddling_segments_are_refused() {
        let log = pasv_log(); // replaces [1027, 1040)
        let mut out = buf();
        // Starts inside.
        assert_eq!(log.map_seq(s(1030), 20), Err(SeqError::Straddles));
        assert_eq!(
            log.rewrite_payload(s(1030), &[b'x'; 20], &mut out),
            Err(SeqError::Straddles)
        );
        assert!(out.is_empty());
        // Ends inside.
        assert_eq!(log.map_seq(s(1000), 30), Err(SeqError::Straddles));
        assert_eq!(
            log.rewrite_payload(s(1000), &PASV_OLD[..30], &mut out),
            Err(SeqError::Straddles)
        );
        // A zero-length segment (pure ACK) numbered inside the range.
        assert_eq!(log.map_seq(s(1035), 0), Err(SeqError::Straddles));
        // Segment strictly inside the range.
        assert_eq!(log.map_seq(s(1028), 3), Err(SeqError::Straddles));
        assert_eq!(
            log.rewrite_payload(s(1028), b"abc", &mut out),
            Err(SeqError::Straddles)
        );
        // What can still be forwarded of each: a prefix up to the change, or nothing.
        assert_eq!(log.clean_prefix_len(s(1000), 30), Ok(27));
        assert_eq!(log.clean_prefix_len(s(1030), 20), Ok(0));
        assert_eq!(log.clean_prefix_len(s(1000), 27), Ok(27));
        assert_eq!(log.clean_prefix_len(s(1000), 60), Ok(60));
        // The exact boundaries are fine.
        assert!(log.map_seq(s(1027), 13).is_ok());
        assert!(log.map_seq(s(1000), 27).is_ok());
        assert!(log.map_seq(s(1040), 0).is_ok());
    }

    #[test]
    fn ack_before_after_and_inside() {
        let mut log = ChangeLog::new();
        log.record(s(100), 7, b"10,20,3,4").unwrap(); // new image [100, 109)
        assert_eq!(log.unmap_ack(s(60)).unwrap(), s(60));
        assert_eq!(log.unmap_ack(s(100)).unwrap(), s(100));
        for inside in 101..109 {
            assert_eq!(log.unmap_ack(s(inside)).unwrap(), s(100), "ack {inside}");
        }
        assert_eq!(log.unmap_ack(s(109)).unwrap(), s(107));
        assert_eq!(log.unmap_ack(s(1009)).unwrap(), s(1007));

        let log = pasv_log(); // [1027, 1040) -> new image [1027, 1038)
        assert_eq!(log.unmap_ack(s(1037)).unwrap(), s(1027));
        assert_eq!(log.unmap_ack(s(1038)).unwrap(), s(1040));
        assert_eq!(log.unmap_ack(s(1050)).unwrap(), s(1052));
    }

    #[test]
    fn deletion_boundary_acks_past_the_deleted_bytes() {
        let mut log = ChangeLog::new();
        log.record(s(100), 4, b"").unwrap(); // [100, 104) deleted
        assert_eq!(log.map_seq(s(100), 4).unwrap(), s(100));
        assert_eq!(log.map_seq(s(104), 1).unwrap(), s(100));
        let mut out = buf();
        assert_eq!(log.rewrite_payload(s(100), b"gone", &mut out).unwrap(), 0);
        // Acking new 100 means everything up to the deletion arrived: the sender must not
        // retransmit the deleted bytes forever.
        assert_eq!(log.unmap_ack(s(100)).unwrap(), s(104));
        assert_eq!(log.unmap_ack(s(99)).unwrap(), s(99));
        assert_eq!(log.unmap_ack(s(101)).unwrap(), s(105));
    }

    #[test]
    fn insertion_travels_with_the_next_byte() {
        let mut log = ChangeLog::new();
        log.record(s(10), 0, b"++").unwrap();
        assert_eq!(log.total_delta(), 2);
        let mut out = buf();
        log.rewrite_payload(s(5), b"abcdefghij", &mut out).unwrap();
        assert_eq!(out, b"abcde++fghij");
        // A segment ending just before the byte does not carry the insertion.
        log.rewrite_payload(s(5), b"abcde", &mut out).unwrap();
        assert_eq!(out, b"abcde");
        assert_eq!(log.map_seq(s(10), 5).unwrap(), s(10));
        assert_eq!(log.map_seq(s(11), 4).unwrap(), s(13));
        // Image [10, 13) = "++f": acking the "++" alone does not ack byte 10.
        assert_eq!(log.unmap_ack(s(12)).unwrap(), s(10));
        assert_eq!(log.unmap_ack(s(13)).unwrap(), s(11));
        // The next change must start after the byte the insertion rides on.
        assert_eq!(log.record(s(10), 1, b"x"), Err(SeqError::Overlap));
        log.record(s(11), 1, b"x").unwrap();
        // A no-op record records nothing.
        log.record(s(50), 0, b"").unwrap();
        assert_eq!(log.changes().len(), 2);
    }

    #[test]
    fn sack_edges_clamp_inward() {
        let log = pasv_log(); // [1027, 1040) -> new [1027, 1038)
                              // Block entirely after the change.
        assert_eq!(
            log.unmap_sack(s(1100), s(1200)).unwrap(),
            Some((s(1102), s(1202)))
        );
        // Block entirely before.
        assert_eq!(
            log.unmap_sack(s(900), s(1000)).unwrap(),
            Some((s(900), s(1000)))
        );
        // Right edge inside: clamp to the change's start.
        assert_eq!(
            log.unmap_sack(s(1010), s(1030)).unwrap(),
            Some((s(1010), s(1027)))
        );
        // Left edge inside: clamp to the change's end.
        assert_eq!(
            log.unmap_sack(s(1030), s(1060)).unwrap(),
            Some((s(1040), s(1062)))
        );
        // Block covering the whole image: the whole original range.
        assert_eq!(
            log.unmap_sack(s(1027), s(1038)).unwrap(),
            Some((s(1027), s(1040)))
        );
        // Block strictly inside the image: nothing can be claimed.
        assert_eq!(log.unmap_sack(s(1029), s(1035)).unwrap(), None);
        // Empty and inverted blocks.
        assert_eq!(log.unmap_sack(s(1100), s(1100)).unwrap(), None);
        assert_eq!(log.unmap_sack(s(1200), s(1100)).unwrap(), None);
    }

    #[test]
    fn oldest_change_is_forgotten_and_floor_is_stale() {
        let mut log = ChangeLog::new();
        // Change k replaces [100k, 100k + 4) by 6 bytes: +2 each.
        for k in 1..=(MAX_CHANGES as u32 + 1) {
            log.record(s(100 * k), 4, b"abcdef").unwrap();
        }
        assert_eq!(log.changes().len(), MAX_CHANGES);
        assert_eq!(log.total_delta(), 2 * (MAX_CHANGES as i32 + 1));
        assert_eq!(log.changes()[0].pos, s(200));
        assert_eq!(log.floor(), Some(s(104)));
        let mut out = buf();
        assert_eq!(log.map_seq(s(50), 10), Err(SeqError::Stale));
        assert_eq!(log.clean_prefix_len(s(50), 10), Err(SeqError::Stale));
        assert_eq!(log.map_seq(s(100), 4), Err(SeqError::Stale));
        assert_eq!(
            log.rewrite_payload(s(100), b"wxyz", &mut out),
            Err(SeqError::Stale)
        );
        // At the floor the first change's offset applies.
        assert_eq!(log.map_seq(s(104), 96).unwrap(), s(106));
        assert_eq!(log.map_seq(s(204), 1).unwrap(), s(208));
        // Acks: floor in new space is 106.
        assert_eq!(log.unmap_ack(s(105)), Err(SeqError::Stale));
        assert_eq!(log.unmap_ack(s(106)).unwrap(), s(104));
        assert_eq!(log.unmap_ack(s(205)).unwrap(), s(200));
        assert_eq!(log.unmap_ack(s(208)).unwrap(), s(204));
        assert_eq!(log.unmap_ack(s(210)).unwrap(), s(206));
        // A SACK block reaching below the floor is cut at it; one wholly below is stale.
        assert_eq!(
            log.unmap_sack(s(90), s(150)).unwrap(),
            Some((s(104), s(148)))
        );
        assert_eq!(log.unmap_sack(s(90), s(100)), Err(SeqError::Stale));
        // Still correct for the newest change.
        let last = 100 * (MAX_CHANGES as u32 + 1);
        log.rewrite_payload(s(last), b"wxyz", &mut out).unwrap();
        assert_eq!(out, b"abcdef");
        assert_eq!(
            log.map_seq(s(last), 4).unwrap(),
            s(last + 2 * MAX_CHANGES as u32)
        );
    }

    #[test]
    fn overlap_and_too_long_are_refused_without_change() {
        let mut log = ChangeLog::new();
        log.record(s(100), 10, b"x").unwrap();
        assert_eq!(log.record(s(105), 2, b"y"), Err(SeqError::Overlap));
        assert_eq!(log.record(s(109), 1, b"y"), Err(SeqError::Overlap));
        assert_eq!(log.record(s(50), 1, b"y"), Err(SeqError::Overlap));
        assert_eq!(
            log.record(s(200), 1, &[0; MAX_NEW + 1]),
            Err(SeqError::TooLong)
        );
        assert_eq!(log.record(s(200), 70_000, b"y"), Err(SeqError::TooLong));
        assert_eq!(log.changes().len(), 1);
        assert_eq!(log.total_delta(), -9);
        // Adjacent is fine.
        log.record(s(110), 1, &[b'z'; MAX_NEW]).unwrap();
        assert_eq!(log.total_delta(), -9 + MAX_NEW as i32 - 1);
    }

    #[test]
    fn output_never_grows_the_buffer() {
        let mut log = ChangeLog::new();
        log.record(s(0), 1, b"abc").unwrap();
        let mut small = Vec::with_capacity(3);
        let cap = small.capacity();
        assert_eq!(
            log.rewrite_payload(s(0), b"xy", &mut small),
            Err(SeqError::TooLong)
        );
        assert!(small.is_empty());
        let mut exact = Vec::with_capacity(4);
        assert_eq!(log.rewrite_payload(s(0), b"xy", &mut exact), Ok(4));
        assert_eq!(exact, b"abcy");
        assert_eq!(small.capacity(), cap);
    }

    #[test]
    fn change_across_the_wrap() {
        let isn = 0xFFFF_FFF0u32;
        let stream: Vec<u8> = (0u8..40).collect();
        let mut log = ChangeLog::new();
        // Original offsets 12..20 cover 0xFFFF_FFFC..0x0000_0004, replaced by 3 bytes.
        let pos = s(isn) + 12;
        assert_eq!(pos, s(0xFFFF_FFFC));
        log.record(pos, 8, b"ABC").unwrap();
        let mut out = buf();
        log.rewrite_payload(s(isn), &stream, &mut out).unwrap();
        let mut expect = stream[..12].to_vec();
        expect.extend_from_slice(b"ABC");
        expect.extend_from_slice(&stream[20..]);
        assert_eq!(out, expect);
        // Before, at, and after the change, on both sides of zero.
        assert_eq!(log.map_seq(s(isn), 12).unwrap(), s(isn));
        assert_eq!(log.map_seq(s(0xFFFF_FFFC), 8).unwrap(), s(0xFFFF_FFFC));
        assert_eq!(log.map_seq(s(4), 10).unwrap(), s(u32::MAX));
        assert_eq!(log.map_seq(s(10), 10).unwrap(), s(5));
        assert_eq!(log.map_seq(s(0), 4), Err(SeqError::Straddles));
        assert_eq!(log.map_seq(s(0xFFFF_FFF8), 6), Err(SeqError::Straddles));
        // New image [0xFFFF_FFFC, 0xFFFF_FFFF).
        assert_eq!(log.unmap_ack(s(0xFFFF_FFFE)).unwrap(), s(0xFFFF_FFFC));
        assert_eq!(log.unmap_ack(s(u32::MAX)).unwrap(), s(4));
        assert_eq!(log.unmap_ack(s(0)).unwrap(), s(5));
        assert_eq!(
            log.unmap_sack(s(0xFFFF_FFFD), s(3)).unwrap(),
            Some((s(4), s(8)))
        );
        // A change recorded after the wrap is still "after" the first one.
        log.record(s(4), 1, b"Z").unwrap();
        assert_eq!(log.record(s(0xFFFF_FFFF), 1, b"Z"), Err(SeqError::Overlap));
    }

    // ---- Property test: a modelled transfer. ----

    /// One unit of the original stream: a plain byte, or the range a change owns.
    #[derive(Debug, Clone, Copy)]
    struct Unit {
        orig: (usize, usize),
        img: (usize, usize),
        change: bool,
    }

    struct Model {
        isn: SeqNumber,
        log: ChangeLog,
        expected: Vec<u8>,
        units: Vec<Unit>,
        /// Unit index by original start offset.
        unit_at: HashMap<usize, usize>,
        /// Original and new-space floor offsets (0 when nothing was forgotten).
        floor: usize,
        new_floor: usize,
    }

    /// Bytes past the end of the stream that acknowledgements may still name (a FIN, say).
    const TAIL: usize = 3;

    impl Model {
        /// Place changes from `specs` (gap, old_len, new) along `stream` and record them.
        fn build(isn: u32, stream: &[u8], specs: &[(usize, usize, Vec<u8>)]) -> Model {
            let isn = SeqNumber(isn);
            let n = stream.len();
            let mut log = ChangeLog::new();
            let mut placed: Vec<(usize, usize, Vec<u8>)> = Vec::new();
            let mut cursor = 0;
            for (gap, old_len, new) in specs {
                let mut new = new.clone();
                if *old_len == 0 && new.is_empty() {
                    new.push(b'+');
                }
                let pos = cursor + gap;
                let span = (*old_len).max(1);
                if pos + span > n {
                    break;
                }
                log.record(isn + pos as i32, *old_len, &new).unwrap();
                cursor = pos + span;
                placed.push((pos, *old_len, new));
            }

            let mut expected = Vec::new();
            let mut units = Vec::new();
            // New-space offset; past the stream's end images are virtual (nothing to compare).
            let mut k = 0;
            let mut b = 0;
            let mut next = placed.iter().peekable();
            while b < n + TAIL {
                match next.peek() {
                    Some((pos, old_len, new)) if *pos == b => {
                        expected.extend_from_slice(new);
                        if *old_len == 0 {
                            expected.push(stream[b]);
                        }
                        let span = (*old_len).max(1);
                        units.push(Unit {
                            orig: (b, b + span),
                            img: (k, expected.len()),
                            change: true,
                        });
                        k = expected.len();
                        b += span;
                        next.next();
                    }
                    _ => {
                        if let Some(byte) = stream.get(b) {
                            expected.push(*byte);
                        }
                        units.push(Unit {
                            orig: (b, b + 1),
                            img: (k, k + 1),
                            change: false,
                        });
                        k += 1;
                        b += 1;
                    }
                }
            }
            let unit_at: HashMap<usize, usize> = units
                .iter()
                .enumerate()
                .map(|(i, u)| (u.orig.0, i))
                .collect();

            let forgotten = placed.len().saturating_sub(MAX_CHANGES);
            let (floor, new_floor) = if forgotten == 0 {
                (0, 0)
            } else {
                let (pos, old_len, _) = &placed[forgotten - 1];
                let u = units[unit_at[pos]];
                assert_eq!(u.orig.1, pos + (*old_len).max(1));
                (u.orig.1, u.img.1)
            };
            Model {
                isn,
                log,
                expected,
                units,
                unit_at,
                floor,
                new_floor,
            }
        }

        /// New-space offset of original boundary `b` (a unit start or the end of the units).
        fn new_of(&self, b: usize) -> Option<usize> {
            match self.unit_at.get(&b) {
                Some(&i) => Some(self.units[i].img.0),
                None => self.units.last().filter(|u| u.orig.1 == b).map(|u| u.img.1),
            }
        }

        fn off(&self, x: SeqNumber) -> usize {
            usize::try_from(x - self.isn).unwrap()
        }
    }

    fn check_model(
        isn: u32,
        stream: &[u8],
        specs: &[(usize, usize, Vec<u8>)],
        segments: &[(usize, usize)],
        sacks: &[(usize, usize)],
    ) -> Result<(), TestCaseError> {
        let m = Model::build(isn, stream, specs);
        let n = stream.len();
        let expected = &m.expected[..];
        let stream_new_len = expected.len();
        let total: i32 = stream_new_len as i32 - n as i32;
        prop_assert_eq!(m.log.total_delta(), total);

        // Segments: retransmissions, duplicates, out of order; reassembled by a receiver.
        let mut receiver = vec![None::<u8>; stream_new_len];
        let mut out = Vec::with_capacity(4096);
        for &(a, b) in segments {
            let start = a % (n + 1);
            let len = (b % (n - start + 1)).min(1600);
            let seq = m.isn + start as i32;
            let payload = &stream[start..start + len];
            let mapped = m.log.map_seq(seq, len);
            let rewritten = m.log.rewrite_payload(seq, payload, &mut out);
            if start < m.floor {
                prop_assert_eq!(mapped, Err(SeqError::Stale));
                prop_assert_eq!(rewritten, Err(SeqError::Stale));
                continue;
            }
            match (m.new_of(start), m.new_of(start + len)) {
                (Some(ns), Some(ne)) => {
                    prop_assert_eq!(m.log.clean_prefix_len(seq, len), Ok(len));
                    let new_seq = mapped.unwrap();
                    prop_assert_eq!(new_seq, m.isn + ns as i32);
                    prop_assert_eq!(rewritten, Ok(ne - ns));
                    prop_assert_eq!(&out[..], &expected[ns..ne]);
                    let at = usize::try_from(new_seq - m.isn).unwrap();
                    for (i, byte) in out.iter().enumerate() {
                        receiver[at + i] = Some(*byte);
                    }
                }
                (ns, _) => {
                    prop_assert_eq!(mapped, Err(SeqError::Straddles));
                    prop_assert_eq!(rewritten, Err(SeqError::Straddles));
                    prop_assert!(out.is_empty());
                    // The forwardable prefix stops at the start of the range the end falls in.
                    let keep = m.log.clean_prefix_len(seq, len).unwrap();
                    let Some(ns) = ns else {
                        prop_assert_eq!(keep, 0);
                        continue;
                    };
                    let cut = m
                        .units
                        .iter()
                        .find(|u| u.orig.0 < start + len && start + len < u.orig.1)
                        .unwrap();
                    prop_assert_eq!(keep, cut.orig.0 - start);
                    prop_assert_eq!(m.log.map_seq(seq, keep), Ok(m.isn + ns as i32));
                    let n = m
                        .log
                        .rewrite_payload(seq, &payload[..keep], &mut out)
                        .unwrap();
                    prop_assert_eq!(&out[..n], &expected[ns..cut.img.0]);
                }
            }
        }
        for (i, got) in receiver.iter().enumerate() {
            if let Some(byte) = got {
                prop_assert_eq!(*byte, expected[i], "receiver offset {}", i);
            }
        }

        // Every original boundary round-trips through map_seq and unmap_ack (a deletion's start
        // shares its image with its end, and maps back to the end).
        for b in m.floor..=n {
            let Some(nb) = m.new_of(b) else { continue };
            let mapped = m.log.map_seq(m.isn + b as i32, 0).unwrap();
            prop_assert_eq!(mapped, m.isn + nb as i32);
            let mut last = b;
            while let Some(next) = m.unit_at.get(&last).map(|&i| m.units[i]) {
                if next.img.1 != nb {
                    break;
                }
                last = next.orig.1;
            }
            prop_assert_eq!(m.log.unmap_ack(mapped).unwrap(), m.isn + last as i32);
        }

        // Every new-space acknowledgement: the sender hears exactly the longest prefix of units
        // wholly received, which never goes beyond what was received.
        let img_end = m.units.last().map_or(0, |u| u.img.1);
        // The change whose image strictly contains each new-space offset, if any.
        let mut inside_change = vec![None::<Unit>; img_end + 1];
        for c in m.units.iter().filter(|x| x.change) {
            for slot in inside_change.iter_mut().take(c.img.1).skip(c.img.0 + 1) {
                *slot = Some(*c);
            }
        }
        for (j, inside) in inside_change.iter().enumerate() {
            let got = m.log.unmap_ack(m.isn + j as i32);
            if j < m.new_floor {
                prop_assert_eq!(got, Err(SeqError::Stale));
                continue;
            }
            let u = m.off(got.unwrap());
            // u is a boundary; the unit before it is wholly received, the one at it is not.
            let at = m.unit_at.get(&u).map(|&i| m.units[i]);
            prop_assert!(
                at.is_some() || u == m.units.last().unwrap().orig.1,
                "u={}",
                u
            );
            if let Some(unit) = at {
                prop_assert!(
                    unit.img.1 > j,
                    "ack {} -> {} but unit {:?} received",
                    j,
                    u,
                    unit
                );
            }
            if u > m.floor {
                let before = match m.unit_at.get(&u) {
                    Some(&i) => m.units[i - 1],
                    None => *m.units.last().unwrap(),
                };
                prop_assert_eq!(before.orig.1, u);
                prop_assert!(before.img.1 <= j, "ack {} -> {} claims {:?}", j, u, before);
            }
            // Inside a rewritten image: exactly the change's start.
            if let Some(c) = inside {
                prop_assert_eq!(u, c.orig.0);
            }
        }

        // SACK blocks: claim every unit wholly inside the block and nothing else.
        for &(a, b) in sacks {
            let l = a % (img_end + 1);
            let r = b % (img_end + 1);
            let got = m.log.unmap_sack(m.isn + l as i32, m.isn + r as i32);
            if r <= l {
                prop_assert_eq!(got, Ok(None));
                continue;
            }
            if r < m.new_floor {
                prop_assert_eq!(got, Err(SeqError::Stale));
                continue;
            }
            let claimed = got.unwrap().map(|(gl, gr)| (m.off(gl), m.off(gr)));
            for unit in m.units.iter().filter(|x| x.orig.0 >= m.floor) {
                let received = unit.img.0 >= l && unit.img.1 <= r && unit.img.0 < unit.img.1;
                let in_claim =
                    claimed.is_some_and(|(cl, cr)| unit.orig.0 >= cl && unit.orig.1 <= cr);
                let touches = claimed.is_some_and(|(cl, cr)| unit.orig.0 < cr && unit.orig.1 > cl);
                if received {
                    prop_assert!(in_claim, "[{},{}) -> {:?} misses {:?}", l, r, claimed, unit);
                }
                if touches {
                    prop_assert!(in_claim, "[{},{}) -> {:?} cuts {:?}", l, r, claimed, unit);
                    // Deleted ranges have nothing to receive; claiming them is harmless.
                    let deleted = unit.img.0 == unit.img.1 && unit.img.0 >= l && unit.img.0 <= r;
                    prop_assert!(
                        received || deleted,
                        "[{},{}) -> {:?} claims {:?}",
                        l,
                        r,
                        claimed,
                        unit
                    );
                }
            }
        }
        Ok(())
    }

    fn isn_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            (u32::MAX - 4100)..=u32::MAX,
            0x7FFF_F000u32..=0x8000_0000,
        ]
    }

    fn spec_strategy(
        gap: usize,
        count: core::ops::RangeInclusive<usize>,
    ) -> impl Strategy<Value = Vec<(usize, usize, Vec<u8>)>> {
        prop::collection::vec(
            (
                0..gap,
                prop_oneof![4 => 1usize..30, 1 => Just(0usize)],
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            count,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn transfer_round_trips(
            isn in isn_strategy(),
            stream in prop::collection::vec(any::<u8>(), 0..4000),
            specs in spec_strategy(300, 0..=MAX_CHANGES),
            segments in prop::collection::vec((any::<usize>(), any::<usize>()), 0..60),
            sacks in prop::collection::vec((any::<usize>(), any::<usize>()), 0..40),
        ) {
            check_model(isn, &stream, &specs, &segments, &sacks)?;
        }

        #[test]
        fn transfer_with_forgotten_changes(
            isn in isn_strategy(),
            stream in prop::collection::vec(any::<u8>(), 1500..4000),
            specs in spec_strategy(80, (MAX_CHANGES + 1)..=(MAX_CHANGES + 6)),
            segments in prop::collection::vec((any::<usize>(), any::<usize>()), 0..60),
            sacks in prop::collection::vec((any::<usize>(), any::<usize>()), 0..40),
        ) {
            check_model(isn, &stream, &specs, &segments, &sacks)?;
        }

        #[test]
        fn arbitrary_calls_never_panic(
            records in prop::collection::vec((any::<u32>(), 0usize..70_000, prop::collection::vec(any::<u8>(), 0..60)), 0..24),
            probes in prop::collection::vec((any::<u32>(), any::<u32>(), 0usize..3000), 0..40),
        ) {
            let mut log = ChangeLog::new();
            for (pos, old_len, new) in &records {
                let _ = log.record(SeqNumber(*pos), *old_len, new);
            }
            let payload = [7u8; 3000];
            let mut out = Vec::with_capacity(1024);
            for (a, b, len) in &probes {
                let _ = log.map_seq(SeqNumber(*a), *len);
                let _ = log.rewrite_payload(SeqNumber(*a), &payload[..*len], &mut out);
                prop_assert!(out.len() <= out.capacity());
                let _ = log.unmap_ack(SeqNumber(*b));
                let _ = log.unmap_sack(SeqNumber(*a), SeqNumber(*b));
            }
        }
    }
}
