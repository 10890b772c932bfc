//! The Python binding (python/, issue 13) in the CI, and `cargo xtask
//! python-conformance`.
//!
//! Both build the package the way python/README.md says: a venv at
//! `target/python-venv` (`python3 -m venv`), then `pip install ./python`,
//! which fetches maturin from PyPI and builds the extension. The tests run
//! in that venv:
//!
//! - [`steps`] are the two steps of `cargo xtask test`: python/run-tests.sh
//!   (install, then every `python/tests/test_*.py`), and the conformance
//!   check (`python/conformance/run.py --check` on evloop's loop);
//! - [`run`] is `cargo xtask python-conformance [args]`: install (unless
//!   `--no-install`), install uvloop from PyPI when `--loop uvloop` asks
//!   for it, then run.py with the rest of the arguments.
//!
//! Every child runs under a watchdog: a hung test cannot hang the CI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::test::Step;

const USAGE: &str = "\
usage: cargo xtask python-conformance [--loop evloop|uvloop|asyncio] [--module NAME]...
                                      [--check] [--update] [--skip-pending]
                                      [--timeout SECS] [-v]
                                      [--native-streams] [--table] [--no-install]

  Runs CPython 3.11's own test.test_asyncio loop-generic test classes against a
  loop (default evloop), one module per child process, each test under a timeout
  (default 60 s), and prints passed / failed / errors / skipped / excluded per
  module. Results and tracebacks go to target/python-conformance/.

  --module NAME  one test_asyncio module (repeatable; default: all that have
                 loop-generic tests, see python/conformance/run.py)
  --check        fail on a failure not in python/conformance/expected.txt, or
                 on a listed test that passes
  --update       rewrite expected.txt from this run, keeping the reasons
  --skip-pending leave out the tests expected.txt marks `pending:` (quicker)
  --native-streams  call evloop.use_native_streams() first, so that asyncio's
                 open_connection & co. give evloop's native streams; checked
                 against python/conformance/expected-native-streams.txt
  --table        print docs/python.md's table from the saved results
  --no-install   use the venv as it is (no `pip install ./python`)

  The package is built first: target/python-venv (python3 -m venv), then
  `pip install ./python` (maturin from PyPI); `--loop uvloop` also installs
  uvloop from PyPI.";

/// How long python/run-tests.sh may take before it is killed.
const TESTS_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// How long one conformance run may take before it is killed (run.py
/// itself ends each hung test after its per-test timeout).
const CONFORMANCE_DEADLINE: Duration = Duration::from_secs(60 * 60);

/// The modules the CI checks with native streams: those that open streams
/// through `asyncio.open_connection` & co. (test_ssl too, but its two
/// internals failures each wait out a 30 s peer timeout: run it by hand).
const NATIVE_STREAMS_MODULES: &str = "--module test_streams --module test_server";

/// The per-test timeout of the CI's conformance check, in seconds.
const CI_TEST_TIMEOUT: &str = "20";

/// The venv the package is installed into (python/README.md).
fn venv(root: &Path) -> PathBuf {
    root.join("target").join("python-venv")
}

fn venv_python(root: &Path) -> PathBuf {
    venv(root).join("bin").join("python")
}

/// The CI's steps: the binding's own tests, the conformance check, and
/// the stream modules' conformance with `evloop.use_native_streams()`.
pub(crate) fn steps(root: &Path) -> Vec<Step> {
    let tests_root = root.to_path_buf();
    let check_root = root.to_path_buf();
    let streams_root = root.to_path_buf();
    vec![
        Step::in_process(
            "bash python/run-tests.sh (pip install ./python into target/python-venv; \
             python/tests)",
            move || run_tests(&tests_root),
        ),
        Step::in_process(
            format!(
                "cargo xtask python-conformance --no-install --check --timeout {CI_TEST_TIMEOUT}"
            ),
            move || {
                let args = ["--no-install", "--check", "--timeout", CI_TEST_TIMEOUT];
                run(&check_root, &args.map(str::to_owned))
            },
        ),
        Step::in_process(
            format!(
                "cargo xtask python-conformance --no-install --check --native-streams \
                 {NATIVE_STREAMS_MODULES} --timeout {CI_TEST_TIMEOUT}"
            ),
            move || {
                let mut args = vec!["--no-install", "--check", "--native-streams"];
                args.extend(NATIVE_STREAMS_MODULES.split(' '));
                args.extend(["--timeout", CI_TEST_TIMEOUT]);
                let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
                run(&streams_root, &args)
            },
        ),
    ]
}

/// python/run-tests.sh: makes the venv, installs the package, runs its
/// tests.
fn run_tests(root: &Path) -> Result<(), String> {
    let mut command = Command::new("bash");
    command.arg(root.join("python").join("run-tests.sh"));
    run_with_deadline(command, TESTS_DEADLINE)
}

/// `cargo xtask python-conformance [args]`.
///
/// # Errors
///
/// A bad command line, a failed install, or run.py's failure (with
/// `--check`: a test that fails unexpectedly or passes unexpectedly).
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let Some(options) = parse_options(args).map_err(|e| format!("{e}\n\n{USAGE}"))? else {
        println!("{USAGE}");
        return Ok(());
    };
    if options.install {
        install(root)?;
    }
    if !venv_python(root).is_file() {
        return Err(format!(
            "no venv at {}: run without --no-install (or python/run-tests.sh) first",
            venv(root).display()
        ));
    }
    if options.uvloop {
        install_uvloop(root)?;
    }
    let script = root.join("python").join("conformance").join("run.py");
    let mut command = Command::new(venv_python(root));
    command.arg(&script).args(&options.rest);
    println!(
        "==> {} {} {}",
        venv_python(root).display(),
        script.display(),
        options.rest.join(" ")
    );
    run_with_deadline(command, CONFORMANCE_DEADLINE)
}

/// What the command line asks of xtask; the rest goes to run.py.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    install: bool,
    uvloop: bool,
    rest: Vec<String>,
}

/// Reads the arguments: `--no-install` is xtask's, `--loop uvloop` needs
/// uvloop installed, every argument but `--no-install` goes to run.py
/// (which checks them).
fn parse_options(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options {
        install: true,
        uvloop: false,
        rest: Vec::new(),
    };
    let mut words = args.iter().peekable();
    while let Some(word) = words.next() {
        match word.as_str() {
            "-h" | "--help" => return Ok(None),
            "--no-install" => options.install = false,
            "--loop" => {
                let value = words.next().ok_or("--loop needs a value")?;
                options.uvloop |= value == "uvloop";
                options.rest.extend([word.clone(), value.clone()]);
            }
            other => {
                if let Some(value) = other.strip_prefix("--loop=") {
                    options.uvloop |= value == "uvloop";
                }
                options.rest.push(word.clone());
            }
        }
    }
    Ok(Some(options))
}

/// Makes the venv if it is missing, then `pip install ./python`.
fn install(root: &Path) -> Result<(), String> {
    if !venv_python(root).is_file() {
        println!("==> python3 -m venv {}", venv(root).display());
        let mut command = Command::new("python3");
        command.args(["-m", "venv"]).arg(venv(root));
        run_with_deadline(command, Duration::from_secs(120)).map_err(|e| {
            format!("{e}\n(on Debian the venv module is apt-get install python3-venv)")
        })?;
    }
    pip_install(root, &[root.join("python").display().to_string()])
}

/// uvloop from PyPI, the reference loop of the conformance table.
fn install_uvloop(root: &Path) -> Result<(), String> {
    let present = Command::new(venv_python(root))
        .args(["-c", "import uvloop"])
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    pip_install(root, &["uvloop".to_owned()])
}

fn pip_install(root: &Path, what: &[String]) -> Result<(), String> {
    println!("==> pip install {}", what.join(" "));
    let mut command = Command::new(venv_python(root));
    command
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(what);
    run_with_deadline(command, Duration::from_secs(30 * 60))
}

/// Runs `command` (output inherited), killing it after `deadline`.
fn run_with_deadline(mut command: Command, deadline: Duration) -> Result<(), String> {
    let shown = format!("{command:?}");
    let mut child = command
        .spawn()
        .map_err(|e| format!("could not run {shown}: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{shown} exited with {status}")),
            Ok(None) if start.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{shown} did not finish within {} s: killed",
                    deadline.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for {shown}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<Options> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        parse_options(&args).expect("parses")
    }

    #[test]
    fn arguments_pass_through_but_no_install() {
        let options = parse(&["--no-install", "--check", "--module", "test_events"]).unwrap();
        assert!(!options.install);
        assert!(!options.uvloop);
        assert_eq!(options.rest, ["--check", "--module", "test_events"]);
    }

    #[test]
    fn uvloop_is_installed_when_asked_for() {
        assert!(parse(&["--loop", "uvloop"]).unwrap().uvloop);
        assert!(parse(&["--loop=uvloop"]).unwrap().uvloop);
        assert!(!parse(&["--loop", "asyncio"]).unwrap().uvloop);
        assert!(parse(&["--help"]).is_none());
        assert!(parse_options(&["--loop".to_owned()]).is_err());
    }
}
