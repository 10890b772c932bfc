//! `Remote::spawn`: run a `Send` future on a loop from any thread and get its
//! result back (asyncio's `run_coroutine_threadsafe`), through a small
//! Mutex + Condvar oneshot that can be awaited or joined.

use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::sync::thread::{current_id, ThreadId};
use crate::sync::{Condvar, Mutex, MutexGuard};
use crate::{Error, EventLoop, Remote};

struct Slot<T> {
    outcome: Option<Result<T, Error>>,
    /// The outcome was moved out (joined or awaited).
    taken: bool,
    /// Who awaits the `RemoteTask`.
    waker: Option<Waker>,
    cancel: bool,
    /// The loop task's waker, to wake it for a cancel.
    task_waker: Option<Waker>,
}

/// The thread-safe rendezvous between the loop task and its `RemoteTask`.
struct Oneshot<T> {
    slot: Mutex<Slot<T>>,
    done: Condvar,
}

impl<T> Oneshot<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the outcome unless one is set; wakes the awaiter and joiners.
    fn complete(&self, outcome: Result<T, Error>) {
        let mut slot = self.lock();
        if slot.outcome.is_some() || slot.taken {
            return;
        }
        slot.outcome = Some(outcome);
        slot.task_waker = None;
        let waker = slot.waker.take();
        drop(slot);
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The loop side: completes the oneshot with `Cancelled` if it is dropped
/// before sending (the task was cancelled, or the loop closed under it).
struct Sender<T>(Arc<Oneshot<T>>);

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.complete(Err(Error::Cancelled(None)));
    }
}

impl<T> Sender<T> {
    async fn run<F: Future<Output = T>>(self, future: F) {
        let mut future = pin!(future);
        let outcome = poll_fn(|cx| {
            {
                let mut slot = self.0.lock();
                if slot.cancel {
                    return Poll::Ready(Err(Error::Cancelled(None)));
                }
                if !slot
                    .task_waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    slot.task_waker = Some(cx.waker().clone());
                }
            }
            match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                Ok(poll) => poll.map(Ok),
                Err(payload) => Poll::Ready(Err(Error::from_panic(&*payload))),
            }
        })
        .await;
        self.0.complete(outcome);
    }
}

/// The result of a future spawned with [`Remote::spawn`]: `Send`, awaitable
/// from any executor or loop, or [`join`](Self::join)ed by blocking (asyncio's
/// `concurrent.futures.Future` from `run_coroutine_threadsafe`).
///
/// Its output is the future's, or [`Error::Panic`] if it panicked,
/// [`Error::Cancelled`] if it was cancelled (by [`cancel`](Self::cancel), by
/// a cancel of its loop task, or by the loop closing first), [`Error::Closed`]
/// if the loop was closed when it was spawned. Dropping it lets the future
/// run on.
pub struct RemoteTask<T> {
    oneshot: Arc<Oneshot<T>>,
    loop_thread: ThreadId,
}

impl<T> RemoteTask<T> {
    /// Blocks this thread until the future finishes; its output.
    ///
    /// # Errors
    /// As the type says; and [`Error::InvalidState`] if called on the loop's
    /// own thread before the future finished (it would wait forever: the
    /// loop cannot run while its thread blocks; await it there instead).
    pub fn join(self) -> Result<T, Error> {
        let mut slot = self.oneshot.lock();
        if slot.outcome.is_none() && current_id() == self.loop_thread {
            return Err(Error::InvalidState(
                "join() on the loop's own thread would deadlock; await the RemoteTask instead",
            ));
        }
        loop {
            if let Some(outcome) = slot.outcome.take() {
                slot.taken = true;
                return outcome;
            }
            if slot.taken {
                return Err(Error::InvalidState("remote task output already taken"));
            }
            slot = self
                .oneshot
                .done
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// True once the future finished (or was cancelled).
    pub fn is_finished(&self) -> bool {
        let slot = self.oneshot.lock();
        slot.outcome.is_some() || slot.taken
    }

    /// Asks the loop to cancel the future: at its next step it is dropped
    /// and the output is `Error::Cancelled(None)`. False if it already
    /// finished. Works from any thread.
    pub fn cancel(&self) -> bool {
        let mut slot = self.oneshot.lock();
        if slot.outcome.is_some() || slot.taken {
            return false;
        }
        slot.cancel = true;
        let waker = slot.task_waker.take();
        drop(slot);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

impl<T> Future for RemoteTask<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.oneshot.lock();
        if let Some(outcome) = slot.outcome.take() {
            slot.taken = true;
            return Poll::Ready(outcome);
        }
        if slot.taken {
            return Poll::Ready(Err(Error::InvalidState("remote task output already taken")));
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for RemoteTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTask")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl Remote {
    /// Runs `future` as a task on the loop, from any thread, and returns a
    /// handle to its result (asyncio's `run_coroutine_threadsafe`). The task
    /// is created on the loop's thread at its next iteration, like any
    /// `call_soon_threadsafe` callback, and is an ordinary task there (named,
    /// in `all_tasks`, cancelled by `evloop::run`'s shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::thread;
    /// use evloop_core::EventLoop;
    ///
    /// let lp = EventLoop::new()?;
    /// let remote = lp.remote();
    /// let stopper = lp.remote();
    /// let worker = thread::spawn(move || {
    ///     let answer = remote.spawn(async { 6 * 7 }).join();
    ///     stopper.call_soon_threadsafe(|| EventLoop::current().unwrap().stop())?;
    ///     answer
    /// });
    /// lp.run_forever()?;
    /// assert_eq!(worker.join().unwrap()?, 42);
    /// lp.close()?;
    /// # Ok::<(), evloop_core::Error>(())
    /// ```
    #[doc(alias = "run_coroutine_threadsafe")]
    pub fn spawn<F>(&self, future: F) -> RemoteTask<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_with(move |_| future)
    }

    /// [`spawn`](Self::spawn) for a future that cannot cross threads: `make`
    /// (which can) is sent to the loop and builds the future there, given
    /// the loop, so the future may hold `!Send` values across its awaits
    /// (the loop itself, `sleep`, `Rc`s). Only the output must be `Send`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::thread;
    /// use std::time::Duration;
    /// use evloop_core::EventLoop;
    ///
    /// let lp = EventLoop::builder().virtual_clock().build()?;
    /// let remote = lp.remote();
    /// let worker = thread::spawn(move || {
    ///     let slept = remote
    ///         .spawn_with(|lp: &EventLoop| {
    ///             let lp = lp.clone();
    ///             async move {
    ///                 let start = lp.time();
    ///                 lp.sleep(Duration::from_secs(60)).await;
    ///                 lp.stop();
    ///                 lp.time() - start
    ///             }
    ///         })
    ///         .join();
    ///     slept
    /// });
    /// lp.run_forever()?;
    /// assert_eq!(worker.join().unwrap()?, Duration::from_secs(60));
    /// lp.close()?;
    /// # Ok::<(), evloop_core::Error>(())
    /// ```
    pub fn spawn_with<M, F>(&self, make: M) -> RemoteTask<F::Output>
    where
        M: FnOnce(&EventLoop) -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        let oneshot = Arc::new(Oneshot {
            slot: Mutex::new(Slot {
                outcome: None,
                taken: false,
                waker: None,
                cancel: false,
                task_waker: None,
            }),
            done: Condvar::new(),
        });
        let sender = Sender(oneshot.clone());
        let posted = self.call_soon_threadsafe(move || {
            // Posted callbacks run on the loop's thread, while it runs.
            if let Some(event_loop) = EventLoop::try_current() {
                // Detached: the handle is the RemoteTask.
                let future = make(&event_loop);
                drop(event_loop.create_task(sender.run(future)));
            }
        });
        if let Err(error) = posted {
            // The closure (and its sender) was dropped unrun: say why.
            let mut slot = oneshot.lock();
            slot.outcome = Some(Err(error));
        }
        RemoteTask {
            oneshot,
            loop_thread: self.shared.owner,
        }
    }
}
