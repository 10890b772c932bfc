//! `cargo xtask bench --instructions [--check] [--update-baseline]`:
//! instruction counts of the micro workloads and a fixed echo workload,
//! evloop beside tokio, that do not depend on machine noise (issue 12).
//!
//! Each workload runs as one process of `bench/micro/src/bin/instr.rs`
//! under `valgrind --tool=callgrind --separate-threads=yes
//! --fair-sched=yes`, at two sizes
//! N1 < N2 (the same binary, the same seed); the figure is
//! `(Ir(N2) − Ir(N1)) / (N2 − N1)` instructions per operation, so process
//! start, loop or runtime creation and every fixed cost cancel out. Ir is
//! the user-space instructions callgrind counts, of all threads (the
//! kernel's work in syscalls is not in it). `instr`'s docs say how each
//! workload is made deterministic (virtual clocks for the timers, both ends
//! of the echo on the loop thread).
//!
//! The table (workload, evloop Ir/op, tokio Ir/op, ratio) is printed and
//! written (Markdown) to `target/bench-instructions/table.txt`. `--check`
//! compares evloop's figures with the committed baseline ([`BASELINE`]) and
//! fails when any exceeds its baseline by more than [`TOLERANCE_PCT`] %,
//! naming the workload and the change; `--update-baseline` rewrites the
//! baseline. valgrind runs under `nice -n 10`. Not part of `cargo xtask
//! test` (docs/performance.md, "Instruction counts (callgrind)").

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{step, Cli};

const USAGE: &str = "\
usage: cargo xtask bench --instructions [--check] [--update-baseline] [--baseline FILE]
                         [--only chain,burst,...] [--evloop-only]

  Counts instructions per operation with valgrind --tool=callgrind (user space;
  (Ir(N2) - Ir(N1)) / (N2 - N1), so fixed costs cancel) for the workloads
  chain, chain-relaxed (the chain with relaxed I/O polling, one poll per 64
  links), burst, timer-cancel, timer-fire, cross-thread (4 posting threads) and
  echo (1 KiB round trips over a unix socketpair, both ends on the loop), evloop
  beside tokio. Prints the table and writes it (Markdown) to
  target/bench-instructions/table.txt.
  --check: fail if an evloop figure exceeds the baseline (default
  bench/instructions-baseline.txt) by more than 10 %.
  --update-baseline: rewrite the baseline with this run's figures.
  --evloop-only: skip tokio's runs (what `cargo xtask test` does with --check).
  20-110 s after the build, depending on the machine's load; needs valgrind.";

/// The committed baseline, relative to the workspace root.
pub(crate) const BASELINE: &str = "bench/instructions-baseline.txt";

/// A larger evloop figure than its baseline by more than this fails `--check`.
pub(crate) const TOLERANCE_PCT: f64 = 10.0;

/// A workload of `instr` and its two sizes.
#[derive(Debug, Clone, Copy)]
struct Workload {
    name: &'static str,
    n1: usize,
    n2: usize,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "chain",
        n1: 20_000,
        n2: 60_000,
    },
    Workload {
        name: "chain-relaxed",
        n1: 20_000,
        n2: 60_000,
    },
    Workload {
        name: "burst",
        n1: 20_000,
        n2: 60_000,
    },
    Workload {
        name: "timer-cancel",
        n1: 20_000,
        n2: 60_000,
    },
    Workload {
        name: "timer-fire",
        n1: 20_000,
        n2: 60_000,
    },
    Workload {
        name: "cross-thread",
        n1: 20_000,
        n2: 60_000,
    },
    Workload {
        name: "echo",
        n1: 2_000,
        n2: 6_000,
    },
];

const IMPLS: [&str; 2] = ["evloop", "tokio"];

#[derive(Debug)]
struct Options {
    check: bool,
    update: bool,
    baseline: Option<PathBuf>,
    only: Vec<&'static str>,
    evloop_only: bool,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let names: Vec<&'static str> = WORKLOADS.iter().map(|w| w.name).collect();
    let mut o = Options {
        check: false,
        update: false,
        baseline: None,
        only: names.clone(),
        evloop_only: false,
    };
    let mut cli = Cli::new("bench --instructions", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--instructions" => {}
            "--check" => o.check = true,
            "--update-baseline" => o.update = true,
            "--baseline" => o.baseline = Some(PathBuf::from(cli.value("--baseline")?)),
            "--only" => o.only = cli.names("--only", &names)?,
            "--evloop-only" => o.evloop_only = true,
            _ => return Err(cli.unknown(&flag)),
        }
    }
    if o.evloop_only && o.update {
        return Err(
            "xtask bench --instructions: --update-baseline needs tokio's figures too \
             (drop --evloop-only)"
                .to_owned(),
        );
    }
    Ok(o)
}

/// One row of the table: instructions per operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) evloop: f64,
    pub(crate) tokio: f64,
}

/// Runs `cargo xtask bench --instructions ARGS`.
///
/// # Errors
///
/// Bad arguments, no valgrind, a failed build or run, an unreadable
/// callgrind output; with `--check`, a regression or a missing baseline.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let options = parse_options(args)?;
    let valgrind = super::run::first_line(Path::new("valgrind"), &["--version"]).ok_or(
        "xtask bench --instructions: valgrind not found (install it: apt-get install valgrind)",
    )?;
    // Runs under valgrind because the workspace's rustix reads the auxv
    // through glibc (`use-libc-auxv`, root Cargo.toml).
    step(
        root,
        &["build", "--release", "-p", "evloop-bench", "--bin", "instr"],
    )?;
    let target = crate::examples::target_dir(root);
    let binary = target.join("release/instr");
    let out_dir = target.join("bench-instructions");
    let started = Instant::now();
    let mut rows = Vec::new();
    for workload in WORKLOADS.iter().filter(|w| options.only.contains(&w.name)) {
        let mut figures = [f64::NAN; 2];
        let impls = if options.evloop_only {
            &IMPLS[..1]
        } else {
            &IMPLS[..]
        };
        for (slot, &implementation) in figures.iter_mut().zip(impls) {
            let ir1 = count(&binary, &out_dir, workload, implementation, workload.n1)?;
            let ir2 = count(&binary, &out_dir, workload, implementation, workload.n2)?;
            *slot = per_op(ir1, ir2, workload.n1, workload.n2)?;
            println!(
                "    {:<13} {:<7} Ir({}) = {ir1}, Ir({}) = {ir2}: {:.1} Ir/op",
                workload.name, implementation, workload.n1, workload.n2, *slot
            );
        }
        rows.push(Row {
            workload: workload.name.to_owned(),
            evloop: figures[0],
            tokio: figures[1],
        });
    }
    let rustc = super::run::first_line(Path::new("rustc"), &["--version"])
        .unwrap_or_else(|| "rustc ?".to_owned());
    let tokio = fs::read_to_string(root.join("Cargo.lock"))
        .ok()
        .and_then(|lock| super::parse::lock_version(&lock, "tokio"))
        .unwrap_or_else(|| "?".to_owned());
    let facts = format!(
        "- date: {}\n- {valgrind}, {rustc}, tokio {tokio}; release profile\n\
         - command: `cargo xtask bench {}`; {:.0} s\n",
        super::date_now(),
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    let table = markdown(&rows);
    println!("\n{facts}\n{table}");
    let md = out_dir.join("table.txt");
    fs::write(&md, format!("{facts}\n{table}")).map_err(|e| format!("{}: {e}", md.display()))?;
    println!("xtask bench --instructions: wrote {}", md.display());

    let baseline = options
        .baseline
        .clone()
        .unwrap_or_else(|| root.join(BASELINE));
    if options.update {
        fs::write(&baseline, format_baseline(&rows))
            .map_err(|e| format!("{}: {e}", baseline.display()))?;
        println!("xtask bench --instructions: wrote {}", baseline.display());
    }
    if options.check {
        let text = fs::read_to_string(&baseline).map_err(|e| {
            format!(
                "xtask bench --instructions --check: cannot read the baseline {}: {e}",
                baseline.display()
            )
        })?;
        let base = parse_baseline(&text)?;
        let problems = regressions(&rows, &base);
        if !problems.is_empty() {
            return Err(format!(
                "xtask bench --instructions --check: FAILED against {}:\n  {}",
                baseline.display(),
                problems.join("\n  ")
            ));
        }
        println!(
            "xtask bench --instructions --check: every evloop figure within {TOLERANCE_PCT} % \
             of {}",
            baseline.display()
        );
    }
    Ok(())
}

/// Runs `instr WORKLOAD IMPL N` under callgrind; its instruction count.
fn count(
    binary: &Path,
    out_dir: &Path,
    workload: &Workload,
    implementation: &str,
    n: usize,
) -> Result<u64, String> {
    let dir = out_dir.join(format!("{}-{implementation}-{n}", workload.name));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut args = vec![
        "-n".to_owned(),
        "10".to_owned(),
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        "--separate-threads=yes".to_owned(),
        // Threads take valgrind's one running slot in turn (a ticket lock):
        // cross-thread's count varied by 1.8 % run to run without it, 0.2 %
        // with it.
        "--fair-sched=yes".to_owned(),
        format!(
            "--callgrind-out-file={}",
            dir.join("callgrind.out").display()
        ),
        binary.display().to_string(),
        workload.name.to_owned(),
        implementation.to_owned(),
        n.to_string(),
    ];
    if workload.name == "burst" {
        // The same warm-up burst at both sizes: it cancels out.
        args.extend(["--warm".to_owned(), workload.n2.to_string()]);
    }
    let output = Command::new("nice")
        .args(&args)
        .output()
        .map_err(|e| format!("xtask: could not run nice valgrind: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "xtask bench --instructions: {} {implementation} {n} failed ({}):\n{}",
            workload.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut threads = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(t) = parse_callgrind(&text) {
            threads.push(t);
        }
    }
    total(&threads).ok_or_else(|| {
        format!(
            "xtask bench --instructions: no callgrind totals in {}",
            dir.display()
        )
    })
}

/// One callgrind output file's thread number and instruction count (its
/// `summary:` line, or else its `totals:` line); `None` without either.
pub(crate) fn parse_callgrind(text: &str) -> Option<(u32, u64)> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let thread = field("thread:").map_or(1, |t| u32::try_from(t).unwrap_or(u32::MAX));
    let ir = field("summary:").or_else(|| field("totals:"))?;
    Some((thread, ir))
}

/// The count of all `threads` (thread number, Ir); `None` without any, or
/// without the main thread (1): a file was lost.
pub(crate) fn total(threads: &[(u32, u64)]) -> Option<u64> {
    if !threads.iter().any(|(t, _)| *t == 1) {
        return None;
    }
    Some(threads.iter().map(|(_, ir)| ir).sum())
}

/// `(ir2 − ir1) / (n2 − n1)`; an error unless n2 > n1 and ir2 ≥ ir1.
pub(crate) fn per_op(ir1: u64, ir2: u64, n1: usize, n2: usize) -> Result<f64, String> {
    if n2 <= n1 || ir2 < ir1 {
        return Err(format!(
            "xtask bench --instructions: Ir({n2}) = {ir2} is not above Ir({n1}) = {ir1}"
        ));
    }
    Ok((ir2 - ir1) as f64 / (n2 - n1) as f64)
}

/// The Markdown table of `rows`.
pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| workload | evloop Ir/op | tokio Ir/op | evloop / tokio |\n|---|---:|---:|---:|\n",
    );
    for r in rows {
        let ratio = if r.tokio > 0.0 {
            format!("{:.2}", r.evloop / r.tokio)
        } else {
            "-".to_owned()
        };
        let tokio = if r.tokio.is_nan() {
            "-".to_owned()
        } else {
            format!("{:.1}", r.tokio)
        };
        let _ = writeln!(
            s,
            "| {} | {:.1} | {tokio} | {ratio} |",
            r.workload, r.evloop
        );
    }
    s
}

/// The baseline file: a comment header, then `workload evloop tokio` lines
/// (instructions per operation; only evloop's is checked).
pub(crate) fn format_baseline(rows: &[Row]) -> String {
    let mut s = String::from(
        "# Instructions per operation (callgrind Ir), `cargo xtask bench --instructions`.\n\
         # `--check` fails when an evloop figure exceeds its line here by more than 10 %;\n\
         # `--update-baseline` rewrites this file. Columns: workload evloop tokio.\n",
    );
    for r in rows {
        let _ = writeln!(s, "{} {:.1} {:.1}", r.workload, r.evloop, r.tokio);
    }
    s
}

/// Reads [`format_baseline`]'s format: `#` comments and blank lines
/// skipped, every other line `workload evloop tokio`.
pub(crate) fn parse_baseline(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
        match fields.as_slice() {
            [workload, evloop, tokio] => match (number(evloop), number(tokio)) {
                (Some(evloop), Some(tokio)) => rows.push(Row {
                    workload: (*workload).to_owned(),
                    evloop,
                    tokio,
                }),
                _ => return Err(format!("baseline line {}: bad number in {line:?}", i + 1)),
            },
            _ => {
                return Err(format!(
                    "baseline line {}: expected `workload evloop tokio`, got {line:?}",
                    i + 1
                ))
            }
        }
    }
    Ok(rows)
}

/// Every evloop figure of `rows` above its baseline by more than
/// [`TOLERANCE_PCT`] %, or without a baseline, as a message.
pub(crate) fn regressions(rows: &[Row], baseline: &[Row]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in rows {
        let Some(base) = baseline.iter().find(|b| b.workload == r.workload) else {
            problems.push(format!(
                "{}: no baseline figure (run with --update-baseline)",
                r.workload
            ));
            continue;
        };
        let change = if base.evloop > 0.0 {
            (r.evloop / base.evloop - 1.0) * 100.0
        } else if r.evloop > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        // Compared without the division's rounding: +10 % exactly passes.
        if r.evloop * 100.0 > base.evloop * (100.0 + TOLERANCE_PCT) {
            problems.push(format!(
                "{}: evloop {:.1} Ir/op vs baseline {:.1} (+{change:.1} %, limit +{TOLERANCE_PCT} %)",
                r.workload, r.evloop, base.evloop
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::args;

    fn row(workload: &str, evloop: f64, tokio: f64) -> Row {
        Row {
            workload: workload.to_owned(),
            evloop,
            tokio,
        }
    }

    #[test]
    fn callgrind_files_give_thread_and_count() {
        let text = "# callgrind format\nversion: 1\npid: 7\nthread: 2\n\nevents: Ir\n\
                    summary: 1765291\n\nfn=(1) x\n3 4\ntotals: 1765300\n";
        assert_eq!(parse_callgrind(text), Some((2, 1_765_291)));
        assert_eq!(
            parse_callgrind("events: Ir\ntotals: 42\n"),
            Some((1, 42)),
            "no thread line: thread 1; no summary: totals"
        );
        assert_eq!(parse_callgrind("events: Ir\n"), None);
        assert_eq!(parse_callgrind("summary: lots\n"), None);
    }

    #[test]
    fn totals_of_all_threads_need_the_main_thread() {
        assert_eq!(total(&[(2, 10), (1, 100), (3, 1)]), Some(111));
        assert_eq!(total(&[(2, 10)]), None);
        assert_eq!(total(&[]), None);
    }

    #[test]
    fn per_op_is_the_slope() {
        assert_eq!(per_op(1_000, 5_000, 10, 50), Ok(100.0));
        assert!(per_op(5_000, 1_000, 10, 50).is_err());
        assert!(per_op(1_000, 5_000, 50, 50).is_err());
    }

    #[test]
    fn baseline_round_trips() {
        let rows = vec![row("chain", 123.4, 200.0), row("echo", 5000.0, 4000.5)];
        let parsed = parse_baseline(&format_baseline(&rows)).unwrap();
        assert_eq!(parsed, rows);
        assert!(parse_baseline("chain 1\n").is_err());
        assert!(parse_baseline("chain x 2\n").is_err());
        assert!(parse_baseline("chain -1 2\n").is_err());
        assert_eq!(parse_baseline("# only\n\n").unwrap(), vec![]);
    }

    #[test]
    fn check_fails_above_ten_percent_and_names_the_workload() {
        let base = vec![row("chain", 100.0, 1.0), row("burst", 50.0, 1.0)];
        // +10 % exactly and any improvement pass.
        assert!(
            regressions(&[row("chain", 110.0, 9.0), row("burst", 20.0, 9.0)], &base).is_empty()
        );
        let p = regressions(&[row("chain", 111.0, 1.0), row("burst", 50.0, 1.0)], &base);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("chain: evloop 111.0"), "{}", p[0]);
        assert!(p[0].contains("+11.0 %"), "{}", p[0]);
        let missing = regressions(&[row("echo", 1.0, 1.0)], &base);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("no baseline"), "{}", missing[0]);
    }

    #[test]
    fn markdown_has_the_ratio() {
        let md = markdown(&[row("chain", 150.0, 100.0), row("x", 1.0, 0.0)]);
        assert!(md.contains("| chain | 150.0 | 100.0 | 1.50 |"), "{md}");
        assert!(md.contains("| x | 1.0 | 0.0 | - |"), "{md}");
        let md = markdown(&[row("y", 2.0, f64::NAN)]);
        assert!(md.contains("| y | 2.0 | - | - |"), "{md}");
    }

    #[test]
    fn options() {
        let o = parse_options(&args("--instructions --check")).unwrap();
        assert!(o.check && !o.update);
        assert_eq!(o.only.len(), WORKLOADS.len());
        let o = parse_options(&args("--instructions --only chain,echo --baseline /x")).unwrap();
        assert_eq!(o.only, ["chain", "echo"]);
        assert_eq!(o.baseline, Some(PathBuf::from("/x")));
        assert!(parse_options(&args("--instructions --only nope")).is_err());
        assert!(parse_options(&args("--instructions --quick")).is_err());
        assert!(
            parse_options(&args("--instructions --check --evloop-only"))
                .unwrap()
                .evloop_only
        );
        assert!(parse_options(&args("--instructions --update-baseline --evloop-only")).is_err());
    }
}
