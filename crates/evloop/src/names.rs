//! `getaddrinfo`/`getnameinfo` (docs/behaviour.md 10.1): run on the executor, except
//! numeric hosts, which resolve inline with no thread hop (asyncio's
//! `_ipaddr_info`).

use std::net::{IpAddr, SocketAddr};

use evloop_core::Error;
use evloop_transports::Family;

use crate::executor::ExecutorFuture;
use crate::EventLoop;

/// Filters for [`EventLoop::getaddrinfo`]; [`Family::Unspec`] and zero mean
/// "any" (libc's `addrinfo` hints).
///
/// Built from `Default` with one setter per field, so later options are
/// additive; the fields stay public to read (and to set on a `let mut`).
///
/// ```
/// use evloop::{AddrInfoHints, Family};
///
/// let hints = AddrInfoHints::default().family(Family::Inet).socktype(libc::SOCK_STREAM);
/// assert_eq!(hints.flags, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddrInfoHints {
    /// [`Family::Inet`], [`Family::Inet6`] or [`Family::Unspec`] (any).
    pub family: Family,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or 0.
    pub socktype: i32,
    /// `IPPROTO_TCP`, `IPPROTO_UDP` or 0.
    pub protocol: i32,
    /// `AI_*` flags.
    pub flags: i32,
}

impl AddrInfoHints {
    /// Asks for addresses of `family` only.
    #[must_use = "returns the changed hints"]
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// Asks for sockets of type `socktype` (`SOCK_STREAM`, `SOCK_DGRAM`).
    #[must_use = "returns the changed hints"]
    pub fn socktype(mut self, socktype: i32) -> Self {
        self.socktype = socktype;
        self
    }

    /// Asks for protocol `protocol` (`IPPROTO_TCP`, `IPPROTO_UDP`).
    #[must_use = "returns the changed hints"]
    pub fn protocol(mut self, protocol: i32) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets the `AI_*` flags.
    #[must_use = "returns the changed hints"]
    pub fn flags(mut self, flags: i32) -> Self {
        self.flags = flags;
        self
    }
}

/// One result of [`EventLoop::getaddrinfo`] (asyncio's 5-tuple).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// Address family.
    pub family: Family,
    /// Socket type.
    pub socktype: i32,
    /// Protocol.
    pub protocol: i32,
    /// Canonical name, when `AI_CANONNAME` was asked for.
    pub canonname: Option<String>,
    /// The address.
    pub addr: SocketAddr,
}

/// The result of [`EventLoop::getnameinfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameInfo {
    /// Host name (or numeric address with `NI_NUMERICHOST`).
    pub host: String,
    /// Service name (or port number with `NI_NUMERICSERV`).
    pub service: String,
}

impl EventLoop {
    /// Resolves `host`/`service` off the loop (asyncio's `getaddrinfo`).
    ///
    /// # Errors
    /// The future fails with [`Error::InvalidArgument`] if both are `None`,
    /// [`Error::Io`] for a lookup failure, [`Error::Closed`] on a closed loop.
    pub fn getaddrinfo(
        &self,
        host: Option<&str>,
        service: Option<&str>,
        hints: AddrInfoHints,
    ) -> ExecutorFuture<Vec<AddrInfo>> {
        if self.is_closed() {
            return ExecutorFuture::ready(Err(Error::Closed));
        }
        if host.is_none() && service.is_none() {
            return ExecutorFuture::ready(Err(Error::invalid_argument(
                "getaddrinfo needs a host or a service",
            )));
        }
        if let Some(info) = numeric_info(host, service, hints) {
            return ExecutorFuture::ready(Ok(vec![info]));
        }
        let host = host.map(str::to_owned);
        let service = service.map(str::to_owned);
        ExecutorFuture::fallible(self, move || {
            lookup(host.as_deref(), service.as_deref(), hints)
        })
    }

    /// Turns `addr` into a host and service name off the loop.
    ///
    /// # Errors
    /// As [`getaddrinfo`](Self::getaddrinfo).
    pub fn getnameinfo(&self, addr: SocketAddr, flags: i32) -> ExecutorFuture<NameInfo> {
        ExecutorFuture::fallible(self, move || {
            dns_lookup::getnameinfo(&addr, flags)
                .map(|(host, service)| NameInfo { host, service })
                .map_err(|e| Error::Io(e.into()))
        })
    }
}

fn lookup(
    host: Option<&str>,
    service: Option<&str>,
    hints: AddrInfoHints,
) -> Result<Vec<AddrInfo>, Error> {
    let hints = dns_lookup::AddrInfoHints {
        flags: hints.flags,
        address: hints.family.as_raw(),
        socktype: hints.socktype,
        protocol: hints.protocol,
    };
    let found =
        dns_lookup::getaddrinfo(host, service, Some(hints)).map_err(|e| Error::Io(e.into()))?;
    let mut infos = Vec::new();
    for entry in found {
        let entry = entry.map_err(Error::Io)?;
        // getaddrinfo answers with internet addresses; anything else is
        // not one of ours to hand out.
        let Some(family) = Family::from_raw(entry.address) else {
            continue;
        };
        infos.push(AddrInfo {
            family,
            socktype: entry.socktype,
            protocol: entry.protocol,
            canonname: entry.canonname,
            addr: entry.sockaddr,
        });
    }
    Ok(infos)
}

/// A numeric host with a numeric port and a stream/datagram type resolves
/// without the resolver, as in asyncio.
fn numeric_info(
    host: Option<&str>,
    service: Option<&str>,
    hints: AddrInfoHints,
) -> Option<AddrInfo> {
    let ip: IpAddr = host?.parse().ok()?;
    let port: u16 = service?.parse().ok()?;
    let protocol = match hints.socktype {
        libc::SOCK_STREAM => libc::IPPROTO_TCP,
        libc::SOCK_DGRAM => libc::IPPROTO_UDP,
        _ => return None,
    };
    if hints.protocol != 0 && hints.protocol != protocol || hints.flags & libc::AI_CANONNAME != 0 {
        return None;
    }
    let family = Family::of(&SocketAddr::new(ip, port));
    if hints.family != Family::Unspec && hints.family != family {
        return None;
    }
    Some(AddrInfo {
        family,
        socktype: hints.socktype,
        protocol,
        canonname: None,
        addr: SocketAddr::new(ip, port),
    })
}

/// The resolver the facade installs on every loop it creates: transports'
/// host names go through `getaddrinfo` on the loop's executor.
#[derive(Debug)]
pub(crate) struct ExecutorResolver;

impl evloop_transports::Resolver for ExecutorResolver {
    fn resolve(
        &self,
        event_loop: &evloop_core::EventLoop,
        host: Option<&str>,
        port: u16,
        hints: evloop_transports::ResolveHints,
    ) -> evloop_transports::ResolveFuture {
        let event_loop = EventLoop::from(event_loop.clone());
        let hints = AddrInfoHints {
            family: hints.family,
            socktype: hints.socktype,
            protocol: hints.protocol,
            flags: hints.flags,
        };
        let lookup = event_loop.getaddrinfo(host, Some(&port.to_string()), hints);
        Box::pin(async move {
            let infos = lookup.await?;
            let mut addrs: Vec<SocketAddr> = Vec::with_capacity(infos.len());
            for info in infos {
                // getaddrinfo lists an address once per socket type when none
                // was asked for; callers want each address once.
                if !addrs.contains(&info.addr) {
                    addrs.push(info.addr);
                }
            }
            Ok(addrs)
        })
    }
}
