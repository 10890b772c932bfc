//! `cargo xtask bench python`: issue 13's speed section: Python echo
//! servers (an `asyncio.Protocol` and asyncio streams) and the micro
//! benchmarks of issue 2 written in Python, on asyncio, uvloop, rloop,
//! rsloop and evloop, in one run under one client.
//!
//! The venv is `bench/python/setup-venv.sh --all` (target/bench-venv:
//! uvloop, rloop and rsloop from PyPI, evloop from `pip install ./python`,
//! rebuilt so that the working tree is measured); a loop that does not
//! import there is an announced skip. The echo servers are
//! `bench/python/echo_server.py --loop NAME [--streams]`, measured by the
//! echo benchmark's runner (`run::measure`: the load generator in its
//! `--discard` mode, server CPU from `/proc`), interleaved round-robin with
//! the starting server rotating each round. The micro benchmarks are
//! `bench/python/micro.py --loop NAME --runs 1` (after its warm-up run),
//! one process per loop and round, interleaved the same way. Medians over
//! the rounds with the per-round spread go to the terminal and, as a dated
//! section with the machine and versions, to docs/performance.md
//! ("## Python event loops").

use std::path::{Path, PathBuf};
use std::process::Command;

use super::report::{
    self, fixed, median, min_max, round_ratios, size_name, thousands, Entry, Table,
};
use super::run::{python_echo_args, Env, Load, Server, Transport};
use super::{build_release, command_line, machine_facts, measure_round, names, print_results, Cli};

const USAGE: &str = "\
usage: cargo xtask bench python [--quick] [--rounds N] [--duration S] [--warmup W]
                                [--sizes 1024,10240,102400] [--conns 10]
                                [--loops asyncio,uvloop,rloop,rsloop,evloop,evloop-native,evloop-relaxed]
                                [--only echo,micro] [--micro-n N] [--no-record]

  Python echo servers (asyncio.Protocol and asyncio streams, TCP, C
  connections, each message S bytes) and the micro benchmarks (call_soon
  chain and burst, call_later + cancel, call_soon_threadsafe; ns per
  operation) on each loop, interleaved over N rounds (default 3; --quick: 1
  round, short runs). Defaults: S = 2 s counted after W = 0.5 s of warm-up
  per echo run, micro n = 200000. The venv is target/bench-venv
  (bench/python/setup-venv.sh --all; evloop is rebuilt from ./python with
  $CARGO_TARGET_DIR). evloop-relaxed (Loop(relaxed_io_poll=True)) runs the
  micro benchmarks only; evloop-native (evloop.use_native_streams()) the
  streams echo only. Targets (issue 13): evloop >= 1.1x uvloop and >= 1.0x
  the faster of rloop/rsloop on every echo row, >= 1.5x uvloop on the micro
  benchmarks. Results are appended to docs/performance.md
  (## Python event loops) unless --no-record.";

/// The loops, in the order of the first round. `evloop-relaxed` (evloop
/// with `relaxed_io_poll=True`, not asyncio's polling) runs the micro
/// benchmarks only: with I/O callbacks the ready queue empties every
/// iteration, so it polls as often as the default there. `evloop-native`
/// (evloop with `evloop.use_native_streams()`, as rsloop swaps in its own
/// streams) runs the streams echo only: nothing else differs.
const LOOPS: &[&str] = &[
    "asyncio",
    "uvloop",
    "rloop",
    "rsloop",
    "evloop",
    "evloop-native",
    "evloop-relaxed",
];
const MICRO_ONLY: &[&str] = &["evloop-relaxed"];
const STREAMS_ONLY: &[&str] = &["evloop-native"];

/// Whether loop `name` has an echo server with `api`.
fn echoes(name: &str, api: Api) -> bool {
    !MICRO_ONLY.contains(&name) && (api == Api::Streams || !STREAMS_ONLY.contains(&name))
}
/// What the echo servers use of asyncio.
const APIS: &[Api] = &[Api::Protocol, Api::Streams];
/// Micro benchmark rows with a target, and the micro benchmark workloads.
const MICRO_TARGETS: &[&str] = &["chain", "burst", "timers.total", "cross-thread"];
const MICRO_ROWS: &[&str] = &[
    "chain",
    "burst",
    "timers.schedule",
    "timers.cancel",
    "timers.drain",
    "timers.total",
    "cross-thread",
];

/// The echo server's asyncio API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Protocol,
    Streams,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Protocol => "Protocol",
            Api::Streams => "streams",
        }
    }
}

/// The server name of `event_loop` with `api` (`uvloop`, `uvloop-streams`).
fn server_name(event_loop: &str, api: Api) -> &'static str {
    const NAMES: &[(&str, &str)] = &[
        ("asyncio", "asyncio-streams"),
        ("uvloop", "uvloop-streams"),
        ("rloop", "rloop-streams"),
        ("rsloop", "rsloop-streams"),
        ("evloop", "evloop-streams"),
        ("evloop-native", "evloop-native-streams"),
    ];
    let (protocol, streams) = NAMES
        .iter()
        .find(|(name, _)| *name == event_loop)
        .copied()
        .unwrap_or(("?", "?"));
    match api {
        Api::Protocol => protocol,
        Api::Streams => streams,
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Options {
    rounds: usize,
    duration: f64,
    warmup: f64,
    sizes: Vec<usize>,
    conns: usize,
    loops: Vec<&'static str>,
    echo: bool,
    micro: bool,
    micro_n: usize,
    record: bool,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        rounds: 3,
        duration: 2.0,
        warmup: 0.5,
        sizes: vec![1024, 10 * 1024, 100 * 1024],
        conns: 10,
        loops: LOOPS.to_vec(),
        echo: true,
        micro: true,
        micro_n: 200_000,
        record: true,
    };
    let (mut rounds, mut duration, mut warmup, mut micro_n) = (None, None, None, None);
    let mut quick = false;
    let mut cli = Cli::new("bench python", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--quick" => quick = true,
            "--no-record" => o.record = false,
            "--rounds" => rounds = Some(cli.positive("--rounds")?),
            "--duration" => duration = Some(cli.seconds("--duration")?),
            "--warmup" => warmup = Some(cli.seconds("--warmup")?),
            "--conns" => o.conns = cli.positive("--conns")?,
            "--micro-n" => micro_n = Some(cli.positive("--micro-n")?),
            "--sizes" => o.sizes = cli.sizes("--sizes")?,
            "--loops" => o.loops = cli.names("--loops", LOOPS)?,
            "--only" => {
                let parts = cli.names("--only", &["echo", "micro"])?;
                o.echo = parts.contains(&"echo");
                o.micro = parts.contains(&"micro");
            }
            _ => return Err(cli.unknown(&flag)),
        }
    }
    o.rounds = rounds.unwrap_or(if quick { 1 } else { o.rounds });
    o.duration = duration.unwrap_or(if quick { 0.8 } else { o.duration });
    o.warmup = warmup.unwrap_or(if quick { 0.2 } else { o.warmup });
    o.micro_n = micro_n.unwrap_or(if quick { 50_000 } else { o.micro_n });
    if o.duration <= 0.0 {
        return Err("xtask bench python: --duration must be positive".to_owned());
    }
    if o.micro_n < 2 {
        return Err("xtask bench python: --micro-n must be at least 2".to_owned());
    }
    Ok(o)
}

/// Entry point: `cargo xtask bench python ARGS`.
///
/// # Errors
///
/// Bad arguments, no Python venv, a failed build of the load generator, or
/// no measurement at all. A loop that is not installed is reported and
/// skipped.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let o = parse_options(args)?;
    let mut skipped = Vec::new();
    let python = venv(root, &mut skipped)?;
    let bench = root.join("bench/python");
    let loops: Vec<&'static str> = o
        .loops
        .iter()
        .copied()
        .filter(|name| match probe(&python, &bench, name) {
            Ok(()) => true,
            Err(why) => {
                skipped.push(format!("{name}: {why}"));
                false
            }
        })
        .collect();
    for s in &skipped {
        println!("xtask bench python: skipping {s}");
    }
    if loops.is_empty() {
        return Err("xtask bench python: no loop to measure".to_owned());
    }
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    if o.echo {
        tables.extend(echo(root, &python, &loops, &o, &mut notes)?);
    }
    if o.micro {
        let micro_loops: Vec<&'static str> = loops
            .iter()
            .copied()
            .filter(|l| !STREAMS_ONLY.contains(l))
            .collect();
        tables.extend(micro(root, &python, &micro_loops, &o, &mut notes));
    }
    let command = command_line("bench python", args);
    let machine = format!(
        "{}\n- loops: {}\n- runs: {} round(s), loops interleaved, the first one rotating",
        machine_facts(root, Some(&python)),
        loop_versions(&python, &bench, &loops),
        o.rounds
    );
    print_results(&machine, &tables, &skipped, &notes);
    if o.record && !tables.is_empty() {
        let section = report::run_section(&command, &machine, &tables, &skipped, &notes);
        report::append_section(root, "xtask bench python", HEADING, INTRO, &section)?;
    }
    if tables.is_empty() {
        return Err("xtask bench python: every run failed (see the notes above)".to_owned());
    }
    Ok(())
}

/// The bench venv's python, with every loop it can get (setup-venv.sh
/// --all); the loops it had to skip, with the reason, go to `skipped`.
fn venv(root: &Path, skipped: &mut Vec<String>) -> Result<PathBuf, String> {
    println!("==> bash bench/python/setup-venv.sh --all");
    let out = Command::new("bash")
        .arg(root.join("bench/python/setup-venv.sh"))
        .arg("--all")
        .current_dir(root)
        .output()
        .map_err(|e| format!("xtask bench python: cannot run bash: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        if let Some(skip) = line.strip_prefix("setup-venv.sh: skip ") {
            skipped.push(format!("setup: {skip}"));
        }
    }
    if !out.status.success() {
        return Err(format!(
            "xtask bench python: no bench venv: {}",
            stderr.trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| "xtask bench python: setup-venv.sh printed no python path".to_owned())
}

/// Whether loop `name` can make a loop in the venv (`bench`:
/// bench/python, where loops.py is); else why not.
fn probe(python: &Path, bench: &Path, name: &str) -> Result<(), String> {
    let script = format!("import loops; loops.loop_factory({name:?})[0]().close()");
    let out = Command::new(python)
        .args(["-c", &script])
        .current_dir(bench)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "not usable in the bench venv ({})",
        err.lines().last().unwrap_or("no output").trim()
    ))
}

/// `asyncio (...), uvloop 0.x, ...` as the venv reports them.
fn loop_versions(python: &Path, bench: &Path, loops: &[&str]) -> String {
    let list = loops
        .iter()
        .map(|l| format!("{l:?}"))
        .collect::<Vec<_>>()
        .join(",");
    let script =
        format!("import loops; print(', '.join(loops.loop_factory(n)[1] for n in [{list}]))");
    let out = Command::new(python)
        .args(["-c", &script])
        .current_dir(bench)
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => loops.join(", "),
    }
}

/// The echo benchmark: each loop's Protocol and streams servers, every
/// size, interleaved; returns the throughput and target tables.
fn echo(
    root: &Path,
    python: &Path,
    loops: &[&'static str],
    o: &Options,
    notes: &mut Vec<String>,
) -> Result<Vec<Table>, String> {
    build_release(root, &["evloop-loadgen"])?;
    let env = Env::discarding(&crate::examples::target_dir(root), "bench-python")?;
    notes.push(
        "client: evloop-loadgen --discard (echoed bytes dropped in the kernel, counted, not \
         checked); placement unpinned"
            .to_owned(),
    );
    let mut servers = Vec::new();
    for &api in APIS {
        for &name in loops.iter().filter(|l| echoes(l, api)) {
            let mut args = python_echo_args(root, name);
            if api == Api::Streams {
                args.push("--streams".to_owned());
            }
            servers.push(Server {
                name: server_name(name, api),
                program: python.to_path_buf(),
                args,
            });
        }
    }
    let mut entries = Vec::new();
    let mut broken = Vec::new();
    for &size in &o.sizes {
        println!(
            "==> tcp {size} B x {} conns: {} round(s) of {}",
            o.conns,
            o.rounds,
            names(&servers)
        );
        for round in 0..o.rounds {
            let load = Load {
                transport: Transport::Tcp,
                size,
                conns: o.conns,
                warmup: o.warmup,
                duration: o.duration,
            };
            let mut order = servers.clone();
            order.rotate_left(round % servers.len().max(1));
            measure_round(&env, &order, &load, round, &mut broken, &mut entries, notes);
        }
    }
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![
        echo_table(&entries, loops, o),
        echo_targets(&entries, &o.sizes, o.conns),
    ])
}

/// Every echo server at every size.
fn echo_table(entries: &[Entry], loops: &[&'static str], o: &Options) -> Table {
    let mut table = Table::new(
        format!(
            "Python echo, tcp, {} connections: median req/s of {} round(s), servers interleaved",
            o.conns, o.rounds
        ),
        &[
            "loop",
            "API",
            "size",
            "req/s",
            "min-max",
            "x uvloop",
            "per-round x uvloop",
            "x best of rloop/rsloop",
            "CPU us/req",
            "p99 us",
        ],
    );
    for &api in APIS {
        for &size in &o.sizes {
            let uv = runs(entries, size, o.conns, server_name("uvloop", api));
            let rust = best_rust(entries, size, o.conns, api);
            for &name in loops.iter().filter(|l| echoes(l, api)) {
                let mine = runs(entries, size, o.conns, server_name(name, api));
                let Some(s) = report::summarize(&mine) else {
                    continue;
                };
                let x_uv = round_ratios(&mine, &uv);
                let x_rust = per_round_values(&mine, &rust);
                table.rows.push(vec![
                    name.to_owned(),
                    api.name().to_owned(),
                    size_name(size),
                    thousands(s.rps),
                    format!("{}-{}", thousands(s.rps_min), thousands(s.rps_max)),
                    fixed(median(&x_uv), 2),
                    spread(&x_uv),
                    fixed(median(&x_rust), 2),
                    fixed(s.cpu_us, 2),
                    fixed(s.p99_us, 0),
                ]);
            }
        }
    }
    table.notes.push(
        "x uvloop, x best of rloop/rsloop: the median of the per-round ratios (each round's \
         faster of rloop and rsloop); CPU us/req: the server's CPU time in the counted window \
         per request."
            .to_owned(),
    );
    table
}

/// The echo targets of issue 13 for evloop.
fn echo_targets(entries: &[Entry], sizes: &[usize], conns: usize) -> Table {
    let mut table =
        targets_header("issue 13's echo targets (evloop, per-round ratios within this run)");
    let evloops = ["evloop", "evloop-native"];
    for (api, evloop) in APIS.iter().flat_map(|&api| evloops.map(|e| (api, e))) {
        if !echoes(evloop, api) {
            continue;
        }
        for &size in sizes {
            let mine = runs(entries, size, conns, server_name(evloop, api));
            if mine.is_empty() {
                continue;
            }
            let row = format!("{} {}", api.name(), size_name(size));
            let uv = runs(entries, size, conns, server_name("uvloop", api));
            push_target(
                &mut table,
                format!("{row}: {evloop} >= 1.1x uvloop"),
                &round_ratios(&mine, &uv),
                1.1,
            );
            let rust = best_rust(entries, size, conns, api);
            push_target(
                &mut table,
                format!("{row}: {evloop} >= 1.0x max(rloop, rsloop)"),
                &per_round_values(&mine, &rust),
                1.0,
            );
        }
    }
    table
}

/// An empty table of [`push_target`] rows.
fn targets_header(title: &str) -> Table {
    Table::new(title, &["target", "median", "per-round range", "met"])
}

/// A target row: met when the median ratio (as shown, two decimals)
/// reaches `goal`; `n/a` without a baseline.
fn push_target(table: &mut Table, target: String, ratios: &[f64], goal: f64) {
    let m = median(ratios);
    let met = report::verdict(m, goal, false).to_owned();
    table
        .rows
        .push(vec![target, fixed(m, 2), spread(ratios), met]);
}

fn runs<'a>(entries: &'a [Entry], size: usize, conns: usize, server: &str) -> Vec<&'a Entry> {
    report::samples(entries, Transport::Tcp, size, conns, server)
}

/// `a / best[round]` for each round with a value in `best`.
fn per_round_values(a: &[&Entry], best: &[(usize, f64)]) -> Vec<f64> {
    a.iter()
        .filter_map(|e| {
            let (_, b) = best.iter().find(|(round, _)| *round == e.round)?;
            Some(e.sample.load.rps / b)
        })
        .collect()
}

/// Each round's faster of rloop and rsloop (req/s).
fn best_rust(entries: &[Entry], size: usize, conns: usize, api: Api) -> Vec<(usize, f64)> {
    let mut best: Vec<(usize, f64)> = Vec::new();
    for name in ["rloop", "rsloop"] {
        for e in runs(entries, size, conns, server_name(name, api)) {
            match best.iter_mut().find(|(round, _)| *round == e.round) {
                Some((_, rps)) => *rps = rps.max(e.sample.load.rps),
                None => best.push((e.round, e.sample.load.rps)),
            }
        }
    }
    best
}

/// `lo-hi` of per-round values, `-` with fewer than two.
fn spread(values: &[f64]) -> String {
    if values.len() < 2 {
        return "-".to_owned();
    }
    let (lo, hi) = min_max(values);
    format!("{lo:.2}-{hi:.2}")
}

/// One micro benchmark value: workload row, loop, round, ns per op.
#[derive(Debug, Clone, PartialEq)]
struct MicroSample {
    row: String,
    event_loop: &'static str,
    round: usize,
    ns: f64,
}

/// The micro benchmarks: micro.py per loop and round, interleaved.
fn micro(
    root: &Path,
    python: &Path,
    loops: &[&'static str],
    o: &Options,
    notes: &mut Vec<String>,
) -> Vec<Table> {
    let script = root.join("bench/python/micro.py");
    let mut samples = Vec::new();
    println!(
        "==> micro benchmarks, n = {}: {} round(s) of {}",
        o.micro_n,
        o.rounds,
        loops.join(" ")
    );
    for round in 0..o.rounds {
        for k in 0..loops.len() {
            let name = loops[(k + round) % loops.len()];
            let out = Command::new(python)
                .arg(&script)
                .args(["--loop", name, "--runs", "1", "--n", &o.micro_n.to_string()])
                .output();
            let parsed = match out {
                Ok(out) if out.status.success() => {
                    parse_micro(&String::from_utf8_lossy(&out.stdout), name, round)
                }
                Ok(out) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    notes.push(format!(
                        "micro {name} round {}: failed ({}): {}",
                        round + 1,
                        out.status,
                        err.lines().last().unwrap_or("").trim()
                    ));
                    Vec::new()
                }
                Err(e) => {
                    notes.push(format!("micro {name}: cannot run python: {e}"));
                    Vec::new()
                }
            };
            let line: Vec<String> = parsed
                .iter()
                .filter(|s| MICRO_TARGETS.contains(&s.row.as_str()))
                .map(|s| format!("{} {:.0}", s.row, s.ns))
                .collect();
            println!(
                "    {name:<8} round {}: {} (ns/op)",
                round + 1,
                line.join("  ")
            );
            samples.extend(parsed);
        }
    }
    if samples.is_empty() {
        return Vec::new();
    }
    vec![micro_table(&samples, loops, o), micro_targets(&samples)]
}

/// Reads micro.py's rows (`workload impl median min max`).
fn parse_micro(text: &str, event_loop: &'static str, round: usize) -> Vec<MicroSample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let row = words.next()?;
            let name = words.next()?;
            let ns: f64 = words.next()?.parse().ok()?;
            (name == event_loop && MICRO_ROWS.contains(&row) && ns.is_finite()).then(|| {
                MicroSample {
                    row: row.to_owned(),
                    event_loop,
                    round,
                    ns,
                }
            })
        })
        .collect()
}

fn micro_values<'a>(
    samples: &'a [MicroSample],
    row: &'a str,
    event_loop: &'a str,
) -> impl Iterator<Item = &'a MicroSample> {
    samples
        .iter()
        .filter(move |s| s.row == row && s.event_loop == event_loop)
}

/// `base / mine` ns per op (a speed-up) for each round both ran.
fn micro_speedups(samples: &[MicroSample], row: &str, mine: &str, base: &str) -> Vec<f64> {
    micro_values(samples, row, mine)
        .filter_map(|m| {
            let b = micro_values(samples, row, base).find(|b| b.round == m.round)?;
            Some(b.ns / m.ns)
        })
        .collect()
}

fn micro_table(samples: &[MicroSample], loops: &[&'static str], o: &Options) -> Table {
    let mut header = vec!["workload".to_owned()];
    header.extend(loops.iter().map(|l| format!("{l} ns/op")));
    header.push("evloop x uvloop".to_owned());
    header.push("per-round".to_owned());
    header.push("evloop-relaxed x uvloop".to_owned());
    let mut table = Table {
        title: format!(
            "Python micro benchmarks, n = {}: median ns per operation of {} round(s) (min-max)",
            o.micro_n, o.rounds
        ),
        header,
        ..Table::default()
    };
    for row in MICRO_ROWS {
        let mut cells = vec![(*row).to_owned()];
        for l in loops {
            let v: Vec<f64> = micro_values(samples, row, l).map(|s| s.ns).collect();
            let (lo, hi) = min_max(&v);
            cells.push(if v.len() > 1 {
                format!("{} ({lo:.0}-{hi:.0})", fixed(median(&v), 0))
            } else {
                fixed(median(&v), 0)
            });
        }
        let x = micro_speedups(samples, row, "evloop", "uvloop");
        cells.push(fixed(median(&x), 2));
        cells.push(spread(&x));
        let relaxed = micro_speedups(samples, row, "evloop-relaxed", "uvloop");
        cells.push(fixed(median(&relaxed), 2));
        table.rows.push(cells);
    }
    table.notes.push(
        "chain: call_soon callbacks each scheduling the next; burst: n call_soon then \
         run_forever; timers: n call_later (random delays < 1 s), every other one cancelled, \
         CPU time per phase (total: per timer); cross-thread: 4 threads' call_soon_threadsafe, \
         wall time. x uvloop = uvloop's ns / evloop's (higher is faster)."
            .to_owned(),
    );
    table
}

fn micro_targets(samples: &[MicroSample]) -> Table {
    let mut table = targets_header(
        "issue 13's micro targets (evloop, per-round speed-ups; relaxed: beyond asyncio's polling)",
    );
    for name in ["evloop", "evloop-relaxed"] {
        for row in MICRO_TARGETS {
            let x = micro_speedups(samples, row, name, "uvloop");
            if name == "evloop" || !x.is_empty() {
                push_target(&mut table, format!("{row}: {name} >= 1.5x uvloop"), &x, 1.5);
            }
        }
    }
    table
}

const HEADING: &str = "## Python event loops";

const INTRO: &str = "`cargo xtask bench python` (issue 13): Python echo servers \
(`bench/python/echo_server.py`: an `asyncio.Protocol`, and asyncio streams) and the micro \
benchmarks of issue 2 in Python (`bench/python/micro.py`) on asyncio, uvloop, rloop, rsloop \
and evloop, one client (`bench/loadgen --discard`), loops interleaved round-robin. Compare \
ratios within one run only: these machines are shared and noisy. Newest run last.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args;

    #[test]
    fn options() {
        let o = parse_options(&[]).unwrap();
        assert_eq!((o.rounds, o.conns, o.micro_n), (3, 10, 200_000));
        assert_eq!(o.sizes, [1024, 10240, 102_400]);
        assert_eq!(o.loops, LOOPS);
        assert!(o.echo && o.micro && o.record);
        let q = parse_options(&args("--quick --loops uvloop,evloop --only micro")).unwrap();
        assert_eq!((q.rounds, q.micro_n), (1, 50_000));
        assert_eq!(q.loops, ["uvloop", "evloop"]);
        assert!(q.micro && !q.echo);
        let r = parse_options(&args("--rounds 5 --duration 1.5 --sizes 1024 --no-record")).unwrap();
        assert_eq!(
            (r.rounds, r.sizes.as_slice(), r.record),
            (5, &[1024][..], false)
        );
        assert!((r.duration - 1.5).abs() < 1e-12);
        assert!(parse_options(&args("--loops trio")).is_err());
        assert!(parse_options(&args("--only bench")).is_err());
        assert!(parse_options(&args("--duration 0")).is_err());
        assert!(parse_options(&args("--micro-n 1")).is_err());
        assert!(parse_options(&args("--bogus")).is_err());
    }

    #[test]
    fn server_names() {
        assert_eq!(server_name("uvloop", Api::Protocol), "uvloop");
        assert_eq!(server_name("evloop", Api::Streams), "evloop-streams");
    }

    #[test]
    fn micro_output_and_speedups() {
        let text = "# cpu: x\nworkload impl median min max\n\
                    chain            evloop   400.0  390.0  410.0\n\
                    timers.total     evloop  1000.5  900.0 1100.0\n\
                    chain            uvloop   800.0  790.0  810.0\n";
        let s = parse_micro(text, "evloop", 2);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].row.as_str(), s[0].round, s[0].ns),
            ("chain", 2, 400.0)
        );
        let mut all = s;
        all.extend(parse_micro("chain uvloop 800.0 1 1\n", "uvloop", 2));
        assert_eq!(micro_speedups(&all, "chain", "evloop", "uvloop"), [2.0]);
        let t = micro_targets(&all);
        assert_eq!(t.rows[0][3], "yes");
        assert_eq!(t.rows[1][3], "n/a");
    }

    #[test]
    fn targets_are_judged_on_the_shown_median() {
        let mut t = targets_header("t");
        push_target(&mut t, "a".into(), &[1.096, 1.2, 1.0], 1.1);
        push_target(&mut t, "b".into(), &[0.9, 0.95], 1.0);
        assert_eq!(t.rows[0][1..], ["1.10", "1.00-1.20", "yes"]);
        assert_eq!(t.rows[1][3], "MISSED");
    }
}
