//! Socket addresses of every kind a transport can have.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use rustix::net::{AddressFamily, SocketAddrAny, SocketAddrUnix};

/// The address of a socket: internet or unix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// IPv4 or IPv6.
    Inet(SocketAddr),
    /// A unix socket bound to a filesystem path.
    UnixPath(PathBuf),
    /// A Linux abstract unix socket (the name without its leading NUL).
    UnixAbstract(Vec<u8>),
    /// An unbound unix socket.
    UnixUnnamed,
}

impl Address {
    /// The internet address, if this is one.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(addr) => Some(*addr),
            _ => None,
        }
    }

    pub(crate) fn from_any(addr: &SocketAddrAny) -> Option<Address> {
        match addr.address_family() {
            AddressFamily::INET | AddressFamily::INET6 => {
                SocketAddr::try_from(addr.clone()).ok().map(Address::Inet)
            }
            AddressFamily::UNIX => {
                let unix = SocketAddrUnix::try_from(addr.clone()).ok()?;
                Some(Self::from_unix(&unix))
            }
            _ => None,
        }
    }

    pub(crate) fn from_unix(unix: &SocketAddrUnix) -> Address {
        if let Some(path) = unix.path() {
            let bytes = path.to_bytes();
            return Address::UnixPath(PathBuf::from(std::ffi::OsStr::from_bytes_compat(bytes)));
        }
        // An unnamed socket's address is just its family; rustix reports
        // that as an empty abstract name.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(name) = unix.abstract_name().filter(|name| !name.is_empty()) {
            return Address::UnixAbstract(name.to_vec());
        }
        Address::UnixUnnamed
    }
}

/// `OsStr::from_bytes` lives behind a unix-only trait; one place to import it.
trait FromBytesCompat {
    fn from_bytes_compat(bytes: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(bytes: &[u8]) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(bytes)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(addr) => addr.fmt(f),
            Address::UnixPath(path) => path.display().fmt(f),
            Address::UnixAbstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
            Address::UnixUnnamed => f.write_str("<unnamed>"),
        }
    }
}
