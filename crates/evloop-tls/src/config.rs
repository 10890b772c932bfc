//! What a TLS connection is configured with: [`ClientTls`] and
//! [`ServerTls`] (asyncio's client and server `SSLContext`, plus the
//! `server_hostname` and timeout arguments), their builders, PEM loading
//! with typed errors, and the platform's root store.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use evloop_core::{Error, TlsError, TlsErrorKind};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::error::rustls_error;

/// asyncio's `SSL_HANDSHAKE_TIMEOUT`: 60 s.
#[doc(alias = "SSL_HANDSHAKE_TIMEOUT")]
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// asyncio's `SSL_SHUTDOWN_TIMEOUT`: 30 s.
#[doc(alias = "SSL_SHUTDOWN_TIMEOUT")]
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The crypto provider this build uses: `ring`, or `aws-lc-rs` with that
/// feature.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            #[cfg(feature = "aws-lc-rs")]
            let provider = rustls::crypto::aws_lc_rs::default_provider();
            #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
            let provider = rustls::crypto::ring::default_provider();
            Arc::new(provider)
        })
        .clone()
}

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("evloop-tls needs a crypto provider: enable the `ring` or `aws-lc-rs` feature");

/// The handshake and shutdown timeouts of a TLS connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A handshake not finished in this time aborts the connection.
    pub handshake: Duration,
    /// After our `close_notify`, the peer's must arrive within this time,
    /// or the connection is aborted.
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl Timeouts {
    /// asyncio's checks: both must be positive.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        for (name, value) in [
            ("ssl_handshake_timeout", self.handshake),
            ("ssl_shutdown_timeout", self.shutdown),
        ] {
            if value.is_zero() {
                return Err(Error::invalid_argument(format!(
                    "{name} should be a positive number, got 0"
                )));
            }
        }
        Ok(())
    }
}

/// The client side of TLS: what `ConnectOptions::tls` takes (asyncio's
/// `ssl=` with a client context, and `server_hostname`).
///
/// Verification is on by default, against the platform's root store;
/// the name checked is `server_hostname`, else the host connected to (an IP
/// address is checked against the certificate's IP SANs).
///
/// # Examples
///
/// Trust one private CA instead of the platform's roots, offer ALPN, and
/// verify a name other than the address connected to:
///
/// ```
/// use std::time::Duration;
/// use evloop_tls::{rustls, ClientTls};
/// use evloop_transports::ConnectOptions;
///
/// // A throw-away CA certificate; in real use, `root_pem_file("ca.pem")`.
/// let ca = rcgen::generate_simple_self_signed(vec!["db.internal".into()]).unwrap();
/// let mut roots = rustls::RootCertStore::empty();
/// roots.add(rustls::pki_types::CertificateDer::from(ca.cert.der().to_vec())).unwrap();
///
/// let tls = ClientTls::builder()
///     .root_store(roots)
///     .alpn(["h2", "http/1.1"])
///     .build()?
///     .server_hostname("db.internal")
///     .handshake_timeout(Duration::from_secs(10));
/// // `ClientTls::new()?` is asyncio's `ssl.create_default_context()`.
/// let mut options = ConnectOptions::default();
/// options.tls = Some(tls.into());
/// assert!(options.tls.is_some()); // ready for create_connection or open_connection
/// # Ok::<(), evloop_core::Error>(())
/// ```
#[derive(Clone)]
#[doc(alias("ssl", "SSLContext", "create_default_context"))]
pub struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_hostname: Option<String>,
    pub(crate) timeouts: Timeouts,
}

impl ClientTls {
    /// Verifies servers against the platform's root certificates, no ALPN,
    /// no client certificate.
    ///
    /// # Errors
    /// [`Error::Tls`] (`Config`) if the platform has no root certificates.
    #[doc(alias = "create_default_context")]
    pub fn new() -> Result<ClientTls, Error> {
        ClientTls::builder().build()
    }

    /// A builder for roots, ALPN and client certificates.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// A ready rustls configuration, used as it is.
    pub fn from_config(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls {
            config,
            server_hostname: None,
            timeouts: Timeouts::default(),
        }
    }

    /// The name to verify the certificate against and send as SNI, instead
    /// of the host connected to (asyncio's `server_hostname`).
    pub fn server_hostname(mut self, name: impl Into<String>) -> ClientTls {
        self.server_hostname = Some(name.into());
        self
    }

    /// The handshake timeout (60 s by default).
    #[doc(alias = "ssl_handshake_timeout")]
    pub fn handshake_timeout(mut self, timeout: Duration) -> ClientTls {
        self.timeouts.handshake = timeout;
        self
    }

    /// The shutdown timeout (30 s by default).
    #[doc(alias = "ssl_shutdown_timeout")]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> ClientTls {
        self.timeouts.shutdown = timeout;
        self
    }

    /// The rustls configuration in use.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name to verify: `server_hostname`, else `host`.
    pub(crate) fn server_name(&self, host: Option<&str>) -> Result<ServerName<'static>, Error> {
        let name = self.server_hostname.as_deref().or(host).ok_or_else(|| {
            Error::invalid_argument("You must set server_hostname when using TLS without a host")
        })?;
        // `[::1]` as a URL writes it: the name is the address inside.
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(bare.to_owned()).map_err(|_| {
            Error::invalid_argument(format!(
                "server_hostname: {name:?} is neither a DNS name nor an IP address"
            ))
        })
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_hostname", &self.server_hostname)
            .field("alpn", &alpn_names(&self.config.alpn_protocols))
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ClientTls`].
#[derive(Default)]
pub struct ClientTlsBuilder {
    roots: Option<RootCertStore>,
    alpn: Vec<Vec<u8>>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    no_verification: bool,
    error: Option<Error>,
}

impl ClientTlsBuilder {
    /// Trusts exactly these roots instead of the platform's.
    #[doc(alias = "load_verify_locations")]
    pub fn root_store(mut self, roots: RootCertStore) -> Self {
        self.roots = Some(roots);
        self
    }

    /// Trusts the certificates in a PEM file (instead of the platform's
    /// roots; call again to add more files).
    #[doc(alias("load_verify_locations", "cafile"))]
    pub fn root_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        match load_certs(path.as_ref()) {
            Ok(certs) => {
                let roots = self.roots.get_or_insert_with(RootCertStore::empty);
                for cert in certs {
                    if let Err(error) = roots.add(cert) {
                        self.error.get_or_insert(rustls_error(error));
                    }
                }
            }
            Err(error) => {
                self.error.get_or_insert(error);
            }
        }
        self
    }

    /// The application protocols to offer (ALPN), most preferred first.
    #[doc(alias = "set_alpn_protocols")]
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Presents this certificate chain and key when the server asks.
    pub fn client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some((chain, key));
        self
    }

    /// Presents the certificate chain and key in these PEM files.
    #[doc(alias = "load_cert_chain")]
    pub fn client_cert_pem_files(self, chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        match (load_certs(chain.as_ref()), load_key(key.as_ref())) {
            (Ok(chain), Ok(key)) => self.client_cert(chain, key),
            (Err(error), _) | (_, Err(error)) => self.fail(error),
        }
    }

    /// **Dangerous:** accepts any certificate for any name, so anyone on
    /// the path can read and change the traffic. For tests against
    /// throw-away certificates only.
    #[doc(alias("check_hostname", "verify_mode", "CERT_NONE"))]
    pub fn dangerous_disable_certificate_verification(mut self) -> Self {
        self.no_verification = true;
        self
    }

    /// The configuration.
    ///
    /// # Errors
    /// The first error of a `*_pem_file` call; [`Error::Tls`] (`Config`)
    /// for a client key that does not match its certificate, or no root
    /// certificates at all.
    pub fn build(self) -> Result<ClientTls, Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_error)?;
        let builder = if self.no_verification {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(crypto_provider())))
        } else {
            let roots = match self.roots {
                Some(roots) => Arc::new(roots),
                None => platform_roots()?,
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match self.client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(rustls_error)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        Ok(ClientTls::from_config(Arc::new(config)))
    }

    fn fail(mut self, error: Error) -> Self {
        self.error.get_or_insert(error);
        self
    }
}

impl fmt::Debug for ClientTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsBuilder")
            .field("roots", &self.roots.as_ref().map(RootCertStore::len))
            .field("alpn", &alpn_names(&self.alpn))
            .field("client_cert", &self.client_cert.is_some())
            .field("no_verification", &self.no_verification)
            .finish()
    }
}

/// The server side of TLS: what `ServerOptions::tls` takes (asyncio's
/// `ssl=` with a server context).
///
/// # Examples
///
/// A TLS server from a certificate chain and key in PEM files:
///
/// ```
/// use std::time::Duration;
/// use evloop_core::EventLoop;
/// use evloop_tls::ServerTls;
/// use evloop_transports::{create_server, Protocol, ServerOptions};
///
/// struct Quiet;
/// impl Protocol for Quiet {}
///
/// // A throw-away certificate and key, written as PEM files.
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let dir = std::env::temp_dir().join(format!("evloop-server-tls-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let (chain, key) = (dir.join("cert.pem"), dir.join("key.pem"));
/// std::fs::write(&chain, cert.cert.pem())?;
/// std::fs::write(&key, cert.key_pair.serialize_pem())?;
///
/// let tls = ServerTls::from_pem_files(&chain, &key)?.handshake_timeout(Duration::from_secs(10));
/// // The builder adds ALPN and client certificates.
/// let _h2 = ServerTls::builder(&chain, &key).alpn(["h2", "http/1.1"]).build()?;
/// let missing = ServerTls::from_pem_files(dir.join("missing.pem"), &key).unwrap_err();
/// assert_eq!(missing.io_kind(), Some(std::io::ErrorKind::NotFound));
///
/// let lp = EventLoop::new()?;
/// let mut options = ServerOptions::default();
/// options.host = vec!["127.0.0.1".into()];
/// options.tls = Some(tls.into());
/// let server = lp.run_until_complete(create_server(&lp, || Quiet, options))??;
/// println!("TLS on port {}", server.sockets()[0].as_inet().unwrap().port());
/// server.close();
/// lp.close()?;
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[doc(alias("ssl", "SSLContext"))]
pub struct ServerTls {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) timeouts: Timeouts,
}

impl ServerTls {
    /// Serves the certificate chain and private key in these PEM files
    /// (asyncio's `ctx.load_cert_chain(cert, key)`), no ALPN, no client
    /// certificates.
    ///
    /// # Errors
    /// [`Error::Io`] (`NotFound`, naming the path) for a missing file;
    /// [`Error::Tls`] (`Config`) for malformed PEM, a file with no
    /// certificate or no private key, an unsupported key, or a key that does
    /// not match the certificate.
    #[doc(alias = "load_cert_chain")]
    pub fn from_pem_files(chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, Error> {
        ServerTls::builder(chain, key).build()
    }

    /// A builder over the chain and key in these PEM files.
    pub fn builder(chain: impl AsRef<Path>, key: impl AsRef<Path>) -> ServerTlsBuilder {
        let identity =
            load_certs(chain.as_ref()).and_then(|chain| Ok((chain, load_key(key.as_ref())?)));
        ServerTlsBuilder {
            identity,
            alpn: Vec::new(),
            client_auth: None,
        }
    }

    /// A builder over a chain and key already in memory (DER).
    pub fn builder_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> ServerTlsBuilder {
        ServerTlsBuilder {
            identity: Ok((chain, key)),
            alpn: Vec::new(),
            client_auth: None,
        }
    }

    /// A ready rustls configuration, used as it is.
    pub fn from_config(config: Arc<ServerConfig>) -> ServerTls {
        ServerTls {
            config,
            timeouts: Timeouts::default(),
        }
    }

    /// The handshake timeout (60 s by default).
    #[doc(alias = "ssl_handshake_timeout")]
    pub fn handshake_timeout(mut self, timeout: Duration) -> ServerTls {
        self.timeouts.handshake = timeout;
        self
    }

    /// The shutdown timeout (30 s by default).
    #[doc(alias = "ssl_shutdown_timeout")]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> ServerTls {
        self.timeouts.shutdown = timeout;
        self
    }

    /// The rustls configuration in use.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("alpn", &alpn_names(&self.config.alpn_protocols))
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// Whether a server asks for client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(alias("verify_mode", "CERT_REQUIRED", "CERT_OPTIONAL"))]
pub enum ClientAuth {
    /// A client without a certificate is refused.
    Required,
    /// A client may present one; if it does, it must verify.
    Optional,
}

/// Builds a [`ServerTls`].
pub struct ServerTlsBuilder {
    identity: Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error>,
    alpn: Vec<Vec<u8>>,
    client_auth: Option<(ClientAuth, RootCertStore)>,
}

impl ServerTlsBuilder {
    /// The application protocols to accept (ALPN), most preferred first. A
    /// client that offers only others is refused (`NoApplicationProtocol`).
    #[doc(alias = "set_alpn_protocols")]
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Verifies client certificates against `roots`.
    #[doc(alias("verify_mode", "CERT_REQUIRED"))]
    pub fn client_auth(mut self, mode: ClientAuth, roots: RootCertStore) -> Self {
        self.client_auth = Some((mode, roots));
        self
    }

    /// The configuration.
    ///
    /// # Errors
    /// The PEM errors of [`ServerTls::from_pem_files`]; [`Error::Tls`]
    /// (`Config`) for a key that does not match, or an empty client root store.
    pub fn build(self) -> Result<ServerTls, Error> {
        let (chain, key) = self.identity?;
        let provider = crypto_provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(rustls_error)?;
        let builder = match self.client_auth {
            None => builder.with_no_client_auth(),
            Some((mode, roots)) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = match mode {
                    ClientAuth::Required => verifier,
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| config_error(format!("client certificate verifier: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(rustls_error)?;
        config.alpn_protocols = self.alpn;
        Ok(ServerTls::from_config(Arc::new(config)))
    }
}

impl fmt::Debug for ServerTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsBuilder")
            .field("identity", &self.identity.as_ref().map(|(c, _)| c.len()))
            .field("alpn", &alpn_names(&self.alpn))
            .field("client_auth", &self.client_auth.as_ref().map(|(m, _)| m))
            .finish()
    }
}

/// Reads every certificate in a PEM file.
///
/// # Errors
/// [`Error::Io`] naming the path for a file that cannot be read;
/// [`Error::Tls`] (`Config`) for malformed PEM or no certificate in it.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "{}: no certificate (no \"BEGIN CERTIFICATE\" section)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
///
/// # Errors
/// [`Error::Io`] naming the path for a file that cannot be read;
/// [`Error::Tls`] (`Config`) for malformed PEM or no private key in it.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => config_error(format!(
            "{}: no private key (no PKCS#8, PKCS#1 or SEC1 \"PRIVATE KEY\" section)",
            path.display()
        )),
        other => pem_error(path, other),
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    })
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> Error {
    config_error(format!("{}: malformed PEM: {error:?}", path.display()))
}

fn config_error(message: String) -> Error {
    Error::Tls(TlsError::new(TlsErrorKind::Config, message, None))
}

/// The platform's root certificates (rustls-native-certs), loaded once.
///
/// # Errors
/// [`Error::Tls`] (`Config`) when none could be loaded.
#[doc(alias("load_default_certs", "set_default_verify_paths"))]
pub fn platform_roots() -> Result<Arc<RootCertStore>, Error> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
            return Err(format!(
                "no root certificates found in the platform's store (install ca-certificates, \
                 or pass a root store){}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", why.join("; "))
                }
            ));
        }
        Ok(Arc::new(roots))
    });
    match roots {
        Ok(roots) => Ok(roots.clone()),
        Err(message) => Err(config_error(message.clone())),
    }
}

fn alpn_names(protocols: &[Vec<u8>]) -> Vec<String> {
    protocols
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// The verifier behind
/// [`dangerous_disable_certificate_verification`](ClientTlsBuilder::dangerous_disable_certificate_verification):
/// every certificate passes; signatures are still checked, so the
/// handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
