//! Packet mbuf pools (`rte_pktmbuf_pool_create`).
//!
//! A [`Mempool`] is shared by every core that allocates from it (rx queues, the slow path, test
//! generators): DPDK's default pool ops are multi-producer/multi-consumer, and each EAL lcore has
//! its own object cache, so `alloc` and mbuf frees are safe from any thread.
//!
//! Drop order: every mbuf must be back in the pool, and every port whose rx queues were set up
//! with it must be closed, before the pool is dropped. As a safety net a pool that still has
//! mbufs out when dropped is leaked (with a message on stderr) instead of freed under them.

use std::ffi::CString;
use std::fmt;
use std::ptr::NonNull;

use super::{neg, DpdkError, Mbuf, Result};
use dpdk_sys::rte_mempool;

/// Headroom DPDK reserves in front of received frames (`RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: u16 = dpdk_sys::RVS_PKTMBUF_HEADROOM;
/// The usual `data_room` argument: 2 KiB of frame plus [`HEADROOM`] (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RVS_MBUF_DEFAULT_BUF_SIZE;

/// A pool of packet mbufs.
pub struct Mempool {
    ptr: NonNull<rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: the pool is a DPDK object in shared (hugepage) memory, usable from any thread: its
// default ops are MP/MC-safe and per-lcore caches are indexed by the calling lcore.
unsafe impl Send for Mempool {}
// SAFETY: every method takes &self and calls thread-safe DPDK functions (alloc, counts).
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Create a pool of `n` mbufs with a per-lcore cache of `cache` and `data_room` bytes of
    /// buffer per mbuf (headroom included; [`DEFAULT_DATA_ROOM`] fits a 1518-byte frame),
    /// allocated on NUMA `socket` ([`super::SOCKET_ID_ANY`] for any). Needs an initialised EAL.
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        let what = format!("rte_pktmbuf_pool_create({name:?}, n={n}, cache={cache})");
        if name.len() >= dpdk_sys::RVS_MEMPOOL_NAMESIZE as usize {
            return Err(DpdkError::new(
                format!(
                    "{what}: name longer than {} bytes",
                    dpdk_sys::RVS_MEMPOOL_NAMESIZE - 1
                ),
                neg(dpdk_sys::ENAMETOOLONG),
            ));
        }
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new(format!("{what}: NUL in name"), neg(dpdk_sys::EINVAL)))?;
        // SAFETY: cname is a valid C string for the duration of the call; DPDK copies it.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        let ptr = NonNull::new(p).ok_or_else(|| DpdkError::from_rte_errno(what))?;
        Ok(Mempool {
            ptr,
            name: name.to_owned(),
            size: n,
        })
    }

    /// One mbuf, reset and empty (data_len 0, [`HEADROOM`] in front), or `None` when the pool is
    /// exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: self.ptr is a live packet mbuf pool; alloc returns NULL or an mbuf we now own.
        let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        NonNull::new(m).map(Mbuf::from_non_null)
    }

    /// Append exactly `n` fresh mbufs to `out` in one call, or none at all (returns false) when
    /// the pool has fewer than `n` available. Does not allocate when `out` has the capacity.
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> bool {
        let Ok(count) = u32::try_from(n) else {
            return false;
        };
        out.reserve(n);
        let spare = out.spare_capacity_mut();
        // SAFETY: `spare` has room for at least n entries; Mbuf is repr(transparent) over a
        // non-null `*mut rte_mbuf`, so the pool may write mbuf pointers there. On success all n
        // are initialised with mbufs we now own; on failure none are written.
        let rc = unsafe {
            dpdk_sys::rte_pktmbuf_alloc_bulk(
                self.ptr.as_ptr(),
                spare.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>(),
                count,
            )
        };
        if rc != 0 {
            return false;
        }
        // SAFETY: the n slots after len were initialised above with valid, owned mbufs.
        unsafe { out.set_len(out.len() + n) };
        true
    }

    /// Mbufs available for allocation (including those in per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: self.ptr is a live mempool; the count only reads its state.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs currently out of the pool (held by the application, queued on a NIC, in a ring).
    pub fn in_use(&self) -> u32 {
        // SAFETY: self.ptr is a live mempool; the count only reads its state.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw pool, for queue setup.
    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.ptr.as_ptr()
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("in_use", &self.in_use())
            .finish()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let out = self.in_use();
        if out != 0 {
            // Freeing now would leave those mbufs pointing into freed memory; leaking a pool is
            // the lesser evil, and the message says which code path forgot to give them back.
            eprintln!(
                "rvs: mempool {:?} dropped with {out} mbufs still in use; leaking it",
                self.name
            );
            return;
        }
        // SAFETY: no mbuf of this pool is out (checked above), and the pool is not used after
        // this (we own the only handle).
        unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) }
    }
}
