//! `Handle` and `TimerHandle`: the Python shells of scheduled callbacks, with
//! asyncio's semantics (`asyncio.Handle._run`): the callback runs in its
//! `contextvars` context; an exception goes to the loop's
//! `call_exception_handler` with the keys `message`, `exception`, `handle`;
//! `SystemExit` and `KeyboardInterrupt` stop the loop and leave `run_forever`.
//!
//! Debug mode (asyncio's): a handle created then keeps where it was created
//! (`_source_traceback`, shown by its repr and given to the exception
//! handler), and while a loop in debug mode runs, each handle runs through
//! `Loop._run_handle_debug`, which times it. Outside debug mode all this
//! costs one thread-local flag read per callback.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::thread::ThreadId;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyClass;
use pyo3::{PyTraverseError, PyVisit};

use crate::core_loop::{CoreLoop, LoopBase, RemoteLoop};
use crate::errors::leaves_loop;
use crate::thread_bound::{LoopBound, ThreadBound};

thread_local! {
    /// The loop running on this thread is in debug mode.
    static DEBUG_RUN: Cell<bool> = const { Cell::new(false) };
}

/// Sets whether the loop running on this thread is in debug mode; returns
/// the previous value.
pub(crate) fn set_debug_run(debug: bool) -> bool {
    DEBUG_RUN.with(|flag| flag.replace(debug))
}

fn debug_run() -> bool {
    DEBUG_RUN.with(Cell::get)
}

/// What a handle calls, until it is cancelled or (for a one-shot) has run.
#[derive(Debug)]
pub(crate) struct Shell {
    callback: Option<Py<PyAny>>,
    args: Option<Py<PyTuple>>,
    /// Dropped by hand (see `Drop`).
    context: ManuallyDrop<Py<PyAny>>,
    event_loop: ManuallyDrop<Py<PyAny>>,
    /// Only for handles created in debug mode.
    debug: Option<Box<DebugInfo>>,
    /// `context` is the copy this shell made (no one else's yet).
    own_context: bool,
}

/// What debug mode keeps of a handle.
#[derive(Debug)]
struct DebugInfo {
    /// Where it was created (`format_helpers.extract_stack()`).
    traceback: Py<PyAny>,
    /// Its repr when it was cancelled (asyncio's `_repr`).
    repr: Option<String>,
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
        let (context, own_context) = match context {
            Some(context) if !context.is_none(py) => (context, false),
            _ => (copy_context(py)?, true),
        };
        Ok(Shell {
            callback: Some(callback),
            args: Some(args),
            context: ManuallyDrop::new(context),
            event_loop: ManuallyDrop::new(event_loop),
            debug: None,
            own_context,
        })
    }

    /// The context, if this shell copied it: [`Queued`] hides it from the
    /// GC along with the handle (a context passed in may be shared).
    pub(crate) fn own_context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.own_context.then(|| self.context.clone_ref(py))
    }

    /// Debug mode: keeps the Python stack of the caller, less its last
    /// `skip` frames (Python wrappers of the scheduling call).
    pub(crate) fn trace(&mut self, py: Python<'_>, skip: usize) -> PyResult<()> {
        static EXTRACT: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
        let extract = EXTRACT.import(py, "asyncio.format_helpers", "extract_stack")?;
        // Called from Rust, extract_stack's caller is the Python code that
        // called call_soon & co.
        let stack = extract.call0()?;
        for _ in 0..skip {
            if stack.len()? > 0 {
                stack.del_item(-1)?;
            }
        }
        self.debug = Some(Box::new(DebugInfo {
            traceback: stack.unbind(),
            repr: None,
        }));
        Ok(())
    }

    fn cancel(&mut self) {
        // Drops the callback and its arguments at once, as asyncio does.
        self.callback = None;
        self.args = None;
    }

    /// `cancel()` as the user calls it: a handle made in debug mode keeps
    /// its repr first (asyncio's, for a later "Executing ..." warning).
    fn cancel_keeping_repr(&mut self, py: Python<'_>, kind: &str, when: Option<f64>) {
        if self.cancelled() {
            return;
        }
        if self.debug.is_some() {
            let repr = self.repr(py, kind, when, true);
            if let Some(debug) = &mut self.debug {
                debug.repr = Some(repr);
            }
        }
        self.cancel();
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
        visit.call(&*self.context)?;
        if let Some(debug) = &self.debug {
            visit.call(&debug.traceback)?;
        }
        visit.call(&*self.event_loop)
    }

    /// asyncio's `Handle.__repr__`: `<Handle [cancelled] [when=…] callback
    /// [created at file:line]>`, or the repr kept at cancel.
    fn repr(&self, py: Python<'_>, kind: &str, when: Option<f64>, cancelled: bool) -> String {
        if let Some(DebugInfo {
            repr: Some(repr), ..
        }) = self.debug.as_deref()
        {
            return repr.clone();
        }
        let mut info = vec![kind.to_owned()];
        if cancelled {
            info.push("cancelled".to_owned());
        }
        if let Some(when) = when {
            info.push(format!("when={}", py_float(py, when)));
        }
        if let (Some(callback), Some(args)) = (&self.callback, &self.args) {
            info.push(callback_source(py, callback.bind(py), args.bind(py)).unwrap_or_default());
        }
        if let Some(created) = self
            .debug
            .as_ref()
            .and_then(|d| created_at(py, &d.traceback))
        {
            info.push(created);
        }
        format!("<{}>", info.join(" "))
    }

    /// The creation traceback (`_source_traceback`), if debug mode kept one.
    fn source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.debug.as_ref().map(|d| d.traceback.clone_ref(py))
    }
}

impl Drop for Shell {
    /// Plain decrefs: a `Py`'s own drop first asks a thread-local whether
    /// the GIL is held, four times per handle.
    fn drop(&mut self) {
        // SAFETY: a Shell is made and dropped with the GIL held: it lives in
        // a Handle or TimerHandle (dropped by their tp_dealloc) or briefly on
        // the stack of the #[pymethods] call that makes one.
        let py = unsafe { Python::assume_gil_acquired() };
        if let Some(callback) = self.callback.take() {
            callback.drop_ref(py);
        }
        if let Some(args) = self.args.take() {
            args.drop_ref(py);
        }
        // SAFETY: taken once, here, and never read again.
        let (context, event_loop) = unsafe {
            (
                ManuallyDrop::take(&mut self.context),
                ManuallyDrop::take(&mut self.event_loop),
            )
        };
        context.drop_ref(py);
        event_loop.drop_ref(py);
    }
}

/// `created at file:line` from a traceback's last frame.
fn created_at(py: Python<'_>, traceback: &Py<PyAny>) -> Option<String> {
    let frame = traceback.bind(py).get_item(-1).ok()?;
    let file: String = frame.get_item(0).ok()?.extract().ok()?;
    let line: Py<PyAny> = frame.get_item(1).ok()?.unbind();
    Some(format!("created at {file}:{line}"))
}

/// A float as Python prints it (`123.0`, not Rust's `123`).
fn py_float(py: Python<'_>, value: f64) -> String {
    pyo3::types::PyFloat::new(py, value)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| value.to_string())
}

/// Runs `handle` through `loop._run_handle_debug(handle)`, which times it
/// and keeps it as the loop's current handle (asyncio's debug `_run_once`).
fn run_debug(py: Python<'_>, event_loop: &Py<PyAny>, handle: &Bound<'_, PyAny>) {
    let event_loop = event_loop.bind(py);
    let outcome = event_loop.call_method1(pyo3::intern!(py, "_run_handle_debug"), (handle,));
    if let Err(error) = outcome {
        if leaves_loop(py, &error) {
            if let Ok(core) = event_loop.downcast::<CoreLoop>() {
                return CoreLoop::fail(core, error);
            }
        }
        error.write_unraisable(py, Some(handle));
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
        if leaves_loop(py, &error) {
            return stop_with(event_loop, error);
        }
        let context = self.error_context(py, handle, &error);
        let reported = context.and_then(|ctx| {
            event_loop.call_method1("call_exception_handler", (ctx,))?;
            Ok(())
        });
        match reported {
            // KeyboardInterrupt from the handler leaves the loop, as in asyncio.
            Err(failure) if leaves_loop(py, &failure) => stop_with(event_loop, failure),
            // The handler itself failed: nowhere left to send it.
            Err(failure) => failure.write_unraisable(py, Some(handle)),
            Ok(()) => {}
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
        let traceback = handle.getattr(pyo3::intern!(py, "_source_traceback"))?;
        if traceback.is_truthy()? {
            context.set_item("source_traceback", traceback)?;
        }
        Ok(context)
    }
}

/// Ends the loop's run with `error` (raised by `run_forever`).
fn stop_with(event_loop: &Bound<'_, PyAny>, error: PyErr) {
    match event_loop.downcast::<CoreLoop>() {
        Ok(core) => CoreLoop::fail(core, error),
        Err(_) => error.restore(event_loop.py()),
    }
}

/// `contextvars.copy_context()`.
fn copy_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    static COPY_CONTEXT: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
    let copy = COPY_CONTEXT.import(py, "contextvars", "copy_context")?;
    Ok(copy.call0()?.unbind())
}

/// asyncio's description of a callback (`format_helpers._format_callback_source`).
pub(crate) fn callback_source(
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
    pub(crate) fn shell_cancel(&mut self, py: Python<'_>) {
        self.shell.cancel_keeping_repr(py, "Handle", None);
    }

    /// Runs the handle (if not cancelled) from the loop; in debug mode
    /// through the loop's `_run_handle_debug`.
    pub(crate) fn fire(py: Python<'_>, handle: &Py<Handle>) {
        Handle::fire_bound(handle.bind(py));
    }

    /// [`Handle::fire`] of a bound handle.
    pub(crate) fn fire_bound(handle: &Bound<'_, Handle>) {
        let py = handle.py();
        if debug_run() {
            let this = handle.borrow();
            if this.shell.cancelled() {
                // Skipped without a word, as asyncio's _run_once does.
                return;
            }
            let event_loop = this.shell.event_loop.clone_ref(py);
            drop(this);
            return run_debug(py, &event_loop, handle.as_any());
        }
        Handle::run_now(handle);
    }

    fn run_now(handle: &Bound<'_, Handle>) {
        let py = handle.py();
        let call = handle.borrow().shell.call(py);
        if let Some(call) = call {
            call.run(py, handle.as_any(), || handle.borrow().shell.event_loop(py));
        }
    }
}

/// A handle in evloop's ready queue or timer heap, hidden from Python's
/// cyclic GC (with the context it copied) until evloop lets go of it.
/// Meanwhile evloop's reference keeps them (and all they refer to) alive,
/// so the GC could free nothing through them; yet every collection would
/// traverse each pending handle: a burst of call_soon paid a third of its
/// instructions for that.
pub(crate) struct Queued<T: PyClass> {
    handle: Option<Py<T>>,
    context: Option<Py<PyAny>>,
}

impl<T: PyClass> Queued<T> {
    /// Takes `handle` (just made, so tracked) and `context`, the copy its
    /// shell made if any, out of the GC's lists.
    pub(crate) fn new(handle: Bound<'_, T>, context: Option<Py<PyAny>>) -> Queued<T> {
        untrack(handle.as_any());
        if let Some(context) = &context {
            untrack(context.bind(handle.py()));
        }
        Queued {
            handle: Some(handle.unbind()),
            context,
        }
    }

    /// Runs `fire` on the handle, seen by the GC again.
    pub(crate) fn fire<'py>(mut self, py: Python<'py>, fire: impl FnOnce(&Bound<'py, T>)) {
        self.release(py);
        if let Some(handle) = self.handle.take() {
            fire(&handle.into_bound(py));
        }
    }

    /// Shows the handle and its context to the GC again.
    fn release(&mut self, py: Python<'_>) {
        if let Some(context) = self.context.take() {
            track(&context.into_bound(py));
        }
        if let Some(handle) = &self.handle {
            track(handle.bind(py).as_any());
        }
    }
}

impl<T: PyClass> Drop for Queued<T> {
    /// Dropped unrun (cancelled, or the loop closed): back to the GC, which
    /// needs the GIL (held already but for a loop dropped on another
    /// thread, where `with_gil` takes it).
    fn drop(&mut self) {
        if self.handle.is_some() {
            Python::with_gil(|py| self.release(py));
        }
    }
}

fn untrack(object: &Bound<'_, PyAny>) {
    // SAFETY: a live object of a GC type, with the GIL held; untracking an
    // untracked object does nothing.
    unsafe { ffi::PyObject_GC_UnTrack(object.as_ptr().cast()) };
}

fn track(object: &Bound<'_, PyAny>) {
    let object = object.as_ptr();
    // SAFETY: a live object of a GC type, with the GIL held; tracked only
    // if it is not (PyObject_GC_Track requires that).
    unsafe {
        if ffi::PyObject_GC_IsTracked(object) == 0 {
            ffi::PyObject_GC_Track(object.cast());
        }
    }
}

#[pymethods]
impl Handle {
    /// Cancels the callback: it will not run; its arguments are dropped now.
    fn cancel(&mut self, py: Python<'_>) {
        self.shell.cancel_keeping_repr(py, "Handle", None);
    }

    /// True once cancelled.
    fn cancelled(&self) -> bool {
        self.shell.cancelled()
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.shell.context.clone_ref(py)
    }

    /// Runs the callback now (asyncio's `Handle._run`: no timing).
    fn _run(slf: &Bound<'_, Self>) {
        Handle::run_now(slf);
    }

    /// Where the handle was created, in debug mode (else None).
    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.shell.source_traceback(py)
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
        self.shell.repr(py, "Handle", None, self.shell.cancelled())
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
/// heap at once. Usable on its loop's thread only (RuntimeError elsewhere).
#[pyclass(module = "evloop._core", weakref)]
#[derive(Debug)]
pub struct TimerHandle {
    /// When it is due, in loop time: readable on any thread, as asyncio's.
    when: f64,
    state: ThreadBound<TimerState>,
}

/// A [`TimerHandle`]'s state: evloop's timer is the loop's.
#[derive(Debug)]
struct TimerState {
    shell: Shell,
    timer: Option<evloop_core::TimerHandle>,
}

impl LoopBound for TimerState {
    /// The loop the shell calls back: no copy kept per timer (`call_later`
    /// is a hot path), asked only when dropped on another thread.
    fn remote(&self, py: Python<'_>) -> Option<RemoteLoop> {
        let event_loop = self.shell.event_loop.bind(py);
        let base = event_loop.downcast::<LoopBase>().ok()?;
        Some(base.get().threadsafe().clone())
    }
}

impl TimerHandle {
    /// A timer handle for `shell`, due at `when` (loop time), not yet armed,
    /// of the loop of thread `owner`.
    pub(crate) fn new(shell: Shell, when: f64, owner: ThreadId) -> TimerHandle {
        let state = TimerState { shell, timer: None };
        TimerHandle {
            when,
            state: ThreadBound::new(owner, state),
        }
    }

    /// Keeps the core timer so that `cancel` can release it.
    pub(crate) fn arm(&mut self, timer: evloop_core::TimerHandle) -> PyResult<()> {
        self.state.get_mut()?.timer = Some(timer);
        Ok(())
    }

    /// Runs the handle (if not cancelled) from the loop; in debug mode
    /// through the loop's `_run_handle_debug`. The loop's thread (only the
    /// loop fires it), so the state is always there.
    pub(crate) fn fire(handle: &Bound<'_, TimerHandle>) {
        let py = handle.py();
        if debug_run() {
            let event_loop = {
                let mut guard = handle.borrow_mut();
                let Ok(this) = guard.state.get_mut() else {
                    return;
                };
                this.timer = None;
                if this.shell.cancelled() {
                    return;
                }
                this.shell.event_loop.clone_ref(py)
            };
            return run_debug(py, &event_loop, handle.as_any());
        }
        let call = {
            let mut guard = handle.borrow_mut();
            let Ok(this) = guard.state.get_mut() else {
                return;
            };
            this.timer = None;
            this.shell.call(py)
        };
        if let Some(call) = call {
            call.run(py, handle.as_any(), || TimerHandle::event_loop(handle));
        }
    }

    /// The loop, for a call's exception handler. Asked on the loop's thread
    /// (where the call ran); None elsewhere, never reached.
    fn event_loop<'py>(handle: &Bound<'py, TimerHandle>) -> Bound<'py, PyAny> {
        let this = handle.borrow();
        match this.state.get() {
            Ok(state) => state.shell.event_loop(handle.py()),
            Err(_) => handle.py().None().into_bound(handle.py()),
        }
    }
}

#[pymethods]
impl TimerHandle {
    /// Cancels the timer and drops its callback now.
    fn cancel(&mut self, py: Python<'_>) -> PyResult<()> {
        let this = self.state.get_mut()?;
        this.shell
            .cancel_keeping_repr(py, "TimerHandle", Some(self.when));
        if let Some(timer) = this.timer.take() {
            timer.cancel();
        }
        Ok(())
    }

    /// Runs the callback now (asyncio's `Handle._run`: no timing).
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let call = slf.borrow().state.get()?.shell.call(slf.py());
        if let Some(call) = call {
            call.run(slf.py(), slf.as_any(), || TimerHandle::event_loop(slf));
        }
        Ok(())
    }

    /// Where the handle was created, in debug mode (else None).
    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.state.get()?.shell.source_traceback(py))
    }

    /// True once cancelled.
    fn cancelled(&self) -> PyResult<bool> {
        Ok(self.state.get()?.shell.cancelled())
    }

    /// When the timer is due, in loop time (`loop.time()`); on any thread.
    fn when(&self) -> f64 {
        self.when
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.state.get()?.shell.context.clone_ref(py))
    }

    /// The callback (`None` once cancelled).
    #[getter]
    fn _callback(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let shell = &self.state.get()?.shell;
        Ok(shell.callback.as_ref().map(|c| c.clone_ref(py)))
    }

    /// The callback's positional arguments (`None` once cancelled).
    #[getter]
    fn _args(&self, py: Python<'_>) -> PyResult<Option<Py<PyTuple>>> {
        let shell = &self.state.get()?.shell;
        Ok(shell.args.as_ref().map(|a| a.clone_ref(py)))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let this = self.state.get()?;
        Ok(this
            .shell
            .repr(py, "TimerHandle", Some(self.when), this.shell.cancelled()))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // On another thread (a GC pass there) nothing is visited, as pyo3
        // does for `unsendable` classes: the state is the loop thread's.
        match self.state.get() {
            Ok(this) => this.shell.traverse(&visit),
            Err(_) => Ok(()),
        }
    }

    fn __clear__(&mut self) {
        // Only the Python references: the timer, if still armed, holds this
        // handle and so is not part of a garbage cycle.
        if let Ok(this) = self.state.get_mut() {
            this.shell.cancel();
        }
    }
}
