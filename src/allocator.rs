//! The allocator of ferd's binary, examples and benches: mimalloc, told to keep the memory a
//! process frees for its next allocations (the `mimalloc` feature, on by default).
//!
//! A training step or an attack allocates and frees the same large activations over and over.
//! The system allocator, and mimalloc at its defaults (mimalloc 3 returns memory to the OS once
//! it has been free for a second, `purge_delay`), hand the memory back, and every step faults
//! it in again: the kernel
//! zeroes each page on its first touch. On a MobileNet-V2 train step that was 72,000 page faults
//! in 12 s and a fifth of the time in the kernel's `clear_page` (`perf`). Kept, the memory is
//! reused and the faults stop after the first step; the price is that the process keeps its peak
//! memory until it exits, which suits a process that runs one job. `docs/performance.md` has the
//! measurements.
//!
//! A library does not choose the allocator of the program it is linked into: a binary opts in,
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

use mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_e` (`mimalloc.h`, the same in
/// mimalloc 2 and 3), which `libmimalloc-sys` does not name.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `purge_delay = -1`: never return freed memory to the OS (mimalloc's own value for "no
/// purging at all").
const NEVER: std::ffi::c_long = -1;

/// Whether [`keep_freed_memory`] has run in this process.
static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// Sets mimalloc's `purge_delay` to never; idempotent, and cheap once done.
fn keep_freed_memory() {
    if !CONFIGURED.load(Ordering::Relaxed) {
        // SAFETY: setting an option is a store into mimalloc's option table; it neither
        // allocates nor touches memory handed out. Two threads racing here store the same value.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, NEVER) };
        CONFIGURED.store(true, Ordering::Relaxed);
    }
}

/// mimalloc that keeps freed memory mapped for reuse: see the module's documentation. It
/// configures itself at the process's first allocation, before anything is freed.
pub struct Allocator;

// SAFETY: every call goes to mimalloc's own `GlobalAlloc`, unchanged; the option is set first.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        keep_freed_memory();
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        keep_freed_memory();
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`PURGE_DELAY`] names the option whose default is 1000 ms in mimalloc 3 (`options.c`;
    /// the crate builds mimalloc 3 unless its `v2` feature is on), and the allocator sets it to
    /// never. (This test binary keeps the system allocator, so the option is still at its
    /// default when the test starts.)
    #[test]
    fn the_purge_delay_is_set_to_never() {
        // SAFETY: reading and writing an option, as above.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
        // SAFETY: an allocation and its release through the allocator, with its own layout.
        unsafe {
            let layout = Layout::from_size_align(64, 8).unwrap();
            let p = Allocator.alloc(layout);
            assert!(!p.is_null());
            Allocator.dealloc(p, layout);
        }
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) },
            NEVER
        );
    }
}
