//! `cargo xtask bench tls`: the TLS benchmark of issue 8 ("Speed").
//!
//! Same machinery as the echo benchmark (one load generator, servers
//! interleaved round-robin, medians and per-round ranges, server CPU from
//! `/proc` schedstat), with the load generator's TLS modes:
//!
//! 1. TLS echo at 1 KiB and 100 KiB, 10 connections: evloop's
//!    `echo_server --tls-cert --tls-key`, tokio current_thread +
//!    tokio-rustls (`bench/servers/tokio-rustls-echo`: the same rustls 0.23,
//!    `ring` provider and server config), uvloop and asyncio with Python's
//!    `ssl` module. The client verifies the chain against the bench's CA.
//! 2. Handshakes per second, full (`Resumption::disabled()`) and resumed
//!    (one shared client config keeping TLS 1.3 tickets in memory), evloop
//!    vs tokio-rustls: connect, handshake, one 64-byte round trip,
//!    close_notify both ways, close. The client skips certificate checks
//!    here so that it is not the bottleneck (its two ECDSA verifications
//!    per handshake cost more than the server's one signature).
//! 3. Memory per idle TLS connection: N connections (default 1,000) opened
//!    10 at a time, one round trip each, then held; the server's `VmRSS`
//!    and `VmHWM` before any connection and with all of them held, per
//!    connection.
//!
//! The CA, certificate and key are made fresh by the load generator
//! (`evloop-loadgen gen-cert`, rcgen) into target/bench-tls/, never
//! committed. Results are appended to docs/performance.md ("## TLS").

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use super::parse;
use super::report::{
    self, fixed, median, mib, min_max, ratio, ratio_spread, reaches, round_ratios, samples,
    size_name, summarize, thousands, Entry, Table,
};
use super::run::{
    self, among, present, python_echo_args, servers, Env, IdleSample, Load, Transport,
};
use super::{
    build_example, build_release, command_line, machine_facts, print_results, python_venv, Cli,
};

const USAGE: &str = "\
usage: cargo xtask bench tls [--quick] [--rounds R] [--duration D] [--warmup W]
                             [--servers evloop,tokio-rustls,uvloop,asyncio]
                             [--idle-conns 1000] [--no-record]

  TLS 1.3 (rustls 0.23 + ring on every Rust side) echo at 1 KiB and
  100 KiB over 10 connections (evloop, tokio-rustls, uvloop, asyncio),
  full and resumed handshakes per second (evloop, tokio-rustls), and the
  server memory per idle TLS connection (--idle-conns held). Servers
  interleaved R times (default 3; --quick: 1 round of short runs, about a
  minute). Defaults: W = 1 s, D = 3 s (--quick: 0.2 s, 0.8 s). Results
  are appended to docs/performance.md (## TLS) unless --no-record.";

/// The servers, in the order they run in each round.
const SERVERS: &[&str] = &["evloop", "tokio-rustls", "uvloop", "asyncio"];
/// The servers of the handshake and idle-memory comparisons.
const PAIR: &[&str] = &["evloop", "tokio-rustls"];
/// The baseline every ratio is taken against.
const BASE: &str = "tokio-rustls";
/// Echo message sizes.
const SIZES: &[usize] = &[1024, 100 * 1024];
/// The round trip of a handshake cycle.
const HANDSHAKE_SIZE: usize = 64;
/// Connections (echo), concurrent cycles (handshakes), connections opened
/// at a time (idle).
const CONNS: usize = 10;

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    record: bool,
    rounds: usize,
    warmup: f64,
    duration: f64,
    idle_conns: usize,
    servers: Vec<&'static str>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        record: true,
        rounds: 3,
        warmup: 1.0,
        duration: 3.0,
        idle_conns: 1000,
        servers: SERVERS.to_vec(),
    };
    let (mut duration, mut warmup, mut rounds) = (None, None, None);
    let mut cli = Cli::new("bench tls", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--quick" => o.quick = true,
            "--no-record" => o.record = false,
            "--rounds" => rounds = Some(cli.positive("--rounds")?),
            "--idle-conns" => o.idle_conns = cli.positive("--idle-conns")?,
            "--duration" => duration = Some(cli.seconds("--duration")?),
            "--warmup" => warmup = Some(cli.seconds("--warmup")?),
            "--servers" => o.servers = cli.names("--servers", SERVERS)?,
            _ => return Err(cli.unknown(&flag)),
        }
    }
    o.duration = duration.unwrap_or(if o.quick { 0.8 } else { 3.0 });
    o.warmup = warmup.unwrap_or(if o.quick { 0.2 } else { 1.0 });
    o.rounds = rounds.unwrap_or(if o.quick { 1 } else { 3 });
    if o.duration <= 0.0 {
        return Err("xtask bench tls: --duration must be positive".to_owned());
    }
    Ok(o)
}

/// One idle-memory reading.
#[derive(Debug, Clone)]
struct Idle {
    server: &'static str,
    sample: IdleSample,
}

/// Runs `cargo xtask bench tls ARGS`.
///
/// # Errors
///
/// Bad arguments, a failed build, no certificate, or no measurement.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let options = parse_options(args)?;
    let started = SystemTime::now();
    let target_dir = crate::examples::target_dir(root);
    let release = target_dir.join("release");
    build_release(root, &["evloop-loadgen", "tokio-rustls-echo-bench"])?;
    let mut skipped = Vec::new();
    let evloop_built = match build_example(root, "echo_server") {
        Ok(()) => true,
        Err(e) => {
            skipped.push(format!(
                "evloop: the echo_server example does not build ({e})"
            ));
            false
        }
    };
    let loadgen = release.join("evloop-loadgen");
    let cert_dir = target_dir.join("bench-tls");
    println!("==> evloop-loadgen gen-cert {}", cert_dir.display());
    let status = std::process::Command::new(&loadgen)
        .arg("gen-cert")
        .arg(&cert_dir)
        .status()
        .map_err(|e| format!("xtask bench tls: {}: {e}", loadgen.display()))?;
    if !status.success() {
        return Err(format!("xtask bench tls: gen-cert failed ({status})"));
    }
    let path = |name: &str| cert_dir.join(name).display().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("cert.pem"), path("key.pem"));
    let tls_args = vec![
        "--tls-cert".to_owned(),
        cert.clone(),
        "--tls-key".to_owned(),
        key.clone(),
    ];
    let python = python_venv(root, &options.servers, &mut skipped);

    let servers = servers("xtask bench tls", &options.servers, &mut skipped, |name| {
        Some(match name {
            "evloop" if !evloop_built => return None,
            "evloop" => (release.join("examples/echo_server"), tls_args.clone()),
            "tokio-rustls" => (release.join("tokio-rustls-echo"), tls_args.clone()),
            "asyncio" | "uvloop" => {
                let args = [python_echo_args(root, name), tls_args.clone()].concat();
                (python.clone()?, args)
            }
            _ => return None,
        })
    })?;
    let work_dir = target_dir.join("bench-tls");
    let env_with = |extra: &[&str]| Env {
        loadgen: loadgen.clone(),
        loadgen_args: extra.iter().map(|s| (*s).to_owned()).collect(),
        work_dir: work_dir.clone(),
        pin: None,
    };
    let echo_env = env_with(&["--tls", "--tls-ca", &ca]);
    let full_env = env_with(&["--tls", "--handshakes"]);
    let resumed_env = env_with(&["--tls", "--handshakes", "--resume"]);
    let idle_count = options.idle_conns.to_string();
    let hold = if options.quick { "0.3" } else { "1" };
    let idle_env = env_with(&["--tls", "--tls-ca", &ca, "--idle", &idle_count]);
    let base = Load {
        transport: Transport::Tcp,
        size: 1024,
        conns: CONNS,
        warmup: options.warmup,
        duration: options.duration,
    };
    let mut notes = Vec::new();
    let mut broken: Vec<&'static str> = Vec::new();

    // What each server negotiates (and that it works at all).
    let mut negotiated = Vec::new();
    for server in &servers {
        let load = Load {
            warmup: 0.0,
            duration: 0.1,
            ..base
        };
        match run::probe(&echo_env, server, &load) {
            Ok(line) => negotiated.push(format!(
                "{}: {} {}",
                server.name,
                parse::line_field(&line, "tls").unwrap_or("?"),
                parse::line_field(&line, "suite").unwrap_or("?")
            )),
            Err(e) => {
                println!("    {:<13} probe FAILED: {}", server.name, e.message);
                notes.push(format!(
                    "{}: {}; its runs are skipped",
                    server.name, e.message
                ));
                broken.push(server.name);
            }
        }
    }

    let mut echo = Vec::new();
    for &size in SIZES {
        println!(
            "==> tls echo {size} B x {CONNS} conns: {} round(s) of {}",
            options.rounds,
            super::names(&servers)
        );
        for round in 0..options.rounds {
            let load = Load { size, ..base };
            super::measure_round(
                &echo_env,
                &servers,
                &load,
                round,
                &mut broken,
                &mut echo,
                &mut notes,
            );
        }
    }

    let pair = among(&servers, PAIR);
    let hs_load = Load {
        size: HANDSHAKE_SIZE,
        ..base
    };
    let (mut full, mut resumed) = (Vec::new(), Vec::new());
    let mut resumed_share: Vec<(&'static str, String)> = Vec::new();
    println!(
        "==> tls handshakes (full, resumed) x {CONNS} concurrent: {} round(s) of {}",
        options.rounds,
        super::names(&pair)
    );
    for round in 0..options.rounds {
        for (env, entries) in [(&full_env, &mut full), (&resumed_env, &mut resumed)] {
            super::measure_round(
                env,
                &pair,
                &hs_load,
                round,
                &mut broken,
                entries,
                &mut notes,
            );
        }
    }
    // The resumed share, from one probe each (the samples keep no such field).
    for server in pair.iter().filter(|s| !broken.contains(&s.name)) {
        let load = Load {
            warmup: 0.2,
            duration: 0.3,
            ..hs_load
        };
        if let Ok(line) = run::probe(&resumed_env, server, &load) {
            let number = |key| parse::line_field(&line, key).and_then(|v| v.parse().ok());
            let share =
                number("resumed").unwrap_or(f64::NAN) / number("requests").unwrap_or(f64::NAN);
            resumed_share.push((server.name, format!("{}%", fixed(share * 100.0, 0))));
        }
    }

    let mut idle = Vec::new();
    println!(
        "==> tls idle: {} connections held: {} round(s) of {}",
        options.idle_conns,
        options.rounds,
        super::names(&pair)
    );
    for round in 0..options.rounds {
        for server in pair.iter().filter(|s| !broken.contains(&s.name)) {
            let load = Load {
                warmup: 0.0,
                duration: hold.parse().unwrap_or(1.0),
                ..base
            };
            match run::measure_idle(&idle_env, server, &load, &mut notes) {
                Ok(sample) => {
                    let per = per_conn(sample.rss_held, sample.rss_before, sample.conns);
                    println!(
                        "    {:<13} round {}: {} conns, {per:>8.0} B RSS per connection",
                        server.name,
                        round + 1,
                        sample.conns
                    );
                    idle.push(Idle {
                        server: server.name,
                        sample,
                    });
                }
                Err(e) => {
                    println!(
                        "    {:<13} round {}: FAILED: {}",
                        server.name,
                        round + 1,
                        e.message
                    );
                    notes.push(format!("idle round {}: {}", round + 1, e.message));
                }
            }
        }
    }

    let pair_names = present(PAIR, &servers);
    let tables = vec![
        echo_table(&echo, &present(SERVERS, &servers), options.rounds),
        handshake_table(&full, &resumed, &pair_names, &resumed_share, options.rounds),
        idle_table(&idle, &pair_names),
        targets_table(&echo),
    ];
    let command = command_line("bench tls", args);
    let lock = fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let version = |p: &str| parse::lock_version(&lock, p).unwrap_or_else(|| "?".to_owned());
    let openssl = python
        .as_deref()
        .and_then(|p| run::first_line(p, &["-c", "import ssl; print(ssl.OPENSSL_VERSION)"]))
        .unwrap_or_else(|| "-".to_owned());
    let machine = format!(
        "{}\n- TLS: rustls {} with the ring {} provider in evloop, tokio-rustls {} and the load \
         generator; Python's ssl module on {openssl}\n- negotiated: {}",
        machine_facts(root, python.as_deref()),
        version("rustls"),
        version("ring"),
        version("tokio-rustls"),
        negotiated.join("; ")
    );
    print_results(&machine, &tables, &skipped, &notes);
    let elapsed = started.elapsed().map_or(0.0, |d| d.as_secs_f64());
    println!("xtask bench tls: done in {elapsed:.0} s");
    if options.record {
        let section = report::run_section(&command, &machine, &tables, &skipped, &notes);
        report::append_section(root, "xtask bench tls", "## TLS", INTRO, &section)?;
    }
    if echo.is_empty() {
        return Err("xtask bench tls: every run failed (see the notes above)".to_owned());
    }
    Ok(())
}

fn p50(runs: &[&Entry]) -> f64 {
    median(
        &runs
            .iter()
            .map(|e| e.sample.load.p50_us)
            .collect::<Vec<_>>(),
    )
}

fn echo_table(entries: &[Entry], servers: &[&'static str], rounds: usize) -> Table {
    let mut table = Table::new(
        format!("TLS echo, {CONNS} connections: median of {rounds} round(s), servers interleaved"),
        &[
            "server",
            "size",
            "req/s",
            "min-max",
            "x tokio-rustls",
            "per-round x tokio-rustls",
            "x uvloop",
            "CPU us/req",
            "CPU x tokio-rustls",
            "p50 us",
            "p99 us",
            "peak RSS",
            "client CPU",
        ],
    );
    for &size in SIZES {
        let base_runs = samples(entries, Transport::Tcp, size, CONNS, BASE);
        let base = summarize(&base_runs);
        let uvloop = summarize(&samples(entries, Transport::Tcp, size, CONNS, "uvloop"));
        for &server in servers {
            let runs = samples(entries, Transport::Tcp, size, CONNS, server);
            let Some(s) = summarize(&runs) else { continue };
            table.rows.push(vec![
                server.to_owned(),
                size_name(size),
                thousands(s.rps),
                format!("{}-{}", thousands(s.rps_min), thousands(s.rps_max)),
                base.map_or("-".to_owned(), |b| ratio(s.rps, b.rps)),
                ratio_spread(&round_ratios(&runs, &base_runs)),
                uvloop.map_or("-".to_owned(), |u| ratio(s.rps, u.rps)),
                fixed(s.cpu_us, 2),
                base.map_or("-".to_owned(), |b| ratio(s.cpu_us, b.cpu_us)),
                fixed(p50(&runs), 0),
                fixed(s.p99_us, 0),
                mib(s.rss_kib),
                format!("{}%", fixed(s.client_cpu * 100.0, 0)),
            ]);
        }
    }
    table.notes.push(
        "TLS 1.3, the client verifies the chain against the bench's CA; CPU us/req: the server's \
         CPU time (all threads, /proc schedstat) in the counted window / requests; client CPU: \
         the load generator's CPU / wall time (100% = its core is the bottleneck); `!`: the \
         per-round ratio spreads more than 15% (noise)."
            .to_owned(),
    );
    table
}

fn handshake_table(
    full: &[Entry],
    resumed: &[Entry],
    servers: &[&'static str],
    share: &[(&'static str, String)],
    rounds: usize,
) -> Table {
    let mut table = Table::new(
        format!(
            "TLS handshakes, {CONNS} concurrent cycles (connect, handshake, {HANDSHAKE_SIZE} B \
             round trip, close_notify, close): median of {rounds} round(s)"
        ),
        &[
            "server",
            "handshake",
            "cycles/s",
            "min-max",
            "x tokio-rustls",
            "per-round x tokio-rustls",
            "CPU us/cycle",
            "CPU x tokio-rustls",
            "resumed",
            "p50 us",
            "p99 us",
            "client CPU",
        ],
    );
    for (kind, entries) in [("full", full), ("resumed", resumed)] {
        let base_runs = samples(entries, Transport::Tcp, HANDSHAKE_SIZE, CONNS, BASE);
        let base = summarize(&base_runs);
        for &server in servers {
            let runs = samples(entries, Transport::Tcp, HANDSHAKE_SIZE, CONNS, server);
            let Some(s) = summarize(&runs) else { continue };
            let resumed_share = if kind == "full" {
                "0% (disabled)".to_owned()
            } else {
                share
                    .iter()
                    .find(|(n, _)| *n == server)
                    .map_or("-".to_owned(), |(_, v)| v.clone())
            };
            table.rows.push(vec![
                server.to_owned(),
                kind.to_owned(),
                thousands(s.rps),
                format!("{}-{}", thousands(s.rps_min), thousands(s.rps_max)),
                base.map_or("-".to_owned(), |b| ratio(s.rps, b.rps)),
                ratio_spread(&round_ratios(&runs, &base_runs)),
                fixed(s.cpu_us, 1),
                base.map_or("-".to_owned(), |b| ratio(s.cpu_us, b.cpu_us)),
                resumed_share,
                fixed(p50(&runs), 0),
                fixed(s.p99_us, 0),
                format!("{}%", fixed(s.client_cpu * 100.0, 0)),
            ]);
        }
    }
    table.notes.push(
        "full: the client config has `Resumption::disabled()`; resumed: one shared client config \
         keeps the TLS 1.3 tickets (rustls's in-memory store), the servers their default \
         in-memory session cache; resumed share from a separate probe run. The client skips \
         certificate checks here (a bench client) so that it is not the bottleneck."
            .to_owned(),
    );
    table
}

/// Bytes per connection that `conns` idle connections added between two
/// `/proc` readings in KiB, `before` and `after`.
#[allow(clippy::cast_precision_loss)]
fn per_conn(after: u64, before: u64, conns: u64) -> f64 {
    after.saturating_sub(before) as f64 * 1024.0 / conns.max(1) as f64
}

fn idle_table(idle: &[Idle], servers: &[&'static str]) -> Table {
    let mut table = Table::new(
        "Server memory per idle TLS connection (opened 10 at a time, one round trip each, \
         then held)",
        &[
            "server",
            "connections",
            "VmRSS before",
            "VmRSS held",
            "RSS per connection",
            "min-max",
            "VmHWM per connection",
            "x tokio-rustls",
        ],
    );
    let stats = |server: &str| {
        let runs: Vec<&IdleSample> = idle
            .iter()
            .filter(|i| i.server == server)
            .map(|i| &i.sample)
            .collect();
        if runs.is_empty() {
            return None;
        }
        let rss: Vec<f64> = runs
            .iter()
            .map(|s| per_conn(s.rss_held, s.rss_before, s.conns))
            .collect();
        let hwm: Vec<f64> = runs
            .iter()
            .map(|s| per_conn(s.hwm_held, s.hwm_before, s.conns))
            .collect();
        Some((runs, median(&rss), min_max(&rss), median(&hwm)))
    };
    let base = stats(BASE).map(|s| s.1);
    for &server in servers {
        let Some((runs, rss, (lo, hi), hwm)) = stats(server) else {
            continue;
        };
        #[allow(clippy::cast_precision_loss)]
        let kib = |v: Vec<u64>| median(&v.into_iter().map(|k| k as f64).collect::<Vec<_>>());
        let before = kib(runs.iter().map(|s| s.rss_before).collect());
        let held = kib(runs.iter().map(|s| s.rss_held).collect());
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        table.rows.push(vec![
            server.to_owned(),
            runs[0].conns.to_string(),
            mib(Some(before as u64)),
            mib(Some(held as u64)),
            format!("{} B", thousands(rss)),
            format!("{}-{}", thousands(lo), thousands(hi)),
            format!("{} B", thousands(hwm)),
            base.map_or("-".to_owned(), |b| ratio(rss, b)),
        ]);
    }
    table.notes.push(
        "per connection: (VmRSS with all connections held - VmRSS before any) / connections \
         (medians over rounds); VmHWM the same with the peak, which includes the handshakes' \
         transient buffers."
            .to_owned(),
    );
    table
}

fn targets_table(echo: &[Entry]) -> Table {
    let mut table = Table::new(
        "issue 8 targets (evloop, ratios within this run)",
        &["target", "measured", "met"],
    );
    let get =
        |size: usize, server: &str| summarize(&samples(echo, Transport::Tcp, size, CONNS, server));
    for &size in SIZES {
        let Some(e) = get(size, "evloop") else {
            continue;
        };
        for (other, goal) in [(BASE, 1.0), ("uvloop", 2.0)] {
            let Some(o) = get(size, other) else { continue };
            let value = e.rps / o.rps;
            table.rows.push(vec![
                format!(
                    "tls echo {}: evloop req/s >= {goal:.1}x {other}",
                    size_name(size)
                ),
                fixed(value, 2),
                if reaches(value, goal, false) {
                    "yes"
                } else {
                    "MISSED"
                }
                .to_owned(),
            ]);
        }
    }
    table
}

const INTRO: &str = "`cargo xtask bench tls` (issue 8): TLS 1.3 echo, handshakes and idle \
connection memory, every server under the same load generator (`bench/loadgen --tls`: one \
thread, edge-triggered epoll, non-blocking rustls 0.23 + ring), servers interleaved \
round-robin. Compare ratios within one run only; gaps under 15% are noise on these machines \
(docs/performance.md). Newest run last.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args;
    use crate::bench::report::test_entry;

    #[test]
    fn options() {
        let o = parse_options(&[]).unwrap();
        assert_eq!((o.rounds, o.idle_conns, o.quick), (3, 1000, false));
        assert_eq!(o.servers, SERVERS);
        let q = parse_options(&args("--quick --servers evloop,tokio-rustls")).unwrap();
        assert_eq!(q.rounds, 1);
        assert!(q.duration < 1.0);
        assert_eq!(q.servers, ["evloop", "tokio-rustls"]);
        let r = parse_options(&args("--rounds 5 --duration 2 --idle-conns 10")).unwrap();
        assert_eq!((r.rounds, r.idle_conns), (5, 10));
        assert!(parse_options(&args("--servers nginx")).is_err());
        assert!(parse_options(&args("--rounds 0")).is_err());
        assert!(parse_options(&args("--bogus")).is_err());
    }

    #[test]
    fn tables_and_targets() {
        let echo = vec![
            test_entry("evloop", 1024, CONNS, 0, 110.0),
            test_entry("tokio-rustls", 1024, CONNS, 0, 100.0),
            test_entry("uvloop", 1024, CONNS, 0, 50.0),
            test_entry("evloop", 102_400, CONNS, 0, 90.0),
            test_entry("tokio-rustls", 102_400, CONNS, 0, 100.0),
            test_entry("uvloop", 102_400, CONNS, 0, 60.0),
        ];
        let t = echo_table(&echo, &["evloop", "tokio-rustls", "uvloop"], 1);
        assert_eq!(t.rows.len(), 6);
        assert_eq!(t.rows[0][4], "1.10");
        assert_eq!(t.rows[0][6], "2.20");
        let targets = targets_table(&echo);
        let met: Vec<&str> = targets.rows.iter().map(|r| r[2].as_str()).collect();
        assert_eq!(met, ["yes", "yes", "MISSED", "MISSED"]);
        let idle = vec![Idle {
            server: "evloop",
            sample: IdleSample {
                conns: 1000,
                rss_before: 2000,
                hwm_before: 2000,
                rss_held: 3000,
                hwm_held: 4000,
            },
        }];
        let t = idle_table(&idle, &["evloop", "tokio-rustls"]);
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.rows[0][4], "1,024 B");
        assert_eq!(t.rows[0][6], "2,048 B");
    }
}
