//! docs/behaviour.md 16.1: `start_tls` upgrades a live connection (STARTTLS):
//! plain data before, TLS after, nothing lost or reordered; the same for
//! streams; the argument and state errors; a failed upgrade closes the
//! connection; TLS over TLS.

mod support;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use evloop_core::{Error, EventLoop, TlsErrorKind};
use evloop_tls::{start_tls_protocol, ServerTls, StreamWriterTlsExt, TlsTransportExt};
use evloop_transports::{
    create_connection, create_server, open_connection, start_server, ConnectOptions, Protocol,
    ProtocolHandle, Server, ServerOptions, Transport, DEFAULT_LIMIT,
};
use support::*;

/// The server's protocol after the upgrade: echoes (what arrives before
/// `start_tls` handed it its transport is echoed once it has it).
#[derive(Default)]
struct Late {
    transport: Option<Transport>,
    pending: Vec<u8>,
    got: Vec<u8>,
    lost: Option<Option<io::ErrorKind>>,
}

impl Late {
    fn attach(&mut self, transport: Transport) {
        transport.write(&std::mem::take(&mut self.pending));
        self.transport = Some(transport);
    }
}

impl Protocol for Late {
    fn connection_made(&mut self, _transport: Transport) {
        panic!("start_tls must not call connection_made again");
    }
    fn data_received(&mut self, data: &[u8]) {
        self.got.extend_from_slice(data);
        match &self.transport {
            Some(t) => t.write(data),
            None => self.pending.extend_from_slice(data),
        }
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.lost = Some(error.as_ref().map(io::Error::kind));
        self.transport = None;
    }
}

/// What the STARTTLS server saw.
#[derive(Default)]
struct ServerSide {
    plain: Vec<u8>,
    late: Option<ProtocolHandle<Late>>,
    upgraded: Option<Result<Transport, Error>>,
}

/// Reads plaintext until "STARTTLS\n", answers "OK\n" and upgrades with
/// `tls` as the server; a [`Late`] gets the TLS side.
struct StartTlsServer {
    lp: EventLoop,
    tls: ServerTls,
    side: Rc<RefCell<ServerSide>>,
    transport: Option<Transport>,
}

impl Protocol for StartTlsServer {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        let mut side = self.side.borrow_mut();
        side.plain.extend_from_slice(data);
        if !side.plain.ends_with(b"STARTTLS\n") {
            return;
        }
        let transport = self.transport.take().unwrap();
        transport.write(b"OK\n");
        let late = ProtocolHandle::new(Late::default());
        side.late = Some(late.clone());
        let (lp, tls, shared) = (self.lp.clone(), self.tls.clone(), self.side.clone());
        let task = async move {
            let upgraded = start_tls_protocol(&lp, &transport, &late, tls).await;
            if let Ok(t) = &upgraded {
                late.with(|l| l.attach(t.clone())).unwrap();
            }
            shared.borrow_mut().upgraded = Some(upgraded);
        };
        drop(self.lp.create_task(task).unwrap());
    }
}

/// A STARTTLS server on 127.0.0.1 (TLS from the start if `outer`).
fn starttls_server(
    fx: &Fixture,
    upgrade_with: ServerTls,
    outer: Option<ServerTls>,
) -> (Server, u16, Rc<RefCell<ServerSide>>) {
    let side = Rc::new(RefCell::new(ServerSide::default()));
    let shared = side.clone();
    let lp = fx.lp.clone();
    let mut options = ServerOptions::default().host(["127.0.0.1"]);
    if let Some(outer) = outer {
        options = options.tls(outer);
    }
    let factory = move || StartTlsServer {
        lp: lp.clone(),
        tls: upgrade_with.clone(),
        side: shared.clone(),
        transport: None,
    };
    let server = fx.run(create_server(&fx.lp, factory, options)).unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    (server, port, side)
}

fn connect(
    fx: &Fixture,
    port: u16,
    options: ConnectOptions,
) -> (Transport, ProtocolHandle<Recorder>) {
    let lp = fx.lp.clone();
    fx.run(create_connection(
        &fx.lp,
        move || Recorder::new(&lp),
        Some("127.0.0.1"),
        Some(port),
        options,
    ))
    .expect("connect")
}

fn wait_data(fx: &Fixture, client: &ProtocolHandle<Recorder>, len: usize) -> Vec<u8> {
    let lp = fx.lp.clone();
    fx.run(until(&lp, || client.with(|c| c.data.len()).unwrap() >= len));
    client.with(|c| c.data.clone()).unwrap()
}

fn stop(fx: &Fixture, server: Server) {
    server.close();
    fx.run(server.wait_closed());
}

#[test]
fn spec_16_1_start_tls_on_a_live_plain_connection_with_data_before_and_after() {
    let fx = Fixture::new();
    let (server, port, side) = starttls_server(&fx, server_tls(), None);
    let (plain, client) = connect(&fx, port, ConnectOptions::default());
    assert!(!plain.is_tls());
    plain.write(b"hello\n");
    plain.write(b"EHLO client\n");
    plain.write(b"STARTTLS\n");
    assert_eq!(wait_data(&fx, &client, 3), b"OK\n");
    let tls = fx
        .run(start_tls_protocol(
            &fx.lp,
            &plain,
            &client,
            client_tls().server_hostname("localhost"),
        ))
        .expect("upgrade");
    assert!(tls.is_tls() && !tls.ptr_eq(&plain));
    let info = tls.tls_info().unwrap();
    assert_eq!(info.protocol_version, "TLSv1.3");
    assert_eq!(info.peer_certificates, vec![pki().server_chain[0].to_vec()]);
    // TLS data after the upgrade, echoed by the server's new protocol.
    let big = payload(200_000);
    tls.write(b"secret");
    tls.write(&big);
    let data = wait_data(&fx, &client, 3 + 6 + big.len());
    assert_eq!(&data[..9], b"OK\nsecret");
    assert!(data[9..] == big[..], "TLS echo differs");
    // The plain bytes came in order and no TLS bytes leaked into them.
    assert_eq!(side.borrow().plain, b"hello\nEHLO client\nSTARTTLS\n");
    let server_tls_transport = match side.borrow().upgraded.as_ref() {
        Some(Ok(t)) => t.clone(),
        other => panic!("server upgrade: {other:?}"),
    };
    let server_info = server_tls_transport.tls_info().unwrap();
    assert!(server_info.server_side);
    assert_eq!(server_info.server_name.as_deref(), Some("localhost"));
    drop(server_tls_transport);
    // connection_made only once, for the plain connection.
    let events = client.with(|c| c.events.clone()).unwrap();
    assert_eq!(events.iter().filter(|e| **e == Event::Made).count(), 1);
    tls.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert_eq!(
        client.with(|c| c.events.last().cloned()).unwrap(),
        Some(Event::Lost(None))
    );
    let late = side.borrow().late.clone().unwrap();
    fx.run(until(&fx.lp.clone(), || {
        late.with(|l| l.lost.is_some()).unwrap()
    }));
    assert_eq!(late.with(|l| l.lost).unwrap(), Some(None));
    assert_eq!(late.with(|l| l.got.len()).unwrap(), 6 + big.len());
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_start_tls_for_streams() {
    let fx = Fixture::new();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let server_log = log.clone();
    let lp = fx.lp.clone();
    let handler = move |mut reader: evloop_transports::StreamReader,
                        writer: evloop_transports::StreamWriter| {
        let lp = lp.clone();
        let log = server_log.clone();
        async move {
            let line = reader.readline().await.unwrap();
            log.borrow_mut()
                .push(format!("plain {}", String::from_utf8_lossy(&line)));
            // A reply and more plain data in one write, then the upgrade.
            writer.write(b"OK\nplain tail\n");
            if let Err(e) = writer.start_tls(&lp, server_tls()).await {
                log.borrow_mut().push(format!("server upgrade failed: {e}"));
                return;
            }
            log.borrow_mut()
                .push(format!("tls {}", writer.transport().is_tls()));
            let line = reader.readline().await.unwrap();
            writer.write(&line.to_ascii_uppercase());
            writer.drain().await.unwrap();
            // The client's close_notify is the reader's EOF.
            let rest = reader.read_to_end().await.unwrap();
            log.borrow_mut().push(format!("rest {}", rest.len()));
            writer.close();
            let _ = writer.wait_closed().await;
            log.borrow_mut().push("closed".into());
        }
    };
    let options = ServerOptions::default().host(["127.0.0.1"]);
    let server = fx
        .run(start_server(&fx.lp, handler, options, DEFAULT_LIMIT))
        .unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    let lp = fx.lp.clone();
    let client = async move {
        let (mut reader, writer) = open_connection(
            &lp,
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default(),
            DEFAULT_LIMIT,
        )
        .await?;
        writer.write(b"STARTTLS\n");
        assert_eq!(reader.readline().await.unwrap(), b"OK\n");
        writer
            .start_tls(&lp, client_tls().server_hostname("localhost"))
            .await?;
        assert!(writer.transport().is_tls());
        // Bytes the reader held from before the upgrade are still there.
        assert_eq!(reader.readline().await.unwrap(), b"plain tail\n");
        writer.write(b"secret over tls\n");
        writer.drain().await?;
        assert_eq!(reader.readline().await.unwrap(), b"SECRET OVER TLS\n");
        writer.close();
        writer.wait_closed().await?;
        Ok::<_, Error>(())
    };
    fx.run(client).expect("client");
    let lp = fx.lp.clone();
    let done = log.clone();
    fx.run(until(&lp, move || {
        done.borrow().last().map(String::as_str) == Some("closed")
    }));
    assert_eq!(
        *log.borrow(),
        vec!["plain STARTTLS\n", "tls true", "rest 0", "closed"]
    );
    stop(&fx, server);
    fx.finish();
}

/// A plain server that echoes.
fn plain_echo(fx: &Fixture) -> (Server, u16) {
    let options = ServerOptions::default().host(["127.0.0.1"]);
    let server = fx
        .run(create_server(&fx.lp, Echo::default, options))
        .unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    (server, port)
}

#[test]
fn spec_16_1_start_tls_client_without_server_hostname_is_invalid_argument() {
    let fx = Fixture::new();
    let (server, port) = plain_echo(&fx);
    let (plain, client) = connect(&fx, port, ConnectOptions::default());
    let error = fx
        .run(start_tls_protocol(&fx.lp, &plain, &client, client_tls()))
        .expect_err("no name to verify");
    match &error {
        Error::InvalidArgument(m) => assert!(m.contains("server_hostname"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // Refused before touching the connection: it still works in plain.
    assert!(!plain.is_closing());
    plain.write(b"still plain");
    assert_eq!(wait_data(&fx, &client, 11), b"still plain");
    plain.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_start_tls_on_a_closing_transport_is_an_error() {
    let fx = Fixture::new();
    let (server, port) = plain_echo(&fx);
    let (plain, client) = connect(&fx, port, ConnectOptions::default());
    plain.close();
    let error = fx
        .run(start_tls_protocol(
            &fx.lp,
            &plain,
            &client,
            client_tls().server_hostname("localhost"),
        ))
        .expect_err("closing");
    assert!(matches!(error, Error::InvalidState(_)), "{error:?}");
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    // And once it is gone altogether.
    let error = fx
        .run(start_tls_protocol(
            &fx.lp,
            &plain,
            &client,
            client_tls().server_hostname("localhost"),
        ))
        .expect_err("closed");
    assert!(matches!(error, Error::InvalidState(_)), "{error:?}");
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_start_tls_whose_handshake_fails_closes_the_transport() {
    let fx = Fixture::new();
    let p = pki();
    let rogue = ServerTls::builder_der(p.rogue_chain.clone(), key(&p.rogue_key_der))
        .build()
        .unwrap();
    let (server, port, side) = starttls_server(&fx, rogue, None);
    let (plain, client) = connect(&fx, port, ConnectOptions::default());
    plain.write(b"STARTTLS\n");
    wait_data(&fx, &client, 3);
    let error = fx
        .run(start_tls_protocol(
            &fx.lp,
            &plain,
            &client,
            client_tls().server_hostname("localhost"),
        ))
        .expect_err("the server's certificate is not trusted");
    assert_eq!(
        tls_kind(&error),
        Some(TlsErrorKind::UnknownIssuer),
        "{error:?}"
    );
    assert!(
        plain.is_closing(),
        "a failed start_tls closes the transport"
    );
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    let lost = client
        .with(|c| {
            c.events
                .iter()
                .filter(|e| matches!(e, Event::Lost(_)))
                .count()
        })
        .unwrap();
    assert_eq!(lost, 1, "connection_lost at most once");
    // The server's upgrade failed too (our alert), its connection is gone.
    let s = side.clone();
    fx.run(until(&fx.lp.clone(), move || s.borrow().upgraded.is_some()));
    match side.borrow_mut().upgraded.take().unwrap() {
        Err(e) => assert_eq!(tls_kind(&e), Some(TlsErrorKind::AlertReceived), "{e:?}"),
        Ok(_) => panic!("the server's handshake cannot succeed"),
    }
    stop(&fx, server);
    fx.finish();
}

#[test]
fn spec_16_1_start_tls_handshake_timeout_closes_the_transport() {
    let fx = Fixture::new();
    // A plain server that never answers.
    struct Mute(Option<Transport>);
    impl Protocol for Mute {
        fn connection_made(&mut self, transport: Transport) {
            self.0 = Some(transport);
        }
    }
    let options = ServerOptions::default().host(["127.0.0.1"]);
    let server = fx
        .run(create_server(&fx.lp, || Mute(None), options))
        .unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    let (plain, client) = connect(&fx, port, ConnectOptions::default());
    let tls = client_tls()
        .server_hostname("localhost")
        .handshake_timeout(Duration::from_millis(300));
    let error = fx
        .run_for(
            Duration::from_secs(10),
            start_tls_protocol(&fx.lp, &plain, &client, tls),
        )
        .expect_err("no answer");
    assert_eq!(error.io_kind(), Some(io::ErrorKind::TimedOut), "{error:?}");
    assert!(plain.is_closing());
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    server.close();
    server.close_clients();
    fx.run(server.wait_closed());
    fx.finish();
}

#[test]
fn spec_16_1_tls_over_tls() {
    let fx = Fixture::new();
    let (server, port, side) = starttls_server(&fx, server_tls(), Some(server_tls()));
    let (outer, client) = connect(
        &fx,
        port,
        ConnectOptions::default().tls(client_tls().server_hostname("localhost")),
    );
    assert!(outer.is_tls());
    outer.write(b"STARTTLS\n");
    assert_eq!(wait_data(&fx, &client, 3), b"OK\n");
    let inner = fx
        .run(start_tls_protocol(
            &fx.lp,
            &outer,
            &client,
            client_tls().server_hostname("localhost"),
        ))
        .expect("TLS inside TLS");
    assert!(inner.is_tls() && !inner.ptr_eq(&outer));
    assert_eq!(inner.tls_info().unwrap().protocol_version, "TLSv1.3");
    let big = payload(100_000);
    inner.write(&big);
    let data = wait_data(&fx, &client, 3 + big.len());
    assert!(data[3..] == big[..], "echo through two TLS layers differs");
    assert_eq!(side.borrow().plain, b"STARTTLS\n");
    inner.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert_eq!(
        client.with(|c| c.events.last().cloned()).unwrap(),
        Some(Event::Lost(None))
    );
    assert!(outer.is_closing());
    let late = side.borrow().late.clone().unwrap();
    fx.run(until(&fx.lp.clone(), || {
        late.with(|l| l.lost.is_some()).unwrap()
    }));
    stop(&fx, server);
    fx.finish();
}
