//! The seam for transports that live above this crate (TLS is one): a
//! protocol layered over a stream [`Transport`] that presents the user's
//! protocol a [`Transport`] of its own.
//!
//! A layer sits on the raw transport as its protocol (it sees ciphertext,
//! say) and drives the user's protocol through [`AnyProtocol`] (plaintext).
//! The connection calls of this crate take a layer through the `tls` field
//! of their options ([`ConnectOptions`](crate::ConnectOptions),
//! [`ServerOptions`](crate::ServerOptions),
//! [`UnixServerOptions`](crate::UnixServerOptions)), so that TLS is the same
//! call with one more option, as `ssl=` is in asyncio. Users of transports
//! never implement anything here; `evloop-tls` does.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use evloop_core::{Error, EventLoop, LoopFuture};

use crate::address::Address;
use crate::protocol::{BufferedProtocol, Protocol, ProtocolHandle, Sink};
use crate::transport::Transport;

/// A layer of the byte stream between the socket and the user's protocol.
pub trait StreamLayer: 'static {
    /// Checks the layer's options before any socket is opened, so that a
    /// server with bad options fails at `create_server` instead of on every
    /// connection.
    ///
    /// # Errors
    /// The options' first problem ([`Error::InvalidArgument`] for TLS's
    /// zero timeouts).
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Starts the layer for one new connection.
    ///
    /// `host` is what the user connected to (`None` for accepted
    /// connections and for `sock=`), `app` the user's protocol, `ready` the
    /// future the creating call waits for: the layer completes it once the
    /// user's `connection_made` ran, or fails it (the user's protocol then
    /// sees nothing). The returned [`LayerSession`] says which protocol the
    /// raw transport drives and which transport the user gets.
    ///
    /// # Errors
    /// Invalid options (for TLS: no host and no server name); the call
    /// that created the connection fails with it and the socket is closed.
    fn start(
        &self,
        event_loop: &EventLoop,
        host: Option<&str>,
        app: AnyProtocol,
        ready: Option<LoopFuture<()>>,
    ) -> Result<LayerSession, Error>;
}

/// A [`StreamLayer`] as the options of the connection calls carry it.
#[derive(Clone)]
pub struct Layer(Rc<dyn StreamLayer>);

impl Layer {
    /// Wraps a layer.
    pub fn new(layer: impl StreamLayer) -> Layer {
        Layer(Rc::new(layer))
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        self.0.validate()
    }

    pub(crate) fn start(
        &self,
        event_loop: &EventLoop,
        host: Option<&str>,
        app: AnyProtocol,
        ready: Option<LoopFuture<()>>,
    ) -> Result<LayerSession, Error> {
        self.0.start(event_loop, host, app, ready)
    }
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Layer")
    }
}

/// What [`StreamLayer::start`] returns.
pub struct LayerSession {
    /// The protocol the raw transport drives.
    pub raw_protocol: Rc<RefCell<dyn Protocol>>,
    /// The transport the user's protocol sees (and the creating call returns).
    pub transport: Transport,
}

impl fmt::Debug for LayerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerSession")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// The operations of a [`Transport`] implemented outside this crate.
///
/// Every method may be called from inside the user's protocol callbacks;
/// implementations must not hold a borrow of their state across a call into
/// the user's protocol.
pub trait TransportImpl: 'static {
    /// As [`Transport::write`].
    fn write(&self, data: &[u8]);
    /// As [`Transport::write_eof`].
    fn write_eof(&self);
    /// As [`Transport::can_write_eof`].
    fn can_write_eof(&self) -> bool;
    /// As [`Transport::close`].
    fn close(&self);
    /// As [`Transport::abort`].
    fn abort(&self);
    /// As [`Transport::is_closing`].
    fn is_closing(&self) -> bool;
    /// As [`Transport::pause_reading`] (`false`) and `resume_reading` (`true`).
    fn set_reading(&self, on: bool);
    /// As [`Transport::is_reading`].
    fn is_reading(&self) -> bool;
    /// As [`Transport::get_write_buffer_size`].
    fn get_write_buffer_size(&self) -> usize;
    /// As [`Transport::get_write_buffer_limits`].
    fn get_write_buffer_limits(&self) -> (usize, usize);
    /// As [`Transport::set_write_buffer_limits`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `high >= low`.
    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>)
        -> Result<(), Error>;
    /// As [`Transport::peername`].
    fn peername(&self) -> Option<Address>;
    /// As [`Transport::sockname`].
    fn sockname(&self) -> Option<Address>;
    /// As [`Transport::fd`].
    fn fd(&self) -> Option<RawFd>;
    /// As [`Transport::set_protocol`].
    fn set_protocol(&self, protocol: AnyProtocol);
    /// Runs `hook` once, after the connection is gone for good (servers
    /// count their connections with it).
    fn set_on_lost(&self, hook: Box<dyn FnOnce()>);
    /// The implementation, for [`Transport::downcast_ref`].
    fn as_any(&self) -> &dyn Any;
    /// A one-line description for `Debug` and error reports.
    fn describe(&self) -> String;
}

/// The user's protocol, whichever stream trait it implements: what a layer
/// delivers plaintext events to.
///
/// The methods call straight into the protocol; the caller catches panics
/// (see [`guard_protocol`]) and must not call one while the protocol is
/// already in one of its callbacks ([`is_busy`](Self::is_busy)).
#[derive(Clone)]
pub struct AnyProtocol(pub(crate) Sink);

impl AnyProtocol {
    /// A [`Protocol`] the user reaches through `handle`.
    pub fn plain<P: Protocol>(handle: &ProtocolHandle<P>) -> AnyProtocol {
        AnyProtocol(Sink::Plain(handle.inner.clone()))
    }

    /// A [`BufferedProtocol`] the user reaches through `handle`.
    pub fn buffered<P: BufferedProtocol>(handle: &ProtocolHandle<P>) -> AnyProtocol {
        AnyProtocol(Sink::Buffered(handle.inner.clone()))
    }

    /// `"Protocol"` or `"BufferedProtocol"`, for error reports.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }

    /// True while the protocol is inside one of its own callbacks.
    pub fn is_busy(&self) -> bool {
        self.0.is_busy()
    }

    /// `connection_made(transport)`.
    pub fn connection_made(&self, transport: Transport) {
        match &self.0 {
            Sink::Plain(p) => p.borrow_mut().connection_made(transport),
            Sink::Buffered(p) => p.borrow_mut().connection_made(transport),
        }
    }

    /// Delivers `data`: `data_received`, or for a [`BufferedProtocol`]
    /// `get_buffer`/copy/`buffer_updated` until all of it is in.
    ///
    /// # Errors
    /// A buffered protocol whose `get_buffer` returned an empty buffer.
    pub fn data_received(&self, mut data: &[u8]) -> Result<(), Error> {
        match &self.0 {
            Sink::Plain(p) => p.borrow_mut().data_received(data),
            Sink::Buffered(p) => {
                while !data.is_empty() {
                    let mut protocol = p.borrow_mut();
                    let buf = protocol.get_buffer(data.len());
                    if buf.is_empty() {
                        return Err(Error::invalid_argument(
                            "get_buffer() returned an empty buffer",
                        ));
                    }
                    let n = buf.len().min(data.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    protocol.buffer_updated(n);
                    data = &data[n..];
                }
            }
        }
        Ok(())
    }

    /// `eof_received()`: true keeps the write side open.
    pub fn eof_received(&self) -> bool {
        match &self.0 {
            Sink::Plain(p) => p.borrow_mut().eof_received(),
            Sink::Buffered(p) => p.borrow_mut().eof_received(),
        }
    }

    /// `connection_lost(error)`.
    pub fn connection_lost(&self, error: Option<io::Error>) {
        match &self.0 {
            Sink::Plain(p) => p.borrow_mut().connection_lost(error),
            Sink::Buffered(p) => p.borrow_mut().connection_lost(error),
        }
    }

    /// `pause_writing()`.
    pub fn pause_writing(&self) {
        match &self.0 {
            Sink::Plain(p) => p.borrow_mut().pause_writing(),
            Sink::Buffered(p) => p.borrow_mut().pause_writing(),
        }
    }

    /// `resume_writing()`.
    pub fn resume_writing(&self) {
        match &self.0 {
            Sink::Plain(p) => p.borrow_mut().resume_writing(),
            Sink::Buffered(p) => p.borrow_mut().resume_writing(),
        }
    }
}

impl fmt::Debug for AnyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyProtocol")
            .field(&self.type_name())
            .finish()
    }
}

/// Runs protocol method `what` as the transports of this crate do: a panic
/// goes to the loop's exception handler (message `Fatal error:
/// protocol.<what>() call failed.`, with the protocol, transport and fd)
/// and comes back as the error to close the connection with.
///
/// # Errors
/// The panic, as an [`io::Error`] to hand to `connection_lost`.
pub fn guard_protocol<R>(
    event_loop: &EventLoop,
    protocol: &AnyProtocol,
    transport: &dyn Fn() -> String,
    fd: Option<RawFd>,
    what: &str,
    f: impl FnOnce() -> R,
) -> Result<R, io::Error> {
    crate::watch::guarded(
        what,
        |message, error| {
            crate::watch::report(
                event_loop,
                protocol.type_name(),
                transport(),
                fd.unwrap_or(-1),
                message,
                error,
            );
        },
        f,
    )
}
