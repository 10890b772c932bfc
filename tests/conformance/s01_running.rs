//! docs/behaviour.md 1: running the loop — `run_forever`/`stop`, `run_until_complete`,
//! re-entrancy, the thread's current loop, `close()` and dropping an unclosed
//! loop.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use evloop::{Error, EventLoop};
use evloop_conformance::{open_fds, Fixture};

type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

/// Schedules `lp.stop()` after `delay`.
fn stop_after(lp: &EventLoop, delay: Duration) {
    let stopper = lp.clone();
    lp.call_later(delay, move || stopper.stop()).unwrap();
}

/// A virtual-clock safety net for tests that rely on `stop()` ending a run
/// with nothing else pending: were the stop ignored, the clock would jump an
/// hour ahead, this would fire, and the test fail instead of hanging.
fn watchdog(lp: &EventLoop) -> evloop::TimerHandle {
    let l = lp.clone();
    lp.call_later(Duration::from_secs(3600), move || {
        l.stop();
        panic!("watchdog: the loop did not stop when asked");
    })
    .unwrap()
}

/// Schedules a callback that pushes `item` onto `log`.
fn push_soon<T: 'static>(lp: &EventLoop, log: &Log<T>, item: T) {
    let log = log.clone();
    lp.call_soon(move || log.borrow_mut().push(item)).unwrap();
}

/// Schedules a timer that pushes `item` onto `log` after `delay`.
fn push_later<T: 'static>(lp: &EventLoop, log: &Log<T>, delay: Duration, item: T) {
    let log = log.clone();
    lp.call_later(delay, move || log.borrow_mut().push(item))
        .unwrap();
}

// ---------------------------------------------------------------------------
// 1.1 run_forever runs until stop(); the stop flag is cleared on return.

#[test]
fn spec_1_1_run_forever_runs_until_stop() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let t0 = lp.time();
    for s in 1..=3 {
        push_later(lp, &seen, Duration::from_secs(s), s);
    }
    stop_after(lp, Duration::from_secs(4));
    push_later(lp, &seen, Duration::from_secs(5), 5);
    let running = Rc::new(Cell::new(false));
    let (r, l) = (running.clone(), lp.clone());
    lp.call_soon(move || r.set(l.is_running())).unwrap();

    assert!(!lp.is_running());
    fx.run_forever();

    assert!(running.get(), "is_running() inside a callback");
    assert!(!lp.is_running(), "is_running() after return");
    assert_eq!(*seen.borrow(), [1, 2, 3], "ran until stop, not beyond");
    assert_eq!(lp.time() - t0, Duration::from_secs(4));
    assert_eq!(lp.pending_timers(), 1, "the 5 s timer is still pending");
    fx.finish();
}

#[test]
fn spec_1_1_stop_flag_cleared_so_second_run_starts_clean() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    lp.call_soon({
        let l = lp.clone();
        move || l.stop()
    })
    .unwrap();
    fx.run_forever();

    // A chain of three iterations: a second run that still saw the old stop
    // flag would return after the first link.
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        s.borrow_mut().push("a");
        let (s, l2) = (s.clone(), l.clone());
        l.call_soon(move || {
            s.borrow_mut().push("b");
            let s = s.clone();
            l2.call_soon(move || s.borrow_mut().push("c")).unwrap();
        })
        .unwrap();
    })
    .unwrap();
    push_later(lp, &seen, Duration::from_secs(1), "timer");
    stop_after(lp, Duration::from_secs(2));
    let before = lp.stats().iterations;
    fx.run_forever();
    assert_eq!(*seen.borrow(), ["a", "b", "c", "timer"]);
    assert!(lp.stats().iterations - before >= 4);

    // And a third run after that one is clean too.
    push_later(lp, &seen, Duration::from_secs(1), "third");
    stop_after(lp, Duration::from_secs(1));
    fx.run_forever();
    assert_eq!(seen.borrow().last(), Some(&"third"));
    fx.finish();
}

// ---------------------------------------------------------------------------
// 1.2 stop() while running: the batch finishes; what it scheduled waits.

#[test]
fn spec_1_2_stop_lets_the_current_batch_finish() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        s.borrow_mut().push("a");
        l.stop();
        let s2 = s.clone();
        l.call_soon(move || s2.borrow_mut().push("scheduled-soon"))
            .unwrap();
        let s3 = s.clone();
        l.call_later(Duration::ZERO, move || {
            s3.borrow_mut().push("scheduled-timer")
        })
        .unwrap();
    })
    .unwrap();
    push_soon(lp, &seen, "b");
    push_soon(lp, &seen, "c");

    let before = lp.stats().iterations;
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        ["a", "b", "c"],
        "b and c were queued after the stopping callback"
    );
    assert_eq!(
        lp.stats().iterations - before,
        1,
        "the loop returned after that one batch"
    );
    assert_eq!(lp.pending_callbacks(), 1);
    assert_eq!(lp.pending_timers(), 1);

    lp.stop();
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        ["a", "b", "c", "scheduled-soon", "scheduled-timer"],
        "what the batch scheduled runs at the next run"
    );
    fx.finish();
}

#[test]
fn spec_1_2_stop_from_a_timer_lets_timers_of_the_same_batch_run() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let when = lp.time() + Duration::from_secs(1);
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_at(when, move || {
        s.borrow_mut().push("stopper");
        l.stop();
    })
    .unwrap();
    let s = seen.clone();
    lp.call_at(when, move || s.borrow_mut().push("same deadline"))
        .unwrap();
    push_later(lp, &seen, Duration::from_secs(2), "later");
    fx.run_forever();
    assert_eq!(*seen.borrow(), ["stopper", "same deadline"]);
    assert_eq!(lp.pending_timers(), 1);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 1.3 stop() before run_forever: one poll with timeout 0, run what is ready.

#[test]
fn spec_1_3_stop_before_run_runs_ready_work_in_one_iteration() {
    // Real clock: a wrongly computed timeout would block on the 10 s timer.
    let fx = Fixture::new();
    let lp = &fx.lp;
    let seen = log();
    let (rx, tx) = rustix::pipe::pipe().unwrap();
    rustix::io::write(&tx, b"x").unwrap();
    let s = seen.clone();
    lp.add_reader(&rx, move || s.borrow_mut().push("reader"))
        .unwrap();
    push_later(lp, &seen, Duration::ZERO, "expired timer");
    push_later(lp, &seen, Duration::from_secs(10), "far timer");
    push_soon(lp, &seen, "callback");

    let before = lp.stats();
    let t0 = lp.time();
    lp.stop();
    fx.run_forever();
    let took = lp.time() - t0;

    assert!(
        took < Duration::from_secs(5),
        "returned promptly, took {took:?}"
    );
    assert_eq!(*seen.borrow(), ["callback", "reader", "expired timer"]);
    let after = lp.stats();
    assert_eq!(
        after.iterations,
        before.iterations + 1,
        "exactly one iteration"
    );
    assert_eq!(after.io_events, before.io_events + 1);
    assert_eq!(after.timers_fired, before.timers_fired + 1);
    assert_eq!(lp.pending_timers(), 1, "the far timer stays pending");

    assert!(lp.remove_reader(&rx));
    drop((rx, tx));
    fx.finish();
}

#[test]
fn spec_1_3_stop_before_run_does_not_advance_the_virtual_clock() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    push_later(lp, &seen, Duration::from_secs(3600), "far");
    push_soon(lp, &seen, "soon");
    let t0 = lp.time();
    let before = lp.stats().iterations;
    lp.stop();
    fx.run_forever();
    assert_eq!(lp.time(), t0, "no sleep towards the far timer");
    assert_eq!(*seen.borrow(), ["soon"]);
    assert_eq!(lp.stats().iterations, before + 1);

    // With nothing ready at all it still returns after one iteration.
    lp.stop();
    fx.run_forever();
    assert_eq!(lp.stats().iterations, before + 2);
    assert_eq!(lp.time(), t0);
    assert_eq!(*seen.borrow(), ["soon"]);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 1.4 run_until_complete: output, StoppedBeforeComplete, panic.

#[test]
fn spec_1_4_run_until_complete_returns_the_output() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    assert_eq!(lp.run_until_complete(async { 6 * 7 }).unwrap(), 42);

    // A future completed by a timer one (virtual) hour later.
    let fut = lp.create_future::<&'static str>();
    let f = fut.clone();
    lp.call_later(Duration::from_secs(3600), move || {
        f.set_result("done").unwrap()
    })
    .unwrap();
    assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), "done");

    // A task, and a future borrowing from the caller.
    let task = lp.create_task(async { String::from("task") }).unwrap();
    assert_eq!(lp.run_until_complete(task).unwrap().unwrap(), "task");
    let mut local = String::from("borrowed");
    let len = lp
        .run_until_complete(async {
            local.push('!');
            local.len()
        })
        .unwrap();
    assert_eq!((len, local.as_str()), (9, "borrowed!"));
    assert!(!lp.is_running());
    fx.finish();
}

#[test]
fn spec_1_4_run_until_complete_stopped_before_complete() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let fut = lp.create_future::<i32>();
    lp.call_soon({
        let l = lp.clone();
        move || l.stop()
    })
    .unwrap();
    let res = lp.run_until_complete(fut.clone());
    assert!(
        matches!(res, Err(Error::StoppedBeforeComplete)),
        "got {res:?}"
    );
    assert!(!lp.is_running());

    // Stopped from inside the awaited future itself.
    let guard = watchdog(lp);
    let l = lp.clone();
    let pending = lp.create_future::<i32>();
    let res = lp.run_until_complete(async move {
        l.stop();
        pending.await
    });
    assert!(
        matches!(res, Err(Error::StoppedBeforeComplete)),
        "got {res:?}"
    );

    guard.cancel();

    // The loop is usable afterwards and the stop flag is gone.
    fut.set_result(7).unwrap();
    assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), 7);
    let seen = log();
    push_later(lp, &seen, Duration::from_secs(1), 1);
    stop_after(lp, Duration::from_secs(2));
    fx.run_forever();
    assert_eq!(*seen.borrow(), [1]);
    fx.finish();
}

#[test]
fn spec_1_4_run_until_complete_panic_is_an_error_and_loop_stays_usable() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let res = lp.run_until_complete(async { panic!("boom in future") });
    assert!(
        matches!(&res, Err(Error::Panic(m)) if m == "boom in future"),
        "got {res:?}"
    );
    assert!(!lp.is_running());
    assert!(
        EventLoop::try_current().is_none(),
        "unregistered after a panic"
    );

    // Panicking after the loop ran some iterations (a formatted payload).
    let fut = lp.create_future::<()>();
    let f = fut.clone();
    lp.call_later(Duration::from_secs(1), move || f.set_result(()).unwrap())
        .unwrap();
    let res = lp.run_until_complete(async move {
        fut.await.unwrap();
        panic!("late boom {}", 7)
    });
    assert!(
        matches!(&res, Err(Error::Panic(m)) if m == "late boom 7"),
        "got {res:?}"
    );

    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
    let seen = log();
    push_soon(lp, &seen, "after");
    stop_after(lp, Duration::from_secs(1));
    fx.run_forever();
    assert_eq!(*seen.borrow(), ["after"]);
    assert!(
        fx.take_errors().is_empty(),
        "a returned panic is not also reported"
    );
    fx.finish();
}

// ---------------------------------------------------------------------------
// 1.5 Re-entrant run → AlreadyRunning; another loop → AnotherLoopRunning.

#[test]
fn spec_1_5_reentrant_run_is_already_running() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let results: Log<Result<(), Error>> = log();
    let (r, l) = (results.clone(), lp.clone());
    lp.call_soon(move || {
        r.borrow_mut().push(l.run_forever());
        r.borrow_mut().push(l.run_until_complete(async {}));
        // The failed attempts changed nothing.
        assert!(l.is_running());
        assert!(EventLoop::current().unwrap().ptr_eq(&l));
        l.stop();
    })
    .unwrap();
    fx.run_forever();
    // And from inside a future driven by run_until_complete.
    let l = lp.clone();
    let inner = lp
        .run_until_complete(async move { l.run_until_complete(async { 5 }) })
        .unwrap();
    results.borrow_mut().push(inner.map(drop));

    let results = results.borrow();
    assert_eq!(results.len(), 3);
    for res in results.iter() {
        assert!(matches!(res, Err(Error::AlreadyRunning)), "got {res:?}");
    }
    assert!(!lp.is_running());
    fx.finish();
}

#[test]
fn spec_1_5_second_loop_inside_a_running_loop_is_another_loop_running() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let other = EventLoop::builder().virtual_clock().build().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    other.call_soon(move || r.set(true)).unwrap();
    // Were the refusal missing, this would end the wrongly started run.
    let o = other.clone();
    other.call_soon(move || o.stop()).unwrap();

    let results: Log<Result<(), Error>> = log();
    let (res, l, o) = (results.clone(), lp.clone(), other.clone());
    lp.call_soon(move || {
        res.borrow_mut().push(o.run_forever());
        res.borrow_mut().push(o.run_until_complete(async {}));
        assert!(!o.is_running());
        l.stop();
    })
    .unwrap();
    fx.run_forever();
    {
        let results = results.borrow();
        assert_eq!(results.len(), 2);
        for r in results.iter() {
            assert!(matches!(r, Err(Error::AnotherLoopRunning)), "got {r:?}");
        }
    }
    assert!(!ran.get(), "the refused loop ran nothing");

    // Once the first loop returned, the other one runs fine on this thread.
    other.stop();
    other.run_forever().unwrap();
    assert!(ran.get());
    other.close().unwrap();
    drop(other);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 1.6 current() / try_current().

#[test]
fn spec_1_6_current_is_the_running_loop_of_this_thread() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    assert!(matches!(EventLoop::current(), Err(Error::NotRunning)));
    assert!(EventLoop::try_current().is_none());

    let checks: Log<(&'static str, bool)> = log();
    let (c, l) = (checks.clone(), lp.clone());
    lp.call_soon(move || {
        let cur = EventLoop::current().unwrap();
        c.borrow_mut().push(("callback current", cur.ptr_eq(&l)));
        let cur = EventLoop::try_current().unwrap();
        c.borrow_mut()
            .push(("callback try_current", cur.ptr_eq(&l)));
        // Thread-local: another thread sees no running loop.
        let elsewhere = std::thread::scope(|s| {
            s.spawn(|| EventLoop::try_current().is_none() && EventLoop::current().is_err())
                .join()
                .unwrap()
        });
        c.borrow_mut().push(("none on another thread", elsewhere));
    })
    .unwrap();
    let (c, l) = (checks.clone(), lp.clone());
    lp.call_later(Duration::from_secs(1), move || {
        let cur = EventLoop::current().unwrap();
        c.borrow_mut().push(("timer current", cur.ptr_eq(&l)));
        cur.stop();
    })
    .unwrap();
    fx.run_forever();
    assert!(EventLoop::try_current().is_none(), "unregistered on return");

    let l = lp.clone();
    let in_future = lp
        .run_until_complete(async move { EventLoop::current().unwrap().ptr_eq(&l) })
        .unwrap();
    checks
        .borrow_mut()
        .push(("run_until_complete future", in_future));
    let l = lp.clone();
    let task = lp
        .create_task(async move { EventLoop::try_current().is_some_and(|c| c.ptr_eq(&l)) })
        .unwrap();
    let in_task = lp.run_until_complete(task).unwrap().unwrap();
    checks.borrow_mut().push(("task", in_task));

    assert!(matches!(EventLoop::current(), Err(Error::NotRunning)));
    let checks = checks.borrow();
    assert_eq!(checks.len(), 6);
    for (what, ok) in checks.iter() {
        assert!(ok, "{what}");
    }
    fx.finish();
}

// ---------------------------------------------------------------------------
// 1.7 close().

#[test]
fn spec_1_7_close_while_running_is_error_running() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let results: Log<Result<(), Error>> = log();
    let (r, l) = (results.clone(), lp.clone());
    lp.call_soon(move || {
        r.borrow_mut().push(l.close());
        l.stop();
    })
    .unwrap();
    fx.run_forever();
    let l = lp.clone();
    let from_future = lp.run_until_complete(async move { l.close() }).unwrap();
    results.borrow_mut().push(from_future);

    for r in results.borrow().iter() {
        assert!(matches!(r, Err(Error::Running)), "got {r:?}");
    }
    assert!(!lp.is_closed(), "a refused close leaves the loop open");
    assert_eq!(lp.run_until_complete(async { 3 }).unwrap(), 3);
    fx.finish();
}

#[test]
fn spec_1_7_close_is_idempotent() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    assert!(!lp.is_closed());
    lp.close().unwrap();
    assert!(lp.is_closed());
    lp.close().unwrap();
    lp.close().unwrap();
    assert!(lp.is_closed());
    fx.finish(); // closes once more
}

#[test]
fn spec_1_7_close_drops_pending_callbacks_and_timers() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let token = Rc::new(());
    let remote_token = Arc::new(());
    let ran = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let (t, r) = (token.clone(), ran.clone());
        lp.call_soon(move || {
            drop(t);
            r.set(r.get() + 1);
        })
        .unwrap();
        let (t, r) = (token.clone(), ran.clone());
        lp.call_later(Duration::from_secs(5), move || {
            drop(t);
            r.set(r.get() + 1);
        })
        .unwrap();
        let t = remote_token.clone();
        lp.remote().call_soon_threadsafe(move || drop(t)).unwrap();
    }
    assert_eq!(Rc::strong_count(&token), 7);
    assert_eq!(Arc::strong_count(&remote_token), 4);

    lp.close().unwrap();
    assert_eq!(Rc::strong_count(&token), 1, "captures freed by close");
    assert_eq!(
        Arc::strong_count(&remote_token),
        1,
        "remote posts freed by close"
    );
    assert_eq!(ran.get(), 0);
    assert_eq!(lp.pending_callbacks(), 0);
    assert_eq!(lp.pending_timers(), 0);
    fx.finish();
}

/// Calls back into the loop from its destructor (a closed loop must refuse
/// calmly, not deadlock or panic on a borrowed queue).
struct CallsLoopOnDrop {
    lp: EventLoop,
    result: Rc<RefCell<Option<Result<(), Error>>>>,
}

impl Drop for CallsLoopOnDrop {
    fn drop(&mut self) {
        let res = self.lp.call_soon(|| {}).map(drop);
        *self.result.borrow_mut() = Some(res);
    }
}

#[test]
fn spec_1_7_close_drops_captures_that_call_back_into_the_loop() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let result = Rc::new(RefCell::new(None));
    let guard = CallsLoopOnDrop {
        lp: lp.clone(),
        result: result.clone(),
    };
    lp.call_soon(move || drop(guard)).unwrap();
    let guard = CallsLoopOnDrop {
        lp: lp.clone(),
        result: Rc::new(RefCell::new(None)),
    };
    lp.call_later(Duration::from_secs(1), move || drop(guard))
        .unwrap();
    lp.close().unwrap();
    let res = result.borrow_mut().take();
    assert!(matches!(res, Some(Err(Error::Closed))), "got {res:?}");
    fx.finish();
}

#[test]
fn spec_1_7_after_close_every_scheduling_call_is_closed() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let (rx, tx) = rustix::pipe::pipe().unwrap();
    lp.add_reader(&rx, || {}).unwrap();
    lp.add_writer(&tx, || {}).unwrap();
    let remote = lp.remote();
    lp.close().unwrap();

    let token = Rc::new(());
    let t = token.clone();
    let res = lp.call_soon(move || drop(t));
    assert!(matches!(res, Err(Error::Closed)), "call_soon: {res:?}");
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "the refused closure is dropped"
    );
    let res = lp.call_later(Duration::from_secs(1), || {});
    assert!(matches!(res, Err(Error::Closed)), "call_later: {res:?}");
    let res = lp.call_later(Duration::ZERO, || {});
    assert!(matches!(res, Err(Error::Closed)), "call_later(0): {res:?}");
    let res = lp.call_at(lp.time(), || {});
    assert!(matches!(res, Err(Error::Closed)), "call_at: {res:?}");
    let res = lp.create_task(async {});
    assert!(matches!(res, Err(Error::Closed)), "create_task: {res:?}");
    let res = lp.add_reader(&rx, || {});
    assert!(matches!(res, Err(Error::Closed)), "add_reader: {res:?}");
    let res = lp.add_writer(&tx, || {});
    assert!(matches!(res, Err(Error::Closed)), "add_writer: {res:?}");
    let res = remote.call_soon_threadsafe(|| {});
    assert!(
        matches!(res, Err(Error::Closed)),
        "call_soon_threadsafe: {res:?}"
    );
    let res = lp.remote().call_soon_threadsafe(|| {});
    assert!(
        matches!(res, Err(Error::Closed)),
        "call_soon_threadsafe (new remote): {res:?}"
    );
    let from_thread = std::thread::spawn(move || remote.call_soon_threadsafe(|| {}))
        .join()
        .unwrap();
    assert!(
        matches!(from_thread, Err(Error::Closed)),
        "from a thread: {from_thread:?}"
    );
    let res = lp.run_forever();
    assert!(matches!(res, Err(Error::Closed)), "run_forever: {res:?}");
    let res = lp.run_until_complete(async { 1 });
    assert!(
        matches!(res, Err(Error::Closed)),
        "run_until_complete: {res:?}"
    );
    let res = futures_lite::future::block_on(lp.run_in_executor(None, || 1));
    assert!(
        matches!(res, Err(Error::Closed)),
        "run_in_executor: {:?}",
        res.err()
    );

    // remove_reader/remove_writer report false, also for fds watched before.
    assert!(!lp.remove_reader(&rx));
    assert!(!lp.remove_writer(&tx));
    drop((rx, tx));
    fx.finish();
}

#[test]
fn spec_1_7_close_releases_internal_fds() {
    let fx = Fixture::virtual_clock();
    let before = open_fds();
    let other = EventLoop::new().unwrap();
    assert!(open_fds() > before, "a loop holds internal fds");
    let remote = other.remote();
    other.close().unwrap();
    assert_eq!(
        open_fds(),
        before,
        "close() closes the loop's internal fds, even while the loop \
         value and a Remote are still alive"
    );
    assert!(matches!(
        remote.call_soon_threadsafe(|| {}),
        Err(Error::Closed)
    ));
    drop((other, remote));
    fx.finish();
}

#[test]
fn spec_1_7_close_does_not_wait_for_the_default_executor() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let job = lp.run_in_executor(None, move || {
        started_tx.send(()).unwrap();
        // Bounded: a close() that waited would return after this timeout.
        let _ = release_rx.recv_timeout(Duration::from_secs(20));
        f.store(true, Ordering::SeqCst);
    });
    started_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the executor job started");

    lp.close().unwrap();
    assert!(
        !finished.load(Ordering::SeqCst),
        "close() returned while the job was still running"
    );
    release_tx.send(()).unwrap();
    drop(job);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 1.8 Dropping an unclosed loop closes it.

#[test]
fn spec_1_8_dropping_an_unclosed_loop_closes_it() {
    let fx = Fixture::virtual_clock();
    let fds_before = open_fds();
    let other = EventLoop::builder().virtual_clock().build().unwrap();
    let remote = other.remote();
    let token = Rc::new(());
    let t = token.clone();
    other.call_soon(move || drop(t)).unwrap();
    let t = token.clone();
    other
        .call_later(Duration::from_secs(60), move || drop(t))
        .unwrap();
    let clone = other.clone();
    drop(other);
    assert!(!remote.is_closed(), "a clone keeps the loop alive and open");
    drop(clone);

    assert!(remote.is_closed(), "the last drop closed the loop");
    assert!(matches!(
        remote.call_soon_threadsafe(|| {}),
        Err(Error::Closed)
    ));
    assert_eq!(Rc::strong_count(&token), 1, "pending captures were freed");
    drop(remote);
    assert_eq!(open_fds(), fds_before, "its fds were closed");
    fx.finish();
}
