//! Steady-state echo costs no heap allocation on the loop's thread: the
//! read lands in the loop's reusable buffer, `data_received` borrows it, and
//! `write` goes straight to the socket. A counting `#[global_allocator]`
//! counts the loop thread's allocations between two markers that the client
//! thread posts around its measured round trips.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use evloop_core::EventLoop;

use support::{echo_server, Fixture};

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    /// The size of the first allocation counted, to name the culprit.
    static FIRST_SIZE: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|n| {
            if n.get() == 0 {
                let _ = FIRST_SIZE.try_with(|s| s.set(size));
            }
            n.set(n.get() + 1);
        });
    }
}

// SAFETY: every method forwards to `System` unchanged; the counting touches
// only `const`-initialised `Cell` thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        // SAFETY: forwarded as is; `ptr` came from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WARM_UP: usize = 1_000;
const MEASURED: usize = 5_000;
const SIZE: usize = 1024;

fn round_trips(stream: &mut TcpStream, count: usize) {
    let message = [0x5au8; SIZE];
    let mut echo = [0u8; SIZE];
    for _ in 0..count {
        stream.write_all(&message).unwrap();
        stream.read_exact(&mut echo).unwrap();
        assert_eq!(echo, message);
    }
}

/// Allocations counted between the markers; `u64::MAX` until measured.
static MEASURED_ALLOCS: AtomicU64 = AtomicU64::new(u64::MAX);
static FIRST_ALLOC_SIZE: AtomicUsize = AtomicUsize::new(0);

#[test]
fn steady_state_echo_round_trip_allocates_nothing_on_the_loop_thread() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = server.sockets()[0].as_inet().unwrap().port();
    let remote = fx.lp.remote();
    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        round_trips(&mut stream, WARM_UP);
        remote
            .call_soon_threadsafe(|| {
                ALLOCS.with(|n| n.set(0));
                ARMED.with(|a| a.set(true));
            })
            .unwrap();
        round_trips(&mut stream, MEASURED);
        // Keep the connection open until the count is taken: its closing is
        // not steady state.
        let (counted, wait_counted) = std::sync::mpsc::channel();
        remote
            .call_soon_threadsafe(move || {
                ARMED.with(|a| a.set(false));
                MEASURED_ALLOCS.store(ALLOCS.with(Cell::get), Ordering::SeqCst);
                FIRST_ALLOC_SIZE.store(FIRST_SIZE.with(Cell::get), Ordering::SeqCst);
                let _ = counted.send(());
                EventLoop::current().unwrap().stop();
            })
            .unwrap();
        wait_counted.recv().unwrap();
        drop(stream);
    });
    let guard = {
        let lp = fx.lp.clone();
        fx.lp
            .call_later(Duration::from_secs(60), move || lp.stop())
            .unwrap()
    };
    fx.lp.run_forever().unwrap();
    guard.cancel();
    client.join().unwrap();
    let allocations = MEASURED_ALLOCS.load(Ordering::SeqCst);
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations on the loop thread over {MEASURED} echo round trips \
         (the first of {} bytes)",
        FIRST_ALLOC_SIZE.load(Ordering::SeqCst)
    );
    support::close_server(&fx, &server);
    fx.finish();
}
