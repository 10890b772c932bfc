//! `cargo xtask netem`: `echo_server` over real lossy links (issue 11).
//! Root only (network namespaces); elsewhere it says
//! `netem: skipped: needs root (network namespaces)` and exits 0.
//!
//! For each row of [`ROWS`] (a link condition) it starts
//! `evloop-netsoak link` (bench/netsoak): two fresh network namespaces,
//! server and client, joined by two TUN devices and a userspace netem — the
//! kernel of these machines has no `sch_netem`, so `tc qdisc ... netem`
//! cannot be used — that delays, jitters, drops, duplicates and reorders
//! every IP packet in both directions, from a seed. In the server namespace
//! run a plain `echo_server --tcp --udp` and a TLS one; from the client
//! namespace, at the same time, `evloop-netsoak tcp` and `tls` each echo
//! `--bytes` (default 64 MiB) of a seeded pattern and check every byte and
//! the length, then `evloop-netsoak udp` sends `--udp-count` datagrams and
//! counts the intact echoes. Each server then gets SIGTERM and must exit 0
//! after printing `shutdown`. All traffic stays inside the namespaces.
//!
//! UDP passes when no datagram is corrupted and the loss seen is within
//! 4 standard deviations (+0.5 points) of the two-way loss expected,
//! 1 − (1 − p)² without duplication (see [`udp_plausible`]).
//!
//! Teardown: the link process owns the namespaces and devices; it runs in
//! its own session (Ctrl-C does not reach it) and tears everything down
//! when its stdin closes, which happens when this process drops its end or
//! exits in any way. Names are unique per run (`evl<pid>r<row>s|c`).

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::bench::parse::Listening;
use crate::bench::run::Running;
use crate::bench::{build_example, build_release, date_now, machine_facts, Cli};

const USAGE: &str = "\
usage: cargo xtask netem [--bytes N] [--udp-count N] [--quick] [--seed S]

  Root only (skipped with a message elsewhere). For each link condition:
  echo_server in one network namespace, the clients in another, joined by a
  userspace netem link over TUN (this kernel has no sch_netem): TCP and TLS
  echo of N bytes (default 64 MiB; --quick 4 MiB) checked byte for byte,
  UDP datagrams counted (default 5000) against the expected loss, then
  SIGTERM: exit 0 with `shutdown`. Prints a table; writes target/netem/.";

/// One link condition.
#[derive(Debug, Clone, Copy)]
struct Row {
    name: &'static str,
    delay_ms: f64,
    jitter_ms: f64,
    loss: f64,
    dup: f64,
    reorder: f64,
}

/// The matrix, kept under ten minutes for 64 MiB on these machines:
/// delays are what loss-bound TCP throughput allows (Mathis: ~MSS/RTT/√p).
const ROWS: &[Row] = &[
    Row {
        name: "delay 10ms ±5ms, loss 1%",
        delay_ms: 10.0,
        jitter_ms: 5.0,
        loss: 1.0,
        dup: 0.0,
        reorder: 0.0,
    },
    Row {
        name: "delay 2ms, loss 3%, dup 1%, reorder 5%",
        delay_ms: 2.0,
        jitter_ms: 0.0,
        loss: 3.0,
        dup: 1.0,
        reorder: 5.0,
    },
    Row {
        name: "delay 5ms ±2ms, loss 5%, dup 2%, reorder 10%",
        delay_ms: 5.0,
        jitter_ms: 2.0,
        loss: 5.0,
        dup: 2.0,
        reorder: 10.0,
    },
];

#[derive(Debug, Clone, PartialEq)]
struct Options {
    bytes: u64,
    udp_count: u64,
    seed: u64,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        bytes: 64 << 20,
        udp_count: 5000,
        seed: 1,
    };
    let mut bytes = None;
    let mut quick = false;
    let mut cli = Cli::new("netem", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--bytes" => bytes = Some(cli.positive("--bytes")? as u64),
            "--udp-count" => o.udp_count = cli.positive("--udp-count")? as u64,
            "--seed" => o.seed = cli.positive("--seed")? as u64,
            "--quick" => quick = true,
            _ => return Err(cli.unknown(&flag)),
        }
    }
    o.bytes = bytes.unwrap_or(if quick { 4 << 20 } else { o.bytes });
    Ok(o)
}

/// Whether this process runs as root (`Uid:` of /proc/self/status).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Prints a skip and appends it to `$EVLOOP_SKIP_LOG` when set.
fn announce_skip(why: &str) {
    let line = format!("netem: skipped: {why}");
    println!("{line}");
    if let Some(path) = std::env::var_os("EVLOOP_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut log) = fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(log, "{line}");
        }
    }
}

/// Builds what `netem` and `soak` run, in release: `echo_server` and the
/// `evloop-netsoak` tools.
pub(crate) fn build_tools(root: &Path) -> Result<(), String> {
    // Two builds: `--example` would restrict the netsoak package to
    // examples too, and it has none.
    build_example(root, "echo_server")?;
    build_release(root, &["evloop-netsoak"])
}

/// One row's lab: the link process (which owns the namespaces). Dropped,
/// it closes the link's stdin (the link tears down) and waits for it.
struct Lab {
    link: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    server_ns: String,
    client_ns: String,
    server_ip: String,
}

impl Lab {
    fn start(netsoak: &Path, row: &Row, index: usize, seed: u64) -> Result<Lab, String> {
        let id = format!("evl{}r{index}", std::process::id());
        let (server_ns, client_ns) = (format!("{id}s"), format!("{id}c"));
        let server_ip = format!("10.213.{index}.1");
        let client_ip = format!("10.213.{index}.2");
        let mut link = Command::new(netsoak)
            .arg("link")
            .args(["--server-ns", &server_ns, "--client-ns", &client_ns])
            .args(["--server-dev", &server_ns, "--client-dev", &client_ns])
            .args(["--server-ip", &server_ip, "--client-ip", &client_ip])
            .args(["--delay-ms", &row.delay_ms.to_string()])
            .args(["--jitter-ms", &row.jitter_ms.to_string()])
            .args(["--loss", &row.loss.to_string()])
            .args(["--dup", &row.dup.to_string()])
            .args(["--reorder", &row.reorder.to_string()])
            .args(["--seed", &(seed + index as u64).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", netsoak.display()))?;
        let stdin = link.stdin.take();
        let stdout = link.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let lab = Lab {
            link,
            stdin,
            lines,
            server_ns,
            client_ns,
            server_ip,
        };
        match lab.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line == "ready" => Ok(lab),
            other => Err(format!("the link did not come up ({other:?})")),
        }
    }

    /// `ip netns exec NS PROGRAM` (which execs: the child's pid is the
    /// program's).
    fn exec(ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Tears down; returns the link's `link ...` counter lines.
    fn finish(mut self) -> Vec<String> {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(line);
        }
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.link.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // Hung: kill it and remove the namespaces ourselves.
        let _ = self.link.kill();
        let _ = self.link.wait();
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// One line of the result table.
#[derive(Debug, Clone)]
struct Line {
    condition: &'static str,
    case: &'static str,
    bytes: String,
    seconds: Option<f64>,
    throughput: String,
    result: Result<String, String>,
}

/// Reads `echo bytes=N seconds=T`.
fn echo_line(text: &str) -> Option<(u64, f64)> {
    let line = text.lines().find(|l| l.starts_with("echo "))?;
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
    };
    Some((
        field("bytes")?.parse().ok()?,
        field("seconds")?.parse().ok()?,
    ))
}

/// Reads `udp sent=.. echoed=.. duplicates=.. corrupt=..`.
fn udp_line(text: &str) -> Option<[u64; 4]> {
    let line = text.lines().find(|l| l.starts_with("udp "))?;
    let field = |k: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some([
        field("sent")?,
        field("echoed")?,
        field("duplicates")?,
        field("corrupt")?,
    ])
}

/// Whether `echoed` of `sent` is a plausible count for one-way loss `p`
/// and duplication `d`: within 4σ + 0.5 points of the expected two-way
/// delivery. Returns the verdict and the expected loss.
///
/// A request gets through with probability 1 − p (loss is decided before
/// duplication); a duplicated request (d) is echoed twice, so its echo
/// gets back unless both copies are lost: delivery =
/// (1 − p)·((1 − d)(1 − p) + d(1 − p²)), which is (1 − p)² when d = 0.
fn udp_plausible(sent: u64, echoed: u64, p: f64, d: f64) -> (bool, f64) {
    let delivery = (1.0 - p) * ((1.0 - d) * (1.0 - p) + d * (1.0 - p * p));
    if sent == 0 {
        return (false, 1.0 - delivery);
    }
    #[allow(clippy::cast_precision_loss)]
    let (n, seen) = (sent as f64, echoed as f64 / sent as f64);
    let sigma = (delivery * (1.0 - delivery) / n).sqrt();
    (
        (seen - delivery).abs() <= 4.0 * sigma + 0.005,
        1.0 - delivery,
    )
}

fn mib_per_s(bytes: u64, seconds: f64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = bytes as f64 / f64::from(1 << 20) / seconds;
    format!("{v:.2} MiB/s")
}

/// Waits for `child`; its stdout, or an error with its stderr.
fn finish(child: Child, what: &str) -> Result<String, String> {
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{what}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

struct Paths {
    echo_server: PathBuf,
    netsoak: PathBuf,
    certs: PathBuf,
    out: PathBuf,
}

/// Runs one row: the lab, two servers, the clients, the shutdowns.
fn run_row(p: &Paths, row: &'static Row, index: usize, o: &Options) -> Vec<Line> {
    let mut lines = Vec::new();
    let line = |case, result: Result<String, String>| Line {
        condition: row.name,
        case,
        bytes: String::new(),
        seconds: None,
        throughput: String::new(),
        result,
    };
    let lab = match Lab::start(&p.netsoak, row, index, o.seed) {
        Ok(lab) => lab,
        Err(e) => {
            lines.push(line("link", Err(e)));
            return lines;
        }
    };
    let cert = p.certs.join("cert.pem").display().to_string();
    let key = p.certs.join("key.pem").display().to_string();
    let listen = format!("{}:0", lab.server_ip);
    let start = |args: &[&str], name: &'static str, count: usize| {
        let mut c = Lab::exec(&lab.server_ns, &p.echo_server);
        c.args(args);
        let log = p.out.join(format!("row{index}-{name}.log"));
        let mut running = Running::spawn(c, name, &log).map_err(|e| e.message)?;
        let at = running.listening(count, &log).map_err(|e| e.message)?;
        Ok::<_, String>((running, at))
    };
    let plain = start(&["--tcp", &listen, "--udp", &listen], "plain", 2);
    let tls = start(
        &["--tcp", &listen, "--tls-cert", &cert, "--tls-key", &key],
        "tls",
        1,
    );
    let ((plain, plain_at), (tls, tls_at)) = match (plain, tls) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            lines.push(line("servers", Err(e)));
            lab.finish();
            return lines;
        }
    };
    let addr = |at: &[Listening], want: fn(&Listening) -> Option<&String>| {
        at.iter().find_map(want).cloned().unwrap_or_default()
    };
    let tcp_addr = addr(&plain_at, |l| match l {
        Listening::Tcp(a) => Some(a),
        _ => None,
    });
    let udp_addr = addr(&plain_at, |l| match l {
        Listening::Udp(a) => Some(a),
        _ => None,
    });
    let tls_addr = addr(&tls_at, |l| match l {
        Listening::Tls(a) => Some(a),
        _ => None,
    });
    let bytes = o.bytes.to_string();
    let seed = (o.seed + index as u64).to_string();
    let spawn = |mode: &str, addr: &str, extra: &[&str]| {
        Lab::exec(&lab.client_ns, &p.netsoak)
            .args([mode, "--addr", addr])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{mode} client: {e}"))
    };
    // TCP and TLS at the same time (each is bound by loss, not bandwidth).
    let diag = ["--diag-ns", lab.server_ns.as_str()];
    let tcp = spawn(
        "tcp",
        &tcp_addr,
        &["--bytes", &bytes, "--seed", &seed, diag[0], diag[1]],
    );
    let ca = p.certs.join("ca.pem").display().to_string();
    let tls_client = spawn(
        "tls",
        &tls_addr,
        &[
            "--bytes", &bytes, "--seed", &seed, "--ca", &ca, diag[0], diag[1],
        ],
    );
    for (case, child) in [("TCP echo", tcp), ("TLS echo", tls_client)] {
        let result = child.and_then(|c| finish(c, case));
        let mut l = line(case, Ok(String::new()));
        match result.as_deref().map(echo_line) {
            Ok(Some((n, secs))) if n == o.bytes => {
                l.bytes = format!("{n}");
                l.seconds = Some(secs);
                l.throughput = mib_per_s(n, secs);
                l.result = Ok("byte-exact".to_owned());
            }
            Ok(_) => l.result = Err(format!("unreadable output: {result:?}")),
            Err(e) => l.result = Err(e.clone()),
        }
        println!("    {:<46} {:<9} {}", row.name, case, show(&l));
        lines.push(l);
    }
    // UDP.
    let started = Instant::now();
    let count = o.udp_count.to_string();
    let udp = spawn(
        "udp",
        &udp_addr,
        &["--count", &count, "--size", "1000", "--interval-us", "1000"],
    )
    .and_then(|c| finish(c, "UDP"));
    let mut l = line("UDP", Ok(String::new()));
    l.seconds = Some(started.elapsed().as_secs_f64());
    match udp.as_deref().map(udp_line) {
        Ok(Some([sent, echoed, dups, corrupt])) => {
            let (plausible, expected) =
                udp_plausible(sent, echoed, row.loss / 100.0, row.dup / 100.0);
            #[allow(clippy::cast_precision_loss)]
            let seen = 1.0 - echoed as f64 / sent.max(1) as f64;
            l.bytes = format!("{sent} × 1000");
            let text = format!(
                "{echoed}/{sent} echoed, loss {:.1}% (expected {:.1}%), {dups} duplicates, {corrupt} corrupt",
                seen * 100.0,
                expected * 100.0
            );
            l.result = if plausible && corrupt == 0 {
                Ok(text)
            } else {
                Err(text)
            };
        }
        Ok(None) => l.result = Err(format!("unreadable output: {udp:?}")),
        Err(e) => l.result = Err(e.clone()),
    }
    println!("    {:<46} {:<9} {}", row.name, "UDP", show(&l));
    lines.push(l);
    // Clean shutdown.
    for (case, server) in [("shutdown (plain)", plain), ("shutdown (TLS)", tls)] {
        let result = match server.stop_with("TERM") {
            None => Ok("SIGTERM: exit 0, `shutdown`".to_owned()),
            Some(note) => Err(note),
        };
        let l = line(case, result);
        println!("    {:<46} {:<9} {}", row.name, case, show(&l));
        lines.push(l);
    }
    for counters in lab.finish() {
        println!("    {counters}");
        let l = Line {
            condition: row.name,
            case: "link",
            bytes: String::new(),
            seconds: None,
            throughput: String::new(),
            result: Ok(counters),
        };
        lines.push(l);
    }
    lines
}

fn show(l: &Line) -> String {
    match &l.result {
        Ok(r) => format!("ok {} {} {}", l.bytes, l.throughput, r),
        Err(e) => format!("FAILED: {e}"),
    }
}

fn table(lines: &[Line]) -> String {
    let mut t = String::from(
        "| condition | case | bytes | time (s) | throughput | result |\n|---|---|---:|---:|---:|---|\n",
    );
    for l in lines.iter().filter(|l| l.case != "link") {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            l.condition,
            l.case,
            l.bytes,
            l.seconds.map_or_else(String::new, |s| format!("{s:.1}")),
            l.throughput,
            match &l.result {
                Ok(r) => format!("pass: {r}"),
                // The first line: a stall's socket dump is on the terminal.
                Err(e) => format!("**FAIL**: {}", e.lines().next().unwrap_or_default()),
            }
        );
    }
    t
}

/// Entry point: `cargo xtask netem ARGS`.
///
/// # Errors
///
/// Bad arguments, a failed build, or any failed case. Not root (or no TUN,
/// or no `ip`) is a skip, announced, not an error.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let o = parse_options(args)?;
    if !is_root() {
        announce_skip("needs root (network namespaces)");
        return Ok(());
    }
    if !Path::new("/dev/net/tun").exists() {
        announce_skip("no /dev/net/tun (the link is netem in userspace over TUN)");
        return Ok(());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        announce_skip("no `ip` command (iproute2)");
        return Ok(());
    }
    let started = Instant::now();
    build_tools(root)?;
    let target = crate::examples::target_dir(root);
    let release = target.join("release");
    let out = target.join("netem");
    let certs = out.join("certs");
    fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
    let paths = Paths {
        echo_server: release.join("examples/echo_server"),
        netsoak: release.join("evloop-netsoak"),
        certs,
        out,
    };
    let status = Command::new(&paths.netsoak)
        .arg("gen-cert")
        .arg(&paths.certs)
        .status()
        .map_err(|e| format!("{}: {e}", paths.netsoak.display()))?;
    if !status.success() {
        return Err(format!("xtask netem: gen-cert failed ({status})"));
    }
    let mut lines = Vec::new();
    for (index, row) in ROWS.iter().enumerate() {
        println!("==> netem row {}: {}", index + 1, row.name);
        lines.extend(run_row(&paths, row, index, &o));
    }
    let failed = lines.iter().filter(|l| l.result.is_err()).count();
    let mut md = format!(
        "### {} — `cargo xtask netem {}`\n\n{}\n- link: netem in userspace over TUN (`evloop-netsoak link`), both directions impaired alike; TCP and TLS cases run at the same time on the link\n\n",
        date_now(),
        args.join(" "),
        machine_facts(root, None)
    );
    md.push_str(&table(&lines));
    md.push('\n');
    for l in lines.iter().filter(|l| l.case == "link") {
        if let Ok(c) = &l.result {
            let _ = writeln!(md, "- {}: `{c}`", l.condition);
        }
    }
    let _ = writeln!(
        md,
        "\n- verdict: **{}** in {:.0} s",
        if failed == 0 { "PASS" } else { "FAIL" },
        started.elapsed().as_secs_f64()
    );
    println!("\n{md}");
    let summary = paths.out.join("summary.txt");
    fs::write(&summary, &md).map_err(|e| format!("{}: {e}", summary.display()))?;
    println!("xtask netem: wrote {}", summary.display());
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("xtask netem: {failed} case(s) failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = parse_options(&[]).unwrap();
        assert_eq!(o.bytes, 64 << 20);
        let q = parse_options(&["--quick".to_owned()]).unwrap();
        assert_eq!(q.bytes, 4 << 20);
        assert!(parse_options(&["--bytes".to_owned(), "0".to_owned()]).is_err());
        assert!(parse_options(&["--rows".to_owned()]).is_err());
    }

    #[test]
    fn client_lines_are_read() {
        assert_eq!(
            echo_line("echo bytes=67108864 seconds=31.250\n"),
            Some((67_108_864, 31.25))
        );
        assert_eq!(echo_line("nothing"), None);
        assert_eq!(
            udp_line("udp sent=2000 echoed=1800 duplicates=40 corrupt=0"),
            Some([2000, 1800, 40, 0])
        );
        assert_eq!(udp_line("udp sent=2000"), None);
    }

    #[test]
    fn udp_loss_is_judged_against_two_way_loss() {
        // p = 5%: (1 - p)² = 90.25% delivered.
        assert!(udp_plausible(2000, 1805, 0.05, 0.0).0);
        assert!(udp_plausible(2000, 1790, 0.05, 0.0).0);
        // Nothing lost on a 5% link, or half lost: implausible.
        assert!(!udp_plausible(2000, 2000, 0.05, 0.0).0);
        assert!(!udp_plausible(2000, 1000, 0.05, 0.0).0);
        assert!(!udp_plausible(0, 0, 0.05, 0.0).0);
        let (_, expected) = udp_plausible(2000, 1960, 0.01, 0.0);
        assert!((expected - 0.0199).abs() < 1e-9);
        // Duplicated requests give their echo a second chance.
        let (_, with_dup) = udp_plausible(2000, 1800, 0.05, 0.02);
        assert!(with_dup < 0.0975 && with_dup > 0.0960, "{with_dup}");
    }
}
