//! [`StreamReader`] (asyncio's `StreamReader`): a buffer fed by the
//! connection's protocol, read with `read`/`readline`/`readexactly`/
//! `readuntil` and through futures-io's `AsyncRead` and `AsyncBufRead`.
//!
//! # Implementation
//!
//! The buffer is split in two: the protocol appends to `incoming` (in the
//! shared state), and the reader owns the front part it parses. Each read
//! first moves `incoming` to the front — swapping the two vectors when the
//! front is used up, so that data is copied once, by `data_received`. The
//! total size (front + incoming) drives asyncio's flow control: reading
//! pauses above `2 × limit` and resumes at `≤ limit`. Reads consume bytes
//! only when they complete, so a dropped (cancelled) read loses nothing.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_core::Error;
use futures_io::{AsyncBufRead, AsyncRead};

use super::{into_io, Shared, StreamError};

/// The protocol-side half of the reader's state.
#[derive(Debug, Default)]
pub(crate) struct ReadState {
    /// Bytes received and not yet moved to the reader's front buffer.
    incoming: Vec<u8>,
    /// Bytes buffered in total: the front's unread part plus `incoming`.
    size: usize,
    eof: bool,
    exception: Option<Error>,
    /// The reader waiting for data (only one can: reads take `&mut self`).
    waker: Option<Waker>,
    /// We paused the transport's reading (asyncio's `_paused`).
    paused: bool,
}

impl Shared {
    /// asyncio's `feed_data`: appends, wakes the reader, pauses reading
    /// above `2 × limit`.
    pub(super) fn feed_data(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let transport = self.transport();
        let (waker, pause) = {
            let mut st = self.read.borrow_mut();
            st.incoming.extend_from_slice(data);
            st.size += data.len();
            let pause = transport.is_some() && !st.paused && st.size > self.limit.saturating_mul(2);
            st.paused |= pause;
            (st.waker.take(), pause)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        if let (true, Some(transport)) = (pause, transport) {
            transport.pause_reading();
        }
    }

    /// asyncio's `feed_eof`.
    pub(super) fn feed_eof(&self) {
        let waker = {
            let mut st = self.read.borrow_mut();
            st.eof = true;
            st.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// asyncio's `set_exception`: pending and later reads fail with `error`.
    pub(super) fn set_exception(&self, error: Error) {
        let waker = {
            let mut st = self.read.borrow_mut();
            st.exception = Some(error);
            st.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The reader's exception, if any.
    pub(super) fn exception(&self) -> Option<Error> {
        self.read.borrow().exception.clone()
    }

    /// `n` bytes left the buffer: resume reading at `≤ limit` (asyncio's
    /// `_maybe_resume_transport`).
    fn consumed(&self, n: usize) {
        let resume = {
            let mut st = self.read.borrow_mut();
            st.size -= n;
            let resume = st.paused && st.size <= self.limit;
            st.paused &= !resume;
            resume
        };
        if resume {
            if let Some(transport) = self.transport() {
                transport.resume_reading();
            }
        }
    }

    /// Before waiting for data: resume reading even above the limit (a
    /// `readuntil` may need more than `2 × limit` bytes), then register.
    fn prepare_wait(&self, waker: &Waker) {
        let resume = {
            let mut st = self.read.borrow_mut();
            let resume = st.paused;
            st.paused = false;
            match &st.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => st.waker = Some(waker.clone()),
            }
            resume
        };
        if resume {
            if let Some(transport) = self.transport() {
                transport.resume_reading();
            }
        }
    }
}

/// Reads a connection's bytes (asyncio's `StreamReader`). Made by
/// [`open_connection`](super::open_connection) and friends; not `Send`.
///
/// Reads take `&mut self`, so two reads can never wait at once (asyncio's
/// `RuntimeError('… already waiting for incoming data')` cannot happen).
/// Every read is cancel-safe: bytes are consumed only when it completes.
pub struct StreamReader {
    shared: Rc<Shared>,
    /// The front of the buffer; `front[pos..]` is unread.
    front: Vec<u8>,
    pos: usize,
}

impl StreamReader {
    pub(super) fn new(shared: Rc<Shared>) -> StreamReader {
        StreamReader {
            shared,
            front: Vec::new(),
            pos: 0,
        }
    }

    /// The buffer limit this reader was made with.
    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    /// True once EOF was fed and the buffer is empty (asyncio's `at_eof`).
    pub fn at_eof(&self) -> bool {
        let st = self.shared.read.borrow();
        st.eof && st.size == 0
    }

    /// The connection's error, once it was lost with one.
    pub fn exception(&self) -> Option<Error> {
        self.shared.exception()
    }

    /// Reads up to `n` bytes: waits until at least one byte is buffered (or
    /// EOF), then returns what is there, at most `n`. Empty at EOF and for
    /// `n == 0`. (asyncio's `read(-1)` is [`read_to_end`](Self::read_to_end).)
    ///
    /// # Errors
    /// The connection's error, if it was lost with one.
    pub async fn read(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        self.check_exception()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        loop {
            self.gather();
            if !self.unread().is_empty() || self.eof() {
                break;
            }
            self.wait_for_data().await?;
        }
        let n = n.min(self.unread().len());
        Ok(self.take_front(n))
    }

    /// Reads until EOF (asyncio's `read(-1)`), consuming as data arrives so
    /// that reading never pauses.
    ///
    /// # Errors
    /// The connection's error, if it was lost with one (the bytes read so
    /// far are dropped, as in asyncio).
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        loop {
            self.check_exception()?;
            self.gather();
            let n = self.unread().len();
            if n > 0 {
                if out.is_empty() {
                    out = self.take_front(n);
                } else {
                    out.extend_from_slice(self.unread());
                    self.discard(n);
                }
                continue;
            }
            if self.eof() {
                return Ok(out);
            }
            self.wait_for_data().await?;
        }
    }

    /// Reads exactly `n` bytes (empty for `n == 0`).
    ///
    /// # Errors
    /// [`StreamError::IncompleteRead`] with every byte that was buffered
    /// (now consumed) and `expected: Some(n)` if EOF comes first;
    /// [`StreamError::Other`] with the connection's error.
    pub async fn readexactly(&mut self, n: usize) -> Result<Vec<u8>, StreamError> {
        self.check_exception()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        loop {
            self.gather();
            if self.unread().len() >= n {
                return Ok(self.take_front(n));
            }
            if self.eof() {
                let partial = self.take_all();
                return Err(StreamError::IncompleteRead {
                    partial,
                    expected: Some(n),
                });
            }
            self.wait_for_data().await?;
        }
    }

    /// Reads one line: up to and including `b'\n'`; at EOF the partial
    /// line (empty once at EOF).
    ///
    /// # Errors
    /// [`StreamError::LimitOverrun`] (asyncio raises it as `ValueError`)
    /// when no newline is found within the limit: the buffer is then
    /// cleared up to and including the newline if one is buffered, else
    /// cleared entirely. [`StreamError::Other`] with the connection's error.
    pub async fn readline(&mut self) -> Result<Vec<u8>, StreamError> {
        match self.readuntil(b"\n").await {
            Ok(line) => Ok(line),
            Err(StreamError::IncompleteRead { partial, .. }) => Ok(partial),
            Err(StreamError::LimitOverrun { message, consumed }) => {
                self.gather();
                if self.unread().get(consumed) == Some(&b'\n') {
                    self.discard(consumed + 1);
                } else {
                    let n = self.unread().len();
                    self.discard(n);
                }
                Err(StreamError::LimitOverrun { message, consumed })
            }
            Err(other) => Err(other),
        }
    }

    /// Reads up to and including `separator`.
    ///
    /// # Errors
    /// [`StreamError::Other`] with [`Error::InvalidArgument`] for an empty
    /// separator, or with the connection's error;
    /// [`StreamError::IncompleteRead`] (`expected: None`) with the whole
    /// buffer (now consumed) at EOF before the separator;
    /// [`StreamError::LimitOverrun`] when the separator is not found within
    /// `limit` bytes (`consumed` = how far it was searched) or is found
    /// beyond it (`consumed` = its offset) — the buffer is left as it was.
    pub async fn readuntil(&mut self, separator: &[u8]) -> Result<Vec<u8>, StreamError> {
        if separator.is_empty() {
            return Err(Error::invalid_argument(
                "separator: Separator should be at least one-byte string",
            )
            .into());
        }
        self.check_exception()?;
        let limit = self.shared.limit;
        let seplen = separator.len();
        // Where the search resumes: bytes before it were already searched.
        let mut offset = 0;
        let isep = loop {
            self.gather();
            let buf = self.unread();
            if buf.len() - offset >= seplen {
                if let Some(i) = find(&buf[offset..], separator) {
                    break offset + i;
                }
                offset = buf.len() + 1 - seplen;
                if offset > limit {
                    return Err(StreamError::LimitOverrun {
                        message: "Separator is not found, and chunk exceed the limit".to_owned(),
                        consumed: offset,
                    });
                }
            }
            if self.eof() {
                let partial = self.take_all();
                return Err(StreamError::IncompleteRead {
                    partial,
                    expected: None,
                });
            }
            self.wait_for_data().await?;
        };
        if isep > limit {
            return Err(StreamError::LimitOverrun {
                message: "Separator is found, but chunk is longer than limit".to_owned(),
                consumed: isep,
            });
        }
        Ok(self.take_front(isep + seplen))
    }

    fn check_exception(&self) -> Result<(), Error> {
        match self.shared.exception() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn eof(&self) -> bool {
        self.shared.read.borrow().eof
    }

    fn unread(&self) -> &[u8] {
        &self.front[self.pos..]
    }

    /// Moves the protocol's new bytes to the front buffer (a swap when the
    /// front is used up).
    fn gather(&mut self) {
        let mut st = self.shared.read.borrow_mut();
        if st.incoming.is_empty() {
            return;
        }
        if self.pos == self.front.len() {
            self.front.clear();
            self.pos = 0;
            std::mem::swap(&mut self.front, &mut st.incoming);
        } else {
            if self.pos > 0 && self.pos >= self.front.len() / 2 {
                self.front.drain(..self.pos);
                self.pos = 0;
            }
            self.front.extend_from_slice(&st.incoming);
            st.incoming.clear();
        }
    }

    /// Removes and returns the first `n` unread bytes (no copy when they
    /// are the whole front buffer).
    fn take_front(&mut self, n: usize) -> Vec<u8> {
        let out = if self.pos == 0 && n == self.front.len() {
            std::mem::take(&mut self.front)
        } else {
            let out = self.front[self.pos..self.pos + n].to_vec();
            self.pos += n;
            if self.pos == self.front.len() {
                self.front.clear();
                self.pos = 0;
            }
            out
        };
        self.shared.consumed(n);
        out
    }

    /// Drops the first `n` unread bytes.
    fn discard(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.front.len() {
            self.front.clear();
            self.pos = 0;
        }
        self.shared.consumed(n);
    }

    fn take_all(&mut self) -> Vec<u8> {
        self.gather();
        let n = self.unread().len();
        self.take_front(n)
    }

    /// asyncio's `_wait_for_data`: resumes reading if paused, then waits
    /// for the protocol to feed data, EOF or an error.
    fn wait_for_data(&self) -> impl Future<Output = Result<(), Error>> + '_ {
        let mut waited = false;
        poll_fn(move |cx| {
            if let Some(error) = self.shared.exception() {
                return Poll::Ready(Err(error));
            }
            if waited {
                return Poll::Ready(Ok(()));
            }
            waited = true;
            self.shared.prepare_wait(cx.waker());
            Poll::Pending
        })
    }

    /// Ready once bytes are buffered, at EOF, or with the error.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.shared.exception() {
            return Poll::Ready(Err(into_io(error)));
        }
        self.gather();
        if !self.unread().is_empty() || self.eof() {
            return Poll::Ready(Ok(()));
        }
        self.shared.prepare_wait(cx.waker());
        Poll::Pending
    }
}

/// The first occurrence of `needle` (non-empty) in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last_start = haystack.len().checked_sub(needle.len())?;
    let mut from = 0;
    while from <= last_start {
        let i = from
            + haystack[from..=last_start]
                .iter()
                .position(|&b| b == first)?;
        if haystack[i + 1..].starts_with(rest) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

impl AsyncRead for StreamReader {
    /// Copies buffered bytes into `buf`; `Ok(0)` at EOF; the connection's
    /// error as an [`io::Error`].
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match this.poll_fill(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map_ok(|()| 0),
        }
        let n = buf.len().min(this.unread().len());
        buf[..n].copy_from_slice(&this.unread()[..n]);
        this.discard(n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncBufRead for StreamReader {
    /// The buffered bytes (empty at EOF), waiting for some if there are none.
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        match this.poll_fill(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(this.unread())),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.unread().len());
        this.discard(amt);
    }
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.read.borrow();
        f.debug_struct("StreamReader")
            .field("limit", &self.shared.limit)
            .field("buffered", &st.size)
            .field("eof", &st.eof)
            .field("exception", &st.exception)
            .field("paused", &st.paused)
            .finish()
    }
}
