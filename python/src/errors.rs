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
        Error::Io(io) => crate::tls::io_error_to_py(&io).unwrap_or_else(|| io_error(&io)),
        Error::Tls(tls) => crate::tls::tls_error_to_py(&tls),
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
/// (`ConnectionRefusedError`, …), with the message less Rust's
/// " (os error N)" suffix. The transports add context to some errors (the
/// address a bind failed on), which drops the raw errno: it is then read
/// back from that suffix, or from the error's kind.
fn io_error(io: &std::io::Error) -> PyErr {
    let text = io.to_string();
    let (message, suffix_errno) = match text.rsplit_once(" (os error ") {
        Some((head, tail)) => match tail.strip_suffix(')').and_then(|n| n.parse::<i32>().ok()) {
            Some(errno) => (head.to_owned(), Some(errno)),
            None => (text.clone(), None),
        },
        None => (text.clone(), None),
    };
    let errno = io
        .raw_os_error()
        .or(suffix_errno)
        .or_else(|| kind_errno(io.kind()))
        .unwrap_or(0);
    PyOSError::new_err((errno, message))
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
