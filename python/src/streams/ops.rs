//! `_ReadOp`: what `StreamReader.read()`, `readline()`, `readuntil()`,
//! `readexactly()` and `__anext__()` return. An awaitable that runs the
//! read when first driven: from the buffer at once if it can (the
//! iterator raises `StopIteration(data)` on its first step, no future, no
//! task step), else by yielding the future that `feed_data`, `feed_eof` or
//! `set_exception` completes, and taking the data when resumed.
//!
//! The steps are those of asyncio's coroutines, check for check (CPython
//! 3.11's `StreamReader`): the exception is checked only before the first
//! wait, `readuntil`'s scan offset is kept across waits, `read(n)` takes
//! what is there after its one wait.

use pyo3::exceptions::{
    PyAssertionError, PyRuntimeError, PyStopAsyncIteration, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;
use pyo3::{PyTraverseError, PyVisit};

use super::buffer::Buffer;
use super::reader::{busy, bytes, resume, StreamReader};
use super::wake::new_future;
use super::{cancel, thrown, Step};

/// Which read, and what it kept across waits.
#[derive(Debug)]
pub(super) enum Kind {
    /// `read(n)`, `n >= 0`.
    Read(usize),
    /// `read(-1)`: the blocks read so far.
    ReadAll(Vec<u8>),
    /// `readuntil`, `readline`, `__anext__`: the separators, shortest
    /// first, and where the scan resumes.
    Until {
        separators: Vec<Vec<u8>>,
        offset: usize,
        line: Mode,
    },
    /// `readexactly(n)` (checked when first driven, as asyncio does).
    Exactly(isize),
    /// `readuntil` with an argument it refuses: the error, raised when
    /// first driven.
    Refused(Option<PyErr>),
}

/// How `readline` and `__anext__` differ from `readuntil(b'\n')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `readuntil`: its errors as they are.
    Until,
    /// `readline`: a partial line at EOF is returned, an over-long one is
    /// dropped and raises ValueError.
    Line,
    /// `__anext__`: `readline`, and StopAsyncIteration for b''.
    Iter,
}

impl Kind {
    /// `readline()` (`iter`: `__anext__()`).
    pub(super) fn line(iter: bool) -> Kind {
        let line = if iter { Mode::Iter } else { Mode::Line };
        Kind::Until {
            separators: vec![b"\n".to_vec()],
            offset: 0,
            line,
        }
    }

    /// `readuntil(separator)`; several separators (Python 3.13's tuple):
    /// the match that ends first wins.
    pub(super) fn until(mut separators: Vec<Vec<u8>>) -> Kind {
        // Stable: of equally long ones, the first given is tried first.
        separators.sort_by_key(Vec::len);
        Kind::Until {
            separators,
            offset: 0,
            line: Mode::Until,
        }
    }

    /// The coroutine's `__qualname__` in asyncio.
    fn name(&self) -> &'static str {
        match self {
            Kind::Read(_) | Kind::ReadAll(_) => "StreamReader.read",
            Kind::Until {
                line: Mode::Until, ..
            } => "StreamReader.readuntil",
            Kind::Until {
                line: Mode::Line, ..
            } => "StreamReader.readline",
            Kind::Until {
                line: Mode::Iter, ..
            } => "StreamReader.__anext__",
            Kind::Exactly(_) => "StreamReader.readexactly",
            Kind::Refused(_) => "StreamReader.readuntil",
        }
    }
}

/// A step's outcome: the read's value, or a wait for data (named as
/// asyncio's `_wait_for_data` names the caller).
enum Poll {
    Ready(Py<PyAny>),
    Wait(&'static str),
}

/// `readuntil`'s failures before they become exceptions (`readline`
/// turns them into a value or a ValueError).
enum Fail {
    Incomplete(Py<PyAny>, Option<usize>),
    Limit(&'static str, usize),
    Raise(PyErr),
}

impl From<PyErr> for Fail {
    fn from(error: PyErr) -> Fail {
        Fail::Raise(error)
    }
}

impl Fail {
    /// The exception `readuntil` raises for it.
    fn into_err(self, py: Python<'_>) -> PyErr {
        match self {
            Fail::Incomplete(partial, expected) => incomplete(py, partial, expected),
            Fail::Limit(message, consumed) => limit_overrun(py, message, consumed),
            Fail::Raise(error) => error,
        }
    }
}

/// `asyncio.IncompleteReadError(partial, expected)`.
fn incomplete(py: Python<'_>, partial: Py<PyAny>, expected: Option<usize>) -> PyErr {
    static CLASS: GILOnceCell<Py<PyType>> = GILOnceCell::new();
    raise(py, &CLASS, "IncompleteReadError", (partial, expected))
}

/// `asyncio.LimitOverrunError(message, consumed)`.
fn limit_overrun(py: Python<'_>, message: &str, consumed: usize) -> PyErr {
    static CLASS: GILOnceCell<Py<PyType>> = GILOnceCell::new();
    raise(py, &CLASS, "LimitOverrunError", (message, consumed))
}

/// `asyncio.exceptions.<name>(*args)`, as an error to return.
fn raise<'py>(
    py: Python<'py>,
    class: &GILOnceCell<Py<PyType>>,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyErr {
    match class
        .import(py, "asyncio.exceptions", name)
        .and_then(|c| c.call1(args))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(error) => error,
    }
}

/// Takes up to `n` bytes (asyncio's `bytes(buffer[:n]); del buffer[:n]`),
/// then resumes reading if the buffer is back within the limit.
fn take(reader: &Bound<'_, StreamReader>, n: usize) -> PyResult<Py<PyAny>> {
    let data = {
        let mut r = reader.borrow_mut();
        match r.buffer.take_whole(n) {
            Some(whole) => whole.into_any(),
            None => {
                let n = n.min(r.buffer.len());
                let data = bytes(reader.py(), &r.buffer.as_slice()[..n]);
                r.buffer.consume(n);
                data
            }
        }
    };
    StreamReader::maybe_resume(reader)?;
    Ok(data)
}

/// Runs the read from where it is (`resumed`: after a wait).
fn advance(reader: &Bound<'_, StreamReader>, kind: &mut Kind, resumed: bool) -> PyResult<Poll> {
    match kind {
        Kind::Read(n) => read(reader, *n, resumed),
        Kind::ReadAll(blocks) => read_all(reader, blocks, resumed),
        Kind::Until {
            separators,
            offset,
            line,
        } => {
            let outcome = until(reader, separators, offset, resumed);
            finish_line(reader, separators, *line, outcome)
        }
        Kind::Exactly(n) => exactly(reader, *n, resumed),
        Kind::Refused(error) => Err(error
            .take()
            .unwrap_or_else(|| PyRuntimeError::new_err("the read has already failed"))),
    }
}

/// `read(n)`, `n >= 0`.
fn read(reader: &Bound<'_, StreamReader>, n: usize, resumed: bool) -> PyResult<Poll> {
    let py = reader.py();
    if !resumed {
        let r = reader.borrow();
        if let Some(error) = r.error(py) {
            return Err(error);
        }
        if n == 0 {
            return Ok(Poll::Ready(bytes(py, b"")));
        }
        if r.buffer.is_empty() && !r.eof {
            return Ok(Poll::Wait("read"));
        }
    }
    // After its one wait, read(n) takes what is there (maybe nothing).
    Ok(Poll::Ready(take(reader, n)?))
}

/// `read(-1)`: asyncio's loop of `read(limit)` until one returns b''.
fn read_all(
    reader: &Bound<'_, StreamReader>,
    blocks: &mut Vec<u8>,
    resumed: bool,
) -> PyResult<Poll> {
    let py = reader.py();
    let limit = reader.borrow().limit;
    if resumed && !take_block(reader, blocks, limit)? {
        return Ok(Poll::Ready(bytes(py, blocks)));
    }
    loop {
        {
            let r = reader.borrow();
            if let Some(error) = r.error(py) {
                return Err(error);
            }
            if r.buffer.is_empty() && !r.eof {
                return Ok(Poll::Wait("read"));
            }
        }
        if !take_block(reader, blocks, limit)? {
            return Ok(Poll::Ready(bytes(py, blocks)));
        }
    }
}

/// One `read(limit)` block onto `blocks`; false if it was empty.
fn take_block(
    reader: &Bound<'_, StreamReader>,
    blocks: &mut Vec<u8>,
    limit: usize,
) -> PyResult<bool> {
    let took = {
        let mut r = reader.borrow_mut();
        let n = limit.min(r.buffer.len());
        blocks.extend_from_slice(&r.buffer.as_slice()[..n]);
        r.buffer.consume(n);
        n > 0
    };
    StreamReader::maybe_resume(reader)?;
    Ok(took)
}

/// `readuntil`'s checks before its first scan.
fn check_separators(separators: &[Vec<u8>]) -> Result<(), Fail> {
    let message = match separators.first() {
        None => "Separator should contain at least one element",
        Some(shortest) if shortest.is_empty() => "Separator should be at least one-byte string",
        Some(_) => return Ok(()),
    };
    Err(PyValueError::new_err(message).into())
}

/// Where the separator that ends first starts and ends, at or after
/// `offset`.
fn find_first(buffer: &Buffer, separators: &[Vec<u8>], offset: usize) -> Option<(usize, usize)> {
    let mut found: Option<(usize, usize)> = None;
    for separator in separators {
        if let Some(start) = buffer.find(separator, offset) {
            let end = start + separator.len();
            if found.is_none_or(|(_, first_end)| end < first_end) {
                found = Some((start, end));
            }
        }
    }
    found
}

/// `readuntil(separator)`'s scan, from `offset` (kept across waits).
fn until(
    reader: &Bound<'_, StreamReader>,
    separators: &[Vec<u8>],
    offset: &mut usize,
    resumed: bool,
) -> Result<Poll, Fail> {
    let py = reader.py();
    if !resumed {
        check_separators(separators)?;
        if let Some(error) = reader.borrow().error(py) {
            return Err(error.into());
        }
    }
    let shortest = separators.first().map_or(1, Vec::len);
    let longest = separators.last().map_or(1, Vec::len);
    let ((start, end), limit) = {
        let mut r = reader.borrow_mut();
        let buflen = r.buffer.len();
        let mut found = None;
        // asyncio: `if buflen - offset >= seplen` (another reader may have
        // taken bytes below the offset: then no scan).
        if buflen >= *offset && buflen - *offset >= shortest {
            found = find_first(&r.buffer, separators, *offset);
            if found.is_none() {
                *offset = (buflen + 1).saturating_sub(longest);
                if *offset > r.limit {
                    let message = "Separator is not found, and chunk exceed the limit";
                    return Err(Fail::Limit(message, *offset));
                }
            }
        }
        let Some(found) = found else {
            // A separator completed by the last chunk counts even at EOF:
            // EOF is checked after the scan.
            if r.eof {
                let chunk = bytes(py, r.buffer.as_slice());
                r.buffer.clear();
                return Err(Fail::Incomplete(chunk, None));
            }
            return Ok(Poll::Wait("readuntil"));
        };
        (found, r.limit)
    };
    if start > limit {
        let message = "Separator is found, but chunk is longer than limit";
        return Err(Fail::Limit(message, start));
    }
    Ok(Poll::Ready(take(reader, end)?))
}

/// `readline`'s and `__anext__`'s handling of `readuntil`'s outcome.
fn finish_line(
    reader: &Bound<'_, StreamReader>,
    separators: &[Vec<u8>],
    line: Mode,
    outcome: Result<Poll, Fail>,
) -> PyResult<Poll> {
    let py = reader.py();
    let value = match (line, outcome) {
        (_, Ok(Poll::Wait(name))) => return Ok(Poll::Wait(name)),
        (Mode::Until, Ok(ready)) => return Ok(ready),
        (Mode::Until, Err(fail)) => return Err(fail.into_err(py)),
        (_, Ok(Poll::Ready(value))) => value,
        (_, Err(Fail::Incomplete(partial, _))) => partial,
        (_, Err(Fail::Limit(message, consumed))) => {
            // readline's one separator.
            let separator = separators.first().map_or(&[][..], Vec::as_slice);
            drop_long_line(reader, separator, consumed)?;
            return Err(PyValueError::new_err(message));
        }
        (_, Err(Fail::Raise(error))) => return Err(error),
    };
    if line == Mode::Iter && value.bind(py).len()? == 0 {
        return Err(PyStopAsyncIteration::new_err(()));
    }
    Ok(Poll::Ready(value))
}

/// `readline`'s recovery from a line over the limit: the line and its
/// separator are dropped if the separator is there, else the whole buffer.
fn drop_long_line(
    reader: &Bound<'_, StreamReader>,
    separator: &[u8],
    consumed: usize,
) -> PyResult<()> {
    {
        let mut r = reader.borrow_mut();
        if r.buffer.has_at(separator, consumed) {
            r.buffer.consume(consumed + separator.len());
        } else {
            r.buffer.clear();
        }
    }
    StreamReader::maybe_resume(reader)
}

/// `readexactly(n)`.
fn exactly(reader: &Bound<'_, StreamReader>, n: isize, resumed: bool) -> PyResult<Poll> {
    let py = reader.py();
    if !resumed {
        if n < 0 {
            let message = "readexactly size can not be less than zero";
            return Err(PyValueError::new_err(message));
        }
        if let Some(error) = reader.borrow().error(py) {
            return Err(error);
        }
    }
    let n = n.unsigned_abs();
    if n == 0 {
        return Ok(Poll::Ready(bytes(py, b"")));
    }
    {
        let mut r = reader.borrow_mut();
        if r.buffer.len() < n {
            if !r.eof {
                return Ok(Poll::Wait("readexactly"));
            }
            let partial = bytes(py, r.buffer.as_slice());
            r.buffer.clear();
            return Err(incomplete(py, partial, Some(n)));
        }
    }
    Ok(Poll::Ready(take(reader, n)?))
}

/// asyncio's `_wait_for_data` up to its `await`: one waiter at a time,
/// reading resumed if paused (a read needing more than the limit would
/// wait forever otherwise), and the waiter future to yield.
fn wait<'py>(reader: &Bound<'py, StreamReader>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let py = reader.py();
    let (event_loop, transport) = {
        let mut r = reader.borrow_mut();
        if r.waiter.is_some() {
            return Err(busy(name));
        }
        if r.eof {
            return Err(PyAssertionError::new_err("_wait_for_data after EOF"));
        }
        let transport = if r.paused {
            r.paused = false;
            r.transport.as_ref().map(|t| t.clone_ref(py))
        } else {
            None
        };
        (r.event_loop.clone_ref(py), transport)
    };
    resume(py, transport)?;
    let future = new_future(event_loop.bind(py))?;
    reader.borrow_mut().waiter = Some(future.clone().unbind());
    Ok(future)
}

/// Where the read is.
#[derive(Debug)]
enum State {
    /// Not driven yet.
    Fresh,
    /// Yielded this future (the reader's waiter).
    Waiting(Py<PyAny>),
    /// Returned, raised or closed.
    Done,
}

/// A pending stream read: a coroutine-like awaitable (`__await__`,
/// `send`, `throw`, `close`), accepted by `asyncio.create_task` too.
#[pyclass(module = "evloop._core", name = "_ReadOp")]
#[derive(Debug)]
pub(crate) struct ReadOp {
    reader: Py<StreamReader>,
    kind: Kind,
    state: State,
}

impl ReadOp {
    /// A read of `kind` on `reader`, not started.
    pub(super) fn new(reader: Py<StreamReader>, kind: Kind) -> ReadOp {
        ReadOp {
            reader,
            kind,
            state: State::Fresh,
        }
    }

    /// Makes this object, if its read is over, a new read of `kind`.
    pub(super) fn restart(&mut self, kind: Kind) -> Result<(), Kind> {
        if !matches!(self.state, State::Done) {
            return Err(kind);
        }
        self.kind = kind;
        self.state = State::Fresh;
        Ok(())
    }

    /// One step: the read's value, or the future to wait on.
    fn step(slf: &Bound<'_, Self>, value: Option<&Bound<'_, PyAny>>) -> PyResult<Step> {
        let py = slf.py();
        let mut guard = slf.borrow_mut();
        let op = &mut *guard;
        let reader = op.reader.bind(py).clone();
        let resumed = match std::mem::replace(&mut op.state, State::Done) {
            State::Fresh => {
                if value.is_some_and(|v| !v.is_none()) {
                    let message = "can't send non-None value to a just-started coroutine";
                    return Err(PyTypeError::new_err(message));
                }
                false
            }
            // asyncio's `finally: self._waiter = None` after the await.
            State::Waiting(_) => {
                reader.borrow_mut().waiter = None;
                true
            }
            State::Done => {
                let message = "cannot reuse already awaited coroutine";
                return Err(PyRuntimeError::new_err(message));
            }
        };
        match advance(&reader, &mut op.kind, resumed)? {
            Poll::Ready(value) => Ok(Step::Return(value)),
            Poll::Wait(name) => {
                let future = wait(&reader, name)?;
                op.state = State::Waiting(future.clone().unbind());
                Ok(Step::Yield(future.unbind()))
            }
        }
    }

    /// Ends the read where it is: a waiting one lets go of the reader's
    /// waiter and cancels its future.
    fn abandon(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (reader, state) = {
            let mut op = slf.borrow_mut();
            let state = std::mem::replace(&mut op.state, State::Done);
            (op.reader.clone_ref(py), state)
        };
        if let State::Waiting(future) = state {
            reader.bind(py).borrow_mut().waiter = None;
            cancel(future.bind(py))?;
        }
        Ok(())
    }
}

#[pymethods]
impl ReadOp {
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
        Self::step(slf, None)?.next(slf.py())
    }

    /// Resumes the read (`value` must be None at the start).
    fn send(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::step(slf, Some(value))?.send(slf.py())
    }

    /// Raises an exception where the read waits (a task's cancellation):
    /// the read ends, the buffer untouched.
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let error = thrown(typ, val, tb)?;
        Self::abandon(slf)?;
        Err(error)
    }

    /// Ends the read (a waiting one stops waiting).
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::abandon(slf)
    }

    /// The name asyncio's coroutine would have.
    #[getter]
    fn __qualname__(&self) -> &'static str {
        self.kind.name()
    }

    /// The short name asyncio's coroutine would have.
    #[getter]
    fn __name__(&self) -> &'static str {
        self.kind.name().rsplit('.').next().unwrap_or_default()
    }

    /// Shows Python's GC the objects held.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.reader)?;
        if let State::Waiting(future) = &self.state {
            visit.call(future)?;
        }
        Ok(())
    }

    /// Lets go of them for the GC.
    fn __clear__(&mut self) {
        self.state = State::Done;
    }
}
