//! A panicking signal callback is reported to the loop's exception handler,
//! and the loop (and the signal handler) go on.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use evloop_core::{Error, ErrorContext, EventLoop};
use evloop_signals::{add_signal_handler, remove_signal_handler};

#[test]
fn panicking_callback_goes_to_the_exception_handler() {
    let lp = EventLoop::new().unwrap();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let sink = reports.clone();
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
        sink.borrow_mut()
            .push((ctx.message.clone(), ctx.error.clone()));
        // The loop goes on: the next delivery must still reach the callback.
        support::raise(libc::SIGUSR1);
    }));

    let runs = Rc::new(Cell::new(0));
    let (count, stopper) = (runs.clone(), lp.clone());
    add_signal_handler(&lp, libc::SIGUSR1, move || {
        count.set(count.get() + 1);
        if count.get() == 1 {
            panic!("boom from a signal callback");
        }
        stopper.stop();
    })
    .unwrap();
    lp.call_soon(|| support::raise(libc::SIGUSR1)).unwrap();
    let timed_out = support::guard(&lp);
    lp.run_forever().unwrap();

    assert!(!timed_out.get(), "the second signal callback never ran");
    assert_eq!(runs.get(), 2);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let (message, error) = &reports[0];
    assert!(message.starts_with("Exception in callback"), "{message}");
    match error {
        Some(Error::Panic(text)) => assert_eq!(text, "boom from a signal callback"),
        other => panic!("expected a Panic error, got {other:?}"),
    }
    drop(reports);

    assert!(remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}
