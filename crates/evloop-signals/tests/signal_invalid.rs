//! Bad arguments: out-of-range numbers, uncatchable signals, closed loops.

mod support;

use evloop_core::{Error, EventLoop};
use evloop_signals::{add_signal_handler, remove_signal_handler};

#[test]
fn out_of_range_numbers_are_invalid_arguments() {
    let lp = EventLoop::new().unwrap();
    for signum in [0, -1, 65, 1000, i32::MIN, i32::MAX] {
        match add_signal_handler(&lp, signum, || {}) {
            Err(Error::InvalidArgument(message)) => {
                assert_eq!(message, format!("invalid signal number {signum}"));
            }
            other => panic!("add {signum}: expected InvalidArgument, got {other:?}"),
        }
        match remove_signal_handler(&lp, signum) {
            Err(Error::InvalidArgument(message)) => assert!(message.contains(&signum.to_string())),
            other => panic!("remove {signum}: expected InvalidArgument, got {other:?}"),
        }
    }
    lp.close().unwrap();
}

#[test]
fn sigkill_and_sigstop_are_uncatchable() {
    let lp = EventLoop::new().unwrap();
    for signum in [libc::SIGKILL, libc::SIGSTOP] {
        match add_signal_handler(&lp, signum, || {}) {
            Err(Error::UncatchableSignal(n)) => assert_eq!(n, signum),
            other => panic!("add {signum}: expected UncatchableSignal, got {other:?}"),
        }
        assert!(!remove_signal_handler(&lp, signum).unwrap());
    }
    lp.close().unwrap();
}

#[test]
fn closed_loop_refuses_add_and_remove_is_false() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    assert!(matches!(
        add_signal_handler(&lp, libc::SIGUSR1, || {}),
        Err(Error::Closed)
    ));
    assert!(!remove_signal_handler(&lp, libc::SIGUSR1).unwrap());
    // Closed comes first, even for bad numbers.
    assert!(!remove_signal_handler(&lp, 0).unwrap());
}

#[test]
fn remove_without_any_handler_is_false() {
    let lp = EventLoop::new().unwrap();
    assert!(!remove_signal_handler(&lp, libc::SIGHUP).unwrap());
    lp.close().unwrap();
}

/// glibc reserves 32 and 33 for its threads; `sigaction` says EINVAL.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn glibc_reserved_signals_fail_with_the_os_error() {
    let lp = EventLoop::new().unwrap();
    for signum in [32, 33] {
        match add_signal_handler(&lp, signum, || {}) {
            Err(Error::Io(error)) => assert_eq!(error.raw_os_error(), Some(libc::EINVAL)),
            other => panic!("add {signum}: expected Io(EINVAL), got {other:?}"),
        }
        assert!(!remove_signal_handler(&lp, signum).unwrap());
    }
    lp.close().unwrap();
}
