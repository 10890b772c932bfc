//! Name resolution as the transports see it: numeric hosts resolve inline;
//! names go to the resolver installed on the loop (the facade installs one
//! that runs `getaddrinfo` on its executor), so nothing here blocks the loop
//! and this crate needs no thread pool.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;

use evloop_core::{Error, EventLoop};

use crate::family::{Family, AI_PASSIVE};

/// `getaddrinfo` hints: [`Family::Unspec`] and zero mean "any".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolveHints {
    /// The family to resolve for ([`Family::Inet`], [`Family::Inet6`] or
    /// [`Family::Unspec`]).
    pub family: Family,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or 0.
    pub socktype: i32,
    /// `IPPROTO_*` or 0.
    pub protocol: i32,
    /// `AI_*` flags (e.g. `AI_PASSIVE` for servers).
    pub flags: i32,
}

/// The future a [`Resolver`] returns.
pub type ResolveFuture = Pin<Box<dyn Future<Output = Result<Vec<SocketAddr>, Error>>>>;

/// Turns a host name and port into addresses without blocking the loop.
pub trait Resolver: 'static {
    /// Resolves `host` (`None` = the wildcard/loopback per `hints.flags`)
    /// for a call made on `event_loop`.
    fn resolve(
        &self,
        event_loop: &EventLoop,
        host: Option<&str>,
        port: u16,
        hints: ResolveHints,
    ) -> ResolveFuture;
}

struct Installed(Rc<dyn Resolver>);

impl fmt::Debug for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

/// Installs `resolver` for every transport call on `event_loop`.
pub fn set_resolver(event_loop: &EventLoop, resolver: Rc<dyn Resolver>) {
    let slot = event_loop.extension(|| std::cell::RefCell::new(None::<Installed>));
    *slot.borrow_mut() = Some(Installed(resolver));
}

/// Resolves `host:port`: a numeric host (or `None`, with the family's
/// wildcard or loopback) inline, a name through the installed resolver.
///
/// # Errors
/// [`Error::InvalidArgument`] for a name when no resolver is installed;
/// the resolver's error otherwise.
#[doc(alias = "getaddrinfo")]
pub async fn resolve(
    event_loop: &EventLoop,
    host: Option<&str>,
    port: u16,
    hints: ResolveHints,
) -> Result<Vec<SocketAddr>, Error> {
    if let Some(addrs) = numeric(host, port, hints) {
        return Ok(addrs);
    }
    let resolver = event_loop
        .get_extension::<std::cell::RefCell<Option<Installed>>>()
        .and_then(|slot| slot.borrow().as_ref().map(|r| r.0.clone()));
    let Some(resolver) = resolver else {
        return Err(Error::invalid_argument(format!(
            "cannot resolve {host:?} without a resolver (use the evloop facade, or a numeric address)"
        )));
    };
    let addrs = resolver.resolve(event_loop, host, port, hints).await?;
    if addrs.is_empty() {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("getaddrinfo({host:?}) returned empty list"),
        )));
    }
    Ok(addrs)
}

fn numeric(host: Option<&str>, port: u16, hints: ResolveHints) -> Option<Vec<SocketAddr>> {
    let family_ok = |ip: &IpAddr| hints.family.admits(ip);
    let ips: Vec<IpAddr> = match host {
        Some(host) => {
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            vec![host.parse().ok()?]
        }
        None if hints.flags & AI_PASSIVE != 0 => {
            vec![IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])]
        }
        None => vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
        ],
    };
    let addrs: Vec<SocketAddr> = ips
        .into_iter()
        .filter(family_ok)
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    (!addrs.is_empty()).then_some(addrs)
}
