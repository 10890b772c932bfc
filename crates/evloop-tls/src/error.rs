//! rustls's errors as evloop's: each becomes an [`Error::Tls`] whose
//! [`TlsErrorKind`] says what kind of failure it is, with the rustls error
//! as its source.

use std::sync::Arc;

use evloop_core::{Error, TlsError, TlsErrorKind};
use rustls::{AlertDescription, CertificateError, InconsistentKeys};

/// The [`TlsError`] for a rustls error.
pub(crate) fn tls_error(error: rustls::Error) -> TlsError {
    let kind = kind_of(&error);
    let message = match kind {
        TlsErrorKind::UnknownIssuer | TlsErrorKind::HostnameMismatch => {
            format!("certificate verify failed: {error}")
        }
        TlsErrorKind::NotTls => format!("the peer does not speak TLS: {error}"),
        TlsErrorKind::Config => config_message(&error),
        _ => error.to_string(),
    };
    TlsError::new(kind, message, Some(Arc::new(error)))
}

/// [`tls_error`] as an [`Error`].
pub(crate) fn rustls_error(error: rustls::Error) -> Error {
    Error::Tls(tls_error(error))
}

fn kind_of(error: &rustls::Error) -> TlsErrorKind {
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(CertificateError::UnknownIssuer) => TlsErrorKind::UnknownIssuer,
        E::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TlsErrorKind::HostnameMismatch,
        E::InvalidCertificate(_) => TlsErrorKind::BadCertificate,
        E::NoCertificatesPresented | E::AlertReceived(AlertDescription::CertificateRequired) => {
            TlsErrorKind::CertificateRequired
        }
        E::NoApplicationProtocol | E::AlertReceived(AlertDescription::NoApplicationProtocol) => {
            TlsErrorKind::NoApplicationProtocol
        }
        E::AlertReceived(_) => TlsErrorKind::AlertReceived,
        E::InvalidMessage(_) | E::PeerSentOversizedRecord | E::DecryptError => TlsErrorKind::NotTls,
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            TlsErrorKind::Protocol
        }
        E::InconsistentKeys(_) | E::General(_) | E::BadMaxFragmentSize => TlsErrorKind::Config,
        _ => TlsErrorKind::Protocol,
    }
}

fn config_message(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "the private key does not match the certificate".to_owned()
        }
        rustls::Error::General(why) => format!("unsupported or invalid private key: {why}"),
        other => other.to_string(),
    }
}
