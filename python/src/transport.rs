//! `_StreamTransport`: evloop's stream [`Transport`] (TCP, unix) for Python,
//! and [`PyProtocol`], the evloop [`Protocol`] that calls a Python protocol.
//!
//! The Python class `evloop.StreamTransport` (an `asyncio.Transport`)
//! delegates to `_StreamTransport`. Protocol callbacks run with the GIL; an
//! exception from one goes to the loop's exception handler with asyncio's
//! keys (`message`, `exception`, `transport`, `protocol`) and aborts the
//! transport, as asyncio's `_fatal_error` does. KeyboardInterrupt and
//! SystemExit stop the loop and leave `run_forever` instead.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use evloop_transports::{Address, Protocol, Transport};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PySlice, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::core_loop::{CoreLoop, RemoteLoop};
use crate::errors::{leaves_loop, to_py};
use crate::thread_bound::{LoopBound, ThreadBound};

/// The Python protocol of one connection, shared by the transport (for
/// `get_protocol`/`set_protocol`) and the [`PyProtocol`] that calls it.
#[derive(Debug, Default)]
pub(crate) struct Link {
    protocol: RefCell<Option<Py<PyAny>>>,
    /// The protocol is an `asyncio.BufferedProtocol`.
    buffered: Cell<bool>,
    /// Between `pause_writing` and `resume_writing` (for sendfile's
    /// fallback, which stands in for the protocol meanwhile).
    writing_paused: Cell<bool>,
    /// `protocol.data_received`, looked up once per protocol (as uvloop
    /// does): the hot path then makes no bound method per chunk.
    data_received: RefCell<Option<Py<PyAny>>>,
}

impl Link {
    fn set(&self, py: Python<'_>, protocol: Option<Py<PyAny>>) -> PyResult<()> {
        let (buffered, data_received) = match &protocol {
            Some(p) => {
                static BUFFERED: GILOnceCell<Py<PyType>> = GILOnceCell::new();
                let class = BUFFERED.import(py, "asyncio", "BufferedProtocol")?;
                let p = p.bind(py);
                let buffered = p.is_instance(class)?;
                // A protocol without the method fails when data comes, as
                // in asyncio, not here.
                let method = if buffered {
                    None
                } else {
                    p.getattr(intern!(py, "data_received")).ok()
                };
                (buffered, method.map(Bound::unbind))
            }
            None => (false, None),
        };
        self.buffered.set(buffered);
        *self.data_received.borrow_mut() = data_received;
        *self.protocol.borrow_mut() = protocol;
        Ok(())
    }

    fn get(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol.borrow().as_ref().map(|p| p.clone_ref(py))
    }
}

/// evloop's protocol side of a connection: forwards each callback to the
/// Python protocol.
pub(crate) struct PyProtocol {
    link: Rc<Link>,
    /// The Python loop (`evloop.Loop`), for its exception handler.
    event_loop: Py<PyAny>,
    /// Its thread-safe half, for the transports made here.
    remote: RemoteLoop,
    /// `evloop.StreamTransport`, the class that wraps `_StreamTransport`.
    wrap: Py<PyAny>,
    /// The Python transport, from `connection_made` on.
    transport: Option<Py<PyAny>>,
    /// The protocol the factory made, for `create_connection`'s result
    /// (which may come after `connection_lost` let go of `link`'s).
    made: Option<Py<PyAny>>,
    rust: Option<Transport>,
    /// The exception a protocol method raised that aborted the transport:
    /// `connection_lost` receives it, as asyncio's `_fatal_error` passes it.
    fatal: Option<PyErr>,
    /// A client connection's asyncio future, completed with the pair as
    /// soon as `connection_made` has run: the awaiting coroutine then
    /// resumes before any data, as with asyncio's waiter (evloop's own
    /// completion comes one task hop later).
    announce: Option<Py<PyAny>>,
}

impl PyProtocol {
    /// A protocol from `factory()`; if it raises, the error is returned
    /// and the protocol aborts its transport on `connection_made`.
    pub(crate) fn new(
        py: Python<'_>,
        factory: &Py<PyAny>,
        (event_loop, remote): (&Py<PyAny>, &RemoteLoop),
        wrap: &Py<PyAny>,
    ) -> (PyProtocol, Option<PyErr>) {
        let link = Rc::new(Link::default());
        let made = factory
            .call0(py)
            .and_then(|p| link.set(py, Some(p.clone_ref(py))).map(|()| p));
        let (made, error) = match made {
            Ok(made) => (Some(made), None),
            Err(error) => (None, Some(error)),
        };
        let protocol = PyProtocol {
            link,
            event_loop: event_loop.clone_ref(py),
            remote: remote.clone(),
            wrap: wrap.clone_ref(py),
            transport: None,
            made,
            rust: None,
            fatal: None,
            announce: None,
        };
        (protocol, error)
    }

    /// Completes `future` with the pair once `connection_made` has run.
    pub(crate) fn announce_to(&mut self, future: Py<PyAny>) {
        self.announce = Some(future);
    }

    /// The evloop side of an existing Python protocol (`loop.start_tls`'s),
    /// for a transport [`adopt`](Self::adopt) gives it later.
    pub(crate) fn for_protocol(
        py: Python<'_>,
        protocol: Py<PyAny>,
        (event_loop, remote): (&Py<PyAny>, &RemoteLoop),
        wrap: &Py<PyAny>,
    ) -> PyResult<PyProtocol> {
        let link = Rc::new(Link::default());
        link.set(py, Some(protocol.clone_ref(py)))?;
        Ok(PyProtocol {
            link,
            event_loop: event_loop.clone_ref(py),
            remote: remote.clone(),
            wrap: wrap.clone_ref(py),
            transport: None,
            made: Some(protocol),
            rust: None,
            fatal: None,
            announce: None,
        })
    }

    /// Makes `transport` this protocol's without `connection_made` (a
    /// `start_tls` upgrade); returns the new Python transport.
    pub(crate) fn adopt(&mut self, py: Python<'_>, transport: Transport) -> PyResult<Py<PyAny>> {
        let wrapped = self.wrap_transport(py, &transport)?;
        self.rust = Some(transport);
        self.transport = Some(wrapped.clone_ref(py));
        Ok(wrapped)
    }

    /// `transport` as `wrap` makes it a Python transport.
    fn wrap_transport(&self, py: Python<'_>, transport: &Transport) -> PyResult<Py<PyAny>> {
        let core = StreamTransport::new(transport.clone(), self.link.clone(), &self.remote);
        Py::new(py, core).and_then(|c| self.wrap.call1(py, (c,)))
    }

    /// The Python transport and protocol, once connected.
    pub(crate) fn pair(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let transport = self
            .transport
            .as_ref()
            .map(|t| t.clone_ref(py))
            .ok_or_else(|| PyRuntimeError::new_err("the connection was never made"))?;
        let protocol = self.made.as_ref().map(|p| p.clone_ref(py));
        Ok(
            PyTuple::new(py, [transport, protocol.into_pyobject(py)?.unbind()])?
                .into_any()
                .unbind(),
        )
    }

    /// asyncio's `_fatal_error`: report `error` and abort the transport;
    /// `connection_lost` then gets `error`.
    fn fatal(&mut self, py: Python<'_>, error: PyErr, message: &str) {
        if leaves_loop(py, &error) {
            // KeyboardInterrupt, SystemExit: out of run_forever.
            self.stop_loop(py, error);
            return;
        }
        self.report(py, error.clone_ref(py), message);
        if let Some(rust) = &self.rust {
            self.fatal.get_or_insert(error);
            rust.abort();
        }
    }

    /// Sends `error` to the loop's exception handler with asyncio's keys;
    /// KeyboardInterrupt and SystemExit stop the loop instead.
    fn report(&self, py: Python<'_>, error: PyErr, message: &str) {
        if leaves_loop(py, &error) {
            return self.stop_loop(py, error);
        }
        let reported = (|| -> PyResult<()> {
            let context = PyDict::new(py);
            context.set_item("message", message)?;
            context.set_item("exception", error.value(py))?;
            context.set_item("transport", self.transport.as_ref().map(|t| t.bind(py)))?;
            context.set_item("protocol", self.link.get(py))?;
            self.event_loop
                .call_method1(py, intern!(py, "call_exception_handler"), (context,))?;
            Ok(())
        })();
        if let Err(failed) = reported {
            if leaves_loop(py, &failed) {
                self.stop_loop(py, failed);
            } else {
                failed.write_unraisable(py, None);
            }
        }
    }

    fn stop_loop(&self, py: Python<'_>, error: PyErr) {
        match self.event_loop.bind(py).downcast::<CoreLoop>() {
            Ok(core) => CoreLoop::fail(core, error),
            Err(_) => error.restore(py),
        }
    }

    /// Calls `protocol.<method>(*args)`; `None` once the protocol is gone.
    fn call<'py>(
        &self,
        py: Python<'py>,
        method: &Bound<'py, pyo3::types::PyString>,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> Option<PyResult<Bound<'py, PyAny>>> {
        let protocol = self.link.protocol.borrow().as_ref()?.bind(py).clone();
        Some(protocol.call_method1(method, args))
    }

    /// Feeds `data` to a BufferedProtocol: `get_buffer`, copy, `buffer_updated`.
    fn feed_buffered(&self, py: Python<'_>, mut data: &[u8]) -> Result<(), (PyErr, &'static str)> {
        let failed = "Fatal error: protocol.buffer_updated() call failed.";
        let get_failed = "Fatal error: protocol.get_buffer() call failed.";
        while !data.is_empty() {
            let Some(buffer) = self.call(py, intern!(py, "get_buffer"), (data.len(),)) else {
                return Ok(());
            };
            let buffer = buffer.map_err(|e| (e, get_failed))?;
            let view = PyMemoryView::from(&buffer).map_err(|e| (e, get_failed))?;
            let room = view.len().map_err(|e| (e, get_failed))?;
            if room == 0 {
                let e = PyRuntimeError::new_err("get_buffer() returned an empty buffer");
                return Err((e, get_failed));
            }
            let n = room.min(data.len());
            let slice = PySlice::new(py, 0, n as isize, 1);
            // A buffer that cannot take the bytes (read-only): asyncio's
            // recv_into fails there, with its read error's message.
            view.set_item(slice, PyBytes::new(py, &data[..n]))
                .map_err(|e| (e, "Fatal read error on socket transport"))?;
            if let Some(done) = self.call(py, intern!(py, "buffer_updated"), (n,)) {
                done.map_err(|e| (e, failed))?;
            }
            data = &data[n..];
        }
        Ok(())
    }
}

impl Drop for PyProtocol {
    fn drop(&mut self) {
        // The connection is over, also when the loop's close released it
        // without `connection_lost`: let go of the Python protocol, which
        // the core shares through `link` where Python's GC cannot see, so
        // a transport and protocol that hold each other can be collected.
        let protocol = match self.link.protocol.try_borrow_mut() {
            Ok(mut protocol) => protocol.take(),
            Err(_) => None,
        };
        // Dropped out of the cell: its `__del__` may ask for it.
        drop(protocol);
    }
}

impl Protocol for PyProtocol {
    fn connection_made(&mut self, transport: Transport) {
        Python::with_gil(|py| {
            self.rust = Some(transport.clone());
            let wrapped = match self.wrap_transport(py, &transport) {
                Ok(wrapped) => wrapped,
                Err(error) => {
                    transport.abort();
                    return self.report(py, error, "Fatal error: cannot wrap the transport.");
                }
            };
            self.transport = Some(wrapped.clone_ref(py));
            if self.link.get(py).is_none() {
                // The protocol factory raised: the caller was told.
                transport.abort();
                return;
            }
            if let Some(Err(error)) = self.call(py, intern!(py, "connection_made"), (wrapped,)) {
                self.fatal(
                    py,
                    error,
                    "Fatal error: protocol.connection_made() call failed.",
                );
                return;
            }
            if let Some(future) = self.announce.take() {
                crate::bridge::settle(py, &future, self.pair(py));
            }
        });
    }

    fn data_received(&mut self, data: &[u8]) {
        Python::with_gil(|py| {
            if self.link.buffered.get() {
                if let Err((error, message)) = self.feed_buffered(py, data) {
                    self.fatal(py, error, message);
                }
                return;
            }
            let bytes = PyBytes::new(py, data);
            let method = self
                .link
                .data_received
                .borrow()
                .as_ref()
                .map(|m| m.bind(py).clone());
            let outcome = match method {
                Some(method) => Some(method.call1((bytes,))),
                None => self.call(py, intern!(py, "data_received"), (bytes,)),
            };
            if let Some(Err(error)) = outcome {
                self.fatal(
                    py,
                    error,
                    "Fatal error: protocol.data_received() call failed.",
                );
            }
        });
    }

    fn eof_received(&mut self) -> bool {
        Python::with_gil(|py| {
            match self.call(py, intern!(py, "eof_received"), ()) {
                None => false,
                Some(Ok(keep_open)) => keep_open.is_truthy().unwrap_or(false),
                Some(Err(error)) => {
                    self.fatal(
                        py,
                        error,
                        "Fatal error: protocol.eof_received() call failed.",
                    );
                    // Closed already (aborted); keep evloop from closing twice.
                    true
                }
            }
        })
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        Python::with_gil(|py| {
            let exc = match self.fatal.take() {
                Some(fatal) => Some(fatal.into_value(py).into_any()),
                None => error.map(|e| io_to_py(py, e)),
            };
            if let Some(Err(failed)) = self.call(py, intern!(py, "connection_lost"), (exc,)) {
                self.report(
                    py,
                    failed,
                    "Exception in callback protocol.connection_lost()",
                );
            }
            if let Some(wrapped) = &self.transport {
                // Closes the socket object get_extra_info('socket') made.
                if let Err(failed) = wrapped.call_method0(py, intern!(py, "_forget_socket")) {
                    failed.write_unraisable(py, Some(wrapped.bind(py)));
                }
            }
            // asyncio lets go of the protocol here too; it breaks the cycle
            // transport → protocol → transport.
            let _ = self.link.set(py, None);
            self.rust = None;
        });
    }

    fn pause_writing(&mut self) {
        self.link.writing_paused.set(true);
        Python::with_gil(|py| {
            if let Some(Err(error)) = self.call(py, intern!(py, "pause_writing"), ()) {
                self.report(py, error, "protocol.pause_writing() failed");
            }
        });
    }

    fn resume_writing(&mut self) {
        self.link.writing_paused.set(false);
        Python::with_gil(|py| {
            if let Some(Err(error)) = self.call(py, intern!(py, "resume_writing"), ()) {
                self.report(py, error, "protocol.resume_writing() failed");
            }
        });
    }
}

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
    fn new(transport: Transport, link: Rc<Link>, remote: &RemoteLoop) -> StreamTransport {
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
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
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
        Ok(self.state()?.link.writing_paused.get())
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
        if let Ok(protocol) = this.link.protocol.try_borrow() {
            if let Some(protocol) = protocol.as_ref() {
                visit.call(protocol)?;
            }
        }
        if let Ok(method) = this.link.data_received.try_borrow() {
            if let Some(method) = method.as_ref() {
                visit.call(method)?;
            }
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        let Ok(this) = self.state.get_mut() else {
            return;
        };
        let protocol = this.link.protocol.borrow_mut().take();
        let method = this.link.data_received.borrow_mut().take();
        drop((protocol, method));
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
