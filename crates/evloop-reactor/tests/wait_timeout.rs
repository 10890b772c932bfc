//! Wait timeouts: never early, rounded up, huge values clamped.

mod support;

use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use evloop_reactor::{Events, Interest, Poller};
use support::{pipe, wait, PROMPT};

/// Generous upper bound on the best of several waits (the machine is noisy).
const SLACK: Duration = Duration::from_millis(500);

/// Waits `timeout` several times: each must last at least `timeout` and
/// report nothing; the fastest must be within `SLACK` of it.
fn check_timeout(timeout: Duration) {
    let poller = Poller::new().unwrap();
    let mut events = Events::with_capacity(8);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let v = wait(&poller, &mut events, Some(timeout));
        let elapsed = start.elapsed();
        assert!(v.is_empty(), "{v:?}");
        assert!(
            elapsed >= timeout,
            "wait({timeout:?}) returned early after {elapsed:?}"
        );
        best = best.min(elapsed);
    }
    assert!(
        best < timeout + SLACK,
        "wait({timeout:?}) took at least {best:?}"
    );
}

#[test]
fn one_millisecond_is_never_early() {
    check_timeout(Duration::from_millis(1));
}

#[test]
fn one_nanosecond_returns_promptly() {
    check_timeout(Duration::from_nanos(1));
}

#[test]
fn sub_millisecond_parts_round_up() {
    check_timeout(Duration::from_micros(1_500));
    check_timeout(Duration::from_micros(999));
    check_timeout(Duration::from_millis(2) + Duration::from_nanos(1));
    check_timeout(Duration::from_millis(30));
}

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(evloop_polling_backend)
))]
#[test]
fn epoll_rounds_one_nanosecond_up_to_a_millisecond() {
    let poller = Poller::new().unwrap();
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    poller
        .wait(&mut events, Some(Duration::from_nanos(1)))
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(1));
}

#[test]
fn zero_timeout_does_not_block() {
    let poller = Poller::new().unwrap();
    let (_r, w) = pipe();
    let reg = poller.register(w.as_fd(), 1, Interest::WRITABLE).unwrap();
    let mut events = Events::with_capacity(8);
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let v = wait(&poller, &mut events, Some(Duration::ZERO));
        best = best.min(start.elapsed());
        assert_eq!(v.len(), 1);
    }
    assert!(best < SLACK, "{best:?}");
    drop(reg);
}

#[test]
fn ready_fd_ends_a_long_wait() {
    let poller = Poller::new().unwrap();
    let (r, w) = pipe();
    let reg = poller.register(r.as_fd(), 1, Interest::READABLE).unwrap();
    let writer = thread::spawn(move || support::write(&w, b"x"));
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    let v = wait(&poller, &mut events, Some(Duration::from_secs(60)));
    assert_eq!(v.len(), 1);
    assert!(start.elapsed() < PROMPT);
    writer.join().unwrap();
    drop(reg);
}

#[test]
fn huge_timeouts_do_not_panic() {
    let poller = Poller::new().unwrap();
    let mut events = Events::with_capacity(8);
    for timeout in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_millis(u64::from(u32::MAX) + 1),
        Duration::from_millis(i32::MAX as u64) + Duration::from_nanos(1),
    ] {
        let waker = poller.waker();
        let t = thread::spawn(move || waker.wake());
        let start = Instant::now();
        let v = wait(&poller, &mut events, Some(timeout));
        assert!(v.is_empty(), "{v:?}");
        assert!(start.elapsed() < PROMPT, "{timeout:?}");
        t.join().unwrap();
    }
}
