//! Address families ([`Family`], asyncio's `family=`) and the socket
//! constants the transports hand to a resolver, taken from rustix and libc
//! here, once: no other file spells an `AF_*`, `SOCK_*` or `AI_*` value.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use rustix::net::{AddressFamily, SocketType};

/// `SOCK_STREAM` as `getaddrinfo` hints spell it.
pub(crate) const SOCK_STREAM: i32 = SocketType::STREAM.as_raw() as i32;
/// `SOCK_DGRAM` as `getaddrinfo` hints spell it.
pub(crate) const SOCK_DGRAM: i32 = SocketType::DGRAM.as_raw() as i32;
/// `AI_PASSIVE`: resolve for `bind` (a missing host is the wildcard).
pub(crate) const AI_PASSIVE: i32 = libc::AI_PASSIVE;

/// An address family: which kind of address a call may use (asyncio's
/// `family=` keyword, `socket.AF_*`).
///
/// # Examples
///
/// ```
/// use evloop_transports::{ConnectOptions, Family};
///
/// let options = ConnectOptions::default().family(Family::Inet6);
/// assert_eq!(options.family, Family::Inet6);
/// assert_eq!(Family::from_raw(Family::Inet.as_raw()), Some(Family::Inet));
/// assert_eq!(Family::default(), Family::Unspec);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[doc(alias("AF_INET", "AF_INET6", "AF_UNIX", "AF_UNSPEC", "AddressFamily"))]
pub enum Family {
    /// Any family (`AF_UNSPEC`, asyncio's `family=0`): the default.
    #[default]
    Unspec,
    /// IPv4 (`AF_INET`).
    Inet,
    /// IPv6 (`AF_INET6`).
    Inet6,
    /// Unix sockets (`AF_UNIX`).
    Unix,
}

impl Family {
    /// The family of an internet address.
    pub fn of(addr: &SocketAddr) -> Family {
        match addr {
            SocketAddr::V4(_) => Family::Inet,
            SocketAddr::V6(_) => Family::Inet6,
        }
    }

    /// The platform's `AF_*` value (as `getaddrinfo` and libc take it).
    pub fn as_raw(self) -> i32 {
        i32::from(self.address_family().as_raw())
    }

    /// The family with the platform's `AF_*` value `raw`, if it is one of
    /// these four.
    pub fn from_raw(raw: i32) -> Option<Family> {
        [Family::Unspec, Family::Inet, Family::Inet6, Family::Unix]
            .into_iter()
            .find(|family| family.as_raw() == raw)
    }

    /// True for [`Family::Unspec`] and for the family of `ip`.
    pub(crate) fn admits(self, ip: &IpAddr) -> bool {
        match self {
            Family::Unspec => true,
            Family::Inet => ip.is_ipv4(),
            Family::Inet6 => ip.is_ipv6(),
            Family::Unix => false,
        }
    }

    fn address_family(self) -> AddressFamily {
        match self {
            Family::Unspec => AddressFamily::UNSPEC,
            Family::Inet => AddressFamily::INET,
            Family::Inet6 => AddressFamily::INET6,
            Family::Unix => AddressFamily::UNIX,
        }
    }
}

/// The `socket.AF_*` name, as asyncio prints it.
impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Unspec => "AF_UNSPEC",
            Family::Inet => "AF_INET",
            Family::Inet6 => "AF_INET6",
            Family::Unix => "AF_UNIX",
        })
    }
}
