//! Allocation budget of the hot path: in steady state `call_soon` makes at
//! most one heap allocation (the shared callback node; the ready queue's
//! capacity is reused), and running the callbacks allocates nothing.
//!
//! A counting `#[global_allocator]` counts allocations made by the current
//! thread only, so the test harness's own threads do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;

use evloop_core::EventLoop;

/// The system allocator, counting this thread's allocations while armed.
struct Counting;

thread_local! {
    /// Whether allocations on this thread are being counted. `const` and
    /// `Copy`, so reading it never allocates or registers a destructor.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// Allocations (including reallocations) counted on this thread.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note_alloc() {
    // `try_with`: the thread-locals may already be gone while a thread exits.
    let armed = ARMED.try_with(Cell::get).unwrap_or(false);
    if armed {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counting touches only
// `const`-initialised `Cell` thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: forwarded as is; `ptr` came from this allocator, which is `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts the allocations `f` makes on this thread.
fn count_allocs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCS.with(|n| n.set(0));
    ARMED.with(|a| a.set(true));
    let out = f();
    ARMED.with(|a| a.set(false));
    (out, ALLOCS.with(Cell::get))
}

const N: usize = 1_000;

/// Schedules `N` callbacks that bump `hits` and one that stops the loop.
fn schedule_batch(lp: &EventLoop, hits: &Rc<Cell<usize>>) {
    for _ in 0..N {
        let hits = hits.clone();
        // Dropping the handle does not cancel the callback.
        let _ = lp.call_soon(move || hits.set(hits.get() + 1)).unwrap();
    }
}

#[test]
fn call_soon_allocates_at_most_once_and_running_allocates_nothing() {
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    let hits = Rc::new(Cell::new(0));

    // Warm up: grow the ready queue to its steady-state capacity and let every
    // lazy, one-time allocation (thread-locals, tracing callsites) happen.
    for _ in 0..3 {
        schedule_batch(&lp, &hits);
        lp.stop();
        lp.run_forever().unwrap();
    }
    assert_eq!(hits.get(), 3 * N);

    let ((), scheduling) = count_allocs(|| schedule_batch(&lp, &hits));
    assert!(
        scheduling <= N as u64,
        "{N} call_soon calls made {scheduling} allocations (budget: one each)"
    );
    assert!(scheduling > 0, "the counting allocator is not counting");

    lp.stop();
    let (ran, running) = count_allocs(|| lp.run_forever());
    ran.unwrap();
    assert_eq!(hits.get(), 4 * N, "every callback ran exactly once");
    assert_eq!(
        running, 0,
        "running {N} non-allocating callbacks made {running} allocations"
    );

    lp.close().unwrap();
}
