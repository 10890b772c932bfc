//! The synchronisation the cross-thread paths use (`remote.rs`: the Remote
//! queue, its wake and the graveyard; `run.rs`: the running loop and
//! `run_until_complete`'s waker; `spawn.rs`: `Remote::spawn`'s oneshot;
//! `task.rs`: the task being polled): std's, or loom's under `--cfg loom` so
//! that `cargo xtask loom` model-checks that code as it is. The types and
//! functions are the same in both builds; only where they come from
//! differs. `Arc` is for the loop's `Shared` only (loom's tracks the
//! synchronisation of the last drop, which may happen on any thread); values
//! handed to std APIs (`Wake`, `Arc<dyn Clock>`) keep std's. (The Remote queue, a `concurrent_queue::ConcurrentQueue`,
//! switches to loom by itself under `--cfg loom`.)

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Thread identity: loom runs its model threads on one OS thread, so under
/// loom only its own ids tell them apart.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::ThreadId;
    #[cfg(not(loom))]
    pub(crate) use std::thread::ThreadId;

    /// Lets other threads run (a spin-wait's pause; loom's lets the model
    /// schedule another thread).
    #[inline]
    pub(crate) fn yield_now() {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        std::thread::yield_now();
    }

    /// The calling thread's id.
    #[inline]
    pub(crate) fn current_id() -> ThreadId {
        #[cfg(loom)]
        return loom::thread::current().id();
        #[cfg(not(loom))]
        return std::thread::current().id();
    }
}

/// Declares a thread-local: std's `thread_local!`, or loom's under loom
/// (std's would be shared by every model thread). The initialiser must be a
/// `const`-evaluable expression.
macro_rules! thread_local_cell {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        #[cfg(not(loom))]
        ::std::thread_local! {
            $(#[$attr])* static $name: $t = const { $init };
        }
        #[cfg(loom)]
        ::loom::thread_local! {
            $(#[$attr])* static $name: $t = $init;
        }
    };
}
pub(crate) use thread_local_cell;
