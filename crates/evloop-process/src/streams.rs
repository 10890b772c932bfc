//! The streams-level API (asyncio's `asyncio.subprocess`):
//! [`create_subprocess_exec`]/[`create_subprocess_shell`] give a
//! [`Process`] whose piped stdin is a [`StreamWriter`] and whose piped
//! stdout/stderr are [`StreamReader`]s — `evloop-transports`' stream types,
//! with futures-io's `AsyncWrite`/`AsyncRead`/`AsyncBufRead`.
//!
//! An internal protocol (asyncio's `SubprocessStreamProtocol`) drives them
//! through [`StreamFeed`]s: `pipe_data_received` feeds a reader,
//! `pipe_connection_lost` feeds its EOF (or error), the stdin pipe's
//! `pause_writing`/`resume_writing`/loss drive the writer's `drain` and
//! `wait_closed`. A reader pauses its pipe's reading above `2 × limit`
//! buffered bytes and resumes it at `≤ limit`, as asyncio's `StreamReader`.
//!
//! Dropping [`Process::stdin`] closes the pipe (after flushing what was
//! written): the child reads EOF.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;

use evloop_core::{Error, EventLoop};
use evloop_transports::{StreamFeed, StreamReader, StreamWriter};

use crate::options::ProcessOptions;
use crate::protocol::SubprocessProtocol;
use crate::transport::{subprocess_exec, subprocess_shell, SubprocessTransport};

pub use evloop_transports::DEFAULT_LIMIT;

/// The stdin writer, made in `connection_made` and taken by `into_process`.
type StdinSlot = Rc<RefCell<Option<StreamWriter>>>;

/// asyncio's `SubprocessStreamProtocol`.
struct StreamsProtocol {
    event_loop: EventLoop,
    /// The feeds of the stdout (1) and stderr (2) readers; 0 is unused.
    readers: [Option<StreamFeed>; 3],
    stdin: StdinSlot,
    /// The stdin writer's feed, once `connection_made` made the writer.
    stdin_feed: Option<StreamFeed>,
}

impl StreamsProtocol {
    fn reader(&self, fd: i32) -> Option<&StreamFeed> {
        match fd {
            1 | 2 => self.readers[fd as usize].as_ref(),
            _ => None,
        }
    }
}

impl SubprocessProtocol for StreamsProtocol {
    fn connection_made(&mut self, transport: SubprocessTransport) {
        for fd in 1..=2 {
            if let (Some(feed), Some(pipe)) = (self.reader(fd), transport.get_pipe_transport(fd)) {
                feed.set_transport(pipe);
            }
        }
        if let Some(pipe) = transport.get_pipe_transport(0) {
            let (writer, feed) = StreamWriter::with_feed(&self.event_loop, pipe);
            *self.stdin.borrow_mut() = Some(writer);
            self.stdin_feed = Some(feed);
        }
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        if let Some(feed) = self.reader(fd) {
            feed.feed_data(data);
        }
    }

    fn pipe_connection_lost(&mut self, fd: i32, error: Option<io::Error>) {
        if fd == 0 {
            if let Some(feed) = &self.stdin_feed {
                feed.connection_lost(error);
            }
            return;
        }
        if let Some(feed) = self.reader(fd) {
            match error {
                None => feed.feed_eof(),
                Some(error) => feed.set_exception(Error::Io(error)),
            }
        }
    }

    fn pause_writing(&mut self) {
        if let Some(feed) = &self.stdin_feed {
            feed.pause_writing();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(feed) = &self.stdin_feed {
            feed.resume_writing();
        }
    }
}

/// A child started by [`create_subprocess_exec`] or
/// [`create_subprocess_shell`] (asyncio's `asyncio.subprocess.Process`).
pub struct Process {
    /// The child's stdin, when it is [`Stdio::Pipe`](crate::Stdio::Pipe).
    /// Dropping it (or [`close`](StreamWriter::close)) closes the pipe
    /// once what was written is flushed: the child reads EOF.
    pub stdin: Option<StreamWriter>,
    /// The child's stdout, when it is a pipe.
    pub stdout: Option<StreamReader>,
    /// The child's stderr, when it is a pipe.
    pub stderr: Option<StreamReader>,
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
    /// (`BrokenPipe` and `ConnectionReset` on stdin are ignored).
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

async fn read_all(reader: Option<&mut StreamReader>) -> Option<Result<Vec<u8>, Error>> {
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

/// The protocol and the user's halves of its streams.
struct Streams {
    stdout: Option<StreamReader>,
    stderr: Option<StreamReader>,
    stdin: StdinSlot,
}

fn streams_protocol(
    event_loop: &EventLoop,
    options: &ProcessOptions,
    limit: usize,
) -> (StreamsProtocol, Streams) {
    use crate::options::Stdio;
    let reader = |s: &Stdio| {
        if !matches!(s, Stdio::Pipe) {
            return (None, None);
        }
        match StreamReader::with_feed(event_loop, limit) {
            Ok((reader, feed)) => (Some(reader), Some(feed)),
            // limit == 0: the spawn fails on check_limit first.
            Err(_) => (None, None),
        }
    };
    let (stdout, out_feed) = reader(&options.stdout);
    let (stderr, err_feed) = reader(&options.stderr);
    let stdin = StdinSlot::default();
    let protocol = StreamsProtocol {
        event_loop: event_loop.clone(),
        readers: [None, out_feed, err_feed],
        stdin: stdin.clone(),
        stdin_feed: None,
    };
    (
        protocol,
        Streams {
            stdout,
            stderr,
            stdin,
        },
    )
}

fn check_limit(limit: usize) -> Result<(), Error> {
    if limit == 0 {
        return Err(Error::invalid_argument("limit: Limit cannot be <= 0"));
    }
    Ok(())
}

fn into_process(transport: SubprocessTransport, streams: Streams) -> Process {
    let stdin = streams.stdin.borrow_mut().take();
    Process {
        stdin,
        stdout: streams.stdout,
        stderr: streams.stderr,
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
    let (protocol, streams) = streams_protocol(event_loop, &options, limit);
    let spawn = subprocess_exec(event_loop, move || protocol, program, args, options);
    async move {
        check_limit(limit)?;
        let (transport, _) = spawn.await?;
        Ok(into_process(transport, streams))
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
    let (protocol, streams) = streams_protocol(event_loop, &options, limit);
    let spawn = subprocess_shell(event_loop, move || protocol, cmd, options);
    async move {
        check_limit(limit)?;
        let (transport, _) = spawn.await?;
        Ok(into_process(transport, streams))
    }
}
