//! Loom models of the hand-back of a blocking job's result
//! (`src/executor.rs`: `spawn_blocking`, its `Completer` and the
//! `BlockingTask` future), with the result slot's lock on loom
//! (`src/sync.rs`). The executor here runs each job on a loom thread (or
//! drops it unrun on one); the loop is the model's main thread, polling the
//! `BlockingTask` and sleeping on a condition variable until its waker
//! wakes it, so a lost wake-up is a deadlock loom reports.
//!
//! Run with `cargo xtask loom` (it builds with `--cfg loom`); without that
//! cfg this file is empty.
#![cfg(loom)]

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use evloop_executor::{spawn_blocking, BlockingTask, Executor, Job, JobError, ShutDown};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread::{self, JoinHandle};

/// Runs `model` under loom's checker (preemption bound from
/// `LOOM_MAX_PREEMPTIONS`, else 3) and prints how many interleavings it
/// explored and how long that took.
fn check(name: &str, model: impl Fn() + Sync + Send + 'static) {
    let iterations = StdArc::new(StdAtomicUsize::new(0));
    let count = StdArc::clone(&iterations);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = builder.preemption_bound.or(Some(3));
    let bound = builder.preemption_bound;
    let start = Instant::now();
    builder.check(move || {
        count.fetch_add(1, Relaxed);
        model();
    });
    println!(
        "loom model {name}: {} interleavings in {:.2?} (preemption bound {})",
        iterations.load(Relaxed),
        start.elapsed(),
        bound.map_or_else(|| "none".to_owned(), |b| b.to_string()),
    );
}

/// Runs each job on a new loom thread, or, with `run: false`, drops it
/// unrun there (an executor that loses its jobs, e.g. at shutdown).
struct LoomThreads {
    run: bool,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl LoomThreads {
    fn new(run: bool) -> Self {
        LoomThreads {
            run,
            workers: Mutex::new(Vec::new()),
        }
    }

    fn join(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap());
        for worker in workers {
            worker.join().unwrap();
        }
    }
}

impl fmt::Debug for LoomThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoomThreads")
            .field("run", &self.run)
            .finish()
    }
}

impl Executor for LoomThreads {
    fn execute(&self, job: Job) -> Result<(), ShutDown> {
        let run = self.run;
        let worker = thread::spawn(move || {
            if run {
                job();
            } else {
                drop(job);
            }
        });
        self.workers.lock().unwrap().push(worker);
        Ok(())
    }

    fn shutdown(&self, _wait: bool) {}

    fn is_shutdown(&self) -> bool {
        false
    }
}

/// The loop's waker: a flag under a lock and a condition variable the loop
/// sleeps on (the model of the reactor's wait; `evloop-reactor` checks its
/// own wake-up protocol in `tests/loom_waker.rs`).
struct LoopWaker {
    woken: Mutex<bool>,
    wake: Condvar,
}

impl Wake for LoopWaker {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &StdArc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.wake.notify_one();
    }
}

fn loop_waker() -> StdArc<LoopWaker> {
    StdArc::new(LoopWaker {
        woken: Mutex::new(false),
        wake: Condvar::new(),
    })
}

/// Polls `task` until it is ready, sleeping between polls until woken.
fn block_on<T>(task: BlockingTask<T>, waker: &StdArc<LoopWaker>) -> Result<T, JobError> {
    let std_waker = Waker::from(StdArc::clone(waker));
    let mut cx = Context::from_waker(&std_waker);
    let mut task = pin!(task);
    loop {
        if let Poll::Ready(result) = task.as_mut().poll(&mut cx) {
            return result;
        }
        let mut woken = waker.woken.lock().unwrap();
        while !*woken {
            woken = waker.wake.wait(woken).unwrap();
        }
        *woken = false;
    }
}

/// A result that counts its drops.
struct Output(Arc<AtomicUsize>);

impl Drop for Output {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Proves: a result computed on a worker while the loop polls is handed
/// back exactly once: the loop, which parks whenever the task is pending,
/// always gets woken (no lost wake-up), receives the value, and the value
/// is dropped once, after the loop is done with it.
#[test]
fn result_is_handed_back_exactly_once() {
    check("executor: job completes vs loop polling", || {
        let executor = LoomThreads::new(true);
        let drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::clone(&drops);
        let task = spawn_blocking(&executor, move || Output(made)).unwrap();
        let waker = loop_waker();
        let output = block_on(task, &waker).expect("the job ran");
        assert_eq!(
            drops.load(SeqCst),
            0,
            "the result was dropped before delivery"
        );
        drop(output);
        executor.join();
        assert_eq!(drops.load(SeqCst), 1);
        assert_eq!(
            StdArc::strong_count(&waker),
            1,
            "a clone of the waker leaked"
        );
    });
}

/// Proves: when the loop gives up on a job (it drops the `BlockingTask`, as
/// closing the loop does) while the worker finishes it, the result is
/// dropped exactly once and never delivered, whichever comes first, and
/// the waker the loop left in the slot is released (no leak).
#[test]
fn abandoned_result_is_dropped_once() {
    check("executor: job completes vs loop dropping the task", || {
        let executor = LoomThreads::new(true);
        let drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::clone(&drops);
        let task = spawn_blocking(&executor, move || Output(made)).unwrap();
        let waker = loop_waker();
        {
            let std_waker = Waker::from(StdArc::clone(&waker));
            let mut cx = Context::from_waker(&std_waker);
            let mut task = pin!(task);
            if let Poll::Ready(result) = task.as_mut().poll(&mut cx) {
                drop(result.expect("the job ran"));
            }
            // The task (and the waker it may hold) is dropped here.
        }
        executor.join();
        assert_eq!(
            drops.load(SeqCst),
            1,
            "the result was dropped {} times",
            drops.load(SeqCst)
        );
        assert_eq!(
            StdArc::strong_count(&waker),
            1,
            "a clone of the waker leaked"
        );
    });
}

/// Proves: a job the executor drops unrun (on another thread, while the
/// loop polls) completes its task with `JobError::Dropped` exactly once,
/// and the loop is woken for it.
#[test]
fn job_dropped_unrun_reports_dropped() {
    check("executor: job dropped unrun vs loop polling", || {
        let executor = LoomThreads::new(false);
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let task = spawn_blocking(&executor, move || flag.store(true, SeqCst)).unwrap();
        let waker = loop_waker();
        assert_eq!(block_on(task, &waker), Err(JobError::Dropped));
        executor.join();
        assert!(!ran.load(SeqCst));
        assert_eq!(
            StdArc::strong_count(&waker),
            1,
            "a clone of the waker leaked"
        );
    });
}
