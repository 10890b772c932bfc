//! Shared by the core's loom models: the checker with its report line, and
//! a probe that records where a callback or future ran and was dropped.
#![allow(dead_code, reason = "each model file uses a part of it")]

use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Mutex;
use loom::thread::{self, ThreadId};

/// Runs `model` under loom's checker (preemption bound from
/// `LOOM_MAX_PREEMPTIONS`, else 3) and prints how many interleavings it
/// explored and how long that took.
pub(crate) fn check(name: &str, model: impl Fn() + Sync + Send + 'static) {
    let iterations = Arc::new(StdAtomicUsize::new(0));
    let count = Arc::clone(&iterations);
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

/// Counts runs and drops of what it is attached to, and remembers on which
/// (loom) threads they happened. Assertions inside loop callbacks would be
/// caught by the loop's `catch_unwind`, so a probe records and the model
/// asserts afterwards.
#[derive(Default)]
pub(crate) struct Probe {
    runs: AtomicUsize,
    drops: AtomicUsize,
    threads: Mutex<Vec<(&'static str, ThreadId)>>,
}

impl Probe {
    pub(crate) fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }

    /// Records a run (a callback called, a future polled) on this thread.
    pub(crate) fn ran(&self) {
        self.runs.fetch_add(1, SeqCst);
        self.threads
            .lock()
            .unwrap()
            .push(("run", thread::current().id()));
    }

    pub(crate) fn runs(&self) -> usize {
        self.runs.load(SeqCst)
    }

    pub(crate) fn drops(&self) -> usize {
        self.drops.load(SeqCst)
    }

    /// True if every run and drop happened on `thread`.
    pub(crate) fn all_on(&self, thread: ThreadId) -> bool {
        self.threads
            .lock()
            .unwrap()
            .iter()
            .all(|(_, t)| *t == thread)
    }

    /// True if the drop happened on `thread`.
    pub(crate) fn dropped_on(&self, thread: ThreadId) -> bool {
        self.threads
            .lock()
            .unwrap()
            .iter()
            .any(|(what, t)| *what == "drop" && *t == thread)
    }

    /// A guard to move into the callback or future: records its drop.
    pub(crate) fn guard(self: &Arc<Self>) -> Guard {
        Guard(Arc::clone(self))
    }
}

/// Records its drop in its [`Probe`].
pub(crate) struct Guard(pub(crate) Arc<Probe>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.drops.fetch_add(1, SeqCst);
        self.0
            .threads
            .lock()
            .unwrap()
            .push(("drop", thread::current().id()));
    }
}
