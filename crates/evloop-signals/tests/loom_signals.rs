//! Loom models of the signal table's cross-thread protocol
//! (`src/table.rs`: what the `extern "C"` handler does, and what the loops
//! do around it), with its atomics on loom (`src/sync.rs`). The signal
//! handler is a loom thread calling `SignalTable::on_signal`, exactly as the
//! real handler does; the wake-up pipe is a byte buffer under a loom lock
//! with a condition variable the loop blocks on, so a lost wake-up is a
//! deadlock loom reports.
//!
//! Run with `cargo xtask loom` (it builds with `--cfg loom`); without that
//! cfg this file is empty.
#![cfg(loom)]

use std::os::fd::RawFd;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc as StdArc;
use std::time::Instant;

use evloop_signals::{Claim, SignalTable};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// A signal number of the model (any in `1..SLOTS`).
const SIG: i32 = 2;
/// The wake-up pipe's write end, as the table sees it.
const FD: RawFd = 7;
/// Slots of the model's table (the real one has `NSIG`).
const SLOTS: usize = 4;

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

/// The stand-in for the wake-up pipe: the bytes written and not yet read.
#[derive(Default)]
struct Pipe {
    bytes: Mutex<Vec<u8>>,
    readable: Condvar,
}

impl Pipe {
    fn write(&self, byte: u8) {
        self.bytes.lock().unwrap().push(byte);
        self.readable.notify_all();
    }

    /// The loop's poll on the read end, then its drain: blocks until there
    /// is something to read, reads it all.
    fn wait_and_drain(&self) -> Vec<u8> {
        let mut bytes = self.bytes.lock().unwrap();
        while bytes.is_empty() {
            bytes = self.readable.wait(bytes).unwrap();
        }
        std::mem::take(&mut *bytes)
    }
}

/// Proves: a signal delivered while the loop goes to sleep is never lost,
/// and the loop never finds a wake-up byte without the signal's pending
/// flag. A handler thread delivers the signal twice; the loop blocks on the
/// pipe, drains it and takes the pending flag (scheduling the callback)
/// until it has read both bytes. Every delivery sets its flag before
/// writing its byte, so once the loop has read the last byte and taken the
/// flag, nothing is left pending: each delivery was followed by a run.
#[test]
fn signal_racing_the_loops_sleep_is_never_lost() {
    check(
        "signals: two deliveries vs loop sleeping on the pipe",
        || {
            let table = Arc::new(SignalTable::<SLOTS>::new());
            let pipe = Arc::new(Pipe::default());
            assert_eq!(table.claim(SIG, FD), Claim::New);
            table.clear_pending(SIG);
            let handler = {
                let (table, pipe) = (Arc::clone(&table), Arc::clone(&pipe));
                thread::spawn(move || {
                    for _ in 0..2 {
                        table.on_signal(SIG, |fd, byte| {
                            assert_eq!((fd, i32::from(byte)), (FD, SIG));
                            pipe.write(byte);
                        });
                    }
                })
            };
            let (mut read, mut runs) = (0, 0);
            while read < 2 {
                read += pipe.wait_and_drain().len();
                if table.take_pending(SIG) {
                    runs += 1;
                }
            }
            handler.join().unwrap();
            assert!(runs >= 1, "two deliveries and no callback run");
            assert!(
                !table.take_pending(SIG),
                "a delivery is pending after the loop read its wake-up byte"
            );
        },
    );
}

/// Proves: once an owner has released its wake-up fd and `quiesce` has
/// returned, no handler writes to that fd any more (so closing it, and the
/// OS reusing its number, is safe), whatever point a concurrent handler had
/// reached.
#[test]
fn no_handler_writes_to_a_released_fd_after_quiesce() {
    check("signals: handler vs release + quiesce + close", || {
        let table = Arc::new(SignalTable::<SLOTS>::new());
        let closed = Arc::new(AtomicBool::new(false));
        assert_eq!(table.claim(SIG, FD), Claim::New);
        let handler = {
            let (table, closed) = (Arc::clone(&table), Arc::clone(&closed));
            thread::spawn(move || {
                table.on_signal(SIG, |fd, _| {
                    assert_eq!(fd, FD);
                    assert!(!closed.load(SeqCst), "the handler wrote to a closed fd");
                });
            })
        };
        table.release_all(FD);
        table.quiesce();
        closed.store(true, SeqCst);
        handler.join().unwrap();
        assert_eq!(
            table.claim(SIG, FD + 1),
            Claim::New,
            "the slot stayed taken"
        );
    });
}
