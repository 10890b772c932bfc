//! Unix datagram endpoints (asyncio's `create_datagram_endpoint` with
//! `family=AF_UNIX`, docs/behaviour.md 5.6): filesystem and Linux abstract (`\0name`)
//! addresses over the shared [`DatagramTransport`].
//!
//! A stale socket file at the local path is removed before binding, but only
//! if it is a socket: a regular file there makes the bind fail
//! with `EADDRINUSE`. Like asyncio, the endpoint does not remove its socket
//! file on close. A receiver's `datagram_received` gets the sender's address:
//! [`Address::UnixPath`], [`Address::UnixAbstract`], or
//! [`Address::UnixUnnamed`] for a sender that never bound.
//!
//! [`Address::UnixPath`]: crate::Address::UnixPath
//! [`Address::UnixAbstract`]: crate::Address::UnixAbstract
//! [`Address::UnixUnnamed`]: crate::Address::UnixUnnamed

use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use evloop_core::{Error, EventLoop};
use rustix::fs::FileType;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::datagram::{DatagramFamily, DatagramTransport};
use crate::protocol::{DatagramProtocol, ProtocolHandle};
use crate::udp::start_endpoint;

/// Opens a unix datagram endpoint, bound to `local_path` and connected to
/// `remote_path` when given (either may be `None`; with neither, the socket
/// is unbound and unconnected and sends with explicit addresses).
///
/// A path starting with a NUL byte (`"\0name"`) is a Linux abstract address.
/// As with UDP, the protocol's `connection_made` runs and reading starts
/// before the future completes; dropping the future earlier aborts the
/// endpoint.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty or too-long path;
/// [`Error::Io`] with the OS errno if the socket cannot be made, bound
/// (`EADDRINUSE` when a non-socket file is in the way) or connected
/// (`ENOENT`/`ECONNREFUSED` when nobody is bound at `remote_path`).
pub fn create_unix_datagram_endpoint<P: DatagramProtocol>(
    lp: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    local_path: Option<&Path>,
    remote_path: Option<&Path>,
) -> impl Future<Output = Result<(DatagramTransport, ProtocolHandle<P>), Error>> + 'static {
    let lp = lp.clone();
    let local: Option<PathBuf> = local_path.map(Path::to_path_buf);
    let remote: Option<PathBuf> = remote_path.map(Path::to_path_buf);
    async move {
        let fd = open_socket(local.as_deref(), remote.as_deref())?;
        start_endpoint(&lp, fd, DatagramFamily::Unix, factory).await
    }
}

fn open_socket(local: Option<&Path>, remote: Option<&Path>) -> Result<std::os::fd::OwnedFd, Error> {
    let local_addr = local.map(unix_address).transpose()?;
    let remote_addr = remote.map(unix_address).transpose()?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::Io(e.into()))?;
    if let (Some(path), Some(addr)) = (local, &local_addr) {
        if !is_abstract(path) {
            remove_stale_socket(path);
        }
        rustix::net::bind(&fd, addr).map_err(|e| Error::Io(e.into()))?;
    }
    if let Some(addr) = &remote_addr {
        rustix::net::connect(&fd, addr).map_err(|e| Error::Io(e.into()))?;
    }
    Ok(fd)
}

fn is_abstract(path: &Path) -> bool {
    path.as_os_str().as_bytes().first() == Some(&0)
}

/// The unix address for `path`: a leading NUL byte makes it abstract.
fn unix_address(path: &Path) -> Result<SocketAddrUnix, Error> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid_argument("unix path: must not be empty"));
    }
    let result = if let Some(name) = bytes.strip_prefix(b"\0") {
        abstract_address(name)
    } else {
        SocketAddrUnix::new(path)
    };
    result.map_err(|e| {
        Error::invalid_argument(format!(
            "unix path {}: {}",
            path.display(),
            io::Error::from(e)
        ))
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> rustix::io::Result<SocketAddrUnix> {
    SocketAddrUnix::new_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> rustix::io::Result<SocketAddrUnix> {
    Err(rustix::io::Errno::NOSYS)
}

/// Removes a leftover socket file at `path` (only a socket: anything else
/// is left for the bind to fail on).
fn remove_stale_socket(path: &Path) {
    match rustix::fs::lstat(path) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Socket => {
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(target: "evloop::transports", path = %path.display(), %error,
                    "Unable to check or remove stale UNIX socket");
            }
        }
        Ok(_) | Err(rustix::io::Errno::NOENT) => {}
        Err(error) => {
            tracing::warn!(target: "evloop::transports", path = %path.display(), error = %io::Error::from(error),
                "Unable to check or remove stale UNIX socket");
        }
    }
}
