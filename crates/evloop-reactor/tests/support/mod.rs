//! Shared helpers for the reactor's integration tests.

#![allow(dead_code, unreachable_pub)]

use std::os::fd::OwnedFd;
use std::time::Duration;

use evloop_reactor::{Event, Events, Poller};

/// A generous bound for "this should happen promptly"; only exceeded on a
/// failure (or a badly overloaded machine).
pub const PROMPT: Duration = Duration::from_secs(5);

/// A short wait used to check that nothing is reported.
pub const QUIET: Duration = Duration::from_millis(20);

/// A non-blocking, close-on-exec pipe: `(read end, write end)`.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK)
        .expect("pipe")
}

/// Writes `data` to `fd`.
pub fn write(fd: &OwnedFd, data: &[u8]) {
    let n = rustix::io::write(fd, data).expect("write");
    assert_eq!(n, data.len());
}

/// Reads up to 64 bytes from `fd`.
pub fn read(fd: &OwnedFd) -> Vec<u8> {
    let mut buf = [0_u8; 64];
    let n = rustix::io::read(fd, &mut buf).expect("read");
    buf[..n].to_vec()
}

/// One wait, returning the events as a vector (checked against the count and
/// against the reserved key).
pub fn wait(poller: &Poller, events: &mut Events, timeout: Option<Duration>) -> Vec<Event> {
    let n = poller.wait(events, timeout).expect("wait");
    let v: Vec<Event> = events.iter().collect();
    assert_eq!(n, v.len());
    assert_eq!(events.len(), n);
    assert_eq!(events.is_empty(), n == 0);
    assert!(
        v.iter().all(|ev| ev.key != usize::MAX),
        "internal key reported: {v:?}"
    );
    v
}

/// Waits until an event for `key` is reported (bounded by [`PROMPT`]).
pub fn wait_for_key(poller: &Poller, events: &mut Events, key: usize) -> Event {
    let deadline = std::time::Instant::now() + PROMPT;
    loop {
        let now = std::time::Instant::now();
        assert!(now < deadline, "no event for key {key} within {PROMPT:?}");
        if let Some(ev) = wait(poller, events, Some(deadline - now))
            .into_iter()
            .find(|ev| ev.key == key)
        {
            return ev;
        }
    }
}

/// Asserts that a short wait reports nothing.
pub fn assert_quiet(poller: &Poller, events: &mut Events) {
    let v = wait(poller, events, Some(QUIET));
    assert!(v.is_empty(), "unexpected events: {v:?}");
}
