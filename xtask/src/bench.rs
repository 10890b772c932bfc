//! `cargo xtask bench`: runs the benchmarks.
//!
//! For now this runs `cargo bench -p evloop-bench` when the benchmark package
//! (`bench/micro/Cargo.toml`) exists, passing any further arguments on after
//! `--`. The full round-robin comparison against tokio, asyncio and uvloop
//! (DESIGN.md "Benchmarks") is to be written here.

use std::path::Path;
use std::process::Command;

use crate::cargo;

/// The benchmark package's manifest, relative to the workspace root.
const BENCH_MANIFEST: &str = "bench/micro/Cargo.toml";

/// Runs the benchmarks of the workspace at `root`.
///
/// # Errors
///
/// When no benchmarks are defined yet, or `cargo bench` fails.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    if !root.join(BENCH_MANIFEST).is_file() {
        return Err(format!(
            "xtask: no benchmarks are defined yet ({BENCH_MANIFEST} does not exist; \
             see DESIGN.md \"Benchmarks\")"
        ));
    }
    let mut command = Command::new(cargo());
    command
        .args(["bench", "-p", "evloop-bench"])
        .current_dir(root);
    if !args.is_empty() {
        command.arg("--").args(args);
    }
    println!("==> cargo bench -p evloop-bench{}", shown_args(args));
    let status = command
        .status()
        .map_err(|e| format!("xtask: could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "xtask: step failed: cargo bench -p evloop-bench{} ({status})",
            shown_args(args)
        ))
    }
}

fn shown_args(args: &[String]) -> String {
    if args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", args.join(" "))
    }
}
