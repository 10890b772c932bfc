//! [`tls_server`]: a TLS server session (evloop-tls over a stream transport
//! on a real loop and a unix socketpair) fed by a hostile peer, in one of
//! two modes chosen by the input's first byte:
//!
//! * **raw**: arbitrary bytes, split into records/writes at arbitrary points
//!   with loop turns between them;
//! * **transcript**: a real rustls client (in memory) handshakes with the
//!   server and then sends application data, and the fuzzer mutates its
//!   output — flips bytes, truncates, drops or repeats writes, splits them —
//!   before the server sees it.
//!
//! Then the peer half-closes. The checks: the server ends within a bounded
//! number of zero-timeout loop turns (no waiting on a timeout, no hang):
//! either the handshake fails with a typed error (`Error::Tls`, `Error::Io`)
//! or the connection is made and later lost exactly once; the plaintext
//! the server's protocol received is a prefix of what the client sent (a
//! mutation never turns into accepted data); no panic reaches the exception
//! handler; the server's fd is closed (the peer reads EOF).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use evloop_core::{Error, ErrorContext, EventLoop};
use evloop_tls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use evloop_tls::rustls::{self, ClientConfig, ClientConnection, RootCertStore};
use evloop_tls::ServerTls;
use evloop_transports::{connect_accepted_socket, Protocol, Transport};
use rustix::net::{send, shutdown, SendFlags, Shutdown};

/// The server's certificate and the client configuration that trusts it,
/// made once per process.
struct Keys {
    server: ServerTls,
    client: Arc<ClientConfig>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
        let server = ServerTls::builder_der(vec![der.clone()], key.into())
            .build()
            .expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(der).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Keys {
            server,
            client: Arc::new(client),
        }
    })
}

/// A raw-mode step.
#[derive(Arbitrary, Debug)]
enum RawOp {
    Send(Vec<u8>),
    /// A TLS record header for `len` bytes of `content_type`, then the bytes.
    Record(u8, u16, Vec<u8>),
    Turn(u8),
}

/// What the fuzzer does to one write of the real client.
#[derive(Arbitrary, Debug)]
enum Mutation {
    Keep,
    /// XOR the byte at `offset % len` with `mask` (made non-zero).
    Flip(u16, u8),
    Truncate(u16),
    Drop,
    Repeat,
    /// Send in two writes with loop turns between.
    Split(u16, u8),
    /// Insert bytes at `offset % len`.
    Insert(u16, Vec<u8>),
}

/// The server's application protocol.
#[derive(Debug, Default)]
struct Seen {
    made: usize,
    data: Vec<u8>,
    lost: usize,
    late: usize,
}

struct App(Rc<RefCell<Seen>>);

impl Protocol for App {
    fn connection_made(&mut self, _transport: Transport) {
        self.0.borrow_mut().made += 1;
    }
    fn data_received(&mut self, data: &[u8]) {
        let mut seen = self.0.borrow_mut();
        if seen.lost > 0 {
            seen.late += 1;
        }
        seen.data.extend_from_slice(data);
    }
    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.0.borrow_mut().lost += 1;
    }
}

fn turn(event_loop: &EventLoop) {
    event_loop.stop();
    event_loop.run_forever().expect("one loop iteration");
}

/// The hostile peer's socket.
struct Peer {
    sock: UnixStream,
    shut: bool,
}

impl Peer {
    /// Writes what the socket takes now; never blocks, never SIGPIPEs.
    fn send(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.shut {
            match send(&self.sock, data, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
                Ok(n) => data = &data[n..],
                Err(_) => return,
            }
        }
    }
    /// Everything the server sent so far.
    fn receive(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    }
    fn eof(&mut self) {
        if !self.shut {
            self.shut = true;
            let _ = shutdown(&self.sock, Shutdown::Write);
        }
    }
}

/// The fuzz target: see the module docs.
pub fn tls_server(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(transcript) = u.arbitrary::<bool>() else {
        return;
    };
    let keys = keys();
    let event_loop = EventLoop::new().expect("event loop");
    let handler_calls = Rc::new(RefCell::new(Vec::new()));
    let calls = handler_calls.clone();
    event_loop.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
        calls.borrow_mut().push(ctx.to_string());
    }));
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("nonblocking");
    let mut peer = Peer {
        sock: theirs,
        shut: false,
    };
    let seen = Rc::new(RefCell::new(Seen::default()));
    let app = seen.clone();
    let task = event_loop
        .create_task(connect_accepted_socket(
            &event_loop,
            move || App(app),
            OwnedFd::from(ours),
            Some(keys.server.clone().into()),
        ))
        .expect("task");
    turn(&event_loop);
    let sent_plaintext = if transcript {
        drive_client(&mut u, &event_loop, &mut peer, keys)
    } else {
        drive_raw(&mut u, &event_loop, &mut peer);
        Vec::new()
    };

    // The peer half-closes: the server must finish without any timeout.
    peer.eof();
    let mut transport = None;
    for _ in 0..2_000 {
        peer.receive();
        if task.done() && transport.is_none() {
            match task.result().expect("task result") {
                Ok((t, _app)) => transport = Some(t),
                Err(Error::Tls(_) | Error::Io(_)) => {}
                Err(other) => panic!("handshake failed with an untyped error: {other:?}"),
            }
            if transport.is_none() {
                break;
            }
        }
        if transport.is_some() && seen.borrow().lost > 0 {
            break;
        }
        turn(&event_loop);
    }
    assert!(
        task.done(),
        "the handshake neither failed nor finished after the peer's EOF"
    );
    if let Some(t) = &transport {
        assert!(
            seen.borrow().lost == 1,
            "connection not lost after the peer's EOF (closing: {})",
            t.is_closing()
        );
    }
    for _ in 0..5 {
        turn(&event_loop);
    }
    let seen = seen.borrow();
    assert!(
        seen.made <= 1 && seen.lost <= 1 && seen.late == 0,
        "{seen:?}"
    );
    assert_eq!(seen.made, usize::from(transport.is_some()));
    assert!(
        sent_plaintext.starts_with(&seen.data),
        "the server received plaintext the client never sent: {:?}",
        seen.data
    );
    let panics: Vec<_> = handler_calls
        .borrow()
        .iter()
        .filter(|c| c.contains("panic"))
        .cloned()
        .collect();
    assert!(
        panics.is_empty(),
        "panics reached the exception handler: {panics:?}"
    );
    // The server's fd is closed: the peer reads EOF or a reset.
    let mut byte = [0u8; 1];
    peer.receive();
    match (&peer.sock).read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the server's fd is still open: peer read {other:?}"),
    }
    drop(transport);
    drop(task);
    event_loop.close().expect("close loop");
}

fn drive_raw(u: &mut Unstructured<'_>, event_loop: &EventLoop, peer: &mut Peer) {
    let mut ops = 0;
    while !u.is_empty() {
        let Ok(op) = RawOp::arbitrary(u) else {
            break;
        };
        ops += 1;
        if ops > 200 {
            break;
        }
        match op {
            RawOp::Send(bytes) => peer.send(&bytes),
            RawOp::Record(content_type, len, body) => {
                let [hi, lo] = len.to_be_bytes();
                peer.send(&[20 + content_type % 5, 3, 3, hi, lo]);
                peer.send(&body);
            }
            RawOp::Turn(n) => {
                for _ in 0..=n % 4 {
                    turn(event_loop);
                }
            }
        }
        peer.receive();
        turn(event_loop);
    }
}

/// Runs a real client through the mutating pipe; returns the plaintext it
/// sent after its handshake completed.
fn drive_client(
    u: &mut Unstructured<'_>,
    event_loop: &EventLoop,
    peer: &mut Peer,
    keys: &Keys,
) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(keys.client.clone(), name).expect("client");
    let mut plaintext = Vec::new();
    let mut client_ok = true;
    for _ in 0..64 {
        if client_ok && !client.is_handshaking() {
            if let Ok(bytes) = u.arbitrary::<Vec<u8>>() {
                if !bytes.is_empty() && client.writer().write_all(&bytes).is_ok() {
                    plaintext.extend_from_slice(&bytes);
                }
            }
        }
        let mut out = Vec::new();
        while client.wants_write() {
            if client.write_tls(&mut out).is_err() {
                break;
            }
        }
        let Ok(mutation) = Mutation::arbitrary(u) else {
            break;
        };
        if !out.is_empty() {
            deliver(event_loop, peer, out, mutation);
        }
        for _ in 0..3 {
            turn(event_loop);
        }
        let reply = peer.receive();
        if client_ok && !reply.is_empty() {
            let mut reader = &reply[..];
            while !reader.is_empty() {
                if client.read_tls(&mut reader).is_err() {
                    break;
                }
            }
            // The client may reject what the server sent (after our
            // mutations confused it): it then stops talking.
            client_ok = client.process_new_packets().is_ok();
            let mut sink = Vec::new();
            let _ = client.reader().read_to_end(&mut sink);
        }
        if u.is_empty() {
            break;
        }
    }
    plaintext
}

fn deliver(event_loop: &EventLoop, peer: &mut Peer, mut out: Vec<u8>, mutation: Mutation) {
    let len = out.len();
    match mutation {
        Mutation::Keep => peer.send(&out),
        Mutation::Flip(offset, mask) => {
            out[usize::from(offset) % len] ^= mask.max(1);
            peer.send(&out);
        }
        Mutation::Truncate(n) => peer.send(&out[..usize::from(n) % len]),
        Mutation::Drop => {}
        Mutation::Repeat => {
            peer.send(&out);
            peer.send(&out);
        }
        Mutation::Split(at, turns) => {
            let (a, b) = out.split_at(usize::from(at) % len);
            peer.send(a);
            for _ in 0..=turns % 4 {
                turn(event_loop);
            }
            peer.send(b);
        }
        Mutation::Insert(offset, bytes) => {
            let at = usize::from(offset) % len;
            out.splice(at..at, bytes);
            peer.send(&out);
        }
    }
}
