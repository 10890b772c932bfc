//! Pipe transports (docs/behaviour.md 11.1, asyncio's `connect_read_pipe` and
//! `connect_write_pipe`): the read or write end of a pipe, a FIFO, a socket
//! or a character device (tty, pty) wrapped in the shared stream
//! [`Transport`].
//!
//! What differs from a socket lives in the transport core under
//! `FdKind::ReadPipe`/`FdKind::WritePipe`: `read`/`write` instead of
//! `recv`/`send`, EIO from a pty read counts as EOF, and a write end that is a
//! FIFO or a socket is watched for readability, which is how the reader
//! going away shows up (`connection_lost(None)`, or `BrokenPipe` when data
//! was still buffered). This file checks the fd's type and starts the
//! transport.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use evloop_core::{Error, EventLoop};
use rustix::fs::FileType;

use crate::protocol::{Protocol, ProtocolHandle};
use crate::transport::{plain_sink, FdKind, StreamSpec, Transport};

/// The error for an fd that is not a pipe, FIFO, socket or character device.
const NOT_A_PIPE: &str = "Pipe transport is only for pipes, sockets and character devices";

/// Connects the read end `pipe` (a pipe, FIFO, socket or character device
/// such as a pty master) to a protocol made by `factory` (asyncio's
/// `connect_read_pipe`).
///
/// The protocol sees `connection_made`, then `data_received` for each read
/// (up to 256 KiB), then `eof_received` and `connection_lost(None)` when the
/// writer closes its end (for a pty: when the last slave fd closes, which
/// reads as EIO). `pause_reading`/`resume_reading` work as on sockets. The
/// fd is made non-blocking and is closed by the transport, once, after
/// `connection_lost`. The future completes after `connection_made` ran.
///
/// # Errors
/// [`Error::InvalidArgument`] for a regular file or directory (the fd is
/// closed); [`Error::Io`] if `fstat` fails; [`Error::Closed`] on a closed
/// loop; [`Error::FdInUse`] if the fd number is already owned by a live
/// transport.
///
/// # Examples
///
/// ```
/// use evloop_core::EventLoop;
/// use evloop_transports::{connect_read_pipe, Protocol};
///
/// struct Sink;
/// impl Protocol for Sink {}
///
/// let lp = EventLoop::new()?;
/// let (reader, writer) = rustix::pipe::pipe().map_err(std::io::Error::from)?;
/// let (transport, _protocol) = lp.run_until_complete(connect_read_pipe(&lp, || Sink, reader))??;
/// assert!(transport.is_reading());
/// transport.close();
/// lp.stop();
/// lp.run_forever()?; // one iteration: delivers connection_lost
/// drop(writer);
/// lp.close()?;
/// # Ok::<(), evloop_core::Error>(())
/// ```
pub fn connect_read_pipe<P: Protocol>(
    lp: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    pipe: OwnedFd,
) -> impl Future<Output = Result<(Transport, ProtocolHandle<P>), Error>> + 'static {
    connect(lp.clone(), factory, pipe, FdKind::ReadPipe)
}

/// Connects the write end `pipe` (a pipe, FIFO, socket or character device
/// such as a pty master) to a protocol made by `factory` (asyncio's
/// `connect_write_pipe`).
///
/// `write` goes straight to the fd and buffers what the pipe does not take,
/// with `pause_writing`/`resume_writing` at the water marks. `write_eof` and
/// `close` both flush then close the fd; `abort` drops the buffer. For a FIFO
/// or a socket the transport notices the reader going away and closes:
/// `connection_lost(None)` if nothing was buffered, `BrokenPipe` otherwise
/// (for a character device, as in asyncio, it notices only when a write
/// fails). The future completes after `connection_made` ran.
///
/// # Errors
/// As [`connect_read_pipe`].
pub fn connect_write_pipe<P: Protocol>(
    lp: &EventLoop,
    factory: impl FnOnce() -> P + 'static,
    pipe: OwnedFd,
) -> impl Future<Output = Result<(Transport, ProtocolHandle<P>), Error>> + 'static {
    connect(lp.clone(), factory, pipe, FdKind::WritePipe)
}

async fn connect<P: Protocol>(
    lp: EventLoop,
    factory: impl FnOnce() -> P,
    pipe: OwnedFd,
    kind: FdKind,
) -> Result<(Transport, ProtocolHandle<P>), Error> {
    check_pipe(&pipe)?;
    let (sink, handle) = plain_sink(factory());
    let waiter = lp.create_future::<()>();
    let spec = StreamSpec {
        fd: pipe,
        kind,
        peername: None,
        sockname: None,
    };
    let transport = Transport::start(&lp, spec, sink, Some(waiter.clone()))?;
    // asyncio closes the transport when the waiter fails or the caller is
    // cancelled; dropping this future before it completes aborts it.
    let mut guard = AbortOnDrop(Some(transport.clone()));
    waiter.await?;
    guard.0 = None;
    Ok((transport, handle))
}

/// Accepts FIFOs (and so pipes), sockets and character devices.
fn check_pipe(fd: &impl AsFd) -> Result<(), Error> {
    let stat = rustix::fs::fstat(fd).map_err(io::Error::from)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Fifo | FileType::Socket | FileType::CharacterDevice => Ok(()),
        _ => Err(Error::invalid_argument(NOT_A_PIPE)),
    }
}

/// Aborts a transport whose creating future was dropped before it finished.
struct AbortOnDrop(Option<Transport>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(transport) = self.0.take() {
            transport.abort();
        }
    }
}
