//! `_CoreLoop`: an `evloop_core::EventLoop` driven from Python, and
//! `_RemoteLoop`, its `call_soon_threadsafe` half for other threads.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop_core::{EventLoop, IoPolling, Remote};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::to_py;
use crate::handle::{Handle, Shell, TimerHandle};

/// Deadlines further than this (about a century) are clamped, so huge
/// delays neither overflow nor raise.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The exception that ends the current `run_forever` (KeyboardInterrupt,
/// SystemExit), shared with the poll hook.
type Pending = Rc<RefCell<Option<PyErr>>>;

/// The core of `evloop.Loop`: scheduling, timers, fd watchers and running,
/// all evloop's. Subclassed in Python by `evloop.Loop`.
#[pyclass(module = "evloop._core", name = "_CoreLoop", subclass, unsendable)]
pub struct CoreLoop {
    event_loop: EventLoop,
    pending: Pending,
    readers: RefCell<HashMap<RawFd, Py<Handle>>>,
    writers: RefCell<HashMap<RawFd, Py<Handle>>>,
    /// Loop time 0 as an `Instant`, and the float `time()` returns for it.
    origin: Instant,
    origin_secs: f64,
}

impl std::fmt::Debug for CoreLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreLoop")
            .field("event_loop", &self.event_loop)
            .finish_non_exhaustive()
    }
}

/// Which watcher table an fd call is about.
#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

impl CoreLoop {
    /// evloop's loop under this one (for the transports).
    pub(crate) fn event_loop(&self) -> &EventLoop {
        &self.event_loop
    }

    /// Ends the current run with `error`, raised by `run_forever`.
    pub(crate) fn fail(&self, error: PyErr) {
        record(&self.pending, error);
        self.event_loop.stop();
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
            Direction::Read => &self.readers,
            Direction::Write => &self.writers,
        }
    }

    fn add_watcher(
        slf: &Bound<'_, Self>,
        direction: Direction,
        fileobj: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let fd = fileobj_to_fd(fileobj)?;
        let shell = Shell::new(
            py,
            callback,
            args.clone().unbind(),
            None,
            slf.clone().into_any().unbind(),
        )?;
        let handle = Py::new(py, Handle { shell })?;
        let this = slf.borrow();
        let fired = handle.clone_ref(py);
        let watch = move || Python::with_gil(|py| Handle::fire(py, &fired));
        // SAFETY: the fd number is only handed to the reactor (epoll_ctl)
        // during this call; the loop keeps the number, never the fd, as
        // asyncio's selector does. A closed number fails with EBADF,
        // reported as OSError.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        match direction {
            Direction::Read => this.event_loop.add_reader(&borrowed, watch),
            Direction::Write => this.event_loop.add_writer(&borrowed, watch),
        }
        .map_err(to_py)?;
        let old = this
            .watchers(direction)
            .borrow_mut()
            .insert(fd, handle.clone_ref(py));
        if let Some(old) = old {
            old.borrow_mut(py).shell_cancel();
        }
        Ok(handle)
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
            Direction::Read => self.event_loop.remove_reader_by_number(fd),
            Direction::Write => self.event_loop.remove_writer_by_number(fd),
        };
        let old = self.watchers(direction).borrow_mut().remove(&fd);
        if let Some(old) = old {
            old.borrow_mut(py).shell_cancel();
        }
        Ok(removed)
    }
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
    ) -> PyResult<Self> {
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
                        record(&hook_pending, error);
                        event_loop.stop();
                    }
                });
            })
            .build()
            .map_err(to_py)?;
        crate::resolver::install(&event_loop);
        let origin = event_loop.time();
        let origin_secs = py.import("time")?.call_method0("monotonic")?.extract()?;
        Ok(CoreLoop {
            event_loop,
            pending,
            readers: RefCell::default(),
            writers: RefCell::default(),
            origin,
            origin_secs,
        })
    }

    /// The loop's clock in seconds (monotonic; `time.monotonic()`'s scale).
    fn time(&self) -> f64 {
        let since = self
            .event_loop
            .time()
            .saturating_duration_since(self.origin);
        self.origin_secs + since.as_secs_f64()
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
        check_callable(callback, "call_soon")?;
        let this = slf.borrow();
        if this.event_loop.is_closed() {
            return Err(to_py(evloop_core::Error::Closed));
        }
        let shell = Shell::new(
            py,
            callback.clone().unbind(),
            args.clone().unbind(),
            context,
            slf.clone().into_any().unbind(),
        )?;
        let handle = Py::new(py, Handle { shell })?;
        let fired = handle.clone_ref(py);
        this.event_loop
            .call_soon(move || Python::with_gil(|py| Handle::fire_bound(&fired.into_bound(py))))
            .map_err(to_py)?;
        Ok(handle)
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
        check_callable(callback, "call_at")?;
        let this = slf.borrow();
        let deadline = this.to_instant(when)?;
        if this.event_loop.is_closed() {
            return Err(to_py(evloop_core::Error::Closed));
        }
        let shell = Shell::new(
            py,
            callback.clone().unbind(),
            args.clone().unbind(),
            context,
            slf.clone().into_any().unbind(),
        )?;
        let handle = Py::new(py, TimerHandle::new(shell, when))?;
        let fired = handle.clone_ref(py);
        let timer = this
            .event_loop
            .call_at(deadline, move || {
                Python::with_gil(|py| TimerHandle::fire(py, &fired));
            })
            .map_err(to_py)?;
        handle.borrow_mut(py).arm(timer);
        Ok(handle)
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
        let when = slf.borrow().time() + delay;
        CoreLoop::call_at(slf, when, callback, args, context)
    }

    /// Schedules `callback(*args)` from any thread and wakes the loop.
    /// Never borrows the loop (pyo3 would refuse off its thread): the
    /// `Remote` comes from the `_threadsafe` attribute `evloop.Loop` sets.
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon_threadsafe(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let remote = slf.getattr(pyo3::intern!(py, "_threadsafe"))?;
        let remote = remote.downcast::<RemoteLoop>()?;
        let event_loop = slf.clone().into_any().unbind();
        remote.get().post(py, event_loop, callback, args, context)
    }

    /// The thread-safe half of this loop, for `call_soon_threadsafe`.
    fn _remote(&self) -> RemoteLoop {
        RemoteLoop {
            remote: self.event_loop.remote(),
        }
    }

    /// Runs the loop until `stop()`; raises what a signal handler or a
    /// callback raised that asyncio lets through (KeyboardInterrupt,
    /// SystemExit).
    fn _run_forever(&self) -> PyResult<()> {
        let outcome = self.event_loop.run_forever();
        if let Some(error) = self.pending.borrow_mut().take() {
            return Err(error);
        }
        outcome.map_err(to_py)
    }

    /// Stops the loop once the callbacks of the current iteration ran.
    fn stop(&self) {
        self.event_loop.stop();
    }

    /// True while the loop runs.
    fn is_running(&self) -> bool {
        self.event_loop.is_running()
    }

    /// True once closed.
    fn is_closed(&self) -> bool {
        self.event_loop.is_closed()
    }

    /// Closes evloop's loop: pending callbacks, timers and watchers are
    /// dropped.
    fn _close(&self) -> PyResult<()> {
        self.event_loop.close().map_err(to_py)?;
        let readers = std::mem::take(&mut *self.readers.borrow_mut());
        let writers = std::mem::take(&mut *self.writers.borrow_mut());
        drop((readers, writers));
        Ok(())
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
    fn remove_reader(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.remove_watcher(py, Direction::Read, fd)
    }

    /// Stops watching `fd` for writing; True if a writer was removed.
    fn remove_writer(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.remove_watcher(py, Direction::Write, fd)
    }
}

/// `call_soon_threadsafe` for any thread: evloop's `Remote`.
#[pyclass(module = "evloop._core", name = "_RemoteLoop", frozen)]
#[derive(Debug)]
pub struct RemoteLoop {
    remote: Remote,
}

impl RemoteLoop {
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
        let shell = Shell::new(
            py,
            callback.clone().unbind(),
            args.clone().unbind(),
            context,
            event_loop,
        )?;
        let handle = Py::new(py, Handle { shell })?;
        let fired = handle.clone_ref(py);
        self.remote
            .call_soon_threadsafe(move || {
                Python::with_gil(|py| Handle::fire_bound(&fired.into_bound(py)));
            })
            .map_err(to_py)?;
        Ok(handle)
    }
}

#[pymethods]
impl RemoteLoop {
    /// Schedules `callback(*args)` on the loop from any thread and wakes it.
    #[pyo3(signature = (event_loop, callback, *args, context = None))]
    fn call_soon_threadsafe(
        &self,
        py: Python<'_>,
        event_loop: Py<PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        self.post(py, event_loop, callback, args, context)
    }

    /// True once the loop is closed (from any thread).
    fn is_closed(&self) -> bool {
        self.remote.is_closed()
    }
}
