//! docs/behaviour.md 16.1: what a TLS client and server verify. Wrong hostname and
//! unknown CA are refused by default, each with its own error; connecting
//! by IP checks the IP SAN; no name at all is an `InvalidArgument`; only the
//! loudly named dangerous option skips verification; ALPN agreed and
//! refused; client certificates required, missing, presented; TLS over unix
//! sockets.

mod support;

use std::cell::{Cell, RefCell};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use evloop_core::{Error, ErrorContext, TlsErrorKind};
use evloop_tls::rustls;
use evloop_tls::{ClientAuth, ClientTls, ServerTls, TlsInfo, TlsTransportExt};
use evloop_transports::{
    connect_accepted_socket, create_connection, create_server, create_unix_connection,
    create_unix_server, ConnectOptions, Protocol, ProtocolHandle, Server, ServerOptions, Transport,
    UnixConnectOptions, UnixServerOptions,
};
use support::*;

fn tls_connect(tls: ClientTls) -> ConnectOptions {
    ConnectOptions::default().tls(tls)
}

/// A TLS server on `host` whose connections run `factory`.
fn serve<P: Protocol>(
    fx: &Fixture,
    host: &str,
    tls: ServerTls,
    factory: impl Fn() -> P + 'static,
) -> (Server, u16) {
    let options = ServerOptions::default().host([host]).tls(tls);
    let server = fx
        .run(create_server(&fx.lp, factory, options))
        .expect("server");
    let port = server.sockets()[0].as_inet().expect("inet listener").port();
    (server, port)
}

fn connect(
    fx: &Fixture,
    host: &str,
    port: u16,
    tls: ClientTls,
) -> Result<(Transport, ProtocolHandle<Recorder>), Error> {
    let lp = fx.lp.clone();
    fx.run(create_connection(
        &fx.lp,
        move || Recorder::new(&lp),
        Some(host),
        Some(port),
        tls_connect(tls),
    ))
}

/// Asserts `error` is `Error::Tls` of `kind`, that its chain reaches the
/// rustls error through `source()`, and returns that rustls error.
fn assert_tls_error(error: &Error, kind: TlsErrorKind) -> rustls::Error {
    assert_eq!(tls_kind(error), Some(kind), "wrong error: {error:?}");
    let tls = std::error::Error::source(error).expect("Error::Tls has a source (the TlsError)");
    let cause = tls
        .source()
        .expect("the TlsError has the rustls error as its source");
    cause
        .downcast_ref::<rustls::Error>()
        .unwrap_or_else(|| panic!("source is not a rustls::Error: {cause:?}"))
        .clone()
}

/// Counts what the server's application protocols saw.
#[derive(Default)]
struct Seen {
    made: Cell<usize>,
    lost: Cell<usize>,
    info: RefCell<Option<TlsInfo>>,
}

/// Records into `Seen`, writes a greeting (so the client sees the
/// handshake through), and echoes.
struct Watched(Rc<Seen>, Option<Transport>);

impl Protocol for Watched {
    fn connection_made(&mut self, transport: Transport) {
        self.0.made.set(self.0.made.get() + 1);
        *self.0.info.borrow_mut() = transport.tls_info();
        transport.write(b"hi");
        self.1 = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.1 {
            t.write(data);
        }
    }
    fn connection_lost(&mut self, _error: Option<std::io::Error>) {
        self.0.lost.set(self.0.lost.get() + 1);
        self.1 = None;
    }
}

fn watched(seen: &Rc<Seen>) -> impl Fn() -> Watched + 'static {
    let seen = seen.clone();
    move || Watched(seen.clone(), None)
}

/// Waits for the server side's "TLS handshake failed" report and returns
/// every exception-handler call so far.
fn server_handshake_failures(fx: &Fixture, count: usize) -> Vec<ErrorContext> {
    let errors = fx.errors.clone();
    fx.run(until(&fx.lp.clone(), move || {
        errors.borrow().len() >= count
    }));
    // What else is queued runs: a further report would show.
    fx.drain();
    let errors = fx.take_errors();
    for e in &errors {
        assert_eq!(e.message, "TLS handshake failed", "{e:?}");
        assert!(e.error.is_some(), "{e:?}");
    }
    errors
}

/// A round trip over an established client connection.
fn ping(fx: &Fixture, transport: &Transport, client: &ProtocolHandle<Recorder>) {
    let lp = fx.lp.clone();
    fx.run(until(&lp, || client.with(|c| c.data.len()).unwrap() >= 2));
    transport.write(b"ping");
    fx.run(until(&lp, || client.with(|c| c.data.len()).unwrap() >= 6));
    assert_eq!(client.with(|c| c.data.clone()).unwrap(), b"hiping");
}

fn close_client(fx: &Fixture, transport: &Transport, client: &ProtocolHandle<Recorder>) {
    transport.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert_eq!(
        client.with(|c| c.events.last().cloned()).unwrap(),
        Some(Event::Lost(None))
    );
}

fn stop(fx: &Fixture, server: Server) {
    server.close();
    fx.run(server.wait_closed());
}

#[test]
fn spec_16_1_wrong_hostname_is_refused_with_hostname_mismatch() {
    let fx = Fixture::new();
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(&fx, "127.0.0.1", server_tls(), watched(&seen));
    let error = connect(
        &fx,
        "127.0.0.1",
        port,
        client_tls().server_hostname("wrong.example.org"),
    )
    .expect_err("a certificate for localhost must not pass for wrong.example.org");
    let cause = assert_tls_error(&error, TlsErrorKind::HostnameMismatch);
    assert!(
        matches!(cause, rustls::Error::InvalidCertificate(_)),
        "{cause:?}"
    );
    assert!(
        error.to_string().contains("certificate verify failed"),
        "{error}"
    );
    // The server hears the client's alert; its app protocol saw nothing.
    let errors = server_handshake_failures(&fx, 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        tls_kind(errors[0].error.as_ref().unwrap()),
        Some(TlsErrorKind::AlertReceived)
    );
    assert_eq!((seen.made.get(), seen.lost.get()), (0, 0));
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_unknown_ca_is_refused_with_unknown_issuer() {
    let fx = Fixture::new();
    let p = pki();
    let rogue = ServerTls::builder_der(p.rogue_chain.clone(), key(&p.rogue_key_der))
        .build()
        .unwrap();
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(&fx, "127.0.0.1", rogue, watched(&seen));
    let error = connect(
        &fx,
        "127.0.0.1",
        port,
        client_tls().server_hostname("localhost"),
    )
    .expect_err("a certificate from an unknown CA must be refused");
    let cause = assert_tls_error(&error, TlsErrorKind::UnknownIssuer);
    assert_eq!(
        cause,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
    // Distinguishable from the hostname failure, by kind and by text.
    assert_ne!(tls_kind(&error), Some(TlsErrorKind::HostnameMismatch));
    let errors = server_handshake_failures(&fx, 1);
    assert_eq!(
        tls_kind(errors[0].error.as_ref().unwrap()),
        Some(TlsErrorKind::AlertReceived)
    );
    assert_eq!((seen.made.get(), seen.lost.get()), (0, 0));
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_unknown_ca_is_refused_with_platform_roots_too() {
    // The default ClientTls (platform roots) does not trust the test CA.
    // (Made under the fixture's lock: loading the roots opens files.)
    let fx = Fixture::new();
    let default = match ClientTls::new() {
        Ok(default) => default,
        Err(error) => {
            // No platform roots at all: a clear Config error.
            assert_eq!(tls_kind(&error), Some(TlsErrorKind::Config), "{error:?}");
            return fx.finish();
        }
    };
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(&fx, "127.0.0.1", server_tls(), watched(&seen));
    let error = connect(&fx, "127.0.0.1", port, default.server_hostname("localhost"))
        .expect_err("the test CA is not a platform root");
    assert_tls_error(&error, TlsErrorKind::UnknownIssuer);
    server_handshake_failures(&fx, 1);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_ip_san_is_checked_for_ipv4_and_ipv6() {
    let fx = Fixture::new();
    let seen = Rc::new(Seen::default());
    // 127.0.0.1 with no server_hostname: the IP SAN is what passes.
    let (server4, port4) = serve(&fx, "127.0.0.1", server_tls(), watched(&seen));
    let (transport, client) = connect(&fx, "127.0.0.1", port4, client_tls()).expect("IPv4 SAN");
    ping(&fx, &transport, &client);
    close_client(&fx, &transport, &client);
    // The same certificate does not cover another address.
    let error = connect(
        &fx,
        "127.0.0.1",
        port4,
        client_tls().server_hostname("127.0.0.2"),
    )
    .expect_err("127.0.0.2 is not in the certificate");
    assert_tls_error(&error, TlsErrorKind::HostnameMismatch);
    server_handshake_failures(&fx, 1);
    // ::1, by address and written as a URL does.
    let (server6, port6) = serve(&fx, "::1", server_tls(), watched(&seen));
    let (transport, client) = connect(&fx, "::1", port6, client_tls()).expect("IPv6 SAN");
    assert_eq!(transport.tls_info().unwrap().protocol_version, "TLSv1.3");
    ping(&fx, &transport, &client);
    close_client(&fx, &transport, &client);
    let (transport, client) = connect(&fx, "::1", port6, client_tls().server_hostname("[::1]"))
        .expect("[::1] as server_hostname");
    ping(&fx, &transport, &client);
    close_client(&fx, &transport, &client);
    fx.run(until(&fx.lp.clone(), || seen.lost.get() == 3));
    assert_eq!(seen.made.get(), 3);
    stop(&fx, server4);
    stop(&fx, server6);
    fx.finish();
}

fn assert_needs_server_hostname(error: &Error) {
    match error {
        Error::InvalidArgument(message) => {
            assert!(message.contains("server_hostname"), "{message}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn spec_16_1_no_host_and_no_server_hostname_is_invalid_argument() {
    let fx = Fixture::new();
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(&fx, "127.0.0.1", server_tls(), watched(&seen));
    // sock= with no host.
    let sock: OwnedFd = TcpStream::connect(("127.0.0.1", port)).unwrap().into();
    let lp = fx.lp.clone();
    let error = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            None,
            None,
            ConnectOptions::default().sock(sock).tls(client_tls()),
        ))
        .expect_err("sock= without server_hostname");
    assert_needs_server_hostname(&error);
    // connect_accepted_socket as a TLS client: no host either.
    let sock: OwnedFd = TcpStream::connect(("127.0.0.1", port)).unwrap().into();
    let lp = fx.lp.clone();
    let error = fx
        .run(connect_accepted_socket(
            &fx.lp,
            move || Recorder::new(&lp),
            sock,
            Some(client_tls().into()),
        ))
        .expect_err("connect_accepted_socket without server_hostname");
    assert_needs_server_hostname(&error);
    // The same sock= with server_hostname works.
    let sock: OwnedFd = TcpStream::connect(("127.0.0.1", port)).unwrap().into();
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            None,
            None,
            ConnectOptions::default()
                .sock(sock)
                .tls(client_tls().server_hostname("localhost")),
        ))
        .expect("sock= with server_hostname");
    ping(&fx, &transport, &client);
    close_client(&fx, &transport, &client);
    // The refused sockets were closed by us: the server saw them end
    // during its handshake (reported, as asyncio logs them).
    fx.run(until(&fx.lp.clone(), || seen.lost.get() == 1));
    let errors = fx.take_errors();
    assert!(errors.len() <= 2, "{errors:?}");
    for e in &errors {
        assert_eq!(e.message, "TLS handshake failed", "{e:?}");
    }
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_unix_connection_without_server_hostname_is_invalid_argument() {
    let fx = Fixture::new();
    let dir = Scratch::new("verify-unix-noname");
    let path = dir.path("s.sock");
    let seen = Rc::new(Seen::default());
    let server = fx
        .run(create_unix_server(
            &fx.lp,
            watched(&seen),
            Some(&path),
            UnixServerOptions::default().tls(server_tls()),
        ))
        .unwrap();
    let lp = fx.lp.clone();
    let error = fx
        .run(create_unix_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            &path,
            UnixConnectOptions::default().tls(client_tls()),
        ))
        .expect_err("a unix path is not a name to verify");
    assert_needs_server_hostname(&error);
    // The server sees the refused socket end during its handshake.
    let errors = server_handshake_failures(&fx, 1);
    assert_eq!(
        errors[0].error.as_ref().and_then(Error::io_kind),
        Some(std::io::ErrorKind::ConnectionReset),
        "{errors:?}"
    );
    assert_eq!(seen.made.get(), 0);
    stop(&fx, server);
    // Removing the directory opens an fd: before the fd count, not after.
    drop(dir);
    fx.finish();
}

#[test]
fn spec_16_1_dangerous_option_accepts_the_rogue_certificate() {
    let fx = Fixture::new();
    let p = pki();
    let rogue = ServerTls::builder_der(p.rogue_chain.clone(), key(&p.rogue_key_der))
        .build()
        .unwrap();
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(&fx, "127.0.0.1", rogue, watched(&seen));
    let dangerous = ClientTls::builder()
        .dangerous_disable_certificate_verification()
        .build()
        .unwrap();
    // Any name passes, even one the certificate does not have.
    let (transport, client) = connect(
        &fx,
        "127.0.0.1",
        port,
        dangerous.server_hostname("not-in-the-cert.example"),
    )
    .expect("verification disabled");
    assert_eq!(
        transport.tls_info().unwrap().peer_certificates,
        vec![p.rogue_chain[0].to_vec()]
    );
    ping(&fx, &transport, &client);
    close_client(&fx, &transport, &client);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_alpn_is_negotiated() {
    let fx = Fixture::new();
    let p = pki();
    let tls = ServerTls::builder_der(p.server_chain.clone(), key(&p.server_key_der))
        .alpn(["h2", "http/1.1"])
        .build()
        .unwrap();
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(&fx, "127.0.0.1", tls, watched(&seen));
    let offering = ClientTls::builder()
        .root_store(roots())
        .alpn(["spdy/1", "http/1.1"])
        .build()
        .unwrap();
    let (transport, client) = connect(&fx, "127.0.0.1", port, offering).expect("connect");
    assert_eq!(
        transport.tls_info().unwrap().alpn_protocol.as_deref(),
        Some(&b"http/1.1"[..])
    );
    ping(&fx, &transport, &client);
    let server_info = seen.info.borrow().clone().expect("server info");
    assert_eq!(server_info.alpn_protocol.as_deref(), Some(&b"http/1.1"[..]));
    close_client(&fx, &transport, &client);
    // Without ALPN on the client, none is agreed.
    let (transport, client) = connect(&fx, "127.0.0.1", port, client_tls()).expect("connect");
    assert_eq!(transport.tls_info().unwrap().alpn_protocol, None);
    ping(&fx, &transport, &client);
    close_client(&fx, &transport, &client);
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_alpn_refused_is_no_application_protocol() {
    let fx = Fixture::new();
    let p = pki();
    let tls = ServerTls::builder_der(p.server_chain.clone(), key(&p.server_key_der))
        .alpn(["h2"])
        .build()
        .unwrap();
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(&fx, "127.0.0.1", tls, watched(&seen));
    let offering = ClientTls::builder()
        .root_store(roots())
        .alpn(["http/1.1"])
        .build()
        .unwrap();
    let error =
        connect(&fx, "127.0.0.1", port, offering).expect_err("no common application protocol");
    assert_tls_error(&error, TlsErrorKind::NoApplicationProtocol);
    // The server refused it: its handler hears the same kind.
    let errors = server_handshake_failures(&fx, 1);
    assert_eq!(
        tls_kind(errors[0].error.as_ref().unwrap()),
        Some(TlsErrorKind::NoApplicationProtocol)
    );
    assert_eq!((seen.made.get(), seen.lost.get()), (0, 0));
    stop(&fx, server);
    fx.finish();
}

fn mtls_server(mode: ClientAuth) -> ServerTls {
    let p = pki();
    ServerTls::builder_der(p.server_chain.clone(), key(&p.server_key_der))
        .client_auth(mode, roots())
        .build()
        .unwrap()
}

#[test]
fn spec_16_1_client_certificate_required_and_missing() {
    let fx = Fixture::new();
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(
        &fx,
        "127.0.0.1",
        mtls_server(ClientAuth::Required),
        watched(&seen),
    );
    // With TLS 1.3 the client finishes its side of the handshake before the
    // server checks its (empty) certificate, so the refusal reaches the
    // client either as the connect's error or as connection_lost's.
    match connect(&fx, "127.0.0.1", port, client_tls()) {
        Err(error) => {
            assert_tls_error(&error, TlsErrorKind::CertificateRequired);
        }
        Ok((_transport, client)) => {
            fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
            let (events, error) = client
                .with(|c| (c.events.clone(), c.lost_error.take()))
                .unwrap();
            assert_eq!(events.first(), Some(&Event::Made));
            assert!(
                !events.iter().any(|e| matches!(e, Event::Data(_))),
                "the server's greeting must never arrive: {events:?}"
            );
            let error = Error::from(error.expect("connection_lost with the server's refusal"));
            assert_tls_error(&error, TlsErrorKind::CertificateRequired);
        }
    }
    // The server: "TLS handshake failed" with CertificateRequired; its app
    // protocol saw neither connection_made nor connection_lost.
    let errors = server_handshake_failures(&fx, 1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = errors[0].error.as_ref().unwrap();
    let cause = assert_tls_error(error, TlsErrorKind::CertificateRequired);
    assert_eq!(cause, rustls::Error::NoCertificatesPresented);
    assert_eq!((seen.made.get(), seen.lost.get()), (0, 0));
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_client_certificate_presented_and_verified() {
    let fx = Fixture::new();
    let p = pki();
    let with_cert = || {
        ClientTls::builder()
            .root_store(roots())
            .client_cert(p.client_chain.clone(), key(&p.client_key_der))
            .build()
            .unwrap()
    };
    for mode in [ClientAuth::Required, ClientAuth::Optional] {
        let seen = Rc::new(Seen::default());
        let (server, port) = serve(&fx, "127.0.0.1", mtls_server(mode), watched(&seen));
        let (transport, client) = connect(&fx, "127.0.0.1", port, with_cert()).expect("mTLS");
        ping(&fx, &transport, &client);
        let info = seen.info.borrow().clone().expect("server info");
        assert!(info.server_side);
        assert_eq!(
            info.peer_certificates,
            vec![p.client_chain[0].to_vec()],
            "{mode:?}"
        );
        close_client(&fx, &transport, &client);
        // Optional: a client without a certificate is let in, unnamed.
        if mode == ClientAuth::Optional {
            let (transport, client) =
                connect(&fx, "127.0.0.1", port, client_tls()).expect("anonymous");
            ping(&fx, &transport, &client);
            let info = seen.info.borrow().clone().expect("server info");
            assert!(info.peer_certificates.is_empty());
            close_client(&fx, &transport, &client);
        }
        stop(&fx, server);
    }
    fx.finish();
}

#[test]
fn spec_16_1_client_certificate_from_an_unknown_ca_is_refused() {
    let fx = Fixture::new();
    let p = pki();
    let seen = Rc::new(Seen::default());
    let (server, port) = serve(
        &fx,
        "127.0.0.1",
        mtls_server(ClientAuth::Required),
        watched(&seen),
    );
    let rogue_client = ClientTls::builder()
        .root_store(roots())
        .client_cert(p.rogue_chain.clone(), key(&p.rogue_key_der))
        .build()
        .unwrap();
    match connect(&fx, "127.0.0.1", port, rogue_client) {
        Err(error) => assert!(tls_kind(&error).is_some(), "{error:?}"),
        Ok((_transport, client)) => {
            fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
            let error = client.with(|c| c.lost_error.take()).unwrap();
            let error = Error::from(error.expect("refused"));
            assert!(tls_kind(&error).is_some(), "{error:?}");
        }
    }
    let errors = server_handshake_failures(&fx, 1);
    let error = errors[0].error.as_ref().unwrap();
    assert_tls_error(error, TlsErrorKind::UnknownIssuer);
    assert_eq!((seen.made.get(), seen.lost.get()), (0, 0));
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_tls_over_unix_sockets() {
    let fx = Fixture::new();
    let dir = Scratch::new("verify-unix");
    let path = dir.path("tls.sock");
    let seen = Rc::new(Seen::default());
    let server = fx
        .run(create_unix_server(
            &fx.lp,
            watched(&seen),
            Some(&path),
            UnixServerOptions::default().tls(server_tls()),
        ))
        .unwrap();
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_unix_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            &path,
            UnixConnectOptions::default().tls(client_tls().server_hostname("localhost")),
        ))
        .expect("TLS over a unix socket");
    assert!(transport.is_tls());
    let info = transport.tls_info().unwrap();
    assert_eq!(info.protocol_version, "TLSv1.3");
    ping(&fx, &transport, &client);
    let server_info = seen.info.borrow().clone().unwrap();
    assert_eq!(server_info.server_name.as_deref(), Some("localhost"));
    // 256 KiB byte-exact through the unix TLS connection.
    let big = payload(256 * 1024);
    client.with(|c| c.data.clear()).unwrap();
    transport.write(&big);
    let lp = fx.lp.clone();
    fx.run(until(&lp, || {
        client.with(|c| c.data.len()).unwrap() >= big.len()
    }));
    assert!(client.with(|c| c.data == big).unwrap());
    close_client(&fx, &transport, &client);
    // The wrong name is refused over unix too.
    let lp = fx.lp.clone();
    let error = fx
        .run(create_unix_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            &path,
            UnixConnectOptions::default().tls(client_tls().server_hostname("elsewhere.example")),
        ))
        .expect_err("wrong name");
    assert_tls_error(&error, TlsErrorKind::HostnameMismatch);
    server_handshake_failures(&fx, 1);
    fx.run(until(&fx.lp.clone(), || seen.lost.get() == 1));
    stop(&fx, server);
    // Removing the directory opens an fd: before the fd count, not after.
    drop(dir);
    fx.finish();
}
