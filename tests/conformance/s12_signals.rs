//! docs/behaviour.md 12.1: `add_signal_handler`/`remove_signal_handler` — argument
//! errors, uncatchable signals, callbacks run on the loop (even while it
//! blocks in poll), and the default disposition restored.
//!
//! Dispositions are read from `/proc/self/status` (`SigCgt`/`SigIgn`): a
//! signal is at `SIG_DFL` exactly when it is neither caught nor ignored. That
//! keeps this crate free of `unsafe` (no `libc::sigaction` call needed).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread::{self, JoinHandle};

use evloop::{Error, EventLoop};
use evloop_conformance::{Fixture, Watchdog};
use rustix::process::{getpid, kill_process, Signal};

/// What the kernel does with a signal for this process.
#[derive(Debug, PartialEq, Eq)]
enum Disposition {
    Default,
    Ignored,
    Caught,
}

fn disposition(signum: i32) -> Disposition {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let mask = |key: &str| -> u64 {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in /proc/self/status"));
        u64::from_str_radix(line.trim(), 16).expect("hex mask")
    };
    let bit = 1u64 << (signum - 1);
    if mask("SigCgt:") & bit != 0 {
        Disposition::Caught
    } else if mask("SigIgn:") & bit != 0 {
        Disposition::Ignored
    } else {
        Disposition::Default
    }
}

fn signal(signum: i32) -> Signal {
    Signal::from_named_raw(signum).expect("a named signal")
}

/// Sends `signum` to this process (any thread may take it).
fn raise(signum: i32) {
    kill_process(getpid(), signal(signum)).expect("kill");
}

/// This thread's kernel thread id (`/proc/thread-self` → `PID/task/TID`).
fn current_tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .expect("tid")
        .to_string_lossy()
        .into_owned()
}

/// True while thread `tid` of this process sleeps in `epoll_wait`.
fn blocked_in_poll(tid: &str) -> bool {
    let base = format!("/proc/self/task/{tid}");
    match std::fs::read_to_string(format!("{base}/wchan")) {
        Ok(wchan) if wchan.contains("poll") => true,
        Ok(wchan) if wchan != "0" && !wchan.is_empty() => false,
        // No wchan support: fall back to the scheduler state.
        _ => std::fs::read_to_string(format!("{base}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
                Some(state == "S")
            })
            .unwrap_or(false),
    }
}

/// Raises `signum` from another thread once the loop (this thread) sleeps
/// in poll; returns whether it saw the loop blocked before raising.
fn raise_when_blocked(signum: i32) -> JoinHandle<bool> {
    let loop_thread = current_tid();
    thread::spawn(move || {
        let mut saw_blocked = false;
        // Bounded, so a platform without this /proc view still raises.
        for _ in 0..5_000_000 {
            if blocked_in_poll(&loop_thread) {
                saw_blocked = true;
                break;
            }
            thread::yield_now();
        }
        raise(signum);
        saw_blocked
    })
}

#[test]
fn spec_12_1_invalid_numbers_are_invalid_argument() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    for signum in [0, -1, 65, 1000, i32::MIN] {
        let added = lp.add_signal_handler(signum, || ());
        assert!(
            matches!(added, Err(Error::InvalidArgument(_))),
            "add {signum}: {added:?}"
        );
        let removed = lp.remove_signal_handler(signum);
        assert!(
            matches!(removed, Err(Error::InvalidArgument(_))),
            "remove {signum}: {removed:?}"
        );
    }
    fx.finish();
}

#[test]
fn spec_12_1_sigkill_and_sigstop_are_uncatchable() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    for signum in [libc::SIGKILL, libc::SIGSTOP] {
        let added = lp.add_signal_handler(signum, || ());
        assert!(
            matches!(added, Err(Error::UncatchableSignal(n)) if n == signum),
            "{signum}: {added:?}"
        );
        assert_eq!(disposition(signum), Disposition::Default);
        let removed = lp.remove_signal_handler(signum).expect("remove");
        assert!(!removed, "an uncatchable signal never had a handler");
    }
    fx.finish();
}

#[test]
fn spec_12_1_callback_runs_on_the_loop_while_it_blocks_in_poll() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let signum = libc::SIGUSR1;
    let runs = Rc::new(Cell::new(0));
    let on_loop_thread = Rc::new(Cell::new(false));
    let test_thread = thread::current().id();
    let (r, on, stopper) = (runs.clone(), on_loop_thread.clone(), lp.clone());
    lp.add_signal_handler(signum, move || {
        r.set(r.get() + 1);
        on.set(thread::current().id() == test_thread && EventLoop::try_current().is_some());
        stopper.stop();
    })
    .expect("add_signal_handler");
    assert_eq!(disposition(signum), Disposition::Caught);
    let watchdog = Watchdog::new(lp.remote());
    // No callbacks, no timers: the loop blocks in poll until the signal.
    let raiser = raise_when_blocked(signum);
    fx.run_forever();
    let saw_blocked = raiser.join().expect("raiser thread");
    assert!(!watchdog.fired(), "the signal did not wake the loop");
    drop(watchdog);
    assert!(
        saw_blocked,
        "the loop was blocked in poll when the signal came"
    );
    assert_eq!(runs.get(), 1);
    assert!(
        on_loop_thread.get(),
        "the callback ran on the loop's thread, inside the loop"
    );
    assert!(lp.remove_signal_handler(signum).expect("remove"));
    fx.finish();
}

#[test]
fn spec_12_1_signal_raised_before_running_is_handled_on_the_next_run() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let signum = libc::SIGUSR2;
    let runs = Rc::new(Cell::new(0));
    let (r, stopper) = (runs.clone(), lp.clone());
    lp.add_signal_handler(signum, move || {
        r.set(r.get() + 1);
        stopper.stop();
    })
    .expect("add_signal_handler");
    raise(signum);
    assert_eq!(
        runs.get(),
        0,
        "the callback never runs inside the signal handler"
    );
    let watchdog = Watchdog::new(lp.remote());
    fx.run_forever();
    assert!(!watchdog.fired(), "the pending signal was not seen");
    drop(watchdog);
    assert_eq!(runs.get(), 1);
    assert!(lp.remove_signal_handler(signum).expect("remove"));
    fx.finish();
}

#[test]
fn spec_12_1_panicking_callback_goes_to_the_exception_handler() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let signum = libc::SIGUSR1;
    lp.add_signal_handler(signum, || panic!("signal boom"))
        .expect("add_signal_handler");
    let saved = lp.get_exception_handler().expect("fixture handler");
    let stopper = lp.clone();
    let watchdog = Watchdog::new(lp.remote());
    raise(signum);
    // Stop once the loop has had the chance to run it: after the report.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s, inner) = (seen.clone(), lp.clone());
    lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &evloop::ErrorContext| {
        s.borrow_mut().push(ctx.clone());
        stopper.stop();
    }));
    fx.run_forever();
    assert!(!watchdog.fired(), "the callback never ran");
    drop(watchdog);
    let errors = seen.borrow().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.starts_with("Exception in callback"),
        "{errors:?}"
    );
    assert!(
        matches!(&errors[0].error, Some(Error::Panic(m)) if m == "signal boom"),
        "{errors:?}"
    );
    assert!(inner.remove_signal_handler(signum).expect("remove"));
    // Put the fixture's recording handler back (dropping the loop clone the
    // test's handler captured).
    lp.set_exception_handler(Some(move |l: &EventLoop, ctx: &evloop::ErrorContext| {
        saved(l, ctx)
    }));
    drop(inner);
    fx.finish();
}

#[test]
fn spec_12_1_re_adding_replaces_the_callback() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let signum = libc::SIGUSR2;
    let (old, new) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let o = old.clone();
    lp.add_signal_handler(signum, move || o.set(o.get() + 1))
        .expect("add_signal_handler");
    let (n, stopper) = (new.clone(), lp.clone());
    lp.add_signal_handler(signum, move || {
        n.set(n.get() + 1);
        stopper.stop();
    })
    .expect("add_signal_handler again");
    let watchdog = Watchdog::new(lp.remote());
    raise(signum);
    fx.run_forever();
    assert!(!watchdog.fired());
    drop(watchdog);
    assert_eq!((old.get(), new.get()), (0, 1));
    assert!(lp.remove_signal_handler(signum).expect("remove"));
    assert!(!lp.remove_signal_handler(signum).expect("remove again"));
    fx.finish();
}

#[test]
fn spec_12_1_remove_returns_bool_and_restores_the_default() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let signum = libc::SIGUSR2;
    assert!(
        !lp.remove_signal_handler(signum).expect("remove"),
        "no handler yet"
    );
    lp.add_signal_handler(signum, || ())
        .expect("add_signal_handler");
    assert_eq!(disposition(signum), Disposition::Caught);
    assert!(lp.remove_signal_handler(signum).expect("remove"));
    assert_eq!(
        disposition(signum),
        Disposition::Default,
        "SIG_DFL restored"
    );
    assert!(!lp.remove_signal_handler(signum).expect("remove again"));
    assert_eq!(disposition(signum), Disposition::Default);
    fx.finish();
}

#[test]
fn spec_12_1_sigint_is_restored_to_the_default_interrupt() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let signum = libc::SIGINT;
    let before = disposition(signum);
    assert_ne!(
        before,
        Disposition::Caught,
        "test premise: nobody catches SIGINT"
    );
    lp.add_signal_handler(signum, || ())
        .expect("add_signal_handler");
    assert_eq!(disposition(signum), Disposition::Caught);
    assert!(lp.remove_signal_handler(signum).expect("remove"));
    assert_eq!(
        disposition(signum),
        Disposition::Default,
        "SIGINT interrupts again"
    );
    fx.finish();
}

#[test]
fn spec_12_1_close_removes_every_handler() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    for signum in [libc::SIGUSR1, libc::SIGUSR2] {
        lp.add_signal_handler(signum, || ())
            .expect("add_signal_handler");
        assert_eq!(disposition(signum), Disposition::Caught);
    }
    lp.close().expect("close");
    for signum in [libc::SIGUSR1, libc::SIGUSR2] {
        assert_eq!(disposition(signum), Disposition::Default, "{signum}");
        assert!(!lp
            .remove_signal_handler(signum)
            .expect("remove after close"));
    }
    fx.finish();
}

#[test]
fn spec_12_1_after_close_is_closed() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    lp.close().expect("close");
    let added = lp.add_signal_handler(libc::SIGUSR1, || ());
    assert!(matches!(added, Err(Error::Closed)), "{added:?}");
    assert_eq!(disposition(libc::SIGUSR1), Disposition::Default);
    fx.finish();
}

#[test]
fn spec_12_1_a_signal_belongs_to_one_loop_at_a_time() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let signum = libc::SIGUSR1;
    let other = EventLoop::new().expect("second loop");
    lp.add_signal_handler(signum, || ())
        .expect("add_signal_handler");
    let taken = other.add_signal_handler(signum, || ());
    assert!(matches!(taken, Err(Error::InvalidArgument(_))), "{taken:?}");
    assert_eq!(
        disposition(signum),
        Disposition::Caught,
        "the first loop keeps it"
    );
    assert!(lp.remove_signal_handler(signum).expect("remove"));
    other
        .add_signal_handler(signum, || ())
        .expect("free once the first loop removed it");
    other.close().expect("close");
    drop(other);
    assert_eq!(disposition(signum), Disposition::Default);
    fx.finish();
}
