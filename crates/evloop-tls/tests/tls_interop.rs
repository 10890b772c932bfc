//! docs/behaviour.md 16.1: real peers we did not write. Python's `ssl` module as a
//! client against our server and as a server against our client (1 MiB
//! byte-exact echo, close_notify answered both ways through `unwrap()`), and
//! `openssl s_client` / `openssl s_server`.
//!
//! python3 and openssl are required: CI has both, and `.ci/run` installs
//! openssl when it is missing. Without them these tests fail, loudly.

mod support;

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use evloop_tls::{ServerTls, TlsTransportExt};
use evloop_transports::{
    create_connection, create_server, ConnectOptions, Protocol, Server, ServerOptions, Transport,
};
use support::*;

fn need_python() -> PathBuf {
    python3()
        .expect("python3 is required for the TLS interop tests (CI has it; install python3 3.11+)")
}

fn need_openssl() -> PathBuf {
    openssl().expect(
        "openssl is required for the TLS interop tests (Debian: apt-get install openssl; \
         .ci/run installs it when missing)",
    )
}

/// The PKI as PEM files, and the scripts, in a scratch directory.
struct Files {
    dir: Scratch,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn files(name: &str) -> Files {
    let dir = Scratch::new(name);
    let ca = dir.file("ca.pem", &pki().ca_pem);
    let (cert, key) = server_pem_files(&dir);
    Files { dir, ca, cert, key }
}

/// Echoes and records what happened to the connection.
#[derive(Default)]
struct Log {
    made: usize,
    received: usize,
    eof: bool,
    lost: Option<Option<io::ErrorKind>>,
    version: String,
}

struct LoggedEcho(Rc<RefCell<Log>>, Option<Transport>);

impl Protocol for LoggedEcho {
    fn connection_made(&mut self, transport: Transport) {
        let mut log = self.0.borrow_mut();
        log.made += 1;
        log.version = transport.tls_info().unwrap().protocol_version;
        self.1 = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.0.borrow_mut().received += data.len();
        if let Some(t) = &self.1 {
            t.write(data);
        }
    }
    fn eof_received(&mut self) -> bool {
        self.0.borrow_mut().eof = true;
        false
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.0.borrow_mut().lost = Some(error.as_ref().map(io::Error::kind));
        self.1 = None;
    }
}

/// Our TLS echo server (from the PEM files, as a user would load them).
fn our_server(fx: &Fixture, f: &Files) -> (Server, u16, Rc<RefCell<Log>>) {
    let tls = ServerTls::from_pem_files(&f.cert, &f.key).expect("server PEM files");
    let log = Rc::new(RefCell::new(Log::default()));
    let shared = log.clone();
    let options = ServerOptions::default().host(["127.0.0.1"]).tls(tls);
    let server = fx
        .run(create_server(
            &fx.lp,
            move || LoggedEcho(shared.clone(), None),
            options,
        ))
        .unwrap();
    let port = server.sockets()[0].as_inet().unwrap().port();
    (server, port, log)
}

/// Runs the loop until `child` exits (at most `limit`); kills it after.
fn wait_child(fx: &Fixture, child: &mut Child, limit: Duration) -> ExitStatus {
    let mut status = None;
    let lp = fx.lp.clone();
    let deadline = std::time::Instant::now() + limit;
    fx.run_for(
        limit + Duration::from_secs(5),
        until(&lp, || {
            status = child.try_wait().unwrap();
            status.is_some() || std::time::Instant::now() > deadline
        }),
    );
    match status {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{child:?} did not exit within {limit:?}");
        }
    }
}

/// Drains a child's pipe in a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (out, thread)
}

fn text(bytes: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&bytes.lock().unwrap()).into_owned()
}

const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, cafile, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
ctx = ssl.create_default_context(cafile=cafile)
raw = socket.create_connection(("127.0.0.1", port), timeout=20)
s = ctx.wrap_socket(raw, server_hostname="localhost")
version = s.version()
s.sendall(data)
got = bytearray()
while len(got) < len(data):
    chunk = s.recv(65536)
    if not chunk:
        sys.exit("EOF after %d bytes" % len(got))
    got += chunk
if bytes(got) != data:
    sys.exit("echo differs")
# close_notify: ours out, the server's back (unwrap fails without it).
plain = s.unwrap()
plain.close()
print("OK", len(got), version, flush=True)
"#;

#[test]
fn spec_16_1_python_ssl_client_against_our_server() {
    let python = need_python();
    let fx = Fixture::new();
    let f = files("py-client");
    let script = f.dir.file("client.py", PY_CLIENT);
    let data = f.dir.path("payload.bin");
    std::fs::write(&data, payload(1 << 20)).unwrap();
    let (server, port, log) = our_server(&fx, &f);
    let mut child = Command::new(python)
        .arg(&script)
        .arg(port.to_string())
        .arg(&f.ca)
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let (stdout, t1) = drain(child.stdout.take().unwrap());
    let (stderr, t2) = drain(child.stderr.take().unwrap());
    let status = wait_child(&fx, &mut child, Duration::from_secs(40));
    t1.join().unwrap();
    t2.join().unwrap();
    let (stdout, stderr) = (text(&stdout), text(&stderr));
    assert!(status.success(), "python client failed: {stdout}{stderr}");
    assert_eq!(stdout.trim(), "OK 1048576 TLSv1.3", "{stderr}");
    let l = log.clone();
    fx.run(until(&fx.lp.clone(), move || l.borrow().lost.is_some()));
    let log = log.borrow();
    assert_eq!(log.made, 1);
    assert_eq!(log.received, 1 << 20);
    assert_eq!(log.version, "TLSv1.3");
    // Python's close_notify was our EOF; the connection ended cleanly.
    assert!(log.eof);
    assert_eq!(log.lost, Some(None));
    drop(log);
    server.close();
    fx.run(server.wait_closed());
    drop(f);
    fx.finish();
}

const PY_SERVER: &str = r#"
import socket, ssl, sys
cert, key = sys.argv[1], sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
ls.settimeout(20)
print(ls.getsockname()[1], flush=True)
conn, _ = ls.accept()
conn.settimeout(20)
s = ctx.wrap_socket(conn, server_side=True)
n = 0
while True:
    chunk = s.recv(65536)
    if not chunk:  # the client's close_notify
        break
    s.sendall(chunk)
    n += len(chunk)
s.unwrap().close()  # our close_notify back
ls.close()
print("server done", n, flush=True)
"#;

#[test]
fn spec_16_1_our_client_against_python_ssl_server() {
    let python = need_python();
    let fx = Fixture::new();
    let f = files("py-server");
    let script = f.dir.file("server.py", PY_SERVER);
    let mut child = Command::new(python)
        .arg(&script)
        .arg(&f.cert)
        .arg(&f.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let port: u16 = first
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("python server printed {first:?}"));
    let (rest, t1) = drain(stdout);
    let (stderr, t2) = drain(child.stderr.take().unwrap());
    // By IP: the certificate's IP SAN is what is checked.
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default().tls(client_tls().shutdown_timeout(Duration::from_secs(10))),
        ))
        .expect("connect to python");
    let info = transport.tls_info().unwrap();
    assert_eq!(info.protocol_version, "TLSv1.3");
    assert_eq!(info.peer_certificates, vec![pki().server_chain[0].to_vec()]);
    let sent = payload(1 << 20);
    transport.write(&sent);
    let lp = fx.lp.clone();
    fx.run(until(&lp, || {
        client.with(|c| c.data.len()).unwrap() >= sent.len()
    }));
    assert!(client.with(|c| c.data == sent).unwrap(), "echo differs");
    // Our close_notify; Python answers with its own (unwrap), so the close
    // is clean, not the shutdown timeout.
    transport.close();
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert_eq!(
        client.with(|c| c.events.last().cloned()).unwrap(),
        Some(Event::Lost(None))
    );
    let status = wait_child(&fx, &mut child, Duration::from_secs(20));
    t1.join().unwrap();
    t2.join().unwrap();
    let (rest, stderr) = (text(&rest), text(&stderr));
    assert!(status.success(), "python server failed: {rest}{stderr}");
    assert_eq!(rest.trim(), "server done 1048576", "{stderr}");
    drop(f);
    fx.finish();
}

#[test]
fn spec_16_1_our_client_against_openssl_s_server() {
    let openssl = need_openssl();
    let fx = Fixture::new();
    let f = files("s-server");
    let mut child = Command::new(openssl)
        .arg("s_server")
        .arg("-cert")
        .arg(&f.cert)
        .arg("-key")
        .arg(&f.key)
        .args(["-accept", "127.0.0.1:0", "-naccept", "1", "-rev"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let port = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("s_server ended before listening");
        }
        if let Some(addr) = line.trim().strip_prefix("ACCEPT ") {
            let port = addr.rsplit(':').next().unwrap();
            break port.parse::<u16>().unwrap();
        }
    };
    let (rest, t1) = drain(stdout);
    let (stderr, t2) = drain(child.stderr.take().unwrap());
    let lp = fx.lp.clone();
    let (transport, client) = fx
        .run(create_connection(
            &fx.lp,
            move || Recorder::new(&lp),
            Some("127.0.0.1"),
            Some(port),
            ConnectOptions::default().tls(client_tls().server_hostname("localhost")),
        ))
        .expect("connect to s_server");
    let info = transport.tls_info().unwrap();
    assert_eq!(info.protocol_version, "TLSv1.3");
    transport.write(b"hello evloop\n");
    let lp = fx.lp.clone();
    fx.run(until(&lp, || client.with(|c| c.data.len()).unwrap() >= 13));
    assert_eq!(client.with(|c| c.data.clone()).unwrap(), b"poolve olleh\n");
    // "CLOSE" makes s_server send close_notify: our EOF, then a clean end.
    transport.write(b"CLOSE\n");
    fx.run(client.with(|c| c.lost.clone()).unwrap()).unwrap();
    assert_eq!(
        client.with(|c| c.events.clone()).unwrap(),
        vec![Event::Made, Event::Data(13), Event::Eof, Event::Lost(None)]
    );
    let status = wait_child(&fx, &mut child, Duration::from_secs(20));
    t1.join().unwrap();
    t2.join().unwrap();
    let (rest, stderr) = (text(&rest), text(&stderr));
    assert!(status.success(), "s_server: {status}: {rest}{stderr}");
    assert!(stderr.contains("CONNECTION CLOSED"), "{rest}{stderr}");
    drop(f);
    fx.finish();
}

#[test]
fn spec_16_1_openssl_s_client_against_our_server() {
    let openssl = need_openssl();
    let fx = Fixture::new();
    let f = files("s-client");
    let (server, port, log) = our_server(&fx, &f);
    let mut child = Command::new(openssl)
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(&f.ca)
        .args([
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
            "-servername",
            "localhost",
            "-quiet",
            "-no_ign_eof",
            "-nocommands",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    let (stdout, t1) = drain(child.stdout.take().unwrap());
    let (stderr, t2) = drain(child.stderr.take().unwrap());
    let line = b"hello from s_client\n";
    stdin.write_all(line).unwrap();
    stdin.flush().unwrap();
    let out = stdout.clone();
    let child_alive = RefCell::new(true);
    fx.run_for(
        Duration::from_secs(20),
        until(&fx.lp.clone(), || {
            if child.try_wait().unwrap().is_some() {
                *child_alive.borrow_mut() = false;
                return true;
            }
            out.lock().unwrap().ends_with(line)
        }),
    );
    assert!(
        *child_alive.borrow(),
        "s_client ended early: {}{}",
        text(&stdout),
        text(&stderr)
    );
    // EOF on its input: s_client sends close_notify and exits.
    drop(stdin);
    let status = wait_child(&fx, &mut child, Duration::from_secs(20));
    t1.join().unwrap();
    t2.join().unwrap();
    let (out, err) = (text(&stdout), text(&stderr));
    assert!(status.success(), "s_client: {status}: {out}{err}");
    assert_eq!(out, "hello from s_client\n", "{err}");
    let l = log.clone();
    fx.run(until(&fx.lp.clone(), move || l.borrow().lost.is_some()));
    let log = log.borrow();
    assert_eq!(log.made, 1);
    assert_eq!(log.version, "TLSv1.3");
    assert_eq!(log.received, line.len());
    assert!(log.eof, "s_client's close_notify is our eof_received");
    assert_eq!(log.lost, Some(None));
    drop(log);
    server.close();
    fx.run(server.wait_closed());
    drop(f);
    fx.finish();
}
