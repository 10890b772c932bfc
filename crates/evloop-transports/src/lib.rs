//! Transports and protocols for evloop (asyncio's transports layer).
//!
//! **Owns:** the [`Protocol`], [`BufferedProtocol`] and [`DatagramProtocol`]
//! traits; the stream [`Transport`] shared by TCP, unix stream sockets and
//! pipes, and the [`DatagramTransport`] shared by UDP and unix datagram
//! sockets; connections ([`create_connection`], happy eyeballs), servers
//! ([`create_server`], [`Server`], accept back-off), unix sockets, pipes,
//! the `sock_*` calls, streams ([`StreamReader`], [`StreamWriter`]); flow
//! control with water marks; the loop's reusable read buffer.
//!
//! **Does not own:** the loop (`evloop-core`), readiness (`evloop-reactor`),
//! name resolution (numeric hosts resolve inline; names go to the
//! [`Resolver`] installed on the loop — the facade installs one),
//! TLS (`evloop-tls`), subprocess pipes' process side (`evloop-process`).
//!
//! # Implementation
//!
//! A transport claims its fd from the loop (so `add_reader` on it fails with
//! `FdInUse`) and watches it through the claim. Reads go into one 256 KiB
//! buffer per loop and reach the protocol as `&[u8]`; writes go straight to
//! the fd when nothing is buffered. The transport never holds a borrow of its
//! state while it calls the protocol, so protocol code may call any
//! transport method; `connection_lost` is always delivered from the loop.
//!
//! # Examples
//!
//! An echo server and a client on loopback:
//!
//! ```
//! use evloop_core::EventLoop;
//! use evloop_transports::{create_server, open_connection, ConnectOptions, Protocol, ServerOptions, Transport};
//!
//! #[derive(Default)]
//! struct Echo(Option<Transport>);
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, t: Transport) { self.0 = Some(t); }
//!     fn data_received(&mut self, data: &[u8]) { self.0.as_ref().unwrap().write(data); }
//! }
//!
//! let lp = EventLoop::new()?;
//! let options = ServerOptions::default().host(["127.0.0.1"]).port(0);
//! let server = lp.run_until_complete(create_server(&lp, Echo::default, options))??;
//! let port = server.sockets()[0].as_inet().unwrap().port();
//! let connect = open_connection(&lp, Some("127.0.0.1"), Some(port), ConnectOptions::default(), 1024);
//! let echoed = lp.run_until_complete(async move {
//!     let (mut reader, writer) = connect.await?;
//!     writer.write(b"ping\n");
//!     reader.readline().await.map_err(evloop_core::Error::from)
//! })??;
//! assert_eq!(echoed, b"ping\n");
//! server.close();
//! lp.close()?;
//! # Ok::<(), evloop_core::Error>(())
//! ```
#![forbid(unsafe_code)]

mod address;
mod datagram;
mod family;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault;
mod flow;
pub mod layer;
mod lifecycle;
mod pipe;
mod protocol;
mod read_buffer;
mod resolve;
mod sendfile;
mod server;
mod sock;
mod socket;
mod streams;
mod tcp;
mod transport;
mod udp;
mod unix;
mod watch;

pub use address::Address;
pub use datagram::DatagramTransport;
pub use family::Family;
pub use flow::{WaterMarks, DEFAULT_HIGH_WATER};
pub use layer::Layer;
pub use pipe::{connect_read_pipe, connect_write_pipe};
pub use protocol::{BufferedProtocol, DatagramProtocol, Protocol, ProtocolHandle};
pub use resolve::{resolve, set_resolver, ResolveFuture, ResolveHints, Resolver};
pub use sendfile::{sendfile, sock_sendfile, SendfileNotAvailable};
pub use server::{create_server, Server, ServerOptions};
pub use sock::{
    sock_accept, sock_connect, sock_recv, sock_recv_into, sock_recvfrom, sock_recvfrom_into,
    sock_sendall, sock_sendto, ConnectTarget,
};
pub use socket::os_errno;
pub use streams::{
    open_connection, open_unix_connection, start_server, start_unix_server, stream_pair,
    StreamError, StreamFeed, StreamReader, StreamWriter, DEFAULT_LIMIT,
};
#[doc(hidden)]
pub use tcp::interleave_by_family;
pub use tcp::{
    connect_accepted_socket, create_connection, create_connection_buffered, ConnectOptions,
};
pub use transport::Transport;
pub use udp::{create_datagram_endpoint, DatagramOptions};
pub use unix::datagram::create_unix_datagram_endpoint;
pub use unix::stream::{
    create_unix_connection, create_unix_server, UnixConnectOptions, UnixServerOptions,
};
