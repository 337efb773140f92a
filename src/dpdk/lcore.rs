//! Logical cores: who am I, which cores are workers, and running a closure on a worker.
//!
//! [`launch`] boxes the closure, hands the box to `rte_eal_remote_launch` through an
//! `extern "C"` trampoline, and returns a [`LaunchHandle`] whose [`LaunchHandle::wait`] (or drop)
//! joins the worker with `rte_eal_wait_lcore`. A panic inside the closure is caught at the
//! trampoline (unwinding into C is undefined behaviour) and reported as [`LAUNCH_PANICKED`].
//!
//! Launching and waiting are main-lcore operations in DPDK, so [`launch`] refuses other threads
//! and `LaunchHandle` is not `Send`. At most one handle per worker lcore exists at a time; a
//! second launch on a busy lcore is an error (`-EBUSY`), not a silent mix-up of return values.

use std::marker::PhantomData;
use std::os::raw::{c_int, c_uint, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{neg, DpdkError, Result};

/// `rte_lcore_id()` on a thread that is not an EAL lcore.
pub const LCORE_ID_ANY: u32 = dpdk_sys::RVS_LCORE_ID_ANY;
/// "Any NUMA socket", for allocations that do not care.
pub const SOCKET_ID_ANY: i32 = dpdk_sys::RVS_SOCKET_ID_ANY;
/// What [`LaunchHandle::wait`] returns when the launched closure panicked.
pub const LAUNCH_PANICKED: i32 = i32::MIN;

const MAX_LCORE: usize = dpdk_sys::RTE_MAX_LCORE as usize;

/// One flag per lcore: a [`LaunchHandle`] for it is outstanding.
#[allow(clippy::declare_interior_mutable_const)] // only used to initialise the array below
const IDLE: AtomicBool = AtomicBool::new(false);
static LAUNCHED: [AtomicBool; MAX_LCORE] = [IDLE; MAX_LCORE];

/// The id of the calling lcore, or [`LCORE_ID_ANY`] on a non-EAL thread.
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local set by the EAL; no preconditions.
    unsafe { dpdk_sys::rte_lcore_id() }
}

/// The main lcore (the one that ran `rte_eal_init`).
pub fn main_lcore() -> u32 {
    // SAFETY: reads EAL configuration; returns 0 before init, never faults.
    unsafe { dpdk_sys::rte_get_main_lcore() }
}

/// All enabled lcores except the main one, in increasing order.
pub fn worker_lcores() -> Vec<u32> {
    let mut out = Vec::new();
    // rte_get_next_lcore starts from i + 1, so "before 0" is u32::MAX (which wraps to 0).
    let mut i: c_uint = c_uint::MAX;
    loop {
        // SAFETY: rte_get_next_lcore only reads the EAL's lcore table; any `i` is accepted and
        // it returns RTE_MAX_LCORE when there are no more.
        i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
        if i as usize >= MAX_LCORE {
            break;
        }
        out.push(i);
    }
    out
}

/// The NUMA socket of the calling lcore, or [`SOCKET_ID_ANY`] on a non-EAL thread.
pub fn socket_id() -> i32 {
    // SAFETY: reads a thread-local set by the EAL; no preconditions.
    let s = unsafe { dpdk_sys::rte_socket_id() };
    // The C function returns the int SOCKET_ID_ANY (-1) through an unsigned return type.
    i32::try_from(s).unwrap_or(SOCKET_ID_ANY)
}

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// Runs on the worker lcore: takes back the boxed closure and calls it.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Job>` leaked by `launch` for exactly this call; DPDK passes it to
    // us once, so ownership is taken back exactly once.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    catch_unwind(AssertUnwindSafe(move || (*job)())).unwrap_or(LAUNCH_PANICKED)
}

/// Run `f` on worker lcore `lcore`. Call from the main lcore. The closure's return value comes
/// back through [`LaunchHandle::wait`].
pub fn launch<F: FnOnce() -> i32 + Send + 'static>(lcore: u32, f: F) -> Result<LaunchHandle> {
    let what = format!("rte_eal_remote_launch(lcore {lcore})");
    if lcore_id() != main_lcore() {
        return Err(DpdkError::new(
            format!("{what}: launch must be called from the main lcore"),
            neg(dpdk_sys::EINVAL),
        ));
    }
    if !worker_lcores().contains(&lcore) {
        return Err(DpdkError::new(
            format!(
                "{what}: not a worker lcore of this EAL (workers: {:?})",
                worker_lcores()
            ),
            neg(dpdk_sys::EINVAL),
        ));
    }
    let slot = &LAUNCHED[lcore as usize];
    if slot.swap(true, Ordering::AcqRel) {
        return Err(DpdkError::new(
            format!("{what}: a launch on this lcore has not been waited for"),
            neg(dpdk_sys::EBUSY),
        ));
    }
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: `trampoline` matches lcore_function_t and consumes `arg` exactly once if the launch
    // succeeds; `lcore` is an enabled worker and we are on the main lcore (both checked above).
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so the worker never saw `arg`; we still own the box.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        slot.store(false, Ordering::Release);
        return Err(DpdkError::new(what, rc));
    }
    Ok(LaunchHandle {
        lcore,
        waited: false,
        _main_lcore_only: PhantomData,
    })
}

/// A closure running on a worker lcore. Dropping the handle waits for it too.
#[derive(Debug)]
#[must_use = "dropping a LaunchHandle blocks until the worker returns"]
pub struct LaunchHandle {
    lcore: u32,
    waited: bool,
    _main_lcore_only: PhantomData<*const ()>,
}

impl LaunchHandle {
    /// The worker lcore this runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Block until the closure returns, and give its return value
    /// ([`LAUNCH_PANICKED`] if it panicked).
    pub fn wait(mut self) -> i32 {
        self.join()
    }

    fn join(&mut self) -> i32 {
        if self.waited {
            return 0;
        }
        // SAFETY: we are on the main lcore (LaunchHandle is not Send and launch checked it) and
        // `lcore` is a worker we launched on.
        let rc = unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        self.waited = true;
        LAUNCHED[self.lcore as usize].store(false, Ordering::Release);
        rc
    }
}

impl Drop for LaunchHandle {
    fn drop(&mut self) {
        self.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_eal_threads_have_no_lcore() {
        // The unit-test threads are not EAL lcores.
        assert_eq!(lcore_id(), LCORE_ID_ANY);
        assert_eq!(socket_id(), SOCKET_ID_ANY);
    }

    #[test]
    fn trampoline_runs_the_closure_and_catches_panics() {
        let job: Box<Job> = Box::new(Box::new(|| 7));
        // SAFETY: the pointer is a fresh Box<Job>, consumed exactly once by the trampoline.
        let rc = unsafe { trampoline(Box::into_raw(job).cast()) };
        assert_eq!(rc, 7);
        let job: Box<Job> = Box::new(Box::new(|| panic!("worker failed")));
        // SAFETY: as above.
        let rc = unsafe { trampoline(Box::into_raw(job).cast()) };
        assert_eq!(rc, LAUNCH_PANICKED);
    }
}
