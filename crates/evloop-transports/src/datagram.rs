//! The datagram transport every datagram kind shares (UDP and unix datagram
//! sockets): asyncio's `_SelectorDatagramTransport`.
//!
//! The rules are the stream transport's (see `transport.rs`): no borrow of
//! the transport's state is held while the protocol runs, so every method of
//! [`DatagramTransport`] works from inside any protocol callback; protocol
//! calls run under `catch_unwind` and a panic is reported to the loop's
//! exception handler and closes the endpoint with an error;
//! `connection_lost` is delivered from the loop, exactly once.
//!
//! What differs from streams (docs/behaviour.md 5.5):
//!
//! * An OS error from a send or a receive (ICMP port unreachable arriving as
//!   `ECONNREFUSED`, `EMSGSIZE`, …) goes to
//!   [`DatagramProtocol::error_received`]; the endpoint stays open.
//! * Reads take one datagram per `recvfrom`, into the loop's 256 KiB read
//!   buffer (datagrams keep their boundaries). asyncio reads one datagram per
//!   readiness event; we read up to [`MAX_DATAGRAMS_PER_EVENT`] while the
//!   socket has more, which saves a poll round trip per datagram under load
//!   and still lets other callbacks run between batches.
//! * The write buffer is a queue of whole datagrams with their destination;
//!   its size (for the water marks) is the sum of the queued payloads.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use evloop_core::{Error, EventLoop, LoopFuture};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrAny, SocketAddrUnix};

use crate::address::Address;
use crate::fault::{self, Op};
use crate::flow::{Flow, WaterMarks};
use crate::protocol::DatagramProtocol;
use crate::read_buffer::ReadBuffer;
use crate::watch::{self, guarded, FdWatch};

/// Datagrams read per readiness event, at most (asyncio reads one).
pub(crate) const MAX_DATAGRAMS_PER_EVENT: usize = 16;

/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// A datagram endpoint handle (asyncio's `DatagramTransport`): cheap to
/// clone, usable from inside protocol callbacks.
///
/// Made by `create_datagram_endpoint` (UDP) and
/// `create_unix_datagram_endpoint`. Differences from asyncio, on purpose:
///
/// * [`sendto`](Self::sendto) returns `Err(InvalidArgument)` for an address
///   the endpoint cannot use (asyncio: `ValueError`/`TypeError`), and never
///   resolves names (asyncio would do a blocking lookup on the loop thread).
/// * `sendto` after the endpoint is closed is a silent no-op on every
///   endpoint (asyncio only counts on connected ones), counted and warned
///   from the fifth on (docs/behaviour.md 7.3).
/// * There is no `reuse_address` option anywhere (asyncio removed it for
///   UDP, bpo-37228: `SO_REUSEADDR` lets another process steal the port).
#[derive(Clone)]
pub struct DatagramTransport {
    pub(crate) inner: Rc<DatagramInner>,
}

/// Which address family the socket has, deciding what `sendto` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DatagramFamily {
    /// `AF_INET`.
    V4,
    /// `AF_INET6` (IPv4 destinations are sent as v4-mapped addresses).
    V6,
    /// `AF_UNIX`.
    Unix,
}

/// What `start` needs to know about a new datagram socket.
pub(crate) struct DatagramSpec {
    pub(crate) fd: OwnedFd,
    pub(crate) family: DatagramFamily,
    /// `Some` for a connected socket: sends use `send`, and `sendto` accepts
    /// only `None` or this address.
    pub(crate) peername: Option<Address>,
    pub(crate) sockname: Option<Address>,
}

/// One queued datagram: its payload and (unconnected) destination.
struct Queued {
    data: Box<[u8]>,
    to: Option<SocketAddrAny>,
}

/// Mutable endpoint state; never borrowed across a protocol call.
#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Sum of the queued payload lengths.
    buffered: usize,
    flow: Flow,
    closing: bool,
    /// asyncio's `_conn_lost`: non-zero once `connection_lost` is scheduled;
    /// sends after that are counted here and dropped.
    conn_lost: u32,
}

type Proto = Rc<RefCell<dyn DatagramProtocol>>;
type ProtocolCall = Box<dyn FnOnce(&mut dyn DatagramProtocol)>;

pub(crate) struct DatagramInner {
    event_loop: EventLoop,
    family: DatagramFamily,
    raw_fd: RawFd,
    fd: RefCell<Option<OwnedFd>>,
    watch: FdWatch,
    protocol: RefCell<Option<Proto>>,
    state: RefCell<State>,
    peername: Option<Address>,
    sockname: Option<Address>,
    lost_delivered: Cell<bool>,
}

impl DatagramTransport {
    /// Wraps `spec.fd` (made non-blocking here) and schedules, in order:
    /// `connection_made`, the start of reading, and completing `waiter`.
    /// The fd is claimed, so `add_reader` on it fails with `FdInUse` while
    /// the endpoint lives.
    pub(crate) fn start(
        event_loop: &EventLoop,
        spec: DatagramSpec,
        protocol: Proto,
        waiter: Option<LoopFuture<()>>,
    ) -> Result<DatagramTransport, Error> {
        rustix::io::ioctl_fionbio(&spec.fd, true).map_err(io::Error::from)?;
        let raw_fd = spec.fd.as_raw_fd();
        let claim = event_loop.claim_fd(&spec.fd)?;
        let inner = Rc::new(DatagramInner {
            event_loop: event_loop.clone(),
            family: spec.family,
            raw_fd,
            fd: RefCell::new(Some(spec.fd)),
            watch: FdWatch::new(claim),
            protocol: RefCell::new(Some(protocol)),
            state: RefCell::new(State::default()),
            peername: spec.peername,
            sockname: spec.sockname,
            lost_delivered: Cell::new(false),
        });
        crate::lifecycle::track(event_loop, Rc::downgrade(&inner) as _);
        let transport = DatagramTransport { inner };
        let made = transport.clone();
        let scheduled = event_loop.call_soon(move || {
            let handle = made.clone();
            made.inner.call_protocol(
                "connection_made",
                Box::new(move |p: &mut dyn DatagramProtocol| p.connection_made(handle)),
            );
        });
        if let Err(error) = scheduled {
            transport.inner.release();
            return Err(error);
        }
        let started = transport.clone();
        let scheduled = event_loop.call_soon(move || {
            started.inner.sync_watchers();
            if let Some(waiter) = waiter {
                let _ = waiter.set_result(());
            }
        });
        if let Err(error) = scheduled {
            transport.inner.release();
            return Err(error);
        }
        Ok(transport)
    }

    /// Sends one datagram (asyncio's `sendto(data, addr)`).
    ///
    /// `addr` is `None` on a connected endpoint (or that endpoint's own
    /// peer address); on an unconnected one it is the destination. The
    /// datagram goes straight to the socket when nothing is queued (no
    /// copy); if the socket would block it is queued (copied) and sent when
    /// the socket is writable, with `pause_writing`/`resume_writing` around
    /// the water marks. An empty `data` is sent as a zero-length datagram
    /// (Python 3.13's behaviour).
    ///
    /// An OS error from the send (`EMSGSIZE`, `ECONNREFUSED`, …) goes to the
    /// protocol's `error_received` and the datagram is dropped; the endpoint
    /// stays open. After the endpoint is closed (or lost) the call is a
    /// silent no-op, counted, with a `tracing` warning from the fifth on.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] (nothing is sent) for an address this
    /// endpoint cannot use: a different address than the connected peer
    /// (`"Invalid address: must be None or <peer>"`), a missing address on
    /// an unconnected endpoint, an IPv6 address on an IPv4 socket, an
    /// internet address on a unix socket or the reverse, or an unnamed unix
    /// address.
    pub fn sendto(&self, data: &[u8], addr: Option<Address>) -> Result<(), Error> {
        let to = self.inner.destination(addr.as_ref())?;
        self.inner.sendto(data, to);
        Ok(())
    }

    /// Sends one datagram to `host:port` where `host` must be a numeric
    /// IPv4 or IPv6 address (`"127.0.0.1"`, `"::1"`, `"[::1]"`).
    ///
    /// This is the form of `sendto((host, port))` that asyncio accepts and
    /// then resolves with a *blocking* `getaddrinfo` on the loop thread; we
    /// never block the loop, so a host name is rejected (as uvloop does).
    /// Resolve it first with [`resolve`](crate::resolve) and pass the
    /// [`Address`] to [`sendto`](Self::sendto).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a host name (`"… requires a DNS
    /// lookup"`), and as [`sendto`](Self::sendto).
    #[doc(alias = "sendto")]
    pub fn sendto_host(&self, data: &[u8], host: &str, port: u16) -> Result<(), Error> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip: IpAddr = bare.parse().map_err(|_| {
            Error::invalid_argument(format!(
                "sendto: address {host:?} requires a DNS lookup; resolve it first"
            ))
        })?;
        self.sendto(data, Some(Address::Inet(SocketAddr::new(ip, port))))
    }

    /// Closes after sending what is queued; `connection_lost(None)` follows
    /// (from the loop). Receiving stops at once. Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes now, dropping queued datagrams; `connection_lost(None)` follows.
    pub fn abort(&self) {
        self.inner.force_close(None);
    }

    /// True once `close`/`abort` was called or the endpoint was lost.
    pub fn is_closing(&self) -> bool {
        self.inner.state.borrow().closing
    }

    /// Payload bytes queued, waiting for the socket.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.state.borrow().buffered
    }

    /// `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        let marks = self.inner.state.borrow().flow.marks;
        (marks.low, marks.high)
    }

    /// Sets the water marks with asyncio's defaults (see [`WaterMarks::new`])
    /// and pauses the protocol at once if the queue is already above high.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `high >= low`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), Error> {
        let marks = WaterMarks::new(high, low)?;
        self.inner.state.borrow_mut().flow.marks = marks;
        self.inner.maybe_pause_protocol();
        Ok(())
    }

    /// The connected peer's address (`get_extra_info('peername')`), `None`
    /// on an unconnected endpoint.
    #[doc(alias = "get_extra_info")]
    pub fn peername(&self) -> Option<Address> {
        self.inner.peername.clone()
    }

    /// Our address (`get_extra_info('sockname')`).
    #[doc(alias = "get_extra_info")]
    pub fn sockname(&self) -> Option<Address> {
        self.inner.sockname.clone()
    }

    /// The socket's fd (`get_extra_info('socket')`), until the endpoint is lost.
    #[doc(alias = "get_extra_info")]
    pub fn fd(&self) -> Option<RawFd> {
        self.inner.fd.borrow().as_ref().map(|_| self.inner.raw_fd)
    }
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("DatagramTransport")
            .field("fd", &self.inner.raw_fd)
            .field("family", &self.inner.family)
            .field("sockname", &self.inner.sockname)
            .field("peername", &self.inner.peername)
            .field("closing", &state.closing)
            .field("buffered", &state.buffered)
            .finish()
    }
}

/// A socket address as an [`Address`]. rustix decodes an unnamed unix
/// address (`addrlen == sizeof(sa_family_t)`, e.g. `getsockname` of an
/// unbound socket) as the path `""`, whose encoding is one NUL byte, so
/// [`Address::from_any`] sees an empty abstract name: that is unnamed.
pub(crate) fn address_of(addr: &SocketAddrAny) -> Option<Address> {
    match Address::from_any(addr)? {
        Address::UnixAbstract(name) if name.is_empty() => Some(Address::UnixUnnamed),
        other => Some(other),
    }
}

fn is_retry(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl DatagramInner {
    fn describe(&self) -> String {
        format!("<{:?} datagram transport fd={}>", self.family, self.raw_fd)
    }

    fn protocol(&self) -> Option<Proto> {
        self.protocol.borrow().clone()
    }

    /// Checks `addr` against the socket and turns it into a destination:
    /// `None` means "use `send`" (connected endpoint).
    fn destination(&self, addr: Option<&Address>) -> Result<Option<SocketAddrAny>, Error> {
        if let Some(peer) = &self.peername {
            return match addr {
                None => Ok(None),
                Some(addr) if addr == peer => Ok(None),
                Some(_) => Err(Error::invalid_argument(format!(
                    "Invalid address: must be None or {peer}"
                ))),
            };
        }
        let Some(addr) = addr else {
            return Err(Error::invalid_argument(
                "sendto: addr is required on an unconnected endpoint",
            ));
        };
        match (self.family, addr) {
            (DatagramFamily::V4, Address::Inet(sa @ SocketAddr::V4(_))) => Ok(Some((*sa).into())),
            (DatagramFamily::V4, Address::Inet(SocketAddr::V6(_))) => Err(Error::invalid_argument(
                format!("sendto: {addr} - socket family mismatch (IPv6 address on an IPv4 socket)"),
            )),
            (DatagramFamily::V6, Address::Inet(SocketAddr::V6(v6))) => Ok(Some((*v6).into())),
            (DatagramFamily::V6, Address::Inet(SocketAddr::V4(v4))) => {
                let mapped = std::net::SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0);
                Ok(Some(mapped.into()))
            }
            (DatagramFamily::Unix, Address::UnixPath(path)) => SocketAddrUnix::new(path.as_path())
                .map(|a| Some(a.into()))
                .map_err(|e| Error::invalid_argument(format!("sendto: bad unix path {addr}: {e}"))),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            (DatagramFamily::Unix, Address::UnixAbstract(name)) => {
                SocketAddrUnix::new_abstract_name(name)
                    .map(|a| Some(a.into()))
                    .map_err(|e| {
                        Error::invalid_argument(format!("sendto: bad abstract name {addr}: {e}"))
                    })
            }
            (_, Address::UnixUnnamed) => Err(Error::invalid_argument(
                "sendto: cannot send to an unnamed unix address",
            )),
            (DatagramFamily::Unix, Address::Inet(_)) => Err(Error::invalid_argument(format!(
                "sendto: {addr} - socket family mismatch (internet address on a unix socket)"
            ))),
            (_, _) => Err(Error::invalid_argument(format!(
                "sendto: {addr} - socket family mismatch (unix address on an internet socket)"
            ))),
        }
    }

    /// Runs a protocol callback; a panic is reported with the endpoint's
    /// context and closes the endpoint with an error (asyncio's `_fatal_error`).
    fn guard<R>(self: &Rc<Self>, what: &str, f: impl FnOnce() -> R) -> Option<R> {
        guarded(what, |message, error| self.report(message, error), f)
            .map_err(|error| self.force_close(Some(error)))
            .ok()
    }

    fn report(&self, message: &str, error: Error) {
        watch::report(
            &self.event_loop,
            "DatagramProtocol",
            self.describe(),
            self.raw_fd,
            message,
            error,
        );
    }

    /// Calls a protocol method now, or — if the protocol is busy in one of
    /// its own callbacks (it called `sendto` from there) — on the loop right
    /// after.
    fn call_protocol(self: &Rc<Self>, what: &'static str, f: ProtocolCall) {
        let Some(protocol) = self.protocol() else {
            return;
        };
        if protocol.try_borrow_mut().is_err() {
            let me = self.clone();
            let _ = self.event_loop.call_soon(move || me.call_protocol(what, f));
            return;
        }
        self.guard(what, || f(&mut *protocol.borrow_mut()));
    }

    fn error_received(self: &Rc<Self>, error: io::Error) {
        tracing::debug!(target: "evloop::transports", fd = self.raw_fd, %error, "datagram error_received");
        self.call_protocol(
            "error_received",
            Box::new(move |p: &mut dyn DatagramProtocol| p.error_received(error)),
        );
    }

    /// Arms or disarms the fd watchers to match the state.
    fn sync_watchers(self: &Rc<Self>) {
        let (want_read, want_write) = {
            let st = self.state.borrow();
            let open = st.conn_lost == 0;
            (open && !st.closing, open && !st.queue.is_empty())
        };
        self.arm_reader(want_read);
        self.arm_writer(want_write);
    }

    fn arm_reader(self: &Rc<Self>, on: bool) {
        self.watch.set_reader(on, || {
            let me = self.clone();
            move || me.on_readable()
        });
    }

    fn arm_writer(self: &Rc<Self>, on: bool) {
        self.watch.set_writer(on, || {
            let me = self.clone();
            move || me.on_writable()
        });
    }

    fn send_fd(&self, data: &[u8], to: Option<&SocketAddrAny>) -> io::Result<usize> {
        let fd = self.fd.borrow();
        let Some(fd) = fd.as_ref() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let result = fault::io(Op::Send, self.raw_fd, data.len(), |_| match to {
            None => rustix::net::send(fd, data, SendFlags::NOSIGNAL),
            Some(to) => rustix::net::sendto(fd, data, SendFlags::NOSIGNAL, to),
        });
        result.map_err(io::Error::from)
    }

    /// The sender of a received datagram as an [`Address`].
    fn source(&self, from: Option<&SocketAddrAny>) -> Address {
        if let Some(address) = from.and_then(address_of) {
            return address;
        }
        match (self.family, from) {
            // An unbound unix sender has no name (addrlen may even be 0).
            (DatagramFamily::Unix, _) => Address::UnixUnnamed,
            (_, Some(from)) if from.address_family() == AddressFamily::UNIX => Address::UnixUnnamed,
            _ => self.peername.clone().unwrap_or(Address::UnixUnnamed),
        }
    }

    fn on_readable(self: &Rc<Self>) {
        for _ in 0..MAX_DATAGRAMS_PER_EVENT {
            if self.state.borrow().closing {
                return;
            }
            let Some(protocol) = self.protocol() else {
                return;
            };
            let buffer = ReadBuffer::of(&self.event_loop);
            let mut scratch = buffer.take();
            let outcome = {
                let fd = self.fd.borrow();
                let Some(fd) = fd.as_ref() else {
                    buffer.give_back(scratch);
                    return;
                };
                fault::io(Op::Recv, self.raw_fd, scratch.len(), |_| {
                    rustix::net::recvfrom(fd, &mut scratch[..], RecvFlags::empty())
                })
                .map_err(io::Error::from)
            };
            match outcome {
                Ok((n, _, from)) => {
                    let from = self.source(from.as_ref());
                    self.guard("datagram_received", || {
                        protocol.borrow_mut().datagram_received(&scratch[..n], from);
                    });
                    buffer.give_back(scratch);
                }
                Err(error) => {
                    buffer.give_back(scratch);
                    if !is_retry(&error) {
                        // e.g. ECONNREFUSED from an earlier send: reported,
                        // and the endpoint goes on (gh-91227).
                        self.error_received(error);
                    }
                    return;
                }
            }
        }
    }

    fn sendto(self: &Rc<Self>, data: &[u8], to: Option<SocketAddrAny>) {
        let mut st = self.state.borrow_mut();
        if st.conn_lost > 0 {
            st.conn_lost = st.conn_lost.saturating_add(1);
            if st.conn_lost > LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                tracing::warn!(target: "evloop::transports", fd = self.raw_fd, "socket.send() raised exception.");
            }
            return;
        }
        if st.queue.is_empty() {
            match self.send_fd(data, to.as_ref()) {
                Ok(_) => return,
                Err(error) if is_retry(&error) => {}
                Err(error) => {
                    drop(st);
                    self.error_received(error);
                    return;
                }
            }
        }
        st.queue.push_back(Queued {
            data: data.into(),
            to,
        });
        st.buffered += data.len();
        drop(st);
        self.arm_writer(true);
        self.maybe_pause_protocol();
    }

    fn on_writable(self: &Rc<Self>) {
        loop {
            let outcome = {
                let st = self.state.borrow();
                if st.conn_lost > 0 {
                    return;
                }
                let Some(front) = st.queue.front() else {
                    break;
                };
                self.send_fd(&front.data, front.to.as_ref())
            };
            match outcome {
                Err(error) if is_retry(&error) => return,
                Ok(_) => {
                    self.pop_front();
                }
                Err(error) => {
                    // The datagram is dropped; the endpoint goes on.
                    self.pop_front();
                    self.error_received(error);
                }
            }
        }
        self.maybe_resume_protocol();
        let (drained, closing) = {
            let st = self.state.borrow();
            (st.queue.is_empty(), st.closing)
        };
        if !drained {
            return;
        }
        self.arm_writer(false);
        if closing {
            let already = {
                let mut st = self.state.borrow_mut();
                let already = st.conn_lost > 0;
                st.conn_lost = st.conn_lost.max(1);
                already
            };
            if !already {
                self.call_connection_lost(None);
            }
        }
    }

    fn pop_front(&self) {
        let mut st = self.state.borrow_mut();
        if let Some(sent) = st.queue.pop_front() {
            st.buffered -= sent.data.len();
        }
    }

    fn maybe_pause_protocol(self: &Rc<Self>) {
        let pause = {
            let mut st = self.state.borrow_mut();
            let buffered = st.buffered;
            st.flow.should_pause(buffered)
        };
        if pause {
            self.tell_protocol_flow();
        }
    }

    fn maybe_resume_protocol(self: &Rc<Self>) {
        let resume = {
            let mut st = self.state.borrow_mut();
            let buffered = st.buffered;
            st.flow.should_resume(buffered)
        };
        if resume {
            self.tell_protocol_flow();
        }
    }

    /// `pause_writing` or `resume_writing`, whichever brings the protocol
    /// in line with the buffer when the call can run: deferred while the
    /// protocol is busy (`sendto` from `datagram_received`) and decided
    /// then, so a drain that overtook a pause cancels it (as for streams).
    fn tell_protocol_flow(self: &Rc<Self>) {
        let Some(protocol) = self.protocol() else {
            return;
        };
        if protocol.try_borrow_mut().is_err() {
            let me = self.clone();
            let _ = self.event_loop.call_soon(move || me.tell_protocol_flow());
            return;
        }
        let call = self.state.borrow_mut().flow.take_call();
        match call {
            Some(true) => self.call_protocol(
                "pause_writing",
                Box::new(|p: &mut dyn DatagramProtocol| p.pause_writing()),
            ),
            Some(false) => self.call_protocol(
                "resume_writing",
                Box::new(|p: &mut dyn DatagramProtocol| p.resume_writing()),
            ),
            None => {}
        }
    }

    fn close(self: &Rc<Self>) {
        let lose_now = {
            let mut st = self.state.borrow_mut();
            if st.closing {
                return;
            }
            st.closing = true;
            let lose_now = st.queue.is_empty() && st.conn_lost == 0;
            if lose_now {
                st.conn_lost = 1;
            }
            lose_now
        };
        self.arm_reader(false);
        if lose_now {
            self.arm_writer(false);
            self.schedule_connection_lost(None);
        }
    }

    /// Closes at once, dropping queued datagrams (asyncio's `_force_close`).
    fn force_close(self: &Rc<Self>, error: Option<io::Error>) {
        {
            let mut st = self.state.borrow_mut();
            if st.conn_lost > 0 {
                return;
            }
            st.queue.clear();
            st.buffered = 0;
            st.closing = true;
            st.conn_lost = 1;
        }
        self.arm_writer(false);
        self.arm_reader(false);
        self.schedule_connection_lost(error);
    }

    fn schedule_connection_lost(self: &Rc<Self>, error: Option<io::Error>) {
        let me = self.clone();
        let error = RefCell::new(error);
        if self
            .event_loop
            .call_soon(move || me.call_connection_lost(error.borrow_mut().take()))
            .is_err()
        {
            // The loop is closed: nothing will run later, so finish now.
            self.release();
        }
    }

    /// Delivers `connection_lost` (once), then releases the fd.
    fn call_connection_lost(self: &Rc<Self>, error: Option<io::Error>) {
        if self.lost_delivered.replace(true) {
            return;
        }
        if let Some(protocol) = self.protocol() {
            self.guard("connection_lost", move || {
                protocol.borrow_mut().connection_lost(error);
            });
        }
        self.release();
    }

    /// Deregisters, closes the fd (exactly once) and drops the protocol
    /// (which may hold this transport: the cycle ends here).
    fn release(self: &Rc<Self>) {
        self.lost_delivered.set(true);
        {
            let mut st = self.state.borrow_mut();
            st.closing = true;
            st.conn_lost = st.conn_lost.max(1);
            st.queue.clear();
            st.buffered = 0;
        }
        self.watch.release();
        if self.fd.borrow_mut().take().is_some() {
            fault::closed(self.raw_fd);
        }
        drop(self.protocol.borrow_mut().take());
    }
}

impl crate::lifecycle::ReleaseAtClose for DatagramInner {
    fn release_at_close(self: Rc<Self>) {
        if !self.lost_delivered.get() {
            tracing::warn!(target: "evloop::transports", fd = self.raw_fd, "datagram transport still open when its loop closed");
            self.release();
        }
    }
}

impl Drop for DatagramInner {
    fn drop(&mut self) {
        if !self.lost_delivered.get() && !std::thread::panicking() {
            tracing::warn!(target: "evloop::transports", fd = self.raw_fd, "unclosed datagram transport dropped");
        }
        // Deregister before the fd closes (field order would close it first).
        self.watch.release();
    }
}
