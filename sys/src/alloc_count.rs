//! A counting global allocator for benchmarks: the bytes this thread has allocated and not yet
//! freed, and how many allocations it made. Install it in a binary with
//! `#[global_allocator] static A: tulip_sys::alloc_count::Counting = Counting;` and take
//! differences of [`live_bytes`] or [`allocations`] around what is measured.
//!
//! Besides the bytes asked for, it counts what malloc really set aside for them
//! ([`live_chunk_bytes`]): on glibc, each allocation's chunk (`malloc_usable_size` plus the
//! 8-byte chunk header, at least 32 bytes, in steps of 16); elsewhere, the bytes asked for.
//!
//! Counting is off until [`enable`]: until then a call costs one relaxed load of a flag more
//! than the system allocator's, so the benchmarks that do not measure memory are not slowed.
//! Once on, it touches only const-initialised thread-local `Cell`s (no atomic read-modify-write,
//! no allocation). Memory freed by another thread than the one that
//! allocated it is counted on the freeing thread: measure single-threaded work.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The system allocator, counting per thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE_CHUNK_BYTES: Cell<isize> = const { Cell::new(0) };
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Start counting (for every thread, from their next call on).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

#[inline]
fn count(bytes: isize, allocations: u64) {
    if !counting() {
        return;
    }
    let _ = LIVE_BYTES.try_with(|n| n.set(n.get() + bytes));
    if allocations > 0 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + allocations));
    }
}

/// What malloc holds for the allocations of [`live_bytes`]: on glibc their chunks
/// (`malloc_usable_size` + 8 bytes of header each); elsewhere the same as [`live_bytes`].
pub fn live_chunk_bytes() -> isize {
    LIVE_CHUNK_BYTES.try_with(Cell::get).unwrap_or(0)
}

/// The chunk malloc made for the live allocation at `ptr` of `size` bytes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn chunk(ptr: *mut u8, _size: usize) -> isize {
    if ptr.is_null() {
        return 0;
    }
    // SAFETY: `ptr` is a live allocation of the system allocator (malloc, realloc or
    // posix_memalign under std's `System` on glibc), which `malloc_usable_size` accepts; it
    // only reads the chunk's header.
    let usable = unsafe { libc::malloc_usable_size(ptr.cast()) };
    (usable + 8) as isize
}

/// Elsewhere: the bytes asked for.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn chunk(ptr: *mut u8, size: usize) -> isize {
    if ptr.is_null() {
        0
    } else {
        size as isize
    }
}

#[inline]
fn counting() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn add_chunk(bytes: isize) {
    let _ = LIVE_CHUNK_BYTES.try_with(|n| n.set(n.get() + bytes));
}

/// Bytes this thread allocated and has not freed (negative if it freed others' memory).
pub fn live_bytes() -> isize {
    LIVE_BYTES.try_with(Cell::get).unwrap_or(0)
}

/// Allocations (and reallocations) this thread has made.
pub fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// const-initialised thread-local `Cell`s (`try_with`, so not during thread teardown), which
// never allocate, and reads the chunk size of live allocations only (`chunk`).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        // SAFETY: the caller's contract for `alloc` is passed on.
        let ptr = unsafe { System.alloc(layout) };
        if counting() {
            add_chunk(chunk(ptr, layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if counting() {
            add_chunk(chunk(ptr, layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize), 0);
        if counting() {
            // Read while `ptr` is still allocated.
            add_chunk(-chunk(ptr, layout.size()));
        }
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize, 1);
        let old = if counting() {
            chunk(ptr, layout.size())
        } else {
            0
        };
        // SAFETY: the caller's contract for `realloc` is passed on.
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if counting() && !new_ptr.is_null() {
            add_chunk(chunk(new_ptr, new_size) - old);
        }
        new_ptr
    }
}
