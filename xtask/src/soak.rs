//! `cargo xtask soak --minutes N`: `echo_server` under mixed load for N
//! minutes, its memory and open fds sampled every second (issue 11).
//!
//! Two release `echo_server`s run, each with `RLIMIT_NOFILE` lowered to
//! `--fd-limit` (default 1,024, so the client's connect storms really run
//! the server out of fds): a plain one (`--tcp`, `--udp`) and a TLS one
//! (`--tcp` with `--tls-cert/--tls-key`, a certificate made for the run).
//! `evloop-netsoak soak` (bench/netsoak) drives them: normal clients, TLS
//! clients, slow readers, resets mid-stream, half-closes, garbage on the TLS
//! port, connect storms, UDP, every echoed byte checked. Every second this
//! command reads each server's `VmRSS` (`/proc/PID/status`) and open fds
//! (`/proc/PID/fd`) into `OUT/samples.csv`.
//!
//! The verdict ([`judge`]): after the warm-up (the first 10% of the run), a
//! series trends upward when its Theil–Sen slope × the post-warm-up span, or
//! its last-quarter median minus its first-quarter median, exceeds the
//! tolerance: for RSS the larger of 1 MiB and 5% of its post-warm-up median,
//! for fds 4. Theil–Sen (the median of all pairwise slopes) and quarter
//! medians ignore the seconds a storm holds ~1,000 fds. Also a failure: any
//! echoed byte that differs, a server that does not serve again after a
//! storm, a server whose fd count once the load stops is above its count
//! before the load, or one that does not exit 0 with `shutdown` on SIGTERM.
//!
//! Output: the figures on the terminal and in `OUT/summary.txt` (Markdown), the chart
//! in `OUT/soak.svg` (and docs/soak.svg with `--plot`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::bench::chart::{self, Panel, Series};
use crate::bench::parse::{self, Listening};
use crate::bench::report;
use crate::bench::run::Running;
use crate::bench::{date_now, machine_facts, Cli};

const USAGE: &str = "\
usage: cargo xtask soak --minutes N [--out DIR] [--plot] [--fd-limit 1024]
                        [--storm-every 60] [--seed 11]

  Runs a plain and a TLS echo_server (release, RLIMIT_NOFILE = --fd-limit)
  under mixed load from `evloop-netsoak soak` for N minutes (fractions
  allowed), sampling each server's RSS and open fds every second into
  DIR/samples.csv (default DIR: target/soak). Fails if either trends upward
  after the warm-up (the first 10%), if any echoed byte differs, if a
  server does not serve again after a connect storm, keeps more fds than
  before the load, or breaks its shutdown contract. Writes DIR/summary.txt
  and DIR/soak.svg; --plot also writes docs/soak.svg.";

/// RSS tolerance floor, KiB.
const RSS_TOLERANCE_KIB: f64 = 1024.0;
/// RSS tolerance as a fraction of the post-warm-up median.
const RSS_TOLERANCE_FRACTION: f64 = 0.05;
/// fd tolerance.
const FD_TOLERANCE: f64 = 4.0;
/// The warm-up, as a fraction of the run.
const WARMUP_FRACTION: f64 = 0.10;

#[derive(Debug, Clone, PartialEq)]
struct Options {
    minutes: f64,
    out: Option<PathBuf>,
    plot: bool,
    fd_limit: u64,
    storm_every: f64,
    seed: u64,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        minutes: 0.0,
        out: None,
        plot: false,
        fd_limit: 1024,
        storm_every: 60.0,
        seed: 11,
    };
    let mut cli = Cli::new("soak", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--minutes" => o.minutes = cli.seconds("--minutes")?,
            "--out" => o.out = Some(PathBuf::from(cli.value("--out")?)),
            "--plot" => o.plot = true,
            "--fd-limit" => o.fd_limit = cli.positive("--fd-limit")? as u64,
            "--storm-every" => o.storm_every = cli.seconds("--storm-every")?,
            "--seed" => o.seed = cli.positive("--seed")? as u64,
            _ => return Err(cli.unknown(&flag)),
        }
    }
    if o.minutes <= 0.0 {
        return Err(format!(
            "xtask soak: --minutes N is required (N > 0)\n\n{USAGE}"
        ));
    }
    if o.storm_every <= 0.0 {
        return Err("xtask soak: --storm-every must be positive".to_owned());
    }
    Ok(o)
}

/// One second's reading of both servers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    t: f64,
    plain_rss: f64,
    plain_fds: f64,
    tls_rss: f64,
    tls_fds: f64,
}

/// `(VmRSS KiB, open fds)` of `pid`.
fn sample(pid: u32) -> Option<(f64, f64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = parse::vm_rss_kib(&status)?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    #[allow(clippy::cast_precision_loss)]
    Some((rss as f64, fds as f64))
}

/// Theil–Sen slope: the median of the slopes of all pairs (with distinct
/// x). Robust to the few seconds a connect storm holds ~1,000 fds.
fn theil_sen(points: &[(f64, f64)]) -> f64 {
    // Thin out long runs: every k-th point keeps the pair count near 1M.
    let k = (points.len() / 1400).max(1);
    let p: Vec<(f64, f64)> = points.iter().step_by(k).copied().collect();
    let mut slopes = Vec::with_capacity(p.len() * p.len() / 2);
    for i in 0..p.len() {
        for j in i + 1..p.len() {
            let dx = p[j].0 - p[i].0;
            if dx > 0.0 {
                slopes.push((p[j].1 - p[i].1) / dx);
            }
        }
    }
    report::median(&slopes)
}

/// The trend verdict of one series.
#[derive(Debug, Clone, PartialEq)]
struct Trend {
    name: String,
    unit: &'static str,
    min: f64,
    median: f64,
    max: f64,
    /// Theil–Sen slope per minute.
    slope_per_min: f64,
    /// Slope × the post-warm-up span.
    growth: f64,
    /// Last-quarter median − first-quarter median.
    quarter_rise: f64,
    tolerance: f64,
}

impl Trend {
    fn flat(&self) -> bool {
        self.growth <= self.tolerance && self.quarter_rise <= self.tolerance
    }
}

/// Judges the post-warm-up part of `points` (x in seconds).
fn judge(
    name: &str,
    unit: &'static str,
    points: &[(f64, f64)],
    warmup: f64,
    tolerance: impl Fn(f64) -> f64,
) -> Option<Trend> {
    let post: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 >= warmup).collect();
    if post.len() < 8 {
        return None;
    }
    let ys: Vec<f64> = post.iter().map(|p| p.1).collect();
    let (min, max) = report::min_max(&ys);
    let median = report::median(&ys);
    let slope = theil_sen(&post);
    let span = post[post.len() - 1].0 - post[0].0;
    let q = ys.len() / 4;
    let quarter_rise = report::median(&ys[ys.len() - q..]) - report::median(&ys[..q]);
    Some(Trend {
        name: name.to_owned(),
        unit,
        min,
        median,
        max,
        slope_per_min: slope * 60.0,
        growth: slope * span,
        quarter_rise,
        tolerance: tolerance(median),
    })
}

fn rss_tolerance(median: f64) -> f64 {
    (median * RSS_TOLERANCE_FRACTION).max(RSS_TOLERANCE_KIB)
}

/// Reads `soak-client KEY=VALUE ...` lines into one map.
fn client_counts(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("soak-client "))
        .flat_map(str::split_whitespace)
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Starts `echo_server ARGS` with `RLIMIT_NOFILE` = `fd_limit` (through
/// `sh -c 'ulimit -n'`, which then execs it: the pid is the server's).
fn start_server(
    program: &Path,
    args: &[&str],
    fd_limit: u64,
    name: &'static str,
    out: &Path,
    listeners: usize,
) -> Result<(Running, Vec<Listening>), String> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {fd_limit} && exec \"$0\" \"$@\""))
        .arg(program)
        .args(args);
    let log = out.join(format!("{name}.log"));
    let mut running = Running::spawn(command, name, &log).map_err(|e| e.message)?;
    let listening = running.listening(listeners, &log).map_err(|e| e.message)?;
    Ok((running, listening))
}

fn addr_of(listening: &[Listening], want: &str) -> Option<String> {
    listening.iter().find_map(|l| match (l, want) {
        (Listening::Tcp(a), "tcp") | (Listening::Tls(a), "tls") | (Listening::Udp(a), "udp") => {
            Some(a.clone())
        }
        _ => None,
    })
}

/// Waits up to 10 s for `pid`'s fd count to fall to `target`; returns the
/// last count.
fn settle_fds(pid: u32, target: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fds = sample(pid).map_or(f64::NAN, |s| s.1);
        if fds <= target || Instant::now() >= deadline {
            return fds;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Entry point: `cargo xtask soak ARGS`.
///
/// # Errors
///
/// Bad arguments, a failed build or start, or a failed verdict.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let o = parse_options(args)?;
    let started = Instant::now();
    crate::netem::build_tools(root)?;
    let release = crate::examples::target_dir(root).join("release");
    let echo_server = release.join("examples/echo_server");
    let netsoak = release.join("evloop-netsoak");
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| crate::examples::target_dir(root).join("soak"));
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let certs = out.join("certs");
    fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
    let status = Command::new(&netsoak)
        .arg("gen-cert")
        .arg(&certs)
        .status()
        .map_err(|e| format!("{}: {e}", netsoak.display()))?;
    if !status.success() {
        return Err(format!("xtask soak: gen-cert failed ({status})"));
    }
    let cert = certs.join("cert.pem").display().to_string();
    let key = certs.join("key.pem").display().to_string();

    let (plain, plain_at) = start_server(
        &echo_server,
        &["--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"],
        o.fd_limit,
        "echo_server-plain",
        &out,
        2,
    )?;
    let (tls, tls_at) = start_server(
        &echo_server,
        &[
            "--tcp",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        o.fd_limit,
        "echo_server-tls",
        &out,
        1,
    )?;
    let (Some(tcp), Some(udp), Some(tls_addr)) = (
        addr_of(&plain_at, "tcp"),
        addr_of(&plain_at, "udp"),
        addr_of(&tls_at, "tls"),
    ) else {
        return Err("xtask soak: a server did not say where it listens".to_owned());
    };
    thread::sleep(Duration::from_millis(500));
    let (Some(plain_idle), Some(tls_idle)) = (sample(plain.pid()), sample(tls.pid())) else {
        return Err("xtask soak: cannot read the servers' /proc entries".to_owned());
    };

    let seconds = o.minutes * 60.0;
    println!(
        "==> soak {:.1} min: plain echo_server {tcp} + udp {udp} (pid {}), TLS {tls_addr} (pid {}), RLIMIT_NOFILE {}",
        o.minutes,
        plain.pid(),
        tls.pid(),
        o.fd_limit
    );
    let client_log = out.join("soak-client.log");
    let client_err =
        fs::File::create(&client_log).map_err(|e| format!("{}: {e}", client_log.display()))?;
    let mut client = Command::new(&netsoak)
        .args(["soak", "--tcp", &tcp, "--tls", &tls_addr, "--udp", &udp])
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .args(["--seconds", &seconds.to_string()])
        .args(["--seed", &o.seed.to_string()])
        .args(["--storm-every", &o.storm_every.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(client_err)
        .spawn()
        .map_err(|e| format!("{}: {e}", netsoak.display()))?;
    let stdout = client.stdout.take().expect("stdout is piped");
    let reader = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });

    let csv_path = out.join("samples.csv");
    let mut csv =
        fs::File::create(&csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let _ = writeln!(csv, "seconds,plain_rss_kib,plain_fds,tls_rss_kib,tls_fds");
    let mut readings: Vec<Reading> = Vec::new();
    let t0 = Instant::now();
    let mut tick = 0_u32;
    let mut client_status = None;
    while client_status.is_none() {
        tick += 1;
        let next = t0 + Duration::from_secs(u64::from(tick));
        thread::sleep(next.saturating_duration_since(Instant::now()));
        let t = t0.elapsed().as_secs_f64();
        if let (Some(p), Some(s)) = (sample(plain.pid()), sample(tls.pid())) {
            let r = Reading {
                t,
                plain_rss: p.0,
                plain_fds: p.1,
                tls_rss: s.0,
                tls_fds: s.1,
            };
            let _ = writeln!(
                csv,
                "{:.1},{},{},{},{}",
                r.t, r.plain_rss, r.plain_fds, r.tls_rss, r.tls_fds
            );
            if tick % 60 == 0 {
                println!(
                    "    {:>5.0} s  plain RSS {:>7.0} KiB fds {:>4}   tls RSS {:>7.0} KiB fds {:>4}",
                    r.t, r.plain_rss, r.plain_fds, r.tls_rss, r.tls_fds
                );
            }
            readings.push(r);
        }
        client_status = client.try_wait().map_err(|e| e.to_string())?;
        if t > seconds + 120.0 && client_status.is_none() {
            let _ = client.kill();
            client_status = client.wait().ok();
            println!("xtask soak: the client overran by 2 minutes: killed");
        }
    }
    let client_status = client_status.expect("the loop ends with a status");
    let client_text = reader.join().unwrap_or_default();
    let counts = client_counts(&client_text);
    let plain_after = settle_fds(plain.pid(), plain_idle.1);
    let tls_after = settle_fds(tls.pid(), tls_idle.1);
    let mut failures = Vec::new();
    for (name, server) in [("plain", plain), ("tls", tls)] {
        if let Some(note) = server.stop_with("TERM") {
            failures.push(format!("{name} server: {note}"));
        }
    }

    // Verdict.
    let warmup = seconds * WARMUP_FRACTION;
    let series = |f: fn(&Reading) -> f64| -> Vec<(f64, f64)> {
        readings.iter().map(|r| (r.t, f(r))).collect()
    };
    let plain_rss = series(|r| r.plain_rss);
    let plain_fds = series(|r| r.plain_fds);
    let tls_rss = series(|r| r.tls_rss);
    let tls_fds = series(|r| r.tls_fds);
    let trends: Vec<Trend> = [
        judge("plain RSS", "KiB", &plain_rss, warmup, rss_tolerance),
        judge("plain fds", "", &plain_fds, warmup, |_| FD_TOLERANCE),
        judge("TLS RSS", "KiB", &tls_rss, warmup, rss_tolerance),
        judge("TLS fds", "", &tls_fds, warmup, |_| FD_TOLERANCE),
    ]
    .into_iter()
    .flatten()
    .collect();
    if trends.len() < 4 {
        failures.push("too few samples after the warm-up to judge a trend".to_owned());
    }
    for t in trends.iter().filter(|t| !t.flat()) {
        failures.push(format!(
            "{} trends upward: growth {:.1}{u}, last-quarter rise {:.1}{u} (tolerance {:.1}{u})",
            t.name,
            t.growth,
            t.quarter_rise,
            t.tolerance,
            u = if t.unit.is_empty() { "" } else { " KiB" }
        ));
    }
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    if !client_status.success() {
        failures.push(format!(
            "the soak client failed ({client_status}; see {})",
            client_log.display()
        ));
    }
    if get("mismatches") > 0 {
        failures.push(format!(
            "{} echoed bytes or datagrams differed",
            get("mismatches")
        ));
    }
    if get("verified") == 0 {
        failures.push("no byte was verified".to_owned());
    }
    if get("storm.no_recovery") > 0 {
        failures.push("a server did not serve again after a connect storm".to_owned());
    }
    for (name, idle, after) in [
        ("plain", plain_idle.1, plain_after),
        ("TLS", tls_idle.1, tls_after),
    ] {
        if after.is_nan() || after > idle {
            failures.push(format!(
                "{name} server holds {after} fds once the load stopped, {idle} before it"
            ));
        }
    }

    let mut md = String::new();
    let _ = writeln!(
        md,
        "### {} — `cargo xtask soak {}`\n\n{}\n- run: {:.1} min of load, warm-up {:.0} s, {} samples per server, RLIMIT_NOFILE {}, storm every {} s\n",
        date_now(),
        args.join(" "),
        machine_facts(root, None),
        o.minutes,
        warmup,
        readings.len(),
        o.fd_limit,
        o.storm_every
    );
    let _ = writeln!(md, "| connections | count |\n|---|---:|");
    for (k, v) in counts.iter().filter(|(k, _)| k.starts_with("conns.")) {
        let _ = writeln!(md, "| {} | {v} |", &k[6..]);
    }
    let _ = writeln!(
        md,
        "\n- bytes verified: {} ({:.1} GiB), mismatches: {}",
        get("verified"),
        f64_of(get("verified")) / f64::from(1 << 30),
        get("mismatches")
    );
    let _ = writeln!(
        md,
        "- storms: {} connections opened in all, {} connects refused or timed out at the limit, {} without recovery",
        get("storm.opened"),
        get("storm.connect_failed"),
        get("storm.no_recovery")
    );
    let _ = writeln!(
        md,
        "- garbage on the TLS port: {} closed by the server, {} reset, {} still open after 5 s",
        get("garbage.closed"),
        get("garbage.reset"),
        get("garbage.held")
    );
    let _ = writeln!(
        md,
        "- UDP: {} sent, {} echoed, {} lost, {} late, {} corrupt",
        get("udp.sent"),
        get("udp.echoed"),
        get("udp.lost"),
        get("udp.late"),
        get("udp.corrupt")
    );
    let errors: Vec<String> = counts
        .iter()
        .filter(|(k, _)| k.starts_with("error."))
        .map(|(k, v)| format!("{} {v}", &k[6..]))
        .collect();
    let _ = writeln!(
        md,
        "- client errors by kind: {}",
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        }
    );
    let _ = writeln!(
        md,
        "- fds idle before the load → after it: plain {} → {}, TLS {} → {}\n",
        plain_idle.1, plain_after, tls_idle.1, tls_after
    );
    let _ = writeln!(
        md,
        "| series (after warm-up) | min | median | max | Theil–Sen slope /min | growth over the run | last − first quarter median | tolerance | flat |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for t in &trends {
        let _ = writeln!(
            md,
            "| {}{} | {:.0} | {:.0} | {:.0} | {:+.2} | {:+.1} | {:+.1} | {:.0} | {} |",
            t.name,
            if t.unit.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.unit)
            },
            t.min,
            t.median,
            t.max,
            t.slope_per_min,
            t.growth,
            t.quarter_rise,
            t.tolerance,
            if t.flat() { "yes" } else { "NO" }
        );
    }
    let verdict = if failures.is_empty() {
        "PASS".to_owned()
    } else {
        format!("FAIL: {}", failures.join("; "))
    };
    let _ = writeln!(md, "\n- verdict: **{verdict}**");
    println!("\n{md}");
    let summary = out.join("summary.txt");
    fs::write(&summary, &md).map_err(|e| format!("{}: {e}", summary.display()))?;

    let mib = |v: &[(f64, f64)]| -> Vec<(f64, f64)> {
        v.iter().map(|&(t, kib)| (t / 60.0, kib / 1024.0)).collect()
    };
    let minutes =
        |v: &[(f64, f64)]| -> Vec<(f64, f64)> { v.iter().map(|&(t, y)| (t / 60.0, y)).collect() };
    let (pr, tr, pf, tf) = (
        mib(&plain_rss),
        mib(&tls_rss),
        minutes(&plain_fds),
        minutes(&tls_fds),
    );
    let panels = [
        Panel {
            heading: "RSS (MiB)".to_owned(),
            series: vec![
                Series {
                    name: "plain echo_server".to_owned(),
                    color: "#1f77b4",
                    points: &pr,
                },
                Series {
                    name: "TLS echo_server".to_owned(),
                    color: "#d62728",
                    points: &tr,
                },
            ],
        },
        Panel {
            heading: format!("open fds (limit {}; spikes: connect storms)", o.fd_limit),
            series: vec![
                Series {
                    name: "plain echo_server".to_owned(),
                    color: "#1f77b4",
                    points: &pf,
                },
                Series {
                    name: "TLS echo_server".to_owned(),
                    color: "#d62728",
                    points: &tf,
                },
            ],
        },
    ];
    let svg = chart::line_chart(
        &format!(
            "cargo xtask soak --minutes {} ({}): {}",
            o.minutes,
            date_now(),
            if failures.is_empty() { "PASS" } else { "FAIL" }
        ),
        &panels,
        "minutes",
        Some(warmup / 60.0),
        &format!(
            "sampled every second from /proc; grey: warm-up; {} bytes verified, {} mismatches",
            get("verified"),
            get("mismatches")
        ),
    );
    let svg_path = out.join("soak.svg");
    fs::write(&svg_path, &svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    println!(
        "xtask soak: wrote {}, {}, {}",
        csv_path.display(),
        summary.display(),
        svg_path.display()
    );
    if o.plot {
        let docs = root.join("docs/soak.svg");
        fs::write(&docs, &svg).map_err(|e| format!("{}: {e}", docs.display()))?;
        println!("xtask soak: wrote {}", docs.display());
    }
    println!(
        "xtask soak: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("xtask soak: {verdict}"))
    }
}

#[allow(clippy::cast_precision_loss)]
fn f64_of(v: u64) -> f64 {
    v as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args;

    #[test]
    fn options() {
        let o = parse_options(&args("--minutes 0.5 --plot --fd-limit 512")).unwrap();
        assert!((o.minutes - 0.5).abs() < 1e-12);
        assert!(o.plot);
        assert_eq!(o.fd_limit, 512);
        assert!(parse_options(&[]).is_err());
        assert!(parse_options(&args("--minutes 0")).is_err());
        assert!(parse_options(&args("--minutes 1 --bogus")).is_err());
    }

    fn line(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..n).map(|i| (i as f64, f(i as f64))).collect()
    }

    #[test]
    fn a_flat_series_with_storm_spikes_is_flat() {
        // 30 minutes of 12 ± 2 fds, with a 1,000-fd storm 2 s a minute.
        let points = line(1800, |t| {
            if (t as u64) % 60 < 2 {
                1000.0
            } else {
                12.0 + ((t as u64 * 7) % 5) as f64 - 2.0
            }
        });
        let t = judge("fds", "", &points, 180.0, |_| FD_TOLERANCE).unwrap();
        assert!(t.flat(), "{t:?}");
        assert!(t.growth.abs() < 1.0, "{t:?}");
        assert_eq!(t.max, 1000.0);
    }

    #[test]
    fn a_slow_leak_is_caught() {
        // One fd leaked every 3 minutes: +9 over the 27 judged minutes.
        let points = line(1800, |t| 12.0 + (t / 180.0).floor());
        let t = judge("fds", "", &points, 180.0, |_| FD_TOLERANCE).unwrap();
        assert!(!t.flat(), "{t:?}");
        // 64 KiB a minute of RSS on 8 MiB: caught too.
        let rss = line(1800, |t| 8192.0 + t / 60.0 * 64.0);
        let t = judge("rss", "KiB", &rss, 180.0, rss_tolerance).unwrap();
        assert!(!t.flat(), "{t:?}");
        assert!((t.slope_per_min - 64.0).abs() < 0.5, "{t:?}");
    }

    #[test]
    fn a_warm_up_ramp_is_not_a_trend() {
        let rss = line(1800, |t| if t < 150.0 { 4000.0 + t * 20.0 } else { 7000.0 });
        let t = judge("rss", "KiB", &rss, 180.0, rss_tolerance).unwrap();
        assert!(t.flat(), "{t:?}");
        assert!(judge("rss", "KiB", &rss[..100], 180.0, rss_tolerance).is_none());
    }

    #[test]
    fn client_lines_are_read_into_counts() {
        let c = client_counts(
            "soak-client verified=10 mismatches=0\nnoise\nsoak-client conns.tls=3 error.tls.TimedOut=1\n",
        );
        assert_eq!(c["verified"], 10);
        assert_eq!(c["conns.tls"], 3);
        assert_eq!(c["error.tls.TimedOut"], 1);
        assert_eq!(c.len(), 4);
    }
}
