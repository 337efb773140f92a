//! The DPDK Environment Abstraction Layer: initialisation once per process, cleanup on drop, and
//! the TSC clock.
//!
//! [`Eal::init`] takes the EAL options only (`--no-pci`, `-l 0-1`, `--vdev ...`); the program
//! name DPDK expects as `argv[0]` is added here. The argument strings are leaked on purpose: EAL
//! may permute `argv` and keep pointers into it for the life of the process, and it is set up
//! once. Anything after the EAL options (DPDK stops at `--` or at the first non-option) is
//! refused, because rvs has its own command line and would otherwise silently ignore it.
//!
//! Limitation: DPDK cannot be initialised twice in one process, nor re-initialised after
//! `rte_eal_cleanup`, so a second `init` returns an error (`-EALREADY`) instead of calling into
//! undefined territory.

use std::ffi::CString;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{neg, DpdkError, Result};

/// Set by the first [`Eal::init`] and never cleared.
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// `argv[0]` handed to `rte_eal_init`; it shows up in DPDK's log lines.
const PROGRAM: &str = "rvs";

/// The initialised EAL. Dropping it calls `rte_eal_cleanup`, so drop every port, mempool and
/// mbuf first. Not `Send`: cleanup belongs on the main lcore, the thread that initialised it.
#[derive(Debug)]
pub struct Eal {
    _main_thread_only: PhantomData<*const ()>,
}

impl Eal {
    /// Initialise DPDK with the EAL options `args` (without a program name).
    pub fn init(args: &[String]) -> Result<Eal> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::new(
                "rte_eal_init: the EAL is already initialised in this process \
                 (DPDK cannot be initialised twice)",
                neg(dpdk_sys::EALREADY),
            ));
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once(PROGRAM).chain(args.iter().map(String::as_str)) {
            match CString::new(a) {
                Ok(c) => owned.push(c),
                Err(_) => {
                    return Err(DpdkError::new(
                        format!("rte_eal_init: argument {a:?} contains a NUL byte"),
                        neg(dpdk_sys::EINVAL),
                    ))
                }
            }
        }
        let argc = owned.len();
        let argc_c = c_int::try_from(argc).map_err(|_| {
            DpdkError::new("rte_eal_init: too many arguments", neg(dpdk_sys::E2BIG))
        })?;
        // Leaked for the life of the process (see the module doc); argv ends with NULL like C's.
        let argv: &'static mut [*mut c_char] = Box::leak(
            owned
                .into_iter()
                .map(CString::into_raw)
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        // SAFETY: argv holds argc valid, NUL-terminated, writable strings followed by NULL, and
        // stays alive forever; this is the only call to rte_eal_init in the process (INITIALISED).
        let parsed = unsafe { dpdk_sys::rte_eal_init(argc_c, argv.as_mut_ptr()) };
        if parsed < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        let eal = Eal {
            _main_thread_only: PhantomData,
        };
        // rte_eal_init returns how many arguments it consumed, program name excluded.
        let consumed = usize::try_from(parsed).unwrap_or(0);
        if consumed + 1 < argc {
            let rest: Vec<&str> = args.iter().skip(consumed).map(String::as_str).collect();
            // `eal` is dropped here, which cleans the EAL up again.
            return Err(DpdkError::new(
                format!("rte_eal_init: unexpected arguments after the EAL options: {rest:?}"),
                neg(dpdk_sys::EINVAL),
            ));
        }
        Ok(eal)
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the EAL was initialised by Eal::init and this is the only Eal value, so cleanup
        // runs once. Its result is ignored: there is nothing left to do if it fails.
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
    }
}

/// The TSC (cycle counter) now. Cheap, monotonic on one core; see [`tsc_hz`] for its unit.
#[inline(always)]
pub fn tsc() -> u64 {
    // RDTSC inline: DPDK's rte_get_tsc_cycles is a static inline reached through an out-of-line
    // wrapper, a call the generator paid on every packet.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC reads the CPU's time-stamp counter; no memory is touched.
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the CPU's time-stamp counter; no memory is touched.
    unsafe {
        dpdk_sys::rte_get_tsc_cycles()
    }
}

/// TSC ticks per second, as measured by the EAL (0 before [`Eal::init`]).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL computed at init; returns 0 before init, never faults.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// The DPDK version string, e.g. `"DPDK 22.11.11"`. Does not need the EAL.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    let p = unsafe { dpdk_sys::rte_version() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: p is non-null and points to a static NUL-terminated string (see above).
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_dpdk() {
        let v = version();
        assert!(v.starts_with("DPDK "), "{v}");
    }
}
