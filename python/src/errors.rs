//! evloop's errors as the Python exceptions asyncio raises for them.

use evloop_core::Error;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
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
        Error::Io(io) => PyOSError::new_err((io.raw_os_error().unwrap_or(0), io.to_string())),
        Error::InvalidArgument(why) => PyValueError::new_err(why.into_owned()),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}
