//! Rust futures (evloop's connection and server calls) completing asyncio
//! futures: a task on evloop's loop sets the Python future's result or
//! exception; `_Pending.cancel()` drops the Rust future when the Python side
//! is cancelled.

use std::future::Future;

use evloop_core::{EventLoop, Task};
use pyo3::prelude::*;

use crate::core_loop::{Home, RemoteLoop};
use crate::errors::to_py;
use crate::thread_bound::{LoopBound, ThreadBound};

/// The Rust half of an asyncio future being completed by evloop: cancel it
/// when the awaiting Python code is cancelled. Usable on its loop's thread
/// only (RuntimeError elsewhere).
#[pyclass(module = "evloop._core", name = "_Pending")]
pub struct Pending {
    state: ThreadBound<PendingState>,
}

/// A [`Pending`]'s task, of the loop `remote` belongs to.
struct PendingState {
    task: Task<()>,
    remote: RemoteLoop,
}

impl LoopBound for PendingState {
    fn remote(&self, _py: Python<'_>) -> Option<RemoteLoop> {
        Some(self.remote.clone())
    }

    /// A task of an open loop is kept by the loop (evloop-core's `Task`
    /// drop). A closed loop's has no future left ([`drop_tasks_at_close`]),
    /// so dropping it here drops none. Were one left, only the loop's
    /// thread could drop it (a local task: async-task panics elsewhere), so
    /// the handle is leaked instead, as evloop-core leaks a closed loop's
    /// task steps on other threads (`discard_runnable`).
    fn drop_elsewhere(self) {
        if self.remote.is_closed() && !self.task.done() {
            std::mem::forget(self.task);
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

#[pymethods]
impl Pending {
    /// Drops the Rust future (a connection in progress closes its socket).
    fn cancel(&self) -> PyResult<bool> {
        Ok(self.state.get()?.task.cancel())
    }
}

/// Runs `work` on `home`'s loop; its outcome completes `future` (an
/// `asyncio.Future`) unless that is already done (cancelled).
pub(crate) fn complete_with<F>(home: &Home, future: Py<PyAny>, work: F) -> PyResult<Pending>
where
    F: Future<Output = PyResult<Py<PyAny>>> + 'static,
{
    let task = home
        .event_loop
        .create_task(async move {
            let outcome = work.await;
            Python::with_gil(|py| settle(py, &future, outcome));
        })
        .map_err(to_py)?;
    let remote = home.remote.clone();
    Ok(Pending {
        state: home.bind(PendingState { task, remote }),
    })
}

/// Has `event_loop`'s `close` cancel its tasks still pending: as they can
/// never run again, their futures are dropped there and then, on the
/// closing thread (the loop's), instead of when their `_Pending` goes,
/// which may be on another thread (see `thread_bound`).
pub(crate) fn drop_tasks_at_close(event_loop: &EventLoop) -> PyResult<()> {
    event_loop
        .add_close_hook(|event_loop| {
            for task in event_loop.all_tasks() {
                task.cancel();
            }
        })
        .map_err(to_py)
}

/// Sets `future`'s result or exception; an error doing so (the future was
/// cancelled meanwhile) is dropped, as asyncio's `_set_result_unless_cancelled`.
pub(crate) fn settle(py: Python<'_>, future: &Py<PyAny>, outcome: PyResult<Py<PyAny>>) {
    let future = future.bind(py);
    let done = future
        .call_method0(pyo3::intern!(py, "done"))
        .and_then(|d| d.is_truthy())
        .unwrap_or(true);
    if done {
        return;
    }
    let set = match outcome {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,)),
        Err(error) => future.call_method1(pyo3::intern!(py, "set_exception"), (error,)),
    };
    if let Err(error) = set {
        error.write_unraisable(py, Some(future));
    }
}
