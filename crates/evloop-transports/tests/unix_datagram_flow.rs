//! Datagram write buffering and closing (docs/behaviour.md 5.5, 7.2..7.4),
//! driven over a connected unix datagram socket: unlike UDP on loopback,
//! its sends really block (`EAGAIN`) once the receiver's queue is full
//! (`net.unix.max_dgram_qlen`), so the queue, the water marks, flushing on
//! close and dropping on abort can all be observed.

mod support;

use std::cell::RefCell;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::rc::Rc;

use evloop_core::EventLoop;
use evloop_transports::{create_unix_datagram_endpoint, DatagramTransport};
use support::datagram::{DLog, Dev, DgramRecorder, ScratchDir};
use support::{until, Fixture};

const COUNT: usize = 40;
const SIZE: usize = 1000;

fn payload(i: usize) -> Vec<u8> {
    vec![u8::try_from(i).unwrap(); SIZE]
}

/// A receiver the test drains on demand (it starts not reading).
struct Receiver {
    sock: Rc<UnixDatagram>,
    got: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl Receiver {
    fn bind(path: &Path) -> Receiver {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_nonblocking(true).unwrap();
        Receiver {
            sock: Rc::new(sock),
            got: Rc::default(),
        }
    }

    /// Starts reading everything that arrives, on the loop.
    fn start(&self, lp: &EventLoop) {
        let (sock, got) = (self.sock.clone(), self.got.clone());
        lp.add_reader(&self.sock, move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf) {
                got.borrow_mut().push(buf[..n].to_vec());
            }
        })
        .unwrap();
    }

    fn stop(&self, lp: &EventLoop) {
        lp.remove_reader(&self.sock);
    }

    fn count(&self) -> usize {
        self.got.borrow().len()
    }
}

/// A sender connected to `rx_path` that has sent [`COUNT`] datagrams into
/// a receiver that does not read: some went out, the rest are queued.
async fn filled_sender(lp: &EventLoop, rx_path: &Path, log: &DLog) -> DatagramTransport {
    let (t, _p) =
        create_unix_datagram_endpoint(lp, DgramRecorder::factory(log), None, Some(rx_path))
            .await
            .unwrap();
    t.set_write_buffer_limits(Some(10 * SIZE), Some(2 * SIZE))
        .unwrap();
    assert_eq!(t.get_write_buffer_limits(), (2 * SIZE, 10 * SIZE));
    for i in 0..COUNT {
        t.sendto(&payload(i), None).unwrap();
    }
    t
}

#[test]
fn spec_5_5_eagain_buffers_with_water_marks_then_flushes() {
    let fx = Fixture::new();
    // Scratch files and sockets after the fixture, which serialises the
    // tests and counts fds.
    let dir = ScratchDir::new("flow");
    let path = dir.path("rx.sock");
    let rx = Receiver::bind(&path);
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let t = filled_sender(&lp, &path, &log).await;
        let queued = t.get_write_buffer_size();
        assert!(
            queued > 10 * SIZE,
            "the receiver's queue is full: {queued} bytes queued"
        );
        assert_eq!(queued % SIZE, 0, "whole datagrams are queued");
        // Paused once, synchronously, when the queue passed the high mark.
        assert_eq!(log.count(&Dev::Pause), 1);
        assert_eq!(log.count(&Dev::Resume), 0);
        // Queued sends keep their order behind the queue.
        rx.start(&lp);
        until(&lp, || rx.count() == COUNT).await;
        let expected: Vec<Vec<u8>> = (0..COUNT).map(payload).collect();
        assert_eq!(*rx.got.borrow(), expected);
        assert_eq!(t.get_write_buffer_size(), 0);
        assert_eq!(log.count(&Dev::Resume), 1);
        assert!(log.errors().is_empty());
        rx.stop(&lp);
        t.close();
        until(&lp, || log.lost().len() == 1).await;
    });
    drop(dir);
    fx.finish();
}

#[test]
fn spec_5_5_set_write_buffer_limits_rechecks_and_validates() {
    let fx = Fixture::new();
    // Scratch files and sockets after the fixture, which serialises the
    // tests and counts fds.
    let dir = ScratchDir::new("limits");
    let path = dir.path("rx.sock");
    let rx = Receiver::bind(&path);
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let (t, _p) =
            create_unix_datagram_endpoint(&lp, DgramRecorder::factory(&log), None, Some(&path))
                .await
                .unwrap();
        assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        for i in 0..COUNT {
            t.sendto(&payload(i), None).unwrap();
        }
        // Under the default marks: not paused.
        assert_eq!(log.count(&Dev::Pause), 0);
        // Lowering high below what is queued pauses at once.
        t.set_write_buffer_limits(Some(SIZE), None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (SIZE / 4, SIZE));
        assert_eq!(log.count(&Dev::Pause), 1);
        assert!(t.set_write_buffer_limits(Some(1), Some(2)).is_err());
        assert_eq!(t.get_write_buffer_limits(), (SIZE / 4, SIZE));
        t.abort();
        until(&lp, || log.lost().len() == 1).await;
    });
    drop(rx);
    drop(dir);
    fx.finish();
}

#[test]
fn spec_5_5_close_flushes_the_queue_then_connection_lost_none() {
    let fx = Fixture::new();
    // Scratch files and sockets after the fixture, which serialises the
    // tests and counts fds.
    let dir = ScratchDir::new("close");
    let path = dir.path("rx.sock");
    let rx = Receiver::bind(&path);
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let t = filled_sender(&lp, &path, &log).await;
        assert!(t.get_write_buffer_size() > 0);
        t.close();
        assert!(t.is_closing());
        // Sends while the flush is pending are still accepted.
        t.sendto(&payload(COUNT), None).unwrap();
        assert!(log.lost().is_empty());
        rx.start(&lp);
        until(&lp, || log.lost().len() == 1).await;
        // Everything was sent before connection_lost(None): it is all in
        // the receiver's socket buffer, which its reader (a callback on the
        // same loop, maybe a few iterations behind) drains; a datagram lost
        // would leave this waiting until the fixture's timeout guard.
        until(&lp, || rx.count() > COUNT).await;
        let received = rx.count();
        let expected: Vec<Vec<u8>> = (0..=COUNT).map(payload).collect();
        assert_eq!(*rx.got.borrow(), expected, "got {received}");
        assert_eq!(log.lost(), vec![None]);
        assert_eq!(t.fd(), None);
        rx.stop(&lp);
    });
    drop(dir);
    fx.finish();
}

#[test]
fn spec_5_5_abort_drops_the_queue() {
    let fx = Fixture::new();
    // Scratch files and sockets after the fixture, which serialises the
    // tests and counts fds.
    let dir = ScratchDir::new("abort");
    let path = dir.path("rx.sock");
    let rx = Receiver::bind(&path);
    let lp = fx.lp.clone();
    fx.run(async move {
        let log = DLog::default();
        let t = filled_sender(&lp, &path, &log).await;
        let queued = t.get_write_buffer_size() / SIZE;
        let sent = COUNT - queued;
        t.abort();
        assert_eq!(t.get_write_buffer_size(), 0);
        until(&lp, || log.lost().len() == 1).await;
        assert_eq!(log.lost(), vec![None]);
        // Only what went out before abort() arrives.
        rx.start(&lp);
        until(&lp, || rx.count() >= sent).await;
        let expected: Vec<Vec<u8>> = (0..sent).map(payload).collect();
        assert_eq!(*rx.got.borrow(), expected);
        rx.stop(&lp);
    });
    drop(dir);
    fx.finish();
}
