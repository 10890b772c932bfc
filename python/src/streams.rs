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
//! The awaitables ([`ops::ReadOp`], [`writer::DrainOp`]) implement the
//! coroutine protocol (`__await__`, `send`, `throw`, `close`), so that
//! `await`, `asyncio.create_task`, `wait_for` and cancellation treat them
//! as they treat asyncio's coroutines.

mod buffer;
mod ops;
mod protocol;
mod reader;
mod writer;

use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

/// Adds the stream classes to `evloop._core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<reader::StreamReader>()?;
    m.add_class::<ops::ReadOp>()?;
    m.add_class::<protocol::StreamProtocol>()?;
    m.add_class::<writer::StreamWriter>()?;
    m.add_class::<writer::DrainOp>()?;
    Ok(())
}

/// `StopIteration(value)`: how an awaitable's iterator returns `value`
/// to the `await` that drives it.
fn finished(py: Python<'_>, value: Py<PyAny>) -> PyErr {
    // The instance itself, not pyo3's lazy error: a lazy one is built and
    // normalized when raised, which costs more than the read it ends.
    match py.get_type::<PyStopIteration>().call1((value,)) {
        Ok(stop) => PyErr::from_value(stop),
        Err(error) => error,
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

/// The `loop.create_future()` an awaitable yields to the task driving it,
/// marked as asyncio's `Future.__await__` marks it (the task checks it
/// was yielded by an `await`, not a bare `yield`).
fn blocking_future<'py>(event_loop: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = event_loop.py();
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    future.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
    Ok(future)
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
