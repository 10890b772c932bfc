//! docs/behaviour.md 17.1, streams fed from outside: `StreamReader::with_feed`,
//! `StreamWriter::with_feed` and `stream_pair` driven through a
//! `StreamFeed` (as a subprocess's pipes are): fed bytes, EOF and errors;
//! the reader's flow control pausing the transport it was given; the
//! writer's `drain`/`wait_closed` following `pause_writing`,
//! `resume_writing` and `connection_lost`; a dropped fed writer closing its
//! transport after flushing.

mod support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::rc::Rc;

use evloop_core::Error;
use evloop_transports::{
    connect_read_pipe, connect_write_pipe, stream_pair, Protocol, StreamFeed, StreamReader,
    StreamWriter, Transport,
};
use futures_lite::future::poll_once;
use support::*;

/// Forwards a transport's events to a feed set once the streams exist.
#[derive(Clone, Default)]
struct Forward(Rc<RefCell<Option<StreamFeed>>>);

impl Forward {
    fn with(&self, f: impl FnOnce(&StreamFeed)) {
        if let Some(feed) = &*self.0.borrow() {
            f(feed);
        }
    }
}

impl Protocol for Forward {
    fn data_received(&mut self, data: &[u8]) {
        self.with(|feed| feed.feed_data(data));
    }
    fn eof_received(&mut self) -> bool {
        self.with(StreamFeed::feed_eof);
        false
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.with(|feed| {
            match &error {
                None => feed.feed_eof(),
                Some(e) => feed.set_exception(Error::Io(io::Error::new(e.kind(), e.to_string()))),
            }
            feed.connection_lost(error);
        });
    }
    fn pause_writing(&mut self) {
        self.with(StreamFeed::pause_writing);
    }
    fn resume_writing(&mut self) {
        self.with(StreamFeed::resume_writing);
    }
}

fn socketpair() -> (OwnedFd, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    (OwnedFd::from(ours), theirs)
}

#[test]
fn spec_17_1_fed_reader_reads_fed_bytes_eof_and_errors() {
    let fx = Fixture::new();
    let (mut reader, feed) = ok(StreamReader::with_feed(&fx.lp, 16));
    assert_eq!(reader.limit(), 16);
    {
        let mut waiting = pin!(reader.readexactly(5));
        assert!(fx.run(poll_once(&mut waiting)).is_none(), "nothing fed yet");
        feed.feed_data(b"hel");
        feed.feed_data(b"");
        feed.feed_data(b"lo\nwor");
        assert_eq!(fx.run(waiting).unwrap(), b"hello");
    }
    assert_eq!(fx.run(reader.readline()).unwrap(), b"\n");
    feed.clone().feed_data(b"ld");
    feed.feed_eof();
    assert_eq!(ok(fx.run(reader.read_to_end())), b"world");
    assert!(reader.at_eof());
    assert_eq!(ok(fx.run(reader.read(10))), b"");

    let (mut failing, feed) = ok(StreamReader::with_feed(&fx.lp, 16));
    feed.feed_data(b"x");
    feed.set_exception(Error::Io(io::Error::from(io::ErrorKind::BrokenPipe)));
    let err = fx.run(failing.read(1)).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
    assert!(failing.exception().is_some());

    let zero = StreamReader::with_feed(&fx.lp, 0).unwrap_err();
    assert!(matches!(zero, Error::InvalidArgument(_)), "{zero:?}");
    fx.finish();
}

#[test]
fn spec_17_1_stream_pair_flow_control_pauses_the_fed_transport() {
    let fx = Fixture::new();
    let (fd, mut peer) = socketpair();
    let forward = Forward::default();
    let protocol = forward.clone();
    let (transport, _) = ok(fx.run(connect_read_pipe(&fx.lp, move || protocol, fd)));
    let (mut reader, writer, feed) = ok(stream_pair(&fx.lp, transport.clone(), 1024));
    *forward.0.borrow_mut() = Some(feed);

    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    peer.write_all(&data).unwrap();
    fx.run(until(&fx.lp, || !transport.is_reading()));
    // More than 2 × limit buffered: reading paused; reading it all resumes.
    let first = ok(fx.run(reader.read(100_000)));
    assert!(first.len() > 2048, "{}", first.len());
    let mut got = first;
    while got.len() < data.len() {
        got.extend(ok(fx.run(reader.read(100_000))));
    }
    assert!(got == data);
    assert!(transport.is_reading());
    drop(peer);
    assert_eq!(ok(fx.run(reader.read_to_end())), b"");
    assert!(reader.at_eof());
    writer.close();
    fx.finish();
}

#[test]
fn spec_17_1_fed_writer_drain_follows_the_feed() {
    let fx = Fixture::new();
    let (fd, peer) = socketpair();
    let (transport, _) = ok(fx.run(connect_write_pipe(&fx.lp, Forward::default, fd)));
    let (writer, feed) = StreamWriter::with_feed(&fx.lp, transport.clone());
    ok(fx.run(writer.drain()));

    feed.pause_writing();
    {
        let mut drain = pin!(writer.drain());
        assert!(
            fx.run(poll_once(&mut drain)).is_none(),
            "paused: drain waits"
        );
        feed.resume_writing();
        ok(fx.run(drain));
    }
    feed.pause_writing();
    {
        let mut drain = pin!(writer.drain());
        let mut closed = pin!(writer.wait_closed());
        assert!(fx.run(poll_once(&mut drain)).is_none());
        assert!(fx.run(poll_once(&mut closed)).is_none());
        feed.connection_lost(Some(io::Error::from(io::ErrorKind::BrokenPipe)));
        feed.connection_lost(None); // only the first counts
        let waited = fx.run(drain).unwrap_err();
        assert!(
            matches!(&waited, Error::Io(e) if e.kind() == io::ErrorKind::BrokenPipe),
            "{waited:?}"
        );
        let closed = fx.run(closed).unwrap_err();
        assert!(
            matches!(&closed, Error::Io(e) if e.kind() == io::ErrorKind::BrokenPipe),
            "{closed:?}"
        );
    }
    let after = fx.run(writer.drain()).unwrap_err();
    assert!(
        matches!(&after, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "{after:?}"
    );
    writer.close();
    drop(peer);
    fx.finish();
}

#[test]
fn spec_17_1_dropped_fed_writer_flushes_then_closes() {
    let fx = Fixture::new();
    let (fd, mut peer) = socketpair();
    let forward = Forward::default();
    let protocol = forward.clone();
    let (transport, _) = ok(fx.run(connect_write_pipe(&fx.lp, move || protocol, fd)));
    let (writer, feed) = StreamWriter::with_feed(&fx.lp, transport.clone());
    *forward.0.borrow_mut() = Some(feed);
    let data = vec![5u8; 1 << 20];
    writer.write(&data);
    assert!(!transport.is_closing());
    let reading = std::thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).map(|_| got)
    });
    drop(writer);
    assert!(transport.is_closing(), "dropping the writer closes");
    let t: Transport = transport;
    fx.run(until(&fx.lp, || reading.is_finished()));
    let got = reading.join().unwrap().unwrap();
    assert!(
        got.len() == data.len() && got == data,
        "{} bytes",
        got.len()
    );
    drop(t);
    let errors = fx.take_errors();
    assert!(errors.is_empty(), "{errors:?}");
    fx.finish();
}
