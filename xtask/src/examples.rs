//! The contract examples (docs/testing.md, step 8): build them in release mode,
//! run each binary from `target/release/examples/`, and check what it prints,
//! exactly.
//!
//! Other tools drive these examples, so their output is a contract. The
//! checks live in one table, [`EXAMPLES`]: a required example whose source
//! (`crates/evloop/examples/NAME.rs`) is missing fails the step; an optional
//! one is checked as soon as its source exists. Every child runs under a
//! 30 s watchdog: it is killed and the step fails, naming it, when time is
//! up, and every blocking read or socket call is bounded by the time left.
//! Signals are sent with `/bin/kill` (this crate has no `libc`).

#![allow(
    clippy::disallowed_methods,
    reason = "xtask times real child processes; the Clock rule is for the library crates"
)]

use std::fmt::Display;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::test::Step;

/// How long any one example process may live.
const WATCHDOG: Duration = Duration::from_secs(30);

/// How much the stream echo checks send each way.
const ECHO_BYTES: usize = 100 * 1024;

/// One contract example and its check.
pub(crate) struct Example {
    /// The example's name: `crates/evloop/examples/<name>.rs`.
    pub(crate) name: &'static str,
    /// Whether the contract requires it now (a missing source fails the
    /// step) or it is checked only once its source exists.
    pub(crate) required: bool,
    /// What the check expects, for the step's label.
    pub(crate) expects: &'static str,
    /// Runs the built binary and checks it.
    pub(crate) check: fn(&Binary) -> Result<(), String>,
}

/// The contract examples, in the order of docs/testing.md.
pub(crate) const EXAMPLES: &[Example] = &[
    Example {
        name: "hello_world",
        required: true,
        expects: r#"stdout exactly "Hello World\n", exit 0"#,
        check: check_hello_world,
    },
    Example {
        name: "display_date",
        required: true,
        expects: "5 date lines in 4..15 s, exit 0",
        check: check_display_date,
    },
    Example {
        name: "watch_fd",
        required: true,
        expects: r#"stdout exactly "Received: abc\n", exit 0"#,
        check: check_watch_fd,
    },
    Example {
        name: "signals",
        required: true,
        expects: "banner and pid lines; SIGINT, then SIGTERM: `got signal SIG...: exit`, exit 0",
        check: check_signals,
    },
    Example {
        name: "echo_server",
        required: false,
        expects: "tcp + unix + udp echo, --streams tcp echo, TLS echo (python ssl, plain and --streams); SIGINT: `shutdown`, exit 0",
        check: check_echo_server,
    },
    Example {
        name: "echo_per_core",
        required: false,
        expects: "2 loops (and --pin): one `listening on tcp` line, 2 concurrent tcp echoes byte-exact; SIGTERM (SIGINT): `shutdown`, exit 0",
        check: check_echo_per_core,
    },
    Example {
        name: "subprocess",
        required: true,
        expects:
            "child stdout/stderr copied, stdin fed, `exit status: N` (-SIGNUM), EPIPE-safe, exit 0",
        check: check_subprocess,
    },
];

/// A built example binary.
pub(crate) struct Binary {
    name: &'static str,
    path: PathBuf,
}

/// The release build of the examples, then one step per example.
pub(crate) fn steps(root: &Path) -> Vec<Step> {
    let mut steps = vec![Step::cargo(
        root,
        &["build", "--release", "-p", "evloop", "--examples"],
    )];
    let bin_dir = target_dir(root).join("release").join("examples");
    for example in EXAMPLES {
        let source = Path::new("crates/evloop/examples").join(format!("{}.rs", example.name));
        if !example.required && !root.join(&source).is_file() {
            println!(
                "xtask: note: {} is not written yet; its check is skipped until it is",
                source.display()
            );
            continue;
        }
        let binary = Binary {
            name: example.name,
            path: bin_dir.join(example.name),
        };
        let shown = binary
            .path
            .strip_prefix(root)
            .unwrap_or(&binary.path)
            .display()
            .to_string();
        let source_path = root.join(&source);
        let check = example.check;
        steps.push(Step::in_process(
            format!("{shown} ({})", example.expects),
            move || {
                if !source_path.is_file() {
                    return Err(format!(
                        "{}: missing; the `{}` example is required by the contract \
                         (docs/testing.md, step 8)",
                        source.display(),
                        binary.name
                    ));
                }
                if !binary.path.is_file() {
                    return Err(format!(
                        "{}: not built by `cargo build --release -p evloop --examples`",
                        binary.path.display()
                    ));
                }
                check(&binary)
            },
        ));
    }
    steps
}

/// `$CARGO_TARGET_DIR` (relative to the workspace root, where cargo runs),
/// else `<root>/target`. Used by every xtask command that finds built
/// binaries.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

// ---------------------------------------------------------------------------
// The checks

fn check_hello_world(bin: &Binary) -> Result<(), String> {
    expect_exact_stdout(bin, "Hello World\n")
}

fn check_watch_fd(bin: &Binary) -> Result<(), String> {
    expect_exact_stdout(bin, "Received: abc\n")
}

fn expect_exact_stdout(bin: &Binary, expected: &str) -> Result<(), String> {
    let mut run = Running::spawn(bin, &[])?;
    run.read_to_eof()?;
    run.expect_exit_0()?;
    if run.stdout != expected {
        return Err(run.fail(format!("stdout must be exactly {expected:?}")));
    }
    Ok(())
}

fn check_display_date(bin: &Binary) -> Result<(), String> {
    let mut run = Running::spawn(bin, &[])?;
    run.read_to_eof()?;
    run.expect_exit_0()?;
    let took = run.started.elapsed();
    let stdout = run.stdout.clone();
    let lines: Vec<&str> = stdout.lines().collect();
    if lines.len() != 5 || lines.iter().any(|line| line.trim().is_empty()) {
        return Err(run.fail("expected exactly 5 non-empty lines (one date/time a second)"));
    }
    if took < Duration::from_secs(4) || took >= Duration::from_secs(15) {
        return Err(run.fail(format!(
            "took {took:.2?}; 5 lines a second apart take at least 4 s (and under 15 s)"
        )));
    }
    Ok(())
}

fn check_signals(bin: &Binary) -> Result<(), String> {
    for signal in ["INT", "TERM"] {
        signals_once(bin, signal)?;
    }
    Ok(())
}

fn signals_once(bin: &Binary, signal: &str) -> Result<(), String> {
    const BANNER: &str = "Event loop running forever, press Ctrl+C to interrupt.";
    let mut run = Running::spawn(bin, &[])?;
    let pid_line = format!("pid {}: send SIGINT or SIGTERM to exit.", run.pid());
    let (mut banner, mut pid) = (false, false);
    while !(banner && pid) {
        let Some(line) = run.next_line()? else {
            return Err(run.fail(format!(
                "stdout closed before both {BANNER:?} and {pid_line:?} were printed"
            )));
        };
        let line = line.trim_end_matches(['\n', '\r']);
        if line == BANNER {
            banner = true;
        } else if line == pid_line {
            pid = true;
        } else if line.starts_with("pid ") {
            let printed = line.to_owned();
            return Err(run.fail(format!(
                "printed {printed:?}, expected {pid_line:?} (its own pid)"
            )));
        }
    }
    run.signal(signal)?;
    run.read_to_eof()?;
    run.expect_exit_0()?;
    let expected = format!("got signal SIG{signal}: exit");
    if !run.stdout.lines().any(|line| line == expected) {
        return Err(run.fail(format!("no line {expected:?} after SIG{signal}")));
    }
    Ok(())
}

fn check_echo_server(bin: &Binary) -> Result<(), String> {
    echo_all_kinds(bin)?;
    echo_streams(bin)?;
    echo_tls(bin, false)?;
    echo_tls(bin, true)
}

/// TCP, unix and UDP listeners built on protocols.
fn echo_all_kinds(bin: &Binary) -> Result<(), String> {
    let scratch = Scratch::new("echo")?;
    let socket_path = scratch.dir.join("echo.sock");
    let socket_arg = socket_path.display().to_string();
    let mut run = Running::spawn(
        bin,
        &[
            "--tcp",
            "127.0.0.1:0",
            "--unix",
            &socket_arg,
            "--udp",
            "127.0.0.1:0",
        ],
    )?;
    let listeners = read_listeners(&mut run, &["tcp", "unix", "udp"])?;

    let tcp = parse_addr(&mut run, &listeners[0])?;
    let time_left = run.time_left()?;
    let result = TcpStream::connect_timeout(&tcp, time_left)
        .map_err(|e| format!("connect to tcp {tcp}: {e}"))
        .and_then(|stream| echo_round_trip(stream, time_left));
    result.map_err(|e| run.fail(format!("tcp echo: {e}")))?;

    let unix = PathBuf::from(&listeners[1]);
    let time_left = run.time_left()?;
    let result = UnixStream::connect(&unix)
        .map_err(|e| format!("connect to unix {}: {e}", unix.display()))
        .and_then(|stream| echo_round_trip(stream, time_left));
    result.map_err(|e| run.fail(format!("unix echo: {e}")))?;

    let udp = parse_addr(&mut run, &listeners[2])?;
    let time_left = run.time_left()?;
    udp_round_trip(udp, time_left).map_err(|e| run.fail(format!("udp echo: {e}")))?;

    shut_down(&mut run)?;
    if socket_path.symlink_metadata().is_ok() {
        return Err(run.fail(format!(
            "the unix socket file {} is still there after shutdown",
            socket_path.display()
        )));
    }
    Ok(())
}

/// TLS listeners (with a certificate openssl makes), checked by a client we
/// did not write: Python's `ssl` module echoes 256 KiB byte-exact, then
/// `unwrap()` needs our `close_notify` in answer to its own.
fn echo_tls(bin: &Binary, streams: bool) -> Result<(), String> {
    let scratch = Scratch::new("echo-tls")?;
    let (cert, key) = (scratch.dir.join("cert.pem"), scratch.dir.join("key.pem"));
    make_certificate(&cert, &key)?;
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let mut args = vec![
        "--tcp",
        "127.0.0.1:0",
        "--tls-cert",
        &cert_arg,
        "--tls-key",
        &key_arg,
    ];
    if streams {
        args.push("--streams");
    }
    let mut run = Running::spawn(bin, &args)?;
    let listeners = read_listeners(&mut run, &["tls"])?;
    let addr = parse_addr(&mut run, &listeners[0])?;
    let script = scratch.dir.join("client.py");
    std::fs::write(&script, TLS_CLIENT_PY).map_err(|e| format!("{}: {e}", script.display()))?;
    let output = Command::new("python3")
        .arg(&script)
        .arg(&cert)
        .arg(addr.port().to_string())
        .output()
        .map_err(|e| run.fail(format!("python3 (needed for the TLS check): {e}")))?;
    if !output.status.success() || String::from_utf8_lossy(&output.stdout).trim() != "ok" {
        return Err(run.fail(format!(
            "TLS echo{}: python3 client said {:?} {:?}",
            if streams { " (--streams)" } else { "" },
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    if !streams {
        tls_client_round_trip(bin, &cert, addr.port()).map_err(|e| run.fail(e))?;
    }
    shut_down(&mut run)
}

/// The `tls_client` example against the TLS echo server: it verifies the
/// certificate, gets its line back and names TLS 1.3.
fn tls_client_round_trip(echo_server: &Binary, cert: &Path, port: u16) -> Result<(), String> {
    let client = echo_server.path.with_file_name("tls_client");
    let output = Command::new(&client)
        .args(["127.0.0.1", &port.to_string(), "--server-name", "localhost"])
        .arg("--ca")
        .arg(cert)
        .args(["--message", "ping over tls"])
        .output()
        .map_err(|e| format!("{}: {e}", client.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = ["reply: ping over tls", "version: TLSv1.3"];
    if !output.status.success() || !expected.iter().all(|line| lines.contains(line)) {
        return Err(format!(
            "tls_client: expected lines {expected:?}, got {stdout:?} (stderr {:?}, {})",
            String::from_utf8_lossy(&output.stderr),
            output.status
        ));
    }
    Ok(())
}

/// A client that verifies the certificate, echoes 256 KiB and shuts TLS
/// down cleanly; prints `ok`.
const TLS_CLIENT_PY: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=20) as raw:
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    data = bytes((i * 7 + i // 251) % 256 for i in range(256 * 1024))
    tls.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        chunk = tls.recv(65536)
        if not chunk:
            break
        got += chunk
    assert bytes(got) == data, f"echo differs: {len(got)} bytes back"
    tls.unwrap()
print("ok")
"#;

/// A self-signed certificate for localhost/127.0.0.1 (openssl).
fn make_certificate(cert: &Path, key: &Path) -> Result<(), String> {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // webpki (rustls) refuses a CA certificate as a server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("openssl (needed for the TLS check; .ci/run installs it): {e}"))?;
    if !status.success() {
        return Err(format!("openssl req failed: {status}"));
    }
    Ok(())
}

/// A TCP listener built on streams instead of a protocol.
fn echo_streams(bin: &Binary) -> Result<(), String> {
    let mut run = Running::spawn(bin, &["--streams", "--tcp", "127.0.0.1:0"])?;
    let listeners = read_listeners(&mut run, &["tcp"])?;
    let tcp = parse_addr(&mut run, &listeners[0])?;
    let time_left = run.time_left()?;
    let result = TcpStream::connect_timeout(&tcp, time_left)
        .map_err(|e| format!("connect to tcp {tcp}: {e}"))
        .and_then(|stream| echo_round_trip(stream, time_left));
    result.map_err(|e| run.fail(format!("--streams tcp echo: {e}")))?;
    shut_down(&mut run)
}

/// `echo_per_core`: one loop per core, each with its own `SO_REUSEPORT`
/// listener; two connections at once (likely on different loops) echo
/// byte-exact; a signal stops every loop. Run with two loops (SIGTERM) and
/// with one pinned loop per allowed CPU (SIGINT).
fn check_echo_per_core(bin: &Binary) -> Result<(), String> {
    for (args, signal) in [
        (&["--tcp", "127.0.0.1:0", "--loops", "2"][..], "TERM"),
        (&["--tcp", "127.0.0.1:0", "--pin"][..], "INT"),
    ] {
        let mut run = Running::spawn(bin, args)?;
        let listeners = read_listeners(&mut run, &["tcp"])?;
        let tcp = parse_addr(&mut run, &listeners[0])?;
        let time_left = run.time_left()?;
        let connect = || {
            TcpStream::connect_timeout(&tcp, time_left)
                .map_err(|e| format!("connect to tcp {tcp}: {e}"))
        };
        let streams = connect().and_then(|a| Ok((a, connect()?)));
        let result = streams.and_then(|(a, b)| {
            let other = thread::spawn(move || echo_round_trip(b, time_left));
            let first = echo_round_trip(a, time_left);
            let second = other
                .join()
                .unwrap_or_else(|_| Err("echo thread panicked".to_owned()));
            first.and(second)
        });
        result.map_err(|e| run.fail(format!("tcp echo ({}): {e}", args.join(" "))))?;
        if run.stdout.matches("listening on").count() != 1 {
            return Err(run.fail("expected exactly one `listening on` line"));
        }
        shut_down_by(&mut run, signal)?;
    }
    Ok(())
}

/// Reads stdout until one `listening on KIND ADDR` line per kind was
/// printed; returns the addresses in the order of `kinds`.
fn read_listeners(run: &mut Running, kinds: &[&str]) -> Result<Vec<String>, String> {
    let mut found: Vec<Option<String>> = vec![None; kinds.len()];
    while found.iter().any(Option::is_none) {
        let Some(line) = run.next_line()? else {
            return Err(run.fail(format!(
                "stdout closed before a `listening on` line for each of {kinds:?}"
            )));
        };
        if let Some((kind, addr)) = parse_listening(&line) {
            if let Some(i) = kinds.iter().position(|k| *k == kind) {
                found[i] = Some(addr.to_owned());
            }
        }
    }
    Ok(found.into_iter().flatten().collect())
}

/// `listening on tcp 127.0.0.1:80` → `("tcp", "127.0.0.1:80")`.
fn parse_listening(line: &str) -> Option<(&str, &str)> {
    let rest = line
        .trim_end_matches(['\n', '\r'])
        .strip_prefix("listening on ")?;
    let (kind, addr) = rest.split_once(' ')?;
    let addr = addr.trim();
    (!addr.is_empty()).then_some((kind, addr))
}

fn parse_addr(run: &mut Running, addr: &str) -> Result<SocketAddr, String> {
    addr.parse()
        .map_err(|e| run.fail(format!("`{addr}` is not HOST:PORT: {e}")))
}

/// SIGINT, then expect `shutdown`, EOF and exit code 0.
fn shut_down(run: &mut Running) -> Result<(), String> {
    shut_down_by(run, "INT")
}

/// `SIG<signal>`, then expect `shutdown`, EOF and exit code 0.
fn shut_down_by(run: &mut Running, signal: &str) -> Result<(), String> {
    run.signal(signal)?;
    run.read_to_eof()?;
    run.expect_exit_0()?;
    if !run.stdout.lines().any(|line| line == "shutdown") {
        return Err(run.fail(format!("no `shutdown` line after SIG{signal}")));
    }
    Ok(())
}

/// A stream socket both sides of which the echo check uses.
trait EchoStream: Read + Write + Send + Sized + 'static {
    fn duplicate(&self) -> io::Result<Self>;
    fn close_write(&self) -> io::Result<()>;
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()>;
}

impl EchoStream for TcpStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl EchoStream for UnixStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

/// Sends [`ECHO_BYTES`] from a writer thread while reading the echo, shuts
/// the write side down, and expects the same bytes back, then EOF.
fn echo_round_trip<S: EchoStream>(mut stream: S, timeout: Duration) -> Result<(), String> {
    let payload = payload(ECHO_BYTES);
    stream
        .set_timeouts(timeout)
        .map_err(|e| format!("set timeouts: {e}"))?;
    let mut writer = stream.duplicate().map_err(|e| format!("clone: {e}"))?;
    let sent = payload.clone();
    let writing = thread::spawn(move || -> io::Result<()> {
        writer.write_all(&sent)?;
        writer.flush()?;
        writer.close_write()
    });
    let mut echoed = Vec::with_capacity(ECHO_BYTES);
    let read = stream.read_to_end(&mut echoed);
    let written = writing
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")));
    written.map_err(|e| format!("sending {ECHO_BYTES} bytes: {e}"))?;
    read.map_err(|e| {
        format!(
            "no echo and EOF within {timeout:.1?} after sending {ECHO_BYTES} bytes and \
             shutting down the write side ({} bytes came back): {e}",
            echoed.len()
        )
    })?;
    compare_echo(&payload, &echoed)
}

fn compare_echo(sent: &[u8], echoed: &[u8]) -> Result<(), String> {
    if sent == echoed {
        return Ok(());
    }
    match sent.iter().zip(echoed).position(|(a, b)| a != b) {
        Some(at) => Err(format!(
            "echo differs from what was sent at byte {at} (sent {}, got {} bytes)",
            sent.len(),
            echoed.len()
        )),
        None => Err(format!(
            "sent {} bytes, got {} back before EOF",
            sent.len(),
            echoed.len()
        )),
    }
}

fn udp_round_trip(server: SocketAddr, timeout: Duration) -> Result<(), String> {
    const PING: &[u8] = b"evloop xtask udp ping";
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| format!("set timeout: {e}"))?;
    socket
        .send_to(PING, server)
        .map_err(|e| format!("send to {server}: {e}"))?;
    let mut buf = [0_u8; 2048];
    let (n, _from) = socket
        .recv_from(&mut buf)
        .map_err(|e| format!("no datagram back from {server} within {timeout:.1?}: {e}"))?;
    if &buf[..n] == PING {
        Ok(())
    } else {
        Err(format!(
            "sent {:?}, got {:?}",
            String::from_utf8_lossy(PING),
            String::from_utf8_lossy(&buf[..n])
        ))
    }
}

/// Bytes whose pattern does not repeat at any power-of-two stride, so a
/// dropped, repeated or reordered chunk shows.
fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from(i % 251).unwrap_or_default())
        .collect()
}

// ---------------------------------------------------------------------------
// Running a child under the watchdog

/// A running example: stdout arrives line by line through a reader thread,
/// stderr is collected by another, and everything is bounded by the
/// watchdog deadline. Dropping it kills the child if it still runs.
struct Running {
    /// The command line, for messages.
    command: String,
    child: Child,
    lines: Receiver<String>,
    /// Everything read from stdout so far.
    stdout: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    started: Instant,
    deadline: Instant,
    status: Option<ExitStatus>,
}

impl Running {
    fn spawn(bin: &Binary, args: &[&str]) -> Result<Running, String> {
        let mut command = vec![bin.name.to_owned()];
        command.extend(args.iter().map(|a| (*a).to_owned()));
        let command = command.join(" ");
        println!("    running: {command}");
        let mut child = Command::new(&bin.path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{command}: could not start {}: {e}", bin.path.display()))?;
        let started = Instant::now();

        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line).into_owned();
                            if sender.send(text).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut chunk = [0_u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]);
                }
            });
        }
        Ok(Running {
            command,
            child,
            lines,
            stdout: String::new(),
            stderr,
            started,
            deadline: started + WATCHDOG,
            status: None,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The time left before the watchdog, or the watchdog's failure.
    fn time_left(&mut self) -> Result<Duration, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(10) {
            Err(self.timed_out())
        } else {
            Ok(left)
        }
    }

    /// The next stdout line (with its newline, if any); `None` at EOF.
    fn next_line(&mut self) -> Result<Option<String>, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.stdout.push_str(&line);
                Ok(Some(line))
            }
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(self.timed_out()),
        }
    }

    fn read_to_eof(&mut self) -> Result<(), String> {
        while self.next_line()?.is_some() {}
        Ok(())
    }

    fn wait(&mut self) -> Result<ExitStatus, String> {
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            match self.child.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) if Instant::now() >= self.deadline => return Err(self.timed_out()),
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(self.fail(format!("wait: {e}"))),
            }
        }
    }

    fn expect_exit_0(&mut self) -> Result<(), String> {
        let status = self.wait()?;
        if status.code() == Some(0) {
            Ok(())
        } else {
            Err(self.fail(format!("exited with {status}; expected exit code 0")))
        }
    }

    /// Sends `SIG<signal>` with `/bin/kill -<signal> <pid>`.
    fn signal(&mut self, signal: &str) -> Result<(), String> {
        let kill = if Path::new("/bin/kill").is_file() {
            "/bin/kill"
        } else {
            "kill"
        };
        let pid = self.pid().to_string();
        match Command::new(kill)
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status()
        {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(self.fail(format!("`{kill} -{signal} {pid}` exited with {status}"))),
            Err(e) => Err(self.fail(format!("could not run `{kill} -{signal} {pid}`: {e}"))),
        }
    }

    fn timed_out(&mut self) -> String {
        self.fail(format!(
            "still running after the {} s watchdog: killed it",
            WATCHDOG.as_secs()
        ))
    }

    /// Kills the child if it still runs and describes the failure with what
    /// it printed.
    fn fail(&mut self, message: impl Display) -> String {
        self.kill();
        // Give the reader threads a moment to drain the pipes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.stdout.push_str(&line);
        }
        let stderr = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        let stderr = String::from_utf8_lossy(&stderr);
        let status = self
            .status
            .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
        format!(
            "example `{}`: {message}\n  status: {status}\n  stdout: {:?}\n  stderr: {}",
            self.command,
            tail(&self.stdout),
            tail(&stderr).trim_end()
        )
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                return;
            }
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last few KiB of `text`, on a char boundary.
fn tail(text: &str) -> &str {
    const KEEP: usize = 4096;
    let mut start = text.len().saturating_sub(KEEP);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("evloop-xtask-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("create scratch dir {}: {e}", dir.display()))?;
        Ok(Scratch { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// The `subprocess` example

/// `subprocess -- PROGRAM ARGS...`: output copied, stdin fed, `exit status:
/// N` last, exit 0 — for an exit code, a signal death, a large echo through
/// `cat`, and a child that exits without reading a large stdin (EPIPE).
fn check_subprocess(bin: &Binary) -> Result<(), String> {
    let input = b"hello from stdin\n".repeat(100);
    let script = "cat; echo err >&2; exit 3";
    let run = run_fed(bin, &["--", "sh", "-c", script], &input)?;
    run.expect(&[&input[..], b"exit status: 3\n"].concat(), Some(b"err\n"))?;

    let run = run_fed(bin, &["--", "sh", "-c", "kill -TERM $$"], b"")?;
    run.expect(b"exit status: -15\n", None)?;

    let big = payload(1024 * 1024 + 1);
    let run = run_fed(bin, &["--", "cat"], &big)?;
    run.expect(&[&big[..], b"exit status: 0\n"].concat(), None)?;

    // The child never reads: 16 MiB of stdin must neither hang nor kill us.
    let run = run_fed(bin, &["--", "true"], &payload(16 * 1024 * 1024))?;
    run.expect(b"exit status: 0\n", None)
}

/// One finished run of an example fed with stdin.
struct FedRun {
    command: String,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl FedRun {
    /// Exit 0, stdout exactly `stdout`, stderr exactly `stderr` if given.
    fn expect(&self, stdout: &[u8], stderr: Option<&[u8]>) -> Result<(), String> {
        let shown = |b: &[u8]| {
            let text = String::from_utf8_lossy(b);
            tail(&text).to_owned()
        };
        let fail = |what: String| {
            format!(
                "example `{}`: {what}\n  status: {}\n  stdout (tail): {:?}\n  stderr: {:?}",
                self.command,
                self.status,
                shown(&self.stdout),
                shown(&self.stderr)
            )
        };
        if self.status.code() != Some(0) {
            return Err(fail("expected exit code 0".to_owned()));
        }
        if self.stdout != stdout {
            return Err(fail(format!(
                "stdout differs: {} bytes, expected {} ending {:?}",
                self.stdout.len(),
                stdout.len(),
                shown(&stdout[stdout.len().saturating_sub(40)..])
            )));
        }
        if let Some(stderr) = stderr {
            if self.stderr != stderr {
                return Err(fail(format!("stderr should be {:?}", shown(stderr))));
            }
        }
        Ok(())
    }
}

/// Runs the example with `input` on its stdin (a pipe; write errors such
/// as EPIPE once the example closed it are expected), collecting stdout and
/// stderr, under the watchdog.
fn run_fed(bin: &Binary, args: &[&str], input: &[u8]) -> Result<FedRun, String> {
    let command = format!(
        "{} {} (stdin: {} bytes)",
        bin.name,
        args.join(" "),
        input.len()
    );
    println!("    running: {command}");
    let mut child = Command::new(&bin.path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{command}: could not start {}: {e}", bin.path.display()))?;
    let deadline = Instant::now() + WATCHDOG;
    let mut stdin = child.stdin.take();
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        if let Some(pipe) = stdin.as_mut() {
            let _ = pipe.write_all(&input);
        }
        drop(stdin);
    });
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut data = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut data);
            }
            data
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "example `{command}`: still running after the {} s watchdog: killed it",
                    WATCHDOG.as_secs()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("example `{command}`: wait: {e}")),
        }
    };
    let _ = feeder.join();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(FedRun {
        command,
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(
            parse_listening("listening on tcp 127.0.0.1:4321\n"),
            Some(("tcp", "127.0.0.1:4321"))
        );
        assert_eq!(
            parse_listening("listening on unix /tmp/x y.sock"),
            Some(("unix", "/tmp/x y.sock"))
        );
        assert_eq!(
            parse_listening("listening on udp [::1]:53\r\n"),
            Some(("udp", "[::1]:53"))
        );
        assert_eq!(parse_listening("listening on tcp"), None);
        assert_eq!(parse_listening("shutdown"), None);
    }

    #[test]
    fn echo_comparison_names_the_first_difference() {
        assert!(compare_echo(b"abc", b"abc").is_ok());
        let short = compare_echo(b"abcd", b"ab").unwrap_err();
        assert!(short.contains("got 2 back"), "{short}");
        let wrong = compare_echo(b"abcd", b"abXd").unwrap_err();
        assert!(wrong.contains("at byte 2"), "{wrong}");
    }

    #[test]
    fn payload_is_not_periodic_at_powers_of_two() {
        let data = payload(ECHO_BYTES);
        assert_eq!(data.len(), ECHO_BYTES);
        for stride in [256, 1024, 4096, 32768] {
            assert_ne!(data[..stride], data[stride..2 * stride]);
        }
    }

    #[test]
    fn every_example_is_in_the_contract_once() {
        let mut names: Vec<&str> = EXAMPLES.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EXAMPLES.len());
        for required in ["hello_world", "display_date", "watch_fd", "signals"] {
            assert!(EXAMPLES.iter().any(|e| e.name == required && e.required));
        }
    }

    #[test]
    fn a_child_that_hangs_is_bounded_and_named() {
        // `sleep` stands in for an example; the watchdog is shortened here.
        let bin = Binary {
            name: "sleep",
            path: PathBuf::from("/bin/sleep"),
        };
        if !bin.path.is_file() {
            return;
        }
        let mut run = Running::spawn(&bin, &["60"]).expect("spawn sleep");
        run.deadline = Instant::now() + Duration::from_millis(200);
        let err = run.read_to_eof().unwrap_err();
        assert!(err.contains("example `sleep 60`"), "{err}");
        assert!(err.contains("watchdog"), "{err}");
        assert!(run.status.is_some(), "the child was reaped");
    }
}
