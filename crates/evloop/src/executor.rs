//! `run_in_executor` and the default executor (docs/behaviour.md 13): blocking calls run
//! on a thread pool, their results come back as futures the loop awaits.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use evloop_core::Error;
use evloop_executor::{spawn_blocking, BlockingTask, Executor, JobError, ShutDown, ThreadPool};

use crate::EventLoop;

/// The loop's default executor, created on first use.
#[derive(Default)]
struct DefaultExecutor {
    pool: RefCell<Option<Arc<dyn Executor>>>,
    shut_down: std::cell::Cell<bool>,
}

/// The result of a call run on an executor: `Error::Panic` if it panicked,
/// `Error::Cancelled` if the executor dropped it unrun.
pub struct ExecutorFuture<T> {
    state: State<T>,
}

enum State<T> {
    Running(BlockingTask<T>),
    /// A call that itself returns `Result<T, Error>` (name lookups).
    Fallible(BlockingTask<Result<T, Error>>),
    /// `shutdown_default_executor(Some(timeout))`: `true` if the threads
    /// were joined in time, `false` warns; either way the output is the
    /// value held here (`()`).
    Joining(BlockingTask<bool>, Duration, Option<T>),
    Ready(Option<Result<T, Error>>),
}

impl<T> ExecutorFuture<T> {
    pub(crate) fn ready(output: Result<T, Error>) -> Self {
        ExecutorFuture {
            state: State::Ready(Some(output)),
        }
    }

    fn running(task: BlockingTask<T>) -> Self {
        ExecutorFuture {
            state: State::Running(task),
        }
    }

    /// Runs a fallible `f` on the default executor, flattening its error
    /// into the future's.
    pub(crate) fn fallible<F>(event_loop: &EventLoop, f: F) -> Self
    where
        F: FnOnce() -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        if event_loop.is_closed() {
            return ExecutorFuture::ready(Err(Error::Closed));
        }
        let task = event_loop
            .default_executor()
            .and_then(|executor| spawn_blocking(&*executor, f).map_err(shut_down_error));
        match task {
            Ok(task) => ExecutorFuture {
                state: State::Fallible(task),
            },
            Err(error) => ExecutorFuture::ready(Err(error)),
        }
    }
}

// Never pin-projected: the output is only moved out, so pinning is moot.
impl<T> Unpin for ExecutorFuture<T> {}

impl<T> Future for ExecutorFuture<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Running(task) => Pin::new(task).poll(cx).map(|r| r.map_err(job_error)),
            State::Fallible(task) => Pin::new(task)
                .poll(cx)
                .map(|r| r.map_err(job_error).and_then(|inner| inner)),
            State::Joining(task, timeout, output) => {
                let timeout = *timeout;
                let mut done = || {
                    output
                        .take()
                        .ok_or(Error::InvalidState("future polled after completion"))
                };
                Pin::new(task).poll(cx).map(|joined| match joined {
                    Ok(true) => done(),
                    Ok(false) => {
                        // asyncio's RuntimeWarning, word for word (sic).
                        tracing::warn!(
                            target: "evloop",
                            "The executor did not finishing joining its threads within {} seconds.",
                            timeout.as_secs_f64()
                        );
                        done()
                    }
                    Err(error) => Err(job_error(error)),
                })
            }
            State::Ready(output) => Poll::Ready(
                output
                    .take()
                    .unwrap_or(Err(Error::InvalidState("future polled after completion"))),
            ),
        }
    }
}

impl<T> fmt::Debug for ExecutorFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Running(task) if task.is_finished() => "finished",
            State::Fallible(task) if task.is_finished() => "finished",
            State::Joining(task, ..) if task.is_finished() => "finished",
            State::Running(_) | State::Fallible(_) | State::Joining(..) => "running",
            State::Ready(_) => "ready",
        };
        f.debug_struct("ExecutorFuture")
            .field("state", &state)
            .finish()
    }
}

fn job_error(error: JobError) -> Error {
    match error {
        JobError::Panicked(message) => Error::Panic(message),
        JobError::Dropped => Error::Cancelled(None),
    }
}

fn shut_down_error(_: ShutDown) -> Error {
    Error::InvalidState("executor is shut down")
}

impl EventLoop {
    fn default_executor_state(&self) -> std::rc::Rc<DefaultExecutor> {
        let mut created = false;
        let state = self.as_core().extension(|| {
            created = true;
            DefaultExecutor::default()
        });
        if created {
            let hook_state = state.clone();
            // Closing never waits for running calls (asyncio: shutdown(wait=False)).
            let _ = self.as_core().add_close_hook(move |_| {
                if let Some(pool) = hook_state.pool.borrow_mut().take() {
                    pool.shutdown(false);
                }
            });
        }
        state
    }

    fn default_executor(&self) -> Result<Arc<dyn Executor>, Error> {
        let state = self.default_executor_state();
        if state.shut_down.get() {
            return Err(Error::InvalidState("default executor is shut down"));
        }
        let mut pool = state.pool.borrow_mut();
        Ok(pool
            .get_or_insert_with(|| Arc::new(ThreadPool::new()))
            .clone())
    }

    /// Runs `f` on `executor` (the default thread pool when `None`, created
    /// lazily with threads named `evloop-executor-N`); the future resolves on
    /// the loop with `f`'s result. A result arriving after the loop closed is
    /// dropped quietly.
    ///
    /// # Errors
    /// The future fails with [`Error::Closed`] on a closed loop,
    /// [`Error::InvalidState`] if the executor was shut down, and with
    /// [`Error::Panic`] if `f` panicked.
    pub fn run_in_executor<T, F>(&self, executor: Option<&dyn Executor>, f: F) -> ExecutorFuture<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.is_closed() {
            return ExecutorFuture::ready(Err(Error::Closed));
        }
        let task = match executor {
            Some(executor) => spawn_blocking(executor, f).map_err(shut_down_error),
            None => self
                .default_executor()
                .and_then(|pool| spawn_blocking(&*pool, f).map_err(shut_down_error)),
        };
        match task {
            Ok(task) => ExecutorFuture::running(task),
            Err(error) => ExecutorFuture::ready(Err(error)),
        }
    }

    /// Makes `executor` the default for `run_in_executor(None, …)`. The
    /// previous default is shut down without waiting.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed loop.
    pub fn set_default_executor(&self, executor: Arc<dyn Executor>) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let state = self.default_executor_state();
        state.shut_down.set(false);
        if let Some(previous) = state.pool.borrow_mut().replace(executor) {
            previous.shutdown(false);
        }
        Ok(())
    }

    /// Shuts the default executor down (asyncio 3.12's
    /// `shutdown_default_executor(timeout)`): no new calls are accepted
    /// (later `run_in_executor(None, …)` calls fail with `InvalidState`),
    /// and the future resolves once the executor's threads have finished
    /// their queued calls and exited — the joining happens on a helper
    /// thread, never on the loop. Without an executor it resolves at once.
    ///
    /// With `Some(timeout)` it waits at most that long (wall-clock time,
    /// whatever the loop's clock): if the threads are still running then, it
    /// warns `The executor did not finishing joining its threads within
    /// {timeout} seconds.` (asyncio's `RuntimeWarning`, as a `tracing`
    /// warning with target `evloop`) and resolves anyway; the threads finish
    /// their calls in the background. `None` waits as long as it takes.
    pub fn shutdown_default_executor(&self, timeout: Option<Duration>) -> ExecutorFuture<()> {
        let state = self.default_executor_state();
        state.shut_down.set(true);
        let Some(pool) = state.pool.borrow_mut().take() else {
            return ExecutorFuture::ready(Ok(()));
        };
        let waiter = ThreadPool::builder()
            .thread_name_prefix("evloop-shutdown")
            .build()
            .unwrap_or_default();
        let task = match timeout {
            None => {
                spawn_blocking(&waiter, move || pool.shutdown(true)).map(ExecutorFuture::running)
            }
            Some(timeout) => {
                spawn_blocking(&waiter, move || join_within(pool, timeout)).map(|task| {
                    ExecutorFuture {
                        state: State::Joining(task, timeout, Some(())),
                    }
                })
            }
        };
        waiter.shutdown(false);
        task.unwrap_or_else(|e| ExecutorFuture::ready(Err(shut_down_error(e))))
    }

    /// Blocks until the default executor's threads exit (for `evloop::run`).
    /// See [`shutdown_default_executor`](Self::shutdown_default_executor)
    /// for the asynchronous form with a timeout.
    pub(crate) fn shutdown_default_executor_blocking(&self) {
        let state = self.default_executor_state();
        state.shut_down.set(true);
        let pool = state.pool.borrow_mut().take();
        if let Some(pool) = pool {
            pool.shutdown(true);
        }
    }
}

/// Joins `pool`'s threads on one more thread and waits at most `timeout`
/// for it: `true` if they were joined in time. If no thread can be
/// spawned, the pool is told to stop without waiting.
fn join_within(pool: Arc<dyn Executor>, timeout: Duration) -> bool {
    let (joined, wait) = std::sync::mpsc::channel();
    let joiner = std::thread::Builder::new()
        .name("evloop-join".to_owned())
        .spawn(move || {
            pool.shutdown(true);
            let _ = joined.send(());
        });
    match joiner {
        Ok(_) => wait.recv_timeout(timeout).is_ok(),
        Err(_) => false,
    }
}
