//! `EventLoop`: the loop's state, its constructor, and the scheduling calls.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_task::FallibleTask;
use evloop_reactor::{Events, Poller};
use evloop_timers::{Clock, MonotonicClock, TimerHeap, TimerId, VirtualClock};

use crate::due::DueTimers;
use crate::exception::ExceptionHandler;
use crate::handle::{Handle, OnceNode, TimerEntry, TimerHandle};
use crate::io_polling::{IoPolling, PollGate};
use crate::io_watch::IoTable;
use crate::ready::{Entry, ReadyQueue};
use crate::remote::{Remote, Shared};
use crate::stats::StatCells;
use crate::sync::{self, Ordering};
use crate::task::{TaskFactory, TaskRegistry};
use crate::Error;

/// Default `slow_callback_duration` (asyncio's 100 ms).
pub const DEFAULT_SLOW_CALLBACK_DURATION: Duration = Duration::from_millis(100);

/// How far in the future a deadline may be; later ones are clamped here
/// (about 100 years), so huge delays neither overflow nor panic.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Events fetched per poll.
const EVENTS_CAPACITY: usize = 1024;

/// Work the layers above the core do when the loop closes.
type CloseHook = Box<dyn FnOnce(&EventLoop)>;

/// The poll a [`PollHook`] is handed: `Send`, so a binding can run it with
/// its interpreter lock released.
type Poll<'a> = &'a mut (dyn FnMut() + Send);

/// What [`Builder::around_blocking_poll`] stores.
type PollHookFn = dyn Fn(&EventLoop, Poll<'_>);

/// Wraps each poll that may block ([`Builder::around_blocking_poll`]).
#[derive(Clone)]
pub(crate) struct PollHook(pub(crate) Rc<PollHookFn>);

impl fmt::Debug for PollHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PollHook")
    }
}

/// The loop's single-threaded state. Every field is touched only by the
/// owning thread; `shared` is the part other threads see.
pub(crate) struct Inner {
    pub(crate) ready: RefCell<ReadyQueue>,
    pub(crate) timers: RefCell<TimerHeap<TimerEntry>>,
    pub(crate) due: RefCell<DueTimers>,
    pub(crate) poller: RefCell<Option<Poller>>,
    pub(crate) events: RefCell<Events>,
    pub(crate) io: RefCell<IoTable>,
    pub(crate) shared: sync::Arc<Shared>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) running: Cell<bool>,
    pub(crate) stopping: Cell<bool>,
    /// Set by [`EventLoop::interrupt`]: the batch ends before its next
    /// callback.
    pub(crate) interrupted: Cell<bool>,
    /// The ready entries an interrupted batch left at the front of the
    /// queue (its due timers stay in `due`): the next iteration runs them
    /// first.
    pub(crate) carried: Cell<Option<usize>>,
    pub(crate) closed: Cell<bool>,
    pub(crate) debug: Cell<bool>,
    pub(crate) slow_callback_duration: Cell<Duration>,
    pub(crate) stats: StatCells,
    /// When an iteration with callbacks ready polls for I/O.
    pub(crate) poll_gate: PollGate,
    pub(crate) exception_handler: RefCell<Option<ExceptionHandler>>,
    pub(crate) task_factory: RefCell<Option<TaskFactory>>,
    /// Every task created here, weakly, for `all_tasks`.
    pub(crate) tasks: RefCell<TaskRegistry>,
    extensions: RefCell<Vec<(TypeId, Rc<dyn Any>)>>,
    /// Tasks whose handle was dropped: kept so `close` can drop their
    /// futures on this thread instead of leaking them.
    detached: RefCell<DetachedTasks>,
    /// Set while `close` runs (see `Task`'s drop and [`Inner::settle`]).
    pub(crate) closing: Cell<bool>,
    pub(crate) close_hooks: RefCell<Vec<CloseHook>>,
    /// Runs around each poll that may block, if set.
    pub(crate) around_blocking_poll: Option<PollHook>,
}

/// Detached tasks, pruned of finished ones whenever the list doubles.
#[derive(Default)]
struct DetachedTasks {
    tasks: Vec<FallibleTask<()>>,
    prune_at: usize,
}

impl Inner {
    pub(crate) fn keep_detached(&self, task: FallibleTask<()>) {
        let mut detached = self.detached.borrow_mut();
        if detached.tasks.len() >= detached.prune_at {
            detached.tasks.retain(|t| !t.is_finished());
            detached.prune_at = (detached.tasks.len() * 2).max(64);
        }
        detached.tasks.push(task);
    }

    /// Waits on the loop's thread until `waiting()` is false, dropping what
    /// other threads bury meanwhile; called once the loop is closed.
    ///
    /// A task woken on another thread is marked scheduled (inside
    /// async-task) before its step reaches `Shared::schedule`; if its last
    /// handle is dropped (cancelling it) in between, the task's future lives
    /// on in that step, which the other thread then buries in the graveyard.
    /// Only this thread may drop it, and this may be the last time it
    /// touches the loop, so it waits for the step: a few instructions on
    /// the other thread. Bounded all the same: if the step never comes (that
    /// thread died or was stopped mid-wake), the future is leaked with a
    /// warning rather than the loop's thread hung. Found by the loom model
    /// `loom_task_wake` (`cargo xtask loom`).
    pub(crate) fn settle(&self, mut waiting: impl FnMut() -> bool) {
        const SPINS: usize = 1 << 16;
        for _ in 0..SPINS {
            self.shared.empty_graveyard();
            if !waiting() {
                return;
            }
            sync::thread::yield_now();
        }
        tracing::warn!(
            target: "evloop",
            "a task woken on another thread after close never handed its step back; its future is leaked"
        );
    }

    /// Releases a cancelled timer's heap slot (O(1); the heap compacts itself).
    pub(crate) fn forget_timer(&self, id: TimerId) {
        let mut released = self
            .timers
            .try_borrow_mut()
            .ok()
            .and_then(|mut t| t.cancel(id));
        if released.is_none() {
            released = self
                .due
                .try_borrow_mut()
                .ok()
                .and_then(|mut due| due.cancel(id));
        }
        drop(released);
    }

    /// Moves what other threads posted onto the ready queue, keeping FIFO.
    pub(crate) fn drain_remote(&self) {
        // Called once or twice per iteration, mostly with nothing posted: the
        // emptiness check is two loads, a failed pop ten times as many
        // instructions.
        if self.shared.queue.is_empty() {
            return;
        }
        let mut ready = self.ready.borrow_mut();
        while let Ok(item) = self.shared.queue.pop() {
            ready.push(item.into());
        }
    }
}

/// Python asyncio's event loop: one per thread, `!Send`, cheap to clone.
///
/// See the crate docs for an example.
#[derive(Clone)]
#[doc(alias("AbstractEventLoop", "BaseEventLoop"))]
pub struct EventLoop {
    pub(crate) inner: Rc<Inner>,
}

/// Configures and builds an [`EventLoop`] (`EventLoop::builder()`).
#[derive(Debug, Default)]
pub struct Builder {
    clock: Option<Arc<dyn Clock>>,
    debug: Option<bool>,
    slow_callback_duration: Option<Duration>,
    io_polling: IoPolling,
    around_blocking_poll: Option<PollHook>,
}

impl Builder {
    /// Uses `clock` for `time()` and timers (default: the monotonic clock).
    pub fn clock(&mut self, clock: Arc<dyn Clock>) -> &mut Self {
        self.clock = Some(clock);
        self
    }

    /// Uses a fresh [`VirtualClock`]: time stands still until the loop would
    /// sleep, then jumps to the next deadline (docs/behaviour.md 3.8).
    pub fn virtual_clock(&mut self) -> &mut Self {
        self.clock(Arc::new(VirtualClock::new()))
    }

    /// Turns debug mode on or off (default: on when `EVLOOP_DEBUG` is non-empty).
    pub fn debug(&mut self, on: bool) -> &mut Self {
        self.debug = Some(on);
        self
    }

    /// Sets how long a callback may run before debug mode logs it (default 100 ms).
    pub fn slow_callback_duration(&mut self, limit: Duration) -> &mut Self {
        self.slow_callback_duration = Some(limit);
        self
    }

    /// How often the loop polls for I/O while callbacks are ready (default
    /// [`IoPolling::EveryIteration`], asyncio's behaviour; see
    /// [`IoPolling::Relaxed`] and docs/behaviour.md 3.6).
    pub fn io_polling(&mut self, mode: IoPolling) -> &mut Self {
        self.io_polling = mode;
        self
    }

    /// Opts in to relaxed I/O polling: while callbacks are ready, the loop
    /// polls only once `callbacks` callbacks have run since the last poll or
    /// `interval` has passed ([`IoPolling::Relaxed`]). A `call_soon` chain
    /// then costs no syscall per link; I/O is seen up to that much later.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use std::time::Duration;
    /// use evloop_core::{EventLoop, IoPolling};
    ///
    /// let callbacks = NonZeroUsize::new(64).expect("non-zero");
    /// let lp = EventLoop::builder()
    ///     .relaxed_io_poll(callbacks, Duration::from_millis(1))
    ///     .build()?;
    /// assert_eq!(lp.io_polling(), IoPolling::RELAXED);
    /// lp.close()?;
    /// # Ok::<(), evloop_core::Error>(())
    /// ```
    pub fn relaxed_io_poll(&mut self, callbacks: NonZeroUsize, interval: Duration) -> &mut Self {
        self.io_polling(IoPolling::Relaxed {
            callbacks,
            interval,
        })
    }

    /// Wraps every poll that may block (a timeout other than zero) in
    /// `hook`, which should call the poll it is given once (if it does not,
    /// the loop polls without blocking after it). Polls that cannot
    /// block (callbacks ready, a stop pending) bypass the hook, so it costs
    /// nothing on a busy loop.
    ///
    /// For embedding: a Python binding releases the GIL around the sleep
    /// (the poll is `Send`, so `allow_threads` takes it), letting other
    /// threads run and post with `call_soon_threadsafe`, and checks for
    /// signals once it holds the GIL again. The hook may use the loop (it
    /// gets it) to schedule callbacks or `stop`; running it again fails
    /// with [`Error::AlreadyRunning`] as anywhere inside a run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use evloop_core::EventLoop;
    ///
    /// let sleeps = Rc::new(Cell::new(0));
    /// let seen = sleeps.clone();
    /// let lp = EventLoop::builder()
    ///     .around_blocking_poll(move |_lp, poll| {
    ///         seen.set(seen.get() + 1);
    ///         poll();
    ///     })
    ///     .build()?;
    /// let stopper = lp.clone();
    /// lp.call_later(Duration::from_millis(1), move || stopper.stop())?;
    /// lp.run_forever()?;
    /// assert!(sleeps.get() >= 1);
    /// lp.close()?;
    /// # Ok::<(), evloop_core::Error>(())
    /// ```
    pub fn around_blocking_poll(
        &mut self,
        hook: impl Fn(&EventLoop, &mut (dyn FnMut() + Send)) + 'static,
    ) -> &mut Self {
        self.around_blocking_poll = Some(PollHook(Rc::new(hook)));
        self
    }

    /// Creates the loop.
    ///
    /// # Errors
    /// [`Error::Io`] if the reactor cannot be created (out of fds).
    pub fn build(&mut self) -> Result<EventLoop, Error> {
        let poller = Poller::new()?;
        let shared = sync::Arc::new(Shared::new(poller.waker()));
        let debug = self.debug.unwrap_or_else(debug_from_env);
        let inner = Inner {
            ready: RefCell::new(ReadyQueue::default()),
            timers: RefCell::new(TimerHeap::new()),
            due: RefCell::new(DueTimers::default()),
            poller: RefCell::new(Some(poller)),
            events: RefCell::new(Events::with_capacity(EVENTS_CAPACITY)),
            io: RefCell::new(IoTable::default()),
            shared,
            clock: self
                .clock
                .clone()
                .unwrap_or_else(|| Arc::new(MonotonicClock)),
            running: Cell::new(false),
            stopping: Cell::new(false),
            interrupted: Cell::new(false),
            carried: Cell::new(None),
            closed: Cell::new(false),
            debug: Cell::new(debug),
            slow_callback_duration: Cell::new(
                self.slow_callback_duration
                    .unwrap_or(DEFAULT_SLOW_CALLBACK_DURATION),
            ),
            stats: StatCells::default(),
            poll_gate: PollGate::new(self.io_polling),
            exception_handler: RefCell::new(None),
            task_factory: RefCell::new(None),
            tasks: RefCell::new(TaskRegistry::default()),
            extensions: RefCell::new(Vec::new()),
            detached: RefCell::new(DetachedTasks::default()),
            closing: Cell::new(false),
            close_hooks: RefCell::new(Vec::new()),
            around_blocking_poll: self.around_blocking_poll.clone(),
        };
        tracing::debug!(
            target: "evloop",
            debug_mode = inner.debug.get(),
            io_polling = ?self.io_polling,
            "event loop created"
        );
        Ok(EventLoop {
            inner: Rc::new(inner),
        })
    }
}

fn debug_from_env() -> bool {
    std::env::var_os("EVLOOP_DEBUG").is_some_and(|v| !v.is_empty())
}

impl EventLoop {
    /// Creates a loop with the default settings.
    ///
    /// # Errors
    /// [`Error::Io`] if the reactor cannot be created.
    #[doc(alias = "new_event_loop")]
    pub fn new() -> Result<EventLoop, Error> {
        Builder::default().build()
    }

    /// A [`Builder`] for a loop with a virtual clock, debug mode, …
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn from_inner(inner: Rc<Inner>) -> EventLoop {
        EventLoop { inner }
    }

    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Rc::downgrade(&self.inner)
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.inner.closed.get() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Schedules `f` to run on the next iteration, after everything already
    /// scheduled (FIFO). One allocation.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed loop.
    #[track_caller]
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Result<Handle, Error> {
        self.check_open()?;
        let node = OnceNode::boxed(f, Location::caller());
        self.push_ready(Entry::Callback(node.clone()));
        Ok(Handle { node })
    }

    /// Pushes onto the ready queue, first taking in what other threads posted,
    /// so `call_soon_threadsafe` from this thread keeps FIFO with `call_soon`.
    pub(crate) fn push_ready(&self, entry: Entry) {
        if !self.inner.shared.queue.is_empty() {
            self.inner.drain_remote();
        }
        self.inner.ready.borrow_mut().push(entry);
    }

    /// Schedules `f` to run `delay` from now (`call_at(time() + delay)`).
    ///
    /// Huge delays are clamped to about a century; zero runs on the next
    /// iteration, still as a timer.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed loop.
    #[track_caller]
    pub fn call_later(
        &self,
        delay: Duration,
        f: impl FnOnce() + 'static,
    ) -> Result<TimerHandle, Error> {
        let now = self.time();
        let when = now
            .checked_add(delay.min(FAR_FUTURE))
            .unwrap_or_else(|| now + FAR_FUTURE);
        self.call_at(when, f)
    }

    /// Schedules `f` to run at `when` on the loop's clock ([`time`](Self::time)).
    /// Timers with equal deadlines run in the order they were scheduled.
    ///
    /// # Errors
    /// [`Error::Closed`] on a closed loop.
    #[track_caller]
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> Result<TimerHandle, Error> {
        self.check_open()?;
        let location = Location::caller();
        let entry = TimerEntry {
            f: Box::new(f),
            location,
        };
        let id = self.inner.timers.borrow_mut().insert(when, entry);
        Ok(TimerHandle {
            id,
            when,
            location,
            cancelled: Cell::new(false),
            event_loop: self.downgrade(),
        })
    }

    /// The loop's current time (its clock's `now`).
    pub fn time(&self) -> Instant {
        self.inner.clock.now()
    }

    /// The loop's clock (monotonic, or virtual when built with one).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// A thread-safe handle for `call_soon_threadsafe`.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.shared.clone(),
        }
    }

    /// True while `run_forever`/`run_until_complete` runs.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Closes the loop: drops pending callbacks and timers, runs the close
    /// hooks of the layers above (signal handlers removed, the default
    /// executor shut down without waiting), closes the reactor. Idempotent.
    ///
    /// # Errors
    /// [`Error::Running`] while the loop runs.
    pub fn close(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.running.get() {
            return Err(Error::Running);
        }
        if inner.closed.replace(true) {
            return Ok(());
        }
        inner.closing.set(true);
        tracing::debug!(target: "evloop", "closing event loop");
        inner.shared.closed.store(true, Ordering::Release);
        inner.shared.queue.close();
        let hooks = std::mem::take(&mut *inner.close_hooks.borrow_mut());
        for hook in hooks {
            hook(self);
        }
        // Take everything out before dropping it: destructors of captured
        // values may call back into the loop (and get `Error::Closed`).
        let ready = inner.ready.borrow_mut().take_all();
        let timers = std::mem::take(&mut *inner.timers.borrow_mut());
        let due = std::mem::take(&mut *inner.due.borrow_mut());
        inner.carried.set(None);
        let io = std::mem::take(&mut *inner.io.borrow_mut());
        let mut remote = Vec::new();
        while let Ok(item) = inner.shared.queue.pop() {
            remote.push(item);
        }
        let detached = std::mem::take(&mut inner.detached.borrow_mut().tasks);
        let pending = detached.iter().filter(|t| !t.is_finished()).count();
        if pending > 0 {
            tracing::debug!(target: "evloop", pending, "dropping pending detached tasks at close");
        }
        drop((ready, timers, due, remote, detached));
        inner.closing.set(false);
        // Every task whose handle is gone has lost its future by now, unless
        // another thread is still handing its step in: wait for those.
        inner.settle(|| inner.tasks.borrow().detached_pending());
        drop(io);
        drop(inner.poller.borrow_mut().take());
        drop(std::mem::take(&mut *inner.extensions.borrow_mut()));
        Ok(())
    }

    /// Per-loop state of a layer above the core (signals, executor), created
    /// on first use. One value per type.
    pub fn extension<T: 'static>(&self, init: impl FnOnce() -> T) -> Rc<T> {
        let id = TypeId::of::<T>();
        if let Some(found) = self.find_extension::<T>(id) {
            return found;
        }
        let value = Rc::new(init());
        self.inner
            .extensions
            .borrow_mut()
            .push((id, value.clone() as Rc<dyn Any>));
        value
    }

    /// The extension of type `T`, if one was created.
    pub fn get_extension<T: 'static>(&self) -> Option<Rc<T>> {
        self.find_extension(TypeId::of::<T>())
    }

    fn find_extension<T: 'static>(&self, id: TypeId) -> Option<Rc<T>> {
        let extensions = self.inner.extensions.borrow();
        let (_, value) = extensions.iter().find(|(t, _)| *t == id)?;
        value.clone().downcast::<T>().ok()
    }

    /// Runs `hook` when the loop closes (for the layers above the core: the
    /// signal registry, the default executor).
    ///
    /// # Errors
    /// [`Error::Closed`] if the loop is already closed.
    pub fn add_close_hook(&self, hook: impl FnOnce(&EventLoop) + 'static) -> Result<(), Error> {
        self.check_open()?;
        self.inner.close_hooks.borrow_mut().push(Box::new(hook));
        Ok(())
    }

    /// Which reactor backend this loop uses (`"epoll"` or `"polling"`).
    pub fn backend_name(&self) -> &'static str {
        self.inner
            .poller
            .borrow()
            .as_ref()
            .map_or("closed", Poller::backend_name)
    }

    /// How often this loop polls for I/O while callbacks are ready (set with
    /// [`Builder::io_polling`]).
    pub fn io_polling(&self) -> IoPolling {
        self.inner.poll_gate.mode()
    }

    /// True if `self` and `other` are the same loop.
    pub fn ptr_eq(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        let last = Rc::strong_count(&self.inner) == 1;
        if last && !self.inner.closed.get() && !std::thread::panicking() {
            tracing::warn!(target: "evloop", "unclosed event loop dropped; closing it");
            let _ = self.close();
        }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("running", &self.is_running())
            .field("closed", &self.is_closed())
            .field("debug", &self.inner.debug.get())
            .field("io_polling", &self.io_polling())
            .finish_non_exhaustive()
    }
}
