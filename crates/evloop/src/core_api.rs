//! The core's API on the facade type (docs/behaviour.md 1–4, 8, 14, 15): running and
//! stopping, callbacks and time, futures and tasks, fd watchers, errors and
//! debug, and the Rust conveniences (sleep, timeout, interval, readiness).
//!
//! The facade does not `Deref` to `evloop_core::EventLoop`: callbacks,
//! exception handlers and task factories see the [`EventLoop`] the user
//! made, and the core's plumbing for the layers (extensions, close hooks,
//! fd claims) stays out of the facade's API. Each method forwards to the
//! core; its documentation says what asyncio call it is.

use std::cell::RefCell;
use std::future::Future;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_core::{
    Clock, Error, ErrorContext, Handle, Interval, LocalBoxFuture, LoopFuture, LoopStats, Readiness,
    Remote, Sleep, Task, TaskOptions, TaskRef, TimerHandle,
};

use crate::EventLoop;

/// An exception handler as the facade stores it (asyncio's
/// `loop.get_exception_handler()`).
pub type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ErrorContext)>;

/// A task factory as the facade stores it (asyncio's
/// `loop.get_task_factory()`): it wraps the body of every task.
pub type TaskFactory = Rc<dyn Fn(&EventLoop, LocalBoxFuture) -> LocalBoxFuture>;

/// The user's hooks, kept as given so the getters return them.
#[derive(Default)]
struct Hooks {
    exception_handler: RefCell<Option<ExceptionHandler>>,
    task_factory: RefCell<Option<TaskFactory>>,
}

impl EventLoop {
    fn hooks(&self) -> Rc<Hooks> {
        self.as_core().extension(Hooks::default)
    }

    // ----- running (docs/behaviour.md 1) ---------------------------------------------

    /// Runs until [`stop`](Self::stop) (asyncio's `run_forever`).
    ///
    /// # Errors
    /// [`Error::Closed`], [`Error::AlreadyRunning`],
    /// [`Error::AnotherLoopRunning`].
    pub fn run_forever(&self) -> Result<(), Error> {
        self.as_core().run_forever()
    }

    /// Runs until `future` completes and returns its output (asyncio's
    /// `run_until_complete`). For a future whose output is itself a
    /// `Result`, [`block_on`](Self::block_on) gives one `Result`.
    ///
    /// # Errors
    /// [`Error::StoppedBeforeComplete`] if the loop was stopped first, a
    /// panic of the future as [`Error::Panic`], and the errors of
    /// [`run_forever`](Self::run_forever).
    pub fn run_until_complete<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        self.as_core().run_until_complete(future)
    }

    /// [`run_until_complete`](Self::run_until_complete) for a fallible
    /// future: the future's error and the loop's arrive as one `Result`, so
    /// `lp.block_on(fut)?` needs no `??`.
    ///
    /// # Examples
    ///
    /// ```
    /// let lp = evloop::EventLoop::new()?;
    /// let task = lp.create_task(async { 6 * 7 })?;
    /// assert_eq!(lp.block_on(task)?, 42);
    /// lp.close()?;
    /// # Ok::<(), evloop::Error>(())
    /// ```
    ///
    /// # Errors
    /// The future's error, or the loop's (as `run_until_complete`).
    #[doc(alias = "run_until_complete")]
    pub fn block_on<T, E: From<Error>>(
        &self,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.run_until_complete(future)?
    }

    /// Stops the loop after the current batch of callbacks (asyncio's `stop`).
    pub fn stop(&self) {
        self.as_core().stop();
    }

    /// True while `run_*` runs.
    pub fn is_running(&self) -> bool {
        self.as_core().is_running()
    }

    /// True once [`close`](Self::close) ran.
    pub fn is_closed(&self) -> bool {
        self.as_core().is_closed()
    }

    /// Closes the loop: drops pending callbacks, releases transports and
    /// servers still open, shuts the default executor down without waiting.
    /// Idempotent.
    ///
    /// # Errors
    /// [`Error::Running`] while the loop runs.
    pub fn close(&self) -> Result<(), Error> {
        self.as_core().close()
    }

    // ----- callbacks and time (docs/behaviour.md 2, 3) -------------------------------

    /// Runs `f` on the next iteration, after the callbacks already queued
    /// (asyncio's `call_soon`).
    ///
    /// # Errors
    /// [`Error::Closed`].
    #[track_caller]
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Result<Handle, Error> {
        self.as_core().call_soon(f)
    }

    /// Runs `f` after `delay` on the loop's clock (asyncio's `call_later`).
    ///
    /// # Errors
    /// [`Error::Closed`].
    #[track_caller]
    pub fn call_later(
        &self,
        delay: Duration,
        f: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, Error> {
        self.as_core().call_later(delay, f)
    }

    /// Runs `f` at `when` on the loop's clock (asyncio's `call_at`).
    ///
    /// # Errors
    /// [`Error::Closed`].
    #[track_caller]
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> Result<TimerHandle, Error> {
        self.as_core().call_at(when, f)
    }

    /// The loop's clock now (asyncio's `time`).
    pub fn time(&self) -> Instant {
        self.as_core().time()
    }

    /// The loop's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.as_core().clock()
    }

    /// The `Send + Sync` handle for other threads (`call_soon_threadsafe`,
    /// `spawn`).
    #[doc(alias = "call_soon_threadsafe")]
    pub fn remote(&self) -> Remote {
        self.as_core().remote()
    }

    /// Completes after `delay` on the loop's clock (asyncio's `sleep`).
    pub fn sleep(&self, delay: Duration) -> Sleep {
        self.as_core().sleep(delay)
    }

    /// Completes at `deadline` on the loop's clock.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        self.as_core().sleep_until(deadline)
    }

    /// `future`'s output, or [`Error::TimedOut`] after `limit` (asyncio's
    /// `wait_for`); the future is dropped on timeout.
    #[doc(alias = "wait_for")]
    pub fn timeout<F: Future>(
        &self,
        limit: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Error>> {
        self.as_core().timeout(limit, future)
    }

    /// [`timeout`](Self::timeout) with a deadline.
    pub fn timeout_at<F: Future>(
        &self,
        deadline: Instant,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Error>> {
        self.as_core().timeout_at(deadline, future)
    }

    /// Ticks every `period`, the first tick at once.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero period.
    pub fn interval(&self, period: Duration) -> Result<Interval, Error> {
        self.as_core().interval(period)
    }

    /// Ticks every `period` from `start`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero period.
    pub fn interval_at(&self, start: Instant, period: Duration) -> Result<Interval, Error> {
        self.as_core().interval_at(start, period)
    }

    // ----- futures and tasks (docs/behaviour.md 4) -------------------------------------

    /// A future settled by hand (asyncio's `create_future`).
    pub fn create_future<T: 'static>(&self) -> LoopFuture<T> {
        self.as_core().create_future()
    }

    /// Runs `future` as a task (asyncio's `create_task`), through the task
    /// factory if one is set.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub fn create_task<F>(&self, future: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.as_core().create_task(future)
    }

    /// [`create_task`](Self::create_task) with options (a name).
    ///
    /// # Errors
    /// [`Error::Closed`].
    #[doc(alias = "create_task")]
    pub fn create_task_with<F>(
        &self,
        future: F,
        options: TaskOptions,
    ) -> Result<Task<F::Output>, Error>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.as_core().create_task_with(future, options)
    }

    /// The task running now, if any (asyncio's `current_task`).
    pub fn current_task(&self) -> Option<TaskRef> {
        self.as_core().current_task()
    }

    /// The tasks of this loop not done yet (asyncio's `all_tasks`).
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        self.as_core().all_tasks()
    }

    /// Wraps the body of every task `create_task` makes; `None` restores
    /// the default (`None::<fn(&EventLoop, LocalBoxFuture) -> LocalBoxFuture>`).
    /// The factory sees this facade loop.
    pub fn set_task_factory<F>(&self, factory: Option<F>)
    where
        F: Fn(&EventLoop, LocalBoxFuture) -> LocalBoxFuture + 'static,
    {
        let factory: Option<TaskFactory> = factory.map(|f| Rc::new(f) as TaskFactory);
        *self.hooks().task_factory.borrow_mut() = factory.clone();
        self.as_core().set_task_factory(factory.map(|f| {
            move |core: &evloop_core::EventLoop, body: LocalBoxFuture| {
                f(&EventLoop::from(core.clone()), body)
            }
        }));
    }

    /// The task factory set with [`set_task_factory`](Self::set_task_factory).
    pub fn get_task_factory(&self) -> Option<TaskFactory> {
        self.hooks().task_factory.borrow().clone()
    }

    // ----- fd watchers (docs/behaviour.md 8) -------------------------------------------

    /// Calls `callback` whenever `fd` is readable, until
    /// [`remove_reader`](Self::remove_reader) (asyncio's `add_reader`). One
    /// reader per fd: adding again replaces it. The fd must stay open until
    /// the reader is removed.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::FdInUse`] if a transport owns the fd;
    /// [`Error::Io`] from the reactor (EPERM for a regular file).
    #[track_caller]
    pub fn add_reader(
        &self,
        fd: &impl AsFd,
        callback: impl FnMut() + 'static,
    ) -> Result<(), Error> {
        self.as_core().add_reader(fd, callback)
    }

    /// As [`add_reader`](Self::add_reader), for writability.
    ///
    /// # Errors
    /// As `add_reader`.
    #[track_caller]
    pub fn add_writer(
        &self,
        fd: &impl AsFd,
        callback: impl FnMut() + 'static,
    ) -> Result<(), Error> {
        self.as_core().add_writer(fd, callback)
    }

    /// Stops watching `fd` for reading; true if a reader was removed.
    pub fn remove_reader(&self, fd: &impl AsFd) -> bool {
        self.as_core().remove_reader(fd)
    }

    /// Stops watching `fd` for writing; true if a writer was removed.
    pub fn remove_writer(&self, fd: &impl AsFd) -> bool {
        self.as_core().remove_writer(fd)
    }

    /// Completes when `fd` is readable (tokio's `AsyncFd::readable`);
    /// dropping it stops watching.
    #[doc(alias = "AsyncFd")]
    pub fn readable<'fd>(&self, fd: &'fd impl AsFd) -> Readiness<'fd> {
        self.as_core().readable(fd)
    }

    /// Completes when `fd` is writable.
    #[doc(alias = "AsyncFd")]
    pub fn writable<'fd>(&self, fd: &'fd impl AsFd) -> Readiness<'fd> {
        self.as_core().writable(fd)
    }

    // ----- errors and debug (docs/behaviour.md 14, 15) ----------------------------------

    /// Sets the exception handler; `None` restores the default
    /// (`None::<fn(&EventLoop, &ErrorContext)>`). The handler sees this
    /// facade loop.
    pub fn set_exception_handler<H>(&self, handler: Option<H>)
    where
        H: Fn(&EventLoop, &ErrorContext) + 'static,
    {
        let handler: Option<ExceptionHandler> = handler.map(|h| Rc::new(h) as ExceptionHandler);
        *self.hooks().exception_handler.borrow_mut() = handler.clone();
        self.as_core().set_exception_handler(handler.map(|h| {
            move |core: &evloop_core::EventLoop, ctx: &ErrorContext| {
                h(&EventLoop::from(core.clone()), ctx);
            }
        }));
    }

    /// The handler set with [`set_exception_handler`](Self::set_exception_handler).
    pub fn get_exception_handler(&self) -> Option<ExceptionHandler> {
        self.hooks().exception_handler.borrow().clone()
    }

    /// The default handler: logs `ctx` through `tracing`.
    pub fn default_exception_handler(&self, ctx: &ErrorContext) {
        self.as_core().default_exception_handler(ctx);
    }

    /// Hands `ctx` to the exception handler (the default one if none is set).
    pub fn call_exception_handler(&self, ctx: ErrorContext) {
        self.as_core().call_exception_handler(ctx);
    }

    /// Always-on counters: iterations, callbacks, timers, slow callbacks,
    /// loop lag.
    pub fn stats(&self) -> LoopStats {
        self.as_core().stats()
    }

    /// How often this loop polls for I/O while callbacks are ready
    /// (default every iteration, as asyncio; [`Builder::io_polling`](crate::Builder::io_polling)).
    pub fn io_polling(&self) -> crate::IoPolling {
        self.as_core().io_polling()
    }

    /// Debug mode (asyncio's `get_debug`).
    pub fn get_debug(&self) -> bool {
        self.as_core().get_debug()
    }

    /// Turns debug mode on or off (asyncio's `set_debug`).
    pub fn set_debug(&self, on: bool) {
        self.as_core().set_debug(on);
    }

    /// How long a callback may run before debug mode reports it.
    pub fn slow_callback_duration(&self) -> Duration {
        self.as_core().slow_callback_duration()
    }

    /// Sets [`slow_callback_duration`](Self::slow_callback_duration).
    pub fn set_slow_callback_duration(&self, limit: Duration) {
        self.as_core().set_slow_callback_duration(limit);
    }

    /// Timers scheduled and not yet run or cancelled.
    pub fn pending_timers(&self) -> usize {
        self.as_core().pending_timers()
    }

    /// Callbacks queued to run.
    pub fn pending_callbacks(&self) -> usize {
        self.as_core().pending_callbacks()
    }

    /// The reactor backend's name (`"epoll"` or `"polling"`).
    pub fn backend_name(&self) -> &'static str {
        self.as_core().backend_name()
    }

    /// True if both handles are the same loop.
    pub fn ptr_eq(&self, other: &EventLoop) -> bool {
        self.as_core().ptr_eq(other.as_core())
    }
}
