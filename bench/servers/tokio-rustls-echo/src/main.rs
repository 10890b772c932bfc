//! `tokio-rustls-echo`: a tokio current_thread + tokio-rustls TLS echo
//! server, the baseline of `cargo xtask bench tls` (bench-only: tokio is
//! never a dependency of the evloop crates).
//!
//! Mirrors `tokio-echo` the way a tokio user would write it with TLS: a
//! `TcpListener` accept loop, a task per connection that runs the handshake
//! (`TlsAcceptor::accept`), then a `read`/`write_all` loop through one
//! 256 KiB buffer (evloop's loop reads into a 256 KiB buffer too), and
//! `TCP_NODELAY` on accepted sockets. The server config is built exactly as
//! evloop-tls builds its own: rustls 0.23 with the `ring` provider, the safe
//! default protocol versions, no client auth, one certificate, rustls's
//! default in-memory session cache (so TLS 1.3 resumption works the same).
//! On the client's `close_notify` (a read of 0) it answers with its own
//! (`shutdown`) and closes.
//!
//! Command line, as the evloop `echo_server` example's TLS mode:
//! `--tls-cert PEM --tls-key PEM --tcp ADDR` (repeatable; port 0 picks a free
//! port); one flushed `listening on tls HOST:PORT` line per listener; on
//! SIGINT or SIGTERM it closes the listeners, prints `shutdown`, exits 0.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use lexopt::Arg::Long;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::TlsAcceptor;

/// The per-connection read buffer.
const BUFFER: usize = 256 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio-rustls-echo: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tokio-rustls-echo: {message}");
            ExitCode::FAILURE
        }
    }
}

fn server_config(cert: &PathBuf, key: &PathBuf) -> Result<rustls::ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())
}

async fn serve(args: &[String]) -> Result<(), String> {
    let mut tcp = Vec::new();
    let (mut cert, mut key) = (None, None);
    let mut parser = lexopt::Parser::from_args(args);
    let text = |parser: &mut lexopt::Parser| {
        parser
            .value()
            .and_then(lexopt::ValueExt::string)
            .map_err(|e| e.to_string())
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("tcp") => tcp.push(text(&mut parser)?),
            Long("tls-cert") => cert = Some(PathBuf::from(text(&mut parser)?)),
            Long("tls-key") => key = Some(PathBuf::from(text(&mut parser)?)),
            other => return Err(format!("unsupported: {}", other.unexpected())),
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err("--tls-cert PEM and --tls-key PEM are required".to_owned());
    };
    if tcp.is_empty() {
        return Err("give at least one --tcp ADDR".to_owned());
    }
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&cert, &key)?));
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;

    let mut lines = Vec::new();
    let mut accept_loops = Vec::new();
    for addr in &tcp {
        let listener = TcpListener::bind(addr.as_str())
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        lines.push(format!("listening on tls {local}"));
        let acceptor = acceptor.clone();
        accept_loops.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        echo(stream).await;
                    }
                });
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
    println!("shutdown");
    Ok(())
}

/// Echoes until the peer's close_notify (or EOF, or an error) through one
/// 256 KiB buffer; answers a close_notify with ours.
async fn echo(mut stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    let mut buf = vec![0_u8; BUFFER];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => {
                let _ = stream.shutdown().await;
                return;
            }
            Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
