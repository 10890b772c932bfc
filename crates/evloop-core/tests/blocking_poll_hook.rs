//! `Builder::around_blocking_poll`: the hook wraps exactly the polls that may
//! block (never a zero-timeout poll of a busy loop), the loop still sees the
//! I/O and remote posts of a wrapped poll, and a hook may schedule callbacks
//! and stop the loop.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_core::EventLoop;

/// A loop whose hook counts the polls it wraps and the calls it forwards.
fn counting_loop() -> (EventLoop, Rc<Cell<u32>>) {
    let wrapped = Rc::new(Cell::new(0));
    let seen = wrapped.clone();
    let lp = EventLoop::builder()
        .around_blocking_poll(move |_lp, poll| {
            seen.set(seen.get() + 1);
            poll();
        })
        .build()
        .unwrap();
    (lp, wrapped)
}

/// Schedules a `call_soon` chain of `links` callbacks, then a stop.
fn chain(lp: &EventLoop, links: u32) {
    let next = lp.clone();
    lp.call_soon(move || {
        if links == 0 {
            next.stop();
        } else {
            chain(&next, links - 1);
        }
    })
    .unwrap();
}

#[test]
fn busy_loop_never_calls_the_hook() {
    let (lp, wrapped) = counting_loop();
    chain(&lp, 100);
    lp.run_forever().unwrap();
    assert_eq!(wrapped.get(), 0, "zero-timeout polls bypass the hook");
    assert!(lp.stats().polls >= 100);
    lp.close().unwrap();
}

#[test]
fn sleeping_for_a_timer_goes_through_the_hook() {
    let (lp, wrapped) = counting_loop();
    let stopper = lp.clone();
    lp.call_later(Duration::from_millis(5), move || stopper.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert!(wrapped.get() >= 1, "the timer wait is a blocking poll");
    lp.close().unwrap();
}

#[test]
fn remote_post_wakes_a_wrapped_poll() {
    let posted = Arc::new(AtomicBool::new(false));
    let wrapped = Rc::new(Cell::new(0));
    let (flag, seen) = (posted.clone(), wrapped.clone());
    // Stops (skipping the poll: the loop then polls without blocking) once
    // the remote callback ran; until then sleeps in the poll.
    let lp = EventLoop::builder()
        .around_blocking_poll(move |lp, poll| {
            seen.set(seen.get() + 1);
            if flag.load(Ordering::Acquire) {
                lp.stop();
            } else {
                poll();
            }
        })
        .build()
        .unwrap();
    let _far = lp.call_later(Duration::from_secs(30), || {}).unwrap();
    let (remote, flag) = (lp.remote(), posted.clone());
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote
            .call_soon_threadsafe(move || flag.store(true, Ordering::Release))
            .unwrap();
    });
    let start = Instant::now();
    lp.run_forever().unwrap();
    poster.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the post woke the sleep"
    );
    assert_eq!(wrapped.get(), 2, "one sleep woken by the post, one skipped");
    lp.close().unwrap();
}

#[test]
fn hook_may_schedule_and_stop() {
    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    let lp = EventLoop::builder()
        .around_blocking_poll(move |lp, poll| {
            poll();
            let flag = flag.clone();
            lp.call_soon(move || flag.set(true)).unwrap();
            lp.stop();
        })
        .build()
        .unwrap();
    let _timer = lp.call_later(Duration::from_millis(10), || {}).unwrap();
    lp.run_forever().unwrap();
    assert!(
        ran.get(),
        "the callback scheduled by the hook ran before the stop"
    );
    lp.close().unwrap();
}
