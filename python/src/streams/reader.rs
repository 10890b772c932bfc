//! `_StreamReader`, the native base of `evloop.streams.StreamReader`: the
//! buffer, EOF, the exception, the read waiter and reading flow control,
//! with asyncio's `StreamReader` semantics (CPython 3.11's streams.py).
//!
//! The read methods return [`ReadOp`] awaitables; the waiting and
//! buffer-taking logic they run is in `ops`.

use pyo3::exceptions::{
    PyAssertionError, PyNotImplementedError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyByteArray, PyBytes, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::buffer::Buffer;
use super::ops::{Kind, ReadOp};
use crate::transport::with_bytes;

/// asyncio's `streams._DEFAULT_LIMIT` (64 KiB).
pub(super) const DEFAULT_LIMIT: usize = 1 << 16;

/// The reader's state (asyncio's `StreamReader` attributes).
#[pyclass(module = "evloop._core", name = "_StreamReader", subclass)]
pub(crate) struct StreamReader {
    /// The line length limit; twice it is the buffer size that pauses
    /// reading.
    pub(super) limit: usize,
    pub(super) event_loop: Py<PyAny>,
    pub(super) buffer: Buffer,
    pub(super) eof: bool,
    /// The future a waiting read awaits (`_wait_for_data`'s).
    pub(super) waiter: Option<Py<PyAny>>,
    pub(super) exception: Option<Py<PyAny>>,
    pub(super) transport: Option<Py<PyAny>>,
    /// Reading was paused because the buffer outgrew twice the limit.
    pub(super) paused: bool,
    /// The last read's object, for [`Self::op`] to reuse.
    spare: Option<Py<ReadOp>>,
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.buffer.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

/// Completes `waiter` (a read's future) unless it was cancelled.
fn wake(py: Python<'_>, waiter: Option<(Py<PyAny>, Py<PyAny>)>) -> PyResult<()> {
    match waiter {
        Some((waiter, event_loop)) => super::wake::wake(waiter.bind(py), event_loop.bind(py)),
        None => Ok(()),
    }
}

/// `future.cancelled()`.
fn is_cancelled(future: &Bound<'_, PyAny>) -> PyResult<bool> {
    future
        .call_method0(intern!(future.py(), "cancelled"))?
        .is_truthy()
}

/// `readuntil`'s argument: one bytes-like separator or a tuple of them.
/// Anything else (`None` included) is a TypeError raised when the read is
/// first driven, as asyncio's coroutine raises it, not at the call.
struct Separators(PyResult<Vec<Vec<u8>>>);

impl Separators {
    fn newline() -> Separators {
        Separators(Ok(vec![b"\n".to_vec()]))
    }

    fn one(separator: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        with_bytes(separator, <[u8]>::to_vec).map_err(|_| {
            let name = separator.get_type().name().map(|n| n.to_string());
            PyTypeError::new_err(format!(
                "separator must be a bytes-like object or a tuple of them, not '{}'",
                name.as_deref().unwrap_or("?")
            ))
        })
    }
}

impl<'py> FromPyObject<'py> for Separators {
    fn extract_bound(separator: &Bound<'py, PyAny>) -> PyResult<Separators> {
        if !separator.is_instance_of::<PyTuple>() {
            return Ok(Separators(Self::one(separator).map(|one| vec![one])));
        }
        let several = separator.try_iter()?.map(|one| Self::one(&one?));
        Ok(Separators(several.collect()))
    }
}

impl StreamReader {
    /// `feed_data`: appends bytes-like `data`, wakes the waiting read,
    /// and pauses reading past twice the limit.
    pub(super) fn feed(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        match data.downcast::<PyBytes>() {
            Ok(bytes) => Self::feed_slice(slf, bytes.as_bytes(), Some(bytes)),
            Err(_) => with_bytes(data, |slice| Self::feed_slice(slf, slice, None))?,
        }
    }

    /// `feed` of `data`, which is `object`'s bytes if it is a bytes object.
    fn feed_slice(
        slf: &Bound<'_, Self>,
        data: &[u8],
        object: Option<&Bound<'_, PyBytes>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let (waiter, pause) = {
            let mut r = slf.borrow_mut();
            if r.eof {
                return Err(PyAssertionError::new_err("feed_data after feed_eof"));
            }
            if data.is_empty() {
                return Ok(());
            }
            match object {
                Some(object) => r.buffer.extend_bytes(object),
                None => r.buffer.extend(data),
            }
            let pause = match &r.transport {
                Some(t) if !r.paused && r.buffer.len() > r.limit.saturating_mul(2) => {
                    Some(t.clone_ref(py))
                }
                _ => None,
            };
            (r.take_waiter(py), pause)
        };
        wake(py, waiter)?;
        if let Some(transport) = pause {
            Self::pause(slf, transport.bind(py))?;
        }
        Ok(())
    }

    /// `transport.pause_reading()`, as `feed_data` calls it.
    fn pause(slf: &Bound<'_, Self>, transport: &Bound<'_, PyAny>) -> PyResult<()> {
        match transport.call_method0(intern!(slf.py(), "pause_reading")) {
            Ok(_) => slf.borrow_mut().paused = true,
            // A transport that cannot pause: buffer everything, and stop
            // trying (asyncio forgets it).
            Err(e) if e.is_instance_of::<PyNotImplementedError>(slf.py()) => {
                slf.borrow_mut().transport = None;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// `feed_eof`: no more data; wakes the waiting read.
    pub(super) fn end(slf: &Bound<'_, Self>) -> PyResult<()> {
        let waiter = {
            let mut r = slf.borrow_mut();
            r.eof = true;
            r.take_waiter(slf.py())
        };
        wake(slf.py(), waiter)
    }

    /// `set_exception`: the next read raises `exc`; a waiting one does now.
    pub(super) fn fail(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        let waiter = {
            let mut r = slf.borrow_mut();
            r.exception = Some(exc.clone_ref(py));
            r.waiter.take()
        };
        let Some(waiter) = waiter else { return Ok(()) };
        let waiter = waiter.bind(py);
        if !is_cancelled(waiter)? {
            waiter.call_method1(intern!(py, "set_exception"), (exc,))?;
        }
        Ok(())
    }

    /// `_maybe_resume_transport`: reading resumes once the buffer is back
    /// within the limit.
    pub(super) fn maybe_resume(slf: &Bound<'_, Self>) -> PyResult<()> {
        let transport = {
            let mut r = slf.borrow_mut();
            if !r.paused || r.buffer.len() > r.limit {
                return Ok(());
            }
            r.paused = false;
            r.transport.as_ref().map(|t| t.clone_ref(slf.py()))
        };
        resume(slf.py(), transport)
    }

    /// The waiting read's future, taken, with the loop to wake it on.
    fn take_waiter(&mut self, py: Python<'_>) -> Option<(Py<PyAny>, Py<PyAny>)> {
        let waiter = self.waiter.take()?;
        Some((waiter, self.event_loop.clone_ref(py)))
    }

    /// The exception reads raise, as a `PyErr`.
    pub(super) fn error(&self, py: Python<'_>) -> Option<PyErr> {
        self.exception
            .as_ref()
            .map(|e| PyErr::from_value(e.bind(py).clone()))
    }

    /// A read of `kind`: the last one's object again when nothing but
    /// this reader holds it any more (it is then invisible, and a read per
    /// message saves an allocation), else a new one, kept for next time.
    fn op(slf: &Bound<'_, Self>, kind: Kind) -> PyResult<Py<ReadOp>> {
        let py = slf.py();
        let mut kind = kind;
        let spare = slf.borrow_mut().spare.take();
        if let Some(spare) = spare.filter(|s| s.get_refcnt(py) == 1) {
            match spare.bind(py).borrow_mut().restart(kind) {
                Ok(()) => {
                    slf.borrow_mut().spare = Some(spare.clone_ref(py));
                    return Ok(spare);
                }
                Err(unused) => kind = unused,
            }
        }
        let op = Py::new(py, ReadOp::new(slf.clone().unbind(), kind))?;
        slf.borrow_mut().spare = Some(op.clone_ref(py));
        Ok(op)
    }
}

/// `transport.resume_reading()`, if there is a transport.
pub(super) fn resume(py: Python<'_>, transport: Option<Py<PyAny>>) -> PyResult<()> {
    if let Some(transport) = transport {
        transport.call_method0(py, intern!(py, "resume_reading"))?;
    }
    Ok(())
}

/// The running loop, or the policy's (asyncio's `events._get_event_loop()`),
/// for a constructor not given one.
pub(super) fn current_loop(py: Python<'_>) -> PyResult<Py<PyAny>> {
    static GET: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
    let get = GET.get_or_try_init(py, || {
        let events = py.import("asyncio.events")?;
        // 3.10's first releases have no _get_event_loop.
        match events.getattr_opt("_get_event_loop")? {
            Some(get) => Ok::<_, PyErr>(get.unbind()),
            None => Ok(events.getattr("get_event_loop")?.unbind()),
        }
    })?;
    get.call0(py)
}

#[pymethods]
impl StreamReader {
    /// `StreamReader(limit=2**16, loop=None)`.
    #[new]
    #[pyo3(signature = (limit = DEFAULT_LIMIT as i64, r#loop = None))]
    fn new(py: Python<'_>, limit: i64, r#loop: Option<Py<PyAny>>) -> PyResult<Self> {
        if limit <= 0 {
            return Err(PyValueError::new_err("Limit cannot be <= 0"));
        }
        let event_loop = match r#loop {
            Some(l) if !l.is_none(py) => l,
            _ => current_loop(py)?,
        };
        Ok(StreamReader {
            limit: usize::try_from(limit).unwrap_or(usize::MAX / 4),
            event_loop,
            buffer: Buffer::default(),
            eof: false,
            waiter: None,
            exception: None,
            transport: None,
            paused: false,
            spare: None,
        })
    }

    /// The exception set by `set_exception`, or None.
    fn exception(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.exception.as_ref().map(|e| e.clone_ref(py))
    }

    /// Makes reads raise `exc` (a waiting one at once).
    fn set_exception(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        Self::fail(slf, exc)
    }

    /// The transport to pause and resume (set once).
    fn set_transport(&mut self, transport: Py<PyAny>) -> PyResult<()> {
        if self.transport.is_some() {
            return Err(PyAssertionError::new_err("Transport already set"));
        }
        self.transport = Some(transport);
        Ok(())
    }

    /// Appends bytes-like `data` for the reads.
    fn feed_data(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::feed(slf, data)
    }

    /// Marks the end of the data.
    fn feed_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::end(slf)
    }

    /// True once `feed_eof` was called and the buffer is empty.
    fn at_eof(&self) -> bool {
        self.eof && self.buffer.is_empty()
    }

    /// Up to `n` bytes (`n < 0`: everything until EOF).
    #[pyo3(signature = (n = -1))]
    fn read(slf: &Bound<'_, Self>, n: isize) -> PyResult<Py<ReadOp>> {
        let kind = match usize::try_from(n) {
            Ok(n) => Kind::Read(n),
            Err(_) => Kind::ReadAll(Vec::new()),
        };
        Self::op(slf, kind)
    }

    /// One line, ending with b'\n' unless EOF came first.
    fn readline(slf: &Bound<'_, Self>) -> PyResult<Py<ReadOp>> {
        Self::op(slf, Kind::line(false))
    }

    /// The data up to and including `separator` (bytes-like, or, as from
    /// Python 3.13, a tuple of them: the match that ends first).
    #[pyo3(signature = (separator = Separators::newline()))]
    fn readuntil(slf: &Bound<'_, Self>, separator: Separators) -> PyResult<Py<ReadOp>> {
        let kind = match separator.0 {
            Ok(separators) => Kind::until(separators),
            Err(error) => Kind::Refused(Some(error)),
        };
        Self::op(slf, kind)
    }

    /// Exactly `n` bytes.
    fn readexactly(slf: &Bound<'_, Self>, n: isize) -> PyResult<Py<ReadOp>> {
        Self::op(slf, Kind::Exactly(n))
    }

    /// The reader: `async for` reads lines.
    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The next line; StopAsyncIteration at EOF.
    fn __anext__(slf: &Bound<'_, Self>) -> PyResult<Py<ReadOp>> {
        Self::op(slf, Kind::line(true))
    }

    /// Wakes the waiting read (asyncio's `_wakeup_waiter`).
    fn _wakeup_waiter(slf: &Bound<'_, Self>) -> PyResult<()> {
        let waiter = slf.borrow_mut().take_waiter(slf.py());
        wake(slf.py(), waiter)
    }

    /// Resumes reading if the buffer is within the limit.
    fn _maybe_resume_transport(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::maybe_resume(slf)
    }

    /// The limit (asyncio's attribute).
    #[getter]
    fn _limit(&self) -> usize {
        self.limit
    }

    /// The loop.
    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    /// A copy of the unread bytes (asyncio's is the buffer itself).
    #[getter]
    fn _buffer<'py>(&self, py: Python<'py>) -> Bound<'py, PyByteArray> {
        PyByteArray::new(py, self.buffer.as_slice())
    }

    /// Whether `feed_eof` was called.
    #[getter]
    fn _eof(&self) -> bool {
        self.eof
    }

    /// The waiting read's future, if one waits.
    #[getter]
    fn _waiter(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.waiter.as_ref().map(|w| w.clone_ref(py))
    }

    /// The exception reads raise, if set.
    #[getter]
    fn _exception(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.exception(py)
    }

    /// The transport reading is paused and resumed on.
    #[getter]
    fn _transport(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.transport.as_ref().map(|t| t.clone_ref(py))
    }

    /// Whether the reader paused the transport's reading.
    #[getter]
    fn _paused(&self) -> bool {
        self.paused
    }

    /// asyncio's repr: `<StreamReader 3 bytes eof ...>`.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut info = vec!["StreamReader".to_owned()];
        if !self.buffer.is_empty() {
            info.push(format!("{} bytes", self.buffer.len()));
        }
        if self.eof {
            info.push("eof".to_owned());
        }
        if self.limit != DEFAULT_LIMIT {
            info.push(format!("limit={}", self.limit));
        }
        for (name, value) in [
            ("waiter", &self.waiter),
            ("exception", &self.exception),
            ("transport", &self.transport),
        ] {
            // asyncio shows each one that is truthy.
            if let Some(v) = value.as_ref().map(|v| v.bind(py)) {
                if v.is_truthy()? {
                    info.push(format!("{name}={}", v.repr()?));
                }
            }
        }
        if self.paused {
            info.push("paused".to_owned());
        }
        Ok(format!("<{}>", info.join(" ")))
    }

    /// Shows Python's GC the objects held.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.event_loop)?;
        let held = [&self.waiter, &self.exception, &self.transport];
        for held in held.into_iter().flatten() {
            visit.call(held)?;
        }
        if let Some(spare) = &self.spare {
            visit.call(spare)?;
        }
        Ok(())
    }

    /// Lets go of them for the GC.
    fn __clear__(&mut self) {
        self.spare = None;
        self.waiter = None;
        self.exception = None;
        self.transport = None;
    }
}

/// `bytes` of `data`.
pub(super) fn bytes(py: Python<'_>, data: &[u8]) -> Py<PyAny> {
    PyBytes::new(py, data).into_any().unbind()
}

/// The RuntimeError of a second read waiting at once.
pub(super) fn busy(func_name: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "{func_name}() called while another coroutine is already waiting for incoming data"
    ))
}
