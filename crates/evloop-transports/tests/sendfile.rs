//! docs/behaviour.md 19.1: `sendfile` on transports and `sock_sendfile`
//! on sockets — byte-exact transfers of 0 B, 1 B, 1 MiB and 64 MiB files,
//! the file position afterwards, offset/count, the fallback (a pipe
//! transport, a transport implemented outside the crate as TLS is), writes
//! queued behind the file, a peer resetting mid-file, and argument checks.
//!
//! The receiving side is a plain blocking socket (or pipe) in a thread that
//! reads to EOF, so what arrives is checked byte for byte.

mod support;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use evloop_core::{Error, EventLoop};
use evloop_transports::layer::{AnyProtocol, TransportImpl};
use evloop_transports::{
    connect_write_pipe, create_connection, create_unix_connection, sendfile, sock_sendall,
    sock_sendfile, Address, ConnectOptions, SendfileNotAvailable, Transport, UnixConnectOptions,
};
use support::{ok, Ev, Fixture, Recorder};

const MIB: usize = 1024 * 1024;

/// A file of `len` pseudo-random bytes in the temp dir, removed on drop.
struct TempFile {
    path: PathBuf,
    file: File,
    bytes: Vec<u8>,
}

impl TempFile {
    fn new(name: &str, len: usize) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "evloop-sendfile-{}-{name}-{len}",
            std::process::id()
        ));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("create temp file");
        file.write_all(&bytes).expect("write temp file");
        file.seek(SeekFrom::Start(0)).expect("rewind");
        TempFile { path, file, bytes }
    }

    fn position(&mut self) -> u64 {
        self.file.stream_position().expect("tell")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A TCP listener whose one connection is read to EOF by a thread (after
/// `delay`), returning everything received.
fn tcp_receiver(delay: Duration) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    if delay > Duration::ZERO {
        // A small receive window (inherited by the accepted socket), so a
        // late reader really holds the sender up.
        rustix::net::sockopt::set_socket_recv_buffer_size(&listener, 64 * 1024).expect("rcvbuf");
    }
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        thread::sleep(delay);
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        got
    });
    (port, reader)
}

/// A receiver that accepts at once but reads only once the returned sender
/// says so (or is dropped): a test releases it right after the action it
/// wants to happen while the sender is held up, so a loop thread starved by
/// a busy machine cannot turn the order around, as a fixed delay could.
fn gated_tcp_receiver() -> (u16, JoinHandle<Vec<u8>>, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // A small receive window (inherited by the accepted socket), so the
    // held-up reader really holds the sender up.
    rustix::net::sockopt::set_socket_recv_buffer_size(&listener, 64 * 1024).expect("rcvbuf");
    let (release, gate) = mpsc::channel();
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let _ = gate.recv();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        got
    });
    (port, reader, release)
}

/// Connects a [`Recorder`] to the receiver on `port`.
fn connect(fx: &Fixture, port: u16) -> (Transport, Rc<RefCell<support::Log>>) {
    let (recorder, log) = Recorder::new();
    let (transport, _) = ok(fx.run(create_connection(
        &fx.lp,
        move || recorder,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    )));
    (transport, log)
}

/// Closes `transport` and waits for `connection_lost`.
fn close_and_wait(fx: &Fixture, transport: &Transport, log: &Rc<RefCell<support::Log>>) {
    transport.close();
    let log2 = log.clone();
    fx.run(support::until(&fx.lp, move || log2.borrow().is_lost()));
}

/// Sends a whole file of `len` bytes over TCP and checks every byte and
/// the file position.
fn send_whole_file(name: &str, len: usize) {
    let fx = Fixture::new();
    let mut file = TempFile::new(name, len);
    let (port, reader) = tcp_receiver(Duration::ZERO);
    let (transport, log) = connect(&fx, port);
    let sent = ok(fx.run(sendfile(&fx.lp, &transport, &file.file, 0, None, true)));
    assert_eq!(sent, len as u64);
    assert_eq!(file.position(), len as u64, "file position = offset + sent");
    close_and_wait(&fx, &transport, &log);
    let got = reader.join().expect("reader");
    assert_eq!(got.len(), len);
    assert!(got == file.bytes, "bytes differ");
    assert_eq!(log.borrow().events.last(), Some(&Ev::Lost(None)));
    drop(transport);
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_sendfile_empty_file_sends_nothing() {
    send_whole_file("empty", 0);
}

#[test]
fn spec_19_1_sendfile_one_byte() {
    send_whole_file("one", 1);
}

#[test]
fn spec_19_1_sendfile_one_mib() {
    send_whole_file("mib", MIB);
}

#[test]
fn spec_19_1_sendfile_64_mib() {
    send_whole_file("64mib", 64 * MIB);
}

#[test]
fn spec_19_1_sendfile_offset_and_count_bound_the_transfer() {
    let fx = Fixture::new();
    let mut file = TempFile::new("offcount", 100_000);
    let (port, reader) = tcp_receiver(Duration::ZERO);
    let (transport, log) = connect(&fx, port);
    let sent = ok(fx.run(sendfile(
        &fx.lp,
        &transport,
        &file.file,
        1000,
        Some(5000),
        true,
    )));
    assert_eq!(sent, 5000);
    assert_eq!(file.position(), 6000);
    // An offset past the end sends nothing and leaves the position there.
    let sent = ok(fx.run(sendfile(
        &fx.lp, &transport, &file.file, 200_000, None, true,
    )));
    assert_eq!(sent, 0);
    assert_eq!(file.position(), 200_000);
    // A count past the end stops at the end.
    let sent = ok(fx.run(sendfile(
        &fx.lp,
        &transport,
        &file.file,
        99_000,
        Some(5000),
        true,
    )));
    assert_eq!(sent, 1000);
    close_and_wait(&fx, &transport, &log);
    let got = reader.join().expect("reader");
    let mut want = file.bytes[1000..6000].to_vec();
    want.extend_from_slice(&file.bytes[99_000..]);
    assert!(got == want, "bytes differ");
    drop(transport);
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_sendfile_unix_stream_transport() {
    let fx = Fixture::new();
    let mut file = TempFile::new("unix", MIB + 7);
    let path = std::env::temp_dir().join(format!("evloop-sendfile-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        got
    });
    let (recorder, log) = Recorder::new();
    let (transport, _) = ok(fx.run(create_unix_connection(
        &fx.lp,
        move || recorder,
        &path,
        UnixConnectOptions::default(),
    )));
    let sent = ok(fx.run(sendfile(&fx.lp, &transport, &file.file, 0, None, false)));
    assert_eq!(sent, (MIB + 7) as u64);
    assert_eq!(file.position(), sent);
    close_and_wait(&fx, &transport, &log);
    assert!(reader.join().expect("reader") == file.bytes);
    let _ = std::fs::remove_file(&path);
    drop(transport);
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_buffer_flushed_first_and_writes_during_sendfile_come_after() {
    let fx = Fixture::new();
    let file = TempFile::new("order", 8 * MIB);
    // The receiver starts only after the tail is written, so the head is
    // buffered when sendfile starts and the sendfile is still waiting when
    // the tail comes.
    let (port, reader, release) = gated_tcp_receiver();
    let (transport, log) = connect(&fx, port);
    let head: Vec<u8> = (0..4 * MIB).map(|i| (i % 251) as u8).collect();
    transport.write(&head);
    assert!(
        transport.get_write_buffer_size() > 0,
        "head should be buffered"
    );
    let done = Rc::new(Cell::new(false));
    let (lp, t, d, f) = (
        fx.lp.clone(),
        transport.clone(),
        done.clone(),
        file.file.try_clone().unwrap(),
    );
    let task = ok(fx.lp.create_task(async move {
        let sent = sendfile(&lp, &t, &f, 0, None, true).await;
        d.set(true);
        sent
    }));
    let (t, d) = (transport.clone(), done.clone());
    let wrote_during = Rc::new(Cell::new(false));
    let w = wrote_during.clone();
    ok(fx.lp.call_later(Duration::from_millis(100), move || {
        w.set(!d.get());
        t.write(b"TAIL");
        let _ = release.send(());
    }));
    let sent = ok(ok(fx.run(task)));
    assert_eq!(sent, 8 * MIB as u64);
    assert!(
        wrote_during.get(),
        "the tail was written while the file was going out"
    );
    close_and_wait(&fx, &transport, &log);
    let got = reader.join().expect("reader");
    let mut want = head.clone();
    want.extend_from_slice(&file.bytes);
    want.extend_from_slice(b"TAIL");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "order: head, file, tail");
    drop(transport);
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_close_during_sendfile_waits_for_the_file() {
    let fx = Fixture::new();
    let file = TempFile::new("closewait", 4 * MIB);
    let (port, reader, release) = gated_tcp_receiver();
    let (transport, log) = connect(&fx, port);
    let (lp, t, f) = (
        fx.lp.clone(),
        transport.clone(),
        file.file.try_clone().unwrap(),
    );
    let task = ok(fx
        .lp
        .create_task(async move { sendfile(&lp, &t, &f, 0, None, true).await }));
    let t = transport.clone();
    ok(fx.lp.call_later(Duration::from_millis(50), move || {
        t.close();
        let _ = release.send(());
    }));
    assert_eq!(ok(ok(fx.run(task))), 4 * MIB as u64);
    let log2 = log.clone();
    fx.run(support::until(&fx.lp, move || log2.borrow().is_lost()));
    assert!(reader.join().expect("reader") == file.bytes);
    assert_eq!(log.borrow().events.last(), Some(&Ev::Lost(None)));
    drop(transport);
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_abort_during_sendfile_fails_it() {
    let fx = Fixture::new();
    let mut file = TempFile::new("abort", 16 * MIB);
    let (port, reader, release) = gated_tcp_receiver();
    let (transport, log) = connect(&fx, port);
    let (lp, t, f) = (
        fx.lp.clone(),
        transport.clone(),
        file.file.try_clone().unwrap(),
    );
    let task = ok(fx
        .lp
        .create_task(async move { sendfile(&lp, &t, &f, 0, None, true).await }));
    let t = transport.clone();
    ok(fx.lp.call_later(Duration::from_millis(50), move || {
        t.abort();
        let _ = release.send(());
    }));
    let error = ok(fx.run(task)).expect_err("aborted");
    assert_eq!(
        error.io_kind(),
        Some(io::ErrorKind::ConnectionAborted),
        "{error}"
    );
    let log2 = log.clone();
    fx.run(support::until(&fx.lp, move || log2.borrow().is_lost()));
    assert_eq!(log.borrow().lost_count(), 1);
    let got = reader.join().expect("reader");
    let position = file.position();
    assert!(
        position > 0 && position < 16 * MIB as u64,
        "position {position}"
    );
    assert!(got.len() as u64 <= position);
    assert!(got[..] == file.bytes[..got.len()]);
    drop(transport);
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_peer_reset_mid_file_gets_the_error_once() {
    let fx = Fixture::new();
    let mut file = TempFile::new("reset", 64 * MIB);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 64 * 1024];
        conn.read_exact(&mut buf).expect("read some");
        // SO_LINGER 0: closing sends RST, not FIN.
        rustix::net::sockopt::set_socket_linger(&conn, Some(Duration::ZERO)).expect("linger");
        drop(conn);
    });
    let (transport, log) = connect(&fx, port);
    let result = fx.run(sendfile(&fx.lp, &transport, &file.file, 0, None, true));
    reader.join().expect("reader");
    let error = result.expect_err("the peer reset");
    let kind = error.io_kind();
    assert!(
        matches!(
            kind,
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        ),
        "{error:?}"
    );
    let log2 = log.clone();
    fx.run(support::until(&fx.lp, move || log2.borrow().is_lost()));
    // What else is queued runs: a second connection_lost would show.
    fx.drain();
    {
        let log = log.borrow();
        assert_eq!(log.lost_count(), 1, "connection_lost once");
        assert!(
            matches!(log.events.last(), Some(Ev::Lost(Some(_)))),
            "connection_lost gets the error: {:?}",
            log.events.last()
        );
    }
    let position = file.position();
    assert!(
        position >= 64 * 1024 && position < 64 * MIB as u64,
        "position {position}"
    );
    // Later writes are dropped silently; a second sendfile is refused.
    transport.write(b"late");
    let again = fx.run(sendfile(&fx.lp, &transport, &file.file, 0, None, true));
    assert!(matches!(again, Err(Error::InvalidState(_))), "{again:?}");
    drop(transport);
    // finish() checks the exception handler stayed silent (a reset is ordinary).
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_argument_checks() {
    let fx = Fixture::new();
    let file = TempFile::new("args", 10);
    let (port, reader) = tcp_receiver(Duration::ZERO);
    let (transport, log) = connect(&fx, port);
    let zero = fx.run(sendfile(&fx.lp, &transport, &file.file, 0, Some(0), true));
    assert!(
        matches!(&zero, Err(Error::InvalidArgument(m)) if m.contains("count must be a positive integer")),
        "{zero:?}"
    );
    let huge = fx.run(sendfile(
        &fx.lp,
        &transport,
        &file.file,
        u64::MAX,
        None,
        true,
    ));
    assert!(
        matches!(&huge, Err(Error::InvalidArgument(m)) if m.contains("offset")),
        "{huge:?}"
    );
    close_and_wait(&fx, &transport, &log);
    let closing = fx.run(sendfile(&fx.lp, &transport, &file.file, 0, None, true));
    assert!(
        matches!(closing, Err(Error::InvalidState("Transport is closing"))),
        "{closing:?}"
    );
    assert!(reader.join().expect("reader").is_empty());
    drop(transport);
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_non_regular_file_takes_the_fallback_or_fails() {
    let fx = Fixture::new();
    let zero = File::open("/dev/zero").expect("/dev/zero");
    let (port, reader) = tcp_receiver(Duration::ZERO);
    let (transport, log) = connect(&fx, port);
    let refused = fx.run(sendfile(&fx.lp, &transport, &zero, 0, Some(1000), false));
    let error = refused.expect_err("not a regular file, no fallback");
    assert!(SendfileNotAvailable::find(&error).is_some(), "{error:?}");
    assert_eq!(error.io_kind(), Some(io::ErrorKind::Unsupported));
    let sent = ok(fx.run(sendfile(&fx.lp, &transport, &zero, 0, Some(100_000), true)));
    assert_eq!(sent, 100_000);
    close_and_wait(&fx, &transport, &log);
    let got = reader.join().expect("reader");
    assert_eq!(got.len(), 100_000);
    assert!(got.iter().all(|&b| b == 0));
    drop(transport);
    drop(zero);
    fx.finish();
}

/// A pipe's read end drained by a thread.
fn pipe_receiver() -> (OwnedFd, JoinHandle<Vec<u8>>) {
    let (read, write) = rustix::pipe::pipe().expect("pipe");
    let reader = thread::spawn(move || {
        let mut file = File::from(read);
        let mut got = Vec::new();
        file.read_to_end(&mut got).expect("read pipe");
        got
    });
    (write, reader)
}

#[test]
fn spec_19_1_pipe_transport_takes_the_fallback() {
    let fx = Fixture::new();
    let mut file = TempFile::new("pipe", MIB + 3);
    let (write, reader) = pipe_receiver();
    let (recorder, log) = Recorder::new();
    let (transport, _) = ok(fx.run(connect_write_pipe(&fx.lp, move || recorder, write)));
    transport.write(b"HEAD");
    // fallback=false: refused, nothing sent, position untouched.
    let refused = fx.run(sendfile(&fx.lp, &transport, &file.file, 10, None, false));
    let error = refused.expect_err("pipes have no native sendfile");
    let not_available = SendfileNotAvailable::find(&error).expect("typed error");
    assert!(
        not_available.message().contains("fallback is disabled"),
        "{error}"
    );
    assert_eq!(file.position(), 0);
    // fallback=true: chunked copy, byte-exact, position = offset + sent.
    let sent = ok(fx.run(sendfile(&fx.lp, &transport, &file.file, 10, None, true)));
    assert_eq!(sent, (MIB + 3 - 10) as u64);
    assert_eq!(file.position(), (MIB + 3) as u64);
    transport.write(b"TAIL");
    close_and_wait(&fx, &transport, &log);
    let got = reader.join().expect("reader");
    let mut want = b"HEAD".to_vec();
    want.extend_from_slice(&file.bytes[10..]);
    want.extend_from_slice(b"TAIL");
    assert!(got == want, "bytes differ");
    drop(transport);
    drop(file);
    fx.finish();
}

/// A transport implemented outside the crate, as TLS is: every call
/// passes through to a TCP transport.
struct PassThrough(Transport);

impl TransportImpl for PassThrough {
    fn write(&self, data: &[u8]) {
        self.0.write(data);
    }
    fn write_eof(&self) {
        self.0.write_eof();
    }
    fn can_write_eof(&self) -> bool {
        self.0.can_write_eof()
    }
    fn close(&self) {
        self.0.close();
    }
    fn abort(&self) {
        self.0.abort();
    }
    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }
    fn set_reading(&self, on: bool) {
        if on {
            self.0.resume_reading();
        } else {
            self.0.pause_reading();
        }
    }
    fn is_reading(&self) -> bool {
        self.0.is_reading()
    }
    fn get_write_buffer_size(&self) -> usize {
        self.0.get_write_buffer_size()
    }
    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.0.get_write_buffer_limits()
    }
    fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), Error> {
        self.0.set_write_buffer_limits(high, low)
    }
    fn peername(&self) -> Option<Address> {
        self.0.peername()
    }
    fn sockname(&self) -> Option<Address> {
        self.0.sockname()
    }
    fn fd(&self) -> Option<RawFd> {
        self.0.fd()
    }
    fn set_protocol(&self, protocol: AnyProtocol) {
        self.0.set_any_protocol(protocol);
    }
    fn set_on_lost(&self, _hook: Box<dyn FnOnce()>) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn describe(&self) -> String {
        "<PassThrough>".to_owned()
    }
}

#[test]
fn spec_19_1_transport_outside_the_crate_takes_the_fallback_with_flow_control() {
    let fx = Fixture::new();
    let mut file = TempFile::new("custom", 8 * MIB);
    // A slow start: the fallback must wait for the buffer to drain.
    let (port, reader) = tcp_receiver(Duration::from_millis(200));
    let (raw, log) = connect(&fx, port);
    let outer = Transport::from_impl(Rc::new(PassThrough(raw.clone())));
    let refused = fx.run(sendfile(&fx.lp, &outer, &file.file, 0, None, false));
    let error = refused.expect_err("no native sendfile through a custom transport");
    let message = SendfileNotAvailable::find(&error)
        .expect("typed")
        .message()
        .to_owned();
    assert!(
        message.contains("fallback is disabled") && message.contains("<PassThrough>"),
        "{message}"
    );
    // Sample the buffer while the fallback runs: it stays near the marks.
    let peak = Rc::new(Cell::new(0));
    let (p, r) = (peak.clone(), raw.clone());
    let sampler = fx.lp.clone();
    fn sample(lp: EventLoop, t: Transport, peak: Rc<Cell<usize>>) {
        peak.set(peak.get().max(t.get_write_buffer_size()));
        if !t.is_closing() {
            let lp2 = lp.clone();
            let _ = lp.call_later(Duration::from_millis(1), move || sample(lp2, t, peak));
        }
    }
    sample(sampler, r, p);
    let sent = ok(fx.run(sendfile(&fx.lp, &outer, &file.file, 0, None, true)));
    assert_eq!(sent, 8 * MIB as u64);
    assert_eq!(file.position(), sent);
    let (_, high) = raw.get_write_buffer_limits();
    assert!(
        peak.get() <= high + 16 * 1024,
        "buffer peaked at {}",
        peak.get()
    );
    close_and_wait(&fx, &raw, &log);
    assert!(reader.join().expect("reader") == file.bytes);
    drop((outer, raw));
    drop(file);
    fx.finish();
}

/// A connected unix stream pair: ours non-blocking, the peer's drained by
/// a thread.
fn sock_pair() -> (OwnedFd, JoinHandle<Vec<u8>>) {
    let (ours, theirs) = UnixStream::pair().expect("pair");
    ours.set_nonblocking(true).expect("nonblocking");
    let reader = thread::spawn(move || {
        let mut theirs = theirs;
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).expect("read");
        got
    });
    (OwnedFd::from(ours), reader)
}

#[test]
fn spec_19_1_sock_sendfile_sizes_and_order_with_sock_sendall() {
    let fx = Fixture::new();
    let files: Vec<TempFile> = [0, 1, MIB, 64 * MIB]
        .iter()
        .map(|&len| TempFile::new("sock", len))
        .collect();
    let (sock, reader) = sock_pair();
    let mut want = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let marker = format!("<{i}>");
        ok(fx.run(sock_sendall(&fx.lp, &sock, marker.as_bytes())));
        let sent = ok(fx.run(sock_sendfile(&fx.lp, &sock, &file.file, 0, None, false)));
        assert_eq!(sent, file.bytes.len() as u64);
        want.extend_from_slice(marker.as_bytes());
        want.extend_from_slice(&file.bytes);
    }
    let mut big = files.into_iter().last().expect("64 MiB");
    assert_eq!(big.position(), 64 * MIB as u64);
    // Offset and count, then the fallback (a non-regular file).
    let sent = ok(fx.run(sock_sendfile(&fx.lp, &sock, &big.file, 5, Some(10), false)));
    assert_eq!(sent, 10);
    assert_eq!(big.position(), 15);
    want.extend_from_slice(&big.bytes[5..15]);
    let zero = File::open("/dev/zero").expect("/dev/zero");
    let refused = fx.run(sock_sendfile(&fx.lp, &sock, &zero, 0, Some(10), false));
    assert!(SendfileNotAvailable::find(&refused.expect_err("no fallback")).is_some());
    let sent = ok(fx.run(sock_sendfile(&fx.lp, &sock, &zero, 0, Some(300_000), true)));
    assert_eq!(sent, 300_000);
    want.extend(std::iter::repeat_n(0u8, 300_000));
    drop(sock);
    let got = reader.join().expect("reader");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "bytes or order differ");
    drop(big);
    drop(zero);
    fx.finish();
}

#[test]
fn spec_19_1_sock_sendfile_argument_checks() {
    let fx = Fixture::new();
    let file = TempFile::new("sockargs", 10);
    let flags = rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC;
    let dgram = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        flags,
        None,
    )
    .expect("udp socket");
    let not_stream = fx.run(sock_sendfile(&fx.lp, &dgram, &file.file, 0, None, true));
    assert!(
        matches!(&not_stream, Err(Error::InvalidArgument(m)) if m.contains("SOCK_STREAM")),
        "{not_stream:?}"
    );
    let (blocking, _peer) = UnixStream::pair().expect("pair");
    let blocked = fx.run(sock_sendfile(&fx.lp, &blocking, &file.file, 0, None, true));
    assert!(
        matches!(&blocked, Err(Error::InvalidArgument(m)) if m.contains("non-blocking")),
        "{blocked:?}"
    );
    let (sock, reader) = sock_pair();
    let zero = fx.run(sock_sendfile(&fx.lp, &sock, &file.file, 0, Some(0), true));
    assert!(matches!(zero, Err(Error::InvalidArgument(_))), "{zero:?}");
    drop(sock);
    assert!(reader.join().expect("reader").is_empty());
    drop((blocking, _peer, dgram));
    drop(file);
    fx.finish();
}

#[test]
fn spec_19_1_tcp_peer_gets_everything_with_a_tcp_stream_reader() {
    // The same transfer read through a std TcpStream connected the other
    // way round (the loop accepts), to cover a socket the loop did not create.
    let fx = Fixture::new();
    let file = TempFile::new("accepted", 3 * MIB);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = thread::spawn(move || {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read");
        got
    });
    let (accepted, _) = listener.accept().expect("accept");
    drop(listener);
    let (recorder, log) = Recorder::new();
    let (transport, _) = ok(fx.run(evloop_transports::connect_accepted_socket(
        &fx.lp,
        move || recorder,
        OwnedFd::from(accepted),
        None,
    )));
    let sent = ok(fx.run(sendfile(
        &fx.lp,
        &transport,
        &file.file.as_fd(),
        0,
        None,
        true,
    )));
    assert_eq!(sent, 3 * MIB as u64);
    close_and_wait(&fx, &transport, &log);
    assert!(client.join().expect("client") == file.bytes);
    drop(transport);
    drop(file);
    fx.finish();
}
