//! [`streams_reader`]: a `StreamReader` fed through its `StreamFeed` in
//! arbitrary chunks, with EOF and an error at arbitrary points, read with
//! every read call (and `AsyncRead`/`AsyncBufRead`) under an arbitrary
//! limit, reads cancelled while waiting — against a model of asyncio's
//! `StreamReader` on a plain `Vec<u8>`.
//!
//! A read that must wait stays pending and is polled again only when its
//! waker was woken, as an executor would: a state change that would let it
//! complete without a wake-up is a lost wake-up (a hang in real use), and
//! fails here.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use arbitrary::{Arbitrary, Unstructured};
use evloop_core::{Error, EventLoop};
use evloop_transports::{StreamError, StreamFeed, StreamReader};
use futures_io::{AsyncBufRead, AsyncRead};

/// One step of a run.
#[derive(Arbitrary, Debug)]
enum Op {
    /// `feed_data(bytes)` (empty is ignored, as in asyncio).
    Feed(Vec<u8>),
    /// `feed_data` of `n` copies of `byte` (reaches past the limit cheaply).
    FeedRun(u8, u8),
    FeedEof,
    /// `set_exception`: pending and later reads fail.
    SetException,
    Read(u8),
    ReadExactly(u8),
    ReadLine,
    /// `readuntil` with a separator of up to 3 bytes (empty is an error).
    ReadUntil(Sep),
    ReadToEnd,
    /// `AsyncRead::poll_read` into a buffer of this size.
    PollRead(u8),
    /// `AsyncBufRead::poll_fill_buf`, then `consume(n)`.
    FillBuf(u8),
    /// Drop the pending read (cancellation): it must lose nothing.
    Cancel,
}

/// A short separator (the fuzzer finds multi-byte ones faster this way).
#[derive(Arbitrary, Debug, Clone)]
struct Sep {
    len: u8,
    bytes: [u8; 3],
}

impl Sep {
    fn bytes(&self) -> Vec<u8> {
        self.bytes[..usize::from(self.len % 4)].to_vec()
    }
}

/// What a read came to: the real one mapped to this and compared with the
/// model's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Data(Vec<u8>),
    Incomplete {
        partial: Vec<u8>,
        expected: Option<usize>,
    },
    Overrun(usize),
    InvalidArgument,
    /// The error given to `set_exception`.
    Failed,
}

/// A read call, as both sides run it.
#[derive(Debug, Clone)]
enum ReadCall {
    Read(usize),
    ReadExactly(usize),
    ReadLine,
    ReadUntil(Vec<u8>),
    ReadToEnd,
    PollRead(usize),
    FillBuf(usize),
}

/// asyncio's `StreamReader` on a `Vec<u8>`.
#[derive(Debug)]
struct Model {
    buf: Vec<u8>,
    eof: bool,
    failed: bool,
    limit: usize,
    /// Bytes a pending `read_to_end` has taken so far.
    to_end: Vec<u8>,
}

impl Model {
    /// The outcome of `call` now, or `None` if it has to wait. Applies the
    /// call's effect on the buffer only when it completes (or, for
    /// `read_to_end`, as it takes bytes).
    fn step(&mut self, call: &ReadCall) -> Option<Outcome> {
        if let ReadCall::ReadUntil(sep) = call {
            if sep.is_empty() {
                return Some(Outcome::InvalidArgument);
            }
        }
        if let ReadCall::PollRead(0) = call {
            return Some(Outcome::Data(Vec::new()));
        }
        if self.failed {
            self.to_end.clear();
            return Some(Outcome::Failed);
        }
        match call {
            ReadCall::Read(0) | ReadCall::ReadExactly(0) => Some(Outcome::Data(Vec::new())),
            ReadCall::Read(n) | ReadCall::PollRead(n) => {
                if self.buf.is_empty() && !self.eof {
                    return None;
                }
                let n = (*n).min(self.buf.len());
                Some(Outcome::Data(self.buf.drain(..n).collect()))
            }
            ReadCall::FillBuf(n) => {
                if self.buf.is_empty() && !self.eof {
                    return None;
                }
                let seen = self.buf.clone();
                let n = (*n).min(self.buf.len());
                self.buf.drain(..n);
                Some(Outcome::Data(seen))
            }
            ReadCall::ReadExactly(n) => {
                if self.buf.len() >= *n {
                    Some(Outcome::Data(self.buf.drain(..*n).collect()))
                } else if self.eof {
                    Some(Outcome::Incomplete {
                        partial: std::mem::take(&mut self.buf),
                        expected: Some(*n),
                    })
                } else {
                    None
                }
            }
            ReadCall::ReadUntil(sep) => self.readuntil(sep),
            ReadCall::ReadLine => match self.readuntil(b"\n")? {
                Outcome::Incomplete { partial, .. } => Some(Outcome::Data(partial)),
                Outcome::Overrun(consumed) => {
                    if self.buf.get(consumed) == Some(&b'\n') {
                        self.buf.drain(..=consumed);
                    } else {
                        self.buf.clear();
                    }
                    Some(Outcome::Overrun(consumed))
                }
                other => Some(other),
            },
            ReadCall::ReadToEnd => {
                self.to_end.append(&mut self.buf);
                self.eof
                    .then(|| Outcome::Data(std::mem::take(&mut self.to_end)))
            }
        }
    }

    fn readuntil(&mut self, sep: &[u8]) -> Option<Outcome> {
        if let Some(i) = self.buf.windows(sep.len()).position(|w| w == sep) {
            if i > self.limit {
                return Some(Outcome::Overrun(i));
            }
            return Some(Outcome::Data(self.buf.drain(..i + sep.len()).collect()));
        }
        if self.buf.len() >= sep.len() && self.buf.len() + 1 - sep.len() > self.limit {
            return Some(Outcome::Overrun(self.buf.len() + 1 - sep.len()));
        }
        if self.eof {
            return Some(Outcome::Incomplete {
                partial: std::mem::take(&mut self.buf),
                expected: None,
            });
        }
        None
    }
}

/// A waker that remembers being woken.
#[derive(Debug, Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

type Pending = Pin<Box<dyn Future<Output = Outcome>>>;

fn stream_outcome<T>(result: Result<Vec<u8>, T>) -> Outcome
where
    T: Into<StreamError>,
{
    match result.map_err(Into::into) {
        Ok(data) => Outcome::Data(data),
        Err(StreamError::IncompleteRead { partial, expected }) => {
            Outcome::Incomplete { partial, expected }
        }
        Err(StreamError::LimitOverrun { consumed, .. }) => Outcome::Overrun(consumed),
        Err(StreamError::Other(Error::InvalidArgument(_))) => Outcome::InvalidArgument,
        Err(StreamError::Other(Error::Io(e))) if e.to_string() == FAILURE => Outcome::Failed,
        Err(StreamError::Other(other)) => panic!("unexpected error from a read: {other:?}"),
    }
}

const FAILURE: &str = "fuzz: connection failed";

fn io_outcome(result: std::io::Result<Vec<u8>>) -> Outcome {
    match result {
        Ok(data) => Outcome::Data(data),
        Err(e) if e.to_string().contains(FAILURE) => Outcome::Failed,
        Err(e) => panic!("unexpected io error from AsyncRead/AsyncBufRead: {e:?}"),
    }
}

/// The real read as a future over the shared reader. It holds the
/// reader's `RefMut` while it waits, which is the point: one read at a time
/// (the `&mut self` of the reads), and `run` never starts a second one
/// while one is pending, so the borrow cannot conflict.
#[allow(clippy::await_holding_refcell_ref)]
fn start(reader: &Rc<RefCell<StreamReader>>, call: ReadCall) -> Pending {
    let reader = reader.clone();
    Box::pin(async move {
        let mut r = reader.borrow_mut();
        match call {
            ReadCall::Read(n) => stream_outcome(r.read(n).await),
            ReadCall::ReadExactly(n) => stream_outcome(r.readexactly(n).await),
            ReadCall::ReadLine => stream_outcome(r.readline().await),
            ReadCall::ReadUntil(sep) => stream_outcome(r.readuntil(&sep).await),
            ReadCall::ReadToEnd => stream_outcome(r.read_to_end().await),
            ReadCall::PollRead(n) => {
                let mut buf = vec![0u8; n];
                let result = std::future::poll_fn(|cx| {
                    AsyncRead::poll_read(Pin::new(&mut *r), cx, &mut buf)
                })
                .await;
                io_outcome(result.map(|k| buf[..k].to_vec()))
            }
            ReadCall::FillBuf(n) => {
                let result = std::future::poll_fn(|cx| {
                    AsyncBufRead::poll_fill_buf(Pin::new(&mut *r), cx)
                        .map(|r| r.map(<[u8]>::to_vec))
                })
                .await;
                if let Ok(seen) = &result {
                    AsyncBufRead::consume(Pin::new(&mut *r), n.min(seen.len()));
                }
                io_outcome(result)
            }
        }
    })
}

/// The fuzz target: see the module docs.
pub fn streams_reader(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(limit) = u.int_in_range(0u16..=300) else {
        return;
    };
    let limit = usize::from(limit);
    let event_loop = EventLoop::new().expect("event loop");
    let (reader, feed) = match StreamReader::with_feed(&event_loop, limit) {
        Ok(pair) => pair,
        Err(Error::InvalidArgument(_)) if limit == 0 => return,
        Err(other) => panic!("with_feed({limit}): {other:?}"),
    };
    assert_ne!(limit, 0, "with_feed(0) must fail");
    let reader = Rc::new(RefCell::new(reader));
    let mut model = Model {
        buf: Vec::new(),
        eof: false,
        failed: false,
        limit,
        to_end: Vec::new(),
    };
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let mut pending: Option<(ReadCall, Pending)> = None;
    let mut ops = 0;
    while !u.is_empty() {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        ops += 1;
        if ops > 500 {
            break;
        }
        let call = match op {
            Op::Feed(bytes) => {
                feed_data(&feed, &mut model, &bytes);
                None
            }
            Op::FeedRun(n, byte) => {
                feed_data(&feed, &mut model, &vec![byte; usize::from(n) * 4]);
                None
            }
            Op::FeedEof => {
                feed.feed_eof();
                model.eof = true;
                None
            }
            Op::SetException => {
                feed.set_exception(Error::Io(std::io::Error::other(FAILURE)));
                model.failed = true;
                None
            }
            Op::Cancel => {
                if let Some((ReadCall::ReadToEnd, _)) = pending {
                    // read_to_end consumes as it goes: what it took is lost
                    // with it, as asyncio's read(-1) loses it on cancel.
                    model.to_end.clear();
                }
                pending = None;
                None
            }
            Op::Read(n) => Some(ReadCall::Read(usize::from(n))),
            Op::ReadExactly(n) => Some(ReadCall::ReadExactly(usize::from(n))),
            Op::ReadLine => Some(ReadCall::ReadLine),
            Op::ReadUntil(sep) => Some(ReadCall::ReadUntil(sep.bytes())),
            Op::ReadToEnd => Some(ReadCall::ReadToEnd),
            Op::PollRead(n) => Some(ReadCall::PollRead(usize::from(n))),
            Op::FillBuf(n) => Some(ReadCall::FillBuf(usize::from(n))),
        };
        match call {
            // One read at a time (reads take `&mut self`).
            Some(call) if pending.is_none() => {
                flag.0.store(false, Ordering::SeqCst);
                let future = start(&reader, call.clone());
                pending = Some((call, future));
                poll_pending(&mut pending, &mut model, &waker, &flag, true);
            }
            Some(_) => {}
            None => poll_pending(&mut pending, &mut model, &waker, &flag, false),
        }
        if pending.is_none() {
            let at_eof = reader.borrow().at_eof();
            assert_eq!(at_eof, model.eof && model.buf.is_empty(), "at_eof()");
        }
    }
    drop(pending);
    drop(reader);
    drop(feed);
    event_loop.close().expect("close loop");
}

fn feed_data(feed: &StreamFeed, model: &mut Model, bytes: &[u8]) {
    feed.feed_data(bytes);
    model.buf.extend_from_slice(bytes);
}

/// Polls the pending read if it is new or was woken, and checks it against
/// the model; a read the model says can complete must have been woken.
fn poll_pending(
    pending: &mut Option<(ReadCall, Pending)>,
    model: &mut Model,
    waker: &Waker,
    flag: &Flag,
    first: bool,
) {
    let Some((call, future)) = pending else {
        return;
    };
    let woken = flag.0.swap(false, Ordering::SeqCst);
    if !first && !woken {
        // Not woken: an executor would not poll. Then the model must agree
        // that the read still cannot complete (a peek on a copy).
        let mut peek = Model {
            buf: model.buf.clone(),
            eof: model.eof,
            failed: model.failed,
            limit: model.limit,
            to_end: model.to_end.clone(),
        };
        let call = call.clone();
        if matches!(call, ReadCall::ReadToEnd) && !peek.buf.is_empty() {
            panic!("lost wake-up: read_to_end not woken by new data ({model:?})");
        }
        if let Some(outcome) = peek.step(&call) {
            panic!("lost wake-up: {call:?} could complete with {outcome:?} but was not woken");
        }
        return;
    }
    let mut cx = Context::from_waker(waker);
    let real = match future.as_mut().poll(&mut cx) {
        Poll::Ready(outcome) => Some(outcome),
        Poll::Pending => None,
    };
    let expected = model.step(call);
    assert_eq!(real, expected, "{call:?} diverged from the model");
    if real.is_some() {
        *pending = None;
    }
}
