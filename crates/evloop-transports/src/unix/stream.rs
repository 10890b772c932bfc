//! Unix stream sockets (asyncio's `create_unix_connection` and
//! `create_unix_server`): filesystem and abstract (`\0name`) addresses,
//! stale socket files removed only when they are sockets, our own file
//! removed on close only while its inode is still ours.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use evloop_core::{Error, EventLoop};
use rustix::fs::FileType;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};

use crate::address::Address;
use crate::layer::Layer;
use crate::protocol::{Protocol, ProtocolHandle};
use crate::server::{serve, Listener, OnAccept, Server, SocketFile};
use crate::socket;
use crate::tcp::{establish, layered, start_stream};
use crate::transport::{plain_sink, FdKind, StreamSpec, Transport};

/// `create_unix_connection`'s keyword arguments.
///
/// Built from `Default` with one setter per field, so later options are
/// additive; the fields stay public to read (and to set on a `let mut`).
///
/// ```
/// use evloop_transports::UnixConnectOptions;
///
/// let (ours, _theirs) = std::os::unix::net::UnixStream::pair()?;
/// let options = UnixConnectOptions::default().sock(ours.into());
/// assert!(options.sock.is_some() && options.tls.is_none());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct UnixConnectOptions {
    /// An already-connected unix stream socket; the path must then be empty.
    pub sock: Option<OwnedFd>,
    /// Run TLS (or another [`Layer`]) over the connection (asyncio's
    /// `ssl=`): `evloop_tls::ClientTls` converts into one. The call then
    /// completes after the handshake and the protocol sees plaintext.
    #[doc(alias = "ssl")]
    pub tls: Option<Layer>,
}

impl UnixConnectOptions {
    /// Uses `sock`, an already-connected unix stream socket, instead of a
    /// path.
    #[must_use = "returns the changed options"]
    pub fn sock(mut self, sock: OwnedFd) -> Self {
        self.sock = Some(sock);
        self
    }

    /// Runs `tls` (an `evloop_tls::ClientTls`, or another [`Layer`]) over
    /// the connection.
    #[must_use = "returns the changed options"]
    #[doc(alias = "ssl")]
    pub fn tls(mut self, tls: impl Into<Layer>) -> Self {
        self.tls = Some(tls.into());
        self
    }
}

/// `create_unix_server`'s keyword arguments.
///
/// Built from `Default` with one setter per field, so later options are
/// additive; the fields stay public to read (and to set on a `let mut`).
///
/// ```
/// use evloop_transports::UnixServerOptions;
///
/// let options = UnixServerOptions::default().backlog(16).cleanup_socket(false);
/// assert!(options.start_serving);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct UnixServerOptions {
    /// An already-bound unix stream socket to serve instead of a path.
    pub sock: Option<OwnedFd>,
    /// `listen` backlog, and the most connections accepted per wake-up (100).
    pub backlog: u32,
    /// Start accepting at once (true) or at [`Server::start_serving`].
    pub start_serving: bool,
    /// Remove the socket file on close, if it is still ours (true).
    pub cleanup_socket: bool,
    /// Run TLS (or another [`Layer`]) over every accepted connection.
    #[doc(alias = "ssl")]
    pub tls: Option<Layer>,
}

impl Default for UnixServerOptions {
    fn default() -> Self {
        UnixServerOptions {
            sock: None,
            backlog: 100,
            start_serving: true,
            cleanup_socket: true,
            tls: None,
        }
    }
}

impl UnixServerOptions {
    /// Serves `sock`, an already-bound unix stream socket, instead of a path.
    #[must_use = "returns the changed options"]
    pub fn sock(mut self, sock: OwnedFd) -> Self {
        self.sock = Some(sock);
        self
    }

    /// Sets the `listen` backlog (and the most accepts per wake-up).
    #[must_use = "returns the changed options"]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Starts accepting at once (`true`) or at [`Server::start_serving`].
    #[must_use = "returns the changed options"]
    pub fn start_serving(mut self, on: bool) -> Self {
        self.start_serving = on;
        self
    }

    /// Removes the socket file on close (if still ours), or leaves it.
    #[must_use = "returns the changed options"]
    pub fn cleanup_socket(mut self, on: bool) -> Self {
        self.cleanup_socket = on;
        self
    }

    /// Runs `tls` (an `evloop_tls::ServerTls`, or another [`Layer`]) over
    /// every accepted connection.
    #[must_use = "returns the changed options"]
    #[doc(alias = "ssl")]
    pub fn tls(mut self, tls: impl Into<Layer>) -> Self {
        self.tls = Some(tls.into());
        self
    }
}

/// The unix address for `path`: a leading NUL byte makes it abstract.
fn unix_address(path: &Path) -> Result<SocketAddrUnix, Error> {
    let bytes = path.as_os_str().as_bytes();
    let made = match bytes.split_first() {
        Some((0, name)) => SocketAddrUnix::new_abstract_name(name),
        _ => SocketAddrUnix::new(path),
    };
    made.map_err(|errno| {
        Error::invalid_argument(format!(
            "path: not a valid unix socket address: {} ({})",
            path.display(),
            io::Error::from(errno)
        ))
    })
}

fn is_abstract(path: &Path) -> bool {
    path.as_os_str().as_bytes().first() == Some(&0)
}

/// Connects to the unix stream socket at `path` (or wraps `options.sock`,
/// with an empty `path`) and runs a [`Protocol`] from `factory` over it.
///
/// # Errors
/// [`Error::InvalidArgument`] for both a path and a sock, for neither, for
/// an invalid path, or a non-stream sock; the connect error (`NotFound` for
/// a missing path, `ConnectionRefused` with no listener).
pub fn create_unix_connection<P: Protocol>(
    event_loop: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    path: impl AsRef<Path>,
    options: UnixConnectOptions,
) -> impl Future<Output = Result<(Transport, ProtocolHandle<P>), Error>> + 'static {
    let event_loop = event_loop.clone();
    let path = path.as_ref().to_path_buf();
    async move {
        options.tls.as_ref().map_or(Ok(()), Layer::validate)?;
        let layer = layered(options.tls, None);
        let fd = match options.sock {
            Some(sock) => {
                if !path.as_os_str().is_empty() {
                    return Err(Error::invalid_argument(
                        "path and sock can not be specified at the same time",
                    ));
                }
                socket::check_stream(&sock)?;
                sock
            }
            None => {
                if path.as_os_str().is_empty() {
                    return Err(Error::invalid_argument("no path and sock were specified"));
                }
                let addr = unix_address(&path)?;
                let fd = socket::new_socket(AddressFamily::UNIX, SocketType::STREAM)?;
                socket::connect(&event_loop, &fd, &addr).await?;
                fd
            }
        };
        establish(&event_loop, fd, layer, move || plain_sink(factory())).await
    }
}

/// Listens on the unix socket `path` (or serves `options.sock`) and runs a
/// [`Protocol`] from `factory` for each accepted connection.
///
/// A socket file already at `path` is removed first (a stale socket); any
/// other file is left alone and the bind fails with `AddrInUse`.
///
/// # Errors
/// [`Error::InvalidArgument`] for both a path and a sock, for neither, or a
/// sock that is not a unix stream socket; bind errors as [`Error::Io`]
/// (kind and errno kept, the path named).
pub fn create_unix_server<P: Protocol>(
    event_loop: &EventLoop,
    factory: impl Fn() -> P + 'static,
    path: Option<&Path>,
    options: UnixServerOptions,
) -> impl Future<Output = Result<Server, Error>> + 'static {
    let event_loop = event_loop.clone();
    let path = path.map(Path::to_path_buf);
    async move {
        let tls = options.tls;
        tls.as_ref().map_or(Ok(()), Layer::validate)?;
        let listener = unix_listener(path, options.sock, options.cleanup_socket, options.backlog)?;
        let lp = event_loop.clone();
        let on_accept: OnAccept = Rc::new(move |fd, peername, sockname| {
            let (sink, _handle) = plain_sink(factory());
            let spec = StreamSpec {
                fd,
                kind: FdKind::Socket,
                peername: peername.or(Some(Address::UnixUnnamed)),
                sockname,
            };
            start_stream(&lp, spec, sink, layered(tls.clone(), None), None)
        });
        serve(
            &event_loop,
            vec![listener],
            on_accept,
            options.start_serving,
        )
    }
}

/// Binds (not yet listening) the unix listener for `path` or `sock`.
pub(crate) fn unix_listener(
    path: Option<PathBuf>,
    sock: Option<OwnedFd>,
    cleanup: bool,
    backlog: u32,
) -> Result<Listener, Error> {
    match (path, sock) {
        (Some(_), Some(_)) => Err(Error::invalid_argument(
            "path and sock can not be specified at the same time",
        )),
        (None, None) => Err(Error::invalid_argument(
            "path was not specified, and no sock specified",
        )),
        (None, Some(sock)) => {
            let is_unix = rustix::net::sockopt::socket_domain(&sock)
                .is_ok_and(|family| family == AddressFamily::UNIX);
            if !is_unix || socket::check_stream(&sock).is_err() {
                return Err(Error::invalid_argument(
                    "sock: a unix domain stream socket was expected",
                ));
            }
            let file = match socket::sockname(&sock) {
                Some(Address::UnixPath(path)) if cleanup => SocketFile::record(path),
                _ => None,
            };
            Ok(Listener {
                fd: sock,
                backlog,
                cleanup: file,
            })
        }
        (Some(path), None) => {
            let addr = unix_address(&path)?;
            if !is_abstract(&path) {
                remove_stale_socket(&path);
            }
            let fd = socket::new_socket(AddressFamily::UNIX, SocketType::STREAM)?;
            if let Err(errno) = rustix::net::bind(&fd, &addr) {
                let error = io::Error::from(errno);
                let message = if error.kind() == io::ErrorKind::AddrInUse {
                    format!("Address '{}' is already in use", path.display())
                } else {
                    format!(
                        "error while attempting to bind on address '{}'",
                        path.display()
                    )
                };
                return Err(Error::Io(socket::with_context(error, message)));
            }
            let file = if cleanup && !is_abstract(&path) {
                SocketFile::record(path)
            } else {
                None
            };
            Ok(Listener {
                fd,
                backlog,
                cleanup: file,
            })
        }
    }
}

/// Removes a socket file left at `path` by an earlier server; anything else
/// at the path is left alone (the bind then fails with `AddrInUse`).
fn remove_stale_socket(path: &Path) {
    match rustix::fs::stat(path) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Socket => {
            if let Err(error) = rustix::fs::unlink(path) {
                tracing::warn!(target: "evloop::transports", path = %path.display(), %error, "Unable to check or remove stale UNIX socket");
            }
        }
        Ok(_) | Err(rustix::io::Errno::NOENT) => {}
        Err(error) => {
            tracing::warn!(target: "evloop::transports", path = %path.display(), %error, "Unable to check or remove stale UNIX socket");
        }
    }
}
