//! `instr WORKLOAD IMPL N [--warm W]`: runs ONE micro workload once, with N
//! operations, for `cargo xtask bench --instructions` to count its
//! instructions under `valgrind --tool=callgrind`.
//!
//! Nothing here is timed: the instruction count is the measurement. The
//! xtask runs every workload at two sizes N1 < N2 and reports
//! `(Ir(N2) − Ir(N1)) / (N2 − N1)` per operation, so the process start, the
//! loop's or runtime's creation and any fixed cost cancel out. Every workload
//! is made deterministic (same operations, same order, same loop iterations
//! on every run) so that the count is too:
//!
//! * `chain` — evloop: `call_soon` callbacks each scheduling the next.
//!   tokio: `spawn_local` tasks on a `LocalSet`, each spawning the next.
//! * `chain-relaxed` — the same chain on a loop with relaxed I/O polling:
//!   one poll per 64 links, as [`IoPolling::RELAXED`], but with an interval
//!   of an hour instead of 1 ms, so a link slowed down by valgrind (or a
//!   busy machine) never brings a poll forward: the clock is still read
//!   after 1, 2, 4, … 32 links since each poll, as with 1 ms on a fast
//!   chain. tokio: as `chain`.
//! * `burst` — after a warm-up burst of W (`--warm`, default N; the xtask
//!   passes N2 at both sizes so the warm-up cancels out), N callbacks
//!   scheduled at once, then run. evloop: `call_soon` + `run_forever`; tokio:
//!   `spawn_local` on a `LocalSet`, then run it.
//! * `timer-cancel` — N timers with random delays in `[0, 1 s)` scheduled,
//!   then all cancelled, then the loop runs once. evloop: `call_later` +
//!   `TimerHandle::cancel`; tokio: tokio-util's `DelayQueue` insert + remove.
//! * `timer-fire` — N timers with random delays in `[0, 1 s)`, then the clock
//!   advances 1 s, then run until all fired: all are due at once, so they
//!   fire in one batch and the figure is the cost per timer scheduled and
//!   fired, not per loop iteration. evloop: `call_later`; tokio:
//!   `DelayQueue` insert + `poll_expired`.
//!
//!   Both timer workloads run on a virtual clock — evloop's `VirtualClock`
//!   (`Builder::clock`), tokio's paused clock (`start_paused`, `advance`):
//!   where a timer lands in a timer wheel depends on the time it is
//!   scheduled at, and how many fire per loop iteration on how late the loop
//!   wakes, so with real time the count would vary with the machine's speed.
//! * `cross-thread` — [`THREADS`] threads post N in all while the loop runs.
//!   evloop: `Remote::call_soon_threadsafe`; tokio: `Handle::spawn` onto a
//!   current_thread runtime.
//! * `echo` — N round trips of 1 KiB over a unix socketpair, both ends on the
//!   one loop thread: a client sends 1 KiB, waits for all of it to come
//!   back (checking the bytes), sends the next; the server echoes. evloop:
//!   both ends `Protocol`s (`connect_accepted_socket`); tokio: two tasks on a
//!   current_thread runtime (`read` + `write_all` on `tokio::net::UnixStream`).
//!   A client on another thread would race the server for valgrind's one
//!   running thread (whether the server's next read finds data or EAGAIN),
//!   so the count would vary; on one thread every round trip is the same
//!   two loop iterations. The figure is per round trip, both ends counted.
//!
//! Every callback captures a `u32` and adds it to a thread-local sum that is
//! checked at the end (a wrong count or sum exits with status 1). The seed of
//! the random delays is fixed.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use evloop_core::{EventLoop, IoPolling, TimerHandle, VirtualClock};
use evloop_transports::{connect_accepted_socket, Protocol, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};
use tokio::task::LocalSet;
use tokio_util::time::DelayQueue;

/// Posting threads in the cross-thread workload.
const THREADS: usize = 4;

/// Bytes per echo round trip.
const ECHO_SIZE: usize = 1024;

/// Seed of the random timer delays.
const SEED: u64 = 0x5eed_7153;

const USAGE: &str = "usage: instr WORKLOAD IMPL N [--warm W]
  WORKLOAD: chain chain-relaxed burst timer-cancel timer-fire cross-thread echo
  IMPL: evloop tokio";

thread_local! {
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static TARGET: Cell<usize> = const { Cell::new(0) };
    static SUM: Cell<u64> = const { Cell::new(0) };
}

/// Counts one callback carrying `value`; true for the last one expected.
fn tick(value: u32) -> bool {
    SUM.with(|s| s.set(s.get().wrapping_add(u64::from(value))));
    COUNT.with(|c| {
        let n = c.get() + 1;
        c.set(n);
        n == TARGET.with(Cell::get)
    })
}

fn reset(target: usize) {
    COUNT.with(|c| c.set(0));
    TARGET.with(|t| t.set(target));
    SUM.with(|s| s.set(0));
}

/// An error unless exactly `target` callbacks ran, carrying values summing to `sum`.
fn check(what: &str, target: usize, sum: u64) -> Result<(), String> {
    let (count, got) = (COUNT.with(Cell::get), SUM.with(Cell::get));
    if count != target {
        return Err(format!("{what}: {count} callbacks ran, expected {target}"));
    }
    if got != sum {
        return Err(format!(
            "{what}: callback values sum to {got}, expected {sum}"
        ));
    }
    Ok(())
}

fn sum_to(n: usize) -> u64 {
    (0..n as u64).sum()
}

fn index(i: usize) -> u32 {
    u32::try_from(i).expect("n fits in u32 (checked by parse)")
}

fn tokio_runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A current_thread runtime on tokio's paused clock (auto-advancing).
fn tokio_paused_runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
}

/// A loop with debug mode off whatever `EVLOOP_DEBUG` says.
fn new_loop() -> Result<EventLoop, String> {
    EventLoop::builder()
        .debug(false)
        .build()
        .map_err(|e| format!("EventLoop::new: {e}"))
}

/// A loop on a virtual clock (debug mode off), and the clock.
fn new_virtual_loop() -> Result<(EventLoop, Arc<VirtualClock>), String> {
    let clock = Arc::new(VirtualClock::new());
    let lp = EventLoop::builder()
        .debug(false)
        .clock(clock.clone())
        .build()
        .map_err(|e| format!("EventLoop::new: {e}"))?;
    Ok((lp, clock))
}

/// The relaxed mode of `chain-relaxed`: 64 callbacks, an interval that never
/// passes.
const RELAXED_EVERY_64: IoPolling = IoPolling::Relaxed {
    callbacks: std::num::NonZeroUsize::new(64).expect("64 is not zero"),
    interval: Duration::from_secs(3600),
};

/// How far the clock advances before the timers of `timer-fire` run: past
/// every delay of [`timer_delays`].
const ADVANCE: Duration = Duration::from_secs(1);

fn delays(n: usize, from: Duration, to: Duration) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(SEED);
    let (lo, hi) = (from.as_nanos() as u64, to.as_nanos() as u64);
    (0..n)
        .map(|_| Duration::from_nanos(rng.u64(lo..hi)))
        .collect()
}

// ------------------------------------------------------------------- chain

fn evloop_chain(n: usize, mode: IoPolling) -> Result<(), String> {
    let lp = EventLoop::builder()
        .debug(false)
        .io_polling(mode)
        .build()
        .map_err(|e| format!("EventLoop::new: {e}"))?;
    reset(n);
    let first = lp.clone();
    lp.call_soon(move || chain_step(first, index(n) - 1))
        .map_err(|e| e.to_string())?;
    lp.run_forever().map_err(|e| e.to_string())?;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop chain", n, sum_to(n))
}

fn chain_step(lp: EventLoop, left: u32) {
    if tick(left) {
        lp.stop();
        return;
    }
    let next = lp.clone();
    lp.call_soon(move || chain_step(next, left - 1))
        .expect("call_soon on the running loop");
}

fn tokio_chain(n: usize) -> Result<(), String> {
    let rt = tokio_runtime();
    let local = LocalSet::new();
    reset(n);
    let left = index(n) - 1;
    local.spawn_local(async move { tokio_chain_step(left) });
    rt.block_on(local);
    check("tokio chain", n, sum_to(n))
}

fn tokio_chain_step(left: u32) {
    if !tick(left) {
        tokio::task::spawn_local(async move { tokio_chain_step(left - 1) });
    }
}

// ------------------------------------------------------------------- burst

fn evloop_burst_once(lp: &EventLoop, n: usize) -> Result<(), String> {
    reset(n);
    for i in 0..index(n) {
        lp.call_soon(move || {
            tick(i);
        })
        .map_err(|e| e.to_string())?;
    }
    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop())
        .map_err(|e| e.to_string())?;
    lp.run_forever().map_err(|e| e.to_string())?;
    check("evloop burst", n, sum_to(n))
}

fn evloop_burst(n: usize, warm: usize) -> Result<(), String> {
    let lp = new_loop()?;
    evloop_burst_once(&lp, warm)?;
    evloop_burst_once(&lp, n)?;
    lp.close().map_err(|e| e.to_string())
}

fn tokio_burst_once(rt: &Runtime, n: usize) -> Result<(), String> {
    let local = LocalSet::new();
    reset(n);
    for i in 0..index(n) {
        local.spawn_local(async move {
            tick(i);
        });
    }
    rt.block_on(local);
    check("tokio burst", n, sum_to(n))
}

fn tokio_burst(n: usize, warm: usize) -> Result<(), String> {
    let rt = tokio_runtime();
    tokio_burst_once(&rt, warm)?;
    tokio_burst_once(&rt, n)
}

// ------------------------------------------------------------------ timers

/// The timer delays: random in `[0, 1 s)`, the same every run.
fn timer_delays(n: usize) -> Vec<Duration> {
    delays(n, Duration::ZERO, Duration::from_secs(1))
}

fn evloop_timer_cancel(n: usize) -> Result<(), String> {
    let (lp, _clock) = new_virtual_loop()?;
    reset(0);
    let mut handles: Vec<TimerHandle> = Vec::with_capacity(n);
    for (i, delay) in timer_delays(n).into_iter().enumerate() {
        let i = index(i);
        let handle = lp
            .call_later(delay, move || {
                tick(i);
            })
            .map_err(|e| e.to_string())?;
        handles.push(handle);
    }
    for handle in &handles {
        handle.cancel();
    }
    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop())
        .map_err(|e| e.to_string())?;
    lp.run_forever().map_err(|e| e.to_string())?;
    drop(handles);
    lp.close().map_err(|e| e.to_string())?;
    check("evloop timer-cancel", 0, 0)
}

fn tokio_timer_cancel(n: usize) -> Result<(), String> {
    let rt = tokio_paused_runtime();
    reset(0);
    let left = rt.block_on(async {
        let mut queue = DelayQueue::new();
        let mut keys = Vec::with_capacity(n);
        for (i, delay) in timer_delays(n).into_iter().enumerate() {
            keys.push(queue.insert(index(i), delay));
        }
        for key in &keys {
            queue.remove(key);
        }
        tokio::task::yield_now().await;
        queue.len()
    });
    if left != 0 {
        return Err(format!("tokio timer-cancel: {left} timers left"));
    }
    check("tokio timer-cancel", 0, 0)
}

fn evloop_timer_fire(n: usize) -> Result<(), String> {
    let (lp, clock) = new_virtual_loop()?;
    reset(n);
    for (i, delay) in timer_delays(n).into_iter().enumerate() {
        let i = index(i);
        lp.call_later(delay, move || {
            if tick(i) {
                EventLoop::current().expect("running loop").stop();
            }
        })
        .map_err(|e| e.to_string())?;
    }
    clock.advance(ADVANCE);
    lp.run_forever().map_err(|e| e.to_string())?;
    lp.close().map_err(|e| e.to_string())?;
    check("evloop timer-fire", n, sum_to(n))
}

fn tokio_timer_fire(n: usize) -> Result<(), String> {
    let rt = tokio_paused_runtime();
    reset(n);
    rt.block_on(async {
        let mut queue = DelayQueue::new();
        for (i, delay) in timer_delays(n).into_iter().enumerate() {
            queue.insert(index(i), delay);
        }
        tokio::time::advance(ADVANCE).await;
        while let Some(expired) = poll_fn(|cx| queue.poll_expired(cx)).await {
            tick(expired.into_inner());
        }
    });
    check("tokio timer-fire", n, sum_to(n))
}

// ------------------------------------------------------------ cross-thread

/// How many of `n` posts thread `t` makes (the first `n % THREADS` make one more).
fn share(n: usize, t: usize) -> usize {
    n / THREADS + usize::from(t < n % THREADS)
}

fn cross_sum(n: usize) -> u64 {
    (0..THREADS).map(|t| sum_to(share(n, t))).sum()
}

fn evloop_cross_thread(n: usize) -> Result<(), String> {
    let lp = new_loop()?;
    let remote = lp.remote();
    reset(n);
    let posters: Vec<_> = (0..THREADS)
        .map(|t| {
            let remote = remote.clone();
            let count = share(n, t);
            thread::spawn(move || {
                for i in 0..index(count) {
                    remote
                        .call_soon_threadsafe(move || {
                            if tick(i) {
                                EventLoop::current().expect("running loop").stop();
                            }
                        })
                        .expect("call_soon_threadsafe");
                }
            })
        })
        .collect();
    lp.run_forever().map_err(|e| e.to_string())?;
    for poster in posters {
        poster
            .join()
            .map_err(|_| "a poster thread panicked".to_owned())?;
    }
    lp.close().map_err(|e| e.to_string())?;
    check("evloop cross-thread", n, cross_sum(n))
}

fn tokio_cross_thread(n: usize) -> Result<(), String> {
    let rt = tokio_runtime();
    reset(n);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let done = std::sync::Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let posters: Vec<_> = (0..THREADS)
        .map(|t| {
            let handle = rt.handle().clone();
            let count = share(n, t);
            let done = done.clone();
            thread::spawn(move || {
                for i in 0..index(count) {
                    let done = done.clone();
                    handle.spawn(async move {
                        if tick(i) {
                            if let Some(tx) = done.lock().expect("done lock").take() {
                                let _ = tx.send(());
                            }
                        }
                    });
                }
            })
        })
        .collect();
    rt.block_on(done_rx)
        .map_err(|_| "tokio cross-thread: the last task never signalled".to_owned())?;
    for poster in posters {
        poster
            .join()
            .map_err(|_| "a poster thread panicked".to_owned())?;
    }
    check("tokio cross-thread", n, cross_sum(n))
}

// -------------------------------------------------------------------- echo

/// The `round`th message of the echo client: [`ECHO_SIZE`] bytes.
fn message(round: usize) -> [u8; ECHO_SIZE] {
    let byte = (round % 251) as u8;
    let mut out = [byte; ECHO_SIZE];
    out[0] = byte.wrapping_add(1);
    out
}

/// Echoes on a `Protocol`; stops the loop when the connection is lost.
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
    fn eof_received(&mut self) -> bool {
        false
    }
    fn connection_lost(&mut self, _error: Option<std::io::Error>) {
        if let Ok(lp) = EventLoop::current() {
            lp.stop();
        }
    }
}

/// What the echo client saw: round trips completed, or the first mismatch.
#[derive(Debug, Default)]
struct ClientResult {
    rounds: usize,
    error: Option<String>,
}

/// The echo client on a `Protocol`: sends a message, waits for all of it to
/// come back, checks it, sends the next; closes after `rounds`.
struct Client {
    transport: Option<Transport>,
    rounds: usize,
    back: Vec<u8>,
    result: Rc<RefCell<ClientResult>>,
}

impl Client {
    fn fail(&mut self, error: String) {
        self.result.borrow_mut().error.get_or_insert(error);
        if let Some(t) = &self.transport {
            t.close();
        }
    }
}

impl Protocol for Client {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(&message(0));
        self.transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.back.extend_from_slice(data);
        if self.back.len() < ECHO_SIZE {
            return;
        }
        let round = self.result.borrow().rounds;
        if self.back.len() > ECHO_SIZE || self.back[..] != message(round)[..] {
            self.fail(format!("echo client: round {round} came back different"));
            return;
        }
        self.back.clear();
        self.result.borrow_mut().rounds = round + 1;
        if let Some(t) = &self.transport {
            if round + 1 == self.rounds {
                t.close();
            } else {
                t.write(&message(round + 1));
            }
        }
    }
    fn connection_lost(&mut self, error: Option<std::io::Error>) {
        if let Some(e) = error {
            self.fail(format!("echo client: connection lost: {e}"));
        }
    }
}

fn evloop_echo(n: usize) -> Result<(), String> {
    let (server, client) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let lp = new_loop()?;
    lp.run_until_complete(connect_accepted_socket(
        &lp,
        Echo::default,
        OwnedFd::from(server),
        None,
    ))
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("connect_accepted_socket (server): {e}"))?;
    let result = Rc::new(RefCell::new(ClientResult::default()));
    let client_protocol = Client {
        transport: None,
        rounds: n,
        back: Vec::with_capacity(ECHO_SIZE),
        result: result.clone(),
    };
    lp.run_until_complete(connect_accepted_socket(
        &lp,
        move || client_protocol,
        OwnedFd::from(client),
        None,
    ))
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("connect_accepted_socket (client): {e}"))?;
    // The server's connection_lost (after the client's close) stops it.
    lp.run_forever().map_err(|e| e.to_string())?;
    lp.close().map_err(|e| e.to_string())?;
    let result = result.borrow();
    if let Some(e) = &result.error {
        return Err(format!("evloop echo: {e}"));
    }
    if result.rounds != n {
        return Err(format!(
            "evloop echo: {} round trips, expected {n}",
            result.rounds
        ));
    }
    Ok(())
}

/// The tokio echo client: `n` round trips, each echo checked.
async fn tokio_client(mut sock: tokio::net::UnixStream, n: usize) -> Result<usize, String> {
    let mut back = [0u8; ECHO_SIZE];
    for round in 0..n {
        let out = message(round);
        sock.write_all(&out)
            .await
            .map_err(|e| format!("echo client write: {e}"))?;
        sock.read_exact(&mut back)
            .await
            .map_err(|e| format!("echo client read (round {round}): {e}"))?;
        if back != out {
            return Err(format!("echo client: round {round} came back different"));
        }
    }
    Ok(n)
}

/// The tokio echo server: echoes until EOF; the bytes echoed.
async fn tokio_server(mut sock: tokio::net::UnixStream) -> Result<usize, String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0;
    loop {
        let got = sock
            .read(&mut buf)
            .await
            .map_err(|e| format!("echo server read: {e}"))?;
        if got == 0 {
            return Ok(bytes);
        }
        bytes += got;
        sock.write_all(&buf[..got])
            .await
            .map_err(|e| format!("echo server write: {e}"))?;
    }
}

fn tokio_echo(n: usize) -> Result<(), String> {
    let (server, client) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    for sock in [&server, &client] {
        sock.set_nonblocking(true)
            .map_err(|e| format!("set_nonblocking: {e}"))?;
    }
    let rt = tokio_runtime();
    let local = LocalSet::new();
    let (rounds, bytes) = local.block_on(&rt, async move {
        let server = tokio::net::UnixStream::from_std(server)
            .map_err(|e| format!("UnixStream::from_std: {e}"))?;
        let client = tokio::net::UnixStream::from_std(client)
            .map_err(|e| format!("UnixStream::from_std: {e}"))?;
        let server = tokio::task::spawn_local(tokio_server(server));
        // The client's stream drops at its end: the server sees EOF.
        let rounds = tokio_client(client, n).await?;
        let bytes = server
            .await
            .map_err(|e| format!("echo server task: {e}"))??;
        Ok::<_, String>((rounds, bytes))
    })?;
    if rounds != n || bytes != n * ECHO_SIZE {
        return Err(format!(
            "tokio echo: {rounds} round trips, {bytes} bytes echoed, expected {n}, {}",
            n * ECHO_SIZE
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------ driver

/// The workload names, in the order the xtask reports them.
const WORKLOADS: [&str; 7] = [
    "chain",
    "chain-relaxed",
    "burst",
    "timer-cancel",
    "timer-fire",
    "cross-thread",
    "echo",
];

struct Args {
    workload: String,
    implementation: String,
    n: usize,
    warm: usize,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut warm = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--warm" {
            let v = it.next().ok_or("--warm needs a value")?;
            warm = Some(v.parse().map_err(|_| format!("bad --warm {v:?}"))?);
        } else {
            positional.push(arg.clone());
        }
    }
    let [workload, implementation, n] =
        <[String; 3]>::try_from(positional).map_err(|_| "expected WORKLOAD IMPL N".to_owned())?;
    if !WORKLOADS.contains(&workload.as_str()) {
        return Err(format!("unknown workload {workload:?}"));
    }
    if implementation != "evloop" && implementation != "tokio" {
        return Err(format!("unknown implementation {implementation:?}"));
    }
    let n: usize = n
        .parse()
        .ok()
        .filter(|&n| n > 0 && u32::try_from(n).is_ok())
        .ok_or(format!("bad N {n:?} (1 ..= 2^32 - 1)"))?;
    Ok(Args {
        warm: warm.unwrap_or(n),
        workload,
        implementation,
        n,
    })
}

fn run(args: &Args) -> Result<(), String> {
    let n = args.n;
    match (args.workload.as_str(), args.implementation.as_str()) {
        ("chain", "evloop") => evloop_chain(n, IoPolling::EveryIteration),
        ("chain-relaxed", "evloop") => evloop_chain(n, RELAXED_EVERY_64),
        ("chain" | "chain-relaxed", _) => tokio_chain(n),
        ("burst", "evloop") => evloop_burst(n, args.warm),
        ("burst", _) => tokio_burst(n, args.warm),
        ("timer-cancel", "evloop") => evloop_timer_cancel(n),
        ("timer-cancel", _) => tokio_timer_cancel(n),
        ("timer-fire", "evloop") => evloop_timer_fire(n),
        ("timer-fire", _) => tokio_timer_fire(n),
        ("cross-thread", "evloop") => evloop_cross_thread(n),
        ("cross-thread", _) => tokio_cross_thread(n),
        ("echo", "evloop") => evloop_echo(n),
        _ => tokio_echo(n),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("instr: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&parsed) {
        Ok(()) => {
            println!(
                "instr {} {} {}: ok",
                parsed.workload, parsed.implementation, parsed.n
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("instr: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn every_workload_runs_and_checks_its_count() {
        for workload in WORKLOADS {
            for implementation in ["evloop", "tokio"] {
                let a = parse(&args(&format!("{workload} {implementation} 64"))).unwrap();
                assert_eq!(run(&a), Ok(()), "{workload} {implementation}");
            }
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(parse(&args("chain evloop")).is_err());
        assert!(parse(&args("chain evloop 0")).is_err());
        assert!(parse(&args("chain evloop 99999999999")).is_err());
        assert!(parse(&args("chain asyncio 10")).is_err());
        assert!(parse(&args("nope evloop 10")).is_err());
        assert!(parse(&args("burst evloop 10 --warm")).is_err());
        let a = parse(&args("burst tokio 10 --warm 30")).unwrap();
        assert_eq!((a.n, a.warm), (10, 30));
    }

    #[test]
    fn a_wrong_count_is_reported() {
        reset(3);
        tick(1);
        let e = check("x", 3, 1).unwrap_err();
        assert!(e.contains("1 callbacks ran, expected 3"), "{e}");
    }
}
