//! `_StreamTransport`: evloop's stream [`Transport`] (TCP, unix) for Python.
//!
//! The Python class `evloop.StreamTransport` (an `asyncio.Transport`)
//! delegates to `_StreamTransport`; the protocol side of a connection is
//! [`crate::protocol::PyProtocol`].

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use evloop_transports::{Address, Transport};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};
use pyo3::{PyTraverseError, PyVisit};

use crate::core_loop::RemoteLoop;
use crate::errors::to_py;
use crate::protocol::Link;
use crate::thread_bound::{LoopBound, ThreadBound};

/// `set_write_buffer_limits`'s arguments as evloop takes them (`None`:
/// asyncio's default); a negative one is asyncio's ValueError.
pub(crate) fn water_marks(
    high: Option<i64>,
    low: Option<i64>,
) -> PyResult<(Option<usize>, Option<usize>)> {
    // asyncio's defaults, only to check and to word the error as it does.
    let shown_high = high.unwrap_or_else(|| low.map_or(64 * 1024, |low| low.saturating_mul(4)));
    let shown_low = low.unwrap_or_else(|| shown_high.div_euclid(4));
    let invalid = || {
        PyValueError::new_err(format!(
            "high ({shown_high}) must be >= low ({shown_low}) must be >= 0"
        ))
    };
    if shown_high < shown_low || shown_low < 0 {
        return Err(invalid());
    }
    let size = |v: Option<i64>| v.map(usize::try_from).transpose().map_err(|_| invalid());
    Ok((size(high)?, size(low)?))
}

/// `io::Error` as the OSError subclass Python picks for its errno.
pub(crate) fn io_to_py(py: Python<'_>, error: io::Error) -> Py<PyAny> {
    to_py(evloop_core::Error::Io(error))
        .into_value(py)
        .into_any()
}

/// The Rust half of `evloop.StreamTransport`: evloop's stream transport.
/// Usable on its loop's thread only (RuntimeError elsewhere).
#[pyclass(module = "evloop._core", name = "_StreamTransport")]
pub struct StreamTransport {
    state: ThreadBound<StreamState>,
}

/// What a [`StreamTransport`] owns, on the loop's thread.
pub(crate) struct StreamState {
    transport: Transport,
    link: Rc<Link>,
    /// `write_eof()` was called while open: writing again is asyncio's
    /// RuntimeError.
    eof: Cell<bool>,
    /// Writes after the connection was lost (asyncio's `_conn_lost` less
    /// one), to warn as asyncio does from the fifth on.
    lost_writes: Cell<u32>,
    /// A native `loop.sendfile` is under way: `write` raises meanwhile, as
    /// asyncio's does.
    sending_file: Rc<Cell<bool>>,
    /// The loop's thread-safe half (to be dropped on another thread).
    remote: RemoteLoop,
}

impl LoopBound for StreamState {
    fn remote(&self, _py: Python<'_>) -> Option<RemoteLoop> {
        Some(self.remote.clone())
    }
}

impl StreamTransport {
    /// A transport over evloop's `transport` whose events reach the Python
    /// protocol through `link`, on `remote`'s loop.
    pub(crate) fn new(
        transport: Transport,
        link: Rc<Link>,
        remote: &RemoteLoop,
    ) -> StreamTransport {
        let state = StreamState {
            transport,
            link,
            eof: Cell::new(false),
            lost_writes: Cell::new(0),
            sending_file: Rc::default(),
            remote: remote.clone(),
        };
        StreamTransport {
            state: ThreadBound::new(remote.owner(), state),
        }
    }

    /// A transport whose events go to an evloop protocol, not a Python one
    /// (a subprocess's pipe): `get_protocol()` is None.
    pub(crate) fn bare(transport: Transport, remote: &RemoteLoop) -> StreamTransport {
        StreamTransport::new(transport, Rc::default(), remote)
    }

    /// The state, on the loop's thread (RuntimeError elsewhere).
    #[inline]
    pub(crate) fn state(&self) -> PyResult<&StreamState> {
        Ok(self.state.get()?)
    }
}

impl StreamState {
    /// evloop's transport (for `loop.sendfile`).
    pub(crate) fn rust(&self) -> &Transport {
        &self.transport
    }

    /// The flag `loop.sendfile` holds up while it sends.
    pub(crate) fn sending_file(&self) -> Rc<Cell<bool>> {
        self.sending_file.clone()
    }
}

/// asyncio's `constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

impl std::fmt::Debug for StreamTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTransport").finish_non_exhaustive()
    }
}

/// The bytes of a bytes-like object (bytes, bytearray, memoryview), as
/// asyncio's `write` accepts them.
pub(crate) fn with_bytes<R>(data: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(bytes) = data.downcast::<PyBytes>() {
        return Ok(f(bytes.as_bytes()));
    }
    if let Ok(array) = data.downcast::<PyByteArray>() {
        return Ok(f(&array.to_vec()));
    }
    if data.downcast::<PyMemoryView>().is_ok() {
        let copy = data.call_method0(intern!(data.py(), "tobytes"))?;
        return Ok(f(copy.downcast::<PyBytes>()?.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "data argument must be a bytes-like object, not '{}'",
        data.get_type().name()?
    )))
}

impl StreamState {
    /// asyncio's RuntimeError for a write after `write_eof()`; `method`
    /// is what asyncio names (`writelines` has its own from Python 3.12).
    fn check_eof(&self, method: &str) -> PyResult<()> {
        if self.eof.get() {
            return Err(PyRuntimeError::new_err(format!(
                "Cannot call {method}() after write_eof()"
            )));
        }
        Ok(())
    }

    /// Once the connection is lost (closing with nothing left to flush) a
    /// write is dropped, with asyncio's warning from the fifth on; true
    /// then.
    fn drop_lost_write(&self, py: Python<'_>) -> PyResult<bool> {
        let lost = self.transport.is_closing() && self.transport.get_write_buffer_size() == 0;
        if !lost {
            return Ok(false);
        }
        let count = self.lost_writes.get().saturating_add(1);
        self.lost_writes.set(count);
        if count >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
            py.import("logging")?
                .call_method1("getLogger", ("asyncio",))?
                .call_method1("warning", ("socket.send() raised exception.",))?;
        }
        Ok(true)
    }
}

#[pymethods]
impl StreamTransport {
    /// Writes bytes, bytearray or memoryview data (buffered if the socket
    /// is full).
    pub(crate) fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = self.state()?;
        if this.sending_file.get() {
            return Err(PyRuntimeError::new_err(
                "unable to write; sendfile is in progress",
            ));
        }
        let py = data.py();
        with_bytes(data, |bytes| {
            this.check_eof("write")?;
            if !bytes.is_empty() && !this.drop_lost_write(py)? {
                this.transport.write(bytes);
            }
            Ok(())
        })?
    }

    /// Writes each buffer of an iterable: one write for asyncio's checks,
    /// as its `writelines` joins them.
    fn writelines(&self, iterable: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = self.state()?;
        let lines = iterable.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        let mut sizes = 0;
        for data in &lines {
            sizes += with_bytes(data, <[u8]>::len)?;
        }
        let py = iterable.py();
        let own_name = py.version_info() >= (3, 12);
        this.check_eof(if own_name { "writelines" } else { "write" })?;
        if sizes == 0 || this.drop_lost_write(py)? {
            return Ok(());
        }
        for data in &lines {
            with_bytes(data, |bytes| this.transport.write(bytes))?;
        }
        Ok(())
    }

    /// Shuts the write side down once the buffer is flushed.
    fn write_eof(&self) -> PyResult<()> {
        let this = self.state()?;
        if !this.transport.is_closing() {
            this.eof.set(true);
        }
        this.transport.write_eof();
        Ok(())
    }

    /// True: sockets can half-close.
    fn can_write_eof(&self) -> PyResult<bool> {
        Ok(self.state()?.transport.can_write_eof())
    }

    /// Closes after flushing; `connection_lost(None)` follows.
    fn close(&self) -> PyResult<()> {
        self.state()?.transport.close();
        Ok(())
    }

    /// Closes now, dropping the buffer.
    fn abort(&self) -> PyResult<()> {
        self.state()?.transport.abort();
        Ok(())
    }

    /// True once closing or closed.
    fn is_closing(&self) -> PyResult<bool> {
        Ok(self.state()?.transport.is_closing())
    }

    /// Stops calling `data_received` until `resume_reading`.
    fn pause_reading(&self) -> PyResult<()> {
        self.state()?.transport.pause_reading();
        Ok(())
    }

    /// Reads again.
    fn resume_reading(&self) -> PyResult<()> {
        self.state()?.transport.resume_reading();
        Ok(())
    }

    /// True while reading.
    fn is_reading(&self) -> PyResult<bool> {
        Ok(self.state()?.transport.is_reading())
    }

    /// Bytes waiting to be written.
    fn get_write_buffer_size(&self) -> PyResult<usize> {
        Ok(self.state()?.transport.get_write_buffer_size())
    }

    /// `(low, high)` water marks.
    fn get_write_buffer_limits(&self) -> PyResult<(usize, usize)> {
        Ok(self.state()?.transport.get_write_buffer_limits())
    }

    /// Sets the water marks (asyncio's defaults for `None`).
    #[pyo3(signature = (high = None, low = None))]
    fn set_write_buffer_limits(&self, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let this = self.state()?;
        let (high, low) = water_marks(high, low)?;
        this.transport
            .set_write_buffer_limits(high, low)
            .map_err(to_py)
    }

    /// True between the protocol's `pause_writing` and `resume_writing`.
    fn protocol_paused(&self) -> PyResult<bool> {
        Ok(self.state()?.link.writing_paused())
    }

    /// The Python protocol (None once the connection is lost).
    fn get_protocol(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.state()?.link.get(py))
    }

    /// Sends the following events to `protocol`.
    fn set_protocol(&self, py: Python<'_>, protocol: Py<PyAny>) -> PyResult<()> {
        self.state()?.link.set(py, Some(protocol))
    }

    /// The peer's address as Python's socket module gives it.
    fn peername(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.state()?
            .transport
            .peername()
            .map(|a| address_to_py(py, &a))
            .transpose()
    }

    /// Our address as Python's socket module gives it.
    fn sockname(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.state()?
            .transport
            .sockname()
            .map(|a| address_to_py(py, &a))
            .transpose()
    }

    /// What a TLS connection negotiated (a dict, see `tls::info_to_py`);
    /// `None` for a plain one.
    fn tls_info(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        crate::tls::info_to_py(py, &self.state()?.transport)
    }

    /// The socket's fd until the connection is lost.
    fn fileno(&self) -> PyResult<Option<i32>> {
        Ok(self.state()?.transport.fd())
    }

    /// Shows Python's GC the protocol: a protocol holding its transport is
    /// a cycle through this object. While connected, evloop's side holds
    /// the Python transport, so the cycle is not garbage; once evloop let
    /// go of it without `connection_lost` (the loop closed with the
    /// connection open), the GC can collect it. On another thread (a GC
    /// pass there) nothing is visited, as pyo3 does for `unsendable`
    /// classes: the state is the loop thread's.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Ok(this) = self.state.get() else {
            return Ok(());
        };
        this.link.traverse(&visit)
    }

    fn __clear__(&mut self) {
        let Ok(this) = self.state.get_mut() else {
            return;
        };
        this.link.clear();
    }
}

/// An address as Python's socket module reports it: `(host, port)`,
/// `(host, port, flowinfo, scope_id)`, a path, an abstract name (bytes
/// starting with NUL), or `''` for an unnamed unix socket.
pub(crate) fn address_to_py(py: Python<'_>, address: &Address) -> PyResult<Py<PyAny>> {
    Ok(match address {
        Address::Inet(SocketAddr::V4(v4)) => (v4.ip().to_string(), v4.port())
            .into_pyobject(py)?
            .into_any()
            .unbind(),
        Address::Inet(SocketAddr::V6(v6)) => {
            (v6.ip().to_string(), v6.port(), v6.flowinfo(), v6.scope_id())
                .into_pyobject(py)?
                .into_any()
                .unbind()
        }
        Address::UnixPath(path) => py
            .import("os")?
            .call_method1("fsdecode", (PyBytes::new(py, path.as_os_str().as_bytes()),))?
            .unbind(),
        Address::UnixAbstract(name) => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(name);
            PyBytes::new(py, &bytes).into_any().unbind()
        }
        Address::UnixUnnamed => "".into_pyobject(py)?.into_any().unbind(),
    })
}
