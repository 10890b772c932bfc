//! `cargo xtask fuzz`: coverage-guided fuzzing with cargo-fuzz (libFuzzer).
//!
//! The targets are `fuzz/fuzz_targets/*.rs`, thin entries into the
//! `evloop-fuzz` harness (`fuzz/harness`), whose corpus replay test runs the
//! committed inputs on stable as part of `cargo xtask test`. This command is
//! not part of CI: it needs a nightly toolchain (cargo-fuzz builds with
//! `-Zsanitizer=address`) and says so when there is none; it installs
//! cargo-fuzz itself (`cargo install cargo-fuzz --locked`) when missing.
//!
//! It builds the targets once (`cargo +nightly fuzz build
//! --debug-assertions`), then runs each binary (libFuzzer) directly. Each
//! run fuzzes with a working corpus in `fuzz/corpus-work/<target>/`
//! (ignored by git), seeded from the committed `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`, and prints libFuzzer's figures:
//! executions, exec/s, final `cov:`/`ft:`, corpus size, crashes. On a crash
//! it stops and prints the input's path and how to reproduce it.
//! `--minimize` merges the working corpus into the committed one, keeping
//! only inputs that add coverage (libFuzzer's `-merge=1`, what `cargo fuzz
//! cmin` does).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cargo;

const USAGE: &str = "\
usage: cargo xtask fuzz [--time SECS] [--no-build] [--minimize] [--list] [TARGET]

  Fuzzes TARGET (default: every target in fuzz/fuzz_targets/, one after the
  other) for SECS seconds each (default 60) with cargo-fuzz on a nightly
  toolchain, and prints per target: executions, exec/s, coverage (cov/ft),
  corpus size and crashes. Stops at the first crash with its input's path
  and the command to reproduce it.

  --time SECS   fuzzing time per target (default 60)
  --no-build    run the fuzz binaries built last time (fuzz/target) without
                `cargo fuzz build` first (for runs side by side)
  --minimize    instead of fuzzing, merge fuzz/corpus-work/TARGET into the
                committed fuzz/corpus/TARGET, keeping only inputs that add
                coverage
  --list        print the targets and exit

  Needs a nightly toolchain (`rustup toolchain install nightly`); installs
  cargo-fuzz (`cargo install cargo-fuzz --locked`) when it is missing.";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    time: u64,
    minimize: bool,
    list: bool,
    no_build: bool,
    target: Option<String>,
    help: bool,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    use lexopt::prelude::*;
    let mut options = Options {
        time: 60,
        minimize: false,
        list: false,
        no_build: false,
        target: None,
        help: false,
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => options.help = true,
            Long("time") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                options.time = value.parse().map_err(|e| format!("--time: {e}"))?;
                if options.time == 0 {
                    return Err("--time must be at least 1 second".to_owned());
                }
            }
            Long("minimize") => options.minimize = true,
            Long("list") => options.list = true,
            Long("no-build") => options.no_build = true,
            Value(target) if options.target.is_none() => {
                options.target = Some(target.string().map_err(|e| e.to_string())?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(options)
}

/// The targets: the file stems of `fuzz/fuzz_targets/*.rs`, sorted.
fn targets(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("fuzz/fuzz_targets");
    let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The entry point of `cargo xtask fuzz`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let options = parse_options(args).map_err(|e| format!("xtask fuzz: {e}\n\n{USAGE}"))?;
    if options.help {
        println!("{USAGE}");
        return Ok(());
    }
    let all = targets(root)?;
    if options.list {
        for name in &all {
            println!("{name}");
        }
        return Ok(());
    }
    let chosen = match &options.target {
        Some(target) if all.contains(target) => vec![target.clone()],
        Some(target) => {
            return Err(format!(
                "xtask fuzz: no target `{target}`; the targets are: {}",
                all.join(", ")
            ))
        }
        None => all,
    };
    check_nightly()?;
    ensure_cargo_fuzz()?;
    if !options.no_build {
        build(root, options.target.as_deref())?;
    }
    let mut summaries = Vec::new();
    for target in &chosen {
        if options.minimize {
            minimize(root, target)?;
        } else {
            let summary = fuzz(root, target, options.time)?;
            summaries.push(summary);
        }
    }
    if !summaries.is_empty() {
        println!("\n{}", table(&summaries));
    }
    Ok(())
}

/// Fails with instructions unless `cargo +nightly` works.
fn check_nightly() -> Result<(), String> {
    let out = Command::new("cargo")
        .args(["+nightly", "--version"])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            print!("fuzz: using {}", String::from_utf8_lossy(&out.stdout));
            Ok(())
        }
        _ => Err(
            "xtask fuzz: needs a nightly Rust toolchain (cargo-fuzz builds with \
                  -Zsanitizer), and `cargo +nightly --version` failed.\n\
                  Install one with `rustup toolchain install nightly`, then run this again.\n\
                  (The committed corpus is replayed on stable by \
                  `cargo test -p evloop-fuzz`, part of `cargo xtask test`.)"
                .to_owned(),
        ),
    }
}

/// Installs cargo-fuzz when `cargo fuzz --version` fails.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let have = Command::new(cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have {
        return Ok(());
    }
    println!("==> cargo install cargo-fuzz --locked (cargo-fuzz is missing)");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("xtask fuzz: cannot run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("xtask fuzz: `cargo install cargo-fuzz --locked` failed".to_owned())
    }
}

/// `cargo +nightly fuzz build --debug-assertions [TARGET]` (every target
/// when none is given): sanitizer coverage, AddressSanitizer, debug
/// assertions (overflow checks included), release optimizations.
fn build(root: &Path, target: Option<&str>) -> Result<(), String> {
    let mut command = Command::new("cargo");
    command
        .current_dir(root)
        .args(["+nightly", "fuzz", "build", "--debug-assertions"]);
    command.args(target);
    println!(
        "==> cargo +nightly fuzz build --debug-assertions {}",
        target.unwrap_or("")
    );
    let status = command
        .status()
        .map_err(|e| format!("xtask fuzz: cannot run cargo fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("xtask fuzz: cargo fuzz build failed ({status})"))
    }
}

/// Where `cargo fuzz build` puts `target`'s binary.
fn binary(root: &Path, target: &str) -> Result<PathBuf, String> {
    let path = root
        .join("fuzz/target")
        .join(host_triple()?)
        .join("release")
        .join(target);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "xtask fuzz: {} is not built (run without --no-build)",
            path.display()
        ))
    }
}

/// The nightly toolchain's host triple (cargo-fuzz builds for it).
fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .args(["+nightly", "-vV"])
        .output()
        .map_err(|e| format!("xtask fuzz: rustc +nightly -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "xtask fuzz: no host triple in `rustc +nightly -vV`".to_owned())
}

/// `fuzz/artifacts/<target>`, created: where crashes are written.
fn artifacts(root: &Path, target: &str) -> Result<PathBuf, String> {
    let dir = root.join("fuzz/artifacts").join(target);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// One target's figures, read from libFuzzer's output.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    target: String,
    seconds: u64,
    executions: Option<u64>,
    exec_per_sec: Option<u64>,
    cov: Option<u64>,
    ft: Option<u64>,
    corpus: usize,
    crashes: usize,
}

/// `cargo +nightly fuzz run` for `seconds`; returns the figures, or the
/// crash and how to reproduce it.
fn fuzz(root: &Path, target: &str, seconds: u64) -> Result<Summary, String> {
    let work = root.join("fuzz/corpus-work").join(target);
    let committed = root.join("fuzz/corpus").join(target);
    let regressions = root.join("fuzz/regressions").join(target);
    for dir in [&work, &committed, &regressions] {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log_path = root.join(format!("fuzz/artifacts/{target}.log"));
    fs::create_dir_all(root.join("fuzz/artifacts")).map_err(|e| e.to_string())?;
    let binary = binary(root, target)?;
    let mut command = Command::new(&binary);
    command
        .current_dir(root)
        .arg(format!(
            "-artifact_prefix={}/",
            artifacts(root, target)?.display()
        ))
        .arg(&work)
        .arg(&committed)
        .arg(&regressions)
        .arg(format!("-max_total_time={seconds}"))
        // A input that runs for 10 s is a hang: a finding.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=4096")
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    println!(
        "==> {} fuzz/corpus-work/{target} fuzz/corpus/{target} fuzz/regressions/{target} \
         -max_total_time={seconds} -timeout=10 -rss_limit_mb=4096 -print_final_stats=1   \
         (log: {})",
        binary.display(),
        log_path.display()
    );
    let started = std::time::Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("xtask fuzz: cannot run {}: {e}", binary.display()))?;
    let stderr = child.stderr.take().expect("piped stderr");
    let mut log = String::new();
    let mut summary = Summary {
        target: target.to_owned(),
        seconds,
        ..Summary::default()
    };
    let mut crash = None;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        // libFuzzer's status lines (`#N pulse/NEW/REDUCE/DONE ...`) and
        // everything else pass through.
        eprintln!("{line}");
        read_line(&line, &mut summary, &mut crash);
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    // What it really ran: less than asked when it stopped at a crash.
    summary.seconds = started.elapsed().as_secs();
    fs::write(&log_path, &log).map_err(|e| format!("{}: {e}", log_path.display()))?;
    summary.corpus = fs::read_dir(&work).map(|d| d.count()).unwrap_or(0);
    if let Some(path) = crash {
        summary.crashes = 1;
        println!("\n{}", table(&[summary]));
        return Err(format!(
            "xtask fuzz: {target} found a crash: {path}\n\
             reproduce: cargo +nightly fuzz run --debug-assertions {target} {path}\n\
             on stable: copy it to fuzz/regressions/{target}/ and run \
             cargo test -p evloop-fuzz --test corpus {target}"
        ));
    }
    if !status.success() {
        return Err(format!(
            "xtask fuzz: fuzzing {target} failed ({status}); see {}",
            log_path.display()
        ));
    }
    Ok(summary)
}

/// Picks the figures out of one line of libFuzzer's output.
fn read_line(line: &str, summary: &mut Summary, crash: &mut Option<String>) {
    let field = |name: &str| -> Option<u64> {
        let rest = line.split(name).nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    if line.starts_with('#') && line.contains(" cov: ") {
        summary.cov = field(" cov: ").or(summary.cov);
        summary.ft = field(" ft: ").or(summary.ft);
    }
    if let Some(n) = field("stat::number_of_executed_units: ") {
        summary.executions = Some(n);
    }
    if let Some(n) = field("stat::average_exec_per_sec: ") {
        summary.exec_per_sec = Some(n);
    }
    if let Some(path) = line.split("Test unit written to ").nth(1) {
        *crash = Some(path.trim().to_owned());
    }
}

fn table(summaries: &[Summary]) -> String {
    let show = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    let mut out = String::from(
        "| target | ran (s) | executions | exec/s | cov | ft | corpus files | crashes |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in summaries {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.target,
            s.seconds,
            show(s.executions),
            show(s.exec_per_sec),
            show(s.cov),
            show(s.ft),
            s.corpus,
            s.crashes
        ));
    }
    out
}

/// Merges the working corpus into the committed one (libFuzzer
/// `-merge=1`): the committed directory is replaced by the inputs, from
/// both, that add coverage.
fn minimize(root: &Path, target: &str) -> Result<(), String> {
    let committed = root.join("fuzz/corpus").join(target);
    let work = root.join("fuzz/corpus-work").join(target);
    let merged: PathBuf = root
        .join("fuzz/corpus-work")
        .join(format!("{target}.merged"));
    let _ = fs::remove_dir_all(&merged);
    for dir in [&committed, &work, &merged] {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let binary = binary(root, target)?;
    println!(
        "==> {} -merge=1 (into fuzz/corpus/{target})",
        binary.display()
    );
    let status = Command::new(&binary)
        .current_dir(root)
        .arg(format!(
            "-artifact_prefix={}/",
            artifacts(root, target)?.display()
        ))
        .args(["-merge=1", "-timeout=10", "-rss_limit_mb=4096"])
        .arg(&merged)
        .arg(&committed)
        .arg(&work)
        .status()
        .map_err(|e| format!("xtask fuzz: cannot run {}: {e}", binary.display()))?;
    if !status.success() {
        return Err(format!(
            "xtask fuzz: merging {target}'s corpus failed ({status})"
        ));
    }
    let before = fs::read_dir(&committed).map(|d| d.count()).unwrap_or(0);
    fs::remove_dir_all(&committed).map_err(|e| e.to_string())?;
    fs::rename(&merged, &committed).map_err(|e| e.to_string())?;
    let after: Vec<u64> = fs::read_dir(&committed)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.metadata().ok().map(|m| m.len()))
        .collect();
    println!(
        "fuzz: {target}: committed corpus {before} -> {} files, {} bytes",
        after.len(),
        after.iter().sum::<u64>()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        parse_options(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn command_lines() {
        let o = parse(&["--time", "600", "timer_queue"]).unwrap();
        assert_eq!((o.time, o.target.as_deref()), (600, Some("timer_queue")));
        assert_eq!(parse(&[]).unwrap().time, 60);
        assert!(parse(&["--minimize"]).unwrap().minimize);
        assert!(parse(&["--help"]).unwrap().help);
        assert!(parse(&["--time", "0"]).is_err());
        assert!(parse(&["--time", "x"]).is_err());
        assert!(parse(&["a", "b"]).is_err());
        assert!(parse(&["--frob"]).is_err());
    }

    #[test]
    fn reads_libfuzzer_figures() {
        let mut s = Summary::default();
        let mut crash = None;
        for line in [
            "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb",
            "#4096\tpulse  cov: 812 ft: 2400 corp: 90/3Kb lim: 43 exec/s: 2048 rss: 60Mb",
            "#9000\tDONE   cov: 900 ft: 2500 corp: 95/4Kb lim: 43 exec/s: 3000 rss: 61Mb",
            "stat::number_of_executed_units: 9000",
            "stat::average_exec_per_sec:     3000",
        ] {
            read_line(line, &mut s, &mut crash);
        }
        assert_eq!(
            (s.cov, s.ft, s.executions, s.exec_per_sec),
            (Some(900), Some(2500), Some(9000), Some(3000))
        );
        assert_eq!(crash, None);
        read_line(
            "artifact_prefix='fuzz/artifacts/x/'; Test unit written to fuzz/artifacts/x/crash-ab",
            &mut s,
            &mut crash,
        );
        assert_eq!(crash.as_deref(), Some("fuzz/artifacts/x/crash-ab"));
    }

    #[test]
    fn lists_the_targets() {
        let names = targets(&crate::workspace_root()).unwrap();
        assert!(names.contains(&"timer_queue".to_owned()), "{names:?}");
    }
}
