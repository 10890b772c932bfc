//! Readiness futures on an fd (`readable`/`writable`), over a socketpair.

use std::cell::Cell;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use evloop_core::{Error, EventLoop};

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Exactly one loop iteration with a zero poll timeout.
fn iterate(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}

#[test]
fn readable_waits_for_data_then_completes() {
    let lp = EventLoop::new().unwrap();
    let (mut a, mut b) = pair();
    let done = Rc::new(Cell::new(false));
    let (d, lp2) = (done.clone(), lp.clone());
    let task = lp
        .create_task(async move {
            lp2.readable(&b).await.unwrap();
            d.set(true);
            let mut buf = [0; 3];
            b.read_exact(&mut buf).unwrap();
            buf
        })
        .unwrap();
    for _ in 0..3 {
        iterate(&lp);
    }
    assert!(!done.get(), "nothing to read yet");
    a.write_all(b"abc").unwrap();
    assert_eq!(&lp.run_until_complete(task).unwrap().unwrap(), b"abc");
    // The watcher is gone: the fd has no reader left to remove.
    lp.close().unwrap();
}

#[test]
fn writable_completes_on_a_writable_socket_and_removes_its_watcher() {
    let lp = EventLoop::new().unwrap();
    let (a, _b) = pair();
    lp.run_until_complete(lp.writable(&a)).unwrap().unwrap();
    assert!(!lp.remove_writer(&a), "the watcher removed itself");
    lp.close().unwrap();
}

#[test]
fn dropping_the_future_removes_the_watcher() {
    let lp = EventLoop::new().unwrap();
    let (_a, b) = pair();
    let mut fut = Box::pin(lp.readable(&b));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    drop(fut);
    assert!(!lp.remove_reader(&b), "no reader left behind");
    // The fd is free for a user reader again.
    lp.add_reader(&b, || ()).unwrap();
    assert!(lp.remove_reader(&b));
    lp.close().unwrap();
}

#[test]
fn two_futures_on_one_fd_both_complete() {
    let lp = EventLoop::new().unwrap();
    let (mut a, b) = pair();
    let mut first = Box::pin(lp.readable(&b));
    let mut second = Box::pin(lp.readable(&b));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    a.write_all(b"x").unwrap();
    iterate(&lp);
    assert!(matches!(first.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    assert!(matches!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    drop((first, second));
    assert!(!lp.remove_reader(&b));
    lp.close().unwrap();
}

#[test]
fn a_claimed_fd_is_in_use() {
    let lp = EventLoop::new().unwrap();
    let (_a, b) = pair();
    let claim = lp.claim_fd(&b).unwrap();
    let out = lp.run_until_complete(lp.readable(&b)).unwrap();
    assert!(
        matches!(out, Err(Error::FdInUse(fd)) if fd == b.as_raw_fd()),
        "{out:?}"
    );
    drop(claim);
    lp.close().unwrap();
}

#[test]
fn a_user_reader_replacing_the_watcher_ends_the_wait_with_an_error() {
    let lp = EventLoop::new().unwrap();
    let (_a, b) = pair();
    let mut fut = Box::pin(lp.readable(&b));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    lp.add_reader(&b, || ()).unwrap();
    assert!(matches!(
        fut.as_mut().poll(&mut cx),
        Poll::Ready(Err(Error::InvalidState(_)))
    ));
    drop(fut);
    assert!(lp.remove_reader(&b), "the user's reader is intact");
    lp.close().unwrap();
}

#[test]
fn a_regular_file_cannot_be_watched() {
    let lp = EventLoop::new().unwrap();
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let out = lp.run_until_complete(lp.readable(&file)).unwrap();
    assert!(matches!(out, Err(Error::Io(_))), "{out:?}");
    lp.close().unwrap();
}

#[test]
fn a_closed_loop_yields_closed() {
    let lp = EventLoop::new().unwrap();
    let (_a, b) = pair();
    let fut = lp.readable(&b);
    lp.close().unwrap();
    assert!(matches!(
        futures_lite::future::block_on(fut),
        Err(Error::Closed)
    ));
}
