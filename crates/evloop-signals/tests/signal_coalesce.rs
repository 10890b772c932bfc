//! Deliveries before the loop looks coalesce into one callback run (as in
//! asyncio), and a signal whose wake-up byte a full pipe dropped still runs
//! its callback.

mod support;

use std::cell::Cell;
use std::rc::Rc;

use evloop_core::EventLoop;
use evloop_signals::{add_signal_handler, remove_signal_handler};

/// The capacity of a new pipe (what the wake-up pipe has).
fn pipe_capacity() -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let (read, _write) = rustix::pipe::pipe().unwrap();
        rustix::pipe::fcntl_getpipe_size(&read).unwrap()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        1 << 16
    }
}

fn counter(lp: &EventLoop, signum: i32) -> Rc<Cell<u32>> {
    let runs = Rc::new(Cell::new(0));
    let count = runs.clone();
    add_signal_handler(lp, signum, move || count.set(count.get() + 1)).unwrap();
    runs
}

/// Runs `lp` for a few iterations: enough for the reader and the callbacks it
/// schedules.
fn run_iterations(lp: &EventLoop, n: usize) {
    for _ in 0..n {
        lp.stop();
        lp.run_forever().unwrap();
    }
}

#[test]
fn repeated_deliveries_coalesce_and_a_full_pipe_loses_no_signal() {
    let lp = EventLoop::new().unwrap();
    let usr1 = counter(&lp, libc::SIGUSR1);
    let usr2 = counter(&lp, libc::SIGUSR2);

    // `raise` delivers to this thread before returning: three deliveries,
    // three bytes, one pending flag.
    for _ in 0..3 {
        support::raise(libc::SIGUSR1);
    }
    run_iterations(&lp, 3);
    assert_eq!(usr1.get(), 1);

    // Fill the pipe with SIGUSR1 bytes, so the SIGUSR2 byte is dropped; its
    // pending flag still gets it handled.
    for _ in 0..=pipe_capacity() {
        support::raise(libc::SIGUSR1);
    }
    support::raise(libc::SIGUSR2);
    run_iterations(&lp, 3);
    assert_eq!(usr1.get(), 2);
    assert_eq!(usr2.get(), 1);

    assert!(remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
    assert!(remove_signal_handler(&lp, libc::SIGUSR2).unwrap());
    lp.close().unwrap();
}
