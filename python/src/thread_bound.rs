//! [`ThreadBound`]: loop state owned by a Python object, used only on the
//! loop's thread and dropped safely on any.
//!
//! evloop's loop is `Rc`/`RefCell` state, not `Send`. Seven Python objects
//! own some of it: `_CoreLoop`, `TimerHandle`, `_StreamTransport`,
//! `_DatagramTransport`, `_Server`, `_SubprocessTransport` and `_Pending`.
//! Python lets go of an object on whatever thread drops its last reference
//! (or runs a GC pass), so each keeps that state in a `ThreadBound`:
//!
//! - Use: [`ThreadBound::get`] hands the state out on the loop's thread
//!   only; anywhere else it is asyncio's RuntimeError, not a panic. The cost
//!   is one thread-id comparison per call, as pyo3's `unsendable` check.
//! - Drop: on the loop's thread, there and then. On another thread, there
//!   and then too while the loop does not run; while it runs, the value is
//!   posted to the loop with `call_soon_threadsafe` and dropped by the loop
//!   between two callbacks.
//!
//! # Why this is sound
//!
//! 1. Every access to a loop's state, on any thread, is made with the GIL
//!    held, but for the poll below. Python objects are used and freed with
//!    the GIL (methods, `tp_dealloc`, `tp_traverse`, `tp_clear`), and the
//!    loop's callbacks run inside `_run_forever`, a method, which holds it.
//! 2. The exception: the poll that may block. evloop-core calls it through
//!    `around_blocking_poll` (`wait` in evloop-core's run.rs, for non-zero
//!    timeouts), and `_CoreLoop`'s hook runs it under `allow_threads`. That
//!    poll is a `Send` closure: it touches the reactor's `Poller` (`Send +
//!    Sync`) and the `Events` buffer the core's `poll` borrowed mutably
//!    before the GIL was released, nothing else.
//! 3. So the GIL orders every other access: another thread's comes before
//!    or after the owner thread's, never during one (no data race). It can
//!    only come where the owner thread lets go of the GIL: while Python code
//!    runs (the switch interval, a blocking call), where that thread could
//!    run the same drop itself (a `__del__`, a GC pass) and which evloop's
//!    `RefCell`s already allow for; or around the poll.
//! 4. A value is dropped on another thread on the spot only while its loop
//!    does not run ([`RemoteLoop::is_running`], set and cleared by
//!    `_run_forever` with the GIL held), so not during the poll. If the drop
//!    runs Python code, the owner thread may start the loop meanwhile; its
//!    poll still touches only what 2 says.
//! 5. While the loop runs, the drop is posted to it: it then happens on the
//!    owner thread like any other drop there, so code that checks which
//!    thread it is on (async-task's local tasks) sees the loop's. The posted
//!    value is `Send` by this same argument: it is dropped by the loop's
//!    thread, or by `close` (with the GIL, the loop stopped for good) on the
//!    thread that closes it, or here if the post is refused (closed).
//! 6. `_CoreLoop` is never dropped while its loop runs (`run_forever` holds
//!    a reference to it), so its state is always dropped on the spot.
//!
//! The one check of identity that matters is async-task's: a local task's
//! future may only be dropped on its thread (it panics elsewhere). So a
//! loop's `close` drops its pending tasks' futures there and then
//! (`bridge::drop_tasks_at_close`), and a `_Pending` that outlives its loop
//! holds a finished task. An unclosed `_CoreLoop` dropped elsewhere is
//! closed there ([`LoopBound::drop_elsewhere`], as asyncio's `__del__`
//! closes it): it has no tasks, as each holds an asyncio future, which
//! holds the Python loop that is going away.

use std::mem::ManuallyDrop;
use std::thread::{self, ThreadId};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::core_loop::RemoteLoop;

thread_local! {
    /// This thread's id, without `thread::current()`'s reference count
    /// traffic on each loop call.
    static THREAD_ID: ThreadId = thread::current().id();
}

/// The calling thread's id.
pub(crate) fn current_thread() -> ThreadId {
    // During the thread's teardown the cache may be gone already.
    THREAD_ID
        .try_with(|id| *id)
        .unwrap_or_else(|_| thread::current().id())
}

/// asyncio's message for a loop method called off the loop's thread.
pub(crate) const WRONG_THREAD: &str =
    "Non-thread-safe operation invoked on an event loop other than the current one";

/// A [`ThreadBound`] value was asked for on another thread than its loop's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WrongThread;

impl From<WrongThread> for PyErr {
    /// asyncio's RuntimeError (as its loops raise in debug mode), saying how
    /// to reach the loop: evloop's state cannot be touched elsewhere at all.
    fn from(_: WrongThread) -> PyErr {
        PyRuntimeError::new_err(format!(
            "{WRONG_THREAD} (evloop's loop belongs to the thread that created \
             it; use call_soon_threadsafe from other threads)"
        ))
    }
}

/// Loop state kept in a [`ThreadBound`]: how to reach its loop when it is
/// dropped on another thread.
pub(crate) trait LoopBound: Sized + 'static {
    /// The loop's thread-safe half, asked (with the GIL held) only when the
    /// value is dropped on another thread. `None` for a value never dropped
    /// while its loop runs (`_CoreLoop`'s own state).
    fn remote(&self, py: Python<'_>) -> Option<RemoteLoop>;

    /// Drops the value on another thread while its loop does not run (or
    /// is closed), with the GIL held. A plain drop unless overridden.
    fn drop_elsewhere(self) {
        drop(self);
    }
}

/// A value of a loop's thread (see the module documentation): `get` on that
/// thread, dropped safely on any.
///
/// # Invariant
///
/// `owner` is the thread of the loop whose state `value` holds (thread ids
/// are never reused, so a thread that ended has no heir); `value` is
/// initialised until `drop` takes it.
pub(crate) struct ThreadBound<T: LoopBound> {
    owner: ThreadId,
    value: ManuallyDrop<T>,
}

// SAFETY: `T` is loop state (`Rc`, `RefCell`: not `Send`), shared with the
// loop and unsound to touch from two threads at once. A `ThreadBound`
// hands it out on `owner`, the loop's thread, only (`get`, `get_mut`), and
// `Drop` drops it with the GIL held: on `owner`; on another thread only
// while the loop does not run, when the owner thread touches the loop's
// state with the GIL only, so never at the same time (module
// documentation, 1 to 4); else posted to and dropped on `owner` (5).
// Moving a `ThreadBound` to another thread moves its bytes, nothing more.
unsafe impl<T: LoopBound> Send for ThreadBound<T> {}

// SAFETY: a shared reference reaches `T` on `owner` only (`get` refuses
// elsewhere) and dropping needs `&mut`, so sharing one across threads
// shares no `T`.
unsafe impl<T: LoopBound> Sync for ThreadBound<T> {}

impl<T: LoopBound> ThreadBound<T> {
    /// `value`, bound to `owner`, the thread of the loop it belongs to.
    pub(crate) fn new(owner: ThreadId, value: T) -> Self {
        ThreadBound {
            owner,
            value: ManuallyDrop::new(value),
        }
    }

    /// The value, on its loop's thread.
    ///
    /// # Errors
    /// [`WrongThread`] on any other thread.
    #[inline]
    pub(crate) fn get(&self) -> Result<&T, WrongThread> {
        if current_thread() == self.owner {
            Ok(&self.value)
        } else {
            Err(WrongThread)
        }
    }

    /// The value, mutably, on its loop's thread.
    ///
    /// # Errors
    /// [`WrongThread`] on any other thread.
    #[inline]
    pub(crate) fn get_mut(&mut self) -> Result<&mut T, WrongThread> {
        if current_thread() == self.owner {
            Ok(&mut self.value)
        } else {
            Err(WrongThread)
        }
    }
}

impl<T: LoopBound> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        // SAFETY: taken once, here; `self.value` is not used again.
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        if current_thread() == self.owner {
            return drop(value);
        }
        // Held already when Python frees the owning object.
        Python::with_gil(|py| drop_elsewhere(py, self.owner, value));
    }
}

/// Drops `value` of `owner`'s loop on this other thread: on the spot unless
/// the loop runs, else on the loop's thread (module documentation, 4-5).
fn drop_elsewhere<T: LoopBound>(py: Python<'_>, owner: ThreadId, value: T) {
    let remote = value.remote(py);
    match remote {
        // Not closed either, so the post is taken; closed is final, so a
        // refused post (which drops the closure, so the parcel, here) comes
        // back through the other arm.
        Some(remote) if remote.is_running() && !remote.is_closed() => {
            let parcel = ThreadBound::new(owner, value);
            let _ = remote.call_soon_threadsafe(move || Python::with_gil(|_| drop(parcel)));
        }
        _ => value.drop_elsewhere(),
    }
}

impl<T: LoopBound + std::fmt::Debug> std::fmt::Debug for ThreadBound<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.get() {
            Ok(value) => value.fmt(f),
            Err(WrongThread) => f.write_str("ThreadBound(<another thread's>)"),
        }
    }
}
