//! [`ThreadPool`]: asyncio's default `ThreadPoolExecutor`, with lazily
//! spawned, named worker threads that exit when idle.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use concurrent_queue::ConcurrentQueue;

use crate::executor::{Executor, Job, ShutDown};

/// Upper bound of the default `max_workers`, as in CPython.
const DEFAULT_MAX_WORKERS_CAP: usize = 32;
/// Default thread name prefix; threads are `<prefix>-<n>`.
const DEFAULT_NAME_PREFIX: &str = "evloop-executor";
/// Default time an idle worker waits for a job before exiting.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A pool of worker threads for blocking calls: asyncio's default
/// `ThreadPoolExecutor`.
///
/// - Threads are created lazily: none until the first job, and a new one
///   only when no worker is idle and fewer than
///   [`max_workers`](ThreadPool::max_workers) are alive.
/// - Threads are named `<prefix>-0`, `<prefix>-1`, … in spawn order
///   (prefix `evloop-executor` by default).
/// - A worker idle for the [idle timeout](ThreadPoolBuilder::idle_timeout)
///   exits; a later job starts a new one.
/// - A panicking job never kills its worker (the panic is caught; with
///   [`spawn_blocking`](crate::spawn_blocking) it is reported through the
///   [`BlockingTask`](crate::BlockingTask)).
/// - Clones share one pool. Dropping the last handle shuts it down without
///   waiting: queued jobs still run, then the workers exit.
///
/// # Thread spawn failure
///
/// [`execute`](Executor::execute) never panics when the OS refuses a thread.
/// The job stays queued and runs later on an existing worker; if no worker
/// exists, every queued job is dropped unrun, which completes their
/// [`BlockingTask`](crate::BlockingTask)s with
/// [`JobError::Dropped`](crate::JobError::Dropped). The pool stays usable and
/// tries to spawn again on the next job.
///
/// # Examples
///
/// ```
/// use evloop_executor::{spawn_blocking, ThreadPool};
///
/// let pool = ThreadPool::new();
/// assert_eq!(pool.worker_count(), 0); // lazy
/// let name = spawn_blocking(&pool, || std::thread::current().name().map(str::to_owned))?;
/// let name = futures_lite::future::block_on(name).unwrap();
/// assert_eq!(name.as_deref(), Some("evloop-executor-0"));
/// # Ok::<(), evloop_executor::ShutDown>(())
/// ```
#[derive(Clone)]
#[doc(alias = "ThreadPoolExecutor")]
pub struct ThreadPool {
    handle: Arc<PoolHandle>,
}

/// Shared by the [`ThreadPool`] clones (not by the workers), so that dropping
/// the last clone can shut the pool down.
struct PoolHandle {
    inner: Arc<Inner>,
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.inner.shutdown(false);
    }
}

/// The pool proper, shared by the handles and every worker.
struct Inner {
    /// Jobs not yet taken by a worker.
    queue: ConcurrentQueue<Job>,
    /// Worker bookkeeping; see [`State`].
    state: Mutex<State>,
    /// Sleeping workers wait here for a wake-up token or shutdown.
    wake: Condvar,
    max_workers: usize,
    name_prefix: String,
    idle_timeout: Duration,
    stack_size: Option<usize>,
}

/// Worker bookkeeping, all under one mutex.
///
/// # Invariant
///
/// `idle == (workers waiting on the condvar) - wakeups`: `execute` moves one
/// unit from `idle` to `wakeups` when it wakes a worker, and a worker leaving
/// the wait either consumes a token (leaving `idle` alone) or, if there is
/// none, decrements `idle`. So `idle` counts sleepers nobody has claimed yet,
/// and `execute` spawns only when it is zero.
struct State {
    /// Worker threads alive (spawned and not yet returned).
    workers: usize,
    /// Sleeping workers not yet claimed by a wake-up.
    idle: usize,
    /// Wake-up tokens not yet consumed by a sleeping worker.
    wakeups: usize,
    /// Set once by `shutdown`; never cleared.
    shutdown: bool,
    /// Number of the next thread, for its name.
    next_id: usize,
    /// Join handles of workers not yet joined; pruned of finished threads
    /// when a new one is spawned.
    handles: Vec<JoinHandle<()>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock, but stay usable if one did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn execute(self: &Arc<Self>, job: Job) -> Result<(), ShutDown> {
        let mut state = self.lock();
        if state.shutdown {
            drop(state);
            drop(job);
            return Err(ShutDown);
        }
        // Pushed under the lock, so a worker deciding to sleep (which checks
        // the queue under the lock) cannot miss it.
        if self.queue.push(job).is_err() {
            unreachable!("the queue is unbounded and never closed");
        }
        let mut orphans = Vec::new();
        if state.idle > 0 {
            state.idle -= 1;
            state.wakeups += 1;
            self.wake.notify_one();
        } else if state.workers < self.max_workers {
            orphans = self.spawn_worker(&mut state);
        }
        // Otherwise every worker is busy: one takes the job when it is done.
        drop(state);
        // Dropping a job may wake a task; do it outside the lock.
        drop(orphans);
        Ok(())
    }

    /// Spawns one worker, under the lock (so `shutdown(true)` sees every
    /// handle). On failure, see the "Thread spawn failure" section of
    /// [`ThreadPool`]: returns the jobs nobody will run, for the caller to
    /// drop once it has released the lock.
    #[must_use]
    fn spawn_worker(self: &Arc<Self>, state: &mut State) -> Vec<Job> {
        state.handles.retain(|h| !h.is_finished());
        let mut builder =
            thread::Builder::new().name(format!("{}-{}", self.name_prefix, state.next_id));
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        let inner = Arc::clone(self);
        match builder.spawn(move || inner.worker_main()) {
            Ok(handle) => {
                state.next_id += 1;
                state.workers += 1;
                state.handles.push(handle);
                Vec::new()
            }
            // A worker alive now checks the queue before it sleeps or
            // exits, so the job will run.
            Err(_) if state.workers > 0 => Vec::new(),
            // Nobody will ever run what is queued: hand it back to be
            // dropped, which completes each BlockingTask with `Dropped`.
            Err(_) => std::iter::from_fn(|| self.queue.pop().ok()).collect(),
        }
    }

    fn worker_main(&self) {
        loop {
            while let Ok(job) = self.queue.pop() {
                // A panic is reported by the job itself (spawn_blocking) or
                // printed by the panic hook; either way the worker lives on,
                // even if dropping the panic payload panics too.
                if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(job)) {
                    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(|| drop(payload))) {
                        std::mem::forget(again);
                    }
                }
            }
            let mut state = self.lock();
            if !self.queue.is_empty() {
                continue;
            }
            if state.shutdown {
                state.workers -= 1;
                return;
            }
            state.idle += 1;
            let (guard, _) = self
                .wake
                .wait_timeout_while(state, self.idle_timeout, |s| s.wakeups == 0 && !s.shutdown)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            if state.wakeups > 0 {
                // Claimed by `execute`, which already decremented `idle`.
                state.wakeups -= 1;
                continue;
            }
            state.idle -= 1;
            if state.shutdown || !self.queue.is_empty() {
                continue;
            }
            // Timed out with nothing to do.
            state.workers -= 1;
            return;
        }
    }

    fn shutdown(&self, wait: bool) {
        let mut state = self.lock();
        state.shutdown = true;
        self.wake.notify_all();
        if !wait {
            return;
        }
        // Called from a job, a worker cannot join itself: its handle stays
        // for a later `shutdown(true)` from elsewhere, and the worker exits
        // once the queue is drained, after this job returns.
        let me = thread::current().id();
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut state.handles)
            .into_iter()
            .partition(|h| h.thread().id() == me);
        state.handles = mine;
        drop(state);
        for handle in others {
            // The worker catches job panics, so it returns normally.
            let _ = handle.join();
        }
    }
}

impl ThreadPool {
    /// Creates a pool with the defaults: `max_workers = min(32,
    /// available_parallelism + 4)` as in CPython, threads named
    /// `evloop-executor-N`, idle timeout 60 s, the platform's stack size.
    ///
    /// No thread is started until the first job.
    pub fn new() -> ThreadPool {
        ThreadPool::from_config(
            default_max_workers(),
            DEFAULT_NAME_PREFIX.to_owned(),
            DEFAULT_IDLE_TIMEOUT,
            None,
        )
    }

    /// Returns a builder to configure a pool.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    /// The most worker threads this pool runs at once.
    pub fn max_workers(&self) -> usize {
        self.handle.inner.max_workers
    }

    /// How many worker threads are currently alive.
    pub fn worker_count(&self) -> usize {
        self.handle.inner.lock().workers
    }

    fn from_config(
        max_workers: usize,
        name_prefix: String,
        idle_timeout: Duration,
        stack_size: Option<usize>,
    ) -> ThreadPool {
        let inner = Arc::new(Inner {
            queue: ConcurrentQueue::unbounded(),
            state: Mutex::new(State {
                workers: 0,
                idle: 0,
                wakeups: 0,
                shutdown: false,
                next_id: 0,
                handles: Vec::new(),
            }),
            wake: Condvar::new(),
            max_workers,
            name_prefix,
            idle_timeout,
            stack_size,
        });
        ThreadPool {
            handle: Arc::new(PoolHandle { inner }),
        }
    }
}

impl Default for ThreadPool {
    fn default() -> Self {
        ThreadPool::new()
    }
}

impl Executor for ThreadPool {
    fn execute(&self, job: Job) -> Result<(), ShutDown> {
        self.handle.inner.execute(job)
    }

    /// Stops accepting jobs; queued jobs still run. With `wait`, joins every
    /// worker thread, except the calling thread itself when called from a
    /// job (it exits once the queue is drained).
    fn shutdown(&self, wait: bool) {
        self.handle.inner.shutdown(wait);
    }

    fn is_shutdown(&self) -> bool {
        self.handle.inner.lock().shutdown
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.handle.inner;
        let state = inner.lock();
        f.debug_struct("ThreadPool")
            .field("max_workers", &inner.max_workers)
            .field("workers", &state.workers)
            .field("idle", &state.idle)
            .field("queued", &inner.queue.len())
            .field("shutdown", &state.shutdown)
            .finish()
    }
}

/// CPython's default: `min(32, os.cpu_count() + 4)`.
fn default_max_workers() -> usize {
    let cpus = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    DEFAULT_MAX_WORKERS_CAP.min(cpus.saturating_add(4))
}

/// Configures a [`ThreadPool`]: `&mut self` setters, then
/// [`build`](ThreadPoolBuilder::build), which may be called more than once
/// (each call makes an independent pool).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop_executor::ThreadPool;
///
/// let pool = ThreadPool::builder()
///     .max_workers(4)
///     .thread_name_prefix("resolver")
///     .idle_timeout(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(pool.max_workers(), 4);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    name_prefix: String,
    idle_timeout: Duration,
    stack_size: Option<usize>,
}

impl ThreadPoolBuilder {
    /// A builder with [`ThreadPool::new`]'s defaults.
    pub fn new() -> ThreadPoolBuilder {
        ThreadPoolBuilder {
            max_workers: None,
            name_prefix: DEFAULT_NAME_PREFIX.to_owned(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            stack_size: None,
        }
    }

    /// The most worker threads to run at once. Must be at least 1 (checked
    /// by [`build`](ThreadPoolBuilder::build)). Default: `min(32,
    /// available_parallelism + 4)`.
    pub fn max_workers(&mut self, n: usize) -> &mut Self {
        self.max_workers = Some(n);
        self
    }

    /// Threads are named `<prefix>-0`, `<prefix>-1`, … in spawn order.
    /// Default: `evloop-executor`. Must not contain a NUL byte (checked by
    /// [`build`](ThreadPoolBuilder::build)).
    pub fn thread_name_prefix(&mut self, prefix: impl Into<String>) -> &mut Self {
        self.name_prefix = prefix.into();
        self
    }

    /// How long an idle worker waits for a job before it exits. Default:
    /// 60 s. Zero makes workers exit as soon as the queue is empty.
    pub fn idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// The stack size of worker threads, in bytes. Default: the platform's
    /// (see [`std::thread::Builder::stack_size`]).
    pub fn stack_size(&mut self, bytes: usize) -> &mut Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Builds the pool. No thread is started until the first job.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `max_workers` is 0 or the thread
    /// name prefix contains a NUL byte.
    pub fn build(&mut self) -> io::Result<ThreadPool> {
        let max_workers = self.max_workers.unwrap_or_else(default_max_workers);
        if max_workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "max_workers must be greater than 0",
            ));
        }
        if self.name_prefix.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "thread name prefix must not contain a NUL byte",
            ));
        }
        Ok(ThreadPool::from_config(
            max_workers,
            self.name_prefix.clone(),
            self.idle_timeout,
            self.stack_size,
        ))
    }
}

impl Default for ThreadPoolBuilder {
    fn default() -> Self {
        ThreadPoolBuilder::new()
    }
}
