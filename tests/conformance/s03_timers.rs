//! docs/behaviour.md 3: delayed calls — `call_later`/`call_at` and `TimerHandle`, deadline
//! accuracy, FIFO among equal deadlines, zero/past/huge deadlines, cancelled
//! timers, one iteration's order, `time()`, and the virtual clock.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use evloop::{Clock, EventLoop, MonotonicClock, TimerHandle, VirtualClock};
use evloop_conformance::Fixture;

type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

fn stop_soon(lp: &EventLoop) {
    let l = lp.clone();
    lp.call_soon(move || l.stop()).unwrap();
}

fn stop_after(lp: &EventLoop, delay: Duration) -> TimerHandle {
    let l = lp.clone();
    lp.call_later(delay, move || l.stop()).unwrap()
}

/// Wall-clock time, independent of the loop's clock.
fn wall() -> Instant {
    MonotonicClock.now()
}

/// The number of iterations the loop has completed.
fn iterations(lp: &EventLoop) -> u64 {
    lp.stats().iterations
}

const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------
// 3.1 call_later(delay) = call_at(time() + delay); when() never changes.

#[test]
fn spec_3_1_call_later_is_call_at_time_plus_delay() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let later = lp.call_later(Duration::from_millis(1500), || {}).unwrap();
    assert_eq!(later.when(), t0 + Duration::from_millis(1500));
    let at = lp.call_at(t0 + Duration::from_secs(7), || {}).unwrap();
    assert_eq!(at.when(), t0 + Duration::from_secs(7));
    let zero = lp.call_later(Duration::ZERO, || {}).unwrap();
    assert_eq!(zero.when(), t0);
    // Full precision: no rounding to milliseconds.
    let fine = Duration::new(1, 500_000_123);
    let precise = lp.call_later(fine, || {}).unwrap();
    assert_eq!(precise.when(), t0 + fine);
    let tiny = lp.call_later(Duration::from_nanos(1), || {}).unwrap();
    assert_eq!(tiny.when(), t0 + Duration::from_nanos(1));

    // From a callback, after the clock moved: relative to the new time().
    let seen: Log<(Instant, Instant)> = log();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_later(Duration::from_secs(2), move || {
        let h = l.call_later(Duration::from_secs(3), || {}).unwrap();
        s.borrow_mut().push((l.time(), h.when()));
        h.cancel();
    })
    .unwrap();
    stop_after(lp, Duration::from_secs(10));
    fx.run_forever();
    let (now, when) = seen.borrow()[0];
    assert_eq!(now, t0 + Duration::from_secs(2));
    assert_eq!(when, now + Duration::from_secs(3));
    fx.finish();
}

#[test]
fn spec_3_1_call_later_on_the_real_clock_brackets_time_plus_delay() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let delay = Duration::from_secs(30);
    let before = lp.time();
    let h = lp.call_later(delay, || {}).unwrap();
    let after = lp.time();
    assert!(h.when() >= before + delay && h.when() <= after + delay);
    h.cancel();
    fx.finish();
}

#[test]
fn spec_3_1_when_unchanged_after_cancel_and_after_firing() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let cancelled = lp.call_later(Duration::from_secs(5), || {}).unwrap();
    let fired = lp.call_later(Duration::from_secs(1), || {}).unwrap();
    let at = lp.call_at(t0 + Duration::from_secs(2), || {}).unwrap();
    cancelled.cancel();
    assert_eq!(cancelled.when(), t0 + Duration::from_secs(5));
    stop_after(lp, Duration::from_secs(3));
    fx.run_forever();
    assert_eq!(lp.time(), t0 + Duration::from_secs(3), "both fired");
    assert_eq!(fired.when(), t0 + Duration::from_secs(1));
    assert_eq!(at.when(), t0 + Duration::from_secs(2));
    assert!(!fired.cancelled());
    fired.cancel();
    assert_eq!(
        fired.when(),
        t0 + Duration::from_secs(1),
        "cancel after firing"
    );
    assert_eq!(cancelled.when(), t0 + Duration::from_secs(5));
    fx.finish();
}

// ---------------------------------------------------------------------------
// 3.2 A timer never runs before its deadline as seen by time().

#[test]
fn spec_3_2_no_timer_before_deadline() {
    const N: usize = 200;
    let fx = Fixture::new();
    let lp = &fx.lp;
    let fired_at: Rc<RefCell<Vec<Option<Instant>>>> = Rc::new(RefCell::new(vec![None; N]));
    let remaining = Rc::new(Cell::new(N));
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        // 0..3 ms with sub-millisecond offsets, to catch ms rounding.
        let delay = Duration::from_micros((i as u64 * 15_013) % 3_000);
        let (f, r, l) = (fired_at.clone(), remaining.clone(), lp.clone());
        handles.push(
            lp.call_later(delay, move || {
                f.borrow_mut()[i] = Some(l.time());
                r.set(r.get() - 1);
                if r.get() == 0 {
                    l.stop();
                }
            })
            .unwrap(),
        );
    }
    let watchdog = stop_after(lp, Duration::from_secs(30));
    fx.run_forever();
    watchdog.cancel();

    let fired_at = fired_at.borrow();
    let mut early = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        let at = fired_at[i].unwrap_or_else(|| panic!("timer {i} did not fire"));
        if at < h.when() {
            early.push((i, h.when() - at));
        }
    }
    assert!(
        early.is_empty(),
        "timers fired before their deadline: {early:?}"
    );
    fx.finish();
}

#[test]
fn spec_3_2_a_70ms_timer_takes_at_least_70ms() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let t0 = lp.time();
    let w0 = wall();
    let fired = Rc::new(Cell::new(None));
    let (f, l) = (fired.clone(), lp.clone());
    lp.call_later(Duration::from_millis(70), move || {
        f.set(Some(l.time()));
        l.stop();
    })
    .unwrap();
    fx.run_forever();
    let elapsed = fired.get().unwrap() - t0;
    assert!(
        elapsed >= Duration::from_millis(70),
        "fired after {elapsed:?}"
    );
    assert!(wall() - w0 >= Duration::from_millis(70));
    assert!(elapsed < Duration::from_secs(10), "fired after {elapsed:?}");
    fx.finish();
}

// ---------------------------------------------------------------------------
// 3.3 Equal deadlines run in scheduling order.

#[test]
fn spec_3_3_equal_deadlines_fifo_10000() {
    const N: usize = 10_000;
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let when = lp.time() + Duration::from_secs(1);
    let seen = log();
    for i in 0..N {
        let s = seen.clone();
        lp.call_at(when, move || s.borrow_mut().push(i)).unwrap();
    }
    assert_eq!(lp.pending_timers(), N);
    stop_after(lp, Duration::from_secs(2));
    let before = lp.stats();
    fx.run_forever();
    let seen = seen.borrow();
    assert_eq!(seen.len(), N);
    assert!(seen.iter().copied().eq(0..N), "equal deadlines run FIFO");
    assert_eq!(lp.stats().timers_fired - before.timers_fired, N as u64 + 1);
    fx.finish();
}

#[test]
fn spec_3_3_equal_deadlines_fifo_across_call_later_and_late_scheduling() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let when = lp.time() + Duration::from_secs(5);
    let seen = log();
    for i in 0..5 {
        let s = seen.clone();
        // The virtual clock stands still: call_later(5 s) lands on `when`.
        lp.call_later(Duration::from_secs(5), move || s.borrow_mut().push(i))
            .unwrap();
    }
    // Scheduled later (after the clock moved), same deadline: still behind.
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_later(Duration::from_secs(1), move || {
        for i in 5..10 {
            let s = s.clone();
            l.call_at(when, move || s.borrow_mut().push(i)).unwrap();
        }
    })
    .unwrap();
    stop_after(lp, Duration::from_secs(6));
    fx.run_forever();
    assert_eq!(*seen.borrow(), (0..10).collect::<Vec<_>>());
    fx.finish();
}

#[test]
fn spec_3_3_fifo_and_deadline_order_survive_far_past_and_far_future_deadlines() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let seen = log();
    let at = |name: &'static str, when: Instant| {
        let s = seen.clone();
        lp.call_at(when, move || s.borrow_mut().push(name)).unwrap()
    };
    let soon = t0 + Duration::from_secs(1);
    at("a", soon);
    at("b", soon);
    // Far below every deadline so far, and far above: the timer store must
    // re-anchor its keys without reordering anything.
    let days = |n: u64| Duration::from_secs(n * 24 * 3600);
    at("30 days ago", t0.checked_sub(days(30)).unwrap());
    let far = at("in 1000 years", t0.checked_add(days(365_000)).unwrap());
    at("3 days ago", t0.checked_sub(days(3)).unwrap());
    at("c", soon);
    at("later", soon + Duration::from_millis(1));
    at("d", soon);
    stop_after(lp, Duration::from_secs(2));
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        ["30 days ago", "3 days ago", "a", "b", "c", "d", "later"]
    );
    assert_eq!(lp.pending_timers(), 1);
    far.cancel();
    fx.finish();
}

#[test]
fn spec_3_3_equal_deadlines_stay_fifo_around_cancelled_ones() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let when = lp.time() + Duration::from_secs(1);
    let seen = log();
    let handles: Vec<TimerHandle> = (0..200)
        .map(|i| {
            let s = seen.clone();
            lp.call_at(when, move || s.borrow_mut().push(i)).unwrap()
        })
        .collect();
    for (i, h) in handles.iter().enumerate() {
        if i % 3 == 0 {
            h.cancel();
        }
    }
    stop_after(lp, Duration::from_secs(2));
    fx.run_forever();
    let expected: Vec<usize> = (0..200).filter(|i| i % 3 != 0).collect();
    assert_eq!(*seen.borrow(), expected);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 3.4 Zero or past deadlines: next iteration, as timers. Huge ones: no overflow.

#[test]
fn spec_3_4_zero_and_past_deadlines_run_next_iteration_as_timers() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen: Log<(&'static str, u64)> = log();
    let scheduled_in = Rc::new(Cell::new(0));
    let (s, l, k) = (seen.clone(), lp.clone(), scheduled_in.clone());
    lp.call_soon(move || {
        k.set(iterations(&l));
        let now = l.time();
        let schedule = |name: &'static str, when: Instant| {
            let (s, l2) = (s.clone(), l.clone());
            l.call_at(when, move || s.borrow_mut().push((name, iterations(&l2))))
                .unwrap();
        };
        schedule("now", now);
        schedule("1s ago", now.checked_sub(Duration::from_secs(1)).unwrap());
        schedule("2s ago", now.checked_sub(Duration::from_secs(2)).unwrap());
        let (s2, l2) = (s.clone(), l.clone());
        l.call_later(Duration::ZERO, move || {
            s2.borrow_mut().push(("zero delay", iterations(&l2)))
        })
        .unwrap();
        let (s2, l2) = (s.clone(), l.clone());
        l.call_soon(move || s2.borrow_mut().push(("call_soon", iterations(&l2))))
            .unwrap();
        s.borrow_mut().push(("scheduler", iterations(&l)));
    })
    .unwrap();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || s.borrow_mut().push(("same batch", iterations(&l))))
        .unwrap();
    stop_after(lp, Duration::from_secs(1));
    let fired_before = lp.stats().timers_fired;
    fx.run_forever();

    let k = scheduled_in.get();
    assert_eq!(
        *seen.borrow(),
        [
            ("scheduler", k),
            ("same batch", k),
            // Next iteration: ready callbacks first, then expired timers in
            // deadline order (FIFO among the equal "now" and zero delay).
            ("call_soon", k + 1),
            ("2s ago", k + 1),
            ("1s ago", k + 1),
            ("now", k + 1),
            ("zero delay", k + 1),
        ]
    );
    assert_eq!(lp.stats().timers_fired - fired_before, 5);
    fx.finish();
}

#[test]
fn spec_3_4_huge_delays_neither_overflow_nor_panic() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let now = lp.time();
    let max = lp.call_later(Duration::MAX, || {}).unwrap();
    let secs = lp.call_later(Duration::from_secs(u64::MAX), || {}).unwrap();
    let years = Duration::from_secs(1_000 * 365 * 24 * 3600);
    let far_at = now.checked_add(years).unwrap();
    let at = lp.call_at(far_at, || {}).unwrap();
    assert!(max.when() > now + Duration::from_secs(50 * 365 * 24 * 3600));
    assert!(secs.when() > now);
    assert_eq!(at.when(), far_at);
    assert_eq!(lp.pending_timers(), 3);

    // The loop still runs (no overflowing timeout) and stops.
    let t0 = lp.time();
    stop_soon(lp);
    fx.run_forever();
    stop_after(lp, Duration::from_millis(1));
    fx.run_forever();
    assert!(lp.time() - t0 < Duration::from_secs(10));
    assert_eq!(lp.pending_timers(), 3, "none fired");

    for h in [&max, &secs, &at] {
        h.cancel();
        assert!(h.cancelled());
    }
    assert_eq!(lp.pending_timers(), 0);
    fx.finish();
}

/// Only a far timer is pending; another thread stops the loop. The loop must
/// block in poll meanwhile (a few iterations), not spin with a zero timeout.
fn blocked_on_far_timer_is_stoppable(fx: &Fixture, when: Instant) {
    let lp = &fx.lp;
    let far = lp.call_at(when, || panic!("far timer fired")).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let remote = lp.remote();
    let b = barrier.clone();
    let poster = std::thread::spawn(move || {
        b.wait();
        let t = wall();
        while wall() - t < Duration::from_millis(50) {
            std::hint::spin_loop();
        }
        remote
            .call_soon_threadsafe(|| EventLoop::current().unwrap().stop())
            .unwrap();
    });
    lp.call_soon(move || {
        barrier.wait();
    })
    .unwrap();
    let before = iterations(lp);
    fx.run_forever();
    poster.join().unwrap();
    let spent = iterations(lp) - before;
    assert!(
        spent <= 4,
        "the loop spun {spent} iterations instead of blocking"
    );
    far.cancel();
}

#[test]
fn spec_3_4_far_deadline_blocks_and_stays_stoppable() {
    let fx = Fixture::new();
    let now = fx.lp.time();
    blocked_on_far_timer_is_stoppable(&fx, now + HOUR);
    let max = fx.lp.call_later(Duration::MAX, || {}).unwrap();
    blocked_on_far_timer_is_stoppable(&fx, max.when());
    max.cancel();
    let years = Duration::from_secs(1_000 * 365 * 24 * 3600);
    blocked_on_far_timer_is_stoppable(&fx, now.checked_add(years).unwrap());
    fx.finish();
}

#[test]
fn spec_3_4_far_deadline_beyond_the_virtual_clock_range_does_not_spin() {
    let fx = Fixture::virtual_clock();
    let now = fx.lp.time();
    let years = Duration::from_secs(1_000 * 365 * 24 * 3600);
    blocked_on_far_timer_is_stoppable(&fx, now.checked_add(years).unwrap());
    fx.finish();
}

#[test]
fn spec_3_4_duration_max_on_the_virtual_clock_fires_without_overflow() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let fired = Rc::new(Cell::new(None));
    let (f, l) = (fired.clone(), lp.clone());
    let h = lp
        .call_later(Duration::MAX, move || {
            f.set(Some(l.time()));
            l.stop();
        })
        .unwrap();
    fx.run_forever();
    let at = fired.get().expect("the clamped timer fired");
    assert_eq!(at, h.when());
    assert!(at - t0 > Duration::from_secs(50 * 365 * 24 * 3600));
    fx.finish();
}

// ---------------------------------------------------------------------------
// 3.5 Cancelled timers: O(1), no garbage left behind.

#[test]
fn spec_3_5_a_million_cancelled_timers_leave_no_garbage() {
    const N: u64 = 1_000_000;
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let token = Rc::new(());
    let ran = Rc::new(Cell::new(0u64));
    let mut batch = Vec::with_capacity(1000);
    for i in 0..N {
        let (t, r) = (token.clone(), ran.clone());
        let h = lp
            .call_later(Duration::from_millis(1 + i % 5_000), move || {
                let _keep = &t;
                r.set(r.get() + 1);
            })
            .unwrap();
        batch.push(h);
        if batch.len() == 1000 {
            for h in batch.drain(..) {
                h.cancel();
            }
            assert_eq!(lp.pending_timers(), 0);
            assert_eq!(Rc::strong_count(&token), 1, "captures freed at cancel");
        }
    }
    assert_eq!(lp.pending_timers(), 0);

    let w0 = wall();
    let t0 = lp.time();
    let live = lp.call_later(Duration::from_secs(10), || {}).unwrap();
    stop_after(lp, Duration::from_secs(20));
    let before = iterations(lp);
    fx.run_forever();
    assert_eq!(ran.get(), 0, "no cancelled timer ran");
    assert_eq!(lp.time() - t0, Duration::from_secs(20));
    assert_eq!(
        iterations(lp) - before,
        2,
        "one iteration per live deadline"
    );
    let took = wall() - w0;
    assert!(took < Duration::from_secs(5), "the run took {took:?}");
    assert_eq!(lp.pending_timers(), 0);
    drop(live);
    fx.finish();
}

#[test]
fn spec_3_5_mostly_cancelled_heap_fires_exactly_the_live_timers_in_order() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let mut handles = Vec::new();
    for i in 0..1_000u64 {
        let s = seen.clone();
        handles.push(
            lp.call_later(Duration::from_millis(1_000 - i), move || {
                s.borrow_mut().push(i)
            })
            .unwrap(),
        );
    }
    for (i, h) in handles.iter().enumerate() {
        if i % 10 != 0 {
            h.cancel();
        }
    }
    assert_eq!(lp.pending_timers(), 100);
    stop_after(lp, Duration::from_secs(2));
    fx.run_forever();
    let expected: Vec<u64> = (0..1_000).rev().filter(|i| i % 10 == 0).collect();
    assert_eq!(*seen.borrow(), expected);
    assert_eq!(lp.pending_timers(), 0);
    // Cancelling fired timers changes nothing.
    for h in &handles {
        h.cancel();
    }
    assert_eq!(lp.pending_timers(), 0);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 3.6 One iteration: prune, timeout, poll, I/O callbacks, expired timers,
// run exactly the batch present at that point.

#[test]
fn spec_3_6_order_ready_then_io_then_expired_timers() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let (rx, tx) = rustix::pipe::pipe().unwrap();
    rustix::io::write(&tx, b"x").unwrap();
    let s = seen.clone();
    lp.call_later(Duration::ZERO, move || s.borrow_mut().push("timer"))
        .unwrap();
    let s = seen.clone();
    lp.add_reader(&rx, move || s.borrow_mut().push("reader"))
        .unwrap();
    let s = seen.clone();
    lp.call_soon(move || s.borrow_mut().push("soon")).unwrap();
    let before = iterations(lp);
    lp.stop();
    fx.run_forever();
    assert_eq!(*seen.borrow(), ["soon", "reader", "timer"]);
    assert_eq!(iterations(lp), before + 1);
    assert!(lp.remove_reader(&rx));
    drop((rx, tx));
    fx.finish();
}

#[test]
fn spec_3_6_callbacks_scheduled_during_a_batch_run_next_iteration() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen: Log<(&'static str, u64)> = log();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        s.borrow_mut().push(("a", iterations(&l)));
        let (s2, l2) = (s.clone(), l.clone());
        l.call_soon(move || {
            s2.borrow_mut().push(("a.child", iterations(&l2)));
            let (s3, l3) = (s2.clone(), l2.clone());
            l2.call_soon(move || {
                s3.borrow_mut().push(("a.grandchild", iterations(&l3)));
                l3.stop();
            })
            .unwrap();
        })
        .unwrap();
    })
    .unwrap();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || s.borrow_mut().push(("b", iterations(&l))))
        .unwrap();
    let k = iterations(lp);
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        [
            ("a", k),
            ("b", k),
            ("a.child", k + 1),
            ("a.grandchild", k + 2)
        ]
    );
    assert_eq!(iterations(lp), k + 3);
    fx.finish();
}

#[test]
fn spec_3_6_self_rescheduling_callback_does_not_starve_io() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let (rx, tx) = rustix::pipe::pipe().unwrap();
    let tx = Rc::new(tx);
    let reader_ran_in = Rc::new(Cell::new(None));
    let (r, l) = (reader_ran_in.clone(), lp.clone());
    lp.add_reader(&rx, move || {
        if r.get().is_none() {
            r.set(Some(iterations(&l)));
        }
        l.stop();
    })
    .unwrap();

    fn spin(lp: EventLoop, step: u32, tx: Rc<std::os::fd::OwnedFd>, wrote_in: Rc<Cell<u64>>) {
        if step == 3 {
            rustix::io::write(&*tx, b"x").unwrap();
            wrote_in.set(iterations(&lp));
        }
        if step < 1_000 {
            let l = lp.clone();
            lp.call_soon(move || spin(l, step + 1, tx, wrote_in))
                .unwrap();
        }
    }
    let wrote_in = Rc::new(Cell::new(0));
    let (l, t, w) = (lp.clone(), tx.clone(), wrote_in.clone());
    lp.call_soon(move || spin(l, 0, t, w)).unwrap();
    fx.run_forever();
    assert_eq!(
        reader_ran_in.get(),
        Some(wrote_in.get() + 1),
        "the reader ran on the iteration after the fd became readable"
    );
    assert!(lp.remove_reader(&rx));
    drop((rx, tx));
    // The pending link of the chain holds the last clone of `tx`: close frees it.
    fx.finish();
}

#[test]
fn spec_3_6_poll_timeout_is_zero_while_callbacks_are_ready() {
    // Virtual clock: a non-zero timeout would show up as a clock jump.
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let times = log();
    fn chain(lp: EventLoop, left: u32, times: Log<Instant>) {
        times.borrow_mut().push(lp.time());
        if left > 0 {
            let l = lp.clone();
            lp.call_soon(move || chain(l, left - 1, times)).unwrap();
        }
    }
    let timer_at = Rc::new(Cell::new(None));
    let (ta, l) = (timer_at.clone(), lp.clone());
    lp.call_later(HOUR, move || {
        ta.set(Some(l.time()));
        l.stop();
    })
    .unwrap();
    let (l, t) = (lp.clone(), times.clone());
    lp.call_soon(move || chain(l, 100, t)).unwrap();
    fx.run_forever();
    assert_eq!(times.borrow().len(), 101);
    assert!(
        times.borrow().iter().all(|&t| t == t0),
        "time stood still while work was ready"
    );
    assert_eq!(timer_at.get(), Some(t0 + HOUR));
    fx.finish();
}

#[test]
fn spec_3_6_poll_timeout_is_zero_while_callbacks_are_ready_real_clock() {
    // Nothing but a chain of callbacks: a poll that blocked (no timeout)
    // would only end when the watchdog thread writes to the pipe, 10 s later.
    let fx = Fixture::new();
    let lp = &fx.lp;
    let (wd_rx, wd_tx) = rustix::pipe::pipe().unwrap();
    let wd_rx = Rc::new(wd_rx);
    let r = wd_rx.clone();
    lp.add_reader(&wd_rx, move || {
        let _ = rustix::io::read(&*r, &mut [0u8; 8]);
    })
    .unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(10)).is_err() {
            rustix::io::write(&wd_tx, b"w").unwrap();
        }
    });
    fn chain(lp: EventLoop, left: u32) {
        if left == 0 {
            lp.stop();
        } else {
            let l = lp.clone();
            lp.call_soon(move || chain(l, left - 1)).unwrap();
        }
    }
    let t0 = lp.time();
    let l = lp.clone();
    lp.call_soon(move || chain(l, 20)).unwrap();
    fx.run_forever();
    let took = lp.time() - t0;
    done_tx.send(()).unwrap();
    watchdog.join().unwrap();
    assert!(
        took < Duration::from_secs(5),
        "20 ready iterations took {took:?}"
    );
    assert!(lp.remove_reader(&wd_rx));
    drop(wd_rx);
    fx.finish();
}

#[test]
fn spec_3_6_cancelled_head_timer_is_pruned_before_the_timeout() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let head = lp
        .call_later(Duration::from_secs(1), || panic!("cancelled"))
        .unwrap();
    let fired_at = Rc::new(Cell::new(None));
    let (f, l) = (fired_at.clone(), lp.clone());
    lp.call_later(Duration::from_secs(5), move || {
        f.set(Some(l.time()));
        l.stop();
    })
    .unwrap();
    head.cancel();
    let before = iterations(lp);
    fx.run_forever();
    assert_eq!(fired_at.get(), Some(t0 + Duration::from_secs(5)));
    assert_eq!(
        iterations(lp) - before,
        1,
        "the timeout came from the live timer, not the cancelled head"
    );
    fx.finish();
}

/// Schedules a timer at `when` that logs its name and the iteration it ran in.
fn log_at(lp: &EventLoop, seen: &Log<(&'static str, u64)>, name: &'static str, when: Instant) {
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_at(when, move || s.borrow_mut().push((name, iterations(&l))))
        .unwrap();
}

#[test]
fn spec_3_6_due_timers_run_in_their_batch_when_a_timer_schedules_an_earlier_one() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let seen: Log<(&'static str, u64)> = log();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_at(t0 + Duration::from_secs(1), move || {
        s.borrow_mut().push(("a", iterations(&l)));
        // Due at once, and earlier than `b`, which is already due.
        log_at(&l, &s, "c (past deadline)", t0);
    })
    .unwrap();
    log_at(lp, &seen, "b", t0 + Duration::from_secs(1));
    let l = lp.clone();
    lp.call_at(t0 + Duration::from_secs(2), move || l.stop())
        .unwrap();
    fx.run_forever();
    let k = seen.borrow()[0].1;
    assert_eq!(
        *seen.borrow(),
        [("a", k), ("b", k), ("c (past deadline)", k + 1)],
        "b was due when the batch started: it belongs to that batch"
    );
    fx.finish();
}

#[test]
fn spec_3_6_due_timers_run_in_their_batch_when_a_callback_schedules_an_earlier_one() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let seen: Log<(&'static str, u64)> = log();
    log_at(lp, &seen, "due timer", t0);
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        s.borrow_mut().push(("callback", iterations(&l)));
        let past = l.time().checked_sub(Duration::from_secs(1)).unwrap();
        log_at(&l, &s, "new past timer", past);
    })
    .unwrap();
    stop_after(lp, Duration::from_secs(1));
    let k = iterations(lp);
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        [("callback", k), ("due timer", k), ("new past timer", k + 1)]
    );
    fx.finish();
}

#[test]
fn spec_3_6_stop_from_a_timer_still_runs_the_other_due_timers() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let seen: Log<(&'static str, u64)> = log();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_at(t0 + Duration::from_secs(1), move || {
        s.borrow_mut().push(("stopper", iterations(&l)));
        l.stop();
        log_at(&l, &s, "scheduled by the stopper", t0);
    })
    .unwrap();
    log_at(
        lp,
        &seen,
        "due with the stopper",
        t0 + Duration::from_secs(1),
    );
    fx.run_forever();
    let k = seen.borrow()[0].1;
    assert_eq!(
        *seen.borrow(),
        [("stopper", k), ("due with the stopper", k)],
        "the batch finishes before run_forever returns (docs/behaviour.md 1.2)"
    );
    lp.stop();
    fx.run_forever();
    assert_eq!(seen.borrow().len(), 3);
    fx.finish();
}

#[test]
fn spec_3_6_timer_due_during_a_batch_waits_for_the_next_iteration() {
    let clock = Arc::new(VirtualClock::new());
    let c = clock.clone();
    let fx = Fixture::build(move |b| {
        b.clock(c);
    });
    let lp = &fx.lp;
    let seen: Log<(&'static str, u64)> = log();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_later(Duration::from_secs(1), move || {
        s.borrow_mut().push(("timer", iterations(&l)));
        l.stop();
    })
    .unwrap();
    let (s, l, c) = (seen.clone(), lp.clone(), clock.clone());
    lp.call_soon(move || {
        c.advance(Duration::from_secs(2));
        s.borrow_mut().push(("advance", iterations(&l)));
    })
    .unwrap();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || s.borrow_mut().push(("same batch", iterations(&l))))
        .unwrap();
    let k = iterations(lp);
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        [("advance", k), ("same batch", k), ("timer", k + 1)]
    );
    fx.finish();
}

// ---------------------------------------------------------------------------
// 3.7 time() is monotonic and advances during a blocking callback.

#[test]
fn spec_3_7_time_is_monotonic() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let samples = log();
    fn sample(lp: EventLoop, left: u32, samples: Log<Instant>) {
        for _ in 0..100 {
            samples.borrow_mut().push(lp.time());
        }
        if left == 0 {
            lp.stop();
        } else {
            let l = lp.clone();
            lp.call_soon(move || sample(l, left - 1, samples)).unwrap();
        }
    }
    let (l, s) = (lp.clone(), samples.clone());
    lp.call_soon(move || sample(l, 100, s)).unwrap();
    fx.run_forever();
    let samples = samples.borrow();
    assert_eq!(samples.len(), 10_100);
    assert!(
        samples.windows(2).all(|w| w[0] <= w[1]),
        "time() went backwards"
    );
    fx.finish();
}

#[test]
fn spec_3_7_time_advances_during_a_blocking_callback() {
    let fx = Fixture::new();
    let lp = &fx.lp;
    let seen: Log<(Instant, Instant, Instant)> = log();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        let start = l.time();
        // Busy-wait 20 ms of wall time, independently of the loop's clock
        // (a cached time() would otherwise never let this loop end).
        let w = wall();
        while wall() - w < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let end = l.time();
        let h = l.call_later(Duration::from_millis(1), || {}).unwrap();
        s.borrow_mut().push((start, end, h.when()));
        h.cancel();
        l.stop();
    })
    .unwrap();
    fx.run_forever();
    let (start, end, when) = seen.borrow()[0];
    assert!(
        end - start >= Duration::from_millis(20),
        "advanced {:?}",
        end - start
    );
    assert!(end - start < Duration::from_secs(10));
    assert!(
        when >= end + Duration::from_millis(1),
        "call_later inside the callback used the current time, not a cached one"
    );
    fx.finish();
}

// ---------------------------------------------------------------------------
// 3.8 The virtual clock: still until idle, then jumps to the next deadline.

#[test]
fn spec_3_8_virtual_clock_jumps_to_the_next_deadline() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    assert!(lp.clock().is_virtual());
    let t0 = lp.time();
    let w0 = wall();
    let seen: Log<(u32, Instant)> = log();
    let mut handles = Vec::new();
    for h in 1..=3u32 {
        let (s, l) = (seen.clone(), lp.clone());
        handles.push(
            lp.call_later(HOUR * h, move || {
                s.borrow_mut().push((h, l.time()));
                if h == 3 {
                    l.stop();
                }
            })
            .unwrap(),
        );
    }
    let before = iterations(lp);
    fx.run_forever();
    let took = wall() - w0;
    assert!(
        took < Duration::from_secs(5),
        "three virtual hours took {took:?} of wall time"
    );
    let seen = seen.borrow();
    assert_eq!(seen.len(), 3);
    for ((h, at), handle) in seen.iter().zip(&handles) {
        assert_eq!(*at, handle.when(), "timer {h} saw time() == its deadline");
        assert_eq!(*at, t0 + HOUR * *h);
    }
    assert!(lp.time() - t0 >= HOUR * 3);
    assert_eq!(iterations(lp) - before, 3, "one jump per deadline");
    fx.finish();
}

#[test]
fn spec_3_8_virtual_clock_stands_still_while_not_idle() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let t0 = lp.time();
    let seen = log();
    for _ in 0..10 {
        let (s, l) = (seen.clone(), lp.clone());
        lp.call_soon(move || {
            // Real work takes real time; virtual time does not move.
            let w = wall();
            while wall() - w < Duration::from_millis(1) {
                std::hint::spin_loop();
            }
            s.borrow_mut().push(l.time());
        })
        .unwrap();
    }
    stop_soon(lp);
    fx.run_forever();
    assert!(seen.borrow().iter().all(|&t| t == t0));
    assert_eq!(lp.time(), t0, "no timers: nothing to jump to");
    fx.finish();
}

#[test]
fn spec_3_8_real_clock_is_not_virtual() {
    let fx = Fixture::new();
    assert!(!fx.lp.clock().is_virtual());
    fx.finish();
}
