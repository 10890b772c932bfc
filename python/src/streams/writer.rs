//! `_StreamWriter`, the native base of `evloop.streams.StreamWriter`
//! (`write` and friends call the transport directly), and `_DrainOp`, what
//! `drain()` and the protocol's `_drain_helper()` return.
//!
//! A drain with nothing to wait for when `drain()` is called (no reader
//! exception, the transport open, writing not paused, the connection not
//! lost) returns [`Done`], an awaitable that is done at once: no coroutine
//! frame, no future. (asyncio checks when the coroutine first runs, which
//! for `await writer.drain()` is the same moment.) Otherwise a `_DrainOp`
//! runs asyncio's checks when first driven. `wait_closed`, `start_tls`, the repr and the
//! unclosed-writer warning are Python (`_streams.py`).

use pyo3::exceptions::{PyConnectionResetError, PyRuntimeError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::{PyTraverseError, PyVisit};

use super::protocol::StreamProtocol;
use super::reader::StreamReader;
use super::wake::new_future;
use super::{call1, cancel, finished, thrown, Step};
use crate::StreamTransport;

/// The writer's state (asyncio's `StreamWriter` attributes).
#[pyclass(module = "evloop._core", name = "_StreamWriter", subclass)]
pub(crate) struct StreamWriter {
    /// Replaced by `start_tls`.
    transport: Py<PyAny>,
    /// `transport.write`, looked up once per transport: `write` is per
    /// message.
    transport_write: TransportWrite,
    #[pyo3(get, name = "_protocol")]
    protocol: Py<PyAny>,
    #[pyo3(get, name = "_reader")]
    reader: Option<Py<PyAny>>,
    #[pyo3(get, name = "_loop")]
    event_loop: Py<PyAny>,
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter").finish_non_exhaustive()
    }
}

/// A transport's `write`.
enum TransportWrite {
    /// evloop's stream transport's own (`evloop.StreamTransport` binds
    /// it): called without Python's call protocol.
    Native(Py<StreamTransport>),
    /// Any other transport's bound method.
    Method(Py<PyAny>),
}

impl TransportWrite {
    fn of(transport: &Bound<'_, PyAny>) -> PyResult<TransportWrite> {
        let py = transport.py();
        let method = transport.getattr(intern!(py, "write"))?;
        let is_own = |owner: &Bound<'_, StreamTransport>| {
            let own = owner.getattr(intern!(py, "write"));
            own.and_then(|own| method.eq(own)).unwrap_or(false)
        };
        let native = method
            .getattr(intern!(py, "__self__"))
            .ok()
            .and_then(|owner| owner.downcast_into::<StreamTransport>().ok())
            .filter(is_own);
        Ok(match native {
            Some(native) => TransportWrite::Native(native.unbind()),
            None => TransportWrite::Method(method.unbind()),
        })
    }

    fn call(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        match self {
            TransportWrite::Native(transport) => {
                transport.bind(data.py()).try_borrow()?.write(data)
            }
            TransportWrite::Method(method) => call1(method.bind(data.py()), data).map(drop),
        }
    }

    fn object(&self) -> &Py<PyAny> {
        match self {
            TransportWrite::Native(transport) => transport.as_any(),
            TransportWrite::Method(method) => method,
        }
    }
}

impl StreamWriter {
    /// drain()'s own checks: the reader's exception raises; a closing
    /// transport makes the drain yield once (true) so that the loop can
    /// run `connection_lost`.
    fn closing(&self, py: Python<'_>) -> PyResult<bool> {
        if let Some(reader) = &self.reader {
            let reader = reader.bind(py);
            let exc = match reader.downcast::<StreamReader>() {
                Ok(native) => native.borrow().error(py),
                Err(_) => {
                    let exc = reader.call_method0(intern!(py, "exception"))?;
                    (!exc.is_none()).then(|| PyErr::from_value(exc))
                }
            };
            if let Some(exc) = exc {
                return Err(exc);
            }
        }
        self.transport
            .call_method0(py, intern!(py, "is_closing"))?
            .is_truthy(py)
    }
}

impl StreamWriter {
    /// A drain now would return at once: no reader exception, the
    /// transport open, the (native) protocol connected and not paused.
    fn drained(&self, py: Python<'_>) -> PyResult<bool> {
        let reader_ok = match &self.reader {
            None => true,
            Some(reader) => match reader.bind(py).downcast::<StreamReader>() {
                Ok(native) => native.borrow().exception.is_none(),
                Err(_) => false,
            },
        };
        let protocol = self.protocol.bind(py);
        let flowing = match protocol.downcast::<StreamProtocol>() {
            Ok(native) => {
                let p = native.borrow();
                !p.lost && !p.paused
            }
            Err(_) => false,
        };
        if !(reader_ok && flowing) {
            return Ok(false);
        }
        let closing = self.transport.call_method0(py, intern!(py, "is_closing"))?;
        Ok(!closing.is_truthy(py)?)
    }
}

/// What `drain()` returns when there is nothing to wait for: done at its
/// first step (one shared object, it keeps no state).
#[pyclass(module = "evloop._core", name = "_Done", frozen)]
#[derive(Debug)]
pub(crate) struct Done;

impl Done {
    /// The one `Done`.
    fn get(py: Python<'_>) -> PyResult<Py<Done>> {
        static DONE: GILOnceCell<Py<Done>> = GILOnceCell::new();
        DONE.get_or_try_init(py, || Py::new(py, Done))
            .map(|done| done.clone_ref(py))
    }
}

#[pymethods]
impl Done {
    /// The awaitable is its own iterator.
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Itself.
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The end, with the result None.
    fn __next__(&self) -> Option<Py<PyAny>> {
        None
    }

    /// The end, with the result None.
    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let _ = value;
        Err(finished(py, py.None()))
    }

    /// Raises the exception (the drain is over).
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        Err(thrown(typ, val, tb)?)
    }

    /// Nothing to end.
    fn close(&self) {}

    /// The name asyncio's coroutine would have.
    #[getter]
    fn __qualname__(&self) -> &'static str {
        "StreamWriter.drain"
    }

    /// The short name asyncio's coroutine would have.
    #[getter]
    fn __name__(&self) -> &'static str {
        "drain"
    }
}

#[pymethods]
impl StreamWriter {
    /// `StreamWriter(transport, protocol, reader, loop)`.
    #[new]
    #[pyo3(signature = (transport, protocol, reader, r#loop))]
    fn new(
        py: Python<'_>,
        transport: Py<PyAny>,
        protocol: Py<PyAny>,
        reader: Option<Py<PyAny>>,
        r#loop: Py<PyAny>,
    ) -> PyResult<StreamWriter> {
        let transport_write = TransportWrite::of(transport.bind(py))?;
        Ok(StreamWriter {
            transport,
            transport_write,
            protocol,
            reader: reader.filter(|r| !r.is_none(py)),
            event_loop: r#loop,
        })
    }

    /// The transport.
    #[getter]
    fn transport(&self, py: Python<'_>) -> Py<PyAny> {
        self.transport.clone_ref(py)
    }

    /// The transport (asyncio's attribute).
    #[getter]
    fn _transport(&self, py: Python<'_>) -> Py<PyAny> {
        self.transport.clone_ref(py)
    }

    /// Writes go to `transport` from now on (`start_tls`).
    #[setter(_transport)]
    fn replace_transport(&mut self, transport: &Bound<'_, PyAny>) -> PyResult<()> {
        self.transport_write = TransportWrite::of(transport)?;
        self.transport = transport.clone().unbind();
        Ok(())
    }

    /// `transport.write(data)`.
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.transport_write.call(data)
    }

    /// `transport.writelines(data)`.
    fn writelines(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = data.py();
        self.transport
            .call_method1(py, intern!(py, "writelines"), (data,))?;
        Ok(())
    }

    /// `transport.write_eof()`.
    fn write_eof(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.transport.call_method0(py, intern!(py, "write_eof"))
    }

    /// `transport.can_write_eof()`.
    fn can_write_eof(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.transport
            .call_method0(py, intern!(py, "can_write_eof"))
    }

    /// `transport.close()`.
    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.transport.call_method0(py, intern!(py, "close"))
    }

    /// `transport.is_closing()`.
    fn is_closing(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.transport.call_method0(py, intern!(py, "is_closing"))
    }

    /// `transport.get_extra_info(name, default)`.
    #[pyo3(signature = (name, default = None))]
    fn get_extra_info(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        default: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.transport
            .call_method1(py, intern!(py, "get_extra_info"), (name, default))
    }

    /// Waits until the transport can take more (or raises the reader's
    /// exception, or ConnectionResetError once the connection is lost).
    /// With nothing to wait for or raise, an awaitable that is done.
    fn drain(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if slf.borrow().drained(py)? {
            return Ok(Done::get(py)?.into_any());
        }
        let protocol = slf.borrow().protocol.clone_ref(py);
        let op = DrainOp {
            writer: Some(slf.clone().unbind()),
            protocol,
            state: State::Fresh,
        };
        Ok(Py::new(py, op)?.into_any())
    }

    /// Shows Python's GC the objects held.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.transport)?;
        visit.call(self.transport_write.object())?;
        visit.call(&self.protocol)?;
        visit.call(&self.event_loop)?;
        if let Some(reader) = &self.reader {
            visit.call(reader)?;
        }
        Ok(())
    }

    /// Lets go of them for the GC.
    fn __clear__(&mut self) {
        self.reader = None;
    }
}

/// Where a drain is.
#[derive(Debug)]
enum State {
    /// Not driven yet.
    Fresh,
    /// Yielded once for a closing transport (asyncio's `sleep(0)`).
    Slept,
    /// Waits for `resume_writing` or `connection_lost` on this future.
    Waiting(Py<PyAny>),
    /// Drives a non-native protocol's `_drain_helper()` awaitable.
    Delegating(Py<PyAny>),
    /// Returned, raised or closed.
    Done,
}

/// A pending drain: a coroutine-like awaitable, as [`super::ops::ReadOp`].
#[pyclass(module = "evloop._core", name = "_DrainOp")]
#[derive(Debug)]
pub(crate) struct DrainOp {
    /// The writer whose checks come first (None: `_drain_helper`).
    writer: Option<Py<StreamWriter>>,
    protocol: Py<PyAny>,
    state: State,
}

impl DrainOp {
    /// The protocol's `_drain_helper()`: flow control only.
    pub(super) fn helper(protocol: Py<PyAny>) -> DrainOp {
        DrainOp {
            writer: None,
            protocol,
            state: State::Fresh,
        }
    }

    /// One step: done, or something to yield (a future, or None once).
    fn step(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<Step> {
        let py = slf.py();
        let mut guard = slf.borrow_mut();
        let op = &mut *guard;
        match std::mem::replace(&mut op.state, State::Done) {
            State::Fresh => {
                if !value.is_none() {
                    let message = "can't send non-None value to a just-started coroutine";
                    return Err(PyTypeError::new_err(message));
                }
                let closing = match &op.writer {
                    Some(writer) => writer.bind(py).borrow().closing(py)?,
                    None => false,
                };
                if closing {
                    op.state = State::Slept;
                    return Ok(Step::Yield(py.None()));
                }
                op.flow_control(py)
            }
            State::Slept => op.flow_control(py),
            State::Waiting(future) => {
                op.forget(py, &future);
                Ok(Step::Return(py.None()))
            }
            State::Delegating(inner) => {
                let outcome = inner.call_method1(py, intern!(py, "send"), (value,));
                op.state = State::Delegating(inner);
                op.delegated(outcome)
            }
            State::Done => Err(PyRuntimeError::new_err(
                "cannot reuse already awaited coroutine",
            )),
        }
    }

    /// asyncio's `_drain_helper`: ConnectionResetError once the connection
    /// is lost, done unless writing is paused, else wait for a future.
    fn flow_control(&mut self, py: Python<'_>) -> PyResult<Step> {
        let protocol = self.protocol.bind(py).clone();
        let Ok(native) = protocol.downcast::<StreamProtocol>() else {
            let helper = protocol.call_method0(intern!(py, "_drain_helper"))?;
            let inner = helper.call_method0(intern!(py, "__await__"))?;
            let outcome = inner.call_method1(intern!(py, "send"), (py.None(),));
            self.state = State::Delegating(inner.unbind());
            return self.delegated(outcome.map(Bound::unbind));
        };
        let event_loop = {
            let p = native.borrow();
            if p.lost {
                return Err(PyConnectionResetError::new_err("Connection lost"));
            }
            if !p.paused {
                return Ok(Step::Return(py.None()));
            }
            p.event_loop(py)
        };
        let future = new_future(event_loop.bind(py))?.unbind();
        native.borrow_mut().add_waiter(future.clone_ref(py));
        self.state = State::Waiting(future.clone_ref(py));
        Ok(Step::Yield(future))
    }

    /// A delegated step's outcome: a yielded value keeps delegating, the
    /// end (StopIteration or an error, passed on as it is) ends this
    /// drain too.
    fn delegated(&mut self, outcome: PyResult<Py<PyAny>>) -> PyResult<Step> {
        if outcome.is_err() {
            self.state = State::Done;
        }
        outcome.map(Step::Yield)
    }

    /// Lets go of a waiting drain's future in the protocol.
    fn forget(&self, py: Python<'_>, future: &Py<PyAny>) {
        if let Ok(native) = self.protocol.bind(py).downcast::<StreamProtocol>() {
            native.borrow_mut().remove_waiter(future);
        }
    }

    /// Ends the drain where it is; a waiting one's future is cancelled.
    /// `throw` is the exception to pass to a delegated awaitable.
    fn abandon(slf: &Bound<'_, Self>, throw: Option<&PyErr>) -> PyResult<Option<Py<PyAny>>> {
        let py = slf.py();
        let mut op = slf.borrow_mut();
        match std::mem::replace(&mut op.state, State::Done) {
            State::Waiting(future) => {
                op.forget(py, &future);
                drop(op);
                cancel(future.bind(py))?;
            }
            State::Delegating(inner) => {
                let Some(error) = throw else {
                    inner.call_method0(py, intern!(py, "close"))?;
                    return Ok(None);
                };
                let exc = error.value(py);
                let outcome = inner.call_method1(py, intern!(py, "throw"), (exc,));
                op.state = State::Delegating(inner);
                return match op.delegated(outcome)? {
                    Step::Yield(value) | Step::Return(value) => Ok(Some(value)),
                };
            }
            _ => {}
        }
        Ok(None)
    }
}

#[pymethods]
impl DrainOp {
    /// The awaitable is its own iterator.
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Itself.
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// One step (what `await` drives).
    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Option<Py<PyAny>>> {
        let py = slf.py();
        Self::step(slf, &py.None().into_bound(py))?.next(py)
    }

    /// Resumes the drain (`value` must be None at the start).
    fn send(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::step(slf, value)?.send(slf.py())
    }

    /// Raises an exception where the drain waits (a task's cancellation).
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let error = thrown(typ, val, tb)?;
        match Self::abandon(slf, Some(&error))? {
            Some(yielded) => Ok(yielded),
            None => Err(error),
        }
    }

    /// Ends the drain.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::abandon(slf, None).map(drop)
    }

    /// The name asyncio's coroutine would have.
    #[getter]
    fn __qualname__(&self) -> &'static str {
        match self.writer {
            Some(_) => "StreamWriter.drain",
            None => "FlowControlMixin._drain_helper",
        }
    }

    /// The short name asyncio's coroutine would have.
    #[getter]
    fn __name__(&self) -> &'static str {
        match self.writer {
            Some(_) => "drain",
            None => "_drain_helper",
        }
    }

    /// Shows Python's GC the objects held.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(writer) = &self.writer {
            visit.call(writer)?;
        }
        visit.call(&self.protocol)?;
        if let State::Waiting(held) | State::Delegating(held) = &self.state {
            visit.call(held)?;
        }
        Ok(())
    }

    /// Lets go of them for the GC.
    fn __clear__(&mut self) {
        self.writer = None;
        self.state = State::Done;
    }
}
