//! evloop's errors as the Python exceptions asyncio raises for them.

use evloop_core::Error;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::PyErr;

/// The Python exception for `error`, with asyncio's messages where asyncio
/// has one.
pub(crate) fn to_py(error: Error) -> PyErr {
    match error {
        Error::Closed => PyRuntimeError::new_err("Event loop is closed"),
        Error::AlreadyRunning => PyRuntimeError::new_err("This event loop is already running"),
        Error::AnotherLoopRunning => {
            PyRuntimeError::new_err("Cannot run the event loop while another loop is running")
        }
        Error::Running => PyRuntimeError::new_err("Cannot close a running event loop"),
        Error::Io(io) => io_error(&io),
        Error::InvalidArgument(why) => PyValueError::new_err(why.into_owned()),
        Error::Cancelled(message) => cancelled(message),
        Error::TimedOut => PyTimeoutError::new_err("timed out"),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// `asyncio.CancelledError(message)`.
fn cancelled(message: Option<String>) -> PyErr {
    Python::with_gil(|py| {
        let class = py
            .import("asyncio")
            .and_then(|asyncio| asyncio.getattr("CancelledError"))
            .and_then(|class| Ok(class.downcast_into::<pyo3::types::PyType>()?));
        match class {
            Ok(class) => PyErr::from_type(class, message.unwrap_or_default()),
            Err(error) => error,
        }
    })
}

/// `OSError(errno, message)`, which Python turns into the errno's subclass
/// (`ConnectionRefusedError`, …); the message without Rust's
/// " (os error N)" suffix.
fn io_error(io: &std::io::Error) -> PyErr {
    let errno = io.raw_os_error().unwrap_or(0);
    let text = io.to_string();
    let suffix = format!(" (os error {errno})");
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    PyOSError::new_err((errno, message))
}
