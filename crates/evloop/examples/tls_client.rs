//! A TLS client: connects, verifies the server, sends one line, prints the
//! reply and what was negotiated.
//!
//! ```text
//! tls_client HOST PORT [--ca PEM] [--server-name NAME] [--alpn PROTO]...
//!            [--message TEXT] [--insecure]
//! ```
//!
//! The server is verified against the platform's roots, or only `--ca`'s
//! certificates when given; the name checked is `--server-name`, else HOST.
//! `--insecure` skips verification (throw-away test certificates only).
//! Output: `reply: ...`, then `version: ...`, `cipher: ...`, `alpn: ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use evloop::{ClientTls, ConnectOptions, Error, EventLoop, TlsTransportExt};
use futures_lite::AsyncBufReadExt;

const USAGE: &str = "usage: tls_client HOST PORT [--ca PEM] [--server-name NAME] \
                     [--alpn PROTO]... [--message TEXT] [--insecure]";

struct Args {
    host: String,
    port: u16,
    ca: Option<PathBuf>,
    server_name: Option<String>,
    alpn: Vec<String>,
    message: String,
    insecure: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let host = args.next().ok_or("missing HOST")?;
    let port = args.next().ok_or("missing PORT")?;
    let port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let mut parsed = Args {
        host,
        port,
        ca: None,
        server_name: None,
        alpn: Vec::new(),
        message: "hello over TLS".to_owned(),
        insecure: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--ca" => parsed.ca = Some(PathBuf::from(value()?)),
            "--server-name" => parsed.server_name = Some(value()?),
            "--alpn" => parsed.alpn.push(value()?),
            "--message" => parsed.message = value()?,
            "--insecure" => parsed.insecure = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

fn client_tls(args: &Args) -> Result<ClientTls, Error> {
    let mut builder = ClientTls::builder().alpn(&args.alpn);
    if let Some(ca) = &args.ca {
        builder = builder.root_pem_file(ca);
    }
    if args.insecure {
        builder = builder.dangerous_disable_certificate_verification();
    }
    let tls = builder.build()?;
    Ok(match &args.server_name {
        Some(name) => tls.server_hostname(name.clone()),
        None => tls,
    })
}

async fn talk(lp: EventLoop, args: Args) -> Result<(), Error> {
    let options = ConnectOptions::default().tls(client_tls(&args)?);
    let (mut reader, writer) = lp
        .open_connection(
            Some(&args.host),
            Some(args.port),
            options,
            evloop::DEFAULT_LIMIT,
        )
        .await?;
    writer.write(format!("{}\n", args.message).as_bytes());
    let mut reply = String::new();
    reader.read_line(&mut reply).await?;
    println!("reply: {}", reply.trim_end());
    let info = writer
        .transport()
        .tls_info()
        .ok_or(Error::InvalidState("not TLS"))?;
    println!("version: {}", info.protocol_version);
    println!("cipher: {}", info.cipher_suite);
    let alpn = info
        .alpn_protocol
        .map(|p| String::from_utf8_lossy(&p).into_owned());
    println!("alpn: {}", alpn.as_deref().unwrap_or("none"));
    writer.close();
    writer.wait_closed().await
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("tls_client: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = EventLoop::new().and_then(|lp| {
        let done = lp.run_until_complete(talk(lp.clone(), args));
        lp.close()?;
        done?
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tls_client: {error}");
            ExitCode::FAILURE
        }
    }
}
