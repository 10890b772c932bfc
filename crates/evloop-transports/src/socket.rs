//! Socket plumbing shared by TCP, unix stream sockets and servers, over
//! rustix: non-blocking CLOEXEC sockets, options, bind/listen, a
//! non-blocking connect that completes on writability + `SO_ERROR`,
//! `accept4(NONBLOCK|CLOEXEC)`, addresses, and OS errors that keep their
//! errno while naming the address involved.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use evloop_core::{Error, EventLoop, LoopFuture, OsErrorContext};
use rustix::io::Errno;
use rustix::net::addr::SocketAddrArg;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::address::Address;
use crate::fault::{self, Op};

/// A new non-blocking, close-on-exec socket.
pub(crate) fn new_socket(family: AddressFamily, kind: SocketType) -> io::Result<OwnedFd> {
    rustix::net::socket_with(
        family,
        kind,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// The address family of an internet address.
pub(crate) fn family_of(addr: &SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    }
}

/// Checks that `fd` is a stream socket (asyncio: `'A Stream Socket was expected'`).
pub(crate) fn check_stream(fd: &OwnedFd) -> Result<(), Error> {
    match rustix::net::sockopt::socket_type(fd) {
        Ok(SocketType::STREAM) => Ok(()),
        Ok(_) | Err(_) => Err(Error::invalid_argument(format!(
            "sock: a stream socket was expected, got fd {}",
            fd.as_raw_fd()
        ))),
    }
}

/// Sets `TCP_NODELAY` on internet stream sockets (not on unix or other
/// families: asyncio's `_set_nodelay`).
pub(crate) fn set_nodelay_if_inet(fd: &OwnedFd) {
    if let Ok(family) = rustix::net::sockopt::socket_domain(fd) {
        if family == AddressFamily::INET || family == AddressFamily::INET6 {
            let _ = rustix::net::sockopt::set_tcp_nodelay(fd, true);
        }
    }
}

/// Our address, if the kernel tells.
pub(crate) fn sockname(fd: impl AsFd) -> Option<Address> {
    rustix::net::getsockname(fd)
        .ok()
        .and_then(|a| Address::from_any(&a))
}

/// The peer's address, if connected and the kernel tells.
pub(crate) fn peername(fd: impl AsFd) -> Option<Address> {
    rustix::net::getpeername(fd)
        .ok()
        .flatten()
        .and_then(|a| Address::from_any(&a))
}

/// Binds `fd` to `addr`; a failure keeps its errno (as the error's source
/// and kind) and names the address, as asyncio does.
pub(crate) fn bind(
    fd: &OwnedFd,
    addr: &impl SocketAddrArg,
    shown: &dyn fmt::Display,
) -> io::Result<()> {
    rustix::net::bind(fd, addr).map_err(|errno| {
        let error = io::Error::from(errno);
        with_context(
            error,
            format!("error while attempting to bind on address {shown}"),
        )
    })
}

/// `listen(backlog)`.
pub(crate) fn listen(fd: &OwnedFd, backlog: u32) -> io::Result<()> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    rustix::net::listen(fd, backlog).map_err(io::Error::from)
}

/// `accept4(NONBLOCK|CLOEXEC)`: the new socket and the peer's address.
pub(crate) fn accept(listener: &OwnedFd) -> Result<(OwnedFd, Option<Address>), Errno> {
    let (fd, peer) = fault::io(Op::Accept, listener.as_raw_fd(), 0, |_| {
        rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
    })?;
    fault::accepted(listener.as_raw_fd(), fd.as_raw_fd());
    Ok((fd, peer.and_then(|a| Address::from_any(&a))))
}

/// A non-blocking connect: returns once the socket is connected, or with
/// the connect error (`SO_ERROR`). Dropping the future stops watching the
/// fd (the caller owns it and closes it).
pub(crate) async fn connect(
    event_loop: &EventLoop,
    fd: &OwnedFd,
    addr: &impl SocketAddrArg,
) -> Result<(), Error> {
    fault::socket_created(fd.as_raw_fd());
    let result = connect_once(event_loop, fd, addr).await;
    if result.is_err() {
        fault::connect_failed(fd.as_raw_fd());
    }
    result
}

/// [`connect`] without the fault seam's bookkeeping.
async fn connect_once(
    event_loop: &EventLoop,
    fd: &OwnedFd,
    addr: &impl SocketAddrArg,
) -> Result<(), Error> {
    loop {
        match fault::io(Op::Connect, fd.as_raw_fd(), 0, |_| {
            rustix::net::connect(fd, addr)
        }) {
            Ok(()) | Err(Errno::ISCONN) => return Ok(()),
            Err(Errno::INPROGRESS | Errno::INTR | Errno::ALREADY) => {
                writable(event_loop, fd.as_fd())?.await?;
                match rustix::net::sockopt::socket_error(fd).map_err(io::Error::from)? {
                    Ok(()) => return Ok(()),
                    Err(Errno::INPROGRESS | Errno::ALREADY | Errno::INTR) => {}
                    Err(errno) => return Err(Error::Io(errno.into())),
                }
            }
            // A unix socket whose listener's backlog is full: wait and retry
            // (asyncio treats BlockingIOError like EINPROGRESS).
            Err(Errno::AGAIN) => writable(event_loop, fd.as_fd())?.await?,
            Err(errno) => return Err(Error::Io(errno.into())),
        }
    }
}

/// Waits once for `fd` to be writable, through `add_writer`; the watcher is
/// removed when the wait ends or is dropped.
fn writable<'fd>(event_loop: &EventLoop, fd: BorrowedFd<'fd>) -> Result<Writable<'fd>, Error> {
    let ready = event_loop.create_future::<()>();
    let signal = ready.clone();
    event_loop.add_writer(&fd, move || {
        let _ = signal.set_result(());
    })?;
    Ok(Writable {
        event_loop: event_loop.clone(),
        fd,
        ready,
    })
}

struct Writable<'fd> {
    event_loop: EventLoop,
    fd: BorrowedFd<'fd>,
    ready: LoopFuture<()>,
}

impl Future for Writable<'_> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.ready).poll(cx)
    }
}

impl Drop for Writable<'_> {
    fn drop(&mut self) {
        self.event_loop.remove_writer(&self.fd);
    }
}

/// Wraps `error` with `message`, keeping its kind, and its errno as the
/// source ([`OsErrorContext`], which `Error::raw_os_error` looks through).
pub(crate) fn with_context(error: io::Error, message: String) -> io::Error {
    OsErrorContext::wrap(error, message)
}

/// The errno behind an error, looking through [`with_context`] wrappers.
pub(crate) fn errno_of(error: &io::Error) -> Option<i32> {
    match OsErrorContext::from_io(error) {
        Some(context) => errno_of(context.os_error()),
        None => error.raw_os_error(),
    }
}

/// The errno behind an [`Error::Io`], also when the error carries a message
/// naming the address (bind errors keep their errno this way): the same as
/// [`Error::raw_os_error`].
pub fn os_errno(error: &Error) -> Option<i32> {
    error.raw_os_error()
}

/// asyncio's error aggregation for connection attempts: one error as is;
/// several with the same text, the first; otherwise one error listing each
/// `address: error`, with the kind of the first.
pub(crate) fn aggregate(mut errors: Vec<(String, Error)>) -> Error {
    if errors.len() == 1 {
        return errors.remove(0).1;
    }
    if errors.is_empty() {
        return Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "create_connection failed",
        ));
    }
    let first_text = errors[0].1.to_string();
    if errors.iter().all(|(_, e)| e.to_string() == first_text) {
        return errors.remove(0).1;
    }
    let kind = errors[0].1.io_kind().unwrap_or(io::ErrorKind::Other);
    let listed: Vec<String> = errors
        .iter()
        .map(|(addr, error)| format!("{addr}: {error}"))
        .collect();
    Error::Io(io::Error::new(
        kind,
        format!("Multiple exceptions: {}", listed.join(", ")),
    ))
}
