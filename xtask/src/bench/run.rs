//! Running one echo measurement: start a server, read where it listens,
//! drive it with the load generator, sample its CPU time and peak RSS from
//! `/proc` around the counted window, stop it with SIGINT; and the same with
//! `strace -c` attached, for the syscall count.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use super::parse::{self, Listening, LoadReport, StraceSummary};

/// How long a server may take to print its `listening on` line (Python
/// imports uvloop first).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The transport of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Transport {
    Tcp,
    Unix,
}

impl Transport {
    /// The transport as the tables and `==>` lines name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

/// A server to measure: a name and how to start it (listener flags are
/// appended).
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
}

/// One load run's parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) transport: Transport,
    pub(crate) size: usize,
    pub(crate) conns: usize,
    pub(crate) warmup: f64,
    pub(crate) duration: f64,
}

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) load: LoadReport,
    /// Server CPU time (all threads, user + system) in the counted window.
    pub(crate) server_cpu_s: f64,
    /// Peak resident set size, KiB.
    pub(crate) rss_kib: Option<u64>,
}

impl Sample {
    /// Server CPU microseconds per request.
    pub(crate) fn cpu_us_per_request(&self) -> f64 {
        if self.load.requests == 0 {
            return f64::NAN;
        }
        #[allow(clippy::cast_precision_loss)]
        let requests = self.load.requests as f64;
        self.server_cpu_s * 1e6 / requests
    }
}

/// A failed run: `fatal` when the server could not even start (its other
/// runs are skipped).
#[derive(Debug, Clone)]
pub(crate) struct RunError {
    pub(crate) message: String,
    pub(crate) fatal: bool,
}

impl RunError {
    fn fatal(message: String) -> RunError {
        RunError {
            message,
            fatal: true,
        }
    }

    fn run(message: String) -> RunError {
        RunError {
            message,
            fatal: false,
        }
    }
}

/// Paths shared by every run.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub(crate) loadgen: PathBuf,
    /// Extra load generator arguments for every run (`--tls ...`).
    pub(crate) loadgen_args: Vec<String>,
    /// Unix sockets and server logs go here.
    pub(crate) work_dir: PathBuf,
    /// CPUs (a `taskset -c` list) for the server and for the load
    /// generator; `None` leaves placement to the scheduler.
    pub(crate) pin: Option<Pin>,
}

impl Env {
    /// The load generator of `target_dir`'s release build in its
    /// `--discard` mode (echoed bytes dropped in the kernel), unpinned,
    /// working in `target_dir/dir` (created).
    ///
    /// # Errors
    ///
    /// The directory cannot be created.
    pub(crate) fn discarding(target_dir: &Path, dir: &str) -> Result<Env, String> {
        let work_dir = target_dir.join(dir);
        fs::create_dir_all(&work_dir).map_err(|e| format!("{}: {e}", work_dir.display()))?;
        Ok(Env {
            loadgen: target_dir.join("release/evloop-loadgen"),
            loadgen_args: vec!["--discard".to_owned()],
            work_dir,
            pin: None,
        })
    }
}

/// Where the server and the load generator run (`taskset -c` lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pin {
    pub(crate) server: String,
    pub(crate) client: String,
}

/// The servers of `names` to measure: `command` gives each one's program
/// and arguments (`None`: not built, already in `skipped`), and a program
/// that does not exist joins `skipped`. Every skip is announced as `tool`;
/// no server at all is an error.
pub(crate) fn servers(
    tool: &str,
    names: &[&'static str],
    skipped: &mut Vec<String>,
    command: impl Fn(&'static str) -> Option<(PathBuf, Vec<String>)>,
) -> Result<Vec<Server>, String> {
    let mut servers = Vec::new();
    for &name in names {
        let Some((program, args)) = command(name) else {
            continue;
        };
        if program.is_file() {
            servers.push(Server {
                name,
                program,
                args,
            });
        } else {
            skipped.push(format!("{name}: {} does not exist", program.display()));
        }
    }
    for s in skipped.iter() {
        println!("{tool}: skipping {s}");
    }
    if servers.is_empty() {
        return Err(format!("{tool}: no server to measure"));
    }
    Ok(servers)
}

/// The arguments of `bench/python/echo_server.py` on loop `name` (after
/// the venv's python).
pub(crate) fn python_echo_args(root: &Path, name: &str) -> Vec<String> {
    let script = root.join("bench/python/echo_server.py");
    let script = script.display().to_string();
    vec![script, "--loop".to_owned(), name.to_owned()]
}

/// Those of `servers` named in `names` (a comparison's subset), in the
/// order they run.
pub(crate) fn among(servers: &[Server], names: &[&str]) -> Vec<Server> {
    servers
        .iter()
        .filter(|s| names.contains(&s.name))
        .cloned()
        .collect()
}

/// Those of `names` that are among `servers`, in the order of `names`:
/// a table's rows.
pub(crate) fn present(names: &[&'static str], servers: &[Server]) -> Vec<&'static str> {
    let measured = |n: &&str| servers.iter().any(|s| s.name == *n);
    names.iter().copied().filter(measured).collect()
}

/// `text` as a [`Pin`] list when it looks like one (digits, `,` and `-`,
/// not empty), for the command lines that place processes (`--pin`,
/// `--cpus`); `taskset` itself judges the rest.
pub(crate) fn taskset_list(text: &str) -> Option<String> {
    let ok = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || ",-".contains(c));
    ok.then(|| text.to_owned())
}

/// `program` run on `cpus` (through `taskset`, which execs it: the process
/// id is the program's), or as is.
pub(crate) fn pinned(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpus]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A started server with its stdout lines arriving on a channel (also
/// used by `cargo xtask netem` and `cargo xtask soak`). Dropped while the
/// server still runs, it kills it.
pub(crate) struct Running {
    child: Child,
    lines: Receiver<String>,
    name: &'static str,
}

impl Running {
    fn start(
        env: &Env,
        server: &Server,
        transport: Transport,
    ) -> Result<(Running, String), RunError> {
        let listener = match transport {
            Transport::Tcp => vec!["--tcp".to_owned(), "127.0.0.1:0".to_owned()],
            Transport::Unix => {
                let path = env.work_dir.join(format!("{}.sock", server.name));
                vec!["--unix".to_owned(), path.display().to_string()]
            }
        };
        let log_path = env.work_dir.join(format!("{}.log", server.name));
        let cpus = env.pin.as_ref().map(|pin| pin.server.as_str());
        let mut command = pinned(&server.program, cpus);
        command.args(&server.args).args(&listener);
        let mut running = Running::spawn(command, server.name, &log_path)?;
        let listening = running.listening(1, &log_path)?;
        let target = match &listening[0] {
            Listening::Tcp(addr) | Listening::Tls(addr) | Listening::Udp(addr) => {
                format!("--tcp={addr}")
            }
            Listening::Unix(path) => format!("--unix={path}"),
        };
        Ok((running, target))
    }

    /// Spawns `command` (stdin `/dev/null`, stderr appended to `log_path`),
    /// its stdout lines arriving on a channel.
    pub(crate) fn spawn(
        mut command: Command,
        name: &'static str,
        log_path: &Path,
    ) -> Result<Running, RunError> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| RunError::fatal(format!("{}: {e}", log_path.display())))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                RunError::fatal(format!(
                    "cannot start {}: {e}",
                    command.get_program().to_string_lossy()
                ))
            })?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Running { child, lines, name })
    }

    /// Waits for `count` `listening on` lines (other lines are skipped);
    /// kills the server if they do not come within [`START_TIMEOUT`].
    pub(crate) fn listening(
        &mut self,
        count: usize,
        log_path: &Path,
    ) -> Result<Vec<Listening>, RunError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut found = Vec::new();
        while found.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => found.extend(parse::listening_line(&line)),
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(RunError::fatal(format!(
                        "{}: no `listening on` line within {} s (see {})",
                        self.name,
                        START_TIMEOUT.as_secs(),
                        log_path.display()
                    )));
                }
            }
        }
        Ok(found)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then wait; returns a note if the contract was not kept.
    pub(crate) fn stop(self) -> Option<String> {
        self.stop_with("INT")
    }

    /// `kill -SIGNAL`, then wait for the exit; returns a note if the
    /// contract (exit 0 after printing `shutdown`) was not kept.
    pub(crate) fn stop_with(mut self, signal: &str) -> Option<String> {
        let pid = self.pid().to_string();
        let _ = Command::new("kill")
            .args([format!("-{signal}").as_str(), &pid])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => break None,
            }
        };
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Some(format!(
                "{}: did not exit within {} s of SIG{signal} (killed)",
                self.name,
                STOP_TIMEOUT.as_secs()
            ));
        };
        let mut said_shutdown = false;
        // The reader thread ends (disconnecting) at the child's EOF.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            said_shutdown |= line.trim() == "shutdown";
        }
        if !status.success() {
            Some(format!(
                "{}: exited with {status} after SIG{signal}",
                self.name
            ))
        } else if !said_shutdown {
            Some(format!(
                "{}: exited 0 after SIG{signal} without printing `shutdown`",
                self.name
            ))
        } else {
            None
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The server's CPU time so far in seconds: the sum of its threads'
/// `schedstat` (nanoseconds), else `stat`'s utime + stime (ticks of 10 ms).
fn server_cpu_s(pid: u32) -> Option<f64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total_ns = 0_u64;
    let mut any = false;
    for task in tasks.filter_map(Result::ok) {
        if let Some(ns) = fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|text| parse::schedstat_ns(&text))
        {
            total_ns += ns;
            any = true;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    if any {
        Some(total_ns as f64 / 1e9)
    } else {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(parse::stat_cpu_ticks(&stat)? as f64 / 100.0)
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    parse::vm_hwm_kib(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Spawns the load generator against `target` (`--tcp=ADDR` / `--unix=PATH`).
fn spawn_loadgen(env: &Env, target: &str, load: &Load) -> Result<Child, RunError> {
    let (flag, value) = target.split_once('=').unwrap_or((target, ""));
    pinned(
        &env.loadgen,
        env.pin.as_ref().map(|pin| pin.client.as_str()),
    )
    .args([flag, value])
    .args(["--conns", &load.conns.to_string()])
    .args(["--size", &load.size.to_string()])
    .args(["--warmup", &load.warmup.to_string()])
    .args(["--duration", &load.duration.to_string()])
    .args(&env.loadgen_args)
    .arg("--mark")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .map_err(|e| RunError::fatal(format!("cannot start the load generator: {e}")))
}

/// Reads the load generator's output: calls `at_mark` on `warmup-done` and
/// returns the result line, or the generator's error.
fn finish_loadgen(mut child: Child, mut at_mark: impl FnMut()) -> Result<LoadReport, String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut report = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.trim() == "warmup-done" {
            at_mark();
        } else if let Some(parsed) = parse::loadgen_line(&line) {
            report = Some(parsed);
        }
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    match report {
        Some(report) if status.success() => Ok(report),
        _ => Err(format!(
            "load generator failed ({status}): {}",
            stderr.trim()
        )),
    }
}

/// Runs `server` once under `load`.
///
/// # Errors
///
/// When the server does not start (fatal), or the load generator fails.
/// A server that breaks the shutdown contract still yields its sample; the
/// problem goes to `notes`.
pub(crate) fn measure(
    env: &Env,
    server: &Server,
    load: &Load,
    notes: &mut Vec<String>,
) -> Result<Sample, RunError> {
    let (running, target) = Running::start(env, server, load.transport)?;
    let pid = running.pid();
    let loadgen = match spawn_loadgen(env, &target, load) {
        Ok(child) => child,
        Err(e) => {
            notes.extend(running.stop());
            return Err(e);
        }
    };
    let mut cpu_start = None;
    let result = finish_loadgen(loadgen, || cpu_start = server_cpu_s(pid));
    let cpu_end = server_cpu_s(pid);
    let rss_kib = peak_rss_kib(pid);
    if let Some(note) = running.stop() {
        notes.push(note);
    }
    let load_report = result.map_err(|e| RunError::run(format!("{}: {e}", server.name)))?;
    let server_cpu_s = match (cpu_start, cpu_end) {
        (Some(start), Some(end)) => end - start,
        _ => f64::NAN,
    };
    Ok(Sample {
        load: load_report,
        server_cpu_s,
        rss_kib,
    })
}

/// What [`measure_idle`] read from the server's `/proc/PID/status`, KiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct IdleSample {
    /// Connections held (the load generator's `requests`).
    pub(crate) conns: u64,
    /// `VmRSS` / `VmHWM` after start, before any connection.
    pub(crate) rss_before: u64,
    pub(crate) hwm_before: u64,
    /// `VmRSS` / `VmHWM` with every connection up and idle.
    pub(crate) rss_held: u64,
    pub(crate) hwm_held: u64,
}

/// Starts `server`, reads its memory, runs the load generator with
/// `extra` (`--idle N ...`: it marks when every connection is up and
/// idle), reads the memory again at the mark, stops the server.
///
/// # Errors
///
/// As [`measure`]; also when `/proc` cannot be read.
pub(crate) fn measure_idle(
    env: &Env,
    server: &Server,
    load: &Load,
    notes: &mut Vec<String>,
) -> Result<IdleSample, RunError> {
    let (running, target) = Running::start(env, server, load.transport)?;
    let pid = running.pid();
    let memory = || {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some((parse::vm_rss_kib(&status)?, parse::vm_hwm_kib(&status)?))
    };
    // Let a Python server finish settling after its `listening on` line.
    thread::sleep(Duration::from_millis(200));
    let before = memory();
    let loadgen = match spawn_loadgen(env, &target, load) {
        Ok(child) => child,
        Err(e) => {
            notes.extend(running.stop());
            return Err(e);
        }
    };
    let mut held = None;
    let result = finish_loadgen(loadgen, || held = memory());
    if let Some(note) = running.stop() {
        notes.push(note);
    }
    let report = result.map_err(|e| RunError::run(format!("{}: {e}", server.name)))?;
    let (Some((rss_before, hwm_before)), Some((rss_held, hwm_held))) = (before, held) else {
        return Err(RunError::run(format!(
            "{}: could not read /proc/{pid}/status",
            server.name
        )));
    };
    Ok(IdleSample {
        conns: report.requests,
        rss_before,
        hwm_before,
        rss_held,
        hwm_held,
    })
}

/// Runs `server` once under `load` and returns the load generator's
/// whole result line (a probe: the TLS modes add fields the sample does
/// not keep, such as the negotiated version and cipher suite).
///
/// # Errors
///
/// As [`measure`].
pub(crate) fn probe(env: &Env, server: &Server, load: &Load) -> Result<String, RunError> {
    let (running, target) = Running::start(env, server, load.transport)?;
    let child = spawn_loadgen(env, &target, load);
    let line = child.and_then(|mut child| {
        let mut out = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            let _ = pipe.read_to_string(&mut out);
        }
        let mut err = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut err);
        }
        match child.wait() {
            Ok(status) if status.success() => Ok(out
                .lines()
                .find(|l| l.starts_with("requests="))
                .unwrap_or_default()
                .to_owned()),
            _ => Err(RunError::fatal(format!("{}: {}", server.name, err.trim()))),
        }
    });
    let _ = running.stop();
    line
}

/// What `strace -c -f` counted while the server echoed `requests` times.
#[derive(Debug, Clone)]
pub(crate) struct SyscallCount {
    pub(crate) requests: u64,
    pub(crate) summary: StraceSummary,
}

/// Runs `server` under `load` (its warm-up ignored: all of it is counted)
/// with `strace -c -f -p PID` attached.
///
/// # Errors
///
/// When the server, strace or the load generator fail.
pub(crate) fn count_syscalls(
    env: &Env,
    server: &Server,
    load: &Load,
    notes: &mut Vec<String>,
) -> Result<SyscallCount, String> {
    let (running, target) = Running::start(env, server, load.transport).map_err(|e| e.message)?;
    let result = strace_run(env, &running, &target, load);
    notes.extend(running.stop());
    result
}

fn strace_run(
    env: &Env,
    running: &Running,
    target: &str,
    load: &Load,
) -> Result<SyscallCount, String> {
    let out: PathBuf = env.work_dir.join(format!("{}.strace", running.name));
    let _ = fs::remove_file(&out);
    let mut strace = Command::new("strace")
        .args(["-c", "-f", "-p", &running.pid().to_string(), "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start strace: {e}"))?;
    // strace says `Process PID attached` on stderr once it is in.
    let stderr = strace.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("attached") {
                let _ = tx.send(true);
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if rx.recv_timeout(Duration::from_secs(5)).is_err() {
        let _ = strace.kill();
        let _ = strace.wait();
        return Err("strace did not attach (is ptrace allowed here?)".to_owned());
    }
    let counted = Load {
        warmup: 0.0,
        ..*load
    };
    let report = spawn_loadgen(env, target, &counted)
        .map_err(|e| e.message)
        .and_then(|child| finish_loadgen(child, || {}));
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let report = report?;
    let text = fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let summary = parse::strace_summary(&text)
        .ok_or_else(|| format!("no `total` row in {}", out.display()))?;
    Ok(SyscallCount {
        requests: report.requests,
        summary,
    })
}

/// Whether `program` runs (`program --version` exits 0).
pub(crate) fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first line `program args` prints on stdout, if it succeeds.
pub(crate) fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    text.lines().next().map(|l| l.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_whose_program_exists_are_measured() {
        let py = python_echo_args(Path::new("/r"), "uvloop");
        assert_eq!(py, ["/r/bench/python/echo_server.py", "--loop", "uvloop"]);
        let exe = std::env::current_exe().unwrap();
        let mut skipped = vec!["uvloop: no venv".to_owned()];
        let command = |name: &str| match name {
            "evloop" => Some((exe.clone(), vec!["--x".to_owned()])),
            "tokio" => Some((PathBuf::from("/nonexistent/tokio-echo"), vec![])),
            _ => None,
        };
        let found = servers("t", &["evloop", "tokio", "uvloop"], &mut skipped, command).unwrap();
        assert_eq!((found.len(), found[0].name), (1, "evloop"));
        assert_eq!(found[0].args, ["--x"]);
        let missing = "tokio: /nonexistent/tokio-echo does not exist";
        assert_eq!(skipped, ["uvloop: no venv", missing]);
        let none = servers("t", &["tokio"], &mut skipped, |_| None);
        assert_eq!(none.unwrap_err(), "t: no server to measure");
        let tokio = Server {
            name: "tokio",
            ..found[0].clone()
        };
        let both = [found[0].clone(), tokio];
        let rows = present(&["tokio", "raw-epoll", "evloop"], &both);
        assert_eq!(rows, ["tokio", "evloop"]);
        let pair = among(&both, &["tokio", "uvloop"]);
        assert_eq!((pair.len(), pair[0].name), (1, "tokio"));
    }

    #[test]
    fn a_discarding_env_works_in_its_own_directory() {
        let target = std::env::temp_dir().join(format!("xtask-env-{}", std::process::id()));
        let env = Env::discarding(&target, "bench-x").unwrap();
        let made = env.work_dir.is_dir();
        let _ = fs::remove_dir_all(&target);
        assert!(made && env.work_dir == target.join("bench-x") && env.pin.is_none());
        assert_eq!(env.loadgen, target.join("release/evloop-loadgen"));
        assert_eq!(env.loadgen_args, ["--discard"]);
    }

    #[test]
    fn cpu_lists_for_taskset() {
        assert_eq!(taskset_list("0-1,3").as_deref(), Some("0-1,3"));
        assert_eq!(taskset_list(""), None);
        assert_eq!(taskset_list("1:2"), None);
    }
}
