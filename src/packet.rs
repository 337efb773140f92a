//! The packet buffer abstraction that lets one pipeline run on DPDK mbufs and on plain `Vec<u8>`.
//!
//! The pure core (wire views, flow table, rewrite, helpers) never sees an mbuf: it is generic over
//! [`PacketBuf`], a contiguous, single-segment frame with head- and tailroom. `src/dpdk/mbuf.rs`
//! implements it for `Mbuf`; this file implements it for `Vec<u8>` so that tests drive the very
//! same code with byte arrays.
//!
//! Limitations: one contiguous segment only. Multi-segment mbufs are dropped before they reach
//! the pipeline (they cannot occur with the MTU and mbuf sizes rvs configures).

/// A contiguous frame buffer that can grow or shrink at either end.
pub trait PacketBuf {
    /// The frame, starting at the Ethernet header.
    fn data(&self) -> &[u8];
    /// The frame, mutable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Frame length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the frame holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shorten the frame to `len` bytes (no-op when already shorter).
    fn truncate(&mut self, len: usize);
    /// Grow the frame by `n` bytes at the front. The new bytes are unspecified.
    /// Returns false (and leaves the frame unchanged) when there is not enough headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Remove `n` bytes from the front. Returns false when the frame is shorter than `n`.
    fn adj(&mut self, n: usize) -> bool;
    /// Grow the frame by `n` bytes at the end. The new bytes are unspecified.
    /// Returns false (and leaves the frame unchanged) when there is not enough tailroom.
    fn append(&mut self, n: usize) -> bool;
    /// True when the frame continues in further segments (which the pipeline does not take).
    fn is_chained(&self) -> bool {
        false
    }
    /// Start loading the buffer's own metadata (where its data is) into the cache; a hint for
    /// the first stage of a burst, before anything reads it.
    fn prefetch_meta(&self) {}
    /// Start loading the first cache line of the frame into the cache.
    fn prefetch_data(&self) {
        if let Some(b) = self.data().first() {
            crate::cpu::prefetch(b);
        }
    }
}

/// Largest frame a `Vec<u8>` buffer may grow to, mirroring an mbuf's data room.
pub const VEC_BUF_CAPACITY: usize = 2048;

impl PacketBuf for Vec<u8> {
    fn data(&self) -> &[u8] {
        self
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
    fn prepend(&mut self, n: usize) -> bool {
        if self.len() + n > VEC_BUF_CAPACITY {
            return false;
        }
        self.splice(0..0, std::iter::repeat(0u8).take(n));
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.drain(..n);
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if self.len() + n > VEC_BUF_CAPACITY {
            return false;
        }
        self.resize(self.len() + n, 0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_grows_and_shrinks_at_both_ends() {
        let mut b: Vec<u8> = vec![1, 2, 3];
        assert!(b.prepend(2));
        assert_eq!(b.data(), &[0, 0, 1, 2, 3]);
        assert!(b.adj(2));
        assert!(PacketBuf::append(&mut b, 1));
        assert_eq!(b.data(), &[1, 2, 3, 0]);
        PacketBuf::truncate(&mut b, 2);
        assert_eq!(b.data(), &[1, 2]);
        assert!(!b.adj(3));
        assert!(!PacketBuf::append(&mut b, VEC_BUF_CAPACITY));
    }
}
