//! The atomics of the signal table (`table.rs`): std's, or loom's under
//! `--cfg loom` so that `cargo xtask loom` model-checks the table's
//! protocol (`tests/loom_signals.rs`) as it is.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

/// Lets other threads run (a spin-wait's pause).
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}
