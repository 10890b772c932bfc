//! The one error type of the loop, mapping asyncio's exceptions to Rust.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Everything a loop operation can fail with (asyncio's exceptions, docs/behaviour.md 0).
///
/// OS errors keep their [`io::ErrorKind`] and errno in [`Error::Io`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The loop is closed (asyncio: `RuntimeError('Event loop is closed')`).
    #[doc(alias = "RuntimeError")]
    Closed,
    /// `run_*` was called on a loop that is already running.
    #[doc(alias = "RuntimeError")]
    AlreadyRunning,
    /// Another loop is running on this thread.
    AnotherLoopRunning,
    /// `close()` was called on a running loop.
    #[doc(alias = "RuntimeError")]
    Running,
    /// An operation needs a running loop and none is running.
    NotRunning,
    /// The loop stopped before the future given to `run_until_complete` completed.
    #[doc(alias = "RuntimeError")]
    StoppedBeforeComplete,
    /// The future or task was cancelled (asyncio: `CancelledError(msg)`),
    /// with the message given to `cancel_with`, if any. Match it as
    /// `Error::Cancelled(_)`, or test with [`Error::is_cancelled`].
    #[doc(alias = "CancelledError")]
    Cancelled(Option<String>),
    /// A deadline passed before the operation completed (asyncio's
    /// `TimeoutError` from `wait_for`/`timeout`): what `EventLoop::timeout`
    /// returns. OS-level timeouts (a socket's `ETIMEDOUT`) stay
    /// [`Error::Io`].
    #[doc(alias = "TimeoutError")]
    TimedOut,
    /// A future was used in a state that does not allow it (asyncio: `InvalidStateError`).
    #[doc(alias = "InvalidStateError")]
    InvalidState(&'static str),
    /// A bad argument, naming it (asyncio: `ValueError`).
    #[doc(alias = "ValueError")]
    InvalidArgument(Cow<'static, str>),
    /// `SIGKILL` or `SIGSTOP` cannot have a handler.
    UncatchableSignal(i32),
    /// The fd is owned by a transport and cannot be watched directly.
    FdInUse(RawFd),
    /// A callback, task or future panicked; the payload's message.
    Panic(String),
    /// An operating-system error.
    #[doc(alias = "OSError")]
    Io(io::Error),
    /// A TLS failure (handshake, certificate, protocol, configuration); the
    /// TLS library's own error is its [`source`](std::error::Error::source).
    #[doc(alias("SSLError", "SSLCertVerificationError"))]
    Tls(TlsError),
}

/// What kind of TLS failure a [`TlsError`] is, for code that must tell
/// them apart (an unknown CA from a wrong host name, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The peer's certificate chains to no trusted root (unknown CA).
    UnknownIssuer,
    /// The certificate is valid but not for the name (or IP) we connected to.
    HostnameMismatch,
    /// The certificate is expired, not yet valid, revoked, malformed or
    /// otherwise rejected.
    BadCertificate,
    /// The server requires a client certificate and none was sent.
    CertificateRequired,
    /// No application protocol (ALPN) both sides accept.
    NoApplicationProtocol,
    /// The peer does not speak TLS (plaintext, random bytes, an oversized or
    /// corrupt record).
    NotTls,
    /// The peer sent a fatal alert.
    AlertReceived,
    /// The peer broke the TLS protocol in another way (including a
    /// renegotiation attempt).
    Protocol,
    /// A configuration problem: malformed PEM, no certificate, an
    /// unsupported key, a key that does not match the certificate.
    Config,
}

/// A TLS failure: its [`TlsErrorKind`], a message, and the TLS library's
/// error as its [`source`](std::error::Error::source).
#[derive(Clone, Debug)]
pub struct TlsError {
    kind: TlsErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl TlsError {
    /// A TLS error of `kind` with `message`, caused by `source` if any.
    pub fn new(
        kind: TlsErrorKind,
        message: impl Into<String>,
        source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> TlsError {
        TlsError {
            kind,
            message: message.into(),
            source,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// The `TlsError` inside an [`io::Error`] (how a protocol's
    /// `connection_lost` receives TLS failures), if there is one.
    pub fn from_io(error: &io::Error) -> Option<&TlsError> {
        error.get_ref()?.downcast_ref::<TlsError>()
    }

    /// This error as an [`io::Error`] (`InvalidData`), for `connection_lost`.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An OS error with a message saying what was being done (the address a
/// bind failed on, say), keeping the OS error, its kind and its errno: the
/// payload of the [`io::Error`] that [`OsErrorContext::wrap`] returns.
/// [`Error::raw_os_error`] and [`Error::os_context`] look through it.
#[derive(Debug)]
pub struct OsErrorContext {
    message: String,
    source: io::Error,
}

impl OsErrorContext {
    /// `error` with `message` in front, as an [`io::Error`] of the same
    /// kind whose payload is the context (the errno stays reachable).
    pub fn wrap(error: io::Error, message: impl Into<String>) -> io::Error {
        let kind = error.kind();
        let context = OsErrorContext {
            message: message.into(),
            source: error,
        };
        io::Error::new(kind, context)
    }

    /// The `OsErrorContext` an [`io::Error`] carries, if any.
    pub fn from_io(error: &io::Error) -> Option<&OsErrorContext> {
        error.get_ref()?.downcast_ref::<OsErrorContext>()
    }

    /// What was being done, without the OS error's text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The wrapped OS error.
    pub fn os_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for OsErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.source)
    }
}

impl std::error::Error for OsErrorContext {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The errno behind `error`: its own, or that of the `io::Error` it wraps
/// (an [`OsErrorContext`], or any error whose source chain holds one).
fn errno_of(error: &io::Error) -> Option<i32> {
    if let Some(errno) = error.raw_os_error() {
        return Some(errno);
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(inner) = next {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return errno_of(io);
        }
        if let Some(context) = inner.downcast_ref::<OsErrorContext>() {
            return errno_of(&context.source);
        }
        next = inner.source();
    }
    None
}

impl Error {
    /// Builds [`Error::InvalidArgument`] from a message naming the argument.
    pub fn invalid_argument(message: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidArgument(message.into())
    }

    /// Builds [`Error::Panic`] from a caught panic payload.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        Error::Panic(panic_message(payload))
    }

    /// True for [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed)
    }

    /// [`Error::Cancelled`] without a message (a plain `cancel()`).
    pub fn cancelled() -> Self {
        Error::Cancelled(None)
    }

    /// True for [`Error::Cancelled`], with or without a message.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled(_))
    }

    /// The message of an [`Error::Cancelled`] given to `cancel_with`.
    pub fn cancel_message(&self) -> Option<&str> {
        match self {
            Error::Cancelled(message) => message.as_deref(),
            _ => None,
        }
    }

    /// True for [`Error::TimedOut`].
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Error::TimedOut)
    }

    /// The [`io::ErrorKind`] of an [`Error::Io`], `None` otherwise.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// The errno of an [`Error::Io`] (asyncio's `OSError.errno`), also when
    /// the OS error is wrapped with a message ([`OsErrorContext`]); `None`
    /// for other errors and for I/O errors that no errno caused.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io(e) => errno_of(e),
            _ => None,
        }
    }

    /// The [`io::Error`] of an [`Error::Io`].
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }

    /// What was being done when the OS error of an [`Error::Io`] happened
    /// (the [`OsErrorContext`] message, such as "error while attempting to
    /// bind on address …"), without the OS error's own text.
    pub fn os_context(&self) -> Option<&str> {
        OsErrorContext::from_io(self.io_error()?).map(OsErrorContext::message)
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is opaque).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

impl Clone for Error {
    /// Clones keep the kind, and for OS errors the errno and kind (the
    /// message of a custom `io::Error` is kept as text).
    fn clone(&self) -> Self {
        match self {
            Error::Closed => Error::Closed,
            Error::AlreadyRunning => Error::AlreadyRunning,
            Error::AnotherLoopRunning => Error::AnotherLoopRunning,
            Error::Running => Error::Running,
            Error::NotRunning => Error::NotRunning,
            Error::StoppedBeforeComplete => Error::StoppedBeforeComplete,
            Error::Cancelled(message) => Error::Cancelled(message.clone()),
            Error::TimedOut => Error::TimedOut,
            Error::InvalidState(s) => Error::InvalidState(s),
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::UncatchableSignal(n) => Error::UncatchableSignal(*n),
            Error::FdInUse(fd) => Error::FdInUse(*fd),
            Error::Panic(s) => Error::Panic(s.clone()),
            Error::Io(e) => Error::Io(clone_io_error(e)),
            Error::Tls(e) => Error::Tls(e.clone()),
        }
    }
}

fn clone_io_error(e: &io::Error) -> io::Error {
    if let Some(tls) = TlsError::from_io(e) {
        return io::Error::new(e.kind(), tls.clone());
    }
    if let Some(context) = OsErrorContext::from_io(e) {
        // Keeps the errno and the message apart, as the original does.
        return OsErrorContext::wrap(clone_io_error(&context.source), context.message.clone());
    }
    match e.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("event loop is closed"),
            Error::AlreadyRunning => f.write_str("this event loop is already running"),
            Error::AnotherLoopRunning => {
                f.write_str("cannot run the event loop while another loop is running")
            }
            Error::Running => f.write_str("cannot close a running event loop"),
            Error::NotRunning => f.write_str("no running event loop"),
            Error::StoppedBeforeComplete => {
                f.write_str("event loop stopped before future completed")
            }
            Error::Cancelled(None) => f.write_str("cancelled"),
            Error::Cancelled(Some(message)) => write!(f, "cancelled: {message}"),
            Error::TimedOut => f.write_str("timed out"),
            Error::InvalidState(s) => write!(f, "invalid state: {s}"),
            Error::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            Error::UncatchableSignal(n) => write!(f, "sig {n} cannot be caught"),
            Error::FdInUse(fd) => write!(f, "file descriptor {fd} is used by a transport"),
            Error::Panic(s) => write!(f, "panicked: {s}"),
            Error::Io(e) => e.fmt(f),
            Error::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// [`Error::Io`], or [`Error::Tls`] for an `io::Error` that carries a
    /// [`TlsError`] (as TLS transports hand to `connection_lost`).
    fn from(e: io::Error) -> Self {
        match TlsError::from_io(&e) {
            Some(tls) => Error::Tls(tls.clone()),
            None => Error::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_os_error_reads_a_plain_os_error() {
        let error = Error::Io(io::Error::from_raw_os_error(errno(
            rustix::io::Errno::CONNREFUSED,
        )));
        assert_eq!(
            error.raw_os_error(),
            Some(errno(rustix::io::Errno::CONNREFUSED))
        );
        assert_eq!(error.os_context(), None);
        assert_eq!(Error::Closed.raw_os_error(), None);
        assert_eq!(Error::Closed.io_error().map(io::Error::kind), None);
    }

    #[test]
    fn raw_os_error_looks_through_a_context() {
        let os = io::Error::from_raw_os_error(errno(rustix::io::Errno::ADDRINUSE));
        let kind = os.kind();
        let error = Error::Io(OsErrorContext::wrap(os, "error while attempting to bind"));
        assert_eq!(
            error.raw_os_error(),
            Some(errno(rustix::io::Errno::ADDRINUSE))
        );
        assert_eq!(error.io_kind(), Some(kind));
        assert_eq!(error.os_context(), Some("error while attempting to bind"));
        assert!(error
            .to_string()
            .starts_with("error while attempting to bind: "));
        // A clone keeps both.
        let clone = error.clone();
        assert_eq!(
            clone.raw_os_error(),
            Some(errno(rustix::io::Errno::ADDRINUSE))
        );
        assert_eq!(clone.os_context(), Some("error while attempting to bind"));
        assert_eq!(clone.to_string(), error.to_string());
    }

    #[test]
    fn raw_os_error_follows_a_source_chain() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "outer: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let inner = io::Error::from_raw_os_error(errno(rustix::io::Errno::PIPE));
        let error = Error::Io(io::Error::new(io::ErrorKind::BrokenPipe, Outer(inner)));
        assert_eq!(error.raw_os_error(), Some(errno(rustix::io::Errno::PIPE)));
        assert_eq!(error.os_context(), None);
    }

    #[test]
    fn errors_without_an_errno_have_none() {
        let error = Error::Io(io::Error::other("no errno here"));
        assert_eq!(error.raw_os_error(), None);
        let simple = Error::Io(io::ErrorKind::BrokenPipe.into());
        assert_eq!(simple.raw_os_error(), None);
        assert_eq!(simple.io_kind(), Some(io::ErrorKind::BrokenPipe));
    }

    fn errno(errno: rustix::io::Errno) -> i32 {
        errno.raw_os_error()
    }
}
