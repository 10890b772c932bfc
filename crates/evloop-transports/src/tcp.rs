//! TCP client connections (asyncio's `create_connection` and
//! `connect_accepted_socket`): resolution off the loop, sequential or
//! happy-eyeballs (RFC 8305) attempts, `local_addr`, error aggregation, and
//! the handshake that completes the call after `connection_made`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use evloop_core::{Error, EventLoop, LoopFuture, TimerHandle};

use crate::family::{Family, SOCK_STREAM};
use crate::layer::{AnyProtocol, Layer};
use crate::protocol::{BufferedProtocol, Protocol, ProtocolHandle};
use crate::resolve::{resolve, ResolveHints};
use crate::socket;
use crate::transport::{buffered_sink, plain_sink, FdKind, Sink, StreamSpec, Transport};

/// `create_connection`'s keyword arguments.
///
/// Built from `Default` with one setter per field, so later options are
/// additive; the fields stay public to read (and to set on a `let mut`).
///
/// ```
/// use std::time::Duration;
/// use evloop_transports::{ConnectOptions, Family};
///
/// let options = ConnectOptions::default()
///     .family(Family::Inet)
///     .happy_eyeballs_delay(Duration::from_millis(250));
/// assert_eq!(options.interleave, None);
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// An already-connected stream socket; `host`/`port` must then be `None`.
    pub sock: Option<OwnedFd>,
    /// Bind to this local address before connecting (only candidates of its
    /// family are tried).
    pub local_addr: Option<SocketAddr>,
    /// Which addresses to resolve the host to: [`Family::Unspec`] (any,
    /// the default), [`Family::Inet`] or [`Family::Inet6`].
    pub family: Family,
    /// RFC 8305 happy eyeballs: start the next attempt after this delay (or
    /// as soon as the previous one fails). `None` tries one after another.
    pub happy_eyeballs_delay: Option<Duration>,
    /// Reorder addresses by family: the first `n` of the first family, then
    /// alternating. Defaults to 1 when `happy_eyeballs_delay` is set.
    pub interleave: Option<usize>,
    /// Run TLS (or another [`Layer`]) over the connection (asyncio's
    /// `ssl=`): `evloop_tls::ClientTls` converts into one. The call then
    /// completes after the handshake and the protocol sees plaintext.
    #[doc(alias = "ssl")]
    pub tls: Option<Layer>,
}

impl ConnectOptions {
    /// Uses `sock`, an already-connected stream socket, instead of a host
    /// and port.
    #[must_use = "returns the changed options"]
    pub fn sock(mut self, sock: OwnedFd) -> Self {
        self.sock = Some(sock);
        self
    }

    /// Binds to `addr` before connecting.
    #[must_use = "returns the changed options"]
    pub fn local_addr(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Resolves the host to addresses of `family` only.
    #[must_use = "returns the changed options"]
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// Staggers the attempts by `delay` (RFC 8305 happy eyeballs).
    #[must_use = "returns the changed options"]
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.happy_eyeballs_delay = Some(delay);
        self
    }

    /// Reorders the addresses: the first `n` of the first family, then
    /// alternating.
    #[must_use = "returns the changed options"]
    pub fn interleave(mut self, n: usize) -> Self {
        self.interleave = Some(n);
        self
    }

    /// Runs `tls` (an `evloop_tls::ClientTls`, or another [`Layer`]) over
    /// the connection.
    #[must_use = "returns the changed options"]
    #[doc(alias = "ssl")]
    pub fn tls(mut self, tls: impl Into<Layer>) -> Self {
        self.tls = Some(tls.into());
        self
    }
}

/// Connects to `host:port` and runs a [`Protocol`] from `factory` over it.
///
/// Names are resolved off the loop (numeric hosts inline); each address is
/// tried in order (or staggered, with `happy_eyeballs_delay`). The factory
/// runs once, after the connection is up; the future completes after
/// `connection_made`. Dropping it before then closes the socket.
///
/// # Errors
/// [`Error::InvalidArgument`] for host/port together with `sock`, for none
/// of them, or for a non-stream `sock`; the connect error (errno kept) when
/// one address was tried; one aggregated [`Error::Io`] (`Multiple
/// exceptions: addr: error, …`, with the first error's kind) when several
/// failed; resolver errors.
///
/// # Examples
///
/// A client that says hello to a blocking peer on another thread and waits
/// for the answer:
///
/// ```
/// use std::io::{Read, Write};
/// use evloop_core::{EventLoop, LoopFuture};
/// use evloop_transports::{create_connection, ConnectOptions, Protocol, Transport};
///
/// /// Says hello; `reply` completes with the peer's 8-byte answer.
/// struct Hello { got: Vec<u8>, reply: LoopFuture<Vec<u8>> }
/// impl Protocol for Hello {
///     fn connection_made(&mut self, transport: Transport) { transport.write(b"hello"); }
///     fn data_received(&mut self, data: &[u8]) {
///         self.got.extend_from_slice(data);
///         if self.got.len() == 8 {
///             let _ = self.reply.set_result(self.got.clone());
///         }
///     }
/// }
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let port = listener.local_addr()?.port();
/// let peer = std::thread::spawn(move || -> std::io::Result<[u8; 5]> {
///     let (mut stream, _) = listener.accept()?;
///     let mut hello = [0; 5];
///     stream.read_exact(&mut hello)?;
///     stream.write_all(b"hi there")?;
///     Ok(hello)
/// });
///
/// let lp = EventLoop::new()?;
/// let reply = lp.create_future();
/// let protocol = Hello { got: Vec::new(), reply: reply.clone() };
/// let options = ConnectOptions::default(); // happy eyeballs, local_addr, tls, …
/// let connect = create_connection(&lp, move || protocol, Some("127.0.0.1"), Some(port), options);
/// let (transport, _protocol) = lp.run_until_complete(connect)??;
/// assert_eq!(lp.run_until_complete(reply)??, b"hi there");
/// assert_eq!(&peer.join().unwrap()?, b"hello");
/// transport.close();
/// lp.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_connection<P: Protocol>(
    event_loop: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    host: Option<&str>,
    port: Option<u16>,
    options: ConnectOptions,
) -> impl Future<Output = Result<(Transport, ProtocolHandle<P>), Error>> + 'static {
    connect_and_establish(event_loop, host, port, options, move || {
        plain_sink(factory())
    })
}

/// [`create_connection`] for a [`BufferedProtocol`].
///
/// # Errors
/// As [`create_connection`].
pub fn create_connection_buffered<P: BufferedProtocol>(
    event_loop: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    host: Option<&str>,
    port: Option<u16>,
    options: ConnectOptions,
) -> impl Future<Output = Result<(Transport, ProtocolHandle<P>), Error>> + 'static {
    connect_and_establish(event_loop, host, port, options, move || {
        buffered_sink(factory())
    })
}

/// Both `create_connection`s: connect, then build the transport over the
/// sink `make` returns.
fn connect_and_establish<P: ?Sized + 'static>(
    event_loop: &EventLoop,
    host: Option<&str>,
    port: Option<u16>,
    options: ConnectOptions,
    make: impl FnOnce() -> (Sink, ProtocolHandle<P>) + 'static,
) -> impl Future<Output = Result<(Transport, ProtocolHandle<P>), Error>> + 'static {
    let event_loop = event_loop.clone();
    let host = host.map(str::to_owned);
    async move {
        let layer = options.tls.clone();
        layer.as_ref().map_or(Ok(()), Layer::validate)?;
        let fd = open(&event_loop, host.clone(), port, options).await?;
        establish(&event_loop, fd, layered(layer, host), make).await
    }
}

/// The layer a connection runs under, with the host the user asked for.
pub(crate) fn layered(
    layer: Option<Layer>,
    host: Option<String>,
) -> Option<(Layer, Option<String>)> {
    layer.map(|layer| (layer, host))
}

/// Wraps an accepted (connected) stream socket in a transport with a
/// protocol from `factory` (asyncio's `connect_accepted_socket`).
///
/// # Errors
/// [`Error::InvalidArgument`] if `sock` is not a stream socket;
/// [`Error::Closed`] on a closed loop.
pub fn connect_accepted_socket<P: Protocol>(
    event_loop: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    sock: OwnedFd,
    tls: Option<Layer>,
) -> impl Future<Output = Result<(Transport, ProtocolHandle<P>), Error>> + 'static {
    let event_loop = event_loop.clone();
    async move {
        socket::check_stream(&sock)?;
        tls.as_ref().map_or(Ok(()), Layer::validate)?;
        let layer = layered(tls, None);
        establish(&event_loop, sock, layer, move || plain_sink(factory())).await
    }
}

/// Builds the transport over a connected `fd` (under `layer`, if any) and
/// waits for `connection_made`; dropping the future before that aborts the
/// transport.
pub(crate) async fn establish<P: ?Sized>(
    event_loop: &EventLoop,
    fd: OwnedFd,
    layer: Option<(Layer, Option<String>)>,
    make: impl FnOnce() -> (Sink, ProtocolHandle<P>),
) -> Result<(Transport, ProtocolHandle<P>), Error> {
    socket::set_nodelay_if_inet(&fd);
    let peername = socket::peername(&fd);
    let sockname = socket::sockname(&fd);
    let (sink, handle) = make();
    let waiter: LoopFuture<()> = event_loop.create_future();
    let spec = StreamSpec {
        fd,
        kind: FdKind::Socket,
        peername,
        sockname,
    };
    let transport = start_stream(event_loop, spec, sink, layer, Some(waiter.clone()))?;
    let mut guard = AbortOnDrop(Some(transport));
    waiter.await?;
    let transport = guard
        .0
        .take()
        .ok_or(Error::InvalidState("transport taken"))?;
    Ok((transport, handle))
}

/// Starts the transport over `spec` driving `sink`, or, under a layer, the
/// raw transport driving the layer's protocol: the transport the user sees.
pub(crate) fn start_stream(
    event_loop: &EventLoop,
    spec: StreamSpec,
    sink: Sink,
    layer: Option<(Layer, Option<String>)>,
    waiter: Option<LoopFuture<()>>,
) -> Result<Transport, Error> {
    let Some((layer, host)) = layer else {
        return Transport::start(event_loop, spec, sink, waiter);
    };
    let session = layer.start(event_loop, host.as_deref(), AnyProtocol(sink), waiter)?;
    let raw = Transport::start(event_loop, spec, Sink::Plain(session.raw_protocol), None);
    if raw.is_err() {
        session.transport.abort();
    }
    raw.map(|_| session.transport)
}

/// Aborts a transport whose creating call was dropped (cancelled).
struct AbortOnDrop(Option<Transport>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(transport) = self.0.take() {
            transport.abort();
        }
    }
}

/// Validates, resolves and connects: a connected socket.
async fn open(
    event_loop: &EventLoop,
    host: Option<String>,
    port: Option<u16>,
    options: ConnectOptions,
) -> Result<OwnedFd, Error> {
    if let Some(sock) = options.sock {
        if host.is_some() || port.is_some() {
            return Err(Error::invalid_argument(
                "host/port and sock can not be specified at the same time",
            ));
        }
        socket::check_stream(&sock)?;
        return Ok(sock);
    }
    if host.is_none() && port.is_none() {
        return Err(Error::invalid_argument(
            "host and port was not specified and no sock specified",
        ));
    }
    if options.family == Family::Unix {
        return Err(Error::invalid_argument(
            "family: AF_UNIX connections are create_unix_connection's",
        ));
    }
    if options.interleave == Some(0) {
        return Err(Error::invalid_argument("interleave must be at least 1"));
    }
    let hints = ResolveHints {
        family: options.family,
        socktype: SOCK_STREAM,
        ..ResolveHints::default()
    };
    let mut addrs = resolve(event_loop, host.as_deref(), port.unwrap_or(0), hints).await?;
    let interleave = options
        .interleave
        .or(options.happy_eyeballs_delay.map(|_| 1));
    if let Some(first) = interleave {
        addrs = interleave_by_family(&addrs, first);
    }
    let local = options.local_addr;
    match options.happy_eyeballs_delay {
        None => sequential(event_loop, &addrs, local).await,
        Some(delay) => Staggered::new(event_loop, addrs, local, delay).await,
    }
}

/// One attempt: a socket, the optional bind, the connect. The socket is
/// closed on every failure and when the future is dropped.
async fn attempt(
    event_loop: EventLoop,
    addr: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<OwnedFd, Error> {
    if let Some(local) = local {
        if local.is_ipv4() != addr.is_ipv4() {
            let family = if addr.is_ipv4() {
                "AF_INET"
            } else {
                "AF_INET6"
            };
            return Err(Error::Io(io::Error::other(format!(
                "no matching local address with family={family} found"
            ))));
        }
    }
    let fd = socket::new_socket(socket::family_of(&addr), rustix::net::SocketType::STREAM)?;
    if let Some(local) = local {
        socket::bind(&fd, &local, &local)?;
    }
    socket::connect(&event_loop, &fd, &addr).await?;
    Ok(fd)
}

async fn sequential(
    event_loop: &EventLoop,
    addrs: &[SocketAddr],
    local: Option<SocketAddr>,
) -> Result<OwnedFd, Error> {
    let mut errors = Vec::new();
    for addr in addrs {
        match attempt(event_loop.clone(), *addr, local).await {
            Ok(fd) => return Ok(fd),
            Err(error @ Error::Io(_)) => errors.push((addr.to_string(), error)),
            // Not an OS error (loop closed, …): give up at once.
            Err(error) => return Err(error),
        }
    }
    Err(socket::aggregate(errors))
}

/// asyncio's `_interleave_addrinfos`: the first `first` addresses of the
/// first family, then the families alternate.
///
/// Public only for the fuzz harness (`fuzz/harness`); not part of the API.
#[doc(hidden)]
pub fn interleave_by_family(addrs: &[SocketAddr], first: usize) -> Vec<SocketAddr> {
    let mut groups: Vec<Vec<SocketAddr>> = Vec::new();
    for addr in addrs {
        match groups.iter_mut().find(|g| g[0].is_ipv4() == addr.is_ipv4()) {
            Some(group) => group.push(*addr),
            None => groups.push(vec![*addr]),
        }
    }
    let mut out = Vec::with_capacity(addrs.len());
    let mut queues: Vec<std::collections::VecDeque<SocketAddr>> =
        groups.into_iter().map(Into::into).collect();
    if let Some(head) = queues.first_mut() {
        // asyncio slices `[:first - 1]`: at most what the family has, however
        // large `first` is (a loop to `first` never ended for huge counts).
        let lead = first.saturating_sub(1).min(head.len());
        out.extend(head.drain(..lead));
    }
    while queues.iter().any(|q| !q.is_empty()) {
        for queue in &mut queues {
            if let Some(addr) = queue.pop_front() {
                out.push(addr);
            }
        }
    }
    out
}

type Attempt = Pin<Box<dyn Future<Output = Result<OwnedFd, Error>>>>;

/// RFC 8305 staggered attempts (asyncio's `staggered_race`): the next
/// attempt starts after `delay` or as soon as the previous one fails; the
/// first success wins and the others are dropped (their sockets closed).
struct Staggered {
    event_loop: EventLoop,
    addrs: Vec<SocketAddr>,
    local: Option<SocketAddr>,
    delay: Duration,
    next: usize,
    running: Vec<(usize, Attempt)>,
    errors: Vec<(usize, Error)>,
    timer: Option<(TimerHandle, LoopFuture<()>)>,
}

impl Staggered {
    fn new(
        event_loop: &EventLoop,
        addrs: Vec<SocketAddr>,
        local: Option<SocketAddr>,
        delay: Duration,
    ) -> Self {
        Staggered {
            event_loop: event_loop.clone(),
            addrs,
            local,
            delay,
            next: 0,
            running: Vec::new(),
            errors: Vec::new(),
            timer: None,
        }
    }

    /// Starts the next attempt (if any) and re-arms the delay.
    fn start_next(&mut self) -> Result<(), Error> {
        if let Some((handle, _)) = self.timer.take() {
            handle.cancel();
        }
        let Some(addr) = self.addrs.get(self.next).copied() else {
            return Ok(());
        };
        let index = self.next;
        self.next += 1;
        self.running.push((
            index,
            Box::pin(attempt(self.event_loop.clone(), addr, self.local)),
        ));
        if self.next < self.addrs.len() {
            let fired = self.event_loop.create_future::<()>();
            let signal = fired.clone();
            let handle = self.event_loop.call_later(self.delay, move || {
                let _ = signal.set_result(());
            })?;
            self.timer = Some((handle, fired));
        }
        Ok(())
    }
}

impl Future for Staggered {
    type Output = Result<OwnedFd, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.next == 0 {
            if this.addrs.is_empty() {
                return Poll::Ready(Err(socket::aggregate(Vec::new())));
            }
            if let Err(error) = this.start_next() {
                return Poll::Ready(Err(error));
            }
        }
        loop {
            let mut progressed = false;
            let mut i = 0;
            while i < this.running.len() {
                match this.running[i].1.as_mut().poll(cx) {
                    Poll::Pending => i += 1,
                    Poll::Ready(Ok(fd)) => {
                        // The losers are dropped with `this`: sockets closed,
                        // watchers removed.
                        this.running.clear();
                        if let Some((handle, _)) = this.timer.take() {
                            handle.cancel();
                        }
                        return Poll::Ready(Ok(fd));
                    }
                    Poll::Ready(Err(error)) => {
                        let (index, _) = this.running.remove(i);
                        if !matches!(error, Error::Io(_)) {
                            this.running.clear();
                            return Poll::Ready(Err(error));
                        }
                        this.errors.push((index, error));
                        if let Err(error) = this.start_next() {
                            return Poll::Ready(Err(error));
                        }
                        progressed = true;
                    }
                }
            }
            let fired = match &mut this.timer {
                Some((_, fired)) => Pin::new(fired).poll(cx).is_ready(),
                None => false,
            };
            if fired {
                if let Err(error) = this.start_next() {
                    return Poll::Ready(Err(error));
                }
                progressed = true;
            }
            if this.running.is_empty() && this.next >= this.addrs.len() {
                let mut errors = std::mem::take(&mut this.errors);
                errors.sort_by_key(|(index, _)| *index);
                let addrs = &this.addrs;
                let errors = errors
                    .into_iter()
                    .map(|(index, error)| (addrs[index].to_string(), error))
                    .collect();
                return Poll::Ready(Err(socket::aggregate(errors)));
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for Staggered {
    fn drop(&mut self) {
        if let Some((handle, _)) = self.timer.take() {
            handle.cancel();
        }
    }
}
