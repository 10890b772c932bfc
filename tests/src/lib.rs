//! The conformance harness: a loop fixture that serialises tests, records
//! every exception-handler call, and checks on the way out that the loop
//! closed cleanly and left no fd open.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use evloop::{ErrorContext, EventLoop, Remote};

/// Conformance tests touch process-wide state (fd numbers, signals): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub use evloop_testkit::fd_count as open_fds;

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

    /// A fixture over a loop with a virtual clock (docs/behaviour.md 3.8).
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

/// Stops the loop from another thread if the test has not finished within a
/// generous limit, so a lost wake-up fails the test instead of hanging it.
/// Dropping it (before `finish`) ends its thread and releases its `Remote`.
#[derive(Debug)]
pub struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog thread for the loop behind `remote`.
    pub fn new(remote: Remote) -> Watchdog {
        let (done, wait) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let thread = thread::spawn(move || {
            if wait.recv_timeout(Duration::from_secs(30)) == Err(mpsc::RecvTimeoutError::Timeout) {
                flag.store(true, Ordering::SeqCst);
                let _ = remote.call_soon_threadsafe(|| {
                    if let Some(lp) = EventLoop::try_current() {
                        lp.stop();
                    }
                });
            }
        });
        Watchdog {
            done: Some(done),
            fired,
            thread: Some(thread),
        }
    }

    /// True if the watchdog had to stop the loop.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("watchdog thread");
        }
    }
}

/// Thread ids of this process named `evloop-executor-N` (the kernel keeps
/// 15 bytes of a name: `evloop-executor`).
pub fn executor_threads() -> HashSet<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return HashSet::new();
    };
    tasks
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim_end() == "evloop-executor")
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// Executor threads that did not exist in `before` (threads of earlier
/// tests' pools may exit meanwhile; that does not matter).
pub fn new_executor_threads(before: &HashSet<String>) -> usize {
    executor_threads().difference(before).count()
}
