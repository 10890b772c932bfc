//! Smoke tests of the core loop: scheduling order, stop, timers, tasks,
//! watchers, panics, and cross-thread posts.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evloop_core::{Error, EventLoop};

fn log() -> Rc<RefCell<Vec<&'static str>>> {
    Rc::new(RefCell::new(Vec::new()))
}

#[test]
fn call_soon_fifo_and_stop_defers_next_batch() {
    let lp = EventLoop::new().unwrap();
    let seen = log();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let lp2 = lp.clone();
    lp.call_soon(move || {
        s1.borrow_mut().push("a");
        lp2.stop();
        let s = s3.clone();
        lp2.call_soon(move || s.borrow_mut().push("next-run"))
            .unwrap();
    })
    .unwrap();
    lp.call_soon(move || s2.borrow_mut().push("b")).unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*seen.borrow(), ["a", "b"]);
    lp.stop();
    lp.run_forever().unwrap();
    assert_eq!(*seen.borrow(), ["a", "b", "next-run"]);
    lp.close().unwrap();
}

#[test]
fn timers_fire_in_deadline_then_fifo_order_on_virtual_clock() {
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    let seen = log();
    let start = lp.time();
    for (delay, name) in [(30, "c"), (10, "a1"), (20, "b"), (10, "a2")] {
        let s = seen.clone();
        lp.call_later(Duration::from_secs(delay), move || {
            s.borrow_mut().push(name)
        })
        .unwrap();
    }
    let cancelled = {
        let s = seen.clone();
        lp.call_later(Duration::from_secs(15), move || s.borrow_mut().push("x"))
            .unwrap()
    };
    cancelled.cancel();
    let lp2 = lp.clone();
    lp.call_later(Duration::from_secs(40), move || lp2.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*seen.borrow(), ["a1", "a2", "b", "c"]);
    assert!(lp.time() - start >= Duration::from_secs(40));
    lp.close().unwrap();
}

#[test]
fn tasks_and_futures() {
    let lp = EventLoop::new().unwrap();
    let fut = lp.create_future::<u32>();
    let setter = fut.clone();
    lp.call_soon(move || setter.set_result(7).unwrap()).unwrap();
    let f2 = fut.clone();
    let task = lp
        .create_task(async move { f2.await.unwrap() * 6 })
        .unwrap();
    assert_eq!(lp.run_until_complete(task).unwrap().unwrap(), 42);
    assert_eq!(fut.result().unwrap(), 7);

    let pending = lp.create_future::<u32>();
    let p2 = pending.clone();
    let task = lp.create_task(p2).unwrap();
    lp.call_soon({
        let lp = lp.clone();
        move || lp.stop()
    })
    .unwrap();
    assert!(matches!(lp.run_forever(), Ok(())));
    assert!(task.cancel());
    let out = lp.run_until_complete(task).unwrap();
    assert!(matches!(out, Err(Error::Cancelled(_))));
    lp.close().unwrap();
}

#[test]
fn panics_reach_the_exception_handler() {
    let lp = EventLoop::new().unwrap();
    let messages = Rc::new(RefCell::new(Vec::<String>::new()));
    let m = messages.clone();
    lp.set_exception_handler(Some(
        move |_: &EventLoop, ctx: &evloop_core::ErrorContext| {
            m.borrow_mut().push(ctx.message.clone());
        },
    ));
    lp.call_soon(|| panic!("boom")).unwrap();
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    lp.call_soon(move || *r.borrow_mut() = true).unwrap();
    drop(lp.create_task(async { panic!("task boom") }).unwrap());
    lp.stop();
    lp.run_forever().unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(*ran.borrow());
    let messages = messages.borrow();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].starts_with("Exception in callback <Handle scheduled at"));
    assert_eq!(messages[1], "Task exception was never retrieved");
    drop(messages);
    lp.close().unwrap();
}

#[test]
fn remote_posts_from_threads_all_arrive() {
    let lp = EventLoop::new().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let remote = lp.remote();
            let count = count.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    let c = count.clone();
                    remote
                        .call_soon_threadsafe(move || {
                            c.fetch_add(1, Ordering::Relaxed);
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let done = lp.create_future::<()>();
    let check = {
        let count = count.clone();
        let done = done.clone();
        let lp = lp.clone();
        Rc::new(move || {
            count.load(Ordering::Relaxed) == 40_000 && done.set_result(()).is_ok() || lp.is_closed()
        })
    };
    fn poll_until(lp: &EventLoop, check: Rc<dyn Fn() -> bool>) {
        if !check() {
            let lp2 = lp.clone();
            lp.call_later(Duration::from_millis(1), move || poll_until(&lp2, check))
                .unwrap();
        }
    }
    poll_until(&lp, check);
    lp.run_until_complete(done).unwrap().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count.load(Ordering::Relaxed), 40_000);
    lp.close().unwrap();
    assert!(matches!(
        lp.remote().call_soon_threadsafe(|| ()),
        Err(Error::Closed)
    ));
}

#[test]
fn reader_sees_pipe_data() {
    use std::io::{Read, Write};
    let lp = EventLoop::new().unwrap();
    let (rx, mut tx) = std::io::pipe().unwrap();
    let rx = Rc::new(rx);
    let reader = rx.clone();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let lp2 = lp.clone();
    lp.add_reader(&rx, move || {
        let mut buf = [0u8; 16];
        let n = (&*reader).read(&mut buf).unwrap();
        g.borrow_mut().extend_from_slice(&buf[..n]);
        lp2.remove_reader(&reader);
        lp2.stop();
    })
    .unwrap();
    tx.write_all(b"abc").unwrap();
    lp.run_forever().unwrap();
    assert_eq!(&*got.borrow(), b"abc");
    assert!(!lp.remove_reader(&rx));
    lp.close().unwrap();
    assert!(matches!(lp.call_soon(|| ()), Err(Error::Closed)));
}
