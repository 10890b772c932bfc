//! `cargo xtask bench`: the echo benchmark (docs/performance.md, issue 4)
//! and, as `cargo xtask bench micro`, the micro benchmarks; `cargo xtask
//! bench tls` is the TLS benchmark (`bench/tls.rs`, issue 8); `cargo xtask
//! bench --instructions` counts instructions per operation under callgrind
//! (`bench/instructions.rs`, issue 12); `cargo xtask bench python` compares
//! Python event loops, evloop's binding among them (`bench/python.rs`,
//! issue 13).
//!
//! The echo benchmark builds everything in release (the workspace's one
//! `[profile.release]` for every Rust server), then for each transport ×
//! message size runs the servers round-robin (A B C … A B C …) R times under
//! one load generator (`bench/loadgen`), so machine drift spreads over all of
//! them. Each run starts a server, reads its `listening on` line, runs the
//! load generator (warm-up, then the counted window), reads the server's CPU
//! time from `/proc` when counting starts and ends and its peak RSS
//! (`VmHWM`), then stops it with SIGINT and checks it says `shutdown`. Then a
//! 10 vs 1,000 connections comparison (evloop, tokio) and a syscall count per
//! round trip under `strace -c -f` (when strace exists). It prints the tables
//! and appends them, with the machine, versions and command line, to
//! docs/performance.md ("## Echo benchmarks"); `--plot` writes
//! docs/bench-echo.svg.
//!
//! - `bench/cli.rs` reads the command lines of all of them,
//! - `bench/parse.rs` reads the servers', load generator's, /proc's and
//!   strace's output,
//! - `bench/run.rs` runs one measurement,
//! - `bench/report.rs` makes tables and target checks,
//! - `bench/chart.rs` draws the chart (and the soak's).
//!
//! No pinning (docs/performance.md: taskset made it worse), the same
//! client for all, the spread reported.

pub(crate) mod chart;
mod cli;
mod instructions;
pub(crate) mod parse;
mod process;
mod python;
pub(crate) mod report;
pub(crate) mod run;
mod scaling;
mod sendfile;
mod tls;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cargo;
#[cfg(test)]
pub(crate) use cli::args;
pub(crate) use cli::{command_line, Cli};
use report::{Entry, Syscalls, Table};
use run::{among, present, python_echo_args, servers, Env, Load, Server, Transport};

const USAGE: &str = "\
usage: cargo xtask bench [--quick] [--plot] [--sizes 1024,10240,102400,1048576] [--conns 10]
                         [--duration D] [--warmup W] [--rounds R] [--transport tcp,unix]
                         [--servers evloop,tokio,...] [--many-conns 1000] [--no-strace]
                         [--verify] [--pin SERVER_CPUS:CLIENT_CPUS] [--no-record]
       cargo xtask bench micro [bench/run-micro.sh args]
       cargo xtask bench tls [--quick] [--rounds R] [--duration D] ... (see --help there)
       cargo xtask bench --instructions [--check] [--update-baseline] (see --help there)
       cargo xtask bench scaling [--quick] [--sizes S] [--conns C] ... (see --help there)
       cargo xtask bench python [--rounds N] [--duration S] [--sizes ...] [--loops ...]
                                (Python loops: asyncio, uvloop, rloop, rsloop, evloop)

  Echo benchmark: servers evloop, evloop-streams, tokio, raw-epoll, asyncio,
  uvloop, interleaved R times (default 3; --quick: 1 round, short runs, < 90 s)
  per transport and size. Defaults: W = 1 s, D = 3 s (--quick: 0.2 s, 0.8 s).
  The client drops echoed bytes in the kernel (`recv(MSG_TRUNC)`, loadgen
  --discard) so that the server, not the client, is the bottleneck at large
  sizes; --verify makes it read and check every byte instead. --pin 1:0
  runs every server on CPU 1 and the client on CPU 0 (`taskset -c` lists;
  0:0 shares one CPU): without it the scheduler places them, and on 2
  cores whether the two share a CPU decides the throughput mode.
  Then 10 vs --many-conns connections at 1 KiB over TCP (evloop, tokio) and
  syscalls per round trip under strace. Results are appended to
  docs/performance.md unless --no-record; --plot writes docs/bench-echo.svg.
  TLS is not part of this run: `cargo xtask bench tls` (about 4 minutes,
  --quick about a minute) measures TLS echo, handshakes and idle memory.";

/// The servers, in the order they run in each round.
const SERVERS: &[&str] = &[
    "evloop",
    "evloop-streams",
    "tokio",
    "raw-epoll",
    "asyncio",
    "uvloop",
];
/// The servers of the 10 vs 1,000 connections and syscall comparisons.
const PAIR: &[&str] = &["evloop", "tokio"];

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    plot: bool,
    record: bool,
    strace: bool,
    verify: bool,
    pin: Option<run::Pin>,
    sizes: Vec<usize>,
    conns: usize,
    many_conns: usize,
    warmup: f64,
    duration: f64,
    rounds: usize,
    transports: Vec<Transport>,
    servers: Vec<&'static str>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        plot: false,
        record: true,
        strace: true,
        verify: false,
        pin: None,
        sizes: vec![1024, 10 * 1024, 100 * 1024, 1024 * 1024],
        conns: 10,
        many_conns: 1000,
        warmup: 1.0,
        duration: 3.0,
        rounds: 3,
        transports: vec![Transport::Tcp, Transport::Unix],
        servers: SERVERS.to_vec(),
    };
    let (mut duration, mut warmup, mut rounds) = (None, None, None);
    let mut cli = Cli::new("bench", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--quick" => o.quick = true,
            "--plot" => o.plot = true,
            "--no-record" => o.record = false,
            "--no-strace" => o.strace = false,
            "--verify" => o.verify = true,
            "--pin" => {
                o.pin = Some(cli.parsed("--pin", |v| {
                    let (server, client) = v.split_once(':')?;
                    Some(run::Pin {
                        server: run::taskset_list(server)?,
                        client: run::taskset_list(client)?,
                    })
                })?);
            }
            "--sizes" => o.sizes = cli.sizes("--sizes")?,
            "--conns" => o.conns = cli.positive("--conns")?,
            "--many-conns" => o.many_conns = cli.positive("--many-conns")?,
            "--rounds" => rounds = Some(cli.positive("--rounds")?),
            "--duration" => duration = Some(cli.seconds("--duration")?),
            "--warmup" => warmup = Some(cli.seconds("--warmup")?),
            "--transport" => {
                o.transports = cli.parsed("--transport", |v| {
                    v.split(',')
                        .map(|t| match t.trim() {
                            "tcp" => Some(Transport::Tcp),
                            "unix" => Some(Transport::Unix),
                            _ => None,
                        })
                        .collect()
                })?;
            }
            "--servers" => o.servers = cli.names("--servers", SERVERS)?,
            _ => return Err(cli.unknown(&flag)),
        }
    }
    o.duration = duration.unwrap_or(if o.quick { 0.8 } else { 3.0 });
    o.warmup = warmup.unwrap_or(if o.quick { 0.2 } else { 1.0 });
    o.rounds = rounds.unwrap_or(if o.quick { 1 } else { 3 });
    if o.duration <= 0.0 {
        return Err("xtask bench: --duration must be positive".to_owned());
    }
    Ok(o)
}

/// Runs `cargo xtask bench ARGS` for the workspace at `root`.
///
/// # Errors
///
/// Bad arguments, a failed build of the load generator or the comparison
/// servers, or no measurement at all. A missing or failing server is
/// reported and skipped, not an error.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("micro") => return micro(root, &args[1..]),
        Some("process") => return process::run(root, &args[1..]),
        Some("tls") => return tls::run(root, &args[1..]),
        Some("sendfile") => return sendfile::run(root, &args[1..]),
        Some("python") => return python::run(root, &args[1..]),
        Some("scaling") => return scaling::main(&args[1..]),
        _ => {}
    }
    if args.iter().any(|a| a == "--instructions") {
        return instructions::run(root, args);
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let options = parse_options(args)?;
    let started = SystemTime::now();
    let target_dir = crate::examples::target_dir(root);
    let release = target_dir.join("release");

    build_release(
        root,
        &["evloop-loadgen", "raw-epoll-echo", "tokio-echo-bench"],
    )?;
    let mut skipped = Vec::new();
    let evloop_source = root.join("crates/evloop/examples/echo_server.rs");
    let evloop_built = if evloop_source.is_file() {
        match build_example(root, "echo_server") {
            Ok(()) => true,
            Err(e) => {
                skipped.push(format!(
                    "evloop, evloop-streams: the echo_server example does not build ({e})"
                ));
                false
            }
        }
    } else {
        skipped.push(
            "evloop, evloop-streams: crates/evloop/examples/echo_server.rs does not exist yet"
                .to_owned(),
        );
        false
    };
    let python = python_venv(root, &options.servers, &mut skipped);

    let servers = servers("xtask bench", &options.servers, &mut skipped, |name| {
        Some(match name {
            "evloop" | "evloop-streams" if !evloop_built => return None,
            "evloop" => (release.join("examples/echo_server"), vec![]),
            "evloop-streams" => (
                release.join("examples/echo_server"),
                vec!["--streams".to_owned()],
            ),
            "tokio" => (release.join("tokio-echo"), vec![]),
            "raw-epoll" => (release.join("raw-epoll-echo"), vec![]),
            "asyncio" | "uvloop" => (python.clone()?, python_echo_args(root, name)),
            _ => return None,
        })
    })?;
    let mut env = Env {
        pin: options.pin.clone(),
        ..Env::discarding(&target_dir, "bench-echo")?
    };
    if options.verify {
        // The client reads and checks every echoed byte instead.
        env.loadgen_args.clear();
    }

    let mut notes = vec![if options.verify {
        "client: evloop-loadgen --verify: every echoed byte read and checked".to_owned()
    } else {
        "client: evloop-loadgen --discard: echoed bytes dropped in the kernel \
         (recv MSG_TRUNC), counted, not checked (--verify checks them)"
            .to_owned()
    }];
    notes.push(match &options.pin {
        Some(pin) => format!(
            "placement: servers on CPU {}, client on CPU {} (taskset)",
            pin.server, pin.client
        ),
        None => "placement: unpinned (the scheduler decides)".to_owned(),
    });
    if options.pin.is_some() && !run::available("taskset") {
        return Err("xtask bench: --pin needs taskset (apt-get install util-linux)".to_owned());
    }
    let mut entries = Vec::new();
    let mut broken: Vec<&'static str> = Vec::new();
    let base = Load {
        transport: Transport::Tcp,
        size: 1024,
        conns: options.conns,
        warmup: options.warmup,
        duration: options.duration,
    };
    for &transport in &options.transports {
        for &size in &options.sizes {
            println!(
                "==> {} {} B x {} conns: {} round(s) of {}",
                transport.name(),
                size,
                options.conns,
                options.rounds,
                names(&servers)
            );
            for round in 0..options.rounds {
                let load = Load {
                    transport,
                    size,
                    ..base
                };
                measure_round(
                    &env,
                    &servers,
                    &load,
                    round,
                    &mut broken,
                    &mut entries,
                    &mut notes,
                );
            }
        }
    }

    // 10 vs 1,000 connections, interleaved: evloop@10 evloop@1000 tokio@10 ...
    let mut many_entries = Vec::new();
    let pair = among(&servers, PAIR);
    let many = options.many_conns;
    if !pair.is_empty() && options.transports.contains(&Transport::Tcp) && many != options.conns {
        println!(
            "==> tcp 1024 B, {} vs {many} conns: {} round(s) of {}",
            options.conns,
            options.rounds,
            names(&pair)
        );
        for round in 0..options.rounds {
            for server in &pair {
                for conns in [options.conns, many] {
                    let load = Load { conns, ..base };
                    let one = std::slice::from_ref(server);
                    measure_round(
                        &env,
                        one,
                        &load,
                        round,
                        &mut broken,
                        &mut many_entries,
                        &mut notes,
                    );
                }
            }
        }
    }

    let mut syscalls = Vec::new();
    if options.strace && run::available("strace") {
        let strace_load = Load {
            duration: if options.quick { 1.0 } else { 2.0 },
            ..base
        };
        for name in ["evloop", "tokio", "raw-epoll"] {
            let Some(server) = servers
                .iter()
                .find(|s| s.name == name && !broken.contains(&s.name))
            else {
                continue;
            };
            println!(
                "==> strace -c -f -p <{name}>: tcp 1024 B x {} conns",
                options.conns
            );
            match run::count_syscalls(&env, server, &strace_load, &mut notes) {
                Ok(count) => syscalls.push(Syscalls {
                    server: server.name,
                    requests: count.requests,
                    total: count.summary.total,
                    top: count.summary.by_call,
                }),
                Err(e) => notes.push(format!("{name}: syscall count failed: {e}")),
            }
        }
    } else if options.strace {
        notes.push("strace not found: no syscall count (apt-get install strace)".to_owned());
    }

    // Tables.
    let names_present = present(SERVERS, &servers);
    let main_entries = entries;
    let mut tables: Vec<Table> = options
        .transports
        .iter()
        .map(|&t| {
            report::transport_table(
                &main_entries,
                t,
                &options.sizes,
                options.conns,
                &names_present,
                options.rounds,
            )
        })
        .collect();
    if !many_entries.is_empty() {
        tables.push(report::conns_table(
            &many_entries,
            1024,
            options.conns,
            many,
            &present(PAIR, &servers),
        ));
    }
    if !syscalls.is_empty() {
        tables.push(report::syscall_table(&syscalls, 1024, options.conns));
    }
    tables.push(report::targets_table(
        &main_entries,
        &options.transports,
        &options.sizes,
        options.conns,
        &syscalls,
    ));

    let command = command_line("bench", args);
    let machine = machine_facts(root, python.as_deref());
    print_results(&machine, &tables, &skipped, &notes);
    let elapsed = started.elapsed().map_or(0.0, |d| d.as_secs_f64());
    println!("xtask bench: done in {elapsed:.0} s");

    if options.plot {
        let path = root.join("docs/bench-echo.svg");
        let title = format!("{command} ({})", date_now());
        let svg = chart::svg(
            &main_entries,
            &options.transports,
            &options.sizes,
            options.conns,
            &names_present,
            &title,
        );
        fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("xtask bench: wrote {}", path.display());
    }
    if options.record {
        record(
            root,
            &command,
            &machine,
            &tables,
            &skipped,
            &notes,
            options.plot,
        )?;
    }
    if main_entries.is_empty() {
        return Err("xtask bench: every run failed (see the notes above)".to_owned());
    }
    Ok(())
}

/// Runs each server once under `load` (one round of the round-robin).
pub(crate) fn measure_round(
    env: &Env,
    servers: &[Server],
    load: &Load,
    round: usize,
    broken: &mut Vec<&'static str>,
    entries: &mut Vec<Entry>,
    notes: &mut Vec<String>,
) {
    for server in servers {
        if broken.contains(&server.name) {
            continue;
        }
        match run::measure(env, server, load, notes) {
            Ok(sample) => {
                println!(
                    "    {:<15} round {}: {:>9.0} req/s  {:>6.2} us CPU/req  p99 {:>7.1} us  client CPU {:>3.0}%",
                    server.name,
                    round + 1,
                    sample.load.rps,
                    sample.cpu_us_per_request(),
                    sample.load.p99_us,
                    sample.load.client_cpu_s / sample.load.seconds * 100.0
                );
                entries.push(Entry {
                    transport: load.transport,
                    size: load.size,
                    conns: load.conns,
                    server: server.name,
                    round,
                    sample,
                });
            }
            Err(e) => {
                println!(
                    "    {:<15} round {}: FAILED: {}",
                    server.name,
                    round + 1,
                    e.message
                );
                notes.push(format!(
                    "{} {} B x {} conns round {}: {}",
                    load.transport.name(),
                    load.size,
                    load.conns,
                    round + 1,
                    e.message
                ));
                if e.fatal {
                    notes.push(format!(
                        "{}: could not start; its other runs are skipped",
                        server.name
                    ));
                    broken.push(server.name);
                }
            }
        }
    }
}

/// The servers' names, as the `==>` lines list them.
fn names(servers: &[Server]) -> String {
    servers.iter().map(|s| s.name).collect::<Vec<_>>().join(" ")
}

/// Builds `packages` in release in one cargo run (`cargo build --release
/// -p A -p B ...`), printing it first.
pub(crate) fn build_release(root: &Path, packages: &[&str]) -> Result<(), String> {
    let mut args = vec!["build", "--release"];
    for package in packages {
        args.extend(["-p", package]);
    }
    step(root, &args)
}

/// Builds evloop's example `name` (crates/evloop/examples) in release.
pub(crate) fn build_example(root: &Path, name: &str) -> Result<(), String> {
    step(
        root,
        &["build", "--release", "-p", "evloop", "--example", name],
    )
}

/// Prints a run's results: the machine facts, the tables, then the
/// `skipped:` and `note:` lines.
pub(crate) fn print_results(machine: &str, tables: &[Table], skipped: &[String], notes: &[String]) {
    println!("\n{machine}");
    for table in tables {
        println!("{}", table.text());
    }
    for s in skipped {
        println!("skipped: {s}");
    }
    for note in notes {
        println!("note: {note}");
    }
}

/// Runs `cargo ARGS` in `root`, printing it first.
pub(crate) fn step(root: &Path, args: &[&str]) -> Result<(), String> {
    println!("==> cargo {}", args.join(" "));
    let status = Command::new(cargo())
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("xtask: could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "xtask: step failed: cargo {} ({status})",
            args.join(" ")
        ))
    }
}

/// The venv's python (with uvloop) when asyncio or uvloop is wanted and
/// Python 3 exists; else `None`, with the reason in `skipped`.
fn python_venv(root: &Path, wanted: &[&str], skipped: &mut Vec<String>) -> Option<PathBuf> {
    if !wanted.iter().any(|s| *s == "asyncio" || *s == "uvloop") {
        return None;
    }
    if !run::available("python3") {
        skipped.push("asyncio, uvloop: python3 not found".to_owned());
        return None;
    }
    println!("==> bash bench/python/setup-venv.sh");
    let output = Command::new("bash")
        .arg(root.join("bench/python/setup-venv.sh"))
        .current_dir(root)
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines().last().map(|l| PathBuf::from(l.trim()))
        }
        Ok(out) => {
            skipped.push(format!(
                "asyncio, uvloop: no venv with uvloop ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            None
        }
        Err(e) => {
            skipped.push(format!("asyncio, uvloop: cannot run bash: {e}"));
            None
        }
    }
}

/// Now, as the dated headings of docs/performance.md write it
/// (`YYYY-MM-DD HH:MM UTC`).
pub(crate) fn date_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{} UTC", report::utc_date_time(secs))
}

/// Machine and versions, as Markdown bullet lines.
pub(crate) fn machine_facts(root: &Path, python: Option<&Path>) -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| parse::cpu_model(&t))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned());
    let rustc =
        run::first_line(Path::new("rustc"), &["--version"]).unwrap_or_else(|| "rustc ?".to_owned());
    let tokio = fs::read_to_string(root.join("Cargo.lock"))
        .ok()
        .and_then(|lock| parse::lock_version(&lock, "tokio"))
        .unwrap_or_else(|| "?".to_owned());
    let mut versions = format!("{rustc}, tokio {tokio}");
    if let Some(python) = python {
        if let Some(v) = run::first_line(python, &["--version"]) {
            let _ = std::fmt::Write::write_fmt(&mut versions, format_args!(", {v}"));
        }
        if let Some(v) =
            run::first_line(python, &["-c", "import uvloop; print(uvloop.__version__)"])
        {
            let _ = std::fmt::Write::write_fmt(&mut versions, format_args!(", uvloop {v}"));
        }
    }
    format!(
        "- date: {}\n- machine: {cpu}, {cores} cores, Linux {kernel}\n- versions: {versions}\n- build: \
         the workspace [profile.release] for every Rust server; no pinning",
        date_now()
    )
}

const INTRO: &str = "`cargo xtask bench` (issue 4): each server in turn under the same load \
generator (`bench/loadgen`: one thread, edge-triggered epoll, C connections each sending an \
S-byte message and waiting for the whole echo), servers interleaved round-robin so drift \
spreads over all of them. Compare ratios within one run only: these machines are noisy \
(docs/performance.md). Newest run last.";

/// Appends this run to docs/performance.md's "## Echo benchmarks" section.
fn record(
    root: &Path,
    command: &str,
    machine: &str,
    tables: &[Table],
    skipped: &[String],
    notes: &[String],
    plotted: bool,
) -> Result<(), String> {
    let machine = if plotted {
        format!(
            "{}\n- chart: [bench-echo.svg](bench-echo.svg)",
            machine.trim_end()
        )
    } else {
        machine.to_owned()
    };
    let section = report::run_section(command, &machine, tables, skipped, notes);
    report::append_section(root, "xtask bench", "## Echo benchmarks", INTRO, &section)
}

/// `cargo xtask bench micro ARGS`: bench/run-micro.sh ARGS.
fn micro(root: &Path, args: &[String]) -> Result<(), String> {
    let script = root.join("bench/run-micro.sh");
    if !script.is_file() {
        return Err(format!("xtask: {} does not exist", script.display()));
    }
    println!("==> bash bench/run-micro.sh {}", args.join(" "));
    let status = Command::new("bash")
        .arg(&script)
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("xtask: could not run bash: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("xtask: step failed: bench/run-micro.sh ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = parse_options(&[]).unwrap();
        assert_eq!((o.rounds, o.conns, o.many_conns), (3, 10, 1000));
        assert_eq!(o.sizes, [1024, 10240, 102_400, 1_048_576]);
        assert!(!o.verify && parse_options(&args("--verify")).unwrap().verify);
        let p = parse_options(&args("--pin 1:0")).unwrap().pin.unwrap();
        assert_eq!((p.server.as_str(), p.client.as_str()), ("1", "0"));
        assert!(parse_options(&args("--pin 1")).is_err());
        assert!(parse_options(&args("--pin a:0")).is_err());
        let q = parse_options(&args(
            "--quick --sizes 1024 --transport unix --servers tokio,raw-epoll",
        ))
        .unwrap();
        assert_eq!(q.rounds, 1);
        assert!(q.duration < 1.0);
        assert_eq!(q.sizes, [1024]);
        assert_eq!(q.transports, [Transport::Unix]);
        assert_eq!(q.servers, ["tokio", "raw-epoll"]);
        let r = parse_options(&args("--quick --rounds 2 --duration 2")).unwrap();
        assert_eq!(r.rounds, 2);
        assert!((r.duration - 2.0).abs() < 1e-12);
        assert!(parse_options(&args("--sizes 1,x")).is_err());
        assert!(parse_options(&args("--servers nginx")).is_err());
        assert!(parse_options(&args("--transport udp")).is_err());
        assert!(parse_options(&args("--rounds")).is_err());
        assert!(parse_options(&args("--duration 0")).is_err());
        assert!(parse_options(&args("--bogus")).is_err());
    }
}
