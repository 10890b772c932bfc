//! `loop.subprocess_exec`/`subprocess_shell`: evloop-process spawns the
//! child, reaps it (its pidfd on the loop; no asyncio child watcher) and
//! connects its pipes as evloop pipe transports.
//!
//! [`PySubprocess`] is the evloop `SubprocessProtocol`: it makes the Python
//! transport (`evloop.SubprocessTransport`, from `wrap(core)`) in
//! `connection_made` and hands every event to it (`_connection_made`,
//! `_pipe_data_received`, …), which calls the Python protocol with asyncio's
//! error handling. evloop-process delivers the events in asyncio's order
//! (`connection_lost` after `process_exited` and every pipe's
//! `pipe_connection_lost`) and drops this protocol after `connection_lost`,
//! which breaks the cycle Python transport → core → evloop transport →
//! protocol → Python transport. A loop that closes first (its children are
//! killed and reaped in a thread, their events never come) breaks it in
//! its close hook ([`LiveTransports`]), so the Python transport is
//! collected, with asyncio's `ResourceWarning` if it was not closed.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::rc::{Rc, Weak};

use evloop_core::EventLoop;
use evloop_process::{ProcessOptions, Stdio, SubprocessProtocol, SubprocessTransport};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::bridge::{complete_with, Pending};
use crate::core_loop::{CoreLoop, RemoteLoop};
use crate::errors::to_py;
use crate::pipes::dup_fd;
use crate::thread_bound::{LoopBound, ThreadBound};
use crate::transport::{io_to_py, StreamTransport};

/// asyncio's `subprocess.PIPE`, `STDOUT` and `DEVNULL` as the Python side
/// passes them (the `subprocess` module's values).
const PIPE: RawFd = -1;
const STDOUT: RawFd = -2;
const DEVNULL: RawFd = -3;

/// One of the child's standard streams: `None` inherits, `PIPE`, `STDOUT`,
/// `DEVNULL`, or the caller's open fd (duplicated here; the caller keeps its
/// own).
fn stdio(value: Option<RawFd>) -> PyResult<Stdio> {
    Ok(match value {
        None => Stdio::Inherit,
        Some(PIPE) => Stdio::Pipe,
        Some(STDOUT) => Stdio::Stdout,
        Some(DEVNULL) => Stdio::Null,
        Some(fd) => Stdio::Fd(dup_fd(fd)?),
    })
}

/// evloop's protocol side of a subprocess: forwards each event to the
/// Python transport.
struct PySubprocess {
    /// The Python loop (`evloop.Loop`), to stop it with KeyboardInterrupt.
    py_loop: Py<PyAny>,
    /// Its thread-safe half, for the transport made here.
    remote: RemoteLoop,
    /// `wrap(core)` makes the Python transport; taken then, as it holds the
    /// Python protocol (which would otherwise be kept by the transport's
    /// own core).
    wrap: Option<Py<PyAny>>,
    /// The Python transport, from `connection_made` until `connection_lost`
    /// (or the loop's close).
    transport: Rc<Slot>,
}

/// Where a [`PySubprocess`] keeps its Python transport.
type Slot = RefCell<Option<Py<PyAny>>>;

/// The slots of a loop's subprocesses (a loop extension), emptied when the
/// loop closes: nothing will deliver `connection_lost` then, and the cycle
/// through Rust would keep the Python transport and protocol forever.
#[derive(Default)]
struct LiveTransports {
    slots: RefCell<Vec<Weak<Slot>>>,
}

impl LiveTransports {
    /// Registers `slot` to be emptied if `event_loop` closes while it lives.
    fn track(event_loop: &EventLoop, slot: &Rc<Slot>) -> PyResult<()> {
        let mut fresh = false;
        let live = event_loop.extension(|| {
            fresh = true;
            LiveTransports::default()
        });
        if fresh {
            let hook_live = live.clone();
            event_loop
                .add_close_hook(move |_| hook_live.release())
                .map_err(to_py)?;
        }
        let mut slots = live.slots.borrow_mut();
        slots.retain(|s| s.strong_count() > 0);
        slots.push(Rc::downgrade(slot));
        Ok(())
    }

    fn release(&self) {
        let slots = std::mem::take(&mut *self.slots.borrow_mut());
        Python::with_gil(|_| {
            for slot in slots.iter().filter_map(Weak::upgrade) {
                // Out of the cell first: dropping it may run the transport's
                // `__del__`, which may reach this slot again.
                let transport = slot.borrow_mut().take();
                drop(transport);
            }
        });
    }
}

impl PySubprocess {
    /// Calls `transport.<method>(*args)`. The Python side reports its
    /// protocol's exceptions itself; what still comes out is
    /// KeyboardInterrupt/SystemExit (out of `run_forever`) or a bug
    /// (unraisable).
    fn forward<'py>(
        &self,
        py: Python<'py>,
        method: &Bound<'py, PyString>,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) {
        let Some(transport) = self.transport.borrow().as_ref().map(|t| t.clone_ref(py)) else {
            return;
        };
        if let Err(error) = transport.bind(py).call_method1(method, args) {
            self.escalate(py, error, &transport);
        }
    }

    fn escalate(&self, py: Python<'_>, error: PyErr, origin: &Py<PyAny>) {
        if error.is_instance_of::<PyException>(py) {
            error.write_unraisable(py, Some(origin.bind(py)));
            return;
        }
        match self.py_loop.bind(py).downcast::<CoreLoop>() {
            Ok(core) => CoreLoop::fail(core, error),
            Err(_) => error.restore(py),
        }
    }

    /// The Python transport, for `subprocess_exec`'s result.
    fn transport(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.transport
            .borrow()
            .as_ref()
            .map(|t| t.clone_ref(py))
            .ok_or_else(|| PyValueError::new_err("the subprocess transport was never made"))
    }
}

impl SubprocessProtocol for PySubprocess {
    fn connection_made(&mut self, transport: SubprocessTransport) {
        Python::with_gil(|py| {
            let state = ProcessState {
                transport: transport.clone(),
                remote: self.remote.clone(),
            };
            let core = ProcessCore {
                state: ThreadBound::new(self.remote.owner(), state),
            };
            let Some(wrap) = self.wrap.take() else {
                return;
            };
            match Py::new(py, core).and_then(|c| wrap.call1(py, (c,))) {
                Ok(wrapped) => *self.transport.borrow_mut() = Some(wrapped),
                Err(error) => {
                    // Nothing to tell: close, which kills the child.
                    transport.close();
                    return self.escalate(py, error, &wrap);
                }
            }
            self.forward(py, intern!(py, "_connection_made"), ());
        });
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        Python::with_gil(|py| {
            let data = PyBytes::new(py, data);
            self.forward(py, intern!(py, "_pipe_data_received"), (fd, data));
        });
    }

    fn pipe_connection_lost(&mut self, fd: i32, error: Option<io::Error>) {
        Python::with_gil(|py| {
            let exc = error.map(|e| io_to_py(py, e));
            self.forward(py, intern!(py, "_pipe_connection_lost"), (fd, exc));
        });
    }

    fn process_exited(&mut self) {
        Python::with_gil(|py| self.forward(py, intern!(py, "_process_exited"), ()));
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        Python::with_gil(|py| {
            let exc = error.map(|e| io_to_py(py, e));
            self.forward(py, intern!(py, "_connection_lost"), (exc,));
            // Out of the cell before it is dropped (its `__del__` may run).
            let transport = self.transport.borrow_mut().take();
            drop(transport);
        });
    }

    fn pause_writing(&mut self) {
        Python::with_gil(|py| self.forward(py, intern!(py, "_pause_writing"), ()));
    }

    fn resume_writing(&mut self) {
        Python::with_gil(|py| self.forward(py, intern!(py, "_resume_writing"), ()));
    }
}

/// The Rust half of `evloop.SubprocessTransport`: evloop-process's
/// transport. Usable on its loop's thread only (RuntimeError elsewhere).
#[pyclass(module = "evloop._core", name = "_SubprocessTransport")]
#[derive(Debug)]
pub struct ProcessCore {
    state: ThreadBound<ProcessState>,
}

/// What a [`ProcessCore`] owns, on the loop's thread.
struct ProcessState {
    transport: SubprocessTransport,
    /// The loop's thread-safe half (to be dropped on another thread).
    remote: RemoteLoop,
}

impl std::fmt::Debug for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.transport.fmt(f)
    }
}

impl LoopBound for ProcessState {
    fn remote(&self, _py: Python<'_>) -> Option<RemoteLoop> {
        Some(self.remote.clone())
    }
}

impl ProcessCore {
    /// evloop-process's transport, on the loop's thread (RuntimeError
    /// elsewhere).
    fn transport(&self) -> PyResult<&SubprocessTransport> {
        Ok(&self.state.get()?.transport)
    }
}

#[pymethods]
impl ProcessCore {
    /// The child's pid.
    fn pid(&self) -> PyResult<u32> {
        Ok(self.transport()?.pid())
    }

    /// The exit code, `-signum` for a signal, None while it runs.
    fn returncode(&self) -> PyResult<Option<i32>> {
        Ok(self.transport()?.returncode())
    }

    /// The pipe transport of child fd `fd` (0, 1, 2), None if not a pipe.
    fn pipe(&self, fd: i32) -> PyResult<Option<StreamTransport>> {
        let this = self.state.get()?;
        let pipe = this.transport.get_pipe_transport(fd);
        Ok(pipe.map(|pipe| StreamTransport::bare(pipe, &this.remote)))
    }

    /// Sends `signum` to the child (ProcessLookupError once it was reaped).
    fn send_signal(&self, signum: i32) -> PyResult<()> {
        self.transport()?.send_signal(signum).map_err(to_py)
    }

    /// Closes the pipes and kills the child if it still runs.
    fn close(&self) -> PyResult<()> {
        self.transport()?.close();
        Ok(())
    }
}

/// The child's program, arguments and options as `evloop._process` passes
/// them (already checked and converted to bytes there).
#[derive(Debug, FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct Spawn {
    argv: Vec<Vec<u8>>,
    stdin: Option<RawFd>,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    cwd: Option<Vec<u8>>,
    /// The whole environment (`env=`), or None for the parent's.
    env: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    start_new_session: bool,
    process_group: Option<i32>,
    umask: Option<u32>,
    pass_fds: Vec<RawFd>,
}

impl Spawn {
    fn options(self) -> PyResult<(OsString, Vec<OsString>, ProcessOptions)> {
        let mut argv = self.argv.into_iter().map(OsString::from_vec);
        let program = argv
            .next()
            .ok_or_else(|| PyValueError::new_err("program: must not be empty"))?;
        let mut options = ProcessOptions::default()
            .stdin(stdio(self.stdin)?)
            .stdout(stdio(self.stdout)?)
            .stderr(stdio(self.stderr)?)
            .new_session(self.start_new_session)
            .inherit_fds(self.pass_fds);
        if let Some(cwd) = self.cwd {
            options = options.cwd(PathBuf::from(OsString::from_vec(cwd)));
        }
        if let Some(env) = self.env {
            options = options.env_clear(true);
            for (key, value) in env {
                options = options.env(OsString::from_vec(key), OsString::from_vec(value));
            }
        }
        if let Some(pgid) = self.process_group {
            options = options.process_group(pgid);
        }
        if let Some(mask) = self.umask {
            options = options.umask(mask);
        }
        Ok((program, argv.collect(), options))
    }
}

/// `loop.subprocess_exec` (and `_shell`, as `/bin/sh -c cmd`): spawns the
/// child and completes `future` with the Python transport once
/// `connection_made` ran. The caller's fds in `spawn.stdin/stdout/stderr`
/// are duplicated now; `spawn.pass_fds` must stay open until the spawn.
#[pyfunction]
pub(crate) fn subprocess_exec(
    future: Py<PyAny>,
    core: &Bound<'_, CoreLoop>,
    wrap: Py<PyAny>,
    spawn: Spawn,
) -> PyResult<Pending> {
    let (program, args, options) = spawn.options()?;
    let home = CoreLoop::home(core)?;
    let py_loop = core.clone().into_any().unbind();
    let slot = Rc::default();
    LiveTransports::track(&home.event_loop, &slot)?;
    let remote = home.remote.clone();
    let factory = move || PySubprocess {
        py_loop,
        remote,
        wrap: Some(wrap),
        transport: slot,
    };
    let spawned =
        evloop_process::subprocess_exec(&home.event_loop, factory, program, args, options);
    let awaited = future.clone_ref(core.py());
    let work = async move {
        let outcome = spawned.await;
        Python::with_gil(|py| {
            let (transport, protocol) = outcome.map_err(to_py)?;
            if is_done(awaited.bind(py)) {
                // Cancelled while the child started: nobody will get the
                // transport, so kill the child (it is still reaped), as
                // asyncio closes the transport then.
                transport.close();
            }
            protocol.with(|p| p.transport(py)).map_err(to_py)?
        })
    };
    complete_with(&home, future, work)
}

/// True if the asyncio future is done (here: cancelled); an error counts as
/// done, as nobody can take a result then.
fn is_done(future: &Bound<'_, PyAny>) -> bool {
    future
        .call_method0(intern!(future.py(), "done"))
        .and_then(|done| done.is_truthy())
        .unwrap_or(true)
}
