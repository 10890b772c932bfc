//! `tokio-echo`: a tokio current_thread echo server, the baseline of
//! `cargo xtask bench` (bench-only: tokio is never a dependency of the evloop
//! crates). With `--threads N` (N >= 2) it runs on tokio's multi-thread
//! runtime with N workers instead, the baseline of `cargo xtask bench
//! scaling` (one listener, tasks spread and stolen across the workers).
//!
//! Written the way a tokio user would: a `TcpListener`/`UnixListener` accept
//! loop per listener, a task per connection with a 256 KiB buffer and a
//! `read`/`write_all` loop, `TCP_NODELAY` on accepted sockets (as asyncio,
//! uvloop and evloop do). The command-line contract is the evloop
//! `echo_server` example's (README, contract example 5), TCP and unix only:
//! `--tcp ADDR` (repeatable, port 0 picks a free port), `--unix PATH`; one
//! flushed `listening on tcp HOST:PORT` / `listening on unix PATH` line per
//! listener; on SIGINT or SIGTERM it closes the listeners, removes the socket
//! files, prints `shutdown` and exits 0.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lexopt::Arg::Long;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

/// The command line.
struct Args {
    tcp: Vec<String>,
    unix: Vec<PathBuf>,
    /// Worker threads: 1 = current_thread (the default), N >= 2 = multi-thread.
    threads: usize,
    /// `--work-us N`: CPU burnt per read before echoing it (as
    /// `echo_per_core --work-us`), so a benchmark can make the server the
    /// bottleneck.
    work: Duration,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = parse(&args).and_then(|args| {
        let runtime = runtime(args.threads).map_err(|e| format!("runtime: {e}"))?;
        runtime.block_on(serve(&args))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tokio-echo: {message}");
            ExitCode::FAILURE
        }
    }
}

/// current_thread for one thread, else multi-thread with `threads` workers.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_io().build()
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        tcp: Vec::new(),
        unix: Vec::new(),
        threads: 1,
        work: Duration::ZERO,
    };
    let mut parser = lexopt::Parser::from_args(args);
    let text = |parser: &mut lexopt::Parser| {
        parser
            .value()
            .and_then(lexopt::ValueExt::string)
            .map_err(|e| e.to_string())
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("tcp") => parsed.tcp.push(text(&mut parser)?),
            Long("unix") => parsed.unix.push(PathBuf::from(text(&mut parser)?)),
            Long("threads") => {
                let value = text(&mut parser)?;
                parsed.threads = value
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n >= 1)
                    .ok_or(format!("--threads: {value:?} is not a whole number >= 1"))?;
            }
            Long("work-us") => {
                let value = text(&mut parser)?;
                let micros = value
                    .parse()
                    .map_err(|_| format!("--work-us: {value:?} is not a whole number"))?;
                parsed.work = Duration::from_micros(micros);
            }
            other => return Err(format!("unsupported: {}", other.unexpected())),
        }
    }
    if parsed.tcp.is_empty() && parsed.unix.is_empty() {
        return Err("give at least one --tcp ADDR or --unix PATH".to_owned());
    }
    Ok(parsed)
}

async fn serve(args: &Args) -> Result<(), String> {
    let (tcp, unix, work) = (&args.tcp, &args.unix, args.work);
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;

    let mut lines = Vec::new();
    let mut accept_loops = Vec::new();
    for addr in tcp {
        let listener = TcpListener::bind(addr.as_str())
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        lines.push(format!("listening on tcp {local}"));
        accept_loops.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(echo(stream, work));
            }
        }));
    }
    for path in unix {
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).map_err(|e| format!("bind {}: {e}", path.display()))?;
        lines.push(format!("listening on unix {}", path.display()));
        accept_loops.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(echo(stream, work));
            }
        }));
    }
    let mut out = std::io::stdout().lock();
    for line in &lines {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);

    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    for accept_loop in &accept_loops {
        accept_loop.abort();
    }
    for accept_loop in accept_loops {
        let _ = accept_loop.await; // the listener is dropped (closed) by now
    }
    for path in unix {
        let _ = std::fs::remove_file(path);
    }
    println!("shutdown");
    Ok(())
}

/// Echoes until EOF or an error, through one 256 KiB buffer (evloop reads
/// up to 256 KiB per readiness event too).
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, work: Duration) {
    let mut buf = vec![0_u8; 256 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                busy_for(work);
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Keeps this thread busy for `work` (a spin: CPU-bound request handling).
fn busy_for(work: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < work {
        std::hint::spin_loop();
    }
}
