//! A signal sent while the loop is blocked in poll wakes it, and the callback
//! runs on the loop's thread.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;

use evloop_core::EventLoop;
use evloop_signals::{add_signal_handler, remove_signal_handler};

#[test]
fn signal_from_another_thread_wakes_the_blocked_loop_and_runs_on_its_thread() {
    let lp = EventLoop::new().unwrap();
    let loop_thread = thread::current().id();
    let ran_on = Rc::new(Cell::new(None));
    let (record, stopper) = (ran_on.clone(), lp.clone());
    add_signal_handler(&lp, libc::SIGUSR1, move || {
        record.set(Some(thread::current().id()));
        stopper.stop();
    })
    .unwrap();
    let timed_out = support::guard(&lp);

    // Once the loop runs, tell the signaller which thread to watch; it waits
    // until that thread sleeps in poll (nothing is ready, the only timer is
    // the guard), then signals the process.
    let (tx, rx) = mpsc::channel::<i32>();
    let tid = support::gettid();
    lp.call_soon(move || tx.send(tid).unwrap()).unwrap();
    let signaller = thread::spawn(move || {
        let tid = rx.recv().unwrap();
        let slept = support::wait_until_sleeping(tid);
        support::kill_self(libc::SIGUSR1);
        slept
    });

    lp.run_forever().unwrap();
    let slept = signaller.join().unwrap();
    assert!(!timed_out.get(), "the signal callback never ran");
    assert!(slept, "the loop thread was never seen asleep in poll");
    assert_eq!(ran_on.get(), Some(loop_thread));
    // 1: the send; 2: blocked in poll, woken by the pipe, the reader
    // schedules the callback; 3: the callback.
    assert!(lp.stats().iterations >= 3);

    assert!(remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}
