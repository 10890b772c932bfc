//! `_CoreLoop`: an `evloop_core::EventLoop` driven from Python, and
//! `_RemoteLoop`, its `call_soon_threadsafe` half for other threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use evloop_core::{EventLoop, IoPolling, Remote};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::errors::to_py;
use crate::handle::{self as handles, Handle, Queued, Shell, TimerHandle};
use crate::thread_bound::{current_thread, LoopBound, ThreadBound, WrongThread, WRONG_THREAD};

/// Deadlines further than this (about a century) are clamped, so huge
/// delays neither overflow nor raise.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The exception that ends the current `run_forever` (KeyboardInterrupt,
/// SystemExit), shared with the poll hook.
type Pending = Rc<RefCell<Option<PyErr>>>;

/// What any thread may use of a `_CoreLoop`: its [`RemoteLoop`] (the thread
/// that owns it, the debug flag and `call_soon_threadsafe`'s way in).
/// `_CoreLoop`'s own state is bound to its thread (evloop's loop is not
/// `Send`): its methods raise RuntimeError on another thread.
#[pyclass(module = "evloop._core", name = "_LoopBase", subclass, frozen)]
#[derive(Debug)]
pub struct LoopBase {
    threadsafe: RemoteLoop,
}

impl LoopBase {
    fn debug(&self) -> bool {
        self.threadsafe.debug()
    }

    /// The loop's thread-safe half.
    pub(crate) fn threadsafe(&self) -> &RemoteLoop {
        &self.threadsafe
    }
}

#[pymethods]
impl LoopBase {
    /// Debug mode (asyncio's `loop._debug`); set it with `set_debug`.
    #[getter(_debug)]
    fn debug_flag(&self) -> bool {
        self.debug()
    }

    /// Sets the flag only; `set_debug` also tells the running loop.
    #[setter(_debug)]
    fn set_debug_flag(&self, enabled: bool) {
        self.threadsafe.set_debug(enabled);
    }

    /// True on the thread that created the loop (the only one it runs on).
    fn _on_loop_thread(&self) -> bool {
        current_thread() == self.threadsafe.owner()
    }

    /// Whether debug mode is on. In Rust because asyncio's C `Future` asks
    /// it of its loop at every creation.
    fn get_debug(&self) -> bool {
        self.debug()
    }

    /// An `asyncio.Future` bound to this loop (one per `await` of a stream
    /// read: no Python frame for it).
    fn create_future<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        static FUTURE: GILOnceCell<Py<PyType>> = GILOnceCell::new();
        let py = slf.py();
        let kwargs = PyDict::new(py);
        kwargs.set_item(pyo3::intern!(py, "loop"), slf)?;
        FUTURE
            .import(py, "asyncio", "Future")?
            .call((), Some(&kwargs))
    }
}

/// The core of `evloop.Loop`: scheduling, timers, fd watchers and running,
/// all evloop's. Subclassed in Python by `evloop.Loop`.
#[pyclass(
    module = "evloop._core",
    name = "_CoreLoop",
    extends = LoopBase,
    subclass,
    frozen
)]
#[derive(Debug)]
pub struct CoreLoop {
    state: ThreadBound<CoreState>,
}

/// What `_CoreLoop` owns of the loop, on the loop's thread.
pub(crate) struct CoreState {
    event_loop: EventLoop,
    pending: Pending,
    readers: RefCell<HashMap<RawFd, Py<Handle>>>,
    writers: RefCell<HashMap<RawFd, Py<Handle>>>,
    /// Loop time 0 as an `Instant`, and the float `time()` returns for it.
    origin: Instant,
    origin_secs: f64,
}

impl std::fmt::Debug for CoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreLoop")
            .field("event_loop", &self.event_loop)
            .finish_non_exhaustive()
    }
}

impl LoopBound for CoreState {
    /// None: a `_CoreLoop` is never dropped while it runs (`run_forever`
    /// holds a reference to it), so its state is dropped on the spot.
    fn remote(&self, _py: Python<'_>) -> Option<RemoteLoop> {
        None
    }

    /// Closes the loop first, as asyncio's `__del__` closes an unclosed loop
    /// wherever it goes (`Loop.__del__` warns; this thread cannot call
    /// `_close`). On the loop's thread `__del__` has closed it already.
    fn drop_elsewhere(self) {
        let _ = self.close_core();
    }
}

/// Which watcher table an fd call is about.
#[derive(Clone, Copy)]
enum Direction {
    Read,
    /// A reader that only wakes the sleeping loop (the signal wakeup socket).
    Wakeup,
    Write,
}

impl CoreLoop {
    /// The loop's state on its own thread; asyncio's RuntimeError on any
    /// other (the loop is not `Send`).
    pub(crate) fn on_thread<'a>(slf: &'a Bound<'_, Self>) -> PyResult<&'a CoreState> {
        slf.get()
            .state
            .get()
            .map_err(|WrongThread| wrong_thread(CoreLoop::debug(slf)))
    }

    /// evloop's loop and the thread-safe half, for what is made on the loop
    /// (on its thread; RuntimeError elsewhere).
    pub(crate) fn home(slf: &Bound<'_, Self>) -> PyResult<Home> {
        let event_loop = CoreLoop::on_thread(slf)?.event_loop.clone();
        let remote = slf.as_super().get().threadsafe.clone();
        Ok(Home { event_loop, remote })
    }

    /// Ends the current run of `slf` with `error` ([`CoreState::fail`]); off
    /// the loop's thread (the loop's callbacks never are) it is restored as
    /// the current Python exception instead.
    pub(crate) fn fail(slf: &Bound<'_, Self>, error: PyErr) {
        match slf.get().state.get() {
            Ok(state) => state.fail(error),
            Err(WrongThread) => error.restore(slf.py()),
        }
    }

    /// Debug mode is on (asyncio's `self._debug`).
    fn debug(slf: &Bound<'_, Self>) -> bool {
        slf.as_super().get().debug()
    }

    fn add_watcher(
        slf: &Bound<'_, Self>,
        direction: Direction,
        fileobj: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = CoreLoop::on_thread(slf)?;
        let fd = fileobj_to_fd(fileobj)?;
        let mut shell = Shell::new(
            py,
            callback,
            args.clone().unbind(),
            None,
            slf.clone().into_any().unbind(),
        )?;
        if CoreLoop::debug(slf) {
            shell.trace(py, 0)?;
        }
        let handle = Py::new(py, Handle { shell })?;
        let fired = handle.clone_ref(py);
        let watch = move || Python::with_gil(|py| Handle::fire(py, &fired));
        // SAFETY: the fd number is only handed to the reactor (epoll_ctl)
        // during this call; the loop keeps the number, never the fd, as
        // asyncio's selector does. A closed number fails with EBADF,
        // reported as OSError.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        match direction {
            Direction::Read => this.event_loop.add_reader(&borrowed, watch),
            Direction::Wakeup => this.event_loop.add_wakeup_reader(&borrowed, watch),
            Direction::Write => this.event_loop.add_writer(&borrowed, watch),
        }
        .map_err(to_py)?;
        let old = this
            .watchers(direction)
            .borrow_mut()
            .insert(fd, handle.clone_ref(py));
        if let Some(old) = old {
            old.borrow_mut(py).shell_cancel(py);
        }
        Ok(handle)
    }
}

/// A loop as the objects made on it keep it: evloop's loop, and the
/// thread-safe half their [`ThreadBound`] state needs to be dropped on
/// another thread.
#[derive(Clone, Debug)]
pub(crate) struct Home {
    /// evloop's loop (used on its thread only).
    pub(crate) event_loop: EventLoop,
    /// Its thread-safe half.
    pub(crate) remote: RemoteLoop,
}

impl Home {
    /// `value` bound to this loop's thread.
    pub(crate) fn bind<T: LoopBound>(&self, value: T) -> ThreadBound<T> {
        ThreadBound::new(self.remote.owner(), value)
    }
}

impl CoreState {
    /// The loop's clock as `time()` gives it.
    fn time(&self) -> f64 {
        let since = self
            .event_loop
            .time()
            .saturating_duration_since(self.origin);
        self.origin_secs + since.as_secs_f64()
    }

    /// Closes evloop's loop and drops the fd watchers' handles.
    fn close_core(&self) -> PyResult<()> {
        self.event_loop.close().map_err(to_py)?;
        let readers = std::mem::take(&mut *self.readers.borrow_mut());
        let writers = std::mem::take(&mut *self.writers.borrow_mut());
        drop((readers, writers));
        Ok(())
    }

    /// evloop's loop under this one (for the transports).
    pub(crate) fn event_loop(&self) -> &EventLoop {
        &self.event_loop
    }

    /// Ends the current run with `error`, raised by `run_forever`, at once:
    /// the rest of the iteration's callbacks wait for the next run, as in
    /// asyncio.
    pub(crate) fn fail(&self, error: PyErr) {
        record(&self.pending, error);
        self.event_loop.interrupt();
    }

    fn to_instant(&self, when: f64) -> PyResult<Instant> {
        if when.is_nan() {
            return Err(PyValueError::new_err("when must be a number, not NaN"));
        }
        let offset = when - self.origin_secs;
        let magnitude = Duration::try_from_secs_f64(offset.abs()).unwrap_or(FAR_FUTURE);
        Ok(if offset >= 0.0 {
            self.origin + magnitude.min(FAR_FUTURE)
        } else {
            // Before the loop's origin: already due.
            self.origin.checked_sub(magnitude).unwrap_or(self.origin)
        })
    }

    fn watchers(&self, direction: Direction) -> &RefCell<HashMap<RawFd, Py<Handle>>> {
        match direction {
            Direction::Read | Direction::Wakeup => &self.readers,
            Direction::Write => &self.writers,
        }
    }
    fn remove_watcher(
        &self,
        py: Python<'_>,
        direction: Direction,
        fileobj: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let fd = fileobj_to_fd(fileobj)?;
        if self.event_loop.is_closed() {
            return Ok(false);
        }
        let removed = match direction {
            Direction::Read | Direction::Wakeup => self.event_loop.remove_reader_by_number(fd),
            Direction::Write => self.event_loop.remove_writer_by_number(fd),
        };
        let old = self.watchers(direction).borrow_mut().remove(&fd);
        if let Some(old) = old {
            old.borrow_mut(py).shell_cancel(py);
        }
        Ok(removed)
    }
}

/// The RuntimeError for a call off the loop's thread.
fn wrong_thread(debug: bool) -> PyErr {
    if debug {
        PyRuntimeError::new_err(WRONG_THREAD)
    } else {
        // Outside debug mode asyncio would not check; evloop's loop cannot
        // be touched from another thread at all, so say how to reach it.
        WrongThread.into()
    }
}

/// Debug mode's checks of a callback (asyncio's `_check_callback`): a
/// coroutine or coroutine function is a TypeError.
fn check_debug_callback(callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
    let coroutines = callback.py().import("asyncio.coroutines")?;
    let is_coro = coroutines
        .call_method1("iscoroutine", (callback,))?
        .is_truthy()?
        || coroutines
            .call_method1("iscoroutinefunction", (callback,))?
            .is_truthy()?;
    if is_coro {
        return Err(PyTypeError::new_err(format!(
            "coroutines cannot be used with {method}()"
        )));
    }
    Ok(())
}

fn record(pending: &Pending, error: PyErr) {
    let mut slot = pending.borrow_mut();
    if slot.is_none() {
        *slot = Some(error);
    }
}

/// asyncio's `_fileobj_to_fd`: an int, or an object with `fileno()`.
fn fileobj_to_fd(fileobj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd: i64 = match fileobj.extract::<i64>() {
        Ok(fd) => fd,
        Err(_) => fileobj
            .call_method0("fileno")
            .map_err(|_| PyValueError::new_err(format!("Invalid file object: {fileobj}")))?
            .extract()
            .map_err(|_| PyValueError::new_err(format!("Invalid file object: {fileobj}")))?,
    };
    match RawFd::try_from(fd) {
        Ok(fd) if fd >= 0 => Ok(fd),
        _ => Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {fd}"
        ))),
    }
}

fn check_callable(callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
    if callback.is_callable() {
        Ok(())
    } else {
        Err(PyTypeError::new_err(format!(
            "a callable object was expected by {method}(), got {callback}"
        )))
    }
}

#[pymethods]
impl CoreLoop {
    /// `relaxed_io_poll=True` (keyword, default False) polls for I/O only
    /// every 64 callbacks or 1 ms while callbacks are ready
    /// (`IoPolling::RELAXED`), not every iteration as asyncio does; other
    /// arguments are the Python subclass's.
    #[new]
    #[pyo3(signature = (*_args, **kwargs))]
    fn new(
        py: Python<'_>,
        _args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let relaxed = match kwargs {
            Some(kwargs) => match kwargs.get_item("relaxed_io_poll")? {
                Some(value) => value.is_truthy()?,
                None => false,
            },
            None => false,
        };
        let pending: Pending = Rc::default();
        let hook_pending = pending.clone();
        let mut builder = EventLoop::builder();
        if relaxed {
            builder.io_polling(IoPolling::RELAXED);
        }
        let event_loop = builder
            .debug(false)
            .around_blocking_poll(move |event_loop, poll| {
                Python::with_gil(|py| {
                    // The sleep: other Python threads run meanwhile.
                    py.allow_threads(poll);
                    if let Err(error) = py.check_signals() {
                        // Out of run_forever before this iteration's
                        // callbacks, as asyncio raises it out of select().
                        record(&hook_pending, error);
                        event_loop.interrupt();
                    }
                });
            })
            .build()
            .map_err(to_py)?;
        crate::resolver::install(&event_loop);
        crate::bridge::drop_tasks_at_close(&event_loop)?;
        let origin = event_loop.time();
        let origin_secs = py.import("time")?.call_method0("monotonic")?.extract()?;
        let owner = current_thread();
        let base = LoopBase {
            threadsafe: RemoteLoop::new(event_loop.remote(), owner),
        };
        let state = CoreState {
            event_loop,
            pending,
            readers: RefCell::default(),
            writers: RefCell::default(),
            origin,
            origin_secs,
        };
        Ok(PyClassInitializer::from(base).add_subclass(CoreLoop {
            state: ThreadBound::new(owner, state),
        }))
    }

    /// The loop's clock in seconds (monotonic; `time.monotonic()`'s scale).
    #[pyo3(name = "time")]
    fn py_time(slf: &Bound<'_, Self>) -> PyResult<f64> {
        Ok(CoreLoop::on_thread(slf)?.time())
    }

    /// Schedules `callback(*args)` for the next iteration (FIFO).
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = CoreLoop::on_thread(slf)?;
        check_callable(callback, "call_soon")?;
        if this.event_loop.is_closed() {
            return Err(to_py(evloop_core::Error::Closed));
        }
        let mut shell = Shell::new(
            py,
            callback.clone().unbind(),
            args.clone().unbind(),
            context,
            slf.clone().into_any().unbind(),
        )?;
        if CoreLoop::debug(slf) {
            check_debug_callback(callback, "call_soon")?;
            shell.trace(py, 0)?;
        }
        let context = shell.own_context(py);
        let handle = Bound::new(py, Handle { shell })?;
        let queued = Queued::new(handle.clone(), context);
        this.event_loop
            .call_soon(move || Python::with_gil(|py| queued.fire(py, Handle::fire_bound)))
            .map_err(to_py)?;
        Ok(handle.unbind())
    }

    /// Schedules `callback(*args)` at loop time `when`.
    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at(
        slf: &Bound<'_, Self>,
        when: f64,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let this = CoreLoop::on_thread(slf)?;
        check_callable(callback, "call_at")?;
        let deadline = this.to_instant(when)?;
        if this.event_loop.is_closed() {
            return Err(to_py(evloop_core::Error::Closed));
        }
        let mut shell = Shell::new(
            py,
            callback.clone().unbind(),
            args.clone().unbind(),
            context,
            slf.clone().into_any().unbind(),
        )?;
        if CoreLoop::debug(slf) {
            check_debug_callback(callback, "call_at")?;
            shell.trace(py, 0)?;
        }
        let context = shell.own_context(py);
        let owner = slf.as_super().get().threadsafe.owner();
        let handle = Bound::new(py, TimerHandle::new(shell, when, owner))?;
        let queued = Queued::new(handle.clone(), context);
        let timer = this
            .event_loop
            .call_at(deadline, move || {
                Python::with_gil(|py| queued.fire(py, TimerHandle::fire));
            })
            .map_err(to_py)?;
        handle.borrow_mut().arm(timer)?;
        Ok(handle.unbind())
    }

    /// Schedules `callback(*args)` `delay` seconds from now.
    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later(
        slf: &Bound<'_, Self>,
        delay: f64,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        if delay.is_nan() {
            return Err(PyValueError::new_err("delay must be a number, not NaN"));
        }
        let when = CoreLoop::on_thread(slf)?.time() + delay;
        CoreLoop::call_at(slf, when, callback, args, context)
    }

    /// Schedules `callback(*args)` from any thread and wakes the loop.
    /// Never borrows the loop (pyo3 would refuse off its thread): the
    /// `Remote` is the frozen base class's.
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon_threadsafe(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let event_loop = slf.clone().into_any().unbind();
        let threadsafe = &slf.as_super().get().threadsafe;
        threadsafe.post(slf.py(), event_loop, callback, args, context)
    }

    /// The thread-safe half of this loop, for `call_soon_threadsafe`.
    fn _remote(slf: &Bound<'_, Self>) -> RemoteLoop {
        slf.as_super().get().threadsafe.clone()
    }

    /// Runs the loop until `stop()`; raises what a signal handler or a
    /// callback raised that asyncio lets through (KeyboardInterrupt,
    /// SystemExit).
    fn _run_forever(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = CoreLoop::on_thread(slf)?;
        // Handles time themselves while this loop runs in debug mode.
        let was = handles::set_debug_run(CoreLoop::debug(slf));
        let running = slf.as_super().get().threadsafe.mark_running();
        let outcome = this.event_loop.run_forever();
        drop(running);
        handles::set_debug_run(was);
        if let Some(error) = this.pending.borrow_mut().take() {
            return Err(error);
        }
        outcome.map_err(to_py)
    }

    /// Applies the debug flag to the running loop (after `set_debug`).
    fn _sync_debug(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = CoreLoop::on_thread(slf)?;
        if this.event_loop.is_running() {
            handles::set_debug_run(CoreLoop::debug(slf));
        }
        Ok(())
    }

    /// Stops the loop once the callbacks of the current iteration ran.
    fn stop(slf: &Bound<'_, Self>) -> PyResult<()> {
        CoreLoop::on_thread(slf)?.event_loop.stop();
        Ok(())
    }

    /// True while the loop runs.
    fn is_running(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(CoreLoop::on_thread(slf)?.event_loop.is_running())
    }

    /// True once closed.
    fn is_closed(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(CoreLoop::on_thread(slf)?.event_loop.is_closed())
    }

    /// Closes evloop's loop: pending callbacks, timers and watchers are
    /// dropped.
    fn _close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = CoreLoop::on_thread(slf)?;
        this.close_core()
    }

    /// Calls `callback(*args)` whenever `fd` (an int or an object with
    /// `fileno()`) is readable.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        CoreLoop::add_watcher(slf, Direction::Read, fd, callback, args)
    }

    /// `add_reader` for the signal wakeup socket: read only when a poll
    /// may sleep (evloop-core's `add_wakeup_reader`); Python runs signal
    /// handlers between bytecodes anyway, so a busy loop need not poll it.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_wakeup_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        CoreLoop::add_watcher(slf, Direction::Wakeup, fd, callback, args)
    }

    /// Calls `callback(*args)` whenever `fd` is writable.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        CoreLoop::add_watcher(slf, Direction::Write, fd, callback, args)
    }

    /// Stops watching `fd` for reading; True if a reader was removed.
    fn remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        CoreLoop::on_thread(slf)?.remove_watcher(slf.py(), Direction::Read, fd)
    }

    /// Stops watching `fd` for writing; True if a writer was removed.
    fn remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        CoreLoop::on_thread(slf)?.remove_watcher(slf.py(), Direction::Write, fd)
    }
}

/// `call_soon_threadsafe` for any thread: evloop's `Remote`, and what other
/// threads may know of the loop (its thread, whether it runs).
#[pyclass(module = "evloop._core", name = "_RemoteLoop", frozen)]
#[derive(Clone, Debug)]
pub struct RemoteLoop {
    remote: Remote,
    /// Shared with every copy (`_LoopBase`'s, the transports').
    flags: Arc<LoopFlags>,
}

/// What a loop's copies of [`RemoteLoop`] share.
#[derive(Debug)]
struct LoopFlags {
    /// The thread that created the loop, the only one it runs on.
    owner: ThreadId,
    /// Debug mode (asyncio's `loop._debug`).
    debug: AtomicBool,
    /// True while `_run_forever` runs the loop (its thread may be in the
    /// poll, without the GIL); set and cleared with the GIL held.
    running: AtomicBool,
}

/// Marks a loop running until dropped ([`RemoteLoop::mark_running`]).
#[must_use = "the loop counts as running only while this lives"]
struct Running<'a> {
    flags: &'a LoopFlags,
    was: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.flags.running.store(self.was, Ordering::Release);
    }
}

impl RemoteLoop {
    fn new(remote: Remote, owner: ThreadId) -> RemoteLoop {
        RemoteLoop {
            remote,
            flags: Arc::new(LoopFlags {
                owner,
                debug: AtomicBool::new(false),
                running: AtomicBool::new(false),
            }),
        }
    }

    /// The loop's thread.
    pub(crate) fn owner(&self) -> ThreadId {
        self.flags.owner
    }

    fn debug(&self) -> bool {
        self.flags.debug.load(Ordering::Relaxed)
    }

    fn set_debug(&self, enabled: bool) {
        self.flags.debug.store(enabled, Ordering::Relaxed);
    }

    /// True while the loop runs (see `thread_bound`).
    pub(crate) fn is_running(&self) -> bool {
        self.flags.running.load(Ordering::Acquire)
    }

    /// True once the loop is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.remote.is_closed()
    }

    /// Marks the loop running (by `_run_forever`, on its thread, with the
    /// GIL) until the guard drops; a nested call leaves it as it was.
    fn mark_running(&self) -> Running<'_> {
        let was = self.flags.running.swap(true, Ordering::AcqRel);
        Running {
            flags: &self.flags,
            was,
        }
    }

    /// evloop's `call_soon_threadsafe`: runs `f` on the loop's thread.
    ///
    /// # Errors
    /// `Closed` once the loop is closed; `f` is dropped here.
    pub(crate) fn call_soon_threadsafe(
        &self,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), evloop_core::Error> {
        self.remote.call_soon_threadsafe(f)
    }

    /// Schedules `callback(*args)` (a handle of `event_loop`) on the loop
    /// and wakes it.
    fn post(
        &self,
        py: Python<'_>,
        event_loop: Py<PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        check_callable(callback, "call_soon_threadsafe")?;
        let mut shell = Shell::new(
            py,
            callback.clone().unbind(),
            args.clone().unbind(),
            context,
            event_loop,
        )?;
        if self.debug() {
            check_debug_callback(callback, "call_soon_threadsafe")?;
            // Called from Python directly: no wrapper frame to drop.
            shell.trace(py, 0)?;
        }
        let context = shell.own_context(py);
        let handle = Bound::new(py, Handle { shell })?;
        let queued = Queued::new(handle.clone(), context);
        self.remote
            .call_soon_threadsafe(move || {
                Python::with_gil(|py| queued.fire(py, Handle::fire_bound))
            })
            .map_err(to_py)?;
        Ok(handle.unbind())
    }
}

#[pymethods]
impl RemoteLoop {
    /// True once the loop is closed (from any thread).
    #[pyo3(name = "is_closed")]
    fn py_is_closed(&self) -> bool {
        self.remote.is_closed()
    }
}
