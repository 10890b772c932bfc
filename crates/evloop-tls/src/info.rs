//! What a TLS transport tells about its connection (asyncio's
//! `get_extra_info('peercert' | 'cipher' | 'ssl_object')`), reached from
//! any [`Transport`] through [`TlsTransportExt`].

use evloop_transports::Transport;
use rustls::Connection;

use crate::session::Session;

/// The negotiated parameters of a TLS connection, copied out of it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[doc(alias("SSLObject", "peercert", "cipher"))]
pub struct TlsInfo {
    /// `"TLSv1.3"` or `"TLSv1.2"` (Python's `SSLObject.version()` names).
    pub protocol_version: String,
    /// The cipher suite, in IANA's name (`"TLS13_AES_256_GCM_SHA384"`).
    pub cipher_suite: String,
    /// The application protocol agreed by ALPN, if any.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The name the client asked for by SNI (known on the server side).
    pub server_name: Option<String>,
    /// The peer's certificate chain (DER), end entity first; empty if the
    /// peer sent none (a client without a certificate).
    pub peer_certificates: Vec<Vec<u8>>,
    /// True on the server side of the connection.
    pub server_side: bool,
}

impl TlsInfo {
    pub(crate) fn of(tls: &Connection) -> TlsInfo {
        let protocol_version = match tls.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let cipher_suite = tls
            .negotiated_cipher_suite()
            .and_then(|suite| suite.suite().as_str())
            .unwrap_or_default()
            .to_owned();
        let (server_name, server_side) = match tls {
            Connection::Server(server) => (server.server_name().map(str::to_owned), true),
            Connection::Client(_) => (None, false),
        };
        TlsInfo {
            protocol_version,
            cipher_suite,
            alpn_protocol: tls.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            peer_certificates: tls
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
                .unwrap_or_default(),
            server_side,
        }
    }
}

/// TLS details of a [`Transport`].
pub trait TlsTransportExt {
    /// The connection's TLS parameters, if this transport is TLS and its
    /// handshake is done; `None` for a plain transport.
    #[doc(alias(
        "get_extra_info",
        "peercert",
        "getpeercert",
        "cipher",
        "ssl_object",
        "selected_alpn_protocol"
    ))]
    fn tls_info(&self) -> Option<TlsInfo>;

    /// True if this transport is a TLS one.
    fn is_tls(&self) -> bool;
}

impl TlsTransportExt for Transport {
    fn tls_info(&self) -> Option<TlsInfo> {
        self.downcast_ref::<Session>()?.info()
    }

    fn is_tls(&self) -> bool {
        self.downcast_ref::<Session>().is_some()
    }
}
