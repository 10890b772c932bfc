//! Listening servers (asyncio's `create_server` and `Server`), one type for
//! TCP and unix listeners: binding (every interface, duplicates once,
//! `SO_REUSEADDR`/`SO_REUSEPORT`/`IPV6_V6ONLY`), the accept loop with its
//! back-off when the process runs out of fds, and the server's lifecycle
//! (`close`, `wait_closed`, `serve_forever`, `close_clients`, …).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use evloop_core::{Error, ErrorContext, EventLoop, FdClaim, LoopFuture};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketType};

use crate::address::Address;
use crate::family::{Family, AI_PASSIVE, SOCK_STREAM};
use crate::layer::Layer;
use crate::protocol::Protocol;
use crate::resolve::{resolve, ResolveHints};
use crate::socket;
use crate::tcp::{layered, start_stream};
use crate::transport::{plain_sink, FdKind, StreamSpec, Transport};

/// How long the accept loop rests after running out of fds or memory.
pub(crate) const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// `create_server`'s keyword arguments.
///
/// Built from `Default` with one setter per field, so later options are
/// additive; the fields stay public to read (and to set on a `let mut`).
///
/// ```
/// use evloop_transports::ServerOptions;
///
/// let options = ServerOptions::default().host(["127.0.0.1", "::1"]).port(0).reuse_port(true);
/// assert_eq!(options.host, ["127.0.0.1", "::1"]);
/// assert_eq!(options.backlog, 100);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Hosts to bind; empty = every interface (an IPv4 and an IPv6 socket,
    /// the latter `IPV6_V6ONLY`). Addresses resolving alike bind once.
    pub host: Vec<String>,
    /// The port (0 = an ephemeral port per socket).
    pub port: u16,
    /// Which addresses to resolve the hosts to: [`Family::Unspec`] (any,
    /// the default), [`Family::Inet`] or [`Family::Inet6`].
    pub family: Family,
    /// An already-bound stream socket to serve instead of host/port.
    pub sock: Option<OwnedFd>,
    /// `listen` backlog, and the most connections accepted per wake-up (100).
    pub backlog: u32,
    /// `SO_REUSEADDR`; `None` = on (asyncio's POSIX default).
    pub reuse_address: Option<bool>,
    /// `SO_REUSEPORT` (off by default).
    pub reuse_port: bool,
    /// Start accepting at once (true) or at [`Server::start_serving`].
    pub start_serving: bool,
    /// Run TLS (or another [`Layer`]) over every accepted connection
    /// (asyncio's `ssl=`): `evloop_tls::ServerTls` converts into one.
    #[doc(alias = "ssl")]
    pub tls: Option<Layer>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            host: Vec::new(),
            port: 0,
            family: Family::Unspec,
            sock: None,
            backlog: 100,
            reuse_address: None,
            reuse_port: false,
            start_serving: true,
            tls: None,
        }
    }
}

impl ServerOptions {
    /// Binds `hosts` (every interface when empty).
    #[must_use = "returns the changed options"]
    pub fn host(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.host = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Binds `port` (0: an ephemeral port per socket).
    #[must_use = "returns the changed options"]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Resolves the hosts to addresses of `family` only.
    #[must_use = "returns the changed options"]
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// Serves `sock`, an already-bound stream socket, instead of host/port.
    #[must_use = "returns the changed options"]
    pub fn sock(mut self, sock: OwnedFd) -> Self {
        self.sock = Some(sock);
        self
    }

    /// Sets the `listen` backlog (and the most accepts per wake-up).
    #[must_use = "returns the changed options"]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Sets or clears `SO_REUSEADDR` (set unless told otherwise).
    #[must_use = "returns the changed options"]
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = Some(on);
        self
    }

    /// Sets or clears `SO_REUSEPORT`.
    #[must_use = "returns the changed options"]
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Starts accepting at once (`true`) or at [`Server::start_serving`].
    #[must_use = "returns the changed options"]
    pub fn start_serving(mut self, on: bool) -> Self {
        self.start_serving = on;
        self
    }

    /// Runs `tls` (an `evloop_tls::ServerTls`, or another [`Layer`]) over
    /// every accepted connection.
    #[must_use = "returns the changed options"]
    #[doc(alias = "ssl")]
    pub fn tls(mut self, tls: impl Into<Layer>) -> Self {
        self.tls = Some(tls.into());
        self
    }
}

/// A listening socket a [`Server`] serves.
pub(crate) struct Listener {
    pub(crate) fd: OwnedFd,
    pub(crate) backlog: u32,
    /// A unix socket file to remove on close if its inode is still ours.
    pub(crate) cleanup: Option<SocketFile>,
}

/// A unix socket file a server created: its path and identity.
#[derive(Debug)]
pub(crate) struct SocketFile {
    pub(crate) path: PathBuf,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl SocketFile {
    /// Records the file now at `path` (if any).
    pub(crate) fn record(path: PathBuf) -> Option<SocketFile> {
        let stat = rustix::fs::stat(&path).ok()?;
        Some(SocketFile {
            path,
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }

    /// Removes the file only if it is still the one we created.
    fn remove(&self) {
        let Ok(stat) = rustix::fs::stat(&self.path) else {
            return;
        };
        if stat.st_dev == self.dev && stat.st_ino == self.ino {
            if let Err(error) = rustix::fs::unlink(&self.path) {
                tracing::debug!(target: "evloop::transports", path = %self.path.display(), %error, "removing the socket file failed");
            }
        }
    }
}

/// Builds a transport for one accepted connection: the socket, the peer's
/// address, our address.
pub(crate) type OnAccept =
    Rc<dyn Fn(OwnedFd, Option<Address>, Option<Address>) -> Result<Transport, Error>>;

struct Slot {
    fd: OwnedFd,
    backlog: u32,
    cleanup: Option<SocketFile>,
    claim: Option<FdClaim>,
    listening: bool,
}

struct ServerInner {
    event_loop: EventLoop,
    slots: RefCell<Vec<Slot>>,
    on_accept: OnAccept,
    serving: Cell<bool>,
    closed: Cell<bool>,
    clients: RefCell<BTreeMap<u64, Transport>>,
    next_client: Cell<u64>,
    waiters: RefCell<Vec<LoopFuture<()>>>,
    forever: RefCell<Option<LoopFuture<()>>>,
}

/// A listening server (asyncio's `Server`): TCP or unix, cheap to clone.
#[derive(Clone)]
pub struct Server {
    inner: Rc<ServerInner>,
}

/// Serves `listeners`, building each accepted connection's transport with
/// `on_accept`; accepting starts now if `start_serving`. Every transport
/// `on_accept` returns is tracked (its `on_lost` hook is taken) for
/// `wait_closed`, `close_clients` and `abort_clients`.
///
/// # Errors
/// [`Error::Closed`] on a closed loop; `listen` errors.
pub(crate) fn serve(
    event_loop: &EventLoop,
    listeners: Vec<Listener>,
    on_accept: OnAccept,
    start_serving: bool,
) -> Result<Server, Error> {
    for listener in &listeners {
        // A caller's `sock` may be blocking: the accept loop must not block.
        rustix::io::ioctl_fionbio(&listener.fd, true).map_err(io::Error::from)?;
    }
    let slots = listeners
        .into_iter()
        .map(|l| Slot {
            fd: l.fd,
            backlog: l.backlog.max(1),
            cleanup: l.cleanup,
            claim: None,
            listening: false,
        })
        .collect();
    let server = Server {
        inner: Rc::new(ServerInner {
            event_loop: event_loop.clone(),
            slots: RefCell::new(slots),
            on_accept,
            serving: Cell::new(false),
            closed: Cell::new(false),
            clients: RefCell::new(BTreeMap::new()),
            next_client: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            forever: RefCell::new(None),
        }),
    };
    crate::lifecycle::track(&server.inner.event_loop, Rc::downgrade(&server.inner) as _);
    if start_serving {
        if let Err(error) = server.start_serving() {
            server.close();
            return Err(error);
        }
    }
    Ok(server)
}

impl Server {
    /// Stops listening at once (the listening sockets are closed, a unix
    /// socket file we created is removed) and ends `serve_forever`.
    /// Connections already accepted stay open. Idempotent.
    pub fn close(&self) {
        let inner = &self.inner;
        if inner.closed.replace(true) {
            return;
        }
        inner.serving.set(false);
        let slots = std::mem::take(&mut *inner.slots.borrow_mut());
        for slot in slots {
            drop(slot.claim);
            if let Some(file) = &slot.cleanup {
                file.remove();
            }
            drop(slot.fd);
        }
        let forever = inner.forever.borrow_mut().take();
        if let Some(forever) = forever {
            forever.cancel();
        }
        inner.maybe_wake();
    }

    /// Completes once the server is closed and every connection it
    /// accepted is gone.
    pub fn wait_closed(&self) -> impl Future<Output = ()> + 'static {
        let pending = if self.inner.closed.get() && self.inner.clients.borrow().is_empty() {
            None
        } else {
            let waiter = self.inner.event_loop.create_future::<()>();
            self.inner.waiters.borrow_mut().push(waiter.clone());
            Some(waiter)
        };
        async move {
            if let Some(waiter) = pending {
                let _ = waiter.await;
            }
        }
    }

    /// The listening addresses; empty once closed.
    pub fn sockets(&self) -> Vec<Address> {
        self.inner
            .slots
            .borrow()
            .iter()
            .filter_map(|slot| socket::sockname(&slot.fd))
            .collect()
    }

    /// The listening fds; empty once closed. They are claimed by the
    /// server (`add_reader` on them fails with `FdInUse`).
    pub fn fds(&self) -> Vec<RawFd> {
        self.inner
            .slots
            .borrow()
            .iter()
            .map(|slot| slot.fd.as_raw_fd())
            .collect()
    }

    /// True while accepting connections.
    pub fn is_serving(&self) -> bool {
        self.inner.serving.get() && !self.inner.closed.get()
    }

    /// Starts listening and accepting; idempotent.
    ///
    /// # Errors
    /// [`Error::InvalidState`] once closed; `listen` errors; [`Error::Closed`]
    /// on a closed loop.
    pub fn start_serving(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(Error::InvalidState("the server is closed"));
        }
        if inner.serving.get() {
            return Ok(());
        }
        {
            let mut slots = inner.slots.borrow_mut();
            for slot in slots.iter_mut() {
                if !slot.listening {
                    socket::listen(&slot.fd, slot.backlog)?;
                    slot.listening = true;
                }
                if slot.claim.is_none() {
                    slot.claim = Some(inner.event_loop.claim_fd(&slot.fd)?);
                }
            }
        }
        inner.serving.set(true);
        let count = inner.slots.borrow().len();
        for index in 0..count {
            inner.arm(index)?;
        }
        Ok(())
    }

    /// Starts serving (if not yet) and waits until the server is closed.
    /// Dropping the future (cancelling it) closes the server, as asyncio's
    /// `serve_forever` does.
    ///
    /// # Errors
    /// [`Error::Cancelled`] when the server is closed meanwhile (asyncio
    /// raises `CancelledError` then too); [`Error::InvalidState`] if the
    /// server is already closed or already in `serve_forever`.
    pub fn serve_forever(&self) -> impl Future<Output = Result<(), Error>> + 'static {
        let server = self.clone();
        let start = (|| {
            if server.inner.forever.borrow().is_some() {
                return Err(Error::InvalidState(
                    "server is already being awaited on serve_forever()",
                ));
            }
            if server.inner.closed.get() {
                return Err(Error::InvalidState("the server is closed"));
            }
            server.start_serving()?;
            let forever = server.inner.event_loop.create_future::<()>();
            *server.inner.forever.borrow_mut() = Some(forever.clone());
            Ok(forever)
        })();
        async move {
            let forever = start?;
            let guard = CloseOnDrop(Some(server.clone()));
            let outcome = forever.await;
            drop(guard);
            server.wait_closed().await;
            outcome
        }
    }

    /// Closes every connection this server accepted (flushing first).
    pub fn close_clients(&self) {
        let clients: Vec<Transport> = self.inner.clients.borrow().values().cloned().collect();
        for client in clients {
            client.close();
        }
    }

    /// Aborts every connection this server accepted.
    pub fn abort_clients(&self) {
        let clients: Vec<Transport> = self.inner.clients.borrow().values().cloned().collect();
        for client in clients {
            client.abort();
        }
    }
}

/// Closes the server when `serve_forever` is dropped before it ends.
struct CloseOnDrop(Option<Server>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(server) = self.0.take() {
            server.close();
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("sockets", &self.sockets())
            .field("serving", &self.is_serving())
            .field("clients", &self.inner.clients.borrow().len())
            .finish()
    }
}

impl ServerInner {
    /// Watches listener `index` for incoming connections.
    fn arm(self: &Rc<Self>, index: usize) -> Result<(), Error> {
        let slots = self.slots.borrow();
        let Some(claim) = slots.get(index).and_then(|s| s.claim.as_ref()) else {
            return Ok(());
        };
        let me = self.clone();
        claim.set_reader(move || me.accept_batch(index))
    }

    /// asyncio's `_accept_connection`: up to `backlog` accepts per wake-up.
    fn accept_batch(self: &Rc<Self>, index: usize) {
        let backlog = match self.slots.borrow().get(index) {
            Some(slot) => slot.backlog,
            None => return,
        };
        for _ in 0..backlog {
            if !self.serving.get() {
                return;
            }
            let accepted = {
                let slots = self.slots.borrow();
                let Some(slot) = slots.get(index) else {
                    return;
                };
                socket::accept(&slot.fd).map(|(fd, peer)| (fd, peer, socket::sockname(&slot.fd)))
            };
            match accepted {
                Ok((fd, peer, local)) => self.connection(fd, peer, local),
                Err(Errno::AGAIN | Errno::INTR | Errno::CONNABORTED) => return,
                Err(errno @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                    self.back_off(index, errno);
                    return;
                }
                Err(errno) => {
                    let fd = self.slots.borrow().get(index).map(|s| s.fd.as_raw_fd());
                    self.event_loop.call_exception_handler(ErrorContext {
                        message: "socket.accept() failed".to_owned(),
                        error: Some(Error::Io(errno.into())),
                        socket: fd,
                        ..ErrorContext::default()
                    });
                    return;
                }
            }
        }
    }

    /// Out of fds or memory: report, stop accepting on this listener for
    /// [`ACCEPT_RETRY_DELAY`], then resume (no busy loop).
    fn back_off(self: &Rc<Self>, index: usize, errno: Errno) {
        let fd = {
            let slots = self.slots.borrow();
            let Some(slot) = slots.get(index) else {
                return;
            };
            if let Some(claim) = &slot.claim {
                claim.clear_reader();
            }
            slot.fd.as_raw_fd()
        };
        self.event_loop.call_exception_handler(ErrorContext {
            message: "socket.accept() out of system resource".to_owned(),
            error: Some(Error::Io(errno.into())),
            socket: Some(fd),
            ..ErrorContext::default()
        });
        let me = self.clone();
        let rearm = self.event_loop.call_later(ACCEPT_RETRY_DELAY, move || {
            if me.serving.get() && !me.closed.get() {
                if let Err(error) = me.arm(index) {
                    tracing::debug!(target: "evloop::transports", %error, "re-arming accept failed");
                }
            }
        });
        if let Err(error) = rearm {
            tracing::debug!(target: "evloop::transports", %error, "scheduling the accept retry failed");
        }
    }

    fn connection(self: &Rc<Self>, fd: OwnedFd, peer: Option<Address>, local: Option<Address>) {
        match (self.on_accept)(fd, peer, local) {
            Ok(transport) => {
                let id = self.next_client.get();
                self.next_client.set(id + 1);
                self.clients.borrow_mut().insert(id, transport.clone());
                let me = Rc::downgrade(self);
                transport.set_on_lost(move || {
                    if let Some(me) = me.upgrade() {
                        me.clients.borrow_mut().remove(&id);
                        me.maybe_wake();
                    }
                });
            }
            Err(error) => {
                tracing::debug!(target: "evloop::transports", %error, "Error on transport creation for incoming connection");
            }
        }
    }

    /// Completes the `wait_closed` waiters once closed with no connections.
    fn maybe_wake(&self) {
        if !self.closed.get() || !self.clients.borrow().is_empty() {
            return;
        }
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waiter in waiters {
            let _ = waiter.set_result(());
        }
    }
}

/// Listens on `host:port` (every interface when `host` is empty) and runs a
/// [`Protocol`] from `factory` for each accepted connection.
///
/// # Errors
/// [`Error::InvalidArgument`] for host/port together with `sock`, or a
/// non-stream `sock`; bind errors as [`Error::Io`] keeping their kind and
/// errno (as the source) and naming the address; resolver errors.
///
/// # Examples
///
/// A server that answers once in capitals and hangs up, and a blocking
/// client on another thread:
///
/// ```
/// use std::io::{Read, Write};
/// use evloop_core::EventLoop;
/// use evloop_transports::{create_server, Protocol, ServerOptions, Transport};
///
/// struct Shout { lp: EventLoop, transport: Option<Transport> }
/// impl Protocol for Shout {
///     fn connection_made(&mut self, transport: Transport) { self.transport = Some(transport); }
///     fn data_received(&mut self, data: &[u8]) {
///         let transport = self.transport.as_ref().unwrap();
///         transport.write(&data.to_ascii_uppercase());
///         transport.close(); // flushes, then closes
///     }
///     fn connection_lost(&mut self, _error: Option<std::io::Error>) {
///         self.lp.stop(); // one client is enough for this example
///     }
/// }
///
/// let lp = EventLoop::new()?;
/// let mut options = ServerOptions::default(); // port 0: any free port
/// options.host = vec!["127.0.0.1".into()]; // empty: every interface, v4 and v6
/// let factory_lp = lp.clone();
/// let factory = move || Shout { lp: factory_lp.clone(), transport: None };
/// let server = lp.run_until_complete(create_server(&lp, factory, options))??;
/// let port = server.sockets()[0].as_inet().unwrap().port();
///
/// let client = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
///     let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
///     stream.write_all(b"hello")?;
///     let mut answer = Vec::new();
///     stream.read_to_end(&mut answer)?;
///     Ok(answer)
/// });
/// lp.run_forever()?; // until the connection is lost
/// assert_eq!(client.join().unwrap()?, b"HELLO");
/// server.close();
/// lp.run_until_complete(server.wait_closed())?;
/// lp.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_server<P: Protocol>(
    event_loop: &EventLoop,
    factory: impl Fn() -> P + 'static,
    options: ServerOptions,
) -> impl Future<Output = Result<Server, Error>> + 'static {
    let event_loop = event_loop.clone();
    async move {
        let start = options.start_serving;
        let tls = options.tls.clone();
        tls.as_ref().map_or(Ok(()), Layer::validate)?;
        let listeners = tcp_listeners(&event_loop, options).await?;
        let lp = event_loop.clone();
        let on_accept: OnAccept = Rc::new(move |fd, peername, sockname| {
            socket::set_nodelay_if_inet(&fd);
            let (sink, _handle) = plain_sink(factory());
            let spec = StreamSpec {
                fd,
                kind: FdKind::Socket,
                peername,
                sockname,
            };
            start_stream(&lp, spec, sink, layered(tls.clone(), None), None)
        });
        serve(&event_loop, listeners, on_accept, start)
    }
}

/// Binds the listening sockets `options` asks for (not yet listening).
async fn tcp_listeners(
    event_loop: &EventLoop,
    options: ServerOptions,
) -> Result<Vec<Listener>, Error> {
    let backlog = options.backlog;
    if let Some(sock) = options.sock {
        if !options.host.is_empty() || options.port != 0 {
            return Err(Error::invalid_argument(
                "host/port and sock can not be specified at the same time",
            ));
        }
        socket::check_stream(&sock)?;
        return Ok(vec![Listener {
            fd: sock,
            backlog,
            cleanup: None,
        }]);
    }
    let hints = ResolveHints {
        family: options.family,
        socktype: SOCK_STREAM,
        flags: AI_PASSIVE,
        ..ResolveHints::default()
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    if options.host.is_empty() {
        addrs = resolve(event_loop, None, options.port, hints).await?;
    } else {
        for host in &options.host {
            for addr in resolve(event_loop, Some(host), options.port, hints).await? {
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
    }
    let wildcard = options.host.is_empty();
    let mut listeners = Vec::new();
    for addr in &addrs {
        let fd = match socket::new_socket(socket::family_of(addr), SocketType::STREAM) {
            Ok(fd) => fd,
            // The family is not available here: skip it (asyncio does).
            Err(error) if error.raw_os_error() == Some(Errno::AFNOSUPPORT.raw_os_error()) => {
                continue
            }
            Err(error) => return Err(error.into()),
        };
        if options.reuse_address.unwrap_or(true) {
            rustix::net::sockopt::set_socket_reuseaddr(&fd, true).map_err(io::Error::from)?;
        }
        if options.reuse_port {
            rustix::net::sockopt::set_socket_reuseport(&fd, true).map_err(|_| {
                Error::invalid_argument(
                    "reuse_port not supported by socket module, SO_REUSEPORT defined but not implemented.",
                )
            })?;
        }
        if socket::family_of(addr) == AddressFamily::INET6 {
            let _ = rustix::net::sockopt::set_ipv6_v6only(&fd, true);
        }
        match socket::bind(&fd, addr, addr) {
            Ok(()) => listeners.push(Listener {
                fd,
                backlog,
                cleanup: None,
            }),
            // A disabled family on a wildcard bind (bpo-30945): skip it.
            Err(error)
                if wildcard
                    && socket::errno_of(&error) == Some(Errno::ADDRNOTAVAIL.raw_os_error()) => {}
            Err(error) => return Err(error.into()),
        }
    }
    if listeners.is_empty() {
        let listed: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "could not bind on any address out of [{}]",
                listed.join(", ")
            ),
        )));
    }
    Ok(listeners)
}

impl crate::lifecycle::ReleaseAtClose for ServerInner {
    fn release_at_close(self: Rc<Self>) {
        // Its connections are transports, released on their own.
        Server { inner: self }.close();
    }
}
