//! CPU and memory hints for the fast path: cache-line prefetch and transparent huge pages.
//!
//! Both are hints only: they never change what memory holds, so they are safe to offer to the
//! pure core. They are not DPDK (an x86 intrinsic and `madvise`), so they live here and the core
//! builds without DPDK. Besides `src/dpdk/`, this is the one file allowed `unsafe`: three blocks,
//! each with its `// SAFETY:` argument.

/// Ask the CPU to bring the cache line holding `r` into every cache level (a hint: it never
/// faults, even for memory that is not mapped, and it changes nothing).
#[inline(always)]
pub fn prefetch<T: ?Sized>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is part of SSE, which every x86_64 CPU has; a prefetch reads nothing
    // the program can observe and never faults. `r` is a valid reference besides.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Prefetch every cache line `r` overlaps (a value of 48 bytes straddles two lines in one slot
/// out of two of an array).
#[inline(always)]
pub fn prefetch_all<T>(r: &T) {
    let start = r as *const T as usize;
    let last = start + std::mem::size_of::<T>().max(1) - 1;
    let mut line = start & !63;
    while line <= last {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `prefetch`: a prefetch of any address is architecturally harmless, and
        // these lines all overlap `r` besides.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
        }
        line += 64;
    }
}

/// Ask the kernel to back the whole allocation of `v` (its capacity, not just its length) with
/// transparent huge pages where it can: one TLB entry then covers 2 MiB of a large flow table
/// instead of 4 KiB. Only the 2 MiB-aligned part inside the allocation is advised. Returns false
/// when there is no such part or the kernel refused (THP off, or an old kernel); either way the
/// memory works as before.
pub fn advise_huge_pages<T>(v: &Vec<T>) -> bool {
    const HUGE: usize = 2 << 20;
    let start = v.as_ptr() as usize;
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
    let Some(end) = start.checked_add(bytes) else {
        return false;
    };
    let first = start.div_ceil(HUGE) * HUGE;
    let last = end / HUGE * HUGE;
    if last <= first {
        return false;
    }
    // SAFETY: madvise(MADV_HUGEPAGE) only changes how the kernel backs pages of a range; the
    // range lies inside `v`'s own allocation, which stays mapped while `v` lives, and its
    // contents are unchanged.
    let rc = unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_leave_memory_as_it_was() {
        let mut v: Vec<u64> = Vec::with_capacity(1 << 20); // 8 MiB: holds aligned huge pages
        v.extend(0..1000);
        prefetch(&v[10]);
        let _ = advise_huge_pages(&v);
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64));
        assert!(!advise_huge_pages(&Vec::<u8>::with_capacity(16)));
    }
}
