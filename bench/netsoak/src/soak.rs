//! The soak client (`evloop-netsoak soak`): mixed load against a plain and
//! a TLS `echo_server` for a given time, every echoed byte checked.
//!
//! One thread per worker, blocking sockets with timeouts:
//!
//! - `normal` (4): connect, 1–40 messages of 1 B–64 KiB echoed in 16 KiB
//!   chunks, each checked, then a half-close and EOF;
//! - `tls` (2): the same over TLS 1.3 (rustls, verifying the run's CA),
//!   ending with `close_notify`;
//! - `slow` (2): a writer thread sends 256 KiB–2 MiB while the reader takes
//!   1–512 bytes a millisecond, so the server's flow control pauses it;
//! - `reset` (1): sends up to 128 KiB, maybe reads some, then closes with
//!   `SO_LINGER` 0 (an RST mid-stream);
//! - `halfclose` (1): sends up to 1 MiB, shuts down writing, reads to EOF:
//!   exactly what was sent must come back;
//! - `garbage` (1): random bytes to the TLS port; the server should close;
//! - `storm` (1): every `--storm-every` seconds opens connections until
//!   `--storm-conns` or a connect fails (the server at its fd limit), holds
//!   them a second, closes them all, then requires an echo to succeed
//!   again within 15 s (the server survived `EMFILE`);
//! - `udp` (1): datagrams with a sequence number, each echo checked.
//!
//! Each worker pauses a few milliseconds between connections (churn, not a
//! busy loop: the machine is shared). At the end it prints `soak-client KEY=VALUE ...` lines: connections by
//! kind, bytes verified, errors by kind. A mismatch or a server that does
//! not recover after a storm is a failure (exit 1); timeouts and resets
//! seen during storms are counted, not failures.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::{flag, required, secs, Pattern, Rng};

/// Usage of `evloop-netsoak soak`.
pub const USAGE: &str = "evloop-netsoak soak --tcp ADDR --tls ADDR --ca PEM [--udp ADDR] \
                         --seconds S [--seed N] [--storm-every S] [--storm-conns N]";

const CHUNK: usize = 16 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the soak client is told.
#[derive(Debug, Clone)]
pub struct Config {
    /// The plain echo server.
    pub tcp: SocketAddr,
    /// The TLS echo server.
    pub tls: SocketAddr,
    /// The UDP echo endpoint, if any.
    pub udp: Option<SocketAddr>,
    /// The CA that signed the TLS server's certificate.
    pub ca: PathBuf,
    /// How long to run.
    pub seconds: f64,
    /// The seed of every stream.
    pub seed: u64,
    /// Seconds between connect storms (the first after a fifth of it).
    pub storm_every: f64,
    /// The most connections a storm opens.
    pub storm_conns: usize,
}

impl Config {
    /// Reads the command line after `soak`.
    ///
    /// # Errors
    ///
    /// A missing or bad flag, as a message.
    pub fn parse(args: &[String]) -> Result<Config, String> {
        Ok(Config {
            tcp: required(args, "--tcp")?,
            tls: required(args, "--tls")?,
            udp: flag(args, "--udp")?,
            ca: required(args, "--ca")?,
            seconds: required(args, "--seconds")?,
            seed: flag(args, "--seed")?.unwrap_or(11),
            storm_every: flag(args, "--storm-every")?.unwrap_or(60.0),
            storm_conns: flag(args, "--storm-conns")?.unwrap_or(1200),
        })
    }
}

/// The counters every worker adds to.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<String, u64>>,
    /// Echoed bytes checked against what was sent.
    pub verified: AtomicU64,
    /// Bytes that differed (or came back short): any is a failure.
    pub mismatches: AtomicU64,
}

impl Tally {
    /// Adds `n` to counter `key`.
    pub fn add(&self, key: &str, n: u64) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(key.to_owned()).or_default() += n;
        }
    }

    /// The counters, sorted by name.
    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn error(&self, kind: &str, e: &io::Error) {
        self.add(&format!("error.{kind}.{:?}", e.kind()), 1);
    }

    fn mismatch(&self, kind: &str, what: &str) {
        self.mismatches.fetch_add(1, Relaxed);
        eprintln!("soak-client: {kind}: {what}");
    }
}

/// A connection's failure: an I/O error, or wrong bytes.
enum Failure {
    Io(io::Error),
    Wrong(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Sends `n` bytes of `tx` in chunks, reading each chunk's echo back
/// through `rx` before the next.
fn echo_chunks(
    s: &mut impl ReadWrite,
    tx: &mut Pattern,
    rx: &mut Pattern,
    n: usize,
    tally: &Tally,
) -> Result<(), Failure> {
    let mut out = vec![0; CHUNK];
    let mut back = vec![0; CHUNK];
    let mut left = n;
    while left > 0 {
        let len = left.min(CHUNK);
        tx.fill(&mut out[..len]);
        s.write_all(&out[..len])?;
        s.flush()?;
        s.read_exact(&mut back[..len])?;
        rx.check(&back[..len])
            .map_err(|m| Failure::Wrong(m.to_string()))?;
        tally.verified.fetch_add(len as u64, Relaxed);
        left -= len;
    }
    Ok(())
}

/// Read + Write, for plain and TLS streams alike.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Reads to EOF; any byte there is one the server should not have sent.
fn expect_eof(s: &mut impl Read) -> Result<(), Failure> {
    let mut buf = [0; 4096];
    match s.read(&mut buf)? {
        0 => Ok(()),
        n => Err(Failure::Wrong(format!("{n} bytes after the echo ended"))),
    }
}

fn normal(cfg: &Config, rng: &mut Rng, tally: &Tally) -> Result<(), Failure> {
    let mut s = connect(cfg.tcp)?;
    let seed = rng.next_u64();
    let (mut tx, mut rx) = (Pattern::new(seed), Pattern::new(seed));
    for _ in 0..rng.range(1, 40) {
        let n = rng.range(1, 64 * 1024);
        echo_chunks(&mut s, &mut tx, &mut rx, n, tally)?;
    }
    s.shutdown(Shutdown::Write)?;
    expect_eof(&mut s)
}

fn tls(
    cfg: &Config,
    config: &Arc<ClientConfig>,
    rng: &mut Rng,
    tally: &Tally,
) -> Result<(), Failure> {
    let s = connect(cfg.tls)?;
    let name = ServerName::try_from("localhost").map_err(|e| Failure::Wrong(e.to_string()))?;
    let conn = ClientConnection::new(config.clone(), name)
        .map_err(|e| Failure::Io(io::Error::other(e)))?;
    let mut stream = StreamOwned::new(conn, s);
    let seed = rng.next_u64();
    let (mut tx, mut rx) = (Pattern::new(seed), Pattern::new(seed));
    for _ in 0..rng.range(1, 20) {
        let n = rng.range(1, 64 * 1024);
        echo_chunks(&mut stream, &mut tx, &mut rx, n, tally)?;
    }
    stream.conn.send_close_notify();
    stream.flush()?;
    expect_eof(&mut stream)
}

/// Sends `n` bytes of `seed`'s stream from a second thread, then shuts
/// down writing; the caller reads with `read` into the returned checker.
fn send_and_read(
    s: &TcpStream,
    seed: u64,
    n: usize,
    mut read_size: impl FnMut() -> usize,
    pause: Duration,
    tally: &Tally,
) -> Result<(), Failure> {
    let writer = s.try_clone()?;
    thread::scope(|scope| {
        let sender = scope.spawn(move || -> io::Result<()> {
            let mut writer = writer;
            let mut tx = Pattern::new(seed);
            let mut buf = vec![0; CHUNK];
            let mut left = n;
            while left > 0 {
                let len = left.min(CHUNK);
                tx.fill(&mut buf[..len]);
                writer.write_all(&buf[..len])?;
                left -= len;
            }
            writer.shutdown(Shutdown::Write)
        });
        let mut rx = Pattern::new(seed);
        let mut buf = vec![0; CHUNK];
        let mut reader = s;
        let mut got = 0_usize;
        let result = loop {
            let want = read_size().clamp(1, CHUNK);
            match reader.read(&mut buf[..want]) {
                Ok(0) => break Ok(()),
                Ok(k) => {
                    if let Err(m) = rx.check(&buf[..k]) {
                        break Err(Failure::Wrong(m.to_string()));
                    }
                    got += k;
                    tally.verified.fetch_add(k as u64, Relaxed);
                }
                Err(e) => break Err(Failure::Io(e)),
            }
            if !pause.is_zero() {
                thread::sleep(pause);
            }
        };
        if result.is_err() {
            // Unblock the sender.
            let _ = s.shutdown(Shutdown::Both);
        }
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("panic")));
        result?;
        sent?;
        if got == n {
            Ok(())
        } else {
            Err(Failure::Wrong(format!(
                "sent {n} bytes, {got} came back before EOF"
            )))
        }
    })
}

fn slow(cfg: &Config, rng: &mut Rng, tally: &Tally) -> Result<(), Failure> {
    let s = connect(cfg.tcp)?;
    let n = rng.range(256 * 1024, 2 * 1024 * 1024);
    let seed = rng.next_u64();
    let mut sizes = Rng::new(seed ^ 1);
    send_and_read(
        &s,
        seed,
        n,
        || sizes.range(1, 512),
        Duration::from_millis(1),
        tally,
    )
}

fn halfclose(cfg: &Config, rng: &mut Rng, tally: &Tally) -> Result<(), Failure> {
    let s = connect(cfg.tcp)?;
    let n = rng.range(0, 1024 * 1024);
    send_and_read(&s, rng.next_u64(), n, || CHUNK, Duration::ZERO, tally)
}

fn reset(cfg: &Config, rng: &mut Rng, tally: &Tally) -> Result<(), Failure> {
    let mut s = connect(cfg.tcp)?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let seed = rng.next_u64();
    let mut tx = Pattern::new(seed);
    let mut buf = vec![0; rng.range(1, 128 * 1024)];
    tx.fill(&mut buf);
    s.write_all(&buf)?;
    if rng.chance(0.5) {
        let mut rx = Pattern::new(seed);
        let k = rng.range(1, buf.len().min(CHUNK));
        let mut back = vec![0; k];
        s.read_exact(&mut back)?;
        rx.check(&back).map_err(|m| Failure::Wrong(m.to_string()))?;
        tally.verified.fetch_add(k as u64, Relaxed);
    }
    rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO))
        .map_err(|e| Failure::Io(e.into()))?;
    drop(s);
    Ok(())
}

fn garbage(cfg: &Config, rng: &mut Rng, tally: &Tally) -> Result<(), Failure> {
    let mut s = connect(cfg.tls)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut junk = vec![0; rng.range(1, 4096)];
    let mut junk_rng = Rng::new(rng.next_u64());
    for b in &mut junk {
        *b = junk_rng.next_u64() as u8;
    }
    // The server may close (and reset) before all of it is written.
    let _ = s.write_all(&junk);
    let mut buf = [0; 4096];
    let outcome = loop {
        match s.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break "held"
            }
            Err(_) => break "reset",
        }
    };
    tally.add(&format!("garbage.{outcome}"), 1);
    Ok(())
}

fn storm(cfg: &Config, tally: &Tally) -> Result<(), Failure> {
    let mut held = Vec::new();
    let mut refused = 0;
    while held.len() < cfg.storm_conns {
        match TcpStream::connect_timeout(&cfg.tcp, Duration::from_millis(500)) {
            Ok(s) => held.push(s),
            Err(_) => {
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
        }
    }
    tally.add("storm.opened", held.len() as u64);
    tally.add("storm.connect_failed", refused);
    thread::sleep(Duration::from_secs(1));
    drop(held);
    // The server must serve again: one echo within 15 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut rng = Rng::new(cfg.seed);
    loop {
        let attempt = (|| -> Result<(), Failure> {
            let mut s = TcpStream::connect_timeout(&cfg.tcp, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let seed = rng.next_u64();
            let (mut tx, mut rx) = (Pattern::new(seed), Pattern::new(seed));
            echo_chunks(&mut s, &mut tx, &mut rx, 1024, tally)
        })();
        match attempt {
            Ok(()) => return Ok(()),
            Err(Failure::Wrong(w)) => return Err(Failure::Wrong(w)),
            Err(Failure::Io(_)) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(200));
            }
            Err(Failure::Io(e)) => {
                tally.add("storm.no_recovery", 1);
                return Err(Failure::Wrong(format!(
                    "no echo within 15 s after a storm: {e}"
                )));
            }
        }
    }
}

fn udp(addr: SocketAddr, stop: &AtomicBool, rng: &mut Rng, tally: &Tally) -> io::Result<()> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().map_err(io::Error::other)?
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut out = vec![0; 2048];
    let mut back = vec![0; 2048];
    let mut seq = 0_u64;
    while !stop.load(Relaxed) {
        seq += 1;
        let len = rng.range(8, 1400);
        out[..8].copy_from_slice(&seq.to_le_bytes());
        Pattern::new(rng_seed(seq)).fill(&mut out[8..len]);
        sock.send(&out[..len])?;
        tally.add("udp.sent", 1);
        // Read what comes until this datagram's echo or a timeout.
        loop {
            match sock.recv(&mut back) {
                Ok(k) if k >= 8 => {
                    let got = u64::from_le_bytes(back[..8].try_into().unwrap_or([0; 8]));
                    if got == 0
                        || got > seq
                        || Pattern::new(rng_seed(got)).check(&back[8..k]).is_err()
                    {
                        tally.add("udp.corrupt", 1);
                        tally.mismatch("udp", &format!("datagram {got} corrupted"));
                    } else if got == seq {
                        tally.add("udp.echoed", 1);
                        break;
                    } else {
                        tally.add("udp.late", 1);
                    }
                }
                Ok(_) => {
                    tally.add("udp.corrupt", 1);
                    tally.mismatch("udp", "short datagram");
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    tally.add("udp.lost", 1);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn rng_seed(seq: u64) -> u64 {
    seq.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Runs the soak load until `config.seconds` have passed; returns the
/// counters (including `mismatches`, which must be 0).
///
/// # Errors
///
/// The TLS config cannot be made (bad CA file).
pub fn run(config: &Config) -> Result<Arc<Tally>, String> {
    crate::raise_fd_limit();
    let tls_config = evloop_loadgen::tls::client_config(&evloop_loadgen::TlsConfig {
        ca: Some(config.ca.clone()),
        server_name: "localhost".to_owned(),
        resume: false,
    })?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + secs(config.seconds);
    let kinds: &[(&str, usize)] = &[
        ("normal", 4),
        ("tls", 2),
        ("slow", 2),
        ("reset", 1),
        ("halfclose", 1),
        ("garbage", 1),
        ("storm", 1),
    ];
    thread::scope(|scope| {
        let mut index = 0_u64;
        for &(kind, count) in kinds {
            for _ in 0..count {
                index += 1;
                let mut rng = Rng::new(config.seed ^ index.wrapping_mul(0x9e37_79b9));
                let (tally, stop, tls_config) = (&tally, &stop, &tls_config);
                scope.spawn(move || {
                    let first_storm = Instant::now() + secs(config.storm_every / 5.0);
                    let mut next_storm = first_storm;
                    while !stop.load(Relaxed) && Instant::now() < deadline {
                        if kind == "storm" {
                            if Instant::now() < next_storm {
                                thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                            next_storm = Instant::now() + secs(config.storm_every);
                        }
                        let result = match kind {
                            "normal" => normal(config, &mut rng, tally),
                            "tls" => tls(config, tls_config, &mut rng, tally),
                            "slow" => slow(config, &mut rng, tally),
                            "reset" => reset(config, &mut rng, tally),
                            "halfclose" => halfclose(config, &mut rng, tally),
                            "garbage" => garbage(config, &mut rng, tally),
                            _ => storm(config, tally),
                        };
                        tally.add(&format!("conns.{kind}"), 1);
                        // Churn, not a busy loop: the machine is shared.
                        let pause = match kind {
                            "garbage" => 20,
                            "reset" => 10,
                            "storm" | "slow" => 0,
                            _ => 5,
                        };
                        thread::sleep(Duration::from_millis(pause));
                        match result {
                            Ok(()) => {}
                            Err(Failure::Io(e)) => {
                                tally.error(kind, &e);
                                thread::sleep(Duration::from_millis(50));
                            }
                            Err(Failure::Wrong(what)) => tally.mismatch(kind, &what),
                        }
                    }
                });
            }
        }
        if let Some(addr) = config.udp {
            let (tally, stop) = (&tally, &stop);
            let mut rng = Rng::new(config.seed ^ 0xdead);
            scope.spawn(move || {
                if let Err(e) = udp(addr, stop, &mut rng, tally) {
                    tally.error("udp", &e);
                }
            });
        }
        let mut last_report = Instant::now();
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(200));
            if last_report.elapsed() >= Duration::from_secs(60) {
                last_report = Instant::now();
                eprintln!(
                    "soak-client: {} bytes verified so far, {} mismatches",
                    tally.verified.load(Relaxed),
                    tally.mismatches.load(Relaxed)
                );
            }
        }
        stop.store(true, Relaxed);
    });
    Ok(tally)
}

/// The `soak-client KEY=VALUE ...` lines of a finished run.
#[must_use]
pub fn report(tally: &Tally) -> String {
    let mut out = format!(
        "soak-client verified={} mismatches={}\n",
        tally.verified.load(Relaxed),
        tally.mismatches.load(Relaxed)
    );
    let counts = tally.snapshot();
    let line: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&format!("soak-client {}\n", line.join(" ")));
    out
}
