//! The [`Executor`] trait, [`spawn_blocking`], and the [`BlockingTask`]
//! future that carries a job's result back from its worker thread.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::PoisonError;
use std::task::{Context, Poll, Waker};

use crate::sync::{Arc, Mutex, MutexGuard};

/// A unit of work for an [`Executor`]: a boxed closure run once on some
/// worker thread.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// The error returned when a job is submitted to an executor that has been
/// shut down (asyncio's `RuntimeError: cannot schedule new futures after
/// shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutDown;

impl fmt::Display for ShutDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("executor is shut down")
    }
}

impl Error for ShutDown {}

/// Something that runs [`Job`]s on other threads: asyncio's
/// `concurrent.futures.Executor`, as far as `run_in_executor` uses it.
///
/// [`ThreadPool`](crate::ThreadPool) is the implementation this crate
/// provides; the loop accepts any other through `set_default_executor`.
pub trait Executor: Send + Sync + fmt::Debug {
    /// Queues a job.
    ///
    /// # Errors
    ///
    /// Returns [`ShutDown`] after [`shutdown`](Executor::shutdown); the job is
    /// dropped, not run.
    fn execute(&self, job: Job) -> Result<(), ShutDown>;

    /// Stops accepting jobs. Jobs already queued still run (asyncio's
    /// `shutdown(wait, cancel_futures=False)`).
    ///
    /// With `wait`, blocks until every worker thread has exited; without,
    /// returns at once. Calling it again is harmless.
    fn shutdown(&self, wait: bool);

    /// Whether [`shutdown`](Executor::shutdown) has been called.
    fn is_shutdown(&self) -> bool;
}

/// Runs `f` on `executor`, returning a future of its result.
///
/// A panic in `f` is caught on the worker thread and reported as
/// [`JobError::Panicked`]; if the executor drops the job without running it,
/// the future resolves to [`JobError::Dropped`].
///
/// # Errors
///
/// Returns [`ShutDown`] if the executor no longer accepts jobs; `f` is
/// dropped without running.
///
/// # Examples
///
/// ```
/// use evloop_executor::{spawn_blocking, JobError, ThreadPool};
///
/// let pool = ThreadPool::new();
/// let ok = spawn_blocking(&pool, || "done")?;
/// let boom = spawn_blocking(&pool, || -> u8 { panic!("boom") })?;
/// assert_eq!(futures_lite::future::block_on(ok), Ok("done"));
/// assert_eq!(
///     futures_lite::future::block_on(boom),
///     Err(JobError::Panicked("boom".to_owned()))
/// );
/// # Ok::<(), evloop_executor::ShutDown>(())
/// ```
#[doc(alias("run_in_executor", "to_thread"))]
pub fn spawn_blocking<T: Send + 'static>(
    executor: &(impl Executor + ?Sized),
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<BlockingTask<T>, ShutDown> {
    let slot = Arc::new(Mutex::new(Slot::Pending(None)));
    let completer = Completer {
        slot: Some(Arc::clone(&slot)),
    };
    let job: Job = Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f))
            .map_err(|payload| JobError::Panicked(panic_message(payload.as_ref())));
        completer.complete(result);
    });
    executor.execute(job)?;
    Ok(BlockingTask { slot })
}

/// Why a [`BlockingTask`] has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The closure panicked; this is the panic message (or a placeholder if
    /// the payload was neither `&str` nor `String`).
    Panicked(String),
    /// The job was dropped without running, e.g. the executor was shut down
    /// while the job was being queued, or it could not start a thread.
    Dropped,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Panicked(msg) => write!(f, "blocking job panicked: {msg}"),
            JobError::Dropped => f.write_str("blocking job was dropped without running"),
        }
    }
}

impl Error for JobError {}

/// A future of a blocking job's result, from [`spawn_blocking`].
///
/// It is woken from the worker thread, so it is `Send` (when `T` is) and
/// expects a waker that may be called from any thread. Dropping it before
/// the job finishes does not cancel the job; the result is dropped quietly
/// when it arrives.
#[must_use = "dropping a BlockingTask discards the job's result (the job still runs)"]
pub struct BlockingTask<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

/// Where a job's result waits for its [`BlockingTask`].
enum Slot<T> {
    /// No result yet; the waker of the last poll, if any.
    Pending(Option<Waker>),
    /// The result, not yet returned by `poll`.
    Ready(Result<T, JobError>),
    /// `poll` has returned the result.
    Taken,
    /// The [`BlockingTask`] was dropped; a late result is dropped.
    Abandoned,
}

fn lock<T>(slot: &Mutex<Slot<T>>) -> MutexGuard<'_, Slot<T>> {
    // No code panics while holding the lock, but stay usable if one did.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> BlockingTask<T> {
    /// Whether the job has finished (or been dropped), i.e. whether the next
    /// poll would be ready. Also true once the result has been taken.
    pub fn is_finished(&self) -> bool {
        !matches!(*lock(&self.slot), Slot::Pending(_))
    }
}

impl<T> Future for BlockingTask<T> {
    type Output = Result<T, JobError>;

    /// # Panics
    ///
    /// Panics if polled again after it returned `Ready`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.slot);
        match &mut *slot {
            Slot::Pending(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Ready(_) => match std::mem::replace(&mut *slot, Slot::Taken) {
                Slot::Ready(result) => Poll::Ready(result),
                _ => unreachable!("slot was Ready a moment ago"),
            },
            Slot::Taken | Slot::Abandoned => panic!("BlockingTask polled after completion"),
        }
    }
}

impl<T> Drop for BlockingTask<T> {
    fn drop(&mut self) {
        // Take any stored result or waker out under the lock and drop it after.
        let _old = std::mem::replace(&mut *lock(&self.slot), Slot::Abandoned);
    }
}

impl<T> fmt::Debug for BlockingTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match *lock(&self.slot) {
            Slot::Pending(_) => "pending",
            Slot::Ready(Ok(_)) => "ready",
            Slot::Ready(Err(JobError::Panicked(_))) => "panicked",
            Slot::Ready(Err(JobError::Dropped)) => "dropped",
            Slot::Taken => "taken",
            Slot::Abandoned => "abandoned",
        };
        f.debug_struct("BlockingTask")
            .field("state", &state)
            .finish()
    }
}

/// The job's end of the slot. Completes it exactly once: with the result,
/// or with [`JobError::Dropped`] if the job is dropped unrun.
struct Completer<T> {
    /// `None` once completed.
    slot: Option<Arc<Mutex<Slot<T>>>>,
}

impl<T> Completer<T> {
    fn complete(mut self, result: Result<T, JobError>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<T, JobError>) {
        let Some(slot) = self.slot.take() else { return };
        let mut guard = lock(&slot);
        let waker = match &mut *guard {
            Slot::Pending(waker) => {
                let waker = waker.take();
                *guard = Slot::Ready(result);
                waker
            }
            // Nobody wants the result: drop it outside the lock.
            Slot::Abandoned => {
                drop(guard);
                drop(result);
                return;
            }
            Slot::Ready(_) | Slot::Taken => unreachable!("a job completes its slot once"),
        };
        drop(guard);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.finish(Err(JobError::Dropped));
    }
}

/// The message of a panic payload, as the default panic hook would print it.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
