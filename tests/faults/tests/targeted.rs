//! Targeted fault-injection tests, one behaviour each, with fixed plans:
//! transient faults (`EINTR`, `EAGAIN`, short counts) on writes are
//! retried and never reach the protocol; a reset is reported once through
//! `connection_lost`; `EMFILE` on accept is reported and serving resumes;
//! `ENOBUFS` on a datagram send drops that datagram and is reported once;
//! the seam does nothing on a thread that did not switch it on.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use evloop_core::{ErrorContext, EventLoop, LoopFuture};
use evloop_transports::fault::{self, Fault, FaultPlan, FaultRates, Op};
use evloop_transports::{
    create_connection, create_datagram_endpoint, create_server, Address, ConnectOptions,
    DatagramOptions, DatagramProtocol, DatagramTransport, Protocol, Server, ServerOptions,
    Transport,
};

/// One test at a time: the fd checks look at the whole process.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

use evloop_testkit::fd_count;

/// A loop recording its exception-handler calls.
fn new_loop() -> (EventLoop, Rc<RefCell<Vec<ErrorContext>>>) {
    let lp = EventLoop::new().expect("loop");
    let calls: Rc<RefCell<Vec<ErrorContext>>> = Rc::default();
    let sink = calls.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
        sink.borrow_mut().push(ctx.clone());
    }));
    (lp, calls)
}

/// Runs `future` with a 20 s guard.
fn run<F: std::future::Future>(lp: &EventLoop, future: F) -> F::Output {
    let stopper = lp.clone();
    let guard = lp
        .call_later(Duration::from_secs(20), move || stopper.stop())
        .expect("guard");
    let out = lp.run_until_complete(future).expect("the test timed out");
    guard.cancel();
    out
}

fn plan(seed: u64, rates: FaultRates) -> FaultPlan {
    FaultPlan { seed, rates }
}

/// What one end saw.
#[derive(Default)]
struct Seen {
    made: u32,
    data: Vec<u8>,
    lost: Vec<Option<io::Error>>,
    after_lost: u32,
}

/// An echo server end, or a client that sends `send` then half-closes.
struct Peer {
    seen: Rc<RefCell<Seen>>,
    lost: LoopFuture<()>,
    transport: Option<Transport>,
    send: Option<Vec<u8>>,
    target: Option<FaultPlan>,
}

impl Peer {
    fn new(lp: &EventLoop, send: Option<Vec<u8>>, target: Option<FaultPlan>) -> Peer {
        Peer {
            seen: Rc::default(),
            lost: lp.create_future(),
            transport: None,
            send,
            target,
        }
    }
}

impl Protocol for Peer {
    fn connection_made(&mut self, transport: Transport) {
        self.seen.borrow_mut().made += 1;
        if let (Some(plan), Some(fd)) = (&self.target, transport.fd()) {
            fault::target(fd, plan);
        }
        if let Some(data) = &self.send {
            for chunk in data.chunks(7000) {
                transport.write(chunk);
            }
            transport.write_eof();
        }
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        if !seen.lost.is_empty() {
            seen.after_lost += 1;
        }
        seen.data.extend_from_slice(data);
        if self.send.is_none() {
            if let Some(t) = &self.transport {
                t.write(data);
            }
        }
    }

    fn eof_received(&mut self) -> bool {
        false
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.seen.borrow_mut().lost.push(error);
        self.transport = None;
        let _ = self.lost.set_result(());
    }
}

/// An echo server whose connections get `server_plan`.
fn echo_server(
    lp: &EventLoop,
    server_plan: Option<FaultPlan>,
) -> (Server, u16, Rc<RefCell<Seen>>, LoopFuture<()>) {
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let lost = lp.create_future::<()>();
    let (s, l, lp2) = (seen.clone(), lost.clone(), lp.clone());
    let factory = move || {
        let mut peer = Peer::new(&lp2, None, server_plan.clone());
        peer.seen = s.clone();
        peer.lost = l.clone();
        peer
    };
    let options = ServerOptions::default().host(["127.0.0.1"]).port(0);
    let server = run(lp, create_server(lp, factory, options)).expect("server");
    let port = server.sockets()[0].as_inet().expect("inet").port();
    (server, port, seen, lost)
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn fault_eintr_eagain_and_short_writes_are_retried_never_reported() {
    let _serial = serial();
    let fds = fd_count();
    fault::install();
    let (lp, calls) = new_loop();
    let rates = FaultRates {
        eagain: 0.3,
        eintr: 0.3,
        short: 0.3,
        ..FaultRates::default()
    };
    let (server, port, server_seen, server_lost) = echo_server(&lp, Some(plan(8, rates.clone())));
    let sent = payload(1 << 20);
    let client = Peer::new(&lp, Some(sent.clone()), Some(plan(7, rates)));
    let (client_seen, client_lost) = (client.seen.clone(), client.lost.clone());
    run(
        &lp,
        create_connection(
            &lp,
            move || client,
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default(),
        ),
    )
    .expect("connect");
    run(&lp, async {
        let _ = client_lost.await;
        let _ = server_lost.await;
    });
    let stats = fault::stats();
    for op in [Op::Read, Op::Write] {
        for fault in [Fault::Intr, Fault::Again, Fault::Short] {
            assert!(
                stats.get(&(op, fault)).copied().unwrap_or(0) > 0,
                "no {fault:?} injected on {op:?}: {stats:?}"
            );
        }
    }
    let client = client_seen.borrow();
    assert!(client.data == sent, "the echo differs from what was sent");
    assert!(server_seen.borrow().data == sent);
    assert!(matches!(client.lost[..], [None]), "{:?}", client.lost);
    assert!(matches!(server_seen.borrow().lost[..], [None]));
    assert!(calls.borrow().is_empty(), "{:?}", calls.borrow());
    drop(client);
    server.close();
    run(&lp, server.wait_closed());
    lp.close().expect("close");
    fault::uninstall();
    assert_eq!(fd_count(), fds, "an fd leaked");
}

#[test]
fn fault_reset_on_read_is_reported_once_through_connection_lost() {
    let _serial = serial();
    let fds = fd_count();
    fault::install();
    let (lp, calls) = new_loop();
    let reset = FaultRates {
        reset: 1.0,
        ..FaultRates::default()
    };
    let (server, port, server_seen, server_lost) = echo_server(&lp, Some(plan(1, reset)));
    let client = Peer::new(&lp, Some(payload(100_000)), None);
    let client_lost = client.lost.clone();
    run(
        &lp,
        create_connection(
            &lp,
            move || client,
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default(),
        ),
    )
    .expect("connect");
    run(&lp, async {
        let _ = server_lost.await;
        let _ = client_lost.await;
    });
    // Let anything queued run: a second connection_lost would show.
    run(&lp, async {
        for _ in 0..10 {
            let f = lp.create_future::<()>();
            let g = f.clone();
            lp.call_soon(move || {
                let _ = g.set_result(());
            })
            .expect("call_soon");
            let _ = f.await;
        }
    });
    let seen = server_seen.borrow();
    assert_eq!(seen.made, 1);
    assert_eq!(
        seen.lost.len(),
        1,
        "connection_lost ran {} times",
        seen.lost.len()
    );
    let error = seen.lost[0]
        .as_ref()
        .expect("connection_lost with the error");
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}");
    assert!(seen.data.is_empty(), "data before the first read failed");
    assert_eq!(seen.after_lost, 0);
    // A reset is the ordinary end of a connection: not an exception.
    assert!(calls.borrow().is_empty(), "{:?}", calls.borrow());
    drop(seen);
    server.close();
    run(&lp, server.wait_closed());
    lp.close().expect("close");
    fault::uninstall();
    assert_eq!(fd_count(), fds, "an fd leaked");
}

#[test]
fn fault_emfile_on_accept_is_reported_and_serving_resumes() {
    let _serial = serial();
    let fds = fd_count();
    fault::install();
    let (lp, calls) = new_loop();
    let (server, port, server_seen, server_lost) = echo_server(&lp, None);
    let listener = server.fds()[0];
    let emfile = FaultRates {
        emfile: 1.0,
        ..FaultRates::default()
    };
    fault::target(listener, &plan(3, emfile));
    let sent = payload(10_000);
    let client = Peer::new(&lp, Some(sent.clone()), None);
    let (client_seen, client_lost) = (client.seen.clone(), client.lost.clone());
    run(
        &lp,
        create_connection(
            &lp,
            move || client,
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default(),
        ),
    )
    .expect("connect");
    // The accept fails with EMFILE: reported, and the server rests.
    let c = calls.clone();
    let lp2 = lp.clone();
    run(&lp, async move {
        while c.borrow().is_empty() {
            let f = lp2.create_future::<()>();
            let g = f.clone();
            let _h = lp2
                .call_later(Duration::from_millis(5), move || {
                    let _ = g.set_result(());
                })
                .expect("call_later");
            let _ = f.await;
        }
    });
    {
        let reported = calls.borrow();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert_eq!(
            reported[0].message,
            "socket.accept() out of system resource"
        );
        let errno = reported[0]
            .error
            .as_ref()
            .and_then(evloop_transports::os_errno);
        assert_eq!(errno, Some(rustix::io::Errno::MFILE.raw_os_error()));
    }
    assert_eq!(server_seen.borrow().made, 0);
    // fds come back: the next accept, after the back-off, succeeds.
    fault::untarget(listener);
    run(&lp, async {
        let _ = client_lost.await;
        let _ = server_lost.await;
    });
    assert!(client_seen.borrow().data == sent);
    assert!(matches!(client_seen.borrow().lost[..], [None]));
    assert_eq!(server_seen.borrow().made, 1);
    assert_eq!(calls.borrow().len(), 1, "{:?}", calls.borrow());
    server.close();
    run(&lp, server.wait_closed());
    lp.close().expect("close");
    fault::uninstall();
    assert_eq!(fd_count(), fds, "an fd leaked");
}

/// A UDP endpoint recording datagrams and errors.
struct Udp {
    transport: Rc<RefCell<Option<DatagramTransport>>>,
    got: Rc<RefCell<Vec<Vec<u8>>>>,
    errors: Rc<RefCell<Vec<io::Error>>>,
    echo: bool,
}

impl DatagramProtocol for Udp {
    fn connection_made(&mut self, transport: DatagramTransport) {
        *self.transport.borrow_mut() = Some(transport);
    }

    fn datagram_received(&mut self, data: &[u8], addr: Address) {
        self.got.borrow_mut().push(data.to_vec());
        if self.echo {
            if let Some(t) = self.transport.borrow().as_ref() {
                t.sendto(data, Some(addr)).expect("sendto");
            }
        }
    }

    fn error_received(&mut self, error: io::Error) {
        self.errors.borrow_mut().push(error);
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.transport.borrow_mut().take();
    }
}

fn udp(echo: bool) -> Udp {
    Udp {
        transport: Rc::default(),
        got: Rc::default(),
        errors: Rc::default(),
        echo,
    }
}

#[test]
fn fault_enobufs_on_datagram_send_drops_it_and_is_reported_once() {
    let _serial = serial();
    let fds = fd_count();
    fault::install();
    let (lp, calls) = new_loop();
    let server = udp(true);
    let server_t = server.transport.clone();
    run(
        &lp,
        create_datagram_endpoint(
            &lp,
            move || server,
            DatagramOptions::default().local_addr("127.0.0.1", 0),
        ),
    )
    .expect("server");
    let port = server_t
        .borrow()
        .as_ref()
        .and_then(|t| t.sockname())
        .and_then(|a| a.as_inet())
        .expect("bound")
        .port();
    let client = udp(false);
    let (client_t, got, errors) = (
        client.transport.clone(),
        client.got.clone(),
        client.errors.clone(),
    );
    run(
        &lp,
        create_datagram_endpoint(
            &lp,
            move || client,
            DatagramOptions::default().remote_addr("127.0.0.1", port),
        ),
    )
    .expect("client");
    let transport = client_t.borrow().clone().expect("client transport");
    let fd = transport.fd().expect("fd");
    let enobufs = FaultRates {
        enobufs: 1.0,
        ..FaultRates::default()
    };
    fault::target(fd, &plan(5, enobufs));
    for i in 0..3u8 {
        transport.sendto(&[i; 10], None).expect("sendto");
    }
    fault::untarget(fd);
    transport.sendto(b"through", None).expect("sendto");
    let lp2 = lp.clone();
    let g = got.clone();
    run(&lp, async move {
        while g.borrow().is_empty() {
            let f = lp2.create_future::<()>();
            let h = f.clone();
            let _t = lp2
                .call_later(Duration::from_millis(2), move || {
                    let _ = h.set_result(());
                })
                .expect("call_later");
            let _ = f.await;
        }
    });
    let errors = errors.borrow();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors
        .iter()
        .all(|e| e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error())));
    assert_eq!(
        *got.borrow(),
        vec![b"through".to_vec()],
        "a dropped datagram came back"
    );
    assert!(calls.borrow().is_empty(), "{:?}", calls.borrow());
    transport.close();
    if let Some(t) = server_t.borrow().clone() {
        t.close();
    }
    drop(transport);
    lp.close().expect("close");
    fault::uninstall();
    assert_eq!(fd_count(), fds, "an fd leaked");
}

#[test]
fn fault_seam_is_inert_on_a_thread_without_a_plan() {
    let _serial = serial();
    // No install on this thread: targeting is refused, nothing is counted.
    fault::uninstall();
    let (lp, calls) = new_loop();
    let (server, port, _server_seen, server_lost) = echo_server(&lp, None);
    let fd = server.fds()[0];
    let always = FaultRates {
        eagain: 1.0,
        ..FaultRates::default()
    };
    assert_eq!(fault::target(fd, &plan(9, always)), None);
    assert!(!fault::is_target(fd));
    let sent = payload(50_000);
    let client = Peer::new(&lp, Some(sent.clone()), None);
    let (client_seen, client_lost) = (client.seen.clone(), client.lost.clone());
    run(
        &lp,
        create_connection(
            &lp,
            move || client,
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default(),
        ),
    )
    .expect("connect");
    run(&lp, async {
        let _ = client_lost.await;
        let _ = server_lost.await;
    });
    assert!(client_seen.borrow().data == sent);
    assert!(fault::stats().is_empty());
    assert!(calls.borrow().is_empty());
    server.close();
    run(&lp, server.wait_closed());
    lp.close().expect("close");
}
