//! The cross-thread waker: ends waits, coalesces, never leaks its own events.

mod support;

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use evloop_reactor::{Events, Interest, Poller};
use support::{assert_quiet, pipe, wait, write, PROMPT};

#[test]
fn cross_thread_wake_ends_an_infinite_wait() {
    let poller = Poller::new().unwrap();
    let mut events = Events::with_capacity(8);
    let barrier = Arc::new(Barrier::new(2));
    // Many rounds, so the wake lands sometimes before and sometimes during
    // the blocking wait; both must end it.
    for _ in 0..200 {
        let waker = poller.waker();
        let b = Arc::clone(&barrier);
        let t = thread::spawn(move || {
            b.wait();
            waker.wake();
        });
        barrier.wait();
        let v = wait(&poller, &mut events, None);
        assert!(v.is_empty(), "{v:?}");
        t.join().unwrap();
    }
    // The wakes were all consumed: nothing left over.
    assert_quiet(&poller, &mut events);
}

#[test]
fn wake_before_wait_returns_immediately() {
    let poller = Poller::new().unwrap();
    let mut events = Events::with_capacity(8);
    poller.waker().wake();
    let start = Instant::now();
    let v = wait(&poller, &mut events, Some(Duration::from_secs(60)));
    assert!(v.is_empty(), "{v:?}");
    assert!(start.elapsed() < PROMPT);
    // Consumed: the next wait times out.
    assert_quiet(&poller, &mut events);
}

#[test]
fn wake_is_consumed_by_a_zero_timeout_wait() {
    let poller = Poller::new().unwrap();
    let mut events = Events::with_capacity(8);
    poller.waker().wake();
    assert!(wait(&poller, &mut events, Some(Duration::ZERO)).is_empty());
    assert_quiet(&poller, &mut events);
}

#[test]
fn many_wakes_coalesce() {
    let poller = Poller::new().unwrap();
    let (r, w) = pipe();
    let reg = poller.register(r.as_fd(), 0, Interest::READABLE).unwrap();
    let waker = poller.waker();
    let mut events = Events::with_capacity(8);
    for _ in 0..100_000 {
        waker.wake();
    }
    // One immediate return, no internal event, then quiet again.
    assert!(wait(&poller, &mut events, Some(PROMPT)).is_empty());
    assert_quiet(&poller, &mut events);

    // Wakes from another thread while we block, many rounds: no eventfd
    // overflow, no internal key, user events still reported alongside.
    let rounds = 500;
    let t = {
        let waker = poller.waker();
        thread::spawn(move || {
            for _ in 0..rounds {
                for _ in 0..100 {
                    waker.wake();
                }
                thread::yield_now();
            }
        })
    };
    while !t.is_finished() {
        wait(&poller, &mut events, Some(Duration::from_millis(10)));
    }
    t.join().unwrap();
    write(&w, b"x");
    let v = wait(&poller, &mut events, Some(PROMPT));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].key, 0);
    drop(reg);
}

#[test]
fn waker_from_four_threads_with_concurrent_waits() {
    const THREADS: usize = 4;
    const WAKES: usize = 20_000;
    let poller = Poller::new().unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let waker = poller.waker();
            let done = Arc::clone(&done);
            thread::spawn(move || {
                for i in 0..WAKES {
                    waker.clone().wake();
                    if i % 1000 == 0 {
                        thread::yield_now();
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                // The wake after `done` guarantees the loop below sees it.
                waker.wake();
            })
        })
        .collect();
    let mut events = Events::with_capacity(8);
    let mut waits = 0_u64;
    while done.load(Ordering::SeqCst) < THREADS {
        // Long timeout: returning early proves a wake ended the wait.
        let start = Instant::now();
        let v = wait(&poller, &mut events, Some(Duration::from_secs(30)));
        assert!(v.is_empty(), "{v:?}");
        assert!(start.elapsed() < PROMPT, "a wake was lost");
        waits += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(waits >= 1);
    // Whatever is left is at most one stale wake-up.
    wait(&poller, &mut events, Some(Duration::ZERO));
    assert_quiet(&poller, &mut events);
}

#[test]
fn waker_outlives_poller_handle() {
    let poller = Poller::new().unwrap();
    let waker = poller.waker();
    let clone = poller.clone();
    drop(poller);
    waker.wake();
    let mut events = Events::with_capacity(8);
    let start = Instant::now();
    assert!(wait(&clone, &mut events, Some(Duration::from_secs(60))).is_empty());
    assert!(start.elapsed() < PROMPT);
    drop(clone);
    // The waker keeps the OS resources alive; waking with no poller is fine.
    waker.wake();
    assert!(format!("{waker:?}").contains("Waker"));
}
