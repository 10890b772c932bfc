//! High-level streams (asyncio's `asyncio.streams`, docs/behaviour.md 17.1): a
//! [`StreamReader`]/[`StreamWriter`] pair over a stream transport, built by
//! [`open_connection`], [`start_server`], [`open_unix_connection`] and
//! [`start_unix_server`], or fed from outside through a [`StreamFeed`]
//! ([`StreamReader::with_feed`], [`StreamWriter::with_feed`],
//! [`stream_pair`]; a subprocess's pipes use these).
//!
//! The pieces follow asyncio 3.11 (as asyncio 3.11 has them):
//!
//! * an internal `StreamProtocol` (asyncio's `StreamReaderProtocol` plus
//!   `FlowControlMixin`) implements [`Protocol`]: `data_received` appends to
//!   the reader's buffer (the one unavoidable copy), `eof_received` feeds EOF
//!   and keeps the write side open, `connection_lost` feeds EOF (or the
//!   error) and wakes `drain`/`wait_closed`;
//! * the reader pauses the transport's reading once more than `2 × limit`
//!   bytes are buffered and resumes it at `≤ limit`;
//! * on the server side each connection's `client_connected` future runs as
//!   a task; a panic in it goes to the exception handler (`Unhandled
//!   exception in client_connected_cb`) and closes the connection.
//!
//! # Errors
//!
//! `evloop_core::Error` has no variants for asyncio's `IncompleteReadError`
//! and `LimitOverrunError`, so the reads that can fail that way
//! ([`StreamReader::readexactly`], [`StreamReader::readuntil`],
//! [`StreamReader::readline`]) return [`StreamError`], which keeps the
//! partial bytes and the consumed count. `StreamError` converts into
//! [`Error`] (so `?` works in functions returning `Error`) as an
//! [`Error::Io`] of kind [`io::ErrorKind::UnexpectedEof`] (incomplete read)
//! or [`io::ErrorKind::InvalidData`] (limit overrun) whose inner error is the
//! `StreamError` itself; [`StreamError::find`] gets it back.

mod feed;
mod reader;
mod writer;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use evloop_core::{Error, ErrorContext, EventLoop};

use crate::layer::AnyProtocol;
use crate::protocol::Protocol;
use crate::server::{create_server, Server, ServerOptions};
use crate::tcp::{create_connection, ConnectOptions};
use crate::transport::{plain_sink, Transport};
use crate::unix::stream::{
    create_unix_connection, create_unix_server, UnixConnectOptions, UnixServerOptions,
};

pub use feed::{stream_pair, StreamFeed};
pub use reader::StreamReader;
pub use writer::StreamWriter;

use reader::ReadState;
use writer::WriteState;

/// The default buffer limit of a [`StreamReader`] (asyncio's `2**16`).
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// A stream read that failed: asyncio's `IncompleteReadError` and
/// `LimitOverrunError`, or any other error.
#[derive(Debug, Clone)]
#[doc(alias("IncompleteReadError", "LimitOverrunError"))]
pub enum StreamError {
    /// EOF came before the read could complete (asyncio's
    /// `IncompleteReadError`). `partial` holds the bytes read (they are no
    /// longer in the buffer); `expected` is the size asked for, `None` for
    /// `readuntil`.
    #[doc(alias = "IncompleteReadError")]
    IncompleteRead {
        /// The bytes read before EOF.
        partial: Vec<u8>,
        /// The number of bytes wanted (`None`: until a separator).
        expected: Option<usize>,
    },
    /// The separator was not found within the limit (asyncio's
    /// `LimitOverrunError`; `readline` raises it as `ValueError`).
    #[doc(alias = "LimitOverrunError")]
    LimitOverrun {
        /// asyncio's message: `Separator is not found, and chunk exceed the
        /// limit` or `Separator is found, but chunk is longer than limit`.
        message: String,
        /// How many bytes to consume (asyncio's `consumed`).
        consumed: usize,
    },
    /// Any other error: the connection's error, an invalid argument, …
    Other(Error),
}

impl StreamError {
    /// The `StreamError` inside an [`Error`] made from one by `From`, if any.
    pub fn find(error: &Error) -> Option<&StreamError> {
        match error {
            Error::Io(e) => e.get_ref()?.downcast_ref::<StreamError>(),
            _ => None,
        }
    }

    /// True for [`StreamError::IncompleteRead`].
    pub fn is_incomplete_read(&self) -> bool {
        matches!(self, StreamError::IncompleteRead { .. })
    }

    /// True for [`StreamError::LimitOverrun`].
    pub fn is_limit_overrun(&self) -> bool {
        matches!(self, StreamError::LimitOverrun { .. })
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::IncompleteRead { partial, expected } => {
                let expected = expected.map_or_else(|| "None".to_owned(), |n| n.to_string());
                write!(
                    f,
                    "{} bytes read on a total of {expected} expected bytes",
                    partial.len()
                )
            }
            StreamError::LimitOverrun { message, .. } => f.write_str(message),
            StreamError::Other(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Other(error) => Some(error),
            _ => None,
        }
    }
}

impl From<Error> for StreamError {
    fn from(error: Error) -> Self {
        StreamError::Other(error)
    }
}

impl From<StreamError> for Error {
    /// `Other(e)` is `e`; the others become [`Error::Io`] (`UnexpectedEof`
    /// or `InvalidData`) carrying the `StreamError` (see [`StreamError::find`]).
    fn from(error: StreamError) -> Self {
        let kind = match error {
            StreamError::Other(inner) => return inner,
            StreamError::IncompleteRead { .. } => io::ErrorKind::UnexpectedEof,
            StreamError::LimitOverrun { .. } => io::ErrorKind::InvalidData,
        };
        Error::Io(io::Error::new(kind, error))
    }
}

impl From<StreamError> for io::Error {
    fn from(error: StreamError) -> Self {
        into_io(Error::from(error))
    }
}

/// An [`Error`] as an [`io::Error`] (for the futures-io traits).
pub(crate) fn into_io(error: Error) -> io::Error {
    match error {
        Error::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// What the reader, the writer and the protocol of one connection share.
pub(crate) struct Shared {
    event_loop: EventLoop,
    limit: usize,
    /// Set in `connection_made`.
    transport: RefCell<Option<Transport>>,
    read: RefCell<ReadState>,
    write: RefCell<WriteState>,
}

impl Shared {
    fn new(event_loop: &EventLoop, limit: usize) -> Rc<Shared> {
        Rc::new(Shared {
            event_loop: event_loop.clone(),
            limit,
            transport: RefCell::new(None),
            read: RefCell::new(ReadState::default()),
            write: RefCell::new(WriteState::default()),
        })
    }

    fn transport(&self) -> Option<Transport> {
        self.transport.borrow().clone()
    }

    fn set_transport(&self, transport: Transport) {
        *self.transport.borrow_mut() = Some(transport);
    }

    /// Another protocol feeding this connection's reader, for a layer
    /// started over the connection (it gets no `connection_made`).
    fn fresh_protocol(self: &Rc<Self>) -> AnyProtocol {
        let (sink, _handle) = plain_sink(StreamProtocol {
            shared: self.clone(),
            on_connect: None,
        });
        AnyProtocol(sink)
    }
}

type OnConnect = Box<dyn FnOnce(&Transport, &Rc<Shared>)>;

/// asyncio's `StreamReaderProtocol`: feeds the reader, tracks write flow
/// control for `drain`, and (server side) starts the connection's handler.
struct StreamProtocol {
    shared: Rc<Shared>,
    on_connect: Option<OnConnect>,
}

impl Protocol for StreamProtocol {
    fn connection_made(&mut self, transport: Transport) {
        *self.shared.transport.borrow_mut() = Some(transport.clone());
        if let Some(on_connect) = self.on_connect.take() {
            on_connect(&transport, &self.shared);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.shared.feed_data(data);
    }

    fn eof_received(&mut self) -> bool {
        self.shared.feed_eof();
        // Keep the write side open: the writer closes it.
        true
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        let error = error.map(Error::Io);
        match &error {
            None => self.shared.feed_eof(),
            Some(e) => self.shared.set_exception(e.clone()),
        }
        self.shared.lost(error);
    }

    fn pause_writing(&mut self) {
        self.shared.pause_writing();
    }

    fn resume_writing(&mut self) {
        self.shared.resume_writing();
    }
}

fn check_limit(limit: usize) -> Result<(), Error> {
    if limit == 0 {
        return Err(Error::invalid_argument("limit: Limit cannot be <= 0"));
    }
    Ok(())
}

/// Connects to `host:port` (as [`create_connection`]) and returns the
/// connection's reader and writer (asyncio's `open_connection`).
///
/// `limit` bounds the reader's buffer ([`DEFAULT_LIMIT`] is asyncio's).
///
/// # Errors
/// [`Error::InvalidArgument`] for `limit == 0`; otherwise as
/// [`create_connection`].
///
/// # Examples
///
/// Read a server's greeting line and say goodbye (the server is a blocking
/// peer on another thread):
///
/// ```
/// use std::io::{Read, Write};
/// use evloop_core::{Error, EventLoop};
/// use evloop_transports::{open_connection, ConnectOptions, DEFAULT_LIMIT};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let port = listener.local_addr()?.port();
/// let peer = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
///     let (mut stream, _) = listener.accept()?;
///     stream.write_all(b"220 ready\r\n")?;
///     let mut rest = Vec::new();
///     stream.read_to_end(&mut rest)?;
///     Ok(rest)
/// });
///
/// let lp = EventLoop::new()?;
/// let greeting = lp.run_until_complete(async {
///     let options = ConnectOptions::default();
///     let (mut reader, writer) =
///         open_connection(&lp, Some("127.0.0.1"), Some(port), options, DEFAULT_LIMIT).await?;
///     let greeting = reader.readline().await?;
///     writer.write(b"QUIT\r\n");
///     writer.drain().await?;
///     writer.close();
///     writer.wait_closed().await?;
///     Ok::<_, Error>(greeting)
/// })??;
/// assert_eq!(greeting, b"220 ready\r\n");
/// assert_eq!(peer.join().unwrap()?, b"QUIT\r\n");
/// lp.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_connection(
    event_loop: &EventLoop,
    host: Option<&str>,
    port: Option<u16>,
    options: ConnectOptions,
    limit: usize,
) -> impl Future<Output = Result<(StreamReader, StreamWriter), Error>> + 'static {
    let shared = Shared::new(event_loop, limit.max(1));
    let protocol_shared = shared.clone();
    let connect = create_connection(
        event_loop,
        move || StreamProtocol {
            shared: protocol_shared,
            on_connect: None,
        },
        host,
        port,
        options,
    );
    async move {
        check_limit(limit)?;
        let (transport, _protocol) = connect.await?;
        Ok(pair(transport, shared))
    }
}

/// Connects to the unix stream socket at `path` (as
/// [`create_unix_connection`]) and returns its reader and writer (asyncio's
/// `open_unix_connection`).
///
/// # Errors
/// [`Error::InvalidArgument`] for `limit == 0`; otherwise as
/// [`create_unix_connection`].
pub fn open_unix_connection(
    event_loop: &EventLoop,
    path: impl AsRef<Path>,
    options: UnixConnectOptions,
    limit: usize,
) -> impl Future<Output = Result<(StreamReader, StreamWriter), Error>> + 'static {
    let shared = Shared::new(event_loop, limit.max(1));
    let protocol_shared = shared.clone();
    let connect = create_unix_connection(
        event_loop,
        move || StreamProtocol {
            shared: protocol_shared,
            on_connect: None,
        },
        path,
        options,
    );
    async move {
        check_limit(limit)?;
        let (transport, _protocol) = connect.await?;
        Ok(pair(transport, shared))
    }
}

/// Serves `options` (as [`create_server`]); every accepted connection gets
/// a reader and a writer, and `client_connected(reader, writer)` runs as a
/// task (asyncio's `start_server`).
///
/// The connection stays open when the handler returns unless the writer was
/// closed or dropped (dropping an open [`StreamWriter`] closes it). A panic
/// in the handler goes to the exception handler and closes the connection;
/// the server keeps serving.
///
/// # Errors
/// [`Error::InvalidArgument`] for `limit == 0`; otherwise as
/// [`create_server`].
pub fn start_server<F, Fut>(
    event_loop: &EventLoop,
    client_connected: F,
    options: ServerOptions,
    limit: usize,
) -> impl Future<Output = Result<Server, Error>> + 'static
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let factory = handler_factory(event_loop, client_connected, limit);
    let serve = create_server(event_loop, factory, options);
    async move {
        check_limit(limit)?;
        serve.await
    }
}

/// [`start_server`] on a unix socket at `path` (as [`create_unix_server`];
/// asyncio's `start_unix_server`).
///
/// # Errors
/// [`Error::InvalidArgument`] for `limit == 0`; otherwise as
/// [`create_unix_server`].
pub fn start_unix_server<F, Fut>(
    event_loop: &EventLoop,
    client_connected: F,
    path: Option<&Path>,
    options: UnixServerOptions,
    limit: usize,
) -> impl Future<Output = Result<Server, Error>> + 'static
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let factory = handler_factory(event_loop, client_connected, limit);
    let serve = create_unix_server(event_loop, factory, path, options);
    async move {
        check_limit(limit)?;
        serve.await
    }
}

fn pair(transport: Transport, shared: Rc<Shared>) -> (StreamReader, StreamWriter) {
    (
        StreamReader::new(shared.clone()),
        StreamWriter::new(transport, shared),
    )
}

/// The protocol factory of a stream server: each protocol starts
/// `client_connected` as a task from `connection_made`.
fn handler_factory<F, Fut>(
    event_loop: &EventLoop,
    client_connected: F,
    limit: usize,
) -> impl Fn() -> StreamProtocol + 'static
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let event_loop = event_loop.clone();
    let client_connected = Rc::new(client_connected);
    move || {
        let handler = client_connected.clone();
        let on_connect: OnConnect = Box::new(move |transport, shared| {
            spawn_handler(transport, shared, handler);
        });
        StreamProtocol {
            shared: Shared::new(&event_loop, limit.max(1)),
            on_connect: Some(on_connect),
        }
    }
}

/// Runs the connection's handler as a detached task; a panic in it is
/// reported and closes the transport (asyncio 3.12's done callback).
fn spawn_handler<F, Fut>(transport: &Transport, shared: &Rc<Shared>, handler: Rc<F>)
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (reader, writer) = pair(transport.clone(), shared.clone());
    let event_loop = shared.event_loop.clone();
    let transport = transport.clone();
    let closer = transport.clone();
    let body = async move {
        let mut guarded = CatchUnwind(Some(Box::pin(async move {
            handler(reader, writer).await;
        })));
        if let Err(payload) = (&mut guarded).await {
            event_loop.call_exception_handler(ErrorContext {
                message: "Unhandled exception in client_connected_cb".to_owned(),
                error: Some(Error::from_panic(&*payload)),
                protocol: Some("StreamReaderProtocol".to_owned()),
                transport: Some(format!("{transport:?}")),
                socket: transport.fd(),
                ..ErrorContext::default()
            });
            transport.close();
        }
        // The handler's reader and writer are dropped here, after the close.
        drop(guarded);
    };
    match shared.event_loop.create_task(body) {
        // Detached: the loop keeps it running.
        Ok(task) => drop(task),
        Err(_) => closer.close(),
    }
}

type Payload = Box<dyn std::any::Any + Send>;

/// Polls a future under `catch_unwind`; keeps the future (not dropped) after
/// a panic so the caller decides when its captures go.
struct CatchUnwind<F>(Option<Pin<Box<F>>>);

impl<F: Future<Output = ()>> Future for CatchUnwind<F> {
    type Output = Result<(), Payload>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(future) = self.0.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                self.0 = None;
                Poll::Ready(Ok(()))
            }
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Pending once, then ready: asyncio's `await sleep(0)`.
#[derive(Debug, Default)]
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
