//! `cargo xtask bench process`: the subprocess benchmark of issue 9
//! ("Speed"): spawn-to-exit latency of `/bin/true` (p50, p99) and children
//! per second, evloop beside tokio::process, Python asyncio and uvloop, in
//! the same run.
//!
//! Each implementation is a separate program with the same command line
//! and output: `bench/process-spawn` (`--impl evloop|tokio`, release build;
//! tokio on a current_thread runtime) and `bench/python/process_spawn.py`
//! (`--impl asyncio|uvloop`, in the bench venv of
//! `bench/python/setup-venv.sh`). One run of one implementation does N
//! sequential spawn + wait of `/bin/true` (stdio `/dev/null`), each timed,
//! then M spawns with K in flight, timed as a whole. The implementations
//! are interleaved over R rounds, the starting one rotating, so drift
//! spreads over all of them; latencies are pooled over the rounds for the
//! percentiles, children/s is the median of the rounds with their range.
//! Results are appended to docs/performance.md ("## Subprocesses").

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{command_line, date_now, machine_facts, python_venv, step, Cli};

const USAGE: &str = "\
usage: cargo xtask bench process [--quick] [--rounds R] [--seq N] [--conc M]
                                 [--inflight K] [--impls evloop,tokio,asyncio,uvloop]
                                 [--no-record]

  Spawn-to-exit latency of /bin/true (N sequential spawns per round,
  default 300; p50 and p99 over all rounds) and children per second (M
  spawns, default 2000, K in flight, default 64), evloop, tokio::process
  (current_thread), asyncio and uvloop interleaved over R rounds (default
  5; --quick: 2 rounds of 100 and 500). Results are appended to
  docs/performance.md (## Subprocesses) unless --no-record.";

/// The implementations, in the order of the first round.
const IMPLS: &[&str] = &["evloop", "tokio", "asyncio", "uvloop"];

/// Gaps under this are noise on these machines.
const NOISE: f64 = 0.15;

#[derive(Debug, Clone, PartialEq)]
struct Options {
    rounds: usize,
    seq: usize,
    conc: usize,
    inflight: usize,
    impls: Vec<&'static str>,
    record: bool,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        rounds: 5,
        seq: 300,
        conc: 2000,
        inflight: 64,
        impls: IMPLS.to_vec(),
        record: true,
    };
    let (mut rounds, mut seq, mut conc) = (None, None, None);
    let mut quick = false;
    let mut cli = Cli::new("bench process", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--quick" => quick = true,
            "--no-record" => o.record = false,
            "--rounds" => rounds = Some(cli.positive("--rounds")?),
            "--seq" => seq = Some(cli.positive("--seq")?),
            "--conc" => conc = Some(cli.positive("--conc")?),
            "--inflight" => o.inflight = cli.positive("--inflight")?,
            "--impls" => o.impls = cli.names("--impls", IMPLS)?,
            _ => return Err(cli.unknown(&flag)),
        }
    }
    o.rounds = rounds.unwrap_or(if quick { 2 } else { o.rounds });
    o.seq = seq.unwrap_or(if quick { 100 } else { o.seq });
    o.conc = conc.unwrap_or(if quick { 500 } else { o.conc });
    Ok(o)
}

/// One run's output: each sequential latency (µs) and the concurrent
/// run's children and seconds.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    seq_us: Vec<f64>,
    conc: usize,
    conc_secs: f64,
}

fn parse_output(text: &str) -> Option<Sample> {
    let mut seq_us = None;
    let mut conc = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("seq_us") => seq_us = words.map(|w| w.parse().ok()).collect::<Option<Vec<f64>>>(),
            Some("conc") => {
                let n = words.next()?.parse().ok()?;
                let secs = words.next()?.parse().ok()?;
                conc = Some((n, secs));
            }
            _ => {}
        }
    }
    let (conc, conc_secs) = conc?;
    Some(Sample {
        seq_us: seq_us?,
        conc,
        conc_secs,
    })
}

/// The value at quantile `q` (nearest rank) of sorted `v`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// One implementation's results over all rounds.
#[derive(Debug, Default, Clone)]
struct ImplResults {
    latencies: Vec<f64>,
    rates: Vec<f64>,
}

struct Row {
    name: &'static str,
    p50: f64,
    p99: f64,
    rate: f64,
    rate_min: f64,
    rate_max: f64,
}

fn rows(impls: &[&'static str], results: &[ImplResults]) -> Vec<Row> {
    impls
        .iter()
        .zip(results)
        .filter(|(_, r)| !r.rates.is_empty())
        .map(|(name, r)| {
            let mut lat = r.latencies.clone();
            lat.sort_by(f64::total_cmp);
            Row {
                name,
                p50: percentile(&lat, 0.5),
                p99: percentile(&lat, 0.99),
                rate: median(&r.rates),
                rate_min: r.rates.iter().copied().fold(f64::INFINITY, f64::min),
                rate_max: r.rates.iter().copied().fold(0.0, f64::max),
            }
        })
        .collect()
}

fn table(rows: &[Row], o: &Options) -> String {
    let base = rows.iter().find(|r| r.name == "evloop");
    let mut out = format!(
        "| implementation | spawn→exit p50 (µs) | p99 (µs) | children/s ({} in flight), median | range over rounds | children/s vs evloop |\n|---|---:|---:|---:|---:|---:|\n",
        o.inflight
    );
    for r in rows {
        let vs = base.map_or_else(|| "–".to_owned(), |b| format!("{:.2}×", r.rate / b.rate));
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0}–{:.0} | {vs} |\n",
            r.name, r.p50, r.p99, r.rate, r.rate_min, r.rate_max
        ));
    }
    out
}

/// A plain reading of the table: who is ahead on each figure, and whether
/// the gap is beyond the machine's noise.
fn reading(rows: &[Row]) -> Vec<String> {
    let Some(ev) = rows.iter().find(|r| r.name == "evloop") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.name != "evloop") {
        let describe = |ours: f64, theirs: f64, lower_is_better: bool| {
            let gain = if lower_is_better {
                theirs / ours - 1.0
            } else {
                ours / theirs - 1.0
            };
            if gain.abs() < NOISE {
                "level (within noise)".to_owned()
            } else if gain > 0.0 {
                format!("evloop ahead by {:.0}%", gain * 100.0)
            } else {
                format!("evloop behind by {:.0}%", -gain * 100.0)
            }
        };
        out.push(format!(
            "vs {}: p50 {}; p99 {}; children/s {}",
            r.name,
            describe(ev.p50, r.p50, true),
            describe(ev.p99, r.p99, true),
            describe(ev.rate, r.rate, false)
        ));
    }
    out
}

fn run_one(program: &Path, pre: &[&str], name: &str, o: &Options) -> Result<Sample, String> {
    let out = Command::new(program)
        .args(pre)
        .args(["--impl", name])
        .args(["--seq", &o.seq.to_string()])
        .args(["--conc", &o.conc.to_string()])
        .args(["--inflight", &o.inflight.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{name}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ));
    }
    parse_output(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("{name}: unreadable output"))
}

/// Entry point: `cargo xtask bench process ARGS`.
///
/// # Errors
/// Bad arguments, a failed build, or no measurement at all. A missing
/// Python (or venv) is reported and skipped.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let o = parse_options(args)?;
    step(root, &["build", "--release", "-p", "process-spawn-bench"])?;
    let native = root.join("target/release/process-spawn");
    let mut skipped = Vec::new();
    let python = python_venv(root, &o.impls, &mut skipped);
    let script = root.join("bench/python/process_spawn.py");
    let script = script.to_string_lossy().into_owned();
    let mut impls: Vec<&'static str> = Vec::new();
    for name in &o.impls {
        if matches!(*name, "asyncio" | "uvloop") && python.is_none() {
            continue;
        }
        impls.push(name);
    }
    let mut results = vec![ImplResults::default(); impls.len()];
    let mut failures = Vec::new();
    for round in 0..o.rounds {
        for k in 0..impls.len() {
            let i = (k + round) % impls.len();
            let name = impls[i];
            let (program, pre): (PathBuf, Vec<&str>) = match name {
                "evloop" | "tokio" => (native.clone(), Vec::new()),
                _ => (python.clone().unwrap_or_default(), vec![script.as_str()]),
            };
            match run_one(&program, &pre, name, &o) {
                Ok(sample) => {
                    let rate = sample.conc as f64 / sample.conc_secs;
                    let mut sorted = sample.seq_us.clone();
                    sorted.sort_by(f64::total_cmp);
                    println!(
                        "round {}/{} {name:8} p50 {:7.0} µs  p99 {:7.0} µs  {rate:7.0} children/s",
                        round + 1,
                        o.rounds,
                        percentile(&sorted, 0.5),
                        percentile(&sorted, 0.99)
                    );
                    results[i].latencies.extend(sample.seq_us);
                    results[i].rates.push(rate);
                }
                Err(e) => {
                    println!("round {}/{} {name}: failed: {e}", round + 1, o.rounds);
                    failures.push(e);
                }
            }
        }
    }
    let rows = rows(&impls, &results);
    if rows.is_empty() {
        return Err(format!("xtask bench process: no measurement: {failures:?}"));
    }
    let table = table(&rows, &o);
    let reading = reading(&rows);
    println!("\n{table}");
    for line in &reading {
        println!("- {line}");
    }
    for s in &skipped {
        println!("- skipped: {s}");
    }
    if o.record {
        let command = command_line("bench process", args);
        let machine = machine_facts(root, python.as_deref());
        let mut section = format!(
            "### {} — `{}`\n\n{machine}\n- runs: {} rounds × {} sequential spawns (p50/p99 over all {} of them) and {} spawns with {} in flight (median children/s, range over rounds); implementations interleaved, starting one rotating\n\n{table}\n",
            date_now(),
            command,
            o.rounds,
            o.seq,
            o.rounds * o.seq,
            o.conc,
            o.inflight
        );
        for line in &reading {
            section.push_str(&format!("- {line}\n"));
        }
        for s in &skipped {
            section.push_str(&format!("- skipped: {s}\n"));
        }
        for f in &failures {
            section.push_str(&format!("- failed run: {f}\n"));
        }
        super::report::append_section(root, "xtask bench process", HEADING, INTRO, &section)?;
    }
    Ok(())
}

const HEADING: &str = "## Subprocesses";

const INTRO: &str = "`cargo xtask bench process` (issue 9): spawn-to-exit latency of \
`/bin/true` (stdin, stdout and stderr `/dev/null`; spawn, then wait for the exit) one at a \
time, and children per second with many in flight, evloop (`subprocess_exec` + `wait`) \
beside tokio::process (current_thread), Python asyncio and uvloop \
(`create_subprocess_exec` + `wait`), interleaved in one run. Gaps under 15% are noise on \
these machines. Newest run last.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args;

    #[test]
    fn options() {
        let o = parse_options(&args("--quick --impls evloop,uvloop --inflight 8")).unwrap();
        assert_eq!((o.rounds, o.seq, o.conc, o.inflight), (2, 100, 500, 8));
        assert_eq!(o.impls, ["evloop", "uvloop"]);
        assert!(parse_options(&args("--impls evloop,node")).is_err());
        assert!(parse_options(&args("--seq 0")).is_err());
        assert!(parse_options(&args("--bogus")).is_err());
    }

    #[test]
    fn output_and_percentiles() {
        let s = parse_output("seq_us 10.5 20 30\nconc 100 0.5\n").unwrap();
        assert_eq!(s.seq_us, [10.5, 20.0, 30.0]);
        assert_eq!((s.conc, s.conc_secs), (100, 0.5));
        assert!(parse_output("seq_us 1\n").is_none());
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
