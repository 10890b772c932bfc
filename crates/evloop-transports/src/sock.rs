//! asyncio's low-level socket coroutines (docs/behaviour.md 9.1):
//! `sock_recv`, `sock_recv_into`, `sock_sendall`, `sock_connect`,
//! `sock_accept`, `sock_sendto`, `sock_recvfrom`, `sock_recvfrom_into` on a
//! socket the caller owns (`sock_sendfile` is in `sendfile.rs`).
//!
//! Each future tries its syscall first; on `EAGAIN` it waits for the fd with
//! the loop's public `add_reader`/`add_writer` (so an fd a transport owns
//! fails with [`Error::FdInUse`], as in asyncio) and retries. `EINTR` retries
//! at once. Errors keep their errno in [`Error::Io`].
//!
//! # Implementation
//!
//! The loop allows one reader and one writer per fd, but two futures may
//! wait on one socket (two tasks calling `sock_recv`). A per-loop registry
//! (a loop extension) keeps, per fd and direction, the list of waiting
//! futures. The first waiter arms one watcher; when it fires, the watcher
//! removes itself (one-shot, like asyncio's) and wakes every waiter, and each
//! retries; those that still get `EAGAIN` re-arm it. A future leaves the
//! registry when it completes or is dropped (cancellation), and the watcher
//! is removed only when the last waiter leaves, so cancelling one future
//! never strands another.
//!
//! Do not mix these calls with your own `add_reader`/`add_writer` on the
//! same fd: as in asyncio, a sock_* wait replaces that watcher.
//!
//! The futures borrow the socket (`&'a impl AsFd`), so it cannot be closed
//! while one is pending (asyncio's hazard of closing a socket under a pending
//! call cannot arise). To spawn one
//! as a task, move the socket into the task's `async move` block.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use evloop_core::{Error, EventLoop};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketAddrAny, SocketAddrUnix, SocketFlags,
};

use crate::address::Address;
use crate::family::Family;
use crate::fault::{self, Op};

/// Receives up to `n` bytes (asyncio's `sock_recv`); an empty vector means
/// the peer closed (or `n` was 0).
///
/// # Errors
/// [`Error::InvalidArgument`] if the socket is blocking; [`Error::FdInUse`]
/// if a transport owns it and the call has to wait; [`Error::Io`] from
/// `recv` or from registering the fd; [`Error::Closed`] if the loop closed.
///
/// # Examples
///
/// ```
/// use evloop_core::EventLoop;
/// use evloop_transports::{sock_recv, sock_sendall};
/// use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
///
/// let lp = EventLoop::new()?;
/// let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
/// let (a, b) = socketpair(AddressFamily::UNIX, SocketType::STREAM, flags, None)
///     .map_err(std::io::Error::from)?;
/// let got = lp.run_until_complete(async {
///     sock_sendall(&lp, &a, b"ping").await?;
///     sock_recv(&lp, &b, 100).await
/// })??;
/// assert_eq!(got, b"ping");
/// lp.close()?;
/// # Ok::<(), evloop_core::Error>(())
/// ```
pub fn sock_recv<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
    n: usize,
) -> impl Future<Output = Result<Vec<u8>, Error>> + 'a {
    let lp = lp.clone();
    let fd = sock.as_fd();
    async move {
        let mut wait = Wait::new(lp, fd, Direction::Read)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = Vec::with_capacity(n);
        wait.retry(|fd| {
            rustix::net::recv(
                fd,
                rustix::buffer::spare_capacity(&mut buf),
                RecvFlags::empty(),
            )
        })
        .await?;
        Ok(buf)
    }
}

/// Receives into `buf` (asyncio's `sock_recv_into`); returns the number of
/// bytes received, 0 when the peer closed.
///
/// # Errors
/// As [`sock_recv`].
pub fn sock_recv_into<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
    buf: &'a mut [u8],
) -> impl Future<Output = Result<usize, Error>> + 'a {
    let lp = lp.clone();
    let fd = sock.as_fd();
    async move {
        let mut wait = Wait::new(lp, fd, Direction::Read)?;
        let (n, _) = wait
            .retry(|fd| rustix::net::recv(fd, &mut *buf, RecvFlags::empty()))
            .await?;
        Ok(n)
    }
}

/// Sends all of `data` (asyncio's `sock_sendall`), waiting for the socket
/// to drain as often as needed. Dropping the future part-way leaves part
/// of `data` sent, as in asyncio. `SIGPIPE` is never raised (`MSG_NOSIGNAL`).
///
/// # Errors
/// As [`sock_recv`], with `send`'s errors (`EPIPE`, `ECONNRESET`).
pub fn sock_sendall<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
    data: &'a [u8],
) -> impl Future<Output = Result<(), Error>> + 'a {
    let lp = lp.clone();
    let fd = sock.as_fd();
    async move {
        let mut wait = Wait::new(lp, fd, Direction::Write)?;
        let mut sent = 0;
        while sent < data.len() {
            sent += wait
                .retry(|fd| rustix::net::send(fd, &data[sent..], SendFlags::NOSIGNAL))
                .await?;
        }
        Ok(())
    }
}

/// Where [`sock_connect`] connects: an [`Address`], or a host name (or
/// numeric host) and a port, as asyncio's `sock_connect(sock, (host,
/// port))` takes.
///
/// Built with `From`: `Address`, `SocketAddr`, `(&str, u16)`, `(String, u16)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectTarget {
    /// A resolved address (internet or unix).
    Address(Address),
    /// A host and port: a numeric host is used as it is, a name is resolved
    /// off the loop by the loop's [`Resolver`](crate::Resolver) with the
    /// socket's family, type and protocol; the first address is used.
    Host(String, u16),
}

impl From<Address> for ConnectTarget {
    fn from(addr: Address) -> Self {
        ConnectTarget::Address(addr)
    }
}

impl From<SocketAddr> for ConnectTarget {
    fn from(addr: SocketAddr) -> Self {
        ConnectTarget::Address(Address::Inet(addr))
    }
}

impl From<(&str, u16)> for ConnectTarget {
    fn from((host, port): (&str, u16)) -> Self {
        ConnectTarget::Host(host.to_owned(), port)
    }
}

impl From<(String, u16)> for ConnectTarget {
    fn from((host, port): (String, u16)) -> Self {
        ConnectTarget::Host(host, port)
    }
}

/// Connects the socket to `addr` (asyncio's `sock_connect`): an
/// [`Address::Inet`] for an internet socket, a unix address for a unix one,
/// or a host and port (`("localhost", 8080)`), which is resolved first as
/// asyncio does: a numeric host inline, a name by the loop's
/// [`Resolver`](crate::Resolver) (off the loop; the facade installs one)
/// with the socket's family, type and protocol, taking the first address.
/// On `EINPROGRESS` it waits until the socket is writable and reads
/// `SO_ERROR`.
///
/// # Errors
/// [`Error::InvalidArgument`] for a blocking socket,
/// [`Address::UnixUnnamed`], a host for a socket that is not an internet
/// one, or a name with no resolver installed; the resolver's error;
/// [`Error::Io`] with the connect error's errno (`ECONNREFUSED`, …);
/// otherwise as [`sock_recv`].
pub fn sock_connect<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
    addr: impl Into<ConnectTarget>,
) -> impl Future<Output = Result<(), Error>> + 'a {
    let lp = lp.clone();
    let fd = sock.as_fd();
    let addr = addr.into();
    async move {
        let mut wait = Wait::new(lp.clone(), fd, Direction::Write)?;
        let addr = match addr {
            ConnectTarget::Address(addr) => addr,
            ConnectTarget::Host(host, port) => resolve_for(&lp, fd, &host, port).await?,
        };
        let target = to_any(&addr)?;
        loop {
            match fault::io(Op::Connect, fd.as_raw_fd(), 0, |_| {
                rustix::net::connect(fd, &target)
            }) {
                Ok(()) => return Ok(()),
                // Interrupted, a non-blocking connect goes on in the background.
                Err(Errno::INPROGRESS | Errno::INTR) => break,
                // A unix socket whose listener's backlog is full: nothing is
                // in progress, so retry once the socket turns writable.
                Err(Errno::AGAIN) => wait.readiness().await?,
                Err(errno) => return Err(io_error(errno)),
            }
        }
        wait.readiness().await?;
        match rustix::net::sockopt::socket_error(fd).map_err(io_error)? {
            Ok(()) => Ok(()),
            Err(errno) => Err(io_error(errno)),
        }
    }
}

/// Accepts a connection on a listening socket (asyncio's `sock_accept`):
/// the new socket (non-blocking, close-on-exec) and the peer's address
/// (`None` for a family this crate does not know).
///
/// # Errors
/// As [`sock_recv`], with `accept`'s errors (`EMFILE`, …).
pub fn sock_accept<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
) -> impl Future<Output = Result<(OwnedFd, Option<Address>), Error>> + 'a {
    let lp = lp.clone();
    let fd = sock.as_fd();
    async move {
        let mut wait = Wait::new(lp, fd, Direction::Read)?;
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let (conn, peer) = wait
            .retry(|fd| rustix::net::acceptfrom_with(fd, flags))
            .await?;
        Ok((conn, peer.as_ref().and_then(address_of)))
    }
}

/// Sends one datagram to `addr` (asyncio's `sock_sendto`); returns the
/// number of bytes sent.
///
/// # Errors
/// As [`sock_connect`] for the address; otherwise as [`sock_recv`], with
/// `sendto`'s errors (`EMSGSIZE`, …).
pub fn sock_sendto<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
    data: &'a [u8],
    addr: Address,
) -> impl Future<Output = Result<usize, Error>> + 'a {
    let lp = lp.clone();
    let fd = sock.as_fd();
    async move {
        let mut wait = Wait::new(lp, fd, Direction::Write)?;
        let target = to_any(&addr)?;
        wait.retry(|fd| rustix::net::sendto(fd, data, SendFlags::NOSIGNAL, &target))
            .await
    }
}

/// Receives one datagram of up to `n` bytes (asyncio's `sock_recvfrom`) and
/// the sender's address (`None` when the socket does not report one, e.g.
/// an unnamed unix peer on some systems or a connected stream).
///
/// # Errors
/// As [`sock_recv`].
pub fn sock_recvfrom<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
    n: usize,
) -> impl Future<Output = Result<(Vec<u8>, Option<Address>), Error>> + 'a {
    let lp = lp.clone();
    let fd = sock.as_fd();
    async move {
        let mut wait = Wait::new(lp, fd, Direction::Read)?;
        let mut buf = Vec::with_capacity(n);
        let (_, _, from) = wait
            .retry(|fd| {
                if n == 0 {
                    // A zero-length read still takes one datagram.
                    rustix::net::recvfrom(fd, &mut [0u8; 0][..], RecvFlags::empty())
                } else {
                    let spare = rustix::buffer::spare_capacity(&mut buf);
                    rustix::net::recvfrom(fd, spare, RecvFlags::empty())
                }
            })
            .await?;
        Ok((buf, from.as_ref().and_then(address_of)))
    }
}

/// Receives one datagram into `buf` (asyncio's `sock_recvfrom_into`; the
/// slice's length is asyncio's `nbytes`: pass `&mut buf[..n]` to take at
/// most `n` bytes); returns the number of bytes received and the sender's
/// address (as [`sock_recvfrom`]). A datagram longer than `buf` is
/// truncated, as `recvfrom` does.
///
/// # Errors
/// As [`sock_recv`].
///
/// # Examples
///
/// ```
/// use evloop_core::EventLoop;
/// use evloop_transports::{sock_recvfrom_into, sock_sendto, Address};
///
/// let lp = EventLoop::new()?;
/// let a = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// let b = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// a.set_nonblocking(true)?;
/// b.set_nonblocking(true)?;
/// let to = Address::Inet(b.local_addr()?);
/// let mut buf = [0u8; 16];
/// let (n, from) = lp.run_until_complete(async {
///     sock_sendto(&lp, &a, b"hello", to).await?;
///     sock_recvfrom_into(&lp, &b, &mut buf).await
/// })??;
/// assert_eq!(&buf[..n], b"hello");
/// assert_eq!(from, Some(Address::Inet(a.local_addr()?)));
/// lp.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sock_recvfrom_into<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
    buf: &'a mut [u8],
) -> impl Future<Output = Result<(usize, Option<Address>), Error>> + 'a {
    let lp = lp.clone();
    let fd = sock.as_fd();
    async move {
        let mut wait = Wait::new(lp, fd, Direction::Read)?;
        let (n, _, from) = wait
            .retry(|fd| rustix::net::recvfrom(fd, &mut *buf, RecvFlags::empty()))
            .await?;
        Ok((n, from.as_ref().and_then(address_of)))
    }
}

/// Resolves `host:port` for the socket `fd` (asyncio's `_ensure_resolved`
/// with the socket's family, type and protocol): the first address.
async fn resolve_for(
    lp: &EventLoop,
    fd: BorrowedFd<'_>,
    host: &str,
    port: u16,
) -> Result<Address, Error> {
    let family = rustix::net::getsockname(fd)
        .map_err(io_error)?
        .address_family();
    if family != AddressFamily::INET && family != AddressFamily::INET6 {
        return Err(Error::invalid_argument(
            "addr: a host and port need an internet (AF_INET/AF_INET6) socket",
        ));
    }
    let socktype = rustix::net::sockopt::socket_type(fd).map_err(io_error)?;
    let protocol = rustix::net::sockopt::socket_protocol(fd)
        .ok()
        .flatten()
        .map_or(0, |p| i32::try_from(p.as_raw().get()).unwrap_or(0));
    let hints = crate::resolve::ResolveHints {
        family: if family == AddressFamily::INET {
            Family::Inet
        } else {
            Family::Inet6
        },
        socktype: i32::try_from(socktype.as_raw()).unwrap_or(0),
        protocol,
        flags: 0,
    };
    let addrs = crate::resolve::resolve(lp, Some(host), port, hints).await?;
    addrs
        .into_iter()
        .next()
        .map(Address::Inet)
        .ok_or_else(|| Error::invalid_argument(format!("addr: {host:?} resolved to nothing")))
}

/// The address the kernel reported. An unnamed unix peer comes back with
/// only the family (length 2); rustix 1.1 turns that into an empty abstract
/// name, so it is caught here first.
fn address_of(addr: &SocketAddrAny) -> Option<Address> {
    let family_only = usize::try_from(addr.addr_len())
        .is_ok_and(|len| len <= std::mem::size_of::<rustix::net::RawAddressFamily>());
    if addr.address_family() == AddressFamily::UNIX && family_only {
        return Some(Address::UnixUnnamed);
    }
    Address::from_any(addr)
}

/// The address as the kernel takes it.
fn to_any(addr: &Address) -> Result<SocketAddrAny, Error> {
    let unix = |result: rustix::io::Result<SocketAddrUnix>| {
        result
            .map(SocketAddrAny::from)
            .map_err(|errno| Error::Io(errno.into()))
    };
    match addr {
        Address::Inet(inet) => Ok(SocketAddrAny::from(SocketAddr::clone(inet))),
        Address::UnixPath(path) => unix(SocketAddrUnix::new(path.as_path())),
        Address::UnixAbstract(name) => unix(SocketAddrUnix::new_abstract_name(name)),
        Address::UnixUnnamed => Err(Error::invalid_argument(
            "addr: an unnamed unix address cannot be connected or sent to",
        )),
    }
}

pub(crate) fn io_error(errno: Errno) -> Error {
    Error::Io(io::Error::from(errno))
}

/// Which watcher a future waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// One future's place in the registry.
#[derive(Debug)]
struct Waiter {
    id: u64,
    waker: Option<Waker>,
    /// The watcher fired since this waiter last parked.
    notified: bool,
}

/// The waiters of one fd in one direction.
#[derive(Debug, Default)]
struct Slot {
    armed: bool,
    waiters: Vec<Waiter>,
}

#[derive(Debug, Default)]
struct FdWaiters {
    read: Slot,
    write: Slot,
}

impl FdWaiters {
    fn slot(&mut self, direction: Direction) -> &mut Slot {
        match direction {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }
}

/// The per-loop registry of sock_* waiters, keyed by fd (a loop extension).
#[derive(Debug, Default)]
struct Registry {
    fds: RefCell<HashMap<RawFd, FdWaiters>>,
    next_id: Cell<u64>,
}

impl Registry {
    fn of(lp: &EventLoop) -> Rc<Registry> {
        lp.extension(Registry::default)
    }

    /// Adds or refreshes waiter `id` and arms the watcher if needed.
    fn park(
        self: &Rc<Self>,
        lp: &EventLoop,
        borrowed: BorrowedFd<'_>,
        direction: Direction,
        id: &mut Option<u64>,
        waker: &Waker,
    ) -> Result<(), Error> {
        let fd = borrowed.as_raw_fd();
        let must_arm = {
            let mut fds = self.fds.borrow_mut();
            let slot = fds.entry(fd).or_default().slot(direction);
            let existing = id.and_then(|id| slot.waiters.iter_mut().find(|w| w.id == id));
            match existing {
                Some(waiter) => {
                    waiter.notified = false;
                    if !waiter.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                        waiter.waker = Some(waker.clone());
                    }
                }
                None => {
                    let new_id = self.next_id.get();
                    self.next_id.set(new_id + 1);
                    *id = Some(new_id);
                    slot.waiters.push(Waiter {
                        id: new_id,
                        waker: Some(waker.clone()),
                        notified: false,
                    });
                }
            }
            !std::mem::replace(&mut slot.armed, true)
        };
        if !must_arm {
            return Ok(());
        }
        let registry = Rc::downgrade(self);
        let fire = move || Registry::fire(&registry, fd, direction);
        let armed = match direction {
            Direction::Read => lp.add_reader(&borrowed, fire),
            Direction::Write => lp.add_writer(&borrowed, fire),
        };
        if armed.is_err() {
            if let Some(slot) = self.fds.borrow_mut().get_mut(&fd) {
                slot.slot(direction).armed = false;
            }
        }
        armed
    }

    /// The watcher fired: disarm it and wake every waiter.
    fn fire(registry: &Weak<Registry>, fd: RawFd, direction: Direction) {
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let wakers: Vec<Waker> = {
            let mut fds = registry.fds.borrow_mut();
            let Some(slot) = fds.get_mut(&fd).map(|w| w.slot(direction)) else {
                return;
            };
            slot.armed = false;
            slot.waiters
                .iter_mut()
                .filter_map(|w| {
                    w.notified = true;
                    w.waker.take()
                })
                .collect()
        };
        // Watchers only run inside their own loop, so `current` is it. The
        // callback has no borrow of the fd, only its number: a waiter still
        // parked holds the borrow, so the number is the fd it registered.
        if let Ok(lp) = EventLoop::current() {
            match direction {
                Direction::Read => lp.remove_reader_by_number(fd),
                Direction::Write => lp.remove_writer_by_number(fd),
            };
        }
        wakers.into_iter().for_each(Waker::wake);
    }

    /// True (once) if the watcher fired since waiter `id` parked.
    fn take_notified(&self, fd: RawFd, direction: Direction, id: Option<u64>) -> bool {
        let Some(id) = id else {
            return false;
        };
        let mut fds = self.fds.borrow_mut();
        let Some(slot) = fds.get_mut(&fd).map(|w| w.slot(direction)) else {
            return false;
        };
        slot.waiters
            .iter_mut()
            .find(|w| w.id == id)
            .is_some_and(|w| std::mem::replace(&mut w.notified, false))
    }

    /// Waiter `id` is done or dropped; the last one out removes the watcher.
    fn leave(&self, lp: &EventLoop, borrowed: BorrowedFd<'_>, direction: Direction, id: u64) {
        let fd = borrowed.as_raw_fd();
        let disarm = {
            let mut fds = self.fds.borrow_mut();
            let Some(entry) = fds.get_mut(&fd) else {
                return;
            };
            let slot = entry.slot(direction);
            slot.waiters.retain(|w| w.id != id);
            let disarm = slot.waiters.is_empty() && std::mem::take(&mut slot.armed);
            if entry.read.waiters.is_empty() && entry.write.waiters.is_empty() {
                fds.remove(&fd);
            }
            disarm
        };
        if disarm {
            match direction {
                Direction::Read => lp.remove_reader(&borrowed),
                Direction::Write => lp.remove_writer(&borrowed),
            };
        }
    }
}

/// One sock_* future's wait on its fd: leaves the registry on drop.
pub(crate) struct Wait<'a> {
    lp: EventLoop,
    registry: Rc<Registry>,
    fd: BorrowedFd<'a>,
    direction: Direction,
    id: Option<u64>,
}

impl<'a> Wait<'a> {
    /// Checks the socket is non-blocking (asyncio checks only in debug mode;
    /// a blocking socket would block the loop, so evloop always checks).
    pub(crate) fn new(
        lp: EventLoop,
        fd: BorrowedFd<'a>,
        direction: Direction,
    ) -> Result<Self, Error> {
        if lp.is_closed() {
            return Err(Error::Closed);
        }
        let flags = rustix::fs::fcntl_getfl(fd).map_err(io_error)?;
        if !flags.contains(OFlags::NONBLOCK) {
            return Err(Error::invalid_argument("the socket must be non-blocking"));
        }
        Ok(Wait {
            registry: Registry::of(&lp),
            lp,
            fd,
            direction,
            id: None,
        })
    }

    /// Runs `op` until it does not report `EAGAIN`, waiting for readiness in
    /// between; `EINTR` retries at once.
    pub(crate) async fn retry<T>(
        &mut self,
        mut op: impl FnMut(BorrowedFd<'a>) -> rustix::io::Result<T>,
    ) -> Result<T, Error> {
        let result = poll_fn(|cx| loop {
            match fault::io(Op::Sock, self.fd.as_raw_fd(), 0, |_| op(self.fd)) {
                Ok(value) => return Poll::Ready(Ok(value)),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return self.park(cx),
                Err(errno) => return Poll::Ready(Err(io_error(errno))),
            }
        })
        .await;
        self.leave();
        result
    }

    /// Waits until the watcher fires once.
    async fn readiness(&mut self) -> Result<(), Error> {
        let result = poll_fn(|cx| {
            if self
                .registry
                .take_notified(self.fd.as_raw_fd(), self.direction, self.id)
            {
                Poll::Ready(Ok(()))
            } else {
                self.park(cx)
            }
        })
        .await;
        self.leave();
        result
    }

    /// Registers the waker; `Pending`, or `Ready(Err)` if the fd cannot be
    /// watched (`FdInUse`, `Closed`, `EBADF`, …).
    fn park<T>(&mut self, cx: &Context<'_>) -> Poll<Result<T, Error>> {
        match self
            .registry
            .park(&self.lp, self.fd, self.direction, &mut self.id, cx.waker())
        {
            Ok(()) => Poll::Pending,
            Err(error) => {
                self.leave();
                Poll::Ready(Err(error))
            }
        }
    }

    fn leave(&mut self) {
        if let Some(id) = self.id.take() {
            self.registry.leave(&self.lp, self.fd, self.direction, id);
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}
