//! Starting TLS sessions: on new connections (the [`Layer`] the options of
//! the connection calls carry), and on live ones ([`start_tls`], asyncio's
//! `loop.start_tls`, and [`StreamWriterTlsExt::start_tls`] for streams).

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use evloop_core::{Error, EventLoop, LoopFuture};
use evloop_transports::layer::{AnyProtocol, LayerSession, StreamLayer};
use evloop_transports::{Layer, Protocol, ProtocolHandle, StreamWriter, Transport};
use rustls::{ClientConnection, Connection, ServerConnection};

use crate::config::{ClientTls, ServerTls, Timeouts};
use crate::error::rustls_error;
use crate::session::{RawSide, Session};

/// Either side's TLS configuration: what [`start_tls`] takes.
#[derive(Clone, Debug)]
#[doc(alias("SSLContext", "server_side"))]
pub enum TlsConfig {
    /// We are the client.
    Client(ClientTls),
    /// We are the server (asyncio's `server_side=True`).
    Server(ServerTls),
}

impl From<ClientTls> for TlsConfig {
    fn from(tls: ClientTls) -> TlsConfig {
        TlsConfig::Client(tls)
    }
}

impl From<ServerTls> for TlsConfig {
    fn from(tls: ServerTls) -> TlsConfig {
        TlsConfig::Server(tls)
    }
}

impl From<ClientTls> for Layer {
    fn from(tls: ClientTls) -> Layer {
        Layer::new(TlsConfig::Client(tls))
    }
}

impl From<ServerTls> for Layer {
    fn from(tls: ServerTls) -> Layer {
        Layer::new(TlsConfig::Server(tls))
    }
}

impl From<TlsConfig> for Layer {
    fn from(tls: TlsConfig) -> Layer {
        Layer::new(tls)
    }
}

impl TlsConfig {
    fn timeouts(&self) -> Timeouts {
        match self {
            TlsConfig::Client(c) => c.timeouts,
            TlsConfig::Server(s) => s.timeouts,
        }
    }

    /// A rustls connection for one session; `host` names the server when
    /// the configuration does not.
    fn connection(&self, host: Option<&str>) -> Result<Connection, Error> {
        self.timeouts().validate()?;
        Ok(match self {
            TlsConfig::Client(client) => {
                let name = client.server_name(host)?;
                Connection::Client(
                    ClientConnection::new(client.config.clone(), name).map_err(rustls_error)?,
                )
            }
            TlsConfig::Server(server) => Connection::Server(
                ServerConnection::new(Arc::clone(&server.config)).map_err(rustls_error)?,
            ),
        })
    }
}

impl StreamLayer for TlsConfig {
    fn validate(&self) -> Result<(), Error> {
        self.timeouts().validate()
    }

    fn start(
        &self,
        event_loop: &EventLoop,
        host: Option<&str>,
        app: AnyProtocol,
        ready: Option<LoopFuture<()>>,
    ) -> Result<LayerSession, Error> {
        let tls = self.connection(host)?;
        let session = Session::new(event_loop, tls, app, ready, self.timeouts(), true);
        let raw_protocol: Rc<RefCell<dyn Protocol>> =
            Rc::new(RefCell::new(RawSide(session.clone())));
        Ok(LayerSession {
            raw_protocol,
            transport: session.transport(),
        })
    }
}

/// Upgrades a live connection to TLS (asyncio's `loop.start_tls`, for
/// STARTTLS): from now on `transport` carries TLS records and `protocol`
/// gets plaintext through the returned transport, which replaces
/// `transport` for the user. `protocol.connection_made` is not called
/// again. Whatever was written before is sent first, in order.
///
/// A client verifies the server against `tls`'s `server_hostname`, which
/// must then be set (there is no host to default to).
///
/// # Errors
/// [`Error::InvalidArgument`] for a client `tls` without `server_hostname`
/// or a zero timeout, [`Error::InvalidState`] for a closing transport, the
/// handshake's error (the transport is then closed). Dropping the future
/// before the handshake completes aborts the connection.
///
/// # Examples
///
/// STARTTLS: a client connects in plaintext, asks the server to switch, and
/// both upgrade the live connection (the server through the streams
/// version, [`StreamWriterTlsExt::start_tls`]):
///
/// ```
/// use evloop_core::{Error, EventLoop, LoopFuture};
/// use evloop_tls::{start_tls, ClientTls, ServerTls, StreamWriterTlsExt};
/// use evloop_transports::layer::AnyProtocol;
/// use evloop_transports::{
///     create_connection, start_server, ConnectOptions, Protocol, ProtocolHandle, ServerOptions,
///     DEFAULT_LIMIT,
/// };
/// # use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// # let der = CertificateDer::from(cert.cert.der().to_vec());
/// # let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
/// # let server_tls = ServerTls::builder_der(vec![der.clone()], key.into()).build()?;
/// # let mut roots = rustls::RootCertStore::empty();
/// # roots.add(der).unwrap();
/// # let client_tls = ClientTls::builder().root_store(roots).build()?;
/// // `server_tls: ServerTls` and `client_tls: ClientTls` for "localhost",
/// // made as in the crate's example.
///
/// /// Completes `line` with the next line received, plaintext or TLS.
/// #[derive(Default)]
/// struct Client { got: Vec<u8>, line: Option<LoopFuture<Vec<u8>>> }
/// impl Protocol for Client {
///     fn data_received(&mut self, data: &[u8]) {
///         self.got.extend_from_slice(data);
///         if self.got.ends_with(b"\n") {
///             if let Some(line) = self.line.take() {
///                 let _ = line.set_result(std::mem::take(&mut self.got));
///             }
///         }
///     }
/// }
/// fn next_line(lp: &EventLoop, client: &ProtocolHandle<Client>) -> LoopFuture<Vec<u8>> {
///     let line = lp.create_future();
///     let _ = client.with(|c| c.line = Some(line.clone()));
///     line
/// }
///
/// let lp = EventLoop::new()?;
/// let handler_lp = lp.clone();
/// let mut options = ServerOptions::default();
/// options.host = vec!["127.0.0.1".into()];
/// let serve = start_server(&lp, move |mut reader, writer| {
///     let (lp, tls) = (handler_lp.clone(), server_tls.clone());
///     async move {
///         if matches!(reader.readline().await, Ok(line) if line == b"STARTTLS\n") {
///             writer.write(b"GO\n");
///             writer.start_tls(&lp, tls).await.unwrap();
///             let line = reader.readline().await.unwrap();
///             writer.write(&line); // echoed over TLS
///         }
///     }
/// }, options, DEFAULT_LIMIT);
/// let server = lp.run_until_complete(serve)??;
/// let port = server.sockets()[0].as_inet().unwrap().port();
///
/// let echoed = lp.run_until_complete(async {
///     let options = ConnectOptions::default();
///     let connect = create_connection(&lp, Client::default, Some("127.0.0.1"), Some(port), options);
///     let (plain, client) = connect.await?;
///     let go = next_line(&lp, &client);
///     plain.write(b"STARTTLS\n");
///     assert_eq!(go.await?, b"GO\n");
///     // No host to default to: the name to verify must be given.
///     let tls = client_tls.server_hostname("localhost");
///     let transport = start_tls(&lp, &plain, AnyProtocol::plain(&client), tls).await?;
///     let echo = next_line(&lp, &client);
///     transport.write(b"secret\n");
///     let echoed = echo.await?;
///     transport.close();
///     Ok::<_, Error>(echoed)
/// })??;
/// assert_eq!(echoed, b"secret\n");
/// server.close();
/// lp.close()?;
/// # Ok::<(), Error>(())
/// ```
pub fn start_tls(
    event_loop: &EventLoop,
    transport: &Transport,
    protocol: AnyProtocol,
    tls: impl Into<TlsConfig>,
) -> impl Future<Output = Result<Transport, Error>> + 'static {
    let event_loop = event_loop.clone();
    let transport = transport.clone();
    let tls = tls.into();
    async move {
        if transport.is_closing() {
            return Err(Error::InvalidState("start_tls() on a closing transport"));
        }
        let connection = tls.connection(None)?;
        let ready = event_loop.create_future();
        let session = Session::new(
            &event_loop,
            connection,
            protocol,
            Some(ready.clone()),
            tls.timeouts(),
            false,
        );
        let raw_side = ProtocolHandle::new(RawSide(session.clone()));
        transport.set_protocol(&raw_side);
        session.attach(transport.clone());
        let abort = AbortUnlessDone(Some(transport));
        ready.await?;
        drop(abort.disarm());
        Ok(session.transport())
    }
}

/// [`start_tls`] with the user's [`Protocol`] behind `protocol`.
///
/// # Errors
/// As [`start_tls`].
pub fn start_tls_protocol<P: Protocol>(
    event_loop: &EventLoop,
    transport: &Transport,
    protocol: &ProtocolHandle<P>,
    tls: impl Into<TlsConfig>,
) -> impl Future<Output = Result<Transport, Error>> + 'static {
    start_tls(event_loop, transport, AnyProtocol::plain(protocol), tls)
}

/// Aborts the raw transport if the upgrade is dropped or fails.
struct AbortUnlessDone(Option<Transport>);

impl AbortUnlessDone {
    fn disarm(mut self) -> Option<Transport> {
        self.0.take()
    }
}

impl Drop for AbortUnlessDone {
    fn drop(&mut self) {
        if let Some(transport) = self.0.take() {
            transport.abort();
        }
    }
}

/// STARTTLS for streams (asyncio's `StreamWriter.start_tls`).
pub trait StreamWriterTlsExt {
    /// Drains the writer, then upgrades its connection to TLS as
    /// [`start_tls`] does; the reader and writer go on over TLS. Bytes the
    /// reader already holds stay readable.
    ///
    /// # Errors
    /// As [`start_tls`].
    fn start_tls(
        &self,
        event_loop: &EventLoop,
        tls: impl Into<TlsConfig>,
    ) -> impl Future<Output = Result<(), Error>>;
}

impl StreamWriterTlsExt for StreamWriter {
    fn start_tls(
        &self,
        event_loop: &EventLoop,
        tls: impl Into<TlsConfig>,
    ) -> impl Future<Output = Result<(), Error>> {
        let tls = tls.into();
        self.start_layer(move |transport, protocol| {
            start_tls(event_loop, &transport, protocol, tls)
        })
    }
}
