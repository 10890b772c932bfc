//! `cargo xtask`: evloop's project automation, in std-only Rust.
//!
//! `cargo xtask test` is the whole CI (`.ci/run` runs exactly that): fmt,
//! clippy, tidy, every crate's tests alone, the workspace, doc tests, the
//! `polling` backend, and the contract examples. It prints `==> <command>`
//! before each step and stops at the first failure.
//!
//! - `test.rs` holds the matrix and the step runner,
//! - `tidy.rs` the repository invariants (also run as `#[test]`s),
//! - `examples.rs` the checks of the contract examples (DESIGN.md "Examples"),
//! - `bench.rs` the entry point of `cargo xtask bench`.
//!
//! The workspace root is the parent of this crate's manifest directory, and
//! cargo is `$CARGO` (set by `cargo run`), falling back to the cargo that
//! built this binary.

#![forbid(unsafe_code)]

mod bench;
mod examples;
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
  tidy        only step 3: every .rs file starts with //! docs; dependency arrows
              point down only; no placeholder macros or ignored tests;
              #![forbid(unsafe_code)] where promised
  examples    only step 8: build the release examples and check them
  bench       the echo benchmarks: evloop (Protocol and streams), tokio, raw epoll,
              asyncio and uvloop under one load generator, round-robin
              (`cargo xtask bench --help` for the options: --quick, --plot, ...)
  bench micro the micro benchmarks beside tokio, asyncio and uvloop
  help        print this message (also: -h, --help, or `<command> --help`)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `bench` has its own options and help.
    let wants_help = args.first().is_some_and(|c| c != "bench")
        && args.iter().any(|a| a == "-h" || a == "--help");
    let Some(command) = args.first().map(String::as_str) else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    if wants_help || command == "help" {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let rest = &args[1..];
    let root = workspace_root();
    let result = match command {
        "test" | "tidy" | "examples" if !rest.is_empty() => {
            eprintln!("xtask: `{command}` takes no arguments (got {rest:?})\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
        "test" => test::run_steps(&test::matrix(&root)),
        "tidy" => test::run_steps(&[test::tidy_step(&root)]),
        "examples" => test::run_steps(&examples::steps(&root)),
        "bench" => bench::run(&root, rest),
        other => {
            eprintln!("xtask: unknown command `{other}`\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
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
