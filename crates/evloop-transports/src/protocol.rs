//! The protocol traits a user implements (asyncio's `Protocol`,
//! `BufferedProtocol`, `DatagramProtocol`), the handle that reaches a
//! protocol between callbacks, and the `Sink` a stream transport drives
//! either stream trait through.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;

use evloop_core::Error;

use crate::address::Address;
use crate::datagram::DatagramTransport;
use crate::transport::Transport;

/// A stream protocol: the callbacks a stream transport calls, in asyncio's
/// order: `connection_made`, then `data_received`* and `eof_received`?, then
/// `connection_lost` exactly once. Calling back into the transport (write,
/// close, pause_reading) from any of them is normal.
pub trait Protocol: 'static {
    /// The connection is up; keep `transport` to write and close.
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport;
    }
    /// Bytes arrived; `data` is borrowed from the loop's read buffer.
    fn data_received(&mut self, data: &[u8]) {
        let _ = data;
    }
    /// The peer shut down its write side. Return `true` to keep our write
    /// side open; `false` closes the transport.
    fn eof_received(&mut self) -> bool {
        false
    }
    /// The connection is gone: `None` after close/abort/clean EOF, the error
    /// otherwise. Called once, from the loop.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
    /// The transport's write buffer rose above the high-water mark.
    fn pause_writing(&mut self) {}
    /// The write buffer drained to the low-water mark.
    fn resume_writing(&mut self) {}
}

/// A stream protocol that reads straight into its own buffer (no copy).
pub trait BufferedProtocol: 'static {
    /// As [`Protocol::connection_made`].
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport;
    }
    /// The buffer the next read fills; `size_hint` is what the loop would read.
    fn get_buffer(&mut self, size_hint: usize) -> &mut [u8];
    /// The first `nbytes` of the last buffer were filled.
    fn buffer_updated(&mut self, nbytes: usize);
    /// As [`Protocol::eof_received`].
    fn eof_received(&mut self) -> bool {
        false
    }
    /// As [`Protocol::connection_lost`].
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
    /// As [`Protocol::pause_writing`].
    fn pause_writing(&mut self) {}
    /// As [`Protocol::resume_writing`].
    fn resume_writing(&mut self) {}
}

/// A datagram protocol (UDP, unix datagram sockets).
pub trait DatagramProtocol: 'static {
    /// The endpoint is ready; keep `transport` to send.
    fn connection_made(&mut self, transport: DatagramTransport) {
        let _ = transport;
    }
    /// A datagram arrived from `addr`.
    fn datagram_received(&mut self, data: &[u8], addr: Address) {
        let _ = (data, addr);
    }
    /// A send or receive failed (e.g. ICMP port unreachable); the endpoint
    /// stays open.
    fn error_received(&mut self, error: io::Error) {
        let _ = error;
    }
    /// The endpoint closed.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
    /// The send buffer rose above the high-water mark.
    fn pause_writing(&mut self) {}
    /// The send buffer drained.
    fn resume_writing(&mut self) {}
}

/// The user's way to a protocol the transport owns, between callbacks.
pub struct ProtocolHandle<P: ?Sized> {
    pub(crate) inner: Rc<RefCell<P>>,
}

impl<P: ?Sized> Clone for ProtocolHandle<P> {
    fn clone(&self) -> Self {
        ProtocolHandle {
            inner: self.inner.clone(),
        }
    }
}

impl<P> ProtocolHandle<P> {
    /// A handle to `protocol`, for calls that take one
    /// ([`Transport::set_protocol`]).
    pub fn new(protocol: P) -> ProtocolHandle<P> {
        ProtocolHandle {
            inner: Rc::new(RefCell::new(protocol)),
        }
    }
}

impl<P: ?Sized> ProtocolHandle<P> {
    /// Runs `f` with the protocol.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when called from inside one of this
    /// protocol's own callbacks (it is already in use there).
    pub fn with<R>(&self, f: impl FnOnce(&mut P) -> R) -> Result<R, Error> {
        let mut protocol = self
            .inner
            .try_borrow_mut()
            .map_err(|_| Error::InvalidState("protocol is in use by one of its callbacks"))?;
        Ok(f(&mut protocol))
    }
}

impl<P: ?Sized> fmt::Debug for ProtocolHandle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtocolHandle")
            .field("type", &std::any::type_name::<P>())
            .finish()
    }
}

/// The protocol behind a transport, whichever trait it implements.
#[derive(Clone)]
pub(crate) enum Sink {
    Plain(Rc<RefCell<dyn Protocol>>),
    Buffered(Rc<RefCell<dyn BufferedProtocol>>),
}

/// Wraps a [`Protocol`] for a transport: the sink it drives and the user's handle.
pub(crate) fn plain_sink<P: Protocol>(protocol: P) -> (Sink, ProtocolHandle<P>) {
    let inner = Rc::new(RefCell::new(protocol));
    (Sink::Plain(inner.clone()), ProtocolHandle { inner })
}

/// Wraps a [`BufferedProtocol`] for a transport: the sink and the user's handle.
pub(crate) fn buffered_sink<P: BufferedProtocol>(protocol: P) -> (Sink, ProtocolHandle<P>) {
    let inner = Rc::new(RefCell::new(protocol));
    (Sink::Buffered(inner.clone()), ProtocolHandle { inner })
}

impl Sink {
    /// Whether the protocol is inside one of its own methods now (a call
    /// into it must wait for the loop).
    pub(crate) fn is_busy(&self) -> bool {
        match self {
            Sink::Plain(p) => p.try_borrow_mut().is_err(),
            Sink::Buffered(p) => p.try_borrow_mut().is_err(),
        }
    }

    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Sink::Plain(_) => "Protocol",
            Sink::Buffered(_) => "BufferedProtocol",
        }
    }
}

/// The callbacks both protocol traits share, for deferred delivery.
pub(crate) trait ProtocolEvents {
    fn pause_writing(&mut self);
    fn resume_writing(&mut self);
}

pub(crate) struct PlainEvents<'a>(pub(crate) &'a mut dyn Protocol);
pub(crate) struct BufferedEvents<'a>(pub(crate) &'a mut dyn BufferedProtocol);

impl ProtocolEvents for PlainEvents<'_> {
    fn pause_writing(&mut self) {
        self.0.pause_writing();
    }
    fn resume_writing(&mut self) {
        self.0.resume_writing();
    }
}

impl ProtocolEvents for BufferedEvents<'_> {
    fn pause_writing(&mut self) {
        self.0.pause_writing();
    }
    fn resume_writing(&mut self) {
        self.0.resume_writing();
    }
}
