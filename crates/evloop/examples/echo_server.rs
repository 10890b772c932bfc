//! An echo server on every transport kind: TCP (`--tcp ADDR`, repeatable),
//! unix (`--unix PATH`), UDP (`--udp ADDR`), built on a `Protocol` or, with
//! `--streams`, on streams. Port 0 picks a free port. Prints one line per
//! listener, echoes every byte (a peer's EOF: finish sending, then close),
//! keeps memory bounded under a peer that never reads (flow control pauses
//! reading), and on SIGINT/SIGTERM closes its servers, waits for them,
//! prints `shutdown` and exits 0. With `--tls-cert PEM --tls-key PEM` the
//! TCP listeners speak TLS (`listening on tls HOST:PORT`): a client's
//! `close_notify` is answered with ours, then the connection closes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use evloop::{
    Address, DatagramOptions, DatagramProtocol, DatagramTransport, Error, EventLoop, Protocol,
    Server, ServerOptions, ServerTls, StreamReader, StreamWriter, Transport, UnixServerOptions,
    DEFAULT_LIMIT,
};
use futures_lite::AsyncBufReadExt;

const USAGE: &str = "usage: echo_server [--tcp HOST:PORT]... [--unix PATH] [--udp HOST:PORT] \
                     [--tls-cert PEM --tls-key PEM] [--streams]";
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
/// How long shutdown lets connections finish sending before aborting them.
const GRACE: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Args {
    tcp: Vec<(String, u16)>,
    unix: Option<PathBuf>,
    udp: Option<(String, u16)>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    streams: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args::default();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--tcp" => parsed.tcp.push(host_port(&value()?)?),
            "--unix" => parsed.unix = Some(PathBuf::from(value()?)),
            "--udp" => parsed.udp = Some(host_port(&value()?)?),
            "--streams" => parsed.streams = true,
            "--tls-cert" => parsed.tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => parsed.tls_key = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.tcp.is_empty() && parsed.unix.is_none() && parsed.udp.is_none() {
        return Err("give at least one of --tcp, --unix, --udp".into());
    }
    if parsed.tls_cert.is_some() != parsed.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    Ok(parsed)
}

/// `HOST:PORT`, with IPv6 hosts in brackets (`[::1]:0`).
fn host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or(format!("{text:?} is not HOST:PORT"))?;
    let port = port.parse().map_err(|_| format!("bad port in {text:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_owned(), port))
}

/// Echoes on a `Protocol`, pausing reading while the peer is not reading.
#[derive(Default)]
struct Echo {
    transport: Option<Transport>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data);
        }
    }
    // false: the transport closes once what we echoed is sent.
    fn eof_received(&mut self) -> bool {
        false
    }
    fn pause_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }
    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }
}

/// Echoes each datagram to its sender.
#[derive(Default)]
struct DatagramEcho {
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for DatagramEcho {
    fn connection_made(&mut self, transport: DatagramTransport) {
        self.transport = Some(transport);
    }
    fn datagram_received(&mut self, data: &[u8], addr: Address) {
        if let Some(t) = &self.transport {
            let _ = t.sendto(data, Some(addr));
        }
    }
}

/// Echoes on streams: what `fill_buf` has is written back, then `drain`
/// waits while the peer is not reading.
async fn echo_stream(mut reader: StreamReader, writer: StreamWriter) {
    loop {
        let n = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => {
                writer.write(buf);
                buf.len()
            }
        };
        reader.consume(n);
        if writer.drain().await.is_err() {
            return;
        }
    }
    writer.close();
}

fn listening(kind: &str, addr: &dyn std::fmt::Display) {
    println!("listening on {kind} {addr}");
    let _ = std::io::stdout().flush();
}

async fn tcp_server(
    lp: &EventLoop,
    host: String,
    port: u16,
    tls: Option<&ServerTls>,
    streams: bool,
) -> Result<Server, Error> {
    let mut options = ServerOptions::default().host([host]).port(port);
    if let Some(tls) = tls {
        options = options.tls(tls.clone());
    }
    if streams {
        lp.start_server(echo_stream, options, DEFAULT_LIMIT).await
    } else {
        lp.create_server(Echo::default, options).await
    }
}

async fn unix_server(lp: &EventLoop, path: &Path, streams: bool) -> Result<Server, Error> {
    let options = UnixServerOptions::default();
    if streams {
        lp.start_unix_server(echo_stream, Some(path), options, DEFAULT_LIMIT)
            .await
    } else {
        lp.create_unix_server(Echo::default, Some(path), options)
            .await
    }
}

async fn serve(lp: EventLoop, args: Args) -> Result<(), Error> {
    let shutdown = lp.create_future::<()>();
    for signum in [SIGINT, SIGTERM] {
        let shutdown = shutdown.clone();
        lp.add_signal_handler(signum, move || {
            let _ = shutdown.set_result(());
        })?;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key)?),
        _ => None,
    };
    let tcp_kind = if tls.is_some() { "tls" } else { "tcp" };
    let mut servers = Vec::new();
    for (host, port) in args.tcp {
        let server = tcp_server(&lp, host, port, tls.as_ref(), args.streams).await?;
        for addr in server.sockets() {
            listening(tcp_kind, &addr);
        }
        servers.push(server);
    }
    if let Some(path) = &args.unix {
        servers.push(unix_server(&lp, path, args.streams).await?);
        listening("unix", &path.display());
    }
    let mut endpoint = None;
    if let Some((host, port)) = args.udp {
        let options = DatagramOptions::default().local_addr(host, port);
        let (transport, _) = lp
            .create_datagram_endpoint(DatagramEcho::default, options)
            .await?;
        if let Some(addr) = transport.sockname() {
            listening("udp", &addr);
        }
        endpoint = Some(transport);
    }
    shutdown.await?;
    for server in &servers {
        server.close();
        server.close_clients();
    }
    // Connections whose peer stopped reading would never finish flushing.
    let stragglers = servers.clone();
    let abort = lp.call_later(GRACE, move || {
        stragglers.iter().for_each(Server::abort_clients)
    })?;
    for server in &servers {
        server.wait_closed().await;
    }
    abort.cancel();
    if let Some(endpoint) = endpoint {
        endpoint.close();
    }
    println!("shutdown");
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("echo_server: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = EventLoop::new().and_then(|lp| {
        let served = lp.run_until_complete(serve(lp.clone(), args));
        lp.close()?;
        served?
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("echo_server: {error}");
            ExitCode::FAILURE
        }
    }
}
