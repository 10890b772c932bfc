//! A TCP echo server with one event loop per core (`evloop::run_per_core`):
//! every loop has its own `SO_REUSEPORT` listener on the same address and
//! the kernel spreads connections over them.
//!
//! `--tcp HOST:PORT` (port 0 picks a free port: loop 0 binds it and hands
//! the port to the others), `--loops N` (default: one per CPU this process
//! may use), `--pin` (loop i on the i-th allowed CPU) or `--cpus 0,1` (loop
//! i on CPU list[i]). Prints `listening on tcp HOST:PORT` once every loop
//! listens, echoes every byte as the `echo_server` example does (reading
//! pauses while the peer does not read), and on SIGINT/SIGTERM closes every
//! loop's server, waits for them, prints `shutdown` and exits 0.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use evloop::{
    run_per_core, Address, Error, EventLoop, PerCore, Protocol, Server, ServerOptions, Shutdown,
    Transport,
};

const USAGE: &str =
    "usage: echo_per_core --tcp HOST:PORT [--loops N] [--pin | --cpus 0,1,...] [--work-us N]";
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
/// How long shutdown lets connections finish sending before aborting them.
const GRACE: Duration = Duration::from_secs(2);

struct Args {
    host: String,
    port: u16,
    options: PerCore,
    /// CPU time each `data_received` burns before echoing (a stand-in for
    /// request handling, so that a benchmark can make the server the
    /// bottleneck): `--work-us N`, default 0.
    work: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut tcp, mut options, mut work) = (None, PerCore::default(), Duration::ZERO);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--tcp" => tcp = Some(host_port(&value()?)?),
            "--loops" => options = options.loops(number(&value()?)?),
            "--pin" => options = options.pin(true),
            "--cpus" => {
                let cpus: Result<Vec<usize>, String> = value()?.split(',').map(number).collect();
                options = options.cpus(cpus?);
            }
            "--work-us" => {
                work =
                    Duration::from_micros(value()?.parse().map_err(|_| "--work-us: not a number")?)
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (host, port) = tcp.ok_or("give --tcp HOST:PORT")?;
    Ok(Args {
        host,
        port,
        options,
        work,
    })
}

fn number(text: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))
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
struct Echo {
    transport: Option<Transport>,
    work: Duration,
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        busy_for(self.work);
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

/// Keeps this thread busy for `work` (a spin, not a sleep: it stands for
/// CPU-bound request handling).
fn busy_for(work: Duration) {
    if work.is_zero() {
        return;
    }
    let start = std::time::Instant::now();
    while start.elapsed() < work {
        std::hint::spin_loop();
    }
}

/// What the loops share: where to listen, loop 0's port for the others
/// (when the given port is 0), and how many loops are not listening yet.
struct Plan {
    host: String,
    port: u16,
    loops: usize,
    /// `--work-us`: CPU burnt per `data_received`.
    work: Duration,
    /// Taken by loop 0; dropped unsent if it fails, which the others see.
    port_tx: Mutex<Option<Sender<u16>>>,
    port_rx: Arc<Mutex<Receiver<u16>>>,
    not_listening: AtomicUsize,
    /// Loop 0's addresses, printed by whichever loop listens last.
    addresses: Mutex<Vec<Address>>,
}

impl Plan {
    /// The port loop `index` binds: the given one, or loop 0's ephemeral
    /// port, waited for on the executor (never blocking the loop); `None`
    /// if loop 0 failed first (its error is the one reported).
    async fn port_for(&self, lp: &EventLoop, index: usize) -> Result<Option<u16>, Error> {
        if index == 0 || self.port != 0 {
            return Ok(Some(self.port));
        }
        let port_rx = self.port_rx.clone();
        let port = lp
            .run_in_executor(None, move || {
                port_rx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv()
            })
            .await?;
        Ok(port.ok())
    }

    /// Loop `index` listens on `server`: loop 0 hands its port to the
    /// others; the last loop to listen says so.
    fn listening(&self, index: usize, server: &Server, port_tx: Option<Sender<u16>>) {
        if index == 0 {
            let sockets = server.sockets();
            let port = sockets.first().and_then(Address::as_inet).map(|a| a.port());
            if let (Some(tx), Some(port), 0) = (port_tx, port, self.port) {
                for _ in 1..self.loops {
                    let _ = tx.send(port);
                }
            }
            *self
                .addresses
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = sockets;
        }
        if self.not_listening.fetch_sub(1, Ordering::AcqRel) == 1 {
            let addresses = self
                .addresses
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for address in addresses.iter() {
                println!("listening on tcp {address}");
            }
            let _ = std::io::stdout().flush();
        }
    }
}

/// One loop: loop 0 owns the signal handlers; every loop serves its own
/// `SO_REUSEPORT` listener until the shutdown, then closes it.
async fn serve(lp: EventLoop, index: usize, shutdown: Shutdown, plan: &Plan) -> Result<(), Error> {
    let port_tx = if index == 0 {
        for signum in [SIGINT, SIGTERM] {
            let shutdown = shutdown.clone();
            lp.add_signal_handler(signum, move || shutdown.trigger())?;
        }
        plan.port_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    } else {
        None
    };
    let Some(port) = plan.port_for(&lp, index).await? else {
        return Ok(());
    };
    let options = ServerOptions::default()
        .host([plan.host.clone()])
        .port(port)
        .reuse_port(true);
    let work = plan.work;
    let echo = move || Echo {
        transport: None,
        work,
    };
    let server = lp.create_server(echo, options).await?;
    plan.listening(index, &server, port_tx);
    shutdown.wait().await;
    server.close();
    server.close_clients();
    // Connections whose peer stopped reading would never finish flushing.
    let straggler = server.clone();
    let abort = lp.call_later(GRACE, move || straggler.abort_clients())?;
    server.wait_closed().await;
    abort.cancel();
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("echo_per_core: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let loops = args.options.loop_count();
    let (port_tx, port_rx) = mpsc::channel();
    let plan = Arc::new(Plan {
        host: args.host,
        port: args.port,
        loops,
        work: args.work,
        port_tx: Mutex::new(Some(port_tx)),
        port_rx: Arc::new(Mutex::new(port_rx)),
        not_listening: AtomicUsize::new(loops),
        addresses: Mutex::new(Vec::new()),
    });
    let options = args.options.thread_name("echo-loop");
    let served = run_per_core(options, move |lp, index, shutdown| {
        let plan = plan.clone();
        async move { serve(lp, index, shutdown, &plan).await }
    });
    match served {
        Ok(_) => {
            println!("shutdown");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("echo_per_core: {error}");
            ExitCode::FAILURE
        }
    }
}
