//! One owned packet mbuf, and the [`PacketBuf`] view the pure pipeline works on.
//!
//! An [`Mbuf`] is a non-null pointer to a direct mbuf that nobody else references: it came out
//! of a pool ([`super::Mempool::alloc`]) or an rx burst, and it goes back to its pool when
//! dropped (`rte_pktmbuf_free`) or when handed to `tx_burst` (the NIC frees it after sending).
//! It is `Send` (hand it to another core) but not `Sync` or `Clone`.
//!
//! The layout is `#[repr(transparent)]` over the pointer, so a `Vec<Mbuf>` *is* a C array of
//! `struct rte_mbuf *`: bursts go straight in and out of it without conversion.
//!
//! Edits are plain field updates (no FFI per packet). Limitation: the [`PacketBuf`] view is the
//! first segment only; `pkt_len` is kept in step with `data_len` by applying the same deltas, so
//! on single-segment mbufs (all rvs creates and receives) `pkt_len == data_len` always holds.

use std::fmt;
use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

use crate::packet::PacketBuf;

/// An owned packet mbuf; freed on drop.
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an Mbuf is the only handle to its mbuf, and mbufs may be freed to their pool from any
// thread (MP/MC pool ops), so moving one to another thread is sound.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(crate) fn from_non_null(p: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(p)
    }

    /// Take ownership of a raw mbuf (for hand-offs through C queues such as `rte_ring`).
    ///
    /// # Safety
    /// `p` must be a valid, non-null, direct mbuf that nothing else references or frees
    /// afterwards.
    #[allow(dead_code)] // the counterpart of `into_raw`, for rte_ring hand-offs
    pub(crate) unsafe fn from_raw(p: *mut rte_mbuf) -> Mbuf {
        debug_assert!(!p.is_null());
        // SAFETY: the caller promises p is non-null.
        Mbuf(unsafe { NonNull::new_unchecked(p) })
    }

    /// Give up ownership: the caller must free or transmit the returned mbuf.
    #[allow(dead_code)] // for rte_ring hand-offs
    pub(crate) fn into_raw(self) -> *mut rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    fn raw(&self) -> &rte_mbuf {
        // SAFETY: self.0 is a live mbuf owned exclusively by this value (type invariant), so a
        // shared reference tied to &self cannot alias a mutable one.
        unsafe { self.0.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: as in `raw`, and &mut self makes this the only reference.
        unsafe { self.0.as_mut() }
    }

    /// The port the frame was received on.
    pub fn in_port(&self) -> u16 {
        self.raw().port
    }

    /// The RSS hash the NIC computed, if it set one (`RTE_MBUF_F_RX_RSS_HASH`).
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & dpdk_sys::RVS_MBUF_F_RX_RSS_HASH == 0 {
            return None;
        }
        // SAFETY: the flag says the `rss` member of the hash union is the one written; reading a
        // u32 from that union is valid for any bit pattern anyway.
        Some(unsafe { m.__bindgen_anon_2.hash.rss })
    }

    /// Store a software-computed RSS hash (for vdevs that compute none) and flag it.
    pub fn set_rss_hash(&mut self, h: u32) {
        let m = self.raw_mut();
        m.__bindgen_anon_2.hash.rss = h;
        m.ol_flags |= dpdk_sys::RVS_MBUF_F_RX_RSS_HASH;
    }

    /// Number of segments (1 for everything rvs handles).
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Free bytes in front of the frame.
    pub fn headroom(&self) -> u16 {
        self.raw().data_off
    }

    /// Free bytes after the frame (first segment).
    pub fn tailroom(&self) -> u16 {
        let m = self.raw();
        m.buf_len
            .saturating_sub(m.data_off)
            .saturating_sub(m.data_len)
    }

    /// Append `bytes` at the end of the frame; false (frame unchanged) without enough tailroom.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        let old = self.len();
        if !self.append(bytes.len()) {
            return false;
        }
        self.data_mut()[old..].copy_from_slice(bytes);
        true
    }

    /// Grow data_len and pkt_len by the same amount (callers checked the bounds).
    fn grow_len(&mut self, delta: u16) {
        let m = self.raw_mut();
        m.data_len = m.data_len.wrapping_add(delta);
        m.pkt_len = m.pkt_len.wrapping_add(u32::from(delta));
    }

    /// Shrink data_len and pkt_len by the same amount (callers checked the bounds).
    fn shrink_len(&mut self, delta: u16) {
        let m = self.raw_mut();
        m.data_len = m.data_len.wrapping_sub(delta);
        m.pkt_len = m.pkt_len.wrapping_sub(u32::from(delta));
    }
}

impl PacketBuf for Mbuf {
    fn is_chained(&self) -> bool {
        self.raw().nb_segs > 1
    }

    #[inline(always)]
    fn prefetch_meta(&self) {
        crate::cpu::prefetch(self.raw());
    }

    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr..buf_addr+buf_len is the mbuf's buffer and data_off + data_len <=
        // buf_len (mbuf invariant, kept by every edit below); the bytes are owned by this mbuf.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in `data`; &mut self gives exclusive access to the buffer (a direct mbuf
        // that no one else references).
        unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    fn truncate(&mut self, len: usize) {
        let cur = self.raw().data_len;
        if let Ok(len) = u16::try_from(len) {
            if len < cur {
                self.shrink_len(cur - len);
            }
        }
    }

    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        let m = self.raw();
        if n > m.data_off || m.data_len.checked_add(n).is_none() {
            return false;
        }
        self.raw_mut().data_off -= n;
        self.grow_len(n);
        true
    }

    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        if n > self.raw().data_len {
            return false;
        }
        self.raw_mut().data_off += n;
        self.shrink_len(n);
        true
    }

    fn append(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        if n > self.tailroom() {
            return false;
        }
        self.grow_len(n);
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (type invariant) and never touch it again.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("port", &self.in_port())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

/// Free every mbuf in `v` with one `rte_pktmbuf_free_bulk` call; `v` is left empty (its
/// capacity is kept for the next burst).
pub fn free_bulk(v: &mut Vec<Mbuf>) {
    let len = v.len();
    if len == 0 {
        return;
    }
    let ptrs = v.as_mut_ptr().cast::<*mut rte_mbuf>();
    // SAFETY: forget the elements first (no double free on any path); they are freed below.
    unsafe { v.set_len(0) };
    // A pool never holds u32::MAX mbufs, but stay correct for any length.
    let mut done = 0usize;
    while done < len {
        let n = (len - done).min(u32::MAX as usize);
        // SAFETY: ptrs[done..done + n] are owned, valid mbufs (Mbuf is repr(transparent) over the
        // pointer) that nothing references any more; the Vec's buffer is still allocated.
        unsafe { dpdk_sys::rte_pktmbuf_free_bulk(ptrs.add(done), n as u32) };
        done += n;
    }
}
