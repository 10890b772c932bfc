//! `cargo xtask bench scaling`: loop per core (issue 12). Does a server
//! built on `evloop::run_per_core` (the `echo_per_core` example: one loop
//! and one `SO_REUSEPORT` listener per thread) go faster on two cores than
//! on one, and how does that compare with tokio's multi-thread runtime
//! (`tokio-echo --threads 2`: one listener, work-stealing workers)?
//!
//! Four servers, interleaved round-robin in one run under one load
//! generator (the echo benchmark's machinery, `run.rs`): evloop with 1 loop
//! and with 2 loops, tokio current_thread and tokio with 2 workers. Every
//! process is pinned with `taskset` (`run::Pin`): by default the client
//! (`evloop-loadgen --discard`, one thread) on CPU 0, the 1-core servers on
//! CPU 1, the 2-core servers on CPUs 0-1. On a 2-core machine the 2-core
//! servers therefore share CPU 0 with the client: the report says so and
//! shows the client's CPU, so the 2-core figures are read for what they
//! are. `--cpus CLIENT:ONE:TWO` moves them (on 3+ cores, `0:1:1-2` gives
//! the client a core of its own).
//!
//! 50 connections by default: the kernel hashes each connection to one
//! `SO_REUSEPORT` listener, so with 50 the two loops get close to half each
//! (with 10, a 7/3 split is common and the busier loop bounds the rate),
//! and 50 outstanding requests keep both loops fed by a one-thread client.
//!
//! Results (req/s, the 2-core/1-core factor of each server, evloop against
//! tokio on the same CPUs, server CPU per request and cores busy from
//! `/proc`, client CPU) are printed and appended to docs/performance.md
//! ("## Loop per core") unless `--no-record`.

use std::path::{Path, PathBuf};
use std::slice;
use std::time::SystemTime;

use super::report::{
    append_section, fixed, median, min_max, ratio, round_ratios, run_section, samples, size_name,
    summarize, thousands, Entry, Table,
};
use super::run::{self, Env, Load, Pin, Server, Transport};
use super::{build_example, build_release, command_line, machine_facts, Cli};

const USAGE: &str = "\
usage: cargo xtask bench scaling [--quick] [--rounds R] [--duration D] [--warmup W]
                                 [--sizes 1024,...] [--conns 50] [--cpus 0:1:0-1]
                                 [--pin-loops] [--work-us N] [--no-record]

  Loop per core: evloop echo_per_core with 1 and 2 loops against tokio-echo
  current_thread and --threads 2, interleaved R times (default 3; --quick:
  1 round of 0.5 s) per message size (default 1024), C connections (default
  50) from one load generator (evloop-loadgen --discard). Everything is
  pinned with taskset: --cpus CLIENT:ONE:TWO puts the client on CLIENT, the
  1-core servers on ONE and the 2-core servers on TWO (default 0:1:0-1: on
  two cores the 2-core servers share CPU 0 with the client). --pin-loops
  also pins each evloop loop to its own CPU of that list. Defaults: W = 1 s,
  D = 3 s. Prints req/s, the 2-core/1-core factor, evloop/tokio, server CPU
  per request and cores busy, client CPU; appends the table to
  docs/performance.md (## Loop per core) unless --no-record.
  --work-us N: both servers spin N us of CPU per read before echoing it (a
  stand-in for request handling), so that the server, not the one-thread
  client, is the bottleneck and the second core has work to show.";

/// Where the client, the 1-core servers and the 2-core servers run
/// (`taskset -c` lists).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cpus {
    client: String,
    one: String,
    two: String,
}

#[derive(Debug, Clone)]
struct Options {
    record: bool,
    rounds: usize,
    warmup: f64,
    duration: f64,
    sizes: Vec<usize>,
    conns: usize,
    cpus: Cpus,
    pin_loops: bool,
    /// `--work-us`: CPU each server spins per read (0: a plain echo).
    work_us: usize,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        record: true,
        rounds: 3,
        warmup: 1.0,
        duration: 3.0,
        sizes: vec![1024],
        conns: 50,
        cpus: Cpus {
            client: "0".to_owned(),
            one: "1".to_owned(),
            two: "0-1".to_owned(),
        },
        pin_loops: false,
        work_us: 0,
    };
    let (mut quick, mut duration, mut warmup, mut rounds) = (false, None, None, None);
    let mut cli = Cli::new("bench scaling", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--quick" => quick = true,
            "--no-record" => o.record = false,
            "--pin-loops" => o.pin_loops = true,
            "--work-us" => {
                o.work_us = cli.parsed("--work-us", |v| v.parse().ok())?;
            }
            "--rounds" => rounds = Some(cli.positive("--rounds")?),
            "--conns" => o.conns = cli.positive("--conns")?,
            "--duration" => duration = Some(cli.seconds("--duration")?),
            "--warmup" => warmup = Some(cli.seconds("--warmup")?),
            "--sizes" => o.sizes = cli.sizes("--sizes")?,
            "--cpus" => o.cpus = cli.parsed("--cpus", parse_cpus)?,
            _ => return Err(cli.unknown(&flag)),
        }
    }
    o.duration = duration.unwrap_or(if quick { 0.5 } else { 3.0 });
    o.warmup = warmup.unwrap_or(if quick { 0.2 } else { 1.0 });
    o.rounds = rounds.unwrap_or(if quick { 1 } else { 3 });
    if o.duration <= 0.0 {
        return Err("xtask bench scaling: --duration must be positive".to_owned());
    }
    Ok(o)
}

/// `CLIENT:ONE:TWO`, each a `taskset -c` list (`0`, `1-2`, `0,2`).
fn parse_cpus(text: &str) -> Option<Cpus> {
    let mut parts = text.split(':');
    let cpus = Cpus {
        client: run::taskset_list(parts.next()?)?,
        one: run::taskset_list(parts.next()?)?,
        two: run::taskset_list(parts.next()?)?,
    };
    parts.next().is_none().then_some(cpus)
}

/// One server configuration: which family (the ratio to tokio pairs
/// families at the same core count), how many cores, the environment that
/// pins it.
struct Config {
    family: &'static str,
    cores: usize,
    server: Server,
    env: Env,
}

impl Config {
    /// The most requests per second the CPUs allow at `server_us` and
    /// `client_us` CPU per request: each side is bound by its own CPUs (the
    /// server by at most `cores` of them: one thread per core), and CPUs
    /// the two share are split between them.
    fn ceiling(&self, server_us: f64, client_us: f64, client_cpus: &str) -> f64 {
        let server_cpus = self.env.pin.as_ref().map_or("", |p| p.server.as_str());
        let (Some(server), Some(client)) = (cpu_list(server_cpus), cpu_list(client_cpus)) else {
            return f64::NAN;
        };
        #[allow(clippy::cast_precision_loss)]
        let count = |n: usize| n as f64;
        let server_cores = count(server.len().min(self.cores));
        let mut all = server.clone();
        all.extend(&client);
        all.sort_unstable();
        all.dedup();
        let shared_bound = if all.len() < server.len() + client.len() {
            count(all.len()) * 1e6 / (server_us + client_us)
        } else {
            f64::INFINITY
        };
        (server_cores * 1e6 / server_us)
            .min(count(client.len()) * 1e6 / client_us)
            .min(shared_bound)
    }
}

/// The four configurations, in the order they run in each round.
fn configs(release: &Path, env: &Env, o: &Options) -> Vec<Config> {
    let evloop = release.join("examples/echo_per_core");
    let tokio = release.join("tokio-echo");
    let pinned = |cpus: &str| Env {
        pin: Some(Pin {
            server: cpus.to_owned(),
            client: o.cpus.client.clone(),
        }),
        ..env.clone()
    };
    let work = vec!["--work-us".to_owned(), o.work_us.to_string()];
    let evloop_args = |loops: &str| {
        let mut args = vec!["--loops".to_owned(), loops.to_owned()];
        if o.pin_loops {
            args.push("--pin".to_owned());
        }
        args.extend(work.iter().cloned());
        args
    };
    let config = |family, cores, name, program: &PathBuf, args, cpus: &str| Config {
        family,
        cores,
        server: Server {
            name,
            program: program.clone(),
            args,
        },
        env: pinned(cpus),
    };
    let threads = [vec!["--threads".to_owned(), "2".to_owned()], work.clone()].concat();
    vec![
        config(
            "evloop",
            1,
            "evloop 1 loop",
            &evloop,
            evloop_args("1"),
            &o.cpus.one,
        ),
        config(
            "evloop",
            2,
            "evloop 2 loops",
            &evloop,
            evloop_args("2"),
            &o.cpus.two,
        ),
        config(
            "tokio",
            1,
            "tokio current_thread",
            &tokio,
            work.clone(),
            &o.cpus.one,
        ),
        config("tokio", 2, "tokio 2 workers", &tokio, threads, &o.cpus.two),
    ]
}

/// Runs `cargo xtask bench scaling ARGS`.
///
/// # Errors
///
/// Bad arguments, no taskset, fewer than two CPUs, a failed build, or no
/// measurement at all.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let options = parse_options(args)?;
    if !run::available("taskset") {
        return Err(
            "xtask bench scaling: taskset not found; it pins the servers and the \
                    client (it is in util-linux: apt-get install util-linux)"
                .to_owned(),
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cores < 2 {
        return Err(format!(
            "xtask bench scaling: needs at least 2 CPUs to compare 1 and 2 cores ({cores} here)"
        ));
    }
    let root = crate::workspace_root();
    let started = SystemTime::now();
    let target_dir = crate::examples::target_dir(&root);
    build_release(&root, &["evloop-loadgen", "tokio-echo-bench"])?;
    build_example(&root, "echo_per_core")?;
    let env = Env::discarding(&target_dir, "bench-scaling")?;
    let configs = configs(&target_dir.join("release"), &env, &options);
    let (entries, notes) = measure_all(&configs, &options);
    let table = scaling_table(&entries, &configs, &options);
    let command = command_line("bench scaling", args);
    let machine = format!(
        "{}\n- placement (taskset): client on CPU {}, 1-core servers on CPU {}, 2-core servers \
         on CPUs {}{}",
        machine_facts(&root, None).replace("; no pinning", "; pinned, see placement"),
        options.cpus.client,
        options.cpus.one,
        options.cpus.two,
        if options.pin_loops {
            "; each evloop loop pinned to its own CPU (--pin)"
        } else {
            ""
        }
    );
    let machine = if options.work_us > 0 {
        format!(
            "{machine}\n- work: each server spins {} us of CPU per read before echoing \
             (--work-us)",
            options.work_us
        )
    } else {
        machine
    };
    println!("\n{machine}\n\n{}", table.text());
    for note in &notes {
        println!("note: {note}");
    }
    let elapsed = started.elapsed().map_or(0.0, |d| d.as_secs_f64());
    println!("xtask bench scaling: done in {elapsed:.0} s");
    if options.record {
        record(&root, &command, &machine, &table, &notes)?;
    }
    if entries.is_empty() {
        return Err("xtask bench scaling: every run failed (see the notes above)".to_owned());
    }
    Ok(())
}

/// Every size × round × configuration, interleaved; the samples and the
/// notes (failures, broken shutdown contracts).
fn measure_all(configs: &[Config], options: &Options) -> (Vec<Entry>, Vec<String>) {
    let mut notes = vec![
        "client: evloop-loadgen --discard (one thread; echoed bytes dropped in the kernel with \
         recv MSG_TRUNC, counted, not checked)"
            .to_owned(),
    ];
    let (mut entries, mut broken) = (Vec::new(), Vec::new());
    for &size in &options.sizes {
        println!(
            "==> tcp {size} B x {} conns: {} round(s) of {}",
            options.conns,
            options.rounds,
            configs
                .iter()
                .map(|c| c.server.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let load = Load {
            transport: Transport::Tcp,
            size,
            conns: options.conns,
            warmup: options.warmup,
            duration: options.duration,
        };
        for round in 0..options.rounds {
            for config in configs {
                super::measure_round(
                    &config.env,
                    slice::from_ref(&config.server),
                    &load,
                    round,
                    &mut broken,
                    &mut entries,
                    &mut notes,
                );
            }
        }
    }
    (entries, notes)
}

/// The median over rounds of the server's CPU time / wall time: how many
/// cores it kept busy.
fn cores_busy(runs: &[&Entry]) -> f64 {
    let busy: Vec<f64> = runs
        .iter()
        .map(|e| e.sample.server_cpu_s / e.sample.load.seconds)
        .collect();
    median(&busy)
}

/// The median over rounds of the client's CPU microseconds per request.
fn client_us(runs: &[&Entry]) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let per: Vec<f64> = runs
        .iter()
        .map(|e| e.sample.load.client_cpu_s * 1e6 / e.sample.load.requests.max(1) as f64)
        .collect();
    median(&per)
}

/// The CPUs of a `taskset -c` list (`0`, `1-2`, `0,2-3`); `None` if malformed.
fn cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (usize, usize) = (lo.parse().ok()?, hi.parse().ok()?);
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Per-round ratio range of `runs` to `base`, flagged `!` past 15%.
fn spread(runs: &[&Entry], base: &[&Entry]) -> String {
    let per_round = round_ratios(runs, base);
    let (lo, hi) = min_max(&per_round);
    if per_round.is_empty() {
        "-".to_owned()
    } else if per_round.len() > 1 && hi - lo > 0.15 * median(&per_round) {
        format!("{lo:.2}-{hi:.2} !")
    } else {
        format!("{lo:.2}-{hi:.2}")
    }
}

fn scaling_table(entries: &[Entry], configs: &[Config], o: &Options) -> Table {
    let mut table = Table::new(
        format!(
            "Loop per core: echo over TCP, {} connections, median of {} round(s), servers \
             interleaved",
            o.conns, o.rounds
        ),
        &[
            "server",
            "CPUs",
            "size",
            "req/s",
            "min-max",
            "x 1 core",
            "per-round x 1 core",
            "x tokio",
            "CPU us/req",
            "cores busy",
            "client us/req",
            "client CPU",
            "CPU ceiling req/s",
            "p99 us",
        ],
    );
    let runs_of = |size, name: &str| samples(entries, Transport::Tcp, size, o.conns, name);
    let find = |family: &str, cores: usize| {
        configs
            .iter()
            .find(|c| c.family == family && c.cores == cores)
            .map(|c| c.server.name)
    };
    for &size in &o.sizes {
        for config in configs {
            let runs = runs_of(size, config.server.name);
            let Some(s) = summarize(&runs) else { continue };
            let one_core = find(config.family, 1).map(|name| runs_of(size, name));
            let tokio = find("tokio", config.cores).map(|name| runs_of(size, name));
            let rps_of =
                |runs: &Option<Vec<&Entry>>| runs.as_deref().and_then(summarize).map(|b| b.rps);
            table.rows.push(vec![
                config.server.name.to_owned(),
                config
                    .env
                    .pin
                    .as_ref()
                    .map_or("-".to_owned(), |p| p.server.clone()),
                size_name(size),
                thousands(s.rps),
                format!("{}-{}", thousands(s.rps_min), thousands(s.rps_max)),
                rps_of(&one_core).map_or("-".to_owned(), |b| ratio(s.rps, b)),
                one_core
                    .as_deref()
                    .map_or("-".to_owned(), |b| spread(&runs, b)),
                rps_of(&tokio).map_or("-".to_owned(), |b| ratio(s.rps, b)),
                fixed(s.cpu_us, 2),
                fixed(cores_busy(&runs), 2),
                fixed(client_us(&runs), 2),
                format!("{}%", fixed(s.client_cpu * 100.0, 0)),
                thousands(config.ceiling(s.cpu_us, client_us(&runs), &o.cpus.client)),
                fixed(s.p99_us, 0),
            ]);
        }
    }
    table.notes.push(format!(
        "x 1 core: req/s over the same server's 1-core configuration (evloop 1 loop, tokio \
         current_thread); x tokio: over tokio on the same CPUs. CPU us/req: the server's CPU \
         time (all threads, /proc schedstat) in the counted window / requests; cores busy: that \
         CPU time / wall time; client CPU: the load generator's (one thread, on CPU {}) CPU / \
         wall time: near 100% it, not the server, is the limit. CPU ceiling: the most req/s \
         these CPUs allow at the measured CPU per request of server and client (their own \
         CPUs each bound it; CPUs they share are split between them). `!`: the per-round \
         ratio spreads more than 15% (noise).",
        o.cpus.client
    ));
    table
}

const INTRO: &str = "`cargo xtask bench scaling` (issue 12): one event loop per core with \
`evloop::run_per_core` (the `echo_per_core` example: a `SO_REUSEPORT` listener per loop) on 1 and \
2 cores, against tokio's current_thread and multi-thread runtimes, every process pinned with \
taskset, one load generator, servers interleaved round-robin. On a 2-core machine the client \
needs a core too: the 2-core servers share the client's CPU, and the table shows the client's \
load. Newest run last.";

/// Appends the run to docs/performance.md under "## Loop per core".
fn record(
    root: &Path,
    command: &str,
    machine: &str,
    table: &Table,
    notes: &[String],
) -> Result<(), String> {
    let section = run_section(command, machine, slice::from_ref(table), &[], notes);
    append_section(
        root,
        "xtask bench scaling",
        "## Loop per core",
        INTRO,
        &section,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args;
    use crate::bench::report::test_entry;
    use std::fs;

    #[test]
    fn options() {
        let o = parse_options(&[]).unwrap();
        assert_eq!((o.rounds, o.conns, o.sizes.clone()), (3, 50, vec![1024]));
        assert_eq!(o.cpus, parse_cpus("0:1:0-1").unwrap());
        let q = parse_options(&args("--quick --sizes 1024,102400 --cpus 0:1:1-2")).unwrap();
        assert_eq!(q.rounds, 1);
        assert!((q.duration - 0.5).abs() < 1e-9);
        assert_eq!(q.sizes, [1024, 102_400]);
        assert_eq!(q.cpus.two, "1-2");
        assert!(parse_options(&args("--cpus 0:1")).is_err());
        assert!(parse_options(&args("--cpus 0:1:2:3")).is_err());
        assert!(parse_options(&args("--cpus a:1:0-1")).is_err());
        assert!(parse_options(&args("--conns 0")).is_err());
        assert!(parse_options(&args("--bogus")).is_err());
        assert_eq!(parse_options(&args("--work-us 20")).unwrap().work_us, 20);
        assert!(parse_options(&args("--work-us x")).is_err());
    }

    fn entry(server: &'static str, round: usize, rps: f64, cpu_s: f64) -> Entry {
        let mut e = test_entry(server, 1024, 50, round, rps);
        e.sample.server_cpu_s = cpu_s;
        e
    }

    #[test]
    fn the_table_gives_scaling_and_the_ratio_to_tokio() {
        let o = parse_options(&[]).unwrap();
        let env = Env {
            loadgen: PathBuf::from("loadgen"),
            loadgen_args: Vec::new(),
            work_dir: PathBuf::from("."),
            pin: None,
        };
        let configs = configs(Path::new("release"), &env, &o);
        let entries = vec![
            entry("evloop 1 loop", 0, 100.0, 1.0),
            entry("evloop 2 loops", 0, 180.0, 1.9),
            entry("tokio current_thread", 0, 90.0, 1.0),
            entry("tokio 2 workers", 0, 120.0, 1.8),
        ];
        let t = scaling_table(&entries, &configs, &o);
        assert_eq!(t.rows.len(), 4);
        let row = |name: &str| t.rows.iter().find(|r| r[0] == name).unwrap().clone();
        let two = row("evloop 2 loops");
        assert_eq!((two[1].as_str(), two[5].as_str()), ("0-1", "1.80"));
        assert_eq!(two[6], "1.80-1.80");
        assert_eq!(two[7], "1.50");
        assert_eq!(two[9], "1.90");
        let one = row("evloop 1 loop");
        assert_eq!(
            (one[1].as_str(), one[5].as_str(), one[7].as_str()),
            ("1", "1.00", "1.11")
        );
        assert_eq!(row("tokio 2 workers")[5], "1.33");
        // Client: 0.9 s CPU for 1,000 requests = 900 us each.
        assert_eq!(row("tokio 2 workers")[10], "900.00");
        assert_eq!(row("tokio 2 workers")[11], "90%");
        // 1 core: the server's own CPU bounds it (1 / 1,000 us); the client's
        // CPU 0 allows 1 / 900 us.
        assert_eq!(one[12], "1,000");
        // 2 cores shared with the client: 2 CPUs / (1,900 + 900 us).
        assert_eq!(two[12], "714");
    }

    #[test]
    fn the_run_is_appended_under_its_own_heading() {
        let root = std::env::temp_dir().join(format!("xtask-scaling-{}", std::process::id()));
        fs::create_dir_all(root.join("docs")).unwrap();
        let doc = root.join("docs/performance.md");
        fs::write(&doc, "# Performance\n\n## TLS\n\nearlier runs\n").unwrap();
        let table = Table {
            title: "T".to_owned(),
            header: vec!["server".to_owned()],
            rows: vec![vec!["evloop 2 loops".to_owned()]],
            notes: Vec::new(),
        };
        for _ in 0..2 {
            record(
                &root,
                "cargo xtask bench scaling",
                "- machine: m",
                &table,
                &[],
            )
            .unwrap();
        }
        let text = fs::read_to_string(&doc).unwrap();
        let _ = fs::remove_dir_all(&root);
        assert!(text.contains("## TLS\n\nearlier runs"), "{text}");
        assert_eq!(text.matches("\n## Loop per core\n").count(), 1, "{text}");
        assert_eq!(text.matches("| evloop 2 loops |").count(), 2, "{text}");
        assert!(
            text.contains("`cargo xtask bench scaling`\n\n- machine: m"),
            "{text}"
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0"), Some(vec![0]));
        assert_eq!(cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(cpu_list("3,0-1,1"), Some(vec![0, 1, 3]));
        assert_eq!(cpu_list("a"), None);
        assert_eq!(cpu_list(""), None);
    }
}
