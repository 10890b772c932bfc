//! `cargo bench -p evloop-bench --bench micro [-- OPTIONS]`: the loop core's
//! micro benchmarks against tokio's nearest equivalents (see
//! docs/performance.md).
//!
//! Workloads (N = 1,000,000 by default), each run once to warm up and then
//! `--runs` times (default 5), implementations interleaved (A B A B …), one
//! fresh loop or runtime per run (its creation not timed):
//!
//! * **chain** — evloop: `call_soon` callbacks each scheduling the next, so
//!   every callback is one loop iteration (one poll). evloop-relaxed: the
//!   same on a loop with relaxed I/O polling ([`IoPolling::RELAXED`]: a poll
//!   every 64 callbacks or 1 ms while callbacks are ready, so the syscall is
//!   paid once per 64 links). tokio: a chain of
//!   `spawn_local` tasks on a `LocalSet` in a current_thread runtime, each
//!   task spawning the next (the nearest equivalent of "schedule a callback":
//!   one allocation, one queue push, one poll).
//! * **burst** (on a loop that already ran one burst, measured the second) — evloop: N `call_soon`, then `stop()` scheduled last, then
//!   `run_forever`. tokio: N `spawn_local` on a `LocalSet`, then run it.
//! * **timers** — evloop: N `call_later` with random delays in `[0, 1 s)`,
//!   cancel every other one, `run_forever` until the rest have fired. tokio:
//!   tokio-util's `DelayQueue` insert / remove / drain on a current_thread
//!   runtime, same delays. Each phase is CPU time of the process
//!   (`CLOCK_PROCESS_CPUTIME_ID`), since the drain waits up to 1 s.
//! * **cross-thread** — evloop: 4 threads × N/4 `Remote::call_soon_threadsafe`
//!   while the loop runs, until all N ran. tokio: 4 threads × N/4
//!   `Handle::spawn` onto a current_thread runtime blocked on a oneshot that
//!   the last task completes. Wall time from spawning the threads.
//! * **latency** — the I/O latency that relaxed polling trades for the chain:
//!   a thread sends one byte over a unix socketpair and blocks until a reader
//!   callback on the loop echoes it, N / 100 times (at least 100, after 10
//!   unrecorded), and the rows are the round trip's median and 99th
//!   percentile in ns. evloop-idle: the loop has nothing else to do (it
//!   sleeps in `epoll_wait`; the reference). evloop: a `call_soon` chain keeps
//!   the ready queue non-empty meanwhile, on the default loop (a poll per
//!   link). evloop-relaxed: the same chain with [`IoPolling::RELAXED`] (a
//!   poll every 64 links). Needs two free cores to mean anything.
//!
//! Every callback / task captures a `u32` and adds it to a thread-local sum on
//! the loop thread (checked after each run), so none is a zero-sized closure.
//!
//! Options: `--n N`, `--runs R`, `--max-delay-ms MS` (timer delays, default
//! 1000), `--only chain,burst,timers,cross-thread,latency`, `--impl
//! evloop,evloop-relaxed,…` (the names in the table's impl column).
//! The `--bench` cargo passes is ignored. Under `cargo test --all-targets`
//! (built with `cfg(test)`, no arguments) it does a quick smoke run instead:
//! N = 1,000, one run, delays under 10 ms. Output is the
//! plain table of `evloop_bench::table_row`: `workload impl median min max`
//! in ns per operation.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use evloop_bench::{machine_facts, ns_per_op, process_cpu_time, table_header, table_row, Summary};
use evloop_core::{EventLoop, IoPolling, TimerHandle};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::oneshot;
use tokio::task::LocalSet;
use tokio_util::time::DelayQueue;

/// Posting threads in the cross-thread workload.
const THREADS: usize = 4;

/// Seed of the random timer delays (the same every run and implementation).
const SEED: u64 = 0x5eed_7153;

thread_local! {
    /// Callbacks run so far on this thread in the current run.
    static COUNT: Cell<usize> = const { Cell::new(0) };
    /// How many the current run expects (the last one ends the run).
    static TARGET: Cell<usize> = const { Cell::new(0) };
    /// Sum of the values the callbacks carried, to check every one ran once.
    static SUM: Cell<u64> = const { Cell::new(0) };
    /// Completes the tokio cross-thread run.
    static DONE: RefCell<Option<oneshot::Sender<()>>> = const { RefCell::new(None) };
}

/// The work of one callback: count it and add its value. True for the last
/// one the run expects.
#[inline]
fn tick(value: u32) -> bool {
    SUM.with(|s| s.set(s.get().wrapping_add(u64::from(value))));
    COUNT.with(|c| {
        let n = c.get() + 1;
        c.set(n);
        n == TARGET.with(Cell::get)
    })
}

/// Starts a run that expects `target` callbacks.
fn reset(target: usize) {
    COUNT.with(|c| c.set(0));
    TARGET.with(|t| t.set(target));
    SUM.with(|s| s.set(0));
}

/// Panics unless exactly `target` callbacks ran, carrying values summing to `sum`.
fn check(what: &str, target: usize, sum: u64) {
    let (count, got) = (COUNT.with(Cell::get), SUM.with(Cell::get));
    assert_eq!(
        count, target,
        "{what}: {count} callbacks ran, expected {target}"
    );
    assert_eq!(got, sum, "{what}: wrong sum of callback values");
}

/// Sum of `values` as a u64.
fn sum_of(values: impl Iterator<Item = u32>) -> u64 {
    values.map(u64::from).sum()
}

fn index(i: usize) -> u32 {
    u32::try_from(i).expect("n fits in u32")
}

fn tokio_runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------- (a) chain

fn evloop_chain(n: usize) -> Vec<f64> {
    chain_on(IoPolling::EveryIteration, n)
}

fn evloop_chain_relaxed(n: usize) -> Vec<f64> {
    chain_on(IoPolling::RELAXED, n)
}

/// A loop polling for I/O as `mode` says.
fn new_loop(mode: IoPolling) -> EventLoop {
    EventLoop::builder()
        .io_polling(mode)
        .build()
        .expect("EventLoop::new")
}

fn chain_on(mode: IoPolling, n: usize) -> Vec<f64> {
    let lp = new_loop(mode);
    reset(n);
    let start = Instant::now();
    let first = lp.clone();
    lp.call_soon(move || chain_step(first, index(n)))
        .expect("call_soon");
    lp.run_forever().expect("run_forever");
    let elapsed = start.elapsed();
    check("evloop chain", n, sum_of(1..=index(n)));
    lp.close().expect("close");
    vec![ns_per_op(elapsed, n)]
}

fn chain_step(lp: EventLoop, left: u32) {
    if tick(left) {
        lp.stop();
        return;
    }
    let next = lp.clone();
    lp.call_soon(move || chain_step(next, left - 1))
        .expect("call_soon");
}

fn tokio_chain(n: usize) -> Vec<f64> {
    let rt = tokio_runtime();
    let local = LocalSet::new();
    reset(n);
    let start = Instant::now();
    let left = index(n);
    local.spawn_local(async move { tokio_chain_step(left) });
    rt.block_on(local);
    let elapsed = start.elapsed();
    check("tokio chain", n, sum_of(1..=index(n)));
    vec![ns_per_op(elapsed, n)]
}

fn tokio_chain_step(left: u32) {
    if !tick(left) {
        tokio::task::spawn_local(async move { tokio_chain_step(left - 1) });
    }
}

// ---------------------------------------------------------------- (b) burst

/// One burst of `n` call_soon on `lp`, then run them all; the wall time.
fn evloop_burst_once(lp: &EventLoop, n: usize) -> Duration {
    reset(n);
    let start = Instant::now();
    for i in 0..index(n) {
        lp.call_soon(move || {
            tick(i);
        })
        .expect("call_soon");
    }
    let stopper = lp.clone();
    lp.call_soon(move || stopper.stop()).expect("call_soon");
    lp.run_forever().expect("run_forever");
    let elapsed = start.elapsed();
    check("evloop burst", n, sum_of(0..index(n)));
    elapsed
}

/// The steady state of a loop that has run a burst before: the first burst
/// on a fresh loop (or runtime) mostly measures page faults and the ready
/// queue growing, for every implementation alike.
fn evloop_burst(n: usize) -> Vec<f64> {
    let lp = EventLoop::new().expect("EventLoop::new");
    evloop_burst_once(&lp, n);
    let elapsed = evloop_burst_once(&lp, n);
    lp.close().expect("close");
    vec![ns_per_op(elapsed, n)]
}

fn tokio_burst_once(rt: &Runtime, n: usize) -> Duration {
    let local = LocalSet::new();
    reset(n);
    let start = Instant::now();
    for i in 0..index(n) {
        local.spawn_local(async move {
            tick(i);
        });
    }
    rt.block_on(local);
    let elapsed = start.elapsed();
    check("tokio burst", n, sum_of(0..index(n)));
    elapsed
}

fn tokio_burst(n: usize) -> Vec<f64> {
    let rt = tokio_runtime();
    tokio_burst_once(&rt, n);
    vec![ns_per_op(tokio_burst_once(&rt, n), n)]
}

// --------------------------------------------------------------- (c) timers

thread_local! {
    /// Timer delays are drawn from `[0, MAX_DELAY)` (`--max-delay-ms`).
    static MAX_DELAY: Cell<Duration> = const { Cell::new(Duration::from_secs(1)) };
}

fn random_delays(n: usize) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(SEED);
    let max = u64::try_from(MAX_DELAY.with(Cell::get).as_nanos()).unwrap_or(u64::MAX);
    (0..n)
        .map(|_| Duration::from_nanos(rng.u64(0..max.max(1))))
        .collect()
}

/// Expected (count, sum) of the timers left after cancelling every other
/// one (indices 0, 2, 4, … are cancelled).
fn timers_expected(n: usize) -> (usize, u64) {
    (n / 2, sum_of((1..index(n)).step_by(2)))
}

/// Touches every page of `v`'s spare capacity, so the page faults of the
/// harness's own handle vector are not timed as the loop's.
fn prefault<T>(v: &mut Vec<T>) {
    for slot in v.spare_capacity_mut() {
        *slot = MaybeUninit::zeroed();
    }
}

/// `[schedule per timer, cancel per cancel, drain per fired, total per timer]`.
fn timer_phases(n: usize, cpu: [Duration; 4]) -> Vec<f64> {
    let [c0, c1, c2, c3] = cpu;
    let cancelled = n.div_ceil(2);
    vec![
        ns_per_op(c1 - c0, n),
        ns_per_op(c2 - c1, cancelled),
        ns_per_op(c3 - c2, n - cancelled),
        ns_per_op(c3 - c0, n),
    ]
}

fn evloop_timers(n: usize) -> Vec<f64> {
    let delays = random_delays(n);
    let lp = EventLoop::new().expect("EventLoop::new");
    let (target, sum) = timers_expected(n);
    reset(target);
    let mut handles: Vec<TimerHandle> = Vec::with_capacity(n);
    prefault(&mut handles);
    let c0 = process_cpu_time();
    for (i, &delay) in delays.iter().enumerate() {
        let i = index(i);
        let handle = lp
            .call_later(delay, move || {
                if tick(i) {
                    EventLoop::current().expect("running loop").stop();
                }
            })
            .expect("call_later");
        handles.push(handle);
    }
    let c1 = process_cpu_time();
    for handle in handles.iter().step_by(2) {
        handle.cancel();
    }
    let c2 = process_cpu_time();
    lp.run_forever().expect("run_forever");
    let c3 = process_cpu_time();
    check("evloop timers", target, sum);
    drop(handles);
    lp.close().expect("close");
    timer_phases(n, [c0, c1, c2, c3])
}

/// The timer workload with a callback that captures nothing, the way asyncio
/// benchmarks pass one function to every `call_later`: a zero-sized closure
/// needs no allocation, so this row is the loop's own cost per timer, and the
/// `evloop` row adds a boxed closure's malloc, free and cache miss.
fn evloop_timers_plain(n: usize) -> Vec<f64> {
    let delays = random_delays(n);
    let lp = EventLoop::new().expect("EventLoop::new");
    let (target, _) = timers_expected(n);
    reset(target);
    let mut handles: Vec<TimerHandle> = Vec::with_capacity(n);
    prefault(&mut handles);
    let c0 = process_cpu_time();
    for &delay in &delays {
        let handle = lp
            .call_later(delay, || {
                if tick(1) {
                    EventLoop::current().expect("running loop").stop();
                }
            })
            .expect("call_later");
        handles.push(handle);
    }
    let c1 = process_cpu_time();
    for handle in handles.iter().step_by(2) {
        handle.cancel();
    }
    let c2 = process_cpu_time();
    lp.run_forever().expect("run_forever");
    let c3 = process_cpu_time();
    check("evloop timers (plain callback)", target, target as u64);
    drop(handles);
    lp.close().expect("close");
    timer_phases(n, [c0, c1, c2, c3])
}

fn tokio_timers(n: usize) -> Vec<f64> {
    let delays = random_delays(n);
    let rt = tokio_runtime();
    let (target, sum) = timers_expected(n);
    reset(target);
    let cpu = rt.block_on(async {
        let mut queue = DelayQueue::new();
        let mut keys = Vec::with_capacity(n);
        prefault(&mut keys);
        let c0 = process_cpu_time();
        for (i, &delay) in delays.iter().enumerate() {
            keys.push(queue.insert(index(i), delay));
        }
        let c1 = process_cpu_time();
        for key in keys.iter().step_by(2) {
            queue.remove(key);
        }
        let c2 = process_cpu_time();
        while let Some(expired) = poll_fn(|cx| queue.poll_expired(cx)).await {
            tick(expired.into_inner());
        }
        let c3 = process_cpu_time();
        [c0, c1, c2, c3]
    });
    check("tokio timers", target, sum);
    timer_phases(n, cpu)
}

// --------------------------------------------------------- (d) cross-thread

/// How many of `n` posts thread `t` makes (the first `n % THREADS` make one more).
fn share(n: usize, t: usize) -> usize {
    n / THREADS + usize::from(t < n % THREADS)
}

fn evloop_cross_thread(n: usize) -> Vec<f64> {
    let lp = EventLoop::new().expect("EventLoop::new");
    let remote = lp.remote();
    reset(n);
    let start = Instant::now();
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
    lp.run_forever().expect("run_forever");
    let elapsed = start.elapsed();
    for poster in posters {
        poster.join().expect("poster thread");
    }
    let sum = (0..THREADS).map(|t| sum_of(0..index(share(n, t)))).sum();
    check("evloop cross-thread", n, sum);
    lp.close().expect("close");
    vec![ns_per_op(elapsed, n)]
}

fn tokio_cross_thread(n: usize) -> Vec<f64> {
    let rt = tokio_runtime();
    let (done_tx, done_rx) = oneshot::channel();
    DONE.with(|d| *d.borrow_mut() = Some(done_tx));
    reset(n);
    let start = Instant::now();
    let posters: Vec<_> = (0..THREADS)
        .map(|t| {
            let handle = rt.handle().clone();
            let count = share(n, t);
            thread::spawn(move || {
                for i in 0..index(count) {
                    handle.spawn(async move {
                        if tick(i) {
                            if let Some(done) = DONE.with(|d| d.borrow_mut().take()) {
                                let _ = done.send(());
                            }
                        }
                    });
                }
            })
        })
        .collect();
    rt.block_on(done_rx).expect("last task signals");
    let elapsed = start.elapsed();
    for poster in posters {
        poster.join().expect("poster thread");
    }
    let sum = (0..THREADS).map(|t| sum_of(0..index(share(n, t)))).sum();
    check("tokio cross-thread", n, sum);
    vec![ns_per_op(elapsed, n)]
}

// -------------------------------------------------------------- (e) latency

/// Round trips of a latency run not recorded (the loop and the threads
/// getting going).
const WARM_PINGS: usize = 10;

/// What keeps the loop busy while the latency is measured.
#[derive(Clone, Copy)]
enum Load {
    /// Nothing: the loop sleeps in `epoll_wait` between pings.
    Idle,
    /// An endless `call_soon` chain, on a loop polling as the mode says.
    Chain(IoPolling),
}

fn latency_idle(n: usize) -> Vec<f64> {
    latency(Load::Idle, n)
}

fn latency_chain(n: usize) -> Vec<f64> {
    latency(Load::Chain(IoPolling::EveryIteration), n)
}

fn latency_chain_relaxed(n: usize) -> Vec<f64> {
    latency(Load::Chain(IoPolling::RELAXED), n)
}

/// `[median, 99th percentile]` of the ping round trips, in ns.
fn latency(load: Load, n: usize) -> Vec<f64> {
    let pings = (n / 100).max(100);
    let lp = new_loop(match load {
        Load::Idle => IoPolling::EveryIteration,
        Load::Chain(mode) => mode,
    });
    let (loop_end, pinger_end) = UnixStream::pair().expect("socketpair");
    loop_end.set_nonblocking(true).expect("nonblocking");
    let loop_end = Rc::new(loop_end);
    let echoed = Rc::new(Cell::new(0));
    let (end, count, stopper) = (loop_end.clone(), echoed.clone(), lp.clone());
    lp.add_reader(&*loop_end, move || {
        if echo_available(&end, &count) == WARM_PINGS + pings {
            stopper.stop();
        }
    })
    .expect("add_reader");
    if let Load::Chain(_) = load {
        spin(lp.clone());
    }
    let pinger = thread::spawn(move || ping(pinger_end, WARM_PINGS + pings));
    lp.run_forever().expect("run_forever");
    let mut rtts = pinger.join().expect("pinger thread");
    assert_eq!(echoed.get(), WARM_PINGS + pings, "every ping echoed");
    assert!(lp.remove_reader(&*loop_end));
    // The chain's next link is still queued: close drops it.
    lp.close().expect("close");
    rtts.drain(..WARM_PINGS);
    rtts.sort_by(f64::total_cmp);
    vec![rtts[rtts.len() / 2], rtts[rtts.len() * 99 / 100]]
}

/// Echoes what `end` has to read; the running count of bytes echoed.
fn echo_available(end: &UnixStream, count: &Cell<usize>) -> usize {
    let mut buf = [0u8; 64];
    let mut end = end;
    while let Ok(got @ 1..) = end.read(&mut buf) {
        end.write_all(&buf[..got]).expect("echo");
        count.set(count.get() + got);
    }
    count.get()
}

/// One link of the endless chain of the loaded latency runs.
fn spin(lp: EventLoop) {
    let next = lp.clone();
    lp.call_soon(move || spin(next)).expect("call_soon");
}

/// `count` round trips of one byte from another thread; each one's wall
/// time in ns.
fn ping(mut end: UnixStream, count: usize) -> Vec<f64> {
    let mut rtts = Vec::with_capacity(count);
    let mut byte = [0u8; 1];
    for _ in 0..count {
        let start = Instant::now();
        end.write_all(b"p").expect("ping");
        end.read_exact(&mut byte).expect("pong");
        rtts.push(start.elapsed().as_secs_f64() * 1e9);
    }
    rtts
}

// ------------------------------------------------------------------ driver

/// One implementation's run of a workload: its name and the function doing
/// one measured run with `n` operations, returning one value per row.
type Run = (&'static str, fn(usize) -> Vec<f64>);

/// A workload: its name, the rows it reports, and one run per implementation.
struct Workload {
    name: &'static str,
    rows: &'static [&'static str],
    runs: &'static [Run],
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "chain",
        rows: &["chain"],
        runs: &[
            ("evloop", evloop_chain),
            ("evloop-relaxed", evloop_chain_relaxed),
            ("tokio", tokio_chain),
        ],
    },
    Workload {
        name: "burst",
        rows: &["burst"],
        runs: &[("evloop", evloop_burst), ("tokio", tokio_burst)],
    },
    Workload {
        name: "timers",
        rows: &[
            "timers.schedule",
            "timers.cancel",
            "timers.drain",
            "timers.total",
        ],
        runs: &[
            ("evloop", evloop_timers),
            ("evloop-plain", evloop_timers_plain),
            ("tokio", tokio_timers),
        ],
    },
    Workload {
        name: "cross-thread",
        rows: &["cross-thread"],
        runs: &[
            ("evloop", evloop_cross_thread),
            ("tokio", tokio_cross_thread),
        ],
    },
    Workload {
        name: "latency",
        rows: &["latency.p50", "latency.p99"],
        runs: &[
            ("evloop-idle", latency_idle),
            ("evloop", latency_chain),
            ("evloop-relaxed", latency_chain_relaxed),
        ],
    },
];

struct Options {
    n: usize,
    runs: usize,
    max_delay: Duration,
    only: Option<Vec<String>>,
    impls: Option<Vec<String>>,
}

const USAGE: &str = "usage: cargo bench -p evloop-bench --bench micro -- \
[--n N] [--runs R] [--max-delay-ms MS] [--only chain,burst,timers,cross-thread,latency] \
[--impl evloop,evloop-relaxed,evloop-plain,evloop-idle,tokio]";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        n: 1_000_000,
        runs: 5,
        max_delay: Duration::from_secs(1),
        only: None,
        impls: None,
    };
    let mut args = std::env::args().skip(1).peekable();
    // `cargo test --all-targets` runs this binary built with `--cfg test` and
    // no arguments: a quick smoke run of every workload, not a benchmark.
    if cfg!(test) && args.peek().is_none() {
        options.n = 1_000;
        options.runs = 1;
        options.max_delay = Duration::from_millis(10);
    }
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{key} needs a value\n{USAGE}"))
        };
        let list = |v: String| v.split(',').map(str::to_owned).collect::<Vec<_>>();
        match key.as_str() {
            "--bench" => {}
            "--n" => {
                options.n = value()?
                    .replace('_', "")
                    .parse()
                    .map_err(|e| format!("--n: {e}"))?;
            }
            "--runs" => {
                options.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?;
            }
            "--max-delay-ms" => {
                let ms = value()?
                    .parse()
                    .map_err(|e| format!("--max-delay-ms: {e}"))?;
                options.max_delay = Duration::from_millis(ms);
            }
            "--only" => options.only = Some(list(value()?)),
            "--impl" => options.impls = Some(list(value()?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.n < 2 || u32::try_from(options.n).is_err() {
        return Err(format!("--n must be in 2..=u32::MAX\n{USAGE}"));
    }
    if options.runs == 0 {
        return Err(format!("--runs must be at least 1\n{USAGE}"));
    }
    for name in options.only.iter().flatten() {
        if !WORKLOADS.iter().any(|w| w.name == name) {
            return Err(format!("unknown workload {name:?}\n{USAGE}"));
        }
    }
    for name in options.impls.iter().flatten() {
        let known = WORKLOADS
            .iter()
            .any(|w| w.runs.iter().any(|(run, _)| run == name));
        if !known {
            return Err(format!("unknown implementation {name:?}\n{USAGE}"));
        }
    }
    Ok(options)
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    MAX_DELAY.with(|m| m.set(options.max_delay));
    for (key, value) in machine_facts() {
        println!("# {key}: {value}");
    }
    println!(
        "# n = {}, {} runs after 1 warm-up, implementations interleaved, timer delays in \
         [0, {:?}); ns per op: median, min, max",
        options.n, options.runs, options.max_delay
    );
    println!("# tokio: chain = spawn_local chain on a LocalSet, burst = N spawn_local, timers = tokio-util DelayQueue, cross-thread = Handle::spawn (current_thread runtime)");
    println!("# evloop-relaxed: relaxed I/O polling (64 callbacks / 1 ms); latency rows: one-byte round trip in ns (not per op), loop idle or busy with a call_soon chain");
    println!("{}", table_header());
    let wanted = |list: &Option<Vec<String>>, name: &str| {
        list.as_ref().is_none_or(|l| l.iter().any(|x| x == name))
    };
    for workload in &WORKLOADS {
        if !wanted(&options.only, workload.name) {
            continue;
        }
        let runs: Vec<_> = workload
            .runs
            .iter()
            .filter(|(name, _)| wanted(&options.impls, name))
            .collect();
        // samples[impl][row] = one value per measured run.
        let mut samples = vec![vec![Vec::new(); workload.rows.len()]; runs.len()];
        for round in 0..=options.runs {
            for (k, (_, run)) in runs.iter().enumerate() {
                let values = run(options.n);
                if round > 0 {
                    for (row, value) in values.into_iter().enumerate() {
                        samples[k][row].push(value);
                    }
                }
            }
        }
        for (r, row) in workload.rows.iter().enumerate() {
            for (k, (name, _)) in runs.iter().enumerate() {
                let summary = Summary::of(&samples[k][r]).expect("at least one run");
                println!("{}", table_row(row, name, &summary));
            }
        }
        let _ = std::io::stdout().flush();
    }
}
