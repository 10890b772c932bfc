//! The conformance harness: a loop fixture that serialises tests, records
//! every exception-handler call, and checks on the way out that the loop
//! closed cleanly and left no fd open.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};

use evloop::{ErrorContext, EventLoop};

/// Conformance tests touch process-wide state (fd numbers, signals): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The number of fds this process has open (`/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// A loop plus the bookkeeping to prove each test ends on a clean loop.
pub struct Fixture {
    /// The loop under test.
    pub lp: EventLoop,
    errors: Rc<RefCell<Vec<ErrorContext>>>,
    fds_before: usize,
    _serial: MutexGuard<'static, ()>,
}

impl Fixture {
    /// A fixture over a loop with the real monotonic clock.
    pub fn new() -> Fixture {
        Self::build(|_| ())
    }

    /// A fixture over a loop with a virtual clock (SPEC 3.8).
    pub fn virtual_clock() -> Fixture {
        Self::build(|b| {
            b.virtual_clock();
        })
    }

    /// A fixture over a loop configured by `configure`.
    pub fn build(configure: impl FnOnce(&mut evloop::Builder)) -> Fixture {
        let serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fds_before = open_fds();
        let mut builder = EventLoop::builder();
        configure(&mut builder);
        let lp = builder.build().expect("loop");
        let errors = Rc::new(RefCell::new(Vec::new()));
        let sink = errors.clone();
        lp.set_exception_handler(Some(move |_: &EventLoop, ctx: &ErrorContext| {
            sink.borrow_mut().push(ctx.clone());
        }));
        Fixture {
            lp,
            errors,
            fds_before,
            _serial: serial,
        }
    }

    /// The exception-handler calls so far, taken (so `finish` won't flag them).
    pub fn take_errors(&self) -> Vec<ErrorContext> {
        std::mem::take(&mut *self.errors.borrow_mut())
    }

    /// Runs the loop until `stop()`, failing the test if it returns an error.
    pub fn run_forever(&self) {
        self.lp.run_forever().expect("run_forever");
    }

    /// Closes the loop and asserts: no unexpected exception-handler calls, and
    /// once the loop is dropped, as many fds open as before it was created.
    pub fn finish(self) {
        let Fixture {
            lp,
            errors,
            fds_before,
            _serial,
        } = self;
        lp.close().expect("close");
        let unexpected = std::mem::take(&mut *errors.borrow_mut());
        assert!(
            unexpected.is_empty(),
            "unexpected exception-handler calls: {unexpected:?}"
        );
        drop(lp);
        assert_eq!(open_fds(), fds_before, "fds leaked by the test");
    }
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("lp", &self.lp)
            .field("errors", &self.errors.borrow().len())
            .field("fds_before", &self.fds_before)
            .finish()
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}
