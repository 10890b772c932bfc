//! UDP endpoints: asyncio's `create_datagram_endpoint` (docs/behaviour.md 5.5)
//! over the shared [`DatagramTransport`].
//!
//! Addresses resolve through [`resolve`](crate::resolve) (numeric hosts
//! inline, names through the loop's installed resolver, never blocking the
//! loop). Local and remote candidates are paired by family; each pair is
//! tried in order and, if all fail, the **first** error is returned
//! (asyncio's rule). A remote address is `connect()`ed unless
//! `allow_broadcast` is set, so the endpoint then sends with `send` and
//! reports a `peername`.
//!
//! There is no `reuse_address` option: asyncio removed it from
//! `create_datagram_endpoint` (bpo-37228) because `SO_REUSEADDR` on
//! UDP lets another process bind the same port and receive its datagrams.
//! `reuse_port` (`SO_REUSEPORT`, which the kernel restricts to one user) is
//! offered.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;

use evloop_core::{Error, EventLoop};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::address::Address;
use crate::datagram::{address_of, DatagramFamily, DatagramSpec, DatagramTransport};
use crate::family::{Family, AI_PASSIVE, SOCK_DGRAM};
use crate::protocol::{DatagramProtocol, ProtocolHandle};
use crate::resolve::{resolve, ResolveHints};

/// `create_datagram_endpoint`'s keyword arguments (asyncio names).
///
/// With `sock`, every other field must keep its default (asyncio:
/// `'socket modifier keyword arguments can not be used when sock is
/// specified'`). There is deliberately no `reuse_address` (see the module
/// docs).
///
/// Built from `Default` with one setter per field, so later options are
/// additive; the fields stay public to read (and to set on a `let mut`).
///
/// ```
/// use evloop_transports::DatagramOptions;
///
/// let options = DatagramOptions::default().local_addr("127.0.0.1", 0).allow_broadcast(true);
/// assert_eq!(options.local_addr, Some(("127.0.0.1".to_string(), 0)));
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct DatagramOptions {
    /// Bind here: `(host, port)`; an empty host is the wildcard address.
    pub local_addr: Option<(String, u16)>,
    /// Connect here (or, with `allow_broadcast`, only resolve it for the
    /// family): `(host, port)`.
    pub remote_addr: Option<(String, u16)>,
    /// [`Family::Inet`], [`Family::Inet6`] or [`Family::Unspec`] (any, from
    /// the addresses: the default). Unix datagram sockets are
    /// [`create_unix_datagram_endpoint`](crate::create_unix_datagram_endpoint)'s.
    pub family: Family,
    /// `IPPROTO_*` or 0.
    pub proto: i32,
    /// Set `SO_REUSEPORT`.
    pub reuse_port: bool,
    /// Set `SO_BROADCAST` (and do not `connect` to `remote_addr`).
    pub allow_broadcast: bool,
    /// Use this datagram socket as it is (bound and connected or not).
    pub sock: Option<OwnedFd>,
}

impl DatagramOptions {
    /// Binds to `host:port` (an empty host: the wildcard address).
    #[must_use = "returns the changed options"]
    pub fn local_addr(mut self, host: impl Into<String>, port: u16) -> Self {
        self.local_addr = Some((host.into(), port));
        self
    }

    /// Connects to `host:port` (with `allow_broadcast`, only resolves it).
    #[must_use = "returns the changed options"]
    pub fn remote_addr(mut self, host: impl Into<String>, port: u16) -> Self {
        self.remote_addr = Some((host.into(), port));
        self
    }

    /// Opens a socket of `family` (needed when there is no address).
    #[must_use = "returns the changed options"]
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// Opens the socket with protocol `proto` (`IPPROTO_*`).
    #[must_use = "returns the changed options"]
    pub fn proto(mut self, proto: i32) -> Self {
        self.proto = proto;
        self
    }

    /// Sets or clears `SO_REUSEPORT`.
    #[must_use = "returns the changed options"]
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Sets or clears `SO_BROADCAST` (and, when set, does not connect).
    #[must_use = "returns the changed options"]
    pub fn allow_broadcast(mut self, on: bool) -> Self {
        self.allow_broadcast = on;
        self
    }

    /// Uses `sock`, a datagram socket, as it is.
    #[must_use = "returns the changed options"]
    pub fn sock(mut self, sock: OwnedFd) -> Self {
        self.sock = Some(sock);
        self
    }
}

/// Opens a UDP endpoint (asyncio's `loop.create_datagram_endpoint`).
///
/// The factory runs once the socket is ready; then, on the loop, the
/// protocol's `connection_made` runs, reading starts, and the future
/// completes with the transport and a handle to the protocol. Dropping the
/// future before it completes aborts the endpoint.
///
/// # Errors
/// [`Error::InvalidArgument`] for option conflicts (`sock` with other
/// options, no address and no family, a `sock` that is not a datagram
/// socket, [`Family::Unix`], or no local/remote pair of one family);
/// the resolver's error for names; [`Error::Io`] with the errno of the first
/// candidate that failed to open, bind or connect.
pub fn create_datagram_endpoint<P: DatagramProtocol>(
    lp: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    options: DatagramOptions,
) -> impl Future<Output = Result<(DatagramTransport, ProtocolHandle<P>), Error>> + 'static {
    let lp = lp.clone();
    async move {
        let (fd, family) = open_socket(&lp, options).await?;
        start_endpoint(&lp, fd, family, factory).await
    }
}

/// Makes the socket: the caller's `sock` checked, or a new one opened.
async fn open_socket(
    lp: &EventLoop,
    mut options: DatagramOptions,
) -> Result<(OwnedFd, DatagramFamily), Error> {
    if let Some(sock) = options.sock.take() {
        if options.local_addr.is_some()
            || options.remote_addr.is_some()
            || options.family != Family::Unspec
            || options.proto != 0
            || options.reuse_port
            || options.allow_broadcast
        {
            return Err(Error::invalid_argument(format!(
                "socket modifier keyword arguments can not be used when sock is specified. \
                 (local_addr={:?}, remote_addr={:?}, family={}, proto={}, reuse_port={}, \
                 allow_broadcast={})",
                options.local_addr,
                options.remote_addr,
                options.family,
                options.proto,
                options.reuse_port,
                options.allow_broadcast
            )));
        }
        let family = check_datagram_socket(&sock)?;
        return Ok((sock, family));
    }
    if options.family == Family::Unix {
        return Err(Error::invalid_argument(
            "family: AF_UNIX datagram endpoints are create_unix_datagram_endpoint's",
        ));
    }
    if options.local_addr.is_none() && options.remote_addr.is_none() {
        let family = match options.family {
            Family::Inet => AddressFamily::INET,
            Family::Inet6 => AddressFamily::INET6,
            Family::Unspec | Family::Unix => {
                return Err(Error::invalid_argument("unexpected address family"));
            }
        };
        let fd = new_socket(family, options.proto)?;
        apply_options(&fd, &options)?;
        return Ok((fd, datagram_family(family)));
    }
    let hints = ResolveHints {
        family: options.family,
        socktype: SOCK_DGRAM,
        protocol: options.proto,
        flags: 0,
    };
    let locals = match &options.local_addr {
        Some((host, port)) => {
            let host = (!host.is_empty()).then_some(host.as_str());
            let passive = ResolveHints {
                flags: AI_PASSIVE,
                ..hints
            };
            Some(resolve(lp, host, *port, passive).await?)
        }
        None => None,
    };
    let remotes = match &options.remote_addr {
        Some((host, port)) => {
            let host = (!host.is_empty()).then_some(host.as_str());
            Some(resolve(lp, host, *port, hints).await?)
        }
        None => None,
    };
    let pairs = pair_by_family(locals.as_deref(), remotes.as_deref());
    if pairs.is_empty() {
        return Err(Error::invalid_argument("can not get address information"));
    }
    let mut first_error = None;
    for (local, remote) in pairs {
        match try_open(&options, local, remote) {
            Ok(opened) => return Ok(opened),
            Err(error) => {
                tracing::debug!(target: "evloop::transports", %error, ?local, ?remote, "datagram endpoint candidate failed");
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| Error::invalid_argument("can not get address information")))
}

/// Pairs candidates by family, in the order families first appear (local
/// addresses first): asyncio's `addr_pairs_info`. With both sides given a
/// family needs both; the first address of each side per family is used.
fn pair_by_family(
    locals: Option<&[SocketAddr]>,
    remotes: Option<&[SocketAddr]>,
) -> Vec<(Option<SocketAddr>, Option<SocketAddr>)> {
    let mut order: Vec<bool> = Vec::new(); // is_ipv4, in first-seen order
    for addr in locals
        .unwrap_or_default()
        .iter()
        .chain(remotes.unwrap_or_default())
    {
        if !order.contains(&addr.is_ipv4()) {
            order.push(addr.is_ipv4());
        }
    }
    let first = |list: Option<&[SocketAddr]>, v4: bool| {
        list.and_then(|l| l.iter().copied().find(|a| a.is_ipv4() == v4))
    };
    order
        .into_iter()
        .filter_map(|v4| {
            let local = first(locals, v4);
            let remote = first(remotes, v4);
            let complete =
                (locals.is_none() || local.is_some()) && (remotes.is_none() || remote.is_some());
            complete.then_some((local, remote))
        })
        .collect()
}

fn datagram_family(family: AddressFamily) -> DatagramFamily {
    if family == AddressFamily::INET6 {
        DatagramFamily::V6
    } else {
        DatagramFamily::V4
    }
}

fn new_socket(family: AddressFamily, proto: i32) -> Result<OwnedFd, Error> {
    let protocol = u32::try_from(proto)
        .ok()
        .and_then(std::num::NonZeroU32::new)
        .map(rustix::net::Protocol::from_raw);
    rustix::net::socket_with(
        family,
        SocketType::DGRAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        protocol,
    )
    .map_err(|e| Error::Io(e.into()))
}

fn apply_options(fd: &OwnedFd, options: &DatagramOptions) -> Result<(), Error> {
    if options.reuse_port {
        rustix::net::sockopt::set_socket_reuseport(fd, true).map_err(|e| Error::Io(e.into()))?;
    }
    if options.allow_broadcast {
        rustix::net::sockopt::set_socket_broadcast(fd, true).map_err(|e| Error::Io(e.into()))?;
    }
    Ok(())
}

/// Opens, configures, binds and connects one candidate; the socket is
/// closed (dropped) on any failure. Errors are the OS's own, errno intact
/// (asyncio raises the bare `OSError` here too).
fn try_open(
    options: &DatagramOptions,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
) -> Result<(OwnedFd, DatagramFamily), Error> {
    let Some(any) = local.or(remote) else {
        return Err(Error::invalid_argument("can not get address information"));
    };
    let family = if any.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = new_socket(family, options.proto)?;
    apply_options(&fd, options)?;
    if let Some(local) = local {
        rustix::net::bind(&fd, &local).map_err(|e| Error::Io(e.into()))?;
    }
    if let (Some(remote), false) = (remote, options.allow_broadcast) {
        rustix::net::connect(&fd, &remote).map_err(|e| Error::Io(e.into()))?;
    }
    Ok((fd, datagram_family(family)))
}

/// Checks that `sock` is an internet datagram socket.
fn check_datagram_socket(sock: &OwnedFd) -> Result<DatagramFamily, Error> {
    let kind = rustix::net::sockopt::socket_type(sock).ok();
    let domain = rustix::net::sockopt::socket_domain(sock).ok();
    match (kind, domain) {
        (Some(SocketType::DGRAM), Some(AddressFamily::INET)) => Ok(DatagramFamily::V4),
        (Some(SocketType::DGRAM), Some(AddressFamily::INET6)) => Ok(DatagramFamily::V6),
        (Some(SocketType::DGRAM), Some(AddressFamily::UNIX)) => Ok(DatagramFamily::Unix),
        _ => Err(Error::invalid_argument(format!(
            "A datagram socket was expected, got fd {} ({kind:?}, {domain:?})",
            sock.as_raw_fd()
        ))),
    }
}

/// Builds the protocol, starts the transport and waits for
/// `connection_made` + the start of reading. Shared with unix datagram
/// endpoints.
pub(crate) async fn start_endpoint<P: DatagramProtocol>(
    lp: &EventLoop,
    fd: OwnedFd,
    family: DatagramFamily,
    factory: impl FnOnce() -> P,
) -> Result<(DatagramTransport, ProtocolHandle<P>), Error> {
    let spec = DatagramSpec {
        sockname: local_address(&fd),
        peername: peer_address(&fd),
        fd,
        family,
    };
    let protocol = Rc::new(RefCell::new(factory()));
    let waiter = lp.create_future::<()>();
    let transport = DatagramTransport::start(lp, spec, protocol.clone(), Some(waiter.clone()))?;
    let mut guard = AbortOnDrop(Some(transport));
    waiter.await?;
    let transport = guard
        .0
        .take()
        .ok_or(Error::InvalidState("endpoint vanished"))?;
    Ok((transport, ProtocolHandle { inner: protocol }))
}

/// Aborts an endpoint whose creating future was dropped before completing.
struct AbortOnDrop(Option<DatagramTransport>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(transport) = self.0.take() {
            transport.abort();
        }
    }
}

/// `getsockname` as an [`Address`].
pub(crate) fn local_address(fd: impl AsFd) -> Option<Address> {
    rustix::net::getsockname(fd)
        .ok()
        .and_then(|a| address_of(&a))
}

/// `getpeername` as an [`Address`]; `None` when not connected.
pub(crate) fn peer_address(fd: impl AsFd) -> Option<Address> {
    rustix::net::getpeername(fd)
        .ok()
        .flatten()
        .and_then(|a| address_of(&a))
}
