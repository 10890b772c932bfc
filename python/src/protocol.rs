//! [`PyProtocol`]: the evloop [`Protocol`] that calls a Python protocol
//! (`asyncio.Protocol` or `asyncio.BufferedProtocol`) for evloop's stream
//! transports, and the [`Link`] it shares with `_StreamTransport`.
//!
//! Protocol callbacks run with the GIL; an exception from one goes to the
//! loop's exception handler with asyncio's keys (`message`, `exception`,
//! `transport`, `protocol`) and aborts the transport, as asyncio's
//! `_fatal_error` does. KeyboardInterrupt and SystemExit stop the loop and
//! leave `run_forever` instead. Data for evloop's native streams goes to
//! their protocol without Python's call protocol.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use evloop_transports::{Protocol, Transport};
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyMemoryView, PySlice, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::core_loop::{CoreLoop, RemoteLoop};
use crate::errors::leaves_loop;
use crate::streams::StreamProtocol;
use crate::transport::{io_to_py, StreamTransport};

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
    /// Where data goes, looked up once per protocol (as uvloop does): the
    /// hot path then makes no bound method per chunk.
    data_received: RefCell<Option<Receiver>>,
}

/// A protocol's `data_received`.
#[derive(Debug)]
enum Receiver {
    /// evloop's native streams' own: fed without Python's call protocol.
    Native(Py<StreamProtocol>),
    /// Any other: the bound method.
    Method(Py<PyAny>),
}

impl Receiver {
    /// `protocol`'s, None if it has none (it fails when data comes, as in
    /// asyncio, not here).
    fn of(protocol: &Bound<'_, PyAny>) -> Option<Receiver> {
        let method = protocol
            .getattr(intern!(protocol.py(), "data_received"))
            .ok()?;
        match StreamProtocol::own_method(protocol, &method) {
            Some(native) => Some(Receiver::Native(native)),
            None => Some(Receiver::Method(method.unbind())),
        }
    }

    fn receive(&self, py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        match self {
            Receiver::Native(protocol) => StreamProtocol::receive(protocol.bind(py), data.as_any()),
            Receiver::Method(method) => method.call1(py, (data,)).map(drop),
        }
    }

    fn clone_ref(&self, py: Python<'_>) -> Receiver {
        match self {
            Receiver::Native(protocol) => Receiver::Native(protocol.clone_ref(py)),
            Receiver::Method(method) => Receiver::Method(method.clone_ref(py)),
        }
    }

    fn object(&self) -> &Py<PyAny> {
        match self {
            Receiver::Native(protocol) => protocol.as_any(),
            Receiver::Method(method) => method,
        }
    }
}

impl Link {
    /// Makes `protocol` the one called from now on.
    pub(crate) fn set(&self, py: Python<'_>, protocol: Option<Py<PyAny>>) -> PyResult<()> {
        let (buffered, data_received) = match &protocol {
            Some(p) => {
                static BUFFERED: GILOnceCell<Py<PyType>> = GILOnceCell::new();
                let class = BUFFERED.import(py, "asyncio", "BufferedProtocol")?;
                let p = p.bind(py);
                let buffered = p.is_instance(class)?;
                (buffered, (!buffered).then(|| Receiver::of(p)).flatten())
            }
            None => (false, None),
        };
        self.buffered.set(buffered);
        *self.data_received.borrow_mut() = data_received;
        *self.protocol.borrow_mut() = protocol;
        Ok(())
    }

    /// The protocol (None once the connection is lost).
    pub(crate) fn get(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol.borrow().as_ref().map(|p| p.clone_ref(py))
    }

    /// Between the protocol's `pause_writing` and `resume_writing`.
    pub(crate) fn writing_paused(&self) -> bool {
        self.writing_paused.get()
    }

    /// Shows Python's GC the objects held (its transport's `__traverse__`).
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(protocol) = self.protocol.try_borrow() {
            if let Some(protocol) = protocol.as_ref() {
                visit.call(protocol)?;
            }
        }
        if let Ok(receiver) = self.data_received.try_borrow() {
            if let Some(receiver) = receiver.as_ref() {
                visit.call(receiver.object())?;
            }
        }
        Ok(())
    }

    /// Lets go of the objects held (its transport's `__clear__`).
    pub(crate) fn clear(&self) {
        let protocol = self.protocol.borrow_mut().take();
        let receiver = self.data_received.borrow_mut().take();
        drop((protocol, receiver));
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
            // A copy: the protocol may replace itself (`set_protocol`).
            let receiver = self
                .link
                .data_received
                .borrow()
                .as_ref()
                .map(|r| r.clone_ref(py));
            let outcome = match receiver {
                Some(receiver) => Some(receiver.receive(py, &bytes)),
                None => self
                    .call(py, intern!(py, "data_received"), (bytes,))
                    .map(|called| called.map(drop)),
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
