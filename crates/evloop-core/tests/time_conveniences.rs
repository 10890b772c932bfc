//! `sleep`, `sleep_until`, `timeout`, `timeout_at` and `interval` on the
//! loop's clock, checked exactly on the virtual clock.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop_core::{Error, EventLoop};
use futures_lite::StreamExt;

fn virtual_loop() -> EventLoop {
    EventLoop::builder().virtual_clock().build().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn sleep_ends_exactly_at_its_deadline_on_the_virtual_clock() {
    let lp = virtual_loop();
    let start = lp.time();
    let sleep = lp.sleep(secs(5));
    assert_eq!(sleep.deadline(), start + secs(5));
    assert!(!sleep.is_elapsed());
    lp.run_until_complete(sleep).unwrap();
    assert_eq!(lp.time() - start, secs(5));
    let until = lp.sleep_until(start + secs(7));
    lp.run_until_complete(until).unwrap();
    assert_eq!(lp.time() - start, secs(7));
    lp.close().unwrap();
}

#[test]
fn sleep_zero_yields_to_the_loop_once() {
    let lp = virtual_loop();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s1, s2, lp2) = (seen.clone(), seen.clone(), lp.clone());
    let task = lp
        .create_task(async move {
            lp2.call_soon(move || s1.borrow_mut().push("callback"))
                .unwrap();
            lp2.sleep(Duration::ZERO).await;
            s2.borrow_mut().push("after sleep(0)");
        })
        .unwrap();
    lp.run_until_complete(task).unwrap().unwrap();
    assert_eq!(*seen.borrow(), ["callback", "after sleep(0)"]);
    lp.close().unwrap();
}

#[test]
fn dropping_a_sleep_cancels_its_timer() {
    let lp = virtual_loop();
    let start = lp.time();
    // The short timeout wins; the long sleep's timer must not keep the loop
    // (its deadline would be where the virtual clock jumps next).
    let out = lp
        .run_until_complete(lp.timeout(secs(1), lp.sleep(secs(1000))))
        .unwrap();
    assert!(matches!(out, Err(Error::TimedOut)), "{out:?}");
    assert_eq!(lp.time() - start, secs(1));
    let stopper = lp.clone();
    lp.call_later(secs(2), move || stopper.stop()).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(
        lp.time() - start,
        secs(3),
        "no leftover timer at 1000 s ran first"
    );
    lp.close().unwrap();
}

#[test]
fn timeout_returns_the_output_when_in_time() {
    let lp = virtual_loop();
    let lp2 = lp.clone();
    let out = lp
        .run_until_complete(lp.timeout(secs(10), async move {
            lp2.sleep(secs(3)).await;
            "done"
        }))
        .unwrap();
    assert_eq!(out.unwrap(), "done");
    lp.close().unwrap();
}

#[test]
fn timeout_drops_the_future_when_the_deadline_passes() {
    let lp = virtual_loop();
    let start = lp.time();
    let dropped = Rc::new(std::cell::Cell::new(false));
    struct OnDrop(Rc<std::cell::Cell<bool>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let (guard, lp2) = (OnDrop(dropped.clone()), lp.clone());
    let out = lp
        .run_until_complete(lp.timeout_at(start + secs(2), async move {
            let _guard = guard;
            lp2.sleep(secs(60)).await;
        }))
        .unwrap();
    assert!(matches!(out, Err(ref e) if e.is_timed_out()), "{out:?}");
    assert!(dropped.get());
    assert_eq!(lp.time() - start, secs(2));
    lp.close().unwrap();
}

#[test]
fn interval_ticks_on_its_grid_and_skips_missed_ticks() {
    let lp = virtual_loop();
    let start = lp.time();
    let mut ticker = lp.interval(secs(1)).unwrap();
    assert_eq!(ticker.period(), secs(1));
    let lp2 = lp.clone();
    let ticks = lp
        .run_until_complete(async move {
            let mut ticks = Vec::new();
            for _ in 0..3 {
                ticks.push(ticker.tick().await - start);
            }
            // Stall for 2.5 periods (a slow consumer): the ticks at 3 s and
            // 4 s are missed.
            lp2.sleep(Duration::from_millis(2500)).await; // now 4.5 s
            ticks.push(ticker.tick().await - start); // the late 3 s tick, at once
            ticks.push(ticker.tick().await - start); // then on the grid: 5 s
            ticks.push(ticker.tick().await - start); // 6 s
            ticks
        })
        .unwrap();
    assert_eq!(ticks, [0, 1, 2, 3, 5, 6].map(secs));
    assert_eq!(lp.time() - start, secs(6));
    lp.close().unwrap();
}

#[test]
fn interval_is_a_stream_and_rejects_a_zero_period() {
    let lp = virtual_loop();
    assert!(matches!(
        lp.interval(Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    let start = lp.time();
    let ticker = lp.interval_at(start + secs(10), secs(2)).unwrap();
    let ticks: Vec<_> = lp
        .run_until_complete(ticker.take(3).map(|t| t - start).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(ticks, [10, 12, 14].map(secs));
    lp.close().unwrap();
}

#[test]
fn interval_reset_restarts_from_now() {
    let lp = virtual_loop();
    let start = lp.time();
    let mut ticker = lp.interval(secs(10)).unwrap();
    let lp2 = lp.clone();
    let ticks = lp
        .run_until_complete(async move {
            let first = ticker.tick().await - start;
            lp2.sleep(secs(3)).await;
            ticker.reset();
            (first, ticker.tick().await - start)
        })
        .unwrap();
    assert_eq!(ticks, (secs(0), secs(13)));
    lp.close().unwrap();
}

#[test]
fn sleep_on_a_closed_loop_completes_at_once() {
    let lp = virtual_loop();
    let sleep = lp.sleep(secs(5));
    lp.close().unwrap();
    futures_lite::future::block_on(sleep);
}
