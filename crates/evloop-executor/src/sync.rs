//! The lock behind a job's result slot (`executor.rs`): std's, or loom's
//! under `--cfg loom` so that `cargo xtask loom` model-checks the hand-back
//! of results (`tests/loom_blocking.rs`) as it is. The pool's own
//! bookkeeping (`pool.rs`) stays on std: its workers are real threads.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
