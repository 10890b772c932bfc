//! The echo load generator behind `cargo xtask bench` (see
//! docs/performance.md), as a library so its parts can be tested; `main.rs` is the
//! command line.
//!
//! One thread, one edge-triggered epoll set (rustix), `C` connections (TCP or
//! unix). Each connection sends an `S`-byte message, waits for the whole echo,
//! checks every byte of it against what it sent, and sends the next one. A
//! warm-up of `W` seconds is run and thrown away, then `D` seconds are
//! counted: requests, latency percentiles (a log-linear histogram, about 3%
//! wide buckets) and this process's own CPU time, so a report can show that
//! the client was not the bottleneck (or that it was).
//!
//! # Lean by design
//!
//! Per round trip the client makes one `write` and one `read` (plus its share
//! of one `epoll_wait`): a read that returns fewer bytes than asked means the
//! socket was drained, and anything arriving later raises a new edge, so no
//! read ever ends in `EAGAIN` and none is needed to re-arm.
//!
//! # Checking, or discarding
//!
//! Every message starts with its sequence number (little-endian, up to 8
//! bytes) followed by a per-connection byte pattern; the echo is compared
//! with `memcmp` speed as it arrives. A mismatch, an unexpected EOF, a reset,
//! or no progress at all for [`STALL_LIMIT`] fails the run with an error.
//!
//! With `--discard` the echo is counted, not read: `recv(MSG_TRUNC)` makes
//! the kernel drop the bytes of a TCP socket without copying them out, so a
//! large message costs the client almost nothing and the server is the
//! bottleneck (server comparisons use it; issue 12). Unix stream sockets
//! ignore `MSG_TRUNC` and copy into a scratch buffer, still unchecked.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lexopt::Arg::Long;
use rustix::buffer::spare_capacity;
use rustix::event::epoll;

pub mod tls;
pub use tls::{Mode, TlsConfig};

/// A run with no completed request for this long fails (the server hung).
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// The line printed (with `--mark`) when the warm-up ends and counting starts.
pub const WARMUP_DONE: &str = "warmup-done";

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `HOST:PORT`.
    Tcp(String),
    /// A unix stream socket path.
    Unix(PathBuf),
}

/// One load run's parameters (the command line).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The server.
    pub target: Target,
    /// Concurrent connections.
    pub conns: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Warm-up, not counted.
    pub warmup: Duration,
    /// The counted window.
    pub duration: Duration,
    /// Print [`WARMUP_DONE`] on stdout when counting starts.
    pub mark: bool,
    /// `--tls`: speak TLS (see [`tls`]); `None` is the plain path.
    pub tls: Option<TlsConfig>,
    /// What to do (modes other than echo need `--tls`).
    pub mode: Mode,
    /// `--discard`: count the echo's bytes without reading or checking them.
    pub discard: bool,
}

/// The command-line usage.
pub const USAGE: &str = "\
usage: evloop-loadgen (--tcp HOST:PORT | --unix PATH) [--conns C] [--size S]
                      [--warmup W] [--duration D] [--mark] [--discard]
                      [--tls [--tls-ca PEM] [--server-name NAME]
                       [--handshakes [--resume] | --idle N]]
       evloop-loadgen gen-cert DIR

  C connections (default 10) each send an S-byte message (default 1024),
  wait for the whole echo, check it, and send the next. W seconds of
  warm-up (default 1) are not counted; then D seconds (default 5) are.
  --mark prints `warmup-done` when counting starts. Prints one line:
  requests=N seconds=D rps=X p50_us=A p99_us=B client_cpu_s=C
  --discard (plain only): the echo is dropped in the kernel with
  recv(MSG_TRUNC) and only counted, so the client stays cheap at large
  sizes; without it every byte is read and checked.

  --tls (TCP only): the same over TLS 1.3 (rustls, ring), verifying the
  server against --tls-ca (default: no verification at all) for
  NAME (default localhost); the line gets resumed=R tls=VERSION suite=S.
  --handshakes: C slots each loop connect, handshake, one S-byte round
  trip, close_notify, wait for the server's close; requests = cycles.
  --resume keeps TLS 1.3 tickets (one shared client config); without it
  every handshake is full. --idle N: opens N connections (C at a time),
  one round trip each, then (with --mark) prints `warmup-done`, holds
  them D seconds and reports requests=N.
  gen-cert DIR: writes DIR/ca.pem, DIR/cert.pem, DIR/key.pem (ECDSA P-256,
  for localhost and 127.0.0.1), fresh each time.";

impl Config {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    ///
    /// A message naming the bad or missing argument.
    pub fn parse(args: &[String]) -> Result<Config, String> {
        let mut target = None;
        let mut conns = 10;
        let mut size = 1024;
        let mut warmup = Duration::from_secs(1);
        let mut duration = Duration::from_secs(5);
        let mut mark = false;
        let mut discard = false;
        let (mut tls, mut ca, mut server_name, mut resume) = (false, None, None, false);
        let mut mode = Mode::Echo;
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            let flag = match arg {
                Long("mark") => {
                    mark = true;
                    continue;
                }
                Long("tls") => {
                    tls = true;
                    continue;
                }
                Long("discard") => {
                    discard = true;
                    continue;
                }
                Long("resume") => {
                    resume = true;
                    continue;
                }
                Long("handshakes") => {
                    mode = Mode::Handshakes;
                    continue;
                }
                Long(flag) if VALUE_OPTIONS.contains(&flag) => format!("--{flag}"),
                other => return Err(other.unexpected().to_string()),
            };
            let value = parser
                .value()
                .and_then(lexopt::ValueExt::string)
                .map_err(|e| e.to_string())?;
            match flag.as_str() {
                "--tcp" => target = Some(Target::Tcp(value)),
                "--unix" => target = Some(Target::Unix(PathBuf::from(value))),
                "--conns" => conns = parse_number(&flag, &value)?,
                "--size" => size = parse_number(&flag, &value)?,
                "--warmup" => warmup = parse_seconds(&flag, &value)?,
                "--duration" => duration = parse_seconds(&flag, &value)?,
                "--tls-ca" => ca = Some(PathBuf::from(value)),
                "--server-name" => server_name = Some(value),
                "--idle" => mode = Mode::Idle(parse_number(&flag, &value)?),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let target = target.ok_or("one of --tcp or --unix is required")?;
        if conns == 0 || size == 0 {
            return Err("--conns and --size must be at least 1".to_owned());
        }
        if duration.is_zero() {
            return Err("--duration must be positive".to_owned());
        }
        let tls = tls || ca.is_some() || server_name.is_some();
        if !tls && (resume || mode != Mode::Echo) {
            return Err("--handshakes, --resume and --idle need --tls".to_owned());
        }
        if mode == Mode::Idle(0) {
            return Err("--idle must be at least 1".to_owned());
        }
        if tls && !matches!(target, Target::Tcp(_)) {
            return Err("--tls needs --tcp".to_owned());
        }
        if tls && discard {
            return Err("--discard is for plain connections (TLS must decrypt)".to_owned());
        }
        let tls = tls.then(|| TlsConfig {
            ca,
            server_name: server_name.unwrap_or_else(|| "localhost".to_owned()),
            resume,
        });
        Ok(Config {
            target,
            conns,
            size,
            warmup,
            duration,
            mark,
            tls,
            mode,
            discard,
        })
    }
}

/// The options that take a value (without their `--`).
const VALUE_OPTIONS: &[&str] = &[
    "tcp",
    "unix",
    "conns",
    "size",
    "warmup",
    "duration",
    "tls-ca",
    "server-name",
    "idle",
];

fn parse_number(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: `{value}` is not a whole number"))
}

fn parse_seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{flag}: `{value}` is not a number of seconds"))
}

/// What a run measured over its counted window.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Round trips completed in the window.
    pub requests: u64,
    /// The window's real length in seconds.
    pub seconds: f64,
    /// Median round-trip latency in microseconds.
    pub p50_us: f64,
    /// 99th percentile round-trip latency in microseconds.
    pub p99_us: f64,
    /// This process's CPU time (user + system) in the window, in seconds.
    pub client_cpu_s: f64,
}

impl Report {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            // Counts stay far below 2^52: exact in an f64.
            #[allow(clippy::cast_precision_loss)]
            let requests = self.requests as f64;
            requests / self.seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for Report {
    /// The one output line: `requests=N seconds=D rps=X p50_us=A p99_us=B
    /// client_cpu_s=C`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests={} seconds={:.3} rps={:.1} p50_us={:.1} p99_us={:.1} client_cpu_s={:.3}",
            self.requests,
            self.seconds,
            self.rps(),
            self.p50_us,
            self.p99_us,
            self.client_cpu_s
        )
    }
}

/// A log-linear latency histogram in nanoseconds: exact below 64 ns, then 32
/// buckets per power of two (at most about 3% wide).
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; bucket_of(u64::MAX) + 1],
            total: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, nanos: u64) {
        self.counts[bucket_of(nanos)] += 1;
        self.total += 1;
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding
    /// the `ceil(q * len)`-th smallest value; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        // Both casts are of small non-negative whole numbers.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, width) = bucket_range(bucket);
                return low + width / 2;
            }
        }
        0
    }
}

fn bucket_of(nanos: u64) -> usize {
    if nanos < 2 * SUB {
        return usize::try_from(nanos).unwrap_or(usize::MAX);
    }
    let exp = 63 - nanos.leading_zeros(); // >= SUB_BITS + 1
    let shift = exp - SUB_BITS;
    let mantissa = nanos >> shift; // SUB..2*SUB
    usize::try_from(u64::from(shift) * SUB + mantissa).unwrap_or(usize::MAX)
}

/// `(lowest value, width)` of a bucket.
fn bucket_range(bucket: usize) -> (u64, u64) {
    let bucket = bucket as u64;
    if bucket < 2 * SUB {
        return (bucket, 1);
    }
    let shift = bucket / SUB - 1;
    let mantissa = bucket % SUB + SUB;
    (mantissa << shift, 1 << shift)
}

/// A connected stream of either kind.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(target: &Target) -> io::Result<Stream> {
        let stream = match target {
            Target::Tcp(addr) => {
                let stream = TcpStream::connect(addr.as_str())?;
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            Target::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        match &stream {
            Stream::Tcp(s) => s.set_nonblocking(true)?,
            Stream::Unix(s) => s.set_nonblocking(true)?,
        }
        Ok(stream)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    /// Reads up to `buf.len()` bytes; with `discard` the kernel drops a TCP
    /// socket's bytes without copying them (`MSG_TRUNC`) and `buf` is
    /// untouched.
    fn receive(&mut self, buf: &mut [u8], discard: bool) -> io::Result<usize> {
        if !discard {
            return self.read(buf);
        }
        let flags = rustix::net::RecvFlags::TRUNC;
        let (_, len) = rustix::net::recv(self.as_fd(), buf, flags)?;
        Ok(len)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// One connection's request in flight.
#[derive(Debug)]
struct Conn {
    stream: Stream,
    /// The message being sent: sequence number, then the pattern.
    message: Vec<u8>,
    seq: u64,
    sent: usize,
    received: usize,
    started: Instant,
}

impl Conn {
    fn new(index: usize, stream: Stream, size: usize, now: Instant) -> Conn {
        // Distinct per connection, so crossed wires show up too.
        #[allow(clippy::cast_possible_truncation)]
        let message = (0..size)
            .map(|i| (i.wrapping_mul(7).wrapping_add(index.wrapping_mul(13)) % 251) as u8)
            .collect();
        let mut conn = Conn {
            stream,
            message,
            seq: 0,
            sent: 0,
            received: 0,
            started: now,
        };
        conn.stamp();
        conn
    }

    /// Writes the sequence number into the message's head.
    fn stamp(&mut self) {
        let head = self.message.len().min(8);
        self.message[..head].copy_from_slice(&self.seq.to_le_bytes()[..head]);
    }

    /// Writes what is left of the message; stops at a short write (the next
    /// `EPOLLOUT` edge resumes it).
    fn send(&mut self) -> io::Result<()> {
        while self.sent < self.message.len() {
            match self.stream.write(&self.message[self.sent..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes")),
                Ok(n) => {
                    self.sent += n;
                    if self.sent < self.message.len() {
                        return Ok(()); // short write: the buffer is full
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what has arrived, checks it (unless `discard`), and returns
    /// the latency of the request it completed, if it did (the next request
    /// is then sent).
    fn receive(
        &mut self,
        scratch: &mut [u8],
        index: usize,
        discard: bool,
    ) -> Result<Option<Duration>, String> {
        loop {
            let want = self.message.len() - self.received;
            let buf = &mut scratch[..want];
            match self.stream.receive(buf, discard) {
                Ok(0) => {
                    return Err(format!(
                        "connection {index}: the server closed the connection \
                         ({} of {} bytes of request {} echoed)",
                        self.received,
                        self.message.len(),
                        self.seq
                    ))
                }
                Ok(n) if n > want => {
                    return Err(format!(
                        "connection {index}: recv returned {n} bytes for a {want}-byte read"
                    ))
                }
                Ok(n) => {
                    let expected = &self.message[self.received..self.received + n];
                    if !discard && buf[..n] != *expected {
                        let at = buf[..n]
                            .iter()
                            .zip(expected)
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        return Err(format!(
                            "connection {index}: echo mismatch in request {} at byte {}: \
                             got {:#04x}, sent {:#04x}",
                            self.seq,
                            self.received + at,
                            buf[at],
                            expected[at]
                        ));
                    }
                    self.received += n;
                    if self.received == self.message.len() {
                        let now = Instant::now();
                        let latency = now - self.started;
                        self.next_request(now).map_err(|e| io_error(index, &e))?;
                        return Ok(Some(latency));
                    }
                    if n < want {
                        return Ok(None); // drained: the next arrival is a new edge
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(index, &e)),
            }
        }
    }

    fn next_request(&mut self, now: Instant) -> io::Result<()> {
        self.seq += 1;
        self.stamp();
        self.sent = 0;
        self.received = 0;
        self.started = now;
        self.send()
    }
}

fn io_error(index: usize, e: &io::Error) -> String {
    format!("connection {index}: {e}")
}

fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Raises the open-file soft limit to fit `fds`, if the hard limit allows.
fn ensure_fd_limit(fds: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|soft| soft < fds) {
        limit.current = Some(limit.maximum.map_or(fds, |hard| hard.min(fds)));
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// Runs the load described by `config` and returns what the counted window
/// measured. `on_counting` is called once, when the warm-up ends.
///
/// # Errors
///
/// A connect failure, an I/O error, an echo mismatch, a closed connection,
/// or a stall of [`STALL_LIMIT`], as a message.
pub fn run(config: &Config, mut on_counting: impl FnMut()) -> Result<Report, String> {
    ensure_fd_limit(config.conns as u64 + 64);
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
    let start = Instant::now();
    let mut conns = Vec::with_capacity(config.conns);
    for index in 0..config.conns {
        let stream = Stream::connect(&config.target)
            .map_err(|e| format!("connect {index} to {:?}: {e}", config.target))?;
        epoll::add(
            &epoll,
            stream.as_fd(),
            epoll::EventData::new_u64(index as u64),
            epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::ET,
        )
        .map_err(|e| format!("epoll_ctl: {e}"))?;
        conns.push(Conn::new(index, stream, config.size, start));
    }
    let now = Instant::now();
    for (index, conn) in conns.iter_mut().enumerate() {
        conn.started = now;
        conn.send().map_err(|e| io_error(index, &e))?;
    }

    let mut scratch = vec![0_u8; config.size];
    let mut events: Vec<epoll::Event> = Vec::with_capacity(config.conns.clamp(16, 1024));
    let mut histogram = Histogram::new();
    let mut requests = 0_u64;
    let mut counting = false;
    let mut phase_end = now + config.warmup;
    let mut window_start = now;
    let mut cpu_start = process_cpu();
    let mut last_progress = now;
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    loop {
        let now = Instant::now();
        if now >= phase_end {
            if counting {
                let seconds = (now - window_start).as_secs_f64();
                let client_cpu_s = (process_cpu() - cpu_start).as_secs_f64();
                #[allow(clippy::cast_precision_loss)]
                let us = |nanos: u64| nanos as f64 / 1000.0;
                return Ok(Report {
                    requests,
                    seconds,
                    p50_us: us(histogram.quantile(0.50)),
                    p99_us: us(histogram.quantile(0.99)),
                    client_cpu_s,
                });
            }
            counting = true;
            histogram = Histogram::new();
            requests = 0;
            window_start = now;
            phase_end = now + config.duration;
            cpu_start = process_cpu();
            on_counting();
        }
        if now - last_progress > STALL_LIMIT {
            return Err(format!(
                "no echo completed for {} s: the server stalled",
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
            let conn = &mut conns[index];
            if flags.contains(epoll::EventFlags::OUT) && conn.sent < conn.message.len() {
                conn.send().map_err(|e| io_error(index, &e))?;
            }
            if flags
                .intersects(epoll::EventFlags::IN | epoll::EventFlags::HUP | epoll::EventFlags::ERR)
            {
                if let Some(latency) = conn.receive(&mut scratch, index, config.discard)? {
                    last_progress = now;
                    requests += 1;
                    histogram.record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_command_line() {
        let c = Config::parse(&args(
            "--unix /tmp/s --conns 3 --size 10 --warmup 0.5 --duration 2 --mark",
        ))
        .unwrap();
        assert_eq!(c.target, Target::Unix("/tmp/s".into()));
        assert_eq!((c.conns, c.size, c.mark), (3, 10, true));
        assert_eq!(c.warmup, Duration::from_millis(500));
        assert_eq!(c.duration, Duration::from_secs(2));
        assert!(Config::parse(&args("--conns 3")).is_err());
        assert!(Config::parse(&args("--tcp x:1 --size 0")).is_err());
        assert!(Config::parse(&args("--tcp x:1 --bogus 1")).is_err());
        assert!(Config::parse(&args("--tcp")).is_err());
        assert_eq!(
            (c.tls.clone(), c.mode, c.discard),
            (None, Mode::Echo, false)
        );
        assert!(Config::parse(&args("--tcp x:1 --discard")).unwrap().discard);
        assert!(Config::parse(&args("--tcp x:1 --discard --tls")).is_err());
        let t = Config::parse(&args("--tcp x:1 --tls-ca /ca.pem --handshakes --resume")).unwrap();
        assert_eq!(
            t.tls,
            Some(TlsConfig {
                ca: Some("/ca.pem".into()),
                server_name: "localhost".to_owned(),
                resume: true
            })
        );
        assert_eq!(t.mode, Mode::Handshakes);
        let i = Config::parse(&args("--tcp x:1 --tls --idle 1000")).unwrap();
        assert_eq!((i.mode, i.tls.unwrap().ca), (Mode::Idle(1000), None));
        assert!(Config::parse(&args("--tcp x:1 --handshakes")).is_err());
        assert!(Config::parse(&args("--unix /s --tls")).is_err());
        assert!(Config::parse(&args("--tcp x:1 --tls --idle 0")).is_err());
    }

    #[test]
    fn histogram_buckets_are_contiguous_and_narrow() {
        let mut next = 0;
        for bucket in 0..bucket_of(1 << 40) {
            let (low, width) = bucket_range(bucket);
            assert_eq!(low, next, "bucket {bucket}");
            assert_eq!(bucket_of(low), bucket);
            assert_eq!(bucket_of(low + width - 1), bucket);
            assert!(low < 64 || width * 32 <= low, "bucket {bucket} too wide");
            next = low + width;
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000_u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((485_000..=515_000).contains(&p50), "{p50}");
        assert!((960_000..=1_020_000).contains(&p99), "{p99}");
        assert_eq!(h.len(), 1000);
    }

    #[test]
    fn the_report_line_has_every_field() {
        let r = Report {
            requests: 1500,
            seconds: 1.5,
            p50_us: 60.04,
            p99_us: 120.0,
            client_cpu_s: 1.25,
        };
        assert_eq!(
            r.to_string(),
            "requests=1500 seconds=1.500 rps=1000.0 p50_us=60.0 p99_us=120.0 client_cpu_s=1.250"
        );
    }
}
