//! Readiness reports: readable, writable, level-triggered, capacity limits.

mod support;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;

use evloop_reactor::{Event, Events, Interest, Poller};
use support::{assert_quiet, pipe, read, wait, wait_for_key, write, PROMPT};

#[test]
fn readable_after_write_to_pipe() {
    let poller = Poller::new().unwrap();
    let (r, w) = pipe();
    let reg = poller.register(r.as_fd(), 3, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    assert_quiet(&poller, &mut events);

    write(&w, b"abc");
    let ev = wait_for_key(&poller, &mut events, 3);
    assert_eq!(
        ev,
        Event {
            key: 3,
            readable: true,
            writable: false
        }
    );
    assert_eq!(read(&r), b"abc");
    assert_quiet(&poller, &mut events);
    drop(reg);
}

#[test]
fn readable_after_write_to_socketpair() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let reg = poller.register(a.as_fd(), 11, Interest::READABLE).unwrap();
    let mut events = Events::default();
    assert_quiet(&poller, &mut events);
    b.write_all(b"x").unwrap();
    let ev = wait_for_key(&poller, &mut events, 11);
    assert!(ev.readable && !ev.writable, "{ev:?}");
    drop(reg);
}

#[test]
fn writable_on_empty_pipe() {
    let poller = Poller::new().unwrap();
    let (_r, w) = pipe();
    let reg = poller.register(w.as_fd(), 5, Interest::WRITABLE).unwrap();
    let mut events = Events::with_capacity(8);
    let v = wait(&poller, &mut events, Some(PROMPT));
    assert_eq!(
        v,
        vec![Event {
            key: 5,
            readable: false,
            writable: true
        }]
    );
    drop(reg);
}

#[test]
fn both_interest_on_socket_reports_both() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let reg = poller.register(a.as_fd(), 1, Interest::BOTH).unwrap();
    b.write_all(b"x").unwrap();
    let mut events = Events::with_capacity(8);
    let v = wait(&poller, &mut events, Some(PROMPT));
    assert_eq!(
        v,
        vec![Event {
            key: 1,
            readable: true,
            writable: true
        }]
    );
    drop(reg);
}

#[test]
fn level_triggered_reports_again_until_drained() {
    let poller = Poller::new().unwrap();
    let (r, w) = pipe();
    let reg = poller.register(r.as_fd(), 9, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    write(&w, b"hello");
    for _ in 0..3 {
        let v = wait(&poller, &mut events, Some(PROMPT));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].key, 9);
        assert!(v[0].readable);
    }
    assert_eq!(read(&r), b"hello");
    assert_quiet(&poller, &mut events);
    drop(reg);
}

#[test]
fn modify_switches_interest() {
    let poller = Poller::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let mut reg = poller.register(a.as_fd(), 2, Interest::READABLE).unwrap();
    assert_eq!(reg.fd(), a.as_raw_fd());
    assert_eq!(reg.key(), 2);
    assert_eq!(reg.interest(), Interest::READABLE);
    let mut events = Events::with_capacity(8);
    assert_quiet(&poller, &mut events);

    reg.modify(Interest::WRITABLE).unwrap();
    assert_eq!(reg.interest(), Interest::WRITABLE);
    let ev = wait_for_key(&poller, &mut events, 2);
    assert!(ev.writable && !ev.readable, "{ev:?}");

    // Unchanged interest is a no-op.
    reg.modify(Interest::WRITABLE).unwrap();
    let ev = wait_for_key(&poller, &mut events, 2);
    assert!(ev.writable);
    drop(reg);
}

#[test]
fn small_buffer_reports_every_ready_fd_eventually() {
    let poller = Poller::new().unwrap();
    let pipes: Vec<_> = (0..4).map(|_| pipe()).collect();
    let regs: Vec<_> = pipes
        .iter()
        .enumerate()
        .map(|(i, (r, w))| {
            write(w, b"x");
            poller.register(r.as_fd(), i, Interest::READABLE).unwrap()
        })
        .collect();
    let mut events = Events::with_capacity(1);
    let mut seen = [false; 4];
    // Level-triggered and the kernel rotates its ready list, so every fd
    // shows up within a few waits even with room for one event per wait.
    for _ in 0..64 {
        let v = wait(&poller, &mut events, Some(PROMPT));
        assert_eq!(v.len(), 1);
        seen[v[0].key] = true;
        if seen.iter().all(|s| *s) {
            break;
        }
    }
    assert_eq!(seen, [true; 4]);
    drop(regs);
}

#[test]
fn interest_constants() {
    assert!(Interest::NONE.is_none());
    assert!(Interest::default().is_none());
    assert!(!Interest::READABLE.is_none());
    assert!(!Interest::WRITABLE.is_none());
    assert_eq!(
        Interest::BOTH,
        Interest {
            readable: true,
            writable: true
        }
    );
}

#[test]
fn events_clear_and_backend_name() {
    let poller = Poller::new().unwrap();
    let expected = if cfg!(all(
        any(target_os = "linux", target_os = "android"),
        not(evloop_polling_backend)
    )) {
        "epoll"
    } else {
        "polling"
    };
    assert_eq!(poller.backend_name(), expected);

    let (_r, w) = pipe();
    let reg = poller.register(w.as_fd(), 0, Interest::WRITABLE).unwrap();
    let mut events = Events::with_capacity(0); // rounded up to 1
    assert_eq!(wait(&poller, &mut events, Some(PROMPT)).len(), 1);
    events.clear();
    assert!(events.is_empty());
    assert_eq!(events.iter().count(), 0);
    drop(reg);
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Poller>();
    send_sync::<evloop_reactor::Waker>();
    send::<evloop_reactor::Registration>();
    send::<Events>();
}
