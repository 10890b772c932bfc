//! The streams-level API (asyncio's `asyncio.subprocess`):
//! [`create_subprocess_exec`]/[`create_subprocess_shell`] give a
//! [`Process`] whose piped stdin is a [`ProcessWriter`] and whose piped
//! stdout/stderr are [`ProcessReader`]s (futures-io `AsyncWrite`/`AsyncRead`).
//!
//! An internal protocol (asyncio's `SubprocessStreamProtocol`) feeds the
//! readers from `pipe_data_received` and tracks the stdin pipe's flow
//! control. A reader pauses its pipe's reading above `2 × limit` buffered
//! bytes and resumes it at `≤ limit`, as asyncio's `StreamReader`.
//!
//! `evloop-transports`' `StreamReader`/`StreamWriter` have no public
//! constructor over a pipe that another protocol feeds, so these two small
//! types stand in for them with the same method names.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_core::{Error, EventLoop};
use evloop_transports::Transport;
use futures_io::{AsyncRead, AsyncWrite};

use crate::options::ProcessOptions;
use crate::protocol::SubprocessProtocol;
use crate::transport::{subprocess_exec, subprocess_shell, SubprocessTransport};

/// The default reader limit (asyncio's `2**16`).
pub const DEFAULT_LIMIT: usize = 64 * 1024;

fn wake_all(wakers: &mut Vec<Waker>) {
    std::mem::take(wakers).into_iter().for_each(Waker::wake);
}

fn register(wakers: &mut Vec<Waker>, waker: &Waker) {
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

fn copy_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

#[derive(Default)]
struct ReadState {
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    error: Option<io::Error>,
    waker: Option<Waker>,
    paused: bool,
    transport: Option<Transport>,
}

impl ReadState {
    fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.buffered());
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        out
    }
}

struct ReaderShared {
    limit: usize,
    state: RefCell<ReadState>,
}

impl ReaderShared {
    fn feed(&self, data: &[u8]) {
        let (waker, pause) = {
            let mut st = self.state.borrow_mut();
            st.buf.extend_from_slice(data);
            let pause = !st.paused && st.buffered() > self.limit.saturating_mul(2);
            st.paused |= pause;
            (
                st.waker.take(),
                pause.then(|| st.transport.clone()).flatten(),
            )
        };
        if let Some(transport) = pause {
            transport.pause_reading();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn end(&self, error: Option<io::Error>) {
        let waker = {
            let mut st = self.state.borrow_mut();
            st.eof = true;
            st.error = error;
            st.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Bytes left the buffer: resume reading at `≤ limit`.
    fn consumed(&self) {
        let resume = {
            let mut st = self.state.borrow_mut();
            let resume = st.paused && st.buffered() <= self.limit;
            st.paused &= !resume;
            resume.then(|| st.transport.clone()).flatten()
        };
        if let Some(transport) = resume {
            transport.resume_reading();
        }
    }

    /// Polls for `want(state)` to be ready; registers the waker otherwise.
    fn poll_ready(&self, cx: &Context<'_>, want: impl Fn(&ReadState) -> bool) -> Poll<()> {
        let mut st = self.state.borrow_mut();
        if want(&st) || st.eof {
            return Poll::Ready(());
        }
        // Waiting for more than the pause threshold needs reading on.
        let resume = st.paused.then(|| st.transport.clone()).flatten();
        st.paused = false;
        st.waker = Some(cx.waker().clone());
        drop(st);
        if let Some(transport) = resume {
            transport.resume_reading();
        }
        Poll::Pending
    }
}

/// A child's stdout or stderr (asyncio's `StreamReader` on
/// `Process.stdout`). Reads take `&mut self` and are cancel-safe.
pub struct ProcessReader {
    shared: Rc<ReaderShared>,
}

impl ProcessReader {
    /// Up to `n` bytes, waiting for at least one; empty at EOF (or for `n == 0`).
    ///
    /// # Errors
    /// The pipe's read error, once the buffer is empty.
    pub async fn read(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        if n == 0 {
            return Ok(Vec::new());
        }
        poll_fn(|cx| self.shared.poll_ready(cx, |st| st.buffered() > 0)).await;
        self.finish_read(n)
    }

    /// Everything until EOF.
    ///
    /// # Errors
    /// The pipe's read error.
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, Error> {
        poll_fn(|cx| self.shared.poll_ready(cx, |_| false)).await;
        self.finish_read(usize::MAX)
    }

    /// One line with its `\n` (without one at EOF); empty at EOF.
    ///
    /// # Errors
    /// The pipe's read error.
    pub async fn readline(&mut self) -> Result<Vec<u8>, Error> {
        poll_fn(|cx| {
            self.shared
                .poll_ready(cx, |st| st.buf[st.pos..].contains(&b'\n'))
        })
        .await;
        let n = {
            let st = self.shared.state.borrow();
            st.buf[st.pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(st.buffered(), |i| i + 1)
        };
        self.finish_read(n)
    }

    fn finish_read(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let out = {
            let mut st = self.shared.state.borrow_mut();
            if st.buffered() == 0 {
                if let Some(error) = &st.error {
                    return Err(Error::Io(copy_error(error)));
                }
            }
            st.take(n)
        };
        self.shared.consumed();
        Ok(out)
    }

    /// True once EOF was seen and the buffer is empty.
    pub fn at_eof(&self) -> bool {
        let st = self.shared.state.borrow();
        st.eof && st.buffered() == 0
    }

    /// The reader's buffer limit.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }
}

impl AsyncRead for ProcessReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        if this
            .shared
            .poll_ready(cx, |st| st.buffered() > 0)
            .is_pending()
        {
            return Poll::Pending;
        }
        match this.finish_read(out.len()) {
            Ok(data) => {
                out[..data.len()].copy_from_slice(&data);
                Poll::Ready(Ok(data.len()))
            }
            Err(Error::Io(e)) => Poll::Ready(Err(e)),
            Err(e) => Poll::Ready(Err(io::Error::other(e))),
        }
    }
}

impl fmt::Debug for ProcessReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.borrow();
        f.debug_struct("ProcessReader")
            .field("buffered", &st.buffered())
            .field("eof", &st.eof)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct WriteState {
    paused: bool,
    /// `Some` once the pipe is gone: `None` inside for a clean close.
    lost: Option<Option<io::Error>>,
    wakers: Vec<Waker>,
}

/// A child's stdin (asyncio's `StreamWriter` on `Process.stdin`).
pub struct ProcessWriter {
    transport: Transport,
    state: Rc<RefCell<WriteState>>,
}

impl ProcessWriter {
    /// Writes `data` (buffered by the pipe transport past what the pipe
    /// takes). Dropped silently once the pipe is gone.
    pub fn write(&self, data: &[u8]) {
        self.transport.write(data);
    }

    /// Flushes, then closes the pipe: the child reads EOF.
    pub fn write_eof(&self) {
        self.transport.write_eof();
    }

    /// Closes the pipe (after flushing).
    pub fn close(&self) {
        self.transport.close();
    }

    /// True once the pipe is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.transport.is_closing()
    }

    /// The stdin pipe transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Waits while the pipe's buffer is above its high-water mark.
    ///
    /// # Errors
    /// `BrokenPipe` (or the pipe's error) once the child closed its end;
    /// `ConnectionReset` once the pipe closed cleanly.
    pub async fn drain(&self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_drain(cx)).await.map_err(Error::Io)
    }

    fn poll_drain(&self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.state.borrow_mut();
        match &st.lost {
            Some(Some(e)) => return Poll::Ready(Err(copy_error(e))),
            Some(None) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "Connection lost",
                )))
            }
            None => {}
        }
        if !st.paused {
            return Poll::Ready(Ok(()));
        }
        register(&mut st.wakers, cx.waker());
        Poll::Pending
    }

    /// Waits until the pipe is closed.
    pub async fn wait_closed(&self) {
        poll_fn(|cx| {
            let mut st = self.state.borrow_mut();
            if st.lost.is_some() {
                return Poll::Ready(());
            }
            register(&mut st.wakers, cx.waker());
            Poll::Pending
        })
        .await;
    }
}

impl AsyncWrite for ProcessWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.poll_drain(cx) {
            Poll::Ready(Ok(())) => {
                self.transport.write(buf);
                Poll::Ready(Ok(buf.len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_drain(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.transport.close();
        let mut st = self.state.borrow_mut();
        match &st.lost {
            Some(Some(e)) => Poll::Ready(Err(copy_error(e))),
            Some(None) => Poll::Ready(Ok(())),
            None => {
                register(&mut st.wakers, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl fmt::Debug for ProcessWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessWriter")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// asyncio's `SubprocessStreamProtocol`.
struct StreamsProtocol {
    readers: [Option<Rc<ReaderShared>>; 3],
    writer: Rc<RefCell<WriteState>>,
}

impl SubprocessProtocol for StreamsProtocol {
    fn connection_made(&mut self, transport: SubprocessTransport) {
        for fd in 1..=2 {
            if let Some(reader) = &self.readers[fd] {
                reader.state.borrow_mut().transport = transport.get_pipe_transport(fd as i32);
            }
        }
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        if let Some(Some(reader)) = usize::try_from(fd).ok().and_then(|i| self.readers.get(i)) {
            reader.feed(data);
        }
    }

    fn pipe_connection_lost(&mut self, fd: i32, error: Option<io::Error>) {
        if fd == 0 {
            let mut st = self.writer.borrow_mut();
            st.lost = Some(error);
            wake_all(&mut st.wakers);
            return;
        }
        if let Some(Some(reader)) = usize::try_from(fd).ok().and_then(|i| self.readers.get(i)) {
            reader.end(error);
        }
    }

    fn pause_writing(&mut self) {
        self.writer.borrow_mut().paused = true;
    }

    fn resume_writing(&mut self) {
        let mut st = self.writer.borrow_mut();
        st.paused = false;
        wake_all(&mut st.wakers);
    }
}

/// A child started by [`create_subprocess_exec`] or
/// [`create_subprocess_shell`] (asyncio's `asyncio.subprocess.Process`).
pub struct Process {
    /// The child's stdin, when it is [`Stdio::Pipe`](crate::Stdio::Pipe).
    pub stdin: Option<ProcessWriter>,
    /// The child's stdout, when it is a pipe.
    pub stdout: Option<ProcessReader>,
    /// The child's stderr, when it is a pipe.
    pub stderr: Option<ProcessReader>,
    transport: SubprocessTransport,
}

impl Process {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.transport.pid()
    }

    /// The return code once known (exit code or −signum).
    pub fn returncode(&self) -> Option<i32> {
        self.transport.returncode()
    }

    /// The subprocess transport underneath.
    pub fn transport(&self) -> &SubprocessTransport {
        &self.transport
    }

    /// Waits for the child to exit *and* its pipes to close (asyncio 3.11)
    /// and returns the return code. Several waits may run at once.
    pub fn wait(&self) -> impl Future<Output = i32> + 'static {
        self.transport.wait()
    }

    /// Sends `signum` to the child.
    ///
    /// # Errors
    /// As [`SubprocessTransport::send_signal`].
    pub fn send_signal(&self, signum: i32) -> Result<(), Error> {
        self.transport.send_signal(signum)
    }

    /// Sends `SIGTERM`.
    ///
    /// # Errors
    /// As [`SubprocessTransport::send_signal`].
    pub fn terminate(&self) -> Result<(), Error> {
        self.transport.terminate()
    }

    /// Sends `SIGKILL`.
    ///
    /// # Errors
    /// As [`SubprocessTransport::send_signal`].
    pub fn kill(&self) -> Result<(), Error> {
        self.transport.kill()
    }

    /// Writes `input` to stdin (then closes it), reads stdout and stderr to
    /// their ends, all at once, then waits for the child; returns what was
    /// read from each piped stream (`None` for one that is not a pipe).
    /// A child that stops reading its stdin early is not an error
    /// (`BrokenPipe` and `ConnectionReset` on stdin are ignored, R-121).
    ///
    /// # Errors
    /// A read error on stdout or stderr; another write error on stdin.
    pub async fn communicate(
        &mut self,
        input: Option<&[u8]>,
    ) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), Error> {
        let stdin = self.stdin.take();
        let feed = async move {
            let Some(stdin) = stdin else {
                return Ok(());
            };
            if let Some(input) = input {
                stdin.write(input);
            }
            let drained = stdin.drain().await;
            stdin.close();
            match drained {
                Err(Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    Ok(())
                }
                other => other,
            }
        };
        let out = read_all(self.stdout.as_mut());
        let err = read_all(self.stderr.as_mut());
        let (fed, (out, err)) =
            futures_lite::future::zip(feed, futures_lite::future::zip(out, err)).await;
        fed?;
        let (out, err) = (out.transpose()?, err.transpose()?);
        self.wait().await;
        Ok((out, err))
    }
}

async fn read_all(reader: Option<&mut ProcessReader>) -> Option<Result<Vec<u8>, Error>> {
    match reader {
        Some(reader) => Some(reader.read_to_end().await),
        None => None,
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.pid())
            .field("returncode", &self.returncode())
            .finish_non_exhaustive()
    }
}

fn streams_protocol(options: &ProcessOptions, limit: usize) -> StreamsProtocol {
    use crate::options::Stdio;
    let reader = |s: &Stdio| {
        matches!(s, Stdio::Pipe).then(|| {
            Rc::new(ReaderShared {
                limit,
                state: RefCell::new(ReadState::default()),
            })
        })
    };
    StreamsProtocol {
        readers: [None, reader(&options.stdout), reader(&options.stderr)],
        writer: Rc::new(RefCell::new(WriteState::default())),
    }
}

fn check_limit(limit: usize) -> Result<(), Error> {
    if limit == 0 {
        return Err(Error::invalid_argument("limit: Limit cannot be <= 0"));
    }
    Ok(())
}

fn into_process(
    transport: SubprocessTransport,
    readers: [Option<Rc<ReaderShared>>; 3],
    writer: Rc<RefCell<WriteState>>,
) -> Process {
    let [_, out, err] = readers;
    Process {
        stdin: transport
            .get_pipe_transport(0)
            .map(|transport| ProcessWriter {
                transport,
                state: writer,
            }),
        stdout: out.map(|shared| ProcessReader { shared }),
        stderr: err.map(|shared| ProcessReader { shared }),
        transport,
    }
}

/// Starts `program args…` with stream pipes (asyncio's
/// `asyncio.create_subprocess_exec`). The options are
/// [`subprocess_exec`]'s; note that their default is [`Stdio::Pipe`](crate::Stdio::Pipe)
/// for all three streams (asyncio's `create_subprocess_exec` defaults to
/// inheriting them). `limit` bounds each reader's buffer ([`DEFAULT_LIMIT`]).
///
/// # Errors
/// As [`subprocess_exec`]; [`Error::InvalidArgument`] for `limit == 0`.
///
/// # Examples
///
/// ```
/// use evloop_core::EventLoop;
/// use evloop_process::{create_subprocess_exec, ProcessOptions, DEFAULT_LIMIT};
///
/// let lp = EventLoop::new()?;
/// let spawn = create_subprocess_exec(&lp, "cat", [] as [&str; 0], ProcessOptions::default(), DEFAULT_LIMIT);
/// let (out, code) = lp.run_until_complete(async move {
///     let mut child = spawn.await?;
///     let (out, _err) = child.communicate(Some(b"hello")).await?;
///     Ok::<_, evloop_core::Error>((out, child.wait().await))
/// })??;
/// assert_eq!(out.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(code, 0);
/// lp.close()?;
/// # Ok::<(), evloop_core::Error>(())
/// ```
pub fn create_subprocess_exec<A: AsRef<OsStr>>(
    event_loop: &EventLoop,
    program: impl AsRef<OsStr>,
    args: impl IntoIterator<Item = A>,
    options: ProcessOptions,
    limit: usize,
) -> impl Future<Output = Result<Process, Error>> + 'static {
    let protocol = streams_protocol(&options, limit.max(1));
    let (readers, writer) = (protocol.readers.clone(), protocol.writer.clone());
    let spawn = subprocess_exec(event_loop, move || protocol, program, args, options);
    async move {
        check_limit(limit)?;
        let (transport, _) = spawn.await?;
        Ok(into_process(transport, readers, writer))
    }
}

/// [`create_subprocess_exec`] through `/bin/sh -c cmd` (asyncio's
/// `asyncio.create_subprocess_shell`).
///
/// # Errors
/// As [`subprocess_shell`]; [`Error::InvalidArgument`] for `limit == 0`.
pub fn create_subprocess_shell(
    event_loop: &EventLoop,
    cmd: impl AsRef<OsStr>,
    options: ProcessOptions,
    limit: usize,
) -> impl Future<Output = Result<Process, Error>> + 'static {
    let protocol = streams_protocol(&options, limit.max(1));
    let (readers, writer) = (protocol.readers.clone(), protocol.writer.clone());
    let spawn = subprocess_shell(event_loop, move || protocol, cmd, options);
    async move {
        check_limit(limit)?;
        let (transport, _) = spawn.await?;
        Ok(into_process(transport, readers, writer))
    }
}
