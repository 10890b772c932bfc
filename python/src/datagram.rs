//! `_DatagramTransport`: evloop's [`DatagramTransport`] (UDP, unix datagram)
//! for Python, [`PyDatagramProtocol`], the evloop [`DatagramProtocol`] that
//! calls a Python `asyncio.DatagramProtocol`, and the calls behind
//! `loop.create_datagram_endpoint`.
//!
//! As in asyncio, an exception from a protocol callback goes to the loop's
//! exception handler and the endpoint stays open (asyncio runs these
//! callbacks as plain handles); KeyboardInterrupt and SystemExit leave
//! `run_forever`.

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use evloop_core::EventLoop;
use evloop_transports::{
    Address, DatagramOptions, DatagramProtocol, DatagramTransport, ProtocolHandle,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::bridge::{complete_with, Pending};
use crate::core_loop::{CoreLoop, Home, RemoteLoop};
use crate::errors::{leaves_loop, to_py};
use crate::thread_bound::{LoopBound, ThreadBound};
use crate::transport::{address_to_py, io_to_py, water_marks, with_bytes};

/// The Python protocol, shared by the transport (`get_protocol`,
/// `set_protocol`) and the [`PyDatagramProtocol`] that calls it.
type Link = Rc<RefCell<Option<Py<PyAny>>>>;

/// evloop's protocol side of an endpoint: forwards each callback to the
/// Python protocol.
pub(crate) struct PyDatagramProtocol {
    link: Link,
    /// The Python loop, for its exception handler.
    event_loop: Py<PyAny>,
    /// Its thread-safe half, for the transport made here.
    remote: RemoteLoop,
    /// `evloop.DatagramTransport`, the class that wraps `_DatagramTransport`.
    wrap: Py<PyAny>,
    /// The Python transport, from `connection_made` on.
    transport: Option<Py<PyAny>>,
    /// The protocol the factory made, for the call's result.
    made: Option<Py<PyAny>>,
}

impl PyDatagramProtocol {
    /// A protocol from `factory()`; if it raises, the error is returned and
    /// the endpoint is aborted on `connection_made`.
    fn new(
        py: Python<'_>,
        factory: &Py<PyAny>,
        (event_loop, remote): (&Py<PyAny>, &RemoteLoop),
        wrap: &Py<PyAny>,
    ) -> (PyDatagramProtocol, Option<PyErr>) {
        let (made, error) = match factory.call0(py) {
            Ok(made) => (Some(made), None),
            Err(error) => (None, Some(error)),
        };
        let link = Rc::new(RefCell::new(made.as_ref().map(|p| p.clone_ref(py))));
        let protocol = PyDatagramProtocol {
            link,
            event_loop: event_loop.clone_ref(py),
            remote: remote.clone(),
            wrap: wrap.clone_ref(py),
            transport: None,
            made,
        };
        (protocol, error)
    }

    /// `(transport, protocol)` once the endpoint is up.
    fn pair(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let transport = self
            .transport
            .as_ref()
            .map(|t| t.clone_ref(py))
            .ok_or_else(|| PyRuntimeError::new_err("the endpoint was never made"))?;
        let protocol = self.made.as_ref().map(|p| p.clone_ref(py));
        Ok(
            PyTuple::new(py, [transport, protocol.into_pyobject(py)?.unbind()])?
                .into_any()
                .unbind(),
        )
    }

    /// Calls `protocol.<method>(*args)`; an exception goes to the handler.
    fn call<'py>(
        &self,
        py: Python<'py>,
        method: &Bound<'py, PyString>,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) {
        let Some(protocol) = self.link.borrow().as_ref().map(|p| p.clone_ref(py)) else {
            return;
        };
        if let Err(error) = protocol.bind(py).call_method1(method, args) {
            let message = format!("Exception in callback protocol.{method}()");
            self.report(py, error, &message);
        }
    }

    /// Sends `error` to the loop's exception handler with asyncio's keys;
    /// KeyboardInterrupt and SystemExit stop the loop instead.
    fn report(&self, py: Python<'_>, error: PyErr, message: &str) {
        if leaves_loop(py, &error) {
            self.stop_loop(py, error);
            return;
        }
        let reported = (|| -> PyResult<()> {
            let context = PyDict::new(py);
            context.set_item("message", message)?;
            context.set_item("exception", error.value(py))?;
            context.set_item("transport", self.transport.as_ref().map(|t| t.bind(py)))?;
            context.set_item("protocol", self.link.borrow().as_ref().map(|p| p.bind(py)))?;
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
}

impl DatagramProtocol for PyDatagramProtocol {
    fn connection_made(&mut self, transport: DatagramTransport) {
        Python::with_gil(|py| {
            let state = DatagramState {
                transport: transport.clone(),
                link: self.link.clone(),
                remote: self.remote.clone(),
            };
            let core = PyDatagramTransport {
                state: ThreadBound::new(self.remote.owner(), state),
            };
            let wrapped = Py::new(py, core).and_then(|c| self.wrap.call1(py, (c,)));
            let wrapped = match wrapped {
                Ok(wrapped) => wrapped,
                Err(error) => {
                    transport.abort();
                    return self.report(py, error, "Fatal error: cannot wrap the transport.");
                }
            };
            self.transport = Some(wrapped.clone_ref(py));
            if self.link.borrow().is_none() {
                // The protocol factory raised: the caller is told.
                transport.abort();
                return;
            }
            self.call(py, intern!(py, "connection_made"), (wrapped,));
        });
    }

    fn datagram_received(&mut self, data: &[u8], addr: Address) {
        Python::with_gil(|py| {
            let addr = match address_to_py(py, &addr) {
                Ok(addr) => addr,
                Err(error) => return self.report(py, error, "cannot convert the address"),
            };
            let data = PyBytes::new(py, data);
            self.call(py, intern!(py, "datagram_received"), (data, addr));
        });
    }

    fn error_received(&mut self, error: io::Error) {
        Python::with_gil(|py| {
            let exc = io_to_py(py, error);
            self.call(py, intern!(py, "error_received"), (exc,));
        });
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        Python::with_gil(|py| {
            let exc = error.map(|e| io_to_py(py, e));
            self.call(py, intern!(py, "connection_lost"), (exc,));
            if let Some(wrapped) = &self.transport {
                // Closes the socket object get_extra_info('socket') made.
                if let Err(failed) = wrapped.call_method0(py, intern!(py, "_forget_socket")) {
                    failed.write_unraisable(py, Some(wrapped.bind(py)));
                }
            }
            // Breaks the cycle transport → protocol → transport, as asyncio
            // lets go of its protocol here.
            *self.link.borrow_mut() = None;
        });
    }

    fn pause_writing(&mut self) {
        Python::with_gil(|py| self.call(py, intern!(py, "pause_writing"), ()));
    }

    fn resume_writing(&mut self) {
        Python::with_gil(|py| self.call(py, intern!(py, "resume_writing"), ()));
    }
}

/// The Rust half of `evloop.DatagramTransport`: evloop's datagram transport.
/// Usable on its loop's thread only (RuntimeError elsewhere).
#[pyclass(module = "evloop._core", name = "_DatagramTransport")]
pub struct PyDatagramTransport {
    state: ThreadBound<DatagramState>,
}

/// What a [`PyDatagramTransport`] owns, on the loop's thread.
struct DatagramState {
    transport: DatagramTransport,
    link: Link,
    /// The loop's thread-safe half (to be dropped on another thread).
    remote: RemoteLoop,
}

impl LoopBound for DatagramState {
    fn remote(&self, _py: Python<'_>) -> Option<RemoteLoop> {
        Some(self.remote.clone())
    }
}

impl std::fmt::Debug for PyDatagramTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyDatagramTransport")
            .finish_non_exhaustive()
    }
}

impl PyDatagramTransport {
    /// The state, on the loop's thread (RuntimeError elsewhere).
    #[inline]
    fn state(&self) -> PyResult<&DatagramState> {
        Ok(self.state.get()?)
    }
}

#[pymethods]
impl PyDatagramTransport {
    /// Sends one datagram to `addr`: `None` (the connected peer), a
    /// `(host, port, ...)` tuple with a numeric host, or a unix path.
    #[pyo3(signature = (data, addr = None))]
    fn sendto(&self, data: &Bound<'_, PyAny>, addr: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let transport = &self.state()?.transport;
        let sent = match addr {
            None => with_bytes(data, |b| transport.sendto(b, None))?,
            Some(addr) if addr.is_instance_of::<PyTuple>() => {
                let (host, port): (String, u16) = addr
                    .get_item(0)?
                    .extract()
                    .and_then(|h| Ok((h, addr.get_item(1)?.extract()?)))?;
                with_bytes(data, |b| transport.sendto_host(b, &host, port))?
            }
            Some(addr) => {
                let path: PathBuf = addr.extract()?;
                let path = Address::UnixPath(path);
                with_bytes(data, |b| transport.sendto(b, Some(path)))?
            }
        };
        sent.map_err(to_py)
    }

    /// Closes after sending what is queued; `connection_lost(None)` follows.
    fn close(&self) -> PyResult<()> {
        self.state()?.transport.close();
        Ok(())
    }

    /// Closes now, dropping what is queued.
    fn abort(&self) -> PyResult<()> {
        self.state()?.transport.abort();
        Ok(())
    }

    /// True once closing or closed.
    fn is_closing(&self) -> PyResult<bool> {
        Ok(self.state()?.transport.is_closing())
    }

    /// Bytes queued, waiting for the socket.
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

    /// The Python protocol (None once the endpoint is closed).
    fn get_protocol(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let link = self.state()?.link.borrow();
        Ok(link.as_ref().map(|p| p.clone_ref(py)))
    }

    /// Sends the following events to `protocol`.
    fn set_protocol(&self, protocol: Py<PyAny>) -> PyResult<()> {
        *self.state()?.link.borrow_mut() = Some(protocol);
        Ok(())
    }

    /// The connected peer's address, None when unconnected.
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

    /// The socket's fd until the endpoint is lost.
    fn fileno(&self) -> PyResult<Option<i32>> {
        Ok(self.state()?.transport.fd())
    }

    /// Shows Python's GC the protocol (see `_StreamTransport`'s): an
    /// endpoint evloop let go of without `connection_lost` is collectable.
    /// Nothing on another thread (the state is the loop thread's).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Ok(this) = self.state.get() else {
            return Ok(());
        };
        if let Ok(protocol) = this.link.try_borrow() {
            if let Some(protocol) = protocol.as_ref() {
                visit.call(protocol)?;
            }
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        let Ok(this) = self.state.get_mut() else {
            return;
        };
        let protocol = this.link.borrow_mut().take();
        drop(protocol);
    }
}

/// What `create_datagram_endpoint` gets from Python besides the addresses.
struct Endpoint {
    home: Home,
    py_loop: Py<PyAny>,
    future: Py<PyAny>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
}

impl Endpoint {
    /// Runs `open` (evloop's endpoint call, given the one-shot protocol
    /// factory) and completes the future with `(transport, protocol)`.
    fn start<F, O>(self, open: O) -> PyResult<Pending>
    where
        O: FnOnce(&EventLoop, Box<dyn FnOnce() -> PyDatagramProtocol>) -> F,
        F: std::future::Future<
                Output = Result<
                    (DatagramTransport, ProtocolHandle<PyDatagramProtocol>),
                    evloop_core::Error,
                >,
            > + 'static,
    {
        let failed: Rc<RefCell<Option<PyErr>>> = Rc::default();
        let (factory, py_loop, wrap) = (self.factory, self.py_loop, self.wrap);
        let remote = self.home.remote.clone();
        let error_slot = failed.clone();
        let make = Box::new(move || {
            Python::with_gil(|py| {
                let (protocol, error) =
                    PyDatagramProtocol::new(py, &factory, (&py_loop, &remote), &wrap);
                *error_slot.borrow_mut() = error;
                protocol
            })
        });
        let opening = open(&self.home.event_loop, make);
        complete_with(&self.home, self.future, async move {
            let outcome = opening.await;
            Python::with_gil(|py| {
                if let Some(error) = failed.borrow_mut().take() {
                    return Err(error);
                }
                let (_transport, handle) = outcome.map_err(to_py)?;
                handle.with(|p| p.pair(py)).map_err(to_py)?
            })
        })
    }
}

/// `loop.create_datagram_endpoint` for internet sockets (or a `sock=` fd).
#[pyfunction]
#[pyo3(signature = (future, core, factory, wrap, *, local_addr = None, remote_addr = None,
    fd = None, family_raw = 0, proto = 0, reuse_port = false, allow_broadcast = false))]
#[allow(clippy::too_many_arguments)] // asyncio's parameters, one by one
pub(crate) fn create_datagram_endpoint(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    local_addr: Option<(String, u16)>,
    remote_addr: Option<(String, u16)>,
    fd: Option<i32>,
    family_raw: i32,
    proto: i32,
    reuse_port: bool,
    allow_broadcast: bool,
) -> PyResult<Pending> {
    let mut options = DatagramOptions::default()
        .family(crate::network::family(family_raw)?)
        .proto(proto)
        .reuse_port(reuse_port)
        .allow_broadcast(allow_broadcast);
    options.local_addr = local_addr;
    options.remote_addr = remote_addr;
    options.sock = crate::network::own_fd(fd)?;
    endpoint(core, future, factory, wrap)?
        .start(move |lp, make| evloop_transports::create_datagram_endpoint(lp, make, options))
}

/// `loop.create_datagram_endpoint(family=AF_UNIX)`: paths.
#[pyfunction]
#[pyo3(signature = (future, core, factory, wrap, *, local_path = None, remote_path = None))]
pub(crate) fn create_unix_datagram_endpoint(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    local_path: Option<PathBuf>,
    remote_path: Option<PathBuf>,
) -> PyResult<Pending> {
    endpoint(core, future, factory, wrap)?.start(move |lp, make| {
        evloop_transports::create_unix_datagram_endpoint(
            lp,
            make,
            local_path.as_deref(),
            remote_path.as_deref(),
        )
    })
}

/// The call's loop (on its thread; RuntimeError elsewhere) and arguments.
fn endpoint(
    core: &Bound<'_, CoreLoop>,
    future: Py<PyAny>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
) -> PyResult<Endpoint> {
    Ok(Endpoint {
        home: CoreLoop::home(core)?,
        py_loop: core.clone().into_any().unbind(),
        future,
        factory,
        wrap,
    })
}
