//! TLS for evloop over rustls (asyncio's `ssl=` arguments and `start_tls`).
//!
//! **Owns:** the TLS session that runs between a stream transport
//! (ciphertext) and the user's protocol (plaintext), client and server;
//! [`ClientTls`] and [`ServerTls`], the configurations the connection calls
//! take through their options' `tls` field (`ConnectOptions`,
//! `ServerOptions`, `UnixServerOptions`, `connect_accepted_socket`, the
//! streams functions); PEM loading with typed errors; the platform's root
//! store; [`start_tls`] on live connections and for streams; the
//! handshake and shutdown timeouts; [`TlsInfo`] about a connection.
//!
//! **Does not own:** sockets, buffering and flow control (the raw stream
//! transport of `evloop-transports` carries the records and its water
//! marks are the TLS transport's), cryptography (rustls, with `ring` by
//! default or `aws-lc-rs` with that feature), certificate generation.
//!
//! # Implementation
//!
//! A session sits on the raw transport as its protocol and is, through
//! `evloop_transports::layer::TransportImpl`, the [`Transport`] the user's
//! protocol sees: `write` encrypts at once into the raw transport,
//! received records are decrypted and delivered as `data_received` (or into
//! a `BufferedProtocol`'s buffer). The user's protocol sees
//! `connection_made` only after the handshake, and nothing at all if it
//! fails (the creating call gets the error; a server reports it to the
//! exception handler in debug mode only, asyncio's rule). `close()` sends `close_notify` and a TCP EOF and
//! waits for the peer's `close_notify` (at most the shutdown timeout); the
//! peer's `close_notify` is `eof_received`; `write_eof()` sends
//! `close_notify` and keeps reading (TLS 1.3 half-close — asyncio cannot);
//! a TCP EOF from the peer ends the session, as in asyncio.
//!
//! # Examples
//!
//! A TLS echo round trip over loopback with a throw-away certificate (made
//! with rcgen):
//!
//! ```
//! use evloop_core::{EventLoop, LoopFuture};
//! use evloop_tls::{ClientTls, ServerTls, TlsTransportExt};
//! use evloop_transports::{
//!     create_connection, create_server, ConnectOptions, Protocol, ServerOptions, Transport,
//! };
//! use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
//!
//! #[derive(Default)]
//! struct Echo(Option<Transport>);
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, t: Transport) { self.0 = Some(t); }
//!     fn data_received(&mut self, data: &[u8]) { self.0.as_ref().unwrap().write(data); }
//! }
//!
//! /// Sends a greeting; `echoed` completes when all of it came back.
//! struct Client { got: Vec<u8>, echoed: LoopFuture<Vec<u8>> }
//! impl Protocol for Client {
//!     fn connection_made(&mut self, t: Transport) { t.write(b"hello over TLS"); }
//!     fn data_received(&mut self, data: &[u8]) {
//!         self.got.extend_from_slice(data);
//!         if self.got.len() == 14 {
//!             let _ = self.echoed.set_result(self.got.clone());
//!         }
//!     }
//! }
//!
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
//! let der = CertificateDer::from(cert.cert.der().to_vec());
//! let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
//! let server_tls = ServerTls::builder_der(vec![der.clone()], key.into()).build()?;
//! let mut roots = rustls::RootCertStore::empty();
//! roots.add(der).unwrap();
//! let client_tls = ClientTls::builder().root_store(roots).build()?;
//!
//! let lp = EventLoop::new()?;
//! let options = ServerOptions::default().host(["127.0.0.1"]).tls(server_tls);
//! let server = lp.run_until_complete(create_server(&lp, Echo::default, options))??;
//! let port = server.sockets()[0].as_inet().unwrap().port();
//! let echoed = lp.create_future();
//! let client = Client { got: Vec::new(), echoed: echoed.clone() };
//! // A numeric host needs no resolver; the name to verify is given apart.
//! let options = ConnectOptions::default().tls(client_tls.server_hostname("localhost"));
//! let connect = create_connection(&lp, move || client, Some("127.0.0.1"), Some(port), options);
//! let (transport, _client) = lp.run_until_complete(connect)??;
//! assert_eq!(transport.tls_info().unwrap().protocol_version, "TLSv1.3");
//! assert_eq!(lp.run_until_complete(echoed)??, b"hello over TLS");
//! transport.close();
//! server.close();
//! lp.close()?;
//! # Ok::<(), evloop_core::Error>(())
//! ```
#![forbid(unsafe_code)]

mod config;
mod error;
mod info;
mod session;
mod start;

pub use config::{
    crypto_provider, load_certs, load_key, platform_roots, ClientAuth, ClientTls, ClientTlsBuilder,
    ServerTls, ServerTlsBuilder, Timeouts, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT,
};
pub use info::{TlsInfo, TlsTransportExt};
/// The rustls version this crate is built on, for [`ClientTls::from_config`]
/// and [`ServerTls::from_config`] users and for certificate and key types.
pub use rustls;
pub use start::{start_tls, start_tls_protocol, StreamWriterTlsExt, TlsConfig};

#[doc(no_inline)]
pub use evloop_transports::Transport;
