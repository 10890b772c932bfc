//! [`parsers`]: the small parsers and namers, on arbitrary input.
//!
//! * `signal_name(n)`: always `SIG…`; a numeric name round-trips to `n`;
//!   a symbolic name belongs to exactly one number.
//! * `resolve` on a numeric host (asyncio's `_ipaddr_info`, no resolver
//!   installed): an arbitrary host string either resolves inline to exactly
//!   the address std's parser reads (brackets allowed) with the port asked
//!   for and a family the hints admit, or is refused with
//!   `InvalidArgument` — at once, never a panic; any IP address's text
//!   round-trips; no host gives the wildcard or loopback pair.
//! * `Family::from_raw` / `as_raw` round-trip; `Address`'s `Display` of an
//!   arbitrary abstract name does not panic.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use arbitrary::{Arbitrary, Unstructured};
use evloop_core::{Error, EventLoop};
use evloop_signals::signal_name;
use evloop_transports::{resolve, Address, Family, ResolveHints};

#[derive(Arbitrary, Debug)]
enum Case {
    Signal(i32),
    Host(String, u16, u8, bool),
    /// An arbitrary address's text, optionally in brackets.
    Ip(IpAddr, u16, bool),
    NoHost(u16, u8, bool),
    Family(i32),
    Abstract(Vec<u8>),
}

/// Names of the numbers that have a symbolic one (computed once).
fn symbolic() -> &'static HashMap<String, i32> {
    static NAMES: OnceLock<HashMap<String, i32>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = HashMap::new();
        for n in -1..=256 {
            let name = signal_name(n);
            if name[3..].parse::<i32>().is_err() {
                let previous = names.insert(name.clone(), n);
                assert!(previous.is_none(), "{name} names {previous:?} and {n}");
            }
        }
        names
    })
}

fn family(n: u8) -> Family {
    match n % 4 {
        0 => Family::Unspec,
        1 => Family::Inet,
        2 => Family::Inet6,
        _ => Family::Unix,
    }
}

fn hints(family_byte: u8, passive: bool) -> ResolveHints {
    ResolveHints {
        family: family(family_byte),
        flags: if passive { libc_ai_passive() } else { 0 },
        ..ResolveHints::default()
    }
}

/// `AI_PASSIVE` (1 on every platform evloop supports).
const fn libc_ai_passive() -> i32 {
    1
}

fn admits(family: Family, ip: &IpAddr) -> bool {
    match family {
        Family::Unspec => true,
        Family::Inet => ip.is_ipv4(),
        Family::Inet6 => ip.is_ipv6(),
        Family::Unix => false,
    }
}

/// Runs `resolve` with no resolver installed: it must finish at its first
/// poll (numeric hosts inline, names refused).
fn resolve_now(
    host: Option<&str>,
    port: u16,
    hints: ResolveHints,
) -> Result<Vec<SocketAddr>, Error> {
    thread_local! {
        static LOOP: EventLoop = EventLoop::new().expect("event loop");
    }
    LOOP.with(|event_loop| {
        let mut future = pin!(resolve(event_loop, host, port, hints));
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("resolve({host:?}) waited with no resolver installed"),
        }
    })
}

fn check_host(host: &str, port: u16, hints: ResolveHints) {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let parsed: Option<IpAddr> = bare.parse().ok().filter(|ip| admits(hints.family, ip));
    match (resolve_now(Some(host), port, hints), parsed) {
        (Ok(addrs), Some(ip)) => assert_eq!(addrs, [SocketAddr::new(ip, port)], "{host:?}"),
        (Err(Error::InvalidArgument(_)), None) => {}
        (other, parsed) => panic!("resolve({host:?}, {hints:?}) = {other:?}, std reads {parsed:?}"),
    }
}

/// The fuzz target: see the module docs.
pub fn parsers(data: &[u8]) {
    let mut u = Unstructured::new(data);
    while !u.is_empty() {
        let Ok(case) = Case::arbitrary(&mut u) else {
            break;
        };
        match case {
            Case::Signal(n) => {
                let name = signal_name(n);
                let rest = name
                    .strip_prefix("SIG")
                    .expect("a signal name starts with SIG");
                match rest.parse::<i32>() {
                    Ok(back) => {
                        assert_eq!(back, n, "{name} does not name {n}");
                        assert_eq!(rest, n.to_string(), "{name}: not the canonical number");
                    }
                    Err(_) => assert_eq!(symbolic().get(&name), Some(&n), "{name} for {n}"),
                }
            }
            Case::Host(host, port, family_byte, passive) => {
                check_host(&host, port, hints(family_byte, passive));
            }
            Case::Ip(ip, port, brackets) => {
                let text = if brackets {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                let got = resolve_now(Some(&text), port, ResolveHints::default());
                assert_eq!(got.ok(), Some(vec![SocketAddr::new(ip, port)]), "{text}");
                check_host(&text, port, hints(0, false));
            }
            Case::NoHost(port, family_byte, passive) => {
                let hints = hints(family_byte, passive);
                let all: [IpAddr; 2] = if passive {
                    ["0.0.0.0".parse().unwrap(), "::".parse().unwrap()]
                } else {
                    ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]
                };
                let want: Vec<SocketAddr> = all
                    .into_iter()
                    .filter(|ip| admits(hints.family, ip))
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect();
                match resolve_now(None, port, hints) {
                    Ok(addrs) => assert_eq!(addrs, want),
                    Err(Error::InvalidArgument(_)) => assert!(want.is_empty()),
                    Err(other) => panic!("resolve(None, {hints:?}): {other:?}"),
                }
            }
            Case::Family(raw) => {
                if let Some(family) = Family::from_raw(raw) {
                    assert_eq!(family.as_raw(), raw);
                    assert_eq!(Family::from_raw(family.as_raw()), Some(family));
                }
            }
            Case::Abstract(name) => {
                let shown = Address::UnixAbstract(name.clone()).to_string();
                assert_eq!(shown, format!("@{}", String::from_utf8_lossy(&name)));
            }
        }
    }
}
