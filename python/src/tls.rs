//! TLS for `evloop.Loop`: a Python `ssl.SSLContext`, as `evloop/_tls.py`
//! reads it, becomes a rustls configuration for evloop-tls ([`PyTlsConfig`],
//! `_TlsConfig`, made once per context and cached there); `start_tls`
//! upgrades a live `_StreamTransport`; TLS failures become the `ssl`
//! module's exceptions; [`info_to_py`] is what `get_extra_info` tells about
//! a TLS connection.
//!
//! Python cannot read a certificate chain, key or ALPN list back out of an
//! `SSLContext`: `_tls.py` records them as they are set and hands this
//! module the PEM bytes and the settings (see `tls_config`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use evloop_core::{TlsError, TlsErrorKind};
use evloop_tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use evloop_tls::rustls::client::WebPkiServerVerifier;
use evloop_tls::rustls::crypto::CryptoProvider;
use evloop_tls::rustls::pki_types::pem::PemObject;
use evloop_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use evloop_tls::rustls::server::WebPkiClientVerifier;
use evloop_tls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use evloop_tls::{crypto_provider, ClientTls, ServerTls, TlsConfig, TlsTransportExt};
use evloop_transports::layer::AnyProtocol;
use evloop_transports::{ProtocolHandle, Transport};
use pyo3::exceptions::{PyConnectionAbortedError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::bridge::{complete_with, Pending};
use crate::core_loop::CoreLoop;
use crate::errors::to_py;
use crate::protocol::PyProtocol;
use crate::transport::StreamTransport;

/// `verify_mode` as `_tls.py` passes it (`ssl.CERT_NONE` … `CERT_REQUIRED`).
const CERT_NONE: u8 = 0;
const CERT_OPTIONAL: u8 = 1;

/// A translated `ssl.SSLContext`: evloop-tls's client or server
/// configuration, shared by every connection made with that context.
#[pyclass(module = "evloop._core", name = "_TlsConfig", frozen)]
pub struct PyTlsConfig {
    config: TlsConfig,
}

impl std::fmt::Debug for PyTlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyTlsConfig")
            .field("config", &self.config)
            .finish()
    }
}

impl PyTlsConfig {
    /// This configuration for one connection: the name to verify and the
    /// timeouts (`None`: asyncio's defaults).
    pub(crate) fn for_connection(
        &self,
        server_hostname: Option<String>,
        handshake_timeout: Option<f64>,
        shutdown_timeout: Option<f64>,
    ) -> PyResult<TlsConfig> {
        let handshake = handshake_timeout
            .map(|t| seconds(t, "ssl_handshake_timeout"))
            .transpose()?;
        let shutdown = shutdown_timeout
            .map(|t| seconds(t, "ssl_shutdown_timeout"))
            .transpose()?;
        Ok(match &self.config {
            TlsConfig::Client(client) => {
                let mut client = client.clone();
                if let Some(name) = server_hostname {
                    client = client.server_hostname(name);
                }
                if let Some(t) = handshake {
                    client = client.handshake_timeout(t);
                }
                if let Some(t) = shutdown {
                    client = client.shutdown_timeout(t);
                }
                TlsConfig::Client(client)
            }
            TlsConfig::Server(server) => {
                let mut server = server.clone();
                if let Some(t) = handshake {
                    server = server.handshake_timeout(t);
                }
                if let Some(t) = shutdown {
                    server = server.shutdown_timeout(t);
                }
                TlsConfig::Server(server)
            }
        })
    }
}

#[pymethods]
impl PyTlsConfig {
    /// True for a server-side configuration.
    #[getter]
    fn server_side(&self) -> bool {
        matches!(self.config, TlsConfig::Server(_))
    }
}

fn seconds(value: f64, name: &str) -> PyResult<Duration> {
    match Duration::try_from_secs_f64(value) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(PyValueError::new_err(format!(
            "{name} should be a positive number, got {value}"
        ))),
    }
}

/// What `_tls.py` read out of an `SSLContext`, to translate.
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct ContextSpec {
    /// `ssl.CERT_NONE` (0), `CERT_OPTIONAL` (1) or `CERT_REQUIRED` (2).
    verify_mode: u8,
    check_hostname: bool,
    /// Wire versions to allow (0x0303 TLS 1.2, 0x0304 TLS 1.3).
    versions: Vec<u16>,
    /// Trusted certificates, DER (`get_ca_certs(binary_form=True)`, and
    /// `load_verify_locations(cadata=bytes)`'s).
    ca_der: Vec<Vec<u8>>,
    /// More trusted certificates, PEM (the `capath` directories and the
    /// `cafile`s and `cadata` strings `load_verify_locations` loaded);
    /// entries that do not parse are skipped, as OpenSSL skips them.
    ca_pem: Vec<Vec<u8>>,
    /// The chain and key `load_cert_chain` loaded, PEM.
    chain_pem: Option<Vec<u8>>,
    key_pem: Option<Vec<u8>>,
    alpn: Vec<Vec<u8>>,
    /// False to send no SNI (asyncio's `server_hostname=''`).
    sni: bool,
}

/// Translates an `SSLContext` (as `_tls.py` read it) into a `_TlsConfig`.
///
/// # Errors
/// `ValueError` naming what rustls cannot do with these settings.
#[pyfunction]
pub(crate) fn tls_config(server_side: bool, spec: ContextSpec) -> PyResult<PyTlsConfig> {
    let config = if server_side {
        TlsConfig::Server(ServerTls::from_config(Arc::new(server_config(&spec)?)))
    } else {
        TlsConfig::Client(ClientTls::from_config(Arc::new(client_config(&spec)?)))
    };
    Ok(PyTlsConfig { config })
}

fn versions(spec: &ContextSpec) -> PyResult<Vec<&'static SupportedProtocolVersion>> {
    let mut versions = Vec::new();
    if spec.versions.contains(&0x0304) {
        versions.push(&rustls::version::TLS13);
    }
    if spec.versions.contains(&0x0303) {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err(PyValueError::new_err(
            "minimum_version/maximum_version: rustls speaks TLS 1.2 and 1.3 only",
        ));
    }
    Ok(versions)
}

fn roots(spec: &ContextSpec) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let der = spec.ca_der.iter().map(|c| CertificateDer::from(c.clone()));
    roots.add_parsable_certificates(der);
    for pem in &spec.ca_pem {
        let certs = CertificateDer::pem_slice_iter(pem).filter_map(Result::ok);
        roots.add_parsable_certificates(certs);
    }
    roots
}

fn identity(
    spec: &ContextSpec,
) -> PyResult<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    let (Some(chain), Some(key)) = (&spec.chain_pem, &spec.key_pem) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyValueError::new_err(format!("load_cert_chain: malformed PEM: {e:?}")))?;
    if chain.is_empty() {
        return Err(PyValueError::new_err(
            "load_cert_chain: no certificate in the chain file",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        PyValueError::new_err(format!(
            "load_cert_chain: no private key rustls can read (PKCS#8, PKCS#1 or SEC1, \
             unencrypted): {e:?}"
        ))
    })?;
    Ok(Some((chain, key)))
}

fn config_error(what: &str, error: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{what}: {error}"))
}

fn client_config(spec: &ContextSpec) -> PyResult<ClientConfig> {
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(spec)?)
        .map_err(|e| config_error("protocol versions", e))?;
    let verifier: Arc<dyn ServerCertVerifier> = if spec.verify_mode == CERT_NONE {
        Arc::new(ContextVerifier::accept_any(provider))
    } else {
        let roots = roots(spec);
        let webpki = if roots.is_empty() {
            None
        } else {
            let built =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| config_error("CA certificates", e))?;
            Some(built)
        };
        Arc::new(ContextVerifier {
            webpki,
            verify: true,
            check_hostname: spec.check_hostname,
            provider,
        })
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity(spec)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| config_error("load_cert_chain", e))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = spec.alpn.clone();
    config.enable_sni = spec.sni;
    Ok(config)
}

fn server_config(spec: &ContextSpec) -> PyResult<ServerConfig> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(spec)?)
        .map_err(|e| config_error("protocol versions", e))?;
    let builder = if spec.verify_mode == CERT_NONE {
        builder.with_no_client_auth()
    } else {
        let roots = roots(spec);
        if roots.is_empty() {
            return Err(PyValueError::new_err(
                "verify_mode CERT_REQUIRED/CERT_OPTIONAL on a server context needs CA \
                 certificates to verify clients with (load_verify_locations)",
            ));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if spec.verify_mode == CERT_OPTIONAL {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        let verifier = verifier
            .build()
            .map_err(|e| config_error("client certificate verifier", e))?;
        builder.with_client_cert_verifier(verifier)
    };
    let (chain, key) = identity(spec)?.ok_or_else(|| {
        PyValueError::new_err("a server SSLContext needs a certificate chain (load_cert_chain)")
    })?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| config_error("load_cert_chain", e))?;
    config.alpn_protocols = spec.alpn.clone();
    Ok(config)
}

/// A client's server-certificate check as an `SSLContext` configures it:
/// none at all (`CERT_NONE`, as OpenSSL), or the chain against the
/// context's CAs, with the name only if `check_hostname`. Signatures are
/// always checked, so the handshake itself stays sound.
#[derive(Debug)]
struct ContextVerifier {
    /// `None` with no CA certificates: every chain is then untrusted.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    verify: bool,
    check_hostname: bool,
    provider: Arc<CryptoProvider>,
}

impl ContextVerifier {
    fn accept_any(provider: Arc<CryptoProvider>) -> ContextVerifier {
        ContextVerifier {
            webpki: None,
            verify: false,
            check_hostname: false,
            provider,
        }
    }
}

impl ServerCertVerifier for ContextVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.verify {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(webpki) = &self.webpki else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        // webpki checks the chain before the name: a name error means the
        // chain is trusted.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_hostname => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS failure as the `ssl` module raises it: `SSLCertVerificationError`
/// ("certificate verify failed") for a rejected certificate, else
/// `SSLError`; `ValueError` for a configuration problem.
pub(crate) fn tls_error_to_py(error: &TlsError) -> PyErr {
    Python::with_gil(|py| {
        let (class, reason, message) = match error.kind() {
            TlsErrorKind::UnknownIssuer
            | TlsErrorKind::HostnameMismatch
            | TlsErrorKind::BadCertificate => {
                return verify_error(py, error).unwrap_or_else(|e| e);
            }
            TlsErrorKind::Config => return PyValueError::new_err(error.to_string()),
            TlsErrorKind::NotTls => ("SSLError", "WRONG_VERSION_NUMBER", error.to_string()),
            TlsErrorKind::CertificateRequired => (
                "SSLError",
                "TLSV13_ALERT_CERTIFICATE_REQUIRED",
                error.to_string(),
            ),
            TlsErrorKind::NoApplicationProtocol => {
                ("SSLError", "NO_APPLICATION_PROTOCOL", error.to_string())
            }
            _ => ("SSLError", "SSL_ERROR", error.to_string()),
        };
        ssl_exception(py, class, reason, &message).unwrap_or_else(|e| e)
    })
}

/// `ssl.<class>(1, "[SSL: <reason>] <message>")` with `reason` and
/// `library` set as the ssl module sets them.
fn ssl_exception(py: Python<'_>, class: &str, reason: &str, message: &str) -> PyResult<PyErr> {
    Ok(PyErr::from_value(ssl_exception_value(
        py, class, reason, message,
    )?))
}

fn ssl_exception_value<'py>(
    py: Python<'py>,
    class: &str,
    reason: &str,
    message: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let class = py.import("ssl")?.getattr(class)?;
    let exc = class.call1((1, format!("[SSL: {reason}] {message}")))?;
    exc.setattr("reason", reason)?;
    exc.setattr("library", "SSL")?;
    Ok(exc)
}

/// `ssl.SSLCertVerificationError` with OpenSSL's `verify_code` and
/// `verify_message` (which callers and tests match on, e.g. "IP address
/// mismatch, certificate is not valid for '127.0.0.1'."), rustls's own
/// words after them.
fn verify_error(py: Python<'_>, error: &TlsError) -> PyResult<PyErr> {
    let rustls_error =
        std::error::Error::source(error).and_then(|source| source.downcast_ref::<rustls::Error>());
    let (code, verify_message) = match rustls_error {
        Some(rustls::Error::InvalidCertificate(cert)) => openssl_verify_message(cert),
        _ => (0, "certificate rejected".to_owned()),
    };
    let detail = rustls_error.map_or_else(|| error.to_string(), ToString::to_string);
    let message = format!("certificate verify failed: {verify_message} (rustls: {detail})");
    let exc = ssl_exception_value(
        py,
        "SSLCertVerificationError",
        "CERTIFICATE_VERIFY_FAILED",
        &message,
    )?;
    exc.setattr("verify_code", code)?;
    exc.setattr("verify_message", verify_message)?;
    Ok(PyErr::from_value(exc))
}

/// OpenSSL's verify code and message for a rejected certificate.
fn openssl_verify_message(error: &CertificateError) -> (i32, String) {
    match error {
        CertificateError::NotValidForNameContext { expected, .. } => match expected {
            ServerName::IpAddress(ip) => (
                64,
                format!(
                    "IP address mismatch, certificate is not valid for '{}'.",
                    std::net::IpAddr::from(*ip)
                ),
            ),
            other => (
                62,
                format!(
                    "Hostname mismatch, certificate is not valid for '{}'.",
                    other.to_str()
                ),
            ),
        },
        CertificateError::NotValidForName => (
            62,
            "Hostname mismatch, certificate is not valid for the name.".to_owned(),
        ),
        CertificateError::UnknownIssuer => {
            (20, "unable to get local issuer certificate".to_owned())
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            (10, "certificate has expired".to_owned())
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            (9, "certificate is not yet valid".to_owned())
        }
        CertificateError::Revoked => (23, "certificate revoked".to_owned()),
        _ => (0, "certificate rejected".to_owned()),
    }
}

/// The Python exception for an `io::Error` out of a TLS transport, if it
/// is a TLS one: its TLS failure, or (asyncio's) `ConnectionAbortedError`
/// for a handshake that took too long.
pub(crate) fn io_error_to_py(error: &std::io::Error) -> Option<PyErr> {
    if let Some(tls) = TlsError::from_io(error) {
        return Some(tls_error_to_py(tls));
    }
    let text = error.to_string();
    let rest = text.strip_prefix("TLS handshake is taking longer")?;
    Some(PyConnectionAbortedError::new_err(format!(
        "SSL handshake is taking longer{rest}"
    )))
}

/// What `get_extra_info` needs about a TLS transport, as a dict (`None`
/// for a plain one or before the handshake): `version`, `cipher` (IANA
/// name), `alpn` (bytes or None), `server_name`, `server_side`,
/// `peer_certs` (DER, end entity first).
pub(crate) fn info_to_py(py: Python<'_>, transport: &Transport) -> PyResult<Option<Py<PyAny>>> {
    let Some(info) = transport.tls_info() else {
        return Ok(None);
    };
    let dict = PyDict::new(py);
    dict.set_item("version", info.protocol_version)?;
    dict.set_item("cipher", info.cipher_suite)?;
    dict.set_item("alpn", info.alpn_protocol.map(|a| PyBytes::new(py, &a)))?;
    dict.set_item("server_name", info.server_name)?;
    dict.set_item("server_side", info.server_side)?;
    let certs = info.peer_certificates.iter().map(|c| PyBytes::new(py, c));
    dict.set_item("peer_certs", PyList::new(py, certs)?)?;
    Ok(Some(dict.into_any().unbind()))
}

/// `loop.start_tls`: upgrades `transport`'s connection; completes `future`
/// with the new Python transport (made by `wrap`), whose protocol is
/// `protocol`. `protocol.connection_made` is not called again. The old
/// transport now carries the TLS records and must not be used.
#[pyfunction]
#[pyo3(signature = (future, core, transport, protocol, wrap, tls, *, server_hostname = None,
    ssl_handshake_timeout = None, ssl_shutdown_timeout = None))]
#[allow(clippy::too_many_arguments)] // asyncio's parameters, one by one
pub(crate) fn start_tls(
    py: Python<'_>,
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    transport: PyRef<'_, StreamTransport>,
    protocol: Py<PyAny>,
    wrap: Py<PyAny>,
    tls: PyRef<'_, PyTlsConfig>,
    server_hostname: Option<String>,
    ssl_handshake_timeout: Option<f64>,
    ssl_shutdown_timeout: Option<f64>,
) -> PyResult<Pending> {
    let config =
        tls.for_connection(server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)?;
    let home = CoreLoop::home(core)?;
    let py_loop = core.clone().into_any().unbind();
    let handle = ProtocolHandle::new(PyProtocol::for_protocol(
        py,
        protocol,
        (&py_loop, &home.remote),
        &wrap,
    )?);
    let raw = transport.state()?.rust().clone();
    let mut upgrade = Box::pin(evloop_tls::start_tls(
        &home.event_loop,
        &raw,
        AnyProtocol::plain(&handle),
        config,
    ));
    complete_with(&home, future, async move {
        // asyncio resumes reading once the TLS protocol is in place (callers
        // pause it first, so that no ciphertext reaches their protocol):
        // start_tls's first poll puts it in place.
        let mut resumed = false;
        let upgraded = std::future::poll_fn(|cx| {
            let poll = upgrade.as_mut().poll(cx);
            if !std::mem::replace(&mut resumed, true) && !raw.is_closing() {
                raw.resume_reading();
            }
            poll
        });
        let transport = upgraded.await.map_err(to_py)?;
        Python::with_gil(|py| handle.with(|p| p.adopt(py, transport)).map_err(to_py)?)
    })
}

/// The `_core` names of this module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTlsConfig>()?;
    m.add_function(wrap_pyfunction!(tls_config, m)?)?;
    m.add_function(wrap_pyfunction!(start_tls, m)?)?;
    Ok(())
}
