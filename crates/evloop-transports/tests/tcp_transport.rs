//! docs/behaviour.md 7.1–7.8 over TCP: the stream transport's state machine with real
//! loopback peers (std sockets in threads, or evloop servers).

mod support;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use evloop_transports::{create_connection, Address, ConnectOptions, Protocol, Transport};
use support::*;

/// A std listener whose single accepted peer runs `peer` in a thread.
fn peer_thread<T: Send + 'static>(
    peer: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (u16, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        peer(stream)
    });
    (port, handle)
}

fn connect<P: Protocol>(fx: &Fixture, port: u16, protocol: P) -> Transport {
    ok(fx.run(create_connection(
        &fx.lp,
        move || protocol,
        Some("127.0.0.1"),
        Some(port),
        ConnectOptions::default(),
    )))
    .0
}

fn wait_lost(fx: &Fixture, log: &Rc<RefCell<Log>>) {
    fx.run(until(&fx.lp, || log.borrow().is_lost()));
    // What else is queued runs: a second connection_lost would show.
    fx.drain();
    assert_eq!(log.borrow().lost_count(), 1, "{:?}", log.borrow().events);
}

#[test]
fn spec_7_1_pause_reading_inside_connection_made_holds() {
    let fx = Fixture::new();
    let wrote = Arc::new(AtomicBool::new(false));
    let flag = wrote.clone();
    let (port, peer) = peer_thread(move |mut s| {
        s.write_all(b"early").unwrap();
        flag.store(true, Ordering::Release);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let (mut rec, log) = Recorder::new();
    rec.pause_in_made = true;
    let t = connect(&fx, port, rec);
    assert_eq!(log.borrow().events, vec![Ev::Made]);
    // "early" is in our socket's receive queue (loopback delivers within
    // the peer's write); the loop runs until quiet and must not read it.
    fx.run(until(&fx.lp, || wrote.load(Ordering::Acquire)));
    fx.drain();
    assert_eq!(log.borrow().events, vec![Ev::Made]);
    assert!(!t.is_reading());
    t.resume_reading();
    fx.run(until(&fx.lp, || log.borrow().data == b"early"));
    t.close();
    wait_lost(&fx, &log);
    peer.join().unwrap();
    fx.finish();
}

#[test]
fn spec_7_2_connection_lost_once_on_close_abort_and_peer_eof() {
    let fx = Fixture::new();
    for how in ["close", "abort", "peer-eof"] {
        let (port, peer) = peer_thread(move |mut s| {
            if how == "peer-eof" {
                s.shutdown(std::net::Shutdown::Write).unwrap();
            }
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        let (rec, log) = Recorder::new();
        let t = connect(&fx, port, rec);
        match how {
            "close" => t.close(),
            "abort" => t.abort(),
            _ => {}
        }
        t.close(); // a second close is harmless
        wait_lost(&fx, &log);
        assert_eq!(log.borrow().events.last(), Some(&Ev::Lost(None)), "{how}");
        peer.join().unwrap();
    }
    fx.finish();
}

#[test]
fn spec_7_2_peer_reset_and_write_error_give_the_error() {
    let fx = Fixture::new();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (port, peer) = peer_thread(move |s| {
        go_rx.recv().unwrap();
        rustix::net::sockopt::set_socket_linger(&s, Some(std::time::Duration::ZERO)).unwrap();
        drop(s); // RST
    });
    let (rec, log) = Recorder::new();
    let t = connect(&fx, port, rec);
    go_tx.send(()).unwrap();
    peer.join().unwrap();
    // Keep writing until the reset surfaces (read or write side).
    fx.run(until(&fx.lp, || {
        t.write(&[0u8; 1024]);
        log.borrow().is_lost()
    }));
    wait_lost(&fx, &log);
    let last = log.borrow().events.last().cloned();
    assert!(
        matches!(
            last,
            Some(Ev::Lost(Some(
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            )))
        ),
        "{last:?}"
    );
    // Writes after the loss are silent no-ops (no panic, no error).
    for _ in 0..10 {
        t.write(b"after");
    }
    t.abort();
    fx.finish();
}

struct PanicOnData(Rc<RefCell<Log>>);

impl Protocol for PanicOnData {
    fn data_received(&mut self, _data: &[u8]) {
        panic!("boom in data_received");
    }
    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.0
            .borrow_mut()
            .events
            .push(Ev::Lost(error.map(|e| e.kind())));
    }
}

#[test]
fn spec_7_2_panic_in_protocol_reports_and_loses_with_error_without_disturbing_others() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let bad_log = Rc::new(RefCell::new(Log::default()));
    let bad = connect(&fx, port, PanicOnData(bad_log.clone()));
    let (rec, good_log) = Recorder::new();
    let good = connect(&fx, port, rec);
    bad.write(b"trigger");
    wait_lost(&fx, &bad_log);
    assert!(matches!(
        bad_log.borrow().events.last(),
        Some(Ev::Lost(Some(_)))
    ));
    let errors = fx.take_errors();
    assert!(
        errors.iter().any(|e| e.contains("boom in data_received")),
        "{errors:?}"
    );
    good.write(b"fine");
    fx.run(until(&fx.lp, || good_log.borrow().data == b"fine"));
    good.close();
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_7_3_close_flushes_then_eof_and_later_writes_are_noops() {
    let fx = Fixture::new();
    let (port, peer) = peer_thread(|mut s| {
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all.len()
    });
    let (rec, log) = Recorder::new();
    let t = connect(&fx, port, rec);
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..4 {
        t.write(&chunk);
    }
    t.close();
    assert!(t.is_closing());
    wait_lost(&fx, &log);
    assert_eq!(log.borrow().events.last(), Some(&Ev::Lost(None)));
    t.write(b"dropped");
    t.abort();
    assert_eq!(peer.join().unwrap(), 4 << 20);
    fx.finish();
}

#[test]
fn spec_7_3_abort_drops_the_buffer() {
    let fx = Fixture::new();
    let (port, peer) = peer_thread(|mut s| {
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all.len()
    });
    let (rec, log) = Recorder::new();
    let t = connect(&fx, port, rec);
    t.write(&vec![1u8; 16 << 20]);
    assert!(t.get_write_buffer_size() > 0);
    t.abort();
    assert_eq!(t.get_write_buffer_size(), 0);
    wait_lost(&fx, &log);
    assert!(peer.join().unwrap() < 16 << 20);
    fx.finish();
}

#[test]
fn spec_7_4_pause_and_resume_writing_at_the_water_marks() {
    let fx = Fixture::new();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (port, peer) = peer_thread(move |mut s| {
        go_rx.recv().unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all.len()
    });
    let (rec, log) = Recorder::new();
    let t = connect(&fx, port, rec);
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    let chunk = vec![3u8; 16 * 1024];
    let mut written = 0usize;
    fx.run(until(&fx.lp, || {
        if !log.borrow().events.contains(&Ev::Pause) {
            t.write(&chunk);
            written += chunk.len();
            // Memory stays bounded: at most high + one write.
            assert!(t.get_write_buffer_size() <= 64 * 1024 + chunk.len());
        }
        log.borrow().events.contains(&Ev::Pause)
    }));
    assert!(t.get_write_buffer_size() > 64 * 1024);
    go_tx.send(()).unwrap();
    fx.run(until(&fx.lp, || log.borrow().events.contains(&Ev::Resume)));
    assert!(t.get_write_buffer_size() <= 16 * 1024);
    let events: Vec<Ev> = log
        .borrow()
        .events
        .iter()
        .filter(|e| matches!(e, Ev::Pause | Ev::Resume))
        .cloned()
        .collect();
    assert_eq!(events, vec![Ev::Pause, Ev::Resume]);
    t.close();
    wait_lost(&fx, &log);
    assert_eq!(peer.join().unwrap(), written);
    fx.finish();
}

#[test]
fn spec_7_5_eof_received_true_keeps_the_write_side_open() {
    let fx = Fixture::new();
    let (port, peer) = peer_thread(|mut s| {
        s.write_all(b"question").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        reply
    });
    let (mut rec, log) = Recorder::new();
    rec.keep_open_on_eof = true;
    let t = connect(&fx, port, rec);
    assert!(t.can_write_eof());
    fx.run(until(&fx.lp, || log.borrow().events.contains(&Ev::Eof)));
    // What the EOF set off has run: the connection must still be open.
    fx.drain();
    assert!(!log.borrow().is_lost());
    t.write(b"answer");
    t.write_eof();
    t.write_eof(); // idempotent
    fx.run(until(&fx.lp, || peer.is_finished()));
    assert_eq!(peer.join().unwrap(), b"answer");
    t.close();
    wait_lost(&fx, &log);
    fx.finish();
}

/// Found by the `transport_read` fuzz target: `resume_reading` after the
/// peer's EOF (with `eof_received` keeping the connection open) re-armed
/// the reader, which read EOF again and called `eof_received` a second
/// time. Reading is over once EOF was read, as in asyncio.
#[test]
fn spec_7_5_resume_reading_after_eof_does_not_repeat_eof_received() {
    let fx = Fixture::new();
    let (port, peer) = peer_thread(|mut s| {
        s.write_all(b"last words").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        rest
    });
    let (mut rec, log) = Recorder::new();
    rec.keep_open_on_eof = true;
    let t = connect(&fx, port, rec);
    fx.run(until(&fx.lp, || log.borrow().events.contains(&Ev::Eof)));
    for _ in 0..3 {
        t.pause_reading();
        t.resume_reading();
        fx.drain();
    }
    let eofs = log
        .borrow()
        .events
        .iter()
        .filter(|e| **e == Ev::Eof)
        .count();
    assert_eq!(eofs, 1, "{:?}", log.borrow().events);
    assert_eq!(log.borrow().data, b"last words");
    assert!(!t.is_reading(), "reading is over after EOF");
    t.close();
    wait_lost(&fx, &log);
    fx.run(until(&fx.lp, || peer.is_finished()));
    assert_eq!(peer.join().unwrap(), b"");
    fx.finish();
}

#[test]
fn spec_7_6_extra_info() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let (rec, log) = Recorder::new();
    let t = connect(&fx, port, rec);
    assert_eq!(
        t.peername(),
        Some(Address::Inet(([127, 0, 0, 1], port).into()))
    );
    let local = t.sockname().and_then(|a| a.as_inet()).unwrap();
    assert!(local.ip().is_loopback() && local.port() != 0);
    let fd = t.fd().unwrap();
    assert!(rustix::net::sockopt::tcp_nodelay(
        // SAFETY: `fd` belongs to the live transport `t` during this call.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
    )
    .unwrap());
    t.close();
    wait_lost(&fx, &log);
    assert_eq!(t.fd(), None);
    assert!(t.peername().is_some(), "cached after close");
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_7_8_sixteen_mib_round_trip_is_byte_exact() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let (rec, log) = Recorder::new();
    let t = connect(&fx, port, rec);
    let payload: Vec<u8> = (0..16u32 << 20).map(|i| (i * 31 % 253) as u8).collect();
    t.write(&payload);
    t.write_eof();
    fx.run(until(&fx.lp, || log.borrow().data.len() >= payload.len()));
    assert!(log.borrow().data == payload);
    t.close();
    wait_lost(&fx, &log);
    close_server(&fx, &server);
    fx.finish();
}

#[test]
fn spec_7_2_thousand_connect_close_cycles_leak_nothing() {
    let fx = Fixture::new();
    let server = echo_server(&fx);
    let port = port_of(&server);
    let before = fd_count();
    for _ in 0..1000 {
        let (rec, log) = Recorder::new();
        let t = connect(&fx, port, rec);
        t.close();
        fx.run(until(&fx.lp, || log.borrow().is_lost()));
    }
    fx.run(until(&fx.lp, || fd_count() <= before));
    assert_eq!(fd_count(), before);
    close_server(&fx, &server);
    fx.finish();
}
