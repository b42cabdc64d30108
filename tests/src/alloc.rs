//! A counting global allocator, so a test can assert that processing a vector allocates
//! nothing after warm-up.
//!
//! [`CountingAlloc`] wraps [`std::alloc::System`] and counts, per thread, every allocation,
//! reallocation, deallocation and the bytes requested. Counters are thread-local, so tests
//! running in parallel in one binary do not see each other's allocations. A test binary
//! installs it once with [`install_counting_allocator!`](crate::install_counting_allocator)
//! and measures a closure with [`allocations_during`]:
//!
//! ```
//! rvs_testkit::install_counting_allocator!();
//!
//! fn main() {
//!     let mut scratch = Vec::with_capacity(64);
//!     let ((), n) = rvs_testkit::alloc::allocations_during(|| scratch.extend_from_slice(&[1u8; 64]));
//!     assert_eq!(n, 0, "filling reserved capacity allocates nothing");
//!     let (_v, n) = rvs_testkit::alloc::allocations_during(|| vec![0u8; 10]);
//!     assert_eq!(n, 1);
//! }
//! ```
//!
//! [`allocations_during`] panics when the counting allocator is not the global allocator of
//! the binary, so a forgotten install cannot make a zero-allocation test pass vacuously.
//!
//! This is the only module of the kit with `unsafe` code: implementing [`GlobalAlloc`] is
//! unsafe by definition.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts of one thread's allocator calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocStats {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocs: u64,
    /// `realloc` calls.
    pub reallocs: u64,
    /// `dealloc` calls.
    pub deallocs: u64,
    /// Bytes requested by `alloc`, `alloc_zeroed` and `realloc` (new sizes).
    pub bytes: u64,
}

impl AllocStats {
    /// Calls that obtained memory: allocations plus reallocations.
    pub fn allocations(&self) -> u64 {
        self.allocs + self.reallocs
    }
    fn minus(self, before: AllocStats) -> AllocStats {
        AllocStats {
            allocs: self.allocs - before.allocs,
            reallocs: self.reallocs - before.reallocs,
            deallocs: self.deallocs - before.deallocs,
            bytes: self.bytes - before.bytes,
        }
    }
}

thread_local! {
    // `const` initialisation without a destructor: reading these never allocates, so the
    // allocator can touch them without recursing into itself.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static REALLOCS: Cell<u64> = const { Cell::new(0) };
    static DEALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn bump(c: &'static std::thread::LocalKey<Cell<u64>>, d: u64) {
    // `try_with`: a thread being torn down may still free memory after its locals are gone.
    let _ = c.try_with(|c| c.set(c.get().wrapping_add(d)));
}

/// The global allocator that counts. Install it with
/// [`install_counting_allocator!`](crate::install_counting_allocator).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract (layouts, pointer provenance, alignment) is `System`'s; the only
// extra work is adding to thread-local `Cell`s, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS, 1);
        bump(&BYTES, layout.size() as u64);
        // SAFETY: same contract as ours; the caller guarantees a non-zero-size layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS, 1);
        bump(&BYTES, layout.size() as u64);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(&DEALLOCS, 1);
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump(&REALLOCS, 1);
        bump(&BYTES, new_size as u64);
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`; the
        // caller guarantees `new_size` is valid for it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Declare [`CountingAlloc`] the global allocator of this binary (use once, at the top level
/// of an integration test file or a bench).
#[macro_export]
macro_rules! install_counting_allocator {
    () => {
        #[global_allocator]
        static RVS_TESTKIT_COUNTING_ALLOC: $crate::alloc::CountingAlloc = $crate::alloc::CountingAlloc;
    };
}

/// This thread's counts so far.
pub fn stats() -> AllocStats {
    AllocStats {
        allocs: ALLOCS.with(Cell::get),
        reallocs: REALLOCS.with(Cell::get),
        deallocs: DEALLOCS.with(Cell::get),
        bytes: BYTES.with(Cell::get),
    }
}

/// True when [`CountingAlloc`] is the binary's global allocator (a probe allocation moved
/// this thread's counter).
pub fn is_installed() -> bool {
    let before = ALLOCS.with(Cell::get);
    let probe = std::hint::black_box(Box::new(0u64));
    drop(probe);
    ALLOCS.with(Cell::get) != before
}

/// Run `f` and count what it asked of the allocator on this thread.
///
/// # Panics
///
/// When [`CountingAlloc`] is not installed (the count would be meaningless).
pub fn stats_during<R>(f: impl FnOnce() -> R) -> (R, AllocStats) {
    assert!(
        is_installed(),
        "the counting allocator is not installed: add rvs_testkit::install_counting_allocator!() to the test binary"
    );
    let before = stats();
    let r = f();
    let after = stats();
    (r, after.minus(before))
}

/// Run `f` and return its result with the number of allocations and reallocations it made on
/// this thread.
///
/// # Panics
///
/// When [`CountingAlloc`] is not installed.
pub fn allocations_during<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let (r, s) = stats_during(f);
    (r, s.allocations())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The library's own test binary does not install the counting allocator.
    #[test]
    fn not_installed_is_detected() {
        assert!(!is_installed());
        let r = std::panic::catch_unwind(|| allocations_during(|| 1));
        assert!(r.is_err(), "measuring without the allocator must panic, not report 0");
    }

    #[test]
    fn stats_subtract() {
        let a = AllocStats {
            allocs: 5,
            reallocs: 2,
            deallocs: 3,
            bytes: 100,
        };
        let b = AllocStats {
            allocs: 1,
            reallocs: 1,
            deallocs: 1,
            bytes: 10,
        };
        let d = a.minus(b);
        assert_eq!(
            (d.allocs, d.reallocs, d.deallocs, d.bytes, d.allocations()),
            (4, 1, 2, 90, 5)
        );
    }
}
