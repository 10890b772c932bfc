//! The native halves of `loop.sendfile` and `loop.sock_sendfile`: evloop's
//! `sendfile` on a stream transport and `sock_sendfile` on a socket, with
//! zero-copy `sendfile(2)`. Both are called with `fallback` off: when
//! `sendfile(2)` cannot be used (not a regular file) they raise
//! `asyncio.SendfileNotAvailableError`, and the Python side falls back to
//! asyncio's read-and-write algorithm, which works for any file object and
//! any transport (TLS included).
//!
//! Each call owns an `os.dup` of the file's fd (and, for a socket, of the
//! socket's): the duplicate shares the file position, which evloop leaves
//! at `offset + bytes sent` however the call ends, so `file.tell()` shows it.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::rc::Rc;

use evloop_core::Error;
use evloop_transports::SendfileNotAvailable;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::bridge::{complete_with, Pending};
use crate::core_loop::CoreLoop;
use crate::errors::to_py;
use crate::network::own_fd;
use crate::transport::StreamTransport;

/// Lowers the transport's "sendfile in progress" flag when the send ends,
/// however it ends (cancelled included).
struct Sending(Rc<Cell<bool>>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// evloop's sendfile errors as asyncio raises them.
fn sendfile_error(error: Error) -> PyErr {
    if let Some(unavailable) = SendfileNotAvailable::find(&error) {
        return Python::with_gil(|py| {
            match py
                .import("asyncio")
                .and_then(|asyncio| asyncio.getattr("SendfileNotAvailableError"))
            {
                Ok(class) => match class.call1((unavailable.message(),)) {
                    Ok(instance) => PyErr::from_value(instance),
                    Err(failed) => failed,
                },
                Err(failed) => failed,
            }
        });
    }
    match error {
        Error::InvalidState(why) => PyRuntimeError::new_err(why),
        Error::InvalidArgument(why) => PyValueError::new_err(why.into_owned()),
        other => to_py(other),
    }
}

/// `loop.sendfile`'s native path: `count` bytes (None: to the end) of the
/// file `file_fd` (a duplicate this call owns) from `offset`, over the
/// stream transport; completes `future` with the number of bytes sent.
#[pyfunction]
#[pyo3(signature = (future, core, transport, file_fd, offset, count = None))]
pub(crate) fn sendfile(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    transport: &Bound<'_, StreamTransport>,
    file_fd: RawFd,
    offset: u64,
    count: Option<u64>,
) -> PyResult<Pending> {
    let file = own_fd(Some(file_fd))?.ok_or_else(|| PyValueError::new_err("no file"))?;
    let home = CoreLoop::home(core)?;
    let lp = home.event_loop.clone();
    let (rust, flag) = {
        let transport = transport.borrow();
        let transport = transport.state()?;
        (transport.rust().clone(), transport.sending_file())
    };
    if flag.replace(true) {
        return Err(PyRuntimeError::new_err("sendfile is in progress"));
    }
    let sending = Sending(flag);
    complete_with(&home, future, async move {
        let sent = evloop_transports::sendfile(&lp, &rust, &file, offset, count, false).await;
        drop(sending);
        drop(file);
        let sent = sent.map_err(sendfile_error)?;
        Python::with_gil(|py| Ok(sent.into_pyobject(py)?.into_any().unbind()))
    })
}

/// `loop.sock_sendfile`'s native path on the socket `sock_fd` (a duplicate
/// this call owns); completes `future` with the number of bytes sent.
#[pyfunction]
#[pyo3(signature = (future, core, sock_fd, file_fd, offset, count = None))]
pub(crate) fn sock_sendfile(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    sock_fd: RawFd,
    file_fd: RawFd,
    offset: u64,
    count: Option<u64>,
) -> PyResult<Pending> {
    let sock = own_fd(Some(sock_fd))?.ok_or_else(|| PyValueError::new_err("no socket"))?;
    let file = own_fd(Some(file_fd))?.ok_or_else(|| PyValueError::new_err("no file"))?;
    let home = CoreLoop::home(core)?;
    let lp = home.event_loop.clone();
    complete_with(&home, future, async move {
        let sent = evloop_transports::sock_sendfile(&lp, &sock, &file, offset, count, false).await;
        drop((sock, file));
        let sent = sent.map_err(sendfile_error)?;
        Python::with_gil(|py| Ok(sent.into_pyobject(py)?.into_any().unbind()))
    })
}
