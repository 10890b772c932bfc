//! UDP error paths (docs/behaviour.md 5.5, 7.2, 7.3): OS errors go to
//! `error_received` and never close the endpoint; host names are refused
//! without a lookup; a panicking protocol is reported and closes the
//! endpoint with an error; sends after close are silent no-ops.

mod support;

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;

use evloop_core::{Error, EventLoop};
use evloop_transports::{
    create_datagram_endpoint, set_resolver, Address, DatagramOptions, DatagramProtocol,
    DatagramTransport, ResolveFuture, ResolveHints, Resolver,
};
use support::datagram::{bound_udp, DLog, Dev, DgramRecorder};
use support::{until, Fixture};

/// `EMSGSIZE` (its `ErrorKind` is not nameable on stable).
fn emsgsize() -> io::Error {
    io::Error::from_raw_os_error(rustix::io::Errno::MSGSIZE.raw_os_error())
}

/// A free UDP port on 127.0.0.1: bound, then released.
fn free_port() -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.local_addr().unwrap().port()
}

#[test]
fn spec_5_5_connection_refused_goes_to_error_received_and_the_endpoint_survives() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let port = free_port();
        let log = DLog::default();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            DgramRecorder::factory(&log),
            DatagramOptions::default().remote_addr("127.0.0.1", port),
        )
        .await
        .unwrap();
        // Nobody listens: the ICMP port-unreachable comes back as
        // ECONNREFUSED on the connected socket's next receive.
        t.sendto(b"anyone?", None).unwrap();
        until(&lp, || !log.errors().is_empty()).await;
        assert_eq!(log.errors()[0].0, io::ErrorKind::ConnectionRefused);
        assert_eq!(
            log.errors()[0].1,
            Some(rustix::io::Errno::CONNREFUSED.raw_os_error())
        );
        assert!(!t.is_closing());
        assert!(log.lost().is_empty());
        // The endpoint still works: a live peer on that port round-trips.
        let plog = DLog::default();
        let (peer, _pp) = create_datagram_endpoint(
            &lp,
            DgramRecorder::echo_factory(&plog),
            DatagramOptions::default().local_addr("127.0.0.1", port),
        )
        .await
        .expect("rebind the released port");
        t.sendto(b"ping", None).unwrap();
        until(&lp, || log.datagrams().len() == 1).await;
        assert_eq!(log.datagrams(), vec![b"ping".to_vec()]);
        assert!(log.lost().is_empty());
        t.close();
        peer.close();
        until(&lp, || log.lost().len() == 1 && plog.lost().len() == 1).await;
        assert_eq!(log.lost(), vec![None]);
    });
    fx.finish();
}

#[test]
fn spec_5_5_send_oserror_goes_to_error_received_and_the_endpoint_survives() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", false).await;
        let (t, _p, log, _) = bound_udp(&lp, "127.0.0.1", false).await;
        // Larger than any UDP datagram: EMSGSIZE, reported, dropped.
        t.sendto(&vec![7u8; 70_000], Some(Address::Inet(paddr)))
            .unwrap();
        assert_eq!(log.errors(), vec![(emsgsize().kind(), Some(90))]);
        assert_eq!(t.get_write_buffer_size(), 0);
        assert!(!t.is_closing());
        t.sendto(b"after", Some(Address::Inet(paddr))).unwrap();
        until(&lp, || plog.datagrams().len() == 1).await;
        assert_eq!(plog.datagrams(), vec![b"after".to_vec()]);
        assert!(log.lost().is_empty());
        t.close();
        peer.close();
        until(&lp, || log.lost().len() == 1 && plog.lost().len() == 1).await;
    });
    fx.finish();
}

/// Sends an oversized reply from inside `datagram_received`.
struct OversizedReply {
    log: DLog,
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for OversizedReply {
    fn connection_made(&mut self, transport: DatagramTransport) {
        self.transport = Some(transport);
    }
    fn datagram_received(&mut self, data: &[u8], addr: Address) {
        self.log.push(Dev::Datagram(data.to_vec(), addr.clone()));
        let t = self.transport.as_ref().unwrap();
        t.sendto(&vec![0u8; 70_000], Some(addr)).unwrap();
        self.log.push(Dev::Mark("sendto returned"));
    }
    fn error_received(&mut self, error: io::Error) {
        self.log
            .push(Dev::Error(error.kind(), error.raw_os_error()));
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.log.push(Dev::Lost(error.map(|e| e.to_string())));
        self.transport = None;
    }
}

#[test]
fn spec_5_5_error_received_from_inside_a_callback_is_deferred_not_reentrant() {
    // `sendto` fails inside `datagram_received`; the error reaches
    // `error_received` right after that callback returns, not inside it.
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let factory_log = log.clone();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            move || OversizedReply {
                log: factory_log,
                transport: None,
            },
            DatagramOptions::default().local_addr("127.0.0.1", 0),
        )
        .await
        .unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = sender.local_addr().unwrap();
        sender
            .send_to(b"q", t.sockname().unwrap().as_inet().unwrap())
            .unwrap();
        until(&lp, || !log.errors().is_empty()).await;
        assert_eq!(
            log.events(),
            vec![
                Dev::Datagram(b"q".to_vec(), Address::Inet(from)),
                Dev::Mark("sendto returned"),
                Dev::Error(emsgsize().kind(), Some(90)),
            ]
        );
        assert!(!t.is_closing());
        t.close();
        until(&lp, || log.lost().len() == 1).await;
    });
    fx.finish();
}

/// A resolver that only counts calls and never answers.
struct Counting(Rc<Cell<usize>>);

impl Resolver for Counting {
    fn resolve(
        &self,
        _event_loop: &EventLoop,
        _host: Option<&str>,
        _port: u16,
        _hints: ResolveHints,
    ) -> ResolveFuture {
        self.0.set(self.0.get() + 1);
        Box::pin(std::future::pending())
    }
}

#[test]
fn spec_5_5_hostname_sendto_is_invalid_argument_without_lookup() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let calls = Rc::new(Cell::new(0));
        set_resolver(&lp, Rc::new(Counting(calls.clone())));
        let (t, _p, log, _) = bound_udp(&lp, "127.0.0.1", false).await;
        for host in ["localhost", "example.com", "peer.test"] {
            match t.sendto_host(b"x", host, 53) {
                Err(Error::InvalidArgument(message)) => {
                    assert!(message.contains("requires a DNS lookup"), "{message}");
                }
                other => panic!("expected InvalidArgument for {host}, got {other:?}"),
            }
        }
        assert_eq!(calls.get(), 0, "no lookup, not even off the loop");
        assert!(log.errors().is_empty());
        t.close();
        until(&lp, || log.lost().len() == 1).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_panic_in_datagram_received_reports_and_closes_with_error() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    let errors = fx.errors.clone();
    fx.run(async move {
        let log = DLog::default();
        let factory_log = log.clone();
        let (t, _p) = create_datagram_endpoint(
            &lp,
            move || DgramRecorder {
                log: factory_log,
                panic_on: Some(b"boom".to_vec()),
                ..DgramRecorder::default()
            },
            DatagramOptions::default().local_addr("127.0.0.1", 0),
        )
        .await
        .unwrap();
        let to = t.sockname().unwrap().as_inet().unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"fine", to).unwrap();
        sender.send_to(b"boom", to).unwrap();
        sender.send_to(b"never seen", to).unwrap();
        until(&lp, || !log.lost().is_empty()).await;
        let events = log.events();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[0], Dev::Made);
        assert!(matches!(&events[1], Dev::Datagram(d, _) if d == b"fine"));
        match &events[2] {
            Dev::Lost(Some(text)) => assert!(text.contains("datagram_received panics"), "{text}"),
            other => panic!("expected connection_lost(Some(error)), got {other:?}"),
        }
        assert!(t.is_closing());
        assert_eq!(t.fd(), None);
        let reported = std::mem::take(&mut *errors.borrow_mut());
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert!(
            reported[0].contains("protocol.datagram_received() call failed"),
            "{reported:?}"
        );
    });
    fx.finish();
}

#[test]
fn spec_5_5_sendto_after_close_is_a_silent_noop() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (peer, _pp, plog, paddr) = bound_udp(&lp, "127.0.0.1", false).await;
        let (t, _p, log, _) = bound_udp(&lp, "127.0.0.1", false).await;
        t.close();
        // Before and after connection_lost: no error, no panic, nothing sent
        // (warned through tracing from the fifth drop).
        for _ in 0..3 {
            t.sendto(b"dropped", Some(Address::Inet(paddr))).unwrap();
        }
        until(&lp, || log.lost().len() == 1).await;
        for _ in 0..4 {
            t.sendto(b"dropped", Some(Address::Inet(paddr))).unwrap();
        }
        assert_eq!(t.get_write_buffer_size(), 0);
        // A sentinel from another socket: had anything been sent, it would
        // have arrived first.
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        other.send_to(b"sentinel", paddr).unwrap();
        until(&lp, || !plog.datagrams().is_empty()).await;
        assert_eq!(plog.datagrams(), vec![b"sentinel".to_vec()]);
        assert!(log.errors().is_empty());
        assert_eq!(log.lost(), vec![None]);
        peer.close();
        until(&lp, || plog.lost().len() == 1).await;
    });
    fx.finish();
}

#[test]
fn spec_5_5_abort_after_close_and_lost_is_a_noop() {
    let fx = Fixture::new();
    let lp = fx.lp.clone();
    fx.run(async move {
        let (t, _p, log, _) = bound_udp(&lp, "127.0.0.1", false).await;
        t.abort();
        t.abort();
        t.close();
        until(&lp, || log.lost().len() == 1).await;
        t.abort();
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        t.sendto(b"x", Some(Address::Inet(to))).unwrap();
        assert_eq!(log.events(), vec![Dev::Made, Dev::Lost(None)]);
    });
    fx.finish();
}
