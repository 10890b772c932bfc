//! Rust futures (evloop's connection and server calls) completing asyncio
//! futures: a task on evloop's loop sets the Python future's result or
//! exception; `_Pending.cancel()` drops the Rust future when the Python side
//! is cancelled.

use std::future::Future;

use evloop_core::{EventLoop, Task};
use pyo3::prelude::*;

use crate::errors::to_py;

/// The Rust half of an asyncio future being completed by evloop: cancel it
/// when the awaiting Python code is cancelled.
#[pyclass(module = "evloop._core", name = "_Pending", unsendable)]
pub struct Pending {
    task: Task<()>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

#[pymethods]
impl Pending {
    /// Drops the Rust future (a connection in progress closes its socket).
    fn cancel(&self) -> bool {
        self.task.cancel()
    }
}

/// Runs `work` on `event_loop`; its outcome completes `future` (an
/// `asyncio.Future`) unless that is already done (cancelled).
pub(crate) fn complete_with<F>(
    event_loop: &EventLoop,
    future: Py<PyAny>,
    work: F,
) -> PyResult<Pending>
where
    F: Future<Output = PyResult<Py<PyAny>>> + 'static,
{
    let task = event_loop
        .create_task(async move {
            let outcome = work.await;
            Python::with_gil(|py| settle(py, &future, outcome));
        })
        .map_err(to_py)?;
    Ok(Pending { task })
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
