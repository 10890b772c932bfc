//! `sendfile` on a transport and `sock_sendfile` on a socket (docs/behaviour.md
//! 19.1): a regular file sent with zero-copy `sendfile(2)` where
//! the kernel can, a chunked read+write fallback where it cannot.
//!
//! | target | path |
//! |---|---|
//! | TCP or unix stream [`Transport`] | `sendfile(2)`; the chunked copy if the kernel refuses (not a regular file, a file system without it) |
//! | write-pipe [`Transport`] | the chunked copy (asyncio refuses pipes altogether) |
//! | a transport implemented outside this crate (TLS) | the chunked copy through [`Transport::write`], waiting for the buffer to drain to its low-water mark between chunks |
//! | read-pipe [`Transport`] | not supported (`InvalidArgument`) |
//! | a non-blocking stream socket ([`sock_sendfile`]) | `sendfile(2)`, else chunks sent as `sock_sendall` would |
//!
//! When `fallback` is false and only the chunked copy is possible, the call
//! fails with [`SendfileNotAvailable`] (asyncio's `SendfileNotAvailableError`
//! and its `RuntimeError('fallback is disabled …')`), carried as an
//! [`Error::Io`] of kind [`io::ErrorKind::Unsupported`]; nothing is sent and
//! the file position is untouched.
//!
//! On a stream transport of this crate the write buffer is flushed first,
//! and writes made while the file goes out wait behind it (asyncio raises
//! instead); reading goes on; `close()` waits for the file like buffered
//! data; `abort()` or a failing connection ends the sendfile with the error,
//! which the protocol also gets in `connection_lost` (once, as for any write
//! error). Through a transport implemented outside this crate (TLS) the
//! chunks are ordinary writes, so writes made meanwhile interleave with them,
//! as in asyncio's fallback.
//!
//! Afterwards — success, error or the future dropped part-way — the file's
//! position (its fd's offset, shared with every dup of it) is `offset +
//! bytes sent`, as asyncio's `file.tell()` shows. The file's data is read
//! with `sendfile(2)` or `pread` at the running offset; the position is set
//! once at the end with `lseek`.
//!
//! The chunked copy reads the file on the loop thread (`pread`, 16 KiB
//! chunks for transports and 256 KiB for sockets, as asyncio): this crate has
//! no thread pool, and a regular file read is normally served from the page
//! cache. asyncio reads in its executor.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use evloop_core::{Error, EventLoop};
use rustix::fs::FileType;
use rustix::io::Errno;
use rustix::net::{SendFlags, SocketType};

use crate::fault::{self, Op};
use crate::sock::{io_error, Direction, Wait};
use crate::transport::{DrainWaiters, FdKind, StreamInner, Transport};

/// Chunk size of the fallback through a transport (asyncio: 16 KiB).
const TRANSPORT_CHUNK: usize = 16 * 1024;
/// Chunk size of the fallback on a socket (asyncio's
/// `SENDFILE_FALLBACK_READBUFFER_SIZE`, 256 KiB).
const SOCK_CHUNK: usize = 256 * 1024;
/// The most one `sendfile(2)` call is asked for (Linux caps a call at
/// 0x7ffff000 bytes anyway).
const MAX_SYSCALL: u64 = 0x7fff_f000;
/// Syscalls made in a row without waiting before the future yields to the
/// loop once, so a fast receiver cannot starve the other callbacks.
const YIELD_EVERY: u32 = 64;
/// How often a fallback waiting for a drain looks again even without a
/// wake-up (a transport whose buffer is not one of this crate's).
const DRAIN_RECHECK: Duration = Duration::from_millis(50);

/// Native sendfile is not available for this transfer and the fallback
/// was disabled (asyncio's `SendfileNotAvailableError`).
///
/// It reaches the caller as an [`Error::Io`] of kind
/// [`io::ErrorKind::Unsupported`] whose inner error is this type; find it
/// with [`SendfileNotAvailable::find`]. (A clone of that `Error` keeps the
/// kind and the message, not this type.)
#[doc(alias = "SendfileNotAvailableError")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendfileNotAvailable {
    message: String,
}

impl SendfileNotAvailable {
    fn error(message: impl Into<String>) -> Error {
        Error::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            SendfileNotAvailable {
                message: message.into(),
            },
        ))
    }

    /// Why sendfile is not available.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `SendfileNotAvailable` inside `error`, if there is one.
    pub fn find(error: &Error) -> Option<&SendfileNotAvailable> {
        match error {
            Error::Io(io) => io.get_ref()?.downcast_ref::<SendfileNotAvailable>(),
            _ => None,
        }
    }
}

impl fmt::Display for SendfileNotAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendfileNotAvailable {}

/// Sends `file` over `transport` (asyncio's `loop.sendfile(transport,
/// file, offset, count, fallback=…)`): `count` bytes from `offset`, or up
/// to the end of the file when `count` is `None`. Returns the number of
/// bytes sent (0 for an empty file or an offset past its end).
///
/// Zero-copy `sendfile(2)` on TCP and unix stream transports (waiting for
/// writability on the loop, never blocking it), a chunked copy otherwise
/// when `fallback` is true:
///
/// | transport | path |
/// |---|---|
/// | TCP or unix stream | `sendfile(2)`; the chunked copy if the kernel refuses (not a regular file, a file system without it) |
/// | write pipe | the chunked copy (asyncio refuses pipes altogether) |
/// | implemented outside this crate (TLS) | 16 KiB chunks through [`Transport::write`], each after the buffer drained to its low-water mark |
/// | read pipe | not supported ([`Error::InvalidArgument`]) |
///
/// On TCP, unix and pipe transports the transport's buffered data goes
/// first and writes made meanwhile wait behind the file; `close()` waits
/// for the file as for buffered data; reading goes on. Through a transport
/// implemented outside this crate (TLS) the chunks are ordinary writes, so
/// writes made meanwhile interleave with them, as in asyncio's fallback.
/// The chunked copy reads the file with `pread` on the loop thread (this
/// crate has no thread pool; asyncio reads in its executor).
///
/// Afterwards — success, error, or the future dropped part-way — the
/// file's position (its fd's offset, shared with its dups) is `offset` +
/// bytes sent, as asyncio's `file.tell()` shows; after an argument error or
/// [`SendfileNotAvailable`] it is untouched.
///
/// # Errors
/// - [`Error::InvalidArgument`]: `count` is `Some(0)` ("count must be a
///   positive integer"), `offset` above `i64::MAX`, a read-pipe transport;
/// - [`Error::InvalidState`]: the transport is closing ("Transport is
///   closing"), `write_eof` was called, or another sendfile is in progress
///   on it;
/// - [`SendfileNotAvailable`] (an [`Error::Io`] of kind `Unsupported`):
///   only the chunked copy is possible and `fallback` is false;
/// - [`Error::Io`]: reading the file fails, or the connection fails in the
///   middle (`ECONNRESET`, `EPIPE`; the protocol gets the same error in
///   `connection_lost`), or the transport is aborted meanwhile
///   (`ConnectionAborted`).
///
/// # Examples
///
/// ```no_run
/// use evloop_core::EventLoop;
/// use evloop_transports::{create_connection, sendfile, ConnectOptions, Protocol};
///
/// struct Quiet;
/// impl Protocol for Quiet {}
///
/// let lp = EventLoop::new()?;
/// let file = std::fs::File::open("/etc/hostname").map_err(evloop_core::Error::Io)?;
/// let sent = lp.run_until_complete(async {
///     let (transport, _) =
///         create_connection(&lp, || Quiet, Some("127.0.0.1"), Some(9000), ConnectOptions::default())
///             .await?;
///     let sent = sendfile(&lp, &transport, &file, 0, None, true).await?;
///     transport.close();
///     Ok::<u64, evloop_core::Error>(sent)
/// })??;
/// println!("{sent} bytes sent");
/// # Ok::<(), evloop_core::Error>(())
/// ```
pub fn sendfile<'a>(
    lp: &EventLoop,
    transport: &Transport,
    file: &'a impl AsFd,
    offset: u64,
    count: Option<u64>,
    fallback: bool,
) -> impl Future<Output = Result<u64, Error>> + 'a {
    let lp = lp.clone();
    let transport = transport.clone();
    let file = file.as_fd();
    async move {
        if transport.is_closing() {
            return Err(Error::InvalidState("Transport is closing"));
        }
        check_params(offset, count)?;
        match transport.stream() {
            Some(inner) => {
                let native = match inner.kind() {
                    FdKind::Socket => native_possible(file),
                    FdKind::WritePipe => Err("native sendfile is not supported for pipes"),
                    FdKind::ReadPipe => {
                        return Err(Error::invalid_argument(format!(
                            "sendfile is not supported for transport {}",
                            transport.describe()
                        )))
                    }
                };
                if native.is_err() && !fallback {
                    return Err(SendfileNotAvailable::error(format!(
                        "fallback is disabled and native sendfile is not supported for transport {}",
                        transport.describe()
                    )));
                }
                stream_sendfile(inner.clone(), file, offset, count, native, fallback).await
            }
            None if fallback => custom_fallback(&lp, &transport, file, offset, count).await,
            None => Err(SendfileNotAvailable::error(format!(
                "fallback is disabled and native sendfile is not supported for transport {}",
                transport.describe()
            ))),
        }
    }
}

/// Sends `file` on a non-blocking stream socket (asyncio's
/// `loop.sock_sendfile(sock, file, offset, count, fallback=…)`): `count`
/// bytes from `offset`, or up to the end of the file when `count` is
/// `None`; returns the number of bytes sent.
///
/// `sendfile(2)` when the file is a regular one and the kernel takes it,
/// else (with `fallback`) 256 KiB chunks read with `pread` and sent as
/// [`sock_sendall`](crate::sock_sendall) sends. It waits for writability
/// through the loop as the other `sock_*` calls do, so it mixes with them
/// in order. Afterwards the file's position is `offset` + bytes sent.
///
/// # Errors
/// As [`sendfile`] for the arguments and the fallback; also
/// [`Error::InvalidArgument`] for a blocking socket ("the socket must be
/// non-blocking") or one that is not `SOCK_STREAM` ("only SOCK_STREAM type
/// sockets are supported"); [`Error::FdInUse`] if a transport owns the
/// socket; [`Error::Io`] from `sendfile`, `send` or `pread`.
pub fn sock_sendfile<'a>(
    lp: &EventLoop,
    sock: &'a impl AsFd,
    file: &'a impl AsFd,
    offset: u64,
    count: Option<u64>,
    fallback: bool,
) -> impl Future<Output = Result<u64, Error>> + 'a {
    let lp = lp.clone();
    let sock = sock.as_fd();
    let file = file.as_fd();
    async move {
        let socktype = rustix::net::sockopt::socket_type(sock).map_err(io_error)?;
        if socktype != SocketType::STREAM {
            return Err(Error::invalid_argument(
                "only SOCK_STREAM type sockets are supported",
            ));
        }
        check_params(offset, count)?;
        let mut wait = Wait::new(lp, sock, Direction::Write)?;
        let mut position = Position::new(file, offset);
        let mut native = native_possible(file);
        if let Err(why) = &native {
            if !fallback {
                position.forget();
                return Err(SendfileNotAvailable::error(*why));
            }
        }
        let mut chunk = Vec::new();
        while let Some(want) = position.wanted(count) {
            if native.is_ok() {
                let mut off = position.next_offset();
                let want = want.min(MAX_SYSCALL) as usize;
                let result = wait
                    .retry(|sock| rustix::fs::sendfile(sock, file, Some(&mut off), want))
                    .await;
                match result {
                    Ok(0) => break,
                    Ok(n) => position.advance(n),
                    Err(error) if position.sent == 0 && not_available(&error) => {
                        if !fallback {
                            position.forget();
                            return Err(SendfileNotAvailable::error(
                                "sendfile(2) is not available for this file or socket",
                            ));
                        }
                        native = Err("sendfile(2) refused");
                    }
                    Err(error) => return Err(error),
                }
                continue;
            }
            chunk.resize(
                SOCK_CHUNK.min(usize::try_from(want).unwrap_or(SOCK_CHUNK)),
                0,
            );
            let n = pread(file, &mut chunk, position.next_offset())?;
            if n == 0 {
                break;
            }
            let mut done = 0;
            while done < n {
                let sent = wait
                    .retry(|sock| rustix::net::send(sock, &chunk[done..n], SendFlags::NOSIGNAL))
                    .await?;
                done += sent;
                position.advance(sent);
            }
        }
        Ok(position.finish())
    }
}

/// asyncio's `_check_sendfile_params`: a positive count, an offset
/// the file offset can hold.
fn check_params(offset: u64, count: Option<u64>) -> Result<(), Error> {
    if count == Some(0) {
        return Err(Error::invalid_argument(
            "count must be a positive integer (got 0)",
        ));
    }
    if i64::try_from(offset).is_err() {
        return Err(Error::invalid_argument(format!(
            "offset must be a non-negative integer that fits a file offset (got {offset})"
        )));
    }
    Ok(())
}

/// Whether `sendfile(2)` can read `file`: a regular file on a system
/// that has it; otherwise why not.
fn native_possible(file: BorrowedFd<'_>) -> Result<(), &'static str> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err("sendfile(2) is not available on this system");
    }
    match rustix::fs::fstat(file) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => Ok(()),
        Ok(_) => Err("not a regular file"),
        Err(_) => Err("the file cannot be examined (fstat failed)"),
    }
}

/// The first `sendfile(2)` call's errors that mean "not for this file or
/// socket" rather than a failure of the transfer.
fn not_available(error: &Error) -> bool {
    let Error::Io(io) = error else {
        return false;
    };
    io.raw_os_error().is_some_and(|errno| {
        let errno = Errno::from_raw_os_error(errno);
        errno == Errno::INVAL || errno == Errno::NOSYS || errno == Errno::OPNOTSUPP
    })
}

fn pread(file: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize, Error> {
    loop {
        match rustix::io::pread(file, &mut *buf, offset) {
            Err(Errno::INTR) => {}
            other => return other.map_err(io_error),
        }
    }
}

/// The transfer's progress, and the file position it leaves: `offset +
/// sent`, set with `lseek` when the transfer ends, however it ends.
struct Position<'a> {
    file: BorrowedFd<'a>,
    offset: u64,
    sent: u64,
    armed: bool,
}

impl<'a> Position<'a> {
    fn new(file: BorrowedFd<'a>, offset: u64) -> Self {
        Position {
            file,
            offset,
            sent: 0,
            armed: true,
        }
    }

    /// How much is still wanted (`u64::MAX` = up to the end), `None` when
    /// `count` is reached.
    fn wanted(&self, count: Option<u64>) -> Option<u64> {
        match count {
            Some(count) if self.sent >= count => None,
            Some(count) => Some(count - self.sent),
            None => Some(u64::MAX),
        }
    }

    fn next_offset(&self) -> u64 {
        self.offset + self.sent
    }

    fn advance(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// Nothing was attempted: leave the position alone.
    fn forget(&mut self) {
        self.armed = false;
    }

    fn finish(mut self) -> u64 {
        self.seek();
        self.sent
    }

    fn seek(&mut self) {
        if std::mem::take(&mut self.armed) {
            let to = self.next_offset();
            if let Err(errno) = rustix::fs::seek(self.file, rustix::fs::SeekFrom::Start(to)) {
                // Not seekable (a pipe): nothing to set.
                tracing::debug!(target: "evloop::transports", %errno, "sendfile: lseek failed");
            }
        }
    }
}

impl Drop for Position<'_> {
    fn drop(&mut self) {
        self.seek();
    }
}

/// Ends the stream transport's sendfile when the future ends or is dropped.
struct Active(Rc<StreamInner>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.sendfile_end();
    }
}

/// `sendfile` on a stream transport of this crate: `sendfile(2)` or the
/// chunked copy, both straight to the fd when it is writable, behind what
/// was buffered before and ahead of what is written meanwhile.
async fn stream_sendfile(
    inner: Rc<StreamInner>,
    file: BorrowedFd<'_>,
    offset: u64,
    count: Option<u64>,
    mut native: Result<(), &'static str>,
    fallback: bool,
) -> Result<u64, Error> {
    inner.sendfile_begin()?;
    let active = Active(inner);
    let inner = &active.0;
    let mut position = Position::new(file, offset);
    let mut chunk = Vec::new();
    // The part of `chunk` read from the file but not yet written.
    let (mut chunk_start, mut chunk_end) = (0, 0);
    let mut in_a_row = 0;
    while let Some(want) = position.wanted(count) {
        poll_fn(|cx| inner.sendfile_poll(cx))
            .await
            .map_err(Error::Io)?;
        let result = if native.is_ok() {
            let mut off = position.next_offset();
            let want = want.min(MAX_SYSCALL) as usize;
            inner.with_fd(|sock| {
                fault::io(Op::Write, sock.as_raw_fd(), want, |len| {
                    rustix::fs::sendfile(sock, file, Some(&mut off), len)
                })
            })
        } else {
            if chunk_start == chunk_end {
                chunk.resize(
                    TRANSPORT_CHUNK.min(usize::try_from(want).unwrap_or(TRANSPORT_CHUNK)),
                    0,
                );
                chunk_start = 0;
                chunk_end = pread(file, &mut chunk, position.next_offset())?;
                if chunk_end == 0 {
                    break;
                }
            }
            Some(
                inner
                    .sendfile_write(&chunk[chunk_start..chunk_end])
                    .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO)),
            )
        };
        match result.unwrap_or(Err(Errno::NOTCONN)) {
            Ok(0) if native.is_ok() => break,
            Ok(n) => {
                position.advance(n);
                chunk_start += n;
                if chunk_start >= chunk_end {
                    (chunk_start, chunk_end) = (0, 0);
                }
                in_a_row += 1;
                if in_a_row >= YIELD_EVERY {
                    in_a_row = 0;
                    yield_now().await;
                }
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                in_a_row = 0;
                inner.sendfile_blocked();
            }
            Err(errno)
                if native.is_ok()
                    && position.sent == 0
                    && matches!(errno, Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) =>
            {
                if !fallback {
                    position.forget();
                    return Err(SendfileNotAvailable::error(
                        "sendfile(2) is not available for this file or socket",
                    ));
                }
                native = Err("sendfile(2) refused");
            }
            Err(errno) => {
                let error = io::Error::from(errno);
                inner.sendfile_failed(io::Error::from(errno));
                return Err(Error::Io(error));
            }
        }
    }
    drop(active);
    Ok(position.finish())
}

/// The fallback through a transport implemented outside this crate (TLS):
/// 16 KiB chunks through [`Transport::write`], waiting before each until
/// the transport's buffer is at its low-water mark (asyncio's
/// `_sendfile_fallback` with its drain).
async fn custom_fallback(
    lp: &EventLoop,
    transport: &Transport,
    file: BorrowedFd<'_>,
    offset: u64,
    count: Option<u64>,
) -> Result<u64, Error> {
    let drain = DrainWaiters::of(lp);
    let mut position = Position::new(file, offset);
    let mut chunk = vec![0u8; TRANSPORT_CHUNK];
    let mut in_a_row = 0;
    while let Some(want) = position.wanted(count) {
        wait_drained(lp, transport, &drain).await?;
        let len = TRANSPORT_CHUNK.min(usize::try_from(want).unwrap_or(TRANSPORT_CHUNK));
        let n = pread(file, &mut chunk[..len], position.next_offset())?;
        if n == 0 {
            break;
        }
        transport.write(&chunk[..n]);
        position.advance(n);
        in_a_row += 1;
        if in_a_row >= YIELD_EVERY {
            in_a_row = 0;
            yield_now().await;
        }
    }
    Ok(position.finish())
}

/// Waits until `transport` buffers no more than its low-water mark;
/// fails once it is closing ("Connection is closed by peer" in asyncio).
async fn wait_drained(
    lp: &EventLoop,
    transport: &Transport,
    drain: &Rc<DrainWaiters>,
) -> Result<(), Error> {
    let mut recheck = None;
    let result = poll_fn(|cx| {
        if transport.is_closing() {
            return Poll::Ready(Err(Error::Io(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection was closed during sendfile",
            ))));
        }
        let (low, _) = transport.get_write_buffer_limits();
        if transport.get_write_buffer_size() <= low {
            return Poll::Ready(Ok(()));
        }
        drain.register(cx.waker());
        let waker = cx.waker().clone();
        let timer = lp.call_later(DRAIN_RECHECK, move || waker.wake()).ok();
        if let Some(previous) = std::mem::replace(&mut recheck, timer) {
            previous.cancel();
        }
        Poll::Pending
    })
    .await;
    if let Some(timer) = recheck {
        timer.cancel();
    }
    result
}

/// Lets the loop run other callbacks once.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}
