//! `EventLoop::interrupt`: the batch ends after the running callback, and
//! what it left runs first at the next run (asyncio's KeyboardInterrupt out
//! of `run_forever`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop_core::EventLoop;

type Log = Rc<RefCell<Vec<&'static str>>>;

fn push(log: &Log, name: &'static str) -> impl FnOnce() + 'static {
    let log = log.clone();
    move || log.borrow_mut().push(name)
}

/// A loop on a virtual clock with a timer already due.
fn loop_with_due_timer(log: &Log) -> EventLoop {
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    lp.call_later(Duration::ZERO, push(log, "timer")).unwrap();
    lp
}

#[test]
fn interrupt_keeps_the_rest_of_the_batch_for_the_next_run() {
    let log: Log = Rc::default();
    let lp = loop_with_due_timer(&log);
    lp.call_soon(push(&log, "a")).unwrap();
    let (lp2, log2) = (lp.clone(), log.clone());
    lp.call_soon(move || {
        log2.borrow_mut().push("b");
        lp2.interrupt();
        // Scheduled during the interrupted batch: after what it left.
        lp2.call_soon(push(&log2, "new")).unwrap();
    })
    .unwrap();
    lp.call_soon(push(&log, "c")).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["a", "b"]);

    let lp2 = lp.clone();
    lp.call_soon(move || lp2.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["a", "b", "c", "timer", "new"]);
    lp.close().unwrap();
}

#[test]
fn interrupt_in_a_timer_keeps_the_other_due_timers() {
    let log: Log = Rc::default();
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    let (lp2, log2) = (lp.clone(), log.clone());
    lp.call_later(Duration::ZERO, move || {
        log2.borrow_mut().push("t1");
        lp2.interrupt();
    })
    .unwrap();
    lp.call_later(Duration::ZERO, push(&log, "t2")).unwrap();
    let cancelled = lp.call_later(Duration::ZERO, push(&log, "t3")).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["t1"]);

    // A carried timer can still be cancelled.
    cancelled.cancel();
    let lp2 = lp.clone();
    lp.call_soon(move || lp2.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["t1", "t2"]);
    lp.close().unwrap();
}

#[test]
fn interrupt_outside_a_run_is_stop() {
    let log: Log = Rc::default();
    let lp = EventLoop::new().unwrap();
    lp.call_soon(push(&log, "a")).unwrap();
    lp.interrupt();
    lp.run_forever().unwrap();
    assert_eq!(*log.borrow(), ["a"]);
    lp.close().unwrap();
}

#[test]
fn close_drops_what_an_interrupted_batch_left() {
    let log: Log = Rc::default();
    let lp = loop_with_due_timer(&log);
    let lp2 = lp.clone();
    lp.call_soon(move || lp2.interrupt()).unwrap();
    let dropped = Rc::new(());
    let held = dropped.clone();
    lp.call_soon(move || drop(held)).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(Rc::strong_count(&dropped), 2);
    lp.close().unwrap();
    assert_eq!(Rc::strong_count(&dropped), 1);
    assert!(log.borrow().is_empty());
}
