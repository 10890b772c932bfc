//! The calls behind `loop.sock_recv`, `sock_sendall`, `sock_connect`,
//! `sock_accept`, `sock_sendto` and `sock_recvfrom`: evloop's sock_*
//! futures, run as evloop tasks that complete asyncio futures.
//!
//! evloop's futures borrow the socket; here each call owns an `os.dup` of
//! the Python socket's fd (made by the Python side), so closing the Python
//! socket cannot pull the fd out from under a pending call. The duplicate
//! shares the socket (and its non-blocking flag) and is closed when the
//! call ends, after evloop stopped watching it.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use evloop_transports::{Address, ConnectTarget};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBytes, PyTuple};

use crate::bridge::{complete_with, Pending};
use crate::core_loop::CoreLoop;
use crate::errors::to_py;
use crate::network::own_fd;
use crate::transport::{address_to_py, with_bytes};

/// The duplicate fd a call owns.
fn owned(fd: RawFd) -> PyResult<OwnedFd> {
    own_fd(Some(fd))?.ok_or_else(|| PyValueError::new_err("no socket"))
}

/// `Some(address)` as Python's socket module gives it, else `None`.
fn address_or_none(py: Python<'_>, address: Option<&Address>) -> PyResult<Py<PyAny>> {
    match address {
        Some(address) => address_to_py(py, address),
        None => Ok(py.None()),
    }
}

/// A Python address: `(host, port, ...)` with a numeric host, or a unix
/// path (str, bytes or path-like).
fn address_from_py(addr: &Bound<'_, PyAny>) -> PyResult<Address> {
    if let Ok(tuple) = addr.downcast::<PyTuple>() {
        let (host, port) = host_port(tuple)?;
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        let ip: IpAddr = bare.parse().map_err(|_| {
            PyValueError::new_err(format!(
                "{host:?} is not a numeric address; resolve it first"
            ))
        })?;
        return Ok(Address::Inet(SocketAddr::new(ip, port)));
    }
    let path: PathBuf = addr.extract()?;
    Ok(Address::UnixPath(path))
}

fn host_port(tuple: &Bound<'_, PyTuple>) -> PyResult<(String, u16)> {
    Ok((tuple.get_item(0)?.extract()?, tuple.get_item(1)?.extract()?))
}

/// `loop.sock_recv`: completes `future` with up to `n` bytes.
#[pyfunction]
pub(crate) fn sock_recv(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    fd: RawFd,
    n: usize,
) -> PyResult<Pending> {
    let sock = owned(fd)?;
    let home = CoreLoop::home(core)?;
    let lp = home.event_loop.clone();
    complete_with(&home, future, async move {
        let got = evloop_transports::sock_recv(&lp, &sock, n).await;
        drop(sock);
        let got = got.map_err(to_py)?;
        Ok(Python::with_gil(|py| {
            PyBytes::new(py, &got).into_any().unbind()
        }))
    })
}

/// `loop.sock_recvfrom`: completes `future` with `(bytes, address)`.
#[pyfunction]
pub(crate) fn sock_recvfrom(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    fd: RawFd,
    n: usize,
) -> PyResult<Pending> {
    let sock = owned(fd)?;
    let home = CoreLoop::home(core)?;
    let lp = home.event_loop.clone();
    complete_with(&home, future, async move {
        let got = evloop_transports::sock_recvfrom(&lp, &sock, n).await;
        drop(sock);
        let (data, from) = got.map_err(to_py)?;
        Python::with_gil(|py| {
            let from = address_or_none(py, from.as_ref())?;
            let data = PyBytes::new(py, &data).into_any().unbind();
            Ok(PyTuple::new(py, [data, from])?.into_any().unbind())
        })
    })
}

/// `loop.sock_sendall`: completes `future` with None once all is sent.
#[pyfunction]
pub(crate) fn sock_sendall(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    fd: RawFd,
    data: &Bound<'_, PyAny>,
) -> PyResult<Pending> {
    let sock = owned(fd)?;
    let data = with_bytes(data, <[u8]>::to_vec)?;
    let home = CoreLoop::home(core)?;
    let lp = home.event_loop.clone();
    complete_with(&home, future, async move {
        let sent = evloop_transports::sock_sendall(&lp, &sock, &data).await;
        drop(sock);
        sent.map_err(to_py)?;
        Ok(Python::with_gil(|py| py.None()))
    })
}

/// `loop.sock_sendto`: completes `future` with the number of bytes sent.
#[pyfunction]
pub(crate) fn sock_sendto(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    fd: RawFd,
    data: &Bound<'_, PyAny>,
    addr: &Bound<'_, PyAny>,
) -> PyResult<Pending> {
    let sock = owned(fd)?;
    let data = with_bytes(data, <[u8]>::to_vec)?;
    let to = address_from_py(addr)?;
    let home = CoreLoop::home(core)?;
    let lp = home.event_loop.clone();
    complete_with(&home, future, async move {
        let sent = evloop_transports::sock_sendto(&lp, &sock, &data, to).await;
        drop(sock);
        let n = sent.map_err(to_py)?;
        Python::with_gil(|py| Ok(n.into_pyobject(py)?.into_any().unbind()))
    })
}

/// `loop.sock_connect`: a `(host, port, ...)` tuple (a name is resolved by
/// evloop's resolver) or a unix path.
#[pyfunction]
pub(crate) fn sock_connect(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    fd: RawFd,
    addr: &Bound<'_, PyAny>,
) -> PyResult<Pending> {
    let sock = owned(fd)?;
    let target = match addr.downcast::<PyTuple>() {
        Ok(tuple) => {
            let (host, port) = host_port(tuple)?;
            ConnectTarget::Host(host, port)
        }
        Err(_) => ConnectTarget::Address(address_from_py(addr)?),
    };
    let home = CoreLoop::home(core)?;
    let lp = home.event_loop.clone();
    complete_with(&home, future, async move {
        let connected = evloop_transports::sock_connect(&lp, &sock, target).await;
        drop(sock);
        connected.map_err(to_py)?;
        Ok(Python::with_gil(|py| py.None()))
    })
}

/// `loop.sock_accept`: completes `future` with `(socket, address)`.
#[pyfunction]
pub(crate) fn sock_accept(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    fd: RawFd,
) -> PyResult<Pending> {
    let sock = owned(fd)?;
    let home = CoreLoop::home(core)?;
    let lp = home.event_loop.clone();
    complete_with(&home, future, async move {
        let accepted = evloop_transports::sock_accept(&lp, &sock).await;
        drop(sock);
        let (conn, peer) = accepted.map_err(to_py)?;
        Python::with_gil(|py| {
            let peer = address_or_none(py, peer.as_ref())?;
            // A socket object owns the fd from here (and closes it if the
            // future was cancelled meanwhile and drops the result).
            let socket = py.import("socket")?.getattr("socket")?;
            let kwargs = [("fileno", conn.as_raw_fd())].into_py_dict(py)?;
            let raw = conn.into_raw_fd();
            let conn = socket
                .call((), Some(&kwargs))
                .inspect_err(|_| {
                    // SAFETY: `raw` came from `into_raw_fd` just above and
                    // nothing else owns it, as socket() failed.
                    drop(unsafe { OwnedFd::from_raw_fd(raw) });
                })?
                .unbind();
            Ok(PyTuple::new(py, [conn, peer])?.into_any().unbind())
        })
    })
}
