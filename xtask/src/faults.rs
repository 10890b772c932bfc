//! `cargo xtask faults --sessions N [--seed S] [--session SEED]`: the
//! fault-injection property test (tests/faults, issue 11) with as many
//! seeded sessions as asked, in release.
//!
//! It runs `cargo test --release -p evloop-fault-tests --test faults` on
//! the one property test, passing the figures through the environment
//! (`EVLOOP_FAULT_SESSIONS`, `EVLOOP_FAULT_RUN_SEED`, `EVLOOP_FAULT_SEED`,
//! `EVLOOP_FAULT_CONCURRENCY`); the test prints the run's figures (sessions
//! by kind and ending, faults injected by op and kind, time) and fails
//! with the seed of every failing session.

use std::path::Path;
use std::process::Command;

use lexopt::prelude::ValueExt;
use lexopt::Arg::Long;

use crate::cargo;

const USAGE: &str = "\
usage: cargo xtask faults [--sessions N] [--seed S] [--session SEED] [--concurrency C]

  Runs N seeded sessions (default 10000) of the fault-injection property
  test (tests/faults) in release: TCP, buffered TCP, streams, TLS, unix,
  pipes, subprocess pipes and UDP echo sessions, C at a time on one loop
  (default 8), with EAGAIN, EINTR, short counts, ECONNRESET, EPIPE, ENOBUFS,
  EMFILE, ECONNABORTED and ECONNREFUSED injected into the transports'
  syscalls. --seed sets the run's seed (the sessions' seeds derive from
  it); --session reruns the one session with that seed (printed by a
  failure). Prints the figures; fails if any session or the run fails.";

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    sessions: Option<String>,
    seed: Option<String>,
    session: Option<String>,
    concurrency: Option<String>,
}

fn parse_options(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let slot = match arg {
            Long("help") | lexopt::Arg::Short('h') => return Ok(None),
            Long("sessions") => &mut options.sessions,
            Long("seed") => &mut options.seed,
            Long("session") => &mut options.session,
            Long("concurrency") => &mut options.concurrency,
            other => return Err(other.unexpected().to_string()),
        };
        let value = parser
            .value()
            .map_err(|e| e.to_string())?
            .string()
            .map_err(|v| format!("not UTF-8: {v:?}"))?;
        if !is_number(&value) {
            return Err(format!("not a number: {value:?}"));
        }
        *slot = Some(value);
    }
    Ok(Some(options))
}

/// A decimal or `0x` hexadecimal number (as the test reads them).
fn is_number(text: &str) -> bool {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).is_ok(),
        None => text.parse::<u64>().is_ok(),
    }
}

/// Runs the command.
///
/// # Errors
///
/// A bad command line, or the test's failure.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let Some(options) = parse_options(args).map_err(|e| format!("{e}\n\n{USAGE}"))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let mut command = Command::new(cargo());
    command.current_dir(root).args([
        "test",
        "--release",
        "-p",
        "evloop-fault-tests",
        "--test",
        "faults",
        "--",
        "--exact",
        "fault_injection_seeded_sessions",
        "--nocapture",
    ]);
    command.env(
        "EVLOOP_FAULT_SESSIONS",
        options.sessions.as_deref().unwrap_or("10000"),
    );
    for (var, value) in [
        ("EVLOOP_FAULT_RUN_SEED", &options.seed),
        ("EVLOOP_FAULT_SEED", &options.session),
        ("EVLOOP_FAULT_CONCURRENCY", &options.concurrency),
    ] {
        if let Some(value) = value {
            command.env(var, value);
        }
    }
    println!("==> {command:?}");
    let status = command
        .status()
        .map_err(|e| format!("running cargo test: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the fault-injection run failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        parse_options(&args)
    }

    #[test]
    fn faults_command_line() {
        assert_eq!(parse(&[]), Ok(Some(Options::default())));
        let parsed = parse(&["--sessions", "10000", "--seed", "0x2a"])
            .unwrap()
            .unwrap();
        assert_eq!(parsed.sessions.as_deref(), Some("10000"));
        assert_eq!(parsed.seed.as_deref(), Some("0x2a"));
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["--sessions", "many"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
    }
}
