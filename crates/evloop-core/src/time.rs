//! Time as futures, on the loop's clock (virtual clock included): `sleep`,
//! `sleep_until`, `timeout`, `timeout_at` and `interval`, the conveniences a
//! tokio user expects, built on `call_at`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::event_loop::Inner;
use crate::{Error, EventLoop, TimerHandle};

/// What a `Sleep`'s timer shares with it.
#[derive(Default)]
struct Alarm {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// A future that completes at a deadline on the loop's clock: what
/// [`EventLoop::sleep`] and [`EventLoop::sleep_until`] return.
///
/// The timer is scheduled on the first poll (an unpolled `Sleep` costs
/// nothing) and cancelled when the `Sleep` is dropped, so dropping it is
/// always safe. A deadline that has already passed still waits for the next
/// loop iteration, like `call_at` (asyncio's `sleep(0)` yields once).
/// On a closed loop nothing can run, so a `Sleep` completes at once.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    event_loop: Weak<Inner>,
    alarm: Rc<Alarm>,
    timer: Option<TimerHandle>,
}

impl Sleep {
    fn new(event_loop: &EventLoop, deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            event_loop: event_loop.downgrade(),
            alarm: Rc::new(Alarm::default()),
            timer: None,
        }
    }

    /// When the sleep ends, on the loop's clock.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// True once the deadline's timer ran.
    pub fn is_elapsed(&self) -> bool {
        self.alarm.fired.get()
    }

    /// Moves the deadline (earlier or later), whether or not the sleep
    /// already completed; the next poll waits for the new one.
    pub fn reset(&mut self, deadline: Instant) {
        if let Some(timer) = self.timer.take() {
            timer.cancel();
        }
        self.deadline = deadline;
        self.alarm = Rc::new(Alarm::default());
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.alarm.fired.get() {
            return Poll::Ready(());
        }
        {
            let mut waker = self.alarm.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        if self.timer.is_none() {
            let Some(event_loop) = self.event_loop.upgrade().map(EventLoop::from_inner) else {
                return Poll::Ready(());
            };
            let alarm = self.alarm.clone();
            let scheduled = event_loop.call_at(self.deadline, move || {
                alarm.fired.set(true);
                let waker = alarm.waker.borrow_mut().take();
                if let Some(waker) = waker {
                    waker.wake();
                }
            });
            match scheduled {
                Ok(timer) => self.timer = Some(timer),
                // Closed: nothing will ever run the timer.
                Err(_) => return Poll::Ready(()),
            }
        }
        Poll::Pending
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_elapsed(cx)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.cancel();
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.is_elapsed())
            .finish()
    }
}

/// A periodic timer on the loop's clock: what [`EventLoop::interval`]
/// returns. [`tick`](Self::tick) completes once per period.
///
/// The first tick is at the start instant (for [`EventLoop::interval`], the
/// loop's time when it was made), so it completes on the next iteration. Missed ticks are
/// **skipped**: if the loop was busy past one or more ticks, the next tick
/// completes as soon as it can and the one after is the next instant on the
/// original grid (`start + n × period`) that is still ahead. So ticks never
/// come in a burst after a stall (tokio's `Burst`, which would run a slow
/// consumer further behind), and the schedule never drifts (tokio's `Delay`
/// shifts every later tick by the stall): "once a second" stays on the
/// second, which is what periodic work on an event loop wants.
///
/// Also a [`Stream`](futures_lite::Stream) of tick instants.
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was scheduled for
    /// (on the loop's clock). Cancel-safe: dropping the returned future
    /// loses no tick.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (see [`tick`](Self::tick)).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.sleep.poll_elapsed(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.sleep.deadline();
        let now = self
            .sleep
            .event_loop
            .upgrade()
            .map_or(scheduled, |inner| inner.clock.now());
        let mut next = scheduled + self.period;
        if next < now {
            // Skip the missed ticks: the first grid instant at or after now.
            let behind = now.saturating_duration_since(scheduled).as_nanos();
            let steps = behind.div_ceil(self.period.as_nanos());
            let steps = u32::try_from(steps).unwrap_or(u32::MAX);
            next = scheduled + self.period.saturating_mul(steps);
        }
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        let now = self
            .sleep
            .event_loop
            .upgrade()
            .map_or(self.sleep.deadline(), |inner| inner.clock.now());
        self.sleep.reset(now + self.period);
    }
}

impl futures_lite::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

impl EventLoop {
    /// A future that completes `delay` from now on the loop's clock (asyncio's
    /// `asyncio.sleep`, tokio's `sleep`). With a virtual clock the loop jumps
    /// straight to the deadline when it has nothing else to do.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop_core::EventLoop;
    ///
    /// let lp = EventLoop::builder().virtual_clock().build()?;
    /// let start = lp.time();
    /// lp.run_until_complete(lp.sleep(Duration::from_secs(3600)))?;
    /// assert_eq!(lp.time() - start, Duration::from_secs(3600)); // instant, virtually
    /// lp.close()?;
    /// # Ok::<(), evloop_core::Error>(())
    /// ```
    pub fn sleep(&self, delay: Duration) -> Sleep {
        let now = self.time();
        let deadline = now
            .checked_add(delay.min(crate::event_loop::FAR_FUTURE))
            .unwrap_or(now);
        Sleep::new(self, deadline)
    }

    /// A future that completes at `deadline` on the loop's clock
    /// ([`time`](Self::time)).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep::new(self, deadline)
    }

    /// Runs `future` for at most `limit` (asyncio's `wait_for`/`timeout`,
    /// tokio's `timeout`): its output, or [`Error::TimedOut`] if the limit
    /// passed first, in which case `future` is dropped (cancelled).
    ///
    /// The future is polled before the deadline is checked, so one that is
    /// ready when the deadline fires still wins.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop_core::{Error, EventLoop};
    ///
    /// let lp = EventLoop::builder().virtual_clock().build()?;
    /// let slow = lp.sleep(Duration::from_secs(10));
    /// let outcome = lp.run_until_complete(lp.timeout(Duration::from_secs(1), slow))?;
    /// assert!(matches!(outcome, Err(Error::TimedOut)));
    /// lp.close()?;
    /// # Ok::<(), evloop_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// The future's output is wrapped: [`Error::TimedOut`] when the limit passed.
    #[doc(alias = "wait_for")]
    pub fn timeout<F: Future>(
        &self,
        limit: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Error>> {
        with_deadline(self.sleep(limit), future)
    }

    /// [`timeout`](Self::timeout) with a deadline on the loop's clock
    /// (asyncio's `timeout_at`).
    ///
    /// # Errors
    /// The future's output is wrapped: [`Error::TimedOut`] at the deadline.
    pub fn timeout_at<F: Future>(
        &self,
        deadline: Instant,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Error>> {
        with_deadline(self.sleep_until(deadline), future)
    }

    /// A timer that ticks every `period`, the first tick at once; missed
    /// ticks are skipped (see [`Interval`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop_core::EventLoop;
    ///
    /// let lp = EventLoop::builder().virtual_clock().build()?;
    /// let mut every_second = lp.interval(Duration::from_secs(1))?;
    /// let start = lp.time();
    /// let ticks = lp.run_until_complete(async move {
    ///     let mut ticks = Vec::new();
    ///     for _ in 0..3 {
    ///         ticks.push(every_second.tick().await - start);
    ///     }
    ///     ticks
    /// })?;
    /// assert_eq!(ticks, [0, 1, 2].map(Duration::from_secs));
    /// lp.close()?;
    /// # Ok::<(), evloop_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero period.
    pub fn interval(&self, period: Duration) -> Result<Interval, Error> {
        self.interval_at(self.time(), period)
    }

    /// An [`Interval`] whose first tick is at `start`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero period.
    pub fn interval_at(&self, start: Instant, period: Duration) -> Result<Interval, Error> {
        if period.is_zero() {
            return Err(Error::invalid_argument("period must be non-zero"));
        }
        Ok(Interval {
            sleep: Sleep::new(self, start),
            period,
        })
    }
}

async fn with_deadline<F: Future>(mut sleep: Sleep, future: F) -> Result<F::Output, Error> {
    let mut future = pin!(future);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        sleep.poll_elapsed(cx).map(|()| Err(Error::TimedOut))
    })
    .await
}
