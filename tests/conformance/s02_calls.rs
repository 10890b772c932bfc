//! docs/behaviour.md 2: calls — `call_soon` FIFO, `Handle::cancel`, `Remote::call_soon_threadsafe`
//! and panics inside callbacks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use evloop::{Clock, Error, EventLoop, Handle, MonotonicClock, Remote, TimerHandle};
use evloop_conformance::Fixture;

type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

fn push_soon<T: 'static>(lp: &EventLoop, log: &Log<T>, item: T) -> Handle {
    let log = log.clone();
    lp.call_soon(move || log.borrow_mut().push(item)).unwrap()
}

fn stop_soon(lp: &EventLoop) {
    let l = lp.clone();
    lp.call_soon(move || l.stop()).unwrap();
}

// ---------------------------------------------------------------------------
// 2.1 call_soon is FIFO, each callback runs exactly once, returns Handle.

#[test]
fn spec_2_1_call_soon_fifo_exactly_once_10000() {
    const N: usize = 10_000;
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let handles: Vec<Handle> = (0..N).map(|i| push_soon(lp, &seen, i)).collect();
    assert_eq!(handles.len(), N);
    assert!(handles.iter().all(|h| !h.cancelled()));
    assert_eq!(lp.pending_callbacks(), N);
    stop_soon(lp);
    let before = lp.stats();
    fx.run_forever();

    let seen = seen.borrow();
    assert_eq!(seen.len(), N, "each callback ran exactly once");
    assert!(seen.iter().copied().eq(0..N), "in scheduling order");
    let after = lp.stats();
    assert_eq!(after.iterations - before.iterations, 1, "all in one batch");
    assert_eq!(after.callbacks - before.callbacks, N as u64 + 1);
    fx.finish();
}

#[test]
fn spec_2_1_callbacks_scheduled_while_running_queue_behind() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        s.borrow_mut().push("a");
        push_soon(&l, &s, "a.1");
        push_soon(&l, &s, "a.2");
    })
    .unwrap();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        s.borrow_mut().push("b");
        push_soon(&l, &s, "b.1");
        stop_soon(&l);
    })
    .unwrap();
    fx.run_forever();
    assert_eq!(*seen.borrow(), ["a", "b", "a.1", "a.2", "b.1"]);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 2.2 Handle::cancel: idempotent, frees captures at once, never runs.

#[test]
fn spec_2_2_cancel_is_idempotent_and_frees_captures_at_once() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let token = Rc::new(());
    let ran = Rc::new(Cell::new(false));
    let (t, r) = (token.clone(), ran.clone());
    let h = lp
        .call_soon(move || {
            let _keep = &t;
            r.set(true);
        })
        .unwrap();
    assert!(!h.cancelled());
    assert_eq!(Rc::strong_count(&token), 2);
    h.cancel();
    assert!(h.cancelled());
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "captures freed by cancel, before the loop runs"
    );
    h.cancel();
    assert!(h.cancelled(), "cancel is idempotent");
    assert_eq!(Rc::strong_count(&token), 1);

    stop_soon(lp);
    fx.run_forever();
    assert!(!ran.get(), "a cancelled handle never runs");
    assert!(h.cancelled());
    fx.finish();
}

#[test]
fn spec_2_2_cancel_timer_handle_frees_captures_at_once() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let token = Rc::new(());
    let ran = Rc::new(Cell::new(false));
    let (t, r) = (token.clone(), ran.clone());
    let h: TimerHandle = lp
        .call_later(Duration::from_secs(1), move || {
            let _keep = &t;
            r.set(true);
        })
        .unwrap();
    assert_eq!(lp.pending_timers(), 1);
    h.cancel();
    assert!(h.cancelled());
    assert_eq!(Rc::strong_count(&token), 1, "captures freed by cancel");
    assert_eq!(lp.pending_timers(), 0, "heap slot released at once");
    h.cancel();
    assert!(h.cancelled());

    let l = lp.clone();
    lp.call_later(Duration::from_secs(2), move || l.stop())
        .unwrap();
    fx.run_forever();
    assert!(!ran.get());
    fx.finish();
}

#[test]
fn spec_2_2_dropping_a_handle_does_not_cancel() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let token = Rc::new(());
    let (s, t) = (seen.clone(), token.clone());
    let h = lp
        .call_soon(move || {
            drop(t);
            s.borrow_mut().push("dropped before run");
        })
        .unwrap();
    drop(h);
    let s = seen.clone();
    let th = lp
        .call_later(Duration::from_secs(1), move || {
            s.borrow_mut().push("timer, dropped")
        })
        .unwrap();
    drop(th);
    let kept = push_soon(lp, &seen, "kept");
    let l = lp.clone();
    lp.call_later(Duration::from_secs(2), move || l.stop())
        .unwrap();
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        ["dropped before run", "kept", "timer, dropped"]
    );
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "a run callback frees its captures"
    );
    // Cancelling or dropping after the run is harmless.
    kept.cancel();
    drop(kept);
    fx.finish();
}

#[test]
fn spec_2_2_cancel_own_handle_from_inside_the_callback() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();

    let slot: Rc<RefCell<Option<Handle>>> = Rc::new(RefCell::new(None));
    let (s, sl) = (seen.clone(), slot.clone());
    let h = lp
        .call_soon(move || {
            let me = sl.borrow();
            let me = me.as_ref().unwrap();
            me.cancel();
            s.borrow_mut().push(("soon", me.cancelled()));
        })
        .unwrap();
    *slot.borrow_mut() = Some(h);

    let tslot: Rc<RefCell<Option<TimerHandle>>> = Rc::new(RefCell::new(None));
    let (s, sl) = (seen.clone(), tslot.clone());
    let th = lp
        .call_later(Duration::from_secs(1), move || {
            let me = sl.borrow();
            let me = me.as_ref().unwrap();
            me.cancel();
            me.cancel();
            s.borrow_mut().push(("timer", me.cancelled()));
        })
        .unwrap();
    *tslot.borrow_mut() = Some(th);

    let l = lp.clone();
    lp.call_later(Duration::from_secs(2), move || l.stop())
        .unwrap();
    fx.run_forever();
    assert_eq!(*seen.borrow(), [("soon", true), ("timer", true)]);
    assert_eq!(lp.pending_timers(), 0);
    // The handles hold the closures' slots; break the cycles.
    slot.borrow_mut().take();
    tslot.borrow_mut().take();
    fx.finish();
}

#[test]
fn spec_2_2_cancel_a_later_handle_of_the_same_batch() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let victim: Rc<RefCell<Option<Handle>>> = Rc::new(RefCell::new(None));
    let (s, v) = (seen.clone(), victim.clone());
    lp.call_soon(move || {
        s.borrow_mut().push("a");
        v.borrow().as_ref().unwrap().cancel();
    })
    .unwrap();
    let token = Rc::new(());
    let (s, t) = (seen.clone(), token.clone());
    *victim.borrow_mut() = Some(
        lp.call_soon(move || {
            drop(t);
            s.borrow_mut().push("b");
        })
        .unwrap(),
    );
    push_soon(lp, &seen, "c");
    // Token's count right after the earlier callback cancelled it.
    let (t, counts) = (token.clone(), Rc::new(Cell::new(0)));
    let c = counts.clone();
    lp.call_soon(move || c.set(Rc::strong_count(&t))).unwrap();
    stop_soon(lp);
    let before = lp.stats().iterations;
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        ["a", "c"],
        "b was cancelled before its turn"
    );
    assert_eq!(lp.stats().iterations - before, 1, "all in one batch");
    assert_eq!(counts.get(), 2, "b's captures were freed by the cancel");
    assert!(victim.borrow().as_ref().unwrap().cancelled());
    fx.finish();
}

#[test]
fn spec_2_2_cancel_a_later_timer_of_the_same_batch() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    let when = lp.time() + Duration::from_secs(1);
    let victim: Rc<RefCell<Option<TimerHandle>>> = Rc::new(RefCell::new(None));
    let (s, v) = (seen.clone(), victim.clone());
    lp.call_at(when, move || {
        s.borrow_mut().push("first");
        v.borrow().as_ref().unwrap().cancel();
    })
    .unwrap();
    let s = seen.clone();
    *victim.borrow_mut() = Some(
        lp.call_at(when, move || s.borrow_mut().push("second"))
            .unwrap(),
    );
    let s = seen.clone();
    lp.call_at(when, move || s.borrow_mut().push("third"))
        .unwrap();
    let l = lp.clone();
    lp.call_at(when + Duration::from_secs(1), move || l.stop())
        .unwrap();
    fx.run_forever();
    assert_eq!(*seen.borrow(), ["first", "third"]);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 2.3 Remote::call_soon_threadsafe.

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

#[test]
fn spec_2_3_remote_is_send_sync_clone() {
    assert_send_sync_clone::<Remote>();
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let hits = Arc::new(AtomicUsize::new(0));
    let remote = lp.remote();
    let clone = remote.clone();
    let h = hits.clone();
    std::thread::spawn(move || {
        clone
            .call_soon_threadsafe(move || {
                h.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
    })
    .join()
    .unwrap();
    assert!(!remote.is_closed());
    stop_soon(lp);
    fx.run_forever();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "posted before the run, ran in it"
    );
    drop(remote);
    fx.finish();
}

#[test]
fn spec_2_3_threadsafe_from_loop_thread_keeps_fifo_with_call_soon() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let remote = lp.remote();
    for i in 0..30 {
        let s = seen.clone();
        if i % 3 == 1 {
            remote
                .call_soon_threadsafe(move || s.lock().unwrap().push(i))
                .unwrap();
        } else {
            lp.call_soon(move || s.lock().unwrap().push(i)).unwrap();
        }
    }
    // And from inside a running callback.
    let (s, l, r) = (seen.clone(), lp.clone(), remote.clone());
    lp.call_soon(move || {
        for i in 100..110 {
            let s = s.clone();
            if i % 2 == 0 {
                r.call_soon_threadsafe(move || s.lock().unwrap().push(i))
                    .unwrap();
            } else {
                l.call_soon(move || s.lock().unwrap().push(i)).unwrap();
            }
        }
        let l2 = l.clone();
        l.call_soon(move || l2.stop()).unwrap();
    })
    .unwrap();
    fx.run_forever();
    let expected: Vec<i32> = (0..30).chain(100..110).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    drop(remote);
    fx.finish();
}

/// The kernel wait channel of thread `tid` of this process (Linux), e.g.
/// `do_epoll_wait` while it blocks in `epoll_wait`.
fn wchan(tid: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")).ok()
}

#[test]
fn spec_2_3_threadsafe_wakes_a_loop_blocked_in_poll() {
    // Real clock and no timers at all: the loop blocks in poll with no
    // timeout until the other thread's post wakes it.
    let fx = Fixture::new();
    let lp = &fx.lp;
    let remote = lp.remote();
    let (tid_tx, tid_rx) = mpsc::channel::<Option<String>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    // An independent way to wake the loop, for the watchdog only.
    let (wd_rx, wd_tx) = rustix::pipe::pipe().unwrap();
    let wd_rx = Rc::new(wd_rx);
    let r = wd_rx.clone();
    lp.add_reader(&wd_rx, move || {
        let _ = rustix::io::read(&*r, &mut [0u8; 8]);
    })
    .unwrap();

    let poster = std::thread::spawn(move || {
        let tid = tid_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        // Wait (bounded) until the loop thread sleeps in poll, so the post
        // below really has to wake it.
        let clock = MonotonicClock;
        let t = clock.now();
        let mut blocked = false;
        while !blocked && clock.now() - t < Duration::from_secs(10) {
            blocked = tid
                .as_deref()
                .and_then(wchan)
                .is_some_and(|w| w.contains("poll"));
            std::hint::spin_loop();
        }
        let posted_at = clock.now();
        remote
            .call_soon_threadsafe(|| EventLoop::current().unwrap().stop())
            .unwrap();
        // Watchdog: if the wake were lost, wake the loop through the pipe
        // after 20 s so the test fails on the latency check, not by hanging.
        if done_rx.recv_timeout(Duration::from_secs(20)).is_err() {
            rustix::io::write(&wd_tx, b"w").unwrap();
        }
        (posted_at, blocked, tid.is_some_and(|t| wchan(&t).is_some()))
    });

    lp.call_soon(move || {
        let tid = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| Some(p.file_name()?.to_str()?.to_owned()));
        tid_tx.send(tid).unwrap();
    })
    .unwrap();
    fx.run_forever();
    let woke_at = MonotonicClock.now();
    done_tx.send(()).unwrap();
    let (posted_at, blocked, wchan_readable) = poster.join().unwrap();

    let latency = woke_at.saturating_duration_since(posted_at);
    assert!(
        latency < Duration::from_secs(5),
        "the post woke the loop promptly (took {latency:?})"
    );
    if wchan_readable {
        assert!(
            blocked,
            "the loop thread was seen blocked in poll before the post"
        );
    }
    assert_eq!(lp.pending_timers(), 0);
    assert!(lp.remove_reader(&wd_rx));
    drop(wd_rx);
    fx.finish();
}

#[test]
fn spec_2_3_threadsafe_from_4_threads_while_timers_churn() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 2_000;
    const TOTAL: usize = THREADS * PER_THREAD;
    let fx = Fixture::new();
    let lp = &fx.lp;
    let hits = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS + 1));

    let posters: Vec<_> = (0..THREADS)
        .map(|_| {
            let remote = lp.remote();
            let hits = hits.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..PER_THREAD {
                    let hits = hits.clone();
                    remote
                        .call_soon_threadsafe(move || {
                            if hits.fetch_add(1, Ordering::SeqCst) + 1 == TOTAL {
                                EventLoop::current().unwrap().stop();
                            }
                        })
                        .unwrap();
                }
            })
        })
        .collect();

    // On the loop thread: create and cancel timers every iteration.
    fn churn(lp: &EventLoop, created: Rc<Cell<usize>>) {
        let mut keep = Vec::new();
        for i in 0..8u64 {
            let h = lp.call_later(Duration::from_micros(50 * i), || {}).unwrap();
            if i % 2 == 0 {
                h.cancel();
            } else {
                keep.push(h);
            }
            created.set(created.get() + 1);
        }
        let l = lp.clone();
        lp.call_later(Duration::from_micros(100), move || churn(&l, created))
            .unwrap();
        for h in keep.iter().step_by(2) {
            h.cancel();
        }
    }
    let created = Rc::new(Cell::new(0));
    churn(lp, created.clone());
    // Watchdog: a lost post would leave the loop running; stop it after 30 s.
    let watchdog_fired = Rc::new(Cell::new(false));
    let (w, l) = (watchdog_fired.clone(), lp.clone());
    let watchdog = lp
        .call_later(Duration::from_secs(30), move || {
            w.set(true);
            l.stop();
        })
        .unwrap();
    let s = start.clone();
    lp.call_soon(move || {
        s.wait();
    })
    .unwrap();

    fx.run_forever();
    for p in posters {
        p.join().unwrap();
    }
    assert!(
        !watchdog_fired.get(),
        "all posts arrived (got {})",
        hits.load(Ordering::SeqCst)
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        TOTAL,
        "no post lost or run twice"
    );
    assert!(created.get() > 8, "timers were churned while posts arrived");
    watchdog.cancel();

    // Nothing else is left queued: one more pass runs no extra post.
    lp.stop();
    fx.run_forever();
    assert_eq!(hits.load(Ordering::SeqCst), TOTAL);
    fx.finish();
}

#[test]
fn spec_2_3_threadsafe_after_close_is_closed_not_a_panic() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let remote = lp.remote();
    lp.close().unwrap();
    assert!(remote.is_closed());
    let payload = Arc::new(());
    let p = payload.clone();
    let res = remote.call_soon_threadsafe(move || drop(p));
    assert!(matches!(res, Err(Error::Closed)), "got {res:?}");
    assert_eq!(
        Arc::strong_count(&payload),
        1,
        "the refused closure is dropped"
    );
    let res = std::thread::spawn(move || {
        (0..100)
            .map(|_| remote.call_soon_threadsafe(|| {}))
            .all(|r| matches!(r, Err(Error::Closed)))
    })
    .join()
    .unwrap();
    assert!(res);
    fx.finish();
}

// ---------------------------------------------------------------------------
// 2.4 A panic in a callback → exception handler; the loop goes on.

#[test]
fn spec_2_4_panicking_callback_goes_to_exception_handler() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let seen = log();
    push_soon(lp, &seen, "before");
    let h = lp.call_soon(|| panic!("boom")).unwrap();
    push_soon(lp, &seen, "after, same batch");
    let th = lp
        .call_later(Duration::from_secs(1), || panic!("timer boom {}", 42))
        .unwrap();
    let s = seen.clone();
    let l = lp.clone();
    lp.call_later(Duration::from_secs(2), move || {
        s.borrow_mut().push("later timer");
        l.stop();
    })
    .unwrap();
    fx.run_forever();
    assert_eq!(
        *seen.borrow(),
        ["before", "after, same batch", "later timer"]
    );

    let errors = fx.take_errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let expected = [("boom", h.info()), ("timer boom 42", th.info())];
    for (ctx, (payload, info)) in errors.iter().zip(expected) {
        assert!(
            ctx.message.starts_with("Exception in callback"),
            "message: {}",
            ctx.message
        );
        assert!(
            matches!(&ctx.error, Some(Error::Panic(m)) if m == payload),
            "error: {:?}",
            ctx.error
        );
        assert_eq!(ctx.handle, Some(info), "the handle that failed");
        assert_eq!(info.location.file(), file!());
        assert!(
            ctx.message.contains(&info.to_string()),
            "message names the handle"
        );
    }
    // The loop is usable afterwards.
    assert_eq!(lp.run_until_complete(async { 9 }).unwrap(), 9);
    fx.finish();
}

#[test]
fn spec_2_4_non_string_payload_and_debug_mode_panics_are_reported() {
    let fx = Fixture::build(|b| {
        b.virtual_clock().debug(true);
    });
    let lp = &fx.lp;
    let seen = log();
    lp.call_soon(|| std::panic::panic_any(42_u32)).unwrap();
    push_soon(lp, &seen, "after payload");
    lp.call_later(Duration::from_secs(1), || panic!("debug timer"))
        .unwrap();
    let s = seen.clone();
    let l = lp.clone();
    lp.call_later(Duration::from_secs(2), move || {
        s.borrow_mut().push("after timer");
        l.stop();
    })
    .unwrap();
    fx.run_forever();
    assert_eq!(*seen.borrow(), ["after payload", "after timer"]);
    let errors = fx.take_errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors
        .iter()
        .all(|e| e.message.starts_with("Exception in callback") && e.handle.is_some()));
    assert!(matches!(&errors[0].error, Some(Error::Panic(_))));
    assert!(matches!(&errors[1].error, Some(Error::Panic(m)) if m == "debug timer"));
    fx.finish();
}

#[test]
fn spec_2_4_panicking_remote_callback_goes_to_exception_handler() {
    let fx = Fixture::virtual_clock();
    let lp = &fx.lp;
    let ran_after = Arc::new(AtomicUsize::new(0));
    let remote = lp.remote();
    remote
        .call_soon_threadsafe(|| panic!("remote boom"))
        .unwrap();
    let r = ran_after.clone();
    remote
        .call_soon_threadsafe(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    stop_soon(lp);
    fx.run_forever();
    assert_eq!(ran_after.load(Ordering::SeqCst), 1);
    let errors = fx.take_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.starts_with("Exception in callback"));
    assert!(matches!(&errors[0].error, Some(Error::Panic(m)) if m == "remote boom"));
    drop(remote);
    fx.finish();
}
