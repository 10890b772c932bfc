//! The `cargo xtask test` matrix and the step runner.
//!
//! Each [`Step`] is either a cargo command (run from the workspace root,
//! output inherited) or an in-process check (tidy, the examples). The runner
//! prints `==> <command>` before each step, stops at the first failure with
//! `xtask: step failed: <command>`, and on success ends with
//! `xtask: all N steps passed` and a plain `N passed, 0 failed` line.
//!
//! Why each step is there is written down in docs/testing.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, examples, loom, python, tidy};

/// The library crates, bottom-up, each tested alone (`-p X`) when its
/// directory `crates/X` exists; testing alone catches features and
/// dev-dependencies that workspace-wide feature unification would hide.
pub(crate) const CRATES: &[&str] = &[
    "evloop-reactor",
    "evloop-timers",
    "evloop-executor",
    "evloop-core",
    "evloop-signals",
    "evloop-transports",
    "evloop-tls",
    "evloop-process",
    "evloop",
];

/// The crates whose tests run again over the portable `polling` backend.
const POLLING_BACKEND_CRATES: &[&str] = &[
    "evloop-reactor",
    "evloop-core",
    "evloop-transports",
    "evloop",
    "evloop-conformance",
];

/// The cfg that selects the portable `polling` backend on Linux.
const POLLING_BACKEND_CFG: &str = "--cfg evloop_polling_backend";

/// One step of the matrix.
pub(crate) struct Step {
    /// What is printed after `==>` and in `xtask: step failed: ...`.
    pub(crate) label: String,
    action: Action,
}

enum Action {
    /// `cargo <args>` from `dir`, with extra environment variables.
    Cargo {
        dir: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
    /// A check run inside this process.
    InProcess(Box<dyn Fn() -> Result<(), String>>),
}

impl Step {
    /// `cargo <args>` run from `root`.
    pub(crate) fn cargo(root: &Path, args: &[&str]) -> Step {
        Step::cargo_with_env(root, &[], args)
    }

    /// `cargo <args>` run from `root` with extra environment variables.
    pub(crate) fn cargo_with_env(root: &Path, env: &[(&str, String)], args: &[&str]) -> Step {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let mut words: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        words.push("cargo".to_owned());
        words.extend(args.iter().map(|a| shell_quote(a)));
        Step {
            label: words.join(" "),
            action: Action::Cargo {
                dir: root.to_path_buf(),
                args,
                env,
            },
        }
    }

    /// A check run in-process; `label` is what gets printed after `==>`.
    pub(crate) fn in_process(
        label: impl Into<String>,
        check: impl Fn() -> Result<(), String> + 'static,
    ) -> Step {
        Step {
            label: label.into(),
            action: Action::InProcess(Box::new(check)),
        }
    }

    fn run(&self) -> Result<(), String> {
        match &self.action {
            Action::Cargo { dir, args, env } => {
                let program = cargo();
                let status = Command::new(&program)
                    .args(args)
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .current_dir(dir)
                    .status()
                    .map_err(|e| format!("could not run `{program}`: {e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("cargo exited with {status}"))
                }
            }
            Action::InProcess(check) => check(),
        }
    }
}

/// Runs `steps` in order, stopping at the first failure.
///
/// # Errors
///
/// The text to print last when a step fails: `xtask: step failed: <command>`
/// and the `K passed, 1 failed` count line.
pub(crate) fn run_steps(steps: &[Step]) -> Result<(), String> {
    let skips = SkipLog::start();
    let total = steps.len();
    for (done, step) in steps.iter().enumerate() {
        println!("==> {}", step.label);
        if let Err(detail) = step.run() {
            eprintln!("{detail}");
            skips.report();
            return Err(format!(
                "xtask: step failed: {}\n{done} passed, 1 failed",
                step.label
            ));
        }
    }
    let skipped = skips.report();
    println!("xtask: all {total} steps passed");
    println!("{total} passed, 0 failed, {skipped} skipped");
    Ok(())
}

/// The environment variable naming the file where a test that skips part
/// of itself writes one line saying what and why (tests announce skips;
/// none passes by skipping silently).
pub(crate) const SKIP_LOG_ENV: &str = "EVLOOP_SKIP_LOG";

/// The skip log of one `run_steps`: a fresh file every cargo step inherits
/// through [`SKIP_LOG_ENV`], read back at the end.
struct SkipLog(PathBuf);

impl SkipLog {
    fn start() -> SkipLog {
        let path =
            std::env::temp_dir().join(format!("evloop-xtask-skips-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::env::set_var(SKIP_LOG_ENV, &path);
        SkipLog(path)
    }

    /// Prints every skip the tests announced; returns how many.
    fn report(&self) -> usize {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        for line in &lines {
            println!("xtask: skipped: {line}");
        }
        lines.len()
    }
}

impl Drop for SkipLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The programs the tests use as real peers, checked before anything is
/// built, with a message that says how to get them.
pub(crate) const PREREQUISITES: &[(&str, &[&str], &str)] = &[
    (
        "python3",
        &["--version"],
        "CPython's asyncio and ssl are the interop tests' peers",
    ),
    (
        "openssl",
        &["version"],
        "s_client/s_server are the TLS interop tests' peers and make the examples' certificates",
    ),
    (
        "valgrind",
        &["--version"],
        "callgrind counts the loop's instructions per operation for the regression check",
    ),
    (
        "python3",
        &["-c", "import ensurepip, venv, test.test_asyncio.utils"],
        "the venv module (python3-venv) builds the Python binding's venv, and CPython's \
         test package (libpython3.11-testsuite) is its conformance suite",
    ),
];

fn prerequisites_step() -> Step {
    Step::in_process(
        "prerequisites: python3 (venv, test), openssl, valgrind",
        || {
            let missing: Vec<String> = PREREQUISITES
                .iter()
                .filter(|(program, args, _)| {
                    !Command::new(program)
                        .args(*args)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
                .map(|(program, _, why)| format!("  {program}: {why}"))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            Err(format!(
                "cargo xtask test needs these programs (apt-get install python3 python3-venv \
             libpython3.11-testsuite openssl valgrind; .ci/run installs them):\n{}",
                missing.join("\n")
            ))
        },
    )
}

/// The tidy step (step 4), run in-process.
pub(crate) fn tidy_step(root: &Path) -> Step {
    let root = root.to_path_buf();
    Step::in_process(
        "tidy: //! docs, layering, no placeholders or ignored tests, forbid(unsafe_code)",
        move || tidy::run(&root),
    )
}

/// The whole matrix, in order (see docs/testing.md).
pub(crate) fn matrix(root: &Path) -> Vec<Step> {
    let mut steps = vec![
        prerequisites_step(),
        Step::cargo(root, &["fmt", "--all", "--", "--check"]),
        Step::cargo(
            root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        tidy_step(root),
    ];
    for krate in existing_crates(root, CRATES) {
        steps.push(Step::cargo(root, &["test", "-p", krate, "--all-targets"]));
    }
    steps.push(Step::cargo(root, &["test", "--workspace", "--all-targets"]));
    steps.push(Step::cargo(root, &["test", "--workspace", "--doc"]));
    // Broken intra-doc links and malformed docs fail here, not on docs.rs.
    steps.push(Step::cargo_with_env(
        root,
        &[("RUSTDOCFLAGS", "-D warnings".to_owned())],
        &["doc", "--workspace", "--no-deps"],
    ));
    let polling = existing_crates(root, POLLING_BACKEND_CRATES);
    if !polling.is_empty() {
        let mut args = vec!["test"];
        for krate in &polling {
            args.extend(["-p", krate]);
        }
        args.push("--all-targets");
        let target_dir = root.join("target").join("polling-backend");
        steps.push(Step::cargo_with_env(
            root,
            &[
                ("RUSTFLAGS", polling_rustflags()),
                ("CARGO_TARGET_DIR", target_dir.display().to_string()),
            ],
            &args,
        ));
    }
    steps.extend(examples::steps(root));
    // Step 9: every loom model, with a bound that keeps the step short.
    steps.push(loom::step(root, loom::CI_PREEMPTIONS, &[]));
    steps.push(instructions_step(root));
    // Step 11: the Python binding, built as its README says, and CPython's
    // own asyncio tests against it.
    steps.extend(python::steps(root));
    steps
}

/// The instruction-count regression check (callgrind, evloop's figures
/// against bench/instructions-baseline.txt, +10 % fails): noise-free, so a
/// shared CI machine can gate on it where it cannot gate on timings.
fn instructions_step(root: &Path) -> Step {
    const ARGS: [&str; 3] = ["--instructions", "--check", "--evloop-only"];
    let root = root.to_path_buf();
    Step::in_process(format!("cargo xtask bench {}", ARGS.join(" ")), move || {
        let args: Vec<String> = ARGS.iter().map(|a| (*a).to_owned()).collect();
        crate::bench::run(&root, &args)
    })
}

/// `RUSTFLAGS` for the polling-backend step: the caller's flags, if any,
/// plus the backend cfg.
fn polling_rustflags() -> String {
    match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{} {POLLING_BACKEND_CFG}", flags.trim()),
        _ => POLLING_BACKEND_CFG.to_owned(),
    }
}

/// The packages of `names` whose directory exists: `crates/<name>/Cargo.toml`.
fn existing_crates<'a>(root: &Path, names: &[&'a str]) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|name| package_dir(root, name).join("Cargo.toml").is_file())
        .collect()
}

/// Where package `name` lives: `crates/<name>`, except the conformance
/// suite, which is `tests/`.
fn package_dir(root: &Path, name: &str) -> PathBuf {
    if name == "evloop-conformance" {
        root.join("tests")
    } else {
        root.join("crates").join(name)
    }
}

/// Quotes `word` for display the way a POSIX shell would need it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_like_the_commands() {
        let root = Path::new("/ws");
        let step = Step::cargo(root, &["fmt", "--all", "--", "--check"]);
        assert_eq!(step.label, "cargo fmt --all -- --check");
        let step = Step::cargo_with_env(
            root,
            &[("RUSTFLAGS", "--cfg evloop_polling_backend".to_owned())],
            &["test", "-p", "evloop"],
        );
        assert_eq!(
            step.label,
            "RUSTFLAGS='--cfg evloop_polling_backend' cargo test -p evloop"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a-b_c/d.e"), "a-b_c/d.e");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn matrix_starts_with_fmt_clippy_tidy_in_that_order() {
        let steps = matrix(&crate::workspace_root());
        let labels: Vec<&str> = steps.iter().map(|s| s.label.as_str()).collect();
        assert!(labels[0].starts_with("prerequisites"));
        assert_eq!(labels[1], "cargo fmt --all -- --check");
        assert_eq!(
            labels[2],
            "cargo clippy --workspace --all-targets -- -D warnings"
        );
        assert!(labels[3].starts_with("tidy"));
        let workspace = labels
            .iter()
            .position(|l| *l == "cargo test --workspace --all-targets")
            .expect("workspace step");
        let doc = labels
            .iter()
            .position(|l| *l == "cargo test --workspace --doc")
            .expect("doc step");
        assert!(workspace < doc);
        for (i, label) in labels.iter().enumerate() {
            if label.starts_with("cargo test -p ") {
                assert!(i > 2 && i < workspace, "{label} runs before the workspace");
            }
        }
    }
}
