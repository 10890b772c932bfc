//! Shared test helpers: a loop fixture that runs a future under a timeout
//! guard and checks for leaked fds and unexpected exception-handler calls,
//! an echo protocol, a recording protocol, and /proc/self/fd counting.
//!
//! Each test binary uses only some of these, hence the `dead_code` allow.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use evloop_core::{Error, ErrorContext, EventLoop};
use evloop_transports::{Protocol, Transport};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises the tests of one binary, so fd counts are not disturbed by
/// another test's sockets.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// Not every test binary that includes this module counts fds.
#[allow(unused_imports)]
pub use evloop_testkit::{fd_count, fd_list};

/// How many empty-ready-queue iterations in a row [`Fixture::drain`] takes
/// as "quiet".
pub const QUIET_TURNS: usize = 3;

/// A loop with an exception handler that records every call, and the fd
/// count at the start.
pub struct Fixture {
    pub lp: EventLoop,
    pub errors: Rc<RefCell<Vec<String>>>,
    fds_before: usize,
    /// What they were, for the leak report.
    fd_list_before: Vec<String>,
    /// The fds the loop itself holds (its poller, its waker).
    loop_fds: usize,
    serial: Option<MutexGuard<'static, ()>>,
}

thread_local! {
    /// The serial lock of a finished [`Fixture`], held until the test's
    /// thread ends, i.e. after the test's other locals (which may hold the
    /// loop's last reference, or sockets) are dropped: the next test must
    /// not count their fds in its baseline.
    static HELD: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
}

impl Fixture {
    pub fn new() -> Fixture {
        let serial = serial();
        let fds_before = fd_count();
        let fd_list_before = fd_list();
        let lp = EventLoop::new().expect("loop");
        let loop_fds = fd_count().saturating_sub(fds_before);
        let errors = Rc::new(RefCell::new(Vec::new()));
        let sink = errors.clone();
        lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
            sink.borrow_mut().push(ctx.to_string());
        }));
        Fixture {
            lp,
            errors,
            fds_before,
            fd_list_before,
            loop_fds,
            serial: Some(serial),
        }
    }

    /// Runs `future` to completion; panics if it takes longer than 60 s.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        self.run_for(Duration::from_secs(60), future)
    }

    /// Runs `future`; panics if it takes longer than `limit`.
    pub fn run_for<F: Future>(&self, limit: Duration, future: F) -> F::Output {
        let stopper = self.lp.clone();
        let timer = self
            .lp
            .call_later(limit, move || stopper.stop())
            .expect("timer");
        let out = self.lp.run_until_complete(future);
        timer.cancel();
        match out {
            Ok(value) => value,
            Err(error) => panic!("loop run failed (timeout guard?): {error}"),
        }
    }

    /// Runs one loop iteration with a zero poll timeout: the I/O that is
    /// ready now and the callbacks queued now run; nothing waits.
    pub fn turn(&self) {
        self.lp.stop();
        self.lp.run_forever().expect("one loop iteration");
    }

    /// Drains the loop without sleeping: runs zero-timeout iterations until
    /// the ready queue has stayed empty for [`QUIET_TURNS`] in a row, so
    /// every callback already scheduled (a deferred `connection_lost`, say),
    /// what those schedule in turn, and the I/O already ready have run.
    /// Panics if the loop does not go quiet within 10 000 iterations.
    pub fn drain(&self) {
        let mut quiet = 0;
        for _ in 0..10_000 {
            self.turn();
            if self.lp.pending_callbacks() == 0 {
                quiet += 1;
                if quiet == QUIET_TURNS {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
        panic!(
            "the loop never went quiet: {} callbacks still pending",
            self.lp.pending_callbacks()
        );
    }

    /// The exception-handler calls so far, cleared.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.borrow_mut())
    }

    /// Closes the loop and asserts: no fd leaked, no unexpected errors.
    pub fn finish(mut self) {
        self.drain();
        // Sockets the test closed may end a few iterations later (a close
        // that waits for the peer, say): wait for the count to come back,
        // for at most 5 s; a real leak still fails the check below.
        let expected = self.fds_before + self.loop_fds;
        let limit = std::time::Instant::now() + Duration::from_secs(5);
        self.run(until(&self.lp, || {
            fd_count() <= expected || std::time::Instant::now() > limit
        }));
        self.drain();
        let errors = self.take_errors();
        assert!(
            errors.is_empty(),
            "unexpected exception-handler calls: {errors:?}"
        );
        self.lp.close().expect("close loop");
        let after = fd_count();
        assert_eq!(
            after,
            self.fds_before,
            "fd count changed (leak): before {:?}, after {:?}",
            self.fd_list_before,
            fd_list()
        );
        HELD.with(|held| *held.borrow_mut() = self.serial.take());
    }
}

/// A future that completes after `delay` on the loop's clock.
pub fn sleep(lp: &EventLoop, delay: Duration) -> impl Future<Output = ()> + 'static {
    let done = lp.create_future::<()>();
    let signal = done.clone();
    let handle = lp
        .call_later(delay, move || {
            let _ = signal.set_result(());
        })
        .expect("call_later");
    async move {
        let _keep = handle;
        let _ = done.await;
    }
}

/// Waits (on the loop) until `cond` holds, checking it every millisecond
/// (the caller's `run` bounds the wait: 60 s).
pub async fn until(lp: &EventLoop, mut cond: impl FnMut() -> bool) {
    while !cond() {
        sleep(lp, Duration::from_millis(1)).await;
    }
}

/// Echoes everything back; closes on EOF.
#[derive(Debug, Default)]
pub struct Echo {
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
    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.transport = None;
    }
}

/// What a [`Recorder`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(usize),
    Eof,
    /// `None` or the error's kind.
    Lost(Option<io::ErrorKind>),
    Pause,
    Resume,
}

/// Shared record of a [`Recorder`]'s life.
#[derive(Debug, Default)]
pub struct Log {
    pub events: Vec<Ev>,
    pub data: Vec<u8>,
    pub transport: Option<Transport>,
    pub lost_error: Option<String>,
}

impl Log {
    pub fn lost_count(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Ev::Lost(_)))
            .count()
    }
    pub fn is_lost(&self) -> bool {
        self.lost_count() > 0
    }
}

/// A protocol that records its callbacks into a shared [`Log`]; options
/// say what it does on EOF and in `connection_made`.
#[derive(Debug, Default)]
pub struct Recorder {
    pub log: Rc<RefCell<Log>>,
    pub keep_open_on_eof: bool,
    pub pause_in_made: bool,
}

impl Recorder {
    pub fn new() -> (Recorder, Rc<RefCell<Log>>) {
        let log = Rc::new(RefCell::new(Log::default()));
        (
            Recorder {
                log: log.clone(),
                ..Recorder::default()
            },
            log,
        )
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: Transport) {
        if self.pause_in_made {
            transport.pause_reading();
        }
        let mut log = self.log.borrow_mut();
        log.events.push(Ev::Made);
        log.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        let mut log = self.log.borrow_mut();
        log.events.push(Ev::Data(data.len()));
        log.data.extend_from_slice(data);
    }
    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().events.push(Ev::Eof);
        self.keep_open_on_eof
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let mut log = self.log.borrow_mut();
        log.events
            .push(Ev::Lost(error.as_ref().map(io::Error::kind)));
        log.lost_error = error.map(|e| e.to_string());
    }
    fn pause_writing(&mut self) {
        self.log.borrow_mut().events.push(Ev::Pause);
    }
    fn resume_writing(&mut self) {
        self.log.borrow_mut().events.push(Ev::Resume);
    }
}

/// The port of the first internet listening address of `server`.
pub fn port_of(server: &evloop_transports::Server) -> u16 {
    server
        .sockets()
        .iter()
        .find_map(evloop_transports::Address::as_inet)
        .expect("an inet listener")
        .port()
}

/// Unwraps, printing the error.
pub fn ok<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e} ({e:?})"),
    }
}

/// True if `::1` can be bound here.
pub fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// Runs the Python asyncio peer script with `args`; its first stdout line
/// (a port, or "ready") is returned with the child. Fails clearly when
/// python3 is missing.
pub fn python_peer(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/asyncio_peer.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python3 is required for the asyncio interop tests and could not be run: {e}")
        });
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the peer's first line");
    assert!(
        !line.is_empty(),
        "the asyncio peer exited without printing its port"
    );
    (child, line.trim().to_owned())
}

/// A listener whose accept queue is full (listen backlog 0 plus filler
/// connections): a connect to it hangs in SYN_SENT, never refused. Keep the
/// returned fds alive while the address should stay "dead".
pub fn dead_address() -> (Vec<std::os::fd::OwnedFd>, std::net::SocketAddr) {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let listener = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    rustix::net::bind(&listener, &any).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    let addr =
        std::net::SocketAddr::try_from(rustix::net::getsockname(&listener).unwrap()).unwrap();
    let mut fds = vec![listener];
    for _ in 0..2 {
        let c = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let _ = rustix::net::connect(&c, &addr);
        fds.push(c);
    }
    // Let the first filler finish its handshake (it fills the queue).
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while rustix::net::getpeername(&fds[1]).ok().flatten().is_none()
        && std::time::Instant::now() < deadline
    {
        std::thread::yield_now();
    }
    (fds, addr)
}

/// An address nothing listens on (connects are refused at once).
pub fn refused_address() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A resolver that maps every name to a fixed list of addresses.
pub struct FixedResolver(
    pub Vec<std::net::SocketAddr>,
    pub Rc<std::cell::Cell<usize>>,
);

impl evloop_transports::Resolver for FixedResolver {
    fn resolve(
        &self,
        _event_loop: &EventLoop,
        _host: Option<&str>,
        _port: u16,
        _hints: evloop_transports::ResolveHints,
    ) -> evloop_transports::ResolveFuture {
        self.1.set(self.1.get() + 1);
        let addrs = self.0.clone();
        Box::pin(async move { Ok(addrs) })
    }
}

/// Installs a [`FixedResolver`] on `lp`; returns its call counter.
pub fn install_resolver(
    lp: &EventLoop,
    addrs: Vec<std::net::SocketAddr>,
) -> Rc<std::cell::Cell<usize>> {
    let calls = Rc::new(std::cell::Cell::new(0));
    evloop_transports::set_resolver(lp, Rc::new(FixedResolver(addrs, calls.clone())));
    calls
}

/// An echo server on 127.0.0.1 (ephemeral port).
pub fn echo_server(fx: &Fixture) -> evloop_transports::Server {
    ok(fx.run(evloop_transports::create_server(
        &fx.lp,
        Echo::default,
        evloop_transports::ServerOptions::default().host(["127.0.0.1"]),
    )))
}

/// An [`Echo`] that counts its `connection_made` calls.
#[derive(Debug, Default)]
pub struct CountedEcho {
    echo: Echo,
    made: Rc<std::cell::Cell<usize>>,
}

impl Protocol for CountedEcho {
    fn connection_made(&mut self, transport: Transport) {
        self.made.set(self.made.get() + 1);
        self.echo.connection_made(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.echo.data_received(data);
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.echo.connection_lost(error);
    }
}

/// An echo server with `options` that counts the connections it accepted
/// (its protocols' `connection_made` calls), so a test can wait for the
/// accept instead of sleeping.
pub fn counting_echo_server(
    fx: &Fixture,
    options: evloop_transports::ServerOptions,
) -> (evloop_transports::Server, Rc<std::cell::Cell<usize>>) {
    let made = Rc::new(std::cell::Cell::new(0));
    let counter = made.clone();
    let server = ok(fx.run(evloop_transports::create_server(
        &fx.lp,
        move || CountedEcho {
            echo: Echo::default(),
            made: counter.clone(),
        },
        options,
    )));
    (server, made)
}

/// Closes `server` and waits for it and its connections.
pub fn close_server(fx: &Fixture, server: &evloop_transports::Server) {
    server.close();
    server.abort_clients();
    fx.run(server.wait_closed());
}

pub mod datagram;
pub mod streams;

/// Runs `test` on a fresh loop under a 20 s guard timer, lets what it left
/// scheduled (`connection_lost`) run, closes the loop, then checks that the
/// exception handler was never called and no fd was left open.
pub fn run_on_fresh_loop<Fut: Future<Output = ()>>(test: impl FnOnce(EventLoop) -> Fut) {
    let _serial = serial();
    let before = fd_count();
    let lp = EventLoop::new().expect("loop");
    let reports = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = reports.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
        sink.borrow_mut()
            .push(format!("{}: {:?}", ctx.message, ctx.error));
    }));
    let stopper = lp.clone();
    let guard = lp
        .call_later(Duration::from_secs(20), move || stopper.stop())
        .expect("guard timer");
    let outcome = lp.run_until_complete(test(lp.clone()));
    guard.cancel();
    outcome.expect("test failed (StoppedBeforeComplete: hung, stopped by the guard timer)");
    lp.stop();
    lp.run_forever().expect("final iteration");
    lp.close().expect("close");
    drop(lp);
    assert!(
        reports.borrow().is_empty(),
        "exception handler called: {:?}",
        reports.borrow()
    );
    assert_eq!(fd_count(), before, "fds leaked");
}
