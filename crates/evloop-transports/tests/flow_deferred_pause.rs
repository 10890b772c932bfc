//! docs/behaviour.md 7.4, a regression found by `cargo xtask netem`: a
//! `pause_writing` raised inside `data_received` is deferred (the protocol
//! is busy); when the writer callback of the same loop iteration drains the
//! buffer before the deferred call runs, the pause must not be delivered
//! after the `resume_writing` it was overtaken by. Before the fix the
//! protocol ended paused with an empty buffer, so an echo server that
//! pauses reading in `pause_writing` stopped reading for good (seen as a
//! stalled 64 MiB echo over a lossy link: the server's Recv-Q full, its
//! write buffer empty).

mod support;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop_transports::{create_unix_server, Protocol, Transport, UnixServerOptions};
use support::*;

#[derive(Default)]
struct Log {
    transport: Option<Transport>,
    flow: Vec<&'static str>,
    received: Vec<u8>,
}

/// Echo-like: pauses reading while writing is paused; on `go` writes 50 KiB.
struct Pauser(Rc<RefCell<Log>>);

impl Protocol for Pauser {
    fn connection_made(&mut self, transport: Transport) {
        self.0.borrow_mut().transport = Some(transport);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.0.borrow_mut().received.extend_from_slice(data);
        if data.starts_with(b"go") {
            let t = self.0.borrow().transport.clone();
            if let Some(t) = t {
                t.write(&vec![7; 50 * 1024]);
            }
        }
    }
    fn pause_writing(&mut self) {
        let t = {
            let mut log = self.0.borrow_mut();
            log.flow.push("pause");
            log.transport.clone()
        };
        if let Some(t) = t {
            t.pause_reading();
        }
    }
    fn resume_writing(&mut self) {
        let t = {
            let mut log = self.0.borrow_mut();
            log.flow.push("resume");
            log.transport.clone()
        };
        if let Some(t) = t {
            t.resume_reading();
        }
    }
}

fn drain_peer(peer: &mut UnixStream) -> usize {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) => panic!("peer read: {e}"),
        }
    }
}

#[test]
fn a_pause_deferred_from_data_received_does_not_outlive_the_drain() {
    let fx = Fixture::new();
    let dir = std::env::temp_dir().join(format!("evloop-flow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flow.sock");
    let _ = std::fs::remove_file(&path);
    let log = Rc::new(RefCell::new(Log::default()));
    let factory_log = log.clone();
    let server = ok(fx.run(create_unix_server(
        &fx.lp,
        move || Pauser(factory_log.clone()),
        Some(&path),
        UnixServerOptions::default(),
    )));
    let mut peer = UnixStream::connect(&path).unwrap();
    peer.set_nonblocking(true).unwrap();
    fx.run(until(&fx.lp, || log.borrow().transport.is_some()));
    let t = log.borrow().transport.clone().unwrap();

    // The kernel's send buffer full, then ~20 KiB buffered: under the high
    // mark (64 KiB), so no pause yet, and the writer armed.
    let chunk = vec![1; 8 * 1024];
    while t.get_write_buffer_size() == 0 {
        t.write(&chunk);
    }
    while t.get_write_buffer_size() < 20 * 1024 {
        t.write(&chunk);
    }
    assert!(t.get_write_buffer_size() < 64 * 1024);
    assert!(log.borrow().flow.is_empty());

    // Now the fd is writable (the peer read everything) and readable (`go`):
    // one iteration runs the reader (data_received writes 50 KiB: above the
    // high mark, the pause is deferred) and then the writer (the kernel
    // takes all ~70 KiB: the buffer drains below the low mark).
    assert!(drain_peer(&mut peer) > 0);
    peer.write_all(b"go").unwrap();
    fx.turn();
    fx.drain();
    drain_peer(&mut peer);
    fx.drain();

    // Whatever the protocol was told, it must not be left paused.
    let flow = log.borrow().flow.clone();
    assert!(
        flow.last() != Some(&"pause"),
        "the protocol was left paused with an empty buffer: {flow:?}"
    );
    assert_eq!(t.get_write_buffer_size(), 0);
    assert!(t.is_reading(), "reading stayed paused: {flow:?}");
    // And it reads: more data from the peer arrives.
    peer.write_all(b"ping").unwrap();
    fx.run(until(&fx.lp, || log.borrow().received.ends_with(b"ping")));

    t.close();
    close_server(&fx, &server);
    drop(peer);
    fx.finish();
}
