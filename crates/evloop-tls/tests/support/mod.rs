//! Shared test helpers: a loop fixture (timeout guard, fd-leak and
//! exception-handler checks), certificates made by rcgen (a CA, a server
//! certificate for `localhost`/127.0.0.1/::1, a client certificate, a
//! certificate from a CA nobody trusts), and protocols that echo or record.
//!
//! Each test binary uses only some of these, hence the `dead_code` allow.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use evloop_core::{Error, ErrorContext, EventLoop, LoopFuture};
use evloop_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use evloop_tls::rustls::RootCertStore;
use evloop_tls::{ClientTls, ServerTls};
use evloop_transports::{create_server, Protocol, Server, ServerOptions, Transport};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises the tests of one binary, so fd counts are not disturbed.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// Not every test binary that includes this module counts fds.
#[allow(unused_imports)]
pub use evloop_testkit::fd_count;

/// How many empty-ready-queue iterations in a row [`Fixture::drain`] takes
/// as "quiet".
pub const QUIET_TURNS: usize = 3;

/// A loop in debug mode whose exception handler records every call, and
/// the fd count at the start.
pub struct Fixture {
    pub lp: EventLoop,
    pub errors: Rc<RefCell<Vec<ErrorContext>>>,
    fds_before: usize,
    /// The fds the loop itself holds (its poller, its waker).
    loop_fds: usize,
    serial: Option<MutexGuard<'static, ()>>,
}

thread_local! {
    /// The serial lock of a finished [`Fixture`], held until the test's
    /// thread ends, i.e. after the test's other locals (which may hold the
    /// loop's last reference, or sockets) are dropped: the next test must
    /// not count their fds in its baseline.
    static HELD: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
}

impl Fixture {
    pub fn new() -> Fixture {
        let serial = serial();
        let fds_before = fd_count();
        let lp = EventLoop::new().expect("loop");
        // Debug mode: a server's failed handshakes reach the exception
        // handler, where the tests read their errors.
        lp.set_debug(true);
        let loop_fds = fd_count().saturating_sub(fds_before);
        let errors = Rc::new(RefCell::new(Vec::new()));
        let sink = errors.clone();
        lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
            sink.borrow_mut().push(ctx.clone());
        }));
        Fixture {
            lp,
            errors,
            fds_before,
            loop_fds,
            serial: Some(serial),
        }
    }

    /// Runs `future`; panics if it takes longer than 60 s.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        self.run_for(Duration::from_secs(60), future)
    }

    /// Runs `future`; panics if it takes longer than `limit`.
    pub fn run_for<F: Future>(&self, limit: Duration, future: F) -> F::Output {
        let stopper = self.lp.clone();
        let timer = self
            .lp
            .call_later(limit, move || stopper.stop())
            .expect("timer");
        let out = self.lp.run_until_complete(future);
        timer.cancel();
        match out {
            Ok(value) => value,
            Err(error) => panic!("loop run failed (timeout guard?): {error}"),
        }
    }

    /// Runs one loop iteration with a zero poll timeout: the I/O that is
    /// ready now and the callbacks queued now run; nothing waits.
    pub fn turn(&self) {
        self.lp.stop();
        self.lp.run_forever().expect("one loop iteration");
    }

    /// Drains the loop without sleeping: runs zero-timeout iterations until
    /// the ready queue has stayed empty for [`QUIET_TURNS`] in a row, so
    /// every callback already scheduled (a deferred `connection_lost`, say),
    /// what those schedule in turn, and the I/O already ready have run.
    /// Panics if the loop does not go quiet within 10 000 iterations.
    pub fn drain(&self) {
        let mut quiet = 0;
        for _ in 0..10_000 {
            self.turn();
            if self.lp.pending_callbacks() == 0 {
                quiet += 1;
                if quiet == QUIET_TURNS {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
        panic!(
            "the loop never went quiet: {} callbacks still pending",
            self.lp.pending_callbacks()
        );
    }

    /// The exception-handler calls so far, cleared.
    pub fn take_errors(&self) -> Vec<ErrorContext> {
        std::mem::take(&mut *self.errors.borrow_mut())
    }

    /// Closes the loop and asserts: no fd leaked, no unexpected errors.
    ///
    /// The serial lock stays held until the test's thread ends, so what
    /// the test drops after this is not counted by the next test.
    pub fn finish(mut self) {
        self.drain();
        // Sockets the test closed may end a few iterations later (a close
        // that waits for the peer, say): wait for the count to come back,
        // for at most 5 s; a real leak still fails the check below.
        let expected = self.fds_before + self.loop_fds;
        let limit = std::time::Instant::now() + Duration::from_secs(5);
        self.run(until(&self.lp, || {
            fd_count() <= expected || std::time::Instant::now() > limit
        }));
        self.drain();
        let errors = self.take_errors();
        assert!(
            errors.is_empty(),
            "unexpected exception-handler calls: {errors:?}"
        );
        self.lp.close().expect("close loop");
        assert_eq!(fd_count(), self.fds_before, "fd count changed (leak)");
        HELD.with(|held| *held.borrow_mut() = self.serial.take());
    }
}

/// Completes after `delay` on the loop's clock.
pub fn sleep(lp: &EventLoop, delay: Duration) -> impl Future<Output = ()> + 'static {
    let done = lp.create_future::<()>();
    let signal = done.clone();
    let handle = lp
        .call_later(delay, move || {
            let _ = signal.set_result(());
        })
        .expect("call_later");
    async move {
        let _keep = handle;
        let _ = done.await;
    }
}

/// Polls `check` every millisecond until it holds (the caller's run
/// bounds the wait).
pub async fn until(lp: &EventLoop, mut check: impl FnMut() -> bool) {
    while !check() {
        sleep(lp, Duration::from_millis(1)).await;
    }
}

/// The test PKI, made once per binary.
pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub ca_pem: String,
    /// For localhost, 127.0.0.1 and ::1, signed by `ca`.
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key_der: Vec<u8>,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// A client certificate signed by `ca`.
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key_der: Vec<u8>,
    /// For localhost, signed by a CA that nobody trusts.
    pub rogue_chain: Vec<CertificateDer<'static>>,
    pub rogue_key_der: Vec<u8>,
    /// Another key pair (for mismatch tests).
    pub other_key_pem: String,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(make_pki)
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert, key)
}

fn leaf(
    names: &[&str],
    ips: &[&str],
    issuer: &rcgen::Certificate,
    issuer_key: &KeyPair,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    for ip in ips {
        params
            .subject_alt_names
            .push(SanType::IpAddress(ip.parse().unwrap()));
    }
    params
        .distinguished_name
        .push(DnType::CommonName, "evloop test");
    let cert = params.signed_by(&key, issuer, issuer_key).unwrap();
    (cert, key)
}

fn make_pki() -> Pki {
    let (ca_cert, ca_key) = ca("evloop test CA");
    let (server, server_key) = leaf(&["localhost"], &["127.0.0.1", "::1"], &ca_cert, &ca_key);
    let (client, client_key) = leaf(&["client.evloop.test"], &[], &ca_cert, &ca_key);
    let (rogue_ca, rogue_ca_key) = ca("rogue CA");
    let (rogue, rogue_key) = leaf(&["localhost"], &["127.0.0.1"], &rogue_ca, &rogue_ca_key);
    let other = KeyPair::generate().unwrap();
    Pki {
        ca: ca_cert.der().clone(),
        ca_pem: ca_cert.pem(),
        server_chain: vec![server.der().clone()],
        server_key_der: server_key.serialize_der(),
        server_cert_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_chain: vec![client.der().clone()],
        client_key_der: client_key.serialize_der(),
        rogue_chain: vec![rogue.der().clone()],
        rogue_key_der: rogue_key.serialize_der(),
        other_key_pem: other.serialize_pem(),
    }
}

pub fn key(der: &[u8]) -> PrivateKeyDer<'static> {
    PrivatePkcs8KeyDer::from(der.to_vec()).into()
}

/// Roots that trust the test CA.
pub fn roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(pki().ca.clone()).unwrap();
    roots
}

pub fn server_tls() -> ServerTls {
    let p = pki();
    ServerTls::builder_der(p.server_chain.clone(), key(&p.server_key_der))
        .build()
        .unwrap()
}

pub fn client_tls() -> ClientTls {
    ClientTls::builder().root_store(roots()).build().unwrap()
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("evloop-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the server's PEM files into `dir`: (cert, key).
pub fn server_pem_files(dir: &Scratch) -> (PathBuf, PathBuf) {
    let p = pki();
    (
        dir.file("server.pem", &p.server_cert_pem),
        dir.file("server.key", &p.server_key_pem),
    )
}

/// Echoes everything; closes on EOF.
#[derive(Default)]
pub struct Echo {
    pub transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }
}

/// What a recording protocol saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Made,
    Data(usize),
    Eof,
    Lost(Option<io::ErrorKind>),
    PauseWriting,
    ResumeWriting,
}

/// Records events and keeps every byte; optionally keeps the write side
/// open on EOF; completes `lost` at `connection_lost`.
pub struct Recorder {
    pub events: Vec<Event>,
    pub data: Vec<u8>,
    pub transport: Option<Transport>,
    pub keep_open_on_eof: bool,
    pub lost_error: Option<io::Error>,
    pub lost: LoopFuture<()>,
}

impl Recorder {
    pub fn new(lp: &EventLoop) -> Recorder {
        Recorder {
            events: Vec::new(),
            data: Vec::new(),
            transport: None,
            keep_open_on_eof: false,
            lost_error: None,
            lost: lp.create_future(),
        }
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        self.events.push(Event::Made);
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.events.push(Event::Data(data.len()));
        self.data.extend_from_slice(data);
    }
    fn eof_received(&mut self) -> bool {
        self.events.push(Event::Eof);
        self.keep_open_on_eof
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.events
            .push(Event::Lost(error.as_ref().map(io::Error::kind)));
        self.lost_error = error;
        self.transport = None;
        let _ = self.lost.set_result(());
    }
    fn pause_writing(&mut self) {
        self.events.push(Event::PauseWriting);
    }
    fn resume_writing(&mut self) {
        self.events.push(Event::ResumeWriting);
    }
}

/// A TLS echo server on 127.0.0.1 with `tls`; returns it and its port.
pub fn echo_server(fx: &Fixture, tls: ServerTls) -> (Server, u16) {
    let options = ServerOptions::default().host(["127.0.0.1"]).tls(tls);
    let server = fx
        .run(create_server(&fx.lp, Echo::default, options))
        .expect("server");
    let port = server.sockets()[0].as_inet().unwrap().port();
    (server, port)
}

/// A payload that is not periodic at powers of two.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// The TLS error inside a failed call's error.
pub fn tls_kind(error: &Error) -> Option<evloop_core::TlsErrorKind> {
    match error {
        Error::Tls(tls) => Some(tls.kind()),
        _ => None,
    }
}

/// Path of a python3 that can run the interop scripts, if any.
pub fn python3() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|p| p.is_file())
}

/// `openssl`, if installed.
pub fn openssl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("openssl"))
        .find(|p| Path::new(p).is_file())
}
