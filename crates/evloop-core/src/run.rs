//! Running the loop: `run_once` (asyncio's `_run_once`), `run_forever`,
//! `run_until_complete`, `stop`, and the thread's current loop.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use async_task::Runnable;
use evloop_reactor::{Events, Poller};
use std::time::Duration;

use crate::event_loop::{EventLoop, Inner};
use crate::exception::ErrorContext;
use crate::handle::HandleInfo;
use crate::ready::Entry;
use crate::remote::Shared;
use crate::stats::Stopwatch;
use crate::sync::{self, thread_local_cell, AtomicBool, Ordering};
use crate::Error;

thread_local_cell! {
    /// The loop running on this thread, if any.
    static CURRENT: RefCell<Option<Rc<Inner>>> = RefCell::new(None);
}

/// Pushes a task step onto the ready queue of the loop running on this
/// thread, if that loop is the one `shared` belongs to; gives it back
/// otherwise (another thread, another loop, not running, queue in use).
pub(crate) fn schedule_on_running_loop(
    shared: &Shared,
    runnable: Runnable,
) -> Result<(), Runnable> {
    let mut step = Some(runnable);
    let _ = CURRENT.try_with(|slot| {
        let Ok(running) = slot.try_borrow() else {
            return;
        };
        let Some(inner) = running.as_ref() else {
            return;
        };
        if !std::ptr::eq(sync::Arc::as_ptr(&inner.shared), shared) {
            return;
        }
        let Ok(mut ready) = inner.ready.try_borrow_mut() else {
            return;
        };
        if let Some(runnable) = step.take() {
            ready.push(Entry::Task(runnable));
        }
        drop(ready);
    });
    step.map_or(Ok(()), Err)
}

/// Marks the loop as running on this thread for as long as it lives, and
/// undoes that on every exit path.
struct RunGuard<'a> {
    event_loop: &'a EventLoop,
}

impl<'a> RunGuard<'a> {
    fn enter(event_loop: &'a EventLoop) -> Result<Self, Error> {
        let inner = &event_loop.inner;
        if inner.closed.get() {
            return Err(Error::Closed);
        }
        if inner.running.get() {
            return Err(Error::AlreadyRunning);
        }
        CURRENT.with(|current| {
            let mut current = current.borrow_mut();
            if current.is_some() {
                return Err(Error::AnotherLoopRunning);
            }
            *current = Some(inner.clone());
            Ok(())
        })?;
        inner.running.set(true);
        Ok(RunGuard { event_loop })
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let inner = &self.event_loop.inner;
        inner.running.set(false);
        inner.stopping.set(false);
        inner.interrupted.set(false);
        CURRENT.with(|current| current.borrow_mut().take());
    }
}

/// Wakes `run_until_complete`'s future: a flag plus the reactor's waker.
struct MainWaker {
    woken: AtomicBool,
    shared: sync::Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.shared.waker.wake();
    }
}

impl EventLoop {
    /// The loop running on this thread (asyncio's `get_running_loop`).
    ///
    /// # Errors
    /// [`Error::NotRunning`] when no loop runs on this thread.
    #[doc(alias("get_running_loop", "get_event_loop"))]
    pub fn current() -> Result<EventLoop, Error> {
        Self::try_current().ok_or(Error::NotRunning)
    }

    /// The loop running on this thread, if any.
    #[doc(alias = "_get_running_loop")]
    pub fn try_current() -> Option<EventLoop> {
        CURRENT.with(|current| current.borrow().clone().map(EventLoop::from_inner))
    }

    /// Asks the loop to stop: the current batch of callbacks finishes, then
    /// `run_forever` returns. Before `run_forever`, makes the next run do one
    /// iteration with a zero poll timeout.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Stops the loop at once: no further callback of the current batch
    /// runs (the running one finishes), and `run_forever` returns. The rest
    /// of the batch stays queued, ahead of everything scheduled since, and
    /// runs first when the loop runs again: asyncio's behaviour when a
    /// callback raises `KeyboardInterrupt` or `SystemExit` out of
    /// `run_forever`. When the loop is not running it is [`stop`](Self::stop).
    pub fn interrupt(&self) {
        let inner = &self.inner;
        inner.stopping.set(true);
        if inner.running.get() {
            inner.interrupted.set(true);
        }
    }

    /// Runs until [`stop`](Self::stop) is called.
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::AlreadyRunning`], [`Error::AnotherLoopRunning`].
    pub fn run_forever(&self) -> Result<(), Error> {
        let _guard = RunGuard::enter(self)?;
        tracing::debug!(target: "evloop", "run_forever");
        loop {
            self.run_once();
            if self.inner.stopping.get() {
                return Ok(());
            }
        }
    }

    /// Runs the loop until `future` completes and returns its output. The
    /// future may borrow from the caller; it is polled on this thread.
    ///
    /// # Errors
    /// [`Error::StoppedBeforeComplete`] if `stop()` came first (the future is
    /// dropped; pass a `Task` to keep it alive), [`Error::Panic`] if it
    /// panicked (the loop stays usable), and the errors of `run_forever`.
    pub fn run_until_complete<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        let _guard = RunGuard::enter(self)?;
        let mut future = pin!(future);
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            shared: self.inner.shared.clone(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut stopped = false;
        loop {
            if main.woken.swap(false, Ordering::Acquire) {
                let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
                match polled {
                    Ok(Poll::Ready(output)) => return Ok(output),
                    Ok(Poll::Pending) => {}
                    Err(payload) => return Err(Error::from_panic(&*payload)),
                }
            }
            if stopped {
                return Err(Error::StoppedBeforeComplete);
            }
            self.run_once();
            stopped = self.inner.stopping.get();
        }
    }

    /// One iteration (asyncio's `_run_once`, docs/behaviour.md 3.6): compute the timeout,
    /// poll once, queue I/O callbacks, queue expired timers, then run exactly
    /// the callbacks that were ready at that point. In relaxed I/O polling
    /// the poll is skipped while callbacks are ready and the gate allows it.
    pub(crate) fn run_once(&self) {
        let inner = &*self.inner;
        if let Some(carried) = inner.carried.take() {
            // What an interrupted batch left: before anything queued since,
            // as in asyncio, where it is still at the head of `_ready`.
            let due = inner.due.borrow().len();
            if !self.run_batch(carried, due) {
                return;
            }
        }
        inner.drain_remote();
        if self.poll_due() {
            let timeout = self.poll_timeout();
            self.poll(timeout);
            inner.drain_remote();
            inner
                .poll_gate
                .polled(inner.stats.callbacks.get(), &*inner.clock);
        }
        let ready = inner.ready.borrow().len();
        let due = self.take_due_timers();
        self.run_batch(ready, due);
        inner.stats.iterations.set(inner.stats.iterations.get() + 1);
    }

    /// Whether this iteration polls: always with nothing ready (the loop may
    /// sleep) or a stop pending (docs/behaviour.md 1.3); else as the
    /// [`IoPolling`](crate::IoPolling) mode says.
    #[inline]
    fn poll_due(&self) -> bool {
        let inner = &*self.inner;
        let gate = &inner.poll_gate;
        !gate.is_relaxed()
            || inner.ready.borrow().is_empty()
            || inner.stopping.get()
            || gate.should_poll(inner.stats.callbacks.get(), &*inner.clock)
    }

    /// Zero if anything is ready or a stop is pending; else until the next
    /// deadline (a virtual clock jumps there instead); else forever.
    fn poll_timeout(&self) -> Option<Duration> {
        let inner = &*self.inner;
        if !inner.ready.borrow().is_empty() || inner.stopping.get() {
            return Some(Duration::ZERO);
        }
        let deadline = inner.timers.borrow_mut().next_deadline()?;
        let mut now = inner.clock.now();
        if deadline > now && inner.clock.advance_to(deadline) {
            // A virtual clock jumps; one that cannot reach the deadline (past
            // its range) leaves the rest to a real wait instead of spinning.
            now = inner.clock.now();
        }
        Some(deadline.saturating_duration_since(now))
    }

    fn poll(&self, timeout: Option<Duration>) {
        let inner = &*self.inner;
        let poller = inner.poller.borrow();
        let Some(poller) = poller.as_ref() else {
            return;
        };
        inner.stats.polls.set(inner.stats.polls.get() + 1);
        if timeout == Some(Duration::ZERO) && inner.io.borrow().only_wakeups() {
            // Nothing watched but fds that wake a sleeping loop (its waker,
            // a signal wakeup fd): a poll that may not sleep learns nothing
            // from them (the remote queue is drained without it). Same
            // outcome as asyncio's, minus a syscall per iteration of a
            // callback chain (docs/behaviour.md 3.6).
            return;
        }
        let mut events = inner.events.borrow_mut();
        if let Err(error) = self.wait(poller, &mut events, timeout) {
            drop(events);
            self.call_exception_handler(ErrorContext {
                message: "poll failed".into(),
                error: Some(Error::Io(error)),
                ..ErrorContext::default()
            });
            return;
        }
        let io = inner.io.borrow();
        let mut ready = inner.ready.borrow_mut();
        let mut count = 0u64;
        for event in events.iter() {
            count += 1;
            io.queue_callbacks(event, &mut ready);
        }
        inner
            .stats
            .io_events
            .set(inner.stats.io_events.get() + count);
    }

    /// One wait, through the embedder's hook when it may block. Holds only
    /// the poller (shared) and the events buffer, so a hook may still
    /// schedule callbacks or stop the loop.
    fn wait(
        &self,
        poller: &Poller,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let hook = match &self.inner.around_blocking_poll {
            Some(hook) if timeout != Some(Duration::ZERO) => hook.0.clone(),
            _ => return poller.wait(events, timeout),
        };
        let mut outcome = None;
        hook(self, &mut || outcome = Some(poller.wait(events, timeout)));
        // A hook that skipped the poll gets a non-blocking one: the buffer
        // must not keep the previous wait's events.
        outcome.unwrap_or_else(|| poller.wait(events, Some(Duration::ZERO)))
    }

    /// Moves the timers due now (never earlier: docs/behaviour.md 3.2) to the due list,
    /// in deadline order, recording the loop lag; returns how many.
    fn take_due_timers(&self) -> usize {
        let inner = &*self.inner;
        let mut timers = inner.timers.borrow_mut();
        // Reading the clock costs as much as a callback: skip it when no
        // timer can be due.
        if timers.is_empty() {
            return 0;
        }
        let now = inner.clock.now();
        let mut due = inner.due.borrow_mut();
        while let Some((id, deadline, timer)) = timers.pop_expired(now) {
            if due.len() == 0 {
                inner
                    .stats
                    .record_lag(now.saturating_duration_since(deadline));
            }
            due.push(id, timer);
        }
        due.len()
    }

    /// Runs the batch of this iteration: the `ready` entries queued before it
    /// started, then the `due` timers (a callback of the batch can still
    /// cancel one); what the batch schedules waits for the next iteration.
    /// False if [`interrupt`](Self::interrupt) ended it early (the rest is
    /// carried to the next iteration).
    fn run_batch(&self, ready: usize, due: usize) -> bool {
        let inner = &*self.inner;
        if ready + due == 0 {
            return true;
        }
        let stopwatch = Stopwatch::start(&*inner.clock);
        let debug = inner.debug.get();
        let run = |entry| {
            if debug {
                self.run_entry_timed(entry);
            } else {
                self.run_entry(entry);
            }
        };
        for done in 0..ready {
            if inner.interrupted.get() {
                return self.carry(ready - done);
            }
            let Some(entry) = inner.ready.borrow_mut().pop() else {
                break;
            };
            run(entry);
        }
        if due > 0 && !self.run_due(run) {
            return self.carry(0);
        }
        let stats = &inner.stats;
        stats
            .timers_fired
            .set(stats.timers_fired.get() + due as u64);
        stats
            .callbacks
            .set(stats.callbacks.get() + (ready + due) as u64);
        if stopwatch.elapsed(&*inner.clock) >= inner.slow_callback_duration.get() {
            stats.slow_iterations.set(stats.slow_iterations.get() + 1);
        }
        true
    }

    /// Ends an interrupted batch: `ready` entries at the queue's head and
    /// the due timers not yet run wait for the next iteration. False.
    fn carry(&self, ready: usize) -> bool {
        let inner = &*self.inner;
        inner.interrupted.set(false);
        inner.due.borrow_mut().keep_rest();
        inner.carried.set(Some(ready));
        false
    }

    /// Runs the due timers of the batch (skipping those cancelled meanwhile)
    /// and empties the list; false, leaving the rest, if interrupted.
    fn run_due(&self, run: impl Fn(Entry)) -> bool {
        let inner = &*self.inner;
        loop {
            if inner.interrupted.get() {
                return false;
            }
            let next = inner.due.borrow_mut().next();
            match next {
                None => break,
                Some(None) => {} // cancelled while due
                Some(Some(timer)) => run(Entry::Timer(timer)),
            }
        }
        inner.due.borrow_mut().clear();
        true
    }

    fn run_entry(&self, entry: Entry) {
        let location = match &entry {
            Entry::Callback(node) if node.is_cancelled() => return,
            Entry::Callback(node) => Some(node.location()),
            Entry::Timer(timer) => Some(timer.location),
            Entry::Remote(_) | Entry::Task(_) => None,
        };
        let outcome = catch_unwind(AssertUnwindSafe(move || match entry {
            Entry::Callback(node) => node.call(),
            Entry::Remote(f) => f(),
            Entry::Timer(timer) => (timer.f)(),
            Entry::Task(runnable) => {
                runnable.run();
            }
        }));
        if let Err(payload) = outcome {
            let handle = location.map(|location| HandleInfo { location });
            let message = match handle {
                Some(h) => format!("Exception in callback {h}"),
                None => "Exception in callback".to_owned(),
            };
            self.call_exception_handler(ErrorContext {
                message,
                error: Some(Error::from_panic(&*payload)),
                handle,
                ..ErrorContext::default()
            });
        }
    }

    /// Debug mode: time each callback and log the slow ones with where they
    /// were scheduled.
    fn run_entry_timed(&self, entry: Entry) {
        let location = match &entry {
            Entry::Callback(node) => Some(node.location()),
            Entry::Timer(timer) => Some(timer.location),
            Entry::Remote(_) | Entry::Task(_) => None,
        };
        let start = self.inner.clock.now();
        self.run_entry(entry);
        let took = self.inner.clock.now().saturating_duration_since(start);
        if took >= self.inner.slow_callback_duration.get() {
            let stats = &self.inner.stats;
            stats.slow_callbacks.set(stats.slow_callbacks.get() + 1);
            let location =
                location.map_or_else(|| "<remote or task>".to_owned(), |l| l.to_string());
            tracing::warn!(
                target: "evloop",
                "Executing <Handle scheduled at {location}> took {:.3} seconds",
                took.as_secs_f64()
            );
        }
    }
}
