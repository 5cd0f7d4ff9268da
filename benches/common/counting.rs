//! A global allocator that counts the bytes currently allocated, for benchmarks that
//! report the memory a structure holds exactly (resident memory would include freed pages
//! the allocator keeps). A benchmark that declares this module uses it for everything.
//! Counting can be paused while something is timed: on two cores, threads that allocate
//! at once contend for the one counter, which would slow what is measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

struct Counting;

/// Signed: memory allocated while paused may be freed while counting.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static PAUSED: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !PAUSED.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !PAUSED.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated and not yet freed (while counting): take it before and after.
pub fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The bytes allocated since `live_bytes` was `before` and still held.
pub fn held_since(before: isize) -> usize {
    (live_bytes() - before).max(0) as usize
}

/// Pauses counting (`false`) while something is timed, or resumes it.
#[allow(dead_code)] // not every benchmark pauses
pub fn count(on: bool) {
    PAUSED.store(!on, Ordering::Relaxed);
}
