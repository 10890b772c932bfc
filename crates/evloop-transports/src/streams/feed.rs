//! [`StreamFeed`]: the producing side of a [`StreamReader`]/[`StreamWriter`]
//! whose events come from somewhere other than the stream's own protocol —
//! a subprocess protocol's `pipe_data_received`, a test, a protocol of the
//! user's that also wants streams.
//!
//! The feed reaches the same shared state the internal `StreamProtocol`
//! feeds for [`open_connection`](super::open_connection): the reader's
//! buffer, EOF, exception and flow control, and the writer's
//! `pause_writing`/`resume_writing`/`connection_lost` state that `drain`
//! and `wait_closed` wait on. It splits asyncio's `StreamReaderProtocol` in
//! its two halves: [`feed_data`](StreamFeed::feed_data),
//! [`feed_eof`](StreamFeed::feed_eof) and
//! [`set_exception`](StreamFeed::set_exception) are the reader's
//! (`StreamReader.feed_*`), [`pause_writing`](StreamFeed::pause_writing),
//! [`resume_writing`](StreamFeed::resume_writing) and
//! [`connection_lost`](StreamFeed::connection_lost) the writer's
//! (`FlowControlMixin`), as asyncio's `SubprocessStreamProtocol` uses them.

use std::fmt;
use std::io;
use std::rc::Rc;

use evloop_core::{Error, EventLoop};

use super::{check_limit, Shared, StreamReader, StreamWriter};
use crate::transport::Transport;

/// Feeds a [`StreamReader`] and drives a [`StreamWriter`]'s flow control
/// from outside (asyncio's `StreamReader.feed_data`/`feed_eof`/
/// `set_exception`/`set_transport` plus the `FlowControlMixin` callbacks).
///
/// Made by [`StreamReader::with_feed`], [`StreamWriter::with_feed`] or
/// [`stream_pair`](super::stream_pair). Cheap to clone: every clone feeds
/// the same streams. Not `Send`. Holding a feed does not keep a transport
/// open.
///
/// # Examples
///
/// ```
/// use evloop_core::EventLoop;
/// use evloop_transports::{StreamReader, DEFAULT_LIMIT};
///
/// let lp = EventLoop::new()?;
/// let (mut reader, feed) = StreamReader::with_feed(&lp, DEFAULT_LIMIT)?;
/// feed.feed_data(b"one\ntwo");
/// feed.feed_eof();
/// let lines = lp.run_until_complete(async move {
///     let first = reader.readline().await?;
///     let rest = reader.read_to_end().await?;
///     Ok::<_, evloop_core::Error>((first, rest))
/// })??;
/// assert_eq!(lines, (b"one\n".to_vec(), b"two".to_vec()));
/// lp.close()?;
/// # Ok::<(), evloop_core::Error>(())
/// ```
#[derive(Clone)]
pub struct StreamFeed {
    shared: Rc<Shared>,
}

impl StreamFeed {
    /// Appends `data` to the reader's buffer and wakes a waiting read. Once
    /// more than `2 × limit` bytes are buffered, pauses the reading of the
    /// transport given to [`set_transport`](Self::set_transport) (if any);
    /// the reader resumes it at `≤ limit`. Empty `data` is ignored.
    pub fn feed_data(&self, data: &[u8]) {
        self.shared.feed_data(data);
    }

    /// The end of the data: reads return what is buffered, then EOF.
    pub fn feed_eof(&self) {
        self.shared.feed_eof();
    }

    /// Makes pending and later reads (and the writer's `drain`) fail with
    /// `error`, as asyncio's `StreamReader.set_exception`.
    pub fn set_exception(&self, error: Error) {
        self.shared.set_exception(error);
    }

    /// The transport whose reading the reader's flow control pauses and
    /// resumes (asyncio's `StreamReader.set_transport`). It must be a
    /// transport that reads (a read pipe, a socket).
    pub fn set_transport(&self, transport: Transport) {
        self.shared.set_transport(transport);
    }

    /// The writer's transport went above its high-water mark: `drain` waits
    /// from now on.
    pub fn pause_writing(&self) {
        self.shared.pause_writing();
    }

    /// The writer's transport drained to its low-water mark: waiting
    /// `drain`s complete.
    pub fn resume_writing(&self) {
        self.shared.resume_writing();
    }

    /// The writer's transport is gone (`FlowControlMixin.connection_lost`):
    /// `wait_closed` completes with `error` (or `Ok`), a waiting `drain`
    /// completes with it, and later `drain`s fail with `ConnectionReset`.
    /// The reader is not touched: feed it [`feed_eof`](Self::feed_eof) or
    /// [`set_exception`](Self::set_exception) as well when it reads the
    /// same connection. Only the first call counts.
    pub fn connection_lost(&self, error: Option<io::Error>) {
        self.shared.lost(error.map(Error::Io));
    }
}

impl fmt::Debug for StreamFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamFeed")
            .field("limit", &self.shared.limit)
            .finish_non_exhaustive()
    }
}

impl StreamReader {
    /// A reader fed through the returned [`StreamFeed`] rather than by a
    /// transport's protocol (asyncio's `StreamReader(limit)`, as
    /// `SubprocessStreamProtocol` makes for a child's stdout). Call
    /// [`StreamFeed::set_transport`] for flow control.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `limit == 0`.
    pub fn with_feed(
        event_loop: &EventLoop,
        limit: usize,
    ) -> Result<(StreamReader, StreamFeed), Error> {
        check_limit(limit)?;
        let shared = Shared::new(event_loop, limit);
        Ok((StreamReader::new(shared.clone()), StreamFeed { shared }))
    }
}

impl StreamWriter {
    /// A writer over `transport` whose flow control and loss are reported
    /// through the returned [`StreamFeed`] (asyncio's `StreamWriter` over a
    /// transport whose protocol is someone else's, as a child's stdin).
    ///
    /// Without [`StreamFeed::pause_writing`] calls `drain` never waits;
    /// without [`StreamFeed::connection_lost`] `wait_closed` never
    /// completes. Dropping the writer while `transport` is open closes the
    /// transport (the buffered bytes are still flushed), quietly: for a
    /// child's stdin that is how it learns there is no more input, as with
    /// `std::process::ChildStdin`.
    pub fn with_feed(event_loop: &EventLoop, transport: Transport) -> (StreamWriter, StreamFeed) {
        let shared = Shared::new(event_loop, super::DEFAULT_LIMIT);
        let mut writer = StreamWriter::new(transport, shared.clone());
        writer.warn_on_drop = false;
        (writer, StreamFeed { shared })
    }
}

/// A reader and a writer over `transport`, both driven through the
/// returned [`StreamFeed`] (the reader's flow control pauses `transport`'s
/// reading): the streams of a connection whose protocol is the caller's.
///
/// # Errors
/// [`Error::InvalidArgument`] for `limit == 0`.
#[doc(alias = "StreamReaderProtocol")]
pub fn stream_pair(
    event_loop: &EventLoop,
    transport: Transport,
    limit: usize,
) -> Result<(StreamReader, StreamWriter, StreamFeed), Error> {
    check_limit(limit)?;
    let shared = Shared::new(event_loop, limit);
    shared.set_transport(transport.clone());
    Ok((
        StreamReader::new(shared.clone()),
        StreamWriter::new(transport, shared.clone()),
        StreamFeed { shared },
    ))
}
