//! Adding a handler again replaces the callback: only the new one runs, also
//! for a signal that arrived before the replacement.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use evloop_core::EventLoop;
use evloop_signals::{add_signal_handler, remove_signal_handler};

#[test]
fn second_add_replaces_the_first() {
    let lp = EventLoop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let handler = |name: &'static str| {
        let (log, stopper) = (log.clone(), lp.clone());
        move || {
            log.borrow_mut().push(name);
            stopper.stop();
        }
    };

    add_signal_handler(&lp, libc::SIGUSR1, handler("first")).unwrap();
    add_signal_handler(&lp, libc::SIGUSR1, handler("second")).unwrap();
    lp.call_soon(|| support::raise(libc::SIGUSR1)).unwrap();
    let timed_out = support::guard(&lp);
    lp.run_forever().unwrap();
    assert!(!timed_out.get(), "the signal callback never ran");
    assert_eq!(*log.borrow(), ["second"]);

    // Arrived under "second", replaced by "third" before the loop ran it.
    support::raise(libc::SIGUSR1);
    add_signal_handler(&lp, libc::SIGUSR1, handler("third")).unwrap();
    lp.run_forever().unwrap();
    assert!(!timed_out.get(), "the signal callback never ran");
    assert_eq!(*log.borrow(), ["second", "third"]);

    assert!(remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}
