//! Helpers shared by the signal tests. Signal state is process-global, so
//! every `tests/signal_*.rs` file is its own binary (its own process).
#![allow(dead_code, unreachable_pub)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use evloop_core::EventLoop;

/// How long a test may wait for a signal before it fails instead of hanging.
pub const GUARD: Duration = Duration::from_secs(10);

/// Stops `lp` after [`GUARD`]; the returned flag says whether it fired.
pub fn guard(lp: &EventLoop) -> Rc<Cell<bool>> {
    let fired = Rc::new(Cell::new(false));
    let (flag, stopper) = (fired.clone(), lp.clone());
    lp.call_later(GUARD, move || {
        flag.set(true);
        stopper.stop();
    })
    .unwrap();
    fired
}

/// Sends `signum` to the calling thread; the handler has run when this returns.
pub fn raise(signum: i32) {
    // SAFETY: `raise` has no memory-safety preconditions; the tests install a
    // handler (or expect the default action) before calling it.
    let rc = unsafe { libc::raise(signum) };
    assert_eq!(rc, 0, "raise({signum}) failed");
}

/// Sends `signum` to the whole process (any thread may take it).
pub fn kill_self(signum: i32) {
    let signal = rustix::process::Signal::from_named_raw(signum).expect("a named signal");
    rustix::process::kill_process(rustix::process::getpid(), signal).unwrap();
}

/// The current disposition of `signum` (`SIG_DFL`, `SIG_IGN` or a handler).
pub fn disposition(signum: i32) -> libc::sighandler_t {
    // SAFETY: all-zero bytes are a valid `sigaction`; it is only written to.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is valid for writes.
    let rc = unsafe { libc::sigaction(signum, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "sigaction({signum}) query failed");
    old.sa_sigaction
}

/// True if `signum` has its default disposition.
pub fn is_default(signum: i32) -> bool {
    disposition(signum) == libc::SIG_DFL
}

// Not every test binary that includes this module counts fds.
#[allow(unused_imports)]
pub use evloop_testkit::fd_count as open_fds;

/// The calling thread's kernel id.
#[cfg(target_os = "linux")]
pub fn gettid() -> i32 {
    // SAFETY: `gettid` has no preconditions.
    unsafe { libc::gettid() }
}

/// Waits until thread `tid` of this process is asleep in the kernel (state
/// `S`), i.e. an event loop on it is blocked in poll. Polls the thread's
/// state, yielding in between; gives up (returns false) after many tries.
#[cfg(target_os = "linux")]
pub fn wait_until_sleeping(tid: i32) -> bool {
    let path = format!("/proc/self/task/{tid}/stat");
    for _ in 0..1_000_000 {
        let stat = std::fs::read_to_string(&path).unwrap();
        // The state follows the parenthesised command name.
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.as_bytes()[0]);
        if state == Some(b'S') {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// Elsewhere thread states are not readable: 0.
#[cfg(not(target_os = "linux"))]
pub fn gettid() -> i32 {
    0
}

/// Elsewhere thread states are not readable: assume asleep.
#[cfg(not(target_os = "linux"))]
pub fn wait_until_sleeping(_tid: i32) -> bool {
    true
}
