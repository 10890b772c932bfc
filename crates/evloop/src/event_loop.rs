//! The `EventLoop` facade type, its builder, and `evloop::run`.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use evloop_core::{Clock, Error, ErrorContext};

/// Python asyncio's event loop with its whole API: one per thread, `!Send`,
/// cheap to clone (an `Rc` inside).
///
/// Callbacks, exception handlers and task factories see this type; the
/// layer crates (`evloop::layers`) take the core loop, reached with
/// [`as_core`](Self::as_core).
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// send(evloop::EventLoop::new().unwrap()); // EventLoop is !Send
/// ```
///
/// ```compile_fail
/// // The exception handler gets the facade loop, not the core one.
/// let lp = evloop::EventLoop::new().unwrap();
/// lp.set_exception_handler(Some(|_: &evloop::layers::core::EventLoop, _: &evloop::ErrorContext| {}));
/// ```
#[derive(Clone)]
#[doc(alias = "AbstractEventLoop")]
pub struct EventLoop {
    core: evloop_core::EventLoop,
}

impl From<evloop_core::EventLoop> for EventLoop {
    fn from(core: evloop_core::EventLoop) -> Self {
        EventLoop { core }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

/// Configures an [`EventLoop`]: clock, debug mode, slow-callback threshold.
#[derive(Debug, Default)]
pub struct Builder {
    core: evloop_core::Builder,
}

impl Builder {
    /// Uses `clock` for `time()` and timers.
    pub fn clock(&mut self, clock: Arc<dyn Clock>) -> &mut Self {
        self.core.clock(clock);
        self
    }

    /// Uses a virtual clock that jumps to the next deadline when the loop
    /// would sleep (for tests).
    pub fn virtual_clock(&mut self) -> &mut Self {
        self.core.virtual_clock();
        self
    }

    /// Debug mode on or off (default: `EVLOOP_DEBUG` non-empty).
    pub fn debug(&mut self, on: bool) -> &mut Self {
        self.core.debug(on);
        self
    }

    /// How long a callback may run before it counts as slow (default 100 ms).
    pub fn slow_callback_duration(&mut self, limit: Duration) -> &mut Self {
        self.core.slow_callback_duration(limit);
        self
    }

    /// Opts in to relaxed I/O polling: while callbacks are ready, poll for
    /// I/O only once `callbacks` callbacks have run since the last poll or
    /// `interval` has passed, instead of every iteration (asyncio's way, the
    /// default). A `call_soon` chain then runs without a syscall per link;
    /// I/O is seen up to that many callbacks later. See
    /// [`IoPolling`](crate::IoPolling) for the details.
    pub fn relaxed_io_poll(&mut self, callbacks: NonZeroUsize, interval: Duration) -> &mut Self {
        self.core.relaxed_io_poll(callbacks, interval);
        self
    }

    /// Wraps each poll that may block (never the zero-timeout polls of a
    /// busy loop) in `hook`, which must call the `poll` it is given, once:
    /// an embedder releases its own lock there (a Python binding releases
    /// the GIL while the loop sleeps). A hook that does not call it gets a
    /// non-blocking poll instead. See `evloop_core::Builder::around_blocking_poll`.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use evloop::EventLoop;
    ///
    /// let sleeps = Rc::new(Cell::new(0));
    /// let seen = sleeps.clone();
    /// let lp = EventLoop::builder()
    ///     .around_blocking_poll(move |_lp: &EventLoop, poll| {
    ///         seen.set(seen.get() + 1);
    ///         poll();
    ///     })
    ///     .build()?;
    /// let stopper = lp.clone();
    /// lp.call_later(Duration::from_millis(1), move || stopper.stop())?;
    /// lp.run_forever()?;
    /// assert!(sleeps.get() >= 1);
    /// lp.close()?;
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn around_blocking_poll(
        &mut self,
        hook: impl Fn(&EventLoop, &mut (dyn FnMut() + Send)) + 'static,
    ) -> &mut Self {
        self.core
            .around_blocking_poll(move |core, poll| hook(&EventLoop::from(core.clone()), poll));
        self
    }

    /// Sets the I/O polling mode outright (`IoPolling::RELAXED` is 64
    /// callbacks or 1 ms; the default, `IoPolling::EveryIteration`, is
    /// asyncio's).
    pub fn io_polling(&mut self, mode: crate::IoPolling) -> &mut Self {
        self.core.io_polling(mode);
        self
    }

    /// Creates the loop.
    ///
    /// # Errors
    /// [`Error::Io`] if the reactor cannot be created.
    pub fn build(&mut self) -> Result<EventLoop, Error> {
        self.core.build().map(EventLoop::with_resolver)
    }
}

impl EventLoop {
    /// Creates a loop with default settings (asyncio's `new_event_loop`).
    ///
    /// # Errors
    /// [`Error::Io`] if the reactor cannot be created.
    #[doc(alias = "new_event_loop")]
    pub fn new() -> Result<EventLoop, Error> {
        evloop_core::EventLoop::new().map(EventLoop::with_resolver)
    }

    /// Wraps a new core loop, installing the facade's name resolver for the
    /// transports (getaddrinfo on the executor).
    fn with_resolver(core: evloop_core::EventLoop) -> EventLoop {
        evloop_transports::set_resolver(&core, std::rc::Rc::new(crate::names::ExecutorResolver));
        EventLoop::from(core)
    }

    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The loop running on this thread (asyncio's `get_running_loop`).
    ///
    /// # Errors
    /// [`Error::NotRunning`] when none runs.
    #[doc(alias = "get_running_loop")]
    #[doc(alias = "get_event_loop")]
    pub fn current() -> Result<EventLoop, Error> {
        evloop_core::EventLoop::current().map(EventLoop::from)
    }

    /// The loop running on this thread, if any.
    pub fn try_current() -> Option<EventLoop> {
        evloop_core::EventLoop::try_current().map(EventLoop::from)
    }

    /// The core loop this facade wraps, for calling a layer crate
    /// (`evloop::layers::*`) directly.
    pub fn as_core(&self) -> &evloop_core::EventLoop {
        &self.core
    }
}

/// Creates a loop, runs `future` to completion on it, and shuts it down as
/// `asyncio.run` does (asyncio's `asyncio.run(main())`):
///
/// 1. cancel every task still pending when `future` ends, and run the loop
///    until they have all finished; a task that ended with an error other
///    than cancellation (a panic) is reported to the exception handler as
///    `unhandled exception during evloop.run() shutdown`;
/// 2. shut down the default executor, waiting for its threads;
/// 3. close the loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let answer = evloop::run(async {
///     let lp = evloop::EventLoop::current()?;
///     // Left running: cancelled by run's shutdown, not leaked.
///     let sleeper = lp.clone();
///     let _ticker = lp.create_task(async move { sleeper.sleep(Duration::from_secs(3600)).await })?;
///     Ok::<_, evloop::Error>(42)
/// })?;
/// assert_eq!(answer, 42);
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// `future` returns a `Result` (as a `main` does); its error and the
/// loop's come back as one.
///
/// # Errors
/// The future's error; those of [`EventLoop::new`] and
/// `run_until_complete`.
#[doc(alias = "asyncio.run")]
pub fn run<T, E: From<Error>>(future: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let event_loop = EventLoop::new()?;
    let output = event_loop.block_on(future);
    cancel_all_tasks(&event_loop);
    event_loop.shutdown_default_executor_blocking();
    event_loop.close()?;
    output
}

/// asyncio.run's `_cancel_all_tasks`: cancel what is left, run the loop
/// until every one of them is done, report the ones that failed. (A task
/// cannot intercept its cancellation in evloop, so a cancelled task ends
/// cancelled; the report is kept for parity and for task factories.)
fn cancel_all_tasks(event_loop: &EventLoop) {
    let tasks = event_loop.all_tasks();
    if tasks.is_empty() {
        return;
    }
    let all_done = event_loop.create_future::<()>();
    let remaining = Rc::new(Cell::new(tasks.len()));
    for task in &tasks {
        task.cancel();
        let (remaining, all_done) = (remaining.clone(), all_done.clone());
        task.add_done_callback(move |_| {
            remaining.set(remaining.get() - 1);
            if remaining.get() == 0 {
                let _ = all_done.set_result(());
            }
        });
    }
    if let Err(error) = event_loop.run_until_complete(all_done) {
        tracing::warn!(target: "evloop", %error, "evloop::run: shutdown did not wait for every task");
    }
    for task in tasks {
        if let Ok(Some(error)) = task.exception() {
            event_loop.call_exception_handler(ErrorContext {
                message: "unhandled exception during evloop.run() shutdown".into(),
                error: Some(error),
                task: Some(task.describe()),
                ..ErrorContext::default()
            });
        }
    }
}
