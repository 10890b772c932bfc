//! Loop per core: [`run_per_core`] runs one event loop on each of N threads
//! (optionally pinned to a CPU each), and a [`Shutdown`] ends them all.
//!
//! A loop is single-threaded, so a server uses more than one core by
//! running several loops, each with its own listener on the same address
//! (`ServerOptions::reuse_port(true)`: the kernel spreads connections over
//! the listeners). Nothing is shared between the loops but what the caller
//! shares; a signal belongs to one loop at a time, so one loop installs the
//! handlers and triggers the `Shutdown` the others wait on.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;

use evloop_core::Error;

use crate::EventLoop;

/// Which CPU each loop of [`run_per_core`] runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pinning {
    /// No pinning: the OS places the threads (the default).
    #[default]
    None,
    /// Loop `i` on the `i`-th CPU this process may run on (its affinity
    /// mask, as `taskset` left it), so that `taskset -c 2,3` and two loops
    /// give one loop to CPU 2 and one to CPU 3.
    Allowed,
    /// Loop `i` on CPU `cpus[i]` (Linux CPU numbers).
    Cpus(Vec<usize>),
}

/// How [`run_per_core`] starts its loops: how many, on which CPUs, under
/// which thread names, and the [`Shutdown`] handed to each.
///
/// ```
/// let options = evloop::PerCore::default().loops(2).pin(true).thread_name("echo");
/// assert_eq!(options.loops, Some(2));
/// assert_eq!(options.pinning, evloop::Pinning::Allowed);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PerCore {
    /// How many loops (threads); `None` = one per CPU this process may use
    /// (`available_parallelism`), or one per listed CPU with
    /// [`Pinning::Cpus`].
    pub loops: Option<usize>,
    /// Where the loops run (default: unpinned).
    pub pinning: Pinning,
    /// Thread name prefix: loop `i` runs on thread `{prefix}-{i}` (default
    /// `evloop-loop`).
    pub thread_name: String,
    /// The shutdown every loop gets; keep a clone to trigger it from
    /// elsewhere (default: a new one).
    pub shutdown: Shutdown,
}

impl Default for PerCore {
    fn default() -> Self {
        PerCore {
            loops: None,
            pinning: Pinning::None,
            thread_name: "evloop-loop".to_owned(),
            shutdown: Shutdown::new(),
        }
    }
}

impl PerCore {
    /// Runs `n` loops.
    #[must_use = "returns the changed options"]
    pub fn loops(mut self, n: usize) -> Self {
        self.loops = Some(n);
        self
    }

    /// Pins loop `i` to the `i`-th allowed CPU ([`Pinning::Allowed`]), or
    /// does not pin (`false`).
    #[must_use = "returns the changed options"]
    pub fn pin(mut self, on: bool) -> Self {
        self.pinning = if on { Pinning::Allowed } else { Pinning::None };
        self
    }

    /// Pins loop `i` to CPU `cpus[i]` ([`Pinning::Cpus`]).
    #[must_use = "returns the changed options"]
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        self.pinning = Pinning::Cpus(cpus.into_iter().collect());
        self
    }

    /// Names loop `i`'s thread `{prefix}-{i}`.
    #[must_use = "returns the changed options"]
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Hands `shutdown` to every loop (to trigger it from outside).
    #[must_use = "returns the changed options"]
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// How many loops [`run_per_core`] starts with these options: `loops`,
    /// else one per listed CPU, else one per CPU this process may use.
    pub fn loop_count(&self) -> usize {
        match (self.loops, &self.pinning) {
            (Some(n), _) => n,
            (None, Pinning::Cpus(cpus)) => cpus.len(),
            (None, _) => thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }

    /// The CPU of each loop (`None`: unpinned), one entry per loop.
    fn plan(&self) -> Result<Vec<Option<usize>>, Error> {
        let loops = self.loop_count();
        if loops == 0 {
            return Err(invalid("run_per_core: loops must be at least 1"));
        }
        let cpus = match &self.pinning {
            Pinning::None => return Ok(vec![None; loops]),
            Pinning::Allowed => affinity::allowed_cpus()?,
            Pinning::Cpus(cpus) => cpus.clone(),
        };
        if cpus.len() < loops {
            return Err(invalid(format!(
                "run_per_core: {loops} loops to pin but only {} CPUs ({cpus:?})",
                cpus.len()
            )));
        }
        Ok(cpus.into_iter().take(loops).map(Some).collect())
    }
}

fn invalid(message: impl Into<Cow<'static, str>>) -> Error {
    Error::InvalidArgument(message.into())
}

/// Runs one event loop per thread, `options.loops` of them, each running
/// `f(loop, index, shutdown)` to completion as [`crate::run`] does
/// (asyncio.run semantics: tasks left over are cancelled, the default
/// executor is shut down, the loop is closed); returns each loop's result,
/// in index order, once every thread has finished.
///
/// When a loop fails (its future's error, a panic, a CPU it cannot be
/// pinned to), `run_per_core` triggers the shutdown so that the loops
/// waiting on it end, and returns the first failure; a panic comes back as
/// [`Error::Panic`] instead of taking the process down. Futures that never
/// look at the shutdown keep `run_per_core` waiting for them.
///
/// Signals are process-wide and each belongs to one loop: let one loop
/// (index 0, say) install the handlers and trigger the shutdown.
///
/// # Examples
///
/// Two loops that run until loop 0 triggers the shutdown (a signal handler
/// would do the same):
///
/// ```
/// use std::time::Duration;
/// use evloop::{run_per_core, PerCore};
///
/// let results = run_per_core(PerCore::default().loops(2), |lp, index, shutdown| async move {
///     if index == 0 {
///         let stopper = shutdown.clone();
///         lp.call_later(Duration::from_millis(10), move || stopper.trigger())?;
///     }
///     shutdown.wait().await;
///     Ok(index * 10)
/// })?;
/// assert_eq!(results, [0, 10]);
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// An echo server on port 8080 with one listener per loop, stopped by
/// SIGINT or SIGTERM (the `echo_per_core` example does the same with port
/// 0: loop 0 binds first and hands its port to the others):
///
/// ```no_run
/// use evloop::{run_per_core, PerCore, Protocol, ServerOptions, Transport};
///
/// #[derive(Default)]
/// struct Echo(Option<Transport>);
/// impl Protocol for Echo {
///     fn connection_made(&mut self, transport: Transport) {
///         self.0 = Some(transport);
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         if let Some(t) = &self.0 {
///             t.write(data);
///         }
///     }
/// }
///
/// run_per_core(PerCore::default().pin(true), |lp, index, shutdown| async move {
///     if index == 0 {
///         for signum in [2, 15] { // SIGINT, SIGTERM
///             let shutdown = shutdown.clone();
///             lp.add_signal_handler(signum, move || shutdown.trigger())?;
///         }
///     }
///     let options = ServerOptions::default().port(8080).reuse_port(true);
///     let server = lp.create_server(Echo::default, options).await?;
///     shutdown.wait().await;
///     server.close();
///     server.close_clients();
///     server.wait_closed().await;
///     Ok(())
/// })?;
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for zero loops or fewer CPUs than loops to
/// pin; [`Error::Io`] if a thread cannot be started or pinned (pinning is
/// Linux-only: `Unsupported` elsewhere); else the first error of a loop:
/// its future's, its loop's, or [`Error::Panic`].
pub fn run_per_core<F, Fut, T>(options: PerCore, f: F) -> Result<Vec<T>, Error>
where
    F: Fn(EventLoop, usize, Shutdown) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, Error>>,
    T: Send + 'static,
{
    let cpus = options.plan()?;
    let shutdown = options.shutdown;
    let f = Arc::new(f);
    let failure = Failure::default();
    let mut threads = Vec::with_capacity(cpus.len());
    for (index, cpu) in cpus.into_iter().enumerate() {
        let name = format!("{}-{index}", options.thread_name);
        let loop_thread = LoopThread {
            index,
            cpu,
            shutdown: shutdown.clone(),
            failure: failure.clone(),
        };
        match loop_thread.spawn(name, f.clone()) {
            Ok(handle) => threads.push(handle),
            Err(error) => {
                failure.record(index, Error::Io(error), &shutdown);
                break;
            }
        }
    }
    let mut results = Vec::with_capacity(threads.len());
    for (index, handle) in threads.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(value)) => results.push(value),
            Ok(Err(())) => {}
            Err(payload) => failure.record(index, Error::from_panic(&*payload), &shutdown),
        }
    }
    failure.take().map_or(Ok(results), Err)
}

/// What one loop's thread needs besides the caller's function.
struct LoopThread {
    index: usize,
    cpu: Option<usize>,
    shutdown: Shutdown,
    failure: Failure,
}

impl LoopThread {
    /// Starts the thread; it returns the loop's result, or `Err(())` once
    /// its failure is recorded (and the shutdown triggered).
    fn spawn<F, Fut, T>(
        self,
        name: String,
        f: Arc<F>,
    ) -> std::io::Result<thread::JoinHandle<Result<T, ()>>>
    where
        F: Fn(EventLoop, usize, Shutdown) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Error>>,
        T: Send + 'static,
    {
        thread::Builder::new().name(name).spawn(move || {
            // Caught here, not at join: the other loops must hear of it at
            // once, or a join in index order could wait forever.
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                run_one(self.index, self.cpu, &*f, self.shutdown.clone())
            }))
            .unwrap_or_else(|payload| Err(Error::from_panic(&*payload)));
            outcome.map_err(|error| self.failure.record(self.index, error, &self.shutdown))
        })
    }
}

/// One loop's thread: pin it, then `crate::run` the caller's future.
fn run_one<F, Fut, T>(
    index: usize,
    cpu: Option<usize>,
    f: &F,
    shutdown: Shutdown,
) -> Result<T, Error>
where
    F: Fn(EventLoop, usize, Shutdown) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    if let Some(cpu) = cpu {
        affinity::pin_current_thread(cpu)?;
    }
    crate::run(async move {
        let event_loop = EventLoop::current()?;
        f(event_loop, index, shutdown).await
    })
}

/// The first failure of any loop (in time: the one that started the
/// shutdown).
#[derive(Clone, Default)]
struct Failure(Arc<Mutex<Option<Error>>>);

impl Failure {
    fn record(&self, index: usize, error: Error, shutdown: &Shutdown) {
        tracing::warn!(target: "evloop", index, %error, "run_per_core: a loop failed; shutting down the others");
        // Stored before the trigger: a loop failing because of the shutdown
        // must not take the place of the cause.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(error);
        shutdown.trigger();
    }

    fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// A one-way, thread-safe "stop now" that any number of loops can await
/// (a cross-thread `asyncio.Event` that is only ever set): cheap to clone,
/// `Send + Sync`.
///
/// ```
/// let shutdown = evloop::Shutdown::new();
/// let waiter = shutdown.clone();
/// let answer = evloop::run(async move {
///     std::thread::spawn(move || shutdown.trigger()); // from any thread
///     waiter.wait().await;
///     Ok::<_, evloop::Error>(waiter.is_triggered())
/// })?;
/// assert!(answer);
/// # Ok::<(), evloop::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Shutdown {
    state: Arc<Mutex<ShutdownState>>,
}

#[derive(Default)]
struct ShutdownState {
    triggered: bool,
    next_id: u64,
    /// The wakers of pending [`ShutdownWait`]s, by their id.
    waiters: Vec<(u64, Waker)>,
}

impl Shutdown {
    /// A shutdown not triggered yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Triggers it: every [`wait`](Self::wait), pending or future, completes.
    /// Idempotent; callable from any thread (a signal handler's callback,
    /// another loop, a plain thread).
    #[doc(alias = "set")]
    pub fn trigger(&self) {
        let waiters = {
            let mut state = self.lock();
            state.triggered = true;
            std::mem::take(&mut state.waiters)
        };
        // Woken outside the lock: a waker may run code that waits again.
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// True once triggered.
    #[doc(alias = "is_set")]
    pub fn is_triggered(&self) -> bool {
        self.lock().triggered
    }

    /// A future that completes once the shutdown is triggered.
    pub fn wait(&self) -> ShutdownWait {
        ShutdownWait {
            shutdown: self.clone(),
            id: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShutdownState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// What [`Shutdown::wait`] returns: completes once the shutdown is
/// triggered.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct ShutdownWait {
    shutdown: Shutdown,
    /// Our slot among the waiters, once registered.
    id: Option<u64>,
}

impl Future for ShutdownWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut state = this.shutdown.lock();
        if state.triggered {
            return Poll::Ready(());
        }
        let id = *this.id.get_or_insert_with(|| {
            state.next_id += 1;
            state.next_id
        });
        match state.waiters.iter_mut().find(|(slot, _)| *slot == id) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => state.waiters.push((id, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for ShutdownWait {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shutdown.lock().waiters.retain(|(slot, _)| *slot != id);
        }
    }
}

/// Thread CPU affinity: `sched_setaffinity` on Linux, unsupported elsewhere.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod affinity {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

    use super::{invalid, Error};

    /// The CPUs this thread may run on, in ascending order.
    pub(super) fn allowed_cpus() -> Result<Vec<usize>, Error> {
        let set = sched_getaffinity(None).map_err(std::io::Error::from)?;
        Ok((0..CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect())
    }

    /// Pins the calling thread to `cpu`.
    pub(super) fn pin_current_thread(cpu: usize) -> Result<(), Error> {
        if cpu >= CpuSet::MAX_CPU {
            return Err(invalid(format!(
                "run_per_core: CPU {cpu} is past the last one ({})",
                CpuSet::MAX_CPU - 1
            )));
        }
        let mut set = CpuSet::new();
        set.set(cpu);
        sched_setaffinity(None, &set).map_err(|errno| {
            let error = std::io::Error::from(errno);
            Error::Io(std::io::Error::new(
                error.kind(),
                format!("run_per_core: pin to CPU {cpu}: {error}"),
            ))
        })
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod affinity {
    use std::io;

    use super::Error;

    fn unsupported() -> Error {
        Error::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            "run_per_core: pinning loops to CPUs is Linux-only",
        ))
    }

    pub(super) fn allowed_cpus() -> Result<Vec<usize>, Error> {
        Err(unsupported())
    }

    pub(super) fn pin_current_thread(_cpu: usize) -> Result<(), Error> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Every loop waits for the shutdown; another thread triggers it once
    /// all three have started.
    #[test]
    fn every_loop_runs_on_its_own_thread_and_results_come_in_index_order() {
        let shutdown = Shutdown::new();
        let options = PerCore::default()
            .loops(3)
            .thread_name("per-core-test")
            .shutdown(shutdown.clone());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let trigger = thread::spawn(move || {
            for _ in 0..3 {
                started_rx.recv().unwrap();
            }
            shutdown.trigger();
        });
        let started_tx = Mutex::new(started_tx);
        let results = run_per_core(options, move |lp, index, shutdown| {
            let name = thread::current().name().map(str::to_owned);
            let _ = started_tx.lock().unwrap().send(());
            async move {
                shutdown.wait().await;
                assert!(lp.is_running());
                Ok((index, name))
            }
        })
        .unwrap();
        trigger.join().unwrap();
        let expected: Vec<_> = (0..3)
            .map(|i| (i, Some(format!("per-core-test-{i}"))))
            .collect();
        assert_eq!(results, expected);
    }

    #[test]
    fn a_failing_loop_shuts_the_others_down_and_its_error_comes_back() {
        let options = PerCore::default().loops(3);
        let error = run_per_core(options, |_lp, index, shutdown| async move {
            if index == 1 {
                return Err(Error::InvalidArgument("loop 1 gives up".into()));
            }
            shutdown.wait().await;
            Ok(())
        })
        .unwrap_err();
        assert!(
            matches!(&error, Error::InvalidArgument(m) if m == "loop 1 gives up"),
            "{error:?}"
        );
    }

    #[test]
    fn a_panicking_loop_is_an_error_not_an_abort() {
        let error = run_per_core(PerCore::default().loops(2), |_lp, index, shutdown| {
            assert_ne!(index, 1, "loop 1 panics before its future exists");
            async move {
                shutdown.wait().await;
                Ok(())
            }
        })
        .unwrap_err();
        assert!(
            matches!(&error, Error::Panic(m) if m.contains("loop 1 panics")),
            "{error:?}"
        );

        let error = run_per_core(
            PerCore::default().loops(2),
            |_lp, index, shutdown| async move {
                assert_ne!(index, 0, "loop 0 panics in its future");
                shutdown.wait().await;
                Ok(())
            },
        )
        .unwrap_err();
        assert!(
            matches!(&error, Error::Panic(m) if m.contains("loop 0 panics")),
            "{error:?}"
        );
    }

    #[test]
    fn bad_options_are_typed_errors() {
        let nothing = |_: EventLoop, _: usize, _: Shutdown| async { Ok(()) };
        let zero = run_per_core(PerCore::default().loops(0), nothing).unwrap_err();
        assert!(matches!(zero, Error::InvalidArgument(_)), "{zero:?}");
        let short = run_per_core(PerCore::default().loops(3).cpus([0, 0]), nothing).unwrap_err();
        assert!(matches!(short, Error::InvalidArgument(_)), "{short:?}");
        let far = run_per_core(PerCore::default().cpus([usize::MAX]), nothing).unwrap_err();
        assert!(
            matches!(far, Error::InvalidArgument(_) | Error::Io(_)),
            "{far:?}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pinned_loops_run_on_their_cpu() {
        let allowed = affinity::allowed_cpus().unwrap();
        let loops = allowed.len().min(2);
        let options = PerCore::default().loops(loops).pin(true);
        let seen = run_per_core(options, |_lp, _index, _shutdown| async {
            let set = rustix::thread::sched_getaffinity(None).map_err(std::io::Error::from)?;
            Ok((0..rustix::thread::CpuSet::MAX_CPU)
                .filter(|&cpu| set.is_set(cpu))
                .collect::<Vec<_>>())
        })
        .unwrap();
        let expected: Vec<Vec<usize>> = allowed.iter().take(loops).map(|&c| vec![c]).collect();
        assert_eq!(seen, expected);
        // More loops to pin than CPUs allowed: refused before any thread starts.
        let too_many = PerCore::default().loops(allowed.len() + 1).pin(true);
        let error = run_per_core(too_many, |_lp, _i, _s| async { Ok(()) }).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    }

    #[test]
    fn a_dropped_wait_leaves_no_waker_behind() {
        let shutdown = Shutdown::new();
        let lp = EventLoop::new().unwrap();
        let waiter = shutdown.clone();
        let outcome = lp.run_until_complete(async move {
            let pending = lp_timeout(waiter.wait()).await;
            Ok::<_, Error>(pending)
        });
        assert!(outcome.unwrap().unwrap());
        assert!(shutdown.lock().waiters.is_empty());
        shutdown.trigger();
        assert!(shutdown.is_triggered());
        lp.close().unwrap();
    }

    /// True when `wait` is still pending after 5 ms (and is then dropped).
    async fn lp_timeout(wait: ShutdownWait) -> bool {
        let lp = EventLoop::current().unwrap();
        lp.timeout(Duration::from_millis(5), wait).await.is_err()
    }
}
