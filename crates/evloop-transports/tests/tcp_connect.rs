//! docs/behaviour.md 5.1–5.4: `create_connection` over real loopback sockets —
//! resolution, attempts in order, error aggregation, happy eyeballs,
//! `local_addr`, the factory/`connection_made` handshake, cancellation.

mod support;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_core::Error;
use evloop_transports::{
    connect_accepted_socket, create_connection, create_connection_buffered, os_errno, Address,
    BufferedProtocol, ConnectOptions, Family, ServerOptions,
};
use futures_lite::future;
use support::*;

const ECONNREFUSED: i32 = 111;

#[test]
fn spec_5_1_connect_numeric_host_and_echo() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let (rec, log) = Recorder::new();
    let (transport, _handle) = ok(fx.run(create_connection(
        &fx.lp,
        move || rec,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    )));
    transport.write(b"hello");
    let lp = fx.lp.clone();
    let l2 = log.clone();
    fx.run(until(&lp, move || l2.borrow().data.len() == 5));
    assert_eq!(log.borrow().data, b"hello");
    transport.close();
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_5_1_name_resolved_through_installed_resolver() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let calls = install_resolver(&fx.lp, vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    let (transport, _h) = ok(fx.run(create_connection(
        &fx.lp,
        Echo::default,
        Some("service.test"),
        Some(port),
        ConnectOptions::default(),
    )));
    assert_eq!(calls.get(), 1);
    assert_eq!(
        transport.peername(),
        Some(Address::Inet(SocketAddr::from(([127, 0, 0, 1], port))))
    );
    transport.close();
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_5_1_name_without_resolver_is_invalid_argument() {
    let fx = Fixture::new();
    let err = fx
        .run(create_connection(
            &fx.lp,
            Echo::default,
            Some("no-such-host.test"),
            Some(1),
            ConnectOptions::default(),
        ))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    fx.finish();
}

#[test]
fn spec_5_1_one_error_is_returned_as_is_with_errno() {
    let fx = Fixture::new();
    let addr = refused_address();
    let err = fx
        .run(create_connection(
            &fx.lp,
            Echo::default,
            Some("127.0.0.1"),
            Some(addr.port()),
            ConnectOptions::default(),
        ))
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::ConnectionRefused));
    assert_eq!(os_errno(&err), Some(ECONNREFUSED));
    // Every socket of the failed attempt is closed (checked by finish).
    fx.finish();
}

#[test]
fn spec_5_1_several_errors_are_aggregated_in_order() {
    let fx = Fixture::new();
    let refused = refused_address();
    let v6 = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], refused.port()));
    install_resolver(&fx.lp, vec![refused, v6]);
    let err = fx
        .run(create_connection(
            &fx.lp,
            Echo::default,
            Some("two.test"),
            Some(refused.port()),
            ConnectOptions::default().local_addr("127.0.0.1:0".parse().unwrap()),
        ))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Multiple exceptions"), "{text}");
    let first = text
        .find(&refused.to_string())
        .expect("first address listed");
    let second = text.find(&v6.to_string()).expect("second address listed");
    assert!(first < second, "{text}");
    assert!(text.contains("no matching local address"), "{text}");
    assert_eq!(err.io_kind(), Some(io::ErrorKind::ConnectionRefused));
    fx.finish();
}

#[test]
fn spec_5_1_identical_errors_collapse_to_the_first() {
    let fx = Fixture::new();
    let a = refused_address();
    let b = refused_address();
    install_resolver(&fx.lp, vec![a, b]);
    let err = fx
        .run(create_connection(
            &fx.lp,
            Echo::default,
            Some("two.test"),
            Some(1),
            ConnectOptions::default(),
        ))
        .unwrap_err();
    assert_eq!(os_errno(&err), Some(ECONNREFUSED), "{err}");
    assert!(!err.to_string().contains("Multiple"), "{err}");
    fx.finish();
}

#[test]
fn spec_5_1_conflicting_arguments_are_invalid() {
    let fx = Fixture::new();
    let sock = std::os::fd::OwnedFd::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let both = fx.run(create_connection(
        &fx.lp,
        Echo::default,
        Some("127.0.0.1"),
        Some(1),
        ConnectOptions::default().sock(sock),
    ));
    assert!(matches!(both, Err(Error::InvalidArgument(_))));
    let neither = fx.run(create_connection(
        &fx.lp,
        Echo::default,
        None,
        None,
        ConnectOptions::default(),
    ));
    assert!(matches!(neither, Err(Error::InvalidArgument(_))));
    let udp = std::os::fd::OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let dgram = fx.run(create_connection(
        &fx.lp,
        Echo::default,
        None,
        None,
        ConnectOptions::default().sock(udp),
    ));
    assert!(matches!(dgram, Err(Error::InvalidArgument(_))));
    // A unix family is for create_unix_connection.
    let bad_family = fx.run(create_connection(
        &fx.lp,
        Echo::default,
        Some("127.0.0.1"),
        Some(1),
        ConnectOptions::default().family(Family::Unix),
    ));
    assert!(matches!(bad_family, Err(Error::InvalidArgument(_))));
    let bad_addr = fx.run(create_connection(
        &fx.lp,
        Echo::default,
        Some("127.0.0.300"),
        Some(1),
        ConnectOptions::default(),
    ));
    assert!(matches!(bad_addr, Err(Error::InvalidArgument(_))));
    fx.finish();
}

#[test]
fn spec_5_1_connected_sock_is_wrapped() {
    let fx = Fixture::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    let (rec, log) = Recorder::new();
    let (transport, _h) = ok(fx.run(create_connection(
        &fx.lp,
        move || rec,
        None,
        None,
        ConnectOptions::default().sock(client.into()),
    )));
    std::io::Write::write_all(&mut peer, b"abc").unwrap();
    fx.run(until(&fx.lp, || log.borrow().data == b"abc"));
    transport.close();
    drop((peer, listener));
    fx.finish();
}

#[test]
fn spec_5_2_happy_eyeballs_refused_first_then_live() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let live = SocketAddr::from(([127, 0, 0, 1], port_of(&server)));
    install_resolver(&fx.lp, vec![refused_address(), live]);
    let started = Instant::now();
    let (transport, _h) = ok(fx.run(create_connection(
        &fx.lp,
        Echo::default,
        Some("he.test"),
        Some(1),
        ConnectOptions::default().happy_eyeballs_delay(Duration::from_secs(10)),
    )));
    // A failure starts the next attempt at once, not after the delay.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(transport.peername(), Some(Address::Inet(live)));
    transport.close();
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_5_2_happy_eyeballs_delay_honoured_and_losers_closed() {
    let fx = Fixture::new();
    let (server, accepted) =
        counting_echo_server(&fx, ServerOptions::default().host(["127.0.0.1"]));
    let live = SocketAddr::from(([127, 0, 0, 1], port_of(&server)));
    let (dead_fds, dead) = dead_address();
    install_resolver(&fx.lp, vec![dead, live]);
    let fds_with_dead = fd_count();
    let started = Instant::now();
    let (transport, _h) = ok(fx.run(create_connection(
        &fx.lp,
        Echo::default,
        Some("he.test"),
        Some(1),
        ConnectOptions::default().happy_eyeballs_delay(Duration::from_millis(200)),
    )));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(transport.peername(), Some(Address::Inet(live)));
    // The hanging attempt's socket is closed: only ours and the server's
    // accepted one are new. Wait for the accept, then let what is queued
    // run (a deferred close of the loser would).
    fx.run(until(&fx.lp, || accepted.get() == 1));
    fx.drain();
    assert_eq!(fd_count(), fds_with_dead + 2);
    transport.close();
    close_server(&fx, &server);
    drop(dead_fds);
    fx.finish();
}

#[test]
fn spec_5_2_interleave_reorders_by_family() {
    let fx = Fixture::new();
    let v6a = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 1));
    let v6b = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 2));
    let v4 = refused_address();
    install_resolver(&fx.lp, vec![v6a, v6b, v4]);
    let err = fx
        .run(create_connection(
            &fx.lp,
            Echo::default,
            Some("mixed.test"),
            Some(1),
            ConnectOptions::default()
                .local_addr("127.0.0.1:0".parse().unwrap())
                .interleave(1),
        ))
        .unwrap_err();
    let text = err.to_string();
    let pos = |a: &SocketAddr| text.find(&format!("{a}:")).expect("listed");
    assert!(pos(&v6a) < pos(&v4) && pos(&v4) < pos(&v6b), "{text}");
    fx.finish();
}

/// Found by the `happy_eyeballs` fuzz target: the first family's lead was a
/// loop to `n`, so `interleave(usize::MAX)` hung the loop inside
/// `create_connection`. A count past the list now just takes the whole
/// first family, as asyncio's slice does.
#[test]
fn spec_5_2_interleave_larger_than_the_address_list_connects() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    for n in [2, 1000, usize::MAX] {
        let (transport, _handle) = ok(fx.run(create_connection(
            &fx.lp,
            Echo::default,
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default().interleave(n),
        )));
        assert_eq!(
            transport.peername(),
            Some(Address::Inet(SocketAddr::from(([127, 0, 0, 1], port)))),
            "interleave({n})"
        );
        transport.close();
    }
    fx.drain();
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_5_3_local_addr_binds() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let (transport, _h) = ok(fx.run(create_connection(
        &fx.lp,
        Echo::default,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default().local_addr("127.0.0.2:0".parse().unwrap()),
    )));
    let local = transport.sockname().and_then(|a| a.as_inet()).unwrap();
    assert_eq!(local.ip(), "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
    transport.close();
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_5_3_local_addr_in_use_names_the_address() {
    let fx = Fixture::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let err = fx
        .run(create_connection(
            &fx.lp,
            Echo::default,
            Some("127.0.0.1"),
            Some(refused_address().port()),
            ConnectOptions::default().local_addr(taken_addr),
        ))
        .unwrap_err();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::AddrInUse), "{err}");
    assert_eq!(
        os_errno(&err),
        Some(rustix::io::Errno::ADDRINUSE.raw_os_error())
    );
    assert!(err.to_string().contains(&taken_addr.to_string()), "{err}");
    drop(taken);
    fx.finish();
}

#[test]
fn spec_5_4_factory_once_after_connect_and_call_completes_after_connection_made() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let calls = Rc::new(Cell::new(0));
    let (rec, log) = Recorder::new();
    let c = calls.clone();
    let fut = create_connection(
        &fx.lp,
        move || {
            c.set(c.get() + 1);
            rec
        },
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    );
    assert_eq!(
        calls.get(),
        0,
        "the factory must not run before the connect"
    );
    let (transport, _h) = ok(fx.run(fut));
    assert_eq!(calls.get(), 1);
    assert_eq!(log.borrow().events, vec![Ev::Made]);
    transport.close();
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_5_4_dropping_the_call_mid_connect_closes_the_socket() {
    let fx = Fixture::new();
    let (dead_fds, dead) = dead_address();
    let before = fd_count();
    let connect = create_connection(
        &fx.lp,
        Echo::default,
        Some("127.0.0.1"),
        Some(dead.port()),
        ConnectOptions::default(),
    );
    let raced = fx.run(future::or(
        async {
            let _ = connect.await;
            "connected"
        },
        async {
            sleep(&fx.lp, Duration::from_millis(100)).await;
            "timeout"
        },
    ));
    assert_eq!(raced, "timeout");
    assert_eq!(fd_count(), before);
    drop(dead_fds);
    fx.finish();
}

#[test]
fn spec_5_4_dropping_the_call_before_connection_made_aborts() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let (rec, log) = Recorder::new();
    let made = Rc::new(Cell::new(false));
    let m = made.clone();
    let mut connect = Box::pin(create_connection(
        &fx.lp,
        move || {
            m.set(true);
            rec
        },
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    ));
    // Poll until the transport exists (the factory ran), then drop the call.
    fx.run(future::poll_fn(|cx| {
        let _ = connect.as_mut().poll(cx);
        if made.get() {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }));
    drop(connect);
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
    assert_eq!(log.borrow().lost_count(), 1);
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_5_4_panic_in_connection_made_still_returns() {
    struct Bad;
    impl evloop_transports::Protocol for Bad {
        fn connection_made(&mut self, _t: evloop_transports::Transport) {
            panic!("boom in connection_made");
        }
    }
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let (transport, _h) = ok(fx.run(create_connection(
        &fx.lp,
        || Bad,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    )));
    // Wait for the exception-handler call, then let what is queued run.
    fx.run(until(&fx.lp, || !fx.errors.borrow().is_empty()));
    fx.drain();
    assert!(transport.is_closing());
    let errors = fx.take_errors();
    assert!(errors.iter().any(|e| e.contains("boom")), "{errors:?}");
    close_server(&fx, &server);
    fx.finish();
}

#[derive(Default)]
struct Buffered {
    buf: Vec<u8>,
    got: Rc<std::cell::RefCell<Vec<u8>>>,
}

impl BufferedProtocol for Buffered {
    fn get_buffer(&mut self, _size_hint: usize) -> &mut [u8] {
        self.buf.resize(7, 0);
        &mut self.buf
    }
    fn buffer_updated(&mut self, nbytes: usize) {
        self.got.borrow_mut().extend_from_slice(&self.buf[..nbytes]);
    }
}

#[test]
fn spec_7_7_buffered_protocol_reads_into_its_buffer() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let got = Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    let (transport, _h) = ok(fx.run(create_connection_buffered(
        &fx.lp,
        move || Buffered {
            buf: Vec::new(),
            got: g,
        },
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    )));
    let payload: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    transport.write(&payload);
    fx.run(until(&fx.lp, || got.borrow().len() == payload.len()));
    assert_eq!(*got.borrow(), payload);
    transport.close();
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_6_4_connect_accepted_socket() {
    let fx = Fixture::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    let (transport, _h) = ok(fx.run(connect_accepted_socket(
        &fx.lp,
        Echo::default,
        accepted.into(),
        None,
    )));
    assert_eq!(transport.peername(), Some(Address::Inet(peer)));
    let reader = std::thread::spawn(move || {
        use std::io::{Read, Write};
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        buf
    });
    fx.run(until(&fx.lp, || reader.is_finished()));
    assert_eq!(&reader.join().unwrap(), b"ping");
    transport.close();
    let udp = std::os::fd::OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let err = fx.run(connect_accepted_socket(&fx.lp, Echo::default, udp, None));
    assert!(matches!(err, Err(Error::InvalidArgument(_))));
    drop(listener);
    fx.finish();
}
