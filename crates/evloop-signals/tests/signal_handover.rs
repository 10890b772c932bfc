//! A signal handed from one loop to another: a wake-up byte left in the first
//! loop's pipe must not swallow a delivery meant for the new owner.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;

use evloop_core::EventLoop;
use evloop_signals::{add_signal_handler, remove_signal_handler};

#[test]
fn stale_byte_in_the_old_owners_pipe_does_not_steal_the_signal() {
    let (a_ready_tx, a_ready_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (a_ran_tx, a_ran_rx) = mpsc::channel::<()>();
    let old_owner = thread::spawn(move || {
        let lp = EventLoop::new().unwrap();
        add_signal_handler(&lp, libc::SIGUSR1, || {}).unwrap();
        // Arrives (byte in this loop's pipe), then the handler goes away
        // before this loop looks.
        support::raise(libc::SIGUSR1);
        assert!(remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
        a_ready_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        // Now this loop reads its stale byte.
        for _ in 0..3 {
            lp.stop();
            lp.run_forever().unwrap();
        }
        a_ran_tx.send(()).unwrap();
        lp.close().unwrap();
    });
    a_ready_rx.recv().unwrap();

    let lp = EventLoop::new().unwrap();
    let runs = Rc::new(Cell::new(0));
    let (count, stopper) = (runs.clone(), lp.clone());
    add_signal_handler(&lp, libc::SIGUSR1, move || {
        count.set(count.get() + 1);
        stopper.stop();
    })
    .unwrap();
    support::raise(libc::SIGUSR1);
    go_tx.send(()).unwrap();
    a_ran_rx.recv().unwrap();
    old_owner.join().unwrap();

    let timed_out = support::guard(&lp);
    lp.run_forever().unwrap();
    assert!(!timed_out.get(), "the new owner's callback never ran");
    assert_eq!(runs.get(), 1);
    assert!(remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}
