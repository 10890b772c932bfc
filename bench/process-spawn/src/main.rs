//! `process-spawn`: spawn-to-exit latency and children per second of
//! `/bin/true` under evloop (`evloop_process::subprocess_exec` + `wait`) or
//! tokio (`tokio::process::Command` on a current_thread runtime), for
//! `cargo xtask bench process` (bench-only: tokio is never a dependency of
//! the evloop crates). `bench/python/process_spawn.py` is the asyncio and
//! uvloop counterpart with the same command line and output.
//!
//! The child's stdin, stdout and stderr are `/dev/null` in every
//! implementation, so what is timed is spawning, watching and reaping.
//!
//! ```text
//! process-spawn --impl evloop|tokio --seq N --conc M --inflight K
//! ```
//!
//! Runs N sequential spawns (each timed from before the spawn call to the
//! end of its wait), then M spawns with K in flight (timed as a whole), and
//! prints `seq_us V1 V2 …` (each latency in µs) and `conc M SECONDS`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use evloop_core::EventLoop;
use evloop_process::{subprocess_exec, ProcessOptions, Stdio, SubprocessProtocol};
use lexopt::Arg::Long;

const PROGRAM: &str = "/bin/true";

struct Quiet;
impl SubprocessProtocol for Quiet {}

fn null_options() -> ProcessOptions {
    ProcessOptions::default()
        .stdin(Stdio::Null)
        .stdout(Stdio::Null)
        .stderr(Stdio::Null)
}

/// One spawn-to-exit on evloop.
async fn evloop_one(lp: &EventLoop) -> Result<(), String> {
    let spawn = subprocess_exec(lp, || Quiet, PROGRAM, [] as [&str; 0], null_options());
    let (transport, _) = spawn.await.map_err(|e| e.to_string())?;
    let code = transport.wait().await;
    if code != 0 {
        return Err(format!("{PROGRAM} exited with {code}"));
    }
    Ok(())
}

fn run_evloop(
    seq: usize,
    conc: usize,
    inflight: usize,
) -> Result<(Vec<Duration>, Duration), String> {
    let lp = EventLoop::new().map_err(|e| e.to_string())?;
    let worker_lp = lp.clone();
    let result = lp
        .run_until_complete(async move {
            let lp = worker_lp;
            let mut latencies = Vec::with_capacity(seq);
            for _ in 0..seq {
                let start = Instant::now();
                evloop_one(&lp).await?;
                latencies.push(start.elapsed());
            }
            let start = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..inflight {
                let lp2 = lp.clone();
                let share = conc / inflight + usize::from(w < conc % inflight);
                let task = lp
                    .create_task(async move {
                        for _ in 0..share {
                            evloop_one(&lp2).await?;
                        }
                        Ok::<(), String>(())
                    })
                    .map_err(|e| e.to_string())?;
                tasks.push(task);
            }
            for task in tasks {
                task.await.map_err(|e| e.to_string())??;
            }
            Ok::<_, String>((latencies, start.elapsed()))
        })
        .map_err(|e| e.to_string())?;
    lp.close().map_err(|e| e.to_string())?;
    result
}

async fn tokio_one() -> Result<(), String> {
    let status = tokio::process::Command::new(PROGRAM)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?
        .wait()
        .await
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{PROGRAM}: {status}"));
    }
    Ok(())
}

fn run_tokio(
    seq: usize,
    conc: usize,
    inflight: usize,
) -> Result<(Vec<Duration>, Duration), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let mut latencies = Vec::with_capacity(seq);
        for _ in 0..seq {
            let start = Instant::now();
            tokio_one().await?;
            latencies.push(start.elapsed());
        }
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..inflight {
            let share = conc / inflight + usize::from(w < conc % inflight);
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    tokio_one().await?;
                }
                Ok::<(), String>(())
            }));
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok((latencies, start.elapsed()))
    })
}

fn usage(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("process-spawn: {error}");
    eprintln!("usage: process-spawn --impl evloop|tokio [--seq N] [--conc M] [--inflight K]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut which, mut seq, mut conc, mut inflight) = (None, 200usize, 1000usize, 64usize);
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            Err(e) => return usage(&e),
        };
        let number =
            |parser: &mut lexopt::Parser| lexopt::ValueExt::parse::<usize>(&parser.value()?);
        let parsed = match arg {
            Long("impl") => parser
                .value()
                .and_then(lexopt::ValueExt::string)
                .map(|v| which = Some(v)),
            Long("seq") => number(&mut parser).map(|n| seq = n),
            Long("conc") => number(&mut parser).map(|n| conc = n),
            Long("inflight") => number(&mut parser).map(|n| inflight = n.max(1)),
            other => Err(other.unexpected()),
        };
        if let Err(e) = parsed {
            return usage(&e);
        }
    }
    let outcome = match which.as_deref() {
        Some("evloop") => run_evloop(seq, conc, inflight),
        Some("tokio") => run_tokio(seq, conc, inflight),
        Some(other) => return usage(&format_args!("unknown --impl `{other}`")),
        None => return usage(&"--impl is required"),
    };
    match outcome {
        Ok((latencies, total)) => {
            let mut out = std::io::stdout().lock();
            let us: Vec<String> = latencies
                .iter()
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1e6))
                .collect();
            let _ = writeln!(out, "seq_us {}", us.join(" "));
            let _ = writeln!(out, "conc {conc} {:.6}", total.as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("process-spawn: {error}");
            ExitCode::FAILURE
        }
    }
}
