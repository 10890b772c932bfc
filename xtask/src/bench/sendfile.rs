//! `cargo xtask bench sendfile`: evloop's `sendfile` (zero-copy, and the
//! fallback a TLS transport takes) against Python asyncio's
//! `loop.sendfile`, in one run (docs/behaviour.md 19.1, issue 10).
//!
//! A 64 MiB file (in `target/bench-sendfile/`) goes over loopback TCP to a
//! receiver in this process that reads into a 1 MiB buffer and discards
//! it; the receiver times each transfer from accept to EOF and checks the
//! byte count. The senders run interleaved (native, fallback, asyncio;
//! native, fallback, asyncio; …) for `--rounds` rounds (default 5), so
//! machine drift spreads over all of them. The table (median, min, max
//! MB/s, 1 MB = 10^6 bytes) is printed and appended to docs/performance.md
//! ("## sendfile") unless `--no-record`.
//!
//! - evloop native: `crates/evloop-transports/examples/sendfile_bench.rs
//!   native` — `sendfile(2)` on a TCP transport;
//! - evloop fallback: the same example with `fallback` — through a
//!   pass-through transport implemented outside the crate, i.e. 16 KiB
//!   `pread` + `write` chunks with flow control, the path of TLS;
//! - asyncio: `python3` running `loop.sendfile(transport, file)` on a
//!   protocol transport (zero-copy `os.sendfile` on Linux).

#![allow(
    clippy::disallowed_methods,
    reason = "xtask times real child processes; the Clock rule is for the library crates"
)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::cargo;

const USAGE: &str = "\
usage: cargo xtask bench sendfile [--rounds R] [--size-mib N] [--no-record]

  Sends an N MiB file (default 64) over loopback TCP to a discarding
  receiver with evloop's sendfile (native sendfile(2)), evloop's fallback
  (the chunked path TLS takes) and Python asyncio's loop.sendfile,
  interleaved R times (default 5). Prints MB/s (median, min, max) and
  appends the table to docs/performance.md unless --no-record.";

const PY_SENDER: &str = r#"
import asyncio, sys

class Quiet(asyncio.Protocol):
    def __init__(self, lost):
        self.lost = lost
    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(None)

async def main(path, port):
    loop = asyncio.get_running_loop()
    lost = loop.create_future()
    transport, _ = await loop.create_connection(lambda: Quiet(lost), "127.0.0.1", port)
    with open(path, "rb") as f:
        sent = await loop.sendfile(transport, f, fallback=False)
    transport.close()
    await lost
    print("sent", sent)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"#;

struct Options {
    rounds: usize,
    size_mib: usize,
    record: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        rounds: 5,
        size_mib: 64,
        record: true,
    };
    let mut cli = super::Cli::new("bench sendfile", USAGE, args);
    while let Some(flag) = cli.next()? {
        match flag.as_str() {
            "--rounds" => o.rounds = cli.positive("--rounds")?,
            "--size-mib" => o.size_mib = cli.positive("--size-mib")?,
            "--no-record" => o.record = false,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            _ => return Err(cli.unknown(&flag)),
        }
    }
    Ok(o)
}

/// One sender: a name for the table and the command (file path and port
/// are appended).
struct Sender {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

/// Runs the benchmark.
///
/// # Errors
/// Bad arguments, a failed build, a sender that fails or sends the wrong
/// number of bytes.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let options = match parse(args) {
        Ok(o) => o,
        Err(message) if message == USAGE => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(message) => return Err(message),
    };
    println!("==> cargo build --release -p evloop-transports --example sendfile_bench");
    let status = Command::new(cargo())
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "evloop-transports",
            "--example",
            "sendfile_bench",
        ])
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("xtask: cargo build failed ({status})"));
    }
    let target = crate::examples::target_dir(root);
    let example = target.join("release/examples/sendfile_bench");
    let dir = target.join("bench-sendfile");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!("file-{}mib", options.size_mib));
    let size = options.size_mib * 1024 * 1024;
    write_file(&file, size)?;
    let script = dir.join("asyncio_sender.py");
    fs::write(&script, PY_SENDER).map_err(|e| format!("{}: {e}", script.display()))?;

    let mut senders = vec![
        Sender {
            name: "evloop sendfile (native)",
            program: example.clone(),
            args: vec!["native".into()],
        },
        Sender {
            name: "evloop fallback (TLS path)",
            program: example,
            args: vec!["fallback".into()],
        },
    ];
    let python = which("python3");
    match &python {
        Some(python) => senders.push(Sender {
            name: "asyncio loop.sendfile",
            program: python.clone(),
            args: vec![script.display().to_string()],
        }),
        None => println!("SKIP: python3 not found: the asyncio column is left out"),
    }

    let mut results: Vec<Vec<f64>> = vec![Vec::new(); senders.len()];
    for round in 1..=options.rounds {
        for (i, sender) in senders.iter().enumerate() {
            let mbps = measure(sender, &file, size)?;
            println!("round {round}: {:<28} {mbps:>9.0} MB/s", sender.name);
            results[i].push(mbps);
        }
    }

    let mut table = String::from("| sender | median MB/s | min | max |\n|---|---:|---:|---:|\n");
    for (sender, values) in senders.iter().zip(&mut results) {
        values.sort_by(f64::total_cmp);
        let median = values[values.len() / 2];
        table.push_str(&format!(
            "| {} | {median:.0} | {:.0} | {:.0} |\n",
            sender.name,
            values[0],
            values[values.len() - 1]
        ));
    }
    println!("\n{table}");
    if options.record {
        record(root, &options, &table, python.as_deref())?;
    }
    Ok(())
}

/// A file of `size` bytes of a repeating non-trivial pattern (rewritten
/// only when its size differs).
fn write_file(path: &Path, size: usize) -> Result<(), String> {
    if fs::metadata(path).is_ok_and(|m| m.len() == size as u64) {
        return Ok(());
    }
    let block: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut out = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        out.write_all(&block[..n])
            .map_err(|e| format!("{}: {e}", path.display()))?;
        left -= n;
    }
    Ok(())
}

/// One transfer: MB/s as the receiver saw it (accept to EOF).
fn measure(sender: &Sender, file: &Path, size: usize) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let receiver = thread::spawn(move || -> Result<(usize, Duration), String> {
        let (mut conn, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let start = Instant::now();
        let mut buf = vec![0u8; 1024 * 1024];
        let mut total = 0;
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return Ok((total, start.elapsed())),
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    });
    let output = Command::new(&sender.program)
        .args(&sender.args)
        .arg(file)
        .arg(port.to_string())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", sender.program.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", sender.name, output.status));
    }
    let (received, took) = receiver
        .join()
        .map_err(|_| "receiver panicked".to_owned())??;
    if received != size {
        return Err(format!(
            "{}: received {received} of {size} bytes",
            sender.name
        ));
    }
    Ok(received as f64 / took.as_secs_f64() / 1e6)
}

fn which(program: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// Appends the run to docs/performance.md under "## sendfile".
fn record(
    root: &Path,
    options: &Options,
    table: &str,
    python: Option<&Path>,
) -> Result<(), String> {
    let path = root.join("docs/performance.md");
    let mut doc = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !doc.contains("\n## sendfile\n") {
        doc.push_str(
            "\n## sendfile\n\n`cargo xtask bench sendfile` (`xtask/src/bench/sendfile.rs`): a file \
             over loopback TCP to a receiver that reads into 1 MiB and discards it, timed by the \
             receiver from accept to EOF; senders interleaved per round. MB/s = 10^6 bytes/s.\n",
        );
    }
    doc.push_str(&format!(
        "\n### {} — `cargo xtask bench sendfile --rounds {} --size-mib {}`\n\n{}\n\n{table}",
        super::date_now(),
        options.rounds,
        options.size_mib,
        super::machine_facts(root, python).trim_end(),
    ));
    fs::write(&path, doc).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("recorded in docs/performance.md");
    Ok(())
}
