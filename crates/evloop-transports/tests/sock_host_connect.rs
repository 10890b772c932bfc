//! docs/behaviour.md 9.1: `sock_recvfrom_into`, and `sock_connect` with a host and port
//! (numeric hosts inline, names through the loop's resolver).

mod support;

use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;

use evloop_core::{Error, EventLoop};
use evloop_transports::{
    set_resolver, sock_connect, sock_recvfrom_into, sock_sendto, Address, Family, ResolveFuture,
    ResolveHints, Resolver,
};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use support::{ok, Fixture};

fn socket(family: AddressFamily, kind: SocketType) -> std::os::fd::OwnedFd {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    rustix::net::socket_with(family, kind, flags, None).expect("socket")
}

fn bound_udp() -> (std::net::UdpSocket, Address) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_nonblocking(true).expect("nonblocking");
    let addr = Address::Inet(sock.local_addr().expect("addr"));
    (sock, addr)
}

#[test]
fn spec_9_1_sock_recvfrom_into_returns_size_and_sender() {
    let fx = Fixture::new();
    let (a, a_addr) = bound_udp();
    let (b, b_addr) = bound_udp();
    let mut buf = [0u8; 64];
    let (n, from) = ok(fx.run(async {
        sock_sendto(&fx.lp, &a, b"datagram", b_addr.clone()).await?;
        sock_recvfrom_into(&fx.lp, &b, &mut buf).await
    }));
    assert_eq!(&buf[..n], b"datagram");
    assert_eq!(from, Some(a_addr.clone()));
    // A shorter buffer (asyncio's nbytes) truncates the datagram; waiting
    // first, then the datagram arrives.
    let lp = fx.lp.clone();
    let sender = Rc::new(a);
    let s2 = sender.clone();
    let to = b_addr.clone();
    ok(fx
        .lp
        .call_later(std::time::Duration::from_millis(20), move || {
            let _ = s2.send_to(b"0123456789", to.as_inet().unwrap());
        }));
    let mut small = [0u8; 4];
    let (n, from) = ok(fx.run(sock_recvfrom_into(&lp, &b, &mut small)));
    assert_eq!((n, &small[..]), (4, &b"0123"[..]));
    assert_eq!(from, Some(a_addr));
    drop((sender, b));
    fx.finish();
}

#[test]
fn spec_9_1_sock_connect_numeric_host_and_port() {
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let sock = socket(AddressFamily::INET, SocketType::STREAM);
    ok(fx.run(sock_connect(&fx.lp, &sock, ("127.0.0.1", port))));
    let (_conn, peer) = listener.accept().expect("accept");
    let ours = rustix::net::getsockname(&sock).unwrap();
    assert_eq!(SocketAddr::try_from(ours).ok(), Some(peer));
    drop((sock, _conn, listener));
    fx.finish();
}

/// Resolves `service.test` to 127.0.0.1 and counts its calls and the hints.
struct TestResolver(Rc<std::cell::RefCell<Vec<ResolveHints>>>);

impl Resolver for TestResolver {
    fn resolve(
        &self,
        _: &EventLoop,
        host: Option<&str>,
        port: u16,
        hints: ResolveHints,
    ) -> ResolveFuture {
        self.0.borrow_mut().push(hints);
        let result = match host {
            Some("service.test") => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
            _ => Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "unknown host",
            ))),
        };
        Box::pin(async move { result })
    }
}

#[test]
fn spec_9_1_sock_connect_host_name_goes_through_the_loops_resolver() {
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let sock = socket(AddressFamily::INET, SocketType::STREAM);
    // No resolver: a name is refused with a clear error, nothing blocks.
    let refused = fx.run(sock_connect(&fx.lp, &sock, ("service.test", port)));
    assert!(
        matches!(&refused, Err(Error::InvalidArgument(m)) if m.contains("resolver")),
        "{refused:?}"
    );
    let calls = Rc::new(std::cell::RefCell::new(Vec::new()));
    set_resolver(&fx.lp, Rc::new(TestResolver(calls.clone())));
    ok(fx.run(sock_connect(
        &fx.lp,
        &sock,
        (String::from("service.test"), port),
    )));
    let (_conn, _) = listener.accept().expect("accept");
    let hints = calls.borrow().clone();
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].family, Family::Inet, "the socket's family");
    assert_eq!(
        hints[0].socktype,
        SocketType::STREAM.as_raw() as i32,
        "the socket's type"
    );
    // The resolver's error comes back as it is.
    let other = socket(AddressFamily::INET, SocketType::STREAM);
    let unknown = fx.run(sock_connect(&fx.lp, &other, ("nowhere.test", port)));
    assert_eq!(
        unknown.err().and_then(|e| e.io_kind()),
        Some(std::io::ErrorKind::NotFound)
    );
    // A host for a unix socket is refused.
    let unix = socket(AddressFamily::UNIX, SocketType::STREAM);
    let wrong = fx.run(sock_connect(&fx.lp, &unix, ("127.0.0.1", port)));
    assert!(matches!(wrong, Err(Error::InvalidArgument(_))), "{wrong:?}");
    drop((sock, other, unix, _conn, listener));
    fx.finish();
}
