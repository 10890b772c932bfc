//! docs/behaviour.md 16.1, bad input: peers that do not speak TLS, stall, send broken or
//! oversized records, reset mid-handshake, never answer close_notify, try
//! to renegotiate; a panicking protocol over TLS; bad timeouts; bad PEM
//! files. Each gets a typed error or a clean `connection_lost` with it:
//! never a panic in the loop, never a stuck connection, never a leaked fd,
//! and the server keeps serving.

mod support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evloop_core::{Error, ErrorContext, TlsError, TlsErrorKind};
use evloop_tls::rustls;
use evloop_tls::rustls::pki_types::ServerName;
use evloop_tls::{start_tls_protocol, ClientTls, ServerTls};
use evloop_transports::{
    create_connection, create_server, ConnectOptions, Protocol, Server, ServerOptions, Transport,
};
use support::*;

fn tls_connect(tls: ClientTls) -> ConnectOptions {
    ConnectOptions::default().tls(tls)
}

/// What the server's application protocols saw, all connections together.
#[derive(Default)]
struct Tapped {
    made: usize,
    data: Vec<u8>,
    lost: Vec<Option<io::Error>>,
}

/// Greets with "hi", echoes, records into `Tapped`.
struct Tap(Rc<RefCell<Tapped>>, Option<Transport>);

impl Protocol for Tap {
    fn connection_made(&mut self, transport: Transport) {
        self.0.borrow_mut().made += 1;
        transport.write(b"hi");
        self.1 = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.0.borrow_mut().data.extend_from_slice(data);
        if let Some(t) = &self.1 {
            t.write(data);
        }
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.0.borrow_mut().lost.push(error);
        self.1 = None;
    }
}

fn tap_server(fx: &Fixture, tls: ServerTls) -> (Server, u16, Rc<RefCell<Tapped>>) {
    let tapped = Rc::new(RefCell::new(Tapped::default()));
    let shared = tapped.clone();
    let options = ServerOptions::default().host(["127.0.0.1"]).tls(tls);
    let server = fx
        .run(create_server(
            &fx.lp,
            move || Tap(shared.clone(), None),
            options,
        ))
        .expect("server");
    let port = server.sockets()[0].as_inet().unwrap().port();
    (server, port, tapped)
}

fn stop(fx: &Fixture, server: Server) {
    server.close();
    fx.run(server.wait_closed());
}

/// A real TLS client still gets through: the server keeps serving.
fn assert_still_serving(fx: &Fixture, port: u16) {
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls().server_hostname("localhost")),
        ))
        .expect("a good client after a bad one");
    transport.write(b"still there?");
    let lp = fx.lp.clone();
    fx.run(until(&lp, || client.with(|c| c.data.len()).unwrap() >= 14));
    assert_eq!(client.with(|c| c.data.clone()).unwrap(), b"histill there?");
    transport.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert_eq!(
        client.with(|c| c.events.last().cloned()).unwrap(),
        Some(Event::Lost(None))
    );
}

/// How a raw peer's connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// EOF after these bytes (an alert, say).
    Eof(Vec<u8>),
    Reset,
    /// Nothing ended the connection within the thread's read timeout.
    Stuck,
}

fn read_to_end(sock: &mut TcpStream) -> End {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return End::Eof(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return End::Reset,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return End::Stuck
            }
            Err(e) => panic!("raw peer read: {e}"),
        }
    }
}

/// A raw TCP client in a thread: sends `bytes`, then reads to the end.
fn raw_client(port: u16, bytes: Vec<u8>) -> JoinHandle<(End, Duration)> {
    std::thread::spawn(move || {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.write_all(&bytes).unwrap();
        let sent = Instant::now();
        let end = read_to_end(&mut sock);
        (end, sent.elapsed())
    })
}

/// Runs the loop until `thread` is done; its result.
fn join<T>(fx: &Fixture, thread: JoinHandle<T>) -> T {
    let limit = Duration::from_secs(20);
    fx.run_for(limit, until(&fx.lp.clone(), || thread.is_finished()));
    thread.join().expect("peer thread panicked")
}

/// Waits for `count` exception-handler calls and returns them all.
fn handler_calls(fx: &Fixture, count: usize) -> Vec<ErrorContext> {
    let errors = fx.errors.clone();
    fx.run_for(
        Duration::from_secs(20),
        until(&fx.lp.clone(), move || errors.borrow().len() >= count),
    );
    // What else is queued runs: a further report would show.
    fx.drain();
    fx.take_errors()
}

/// The one "TLS handshake failed" report, and its error.
fn one_handshake_failure(fx: &Fixture) -> Error {
    let errors = handler_calls(fx, 1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].message, "TLS handshake failed", "{errors:?}");
    assert!(errors[0].transport.is_some(), "{errors:?}");
    errors[0].error.clone().expect("the handshake's error")
}

fn assert_tls_error(error: &Error, kind: TlsErrorKind) -> rustls::Error {
    assert_eq!(tls_kind(error), Some(kind), "{error:?}");
    let tls = std::error::Error::source(error).expect("Error::Tls has a source");
    let cause = tls
        .source()
        .expect("the rustls error is the TlsError's source");
    cause
        .downcast_ref::<rustls::Error>()
        .unwrap_or_else(|| panic!("not a rustls::Error: {cause:?}"))
        .clone()
}

/// A ClientHello as rustls sends it.
fn client_hello() -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(client_tls().config().clone(), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    assert_eq!(out[0], 0x16, "a handshake record");
    out
}

#[test]
fn spec_16_1_plaintext_http_instead_of_client_hello() {
    let fx = Fixture::new();
    let (server, port, tapped) = tap_server(&fx, server_tls());
    let (end, _) = join(&fx, raw_client(port, b"GET / HTTP/1.0\r\n\r\n".to_vec()));
    assert!(
        matches!(end, End::Eof(_) | End::Reset),
        "the server must close the fd: {end:?}"
    );
    let error = one_handshake_failure(&fx);
    let cause = assert_tls_error(&error, TlsErrorKind::NotTls);
    assert!(
        matches!(cause, rustls::Error::InvalidMessage(_)),
        "{cause:?}"
    );
    assert!(error.to_string().contains("does not speak TLS"), "{error}");
    // The application protocol saw nothing of it.
    assert_eq!(tapped.borrow().made, 0);
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_failed_handshake_is_silent_outside_debug_mode() {
    // asyncio logs a server's failed handshake only in debug mode: a server
    // facing scanners must not flood its exception handler.
    let fx = Fixture::new();
    fx.lp.set_debug(false);
    let (server, port, tapped) = tap_server(&fx, server_tls());
    let (end, _) = join(&fx, raw_client(port, b"GET / HTTP/1.0\r\n\r\n".to_vec()));
    assert!(
        matches!(end, End::Eof(_) | End::Reset),
        "the server must close the fd: {end:?}"
    );
    fx.drain();
    assert!(fx.take_errors().is_empty(), "no report outside debug mode");
    assert_eq!(tapped.borrow().made, 0);
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_random_bytes_instead_of_client_hello() {
    let fx = Fixture::new();
    let (server, port, tapped) = tap_server(&fx, server_tls());
    // From a plain evloop connection this time.
    let lp = fx.lp.clone();
    let (transport, junk) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default(),
        ))
        .unwrap();
    let mut bytes = vec![0xc3u8];
    bytes.extend_from_slice(&payload(2047));
    transport.write(&bytes);
    fx.run(junk.with(|c| c.lost.clone()).unwrap()).unwrap();
    let events = junk.with(|c| c.events.clone()).unwrap();
    assert!(
        matches!(
            events.last(),
            Some(Event::Lost(None | Some(io::ErrorKind::ConnectionReset)))
        ),
        "{events:?}"
    );
    let error = one_handshake_failure(&fx);
    assert_tls_error(&error, TlsErrorKind::NotTls);
    assert_eq!(tapped.borrow().made, 0);
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_half_a_client_hello_then_silence_times_out() {
    let fx = Fixture::new();
    let timeout = Duration::from_millis(300);
    let (server, port, tapped) = tap_server(&fx, server_tls().handshake_timeout(timeout));
    let hello = client_hello();
    let half = hello[..hello.len() / 2].to_vec();
    let (end, waited) = join(&fx, raw_client(port, half));
    assert!(
        matches!(end, End::Eof(_) | End::Reset),
        "dropped at the timeout: {end:?}"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "too late: {waited:?}");
    let error = one_handshake_failure(&fx);
    assert_eq!(error.io_kind(), Some(io::ErrorKind::TimedOut), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("TLS handshake is taking longer than 0.3 seconds"),
        "{error}"
    );
    assert_eq!(tapped.borrow().made, 0);
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_client_whose_server_stalls_times_out() {
    let fx = Fixture::new();
    // Connections complete in the kernel's backlog; nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fds_before_connect = fd_count();
    let started = Instant::now();
    let lp = fx.lp.clone();
    let result = fx.run_for(
        Duration::from_secs(10),
        create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(
                client_tls()
                    .server_hostname("localhost")
                    .handshake_timeout(Duration::from_millis(300)),
            ),
        ),
    );
    let waited = started.elapsed();
    let error = result.expect_err("the handshake cannot complete");
    assert_eq!(error.io_kind(), Some(io::ErrorKind::TimedOut), "{error:?}");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // The client's socket is closed: the listener's queued connection ends.
    fx.run(until(&fx.lp.clone(), || fd_count() == fds_before_connect));
    let (mut accepted, _) = listener.accept().unwrap();
    assert!(matches!(
        read_to_end(&mut accepted),
        End::Eof(_) | End::Reset
    ));
    drop(accepted);
    drop(listener);
    fx.finish();
}

/// A blocking rustls client in a thread: completes the handshake, reads
/// the server's "hi", then `then` writes raw bytes on the socket; finally
/// reads the raw socket to its end.
fn tls_peer(port: u16, then: impl FnOnce(&mut TcpStream) + Send + 'static) -> JoinHandle<End> {
    let config = client_tls().config().clone();
    std::thread::spawn(move || {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).expect("handshake");
        }
        let mut got = Vec::new();
        while got.len() < 2 {
            conn.complete_io(&mut sock).expect("read the greeting");
            let mut buf = [0u8; 16];
            match conn.reader().read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("greeting: {e}"),
            }
        }
        assert_eq!(got, b"hi");
        then(&mut sock);
        read_to_end(&mut sock)
    })
}

/// The server's single connection was lost with a TLS error of `kind`.
fn assert_lost_with(fx: &Fixture, tapped: &Rc<RefCell<Tapped>>, kind: TlsErrorKind) {
    let t = tapped.clone();
    fx.run(until(&fx.lp.clone(), move || !t.borrow().lost.is_empty()));
    let tapped = tapped.borrow();
    assert_eq!(tapped.made, 1);
    assert_eq!(tapped.lost.len(), 1);
    let error = tapped.lost[0]
        .as_ref()
        .expect("connection_lost with a TLS error, not a clean end");
    let tls = TlsError::from_io(error).unwrap_or_else(|| panic!("not a TLS error: {error:?}"));
    assert_eq!(tls.kind(), kind, "{tls:?}");
    assert!(std::error::Error::source(tls).is_some(), "{tls:?}");
}

#[test]
fn spec_16_1_oversized_record_after_the_handshake() {
    let fx = Fixture::new();
    let (server, port, tapped) = tap_server(&fx, server_tls());
    let peer = tls_peer(port, |sock| {
        // application_data, TLS 1.2 on the wire, 0x5000 > 2^14 + 2048.
        let mut record = vec![0x17, 0x03, 0x03, 0x50, 0x00];
        record.extend_from_slice(&payload(1000));
        sock.write_all(&record).unwrap();
    });
    let end = join(&fx, peer);
    assert!(matches!(end, End::Eof(_) | End::Reset), "{end:?}");
    assert_lost_with(&fx, &tapped, TlsErrorKind::NotTls);
    let lost = tapped.borrow_mut().lost.pop().unwrap().unwrap();
    let cause = Error::from(lost);
    let cause = assert_tls_error(&cause, TlsErrorKind::NotTls);
    assert!(
        matches!(
            cause,
            rustls::Error::PeerSentOversizedRecord
                | rustls::Error::InvalidMessage(rustls::InvalidMessage::MessageTooLarge)
        ),
        "{cause:?}"
    );
    assert!(fx.take_errors().is_empty());
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_corrupted_record_after_the_handshake() {
    let fx = Fixture::new();
    let (server, port, tapped) = tap_server(&fx, server_tls());
    let peer = tls_peer(port, |sock| {
        // A well-formed header over bytes that do not decrypt.
        let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
        record.extend_from_slice(&payload(0x40));
        sock.write_all(&record).unwrap();
    });
    let end = join(&fx, peer);
    assert!(matches!(end, End::Eof(_) | End::Reset), "{end:?}");
    assert_lost_with(&fx, &tapped, TlsErrorKind::NotTls);
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_truncated_record_after_the_handshake() {
    let fx = Fixture::new();
    let (server, port, tapped) = tap_server(&fx, server_tls());
    let peer = tls_peer(port, |sock| {
        // A header for 0x40 bytes, 20 of them, then EOF: the record is cut.
        let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
        record.extend_from_slice(&payload(20));
        sock.write_all(&record).unwrap();
        sock.shutdown(Shutdown::Write).unwrap();
    });
    let end = join(&fx, peer);
    assert!(matches!(end, End::Eof(_) | End::Reset), "{end:?}");
    // A cut record is a truncation, not a clean end: connection_lost gets
    // a TLS error (not eof_received + connection_lost(None)).
    let t = tapped.clone();
    fx.run(until(&fx.lp.clone(), move || !t.borrow().lost.is_empty()));
    let error = tapped.borrow_mut().lost.pop().unwrap();
    let error = error.expect("a truncated record must not end the connection cleanly");
    assert!(
        TlsError::from_io(&error).is_some(),
        "connection_lost with a TLS error, got {error:?}"
    );
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_client_that_resets_mid_handshake() {
    let fx = Fixture::new();
    let (server, port, tapped) = tap_server(&fx, server_tls());
    let hello = client_hello();
    // Send the hello, wait for the server's flight, then close without
    // reading it: unread data makes the kernel send RST, not FIN.
    let peer = std::thread::spawn(move || {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(&hello).unwrap();
        let mut buf = [0u8; 1];
        let peeked = sock.peek(&mut buf).unwrap();
        assert_eq!(peeked, 1, "the server answers the hello");
        drop(sock);
    });
    join(&fx, peer);
    let error = one_handshake_failure(&fx);
    assert!(
        matches!(
            error.io_kind(),
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        ),
        "{error:?}"
    );
    assert_eq!(tapped.borrow().made, 0);
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_server_that_resets_mid_handshake() {
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept, wait for the ClientHello, close without reading it: RST.
    let peer = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(sock.peek(&mut buf).unwrap(), 1);
        drop(sock);
    });
    let lp = fx.lp.clone();
    let result = fx.run_for(
        Duration::from_secs(20),
        create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls().server_hostname("localhost")),
        ),
    );
    let error = result.expect_err("the server reset");
    assert!(
        matches!(
            error.io_kind(),
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        ),
        "{error:?}"
    );
    join(&fx, peer);
    fx.finish();
}

fn assert_invalid(error: &Error, message: &str) {
    match error {
        Error::InvalidArgument(m) => assert_eq!(m, message),
        other => panic!("expected InvalidArgument({message:?}), got {other:?}"),
    }
}

#[test]
fn spec_16_1_zero_timeouts_are_invalid_arguments() {
    let fx = Fixture::new();
    let (server, port, _tapped) = tap_server(&fx, server_tls());
    let cases = [
        (
            client_tls().handshake_timeout(Duration::ZERO),
            "ssl_handshake_timeout should be a positive number, got 0",
        ),
        (
            client_tls().shutdown_timeout(Duration::ZERO),
            "ssl_shutdown_timeout should be a positive number, got 0",
        ),
    ];
    for (tls, message) in cases {
        let lp = fx.lp.clone();
        let error = fx
            .run(create_connection(
                &fx.lp,
                move || Recorder::new(&lp),
                Some("127.0.0.1"),
                Some(port),
                tls_connect(tls.server_hostname("localhost")),
            ))
            .expect_err("zero timeout");
        assert_invalid(&error, message);
        // start_tls checks the same way, before touching the transport.
        let lp = fx.lp.clone();
        let (plain, handle) = fx
            .run(create_connection(
                &fx.lp,
                move || Recorder::new(&lp),
                Some("127.0.0.1"),
                Some(port),
                ConnectOptions::default(),
            ))
            .unwrap();
        let bad = if message.starts_with("ssl_handshake") {
            server_tls().handshake_timeout(Duration::ZERO)
        } else {
            server_tls().shutdown_timeout(Duration::ZERO)
        };
        let error = fx
            .run(start_tls_protocol(&fx.lp, &plain, &handle, bad))
            .expect_err("zero timeout");
        assert_invalid(&error, message);
        assert!(!plain.is_closing(), "a refused start_tls leaves it alone");
        plain.abort();
        fx.run(handle.with(|c| c.lost.clone()).unwrap()).unwrap();
    }
    // The server saw connections end before any TLS: reported, not served.
    // Let the accepts already ready run, then wait for the server's
    // connections to end (wait_closed) and for what that queued.
    fx.drain();
    stop(&fx, server);
    fx.drain();
    for e in fx.take_errors() {
        assert_eq!(e.message, "TLS handshake failed", "{e:?}");
    }
    fx.finish();
}

#[test]
fn spec_16_1_zero_timeout_on_a_server_is_invalid_argument() {
    // A server whose every handshake would be refused is refused itself,
    // up front: not a listener that drops each connection unreported.
    let fx = Fixture::new();
    let cases = [
        (
            server_tls().handshake_timeout(Duration::ZERO),
            "ssl_handshake_timeout should be a positive number, got 0",
        ),
        (
            server_tls().shutdown_timeout(Duration::ZERO),
            "ssl_shutdown_timeout should be a positive number, got 0",
        ),
    ];
    for (tls, message) in cases {
        let options = ServerOptions::default().host(["127.0.0.1"]).tls(tls);
        match fx.run(create_server(&fx.lp, || Tap(Rc::default(), None), options)) {
            Err(error) => assert_invalid(&error, message),
            Ok(server) => {
                let port = server.sockets()[0].as_inet().unwrap().port();
                let (end, _) = join(&fx, raw_client(port, client_hello()));
                stop(&fx, server);
                panic!(
                    "create_server accepted a ServerTls with a zero timeout \
                     (expected InvalidArgument({message:?})); a connection to it \
                     ended with {end:?} and these reports: {:?}",
                    fx.take_errors()
                );
            }
        }
    }
    fx.finish();
}

#[test]
fn spec_16_1_shutdown_timeout_when_the_peer_never_answers_close_notify() {
    let fx = Fixture::new();
    // The server never reads again, so it never sees (or answers) our
    // close_notify.
    struct Deaf(Option<Transport>);
    impl Protocol for Deaf {
        fn connection_made(&mut self, transport: Transport) {
            transport.pause_reading();
            self.0 = Some(transport);
        }
    }
    let options = ServerOptions::default()
        .host(["127.0.0.1"])
        .tls(server_tls());
    let server = fx
        .run(create_server(&fx.lp, || Deaf(None), options))
        .unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(
                client_tls()
                    .server_hostname("localhost")
                    .shutdown_timeout(Duration::from_millis(300)),
            ),
        ))
        .unwrap();
    transport.write(b"unanswered");
    let started = Instant::now();
    transport.close();
    assert!(transport.is_closing());
    fx.run_for(
        Duration::from_secs(10),
        client.with(|c| c.lost.clone()).unwrap(),
    )
    .unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let (events, error) = client
        .with(|c| (c.events.clone(), c.lost_error.take()))
        .unwrap();
    assert_eq!(
        events.last(),
        Some(&Event::Lost(Some(io::ErrorKind::TimedOut)))
    );
    let error = error.unwrap();
    assert!(error.to_string().contains("shutdown timed out"), "{error}");
    server.close();
    server.abort_clients();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_panic_in_data_received_over_tls() {
    let fx = Fixture::new();
    // The first connection's protocol panics on data; later ones echo.
    struct Fragile(bool, Option<Transport>);
    impl Protocol for Fragile {
        fn connection_made(&mut self, transport: Transport) {
            transport.write(b"hi");
            self.1 = Some(transport);
        }
        fn data_received(&mut self, data: &[u8]) {
            assert!(!self.0, "deliberate panic in data_received");
            if let Some(t) = &self.1 {
                t.write(data);
            }
        }
    }
    let first = Rc::new(std::cell::Cell::new(true));
    let options = ServerOptions::default()
        .host(["127.0.0.1"])
        .tls(server_tls());
    let server = fx
        .run(create_server(
            &fx.lp,
            move || Fragile(first.replace(false), None),
            options,
        ))
        .unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    let lp = fx.lp.clone();
    let (transport, victim) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            tls_connect(client_tls().server_hostname("localhost")),
        ))
        .unwrap();
    transport.write(b"boom");
    fx.run(victim.with(|c| c.lost.clone()).unwrap()).unwrap();
    let errors = handler_calls(&fx, 1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.contains("data_received"),
        "{:?}",
        errors[0]
    );
    assert!(
        matches!(&errors[0].error, Some(Error::Panic(m)) if m.contains("deliberate panic")),
        "{:?}",
        errors[0]
    );
    assert_still_serving(&fx, port);
    stop(&fx, server);
    fx.finish();
}

// ----- PEM and key files ------------------------------------------------

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn config_error(result: Result<ServerTls, Error>) -> (String, Option<String>) {
    match result {
        Err(Error::Tls(tls)) => {
            assert_eq!(tls.kind(), TlsErrorKind::Config, "{tls:?}");
            let source = std::error::Error::source(&tls).map(ToString::to_string);
            (tls.to_string(), source)
        }
        Err(other) => panic!("expected a TLS Config error, got {other:?}"),
        Ok(_) => panic!("expected a TLS Config error, got a configuration"),
    }
}

#[test]
fn spec_16_1_pem_files_give_typed_errors() {
    let fx = Fixture::new();
    let dir = Scratch::new("bad-pem");
    let p = pki();
    let (cert, key_file) = server_pem_files(&dir);
    assert!(ServerTls::from_pem_files(&cert, &key_file).is_ok());

    // A missing file: Io NotFound, naming the path.
    let missing = dir.path("nowhere.pem");
    match ServerTls::from_pem_files(&missing, &key_file) {
        Err(Error::Io(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            assert!(e.to_string().contains("nowhere.pem"), "{e}");
        }
        other => panic!("expected Io(NotFound), got {other:?}"),
    }
    match ServerTls::from_pem_files(&cert, dir.path("no.key")) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
        other => panic!("expected Io(NotFound), got {other:?}"),
    }

    // Malformed PEM: bad base64, and a section that never ends.
    let bad_b64 = dir.file(
        "bad64.pem",
        "-----BEGIN CERTIFICATE-----\n@@@@ not base64 @@@@\n-----END CERTIFICATE-----\n",
    );
    let (message, _) = config_error(ServerTls::from_pem_files(&bad_b64, &key_file));
    assert!(
        message.contains("bad64.pem") && message.contains("malformed PEM"),
        "{message}"
    );
    let first_line_only = p
        .server_cert_pem
        .lines()
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    let unterminated = dir.file("cut.pem", &first_line_only);
    let (message, _) = config_error(ServerTls::from_pem_files(&unterminated, &key_file));
    assert!(
        message.contains("cut.pem") && message.contains("malformed PEM"),
        "{message}"
    );

    // A file with no certificate in it.
    let empty = dir.file("notes.pem", "just some notes, no PEM at all\n");
    let (message, _) = config_error(ServerTls::from_pem_files(&empty, &key_file));
    assert!(message.contains("no certificate"), "{message}");
    // A key file with no key (a certificate instead).
    let (message, _) = config_error(ServerTls::from_pem_files(&cert, &cert));
    assert!(message.contains("no private key"), "{message}");

    // An unsupported key: random bytes dressed as PKCS#8.
    let junk_key = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64(&payload(64))
    );
    let junk_key = dir.file("junk.key", &junk_key);
    let (message, _) = config_error(ServerTls::from_pem_files(&cert, &junk_key));
    assert!(
        message.contains("unsupported or invalid private key"),
        "{message}"
    );

    // A key that does not match the certificate.
    let other = dir.file("other.key", &p.other_key_pem);
    let (message, source) = config_error(ServerTls::from_pem_files(&cert, &other));
    assert!(message.contains("does not match"), "{message}");
    assert!(source.is_some(), "the rustls error is the source");

    // The client side's files: the same typed errors.
    match ClientTls::builder().root_pem_file(&missing).build() {
        Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
        other => panic!("expected Io(NotFound), got {other:?}"),
    }
    match ClientTls::builder().root_pem_file(&empty).build() {
        Err(error) => assert_eq!(tls_kind(&error), Some(TlsErrorKind::Config), "{error:?}"),
        Ok(_) => panic!("a root file with no certificate"),
    }
    match ClientTls::builder()
        .root_store(roots())
        .client_cert_pem_files(&cert, &other)
        .build()
    {
        Err(error) => assert_eq!(tls_kind(&error), Some(TlsErrorKind::Config), "{error:?}"),
        Ok(_) => panic!("a client key that does not match"),
    }
    let good_roots = dir.file("ca.pem", &p.ca_pem);
    assert!(ClientTls::builder()
        .root_pem_file(&good_roots)
        .build()
        .is_ok());
    drop(dir);
    fx.finish();
}

// ----- renegotiation ----------------------------------------------------

#[test]
fn spec_16_1_renegotiation_attempt_is_handled_cleanly() {
    let openssl = openssl().expect(
        "openssl is required for this test (Debian: apt-get install openssl; .ci/run installs it)",
    );
    let fx = Fixture::new();
    let dir = Scratch::new("reneg");
    let ca = dir.file("ca.pem", &pki().ca_pem);
    let (server, port, tapped) = tap_server(&fx, server_tls());
    // No -quiet: that would turn off s_client's command letters ("R").
    let mut child = Command::new(openssl)
        .args(["s_client", "-tls1_2", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost", "-CAfile"])
        .arg(&ca)
        .arg("-verify_return_error")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    // Wait for the connection, prove it works, then ask to renegotiate.
    let t = tapped.clone();
    fx.run(until(&fx.lp.clone(), move || t.borrow().made == 1));
    stdin.write_all(b"before\n").unwrap();
    let t = tapped.clone();
    fx.run(until(&fx.lp.clone(), move || {
        t.borrow().data.ends_with(b"before\n")
    }));
    stdin.write_all(b"R\n").unwrap();
    stdin.write_all(b"after\n").unwrap();
    stdin.flush().unwrap();
    // Either the connection goes on (rustls declines, the client accepts
    // that) or it ends with a TLS error; never stuck.
    let t = tapped.clone();
    fx.run_for(
        Duration::from_secs(20),
        until(&fx.lp.clone(), move || {
            let t = t.borrow();
            !t.lost.is_empty() || t.data.ends_with(b"after\n")
        }),
    );
    drop(stdin); // s_client quits at EOF on its input
    let child_done = {
        let limit = Instant::now() + Duration::from_secs(10);
        let mut done = false;
        fx.run_for(
            Duration::from_secs(15),
            until(&fx.lp.clone(), || {
                done = child.try_wait().unwrap().is_some();
                done || Instant::now() > limit
            }),
        );
        done
    };
    if !child_done {
        let _ = child.kill();
    }
    let _ = child.wait();
    assert!(child_done, "s_client did not end");
    let t = tapped.clone();
    fx.run(until(&fx.lp.clone(), move || !t.borrow().lost.is_empty()));
    {
        let t = tapped.borrow();
        assert_eq!(t.made, 1);
        assert_eq!(t.lost.len(), 1);
        if let Some(error) = &t.lost[0] {
            // A renegotiation refused with an error: a TLS one, or the
            // peer's close.
            assert!(
                TlsError::from_io(error).is_some()
                    || matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ),
                "{error:?}"
            );
        }
    }
    let errors = fx.take_errors();
    assert!(errors.is_empty(), "{errors:?}");
    assert_still_serving(&fx, port);
    stop(&fx, server);
    drop(dir);
    fx.finish();
}
