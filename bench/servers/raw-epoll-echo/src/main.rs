//! `raw-epoll-echo`: the command line of the raw epoll echo server (see the
//! library docs for the contract).
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use raw_epoll_echo::{Options, Server};
use signal_hook::consts::{SIGINT, SIGTERM};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("raw-epoll-echo: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args)?;
    // SIGINT/SIGTERM write a byte to `tx`; the loop stops when `rx` is readable.
    let (rx, tx) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    for signal in [SIGINT, SIGTERM] {
        let tx = tx.try_clone().map_err(|e| format!("dup: {e}"))?;
        signal_hook::low_level::pipe::register(signal, tx)
            .map_err(|e| format!("signal {signal}: {e}"))?;
    }
    let server = Server::bind(&options).map_err(|e| format!("bind: {e}"))?;
    let mut out = std::io::stdout().lock();
    for line in server.listening_lines().map_err(|e| e.to_string())? {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    server.run(Some(rx)).map_err(|e| format!("epoll: {e}"))?;
    writeln!(out, "shutdown").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}
