//! A lossy IP link between two network namespaces: netem in userspace over
//! TUN, because the kernel of these machines lacks `sch_netem`
//! (`CONFIG_NET_SCH_NETEM` is not set, so `tc qdisc ... netem` fails with
//! "Specified qdisc kind is unknown").
//!
//! `evloop-netsoak link` creates two namespaces and two TUN devices (one
//! per namespace, moved there with `ip link set DEV netns NS`: the open fd
//! keeps working), addresses them (`--server-ip` in the first, `--client-ip`
//! in the second, one /24), prints `ready` and forwards every IP packet read
//! from one device to the other, impaired as netem would, from `--seed`:
//!
//! - `--loss P`: the packet is dropped with probability P%;
//! - `--dup P`: a second copy is sent with probability P%;
//! - `--reorder P`: the packet goes at once with probability P% (netem's
//!   `reorder`: it overtakes the delayed ones), else after the delay;
//! - `--delay-ms D --jitter-ms J`: each copy waits D ± J ms (uniform), so
//!   jitter reorders too, as in netem;
//! - at most `--limit` packets (default 1,000, netem's) wait in each
//!   direction; more drop.
//!
//! Both directions are impaired alike, so TCP really retransmits. It runs
//! in its own session (`setsid`: a terminal's Ctrl-C does not reach it) until
//! its stdin closes (the parent exited, however it exited), then kills
//! whatever still runs in the namespaces,
//! deletes them (the TUN devices go with its fds) and prints one `link ...`
//! line of counters per direction.

#![allow(unsafe_code)]

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::{flag, required, Rng};

/// Usage of `evloop-netsoak link`.
pub const USAGE: &str = "evloop-netsoak link --server-ns NS --client-ns NS --server-dev DEV \
                         --client-dev DEV --server-ip A.B.C.D --client-ip A.B.C.D [--delay-ms D] \
                         [--jitter-ms J] [--loss P] [--dup P] [--reorder P] [--limit N] [--seed S]";

/// The impairment of both directions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Base one-way delay.
    pub delay: Duration,
    /// ± uniform jitter around `delay`.
    pub jitter: Duration,
    /// Loss probability, 0–1.
    pub loss: f64,
    /// Duplication probability, 0–1.
    pub dup: f64,
    /// Probability a packet skips the delay (overtaking), 0–1.
    pub reorder: f64,
    /// Most packets waiting; more are dropped.
    pub limit: usize,
}

/// What `link` is told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace of the server end.
    pub server_ns: String,
    /// Namespace of the client end.
    pub client_ns: String,
    /// TUN device names (at most 15 bytes).
    pub server_dev: String,
    /// TUN device of the client end.
    pub client_dev: String,
    /// Address of the server end (a /24 with the client's).
    pub server_ip: String,
    /// Address of the client end.
    pub client_ip: String,
    /// The impairment.
    pub impairment: Impairment,
    /// The random seed.
    pub seed: u64,
}

impl Config {
    /// Reads the command line after `link`.
    ///
    /// # Errors
    ///
    /// A missing or bad flag, or a percentage outside 0–100.
    pub fn parse(args: &[String]) -> Result<Config, String> {
        let pct = |name: &str| -> Result<f64, String> {
            let v: f64 = flag(args, name)?.unwrap_or(0.0);
            if (0.0..=100.0).contains(&v) {
                Ok(v / 100.0)
            } else {
                Err(format!("{name} {v}: not a percentage"))
            }
        };
        let ms = |name: &str| -> Result<Duration, String> {
            let v: f64 = flag(args, name)?.unwrap_or(0.0);
            Duration::try_from_secs_f64(v / 1000.0).map_err(|_| format!("{name} {v}: bad delay"))
        };
        let config = Config {
            server_ns: required(args, "--server-ns")?,
            client_ns: required(args, "--client-ns")?,
            server_dev: required(args, "--server-dev")?,
            client_dev: required(args, "--client-dev")?,
            server_ip: required(args, "--server-ip")?,
            client_ip: required(args, "--client-ip")?,
            impairment: Impairment {
                delay: ms("--delay-ms")?,
                jitter: ms("--jitter-ms")?,
                loss: pct("--loss")?,
                dup: pct("--dup")?,
                reorder: pct("--reorder")?,
                limit: flag(args, "--limit")?.unwrap_or(1000),
            },
            seed: flag(args, "--seed")?.unwrap_or(1),
        };
        for dev in [&config.server_dev, &config.client_dev] {
            if dev.is_empty() || dev.len() > 15 {
                return Err(format!("device name {dev:?}: 1 to 15 bytes"));
            }
        }
        Ok(config)
    }
}

/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens a TUN device named `name` (IP packets, no packet-info header),
/// non-blocking.
///
/// # Errors
///
/// No `/dev/net/tun`, no permission, or a name in use.
pub fn open_tun(name: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; 16],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 15 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "TUN name"));
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: `fd` is an open /dev/net/tun descriptor owned by `file`, alive
    // for the call; TUNSETIFF reads (and may write back the name into) a
    // `struct ifreq`, and `req` is a live, writable `#[repr(C)]` value of
    // that struct's layout and size (16-byte name, flags, padding to 40).
    let rc = unsafe { libc::ioctl(fd, TUNSETIFF as _, std::ptr::addr_of_mut!(req)) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// A packet waiting for its time.
struct Pending {
    at: Instant,
    seq: u64,
    to: usize,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The counters of one direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Packets read from the sending end.
    pub packets: u64,
    /// Dropped by `--loss`.
    pub lost: u64,
    /// Extra copies made by `--dup`.
    pub duplicated: u64,
    /// Sent at once by `--reorder`.
    pub reordered: u64,
    /// Dropped because `--limit` packets were waiting.
    pub overflow: u64,
    /// Written to the receiving end.
    pub delivered: u64,
}

/// The impairment as a decision per packet, from a seed: which copies go,
/// each after how long. Kept apart from the I/O so it can be tested.
#[derive(Debug)]
pub struct Shaper {
    rng: Rng,
    imp: Impairment,
}

impl Shaper {
    /// A shaper of `imp` seeded with `seed`.
    #[must_use]
    pub fn new(imp: Impairment, seed: u64) -> Shaper {
        Shaper {
            rng: Rng::new(seed),
            imp,
        }
    }

    /// The delays of the copies of one packet (none: lost), updating `c`.
    pub fn decide(&mut self, c: &mut Counters) -> Vec<Duration> {
        c.packets += 1;
        if self.rng.chance(self.imp.loss) {
            c.lost += 1;
            return Vec::new();
        }
        let copies = if self.rng.chance(self.imp.dup) {
            c.duplicated += 1;
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                if self.rng.chance(self.imp.reorder) {
                    c.reordered += 1;
                    return Duration::ZERO;
                }
                let jitter = self.imp.jitter.as_secs_f64() * (2.0 * self.rng.unit() - 1.0);
                Duration::try_from_secs_f64(self.imp.delay.as_secs_f64() + jitter)
                    .unwrap_or(Duration::ZERO)
            })
            .collect()
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces of a run: deleted (after killing what runs in them) on
/// drop, whatever path leaves [`run`].
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Sets up the link, says `ready`, forwards until stdin closes, tears down.
/// Returns the counters of what the server end sent, then of what the
/// client end sent.
///
/// # Errors
///
/// A failed setup step (namespaces, TUN, addresses) or a poll error.
pub fn run(config: &Config) -> Result<[Counters; 2], String> {
    // Out of the terminal's process group: Ctrl-C ends the parent, whose
    // exit closes our stdin, and we clean up.
    let _ = rustix::process::setsid();
    let mut namespaces = Namespaces(Vec::new());
    for ns in [&config.server_ns, &config.client_ns] {
        ip(&["netns", "add", ns])?;
        namespaces.0.push(ns.clone());
    }
    let ends = [
        (&config.server_ns, &config.server_dev, &config.server_ip),
        (&config.client_ns, &config.client_dev, &config.client_ip),
    ];
    let mut tuns = Vec::new();
    for (ns, dev, addr) in ends {
        let tun = open_tun(dev).map_err(|e| format!("TUN {dev}: {e}"))?;
        ip(&["link", "set", dev, "netns", ns])?;
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        tuns.push(tun);
    }
    let mut out = io::stdout();
    if writeln!(out, "ready").and_then(|()| out.flush()).is_err() {
        return Err("stdout closed before the link was ready".to_owned());
    }
    let counters = forward(&mut tuns, config)?;
    drop(namespaces);
    drop(tuns);
    Ok(counters)
}

fn forward(tuns: &mut [File], config: &Config) -> Result<[Counters; 2], String> {
    let mut shapers = [
        Shaper::new(config.impairment, config.seed),
        Shaper::new(config.impairment, config.seed ^ 0x5eed),
    ];
    let mut counters = [Counters::default(); 2];
    let mut queue: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0_u64;
    // Packets waiting per direction (netem's limit is per qdisc, so per
    // direction too).
    let mut waiting = [0_usize; 2];
    let mut buf = vec![0; 65_536];
    let stdin = io::stdin();
    loop {
        let now = Instant::now();
        let wait = queue.peek().map_or(Duration::from_millis(200), |p| {
            p.0.at.saturating_duration_since(now)
        });
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        });
        let (readable, stdin_ready) = {
            let mut fds = [
                PollFd::new(&tuns[0], PollFlags::IN),
                PollFd::new(&tuns[1], PollFlags::IN),
                PollFd::from_borrowed_fd(stdin.as_fd(), PollFlags::IN),
            ];
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
            (
                [!fds[0].revents().is_empty(), !fds[1].revents().is_empty()],
                !fds[2].revents().is_empty(),
            )
        };
        if stdin_ready {
            let mut byte = [0; 64];
            match stdin.lock().read(&mut byte) {
                Ok(0) | Err(_) => return Ok(counters),
                Ok(_) => {}
            }
        }
        for from in 0..2 {
            if !readable[from] {
                continue;
            }
            loop {
                let n = match tuns[from].read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("TUN read: {e}")),
                };
                let now = Instant::now();
                for delay in shapers[from].decide(&mut counters[from]) {
                    if waiting[from] >= config.impairment.limit {
                        counters[from].overflow += 1;
                        continue;
                    }
                    seq += 1;
                    waiting[from] += 1;
                    queue.push(Reverse(Pending {
                        at: now + delay,
                        seq,
                        to: 1 - from,
                        data: buf[..n].to_vec(),
                    }));
                }
            }
        }
        let now = Instant::now();
        while queue.peek().is_some_and(|p| p.0.at <= now) {
            let Some(Reverse(p)) = queue.pop() else { break };
            waiting[1 - p.to] -= 1;
            // A full device queue drops the packet, as a real link would.
            if tuns[p.to].write(&p.data).is_ok() {
                counters[1 - p.to].delivered += 1;
            }
        }
    }
}

/// The `link ...` line of one direction's counters.
#[must_use]
pub fn report(direction: &str, c: &Counters) -> String {
    format!(
        "link {direction} packets={} lost={} duplicated={} reordered={} overflow={} delivered={}",
        c.packets, c.lost, c.duplicated, c.reordered, c.overflow, c.delivered
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(loss: f64, dup: f64, reorder: f64) -> Impairment {
        Impairment {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            loss,
            dup,
            reorder,
            limit: 1000,
        }
    }

    #[test]
    fn the_shaper_drops_duplicates_and_reorders_at_the_asked_rates() {
        let mut s = Shaper::new(imp(0.05, 0.02, 0.10), 42);
        let mut c = Counters::default();
        let mut copies = 0;
        for _ in 0..100_000 {
            let delays = s.decide(&mut c);
            for d in &delays {
                assert!(
                    d.is_zero()
                        || (Duration::from_millis(5)..=Duration::from_millis(15)).contains(d)
                );
            }
            copies += delays.len();
        }
        let rate = |n: u64| n as f64 / 100_000.0;
        assert!((rate(c.lost) - 0.05).abs() < 0.005, "{c:?}");
        assert!((rate(c.duplicated) - 0.019).abs() < 0.004, "{c:?}");
        assert!((rate(c.reordered) - 0.097).abs() < 0.01, "{c:?}");
        assert_eq!(copies as u64, c.packets - c.lost + c.duplicated);
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions() {
        let run = |seed| {
            let mut s = Shaper::new(imp(0.03, 0.01, 0.05), seed);
            let mut c = Counters::default();
            (0..1000).map(|_| s.decide(&mut c)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let args = |extra: &str| -> Vec<String> {
            format!(
                "{extra} --server-ns a --client-ns b --server-dev t0 --client-dev t1 \
                 --server-ip 10.0.0.1 --client-ip 10.0.0.2"
            )
            .split_whitespace()
            .map(str::to_owned)
            .collect()
        };
        let ok = Config::parse(&args("--loss 3 --delay-ms 20")).unwrap();
        assert!((ok.impairment.loss - 0.03).abs() < 1e-12);
        assert_eq!(ok.impairment.delay, Duration::from_millis(20));
        assert!(Config::parse(&args("--loss 130")).is_err());
        assert!(Config::parse(&args("--delay-ms -1")).is_err());
        assert!(Config::parse(&args("--server-dev a-name-much-too-long")).is_err());
    }
}
