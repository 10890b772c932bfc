//! The fault-injection property test's engine (issue 11): seeded echo
//! sessions of every transport kind driven through the transports' fault
//! seam (`evloop_transports::fault`, feature `fault-injection`).
//!
//! A run is `sessions` sessions, numbered from 0; session `i`'s seed is
//! derived from the run's seed and `i`, and decides everything about it:
//! its kind (TCP with a `Protocol` or a `BufferedProtocol`, streams, TLS,
//! unix sockets, pipes, a `cat` subprocess's pipes, UDP), which side's fds
//! see faults (none, the client, the server, both; the listener's accept;
//! the client socket's connect), the fault rates, whether terminal faults
//! (`ECONNRESET`, `EPIPE`) may be injected, the payload and its chunking.
//! [`Config::concurrency`] sessions run at once on one loop, so faulted
//! and un-faulted sessions share it.
//!
//! Each session checks ([`Outcome::problems`] lists what failed):
//! - every byte delivered exactly once and in order — all of them if no
//!   terminal fault was injected, else a prefix, with the error reported
//!   once through `connection_lost` on the side that got it;
//! - `connection_made` first and once, `connection_lost` last and once, no
//!   callback after it;
//! - every fd of the session closed exactly once by its transport;
//! - for UDP, every datagram echoed at most once, and each one lost to an
//!   injected `ENOBUFS` reported once through `error_received`;
//! - it ends within its watchdog ([`Config::watchdog`]).
//!
//! The run checks that the un-faulted sessions all ended cleanly, that
//! the process holds the same fds at the end as at the start, and that
//! the exception handler saw exactly the injected `EMFILE`s (the accept
//! loop reports each and backs off) and nothing else.
//!
//! A failing session names its seed; `EVLOOP_FAULT_SEED=<seed>` reruns
//! exactly that session ([`Config::from_env`]).

#![forbid(unsafe_code)]

mod record;
mod rng;
mod sessions;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_core::{ErrorContext, EventLoop};
use evloop_transports::fault::{self, Fault, FaultCounts, Op};

pub use rng::session_seed;
pub use sessions::Kind;

/// What a run does.
#[derive(Clone, Debug)]
pub struct Config {
    /// How many sessions.
    pub sessions: u64,
    /// The run's seed (session `i`'s seed is [`session_seed`]`(seed, i)`).
    pub seed: u64,
    /// Run only the session with this seed (a rerun of a failure).
    pub only: Option<u64>,
    /// Sessions in flight at once on the loop.
    pub concurrency: usize,
    /// A session that has not ended by then fails the run.
    pub watchdog: Duration,
    /// Print a line per failing session as it ends.
    pub verbose: bool,
}

impl Config {
    /// `sessions` sessions from `seed`, 8 at a time, a 120 s watchdog.
    pub fn new(sessions: u64, seed: u64) -> Config {
        Config {
            sessions,
            seed,
            only: None,
            concurrency: 8,
            watchdog: Duration::from_secs(120),
            verbose: true,
        }
    }

    /// `default_sessions` sessions, overridden by the environment:
    /// `EVLOOP_FAULT_SESSIONS` (how many), `EVLOOP_FAULT_RUN_SEED` (the
    /// run's seed), `EVLOOP_FAULT_SEED` (rerun that one session only),
    /// `EVLOOP_FAULT_CONCURRENCY`.
    pub fn from_env(default_sessions: u64) -> Config {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| parse_u64(&v));
        let mut config = Config::new(
            var("EVLOOP_FAULT_SESSIONS").unwrap_or(default_sessions),
            var("EVLOOP_FAULT_RUN_SEED").unwrap_or(0x005e_ed0f_fa17),
        );
        config.only = var("EVLOOP_FAULT_SEED");
        if let Some(n) = var("EVLOOP_FAULT_CONCURRENCY") {
            config.concurrency = usize::try_from(n.max(1)).unwrap_or(8);
        }
        config
    }
}

/// A decimal or `0x` hexadecimal number.
pub fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ended {
    /// Every byte echoed, `connection_lost(None)` on both sides.
    Clean,
    /// A terminal fault (or its consequence at the peer) was reported once
    /// through `connection_lost` (or the stream's read/drain), and what was
    /// delivered before it was a prefix, in order.
    ErrorOnce,
    /// The connect failed with the injected `ECONNREFUSED`, reported once.
    ConnectRefused,
    /// UDP: some datagrams lost to injected `ENOBUFS`, each reported once.
    DatagramsLost,
    /// The watchdog fired.
    TimedOut,
}

/// One session's result.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The session's seed (rerun it with `EVLOOP_FAULT_SEED`).
    pub seed: u64,
    /// Its kind.
    pub kind: Kind,
    /// Whether any of its fds was a fault target with non-zero rates.
    pub faulted: bool,
    /// How it ended.
    pub ended: Ended,
    /// The checks that failed (empty: the session passed).
    pub problems: Vec<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "session seed={:#x} kind={} faulted={} ended={:?}",
            self.seed, self.kind, self.faulted, self.ended
        )?;
        for problem in &self.problems {
            write!(f, "\n    - {problem}")?;
        }
        Ok(())
    }
}

/// The figures of a run.
#[derive(Debug, Default)]
pub struct Report {
    /// Sessions by kind and how they ended.
    pub sessions: BTreeMap<(Kind, Ended), u64>,
    /// Faults injected, by op and fault.
    pub faults: FaultCounts,
    /// The sessions that failed a check.
    pub failures: Vec<Outcome>,
    /// Problems of the run as a whole (fd leak, exception handler).
    pub run_problems: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// How many sessions ran.
    pub total: u64,
    /// How many of them had no fault target (the loop's "others").
    pub unfaulted: u64,
    /// "socket.accept() out of system resource" reports (one per `EMFILE`).
    pub accept_reports: u64,
    /// "TLS handshake failed" reports (one per server handshake a terminal
    /// fault cut short).
    pub handshake_reports: u64,
}

impl Report {
    /// True if every session and the run passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.run_problems.is_empty()
    }

    /// Faults injected of `fault` (every op).
    pub fn injected(&self, fault: Fault) -> u64 {
        self.faults
            .iter()
            .filter(|((_, f), _)| *f == fault)
            .map(|(_, n)| n)
            .sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fault-injection run: {} sessions ({} without faults) in {:.1} s",
            self.total,
            self.unfaulted,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(f, "sessions by kind and ending:")?;
        let mut kinds: BTreeMap<Kind, BTreeMap<Ended, u64>> = BTreeMap::new();
        for ((kind, ended), n) in &self.sessions {
            kinds.entry(*kind).or_default().insert(*ended, *n);
        }
        for (kind, endings) in &kinds {
            let total: u64 = endings.values().sum();
            let parts: Vec<String> = endings.iter().map(|(e, n)| format!("{e:?} {n}")).collect();
            writeln!(
                f,
                "  {:<13} {:>6}  ({})",
                kind.to_string(),
                total,
                parts.join(", ")
            )?;
        }
        writeln!(f, "faults injected (op, fault: count):")?;
        for ((op, fault), n) in &self.faults {
            writeln!(
                f,
                "  {:<8} {:<8} {:>9}",
                format!("{op:?}"),
                format!("{fault:?}"),
                n
            )?;
        }
        let total: u64 = self.faults.values().sum();
        writeln!(f, "  total             {total:>9}")?;
        writeln!(
            f,
            "exception handler: {} accept EMFILE reports, {} TLS handshake failures, nothing else{}",
            self.accept_reports,
            self.handshake_reports,
            if self.run_problems.is_empty() { "" } else { " (see below)" }
        )?;
        if self.passed() {
            writeln!(f, "result: PASS")?;
        } else {
            writeln!(f, "result: FAIL")?;
            for problem in &self.run_problems {
                writeln!(f, "  run: {problem}")?;
            }
            for failure in &self.failures {
                writeln!(f, "  {failure}")?;
                writeln!(f, "    rerun: EVLOOP_FAULT_SEED={:#x}", failure.seed)?;
            }
        }
        Ok(())
    }
}

/// Runs the sessions `config` asks for on a new loop on this thread, with
/// the seam switched on for this thread, and checks the run as a whole.
///
/// # Panics
///
/// If the loop cannot be made or run (not a finding of the test).
pub fn run(config: &Config) -> Report {
    let start = Instant::now();
    let fds_before = fd_set();
    fault::install();
    let lp = EventLoop::new().expect("event loop");
    // Debug mode: a server reports each failed TLS handshake to the
    // exception handler, which the run counts against the faults injected.
    lp.set_debug(true);
    let handler_calls: Rc<RefCell<Vec<ErrorContext>>> = Rc::default();
    let sink = handler_calls.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
        sink.borrow_mut().push(ctx.clone());
    }));
    let env = Rc::new(sessions::Env::new(&lp, config.watchdog));
    let seeds: Vec<u64> = match config.only {
        Some(seed) => vec![seed],
        None => (0..config.sessions)
            .map(|i| session_seed(config.seed, i))
            .collect(),
    };
    let queue = Rc::new(RefCell::new(seeds.into_iter()));
    let outcomes: Rc<RefCell<Vec<Outcome>>> = Rc::default();
    let mut workers = Vec::new();
    for _ in 0..config.concurrency.max(1) {
        let queue = queue.clone();
        let outcomes = outcomes.clone();
        let env = env.clone();
        let verbose = config.verbose;
        let worker = lp.create_task(async move {
            loop {
                let next = queue.borrow_mut().next();
                let Some(seed) = next else { break };
                let outcome = sessions::run_one(&env, seed).await;
                if verbose && !outcome.problems.is_empty() {
                    eprintln!("FAILED {outcome}\n    rerun: EVLOOP_FAULT_SEED={seed:#x}");
                }
                outcomes.borrow_mut().push(outcome);
            }
        });
        workers.push(worker.expect("worker task"));
    }
    lp.run_until_complete(async move {
        for worker in workers {
            let _ = worker.await;
        }
    })
    .expect("run the sessions");
    // What the sessions closed last finishes on the loop.
    let settle = env.settle();
    lp.run_until_complete(settle).expect("settle");
    let mut report = Report {
        faults: fault::stats(),
        ..Report::default()
    };
    let count = |message: &str| {
        handler_calls
            .borrow()
            .iter()
            .filter(|c| c.message == message)
            .count() as u64
    };
    report.accept_reports = count("socket.accept() out of system resource");
    report.handshake_reports = count("TLS handshake failed");
    let calls = std::mem::take(&mut *handler_calls.borrow_mut());
    let accept_reports = calls
        .iter()
        .filter(|c| c.message == "socket.accept() out of system resource")
        .count() as u64;
    let emfiles = report
        .faults
        .get(&(Op::Accept, Fault::MFile))
        .copied()
        .unwrap_or(0);
    if accept_reports != emfiles {
        report.run_problems.push(format!(
            "{emfiles} EMFILE injected on accept, {accept_reports} reported to the exception handler"
        ));
    }
    let handshake_reports = calls
        .iter()
        .filter(|c| c.message == "TLS handshake failed")
        .count() as u64;
    let expected = env.expected_handshake_reports.get();
    if handshake_reports != expected {
        report.run_problems.push(format!(
            "{expected} TLS handshakes cut short by a client's terminal fault, \
             {handshake_reports} \"TLS handshake failed\" reports"
        ));
    }
    for call in calls.iter().filter(|c| {
        c.message != "socket.accept() out of system resource" && c.message != "TLS handshake failed"
    }) {
        report.run_problems.push(format!(
            "unexpected exception-handler call: {} ({:?})",
            call.message, call.error
        ));
    }
    drop(env);
    lp.close().expect("close the loop");
    fault::uninstall();
    let leaked: Vec<String> = fd_set()
        .difference(&fds_before)
        .map(|fd| format!("{fd} -> {}", fd_target(*fd)))
        .collect();
    if !leaked.is_empty() {
        report.run_problems.push(format!(
            "fds open after the run that were not before: {leaked:?}"
        ));
    }
    for outcome in outcomes.take() {
        report.total += 1;
        if !outcome.faulted {
            report.unfaulted += 1;
        }
        *report
            .sessions
            .entry((outcome.kind, outcome.ended))
            .or_default() += 1;
        if !outcome.problems.is_empty() {
            report.failures.push(outcome);
        }
    }
    report.elapsed = start.elapsed();
    report
}

/// Prints what `line` says when `EVLOOP_FAULT_DEBUG` is set (to follow
/// one rerun session).
pub(crate) fn debug(line: impl FnOnce() -> String) {
    if std::env::var_os("EVLOOP_FAULT_DEBUG").is_some() {
        eprintln!("[faults] {}", line());
    }
}

use evloop_testkit::{fd_set, fd_target};
