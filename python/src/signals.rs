//! `loop.add_signal_handler` / `remove_signal_handler` over evloop's signals
//! crate: evloop installs the `sigaction` handler and its own wake-up pipe,
//! and calls the signal's [`Handle`] on the loop when the signal arrives.
//! The Python side (`evloop.Loop`) does asyncio's argument checks and puts
//! Python's own disposition back on removal.

use evloop_core::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::core_loop::CoreLoop;
use crate::errors::to_py;
use crate::handle::{Handle, Shell};

/// Makes the `Handle` for `callback(*args)` (in a copy of the current
/// context, as asyncio's) and has evloop run it each time `signum` arrives.
/// Adding again replaces the previous handle.
#[pyfunction]
pub(crate) fn add_signal_handler(
    core: &Bound<'_, CoreLoop>,
    signum: i32,
    callback: Py<PyAny>,
    args: Py<PyTuple>,
) -> PyResult<Py<Handle>> {
    let py = core.py();
    let event_loop = CoreLoop::on_thread(core)?.event_loop().clone();
    let shell = Shell::new(py, callback, args, None, core.clone().into_any().unbind())?;
    let handle = Py::new(py, Handle { shell })?;
    let fired = handle.clone_ref(py);
    evloop_signals::add_signal_handler(&event_loop, signum, move || {
        Python::with_gil(|py| Handle::fire(py, &fired));
    })
    .map_err(|error| signal_error(signum, error))?;
    Ok(handle)
}

/// Stops handling `signum` (evloop restores `SIG_DFL`); false if it was not
/// handled.
#[pyfunction]
pub(crate) fn remove_signal_handler(core: &Bound<'_, CoreLoop>, signum: i32) -> PyResult<bool> {
    let event_loop = CoreLoop::on_thread(core)?.event_loop().clone();
    evloop_signals::remove_signal_handler(&event_loop, signum)
        .map_err(|error| signal_error(signum, error))
}

/// asyncio's wording for a signal `sigaction` refuses (`EINVAL`).
fn signal_error(signum: i32, error: Error) -> PyErr {
    match error {
        Error::UncatchableSignal(_) => cannot_be_caught(signum),
        Error::Io(io) if io.raw_os_error() == Some(libc::EINVAL) => cannot_be_caught(signum),
        other => to_py(other),
    }
}

fn cannot_be_caught(signum: i32) -> PyErr {
    PyRuntimeError::new_err(format!("sig {signum} cannot be caught"))
}
