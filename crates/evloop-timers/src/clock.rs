//! [`Clock`]: where the loop's `time()` comes from — the real monotonic clock
//! or a virtual one for tests.
//!
//! This is the only file in evloop allowed to call `Instant::now` (docs/architecture.md);
//! everything else asks a `Clock`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A source of monotonic time for the event loop (asyncio's `loop.time()`).
///
/// The loop reads [`now`](Self::now) for every deadline and expiry check, and
/// when it would block waiting for the next timer it first calls
/// [`advance_to`](Self::advance_to): a virtual clock jumps there and the loop
/// polls without blocking, so tests with long timers finish instantly and
/// deterministically (docs/behaviour.md 3.8).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time. Never earlier than a previous call's result.
    fn now(&self) -> Instant;

    /// Virtual clocks jump forward to `deadline` (never backwards) and return
    /// `true`; real clocks do nothing and return `false`. The loop calls this
    /// instead of sleeping until `deadline`.
    fn advance_to(&self, deadline: Instant) -> bool {
        let _ = deadline;
        false
    }

    /// Whether this clock is virtual (time moves only when told to).
    fn is_virtual(&self) -> bool {
        false
    }
}

/// The real clock: [`Instant::now`], monotonic and advancing on its own,
/// including while a callback blocks (docs/behaviour.md 3.7).
///
/// # Examples
///
/// ```
/// use evloop_timers::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock;
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// assert!(!clock.advance_to(a)); // the loop must really wait
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock for tests: it starts at the real time of its creation and then
/// stands still until [`advance`](Self::advance) or
/// [`advance_to`](Clock::advance_to) moves it forward (docs/behaviour.md 3.8). It never
/// moves backwards.
///
/// It is `Send + Sync` and lock-free: the time is an atomic offset in
/// nanoseconds from the creation instant, so it can move up to about 584
/// years, beyond which it stays put.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evloop_timers::{Clock, VirtualClock};
///
/// let clock = VirtualClock::new();
/// let t0 = clock.now();
/// assert_eq!(clock.now(), t0); // stands still
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), t0 + Duration::from_secs(5));
/// assert!(clock.advance_to(t0 + Duration::from_secs(60)));
/// assert_eq!(clock.now(), t0 + Duration::from_secs(60));
/// clock.advance_to(t0); // never backwards
/// assert_eq!(clock.now(), t0 + Duration::from_secs(60));
/// ```
#[derive(Debug)]
pub struct VirtualClock {
    /// The real time at creation.
    start: Instant,
    /// Nanoseconds since `start`.
    ///
    /// # Invariant
    ///
    /// Only grows, and `start + offset` is always representable.
    offset: AtomicU64,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A virtual clock reading the current real time, standing still.
    #[must_use]
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            offset: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `by` (saturating at the largest reachable
    /// time instead of overflowing).
    pub fn advance(&self, by: Duration) {
        let by = nanos_saturating(by);
        // The closure always returns `Some`, so this cannot fail.
        let _ = self
            .offset
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some(self.reachable(old, old.saturating_add(by)))
            });
    }

    /// `new` if `start + new` is representable, else `old`.
    fn reachable(&self, old: u64, new: u64) -> u64 {
        if self.start.checked_add(Duration::from_nanos(new)).is_some() {
            new
        } else {
            old
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        let offset = Duration::from_nanos(self.offset.load(Ordering::Acquire));
        // Representable by the invariant; fall back to `start` just in case.
        self.start.checked_add(offset).unwrap_or(self.start)
    }

    fn advance_to(&self, deadline: Instant) -> bool {
        let target = nanos_saturating(deadline.saturating_duration_since(self.start));
        let target = self.reachable(0, target);
        self.offset.fetch_max(target, Ordering::AcqRel);
        true
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX`.
fn nanos_saturating(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
