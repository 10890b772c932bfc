//! Helpers shared by the `pool_*` tests: awaiting with a failure guard, a
//! gate that holds jobs until the test opens it, and bounded polling.

#![allow(dead_code)]

use std::sync::{mpsc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use evloop_executor::{BlockingTask, JobError};

/// Generous bound after which a test is considered hung. Only a failure
/// guard: nothing waits for it to elapse in a passing run.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// Awaits `task` with `futures_lite::future::block_on` on a helper thread,
/// panicking if it does not resolve within [`TIMEOUT`].
pub(crate) fn wait_for<T: Send + 'static>(task: BlockingTask<T>) -> Result<T, JobError> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(futures_lite::future::block_on(task));
    });
    rx.recv_timeout(TIMEOUT)
        .expect("BlockingTask did not resolve in time")
}

/// A one-shot latch: jobs call [`Gate::wait`], the test calls
/// [`Gate::open`].
#[derive(Debug, Default)]
pub(crate) struct Gate {
    open: Mutex<bool>,
    cond: Condvar,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate::default()
    }

    pub(crate) fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cond.notify_all();
    }

    /// Blocks until opened; panics after [`TIMEOUT`].
    pub(crate) fn wait(&self) {
        let guard = self.open.lock().unwrap();
        let (guard, _) = self
            .cond
            .wait_timeout_while(guard, TIMEOUT, |open| !*open)
            .unwrap();
        assert!(*guard, "gate was never opened");
    }
}

/// Polls `cond` until it holds, panicking after [`TIMEOUT`]. For state with
/// no event to wait on (e.g. a worker exiting after its idle timeout).
#[allow(
    clippy::disallowed_methods,
    reason = "polling real thread state; the sleep paces the poll, it does not synchronise"
)]
pub(crate) fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    const STEP: Duration = Duration::from_millis(2);
    let mut budget = TIMEOUT.as_millis() / STEP.as_millis();
    while !cond() {
        assert!(budget > 0, "timed out waiting for {what}");
        budget -= 1;
        thread::sleep(STEP);
    }
}

/// The current thread's name, owned.
pub(crate) fn thread_name() -> Option<String> {
    thread::current().name().map(str::to_owned)
}
