//! The netem clients: `evloop-netsoak tcp|tls|udp`.
//!
//! - `tcp --addr A --bytes N`: a writer thread sends N bytes of a seeded
//!   [`Pattern`] then shuts down writing; the reader checks every echoed
//!   byte and that exactly N came back before EOF.
//! - `tls --addr A --ca PEM --bytes N`: the same over TLS 1.3 (rustls,
//!   verifying the server against the run's CA), one non-blocking socket and
//!   `poll`: after the handshake it encrypts and sends until the socket is
//!   full, at most 4 MiB in flight; once all N bytes are back it sends
//!   `close_notify` and expects the server's.
//! - `udp --addr A --count N`: N datagrams (sequence number + pattern), a
//!   second thread collecting the echoes: each checked, duplicates counted
//!   apart.
//!
//! A stall (no progress for 60 s) is reported with `ss -tnoi` of the
//! client's sockets and, with `--diag-ns NS`, of the server's.
//!
//! Each prints one result line (`echo bytes=N seconds=T` or `udp sent=...`)
//! and exits 0, or names the first wrong byte and exits 1.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::{flag, required, Pattern};

/// Usage of the netem clients.
pub const USAGE: &str = "evloop-netsoak tcp --addr A --bytes N [--seed S] [--diag-ns NS]\n\
                         evloop-netsoak tls --addr A --ca PEM --bytes N [--seed S] [--diag-ns NS]\n\
                         evloop-netsoak udp --addr A --count N [--size B] [--interval-us U]";

const CHUNK: usize = 16 * 1024;
/// TLS: the most plaintext sent and not yet echoed.
const WINDOW: u64 = 4 * 1024 * 1024;
/// No progress for this long is a stall.
const STALL: Duration = Duration::from_secs(60);

/// A finished echo.
#[derive(Debug, Clone, Copy)]
pub struct Echoed {
    /// Bytes sent and checked.
    pub bytes: u64,
    /// Wall time of the whole exchange.
    pub seconds: f64,
}

impl std::fmt::Display for Echoed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "echo bytes={} seconds={:.3}", self.bytes, self.seconds)
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(30))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// What the sockets look like at a stall: `ss -tnoi` here and, with
/// `--diag-ns NS`, in the server's namespace (Recv-Q there is what the
/// server has not read; a zero window, what it stopped reading).
fn stall_report(args: &[String], what: String) -> String {
    let ss = |pre: &[&str]| -> String {
        let mut c = std::process::Command::new(if pre.is_empty() { "ss" } else { "ip" });
        c.args(pre);
        if !pre.is_empty() {
            c.arg("ss");
        }
        c.arg("-tnoi");
        c.output().map_or_else(
            |e| format!("(ss: {e})"),
            |o| String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let mut out = format!("{what}\n--- client side (ss -tnoi):\n{}", ss(&[]));
    if let Ok(Some(ns)) = flag::<String>(args, "--diag-ns") {
        out.push_str(&format!(
            "--- server side ({ns}):\n{}",
            ss(&["netns", "exec", &ns])
        ));
    }
    out
}

/// `tcp`: a byte-exact echo of `bytes` over plain TCP.
///
/// # Errors
///
/// Connect or I/O failures, a stall, a wrong byte, or a short echo.
pub fn tcp(args: &[String]) -> Result<Echoed, String> {
    let addr: SocketAddr = required(args, "--addr")?;
    let bytes: u64 = required(args, "--bytes")?;
    let seed: u64 = flag(args, "--seed")?.unwrap_or(1);
    let start = Instant::now();
    let s = connect(addr)?;
    s.set_read_timeout(Some(STALL)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(STALL))
        .map_err(|e| e.to_string())?;
    let mut writer = s.try_clone().map_err(|e| e.to_string())?;
    let sender = thread::spawn(move || -> io::Result<()> {
        let mut tx = Pattern::new(seed);
        let mut buf = vec![0; CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            tx.fill(&mut buf[..n]);
            writer.write_all(&buf[..n])?;
            left -= n as u64;
        }
        writer.shutdown(Shutdown::Write)
    });
    let mut rx = Pattern::new(seed);
    let mut buf = vec![0; 64 * 1024];
    let mut reader = &s;
    let result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(m) = rx.check(&buf[..n]) {
                    break Err(m.to_string());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Err(stall_report(
                    args,
                    format!("stalled at {} of {bytes} bytes", rx.offset()),
                ))
            }
            Err(e) => break Err(format!("read after {} bytes: {e}", rx.offset())),
        }
    };
    if result.is_err() {
        let _ = s.shutdown(Shutdown::Both);
    }
    let sent = sender
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("writer panicked")));
    result?;
    sent.map_err(|e| format!("write: {e}"))?;
    if rx.offset() != bytes {
        return Err(format!(
            "sent {bytes} bytes, {} came back before EOF",
            rx.offset()
        ));
    }
    Ok(Echoed {
        bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `tls`: a byte-exact echo of `bytes` over TLS 1.3.
///
/// # Errors
///
/// As [`tcp`], plus TLS errors and a missing `close_notify` answer.
pub fn tls(args: &[String]) -> Result<Echoed, String> {
    let addr: SocketAddr = required(args, "--addr")?;
    let ca: PathBuf = required(args, "--ca")?;
    let bytes: u64 = required(args, "--bytes")?;
    let seed: u64 = flag(args, "--seed")?.unwrap_or(1);
    let config = evloop_loadgen::tls::client_config(&evloop_loadgen::TlsConfig {
        ca: Some(ca),
        server_name: "localhost".to_owned(),
        resume: false,
    })?;
    let start = Instant::now();
    let mut sock = connect(addr)?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut conn = ClientConnection::new(config, name).map_err(|e| format!("rustls: {e}"))?;
    let (mut tx, mut rx) = (Pattern::new(seed), Pattern::new(seed));
    let mut out = vec![0; CHUNK];
    let mut plain = vec![0; 64 * 1024];
    let mut closing = false;
    let mut last_progress = Instant::now();
    loop {
        // Queue plaintext while the window allows, handing each record to
        // the socket, until the socket is full (or the window is).
        let mut socket_full = false;
        loop {
            while conn.wants_write() {
                match conn.write_tls(&mut sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        socket_full = true;
                        break;
                    }
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
            if socket_full
                || conn.is_handshaking()
                || tx.offset() >= bytes
                || tx.offset() - rx.offset() >= WINDOW
            {
                break;
            }
            let n = usize::try_from((bytes - tx.offset()).min(CHUNK as u64)).unwrap_or(CHUNK);
            tx.fill(&mut out[..n]);
            conn.writer()
                .write_all(&out[..n])
                .map_err(|e| format!("rustls write: {e}"))?;
        }
        if rx.offset() == bytes && !closing {
            conn.send_close_notify();
            closing = true;
            while conn.wants_write() {
                match conn.write_tls(&mut sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
        }
        let mut interest = PollFlags::IN;
        if conn.wants_write() {
            interest |= PollFlags::OUT;
        }
        let timeout = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        {
            let mut fds = [PollFd::new(&sock, interest)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
        }
        let mut eof = false;
        let mut closed = false;
        loop {
            match conn.read_tls(&mut sock) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {
                    conn.process_new_packets()
                        .map_err(|e| format!("TLS after {} bytes: {e}", rx.offset()))?;
                    loop {
                        match conn.reader().read(&mut plain) {
                            Ok(0) => {
                                closed = true;
                                break;
                            }
                            Ok(n) => {
                                rx.check(&plain[..n]).map_err(|m| m.to_string())?;
                                last_progress = Instant::now();
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(format!("TLS read: {e}")),
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("read after {} bytes: {e}", rx.offset())),
            }
        }
        if closed {
            break;
        }
        if eof {
            return Err(format!(
                "EOF without close_notify after {} of {bytes} bytes",
                rx.offset()
            ));
        }
        if last_progress.elapsed() > STALL {
            return Err(stall_report(
                args,
                format!(
                    "stalled at {} of {bytes} bytes ({} sent, rustls wants to write: {})",
                    rx.offset(),
                    tx.offset(),
                    conn.wants_write()
                ),
            ));
        }
    }
    if rx.offset() != bytes || !closing {
        return Err(format!(
            "sent {bytes} bytes, {} came back before close_notify",
            rx.offset()
        ));
    }
    Ok(Echoed {
        bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// What the UDP client counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpCount {
    /// Datagrams sent.
    pub sent: u64,
    /// Distinct datagrams echoed intact.
    pub echoed: u64,
    /// Extra copies of datagrams already echoed.
    pub duplicates: u64,
    /// Datagrams that came back wrong: any is a failure.
    pub corrupt: u64,
}

impl std::fmt::Display for UdpCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "udp sent={} echoed={} duplicates={} corrupt={}",
            self.sent, self.echoed, self.duplicates, self.corrupt
        )
    }
}

fn datagram_seed(seq: u64) -> u64 {
    seq.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x7
}

/// Checks one echoed datagram against `seen`; returns how to count it.
fn classify(data: &[u8], size: usize, seen: &mut [bool], c: &mut UdpCount) {
    let Some(head) = data.get(..8) else {
        c.corrupt += 1;
        return;
    };
    let seq = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
    let Some(slot) = usize::try_from(seq).ok().and_then(|i| seen.get_mut(i)) else {
        c.corrupt += 1;
        return;
    };
    if data.len() != size || Pattern::new(datagram_seed(seq)).check(&data[8..]).is_err() {
        c.corrupt += 1;
    } else if *slot {
        c.duplicates += 1;
    } else {
        *slot = true;
        c.echoed += 1;
    }
}

/// `udp`: N datagrams, echoes counted and checked.
///
/// # Errors
///
/// Socket errors (not losses: those are counted).
pub fn udp(args: &[String]) -> Result<UdpCount, String> {
    let addr: SocketAddr = required(args, "--addr")?;
    let count: u64 = required(args, "--count")?;
    let size: usize = flag(args, "--size")?.unwrap_or(1000).clamp(8, 65_000);
    let interval = Duration::from_micros(flag(args, "--interval-us")?.unwrap_or(1000));
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let receiver_sock = sock.try_clone().map_err(|e| e.to_string())?;
    let done = AtomicBool::new(false);
    let n = usize::try_from(count).map_err(|e| e.to_string())?;
    let mut counts = thread::scope(|scope| -> Result<UdpCount, String> {
        let receiver = scope.spawn(|| {
            let mut c = UdpCount::default();
            let mut seen = vec![false; n];
            let mut buf = vec![0; 65_536];
            let mut quiet_since = Instant::now();
            loop {
                match receiver_sock.recv(&mut buf) {
                    Ok(k) => {
                        classify(&buf[..k], size, &mut seen, &mut c);
                        quiet_since = Instant::now();
                    }
                    Err(_) => {
                        if done.load(Relaxed) && quiet_since.elapsed() > Duration::from_secs(2) {
                            break;
                        }
                    }
                }
                if done.load(Relaxed) && c.echoed + c.corrupt == count {
                    // Wait a little for duplicates still in flight.
                    if quiet_since.elapsed() > Duration::from_millis(500) {
                        break;
                    }
                }
            }
            c
        });
        let mut out = vec![0; size];
        let mut sent = 0;
        for seq in 0..count {
            out[..8].copy_from_slice(&seq.to_le_bytes());
            Pattern::new(datagram_seed(seq)).fill(&mut out[8..]);
            // A full socket buffer is a loss like any other.
            if sock.send(&out).is_ok() {
                sent += 1;
            }
            thread::sleep(interval);
        }
        done.store(true, Relaxed);
        let mut c = receiver
            .join()
            .map_err(|_| "receiver panicked".to_owned())?;
        c.sent = sent;
        Ok(c)
    })?;
    if counts.sent != count {
        counts.sent = counts.sent.min(count);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_is_echoed_once_then_a_duplicate_and_a_changed_one_is_corrupt() {
        let size = 100;
        let mut d = vec![0; size];
        d[..8].copy_from_slice(&3_u64.to_le_bytes());
        Pattern::new(datagram_seed(3)).fill(&mut d[8..]);
        let mut seen = vec![false; 5];
        let mut c = UdpCount::default();
        classify(&d, size, &mut seen, &mut c);
        classify(&d, size, &mut seen, &mut c);
        assert_eq!((c.echoed, c.duplicates, c.corrupt), (1, 1, 0));
        d[50] ^= 0x10;
        classify(&d, size, &mut seen, &mut c);
        classify(&d[..7], size, &mut seen, &mut c);
        classify(&d[..60], size, &mut seen, &mut c);
        let mut far = d.clone();
        far[..8].copy_from_slice(&99_u64.to_le_bytes());
        classify(&far, size, &mut seen, &mut c);
        assert_eq!(c.corrupt, 4);
    }
}
