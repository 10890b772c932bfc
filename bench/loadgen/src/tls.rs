//! The TLS modes of the load generator (`--tls`): echo over TLS, handshakes
//! per second (`--handshakes`, with `--resume` for TLS 1.3 session tickets),
//! and idle connections held for a memory reading (`--idle N`); plus
//! `gen-cert DIR`, the bench's throw-away CA and server certificate.
//!
//! Still one thread and one edge-triggered epoll set: each connection is a
//! non-blocking `rustls::ClientConnection` over a `TcpStream`. A readable
//! edge reads the socket into one 256 KiB scratch buffer until a short read,
//! feeds the bytes to `read_tls` / `process_new_packets`, and drains the
//! plaintext (checked byte for byte as in the plain mode); whatever rustls
//! wants to send goes out through `write_tls` until the socket would block
//! (the next writable edge resumes it). The client speaks TLS 1.3 only,
//! with rustls 0.23 and the `ring` provider, one shared `ClientConfig`; it
//! verifies the server against `--tls-ca`, or, without it, not at all (a
//! bench client, never a real one: so that the handshake test is not bound
//! by the client's two ECDSA verifications).
//!
//! A handshake cycle (`--handshakes`) is: connect, handshake, one round trip
//! of `--size` bytes, `close_notify`, then wait for the server's answer (its
//! `close_notify` or EOF) and close. Without `--resume` the config has
//! `Resumption::disabled()` (every handshake is full); with it, rustls's
//! default in-memory ticket store, shared by all connections.

use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::{ensure_fd_limit, process_cpu, Config, Histogram, Report, Target, STALL_LIMIT};

/// The size of the socket read buffer (the plaintext one is the same).
const SCRATCH: usize = 256 * 1024;

/// The TLS options of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Trust this CA (PEM); `None`: no verification at all (a bench client:
    /// the handshake test then measures the server, not the client's
    /// certificate checks).
    pub ca: Option<PathBuf>,
    /// The SNI / verified name.
    pub server_name: String,
    /// Keep TLS 1.3 tickets (one shared in-memory store) and resume.
    pub resume: bool,
}

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Echo round trips on long-lived connections (the default).
    Echo,
    /// Connection cycles: connect, handshake, one round trip, close.
    Handshakes,
    /// Open this many connections, one round trip each, then hold them.
    Idle(usize),
}

/// No verification at all (`--tls` without `--tls-ca`): a bench client
/// measuring the server's handshake cost, never a real one. It still
/// offers the provider's signature schemes, so the server signs as usual.
#[derive(Debug)]
struct DangerousNoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for DangerousNoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The one client config of a run.
///
/// # Errors
///
/// An unreadable or empty CA file, as a message.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("rustls: {e}"))?;
    let mut config = match &tls.ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DangerousNoVerification(provider)))
            .with_no_client_auth(),
    };
    if !tls.resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// Writes `ca.pem`, `cert.pem` (the server's chain: its certificate, signed
/// by the CA) and `key.pem` (PKCS#8) into `dir`: ECDSA P-256, the server
/// certificate for `localhost` and `127.0.0.1`. Fresh keys every call.
///
/// # Errors
///
/// A file that cannot be written, as a message.
pub fn generate_cert(dir: &Path) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let err = |e: rcgen::Error| format!("rcgen: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "evloop bench CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, text) in [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ] {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Handshaking or echoing (the first message is queued at connect).
    Echoing,
    /// `close_notify` sent; waiting for the server's answer.
    Closing,
    /// Done with its one round trip (`--idle`): held open.
    Idle,
}

/// One TLS connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    tls: ClientConnection,
    message: Vec<u8>,
    seq: u64,
    received: usize,
    /// When the request (echo) or the cycle (handshakes, idle) started.
    started: Instant,
    phase: Phase,
}

/// What one event did to a connection.
enum Outcome {
    Nothing,
    /// A request (echo mode) or a cycle's round trip completed.
    RoundTrip(Duration),
    /// The cycle closed (handshake mode): the slot needs a new connection.
    Closed,
}

fn tls_error(index: usize, e: &rustls::Error) -> String {
    format!("connection {index}: TLS: {e}")
}

fn io_error(index: usize, e: &io::Error) -> String {
    format!("connection {index}: {e}")
}

impl Conn {
    fn connect(
        addr: &str,
        config: &Arc<ClientConfig>,
        name: &ServerName<'static>,
        index: usize,
        size: usize,
    ) -> Result<Conn, String> {
        let started = Instant::now();
        let stream =
            TcpStream::connect(addr).map_err(|e| format!("connect {index} to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .map_err(|e| io_error(index, &e))?;
        let mut tls = ClientConnection::new(config.clone(), name.clone())
            .map_err(|e| tls_error(index, &e))?;
        tls.set_buffer_limit(None);
        // Distinct per connection, so crossed wires show up too.
        #[allow(clippy::cast_possible_truncation)]
        let message = (0..size)
            .map(|i| (i.wrapping_mul(7).wrapping_add(index.wrapping_mul(13)) % 251) as u8)
            .collect();
        let mut conn = Conn {
            stream,
            tls,
            message,
            seq: 0,
            received: 0,
            started,
            phase: Phase::Echoing,
        };
        conn.queue_request(index)?;
        Ok(conn)
    }

    /// Stamps the sequence number and queues the message (rustls holds it
    /// until the handshake is done), then flushes what it can.
    fn queue_request(&mut self, index: usize) -> Result<(), String> {
        let head = self.message.len().min(8);
        self.message[..head].copy_from_slice(&self.seq.to_le_bytes()[..head]);
        self.received = 0;
        self.tls
            .writer()
            .write_all(&self.message)
            .map_err(|e| io_error(index, &e))?;
        self.flush(index)
    }

    /// Writes TLS records until there are none or the socket is full.
    fn flush(&mut self, index: usize) -> Result<(), String> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The server may close first once it answered close_notify.
                Err(_) if self.phase == Phase::Closing => return Ok(()),
                Err(e) => return Err(io_error(index, &e)),
            }
        }
        Ok(())
    }

    /// Handles a readable edge: reads the socket dry (until a short read),
    /// feeds rustls, checks the plaintext. Returns what completed.
    fn on_readable(
        &mut self,
        scratch: &mut [u8],
        plain: &mut [u8],
        index: usize,
        mode: Mode,
    ) -> Result<Outcome, String> {
        let mut outcome = Outcome::Nothing;
        loop {
            let n = match self.stream.read(scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if self.phase == Phase::Closing => return Ok(Outcome::Closed),
                Err(e) => return Err(io_error(index, &e)),
            };
            if n == 0 {
                if self.phase == Phase::Closing {
                    return Ok(Outcome::Closed);
                }
                return Err(format!(
                    "connection {index}: the server closed the connection \
                     ({} of {} bytes of request {} echoed)",
                    self.received,
                    self.message.len(),
                    self.seq
                ));
            }
            let mut bytes = &scratch[..n];
            while !bytes.is_empty() {
                let fed = self
                    .tls
                    .read_tls(&mut bytes)
                    .map_err(|e| io_error(index, &e))?;
                self.tls
                    .process_new_packets()
                    .map_err(|e| tls_error(index, &e))?;
                match self.drain(plain, index, mode)? {
                    Outcome::Nothing => {}
                    Outcome::Closed => return Ok(Outcome::Closed),
                    done @ Outcome::RoundTrip(_) => outcome = done,
                }
                if fed == 0 && !bytes.is_empty() {
                    if self.phase == Phase::Closing {
                        return Ok(Outcome::Closed);
                    }
                    return Err(format!("connection {index}: rustls took no bytes"));
                }
            }
            if n < scratch.len() {
                break; // drained: the next arrival is a new edge
            }
        }
        self.flush(index)?;
        Ok(outcome)
    }

    /// Reads the plaintext rustls has, checks it against the message, and
    /// moves on when the echo is complete.
    fn drain(&mut self, plain: &mut [u8], index: usize, mode: Mode) -> Result<Outcome, String> {
        let mut outcome = Outcome::Nothing;
        loop {
            let want = (self.message.len() - self.received).max(1).min(plain.len());
            match self.tls.reader().read(&mut plain[..want]) {
                Ok(0) => {
                    // The server's close_notify.
                    if self.phase == Phase::Closing {
                        return Ok(Outcome::Closed);
                    }
                    return Err(format!(
                        "connection {index}: close_notify from the server mid-request"
                    ));
                }
                Ok(n) => {
                    if self.phase != Phase::Echoing || self.received + n > self.message.len() {
                        return Err(format!(
                            "connection {index}: unexpected data from the server"
                        ));
                    }
                    let expected = &self.message[self.received..self.received + n];
                    if plain[..n] != *expected {
                        let at = plain[..n]
                            .iter()
                            .zip(expected)
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        return Err(format!(
                            "connection {index}: echo mismatch in request {} at byte {}",
                            self.seq,
                            self.received + at
                        ));
                    }
                    self.received += n;
                    if self.received == self.message.len() {
                        let now = Instant::now();
                        outcome = Outcome::RoundTrip(now - self.started);
                        match mode {
                            Mode::Echo => {
                                self.seq += 1;
                                self.started = now;
                                self.queue_request(index)?;
                            }
                            Mode::Handshakes => {
                                self.phase = Phase::Closing;
                                self.tls.send_close_notify();
                                self.flush(index)?;
                            }
                            Mode::Idle(_) => self.phase = Phase::Idle,
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(outcome),
                Err(_) if self.phase == Phase::Closing => return Ok(Outcome::Closed),
                Err(e) => return Err(io_error(index, &e)),
            }
        }
    }
}

/// `TLSv1_3 TLS13_AES_256_GCM_SHA384`-style names of what was negotiated.
fn negotiated(tls: &ClientConnection) -> (String, String) {
    let version = tls
        .protocol_version()
        .map_or_else(|| "?".to_owned(), |v| format!("{v:?}"));
    let suite = tls
        .negotiated_cipher_suite()
        .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite()));
    (version, suite)
}

/// The TLS result line: the plain one plus `resumed=R tls=VERSION suite=S`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsReport {
    /// The common fields (requests = handshake cycles in `--handshakes`,
    /// connections held in `--idle`).
    pub report: Report,
    /// Handshakes counted that resumed a session.
    pub resumed: u64,
    /// The negotiated protocol version.
    pub version: String,
    /// The negotiated cipher suite.
    pub suite: String,
}

impl std::fmt::Display for TlsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resumed={} tls={} suite={}",
            self.report, self.resumed, self.version, self.suite
        )
    }
}

fn register(epoll: &impl AsFd, stream: &TcpStream, index: usize) -> Result<(), String> {
    epoll::add(
        epoll,
        stream.as_fd(),
        epoll::EventData::new_u64(index as u64),
        epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::ET,
    )
    .map_err(|e| format!("epoll_ctl: {e}"))
}

/// Runs a TLS load (any [`Mode`]); `on_counting` is called when counting
/// starts (echo, handshakes) or when every idle connection is up (idle).
///
/// # Errors
///
/// As [`crate::run`], plus TLS errors.
pub fn run(
    config: &Config,
    tls_config: &TlsConfig,
    mode: Mode,
    mut on_counting: impl FnMut(),
) -> Result<TlsReport, String> {
    let Target::Tcp(addr) = &config.target else {
        return Err("--tls needs --tcp".to_owned());
    };
    let client = client_config(tls_config)?;
    let name = ServerName::try_from(tls_config.server_name.clone())
        .map_err(|e| format!("--server-name: {e}"))?;
    let total = match mode {
        Mode::Idle(n) => n,
        _ => config.conns,
    };
    let in_flight = config.conns.min(total);
    ensure_fd_limit(total as u64 + 64);
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
    let mut conns: Vec<Option<Conn>> = Vec::with_capacity(total);
    // Idle mode opens `in_flight` at a time; the others open all at once.
    let mut opened = 0;
    let open_next = |conns: &mut Vec<Option<Conn>>, opened: &mut usize| -> Result<(), String> {
        let index = *opened;
        let conn = Conn::connect(addr, &client, &name, index, config.size)?;
        register(&epoll, &conn.stream, index)?;
        conns.push(Some(conn));
        *opened += 1;
        Ok(())
    };
    for _ in 0..in_flight {
        open_next(&mut conns, &mut opened)?;
    }

    let mut scratch = vec![0_u8; SCRATCH];
    let mut plain = vec![0_u8; SCRATCH];
    let mut events: Vec<epoll::Event> = Vec::with_capacity(total.clamp(16, 1024));
    let mut histogram = Histogram::new();
    let (mut requests, mut resumed) = (0_u64, 0_u64);
    let mut seen = None;
    let now = Instant::now();
    let idle = matches!(mode, Mode::Idle(_));
    let mut counting = false;
    let mut phase_end = if idle {
        now + Duration::from_secs(3600)
    } else {
        now + config.warmup
    };
    let mut window_start = now;
    let mut cpu_start = process_cpu();
    let mut last_progress = now;
    let mut idle_up = 0_usize;
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    loop {
        let now = Instant::now();
        if idle && !counting && idle_up == total {
            counting = true;
            window_start = now;
            phase_end = now + config.duration;
            on_counting();
        }
        if now >= phase_end {
            if counting {
                let seconds = (now - window_start).as_secs_f64();
                let client_cpu_s = (process_cpu() - cpu_start).as_secs_f64();
                #[allow(clippy::cast_precision_loss)]
                let us = |nanos: u64| nanos as f64 / 1000.0;
                let (version, suite) = seen.unwrap_or_else(|| ("?".to_owned(), "?".to_owned()));
                if idle {
                    for (index, conn) in conns.iter_mut().enumerate() {
                        if let Some(conn) = conn {
                            conn.tls.send_close_notify();
                            let _ = conn.flush(index);
                        }
                    }
                }
                return Ok(TlsReport {
                    report: Report {
                        requests: if idle { total as u64 } else { requests },
                        seconds,
                        p50_us: us(histogram.quantile(0.50)),
                        p99_us: us(histogram.quantile(0.99)),
                        client_cpu_s,
                    },
                    resumed,
                    version,
                    suite,
                });
            }
            counting = true;
            histogram = Histogram::new();
            requests = 0;
            resumed = 0;
            window_start = now;
            phase_end = now + config.duration;
            cpu_start = process_cpu();
            on_counting();
        }
        if now - last_progress > STALL_LIMIT {
            return Err(format!(
                "nothing completed for {} s: the server stalled",
                STALL_LIMIT.as_secs()
            ));
        }
        events.clear();
        match epoll::wait(&epoll, spare_capacity(&mut events), Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("epoll_wait: {e}")),
        }
        for event in &events {
            let index = usize::try_from(event.data.u64()).unwrap_or(usize::MAX);
            let flags = event.flags; // a copy: `Event` is packed
            let Some(conn) = conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            if flags.contains(epoll::EventFlags::OUT) {
                conn.flush(index)?;
            }
            if !flags
                .intersects(epoll::EventFlags::IN | epoll::EventFlags::HUP | epoll::EventFlags::ERR)
            {
                continue;
            }
            match conn.on_readable(&mut scratch, &mut plain, index, mode)? {
                Outcome::Nothing => {}
                Outcome::RoundTrip(latency) => {
                    last_progress = now;
                    if seen.is_none() {
                        seen = Some(negotiated(&conn.tls));
                    }
                    match mode {
                        Mode::Echo => {
                            requests += 1;
                            histogram.record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                        }
                        Mode::Idle(_) => {
                            histogram.record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                            idle_up += 1;
                            if opened < total {
                                open_next(&mut conns, &mut opened)?;
                            }
                        }
                        Mode::Handshakes => {}
                    }
                }
                Outcome::Closed => {
                    last_progress = now;
                    let done = Instant::now();
                    let old = conns[index].take().expect("the connection is there");
                    requests += 1;
                    if old.tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                        resumed += 1;
                    }
                    histogram
                        .record(u64::try_from((done - old.started).as_nanos()).unwrap_or(u64::MAX));
                    drop(old); // closes the socket (and leaves the epoll set)
                    let conn = Conn::connect(addr, &client, &name, index, config.size)?;
                    register(&epoll, &conn.stream, index)?;
                    conns[index] = Some(conn);
                }
            }
        }
    }
}
