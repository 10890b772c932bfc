//! Registration lifecycle: errors, `Interest::NONE`, hang-ups, drop.

mod support;

use std::io;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;

use evloop_reactor::{Events, Interest, Poller};
use support::{assert_quiet, pipe, wait, wait_for_key, write};

const EBADF: i32 = 9;
const EEXIST: i32 = 17;
#[cfg(any(target_os = "linux", target_os = "android"))]
const EPERM: i32 = 1;

// `register` takes a `BorrowedFd`: negative, made-up and closed fd numbers
// can no longer reach it from safe code, so the type system rules out what
// the old `-1`/unopened-fd tests checked. What can still go wrong is an fd
// closed (and its number reused) while a `Registration` holds the number.

#[test]
fn enabling_after_fd_closed_is_ebadf() {
    let poller = Poller::new().unwrap();
    let (r, _w) = pipe();
    let mut reg = poller.register(r.as_fd(), 1, Interest::NONE).unwrap();
    drop(r);
    // Unless another test's thread reused the number meanwhile (then it is
    // an open fd and the add succeeds, harmlessly), the kernel says EBADF.
    if let Err(err) = reg.modify(Interest::READABLE) {
        assert_eq!(err.raw_os_error(), Some(EBADF), "{err:?}");
        assert_eq!(reg.interest(), Interest::NONE);
    }
    drop(reg);
}

#[test]
fn rearm_registers_a_reused_fd_number() {
    let poller = Poller::new().unwrap();
    let (r, _w) = pipe();
    let mut reg = poller.register(r.as_fd(), 5, Interest::READABLE).unwrap();
    let number = reg.fd();
    // Closed behind the registration's back; the next pipe reuses the
    // lowest free number, normally this one.
    drop(r);
    let (r2, w2) = pipe();
    if r2.as_raw_fd() != number {
        return; // another test's thread took the number: nothing to check
    }
    write(&w2, b"x");
    let mut events = Events::with_capacity(8);
    // epoll dropped the closed file, so the new one is not in the set...
    assert_quiet(&poller, &mut events);
    // ...until `rearm` adds it again (`modify` would get ENOENT).
    reg.rearm(Interest::READABLE).unwrap();
    let ev = wait_for_key(&poller, &mut events, 5);
    assert!(ev.readable, "{ev:?}");
    drop(reg);
    drop(r2);
}

#[test]
fn double_registration_is_eexist() {
    let poller = Poller::new().unwrap();
    let (r, _w) = pipe();
    let reg = poller.register(r.as_fd(), 1, Interest::READABLE).unwrap();
    let err = poller
        .register(r.as_fd(), 2, Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EEXIST), "{err:?}");
    drop(reg);
}

#[test]
fn reserved_key_is_invalid_input() {
    let poller = Poller::new().unwrap();
    let (r, _w) = pipe();
    let err = poller
        .register(r.as_fd(), usize::MAX, Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err:?}");
    // Nothing was registered: the fd can still be registered normally.
    let reg = poller.register(r.as_fd(), 0, Interest::READABLE).unwrap();
    drop(reg);
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn regular_file_is_eperm_on_linux() {
    let poller = Poller::new().unwrap();
    let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let err = poller
        .register(file.as_fd(), 0, Interest::READABLE)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EPERM), "{err:?}");
}

#[test]
fn drop_deregisters() {
    let poller = Poller::new().unwrap();
    let (r, w) = pipe();
    write(&w, b"x");
    let reg = poller.register(r.as_fd(), 1, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    wait_for_key(&poller, &mut events, 1);
    drop(reg);
    // No longer reported although still readable...
    assert_quiet(&poller, &mut events);
    // ...and registering the same fd again succeeds (no EEXIST).
    let reg = poller.register(r.as_fd(), 2, Interest::READABLE).unwrap();
    let ev = wait_for_key(&poller, &mut events, 2);
    assert!(ev.readable);
    drop(reg);
}

#[test]
fn drop_after_fd_closed_does_not_panic() {
    // Violates the documented invariant on purpose: drop must ignore the
    // resulting EBADF/ENOENT rather than panic.
    let poller = Poller::new().unwrap();
    let (r, _w) = pipe();
    let reg = poller.register(r.as_fd(), 1, Interest::READABLE).unwrap();
    drop(r);
    drop(reg);
    let mut events = Events::with_capacity(8);
    assert_quiet(&poller, &mut events);
}

#[test]
fn none_stops_reports_even_after_hangup() {
    let poller = Poller::new().unwrap();
    let (r, w) = pipe();
    let mut reg = poller.register(r.as_fd(), 4, Interest::READABLE).unwrap();
    let mut events = Events::with_capacity(8);
    assert_quiet(&poller, &mut events);

    // Peer hangs up: EPOLLHUP, reported as readable and writable.
    drop(w);
    let ev = wait_for_key(&poller, &mut events, 4);
    assert!(ev.readable && ev.writable, "hang-up reports both: {ev:?}");

    // NONE must silence the fd completely, HUP included.
    reg.modify(Interest::NONE).unwrap();
    assert_eq!(reg.interest(), Interest::NONE);
    assert_quiet(&poller, &mut events);
    assert_quiet(&poller, &mut events);

    // Re-enabling reports it again.
    reg.modify(Interest::READABLE).unwrap();
    let ev = wait_for_key(&poller, &mut events, 4);
    assert!(ev.readable, "{ev:?}");
    drop(reg);
}

#[test]
fn none_stops_reports_after_socket_peer_closes() {
    let poller = Poller::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let mut reg = poller.register(a.as_fd(), 6, Interest::BOTH).unwrap();
    let mut events = Events::with_capacity(8);
    drop(b);
    let ev = wait_for_key(&poller, &mut events, 6);
    assert!(ev.readable && ev.writable, "{ev:?}");
    reg.modify(Interest::NONE).unwrap();
    assert_quiet(&poller, &mut events);
    reg.modify(Interest::WRITABLE).unwrap();
    wait_for_key(&poller, &mut events, 6);
    drop(reg);
}

#[test]
fn register_with_none_then_enable() {
    let poller = Poller::new().unwrap();
    let (r, w) = pipe();
    write(&w, b"x");
    let mut reg = poller.register(r.as_fd(), 8, Interest::NONE).unwrap();
    let mut events = Events::with_capacity(8);
    assert_quiet(&poller, &mut events);
    reg.modify(Interest::READABLE).unwrap();
    let v = wait(&poller, &mut events, Some(support::PROMPT));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].key, 8);
    // Dropping a NONE registration is fine too.
    reg.modify(Interest::NONE).unwrap();
    drop(reg);
    let reg = poller.register(r.as_fd(), 8, Interest::READABLE).unwrap();
    drop(reg);
}

#[test]
fn failed_modify_keeps_interest() {
    let poller = Poller::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    // Register the same fd twice: once through a NONE registration, once for
    // real. Enabling the NONE one then fails with EEXIST and stays NONE.
    let real = poller.register(a.as_fd(), 1, Interest::READABLE).unwrap();
    let mut shadow = poller.register(a.as_fd(), 2, Interest::NONE).unwrap();
    let err = shadow.modify(Interest::READABLE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EEXIST), "{err:?}");
    assert_eq!(shadow.interest(), Interest::NONE);
    drop(shadow); // must not deregister `real`'s fd
    b.write_all(b"x").unwrap();
    let mut events = Events::with_capacity(8);
    let ev = wait_for_key(&poller, &mut events, 1);
    assert!(ev.readable, "{ev:?}");
    drop(real);
}
