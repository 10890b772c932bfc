//! docs/behaviour.md 7.8: one readiness event reads on while each read fills
//! the protocol's buffer, up to 8 reads, and stops as soon as the protocol
//! no longer wants data (paused, closed) — so a large message costs one loop
//! iteration, not one per buffer, without letting one connection hold the
//! loop. Driven through `BufferedProtocol`s with small buffers over a unix
//! socketpair, so that "fills the buffer" is exact.

mod support;

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop_transports::{connect_accepted_socket, BufferedProtocol, Protocol, Transport};
use support::*;

/// Reads into `size`-byte buffers; logs each `buffer_updated` size; on the
/// `pause_after`-th read pauses reading, on `close_after`-th closes.
struct Chunked {
    size: usize,
    buf: Vec<u8>,
    reads: Rc<RefCell<Vec<usize>>>,
    transport: Option<Transport>,
    pause_after: Option<usize>,
    close_after: Option<usize>,
}

impl BufferedProtocol for Chunked {
    fn get_buffer(&mut self, _size_hint: usize) -> &mut [u8] {
        self.buf.resize(self.size, 0);
        &mut self.buf
    }
    fn buffer_updated(&mut self, nbytes: usize) {
        self.reads.borrow_mut().push(nbytes);
        let count = self.reads.borrow().len();
        let t = self.transport.as_ref().expect("connected");
        if self.pause_after == Some(count) {
            t.pause_reading();
        }
        if self.close_after == Some(count) {
            t.close();
        }
    }
}

/// A do-nothing protocol to connect with; swapped for [`Chunked`] at once.
struct Idle;
impl Protocol for Idle {
    fn data_received(&mut self, _: &[u8]) {}
}

/// Connects `chunked` to one end of a socketpair (`set_buffered_protocol`
/// makes no `connection_made`, as asyncio's `set_protocol`, so the
/// transport is handed over here); returns the other end.
fn connect(fx: &Fixture, mut chunked: Chunked) -> (Transport, UnixStream) {
    let (ours, peer) = UnixStream::pair().expect("socketpair");
    let sock = OwnedFd::from(ours);
    let (transport, _) = fx
        .run(connect_accepted_socket(&fx.lp, || Idle, sock, None))
        .expect("connect");
    chunked.transport = Some(transport.clone());
    let handle = evloop_transports::ProtocolHandle::new(chunked);
    transport.set_buffered_protocol(&handle);
    (transport, peer)
}

fn chunked(size: usize, reads: &Rc<RefCell<Vec<usize>>>) -> Chunked {
    Chunked {
        size,
        buf: Vec::new(),
        reads: reads.clone(),
        transport: None,
        pause_after: None,
        close_after: None,
    }
}

#[test]
fn spec_7_8_one_event_reads_on_while_reads_fill_the_buffer_up_to_eight() {
    let fx = Fixture::new();
    let reads = Rc::new(RefCell::new(Vec::new()));
    let (transport, mut peer) = connect(&fx, chunked(1000, &reads));
    // 10 full buffers and a short one, all queued before the iteration.
    peer.write_all(&[7; 10_500]).unwrap();
    fx.turn();
    assert_eq!(
        *reads.borrow(),
        [1000; 8],
        "one event: eight full reads, then the budget"
    );
    fx.turn();
    assert_eq!(
        reads.borrow()[8..],
        [1000, 1000, 500],
        "the rest on the next event"
    );
    // A short read ends the event: nothing more is asked of the socket.
    peer.write_all(&[7; 300]).unwrap();
    fx.turn();
    assert_eq!(reads.borrow()[11..], [300]);
    transport.close();
    fx.drain();
    drop(peer);
    fx.finish();
}

#[test]
fn spec_7_8_pause_reading_inside_the_event_stops_its_reads() {
    let fx = Fixture::new();
    let reads = Rc::new(RefCell::new(Vec::new()));
    let mut protocol = chunked(1000, &reads);
    protocol.pause_after = Some(2);
    let (transport, mut peer) = connect(&fx, protocol);
    peer.write_all(&[7; 5000]).unwrap();
    fx.turn();
    fx.turn();
    assert_eq!(
        *reads.borrow(),
        [1000, 1000],
        "paused after the second read"
    );
    transport.resume_reading();
    fx.turn();
    assert_eq!(reads.borrow()[2..], [1000, 1000, 1000], "resumed: the rest");
    transport.close();
    fx.drain();
    drop(peer);
    fx.finish();
}

#[test]
fn spec_7_8_close_inside_the_event_stops_its_reads() {
    let fx = Fixture::new();
    let reads = Rc::new(RefCell::new(Vec::new()));
    let mut protocol = chunked(1000, &reads);
    protocol.close_after = Some(3);
    let (_transport, mut peer) = connect(&fx, protocol);
    peer.write_all(&[7; 6000]).unwrap();
    fx.drain();
    assert_eq!(
        *reads.borrow(),
        [1000, 1000, 1000],
        "closed after the third read"
    );
    drop(peer);
    fx.finish();
}
