//! Python 3.11 asyncio as the behavioural cross-check for the event order
//! (docs/behaviour.md 18.1): the same child scenarios run under
//! `loop.subprocess_exec` with a recording `SubprocessProtocol` (a script
//! written to a temp dir, run with `python3`) and under evloop's
//! `subprocess_exec` (both reapers), and the two traces must be equal
//! after normalising what legitimately differs between two correct loops:
//!
//! * pipe data is compared as the concatenated bytes per fd (the chunking
//!   depends on scheduling);
//! * events whose relative order is a race in asyncio too (stdout's EOF vs
//!   stderr's vs the exit, when the child closes both as it exits) are
//!   compared as a multiset;
//! * what asyncio guarantees is compared exactly: the first event
//!   (`connection_made`), the last (`connection_lost`), each pipe's data
//!   before its `pipe_connection_lost`, the return code, the errors, and
//!   the orderings each scenario makes deterministic (a grandchild holding
//!   stdout: `process_exited` before stdout's EOF; a kill sent on the first
//!   output: that output before `process_exited`).
//!
//! `python3` missing is a failure (CI has it), not a skip.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use evloop_core::EventLoop;
use evloop_process::{
    subprocess_exec, ProcessOptions, Reaper, SubprocessProtocol, SubprocessTransport,
};

/// The recorder, in Python. argv: scenario, program, args…
const SCRIPT: &str = r#"
import asyncio, sys

class Rec(asyncio.SubprocessProtocol):
    def __init__(self, scenario, done):
        self.scenario, self.done = scenario, done
        self.events, self.t, self.killed = [], None, False

    def connection_made(self, transport):
        self.t = transport
        self.events.append("made")

    def pipe_data_received(self, fd, data):
        self.events.append(f"data {fd} {data.hex()}")
        if self.scenario == "sigkill" and fd == 1 and not self.killed:
            self.killed = True
            self.t.kill()

    def pipe_connection_lost(self, fd, exc):
        self.events.append(f"pipe_lost {fd} {type(exc).__name__ if exc else None}")

    def process_exited(self):
        self.events.append(f"exited {self.t.get_returncode()}")
        if self.scenario == "grandchild":
            stdin = self.t.get_pipe_transport(0)
            stdin.write(b"go\n")
            stdin.write_eof()

    def connection_lost(self, exc):
        self.events.append(f"lost {type(exc).__name__ if exc else None}")
        self.done.set_result(None)

async def main():
    scenario, argv = sys.argv[1], sys.argv[2:]
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    transport, rec = await loop.subprocess_exec(lambda: Rec(scenario, done), *argv)
    await asyncio.wait_for(done, 30)
    transport.close()
    for event in rec.events:
        print(event)

asyncio.run(main())
"#;

/// One recorded event, as both recorders write it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Made,
    Data(i32, Vec<u8>),
    /// The error as Python's exception class name, or `None`.
    PipeLost(i32, String),
    Exited(i32),
    Lost(String),
}

impl Ev {
    fn parse(line: &str) -> Ev {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| words[i].parse::<i32>().expect(line);
        match words[0] {
            "made" => Ev::Made,
            "data" => Ev::Data(num(1), unhex(words.get(2).copied().unwrap_or(""))),
            "pipe_lost" => Ev::PipeLost(num(1), words[2].to_owned()),
            "exited" => Ev::Exited(num(1)),
            "lost" => Ev::Lost(words[1].to_owned()),
            _ => panic!("unknown event from python: {line}"),
        }
    }

    /// The event without its data, for orderings and the multiset.
    fn kind(&self) -> String {
        match self {
            Ev::Made => "made".to_owned(),
            Ev::Data(fd, _) => format!("data {fd}"),
            Ev::PipeLost(fd, e) => format!("pipe_lost {fd} {e}"),
            Ev::Exited(rc) => format!("exited {rc}"),
            Ev::Lost(e) => format!("lost {e}"),
        }
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Python's exception class for an `io::Error` as asyncio would raise it.
fn python_name(error: Option<&io::Error>) -> String {
    match error.map(io::Error::kind) {
        None => "None".to_owned(),
        Some(io::ErrorKind::BrokenPipe) => "BrokenPipeError".to_owned(),
        Some(io::ErrorKind::ConnectionReset) => "ConnectionResetError".to_owned(),
        Some(kind) => format!("{kind:?}"),
    }
}

/// What two correct traces of one scenario share.
#[derive(Debug, PartialEq, Eq)]
struct Normal {
    first: String,
    last: String,
    /// Every non-data event, with its count.
    events: BTreeMap<String, usize>,
    /// The concatenated data per fd.
    bytes: BTreeMap<i32, Vec<u8>>,
    /// For each declared ordering `(a, b)`: does the first `a` come before
    /// the first `b`? (`data 1` before `pipe_lost 1 …` is declared for
    /// every scenario.)
    orderings: Vec<(String, String, bool)>,
}

fn normalise(trace: &[Ev], orderings: &[(&str, &str)]) -> Normal {
    let kinds: Vec<String> = trace.iter().map(Ev::kind).collect();
    let mut events = BTreeMap::new();
    let mut bytes: BTreeMap<i32, Vec<u8>> = BTreeMap::new();
    for ev in trace {
        match ev {
            Ev::Data(fd, data) => bytes.entry(*fd).or_default().extend_from_slice(data),
            other => *events.entry(other.kind()).or_insert(0) += 1,
        }
    }
    let position = |prefix: &str| kinds.iter().position(|k| k.starts_with(prefix));
    let mut declared: Vec<(String, String)> = (1..=2)
        .filter(|fd| bytes.contains_key(fd))
        .map(|fd| (format!("data {fd}"), format!("pipe_lost {fd}")))
        .collect();
    declared.extend(
        orderings
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned())),
    );
    let orderings = declared
        .into_iter()
        .map(|(a, b)| {
            let before = match (position(&a), position(&b)) {
                (Some(i), Some(j)) => i < j,
                _ => panic!("ordering {a} < {b}: an event is missing in {kinds:?}"),
            };
            (a, b, before)
        })
        .collect();
    Normal {
        first: kinds.first().cloned().unwrap_or_default(),
        last: kinds.last().cloned().unwrap_or_default(),
        events,
        bytes,
        orderings,
    }
}

fn python_trace(scenario: &str, argv: &[&str]) -> Vec<Ev> {
    let dir = std::env::temp_dir().join(format!("evloop-python-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script = dir.join(format!("{scenario}.py"));
    std::fs::write(&script, SCRIPT).expect("write the python recorder");
    let out = Command::new("python3")
        .arg(&script)
        .arg(scenario)
        .args(argv)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is required for the asyncio cross-check (docs/behaviour.md 18.1) and could not run: {e}")
        });
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_dir(&dir);
    assert!(
        out.status.success(),
        "python3 recorder failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let version = Command::new("python3")
        .arg("--version")
        .output()
        .expect("python3 --version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.starts_with("Python 3."),
        "python3 --version: {version}"
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(Ev::parse)
        .collect()
}

/// evloop's recorder: the same callbacks, the same actions.
struct Rec {
    scenario: &'static str,
    events: Rc<RefCell<Vec<Ev>>>,
    transport: Option<SubprocessTransport>,
    killed: bool,
    event_loop: EventLoop,
}

impl SubprocessProtocol for Rec {
    fn connection_made(&mut self, transport: SubprocessTransport) {
        self.transport = Some(transport);
        self.events.borrow_mut().push(Ev::Made);
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        self.events.borrow_mut().push(Ev::Data(fd, data.to_vec()));
        if self.scenario == "sigkill" && fd == 1 && !self.killed {
            self.killed = true;
            self.transport.as_ref().unwrap().kill().unwrap();
        }
    }

    fn pipe_connection_lost(&mut self, fd: i32, error: Option<io::Error>) {
        self.events
            .borrow_mut()
            .push(Ev::PipeLost(fd, python_name(error.as_ref())));
    }

    fn process_exited(&mut self) {
        let transport = self.transport.as_ref().unwrap();
        self.events
            .borrow_mut()
            .push(Ev::Exited(transport.returncode().unwrap()));
        if self.scenario == "grandchild" {
            let stdin = transport.get_pipe_transport(0).unwrap();
            stdin.write(b"go\n");
            stdin.write_eof();
        }
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.events
            .borrow_mut()
            .push(Ev::Lost(python_name(error.as_ref())));
        self.event_loop.stop();
    }
}

fn evloop_trace(scenario: &'static str, argv: &[&str], reaper: Reaper) -> Vec<Ev> {
    let lp = EventLoop::new().expect("loop");
    let events = Rc::new(RefCell::new(Vec::new()));
    let rec = Rec {
        scenario,
        events: events.clone(),
        transport: None,
        killed: false,
        event_loop: lp.clone(),
    };
    let options = ProcessOptions::default().reaper(reaper);
    let spawn = subprocess_exec(&lp, move || rec, argv[0], &argv[1..], options);
    let (transport, _protocol) = lp.run_until_complete(spawn).unwrap().unwrap();
    let stopper = lp.clone();
    let watchdog = lp
        .call_later(Duration::from_secs(30), move || stopper.stop())
        .unwrap();
    if !transport.is_finished() {
        lp.run_forever().unwrap();
    }
    watchdog.cancel();
    assert!(transport.is_finished(), "watchdog: no connection_lost");
    transport.close();
    lp.close().unwrap();
    let trace = events.borrow().clone();
    trace
}

/// Runs `scenario` under Python asyncio once and under evloop with both
/// reapers (3 runs each), and compares the normalised traces.
fn cross_check(scenario: &'static str, argv: &[&str], orderings: &[(&str, &str)]) {
    let python = python_trace(scenario, argv);
    let expected = normalise(&python, orderings);
    for reaper in [Reaper::Auto, Reaper::Sigchld] {
        for run in 0..3 {
            let ours = evloop_trace(scenario, argv, reaper);
            let got = normalise(&ours, orderings);
            assert_eq!(
                got, expected,
                "{scenario} ({reaper:?}, run {run}) differs from asyncio\nevloop: {ours:?}\nasyncio: {python:?}"
            );
        }
    }
}

#[test]
fn spec_18_1_python_order_normal_exit_with_stdout_and_stderr() {
    cross_check(
        "normal",
        &["sh", "-c", "echo out; echo err >&2; printf more; exit 3"],
        &[],
    );
}

#[test]
fn spec_18_1_python_order_exit_while_stdin_is_still_open() {
    // The child never reads its stdin, which we keep open: the stdin pipe
    // closes (cleanly: nothing was buffered) because the child went away.
    cross_check("stdin_open", &["sh", "-c", "echo bye; exit 0"], &[]);
}

#[test]
fn spec_18_1_python_order_killed_by_sigkill() {
    // Killed once its first output arrives: returncode -9.
    cross_check(
        "sigkill",
        &["sh", "-c", "echo ready; exec sleep 100"],
        &[("data 1", "exited")],
    );
}

#[test]
fn spec_18_1_python_order_grandchild_holding_stdout() {
    // The shell exits at once; its background child holds stdin, stdout
    // and stderr until we write a line, which both recorders do on
    // process_exited.
    cross_check(
        "grandchild",
        &["sh", "-c", "exec 3<&0; (read x <&3; echo late $x) & exit 0"],
        &[
            ("exited", "data 1"),
            ("exited", "pipe_lost 1"),
            ("exited", "pipe_lost 2"),
            ("exited", "pipe_lost 0"),
        ],
    );
}
