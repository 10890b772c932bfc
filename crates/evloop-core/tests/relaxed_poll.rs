//! Relaxed I/O polling (`Builder::relaxed_io_poll`, docs/behaviour.md 3.10):
//! while callbacks are ready the loop polls only every N callbacks or T, and
//! everything else of an iteration (remote posts, due timers, batches, stop)
//! stays as asyncio's.
//!
//! The N bound is checked on a virtual clock (time stands still while
//! callbacks are ready, so only N applies and every count is exact); the T
//! bound on the real clock, with bounds that only a loop ignoring T breaks.

use std::cell::{Cell, RefCell};
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use evloop_core::{EventLoop, IoPolling};

const HOUR: Duration = Duration::from_secs(3600);

fn n(callbacks: usize) -> NonZeroUsize {
    NonZeroUsize::new(callbacks).expect("non-zero")
}

/// A loop on a virtual clock polling every `callbacks` callbacks.
fn relaxed_virtual(callbacks: NonZeroUsize) -> EventLoop {
    EventLoop::builder()
        .virtual_clock()
        .relaxed_io_poll(callbacks, HOUR)
        .build()
        .unwrap()
}

/// What each link of a chain does, given its index; false ends the chain.
type Step = Rc<RefCell<dyn FnMut(u32) -> bool>>;

/// Starts a `call_soon` chain: link `k` calls `step(k)` and schedules link
/// `k + 1`, until `step` returns false or `limit` links ran; then stops the loop.
fn start_chain(lp: &EventLoop, limit: u32, step: impl FnMut(u32) -> bool + 'static) {
    link(lp.clone(), 0, limit, Rc::new(RefCell::new(step)));
}

fn link(lp: EventLoop, k: u32, limit: u32, step: Step) {
    let l = lp.clone();
    l.call_soon(move || {
        let go_on = (step.borrow_mut())(k);
        if go_on && k + 1 < limit {
            link(lp, k + 1, limit, step);
        } else {
            lp.stop();
        }
    })
    .unwrap();
}

/// A pipe with a reader on the loop that records how many links had run
/// when it first fired (read from `links`), and reads the byte out.
struct Watched {
    rx: Rc<OwnedFd>,
    tx: OwnedFd,
    fired_after: Rc<Cell<Option<u32>>>,
}

impl Watched {
    fn new(lp: &EventLoop, links: Rc<Cell<u32>>) -> Watched {
        Watched::with(lp, links, false)
    }

    /// With a wakeup reader (`add_wakeup_reader`) instead.
    fn wakeup(lp: &EventLoop, links: Rc<Cell<u32>>) -> Watched {
        Watched::with(lp, links, true)
    }

    fn with(lp: &EventLoop, links: Rc<Cell<u32>>, wakeup: bool) -> Watched {
        let (rx, tx) = rustix::pipe::pipe().unwrap();
        let rx = Rc::new(rx);
        let fired_after = Rc::new(Cell::new(None));
        let (r, f) = (rx.clone(), fired_after.clone());
        let reader = move || {
            let _ = rustix::io::read(&*r, &mut [0u8; 8]);
            if f.get().is_none() {
                f.set(Some(links.get()));
            }
        };
        if wakeup {
            lp.add_wakeup_reader(&*rx, reader).unwrap();
        } else {
            lp.add_reader(&*rx, reader).unwrap();
        }
        Watched {
            rx,
            tx,
            fired_after,
        }
    }

    fn make_readable(&self) {
        rustix::io::write(&self.tx, b"x").unwrap();
    }

    fn finish(self, lp: &EventLoop) -> Option<u32> {
        assert!(lp.remove_reader(&*self.rx));
        self.fired_after.get()
    }
}

/// Runs a chain that makes `watched` readable in link `write_at` and goes
/// on until its reader fired (or `limit` links); how many links had run when
/// the reader fired.
fn links_until_reader(lp: &EventLoop, write_at: u32, limit: u32) -> Option<u32> {
    let links = Rc::new(Cell::new(0));
    let watched = Rc::new(Watched::new(lp, links.clone()));
    let w = watched.clone();
    start_chain(lp, limit, move |k| {
        links.set(k + 1);
        if k == write_at {
            w.make_readable();
        }
        w.fired_after.get().is_none()
    });
    lp.run_forever().unwrap();
    Rc::into_inner(watched).expect("the chain ended").finish(lp)
}

#[test]
fn spec_3_10_the_default_polls_every_iteration() {
    let lp = EventLoop::builder().virtual_clock().build().unwrap();
    assert_eq!(lp.io_polling(), IoPolling::EveryIteration);
    // Written in link 10 (11 links ran): the next iteration's poll sees it,
    // and its batch runs link 11, then the reader.
    assert_eq!(links_until_reader(&lp, 10, 10_000), Some(12));
    let stats = lp.stats();
    assert_eq!(stats.polls, stats.iterations);
    lp.close().unwrap();
}

#[test]
fn spec_3_10_relaxed_polls_once_every_n_callbacks() {
    let lp = relaxed_virtual(n(64));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s, l) = (seen.clone(), lp.clone());
    start_chain(&lp, 1_000, move |_| {
        s.borrow_mut().push(l.stats().polls);
        true
    });
    lp.run_forever().unwrap();
    // Link k is the loop's callback k + 1: the poll comes before the
    // iterations whose callback count reached 64, 128, …
    let expected: Vec<u64> = (0..1_000u64).map(|k| k / 64).collect();
    assert_eq!(*seen.borrow(), expected);
    let stats = lp.stats();
    assert_eq!(stats.iterations, 1_000);
    assert_eq!(stats.polls, 999 / 64);
    lp.close().unwrap();
}

#[test]
fn spec_3_10_relaxed_sees_a_readable_fd_at_the_next_poll_and_not_before() {
    let lp = relaxed_virtual(n(64));
    // Written in link 10: the poll before link 64 (the 64th callback done)
    // sees it, and that batch runs link 64, then the reader. The default
    // mode's reader fires after 12 links.
    assert_eq!(links_until_reader(&lp, 10, 10_000), Some(65));
    lp.close().unwrap();
}

#[test]
fn spec_3_10_relaxed_polls_after_the_interval_when_callbacks_are_slow() {
    // Never by count; each link takes at least 1 ms, so 2 ms pass within
    // two links and the poll must come soon after.
    let lp = EventLoop::builder()
        .relaxed_io_poll(NonZeroUsize::MAX, Duration::from_millis(2))
        .build()
        .unwrap();
    let links = Rc::new(Cell::new(0));
    let watched = Rc::new(Watched::new(&lp, links.clone()));
    let w = watched.clone();
    start_chain(&lp, 1_000, move |k| {
        std::thread::sleep(Duration::from_millis(1));
        links.set(k + 1);
        if k == 5 {
            w.make_readable();
        }
        w.fired_after.get().is_none()
    });
    lp.run_forever().unwrap();
    let fired_after = Rc::into_inner(watched).unwrap().finish(&lp);
    let fired_after = fired_after.expect("the reader fired");
    assert!(
        (7..=20).contains(&fired_after),
        "written after 6 links, seen after {fired_after}"
    );
    let stats = lp.stats();
    assert!(stats.polls <= stats.iterations);
    lp.close().unwrap();
}

#[test]
fn spec_3_10_due_timers_run_in_the_next_iteration_without_a_poll() {
    let lp = relaxed_virtual(NonZeroUsize::MAX);
    let iteration = |l: &EventLoop| l.stats().iterations;
    let scheduled_in = Rc::new(Cell::new(None));
    let fired_in = Rc::new(Cell::new(None));
    let (s, f, l) = (scheduled_in.clone(), fired_in.clone(), lp.clone());
    start_chain(&lp, 100, move |k| {
        if k == 10 {
            s.set(Some(iteration(&l)));
            let (f, l2) = (f.clone(), l.clone());
            l.call_later(Duration::ZERO, move || f.set(Some(iteration(&l2))))
                .unwrap();
        }
        true
    });
    lp.run_forever().unwrap();
    let scheduled_in = scheduled_in.get().unwrap();
    assert_eq!(fired_in.get(), Some(scheduled_in + 1));
    assert_eq!(lp.stats().polls, 0, "no poll while the chain ran");
    assert_eq!(lp.stats().timers_fired, 1);
    lp.close().unwrap();
}

#[test]
fn spec_3_10_a_real_timer_fires_while_a_chain_keeps_the_loop_busy() {
    let lp = EventLoop::builder()
        .relaxed_io_poll(NonZeroUsize::MAX, HOUR)
        .build()
        .unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    lp.call_later(Duration::from_millis(5), move || f.set(true))
        .unwrap();
    let f = fired.clone();
    // Bounded so a timer that never fires fails instead of hanging.
    start_chain(&lp, 100_000_000, move |_| !f.get());
    lp.run_forever().unwrap();
    assert!(fired.get());
    assert_eq!(lp.stats().polls, 0);
    lp.close().unwrap();
}

#[test]
fn spec_3_10_call_soon_threadsafe_runs_while_a_chain_keeps_the_loop_busy() {
    let lp = EventLoop::builder()
        .relaxed_io_poll(NonZeroUsize::MAX, HOUR)
        .build()
        .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let (remote, r) = (lp.remote(), ran.clone());
    let poster = std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(move || r.store(true, Ordering::Relaxed))
            .unwrap();
    });
    let r = ran.clone();
    start_chain(&lp, 100_000_000, move |_| !r.load(Ordering::Relaxed));
    lp.run_forever().unwrap();
    poster.join().unwrap();
    assert!(ran.load(Ordering::Relaxed));
    assert_eq!(lp.stats().polls, 0, "taken in without a poll");
    lp.close().unwrap();
}

#[test]
fn spec_3_10_callbacks_scheduled_during_a_batch_still_run_next_iteration() {
    let lp = relaxed_virtual(NonZeroUsize::MAX);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let iteration = |l: &EventLoop| l.stats().iterations;
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || {
        s.borrow_mut().push(("a", iteration(&l)));
        let (s, l2) = (s.clone(), l.clone());
        l.call_soon(move || {
            s.borrow_mut().push(("a.child", iteration(&l2)));
            l2.stop();
        })
        .unwrap();
    })
    .unwrap();
    let (s, l) = (seen.clone(), lp.clone());
    lp.call_soon(move || s.borrow_mut().push(("b", iteration(&l))))
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*seen.borrow(), [("a", 0), ("b", 0), ("a.child", 1)]);
    assert_eq!(lp.stats().iterations, 2);
    lp.close().unwrap();
}

#[test]
fn spec_3_10_stop_before_running_still_polls_once() {
    let lp = relaxed_virtual(NonZeroUsize::MAX);
    let links = Rc::new(Cell::new(7));
    let watched = Watched::new(&lp, links);
    watched.make_readable();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.call_soon(move || r.set(true)).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(ran.get());
    assert_eq!(watched.finish(&lp), Some(7), "the one iteration polled");
    let stats = lp.stats();
    assert_eq!((stats.iterations, stats.polls), (1, 1));
    lp.close().unwrap();
}

#[test]
fn spec_3_10_stop_from_a_callback_ends_the_run_after_its_batch() {
    let lp = relaxed_virtual(n(64));
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    start_chain(&lp, 1_000, move |k| {
        c.set(k + 1);
        k < 99
    });
    lp.run_forever().unwrap();
    assert_eq!(count.get(), 100);
    assert_eq!(lp.stats().iterations, 100);
    lp.close().unwrap();
}

#[test]
fn spec_3_10_a_task_waiting_for_io_completes_while_another_task_spins() {
    let lp = relaxed_virtual(n(16));
    let (rx, tx) = rustix::pipe::pipe().unwrap();
    let spins = Rc::new(Cell::new(0u32));
    let s = spins.clone();
    // Rescheduled through its waker, so the ready queue is never empty.
    let spinner = lp
        .create_task(async move {
            loop {
                s.set(s.get() + 1);
                yield_now().await;
            }
        })
        .unwrap();
    rustix::io::write(&tx, b"x").unwrap();
    let l = lp.clone();
    let waiter = lp
        .create_task(async move { l.readable(&rx).await })
        .unwrap();
    lp.run_until_complete(waiter).unwrap().unwrap().unwrap();
    // Its first step registered the watcher; the first poll came 16 callbacks later.
    assert!(spins.get() >= 8, "{} spins", spins.get());
    spinner.cancel();
    lp.close().unwrap();
    drop(tx);
}

/// Yields once to the loop, waking itself (a task step back on the ready queue).
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

#[test]
fn spec_3_10_the_mode_is_visible() {
    let lp = EventLoop::builder()
        .io_polling(IoPolling::RELAXED)
        .build()
        .unwrap();
    assert_eq!(
        lp.io_polling(),
        IoPolling::Relaxed {
            callbacks: n(64),
            interval: Duration::from_millis(1)
        }
    );
    assert!(format!("{lp:?}").contains("Relaxed"), "{lp:?}");
    lp.close().unwrap();
}

/// A loop watching no fd answers a zero-timeout poll without the syscall
/// (nothing but its waker could be reported): what other threads post
/// still runs in the next iteration, as with a real poll, and the waker
/// left set by such a post does not keep a later blocking poll awake.
#[test]
fn spec_3_6_watching_nothing_a_post_runs_in_the_next_iteration() {
    let lp = EventLoop::builder().build().unwrap();
    let links = Rc::new(Cell::new(0));
    let posted_after = Arc::new(std::sync::Mutex::new(None));
    let remote = lp.remote();
    let (l, p) = (links.clone(), posted_after.clone());
    start_chain(&lp, 1_000, move |k| {
        l.set(k + 1);
        if k == 10 {
            let (remote, p, seen) = (remote.clone(), p.clone(), l.clone().get());
            // Posted (and the waker set) before this link returns.
            std::thread::spawn(move || {
                let p2 = p.clone();
                remote
                    .call_soon_threadsafe(move || *p2.lock().unwrap() = Some(seen))
                    .unwrap();
            })
            .join()
            .unwrap();
        }
        k < 20
    });
    lp.run_forever().unwrap();
    // The post ran in the iteration after link 11's (link 12's batch).
    assert_eq!(*posted_after.lock().unwrap(), Some(11));
    assert_eq!(links.get(), 21);
    let stats = lp.stats();
    assert_eq!(stats.polls, stats.iterations);

    // Idle now: a later post still wakes the sleeping loop and stops it (a
    // watchdog timer ends the run if it does not).
    let (remote, l, woke) = (lp.remote(), lp.clone(), Arc::new(AtomicBool::new(false)));
    let w = woke.clone();
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        remote
            .call_soon_threadsafe(move || {
                w.store(true, Ordering::SeqCst);
                EventLoop::current().unwrap().stop();
            })
            .unwrap();
    });
    let watchdog = lp
        .call_later(Duration::from_secs(30), move || l.stop())
        .unwrap();
    let started = std::time::Instant::now();
    lp.run_forever().unwrap();
    poster.join().unwrap();
    assert!(woke.load(Ordering::SeqCst));
    // Generous: a loop the post failed to wake sleeps until the watchdog.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woken by the post"
    );
    watchdog.cancel();
    lp.close().unwrap();
}

/// A wakeup reader (a signal wakeup fd) is not polled while callbacks keep
/// the loop busy, but as soon as the loop may sleep; next to an ordinary
/// watcher it is polled every iteration like any fd.
#[test]
fn spec_3_6_a_wakeup_reader_is_polled_when_the_loop_may_sleep() {
    let lp = EventLoop::builder().build().unwrap();
    let links = Rc::new(Cell::new(0));
    let wakeup = Rc::new(Watched::wakeup(&lp, links.clone()));
    let (l, w) = (links.clone(), wakeup.clone());
    start_chain(&lp, 20, move |k| {
        l.set(k + 1);
        if k == 5 {
            w.make_readable();
        }
        true
    });
    lp.run_forever().unwrap();
    assert_eq!(wakeup.fired_after.get(), None, "busy: not polled");
    // Idle until the timer: the poll that may sleep finds it readable.
    let l = lp.clone();
    lp.call_later(Duration::from_millis(20), move || l.stop())
        .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(wakeup.fired_after.get(), Some(20));
    assert_eq!(Rc::into_inner(wakeup).unwrap().finish(&lp), Some(20));

    // Beside an ordinary reader, every iteration polls: written in link 5
    // (6 links ran), seen after link 7, as in asyncio.
    let links = Rc::new(Cell::new(0));
    let ordinary = Watched::new(&lp, links.clone());
    assert_eq!(links_until_wakeup(&lp, &links, 5), Some(7));
    ordinary.finish(&lp);
    lp.close().unwrap();
}

/// A chain that makes a new wakeup reader's fd readable in link `write_at`
/// and ends when it fired (or after 1000 links); the links run by then.
fn links_until_wakeup(lp: &EventLoop, links: &Rc<Cell<u32>>, write_at: u32) -> Option<u32> {
    let wakeup = Rc::new(Watched::wakeup(lp, links.clone()));
    let (l, w) = (links.clone(), wakeup.clone());
    start_chain(lp, 1_000, move |k| {
        l.set(k + 1);
        if k == write_at {
            w.make_readable();
        }
        w.fired_after.get().is_none()
    });
    lp.run_forever().unwrap();
    Rc::into_inner(wakeup).expect("the chain ended").finish(lp)
}
