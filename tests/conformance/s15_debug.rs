//! docs/behaviour.md 15: debug mode (`EVLOOP_DEBUG`, `set_debug`, slow callbacks, the
//! thread check) and the always-on loop counters of `stats()`.

use std::cell::Cell;
use std::ffi::OsString;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use evloop::{Clock, EventLoop, LoopStats, MonotonicClock, Remote, VirtualClock};
use evloop_conformance::Fixture;

/// Busy-waits `d` of wall time (never sleeps).
fn busy_wait(d: Duration) {
    let clock = MonotonicClock;
    let start = clock.now();
    while clock.now() - start < d {
        std::hint::spin_loop();
    }
}

fn stop_soon(lp: &EventLoop) {
    let l = lp.clone();
    lp.call_soon(move || l.stop()).unwrap();
}

/// A fixture whose virtual clock the test can move by hand, also from inside
/// callbacks (so a callback can "take" a chosen amount of loop time).
fn manual_clock_fixture(
    configure: impl FnOnce(&mut evloop::Builder),
) -> (Fixture, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new());
    let c = clock.clone();
    let fx = Fixture::build(move |b| {
        b.clock(c);
        configure(b);
    });
    (fx, clock)
}

/// Schedules a callback that takes `d` of (virtual) loop time.
fn slow_soon(lp: &EventLoop, clock: &Arc<VirtualClock>, d: Duration) {
    let c = clock.clone();
    lp.call_soon(move || c.advance(d)).unwrap();
}

// ---------------------------------------------------------------------------
// 15.1 Debug mode.

/// Restores `EVLOOP_DEBUG` on drop, also when an assertion fails.
struct EnvGuard(Option<OsString>);

impl Drop for EnvGuard {
    fn drop(&mut self) {
        match self.0.take() {
            Some(v) => std::env::set_var("EVLOOP_DEBUG", v),
            None => std::env::remove_var("EVLOOP_DEBUG"),
        }
    }
}

fn debug_of_new_loop() -> bool {
    let lp = EventLoop::new().unwrap();
    let on = lp.get_debug();
    lp.close().unwrap();
    on
}

#[test]
fn spec_15_1_evloop_debug_env_var_sets_debug_mode() {
    // The fixture serialises the tests that build loops, so the variable is
    // not read concurrently by another conformance test.
    let fx = Fixture::virtual_clock();
    let _restore = EnvGuard(std::env::var_os("EVLOOP_DEBUG"));

    std::env::set_var("EVLOOP_DEBUG", "1");
    assert!(debug_of_new_loop(), "EVLOOP_DEBUG=1");
    std::env::set_var("EVLOOP_DEBUG", "0");
    assert!(debug_of_new_loop(), "any non-empty value turns debug on");
    let lp = EventLoop::builder().debug(false).build().unwrap();
    assert!(!lp.get_debug(), "the builder overrides the environment");
    lp.close().unwrap();
    drop(lp);

    std::env::set_var("EVLOOP_DEBUG", "");
    assert!(!debug_of_new_loop(), "empty EVLOOP_DEBUG");
    std::env::remove_var("EVLOOP_DEBUG");
    assert!(!debug_of_new_loop(), "unset EVLOOP_DEBUG");
    let lp = EventLoop::builder().debug(true).build().unwrap();
    assert!(lp.get_debug());
    lp.close().unwrap();
    drop(lp);
    fx.finish();
}

#[test]
fn spec_15_1_set_debug_and_get_debug() {
    let fx = Fixture::build(|b| {
        b.debug(false);
    });
    let lp = &fx.lp;
    assert!(!lp.get_debug());
    lp.set_debug(true);
    assert!(lp.get_debug());
    lp.set_debug(true);
    assert!(lp.get_debug());
    lp.set_debug(false);
    assert!(!lp.get_debug());
    assert_eq!(
        lp.slow_callback_duration(),
        Duration::from_millis(100),
        "asyncio's default"
    );
    lp.set_slow_callback_duration(Duration::from_millis(250));
    assert_eq!(lp.slow_callback_duration(), Duration::from_millis(250));
    fx.finish();
}

#[test]
fn spec_15_1_slow_callbacks_counted_only_in_debug_mode_real_clock() {
    let fx = Fixture::build(|b| {
        b.debug(true)
            .slow_callback_duration(Duration::from_millis(5));
    });
    let lp = &fx.lp;
    assert_eq!(lp.slow_callback_duration(), Duration::from_millis(5));
    lp.call_soon(|| busy_wait(Duration::from_millis(10)))
        .unwrap();
    stop_soon(lp);
    fx.run_forever();
    let on = lp.stats();
    // >= 1: a fast callback preempted by the OS may count too; never 0.
    assert!(on.slow_callbacks >= 1, "{on:?}");
    assert!(on.slow_callbacks <= 2, "{on:?}");

    lp.set_debug(false);
    lp.call_soon(|| busy_wait(Duration::from_millis(10)))
        .unwrap();
    stop_soon(lp);
    fx.run_forever();
    let off = lp.stats();
    assert_eq!(
        off.slow_callbacks, on.slow_callbacks,
        "not counted without debug mode"
    );
    assert!(
        off.slow_iterations > on.slow_iterations,
        "the always-on counter moved"
    );
    fx.finish();
}

#[test]
fn spec_15_1_slow_callbacks_exact_with_a_manual_clock() {
    let (fx, clock) = manual_clock_fixture(|b| {
        b.debug(true);
    });
    let lp = &fx.lp;
    slow_soon(lp, &clock, Duration::from_millis(150)); // slow
    slow_soon(lp, &clock, Duration::from_millis(99)); // just under
    slow_soon(lp, &clock, Duration::from_millis(100)); // exactly the limit: slow
    slow_soon(lp, &clock, Duration::ZERO);
    let c = clock.clone();
    lp.call_later(Duration::from_secs(1), move || {
        c.advance(Duration::from_secs(1))
    })
    .unwrap(); // a slow timer callback
    let l = lp.clone();
    lp.call_later(Duration::from_secs(5), move || l.stop())
        .unwrap();
    fx.run_forever();
    assert_eq!(lp.stats().slow_callbacks, 3);

    // A raised limit, and debug mode off: nothing more is counted.
    lp.set_slow_callback_duration(Duration::from_secs(10));
    slow_soon(lp, &clock, Duration::from_secs(1));
    stop_soon(lp);
    fx.run_forever();
    assert_eq!(lp.stats().slow_callbacks, 3);
    lp.set_slow_callback_duration(Duration::from_millis(100));
    lp.set_debug(false);
    slow_soon(lp, &clock, Duration::from_secs(1));
    stop_soon(lp);
    fx.run_forever();
    assert_eq!(lp.stats().slow_callbacks, 3);

    // Switched on while running: callbacks scheduled from then on are timed.
    let (l, c) = (lp.clone(), clock.clone());
    lp.call_soon(move || {
        l.set_debug(true);
        let c = c.clone();
        l.call_soon(move || c.advance(Duration::from_millis(500)))
            .unwrap();
        let l2 = l.clone();
        l.call_soon(move || l2.stop()).unwrap();
    })
    .unwrap();
    fx.run_forever();
    assert_eq!(lp.stats().slow_callbacks, 4);
    fx.finish();
}

#[test]
fn spec_15_1_handles_record_where_they_were_scheduled() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let one_second = Duration::from_secs(1);
    // Each call sits on the line just above its `line!() - 1`.
    let h = lp.call_soon(|| {}).unwrap();
    assert_eq!(h.info().location.line(), line!() - 1);
    let th = lp.call_later(one_second, || {}).unwrap();
    assert_eq!(th.info().location.line(), line!() - 1);
    let at = lp.call_at(lp.time(), || {}).unwrap();
    assert_eq!(at.info().location.line(), line!() - 1);
    for info in [h.info(), th.info(), at.info()] {
        assert_eq!(info.location.file(), file!());
    }
    assert!(h.info().to_string().contains(file!()), "{}", h.info());
    for t in [&th, &at] {
        t.cancel();
    }
    h.cancel();
    fx.finish();
}

// The thread check is a compile-time one: `EventLoop` cannot leave its thread,
// `Remote` can. Both assertions below fail to compile if that changes.

/// Implemented for every type with `A = ()`, and for `Send` types with
/// `A = NotSendProbe` too: naming `<T as AmbiguousIfSend<_>>::probe` is
/// ambiguous (a compile error) exactly when `T: Send`.
trait AmbiguousIfSend<A> {
    fn probe() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
struct NotSendProbe;
impl<T: ?Sized + Send> AmbiguousIfSend<NotSendProbe> for T {}

const _: fn() = || {
    let _ = <EventLoop as AmbiguousIfSend<_>>::probe;
    let _ = <evloop::layers::core::EventLoop as AmbiguousIfSend<_>>::probe;
};

const fn assert_send_sync<T: Send + Sync + Clone>() {}
const _: () = assert_send_sync::<Remote>();

#[test]
fn spec_15_1_thread_check_is_compile_time_loop_not_send_remote_send_sync() {
    // The `const _` items above are the check; at run time, show the thread
    // crossing that is allowed.
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let remote = lp.remote();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(move || {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .unwrap();
    })
    .join()
    .unwrap();
    stop_soon(lp);
    fx.run_forever();
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 15.2 Always-on counters.

#[test]
fn spec_15_2_stats_counters_move_as_expected() {
    let fx = Fixture::build(|b| {
        b.virtual_clock().debug(false);
    });
    let lp = &fx.lp;
    assert_eq!(lp.stats(), LoopStats::default(), "a fresh loop");

    // Callbacks (a cancelled one included), one iteration.
    lp.call_soon(|| {}).unwrap();
    lp.call_soon(|| {}).unwrap().cancel();
    lp.stop();
    fx.run_forever();
    let s1 = lp.stats();
    assert_eq!(s1.iterations, 1);
    assert_eq!(s1.callbacks, 2);
    assert_eq!((s1.timers_fired, s1.io_events), (0, 0));

    // Three timers (two sharing a deadline) and a cancelled one; two iterations.
    for secs in [1, 1, 2] {
        lp.call_later(Duration::from_secs(secs), || {}).unwrap();
    }
    lp.call_later(Duration::from_secs(1), || {})
        .unwrap()
        .cancel();
    let l = lp.clone();
    lp.call_later(Duration::from_secs(2), move || l.stop())
        .unwrap();
    fx.run_forever();
    let s2 = lp.stats();
    assert_eq!(s2.iterations - s1.iterations, 2);
    assert_eq!(s2.timers_fired - s1.timers_fired, 4);
    assert_eq!(s2.callbacks - s1.callbacks, 4);
    assert_eq!(s2.io_events, 0);
    assert_eq!(
        s2.last_lag,
        Duration::ZERO,
        "virtual clock: timers run on time"
    );

    // One readable fd: one I/O event, one reader call.
    let (rx, tx) = rustix::pipe::pipe().unwrap();
    rustix::io::write(&tx, b"x").unwrap();
    lp.add_reader(&rx, || {}).unwrap();
    lp.stop();
    fx.run_forever();
    let s3 = lp.stats();
    assert_eq!(s3.iterations - s2.iterations, 1);
    assert_eq!(s3.io_events - s2.io_events, 1);
    assert_eq!(s3.callbacks - s2.callbacks, 1);
    assert!(lp.remove_reader(&rx));
    drop((rx, tx));

    assert_eq!(s3.slow_iterations, 0);
    assert_eq!(s3.slow_callbacks, 0);
    assert!(!lp.get_debug(), "all of the above without debug mode");
    fx.finish();
}

#[test]
fn spec_15_2_loop_lag_and_slow_iterations_with_a_manual_clock() {
    let (fx, clock) = manual_clock_fixture(|b| {
        b.debug(false);
    });
    let lp = &fx.lp;
    // A 1 s timer, but the first batch takes 3 s: the timer runs 2 s late.
    let late: Rc<Cell<Option<LoopStats>>> = Rc::new(Cell::new(None));
    let (seen, l) = (late.clone(), lp.clone());
    lp.call_later(Duration::from_secs(1), move || seen.set(Some(l.stats())))
        .unwrap();
    slow_soon(lp, &clock, Duration::from_secs(3));
    slow_soon(lp, &clock, Duration::ZERO);
    // A later batch slower than slow_callback_duration (100 ms).
    let c = clock.clone();
    lp.call_later(Duration::from_secs(4), move || {
        c.advance(Duration::from_millis(100))
    })
    .unwrap();
    let l = lp.clone();
    lp.call_later(Duration::from_secs(10), move || l.stop())
        .unwrap();
    fx.run_forever();
    let at_late = late.get().expect("the late timer ran");
    assert_eq!(at_late.last_lag, Duration::from_secs(2));
    assert_eq!(at_late.max_lag, Duration::from_secs(2));
    assert_eq!(at_late.slow_iterations, 1, "the 3 s batch");
    let s = lp.stats();
    assert_eq!(s.last_lag, Duration::ZERO, "the last timers ran on time");
    assert_eq!(s.max_lag, Duration::from_secs(2), "the largest lag is kept");
    assert_eq!(s.slow_iterations, 2, "the 3 s batch and the 100 ms one");
    assert_eq!(s.slow_callbacks, 0, "per-callback timing is debug-only");
    fx.finish();
}

#[test]
fn spec_15_2_loop_lag_real_clock() {
    let fx = Fixture::build(|b| {
        b.debug(false);
    });
    let lp = &fx.lp;
    let l = lp.clone();
    lp.call_soon(move || {
        // The timer cannot be queued before this batch ends, 30 ms later.
        l.call_later(Duration::from_millis(1), || {}).unwrap();
        busy_wait(Duration::from_millis(30));
        let l2 = l.clone();
        l.call_later(Duration::ZERO, move || l2.stop()).unwrap();
    })
    .unwrap();
    fx.run_forever();
    let s = lp.stats();
    assert!(s.max_lag >= Duration::from_millis(28), "{s:?}");
    assert!(s.max_lag < Duration::from_secs(10), "{s:?}");
    assert!(s.last_lag <= s.max_lag);
    assert!(s.iterations >= 2);
    assert_eq!(s.timers_fired, 2);
    fx.finish();
}

#[test]
fn spec_15_2_stats_are_cheap_copies() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let before = lp.stats();
    let snapshot = before;
    // Keeps an ignored stop from blocking forever (the clock would jump).
    let guard = lp.call_later(Duration::from_secs(3600), || {}).unwrap();
    lp.stop();
    fx.run_forever();
    guard.cancel();
    assert_eq!(
        before, snapshot,
        "a snapshot does not change under the loop"
    );
    assert_eq!(lp.stats().iterations, before.iterations + 1);
    fx.finish();
}
