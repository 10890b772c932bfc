//! Connections, servers, datagrams, unix sockets, pipes, low-level socket
//! calls, sendfile and streams (docs/behaviour.md 5–7, 9, 11, 17, 19): the facade's face of
//! `evloop-transports`. Each method returns the transport layer's future;
//! host names are resolved by the resolver the facade installs on its loops
//! (`getaddrinfo` on the executor).

use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use evloop_core::Error;
use evloop_transports as tr;
use evloop_transports::{
    Address, BufferedProtocol, ConnectOptions, ConnectTarget, DatagramOptions, DatagramProtocol,
    DatagramTransport, Layer, Protocol, ProtocolHandle, Server, ServerOptions, StreamReader,
    StreamWriter, Transport, UnixConnectOptions, UnixServerOptions,
};

use crate::EventLoop;

/// A connected stream and the protocol behind it.
pub type Connection<P> = (Transport, ProtocolHandle<P>);

impl EventLoop {
    /// Opens a TCP connection to `host:port` (asyncio's `create_connection`).
    ///
    /// # Errors
    /// The future fails with the connect errors (aggregated over addresses),
    /// [`Error::InvalidArgument`] for conflicting options.
    pub fn create_connection<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        host: Option<&str>,
        port: Option<u16>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<Connection<P>, Error>> + 'static {
        tr::create_connection(self.as_core(), factory, host, port, options)
    }

    /// [`create_connection`](Self::create_connection) with a [`BufferedProtocol`].
    ///
    /// # Errors
    /// As `create_connection`.
    #[doc(alias = "create_connection")]
    pub fn create_connection_buffered<P: BufferedProtocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        host: Option<&str>,
        port: Option<u16>,
        options: ConnectOptions,
    ) -> impl Future<Output = Result<Connection<P>, Error>> + 'static {
        tr::create_connection_buffered(self.as_core(), factory, host, port, options)
    }

    /// Listens on TCP (asyncio's `create_server`).
    ///
    /// # Errors
    /// Bind errors keep their errno and name the address.
    pub fn create_server<P: Protocol>(
        &self,
        factory: impl Fn() -> P + 'static,
        options: ServerOptions,
    ) -> impl Future<Output = Result<Server, Error>> + 'static {
        tr::create_server(self.as_core(), factory, options)
    }

    /// Wraps an accepted socket (asyncio's `connect_accepted_socket`),
    /// under `tls` if given (the server side of TLS, asyncio's `ssl=`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `sock` is not a stream socket; the
    /// TLS handshake's error.
    pub fn connect_accepted_socket<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        sock: OwnedFd,
        tls: Option<Layer>,
    ) -> impl Future<Output = Result<Connection<P>, Error>> + 'static {
        tr::connect_accepted_socket(self.as_core(), factory, sock, tls)
    }

    /// Opens a UDP endpoint (asyncio's `create_datagram_endpoint`).
    ///
    /// # Errors
    /// Resolution and socket errors; [`Error::InvalidArgument`] for bad options.
    pub fn create_datagram_endpoint<P: DatagramProtocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        options: DatagramOptions,
    ) -> impl Future<Output = Result<(DatagramTransport, ProtocolHandle<P>), Error>> + 'static {
        tr::create_datagram_endpoint(self.as_core(), factory, options)
    }

    /// Opens a unix datagram endpoint; a path starting with NUL is abstract.
    ///
    /// # Errors
    /// Socket errors with their errno.
    #[doc(alias = "create_datagram_endpoint")]
    pub fn create_unix_datagram_endpoint<P: DatagramProtocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        local_path: Option<&Path>,
        remote_path: Option<&Path>,
    ) -> impl Future<Output = Result<(DatagramTransport, ProtocolHandle<P>), Error>> + 'static {
        tr::create_unix_datagram_endpoint(self.as_core(), factory, local_path, remote_path)
    }

    /// Connects to a unix stream socket (asyncio's `create_unix_connection`).
    ///
    /// # Errors
    /// Connect errors with their errno.
    pub fn create_unix_connection<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        path: impl AsRef<Path>,
        options: UnixConnectOptions,
    ) -> impl Future<Output = Result<Connection<P>, Error>> + 'static {
        tr::create_unix_connection(self.as_core(), factory, path, options)
    }

    /// Listens on a unix stream socket (asyncio's `create_unix_server`).
    ///
    /// # Errors
    /// Bind errors; a non-socket file at `path` is left alone (`EADDRINUSE`).
    pub fn create_unix_server<P: Protocol>(
        &self,
        factory: impl Fn() -> P + 'static,
        path: Option<&Path>,
        options: UnixServerOptions,
    ) -> impl Future<Output = Result<Server, Error>> + 'static {
        tr::create_unix_server(self.as_core(), factory, path, options)
    }

    /// Reads a pipe, FIFO, socket or tty through a protocol.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for regular files and directories.
    pub fn connect_read_pipe<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        pipe: OwnedFd,
    ) -> impl Future<Output = Result<Connection<P>, Error>> + 'static {
        tr::connect_read_pipe(self.as_core(), factory, pipe)
    }

    /// Writes a pipe, FIFO, socket or tty through a transport.
    ///
    /// # Errors
    /// As [`connect_read_pipe`](Self::connect_read_pipe).
    pub fn connect_write_pipe<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P + 'static,
        pipe: OwnedFd,
    ) -> impl Future<Output = Result<Connection<P>, Error>> + 'static {
        tr::connect_write_pipe(self.as_core(), factory, pipe)
    }

    /// Receives up to `n` bytes from a non-blocking socket.
    ///
    /// # Errors
    /// OS errors; [`Error::InvalidArgument`] for a blocking socket.
    pub fn sock_recv<'a>(
        &self,
        sock: &'a impl AsFd,
        n: usize,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + 'a {
        tr::sock_recv(self.as_core(), sock, n)
    }

    /// Receives into `buf`.
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub fn sock_recv_into<'a>(
        &self,
        sock: &'a impl AsFd,
        buf: &'a mut [u8],
    ) -> impl Future<Output = Result<usize, Error>> + 'a {
        tr::sock_recv_into(self.as_core(), sock, buf)
    }

    /// Sends all of `data`.
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub fn sock_sendall<'a>(
        &self,
        sock: &'a impl AsFd,
        data: &'a [u8],
    ) -> impl Future<Output = Result<(), Error>> + 'a {
        tr::sock_sendall(self.as_core(), sock, data)
    }

    /// Connects a non-blocking socket to `addr`: an [`Address`], a
    /// `SocketAddr`, or a host and port (`("localhost", 8080)`), which is
    /// resolved first as asyncio does — a numeric host inline, a name with
    /// `getaddrinfo` on the executor (off the loop), using the socket's
    /// family, type and protocol; the first address is used.
    ///
    /// # Errors
    /// The resolver's error; [`Error::InvalidArgument`] for a host on a
    /// socket that is not an internet one; otherwise as
    /// [`sock_recv`](Self::sock_recv), with the connect errno
    /// (`ECONNREFUSED`, …).
    pub fn sock_connect<'a>(
        &self,
        sock: &'a impl AsFd,
        addr: impl Into<ConnectTarget>,
    ) -> impl Future<Output = Result<(), Error>> + 'a {
        tr::sock_connect(self.as_core(), sock, addr)
    }

    /// Accepts a connection on a listening socket.
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub fn sock_accept<'a>(
        &self,
        sock: &'a impl AsFd,
    ) -> impl Future<Output = Result<(OwnedFd, Option<Address>), Error>> + 'a {
        tr::sock_accept(self.as_core(), sock)
    }

    /// Sends a datagram to `addr`.
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub fn sock_sendto<'a>(
        &self,
        sock: &'a impl AsFd,
        data: &'a [u8],
        addr: Address,
    ) -> impl Future<Output = Result<usize, Error>> + 'a {
        tr::sock_sendto(self.as_core(), sock, data, addr)
    }

    /// Receives a datagram of up to `n` bytes and its sender.
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub fn sock_recvfrom<'a>(
        &self,
        sock: &'a impl AsFd,
        n: usize,
    ) -> impl Future<Output = Result<(Vec<u8>, Option<Address>), Error>> + 'a {
        tr::sock_recvfrom(self.as_core(), sock, n)
    }

    /// Receives a datagram into `buf` (its length is asyncio's `nbytes`):
    /// the number of bytes and the sender.
    ///
    /// # Errors
    /// As [`sock_recv`](Self::sock_recv).
    pub fn sock_recvfrom_into<'a>(
        &self,
        sock: &'a impl AsFd,
        buf: &'a mut [u8],
    ) -> impl Future<Output = Result<(usize, Option<Address>), Error>> + 'a {
        tr::sock_recvfrom_into(self.as_core(), sock, buf)
    }

    /// Sends `file` over a non-blocking stream socket: `count` bytes from
    /// `offset` (to the end when `None`) with zero-copy `sendfile(2)`, or —
    /// if `fallback` — 256 KiB chunks read and sent when the kernel cannot
    /// (not a regular file). Returns the bytes sent; the file's position
    /// ends at `offset` + bytes sent. See
    /// [`evloop_transports::sock_sendfile`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `count == Some(0)`, a blocking or
    /// non-`SOCK_STREAM` socket; [`SendfileNotAvailable`](crate::SendfileNotAvailable)
    /// (an [`Error::Io`] of kind `Unsupported`) when only the fallback
    /// would do and `fallback` is false; OS errors.
    pub fn sock_sendfile<'a>(
        &self,
        sock: &'a impl AsFd,
        file: &'a impl AsFd,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
    ) -> impl Future<Output = Result<u64, Error>> + 'a {
        tr::sock_sendfile(self.as_core(), sock, file, offset, count, fallback)
    }

    /// Sends `file` over `transport` (asyncio's `loop.sendfile`): `count`
    /// bytes from `offset` (to the end when `None`). Zero-copy
    /// `sendfile(2)` on TCP and unix stream transports; with `fallback`, a
    /// chunked copy that respects flow control on transports that cannot
    /// (pipes, TLS). What the transport had buffered goes first, writes
    /// made meanwhile go after the file (on TLS they interleave, as in
    /// asyncio). Returns the bytes sent; the file's position ends at
    /// `offset` + bytes sent, whatever happens. See
    /// [`evloop_transports::sendfile`] for the full table.
    ///
    /// # Errors
    /// [`Error::InvalidState`] on a closing transport or one already in a
    /// sendfile; [`Error::InvalidArgument`] for `count == Some(0)` or a
    /// read-pipe transport; [`SendfileNotAvailable`](crate::SendfileNotAvailable)
    /// (an [`Error::Io`] of kind `Unsupported`) when only the fallback would
    /// do and `fallback` is false; the connection's error if it fails
    /// mid-file (the protocol gets it in `connection_lost` too).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use evloop::{EventLoop, Protocol};
    ///
    /// struct Quiet;
    /// impl Protocol for Quiet {}
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let port = listener.local_addr()?.port();
    /// let receiver = std::thread::spawn(move || {
    ///     let mut got = Vec::new();
    ///     listener.accept().unwrap().0.read_to_end(&mut got).unwrap();
    ///     got
    /// });
    /// let path = std::env::temp_dir().join(format!("evloop-doc-sendfile-{}", std::process::id()));
    /// std::fs::write(&path, b"file contents")?;
    /// let file = std::fs::File::open(&path)?;
    ///
    /// let lp = EventLoop::new()?;
    /// let sent = lp.run_until_complete(async {
    ///     let (transport, _) = lp
    ///         .create_connection(|| Quiet, Some("127.0.0.1"), Some(port), Default::default())
    ///         .await?;
    ///     let sent = lp.sendfile(&transport, &file, 0, None, true).await?;
    ///     transport.close();
    ///     Ok::<u64, evloop::Error>(sent)
    /// })??;
    /// assert_eq!(sent, 13);
    /// lp.run_until_complete(async {})?; // lets the close finish
    /// lp.close()?;
    /// assert_eq!(receiver.join().unwrap(), b"file contents");
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sendfile<'a>(
        &self,
        transport: &Transport,
        file: &'a impl AsFd,
        offset: u64,
        count: Option<u64>,
        fallback: bool,
    ) -> impl Future<Output = Result<u64, Error>> + 'a {
        tr::sendfile(self.as_core(), transport, file, offset, count, fallback)
    }

    /// Opens a TCP connection as a reader/writer pair (asyncio's
    /// `open_connection`; `limit` is the reader's, default
    /// [`DEFAULT_LIMIT`](evloop_transports::DEFAULT_LIMIT)).
    ///
    /// # Errors
    /// As [`create_connection`](Self::create_connection).
    pub fn open_connection(
        &self,
        host: Option<&str>,
        port: Option<u16>,
        options: ConnectOptions,
        limit: usize,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter), Error>> + 'static {
        tr::open_connection(self.as_core(), host, port, options, limit)
    }

    /// Serves TCP with a reader/writer pair per connection, each handled by
    /// a task (asyncio's `start_server`).
    ///
    /// # Errors
    /// As [`create_server`](Self::create_server).
    pub fn start_server<F, Fut>(
        &self,
        client_connected: F,
        options: ServerOptions,
        limit: usize,
    ) -> impl Future<Output = Result<Server, Error>> + 'static
    where
        F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        tr::start_server(self.as_core(), client_connected, options, limit)
    }

    /// [`open_connection`](Self::open_connection) over a unix socket.
    ///
    /// # Errors
    /// As [`create_unix_connection`](Self::create_unix_connection).
    pub fn open_unix_connection(
        &self,
        path: impl AsRef<Path>,
        options: UnixConnectOptions,
        limit: usize,
    ) -> impl Future<Output = Result<(StreamReader, StreamWriter), Error>> + 'static {
        tr::open_unix_connection(self.as_core(), path, options, limit)
    }

    /// [`start_server`](Self::start_server) over a unix socket.
    ///
    /// # Errors
    /// As [`create_unix_server`](Self::create_unix_server).
    pub fn start_unix_server<F, Fut>(
        &self,
        client_connected: F,
        path: Option<&Path>,
        options: UnixServerOptions,
        limit: usize,
    ) -> impl Future<Output = Result<Server, Error>> + 'static
    where
        F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        tr::start_unix_server(self.as_core(), client_connected, path, options, limit)
    }
}
