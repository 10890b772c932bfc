//! [`transport_read`]: the stream transport's read path on a real loop and
//! a unix socketpair. The peer writes arbitrary chunks; the loop turns an
//! arbitrary number of times between them; reading is paused and resumed,
//! the protocol switched between a `Protocol` and a `BufferedProtocol`
//! whose buffers have arbitrary sizes; the peer half-closes; our side may
//! close or abort.
//!
//! The checks: the bytes delivered are exactly the bytes written, in order
//! (a prefix of them if our side closed first); nothing is delivered while
//! reading is paused; `connection_made` once; `eof_received` at most once
//! and exactly once if the peer's EOF was read; `connection_lost` exactly
//! once and last, with no error unless a `get_buffer` returned an empty
//! buffer; the transport's fd is closed at the end (the peer reads EOF).

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use arbitrary::{Arbitrary, Unstructured};
use evloop_core::{ErrorContext, EventLoop};
use evloop_transports::{
    connect_accepted_socket, BufferedProtocol, Protocol, ProtocolHandle, Transport,
};
use rustix::net::{send, shutdown, SendFlags, Shutdown};

#[derive(Arbitrary, Debug)]
enum Op {
    /// The peer writes these bytes.
    Write(Vec<u8>),
    /// The peer writes `4 × n` copies of a byte.
    WriteRun(u16, u8),
    /// The loop turns `n % 8 + 1` times (zero-timeout iterations).
    Turn(u8),
    Pause,
    Resume,
    /// Switch between the `Protocol` and the `BufferedProtocol`.
    Switch,
    /// The `BufferedProtocol`'s next buffers are this big (0: empty, an error).
    BufferSize(u16),
    /// What `eof_received` returns from now on (true: keep the write side).
    KeepOpen(bool),
    /// The peer half-closes.
    PeerEof,
    Close,
    Abort,
}

/// Everything both protocols saw, in one place.
#[derive(Default)]
struct Log {
    made: usize,
    data: Vec<u8>,
    deliveries: usize,
    eof: usize,
    keep_open: bool,
    lost: Vec<Option<String>>,
    /// Events after `connection_lost`.
    late: usize,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("made", &self.made)
            .field("bytes", &self.data.len())
            .field("deliveries", &self.deliveries)
            .field("eof", &self.eof)
            .field("keep_open", &self.keep_open)
            .field("lost", &self.lost)
            .field("late", &self.late)
            .finish()
    }
}

impl Log {
    fn event(&mut self) {
        if !self.lost.is_empty() {
            self.late += 1;
        }
    }
    fn deliver(&mut self, data: &[u8]) {
        self.event();
        self.data.extend_from_slice(data);
        self.deliveries += 1;
    }
    fn eof(&mut self) -> bool {
        self.event();
        self.eof += 1;
        self.keep_open
    }
    fn lost(&mut self, error: Option<io::Error>) {
        self.event();
        self.lost.push(error.map(|e| e.to_string()));
    }
}

struct Plain(Rc<RefCell<Log>>);

impl Protocol for Plain {
    fn connection_made(&mut self, _transport: Transport) {
        self.0.borrow_mut().made += 1;
    }
    fn data_received(&mut self, data: &[u8]) {
        self.0.borrow_mut().deliver(data);
    }
    fn eof_received(&mut self) -> bool {
        self.0.borrow_mut().eof()
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.0.borrow_mut().lost(error);
    }
}

struct Buffered {
    log: Rc<RefCell<Log>>,
    size: Rc<Cell<usize>>,
    buf: Vec<u8>,
}

impl BufferedProtocol for Buffered {
    fn get_buffer(&mut self, _size_hint: usize) -> &mut [u8] {
        self.buf.resize(self.size.get(), 0);
        &mut self.buf
    }
    fn buffer_updated(&mut self, nbytes: usize) {
        assert!(
            nbytes <= self.buf.len(),
            "buffer_updated({nbytes}) past the buffer"
        );
        self.log.borrow_mut().deliver(&self.buf[..nbytes]);
    }
    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().eof()
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.log.borrow_mut().lost(error);
    }
}

/// One zero-timeout loop iteration.
fn turn(event_loop: &EventLoop) {
    event_loop.stop();
    event_loop.run_forever().expect("one loop iteration");
}

/// The peer's side: writes without SIGPIPE, never blocking.
struct Peer {
    sock: UnixStream,
    written: Vec<u8>,
    shut: bool,
}

/// The most the peer writes in one run: with 1-byte `BufferedProtocol`
/// buffers every byte is a loop turn.
const MAX_WRITTEN: usize = 32 * 1024;

impl Peer {
    fn write(&mut self, data: &[u8]) {
        if self.shut {
            return;
        }
        let room = MAX_WRITTEN.saturating_sub(self.written.len());
        let mut rest = &data[..data.len().min(room)];
        while !rest.is_empty() {
            match send(&self.sock, rest, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
                Ok(n) => {
                    self.written.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
                // Full (reading is paused) or gone (our side closed).
                Err(_) => return,
            }
        }
    }
    fn eof(&mut self) {
        if !self.shut {
            self.shut = true;
            let _ = shutdown(&self.sock, Shutdown::Write);
        }
    }
}

/// The fuzz target: see the module docs.
pub fn transport_read(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let event_loop = EventLoop::new().expect("event loop");
    let handler_calls = Rc::new(RefCell::new(Vec::new()));
    let calls = handler_calls.clone();
    event_loop.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
        calls.borrow_mut().push(ctx.to_string());
    }));
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("nonblocking");
    let mut peer = Peer {
        sock: theirs,
        written: Vec::new(),
        shut: false,
    };
    let log = Rc::new(RefCell::new(Log::default()));
    let size = Rc::new(Cell::new(4096));
    let plain_log = log.clone();
    let connect = connect_accepted_socket(
        &event_loop,
        move || Plain(plain_log),
        OwnedFd::from(ours),
        None,
    );
    let (transport, plain) = event_loop
        .run_until_complete(connect)
        .expect("loop")
        .expect("connect_accepted_socket");
    assert_eq!(log.borrow().made, 1, "connection_made once");
    let buffered = ProtocolHandle::new(Buffered {
        log: log.clone(),
        size: size.clone(),
        buf: Vec::new(),
    });
    let mut is_buffered = false;
    let mut paused = false;
    let mut closed = false;
    let mut empty_buffer_seen = false;
    let mut ops = 0;
    while !u.is_empty() {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        ops += 1;
        if ops > 300 {
            break;
        }
        match op {
            Op::Write(bytes) => peer.write(&bytes),
            Op::WriteRun(n, byte) => peer.write(&vec![byte; usize::from(n) * 4]),
            Op::Turn(n) => {
                for _ in 0..=n % 8 {
                    let before = log.borrow().deliveries;
                    if is_buffered && size.get() == 0 && !closed {
                        empty_buffer_seen = true;
                    }
                    turn(&event_loop);
                    if paused {
                        assert_eq!(log.borrow().deliveries, before, "data while paused");
                    }
                }
            }
            Op::Pause => {
                transport.pause_reading();
                paused = !transport.is_closing();
                assert!(
                    !transport.is_reading(),
                    "is_reading() after pause_reading()"
                );
            }
            Op::Resume => {
                transport.resume_reading();
                paused = false;
            }
            Op::Switch => {
                is_buffered = !is_buffered;
                if is_buffered {
                    transport.set_buffered_protocol(&buffered);
                } else {
                    transport.set_protocol(&plain);
                }
            }
            Op::BufferSize(n) => size.set(usize::from(n)),
            Op::KeepOpen(keep) => log.borrow_mut().keep_open = keep,
            Op::PeerEof => peer.eof(),
            Op::Close => {
                transport.close();
                closed = true;
            }
            Op::Abort => {
                transport.abort();
                closed = true;
            }
        }
    }

    // Wind down: resume, half-close, let everything arrive, close.
    if is_buffered && size.get() == 0 {
        empty_buffer_seen = true;
    }
    transport.resume_reading();
    peer.eof();
    // Enough turns for one byte per turn (1-byte buffers), and then some.
    for _ in 0..peer.written.len() + 10_000 {
        if !log.borrow().lost.is_empty() {
            break;
        }
        if log.borrow().eof > 0 {
            transport.close();
        }
        turn(&event_loop);
    }
    for _ in 0..10 {
        turn(&event_loop);
    }
    let log = log.borrow();
    let errors = handler_calls.borrow();
    assert_eq!(log.lost.len(), 1, "connection_lost once: {log:?}");
    assert_eq!(log.late, 0, "events after connection_lost");
    assert_eq!(log.made, 1);
    assert!(log.eof <= 1, "eof_received {} times", log.eof);
    let failed = log.lost[0].is_some();
    if failed {
        assert!(
            empty_buffer_seen,
            "connection lost with an error: {:?} (handler: {errors:?})",
            log.lost[0]
        );
        assert!(
            !errors.is_empty(),
            "a fatal error reaches the exception handler"
        );
    } else {
        assert!(errors.is_empty(), "exception handler called: {errors:?}");
    }
    if closed || failed {
        assert!(
            peer.written.starts_with(&log.data),
            "delivered bytes are not a prefix of the written ones"
        );
    } else {
        assert_eq!(log.eof, 1, "the peer's EOF was read");
        assert!(
            log.data == peer.written,
            "delivered bytes differ from the written ones"
        );
    }
    // Our fd is closed: the peer reads EOF (or a reset), not "would block".
    let mut byte = [0u8; 1];
    match (&peer.sock).read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the transport's fd is still open: peer read {other:?}"),
    }
    drop(transport);
    drop(plain);
    drop(buffered);
    event_loop.close().expect("close loop");
}
