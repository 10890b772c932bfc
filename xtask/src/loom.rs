//! `cargo xtask loom [--preemptions N] [MODEL]`: the loom models of every
//! cross-thread path (issue 11), and the bounded run that `cargo xtask
//! test` makes of them (step 9).
//!
//! The models are the `tests/loom_*.rs` files of the crates below; each is
//! empty unless built with `--cfg loom`, which swaps the crates' atomics,
//! locks and thread ids for loom's (their `sync` modules) and the reactor's
//! backend for one whose eventfd is a counter and whose blocking wait is a
//! loom condition variable. They build in release under `target/loom`, so
//! the normal build is not invalidated. Each model prints the number of
//! interleavings it explored and the time it took.

use std::path::Path;

use lexopt::Arg::{Long, Short, Value};
use lexopt::ValueExt;

use crate::test::Step;

/// The model files, by package.
pub(crate) const MODELS: &[(&str, &str)] = &[
    ("evloop-reactor", "loom_waker"),
    ("evloop-core", "loom_remote"),
    ("evloop-core", "loom_task_wake"),
    ("evloop-executor", "loom_blocking"),
    ("evloop-signals", "loom_signals"),
];

/// The preemption bound of `cargo xtask loom` (loom's
/// `LOOM_MAX_PREEMPTIONS`).
const DEFAULT_PREEMPTIONS: u32 = 3;

/// The bound of the CI step: every model, in well under two minutes on
/// the CI machine (2 cores), build included.
pub(crate) const CI_PREEMPTIONS: u32 = 2;

const USAGE: &str = "\
usage: cargo xtask loom [--preemptions N] [MODEL]

  Runs the loom models (tests/loom_*.rs) in release with RUSTFLAGS='--cfg loom'
  and CARGO_TARGET_DIR=target/loom, exploring every interleaving with at most
  N preemptions (LOOM_MAX_PREEMPTIONS, default 3; `cargo xtask test` runs them
  with 2). MODEL is one of the files, with or without its `loom_` prefix:
    waker        evloop-reactor: the waker's \"write the eventfd only when
                 sleeping\" protocol
    remote       evloop-core: the Remote queue and its wake (post vs sleep,
                 post vs close)
    task_wake    evloop-core: task wakes from other threads (graveyard after
                 close, run_until_complete)
    blocking     evloop-executor: hand-back of blocking results
    signals      evloop-signals: the signal table (handler vs sleep, vs
                 release + quiesce)
  Each model prints how many interleavings it explored and how long it took.";

/// The step that runs `models` (all of them if empty) with `preemptions`.
pub(crate) fn step(root: &Path, preemptions: u32, models: &[(&str, &str)]) -> Step {
    let models = if models.is_empty() { MODELS } else { models };
    let mut args = vec!["test", "--release"];
    let mut packages: Vec<&str> = Vec::new();
    for (package, _) in models {
        if !packages.contains(package) {
            packages.push(package);
        }
    }
    for package in &packages {
        args.extend(["-p", package]);
    }
    for (_, target) in models {
        args.extend(["--test", target]);
    }
    args.extend(["--", "--nocapture"]);
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{} --cfg loom", flags.trim()),
        _ => "--cfg loom".to_owned(),
    };
    let target_dir = root.join("target").join("loom");
    Step::cargo_with_env(
        root,
        &[
            ("RUSTFLAGS", rustflags),
            ("CARGO_TARGET_DIR", target_dir.display().to_string()),
            ("LOOM_MAX_PREEMPTIONS", preemptions.to_string()),
        ],
        &args,
    )
}

/// What the command line asks for: the bound and the models.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    preemptions: u32,
    models: Vec<(&'static str, &'static str)>,
}

/// `None` for `--help`.
fn parse_options(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options {
        preemptions: DEFAULT_PREEMPTIONS,
        models: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("help") | Short('h') => return Ok(None),
            Long("preemptions") => {
                let value = parser
                    .value()
                    .map_err(|e| e.to_string())?
                    .string()
                    .map_err(|v| format!("not UTF-8: {v:?}"))?;
                options.preemptions = value
                    .parse()
                    .map_err(|_| format!("--preemptions: not a number: {value:?}"))?;
            }
            Value(name) => {
                let name = name.string().map_err(|v| format!("not UTF-8: {v:?}"))?;
                let target = if name.starts_with("loom_") {
                    name.clone()
                } else {
                    format!("loom_{name}")
                };
                let model = MODELS
                    .iter()
                    .find(|(_, t)| *t == target)
                    .ok_or_else(|| format!("no loom model `{name}`"))?;
                if !options.models.contains(model) {
                    options.models.push(*model);
                }
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Some(options))
}

/// Runs the command.
///
/// # Errors
///
/// A bad command line, or a failing model.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let Some(options) = parse_options(args).map_err(|e| format!("{e}\n\n{USAGE}"))? else {
        println!("{USAGE}");
        return Ok(());
    };
    crate::test::run_steps(&[step(root, options.preemptions, &options.models)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        parse_options(&args)
    }

    #[test]
    fn command_lines() {
        let all = parse(&[]).unwrap().unwrap();
        assert_eq!(all.preemptions, DEFAULT_PREEMPTIONS);
        assert!(all.models.is_empty());
        let one = parse(&["--preemptions", "2", "remote"]).unwrap().unwrap();
        assert_eq!(one.preemptions, 2);
        assert_eq!(one.models, [("evloop-core", "loom_remote")]);
        let prefixed = parse(&["loom_waker", "waker"]).unwrap().unwrap();
        assert_eq!(prefixed.models, [("evloop-reactor", "loom_waker")]);
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["nothing"]).unwrap_err().contains("no loom model"));
        assert!(parse(&["--preemptions", "x"])
            .unwrap_err()
            .contains("not a number"));
    }

    #[test]
    fn every_model_file_exists() {
        let root = crate::workspace_root();
        for (package, target) in MODELS {
            let file = root
                .join("crates")
                .join(package)
                .join("tests")
                .join(format!("{target}.rs"));
            assert!(file.is_file(), "{} is missing", file.display());
        }
    }

    #[test]
    fn step_reads_like_the_command() {
        let step = step(Path::new("/ws"), 2, &[("evloop-core", "loom_remote")]);
        assert!(
            step.label.contains("LOOM_MAX_PREEMPTIONS=2"),
            "{}",
            step.label
        );
        assert!(
            step.label.contains("CARGO_TARGET_DIR=/ws/target/loom"),
            "{}",
            step.label
        );
        assert!(
            step.label
                .ends_with("cargo test --release -p evloop-core --test loom_remote -- --nocapture"),
            "{}",
            step.label
        );
    }
}
