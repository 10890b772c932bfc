//! The connection and server calls behind `evloop.Loop.create_connection`,
//! `create_server` and their unix twins: evloop's transports crate does the
//! work; these functions translate arguments and complete asyncio futures
//! (see [`crate::bridge`]). `_Server` is evloop's [`Server`] for Python.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use evloop_transports::{
    ConnectOptions, Family, Layer, ProtocolHandle, Server, ServerOptions, Transport,
    UnixConnectOptions, UnixServerOptions,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::bridge::{complete_with, Pending};
use crate::core_loop::{CoreLoop, Home, RemoteLoop};
use crate::errors::to_py;
use crate::protocol::PyProtocol;
use crate::thread_bound::{LoopBound, ThreadBound};
use crate::tls::PyTlsConfig;
use crate::transport::address_to_py;

/// A server's Python protocol factory, until the server is closed.
type FactorySlot = Rc<RefCell<Option<Py<PyAny>>>>;

/// What every call gets from Python: the loop, the asyncio future to
/// complete, the protocol factory and the transport class.
pub(crate) struct Call {
    pub(crate) home: Home,
    py_loop: Py<PyAny>,
    future: Py<PyAny>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
}

impl Call {
    /// The call's loop (on its thread; RuntimeError elsewhere) and
    /// arguments.
    pub(crate) fn new(
        core: &Bound<'_, CoreLoop>,
        future: Py<PyAny>,
        factory: Py<PyAny>,
        wrap: Py<PyAny>,
    ) -> PyResult<Call> {
        Ok(Call {
            home: CoreLoop::home(core)?,
            py_loop: core.clone().into_any().unbind(),
            future,
            factory,
            wrap,
        })
    }

    /// The one-shot factory for a client connection; a factory error is
    /// kept in `failed` for the caller. The protocol completes the call's
    /// future right after `connection_made`.
    pub(crate) fn client_factory(
        &self,
        failed: &Rc<RefCell<Option<PyErr>>>,
    ) -> impl FnOnce() -> PyProtocol {
        let (factory, py_loop, wrap, future) = Python::with_gil(|py| {
            (
                self.factory.clone_ref(py),
                self.py_loop.clone_ref(py),
                self.wrap.clone_ref(py),
                self.future.clone_ref(py),
            )
        });
        let remote = self.home.remote.clone();
        let failed = failed.clone();
        move || {
            Python::with_gil(|py| {
                let (mut protocol, error) =
                    PyProtocol::new(py, &factory, (&py_loop, &remote), &wrap);
                protocol.announce_to(future);
                *failed.borrow_mut() = error;
                protocol
            })
        }
    }

    /// The per-connection factory of a server; a factory error goes to the
    /// exception handler (asyncio's "Error on transport creation"). The
    /// Python factory lives in the returned slot, which `_Server.close`
    /// empties: evloop's server holds the closure where Python's GC cannot
    /// see, so a factory referring to its server would otherwise be a
    /// cycle never collected.
    fn server_factory(self) -> (impl Fn() -> PyProtocol, FactorySlot) {
        let slot: FactorySlot = Rc::new(RefCell::new(Some(self.factory)));
        let factory = slot.clone();
        let remote = self.home.remote;
        let make = move || {
            Python::with_gil(|py| {
                // Cloned out first: the factory may close its server.
                let current = factory.borrow().as_ref().map(|f| f.clone_ref(py));
                let current = current.unwrap_or_else(|| py.None());
                let (protocol, error) =
                    PyProtocol::new(py, &current, (&self.py_loop, &remote), &self.wrap);
                if let Some(error) = error {
                    report_accept_error(py, &self.py_loop, error);
                }
                protocol
            })
        };
        (make, slot)
    }
}

fn report_accept_error(py: Python<'_>, py_loop: &Py<PyAny>, error: PyErr) {
    let context = pyo3::types::PyDict::new(py);
    let reported = context
        .set_item(
            "message",
            "Error on transport creation for incoming connection",
        )
        .and_then(|()| context.set_item("exception", error.value(py)))
        .and_then(|()| py_loop.call_method1(py, "call_exception_handler", (context,)));
    if let Err(failed) = reported {
        failed.write_unraisable(py, None);
    }
}

/// Completes `call.future` with `(transport, protocol)` once `connect` is done.
pub(crate) fn finish_connection<F>(
    call: Call,
    failed: Rc<RefCell<Option<PyErr>>>,
    connect: F,
) -> PyResult<Pending>
where
    F: std::future::Future<
            Output = Result<(Transport, ProtocolHandle<PyProtocol>), evloop_core::Error>,
        > + 'static,
{
    let work = async move {
        let outcome = connect.await;
        Python::with_gil(|py| {
            if let Some(error) = failed.borrow_mut().take() {
                return Err(error);
            }
            let (_transport, handle) = outcome.map_err(to_py)?;
            handle.with(|p| p.pair(py)).map_err(to_py)?
        })
    };
    complete_with(&call.home, call.future, work)
}

/// Takes ownership of the fd of a `sock=` argument (an `os.dup` the Python
/// side made for evloop).
pub(crate) fn own_fd(fd: Option<RawFd>) -> PyResult<Option<OwnedFd>> {
    match fd {
        Some(fd) if fd < 0 => Err(PyValueError::new_err("sock is closed")),
        // SAFETY: the Python side made this fd with `os.dup` for this call
        // and keeps no other handle to it, so nothing else closes it.
        Some(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        None => Ok(None),
    }
}

pub(crate) fn family(raw: i32) -> PyResult<Family> {
    if raw == 0 {
        return Ok(Family::Unspec);
    }
    Family::from_raw(raw).ok_or_else(|| PyValueError::new_err(format!("unsupported family {raw}")))
}

fn seconds(value: f64, name: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be a non-negative number")))
}

/// The TLS layer of a call with `ssl=` (a `_TlsConfig`), for this
/// connection's name to verify and timeouts.
fn tls_layer(
    tls: Option<PyRef<'_, PyTlsConfig>>,
    server_hostname: Option<String>,
    (handshake, shutdown): (Option<f64>, Option<f64>),
) -> PyResult<Option<Layer>> {
    tls.map(|tls| {
        tls.for_connection(server_hostname, handshake, shutdown)
            .map(Layer::from)
    })
    .transpose()
}

/// `loop.create_connection` (host/port or a `sock=` fd).
#[pyfunction]
#[pyo3(signature = (future, core, factory, wrap, host, port, *, fd = None, family_raw = 0,
    local_addr = None, happy_eyeballs_delay = None, interleave = None, tls = None,
    server_hostname = None, timeouts = (None, None)))]
#[allow(clippy::too_many_arguments)] // asyncio's parameters, one by one
pub(crate) fn create_connection(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    host: Option<String>,
    port: Option<u16>,
    fd: Option<RawFd>,
    family_raw: i32,
    local_addr: Option<(String, u16)>,
    happy_eyeballs_delay: Option<f64>,
    interleave: Option<usize>,
    tls: Option<PyRef<'_, PyTlsConfig>>,
    server_hostname: Option<String>,
    timeouts: (Option<f64>, Option<f64>),
) -> PyResult<Pending> {
    let mut options = ConnectOptions::default();
    options.tls = tls_layer(tls, server_hostname, timeouts)?;
    options.sock = own_fd(fd)?;
    options.family = family(family_raw)?;
    if let Some((ip, port)) = local_addr {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| PyValueError::new_err(format!("local_addr {ip:?} is not numeric")))?;
        options.local_addr = Some(SocketAddr::new(ip, port));
    }
    options.happy_eyeballs_delay = happy_eyeballs_delay
        .map(|d| seconds(d, "happy_eyeballs_delay"))
        .transpose()?;
    options.interleave = interleave;
    let call = Call::new(core, future, factory, wrap)?;
    let failed = Rc::default();
    let factory = call.client_factory(&failed);
    let connect = evloop_transports::create_connection(
        &call.home.event_loop,
        factory,
        host.as_deref(),
        port,
        options,
    );
    finish_connection(call, failed, connect)
}

/// `loop.create_unix_connection` (a path or a `sock=` fd).
#[pyfunction]
#[pyo3(signature = (future, core, factory, wrap, path, *, fd = None, tls = None,
    server_hostname = None, timeouts = (None, None)))]
#[allow(clippy::too_many_arguments)] // asyncio's parameters, one by one
pub(crate) fn create_unix_connection(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    path: Option<PathBuf>,
    fd: Option<RawFd>,
    tls: Option<PyRef<'_, PyTlsConfig>>,
    server_hostname: Option<String>,
    timeouts: (Option<f64>, Option<f64>),
) -> PyResult<Pending> {
    let mut options = UnixConnectOptions::default();
    options.tls = tls_layer(tls, server_hostname, timeouts)?;
    options.sock = own_fd(fd)?;
    let call = Call::new(core, future, factory, wrap)?;
    let failed = Rc::default();
    let factory = call.client_factory(&failed);
    let connect = evloop_transports::create_unix_connection(
        &call.home.event_loop,
        factory,
        path.unwrap_or_default(),
        options,
    );
    finish_connection(call, failed, connect)
}

/// `loop.connect_accepted_socket` (a `sock=` fd); `tls` is a server-side
/// `_TlsConfig` (asyncio's `connect_accepted_socket(ssl=)` serves).
#[pyfunction]
#[pyo3(signature = (future, core, factory, wrap, fd, *, tls = None, timeouts = (None, None)))]
pub(crate) fn connect_accepted_socket(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    fd: RawFd,
    tls: Option<PyRef<'_, PyTlsConfig>>,
    timeouts: (Option<f64>, Option<f64>),
) -> PyResult<Pending> {
    let tls = tls_layer(tls, None, timeouts)?;
    let sock = own_fd(Some(fd))?.ok_or_else(|| PyValueError::new_err("no sock"))?;
    let call = Call::new(core, future, factory, wrap)?;
    let failed = Rc::default();
    let factory = call.client_factory(&failed);
    let connect =
        evloop_transports::connect_accepted_socket(&call.home.event_loop, factory, sock, tls);
    finish_connection(call, failed, connect)
}

/// `loop.create_server`: completes `future` with a `_Server`.
#[pyfunction]
#[pyo3(signature = (future, core, factory, wrap, hosts, port, *, fd = None, family_raw = 0,
    backlog = 100, reuse_address = None, reuse_port = false, start_serving = true, tls = None,
    timeouts = (None, None)))]
#[allow(clippy::too_many_arguments)] // asyncio's parameters, one by one
pub(crate) fn create_server(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    hosts: Vec<String>,
    port: u16,
    fd: Option<RawFd>,
    family_raw: i32,
    backlog: u32,
    reuse_address: Option<bool>,
    reuse_port: bool,
    start_serving: bool,
    tls: Option<PyRef<'_, PyTlsConfig>>,
    timeouts: (Option<f64>, Option<f64>),
) -> PyResult<Pending> {
    let mut options = ServerOptions::default()
        .host(hosts)
        .port(port)
        .family(family(family_raw)?)
        .backlog(backlog)
        .reuse_port(reuse_port)
        .start_serving(start_serving);
    options.reuse_address = reuse_address;
    options.tls = tls_layer(tls, None, timeouts)?;
    options.sock = own_fd(fd)?;
    let call = Call::new(core, future, factory, wrap)?;
    let (home, future) = (
        call.home.clone(),
        Python::with_gil(|py| call.future.clone_ref(py)),
    );
    let (factory, slot) = call.server_factory();
    let serve = evloop_transports::create_server(&home.event_loop, factory, options);
    finish_server(home, future, serve, slot)
}

/// `loop.create_unix_server`: completes `future` with a `_Server`.
#[pyfunction]
#[pyo3(signature = (future, core, factory, wrap, path, *, fd = None, backlog = 100,
    start_serving = true, cleanup_socket = true, tls = None, timeouts = (None, None)))]
#[allow(clippy::too_many_arguments)] // asyncio's parameters, one by one
pub(crate) fn create_unix_server(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    factory: Py<PyAny>,
    wrap: Py<PyAny>,
    path: Option<PathBuf>,
    fd: Option<RawFd>,
    backlog: u32,
    start_serving: bool,
    cleanup_socket: bool,
    tls: Option<PyRef<'_, PyTlsConfig>>,
    timeouts: (Option<f64>, Option<f64>),
) -> PyResult<Pending> {
    let mut options = UnixServerOptions::default()
        .backlog(backlog)
        .start_serving(start_serving)
        .cleanup_socket(cleanup_socket);
    options.tls = tls_layer(tls, None, timeouts)?;
    options.sock = own_fd(fd)?;
    let call = Call::new(core, future, factory, wrap)?;
    let (home, future) = (
        call.home.clone(),
        Python::with_gil(|py| call.future.clone_ref(py)),
    );
    let (factory, slot) = call.server_factory();
    let serve =
        evloop_transports::create_unix_server(&home.event_loop, factory, path.as_deref(), options);
    finish_server(home, future, serve, slot)
}

fn finish_server<F>(
    home: Home,
    future: Py<PyAny>,
    serve: F,
    factory: FactorySlot,
) -> PyResult<Pending>
where
    F: std::future::Future<Output = Result<Server, evloop_core::Error>> + 'static,
{
    let bound = home.clone();
    complete_with(&home, future, async move {
        let server = serve.await.map_err(to_py)?;
        let state = ServerState {
            server,
            home: bound.clone(),
            factory,
        };
        Python::with_gil(|py| {
            let server = PyServer {
                state: bound.bind(state),
            };
            Ok(Py::new(py, server)?.into_any())
        })
    })
}

/// evloop's listening [`Server`]; `evloop.Server` (an
/// `asyncio.AbstractServer`) delegates to it. Usable on its loop's thread
/// only (RuntimeError elsewhere).
#[pyclass(module = "evloop._core", name = "_Server")]
pub struct PyServer {
    state: ThreadBound<ServerState>,
}

/// What a [`PyServer`] owns, on the loop's thread.
struct ServerState {
    server: Server,
    home: Home,
    /// The protocol factory, let go of on close.
    factory: FactorySlot,
}

impl LoopBound for ServerState {
    fn remote(&self, _py: Python<'_>) -> Option<RemoteLoop> {
        Some(self.home.remote.clone())
    }
}

impl std::fmt::Debug for PyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyServer").finish_non_exhaustive()
    }
}

impl PyServer {
    /// The state, on the loop's thread (RuntimeError elsewhere).
    fn state(&self) -> PyResult<&ServerState> {
        Ok(self.state.get()?)
    }
}

#[pymethods]
impl PyServer {
    /// Stops listening (the listening sockets close); connections stay.
    /// The protocol factory is let go of: nothing more is accepted.
    fn close(&self) -> PyResult<()> {
        let this = self.state()?;
        this.server.close();
        let factory = this.factory.borrow_mut().take();
        drop(factory);
        Ok(())
    }

    /// True while accepting.
    fn is_serving(&self) -> PyResult<bool> {
        Ok(self.state()?.server.is_serving())
    }

    /// Starts accepting (idempotent).
    fn start_serving(&self) -> PyResult<()> {
        self.state()?.server.start_serving().map_err(to_py)
    }

    /// The listening fds (empty once closed).
    fn fds(&self) -> PyResult<Vec<RawFd>> {
        Ok(self.state()?.server.fds())
    }

    /// The listening addresses, as the socket module gives them.
    fn addresses<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let addresses = self
            .state()?
            .server
            .sockets()
            .iter()
            .map(|a| address_to_py(py, a))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, addresses)
    }

    /// Closes every accepted connection (after flushing).
    fn close_clients(&self) -> PyResult<()> {
        self.state()?.server.close_clients();
        Ok(())
    }

    /// Aborts every accepted connection.
    fn abort_clients(&self) -> PyResult<()> {
        self.state()?.server.abort_clients();
        Ok(())
    }

    /// Completes `future` once closed and every connection is gone.
    fn wait_closed(&self, future: Py<PyAny>) -> PyResult<Pending> {
        let this = self.state()?;
        let wait = this.server.wait_closed();
        complete_with(&this.home, future, async move {
            wait.await;
            Ok(Python::with_gil(|py| py.None()))
        })
    }

    /// Serves until closed; completes `future` then (with CancelledError,
    /// as asyncio). Cancelling the returned `_Pending` closes the server.
    fn serve_forever(&self, future: Py<PyAny>) -> PyResult<Pending> {
        let this = self.state()?;
        let serve = this.server.serve_forever();
        complete_with(&this.home, future, async move {
            serve.await.map_err(to_py)?;
            Ok(Python::with_gil(|py| py.None()))
        })
    }
}
