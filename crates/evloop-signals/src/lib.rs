//! Unix signal handlers for the evloop event loop: asyncio's
//! `add_signal_handler` / `remove_signal_handler` (docs/behaviour.md 12).
//!
//! **Owns:** [`add_signal_handler`], [`remove_signal_handler`],
//! [`signal_name`]; the process-global table of which loop handles which
//! signal; each loop's wake-up pipe and its reader; restoring `SIG_DFL` when a
//! handler is removed or its loop closes.
//!
//! **Does not own:** the loop, its ready queue and exception handler
//! (`evloop-core`), fd readiness (`evloop-reactor`), child reaping and
//! `SIGCHLD` policy (`evloop-process`), and the facade's method names
//! (`evloop`).
//!
//! # Implementation
//!
//! The `sigaction` handler (the crate's only `unsafe`, in `sys`) is
//! async-signal-safe: it sets the signal's pending flag and writes the signal
//! number as one byte to the owning loop's wake-up pipe (non-blocking,
//! close-on-exec). The loop watches the pipe's read end through an
//! [`FdClaim`](evloop_core::FdClaim), so a loop blocked in poll wakes up; the
//! reader drains the pipe and `call_soon`s the callback of each signal that
//! arrived. Callbacks therefore run on the loop's thread, never inside the
//! signal handler, and a panicking callback goes to the loop's exception
//! handler like any other callback.
//!
//! Semantics, as in asyncio:
//!
//! * Several deliveries of one signal before the loop gets to it coalesce
//!   into one callback run; every delivery is followed by at least one run
//!   (if the pipe is full the byte is dropped, but the pending flag is not).
//! * Adding a handler again replaces the callback; removing (or replacing) it
//!   after the signal arrived but before the callback ran means the removed
//!   callback does not run.
//! * Removing a handler, or closing its loop, restores `SIG_DFL` (for
//!   `SIGINT` the default interrupt behaviour). Note that Rust programs start
//!   with `SIGPIPE` ignored; after a handler for `SIGPIPE` is removed it is
//!   `SIG_DFL` (terminate), not ignored.
//! * asyncio allows signal handlers only on the main thread's loop. Here any
//!   thread's loop may have them, but each signal belongs to one loop at a
//!   time: adding a handler for a signal another live loop handles fails with
//!   [`Error::InvalidArgument`] until that loop removes it or closes.
//!
//! # Examples
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use evloop_core::EventLoop;
//! use evloop_signals::{add_signal_handler, remove_signal_handler, signal_name};
//!
//! const SIGTERM: i32 = 15; // The same number on every Unix.
//! let lp = EventLoop::new()?;
//! let seen = Rc::new(Cell::new(0));
//! let (counter, stopper) = (seen.clone(), lp.clone());
//! add_signal_handler(&lp, SIGTERM, move || {
//!     counter.set(counter.get() + 1);
//!     stopper.stop(); // A graceful shutdown.
//! })?;
//! // Another process signals us; the loop sleeps in poll until it arrives.
//! std::process::Command::new("kill")
//!     .args(["-TERM", &std::process::id().to_string()])
//!     .status()?;
//! lp.run_forever()?;
//! assert_eq!(seen.get(), 1);
//! assert_eq!(signal_name(SIGTERM), "SIGTERM");
//! assert!(remove_signal_handler(&lp, SIGTERM)?);
//! assert!(!remove_signal_handler(&lp, SIGTERM)?);
//! lp.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

mod name;
mod registry;
mod sync;
#[allow(unsafe_code)]
mod sys;
mod table;

use std::cell::RefCell;
use std::rc::Rc;

use evloop_core::{Error, EventLoop};

pub use name::signal_name;

/// The signal table's protocol, for the loom models (`cargo xtask loom`);
/// only with `--cfg loom`.
#[cfg(loom)]
pub use table::{Claim, SignalTable};

use registry::Registry;

/// Calls `callback` on the loop (never inside the signal handler) each time
/// `signum` arrives; deliveries that arrive before the loop gets to them
/// coalesce into one call. Adding again replaces the previous callback.
///
/// The callback is scheduled with `call_soon` from the loop's wake-up reader,
/// so it runs even if the loop was blocked in poll; a panic in it goes to the
/// loop's exception handler and the loop goes on.
///
/// # Errors
///
/// * [`Error::Closed`] on a closed loop.
/// * [`Error::InvalidArgument`] for a number outside `1..NSIG` (`NSIG` is 65
///   on Linux), e.g. `"invalid signal number 0"`, and for a signal that
///   another live loop (on another thread) handles: `"signal 12 is handled by
///   another event loop"`.
/// * [`Error::UncatchableSignal`] for `SIGKILL` and `SIGSTOP`.
/// * [`Error::Io`] if `sigaction` refuses the signal, keeping errno (e.g.
///   `EINVAL` for 32 and 33, which glibc reserves for its threads), or if the
///   wake-up pipe cannot be created or watched.
pub fn add_signal_handler(
    event_loop: &EventLoop,
    signum: i32,
    callback: impl FnMut() + 'static,
) -> Result<(), Error> {
    if event_loop.is_closed() {
        return Err(Error::Closed);
    }
    check_range(signum)?;
    if signum == libc::SIGKILL || signum == libc::SIGSTOP {
        return Err(Error::UncatchableSignal(signum));
    }
    let registry = event_loop.extension(Registry::default);
    registry.add(event_loop, signum, Rc::new(RefCell::new(callback)))
}

/// Removes the handler of `signum` and restores the default disposition
/// (`SIG_DFL`; for `SIGINT` the default interrupt behaviour). Returns
/// `Ok(false)` if no handler was set, and on a closed loop (closing removed
/// them all).
///
/// # Errors
///
/// * [`Error::InvalidArgument`] for a number outside `1..NSIG`, as asyncio's
///   `ValueError` (checked after the closed-loop case).
/// * [`Error::Io`] if `sigaction` fails to restore `SIG_DFL`; the handler is
///   removed all the same.
pub fn remove_signal_handler(event_loop: &EventLoop, signum: i32) -> Result<bool, Error> {
    if event_loop.is_closed() {
        return Ok(false);
    }
    check_range(signum)?;
    match event_loop.get_extension::<Registry>() {
        Some(registry) => registry.remove(signum),
        None => Ok(false),
    }
}

fn check_range(signum: i32) -> Result<(), Error> {
    if (1..sys::NSIG).contains(&signum) {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "invalid signal number {signum}"
        )))
    }
}
