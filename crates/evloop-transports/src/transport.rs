//! The stream transport every stream kind shares (TCP, unix stream, pipes):
//! reading into the loop's buffer, writing straight to the fd, buffering
//! with water marks, and the close/abort/EOF state machine that delivers
//! `connection_lost` exactly once.
//!
//! The rules that keep protocol code simple: the transport never holds a
//! borrow of its own state while it calls the protocol, so every method of
//! [`Transport`] works from inside any protocol callback; a protocol callback
//! that must run while the protocol is busy (`pause_writing` from inside
//! `data_received`) is deferred to the loop; `connection_lost` is always
//! delivered from the loop, never from inside a transport method.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_core::{Error, EventLoop, LoopFuture};

use crate::address::Address;
use crate::fault::{self, Op};
use crate::flow::{Flow, WaterMarks, WriteBuffer};
use crate::layer::{AnyProtocol, TransportImpl};
use crate::protocol::ProtocolHandle;
pub(crate) use crate::protocol::{buffered_sink, plain_sink, Sink};
use crate::protocol::{BufferedEvents, BufferedProtocol, PlainEvents, Protocol, ProtocolEvents};
use crate::read_buffer::ReadBuffer;
use crate::watch::{self, guarded, FdWatch};

/// What the fd is, which decides the syscalls used on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// A connected stream socket: `recv`/`send(MSG_NOSIGNAL)`/`shutdown`.
    Socket,
    /// The read end of a pipe, FIFO, tty or pty: `read`; EIO means EOF (ptys).
    ReadPipe,
    /// The write end of a pipe or FIFO: `write`; watched for the reader going away.
    WritePipe,
}

/// Mutable transport state; never borrowed across a protocol call.
#[derive(Debug, Default)]
struct State {
    buffer: WriteBuffer,
    flow: Flow,
    /// Reading wanted (not paused by the protocol).
    reading: bool,
    /// The peer's EOF was read: reading is over for good, whatever
    /// `resume_reading` says (asyncio removes the reader; `eof_received`
    /// comes once).
    eof: bool,
    closing: bool,
    /// `write_eof` was called; the shutdown happens once the buffer drains.
    eof_requested: bool,
    /// asyncio's `_conn_lost`: non-zero once `connection_lost` is scheduled;
    /// writes after that are counted here and dropped.
    conn_lost: u32,
    /// A sendfile in progress (driven by `sendfile.rs`): while it lasts,
    /// writes are buffered behind the file and the writer serves it.
    sendfile: Option<SendfileSlot>,
}

/// The transport's side of a sendfile in progress.
#[derive(Debug, Default)]
struct SendfileSlot {
    /// Bytes at the front of the buffer written before the sendfile began:
    /// they go out first, then the file, then the rest of the buffer.
    ahead: usize,
    /// The sendfile may try its syscall now (nothing ahead, and the fd was
    /// writable since it last got `EAGAIN`).
    go: bool,
    waker: Option<Waker>,
    /// The connection failed or was closed under the sendfile.
    failed: Option<io::Error>,
}

/// Wakers of sendfile fallbacks waiting for some transport's buffer to
/// drain (a loop extension): every stream transport of the loop wakes them
/// when its buffer falls to its low-water mark, and they check their own
/// transport's size again. A transport implemented outside this crate
/// (TLS) buffers in a stream transport of this crate, so this is how its
/// drain is seen without any protocol cooperation.
#[derive(Debug, Default)]
pub(crate) struct DrainWaiters(RefCell<Vec<Waker>>);

impl DrainWaiters {
    pub(crate) fn of(event_loop: &EventLoop) -> Rc<DrainWaiters> {
        event_loop.extension(DrainWaiters::default)
    }

    pub(crate) fn register(&self, waker: &Waker) {
        let mut waiters = self.0.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    fn wake_all(&self) {
        let wakers = match self.0.try_borrow_mut() {
            Ok(mut waiters) if !waiters.is_empty() => std::mem::take(&mut *waiters),
            _ => return,
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

pub(crate) struct StreamInner {
    event_loop: EventLoop,
    kind: FdKind,
    raw_fd: RawFd,
    fd: RefCell<Option<OwnedFd>>,
    watch: FdWatch,
    sink: RefCell<Option<Sink>>,
    state: RefCell<State>,
    peername: Option<Address>,
    sockname: Option<Address>,
    on_lost: RefCell<Option<Box<dyn FnOnce()>>>,
    lost_delivered: Cell<bool>,
    /// A write pipe that is a FIFO or a socket: watched for readability to
    /// notice the reader going away. Not a tty/pty, whose master turns
    /// readable with the slave's output (echo) — asyncio skips those too.
    watch_peer: bool,
    drain: Rc<DrainWaiters>,
}

/// A stream transport handle (asyncio's `Transport`): cheap to clone, usable
/// from inside protocol callbacks. TCP, unix stream sockets and pipes are
/// implemented here; a transport layered over one of them (TLS) through
/// [`TransportImpl`] has the same API.
#[derive(Clone)]
#[doc(alias("BaseTransport", "ReadTransport", "WriteTransport"))]
pub struct Transport {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Stream(Rc<StreamInner>),
    Custom(Rc<dyn TransportImpl>),
}

/// What `start` needs to know about a new stream.
pub(crate) struct StreamSpec {
    pub(crate) fd: OwnedFd,
    pub(crate) kind: FdKind,
    pub(crate) peername: Option<Address>,
    pub(crate) sockname: Option<Address>,
}

impl Transport {
    /// Wraps `spec.fd` (made non-blocking here) and schedules, in order:
    /// `connection_made`, the start of reading (unless the protocol paused
    /// it meanwhile), and completing `waiter`. The fd is claimed, so
    /// `add_reader` on it fails with `FdInUse` while the transport lives.
    pub(crate) fn start(
        event_loop: &EventLoop,
        spec: StreamSpec,
        sink: Sink,
        waiter: Option<LoopFuture<()>>,
    ) -> Result<Transport, Error> {
        rustix::io::ioctl_fionbio(&spec.fd, true).map_err(io::Error::from)?;
        let raw_fd = spec.fd.as_raw_fd();
        let watch_peer = spec.kind == FdKind::WritePipe && is_fifo_or_socket(&spec.fd);
        let claim = event_loop.claim_fd(&spec.fd)?;
        let inner = Rc::new(StreamInner {
            event_loop: event_loop.clone(),
            kind: spec.kind,
            raw_fd,
            fd: RefCell::new(Some(spec.fd)),
            watch: FdWatch::new(claim),
            sink: RefCell::new(Some(sink)),
            state: RefCell::new(State {
                reading: spec.kind != FdKind::WritePipe,
                ..State::default()
            }),
            peername: spec.peername,
            sockname: spec.sockname,
            on_lost: RefCell::new(None),
            lost_delivered: Cell::new(false),
            watch_peer,
            drain: DrainWaiters::of(event_loop),
        });
        crate::lifecycle::track(event_loop, Rc::downgrade(&inner) as _);
        let transport = Transport {
            repr: Repr::Stream(inner.clone()),
        };
        let made = transport.clone();
        let made_inner = inner.clone();
        event_loop.call_soon(move || made_inner.deliver_connection_made(&made))?;
        event_loop.call_soon(move || {
            inner.after_connection_made();
            if let Some(waiter) = waiter {
                let _ = waiter.set_result(());
            }
        })?;
        Ok(transport)
    }

    /// A transport implemented outside this crate (see [`TransportImpl`]).
    pub fn from_impl(implementation: Rc<dyn TransportImpl>) -> Transport {
        Transport {
            repr: Repr::Custom(implementation),
        }
    }

    /// The implementation behind a transport made by [`from_impl`](Self::from_impl),
    /// if it is a `T` (`evloop-tls` reaches its TLS details this way).
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        match &self.repr {
            Repr::Stream(_) => None,
            Repr::Custom(c) => c.as_any().downcast_ref::<T>(),
        }
    }

    /// The stream transport behind this handle, unless it is implemented
    /// outside this crate.
    pub(crate) fn stream(&self) -> Option<&Rc<StreamInner>> {
        match &self.repr {
            Repr::Stream(s) => Some(s),
            Repr::Custom(_) => None,
        }
    }

    /// A one-line description for error messages (asyncio's repr).
    pub(crate) fn describe(&self) -> String {
        match &self.repr {
            Repr::Stream(s) => s.describe(),
            Repr::Custom(c) => c.describe(),
        }
    }

    /// Runs `hook` once, after the connection is gone for good (servers use
    /// it to count their connections).
    pub(crate) fn set_on_lost(&self, hook: impl FnOnce() + 'static) {
        match &self.repr {
            Repr::Stream(s) => *s.on_lost.borrow_mut() = Some(Box::new(hook)),
            Repr::Custom(c) => c.set_on_lost(Box::new(hook)),
        }
    }

    /// Writes `data`: straight to the fd when nothing is buffered (no copy),
    /// else appended to the buffer. After the connection is lost (or closed
    /// with nothing buffered) writes are dropped, with a warning from the
    /// fifth on; after `write_eof` they are dropped with a warning.
    pub fn write(&self, data: &[u8]) {
        match &self.repr {
            Repr::Stream(s) => s.write(data),
            Repr::Custom(c) => c.write(data),
        }
    }

    /// Writes each buffer in order.
    pub fn writelines<'a>(&self, data: impl IntoIterator<Item = &'a [u8]>) {
        for chunk in data {
            self.write(chunk);
        }
    }

    /// Shuts the write side down once the buffer is flushed (`SHUT_WR`; for a
    /// write pipe, closes it; for TLS, sends `close_notify`). Reading goes on.
    pub fn write_eof(&self) {
        match &self.repr {
            Repr::Stream(s) => s.write_eof(),
            Repr::Custom(c) => c.write_eof(),
        }
    }

    /// True for sockets, write pipes and TLS.
    pub fn can_write_eof(&self) -> bool {
        match &self.repr {
            Repr::Stream(s) => s.kind != FdKind::ReadPipe,
            Repr::Custom(c) => c.can_write_eof(),
        }
    }

    /// Closes after flushing the buffer; `connection_lost(None)` follows.
    pub fn close(&self) {
        match &self.repr {
            Repr::Stream(s) => s.close(),
            Repr::Custom(c) => c.close(),
        }
    }

    /// Closes now, dropping the buffer; `connection_lost(None)` follows.
    pub fn abort(&self) {
        match &self.repr {
            Repr::Stream(s) => s.force_close(None),
            Repr::Custom(c) => c.abort(),
        }
    }

    /// True once `close`/`abort` was called or the connection was lost.
    pub fn is_closing(&self) -> bool {
        match &self.repr {
            Repr::Stream(s) => s.state.borrow().closing,
            Repr::Custom(c) => c.is_closing(),
        }
    }

    /// Stops reading until `resume_reading` (holds even inside `connection_made`).
    pub fn pause_reading(&self) {
        match &self.repr {
            Repr::Stream(s) => s.set_reading(false),
            Repr::Custom(c) => c.set_reading(false),
        }
    }

    /// Resumes reading.
    pub fn resume_reading(&self) {
        match &self.repr {
            Repr::Stream(s) => s.set_reading(true),
            Repr::Custom(c) => c.set_reading(true),
        }
    }

    /// True while the transport reads (not paused, not closing).
    pub fn is_reading(&self) -> bool {
        match &self.repr {
            Repr::Stream(s) => {
                let state = s.state.borrow();
                state.reading && !state.closing
            }
            Repr::Custom(c) => c.is_reading(),
        }
    }

    /// Bytes buffered, waiting for the fd.
    pub fn get_write_buffer_size(&self) -> usize {
        match &self.repr {
            Repr::Stream(s) => s.state.borrow().buffer.len(),
            Repr::Custom(c) => c.get_write_buffer_size(),
        }
    }

    /// `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        match &self.repr {
            Repr::Stream(s) => {
                let marks = s.state.borrow().flow.marks;
                (marks.low, marks.high)
            }
            Repr::Custom(c) => c.get_write_buffer_limits(),
        }
    }

    /// Sets the water marks with asyncio's defaults (see [`WaterMarks::new`])
    /// and pauses the protocol at once if the buffer is already above high.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `high >= low`.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), Error> {
        match &self.repr {
            Repr::Stream(s) => {
                let marks = WaterMarks::new(high, low)?;
                s.state.borrow_mut().flow.marks = marks;
                s.maybe_pause_protocol();
                Ok(())
            }
            Repr::Custom(c) => c.set_write_buffer_limits(high, low),
        }
    }

    /// Hands the connection to another protocol (asyncio's
    /// `set_protocol`): events from now on go to `protocol`. The old
    /// protocol gets no `connection_lost`.
    pub fn set_protocol<P: Protocol>(&self, protocol: &ProtocolHandle<P>) {
        self.set_any_protocol(AnyProtocol::plain(protocol));
    }

    /// [`set_protocol`](Self::set_protocol) with a [`BufferedProtocol`].
    pub fn set_buffered_protocol<P: BufferedProtocol>(&self, protocol: &ProtocolHandle<P>) {
        self.set_any_protocol(AnyProtocol::buffered(protocol));
    }

    /// [`set_protocol`](Self::set_protocol) for either kind of protocol.
    pub fn set_any_protocol(&self, protocol: AnyProtocol) {
        match &self.repr {
            Repr::Stream(s) => {
                let mut sink = s.sink.borrow_mut();
                // After the connection is lost there is nobody to hand over to.
                if sink.is_some() {
                    *sink = Some(protocol.0);
                }
            }
            Repr::Custom(c) => c.set_protocol(protocol),
        }
    }

    /// The peer's address (`get_extra_info('peername')`).
    #[doc(alias = "get_extra_info")]
    pub fn peername(&self) -> Option<Address> {
        match &self.repr {
            Repr::Stream(s) => s.peername.clone(),
            Repr::Custom(c) => c.peername(),
        }
    }

    /// Our address (`get_extra_info('sockname')`).
    #[doc(alias = "get_extra_info")]
    pub fn sockname(&self) -> Option<Address> {
        match &self.repr {
            Repr::Stream(s) => s.sockname.clone(),
            Repr::Custom(c) => c.sockname(),
        }
    }

    /// The fd (`get_extra_info('socket')`/`'pipe'`), until the connection is lost.
    #[doc(alias = "get_extra_info")]
    pub fn fd(&self) -> Option<RawFd> {
        match &self.repr {
            Repr::Stream(s) => s.fd.borrow().as_ref().map(|_| s.raw_fd),
            Repr::Custom(c) => c.fd(),
        }
    }

    /// True if both handles are the same transport.
    pub fn ptr_eq(&self, other: &Transport) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Stream(a), Repr::Stream(b)) => Rc::ptr_eq(a, b),
            (Repr::Custom(a), Repr::Custom(b)) => std::ptr::addr_eq(Rc::as_ptr(a), Rc::as_ptr(b)),
            _ => false,
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Stream(s) => {
                let state = s.state.borrow();
                f.debug_struct("Transport")
                    .field("fd", &s.raw_fd)
                    .field("kind", &s.kind)
                    .field("peername", &s.peername)
                    .field("closing", &state.closing)
                    .field("buffered", &state.buffer.len())
                    .finish()
            }
            Repr::Custom(c) => f.write_str(&c.describe()),
        }
    }
}

/// Reads made for one readiness event while each fills the whole buffer:
/// with the loop's 256 KiB buffer, up to 2 MiB (libuv's bound is 32 reads of
/// 64 KiB), so one busy connection cannot hold the loop for long while a
/// large message no longer costs a loop iteration per 256 KiB.
const READS_PER_EVENT: usize = 8;

impl StreamInner {
    fn describe(&self) -> String {
        format!("<{:?} transport fd={}>", self.kind, self.raw_fd)
    }

    fn sink(&self) -> Option<Sink> {
        self.sink.borrow().clone()
    }

    /// Runs a protocol callback; a panic is reported with the transport's
    /// context and closes the transport with an error (asyncio's `_fatal_error`).
    fn guard<R>(self: &Rc<Self>, what: &str, f: impl FnOnce() -> R) -> Option<R> {
        guarded(what, |message, error| self.report(message, error), f)
            .map_err(|error| self.force_close(Some(error)))
            .ok()
    }

    fn report(&self, message: &str, error: Error) {
        let protocol = self.sink().map_or("Protocol", |s| s.type_name());
        watch::report(
            &self.event_loop,
            protocol,
            self.describe(),
            self.raw_fd,
            message,
            error,
        );
    }

    /// Calls a protocol method now, or — if the protocol is busy in one of
    /// its own callbacks — on the loop right after.
    fn call_protocol(self: &Rc<Self>, what: &'static str, f: fn(&mut dyn ProtocolEvents)) {
        let Some(sink) = self.sink() else {
            return;
        };
        if sink.is_busy() {
            let me = self.clone();
            let _ = self.event_loop.call_soon(move || me.call_protocol(what, f));
            return;
        }
        self.guard(what, || match &sink {
            Sink::Plain(p) => f(&mut PlainEvents(&mut *p.borrow_mut())),
            Sink::Buffered(p) => f(&mut BufferedEvents(&mut *p.borrow_mut())),
        });
    }

    fn deliver_connection_made(self: &Rc<Self>, transport: &Transport) {
        let Some(sink) = self.sink() else {
            return;
        };
        let handle = transport.clone();
        self.guard("connection_made", move || match &sink {
            Sink::Plain(p) => p.borrow_mut().connection_made(handle),
            Sink::Buffered(p) => p.borrow_mut().connection_made(handle),
        });
    }

    fn after_connection_made(self: &Rc<Self>) {
        self.sync_watchers();
    }

    /// Arms or disarms the fd watchers to match the state.
    fn sync_watchers(self: &Rc<Self>) {
        let (want_read, want_write) = {
            let st = self.state.borrow();
            let open = st.conn_lost == 0;
            let read = open && !st.closing && st.reading;
            // A write pipe is watched for readability: the reader going away
            // shows up as an error/hang-up event.
            let read = read || (open && self.watch_peer && !st.closing);
            // During a sendfile the writer is the sendfile's to arm.
            let write = (st.sendfile.is_none() && !st.buffer.is_empty()).then_some(open);
            (read, write)
        };
        self.arm_reader(want_read);
        if let Some(want_write) = want_write {
            self.arm_writer(want_write);
        }
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

    fn read_fd(&self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.fd.borrow();
        let Some(fd) = fd.as_ref() else {
            return Ok(0);
        };
        let result = fault::io(Op::Read, self.raw_fd, buf.len(), |len| match self.kind {
            FdKind::Socket => {
                rustix::net::recv(fd, &mut buf[..len], rustix::net::RecvFlags::empty())
                    .map(|(n, _)| n)
            }
            FdKind::ReadPipe | FdKind::WritePipe => rustix::io::read(fd, &mut buf[..len]),
        });
        match result {
            // A pty whose other side closed reads EIO: that is its EOF.
            Err(rustix::io::Errno::IO) if self.kind == FdKind::ReadPipe => Ok(0),
            other => other.map_err(io::Error::from),
        }
    }

    fn write_fd(&self, data: &[u8]) -> io::Result<usize> {
        let fd = self.fd.borrow();
        let Some(fd) = fd.as_ref() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let result = fault::io(Op::Write, self.raw_fd, data.len(), |len| match self.kind {
            FdKind::Socket => rustix::net::send(fd, &data[..len], rustix::net::SendFlags::NOSIGNAL),
            FdKind::ReadPipe | FdKind::WritePipe => rustix::io::write(fd, &data[..len]),
        });
        result.map_err(io::Error::from)
    }

    /// Reads on while each read fills the whole buffer (more is probably
    /// queued), up to [`READS_PER_EVENT`] reads, and while the protocol
    /// still wants data: a large message costs one poll, not one per 256 KiB
    /// (docs/behaviour.md 7.8).
    fn on_readable(self: &Rc<Self>) {
        if self.kind == FdKind::WritePipe {
            return self.on_write_pipe_event();
        }
        for _ in 0..READS_PER_EVENT {
            // Fetched again each time: `data_received` may switch protocols.
            let Some(sink) = self.sink() else {
                return;
            };
            let filled = match sink {
                Sink::Plain(protocol) => self.read_plain(&protocol),
                Sink::Buffered(protocol) => self.read_buffered(&protocol),
            };
            if !filled || !self.still_reading() {
                return;
            }
        }
    }

    /// Whether the transport still wants data after a protocol callback
    /// (which may have paused reading, closed or aborted it).
    fn still_reading(&self) -> bool {
        let st = self.state.borrow();
        st.reading && !st.closing && !st.eof && st.conn_lost == 0
    }

    /// One read into the loop's buffer, handed to `data_received`; true if
    /// it filled the buffer.
    fn read_plain(self: &Rc<Self>, protocol: &Rc<RefCell<dyn Protocol>>) -> bool {
        let buffer = ReadBuffer::of(&self.event_loop);
        let mut scratch = buffer.take();
        let outcome = self.read_fd(&mut scratch);
        let filled = matches!(outcome, Ok(n) if n == scratch.len());
        match outcome {
            Ok(0) => {
                buffer.give_back(scratch);
                self.on_eof();
            }
            Ok(n) => {
                self.guard("data_received", || {
                    protocol.borrow_mut().data_received(&scratch[..n])
                });
                buffer.give_back(scratch);
            }
            Err(error) => {
                buffer.give_back(scratch);
                self.on_read_error(error);
            }
        }
        filled
    }

    /// One read into the protocol's own buffer; true if it filled it.
    fn read_buffered(self: &Rc<Self>, protocol: &Rc<RefCell<dyn BufferedProtocol>>) -> bool {
        let outcome = self.guard("get_buffer", || {
            let mut protocol = protocol.borrow_mut();
            let buf = protocol.get_buffer(crate::read_buffer::READ_SIZE);
            if buf.is_empty() {
                return Err(None);
            }
            let len = buf.len();
            self.read_fd(buf).map(|n| (n, n == len)).map_err(Some)
        });
        match outcome {
            None => false,
            Some(Ok((0, _))) => {
                self.on_eof();
                false
            }
            Some(Ok((n, filled))) => {
                self.guard("buffer_updated", || protocol.borrow_mut().buffer_updated(n));
                filled
            }
            Some(Err(None)) => {
                self.report(
                    "Fatal error: protocol.get_buffer() returned an empty buffer",
                    Error::invalid_argument("get_buffer() returned an empty buffer"),
                );
                self.force_close(Some(io::Error::other(
                    "get_buffer() returned an empty buffer",
                )));
                false
            }
            Some(Err(Some(error))) => {
                self.on_read_error(error);
                false
            }
        }
    }

    fn on_read_error(self: &Rc<Self>, error: io::Error) {
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {}
            _ => self.fatal_error(error, "Fatal read error on transport"),
        }
    }

    fn on_eof(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            st.reading = false;
            st.eof = true;
        }
        self.arm_reader(false);
        let Some(sink) = self.sink() else {
            return;
        };
        let keep_open = self.guard("eof_received", || match &sink {
            Sink::Plain(p) => p.borrow_mut().eof_received(),
            Sink::Buffered(p) => p.borrow_mut().eof_received(),
        });
        // A read pipe has no write side to keep open.
        if keep_open == Some(false) || (keep_open.is_some() && self.kind == FdKind::ReadPipe) {
            self.close();
        }
    }

    /// The reader of a write pipe went away (or data arrived on a socket
    /// used as a write pipe): asyncio's `_UnixWritePipeTransport._read_ready`.
    fn on_write_pipe_event(self: &Rc<Self>) {
        if self.state.borrow().buffer.is_empty() {
            self.close();
        } else {
            self.force_close(Some(io::ErrorKind::BrokenPipe.into()));
        }
    }

    fn write(self: &Rc<Self>, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut st = self.state.borrow_mut();
        if st.conn_lost > 0 {
            st.conn_lost = st.conn_lost.saturating_add(1);
            if st.conn_lost >= 5 {
                tracing::warn!(target: "evloop::transports", fd = self.raw_fd, "socket.send() raised exception.");
            }
            return;
        }
        if st.eof_requested {
            tracing::warn!(target: "evloop::transports", fd = self.raw_fd, "write() after write_eof() ignored");
            return;
        }
        if self.kind == FdKind::ReadPipe {
            tracing::warn!(target: "evloop::transports", fd = self.raw_fd, "write() on a read pipe ignored");
            return;
        }
        let mut rest = data;
        if st.sendfile.is_some() {
            // Behind the file: flushed once the sendfile ends.
            st.buffer.push(data);
            drop(st);
            self.maybe_pause_protocol();
            return;
        }
        if st.buffer.is_empty() {
            match self.write_fd(data) {
                Ok(n) if n == data.len() => return,
                Ok(n) => rest = &data[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => {
                    drop(st);
                    self.fatal_error(error, "Fatal write error on transport");
                    return;
                }
            }
        }
        st.buffer.push(rest);
        drop(st);
        self.arm_writer(true);
        self.maybe_pause_protocol();
    }

    fn on_writable(self: &Rc<Self>) {
        if self.state.borrow().sendfile.is_some() {
            return self.on_writable_sendfile();
        }
        let outcome = {
            let st = self.state.borrow();
            if st.conn_lost > 0 || st.buffer.is_empty() {
                None
            } else {
                Some(self.write_fd(st.buffer.pending()))
            }
        };
        match outcome {
            None => {}
            Some(Ok(n)) => self.state.borrow_mut().buffer.consume(n),
            Some(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return
            }
            Some(Err(error)) => {
                self.state.borrow_mut().buffer.clear();
                self.arm_writer(false);
                self.fatal_error(error, "Fatal write error on transport");
                return;
            }
        }
        self.maybe_resume_protocol();
        self.notify_drain();
        let (drained, closing, eof) = {
            let st = self.state.borrow();
            (st.buffer.is_empty(), st.closing, st.eof_requested)
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
        } else if eof {
            self.shutdown_write();
        }
    }

    fn maybe_pause_protocol(self: &Rc<Self>) {
        let pause = {
            let mut st = self.state.borrow_mut();
            let buffered = st.buffer.len();
            st.flow.should_pause(buffered)
        };
        if pause {
            self.tell_protocol_flow();
        }
    }

    fn maybe_resume_protocol(self: &Rc<Self>) {
        let resume = {
            let mut st = self.state.borrow_mut();
            let buffered = st.buffer.len();
            st.flow.should_resume(buffered)
        };
        if resume {
            self.tell_protocol_flow();
        }
    }

    /// Tells the protocol `pause_writing` or `resume_writing`, whichever
    /// brings it in line with the buffer when the call can run: a call
    /// deferred because the protocol is busy (`pause_writing` from inside
    /// `data_received`) is decided when it runs, so a drain that overtook it
    /// cancels it instead of leaving the protocol paused for good.
    fn tell_protocol_flow(self: &Rc<Self>) {
        let Some(sink) = self.sink() else {
            return;
        };
        if sink.is_busy() {
            let me = self.clone();
            let _ = self.event_loop.call_soon(move || me.tell_protocol_flow());
            return;
        }
        let call = self.state.borrow_mut().flow.take_call();
        match call {
            Some(true) => self.call_protocol("pause_writing", |p| p.pause_writing()),
            Some(false) => self.call_protocol("resume_writing", |p| p.resume_writing()),
            None => {}
        }
    }

    /// Wakes the sendfile fallbacks waiting for a drain once this buffer is
    /// at its low-water mark (they check their own transport again).
    fn notify_drain(&self) {
        let low_enough = {
            let st = self.state.borrow();
            st.buffer.len() <= st.flow.marks.low
        };
        if low_enough {
            self.drain.wake_all();
        }
    }

    /// What the fd is (sendfile chooses its path by it).
    pub(crate) fn kind(&self) -> FdKind {
        self.kind
    }

    /// Runs `f` on the fd, unless it is closed already.
    pub(crate) fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> Option<R> {
        self.fd.borrow().as_ref().map(|fd| f(fd.as_fd()))
    }

    /// Starts a sendfile: what is buffered now goes out first, writes from
    /// now on wait behind the file until [`sendfile_end`](Self::sendfile_end).
    pub(crate) fn sendfile_begin(&self) -> Result<(), Error> {
        let mut st = self.state.borrow_mut();
        if st.closing || st.conn_lost > 0 {
            return Err(Error::InvalidState("Transport is closing"));
        }
        if st.eof_requested {
            return Err(Error::InvalidState("write_eof() was called"));
        }
        if st.sendfile.is_some() {
            return Err(Error::InvalidState("sendfile is in progress"));
        }
        let ahead = st.buffer.len();
        // With bytes ahead the writer is armed already and flushes them first.
        st.sendfile = Some(SendfileSlot {
            ahead,
            go: ahead == 0,
            ..SendfileSlot::default()
        });
        Ok(())
    }

    /// Ready when the sendfile may try its syscall: nothing is ahead of it
    /// and the fd was writable since it last got `EAGAIN`; the error if the
    /// connection failed or was closed meanwhile.
    pub(crate) fn sendfile_poll(&self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.state.borrow_mut();
        let Some(slot) = st.sendfile.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if let Some(error) = slot.failed.take() {
            return Poll::Ready(Err(error));
        }
        if slot.go {
            return Poll::Ready(Ok(()));
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The sendfile's syscall got `EAGAIN`: wait for the fd to be writable.
    pub(crate) fn sendfile_blocked(self: &Rc<Self>) {
        match self.state.borrow_mut().sendfile.as_mut() {
            Some(slot) => slot.go = false,
            None => return,
        }
        self.arm_writer(true);
    }

    /// Writes part of the file (the chunked path), as `write` would.
    pub(crate) fn sendfile_write(&self, data: &[u8]) -> io::Result<usize> {
        self.write_fd(data)
    }

    /// The sendfile's own syscall failed: the transport fails as it does
    /// on a write error (`connection_lost` with the error, the exception
    /// handler unless it is a reset or broken pipe).
    pub(crate) fn sendfile_failed(self: &Rc<Self>, error: io::Error) {
        self.state.borrow_mut().sendfile = None;
        self.fatal_error(error, "Fatal write error on transport");
    }

    /// Ends the sendfile: what was written meanwhile is flushed, and a
    /// `close` or `write_eof` called meanwhile goes ahead.
    pub(crate) fn sendfile_end(self: &Rc<Self>) {
        let (flush, lose, eof) = {
            let mut st = self.state.borrow_mut();
            if st.sendfile.take().is_none() || st.conn_lost > 0 {
                return;
            }
            let empty = st.buffer.is_empty();
            let lose = empty && st.closing;
            if lose {
                st.conn_lost = 1;
            }
            (!empty, lose, empty && st.eof_requested)
        };
        self.arm_writer(flush);
        if lose {
            self.schedule_connection_lost(None);
        } else if eof {
            self.shutdown_write();
        }
    }

    /// The connection failed under a sendfile: wake it with `error`.
    fn fail_sendfile(&self, error: io::Error) {
        let waker = {
            let mut st = self.state.borrow_mut();
            let Some(slot) = st.sendfile.as_mut() else {
                return;
            };
            slot.failed = Some(error);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The writer during a sendfile: flushes what is ahead of the file,
    /// then lets the sendfile go on.
    fn on_writable_sendfile(self: &Rc<Self>) {
        let outcome = {
            let st = self.state.borrow();
            let ahead = st.sendfile.as_ref().map_or(0, |slot| slot.ahead);
            (st.conn_lost == 0 && ahead > 0).then(|| self.write_fd(&st.buffer.pending()[..ahead]))
        };
        match outcome {
            None => {}
            Some(Ok(n)) => {
                let mut st = self.state.borrow_mut();
                st.buffer.consume(n);
                if let Some(slot) = st.sendfile.as_mut() {
                    slot.ahead -= n;
                }
            }
            Some(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return
            }
            Some(Err(error)) => {
                self.state.borrow_mut().buffer.clear();
                self.arm_writer(false);
                self.fatal_error(error, "Fatal write error on transport");
                return;
            }
        }
        self.maybe_resume_protocol();
        let waker = {
            let mut st = self.state.borrow_mut();
            let Some(slot) = st.sendfile.as_mut() else {
                return;
            };
            if slot.ahead > 0 {
                return;
            }
            slot.go = true;
            slot.waker.take()
        };
        self.arm_writer(false);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn write_eof(self: &Rc<Self>) {
        let shut_now = {
            let mut st = self.state.borrow_mut();
            if st.closing || st.eof_requested || self.kind == FdKind::ReadPipe {
                return;
            }
            st.eof_requested = true;
            st.buffer.is_empty() && st.sendfile.is_none()
        };
        if shut_now {
            self.shutdown_write();
        }
    }

    fn shutdown_write(self: &Rc<Self>) {
        match self.kind {
            FdKind::Socket => {
                let fd = self.fd.borrow();
                if let Some(fd) = fd.as_ref() {
                    let _ = rustix::net::shutdown(fd.as_fd(), rustix::net::Shutdown::Write);
                }
            }
            // A write pipe has no half-close: write_eof closes it.
            FdKind::WritePipe => self.close(),
            FdKind::ReadPipe => {}
        }
    }

    fn set_reading(self: &Rc<Self>, on: bool) {
        {
            let mut st = self.state.borrow_mut();
            if st.closing || st.eof || st.reading == on || self.kind == FdKind::WritePipe {
                return;
            }
            st.reading = on;
        }
        self.sync_watchers();
    }

    fn close(self: &Rc<Self>) {
        let lose_now = {
            let mut st = self.state.borrow_mut();
            if st.closing {
                return;
            }
            st.closing = true;
            // A sendfile in progress is flushed like buffered data.
            let lose_now = st.buffer.is_empty() && st.conn_lost == 0 && st.sendfile.is_none();
            if lose_now {
                st.conn_lost = 1;
            }
            lose_now
        };
        self.arm_reader(false);
        if lose_now {
            self.schedule_connection_lost(None);
        }
    }

    /// Closes at once, dropping buffered data (asyncio's `_force_close`).
    pub(crate) fn force_close(self: &Rc<Self>, error: Option<io::Error>) {
        {
            let mut st = self.state.borrow_mut();
            if st.conn_lost > 0 {
                return;
            }
            st.buffer.clear();
            st.closing = true;
            st.conn_lost = 1;
        }
        self.arm_writer(false);
        self.arm_reader(false);
        self.fail_sendfile(error.as_ref().map_or_else(
            || {
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the transport was aborted",
                )
            },
            clone_io_error,
        ));
        self.notify_drain();
        self.schedule_connection_lost(error);
    }

    /// A failed syscall: reported to the exception handler unless it is the
    /// ordinary end of a connection (reset, broken pipe, aborted), then a
    /// forced close with the error.
    fn fatal_error(self: &Rc<Self>, error: io::Error, message: &str) {
        let ordinary = matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        );
        if ordinary {
            tracing::debug!(target: "evloop::transports", fd = self.raw_fd, %error, "{message}");
        } else {
            self.report(message, Error::Io(clone_io_error(&error)));
        }
        self.force_close(Some(error));
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
        if let Some(sink) = self.sink() {
            self.guard("connection_lost", move || match &sink {
                Sink::Plain(p) => p.borrow_mut().connection_lost(error),
                Sink::Buffered(p) => p.borrow_mut().connection_lost(error),
            });
        }
        self.release();
    }

    /// Deregisters, closes the fd (exactly once), drops the protocol (which
    /// may hold this transport: the cycle ends here), runs the lost hook.
    fn release(self: &Rc<Self>) {
        self.lost_delivered.set(true);
        {
            let mut st = self.state.borrow_mut();
            st.closing = true;
            st.conn_lost = st.conn_lost.max(1);
            st.buffer.clear();
        }
        self.fail_sendfile(io::Error::new(
            io::ErrorKind::NotConnected,
            "the transport was closed",
        ));
        self.notify_drain();
        self.watch.release();
        if self.fd.borrow_mut().take().is_some() {
            fault::closed(self.raw_fd);
        }
        drop(self.sink.borrow_mut().take());
        let hook = self.on_lost.borrow_mut().take();
        if let Some(hook) = hook {
            hook();
        }
    }
}

impl crate::lifecycle::ReleaseAtClose for StreamInner {
    fn release_at_close(self: Rc<Self>) {
        if !self.lost_delivered.get() {
            tracing::warn!(target: "evloop::transports", fd = self.raw_fd, "transport still open when its loop closed");
            self.release();
        }
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        if !self.lost_delivered.get() && !std::thread::panicking() {
            tracing::warn!(target: "evloop::transports", fd = self.raw_fd, "unclosed transport dropped");
        }
        // Deregister before the fd closes (field order would close it first).
        self.watch.release();
    }
}

fn is_fifo_or_socket(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|stat| {
        matches!(
            rustix::fs::FileType::from_raw_mode(stat.st_mode),
            rustix::fs::FileType::Fifo | rustix::fs::FileType::Socket
        )
    })
}

fn clone_io_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}
