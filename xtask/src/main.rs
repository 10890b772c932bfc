//! `cargo xtask`: evloop's project automation, in Rust: std, `lexopt` for
//! the command lines and `cargo_metadata` for the manifests.
//!
//! `cargo xtask test` is the whole CI (`.ci/run` runs exactly that): fmt,
//! clippy, tidy, every crate's tests alone, the workspace, doc tests, the
//! `polling` backend, the contract examples and the loom models (bounded).
//! It prints `==> <command>` before each step and stops at the first
//! failure.
//!
//! - `test.rs` holds the matrix and the step runner,
//! - `tidy.rs` the repository invariants (also run as `#[test]`s),
//! - `examples.rs` the checks of the contract examples (README and
//!   docs/testing.md, step 8),
//! - `bench.rs` the entry point of `cargo xtask bench`,
//! - `python.rs` the Python binding's CI steps and `cargo xtask
//!   python-conformance`.
//!
//! The workspace root is the parent of this crate's manifest directory, and
//! cargo is `$CARGO` (set by `cargo run`), falling back to the cargo that
//! built this binary.

#![forbid(unsafe_code)]

mod bench;
mod examples;
mod faults;
mod fuzz;
mod loom;
mod netem;
mod python;
mod soak;
mod test;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  test        the whole CI matrix (what .ci/run runs), stopping at the first failure:
                1. cargo fmt --all -- --check
                2. cargo clippy --workspace --all-targets -- -D warnings
                3. tidy (in-process, see `cargo xtask tidy`)
                4. cargo test -p <crate> --all-targets, for each crate alone
                5. cargo test --workspace --all-targets
                6. cargo test --workspace --doc, then
                   RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps
                7. the reactor, core, transports, facade and conformance tests
                   again with RUSTFLAGS='--cfg evloop_polling_backend'
                8. cargo build --release -p evloop --examples, then run the
                   contract examples and check their output exactly
                9. the loom models, bounded: RUSTFLAGS='--cfg loom'
                   LOOM_MAX_PREEMPTIONS=2 cargo test --release -p <crates>
                   --test loom_... (target/loom; see `cargo xtask loom`)
               10. the instruction-count check (cargo xtask bench --instructions --check)
               11. the Python binding: python/run-tests.sh (pip install ./python into
                   target/python-venv, then python/tests), then
                   cargo xtask python-conformance --check
  tidy        only step 3: every .rs file starts with //! docs; dependency arrows
              point down only; no placeholder macros or ignored tests;
              #![forbid(unsafe_code)] where promised
  examples    only step 8: build the release examples and check them
  bench       the echo benchmarks: evloop (Protocol and streams), tokio, raw epoll,
              asyncio and uvloop under one load generator, round-robin
              (`cargo xtask bench --help` for the options: --quick, --plot, ...)
  bench micro the micro benchmarks beside tokio, asyncio and uvloop
  bench --instructions
              callgrind instruction counts per operation beside tokio (needs valgrind);
              --check fails on a >10 % regression against bench/instructions-baseline.txt
  fuzz        coverage-guided fuzzing with cargo-fuzz (nightly; not part of `test`):
              [--time SECS] [TARGET], `cargo xtask fuzz --help` for the rest
  netem       lossy links (root only; skipped with a message elsewhere): echo_server and
              its clients in two network namespaces over a userspace netem link (delay,
              jitter, loss, duplication, reordering); TCP and TLS 64 MiB byte-exact, UDP
              loss counted, clean shutdown (`cargo xtask netem --help`)
  soak        `cargo xtask soak --minutes N`: echo_server under mixed load, RSS and fds
              sampled every second; fails on an upward trend or a differing byte
  faults      `cargo xtask faults --sessions N [--seed S]`: the fault-injection property
              test (tests/faults) with N seeded sessions (default 10000), in release
  loom        the loom models of every cross-thread path (waker, Remote queue, task
              wakes, blocking results, signals): [--preemptions N] [MODEL],
              `cargo xtask loom --help` for the list
  python-conformance
              CPython 3.11's own test.test_asyncio loop-generic tests against evloop's
              loop (or --loop uvloop|asyncio): passed / failed / errors / skipped per
              module; --check against python/conformance/expected.txt, --update to
              rewrite it (`cargo xtask python-conformance --help`)
  help        print this message (also: -h, --help, or `<command> --help`)
";

fn main() -> ExitCode {
    match parse_command(lexopt::Parser::from_env()) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(command, rest)) => run(&command, &rest),
        Err(message) => {
            eprintln!("xtask: {message}\n");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    /// A command and, for `bench`, `netem` and `soak`, its own arguments
    /// (they have their own help).
    Run(String, Vec<String>),
}

/// Reads `cargo xtask <command> [args]` with lexopt.
fn parse_command(mut parser: lexopt::Parser) -> Result<Command, String> {
    use lexopt::prelude::*;
    let command = match parser.next().map_err(|e| e.to_string())? {
        None => return Err("no command given".to_owned()),
        Some(Short('h') | Long("help")) => return Ok(Command::Help),
        Some(Value(command)) => command.string().map_err(|e| e.to_string())?,
        Some(other) => return Err(other.unexpected().to_string()),
    };
    match command.as_str() {
        "help" => Ok(Command::Help),
        "bench" | "faults" | "fuzz" | "loom" | "netem" | "python-conformance" | "soak" => {
            let rest = parser
                .raw_args()
                .map_err(|e| e.to_string())?
                .map(|a| a.into_string().map_err(|a| format!("not UTF-8: {a:?}")))
                .collect::<Result<_, _>>()?;
            Ok(Command::Run(command, rest))
        }
        "test" | "tidy" | "examples" => match parser.next().map_err(|e| e.to_string())? {
            None => Ok(Command::Run(command, Vec::new())),
            Some(Short('h') | Long("help")) => Ok(Command::Help),
            Some(other) => Err(format!(
                "`{command}` takes no arguments ({})",
                other.unexpected()
            )),
        },
        other => Err(format!("unknown command `{other}`")),
    }
}

fn run(command: &str, rest: &[String]) -> ExitCode {
    let root = workspace_root();
    let result = match command {
        "test" => test::run_steps(&test::matrix(&root)),
        "tidy" => test::run_steps(&[test::tidy_step(&root)]),
        "examples" => test::run_steps(&examples::steps(&root)),
        "loom" => loom::run(&root, rest),
        "netem" => netem::run(&root, rest),
        "soak" => soak::run(&root, rest),
        "faults" => faults::run(&root, rest),
        "fuzz" => fuzz::run(&root, rest),
        "python-conformance" => python::run(&root, rest),
        _ => bench::run(&root, rest),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo to run: `$CARGO` (set by `cargo run`), else the cargo that
/// built xtask.
pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_command(lexopt::Parser::from_args(args.iter().copied()))
    }

    #[test]
    fn command_lines() {
        let run = |c: &str, rest: &[&str]| {
            Command::Run(c.to_owned(), rest.iter().map(|a| (*a).to_owned()).collect())
        };
        assert_eq!(parse(&["tidy"]), Ok(run("tidy", &[])));
        assert_eq!(parse(&["help"]), Ok(Command::Help));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["test", "-h"]), Ok(Command::Help));
        assert_eq!(
            parse(&["bench", "--quick", "--help"]),
            Ok(run("bench", &["--quick", "--help"]))
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&["tidy", "extra"])
            .unwrap_err()
            .contains("takes no arguments"));
        assert!(parse(&["frobnicate"])
            .unwrap_err()
            .contains("unknown command"));
    }
}
