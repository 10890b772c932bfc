//! Native asyncio streams: the machinery under `evloop.streams`'
//! `StreamReader`, `StreamWriter` and `StreamReaderProtocol`
//! (python/evloop/_streams.py subclasses each class here).
//!
//! What this module owns: the reader's buffer and its read operations
//! ([`reader`], [`ops`]), the protocol's data, EOF, flow-control and
//! connection-lost callbacks ([`protocol`]), and the writer's `write` and
//! `drain` ([`writer`]). The hot path of an echo, `data_received` →
//! `await reader.read()` → `writer.write()` → `await writer.drain()`, runs
//! no Python frame: a read whose data is buffered completes at its first
//! step without a future, and one that must wait yields the future that
//! the next `data_received` completes.
//!
//! What it does not own: the transports and the loop (`transport`,
//! `core_loop`), the Python-level parts (`connection_made` and its
//! `client_connected_cb` task, `wait_closed`, `start_tls`, reprs and
//! `__del__` warnings, in `_streams.py`), and which implementation
//! `asyncio.open_connection` & co. pick (`evloop.use_native_streams`).
//!
//! A read waits on an `asyncio.Future` that [`wake`] makes and completes
//! with the fewest Python calls (the awaiting task's wake-up goes onto
//! evloop's ready queue directly); `drain()` with nothing to wait for
//! returns [`writer::Done`], one shared awaitable that is done at once.
//!
//! The awaitables ([`ops::ReadOp`], [`writer::DrainOp`]) implement the
//! coroutine protocol (`__await__`, `send`, `throw`, `close`), so that
//! `await`, `asyncio.create_task`, `wait_for` and cancellation treat them
//! as they treat asyncio's coroutines.

mod buffer;
mod ops;
mod protocol;
mod reader;
mod wake;
mod writer;

pub(crate) use protocol::StreamProtocol;

use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};

/// Adds the stream classes to `evloop._core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<reader::StreamReader>()?;
    m.add_class::<ops::ReadOp>()?;
    m.add_class::<protocol::StreamProtocol>()?;
    m.add_class::<writer::StreamWriter>()?;
    m.add_class::<writer::DrainOp>()?;
    m.add_class::<writer::Done>()?;
    Ok(())
}

/// `StopIteration(value)`: how an awaitable's iterator returns `value`
/// to the `await` that drives it.
fn finished(py: Python<'_>, value: Py<PyAny>) -> PyErr {
    // The instance itself, not pyo3's lazy error: a lazy one is built and
    // normalized when raised, which costs more than the read it ends.
    let class = py.get_type::<PyStopIteration>();
    match call1(class.as_any(), value.bind(py)) {
        Ok(stop) => PyErr::from_value(stop),
        Err(error) => error,
    }
}

// The hot calls into Python. Under the limited API before Python 3.12,
// pyo3's `call1` and `call_method1` build an argument tuple, and
// `call_method1` a bound method too; these CPython functions of the
// limited API pass the arguments on the C stack and look the method up
// without binding it (a third of the cost of a stream read's wake-up).

/// `callable(arg)`.
fn call1<'py>(
    callable: &Bound<'py, PyAny>,
    arg: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let end = std::ptr::null_mut::<ffi::PyObject>();
    // SAFETY: the GIL is held (the `Bound`s prove it); every pointer is a
    // live object borrowed for the call, and the NULL ends the variadic
    // argument list as the function requires. The result is a new
    // reference, or NULL with an exception set, which is what
    // `from_owned_ptr_or_err` takes.
    unsafe {
        let result = ffi::PyObject_CallFunctionObjArgs(callable.as_ptr(), arg.as_ptr(), end);
        Bound::from_owned_ptr_or_err(callable.py(), result)
    }
}

/// `obj.name(*args)`, one or two arguments.
fn call_method<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    args: &[&Bound<'py, PyAny>],
) -> PyResult<Bound<'py, PyAny>> {
    let end = std::ptr::null_mut::<ffi::PyObject>();
    let (first, second) = match args {
        [a] => (a.as_ptr(), end),
        [a, b] => (a.as_ptr(), b.as_ptr()),
        _ => {
            return Err(PyTypeError::new_err(
                "call_method takes one or two arguments",
            ))
        }
    };
    // SAFETY: as in `call1`; with one argument `second` is the NULL that
    // ends the list (the trailing NULL is then never read).
    unsafe {
        let result =
            ffi::PyObject_CallMethodObjArgs(obj.as_ptr(), name.as_ptr(), first, second, end);
        Bound::from_owned_ptr_or_err(obj.py(), result)
    }
}

/// One step of an awaitable: a value to yield to the driving task, or the
/// awaitable's result.
enum Step {
    Yield(Py<PyAny>),
    Return(Py<PyAny>),
}

impl Step {
    /// As `__next__` gives it: a result of None ends the iteration
    /// without an exception (what an iterator's NULL without error means).
    fn next(self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self {
            Step::Yield(value) => Ok(Some(value)),
            Step::Return(value) if value.is_none(py) => Ok(None),
            Step::Return(value) => Err(finished(py, value)),
        }
    }

    /// As `send` gives it: the result as StopIteration.
    fn send(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Step::Yield(value) => Ok(value),
            Step::Return(value) => Err(finished(py, value)),
        }
    }
}

/// The exception `throw(typ, val, tb)` raises, built as a generator's
/// `throw` builds it (a class is instantiated with `val`).
fn thrown(
    typ: &Bound<'_, PyAny>,
    val: Option<&Bound<'_, PyAny>>,
    tb: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyErr> {
    let py = typ.py();
    let val = val.filter(|v| !v.is_none());
    let base = py.get_type::<pyo3::exceptions::PyBaseException>();
    let exc = if typ.is_instance(&base)? {
        if val.is_some() {
            return Err(PyTypeError::new_err(
                "instance exception may not have a separate value",
            ));
        }
        typ.clone()
    } else if typ
        .downcast::<PyType>()
        .is_ok_and(|t| t.is_subclass(&base).unwrap_or(false))
    {
        match val {
            None => typ.call0()?,
            Some(v) if v.is_instance(typ)? => v.clone(),
            Some(v) => match v.downcast::<PyTuple>() {
                Ok(args) => typ.call1(args)?,
                Err(_) => typ.call1((v,))?,
            },
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "exceptions must be classes or instances deriving from BaseException, not {}",
            typ.get_type().name()?
        )));
    };
    let exc = match tb.filter(|t| !t.is_none()) {
        Some(tb) => exc.call_method1(intern!(py, "with_traceback"), (tb,))?,
        None => exc,
    };
    Ok(PyErr::from_value(exc))
}

/// Cancels `future` (an awaitable's abandoned wait); a future already
/// done is left as it is.
fn cancel(future: &Bound<'_, PyAny>) -> PyResult<()> {
    future.call_method0(intern!(future.py(), "cancel"))?;
    Ok(())
}
