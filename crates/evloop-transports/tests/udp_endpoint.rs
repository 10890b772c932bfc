//! UDP endpoint creation and the basics of sending and receiving (docs/behaviour.md 5.5,
//! and 7.1/7.6 for datagram transports): address resolution,
//! connected vs unconnected endpoints, `sock`, `reuse_port`,
//! `allow_broadcast`, boundaries, ordering of `connection_made` and
//! creation, `peername`/`sockname`/`fd`.

mod support;

use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;

use evloop_core::{Error, EventLoop};
use evloop_transports::{
    create_datagram_endpoint, set_resolver, Address, DatagramOptions, Family, ResolveFuture,
    ResolveHints, Resolver,
};
use support::datagram::{bound_udp, DLog, Dev, DgramRecorder};
use support::{until, Fixture};

fn invalid(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::InvalidArgument(message)) => message.into_owned(),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn spec_5_5_numeric_local_addr_binds_inline() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        // No resolver is installed: a numeric address needs none.
        let (t, _p, log, addr) = bound_udp(&lp, "127.0.0.1", false).await;
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0);
        assert_eq!(t.peername(), None);
        assert_eq!(log.events(), vec![Dev::Made]);
        t.close();
        until(&lp, || !log.lost().is_empty()).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_datagrams_keep_boundaries() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (rx, _rp, rlog, raddr) = bound_udp(&lp, "127.0.0.1", false).await;
        let (tx, _tp, tlog, taddr) = bound_udp(&lp, "127.0.0.1", false).await;
        let sizes = [1usize, 100, 0, 9000, 65_000, 3];
        let payloads: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| vec![u8::try_from(i).unwrap(); *n])
            .collect();
        for p in &payloads {
            tx.sendto(p, Some(Address::Inet(raddr))).unwrap();
            // Nothing was buffered: it went straight out.
            assert_eq!(tx.get_write_buffer_size(), 0);
        }
        until(&lp, || rlog.datagrams().len() == payloads.len()).await;
        assert_eq!(rlog.datagrams(), payloads);
        assert!(rlog.senders().iter().all(|a| *a == Address::Inet(taddr)));
        assert!(tlog.errors().is_empty());
        rx.close();
        tx.close();
        until(&lp, || rlog.lost().len() == 1 && tlog.lost().len() == 1).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_connected_endpoint_uses_send_and_peername() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (echo, _ep, elog, eaddr) = bound_udp(&lp, "127.0.0.1", true).await;
        let log = DLog::default();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default().remote_addr("127.0.0.1", eaddr.port()),
        )
        .await
        .unwrap();
        assert_eq!(t.peername(), Some(Address::Inet(eaddr)));
        let local = t.sockname().and_then(|a| a.as_inet()).unwrap();
        assert_eq!(local.ip().to_string(), "127.0.0.1");
        // None, or the peer's own address, both go to the peer.
        t.sendto(b"one", None).unwrap();
        t.sendto(b"two", Some(Address::Inet(eaddr))).unwrap();
        // Any other address is a bad argument (asyncio: ValueError).
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let message = invalid(t.sendto(b"x", Some(Address::Inet(other))));
        assert!(
            message.contains("Invalid address: must be None or"),
            "{message}"
        );
        until(&lp, || log.datagrams().len() == 2).await;
        assert_eq!(log.datagrams(), vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(log.senders(), vec![Address::Inet(eaddr); 2]);
        assert_eq!(elog.senders(), vec![Address::Inet(local); 2]);
        t.close();
        echo.close();
        until(&lp, || log.lost().len() == 1 && elog.lost().len() == 1).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_unconnected_sendto_address_checks() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (t, _p, log, _) = bound_udp(&lp, "127.0.0.1", false).await;
        // An unconnected endpoint needs a destination.
        invalid(t.sendto(b"x", None));
        // An IPv6 destination on an IPv4 socket: family mismatch.
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert!(invalid(t.sendto(b"x", Some(Address::Inet(v6)))).contains("family mismatch"));
        // Unix addresses on an internet socket.
        invalid(t.sendto(b"x", Some(Address::UnixPath("/tmp/x".into()))));
        invalid(t.sendto(b"x", Some(Address::UnixUnnamed)));
        // A host name is refused without any lookup (see udp_errors.rs for
        // the resolver-call count); a numeric host string is fine.
        assert!(invalid(t.sendto_host(b"x", "localhost", 9)).contains("DNS lookup"));
        invalid(t.sendto_host(b"x", "[::1]", 9));
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", false).await;
        t.sendto_host(b"numeric", "127.0.0.1", paddr.port())
            .unwrap();
        until(&lp, || plog.datagrams().len() == 1).await;
        assert_eq!(plog.datagrams(), vec![b"numeric".to_vec()]);
        assert!(log.errors().is_empty());
        t.close();
        peer.close();
        until(&lp, || log.lost().len() == 1 && plog.lost().len() == 1).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_connection_made_then_reading_then_creation_completes() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", false).await;
        let log = DLog::default();
        let runs = Rc::new(Cell::new(0));
        let (factory_log, factory_runs) = (log.clone(), runs.clone());
        let creating = create_datagram_endpoint(
            &lp,
            move || {
                factory_runs.set(factory_runs.get() + 1);
                DgramRecorder {
                    log: factory_log,
                    ..DgramRecorder::default()
                }
            },
            DatagramOptions::default().remote_addr("127.0.0.1", paddr.port()),
        );
        let (t, p) = creating.await.unwrap();
        log.push(Dev::Mark("created"));
        assert_eq!(log.events(), vec![Dev::Made, Dev::Mark("created")]);
        assert_eq!(runs.get(), 1);
        // The handle reaches the protocol between callbacks.
        assert!(p.with(|r| r.transport.is_some()).unwrap());
        // Reading started before creation completed: a reply arrives.
        let local = t.sockname().unwrap();
        peer.sendto(b"hi", Some(local)).unwrap();
        until(&lp, || log.datagrams().len() == 1).await;
        assert!(plog.events().len() == 1);
        t.close();
        peer.close();
        until(&lp, || log.lost().len() == 1 && plog.lost().len() == 1).await;
        assert_eq!(runs.get(), 1);
    });
    fx.finish();
}

#[test]
fn spec_5_5_dropping_the_creating_future_aborts_the_endpoint() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let creating = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default().local_addr("127.0.0.1", 0),
        );
        let mut creating = Box::pin(creating);
        // The socket is made at once; the future then waits for the loop.
        assert!(futures_lite::future::poll_once(creating.as_mut())
            .await
            .is_none());
        drop(creating);
        until(&lp, || !log.lost().is_empty()).await;
        assert_eq!(log.events(), vec![Dev::Made, Dev::Lost(None)]);
    });
    fx.finish();
}

#[test]
fn spec_5_5_peername_sockname_fd() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", false).await;
        let log = DLog::default();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default()
                .local_addr("127.0.0.1", 0)
                .remote_addr("127.0.0.1", paddr.port()),
        )
        .await
        .unwrap();
        assert_eq!(t.peername(), Some(Address::Inet(paddr)));
        let fd = t.fd().expect("fd while open");
        // SAFETY: the transport keeps `fd` open until connection_lost, which
        // has not happened yet; the borrow ends within this statement.
        let sockname = rustix::net::getsockname(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap();
        let sockname = SocketAddr::try_from(sockname).unwrap();
        assert_eq!(t.sockname(), Some(Address::Inet(sockname)));
        // `add_reader` cannot name a transport's fd (it takes a borrow the
        // transport does not give), and removal by number cannot take the
        // transport's watcher.
        assert!(!lp.remove_reader_by_number(fd));
        assert!(!t.is_closing());
        t.close();
        assert!(t.is_closing());
        until(&lp, || log.lost().len() == 1).await;
        assert_eq!(t.fd(), None);
        // Closing twice is harmless; connection_lost came once.
        t.close();
        t.abort();
        peer.close();
        until(&lp, || plog.lost().len() == 1).await;
        assert_eq!(log.lost(), vec![None]);
    });
    fx.finish();
}

#[test]
fn spec_5_5_ipv6_loopback_round_trip() {
    if !support::ipv6_available() {
        announce_skip("udp_endpoint::spec_5_5_ipv6_loopback_round_trip: ::1 is not available here");
        return;
    }
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (echo, _ep, elog, eaddr) = bound_udp(&lp, "::1", true).await;
        assert!(eaddr.is_ipv6());
        let log = DLog::default();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default().remote_addr("::1", eaddr.port()),
        )
        .await
        .unwrap();
        t.sendto(b"v6", None).unwrap();
        until(&lp, || log.datagrams().len() == 1).await;
        assert_eq!(log.senders(), vec![Address::Inet(eaddr)]);
        t.close();
        echo.close();
        until(&lp, || log.lost().len() == 1 && elog.lost().len() == 1).await;
    });
    fx.finish();
}

/// A resolver that maps `peer.test` to 127.0.0.1 and counts its calls.
struct FakeResolver(Rc<Cell<usize>>);

impl Resolver for FakeResolver {
    fn resolve(
        &self,
        _event_loop: &EventLoop,
        host: Option<&str>,
        port: u16,
        _hints: ResolveHints,
    ) -> ResolveFuture {
        self.0.set(self.0.get() + 1);
        let found = match host {
            Some("peer.test") => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
            other => Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{other:?} not found"),
            ))),
        };
        Box::pin(async move { found })
    }
}

#[test]
fn spec_5_5_names_resolve_through_the_installed_resolver() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        // Without a resolver, a name is refused (no blocking lookup).
        let refused = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default().local_addr("peer.test", 0),
        )
        .await;
        invalid(refused);
        let calls = Rc::new(Cell::new(0));
        set_resolver(&lp, Rc::new(FakeResolver(calls.clone())));
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", false).await;
        assert_eq!(calls.get(), 0, "numeric hosts never reach the resolver");
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default()
                .local_addr("peer.test", 0)
                .remote_addr("peer.test", paddr.port()),
        )
        .await
        .unwrap();
        assert_eq!(calls.get(), 2);
        assert_eq!(t.peername(), Some(Address::Inet(paddr)));
        t.sendto(b"named", None).unwrap();
        until(&lp, || plog.datagrams().len() == 1).await;
        // A resolver error is returned as is.
        let failed = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&DLog::default()),
            DatagramOptions::default().remote_addr("nowhere.test", 9),
        )
        .await;
        assert_eq!(
            failed.unwrap_err().io_kind(),
            Some(std::io::ErrorKind::NotFound)
        );
        t.close();
        peer.close();
        until(&lp, || log.lost().len() == 1 && plog.lost().len() == 1).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_argument_errors() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let make = |options: DatagramOptions| {
            create_datagram_endpoint(&lp, DgramRecorder::factory(&log), options)
        };
        // No address and no family (asyncio: 'unexpected address family').
        let message = invalid(make(DatagramOptions::default()).await);
        assert!(message.contains("unexpected address family"), "{message}");
        // A family the addresses do not have: no pair.
        invalid(
            make(
                DatagramOptions::default()
                    .local_addr("::1", 0)
                    .family(Family::Inet),
            )
            .await,
        );
        // Local and remote of different families cannot be paired.
        let message = invalid(
            make(
                DatagramOptions::default()
                    .local_addr("127.0.0.1", 0)
                    .remote_addr("::1", 9),
            )
            .await,
        );
        assert!(
            message.contains("can not get address information"),
            "{message}"
        );
        // sock with any other option.
        let sock = OwnedFd::from(UdpSocket::bind("127.0.0.1:0").unwrap());
        let message = invalid(
            make(
                DatagramOptions::default()
                    .sock(sock)
                    .local_addr("127.0.0.1", 0),
            )
            .await,
        );
        assert!(
            message.contains("socket modifier keyword arguments"),
            "{message}"
        );
        // A stream socket as sock.
        let stream = OwnedFd::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let message = invalid(make(DatagramOptions::default().sock(stream)).await);
        assert!(
            message.contains("datagram socket was expected"),
            "{message}"
        );
        assert!(log.events().is_empty(), "the factory never ran");
    });
    fx.finish();
}

#[test]
fn spec_5_5_family_only_endpoint_autobinds_on_send() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", true).await;
        let log = DLog::default();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default().family(Family::Inet),
        )
        .await
        .unwrap();
        t.sendto(b"auto", Some(Address::Inet(paddr))).unwrap();
        until(&lp, || log.datagrams().len() == 1).await;
        assert_eq!(log.datagrams(), vec![b"auto".to_vec()]);
        t.close();
        peer.close();
        until(&lp, || log.lost().len() == 1 && plog.lost().len() == 1).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_existing_sock_is_used_as_is() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", true).await;
        let std_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        std_sock.connect(paddr).unwrap();
        let local = std_sock.local_addr().unwrap();
        let log = DLog::default();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default().sock(OwnedFd::from(std_sock)),
        )
        .await
        .unwrap();
        assert_eq!(t.sockname(), Some(Address::Inet(local)));
        assert_eq!(t.peername(), Some(Address::Inet(paddr)));
        t.sendto(b"via sock", None).unwrap();
        until(&lp, || log.datagrams().len() == 1).await;
        t.close();
        peer.close();
        until(&lp, || log.lost().len() == 1 && plog.lost().len() == 1).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_reuse_port_and_bind_errors_keep_errno() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let options = |port: u16, reuse_port: bool| {
            DatagramOptions::default()
                .local_addr("127.0.0.1", port)
                .reuse_port(reuse_port)
        };
        let (a, _pa) =
            create_datagram_endpoint(&lp, DgramRecorder::factory(&log), options(0, true))
                .await
                .unwrap();
        let port = a.sockname().and_then(|s| s.as_inet()).unwrap().port();
        let (b, _pb) =
            create_datagram_endpoint(&lp, DgramRecorder::factory(&log), options(port, true))
                .await
                .unwrap();
        assert_eq!(b.sockname(), a.sockname());
        // Without SO_REUSEPORT the port is taken: the OS error, errno kept.
        let taken = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&DLog::default()),
            options(port, false),
        )
        .await;
        match taken {
            Err(Error::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
                assert_eq!(
                    e.raw_os_error(),
                    Some(rustix::io::Errno::ADDRINUSE.raw_os_error())
                );
            }
            other => panic!("expected EADDRINUSE, got {other:?}"),
        }
        a.close();
        b.close();
        until(&lp, || log.lost().len() == 2).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_allow_broadcast_sets_so_broadcast_and_does_not_connect() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", false).await;
        let log = DLog::default();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default()
                .remote_addr("127.0.0.1", paddr.port())
                .allow_broadcast(true),
        )
        .await
        .unwrap();
        assert_eq!(
            t.peername(),
            None,
            "remote_addr is not connected with allow_broadcast"
        );
        let fd = t.fd().unwrap();
        // SAFETY: the transport keeps `fd` open until connection_lost, which
        // has not happened yet; the borrow ends within this statement.
        let on = rustix::net::sockopt::socket_broadcast(unsafe { BorrowedFd::borrow_raw(fd) });
        assert!(on.unwrap());
        t.sendto(b"b", Some(Address::Inet(paddr))).unwrap();
        until(&lp, || plog.datagrams().len() == 1).await;
        t.close();
        peer.close();
        until(&lp, || log.lost().len() == 1 && plog.lost().len() == 1).await;
    });
    fx.finish();
}

/// Says that part of this test was skipped, and why: on stderr, and in the
/// file `cargo xtask test` collects skips from (`$EVLOOP_SKIP_LOG`).
fn announce_skip(what: &str) {
    eprintln!("skipped: {what}");
    if let Some(path) = std::env::var_os("EVLOOP_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(log, "{what}");
        }
    }
}
