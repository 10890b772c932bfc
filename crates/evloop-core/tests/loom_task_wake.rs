//! Loom models of task wake-ups that come from other threads
//! (`src/remote.rs`: `Shared::schedule` and the graveyard; `src/run.rs`:
//! `run_until_complete`'s waker), run through the real `EventLoop` on the
//! loom build (`src/sync.rs`; the reactor's loom backend turns a lost
//! wake-up into a deadlock loom reports).
//!
//! Run with `cargo xtask loom` (it builds with `--cfg loom`); without that
//! cfg this file is empty.
#![cfg(loom)]

mod loom_support;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use evloop_core::EventLoop;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Mutex;
use loom::thread;

use loom_support::{check, Guard, Probe};

/// A future that never finishes: each poll records itself in the probe and
/// leaves its waker in `slot` for another thread to use.
struct Parked {
    slot: Arc<Mutex<Option<Waker>>>,
    guard: Guard,
}

impl Future for Parked {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.guard.0.ran();
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The body of the two "foreign wake vs close" models: the task runs once
/// and parks; another thread wakes it while the loop thread closes the
/// loop, drops the task's handle (before or after `close`, as
/// `detach_first` says) and then the loop. Asserts that the task never ran
/// again and that its future was dropped exactly once, on the loop's
/// thread.
fn foreign_wake_vs_close(detach_first: bool) {
    let lp = EventLoop::new().unwrap();
    let loop_thread = thread::current().id();
    let probe = Probe::new();
    let slot = Arc::new(Mutex::new(None));
    let task = lp
        .create_task(Parked {
            slot: Arc::clone(&slot),
            guard: probe.guard(),
        })
        .unwrap();
    // One iteration: the task runs once and leaves its waker.
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(probe.runs(), 1);
    let waker = slot.lock().unwrap().take().expect("the task parked");
    // The task's state lives in async-task's std atomics, which loom does
    // not see; a wake of a task that is already gone touches nothing loom
    // sees either. So the loop thread announces each step on `phase`, and
    // the waking thread reads it first: loom then tries the wake before,
    // between and after every step, and from there every interleaving of
    // the loom-visible operations inside it.
    let phase = Arc::new(AtomicUsize::new(0));
    let waking = {
        let phase = Arc::clone(&phase);
        thread::spawn(move || {
            phase.load(SeqCst);
            waker.wake();
        })
    };
    let mut task = Some(task);
    if detach_first {
        drop(task.take());
    }
    phase.store(1, SeqCst);
    lp.close().unwrap();
    phase.store(2, SeqCst);
    drop(task);
    phase.store(3, SeqCst);
    drop(lp);
    phase.store(4, SeqCst);
    waking.join().unwrap();
    assert_eq!(probe.runs(), 1, "the task ran after close");
    assert_eq!(
        probe.drops(),
        1,
        "the future was dropped {} times",
        probe.drops()
    );
    assert!(
        probe.dropped_on(loop_thread),
        "the future was dropped off the loop's thread"
    );
}

/// Proves: a task woken from another thread while its loop closes is never
/// run after close, and its future (a `!Send` value of the loop's thread)
/// is dropped exactly once, on the loop's thread, with nothing leaked,
/// when its handle is dropped after `close`. Whichever comes first, the
/// step goes to the Remote queue (dropped by `close`), to the graveyard
/// (emptied on the loop's thread), or nowhere (the task was already
/// cancelled). Regression: the handle's drop could cancel the task while
/// the other thread was between marking it scheduled and burying its step;
/// the step then reached the graveyard after the loop thread's last look,
/// and the future was never dropped (a cycle through the loop's `Shared`
/// kept it). `Inner::settle` now waits for such a step.
#[test]
fn task_woken_from_another_thread_after_close_is_dropped_on_the_loop_thread() {
    check(
        "task: foreign wake vs close, handle dropped after close",
        || {
            foreign_wake_vs_close(false);
        },
    );
}

/// Proves the same for a task whose handle was dropped before `close`
/// (detached: `close` cancels it, racing the other thread's wake).
#[test]
fn detached_task_woken_from_another_thread_during_close_is_dropped_on_the_loop_thread() {
    check("task: foreign wake vs close, detached task", || {
        foreign_wake_vs_close(true);
    });
}

/// Proves: `run_until_complete` never sleeps through a wake of its future
/// from another thread. The future finishes once a flag is set; the other
/// thread sets it and then wakes whatever waker the future left. The loop
/// has nothing else to do, so it blocks in poll whenever the future is
/// pending: a lost wake-up is a deadlock loom reports.
#[test]
fn run_until_complete_sees_a_wake_from_another_thread() {
    check("run_until_complete: foreign wake vs sleep", || {
        let lp = EventLoop::new().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let slot: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
        let waking = {
            let (done, slot) = (Arc::clone(&done), Arc::clone(&slot));
            thread::spawn(move || {
                done.store(true, SeqCst);
                let waker = slot.lock().unwrap().take();
                if let Some(waker) = waker {
                    waker.wake();
                }
            })
        };
        let polls = lp
            .run_until_complete(async {
                let mut polls = 0;
                poll_fn(|cx| {
                    polls += 1;
                    *slot.lock().unwrap() = Some(cx.waker().clone());
                    if done.load(SeqCst) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                polls
            })
            .unwrap();
        waking.join().unwrap();
        assert!((1..=2).contains(&polls), "polled {polls} times");
        lp.close().unwrap();
    });
}
