//! Dropping the last handle of an unclosed loop closes it, which removes its
//! signal handlers too.

mod support;

use evloop_core::EventLoop;
use evloop_signals::add_signal_handler;

#[test]
fn dropping_an_unclosed_loop_restores_defaults() {
    let before = support::open_fds();
    let lp = EventLoop::new().unwrap();
    add_signal_handler(&lp, libc::SIGUSR2, || {}).unwrap();
    assert!(!support::is_default(libc::SIGUSR2));
    drop(lp);
    assert!(support::is_default(libc::SIGUSR2));
    assert_eq!(support::open_fds(), before);
}
