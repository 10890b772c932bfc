//! Host names for the transports: evloop's `getaddrinfo` on the facade's
//! executor, installed on every `_CoreLoop`.
//!
//! The facade installs the same resolver when it builds a loop, but
//! `_CoreLoop` builds its loop through `evloop_core`'s builder (for the
//! `around_blocking_poll` hook that releases the GIL), so it installs this
//! one itself.

use std::net::SocketAddr;
use std::rc::Rc;

use evloop::AddrInfoHints;
use evloop_transports::{ResolveFuture, ResolveHints, Resolver};

/// Resolves names with `evloop::EventLoop::getaddrinfo` (off the loop).
#[derive(Debug)]
struct ExecutorResolver;

impl Resolver for ExecutorResolver {
    fn resolve(
        &self,
        event_loop: &evloop_core::EventLoop,
        host: Option<&str>,
        port: u16,
        hints: ResolveHints,
    ) -> ResolveFuture {
        let facade = evloop::EventLoop::from(event_loop.clone());
        let hints = AddrInfoHints::default()
            .family(hints.family)
            .socktype(hints.socktype)
            .protocol(hints.protocol)
            .flags(hints.flags);
        let lookup = facade.getaddrinfo(host, Some(&port.to_string()), hints);
        Box::pin(async move {
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for info in lookup.await? {
                // One entry per socket type when none was asked for.
                if !addrs.contains(&info.addr) {
                    addrs.push(info.addr);
                }
            }
            Ok(addrs)
        })
    }
}

/// Installs the resolver on `event_loop`.
pub(crate) fn install(event_loop: &evloop_core::EventLoop) {
    evloop_transports::set_resolver(event_loop, Rc::new(ExecutorResolver));
}
