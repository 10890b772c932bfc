//! [`SubprocessTransport`] and [`subprocess_exec`]/[`subprocess_shell`]
//! (asyncio's `base_subprocess.BaseSubprocessTransport` and
//! `loop.subprocess_exec`/`subprocess_shell`).
//!
//! # Implementation
//!
//! The child's pipes are ordinary pipe transports from `evloop-transports`
//! (so flow control, `write_eof` and `pause_reading` are theirs), each
//! driven by a small internal protocol that forwards to the transport's
//! state with the pipe's child fd. Every event (pipe data, a pipe lost, the
//! exit) goes through one dispatcher: before `connection_made` it is queued
//! (data copied); after, data is delivered at once (no copy) and the other
//! events through `call_soon`, so `connection_lost` always comes from the
//! loop, after the events before it. `connection_lost` is scheduled once
//! the return code is known and no pipe is open; then the transport drops
//! its protocol (breaking the cycle a protocol holding its transport makes).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Poll, Waker};

use evloop_core::{Error, ErrorContext, EventLoop};
use evloop_transports::{connect_read_pipe, connect_write_pipe, Protocol, Transport};

use crate::options::ProcessOptions;
use crate::protocol::{SubprocessProtocol, SubprocessProtocolHandle};
use crate::reaper;
use crate::spawn::{shell_command, spawn};

/// asyncio's `ProcessLookupError`: the process is gone.
fn process_lookup_error() -> Error {
    Error::Io(io::Error::from_raw_os_error(libc::ESRCH))
}

/// A running (or finished) child and its pipes (asyncio's
/// `SubprocessTransport`). Cheap to clone; every clone is the same
/// transport. Not `Send`.
#[derive(Clone)]
pub struct SubprocessTransport {
    inner: Rc<Inner>,
}

type SharedProtocol = Rc<RefCell<dyn SubprocessProtocol>>;

struct Inner {
    event_loop: EventLoop,
    pid: i32,
    protocol_name: &'static str,
    /// Taken once `connection_lost` was delivered.
    protocol: RefCell<Option<SharedProtocol>>,
    state: RefCell<State>,
}

#[derive(Default)]
enum Pipe {
    /// Not a pipe (inherited, null, a caller's fd).
    #[default]
    None,
    Connecting,
    Open(Transport),
    Lost(Option<Transport>),
}

enum Event {
    Data(i32, Vec<u8>),
    PipeLost(i32, Option<io::Error>),
    Exited,
    Lost,
    PauseWriting,
    ResumeWriting,
}

#[derive(Default)]
struct State {
    returncode: Option<i32>,
    pipes: [Pipe; 3],
    /// `connection_made` was delivered; events are no longer queued.
    connected: bool,
    /// Setup failed or was cancelled: nothing is delivered.
    aborted: bool,
    pending: VecDeque<Event>,
    closed: bool,
    /// `connection_lost` is scheduled (or, when aborted, would have been).
    finished: bool,
    /// `connection_lost` ran.
    done: bool,
    waiters: Vec<Waker>,
}

impl Inner {
    /// Routes an event: queued before `connection_made`, else delivered
    /// through `call_soon`.
    fn dispatch(self: &Rc<Self>, event: Event) {
        {
            let mut st = self.state.borrow_mut();
            if st.aborted || st.done {
                return;
            }
            if !st.connected {
                st.pending.push_back(event);
                return;
            }
        }
        match event {
            Event::PauseWriting | Event::ResumeWriting => self.deliver(event),
            event => {
                let me = self.clone();
                if self
                    .event_loop
                    .call_soon(move || me.deliver(event))
                    .is_err()
                {
                    tracing::debug!(target: "evloop", pid = self.pid, "loop closed: subprocess event dropped");
                }
            }
        }
    }

    /// Pipe data: delivered at once when connected, else queued (copied).
    fn data(self: &Rc<Self>, fd: i32, data: &[u8]) {
        let direct = {
            let mut st = self.state.borrow_mut();
            if st.aborted || st.done {
                return;
            }
            if !st.connected {
                st.pending.push_back(Event::Data(fd, data.to_vec()));
            }
            st.connected
        };
        if direct {
            self.call_protocol("pipe_data_received", |p| p.pipe_data_received(fd, data));
        }
    }

    fn deliver(self: &Rc<Self>, event: Event) {
        match event {
            Event::Data(fd, data) => {
                self.call_protocol("pipe_data_received", |p| p.pipe_data_received(fd, &data));
            }
            Event::PipeLost(fd, error) => {
                self.call_protocol("pipe_connection_lost", |p| {
                    p.pipe_connection_lost(fd, error)
                });
            }
            Event::Exited => self.call_protocol("process_exited", |p| p.process_exited()),
            Event::PauseWriting => self.call_protocol("pause_writing", |p| p.pause_writing()),
            Event::ResumeWriting => self.call_protocol("resume_writing", |p| p.resume_writing()),
            Event::Lost => {
                self.call_protocol("connection_lost", |p| p.connection_lost(None));
                let waiters = {
                    let mut st = self.state.borrow_mut();
                    st.done = true;
                    std::mem::take(&mut st.waiters)
                };
                waiters.into_iter().for_each(Waker::wake);
                self.protocol.borrow_mut().take();
            }
        }
    }

    /// Runs `f` on the protocol; a panic goes to the exception handler.
    fn call_protocol(&self, method: &str, f: impl FnOnce(&mut dyn SubprocessProtocol)) {
        let Some(protocol) = self.protocol.borrow().clone() else {
            return;
        };
        let Ok(mut guard) = protocol.try_borrow_mut() else {
            tracing::warn!(target: "evloop", pid = self.pid, method, "protocol busy: event dropped");
            return;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut *guard)));
        drop(guard);
        if let Err(payload) = outcome {
            self.event_loop.call_exception_handler(ErrorContext {
                message: format!("Exception in {}.{method}()", self.protocol_name),
                error: Some(Error::from_panic(&*payload)),
                protocol: Some(self.protocol_name.to_owned()),
                transport: Some(format!("<SubprocessTransport pid={}>", self.pid)),
                ..ErrorContext::default()
            });
        }
    }

    fn process_exited(self: &Rc<Self>, code: i32) {
        self.state.borrow_mut().returncode = Some(code);
        self.dispatch(Event::Exited);
        self.try_finish();
    }

    fn pipe_lost(self: &Rc<Self>, fd: i32, error: Option<io::Error>) {
        {
            let mut st = self.state.borrow_mut();
            let slot = &mut st.pipes[usize::try_from(fd).unwrap_or(0)];
            let transport = match std::mem::take(slot) {
                Pipe::Open(t) => Some(t),
                Pipe::Lost(t) => t,
                Pipe::None | Pipe::Connecting => None,
            };
            *slot = Pipe::Lost(transport);
        }
        self.dispatch(Event::PipeLost(fd, error));
        self.try_finish();
    }

    /// asyncio's `_try_finish`: exited and every pipe gone → connection_lost.
    fn try_finish(self: &Rc<Self>) {
        let ready = {
            let mut st = self.state.borrow_mut();
            let pipes_gone = st
                .pipes
                .iter()
                .all(|p| matches!(p, Pipe::None | Pipe::Lost(_)));
            let ready = st.returncode.is_some() && pipes_gone && !st.finished;
            st.finished |= ready;
            ready
        };
        if !ready {
            return;
        }
        if self.state.borrow().aborted {
            self.protocol.borrow_mut().take();
            let waiters = {
                let mut st = self.state.borrow_mut();
                st.done = true;
                std::mem::take(&mut st.waiters)
            };
            waiters.into_iter().for_each(Waker::wake);
            return;
        }
        self.dispatch(Event::Lost);
    }

    /// Delivers `connection_made`, then the queued events, in order.
    fn connect(self: &Rc<Self>) {
        let transport = SubprocessTransport {
            inner: self.clone(),
        };
        self.call_protocol("connection_made", |p| p.connection_made(transport));
        loop {
            let next = self.state.borrow_mut().pending.pop_front();
            let Some(event) = next else { break };
            self.deliver(event);
        }
        self.state.borrow_mut().connected = true;
    }

    fn close(self: &Rc<Self>) {
        let (pipes, running) = {
            let mut st = self.state.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            let pipes: Vec<Transport> = st
                .pipes
                .iter()
                .filter_map(|p| match p {
                    Pipe::Open(t) => Some(t.clone()),
                    _ => None,
                })
                .collect();
            (pipes, st.returncode.is_none())
        };
        for pipe in pipes {
            pipe.close();
        }
        if running && reaper::is_watched(&self.event_loop, self.pid) {
            let killed = reaper::with_pidfd(&self.event_loop, self.pid, |fd| {
                reaper::kill(self.pid, fd, libc::SIGKILL)
            });
            if let Err(error) = killed {
                tracing::debug!(target: "evloop", pid = self.pid, %error, "kill on close failed");
            }
        }
    }

    /// Setup failed or was cancelled: close (which kills the child; the
    /// reaper still reaps it) and deliver nothing.
    fn abort_setup(self: &Rc<Self>) {
        {
            let mut st = self.state.borrow_mut();
            st.aborted = true;
            st.pending.clear();
            for pipe in &mut st.pipes {
                if matches!(pipe, Pipe::Connecting) {
                    *pipe = Pipe::Lost(None);
                }
            }
        }
        self.close();
        self.try_finish();
    }
}

/// The internal protocol of one pipe: forwards to the subprocess transport.
struct PipeProtocol {
    fd: i32,
    /// Dropped when the pipe is lost, so a closed pipe holds nothing.
    inner: Option<Rc<Inner>>,
}

impl Protocol for PipeProtocol {
    fn data_received(&mut self, data: &[u8]) {
        if let Some(inner) = &self.inner {
            inner.data(self.fd, data);
        }
    }

    fn eof_received(&mut self) -> bool {
        false
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        if let Some(inner) = self.inner.take() {
            inner.pipe_lost(self.fd, error);
        }
    }

    fn pause_writing(&mut self) {
        if let Some(inner) = &self.inner {
            inner.dispatch(Event::PauseWriting);
        }
    }

    fn resume_writing(&mut self) {
        if let Some(inner) = &self.inner {
            inner.dispatch(Event::ResumeWriting);
        }
    }
}

impl SubprocessTransport {
    /// The child's pid (asyncio's `get_pid()`).
    #[doc(alias = "get_pid")]
    pub fn pid(&self) -> u32 {
        self.inner.pid.unsigned_abs()
    }

    /// The exit code, `-signum` if a signal killed the child, `None` while it
    /// runs (asyncio's `get_returncode()`). A child reaped by someone else
    /// reports 255.
    #[doc(alias = "get_returncode")]
    pub fn returncode(&self) -> Option<i32> {
        self.inner.state.borrow().returncode
    }

    /// The pipe transport for child fd `fd` (0: stdin, 1: stdout, 2:
    /// stderr), `None` if that stream is not a pipe (asyncio's
    /// `get_pipe_transport`). It stays available after the pipe closed.
    pub fn get_pipe_transport(&self, fd: i32) -> Option<Transport> {
        let st = self.inner.state.borrow();
        match st.pipes.get(usize::try_from(fd).ok()?)? {
            Pipe::Open(t) | Pipe::Lost(Some(t)) => Some(t.clone()),
            _ => None,
        }
    }

    /// Sends `signum` to the child (through its pidfd where there is one).
    /// A child that exited but is not reaped yet ignores it, as in asyncio
    /// 3.13.
    ///
    /// # Errors
    /// [`Error::Io`] with `ESRCH` (asyncio's `ProcessLookupError`) once the
    /// return code is known; [`Error::InvalidArgument`] for a bad signal
    /// number; other [`Error::Io`] from `kill` (e.g. `EPERM`).
    pub fn send_signal(&self, signum: i32) -> Result<(), Error> {
        if self.returncode().is_some() {
            return Err(process_lookup_error());
        }
        let pid = self.inner.pid;
        let sent = reaper::with_pidfd(&self.inner.event_loop, pid, |fd| {
            reaper::kill(pid, fd, signum)
        });
        match sent {
            Err(Error::Io(e)) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other,
        }
    }

    /// `send_signal(SIGTERM)`.
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn terminate(&self) -> Result<(), Error> {
        self.send_signal(libc::SIGTERM)
    }

    /// `send_signal(SIGKILL)`.
    ///
    /// # Errors
    /// As [`send_signal`](Self::send_signal).
    pub fn kill(&self) -> Result<(), Error> {
        self.send_signal(libc::SIGKILL)
    }

    /// Closes every pipe and, if the child still runs, kills it (`SIGKILL`);
    /// a finished child is not signalled. Idempotent. The protocol still
    /// gets the pipes' `pipe_connection_lost`, `process_exited` and
    /// `connection_lost`.
    pub fn close(&self) {
        self.inner.close();
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closing(&self) -> bool {
        self.inner.state.borrow().closed
    }

    /// Waits until `connection_lost` was delivered (the child exited and
    /// every pipe closed, asyncio 3.11's `_wait`) and returns the return
    /// code.
    pub fn wait(&self) -> impl Future<Output = i32> + 'static {
        let inner = self.inner.clone();
        poll_fn(move |cx| {
            let mut st = inner.state.borrow_mut();
            match (st.done, st.returncode) {
                (true, Some(code)) => Poll::Ready(code),
                _ => {
                    if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        st.waiters.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
    }

    /// True once `connection_lost` was delivered.
    pub fn is_finished(&self) -> bool {
        self.inner.state.borrow().done
    }
}

impl fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.borrow();
        f.debug_struct("SubprocessTransport")
            .field("pid", &self.inner.pid)
            .field("returncode", &st.returncode)
            .field("closed", &st.closed)
            .finish_non_exhaustive()
    }
}

/// A transport that is being set up; dropping it (cancellation or an
/// error) aborts the setup.
struct SetupGuard(Option<Rc<Inner>>);

impl Drop for SetupGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            inner.abort_setup();
        }
    }
}

/// What [`subprocess_exec`] and [`subprocess_shell`] resolve to.
pub type SubprocessConnection<P> = (SubprocessTransport, SubprocessProtocolHandle<P>);

/// Runs `program` with `args` as a child of this process, its pipes watched
/// by `event_loop`, and connects it to a protocol made by `factory`
/// (asyncio's `loop.subprocess_exec`). `program` is looked up in `PATH`
/// when it has no `/`.
///
/// The child is spawned when the future is first polled; the pipes are
/// connected stdin, stdout, stderr in that order; then `connection_made`
/// runs, then any events that arrived meanwhile; then the future completes.
/// Dropping the future before that kills the child (it is still reaped).
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty program, NUL bytes or
/// conflicting options; [`Error::Io`] from spawning (`NotFound` for a
/// missing program, `PermissionDenied` for one that is not executable),
/// with nothing left open; [`Error::Closed`] on a closed loop.
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use evloop_core::EventLoop;
/// use evloop_process::{subprocess_exec, ProcessOptions, SubprocessProtocol};
///
/// #[derive(Default)]
/// struct Collect(Vec<u8>);
/// impl SubprocessProtocol for Collect {
///     fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) {
///         self.0.extend_from_slice(data);
///     }
/// }
///
/// let lp = EventLoop::new()?;
/// let spawn = subprocess_exec(&lp, Collect::default, "echo", ["hi"], ProcessOptions::default());
/// let (transport, protocol) = lp.run_until_complete(spawn)??;
/// let code = lp.run_until_complete(transport.wait())?;
/// assert_eq!(code, 0);
/// assert_eq!(protocol.with(|p| p.0.clone())?, b"hi\n");
/// lp.close()?;
/// # Ok::<(), evloop_core::Error>(())
/// ```
pub fn subprocess_exec<P, A>(
    event_loop: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = A>,
    options: ProcessOptions,
) -> impl Future<Output = Result<SubprocessConnection<P>, Error>> + 'static
where
    P: SubprocessProtocol,
    A: AsRef<OsStr>,
{
    let program = program.as_ref().to_owned();
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    start(event_loop.clone(), factory, program, args, options)
}

/// Runs `cmd` through `/bin/sh -c` (asyncio's `loop.subprocess_shell`);
/// otherwise as [`subprocess_exec`].
///
/// # Errors
/// As [`subprocess_exec`]; an empty `cmd` is [`Error::InvalidArgument`].
pub fn subprocess_shell<P: SubprocessProtocol>(
    event_loop: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    cmd: impl AsRef<OsStr>,
    options: ProcessOptions,
) -> impl Future<Output = Result<SubprocessConnection<P>, Error>> + 'static {
    let cmd = cmd.as_ref().to_owned();
    let event_loop = event_loop.clone();
    async move {
        if cmd.is_empty() {
            return Err(Error::invalid_argument("cmd: must not be empty"));
        }
        let (program, args) = shell_command(&cmd);
        start(event_loop, factory, program, args, options).await
    }
}

async fn start<P: SubprocessProtocol>(
    event_loop: EventLoop,
    factory: impl FnOnce() -> P + 'static,
    program: OsString,
    args: Vec<OsString>,
    options: ProcessOptions,
) -> Result<SubprocessConnection<P>, Error> {
    if event_loop.is_closed() {
        return Err(Error::Closed);
    }
    let protocol = Rc::new(RefCell::new(factory()));
    let spawned = spawn(&program, &args, options)?;
    let pid = spawned.pid;
    let pidfd = match reaper::open_pidfd(pid, spawned.reaper) {
        Ok(fd) => fd,
        Err(error) => {
            reaper::abandon(pid, None);
            return Err(error);
        }
    };
    let shared: SharedProtocol = protocol.clone();
    let inner = Rc::new(Inner {
        event_loop: event_loop.clone(),
        pid,
        protocol_name: short_type_name::<P>(),
        protocol: RefCell::new(Some(shared)),
        state: RefCell::new(State::default()),
    });
    let on_exit = {
        let inner = inner.clone();
        Box::new(move |code| inner.process_exited(code))
    };
    if let Err(error) = reaper::watch(&event_loop, pid, pidfd, spawned.kill_on_close, on_exit) {
        // The pidfd (if any) was closed by `watch`; the unreaped child's pid
        // cannot be reused, so signalling it by number is safe.
        reaper::abandon(pid, None);
        return Err(error);
    }
    let mut guard = SetupGuard(Some(inner.clone()));
    let [stdin, stdout, stderr] = spawned.pipes;
    for (fd, pipe) in [(0, stdin), (1, stdout), (2, stderr)] {
        if let Some(pipe) = pipe {
            connect_pipe(&event_loop, &inner, fd, pipe).await?;
        }
    }
    guard.0 = None;
    inner.connect();
    Ok((
        SubprocessTransport { inner },
        SubprocessProtocolHandle { inner: protocol },
    ))
}

async fn connect_pipe(
    event_loop: &EventLoop,
    inner: &Rc<Inner>,
    fd: i32,
    pipe: OwnedFd,
) -> Result<(), Error> {
    let slot = usize::try_from(fd).unwrap_or(0);
    inner.state.borrow_mut().pipes[slot] = Pipe::Connecting;
    let protocol = PipeProtocol {
        fd,
        inner: Some(inner.clone()),
    };
    let (transport, _) = if fd == 0 {
        connect_write_pipe(event_loop, move || protocol, pipe).await?
    } else {
        connect_read_pipe(event_loop, move || protocol, pipe).await?
    };
    let mut st = inner.state.borrow_mut();
    // The pipe may already be lost (EOF before the future resumed).
    match &mut st.pipes[slot] {
        Pipe::Connecting => st.pipes[slot] = Pipe::Open(transport),
        Pipe::Lost(t @ None) => *t = Some(transport),
        _ => {}
    }
    Ok(())
}

/// `my_crate::Echo` → `Echo`, for messages.
fn short_type_name<P: ?Sized>() -> &'static str {
    let full = std::any::type_name::<P>();
    let base = full.split('<').next().unwrap_or(full);
    let start = base.rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}
