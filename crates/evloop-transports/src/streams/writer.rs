//! [`StreamWriter`] (asyncio's `StreamWriter`): writes go straight to the
//! transport; `drain` waits while the transport's buffer is above its
//! high-water mark; futures-io's `AsyncWrite` with the same back-pressure.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_core::Error;
use futures_io::AsyncWrite;

use super::{into_io, Shared, YieldNow};
use crate::address::Address;
use crate::layer::AnyProtocol;
use crate::transport::Transport;

/// The protocol-side half of the writer's state (asyncio's
/// `FlowControlMixin` plus the `_closed` future).
#[derive(Debug, Default)]
pub(crate) struct WriteState {
    /// `pause_writing` was called and `resume_writing` not yet.
    paused: bool,
    /// Set by `connection_lost`: `Ok` for a clean loss, the error otherwise.
    lost: Option<Result<(), Error>>,
    /// Tasks in `drain`/`poll_write`/`poll_flush` waiting for resume or loss.
    drain_wakers: Vec<Waker>,
    /// Tasks in `wait_closed`/`poll_close`.
    closed_wakers: Vec<Waker>,
}

fn register(wakers: &mut Vec<Waker>, waker: &Waker) {
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

fn wake_all(wakers: Vec<Waker>) {
    wakers.into_iter().for_each(Waker::wake);
}

/// asyncio's `ConnectionResetError('Connection lost')`.
fn connection_lost_error() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "Connection lost",
    ))
}

impl Shared {
    pub(super) fn pause_writing(&self) {
        self.write.borrow_mut().paused = true;
    }

    pub(super) fn resume_writing(&self) {
        let wakers = {
            let mut st = self.write.borrow_mut();
            st.paused = false;
            std::mem::take(&mut st.drain_wakers)
        };
        wake_all(wakers);
    }

    /// `connection_lost`: completes `wait_closed` and wakes `drain`.
    pub(super) fn lost(&self, error: Option<Error>) {
        let (drain, closed) = {
            let mut st = self.write.borrow_mut();
            if st.lost.is_none() {
                st.lost = Some(error.map_or(Ok(()), Err));
            }
            (
                std::mem::take(&mut st.drain_wakers),
                std::mem::take(&mut st.closed_wakers),
            )
        };
        wake_all(drain);
        wake_all(closed);
    }

    /// asyncio's `_drain_helper`, as a poll: `first` is the first poll.
    fn poll_drain(&self, cx: &mut Context<'_>, first: bool) -> Poll<Result<(), Error>> {
        let mut st = self.write.borrow_mut();
        match &st.lost {
            Some(_) if first => return Poll::Ready(Err(connection_lost_error())),
            // Lost while we waited: asyncio completes the waiter with the
            // connection's outcome.
            Some(outcome) => return Poll::Ready(outcome.clone()),
            None => {}
        }
        if !st.paused {
            return Poll::Ready(Ok(()));
        }
        register(&mut st.drain_wakers, cx.waker());
        Poll::Pending
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut st = self.write.borrow_mut();
        if let Some(outcome) = &st.lost {
            return Poll::Ready(outcome.clone());
        }
        register(&mut st.closed_wakers, cx.waker());
        Poll::Pending
    }
}

/// Writes to a connection (asyncio's `StreamWriter`). Not `Send`.
///
/// Dropping a writer whose transport is still open closes it (with a
/// warning, as asyncio 3.13's `StreamWriter.__del__` does): a handler that
/// just returns does not leak its connection. A writer made by
/// [`with_feed`](StreamWriter::with_feed) (a child's stdin) closes without
/// the warning: dropping it is how the child gets EOF.
pub struct StreamWriter {
    /// Replaced by [`start_layer`](StreamWriter::start_layer) (STARTTLS).
    transport: RefCell<Transport>,
    shared: Rc<Shared>,
    /// `poll_write`/`poll_flush` is waiting (their next poll is not a first).
    flush_waiting: bool,
    /// Dropping it open warns (a connection's writer); a fed writer
    /// ([`StreamWriter::with_feed`]) closes quietly.
    pub(super) warn_on_drop: bool,
}

impl StreamWriter {
    pub(super) fn new(transport: Transport, shared: Rc<Shared>) -> StreamWriter {
        StreamWriter {
            transport: RefCell::new(transport),
            shared,
            flush_waiting: false,
            warn_on_drop: true,
        }
    }

    /// Writes `data` through the transport (straight to the fd when nothing
    /// is buffered). Never blocks; use [`drain`](Self::drain) for
    /// back-pressure. Dropped silently once the connection is lost.
    pub fn write(&self, data: &[u8]) {
        self.transport.borrow().write(data);
    }

    /// Writes each buffer in order.
    pub fn writelines<'a>(&self, data: impl IntoIterator<Item = &'a [u8]>) {
        self.transport.borrow().writelines(data);
    }

    /// Shuts down the write side once the buffer is flushed; reading goes on.
    pub fn write_eof(&self) {
        self.transport.borrow().write_eof();
    }

    /// True: stream sockets can half-close.
    pub fn can_write_eof(&self) -> bool {
        self.transport.borrow().can_write_eof()
    }

    /// Waits until the transport's buffer is at or below its low-water mark
    /// (at once when it never went above the high one).
    ///
    /// # Errors
    /// The reader's exception if it has one; once the connection is lost,
    /// `Io(ConnectionReset, "Connection lost")`; if it is lost while this
    /// waits, the connection's error (or `Ok` for a clean loss, as asyncio).
    pub async fn drain(&self) -> Result<(), Error> {
        if let Some(error) = self.shared.exception() {
            return Err(error);
        }
        if self.transport.borrow().is_closing() {
            // Let a pending connection_lost run first (asyncio's sleep(0)).
            YieldNow::default().await;
        }
        let mut first = true;
        poll_fn(|cx| {
            let poll = self.shared.poll_drain(cx, first);
            first = false;
            poll
        })
        .await
    }

    /// Closes the transport (after flushing its buffer).
    pub fn close(&self) {
        self.transport.borrow().close();
    }

    /// True once closing or closed.
    pub fn is_closing(&self) -> bool {
        self.transport.borrow().is_closing()
    }

    /// Completes after `connection_lost`.
    ///
    /// # Errors
    /// The error the connection was lost with, if any.
    pub async fn wait_closed(&self) -> Result<(), Error> {
        poll_fn(|cx| self.shared.poll_closed(cx)).await
    }

    /// The underlying transport.
    pub fn transport(&self) -> Transport {
        self.transport.borrow().clone()
    }

    /// Moves the connection onto a transport layered over the current one
    /// (`evloop_tls`'s `start_tls` for streams does this): drains the write
    /// buffer, then `start` gets the current transport and the protocol that
    /// feeds this connection's reader, and returns the new transport, which
    /// this writer (and the reader's flow control) use from then on. Bytes
    /// the reader already holds stay readable.
    ///
    /// # Errors
    /// What `drain` or `start` fails with; the connection is then as
    /// `start` left it.
    pub async fn start_layer<F, Fut>(&self, start: F) -> Result<(), Error>
    where
        F: FnOnce(Transport, AnyProtocol) -> Fut,
        Fut: Future<Output = Result<Transport, Error>>,
    {
        self.drain().await?;
        let protocol = self.shared.fresh_protocol();
        let layered = start(self.transport(), protocol).await?;
        *self.transport.borrow_mut() = layered.clone();
        self.shared.set_transport(layered);
        Ok(())
    }

    /// The peer's address.
    #[doc(alias = "get_extra_info")]
    pub fn peername(&self) -> Option<Address> {
        self.transport.borrow().peername()
    }

    /// Our address.
    #[doc(alias = "get_extra_info")]
    pub fn sockname(&self) -> Option<Address> {
        self.transport.borrow().sockname()
    }

    /// `poll_flush`'s and `poll_write`'s wait: drain semantics without the
    /// yield.
    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.shared.exception() {
            self.flush_waiting = false;
            return Poll::Ready(Err(into_io(error)));
        }
        let first = !self.flush_waiting;
        match self.shared.poll_drain(cx, first) {
            Poll::Pending => {
                self.flush_waiting = true;
                Poll::Pending
            }
            Poll::Ready(outcome) => {
                self.flush_waiting = false;
                Poll::Ready(outcome.map_err(into_io))
            }
        }
    }
}

impl AsyncWrite for StreamWriter {
    /// Hands `buf` to the transport; `Pending` while the transport is above
    /// its high-water mark (until it drains to the low one). Fails once
    /// the connection is lost.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shared.write.borrow().lost.is_some() {
            this.flush_waiting = false;
            return Poll::Ready(Err(into_io(connection_lost_error())));
        }
        match this.poll_writable(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        this.transport.borrow().write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    /// Waits like [`StreamWriter::drain`]: until the transport's buffer is
    /// at or below its low-water mark. (The transport flushes the rest
    /// before it closes.)
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_writable(cx)
    }

    /// [`close`](StreamWriter::close) then
    /// [`wait_closed`](StreamWriter::wait_closed).
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.transport.borrow().close();
        this.shared.poll_closed(cx).map_err(into_io)
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if !self.transport.borrow().is_closing() {
            if self.warn_on_drop {
                tracing::warn!(target: "evloop::transports", transport = ?self.transport, "unclosed StreamWriter dropped; closing it");
            } else {
                tracing::debug!(target: "evloop::transports", transport = ?self.transport, "StreamWriter dropped; closing its transport");
            }
            self.transport.borrow().close();
        }
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("transport", &*self.transport.borrow())
            .field("paused", &self.shared.write.borrow().paused)
            .finish()
    }
}
