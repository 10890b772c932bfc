//! The atomics the cross-thread code uses: std's, or loom's under
//! `--cfg loom` so that `cargo xtask loom` can model-check the waker
//! protocol (`waker.rs`) as it is. Nothing else differs between the two
//! builds.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
