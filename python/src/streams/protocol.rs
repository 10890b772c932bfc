//! `_StreamProtocol`, the native base of
//! `evloop.streams.StreamReaderProtocol`: the protocol callbacks that feed
//! the reader (`data_received`, `eof_received`, `connection_lost`) and
//! asyncio's `FlowControlMixin` (`pause_writing`, `resume_writing`, the
//! drain waiters), with CPython 3.11's semantics.
//!
//! `connection_made` (which makes the server side's writer and runs
//! `client_connected_cb`) and `_replace_writer` are Python, in
//! `_streams.py`: they run once per connection.

use pyo3::exceptions::PyAssertionError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::{PyTraverseError, PyVisit};

use super::reader::{current_loop, StreamReader};
use super::writer::DrainOp;

/// The protocol's state (asyncio's `StreamReaderProtocol` attributes).
#[pyclass(module = "evloop._core", name = "_StreamProtocol", subclass)]
pub(crate) struct StreamProtocol {
    #[pyo3(get, name = "_loop")]
    event_loop: Py<PyAny>,
    /// Until `connection_lost`; a native reader is fed without a call.
    reader: Option<Py<PyAny>>,
    #[pyo3(get, set, name = "_client_connected_cb")]
    client_connected_cb: Option<Py<PyAny>>,
    #[pyo3(get, set, name = "_stream_writer")]
    writer: Option<Py<PyAny>>,
    #[pyo3(get, set, name = "_task")]
    task: Option<Py<PyAny>>,
    #[pyo3(get, set, name = "_transport")]
    transport: Option<Py<PyAny>>,
    #[pyo3(get, set, name = "_over_ssl")]
    over_ssl: bool,
    /// What `wait_closed` awaits.
    #[pyo3(get, name = "_closed")]
    closed: Py<PyAny>,
    /// Between `pause_writing` and `resume_writing`.
    #[pyo3(get, name = "_paused")]
    pub(super) paused: bool,
    #[pyo3(get, name = "_connection_lost")]
    pub(super) lost: bool,
    /// The futures of the drains waiting for `resume_writing`.
    drain_waiters: Vec<Py<PyAny>>,
}

impl std::fmt::Debug for StreamProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamProtocol")
            .field("paused", &self.paused)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

/// `future.done()`.
fn is_done(future: &Bound<'_, PyAny>) -> PyResult<bool> {
    future
        .call_method0(intern!(future.py(), "done"))?
        .is_truthy()
}

/// Completes `future` with None, or with `exc` if there is one.
fn settle(future: &Bound<'_, PyAny>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let py = future.py();
    match exc {
        None => future.call_method1(intern!(py, "set_result"), (py.None(),))?,
        Some(exc) => future.call_method1(intern!(py, "set_exception"), (exc,))?,
    };
    Ok(())
}

/// asyncio's debug-mode log line for a flow-control event.
fn log_debug(slf: &Bound<'_, StreamProtocol>, message: &str) -> PyResult<()> {
    static LOGGER: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
    let py = slf.py();
    let event_loop = slf.borrow().event_loop.clone_ref(py);
    if !event_loop
        .call_method0(py, intern!(py, "get_debug"))?
        .is_truthy(py)?
    {
        return Ok(());
    }
    let logger = LOGGER.get_or_try_init(py, || {
        py.import("asyncio.log")?
            .getattr("logger")
            .map(Bound::unbind)
    })?;
    logger.call_method1(py, intern!(py, "debug"), (message, slf))?;
    Ok(())
}

impl StreamProtocol {
    /// The loop, for a drain's future.
    pub(super) fn event_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    /// Registers a drain's future for `resume_writing`.
    pub(super) fn add_waiter(&mut self, future: Py<PyAny>) {
        self.drain_waiters.push(future);
    }

    /// Forgets a drain's future (asyncio's `finally: remove(waiter)`).
    pub(super) fn remove_waiter(&mut self, future: &Py<PyAny>) {
        if let Some(i) = self.drain_waiters.iter().position(|w| w.is(future)) {
            self.drain_waiters.remove(i);
        }
    }

    /// The reader, until the connection is lost.
    fn reader(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.reader.as_ref().map(|r| r.clone_ref(py))
    }

    /// The drain futures to complete, if writing was paused.
    fn paused_waiters(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        if !self.paused {
            return Vec::new();
        }
        self.drain_waiters.iter().map(|w| w.clone_ref(py)).collect()
    }
}

/// Wakes each future not done yet (with `exc` if there is one).
fn wake_all(
    py: Python<'_>,
    waiters: Vec<Py<PyAny>>,
    exc: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    for waiter in waiters {
        let waiter = waiter.bind(py);
        if !is_done(waiter)? {
            settle(waiter, exc)?;
        }
    }
    Ok(())
}

#[pymethods]
impl StreamProtocol {
    /// `StreamReaderProtocol(stream_reader, client_connected_cb=None, loop=None)`.
    #[new]
    #[pyo3(signature = (stream_reader, client_connected_cb = None, r#loop = None))]
    fn new(
        py: Python<'_>,
        stream_reader: Option<Py<PyAny>>,
        client_connected_cb: Option<Py<PyAny>>,
        r#loop: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let event_loop = match r#loop {
            Some(l) if !l.is_none(py) => l,
            _ => current_loop(py)?,
        };
        let closed = event_loop.call_method0(py, intern!(py, "create_future"))?;
        Ok(StreamProtocol {
            event_loop,
            reader: stream_reader.filter(|r| !r.is_none(py)),
            client_connected_cb: client_connected_cb.filter(|c| !c.is_none(py)),
            writer: None,
            task: None,
            transport: None,
            over_ssl: false,
            closed,
            paused: false,
            lost: false,
            drain_waiters: Vec::new(),
        })
    }

    /// The reader (None once the connection is lost).
    #[getter]
    fn _stream_reader(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.reader(py)
    }

    /// Feeds `data` to the reader: the hot path, no Python frame for a
    /// native reader.
    fn data_received(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::receive(slf, data)
    }

    /// EOF for the reader; True keeps the transport open for writing
    /// (not over TLS, where it would have no effect).
    fn eof_received(&self, py: Python<'_>) -> PyResult<bool> {
        if let Some(reader) = self.reader(py) {
            feed_eof(reader.bind(py))?;
        }
        Ok(!self.over_ssl)
    }

    /// The transport's buffer is full: drains wait.
    fn pause_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        {
            let mut p = slf.borrow_mut();
            if p.paused {
                return Err(PyAssertionError::new_err(()));
            }
            p.paused = true;
        }
        log_debug(slf, "%r pauses writing")
    }

    /// The transport's buffer drained: waiting drains return.
    fn resume_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let waiters = {
            let mut p = slf.borrow_mut();
            if !p.paused {
                return Err(PyAssertionError::new_err(()));
            }
            p.paused = false;
            p.drain_waiters
                .iter()
                .map(|w| w.clone_ref(py))
                .collect::<Vec<_>>()
        };
        log_debug(slf, "%r resumes writing")?;
        wake_all(py, waiters, None)
    }

    /// EOF or `exc` for the reader, `wait_closed` returns (or raises),
    /// waiting drains wake; then the protocol lets go of the connection.
    #[pyo3(signature = (exc))]
    fn connection_lost(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let exc = exc.filter(|e| !e.is_none());
        let (reader, closed) = {
            let p = slf.borrow();
            (p.reader(py), p.closed.clone_ref(py))
        };
        if let Some(reader) = reader {
            match exc {
                None => feed_eof(reader.bind(py))?,
                Some(exc) => set_exception(reader.bind(py), exc)?,
            }
        }
        let closed = closed.bind(py);
        if !is_done(closed)? {
            settle(closed, exc)?;
        }
        let waiters = {
            let mut p = slf.borrow_mut();
            p.lost = true;
            p.paused_waiters(py)
        };
        wake_all(py, waiters, exc)?;
        let mut p = slf.borrow_mut();
        p.reader = None;
        p.writer = None;
        p.task = None;
        p.transport = None;
        Ok(())
    }

    /// What `StreamWriter.drain` waits for after its own checks.
    fn _drain_helper(slf: &Bound<'_, Self>) -> PyResult<Py<DrainOp>> {
        Py::new(slf.py(), DrainOp::helper(slf.clone().into_any().unbind()))
    }

    /// The future `wait_closed` awaits.
    fn _get_close_waiter(&self, py: Python<'_>, stream: &Bound<'_, PyAny>) -> Py<PyAny> {
        let _ = stream;
        self.closed.clone_ref(py)
    }

    /// Shows Python's GC the objects held.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.event_loop)?;
        visit.call(&self.closed)?;
        let held = [
            &self.reader,
            &self.client_connected_cb,
            &self.writer,
            &self.task,
            &self.transport,
        ];
        for held in held.into_iter().flatten() {
            visit.call(held)?;
        }
        for waiter in &self.drain_waiters {
            visit.call(waiter)?;
        }
        Ok(())
    }

    /// Lets go of them for the GC.
    fn __clear__(&mut self) {
        self.reader = None;
        self.client_connected_cb = None;
        self.writer = None;
        self.task = None;
        self.transport = None;
        self.drain_waiters.clear();
    }
}

/// `reader.feed_eof()`, without a call for a native reader.
fn feed_eof(reader: &Bound<'_, PyAny>) -> PyResult<()> {
    match reader.downcast::<StreamReader>() {
        Ok(native) => StreamReader::end(native),
        Err(_) => reader
            .call_method0(intern!(reader.py(), "feed_eof"))
            .map(drop),
    }
}

/// `reader.set_exception(exc)`, without a call for a native reader.
fn set_exception(reader: &Bound<'_, PyAny>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
    match reader.downcast::<StreamReader>() {
        Ok(native) => StreamReader::fail(native, exc.clone().unbind()),
        Err(_) => reader
            .call_method1(intern!(reader.py(), "set_exception"), (exc,))
            .map(drop),
    }
}

impl StreamProtocol {
    /// `protocol`, if `method` (its `data_received`) is this class's own,
    /// not a subclass's or an instance's: evloop's transports then call
    /// [`StreamProtocol::receive`] without Python's call protocol.
    pub(crate) fn own_method(
        protocol: &Bound<'_, PyAny>,
        method: &Bound<'_, PyAny>,
    ) -> Option<Py<StreamProtocol>> {
        let py = protocol.py();
        let native = protocol.downcast::<StreamProtocol>().ok()?;
        let own = py
            .get_type::<StreamProtocol>()
            .getattr(intern!(py, "data_received"))
            .and_then(|unbound| unbound.call_method1(intern!(py, "__get__"), (protocol,)))
            .ok()?;
        method.eq(own).ok()?.then(|| native.clone().unbind())
    }

    /// `data_received(data)`, also called from Rust.
    pub(crate) fn receive(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let reader = slf.try_borrow()?.reader.as_ref().map(|r| r.clone_ref(py));
        let Some(reader) = reader else {
            return Ok(());
        };
        let reader = reader.into_bound(py);
        match reader.downcast::<StreamReader>() {
            Ok(native) => StreamReader::feed(native, data),
            Err(_) => reader
                .call_method1(intern!(py, "feed_data"), (data,))
                .map(drop),
        }
    }
}
