//! docs/behaviour.md 16.1: handshake, byte-exact echo both ways, the details a TLS
//! transport reports, close_notify in both directions, write_eof,
//! BufferedProtocol over TLS, flow control under a peer that never reads,
//! and many connect/close cycles without a leaked fd; a close() that ends
//! a peer which kept its side open, and a peer that vanishes.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use evloop_tls::{TlsTransportExt, DEFAULT_HANDSHAKE_TIMEOUT};
use evloop_transports::{
    create_connection, create_connection_buffered, create_server, BufferedProtocol, ConnectOptions,
    Protocol, Server, ServerOptions, Transport,
};
use support::*;

fn tls_connect(tls: evloop_tls::ClientTls) -> ConnectOptions {
    ConnectOptions::default().tls(tls)
}

#[test]
fn spec_16_1_handshake_and_1mib_echo_both_ways() {
    let fx = Fixture::new();
    let (server, port) = echo_server(&fx, server_tls());
    let lp = fx.lp.clone();
    let connect = create_connection(
        &fx.lp,
        move || Recorder::new(&lp),
        Some("127.0.0.1"),
        Some(port),
        tls_connect(client_tls()),
    );
    let (transport, client) = fx.run(connect).expect("connect");
    assert!(transport.is_tls());
    assert_eq!(
        client.with(|c| c.events.clone()).unwrap(),
        vec![Event::Made]
    );
    let sent = payload(1 << 20);
    transport.write(&sent);
    let lp = fx.lp.clone();
    fx.run(until(&lp, || {
        client.with(|c| c.data.len()).unwrap() >= sent.len()
    }));
    let echoed = client.with(|c| std::mem::take(&mut c.data)).unwrap();
    assert!(echoed == sent, "echo differs from what was sent");
    transport.close();
    let lost = client.with(|c| c.lost.clone()).unwrap();
    fx.run(lost).unwrap();
    let events = client.with(|c| c.events.clone()).unwrap();
    assert_eq!(events.first(), Some(&Event::Made));
    assert_eq!(events.last(), Some(&Event::Lost(None)));
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_tls_info_reports_version_cipher_certificates_and_sni() {
    let fx = Fixture::new();
    let seen = Rc::new(RefCell::new(None));
    let record = seen.clone();
    struct Peek(Rc<RefCell<Option<evloop_tls::TlsInfo>>>);
    impl Protocol for Peek {
        fn connection_made(&mut self, transport: Transport) {
            *self.0.borrow_mut() = transport.tls_info();
            transport.write(b"x");
        }
    }
    let (server, port) = tls_server(&fx, move || Peek(record.clone()));
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls().server_hostname("localhost")),
        ))
        .unwrap();
    let info = transport.tls_info().expect("client info");
    assert_eq!(info.protocol_version, "TLSv1.3");
    assert!(
        info.cipher_suite.starts_with("TLS13_"),
        "{}",
        info.cipher_suite
    );
    assert_eq!(info.peer_certificates, vec![pki().server_chain[0].to_vec()]);
    assert!(!info.server_side);
    assert!(transport.peername().is_some() && transport.fd().is_some());
    let lp = fx.lp.clone();
    fx.run(until(&lp, || client.with(|c| !c.data.is_empty()).unwrap()));
    let server_info = seen.borrow().clone().expect("server info");
    assert!(server_info.server_side);
    assert_eq!(server_info.server_name.as_deref(), Some("localhost"));
    assert!(server_info.peer_certificates.is_empty());
    transport.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_close_notify_from_the_server_is_eof_then_lost() {
    let fx = Fixture::new();
    // The server says hello and closes at once.
    struct HelloClose;
    impl Protocol for HelloClose {
        fn connection_made(&mut self, transport: Transport) {
            transport.write(b"bye");
            transport.close();
        }
    }
    let (server, port) = tls_server(&fx, || HelloClose);
    let lp = fx.lp.clone();
    let (_transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls()),
        ))
        .unwrap();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    let (events, data) = client.with(|c| (c.events.clone(), c.data.clone())).unwrap();
    assert_eq!(data, b"bye");
    assert_eq!(
        events,
        vec![Event::Made, Event::Data(3), Event::Eof, Event::Lost(None)]
    );
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_write_eof_sends_close_notify_and_keeps_reading() {
    let fx = Fixture::new();
    // The server answers after the client's close_notify: it keeps its
    // write side open on EOF, sends a reply, then closes.
    struct ReplyOnEof(Option<Transport>, usize);
    impl Protocol for ReplyOnEof {
        fn connection_made(&mut self, transport: Transport) {
            self.0 = Some(transport);
        }
        fn data_received(&mut self, data: &[u8]) {
            self.1 += data.len();
        }
        fn eof_received(&mut self) -> bool {
            let t = self.0.take().unwrap();
            t.write(format!("got {}", self.1).as_bytes());
            t.close();
            true
        }
    }
    let (server, port) = tls_server(&fx, || ReplyOnEof(None, 0));
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || {
                let mut r = Recorder::new(&lp);
                r.keep_open_on_eof = true;
                r
            },
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls()),
        ))
        .unwrap();
    assert!(transport.can_write_eof());
    transport.write(&[7u8; 1000]);
    transport.write_eof();
    transport.write(b"ignored after write_eof");
    fx.run(until(&fx.lp.clone(), || {
        client.with(|c| c.events.contains(&Event::Eof)).unwrap()
    }));
    assert_eq!(client.with(|c| c.data.clone()).unwrap(), b"got 1000");
    transport.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert_eq!(
        client.with(|c| c.events.last().cloned()).unwrap(),
        Some(Event::Lost(None))
    );
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

/// A buffered protocol with a deliberately small buffer.
struct Small {
    buf: [u8; 7],
    got: Vec<u8>,
    lost: Rc<Cell<bool>>,
}

impl BufferedProtocol for Small {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(&payload(100_000));
    }
    fn get_buffer(&mut self, _size_hint: usize) -> &mut [u8] {
        &mut self.buf
    }
    fn buffer_updated(&mut self, nbytes: usize) {
        self.got.extend_from_slice(&self.buf[..nbytes]);
    }
    fn connection_lost(&mut self, _error: Option<std::io::Error>) {
        self.lost.set(true);
    }
}

#[test]
fn spec_16_1_buffered_protocol_gets_plaintext_in_its_own_buffer() {
    let fx = Fixture::new();
    let (server, port) = echo_server(&fx, server_tls());
    let lost = Rc::new(Cell::new(false));
    let lost_flag = lost.clone();
    let (transport, client) = fx
        .run(create_connection_buffered(
            &fx.lp,
            move || Small {
                buf: [0; 7],
                got: Vec::new(),
                lost: lost_flag,
            },
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls()),
        ))
        .unwrap();
    let lp = fx.lp.clone();
    fx.run(until(&lp, || {
        client.with(|c| c.got.len()).unwrap() >= 100_000
    }));
    assert!(client.with(|c| c.got == payload(100_000)).unwrap());
    transport.close();
    fx.run(until(&lp, || lost.get()));
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_flow_control_under_a_peer_that_never_reads() {
    let fx = Fixture::new();
    // The server never reads: it pauses reading on connection_made.
    struct Deaf;
    impl Protocol for Deaf {
        fn connection_made(&mut self, transport: Transport) {
            transport.pause_reading();
            std::mem::forget(transport);
        }
    }
    let (server, port) = tls_server(&fx, || Deaf);
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls()),
        ))
        .unwrap();
    // Write as a well-behaved producer does: until told to pause.
    let chunk = vec![1u8; 16 * 1024];
    let mut written = 0usize;
    for _ in 0..10_000 {
        if client
            .with(|c| c.events.contains(&Event::PauseWriting))
            .unwrap()
        {
            break;
        }
        transport.write(&chunk);
        written += chunk.len();
        // The loop writes what the socket takes, without sleeping.
        fx.drain();
    }
    assert!(
        client
            .with(|c| c.events.contains(&Event::PauseWriting))
            .unwrap(),
        "never paused after {written} bytes"
    );
    let buffered = transport.get_write_buffer_size();
    let (_low, high) = transport.get_write_buffer_limits();
    assert!(
        buffered > high,
        "paused with {buffered} buffered (high {high})"
    );
    assert!(buffered < high + 64 * 1024, "buffer unbounded: {buffered}");
    transport.abort();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    server.close();
    server.abort_clients();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_thousand_connect_close_cycles_leak_no_fd() {
    let fx = Fixture::new();
    let (server, port) = echo_server(&fx, server_tls());
    let before = fd_count();
    let tls = client_tls();
    for round in 0..1000 {
        let lp = fx.lp.clone();
        let (transport, client) = fx
            .run(create_connection(
                &fx.lp,
                move || Recorder::new(&lp),
                Some("127.0.0.1"),
                Some(port),
                tls_connect(tls.clone()),
            ))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        transport.write(b"ping");
        let lp = fx.lp.clone();
        fx.run(until(&lp, || client.with(|c| c.data.len()).unwrap() >= 4));
        transport.close();
        fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    }
    // What the last close queued runs (the server side's close).
    fx.drain();
    assert_eq!(fd_count(), before, "fds changed over 1000 TLS cycles");
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_default_timeouts_are_asyncios() {
    assert_eq!(DEFAULT_HANDSHAKE_TIMEOUT, Duration::from_secs(60));
    assert_eq!(
        evloop_tls::DEFAULT_SHUTDOWN_TIMEOUT,
        Duration::from_secs(30)
    );
}

#[test]
fn spec_16_1_close_while_reading_is_paused_still_sees_the_peers_close_notify() {
    /// Echoes, and says when it has.
    struct FlaggedEcho(Option<Transport>, Rc<Cell<bool>>);
    impl Protocol for FlaggedEcho {
        fn connection_made(&mut self, transport: Transport) {
            self.0 = Some(transport);
        }
        fn data_received(&mut self, data: &[u8]) {
            if let Some(t) = &self.0 {
                t.write(data);
                self.1.set(true);
            }
        }
        fn connection_lost(&mut self, _error: Option<std::io::Error>) {
            self.0 = None;
        }
    }
    let fx = Fixture::new();
    let echoed = Rc::new(Cell::new(false));
    let flag = echoed.clone();
    let (server, port) = tls_server(&fx, move || FlaggedEcho(None, flag.clone()));
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls().shutdown_timeout(Duration::from_secs(30))),
        ))
        .unwrap();
    transport.pause_reading();
    assert!(!transport.is_reading());
    transport.write(b"echoed while we do not read");
    // The server has echoed (its write goes to the socket at once), then
    // the loop runs until quiet: the echo must not be delivered.
    let lp = fx.lp.clone();
    fx.run(until(&lp, || echoed.get()));
    fx.drain();
    assert!(
        client.with(|c| c.data.is_empty()).unwrap(),
        "data while paused"
    );
    let start = std::time::Instant::now();
    transport.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "close waited for the shutdown timeout: the peer's close_notify was not seen"
    );
    assert_eq!(
        client.with(|c| c.events.clone()).unwrap(),
        vec![Event::Made, Event::Lost(None)],
        "data after close() must be dropped"
    );
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

/// Keeps its write side open on EOF after saying "bye"; records events.
struct KeepOpen(Option<Transport>, Rc<RefCell<Vec<Event>>>);
impl Protocol for KeepOpen {
    fn connection_made(&mut self, transport: Transport) {
        self.0 = Some(transport);
        self.1.borrow_mut().push(Event::Made);
    }
    fn eof_received(&mut self) -> bool {
        self.1.borrow_mut().push(Event::Eof);
        if let Some(t) = &self.0 {
            t.write(b"bye");
        }
        true
    }
    fn connection_lost(&mut self, error: Option<std::io::Error>) {
        self.0 = None;
        let kind = error.as_ref().map(std::io::Error::kind);
        self.1.borrow_mut().push(Event::Lost(kind));
    }
}
/// A TLS server on 127.0.0.1 (the test certificate) whose connections
/// `factory` makes; returns it and its port.
fn tls_server<P: Protocol>(fx: &Fixture, factory: impl Fn() -> P + 'static) -> (Server, u16) {
    let options = ServerOptions::default()
        .host(["127.0.0.1"])
        .tls(server_tls());
    let server = fx.run(create_server(&fx.lp, factory, options)).unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    (server, port)
}

/// A TLS server on 127.0.0.1 whose connections are [`KeepOpen`]; returns
/// it, its port and the events of its connections.
fn keep_open_server(fx: &Fixture) -> (Server, u16, Rc<RefCell<Vec<Event>>>) {
    let server_events = Rc::new(RefCell::new(Vec::new()));
    let events = server_events.clone();
    let (server, port) = tls_server(fx, move || KeepOpen(None, events.clone()));
    (server, port, server_events)
}

#[test]
fn spec_16_1_close_ends_a_peer_that_kept_its_side_open_on_close_notify() {
    // The server keeps its write side open on the client's close_notify
    // (a half-close, as after write_eof), says "bye" and waits. The
    // client's close() follows its close_notify with a TCP EOF: the server
    // ends too, answering close_notify, so the client's close does not wait
    // for the shutdown timeout, and nobody sees an error.
    let fx = Fixture::new();
    let (server, port, server_events) = keep_open_server(&fx);
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls().shutdown_timeout(Duration::from_secs(30))),
        ))
        .unwrap();
    // First a half-close: the server stays open and answers.
    transport.write_eof();
    let lp = fx.lp.clone();
    fx.run(until(&lp, || client.with(|c| c.data == b"bye").unwrap()));
    assert_eq!(*server_events.borrow(), vec![Event::Made, Event::Eof]);
    // Then the close.
    let start = std::time::Instant::now();
    transport.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "close waited for the shutdown timeout: the peer did not end"
    );
    assert_eq!(
        client.with(|c| c.events.last().cloned()).unwrap(),
        Some(Event::Lost(None))
    );
    let lp = fx.lp.clone();
    fx.run(until(&lp, || server_events.borrow().len() == 3));
    assert_eq!(
        *server_events.borrow(),
        vec![Event::Made, Event::Eof, Event::Lost(None)]
    );
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_a_peer_that_vanishes_is_eof_then_lost_without_error() {
    // The client aborts: a TCP EOF without close_notify. As asyncio, the
    // server hears eof_received, then connection_lost(None) although it
    // asked to stay open; no close_notify goes to a peer that is gone (a
    // write to it would fail).
    let fx = Fixture::new();
    let (server, port, server_events) = keep_open_server(&fx);
    for _ in 0..20 {
        let lp = fx.lp.clone();
        let (transport, client) = fx
            .run(create_connection(
                &fx.lp,
                move || Recorder::new(&lp),
                Some("127.0.0.1"),
                Some(port),
                tls_connect(client_tls()),
            ))
            .unwrap();
        let lp = fx.lp.clone();
        let made = server_events.clone();
        fx.run(until(&lp, || made.borrow().last() == Some(&Event::Made)));
        transport.abort();
        fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
        let lp = fx.lp.clone();
        let lost = server_events.clone();
        fx.run(until(&lp, || {
            matches!(lost.borrow().last(), Some(Event::Lost(_)))
        }));
        assert_eq!(
            server_events.borrow_mut().drain(..).collect::<Vec<_>>(),
            vec![Event::Made, Event::Eof, Event::Lost(None)]
        );
    }
    server.close();
    fx.run(server.wait_closed());
    fx.finish();
}
