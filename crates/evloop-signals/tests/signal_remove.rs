//! `remove_signal_handler`: true then false, `SIG_DFL` restored (SIGINT too),
//! re-adding works, and a handler removed after its signal arrived but before
//! the loop got to it does not run.

mod support;

use std::cell::Cell;
use std::rc::Rc;

use evloop_core::EventLoop;
use evloop_signals::{add_signal_handler, remove_signal_handler};

fn run_until_stopped(lp: &EventLoop) {
    let timed_out = support::guard(lp);
    lp.run_forever().unwrap();
    assert!(!timed_out.get(), "the signal callback never ran");
}

#[test]
fn remove_restores_default_and_readd_works() {
    let lp = EventLoop::new().unwrap();
    for signum in [libc::SIGUSR1, libc::SIGINT] {
        add_signal_handler(&lp, signum, || {}).unwrap();
        assert!(!support::is_default(signum));
        assert!(remove_signal_handler(&lp, signum).unwrap());
        assert!(support::is_default(signum), "signal {signum} not SIG_DFL");
        assert!(!remove_signal_handler(&lp, signum).unwrap());
    }

    // Re-adding after a removal installs the handler again and delivers.
    let runs = Rc::new(Cell::new(0));
    let (count, stopper) = (runs.clone(), lp.clone());
    add_signal_handler(&lp, libc::SIGUSR1, move || {
        count.set(count.get() + 1);
        stopper.stop();
    })
    .unwrap();
    assert!(!support::is_default(libc::SIGUSR1));
    lp.call_soon(|| support::raise(libc::SIGUSR1)).unwrap();
    run_until_stopped(&lp);
    assert_eq!(runs.get(), 1);

    // Arrived, then removed before the loop ran the callback: it never runs.
    support::raise(libc::SIGUSR1);
    assert!(remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
    assert!(support::is_default(libc::SIGUSR1));
    let stopper = lp.clone();
    // Iteration 1 runs the reader (the pipe is readable); iteration 2 would
    // run the callback; iteration 3 stops.
    lp.call_soon(move || {
        let inner = stopper.clone();
        stopper
            .call_soon(move || {
                let last = inner.clone();
                inner.call_soon(move || last.stop()).unwrap();
            })
            .unwrap();
    })
    .unwrap();
    run_until_stopped(&lp);
    assert_eq!(runs.get(), 1);

    lp.close().unwrap();
}
