//! docs/behaviour.md 6.1 and 6.3: `create_server` binding rules and the `Server`
//! lifecycle, over real loopback sockets.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use evloop_core::Error;
use evloop_transports::{
    create_connection, create_server, os_errno, Address, ConnectOptions, Server, ServerOptions,
};
use futures_lite::future;
use support::*;

fn server(fx: &Fixture, options: ServerOptions) -> Server {
    ok(fx.run(create_server(&fx.lp, Echo::default, options)))
}

fn local(host: &str) -> ServerOptions {
    ServerOptions::default().host([host])
}

/// Echo round trip from a client thread, driven while the loop runs.
fn roundtrip(fx: &Fixture, addr: SocketAddr) {
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"round").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        buf
    });
    fx.run(until(&fx.lp, || client.is_finished()));
    assert_eq!(&client.join().unwrap(), b"round");
}

#[test]
fn spec_6_1_empty_host_binds_v4_and_v6_only_sockets() {
    let fx = Fixture::new();
    let srv = server(&fx, ServerOptions::default());
    let addrs: Vec<SocketAddr> = srv.sockets().iter().filter_map(Address::as_inet).collect();
    assert!(
        addrs.iter().any(|a| a.is_ipv4() && a.ip().is_unspecified()),
        "{addrs:?}"
    );
    if ipv6_available() {
        assert_eq!(addrs.len(), 2, "{addrs:?}");
        let v6 = addrs.iter().position(SocketAddr::is_ipv6).unwrap();
        assert!(sockopt_bool(srv.fds()[v6], |f| {
            rustix::net::sockopt::ipv6_v6only(f)
        }));
        roundtrip(
            &fx,
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], addrs[v6].port())),
        );
    }
    let v4 = addrs.iter().find(|a| a.is_ipv4()).unwrap();
    roundtrip(&fx, SocketAddr::from(([127, 0, 0, 1], v4.port())));
    close_server(&fx, &srv);
    fx.finish();
}

#[test]
fn spec_6_1_duplicate_hosts_bind_once() {
    let fx = Fixture::new();
    let srv = server(
        &fx,
        ServerOptions::default().host(["127.0.0.1", "127.0.0.1"]),
    );
    assert_eq!(srv.sockets().len(), 1);
    close_server(&fx, &srv);
    fx.finish();
}

#[test]
fn spec_6_1_reuse_address_on_by_default_reuse_port_off() {
    let fx = Fixture::new();
    let srv = server(&fx, local("127.0.0.1"));
    let fd = srv.fds()[0];
    assert!(sockopt_bool(
        fd,
        |f| rustix::net::sockopt::socket_reuseaddr(f)
    ));
    assert!(!sockopt_bool(fd, |f| {
        rustix::net::sockopt::socket_reuseport(f)
    }));
    close_server(&fx, &srv);
    let srv = server(&fx, local("127.0.0.1").reuse_address(false));
    assert!(!sockopt_bool(srv.fds()[0], |f| {
        rustix::net::sockopt::socket_reuseaddr(f)
    }));
    close_server(&fx, &srv);
    fx.finish();
}

#[test]
fn spec_6_1_reuse_port_lets_two_servers_share_a_port() {
    let fx = Fixture::new();
    let a = server(&fx, local("127.0.0.1").reuse_port(true));
    let port = port_of(&a);
    let b = server(&fx, local("127.0.0.1").reuse_port(true).port(port));
    assert_eq!(port_of(&b), port);
    close_server(&fx, &a);
    close_server(&fx, &b);
    fx.finish();
}

#[test]
fn spec_6_1_bind_error_keeps_errno_and_names_the_address() {
    let fx = Fixture::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = fx
        .run(create_server(
            &fx.lp,
            Echo::default,
            local("127.0.0.1").port(port),
        ))
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(std::io::ErrorKind::AddrInUse));
    assert_eq!(
        os_errno(&err),
        Some(rustix::io::Errno::ADDRINUSE.raw_os_error())
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    drop(taken);
    fx.finish();
}

#[test]
fn spec_6_1_sock_and_conflicts() {
    let fx = Fixture::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = server(&fx, ServerOptions::default().sock(listener.into()));
    roundtrip(&fx, addr);
    close_server(&fx, &srv);
    let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let both = fx.run(create_server(
        &fx.lp,
        Echo::default,
        ServerOptions::default().sock(sock.into()).port(1),
    ));
    assert!(matches!(both, Err(Error::InvalidArgument(_))));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dgram = fx.run(create_server(
        &fx.lp,
        Echo::default,
        ServerOptions::default().sock(udp.into()),
    ));
    assert!(matches!(dgram, Err(Error::InvalidArgument(_))));
    fx.finish();
}

#[test]
fn spec_6_1_start_serving_false_accepts_nothing_until_started() {
    let fx = Fixture::new();
    let srv = server(&fx, local("127.0.0.1").start_serving(false));
    assert!(!srv.is_serving());
    let addr = srv.sockets()[0].as_inet().unwrap();
    let refused = TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    ok(srv.start_serving());
    ok(srv.start_serving()); // idempotent
    assert!(srv.is_serving());
    roundtrip(&fx, addr);
    close_server(&fx, &srv);
    assert!(matches!(srv.start_serving(), Err(Error::InvalidState(_))));
    fx.finish();
}

#[test]
fn spec_6_2_accepts_many_pending_connections_with_small_backlog() {
    let fx = Fixture::new();
    let srv = server(&fx, local("127.0.0.1").backlog(4));
    let addr = srv.sockets()[0].as_inet().unwrap();
    let clients = std::thread::spawn(move || {
        let socks: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for mut s in socks {
            s.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
        }
    });
    fx.run(until(&fx.lp, || clients.is_finished()));
    clients.join().unwrap();
    close_server(&fx, &srv);
    fx.finish();
}

#[test]
fn spec_6_3_close_stops_listening_at_once() {
    let fx = Fixture::new();
    let srv = server(&fx, local("127.0.0.1"));
    let addr = srv.sockets()[0].as_inet().unwrap();
    srv.close();
    assert!(!srv.is_serving());
    assert!(srv.sockets().is_empty());
    assert!(srv.fds().is_empty());
    assert!(TcpStream::connect(addr).is_err());
    srv.close(); // idempotent
    fx.run(srv.wait_closed());
    fx.finish();
}

#[test]
fn spec_6_3_wait_closed_waits_for_connections_and_close_clients() {
    let fx = Fixture::new();
    let (srv, accepted) = counting_echo_server(&fx, local("127.0.0.1"));
    let port = port_of(&srv);
    let (rec, log) = Recorder::new();
    let (client, _h) = ok(fx.run(create_connection(
        &fx.lp,
        move || rec,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    )));
    // The server has accepted the connection (its protocol is made).
    fx.run(until(&fx.lp, || accepted.get() == 1));
    srv.close();
    let mut waiting = Box::pin(srv.wait_closed());
    // Everything close() set off has run; wait_closed is still pending.
    fx.drain();
    assert!(fx.run(future::poll_once(waiting.as_mut())).is_none());
    // The accepted connection still works after close().
    client.write(b"still");
    fx.run(until(&fx.lp, || log.borrow().data == b"still"));
    srv.close_clients();
    fx.run(waiting);
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
    assert!(log.borrow().events.contains(&Ev::Eof));
    fx.finish();
}

#[test]
fn spec_6_3_abort_clients_drops_connections() {
    let fx = Fixture::new();
    let (srv, accepted) = counting_echo_server(&fx, local("127.0.0.1"));
    let port = port_of(&srv);
    let (rec, log) = Recorder::new();
    let (_client, _h) = ok(fx.run(create_connection(
        &fx.lp,
        move || rec,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    )));
    fx.run(until(&fx.lp, || accepted.get() == 1));
    srv.abort_clients();
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
    srv.close();
    fx.run(srv.wait_closed());
    fx.finish();
}

#[test]
fn spec_6_3_serve_forever_ends_cancelled_on_close() {
    let fx = Fixture::new();
    let srv = server(&fx, local("127.0.0.1").start_serving(false));
    let forever = srv.serve_forever();
    assert!(srv.is_serving());
    let again = fx.run(srv.serve_forever());
    assert!(matches!(again, Err(Error::InvalidState(_))));
    let closer = srv.clone();
    fx.lp
        .call_later(Duration::from_millis(20), move || closer.close())
        .unwrap();
    let outcome = fx.run(forever);
    assert!(matches!(outcome, Err(Error::Cancelled(_))), "{outcome:?}");
    assert!(!srv.is_serving());
    fx.finish();
}

#[test]
fn spec_6_3_dropping_serve_forever_closes_the_server() {
    let fx = Fixture::new();
    let srv = server(&fx, local("127.0.0.1"));
    let raced = fx.run(future::or(
        async {
            let _ = srv.serve_forever().await;
            "ended"
        },
        async {
            sleep(&fx.lp, Duration::from_millis(20)).await;
            "timeout"
        },
    ));
    assert_eq!(raced, "timeout");
    assert!(srv.sockets().is_empty());
    fx.run(srv.wait_closed());
    fx.finish();
}

#[test]
fn spec_8_1_listener_and_transport_fds_are_in_use() {
    let fx = Fixture::new();
    let srv = server(&fx, local("127.0.0.1"));
    let listener = srv.fds()[0];
    // `add_reader` takes a borrow of the fd, which a transport's owned fd
    // cannot give: the type system keeps users off it. Removal by number
    // (plumbing) cannot take the transport's watcher either.
    assert!(!fx.lp.remove_reader_by_number(listener));
    let (client, _h) = ok(fx.run(create_connection(
        &fx.lp,
        Echo::default,
        Some("127.0.0.1"),
        Some(port_of(&srv)),
        ConnectOptions::default(),
    )));
    let fd = client.fd().unwrap();
    assert!(!fx.lp.remove_reader_by_number(fd));
    client.close();
    close_server(&fx, &srv);
    fx.finish();
}

/// Reads a boolean socket option of a server-owned fd.
fn sockopt_bool(
    fd: std::os::fd::RawFd,
    get: impl Fn(std::os::fd::BorrowedFd<'_>) -> rustix::io::Result<bool>,
) -> bool {
    // SAFETY: `fd` is a listener of a server that stays open for this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    get(borrowed).unwrap()
}
