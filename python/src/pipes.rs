//! `loop.connect_read_pipe`/`connect_write_pipe`: evloop's pipe transports
//! (`evloop_transports::connect_read_pipe`/`connect_write_pipe`) under a
//! Python protocol.
//!
//! The caller's pipe object stays the caller's (asyncio's transport closes
//! it after `connection_lost`, and so does `evloop._pipes`): evloop gets a
//! duplicate of its fd, which it owns and closes once. The duplicate shares
//! the open file description, so the non-blocking mode evloop sets is the
//! pipe object's too, as asyncio sets it.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::bridge::Pending;
use crate::core_loop::CoreLoop;
use crate::network::{finish_connection, Call};

/// A close-on-exec duplicate of the caller's open fd `fd`, for evloop to own.
///
/// # Errors
/// `ValueError` for a negative fd; `OSError` (EBADF) for one that is not
/// open.
pub(crate) fn dup_fd(fd: RawFd) -> PyResult<OwnedFd> {
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "invalid file descriptor {fd}"
        )));
    }
    // SAFETY: the fd is only borrowed for the `fcntl(F_DUPFD_CLOEXEC)` below,
    // while the Python caller (which passed its `fileno()` synchronously)
    // keeps it open; a number that is not open just makes that fail (EBADF).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(borrowed.try_clone_to_owned()?)
}

/// `loop.connect_read_pipe`: completes `future` with `(transport, protocol)`
/// once `connection_made` ran; `wrap(core)` makes the Python transport.
#[pyfunction]
pub(crate) fn connect_read_pipe(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    fd: RawFd,
) -> PyResult<Pending> {
    let pipe = dup_fd(fd)?;
    let call = Call::new(core, future, factory, wrap)?;
    let failed = Rc::default();
    let factory = call.client_factory(&failed);
    let connect = evloop_transports::connect_read_pipe(&call.home.event_loop, factory, pipe);
    finish_connection(call, failed, connect)
}

/// `loop.connect_write_pipe`: as [`connect_read_pipe`], for the write end.
#[pyfunction]
pub(crate) fn connect_write_pipe(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    fd: RawFd,
) -> PyResult<Pending> {
    let pipe = dup_fd(fd)?;
    let call = Call::new(core, future, factory, wrap)?;
    let failed = Rc::default();
    let factory = call.client_factory(&failed);
    let connect = evloop_transports::connect_write_pipe(&call.home.event_loop, factory, pipe);
    finish_connection(call, failed, connect)
}
