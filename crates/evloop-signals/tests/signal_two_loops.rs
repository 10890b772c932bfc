//! One loop per signal: while a loop on another thread handles SIGUSR2, this
//! thread's loop cannot; once that loop closes, it can.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;

use evloop_core::{Error, EventLoop};
use evloop_signals::{add_signal_handler, remove_signal_handler};

#[test]
fn a_signal_belongs_to_one_live_loop() {
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (close_tx, close_rx) = mpsc::channel::<()>();
    let other = thread::spawn(move || {
        let lp = EventLoop::new().unwrap();
        add_signal_handler(&lp, libc::SIGUSR2, || {}).unwrap();
        ready_tx.send(()).unwrap();
        close_rx.recv().unwrap();
        lp.close().unwrap();
    });
    ready_rx.recv().unwrap();

    let lp = EventLoop::new().unwrap();
    match add_signal_handler(&lp, libc::SIGUSR2, || {}) {
        Err(Error::InvalidArgument(message)) => {
            assert_eq!(
                message,
                format!("signal {} is handled by another event loop", libc::SIGUSR2)
            );
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(!remove_signal_handler(&lp, libc::SIGUSR2).unwrap());
    // Other signals are free.
    add_signal_handler(&lp, libc::SIGUSR1, || {}).unwrap();
    assert!(remove_signal_handler(&lp, libc::SIGUSR1).unwrap());

    close_tx.send(()).unwrap();
    other.join().unwrap();
    assert!(support::is_default(libc::SIGUSR2));

    let ran = Rc::new(Cell::new(false));
    let (flag, stopper) = (ran.clone(), lp.clone());
    add_signal_handler(&lp, libc::SIGUSR2, move || {
        flag.set(true);
        stopper.stop();
    })
    .unwrap();
    lp.call_soon(|| support::raise(libc::SIGUSR2)).unwrap();
    let timed_out = support::guard(&lp);
    lp.run_forever().unwrap();
    assert!(!timed_out.get(), "the signal callback never ran");
    assert!(ran.get());
    lp.close().unwrap();
    assert!(support::is_default(libc::SIGUSR2));
}
