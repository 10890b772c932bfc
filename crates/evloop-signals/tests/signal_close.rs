//! Closing the loop removes its handlers (`SIG_DFL` again) and closes the
//! wake-up pipe: no fd is left behind.

mod support;

use evloop_core::{Error, EventLoop};
use evloop_signals::{add_signal_handler, remove_signal_handler};

#[test]
fn close_restores_defaults_and_closes_the_pipe() {
    let before = support::open_fds();
    let lp = EventLoop::new().unwrap();
    add_signal_handler(&lp, libc::SIGUSR1, || {}).unwrap();
    add_signal_handler(&lp, libc::SIGTERM, || {}).unwrap();
    assert!(!support::is_default(libc::SIGUSR1));
    assert!(!support::is_default(libc::SIGTERM));
    assert!(support::open_fds() > before);

    // A signal that arrived but was never handled is simply dropped.
    support::raise(libc::SIGUSR1);
    lp.close().unwrap();
    assert!(support::is_default(libc::SIGUSR1));
    assert!(support::is_default(libc::SIGTERM));
    assert!(matches!(
        add_signal_handler(&lp, libc::SIGUSR1, || {}),
        Err(Error::Closed)
    ));
    assert!(!remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
    lp.close().unwrap();
    drop(lp);
    assert_eq!(support::open_fds(), before);
}
