//! TLS (docs/behaviour.md 16.1): the facade's face of `evloop-tls`. TLS on new
//! connections is the `tls` field of the connection calls' options
//! (asyncio's `ssl=`); this file adds `start_tls` on live connections.

use std::future::Future;

use evloop_core::Error;
use evloop_tls::TlsConfig;
use evloop_transports::layer::AnyProtocol;
use evloop_transports::{BufferedProtocol, Protocol, ProtocolHandle, Transport};

use crate::EventLoop;

impl EventLoop {
    /// Upgrades a live connection to TLS (asyncio's `loop.start_tls`):
    /// `protocol` (the one behind `transport`) gets plaintext through the
    /// returned transport, which replaces `transport`. A [`ClientTls`](crate::ClientTls)
    /// makes us the client (it needs `server_hostname`), a
    /// [`ServerTls`](crate::ServerTls) the server.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a client without `server_hostname`;
    /// the handshake's error ([`Error::Tls`], or a timeout), after which the
    /// connection is closed.
    #[doc(alias = "ssl")]
    pub fn start_tls<P: Protocol>(
        &self,
        transport: &Transport,
        protocol: &ProtocolHandle<P>,
        tls: impl Into<TlsConfig>,
    ) -> impl Future<Output = Result<Transport, Error>> + 'static {
        evloop_tls::start_tls(self.as_core(), transport, AnyProtocol::plain(protocol), tls)
    }

    /// [`start_tls`](Self::start_tls) for a [`BufferedProtocol`].
    ///
    /// # Errors
    /// As `start_tls`.
    #[doc(alias = "start_tls")]
    pub fn start_tls_buffered<P: BufferedProtocol>(
        &self,
        transport: &Transport,
        protocol: &ProtocolHandle<P>,
        tls: impl Into<TlsConfig>,
    ) -> impl Future<Output = Result<Transport, Error>> + 'static {
        evloop_tls::start_tls(
            self.as_core(),
            transport,
            AnyProtocol::buffered(protocol),
            tls,
        )
    }
}
