//! Loom models of the reactor waker's "write the eventfd only when the loop
//! sleeps" protocol (`src/waker.rs`), run through the real [`Poller`] and
//! [`Waker`] with the loom backend (`src/sys/loom.rs`: the eventfd is a
//! counter, the blocking wait a loom condition variable).
//!
//! Run with `cargo xtask loom` (it builds with `--cfg loom`); without that
//! cfg this file is empty.
#![cfg(loom)]

use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use evloop_reactor::{Events, Poller};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// Runs `model` under loom's checker (preemption bound from
/// `LOOM_MAX_PREEMPTIONS`, else 3) and prints how many interleavings it
/// explored and how long that took.
fn check(name: &str, model: impl Fn() + Sync + Send + 'static) {
    let iterations = StdArc::new(StdAtomicUsize::new(0));
    let count = StdArc::clone(&iterations);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = builder.preemption_bound.or(Some(3));
    let bound = builder.preemption_bound;
    let start = Instant::now();
    builder.check(move || {
        count.fetch_add(1, Relaxed);
        model();
    });
    println!(
        "loom model {name}: {} interleavings in {:.2?} (preemption bound {})",
        iterations.load(Relaxed),
        start.elapsed(),
        bound.map_or_else(|| "none".to_owned(), |b| b.to_string()),
    );
}

/// The loop's side: blocks in `wait(None)` until `posted` reaches `want`,
/// as the core does (drain its queue, then wait). Returns how many waits
/// it made.
fn wait_for(poller: &Poller, posted: &AtomicUsize, want: usize) -> u64 {
    let mut events = Events::with_capacity(4);
    let mut waits = 0;
    while posted.load(SeqCst) < want {
        poller.wait(&mut events, None).unwrap();
        assert!(events.is_empty(), "the loom backend reports no fd events");
        waits += 1;
    }
    waits
}

/// Proves: a wake made while the loop is going to sleep is never lost. One
/// thread posts (an atomic counter standing in for the Remote queue) and
/// wakes, twice; the loop waits with no timeout until it sees both posts.
/// If any interleaving left the loop blocked with a post unobserved, loom
/// would report the deadlock. Also: never more than one eventfd write is
/// unread at once, and every write was needed by a sleep.
#[test]
fn wake_racing_sleep_entry_is_never_lost() {
    check("waker: wake vs sleep entry, two rounds", || {
        let poller = Poller::new().unwrap();
        let waker = poller.waker();
        let posted = Arc::new(AtomicUsize::new(0));
        let poster = {
            let posted = Arc::clone(&posted);
            thread::spawn(move || {
                for _ in 0..2 {
                    posted.fetch_add(1, SeqCst);
                    waker.wake();
                }
            })
        };
        let waits = wait_for(&poller, &posted, 2);
        poster.join().unwrap();
        let seen = poller.notifications();
        assert!(seen.max_unread <= 1, "wakes did not coalesce: {seen:?}");
        assert!(
            seen.writes <= waits + 1,
            "{} eventfd writes for {waits} waits: {seen:?}",
            seen.writes
        );
    });
}

/// Proves: wakes from two threads at once coalesce. Both post and wake
/// while the loop goes to sleep; the loop never misses either post, the
/// eventfd never holds more than one unread write, and there are never more
/// writes than sleeps.
#[test]
fn concurrent_wakes_coalesce_into_one_write() {
    check("waker: two wakers vs sleep", || {
        let poller = Poller::new().unwrap();
        let posted = Arc::new(AtomicUsize::new(0));
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let waker = poller.waker();
                let posted = Arc::clone(&posted);
                thread::spawn(move || {
                    posted.fetch_add(1, SeqCst);
                    waker.wake();
                })
            })
            .collect();
        let waits = wait_for(&poller, &posted, 2);
        for waker in wakers {
            waker.join().unwrap();
        }
        let seen = poller.notifications();
        assert!(seen.max_unread <= 1, "two writes unread at once: {seen:?}");
        assert!(
            seen.writes <= waits + 1,
            "{} eventfd writes for {waits} waits: {seen:?}",
            seen.writes
        );
    });
}

/// Proves: while the loop is busy (it only ever polls with a zero timeout)
/// a wake costs no eventfd write at all, and the loop still sees the post.
#[test]
fn busy_loop_takes_wakes_without_a_write() {
    check("waker: wake vs busy loop", || {
        let poller = Poller::new().unwrap();
        let waker = poller.waker();
        let posted = Arc::new(AtomicUsize::new(0));
        let poster = {
            let posted = Arc::clone(&posted);
            thread::spawn(move || {
                posted.fetch_add(1, SeqCst);
                waker.wake();
            })
        };
        let mut events = Events::with_capacity(4);
        while posted.load(SeqCst) == 0 {
            poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
            thread::yield_now();
        }
        poster.join().unwrap();
        assert_eq!(poller.notifications().writes, 0, "a busy loop paid a write");
    });
}
