//! evloop's errors as the Python exceptions asyncio raises for them.

use evloop_core::Error;
use pyo3::exceptions::{
    PyKeyboardInterrupt, PyOSError, PyRuntimeError, PySystemExit, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::PyErr;

/// The Python exception for `error`, with asyncio's messages where asyncio
/// has one.
pub(crate) fn to_py(error: Error) -> PyErr {
    if let Some(tls) = error.io_error().and_then(crate::tls::io_error_to_py) {
        return tls;
    }
    match error {
        Error::Closed => PyRuntimeError::new_err("Event loop is closed"),
        Error::AlreadyRunning => PyRuntimeError::new_err("This event loop is already running"),
        Error::AnotherLoopRunning => {
            PyRuntimeError::new_err("Cannot run the event loop while another loop is running")
        }
        Error::Running => PyRuntimeError::new_err("Cannot close a running event loop"),
        Error::Io(_) => os_error(&error),
        Error::Tls(tls) => crate::tls::tls_error_to_py(&tls),
        Error::InvalidArgument(why) => PyValueError::new_err(why.into_owned()),
        Error::Cancelled(message) => cancelled(message),
        Error::TimedOut => PyTimeoutError::new_err("timed out"),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// True for the exceptions asyncio lets out of `run_forever`
/// (`KeyboardInterrupt`, `SystemExit`); any other one, `BaseException`s
/// included, goes to the exception handler.
pub(crate) fn leaves_loop(py: Python<'_>, error: &PyErr) -> bool {
    error.is_instance_of::<PyKeyboardInterrupt>(py) || error.is_instance_of::<PySystemExit>(py)
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

/// `OSError(errno, strerror)`, which Python turns into the errno's subclass
/// (`ConnectionRefusedError`, …). The errno is evloop's
/// [`Error::raw_os_error`], which also sees through the message the
/// transports put in front of some errors (the address a bind failed on):
/// `strerror` is then that message and the OS's text for the errno
/// (`os.strerror`). An error no errno caused gets the errno its kind
/// stands for, if one does, or none (`OSError(message)`).
fn os_error(error: &Error) -> PyErr {
    let Some(io) = error.io_error() else {
        return PyOSError::new_err(error.to_string());
    };
    let Some(errno) = error.raw_os_error() else {
        return match kind_errno(io.kind()) {
            // A bare kind (`ErrorKind::BrokenPipe.into()`) has no text of its own.
            Some(errno) if io.get_ref().is_none() => PyOSError::new_err((errno, strerror(errno))),
            Some(errno) => PyOSError::new_err((errno, io.to_string())),
            None => PyOSError::new_err(io.to_string()),
        };
    };
    let text = strerror(errno);
    let message = match error.os_context() {
        Some(context) => format!("{context}: {text}"),
        None => text,
    };
    PyOSError::new_err((errno, message))
}

/// The OS's text for `errno` (`os.strerror`, as Python's own OSErrors have).
fn strerror(errno: i32) -> String {
    Python::with_gil(|py| {
        py.import("os")
            .and_then(|os| os.call_method1("strerror", (errno,)))
            .and_then(|text| text.extract())
            .unwrap_or_else(|_| format!("errno {errno}"))
    })
}

/// The errno of an error kind that has one obvious errno.
fn kind_errno(kind: std::io::ErrorKind) -> Option<i32> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => libc::ECONNREFUSED,
        K::ConnectionReset => libc::ECONNRESET,
        K::ConnectionAborted => libc::ECONNABORTED,
        K::NotConnected => libc::ENOTCONN,
        K::AddrInUse => libc::EADDRINUSE,
        K::AddrNotAvailable => libc::EADDRNOTAVAIL,
        K::BrokenPipe => libc::EPIPE,
        K::TimedOut => libc::ETIMEDOUT,
        K::NotFound => libc::ENOENT,
        K::PermissionDenied => libc::EACCES,
        _ => return None,
    })
}
