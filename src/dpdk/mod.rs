//! The unsafe room: safe, RAII wrappers over the DPDK C API (`dpdk-sys`).
//!
//! This is the only module of rvs allowed to write `unsafe`, and every `unsafe` block carries a
//! `// SAFETY:` comment. It owns the lifecycle of the EAL ([`Eal`]), mbuf pools ([`Mempool`]),
//! single mbufs ([`Mbuf`], which frees itself on drop), started ethdev ports ([`Port`]) and their
//! queues ([`RxQueue`], [`TxQueue`], one owner each), SP/SC rings of mbufs and ethdevs made of
//! them ([`mbuf_ring`], [`ring_port`], for the in-process generator), and worker lcores
//! ([`launch`]). The FFI boundary is crossed once per burst, not once per packet: `rx_burst`
//! receives straight into a `Vec<Mbuf>`'s spare capacity, `tx_burst` hands the front of a
//! `Vec<Mbuf>` to the NIC, and [`free_bulk`] frees a whole vector in one call. Per-packet edits of
//! an mbuf (prepend, adj, append, truncate) are plain field updates in Rust, no FFI at all.
//!
//! Invariants and limitations:
//! - Drop order matters and is the caller's job: queues and ports before the mempool they
//!   receive into, every [`Mbuf`] back in its pool before that pool is dropped (a pool that still
//!   has mbufs out is leaked rather than freed under them), and everything before [`Eal`].
//! - The EAL can be initialised once per process; a second [`Eal::init`] is an error, even after
//!   the first [`Eal`] was dropped (DPDK does not support re-initialisation).
//! - An [`Mbuf`] is a single, exclusively owned, direct mbuf; the [`crate::packet::PacketBuf`]
//!   view covers its first segment only.
//! - Setup errors are one rich [`DpdkError`] naming the call and the errno; the fast path
//!   (`rx_burst`, `tx_burst`, `alloc`) returns counts or `Option`, never an error.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::ffi::CStr;
use std::fmt;

pub mod eal;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;

pub use eal::{tsc, tsc_hz, version, Eal};
pub use lcore::{
    launch, lcore_id, main_lcore, socket_id, worker_lcores, LaunchHandle, LAUNCH_PANICKED,
    LCORE_ID_ANY, SOCKET_ID_ANY,
};
pub use mbuf::{free_bulk, Mbuf};
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, HEADROOM};
pub use port::{LinkStatus, Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
pub use ring::{mbuf_ring, ring_port, RingConsumer, RingPort, RingProducer};

/// A failed DPDK setup call: which call (and on what), and the errno it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    what: String,
    code: i32,
}

/// Result of DPDK setup calls.
pub type Result<T> = std::result::Result<T, DpdkError>;

impl DpdkError {
    /// An error for the call described by `what` (e.g. `"rte_eth_dev_configure(port 0)"`).
    /// `code` is an errno or `rte_errno` value; it is stored negated, as ethdev returns them.
    pub fn new(what: impl Into<String>, code: i32) -> DpdkError {
        DpdkError {
            what: what.into(),
            code: if code > 0 { -code } else { code },
        }
    }

    /// An error whose code is the calling thread's current `rte_errno` (for calls that return
    /// NULL or -1 and report the reason there).
    pub(crate) fn from_rte_errno(what: impl Into<String>) -> DpdkError {
        // SAFETY: reads a thread-local integer through the generated wrapper; no preconditions.
        let errno = unsafe { dpdk_sys::rvs_rte_errno() };
        DpdkError::new(what, errno)
    }

    /// What was being done.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The negative errno (or negative `rte_errno`) value.
    pub fn code(&self) -> i32 {
        self.code
    }
}

/// `errno` as a negative `i32` (the bindings export errno macros as `u32`).
pub(crate) const fn neg(errno: u32) -> i32 {
    -(errno as i32)
}

/// The text DPDK gives for an errno or `rte_errno` value (positive or negative).
pub(crate) fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a NUL-terminated string that is either
    // static or in a thread-local buffer; it does not need the EAL. We copy it out at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(code.saturating_abs());
        if p.is_null() {
            return format!("error {code}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// A fixed-size C `char` array (NUL-terminated or full) as a `String`.
pub(crate) fn c_chars_to_string(chars: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.what, strerror(self.code), self.code)
    }
}

impl std::error::Error for DpdkError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reads_like_a_sentence() {
        let e = DpdkError::new("rte_eth_dev_configure(port 0)", -22);
        assert_eq!(
            e.to_string(),
            "rte_eth_dev_configure(port 0): Invalid argument (-22)"
        );
        assert_eq!(e.code(), -22);
        assert_eq!(e.what(), "rte_eth_dev_configure(port 0)");
    }

    #[test]
    fn positive_errno_is_stored_negated() {
        assert_eq!(DpdkError::new("x", 12).code(), -12);
        assert_eq!(DpdkError::new("x", neg(dpdk_sys::ENOTSUP)).code(), -95);
    }

    #[test]
    fn c_chars_stop_at_nul() {
        let raw: [std::os::raw::c_char; 6] = [b'r' as _, b'x' as _, b'_' as _, b'q' as _, 0, 7];
        assert_eq!(c_chars_to_string(&raw), "rx_q");
        let full: [std::os::raw::c_char; 2] = [b'a' as _, b'b' as _];
        assert_eq!(c_chars_to_string(&full), "ab");
    }
}
