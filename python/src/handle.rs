//! `Handle` and `TimerHandle`: the Python shells of scheduled callbacks, with
//! asyncio's semantics (`asyncio.Handle._run`): the callback runs in its
//! `contextvars` context; an exception goes to the loop's
//! `call_exception_handler` with the keys `message`, `exception`, `handle`;
//! `SystemExit` and `KeyboardInterrupt` stop the loop and leave `run_forever`.

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::core_loop::CoreLoop;

/// What a handle calls, until it is cancelled or (for a one-shot) has run.
#[derive(Debug)]
pub(crate) struct Shell {
    callback: Option<Py<PyAny>>,
    args: Option<Py<PyTuple>>,
    context: Py<PyAny>,
    event_loop: Py<PyAny>,
}

/// One call of a shell, taken out so that no borrow of the handle is held
/// while Python code runs (the callback may cancel its own handle). Bound
/// references: dropping them is a plain decref (a `Py` asks a thread-local
/// whether the GIL is held first).
pub(crate) struct Call<'py> {
    callback: Bound<'py, PyAny>,
    args: Bound<'py, PyTuple>,
    context: Bound<'py, PyAny>,
}

impl Shell {
    /// A shell for `callback(*args)` in `context` (a copy of the current
    /// context when `None`, as asyncio does).
    pub(crate) fn new(
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
        event_loop: Py<PyAny>,
    ) -> PyResult<Shell> {
        let context = match context {
            Some(context) if !context.is_none(py) => context,
            _ => copy_context(py)?,
        };
        Ok(Shell {
            callback: Some(callback),
            args: Some(args),
            context,
            event_loop,
        })
    }

    fn cancel(&mut self) {
        // Drops the callback and its arguments at once, as asyncio does.
        self.callback = None;
        self.args = None;
    }

    fn cancelled(&self) -> bool {
        self.callback.is_none()
    }

    /// The call to make, or `None` once cancelled.
    pub(crate) fn call<'py>(&self, py: Python<'py>) -> Option<Call<'py>> {
        Some(Call {
            callback: self.callback.as_ref()?.bind(py).clone(),
            args: self.args.as_ref()?.bind(py).clone(),
            context: self.context.bind(py).clone(),
        })
    }

    /// The loop whose exception handler hears of a failed call.
    fn event_loop<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.event_loop.bind(py).clone()
    }

    /// Lets Python's GC see the references (a timer handle kept by the
    /// object its callback is bound to is a cycle, as in asyncio).
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(callback) = &self.callback {
            visit.call(callback)?;
        }
        if let Some(args) = &self.args {
            visit.call(args)?;
        }
        visit.call(&self.context)?;
        visit.call(&self.event_loop)
    }

    fn describe(&self, py: Python<'_>) -> String {
        match (&self.callback, &self.args) {
            (Some(callback), Some(args)) => {
                callback_source(py, callback.bind(py), args.bind(py)).unwrap_or_default()
            }
            _ => "cancelled".to_owned(),
        }
    }
}

impl<'py> Call<'py> {
    /// Runs the callback in its context; reports its exception like
    /// `asyncio.Handle._run` to `event_loop` (asked only then).
    pub(crate) fn run(
        self,
        py: Python<'py>,
        handle: &Bound<'py, PyAny>,
        event_loop: impl FnOnce() -> Bound<'py, PyAny>,
    ) {
        let outcome = self.invoke(py);
        if let Err(error) = outcome {
            self.report(py, handle, &event_loop(), error);
        }
    }

    /// `Context.run(context, callback, *args)`: the unbound method, so no
    /// attribute lookup and no bound method object per call.
    fn invoke(&self, py: Python<'py>) -> PyResult<()> {
        static CONTEXT_RUN: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
        let run = CONTEXT_RUN.get_or_try_init(py, || {
            let class = py.import("contextvars")?.getattr("Context")?;
            Ok::<_, PyErr>(class.getattr("run")?.unbind())
        })?;
        let run = run.bind(py);
        let (context, callback, args) = (&self.context, &self.callback, &self.args);
        // The common shapes without an intermediate Vec.
        match args.len() {
            0 => run.call1((context, callback))?,
            1 => run.call1((context, callback, args.get_item(0)?))?,
            n => {
                let mut call = Vec::with_capacity(n + 2);
                call.extend([context.clone(), callback.clone()]);
                call.extend(args.iter());
                run.call1(PyTuple::new(py, call)?)?
            }
        };
        Ok(())
    }

    fn report(
        &self,
        py: Python<'py>,
        handle: &Bound<'py, PyAny>,
        event_loop: &Bound<'py, PyAny>,
        error: PyErr,
    ) {
        if error.is_instance_of::<PyKeyboardInterrupt>(py)
            || error.is_instance_of::<PySystemExit>(py)
        {
            match event_loop.downcast::<CoreLoop>() {
                Ok(core) => core.borrow().fail(error),
                Err(_) => error.restore(py),
            }
            return;
        }
        let context = self.error_context(py, handle, &error);
        let reported = context.and_then(|ctx| {
            event_loop.call_method1("call_exception_handler", (ctx,))?;
            Ok(())
        });
        if let Err(failure) = reported {
            // The handler itself failed: nowhere left to send it.
            failure.write_unraisable(py, Some(handle));
        }
    }

    fn error_context(
        &self,
        py: Python<'py>,
        handle: &Bound<'py, PyAny>,
        error: &PyErr,
    ) -> PyResult<Bound<'py, PyDict>> {
        let source = callback_source(py, &self.callback, &self.args)?;
        let context = PyDict::new(py);
        context.set_item("message", format!("Exception in callback {source}"))?;
        context.set_item("exception", error.value(py))?;
        context.set_item("handle", handle)?;
        Ok(context)
    }
}

/// `contextvars.copy_context()`.
fn copy_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    static COPY_CONTEXT: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
    let copy = COPY_CONTEXT.import(py, "contextvars", "copy_context")?;
    Ok(copy.call0()?.unbind())
}

/// asyncio's description of a callback (`format_helpers._format_callback_source`).
fn callback_source(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<String> {
    static FORMAT: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
    let format = FORMAT.import(py, "asyncio.format_helpers", "_format_callback_source")?;
    format.call1((callback, args))?.extract()
}

/// A callback scheduled with `call_soon`, `call_soon_threadsafe` or as an
/// fd watcher (`asyncio.Handle`).
#[pyclass(module = "evloop._core", weakref)]
#[derive(Debug)]
pub struct Handle {
    pub(crate) shell: Shell,
}

impl Handle {
    /// Cancels the callback (the loop's side of `cancel`).
    pub(crate) fn shell_cancel(&mut self) {
        self.shell.cancel();
    }

    /// Runs the handle (if not cancelled) from the loop.
    pub(crate) fn fire(py: Python<'_>, handle: &Py<Handle>) {
        Handle::fire_bound(handle.bind(py));
    }

    /// [`Handle::fire`] of a bound handle.
    pub(crate) fn fire_bound(handle: &Bound<'_, Handle>) {
        let py = handle.py();
        let call = handle.borrow().shell.call(py);
        if let Some(call) = call {
            call.run(py, handle.as_any(), || handle.borrow().shell.event_loop(py));
        }
    }
}

#[pymethods]
impl Handle {
    /// Cancels the callback: it will not run; its arguments are dropped now.
    fn cancel(&mut self) {
        self.shell.cancel();
    }

    /// True once cancelled.
    fn cancelled(&self) -> bool {
        self.shell.cancelled()
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.shell.context.clone_ref(py)
    }

    /// Runs the callback now, as the loop would (asyncio's `Handle._run`).
    fn _run(slf: &Bound<'_, Self>) {
        Handle::fire(slf.py(), &slf.clone().unbind());
    }

    /// The callback (`None` once cancelled).
    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.shell.callback.as_ref().map(|c| c.clone_ref(py))
    }

    /// The callback's positional arguments (`None` once cancelled).
    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.shell.args.as_ref().map(|a| a.clone_ref(py))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<Handle {}>", self.shell.describe(py))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.shell.traverse(&visit)
    }

    fn __clear__(&mut self) {
        self.shell.cancel();
    }
}

/// A callback scheduled with `call_later` or `call_at`
/// (`asyncio.TimerHandle`): cancelling it frees its slot in evloop's timer
/// heap at once.
#[pyclass(module = "evloop._core", unsendable, weakref)]
#[derive(Debug)]
pub struct TimerHandle {
    shell: Shell,
    when: f64,
    timer: Option<evloop_core::TimerHandle>,
}

impl TimerHandle {
    /// A timer handle for `shell`, due at `when` (loop time), not yet armed.
    pub(crate) fn new(shell: Shell, when: f64) -> TimerHandle {
        TimerHandle {
            shell,
            when,
            timer: None,
        }
    }

    /// Keeps the core timer so that `cancel` can release it.
    pub(crate) fn arm(&mut self, timer: evloop_core::TimerHandle) {
        self.timer = Some(timer);
    }

    /// Runs the handle (if not cancelled) from the loop.
    pub(crate) fn fire(py: Python<'_>, handle: &Py<TimerHandle>) {
        let handle = handle.bind(py);
        let call = {
            let mut this = handle.borrow_mut();
            this.timer = None;
            this.shell.call(py)
        };
        if let Some(call) = call {
            call.run(py, handle.as_any(), || handle.borrow().shell.event_loop(py));
        }
    }
}

#[pymethods]
impl TimerHandle {
    /// Cancels the timer and drops its callback now.
    fn cancel(&mut self) {
        self.shell.cancel();
        if let Some(timer) = self.timer.take() {
            timer.cancel();
        }
    }

    /// True once cancelled.
    fn cancelled(&self) -> bool {
        self.shell.cancelled()
    }

    /// When the timer is due, in loop time (`loop.time()`).
    fn when(&self) -> f64 {
        self.when
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.shell.context.clone_ref(py)
    }

    /// The callback (`None` once cancelled).
    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.shell.callback.as_ref().map(|c| c.clone_ref(py))
    }

    /// The callback's positional arguments (`None` once cancelled).
    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.shell.args.as_ref().map(|a| a.clone_ref(py))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<TimerHandle when={} {}>",
            self.when,
            self.shell.describe(py)
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.shell.traverse(&visit)
    }

    fn __clear__(&mut self) {
        // Only the Python references: the timer, if still armed, holds this
        // handle and so is not part of a garbage cycle.
        self.shell.cancel();
    }
}
