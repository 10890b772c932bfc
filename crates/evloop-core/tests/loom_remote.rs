//! Loom models of the Remote queue and its wake (`src/remote.rs`,
//! `call_soon_threadsafe`), run through the real `EventLoop`: the loop's
//! queue is concurrent-queue on loom atomics, its flags and graveyard lock
//! are loom's (`src/sync.rs`), and the reactor underneath runs its waker
//! protocol over the loom backend (a blocking poll is a loom condition
//! variable, so a lost wake-up is a deadlock loom reports).
//!
//! Run with `cargo xtask loom` (it builds with `--cfg loom`); without that
//! cfg this file is empty.
#![cfg(loom)]

mod loom_support;

use std::sync::Arc;

use evloop_core::{Error, EventLoop};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;

use loom_support::{check, Probe};

/// Proves: a post made while the loop goes to sleep is never left in the
/// queue with the loop asleep and no pending wake, and each posted callback
/// runs exactly once, on the loop's thread. Two threads post one callback
/// each while the loop runs `run_forever` (blocking in poll whenever its
/// queues are empty); the second callback to run stops the loop. A lost
/// wake-up leaves the loop blocked for ever (loom reports the deadlock); a
/// callback run twice shows in its probe, also after one more iteration.
#[test]
fn posts_racing_sleep_run_exactly_once() {
    check("remote: two posts vs loop going to sleep", || {
        let lp = EventLoop::new().unwrap();
        let loop_thread = thread::current().id();
        let ran = Arc::new(AtomicUsize::new(0));
        let probes = [Probe::new(), Probe::new()];
        let posters: Vec<_> = probes
            .iter()
            .map(|probe| {
                let remote = lp.remote();
                let ran = Arc::clone(&ran);
                let guard = probe.guard();
                thread::spawn(move || {
                    remote
                        .call_soon_threadsafe(move || {
                            guard.0.ran();
                            if ran.fetch_add(1, SeqCst) + 1 == 2 {
                                EventLoop::current().unwrap().stop();
                            }
                        })
                        .unwrap();
                })
            })
            .collect();
        lp.run_forever().unwrap();
        // One more iteration (a stop before `run_forever` makes it do one
        // with a zero timeout): nothing may run again.
        lp.stop();
        lp.run_forever().unwrap();
        for poster in posters {
            poster.join().unwrap();
        }
        for probe in &probes {
            assert_eq!(
                probe.runs(),
                1,
                "a posted callback ran {} times",
                probe.runs()
            );
            assert_eq!(probe.drops(), 1);
            assert!(
                probe.all_on(loop_thread),
                "ran or dropped off the loop's thread"
            );
        }
        lp.close().unwrap();
    });
}

/// Proves: a post racing `close` is accounted for exactly once. Either it
/// is refused with `Error::Closed` (never runs; dropped by the poster), or
/// it is accepted and then runs at most once on the loop's thread, or is
/// dropped unrun by `close` on the loop's thread. Never run after close,
/// never dropped twice, never leaked.
#[test]
fn post_racing_close_runs_at_most_once_and_is_dropped_once() {
    check("remote: post vs close", || {
        let lp = EventLoop::new().unwrap();
        let loop_thread = thread::current().id();
        let remote = lp.remote();
        let probe = Probe::new();
        let poster = {
            let guard = probe.guard();
            thread::spawn(move || remote.call_soon_threadsafe(move || guard.0.ran()))
        };
        // One iteration with a zero timeout, then close.
        lp.stop();
        lp.run_forever().unwrap();
        let runs_before_close = probe.runs();
        lp.close().unwrap();
        let posted = poster.join().unwrap();
        drop(lp);
        assert_eq!(
            probe.drops(),
            1,
            "the callback was dropped {} times",
            probe.drops()
        );
        assert_eq!(
            probe.runs(),
            runs_before_close,
            "a callback ran after close"
        );
        assert!(probe.runs() <= 1);
        match posted {
            Ok(()) => assert!(
                probe.all_on(loop_thread),
                "an accepted post ran or was dropped off the loop's thread"
            ),
            Err(error) => {
                assert!(matches!(error, Error::Closed), "{error:?}");
                assert_eq!(probe.runs(), 0, "a refused post ran");
            }
        }
    });
}

/// Proves: `Remote::spawn`'s result comes back to a thread blocked in
/// `RemoteTask::join` exactly once, whether the loop runs the future (the
/// output) or closes first (an error): `join` never hangs. The other
/// thread spawns a future that stops the loop and returns 42, then joins;
/// the loop thread runs until stopped, or, in the second half of the
/// model, runs one iteration and closes.
#[test]
fn remote_spawn_join_gets_the_output_or_an_error_never_hangs() {
    check("remote: spawn + join vs loop running", || {
        let lp = EventLoop::new().unwrap();
        let remote = lp.remote();
        let joiner = thread::spawn(move || {
            remote
                .spawn_with(|lp| {
                    let lp = lp.clone();
                    async move {
                        lp.stop();
                        42
                    }
                })
                .join()
        });
        lp.run_forever().unwrap();
        assert_eq!(joiner.join().unwrap().unwrap(), 42);
        lp.close().unwrap();
    });
    check("remote: spawn + join vs close", || {
        let lp = EventLoop::new().unwrap();
        let remote = lp.remote();
        let joiner = thread::spawn(move || remote.spawn(async { 42 }).join());
        lp.stop();
        lp.run_forever().unwrap();
        lp.close().unwrap();
        match joiner.join().unwrap() {
            Ok(output) => assert_eq!(output, 42),
            Err(error) => assert!(
                matches!(error, Error::Closed | Error::Cancelled(_)),
                "{error:?}"
            ),
        }
    });
}
