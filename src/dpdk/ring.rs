//! Rings of mbufs (`rte_ring`) and ethdev ports made of them (`rte_eth_from_rings`), for the
//! in-process traffic generator (`rvs bench`) and tests.
//!
//! [`mbuf_ring`] creates a single-producer/single-consumer ring and splits it into its two ends:
//! a [`RingProducer`] and a [`RingConsumer`]. Each end has one owner (neither is `Clone`, both
//! take `&mut self`), which is exactly what the SP/SC flags require of the C ring. Both ends are
//! `Send`: the producer usually lives on one lcore and the consumer on another.
//!
//! [`ring_port`] turns consumer ends into a port's RX queues and producer ends into its TX
//! queues: RX queue `i` dequeues from ring `i`, TX queue `i` enqueues onto ring `i`. The port
//! then takes over those ends (it is their single user, through `rx_burst`/`tx_burst`), and the
//! caller keeps the opposite ends: it fills the RX rings like a NIC would and drains the TX
//! rings like a wire would.
//!
//! Ownership and teardown: the ring memory is freed when both of its ends are gone; any mbufs
//! still inside are freed first, so a ring never leaks pool entries. A [`RingPort`] stops and
//! closes its ethdev before it lets go of the ring ends it holds (the PMD keeps raw pointers to
//! them; net_ring's close leaves rings it did not create alone). As with every port, the mempool
//! must outlive it, and a ring's mbufs must be back in the pool before the pool is dropped:
//! drop ring ends and ring ports before their pool.
//!
//! Limitations: rings are power-of-two sized and hold `size - 1` mbufs; net_ring accepts at most
//! 16 rings per direction (`RTE_PMD_RING_MAX_RX_RINGS`).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys::{rte_mbuf, rte_ring};

use super::mbuf::free_bulk;
use super::{neg, DpdkError, Mbuf, Mempool, Port, PortConfig, Result, RxQueue, TxQueue};

/// The C ring, freed (after its remaining mbufs) when the last end lets go of it.
struct RawRing {
    ptr: NonNull<rte_ring>,
    name: String,
}

// SAFETY: an rte_ring lives in DPDK shared memory and may be used from any thread; the SP/SC
// discipline is kept by the ends (one producer end and one consumer end, each with one owner).
unsafe impl Send for RawRing {}
// SAFETY: RawRing itself offers no method that touches the ring except `count` (a read of the
// head/tail indices, safe concurrently) and Drop (which runs when no end is left).
unsafe impl Sync for RawRing {}

impl RawRing {
    fn count(&self) -> usize {
        // SAFETY: the ring is live (owned by self); counting only reads its indices.
        unsafe { dpdk_sys::rte_ring_count(self.ptr.as_ptr()) as usize }
    }
}

impl Drop for RawRing {
    fn drop(&mut self) {
        // Nobody else uses the ring any more (both ends and any port are gone): free what is
        // left in it, then the ring.
        let mut left: Vec<Mbuf> = Vec::with_capacity(64);
        loop {
            let got = dequeue(self.ptr, &mut left, 64);
            if got == 0 {
                break;
            }
            free_bulk(&mut left);
        }
        // SAFETY: the ring was created by rte_ring_create, is empty, and is never used again.
        unsafe { dpdk_sys::rte_ring_free(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for RawRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("name", &self.name)
            .field("count", &self.count())
            .finish()
    }
}

/// Dequeue up to `max` mbufs into `out`'s spare capacity; the caller is the only consumer.
fn dequeue(ring: NonNull<rte_ring>, out: &mut Vec<Mbuf>, max: usize) -> usize {
    let spare = out.spare_capacity_mut();
    let want = max.min(spare.len()).min(u32::MAX as usize);
    if want == 0 {
        return 0;
    }
    let table = spare.as_mut_ptr().cast::<*mut std::os::raw::c_void>();
    // SAFETY: `table` has room for `want` pointers; the ring holds only owned mbuf pointers
    // (every enqueue below moves owned Mbufs in), and the caller is the ring's only consumer.
    // Mbuf is repr(transparent) over a non-null `*mut rte_mbuf`.
    let got = unsafe {
        dpdk_sys::rte_ring_sc_dequeue_burst(ring.as_ptr(), table, want as u32, std::ptr::null_mut())
    } as usize;
    let got = got.min(want);
    // SAFETY: the first `got` spare slots now hold mbufs whose ownership passed to us.
    unsafe { out.set_len(out.len() + got) };
    got
}

/// The producer end of an SP/SC ring of mbufs.
#[derive(Debug)]
pub struct RingProducer {
    ring: Arc<RawRing>,
    capacity: usize,
}

/// The consumer end of an SP/SC ring of mbufs.
#[derive(Debug)]
pub struct RingConsumer {
    ring: Arc<RawRing>,
}

/// Create an SP/SC ring for `size - 1` mbufs (`size` a power of two, at least 2) on NUMA
/// `socket` ([`super::SOCKET_ID_ANY`] for any), and return its two ends. `name` must be unique
/// among the process's rings (DPDK names them in a global namespace).
pub fn mbuf_ring(name: &str, size: u32, socket: i32) -> Result<(RingProducer, RingConsumer)> {
    let what = format!("rte_ring_create({name:?}, {size})");
    if size < 2 || !size.is_power_of_two() {
        return Err(DpdkError::new(
            format!("{what}: size must be a power of two, at least 2"),
            neg(dpdk_sys::EINVAL),
        ));
    }
    let cname = CString::new(name)
        .map_err(|_| DpdkError::new(format!("{what}: NUL in name"), neg(dpdk_sys::EINVAL)))?;
    let flags = dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ;
    // SAFETY: cname is a valid C string for the call (DPDK copies it); the flags are valid.
    let p = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), size, socket, flags) };
    let ptr = NonNull::new(p).ok_or_else(|| DpdkError::from_rte_errno(what))?;
    let ring = Arc::new(RawRing {
        ptr,
        name: name.to_owned(),
    });
    Ok((
        RingProducer {
            ring: Arc::clone(&ring),
            capacity: size as usize - 1,
        },
        RingConsumer { ring },
    ))
}

impl RingProducer {
    /// Move mbufs from the front of `pkts` into the ring, as many as fit, in one call; return
    /// how many. Whatever did not fit stays in `pkts`, in order, still owned by the caller.
    pub fn enqueue_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let n = len.min(u32::MAX as usize);
        let base = pkts.as_mut_ptr().cast::<*mut rte_mbuf>();
        // SAFETY: base[..n] are owned, valid mbuf pointers (Mbuf is repr(transparent)); the ring
        // takes ownership of exactly the first `sent`. &mut self makes us the only producer.
        let sent = unsafe {
            dpdk_sys::rte_ring_sp_enqueue_burst(
                self.ring.ptr.as_ptr(),
                base.cast::<*mut std::os::raw::c_void>(),
                n as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        let sent = sent.min(n);
        if sent == 0 {
            return 0;
        }
        // SAFETY: the first `sent` elements now belong to the ring: forget them (length 0 first,
        // so nothing is dropped twice on any path), move the tail to the front, expose the tail.
        unsafe {
            pkts.set_len(0);
            std::ptr::copy(base.add(sent), base, len - sent);
            pkts.set_len(len - sent);
        }
        sent
    }

    /// Mbufs in the ring now.
    pub fn count(&self) -> usize {
        self.ring.count()
    }

    /// Free slots now (the consumer may be freeing more at the same time).
    pub fn free_count(&self) -> usize {
        self.capacity.saturating_sub(self.ring.count())
    }

    /// Mbufs the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl RingConsumer {
    /// Take up to `max` mbufs out of the ring, appended to `out` — never more than `out`'s
    /// spare capacity, so this allocates nothing. One call. Returns how many.
    pub fn dequeue_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        dequeue(self.ring.ptr, out, max)
    }

    /// Mbufs in the ring now.
    pub fn count(&self) -> usize {
        self.ring.count()
    }
}

/// An ethdev made of rings ([`ring_port`]): the port, and the ring ends its queues use. The port
/// is stopped and closed before the ends are let go (fields drop in declaration order).
#[derive(Debug)]
pub struct RingPort {
    port: Port,
    _rx: Vec<RingConsumer>,
    _tx: Vec<RingProducer>,
}

impl RingPort {
    /// The started port (id, MAC, stats).
    pub fn port(&self) -> &Port {
        &self.port
    }
}

/// Create an ethdev called `net_ring_<name>` whose RX queue `i` reads `rx[i]` and TX queue `i`
/// writes `tx[i]`, and start it with `cfg` (queue counts are taken from the ring lists), receiving
/// into `pool`. Returns the port and its queue handles, as [`Port::start`] does.
pub fn ring_port(
    name: &str,
    rx: Vec<RingConsumer>,
    tx: Vec<RingProducer>,
    cfg: &PortConfig,
    pool: &Mempool,
) -> Result<(RingPort, Vec<RxQueue>, Vec<TxQueue>)> {
    let what = format!("rte_eth_from_rings({name:?})");
    let (Ok(nrx), Ok(ntx)) = (u16::try_from(rx.len()), u16::try_from(tx.len())) else {
        return Err(DpdkError::new(
            format!("{what}: too many rings"),
            neg(dpdk_sys::EINVAL),
        ));
    };
    let cname = CString::new(name)
        .map_err(|_| DpdkError::new(format!("{what}: NUL in name"), neg(dpdk_sys::EINVAL)))?;
    let rx_ptrs: Vec<*mut rte_ring> = rx.iter().map(|r| r.ring.ptr.as_ptr()).collect();
    let tx_ptrs: Vec<*mut rte_ring> = tx.iter().map(|r| r.ring.ptr.as_ptr()).collect();
    let socket = u32::try_from(super::socket_id()).unwrap_or(0);
    // SAFETY: both arrays hold live rings and outlive the call (the PMD copies the pointers);
    // the rings themselves outlive the port, which RingPort guarantees by drop order, and the
    // caller gave up these ends, so the port is their only user.
    let id = unsafe {
        dpdk_sys::rte_eth_from_rings(
            cname.as_ptr(),
            rx_ptrs.as_ptr(),
            u32::from(nrx),
            tx_ptrs.as_ptr(),
            u32::from(ntx),
            socket,
        )
    };
    let Ok(id) = u16::try_from(id) else {
        return Err(DpdkError::from_rte_errno(what));
    };
    let pc = PortConfig {
        rx_queues: nrx,
        tx_queues: ntx,
        rss: false,
        ..cfg.clone()
    };
    match Port::start(id, &pc, pool) {
        Ok((port, rxq, txq)) => Ok((
            RingPort {
                port,
                _rx: rx,
                _tx: tx,
            },
            rxq,
            txq,
        )),
        Err(e) => {
            // SAFETY: the device exists and is not started (start failed); closing it detaches
            // it from the rings before they are freed below.
            unsafe {
                dpdk_sys::rte_eth_dev_close(id);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_is_checked_before_dpdk() {
        assert!(mbuf_ring("r", 1000, -1).is_err());
        assert!(mbuf_ring("r", 1, -1).is_err());
    }
}
